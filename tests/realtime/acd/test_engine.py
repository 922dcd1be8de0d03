"""Engine behaviours, one per test, driven through inputs and observed through commands."""

from __future__ import annotations

import random

import pytest

from realtime.acd import (
    AcdEngine, AgentConfig, AnnouncePosition, CancelOffer, ContactAssigned, ContactRecorded, ContactRequeued,
    Contact, EndContact, Membership, OfferContact, Outcome, OverflowContact, PauseAgent, QueueConfig,
    RejectContact, RoutingStep, StateError, StatsChanged, UnknownContactError,
)


def engine(*queues: QueueConfig, agents=(), ready=(), **kw) -> AcdEngine:
    e = AcdEngine(rng=random.Random(7), **kw)
    for q in queues or (QueueConfig("q"),):
        e.configure_queue(q, 0.0)
    for a in agents:
        e.configure_agent(a, 0.0)
    for aid in ready:
        e.agent_ready(aid, 0.0)
    e.commands_out()
    return e


def member(aid: str, queues=None, skills=None) -> AgentConfig:
    return AgentConfig(aid, skills or {}, queues if queues is not None else {"q": 0})


def of(cmds, kind):
    return [c for c in cmds if isinstance(c, kind)]


def offers(cmds):
    return [(c.contact_id, c.agent_id) for c in of(cmds, OfferContact)]


def records(cmds):
    return {c.record.contact_id: c.record for c in of(cmds, ContactRecorded)}


def test_offer_goes_to_ready_member_and_accept_assigns():
    e = engine(agents=[member("a")], ready=["a"])
    e.contact_arrived(Contact("c1", "q", caller_data={"ani": "555"}), 1.0)
    cmds = e.commands_out()
    assert of(cmds, OfferContact) == [OfferContact("c1", "a", "q", 20.0, {"ani": "555"})]
    assert e.offer_accepted("c1", "a", 3.0)
    assert of(e.commands_out(), ContactAssigned) == [ContactAssigned("c1", "a", "q", 2.0, 0.0)]
    assert e.agent_state("a") == "busy"


def test_higher_priority_is_served_first():
    e = engine(agents=[member("a")])
    e.contact_arrived(Contact("low", "q", priority=0), 1.0)
    e.contact_arrived(Contact("high", "q", priority=5), 2.0)
    e.agent_ready("a", 3.0)
    assert offers(e.commands_out()) == [("high", "a")]


def test_equal_priority_is_served_in_arrival_order():
    e = engine(agents=[member("a")])
    for i, t in enumerate((1.0, 2.0, 3.0)):
        e.contact_arrived(Contact(f"c{i}", "q"), t)
    e.agent_ready("a", 4.0)
    assert offers(e.commands_out()) == [("c0", "a")]


def test_fifo_ordering_puts_any_higher_priority_first():
    e = engine(QueueConfig("q", ordering="fifo"), agents=[member("a")])
    e.contact_arrived(Contact("old", "q", priority=0), 0.0)
    e.contact_arrived(Contact("vip", "q", priority=1), 15.0)
    e.agent_ready("a", 20.0)
    assert offers(e.commands_out()) == [("vip", "a")]


def test_score_ordering_weighs_priority_against_waiting_time():
    # score = priority * 10 + waited: "old" (0 + 20) beats "vip" (10 + 5),
    # while "vip2" (10 + 18) beats "old" (20) once "old" is gone... only if it waited long enough.
    e = engine(QueueConfig("q", ordering="score", priority_weight=10.0), agents=[member("a")])
    e.contact_arrived(Contact("old", "q", priority=0), 0.0)
    e.contact_arrived(Contact("vip", "q", priority=1), 15.0)
    e.contact_arrived(Contact("vip2", "q", priority=1), 2.0 + 15.0)
    e.agent_ready("a", 20.0)
    assert offers(e.commands_out()) == [("old", "a")]
    e2 = engine(QueueConfig("q", ordering="score", priority_weight=10.0), agents=[member("a")])
    e2.contact_arrived(Contact("old", "q", priority=0), 0.0)
    e2.contact_arrived(Contact("vip", "q", priority=1), 5.0)
    e2.agent_ready("a", 20.0)
    assert offers(e2.commands_out()) == [("vip", "a")]


def test_required_skills_select_the_agent():
    e = engine(agents=[member("a", skills={"en": 90}), member("b", skills={"en": 90, "fr": 60})], ready=["a"])
    e.agent_ready("b", 5.0)
    e.commands_out()
    e.contact_arrived(Contact("c", "q", required_skills={"fr": 50}), 6.0)
    assert offers(e.commands_out()) == [("c", "b")]


def test_skill_level_below_minimum_is_not_offered():
    e = engine(agents=[member("a", skills={"fr": 40})], ready=["a"])
    e.contact_arrived(Contact("c", "q", required_skills={"fr": 50}), 1.0)
    assert offers(e.commands_out()) == []
    assert e.contact_state("c") == "waiting"


def test_routing_step_lowers_the_level_after_waiting():
    q = QueueConfig("q", routing_steps=(RoutingStep(30.0, min_level=40),))
    e = engine(q, agents=[member("a", skills={"fr": 40})], ready=["a"])
    e.contact_arrived(Contact("c", "q", required_skills={"fr": 80}), 10.0)
    assert offers(e.commands_out()) == []
    assert e.next_deadline() == 40.0
    e.handle_timeout(40.0)
    assert offers(e.commands_out()) == [("c", "a")]


def test_routing_step_any_member_and_penalty_limit():
    q = QueueConfig("q", routing_steps=(RoutingStep(0.0, max_penalty=0), RoutingStep(20.0, any_member=True)))
    e = engine(q, agents=[member("backup", {"q": 2})], ready=["backup"])
    e.contact_arrived(Contact("c", "q", required_skills={"de": 90}), 1.0)
    assert offers(e.commands_out()) == []
    e.handle_timeout(21.0)
    assert offers(e.commands_out()) == [("c", "backup")]


def test_per_contact_routing_steps_override_the_queue():
    e = engine(agents=[member("a", skills={"fr": 10})], ready=["a"])
    e.contact_arrived(Contact("c", "q", required_skills={"fr": 90},
                              routing_steps=(RoutingStep(5.0, drop_skills=("fr",)),)), 0.0)
    assert offers(e.commands_out()) == []
    e.handle_timeout(5.0)
    assert offers(e.commands_out()) == [("c", "a")]


def test_wrap_up_is_carried_and_measured_until_ready():
    e = engine(QueueConfig("q", wrap_up_seconds=15.0), agents=[member("a")], ready=["a"])
    e.contact_arrived(Contact("c", "q"), 0.0)
    e.offer_accepted("c", "a", 1.0)
    assert of(e.commands_out(), ContactAssigned)[0].wrap_up_seconds == 15.0
    e.contact_ended("c", 61.0, hold_seconds=10.0)
    assert e.agent_state("a") == "wrap-up"
    e.contact_arrived(Contact("next", "q"), 62.0)
    assert offers(e.commands_out()) == []  # not ready during wrap-up
    e.agent_ready("a", 73.0)
    cmds = e.commands_out()
    rec = records(cmds)["c"]
    assert (rec.talk_seconds, rec.hold_seconds, rec.wrap_up_seconds, rec.ended_at) == (50.0, 10.0, 12.0, 73.0)
    assert offers(cmds) == [("next", "a")]


def test_wrap_up_reported_with_the_end_of_talk_completes_at_once():
    e = engine(agents=[member("a")], ready=["a"])
    e.contact_arrived(Contact("c", "q"), 0.0)
    e.offer_accepted("c", "a", 0.0)
    e.contact_ended("c", 30.0, wrap_up_seconds_used=5.0)
    rec = records(e.commands_out())["c"]
    assert (rec.outcome, rec.wrap_up_seconds, rec.ended_at) == (Outcome.ANSWERED, 5.0, 35.0)


def test_ring_timeout_moves_to_the_next_agent():
    e = engine(QueueConfig("q", ring_timeout=15.0), agents=[member("a"), member("b")], ready=["a", "b"])
    e.contact_arrived(Contact("c", "q"), 1.0)
    assert offers(e.commands_out()) == [("c", "a")]
    assert e.next_deadline() == 16.0
    e.handle_timeout(16.0)
    cmds = e.commands_out()
    assert of(cmds, CancelOffer) == [CancelOffer("c", "a", "no-answer")]
    assert of(cmds, ContactRequeued) == [ContactRequeued("c", "q", "no-answer")]
    assert offers(cmds) == [("c", "b")]
    assert e.agent_stats("a", 16.0).missed == 1


def test_missed_agent_gets_the_contact_again_after_retry_delay():
    e = engine(QueueConfig("q", ring_timeout=10.0, retry_delay=5.0), agents=[member("a")], ready=["a"])
    e.contact_arrived(Contact("c", "q"), 0.0)
    e.commands_out()
    e.handle_timeout(10.0)
    assert offers(e.commands_out()) == []
    e.handle_timeout(15.0)
    assert offers(e.commands_out()) == [("c", "a")]


def test_autopause_after_consecutive_missed_offers():
    e = engine(QueueConfig("q", ring_timeout=10.0, retry_delay=0.0, max_missed_offers=2),
               agents=[member("a")], ready=["a"])
    e.contact_arrived(Contact("c", "q"), 0.0)
    e.commands_out()
    e.handle_timeout(10.0)
    assert offers(e.commands_out()) == [("c", "a")]  # retried at once: one miss so far
    e.handle_timeout(20.0)
    cmds = e.commands_out()
    assert of(cmds, PauseAgent) == [PauseAgent("a", "no-answer")]
    assert offers(cmds) == []
    assert e.agent_state("a") == "paused"
    e.agent_ready("a", 30.0)
    assert offers(e.commands_out()) == [("c", "a")]


def test_accepting_resets_the_missed_streak_and_engine_default_applies():
    e = engine(QueueConfig("q", ring_timeout=10.0, retry_delay=0.0), agents=[member("a")], ready=["a"],
               max_missed_offers=2)
    e.contact_arrived(Contact("c1", "q"), 0.0)
    e.handle_timeout(10.0)
    e.offer_accepted("c1", "a", 11.0)
    e.contact_ended("c1", 12.0, wrap_up_seconds_used=0.0)
    e.agent_ready("a", 12.0)
    e.contact_arrived(Contact("c2", "q"), 13.0)
    e.handle_timeout(23.0)
    assert of(e.commands_out(), PauseAgent) == []


def test_reject_delay_keeps_the_agent_out_of_offers():
    e = engine(QueueConfig("q", reject_delay=10.0, retry_delay=0.0), agents=[member("a")], ready=["a"])
    e.contact_arrived(Contact("c", "q"), 0.0)
    e.commands_out()
    assert e.offer_rejected("c", "a", 2.0)
    cmds = e.commands_out()
    assert of(cmds, ContactRequeued) == [ContactRequeued("c", "q", "rejected")]
    assert offers(cmds) == []
    assert e.next_deadline() == 12.0
    e.handle_timeout(12.0)
    assert offers(e.commands_out()) == [("c", "a")]


def test_busy_delay_applies_to_busy_rejections():
    e = engine(QueueConfig("q", busy_delay=4.0, reject_delay=100.0, retry_delay=0.0), agents=[member("a")],
               ready=["a"])
    e.contact_arrived(Contact("c", "q"), 0.0)
    e.commands_out()
    e.offer_rejected("c", "a", 1.0, busy=True)
    e.handle_timeout(5.0)
    assert offers(e.commands_out()) == [("c", "a")]


def test_overflow_to_another_queue_keeps_arrival_order():
    e = engine(QueueConfig("q2"), QueueConfig("q1", max_wait=30.0, overflow="q2"), agents=[member("b", {"q2": 0})])
    e.contact_arrived(Contact("early", "q1"), 0.0)
    e.contact_arrived(Contact("direct", "q2"), 20.0)
    e.handle_timeout(30.0)
    assert of(e.commands_out(), OverflowContact) == [OverflowContact("early", "q1", "q2")]
    assert e.contact_queue("early") == "q2"
    e.agent_ready("b", 31.0)
    assert offers(e.commands_out()) == [("early", "b")]
    e.offer_accepted("early", "b", 32.0)
    e.contact_ended("early", 40.0, wrap_up_seconds_used=0.0)
    rec = records(e.commands_out())["early"]
    assert [(s.queue, s.outcome.value) for s in rec.segments] == [("q1", "overflowed"), ("q2", "answered")]
    assert rec.wait_seconds == 32.0
    assert e.queue_stats("q1", 40.0).overflowed == 1
    assert e.queue_stats("q2", 40.0).answer_wait_seconds == 2.0


def test_overflow_to_end_ends_with_the_reason():
    e = engine(QueueConfig("q", max_wait=60.0, overflow="end:after-hours"))
    e.contact_arrived(Contact("c", "q"), 0.0)
    e.handle_timeout(60.0)
    cmds = e.commands_out()
    assert of(cmds, EndContact) == [EndContact("c", "after-hours")]
    assert records(cmds)["c"].outcome is Outcome.ENDED
    assert e.contact_state("c") is None


def test_max_wait_while_ringing_cancels_the_offer():
    e = engine(QueueConfig("q", max_wait=10.0, ring_timeout=30.0), agents=[member("a")], ready=["a"])
    e.contact_arrived(Contact("c", "q"), 0.0)
    e.handle_timeout(10.0)
    cmds = e.commands_out()
    assert of(cmds, CancelOffer) == [CancelOffer("c", "a", "max-wait")]
    assert of(cmds, EndContact) == [EndContact("c", "max-wait")]
    assert e.agent_state("a") == "ready"


def test_max_length_rejects_arrivals():
    e = engine(QueueConfig("q", max_length=2))
    for i in range(3):
        e.contact_arrived(Contact(f"c{i}", "q"), float(i))
    cmds = e.commands_out()
    assert of(cmds, RejectContact) == [RejectContact("c2", "queue-full")]
    assert records(cmds)["c2"].outcome is Outcome.REJECTED
    assert e.queue_stats("q", 3.0).rejected == 1


def test_unknown_queue_is_rejected():
    e = engine()
    e.contact_arrived(Contact("c", "nowhere"), 0.0)
    assert of(e.commands_out(), RejectContact) == [RejectContact("c", "unknown-queue")]


@pytest.mark.parametrize(("rule", "setup", "reason"), [
    ("no-logged-in", [], "no-agents-logged-in"),
    ("no-working", ["pause"], "no-agents-working"),
    ("no-ready", ["pause"], "no-agents-ready"),
])
def test_join_rules_refuse_when_empty(rule, setup, reason):
    e = engine(QueueConfig("q", join_when_empty=rule), agents=[member("a")])
    if setup:
        e.agent_ready("a", 0.0)
        e.agent_not_ready("a", 0.0)
    e.contact_arrived(Contact("c", "q"), 1.0)
    assert of(e.commands_out(), RejectContact) == [RejectContact("c", reason)]


def test_join_rule_allows_when_a_member_qualifies():
    e = engine(QueueConfig("q", join_when_empty="no-working"), agents=[member("a"), member("b")], ready=["a"])
    e.contact_arrived(Contact("c1", "q"), 1.0)
    e.offer_accepted("c1", "a", 1.0)
    e.contact_arrived(Contact("c2", "q"), 2.0)  # "a" is busy, which still counts as working
    assert of(e.commands_out(), RejectContact) == []


def test_leave_rule_ends_waiting_contacts_when_the_last_agent_logs_out():
    e = engine(QueueConfig("q", leave_when_empty="no-logged-in"), agents=[member("a"), member("b")],
               ready=["a"])
    e.agent_ready("b", 0.0)
    e.contact_arrived(Contact("c1", "q"), 1.0)
    e.offer_accepted("c1", "a", 1.0)
    e.offer_accepted("c1", "b", 1.0)
    e.contact_arrived(Contact("c2", "q"), 2.0)
    e.offer_accepted("c2", "b", 2.0)
    e.contact_arrived(Contact("c3", "q"), 3.0)
    e.commands_out()
    e.agent_not_ready("b", 5.0, logged_out=True)
    assert of(e.commands_out(), EndContact) == []  # "a" is still logged in (on a call)
    e.contact_ended("c1", 6.0, wrap_up_seconds_used=0.0)
    e.agent_not_ready("a", 6.0, logged_out=True)
    cmds = e.commands_out()
    assert of(cmds, EndContact) == [EndContact("c3", "leave-empty")]
    assert e.queue_stats("q", 6.0).ended == 1


def test_preferred_agent_is_waited_for_within_its_window():
    e = engine(agents=[member("a"), member("b")], ready=["a"])
    e.contact_arrived(Contact("c", "q", preferred_agent="b", preferred_until=30.0), 0.0)
    assert offers(e.commands_out()) == []
    e.agent_ready("b", 10.0)
    assert offers(e.commands_out()) == [("c", "b")]


def test_preferred_agent_window_expires_to_anyone():
    e = engine(agents=[member("a"), member("b")], ready=["a"])
    e.contact_arrived(Contact("c", "q", preferred_agent="b", preferred_until=30.0), 0.0)
    assert e.next_deadline() == 30.0
    e.handle_timeout(30.0)
    assert offers(e.commands_out()) == [("c", "a")]


def test_preferred_agent_already_ready_is_offered_first():
    e = engine(agents=[member("a"), member("b")], ready=["a", "b"])
    e.contact_arrived(Contact("c", "q", preferred_agent="b", preferred_until=30.0), 1.0)
    assert offers(e.commands_out()) == [("c", "b")]


def test_preferred_agent_past_its_window_is_ignored():
    e = engine(agents=[member("a"), member("b")], ready=["a", "b"])
    e.contact_arrived(Contact("c", "q", preferred_agent="b", preferred_until=30.0), 31.0)
    assert offers(e.commands_out()) == [("c", "a")]


def test_ring_all_first_accept_cancels_the_others():
    e = engine(QueueConfig("q", strategy="ring-all"), agents=[member(x) for x in "abc"], ready="abc")
    e.contact_arrived(Contact("c", "q"), 1.0)
    assert sorted(offers(e.commands_out())) == [("c", "a"), ("c", "b"), ("c", "c")]
    assert e.offer_accepted("c", "b", 2.0)
    cmds = e.commands_out()
    assert sorted(of(cmds, CancelOffer), key=lambda c: c.agent_id) == [
        CancelOffer("c", "a", "answered-elsewhere"), CancelOffer("c", "c", "answered-elsewhere")]
    assert not e.offer_accepted("c", "a", 2.5)  # too late: void
    assert [e.agent_state(x) for x in "abc"] == ["ready", "busy", "ready"]


def test_ring_all_rings_only_the_best_penalty():
    e = engine(QueueConfig("q", strategy="ring-all"),
               agents=[member("a", {"q": 0}), member("b", {"q": 1}), member("c", {"q": 0})], ready="abc")
    e.contact_arrived(Contact("x", "q"), 1.0)
    assert sorted(offers(e.commands_out())) == [("x", "a"), ("x", "c")]


def test_ring_all_requeues_when_everyone_rejects():
    e = engine(QueueConfig("q", strategy="ring-all", retry_delay=0.0), agents=[member("a"), member("b")],
               ready="ab")
    e.contact_arrived(Contact("c", "q"), 1.0)
    e.commands_out()
    e.offer_rejected("c", "a", 2.0)
    assert of(e.commands_out(), ContactRequeued) == []  # "b" still rings
    e.offer_rejected("c", "b", 2.0)
    cmds = e.commands_out()
    assert of(cmds, ContactRequeued) == [ContactRequeued("c", "q", "rejected")]


def test_abandon_while_ringing_cancels_the_offer():
    e = engine(agents=[member("a")], ready=["a"])
    e.contact_arrived(Contact("c", "q"), 1.0)
    e.commands_out()
    assert e.contact_abandoned("c", 4.0)
    cmds = e.commands_out()
    assert of(cmds, CancelOffer) == [CancelOffer("c", "a", "abandoned")]
    rec = records(cmds)["c"]
    assert (rec.outcome, rec.wait_seconds, rec.offers[0].result) == (Outcome.ABANDONED, 3.0, "canceled")
    e.contact_arrived(Contact("d", "q"), 5.0)
    assert offers(e.commands_out()) == [("d", "a")]
    assert not e.contact_abandoned("c", 6.0)


def test_position_announcements():
    e = engine(QueueConfig("q", announce_interval=30.0), agents=[member("a")])
    for i in range(3):
        e.contact_arrived(Contact(f"c{i}", "q", priority=i), float(i))
    e.handle_timeout(32.0)
    got = {a.contact_id: (a.position, a.expected_wait) for a in of(e.commands_out(), AnnouncePosition)}
    assert got == {"c0": (3, None), "c1": (2, None), "c2": (1, None)}
    assert e.next_deadline() == 60.0


def test_expected_wait_uses_handle_time_per_working_agent():
    e = engine(QueueConfig("q", announce_interval=10.0), agents=[member("a")], ready=["a"])
    e.contact_arrived(Contact("first", "q"), 0.0)
    e.offer_accepted("first", "a", 0.0)
    e.contact_ended("first", 100.0, wrap_up_seconds_used=20.0)
    e.contact_arrived(Contact("w", "q"), 101.0)
    e.handle_timeout(111.0)
    assert of(e.commands_out(), AnnouncePosition) == [AnnouncePosition("w", 1, 120.0)]


def test_agent_going_not_ready_while_ringing_requeues_to_another():
    e = engine(agents=[member("a"), member("b")], ready=["a", "b"])
    e.contact_arrived(Contact("c", "q"), 1.0)
    e.commands_out()
    e.agent_not_ready("a", 2.0)
    cmds = e.commands_out()
    assert of(cmds, CancelOffer) == [CancelOffer("c", "a", "agent-not-ready")]
    assert offers(cmds) == [("c", "b")]


def test_stats_changed_is_coalesced_per_drain():
    e = engine(agents=[member("a")])
    for i in range(5):
        e.contact_arrived(Contact(f"c{i}", "q"), 1.0)
    cmds = e.commands_out()
    assert of(cmds, StatsChanged) == [StatsChanged("q")]
    assert e.commands_out() == []


def test_higher_weight_queue_gets_the_agent_first():
    e = engine(QueueConfig("low"), QueueConfig("high", weight=10), agents=[member("a", {"low": 0, "high": 0})])
    e.contact_arrived(Contact("l", "low"), 0.0)
    e.contact_arrived(Contact("h", "high"), 5.0)
    e.agent_ready("a", 6.0)
    assert offers(e.commands_out()) == [("h", "a")]


def test_lower_penalty_member_is_preferred():
    e = engine(agents=[member("backup", {"q": 3}), member("main", {"q": 0})], ready=["backup", "main"])
    e.contact_arrived(Contact("c", "q"), 1.0)
    assert offers(e.commands_out()) == [("c", "main")]


def test_input_errors():
    e = engine(agents=[member("a")], ready=["a"])
    e.contact_arrived(Contact("c", "q"), 0.0)
    with pytest.raises(StateError, match="'c'"):
        e.contact_arrived(Contact("c", "q"), 0.0)
    with pytest.raises(UnknownContactError):
        e.contact_ended("nope", 1.0)
    with pytest.raises(StateError, match="ringing"):
        e.contact_ended("c", 1.0)
    assert not e.offer_accepted("c", "someone-else", 1.0)
    e.offer_accepted("c", "a", 1.0)
    with pytest.raises(StateError, match="connected"):
        e.agent_ready("a", 2.0)


def test_reconfiguring_a_queue_keeps_waiting_contacts_and_reroutes():
    e = engine(agents=[member("a", skills={"fr": 30})], ready=["a"])
    e.contact_arrived(Contact("c", "q", required_skills={"fr": 50}), 0.0)
    assert offers(e.commands_out()) == []
    e.configure_queue(QueueConfig("q", strategy="top-down", routing_steps=(RoutingStep(5.0, min_level=30),)), 10.0)
    assert offers(e.commands_out()) == [("c", "a")]


def test_reconfiguring_an_agent_updates_memberships_and_skills():
    e = engine(QueueConfig("q1"), QueueConfig("q2"), agents=[member("a", {"q1": 0})], ready=["a"])
    e.contact_arrived(Contact("c", "q2"), 0.0)
    assert offers(e.commands_out()) == []
    e.configure_agent(AgentConfig("a", {}, (Membership("q1"), Membership("q2", penalty=1))), 5.0)
    assert offers(e.commands_out()) == [("c", "a")]


def test_removed_queue_ends_its_contacts():
    e = engine(QueueConfig("q"), agents=[member("a")])
    e.contact_arrived(Contact("c", "q"), 0.0)
    e.remove_queue("q", 1.0)
    assert of(e.commands_out(), EndContact) == [EndContact("c", "queue-removed")]
    assert e.queue_names == []


def test_removing_a_queue_does_not_offer_its_contacts_again():
    e = engine(agents=[member("a")], ready=["a"])
    e.contact_arrived(Contact("c1", "q"), 0.0)
    e.contact_arrived(Contact("c2", "q"), 1.0)
    e.commands_out()
    e.remove_queue("q", 2.0)
    cmds = e.commands_out()
    assert offers(cmds) == []
    assert of(cmds, CancelOffer) == [CancelOffer("c1", "a", "removed")]
    assert sorted(records(cmds)) == ["c1", "c2"]
    assert e.agent_state("a") == "ready"


def test_removed_agent_loses_its_ringing_offer():
    e = engine(agents=[member("a"), member("b")], ready=["a", "b"])
    e.contact_arrived(Contact("c", "q"), 0.0)
    e.commands_out()
    e.remove_agent("a", 1.0)
    cmds = e.commands_out()
    assert of(cmds, CancelOffer) == [CancelOffer("c", "a", "removed")]
    assert offers(cmds) == [("c", "b")]


def test_deadlines_are_exposed_and_fire_once():
    e = engine(QueueConfig("q", ring_timeout=5.0, max_wait=50.0), agents=[member("a")], ready=["a"])
    assert e.next_deadline() is None
    e.contact_arrived(Contact("c", "q"), 0.0)
    assert e.next_deadline() == 5.0
    e.offer_accepted("c", "a", 1.0)
    assert e.next_deadline() is None  # ring and max-wait timers died with the answer
    e.handle_timeout(100.0)
    assert of(e.commands_out(), CancelOffer) == []
