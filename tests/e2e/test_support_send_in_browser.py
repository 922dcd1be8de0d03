"""The desktop's video-support card sends the customer's link by e-mail through the tenant's SMTP
server (a real aiosmtpd server) and says plainly when the address is bad."""

from __future__ import annotations

import email
import re

import httpx
from playwright.sync_api import expect

from tests.e2e.test_desktop_and_board import log_in
from tests.helpers import bearer, cached_login, connect_as
from tests.integration.test_support_send import PASSWORD, USER, mailbox  # noqa: F401  (a fixture)


def test_the_agent_sends_the_link_by_email_from_the_card(hub, browser, mailbox):  # noqa: F811
    admin = cached_login(hub.url, "admin")
    r = httpx.put(f"{hub.url}/api/support-sender", headers=bearer(admin), timeout=10, json={"smtp": {
        "host": "127.0.0.1", "port": mailbox.port, "security": "none", "username": USER, "password": PASSWORD,
        "from_addr": "support@demo.example"}})
    assert r.status_code == 200, r.text
    ctx = browser.new_context()
    errors: list[str] = []
    sid = ""
    try:
        page = ctx.new_page()
        page.on("pageerror", lambda e: errors.append(str(e)))
        log_in(page, hub, "agent5")
        expect(page.locator("#conn")).to_have_text("Connected")
        page.click("#vs-start")
        expect(page.locator("#vs-link")).to_have_value(re.compile(r"/support/"))
        sid = page.locator("#vs-link").input_value().split("/support/")[1].split("#")[0]
        expect(page.locator("#vs-send")).to_be_visible()

        page.fill("#vs-send-to", "erika@")
        page.click("#vs-send-email")
        status = page.locator("#vs-send-status")
        expect(status).to_have_attribute("data-state", "failed")
        expect(status).to_contain_text("not an e-mail address")

        page.fill("#vs-send-to", "erika@example.com")
        page.click("#vs-send-email")
        expect(status).to_have_attribute("data-state", "sent")
        expect(status).to_contain_text("Sent by e-mail to erika@example.com")
        (envelope,) = mailbox.messages
        text = email.message_from_bytes(envelope.content).get_payload(decode=True).decode()
        assert envelope.rcpt_tos == ["erika@example.com"] and f"/support/{sid}#t=" in text
        assert not errors, errors
    finally:
        ctx.close()
        # The tenant's sender goes again: the hub is shared with later tests.
        httpx.put(f"{hub.url}/api/support-sender", headers=bearer(admin), timeout=10, json={})
        if sid:  # the agent's desktop keeps no session open for later tests
            ws, _ = connect_as(hub, "agent5")
            assert ws.request({"type": "support-end", "session_id": sid})["type"] == "ack"
            ws.close()
