"""The registrar for desk phones: REGISTER with digest authentication (RFC 3261 §10, RFC 2617).

Pure logic, no pjsua2: `Registrar.handle(request text, remote, now)` returns
the `Reply` to send and, when a binding changed, a `Registration` to report.
`bridge/pjmodule.py` feeds it from a pjsip module on the SIP thread.

Users come from the hub (`set_users`): the SIP user name (unique across
tenants), the realm (the tenant's slug) and HA1 = MD5(user:realm:password);
the password itself never reaches the worker. The digest response is
computed by a function given at construction (pjsip's own
`pjsip_auth_create_digest` in production), compared in constant time.

Nonces need no state: "<hex time>.<HMAC of the time and realm>" under a key
of the process, valid `NONCE_TTL` seconds; an old one gets 401 with
`stale=true` (RFC 2617 §3.2.1), a forged one 401 again.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import re
from dataclasses import dataclass
from typing import Callable

from .sipmsg import header, split_name_addr, uri_user

NONCE_TTL = 300.0
MAX_EXPIRES = 3600
DEFAULT_EXPIRES = 3600
MIN_EXPIRES = 10

# digest(ha1, nonce, nc, cnonce, qop, uri, realm, method) -> lower-case hex response
Digest = Callable[[str, str, str, str, str, str, str, str], str]


@dataclass(frozen=True)
class SipUser:
    """A desk phone's credentials, as the hub sends them."""

    user: str
    "SIP user name (the AOR's user part and the digest username); unique across tenants."
    realm: str
    "Digest realm: the tenant's slug."
    ha1: str
    "MD5(user:realm:password), lower-case hex."


@dataclass(frozen=True)
class Reply:
    """The response to send to a REGISTER."""

    code: int
    reason: str
    headers: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True)
class Registration:
    """A binding was made, refreshed or removed (`expires` 0)."""

    user: str
    contact: str
    "The URI to send INVITEs to (from the Contact header)."
    expires: int
    remote: str
    "ip:port the REGISTER came from."


def ha1(user: str, realm: str, password: str) -> str:
    """HA1 of RFC 2617 §3.2.2.2 (what the store keeps instead of the password)."""
    return hashlib.md5(f"{user}:{realm}:{password}".encode()).hexdigest()


_PARAM = re.compile(r'\s*([A-Za-z0-9_-]+)\s*=\s*(?:"((?:[^"\\]|\\.)*)"|([^\s,]+))\s*,?')


def parse_digest(value: str) -> dict[str, str] | None:
    """The parameters of an `Authorization: Digest ...` value (names lower-cased); None if not Digest."""
    scheme, _, rest = value.strip().partition(" ")
    if scheme.lower() != "digest":
        return None
    out: dict[str, str] = {}
    pos = 0
    rest = rest.strip()
    while pos < len(rest):
        m = _PARAM.match(rest, pos)
        if m is None or m.end() == pos:
            return None
        out[m.group(1).lower()] = m.group(2) if m.group(2) is not None else m.group(3)
        pos = m.end()
    return out


def _expires_of(contact_value: str, message: str) -> int | None:
    m = re.search(r";\s*expires\s*=\s*(\d+)", contact_value.split(">", 1)[-1], re.IGNORECASE)
    if m:
        return int(m.group(1))
    value = header(message, "Expires")
    if value:
        return int(value) if value.isdigit() else None
    return DEFAULT_EXPIRES


class Registrar:
    """Who may register, and who is registered where. One per SIP user agent; one thread."""

    def __init__(self, digest: Digest, key: bytes | None = None) -> None:
        self.digest = digest
        self._key = key or os.urandom(32)
        self.users: dict[str, SipUser] = {}
        # Until the owner has said who may register, a phone is asked to come back later.
        self.users_known = False
        # user -> (contact, expires at, remote)
        self.bindings: dict[str, tuple[str, float, str]] = {}

    def set_users(self, users: list[SipUser], now: float) -> list[Registration]:
        """Replace the users; bindings of users no longer there (or with a new password) end."""
        old = self.users
        self.users = {u.user: u for u in users}
        self.users_known = True
        gone = []
        for user, (contact, _, remote) in list(self.bindings.items()):
            if user not in self.users or old.get(user) != self.users[user]:
                del self.bindings[user]
                gone.append(Registration(user, contact, 0, remote))
        return gone

    def expire(self, now: float) -> list[Registration]:
        """Bindings past their expiry, removed."""
        out = []
        for user, (contact, until, remote) in list(self.bindings.items()):
            if until <= now:
                del self.bindings[user]
                out.append(Registration(user, contact, 0, remote))
        return out

    def nonce(self, realm: str, now: float) -> str:
        stamp = f"{int(now):x}"
        return f"{stamp}.{self._sign(stamp, realm)}"

    def _sign(self, stamp: str, realm: str) -> str:
        return hmac.new(self._key, f"{stamp}:{realm}".encode(), hashlib.sha256).hexdigest()[:24]

    def _nonce_state(self, nonce: str, realm: str, now: float) -> str:
        """"ok", "stale" or "bad"."""
        stamp, _, sig = nonce.partition(".")
        if not sig or not hmac.compare_digest(sig, self._sign(stamp, realm)):
            return "bad"
        try:
            at = int(stamp, 16)
        except ValueError:
            return "bad"
        return "ok" if 0 <= now - at <= NONCE_TTL else "stale"

    def _challenge(self, realm: str, now: float, stale: bool = False) -> Reply:
        value = f'Digest realm="{realm}", nonce="{self.nonce(realm, now)}", algorithm=MD5, qop="auth"'
        if stale:
            value += ", stale=true"
        return Reply(401, "Unauthorized", (("WWW-Authenticate", value),))

    def handle(self, message: str, remote: str, now: float) -> tuple[Reply, Registration | None]:
        """Answer one REGISTER request (its whole text). RFC 3261 §10.3, in order."""
        to_value = header(message, "To", "t")
        request_line = message.split("\r\n", 1)[0].split(" ")
        if len(request_line) != 3 or request_line[0] != "REGISTER" or not to_value:
            return Reply(400, "Bad Request"), None
        _, aor = split_name_addr(to_value)
        user = uri_user(aor)
        account = self.users.get(user)
        if account is None and not self.users_known:
            # RFC 3261 §21.5.4: the worker has not heard from the hub yet.
            return Reply(503, "Service Unavailable", (("Retry-After", "5"),)), None
        if account is None:
            return Reply(404, "Not Found"), None
        auth = header(message, "Authorization")
        if not auth:
            return self._challenge(account.realm, now), None
        params = parse_digest(auth)
        if params is None or not all(k in params for k in ("username", "realm", "nonce", "uri", "response")):
            return Reply(400, "Bad Authorization Header"), None
        if params.get("algorithm", "MD5").upper() != "MD5":
            return self._challenge(account.realm, now), None
        if params["username"] != user or params["realm"] != account.realm:
            # Credentials of another user (or tenant) for this address.
            return Reply(403, "Forbidden"), None
        state = self._nonce_state(params["nonce"], account.realm, now)
        if state != "ok":
            return self._challenge(account.realm, now, stale=state == "stale"), None
        qop = params.get("qop", "")
        if qop and qop != "auth":
            return Reply(400, "Unsupported qop"), None
        expected = self.digest(
            account.ha1, params["nonce"], params.get("nc", ""), params.get("cnonce", ""), qop, params["uri"],
            account.realm, "REGISTER",
        )
        if not hmac.compare_digest(expected.lower(), params["response"].lower()):
            return Reply(403, "Forbidden"), None
        return self._bind(user, message, remote, now)

    def _bind(self, user: str, message: str, remote: str, now: float) -> tuple[Reply, Registration | None]:
        contact_value = header(message, "Contact", "m")
        current = self.bindings.get(user)
        if not contact_value:
            # A query (RFC 3261 §10.2.3): the current binding, if any.
            if current is None:
                return Reply(200, "OK"), None
            left = max(0, int(current[1] - now))
            return Reply(200, "OK", (("Contact", f"<{current[0]}>;expires={left}"),)), None
        expires = _expires_of(contact_value, message)
        if expires is None:
            return Reply(400, "Bad Expires"), None
        if contact_value.strip() == "*":
            if expires != 0:
                return Reply(400, "Bad Request"), None
            return self._unbind(user)
        _, contact = split_name_addr(contact_value)
        if not contact.startswith(("sip:", "sips:")):
            return Reply(400, "Bad Contact"), None
        if expires == 0:
            return self._unbind(user)
        if expires < MIN_EXPIRES:
            return Reply(423, "Interval Too Brief", (("Min-Expires", str(MIN_EXPIRES)),)), None
        expires = min(expires, MAX_EXPIRES)
        self.bindings[user] = (contact, now + expires, remote)
        reply = Reply(200, "OK", (("Contact", f"<{contact}>;expires={expires}"),))
        return reply, Registration(user, contact, expires, remote)

    def _unbind(self, user: str) -> tuple[Reply, Registration | None]:
        current = self.bindings.pop(user, None)
        if current is None:
            return Reply(200, "OK"), None
        return Reply(200, "OK"), Registration(user, current[0], 0, current[2])

    def contact(self, user: str, now: float) -> str | None:
        """Where the user's phone is registered now."""
        b = self.bindings.get(user)
        return b[0] if b is not None and b[1] > now else None
