"""A contact created for the demo reaches the agent's desktop in Chromium; the board's queue panel follows."""

import time

import httpx
import pytest
from playwright.sync_api import expect

from tests.conftest import HubProcess, drop_backend, prepared_backend
from tests.e2e.test_desktop_and_board import log_in
from tests.helpers import bearer, cached_login, force


@pytest.fixture(scope="module")
def acd_hub(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("acd-e2e")
    b = prepared_backend(tmp)
    h = HubProcess(b, tmp / "hub.log").start()
    yield h
    h.stop()
    drop_backend(b)


def test_offer_accept_end_and_wrap_up_in_the_desktop_with_the_board_following(acd_hub, browser):
    h = acd_hub
    for i in range(1, 6):
        force(h, f"agent{i}", "logged-out")
    agent_ctx, sup_ctx = browser.new_context(), browser.new_context()
    try:
        agent = agent_ctx.new_page()
        log_in(agent, h, "agent2")
        expect(agent.locator("#conn")).to_have_text("Connected")
        sup = sup_ctx.new_page()
        log_in(sup, h, "supervisor")
        expect(sup.locator("#conn")).to_have_text("Live")
        agent.click("#go-available")
        expect(agent.locator("#state-label")).to_have_text("Available")

        r = httpx.post(
            f"{h.url}/api/contacts",
            json={"queue": "support", "caller": "+4930555123", "caller_name": "Erika Muster", "data": {"Order": "A-1001"}},
            headers=bearer(cached_login(h.url, "admin")),
        )
        assert r.status_code == 201, r.text
        box = agent.locator("#contact")
        expect(box).to_be_visible()
        expect(box).to_have_attribute("data-status", "ringing")
        expect(agent.locator("#contact-fields dd[data-field=Caller]")).to_have_text("+4930555123")
        expect(agent.locator("#contact-fields dd[data-field=Name]")).to_have_text("Erika Muster")
        expect(agent.locator("#contact-fields dd[data-field=Order]")).to_have_text("A-1001")
        expect(agent.locator("#state-label")).to_have_text("Ringing")
        row = sup.locator("#agents tr[data-username='agent2']")
        expect(row.locator("td.state")).to_have_text("Ringing")
        support = sup.locator("#queue-panel tr[data-queue='support']")
        expect(support.locator("td.offered")).to_have_text("1")

        agent.click("#accept")
        expect(box).to_have_attribute("data-status", "connected")
        expect(agent.locator("#state-label")).to_have_text("On call")
        expect(row.locator("td.state")).to_have_text("On call")
        expect(support.locator("td.answered")).to_have_text("1")

        agent.click("#end-contact")
        expect(box).to_have_attribute("data-status", "wrap-up")
        expect(agent.locator("#state-label")).to_have_text("Wrap-up")
        expect(row.locator("td.state")).to_have_text("Wrap-up")
        agent.select_option("#wrap-up-form select", "escalated")
        agent.fill("#wrap-up-form textarea", "needs second level")
        agent.click("#wrap-up-form button[type=submit]")
        expect(box).to_be_hidden()
        expect(agent.locator("#state-label")).to_have_text("Available")
        expect(row.locator("td.state")).to_have_text("Available")
        expect(support.locator("td.sl")).to_have_text("100%")
        expect(row.locator("td.answered")).to_have_text("1")
        expect(row.locator("td.missed")).to_have_text("0")
        cid = r.json()["contact_id"]
        rec = httpx.get(f"{h.url}/api/contacts/{cid}", headers=bearer(cached_login(h.url, "supervisor"))).json()
        assert (rec["outcome"], rec["wrapup_code"], rec["notes"]) == ("answered", "escalated", "needs second level")
    finally:
        agent_ctx.close()
        sup_ctx.close()


def test_reject_in_the_desktop_hands_the_contact_on(acd_hub, browser):
    h = acd_hub
    for i in range(1, 6):
        force(h, f"agent{i}", "logged-out")
    ctx = browser.new_context()
    try:
        page = ctx.new_page()
        log_in(page, h, "agent1")
        expect(page.locator("#conn")).to_have_text("Connected")  # a click before the snapshot goes nowhere
        page.click("#go-available")
        expect(page.locator("#state-label")).to_have_text("Available")
        r = httpx.post(f"{h.url}/api/contacts", json={"queue": "support", "caller": "+4930777"},
                       headers=bearer(cached_login(h.url, "admin")))
        expect(page.locator("#contact")).to_have_attribute("data-status", "ringing")
        page.click("#reject")
        expect(page.locator("#contact")).to_be_hidden()
        expect(page.locator("#state-label")).to_have_text("Available")
        # Nobody else is available: the contact waits again (published within a second).
        sup = cached_login(h.url, "supervisor")
        deadline = time.monotonic() + 5
        waiting = None
        while time.monotonic() < deadline and waiting != 1:
            stats = {q["queue"]: q for q in httpx.get(f"{h.url}/api/queue-stats", headers=bearer(sup)).json()}
            waiting = stats["support"]["waiting"]
            time.sleep(0.1)  # polling the published figures
        assert waiting == 1
        httpx.post(f"{h.url}/api/contacts/{r.json()['contact_id']}/abandon", headers=bearer(cached_login(h.url, "admin")))
    finally:
        ctx.close()
