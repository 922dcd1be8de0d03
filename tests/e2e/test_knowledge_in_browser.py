"""Work instructions, the knowledge base and snippets in Chromium: an instruction appears on two agents'
pages at once and the board shows who acknowledged; an article is found, shown safely and follows an
edit live; a snippet goes into the wrap-up notes with Ctrl+/."""

from __future__ import annotations

import uuid

import httpx
import pytest
from playwright.sync_api import expect

from tests.conftest import HubProcess, drop_backend, prepared_backend
from tests.e2e.test_desktop_and_board import log_in
from tests.helpers import bearer, cached_login


@pytest.fixture(scope="module")
def kb_hub(tmp_path_factory):
    # A hub of its own: the snippet test routes a contact, which must reach the one agent made available.
    tmp = tmp_path_factory.mktemp("kb-e2e")
    b = prepared_backend(tmp)
    h = HubProcess(b, tmp / "hub.log").start()
    yield h
    h.stop()
    drop_backend(b)


def as_user(h, username: str) -> dict[str, str]:
    return bearer(cached_login(h.url, username))


def test_an_instruction_appears_on_two_desktops_and_the_board_shows_the_acknowledgements(kb_hub, browser):
    h = kb_hub
    ctxs = [browser.new_context() for _ in range(3)]
    errors: list[str] = []
    try:
        a1, a2, sup = (c.new_page() for c in ctxs)
        for p in (a1, a2, sup):
            p.on("pageerror", lambda e: errors.append(str(e)))
        log_in(a1, h, "agent1")
        log_in(a2, h, "agent2")
        log_in(sup, h, "supervisor")
        for p, status in ((a1, "Connected"), (a2, "Connected"), (sup, "Live")):
            expect(p.locator("#conn")).to_have_text(status)

        text = f"outage in region north: use snippet outage {uuid.uuid4().hex[:4]}"
        sup.locator("#instruction-queues input[value=support]").check()
        sup.fill("#instruction-text", text)
        sup.click("#instruction-form button[type=submit]")
        for p in (a1, a2):
            expect(p.locator("#instructions li.instruction .text")).to_have_text(text, timeout=5000)
        row = sup.locator("#instructions li.instruction").filter(has_text=text)
        expect(row.locator(".acked")).to_have_text("0 of 5 acknowledged")
        expect(row.locator(".pending-agent")).to_have_count(5)

        a1.locator("#instructions li.instruction button.ack").click()
        expect(a1.locator("#instructions li.instruction")).to_have_count(0)
        expect(row.locator(".acked")).to_have_text("1 of 5 acknowledged", timeout=5000)
        expect(row.locator(".pending-agent", has_text="Agent 1")).to_have_count(0)
        expect(row.locator(".pending-agent", has_text="Agent 2")).to_have_count(1)
        a2.locator("#instructions li.instruction button.ack").click()
        expect(row.locator(".acked")).to_have_text("2 of 5 acknowledged", timeout=5000)
        expect(row.locator(".pending-agent")).to_have_text(["Agent 3", "Agent 4", "Agent 5"])

        # A reload of the acknowledged desktop does not bring it back; the board's reload keeps the count.
        a1.reload()
        expect(a1.locator("#conn")).to_have_text("Connected")
        expect(a1.locator("#instructions li.instruction")).to_have_count(0)
        sup.reload()
        expect(sup.locator("#instructions li.instruction").filter(has_text=text).locator(".acked")).to_have_text(
            "2 of 5 acknowledged")
        assert errors == []
    finally:
        for c in ctxs:
            c.close()


def test_an_article_is_found_shown_safely_and_follows_an_edit_live(kb_hub, browser):
    h = kb_hub
    w = "zz" + uuid.uuid4().hex[:8]
    body = f"Reset the **router** {w}.\n\n<img src=x onerror=\"window.pwned=1\">\n\n[help](javascript:window.pwned=2)"
    r = httpx.post(f"{h.url}/api/kb/articles", headers=as_user(h, "admin"),
                   json={"title": f"Router reset {w}", "body_md": body, "tags": ["network"]})
    assert r.status_code == 201, r.text
    aid = r.json()["id"]
    ctx = browser.new_context()
    try:
        page = ctx.new_page()
        log_in(page, h, "agent3")
        expect(page.locator("#conn")).to_have_text("Connected")
        page.fill("#kb-q", f"router {w}")
        page.press("#kb-q", "Enter")
        hit = page.locator("#kb-results button.kb-hit")
        expect(hit).to_have_text([f"Router reset {w}"])
        hit.click()
        expect(page.locator("#kb-article-title")).to_have_text(f"Router reset {w}")
        expect(page.locator("#kb-article-body strong")).to_have_text("router")
        expect(page.locator("#kb-article-tags")).to_have_text("network")
        assert page.locator("#kb-article-body img").count() == 0
        assert page.locator("#kb-article-body [onerror], #kb-article-body a[href^='javascript']").count() == 0
        assert page.evaluate("window.pwned === undefined")

        # An admin edits the article: the open view follows without a reload.
        r = httpx.put(f"{h.url}/api/kb/articles/{aid}", headers=as_user(h, "admin"),
                      json={"title": f"Router and modem reset {w}", "body_md": f"Unplug the *modem* {w}."})
        assert r.status_code == 200, r.text
        expect(page.locator("#kb-article-title")).to_have_text(f"Router and modem reset {w}", timeout=5000)
        expect(page.locator("#kb-article-body em")).to_have_text("modem")
        expect(hit).to_have_text([f"Router and modem reset {w}"])
    finally:
        ctx.close()


def test_a_snippet_goes_into_the_wrap_up_notes_with_the_callers_name(kb_hub, browser):
    h = kb_hub
    ctx = browser.new_context()
    try:
        page = ctx.new_page()
        log_in(page, h, "agent4")
        expect(page.locator("#conn")).to_have_text("Connected")
        page.click("#go-available")
        expect(page.locator("#state-label")).to_have_text("Available")
        r = httpx.post(f"{h.url}/api/contacts", headers=as_user(h, "admin"),
                       json={"queue": "support", "caller": "+4930555123", "caller_name": "Erika Muster",
                             "data": {"order": "A-1001"}})
        assert r.status_code == 201, r.text
        expect(page.locator("#contact")).to_have_attribute("data-status", "ringing")
        page.click("#accept")
        expect(page.locator("#contact")).to_have_attribute("data-status", "connected")
        page.click("#end-contact")
        expect(page.locator("#wrap-up-form")).to_be_visible()

        notes = page.locator("#wrap-up-notes")
        notes.click()
        notes.type("Call: ")
        page.keyboard.press("Control+/")
        expect(page.locator("#snippet-picker")).to_be_visible()
        # A snippet an admin adds now reaches the open picker live.
        short = "thanks" + uuid.uuid4().hex[:4]
        r = httpx.post(f"{h.url}/api/snippets", headers=as_user(h, "admin"), json={
            "name": "Thanks", "shortcut": short, "text": "Thanked {{customer.name}} for order {{data.order}}."})
        assert r.status_code == 201, r.text
        expect(page.locator(f"#snippets button.snippet[data-shortcut='{short}']")).to_have_count(1, timeout=5000)
        page.fill("#snippet-filter", short)
        page.press("#snippet-filter", "Enter")
        expect(page.locator("#snippet-picker")).to_be_hidden()
        expect(notes).to_have_value("Call: Thanked Erika Muster for order A-1001.")
        expect(notes).to_be_focused()
    finally:
        ctx.close()
