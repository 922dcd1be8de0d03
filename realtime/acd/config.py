"""Configuration and input value types of the ACD, with their validation.

Every type here is an immutable value. Field-level checks run when a value is
built, so a bad value can never reach the engine; checks that need to know
other queues (an overflow target) run in the engine before anything changes.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

MIN_LEVEL = 0
MAX_LEVEL = 100
# Prefix of an overflow target that ends the contact instead of moving it.
END_PREFIX = "end:"


class AcdError(Exception):
    """Base of every error the ACD raises on purpose."""


class ConfigError(AcdError, ValueError):
    """A configuration value is invalid; the message names the field and the value."""


class InvalidContactError(AcdError, ValueError):
    """A contact handed to the engine carries an invalid field."""


class UnknownQueueError(AcdError, KeyError):
    """The named queue is not configured."""


class UnknownAgentError(AcdError, KeyError):
    """The named agent is not configured."""


class UnknownContactError(AcdError, KeyError):
    """The named contact is not known to the engine (never arrived, or finished)."""


class StateError(AcdError, RuntimeError):
    """The input contradicts the engine's state (e.g. a duplicate contact id)."""


class Strategy(StrEnum):
    """How a queue picks among its ready members for a waiting contact."""

    RING_ALL = "ring-all"
    LONGEST_IDLE = "longest-idle"
    ROUND_ROBIN = "round-robin"
    FEWEST_CALLS = "fewest-calls"
    LEAST_TALK_TIME = "least-talk-time"
    TOP_DOWN = "top-down"
    RANDOM = "random"
    WEIGHTED_RANDOM = "weighted-random"


class Ordering(StrEnum):
    """How a queue orders its waiting contacts."""

    # Priority first (higher first), then arrival time.
    FIFO = "fifo"
    # priority * priority_weight + seconds waited, highest first.
    SCORE = "score"


class EmptyRule(StrEnum):
    """When a queue counts as empty for its join and leave rules."""

    # Never refuse a contact and never send one away.
    ALLOW = "allow"
    # Empty when no member is logged in (ready, paused, busy or in wrap-up).
    NO_LOGGED_IN = "no-logged-in"
    # Empty when every logged-in member is paused: nobody is ready, ringing,
    # on a contact or in wrap-up.
    NO_WORKING = "no-working"
    # Empty when no member is ready right now (ringing counts as ready); busy
    # members do not count, so a queue whose agents are all on calls is empty.
    NO_READY = "no-ready"


def _enum(cls: type[StrEnum], where: str, value: Any) -> Any:
    try:
        return cls(value)
    except ValueError:
        allowed = ", ".join(m.value for m in cls)  # type: ignore[attr-defined]
        raise ConfigError(f"{where}: unknown value {value!r} (allowed: {allowed})") from None


def _number(where: str, value: Any, *, positive: bool = False, allow_none: bool = False) -> None:
    if value is None and allow_none:
        return
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise ConfigError(f"{where}: {value!r} is not a finite number")
    if value < 0 or (positive and value == 0):
        need = "> 0" if positive else ">= 0"
        raise ConfigError(f"{where}: {value!r} must be {need}")


def _integer(where: str, value: Any, *, allow_none: bool = False) -> None:
    if value is None and allow_none:
        return
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ConfigError(f"{where}: {value!r} must be an integer >= 0")


def _level(where: str, value: Any, error: type[ValueError] = ConfigError) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or not MIN_LEVEL <= value <= MAX_LEVEL:
        raise error(f"{where}: level {value!r} outside {MIN_LEVEL}..{MAX_LEVEL}")


def _name(where: str, value: Any, error: type[ValueError] = ConfigError) -> None:
    if not isinstance(value, str) or not value:
        raise error(f"{where}: {value!r} must be a non-empty string")


def check_skills(where: str, skills: Mapping[str, int], error: type[ValueError] = ConfigError) -> dict[str, int]:
    """Validate a skill map (name -> level 0..100) and return a private copy."""
    if not isinstance(skills, Mapping):
        raise error(f"{where}: {skills!r} must be a mapping of skill name to level")
    for skill, level in skills.items():
        _name(f"{where} key", skill, error)
        _level(f"{where}[{skill!r}]", level, error)
    return dict(skills)


@dataclass(frozen=True, slots=True)
class RoutingStep:
    """A relaxation of a contact's requirements once it has waited long enough."""

    # Seconds waited in the current queue after which this step applies.
    after_seconds: float
    # Caps every required skill level at this value (None: levels unchanged).
    min_level: int | None = None
    # Required skills that stop being required from this step on.
    drop_skills: tuple[str, ...] = ()
    # Any member of the queue qualifies, whatever its skills.
    any_member: bool = False
    # Only members whose penalty is at most this (None: any penalty).
    max_penalty: int | None = None

    def __post_init__(self) -> None:
        _number("RoutingStep.after_seconds", self.after_seconds)
        if self.min_level is not None:
            _level("RoutingStep.min_level", self.min_level)
        _integer("RoutingStep.max_penalty", self.max_penalty, allow_none=True)
        object.__setattr__(self, "drop_skills", tuple(self.drop_skills))


def check_steps(where: str, steps: Any, error: type[ValueError] = ConfigError) -> tuple[RoutingStep, ...]:
    """Validate routing steps: RoutingStep values with strictly increasing after_seconds."""
    steps = tuple(steps)
    last = -1.0
    for i, step in enumerate(steps):
        if not isinstance(step, RoutingStep):
            raise error(f"{where}[{i}]: {step!r} is not a RoutingStep")
        if step.after_seconds <= last:
            raise error(f"{where}[{i}].after_seconds: {step.after_seconds!r} must exceed the previous step's")
        last = step.after_seconds
    return steps


Requirement = tuple[tuple[tuple[str, int], ...], int | None]
_NOTHING: Requirement = ((), None)


def effective_requirement(required: Mapping[str, int], step: RoutingStep | None) -> Requirement:
    """The (skills, max_penalty) a contact needs at a step; skills sorted for hashing."""
    if step is None:
        if not required:
            return _NOTHING
        # One skill (the usual case) needs no sorting.
        return (tuple(required.items()) if len(required) == 1 else tuple(sorted(required.items())), None)
    if step.any_member:
        return (), step.max_penalty
    skills = []
    for skill, level in sorted(required.items()):
        if skill in step.drop_skills:
            continue
        if step.min_level is not None and level > step.min_level:
            level = step.min_level
        skills.append((skill, level))
    return tuple(skills), step.max_penalty


@dataclass(frozen=True, slots=True)
class QueueConfig:
    """Everything that defines one queue. Replaced as a whole, never patched."""

    # Unique queue name; must not start with "end:".
    name: str
    # Member selection strategy (a Strategy or its string value).
    strategy: Strategy | str = Strategy.LONGEST_IDLE
    # Seconds an offer rings before it counts as missed.
    ring_timeout: float = 20.0
    # Seconds a contact may wait in this queue before overflowing (None: forever).
    max_wait: float | None = None
    # Where a contact goes after max_wait: a queue name or "end:<reason>".
    overflow: str | None = None
    # Most contacts waiting or ringing at once (0: unlimited).
    max_length: int = 0
    # When arrivals are refused because the queue is empty.
    join_when_empty: EmptyRule | str = EmptyRule.ALLOW
    # When waiting contacts are sent away because the queue became empty.
    leave_when_empty: EmptyRule | str = EmptyRule.ALLOW
    # Wrap-up the hub grants after a contact of this queue (carried, not timed).
    wrap_up_seconds: float = 0.0
    # Service-level threshold: answered within this many seconds counts as in time.
    service_level_seconds: float = 20.0
    # Seconds between position announcements to a waiting contact (0: off).
    announce_interval: float = 0.0
    # Consecutive missed offers that pause an agent (0: engine-wide default).
    max_missed_offers: int = 0
    # Seconds an agent gets no offer at all after rejecting one of this queue.
    reject_delay: float = 0.0
    # Seconds an agent gets no offer at all after reporting busy on one.
    busy_delay: float = 0.0
    # Seconds an agent gets no offer at all after letting one ring out.
    no_answer_delay: float = 0.0
    # Seconds before the same contact is offered again to an agent who missed or rejected it.
    retry_delay: float = 5.0
    # Waiting-contact order: "fifo" or "score".
    ordering: Ordering | str = Ordering.FIFO
    # Score ordering: seconds of waiting that one priority level is worth.
    priority_weight: float = 60.0
    # Importance against the agent's other queues: higher is served first.
    weight: int = 0
    # Requirement relaxations over waiting time, applied to every contact of the queue.
    routing_steps: tuple[RoutingStep, ...] = ()

    def __post_init__(self) -> None:
        _name("QueueConfig.name", self.name)
        if self.name.startswith(END_PREFIX):
            raise ConfigError(f"QueueConfig.name: {self.name!r} must not start with {END_PREFIX!r}")
        object.__setattr__(self, "strategy", _enum(Strategy, "QueueConfig.strategy", self.strategy))
        object.__setattr__(self, "ordering", _enum(Ordering, "QueueConfig.ordering", self.ordering))
        for rule in ("join_when_empty", "leave_when_empty"):
            object.__setattr__(self, rule, _enum(EmptyRule, f"QueueConfig.{rule}", getattr(self, rule)))
        _number("QueueConfig.ring_timeout", self.ring_timeout, positive=True)
        _number("QueueConfig.max_wait", self.max_wait, positive=True, allow_none=True)
        for name in ("wrap_up_seconds", "service_level_seconds", "announce_interval", "reject_delay",
                     "busy_delay", "no_answer_delay", "retry_delay", "priority_weight"):
            _number(f"QueueConfig.{name}", getattr(self, name))
        _integer("QueueConfig.max_length", self.max_length)
        _integer("QueueConfig.max_missed_offers", self.max_missed_offers)
        if isinstance(self.weight, bool) or not isinstance(self.weight, int):
            raise ConfigError(f"QueueConfig.weight: {self.weight!r} must be an integer")
        if self.overflow is not None:
            _name("QueueConfig.overflow", self.overflow)
            if self.max_wait is None:
                raise ConfigError(f"QueueConfig.overflow: {self.overflow!r} needs max_wait to be set")
            if self.overflow == END_PREFIX:
                raise ConfigError(f"QueueConfig.overflow: {self.overflow!r} needs a reason after {END_PREFIX!r}")
            if self.overflow == self.name:
                raise ConfigError(f"QueueConfig.overflow: {self.overflow!r} is the queue itself")
        object.__setattr__(self, "routing_steps", check_steps("QueueConfig.routing_steps", self.routing_steps))

    @property
    def overflow_queue(self) -> str | None:
        """The queue a contact moves to after max_wait, or None if it ends instead."""
        if self.overflow is None or self.overflow.startswith(END_PREFIX):
            return None
        return self.overflow

    @property
    def overflow_end_reason(self) -> str:
        """The reason given when max_wait ends the contact rather than moving it."""
        if self.overflow is None:
            return "max-wait"
        return self.overflow[len(END_PREFIX):]


@dataclass(frozen=True, slots=True)
class Membership:
    """An agent's place in one queue."""

    # Queue name (may be configured later; dormant until then).
    queue: str
    # Lower is preferred: higher penalties get contacts only when lower ones are busy.
    penalty: int = 0
    # Relative share for weighted-random (> 0).
    weight: float = 1.0

    def __post_init__(self) -> None:
        _name("Membership.queue", self.queue)
        _integer(f"Membership[{self.queue!r}].penalty", self.penalty)
        _number(f"Membership[{self.queue!r}].weight", self.weight, positive=True)


@dataclass(frozen=True, slots=True)
class AgentConfig:
    """An agent's skills and queue memberships. Replaced as a whole."""

    # Unique agent id.
    id: str
    # Skill name -> level 0..100.
    skills: Mapping[str, int] = field(default_factory=dict)
    # Memberships; a mapping queue -> penalty is accepted and converted.
    memberships: tuple[Membership, ...] | Mapping[str, int] = ()

    def __post_init__(self) -> None:
        _name("AgentConfig.id", self.id)
        object.__setattr__(self, "skills", check_skills(f"AgentConfig[{self.id!r}].skills", self.skills))
        members = self.memberships
        if isinstance(members, Mapping):
            members = tuple(Membership(q, p) for q, p in members.items())
        members = tuple(members)
        seen: set[str] = set()
        for m in members:
            if not isinstance(m, Membership):
                raise ConfigError(f"AgentConfig[{self.id!r}].memberships: {m!r} is not a Membership")
            if m.queue in seen:
                raise ConfigError(f"AgentConfig[{self.id!r}].memberships: queue {m.queue!r} listed twice")
            seen.add(m.queue)
        object.__setattr__(self, "memberships", members)


@dataclass(frozen=True, slots=True)
class Contact:
    """A contact (call, chat...) asking to be routed."""

    # Unique id among contacts the engine currently knows.
    id: str
    # Queue the contact asks for.
    queue: str
    # Higher is served first.
    priority: int = 0
    # Skill name -> minimum level the agent must have.
    required_skills: Mapping[str, int] = field(default_factory=dict)
    # Opaque data handed to the agent with each offer.
    caller_data: Mapping[str, Any] = field(default_factory=dict)
    # Agent to wait for first (the caller's last agent, say).
    preferred_agent: str | None = None
    # Engine-clock time until which only preferred_agent may take the contact.
    preferred_until: float | None = None
    # Replaces the queue's routing steps for this contact (None: use the queue's).
    routing_steps: tuple[RoutingStep, ...] | None = None

    def __post_init__(self) -> None:
        # Contacts are built once per call, so the common case is kept cheap.
        if type(self.id) is not str or not self.id:
            _name("Contact.id", self.id, InvalidContactError)
        if type(self.queue) is not str or not self.queue:
            _name(f"Contact[{self.id!r}].queue", self.queue, InvalidContactError)
        if type(self.priority) is not int:
            raise InvalidContactError(f"Contact[{self.id!r}].priority: {self.priority!r} must be an integer")
        if self.required_skills:
            where = f"Contact[{self.id!r}].required_skills"
            skills = check_skills(where, self.required_skills, InvalidContactError)
        elif isinstance(self.required_skills, Mapping):
            skills = {}
        else:
            raise InvalidContactError(f"Contact[{self.id!r}].required_skills: {self.required_skills!r} is not a mapping")
        object.__setattr__(self, "required_skills", skills)
        if (self.preferred_agent is None) != (self.preferred_until is None):
            raise InvalidContactError(
                f"Contact[{self.id!r}].preferred_until: {self.preferred_until!r} "
                "must be given together with preferred_agent"
            )
        if self.preferred_until is not None and not math.isfinite(self.preferred_until):
            raise InvalidContactError(f"Contact[{self.id!r}].preferred_until: {self.preferred_until!r} is not finite")
        if self.routing_steps is not None:
            steps = check_steps(f"Contact[{self.id!r}].routing_steps", self.routing_steps, InvalidContactError)
            object.__setattr__(self, "routing_steps", steps)
