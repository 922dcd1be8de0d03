"""Historical reports against a generated call log with known answers, on the backend under test."""

import csv
import io
from datetime import UTC, datetime

import pytest

from realtime.reports import Query, agent_report, queue_report, to_csv
from store.db import make_engine, make_sessionmaker
from store.migrate import upgrade
from store.report_time import INTERVALS, zone_for
from store.reports import Range
from store.repos import TenantRepo, create_tenant
from tests.conftest import drop_backend, make_backend

T0 = datetime(2026, 3, 2, tzinfo=UTC).timestamp()
NOW = T0 + 30 * 86400


@pytest.fixture
async def log(tmp_path):
    """Tenant "t" (queues support SL 20 s and sales SL 30 s; agents a1 in support, a2 in both) with
    seven contacts and two agents' state changes over two hours from T0; tenant "o" has a contact too."""
    b = make_backend(tmp_path)
    url = b.database_url.replace("sqlite://", "sqlite+aiosqlite://").replace("postgresql://", "postgresql+asyncpg://")
    upgrade(url)
    engine = make_engine(url)
    sm = make_sessionmaker(engine)
    async with sm() as s, s.begin():
        t = await create_tenant(s, "t", "T", T0)
        o = await create_tenant(s, "o", "O", T0)
        repo = TenantRepo(s, t.id)
        a1 = (await repo.add_user("a1", "A1", "h", ["agent"], T0)).id
        a2 = (await repo.add_user("a2", "A2", "h", ["agent"], T0)).id
        support = await repo.add_queue("support", "Support", service_level_seconds=20)
        sales = await repo.add_queue("sales", "Sales", service_level_seconds=30)
        await repo.add_membership(support.id, a1)
        await repo.add_membership(support.id, a2)
        await repo.add_membership(sales.id, a2)

        def seg(cid, queue, entered, left, outcome, agent=None, talk=0.0, hold=0.0, wrap=0.0):
            return {"contact_id": cid, "queue": queue, "entered_at": T0 + entered, "left_at": T0 + left,
                    "outcome": outcome, "service_level_seconds": 20.0 if queue == "support" else 30.0,
                    "agent_id": agent, "answered_at": T0 + left if agent else None, "talk_seconds": talk,
                    "hold_seconds": hold, "wrap_up_seconds": wrap}

        await repo.add_contact_segments([
            seg("c1", "support", 100, 110, "answered", a1, 120, 30, 20),
            seg("c2", "support", 200, 230, "answered", a2, 60, 0, 20),
            seg("c3", "support", 300, 305, "abandoned"),
            seg("c4", "support", 400, 450, "abandoned"),
            seg("c5", "support", 500, 560, "overflowed"),
            seg("c5", "sales", 560, 570, "answered", a2, 100, 10, 0),
            seg("c6", "support", 3610, 3615, "answered", a1, 50, 0, 10),
            seg("c7", "support", 3590, 3610, "answered", a1, 40, 0, 10),
            seg("c8", "support", 7200, 7210, "abandoned"),  # at the range's end: outside
            seg("c9", "support", -1, 4, "abandoned"),  # before its start: outside
        ])

        def offer(cid, agent, queue, at, resolved, result):
            return {"contact_id": cid, "agent_id": agent, "queue": queue, "offered_at": T0 + at,
                    "resolved_at": T0 + resolved, "result": result}

        await repo.add_contact_offers([
            offer("c1", a1, "support", 100, 110, "accepted"),
            offer("c2", a1, "support", 200, 220, "no-answer"),
            offer("c2", a2, "support", 225, 230, "accepted"),
            offer("c3", a2, "support", 300, 305, "canceled"),
            offer("c4", a1, "support", 405, 410, "rejected"),
            offer("c5", a2, "sales", 565, 570, "accepted"),
            offer("c6", a1, "support", 3605, 3615, "accepted"),
            offer("c7", a1, "support", 3595, 3610, "accepted"),
        ])
        for user, at, frm, to, reason in [
            (a1, -1800, "logged-out", "available", None),
            (a1, 600, "available", "on-call", None),
            (a1, 1200, "on-call", "wrap-up", None),
            (a1, 1500, "wrap-up", "paused", "lunch"),
            (a1, 3000, "paused", "paused", "break"),
            (a1, 4200, "paused", "available", None),
            (a1, 5400, "available", "logged-out", None),
            (a2, 900, "logged-out", "available", None),
            (a2, 1800, "available", "ringing", None),
            (a2, 1810, "ringing", "on-call", None),
            (a2, 3160, "on-call", "available", None),
        ]:
            await repo.record_transition(user, frm, to, reason, T0 + at, None, "agent")
        # Another tenant with the same queue names: never counted here.
        orepo = TenantRepo(s, o.id)
        await orepo.add_queue("support", "Support")
        await orepo.add_contact_segments([seg("x1", "support", 100, 105, "abandoned")])
        ids = {"t": t.id, "o": o.id, "a1": a1, "a2": a2}
    yield sm, ids
    await engine.dispose()
    drop_backend(b)


def query(start, end, interval="1h", queues=("sales", "support"), tz=None, now=NOW):
    r = Range(start=start, end=end, width=INTERVALS[interval], zone=zone_for(tz, start, end), now=now)
    return Query(range=r, interval=interval, queues=list(queues), format="json")


def pick(rows, **match):
    found = [r for r in rows if all(r[k] == v for k, v in match.items())]
    assert len(found) == 1, (match, rows)
    return found[0]


async def test_queue_figures_per_hour(log):
    sm, ids = log
    async with sm() as s:
        rep = await queue_report(s, ids["t"], query(T0, T0 + 7200))
    assert [b["start"] for b in rep["buckets"]] == ["2026-03-02T00:00:00Z", "2026-03-02T01:00:00Z"]
    sup1 = pick(rep["rows"], queue="support", start="2026-03-02T00:00:00Z")
    assert {k: sup1[k] for k in ("offered", "answered", "answered_within_sl", "abandoned", "abandoned_within_sl",
                                 "overflowed", "missed_offers", "rejected_offers")} == {
        "offered": 6, "answered": 3, "answered_within_sl": 2, "abandoned": 2, "abandoned_within_sl": 1,
        "overflowed": 1, "missed_offers": 1, "rejected_offers": 1}
    # SL = 2 / (3 + 2 - 1); ASA = (10 + 30 + 20) / 3; AHT = (220 + 30 + 50) / 3
    assert (sup1["service_level"], sup1["asa"], sup1["aht"], sup1["abandon_rate"]) == (0.5, 20.0, 100.0, 0.4)
    assert (sup1["talk_seconds"], sup1["hold_seconds"], sup1["wrap_up_seconds"]) == (220.0, 30.0, 50.0)
    # Members a1 + a2: logged in 3600 + 2700, ready 600 + 1350, busy 900 + 1350.
    assert (sup1["logged_in_seconds"], sup1["ready_seconds"], sup1["busy_seconds"]) == (6300.0, 1950.0, 2250.0)
    assert sup1["occupancy"] == round(2250 / 4200, 4)
    assert sup1["paused_seconds"] == 2100.0 and sup1["paused_by_reason"] == {"break": 600.0, "lunch": 1500.0}
    sup2 = pick(rep["rows"], queue="support", start="2026-03-02T01:00:00Z")
    assert (sup2["offered"], sup2["answered"], sup2["service_level"], sup2["asa"], sup2["aht"]) == (1, 1, 1.0, 5.0, 60.0)
    assert sup2["paused_by_reason"] == {"break": 600.0} and sup2["occupancy"] == 0.0
    sales1 = pick(rep["rows"], queue="sales", start="2026-03-02T00:00:00Z")
    assert (sales1["offered"], sales1["answered"], sales1["service_level"], sales1["asa"], sales1["aht"]) == (
        1, 1, 1.0, 10.0, 110.0)
    assert sales1["occupancy"] == 0.5 and sales1["paused_seconds"] == 0.0
    total = pick(rep["totals"], queue="support")
    assert (total["offered"], total["answered"], total["abandoned"], total["service_level"]) == (7, 4, 2, 0.6)
    assert total["aht"] == 90.0  # (300 + 60) / 4


async def test_queue_filter_and_days(log):
    sm, ids = log
    async with sm() as s:
        rep = await queue_report(s, ids["t"], query(T0, T0 + 86400, "1d", queues=["sales"]))
    assert [r["queue"] for r in rep["rows"]] == ["sales"] and rep["rows"][0]["offered"] == 1
    assert rep["rows"][0]["start"] == "2026-03-02T00:00:00Z"


async def test_agent_figures_per_hour(log):
    sm, ids = log
    async with sm() as s:
        rep = await agent_report(s, ids["t"], query(T0, T0 + 7200), all_queues=True)
    a1h1 = pick(rep["rows"], agent="a1", start="2026-03-02T00:00:00Z")
    assert {k: a1h1[k] for k in ("offers", "answered", "missed_offers", "rejected_offers", "asa", "aht")} == {
        "offers": 4, "answered": 1, "missed_offers": 1, "rejected_offers": 1, "asa": 10.0, "aht": 170.0}
    assert (a1h1["logged_in_seconds"], a1h1["ready_seconds"], a1h1["busy_seconds"], a1h1["occupancy"]) == (
        3600.0, 600.0, 900.0, 0.6)
    assert a1h1["paused_by_reason"] == {"break": 600.0, "lunch": 1500.0}
    a1h2 = pick(rep["rows"], agent="a1", start="2026-03-02T01:00:00Z")
    assert (a1h2["offers"], a1h2["answered"], a1h2["asa"], a1h2["aht"]) == (1, 2, 12.5, 55.0)
    assert (a1h2["logged_in_seconds"], a1h2["ready_seconds"], a1h2["occupancy"]) == (1800.0, 1200.0, 0.0)
    a2h1 = pick(rep["rows"], agent="a2", start="2026-03-02T00:00:00Z")
    assert (a2h1["offers"], a2h1["answered"], a2h1["missed_offers"], a2h1["asa"], a2h1["aht"]) == (3, 2, 0, 20.0, 95.0)
    assert (a2h1["ready_seconds"], a2h1["busy_seconds"], a2h1["occupancy"]) == (1350.0, 1350.0, 0.5)
    a2h2 = pick(rep["rows"], agent="a2", start="2026-03-02T01:00:00Z")
    # Still available: the open span runs to the range's end.
    assert (a2h2["ready_seconds"], a2h2["logged_in_seconds"], a2h2["answered"]) == (3600.0, 3600.0, 0)
    # Half an hour into a report that ends in the future: spans stop at now.
    async with sm() as s:
        rep = await agent_report(s, ids["t"], query(T0, T0 + 7200, now=T0 + 5000), all_queues=True)
    assert pick(rep["rows"], agent="a2", start="2026-03-02T01:00:00Z")["ready_seconds"] == 1400.0


async def test_csv_has_a_header_and_one_line_per_row(log):
    sm, ids = log
    async with sm() as s:
        rep = await queue_report(s, ids["t"], query(T0, T0 + 7200))
    lines = list(csv.DictReader(io.StringIO(to_csv(rep))))
    assert len(lines) == len(rep["rows"]) == 4  # sales in the second hour: a2's time only
    first = lines[0]
    assert (first["start"], first["queue"], first["offered"], first["service_level"]) == (
        "2026-03-02T00:00:00Z", "sales", "1", "1.0")
    sup = next(x for x in lines if x["queue"] == "support" and x["start"].endswith("T00:00:00Z"))
    assert (sup["paused_lunch_seconds"], sup["paused_break_seconds"], sup["asa"]) == ("1500.0", "600.0", "20.0")
    assert "start_ts" not in first and "paused_by_reason" not in first


async def test_another_tenant_sees_only_its_own(log):
    sm, ids = log
    async with sm() as s:
        rep = await queue_report(s, ids["o"], query(T0, T0 + 7200, queues=["support"]))
    assert [(r["queue"], r["offered"], r["abandoned"]) for r in rep["rows"]] == [("support", 1, 1)]
    async with sm() as s:
        rep = await agent_report(s, ids["o"], query(T0, T0 + 7200, queues=["support"]), all_queues=True)
    assert rep["rows"] == []


async def test_days_in_the_tenants_time_zone_across_a_clock_change(log):
    """Berlin moves its clocks forward on 2026-03-29: that day has 23 hours."""
    sm, ids = log
    start = datetime.fromisoformat("2026-03-28T00:00:00+01:00").timestamp()
    end = datetime.fromisoformat("2026-03-31T00:00:00+02:00").timestamp()
    async with sm() as s, s.begin():
        repo = TenantRepo(s, ids["t"])
        # Available from the 27th on, logged out on the 31st; a contact at 00:30 local on the 29th.
        await repo.record_transition(ids["a1"], "logged-out", "available", None, start - 86400, None, "agent")
        await repo.record_transition(ids["a1"], "available", "logged-out", None, end + 3600, None, "agent")
        at = datetime.fromisoformat("2026-03-29T00:30:00+01:00").timestamp()
        await repo.add_contact_segments([{"contact_id": "z1", "queue": "support", "entered_at": at, "left_at": at + 5,
                                          "outcome": "abandoned", "service_level_seconds": 20.0}])
    async with sm() as s:
        rep = await agent_report(s, ids["t"], query(start, end, "1d", queues=["support"], tz="Europe/Berlin"),
                                 all_queues=False)
        qrep = await queue_report(s, ids["t"], query(start, end, "1d", queues=["support"], tz="Europe/Berlin"))
    assert [b["start"] for b in rep["buckets"]] == [
        "2026-03-28T00:00:00+01:00", "2026-03-29T00:00:00+01:00", "2026-03-30T00:00:00+02:00"]
    ready = {r["start"][:10]: r["ready_seconds"] for r in rep["rows"] if r["agent"] == "a1"}
    assert ready == {"2026-03-28": 86400.0, "2026-03-29": 82800.0, "2026-03-30": 86400.0}
    assert [(r["start"][:10], r["abandoned"]) for r in qrep["rows"] if r["abandoned"]] == [("2026-03-29", 1)]
