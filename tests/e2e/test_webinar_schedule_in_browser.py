"""A scheduled webinar in Chromium: an agent of the invited queue has the webinar page open (from the
desktop header's link) when the
trainer schedules it; the page lists it at once (the hub's `webinar-invited`), with a join button
since it opens 10 minutes before its start, and the agent joins it. The agent desktop's header says
so too. An agent of another queue does not see it listed and is refused with a clear message."""

from __future__ import annotations

import time

import httpx
from playwright.sync_api import expect

from tests.e2e.test_desktop_and_board import log_in
from tests.helpers import bearer, cached_login


def test_an_invited_agent_sees_and_joins_a_scheduled_webinar_another_queue_is_refused(hub, media_worker, browser):
    errors: list[str] = []
    invited_ctx, other_ctx = browser.new_context(), browser.new_context()
    try:
        desk = invited_ctx.new_page()
        desk.on("pageerror", lambda e: errors.append(str(e)))
        log_in(desk, hub, "agent4")  # agent4: queues support and sales
        expect(desk.locator("#conn")).to_have_text("Connected")
        with desk.expect_popup() as opened:  # the desktop's header link opens the webinar page
            desk.locator("#webinars-link").click()
        page = opened.value
        page.on("pageerror", lambda e: errors.append(str(e)))
        expect(page.locator("#status")).to_have_attribute("data-state", "listing", timeout=15000)
        expect(page.locator("#start")).to_be_hidden()  # agents do not schedule

        trainer = cached_login(hub.url, "trainer")
        starts = time.time() + 300
        r = httpx.post(f"{hub.url}/api/webinars", headers=bearer(trainer), timeout=10,
                       json={"title": "Sales playbook", "starts_at": starts, "minutes": 45,
                             "audience": {"queues": ["sales"]}})
        assert r.status_code == 201, r.text
        room = r.json()["room"]

        # Listed at once on the open page, joinable (it opened), and the desktop heard of it.
        item = page.locator(f"#webinars li[data-room='{room}']")
        expect(item).to_contain_text("Sales playbook", timeout=15000)
        expect(item).to_have_attribute("data-state", "scheduled")
        expect(item.locator("button.join")).to_be_enabled()
        expect(desk.locator("#webinars-link")).to_have_attribute("data-count", "1", timeout=15000)

        item.locator("button.join").click()
        expect(page).to_have_url(f"{hub.url}/webinar?room={room}")
        expect(page.locator("#title")).to_have_text("Sales playbook", timeout=15000)
        expect(page.locator("#when")).to_contain_text("Starts at")
        expect(page.locator("#status")).to_have_attribute("data-state", "ready", timeout=30000)
        assert page.evaluate("window.unideskWebinar.role()") == "attendee"

        # agent1 is in the queue support only: not listed, and refused at the door.
        other = other_ctx.new_page()
        other.on("pageerror", lambda e: errors.append(str(e)))
        log_in(other, hub, "agent1")
        expect(other.locator("#conn")).to_have_text("Connected")
        other.goto(f"{hub.url}/webinar")
        expect(other.locator("#status")).to_have_attribute("data-state", "listing", timeout=15000)
        expect(other.locator(f"#webinars li[data-room='{room}']")).to_have_count(0)
        other.goto(f"{hub.url}/webinar?room={room}")
        expect(other.locator("#status")).to_have_attribute("data-state", "failed", timeout=15000)
        expect(other.locator("#status")).to_contain_text("invited audience only")
        assert not errors, errors
    finally:
        invited_ctx.close()
        other_ctx.close()
