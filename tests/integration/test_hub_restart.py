"""A hub restarts while a caller on a SIP phone talks to an agent.

The call's audio never passes through the hub: baresip ⇄ media worker ⇄ the agent's softphone. So the
two keep hearing each other while no hub runs. What happens next depends on where the live state is:

- PostgreSQL + Redis: it outlives the hub. The worker reconnects and resumes its command stream,
  the agent reconnects, and call control works again (the agent ends the contact: the caller gets a BYE).
- embedded: it lived in the hub's process and is gone. The worker notices (its stream starts over),
  ends the calls nobody knows any more (the caller gets a BYE instead of talking on to an agent whose
  desktop no longer shows the call) and obeys the new hub: a new call reaches an agent.
"""

from __future__ import annotations

import asyncio
import time

import httpx
import pytest

from tests.conftest import HOLD_MUSIC_HZ, HubProcess, WorkerProcess, drop_backend, prepared_backend
from tests.helpers import force
from tests.sip_peers import Baresip, ended, hears
from webrtc.audio import ToneSource
from webrtc.bot import BotAgent
from webrtc.tones import write_tone_wav

pytestmark = pytest.mark.timeout(150)

CALLER_HZ, AGENT_HZ = 1000.0, 500.0


async def available(hub: HubProcess, username: str, hz: float) -> BotAgent:
    bot = BotAgent(hub.url, "demo", username, "demo", ToneSource(hz))
    await bot.login()
    await bot.connect_phone()
    assert (await bot.request({"type": "set-state", "state": "available"}))["type"] == "ack"
    return bot


def worker_listed(hub: HubProcess, name: str, timeout: float = 20.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if name in httpx.get(hub.url + "/healthz", timeout=2).json().get("media_workers", []):
                return True
        except httpx.TransportError:
            pass
        time.sleep(0.1)  # polling the new hub's view, bounded
    return False


class Setup:
    def __init__(self, tmp_path) -> None:
        self.backend = prepared_backend(tmp_path)
        self.tmp = tmp_path
        self.hub = HubProcess(self.backend, tmp_path / "hub.log").start()
        music = tmp_path / "hold.wav"
        write_tone_wav(music, HOLD_MUSIC_HZ, 2.0, 8000)
        self.worker = WorkerProcess(self.hub, tmp_path / "w.log", UNIDESK_HOLD_MUSIC=str(music)).start()
        for i in range(1, 6):
            force(self.hub, f"agent{i}", "logged-out")
        self.hubs = [self.hub]
        self.phones: list[Baresip] = []
        self.bots: list[BotAgent] = []

    async def connected_call(self) -> tuple[BotAgent, Baresip, str]:
        agent = await available(self.hub, "agent1", AGENT_HZ)
        self.bots.append(agent)
        phone = Baresip(self.tmp / f"phone{len(self.phones)}", int(CALLER_HZ))
        self.phones.append(phone)
        phone.call(f"sip:support@127.0.0.1:{self.worker.sip_port}", 90)
        offer = await agent.expect(lambda m: m["type"] == "contact-offered", 20)
        cid = offer["contact"]["id"]
        assert (await agent.request({"type": "accept-offer", "contact_id": cid}))["type"] == "ack"
        assert await agent.hears(CALLER_HZ), f"the agent heard {agent.hearing():.0f} Hz, not the caller"
        assert await asyncio.to_thread(hears, phone, AGENT_HZ), "the caller does not hear the agent"
        return agent, phone, cid

    async def close(self) -> None:
        for p in self.phones:
            p.stop()
        for b in self.bots:
            await b.close()
        self.worker.stop()
        for h in self.hubs:
            h.stop()
        drop_backend(self.backend)


async def _through_the_restart(s: Setup, agent: BotAgent, phone: Baresip) -> None:
    """Restart the hub; while none runs, and after, the caller and the agent still hear each other."""
    s.hub.stop()
    assert await asyncio.to_thread(hears, phone, AGENT_HZ, 5), "the caller lost the agent while no hub ran"
    assert await agent.hears(CALLER_HZ, 5), "the agent lost the caller while no hub ran"
    s.hub = HubProcess(s.backend, s.tmp / "hub2.log", UNIDESK_PORT=str(s.hub.port)).start()
    s.hubs.append(s.hub)
    assert await asyncio.to_thread(worker_listed, s.hub, s.worker.name), s.worker.log()[-3000:]


@pytest.mark.redis_only
async def test_a_sip_call_outlives_a_hub_restart_and_is_controlled_afterwards(tmp_path):
    s = Setup(tmp_path)
    try:
        agent, phone, cid = await s.connected_call()
        await _through_the_restart(s, agent, phone)
        await agent.reconnect()
        assert await asyncio.to_thread(hears, phone, AGENT_HZ, 5), "the caller lost the agent after the restart"
        assert await agent.hears(CALLER_HZ, 5)
        # The agent still has the contact, and ending it ends the SIP call (BYE through the resumed stream).
        assert (await agent.request({"type": "end-contact", "contact_id": cid}))["type"] == "ack"
        assert await asyncio.to_thread(ended, phone, 20), phone.output()[-2000:]
        wrap = await agent.expect(lambda m: m["type"] == "contact-changed" and m["contact"]["status"] == "wrap-up", 20)
        assert wrap["contact"]["id"] == cid
        assert "starting afresh" not in s.worker.log()
    finally:
        await s.close()


# The embedded hub keeps its live state in its own process: a restart loses it.
@pytest.mark.embedded_only
async def test_after_an_embedded_hub_restart_the_worker_ends_the_orphaned_call_and_serves_the_new_hub(tmp_path):
    s = Setup(tmp_path)
    try:
        agent, phone, _ = await s.connected_call()
        await _through_the_restart(s, agent, phone)
        # The new hub knows nothing of the call: the worker ends it rather than leave it uncontrolled.
        assert await asyncio.to_thread(ended, phone, 15), phone.output()[-2000:]
        assert "starting afresh" in s.worker.log()
        # And it obeys the new hub: a softphone and a new call work.
        second = await available(s.hub, "agent2", 800.0)
        s.bots.append(second)
        phone2 = Baresip(tmp_path / "phone-after", int(CALLER_HZ))
        s.phones.append(phone2)
        phone2.call(f"sip:support@127.0.0.1:{s.worker.sip_port}", 40)
        offer = await second.expect(lambda m: m["type"] == "contact-offered", 20)
        cid = offer["contact"]["id"]
        assert (await second.request({"type": "accept-offer", "contact_id": cid}))["type"] == "ack"
        assert await second.hears(CALLER_HZ)
        assert await asyncio.to_thread(hears, phone2, 800.0)
        assert (await second.request({"type": "end-contact", "contact_id": cid}))["type"] == "ack"
        assert await asyncio.to_thread(ended, phone2), phone2.output()[-2000:]
    finally:
        await s.close()
