"""Calls from real SIP phones answered in the browser: baresip and sipp call the support queue, a Chromium
agent (fake microphone playing a tone) accepts on the desktop, and audio flows both ways."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

from playwright.sync_api import expect

from tests.e2e.test_softphone import Desktop
from tests.helpers import force
from tests.sip_peers import Baresip, ended, hears

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


def _pcap_folder(tmp: Path) -> Path:
    """sipp's uac_pcap plays pcap/g711a.pcap relative to where it runs: copy the package's pcaps there."""
    share = next(Path(p) for p in ("/usr/share/sip-tester", "/usr/share/doc/sip-tester") if Path(p).exists())
    pcaps = [p for p in share.rglob("*.pcap")]
    assert pcaps, f"no pcaps under {share}"
    (tmp / "pcap").mkdir(parents=True, exist_ok=True)
    for p in pcaps:
        shutil.copy(p, tmp / "pcap" / p.name)
    return tmp


def test_a_sipp_caller_with_g711_audio_is_heard_in_the_browser(hub, media_worker, launch_browser, tone_wav, tmp_path):
    only_logged_out(hub)
    d = Desktop(launch_browser(mic=tone_wav(AGENT_HZ)), hub, "agent2")
    run_in = _pcap_folder(tmp_path)
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
