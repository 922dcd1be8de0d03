"""The two ordered indexes behind every routing decision.

`AgentIndex` holds a queue's available members ordered for the queue's
strategy; `WaitingContacts` holds its waiting contacts ordered by priority and
arrival (or score), grouped by what they require. Both are binary heaps with
lazy deletion: an entry carries the epoch its owner had when it was pushed,
and an entry whose epoch is no longer current is dropped when it surfaces.
That keeps every change O(log n) and lets one agent sit in many queues'
heaps without the engine visiting them all when it goes busy.

The objects indexed are the engine's private agent and contact records; the
attributes read here are listed on each class.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from heapq import heapify, heappop, heappush
from typing import Any

from .config import Ordering, Strategy

# A heap is rebuilt when it holds more than this many dead entries per live one
# (plus a floor), so memory stays proportional to what is live.
_SLACK_FACTOR = 2
_SLACK_FLOOR = 64

# eligible(agent, penalty, contact, now): may this member be offered the contact?
Eligible = Callable[[Any, int, Any, float], bool]


def skills_ok(skills: dict[str, int], required: tuple[tuple[str, int], ...]) -> bool:
    """True when every required skill is present at or above its level."""
    for skill, level in required:
        have = skills.get(skill)
        if have is None or have < level:
            return False
    return True


class AgentIndex:
    """Available members of one queue, best first for the strategy.

    Reads on agents: `epoch`, `available`, `idle_since`, `calls`, `talk_total`.
    Reads on members: `penalty`, `order`, `weight`.

    Entries are `(penalty, *strategy_key, order, epoch, agent, member)`; the
    member order is unique within a queue and an agent's epoch changes every
    time it leaves the index, so comparisons never reach the agent object.
    Penalty leads every key: a higher-penalty member is reached only when no
    lower-penalty member qualifies.
    """

    __slots__ = ("strategy", "heap", "live", "_rng", "_clock", "_pointer")

    def __init__(self, strategy: Strategy, rng: random.Random) -> None:
        self.strategy = strategy
        self.heap: list[tuple] = []
        # Members currently available (the engine keeps this in step).
        self.live = 0
        self._rng = rng
        # Random strategies: per penalty, the key of the last pick. A newcomer's
        # key is that plus an exponential draw; by memorylessness the remaining
        # entries' keys are distributed the same way, so the smallest key is a
        # (weighted) uniform pick among everyone present.
        self._clock: dict[int, float] = {}
        # Round-robin: per penalty, (cycle, order) of the last member offered.
        # A member's key is (cycle, order) of the next time the pointer reaches
        # it, so the smallest key is the next member after the pointer.
        self._pointer: dict[int, tuple[int, int]] = {}

    def _key(self, agent: Any, member: Any) -> tuple:
        s = self.strategy
        p = member.penalty
        if s is Strategy.LONGEST_IDLE:
            return (p, agent.idle_since, member.order)
        if s is Strategy.FEWEST_CALLS:
            return (p, agent.calls, agent.idle_since, member.order)
        if s is Strategy.LEAST_TALK_TIME:
            return (p, agent.talk_total, agent.idle_since, member.order)
        if s is Strategy.ROUND_ROBIN:
            cycle, last = self._pointer.get(p, (0, -1))
            return (p, cycle if member.order > last else cycle + 1, member.order)
        if s is Strategy.RANDOM:
            return (p, self._clock.get(p, 0.0) + self._rng.expovariate(1.0), member.order)
        if s is Strategy.WEIGHTED_RANDOM:
            return (p, self._clock.get(p, 0.0) + self._rng.expovariate(member.weight), member.order)
        # top-down and ring-all: member order.
        return (p, member.order)

    def push(self, agent: Any, member: Any) -> None:
        """The agent became available in this queue."""
        self.live += 1
        heappush(self.heap, (*self._key(agent, member), agent.epoch, agent, member))
        if len(self.heap) > _SLACK_FACTOR * self.live + _SLACK_FLOOR:
            self.compact()

    def discard(self) -> None:
        """An agent of this queue stopped being available (its entry is now dead)."""
        self.live -= 1

    def compact(self) -> None:
        self.heap = [e for e in self.heap if e[-3] == e[-2].epoch and e[-2].available]
        heapify(self.heap)

    def select(self, eligible: Eligible, contact: Any, now: float) -> Any | None:
        """Pop and return the best available agent eligible for the contact, or None.

        Only candidates are examined: ineligible ones met on the way are put
        back; the winner is not, since the engine makes it unavailable at once.
        """
        heap = self.heap
        skipped: list[tuple] = []
        chosen = None
        while heap:
            entry = heappop(heap)
            agent = entry[-2]
            if entry[-3] != agent.epoch or not agent.available:
                continue
            if eligible(agent, entry[0], contact, now):
                chosen = entry
                break
            skipped.append(entry)
        if chosen is not None:
            self._picked(chosen)
        for entry in skipped:
            heappush(heap, self._rekeyed(entry, chosen))
        return chosen[-2] if chosen is not None else None

    def _picked(self, entry: tuple) -> None:
        s = self.strategy
        if s is Strategy.ROUND_ROBIN:
            self._pointer[entry[0]] = (entry[1], entry[2])
        elif s is Strategy.RANDOM or s is Strategy.WEIGHTED_RANDOM:
            self._clock[entry[0]] = entry[1]

    def _rekeyed(self, entry: tuple, chosen: tuple | None) -> tuple:
        # Entries skipped in the winner's tier now sit behind the pointer/clock
        # that just moved: give them the key they would get if pushed now.
        if chosen is None or entry[0] != chosen[0] or self.strategy not in _MOVING:
            return entry
        agent, member = entry[-2], entry[-1]
        return (*self._key(agent, member), entry[-3], agent, member)

    def select_all(self, eligible: Eligible, contact: Any, now: float) -> list[Any]:
        """Every eligible available agent of the best eligible penalty, in member order (ring-all)."""
        best_penalty = None
        found: list[tuple[int, Any]] = []
        for entry in self.heap:
            agent = entry[-2]
            if entry[-3] != agent.epoch or not agent.available:
                continue
            penalty = entry[0]
            if best_penalty is not None and penalty > best_penalty:
                continue
            if not eligible(agent, penalty, contact, now):
                continue
            if best_penalty is None or penalty < best_penalty:
                best_penalty = penalty
                found = []
            found.append((entry[-1].order, agent))
        found.sort(key=lambda pair: pair[0])
        return [agent for _, agent in found]


_MOVING = frozenset({Strategy.ROUND_ROBIN, Strategy.RANDOM, Strategy.WEIGHTED_RANDOM})


class _Bucket:
    """Waiting contacts of one queue that share a requirement."""

    __slots__ = ("heap", "live", "requirement", "owner")

    def __init__(self, requirement: Any, owner: str | None) -> None:
        self.heap: list[tuple] = []
        self.live = 0
        # (required skills, max penalty); None for a preferred-agent bucket,
        # whose contacts are checked one by one.
        self.requirement = requirement
        # Preferred agent id for a preferred-agent bucket, else None.
        self.owner = owner


class WaitingContacts:
    """Waiting contacts of one queue, best first, grouped by requirement.

    Reads/writes on contacts: `qkey`, `wait_epoch`, `bucket`, `req`,
    `pref_agent`, `tried` (agent id -> time until which it may not be offered
    this contact again), `priority`, `arrived_at`, `seq`.

    Grouping by requirement means an agent looking for work tests its skills
    once per group and looks only at each group's head, instead of walking
    contacts it cannot take. Contacts reserved for a preferred agent sit in
    that agent's own group, which only that agent looks at.
    """

    __slots__ = ("ordering", "priority_weight", "buckets", "preferred", "count")

    def __init__(self, ordering: Ordering, priority_weight: float) -> None:
        self.ordering = ordering
        self.priority_weight = priority_weight
        self.buckets: dict[Any, _Bucket] = {}
        self.preferred: dict[str, _Bucket] = {}
        # Contacts currently waiting (not ringing).
        self.count = 0

    def key_for(self, contact: Any) -> tuple:
        """The queue-local sort key; fixed for the contact's stay in the queue.

        Score ordering ranks by priority * weight + (now - arrived_at); for a
        common `now` that orders exactly like arrived_at - priority * weight,
        which does not change with time, so a heap can hold it.
        """
        if self.ordering is Ordering.SCORE:
            return (contact.arrived_at - contact.priority * self.priority_weight, contact.seq)
        return (-contact.priority, contact.arrived_at, contact.seq)

    def add(self, contact: Any) -> None:
        assert contact.bucket is None, "contact already waiting"
        contact.wait_epoch += 1
        if contact.pref_agent is not None:
            bucket = self.preferred.get(contact.pref_agent)
            if bucket is None:
                bucket = self.preferred[contact.pref_agent] = _Bucket(None, contact.pref_agent)
        else:
            bucket = self.buckets.get(contact.req)
            if bucket is None:
                bucket = self.buckets[contact.req] = _Bucket(contact.req, None)
        heappush(bucket.heap, (*contact.qkey, contact.wait_epoch, contact))
        bucket.live += 1
        contact.bucket = bucket
        self.count += 1
        if len(bucket.heap) > _SLACK_FACTOR * bucket.live + _SLACK_FLOOR:
            bucket.heap = [e for e in bucket.heap if e[-2] == e[-1].wait_epoch]
            heapify(bucket.heap)

    def remove(self, contact: Any) -> None:
        bucket = contact.bucket
        assert bucket is not None, "contact not waiting"
        contact.bucket = None
        contact.wait_epoch += 1
        self.count -= 1
        bucket.live -= 1
        if bucket.live == 0:
            # Dropping an empty group drops its dead entries with it.
            if bucket.owner is not None:
                del self.preferred[bucket.owner]
            else:
                del self.buckets[bucket.requirement]

    def best_for(self, agent: Any, penalty: int, now: float) -> tuple | None:
        """The best waiting contact this agent (a member at `penalty`) may take now, as a heap entry."""
        best = None
        skills = agent.skills
        for requirement, bucket in self.buckets.items():
            heap = bucket.heap
            entry = heap[0]
            if best is not None and best < entry:
                continue  # not better than what we have, whatever the skills say
            required, max_penalty = requirement
            if max_penalty is not None and penalty > max_penalty:
                continue
            if required and not skills_ok(skills, required):
                continue
            contact = entry[-1]
            if entry[-2] != contact.wait_epoch or contact.tried:
                entry = self._head(bucket, agent.id, now, None, 0)
                if entry is None:
                    continue
            if best is None or entry < best:
                best = entry
        own = self.preferred.get(agent.id)
        if own is not None:
            entry = self._head(own, agent.id, now, skills, penalty)
            if entry is not None and (best is None or entry < best):
                best = entry
        return best

    @staticmethod
    def _head(bucket: _Bucket, agent_id: str, now: float, skills: dict | None, penalty: int) -> tuple | None:
        # The first live entry this agent may take. Entries it may not take
        # (it missed the contact lately, or, in a preferred bucket, lacks the
        # contact's skills) are set aside and put back: there are few of them.
        heap = bucket.heap
        aside: list[tuple] = []
        found = None
        while heap:
            entry = heap[0]
            contact = entry[-1]
            if entry[-2] != contact.wait_epoch:
                heappop(heap)
                continue
            tried = contact.tried
            blocked = bool(tried) and tried.get(agent_id, now) > now
            if not blocked and skills is not None:
                required, max_penalty = contact.req
                blocked = (max_penalty is not None and penalty > max_penalty) or not skills_ok(skills, required)
            if not blocked:
                found = entry
                break
            aside.append(heappop(heap))
        for entry in aside:
            heappush(heap, entry)
        return found

    def position(self, contact: Any) -> int:
        """1-based rank of a waiting contact among the queue's waiting contacts (O(n))."""
        key = contact.qkey
        ahead = 0
        for bucket in (*self.buckets.values(), *self.preferred.values()):
            for entry in bucket.heap:
                other = entry[-1]
                if entry[-2] == other.wait_epoch and other is not contact and other.qkey < key:
                    ahead += 1
        return ahead + 1

    def contacts(self) -> list[Any]:
        """All waiting contacts, best first (O(n log n))."""
        found = [
            entry[-1]
            for bucket in (*self.buckets.values(), *self.preferred.values())
            for entry in bucket.heap
            if entry[-2] == entry[-1].wait_epoch
        ]
        found.sort(key=lambda c: c.qkey)
        return found
