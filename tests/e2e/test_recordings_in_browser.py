"""The supervisor's recordings page in Chromium: the list shows a recording and its player loads the audio."""

from __future__ import annotations

import asyncio
from concurrent.futures import ThreadPoolExecutor

from playwright.sync_api import expect

from tests.conftest import HubProcess, drop_backend, prepared_backend
from tests.e2e.test_desktop_and_board import log_in
from tests.integration.test_recordings import add_recording


def test_the_supervisor_lists_a_recording_and_plays_it(browser, tmp_path):
    b = prepared_backend(tmp_path)
    folder = tmp_path / "recordings"
    folder.mkdir()
    # The store is written from a thread of its own: Playwright's loop runs in this one.
    with ThreadPoolExecutor(1) as pool:
        rid = pool.submit(asyncio.run, add_recording(b, folder, "demo", ended_ago=60.0, seconds=3.0)).result()
    hub = HubProcess(b, tmp_path / "hub.log", UNIDESK_RECORDINGS_DIR=str(folder)).start()
    context = browser.new_context()
    errors: list[str] = []
    try:
        page = context.new_page()
        page.on("pageerror", lambda e: errors.append(str(e)))
        log_in(page, hub, "supervisor")
        expect(page).to_have_url(hub.url + "/board")
        page.click("a[href='/recordings']")
        row = page.locator(f"#recordings tr[data-id='{rid}']")
        expect(row.locator("td.queue")).to_have_text("support")
        expect(row.locator("td.length")).to_have_text("00:03")
        expect(row.locator("a.download")).to_have_count(0)  # supervisors do not download by default
        row.locator("button.play").click()
        # The player fetched the file (with its token) and knows its length.
        page.wait_for_function(
            "() => { const a = document.querySelector('#player');"
            " return a.readyState >= 1 && a.duration > 2.5 && a.duration < 3.5; }",
            timeout=15_000,
        )
        assert page.evaluate("document.querySelector('#player').dataset.id") == rid
        assert not errors, errors
    finally:
        context.close()
        hub.stop()
        drop_backend(b)
