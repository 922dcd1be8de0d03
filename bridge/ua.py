"""`SipBridge`: the media worker's SIP user agent, driven from asyncio.

The owner (the media worker) calls the methods below on its event loop and
receives `IncomingCall`, `CallProgress`, `DtmfReceived` and `CallEnded`
through `on_event`, also on its loop. pjsua2 itself runs on one dedicated
thread (`bridge.agent.UserAgent`); methods here only check arguments,
update the loop's view of the calls, touch the `MediaEngine` (which lives on
the loop) and queue a command for that thread. See docs/sip.md.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import threading
from dataclasses import dataclass
from typing import TYPE_CHECKING, Callable, Literal

from .agent import AgentConfig, UserAgent
from .events import CallEnded, CallProgress, DtmfReceived, IncomingCall, Registered, Registration, SipError
from .registrar import SipUser
from .guard import InviteGuard
from .sipmsg import check_digits
from .trunk import Trunk

if TYPE_CHECKING:
    from webrtc.engine import MediaEngine
    from webrtc.mixer import LegPort

log = logging.getLogger(__name__)

__all__ = [
    "SipBridge", "IncomingCall", "CallProgress", "CallEnded", "DtmfReceived", "Registered", "Registration", "SipError",
    "SipUser", "Trunk",
]


@dataclass
class _View:
    """The loop's knowledge of one call."""

    direction: Literal["in", "out"]
    answered: bool = False
    leg: LegPort | None = None
    # The engine leg's name when the owner chose one (`dial(leg_id=...)`).
    leg_id: str | None = None


class SipBridge:
    """SIP calls in and out of the media worker, each answered call a leg of `engine`.

    Incoming calls are offered through `IncomingCall`; the owner must then
    `answer`, `ring` (then answer or reject later) or `reject`. A call left
    without an answer for `answer_timeout` seconds is rejected with 503.
    """

    def __init__(
        self,
        engine: MediaEngine,
        *,
        host: str = "127.0.0.1",
        port: int = 5060,
        transports: tuple[str, ...] = ("udp", "tcp"),
        on_event: Callable[[object], None],
        max_calls: int = 256,
        user_agent: str = "unidesk",
        rtp_port: int = 4000,
        answer_timeout: float = 10.0,
        time_ports: bool = False,
        log_level: int = 1,
        tls_port: int = 0,
        tls_cert: str | None = None,
        tls_key: str | None = None,
        registrar: bool = True,
        guard: InviteGuard | None = None,
    ) -> None:
        assert transports, "at least one transport"
        assert max_calls >= 1, f"max_calls {max_calls}"
        self.engine = engine
        self.on_event = on_event
        self._config = AgentConfig(
            host=host,
            port=port,
            transports=tuple(transports),
            max_calls=max_calls,
            user_agent=user_agent,
            rtp_port=rtp_port,
            answer_timeout=answer_timeout,
            time_ports=time_ports,
            log_level=log_level,
            tls_port=tls_port,
            tls_cert=tls_cert,
            tls_key=tls_key,
            registrar=registrar,
            guard=guard or InviteGuard(),
        )
        self._calls: dict[str, _View] = {}
        self._loop: asyncio.AbstractEventLoop | None = None
        self._agent: UserAgent | None = None
        self._thread: threading.Thread | None = None

    # ------------------------------------------------------------ lifecycle

    async def start(self) -> None:
        """Start the SIP thread and listen; raises SipError (e.g. the port is taken)."""
        if self._agent is not None:
            raise SipError("SipBridge already started")
        self._loop = asyncio.get_running_loop()
        agent = self._agent = UserAgent(self._config, self._from_agent)
        self._thread = threading.Thread(target=agent.run, name="sip-ua", daemon=True)
        self._thread.start()
        try:
            await asyncio.wrap_future(agent.started)
        except BaseException:
            await asyncio.to_thread(self._thread.join)
            self._agent = self._thread = None
            raise

    async def stop(self) -> None:
        """Hang up every call (each reported as CallEnded), free pjsua2, join the thread."""
        agent, thread = self._agent, self._thread
        if agent is None or thread is None:
            return
        agent.submit(agent.stop)
        await asyncio.wrap_future(agent.stopped)
        await asyncio.to_thread(thread.join)
        # CallEnded events queued by the shutdown run before we return.
        await asyncio.sleep(0)
        self._agent = self._thread = None
        for call_id in list(self._calls):
            self._end(CallEnded(call_id, 503, "Service Unavailable", "local"))

    # ------------------------------------------------------------ commands

    def answer(self, call_id: str) -> None:
        """Send 200 OK to an offered call; its leg `sip-<call_id>` exists when this returns."""
        view = self._view(call_id, "in")
        if view.answered:
            raise SipError(f"call {call_id!r} is already answered")
        view.answered = True
        view.leg = self.engine.add_leg(self.leg_id(call_id))
        self._submit("answer", call_id, view.leg)

    def ring(self, call_id: str) -> None:
        """Send 180 Ringing to an offered call (the answer timeout keeps running)."""
        view = self._view(call_id, "in")
        if not view.answered:
            self._submit("ring", call_id)

    def reject(self, call_id: str, code: int, reason: str = "", retry_after: int | None = None) -> None:
        """Refuse an offered call with a final response (4xx-6xx; `retry_after` seconds go in a
        Retry-After header); CallEnded follows (by local)."""
        if not 300 <= code <= 699:
            raise SipError(f"reject code {code} is not a final error response (300-699)")
        view = self._view(call_id, "in")
        if view.answered:
            raise SipError(f"call {call_id!r} is answered: hang it up instead")
        self._submit("hangup", call_id, code, reason, retry_after)

    def hangup(self, call_id: str, code: int = 200) -> None:
        """End a call: BYE once answered; CANCEL for an outbound call not yet answered;
        a final response for an offered call (603 unless `code` is 300-699). CallEnded follows."""
        view = self._view(call_id)
        if view.answered or view.direction == "out" or not 300 <= code <= 699:
            code = 0  # pjsua picks: BYE / CANCEL / 603 Decline
        self._submit("hangup", call_id, code, "")

    def send_dtmf(self, call_id: str, digits: str) -> None:
        """Send DTMF as RFC 4733 telephone-events on an answered call."""
        digits = check_digits(digits)
        view = self._view(call_id)
        if not view.answered:
            raise SipError(f"call {call_id!r} is not answered: no media to carry DTMF")
        self._submit("send_dtmf", call_id, digits)

    def dial(
        self, call_id: str, uri: str, from_uri: str | None = None, trunk: str | None = None, leg_id: str | None = None
    ) -> None:
        """Place an outbound call; CallProgress follows (its leg exists from 'answered'), or CallEnded.
        `trunk`: the key of a trunk (`set_trunks`) whose credentials answer a 401/407 challenge. `leg_id`
        names its engine leg (default `sip-<call_id>`): a desk phone's call takes the agent's session id,
        so that it stands where the agent's softphone would."""
        if call_id in self._calls:
            raise SipError(f"call id {call_id!r} is in use")
        if not uri.startswith(("sip:", "sips:")):
            raise SipError(f"{uri!r} is not a SIP URI")
        self._require_started()
        self._calls[call_id] = _View("out", leg_id=leg_id)
        self._submit("dial", call_id, uri, from_uri, trunk)

    def set_trunks(self, trunks: list[Trunk]) -> None:
        """Dial through these trunks (and register those with `register`), and no others. Each
        registration's outcome arrives as `Registration`, again on every change (refresh, failure)."""
        keys = [t.key for t in trunks]
        if len(set(keys)) != len(keys):
            raise SipError(f"trunk keys are not unique: {keys}")
        self._submit("set_trunks", list(trunks))

    async def set_users(self, users: list[SipUser]) -> None:
        """The desk phones that may register (replacing the previous list), in force when this returns;
        `Registered(expires=0)` follows for bindings of users that are gone or whose credentials changed."""
        agent = self._require_started()
        done: concurrent.futures.Future[None] = concurrent.futures.Future()
        agent.submit(agent.set_users, list(users), done)
        await asyncio.wrap_future(done)

    @property
    def desk_phones(self) -> bool:
        """Whether REGISTER is served (the registrar passed its start-up self-check)."""
        return self._agent is not None and self._agent.desk_phones

    def calls(self) -> list[str]:
        """Ids of every call not yet ended (offered, ringing, dialling or answered)."""
        return list(self._calls)

    def leg_id(self, call_id: str) -> str:
        """The engine leg of a call (exists once the call is answered)."""
        view = self._calls.get(call_id)
        if view is not None and view.leg_id:
            return view.leg_id
        return f"sip-{call_id}"

    def stats(self) -> dict[str, int]:
        """What became of incoming INVITEs so far: `offered` to the owner, `answered`, `refused-<code>`
        (and `refused-503-rate` / `refused-503-pending` by the guard) here, `pjsua-<code>` by pjsua
        itself (486: every call slot taken). Advisory figures, read from another thread."""
        return dict(self._require_started().counts)

    def frame_cost_us(self) -> tuple[float, float, int]:
        """Mean µs spent in onFrameReceived and onFrameRequested per frame, and frames counted,
        over every call so far; needs `time_ports=True` (else zeros). Advisory figures."""
        rx_ns, rx_n, tx_ns, tx_n = self._require_started().port_cost()
        return rx_ns / max(1, rx_n) / 1e3, tx_ns / max(1, tx_n) / 1e3, rx_n + tx_n

    # ------------------------------------------------------------ internals

    def _require_started(self) -> UserAgent:
        if self._agent is None:
            raise SipError("SipBridge is not started")
        return self._agent

    def _view(self, call_id: str, direction: str | None = None) -> _View:
        view = self._calls.get(call_id)
        if view is None:
            raise SipError(f"unknown or ended call {call_id!r}")
        if direction is not None and view.direction != direction:
            raise SipError(f"call {call_id!r} is an outbound call")
        return view

    def _submit(self, command: str, *args: object) -> None:
        agent = self._require_started()
        agent.submit(getattr(agent, command), *args)

    def _from_agent(self, event: object) -> None:
        """Called on the SIP thread: hop to the loop."""
        loop = self._loop
        if loop is not None and not loop.is_closed():
            loop.call_soon_threadsafe(self._dispatch, event)

    def _dispatch(self, event: object) -> None:
        if isinstance(event, IncomingCall):
            self._calls[event.call_id] = _View("in")
        elif isinstance(event, CallProgress):
            view = self._calls.get(event.call_id)
            if view is None:
                return
            if event.state == "answered":
                if view.answered:
                    return
                view.answered = True
                try:
                    view.leg = self.engine.add_leg(self.leg_id(event.call_id))
                except Exception as exc:  # the leg's name is taken (the agent's softphone is there)
                    log.warning("call %s answered but its leg cannot be made (%s): hanging up", event.call_id, exc)
                    self._submit("hangup", event.call_id, 0, "")
                    return
                self._submit("attach", event.call_id, view.leg)
        elif isinstance(event, CallEnded):
            self._end(event)  # delivers it
            return
        elif isinstance(event, DtmfReceived):
            if event.call_id not in self._calls:
                return
        self._deliver(event)  # Registration too

    def _end(self, event: CallEnded) -> None:
        view = self._calls.pop(event.call_id, None)
        if view is None:
            return
        if view.leg is not None:
            self.engine.remove_leg(view.leg.id)
        self._deliver(event)

    def _deliver(self, event: object) -> None:
        try:
            self.on_event(event)
        except Exception:  # a failing owner callback must not break the bridge
            log.exception("on_event(%r) raised", event)
