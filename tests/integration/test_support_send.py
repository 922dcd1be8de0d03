"""Sending a support link by e-mail (to a real SMTP server, aiosmtpd, with a login) and by SMS (to a
small HTTP gateway): the tenant's sender settings with their secrets masked, the link that arrives
opening the session, and bad addresses, numbers and settings refused with a reason."""

from __future__ import annotations

import email
import json
import re
import secrets
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx
import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult

from tests.conftest import free_port
from tests.helpers import bearer, connect_as, login
from tests.integration.test_support import changed, guest

USER, PASSWORD = "unidesk", "mail-" + secrets.token_hex(8)
GATEWAY_KEY = "key-" + secrets.token_hex(8)


class Mailbox:
    """An SMTP server in a thread (aiosmtpd) that takes AUTH with one user and keeps what it gets."""

    def __init__(self) -> None:
        self.messages: list[Any] = []
        box = self

        class Handler:
            async def handle_DATA(self, server, session, envelope):  # type: ignore[no-untyped-def]
                box.messages.append(envelope)
                return "250 OK"

        def check(server, session, envelope, mechanism, auth_data):  # type: ignore[no-untyped-def]
            ok = auth_data.login == USER.encode() and auth_data.password == PASSWORD.encode()
            return AuthResult(success=ok)

        self.port = free_port()
        self.controller = Controller(Handler(), hostname="127.0.0.1", port=self.port, authenticator=check,
                                     auth_require_tls=False, auth_required=True)
        self.controller.start()

    def close(self) -> None:
        self.controller.stop()


class Gateway:
    """An HTTP SMS gateway in a thread: 200 for the right key, 401 otherwise; keeps every request."""

    def __init__(self) -> None:
        self.requests: list[dict[str, Any]] = []
        gw = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0)).decode()
                gw.requests.append({"path": self.path, "body": body,
                                    "headers": {k.lower(): v for k, v in self.headers.items()}})
                self.send_response(200 if self.headers.get("X-Api-Key") == GATEWAY_KEY else 401)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", free_port()), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def mailbox():
    m = Mailbox()
    yield m
    m.close()


@pytest.fixture
def gateway():
    g = Gateway()
    yield g
    g.close()


def put_sender(hub, tokens, body: dict) -> httpx.Response:
    return httpx.put(f"{hub.url}/api/support-sender", json=body, headers=bearer(tokens), timeout=10)


def send(hub, tokens, sid: str, body: dict) -> httpx.Response:
    return httpx.post(f"{hub.url}/api/support-sessions/{sid}/send", json=body, headers=bearer(tokens), timeout=20)


def test_the_link_goes_out_by_email_and_sms_and_bad_input_is_refused(hub, mailbox, gateway):
    admin, acme_admin = login(hub.url, "admin"), login(hub.url, "admin", tenant="acme")
    agent, tokens = connect_as(hub, "agent2")
    r = httpx.post(f"{hub.url}/api/support-sessions", headers=bearer(tokens), timeout=10)
    sid = r.json()["id"]

    # Nothing configured (the hub is shared: whatever an earlier test set is cleared): a clear refusal.
    assert put_sender(hub, admin, {}).status_code == 200
    r = send(hub, tokens, sid, {"email": "erika@example.com"})
    assert r.status_code == 409 and "no e-mail sender" in r.json()["message"], r.text

    # Settings: admins only, bad ones refused, secrets shown back masked and kept when sent back masked.
    smtp = {"host": "127.0.0.1", "port": mailbox.port, "security": "none", "username": USER, "password": PASSWORD,
            "from_addr": "support@demo.example"}
    sms = {"url": f"{gateway.url}/send", "headers": [{"name": "X-Api-Key", "value": GATEWAY_KEY, "secret": True}],
           "body": '{"to": {{ to|tojson }}, "message": {{ text|tojson }}}'}
    assert put_sender(hub, tokens, {"smtp": smtp}).status_code == 403
    for bad, words in [
        ({"smtp": {**smtp, "from_addr": "not an address"}}, "smtp.from_addr"),
        ({"sms": {**sms, "url": "ftp://x"}}, "not an http"),
        ({"sms": {**sms, "body": "{{ ''.__class__ }}"}}, "sandbox"),
        ({"sms": {**sms, "headers": [{"name": "X-Api-Key", "value": "****abcd", "secret": True}]}}, "no stored secret"),
    ]:
        r = put_sender(hub, admin, bad)
        assert r.status_code == 422 and words in r.json()["message"], (bad, r.text)
    r = put_sender(hub, admin, {"smtp": smtp, "sms": sms})
    assert r.status_code == 200, r.text
    shown = httpx.get(f"{hub.url}/api/support-sender", headers=bearer(admin), timeout=10).json()
    assert shown["smtp"]["password"] == "****" + PASSWORD[-4:] and PASSWORD not in json.dumps(shown)
    assert shown["sms"]["headers"][0]["value"] == "****" + GATEWAY_KEY[-4:] and GATEWAY_KEY not in json.dumps(shown)
    assert put_sender(hub, admin, shown).status_code == 200  # sent back masked: the secrets are kept
    assert httpx.get(f"{hub.url}/api/support-sender", headers=bearer(acme_admin), timeout=10).json() == {}

    # Bad addresses and numbers: refused, nothing sent.
    for body, code, words in [
        ({"email": "erika@"}, "bad-address", "not an e-mail address"),
        ({"email": "erika example.com"}, "bad-address", "not an e-mail address"),
        ({"sms": "12"}, "bad-number", "phone number"),
        ({"sms": "call me"}, "bad-number", "phone number"),
        ({"email": "a@example.com", "sms": "+4930123456"}, "bad-request", "either"),
    ]:
        r = send(hub, tokens, sid, body)
        assert r.status_code == 422 and r.json()["error"] == code and words in r.json()["message"], (body, r.text)
    assert mailbox.messages == [] and gateway.requests == []
    other_agent = login(hub.url, "agent3")
    assert send(hub, other_agent, sid, {"email": "erika@example.com"}).status_code == 404

    # E-mail: the message arrives (the stored password logged in), and its link opens the session.
    r = send(hub, tokens, sid, {"email": "Erika@Example.com"})
    assert r.status_code == 200 and r.json() == {"sent": "email", "to": "Erika@example.com"}, r.text
    (envelope,) = mailbox.messages
    assert envelope.rcpt_tos == ["Erika@example.com"] and envelope.mail_from == "support@demo.example"
    mail = email.message_from_bytes(envelope.content)
    assert mail["Subject"] == "Video support with Demo Contact Center"
    link = re.search(r"(http\S+/support/\S+#t=\S+)", mail.get_payload(decode=True).decode())[1]
    assert link.startswith(f"{hub.url}/support/{sid}#t=")
    ws, welcome = guest(hub, link.split("#t=")[1], secrets.token_hex(16))
    assert welcome["type"] == "welcome", welcome
    assert ws.request({"type": "support-join", "session_id": sid, "name": "Erika"})["type"] == "ack"
    agent.expect(changed("lobby"))
    ws.close()

    # SMS: a national number read with the tenant's region, the templated body, the secret header.
    r = send(hub, tokens, sid, {"sms": "030 1234567"})
    assert r.status_code == 200 and r.json() == {"sent": "sms", "to": "+49301234567"}, r.text
    (req,) = gateway.requests
    body = json.loads(req["body"])
    assert req["path"] == "/send" and req["headers"]["x-api-key"] == GATEWAY_KEY
    assert body["to"] == "+49301234567" and f"/support/{sid}#t=" in body["message"]

    # A gateway that refuses: a clear error, the session goes on.
    put_sender(hub, admin, {"smtp": smtp, "sms": {**sms, "headers": [{"name": "X-Api-Key", "value": "wrong"}]}})
    r = send(hub, tokens, sid, {"sms": "+4930123456"})
    assert r.status_code == 502 and "answered 401" in r.json()["message"], r.text
    assert send(hub, tokens, sid, {"email": "erika@example.com"}).status_code == 200
    # Ended (the agent's desktop has no session left open), and then nothing more is sent for it.
    assert agent.request({"type": "support-end", "session_id": sid})["type"] == "ack"
    r = send(hub, tokens, sid, {"email": "erika@example.com"})
    assert r.status_code == 404 and "no open support session" in r.json()["message"], r.text
    agent.close()
