"""One SIP address for callers, several lanes behind it: lane 0 passes requests on, statelessly.

Callers (carriers, trunks, phones) know one SIP port: lane 0's. A pjsip
module in lane 0 (priority 15, before the transaction layer) looks at every
request there (UDP, TCP, TLS) and decides which lane owns it:

* a request whose Request-URI carries `;ul=<k>` (k > 0): lane k. A lane
  k > 0 forces its Contact to `<sip:unidesk@public-address:port;ul=k>`, so
  every in-dialog request (ACK for 2xx, BYE, re-INVITE, INFO, ...) of its
  calls comes to the public port with the lane in its Request-URI;
* a request whose Call-ID lane 0 passed on before (retransmitted INVITE,
  CANCEL, the ACK of a refusal, which keep the INVITE's Request-URI; a peer
  that ignores our Contact): the same lane (`affinity`, kept while the lane
  holds the call and AFFINITY_SECONDS after its last message);
* a new INVITE (no To tag): the lane with the most free call slots (lane 0
  first among equals; all full: lane 0, where pjsua answers 486);
* anything else: lane 0 itself, as before.

Passing on is RFC 3261 §16.11 stateless forwarding done on the message text:
lane 0 stamps the caller's top Via with `received` (and `rport`, when asked),
drops any `X-Unidesk-Source` the caller sent and adds its own with the
caller's address (a lane trusts it only from lane 0's address: trunk peers
are still checked by where the call came from), puts its own Via on top
(sent-by: its public address; the branch derived from the caller's, so a
CANCEL matches its INVITE) and sends the text from its own socket
(`pjsip_endpt_send_raw`) to the lane's port on the loopback or the bound
address. The lane answers to lane 0 (the top Via); lane 0 sees a response
with its own Via on top and another below, removes its Via and sends the
rest to the address that Via names (received / rport), again from the public
port. Requests a lane sends itself (a BYE, an outbound INVITE) leave from the
lane's own port; their answers come back there (the lane's Via).

Every hop keeps Max-Forwards (RFC 3261 §16.6 step 3: one less, 70 when
absent); a request passed on that arrives with 0, and any new INVITE with 0
(whichever lane it would go to), is answered 483 Too Many Hops by lane 0.

TCP and TLS callers (one connection each, to lane 0's port of that
transport) are spread too. The lanes listen on UDP only, so lane 0 passes
their requests on over UDP like the others and keeps what it needs to reach
the caller again in the messages themselves, not in a table: its Via on a
request passed to a lane carries the caller's flow (`uflow=tcp-<ip>-<port>`,
bridge/hop.py), which the lane's responses bring back; and the caller's
INVITE gets two Record-Route entries (RFC 5658): `<sip:udp-face;lr;
uflow=lane>` for the lane's side, `<sip:tcp-face;transport=tcp;lr;
uflow=...>` for the caller's. The caller then sends its ACK, BYE, ... over
its connection with both Routes (lane 0 takes its own off, §16.4, and goes
by the `;ul=k` Request-URI); a lane sends its BYE to lane 0's UDP port with
both, and lane 0 relays it to the flow in the second (only when it comes
from a lane's address), over the caller's connection, with its own Via of
that transport on top: the caller's answer comes back over the connection
and lane 0 hands it to the lane by the Via below. pjsip's transport manager
(`pjsip_endpt_send_raw` to a TCP/TLS address) picks the open connection to
the caller, else opens one.
"""

from __future__ import annotations

import ctypes
import hashlib
import ipaddress
import logging
import re
import time
from typing import TYPE_CHECKING

from . import hop
from .hop import FLOW_PARAM, Flow, HopError
from .pjmodule import PJ_FALSE, PJ_TRUE, Module, _lib, _pjstr, _RxCallback, find_layout, respond
from .registrar import Reply

if TYPE_CHECKING:
    from .agent import UserAgent

log = logging.getLogger(__name__)

PRIORITY = 15  # before the transaction layer (PJSIP_MOD_PRIORITY_TSX_LAYER, 16)
SOURCE_HEADER = "X-Unidesk-Source"
BRANCH_PREFIX = "z9hG4bK.ul"
# A Call-ID passed on is remembered this long after its last message (an offered call is answered or
# refused within the answer timeout; its CANCEL or the ACK of its refusal come before).
AFFINITY_SECONDS = 300.0
# An INVITE passed on counts against its lane this long, until the lane shows the call.
PENDING_SECONDS = 2.0
# A new INVITE kept on lane 0 is remembered only while it may be retransmitted (64 x T1: Timer B), so
# that a retransmission is not passed to another lane; a flood refused on lane 0 leaves little behind.
LANE0_SECONDS = 32.0
MAX_AFFINITY = 100_000
# pjsip_transport_type_e: UDP 1, TCP 2, TLS 3; | PJSIP_TRANSPORT_IPV6 (128) for the IPv6 ones.
TRANSPORT_TYPE = {"udp": 1, "tcp": 2, "tls": 3}
PJSIP_TRANSPORT_IPV6 = 128

c_void_p, c_int = ctypes.c_void_p, ctypes.c_int
_lib.pjsip_endpt_send_raw.argtypes = [c_void_p, c_int, c_void_p, c_void_p, ctypes.c_size_t, c_void_p, c_int,
                                      c_void_p, c_void_p]
_lib.pjsip_endpt_send_raw.restype = c_int
_lib.pj_sockaddr_init.argtypes = [c_int, c_void_p, c_void_p, ctypes.c_uint16]
_lib.pj_sockaddr_init.restype = c_int
_lib.pj_sockaddr_get_len.argtypes = [c_void_p]
_lib.pj_sockaddr_get_len.restype = c_int

_REQUEST = re.compile(r"^([A-Za-z]+) (\S+) SIP/2\.0$")
_LANE = re.compile(r";\s*ul=(\d+)", re.IGNORECASE)
_TAG = re.compile(r";\s*tag\s*=", re.IGNORECASE)


def _address(remote: str) -> tuple[str, int]:
    host, _, port = remote.rpartition(":")
    return host.strip("[]"), int(port)


class Spreader(Module):
    """Lane 0's module: see the module's doc. Runs on lane 0's thread (inside libHandleEvents)."""

    def __init__(self, agent: UserAgent) -> None:
        super().__init__(b"mod-unidesk-lanes", PRIORITY)
        self.agent = agent
        # Lane index → (ip, port) its UDP transport is reached at from lane 0 (set as lanes start).
        self.targets: dict[int, tuple[str, int]] = {}
        # Call-ID → (lane, first passed on, last used).
        self.affinity: dict[str, tuple[int, float, float]] = {}
        # INVITEs passed on in the last PENDING_SECONDS: Call-ID → (lane, when).
        self.pending: dict[str, tuple[int, float]] = {}
        # Lane 0's address per transport (`udp`, `tcp`, `tls`: its transports' sent-by, host:port).
        self.faces: dict[str, str] = {}
        self.sent_by = ""
        self.passed = 0
        self.too_many_hops = 0
        self._swept = 0.0
        self._res = _RxCallback(self._on_rx_response)
        self.module.on_rx_response = ctypes.cast(self._res, c_void_p).value

    def register(self) -> None:
        """Add the module to lane 0's endpoint (after its transports exist, on its thread)."""
        ep = self.agent.ep
        assert ep is not None
        for tid in ep.transportEnum():
            info = ep.transportGetInfo(tid)
            kind = info.typeName.lower().rstrip("6")
            if kind in hop.KINDS and kind not in self.faces:
                self.faces[kind] = info.localName
        self.sent_by = self.faces.get("udp", "")
        if not self.sent_by:
            raise RuntimeError("lanes need a UDP transport on lane 0")
        super().register()

    # ------------------------------------------------------------ choosing a lane

    def free_slots(self, now: float) -> dict[int, int]:
        """Free call slots per lane: capacity minus calls minus INVITEs passed on and not yet seen there."""
        free: dict[int, int] = {}
        for lane, agent in enumerate(self.agent.peers):
            if lane and (lane not in self.targets or not agent.accepting()):
                continue
            free[lane] = agent.capacity - len(agent.calls)
        for call_id in [k for k, (_, t) in self.pending.items() if now - t >= PENDING_SECONDS]:
            del self.pending[call_id]
        for call_id, (lane, _) in self.pending.items():
            if lane in free and call_id not in self.agent.peers[lane].sip_ids:
                free[lane] -= 1
        return free

    def choose(self, now: float) -> int:
        free = self.free_slots(now)
        best = max(free, key=lambda k: (free[k], -k))
        return best if free[best] > 0 else 0

    # ------------------------------------------------------------ callbacks

    def _text(self, rdata: int, request: bool) -> str | None:
        if self.broken:
            return None
        if self.layout is None:
            if not request:
                return None
            self.layout = find_layout(rdata)
            if self.layout is None:
                self.broken = True
                log.error("pjsip_rx_data layout not recognised: every call stays on lane 0")
                return None
        return self.layout.text(rdata)

    def _on_rx_request(self, rdata: int) -> int:
        try:
            text = self._text(rdata, True)
            if text is None or not self.targets:
                return PJ_FALSE
            assert self.layout is not None
            lines, body = hop.split(text)
            m = _REQUEST.match(lines[0])
            if m is None:
                return PJ_FALSE
            method, ruri = m.group(1).upper(), m.group(2)
            call_id, to = "", ""
            for line in lines[1:]:
                h = hop.name_of(line)
                if h is not None and h[0] in ("call-id", "i") and not call_id:
                    call_id = h[1].strip()
                elif h is not None and h[0] in ("to", "t") and not to:
                    to = h[1]
            vias = hop.find(lines, "via", "v")
            remote = self.layout.remote(rdata) or ""
            if not vias or not call_id or not remote:
                return PJ_FALSE
            kind = hop.via_kind(lines[vias[0]].partition(":")[2].split(",", 1)[0])
            if kind not in hop.KINDS:
                return PJ_FALSE
            now = time.monotonic()
            self._sweep(now)
            # RFC 3261 §16.4: our own Route entries (a TCP or TLS caller's dialog) come off first. A lane's
            # request in such a dialog goes to the caller's flow, named in the entry facing the caller.
            own = hop.pop_own_routes(lines)
            toward = next((v for v in (hop.param(e, FLOW_PARAM) for e in own) if v and v != "lane"), None)
            if toward is not None and kind == "udp" and self._from_lane(remote):
                return self._relay(rdata, method, lines, body, remote, Flow.parse(toward))
            lane: int | None = None
            new_invite = method == "INVITE" and not _TAG.search(to)
            tagged = _LANE.search(ruri.split("?", 1)[0])
            if tagged is not None:
                lane = int(tagged.group(1))
            elif call_id in self.affinity:
                lane = self.affinity[call_id][0]
            elif new_invite:
                if hop.max_forwards(lines) == 0:
                    # Whichever lane would take it: the caller's answer does not depend on the load.
                    return self._too_many_hops(rdata, method)
                lane = self.choose(now)
                self.affinity[call_id] = (lane, now, now)
                if lane:
                    self.pending[call_id] = (lane, now)
                if len(self.affinity) > MAX_AFFINITY:
                    del self.affinity[next(iter(self.affinity))]
            if not lane or lane not in self.targets:
                return PJ_FALSE
            if call_id in self.affinity:
                first = self.affinity[call_id][1]
                self.affinity[call_id] = (lane, first, now)
            return self._forward(rdata, method, lines, body, remote, kind, lane, new_invite)
        except HopError as exc:
            log.info("request not passed on to a lane: %s", exc)  # lane 0 (pjsip) answers it as it is
            return PJ_FALSE
        except Exception:  # never let an exception cross into pjsip; the request stays on lane 0
            log.exception("passing a request on to a lane failed")
            return PJ_FALSE

    def _from_lane(self, remote: str) -> bool:
        """Whether a message came from a lane's port: on the address lane 0 reaches it at, or on lane 0's
        own (a lane bound to every address sends to our Route, the public address, from there)."""
        ip, port = _address(remote)
        own = _address(self.sent_by)[0]
        return any(port == p and ip in (host, own) for host, p in self.targets.values())

    def _too_many_hops(self, rdata: int, method: str) -> int:
        """RFC 3261 §16.3 step 3: a request that reached us with Max-Forwards 0 is not passed on: 483
        (an ACK is dropped: it is never answered)."""
        self.too_many_hops += 1
        if method != "ACK":
            assert self.endpt is not None
            status = respond(self.endpt, rdata, Reply(483, "Too Many Hops", ()))
            if status != 0:
                log.info("could not answer 483 (status %s)", status)
        return PJ_TRUE

    def _forward(self, rdata: int, method: str, lines: list[str], body: str, remote: str, kind: str, lane: int,
                 new_invite: bool) -> int:
        """Pass a caller's request to `lane` over UDP. A TCP or TLS caller's flow rides in our Via (for the
        lane's responses) and, on its INVITE, in a Record-Route (for the lane's requests in the dialog)."""
        if hop.max_forwards(lines) == 0:
            return self._too_many_hops(rdata, method)
        ip, port = _address(remote)
        lines = hop.drop(lines, SOURCE_HEADER)
        hop.decrement_max_forwards(lines)  # RFC 3261 §16.6 step 3
        top = hop.find(lines, "via", "v")[0]
        branch_of = hop.stamp_via(lines, top, ip, port)
        digest = hashlib.sha1(f"{lane}|{branch_of}".encode()).hexdigest()[:20]
        via = f"Via: SIP/2.0/UDP {self.sent_by};rport;branch={BRANCH_PREFIX}{digest}"
        source = f"{SOURCE_HEADER}: {remote}"
        if kind != "udp":
            token = Flow.of(kind, remote).token()
            via += f";{FLOW_PARAM}={token}"
            source += f";transport={kind}"
            if new_invite:
                # RFC 3261 §16.6 step 4, RFC 5658 (two entries: one per side): the top one faces the lane
                # (the lane's requests come to our UDP port), the next faces the caller (its requests come
                # over its connection, TCP or TLS, to our port of that transport).
                face = self.faces.get(kind, self.sent_by)
                lines.insert(1, f"Record-Route: <sip:{self.sent_by};lr;{FLOW_PARAM}=lane>, "
                                f"<sip:{face};transport={kind};lr;{FLOW_PARAM}={token}>")
                top += 1
        lines[top:top] = [via, source]
        self._send(hop.join(lines, body), Flow("udp", *self.targets[lane]))
        self.passed += 1
        return PJ_TRUE

    def _relay(self, rdata: int, method: str, lines: list[str], body: str, remote: str, flow: Flow) -> int:
        """Pass a lane's request in a TCP or TLS caller's dialog (a BYE, a re-INVITE) to the caller's flow,
        with our Via of that transport on top: the caller answers over its connection, to us."""
        if hop.max_forwards(lines) == 0:
            return self._too_many_hops(rdata, method)
        ip, port = _address(remote)
        lines = hop.drop(lines, SOURCE_HEADER)
        hop.decrement_max_forwards(lines)
        top = hop.find(lines, "via", "v")[0]
        branch_of = hop.stamp_via(lines, top, ip, port)
        digest = hashlib.sha1(f"c|{branch_of}".encode()).hexdigest()[:20]
        face = self.faces.get(flow.kind, self.sent_by)
        lines.insert(top, f"Via: SIP/2.0/{flow.kind.upper()} {face};rport;branch={BRANCH_PREFIX}{digest}")
        self._send(hop.join(lines, body), flow)
        self.passed += 1
        return PJ_TRUE

    def _on_rx_response(self, rdata: int) -> int:
        try:
            text = self._text(rdata, False)
            if text is None:
                return PJ_FALSE
            lines, body = hop.split(text)
            vias = hop.find(lines, "via", "v")
            if not vias:
                return PJ_FALSE
            top = lines[vias[0]].partition(":")[2].split(",", 1)[0]
            if BRANCH_PREFIX.lower() not in (hop.param(top, "branch") or "").lower():
                return PJ_FALSE  # an answer to lane 0's own request
            popped = hop.pop_via(lines)
            if popped is None:
                return PJ_TRUE  # nobody to pass it to: dropped
            own, nxt = popped
            token = hop.param(own, FLOW_PARAM)
            if token:
                flow = Flow.parse(token)  # a TCP or TLS caller's connection
            else:
                address = hop.via_address(nxt)
                if address is None:
                    return PJ_TRUE
                flow = Flow(hop.via_kind(nxt) or "udp", *address)
            for line in lines[1:]:
                h = hop.name_of(line)
                if h is not None and h[0] in ("call-id", "i") and h[1].strip() in self.affinity:
                    lane, first_at, _ = self.affinity[h[1].strip()]
                    self.affinity[h[1].strip()] = (lane, first_at, time.monotonic())
            self._send(hop.join(lines, body), flow)
            return PJ_TRUE
        except Exception:  # never let an exception cross into pjsip
            log.exception("passing a response back from a lane failed")
            return PJ_FALSE

    def _send(self, data: bytes, flow: Flow) -> None:
        """Send from lane 0's transport of the flow's kind; over TCP and TLS, pjsip's transport manager
        picks the open connection to that address (the caller's), else opens one."""
        try:
            ip = ipaddress.ip_address(flow.host)
            kind = TRANSPORT_TYPE[flow.kind]
        except (ValueError, KeyError):
            log.info("cannot pass a message to %r over %r", flow.host, flow.kind)
            return
        keep: list[object] = []
        addr = ctypes.create_string_buffer(64)
        h = _pjstr(str(ip).encode(), keep)
        family = 10 if ip.version == 6 else 2  # pj_AF_INET6() / pj_AF_INET() on Linux
        if _lib.pj_sockaddr_init(family, addr, ctypes.byref(h), flow.port) != 0:
            return
        buf = ctypes.create_string_buffer(data, len(data))
        if ip.version == 6:
            kind |= PJSIP_TRANSPORT_IPV6
        status = _lib.pjsip_endpt_send_raw(self.endpt, kind, None, buf, len(data), addr,
                                           _lib.pj_sockaddr_get_len(addr), None, None)
        if status not in (0, 70002):  # PJ_SUCCESS, PJ_EPENDING
            log.info("could not pass a message on to %s (status %s)", flow, status)

    def _sweep(self, now: float) -> None:
        if now - self._swept < 1.0:
            return
        self._swept = now
        peers = self.agent.peers
        # Kept while the lane holds the call: a peer that sends BYE to the first Request-URI, not to our Contact.
        old = [k for k, (lane, _, last) in self.affinity.items()
               if now - last > (AFFINITY_SECONDS if lane else LANE0_SECONDS)
               and not (lane < len(peers) and k in peers[lane].sip_ids)]
        for k in old:
            del self.affinity[k]

