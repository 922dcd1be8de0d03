"""1:1 video support in Chromium: the agent opens a session on the desktop, the customer opens the
link in another browser (each with its own fake camera and a microphone playing its own tone), tests
the devices, waits in the lobby, is admitted; each side decodes the other's video frames and hears
the other's tone; the customer's screen share arrives; chat; a reload of either page comes back; the link is
refused elsewhere; the agent ends it for both and the store keeps the record."""

from __future__ import annotations

import re
import time

import httpx
from playwright.sync_api import Page, expect

from realtime.auth import TokenService
from tests.conftest import SECRET
from tests.e2e.test_desktop_and_board import log_in
from tests.e2e.test_softphone import heard
from tests.helpers import bearer, cached_login

AGENT_HZ, GUEST_HZ = 500.0, 1200.0
# The "screen" a page shares in these tests: a 480×160 canvas (3:1, unlike the 4:3 camera), changing colour.
FAKE_SCREEN = """
navigator.mediaDevices.getDisplayMedia = async () => {
  const c = document.createElement("canvas");
  c.width = 480; c.height = 160;
  const g = c.getContext("2d");
  let i = 0;
  setInterval(() => { g.fillStyle = `hsl(${(i++ * 13) % 360}, 80%, 50%)`; g.fillRect(0, 0, 480, 160); }, 40);
  return c.captureStream(25);
};
"""


def stats(page: Page) -> dict:
    return page.evaluate("window.unideskVideo.stats()")


def frames_flowing(page: Page, aspect: float | None = None, timeout: float = 25.0) -> dict:
    """Polls until the remote video's decoded frames keep rising (and, when given, come at that aspect ratio)."""
    deadline = time.monotonic() + timeout
    first = last = None
    while time.monotonic() < deadline:
        s = last = stats(page)
        shape_ok = aspect is None or (s["frameHeight"] and abs(s["frameWidth"] / s["frameHeight"] - aspect) < 0.1)
        if s["framesDecoded"] > 0 and shape_ok:
            if first is None:
                first = s
            elif s["framesDecoded"] >= first["framesDecoded"] + 10:
                return s
        else:
            first = None
        page.wait_for_timeout(200)  # polling interval
    raise AssertionError(f"remote video frames not rising (aspect {aspect}); last stats {last}")


def hears(page: Page, freq: float, timeout: float = 15.0) -> dict:
    deadline = time.monotonic() + timeout
    seen: list = []
    while time.monotonic() < deadline:
        try:
            m = page.evaluate("window.unideskVideo.measureRemoteTone()")
        except Exception as exc:  # no remote audio yet
            seen.append(str(exc)[:80])
            page.wait_for_timeout(200)  # polling interval
            continue
        seen.append(m)
        if heard(m, freq):
            return m
    raise AssertionError(f"{freq} Hz never heard; last measurements {seen[-4:]}")


def test_customer_and_agent_see_and_hear_each_other_share_a_screen_and_end(hub, launch_browser, tone_wav):
    agent_ctx = launch_browser(mic=tone_wav(AGENT_HZ)).new_context()
    guest_browser = launch_browser(mic=tone_wav(GUEST_HZ))
    guest_ctx = guest_browser.new_context()
    errors: list[str] = []
    try:
        for ctx in (agent_ctx, guest_ctx):
            ctx.add_init_script(FAKE_SCREEN)
        a, g = agent_ctx.new_page(), guest_ctx.new_page()
        for p in (a, g):
            p.on("pageerror", lambda e: errors.append(str(e)))
        log_in(a, hub, "agent2")
        expect(a.locator("#conn")).to_have_text("Connected")
        a.click("#vs-start")
        expect(a.locator("#vs-status")).to_have_attribute("data-phase", "waiting")
        # The session's event may come over the websocket before the link's HTTP answer: wait for the link.
        expect(a.locator("#vs-link")).to_have_value(re.compile(r"/support/"))
        link = a.locator("#vs-link").input_value()
        session_id = a.locator("#video-support").get_attribute("data-session-id")
        assert link.startswith(f"{hub.url}/support/{session_id}#t="), link

        # The customer: the tenant's name, a camera and microphone test, the lobby.
        g.goto(link)
        expect(g.locator("#g-title")).to_have_text("Video support · Demo Contact Center", timeout=10_000)
        expect(g.locator("#g-test")).to_be_visible()
        g.wait_for_function("() => Number(document.querySelector('#g-level').dataset.levelDb) > -50", timeout=10_000)
        g.fill("#g-name", "Erika Muster")
        g.click("#g-join")
        expect(g.locator("#g-lobby")).to_be_visible()
        expect(a.locator("#vs-status")).to_have_text("Erika Muster is waiting in the lobby")

        a.click("#vs-admit")
        for p in (a, g):
            expect(p.locator("#vs-call")).to_be_visible()
        # Each decodes the other's camera (4:3) and hears the other's microphone.
        frames_flowing(a, aspect=4 / 3)
        frames_flowing(g, aspect=4 / 3)
        hears(a, GUEST_HZ)
        hears(g, AGENT_HZ)

        # The customer shares a screen: the agent's tile shows it (3:1 frames, still rising), and is told.
        g.click("#vs-screen")
        expect(g.locator("#vs-screen")).to_have_attribute("aria-pressed", "true")
        expect(a.locator("#vs-remote-screen")).to_have_text("Erika Muster is sharing their screen")
        frames_flowing(a, aspect=3.0)
        g.click("#vs-screen")
        expect(a.locator("#vs-remote-screen")).to_have_attribute("data-sharing", "no")
        frames_flowing(a, aspect=4 / 3)
        # ... and the agent shares too.
        a.click("#vs-screen")
        frames_flowing(g, aspect=3.0)
        expect(g.locator("#vs-remote-screen")).to_have_text("Agent 2 is sharing their screen")

        # Chat both ways.
        g.fill("#vs-chat-text", "my router blinks red")
        g.click("#vs-chat-form button[type=submit]")
        expect(a.locator("#vs-chat li .text").last).to_have_text("my router blinks red")
        a.fill("#vs-chat-text", "unplug it for ten seconds")
        a.click("#vs-chat-form button[type=submit]")
        expect(g.locator("#vs-chat li .text").last).to_have_text("unplug it for ten seconds")

        # The same link in another browser is refused with a clear page; the call goes on.
        other = guest_browser.new_context()
        o = other.new_page()
        o.goto(link)
        expect(o.locator("#g-problem-title")).to_have_text("This link cannot be used")
        expect(o.locator("#g-problem-text")).to_contain_text("already used in another browser")
        o.goto("about:blank")  # a link differing only in its fragment would not load the page again
        o.goto(f"{hub.url}/support/{session_id}#t=garbage")
        expect(o.locator("#g-problem-title")).to_have_text("This link is not valid")
        expect(o.locator("#g-problem")).to_have_attribute("data-reason", "malformed token")
        o.goto("about:blank")
        tenant_id = httpx.get(f"{hub.url}/api/me", headers=bearer(cached_login(hub.url, "agent2"))).json()["tenant"]["id"]
        expired = TokenService(SECRET, 900, 900).issue_guest(tenant_id, "demo", session_id, time.time() - 5, time.time() - 60)
        o.goto(f"{hub.url}/support/{session_id}#t={expired}")
        expect(o.locator("#g-problem-title")).to_have_text("This link has expired")
        o.goto("about:blank")
        o.goto(f"{hub.url}/support/{session_id}")
        expect(o.locator("#g-problem-title")).to_have_text("This link is not complete")
        other.close()

        # A reload of the customer's page comes back into the call.
        g.reload()
        expect(g.locator("#vs-call")).to_be_visible(timeout=10_000)
        frames_flowing(g)
        hears(a, GUEST_HZ)

        # A reload of the agent's desktop too: its snapshot lists the live session and it offers again.
        a.reload()
        expect(a.locator("#conn")).to_have_text("Connected", timeout=10_000)
        expect(a.locator("#vs-status")).to_have_attribute("data-phase", "live")
        frames_flowing(a)
        frames_flowing(g)
        hears(g, AGENT_HZ)

        # The agent ends it for both; the store has the record.
        a.click("#vs-end")
        expect(a.locator("#vs-status")).to_have_attribute("data-phase", "ended")
        expect(g.locator("#g-problem-title")).to_have_text("The session has ended")
        expect(g.locator("#g-problem-text")).to_contain_text("Your agent ended the session")
        rec = httpx.get(f"{hub.url}/api/support-sessions/{session_id}", headers=bearer(cached_login(hub.url, "supervisor"))).json()
        assert rec["guest_name"] == "Erika Muster" and rec["end_reason"] == "host-ended" and rec["duration"] > 0, rec
        assert "Chrom" in rec["guest_ua"], rec
        assert errors == []
    finally:
        agent_ctx.close()
        guest_ctx.close()
