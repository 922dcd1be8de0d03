"""One test per agent-selection strategy: which ready member a new contact is offered to."""

from __future__ import annotations

import random
from collections import Counter

from realtime.acd import AcdEngine, AgentConfig, Contact, Membership, OfferContact, QueueConfig


class Desk:
    """A queue with agents answering at once and hanging up when told."""

    def __init__(self, strategy: str, agents: list[str], *, weights=None, seed: int = 3) -> None:
        self.e = AcdEngine(rng=random.Random(seed))
        self.e.configure_queue(QueueConfig("q", strategy=strategy), 0.0)
        for i, aid in enumerate(agents):
            weight = weights[i] if weights else 1.0
            self.e.configure_agent(AgentConfig(aid, {}, (Membership("q", 0, weight),)), 0.0)
        self.t = 0.0
        self.n = 0

    def ready(self, *agents: str) -> None:
        for aid in agents:
            self.t += 1.0
            self.e.agent_ready(aid, self.t)
        self.e.commands_out()

    def call(self, talk: float = 10.0, *, back: bool = True) -> str:
        """One contact: returns who got it; that agent talks `talk` seconds and, if back, is ready again."""
        self.t += 1.0
        self.n += 1
        cid = f"c{self.n}"
        self.e.contact_arrived(Contact(cid, "q"), self.t)
        got = [c.agent_id for c in self.e.commands_out() if isinstance(c, OfferContact)]
        assert len(got) == 1, got
        self.e.offer_accepted(cid, got[0], self.t)
        self.t += talk
        self.e.contact_ended(cid, self.t, wrap_up_seconds_used=0.0)
        if back:
            self.e.agent_ready(got[0], self.t)
        self.e.commands_out()
        return got[0]


def test_longest_idle_picks_the_agent_ready_longest():
    d = Desk("longest-idle", ["a", "b", "c"])
    d.ready("b", "c", "a")
    assert [d.call() for _ in range(4)] == ["b", "c", "a", "b"]


def test_round_robin_continues_after_the_last_agent_offered():
    d = Desk("round-robin", ["a", "b", "c", "d"])
    d.ready("d", "c", "b", "a")  # ready order does not matter, member order does
    assert [d.call() for _ in range(5)] == ["a", "b", "c", "d", "a"]
    # "b" steps away: the pointer (at "a") moves on to "c", then wraps past "a".
    d.e.agent_not_ready("b", d.t)
    assert [d.call() for _ in range(3)] == ["c", "d", "a"]
    d.ready("b")
    assert [d.call() for _ in range(2)] == ["b", "c"]


def test_fewest_calls_picks_the_agent_with_fewest_answered():
    d = Desk("fewest-calls", ["a", "b", "c"])
    d.ready("a")
    d.call()
    d.call()
    d.ready("b")  # a: 2 calls, b: 0, c: not ready yet
    assert d.call() == "b"
    d.ready("c")
    assert d.call() == "c"
    assert sorted(d.call() for _ in range(3)) == ["a", "b", "c"]


def test_least_talk_time_picks_the_agent_who_talked_least():
    d = Desk("least-talk-time", ["a", "b"])
    d.ready("a", "b")
    assert d.call(talk=100.0) == "a"
    assert d.call(talk=10.0) == "b"
    assert d.call(talk=10.0) == "b"  # b: 10 s so far, a: 100 s
    assert d.call(talk=200.0) == "b"  # b: 20 s
    assert d.call() == "a"


def test_top_down_always_starts_from_the_first_member():
    d = Desk("top-down", ["a", "b", "c"])
    d.ready("c", "b", "a")
    assert [d.call() for _ in range(3)] == ["a", "a", "a"]
    assert d.call(back=False) == "a"
    assert d.call() == "b"


def test_random_is_uniform_and_reproducible():
    def run(seed):
        d = Desk("random", ["a", "b", "c", "d"], seed=seed)
        d.ready("a", "b", "c", "d")
        return [d.call(talk=1.0) for _ in range(2000)]

    picks = run(11)
    assert picks == run(11)
    counts = Counter(picks)
    assert set(counts) == {"a", "b", "c", "d"}
    assert all(400 <= n <= 600 for n in counts.values()), counts  # 500 expected, sd ~19


def test_weighted_random_follows_the_weights():
    d = Desk("weighted-random", ["light", "heavy"], weights=[1.0, 3.0])
    d.ready("light", "heavy")
    counts = Counter(d.call(talk=1.0) for _ in range(2000))
    assert 0.21 <= counts["light"] / 2000 <= 0.29, counts  # 0.25 expected, sd ~0.01


def test_random_is_fair_between_newcomers_and_waiters():
    # Agents who were passed over must not lose their chance to a newly ready one.
    d = Desk("random", ["a", "b", "c"], seed=5)
    d.ready("a", "b", "c")
    counts = Counter()
    for _ in range(1500):
        counts[d.call(talk=1.0, back=True)] += 1
    assert all(400 <= n <= 600 for n in counts.values()), counts


def test_ring_all_offers_every_ready_member():
    e = AcdEngine(rng=random.Random(1))
    e.configure_queue(QueueConfig("q", strategy="ring-all"), 0.0)
    for aid in "abc":
        e.configure_agent(AgentConfig(aid, {}, {"q": 0}), 0.0)
        e.agent_ready(aid, 0.0)
    e.contact_arrived(Contact("x", "q"), 1.0)
    assert [c.agent_id for c in e.commands_out() if isinstance(c, OfferContact)] == ["a", "b", "c"]
