"""`SipBridge`: the media worker's SIP user agent, driven from asyncio.

The owner (the media worker) calls the methods below on its event loop and
receives `IncomingCall`, `CallProgress`, `DtmfReceived` and `CallEnded`
through `on_event`, also on its loop. pjsua2 itself runs on one dedicated
thread (`bridge.agent.UserAgent`), one per lane with `lanes` > 1 (four calls
each, bridge/lanes.py, bridge/spread.py); methods here only check arguments,
update the loop's view of the calls, touch the `MediaEngine` (which lives on
the loop) and queue a command for the thread of the call's lane. See docs/sip.md.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import dataclasses
import ipaddress
import logging
import threading
from dataclasses import dataclass
from typing import TYPE_CHECKING, Callable, Literal

from . import lanes as _lanes
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
    # The lane (bridge/lanes.py) whose pjsua2 holds the call.
    lane: int = 0


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
        lanes: int = 1,
        lane_port: int = 0,
    ) -> None:
        assert transports, "at least one transport"
        assert max_calls >= 1, f"max_calls {max_calls}"
        if not 1 <= lanes <= 64:
            raise SipError(f"lanes {lanes}: 1 to 64")
        if lanes > 1 and "udp" not in transports:
            raise SipError("lanes need SIP over UDP (lane 0 passes calls on to the lanes over UDP)")
        if ":" in host:
            # pjsip opens IPv6 SIP transports, but the PyPI wheel is built with PJ_HAS_IPV6 0: pjsua refuses
            # IPv6 media (an assertion in pjsua_acc_add aborts the process), so no call could carry audio.
            raise SipError(f"SIP on the IPv6 address {host!r} needs a pjsua2 built with IPv6 (PJ_HAS_IPV6); "
                           "the PyPI wheel is not: listen on an IPv4 address")
        # Lane k > 0 listens on UDP lane_port + k - 1 (default: port + 10 on), RTP from rtp_port + 100 k.
        self._lanes = lanes
        self._lane_port = lane_port or port + 10
        if lanes > 1:
            taken = {port, tls_port} - {0}
            ours = set(range(self._lane_port, self._lane_port + lanes - 1))
            if taken & ours or self._lane_port + lanes - 2 > 65535:
                raise SipError(f"lane ports {self._lane_port}-{self._lane_port + lanes - 2} clash with port {port}"
                               f" or TLS port {tls_port}")
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
        # Every lane's agent and thread, lane 0 first (`_agent`, `_thread`).
        self._agents: list[UserAgent] = []
        self._threads: list[threading.Thread] = []

    # ------------------------------------------------------------ lifecycle

    async def start(self) -> None:
        """Start the SIP thread(s) and listen; raises SipError (e.g. the port is taken)."""
        if self._agent is not None:
            raise SipError("SipBridge already started")
        self._loop = asyncio.get_running_loop()
        config = dataclasses.replace(self._config, spread=self._lanes > 1)
        try:
            await self._start_lane(0, config, _lanes.load(0))
            for k in range(1, self._lanes):
                try:
                    pj = await asyncio.to_thread(_lanes.load, k)
                except Exception as exc:  # an unwritable cache folder, a full disk, ...
                    raise SipError(f"SIP lane {k}: cannot load a copy of pjsua2 under {_lanes.cache_root()}: {exc}") from None
                await self._start_lane(k, self._lane_config(k), pj)
        except BaseException:
            await self._stop_lanes()
            raise
        self._agent, self._thread = self._agents[0], self._threads[0]

    def _lane_config(self, k: int) -> AgentConfig:
        lane0 = self._agents[0]
        assert lane0.spreader is not None
        host, _, port = lane0.spreader.sent_by.rpartition(":")
        c = self._config
        target = "127.0.0.1" if c.host in ("", "0.0.0.0") else "::1" if c.host == "::" else c.host
        ip = ipaddress.ip_address(target.strip("[]"))
        forwarder = f"[{ip}]:{c.port}" if ip.version == 6 else f"{ip}:{c.port}"
        return dataclasses.replace(
            c, port=self._lane_port + k - 1, transports=("udp",), tls_port=0, registrar=False,
            rtp_port=c.rtp_port + 100 * k, lane=k, spread=False, forwarder=forwarder,
            contact=f"<sip:{c.user_agent}@{host}:{port};ul={k}>",
        )

    async def _start_lane(self, k: int, config: AgentConfig, pj: object) -> None:
        agent = UserAgent(config, lambda event, k=k: self._from_agent(event, k), pj)
        agent.peers = self._agents
        thread = threading.Thread(target=agent.run, name="sip-ua" if k == 0 else f"sip-ua-{k}", daemon=True)
        self._agents.append(agent)
        self._threads.append(thread)
        thread.start()
        try:
            await asyncio.wrap_future(agent.started)
        except BaseException:
            await asyncio.to_thread(thread.join)
            self._agents.pop()
            self._threads.pop()
            raise
        if k:
            spreader = self._agents[0].spreader
            assert spreader is not None and config.forwarder is not None
            host, _, _ = config.forwarder.rpartition(":")
            spreader.targets[k] = (host.strip("[]"), config.port)

    async def _stop_lanes(self) -> None:
        agents, threads = list(self._agents), list(self._threads)
        for agent in agents:
            agent.submit(agent.stop)
        for agent, thread in zip(agents, threads):
            await asyncio.wrap_future(agent.stopped)
            await asyncio.to_thread(thread.join)
        self._agents.clear()
        self._threads.clear()

    async def stop(self) -> None:
        """Hang up every call (each reported as CallEnded), free pjsua2, join the thread(s)."""
        if self._agent is None or self._thread is None:
            return
        await self._stop_lanes()
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
        self._calls[call_id] = _View("out", leg_id=leg_id, lane=self._dial_lane())
        self._submit("dial", call_id, uri, from_uri, trunk)

    def set_trunks(self, trunks: list[Trunk]) -> None:
        """Dial through these trunks (and register those with `register`), and no others. Each
        registration's outcome arrives as `Registration`, again on every change (refresh, failure)."""
        keys = [t.key for t in trunks]
        if len(set(keys)) != len(keys):
            raise SipError(f"trunk keys are not unique: {keys}")
        self._require_started()
        for agent in self._agents:  # every lane dials through them; lane 0 alone registers
            agent.submit(agent.set_trunks, list(trunks))

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
        self._require_started()
        total: dict[str, int] = {}
        for agent in self._agents:
            for what, n in list(agent.counts.items()):
                total[what] = total.get(what, 0) + n
        return total

    def frame_cost_us(self) -> tuple[float, float, int]:
        """Mean µs spent in onFrameReceived and onFrameRequested per frame, and frames counted,
        over every call so far; needs `time_ports=True` (else zeros). Advisory figures."""
        self._require_started()
        rx_ns = rx_n = tx_ns = tx_n = 0
        for agent in self._agents:
            a, b, c, d = agent.port_cost()
            rx_ns, rx_n, tx_ns, tx_n = rx_ns + a, rx_n + b, tx_ns + c, tx_n + d
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

    def _submit(self, command: str, call_id: str, *args: object) -> None:
        """Queue `command` for the lane that holds `call_id`."""
        self._require_started()
        view = self._calls.get(call_id)
        agent = self._agents[view.lane if view is not None else 0]
        agent.submit(getattr(agent, command), call_id, *args)

    def _dial_lane(self) -> int:
        """The lane with the most free call slots (lane 0 first among equals)."""
        held = [0] * len(self._agents)
        for view in self._calls.values():
            held[view.lane] += 1
        free = [a.capacity - max(len(a.calls), held[k]) if a.accepting() else -1 for k, a in enumerate(self._agents)]
        return max(range(len(free)), key=lambda k: (free[k], -k))

    def lane_of(self, call_id: str) -> int:
        """The lane holding a call (bridge/lanes.py)."""
        return self._view(call_id).lane

    def lanes(self) -> list[int]:
        """Calls held per lane (pjsua's view; advisory, read from other threads)."""
        return [len(a.calls) for a in self._agents]

    def _from_agent(self, event: object, lane: int = 0) -> None:
        """Called on a SIP thread: hop to the loop."""
        loop = self._loop
        if loop is not None and not loop.is_closed():
            loop.call_soon_threadsafe(self._dispatch, event, lane)

    def _dispatch(self, event: object, lane: int = 0) -> None:
        if isinstance(event, IncomingCall):
            self._calls[event.call_id] = _View("in", lane=lane)
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
