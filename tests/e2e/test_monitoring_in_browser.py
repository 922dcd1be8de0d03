"""A supervisor on the Chromium board listens, whispers and barges into a bot agent's call with a baresip
caller. Each party plays its own tone; what each hears is proven by frequency on every side."""

from __future__ import annotations

import time

from playwright.sync_api import expect

from tests.e2e.test_desktop_and_board import board_row, log_in
from tests.e2e.test_sip_in_browser import only_logged_out
from tests.e2e.test_softphone import BotThread, Desktop, heard
from tests.sip_peers import Baresip, ended, hears, hears_all, hears_not

CALLER_HZ, AGENT_HZ, SUPERVISOR_HZ = 1000, 500, 1500


class Board(Desktop):
    """The supervisor's board page (its connection reads "Live"), collecting its JS errors."""

    def __init__(self, browser, hub) -> None:  # type: ignore[no-untyped-def]
        self.context = browser.new_context()
        self.page = self.context.new_page()
        self.errors: list[str] = []
        self.page.on("pageerror", lambda e: self.errors.append(f"pageerror: {e}"))
        self.page.on("console", self._console)
        log_in(self.page, hub, "supervisor")
        expect(self.page.locator("#conn")).to_have_text("Live")


def board_hears(d: Desktop, freq: float, timeout: float = 10.0) -> None:
    """The board's softphone hears `freq` (measured within ±100 Hz of it, so another tone beside it does not
    hide it), within `timeout`."""
    deadline = time.monotonic() + timeout
    seen = []
    while time.monotonic() < deadline:
        m = d.page.evaluate(f"window.unideskMonitor.measureRemoteTone({freq - 100}, {freq + 100})")
        seen.append(m)
        if heard(m, freq):
            return
    raise AssertionError(f"the supervisor never heard {freq} Hz; last {seen[-3:]}")


def test_the_supervisor_listens_whispers_and_barges_from_the_board(hub, media_worker, launch_browser, tone_wav, tmp_path):
    only_logged_out(hub)
    bot = BotThread(hub, "agent1", float(AGENT_HZ))
    b = bot.bot
    phone = Baresip(tmp_path / "phone", CALLER_HZ)
    board = Board(launch_browser(mic=tone_wav(SUPERVISOR_HZ)), hub)
    try:
        page = board.page
        bot.run(b.login())
        bot.run(b.connect_phone())
        assert bot.run(b.request({"type": "set-state", "state": "available"}))["type"] == "ack"
        phone.call(f"sip:support@127.0.0.1:{media_worker.sip_port}", 90)
        offer = bot.run(b.expect(lambda m: m["type"] == "contact-offered", 15))
        cid = offer["contact"]["id"]
        assert bot.run(b.request({"type": "accept-offer", "contact_id": cid}))["type"] == "ack"
        assert bot.run(b.hears(CALLER_HZ))
        row = board_row(page, "agent1")
        expect(row).to_have_attribute("data-state", "on-call")

        row.locator("button.monitor[data-mode=listen]").click()
        expect(page.locator("#monitor-status")).to_have_attribute("data-mode", "listen", timeout=15_000)
        board_hears(board, CALLER_HZ)
        board_hears(board, AGENT_HZ)
        assert hears_not(phone, SUPERVISOR_HZ), "the caller hears a listening supervisor"
        assert bot.run(b.hears(CALLER_HZ)), "listening changed what the agent hears"

        row.locator("button.monitor[data-mode=whisper]").click()
        expect(page.locator("#monitor-status")).to_have_attribute("data-mode", "whisper")
        assert bot.run(b.hears_all([CALLER_HZ, SUPERVISOR_HZ])), "the agent does not hear the whisper"
        assert hears_not(phone, SUPERVISOR_HZ), "the caller hears the whisper"

        row.locator("button.monitor[data-mode=barge]").click()
        expect(page.locator("#monitor-status")).to_have_attribute("data-mode", "barge")
        assert hears_all(phone, [AGENT_HZ, SUPERVISOR_HZ]), "the caller does not hear the barging supervisor"
        board_hears(board, CALLER_HZ)

        row.locator("button.monitor-leave").click()
        expect(page.locator("#monitor-status")).to_have_attribute("data-mode", "")
        assert hears_not(phone, SUPERVISOR_HZ) and hears(phone, AGENT_HZ)
        assert bot.run(b.request({"type": "end-contact", "contact_id": cid}))["type"] == "ack"
        assert ended(phone), phone.output()[-2000:]
        assert board.errors == []
    finally:
        phone.stop()
        bot.run(b.request({"type": "set-state", "state": "logged-out"}))
        bot.close()
        board.close()


def test_the_board_shows_live_call_figures_and_acknowledges_a_silence_alert(
    hub, backend, media_worker, launch_browser, tone_wav, tmp_path
):
    from tests.conftest import set_tenant_settings
    from tests.integration.test_analytics import RULES, talk_then_silence

    only_logged_out(hub)
    set_tenant_settings(backend, "demo", alerts=RULES)
    bot = BotThread(hub, "agent2", float(AGENT_HZ))
    b = bot.bot
    wav = tmp_path / "caller.wav"
    talk_then_silence(wav, 2.0)
    phone = Baresip(tmp_path / "phone", CALLER_HZ, source=wav)
    board = Board(launch_browser(mic=tone_wav(SUPERVISOR_HZ)), hub)
    try:
        page = board.page
        bot.run(b.login())
        bot.run(b.connect_phone())
        assert bot.run(b.request({"type": "set-state", "state": "available"}))["type"] == "ack"
        phone.call(f"sip:support@127.0.0.1:{media_worker.sip_port}", 60)
        offer = bot.run(b.expect(lambda m: m["type"] == "contact-offered", 15))
        cid = offer["contact"]["id"]
        assert bot.run(b.request({"type": "accept-offer", "contact_id": cid}))["type"] == "ack"
        row = page.locator(f"#live-calls tr[data-contact-id='{cid}']")
        expect(row.locator("td.agent")).to_have_text("Agent 2", timeout=10_000)
        expect(row.locator("td.caller-talk")).not_to_have_text("0:00", timeout=10_000)
        # The caller talks for 2 s only; once the agent mutes, nobody talks and the silence alert comes up.
        assert bot.run(b.request({"type": "call-mute", "call_id": cid, "on": True}))["type"] == "ack"
        alert = page.locator("#alerts li[data-kind=silence]")
        expect(alert).to_be_visible(timeout=15_000)
        alert.locator("button.ack").click()
        expect(alert).to_have_attribute("data-acked", "yes")
        expect(alert.locator(".acked")).to_have_text(" acknowledged by supervisor")
        assert bot.run(b.request({"type": "end-contact", "contact_id": cid}))["type"] == "ack"
        expect(row).to_have_count(0, timeout=10_000)  # the call left the board
        bot.run(b.request({"type": "complete-wrap-up", "contact_id": cid, "code": "resolved"}))
        assert board.errors == []
    finally:
        set_tenant_settings(backend, "demo", alerts={})
        phone.stop()
        bot.run(b.request({"type": "set-state", "state": "logged-out"}))
        bot.close()
        board.close()


def test_the_agent_sees_a_listening_supervisor_when_the_tenant_says_so(
    hub, backend, media_worker, launch_browser, tone_wav, tmp_path
):
    from tests.conftest import set_tenant_settings
    from tests.e2e.test_sip_in_browser import go_available

    only_logged_out(hub)
    set_tenant_settings(backend, "demo", monitoring={"notify_agent": True})
    d = Desktop(launch_browser(mic=tone_wav(AGENT_HZ)), hub, "agent1")
    phone = Baresip(tmp_path / "phone", CALLER_HZ)
    sup = BotThread(hub, "supervisor", float(SUPERVISOR_HZ))
    sup.bot.own_stream = True
    s = sup.bot
    try:
        go_available(d)
        page = d.page
        phone.call(f"sip:support@127.0.0.1:{media_worker.sip_port}", 40)
        expect(page.locator("#contact-fields dd[data-field=Caller]")).to_have_text("caller", timeout=15_000)
        page.click("#accept")
        expect(page.locator("#state-label")).to_have_text("On call")
        cid = page.locator("#contact").get_attribute("data-contact-id")
        sup.run(s.login())
        sup.run(s.connect_phone())
        assert sup.run(s.request({"type": "monitor", "call_id": cid, "mode": "listen"}))["type"] == "ack"
        expect(page.locator("#monitor-badge")).to_have_text("supervisor is listening to this call", timeout=10_000)
        assert sup.run(s.request({"type": "monitor-stop", "call_id": cid}))["type"] == "ack"
        expect(page.locator("#monitor-badge")).to_be_hidden()
        page.click("#end-contact")
        assert ended(phone), phone.output()[-2000:]
        assert d.errors == []
    finally:
        set_tenant_settings(backend, "demo", monitoring={})
        phone.stop()
        sup.close()
        d.close()
