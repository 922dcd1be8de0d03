"""A webinar in Chromium: the trainer presents a fake camera and a 600 Hz microphone, three guests
join with invitation links and receive only. Every attendee decodes video (framesDecoded rising) and
hears the presenter's tone; a promoted attendee's 900 Hz microphone reaches the others; mute all
silences it while the presenter is still heard."""

from __future__ import annotations

import time

import httpx
from playwright.sync_api import expect

from tests.e2e.test_desktop_and_board import log_in
from tests.helpers import bearer, cached_login

PRESENTER_HZ, SPEAKER_HZ = 600.0, 900.0
HEARD_DB = 20.0
ERRORS: list[str] = []
DUMP = """(async () => { const out = []; const pc = window.__pcs && window.__pcs.view;
  if (!pc) return 'no view pc'; (await pc.getStats()).forEach((s) => { if (s.type === 'inbound-rtp')
  out.push([s.kind, s.packetsReceived, s.framesReceived, s.framesDecoded, s.keyFramesDecoded, s.pliCount,
  s.decoderImplementation]); }); return JSON.stringify([pc.connectionState, out]); })()"""


def poll(what: str, check, timeout: float = 30.0):  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        last = check()
        if last:
            return last
    raise AssertionError(f"{what}: not within {timeout} s (last {last!r}; page errors {ERRORS})")


def hears(page, freq: float) -> bool:  # type: ignore[no-untyped-def]
    t = page.evaluate(f"window.unideskWebinar.tone({freq})")
    return t["level"] > -60 and t["prominence"] >= HEARD_DB


def silent_at(page, freq: float) -> bool:  # type: ignore[no-untyped-def]
    return page.evaluate(f"window.unideskWebinar.tone({freq})")["level"] < -90


def test_webinar_presenter_three_attendees_promote_and_mute_all(hub, media_worker, launch_browser, tone_wav):
    trainer = cached_login(hub.url, "trainer")
    r = httpx.post(f"{hub.url}/api/webinars", headers=bearer(trainer), json={"title": "Onboarding"}, timeout=10)
    assert r.status_code == 201, r.text
    room = r.json()["room"]
    links = [httpx.post(f"{hub.url}/api/webinars/{room}/invites", headers=bearer(trainer), json={"name": f"Guest {i}"},
                        timeout=10).json()["url"] for i in range(3)]

    presenter_browser = launch_browser(mic=tone_wav(PRESENTER_HZ))
    speaker_browser = launch_browser(mic=tone_wav(SPEAKER_HZ))
    viewers_browser = launch_browser()
    errors = ERRORS
    host = presenter_browser.new_context().new_page()
    host.on("pageerror", lambda e: errors.append(str(e)))
    log_in(host, hub, "trainer")
    expect(host.locator("#conn")).to_have_text("Connected")
    host.goto(f"{hub.url}/webinar?room={room}")
    expect(host.locator("#status")).to_have_attribute("data-state", "ready", timeout=30000)

    pages = [speaker_browser.new_context().new_page()] + [viewers_browser.new_context().new_page() for _ in range(2)]
    for page, link in zip(pages, links):
        page.on("pageerror", lambda e: errors.append(str(e)))
        page.goto(hub.url + link)
    for page in pages:
        expect(page.locator("#status")).to_have_attribute("data-state", "ready", timeout=30000)
    expect(host.locator("#count")).to_have_attribute("data-count", "3", timeout=15000)

    # Every attendee decodes video frames, and more of them a moment later; and hears the presenter.
    for page in pages:
        try:
            first = poll("video decoded", lambda: page.evaluate("window.unideskWebinar.framesDecoded()") or False)
        except AssertionError as exc:
            raise AssertionError(f"{exc}; inbound: {page.evaluate(DUMP)}") from None
        poll("frames rising", lambda: page.evaluate("window.unideskWebinar.framesDecoded()") > first + 10)
        poll("the presenter's tone", lambda: hears(page, PRESENTER_HZ))

    # Promote the first attendee: it publishes its microphone and the others hear it.
    speaker_id = pages[0].evaluate("window.unideskWebinar.you()")
    host.locator(f"#members li[data-member='{speaker_id}'] button[data-act='promote']").click()
    poll("promoted", lambda: pages[0].evaluate("window.unideskWebinar.role()") == "speaker", 15)
    for page in pages[1:]:
        poll("the speaker's tone", lambda: hears(page, SPEAKER_HZ))

    # Mute all: the speaker falls silent for everyone; the presenter is still heard.
    host.locator("#moderation button[data-act='mute-all']").click()
    for page in pages[1:]:
        poll("the speaker muted", lambda: silent_at(page, SPEAKER_HZ))
        assert hears(page, PRESENTER_HZ)
    assert not errors, errors
