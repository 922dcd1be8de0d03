"""pjsip modules, registered through ctypes: one serves REGISTER requests, one answers unknown methods.

pjsua2 cannot be a registrar and the wheel has no `pjsip_auth_srv_*`, but
its `_pjsua2` library exports the pjsip functions needed to add a module
(`pjsip_endpt_register_module`), answer statelessly
(`pjsip_endpt_respond_stateless`, `pjsip_generic_string_hdr_create`,
`pj_list_insert_before`) and compute a digest response
(`pjsip_auth_create_digest`). Layouts follow pjsip 2.15's headers:
`pjsip_module` (sip_module.h), `pjsip_rx_data` (sip_transport.h),
`pjsip_cred_info` (sip_auth.h), `pjsip_hdr` (sip_msg.h).

The module sits at priority 63, just before pjsua's application module
(PJSIP_MOD_PRIORITY_APPLICATION, 64): it takes REGISTER and passes every
other request on (INVITEs still reach pjsua). Its callback runs on the SIP
thread, inside `libHandleEvents`.

`UnknownMethodModule` sits after every module pjsip and pjsua register
(priority 99; the highest they use is 65): a request reaches it only when
nobody took it. It answers an out-of-dialog request (no To tag) whose method
pjsip does not know with a stateless **501 Not Implemented** and an `Allow`
header (RFC 3261 §8.2.1), where pjsip would drop it silently; anything else
(ACK, a known method nobody took) goes on as before.

Reading the request: `pjsip_rx_data.msg_info.msg_buf/len` (the message's
text). The offset of `msg_info` depends on `PJSIP_MAX_PKT_LEN`, a build
option; it is found on the first request as the field that holds the
pointer `pjsip_rx_data_get_info()` returns (`msg_info.info`), then checked
(the text lies inside the packet buffer and starts with the method; the
source address parses). `UserAgent` sends itself a REGISTER at start-up and
turns desk phones off, loudly, if this does not work.
"""

from __future__ import annotations

import ctypes
import ipaddress
import logging
import re
from dataclasses import dataclass
from typing import Callable

from pjsua2 import _pjsua2

from .registrar import Reply

log = logging.getLogger(__name__)

# The library pjsua2 already loaded (dlopen hands back the same one): the same pjsip, the same endpoint.
_lib = ctypes.CDLL(_pjsua2.__file__)

c_void_p, c_int, c_ssize_t = ctypes.c_void_p, ctypes.c_int, ctypes.c_ssize_t

PRIORITY = 63  # before PJSIP_MOD_PRIORITY_APPLICATION (64), where pjsua takes INVITEs
PJ_TRUE, PJ_FALSE = 1, 0


class PjStr(ctypes.Structure):
    _fields_ = [("ptr", c_void_p), ("slen", c_ssize_t)]


_RxCallback = ctypes.CFUNCTYPE(c_int, c_void_p)


class PjsipModule(ctypes.Structure):
    _fields_ = [
        ("prev", c_void_p), ("next", c_void_p), ("name", PjStr), ("id", c_int), ("priority", c_int),
        ("load", c_void_p), ("start", c_void_p), ("stop", c_void_p), ("unload", c_void_p),
        ("on_rx_request", _RxCallback), ("on_rx_response", c_void_p), ("on_tx_request", c_void_p),
        ("on_tx_response", c_void_p), ("on_tsx_state", c_void_p),
    ]


class HdrList(ctypes.Structure):
    """A `pjsip_hdr` used as a list head (only prev/next are read; the rest is room)."""

    _fields_ = [("prev", c_void_p), ("next", c_void_p), ("rest", ctypes.c_byte * 64)]


class CredInfo(ctypes.Structure):
    _fields_ = [
        ("realm", PjStr), ("scheme", PjStr), ("username", PjStr), ("data_type", c_int), ("data", PjStr),
        ("algorithm_type", c_int), ("ext", PjStr * 3), ("cb", c_void_p), ("room", ctypes.c_byte * 64),
    ]


PJSIP_CRED_DATA_DIGEST = 1

_lib.pjsua_get_pjsip_endpt.restype = c_void_p
_lib.pjsip_endpt_register_module.argtypes = [c_void_p, c_void_p]
_lib.pjsip_endpt_register_module.restype = c_int
_lib.pjsip_endpt_respond_stateless.argtypes = [c_void_p, c_void_p, c_int, c_void_p, c_void_p, c_void_p]
_lib.pjsip_endpt_respond_stateless.restype = c_int
_lib.pjsip_generic_string_hdr_create.argtypes = [c_void_p, c_void_p, c_void_p]
_lib.pjsip_generic_string_hdr_create.restype = c_void_p
_lib.pj_list_insert_before.argtypes = [c_void_p, c_void_p]
_lib.pj_list_insert_before.restype = None
_lib.pjsip_rx_data_get_info.argtypes = [c_void_p]
_lib.pjsip_rx_data_get_info.restype = c_void_p
_lib.pjsip_endpt_get_capability.argtypes = [c_void_p, c_int, c_void_p]
_lib.pjsip_endpt_get_capability.restype = c_void_p
_lib.pjsip_hdr_print_on.argtypes = [c_void_p, c_void_p, ctypes.c_size_t]
_lib.pjsip_hdr_print_on.restype = c_int
_lib.pjsip_auth_create_digest.argtypes = [c_void_p] * 9
_lib.pjsip_auth_create_digest.restype = c_int


def _pjstr(data: bytes, keep: list[object]) -> PjStr:
    buf = ctypes.create_string_buffer(data, len(data) + 1)
    keep.append(buf)
    return PjStr(ctypes.cast(buf, c_void_p), len(data))


def pj_digest(ha1: str, nonce: str, nc: str, cnonce: str, qop: str, uri: str, realm: str, method: str) -> str:
    """The digest `response` (RFC 2617 §3.2.2.1) computed by pjsip from HA1."""
    keep: list[object] = []
    out = ctypes.create_string_buffer(128)
    result = PjStr(ctypes.cast(out, c_void_p), 64)
    cred = CredInfo()
    cred.realm = _pjstr(realm.encode(), keep)
    cred.scheme = _pjstr(b"Digest", keep)
    cred.data_type = PJSIP_CRED_DATA_DIGEST
    cred.data = _pjstr(ha1.encode(), keep)
    args = [_pjstr(v.encode(), keep) for v in (nonce, nc, cnonce, qop, uri, realm)]
    method_s = _pjstr(method.encode(), keep)
    status = _lib.pjsip_auth_create_digest(
        ctypes.byref(result), *(ctypes.byref(a) if a.slen else None for a in args[:4]),
        ctypes.byref(args[4]), ctypes.byref(args[5]), ctypes.byref(cred), ctypes.byref(method_s),
    )
    if status != 0 or not 0 < result.slen <= 64:
        raise RuntimeError(f"pjsip_auth_create_digest failed (status {status})")
    return ctypes.string_at(out, result.slen).decode("ascii")


def digest_works() -> bool:
    """RFC 2617 §3.5's example through pjsip: the known response or nothing."""
    try:
        ha1 = "939e7578ed9e3c518a452acee763bce9"  # MD5("Mufasa:testrealm@host.com:Circle Of Life")
        got = pj_digest(ha1, "dcd98b7102dd2f0e8b11d0f600bfb0c093", "00000001", "0a4f113b", "auth",
                        "/dir/index.html", "testrealm@host.com", "GET")
        return got == "6629fae49393a05397450978507c4ef1"
    except Exception:  # any failure here means: the digest cannot be trusted
        log.exception("pjsip digest self-check")
        return False


# pjsip_rx_data: tp_info (pool, transport, tp_data, op_key = pj_ioqueue_op_key_t (34 pointers) + rdata)
# is 304 bytes; pkt_info starts with a pj_time_val (16), then the packet buffer.
PACKET = 304 + 16
# From the end of the packet buffer: zero (4, padded to 8), len (8), src_addr (28), src_addr_len (4),
# src_name[46] (padded to 48), src_port (4, struct padded to 8): msg_info follows 104 bytes after.
TAIL = 104
SRC_NAME, SRC_PORT = 48, 96


@dataclass(frozen=True)
class Layout:
    msg_buf: int
    "Offset of msg_info.msg_buf in pjsip_rx_data."

    @property
    def max_pkt(self) -> int:
        return self.msg_buf - TAIL - PACKET

    def text(self, rdata: int) -> str | None:
        start = c_void_p.from_address(rdata + self.msg_buf).value or 0
        n = c_int.from_address(rdata + self.msg_buf + 8).value
        packet = rdata + PACKET
        if not (packet <= start < packet + self.max_pkt and 0 < n <= self.max_pkt and start + n <= packet + self.max_pkt):
            return None
        return ctypes.string_at(start, n).decode("utf-8", "replace")

    def remote(self, rdata: int) -> str | None:
        end = rdata + PACKET + self.max_pkt
        name = ctypes.string_at(end + SRC_NAME, 46).split(b"\0", 1)[0].decode("ascii", "replace")
        port = c_int.from_address(end + SRC_PORT).value
        try:
            ip = ipaddress.ip_address(name)
        except ValueError:
            return None
        if not 0 < port < 65536:
            return None
        return f"[{ip}]:{port}" if ip.version == 6 else f"{ip}:{port}"


_METHOD = re.compile(r"^[A-Z]+ \S+ SIP/2\.0\r?\n")
# Any method RFC 3261 §25.1 allows (a token).
_TOKEN_METHOD = re.compile(r"^([A-Za-z0-9.!%*_+`'~-]+) \S+ SIP/2\.0\r?\n")


def find_layout(rdata: int, request_line: re.Pattern[str] = _METHOD) -> Layout | None:
    """Locate msg_info in a received request (see the module's doc) and check it."""
    info = _lib.pjsip_rx_data_get_info(rdata)
    if not info:
        return None
    guesses = [PACKET + n + TAIL + 24 for n in (4000, 2000, 8000)]
    for off in guesses:
        if c_void_p.from_address(rdata + off).value == info:
            layout = Layout(off - 24)
            text = layout.text(rdata)
            if text is not None and request_line.match(text) and layout.remote(rdata) is not None:
                return layout
    return None


Handler = Callable[[str, str], Reply | None]


class Module:
    """What our modules share: the `pjsip_module` (kept alive here with its name and request callback,
    `_on_rx_request`, which subclasses define), the layout of the requests it reads, and its registration."""

    def __init__(self, name: bytes, priority: int) -> None:
        self.layout: Layout | None = None
        self.broken = False
        self._keep: list[object] = []
        self._callback = _RxCallback(self._on_rx_request)
        self.module = PjsipModule()
        self.module.name = _pjstr(name, self._keep)
        self.module.id = -1
        self.module.priority = priority
        self.module.on_rx_request = self._callback
        self.endpt: int | None = None

    def _on_rx_request(self, rdata: int) -> int:
        raise NotImplementedError

    def register(self) -> None:
        """Add the module to pjsua's endpoint (after libInit, on the SIP thread)."""
        self.endpt = _lib.pjsua_get_pjsip_endpt()
        status = _lib.pjsip_endpt_register_module(self.endpt, ctypes.byref(self.module))
        if status != 0:
            raise RuntimeError(f"pjsip_endpt_register_module failed (status {status})")


class RegisterModule(Module):
    """The module; `handler(text, remote)` answers a REGISTER (None: not handled)."""

    def __init__(self, handler: Handler) -> None:
        super().__init__(b"mod-unidesk-registrar", PRIORITY)
        self.handler = handler
        self.seen = 0

    def _on_rx_request(self, rdata: int) -> int:
        try:
            if self.broken:
                return PJ_FALSE
            if self.layout is None:
                self.layout = find_layout(rdata)
                if self.layout is None:
                    self.broken = True
                    log.error("pjsip_rx_data layout not recognised: desk phones cannot register")
                    return PJ_FALSE
            text = self.layout.text(rdata)
            if text is None or not text.startswith("REGISTER "):
                return PJ_FALSE
            self.seen += 1
            remote = self.layout.remote(rdata) or ""
            reply = self.handler(text, remote)
            if reply is None:
                return PJ_FALSE
            self._respond(rdata, reply)
            return PJ_TRUE
        except Exception:  # never let an exception cross into pjsip; the request goes on to pjsua
            log.exception("REGISTER handling failed")
            return PJ_FALSE

    def _respond(self, rdata: int, reply: Reply) -> None:
        assert self.endpt is not None
        if respond(self.endpt, rdata, reply) != 0:
            log.warning("could not answer a REGISTER with %s", reply.code)


def respond(endpt: int, rdata: int, reply: Reply) -> int:
    """Answer the request statelessly with `reply` (code, reason, extra headers); pjsip's status."""
    keep: list[object] = []
    pool = c_void_p.from_address(rdata).value  # tp_info.pool: lives as long as the request
    head = HdrList()
    head.prev = head.next = ctypes.addressof(head)
    for name, value in reply.headers:
        n, v = _pjstr(name.encode(), keep), _pjstr(value.encode(), keep)
        hdr = _lib.pjsip_generic_string_hdr_create(pool, ctypes.byref(n), ctypes.byref(v))
        if hdr:
            _lib.pj_list_insert_before(ctypes.byref(head), hdr)
    reason = _pjstr(reply.reason.encode(), keep)
    return int(_lib.pjsip_endpt_respond_stateless(endpt, rdata, reply.code, ctypes.byref(reason), ctypes.byref(head), None))


LAST_PRIORITY = 99  # after pjsua's modules (application 64) and dialog usages (65)
PJSIP_H_ALLOW = 4  # pjsip_hdr_e
# Methods pjsip knows (RFC 3261 and its extensions): never answered 501, even when nobody took them.
KNOWN_METHODS = frozenset({"INVITE", "ACK", "CANCEL", "BYE", "OPTIONS", "REGISTER", "PRACK", "UPDATE", "INFO",
                           "SUBSCRIBE", "NOTIFY", "REFER", "MESSAGE", "PUBLISH"})
_TO_TAG = re.compile(r";\s*tag\s*=", re.IGNORECASE)
_TO = re.compile(r"^(?:To|t)\s*:(.*)$", re.MULTILINE | re.IGNORECASE)


def endpoint_allow(endpt: int) -> str:
    """The methods the endpoint says it allows (pjsua's own `Allow`, as in its answer to OPTIONS)."""
    hdr = _lib.pjsip_endpt_get_capability(endpt, PJSIP_H_ALLOW, None)
    if not hdr:
        return ""
    buf = ctypes.create_string_buffer(1024)
    n = _lib.pjsip_hdr_print_on(hdr, buf, 1024)
    text = buf.raw[:n].decode("ascii", "replace") if n > 0 else ""
    name, _, value = text.partition(":")
    return value.strip() if name.strip().lower() == "allow" else ""


class UnknownMethodModule(Module):
    """Answers 501 to out-of-dialog requests of unknown methods that no module took; `extra`:
    methods we serve outside pjsua (REGISTER), added to pjsua's `Allow`."""

    def __init__(self, extra: tuple[str, ...] = ()) -> None:
        super().__init__(b"mod-unidesk-501", LAST_PRIORITY)
        self.extra = extra
        self.answered = 0
        self.allow = ""

    def _on_rx_request(self, rdata: int) -> int:
        try:
            if self.broken or self.endpt is None:
                return PJ_FALSE
            if self.layout is None:
                self.layout = find_layout(rdata, _TOKEN_METHOD)
                if self.layout is None:
                    self.broken = True
                    log.error("pjsip_rx_data layout not recognised: unknown methods are dropped, not answered 501")
                    return PJ_FALSE
            text = self.layout.text(rdata)
            m = _TOKEN_METHOD.match(text or "")
            if text is None or m is None or m.group(1) in KNOWN_METHODS:
                return PJ_FALSE
            head = text.split("\r\n\r\n", 1)[0]
            to = _TO.search(head)
            if to is None or _TO_TAG.search(to.group(1)):
                return PJ_FALSE  # in a dialog (or no To): not ours to answer
            if not self.allow:
                known = [x.strip() for x in endpoint_allow(self.endpt).split(",") if x.strip()]
                self.allow = ", ".join(known + [x for x in self.extra if x not in known])
            status = respond(self.endpt, rdata, Reply(501, "Not Implemented", (("Allow", self.allow),)))
            if status != 0:
                log.warning("could not answer an unknown method with 501 (status %s)", status)
                return PJ_FALSE
            self.answered += 1
            return PJ_TRUE
        except Exception:  # never let an exception cross into pjsip; the request is dropped as before
            log.exception("answering an unknown method failed")
            return PJ_FALSE
