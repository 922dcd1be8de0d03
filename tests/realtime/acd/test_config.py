"""Bad configuration is refused with a ConfigError naming the field and value, and nothing is half-applied."""

from __future__ import annotations

import random

import pytest

from realtime.acd import (
    AcdEngine, AgentConfig, ConfigError, Contact, InvalidContactError, Membership, OfferContact, QueueConfig,
    RoutingStep, Strategy, UnknownQueueError,
)


def test_unknown_strategy():
    with pytest.raises(ConfigError, match=r"QueueConfig.strategy: unknown value 'fastest'"):
        QueueConfig("q", strategy="fastest")


def test_strategy_strings_become_enums():
    assert QueueConfig("q", strategy="round-robin").strategy is Strategy.ROUND_ROBIN


@pytest.mark.parametrize("field", ["ring_timeout", "reject_delay", "busy_delay", "wrap_up_seconds",
                                   "announce_interval", "service_level_seconds", "retry_delay", "max_wait"])
def test_negative_timeouts(field):
    with pytest.raises(ConfigError, match=rf"QueueConfig.{field}: -5"):
        QueueConfig("q", **{field: -5})


def test_zero_ring_timeout():
    with pytest.raises(ConfigError, match="ring_timeout: 0 must be > 0"):
        QueueConfig("q", ring_timeout=0)


def test_skill_level_out_of_range():
    with pytest.raises(ConfigError, match=r"AgentConfig\['a'\].skills\['en'\]: level 500 outside 0..100"):
        AgentConfig("a", {"en": 500})
    with pytest.raises(ConfigError, match="RoutingStep.min_level: level 101"):
        RoutingStep(10.0, min_level=101)
    with pytest.raises(InvalidContactError, match=r"required_skills\['en'\]: level -1"):
        Contact("c", "q", required_skills={"en": -1})


def test_membership_checks():
    with pytest.raises(ConfigError, match=r"Membership\['q'\].penalty: -1"):
        Membership("q", penalty=-1)
    with pytest.raises(ConfigError, match=r"Membership\['q'\].weight: 0"):
        Membership("q", weight=0)
    with pytest.raises(ConfigError, match="queue 'q' listed twice"):
        AgentConfig("a", {}, (Membership("q"), Membership("q", 1)))


def test_routing_steps_must_increase():
    with pytest.raises(ConfigError, match=r"routing_steps\[1\].after_seconds: 10"):
        QueueConfig("q", routing_steps=(RoutingStep(10.0), RoutingStep(10.0)))


def test_overflow_needs_max_wait_and_a_reason():
    with pytest.raises(ConfigError, match="overflow: 'b' needs max_wait"):
        QueueConfig("q", overflow="b")
    with pytest.raises(ConfigError, match="needs a reason"):
        QueueConfig("q", max_wait=5, overflow="end:")
    with pytest.raises(ConfigError, match="is the queue itself"):
        QueueConfig("q", max_wait=5, overflow="q")


def test_overflow_to_unknown_queue_changes_nothing():
    e = AcdEngine(rng=random.Random(1))
    e.configure_queue(QueueConfig("q", ring_timeout=7.0), 0.0)
    e.configure_agent(AgentConfig("a", {}, {"q": 0}), 0.0)
    e.agent_ready("a", 0.0)
    with pytest.raises(ConfigError, match=r"QueueConfig\['q'\].overflow: queue 'nowhere' is not configured"):
        e.configure_queue(QueueConfig("q", ring_timeout=99.0, max_wait=5, overflow="nowhere",
                                      strategy="ring-all"), 1.0)
    e.contact_arrived(Contact("c", "q"), 2.0)
    offer = [c for c in e.commands_out() if isinstance(c, OfferContact)]
    assert offer[0].ring_timeout == 7.0  # the old configuration is fully in force
    assert e.next_deadline() == 9.0  # and no max_wait timer exists


def test_overflow_target_cannot_be_removed():
    e = AcdEngine()
    e.configure_queue(QueueConfig("spill"))
    e.configure_queue(QueueConfig("main", max_wait=60, overflow="spill"))
    with pytest.raises(ConfigError, match="overflow target of 'main'"):
        e.remove_queue("spill")
    assert e.queue_names == ["spill", "main"]
    with pytest.raises(UnknownQueueError):
        e.remove_queue("ghost")


def test_engine_wide_settings_are_checked():
    with pytest.raises(ConfigError, match="max_missed_offers: -1"):
        AcdEngine(max_missed_offers=-1)


def test_contact_fields_are_checked():
    with pytest.raises(InvalidContactError, match="priority"):
        Contact("c", "q", priority="high")
    with pytest.raises(InvalidContactError, match="preferred_until"):
        Contact("c", "q", preferred_agent="a")
    with pytest.raises(InvalidContactError, match="Contact.id"):
        Contact("", "q")


def test_memberships_accept_a_mapping():
    cfg = AgentConfig("a", {"en": 50}, {"q1": 0, "q2": 3})
    assert cfg.memberships == (Membership("q1", 0), Membership("q2", 3))
