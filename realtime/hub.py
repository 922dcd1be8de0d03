"""The websocket endpoint: authentication, resume, dispatch, fan-out, heartbeats.

Each connection has an outbound queue drained by its own writer task, so a
slow client never holds up the others; one whose queue overflows is closed
(it reconnects and resumes from its last `seq`). Events reach connections
through `deliver()`, called by the live store for every event of every hub,
indexed by stream so one event costs O(subscribers of its stream).
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import math
import logging
import time
import uuid
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any

import msgspec
from starlette.websockets import WebSocket, WebSocketState

from realtime import protocol as P
from realtime.agent_state import Action, IllegalTransition, action_for_target
from realtime.agents import AgentService, Conflict, NotFound, UnknownReason
from realtime.auth import WORKER_ROLE, Principal, TokenError, TokenService
from realtime.config import Settings
from realtime.contacts import Accept, ContactCenter, ContactError, End, Hold, Reject, WrapUp
from realtime.deskphones import DeskPhones
from realtime.live import LiveStore, frame_seq, stream_agent, stream_board
from realtime.metrics import Metrics
from realtime.phone import RING_SECONDS, WORKER_GRACE, PhoneError, PhoneService, ice_servers, stream_worker
from realtime.sipcalls import SipCalls
from realtime.transfers import Transfers
from realtime.monitors import Monitors
from realtime.alerts import Alerts, LiveCalls
from realtime.wallboards import DENIED, WallboardFeeds
from realtime.recordings import Recordings
from realtime.trunks import TrunkService
from realtime.chat import Chat, ChatError
from realtime.support import GUEST_FRAMES, Support, SupportError, stream_guest, view as support_view
from realtime.knowledge import Knowledge
from realtime.webinars import Webinars
from meetings.webinar import WebinarError

log = logging.getLogger("unidesk.hub")

OUTBOUND_LIMIT = 2000
AUTH_DEADLINE = 10.0
MAX_BAD_AUTH = 5
SUPERVISORS = ("supervisor", "admin")

# Close codes: RFC 6455 §7.4.1 for 1008/1009; 4xxx are ours.
CLOSE_POLICY = 1008
CLOSE_TOO_BIG = 1009
CLOSE_INTERNAL = 1011
CLOSE_TRY_AGAIN = 1013
CLOSE_UNAUTHORIZED = 4401
CLOSE_HEARTBEAT = 4408

_CLOSE = object()


class Connection:
    __slots__ = (
        "ws",
        "principal",
        "stream",
        "out",
        "pending",
        "last_seen",
        "opened",
        "bad_auth",
        "closing",
        "writer",
        "worker",
        "conn_id",
        "wallboard",
        "guest_key",
        "webinar",
    )

    def __init__(self, ws: WebSocket) -> None:
        self.ws = ws
        self.principal: Principal | None = None
        self.stream: str | None = None
        self.out: asyncio.Queue[Any] = asyncio.Queue(maxsize=OUTBOUND_LIMIT)
        # Frames that arrive while the connection is being resumed; flushed in order afterwards.
        self.pending: list[str] | None = None
        self.last_seen = time.monotonic()
        self.opened = self.last_seen
        self.bad_auth = 0
        self.closing = False
        self.writer: asyncio.Task[None] | None = None
        # The media worker's name, for a worker's connection.
        self.worker: str | None = None
        self.conn_id = uuid.uuid4().hex
        # A wallboard screen's wallboard id and queues (realtime/wallboards.py).
        self.wallboard: tuple[int, frozenset[str]] | None = None
        # A customer's browser secret, on a support-session guest's connection (realtime/support.py).
        self.guest_key: str | None = None
        # The webinar room this connection joined: (tenant, room, member) (realtime/webinars.py).
        self.webinar: tuple[int, str, str] | None = None

    def push(self, frame: str) -> None:
        if self.closing:
            return
        if self.pending is not None:
            self.pending.append(frame)
            return
        try:
            self.out.put_nowait(frame)
        except asyncio.QueueFull:
            self.close(CLOSE_TRY_AGAIN, "too slow: reconnect and resume")

    def close(self, code: int, reason: str) -> None:
        if self.closing:
            return
        self.closing = True
        # The close jumps the queue: what was queued is stale for a client that must resume anyway.
        while not self.out.empty():
            self.out.get_nowait()
        self.out.put_nowait((_CLOSE, code, reason))


class Hub:
    def __init__(
        self,
        settings: Settings,
        live: LiveStore,
        agents: AgentService,
        tokens: TokenService,
        metrics: Metrics,
        contacts: ContactCenter | None = None,
        phone: PhoneService | None = None,
        sip: SipCalls | None = None,
        transfers: Transfers | None = None,
        monitors: Monitors | None = None,
        live_calls: LiveCalls | None = None,
        alerts: Alerts | None = None,
        wallboards: WallboardFeeds | None = None,
        recordings: Recordings | None = None,
        trunks: TrunkService | None = None,
        chat: Chat | None = None,
        desk: DeskPhones | None = None,
        support: Support | None = None,
        knowledge: Knowledge | None = None,
        webinars: Webinars | None = None,
    ) -> None:
        self.settings = settings
        self.desk = desk
        self.contacts = contacts
        self.phone = phone
        self.sip = sip
        self.transfers = transfers
        self.monitors = monitors
        self.live_calls = live_calls
        self.alerts = alerts
        self.wallboards = wallboards
        self.recordings = recordings
        self.trunks = trunks
        self.chat = chat
        self.support = support
        self.knowledge = knowledge
        # Refuses (PhoneError) to complete a wrap-up whose form lacks required fields (realtime/forms_api.py).
        self.wrap_up_check: Callable[[int, int, str], Awaitable[None]] | None = None
        self.webinars = webinars
        self._timers: set[asyncio.Task[None]] = set()
        self.live = live
        self.agents = agents
        self.tokens = tokens
        self.metrics = metrics
        self.connections: set[Connection] = set()
        self.by_stream: dict[str, set[Connection]] = {}
        live.subscribe(self.deliver)

    # ------------------------------------------------------------ fan-out

    def deliver(self, stream: str, seq: int, frame: bytes) -> None:
        if self.wallboards is not None:
            self.wallboards.deliver(stream, frame)
        conns = self.by_stream.get(stream)
        if not conns:
            return
        text = frame.decode()
        for conn in conns:
            conn.push(text)

    def _send(self, conn: Connection, msg: P.ServerMessage) -> None:
        conn.push(P.encode(msg).decode())

    def _error(self, conn: Connection, code: str, message: str, ref: str | None = None) -> None:
        self.metrics.errors.labels(code).inc()
        self._send(conn, P.Error(code=code, message=message, ref=ref))

    async def _writer(self, conn: Connection) -> None:
        ws = conn.ws
        sent = self.metrics.messages_out
        try:
            while True:
                item = await conn.out.get()
                if type(item) is tuple:
                    _, code, reason = item
                    if ws.application_state is WebSocketState.CONNECTED:
                        await ws.close(code, reason)
                    return
                await ws.send_text(item)
                sent.inc()
        except Exception:  # the peer went away mid-send; the reader sees the disconnect
            conn.closing = True

    # ------------------------------------------------------------ lifecycle

    async def endpoint(self, ws: WebSocket) -> None:
        await ws.accept()
        conn = Connection(ws)
        self.connections.add(conn)
        self.metrics.connections.inc()
        conn.writer = asyncio.create_task(self._writer(conn))
        limit = self.settings.max_frame_bytes
        try:
            while True:
                msg = await ws.receive()
                if msg["type"] == "websocket.disconnect":
                    break
                conn.last_seen = time.monotonic()
                text = msg.get("text")
                if text is None:
                    data = msg.get("bytes") or b""
                    if len(data) > limit:
                        conn.close(CLOSE_TOO_BIG, "frame too large")
                        continue
                    self._error(conn, P.BAD_FRAME, "binary frames are not accepted; send JSON text")
                    continue
                if len(text) > limit:
                    conn.close(CLOSE_TOO_BIG, "frame too large")
                    continue
                if conn.closing:
                    continue
                await self.handle(conn, text)
        except Exception:  # a failure of this connection must not take the hub down
            log.exception("websocket connection failed")
            with contextlib.suppress(Exception):  # the peer may be gone already
                await ws.close(CLOSE_INTERNAL, "internal error")
        finally:
            self._forget(conn)
            conn.closing = True
            if conn.writer is not None:
                conn.writer.cancel()
            self.metrics.connections.dec()
            if conn.webinar is not None and self.webinars is not None:
                try:
                    await self.webinars.left(*conn.webinar)
                except Exception:  # the store is away: the member's stay stays open until the room ends
                    log.exception("could not record leaving webinar %s", conn.webinar[1])
            if conn.worker is not None and self.phone is not None:
                try:
                    if await self.phone.worker_away(conn.worker, conn.conn_id):
                        # Calls keep their audio through a short break (the worker reconnects and resumes).
                        self._later(WORKER_GRACE, self._worker_gone(conn.worker))
                except Exception:  # the store is away: the sessions are cleaned up when the worker says hello again
                    log.exception("could not clean up after media worker %s", conn.worker)

    def local_workers(self) -> set[str]:
        """The media workers connected to this hub now (this hub runs their callers' menu timers)."""
        return {c.worker for c in self.connections if c.worker is not None and not c.closing}

    def _forget(self, conn: Connection) -> None:
        self.connections.discard(conn)
        if conn.wallboard is not None and self.wallboards is not None:
            self.wallboards.forget(conn)
        if conn.stream is not None:
            subs = self.by_stream.get(conn.stream)
            if subs is not None:
                subs.discard(conn)
                if not subs:
                    del self.by_stream[conn.stream]

    async def reaper(self) -> None:
        """Close connections that stopped pinging, never authenticated, or whose token expired."""
        hb = self.settings.heartbeat_seconds
        while True:
            await asyncio.sleep(min(hb / 2, 5.0))
            mono = time.monotonic()
            wall = time.time()
            for conn in list(self.connections):
                if conn.closing:
                    continue
                if mono - conn.last_seen > hb * 2.5:
                    conn.close(CLOSE_HEARTBEAT, "no heartbeat")
                elif conn.principal is None and mono - conn.opened > AUTH_DEADLINE:
                    conn.close(CLOSE_UNAUTHORIZED, "no auth frame in time")
                elif conn.principal is not None and wall > conn.principal.expires_at:
                    self._error(conn, P.UNAUTHORIZED, "token expired; reconnect with a fresh token")
                    conn.close(CLOSE_UNAUTHORIZED, "token expired")
            if self.wallboards is not None and self.wallboards.by_tenant:
                try:
                    await self.wallboards.check_revoked(CLOSE_UNAUTHORIZED)
                except Exception:  # the store is away: screens are checked again next round
                    log.exception("checking wallboards failed")

    def wallboard_revoked(self, tenant_id: int, wallboard_id: int) -> None:
        """Close this hub's screens of a revoked wallboard at once (other hubs' reapers follow)."""
        if self.wallboards is not None:
            self.wallboards.revoked(tenant_id, wallboard_id, CLOSE_UNAUTHORIZED)

    # ------------------------------------------------------------ frames

    async def handle(self, conn: Connection, text: str) -> None:
        try:
            frame = P.client_decoder.decode(text)
        except msgspec.ValidationError as exc:
            self.metrics.messages_in.labels("invalid").inc()
            self._error(conn, P.BAD_FRAME, f"frame rejected: {exc}", _ref_of(text))
            return
        except msgspec.DecodeError as exc:
            self.metrics.messages_in.labels("invalid").inc()
            self._error(conn, P.BAD_FRAME, f"not valid JSON: {exc}")
            return
        kind = type(frame).__struct_config__.tag
        self.metrics.messages_in.labels(str(kind)).inc()
        if isinstance(frame, P.Auth):
            await self._auth(conn, frame)
            return
        p = conn.principal
        if p is None:
            self._error(conn, P.NOT_AUTHENTICATED, "send an auth frame first", frame.id)
            return
        if p.kind == "wallboard" and not isinstance(frame, P.Ping):
            self._error(conn, P.FORBIDDEN, DENIED, frame.id)
            return
        if p.kind == "guest" and not isinstance(frame, GUEST_FRAMES):
            self._error(conn, P.FORBIDDEN, f"a support link may only send the session's frames, not {kind}", frame.id)
            return
        if p.kind == "webinar" and not isinstance(frame, (P.Ping, *WEBINAR_FRAMES)):
            self._error(conn, P.FORBIDDEN, "a webinar invitation only opens its webinar", frame.id)
            return
        try:
            match frame:
                case P.Ping():
                    self._send(conn, P.Pong(ref=frame.id, server_time=time.time()))
                case P.SetState(state=target, reason=reason):
                    self._need(p, "agent")
                    current = await self.agents.live.agent(p.tenant_id, p.user_id)
                    action = action_for_target(current[0], target)
                    if self.wrap_up_check and target == "available" and current[0].contact_id \
                            and current[0].state.value == "wrap-up":
                        await self.wrap_up_check(p.tenant_id, p.user_id, current[0].contact_id)
                    await self.agents.change(
                        p.tenant_id, p.user_id, action, reason=reason, by_user_id=p.user_id, source="agent"
                    )
                    self._send(conn, P.Ack(ref=frame.id))
                case P.ExtendWrapUp(seconds=seconds):
                    self._need(p, "agent")
                    await self.agents.change(
                        p.tenant_id,
                        p.user_id,
                        Action.EXTEND_WRAP_UP,
                        wrap_up_seconds=seconds,
                        by_user_id=p.user_id,
                        source="agent",
                    )
                    self._send(conn, P.Ack(ref=frame.id))
                case P.ForceState(agent_id=agent_id, state=target, reason=reason):
                    self._need(p, *SUPERVISORS)
                    current = await self.agents.live.agent(p.tenant_id, agent_id)
                    action = action_for_target(current[0], target)
                    await self.agents.change(
                        p.tenant_id,
                        agent_id,
                        action,
                        reason=reason,
                        by_user_id=p.user_id,
                        source="supervisor",
                    )
                    self._send(conn, P.Ack(ref=frame.id))
                case P.AcceptOffer(contact_id=cid):
                    self._need(p, "agent")
                    if self.desk is not None and await self.desk.ringing(p.tenant_id, cid, p.user_id):
                        # Only the phone can take the call off the hook (its audio is there).
                        raise PhoneError(P.CONFLICT, "your desk phone is ringing: answer the call there")
                    await self._to_router(conn, frame.id, Accept(tenant_id=p.tenant_id, agent_id=p.user_id, contact_id=cid))
                case P.RejectOffer(contact_id=cid):
                    self._need(p, "agent")
                    await self._to_router(conn, frame.id, Reject(tenant_id=p.tenant_id, agent_id=p.user_id, contact_id=cid))
                case P.EndContact(contact_id=cid):
                    self._need(p, "agent")
                    await self._to_router(conn, frame.id, End(tenant_id=p.tenant_id, agent_id=p.user_id, contact_id=cid))
                case P.CompleteWrapUp(contact_id=cid, code=code, notes=notes):
                    self._need(p, "agent")
                    if self.wrap_up_check is not None:
                        await self.wrap_up_check(p.tenant_id, p.user_id, cid)
                    await self._to_router(
                        conn,
                        frame.id,
                        WrapUp(tenant_id=p.tenant_id, agent_id=p.user_id, contact_id=cid, code=code, notes=notes),
                    )
                case P.PhoneOffer() | P.PhoneClose() | P.PhoneTest():
                    # Supervisors have softphones too (to monitor calls), on their own stream.
                    self._need(p, "agent", *SUPERVISORS)
                    await self._phone(conn, p, frame)
                case P.CallDial() | P.CallAnswer() | P.CallHangup() \
                        | P.CallHold() | P.CallMute() | P.CallDtmf() | P.CallTransfer() | P.CallConference():
                    self._need(p, "agent")
                    await self._phone(conn, p, frame)
                case P.ChatSend() | P.HandRaise():
                    await self._chat(conn, p, frame)
                case P.SupportJoin() | P.SupportAdmit() | P.SupportSignal() | P.SupportChat() | P.SupportScreen() \
                        | P.SupportEnd():
                    await self._support(conn, p, frame)
                case P.AlertAck(alert_id=alert_id):
                    self._need(p, *SUPERVISORS)
                    assert self.alerts is not None, "the hub was built without alerts"
                    try:
                        await self.alerts.ack(p.tenant_id, p.user_id, p.username, alert_id)
                    except LookupError as exc:
                        raise NotFound(str(exc)) from None
                    self._send(conn, P.Ack(ref=frame.id))
                case P.Monitor() | P.MonitorStop():
                    self._need(p, *SUPERVISORS)
                    monitors = self.monitors
                    assert monitors is not None, "the hub was built without monitoring"
                    if conn.stream != stream_agent(p.tenant_id, p.user_id):
                        raise PhoneError(P.CONFLICT, "monitor from a connection on your own stream (auth with stream \"own\")")
                    if isinstance(frame, P.Monitor):
                        await monitors.start(p.tenant_id, p.user_id, p.username, frame.call_id, frame.mode)
                    else:
                        await monitors.stop(p.tenant_id, p.user_id, frame.call_id)
                    self._send(conn, P.Ack(ref=frame.id))
                case P.WebinarJoin() | P.WebinarOffer() | P.WebinarAction() | P.WebinarAsk() | P.WebinarHand() \
                        | P.WebinarChat() | P.WebinarLeave():
                    await self._webinar(conn, p, frame)
                case P.WorkerHello() | P.MediaAnswer() | P.MediaFailed() | P.MediaClosed() | P.MediaCheck() \
                        | P.SipIncoming() | P.SipEnded() | P.SipDtmf() | P.SipProgress() | P.CallAnalytics() \
                        | P.RecordingDone() | P.SipRegistration() \
                        | P.SipRegistered():
                    self._need(p, WORKER_ROLE)
                    await self._worker_frame(conn, frame)
                case _:  # pragma: no cover - the union is exhaustive
                    raise AssertionError(f"unhandled frame {frame!r}")
        except _Forbidden as exc:
            self._error(conn, P.FORBIDDEN, str(exc), frame.id)
        except NotFound as exc:
            self._error(conn, P.NOT_FOUND, str(exc), frame.id)
        except UnknownReason as exc:
            self._error(conn, P.UNKNOWN_REASON, str(exc), frame.id)
        except IllegalTransition as exc:
            self._error(conn, P.ILLEGAL_TRANSITION, str(exc), frame.id)
        except Conflict as exc:
            self._error(conn, P.CONFLICT, str(exc), frame.id)
        except PhoneError as exc:
            self._error(conn, exc.code, str(exc), frame.id)
        except Exception:  # a bug in one request must not end the connection
            log.exception("frame %s failed", kind)
            self._error(conn, P.INTERNAL, "internal error; the request was not applied", frame.id)

    async def _webinar(self, conn: Connection, p: Principal, frame: P.ClientMessage) -> None:
        assert self.webinars is not None, "the hub was built without webinars"
        member = f"{conn.webinar[1]}:{conn.webinar[2]}" if conn.webinar else None

        def joined(where: tuple[int, str, str] | None) -> None:
            conn.webinar = where

        try:
            await self.webinars.handle(p, member, frame, lambda stream: self._follow(conn, stream), joined)
        except WebinarError as exc:
            self._error(conn, exc.code, str(exc), frame.id)
            return
        self._send(conn, P.Ack(ref=frame.id))

    def _follow(self, conn: Connection, stream: str) -> None:
        """The connection follows `stream` from now on (a webinar member's own stream)."""
        self._forget(conn)
        self.connections.add(conn)
        conn.stream = stream
        self.by_stream.setdefault(stream, set()).add(conn)

    async def _chat(self, conn: Connection, p: Principal, frame: P.ChatSend | P.HandRaise) -> None:
        chat = self.chat
        assert chat is not None, "the hub was built without chat"
        try:
            if isinstance(frame, P.ChatSend):
                self._need(p, "agent", *SUPERVISORS)
                await chat.send(p.tenant_id, p.user_id, frame)
            elif frame.agent_id is not None and frame.agent_id != p.user_id:
                # A supervisor lowers an agent's hand (answering it).
                self._need(p, *SUPERVISORS)
                if frame.on or not await chat.lower(p.tenant_id, frame.agent_id, p.username):
                    raise ChatError(P.NOT_FOUND if not frame.on else P.BAD_FRAME,
                                    "only a raised hand can be lowered by a supervisor")
            else:
                self._need(p, "agent")
                if frame.on:
                    await chat.raise_hand(p.tenant_id, p.user_id, frame.note)
                else:
                    await chat.lower(p.tenant_id, p.user_id, p.username)
        except ChatError as exc:
            self._error(conn, exc.code, str(exc), frame.id)
            return
        self._send(conn, P.Ack(ref=frame.id))

    async def _support(self, conn: Connection, p: Principal, frame: P.ClientMessage) -> None:
        assert self.support is not None, "the hub was built without support sessions"
        if p.kind != "guest":
            self._need(p, "agent")
        try:
            await self.support.handle(p, conn.guest_key, frame)
        except SupportError as exc:
            self._error(conn, exc.code, str(exc), frame.id)
            return
        self._send(conn, P.Ack(ref=frame.id))

    async def _phone(self, conn: Connection, p: Principal, frame: P.ClientMessage) -> None:
        phone = self.phone
        assert phone is not None, "the hub was built without softphones"
        t, me = p.tenant_id, p.user_id
        if isinstance(frame, P.CallTransfer | P.CallConference):
            call = await self.sip.connected_call(t, me, frame.call_id) if self.sip is not None else None
            if call is None:
                raise PhoneError(P.NOT_FOUND, f"no caller {frame.call_id} connected to you to transfer")
            transfers = self.transfers
            assert transfers is not None, "the hub was built without transfers"
            try:
                match frame:
                    case P.CallConference(consult=consult):
                        await transfers.conference(call, me, consult)
                        new_id = None
                    case P.CallTransfer(to=to, consult=None) if to is not None:
                        new_id = await transfers.blind(call, me, to)
                    case P.CallTransfer(to=None, consult=consult) if consult is not None:
                        new_id = await transfers.complete(call, me, consult)
                    case _:
                        raise PhoneError(P.BAD_FRAME, "a transfer names either `to` or `consult`")
            except ContactError as exc:
                self._error(conn, exc.code, str(exc), frame.id)
                return
            self._send(conn, P.Ack(ref=frame.id, call_id=new_id))
            return
        if isinstance(frame, P.CallHold | P.CallMute | P.CallDtmf) and self.sip is not None:
            # The agent's connected contact over SIP takes the same call controls.
            call = await self.sip.connected_call(t, me, frame.call_id)
            if call is not None:
                match frame:
                    case P.CallHold(on=on):
                        if call.conference:
                            raise PhoneError(P.CONFLICT, "a caller in a conference cannot be held; hang up the consult call first")
                        await self._to_router(conn, frame.id, Hold(tenant_id=t, agent_id=me, contact_id=frame.call_id, on=on))
                        return
                    case P.CallMute(on=on):
                        await self.sip.mute(call, me, on)
                    case P.CallDtmf(digits=digits):
                        await self.sip.send_digits(call, digits)
                self._send(conn, P.Ack(ref=frame.id))
                return
        match frame:
            case P.PhoneOffer(offer_id=oid, sdp=sdp):
                if "m=audio" not in sdp:
                    raise PhoneError(P.BAD_SDP, "the offer has no audio section (m=audio)")
                if self.desk is not None and await self.desk.on_desk(t, me):
                    # The desk phone's call takes the softphone's place (its leg): one or the other.
                    raise PhoneError(P.CONFLICT, "your calls ring your desk phone; choose the browser phone to use the softphone")
                await phone.offer(t, me, oid, sdp)
            case P.PhoneClose():
                if self.desk is None or not await self.desk.in_call(t, me):
                    await phone.close(t, me)
            case P.PhoneTest(tone_hz=hz):
                await phone.test_tone(t, me, hz)
            case P.CallDial(to=to):
                cid = await phone.dial(t, me, to)
                self._send(conn, P.Ack(ref=frame.id, call_id=cid))
                self._later(RING_SECONDS, phone.ring_timeout(t, cid))
                return
            case P.CallAnswer(call_id=cid):
                await phone.answer(t, me, cid)
            case P.CallHangup(call_id=cid):
                await phone.hangup(t, me, cid)
            case P.CallHold(call_id=cid, on=on):
                await phone.hold(t, me, cid, on)
            case P.CallMute(call_id=cid, on=on):
                await phone.mute(t, me, cid, on)
            case P.CallDtmf(call_id=cid, digits=digits):
                await phone.dtmf(t, me, cid, digits)
        self._send(conn, P.Ack(ref=frame.id))

    async def _worker_frame(self, conn: Connection, frame: P.ClientMessage) -> None:
        phone = self.phone
        assert phone is not None and conn.worker is not None, "a worker connection has a name"
        match frame:
            case P.WorkerHello() as hello:
                if self.desk is not None:
                    # The registrar's users first: desk phones get answers from the moment the worker is listed.
                    await self.desk.worker_hello(conn.worker)
                await phone.worker_hello(conn.worker, conn.conn_id, hello)
                if self.trunks is not None:
                    await self.trunks.worker_hello(conn.worker, hello.sip)
            case P.SipRegistration() as m:
                if self.trunks is not None:
                    await self.trunks.registration(conn.worker, m)
            case P.SipRegistered() as m:
                if self.desk is not None:
                    await self.desk.registered(conn.worker, m)
            case P.MediaAnswer() as m:
                if self.webinars is None or not await self.webinars.media_answer(conn.worker, m):
                    await phone.media_answer(conn.worker, m)
            case P.MediaFailed() as m:
                if self.webinars is None or not await self.webinars.media_failed(conn.worker, m):
                    await phone.media_failed(conn.worker, m)
            case P.MediaClosed() as m:
                # A webinar member's peer connection that ended: the member offers again or leaves.
                if self.webinars is None or not self.webinars.is_ours(m.session_id):
                    await phone.media_closed(conn.worker, m)
            case P.MediaCheck() as m:
                await phone.media_check(conn.worker, m)
            case P.CallAnalytics() as m:
                if self.live_calls is not None:
                    await self.live_calls.report(conn.worker, m)
            case P.RecordingDone() as m:
                if self.recordings is not None:
                    await self.recordings.done(conn.worker, m)
            case P.SipIncoming() | P.SipEnded() | P.SipDtmf() | P.SipProgress() as m:
                assert self.sip is not None, "the hub was built without SIP calls"
                match m:
                    case P.SipIncoming():
                        await self.sip.incoming(conn.worker, m)
                    case P.SipEnded():
                        # A caller handed to a number outside, a desk phone's call, a call an agent placed outside,
                        # or else a caller's.
                        if self.transfers is not None and await self.transfers.sip_ended(conn.worker, m):
                            pass
                        elif self.desk is not None and await self.desk.ended(conn.worker, m):
                            pass
                        elif not await phone.sip_ended(conn.worker, m):
                            await self.sip.ended(conn.worker, m)
                    case P.SipProgress():
                        if self.transfers is not None and await self.transfers.sip_progress(conn.worker, m):
                            pass
                        elif not await phone.sip_progress(conn.worker, m) and self.desk is not None:
                            await self.desk.progress(conn.worker, m)
                    case P.SipDtmf():
                        await self.sip.dtmf(conn.worker, m)
        self._send(conn, P.Ack(ref=frame.id))

    async def _worker_gone(self, name: str) -> None:
        assert self.phone is not None
        if await self.phone.worker_gone(name):
            if self.sip is not None:
                await self.sip.worker_gone(name)
            if self.transfers is not None:
                await self.transfers.worker_gone(name)
            if self.trunks is not None:
                await self.trunks.worker_gone(name)
            if self.desk is not None:
                await self.desk.worker_gone(name)
            if self.webinars is not None:
                await self.webinars.worker_gone(name)

    def _later(self, delay: float, coro: Coroutine[Any, Any, None]) -> None:
        async def run() -> None:
            await asyncio.sleep(delay)
            try:
                await coro
            except Exception:  # a timer's failure is logged; the call is cleaned up by its parties
                log.exception("timer failed")

        task = asyncio.create_task(run())
        self._timers.add(task)
        task.add_done_callback(self._timers.discard)

    async def _to_router(self, conn: Connection, ref: str | None, msg: object) -> None:
        assert self.contacts is not None, "the hub was built without a router"
        try:
            await self.contacts.submit(msg)  # type: ignore[arg-type]
        except ContactError as exc:
            self._error(conn, exc.code, str(exc), ref)
            return
        self._send(conn, P.Ack(ref=ref))

    @staticmethod
    def _need(p: Principal, *roles: str) -> None:
        if not p.has_any(*roles):
            raise _Forbidden(f"needs the role {' or '.join(roles)}")

    async def _auth(self, conn: Connection, frame: P.Auth) -> None:
        try:
            p = self.tokens.verify(frame.token, ("access", "worker", "wallboard", "guest", "webinar"))
        except TokenError as exc:
            conn.bad_auth += 1
            self._error(conn, P.UNAUTHORIZED, str(exc), frame.id)
            if conn.bad_auth >= MAX_BAD_AUTH:
                conn.close(CLOSE_UNAUTHORIZED, "too many failed auth frames")
            return
        if conn.principal is not None:
            # A fresh token for the same identity extends the connection's life.
            old = conn.principal
            if (old.tenant_id, old.user_id, old.username, old.kind in ("wallboard", "guest")) \
                    != (p.tenant_id, p.user_id, p.username, p.kind in ("wallboard", "guest")):
                self._error(conn, P.FORBIDDEN, "a connection cannot change user", frame.id)
                return
            conn.principal = p
            self._send(conn, P.Ack(ref=frame.id))
            return
        if p.kind == "worker":
            await self._auth_worker(conn, frame, p)
            return
        if p.kind == "guest":
            await self._auth_guest(conn, frame, p)
            return
        if p.kind == "webinar":
            # A guest: no stream until `webinar-join` (its own webinar stream).
            conn.principal = p
            self._send(conn, P.Welcome(
                ref=frame.id, user=P.UserInfo(id=p.user_id, username=p.username, display_name=p.username, roles=["guest"]),
                tenant=P.TenantInfo(id=p.tenant_id, slug=p.tenant_slug, name=""),
                heartbeat_seconds=self.settings.heartbeat_seconds, server_time=time.time(), stream="",
            ))
            return
        if p.kind == "wallboard":
            assert self.wallboards is not None, "the hub was built without wallboards"
            try:
                view = await self.wallboards.open(
                    conn, p, self.agents.directory, frame.id, self.settings.heartbeat_seconds
                )
            except LookupError as exc:
                self._error(conn, P.UNAUTHORIZED, str(exc), frame.id)
                conn.close(CLOSE_UNAUTHORIZED, str(exc)[:120])
                return
            self._send(conn, view)
            return
        d = await self.agents.directory.get(p.tenant_id)
        person = d.users.get(p.user_id) if d else None
        if d is None or person is None or not person.active:
            self._error(conn, P.UNAUTHORIZED, "the token's user no longer exists or is disabled", frame.id)
            return
        supervisor = p.has_any(*SUPERVISORS) and frame.stream != "own"
        stream = stream_board(p.tenant_id) if supervisor else stream_agent(p.tenant_id, p.user_id)
        conn.principal = p
        conn.stream = stream
        conn.pending = []
        self.by_stream.setdefault(stream, set()).add(conn)
        self._send_now(
            conn,
            P.Welcome(
                ref=frame.id,
                user=P.UserInfo(
                    id=person.id,
                    username=person.username,
                    display_name=person.display_name,
                    roles=sorted(person.roles),
                ),
                tenant=P.TenantInfo(id=d.tenant_id, slug=d.slug, name=d.name),
                heartbeat_seconds=self.settings.heartbeat_seconds,
                server_time=time.time(),
                stream=stream,
                ice_servers=ice_servers(
                    self.settings.turn_urls, self.settings.turn_secret, self.settings.turn_ttl,
                    f"{d.slug}:{person.username}", time.time(),
                ),
            ),
        )
        frames = None
        if frame.last_seq is not None:
            frames = await self.live.replay(stream, frame.last_seq)
        if frames is None:
            last = await self.live.seq(stream)
            contacts: list[P.ContactView] = []
            calls: list[P.CallView] = []
            stats: list[P.QueueStatsView] = []
            agent_stats: list[P.AgentStatsView] = []
            live_calls: list[P.LiveCall] = []
            alerts: list[P.AlertView] = []
            hands: list[P.HandView] = []
            chat: list[P.ChatMessage] = []
            support: list[P.SupportView] = []
            if self.chat is not None:
                if supervisor:
                    hands = await self.chat.hands(p.tenant_id)
                else:
                    chat = await self.chat.recent(p.tenant_id, p.user_id)
            if supervisor:
                agents = await self.agents.views(p.tenant_id)
                if self.live_calls is not None:
                    live_calls = await self.live_calls.calls(p.tenant_id)
                if self.alerts is not None:
                    alerts = await self.alerts.active(p.tenant_id)
                if self.contacts is not None:
                    stats = await self.contacts.queue_stats(p.tenant_id)
                    agent_stats = await self.contacts.agent_stats(p.tenant_id)
            elif d.is_agent(p.user_id):
                agents = [await self.agents.view(p.tenant_id, p.user_id)]
                if self.contacts is not None:
                    contacts = await self.contacts.contacts_of(p.tenant_id, p.user_id)
                if self.phone is not None:
                    calls = await self.phone.calls_of(p.tenant_id, p.user_id)
                if self.support is not None:
                    support = await self.support.rooms_of(p.tenant_id, p.user_id)
            else:
                agents = []
            instructions: list[P.InstructionView] = []
            if self.knowledge is not None:
                if supervisor:
                    instructions = await self.knowledge.for_board(p.tenant_id)
                elif d.is_agent(p.user_id):
                    instructions = [v for v, _ in await self.knowledge.for_agent(p.tenant_id, p.user_id)]
            self._send_now(
                conn,
                P.Snapshot(
                    seq=last,
                    agents=agents,
                    pause_reasons=d.pause_reasons,
                    queues=d.queues,
                    contacts=contacts,
                    queue_stats=stats,
                    agent_stats=agent_stats,
                    wrapup_codes=d.wrapup_codes,
                    calls=calls,
                    live_calls=live_calls,
                    alerts=alerts,
                    hands=hands,
                    chat=chat,
                    support=support,
                    instructions=instructions,
                ),
            )
            if self.desk is not None and not supervisor and d.is_agent(p.user_id):
                self._send_now(conn, await self.desk.state(p.tenant_id, p.user_id))
        else:
            for f in frames:
                self._push_now(conn, f.decode())
            last = frame_seq(frames[-1]) if frames else frame.last_seq  # type: ignore[assignment]
        pending, conn.pending = conn.pending, None
        for text in pending or []:
            if frame_seq(text) > last:
                conn.push(text)

    async def _auth_guest(self, conn: Connection, frame: P.Auth, p: Principal) -> None:
        """A customer's browser with a support link: bound to the room at first use, then on the room's stream."""
        assert self.support is not None, "the hub was built without support sessions"
        try:
            room, tenant = await self.support.open_guest(p, frame.guest_key)
        except SupportError as exc:
            self._error(conn, exc.code, str(exc), frame.id)
            # Closed after the error is sent (the page shows the message), unlike `close()`, which drops what is queued.
            conn.closing = True
            conn.out.put_nowait((_CLOSE, CLOSE_UNAUTHORIZED, str(exc)[:120]))
            return
        stream = stream_guest(p.tenant_id, room.id)
        # The token's expiry limits coming in (and back after a dropped connection), not a call in progress.
        conn.principal = dataclasses.replace(p, expires_at=math.inf)
        conn.stream, conn.guest_key = stream, frame.guest_key
        self.by_stream.setdefault(stream, set()).add(conn)
        self._send(conn, P.Welcome(
            ref=frame.id, user=P.UserInfo(id=0, username="guest", display_name=room.guest_name or "Guest", roles=["guest"]),
            tenant=tenant, heartbeat_seconds=self.settings.heartbeat_seconds, server_time=time.time(), stream=stream,
            ice_servers=ice_servers(self.settings.turn_urls, self.settings.turn_secret, self.settings.turn_ttl,
                                    f"{tenant.slug}:guest-{room.id}", time.time()),
        ))
        self._send(conn, P.SupportChanged(session=support_view(room)))
        await self.support.guest_agent(p, conn.ws.headers.get("user-agent", ""))

    async def _auth_worker(self, conn: Connection, frame: P.Auth, p: Principal) -> None:
        """A media worker follows its own stream of commands, resuming from `last_seq`."""
        if conn.principal is not None:
            conn.principal = p
            self._send(conn, P.Ack(ref=frame.id))
            return
        name = p.username.split(":", 1)[1]
        stream = stream_worker(name)
        conn.principal, conn.stream, conn.worker, conn.pending = p, stream, name, []
        self.by_stream.setdefault(stream, set()).add(conn)
        last = await self.live.seq(stream)
        self._send_now(
            conn,
            P.Welcome(
                ref=frame.id, user=P.UserInfo(id=0, username=p.username, display_name=name, roles=[WORKER_ROLE]),
                tenant=P.TenantInfo(id=0, slug="", name=""), heartbeat_seconds=self.settings.heartbeat_seconds,
                server_time=time.time(), stream=stream, seq=last,
            ),
        )
        if frame.last_seq is not None:
            frames = await self.live.replay(stream, frame.last_seq)
            for f in frames or []:
                self._push_now(conn, f.decode())
            if frames:
                last = frame_seq(frames[-1])
        pending, conn.pending = conn.pending, None
        for text in pending or []:
            if frame_seq(text) > last:
                conn.push(text)

    def _send_now(self, conn: Connection, msg: P.ServerMessage) -> None:
        self._push_now(conn, P.encode(msg).decode())

    @staticmethod
    def _push_now(conn: Connection, text: str) -> None:
        # Bypasses `pending` while a resume is being assembled.
        try:
            conn.out.put_nowait(text)
        except asyncio.QueueFull:
            conn.close(CLOSE_TRY_AGAIN, "too slow: reconnect and resume")


WEBINAR_FRAMES = (P.WebinarJoin, P.WebinarOffer, P.WebinarAction, P.WebinarAsk, P.WebinarHand, P.WebinarChat,
                  P.WebinarLeave)


class _Forbidden(Exception):
    pass


def _ref_of(text: str) -> str | None:
    """The `id` of a frame that failed validation, so the error can still name it."""
    try:
        raw = msgspec.json.decode(text)
    except msgspec.DecodeError:
        return None
    ref = raw.get("id") if isinstance(raw, dict) else None
    return ref if isinstance(ref, str) and len(ref) <= 64 else None
