"""The engine's private records of members, agents, queues and contacts.

These are mutable working state, never handed out: the public values are in
`config` (inputs), `commands` (outputs) and `stats` (snapshots). The indexes
in `strategies` read some of their attributes; each index lists which.
"""

from __future__ import annotations

import math
import random

from .commands import ContactRecord, OfferAttempt, Outcome, QueueSegment, StatsChanged, build_contact_record
from .config import Contact, EmptyRule, QueueConfig, Strategy, effective_requirement
from .stats import AgentCounters, QueueCounters
from .strategies import AgentIndex, WaitingContacts

# Contact states.
WAITING, RINGING, CONNECTED, WRAP_UP, DONE = "waiting", "ringing", "connected", "wrap-up", "done"

# Blocked until: not blocked (one shared value, not one float per agent).
_NEVER = -math.inf


class MemberRec:
    """An agent's place in one queue."""

    __slots__ = ("queue", "penalty", "weight", "order")

    def __init__(self, penalty: int, weight: float, order: int) -> None:
        # The queue's record while it is configured, else None (kept by the engine).
        self.queue: QueueRec | None = None
        self.penalty = penalty
        self.weight = weight
        # Position in the queue's member list (top-down, round-robin, ring-all order).
        self.order = order


class AgentRec:
    """An agent: its state, memberships, routing counters and statistics."""

    # The attributes read on every decision come first.
    __slots__ = (
        "id", "skills", "routes", "logged_in", "paused", "ready", "available", "offer", "contact",
        "epoch", "blocked_until", "idle_since", "counters", "served", "members", "calls", "talk_total",
        "missed_streak", "block_epoch",
    )

    def __init__(self, agent_id: str) -> None:
        self.id = agent_id
        self.skills: dict[str, int] = {}
        # Its memberships of configured queues, in membership order (each
        # knows its queue), kept by the engine as queues come and go; and the
        # same as (queue, penalty) pairs, which the routing reads on every
        # decision without touching the memberships.
        self.served: list[MemberRec] = []
        self.routes: tuple[tuple[QueueRec, int], ...] = ()
        self.members: dict[str, MemberRec] = {}
        self.logged_in = False
        # Not ready by choice (pause), as opposed to busy with a contact.
        self.paused = False
        # The hub says ready for offers (stays true while ringing).
        self.ready = False
        # May be offered a contact right now: ready, not ringing, not blocked.
        self.available = False
        self.offer: str | None = None
        self.contact: ContactRec | None = None
        # Bumped whenever the agent stops being available: kills its index entries.
        self.epoch = 0
        self.idle_since = 0.0
        # Routing counters (lifetime, not reset with the statistics).
        self.calls = 0
        self.talk_total = 0.0
        self.missed_streak = 0
        self.blocked_until = _NEVER
        self.block_epoch = 0
        self.counters = AgentCounters()


class QueueRec:
    """A queue: its indexes, contacts, head counts and statistics."""

    __slots__ = ("name", "config", "index", "waiting", "contacts", "counters", "idle", "logged_in", "working",
                 "aht", "changed", "rank", "ring_all", "always_open", "timed")

    def __init__(self, config: QueueConfig, rng: random.Random) -> None:
        self.name = config.name
        self.index = AgentIndex(config.strategy, rng)  # type: ignore[arg-type]
        self.waiting = WaitingContacts(config.ordering, config.priority_weight)  # type: ignore[arg-type]
        # Contacts waiting or ringing here, in order of entry (oldest first).
        self.contacts: dict[str, ContactRec] = {}
        self.counters = QueueCounters()
        # Members' idle time (the counters' own LiveSum, which resets keep);
        # it runs for exactly the members that are ready.
        self.idle = self.counters.idle
        # Members logged in / logged in and not paused.
        self.logged_in = 0
        self.working = 0
        # Smoothed handle time of this queue's contacts, for expected waits.
        self.aht: float | None = None
        # What is emitted when its figures moved (an immutable value, reused).
        self.changed = StatsChanged(config.name)
        self.set_config(config)

    def set_config(self, config: QueueConfig) -> None:
        """Take a new configuration (the engine rebuilds the indexes if needed)."""
        self.config = config
        # Across an agent's queues, the lowest rank (highest weight) goes first.
        self.rank = -config.weight
        self.ring_all = config.strategy is Strategy.RING_ALL
        # Nothing to check at arrival: no length limit and no join rule.
        self.always_open = not config.max_length and config.join_when_empty is EmptyRule.ALLOW
        # Every stay here has timers (max wait, announcements).
        self.timed = config.max_wait is not None or config.announce_interval > 0

    @property
    def ready(self) -> int:
        """Members ready now (ringing included)."""
        return self.idle.count

    def refusal(self) -> str | None:
        """Why an arrival (or an overflow) would be refused now, or None."""
        if self.always_open:
            return None
        cfg = self.config
        if cfg.max_length and len(self.contacts) >= cfg.max_length:
            return "queue-full"
        return empty_reason(cfg.join_when_empty, self)


class ContactRec:
    """A contact from arrival to its record: where it waits, its offers, its requirement."""

    __slots__ = (
        "id", "spec", "priority", "seq", "arrived_at", "order", "queue", "entered_at", "state", "qkey", "req", "steps",
        "step", "pref_agent", "pref_declined", "bucket", "wait_epoch", "timer_epoch", "offer_epoch", "ringing", "tried",
        "segments", "offers", "agent_id", "answered_at", "talk_ended_at", "talk", "hold", "busy",
    )

    def __init__(self, spec: Contact, seq: int, now: float) -> None:
        self.id = spec.id
        self.spec = spec
        self.priority = spec.priority
        self.seq = seq
        self.arrived_at = now
        # Higher priority first, then earlier arrival (fifo key; rank across queues).
        self.order = (-spec.priority, now, seq)
        self.queue = spec.queue
        self.state = WAITING
        # entered_at, qkey, req, steps, step and pref_agent are set when the
        # contact enters a queue (EngineState._enter), before any use.
        self.pref_declined = False
        self.bucket = None
        self.wait_epoch = 0
        self.timer_epoch = 0
        self.offer_epoch = 0
        # Agent id -> when it started ringing.
        self.ringing: dict[str, float] = {}
        # Agent id -> time until which it may not be offered this contact
        # again; None until an agent misses or rejects it.
        self.tried: dict[str, float] | None = None
        self.segments: list[QueueSegment] = []
        self.offers: list[OfferAttempt] = []
        self.agent_id: str | None = None
        self.answered_at: float | None = None
        self.talk_ended_at: float | None = None
        self.talk = 0.0
        self.hold = 0.0
        # busy, the LiveSum its busy time runs in (it survives a queue's
        # removal), is set when it is answered.

    def apply_steps(self, q: QueueRec, now: float) -> None:
        """Set the routing steps in force in queue `q` and the requirement of the current one."""
        spec = self.spec
        self.steps = spec.routing_steps if spec.routing_steps is not None else q.config.routing_steps
        if not self.steps:
            self.step = -1
            self.req = effective_requirement(spec.required_skills, None)
            return
        waited = now - self.entered_at
        step = -1
        for i, s in enumerate(self.steps):
            if s.after_seconds <= waited:
                step = i
        self.step = step
        self.req = effective_requirement(spec.required_skills, self.steps[step] if step >= 0 else None)

    def record(self, now: float, outcome: Outcome, reason: str | None, wrap_up: float) -> ContactRecord:
        """The contact's whole life, as emitted when it is over."""
        answered = self.answered_at is not None
        return build_contact_record(
            contact_id=self.id, priority=self.priority, arrived_at=self.arrived_at, segments=tuple(self.segments),
            offers=tuple(self.offers), outcome=outcome, reason=reason, queue=self.queue, agent_id=self.agent_id,
            answered_at=self.answered_at, talk_ended_at=self.talk_ended_at, ended_at=now,
            wait_seconds=(self.answered_at if answered else now) - self.arrived_at, talk_seconds=self.talk,
            hold_seconds=self.hold, wrap_up_seconds=wrap_up, caller_data=self.spec.caller_data,
        )


def may_take(agent: AgentRec, penalty: int, c: ContactRec, now: float) -> bool:
    """Whether the contact, at its current step, may be offered to this member."""
    required, max_penalty = c.req
    if max_penalty is not None and penalty > max_penalty:
        return False
    if c.tried and c.tried.get(agent.id, now) > now:
        return False
    skills = agent.skills
    for skill, level in required:  # skills_ok(), inlined
        if skills.get(skill, -1) < level:
            return False
    return True


def empty_reason(rule: EmptyRule, q: QueueRec) -> str | None:
    """Why queue `q` counts as empty under `rule`, or None if it does not."""
    if rule is EmptyRule.NO_LOGGED_IN and q.logged_in == 0:
        return "no-agents-logged-in"
    if rule is EmptyRule.NO_WORKING and q.working == 0:
        return "no-agents-working"
    if rule is EmptyRule.NO_READY and q.ready == 0:
        return "no-agents-ready"
    return None
