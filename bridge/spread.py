"""One SIP address for callers, several lanes behind it: lane 0 passes requests on, statelessly.

Callers (carriers, trunks, phones) know one SIP port: lane 0's. A pjsip
module in lane 0 (priority 15, before the transaction layer) looks at every
UDP request there and decides which lane owns it:

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

Only UDP is spread: SIP over TCP and TLS stay on lane 0 (four calls).
"""

from __future__ import annotations

import ctypes
import hashlib
import ipaddress
import logging
import re
import time
from typing import TYPE_CHECKING

from .pjmodule import PJ_FALSE, PJ_TRUE, Module, _lib, _pjstr, _RxCallback, find_layout

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
PJSIP_TRANSPORT_UDP, PJSIP_TRANSPORT_UDP6 = 1, 1 | 128  # pjsip_transport_type_e (| PJSIP_TRANSPORT_IPV6)

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
_HEADER = re.compile(r"^([A-Za-z0-9.!%*_+`'~-]+)\s*:\s*(.*)$")
_TAG = re.compile(r";\s*tag\s*=", re.IGNORECASE)
_SENT_BY = re.compile(r"^SIP\s*/\s*2\.0\s*/\s*\w+\s+(\[[^\]]+\]|[^;:\s]+)(?::(\d+))?", re.IGNORECASE)


def _param(via: str, name: str) -> str | None:
    m = re.search(rf";\s*{name}(?:\s*=\s*([^;,\s]*))?", via, re.IGNORECASE)
    if m is None:
        return None
    return m.group(1) or ""


def _split(text: str) -> tuple[list[str], str]:
    """Header lines (folded lines joined) and the body (untouched) of a message."""
    m = re.search(r"\r?\n\r?\n", text)
    head, body = (text[: m.start()], text[m.end():]) if m else (text, "")
    lines: list[str] = []
    for line in re.split(r"\r?\n", head):
        if line[:1] in (" ", "\t") and lines:
            lines[-1] += " " + line.strip()
        else:
            lines.append(line)
    return lines, body


def _join(lines: list[str], body: str) -> bytes:
    return ("\r\n".join(lines) + "\r\n\r\n" + body).encode("utf-8", "surrogateescape")


def _name(line: str) -> tuple[str, str] | None:
    m = _HEADER.match(line)
    return (m.group(1).lower(), m.group(2)) if m else None


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
        self.sent_by = ""
        self.passed = 0
        self._swept = 0.0
        self._res = _RxCallback(self._on_rx_response)
        self.module.on_rx_response = ctypes.cast(self._res, c_void_p).value

    def register(self) -> None:
        """Add the module to lane 0's endpoint (after its transports exist, on its thread)."""
        ep = self.agent.ep
        assert ep is not None
        for tid in ep.transportEnum():
            info = ep.transportGetInfo(tid)
            if info.typeName.upper() == "UDP":
                self.sent_by = info.localName
                break
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
            lines, body = _split(text)
            m = _REQUEST.match(lines[0])
            if m is None:
                return PJ_FALSE
            method, ruri = m.group(1).upper(), m.group(2)
            call_id, to, top_via = "", "", None
            for i, line in enumerate(lines[1:], 1):
                h = _name(line)
                if h is None:
                    continue
                if h[0] in ("call-id", "i"):
                    call_id = h[1].strip()
                elif h[0] in ("to", "t"):
                    to = h[1]
                elif h[0] in ("via", "v") and top_via is None:
                    top_via = i
            if top_via is None or not call_id:
                return PJ_FALSE
            via = lines[top_via].split(":", 1)[1].split(",", 1)[0]
            if not re.match(r"\s*SIP\s*/\s*2\.0\s*/\s*UDP\b", via, re.IGNORECASE):
                return PJ_FALSE  # TCP and TLS stay on lane 0
            now = time.monotonic()
            self._sweep(now)
            lane: int | None = None
            tagged = _LANE.search(ruri.split("?", 1)[0])
            if tagged is not None:
                lane = int(tagged.group(1))
            elif call_id in self.affinity:
                lane = self.affinity[call_id][0]
            elif method == "INVITE" and not _TAG.search(to):
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
            remote = self.layout.remote(rdata) or ""
            if not remote:
                return PJ_FALSE
            self._forward(lines, body, top_via, remote, lane)
            return PJ_TRUE
        except Exception:  # never let an exception cross into pjsip; the request stays on lane 0
            log.exception("passing a request on to a lane failed")
            return PJ_FALSE

    def _forward(self, lines: list[str], body: str, top_via: int, remote: str, lane: int) -> None:
        ip, port = _address(remote)
        name, _, value = lines[top_via].partition(":")
        first, comma, rest = value.partition(",")
        branch_of = first.strip()
        stamped = re.sub(r";\s*(received|rport)(\s*=\s*[^;,\s]*)?", "", first.rstrip(), flags=re.IGNORECASE)
        stamped += f";received={ip}"
        if _param(first, "rport") is not None:
            stamped += f";rport={port}"
        lines[top_via] = f"{name}:{stamped}{comma}{rest}"
        digest = hashlib.sha1(f"{lane}|{branch_of}".encode()).hexdigest()[:20]
        own = [f"Via: SIP/2.0/UDP {self.sent_by};rport;branch={BRANCH_PREFIX}{digest}", f"{SOURCE_HEADER}: {remote}"]
        kept = [lines[0]] + [x for x in lines[1:top_via] if (_name(x) or ("",))[0] != SOURCE_HEADER.lower()]
        tail = [x for x in lines[top_via:] if (_name(x) or ("",))[0] != SOURCE_HEADER.lower()]
        self._send(_join(kept + own + tail, body), *self.targets[lane])
        self.passed += 1

    def _on_rx_response(self, rdata: int) -> int:
        try:
            text = self._text(rdata, False)
            if text is None:
                return PJ_FALSE
            lines, body = _split(text)
            vias = [i for i, line in enumerate(lines) if (_name(line) or ("",))[0] in ("via", "v")]
            if not vias:
                return PJ_FALSE
            top = vias[0]
            name, _, value = lines[top].partition(":")
            first, comma, rest = value.partition(",")
            if BRANCH_PREFIX.lower() not in (_param(first, "branch") or "").lower():
                return PJ_FALSE  # an answer to lane 0's own request
            if comma:
                lines[top] = f"{name}:{rest}"
                nxt = rest.split(",", 1)[0]
            else:
                del lines[top]
                if len(vias) < 2:
                    return PJ_TRUE  # nobody to pass it to: dropped
                nxt = lines[vias[1] - 1].partition(":")[2].split(",", 1)[0]
            m = _SENT_BY.match(nxt.strip())
            if m is None:
                return PJ_TRUE
            host = _param(nxt, "received") or m.group(1).strip("[]")
            rport = _param(nxt, "rport")
            port = int(rport) if rport else int(m.group(2) or 5060)
            for line in lines[1:]:
                h = _name(line)
                if h is not None and h[0] in ("call-id", "i") and h[1].strip() in self.affinity:
                    lane, first_at, _ = self.affinity[h[1].strip()]
                    self.affinity[h[1].strip()] = (lane, first_at, time.monotonic())
            self._send(_join(lines, body), host, port)
            return PJ_TRUE
        except Exception:  # never let an exception cross into pjsip
            log.exception("passing a response back from a lane failed")
            return PJ_FALSE

    def _send(self, data: bytes, host: str, port: int) -> None:
        try:
            ip = ipaddress.ip_address(host)
        except ValueError:
            log.info("cannot pass a message to %r (not an address)", host)
            return
        keep: list[object] = []
        addr = ctypes.create_string_buffer(64)
        h = _pjstr(str(ip).encode(), keep)
        family = 10 if ip.version == 6 else 2  # pj_AF_INET6() / pj_AF_INET() on Linux
        if _lib.pj_sockaddr_init(family, addr, ctypes.byref(h), port) != 0:
            return
        buf = ctypes.create_string_buffer(data, len(data))
        kind = PJSIP_TRANSPORT_UDP if ip.version == 4 else PJSIP_TRANSPORT_UDP6
        status = _lib.pjsip_endpt_send_raw(self.endpt, kind, None, buf, len(data), addr,
                                           _lib.pj_sockaddr_get_len(addr), None, None)
        if status not in (0, 70002):  # PJ_SUCCESS, PJ_EPENDING
            log.info("could not pass a message on to %s:%s (status %s)", host, port, status)

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

