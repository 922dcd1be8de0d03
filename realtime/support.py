"""1:1 video support sessions with customers, hub side: links, the lobby, relaying, the record.

The rules are meetings/support.py (pure); this module only loads a room from the live store (map
`support:<tenant>`, so every hub sees it), applies one rule, saves it, publishes the outcome and
keeps the row in `support_sessions` up to date. Media never passes through the hub: the two
browsers connect to each other (TURN relays when a direct path fails) and the hub relays their
SDP, chat and screen-share notices between the agent's stream (`agent:<tenant>:<user>`) and the
guest's (`support:<tenant>:<room>`).

Routes: `POST /api/support-sessions` (an agent opens one and gets the customer's link),
`GET /api/support-sessions/{id}` (its record), and `/support/{id}` (the customer's page; the
token travels in the link's fragment, so it never reaches a server log).
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import secrets
import time
from typing import Annotated

import msgspec
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from meetings.support import Phase, Role, RoomError, SupportRoom
from realtime import protocol as P
from realtime.api import ApiError, principal, read_body
from realtime.auth import Principal, TokenService
from realtime.directory import Directory
from realtime.live import LiveStore, stream_agent
from store.models import SupportSessionRecord

log = logging.getLogger("unidesk.support")

GUEST = "guest"
# The frames a guest's connection may send (admitting is refused by the rules, with their message).
GUEST_FRAMES = (P.Ping, P.SupportJoin, P.SupportAdmit, P.SupportSignal, P.SupportChat, P.SupportScreen, P.SupportEnd)


def support_map(tenant_id: int) -> str:
    return f"support:{tenant_id}"


def stream_guest(tenant_id: int, room_id: str) -> str:
    return f"support:{tenant_id}:{room_id}"


def key_hash(guest_key: str) -> str:
    return hashlib.sha256(guest_key.encode()).hexdigest()


class SupportError(Exception):
    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


def view(r: SupportRoom) -> P.SupportView:
    return P.SupportView(
        id=r.id, phase=r.phase.value, contact_id=r.contact_id, created_at=r.created_at, expires_at=r.expires_at,
        guest_name=r.guest_name, admitted_at=r.admitted_at, ended_at=r.ended_at, end_reason=r.end_reason,
        guest_epoch=r.guest_epoch,
    )


class _Conflict(Exception):
    """Another hub changed the room since it was read."""


# Reads, decisions and writes of one room retried when another hub wrote it meanwhile.
SAVE_TRIES = 20


class Support:
    def __init__(self, live: LiveStore, sessionmaker: async_sessionmaker[AsyncSession], directory: Directory,
                 tokens: TokenService, link_ttl: int) -> None:
        self.live = live
        self.sessionmaker = sessionmaker
        self.directory = directory
        self.tokens = tokens
        self.link_ttl = link_ttl

    # ------------------------------------------------------------ opening

    async def create(self, p: Principal, contact_id: str | None, now: float) -> tuple[SupportRoom, str]:
        """A new room for the agent `p` and the customer's token for it."""
        room = SupportRoom(id=secrets.token_urlsafe(12), tenant_id=p.tenant_id, host_id=p.user_id,
                           contact_id=contact_id, created_at=now, expires_at=now + self.link_ttl)
        token = self.tokens.issue_guest(p.tenant_id, p.tenant_slug, room.id, room.expires_at, now)
        async with self.sessionmaker() as s, s.begin():
            s.add(SupportSessionRecord(id=room.id, tenant_id=p.tenant_id, agent_id=p.user_id, contact_id=contact_id,
                                       created_at=now, expires_at=room.expires_at))
        await self._save(room, None)
        await self._tell(room, P.SupportChanged(session=view(room)), guest=False)
        return room, token

    async def rooms_of(self, tenant_id: int, host_id: int) -> list[P.SupportView]:
        """The agent's rooms not ended (a snapshot's `support`); rooms whose link expired unused end here."""
        out = []
        for raw in (await self.live.map_all(support_map(tenant_id))).values():
            room = SupportRoom.load(raw)
            if room.host_id != host_id:
                continue
            if room.expire(time.time()):
                with contextlib.suppress(_Conflict):  # changed meanwhile (the guest came): seen next time
                    await self._finish(room, raw)
                continue
            out.append(view(room))
        return sorted(out, key=lambda v: v.created_at)

    # ------------------------------------------------------------ the guest's connection

    async def open_guest(self, p: Principal, guest_key: str | None) -> tuple[SupportRoom, P.TenantInfo]:
        """A guest's `auth`: the token's room must exist and take this browser's key."""
        if guest_key is None:
            raise SupportError(P.BAD_FRAME, "a support link's auth frame carries the browser's `guest_key`")
        d = await self.directory.get(p.tenant_id)
        for _ in range(SAVE_TRIES):
            room, raw = await self._load(p.tenant_id, p.username)
            if room is None or d is None:
                raise SupportError(P.SUPPORT_ENDED,
                                   "this support session has ended or does not exist; ask your agent for a new link")
            try:
                room.bind_guest(key_hash(guest_key), time.time())
            except RoomError as exc:
                raise SupportError(exc.code, str(exc)) from None
            try:
                await self._save(room, raw)
            except _Conflict:
                continue
            return room, P.TenantInfo(id=d.tenant_id, slug=d.slug, name=d.name)
        raise SupportError(P.CONFLICT, "the support session changed too often at once; try again")

    # ------------------------------------------------------------ frames

    async def handle(self, p: Principal, guest_key: str | None, frame: P.ClientMessage) -> None:
        """One support frame from the agent (`p.kind` "access") or the guest ("guest"); raises
        SupportError with a clear message when it is refused (the room is left as it was)."""
        assert isinstance(frame, P.SupportJoin | P.SupportAdmit | P.SupportSignal | P.SupportChat
                          | P.SupportScreen | P.SupportEnd), f"not a support frame: {frame!r}"
        role = Role.GUEST if p.kind == GUEST else Role.HOST
        if role is Role.GUEST and frame.session_id != p.username:
            raise SupportError(P.FORBIDDEN, "this link is for another support session")
        for _ in range(SAVE_TRIES):
            if await self._apply(p, role, guest_key, frame):
                return
        raise SupportError(P.CONFLICT, "the support session changed too often at once; try again")

    async def _apply(self, p: Principal, role: Role, guest_key: str | None, frame: P.ClientMessage) -> bool:
        """Read the room, apply the frame, write it back unless another hub changed it meanwhile
        (False: nothing was done, read again)."""
        assert isinstance(frame, P.SupportJoin | P.SupportAdmit | P.SupportSignal | P.SupportChat
                          | P.SupportScreen | P.SupportEnd)
        room, raw = await self._load(p.tenant_id, frame.session_id)
        if room is None or (role is Role.HOST and room.host_id != p.user_id):
            raise SupportError(P.NOT_FOUND, f"no support session {frame.session_id} of yours")
        now = time.time()
        try:
            match frame:
                case P.SupportJoin(name=name):
                    if role is not Role.GUEST:
                        raise RoomError(P.FORBIDDEN, "only the customer joins through the link")
                    assert guest_key is not None, "a guest's connection has its key"
                    room.join(key_hash(guest_key), name, "", now)
                case P.SupportAdmit(admit=True):
                    room.admit(role, now)
                case P.SupportAdmit(admit=False):
                    room.deny(role, now)
                case P.SupportEnd():
                    room.end(role, now)
                case P.SupportSignal() | P.SupportChat() | P.SupportScreen():
                    await self._relay(room, role, frame, now)
                    return True
        except RoomError as exc:
            raise SupportError(exc.code, str(exc)) from None
        try:
            if room.phase is Phase.ENDED:
                await self._finish(room, raw)
            else:
                await self._save(room, raw)
                await self._record(room)
        except _Conflict:
            return False
        await self._tell(room, P.SupportChanged(session=view(room)))
        return True

    async def guest_agent(self, p: Principal, user_agent: str) -> None:
        """The guest browser's User-Agent, kept on the record (from the websocket's headers)."""
        async with self.sessionmaker() as s, s.begin():
            row = await s.get(SupportSessionRecord, p.username)
            if row is not None and row.tenant_id == p.tenant_id:
                row.guest_ua = user_agent[:300]

    async def _relay(self, room: SupportRoom, role: Role, frame: P.ClientMessage, now: float) -> None:
        match frame:
            case P.SupportSignal(sdp_type=t, sdp=sdp):
                room.check_relay(role, "signal")
                out = P.SupportRelayed(session_id=room.id, kind="signal", sender=role.value, sdp_type=t, sdp=sdp)
            case P.SupportChat(text=text):
                room.check_relay(role, "chat")
                out = P.SupportRelayed(session_id=room.id, kind="chat", sender=role.value, text=text, sent_at=now)
            case P.SupportScreen(on=on):
                room.check_relay(role, "screen")
                out = P.SupportRelayed(session_id=room.id, kind="screen", sender=role.value, on=on)
            case _:  # pragma: no cover - handle() only passes these three
                raise AssertionError(frame)
        out.sender_name = await self._name(room, role)
        # Chat goes to both (each side shows the conversation from the frames it gets); the rest to the other side.
        both = out.kind == "chat"
        await self._tell(room, out, host=both or role is Role.GUEST, guest=both or role is Role.HOST)

    # ------------------------------------------------------------ internals

    async def _name(self, room: SupportRoom, role: Role) -> str:
        if role is Role.GUEST:
            return room.guest_name or "Guest"
        d = await self.directory.get(room.tenant_id)
        u = d.users.get(room.host_id) if d else None
        return u.display_name if u else "Agent"

    async def _load(self, tenant_id: int, room_id: str) -> tuple[SupportRoom | None, bytes | None]:
        """The room and the bytes read (what `_save` and `_finish` expect to replace)."""
        raw = await self.live.map_get(support_map(tenant_id), room_id)
        return (SupportRoom.load(raw) if raw is not None else None), raw

    async def _save(self, room: SupportRoom, raw: bytes | None) -> None:
        """Write the room unless another hub changed it since `raw` was read (then _Conflict)."""
        if not await self.live.map_swap(support_map(room.tenant_id), room.id, raw, room.dump()):
            raise _Conflict(room.id)

    async def _finish(self, room: SupportRoom, raw: bytes) -> None:
        """An ended room leaves the live store (its link stops working) and its record is completed."""
        if not await self.live.map_swap(support_map(room.tenant_id), room.id, raw, None):
            raise _Conflict(room.id)
        await self._record(room)
        log.info("support session ended", extra={"ud_tenant": room.tenant_id, "ud_support": room.id,
                                                  "ud_reason": room.end_reason})

    async def _record(self, room: SupportRoom) -> None:
        async with self.sessionmaker() as s, s.begin():
            row = await s.get(SupportSessionRecord, room.id)
            if row is None or row.tenant_id != room.tenant_id:
                return
            row.admitted_at, row.ended_at, row.duration = room.admitted_at, room.ended_at, room.duration
            row.end_reason = room.end_reason
            row.guest_name = room.guest_name or None

    async def _tell(self, room: SupportRoom, msg: P.ServerMessage, host: bool = True, guest: bool = True) -> None:
        body = P.encode(msg)
        events = []
        if host:
            events.append((stream_agent(room.tenant_id, room.host_id), body))
        if guest:
            events.append((stream_guest(room.tenant_id, room.id), body))
        await self.live.publish(events)


# ---------------------------------------------------------------- REST


class CreateRequest(msgspec.Struct, forbid_unknown_fields=True):
    # The contact (call) in progress, to link the session to the customer's record.
    contact_id: Annotated[str, msgspec.Meta(min_length=1, max_length=64)] | None = None


async def create_session(request: Request) -> Response:
    p = principal(request, "agent")
    ctx = request.app.state.ctx
    body = await request.body()
    req = await read_body(request, CreateRequest) if body.strip() else CreateRequest()
    if req.contact_id is not None:
        mine = {c.id for c in await ctx.contacts.contacts_of(p.tenant_id, p.user_id)}
        mine |= {c.id for c in await ctx.phone.calls_of(p.tenant_id, p.user_id)}
        if req.contact_id not in mine:
            raise ApiError(404, "not-found", f"no contact {req.contact_id} in progress of yours")
    room, token = await ctx.support.create(p, req.contact_id, time.time())
    base = str(request.base_url).rstrip("/")
    return JSONResponse(
        {"id": room.id, "link": f"{base}/support/{room.id}#t={token}", "token": token,
         "expires_at": room.expires_at, "contact_id": room.contact_id},
        201,
    )


async def session_record(request: Request) -> Response:
    """A support session's record: supervisors and admins see any of the tenant; an agent their own."""
    p = principal(request, "agent", "supervisor", "admin")
    async with request.app.state.ctx.sessionmaker() as s:
        row = (await s.execute(select(SupportSessionRecord).where(
            SupportSessionRecord.tenant_id == p.tenant_id, SupportSessionRecord.id == request.path_params["id"],
        ))).scalar_one_or_none()
    if row is None or not (row.agent_id == p.user_id or p.has_any("supervisor", "admin")):
        raise ApiError(404, "not-found", "no such support session")
    return JSONResponse({
        "id": row.id, "agent_id": row.agent_id, "contact_id": row.contact_id, "created_at": row.created_at,
        "expires_at": row.expires_at, "admitted_at": row.admitted_at, "ended_at": row.ended_at,
        "duration": row.duration, "guest_name": row.guest_name, "guest_ua": row.guest_ua,
        "end_reason": row.end_reason,
    })


routes = [
    Route("/api/support-sessions", create_session, methods=["POST"]),
    Route("/api/support-sessions/{id}", session_record),
]
