"""Customers over REST, the screen pop with offers, and CRM connectors against a small HTTP server."""

from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx
import pytest

from tests.conftest import HubProcess, drop_backend, free_port, prepared_backend, set_queue_config
from tests.helpers import bearer, cached_login, connect_as, force
from tests.integration.test_contacts import changed, offered


@pytest.fixture(scope="module")
def crm_hub(tmp_path_factory):
    """A hub on a backend of its own: contacts and customers of other tests cannot interfere."""
    tmp = tmp_path_factory.mktemp("crm")
    b = prepared_backend(tmp)
    set_queue_config(b, "demo", "sales", ring_timeout=20)
    h = HubProcess(b, tmp / "hub.log").start()
    yield h
    h.stop()
    drop_backend(b)


def auth(h, user: str = "agent1", tenant: str = "demo") -> dict:
    return bearer(cached_login(h.url, user, tenant=tenant))


def new_customer(h, user: str = "agent1", tenant: str = "demo", **body: Any) -> dict:
    r = httpx.post(f"{h.url}/api/customers", json=body, headers=auth(h, user, tenant))
    assert r.status_code == 201, r.text
    return r.json()


def only_available(h, *usernames: str) -> None:
    for i in range(1, 6):
        force(h, f"agent{i}", "logged-out")
    for name in usernames:
        assert force(h, name, "available").status_code == 200


def create_contact(h, queue: str, caller: str) -> str:
    r = httpx.post(f"{h.url}/api/contacts", json={"queue": queue, "caller": caller}, headers=auth(h, "admin"))
    assert r.status_code == 201, r.text
    return r.json()["contact_id"]


def poll(fn, what: str, timeout: float = 10.0) -> Any:
    """Call `fn` until it returns something truthy (bounded)."""
    deadline = time.monotonic() + timeout
    while True:
        got = fn()
        if got:
            return got
        assert time.monotonic() < deadline, f"{what} did not happen within {timeout}s"
        time.sleep(0.05)  # polling with a deadline, not a synchronisation sleep


# ---------------------------------------------------------------- REST


def test_numbers_are_normalised_and_search_finds_by_name_and_number(crm_hub):
    h = crm_hub
    c = new_customer(h, first_name="Erika", last_name="Mustermann", company="Muster GmbH",
                     numbers=[{"number": "030 1234567", "label": "work"}],
                     addresses=[{"street": "Hauptstr. 1", "postcode": "10115", "city": "Berlin", "country": "DE"}],
                     fields={"Contract": "K-77"})
    assert c["numbers"] == [{"number": "+49301234567", "label": "work"}] and c["fields"] == {"Contract": "K-77"}
    assert c["addresses"][0]["city"] == "Berlin"
    for number in ("+49 30 1234567", "0049301234567", "030/123 45 67"):
        r = httpx.get(f"{h.url}/api/customers", params={"number": number}, headers=auth(h))
        assert [x["id"] for x in r.json()] == [c["id"]], (number, r.text)
    r = httpx.get(f"{h.url}/api/customers", params={"q": "muster erika"}, headers=auth(h, "supervisor"))
    assert c["id"] in [x["id"] for x in r.json()]
    r = httpx.get(f"{h.url}/api/customers", params={"q": "nobody-by-that-name"}, headers=auth(h))
    assert r.json() == []
    r = httpx.post(f"{h.url}/api/customers", json={"last_name": "X", "numbers": [{"number": "hello"}]}, headers=auth(h))
    assert r.status_code == 400 and "numbers[0].number" in r.json()["message"], r.text
    r = httpx.get(f"{h.url}/api/customers", params={"number": "abc"}, headers=auth(h))
    assert r.status_code == 400 and r.json()["error"] == "bad-number"


def test_edits_are_recorded_with_who_and_when(crm_hub):
    h = crm_hub
    c = new_customer(h, first_name="Max", last_name="Mayer", numbers=[{"number": "+49 40 5550001"}])
    before = time.time()
    r = httpx.patch(f"{h.url}/api/customers/{c['id']}", headers=auth(h, "agent2"),
                    json={"last_name": "Meyer", "fields": {"Tier": "gold"}, "numbers": [{"number": "040 5550002"}]})
    assert r.status_code == 200, r.text
    assert r.json()["last_name"] == "Meyer" and r.json()["numbers"] == [{"number": "+49405550002", "label": ""}]
    assert sorted(r.json()["changed"]) == ["fields.Tier", "last_name", "numbers"]
    r = httpx.patch(f"{h.url}/api/customers/{c['id']}", headers=auth(h, "supervisor"), json={"fields": {"Tier": None}})
    assert r.json()["fields"] == {}
    # The same values again change nothing and record nothing.
    r = httpx.patch(f"{h.url}/api/customers/{c['id']}", headers=auth(h, "agent2"), json={"last_name": "Meyer"})
    assert r.json()["changed"] == []
    changes = httpx.get(f"{h.url}/api/customers/{c['id']}/changes", headers=auth(h)).json()
    by_field = {(ch["field"], ch["by"]): ch for ch in changes}
    assert by_field[("last_name", "agent2")]["old"] == "Mayer" and by_field[("last_name", "agent2")]["new"] == "Meyer"
    assert by_field[("numbers", "agent2")] ["old"] == "+49405550001"
    assert by_field[("fields.Tier", "supervisor")]["old"] == "gold" and by_field[("fields.Tier", "supervisor")]["new"] is None
    assert by_field[("created", "agent1")]["new"] == "Max Mayer"
    assert all(ch["at"] >= before for ch in changes if ch["field"] != "created")
    assert len(changes) == 5


def test_another_tenants_customer_is_not_found(crm_hub):
    h = crm_hub
    theirs = new_customer(h, "agent1", "acme", last_name="Acme-only", numbers=[{"number": "+4989111222"}])
    for method, path, body in (
        ("GET", f"/api/customers/{theirs['id']}", None),
        ("PATCH", f"/api/customers/{theirs['id']}", {"last_name": "stolen"}),
        ("GET", f"/api/customers/{theirs['id']}/history", None),
        ("GET", f"/api/customers/{theirs['id']}/changes", None),
    ):
        r = httpx.request(method, h.url + path, json=body, headers=auth(h))
        assert r.status_code == 404, (method, path, r.text)
    assert httpx.get(f"{h.url}/api/customers", params={"q": "acme-only"}, headers=auth(h)).json() == []
    assert httpx.get(f"{h.url}/api/customers", params={"number": "+4989111222"}, headers=auth(h)).json() == []
    assert httpx.get(f"{h.url}/api/customers/{theirs['id']}", headers=auth(h, "agent1", "acme")).json()["last_name"] == "Acme-only"
    # Trainers are no agents: they do not see customers.
    assert httpx.get(f"{h.url}/api/customers", headers=auth(h, "trainer")).status_code == 403


def test_oversized_fields_get_a_400_naming_the_field(crm_hub):
    h = crm_hub
    cases = {
        "$.first_name": {"first_name": "x" * 101},
        "$.fields": {"last_name": "A", "fields": {"Note": "y" * 2001}},
        "$.numbers": {"last_name": "A", "numbers": [{"number": "+4930123"}] * 21},
        "$.email": {"last_name": "A", "email": "e" * 255},
    }
    for field, body in cases.items():
        r = httpx.post(f"{h.url}/api/customers", json=body, headers=auth(h))
        assert r.status_code == 400 and field in r.json()["message"], (field, r.text)
    c = new_customer(h, last_name="Short")
    r = httpx.patch(f"{h.url}/api/customers/{c['id']}", json={"company": "z" * 201}, headers=auth(h))
    assert r.status_code == 400 and "$.company" in r.json()["message"]
    r = httpx.post(f"{h.url}/api/customers", json={"fields": {}}, headers=auth(h))
    assert r.status_code == 400 and "needs a name" in r.json()["message"]


# ---------------------------------------------------------------- the screen pop


def test_a_known_caller_pops_with_the_offer_and_the_contact_lands_in_the_history(crm_hub):
    h = crm_hub
    c = new_customer(h, first_name="Paula", last_name="Pop", numbers=[{"number": "030 7770001"}])
    only_available(h, "agent3")
    ws, _ = connect_as(h, "agent3")
    try:
        cid = create_contact(h, "sales", "+49 30 7770001")
        offer = offered(ws)["contact"]
        assert offer["customer_id"] == c["id"] and [x["id"] for x in offer["customers"]] == [c["id"]]
        assert offer["customers"][0]["name"] == "Paula Pop" and offer["customers"][0]["numbers"] == ["+49307770001"]
        assert ws.request({"type": "accept-offer", "contact_id": cid})["type"] == "ack"
        changed(ws, "connected")
        assert ws.request({"type": "end-contact", "contact_id": cid})["type"] == "ack"
        ws.agent_event("agent3", "wrap-up")
        ack = ws.request({"type": "complete-wrap-up", "contact_id": cid, "code": "sale", "notes": "bought the pro plan"})
        assert ack["type"] == "ack", ack
        hist = httpx.get(f"{h.url}/api/customers/{c['id']}/history", headers=auth(h)).json()
        assert hist[0]["contact_id"] == cid and hist[0]["queue"] == "sales" and hist[0]["agent"] == "agent3"
        assert (hist[0]["outcome"], hist[0]["wrapup_code"], hist[0]["notes"]) == ("answered", "sale", "bought the pro plan")
        # The next call from the same number pops the last contact with it.
        ws.agent_event("agent3", "available")
        cid2 = create_contact(h, "sales", "030 7770001")
        again = offered(ws)["contact"]
        assert again["customers"][0]["last_contacts"][0]["contact_id"] == cid
        assert again["customers"][0]["last_contacts"][0]["notes"] == "bought the pro plan"
        assert ws.request({"type": "reject-offer", "contact_id": cid2})["type"] == "ack"
        httpx.post(f"{h.url}/api/contacts/{cid2}/abandon", headers=auth(h, "admin"))
    finally:
        ws.close()


def test_unknown_and_shared_numbers_pop_nothing_or_a_choice_and_the_agent_links(crm_hub):
    h = crm_hub
    a = new_customer(h, first_name="Anna", last_name="Haus", numbers=[{"number": "+49 30 8880001"}])
    b = new_customer(h, first_name="Bernd", last_name="Haus", numbers=[{"number": "030 8880001"}])
    only_available(h, "agent4")
    ws, _ = connect_as(h, "agent4")
    try:
        cid = create_contact(h, "sales", "+4930 999 0001")
        offer = offered(ws)["contact"]
        assert "customers" not in offer and "customer_id" not in offer
        assert ws.request({"type": "reject-offer", "contact_id": cid})["type"] == "ack"
        httpx.post(f"{h.url}/api/contacts/{cid}/abandon", headers=auth(h, "admin"))
        cid = create_contact(h, "sales", "+49308880001")
        offer = offered(ws)["contact"]
        assert sorted(x["id"] for x in offer["customers"]) == sorted([a["id"], b["id"]])
        assert "customer_id" not in offer
        # The agent picks Bernd; another agent may not link a contact that is not theirs.
        r = httpx.put(f"{h.url}/api/contacts/{cid}/customer", json={"customer_id": b["id"]}, headers=auth(h, "agent5"))
        assert r.status_code == 404
        r = httpx.put(f"{h.url}/api/contacts/{cid}/customer", json={"customer_id": 10**9}, headers=auth(h, "agent4"))
        assert r.status_code == 404 and "customer" in r.json()["message"]
        r = httpx.put(f"{h.url}/api/contacts/{cid}/customer", json={"customer_id": b["id"]}, headers=auth(h, "agent4"))
        assert r.status_code == 200, r.text
        assert ws.request({"type": "accept-offer", "contact_id": cid})["type"] == "ack"
        assert ws.request({"type": "end-contact", "contact_id": cid})["type"] == "ack"
        assert ws.request({"type": "complete-wrap-up", "contact_id": cid, "code": "no-sale"})["type"] == "ack"
        assert [x["contact_id"] for x in httpx.get(f"{h.url}/api/customers/{b['id']}/history", headers=auth(h)).json()] == [cid]
        assert httpx.get(f"{h.url}/api/customers/{a['id']}/history", headers=auth(h)).json() == []
    finally:
        ws.close()


# ---------------------------------------------------------------- CRM connectors


class FakeCrm:
    """A small HTTP server in a thread: answers lookups, fails the first webhook call, records all."""

    def __init__(self) -> None:
        self.requests: list[dict[str, Any]] = []
        self.hook_failures = 1
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def _answer(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0)).decode()
                fake.requests.append({"method": self.command, "path": self.path, "body": body,
                                      "headers": {k.lower(): v for k, v in self.headers.items()}})
                if self.path.startswith("/slow"):
                    time.sleep(4)  # a CRM that answers too late (the server's own delay, not a test wait)
                    self._json(200, {"customer": {"tier": "late"}})
                elif self.path.startswith("/lookup"):
                    self._json(200, {"customer": {"tier": "gold", "orders": [{"id": "A-1"}, {"id": "A-9"}]}})
                elif self.path.startswith("/hook"):
                    if fake.hook_failures > 0:
                        fake.hook_failures -= 1
                        self._json(500, {"error": "try later"})
                    else:
                        self._json(200, {"ok": True})
                else:
                    self._json(404, {})

            def _json(self, code: int, obj: Any) -> None:
                raw = json.dumps(obj).encode()
                self.send_response(code)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(raw)))
                self.end_headers()
                self.wfile.write(raw)

            do_GET = do_POST = _answer

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", free_port()), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def fake_crm():
    f = FakeCrm()
    yield f
    f.close()


def put_connector(h, body: dict) -> httpx.Response:
    return httpx.put(f"{h.url}/api/crm/connector", json=body, headers=auth(h, "admin"))


def test_lookup_is_mapped_into_the_pop_and_webhooks_are_retried_and_logged(crm_hub, fake_crm):
    h = crm_hub
    secret = "Bearer sk-test-0123456789wxyz"
    r = put_connector(h, {
        "lookup": {"url": fake_crm.url + "/lookup?phone={{ caller|urlencode }}", "method": "POST",
                   "headers": [{"name": "Authorization", "value": secret, "secret": True}],
                   "body": '{"phone": {{ caller|tojson }}, "queue": {{ contact.queue|tojson }}}',
                   "mapping": {"Tier": "response.customer.tier", "Last order": "response.customer.orders[-1].id"}},
        "webhooks": [{"events": ["offered", "wrapped-up"], "url": fake_crm.url + "/hook/{{ event }}",
                      "headers": [{"name": "X-Api-Key", "value": "hook-key-987654321", "secret": True}],
                      "backoff_seconds": 0.1, "attempts": 3}],
    })
    assert r.status_code == 200, r.text
    shown = r.json()
    assert shown["lookup"]["headers"][0]["value"] == "****wxyz" and "sk-test" not in r.text and "987654321" not in r.text
    # Saved again as shown (masked): the stored secrets stay.
    assert put_connector(h, shown).status_code == 200
    got = httpx.get(f"{h.url}/api/crm/connector", headers=auth(h, "admin"))
    assert got.json() == shown and "sk-test" not in got.text
    assert httpx.get(f"{h.url}/api/crm/connector", headers=auth(h, "agent1")).status_code == 403

    only_available(h, "agent5")
    ws, _ = connect_as(h, "agent5")
    try:
        cid = create_contact(h, "sales", "+49 30 1110001")
        offer = offered(ws)["contact"]
        assert offer["crm"] == {"Tier": "gold", "Last order": "A-9"}
        lookup = next(q for q in fake_crm.requests if q["path"].startswith("/lookup"))
        assert lookup["path"] == "/lookup?phone=%2B49301110001" and lookup["headers"]["authorization"] == secret
        assert json.loads(lookup["body"]) == {"phone": "+49301110001", "queue": "sales"}

        def delivered():
            rows = httpx.get(f"{h.url}/api/crm/deliveries", headers=auth(h, "admin")).json()
            return next((d for d in rows if d["contact_id"] == cid and d["event"] == "offered"
                         and d["status"] == "delivered"), None)

        d = poll(delivered, "the offered webhook's delivery")
        assert d["attempts"] == 2 and [a["status_code"] for a in d["log"]] == [500, 200]
        assert d["log"][0]["error"] == "HTTP 500" and d["url"] == fake_crm.url + "/hook/offered"
        hooks = [q for q in fake_crm.requests if q["path"] == "/hook/offered"]
        assert len(hooks) == 2 and hooks[1]["headers"]["x-api-key"] == "hook-key-987654321"
        payload = json.loads(hooks[1]["body"])
        assert payload["event"] == "offered" and payload["contact"]["id"] == cid and payload["agent_id"]

        assert ws.request({"type": "accept-offer", "contact_id": cid})["type"] == "ack"
        assert ws.request({"type": "end-contact", "contact_id": cid})["type"] == "ack"
        assert ws.request({"type": "complete-wrap-up", "contact_id": cid, "code": "sale", "notes": "n1"})["type"] == "ack"
        poll(lambda: [q for q in fake_crm.requests if q["path"] == "/hook/wrapped-up"], "the wrapped-up webhook")
        done = json.loads(next(q for q in fake_crm.requests if q["path"] == "/hook/wrapped-up")["body"])
        assert (done["wrapup_code"], done["notes"]) == ("sale", "n1")
        # Answered is not subscribed: nothing was sent for it.
        assert not [q for q in fake_crm.requests if q["path"] == "/hook/answered"]
    finally:
        ws.close()
        put_connector(h, {})


def test_a_slow_or_failing_crm_does_not_hold_up_the_contact(crm_hub, fake_crm):
    h = crm_hub
    dead = f"http://127.0.0.1:{free_port()}"
    only_available(h, "agent5")
    ws, _ = connect_as(h, "agent5")
    try:
        # Nobody listening, then a CRM slower than the pop's 1 s bound (its own timeout is 5 s).
        for url, timeout in ((dead + "/lookup", 0.5), (fake_crm.url + "/slow", 5.0)):
            assert put_connector(h, {"lookup": {"url": url, "timeout_seconds": timeout,
                                                "mapping": {"Tier": "response.customer.tier"}}}).status_code == 200
            started = time.monotonic()
            cid = create_contact(h, "sales", "+49 30 1110002")
            offer = offered(ws)["contact"]
            assert "crm" not in offer and time.monotonic() - started < 3.5, (url, offer)
            assert ws.request({"type": "reject-offer", "contact_id": cid})["type"] == "ack"
            httpx.post(f"{h.url}/api/contacts/{cid}/abandon", headers=auth(h, "admin"))
            ws.agent_event("agent5", "available")
        assert [q["path"] for q in fake_crm.requests] == ["/slow"]
    finally:
        ws.close()
        put_connector(h, {})


def test_connector_templates_reaching_internals_are_refused(crm_hub):
    h = crm_hub
    bad = [
        ({"lookup": {"url": "http://x/", "body": "{{ ''.__class__.__mro__ }}"}}, "lookup.body"),
        ({"lookup": {"url": "http://x/", "mapping": {"T": "response.__class__.__subclasses__()"}}}, "lookup.mapping.T"),
        ({"webhooks": [{"events": ["answered"], "url": "http://x/{{ contact|attr('__class__') }}"}]}, "webhooks[0].url"),
    ]
    for body, where in bad:
        r = put_connector(h, body)
        assert r.status_code == 400 and where in r.json()["message"] and "sandbox" in r.json()["message"], r.text
    r = put_connector(h, {"webhooks": [{"events": ["hung-up"], "url": "http://x/"}]})
    assert r.status_code == 400 and "$.webhooks[0].events[0]" in r.json()["message"]
    assert httpx.get(f"{h.url}/api/crm/connector", headers=auth(h, "admin")).json() == {}
