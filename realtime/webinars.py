"""Webinar rooms on the hub: joining, signaling to the media worker, moderation, chat, attendance.

The rules are meetings/webinar.py's (pure); this module only translates. Live
state (shared by all hubs):
- map `webinars:<tenant>`: room id → the room (`Webinar.to_dict()`) and the
  media worker that carries its media; every change is read, decided and
  written back under a per-room lock of this hub (a room is handled by the
  hub of whoever acts; two hubs acting on one room at the same instant can
  still race: see docs/meetings.md).
- each member follows the stream `webinar:<tenant>:<room>:<member>`:
  `webinar-state` after every change, `webinar-answer`, chat, `webinar-closed`.

Media: the room is placed on one media worker when created. A member's peer
connections are worker sessions `wb<tenant>-<room>-<member>-p` (publishing)
and `…-v` (receiving); offers go to the worker as `webinar-publish` /
`webinar-view`, answers come back as `media-answer` and are routed here by
the session id's prefix. Attendance: every stay that ends (leaving, removed,
the webinar ended) is written to `webinar_attendance`.

REST: POST /api/webinars (create), POST /api/webinars/{room}/invites (a guest
link), GET /api/webinars/{room}/attendance (the training record).
"""

from __future__ import annotations

import asyncio
import logging
import re
import secrets
import time
from collections.abc import Callable
from typing import Any

import msgspec
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from meetings.webinar import PRESENTER, Webinar, WebinarError
from realtime import protocol as P
from realtime.api import ApiError, principal, read_body
from realtime.auth import Principal
from realtime.live import LiveStore
from realtime.phone import PhoneService
from store.models import WebinarAttendance

log = logging.getLogger("unidesk.webinars")

TRAINERS = ("trainer", "supervisor", "admin")
SESSION = re.compile(r"^wb(\d+)-([0-9a-f]+)-([ug]\d+)-([pv])$")
INVITE_MINUTES = 24 * 60


def rooms_map(tenant_id: int) -> str:
    return f"webinars:{tenant_id}"


def member_stream(tenant_id: int, room: str, member: str) -> str:
    return f"webinar:{tenant_id}:{room}:{member}"


def member_of(p: Principal) -> str:
    return f"g{p.user_id}" if p.kind == "webinar" else f"u{p.user_id}"


def media_session(tenant_id: int, room: str, member: str, publish: bool) -> str:
    return f"wb{tenant_id}-{room}-{member}-{'p' if publish else 'v'}"


class _Room(msgspec.Struct):
    webinar: dict[str, Any]
    worker: str


class CreateWebinar(msgspec.Struct, forbid_unknown_fields=True):
    title: str = msgspec.field(default="Webinar")


class CreateInvite(msgspec.Struct, forbid_unknown_fields=True):
    name: str = "Guest"
    minutes: int = INVITE_MINUTES


class Webinars:
    def __init__(
        self, live: LiveStore, sessionmaker: async_sessionmaker[AsyncSession], phone: PhoneService,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.live = live
        self.sessionmaker = sessionmaker
        self.phone = phone
        self.clock = clock
        self._locks: dict[str, asyncio.Lock] = {}

    # ------------------------------------------------------------ rooms

    async def create(self, p: Principal, title: str) -> str:
        workers = await self.phone.worker_names()
        if not workers:
            raise WebinarError(P.NO_MEDIA_WORKER, "no media worker is connected; a webinar needs one")
        room = secrets.token_hex(8)
        w = Webinar(room, title[:200], presenter=member_of(p))
        # The least loaded worker would be better; any connected one carries a room.
        await self._save(p.tenant_id, w, workers[hash(room) % len(workers)])
        return room

    async def _load(self, tenant_id: int, room: str) -> tuple[Webinar, str]:
        raw = await self.live.map_get(rooms_map(tenant_id), room)
        if raw is None:
            raise WebinarError(P.NOT_FOUND, f"no webinar {room}")
        r = msgspec.json.decode(raw, type=_Room)
        return Webinar.from_dict(r.webinar), r.worker

    async def _save(self, tenant_id: int, w: Webinar, worker: str) -> None:
        await self.live.map_put(rooms_map(tenant_id), w.id, msgspec.json.encode(_Room(w.to_dict(), worker)))

    def _lock(self, tenant_id: int, room: str) -> asyncio.Lock:
        return self._locks.setdefault(f"{tenant_id}:{room}", asyncio.Lock())

    # ------------------------------------------------------------ frames from members

    async def handle(self, p: Principal, member: str | None, frame: P.ClientMessage, follow: Callable[[str], None],
                     joined: Callable[[tuple[int, str, str] | None], None]) -> None:
        """One webinar frame of a connection; `member` is the room and member it joined, if any.
        Raises WebinarError (the hub replies with an error frame)."""
        t = p.tenant_id
        if isinstance(frame, P.WebinarJoin):
            if p.kind == "webinar" and p.room != frame.room:
                raise WebinarError(P.FORBIDDEN, "this invitation is for another webinar")
            me = member_of(p)
            async with self._lock(t, frame.room):
                w, worker = await self._load(t, frame.room)
                w.join(me, p.username, self.clock(), guest=p.kind == "webinar")
                await self._save(t, w, worker)
            follow(member_stream(t, frame.room, me))
            joined((t, frame.room, me))
            await self._announce(t, w)
            return
        if member is None:
            raise WebinarError(P.CONFLICT, "join a webinar first (webinar-join)")
        room, me = member.split(":", 1)
        async with self._lock(t, room):
            w, worker = await self._load(t, room)
            w.need_member(me)
            now = self.clock()
            match frame:
                case P.WebinarOffer(offer_id=oid, sdp=sdp, publish=publish, slots=slots):
                    if publish:
                        # A presenter's sections map by kind on the worker; a speaker's one is the speaker slot.
                        slots = slots or (None if w.members[me].role == PRESENTER else ["speaker"])
                        w.check_publish(me, list(slots or ["camera", "audio", "screen"]))
                    elif "a=sendrecv" in sdp or "a=sendonly" in sdp:
                        raise WebinarError(P.FORBIDDEN, "attendees receive only: offer recvonly media, or ask to speak")
                    op = "webinar-publish" if publish else "webinar-view"
                    await self.phone.command(worker, P.MediaCommand(
                        op=op, session_id=media_session(t, room, me, publish), offer_id=oid, sdp=sdp, room=room,
                        slots=list(slots) if slots else None,
                    ))
                    return
                case P.WebinarAction(action=action, member=target, question=question):
                    w.act(me, action, now, target=target, question=question)
                case P.WebinarAsk(text=text):
                    w.ask(me, text, now)
                case P.WebinarHand(on=on):
                    w.hand(me, on, now)
                case P.WebinarChat(text=text):
                    name = w.members[me].name
                    msg = P.encode(P.WebinarChatMessage(member=me, name=name, text=text, sent_at=now))
                    await self.live.publish([(member_stream(t, room, m.id), msg) for m in w.online()])
                    return
                case P.WebinarLeave():
                    w.leave(me, now)
                    joined(None)
            await self._apply(t, w, worker, now)

    async def left(self, tenant_id: int, room: str, member: str) -> None:
        """The member's connection closed: it leaves (its media closes, its stay is recorded)."""
        async with self._lock(tenant_id, room):
            try:
                w, worker = await self._load(tenant_id, room)
            except WebinarError:
                return
            w.leave(member, self.clock())
            await self._command_closes(worker, tenant_id, room, member)
            await self._apply(tenant_id, w, worker, self.clock())

    async def _command_closes(self, worker: str, tenant_id: int, room: str, member: str, publish_only: bool = False) -> None:
        sessions = [media_session(tenant_id, room, member, True)]
        if not publish_only:
            sessions.append(media_session(tenant_id, room, member, False))
        await self.phone.command(worker, *(P.MediaCommand(op="webinar-close", session_id=s) for s in sessions))

    async def _apply(self, t: int, w: Webinar, worker: str, now: float) -> None:
        """Save the room, carry out its commands, record ended stays, tell every member."""
        out: list[tuple[str, bytes]] = []
        for c in w.commands_out():
            match c.op:
                case "mute":
                    await self.phone.command(worker, P.MediaCommand(op="webinar-mute", session_id="speaker", room=w.id,
                                                                    on=c.on))
                case "stop":
                    assert c.member is not None
                    await self._command_closes(worker, t, w.id, c.member, publish_only=True)
                case "drop":
                    assert c.member is not None
                    await self._command_closes(worker, t, w.id, c.member)
                    out.append((member_stream(t, w.id, c.member),
                                P.encode(P.WebinarClosed(reason="removed", message="the presenter removed you"))))
                case "end":
                    await self.phone.command(worker, P.MediaCommand(op="webinar-end", session_id=w.id))
                    ended = P.encode(P.WebinarClosed(reason="ended", message="the webinar has ended"))
                    out += [(member_stream(t, w.id, m), ended) for m in w.members]
        await self._save(t, w, worker)
        await self._record(t, w)
        if out:
            await self.live.publish(out)
        await self._announce(t, w)

    async def _announce(self, t: int, w: Webinar) -> None:
        members = [P.WebinarMemberView(id=m.id, name=m.name, role=m.role, guest=m.guest, hand_since=m.hand_since)
                   for m in w.online()]
        questions = [P.WebinarQuestionView(id=q.id, name=q.name, text=q.text, asked_at=q.asked_at, answered=q.answered)
                     for q in w.questions]
        events = []
        for m in w.online():
            state = P.WebinarState(room=w.id, title=w.title, you=m.id, role=m.role, attendees=w.attendees(),
                                   members=members, questions=questions, locked=w.locked,
                                   speakers_muted=w.speakers_muted)
            events.append((member_stream(t, w.id, m.id), P.encode(state)))
        if events:
            await self.live.publish(events)

    async def _record(self, t: int, w: Webinar) -> None:
        rows = w.visits_out()
        if not rows:
            return
        async with self.sessionmaker() as s, s.begin():
            for v in rows:
                m = w.members[v.member]
                s.add(WebinarAttendance(
                    tenant_id=t, room=w.id, title=w.title, user_id=int(m.id[1:]) if m.id.startswith("u") else None,
                    name=v.name, role=m.role, joined_at=v.joined_at, left_at=v.left_at,
                ))

    # ------------------------------------------------------------ what the worker reports

    async def media_answer(self, worker: str, m: P.MediaAnswer) -> bool:
        found = SESSION.match(m.session_id)
        if found is None:
            return False
        t, room, member = int(found[1]), found[2], found[3]
        await self.live.publish([(member_stream(t, room, member),
                                  P.encode(P.WebinarAnswer(offer_id=m.offer_id, sdp=m.sdp)))])
        return True

    async def media_failed(self, worker: str, m: P.MediaFailed) -> bool:
        found = SESSION.match(m.session_id)
        if found is None:
            return False
        t, room, member = int(found[1]), found[2], found[3]
        await self.live.publish([(member_stream(t, room, member),
                                  P.encode(P.WebinarClosed(reason="failed", message=m.message)))])
        return True

    def is_ours(self, session_id: str) -> bool:
        return SESSION.match(session_id) is not None

    # ------------------------------------------------------------ REST

    async def attendance(self, tenant_id: int, room: str) -> list[dict[str, Any]]:
        async with self.sessionmaker() as s:
            rows = (await s.execute(
                select(WebinarAttendance).where(WebinarAttendance.tenant_id == tenant_id, WebinarAttendance.room == room)
                .order_by(WebinarAttendance.joined_at)
            )).scalars().all()
        return [dict(user_id=r.user_id, name=r.name, role=r.role, joined_at=r.joined_at, left_at=r.left_at,
                     seconds=round(r.left_at - r.joined_at, 3)) for r in rows]


def _service(request: Request) -> Webinars:
    return request.app.state.ctx.hub.webinars


async def create_webinar(request: Request) -> Response:
    p = principal(request, *TRAINERS)
    body: CreateWebinar = await read_body(request, CreateWebinar)
    try:
        room = await _service(request).create(p, body.title)
    except WebinarError as exc:
        raise ApiError(503, exc.code, str(exc)) from None
    return JSONResponse({"room": room, "title": body.title[:200]}, 201)


async def create_invite(request: Request) -> Response:
    p = principal(request, *TRAINERS)
    room = request.path_params["room"]
    svc = _service(request)
    try:
        w, _ = await svc._load(p.tenant_id, room)
    except WebinarError as exc:
        raise ApiError(404, exc.code, str(exc)) from None
    if w.presenter != member_of(p):
        raise ApiError(403, "forbidden", "only the webinar's presenter invites guests")
    body: CreateInvite = await read_body(request, CreateInvite)
    if not 1 <= body.minutes <= 7 * 24 * 60 or not 1 <= len(body.name) <= 64:
        raise ApiError(422, "bad-request", "an invitation lasts 1 minute to 7 days and names the guest (1-64 characters)")
    expires = time.time() + body.minutes * 60
    guest = secrets.randbelow(10**12) + 1
    token = request.app.state.ctx.tokens.issue_webinar_guest(p.tenant_id, p.tenant_slug, room, guest, body.name, expires)
    return JSONResponse({"token": token, "expires_at": expires, "url": f"/webinar?room={room}&token={token}"}, 201)


async def attendance(request: Request) -> Response:
    p = principal(request, *TRAINERS)
    rows = await _service(request).attendance(p.tenant_id, request.path_params["room"])
    return JSONResponse({"attendance": rows})


routes = [
    Route("/api/webinars", create_webinar, methods=["POST"]),
    Route("/api/webinars/{room}/invites", create_invite, methods=["POST"]),
    Route("/api/webinars/{room}/attendance", attendance),
]
