"""Calls from real SIP phones answered in the browser: baresip and sipp call the support queue, a Chromium
agent (fake microphone playing a tone) accepts on the desktop, and audio flows both ways."""

from __future__ import annotations

import re
import subprocess

import httpx
from playwright.sync_api import expect

from tests.bridge.peers import copy_pcaps
from tests.conftest import HOLD_MUSIC_HZ
from tests.e2e.test_softphone import Desktop
from tests.helpers import bearer, cached_login, force
from tests.sip_peers import Baresip, ended, hears, hears_all, hears_not

CALLER_HZ, AGENT_HZ = 1000, 500


def go_available(d: Desktop) -> None:
    d.phone_ready()
    d.page.click("#go-available")
    expect(d.page.locator("#state-label")).to_have_text("Available")


def only_logged_out(hub) -> None:
    for i in range(1, 6):
        force(hub, f"agent{i}", "logged-out")


def test_a_baresip_caller_and_a_chromium_agent_hear_each_other(hub, media_worker, launch_browser, tone_wav, tmp_path):
    only_logged_out(hub)
    d = Desktop(launch_browser(mic=tone_wav(AGENT_HZ)), hub, "agent1")
    phone = Baresip(tmp_path / "phone", CALLER_HZ)
    try:
        go_available(d)
        page = d.page
        phone.call(f"sip:support@127.0.0.1:{media_worker.sip_port}", 30)
        expect(page.locator("#contact-fields dd[data-field=Caller]")).to_have_text("caller", timeout=15_000)
        page.click("#accept")
        expect(page.locator("#state-label")).to_have_text("On call")
        d.wait_tone(CALLER_HZ)
        assert hears(phone, AGENT_HZ), "the caller does not hear the agent's microphone"
        page.click("#end-contact")
        expect(page.locator("#state-label")).to_have_text("Wrap-up")
        assert ended(phone), phone.output()[-2000:]
        assert d.errors == []
    finally:
        phone.stop()
        d.close()
        force(hub, "agent1", "logged-out")


def test_a_sipp_caller_with_g711_audio_is_heard_in_the_browser(hub, media_worker, launch_browser, tone_wav, tmp_path):
    only_logged_out(hub)
    d = Desktop(launch_browser(mic=tone_wav(AGENT_HZ)), hub, "agent2")
    run_in = copy_pcaps(tmp_path)
    sipp = None
    try:
        go_available(d)
        page = d.page
        sipp = subprocess.Popen(
            ["sipp", "-sn", "uac_pcap", f"127.0.0.1:{media_worker.sip_port}", "-s", "support", "-m", "1",
             "-i", "127.0.0.1", "-p", "0", "-nostdin", "-timeout", "60s"],
            cwd=run_in, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )
        expect(page.locator("#state-label")).to_have_text("Ringing", timeout=15_000)
        page.click("#accept")
        expect(page.locator("#state-label")).to_have_text("On call")
        # The pcap's speech reaches the page: its level rises well above silence.
        page.wait_for_function(
            """async () => (await window.unideskPhone.measureRemoteTone()).level_db > -45""", timeout=15_000
        )
        # sipp hangs up when its pcap has played: the agent goes to wrap-up.
        expect(page.locator("#state-label")).to_have_text("Wrap-up", timeout=30_000)
        assert sipp.wait(30) == 0, "sipp saw the call fail"
        assert d.errors == []
    finally:
        if sipp is not None and sipp.poll() is None:
            sipp.kill()
        d.close()
        force(hub, "agent2", "logged-out")


def _mic_enabled(d: Desktop) -> bool:
    return d.page.evaluate("window.unideskPhone.localStream.getAudioTracks().every((t) => t.enabled)")


def test_the_contact_panel_holds_mutes_and_dials_digits_to_a_sip_caller(hub, media_worker, launch_browser, tone_wav, tmp_path):
    only_logged_out(hub)
    d = Desktop(launch_browser(mic=tone_wav(AGENT_HZ)), hub, "agent3")
    phone = Baresip(tmp_path / "phone", CALLER_HZ)
    try:
        go_available(d)
        page = d.page
        box = page.locator("#contact")
        phone.call(f"sip:support@127.0.0.1:{media_worker.sip_port}", 90)
        expect(page.locator("#contact-fields dd[data-field=Caller]")).to_have_text("caller", timeout=15_000)
        # Ringing: no call controls yet.
        expect(page.locator("#contact-call")).to_be_hidden()
        page.click("#accept")
        expect(box).to_have_attribute("data-status", "connected")
        expect(box).to_have_attribute("data-media", "yes")
        expect(box).to_have_attribute("data-held", "no")
        expect(page.locator("#contact-call")).to_be_visible()
        expect(page.locator("#talk-timer")).to_be_hidden()
        expect(page.locator("#contact-timer")).to_have_text(re.compile(r"^00:0\d$"))
        expect(page.locator("#contact-hold")).to_have_text("Hold")
        expect(page.locator("#contact-mute")).to_have_text("Mute")
        d.wait_tone(CALLER_HZ)
        assert hears(phone, AGENT_HZ), "the caller does not hear the agent's microphone"

        # Hold: the caller hears the music on hold, the agent no longer hears the caller.
        page.click("#contact-hold")
        expect(box).to_have_attribute("data-held", "yes")
        expect(page.locator("#contact-hold")).to_have_text("Resume")
        expect(page.locator("#contact-hold")).to_have_attribute("aria-pressed", "true")
        expect(page.locator("#contact-status")).to_have_text("On hold")
        expect(page.locator("#contact-call-status")).to_contain_text("On hold")
        assert hears(phone, HOLD_MUSIC_HZ), "the caller does not hear the music on hold"
        d.wait_tone(CALLER_HZ, present=False)

        # Resume: both hear each other again.
        page.click("#contact-hold")
        expect(box).to_have_attribute("data-held", "no")
        expect(page.locator("#contact-hold")).to_have_text("Hold")
        expect(page.locator("#contact-status")).to_have_text("On call")
        d.wait_tone(CALLER_HZ)
        assert hears(phone, AGENT_HZ), "the caller does not hear the agent after resuming"

        # Mute: the caller hears silence, and the microphone stops at the source; unmute brings it back.
        page.click("#contact-mute")
        expect(page.locator("#contact-mute")).to_have_attribute("aria-pressed", "true")
        expect(page.locator("#contact-mute")).to_have_text("Unmute")
        assert not _mic_enabled(d)
        assert hears_not(phone, AGENT_HZ), "the caller still hears the agent while muted"
        page.click("#contact-mute")
        expect(page.locator("#contact-mute")).to_have_attribute("aria-pressed", "false")
        assert _mic_enabled(d)
        assert hears(phone, AGENT_HZ), "the caller does not hear the agent after unmuting"

        # Keypad digits are acknowledged (their RFC 4733 reception is tested with the media worker).
        for digit in ("1", "2", "#"):
            page.click(f"#contact-keypad button[data-digit='{digit}']")
        expect(page.locator("#contact-sent")).to_have_attribute("data-digits", "12#")
        expect(page.locator("#toast")).to_be_hidden()

        # Muted again, then ended: the mute belongs to the contact and goes with it.
        page.click("#contact-mute")
        expect(page.locator("#contact-mute")).to_have_attribute("aria-pressed", "true")
        page.click("#end-contact")
        expect(page.locator("#state-label")).to_have_text("Wrap-up")
        expect(box).to_have_attribute("data-status", "wrap-up")
        expect(page.locator("#contact-call")).to_be_hidden()
        expect(page.locator("#wrap-up-form")).to_be_visible()
        assert _mic_enabled(d)
        assert ended(phone), phone.output()[-2000:]
        assert d.errors == []
    finally:
        phone.stop()
        d.close()
        force(hub, "agent3", "logged-out")


def test_a_contact_without_media_has_no_call_controls(hub, media_worker, launch_browser, tone_wav):
    only_logged_out(hub)
    d = Desktop(launch_browser(mic=tone_wav(AGENT_HZ)), hub, "agent4")
    try:
        go_available(d)
        page = d.page
        r = httpx.post(
            f"{hub.url}/api/contacts",
            json={"queue": "support", "caller": "+4930555777", "caller_name": "Max Muster"},
            headers=bearer(cached_login(hub.url, "admin")),
        )
        assert r.status_code == 201, r.text
        expect(page.locator("#contact-fields dd[data-field=Caller]")).to_have_text("+4930555777", timeout=15_000)
        page.click("#accept")
        box = page.locator("#contact")
        expect(box).to_have_attribute("data-status", "connected")
        expect(box).to_have_attribute("data-media", "no")
        expect(page.locator("#call-controls")).to_be_visible()
        expect(page.locator("#talk-timer")).to_be_visible()
        expect(page.locator("#contact-call")).to_be_hidden()
        page.click("#end-contact")
        expect(page.locator("#wrap-up-form")).to_be_visible()
        assert d.errors == []
    finally:
        d.close()
        force(hub, "agent4", "logged-out")


def test_the_agent_transfers_a_caller_to_another_queue_from_the_desktop(
    hub, media_worker, launch_browser, tone_wav, tmp_path
):
    only_logged_out(hub)
    d = Desktop(launch_browser(mic=tone_wav(AGENT_HZ)), hub, "agent1")
    phone = Baresip(tmp_path / "phone", CALLER_HZ)
    other = Desktop(launch_browser(mic=tone_wav(1300)), hub, "agent3")
    try:
        go_available(d)
        page = d.page
        phone.call(f"sip:support@127.0.0.1:{media_worker.sip_port}", 40)
        expect(page.locator("#contact-fields dd[data-field=Caller]")).to_have_text("caller", timeout=15_000)
        page.click("#accept")
        expect(page.locator("#state-label")).to_have_text("On call")
        d.wait_tone(CALLER_HZ)
        go_available(other)  # agent3 takes sales calls
        page.fill("#contact-transfer-to", "sales")
        page.click("#contact-transfer")
        expect(page.locator("#state-label")).to_have_text("Wrap-up")
        o = other.page
        expect(o.locator("#contact-fields dd[data-field=Caller]")).to_have_text("caller", timeout=15_000)
        o.click("#accept")
        expect(o.locator("#state-label")).to_have_text("On call")
        other.wait_tone(CALLER_HZ)
        assert hears(phone, 1300), "the caller does not hear the agent it was transferred to"
        o.click("#end-contact")
        assert ended(phone), phone.output()[-2000:]
        assert d.errors == [] and other.errors == []
    finally:
        phone.stop()
        d.close()
        other.close()
        force(hub, "agent1", "logged-out")
        force(hub, "agent3", "logged-out")


def test_the_agent_consults_then_conferences_and_completes_a_transfer_from_the_desktop(
    hub, media_worker, launch_browser, tone_wav, tmp_path
):
    from tests.e2e.test_softphone import BotThread

    only_logged_out(hub)
    d = Desktop(launch_browser(mic=tone_wav(AGENT_HZ)), hub, "agent1")
    phone = Baresip(tmp_path / "phone", CALLER_HZ)
    bot = BotThread(hub, "agent3", 1300.0)
    b = bot.bot
    try:
        go_available(d)
        bot.run(b.login())
        bot.run(b.connect_phone())
        assert bot.run(b.request({"type": "set-state", "state": "available"}))["type"] == "ack"
        page = d.page
        phone.call(f"sip:support@127.0.0.1:{media_worker.sip_port}", 60)
        expect(page.locator("#contact-fields dd[data-field=Caller]")).to_have_text("caller", timeout=15_000)
        page.click("#accept")
        expect(page.locator("#state-label")).to_have_text("On call")
        d.wait_tone(CALLER_HZ)
        # Hold the caller, call the other agent, who answers: the consult controls appear.
        page.click("#contact-hold")
        expect(page.locator("#contact-call-status")).to_have_attribute("data-held", "yes")
        page.fill("#dial-to", "agent3")
        page.click("#dial")
        ring = bot.run(b.expect(lambda m: m["type"] == "call-changed" and m["call"]["status"] == "ringing"))
        assert bot.run(b.request({"type": "call-answer", "call_id": ring["call"]["id"]}))["type"] == "ack"
        expect(page.locator("#contact-consult-label")).to_have_text("Consulting Agent 3", timeout=10_000)
        d.wait_tone(1300)
        # Conference: the caller hears both agents.
        page.click("#contact-conference")
        expect(page.locator("#contact-call-status")).to_have_text("Conference")
        assert hears_all(phone, [AGENT_HZ, 1300]), "the caller does not hear both agents"
        # Complete: the other agent has the caller, this one wraps up.
        page.click("#contact-complete")
        expect(page.locator("#state-label")).to_have_text("Wrap-up")
        took = bot.run(b.expect(lambda m: m["type"] == "contact-changed" and m["contact"]["status"] == "connected", 15))
        assert bot.run(b.hears(CALLER_HZ)), f"the other agent heard {b.hearing():.0f} Hz, not the caller"
        assert hears(phone, 1300) and hears_not(phone, AGENT_HZ), "the caller is not with the other agent alone"
        assert bot.run(b.request({"type": "end-contact", "contact_id": took["contact"]["id"]}))["type"] == "ack"
        assert ended(phone), phone.output()[-2000:]
        assert d.errors == []
    finally:
        phone.stop()
        bot.run(b.request({"type": "set-state", "state": "logged-out"}))
        bot.close()
        d.close()
        force(hub, "agent1", "logged-out")
