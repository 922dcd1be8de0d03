"""What the SIP bridge reports to its owner, and the errors it raises.

Events are delivered on the owner's asyncio loop through the `on_event`
callback given to `SipBridge`; each is a plain dataclass.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal


class SipError(RuntimeError):
    """A SIP operation failed (port taken, unknown call, call in the wrong state, ...)."""


@dataclass(frozen=True)
class IncomingCall:
    """A new INVITE is waiting for `answer`, `ring` or `reject` (503 after `answer_timeout`)."""

    call_id: str
    "Our id for the call (not the SIP Call-ID); its engine leg will be `sip-<call_id>`."
    from_uri: str
    "The From header's URI, e.g. `sip:caller@127.0.0.1:5090`."
    to_uri: str
    "The To header's URI, e.g. `sip:support@127.0.0.1:5060`."
    to_user: str
    "User part of the To URI (the dialled number or service name)."
    caller: str
    "User part of the From URI (the caller's number)."
    caller_name: str | None
    "Display name of the From header, if any."
    remote: str
    "ip:port the INVITE came from."
    transport: str
    "`udp`, `tcp` or `tls`."
    sip_call_id: str = ""
    "The SIP Call-ID header, for logs and traces."


@dataclass(frozen=True)
class CallProgress:
    """An outbound call (`dial`) progressed: the far end rings, or answered (its leg now exists)."""

    call_id: str
    "The id given to `dial`."
    state: Literal["ringing", "answered"]
    "`ringing` on 180/183, `answered` on 200 OK (the engine leg exists from then on)."


@dataclass(frozen=True)
class CallEnded:
    """A call is over (either side, any cause); its engine leg has been removed."""

    call_id: str
    "Our id for the call."
    code: int
    "The SIP status that ended it: 200 for a BYE after answer, 487 for a cancel, 404, 486, 503, ..."
    reason: str
    "The reason phrase that went with `code`."
    by: Literal["remote", "local"]
    "`local` when this side hung up or rejected (incl. the answer timeout), `remote` otherwise."


@dataclass(frozen=True)
class DtmfReceived:
    """The far end sent a DTMF digit (RFC 4733 telephone-event)."""

    call_id: str
    "Our id for the call."
    digit: str
    "One of 0-9, *, #, A-D."


@dataclass(frozen=True)
class Registration:
    """The registration with a trunk changed (see `SipBridge.set_trunks`)."""

    trunk: str
    "The trunk's key."
    state: Literal["registered", "failed", "unregistered"]
    "`registered` after a 2xx with a lifetime, `unregistered` after one without, `failed` otherwise."
    code: int
    "The registrar's final status (401/403: wrong credentials), or pjsip's local one (408, 503)."
    reason: str
    "The reason phrase that went with `code`."
    expires: int
    "Seconds the registrar granted (0 unless registered)."


@dataclass(frozen=True)
class Registered:
    """A desk phone registered, refreshed its registration, or left (`expires` 0: unregistered or expired)."""

    user: str
    "The SIP user name."
    contact: str
    "Where to send it INVITEs (its Contact URI)."
    expires: int
    "Seconds the binding lasts; 0 when it ended."
    remote: str
    "ip:port the REGISTER came from."
