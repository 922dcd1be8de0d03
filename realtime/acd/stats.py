"""Live statistics: counters the engine bumps, and the snapshots it hands out.

Pure bookkeeping. Durations that are still running (an agent idle right now, a
call in progress) are kept as `LiveSum`s so a snapshot at any `now` includes
them without a scan over agents or contacts. Every formula is in docs/acd.md.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, fields


class LiveSum:
    """Sum of closed durations plus the running time of open ones, in O(1).

    value(now) = acc + count * now - start_sum: every open interval contributes
    now - start. Opening or closing keeps value(now) continuous, and `reset`
    zeroes it at `now` while open intervals keep running from there.
    """

    __slots__ = ("acc", "count", "start_sum")

    def __init__(self) -> None:
        self.acc = 0.0
        self.count = 0
        self.start_sum = 0.0

    def open(self, start: float, now: float) -> None:
        # The interval is counted from now even if `start` is earlier: the time
        # before now belonged elsewhere (e.g. before the agent joined the queue).
        self.count += 1
        self.start_sum += start
        self.acc -= now - start

    def close(self, start: float, now: float) -> None:
        self.count -= 1
        self.start_sum -= start
        self.acc += now - start

    def value(self, now: float) -> float:
        return self.acc + self.count * now - self.start_sum

    def reset(self, now: float) -> None:
        self.acc = self.start_sum - self.count * now


class QueueCounters:
    """Counters of one queue since the last reset."""

    __slots__ = (
        "offered", "answered", "answered_within", "abandoned", "abandoned_within", "overflowed", "ended",
        "rejected", "answer_wait", "abandon_wait", "max_answer_wait", "handled", "talk", "hold", "wrap_up",
        "busy", "idle",
    )

    def __init__(self) -> None:
        self.reset(0.0, LiveSum(), LiveSum())

    def reset(self, now: float, busy: LiveSum | None = None, idle: LiveSum | None = None) -> None:
        self.offered = 0
        self.answered = 0
        self.answered_within = 0
        self.abandoned = 0
        self.abandoned_within = 0
        self.overflowed = 0
        self.ended = 0
        self.rejected = 0
        self.answer_wait = 0.0
        self.abandon_wait = 0.0
        self.max_answer_wait = 0.0
        self.handled = 0
        self.talk = 0.0
        self.hold = 0.0
        self.wrap_up = 0.0
        self.busy = busy if busy is not None else self.busy
        self.idle = idle if idle is not None else self.idle
        self.busy.reset(now)
        self.idle.reset(now)

    def on_answered(self, wait: float, threshold: float) -> None:
        self.answered += 1
        self.answer_wait += wait
        if wait <= threshold:
            self.answered_within += 1
        if wait > self.max_answer_wait:
            self.max_answer_wait = wait

    def on_abandoned(self, wait: float, threshold: float) -> None:
        self.abandoned += 1
        self.abandon_wait += wait
        if wait <= threshold:
            self.abandoned_within += 1

    def on_handled(self, talk: float, hold: float, wrap_up: float) -> None:
        self.handled += 1
        self.talk += talk
        self.hold += hold
        self.wrap_up += wrap_up


class AgentCounters:
    """Counters of one agent since the last reset."""

    __slots__ = ("offered", "answered", "missed", "rejected", "talk", "hold", "wrap_up", "idle")

    def __init__(self) -> None:
        self.idle = LiveSum()
        self.reset(0.0)

    def reset(self, now: float) -> None:
        self.offered = 0
        self.answered = 0
        self.missed = 0
        self.rejected = 0
        self.talk = 0.0
        self.hold = 0.0
        self.wrap_up = 0.0
        self.idle.reset(now)


def _ratio(num: float, den: float) -> float | None:
    return num / den if den > 0 else None


@dataclass(frozen=True, slots=True)
class QueueStats:
    """A queue's figures at one instant, since the last reset (live values at `at`)."""

    # Queue name.
    queue: str
    # Engine time of the snapshot.
    at: float
    # Service-level threshold used, seconds.
    threshold: float
    # Contacts waiting now (ringing ones excluded).
    waiting: int
    # Contacts ringing an agent now.
    ringing: int
    # Longest current wait among waiting and ringing contacts, seconds.
    longest_wait: float
    # Members logged in now.
    agents_logged_in: int
    # Members ready now (ringing included).
    agents_ready: int
    # Contacts that entered the queue (arrivals and overflows in).
    offered: int
    # Contacts accepted by an agent.
    answered: int
    # Answered after waiting at most `threshold`.
    answered_within_threshold: int
    # Contacts whose caller hung up in this queue.
    abandoned: int
    # Abandoned after waiting at most `threshold`.
    abandoned_within_threshold: int
    # Contacts that left by max_wait (to another queue or ended).
    overflowed: int
    # Contacts sent away by the leave rule or queue removal.
    ended: int
    # Contacts refused at arrival.
    rejected: int
    # Answered contacts whose talk and wrap-up are complete.
    handled: int
    # Sum of waits of answered contacts, seconds.
    answer_wait_seconds: float
    # Sum of waits of abandoned contacts, seconds.
    abandon_wait_seconds: float
    # Longest wait of an answered contact, seconds.
    max_answer_wait: float
    # Talk of handled contacts, seconds.
    talk_seconds: float
    # Hold of handled contacts, seconds.
    hold_seconds: float
    # Wrap-up of handled contacts, seconds.
    wrap_up_seconds: float
    # Members' time busy with this queue's contacts (running calls included).
    busy_seconds: float
    # Members' ready, not-busy time (counted in every queue the agent serves).
    idle_seconds: float

    @property
    def service_level(self) -> float | None:
        """SL1: answered_within / (answered + abandoned after the threshold)."""
        return _ratio(self.answered_within_threshold,
                      self.answered + self.abandoned - self.abandoned_within_threshold)

    @property
    def service_level_with_abandons(self) -> float | None:
        """SL2: answered_within / (answered + abandoned)."""
        return _ratio(self.answered_within_threshold, self.answered + self.abandoned)

    @property
    def asa(self) -> float | None:
        """Average speed of answer: answer_wait_seconds / answered."""
        return _ratio(self.answer_wait_seconds, self.answered)

    @property
    def aht(self) -> float | None:
        """Average handle time: (talk + hold + wrap-up) / handled."""
        return _ratio(self.talk_seconds + self.hold_seconds + self.wrap_up_seconds, self.handled)

    @property
    def abandon_rate(self) -> float | None:
        """abandoned / (answered + abandoned)."""
        return _ratio(self.abandoned, self.answered + self.abandoned)

    @property
    def occupancy(self) -> float | None:
        """busy_seconds / (busy_seconds + idle_seconds)."""
        return _ratio(self.busy_seconds, self.busy_seconds + self.idle_seconds)

    def summary(self) -> dict[str, float | int | None]:
        """The raw fields plus the derived figures, JSON-ready."""
        out: dict[str, float | int | None] = {f.name: getattr(self, f.name) for f in fields(self)}
        for name in ("service_level", "service_level_with_abandons", "asa", "aht", "abandon_rate", "occupancy"):
            out[name] = getattr(self, name)
        return out


_ADDITIVE = (
    "offered", "answered", "answered_within_threshold", "abandoned", "abandoned_within_threshold",
    "overflowed", "ended", "rejected", "handled", "answer_wait_seconds", "abandon_wait_seconds",
    "talk_seconds", "hold_seconds", "wrap_up_seconds", "busy_seconds", "idle_seconds",
)


def combine_queue_stats(parts: Iterable[QueueStats]) -> QueueStats:
    """Add up consecutive snapshots of one queue (e.g. intervals) into one.

    Counters and durations add; instant values (waiting, agents) come from the
    last part; the longest answered wait is the maximum.
    """
    parts = list(parts)
    assert parts, "combine_queue_stats needs at least one snapshot"
    last = parts[-1]
    values = {f.name: getattr(last, f.name) for f in fields(QueueStats)}
    for name in _ADDITIVE:
        values[name] = sum(getattr(p, name) for p in parts)
    values["max_answer_wait"] = max(p.max_answer_wait for p in parts)
    return QueueStats(**values)


def queue_snapshot(queue: str, now: float, threshold: float, c: QueueCounters, *, waiting: int, ringing: int,
                   longest_wait: float, logged_in: int, ready: int) -> QueueStats:
    """Freeze a queue's counters and live sums at `now`."""
    return QueueStats(
        queue=queue, at=now, threshold=threshold, waiting=waiting, ringing=ringing, longest_wait=longest_wait,
        agents_logged_in=logged_in, agents_ready=ready, offered=c.offered, answered=c.answered,
        answered_within_threshold=c.answered_within, abandoned=c.abandoned,
        abandoned_within_threshold=c.abandoned_within, overflowed=c.overflowed, ended=c.ended,
        rejected=c.rejected, handled=c.handled, answer_wait_seconds=c.answer_wait,
        abandon_wait_seconds=c.abandon_wait, max_answer_wait=c.max_answer_wait, talk_seconds=c.talk,
        hold_seconds=c.hold, wrap_up_seconds=c.wrap_up, busy_seconds=c.busy.value(now),
        idle_seconds=c.idle.value(now),
    )


@dataclass(frozen=True, slots=True)
class AgentStats:
    """An agent's figures at one instant, since the last reset."""

    # Agent id.
    agent_id: str
    # Engine time of the snapshot.
    at: float
    # logged-out, not-ready, ready, ringing, busy, wrap-up.
    state: str
    # Offers presented to the agent.
    offered: int
    # Offers accepted.
    answered: int
    # Offers that rang out.
    missed: int
    # Offers rejected (busy included).
    rejected: int
    # Talk seconds of completed contacts.
    talk_seconds: float
    # Hold seconds of completed contacts.
    hold_seconds: float
    # Wrap-up seconds of completed contacts.
    wrap_up_seconds: float
    # Seconds ready and not busy (ringing counts as idle).
    idle_seconds: float

    @property
    def occupancy(self) -> float | None:
        """(talk + hold + wrap-up) / (talk + hold + wrap-up + idle)."""
        busy = self.talk_seconds + self.hold_seconds + self.wrap_up_seconds
        return _ratio(busy, busy + self.idle_seconds)


def agent_snapshot(agent_id: str, now: float, state: str, c: AgentCounters) -> AgentStats:
    """Freeze an agent's counters at `now`."""
    return AgentStats(
        agent_id=agent_id, at=now, state=state, offered=c.offered, answered=c.answered, missed=c.missed,
        rejected=c.rejected, talk_seconds=c.talk, hold_seconds=c.hold, wrap_up_seconds=c.wrap_up,
        idle_seconds=c.idle.value(now),
    )
