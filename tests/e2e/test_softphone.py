"""The agent's browser softphone against a hub and a media worker, with Chromium's fake
microphone playing a known tone: the headset check both ways, a call between two agents
(each hears the other's tone; mute, hold with music, keypad digits, hang-up with a
record), a consult while the first call holds, an ICE restart mid-call, a refused
microphone, and a hub without media workers."""

from __future__ import annotations

import asyncio
import re
import threading
import time
from collections.abc import Iterator

import httpx
import pytest
from playwright.sync_api import Browser, Page, expect

from tests.conftest import BACKEND, HOLD_MUSIC_HZ, WorkerProcess, drop_redis_prefix, free_port
from tests.e2e.test_desktop_and_board import log_in
from tests.helpers import bearer, cached_login, force
from webrtc.audio import ToneSource
from webrtc.bot import BotAgent

TOLERANCE_HZ = 25
# A tone counts as heard when it is loud enough and stands well above the rest of the band.
MIN_LEVEL_DB = -50
MIN_PROMINENCE_DB = 20
READY_MS = 20_000


class Desktop:
    """One agent's desktop page, collecting its JS errors."""

    def __init__(self, browser: Browser, hub, username: str, init_script: str | None = None, **context: object) -> None:
        self.context = browser.new_context(**context)
        if init_script:
            self.context.add_init_script(init_script)
        self.page: Page = self.context.new_page()
        self.errors: list[str] = []
        self.page.on("pageerror", lambda e: self.errors.append(f"pageerror: {e}"))
        self.page.on("console", self._console)
        log_in(self.page, hub, username)
        expect(self.page.locator("#conn")).to_have_text("Connected")

    def _console(self, m) -> None:  # type: ignore[no-untyped-def]
        url = m.location.get("url", "")
        if m.type == "error" and not url.endswith("/favicon.ico"):
            self.errors.append(f"console: {m.text} ({url})")

    def phone_ready(self) -> None:
        expect(self.page.locator("#phone-status")).to_have_attribute("data-state", "ready", timeout=READY_MS)

    def measure(self) -> dict:
        """What the page hears from its remote stream over about half a second."""
        return self.page.evaluate("window.unideskPhone.measureRemoteTone()")

    def wait_tone(self, freq: float, present: bool = True, timeout: float = 10.0) -> dict:
        """Measure until the tone is heard (or, with present=False, is gone); each measurement takes ~0.5 s."""
        deadline = time.monotonic() + timeout
        seen = []
        while time.monotonic() < deadline:
            m = self.measure()
            seen.append(m)
            if heard(m, freq) == present:
                return m
        raise AssertionError(f"{freq} Hz {'never heard' if present else 'still heard'}; last measurements {seen[-4:]}")

    def close(self) -> None:
        self.context.close()


def heard(m: dict, freq: float) -> bool:
    return (
        abs(m["frequency"] - freq) <= TOLERANCE_HZ
        and m["level_db"] > MIN_LEVEL_DB
        and m["prominence_db"] >= MIN_PROMINENCE_DB
    )


DIRECT = "taken off the datagram (direct path)"


def test_headset_check_both_ways(hub, media_worker, launch_browser, tone_wav):
    force(hub, "agent5", "logged-out")
    direct_before = media_worker.log().count(DIRECT)
    d = Desktop(launch_browser(mic=tone_wav(440)), hub, "agent5")
    try:
        d.phone_ready()
        page = d.page
        expect(page.locator("#test-headset")).to_have_attribute("data-tone-hz", "1000")
        page.click("#test-headset")
        expect(page.locator("#test-stop")).to_be_visible()
        # The worker's tone reaches the browser ...
        d.wait_tone(1000)
        # ... and the worker hears the microphone's 440 Hz (reported as phone-check).
        check = page.locator("#phone-check")
        expect(check).to_have_text(re.compile(r"^We hear you: -?\d+ dB \(\d+ Hz\)$"))
        page.wait_for_function(
            """([f, tol]) => {
                const c = document.querySelector('#phone-check');
                return c.dataset.frequency !== undefined && Math.abs(Number(c.dataset.frequency) - f) <= tol
                    && Number(c.dataset.levelDb) > -50;
            }""",
            arg=[440, TOLERANCE_HZ],
            timeout=10_000,
        )
        # Chromium's PCMU (header extensions and all) took the worker's direct receive path.
        assert media_worker.log().count(DIRECT) > direct_before
        page.click("#test-stop")
        expect(page.locator("#test-stop")).to_be_hidden()
        expect(check).to_have_text("")
        d.wait_tone(1000, present=False)
        # The level meter follows the microphone.
        page.wait_for_function("() => Number(document.querySelector('#mic-level').dataset.levelDb) > -50", timeout=5000)
        assert d.errors == []
    finally:
        d.close()


def test_call_between_two_agents_with_mute_hold_digits_and_a_record(hub, media_worker, launch_browser, tone_wav):
    for u in ("agent3", "agent4"):
        force(hub, u, "logged-out")
    one = Desktop(launch_browser(mic=tone_wav(500)), hub, "agent3")
    two = Desktop(launch_browser(mic=tone_wav(1200)), hub, "agent4")
    try:
        one.phone_ready()
        two.phone_ready()
        a, b = one.page, two.page
        a.fill("#dial-to", "agent4")
        a.click("#dial")
        expect(a.locator("#call-status")).to_have_attribute("data-status", "ringing")
        expect(a.locator("#call-status")).to_contain_text("Calling")
        expect(b.locator("#call-banner")).to_be_visible()
        b.click("#call-answer")
        expect(b.locator("#call-banner")).to_be_hidden()
        for p in (a, b):
            expect(p.locator("#call-status")).to_have_attribute("data-status", "connected")
        expect(a.locator("#call-timer")).to_have_text(re.compile(r"^00:0\d$"))
        call_id = a.locator("#call").get_attribute("data-call-id")
        assert call_id and b.locator("#call").get_attribute("data-call-id") == call_id

        # Each hears the other's microphone.
        one.wait_tone(1200)
        two.wait_tone(500)

        # Mute: agent4 no longer hears agent3; unmute brings it back.
        a.click("#call-mute")
        expect(a.locator("#call-mute")).to_have_attribute("aria-pressed", "true")
        two.wait_tone(500, present=False)
        a.click("#call-mute")
        expect(a.locator("#call-mute")).to_have_attribute("aria-pressed", "false")
        two.wait_tone(500)

        # Keypad digits reach the other agent.
        a.click("#keypad button[data-digit='4']")
        a.click("#keypad button[data-digit='#']")
        expect(b.locator("#call-digits")).to_have_attribute("data-digits", "4#")

        # Hold: agent4 hears the music on hold; resume brings agent3 back.
        a.click("#call-hold")
        expect(a.locator("#call-hold")).to_have_text("Resume")
        expect(a.locator("#call-status")).to_have_attribute("data-held", "yes")
        expect(b.locator("#call-status")).to_have_attribute("data-held", "by-peer")
        expect(b.locator("#call-status")).to_contain_text("On hold by")
        two.wait_tone(HOLD_MUSIC_HZ)
        a.click("#call-hold")
        expect(a.locator("#call-hold")).to_have_text("Hold")
        expect(b.locator("#call-status")).to_have_attribute("data-held", "no")
        two.wait_tone(500)

        # The quality indicator has figures from getStats.
        expect(a.locator("#phone-quality")).to_have_attribute("data-level", re.compile(r"^(good|fair|poor)$"))

        b.click("#call-hangup")
        for p in (a, b):
            expect(p.locator("#call-status")).to_have_attribute("data-status", "ended")
        expect(a.locator("#call-status")).to_contain_text("hung up by agent4")
        expect(a.locator("#call-controls-phone")).to_be_hidden()
        # The phones stay up for the next call.
        for p in (a, b):
            expect(p.locator("#phone-status")).to_have_attribute("data-state", "ready")

        r = httpx.get(f"{hub.url}/api/calls/{call_id}", headers=bearer(cached_login(hub.url, "supervisor")))
        assert r.status_code == 200, r.text
        rec = r.json()
        assert (rec["id"], rec["from"], rec["to"], rec["end_reason"]) == (call_id, "agent3", "agent4", "hangup")
        assert rec["answered_at"] and rec["ended_at"] and rec["ended_at"] > rec["answered_at"]
        assert rec["held_seconds"] > 0
        assert one.errors == [] and two.errors == []
    finally:
        one.close()
        two.close()


def test_refused_microphone_is_explained_and_the_desktop_still_works(hub, launch_browser):
    force(hub, "agent1", "logged-out")
    d = Desktop(launch_browser(grant=False), hub, "agent1", permissions=[])
    try:
        page = d.page
        expect(page.locator("#phone-status")).to_have_attribute("data-state", "no-microphone")
        help_box = page.locator("#mic-help")
        expect(help_box).to_be_visible()
        expect(help_box).to_have_attribute("data-error", "NotAllowedError")
        expect(help_box).to_contain_text("Microphone access was refused")
        expect(page.locator("#dial")).to_be_disabled()
        page.click("#go-available")
        expect(page.locator("#state-label")).to_have_text("Available")
        page.click("#pause-reasons button[data-reason=lunch]")
        expect(page.locator("#state-label")).to_have_text("Paused")
        assert d.errors == []
    finally:
        d.close()
        force(hub, "agent1", "logged-out")


@pytest.fixture
def own_live_state() -> Iterator[dict[str, str]]:
    """Settings for a hub whose live state (and so its list of media workers) is its own on Redis too."""
    prefix = f"ud-own-{free_port()}"
    yield {"UNIDESK_REDIS_PREFIX": prefix}
    if BACKEND == "redis":
        drop_redis_prefix(prefix)


def test_without_a_media_worker_the_phone_says_so(start_hub, own_live_state, launch_browser, tone_wav):
    h = start_hub(**own_live_state)
    d = Desktop(launch_browser(mic=tone_wav(440)), h, "agent2")
    try:
        status = d.page.locator("#phone-status")
        expect(status).to_have_attribute("data-state", "failed")
        expect(d.page.locator("#phone-message")).to_contain_text("No media server is available")
        assert d.errors == []
    finally:
        d.close()


def test_a_lost_media_worker_ends_the_call_with_a_record_and_the_phones_move_to_another(
    start_hub, own_live_state, browser, tmp_path
):
    h = start_hub(**own_live_state)
    first = WorkerProcess(h, tmp_path / "worker1.log").start()
    second = None
    one, two = Desktop(browser, h, "agent1"), Desktop(browser, h, "agent2")
    try:
        one.phone_ready()
        two.phone_ready()
        a, b = one.page, two.page
        a.fill("#dial-to", "agent2")
        a.click("#dial")
        b.click("#call-answer")
        expect(a.locator("#call-status")).to_have_attribute("data-status", "connected")
        call_id = a.locator("#call").get_attribute("data-call-id")

        first.kill()
        for p in (a, b):
            expect(p.locator("#phone-status")).to_have_attribute("data-state", "lost")
            expect(p.locator("#phone-message")).to_contain_text("The audio connection was lost (the media worker went away)")
            expect(p.locator("#call-status")).to_have_attribute("data-status", "ended")
        expect(a.locator("#call-status")).to_contain_text("the media server was lost")

        # The next offer finds the new worker.
        second = WorkerProcess(h, tmp_path / "worker2.log").start()
        one.phone_ready()
        two.phone_ready()
        rec = httpx.get(f"{h.url}/api/calls/{call_id}", headers=bearer(cached_login(h.url, "supervisor"))).json()
        assert rec["end_reason"] == "media-lost"
        assert one.errors == [] and two.errors == []
    finally:
        one.close()
        two.close()
        for w in (first, second):
            if w is not None:
                w.stop()


class BotThread:
    """A bot agent on an event loop of its own thread, driven from the synchronous test."""

    def __init__(self, hub, username: str, hz: float) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        self.bot = BotAgent(hub.url, "demo", username, "demo", ToneSource(hz))

    def run(self, coro, timeout: float = 30.0):  # type: ignore[no-untyped-def]
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def close(self) -> None:
        self.run(self.bot.close())
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(5)


def test_bot_agent_and_chromium_agent_call_each_other_across_a_reload(hub, media_worker, launch_browser, tone_wav):
    for u in ("agent1", "agent2"):
        force(hub, u, "logged-out")
    page_agent = Desktop(launch_browser(mic=tone_wav(500)), hub, "agent1")
    bot = BotThread(hub, "agent2", 1200.0)
    try:
        page_agent.phone_ready()
        page = page_agent.page
        bot.run(bot.bot.login())
        bot.run(bot.bot.connect_phone())
        ack = bot.run(bot.bot.request({"type": "call-dial", "to": "agent1"}))
        assert ack["type"] == "ack", ack
        expect(page.locator("#call-banner")).to_be_visible()
        page.click("#call-answer")
        expect(page.locator("#call-status")).to_have_attribute("data-status", "connected")
        page_agent.wait_tone(1200)
        assert bot.run(bot.bot.hears(500.0)), f"the bot heard {bot.bot.hearing():.0f} Hz"

        # The agent reloads the page mid-call: the call survives and audio flows again both ways.
        page.reload()
        expect(page.locator("#conn")).to_have_text("Connected")
        page_agent.phone_ready()
        expect(page.locator("#call-status")).to_have_attribute("data-status", "connected")
        page_agent.wait_tone(1200)
        bot.bot.ear.recent.clear()
        assert bot.run(bot.bot.hears(500.0)), f"after the reload the bot heard {bot.bot.hearing():.0f} Hz"

        page.click("#call-hangup")
        ended = bot.run(bot.bot.expect(lambda m: m["type"] == "call-changed" and m["call"]["status"] == "ended"))
        assert ended["call"]["end_reason"] == "hangup" and ended["call"]["ended_by"] == "agent1"
        assert page_agent.errors == []
    finally:
        bot.close()
        page_agent.close()


def test_a_consult_call_while_the_first_call_holds(hub, media_worker, launch_browser, tone_wav):
    for u in ("agent3", "agent4", "agent5"):
        force(hub, u, "logged-out")
    one = Desktop(launch_browser(mic=tone_wav(500)), hub, "agent3")
    two = Desktop(launch_browser(mic=tone_wav(1200)), hub, "agent4")
    three = Desktop(launch_browser(mic=tone_wav(900)), hub, "agent5")
    try:
        for d in (one, two, three):
            d.phone_ready()
        a, b, c = one.page, two.page, three.page
        expect(a.locator("#dial")).to_have_text("Call agent")
        a.fill("#dial-to", "agent4")
        a.click("#dial")
        b.click("#call-answer")
        expect(a.locator("#call-status")).to_have_attribute("data-status", "connected")
        first = a.locator("#call").get_attribute("data-call-id")
        one.wait_tone(1200)
        two.wait_tone(500)
        # While the call is live, dialling is not possible; once it is held, the dial button consults.
        expect(a.locator("#dial")).to_be_disabled()
        a.click("#call-hold")
        expect(a.locator("#call-hold")).to_have_text("Resume")
        expect(a.locator("#dial")).to_be_enabled()
        expect(a.locator("#dial")).to_have_text("Consult")
        a.fill("#dial-to", "agent5")
        a.click("#dial")

        # The held call moves to a row of its own; the consult takes the main controls.
        held_row = a.locator(f"#call-list li[data-call-id='{first}']")
        expect(held_row).to_have_attribute("data-held", "yes")
        expect(held_row.locator(".call-status")).to_have_text(re.compile(r"is on hold$"))
        expect(held_row.locator("button[data-action=hold]")).to_have_text("Resume")
        expect(a.locator("#call-status")).to_have_attribute("data-status", "ringing")
        expect(c.locator("#call-banner")).to_be_visible()
        expect(a.locator("#dial")).to_be_disabled()
        c.click("#call-answer")
        expect(a.locator("#call-status")).to_have_attribute("data-status", "connected")
        consult = a.locator("#call").get_attribute("data-call-id")
        assert consult and consult != first
        expect(a.locator("#call-list li")).to_have_count(1)
        expect(c.locator("#call")).to_have_attribute("data-call-id", consult)

        # agent3 and agent5 hear each other; agent4 hears the music on hold, not agent3.
        one.wait_tone(900)
        three.wait_tone(500)
        two.wait_tone(HOLD_MUSIC_HZ)
        two.wait_tone(500, present=False)
        expect(b.locator("#call-status")).to_have_attribute("data-held", "by-peer")

        # Resuming the held call while the consult is live is refused, and the page says why.
        held_row.locator("button[data-action=hold]").click()
        expect(a.locator("#toast")).to_be_visible()
        expect(a.locator("#toast")).to_contain_text("end or hold your other call before resuming")
        expect(held_row).to_have_attribute("data-held", "yes")
        two.wait_tone(HOLD_MUSIC_HZ)

        # The consult ends: the held call is back in the main controls, still held.
        a.click("#call-hangup")
        expect(c.locator("#call-status")).to_have_attribute("data-status", "ended")
        expect(a.locator("#call")).to_have_attribute("data-call-id", first)
        expect(a.locator("#call-list")).to_be_hidden()
        expect(a.locator("#call-status")).to_have_attribute("data-held", "yes")
        two.wait_tone(HOLD_MUSIC_HZ)
        a.click("#call-hold")
        expect(a.locator("#call-hold")).to_have_text("Hold")
        expect(b.locator("#call-status")).to_have_attribute("data-held", "no")
        expect(a.locator("#dial")).to_have_text("Call agent")
        one.wait_tone(1200)
        two.wait_tone(500)

        a.click("#call-hangup")
        for p in (a, b):
            expect(p.locator("#call-status")).to_have_attribute("data-status", "ended")
        sup = bearer(cached_login(hub.url, "supervisor"))
        recs = {cid: httpx.get(f"{hub.url}/api/calls/{cid}", headers=sup).json() for cid in (first, consult)}
        assert (recs[first]["to"], recs[first]["end_reason"], recs[first]["held_seconds"] > 0) == ("agent4", "hangup", True)
        assert (recs[consult]["from"], recs[consult]["to"], recs[consult]["ended_by"]) == ("agent3", "agent5", "agent3")
        assert one.errors == [] and two.errors == [] and three.errors == []
    finally:
        for d in (one, two, three):
            d.close()


def test_an_ice_restart_mid_call_keeps_the_call_and_its_audio(hub, media_worker, launch_browser, tone_wav):
    for u in ("agent1", "agent2"):
        force(hub, u, "logged-out")
    one = Desktop(launch_browser(mic=tone_wav(500)), hub, "agent1")
    two = Desktop(launch_browser(mic=tone_wav(1200)), hub, "agent2")
    try:
        one.phone_ready()
        two.phone_ready()
        a, b = one.page, two.page
        a.fill("#dial-to", "agent2")
        a.click("#dial")
        b.click("#call-answer")
        for p in (a, b):
            expect(p.locator("#call-status")).to_have_attribute("data-status", "connected")
        call_id = a.locator("#call").get_attribute("data-call-id")
        one.wait_tone(1200)
        two.wait_tone(500)
        # Every status either page shows from here on: the call must never end.
        for p in (a, b):
            p.evaluate(
                """() => {
                    window.seenStatuses = [];
                    const s = document.querySelector('#call-status');
                    new MutationObserver(() => window.seenStatuses.push(s.dataset.status))
                        .observe(s, {attributes: true, attributeFilter: ['data-status']});
                }"""
            )

        status = a.locator("#phone-status")
        answers, offer_id = int(status.get_attribute("data-answers")), status.get_attribute("data-offer-id")
        restarts = media_worker.log().count("ICE restart")
        a.evaluate("window.unideskPhone.restartIce()")
        a.wait_for_function(
            "n => Number(document.querySelector('#phone-status').dataset.answers) > n", arg=answers, timeout=15_000
        )
        assert status.get_attribute("data-offer-id") != offer_id
        # The worker took it as an ICE restart of the same session (new credentials), not a new session.
        deadline = time.monotonic() + 5
        while media_worker.log().count("ICE restart") == restarts and time.monotonic() < deadline:
            time.sleep(0.05)  # polling the log file, not a synchronisation sleep
        assert media_worker.log().count("ICE restart") > restarts, media_worker.log()[-2000:]
        one.phone_ready()

        # Audio still flows both ways on the same call.
        one.wait_tone(1200)
        two.wait_tone(500)
        for p in (a, b):
            expect(p.locator("#call-status")).to_have_attribute("data-status", "connected")
            expect(p.locator("#call")).to_have_attribute("data-call-id", call_id)
            assert "ended" not in p.evaluate("window.seenStatuses")
        expect(a.locator("#phone-quality")).to_have_attribute("data-level", re.compile(r"^(good|fair|poor)$"))

        b.click("#call-hangup")
        expect(a.locator("#call-status")).to_contain_text("hung up by agent2")
        assert one.errors == [] and two.errors == []
    finally:
        one.close()
        two.close()


# Keeps every peer connection the page makes, so a test can close one under the page's feet.
KEEP_PEERS = """
window.testPeers = [];
const Native = window.RTCPeerConnection;
window.RTCPeerConnection = class extends Native {
  constructor(...args) { super(...args); window.testPeers.push(this); }
};
"""


def test_a_peer_connection_that_closes_mid_call_reconnects_and_keeps_the_call(hub, media_worker, launch_browser, tone_wav):
    for u in ("agent4", "agent5"):
        force(hub, u, "logged-out")
    one = Desktop(launch_browser(mic=tone_wav(500)), hub, "agent4", init_script=KEEP_PEERS)
    two = Desktop(launch_browser(mic=tone_wav(1200)), hub, "agent5")
    try:
        one.phone_ready()
        two.phone_ready()
        a, b = one.page, two.page
        a.fill("#dial-to", "agent5")
        a.click("#dial")
        b.click("#call-answer")
        expect(a.locator("#call-status")).to_have_attribute("data-status", "connected")
        call_id = a.locator("#call").get_attribute("data-call-id")
        one.wait_tone(1200)
        two.wait_tone(500)
        a.evaluate(
            """() => {
                window.seen = [];
                const note = () => window.seen.push([
                    document.querySelector('#phone-status').dataset.state,
                    document.querySelector('#phone-message').textContent,
                    document.querySelector('#call-status').dataset.status]);
                new MutationObserver(note).observe(document.querySelector('#phone'),
                    {attributes: true, childList: true, subtree: true, characterData: true});
            }"""
        )
        peers = a.evaluate("window.testPeers.length")
        # The audio connection closes without the page asking: the worker reports the session lost,
        # the hub keeps the call a moment, and the page offers again on a new peer connection.
        a.evaluate("window.testPeers.at(-1).close()")
        a.wait_for_function("n => window.testPeers.length > n", arg=peers, timeout=15_000)
        one.phone_ready()
        one.wait_tone(1200)
        two.wait_tone(500)
        seen = a.evaluate("window.seen")
        assert ["reconnecting", "Reconnecting audio…"] in [s[:2] for s in seen], seen
        assert not any(s[2] == "ended" for s in seen), seen
        assert not any("lost" in s[0] for s in seen), seen
        for p in (a, b):
            expect(p.locator("#call")).to_have_attribute("data-call-id", call_id)
            expect(p.locator("#call-status")).to_have_attribute("data-status", "connected")
        expect(a.locator("#toast")).to_be_hidden()

        a.click("#call-hangup")
        expect(b.locator("#call-status")).to_contain_text("hung up by agent4")
        assert one.errors == [] and two.errors == []
    finally:
        one.close()
        two.close()
