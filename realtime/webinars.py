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

Scheduling: every webinar has a row of `webinar_schedules` (when, how long, its
audience of queues and teams); a scheduled one comes to life in the live map
when its first member joins (from 10 minutes before its start), and its
audience's desktops get `webinar-invited`. When the media worker carrying a
room dies, the room moves to another worker (members offer again) or ends.

REST: POST /api/webinars (start now or schedule), GET /api/webinars (those the
caller may join), POST /api/webinars/{room}/invites (a guest link),
GET /api/webinars/{room}/attendance (the training record).
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
import re
import secrets
import time
from collections.abc import Awaitable, Callable
from typing import Annotated, Any, TypeVar

import msgspec
from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from meetings.webinar import OPEN_BEFORE, PRESENTER, Webinar, WebinarError
from realtime import protocol as P
from realtime.api import ApiError, principal, read_body
from realtime.auth import Principal
from realtime.live import LiveStore, stream_agent
from realtime.phone import PhoneService
from realtime.teams import audience_users
from store.models import Queue, QueueMembership, Team, TeamMember, User, WebinarAttendance, WebinarSchedule

log = logging.getLogger("unidesk.webinars")

TRAINERS = ("trainer", "supervisor", "admin")
SESSION = re.compile(r"^wb(\d+)-([0-9a-f]+)-([ug]\d+)-([pv])$")
INVITE_MINUTES = 24 * 60
# Reads, decisions and writes of one room retried when other hubs wrote it meanwhile.
SAVE_TRIES = 20
T = TypeVar("T")
# A webinar started and never ended leaves the listings this long after its planned end.
OVERRUN = 3600


def rooms_map(tenant_id: int) -> str:
    return f"webinars:{tenant_id}"


def member_stream(tenant_id: int, room: str, member: str) -> str:
    return f"webinar:{tenant_id}:{room}:{member}"


def member_of(p: Principal) -> str:
    return f"g{p.user_id}" if p.kind == "webinar" else f"u{p.user_id}"


def media_session(tenant_id: int, room: str, member: str, publish: bool) -> str:
    return f"wb{tenant_id}-{room}-{member}-{'p' if publish else 'v'}"


def worker_rooms(worker: str) -> str:
    """Map of the rooms a media worker carries (`<tenant>:<room>`), for when it dies."""
    return f"webinar-rooms:{worker}"


class _Room(msgspec.Struct):
    webinar: dict[str, Any]
    worker: str
    # {"queues": [ids], "teams": [ids]}: only their agents (and invited guests) may join; None: any user.
    audience: dict[str, list[int]] | None = None


@dataclass
class _Held:
    """A room as read: its worker and audience, and the bytes read (what `_save` expects to replace)."""

    worker: str
    audience: dict[str, list[int]] | None
    raw: bytes | None = None


class _Conflict(Exception):
    """Another hub wrote the room since it was read."""


Name = Annotated[str, msgspec.Meta(min_length=1, max_length=64)]


class Audience(msgspec.Struct, forbid_unknown_fields=True):
    queues: Annotated[list[Name], msgspec.Meta(max_length=50)] = []
    teams: Annotated[list[Name], msgspec.Meta(max_length=50)] = []


class CreateWebinar(msgspec.Struct, forbid_unknown_fields=True):
    title: str = msgspec.field(default="Webinar")
    # When it starts (epoch seconds); None: it starts now.
    starts_at: float | None = None
    minutes: int = 60
    # Who may join; None: every user of the tenant.
    audience: Audience | None = None


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

    async def create(self, p: Principal, title: str, starts_at: float | None = None, minutes: int = 60,
                     audience: dict[str, list[int]] | None = None) -> tuple[str, str | None]:
        """Start a webinar now (`starts_at` None: placed on a media worker at once) or schedule it (the
        room opens OPEN_BEFORE its start, on the first member's join). Returns the room and its worker."""
        now = self.clock()
        room = secrets.token_hex(8)
        worker = None
        if starts_at is None:
            worker = await self._pick_worker(room)
            w = Webinar(room, title[:200], presenter=member_of(p), starts_at=now, started=True)
            await self._save(p.tenant_id, w, _Held(worker, audience))
        async with self.sessionmaker() as s, s.begin():
            s.add(WebinarSchedule(
                tenant_id=p.tenant_id, room=room, title=title[:200], presenter_id=p.user_id,
                starts_at=now if starts_at is None else starts_at, minutes=minutes, audience=audience,
                created_at=now, started_at=now if starts_at is None else None,
            ))
        await self._invite(p.tenant_id, room)
        return room, worker

    async def _pick_worker(self, room: str, gone: str | None = None) -> str:
        workers = [w for w in await self.phone.worker_names() if w != gone]
        if not workers:
            raise WebinarError(P.NO_MEDIA_WORKER, "no media worker is connected; a webinar needs one")
        # The least loaded worker would be better; any connected one carries a room.
        return workers[int(room, 16) % len(workers)]

    async def _load(self, tenant_id: int, room: str, open_: bool = False) -> tuple[Webinar, _Held]:
        raw = await self.live.map_get(rooms_map(tenant_id), room)
        if raw is None:
            if open_:
                return await self._open(tenant_id, room)
            raise WebinarError(P.NOT_FOUND, f"no webinar {room}")
        r = msgspec.json.decode(raw, type=_Room)
        return Webinar.from_dict(r.webinar), _Held(r.worker, r.audience, raw)

    async def _open(self, tenant_id: int, room: str) -> tuple[Webinar, _Held]:
        """A scheduled webinar's first member: its room comes to life from the schedule."""
        row = await self._schedule(tenant_id, room)
        if row is None:
            raise WebinarError(P.NOT_FOUND, f"no webinar {room}")
        if row.ended_at is not None:
            raise WebinarError(P.CONFLICT, "the webinar has ended")
        w = Webinar(room, row.title, f"u{row.presenter_id}", starts_at=row.starts_at, started=row.started_at is not None)
        r = _Held(await self._pick_worker(room), row.audience)
        await self._save(tenant_id, w, r)  # put if absent: when another hub opened it meanwhile, read that one
        return w, r

    async def _save(self, tenant_id: int, w: Webinar, r: _Held) -> None:
        """Write the room if nobody else did since it was read (else _Conflict); `r.raw` None: if absent."""
        new = msgspec.json.encode(_Room(w.to_dict(), r.worker, r.audience))
        if not await self.live.map_swap(rooms_map(tenant_id), w.id, r.raw, new):
            raise _Conflict(w.id)
        r.raw = new
        if w.ended:
            await self.live.map_delete(worker_rooms(r.worker), f"{tenant_id}:{w.id}")
        else:
            await self.live.map_put(worker_rooms(r.worker), f"{tenant_id}:{w.id}", b"1")

    def _lock(self, tenant_id: int, room: str) -> asyncio.Lock:
        return self._locks.setdefault(f"{tenant_id}:{room}", asyncio.Lock())

    # ------------------------------------------------------------ schedule and audience

    async def _schedule(self, tenant_id: int, room: str) -> WebinarSchedule | None:
        async with self.sessionmaker() as s:
            return (await s.execute(select(WebinarSchedule).where(
                WebinarSchedule.tenant_id == tenant_id, WebinarSchedule.room == room))).scalar_one_or_none()

    async def _mark(self, tenant_id: int, room: str, **values: float) -> None:
        async with self.sessionmaker() as s, s.begin():
            await s.execute(update(WebinarSchedule).where(
                WebinarSchedule.tenant_id == tenant_id, WebinarSchedule.room == room).values(**values))

    async def _invited(self, tenant_id: int, user_id: int, audience: dict[str, list[int]] | None) -> bool:
        if audience is None:
            return True
        async with self.sessionmaker() as s:
            return user_id in await audience_users(s, tenant_id, audience.get("queues", []), audience.get("teams", []))

    async def resolve_audience(self, tenant_id: int, a: Audience) -> dict[str, list[int]]:
        """Queue and team names to ids; an unknown one is refused (ApiError 422)."""
        async with self.sessionmaker() as s:
            queues = dict((await s.execute(select(Queue.name, Queue.id).where(
                Queue.tenant_id == tenant_id, Queue.name.in_(a.queues)))).tuples().all())
            teams = dict((await s.execute(select(Team.name, Team.id).where(
                Team.tenant_id == tenant_id, Team.name.in_(a.teams)))).tuples().all())
        missing = [f"queue {q!r}" for q in a.queues if q not in queues] + [f"team {t!r}" for t in a.teams if t not in teams]
        if missing:
            raise ApiError(422, "bad-request", f"no {', '.join(missing)} in this tenant")
        return {"queues": sorted(set(queues.values())), "teams": sorted(set(teams.values()))}

    async def _invite(self, tenant_id: int, room: str) -> None:
        """Tell the audience's agents (their desktops) about the webinar: scheduled, or live now."""
        async with self.sessionmaker() as s:
            found = (await s.execute(select(WebinarSchedule, User.display_name).join(
                User, User.id == WebinarSchedule.presenter_id).where(
                WebinarSchedule.tenant_id == tenant_id, WebinarSchedule.room == room))).first()
            if found is None or found[0].audience is None:
                return
            row, presenter = found
            users = await audience_users(s, tenant_id, row.audience.get("queues", []), row.audience.get("teams", []))
        users.discard(row.presenter_id)
        frame = P.encode(P.WebinarInvited(webinar=_listing(row, presenter, None)))
        if users:
            await self.live.publish([(stream_agent(tenant_id, u), frame) for u in sorted(users)])

    async def listings(self, p: Principal) -> list[P.WebinarListing]:
        """The webinars the user may join (or presents) that have not ended, soonest first."""
        now = self.clock()
        async with self.sessionmaker() as s:
            rows = (await s.execute(select(WebinarSchedule, User.display_name).join(
                User, User.id == WebinarSchedule.presenter_id).where(
                WebinarSchedule.tenant_id == p.tenant_id, WebinarSchedule.ended_at.is_(None),
                WebinarSchedule.starts_at > now - 2 * 86400).order_by(WebinarSchedule.starts_at))).tuples().all()
            queues = set((await s.execute(select(QueueMembership.queue_id).where(
                QueueMembership.tenant_id == p.tenant_id, QueueMembership.user_id == p.user_id))).scalars())
            teams = set((await s.execute(select(TeamMember.team_id).where(
                TeamMember.tenant_id == p.tenant_id, TeamMember.user_id == p.user_id))).scalars())
        out = []
        for row, presenter in rows:
            a = row.audience
            mine = row.presenter_id == p.user_id
            if row.starts_at + row.minutes * 60 + OVERRUN < now:
                continue  # long over, never ended by its presenter
            if mine or a is None or queues & set(a.get("queues", [])) or teams & set(a.get("teams", [])):
                out.append(_listing(row, presenter, p.user_id))
        return out

    # ------------------------------------------------------------ frames from members

    async def _changing(self, tenant_id: int, room: str, change: Callable[[], Awaitable[T]]) -> T:
        """Run `change` (read the room, decide, `_save` it, then act) under this hub's lock of the room,
        again from the read when another hub wrote the room meanwhile (`_save`'s compare-and-set)."""
        async with self._lock(tenant_id, room):
            for _ in range(SAVE_TRIES):
                try:
                    return await change()
                except _Conflict:
                    continue
        raise WebinarError(P.CONFLICT, "the webinar changed too often at once; try again")

    async def handle(self, p: Principal, member: str | None, frame: P.ClientMessage, follow: Callable[[str], None],
                     joined: Callable[[tuple[int, str, str] | None], None]) -> None:
        """One webinar frame of a connection; `member` is the room and member it joined, if any.
        Raises WebinarError (the hub replies with an error frame)."""
        t = p.tenant_id
        if isinstance(frame, P.WebinarJoin):
            if p.kind == "webinar" and p.room != frame.room:
                raise WebinarError(P.FORBIDDEN, "this invitation is for another webinar")
            me = member_of(p)

            async def join() -> Webinar:
                w, r = await self._load(t, frame.room, open_=True)
                invited = p.kind == "webinar" or me == w.presenter or await self._invited(t, p.user_id, r.audience)
                w.join(me, p.username, self.clock(), guest=p.kind == "webinar", invited=invited)
                await self._save(t, w, r)
                return w

            w = await self._changing(t, frame.room, join)
            follow(member_stream(t, frame.room, me))
            joined((t, frame.room, me))
            await self._announce(t, w)
            return
        if member is None:
            raise WebinarError(P.CONFLICT, "join a webinar first (webinar-join)")
        room, me = member.split(":", 1)

        async def change() -> None:
            w, r = await self._load(t, room)
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
                    await self.phone.command(r.worker, P.MediaCommand(
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
            await self._apply(t, w, r, now)
            if isinstance(frame, P.WebinarAction) and frame.action == "start":
                await self._mark(t, room, started_at=now)
                await self._invite(t, room)

        await self._changing(t, room, change)

    async def left(self, tenant_id: int, room: str, member: str) -> None:
        """The member's connection closed: it leaves (its media closes, its stay is recorded)."""
        async def leave() -> None:
            try:
                w, r = await self._load(tenant_id, room)
            except WebinarError:
                return
            w.leave(member, self.clock())
            await self._apply(tenant_id, w, r, self.clock())
            await self._command_closes(r.worker, tenant_id, room, member)

        await self._changing(tenant_id, room, leave)

    async def _command_closes(self, worker: str, tenant_id: int, room: str, member: str, publish_only: bool = False) -> None:
        sessions = [media_session(tenant_id, room, member, True)]
        if not publish_only:
            sessions.append(media_session(tenant_id, room, member, False))
        await self.phone.command(worker, *(P.MediaCommand(op="webinar-close", session_id=s) for s in sessions))

    async def _apply(self, t: int, w: Webinar, r: _Held, now: float, closed: str = "the webinar has ended",
                     first: list[tuple[str, bytes]] | None = None) -> None:
        """Save the room (raises _Conflict when another hub wrote it since it was read; nothing was done
        then), then carry out its commands, record ended stays, tell every member (`first` before all)."""
        commands = w.commands_out()
        await self._save(t, w, r)
        worker = r.worker
        out: list[tuple[str, bytes]] = list(first or [])
        for c in commands:
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
                    await self._mark(t, w.id, ended_at=now)
                    ended = P.encode(P.WebinarClosed(reason="ended", message=closed))
                    out += [(member_stream(t, w.id, m), ended) for m in w.members]
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
                                   speakers_muted=w.speakers_muted, starts_at=w.starts_at, started=w.started)
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

    async def worker_gone(self, worker: str) -> None:
        """The media worker died (its hub connection stayed closed past the grace, realtime/phone.py):
        every peer connection of its rooms is gone. Each room moves to another worker, its members told
        to offer again (`webinar-media-lost`, moved); with no worker left it ends, every stay recorded."""
        for key in await self.live.map_all(worker_rooms(worker)):
            tid, _, room = key.partition(":")
            t = int(tid)
            await self.live.map_delete(worker_rooms(worker), key)
            await self._changing(t, room, lambda t=t, room=room: self._move(t, room, worker))

    async def _move(self, t: int, room: str, gone: str) -> None:
        try:
            w, r = await self._load(t, room)
        except WebinarError:
            return
        if r.worker != gone or w.ended:
            return
        online = [m.id for m in w.online()]
        now = self.clock()
        try:
            r.worker = await self._pick_worker(room, gone=gone)
        except WebinarError:
            lost = P.WebinarMediaLost(room=room, moved=False, message="the media server carrying the webinar "
                                      "went away and no other is connected: the webinar ended")
            w.close(now)
            closed = "the webinar ended: its media server went away"
        else:
            lost = P.WebinarMediaLost(room=room, moved=True, message="the media server carrying the webinar "
                                      "went away; reconnecting to another")
            w.media_moved()
            closed = ""
        frame = P.encode(lost)
        await self._apply(t, w, r, now, closed=closed, first=[(member_stream(t, room, m), frame) for m in online])
        log.warning("webinar %s lost its media worker %s; %s", room, gone, f"moved to {r.worker}" if lost.moved else "ended")

    # ------------------------------------------------------------ REST

    async def attendance(self, tenant_id: int, room: str) -> list[dict[str, Any]]:
        async with self.sessionmaker() as s:
            rows = (await s.execute(
                select(WebinarAttendance).where(WebinarAttendance.tenant_id == tenant_id, WebinarAttendance.room == room)
                .order_by(WebinarAttendance.joined_at)
            )).scalars().all()
        return [dict(user_id=r.user_id, name=r.name, role=r.role, joined_at=r.joined_at, left_at=r.left_at,
                     seconds=round(r.left_at - r.joined_at, 3)) for r in rows]


def _listing(row: WebinarSchedule, presenter: str, reader: int | None) -> P.WebinarListing:
    return P.WebinarListing(
        room=row.room, title=row.title, presenter=presenter, starts_at=row.starts_at, minutes=row.minutes,
        opens_at=row.starts_at - OPEN_BEFORE, state="ended" if row.ended_at else "live" if row.started_at else "scheduled",
        presenting=reader == row.presenter_id,
    )


def _service(request: Request) -> Webinars:
    return request.app.state.ctx.hub.webinars


async def create_webinar(request: Request) -> Response:
    """Start a webinar now, or schedule it (`starts_at`, `minutes`), for an audience or anyone."""
    p = principal(request, *TRAINERS)
    body: CreateWebinar = await read_body(request, CreateWebinar)
    svc = _service(request)
    now = svc.clock()
    if not 1 <= len(body.title) <= 200:
        raise ApiError(422, "bad-request", "a webinar's title has 1 to 200 characters")
    if not 5 <= body.minutes <= 12 * 60:
        raise ApiError(422, "bad-request", "a webinar lasts 5 minutes to 12 hours")
    if body.starts_at is not None and not now - 60 <= body.starts_at <= now + 366 * 86400:
        raise ApiError(422, "bad-request", "a webinar is scheduled from now to a year ahead, not in the past")
    audience = None if body.audience is None else await svc.resolve_audience(p.tenant_id, body.audience)
    try:
        room, worker = await svc.create(p, body.title, body.starts_at, body.minutes, audience)
    except WebinarError as exc:
        raise ApiError(503, exc.code, str(exc)) from None
    return JSONResponse({"room": room, "title": body.title, "starts_at": body.starts_at or now, "minutes": body.minutes,
                         "worker": worker}, 201)


async def list_webinars(request: Request) -> Response:
    """The webinars the caller may join or presents, scheduled or live."""
    p = principal(request)
    return JSONResponse({"webinars": msgspec.to_builtins(await _service(request).listings(p)), "now": time.time()})


async def create_invite(request: Request) -> Response:
    p = principal(request, *TRAINERS)
    room = request.path_params["room"]
    svc = _service(request)
    row = await svc._schedule(p.tenant_id, room)
    if row is None:
        raise ApiError(404, "not-found", f"no webinar {room}")
    if row.presenter_id != p.user_id:
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
    Route("/api/webinars", list_webinars),
    Route("/api/webinars/{room}/invites", create_invite, methods=["POST"]),
    Route("/api/webinars/{room}/attendance", attendance),
]
