"""The INVITE guard: token buckets per source and the owner's backlog, with a clock passed in."""

from bridge.guard import OWNER_BEHIND, RATE_LIMITED, InviteGuard


def test_a_source_gets_its_burst_then_its_rate() -> None:
    g = InviteGuard(rate=10, burst=3, max_pending=100)
    assert [g.check("10.0.0.1:5060", 0, 0.0) for _ in range(4)] == [None, None, None, RATE_LIMITED]
    # Another source (any port) has its own bucket; the same host on another port does not.
    assert g.check("10.0.0.2:5060", 0, 0.0) is None
    assert g.check("10.0.0.1:5999", 0, 0.0) == RATE_LIMITED
    # A tenth of a second refills one INVITE at 10/s.
    assert g.check("10.0.0.1:5060", 0, 0.1) is None
    assert g.check("10.0.0.1:5060", 0, 0.1) == RATE_LIMITED
    # A long pause refills no more than the burst.
    assert [g.check("10.0.0.1:5060", 0, 100.0) for _ in range(4)] == [None, None, None, RATE_LIMITED]


def test_the_owner_falling_behind_refuses_everyone() -> None:
    g = InviteGuard(rate=10, burst=3, max_pending=2)
    assert g.check("[2001:db8::1]:5060", 1, 0.0) is None
    assert g.check("10.0.0.9:5060", 2, 0.0) == OWNER_BEHIND


def test_sources_tracked_are_bounded() -> None:
    g = InviteGuard(rate=1, burst=1, max_sources=2)
    for host in ("a:1", "b:1", "c:1"):
        assert g.check(host, 0, 0.0) is None
    assert len(g._buckets) == 2
    assert g.check("a:1", 0, 0.0) is None  # forgotten, so full again
