"""Contacts through the real ACD, hub and store, before there is telephony."""

import time

import httpx
import pytest

from tests.conftest import HubProcess, drop_backend, prepared_backend, set_queue_config
from tests.helpers import Ws, agent_id, bearer, cached_login, connect_as, force, login


@pytest.fixture(scope="module")
def acd_hub(tmp_path_factory):
    """A hub on a backend of its own, so contacts left by other tests cannot interfere."""
    tmp = tmp_path_factory.mktemp("acd")
    b = prepared_backend(tmp)
    # Short rings and quick autopause keep the timing tests fast.
    set_queue_config(b, "demo", "support", ring_timeout=1.5, max_missed_offers=2, retry_delay=30)
    set_queue_config(b, "demo", "sales", ring_timeout=20, retry_delay=30)
    h = HubProcess(b, tmp / "hub.log").start()
    yield h
    h.stop()
    drop_backend(b)


def admin(h) -> dict:
    return bearer(cached_login(h.url, "admin"))


def create(h, queue: str, caller: str = "+4930123456", **extra) -> str:
    r = httpx.post(f"{h.url}/api/contacts", json={"queue": queue, "caller": caller, **extra}, headers=admin(h))
    assert r.status_code == 201, r.text
    return r.json()["contact_id"]


def record(h, cid: str) -> dict:
    r = httpx.get(f"{h.url}/api/contacts/{cid}", headers=bearer(cached_login(h.url, "supervisor")))
    assert r.status_code == 200, r.text
    return r.json()


def only_available(h, *usernames: str) -> None:
    for i in range(1, 6):
        name = f"agent{i}"
        r = force(h, name, "logged-out")
        # Refused only when already logged out: a ringing or talking agent means a test left a contact behind.
        assert r.status_code == 200 or "logged-out" in r.json()["message"], r.text
        if name in usernames:
            assert force(h, name, "available").status_code == 200


def offered(ws: Ws, timeout: float = 5.0) -> dict:
    return ws.expect(lambda m: m["type"] == "contact-offered", timeout, "contact-offered")


def changed(ws: Ws, status: str, timeout: float = 5.0) -> dict:
    return ws.expect(
        lambda m: m["type"] == "contact-changed" and m["contact"]["status"] == status, timeout, f"contact {status}"
    )


def test_contact_is_offered_to_the_right_agent_answered_and_wrapped_up(acd_hub):
    h = acd_hub
    only_available(h, "agent3")
    ws, _ = connect_as(h, "agent3")
    board, _ = connect_as(h, "supervisor")
    cid = create(h, "sales", caller="+4940999", caller_name="Erika Muster", data={"customer": "4711"})
    offer = offered(ws)
    c = offer["contact"]
    assert (c["id"], c["queue"], c["caller"], c["caller_name"], c["data"]) == (
        cid, "sales", "+4940999", "Erika Muster", {"customer": "4711"})
    assert offer["ring_timeout"] == 20
    ws.agent_event("agent3", "ringing")
    assert ws.request({"type": "accept-offer", "contact_id": cid})["type"] == "ack"
    changed(ws, "connected")
    board.agent_event("agent3", "on-call")
    assert ws.request({"type": "end-contact", "contact_id": cid})["type"] == "ack"
    wrap = ws.agent_event("agent3", "wrap-up")
    # The sales queue's wrap-up time (20 s) runs.
    assert 19 <= wrap["agent"]["wrap_up_until"] - wrap["agent"]["since"] <= 21
    ack = ws.request({"type": "complete-wrap-up", "contact_id": cid, "code": "sale", "notes": "two licences"})
    assert ack["type"] == "ack"
    ws.agent_event("agent3", "available")
    rec = record(h, cid)
    assert rec["outcome"] == "answered" and rec["agent_id"] == agent_id(h, "agent3")
    assert (rec["wrapup_code"], rec["notes"]) == ("sale", "two licences")
    assert rec["answered_at"] >= rec["created_at"] and rec["ended_at"] >= rec["answered_at"]
    assert rec["data"]["offered_to"] == [agent_id(h, "agent3")]
    # The board's queue panel shows the figures move, the queue's and the agent's.
    a3_id = agent_id(h, "agent3")
    queues, agents = {}, {}
    deadline = time.monotonic() + 5
    while not (queues.get("sales", {}).get("answered") and agents.get(a3_id, {}).get("answered")):
        assert time.monotonic() < deadline, f"figures did not arrive: {queues} {agents}"
        m = board.expect(lambda m: m["type"] == "queue-stats", deadline - time.monotonic(), "queue-stats")
        queues.update({q["queue"]: q for q in m["queues"]})
        agents.update({a["agent_id"]: a for a in m.get("agents", [])})
    assert queues["sales"]["offered"] >= 1 and queues["sales"]["service_level"] == 1.0
    assert agents[a3_id]["offered"] == 1 and agents[a3_id].get("missed", 0) == 0
    assert agents[a3_id]["talk_seconds"] >= 0
    ws.close()
    board.close()


def test_a_rejected_offer_goes_to_the_next_agent(acd_hub):
    h = acd_hub
    only_available(h, "agent4", "agent5")
    a4, _ = connect_as(h, "agent4")
    a5, _ = connect_as(h, "agent5")
    cid = create(h, "sales")
    # Round-robin in sales: whoever got it rejects, the other one is offered.
    first, second = None, None
    deadline = time.monotonic() + 5
    while first is None and time.monotonic() < deadline:
        for ws in (a4, a5):
            try:
                first = offered(ws, 0.2)
                first_ws, other_ws = ws, (a5 if ws is a4 else a4)
                break
            except AssertionError:
                continue
    assert first is not None and first["contact"]["id"] == cid
    assert first_ws.request({"type": "reject-offer", "contact_id": cid})["type"] == "ack"
    cancelled = changed(first_ws, "cancelled")
    assert cancelled["reason"] == "rejected"
    first_ws.expect(lambda m: m["type"] == "agent-state" and m["agent"]["state"] == "available", 5, "available again")
    err = first_ws.request({"type": "accept-offer", "contact_id": cid})
    assert err["code"] == "offer-void" and "no longer offered" in err["message"]
    second = offered(other_ws)
    assert second["contact"]["id"] == cid
    assert other_ws.request({"type": "accept-offer", "contact_id": cid})["type"] == "ack"
    assert other_ws.request({"type": "end-contact", "contact_id": cid})["type"] == "ack"
    assert other_ws.request({"type": "complete-wrap-up", "contact_id": cid, "code": "no-sale"})["type"] == "ack"
    assert len(record(h, cid)["data"]["offered_to"]) == 2
    a4.close()
    a5.close()


def test_unanswered_offers_time_out_and_the_agent_is_paused_for_no_answer(acd_hub):
    h = acd_hub
    only_available(h, "agent1")
    ws, _ = connect_as(h, "agent1")
    cids = [create(h, "support"), create(h, "support")]
    for _ in cids:
        offer = offered(ws, 5)
        cancelled = changed(ws, "cancelled", 5)
        assert cancelled["contact"]["id"] == offer["contact"]["id"] and cancelled["reason"]
    paused = ws.agent_event("agent1", "paused", 5)
    assert paused["agent"]["reason"] == "no-answer"
    sup = cached_login(h.url, "supervisor")
    hist = httpx.get(f"{h.url}/api/agents/{agent_id(h, 'agent1')}/history", headers=bearer(sup)).json()
    assert hist[0]["to"] == "paused" and hist[0]["source"] == "system"
    for cid in cids:
        r = httpx.post(f"{h.url}/api/contacts/{cid}/abandon", headers=admin(h))
        assert r.status_code == 200, r.text
    ws.close()


def test_live_figures_match_figures_recomputed_from_the_store(acd_hub):
    h = acd_hub
    only_available(h)
    sup = cached_login(h.url, "supervisor")
    # Published figures trail the engine by up to a second. A marker contact makes the baseline exact: once
    # nothing waits, the first figures showing one contact waiting show the marker, and with it every earlier
    # contact (the engine handles events in order and publishes whole states).
    def figures() -> dict:
        return {q["queue"]: q for q in httpx.get(f"{h.url}/api/queue-stats", headers=bearer(sup)).json()}

    def wait_for_waiting(n: int) -> dict:
        deadline = time.monotonic() + 5
        while (f := figures()).get("support", {}).get("waiting") != n:
            assert time.monotonic() < deadline, f"support never showed {n} waiting: {f}"
            time.sleep(0.05)
        return f

    wait_for_waiting(0)
    marker = create(h, "support", caller="+4939999")
    before = wait_for_waiting(1)
    assert httpx.post(f"{h.url}/api/contacts/{marker}/abandon", headers=admin(h)).status_code == 200
    before["support"]["abandoned"] = before["support"].get("abandoned", 0) + 1
    assert force(h, "agent2", "available").status_code == 200
    ws, _ = connect_as(h, "agent2")
    answered, abandoned = [], []
    for i in range(3):
        cid = create(h, "support", caller=f"+49300{i}")
        offered(ws)
        assert ws.request({"type": "accept-offer", "contact_id": cid})["type"] == "ack"
        assert ws.request({"type": "end-contact", "contact_id": cid})["type"] == "ack"
        assert ws.request({"type": "complete-wrap-up", "contact_id": cid, "code": "resolved"})["type"] == "ack"
        answered.append(cid)
    force(h, "agent2", "paused", "break")
    for i in range(2):
        cid = create(h, "support", caller=f"+49311{i}")
        assert httpx.post(f"{h.url}/api/contacts/{cid}/abandon", headers=admin(h)).status_code == 200
        abandoned.append(cid)
    board, _ = connect_as(h, "supervisor")
    want_answered = before.get("support", {}).get("answered", 0) + 3
    want_abandoned = before.get("support", {}).get("abandoned", 0) + 2

    def settled(queues: list) -> bool:
        return any(q["queue"] == "support" and q["answered"] == want_answered and q["abandoned"] == want_abandoned
                   for q in queues)

    snap = board.expect(lambda m: m["type"] == "snapshot", 5, "snapshot")
    if not settled(snap["queue_stats"]):
        board.expect(lambda m: m["type"] == "queue-stats" and settled(m["queues"]), 5, "support figures")
    live = {q["queue"]: q for q in httpx.get(f"{h.url}/api/queue-stats", headers=bearer(sup)).json()}["support"]
    recs = [record(h, c) for c in answered + abandoned]
    assert [r["outcome"] for r in recs] == ["answered"] * 3 + ["abandoned"] * 2
    # Recompute this batch's share of the figures from the records and compare.
    assert live["answered"] - before.get("support", {}).get("answered", 0) == sum(r["outcome"] == "answered" for r in recs)
    waits = [r["data"]["wait"] for r in recs if r["outcome"] == "answered"]
    assert all(abs((r["answered_at"] - r["created_at"]) - r["data"]["wait"]) < 0.01 for r in recs[:3])
    if not before.get("support", {}).get("answered"):
        assert live["asa"] == pytest.approx(sum(waits) / len(waits), abs=0.01)
    board.close()
    ws.close()


def test_bad_contact_input_gets_clear_errors_and_writes_nothing(acd_hub):
    h = acd_hub
    cases = [
        ({"queue": "nowhere", "caller": "1"}, 404, "unknown queue 'nowhere'"),
        ({"queue": "support", "caller": "1", "skills": {"english": 500}}, 422, "skills"),
        ({"queue": "support", "caller": "1", "priority": -1}, 422, "priority"),
        ({"queue": "support"}, 422, "caller"),
        ({"queue": "support", "caller": "1", "colour": "red"}, 422, "colour"),
    ]
    for body, status, fragment in cases:
        r = httpx.post(f"{h.url}/api/contacts", json=body, headers=admin(h))
        assert r.status_code == status and fragment in r.json()["message"], (body, r.text)
    r = httpx.post(f"{h.url}/api/contacts", json={"queue": "support", "caller": "1"},
                   headers=bearer(login(h.url, "agent1")))
    assert r.status_code == 403
    ws, _ = connect_as(h, "agent5")
    for frame, code in [
        ({"type": "accept-offer", "contact_id": "no-such-contact"}, "offer-void"),
        ({"type": "end-contact", "contact_id": "no-such-contact"}, "not-found"),
        ({"type": "complete-wrap-up", "contact_id": "no-such-contact", "code": "resolved"}, "not-found"),
        ({"type": "accept-offer", "contact_id": ""}, "bad-frame"),
    ]:
        err = ws.request(frame)
        assert err["type"] == "error" and err["code"] == code, (frame, err)
    assert ws.request({"type": "ping"})["type"] == "pong"
    board, _ = connect_as(h, "supervisor")
    err = board.request({"type": "accept-offer", "contact_id": "x"})
    assert err["code"] == "forbidden"
    ws.close()
    board.close()


def test_a_wrong_wrap_up_code_is_refused_and_the_contact_stays_open(acd_hub):
    h = acd_hub
    only_available(h, "agent3")
    ws, _ = connect_as(h, "agent3")
    cid = create(h, "support")
    offered(ws)
    ws.request({"type": "accept-offer", "contact_id": cid})
    err = ws.request({"type": "complete-wrap-up", "contact_id": cid, "code": "resolved"})
    assert err["code"] == "illegal-transition" and "end the contact" in err["message"]
    ws.request({"type": "end-contact", "contact_id": cid})
    err = ws.request({"type": "complete-wrap-up", "contact_id": cid, "code": "bogus"})
    assert err["code"] == "unknown-code" and "bogus" in err["message"]
    assert record(h, cid)["wrapup_code"] is None
    assert ws.request({"type": "complete-wrap-up", "contact_id": cid, "code": "callback"})["type"] == "ack"
    assert record(h, cid)["wrapup_code"] == "callback"
    ws.close()


def test_the_cli_creates_a_contact_that_reaches_an_agent(acd_hub):
    from tests.conftest import cli

    h = acd_hub
    only_available(h, "agent4")
    ws, _ = connect_as(h, "agent4")
    out = cli({}, "contact", "--url", h.url, "--queue", "support", "--caller", "+4989123",
              "--name", "Max", "--data", "ticket=T-9")
    assert out.returncode == 0, out.stderr
    cid = out.stdout.strip()
    offer = offered(ws)
    assert offer["contact"]["id"] == cid and offer["contact"]["data"] == {"ticket": "T-9"}
    ws.request({"type": "reject-offer", "contact_id": cid})
    assert httpx.post(f"{h.url}/api/contacts/{cid}/abandon", headers=admin(h)).status_code == 200
    bad = cli({}, "contact", "--url", h.url, "--queue", "nowhere", "--caller", "1")
    assert bad.returncode == 1 and "unknown queue 'nowhere'" in bad.stderr
    ws.close()


def test_a_restarted_hub_serves_or_honestly_closes_waiting_contacts(tmp_path):
    from tests.conftest import BACKEND

    b = prepared_backend(tmp_path)
    try:
        h = HubProcess(b, tmp_path / "a.log").start()
        for i in range(1, 6):
            force(h, f"agent{i}", "logged-out")
        cid = create(h, "support", caller="+4930999")
        h.kill()
        h2 = HubProcess(b, tmp_path / "b.log").start()
        try:
            ws, _ = connect_as(h2, "agent1")
            ws.request({"type": "set-state", "state": "available"})
            if BACKEND == "redis":
                # Live state survives in Redis: the waiting contact is offered, nothing lost.
                assert offered(ws, 10)["contact"]["id"] == cid
                assert record(h2, cid)["outcome"] is None
            else:
                # The embedded default keeps live state in memory: the contact cannot be served,
                # and its record says so instead of staying open for ever.
                deadline = time.monotonic() + 10
                while record(h2, cid)["outcome"] is None and time.monotonic() < deadline:
                    time.sleep(0.1)  # polling the record
                rec = record(h2, cid)
                assert rec["outcome"] == "failed" and "restarted" in rec["data"]["reason"] and rec["ended_at"]
            ws.close()
        finally:
            h2.stop()
    finally:
        drop_backend(b)
