"""Trunks as the user agent sees them, and the pure helpers around them (no pjsua2 here).

A trunk is a carrier's or PBX's SIP account: a registrar and proxy at `host`,
reached over `transport`, with digest credentials (RFC 3261 §22, RFC 2617)
that answer the 401 of a REGISTER and the 401/407 of an INVITE. The bridge
makes one pjsua2 `Account` per trunk (bridge/agent.py); what it needs to know
is here, so that the hub builds the same URIs without importing pjsua2.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

TRANSPORTS = ("udp", "tcp", "tls")
# Seconds between registration attempts after a failure (pjsua's retry timer).
RETRY_SECONDS = 30


@dataclass(frozen=True)
class Trunk:
    """One trunk the user agent dials through and, with `register`, registers with."""

    key: str
    "Names the trunk in `dial` and in `Registration` events (the hub uses '<tenant id>/<name>')."
    host: str
    "Registrar and proxy, 'host:port' or 'host'."
    transport: str
    "udp, tcp or tls."
    username: str
    "Digest user name; also the user part of the account (and of the registered contact's AOR)."
    password: str = field(repr=False)
    "Digest secret: kept out of repr, so no log line can carry it."
    realm: str = "*"
    "The realm the credentials answer; '*' answers any."
    register: bool = False
    "Whether to REGISTER (one worker does; the others only dial through the trunk)."
    expires: int = 300
    "Registration lifetime asked for, seconds."

    def __post_init__(self) -> None:
        if self.transport not in TRANSPORTS:
            raise ValueError(f"trunk {self.key}: transport {self.transport!r} is not one of udp, tcp, tls")
        if not self.host or any(c in self.host for c in " ;<>@\"'"):
            raise ValueError(f"trunk {self.key}: host {self.host!r} is not host or host:port")
        if not self.username or any(c in self.username for c in " ;<>@:\"'"):
            raise ValueError(f"trunk {self.key}: username {self.username!r} cannot be a SIP user part")
        if self.expires < 1:
            raise ValueError(f"trunk {self.key}: expires {self.expires} must be positive")


def trunk_uri(host: str, transport: str, user: str | None = None) -> str:
    """A SIP URI at the trunk: `sip:[user@]host[;transport=tcp|tls]` (UDP is the default, RFC 3261 §19.1.2)."""
    assert transport in TRANSPORTS, f"transport {transport!r}"
    uri = f"sip:{user}@{host}" if user else f"sip:{host}"
    return uri if transport == "udp" else f"{uri};transport={transport}"


def registration_state(code: int, expires: int) -> Literal["registered", "failed", "unregistered"]:
    """What a REGISTER transaction's outcome means: a 2xx with a lifetime registers, a 2xx without
    one unregisters (RFC 3261 §10.2.2), anything else failed."""
    if 200 <= code < 300:
        return "registered" if expires > 0 else "unregistered"
    return "failed"
