"""The two decision paths against plain models, and the fast command constructors.

The agent path (`best_waiting`) passes over requirement groups and whole
queues that cannot beat the best contact found so far; these tests check its
choice against a model that looks at every waiting contact, across queues of
different weights and orderings, with skills, penalty limits and retry
delays.
"""

from __future__ import annotations

import dataclasses
import random

import pytest

from realtime.acd import (
    AcdEngine, AgentConfig, Contact, ContactAssigned, ContactRecord, ContactRecorded, OfferAttempt, OfferContact,
    Outcome, QueueConfig, QueueSegment, RoutingStep, SegmentOutcome,
)
from realtime.acd.commands import builder

SKILLS = ("x", "y")


def _model_choice(queues, waiting, skills, penalties, now, tried):
    """The contact an agent must be offered: in each of its queues the best it may take by the
    queue's own order; across queues higher weight, then priority, then arrival."""
    best_rank, best = None, None
    for name, cfg in queues.items():
        if name not in penalties:
            continue
        mine = []
        for cid, (queue, priority, arrived, seq, required, max_penalty) in waiting.items():
            if queue != name:
                continue
            if max_penalty is not None and penalties[name] > max_penalty:
                continue
            if any(skills.get(s, -1) < level for s, level in required.items()):
                continue
            if tried.get(cid, -1.0) > now:
                continue
            if cfg.ordering == "score":
                key = (arrived - priority * cfg.priority_weight, seq)
            else:
                key = (-priority, arrived, seq)
            mine.append((key, cid))
        if not mine:
            continue
        cid = min(mine)[1]
        _, priority, arrived, seq, _, _ = waiting[cid]
        rank = (-cfg.weight, -priority, arrived, seq)
        if best_rank is None or rank < best_rank:
            best_rank, best = rank, cid
    return best


@pytest.mark.parametrize("seed", range(60))
def test_agent_path_offers_the_contact_a_full_scan_would_choose(seed):
    rng = random.Random(seed)
    e = AcdEngine(rng=random.Random(seed))
    queues = {}
    for i in range(rng.randint(2, 5)):
        cfg = QueueConfig(f"q{i}", ordering=rng.choice(["fifo", "fifo", "score"]), weight=rng.choice([0, 0, 1, 2]),
                          priority_weight=rng.choice([10.0, 60.0]), retry_delay=5.0,
                          routing_steps=(RoutingStep(0.0, max_penalty=1),) if rng.random() < 0.2 else ())
        queues[cfg.name] = cfg
        e.configure_queue(cfg, 0.0)
    waiting, tried = {}, {}
    now = 0.0
    for n in range(rng.randint(5, 40)):
        now += rng.choice([0.0, 0.5, 1.0])
        queue = rng.choice(list(queues))
        required = {s: rng.choice([10, 50, 90]) for s in rng.sample(SKILLS, rng.randint(0, 2))}
        contact = Contact(f"c{n}", queue, rng.randint(0, 2), required)
        e.contact_arrived(contact, now)
        max_penalty = 1 if queues[queue].routing_steps else None
        waiting[contact.id] = (queue, contact.priority, now, n, required, max_penalty)
    e.commands_out()  # nobody is ready yet: nothing but statistics
    # Agents become ready one at a time and must get the model's choice; one
    # that rejected its offer may come back at once, and must not be offered
    # that contact again within the retry delay.
    agents = {}
    for k in range(rng.randint(3, 12)):
        if agents and rng.random() < 0.3:
            aid = rng.choice(list(agents))
        else:
            aid = f"a{k}"
            skills = {s: rng.randint(0, 100) for s in rng.sample(SKILLS, rng.randint(0, 2))}
            penalties = {q: rng.randint(0, 2) for q in rng.sample(list(queues), rng.randint(1, len(queues)))}
            agents[aid] = (skills, penalties)
            e.configure_agent(AgentConfig(aid, skills, penalties), now)
        now += 1.0
        e.agent_ready(aid, now)
        offers = [c for c in e.commands_out() if isinstance(c, OfferContact)]
        skills, penalties = agents[aid]
        expected = _model_choice(queues, waiting, skills, penalties, now, tried.get(aid, {}))
        assert [o.contact_id for o in offers] == ([expected] if expected else []), (seed, k)
        if offers and rng.random() < 0.4:
            e.offer_rejected(offers[0].contact_id, aid, now)
            tried.setdefault(aid, {})[offers[0].contact_id] = now + 5.0
        elif offers:
            e.offer_accepted(offers[0].contact_id, aid, now)
            e.contact_ended(offers[0].contact_id, now, wrap_up_seconds_used=0.0)
            del waiting[offers[0].contact_id]
        e.agent_not_ready(aid, now)
        e.commands_out()


def test_builders_make_the_same_values_as_the_constructors():
    values = {
        OfferContact: ("c1", "a1", "q", 20.0, {"k": 1}),
        ContactAssigned: ("c1", "a1", "q", 3.5, 10.0),
        OfferAttempt: ("a1", "q", 1.0, 2.0, "accepted"),
        QueueSegment: ("q", 1.0, 2.0, SegmentOutcome.ANSWERED),
    }
    values[ContactRecord] = (
        "c1", 0, 1.0, (QueueSegment(*values[QueueSegment]),), (OfferAttempt(*values[OfferAttempt]),),
        Outcome.ANSWERED, None, "q", "a1", 2.0, 9.0, 9.0, 1.0, 7.0, 0.0, 0.0, {},
    )
    values[ContactRecorded] = (ContactRecord(*values[ContactRecord]),)
    for cls, args in values.items():
        built = builder(cls)(*args)
        assert type(built) is cls
        assert built == cls(*args) and repr(built) == repr(cls(*args))
        assert hash(builder(cls)(*args[:-1], None)) == hash(cls(*args[:-1], None))
        with pytest.raises(dataclasses.FrozenInstanceError):
            setattr(built, dataclasses.fields(cls)[0].name, "x")
    kwargs = dict(zip((f.name for f in dataclasses.fields(OfferContact)), values[OfferContact]))
    assert builder(OfferContact)(**kwargs) == OfferContact(**kwargs)
