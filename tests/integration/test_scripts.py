"""Call scripts over real HTTP and the websocket: definitions checked with the place named, a contact
pinned to the version published when it was offered (the next contact gets the new one), the path
saved move by move and shown in the customer's history, tenants and agents kept apart, oversized
input refused."""

from __future__ import annotations

import copy

import httpx
import pytest

from tests.conftest import HubProcess, drop_backend, prepared_backend
from tests.helpers import connect_as, force
from tests.integration.test_contacts import changed, offered
from tests.integration.test_customers import auth, create_contact, new_customer, only_available

DEF = {"title": "Sales intro", "start": "hello", "steps": [
    {"id": "hello", "kind": "text", "text": "Good day {{customer.first_name}}, this is {{agent.name}} of {{queue.label}}.",
     "next": "why"},
    {"id": "why", "kind": "question", "text": "What is it about?", "answers": [
        {"label": "An order", "next": "order"}, {"label": "Something else", "next": "bye"}]},
    {"id": "order", "kind": "field", "key": "order_no", "label": "Order number", "next": "bye"},
    {"id": "bye", "kind": "end", "text": "Thank you {{customer.name}} ({{call.number}})."},
]}


@pytest.fixture(scope="module")
def script_hub(tmp_path_factory):
    """A hub on a backend of its own: its contacts and queues' scripts are this module's alone."""
    tmp = tmp_path_factory.mktemp("scripts")
    b = prepared_backend(tmp)
    h = HubProcess(b, tmp / "hub.log").start()
    yield h
    h.stop()
    drop_backend(b)


def put(h, queue: str, definition, user: str = "admin", tenant: str = "demo") -> httpx.Response:
    return httpx.put(f"{h.url}/api/scripts/queue/{queue}", json={"definition": definition}, headers=auth(h, user, tenant))


def publish(h, script_id: int, user: str = "admin", tenant: str = "demo") -> httpx.Response:
    return httpx.post(f"{h.url}/api/scripts/{script_id}/publish", headers=auth(h, user, tenant))


def test_definitions_are_checked_and_each_problem_is_named(script_hub):
    h = script_hub
    assert put(h, "support", DEF, user="agent1").status_code == 403
    assert put(h, "support", DEF, user="supervisor").status_code == 403
    assert put(h, "nowhere", DEF).status_code == 404

    def bad(change, status: int = 400):
        d = copy.deepcopy(DEF)
        change(d)
        r = put(h, "support", d)
        assert r.status_code == status, r.text
        v = httpx.post(f"{h.url}/api/scripts/validate", json={"definition": d}, headers=auth(h, "admin"))
        assert v.status_code == status and v.json()["message"] == r.json()["message"]
        return r.json()

    def answer_to_x(d):
        d["steps"][1]["answers"][1]["next"] = "x"
    assert bad(answer_to_x)["message"] == "steps[1].answers[1].next: no step 'x'"

    def two_problems(d):
        d["steps"][2]["id"] = "hello"
        d["start"] = "nope"
    got = bad(two_problems)
    assert got["error"] == "bad-script"
    assert "steps[2].id: 'hello' is already the id of steps[0]" in got["problems"]
    assert "start: no step 'nope'" in got["problems"]

    def unreachable(d):
        d["steps"].append({"id": "orphan", "kind": "end"})
    assert bad(unreachable)["message"] == "steps[4]: 'orphan' cannot be reached from the start"

    def placeholder(d):
        d["steps"][0]["text"] = "Hello {{customer.__class__}}"
    assert bad(placeholder)["message"] == "steps[0].text: unknown placeholder {{customer.__class__}}"

    def long_text(d):
        d["steps"][0]["text"] = "x" * 4001
    assert bad(long_text)["message"].startswith("steps[0].text: Expected `str` of length <= 4000")

    def many_steps(d):
        d["steps"] += [{"id": f"e{i}", "kind": "end"} for i in range(200)]
    assert bad(many_steps)["message"].startswith("steps: Expected `array` of length <= 200")

    r = httpx.put(f"{h.url}/api/scripts/queue/support", content=b'{"definition": {' + b" " * 300_000 + b"}}",
                  headers=auth(h, "admin"))
    assert r.status_code == 413 and "256 KiB" in r.json()["message"]
    r = httpx.put(f"{h.url}/api/scripts/queue/support", content=b"{nope", headers=auth(h, "admin"))
    assert r.status_code == 400 and "JSON" in r.json()["message"]
    # Nothing invalid was kept: the queue still has no script.
    listed = httpx.get(f"{h.url}/api/scripts", headers=auth(h, "admin")).json()
    assert {q["queue"]: q["script_id"] for q in listed}["support"] is None

    r = put(h, "support", DEF)
    assert r.status_code == 201, r.text
    sid = r.json()["script_id"]
    assert publish(h, sid, user="supervisor").status_code == 403
    # Another tenant's admin: the script does not exist for it.
    assert httpx.get(f"{h.url}/api/scripts/{sid}", headers=auth(h, "admin", "acme")).status_code == 404
    assert publish(h, sid, tenant="acme").status_code == 404
    assert sid not in [q["script_id"] for q in httpx.get(f"{h.url}/api/scripts", headers=auth(h, "admin", "acme")).json()]
    assert httpx.get(f"{h.url}/api/scripts/abc", headers=auth(h, "admin")).status_code == 404


def test_a_call_in_progress_keeps_its_version_and_the_next_gets_the_new_one(script_hub):
    h = script_hub
    c = new_customer(h, first_name="Paula", last_name="Pop", numbers=[{"number": "030 7770002"}])
    r = put(h, "sales", DEF)
    assert r.status_code == 201, r.text
    sid = r.json()["script_id"]
    assert publish(h, sid).json()["version"] == 1
    only_available(h, "agent3")
    ws, _ = connect_as(h, "agent3")
    try:
        cid = create_contact(h, "sales", "+49 30 7770002")
        assert offered(ws)["contact"]["customer_id"] == c["id"]
        # Version 2 is published while the contact rings: it stays on version 1, pinned at the offer.
        v2 = copy.deepcopy(DEF)
        v2["title"] = "Sales intro, revised"
        v2["steps"][0]["text"] = "Hi {{customer.first_name}}!"
        assert put(h, "sales", v2).status_code == 200
        assert publish(h, sid).json()["version"] == 2
        frame = ws.expect(lambda m: m["type"] == "content-changed", what="content-changed")
        assert (frame["kind"], frame["id"], frame["action"]) == ("script", sid, "published")
        mine = httpx.get(f"{h.url}/api/scripts/mine", headers=auth(h, "agent3")).json()
        assert [(m["queue"], m["version"], m["title"]) for m in mine] == [("sales", 2, "Sales intro, revised")]

        url = f"{h.url}/api/contacts/{cid}/script"
        st = httpx.get(url, headers=auth(h, "agent3")).json()
        assert (st["version"], st["title"], st["step"]["id"]) == (1, "Sales intro", "hello")
        assert st["step"]["text"] == "Good day Paula, this is Agent 3 of Sales."
        assert ws.request({"type": "accept-offer", "contact_id": cid})["type"] == "ack"
        changed(ws, "connected")
        st = httpx.post(url, json={"step": "hello"}, headers=auth(h, "agent3")).json()
        assert st["step"]["answers"] == ["An order", "Something else"] and st["done"] == 1
        st = httpx.post(url, json={"step": "why", "answer": 0}, headers=auth(h, "agent3")).json()
        assert (st["step"]["kind"], st["step"]["key"]) == ("field", "order_no")
        st = httpx.post(url, json={"step": "order", "back": True}, headers=auth(h, "agent3")).json()
        assert st["step"]["id"] == "why"
        st = httpx.post(url, json={"step": "why", "answer": 0}, headers=auth(h, "agent3")).json()
        st = httpx.post(url, json={"step": "order", "value": "A-4711"}, headers=auth(h, "agent3")).json()
        assert st["step"] == {"id": "bye", "kind": "end", "text": "Thank you Paula Pop (+49 30 7770002)."}
        assert st["fields"] == {"order_no": "A-4711"} and st["remaining"] == 0
        # Saved as it goes: a fresh read (a reloaded page) is at the same place.
        again = httpx.get(url, headers=auth(h, "agent3")).json()
        assert again["step"]["id"] == "bye" and again["path"] == st["path"]
        assert ws.request({"type": "end-contact", "contact_id": cid})["type"] == "ack"
        ws.agent_event("agent3", "wrap-up")
        assert ws.request({"type": "complete-wrap-up", "contact_id": cid, "code": "sale", "notes": "ok"})["type"] == "ack"
        done = httpx.post(f"{url}/finish", headers=auth(h, "agent3")).json()
        assert done["finished_at"] is not None
        r = httpx.post(url, json={"step": "bye"}, headers=auth(h, "agent3"))
        assert r.status_code == 409 and r.json()["error"] == "finished"

        hist = httpx.get(f"{h.url}/api/customers/{c['id']}/history", headers=auth(h, "agent1")).json()
        s = hist[0]["script"]
        assert hist[0]["contact_id"] == cid and (s["script_id"], s["version"], s["title"]) == (sid, 1, "Sales intro")
        assert [(e["step"], e.get("label"), e.get("value"), bool(e.get("back"))) for e in s["path"]] == [
            ("hello", None, None, False), ("why", "An order", None, False), ("order", None, None, True),
            ("why", "An order", None, False), ("order", None, "A-4711", False)]
        assert s["finished_at"] == done["finished_at"]

        # The next contact gets version 2.
        ws.agent_event("agent3", "available")
        cid2 = create_contact(h, "sales", "030 7770002")
        offered(ws)
        st2 = httpx.get(f"{h.url}/api/contacts/{cid2}/script", headers=auth(h, "agent3")).json()
        assert (st2["version"], st2["step"]["text"]) == (2, "Hi Paula!")
        assert ws.request({"type": "reject-offer", "contact_id": cid2})["type"] == "ack"
        httpx.post(f"{h.url}/api/contacts/{cid2}/abandon", headers=auth(h, "admin"))
    finally:
        ws.close()


def test_moves_are_checked_and_other_agents_and_tenants_see_no_contact(script_hub):
    h = script_hub
    r = put(h, "support", DEF)
    assert r.status_code in (200, 201), r.text
    publish(h, r.json()["script_id"])
    only_available(h, "agent2")
    ws, _ = connect_as(h, "agent2")
    try:
        cid = create_contact(h, "support", "+49 30 1112223")
        offered(ws)
        url = f"{h.url}/api/contacts/{cid}/script"
        me = auth(h, "agent2")
        assert httpx.get(url, headers=me).json()["step"]["text"] == "Good day , this is Agent 2 of Support."
        cases = [
            ({"step": "why", "answer": 0}, 409, "the script is at 'hello'"),
            ({"step": "hello", "colour": 1}, 400, "colour"),
            ({"step": "hello", "answer": 99}, 400, "answer"),
            ({"step": "a b"}, 400, "step"),
            ({"step": "hello", "back": True}, 400, "back: already at the first step"),
        ]
        for body, status, words in cases:
            r = httpx.post(url, json=body, headers=me)
            assert r.status_code == status and words in r.json()["message"], (body, r.text)
        httpx.post(url, json={"step": "hello"}, headers=me)
        httpx.post(url, json={"step": "why", "answer": 0}, headers=me)
        r = httpx.post(url, json={"step": "order", "value": "x" * 2001}, headers=me)
        assert r.status_code == 400 and "value" in r.json()["message"]
        r = httpx.post(url, content=b'{"step": "order", "value": "' + b"x" * 9000 + b'"}', headers=me)
        assert r.status_code == 413
        r = httpx.post(url, json={"step": "order", "value": " "}, headers=me)
        assert r.status_code == 400 and "required" in r.json()["message"]

        # Another agent, another tenant: no such contact. A supervisor reads but does not move.
        for who, tenant in (("agent1", "demo"), ("agent2", "acme"), ("admin", "acme")):
            assert httpx.get(url, headers=auth(h, who, tenant)).status_code == 404
            assert httpx.post(url, json={"step": "order", "value": "1"}, headers=auth(h, who, tenant)).status_code == 404
        assert httpx.get(url, headers=auth(h, "supervisor")).json()["step"]["id"] == "order"
        assert httpx.post(url, json={"step": "order", "value": "1"}, headers=auth(h, "supervisor")).status_code == 404

        # A malformed frame on the socket gets an error; the connection goes on.
        err = ws.request({"type": "script-move", "contact_id": cid})
        assert err["type"] == "error"
        assert ws.request({"type": "reject-offer", "contact_id": cid})["type"] == "ack"
        httpx.post(f"{h.url}/api/contacts/{cid}/abandon", headers=auth(h, "admin"))
    finally:
        ws.close()


def test_a_contact_whose_queue_has_no_script_gets_none_not_an_error(script_hub):
    # Tenant acme has published no script: its agent's desktop asks, and is told there is none.
    h = script_hub
    for i in range(1, 6):
        force(h, f"agent{i}", "logged-out", tenant="acme")
    assert force(h, "agent2", "available", tenant="acme").status_code == 200
    ws, _ = connect_as(h, "agent2", tenant="acme")
    try:
        r = httpx.post(f"{h.url}/api/contacts", json={"queue": "support", "caller": "+49 30 1112299"},
                       headers=auth(h, "admin", "acme"))
        assert r.status_code == 201, r.text
        cid = r.json()["contact_id"]
        offered(ws)
        r = httpx.get(f"{h.url}/api/contacts/{cid}/script", headers=auth(h, "agent2", "acme"))
        assert r.status_code == 200 and r.json() == {"contact_id": cid, "none": True}, r.text
        # Moving in a script that does not exist is still refused.
        r = httpx.post(f"{h.url}/api/contacts/{cid}/script", json={"step": "hello"}, headers=auth(h, "agent2", "acme"))
        assert r.status_code == 404 and r.json()["error"] == "no-script", r.text
        httpx.post(f"{h.url}/api/contacts/{cid}/abandon", headers=auth(h, "admin", "acme"))
    finally:
        ws.close()
