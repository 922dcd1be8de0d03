"""Invariants over random event sequences, checked against an independent model of the commands.

The model rebuilds, from the command stream alone, who rings for what, who is
busy and what waits where, and after every input checks that:

* an agent never holds two offers, and is offered only while ready and idle;
* a contact rings at one agent at a time except in ring-all queues;
* offers go to members with the skills the contact needs at its current step;
* an offered contact is the best (priority, then arrival) among the waiting
  contacts the agent could take (across the agent's queues, equal weights);
* the engine is work-conserving: no waiting contact has an idle agent able to take it;
* no contact is lost: driven to completion, each one has exactly one record.
"""

from __future__ import annotations

import random

from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from realtime.acd import (
    AcdEngine, AgentConfig, AnnouncePosition, CancelOffer, ContactAssigned, ContactRecorded, ContactRequeued,
    Contact, EndContact, Membership, OfferContact, Outcome, OverflowContact, PauseAgent, QueueConfig,
    RejectContact, RoutingStep, StatsChanged, Strategy,
)

SKILLS = ("x", "y")
RELAX_AFTER = 20.0

strategy_names = st.sampled_from([s.value for s in Strategy])
agent_specs = st.lists(
    st.tuples(
        st.dictionaries(st.sampled_from(SKILLS), st.integers(0, 100), max_size=2),
        st.dictionaries(st.sampled_from(["q0", "q1"]), st.integers(0, 2), min_size=1, max_size=2),
    ),
    min_size=1, max_size=4,
)
ops = st.lists(
    st.one_of(
        st.tuples(st.just("arrive"), st.sampled_from(["q0", "q1"]), st.integers(0, 2),
                  st.dictionaries(st.sampled_from(SKILLS), st.sampled_from([0, 50, 90]), max_size=1)),
        st.tuples(st.just("arrive"), st.sampled_from(["q0", "q1"]), st.integers(0, 2), st.just({})),
        st.tuples(st.just("accept"), st.integers(0, 9)),
        st.tuples(st.just("ready"), st.integers(0, 3)),
        st.tuples(st.just("not_ready"), st.integers(0, 3), st.booleans()),
        st.tuples(st.just("accept"), st.integers(0, 9)),
        st.tuples(st.just("reject"), st.integers(0, 9), st.booleans()),
        st.tuples(st.just("end"), st.integers(0, 9), st.sampled_from([None, 0.0, 4.0])),
        st.tuples(st.just("abandon"), st.integers(0, 9)),
        st.tuples(st.just("advance"), st.sampled_from([0.0, 1.0, 6.0, 12.0, 31.0])),
    ),
    min_size=5, max_size=60,
)


class Model:
    def __init__(self, queues: dict[str, QueueConfig], agents: dict[str, AgentConfig], strict: bool = True) -> None:
        # Strict: no delays, so order and work conservation are exact.
        self.strict = strict
        self.queues = queues
        self.agents = agents
        self.members = {aid: {m.queue: m.penalty for m in a.memberships} for aid, a in agents.items()}
        self.ready = dict.fromkeys(agents, False)
        self.logged_in = dict.fromkeys(agents, False)
        self.offer: dict[str, str | None] = dict.fromkeys(agents)
        self.busy: dict[str, str | None] = dict.fromkeys(agents)
        self.contacts: dict[str, dict] = {}
        self.records: dict[str, object] = {}
        self.seq = 0

    def arrived(self, cid: str, queue: str, prio: int, req: dict, now: float, pref=None, until=0.0) -> None:
        self.seq += 1
        self.contacts[cid] = dict(queue=queue, prio=prio, req=req, arrived=now, entered=now, seq=self.seq,
                                  state="waiting", ringing=set(), agent=None, pref=pref, until=until)

    def rank(self, c: dict) -> tuple:
        return (-c["prio"], c["arrived"], c["seq"])

    def may_take(self, c: dict, aid: str, now: float) -> bool:
        if c["queue"] not in self.members[aid]:
            return False
        if c["queue"] == "q1" and now - c["entered"] >= RELAX_AFTER:
            return True
        skills = self.agents[aid].skills
        return all(skills.get(s, -1) >= lvl for s, lvl in c["req"].items())

    def idle(self, aid: str) -> bool:
        return self.ready[aid] and self.offer[aid] is None and self.busy[aid] is None

    def apply(self, cmds: list, now: float) -> None:
        for cmd in cmds:
            event(type(cmd).__name__)
            if isinstance(cmd, OfferContact):
                c = self.contacts[cmd.contact_id]
                aid = cmd.agent_id
                assert self.offer[aid] is None, f"{aid} holds two offers"
                assert self.idle(aid), f"offer to {aid} who is not ready"
                assert self.may_take(c, aid, now), f"{aid} may not take {cmd.contact_id}"
                assert cmd.queue == c["queue"]
                pref = c["pref"]
                if pref is not None and now < c["until"] and c["queue"] in self.members[pref]:
                    assert aid == pref, f"{cmd.contact_id} is reserved for {pref}, offered to {aid}"
                if c["ringing"]:
                    assert self.queues[c["queue"]].strategy is Strategy.RING_ALL, "two agents ring, not ring-all"
                elif not self.strict:
                    assert c["state"] == "waiting"
                else:
                    assert c["state"] == "waiting"
                    better = [
                        other for oid, other in self.contacts.items()
                        if other["state"] == "waiting" and oid != cmd.contact_id
                        and self.may_take(other, aid, now) and self.rank(other) < self.rank(c)
                    ]
                    assert not better, f"{cmd.contact_id} offered to {aid} before a better contact"
                c["state"] = "ringing"
                c["ringing"].add(aid)
                self.offer[aid] = cmd.contact_id
            elif isinstance(cmd, CancelOffer):
                c = self.contacts[cmd.contact_id]
                assert cmd.agent_id in c["ringing"]
                if cmd.reason == "no-answer" and c["pref"] == cmd.agent_id:
                    c["pref"] = None
                c["ringing"].discard(cmd.agent_id)
                self.offer[cmd.agent_id] = None
            elif isinstance(cmd, ContactRequeued):
                c = self.contacts[cmd.contact_id]
                assert c["state"] == "ringing" and not c["ringing"]
                c["state"] = "waiting"
            elif isinstance(cmd, ContactAssigned):
                c = self.contacts[cmd.contact_id]
                assert c["ringing"] == {cmd.agent_id}, "others still ring after an answer"
                c["ringing"].clear()
                c["state"] = "connected"
                c["agent"] = cmd.agent_id
                self.offer[cmd.agent_id] = None
                self.busy[cmd.agent_id] = cmd.contact_id
                self.ready[cmd.agent_id] = False
            elif isinstance(cmd, OverflowContact):
                c = self.contacts[cmd.contact_id]
                assert c["queue"] == cmd.from_queue and not c["ringing"]
                c["queue"] = cmd.to_queue
                c["entered"] = now
                c["state"] = "waiting"
            elif isinstance(cmd, (EndContact, RejectContact)):
                c = self.contacts[cmd.contact_id]
                assert not c["ringing"]
                c["state"] = "ended"
            elif isinstance(cmd, PauseAgent):
                self.ready[cmd.agent_id] = False
            elif isinstance(cmd, ContactRecorded):
                rec = cmd.record
                assert rec.contact_id not in self.records, "two records for one contact"
                self.records[rec.contact_id] = rec
                c = self.contacts[rec.contact_id]
                if rec.outcome is Outcome.ANSWERED:
                    assert c["state"] in ("connected", "wrap-up")
                    if self.busy[c["agent"]] == rec.contact_id:
                        self.busy[c["agent"]] = None
                c["state"] = "done"
            else:
                assert isinstance(cmd, (AnnouncePosition, StatsChanged))
        for cid, c in self.contacts.items():
            if c["state"] != "waiting" or not self.strict:
                continue
            for aid in self.agents:
                assert not (self.idle(aid) and self.may_take(c, aid, now)), (
                    f"{cid} waits while {aid} is idle and able")


def play(s0, s1, specs, overflow, autopause, seed, steps, *, strict: bool) -> None:
    delay = 0.0 if strict else 3.0
    queues = {
        "q1": QueueConfig("q1", strategy=s1, ring_timeout=10.0, retry_delay=delay, max_length=4,
                          reject_delay=delay, no_answer_delay=delay / 2, ordering="fifo" if strict else "score",
                          routing_steps=(RoutingStep(RELAX_AFTER, any_member=True),)),
        "q0": QueueConfig("q0", strategy=s0, ring_timeout=10.0, retry_delay=delay, busy_delay=delay,
                          max_missed_offers=autopause, max_wait=30.0 if overflow else None, overflow=overflow),
    }
    agents = {f"a{i}": AgentConfig(f"a{i}", skills, tuple(Membership(q, p) for q, p in mem.items()))
              for i, (skills, mem) in enumerate(specs)}
    e = AcdEngine(rng=random.Random(seed))
    for q in queues.values():
        e.configure_queue(q, 0.0)
    for a in agents.values():
        e.configure_agent(a, 0.0)
    model = Model(queues, agents, strict)
    ids = list(agents)
    now = 0.0
    n = 0
    for aid in ids:
        model.ready[aid] = model.logged_in[aid] = True
        e.agent_ready(aid, now)
    model.apply(e.commands_out(), now)

    def step(fn, *args) -> None:
        fn(*args)
        model.apply(e.commands_out(), now)

    def pick(items: list, k: int):
        return items[k % len(items)] if items else None

    def advance(target: float) -> float:
        # Every deadline up to the new time fires before anything else happens then.
        nonlocal now
        while (deadline := e.next_deadline()) is not None and deadline <= target:
            now = deadline
            step(e.handle_timeout, now)
        return target

    for op in steps:
        kind = op[0]
        if kind == "arrive":
            n += 1
            cid = f"c{n}"
            # Outside the strict run, every third contact waits 15 s for a preferred agent.
            pref = None if strict or n % 3 else ids[n % len(ids)]
            until = now + 15.0
            model.arrived(cid, op[1], op[2], op[3], now, pref, until)
            contact = Contact(cid, op[1], op[2], op[3], preferred_agent=pref,
                              preferred_until=until if pref else None)
            step(e.contact_arrived, contact, now)
        elif kind == "ready":
            aid = ids[op[1] % len(ids)]
            busy = model.busy[aid]
            if busy is not None and model.contacts[busy]["state"] == "connected":
                continue  # the hub does not make an agent on a call ready
            model.ready[aid] = model.logged_in[aid] = True
            step(e.agent_ready, aid, now)
        elif kind == "not_ready":
            aid = ids[op[1] % len(ids)]
            logout = op[2] and model.busy[aid] is None
            model.ready[aid] = False
            step(lambda: e.agent_not_ready(aid, now, logged_out=logout))
        elif kind in ("accept", "reject"):
            pairs = sorted((c, a) for a, c in model.offer.items() if c is not None)
            pair = pick(pairs, op[1])
            if pair is None:
                continue
            if kind == "accept":
                step(lambda: e.offer_accepted(pair[0], pair[1], now))
            else:
                # The agent's own refusal needs no CancelOffer: the hub knows it stopped ringing.
                c = model.contacts[pair[0]]
                c["ringing"].discard(pair[1])
                if c["pref"] == pair[1]:
                    c["pref"] = None
                model.offer[pair[1]] = None
                step(lambda: e.offer_rejected(pair[0], pair[1], now, busy=op[2]))
        elif kind == "end":
            cid = pick(sorted(c for c, v in model.contacts.items() if v["state"] == "connected"), op[1])
            if cid is None:
                continue
            model.contacts[cid]["state"] = "wrap-up"
            step(lambda: e.contact_ended(cid, now, wrap_up_seconds_used=op[2]))
        elif kind == "abandon":
            cid = pick(sorted(c for c, v in model.contacts.items() if v["state"] in ("waiting", "ringing")), op[1])
            if cid is None:
                continue
            step(e.contact_abandoned, cid, now)
        else:
            now = advance(now + op[1])

    # Drive everything to an end: callers hang up, calls end, wrap-ups finish.
    now = advance(now + 1.0)
    for cid, c in sorted(model.contacts.items()):
        if c["state"] in ("waiting", "ringing"):
            assert e.contact_abandoned(cid, now)
            model.apply(e.commands_out(), now)
    for cid, c in sorted(model.contacts.items()):
        if c["state"] == "connected":
            c["state"] = "wrap-up"
            step(lambda: e.contact_ended(cid, now))
    for cid, c in sorted(model.contacts.items()):
        if c["state"] == "wrap-up":
            step(lambda: e.contact_wrapped_up(cid, now))
    assert e.active_contacts() == []
    assert set(model.records) == set(model.contacts), "a contact was lost"
    assert all(c["state"] == "done" for c in model.contacts.values())


WORLD = (strategy_names, strategy_names, agent_specs, st.sampled_from([None, "q1", "end:timeout"]),
         st.sampled_from([0, 2]), st.integers(0, 2**32 - 1), ops)
SETTINGS = settings(max_examples=300, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow])


@SETTINGS
@given(*WORLD)
def test_invariants_hold_over_random_sequences(s0, s1, specs, overflow, autopause, seed, steps):
    """No delays: every invariant, order and work conservation included, holds exactly."""
    play(s0, s1, specs, overflow, autopause, seed, steps, strict=True)


@SETTINGS
@given(*WORLD)
def test_invariants_hold_with_delays_preferred_agents_and_score_ordering(s0, s1, specs, overflow, autopause,
                                                                          seed, steps):
    """Retry, reject and no-answer delays, preferred agents, score ordering: offers stay legal, nothing is lost."""
    play(s0, s1, specs, overflow, autopause, seed, steps, strict=False)
