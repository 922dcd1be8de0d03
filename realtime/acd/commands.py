"""What the engine asks its caller to do, and the record it leaves of each contact.

The engine never performs I/O: every decision becomes one of these values,
buffered until the caller drains them with `AcdEngine.commands_out()`. The
caller carries them out in order.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, fields
from enum import StrEnum
from typing import Any, TypeVar

T = TypeVar("T")


class Outcome(StrEnum):
    """How a contact's life in the ACD ended."""

    # An agent accepted it (the record is emitted once talk and wrap-up are known).
    ANSWERED = "answered"
    # The caller hung up while waiting or ringing.
    ABANDONED = "abandoned"
    # The engine ended it: overflow to "end:<reason>", leave rule, queue removed.
    ENDED = "ended"
    # Refused at arrival: unknown queue, queue full, join rule.
    REJECTED = "rejected"


class SegmentOutcome(StrEnum):
    """How a contact left one queue it waited in."""

    ANSWERED = "answered"
    ABANDONED = "abandoned"
    # max_wait passed: moved to the overflow queue or ended with the overflow reason.
    OVERFLOWED = "overflowed"
    # Sent away by the leave rule, or the queue was removed.
    ENDED = "ended"


@dataclass(frozen=True, slots=True)
class OfferContact:
    """Ring this agent with this contact."""

    # Contact being offered.
    contact_id: str
    # Agent to ring.
    agent_id: str
    # Queue the contact waits in.
    queue: str
    # Seconds after which the engine itself times the offer out.
    ring_timeout: float
    # The contact's opaque data, for the agent's screen.
    caller_data: Mapping[str, Any]


@dataclass(frozen=True, slots=True)
class CancelOffer:
    """Stop ringing this agent: the offer is void."""

    # Contact that was offered.
    contact_id: str
    # Agent whose ringing stops.
    agent_id: str
    # answered-elsewhere, abandoned, no-answer, max-wait, agent-not-ready, removed.
    reason: str


@dataclass(frozen=True, slots=True)
class ContactAssigned:
    """The agent accepted: connect them. The agent is now busy for the engine."""

    # Contact answered.
    contact_id: str
    # Agent who answered.
    agent_id: str
    # Queue it was answered from.
    queue: str
    # Seconds waited in that queue (queue entry to acceptance).
    wait_seconds: float
    # Wrap-up the queue grants afterwards; the hub times it.
    wrap_up_seconds: float


@dataclass(frozen=True, slots=True)
class ContactRequeued:
    """An offer failed; the contact waits again in its queue, keeping its place."""

    # Contact back in waiting.
    contact_id: str
    # Queue it waits in.
    queue: str
    # rejected, busy, no-answer, agent-not-ready, removed.
    reason: str


@dataclass(frozen=True, slots=True)
class OverflowContact:
    """max_wait passed: the engine moved the contact to another queue."""

    # Contact moved.
    contact_id: str
    # Queue it left.
    from_queue: str
    # Queue it now waits in (its original arrival time still orders it).
    to_queue: str


@dataclass(frozen=True, slots=True)
class EndContact:
    """The engine gives up on this contact: play a message and release it."""

    # Contact ended.
    contact_id: str
    # Overflow "end:" reason, leave-empty, queue-full, no-agents-ready, queue-removed...
    reason: str


@dataclass(frozen=True, slots=True)
class RejectContact:
    """The contact was refused at arrival and never waited."""

    # Contact refused.
    contact_id: str
    # unknown-queue, queue-full, no-agents-logged-in, no-agents-ready.
    reason: str


@dataclass(frozen=True, slots=True)
class AnnouncePosition:
    """Tell the waiting caller where they stand."""

    # Contact to inform.
    contact_id: str
    # 1 = next to be served among those waiting in the queue.
    position: int
    # Estimated seconds until answered, or None before any contact was handled.
    expected_wait: float | None


@dataclass(frozen=True, slots=True)
class PauseAgent:
    """The agent missed too many offers in a row: the engine stopped offering to them."""

    # Agent now treated as not ready until the hub calls agent_ready again.
    agent_id: str
    # Why: "no-answer".
    reason: str


@dataclass(frozen=True, slots=True)
class StatsChanged:
    """The queue's live statistics changed since the previous drain."""

    # Queue whose figures moved.
    queue: str


@dataclass(frozen=True, slots=True)
class OfferAttempt:
    """One offer of a contact to one agent."""

    # Agent offered to.
    agent_id: str
    # Queue the offer came from.
    queue: str
    # When the agent started ringing.
    offered_at: float
    # When the offer was resolved.
    resolved_at: float
    # accepted, rejected, busy, no-answer, canceled.
    result: str


@dataclass(frozen=True, slots=True)
class QueueSegment:
    """The stretch of time a contact spent in one queue."""

    # Queue waited in.
    queue: str
    # When the contact entered it (arrival or overflow).
    entered_at: float
    # When it left it (answer, abandon, overflow, end).
    left_at: float
    # How it left.
    outcome: SegmentOutcome

    @property
    def wait_seconds(self) -> float:
        return self.left_at - self.entered_at


@dataclass(frozen=True, slots=True)
class ContactRecord:
    """The whole life of a contact, emitted once it is over (see ContactRecorded)."""

    # Contact id.
    contact_id: str
    # Priority it arrived with.
    priority: int
    # When it arrived at the ACD.
    arrived_at: float
    # Queues waited in, in order (empty when rejected at arrival).
    segments: tuple[QueueSegment, ...]
    # Every offer made, in order.
    offers: tuple[OfferAttempt, ...]
    # How it ended.
    outcome: Outcome
    # Why it ended or was rejected (None when answered or abandoned).
    reason: str | None
    # Queue it was answered from, or the last queue it was in, or the queue asked for.
    queue: str
    # Agent who answered, if any.
    agent_id: str | None
    # When it was answered, if it was.
    answered_at: float | None
    # When talk ended, if answered.
    talk_ended_at: float | None
    # When it left the ACD (wrap-up end for answered contacts).
    ended_at: float
    # Seconds from arrival to answer or to leaving the queues.
    wait_seconds: float
    # Seconds talking, hold excluded.
    talk_seconds: float
    # Seconds on hold, as reported by the hub.
    hold_seconds: float
    # Seconds of wrap-up, as reported or measured.
    wrap_up_seconds: float
    # The contact's opaque data.
    caller_data: Mapping[str, Any]


@dataclass(frozen=True, slots=True)
class ContactRecorded:
    """A contact's life is over; store its record."""

    # The complete record.
    record: ContactRecord


Command = (
    OfferContact | CancelOffer | ContactAssigned | ContactRequeued | OverflowContact | EndContact
    | RejectContact | AnnouncePosition | PauseAgent | StatsChanged | ContactRecorded
)


def builder(cls: type[T]) -> Callable[..., T]:
    """A faster constructor for one of the frozen, slotted dataclasses above.

    build(*values), with every field given in order, returns the same value
    as cls(*values). The __init__ that dataclasses generates for a frozen
    class stores each field through object.__setattr__, a generic path that
    makes building the value about twice as slow; `build` stores through the
    slot descriptors instead. The engine builds commands on every routing
    decision.
    """
    names = [f.name for f in fields(cls)]  # type: ignore[arg-type]
    assert not {"value", "new", "cls"} & set(names), f"{cls.__name__}: a field name clashes with build()"
    namespace: dict[str, Any] = {"new": object.__new__, "cls": cls}
    body = ["    value = new(cls)"]
    for name in names:
        namespace[f"set_{name}"] = getattr(cls, name).__set__
        body.append(f"    set_{name}(value, {name})")
    source = f"def build({', '.join(names)}):\n" + "\n".join(body) + "\n    return value\n"
    exec(source, namespace)
    build = namespace["build"]
    build.__qualname__ = build.__name__ = f"build_{cls.__name__}"
    return build


# Faster constructors (see builder) of the values built for every offer and contact.
build_offer_contact = builder(OfferContact)
build_contact_assigned = builder(ContactAssigned)
build_offer_attempt = builder(OfferAttempt)
build_queue_segment = builder(QueueSegment)
build_contact_record = builder(ContactRecord)
build_contact_recorded = builder(ContactRecorded)
