"""The two ordered indexes behind every routing decision.

`AgentIndex` holds a queue's available members ordered for the queue's
strategy; `WaitingContacts` holds its waiting contacts ordered by priority and
arrival (or score), grouped by what they require. Both are binary heaps with
lazy deletion: an entry carries the epoch its owner had when it was pushed,
and an entry whose epoch is no longer current is dropped when it surfaces.
That keeps every change O(log n) and lets one agent sit in many queues'
heaps without the engine visiting them all when it goes busy.

`AgentIndex.select` serves a contact looking for an agent; `best_waiting`
serves an agent looking for a contact across its queues.

The objects indexed are the engine's private agent and contact records; the
attributes read here are listed on each class and function.
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable
from heapq import heapify, heappop, heappush
from typing import Any

from .config import Ordering, Strategy

# A heap is rebuilt without its dead entries when it holds more than this many
# entries per live one (a contact group), or has grown this many times past
# its size at its last rebuild (a member index), plus a floor: memory stays
# proportional to what is live, and the cost of rebuilding O(1) per push.
_SLACK_FACTOR = 2
_SLACK_FLOOR = 64

_MOVING = frozenset({Strategy.ROUND_ROBIN, Strategy.RANDOM, Strategy.WEIGHTED_RANDOM})

# Sorts after every waiting-contact key (they start with a finite number).
_LAST = (math.inf,)

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

    __slots__ = ("strategy", "heap", "entry", "_limit", "_moving", "_rng", "_clock", "_pointer")

    def __init__(self, strategy: Strategy, rng: random.Random) -> None:
        self.strategy = strategy
        # Entries of available members, and dead ones: the engine makes all
        # the entries of an agent dead at once by bumping its epoch, and they
        # are dropped when they surface or when the heap is compacted.
        self.heap: list[tuple] = []
        # Compact when the heap grows past this (see _SLACK_FACTOR).
        self._limit = _SLACK_FLOOR
        # entry(agent, member): the heap entry for the strategy, chosen once
        # here rather than per push.
        self.entry: Callable[[Any, Any], tuple] = {
            Strategy.LONGEST_IDLE: self._longest_idle,
            Strategy.FEWEST_CALLS: self._fewest_calls,
            Strategy.LEAST_TALK_TIME: self._least_talk_time,
            Strategy.ROUND_ROBIN: self._round_robin,
            Strategy.RANDOM: self._random,
            Strategy.WEIGHTED_RANDOM: self._weighted_random,
        }.get(strategy, self._member_order)
        # Keys that depend on a pointer or clock moved by each pick.
        self._moving = strategy in _MOVING
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

    # -- heap entries, one function per strategy

    @staticmethod
    def _longest_idle(agent: Any, member: Any) -> tuple:
        return (member.penalty, agent.idle_since, member.order, agent.epoch, agent, member)

    @staticmethod
    def _fewest_calls(agent: Any, member: Any) -> tuple:
        return (member.penalty, agent.calls, agent.idle_since, member.order, agent.epoch, agent, member)

    @staticmethod
    def _least_talk_time(agent: Any, member: Any) -> tuple:
        return (member.penalty, agent.talk_total, agent.idle_since, member.order, agent.epoch, agent, member)

    def _round_robin(self, agent: Any, member: Any) -> tuple:
        p, order = member.penalty, member.order
        cycle, last = self._pointer.get(p, (0, -1))
        return (p, cycle if order > last else cycle + 1, order, agent.epoch, agent, member)

    def _random(self, agent: Any, member: Any) -> tuple:
        p = member.penalty
        return (p, self._clock.get(p, 0.0) + self._rng.expovariate(1.0), member.order, agent.epoch, agent, member)

    def _weighted_random(self, agent: Any, member: Any) -> tuple:
        p = member.penalty
        key = self._clock.get(p, 0.0) + self._rng.expovariate(member.weight)
        return (p, key, member.order, agent.epoch, agent, member)

    @staticmethod
    def _member_order(agent: Any, member: Any) -> tuple:
        # top-down and ring-all.
        return (member.penalty, member.order, agent.epoch, agent, member)

    # -- changes

    def push(self, agent: Any, member: Any) -> None:
        """The agent became available in this queue."""
        heap = self.heap
        heappush(heap, self.entry(agent, member))
        if len(heap) > self._limit:
            self.compact()

    def compact(self) -> None:
        self.heap = [e for e in self.heap if e[-3] == e[-2].epoch and e[-2].available]
        heapify(self.heap)
        self._limit = _SLACK_FACTOR * len(self.heap) + _SLACK_FLOOR

    # -- selection

    def select(self, eligible: Eligible, contact: Any, now: float) -> Any | None:
        """Pop and return the best available agent eligible for the contact, or None.

        Only candidates are examined: ineligible ones met on the way are put
        back; the winner is not, since the engine makes it unavailable at once.
        """
        heap = self.heap
        skipped: list[tuple] | None = None
        while heap:
            entry = heappop(heap)
            agent = entry[-2]
            if entry[-3] != agent.epoch or not agent.available:
                continue
            if eligible(agent, entry[0], contact, now):
                if self._moving:
                    self._picked(entry, skipped)
                elif skipped:
                    for other in skipped:
                        heappush(heap, other)
                return agent
            if skipped is None:
                skipped = [entry]
            else:
                skipped.append(entry)
        if skipped:
            for other in skipped:
                heappush(heap, other)
        return None

    def _picked(self, chosen: tuple, skipped: list[tuple] | None) -> None:
        # Move the pointer (round-robin) or the clock (random) of the winner's
        # tier; entries skipped in that tier now sit behind it: give them the
        # key they would get if pushed now.
        penalty = chosen[0]
        if self.strategy is Strategy.ROUND_ROBIN:
            self._pointer[penalty] = (chosen[1], chosen[2])
        else:
            self._clock[penalty] = chosen[1]
        for entry in skipped or ():
            if entry[0] == penalty:
                # Skipped entries are live: a fresh one carries the same epoch.
                entry = self.entry(entry[-2], entry[-1])
            heappush(self.heap, entry)

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


class _Bucket:
    """Waiting contacts of one queue that share a requirement.

    The entry at the top of the heap is always live: removing a contact pops
    its entry at once when it is on top, and any dead entries it uncovers.
    `head` is that entry, kept at hand: agents looking for work read only
    the heads, and this spares them the heap itself.
    """

    __slots__ = ("heap", "head", "live", "retrying", "requirement", "required", "max_penalty", "owner")

    def __init__(self, requirement: Any, owner: str | None) -> None:
        self.heap: list[tuple] = []
        self.head: tuple = ()  # set by the first add
        self.live = 0
        # Live contacts that some agent may not be offered for a while (their
        # `tried` is set); while there is none, the top is everyone's to take.
        self.retrying = 0
        # (required skills, max penalty); None for a preferred-agent bucket,
        # whose contacts are checked one by one.
        self.requirement = requirement
        # The requirement taken apart for best_waiting: skills, and the highest
        # penalty admitted (infinite when the requirement has no limit).
        self.required, max_penalty = requirement if requirement is not None else ((), None)
        self.max_penalty = math.inf if max_penalty is None else max_penalty
        # Preferred agent id for a preferred-agent bucket, else None.
        self.owner = owner


class WaitingContacts:
    """Waiting contacts of one queue, best first, grouped by requirement.

    Reads/writes on contacts: `qkey`, `wait_epoch`, `bucket`, `req`,
    `pref_agent`, `tried` (None, or agent id -> time until which it may not be
    offered this contact again; it does not change while the contact waits),
    `order` (-priority, arrival, sequence), `priority`, `arrived_at`, `seq`.

    Grouping by requirement means an agent looking for work tests its skills
    once per group and looks only at each group's head, instead of walking
    contacts it cannot take. Contacts reserved for a preferred agent sit in
    that agent's own group, which only that agent looks at.
    """

    __slots__ = ("ordering", "priority_weight", "buckets", "preferred", "count", "fifo", "key_for")

    def __init__(self, ordering: Ordering, priority_weight: float) -> None:
        self.ordering = ordering
        self.priority_weight = priority_weight
        self.buckets: dict[Any, _Bucket] = {}
        self.preferred: dict[str, _Bucket] = {}
        # Contacts currently waiting (not ringing).
        self.count = 0
        # Fifo keys are the contact's `order`, so heap entries compare with
        # those of other fifo queues too (see best_waiting).
        self.fifo = ordering is not Ordering.SCORE
        # key_for(contact): the queue-local sort key, fixed for the contact's
        # stay in the queue.
        self.key_for: Callable[[Any], tuple] = self._fifo_key if self.fifo else self._score_key

    @staticmethod
    def _fifo_key(contact: Any) -> tuple:
        # Higher priority first, then earlier arrival: the contact's own order.
        return contact.order

    def _score_key(self, contact: Any) -> tuple:
        # Score ordering ranks by priority * weight + (now - arrived_at); for a
        # common `now` that orders exactly like arrived_at - priority * weight,
        # which does not change with time, so a heap can hold it.
        return (contact.arrived_at - contact.priority * self.priority_weight, contact.seq)

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
        heap = bucket.heap
        heappush(heap, (*contact.qkey, contact.wait_epoch, contact))
        bucket.live += 1
        if contact.tried:
            bucket.retrying += 1
        contact.bucket = bucket
        self.count += 1
        if len(heap) > _SLACK_FACTOR * bucket.live + _SLACK_FLOOR:
            heap = bucket.heap = [e for e in heap if e[-2] == e[-1].wait_epoch]
            heapify(heap)
        bucket.head = heap[0]

    def remove(self, contact: Any) -> None:
        bucket = contact.bucket
        assert bucket is not None, "contact not waiting"
        contact.bucket = None
        contact.wait_epoch += 1
        self.count -= 1
        bucket.live -= 1
        if contact.tried:
            bucket.retrying -= 1
        if bucket.live == 0:
            # Dropping an empty group drops its dead entries with it.
            if bucket.owner is not None:
                del self.preferred[bucket.owner]
            else:
                del self.buckets[bucket.requirement]
            return
        heap = bucket.heap
        if heap[0][-1] is contact:
            # Keep the top live (the usual case: the best contact was offered).
            heappop(heap)
            while heap[0][-2] != heap[0][-1].wait_epoch:
                heappop(heap)
            bucket.head = heap[0]

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
        if heap:
            bucket.head = heap[0]
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


def best_waiting(agent: Any, now: float) -> Any | None:
    """The best contact waiting in the agent's queues that it may take now, or None.

    Across queues: higher queue weight first (lower `rank`), then priority,
    then arrival (the contact's `order`); within a queue, its own order.
    Reads `agent.routes` (its configured queues and its penalty in each),
    `agent.skills`, `agent.id`; `queue.waiting`, `queue.rank`.

    Each queue's requirement groups are visited, and only their heads
    examined. Fifo keys start with the contact's `order`, so they compare
    across queues: in a fifo queue as heavy as the best one so far, a group
    whose head is behind the best contact so far is passed over at a glance.
    """
    best = None  # contact
    best_rank = 0
    best_key: tuple = _LAST  # best's `order`, or its fifo heap entry (which starts with it)
    skills = agent.skills
    for q, penalty in agent.routes:
        waiting = q.waiting
        if not waiting.count:
            continue
        rank = q.rank
        # What a contact of this queue must beat: the best so far when the
        # keys compare, else nothing (_LAST sorts after every key).
        bound = _LAST
        if best is not None:
            if rank > best_rank:
                continue  # a lighter queue cannot win
            if rank == best_rank and waiting.fifo:
                bound = best_key
        top = bound  # best heap entry found in this queue, or the bound
        for bucket in waiting.buckets.values():
            entry = bucket.head
            if top < entry:
                continue  # not better than what we have, whatever the skills say
            if penalty > bucket.max_penalty:
                continue
            qualified = True
            for skill, level in bucket.required:  # skills_ok(), inlined
                if skills.get(skill, -1) < level:
                    qualified = False
                    break
            if not qualified:
                continue
            if bucket.retrying and entry[-1].tried:
                # Its top contact may be closed to this agent for a while.
                entry = WaitingContacts._head(bucket, agent.id, now, None, 0)
                if entry is None or top < entry:
                    continue
            top = entry
        if waiting.preferred:
            own = waiting.preferred.get(agent.id)
            if own is not None:
                entry = WaitingContacts._head(own, agent.id, now, skills, penalty)
                if entry is not None and entry < top:
                    top = entry
        if top is bound:
            continue  # nothing here beats the best so far
        c = top[-1]
        # Beating a bound means beating the best; otherwise compare by weight
        # then order.
        if best is None or bound is not _LAST or rank < best_rank or c.order < best.order:
            best, best_rank = c, rank
            best_key = top if waiting.fifo else c.order
    return best
