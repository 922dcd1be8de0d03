"""Queue data forms in Chromium: an admin publishes a form on the /forms page while an agent is on a call;
the agent's desktop shows it without a reload, checks it (in the page and on the server), saves it, and
wrap-up waits for it; the customer's next call shows the contact with its form data. A queue's new label
reaches an open desktop and the board without a reload."""

from __future__ import annotations

import httpx
import pytest
from playwright.sync_api import expect

from tests.conftest import HubProcess, drop_backend, prepared_backend
from tests.e2e.test_desktop_and_board import log_in
from tests.helpers import bearer, cached_login, force


@pytest.fixture(scope="module")
def forms_hub(tmp_path_factory):
    # A hub of its own: its forms, queue labels and routed contacts reach no other test.
    tmp = tmp_path_factory.mktemp("forms-e2e")
    b = prepared_backend(tmp)
    h = HubProcess(b, tmp / "hub.log").start()
    yield h
    h.stop()
    drop_backend(b)


def auth(h, user: str = "admin") -> dict[str, str]:
    return bearer(cached_login(h.url, user))


def contact(h, caller: str) -> str:
    r = httpx.post(f"{h.url}/api/contacts", json={"queue": "support", "caller": caller}, headers=auth(h))
    assert r.status_code == 201, r.text
    return r.json()["contact_id"]


def agent_page(h, browser, errors: list[str]):
    for i in range(1, 6):
        force(h, f"agent{i}", "logged-out")
    ctx = browser.new_context()
    page = ctx.new_page()
    page.on("pageerror", lambda e: errors.append(str(e)))
    log_in(page, h, "agent2")
    expect(page.locator("#conn")).to_have_text("Connected")
    page.click("#go-available")
    expect(page.locator("#state-label")).to_have_text("Available")
    return ctx, page


def admin_page(h, browser, errors: list[str]):
    ctx = browser.new_context()
    page = ctx.new_page()
    page.on("pageerror", lambda e: errors.append(str(e)))
    log_in(page, h, "admin")
    expect(page).to_have_url(f"{h.url}/board")
    page.goto(f"{h.url}/forms")
    expect(page.locator("#admin")).to_be_visible()
    page.click("#queue-list button[data-queue=support]")
    expect(page.locator("#editor")).to_have_attribute("data-queue", "support")
    return ctx, page


def fill_row(row, key: str, label: str, type_: str, required: bool = False, choices: str = "", pattern: str = ""):
    row.locator("[name=key]").fill(key)
    row.locator("[name=label]").fill(label)
    row.locator("[name=type]").select_option(type_)
    if required:
        row.locator("[name=required]").check()
    row.locator("[name=choices]").fill(choices)
    row.locator("[name=pattern]").fill(pattern)


def test_a_form_published_during_a_call_is_filled_checked_saved_and_kept_with_the_contact(forms_hub, browser):
    h = forms_hub
    errors: list[str] = []
    r = httpx.post(f"{h.url}/api/customers", headers=auth(h, "agent2"), json={
        "first_name": "Frieda", "last_name": "Formular", "numbers": [{"number": "030 5550177"}]})
    customer = r.json()["id"]
    agent_ctx, agent = agent_page(h, browser, errors)
    admin_ctx, admin = admin_page(h, browser, errors)
    try:
        cid = contact(h, "+49 30 5550177")
        expect(agent.locator("#contact")).to_have_attribute("data-status", "ringing")
        agent.click("#accept")
        expect(agent.locator("#contact")).to_have_attribute("data-status", "connected")
        expect(agent.locator("#form-card")).to_be_hidden()  # the queue has no form yet
        # What the page had before: gone if it reloaded. A script listens for the form as a module would.
        agent.evaluate("""() => { window.__same_page = true;
            document.addEventListener('unidesk-form-ready', (e) => { window.__ready = e.detail; }); }""")

        # The admin writes the form; a select without choices is refused with the field named.
        admin.fill("#form-edit [name=title]", "Complaint")
        admin.check("#form-edit [name=required_before_wrap_up]")
        fill_row(admin.locator("#field-rows .field-row").nth(0), "reason", "Reason", "select", required=True)
        admin.click("#add-field")
        fill_row(admin.locator("#field-rows .field-row").nth(1), "order_no", "Order number", "text", pattern=r"A-\d{4}")
        admin.click("#add-field")
        fill_row(admin.locator("#field-rows .field-row").nth(2), "callback", "Callback number", "phone")
        admin.click("#publish")
        expect(admin.locator("#form-error")).to_have_text("fields[0].choices: required for select")
        admin.locator("#field-rows .field-row").nth(0).locator("[name=choices]").fill("refund, delivery")
        admin.click("#publish")
        expect(admin.locator("#form-state")).to_have_text("Published: version 1 of 1")
        expect(admin.locator("#form-error")).to_have_text("")

        # The agent's desktop shows it at once, without a reload.
        card = agent.locator("#form-card")
        expect(card).to_be_visible(timeout=5000)
        expect(card).to_have_attribute("data-version", "1")
        expect(card).to_have_attribute("data-contact-id", cid)
        assert agent.evaluate("() => window.__same_page") is True
        ready = agent.evaluate("() => window.__ready")
        assert ready["contactId"] == cid and ready["version"] == 1
        assert [f["key"] for f in ready["fields"]] == ["reason", "order_no", "callback"]
        assert ready["fields"][0]["choices"] == ["refund", "delivery"]

        # Checked in the page: the required choice and the order number's format.
        assert agent.evaluate("() => window.unideskForm.set('order_no', 'B-1')") is True
        agent.click("#form-card button[value=save]")
        expect(agent.locator("[data-error-for=reason]")).to_have_text("required")
        expect(agent.locator("[data-error-for=order_no]")).to_have_text("does not have the expected format")
        expect(agent.locator("#form-status")).to_have_text("Check the marked fields")
        # Checked on the server: the page cannot tell that this number does not exist.
        agent.select_option("#form-reason", "refund")
        agent.fill("#form-order_no", "A-1234")
        agent.fill("#form-callback", "123")
        agent.click("#form-card button[value=save]")
        expect(agent.locator("[data-error-for=callback]")).to_have_text("not a valid phone number")
        expect(agent.locator("[data-error-for=reason]")).to_have_text("")
        assert agent.evaluate("() => window.unideskForm.get('order_no')") == "A-1234"

        # A draft leaves the field open, and wrap-up cannot end until the form is saved.
        agent.fill("#form-callback", "")
        agent.evaluate("() => window.unideskForm.set('reason', '')")
        agent.click("#form-card button[value=draft]")
        expect(agent.locator("#form-status")).to_have_text("Draft saved")
        agent.click("#end-contact")
        expect(agent.locator("#contact")).to_have_attribute("data-status", "wrap-up")
        expect(card).to_be_visible()
        agent.select_option("#wrap-up-form select", "resolved")
        agent.click("#wrap-up-form button[type=submit]")
        expect(agent.locator("#toast")).to_contain_text("form: save the required fields before finishing: reason")
        expect(agent.locator("#contact")).to_have_attribute("data-status", "wrap-up")
        agent.select_option("#form-reason", "refund")
        agent.fill("#form-callback", "+49 30 1234567")
        agent.click("#form-card button[value=save]")
        expect(agent.locator("#form-status")).to_have_text("Saved")
        agent.select_option("#wrap-up-form select", "resolved")
        agent.click("#wrap-up-form button[type=submit]")
        expect(agent.locator("#contact")).to_be_hidden()
        expect(card).to_be_hidden()

        hist = httpx.get(f"{h.url}/api/customers/{customer}/history", headers=auth(h, "agent2")).json()
        form = next(x for x in hist if x["contact_id"] == cid)["form"]
        assert [(f["label"], f["value"]) for f in form["fields"]] == [
            ("Reason", "refund"), ("Order number", "A-1234"), ("Callback number", "+49301234567")]

        # Frieda's next call: her record shows the last contact with its form data.
        expect(agent.locator("#state-label")).to_have_text("Available")
        cid2 = contact(h, "030 5550177")
        last = agent.locator(f"#customer-contacts li[data-contact-id='{cid}'] .contact-form")
        expect(last).to_have_text("Reason: refund · Order number: A-1234 · Callback number: +49301234567")
        agent.click("#reject")
        httpx.post(f"{h.url}/api/contacts/{cid2}/abandon", headers=auth(h))
        assert errors == []
    finally:
        httpx.post(f"{h.url}/api/forms/support/withdraw", headers=auth(h))
        agent_ctx.close()
        admin_ctx.close()


def test_a_queue_label_changed_by_an_admin_reaches_an_open_desktop_and_the_board(forms_hub, browser):
    h = forms_hub
    errors: list[str] = []
    agent_ctx, agent = agent_page(h, browser, errors)
    sup_ctx = browser.new_context()
    admin_ctx = None
    try:
        sup = sup_ctx.new_page()
        log_in(sup, h, "supervisor")
        expect(sup.locator("#conn")).to_have_text("Live")
        expect(sup.locator("#filter-queue option[value=support]")).to_have_text("Support")
        expect(agent.locator("#queues li[data-queue=support]")).to_have_text("Support")
        agent.evaluate("() => { window.__same_page = true; }")
        admin_ctx, admin = admin_page(h, browser, errors)
        admin.fill("#queue-settings [name=label]", "Support desk")
        admin.click("#queue-settings button[type=submit]")
        expect(admin.locator("#queue-list button[data-queue=support]")).to_have_text("Support desk")
        expect(agent.locator("#queues li[data-queue=support]")).to_have_text("Support desk", timeout=5000)
        expect(sup.locator("#filter-queue option[value=support]")).to_have_text("Support desk", timeout=5000)
        assert agent.evaluate("() => window.__same_page") is True
        assert errors == []
    finally:
        httpx.patch(f"{h.url}/api/queues/support", json={"label": "Support"}, headers=auth(h))
        agent_ctx.close()
        sup_ctx.close()
        if admin_ctx is not None:
            admin_ctx.close()
