"""Deadlines inside the engine: ring timeouts, max waits, routing steps, announcements...

One binary heap holds every pending deadline as `(when, seq, kind, owner,
epoch)`. Nothing is ever removed from the middle: an entry is void once its
owner's epoch moved on (the contact left the queue, the offer was answered,
the agent's block was extended), and void entries are dropped when they reach
the top. The engine asks `pop_due(now)` for the live entries that are due and
acts on each by its kind.
"""

from __future__ import annotations

import itertools
import math
from heapq import heappop, heappush

from .config import QueueConfig
from .records import RINGING, WAITING, AgentRec, ContactRec

# Timer kinds. Contact timers are void once the contact's timer_epoch moves
# (it left the queue or its timings restarted); a ring timer once its
# offer_epoch moves; an unblock timer once the agent's block_epoch moves.
T_RING, T_MAXWAIT, T_STEP, T_ANNOUNCE, T_PREFER, T_RETRY, T_UNBLOCK = range(7)


class TimerHeap:
    """Pending deadlines of contacts and agents, earliest first."""

    __slots__ = ("heap", "_seq", "_agents")

    def __init__(self, agents: dict[str, AgentRec]) -> None:
        self.heap: list[tuple] = []
        # Ties at the same instant fire in the order they were set.
        self._seq = itertools.count()
        # The engine's agents: an unblock timer of a removed agent is void.
        self._agents = agents

    def push(self, when: float, kind: int, owner: object, epoch: int) -> None:
        heappush(self.heap, (when, next(self._seq), kind, owner, epoch))

    def live(self, entry: tuple) -> bool:
        _, _, kind, owner, epoch = entry
        if kind == T_UNBLOCK:
            return owner.block_epoch == epoch and self._agents.get(owner.id) is owner
        if kind == T_RING:
            return owner.state == RINGING and owner.offer_epoch == epoch
        return owner.timer_epoch == epoch and owner.state in (WAITING, RINGING)

    def next_deadline(self) -> float | None:
        """When the earliest live timer is due, or None (void entries on top are dropped)."""
        heap = self.heap
        while heap and not self.live(heap[0]):
            heappop(heap)
        return heap[0][0] if heap else None

    def pop_due(self, now: float) -> tuple | None:
        """Remove and return the earliest live entry due at `now`, or None when there is none."""
        heap = self.heap
        while heap and heap[0][0] <= now:
            entry = heappop(heap)
            if self.live(entry):
                return entry
        return None

    def arm(self, c: ContactRec, cfg: QueueConfig, now: float) -> None:
        """Set the contact's timers for its stay in a queue configured by `cfg`
        (pending retry delays included)."""
        epoch = c.timer_epoch
        if cfg.max_wait is not None:
            self.push(c.entered_at + cfg.max_wait, T_MAXWAIT, c, epoch)
        if c.step + 1 < len(c.steps):
            self.push(c.entered_at + c.steps[c.step + 1].after_seconds, T_STEP, c, epoch)
        if cfg.announce_interval > 0:
            self.push(now + cfg.announce_interval, T_ANNOUNCE, c, epoch)
        if c.pref_agent is not None:
            self.push(c.spec.preferred_until, T_PREFER, c, epoch)
        if c.tried:
            for until in c.tried.values():
                if until > now:
                    self.push(until, T_RETRY, c, epoch)

    def block(self, agent: AgentRec, now: float, delay: float) -> None:
        """No offer at all to this agent for `delay` seconds (a block never shortens)."""
        if delay > 0:
            agent.blocked_until = max(agent.blocked_until, now + delay)
            agent.block_epoch += 1
            self.push(agent.blocked_until, T_UNBLOCK, agent, agent.block_epoch)


def next_announcement(due: float, now: float, interval: float) -> float:
    """The next announcement time after `now`, keeping the cadence that started at `due`
    even if this announcement fired late."""
    return due + interval * (1 + math.floor((now - due) / interval))
