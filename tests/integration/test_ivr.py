"""The dial plan with real SIP peers: a menu answered with RFC 4733 digits (sipp playing the DTMF pcaps of
sip-tester), opening hours, and position announcements to a waiting caller (baresip).

What a baresip phone heard is matched against the prompt's own file: the dump (the hold music's tone
removed) is cross-correlated with the prompt's samples. Speech over music, the music alone, or another
prompt do not match; the prompt played through G.711 does.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest

from tests.bridge.peers import BYE_ANSWERED, PCMA_DTMF_MEDIA, free_udp_port, invite, rtp_base, run_sipp
from tests.conftest import HOLD_MUSIC_HZ, HubProcess, WorkerProcess, drop_backend, prepared_backend, set_queue_config
from tests.helpers import force
from tests.sip_peers import Baresip, ended
from webrtc.audio import ToneSource, load_audio
from webrtc.bot import BotAgent
from webrtc.prompts import prompt_path
from webrtc.tones import write_tone_wav

AGENT_HZ = 500.0
# Seconds between position announcements in the support queue here (30 by default).
ANNOUNCE = 2.0
# Normalised correlation above which a prompt counts as heard (the prompt through G.711: ~0.9;
# music, silence or another prompt: below 0.3).
HEARD = 0.6


def add_routes(b, *routes: dict) -> None:
    """SIP routes of the demo tenant, written to the store (read by the hub at each call)."""
    from sqlalchemy import select

    from store.db import make_engine, make_sessionmaker
    from store.models import Tenant
    from store.repos import TenantRepo

    url = b.database_url.replace("sqlite://", "sqlite+aiosqlite://").replace("postgresql://", "postgresql+asyncpg://")

    async def run() -> None:
        engine = make_engine(url)
        async with make_sessionmaker(engine)() as s, s.begin():
            tenant = (await s.execute(select(Tenant).where(Tenant.slug == "demo"))).scalar_one()
            repo = TenantRepo(s, tenant.id)
            queues = {q.name: q.id for q in await repo.queues()}
            for r in routes:
                r = dict(r)
                queue = r.pop("queue", None)
                await repo.add_sip_route(r.pop("address"), queues[queue] if queue else None,
                                         ["127.0.0.0/8"], **r)
        await engine.dispose()

    with ThreadPoolExecutor(1) as pool:
        pool.submit(asyncio.run, run()).result()


MENU = {"prompt": "welcome-menu", "choices": {"1": "support", "2": "sales"}}


@pytest.fixture(scope="module")
def plan(tmp_path_factory) -> Iterator[tuple[HubProcess, WorkerProcess]]:
    """A hub and media worker of their own: support announces positions every ANNOUNCE seconds."""
    folder = tmp_path_factory.mktemp("ivr")
    backend = prepared_backend(folder)
    set_queue_config(backend, "demo", "support", announce_interval=ANNOUNCE)
    add_routes(
        backend,
        # One wrong digit is forgiven; a second ends the call.
        {"address": "menu-strict", "ivr": {**MENU, "timeout_seconds": 5, "retries": 1}},
        # Silence: straight to support after the menu and a second.
        {"address": "menu-quiet", "ivr": {**MENU, "timeout_seconds": 1, "retries": 0, "default": "support"}},
        # Open on no day at all.
        {"address": "after-hours", "queue": "support", "hours": {"timezone": "Europe/Berlin"}},
    )
    hub = HubProcess(backend, folder / "hub.log").start()
    music = folder / "hold.wav"
    write_tone_wav(music, HOLD_MUSIC_HZ, 2.0, 8000)
    worker = WorkerProcess(hub, folder / "worker.log", UNIDESK_HOLD_MUSIC=str(music)).start()
    try:
        yield hub, worker
    finally:
        worker.stop()
        hub.stop()
        drop_backend(backend)


async def available(hub, username: str) -> BotAgent:
    b = BotAgent(hub.url, "demo", username, "demo", ToneSource(AGENT_HZ))
    await b.login()
    await b.connect_phone()
    r = await b.request({"type": "set-state", "state": "available"})
    assert r["type"] == "ack", r
    return b


def nobody(hub) -> None:
    for i in range(1, 6):
        force(hub, f"agent{i}", "logged-out")


async def finish(agent: BotAgent, contact_id: str) -> None:
    assert (await agent.request({"type": "end-contact", "contact_id": contact_id}))["type"] == "ack"
    await agent.request({"type": "complete-wrap-up", "contact_id": contact_id, "code": "resolved"})
    await agent.request({"type": "set-state", "state": "logged-out"})
    await agent.close()


# ---------------------------------------------------------------- hearing prompts


def _without_music(x: np.ndarray) -> np.ndarray:
    """The signal with the hold music's tone (and DC) cut out of its spectrum."""
    spec = np.fft.rfft(x.astype(np.float64))
    f = np.fft.rfftfreq(len(x), 1 / 8000)
    spec[(np.abs(f - HOLD_MUSIC_HZ) < 25) | (f < 60)] = 0
    return np.fft.irfft(spec, len(x))


PIECE = 8000  # one second of the prompt at a time (by default)


def match(heard: np.ndarray, prompt: str | np.ndarray, piece: int = PIECE) -> float:
    """How well the prompt (a prompt's name, or samples) shows in what was heard: the mean, over its
    one-second pieces that carry sound, of each piece's best normalised correlation with any stretch
    of what was heard. A frame lost or trimmed on the way shifts what follows it by 20 ms: that costs
    the one piece it falls in, not the whole prompt's alignment."""
    samples = load_audio(str(prompt_path(prompt))) if isinstance(prompt, str) else prompt
    if len(heard) < len(samples):
        return 0.0
    p = _without_music(samples)
    x = _without_music(heard)
    pieces = [p[i:i + piece] for i in range(0, max(1, len(p) - piece // 2), piece)]
    level = [float(np.sqrt(np.mean(q * q))) for q in pieces]
    scores = [_best(x, q) for q, lv in zip(pieces, level) if lv > 0.1 * max(level)]
    return float(np.mean(scores)) if scores else 0.0


def _best(x: np.ndarray, p: np.ndarray) -> float:
    """The best normalised correlation of `p` with any stretch of `x`."""
    n = len(p)
    if len(x) < n:
        return 0.0
    size = 1 << int(np.ceil(np.log2(len(x) + n)))
    corr = np.fft.irfft(np.fft.rfft(x, size) * np.conj(np.fft.rfft(p, size)), size)[: len(x) - n + 1]
    energy = np.concatenate([[0.0], np.cumsum(x * x)])
    norms = np.sqrt(np.maximum(energy[n:] - energy[:-n], 1e-9)) * np.linalg.norm(p)
    # Stretches of near silence say nothing (their tiny norm would inflate the ratio).
    loud = norms > 0.05 * np.max(norms)
    return float(np.max(np.where(loud, corr / norms, 0.0)))


def dump(phone: Baresip) -> np.ndarray:
    """What the phone heard so far (its dump grows during the call; the header is written at the end)."""
    dumps = sorted(phone.folder.glob("dump-*-dec.wav"))
    if not dumps:
        return np.zeros(0, dtype=np.int16)
    raw = dumps[-1].read_bytes()[44:]
    return np.frombuffer(raw[: len(raw) // 2 * 2], dtype="<i2")


def hears_prompt(phone: Baresip, prompt: str, timeout: float = 15.0) -> float:
    """Poll the phone's dump until `prompt` shows in it (bounded); the best match seen."""
    deadline, best = time.monotonic() + timeout, 0.0
    while time.monotonic() < deadline:
        best = max(best, match(dump(phone), prompt))
        if best >= HEARD:
            return best
        time.sleep(0.2)  # polling a file another process writes
    return best


# ---------------------------------------------------------------- sipp with digits


def dialling(digits: list[tuple[str, int]]) -> str:
    """A sipp UAC scenario calling [service], playing RFC 4733 digits (each after a pause in ms), then
    waiting for the far end to hang up (the agent, or the hub)."""
    plays = "\n".join(
        f'  <pause milliseconds="{pause}"/>\n  <nop><action><exec play_pcap_audio="pcap/dtmf_2833_{d}.pcap"/></action></nop>'
        for d, pause in digits
    )
    return f"""<?xml version="1.0" encoding="ISO-8859-1" ?>
<scenario name="menu caller">
{invite(PCMA_DTMF_MEDIA)}
  <recv response="100" optional="true"/>
  <recv response="180" optional="true"/>
  <recv response="200" rtd="true"/>
  <send>
    <![CDATA[
      ACK sip:[service]@[remote_ip]:[remote_port] SIP/2.0
      Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]
      From: sipp <sip:sipp@[local_ip]:[local_port]>;tag=[pid]SIPpTag00[call_number]
      To: <sip:[service]@[remote_ip]:[remote_port]>[peer_tag_param]
      Call-ID: [call_id]
      CSeq: 1 ACK
      Contact: sip:sipp@[local_ip]:[local_port]
      Max-Forwards: 70
      Content-Length: 0
    ]]>
  </send>
{plays}
{BYE_ANSWERED}
</scenario>
"""


async def sipp_call(folder: Path, worker: WorkerProcess, address: str, digits: list[tuple[str, int]]) -> tuple[int, str]:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "menu.xml").write_text(dialling(digits))
    return await run_sipp(
        folder, "-sf", "menu.xml", f"127.0.0.1:{worker.sip_port}", "-s", address, "-m", "1",
        "-p", str(free_udp_port()), "-mp", str(rtp_base()), timeout=40,
    )


# ---------------------------------------------------------------- the tests


async def test_pressing_2_in_the_menu_reaches_sales(plan, tmp_path):
    hub, worker = plan
    nobody(hub)
    agent = await available(hub, "agent3")  # in support and in sales: the queue tells which was chosen
    try:
        # Pressed a second into the menu prompt: digits count while it plays.
        call = asyncio.create_task(sipp_call(tmp_path / "sipp", worker, "menu", [("2", 1000)]))
        offer = await agent.expect(lambda m: m["type"] == "contact-offered", 20)
        assert offer["contact"]["queue"] == "sales", offer
        assert offer["contact"]["data"]["menu"] == "2"
        cid = offer["contact"]["id"]
        assert (await agent.request({"type": "accept-offer", "contact_id": cid}))["type"] == "ack"
        # The agent hangs up: sipp gets its BYE and ends well.
        await finish(agent, cid)
        rc, out = await call
        assert rc == 0, out[-2000:]
    finally:
        await agent.close()


async def test_an_invalid_digit_replays_the_menu_and_the_next_one_counts(plan, tmp_path):
    hub, worker = plan
    nobody(hub)
    agent = await available(hub, "agent4")
    try:
        call = asyncio.create_task(
            sipp_call(tmp_path / "sipp", worker, "menu-strict", [("9", 1000), ("2", 2500)])
        )
        offer = await agent.expect(lambda m: m["type"] == "contact-offered", 25)
        assert offer["contact"]["queue"] == "sales" and offer["contact"]["data"]["menu"] == "92", offer
        cid = offer["contact"]["id"]
        assert (await agent.request({"type": "accept-offer", "contact_id": cid}))["type"] == "ack"
        await finish(agent, cid)
        rc, out = await call
        assert rc == 0, out[-2000:]
    finally:
        await agent.close()


async def test_two_invalid_digits_end_the_call_after_a_goodbye(plan, tmp_path):
    hub, worker = plan
    nobody(hub)
    started = time.monotonic()
    # No agent anywhere: the far end (the hub) must hang up, or sipp times out waiting for the BYE.
    rc, out = await sipp_call(tmp_path / "sipp", worker, "menu-strict", [("9", 1000), ("8", 1000)])
    assert rc == 0, out[-2000:]
    assert time.monotonic() - started < 25
    assert "left the menu: no choice" in hub.log()


async def test_the_menu_is_heard_and_silence_leads_to_the_default_queue(plan, tmp_path):
    hub, worker = plan
    nobody(hub)
    agent = await available(hub, "agent1")
    phone = Baresip(tmp_path / "phone", 1000)
    try:
        phone.call(f"sip:menu-quiet@127.0.0.1:{worker.sip_port}", 40)
        offer = await agent.expect(lambda m: m["type"] == "contact-offered", 20)
        assert offer["contact"]["queue"] == "support" and "menu" not in offer["contact"]["data"]
        heard = dump(phone)
        assert match(heard, "welcome-menu") >= HEARD, "the caller did not hear the menu"
        assert match(heard, "closed") < 0.4, "another prompt matches too: the check proves nothing"
        cid = offer["contact"]["id"]
        assert (await agent.request({"type": "accept-offer", "contact_id": cid}))["type"] == "ack"
        await finish(agent, cid)
        assert await asyncio.to_thread(ended, phone)
    finally:
        phone.stop()
        await agent.close()


async def test_outside_opening_hours_the_caller_hears_closed_and_is_hung_up(plan, tmp_path):
    hub, worker = plan
    phone = Baresip(tmp_path / "phone", 1000)
    try:
        phone.call(f"sip:after-hours@127.0.0.1:{worker.sip_port}", 30)
        # We hang up (after the prompt), long before the phone's 30 s.
        assert await asyncio.to_thread(ended, phone, 20), phone.output()[-2000:]
        heard = dump(phone)
        assert match(heard, "closed") >= HEARD, f"no closed prompt (best match {match(heard, 'closed'):.2f})"
        assert match(heard, "welcome-menu") < 0.4
        # The whole prompt was heard before the hangup: its last second too (in halves).
        tail = load_audio(str(prompt_path("closed")))[-8000:]
        assert match(heard, tail, PIECE // 2) >= HEARD
    finally:
        phone.stop()


async def test_a_waiting_caller_hears_its_position_over_the_music(plan, tmp_path):
    hub, worker = plan
    nobody(hub)  # nobody takes the call: it waits in support, which announces every ANNOUNCE seconds
    phone = Baresip(tmp_path / "phone", 1000)
    try:
        phone.call(f"sip:support@127.0.0.1:{worker.sip_port}", 30)
        score = await asyncio.to_thread(hears_prompt, phone, "caller-number", 15)
        assert score >= HEARD, f"no position announcement (best match {score:.2f})"
        score = await asyncio.to_thread(hears_prompt, phone, "number-1", 5)
        assert score >= HEARD, f"the caller is first in line, not told so (best match {score:.2f})"
        heard = dump(phone)
        assert match(heard, "number-2") < 0.5, "another number matches too: the check proves nothing"
        # The music went on beneath it.
        from tests.sip_peers import windows
        from webrtc.tones import tone_present

        assert any(tone_present(w, 8000, HOLD_MUSIC_HZ) for w in windows(heard, 8000))
    finally:
        phone.stop()
