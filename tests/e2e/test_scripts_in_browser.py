"""Call scripts in Chromium: a known caller pops their record, the agent follows a branching script
(the text filled with the caller's name; a reload mid-call keeps the place), enters a field value
(handed to the queue's form, which the agent completes and saves), inserts a snippet into the notes
and wraps up; the record then shows the contact with the script's path and the form's data. An admin edits and publishes a script in the browser while an
agent's desktop is open and idle: the desktop shows the new version without a reload."""

from __future__ import annotations

import uuid

import httpx
import pytest
from playwright.sync_api import expect

from tests.conftest import HubProcess, drop_backend, prepared_backend
from tests.e2e.test_desktop_and_board import log_in
from tests.helpers import bearer, cached_login, force

SUPPORT = {"title": "Support greeting", "start": "hello", "steps": [
    {"id": "hello", "kind": "text", "text": "Good morning {{customer.first_name}}, {{agent.name}} speaking.",
     "next": "topic"},
    {"id": "topic", "kind": "question", "text": "What is the call about?", "answers": [
        {"label": "A question", "next": "answer"}, {"label": "A complaint", "next": "sorry"}]},
    {"id": "answer", "kind": "text", "text": "Answer the question.", "next": "bye"},
    {"id": "sorry", "kind": "text", "text": "We are sorry, {{customer.first_name}} {{customer.last_name}}. "
     "Let me open a ticket for your call from {{call.number}}.", "next": "ticket"},
    {"id": "ticket", "kind": "field", "key": "ticket", "label": "Ticket number", "next": "bye"},
    {"id": "bye", "kind": "end", "text": "Thank you for calling {{queue.label}}."},
]}

# The queue's form: the script's field step fills `ticket`, the agent chooses the reason.
FORM = {"title": "Complaint", "required_before_wrap_up": True, "fields": [
    {"key": "ticket", "label": "Ticket", "type": "text", "required": True, "pattern": r"T-\d+"},
    {"key": "reason", "label": "Reason", "type": "select", "required": True, "choices": ["late", "broken"]},
]}


@pytest.fixture(scope="module")
def scripts_hub(tmp_path_factory):
    # A hub of its own: the contacts routed here must reach the one agent made available.
    tmp = tmp_path_factory.mktemp("scripts-e2e")
    b = prepared_backend(tmp)
    h = HubProcess(b, tmp / "hub.log").start()
    yield h
    h.stop()
    drop_backend(b)


def auth(h, user: str = "admin") -> dict[str, str]:
    return bearer(cached_login(h.url, user))


def publish_via_rest(h, queue: str, definition: dict) -> int:
    r = httpx.put(f"{h.url}/api/scripts/queue/{queue}", json={"definition": definition}, headers=auth(h))
    assert r.status_code in (200, 201), r.text
    sid = r.json()["script_id"]
    r = httpx.post(f"{h.url}/api/scripts/{sid}/publish", headers=auth(h))
    assert r.status_code == 201, r.text
    return r.json()["version"]


def test_a_known_caller_a_branching_script_a_snippet_a_form_and_all_of_it_in_the_record(scripts_hub, browser):
    h = scripts_hub
    r = httpx.post(f"{h.url}/api/customers", headers=auth(h, "agent2"), json={
        "first_name": "Erika", "last_name": "Muster", "numbers": [{"number": "030 5550177"}]})
    assert r.status_code == 201, r.text
    customer = r.json()
    version = publish_via_rest(h, "support", SUPPORT)
    r = httpx.put(f"{h.url}/api/forms/support", json=FORM, headers=auth(h))
    assert r.status_code == 200, r.text
    r = httpx.post(f"{h.url}/api/forms/support/publish", headers=auth(h))
    assert r.status_code == 201, r.text
    short = "thx" + uuid.uuid4().hex[:4]
    r = httpx.post(f"{h.url}/api/snippets", headers=auth(h), json={
        "name": "Thanks", "shortcut": short, "text": "Thanked {{customer.name}}."})
    assert r.status_code == 201, r.text
    for i in range(1, 6):
        force(h, f"agent{i}", "logged-out")
    ctx = browser.new_context()
    errors: list[str] = []
    try:
        page = ctx.new_page()
        page.on("pageerror", lambda e: errors.append(str(e)))
        log_in(page, h, "agent2")
        expect(page.locator("#conn")).to_have_text("Connected")
        page.click("#go-available")
        expect(page.locator("#state-label")).to_have_text("Available")

        r = httpx.post(f"{h.url}/api/contacts", headers=auth(h), json={"queue": "support", "caller": "+49 30 5550177",
                                                                  "caller_name": "Erika Muster"})
        assert r.status_code == 201, r.text
        cid = r.json()["contact_id"]
        expect(page.locator("#contact")).to_have_attribute("data-status", "ringing")
        expect(page.locator("#customer")).to_have_attribute("data-customer-id", str(customer["id"]))
        expect(page.locator("#customer-name")).to_have_text("Erika Muster")
        card = page.locator("#script")
        expect(card).to_have_attribute("data-version", str(version))
        expect(page.locator("#script-text")).to_have_text("Good morning Erika, Agent 2 speaking.")
        page.click("#accept")
        expect(page.locator("#contact")).to_have_attribute("data-status", "connected")

        page.click("#script-continue")
        expect(card).to_have_attribute("data-step", "topic")
        expect(page.locator("#script-answers button")).to_have_text(["A question", "A complaint"])
        page.locator("#script-answers button", has_text="A complaint").click()
        expect(card).to_have_attribute("data-step", "sorry")
        expect(page.locator("#script-text")).to_have_text(
            "We are sorry, Erika Muster. Let me open a ticket for your call from +49 30 5550177.")

        # A reload during the call: the script comes back at the same step with its path.
        page.reload()
        expect(page.locator("#conn")).to_have_text("Connected")
        expect(card).to_have_attribute("data-step", "sorry")
        expect(page.locator("#script-path li")).to_have_text(["hello ✓", "topic → A complaint"])
        # A new version published mid-call: this call keeps its version (the next call gets the new one).
        revised = {**SUPPORT, "title": "Support greeting, revised"}
        assert publish_via_rest(h, "support", revised) == version + 1
        expect(page.locator("#script-published li[data-queue=support]")).to_contain_text(f"version {version + 1}")
        expect(card).to_have_attribute("data-version", str(version))
        expect(page.locator("#script-name")).to_have_text("Support greeting")
        page.click("#script-continue")
        expect(card).to_have_attribute("data-step", "ticket")
        expect(page.locator("#script-field-label")).to_have_text("Ticket number")
        page.fill("#script-field-input", "T-99")
        page.click("#script-field button[type=submit]")
        expect(card).to_have_attribute("data-step", "bye")
        expect(page.locator("#script-text")).to_have_text("Thank you for calling Support.")
        # The field went into the contact's form; the agent completes and saves it.
        expect(page.locator("#form-card")).to_be_visible()
        expect(page.locator("#form-ticket")).to_have_value("T-99")
        page.select_option("#form-reason", "broken")
        page.click("#form-card button[value=save]")
        expect(page.locator("#form-status")).to_have_text("Saved")
        expect(page.locator("#script-progress")).to_have_js_property("value", 4)

        page.click("#end-contact")
        expect(page.locator("#wrap-up-form")).to_be_visible()
        notes = page.locator("#wrap-up-notes")
        notes.click()
        notes.type("Done. ")
        page.keyboard.press("Control+/")
        expect(page.locator("#snippet-picker")).to_be_visible()
        page.fill("#snippet-filter", short)
        expect(page.locator("#snippets button.snippet")).to_have_count(1)  # the list is loaded and filtered
        page.press("#snippet-filter", "Enter")
        expect(notes).to_have_value("Done. Thanked Erika Muster.")
        page.select_option("#wrap-up-form select", "escalated")
        page.click("#wrap-up-form button[type=submit]")
        expect(page.locator("#contact")).to_be_hidden()

        # The customer's next call pops the record with the last contact and its script path.
        expect(page.locator("#state-label")).to_have_text("Available")
        r = httpx.post(f"{h.url}/api/contacts", headers=auth(h), json={"queue": "support", "caller": "030 5550177"})
        cid2 = r.json()["contact_id"]
        past = page.locator(f"#customer-contacts li[data-contact-id='{cid}']")
        expect(past).to_contain_text("escalated — Done. Thanked Erika Muster.")
        expect(card).to_have_attribute("data-version", str(version + 1))
        expect(page.locator("#script-name")).to_have_text("Support greeting, revised")
        expect(past.locator(".script-path")).to_have_text(
            f"Script Support greeting (version {version}): topic → A complaint · ticket = T-99")
        expect(past.locator(".contact-form")).to_have_text("Ticket: T-99 · Reason: broken")
        hist = httpx.get(f"{h.url}/api/customers/{customer['id']}/history", headers=auth(h, "agent2")).json()
        first = next(x for x in hist if x["contact_id"] == cid)
        assert first["script"]["finished_at"] is not None
        assert [(e["step"], e.get("label"), e.get("value")) for e in first["script"]["path"]] == [
            ("hello", None, None), ("topic", "A complaint", None), ("sorry", None, None), ("ticket", None, "T-99")]
        assert first["form"]["data"] == {"ticket": "T-99", "reason": "broken"} and not first["form"]["draft"]
        page.click("#reject")
        httpx.post(f"{h.url}/api/contacts/{cid2}/abandon", headers=auth(h))
        assert errors == []
    finally:
        ctx.close()


def test_an_admin_publishes_in_the_browser_and_an_idle_desktop_follows_without_a_reload(scripts_hub, browser):
    h = scripts_hub
    for i in range(1, 6):
        force(h, f"agent{i}", "logged-out")
    agent_ctx, admin_ctx = browser.new_context(), browser.new_context()
    errors: list[str] = []
    try:
        agent = agent_ctx.new_page()
        agent.on("pageerror", lambda e: errors.append(str(e)))
        log_in(agent, h, "agent4")  # in support and sales
        expect(agent.locator("#conn")).to_have_text("Connected")
        expect(agent.locator("#script-published li[data-queue=sales]")).to_have_count(0)
        agent.evaluate("window.sameDocument = true")

        admin = admin_ctx.new_page()
        admin.on("pageerror", lambda e: errors.append(str(e)))
        log_in(admin, h, "admin")
        expect(admin).to_have_url(f"{h.url}/board")
        admin.goto(f"{h.url}/scripts")
        row = admin.locator("#script-queues tr[data-queue=sales]")
        expect(row.locator(".version")).to_have_text("not published")
        row.locator("button.edit").click()
        expect(admin.locator("#script-editor")).to_be_visible()
        admin.fill("#sd-title", "Sales call")
        steps = admin.locator("#sd-steps > li.sd-step")
        expect(steps).to_have_count(2)
        steps.nth(0).locator(".s-text").fill("Hello {{customer.first_name}}")
        # A question step with two answers: the second's target left open is named by the server.
        admin.click("#sd-add-step")
        expect(steps).to_have_count(3)
        steps.nth(2).locator(".s-id").fill("interest")
        steps.nth(2).locator(".s-id").dispatch_event("change")
        steps.nth(2).locator(".s-kind").select_option("question")
        q = steps.nth(2)
        q.locator(".s-text").fill("Interested in the offer?")
        q.locator(".answer").nth(0).locator(".a-next").select_option("end")
        steps.nth(0).locator(".s-next").select_option("interest")
        admin.click("#sd-validate")
        expect(admin.locator("#sd-problems li").first).to_contain_text("steps[2].answers[1].next")
        q.locator(".answer").nth(1).locator(".a-next").select_option("end")
        admin.click("#sd-validate")
        expect(admin.locator("#toast")).to_have_text("The script is valid.")
        expect(admin.locator("#sd-problems li")).to_have_count(0)
        admin.click("#sd-publish")
        expect(row.locator(".version")).to_have_text("version 1")

        item = agent.locator("#script-published li[data-queue=sales]")
        expect(item).to_have_text("Sales: Sales call · version 1", timeout=5000)
        assert agent.evaluate("window.sameDocument") is True

        # A second version: the title changes in the editor; the desktop follows again.
        admin.fill("#sd-title", "Sales call, spring offer")
        admin.click("#sd-publish")
        expect(row.locator(".version")).to_have_text("version 2")
        expect(item).to_have_text("Sales: Sales call, spring offer · version 2", timeout=5000)
        assert agent.evaluate("window.sameDocument") is True
        published = httpx.get(f"{h.url}/api/scripts", headers=auth(h)).json()
        sales = next(x for x in published if x["queue"] == "sales")
        got = httpx.get(f"{h.url}/api/scripts/{sales['script_id']}", headers=auth(h)).json()
        assert [v["version"] for v in got["versions"]] == [2, 1]
        assert [s["kind"] for s in got["draft"]["steps"]] == ["text", "end", "question"]
        assert errors == []
    finally:
        agent_ctx.close()
        admin_ctx.close()
