"""The agent desktop when the agent's calls ring a SIP desk phone: the softphone steps aside and says so."""

import httpx
from playwright.sync_api import Page, expect

from tests.helpers import bearer, cached_login, force


def log_in(page: Page, hub, username: str) -> None:
    page.goto(hub.url + "/")
    page.fill("input[name=username]", username)
    page.fill("input[name=password]", "demo")
    page.click("button[type=submit]")


def set_phone(hub, username: str, phone: str) -> None:
    me = httpx.get(f"{hub.url}/api/me", headers=bearer(cached_login(hub.url, username))).json()["id"]
    r = httpx.put(f"{hub.url}/api/users/{me}/desk-phone", json={"phone": phone},
                  headers=bearer(cached_login(hub.url, "admin")))
    assert r.status_code == 200, r.text


def test_choosing_the_desk_phone_sets_the_softphone_aside_and_back(hub, media_worker, launch_browser, tone_wav):
    force(hub, "agent4", "logged-out")
    browser = launch_browser(mic=tone_wav(500))
    ctx = browser.new_context()
    try:
        page = ctx.new_page()
        log_in(page, hub, "agent4")
        expect(page.locator("#phone-state-label")).to_have_text("Ready", timeout=15000)
        set_phone(hub, "agent4", "desk")
        expect(page.locator("#phone-state-label")).to_have_text("Desk phone")
        expect(page.locator("#desk-phone")).to_have_text("Calls ring your desk phone (not registered).")
        set_phone(hub, "agent4", "browser")
        expect(page.locator("#phone-state-label")).to_have_text("Ready", timeout=15000)
        expect(page.locator("#desk-phone")).to_be_hidden()
    finally:
        set_phone(hub, "agent4", "browser")
        ctx.close()
