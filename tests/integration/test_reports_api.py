"""The report routes over HTTP: who may ask, tenant scope, parameters, CSV."""

import csv
import io
import time
from datetime import UTC, datetime, timedelta

import httpx

from tests.helpers import bearer, cached_login


def _today() -> tuple[str, str]:
    day = datetime.now(UTC).date()
    return day.isoformat(), (day + timedelta(days=1)).isoformat()


def _support_abandoned(hub, tenant: str) -> int:
    start, end = _today()
    r = httpx.get(f"{hub.url}/api/reports/queues", params={"from": start, "to": end, "interval": "1d", "queue": "support"},
                  headers=bearer(cached_login(hub.url, "supervisor", tenant=tenant)))
    assert r.status_code == 200, r.text
    return sum(row["abandoned"] for row in r.json()["rows"])


def test_a_contact_counts_for_its_tenant_only(hub):
    demo_before, acme_before = _support_abandoned(hub, "demo"), _support_abandoned(hub, "acme")
    admin = bearer(cached_login(hub.url, "admin"))
    r = httpx.post(f"{hub.url}/api/contacts", json={"queue": "support", "caller": "+4930999"}, headers=admin)
    assert r.status_code == 201, r.text
    r = httpx.post(f"{hub.url}/api/contacts/{r.json()['contact_id']}/abandon", headers=admin)
    assert r.status_code == 200, r.text
    deadline = time.monotonic() + 10
    while _support_abandoned(hub, "demo") == demo_before and time.monotonic() < deadline:
        time.sleep(0.1)  # polling: the record is written when the router has drained the abandon
    assert _support_abandoned(hub, "demo") == demo_before + 1
    assert _support_abandoned(hub, "acme") == acme_before


def test_agents_and_trainers_are_refused(hub):
    start, end = _today()
    for who in ("agent1", "trainer"):
        for kind in ("queues", "agents"):
            r = httpx.get(f"{hub.url}/api/reports/{kind}", params={"from": start, "to": end},
                          headers=bearer(cached_login(hub.url, who)))
            assert r.status_code == 403 and "supervisor" in r.json()["message"], r.text
    r = httpx.get(f"{hub.url}/api/reports/queues", params={"from": start, "to": end})
    assert r.status_code == 401


def test_bad_parameters_get_clear_errors(hub):
    sup = bearer(cached_login(hub.url, "supervisor"))
    cases = [
        ({"to": "2026-01-02"}, 400, "from and to are required"),
        ({"from": "2026-01-02", "to": "2026-01-01"}, 400, "to must be after from"),
        ({"from": "yesterday", "to": "2026-01-01"}, 400, "'yesterday' is not a date"),
        ({"from": "nan", "to": "2026-01-01"}, 400, "'nan' is outside the years 1970 to 9998"),
        ({"from": "0001-01-01", "to": "0001-01-02"}, 400, "outside the years"),
        ({"from": "2026-01-01", "to": "2026-01-02", "interval": "5m"}, 400, "interval '5m' is not one of 15m, 1h, 1d"),
        ({"from": "2026-01-01", "to": "2026-06-01", "interval": "15m"}, 400, "covers at most 92 days"),
        ({"from": "2026-01-01", "to": "2026-01-02", "format": "xml"}, 400, "format 'xml'"),
        ({"from": "2026-01-01", "to": "2026-01-02", "queue": "billing"}, 404, "unknown queue 'billing'"),
        ({"from": "2026-01-01", "to": "2026-01-02", "tenant": "acme"}, 400, "unknown parameter 'tenant'"),
    ]
    for params, status, message in cases:
        r = httpx.get(f"{hub.url}/api/reports/queues", params=params, headers=sup)
        assert r.status_code == status and message in r.json()["message"], (params, r.text)


def test_csv_download(hub):
    start, end = _today()
    r = httpx.get(f"{hub.url}/api/reports/agents", params={"from": start, "to": end, "interval": "1h", "format": "csv"},
                  headers=bearer(cached_login(hub.url, "supervisor")))
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/csv")
    assert r.headers["content-disposition"].startswith('attachment; filename="agents-1h-')
    rows = list(csv.reader(io.StringIO(r.text)))
    assert rows[0][:5] == ["start", "agent", "agent_id", "offers", "answered"]
    assert all(len(row) == len(rows[0]) for row in rows)


def _agent_totals(hub, username: str) -> dict:
    start, end = _today()
    r = httpx.get(f"{hub.url}/api/reports/agents", params={"from": start, "to": end, "interval": "1d", "queue": "sales"},
                  headers=bearer(cached_login(hub.url, "supervisor")))
    assert r.status_code == 200, r.text
    empty = {"answered": 0, "rejected_offers": 0, "offers": 0, "busy_seconds": 0.0}
    return next((t for t in r.json()["totals"] if t["agent"] == username), empty)


def test_an_answered_and_a_rejected_contact_reach_the_agent_report(hub):
    from tests.helpers import connect_as, force

    for i in range(1, 6):
        force(hub, f"agent{i}", "logged-out")
    before = _agent_totals(hub, "agent5")
    force(hub, "agent5", "available")
    admin = bearer(cached_login(hub.url, "admin"))
    ws, _ = connect_as(hub, "agent5")
    try:
        def offered():
            return ws.expect(lambda m: m["type"] == "contact-offered", 10, "contact-offered")["contact"]["id"]

        cid = httpx.post(f"{hub.url}/api/contacts", json={"queue": "sales", "caller": "+4940111"}, headers=admin).json()["contact_id"]
        assert offered() == cid
        assert ws.request({"type": "accept-offer", "contact_id": cid})["type"] == "ack"
        assert ws.request({"type": "end-contact", "contact_id": cid})["type"] == "ack"
        assert ws.request({"type": "complete-wrap-up", "contact_id": cid, "code": "sale"})["type"] == "ack"
        cid2 = httpx.post(f"{hub.url}/api/contacts", json={"queue": "sales", "caller": "+4940222"}, headers=admin).json()["contact_id"]
        assert offered() == cid2
        assert ws.request({"type": "reject-offer", "contact_id": cid2})["type"] == "ack"
        httpx.post(f"{hub.url}/api/contacts/{cid2}/abandon", headers=admin)
    finally:
        ws.close()
        force(hub, "agent5", "logged-out")
    deadline = time.monotonic() + 10
    after = _agent_totals(hub, "agent5")
    while (after["answered"], after["rejected_offers"]) != (before["answered"] + 1, before["rejected_offers"] + 1):
        assert time.monotonic() < deadline, (before, after)
        time.sleep(0.1)  # polling: records are written when the router has drained the contact's end
        after = _agent_totals(hub, "agent5")
    assert after["offers"] >= before["offers"] + 2 and after["busy_seconds"] > before["busy_seconds"]
