"""Passwords (argon2id), tokens (JWT, HS256) and the failed-login throttle."""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass
from typing import Any

import jwt
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

ALGORITHM = "HS256"
ISSUER = "unidesk"

_hasher = PasswordHasher()
# Verified against when the user does not exist, so both paths cost the same.
_DUMMY_HASH = _hasher.hash("unidesk-no-such-user")


def hash_password(password: str) -> str:
    return _hasher.hash(password)


def verify_password(password_hash: str | None, password: str) -> bool:
    try:
        return _hasher.verify(password_hash or _DUMMY_HASH, password) and password_hash is not None
    except (VerifyMismatchError, VerificationError, InvalidHashError):
        return False


class TokenError(Exception):
    """A token that cannot be accepted; the message says why, for a 401 reply."""


@dataclass(frozen=True, slots=True)
class Principal:
    # users.id
    user_id: int
    tenant_id: int
    tenant_slug: str
    username: str
    roles: frozenset[str]
    # Expiry of the token that proved this identity (epoch seconds).
    expires_at: float
    # What the token is for: "access", "refresh", or a narrower scope (e.g. "wallboard").
    kind: str
    # A webinar guest's token: the one room it opens.
    room: str | None = None

    def has_any(self, *roles: str) -> bool:
        return not self.roles.isdisjoint(roles)


class TokenService:
    def __init__(self, secret: str, access_ttl: int, refresh_ttl: int) -> None:
        assert len(secret) >= 32, "the signing key needs at least 32 characters"
        self._secret = secret
        self.access_ttl = access_ttl
        self.refresh_ttl = refresh_ttl

    def issue(self, p: Principal, kind: str, ttl: int, now: float | None = None) -> str:
        now = time.time() if now is None else now
        claims: dict[str, Any] = {
            "iss": ISSUER,
            "sub": str(p.user_id),
            "tid": p.tenant_id,
            "ten": p.tenant_slug,
            "usr": p.username,
            "roles": sorted(p.roles),
            "typ": kind,
            "iat": int(now),
            "exp": int(now) + ttl,
            "jti": uuid.uuid4().hex,
        }
        return jwt.encode(claims, self._secret, algorithm=ALGORITHM)

    def issue_wallboard(self, tenant_id: int, tenant_slug: str, wallboard_id: int, expires_at: float,
                        now: float | None = None) -> str:
        """A read-only token for one wallboard: its `sub` is the wallboard's id (a Principal of kind
        "wallboard" carries it as `user_id`), it has no roles, and the wallboard row revokes it."""
        now = time.time() if now is None else now
        claims: dict[str, Any] = {
            "iss": ISSUER, "sub": str(wallboard_id), "tid": tenant_id, "ten": tenant_slug, "usr": "",
            "roles": [], "typ": "wallboard", "iat": int(now), "exp": int(expires_at), "jti": uuid.uuid4().hex,
        }
        return jwt.encode(claims, self._secret, algorithm=ALGORITHM)

    def issue_guest(self, tenant_id: int, tenant_slug: str, room_id: str, expires_at: float,
                    now: float | None = None) -> str:
        """A customer's token for one support session: no user (`sub` 0) and no roles; `usr` is the
        room's id. It is checked against the room on every use (single use, ended rooms)."""
        now = time.time() if now is None else now
        claims: dict[str, Any] = {
            "iss": ISSUER, "sub": "0", "tid": tenant_id, "ten": tenant_slug, "usr": room_id,
            "roles": [], "typ": "guest", "iat": int(now), "exp": int(expires_at), "jti": uuid.uuid4().hex,
        }
        return jwt.encode(claims, self._secret, algorithm=ALGORITHM)

    def issue_webinar_guest(self, tenant_id: int, tenant_slug: str, room: str, guest_id: int, name: str,
                            expires_at: float, now: float | None = None) -> str:
        """An invitation to one webinar room for a guest without an account: kind "webinar", the room in
        the claim "room", the guest's number as `sub`, the name shown to the room as `usr`, role "guest"."""
        now = time.time() if now is None else now
        claims: dict[str, Any] = {
            "iss": ISSUER, "sub": str(guest_id), "tid": tenant_id, "ten": tenant_slug, "usr": name,
            "roles": ["guest"], "typ": "webinar", "room": room, "iat": int(now), "exp": int(expires_at),
            "jti": uuid.uuid4().hex,
        }
        return jwt.encode(claims, self._secret, algorithm=ALGORITHM)

    def pair(self, p: Principal) -> dict[str, Any]:
        return {
            "access_token": self.issue(p, "access", self.access_ttl),
            "refresh_token": self.issue(p, "refresh", self.refresh_ttl),
            "token_type": "Bearer",
            "expires_in": self.access_ttl,
        }

    def verify(self, token: str, kind: str | tuple[str, ...] = "access") -> Principal:
        """Decode and check a token of the given kind (or one of the kinds);
        raise TokenError with a readable reason."""
        kinds = (kind,) if isinstance(kind, str) else kind
        try:
            header = jwt.get_unverified_header(token)
        except jwt.DecodeError:
            raise TokenError("malformed token") from None
        if header.get("alg") != ALGORITHM:
            raise TokenError(f"token algorithm {header.get('alg')!r} is not accepted")
        try:
            claims = jwt.decode(
                token,
                self._secret,
                algorithms=[ALGORITHM],
                issuer=ISSUER,
                options={"require": ["exp", "iat", "sub", "tid", "typ", "iss"]},
            )
        except jwt.ExpiredSignatureError:
            raise TokenError("token expired") from None
        except jwt.InvalidSignatureError:
            raise TokenError("token signature is not valid") from None
        except jwt.InvalidTokenError as exc:
            raise TokenError(f"token not valid: {exc}") from None
        if claims.get("typ") not in kinds:
            need = " or ".join(kinds)
            raise TokenError(f"a {claims.get('typ')} token cannot be used here; a {need} token is needed")
        try:
            return Principal(
                user_id=int(claims["sub"]),
                tenant_id=int(claims["tid"]),
                tenant_slug=str(claims.get("ten", "")),
                username=str(claims.get("usr", "")),
                roles=frozenset(str(r) for r in claims.get("roles", [])),
                expires_at=float(claims["exp"]),
                kind=str(claims["typ"]),
                room=str(claims["room"]) if "room" in claims else None,
            )
        except (TypeError, ValueError):
            raise TokenError("token claims are malformed") from None


class LoginThrottle:
    """Slows down repeated failed logins per (tenant, user) and per address.

    Keys are "user:..." or "addr:...". After `free` failures of a user (or
    `free_addr` of an address: many agents may share one office address), the
    caller must wait 2**(n-free+1) seconds (capped) before the next attempt is
    even checked. State is kept per process; with Redis configured,
    `RedisLoginThrottle` shares it between hubs.
    """

    def __init__(
        self, free: int = 5, free_addr: int = 50, cap: float = 300.0, forget_after: float = 900.0
    ) -> None:
        self.free = free
        self.free_addr = free_addr
        self.cap = cap
        self.forget_after = forget_after
        self._fails: dict[str, tuple[int, float]] = {}

    def _delay(self, key: str, count: int) -> float:
        free = self.free if key.startswith("user:") else self.free_addr
        return 0.0 if count < free else min(self.cap, 2.0 ** (count - free + 1))

    async def retry_after(self, keys: list[str], now: float) -> float:
        wait = 0.0
        for key in keys:
            count, last = self._fails.get(key, (0, 0.0))
            if now - last > self.forget_after:
                continue
            wait = max(wait, last + self._delay(key, count) - now)
        return max(0.0, wait)

    async def failed(self, keys: list[str], now: float) -> None:
        if len(self._fails) > 100_000:
            self._fails = {k: v for k, v in self._fails.items() if now - v[1] <= self.forget_after}
        for key in keys:
            count, last = self._fails.get(key, (0, 0.0))
            if now - last > self.forget_after:
                count = 0
            self._fails[key] = (count + 1, now)

    async def succeeded(self, keys: list[str]) -> None:
        # Only the user's counter is cleared: an address trying many users stays slowed.
        self._fails.pop(keys[0], None)


class RedisLoginThrottle(LoginThrottle):
    def __init__(self, redis: Any, prefix: str, **kw: Any) -> None:
        super().__init__(**kw)
        self._r = redis
        self._prefix = prefix

    def _key(self, key: str) -> str:
        return f"{self._prefix}:login-fail:{key}"

    async def retry_after(self, keys: list[str], now: float) -> float:
        wait = 0.0
        for key in keys:
            raw = await self._r.hmget(self._key(key), "count", "last")
            if raw[0] is None:
                continue
            count, last = int(raw[0]), float(raw[1])
            wait = max(wait, last + self._delay(key, count) - now)
        return max(0.0, wait)

    async def failed(self, keys: list[str], now: float) -> None:
        pipe = self._r.pipeline()
        for key in keys:
            k = self._key(key)
            pipe.hincrby(k, "count", 1)
            pipe.hset(k, "last", repr(now))
            pipe.expire(k, int(self.forget_after))
        await pipe.execute()

    async def succeeded(self, keys: list[str]) -> None:
        await self._r.delete(self._key(keys[0]))


WORKER_ROLE = "media-worker"


def worker_principal(name: str) -> Principal:
    """The identity of a media worker: no tenant, no user; it serves every tenant's sessions."""
    return Principal(
        user_id=0, tenant_id=0, tenant_slug="", username=f"worker:{name}", roles=frozenset({WORKER_ROLE}),
        expires_at=0.0, kind="worker",
    )
