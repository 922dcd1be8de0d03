"""The reports page and a wallboard screen in Chromium, against a hub of their own."""

import csv
import io

import httpx
import pytest
from playwright.sync_api import expect

from tests.conftest import HubProcess, drop_backend, prepared_backend
from tests.e2e.test_desktop_and_board import log_in
from tests.helpers import bearer, cached_login


@pytest.fixture(scope="module")
def rep_hub(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("reports-e2e")
    b = prepared_backend(tmp)
    h = HubProcess(b, tmp / "hub.log").start()
    yield h
    h.stop()
    drop_backend(b)


def _contact(h, queue="support") -> str:
    r = httpx.post(f"{h.url}/api/contacts", json={"queue": queue, "caller": "+4930555"},
                   headers=bearer(cached_login(h.url, "admin")))
    assert r.status_code == 201, r.text
    return r.json()["contact_id"]


def _abandon(h, cid: str) -> None:
    r = httpx.post(f"{h.url}/api/contacts/{cid}/abandon", headers=bearer(cached_login(h.url, "admin")))
    assert r.status_code == 200, r.text


def test_reports_page_shows_the_table_the_chart_and_downloads_csv(rep_hub, browser):
    h = rep_hub
    for _ in range(2):
        _abandon(h, _contact(h))  # nobody is logged in: each waits, then the caller hangs up
    ctx = browser.new_context(accept_downloads=True)
    try:
        page = ctx.new_page()
        log_in(page, h, "supervisor")
        expect(page).to_have_url(h.url + "/board")
        page.click("a[href='/reports']")
        expect(page).to_have_url(h.url + "/reports")
        row = page.locator("#report tbody tr[data-queue='support']")
        expect(row).to_have_count(1)
        expect(row.locator("td.offered")).to_have_text("2")
        expect(row.locator("td.abandoned")).to_have_text("2")
        expect(row.locator("td.answered")).to_have_text("0")
        expect(page.locator("#report tfoot tr[data-queue='support'] td.offered")).to_have_text("2")
        expect(page.locator("#chart rect.bar[data-series='offered']")).to_have_count(1)
        expect(page.locator("#chart rect.bar[data-series='abandoned']")).to_have_count(1)
        expect(page.locator("#report-info")).to_contain_text("times in UTC")
        # Hourly is the default; by 15 minutes the same contacts, and a queue filter.
        page.select_option("select[name=interval]", "15m")
        page.select_option("select[name=queue]", "sales")
        page.click("#report-form button[type=submit]")
        expect(page.locator("#report tbody tr[data-queue='support']")).to_have_count(0)
        page.select_option("select[name=queue]", "support")
        page.click("#report-form button[type=submit]")
        expect(page.locator("#report tbody tr[data-queue='support'] td.offered")).to_have_text("2")
        with page.expect_download() as dl:
            page.click("#csv")
        download = dl.value
        assert download.suggested_filename.startswith("queues-15m-") and download.suggested_filename.endswith(".csv")
        rows = list(csv.DictReader(io.StringIO(open(download.path(), encoding="utf-8").read())))
        assert [(r["queue"], r["offered"], r["abandoned"]) for r in rows] == [("support", "2", "2")]
        # An error is shown, not swallowed.
        page.fill("input[name=to]", "2020-01-01")
        page.click("#report-form button[type=submit]")
        expect(page.locator("#toast")).to_have_text("to must be after from")
    finally:
        ctx.close()


def test_an_agent_gets_no_reports(rep_hub, browser):
    ctx = browser.new_context()
    try:
        page = ctx.new_page()
        log_in(page, rep_hub, "agent1")
        expect(page).to_have_url(rep_hub.url + "/agent")
        page.goto(rep_hub.url + "/reports")
        expect(page.locator("#toast")).to_have_text("Reports are for supervisors and admins")
        expect(page.locator("#report tbody tr")).to_have_count(0)
    finally:
        ctx.close()


def test_wallboard_screen_follows_a_queue_live_without_a_login(rep_hub, browser):
    h = rep_hub
    ctx = browser.new_context()
    try:
        sup = ctx.new_page()
        log_in(sup, h, "supervisor")
        expect(sup).to_have_url(h.url + "/board")
        sup.goto(h.url + "/wallboards")
        sup.fill("input[name=name]", "Support floor")
        sup.uncheck("input[name=queue][value=sales]")
        sup.click("#new-wallboard button[type=submit]")
        link = sup.locator("#new-link-url")
        expect(link).to_be_visible()
        path = link.get_attribute("href")
        assert path.startswith("/wallboard?token=")
        expect(sup.locator("#wallboards tbody tr")).to_have_count(1)
    finally:
        ctx.close()
    # A fresh browser context: no session, only the link.
    screen_ctx = browser.new_context()
    try:
        wall = screen_ctx.new_page()
        wall.goto(h.url + path)
        expect(wall.locator("#wb-status")).to_have_text("Live")
        expect(wall.locator("#wb-name")).to_have_text("Support floor")
        expect(wall.locator(".wb-queue")).to_have_count(1)
        panel = wall.locator(".wb-queue[data-queue='support']")
        waiting = panel.locator(".wb-figure[data-figure='waiting']")
        expect(waiting.locator("b")).to_have_text("0")
        expect(waiting).to_have_attribute("data-level", "green")
        cids = [_contact(h) for _ in range(3)]
        expect(waiting.locator("b")).to_have_text("3")
        # Three waiting reaches the default amber threshold.
        expect(waiting).to_have_attribute("data-level", "amber")
        expect(panel.locator(".wb-figure[data-figure='longest_wait'] b")).not_to_have_text("0:00", timeout=5000)
        for cid in cids:
            _abandon(h, cid)
        expect(waiting.locator("b")).to_have_text("0")
        expect(waiting).to_have_attribute("data-level", "green")
    finally:
        screen_ctx.close()


def test_wallboard_with_a_bad_or_revoked_token_says_so(rep_hub, browser):
    h = rep_hub
    ctx = browser.new_context()
    try:
        page = ctx.new_page()
        page.goto(h.url + "/wallboard?token=not-a-token")
        expect(page.locator("#wb-message")).to_have_text("This wallboard link does not work: malformed token.")
        expect(page.locator("#wb-status")).to_have_text("Not connected")
        page.goto(h.url + "/wallboard")
        expect(page.locator("#wb-message")).to_contain_text("This page needs a wallboard link")
        sup = bearer(cached_login(h.url, "supervisor"))
        w = httpx.post(f"{h.url}/api/wallboards", json={"name": "Lobby", "queues": ["sales"]}, headers=sup).json()
        page.goto(h.url + w["path"])
        expect(page.locator("#wb-status")).to_have_text("Live")
        assert httpx.delete(f"{h.url}/api/wallboards/{w['id']}", headers=sup).status_code == 200
        expect(page.locator("#wb-message")).to_have_text("This wallboard link does not work: this wallboard was revoked; ask a supervisor for a new link.")
        page.reload()
        expect(page.locator("#wb-message")).to_have_text("This wallboard link does not work: this wallboard was revoked; ask a supervisor for a new link.")
    finally:
        ctx.close()
