"""A flood of INVITEs at a media worker: every one gets a SIP answer, the worker keeps serving.

sipp offers calls to `support` far faster than the worker takes them. With the PyPI pjsua2 (four
call slots) pjsua answers 486 while its slots are full; the worker's guard (bridge/guard.py,
here a burst of 5, then 2 INVITEs/s per source) answers 503 with Retry-After to those beyond the
rate. The burst fills the four slots at once (486 for the next ones); afterwards the guard's rate,
well below what the slots would take, decides (503), however slowly a busy machine ends calls. The
rest are answered, wait in the queue with music and hang up after half a second (sipp's BYE).
Meanwhile a bot agent runs the headset check, whose reports go worker → hub → agent twice a
second: their gaps say whether the worker's event loop and its link to the hub kept up.
Afterwards a caller on baresip reaches that agent and both hear each other.
"""

from __future__ import annotations

import asyncio
import re
import time

import httpx
import pytest

from tests.bridge.peers import free_udp_port, invite, run_sipp
from tests.conftest import HOLD_MUSIC_HZ, HubProcess, WorkerProcess, drop_backend, prepared_backend
from tests.helpers import force
from tests.sip_peers import Baresip, ended, hears
from webrtc.audio import ToneSource
from webrtc.bot import BotAgent
from webrtc.tones import write_tone_wav

pytestmark = pytest.mark.timeout(180)

RATE, SECONDS = 200, 3
CALLER_HZ, AGENT_HZ = 1000.0, 500.0
# The headset check reports every 0.5 s; a gap beyond this means the worker (or its hub link) stalled.
MAX_GAP = 2.0
CODES = ("200", "404", "480", "486", "503")


def flood_scenario() -> str:
    """A UAC for [service] that takes any of CODES as the final answer (ACKed); an answered call
    hangs up after 500 ms. Every INVITE that gets one of them ends as a successful call for sipp."""
    refusals = "\n".join(
        f'  <recv response="{c}" optional="true" next="1"/>' for c in CODES if c != "200"
    )
    return f"""<?xml version="1.0" encoding="ISO-8859-1" ?>
<scenario name="flood">
{invite()}
  <recv response="100" optional="true"/>
  <recv response="180" optional="true"/>
{refusals}
  <recv response="200"/>
  <send>
    <![CDATA[
      ACK sip:[service]@[remote_ip]:[remote_port] SIP/2.0
      Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]
      From: sipp <sip:sipp@[local_ip]:[local_port]>;tag=[pid]SIPpTag00[call_number]
      To: <sip:[service]@[remote_ip]:[remote_port]>[peer_tag_param]
      Call-ID: [call_id]
      CSeq: 1 ACK
      Max-Forwards: 70
      Content-Length: 0
    ]]>
  </send>
  <pause milliseconds="500"/>
  <send retrans="500">
    <![CDATA[
      BYE sip:[service]@[remote_ip]:[remote_port] SIP/2.0
      Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]
      From: sipp <sip:sipp@[local_ip]:[local_port]>;tag=[pid]SIPpTag00[call_number]
      To: <sip:[service]@[remote_ip]:[remote_port]>[peer_tag_param]
      Call-ID: [call_id]
      CSeq: 2 BYE
      Max-Forwards: 70
      Content-Length: 0
    ]]>
  </send>
  <recv response="200" next="2"/>
  <label id="1"/>
  <send>
    <![CDATA[
      ACK sip:[service]@[remote_ip]:[remote_port] SIP/2.0
      [last_Via:]
      From: sipp <sip:sipp@[local_ip]:[local_port]>;tag=[pid]SIPpTag00[call_number]
      [last_To:]
      Call-ID: [call_id]
      CSeq: 1 ACK
      Max-Forwards: 70
      Content-Length: 0
    ]]>
  </send>
  <label id="2"/>
</scenario>
"""


def answers(screen: str) -> dict[str, int]:
    """Final answers to the INVITEs sipp received per code, from its final screen (a code's first row:
    the 200 to the BYE comes later)."""
    out: dict[str, int] = {}
    for code, n in re.findall(r"^\s+(\d{3}) <-+\s+(?:E-RTD\d\s+)?(\d+)", screen, re.MULTILINE):
        out.setdefault(code, int(n))
    return out


async def test_a_flood_of_invites_is_answered_and_the_worker_keeps_serving(tmp_path):
    backend = prepared_backend(tmp_path)
    hub = HubProcess(backend, tmp_path / "hub.log").start()
    music = tmp_path / "hold.wav"
    write_tone_wav(music, HOLD_MUSIC_HZ, 2.0, 8000)
    worker = WorkerProcess(hub, tmp_path / "w.log", UNIDESK_HOLD_MUSIC=str(music),
                           UNIDESK_SIP_INVITE_RATE="2", UNIDESK_SIP_INVITE_BURST="5").start()
    for i in range(1, 6):
        force(hub, f"agent{i}", "logged-out")
    agent = BotAgent(hub.url, "demo", "agent1", "demo", ToneSource(AGENT_HZ))
    phone = Baresip(tmp_path / "phone", int(CALLER_HZ))
    try:
        await agent.login()
        await agent.connect_phone()
        assert (await agent.request({"type": "phone-test", "tone_hz": 800}))["type"] == "ack"
        await agent.expect(lambda m: m["type"] == "phone-check", 10)
        reports: list[float] = []
        flooding = True

        async def watch() -> None:
            while flooding:
                await agent.expect(lambda m: m["type"] == "phone-check", 10)
                reports.append(time.monotonic())

        watcher = asyncio.create_task(watch())
        (tmp_path / "sipp").mkdir()
        (tmp_path / "sipp" / "flood.xml").write_text(flood_scenario())
        started = time.monotonic()
        rc, out = await run_sipp(
            tmp_path / "sipp", "-sf", "flood.xml", f"127.0.0.1:{worker.sip_port}", "-s", "support",
            "-r", str(RATE), "-m", str(RATE * SECONDS), "-l", str(RATE * SECONDS),
            "-p", str(free_udp_port()), "-trace_screen", timeout=90,
        )
        took = time.monotonic() - started
        flooding = False
        await asyncio.wait_for(watcher, 15)
        (screen,) = (tmp_path / "sipp").glob("flood_*_screen.log")
        text = screen.read_text(errors="replace")
        got = answers(text)
        finals = {c: n for c, n in got.items() if c in CODES and n}
        gaps = [b - a for a, b in zip(reports, reports[1:])]
        # The worker logs its INVITE figures every 5 s when they changed: wait for one after the flood.
        deadline = time.monotonic() + 12
        while not (stats := re.findall(r"SIP INVITEs so far: (\{[^}]*\})", worker.log())) or "486" not in stats[-1]:
            if time.monotonic() > deadline:
                break
            await asyncio.sleep(0.2)  # polling the worker's log, bounded
        print(f"\n[flood] {RATE * SECONDS} INVITEs offered at {RATE}/s in {took:.1f} s; answers by code {finals}; "
              f"headset reports during the flood: {len(reports)}, max gap {max(gaps):.2f} s; "
              f"worker: {stats[-1] if stats else 'no report yet'}")
        # Every INVITE got a final SIP answer (sipp counts a call failed otherwise), none went unanswered.
        assert rc == 0, text[-3000:]
        assert sum(finals.values()) == RATE * SECONDS, finals
        assert finals.get("486", 0) > 0 and finals.get("200", 0) > 0, finals
        assert finals.get("503", 0) > 0, f"the guard refused nothing: {finals}"
        assert set(finals) <= {"200", "486", "503"}, finals
        # The worker's loop and its hub link kept up.
        assert worker.proc.poll() is None, worker.log()[-3000:]
        assert max(gaps) < MAX_GAP, f"a headset report came {max(gaps):.2f} s after the one before"
        assert worker.name in httpx.get(hub.url + "/healthz").json()["media_workers"]

        # And a caller still reaches an agent, with audio both ways.
        assert (await agent.request({"type": "phone-test", "tone_hz": 0}))["type"] == "ack"
        assert (await agent.request({"type": "set-state", "state": "available"}))["type"] == "ack"
        phone.call(f"sip:support@127.0.0.1:{worker.sip_port}", 30)
        offer = await agent.expect(lambda m: m["type"] == "contact-offered", 20)
        cid = offer["contact"]["id"]
        assert (await agent.request({"type": "accept-offer", "contact_id": cid}))["type"] == "ack"
        assert await agent.hears(CALLER_HZ), f"the agent heard {agent.hearing():.0f} Hz, not the caller"
        assert await asyncio.to_thread(hears, phone, AGENT_HZ), "the caller does not hear the agent"
        assert (await agent.request({"type": "end-contact", "contact_id": cid}))["type"] == "ack"
        assert await asyncio.to_thread(ended, phone), phone.output()[-2000:]
    finally:
        phone.stop()
        await agent.close()
        worker.stop()
        hub.stop()
        drop_backend(backend)
