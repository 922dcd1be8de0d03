"""Queue data forms over real HTTP and the websocket: definitions (bad ones named by field), versions
(a contact in progress keeps its version), answers checked on the server, the wrap-up rule, tenant
isolation, oversized bodies, the CSV export, the customer's history; and queue settings changed live."""

from __future__ import annotations

import csv
import io
import time

import httpx
import pytest

from tests.conftest import HubProcess, drop_backend, prepared_backend
from tests.helpers import bearer, cached_login, connect_as, force
from tests.integration.test_contacts import changed, offered

FORM = {
    "title": "Order",
    "required_before_wrap_up": True,
    "fields": [
        {"key": "reason", "label": "Reason", "type": "select", "required": True, "choices": ["refund", "delivery"]},
        {"key": "order_no", "label": "Order number", "type": "text", "pattern": r"A-\d{4}", "max_length": 6},
        {"key": "items", "label": "Items", "type": "number", "min": 1, "max": 10},
        {"key": "callback", "label": "Callback", "type": "phone"},
    ],
}


@pytest.fixture(scope="module")
def forms_hub(tmp_path_factory):
    """A hub on a backend of its own: its forms and queue settings reach no other test."""
    tmp = tmp_path_factory.mktemp("forms")
    b = prepared_backend(tmp)
    h = HubProcess(b, tmp / "hub.log").start()
    yield h
    h.stop()
    drop_backend(b)


def auth(h, user: str = "admin", tenant: str = "demo") -> dict:
    return bearer(cached_login(h.url, user, tenant=tenant))


def only_available(h, *usernames: str) -> None:
    for i in range(1, 6):
        force(h, f"agent{i}", "logged-out")
    for name in usernames:
        assert force(h, name, "available").status_code == 200


def connected_contact(h, ws, agent: str, queue: str = "support", caller: str = "+4930555000") -> str:
    only_available(h, agent)
    r = httpx.post(f"{h.url}/api/contacts", json={"queue": queue, "caller": caller}, headers=auth(h))
    assert r.status_code == 201, r.text
    cid = r.json()["contact_id"]
    assert offered(ws)["contact"]["id"] == cid
    assert ws.request({"type": "accept-offer", "contact_id": cid})["type"] == "ack"
    changed(ws, "connected")
    return cid


def publish(h, queue: str, form: dict) -> dict:
    r = httpx.put(f"{h.url}/api/forms/{queue}", json=form, headers=auth(h))
    assert r.status_code == 200, r.text
    r = httpx.post(f"{h.url}/api/forms/{queue}/publish", headers=auth(h))
    assert r.status_code == 201, r.text
    return r.json()


def test_definitions_are_checked_and_named_and_only_admins_write_them(forms_hub):
    h = forms_hub
    bad = {**FORM, "fields": [*FORM["fields"][:2], {"key": "kind", "label": "Kind", "type": "select"}]}
    r = httpx.put(f"{h.url}/api/forms/support", json=bad, headers=auth(h))
    assert r.status_code == 400 and r.json()["message"] == "fields[2].choices: required for select", r.text
    for body, where in (
        ({**FORM, "fields": [{**FORM["fields"][1], "pattern": "(("}]}, "fields[0].pattern: not a valid regular"),
        ({**FORM, "fields": [{**FORM["fields"][0], "type": "colour"}]}, "fields[0].type: "),
        ({**FORM, "fields": [{**FORM["fields"][0], "key": "Has Space"}]}, "fields[0].key: "),
        ({**FORM, "fields": [{k: v for k, v in FORM["fields"][0].items() if k != "label"}]}, "fields[0].label: required"),
        ({**FORM, "colour": "red"}, "colour: unknown field"),
        ({**FORM, "fields": FORM["fields"] * 2}, "fields[4].key: 'reason' is used by another field"),
    ):
        r = httpx.put(f"{h.url}/api/forms/support", json=body, headers=auth(h))
        assert r.status_code == 400 and r.json()["message"].startswith(where), (where, r.text)
    r = httpx.put(f"{h.url}/api/forms/support", content=b"{nope", headers=auth(h))
    assert r.status_code == 400 and "JSON" in r.json()["message"]
    huge = {**FORM, "title": "x" * 70_000}
    r = httpx.put(f"{h.url}/api/forms/support", json=huge, headers=auth(h))
    assert r.status_code == 413 and "KiB" in r.json()["message"]
    assert httpx.put(f"{h.url}/api/forms/support", json=FORM, headers=auth(h, "supervisor")).status_code == 403
    assert httpx.put(f"{h.url}/api/forms/support", json=FORM, headers=auth(h, "agent1")).status_code == 403
    assert httpx.put(f"{h.url}/api/forms/nowhere", json=FORM, headers=auth(h)).status_code == 404
    assert httpx.post(f"{h.url}/api/forms/sales/publish", headers=auth(h)).status_code == 404  # nothing saved yet
    # Nothing invalid was stored.
    listed = {f["queue"]: f for f in httpx.get(f"{h.url}/api/forms", headers=auth(h, "supervisor")).json()}
    assert listed["support"]["definition"] is None and listed["support"]["versions"] == []


def test_a_contact_keeps_its_version_answers_are_checked_and_wrap_up_waits_for_required_fields(forms_hub):
    h = forms_hub
    ws, _ = connect_as(h, "agent1")
    board, _ = connect_as(h, "supervisor")
    other, _ = connect_as(h, "agent1", tenant="acme")
    try:
        v1 = publish(h, "support", FORM)
        assert v1["version"] == 1
        ws.expect(lambda m: m["type"] == "form-changed" and m["queue"] == "support" and m["version"] == 1)
        board.expect(lambda m: m["type"] == "form-changed" and m["version"] == 1)
        cid = connected_contact(h, ws, "agent1")
        got = httpx.get(f"{h.url}/api/forms/contact/{cid}", headers=auth(h, "agent1")).json()
        assert got["form"]["version"] == 1 and got["answer"] is None and got["queue"] == "support"

        # A new version while the call goes on: the desktop hears of it, the call keeps version 1.
        v2_form = {**FORM, "fields": [*FORM["fields"], {"key": "satisfied", "label": "Satisfied", "type": "boolean"}]}
        assert publish(h, "support", v2_form)["version"] == 2
        ws.expect(lambda m: m["type"] == "form-changed" and m["version"] == 2)
        got = httpx.get(f"{h.url}/api/forms/contact/{cid}", headers=auth(h, "agent1")).json()
        assert got["form"]["version"] == 1 and [f["key"] for f in got["form"]["definition"]["fields"]] == [
            "reason", "order_no", "items", "callback"]

        url = f"{h.url}/api/forms/contact/{cid}"
        a1 = auth(h, "agent1")
        r = httpx.put(url, json={"data": {"reason": "other", "order_no": "B-1", "items": 11, "callback": "12",
                                          "satisfied": True}}, headers=a1)
        assert r.status_code == 422, r.text
        assert r.json()["fields"] == {
            "reason": "'other' is not one of the choices", "order_no": "does not have the expected format",
            "items": "at most 10", "callback": "not a valid phone number", "satisfied": "not a field of this form"}
        r = httpx.put(url, json={"data": {"reason": "refund", "order_no": "A-12345"}}, headers=a1)
        assert r.status_code == 422 and r.json()["fields"] == {"order_no": "at most 6 characters"}
        r = httpx.put(url, json={"data": {"reason": "refund", "order_no": "x" * 70_000}}, headers=a1)
        assert r.status_code == 413 and "KiB" in r.json()["message"]
        r = httpx.put(url, json={"data": {"reason": "refund"}, "version": 2}, headers=a1)
        assert r.status_code == 409 and "version 1" in r.json()["message"]
        # Another tenant's agent and another agent of the tenant: not found; nothing of it shows.
        for who in (auth(h, "agent1", "acme"), auth(h, "agent2"), auth(h, "admin", "acme")):
            assert httpx.get(url, headers=who).status_code == 404
            assert httpx.put(url, json={"data": {"reason": "refund"}}, headers=who).status_code == 404
        assert not [m for m in other.seen if m.get("type") == "form-changed"]

        # A draft may leave the required field empty; wrap-up may not end until it is saved.
        r = httpx.put(url, json={"data": {"items": 2}, "draft": True, "version": 1}, headers=a1)
        assert r.status_code == 200 and r.json()["draft"] is True, r.text
        assert ws.request({"type": "end-contact", "contact_id": cid})["type"] == "ack"
        ws.agent_event("agent1", "wrap-up")
        err = ws.request({"type": "complete-wrap-up", "contact_id": cid, "code": "resolved"})
        assert err["type"] == "error" and err["code"] == "form-incomplete" and "reason" in err["message"], err
        # Nor does the "end wrap-up" button (going available) skip it.
        err = ws.request({"type": "set-state", "state": "available"})
        assert err["type"] == "error" and err["code"] == "form-incomplete", err
        r = httpx.put(url, json={"data": {"items": 2}}, headers=a1)
        assert r.status_code == 422 and r.json()["fields"] == {"reason": "required"}
        r = httpx.put(url, json={"data": {"reason": "refund", "order_no": "A-1234", "items": 2,
                                          "callback": "+49 30 1234567"}}, headers=a1)
        assert r.status_code == 200 and r.json()["data"]["callback"] == "+49301234567", r.text
        assert ws.request({"type": "complete-wrap-up", "contact_id": cid, "code": "resolved"})["type"] == "ack"
        ws.agent_event("agent1", "available")
        got = httpx.get(url, headers=auth(h, "supervisor")).json()
        assert (got["answer"]["version"], got["answer"]["filled_by"], got["answer"]["draft"]) == (1, "agent1", False)

        # The next contact gets version 2.
        cid2 = connected_contact(h, ws, "agent1", caller="+4930555001")
        got = httpx.get(f"{h.url}/api/forms/contact/{cid2}", headers=a1).json()
        assert got["form"]["version"] == 2
        r = httpx.put(f"{h.url}/api/forms/contact/{cid2}", headers=a1,
                      json={"data": {"reason": "delivery", "satisfied": True}, "version": 2})
        assert r.status_code == 200, r.text
        assert ws.request({"type": "end-contact", "contact_id": cid2})["type"] == "ack"
        assert ws.request({"type": "complete-wrap-up", "contact_id": cid2, "code": "resolved"})["type"] == "ack"

        # The contact shows with its form data in the customer's history.
        r = httpx.post(f"{h.url}/api/customers", json={"first_name": "Erika", "last_name": "Form"}, headers=a1)
        customer = r.json()["id"]
        r = httpx.put(f"{h.url}/api/contacts/{cid}/customer", json={"customer_id": customer}, headers=a1)
        assert r.status_code in (200, 204), r.text
        hist = httpx.get(f"{h.url}/api/customers/{customer}/history", headers=a1).json()
        form = next(x for x in hist if x["contact_id"] == cid)["form"]
        assert form["version"] == 1 and form["title"] == "Order"
        assert [(f["label"], f["value"]) for f in form["fields"]] == [
            ("Reason", "refund"), ("Order number", "A-1234"), ("Items", 2), ("Callback", "+49301234567")]

        # The export: one column per field of the versions, each contact with its agent.
        day = 86400
        params = {"queue": "support", "from": str(int(time.time() - day)), "to": str(int(time.time() + day))}
        assert httpx.get(f"{h.url}/api/reports/forms", params=params, headers=a1).status_code == 403
        r = httpx.get(f"{h.url}/api/reports/forms", params=params, headers=auth(h, "supervisor"))
        assert r.status_code == 200 and r.headers["content-type"].startswith("text/csv"), r.text
        rows = list(csv.DictReader(io.StringIO(r.text)))
        assert list(rows[0]) == ["contact_id", "agent", "filled_at", "version", "draft", "reason", "order_no", "items",
                                 "callback", "satisfied"]
        by_id = {row["contact_id"]: row for row in rows}
        assert (by_id[cid]["agent"], by_id[cid]["version"], by_id[cid]["reason"], by_id[cid]["order_no"],
                by_id[cid]["items"], by_id[cid]["satisfied"]) == ("agent1", "1", "refund", "A-1234", "2", "")
        assert (by_id[cid2]["version"], by_id[cid2]["reason"], by_id[cid2]["satisfied"]) == ("2", "delivery", "yes")
        acme = httpx.get(f"{h.url}/api/reports/forms", params=params, headers=auth(h, "supervisor", "acme"))
        assert acme.status_code == 200 and cid not in acme.text
        for bad, field in (({**params, "queue": "nowhere"}, "nowhere"), ({**params, "to": params["from"]}, "to"),
                           ({**params, "format": "xml"}, "format"), ({"queue": "support"}, "from")):
            r = httpx.get(f"{h.url}/api/reports/forms", params=bad, headers=auth(h, "supervisor"))
            assert r.status_code in (400, 404) and field in r.json()["message"], (bad, r.text)
    finally:
        httpx.post(f"{h.url}/api/forms/support/withdraw", headers=auth(h))
        for w in (ws, board, other):
            w.close()


def test_queue_settings_change_live_for_desktops_and_the_router(forms_hub):
    h = forms_hub
    ws, _ = connect_as(h, "agent3")
    board, _ = connect_as(h, "supervisor")
    try:
        url = f"{h.url}/api/queues/sales"
        assert httpx.patch(url, json={"label": "x"}, headers=auth(h, "supervisor")).status_code == 403
        assert httpx.patch(f"{h.url}/api/queues/nowhere", json={"label": "x"}, headers=auth(h)).status_code == 404
        assert httpx.patch(url, json={"label": "x"}, headers=auth(h, "admin", "acme")).status_code in (200, 404)
        for body, field in (({"strategy": "loudest"}, "strategy"), ({"wrap_up_seconds": -1}, "wrap_up_seconds"),
                            ({"label": ""}, "label"), ({"colour": "red"}, "colour")):
            r = httpx.patch(url, json=body, headers=auth(h))
            assert r.status_code in (400, 422) and field in r.json()["message"], (body, r.text)
        r = httpx.patch(url, json={"label": "Sales (live)", "wrap_up_seconds": 7}, headers=auth(h))
        assert r.status_code == 200 and r.json()["label"] == "Sales (live)", r.text
        for w in (ws, board):
            m = w.expect(lambda m: m["type"] == "queue-changed" and m["queue"]["name"] == "sales")
            assert (m["queue"]["label"], m["queue"]["wrap_up_seconds"]) == ("Sales (live)", 7)
        ref = httpx.get(f"{h.url}/api/reference", headers=auth(h, "agent3")).json()
        assert {"name": "sales", "label": "Sales (live)"} in ref["queues"]
        # The router uses the new wrap-up time for the next contact, without a restart.
        cid = connected_contact(h, ws, "agent3", queue="sales", caller="+4930555002")
        assert ws.request({"type": "end-contact", "contact_id": cid})["type"] == "ack"
        wrap = ws.agent_event("agent3", "wrap-up")
        assert 6 <= wrap["agent"]["wrap_up_until"] - wrap["agent"]["since"] <= 8
        assert ws.request({"type": "complete-wrap-up", "contact_id": cid, "code": "sale"})["type"] == "ack"
    finally:
        httpx.patch(f"{h.url}/api/queues/sales", json={"label": "Sales", "wrap_up_seconds": 20}, headers=auth(h))
        ws.close()
        board.close()


def refused(h, cid: str, timeout: float = 10.0) -> tuple[str, str | None]:
    """The outcome and end reason of a contact's record, once it is written."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        r = httpx.get(f"{h.url}/api/contacts/{cid}", headers=auth(h))
        if r.status_code == 200 and r.json()["outcome"]:
            return r.json()["outcome"], (r.json()["data"] or {}).get("reason")
        time.sleep(0.05)  # polling the store for the record, with a deadline
    raise AssertionError(f"no record of {cid} within {timeout}s")


def test_routing_settings_change_live_and_bad_ones_are_named(forms_hub):
    h = forms_hub
    for i in range(1, 6):
        force(h, f"agent{i}", "logged-out")
    url = f"{h.url}/api/queues/sales"
    try:
        for body, field in (({"routing": {"colour": 1}}, "routing.colour"),
                            ({"routing": {"overflow": "nowhere"}}, "routing.overflow"),
                            ({"routing": {"max_length": -2}}, "max_length"),
                            ({"routing": {"max_wait": [1]}}, "routing.max_wait")):
            r = httpx.patch(url, json=body, headers=auth(h))
            assert r.status_code == 400 and field in r.json()["message"], (body, r.text)
        # At most one contact waiting in sales from now on, without a restart: the second is refused.
        r = httpx.patch(url, json={"routing": {"max_length": 1, "join_when_empty": "allow"}}, headers=auth(h))
        assert r.status_code == 200 and r.json()["routing"]["max_length"] == 1, r.text
        first = httpx.post(f"{h.url}/api/contacts", json={"queue": "sales", "caller": "+4930555011"}, headers=auth(h))
        assert first.status_code == 201, first.text
        second = httpx.post(f"{h.url}/api/contacts", json={"queue": "sales", "caller": "+4930555012"}, headers=auth(h))
        assert second.status_code == 201, second.text
        assert refused(h, second.json()["contact_id"]) == ("rejected", "queue-full")
        httpx.post(f"{h.url}/api/contacts/{first.json()['contact_id']}/abandon", headers=auth(h))
        # A null takes the setting back to its default: the queue is open again.
        r = httpx.patch(url, json={"routing": {"max_length": None, "join_when_empty": None}}, headers=auth(h))
        assert r.status_code == 200 and "max_length" not in r.json()["routing"], r.text
        again = [httpx.post(f"{h.url}/api/contacts", json={"queue": "sales", "caller": f"+493055502{i}"},
                            headers=auth(h)) for i in range(2)]
        assert [x.status_code for x in again] == [201, 201], [x.text for x in again]
        for x in again:  # both waited (a refused one could not be abandoned)
            httpx.post(f"{h.url}/api/contacts/{x.json()['contact_id']}/abandon", headers=auth(h))
            assert refused(h, x.json()["contact_id"])[0] == "abandoned"
    finally:
        httpx.patch(url, json={"routing": {"max_length": None, "join_when_empty": None}}, headers=auth(h))
