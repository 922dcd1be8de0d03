"""Automatic call distribution: a sans-I/O engine, its statistics, Erlang C and a simulator.

See docs/acd.md for the concepts, strategies, statistics and the simulator.
"""

from .commands import (
    AnnouncePosition, CancelOffer, Command, ContactAssigned, ContactRecord, ContactRecorded, ContactRequeued,
    EndContact, OfferAttempt, OfferContact, Outcome, OverflowContact, PauseAgent, QueueSegment, RejectContact,
    SegmentOutcome, StatsChanged,
)
from .config import (
    AcdError, AgentConfig, ConfigError, Contact, EmptyRule, InvalidContactError, Membership, Ordering,
    QueueConfig, RoutingStep, StateError, Strategy, UnknownAgentError, UnknownContactError, UnknownQueueError,
)
from .engine import AcdEngine
from .erlang import ErlangResult, agents_for_service_level, erlang_b, erlang_c, erlang_report
from .stats import AgentStats, QueueStats, combine_queue_stats

__all__ = [
    "AcdEngine", "AcdError", "AgentConfig", "AgentStats", "AnnouncePosition", "CancelOffer", "Command",
    "ConfigError", "Contact", "ContactAssigned", "ContactRecord", "ContactRecorded", "ContactRequeued",
    "EmptyRule", "EndContact", "ErlangResult", "InvalidContactError", "Membership", "OfferAttempt",
    "OfferContact", "Ordering", "Outcome", "OverflowContact", "PauseAgent", "QueueConfig", "QueueSegment",
    "QueueStats", "RejectContact", "RoutingStep", "SegmentOutcome", "StateError", "StatsChanged", "Strategy",
    "UnknownAgentError", "UnknownContactError", "UnknownQueueError", "agents_for_service_level",
    "combine_queue_stats", "erlang_b", "erlang_c", "erlang_report",
]
