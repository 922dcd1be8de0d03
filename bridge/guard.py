"""Overload guard for incoming INVITEs: pure, no pjsua2 (the agent asks it before offering a call).

Two limits, each answered with 503 Service Unavailable and a Retry-After
(RFC 3261 §21.5.4: the server is overloaded; the client may retry later, a
carrier's trunk picks another route meanwhile):

- per source address, a token bucket: `rate` INVITEs a second on average,
  `burst` at once (a flood from one address cannot starve the others);
- calls offered to the owner and not yet answered or refused: past
  `max_pending`, the owner (the hub, over the network) is not keeping up, and
  more offers would only queue behind the ones it has.

pjsua's own limit comes first: with every call slot taken it answers 486
itself, before the guard sees the INVITE.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field

RATE_LIMITED = "rate"
OWNER_BEHIND = "pending"


@dataclass
class InviteGuard:
    rate: float = 50.0
    "INVITEs a second allowed per source address, on average."
    burst: float = 100.0
    "INVITEs allowed at once per source address."
    max_pending: int = 64
    "Offered calls the owner has not decided yet, beyond which new ones are refused."
    retry_after: int = 5
    "Seconds put in the Retry-After of a refusal."
    max_sources: int = 10_000
    "Addresses tracked at most (the oldest are forgotten first)."
    _buckets: dict[str, tuple[float, float]] = field(default_factory=dict)
    # Lanes (bridge/lanes.py) share one guard, each asking from its own thread.
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False, compare=False)

    def check(self, source: str, pending: int, now: float) -> str | None:
        """None when the INVITE from `source` may be offered (it then counts against its bucket);
        else why not (`RATE_LIMITED` or `OWNER_BEHIND`): answer 503 with `retry_after`."""
        if pending >= self.max_pending:
            return OWNER_BEHIND
        with self._lock:
            return self._take(source, now)

    def _take(self, source: str, now: float) -> str | None:
        host = _host(source)
        tokens, last = self._buckets.pop(host, (self.burst, now))
        tokens = min(self.burst, tokens + (now - last) * self.rate)
        allowed = tokens >= 1.0
        self._buckets[host] = (tokens - 1.0 if allowed else tokens, now)  # re-inserted: most recent last
        if len(self._buckets) > self.max_sources:
            del self._buckets[next(iter(self._buckets))]
        return None if allowed else RATE_LIMITED


def _host(source: str) -> str:
    """The address of "ip:port" or "[v6]:port" (the port changes per connection; the host does not)."""
    if source.startswith("["):
        return source[1:].split("]", 1)[0]
    return source.rsplit(":", 1)[0] if source.count(":") == 1 else source
