"""A 1:1 support session between an agent (the host) and a customer (the guest), as pure rules.

No I/O, no clock: every input carries `now`; a refused input raises `RoomError` with a code from
the wire protocol's vocabulary and a message meant for the person who tried. The hub
(realtime/support.py) keeps a room as `dump()` bytes in the live store, loads it for each input,
applies one method and saves it back.

Phases: `waiting` (link made, nobody came) → `lobby` (the guest waits for the agent) → `live`
(admitted: signaling, chat and screen-share notices are relayed) → `ended`. Denying a guest ends
the room too (reason "denied"): the link is single use, so a denied customer needs a new link.

The link is single use: the first browser that connects binds the room to its secret
(`bind_guest`); the same secret again (a reload) is welcome, any other is refused.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from enum import StrEnum
from typing import Any

import msgspec

# Error codes, the same strings as realtime/protocol.py (this package imports nothing of ours).
FORBIDDEN = "forbidden"
CONFLICT = "conflict"
UNAUTHORIZED = "unauthorized"
GONE = "support-ended"


class Role(StrEnum):
    HOST = "host"
    GUEST = "guest"


class Phase(StrEnum):
    WAITING = "waiting"
    LOBBY = "lobby"
    LIVE = "live"
    ENDED = "ended"


# What each side may relay to the other, once live.
RELAYED = frozenset({"signal", "chat", "screen"})
# Why a room ended.
END_REASONS = frozenset({"host-ended", "guest-left", "denied", "expired", "host-gone"})


class RoomError(Exception):
    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


@dataclass(slots=True)
class SupportRoom:
    # A random id, part of the link.
    id: str
    tenant_id: int
    # users.id of the agent who opened it.
    host_id: int
    # The contact (call) in progress when it was opened, if any.
    contact_id: str | None
    created_at: float
    # The link's expiry: no guest is let in after it.
    expires_at: float
    phase: Phase = Phase.WAITING
    # sha256 of the secret of the browser that first used the link.
    guest_key: str | None = None
    guest_name: str = ""
    guest_ua: str = ""
    lobby_at: float | None = None
    admitted_at: float | None = None
    ended_at: float | None = None
    end_reason: str | None = None
    # Bumped each time the guest (re)joins a live room: the host then offers a fresh connection.
    guest_epoch: int = 0

    # ------------------------------------------------------------ the guest

    def bind_guest(self, key: str, now: float) -> None:
        """A browser connects with the link; `key` is the hash of its own secret. The first one
        binds the link; later the same key passes (a reload) and any other is refused."""
        if self.phase is Phase.ENDED:
            raise RoomError(GONE, "this support session has ended; ask your agent for a new link")
        if self.guest_key is None:
            if now >= self.expires_at:
                raise RoomError(UNAUTHORIZED, "this link has expired; ask your agent for a new link")
            self.guest_key = key
        elif key != self.guest_key:
            raise RoomError(UNAUTHORIZED, "this link was already used in another browser; ask your agent for a new link")

    def join(self, key: str, name: str, user_agent: str, now: float) -> None:
        """The bound guest asks to come in (after testing camera and microphone): to the lobby, or
        straight back into a live room after a reload (the host must then offer again)."""
        self.bind_guest(key, now)
        # A reload joins again without asking for the name: the first one given stays.
        self.guest_name = name.strip()[:80] or self.guest_name or "Guest"
        self.guest_ua = user_agent[:300]
        if self.phase is Phase.LIVE:
            self.guest_epoch += 1
            return
        if self.phase is Phase.WAITING:
            self.phase = Phase.LOBBY
            self.lobby_at = now

    # ------------------------------------------------------------ moderation

    def admit(self, by: Role, now: float) -> None:
        """The host lets the waiting guest in; the host then offers the peer connection."""
        self._host_only(by, "admit a guest")
        if self.phase is not Phase.LOBBY:
            raise RoomError(CONFLICT, f"nobody is waiting in the lobby (the session is {self.phase})")
        self.phase = Phase.LIVE
        self.admitted_at = now
        self.guest_epoch += 1

    def deny(self, by: Role, now: float) -> None:
        self._host_only(by, "turn a guest away")
        if self.phase is not Phase.LOBBY:
            raise RoomError(CONFLICT, f"nobody is waiting in the lobby (the session is {self.phase})")
        self._finish("denied", now)

    def end(self, by: Role, now: float) -> None:
        """Either side ends it, for both."""
        if self.phase is Phase.ENDED:
            raise RoomError(GONE, "this support session has already ended")
        self._finish("host-ended" if by is Role.HOST else "guest-left", now)

    def expire(self, now: float) -> bool:
        """Ends a room whose link expired with nobody admitted; True when it did."""
        if self.phase in (Phase.WAITING, Phase.LOBBY) and now >= self.expires_at:
            self._finish("expired", now)
            return True
        return False

    # ------------------------------------------------------------ relaying

    def check_relay(self, by: Role, kind: str) -> Role:
        """May `by` send a `kind` frame to the other side now? Returns the receiving role."""
        assert kind in RELAYED, f"unknown relayed kind {kind!r}"
        if self.phase is not Phase.LIVE:
            raise RoomError(CONFLICT, f"the session is {self.phase}, not live: nothing is relayed")
        return Role.GUEST if by is Role.HOST else Role.HOST

    @property
    def duration(self) -> float | None:
        """Seconds from admission to the end (None while running or when never admitted)."""
        if self.admitted_at is None or self.ended_at is None:
            return None
        return max(0.0, self.ended_at - self.admitted_at)

    # ------------------------------------------------------------ internals

    def _host_only(self, by: Role, what: str) -> None:
        if by is not Role.HOST:
            raise RoomError(FORBIDDEN, f"only the agent may {what}")

    def _finish(self, reason: str, now: float) -> None:
        assert reason in END_REASONS, f"unknown end reason {reason!r}"
        self.phase = Phase.ENDED
        self.ended_at = now
        self.end_reason = reason

    def dump(self) -> bytes:
        return _enc.encode(asdict(self))

    @classmethod
    def load(cls, raw: bytes | str) -> SupportRoom:
        d: dict[str, Any] = msgspec.json.decode(raw)
        d["phase"] = Phase(d["phase"])
        return cls(**d)


_enc = msgspec.json.Encoder()
