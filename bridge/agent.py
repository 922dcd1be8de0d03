"""The pjsua2 side of the bridge: one Endpoint driven by one dedicated thread.

Everything here runs on that thread (`UserAgent.run`): pjsua2 is created
with `threadCnt=0` and `mainThreadOnly=True`, so SIP callbacks fire inside
`libHandleEvents`, which the thread calls in a loop. Commands from asyncio
arrive on a `queue.SimpleQueue` drained between two `libHandleEvents(10)`;
events leave through `emit` (the bridge wraps `loop.call_soon_threadsafe`).
Only the audio callbacks of `FramePort` run elsewhere (PJSIP's media clock).
With lanes (bridge/lanes.py) there is one `UserAgent`, thread and pjsua2
module per lane; the pjsua2 subclasses are built per module (`classes`).
"""

from __future__ import annotations

import concurrent.futures
import functools
import gc
import logging
import os
import queue
import socket
import ssl
import time
import traceback
import uuid
from dataclasses import dataclass, field
from types import ModuleType, SimpleNamespace
from typing import Callable

import pjsua2 as pj

from webrtc.mixer import LegPort

from .events import CallEnded, CallProgress, DtmfReceived, IncomingCall, Registered, Registration, SipError
from .guard import InviteGuard
from .lanes import WHEEL_MAX_CALLS
from .pjmodule import RegisterModule, UnknownMethodModule, digest_works, pj_digest
from .ports import FramePort, PortPool, frame_port_class
from .registrar import Registrar, Reply, SipUser
from .spread import SOURCE_HEADER, Spreader
from .sipmsg import content_length_mismatch, header, repeated_headers, split_name_addr, uri_user, via_transport
from .trunk import RETRY_SECONDS, Trunk, registration_state, trunk_uri

log = logging.getLogger(__name__)

# An incoming call is refused no sooner than this after it arrived. pjsua gives every INVITE that
# gets a call slot an RTP and an RTCP socket before anyone sees it, and a closed socket's slot in
# the select() ioqueue (64 in the PyPI wheel) returns only 500 ms later: refusing at once let a
# flood cycle the call slots so fast that the ioqueue ran out and pjlib aborted the process
# (tests/integration/test_sip_flood.py). Held this long, slots turn over at most
# max_calls / MIN_REFUSAL_AGE times a second (4 / 0.25 s: 16 calls, 32 sockets in the 500 ms).
MIN_REFUSAL_AGE = 0.25

# G.711 only: phone calls stay untranscoded end to end (ARCHITECTURE).
CODEC_PRIORITY = {"PCMU/8000/1": 255, "PCMA/8000/1": 254}


@dataclass
class AgentConfig:
    host: str
    port: int
    transports: tuple[str, ...]
    max_calls: int
    user_agent: str
    rtp_port: int
    answer_timeout: float
    codecs: dict[str, int] = field(default_factory=lambda: dict(CODEC_PRIORITY))
    log_level: int = 1
    time_ports: bool = False
    # SIP over TLS (RFC 3261 §26.2.1, RFC 5630): the port (0: off), the certificate chain and its key (PEM).
    tls_port: int = 0
    tls_cert: str | None = None
    tls_key: str | None = None
    # Serve REGISTER for desk phones (bridge/registrar.py).
    registrar: bool = True
    guard: InviteGuard = field(default_factory=InviteGuard)
    # Lanes (bridge/lanes.py, bridge/spread.py). Lane k > 0 forces its Contact (`contact`: the public
    # port, tagged with the lane) and believes the caller's address that `forwarder` (lane 0) passes on.
    lane: int = 0
    contact: str | None = None
    forwarder: str | None = None
    # Lane 0 with other lanes: spread new INVITEs over them (bridge/spread.py).
    spread: bool = False


@functools.cache
def classes(pj: ModuleType) -> SimpleNamespace:
    """The pjsua2 subclasses for one pjsua2 module (each lane has its own, bridge/lanes.py)."""

    class Log(pj.LogWriter):
        def write(self, entry: pj.LogEntry) -> None:  # any pjsip thread
            log.debug("pjsip: %s", entry.msg.rstrip())

    class Endpoint(pj.Endpoint):
        def __init__(self, agent: UserAgent) -> None:
            super().__init__()
            self.agent = agent

        def onRejectedIncomingCall(self, prm: pj.OnRejectedIncomingCallParam) -> None:
            # pjsua refused an INVITE itself (every call slot taken: 486), before any Account saw it.
            self.agent.count(f"pjsua-{prm.statusCode}")

    class Account(pj.Account):
        def __init__(self, agent: UserAgent) -> None:
            super().__init__()
            self.agent = agent

        def onIncomingCall(self, prm: pj.OnIncomingCallParam) -> None:
            self.agent.incoming(self, prm)

    class TrunkAccount(Account):
        """A trunk's account: registers (with `Trunk.register`) and answers digest challenges for its calls."""

        def __init__(self, agent: UserAgent, trunk: Trunk) -> None:
            super().__init__(agent)
            self.trunk = trunk
            self.last: Registration | None = None

        def onRegState(self, prm: pj.OnRegStateParam) -> None:
            self.agent.reg_state(self, int(prm.code), prm.reason, int(prm.expiration))

    class Call(pj.Call):
        """One pjsua2 call and what the bridge knows of it."""

        def __init__(self, agent: UserAgent, account: pj.Account, call_id: str, pj_id: int = pj.PJSUA_INVALID_ID) -> None:
            super().__init__(account, pj_id)
            self.agent = agent
            self.call_id = call_id
            self.outbound = pj_id == pj.PJSUA_INVALID_ID
            self.leg: LegPort | None = None
            self.port: FramePort | None = None
            self.media: pj.AudioMedia | None = None
            self.local_end = False
            self.deadline: float | None = None
            self.ringing_sent = False
            self.ended = False
            self.created = time.monotonic()
            self.answered = False
            self.sip_id = ""
            # A refusal held back until the call is MIN_REFUSAL_AGE old: (when, code, reason, retry_after).
            self.refusal: tuple[float, int, str, int | None] | None = None

        def onCallState(self, prm: pj.OnCallStateParam) -> None:
            self.agent.call_state(self)

        def onCallMediaState(self, prm: pj.OnCallMediaStateParam) -> None:
            self.agent.media_state(self)

        def onDtmfDigit(self, prm: pj.OnDtmfDigitParam) -> None:
            self.agent.emit(DtmfReceived(self.call_id, prm.digit.upper()))

    return SimpleNamespace(Log=Log, Endpoint=Endpoint, Account=Account, TrunkAccount=TrunkAccount, Call=Call,
                           FramePort=frame_port_class(pj))


_lane0 = classes(pj)
_Account, _TrunkAccount, _Call = _lane0.Account, _lane0.TrunkAccount, _lane0.Call


class UserAgent:
    """Owns the Endpoint, the account and every call; lives on one thread."""

    def __init__(self, config: AgentConfig, emit: Callable[[object], None], pj: ModuleType = pj) -> None:
        self.config = config
        # This lane's pjsua2 module and its subclasses (bridge/lanes.py); lane 0: the installed pjsua2.
        self.pj = pj
        self.cls = classes(pj)
        # Every lane's agent, this one included (set by the bridge): the guard counts pending calls over all.
        self.peers: list[UserAgent] = [self]
        # The SIP Call-IDs of this lane's calls (read by lane 0's Spreader, bridge/spread.py).
        self.sip_ids: set[str] = set()
        self.spreader: Spreader | None = None
        self.emit = emit
        self.commands: queue.SimpleQueue[tuple[Callable[..., None], tuple]] = queue.SimpleQueue()
        self.started: concurrent.futures.Future[None] = concurrent.futures.Future()
        self.stopped: concurrent.futures.Future[None] = concurrent.futures.Future()
        self.calls: dict[str, _Call] = {}
        self._graveyard: list[_Call] = []
        self.ports = PortPool(pj, timed=config.time_ports)
        self._running = True
        self._seq = 0
        self.ep: pj.Endpoint | None = None
        self.account: _Account | None = None
        self.trunks: dict[str, _TrunkAccount] = {}
        self._logger = self.cls.Log()
        self.registrar = Registrar(pj_digest)
        self.reg_module: RegisterModule | None = None
        self.unknown_module: UnknownMethodModule | None = None
        # Whether desk phones can register (the start-up self-check passed).
        self.desk_phones = False
        # Audio callback cost of ended calls (timed ports only): rx_ns, rx_frames, tx_ns, tx_frames.
        self._ended_cost = [0, 0, 0, 0]
        # What became of incoming INVITEs: offered, answered, refused here (by code and why), by pjsua.
        self.counts: dict[str, int] = {}

    @property
    def capacity(self) -> int:
        """Calls this lane holds at most (pjsua clamps maxCalls to the wheel's PJSUA_MAX_CALLS)."""
        return min(self.config.max_calls, WHEEL_MAX_CALLS)

    def accepting(self) -> bool:
        """Started, not stopping: new calls may go here (read from lane 0's thread)."""
        return self._running and self.started.done() and self.started.exception() is None

    def count(self, what: str) -> None:
        self.counts[what] = self.counts.get(what, 0) + 1

    # ------------------------------------------------------------ thread body

    def run(self) -> None:
        try:
            self._create()
        except BaseException as exc:  # report any startup failure to the awaiting start()
            # The traceback's frames hold pjsua2 objects: a live Endpoint would make the
            # next Endpoint() in this process throw from C++ (and abort).
            _forget_frames(exc)
            self._destroy()
            self.started.set_exception(exc.with_traceback(None))
            return
        self.started.set_result(None)
        try:
            while self._running:
                self.ep.libHandleEvents(10)
                self._drain()
                self._expire()
                self._expire_registrations()
                self._bury()
        except BaseException:  # a crash must still free pjsua2, or libDestroy asserts at exit
            log.exception("SIP user agent thread failed")
        finally:
            self._shutdown()
            self.stopped.set_result(None)

    def submit(self, fn: Callable[..., None], *args: object) -> None:
        """Run `fn(*args)` on the pjsua2 thread (from any thread)."""
        self.commands.put((fn, args))

    def _drain(self) -> None:
        while True:
            try:
                fn, args = self.commands.get_nowait()
            except queue.Empty:
                return
            try:
                fn(*args)
            except self.pj.Error as exc:
                log.warning("SIP command %s%r failed: %s", fn.__name__, args, exc.info())
            except Exception:  # a bad command must not stop the SIP thread
                log.exception("SIP command %s%r failed", fn.__name__, args)

    # ------------------------------------------------------------ lifecycle

    def _create(self) -> None:
        c = self.config
        self.ep = self.cls.Endpoint(self)
        self.ep.libCreate()
        cfg = self.pj.EpConfig()
        cfg.uaConfig.threadCnt = 0
        cfg.uaConfig.mainThreadOnly = True
        cfg.uaConfig.maxCalls = c.max_calls
        cfg.uaConfig.userAgent = c.user_agent
        cfg.logConfig.level = c.log_level
        cfg.logConfig.consoleLevel = c.log_level if c.log_level > 3 else 0
        cfg.logConfig.writer = self._logger
        cfg.logConfig.decor = 0
        med = cfg.medConfig
        med.clockRate = 8000
        med.sndClockRate = 8000
        med.channelCount = 1
        med.audioFramePtime = 20
        med.ptime = 20
        med.noVad = True
        med.ecTailLen = 0
        # A short jitter buffer: loopback and LAN trunks deliver evenly; pjmedia's default prefetch adds latency.
        med.jbInit = 20
        med.jbMinPre = 10
        med.jbMaxPre = 60
        med.jbMax = 200
        med.maxMediaPorts = max(2 * c.max_calls + 8, 254)
        self.ep.libInit(cfg)
        if c.registrar:
            self.reg_module = RegisterModule(self._register)
            self.reg_module.register()
        if not c.lane:  # lanes > 0 see only what lane 0 passes on: INVITEs and their dialogs (bridge/spread.py)
            # Requests of unknown methods get 501 Not Implemented instead of silence (RFC 3261 §8.2.1).
            self.unknown_module = UnknownMethodModule(("REGISTER",) if c.registrar else ())
            self.unknown_module.register()
        for name in c.transports:
            kind = {"udp": self.pj.PJSIP_TRANSPORT_UDP, "tcp": self.pj.PJSIP_TRANSPORT_TCP}.get(name)
            if kind is None:
                raise SipError(f"transport {name!r} is not supported (udp, tcp)")
            tcfg = self.pj.TransportConfig()
            tcfg.port = c.port
            tcfg.boundAddress = c.host
            try:
                self.ep.transportCreate(kind, tcfg)
            except self.pj.Error as exc:
                raise SipError(f"cannot listen for SIP on {name} {c.host}:{c.port}: {exc.reason}") from None
        if c.tls_port:
            self._create_tls()
        if c.spread:
            self.spreader = Spreader(self)
            self.spreader.register()
        self.ep.libStart()
        self.ep.audDevManager().setNullDev()
        for info in self.ep.codecEnum2():
            self.ep.codecSetPriority(info.codecId, c.codecs.get(info.codecId, 0))
        acfg = self.pj.AccountConfig()
        acfg.idUri = f"sip:{c.user_agent}@{c.host}:{c.port}"
        acfg.mediaConfig.transportConfig.port = c.rtp_port
        acfg.mediaConfig.transportConfig.boundAddress = c.host
        if c.contact:
            acfg.sipConfig.contactForced = c.contact
        self.account = self.cls.Account(self)
        self.account.create(acfg, True)
        if self.reg_module is not None:
            self.desk_phones = self._self_check()

    def _self_check(self) -> bool:
        """Send ourselves a REGISTER for a user nobody has: the module must read it and answer it.
        On failure desk phones are off (said loudly); calls work as before."""
        assert self.ep is not None and self.reg_module is not None
        if not digest_works():
            log.error("pjsip digest self-check failed: desk phones cannot register")
            self.reg_module.broken = True
            return False
        c = self.config
        if "udp" not in c.transports:
            return True  # the layout is checked on the first request instead
        host = "127.0.0.1" if c.host in ("0.0.0.0", "") else c.host
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        marker = f"unidesk-self-check-{uuid.uuid4().hex[:12]}"
        with socket.socket(family, socket.SOCK_DGRAM) as sock:
            sock.bind((host, 0))
            sock.setblocking(False)
            here = sock.getsockname()[1]
            h = f"[{host}]" if family == socket.AF_INET6 else host
            sock.sendto(
                (f"REGISTER sip:{h}:{c.port} SIP/2.0\r\nVia: SIP/2.0/UDP {h}:{here};branch=z9hG4bK{marker}\r\n"
                 f"Max-Forwards: 70\r\nFrom: <sip:{marker}@{h}>;tag=1\r\nTo: <sip:{marker}@{h}>\r\n"
                 f"Call-ID: {marker}\r\nCSeq: 1 REGISTER\r\nContent-Length: 0\r\n\r\n").encode(),
                (host, c.port),
            )
            until = time.monotonic() + 3.0
            while time.monotonic() < until:
                self.ep.libHandleEvents(10)
                try:
                    data = sock.recv(4096)
                except BlockingIOError:
                    continue
                # The registrar's answers for a user nobody has: 404, or 503 before the users are known.
                if data.startswith((b"SIP/2.0 404", b"SIP/2.0 503")) and self.reg_module.seen and not self.reg_module.broken:
                    return True
                log.error("REGISTER self-check: unexpected answer %r", data[:80])
                break
        log.error("REGISTER self-check failed: desk phones cannot register (the SIP module did not read the request)")
        self.reg_module.broken = True
        return False

    # ------------------------------------------------------------ registrations (pjsua2 thread)

    def _register(self, text: str, remote: str) -> Reply | None:
        reply, reg = self.registrar.handle(text, remote, time.time())
        if reply.code >= 300:
            log.info("REGISTER from %s: %s %s", remote, reply.code, reply.reason)
        if reg is not None:
            self.emit(Registered(reg.user, reg.contact, reg.expires, reg.remote))
        return reply

    def set_users(self, users: list[SipUser], done: concurrent.futures.Future[None] | None = None) -> None:
        """Command: the desk phones that may register (bindings of removed users end)."""
        now = time.time()
        for reg in self.registrar.set_users(users, now):
            self.emit(Registered(reg.user, reg.contact, 0, reg.remote))
        # The bindings that stand, again: an owner that sends the users (a hub after a restart) learns them.
        for user, (contact, until, remote) in self.registrar.bindings.items():
            self.emit(Registered(user, contact, max(1, int(until - now)), remote))
        if done is not None and not done.done():  # the asking side may have given up (cancelled) meanwhile
            done.set_result(None)

    def _expire_registrations(self) -> None:
        if self.registrar.bindings:
            for reg in self.registrar.expire(time.time()):
                self.emit(Registered(reg.user, reg.contact, 0, reg.remote))

    def _create_tls(self) -> None:
        c = self.config
        for what, path in (("certificate", c.tls_cert), ("private key", c.tls_key)):
            if not path:
                raise SipError(f"SIP over TLS on port {c.tls_port} needs a {what} file")
            if not os.access(path, os.R_OK):
                raise SipError(f"SIP over TLS: the {what} file {path!r} does not exist or cannot be read")
        # pjsip reads the files only when a connection comes: checked now, so a bad pair fails the start.
        try:
            ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER).load_cert_chain(c.tls_cert, c.tls_key, password=lambda: b"")
        except (ssl.SSLError, OSError) as exc:
            raise SipError(
                f"SIP over TLS: {c.tls_cert!r} and {c.tls_key!r} are not a PEM certificate chain and its "
                f"unencrypted private key ({exc})"
            ) from None
        tcfg = self.pj.TransportConfig()
        tcfg.port = c.tls_port
        tcfg.boundAddress = c.host
        tls = tcfg.tlsConfig
        tls.certFile = c.tls_cert
        tls.privKeyFile = c.tls_key
        # TLS 1.2 and 1.3 only (pjsip's default still offers 1.0 and 1.1).
        tls.proto = self.pj.PJ_SSL_SOCK_PROTO_TLS1_2 | self.pj.PJ_SSL_SOCK_PROTO_TLS1_3
        tls.verifyServer = False  # a trunk's certificate is not checked yet (docs/sip.md)
        try:
            self.ep.transportCreate(self.pj.PJSIP_TRANSPORT_TLS, tcfg)
        except self.pj.Error as exc:
            # The port taken, an address that is not ours, ...
            raise SipError(f"cannot listen for SIP over TLS on {c.host}:{c.tls_port}: {exc.reason}") from None

    def stop(self) -> None:
        """Command: hang up everything, then leave the loop (the thread then frees pjsua2)."""
        self._running = False

    def _shutdown(self) -> None:
        ep = self.ep
        if ep is not None and self.account is not None:
            # By id, never a loop variable: a Call object still referenced from this frame would be
            # freed after libDestroy, and pjsua asserts (aborting the process) on its slot then.
            for call_id in list(self.calls):
                self._hangup_now(self.calls[call_id], 0, "")
            # Let BYE/CANCEL go out and the DISCONNECTED callbacks run (bounded).
            until = time.monotonic() + 2.0
            while self.calls and time.monotonic() < until:
                ep.libHandleEvents(10)
            for call_id in list(self.calls):
                self._finish(self.calls[call_id], 503, "Service Unavailable", local=True)
        self._bury()
        self._destroy()

    def _destroy(self) -> None:
        # Calls, ports and the account first: libDestroy asserts on live pjsua2 objects.
        self.calls.clear()
        self._graveyard.clear()
        for key in list(self.trunks):
            self._drop_trunk(key, report=False)
        # Ports off the conference bridge before they are freed (bridge/ports.py), while the clock runs.
        if self.ep is not None:
            ep = self.ep
            self.ports.close(lambda: ep.libHandleEvents(10))
        # pjsua2 objects caught in reference cycles go now, while their Endpoint lives: freed later by the
        # collector, a port would be taken off the next Endpoint's conference bridge (slot numbers repeat).
        gc.collect()
        if self.account is not None:
            try:
                self.account.shutdown()
            except self.pj.Error:
                pass
            self.account = None
        if self.ep is not None:
            try:
                self.ep.libDestroy()
            except self.pj.Error as exc:
                log.warning("libDestroy: %s", exc.info())
            self.ep = None

    # ------------------------------------------------------------ inbound

    def incoming(self, account: _Account, prm: pj.OnIncomingCallParam) -> None:
        self._seq += 1
        call_id = f"l{self.config.lane}-in{self._seq}" if self.config.lane else f"in{self._seq}"
        call = self.cls.Call(self, account, call_id, prm.callId)
        call.deadline = time.monotonic() + self.config.answer_timeout
        self.calls[call_id] = call
        ci = call.getInfo()
        message = prm.rdata.wholeMsg
        call.sip_id = ci.callIdString or header(message, "Call-ID", "i") or ""
        self.sip_ids.add(call.sip_id)
        remote = prm.rdata.srcAddress
        transport = via_transport(message) or "udp"
        if self.config.forwarder and remote == self.config.forwarder:
            # Passed on by lane 0 (bridge/spread.py), which names the caller's address and, for a TCP or TLS
            # caller, its transport (and drops any such header a caller sent).
            source = header(message, SOURCE_HEADER)
            if source:
                remote, _, kind = source.partition(";transport=")
                transport = kind.strip() or transport
        if transport == "udp" and content_length_mismatch(message):
            # Never offered to the owner; the loop ignores the CallEnded of an unknown call.
            log.info("INVITE from %s: body shorter than Content-Length, 400", remote)
            self.count("refused-400")
            self._hangup_now(call, 400, "Content-Length Mismatch")
            return
        repeated = repeated_headers(message)
        if repeated:
            # pjsip keeps the first of each; a request with two To or two Call-IDs is malformed (400).
            log.info("INVITE from %s: repeated %s, 400", remote, ", ".join(repeated))
            self.count("refused-400")
            self._hangup_now(call, 400, "Multiple Values In Single-Value Header")
            return
        guard = self.config.guard
        pending = sum(1 for a in self.peers for c in list(a.calls.values()) if c.deadline is not None) - 1
        why = guard.check(remote, pending, time.monotonic())
        if why is not None:
            # Overloaded (bridge/guard.py): 503 with Retry-After, and the owner never hears of it.
            self.count(f"refused-503-{why}")
            self._hangup_now(call, 503, "Service Unavailable", retry_after=guard.retry_after)
            return
        self.count("offered")
        name, from_uri = split_name_addr(ci.remoteUri)
        _, to_uri = split_name_addr(ci.localUri)
        self.emit(
            IncomingCall(
                call_id=call_id,
                from_uri=from_uri,
                to_uri=to_uri,
                to_user=uri_user(to_uri),
                caller=uri_user(from_uri),
                caller_name=name,
                remote=remote,
                transport=transport,
                sip_call_id=call.sip_id,
            )
        )

    def _expire(self) -> None:
        now = time.monotonic()
        for call in list(self.calls.values()):
            if call.refusal is not None and now >= call.refusal[0]:
                _, code, reason, retry_after = call.refusal
                call.refusal = None
                self._hangup_now(call, code, reason, retry_after)
            elif call.deadline is not None and now >= call.deadline:
                call.deadline = None
                log.info("call %s: not answered within %.0f s, rejecting with 503", call.call_id, self.config.answer_timeout)
                self._hangup_now(call, 503, "Service Unavailable")

    # ------------------------------------------------------------ commands (pjsua2 thread)

    def answer(self, call_id: str, leg: LegPort) -> None:
        call = self._get(call_id)
        if call is None:
            return
        call.deadline = None
        call.leg = leg
        if call.port is not None:
            call.port.leg = leg
        call.answered = True
        self.count("answered")
        prm = self.pj.CallOpParam(True)
        prm.statusCode = 200
        call.answer(prm)

    def ring(self, call_id: str) -> None:
        call = self._get(call_id)
        if call is None or call.ringing_sent:
            return
        call.ringing_sent = True
        prm = self.pj.CallOpParam(True)
        prm.statusCode = 180
        call.answer(prm)

    def hangup(self, call_id: str, code: int, reason: str, retry_after: int | None = None) -> None:
        call = self._get(call_id)
        if call is not None:
            self._hangup_now(call, code, reason, retry_after)

    def attach(self, call_id: str, leg: LegPort) -> None:
        call = self._get(call_id)
        if call is None:
            return
        call.leg = leg
        if call.port is not None:
            call.port.leg = leg

    def send_dtmf(self, call_id: str, digits: str) -> None:
        call = self._get(call_id)
        if call is None:
            return
        prm = self.pj.CallSendDtmfParam()
        prm.digits = digits
        prm.method = self.pj.PJSUA_DTMF_METHOD_RFC2833
        call.sendDtmf(prm)

    def set_trunks(self, trunks: list[Trunk]) -> None:
        """Command: these trunks and no others; a changed trunk gets a new account (and registration)."""
        wanted = {t.key: t for t in trunks}
        for key, acc in list(self.trunks.items()):
            if wanted.get(key) != acc.trunk:
                self._drop_trunk(key, report=acc.trunk.register and not self.config.lane)
            elif acc.last is not None:
                self.emit(acc.last)  # told again: the owner may have lost it (a restarted hub)
        for key, trunk in wanted.items():
            if key not in self.trunks:
                try:
                    self._add_trunk(trunk)
                except self.pj.Error as exc:
                    # A host pjsip cannot parse, ...: the trunk is reported failed, the others go on.
                    log.warning("trunk %s: %s", key, exc.reason)
                    if not self.config.lane:  # every lane has the trunk; lane 0 speaks for them
                        self.emit(Registration(key, "failed", _status_of(exc), exc.reason or exc.title, 0))

    def _add_trunk(self, t: Trunk) -> None:
        c = self.config
        acfg = self.pj.AccountConfig()
        acfg.idUri = f"sip:{t.username}@{t.host}"
        # Registered from lane 0 only; other lanes dial through it with the same credentials.
        register = t.register and not c.lane
        acfg.regConfig.registerOnAdd = register
        if register:
            acfg.regConfig.registrarUri = trunk_uri(t.host, t.transport)
            acfg.regConfig.timeoutSec = t.expires
            acfg.regConfig.retryIntervalSec = RETRY_SECONDS
            acfg.regConfig.firstRetryIntervalSec = RETRY_SECONDS
        # The credentials answer any 401/407 of this account's REGISTERs and INVITEs (RFC 3261 §22.2).
        acfg.sipConfig.authCreds.append(self.pj.AuthCredInfo("digest", t.realm or "*", t.username, 0, t.password))
        acfg.mediaConfig.transportConfig.port = c.rtp_port
        acfg.mediaConfig.transportConfig.boundAddress = c.host
        if c.contact:
            acfg.sipConfig.contactForced = c.contact
        acc = self.cls.TrunkAccount(self, t)
        acc.create(acfg, False)
        self.trunks[t.key] = acc
        log.info("trunk %s: %s via %s%s", t.key, t.host, t.transport, ", registering" if t.register else "")

    def _drop_trunk(self, key: str, *, report: bool) -> None:
        acc = self.trunks.pop(key)
        try:
            acc.shutdown()  # pjsua unregisters a registered account on the way out
        except self.pj.Error as exc:
            log.info("trunk %s: shutdown: %s", key, exc.reason)
        if report:
            self.emit(Registration(key, "unregistered", 0, "trunk removed", 0))

    def reg_state(self, acc: _TrunkAccount, code: int, reason: str, expires: int) -> None:
        state = registration_state(code, expires)
        log.info("trunk %s: registration %s (%s %s)", acc.trunk.key, state, code, reason)
        acc.last = Registration(acc.trunk.key, state, code, reason, expires if state == "registered" else 0)
        self.emit(acc.last)

    def dial(self, call_id: str, uri: str, from_uri: str | None, trunk: str | None = None) -> None:
        account: pj.Account | None = self.account
        if trunk is not None:
            account = self.trunks.get(trunk)
        call = self.cls.Call(self, account or self.account, call_id)
        self.calls[call_id] = call
        if account is None:
            self._finish(call, 503, f"trunk {trunk} is not configured on this media worker", local=False)
            return
        prm = self.pj.CallOpParam(True)
        if from_uri:
            prm.txOption.localUri = from_uri
        try:
            call.makeCall(uri, prm)
        except self.pj.Error as exc:
            # Nothing was sent (bad URI, no transport, too many calls): report it as ended.
            self._finish(call, _status_of(exc), exc.reason or exc.title, local=False)

    def _get(self, call_id: str) -> _Call | None:
        call = self.calls.get(call_id)
        if call is None or call.ended:
            log.info("call %s: gone, command ignored", call_id)
            return None
        return call

    def _hangup_now(self, call: _Call, code: int, reason: str, retry_after: int | None = None) -> None:
        call.local_end = True
        call.deadline = None
        if not call.outbound and not call.answered and self._running:
            hold = call.created + MIN_REFUSAL_AGE
            if time.monotonic() < hold:
                if call.refusal is None:
                    call.refusal = (hold, code, reason, retry_after)  # sent by _expire
                return
        prm = self.pj.CallOpParam(True)
        prm.statusCode = code
        if reason:
            prm.reason = reason
        if retry_after is not None:
            header = self.pj.SipHeader()
            header.hName = "Retry-After"
            header.hValue = str(retry_after)
            prm.txOption.headers.append(header)
        try:
            call.hangup(prm)
        except self.pj.Error as exc:
            log.info("call %s: hangup: %s", call.call_id, exc.reason)

    # ------------------------------------------------------------ callbacks (pjsua2 thread)

    def call_state(self, call: _Call) -> None:
        ci = call.getInfo()
        state = ci.state
        if state == self.pj.PJSIP_INV_STATE_DISCONNECTED:
            self._finish(call, ci.lastStatusCode, ci.lastReason, local=call.local_end, in_callback=True)
        elif call.outbound and state == self.pj.PJSIP_INV_STATE_EARLY and not call.ringing_sent:
            call.ringing_sent = True
            self.emit(CallProgress(call.call_id, "ringing"))
        elif call.outbound and state == self.pj.PJSIP_INV_STATE_CONFIRMED:
            self.emit(CallProgress(call.call_id, "answered"))

    def media_state(self, call: _Call) -> None:
        ci = call.getInfo()
        for mi in ci.media:
            if mi.type != self.pj.PJMEDIA_TYPE_AUDIO or mi.status != self.pj.PJSUA_CALL_MEDIA_ACTIVE:
                continue
            media = call.getAudioMedia(mi.index)
            if call.port is None:
                call.port = self.ports.take(call.leg)
            if call.media is None or call.media.getPortId() != media.getPortId():
                call.media = media
                media.startTransmit(call.port)
                call.port.startTransmit(media)
            return

    def _finish(self, call: _Call, code: int, reason: str, *, local: bool, in_callback: bool = False) -> None:
        if call.ended:
            return
        call.ended = True
        self.calls.pop(call.call_id, None)
        self.sip_ids.discard(call.sip_id)
        port = call.port
        if port is not None:
            cost = self._ended_cost
            cost[0] += port.rx_ns
            cost[1] += port.rx_frames
            cost[2] += port.tx_ns
            cost[3] += port.tx_frames
            # Lent to another call once it has rested (late frames of this one find no leg).
            self.ports.give_back(port, time.monotonic())
            call.port = None
        if in_callback:
            # Freed as the DISCONNECTED callback returns (pjsua2's own samples `delete this` there):
            # pjsua frees the call's slot right after, and a Call object deleted later would hang up
            # whatever call took the slot meanwhile (its destructor hangs up by slot number), then
            # abort the process when freed at shutdown. A burst of INVITEs showed both.
            call.media = None
        else:
            # Not from a pjsua callback (shutdown, a dial that never started): freed on the next turn.
            self._graveyard.append(call)
        self.emit(CallEnded(call.call_id, int(code), reason, "local" if local else "remote"))

    def _bury(self) -> None:
        self.ports.tick(time.monotonic())
        if self._graveyard:
            dead, self._graveyard = self._graveyard, []
            for call in dead:
                call.media = None
            dead.clear()

    def port_cost(self) -> tuple[int, int, int, int]:
        """(rx_ns, rx_frames, tx_ns, tx_frames) summed over every call so far (timed ports only).

        Read from another thread: advisory figures, not a consistent snapshot."""
        rx_ns, rx_n, tx_ns, tx_n = self._ended_cost
        for call in list(self.calls.values()):
            p = call.port
            if p is not None:
                rx_ns, rx_n, tx_ns, tx_n = rx_ns + p.rx_ns, rx_n + p.rx_frames, tx_ns + p.tx_ns, tx_n + p.tx_frames
        return rx_ns, rx_n, tx_ns, tx_n


def _forget_frames(exc: BaseException | None) -> None:
    """Clear the locals of every frame in an exception chain (they may hold the Endpoint)."""
    seen = set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        traceback.clear_frames(exc.__traceback__)
        exc = exc.__cause__ or exc.__context__


def _status_of(exc: pj.Error) -> int:
    """A SIP-like code for a local failure: pjsip folds SIP codes into status 170000+code."""
    status = int(exc.status)
    if 170100 <= status < 170700:
        return status - 170000
    return 500
