"""Live statistics: formulas, resets, and agreement with figures recomputed from contact records."""

from __future__ import annotations

import math
import random
from collections import defaultdict

import pytest

from realtime.acd import (
    AcdEngine, AgentConfig, Contact, ContactRecorded, OfferContact, Outcome, QueueConfig, QueueStats,
    RejectContact, combine_queue_stats,
)
from realtime.acd.commands import SegmentOutcome
from realtime.acd.stats import LiveSum


def test_live_sum_counts_open_intervals_and_resets():
    s = LiveSum()
    s.open(10.0, 10.0)
    s.open(0.0, 20.0)  # opened late: counted from 20 on, not from 0
    assert s.value(30.0) == 20.0 + 10.0
    s.reset(30.0)
    assert s.value(30.0) == 0.0
    s.close(10.0, 40.0)
    assert s.value(50.0) == 10.0 + 20.0


def stats(**kw) -> QueueStats:
    base = dict(queue="q", at=0.0, threshold=20.0, waiting=0, ringing=0, longest_wait=0.0, agents_logged_in=0,
                agents_ready=0, offered=0, answered=0, answered_within_threshold=0, abandoned=0,
                abandoned_within_threshold=0, overflowed=0, ended=0, rejected=0, handled=0,
                answer_wait_seconds=0.0, abandon_wait_seconds=0.0, max_answer_wait=0.0, talk_seconds=0.0,
                hold_seconds=0.0, wrap_up_seconds=0.0, busy_seconds=0.0, idle_seconds=0.0)
    base.update(kw)
    return QueueStats(**base)


def test_service_level_variants_and_ratios():
    s = stats(answered=80, answered_within_threshold=60, abandoned=20, abandoned_within_threshold=5, handled=80,
              answer_wait_seconds=800.0, talk_seconds=8000.0, hold_seconds=800.0, wrap_up_seconds=800.0,
              busy_seconds=9600.0, idle_seconds=2400.0)
    assert s.service_level == 60 / (80 + 20 - 5)
    assert s.service_level_with_abandons == 60 / 100
    assert s.asa == 10.0
    assert s.aht == 120.0
    assert s.abandon_rate == 0.2
    assert s.occupancy == 0.8
    empty = stats()
    assert (empty.service_level, empty.asa, empty.aht, empty.abandon_rate, empty.occupancy) == (None,) * 5


def test_combine_adds_counters_and_keeps_last_instant_values():
    a = stats(offered=3, answered=2, busy_seconds=10.0, waiting=4, max_answer_wait=7.0)
    b = stats(offered=5, answered=1, busy_seconds=5.0, waiting=1, max_answer_wait=3.0)
    c = combine_queue_stats([a, b])
    assert (c.offered, c.answered, c.busy_seconds, c.waiting, c.max_answer_wait) == (8, 3, 15.0, 1, 7.0)


def test_queue_and_agent_figures_on_a_small_story():
    e = AcdEngine(rng=random.Random(1))
    e.configure_queue(QueueConfig("q", service_level_seconds=10.0), 0.0)
    for aid in ("a", "b"):
        e.configure_agent(AgentConfig(aid, {}, {"q": 0}), 0.0)
    e.agent_ready("a", 0.0)
    e.contact_arrived(Contact("c1", "q"), 0.0)  # offered to a at once
    e.offer_accepted("c1", "a", 4.0)  # waited 4 s
    e.contact_arrived(Contact("c2", "q"), 5.0)
    e.contact_abandoned("c2", 8.0)  # abandoned within threshold
    e.contact_arrived(Contact("c3", "q"), 10.0)
    s = e.queue_stats("q", 30.0)
    assert (s.waiting, s.longest_wait, s.agents_logged_in, s.agents_ready) == (1, 20.0, 1, 0)
    e.agent_ready("b", 30.0)
    e.offer_accepted("c3", "b", 31.0)  # waited 21 s: outside the threshold
    e.contact_ended("c1", 64.0, hold_seconds=10.0, wrap_up_seconds_used=6.0)
    s = e.queue_stats("q", 70.0)
    assert (s.offered, s.answered, s.answered_within_threshold, s.abandoned, s.abandoned_within_threshold) == (
        3, 2, 1, 1, 1)
    assert s.service_level == 1 / (2 + 1 - 1)
    assert s.service_level_with_abandons == 1 / 3
    assert s.asa == (4 + 21) / 2
    assert s.aht == (50 + 10 + 6) / 1
    # Busy: c1 from 4 to 70 (66 s, wrap-up included); c3 from 31, still on the call (39 s).
    assert s.busy_seconds == pytest.approx(66 + 39)
    # Idle: a ready 0..4; b ready 30..31.
    assert s.idle_seconds == pytest.approx(4 + 1)
    assert s.occupancy == pytest.approx(105 / 110)
    a = e.agent_stats("a", 70.0)
    assert (a.offered, a.answered, a.talk_seconds, a.hold_seconds, a.wrap_up_seconds, a.idle_seconds) == (
        1, 1, 50.0, 10.0, 6.0, 4.0)
    assert a.state == "wrap-up"
    e.reset_stats(70.0)
    s = e.queue_stats("q", 80.0)
    assert (s.offered, s.answered, s.handled, s.busy_seconds, s.idle_seconds) == (0, 0, 0, 10.0, 0.0)


def drive(seed: int, steps: int = 1500):
    """A random but plausible day on three queues; returns the engine, every command and the end time."""
    rng = random.Random(seed)
    e = AcdEngine(rng=random.Random(seed))
    e.configure_queue(QueueConfig("spill", service_level_seconds=15.0, max_length=6), 0.0)
    e.configure_queue(QueueConfig("sales", strategy="ring-all", max_wait=40.0, overflow="spill",
                                  service_level_seconds=20.0, ring_timeout=8.0), 0.0)
    e.configure_queue(QueueConfig("help", strategy="round-robin", max_wait=90.0, overflow="end:closed",
                                  ordering="score", ring_timeout=8.0), 0.0)
    agents = [f"a{i}" for i in range(6)]
    for i, aid in enumerate(agents):
        queues = {"sales": i % 2, "help": 0} if i < 4 else {"spill": 0, "help": 1}
        e.configure_agent(AgentConfig(aid, {"en": 50 + 10 * i}, queues), 0.0)
        e.agent_ready(aid, 0.0)
    cmds = e.commands_out()
    now = 0.0
    offers: dict[str, set[str]] = defaultdict(set)
    talking: list[str] = []
    wrapping: list[tuple[str, str]] = []
    live: list[str] = []
    n = 0

    def take(out):
        for c in out:
            if isinstance(c, OfferContact):
                offers[c.contact_id].add(c.agent_id)
        cmds.extend(out)

    for _ in range(steps):
        now += rng.expovariate(1 / 4.0)
        while (d := e.next_deadline()) is not None and d <= now:
            e.handle_timeout(d)
            take(e.commands_out())
        r = rng.random()
        if r < 0.3:
            n += 1
            cid = f"c{n}"
            live.append(cid)
            q = rng.choice(["sales", "help", "help", "spill"])
            e.contact_arrived(Contact(cid, q, rng.randint(0, 2), {"en": rng.choice([0, 60, 90])}), now)
        elif r < 0.5:
            ringing = [(c, a) for c, agents_ in offers.items() for a in sorted(agents_)
                       if e.contact_state(c) == "ringing"]
            if ringing:
                c, a = rng.choice(ringing)
                if e.offer_accepted(c, a, now):
                    talking.append(c)
                offers.pop(c, None)
        elif r < 0.55:
            ringing = [(c, a) for c, agents_ in offers.items() for a in sorted(agents_)
                       if e.contact_state(c) == "ringing"]
            if ringing:
                c, a = rng.choice(ringing)
                e.offer_rejected(c, a, now)
                offers[c].discard(a)
        elif r < 0.75 and talking:
            c = talking.pop(rng.randrange(len(talking)))
            hold = rng.choice([0.0, 0.0, 5.0])
            if rng.random() < 0.5:
                e.contact_ended(c, now, hold_seconds=min(hold, 1.0), wrap_up_seconds_used=rng.choice([0.0, 7.0]))
            else:
                e.contact_ended(c, now, hold_seconds=0.0)
                wrapping.append((c, now))
        elif r < 0.85 and wrapping:
            c, _ = wrapping.pop(0)
            if e.contact_state(c) == "wrap-up":
                e.contact_wrapped_up(c, now)
        elif r < 0.95:
            c = rng.choice(live) if live else None
            if c is not None and e.contact_state(c) in ("waiting", "ringing"):
                e.contact_abandoned(c, now)
        else:
            aid = rng.choice(agents)
            if e.agent_state(aid) in ("ready", "paused", "wrap-up"):
                (e.agent_ready if rng.random() < 0.7 else e.agent_not_ready)(aid, now)
        take(e.commands_out())
        for aid in agents:
            if e.agent_state(aid) == "wrap-up" and rng.random() < 0.3:
                e.agent_ready(aid, now)
        take(e.commands_out())
    # Finish: everyone waiting hangs up, calls end, wrap-ups close.
    now += 1.0
    for c in e.active_contacts():
        if e.contact_state(c) in ("waiting", "ringing"):
            e.contact_abandoned(c, now)
    for c in e.active_contacts():
        if e.contact_state(c) == "connected":
            e.contact_ended(c, now, hold_seconds=0.0)
    for c in e.active_contacts():
        e.contact_wrapped_up(c, now)
    take(e.commands_out())
    assert e.active_contacts() == []
    return e, cmds, now, n


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_live_statistics_match_figures_recomputed_from_records(seed):
    e, cmds, now, arrivals = drive(seed)
    records = [c.record for c in cmds if isinstance(c, ContactRecorded)]
    assert len(records) == arrivals
    assert len({r.contact_id for r in records}) == arrivals
    rejected_ids = {c.contact_id for c in cmds if isinstance(c, RejectContact)}
    thresholds = {"spill": 15.0, "sales": 20.0, "help": 20.0}
    expect: dict[str, dict[str, float]] = {q: defaultdict(float) for q in thresholds}
    for r in records:
        if r.outcome is Outcome.REJECTED:
            assert r.contact_id in rejected_ids and not r.segments
            expect[r.queue]["rejected"] += 1
        for seg in r.segments:
            x = expect[seg.queue]
            wait = seg.wait_seconds
            x["offered"] += 1
            if seg.outcome is SegmentOutcome.ANSWERED:
                x["answered"] += 1
                x["answer_wait_seconds"] += wait
                x["answered_within_threshold"] += wait <= thresholds[seg.queue]
            elif seg.outcome is SegmentOutcome.ABANDONED:
                x["abandoned"] += 1
                x["abandon_wait_seconds"] += wait
                x["abandoned_within_threshold"] += wait <= thresholds[seg.queue]
            elif seg.outcome is SegmentOutcome.OVERFLOWED:
                x["overflowed"] += 1
            else:
                x["ended"] += 1
        if r.outcome is Outcome.ANSWERED:
            x = expect[r.queue]
            x["handled"] += 1
            x["talk_seconds"] += r.talk_seconds
            x["hold_seconds"] += r.hold_seconds
            x["wrap_up_seconds"] += r.wrap_up_seconds
            x["busy_seconds"] += r.talk_seconds + r.hold_seconds + r.wrap_up_seconds
            assert math.isclose(r.ended_at - r.answered_at, r.talk_seconds + r.hold_seconds + r.wrap_up_seconds,
                                abs_tol=1e-6)
    total_offers = sum(len(r.offers) for r in records)
    assert total_offers == sum(1 for c in cmds if isinstance(c, OfferContact))
    for q, x in expect.items():
        live = e.queue_stats(q, now + 100.0)
        for name, value in x.items():
            assert getattr(live, name) == pytest.approx(value, abs=1e-6), (q, name)
        assert live.offered > 0 and live.answered > 0
        if x["answered"]:
            assert live.asa == pytest.approx(x["answer_wait_seconds"] / x["answered"])
        denominator = x["answered"] + x["abandoned"] - x["abandoned_within_threshold"]
        assert live.service_level == pytest.approx(x["answered_within_threshold"] / denominator)


def test_agent_offer_counts_match_records():
    e, cmds, now, _ = drive(4, steps=800)
    records = [c.record for c in cmds if isinstance(c, ContactRecorded)]
    per_agent: dict[str, dict[str, int]] = defaultdict(lambda: defaultdict(int))
    for r in records:
        for attempt in r.offers:
            per_agent[attempt.agent_id]["offered"] += 1
            per_agent[attempt.agent_id][attempt.result] += 1
    for aid, x in per_agent.items():
        s = e.agent_stats(aid, now)
        assert (s.offered, s.answered, s.missed, s.rejected) == (
            x["offered"], x["accepted"], x["no-answer"], x["rejected"] + x["busy"])
