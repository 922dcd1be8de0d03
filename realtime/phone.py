"""Softphones and calls between agents: the hub's side of the media workers.

Media workers (webrtc/worker.py) are websocket clients of the hub with a
worker token. Each follows the stream `worker:<name>`: the hub sends it
`media-commands` there, numbered and replayable like every stream, so a
worker that reconnects (to any hub) misses nothing. What a worker reports
(`media-answer`, `media-failed`, `media-closed`, `media-check`) is published
on the agent's own stream. Every hop goes through the live store, so the
agent, the worker and the hub that handles a frame may each be on a
different hub.

Live state (in the live store, shared by all hubs):
- map `media-workers`: worker name → its capacity, the hub and connection that
  hold it;
- map `worker-sessions:<name>`: session id → "tenant:agent", the sessions
  placed on that worker (for cleaning up when it goes away);
- map `phones:<tenant>`: agent id → the worker carrying the agent's softphone;
- map `calls:<tenant>`: call id → the call, while it lasts. An ended call is
  written to the store (call_records, direction "internal") and removed.

A call is mixed on one worker (`Call.mix`): the caller agent's, or the worker of
a caller that agent holds over a link (a consult, so that a conference needs
no move). A party whose softphone is on another worker joins that mix over an
audio link (realtime/medialinks.py). Placement still puts a tenant's
softphones together on the worker that already carries most of them while it
has room, so most calls need no link.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import logging
import re
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import msgspec
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from realtime import protocol as P
from realtime.directory import Directory
from realtime.live import LiveStore, stream_agent
from realtime.trunks import dial_uris, outbound_trunk, trunk_key
from store.repos import TenantRepo, tenant_by_id

log = logging.getLogger("unidesk.phone")

WORKERS = "media-workers"


def stream_worker(name: str) -> str:
    return f"worker:{name}"


def worker_sessions(name: str) -> str:
    return f"worker-sessions:{name}"


def phones_map(tenant_id: int) -> str:
    return f"phones:{tenant_id}"


def calls_map(tenant_id: int) -> str:
    return f"calls:{tenant_id}"


def session_id(tenant_id: int, agent_id: int) -> str:
    return f"{tenant_id}-{agent_id}"


def parse_session(sid: str) -> tuple[int, int] | None:
    try:
        t, a = sid.split("-", 1)
        return int(t), int(a)
    except ValueError:
        return None


class PhoneError(Exception):
    """A request that cannot be served; `code` is the protocol's error code."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


class WorkerInfo(msgspec.Struct, kw_only=True):
    name: str
    capacity: int
    # Which connection holds the worker: a stale holder's disconnect must not remove a reconnected worker.
    conn: str
    # Whether it has a SIP user agent (only such a worker can register the trunks).
    sip: bool = False
    # Where it takes audio links from other workers ("host:port"; empty: none).
    link: str = ""


class Call(msgspec.Struct, kw_only=True):
    id: str
    caller: int
    callee: int
    status: str  # ringing, connected
    started_at: float
    answered_at: float | None = None
    held: list[int] = []
    muted: list[int] = []
    digits: list[str] = []
    hold_started: dict[str, float] = {}
    held_seconds: float = 0.0
    # A call to a number outside (over a SIP trunk): `callee` is EXTERNAL, the far end is the worker's
    # leg `leg` on `worker`.
    external: str | None = None
    leg: str | None = None
    worker: str | None = None
    # A caller (contact id) joined to this call in a conference (realtime/transfers.py).
    conference: str | None = None
    # The worker mixing a call between agents (parties elsewhere join it over a link).
    mix: str | None = None


# The callee of a call to a number outside.
EXTERNAL = 0
OUT = "sip-out"
NUMBER = re.compile(r"^\+?[0-9*#]{2,32}$")


_worker_dec = msgspec.json.Decoder(WorkerInfo)
_call_dec = msgspec.json.Decoder(Call)
_enc = msgspec.json.Encoder()

RING_SECONDS = 30.0
# How long a call waits for a softphone whose peer connection closed (a reloaded page) to come back.
RECONNECT_GRACE = 15.0
# How long a media worker whose hub connection closed may take to come back before its calls are lost.
WORKER_GRACE = 3.0


@dataclass
class _Party:
    id: int
    username: str
    display_name: str


class PhoneService:
    def __init__(
        self,
        live: LiveStore,
        sessionmaker: async_sessionmaker[AsyncSession],
        directory: Directory,
        clock: Callable[[], float] = time.time,
        on_busy: Callable[[int, int, bool], Awaitable[object]] | None = None,
    ) -> None:
        self.live = live
        self.sessionmaker = sessionmaker
        self.directory = directory
        self.clock = clock
        # Told when an agent starts or ends its calls (the ACD offers nothing meanwhile).
        self.on_busy = on_busy
        # Asked before an agent places a call (raises PhoneError while the agent talks to a caller unheld),
        # and told when a call has ended (a conference with a caller falls back to the agent and the caller).
        self.consult_guard: Callable[[int, int], Awaitable[None]] | None = None
        self.on_ended: Callable[[int, Call], Awaitable[None]] | None = None
        self._timers: set[asyncio.Task[None]] = set()
        # Desk phones (realtime/deskphones.py): an agent who takes calls on one is rung there by other agents.
        self.desk: Any = None
        # Audio links between workers (realtime/medialinks.py, set by SipCalls).
        self.links: Any = None
        # Callers over SIP (realtime/sipcalls.py): `on_placed(tenant, agent, worker)` is told before the offer of
        # a softphone placed anew (it may have come back elsewhere mid-call); `on_back(worker, tenant, agent)`
        # routes its callers again on its answer and returns the legs it hears directly on `worker`.
        self.on_placed: Callable[[int, int, str], Awaitable[None]] | None = None
        self.on_back: Callable[[str, int, int], Awaitable[list[str]]] | None = None

    # ------------------------------------------------------------ workers

    async def worker_hello(self, name: str, conn_id: str, hello: P.WorkerHello) -> None:
        info = WorkerInfo(name=name, capacity=hello.capacity, conn=conn_id, sip=hello.sip, link=hello.link)
        await self.live.map_put(WORKERS, name, _enc.encode(info))
        # Sessions the worker no longer carries (it restarted) are lost for their agents.
        placed = await self.live.map_all(worker_sessions(name))
        carried = set(hello.sessions)
        for sid in placed:
            if sid not in carried:
                await self._session_lost(name, sid, "the media worker restarted")
        log.info("media worker %s ready", name, extra={"ud_capacity": hello.capacity})

    async def worker_away(self, name: str, conn_id: str) -> bool:
        """A worker's connection closed: no new softphones go to it. True when it should be
        declared gone unless it says hello again within the grace period (`worker_gone`)."""
        raw = await self.live.map_get(WORKERS, name)
        if raw is None:
            return False
        info = _worker_dec.decode(raw)
        if info.conn != conn_id:
            return False  # it reconnected already
        info.conn = ""
        await self.live.map_put(WORKERS, name, _enc.encode(info))
        return True

    async def worker_gone(self, name: str) -> bool:
        """Forget a worker that stayed away; its sessions are lost for their agents.
        False when it came back meanwhile."""
        raw = await self.live.map_get(WORKERS, name)
        if raw is None or _worker_dec.decode(raw).conn != "":
            return False
        await self.live.map_delete(WORKERS, name)
        for sid in await self.live.map_all(worker_sessions(name)):
            await self._session_lost(name, sid, "the media worker went away")
        log.warning("media worker %s went away", name)
        return True

    async def _session_lost(self, worker: str, sid: str, reason: str, grace: float = 0.0) -> None:
        """The session's media is gone. Its calls end now, or after `grace` seconds unless the
        agent's softphone offers again meanwhile (a reloaded page, a network change)."""
        await self.live.map_delete(worker_sessions(worker), sid)
        parsed = parse_session(sid)
        if parsed is None:
            return
        tid, aid = parsed
        entry = await self.live.map_get(phones_map(tid), str(aid))
        if entry is not None and _phone_worker(entry) == worker:
            await self.live.map_delete(phones_map(tid), str(aid))
        state = P.PhoneState(state="lost", reason=reason)
        if grace and await self._calls_of(tid, aid):
            state.reason = f"{reason}; reconnect within {grace:.0f} s to keep the call"
            task = asyncio.create_task(self._end_unless_back(tid, aid, grace))
            self._timers.add(task)
            task.add_done_callback(self._timers.discard)
        else:
            await self._end_calls_of(tid, aid, "media-lost", None)
        await self.live.publish([(stream_agent(tid, aid), P.encode(state))])

    async def _end_unless_back(self, tenant_id: int, agent_id: int, grace: float) -> None:
        await asyncio.sleep(grace)
        try:
            if await self._worker_of(tenant_id, agent_id) is None:
                await self._end_calls_of(tenant_id, agent_id, "media-lost", None)
        except Exception:  # the store is away; the calls end when a party hangs up
            log.exception("ending the calls of agent %s after its softphone was lost", agent_id)

    async def worker_names(self, sip: bool = False) -> list[str]:
        """The media workers connected now (`sip`: those with a SIP user agent)."""
        return sorted(name for name, w in (await self._workers()).items() if w.conn and (w.sip or not sip))

    async def _workers(self) -> dict[str, WorkerInfo]:
        return {k: _worker_dec.decode(v) for k, v in (await self.live.map_all(WORKERS)).items()}

    async def _place(self, tenant_id: int) -> str:
        workers = await self._workers()
        if not workers:
            raise PhoneError(P.NO_MEDIA_WORKER, "no media worker is connected; calls are not possible right now")
        phones = await self.live.map_all(phones_map(tenant_id))
        load: dict[str, int] = {}
        for name in workers:
            load[name] = len(await self.live.map_all(worker_sessions(name)))
        mine: dict[str, int] = {}
        for raw in phones.values():
            w = _phone_worker(raw)
            mine[w] = mine.get(w, 0) + 1
        room = [w for w in workers.values() if w.conn and load[w.name] < w.capacity]
        if not room:
            raise PhoneError(P.NO_MEDIA_WORKER, "every media worker is full; try again shortly")
        # Together with the tenant's other softphones (calls between them need one worker), then the least loaded.
        best = max(room, key=lambda w: (mine.get(w.name, 0), -load[w.name], w.name))
        return best.name

    async def link_address(self, worker: str) -> str:
        """Where a connected worker takes audio links from other workers ("" when it cannot)."""
        raw = await self.live.map_get(WORKERS, worker)
        info = _worker_dec.decode(raw) if raw is not None else None
        return info.link if info is not None and info.conn else ""

    async def command(self, worker: str, *commands: P.MediaCommand) -> None:
        """Send commands to a media worker (in order, resumable: they travel on its stream)."""
        await self._command(worker, *commands)

    async def worker_of(self, tenant_id: int, agent_id: int) -> str | None:
        """The worker carrying the agent's softphone, if it has one."""
        return await self._worker_of(tenant_id, agent_id)

    async def _command(self, worker: str, *commands: P.MediaCommand) -> None:
        await self.live.publish([(stream_worker(worker), P.encode(P.MediaCommands(commands=list(commands))))])

    async def _worker_of(self, tenant_id: int, agent_id: int) -> str | None:
        raw = await self.live.map_get(phones_map(tenant_id), str(agent_id))
        return _phone_worker(raw) if raw is not None else None

    # ------------------------------------------------------------ the agent's softphone

    async def offer(self, tenant_id: int, agent_id: int, offer_id: str, sdp: str) -> None:
        sid = session_id(tenant_id, agent_id)
        fingerprint = dtls_fingerprint(sdp)
        raw = await self.live.map_get(phones_map(tenant_id), str(agent_id))
        worker = _phone_worker(raw) if raw is not None else None
        cmds = []
        placed = worker is None or worker not in await self._workers()
        if placed:
            worker = await self._place(tenant_id)
            await self.live.map_put(worker_sessions(worker), sid, f"{tenant_id}:{agent_id}".encode())
        elif raw is not None and fingerprint and _phone_fingerprint(raw) != fingerprint:
            # Another page or device (a reload the worker has not noticed yet): a new peer connection,
            # not a renegotiation of the old one. Routing of its calls is restored on the answer.
            cmds.append(P.MediaCommand(op="close", session_id=sid))
        known = fingerprint or (_phone_fingerprint(raw) if raw is not None else "")
        await self.live.map_put(phones_map(tenant_id), str(agent_id), f"{worker}\n{known}".encode())
        if placed:
            # Back on another worker mid-call: its links and callers follow it there first.
            if self.links is not None:
                await self.links.rehome(tenant_id, agent_id, worker)
            if self.on_placed is not None:
                await self.on_placed(tenant_id, agent_id, worker)
            await self._follow_out(tenant_id, agent_id, worker)
        cmds.append(P.MediaCommand(op="offer", session_id=sid, offer_id=offer_id, sdp=sdp))
        await self._command(worker, *cmds)

    async def _follow_out(self, tenant_id: int, agent_id: int, worker: str) -> None:
        """The agent's softphone was placed on `worker` anew (before its offer): a call to a number outside
        stays on the worker that dialled it (its SIP leg cannot move), so one elsewhere is linked to `worker`
        like a caller, unless the agent's leg is there already (a caller's link or a join brought it)."""
        if self.links is None:
            return
        for c in await self._calls_of(tenant_id, agent_id):
            if not c.external or c.worker is None or c.worker == worker:
                continue
            if await self.links.present(tenant_id, agent_id, c.worker):
                continue
            if not await self.links.open(tenant_id, agent_id, c.id, c.worker, c.id, worker, connect=False):
                log.warning("call %s to %s: the agent's softphone came back on %s, which cannot be linked to %s",
                            c.id, c.external, worker, c.worker)

    async def close(self, tenant_id: int, agent_id: int) -> None:
        worker = await self._worker_of(tenant_id, agent_id)
        if worker is None:
            raise PhoneError(P.NO_PHONE, "there is no softphone session to close")
        await self._end_calls_of(tenant_id, agent_id, "hangup", agent_id)
        sid = session_id(tenant_id, agent_id)
        await self.live.map_delete(phones_map(tenant_id), str(agent_id))
        await self.live.map_delete(worker_sessions(worker), sid)
        await self._command(worker, P.MediaCommand(op="close", session_id=sid))
        await self.live.publish([(stream_agent(tenant_id, agent_id), P.encode(P.PhoneState(state="closed")))])

    async def test_tone(self, tenant_id: int, agent_id: int, tone_hz: int) -> None:
        worker = await self._need_phone(tenant_id, agent_id)
        await self._command(worker, P.MediaCommand(op="tone", session_id=session_id(tenant_id, agent_id), tone_hz=tone_hz))

    async def _need_phone(self, tenant_id: int, agent_id: int) -> str:
        worker = await self._worker_of(tenant_id, agent_id)
        if worker is None:
            raise PhoneError(P.NO_PHONE, "the softphone is not connected")
        return worker

    # ------------------------------------------------------------ what workers report

    async def _check_owner(self, worker: str, sid: str) -> tuple[int, int]:
        parsed = parse_session(sid)
        if parsed is None or (await self._worker_of(*parsed)) != worker:
            raise PhoneError(P.NOT_FOUND, f"session {sid!r} is not placed on this worker")
        return parsed

    async def media_answer(self, worker: str, m: P.MediaAnswer) -> None:
        tid, aid = await self._check_owner(worker, m.session_id)
        frame = P.PhoneAnswer(offer_id=m.offer_id, sdp=m.sdp, codec=m.codec)
        await self.live.publish([(stream_agent(tid, aid), P.encode(frame))])
        await self._restore_routing(worker, tid, aid)

    @staticmethod
    def _other(c: Call, me: int) -> int:
        return c.callee if me == c.caller else c.caller

    @staticmethod
    def _session(tenant_id: int, c: Call, who: int) -> str:
        """The media worker's leg of a party: an agent's softphone, or the SIP leg of the far end."""
        if who == EXTERNAL:
            assert c.leg is not None, "an external call has a leg"
            return c.leg
        return session_id(tenant_id, who)

    async def _restore_routing(self, worker: str, tenant_id: int, agent_id: int) -> None:
        """Route the agent's connected calls again: a softphone that came back (new peer
        connection) has a fresh leg, maybe on another worker; for one that renegotiated, this changes nothing."""
        me = session_id(tenant_id, agent_id)
        held, live = [], []
        # Legs the softphone hears directly on this worker (with those of its links, all at once).
        direct: list[str] = []
        for c in await self._calls_of(tenant_id, agent_id):
            if c.status != "connected":
                continue
            other = self._other(c, agent_id)
            there = c.worker if other == EXTERNAL else (c.mix or await self._worker_of(tenant_id, other))
            if there is None:
                continue  # the other party is not back yet
            if there != worker and (self.links is None or not (
                # A number outside: its SIP leg stays where it was dialled, linked to this worker (_follow_out).
                await self.links.present(tenant_id, agent_id, there) if other == EXTERNAL
                else c.mix and await self.links.join(tenant_id, agent_id, there, c.id)
            )):
                continue  # the other party is not back yet (or the call cannot reach this worker)
            if c.conference:
                continue  # routed with its caller's conference (below)
            peer = self._session(tenant_id, c, other)
            cmds = [P.MediaCommand(op="connect", session_id=me, peer=peer)]
            for holder in c.held:
                a, b = (me, peer) if holder == agent_id else (peer, me)
                cmds.append(P.MediaCommand(op="hold", session_id=a, peer=b, on=True))
            if not c.held:
                cmds.append(P.MediaCommand(op="mute", session_id=me, on=agent_id in c.muted))
            if there != worker:
                # Mixed elsewhere: the agent's leg there (a link's) takes the call's routing again.
                await self._command(there, *cmds)
                continue
            (held if c.held else live).extend(cmds)
            if not c.held:
                direct.append(peer)
        if held or live:
            await self._command(worker, *held, *live)
        if self.on_back is not None:
            # Its callers (and the conferences of its calls) are routed again where they are.
            direct += await self.on_back(worker, tenant_id, agent_id)
        if self.links is not None:
            # Calls and callers mixed on another worker reach this one over links: their legs here hear it again.
            if cmds := await self.links.reattach(tenant_id, agent_id, worker, direct):
                await self._command(worker, *cmds)

    async def media_failed(self, worker: str, m: P.MediaFailed) -> None:
        tid, aid = await self._check_owner(worker, m.session_id)
        if m.code == "no-session":
            await self.live.map_delete(phones_map(tid), str(aid))
            await self.live.map_delete(worker_sessions(worker), m.session_id)
        frame = P.PhoneState(state="failed", reason=f"{m.code}: {m.message}", offer_id=m.offer_id)
        await self.live.publish([(stream_agent(tid, aid), P.encode(frame))])

    async def media_closed(self, worker: str, m: P.MediaClosed) -> None:
        await self._check_owner(worker, m.session_id)
        await self._session_lost(worker, m.session_id, m.reason, grace=RECONNECT_GRACE)

    async def media_check(self, worker: str, m: P.MediaCheck) -> None:
        tid, aid = await self._check_owner(worker, m.session_id)
        frame = P.PhoneCheck(frequency=round(m.frequency, 1), level_db=round(m.level_db, 1))
        await self.live.publish([(stream_agent(tid, aid), P.encode(frame))])

    # ------------------------------------------------------------ calls between agents

    async def _calls(self, tenant_id: int) -> dict[str, Call]:
        return {k: _call_dec.decode(v) for k, v in (await self.live.map_all(calls_map(tenant_id))).items()}

    async def _call(self, tenant_id: int, call_id: str) -> Call | None:
        raw = await self.live.map_get(calls_map(tenant_id), call_id)
        return _call_dec.decode(raw) if raw is not None else None

    async def _calls_of(self, tenant_id: int, agent_id: int) -> list[Call]:
        calls = [c for c in (await self._calls(tenant_id)).values() if agent_id in (c.caller, c.callee)]
        return sorted(calls, key=lambda c: c.started_at)

    async def calls_between(self, tenant_id: int, agent_id: int) -> list[Call]:
        """The agent's calls with other agents and numbers outside, oldest first."""
        return await self._calls_of(tenant_id, agent_id)

    async def calls_of(self, tenant_id: int, agent_id: int) -> list[P.CallView]:
        return [await self._view(tenant_id, c, agent_id) for c in await self._calls_of(tenant_id, agent_id)]

    async def _party(self, tenant_id: int, user_id: int) -> _Party:
        d = await self.directory.get(tenant_id)
        u = d.users.get(user_id) if d else None
        return _Party(user_id, u.username if u else "?", u.display_name if u else "?")

    async def _view(
        self, tenant_id: int, c: Call, me: int, ended: str | None = None, by: int | None = None
    ) -> P.CallView:
        other = self._other(c, me)
        peer = (
            _Party(EXTERNAL, c.external, c.external) if other == EXTERNAL and c.external else await self._party(tenant_id, other)
        )
        by_name = (await self._party(tenant_id, by)).username if by else None
        return P.CallView(
            id=c.id, direction="outbound" if me == c.caller else "inbound",
            status="ended" if ended else ("connected" if c.status == "connected" else "ringing"),
            peer=peer.username, peer_name=peer.display_name, started_at=c.started_at, answered_at=c.answered_at,
            ended_at=self.clock() if ended else None, end_reason=ended, ended_by=by_name,
            held=me in c.held, held_by_peer=other in c.held, muted=me in c.muted, conference=c.conference,
        )

    async def _announce(self, tenant_id: int, c: Call, ended: str | None = None, by: int | None = None) -> None:
        await self.live.publish(
            [
                (stream_agent(tenant_id, who), P.encode(P.CallChanged(call=await self._view(tenant_id, c, who, ended, by))))
                for who in (c.caller, c.callee)
                if who != EXTERNAL
            ]
        )

    async def _save(self, tenant_id: int, c: Call) -> None:
        await self.live.map_put(calls_map(tenant_id), c.id, _enc.encode(c))

    async def dial(self, tenant_id: int, agent_id: int, to: str) -> str:
        d = await self.directory.get(tenant_id)
        callee = next((u for u in d.users.values() if u.username == to), None) if d else None
        if callee is None and NUMBER.match(to):
            return await self._dial_out(tenant_id, agent_id, to)
        if d is None or callee is None or not d.is_agent(callee.id):
            raise PhoneError(P.NOT_FOUND, f"no agent {to!r} in this tenant")
        if callee.id == agent_id:
            raise PhoneError(P.BAD_FRAME, "an agent cannot call itself")
        mine = await self._home(tenant_id, agent_id)
        # An agent on a desk phone is rung there (from the worker it is registered with).
        desk = await self.desk.takes_agent_call(tenant_id, callee.id, to, mine) if self.desk is not None else None
        theirs = desk or await self._worker_of(tenant_id, callee.id)
        if theirs is None:
            raise PhoneError(P.NO_PHONE, f"{to} has no softphone connected")
        if theirs != mine and (self.links is None or not await self.link_address(mine) or not await self.link_address(theirs)):
            raise PhoneError(P.NO_MEDIA_WORKER, f"{to}'s softphone is on another media worker, and the two cannot be linked")
        await self._may_call(tenant_id, agent_id)
        if await self._calls_of(tenant_id, callee.id):
            raise PhoneError(P.BUSY, f"{to} is on another call")
        c = Call(id=uuid.uuid4().hex[:16], caller=agent_id, callee=callee.id, status="ringing", started_at=self.clock(), mix=mine)
        await self._save(tenant_id, c)
        if self.on_busy is not None:
            for who in (c.caller, c.callee):
                await self.on_busy(tenant_id, who, True)
        await self._announce(tenant_id, c)
        if desk:
            await self.desk.ring_agent_call(tenant_id, c, desk)
        return c.id

    async def _home(self, tenant_id: int, agent_id: int) -> str:
        """The worker that mixes the agent's calls: that of a caller the agent holds over a link, else the
        softphone's (realtime/medialinks.py)."""
        mine = await self._need_phone(tenant_id, agent_id)
        return (await self.links.home(tenant_id, agent_id) or mine) if self.links is not None else mine

    async def _may_call(self, tenant_id: int, agent_id: int) -> None:
        if self.consult_guard is not None:
            await self.consult_guard(tenant_id, agent_id)
        # A second call is a consult: allowed while every other call of the agent is held by the agent.
        for other in await self._calls_of(tenant_id, agent_id):
            if other.status != "connected" or agent_id not in other.held:
                raise PhoneError(P.BUSY, "you are on a call already; hold it first to consult")

    async def _dial_out(self, tenant_id: int, agent_id: int, number: str) -> str:
        """A call to a number outside, from the agent's softphone worker, through the tenant's trunk (`route_out`)."""
        uri, from_uri, via = await self.route_out(tenant_id, number)
        worker = await self._home(tenant_id, agent_id)
        await self._may_call(tenant_id, agent_id)
        c = Call(
            id="o" + uuid.uuid4().hex[:15], caller=agent_id, callee=EXTERNAL, status="ringing",
            started_at=self.clock(), external=number, worker=worker,
        )
        c.leg = f"sip-{c.id}"
        await self._save(tenant_id, c)
        await self.live.map_put(OUT, c.id, str(tenant_id).encode())
        if self.on_busy is not None:
            await self.on_busy(tenant_id, agent_id, True)
        await self._command(
            worker, P.MediaCommand(op="sip-dial", session_id=c.id, uri=uri, from_uri=from_uri, trunk=via)
        )
        await self._announce(tenant_id, c)
        return c.id

    async def _out_call(self, worker: str, call_id: str) -> tuple[int, Call] | None:
        raw = await self.live.map_get(OUT, call_id)
        if raw is None:
            return None
        tenant_id = int(raw)
        c = await self._call(tenant_id, call_id)
        if c is None or c.worker != worker:
            return None
        return tenant_id, c

    async def sip_progress(self, worker: str, m: P.SipProgress) -> bool:
        """An outbound call rings or was answered; False when it is not one of ours."""
        found = await self._out_call(worker, m.call_id)
        if found is None:
            return False
        tenant_id, c = found
        me = session_id(tenant_id, c.caller)
        if m.state == "ringing":
            await self._command(worker, P.MediaCommand(op="ringback", session_id=me, on=True))
            return True
        if c.status == "connected":
            return True
        c.status = "connected"
        c.answered_at = self.clock()
        await self._save(tenant_id, c)
        await self._command(
            worker,
            P.MediaCommand(op="ringback", session_id=me, on=False),
            P.MediaCommand(op="connect", session_id=me, peer=c.leg),
            P.MediaCommand(op="mute", session_id=me, on=False),
        )
        await self._announce(tenant_id, c)
        return True

    async def sip_ended(self, worker: str, m: P.SipEnded) -> bool:
        """The far end of an outbound call hung up or refused; False when it is not one of ours."""
        found = await self._out_call(worker, m.call_id)
        if found is None:
            return False
        tenant_id, c = found
        reason = _end_reason(m.code) if c.status != "connected" else "hangup"
        await self._end(tenant_id, c, reason, None, sip_code=m.code)
        return True

    async def _own_call(self, tenant_id: int, agent_id: int, call_id: str) -> Call:
        c = await self._call(tenant_id, call_id)
        if c is None or agent_id not in (c.caller, c.callee):
            raise PhoneError(P.NOT_FOUND, f"no call {call_id} of yours")
        return c

    async def answer(self, tenant_id: int, agent_id: int, call_id: str) -> None:
        c = await self._own_call(tenant_id, agent_id, call_id)
        if c.callee != agent_id or c.status != "ringing" or c.external:
            raise PhoneError(P.CONFLICT, "only a ringing call to you can be answered")
        worker = c.mix or await self._need_phone(tenant_id, agent_id)
        for who in (c.caller, c.callee):
            if self.links is not None and not await self.links.join(tenant_id, who, worker, c.id):
                raise PhoneError(P.NO_MEDIA_WORKER, "the two softphones' media workers cannot be linked")
        c.status = "connected"
        c.answered_at = self.clock()
        await self._save(tenant_id, c)
        await self._command(
            worker,
            P.MediaCommand(op="connect", session_id=session_id(tenant_id, c.caller), peer=session_id(tenant_id, c.callee)),
            # The microphone's mute follows the call that is live: a consult starts unmuted.
            P.MediaCommand(op="mute", session_id=session_id(tenant_id, c.caller), on=False),
            P.MediaCommand(op="mute", session_id=session_id(tenant_id, c.callee), on=False),
        )
        await self._announce(tenant_id, c)

    async def hangup(self, tenant_id: int, agent_id: int, call_id: str) -> None:
        c = await self._own_call(tenant_id, agent_id, call_id)
        if c.status == "ringing":
            reason = "cancelled" if agent_id == c.caller else "declined"
        else:
            reason = "hangup"
        await self._end(tenant_id, c, reason, agent_id)

    async def ring_timeout(self, tenant_id: int, call_id: str) -> None:
        c = await self._call(tenant_id, call_id)
        if c is not None and c.status == "ringing":
            await self._end(tenant_id, c, "no-answer", None)

    async def hold(self, tenant_id: int, agent_id: int, call_id: str, on: bool) -> None:
        c = await self._own_call(tenant_id, agent_id, call_id)
        if c.status != "connected":
            raise PhoneError(P.CONFLICT, "only a connected call can be held")
        if c.conference:
            raise PhoneError(P.CONFLICT, "a call in a conference cannot be held; hang it up to leave the conference")
        # A call outside is routed where its SIP leg is (the agent's leg there: its softphone, or a link's).
        worker = c.worker if c.external else (c.mix or await self._need_phone(tenant_id, agent_id))
        other = self._other(c, agent_id)
        if not on:
            for busy in await self._calls_of(tenant_id, agent_id):
                if busy.id != c.id and agent_id not in busy.held:
                    raise PhoneError(P.CONFLICT, "end or hold your other call before resuming this one")
        now = self.clock()
        if on and agent_id not in c.held:
            c.held.append(agent_id)
            c.hold_started[str(agent_id)] = now
        elif not on and agent_id in c.held:
            c.held.remove(agent_id)
            c.held_seconds += now - c.hold_started.pop(str(agent_id), now)
        await self._save(tenant_id, c)
        me_s, other_s = session_id(tenant_id, agent_id), self._session(tenant_id, c, other)
        cmds = [P.MediaCommand(op="hold", session_id=me_s, peer=other_s, on=on)]
        if not on and other in c.held:
            # Resuming reconnects both ways; the other party's own hold still stands.
            cmds.append(P.MediaCommand(op="hold", session_id=other_s, peer=me_s, on=True))
        if not on:
            cmds.append(P.MediaCommand(op="mute", session_id=me_s, on=agent_id in c.muted))
        await self._command(worker, *cmds)
        await self._announce(tenant_id, c)

    async def mute(self, tenant_id: int, agent_id: int, call_id: str, on: bool) -> None:
        c = await self._own_call(tenant_id, agent_id, call_id)
        worker = await self._need_phone(tenant_id, agent_id)
        worker = c.mix if c.mix and c.status == "connected" else (c.worker if c.external else worker)
        if on and agent_id not in c.muted:
            c.muted.append(agent_id)
        elif not on and agent_id in c.muted:
            c.muted.remove(agent_id)
        await self._save(tenant_id, c)
        await self._command(worker, P.MediaCommand(op="mute", session_id=session_id(tenant_id, agent_id), on=on))
        await self._announce(tenant_id, c)

    async def dtmf(self, tenant_id: int, agent_id: int, call_id: str, digits: str) -> None:
        c = await self._own_call(tenant_id, agent_id, call_id)
        if c.status != "connected":
            raise PhoneError(P.CONFLICT, "digits need a connected call")
        c.digits.append(digits)
        await self._save(tenant_id, c)
        other = self._other(c, agent_id)
        if other == EXTERNAL:
            assert c.worker is not None
            await self._command(c.worker, P.MediaCommand(op="sip-dtmf", session_id=c.id, digits=digits))
            return
        await self.live.publish([(stream_agent(tenant_id, other), P.encode(P.CallDigits(call_id=c.id, digits=digits)))])

    async def _end_calls_of(self, tenant_id: int, agent_id: int, reason: str, by: int | None) -> None:
        for c in await self._calls_of(tenant_id, agent_id):
            await self._end(tenant_id, c, reason, by)

    async def _end(
        self, tenant_id: int, c: Call, reason: str, by: int | None, sip_code: int | None = None
    ) -> None:
        now = self.clock()
        for who, since in c.hold_started.items():
            c.held_seconds += now - since
        await self.live.map_delete(calls_map(tenant_id), c.id)
        if c.external:
            await self.live.map_delete(OUT, c.id)
            assert c.worker is not None
            cmds = [P.MediaCommand(op="ringback", session_id=session_id(tenant_id, c.caller), on=False)]
            if sip_code is None:
                # Ended on our side: the far end gets a BYE (or a CANCEL while it rings).
                cmds.append(P.MediaCommand(op="sip-hangup", session_id=c.id, code=200))
            await self._command(c.worker, *cmds)
        if c.status == "connected":
            worker = c.worker if c.external else (
                c.mix or await self._worker_of(tenant_id, c.caller) or await self._worker_of(tenant_id, c.callee))
            if worker is not None:
                # Only the parties with no other call are disconnected: a consulting agent's held call keeps its music.
                rest = {who: await self._calls_of(tenant_id, who) for who in (c.caller, c.callee) if who != EXTERNAL}
                await self._command(
                    worker,
                    *(
                        P.MediaCommand(op="disconnect", session_id=session_id(tenant_id, who))
                        for who, calls in rest.items()
                        if not calls and who != EXTERNAL
                    ),
                    *(
                        P.MediaCommand(op="unlisten", session_id=session_id(tenant_id, who),
                                       peer=self._session(tenant_id, c, self._other(c, who)))
                        for who, calls in rest.items()
                        if calls and who != EXTERNAL
                    ),
                )
        if c.mix and self.links is not None:
            for who in (c.caller, c.callee):
                await self.links.leave(tenant_id, who, c.mix, c.id)
        if c.external and self.links is not None:
            await self.links.close(c.worker, c.id, c.id)  # a softphone that moved away from its SIP leg
        caller = await self._party(tenant_id, c.caller)
        callee = c.external if c.external else (await self._party(tenant_id, c.callee)).username
        kind = "outbound" if c.external else "internal"
        async with self.sessionmaker() as s, s.begin():
            await TenantRepo(s, tenant_id).add_call_record(
                c.id, c.started_at, direction=kind, caller=caller.username, callee=callee,
                agent_id=c.caller if c.external else c.callee, answered_at=c.answered_at, ended_at=now,
                outcome="answered" if c.answered_at else reason,
            )
            row = await TenantRepo(s, tenant_id).call_record(c.id)
            assert row is not None
            row.data = {
                "kind": kind, "end_reason": reason, "ended_by": (await self._party(tenant_id, by)).username if by else None,
                "held_seconds": round(c.held_seconds, 3), "digits": "".join(c.digits),
                **({"sip_code": sip_code} if sip_code is not None else {}),
            }
        await self._announce(tenant_id, c, ended=reason, by=by)
        if self.on_busy is not None:
            for who in (c.caller, c.callee):
                if who != EXTERNAL and not await self._calls_of(tenant_id, who):
                    await self.on_busy(tenant_id, who, False)
        if self.on_ended is not None:
            await self.on_ended(tenant_id, c)
        if self.desk is not None:
            await self.desk.agent_call_ended(tenant_id, c, reason)

    # ------------------------------------------------------------ transfers (realtime/transfers.py)

    async def consult_call(self, tenant_id: int, agent_id: int, call_id: str) -> Call:
        """The agent's answered call `call_id` (a consult), or PhoneError."""
        c = await self._own_call(tenant_id, agent_id, call_id)
        if c.status != "connected":
            raise PhoneError(P.CONFLICT, "the consult call has not been answered yet")
        if c.held:
            raise PhoneError(P.CONFLICT, "resume the consult call first")
        return c

    async def save(self, tenant_id: int, c: Call) -> None:
        await self._save(tenant_id, c)
        await self._announce(tenant_id, c)

    async def end(self, tenant_id: int, c: Call, reason: str, by: int | None) -> None:
        await self._end(tenant_id, c, reason, by)

    async def hand_over(self, tenant_id: int, c: Call, agent_id: int) -> None:
        """The agent leaves an answered call to a number outside whose far end now talks to a caller
        (an attended transfer): the call ends for the agent and its record closes as "transferred",
        but its SIP leg stays up."""
        assert c.external and c.worker is not None, "only a call outside is handed over"
        now = self.clock()
        await self.live.map_delete(calls_map(tenant_id), c.id)
        await self.live.map_delete(OUT, c.id)
        if self.links is not None:
            await self.links.close(c.worker, c.id, c.id)
        caller = await self._party(tenant_id, c.caller)
        async with self.sessionmaker() as s, s.begin():
            await TenantRepo(s, tenant_id).add_call_record(
                c.id, c.started_at, direction="outbound", caller=caller.username, callee=c.external,
                agent_id=c.caller, answered_at=c.answered_at, ended_at=now, outcome="answered",
            )
            row = await TenantRepo(s, tenant_id).call_record(c.id)
            assert row is not None
            row.data = {"kind": "outbound", "end_reason": "transferred", "ended_by": caller.username,
                        "held_seconds": round(c.held_seconds, 3), "digits": "".join(c.digits)}
        await self._announce(tenant_id, c, ended="transferred", by=agent_id)
        if self.on_busy is not None and not await self._calls_of(tenant_id, agent_id):
            await self.on_busy(tenant_id, agent_id, False)

    async def route_out(self, tenant_id: int, number: str) -> tuple[str, str, str | None]:
        """(Request-URI, From URI, trunk key or None) of a call to `number` outside: through the tenant's SIP
        trunk (`sip_trunks`, its credentials answering a digest challenge), or else to the proxy of the tenant
        setting "sip.outbound": {"proxy": "host:port", "caller_id": "+49..."} (no authentication); PhoneError
        when neither is configured."""
        async with self.sessionmaker() as s:
            tenant = await tenant_by_id(s, tenant_id)
            trunk = await outbound_trunk(s, tenant_id)
        if trunk is not None:
            uri, from_uri = dial_uris(trunk, number)
            return uri, from_uri, trunk_key(trunk)
        plain = ((tenant.settings or {}).get("sip") or {}).get("outbound") if tenant else None
        if not plain or not plain.get("proxy"):
            raise PhoneError(P.NOT_FOUND, "no SIP trunk for calls outside is configured for this tenant")
        host = str(plain["proxy"])
        return f"sip:{number}@{host}", f"sip:{plain.get('caller_id') or 'unidesk'}@{host}", None


def ice_servers(urls: tuple[str, ...], secret: str | None, ttl: int, who: str, now: float) -> list[P.IceServer]:
    """ICE servers for a softphone. TURN credentials follow coturn's REST scheme
    (`use-auth-secret`): the username is "<expiry>:<who>" and the password is
    base64(HMAC-SHA1(secret, username)), so coturn checks them without a database."""
    if not urls:
        return []
    stun = [u for u in urls if u.startswith("stun:")]
    turn = [u for u in urls if not u.startswith("stun:")]
    out = [P.IceServer(urls=stun)] if stun else []
    if turn and secret:
        username = f"{int(now) + ttl}:{who}"
        digest = hmac.new(secret.encode(), username.encode(), hashlib.sha1).digest()
        out.append(P.IceServer(urls=turn, username=username, credential=base64.b64encode(digest).decode()))
    return out


def dtls_fingerprint(sdp: str) -> str:
    """The offer's DTLS certificate fingerprint (RFC 8122 `a=fingerprint`): it names the peer connection."""
    for line in sdp.splitlines():
        if line.startswith("a=fingerprint:"):
            return line.split(":", 1)[1].strip()
    return ""


def _phone_worker(raw: bytes) -> str:
    return raw.decode().split("\n", 1)[0]


def _phone_fingerprint(raw: bytes) -> str:
    parts = raw.decode().split("\n", 1)
    return parts[1] if len(parts) > 1 else ""


def _end_reason(code: int) -> str:
    """Why an outbound call that was never answered ended, from the final SIP response."""
    if code in (486, 600):
        return "busy"
    if code in (404, 484, 604):
        return "not-found"
    if code in (408, 480):
        return "no-answer"
    if code == 487:
        return "cancelled"
    return f"failed-{code}"
