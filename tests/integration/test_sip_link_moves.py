"""A softphone that comes back (a reloaded page) on another media worker mid-call is followed there.

Placement takes a worker with room, together with the tenant's other softphones, then the least loaded,
then the last by name: each test names (and sizes) its workers so that a reloaded softphone lands where
the step needs it, and checks it landed there from the workers' logs. After each move both sides prove
by frequency that they hear each other again; after the calls end no link or join is left, in the
workers (every link leg closed) or in the hub's live state (`unidesk_media_links`).
"""

import asyncio
import re

import httpx

from tests.conftest import HOLD_MUSIC_HZ, HubProcess, WorkerProcess, drop_backend, prepared_backend
from tests.integration.test_sip import available_bot, only, record
from tests.integration.test_sip_link import link_lines, wait_for
from tests.sip_peers import Baresip, ended, hears, hears_not
from webrtc.audio import ToneSource
from webrtc.bot import BotAgent
from webrtc.tones import write_tone_wav

CALLER_HZ, FIRST_HZ, SECOND_HZ, SUPERVISOR_HZ = 1000.0, 500.0, 800.0, 1500.0


def media_links(hub: HubProcess) -> dict[str, float]:
    """The hub's figures of open links and joins (read from the live store when scraped)."""
    text = httpx.get(f"{hub.url}/metrics", timeout=5).text
    return {kind: float(n) for kind, n in re.findall(r'^unidesk_media_links\{kind="(\w+)"\} (\S+)$', text, re.M)}


class Workers:
    """A hub and its media workers, started in the order the test needs (hold music: a known tone)."""

    def __init__(self, tmp_path) -> None:
        self.tmp = tmp_path
        self.backend = prepared_backend(tmp_path)
        self.hub = HubProcess(self.backend, tmp_path / "hub.log").start()
        music = tmp_path / "hold.wav"
        write_tone_wav(music, HOLD_MUSIC_HZ, 2.0, 8000)
        self.env = {"UNIDESK_HOLD_MUSIC": str(music)}
        self.started: list[WorkerProcess] = []

    def start(self, name: str, **env: str) -> WorkerProcess:
        w = WorkerProcess(self.hub, self.tmp / f"{name}.log", name=name, **self.env, **env).start()
        self.started.append(w)
        return w

    def stop(self) -> None:
        for w in self.started:
            w.stop()
        self.hub.stop()
        drop_backend(self.backend)

    async def close(self, *parties: BotAgent | Baresip | None) -> None:
        """The end of a test: its phones stopped and bots closed (None: never made), in that order, then
        the workers and the hub."""
        for party in parties:
            if isinstance(party, Baresip):
                party.stop()
            elif party is not None:
                await party.close()
        self.stop()


async def reload(agent: BotAgent, phone: Baresip | None = None, hz: float = 0.0) -> None:
    """The agent's page reloads: its peer connection closes, the hub notices, a new one is offered. The
    caller (`phone`) hears nothing of the agent's tone `hz` meanwhile: what it hears next is the new one."""
    assert agent.pc is not None
    await agent.pc.close()
    await agent.expect(lambda m: m["type"] == "phone-state" and m["state"] == "lost", 10)
    if phone is not None:
        assert await asyncio.to_thread(hears_not, phone, hz), "the caller still hears the lost softphone"
    await agent.new_phone()


async def end_call(agent: BotAgent, phone: Baresip, cid: str) -> None:
    """The agent ends the caller's contact: the caller gets a BYE, the agent completes its wrap-up."""
    assert (await agent.request({"type": "end-contact", "contact_id": cid}))["type"] == "ack"
    assert await asyncio.to_thread(ended, phone), phone.output()[-2000:]
    await agent.request({"type": "complete-wrap-up", "contact_id": cid, "code": "resolved"})


async def test_a_softphone_moving_between_workers_mid_call_keeps_its_caller(tmp_path):
    w = Workers(tmp_path)
    agent = None
    phone = Baresip(tmp_path / "phone", int(CALLER_HZ))
    try:
        only(w.hub)
        b = w.start("b-agents")
        agent = await available_bot(w.hub, "agent1", FIRST_HZ)
        z = w.start("z-callers")
        phone.call(f"sip:support@127.0.0.1:{z.sip_port}", 120)
        offer = await agent.expect(lambda m: m["type"] == "contact-offered", 15)
        cid = offer["contact"]["id"]
        assert (await agent.request({"type": "accept-offer", "contact_id": cid}))["type"] == "ack"
        assert await agent.hears(CALLER_HZ) and await asyncio.to_thread(hears, phone, FIRST_HZ)
        assert len(link_lines(z, "side a")) == 1 and len(link_lines(b, "side b")) == 1

        # 1. Linked, back on the caller's worker: the link goes at both ends, the two talk there directly.
        await reload(agent, phone, FIRST_HZ)
        assert await wait_for(lambda: len(link_lines(z, "closed")) == 1 and len(link_lines(b, "closed")) == 1)
        assert await agent.hears(CALLER_HZ), f"on the caller's worker the agent heard {agent.hearing():.0f} Hz"
        assert await asyncio.to_thread(hears, phone, FIRST_HZ), "the caller does not hear the agent on its worker"
        assert media_links(w.hub) == {"link": 0.0, "join": 0.0}

        # Direct, back on the same worker (no other has more room): connected to the caller again.
        await reload(agent, phone, FIRST_HZ)
        assert await agent.hears(CALLER_HZ), f"back beside the caller the agent heard {agent.hearing():.0f} Hz"
        assert await asyncio.to_thread(hears, phone, FIRST_HZ), "the caller does not hear the agent after the reload"
        assert len(link_lines(z, "side a")) == 1 and len(link_lines(b, "side b")) == 1

        # 2. Direct, back on another worker: a link is made for the call.
        zz = w.start("zz-moved")
        await reload(agent, phone, FIRST_HZ)
        assert await agent.hears(CALLER_HZ), f"over the new link the agent heard {agent.hearing():.0f} Hz"
        assert await asyncio.to_thread(hears, phone, FIRST_HZ), "the caller does not hear the agent over the new link"
        assert len(link_lines(z, "side a")) == 2 and len(link_lines(zz, "side b")) == 1
        assert media_links(w.hub)["link"] == 1.0

        # Hold and resume work on the moved call (the caller's worker keeps the call's routing).
        assert (await agent.request({"type": "call-hold", "call_id": cid, "on": True}))["type"] == "ack"
        assert await asyncio.to_thread(hears, phone, HOLD_MUSIC_HZ), "the held caller hears no music"
        assert await agent.hears_not(CALLER_HZ)

        # 3. Linked (and held), back on a third worker: the link is re-pointed, the old far leg goes.
        zzz = w.start("zzz-moved")
        await reload(agent, phone, FIRST_HZ)
        assert await wait_for(lambda: len(link_lines(z, "re-pointed")) == 1 and len(link_lines(zz, "closed")) == 1)
        assert len(link_lines(zzz, "side b")) == 1
        assert await asyncio.to_thread(hears, phone, HOLD_MUSIC_HZ), "the caller lost the music on the way"
        assert await agent.hears_not(CALLER_HZ), "the agent hears a held caller after moving"
        assert (await agent.request({"type": "call-hold", "call_id": cid, "on": False}))["type"] == "ack"
        assert await agent.hears(CALLER_HZ), f"on the third worker the agent heard {agent.hearing():.0f} Hz"
        assert await asyncio.to_thread(hears, phone, FIRST_HZ), "the caller does not hear the agent on the third worker"
        assert media_links(w.hub) == {"link": 1.0, "join": 0.0}

        # The agent ends the call: the caller gets a BYE, the link goes at both ends, nothing is left.
        await end_call(agent, phone, cid)
        assert await wait_for(lambda: len(link_lines(z, "closed")) == 2 and len(link_lines(zzz, "closed")) == 1)
        assert media_links(w.hub) == {"link": 0.0, "join": 0.0}
        assert record(w.hub, cid)["data"]["ended_by"] == "agent"
    finally:
        await w.close(phone, agent)


async def test_a_reload_reconnects_every_link_of_the_agent_on_its_worker(tmp_path):
    w = Workers(tmp_path)
    first = second = None
    phone = Baresip(tmp_path / "phone", int(CALLER_HZ))
    try:
        only(w.hub)
        # One softphone per agents' worker: agent1 on B, agent2 on D; the caller on A.
        b = w.start("b-agents", UNIDESK_MEDIA_CAPACITY="1")
        first = await available_bot(w.hub, "agent1", FIRST_HZ)
        d = w.start("d-agents", UNIDESK_MEDIA_CAPACITY="1")
        second = await available_bot(w.hub, "agent2", SECOND_HZ)
        await second.request({"type": "set-state", "state": "paused"})
        a = w.start("a-callers")
        phone.call(f"sip:support@127.0.0.1:{a.sip_port}", 90)
        offer = await first.expect(lambda m: m["type"] == "contact-offered", 15)
        cid = offer["contact"]["id"]
        assert (await first.request({"type": "accept-offer", "contact_id": cid}))["type"] == "ack"
        assert await first.hears(CALLER_HZ)

        # agent1 holds the caller (linked from A) and takes agent2's call (mixed on D, joined from B):
        # two link legs for agent1 on B.
        assert (await first.request({"type": "call-hold", "call_id": cid, "on": True}))["type"] == "ack"
        await first.expect(lambda m: m["type"] == "contact-changed" and m["contact"].get("held"))
        ack = await second.request({"type": "call-dial", "to": "agent1"})
        assert ack["type"] == "ack", ack
        k = ack["call_id"]
        await first.expect(lambda m: m["type"] == "call-changed" and m["call"]["status"] == "ringing")
        assert (await first.request({"type": "call-answer", "call_id": k}))["type"] == "ack"
        assert await first.hears(SECOND_HZ) and await second.hears(FIRST_HZ)
        assert len(link_lines(b, "side b")) == 2 and len(link_lines(d, "side a")) == 1
        assert media_links(w.hub) == {"link": 1.0, "join": 1.0}

        # agent1 reloads, back on B (D is full): both legs hear the new softphone, and it hears both.
        await reload(first)
        assert not link_lines(a, "re-pointed") and not link_lines(b, "closed")
        assert await first.hears(SECOND_HZ), f"after the reload agent1 heard {first.hearing():.0f} Hz, not agent2"
        assert await second.hears(FIRST_HZ)
        assert await asyncio.to_thread(hears, phone, HOLD_MUSIC_HZ)
        # Back to the caller: agent2's call held (on D), the caller resumed (on A), heard over the other leg.
        assert (await first.request({"type": "call-hold", "call_id": k, "on": True}))["type"] == "ack"
        assert (await first.request({"type": "call-hold", "call_id": cid, "on": False}))["type"] == "ack"
        assert await first.hears(CALLER_HZ), f"after the reload agent1 heard {first.hearing():.0f} Hz, not the caller"
        assert await asyncio.to_thread(hears, phone, FIRST_HZ), "the caller does not hear agent1 after the reload"
        assert await second.hears_not(FIRST_HZ)

        # Both calls end: every link leg is closed on all three workers, nothing is left in the live state.
        assert (await second.request({"type": "call-hangup", "call_id": k}))["type"] == "ack"
        await end_call(first, phone, cid)
        assert await wait_for(lambda: len(link_lines(b, "closed")) == 2 and len(link_lines(a, "closed")) == 1
                              and len(link_lines(d, "closed")) == 1)
        assert media_links(w.hub) == {"link": 0.0, "join": 0.0}
    finally:
        await w.close(phone, first, second)


async def test_the_agents_of_a_call_between_workers_follow_their_softphones(tmp_path):
    w = Workers(tmp_path)
    first = second = None
    try:
        only(w.hub)
        b = w.start("b-agents", UNIDESK_MEDIA_CAPACITY="1")
        first = await available_bot(w.hub, "agent1", FIRST_HZ)
        d = w.start("d-agents", UNIDESK_MEDIA_CAPACITY="1")
        second = await available_bot(w.hub, "agent2", SECOND_HZ)
        # agent1 calls agent2: mixed on B (the caller's), agent2 joins it from D.
        ack = await first.request({"type": "call-dial", "to": "agent2"})
        assert ack["type"] == "ack", ack
        k = ack["call_id"]
        await second.expect(lambda m: m["type"] == "call-changed" and m["call"]["status"] == "ringing")
        assert (await second.request({"type": "call-answer", "call_id": k}))["type"] == "ack"
        assert await first.hears(SECOND_HZ) and await second.hears(FIRST_HZ)
        assert len(link_lines(b, "side a")) == 1 and len(link_lines(d, "side b")) == 1

        # agent2 comes back on E (D has room again, E is last by name): its join is re-pointed to E.
        e = w.start("e-moved")
        await reload(second)
        assert await wait_for(lambda: len(link_lines(b, "re-pointed")) == 1 and len(link_lines(d, "closed")) == 1)
        assert len(link_lines(e, "side b")) == 1
        assert await second.hears(FIRST_HZ), f"on E agent2 heard {second.hearing():.0f} Hz"
        assert await first.hears(SECOND_HZ)

        # agent1, who was on the mix's worker directly, comes back on E too (with the tenant's other
        # softphone): it joins the mix on B now.
        await reload(first)
        # (A re-pointed leg says "side a;", an opened one "side a)".)
        assert await wait_for(lambda: len(link_lines(b, "side a)")) == 2 and len(link_lines(e, "side b")) == 2)
        assert await first.hears(SECOND_HZ), f"on E agent1 heard {first.hearing():.0f} Hz"
        assert await second.hears(FIRST_HZ), f"agent2 heard {second.hearing():.0f} Hz after agent1 moved"
        assert media_links(w.hub) == {"link": 0.0, "join": 2.0}

        # The call ends: both joins are left at both ends; nothing is left.
        assert (await first.request({"type": "call-hangup", "call_id": k}))["type"] == "ack"
        assert await wait_for(lambda: len(link_lines(b, "closed")) == 2 and len(link_lines(e, "closed")) == 2)
        assert await second.hears_not(FIRST_HZ)
        assert media_links(w.hub) == {"link": 0.0, "join": 0.0}
    finally:
        await w.close(first, second)


async def test_a_supervisor_keeps_listening_to_an_agent_that_moves(tmp_path):
    w = Workers(tmp_path)
    agent = None
    sup = None
    phone = Baresip(tmp_path / "phone", int(CALLER_HZ))
    try:
        only(w.hub)
        # The supervisor's softphone fills B; agent1's goes to C; the caller arrives on Z.
        w.start("b-supervisors", UNIDESK_MEDIA_CAPACITY="1")
        sup = BotAgent(w.hub.url, "demo", "supervisor", "demo", ToneSource(SUPERVISOR_HZ), own_stream=True)
        await sup.login()
        await sup.connect_phone()
        w.start("c-agents")
        agent = await available_bot(w.hub, "agent1", FIRST_HZ)
        z = w.start("z-callers")
        phone.call(f"sip:support@127.0.0.1:{z.sip_port}", 90)
        offer = await agent.expect(lambda m: m["type"] == "contact-offered", 15)
        cid = offer["contact"]["id"]
        assert (await agent.request({"type": "accept-offer", "contact_id": cid}))["type"] == "ack"
        assert await agent.hears(CALLER_HZ)
        assert (await sup.request({"type": "monitor", "call_id": cid, "mode": "whisper"}))["type"] == "ack"
        assert await sup.hears_all([CALLER_HZ, FIRST_HZ]) and await agent.hears_all([CALLER_HZ, SUPERVISOR_HZ])

        # agent1 comes back on the caller's worker (its link dropped), then on another one (a new link):
        # each time the whispering supervisor hears both, the agent hears both, the caller only the agent.
        for target in (None, "zz-moved"):
            if target:
                w.start(target)
            await reload(agent, phone, FIRST_HZ)
            assert await agent.hears_all([CALLER_HZ, SUPERVISOR_HZ]), f"the agent heard {agent.hearing():.0f} Hz"
            assert await sup.hears_all([CALLER_HZ, FIRST_HZ]), "the supervisor lost the agent or the caller"
            assert await asyncio.to_thread(hears, phone, FIRST_HZ), "the caller does not hear the agent"
            assert await asyncio.to_thread(hears_not, phone, SUPERVISOR_HZ), "the caller hears the whisper"
        assert media_links(w.hub) == {"link": 1.0, "join": 1.0}

        await end_call(agent, phone, cid)
        await sup.expect(lambda m: m["type"] == "monitor-changed" and m.get("reason") == "call-ended", 10)
        assert await wait_for(lambda: media_links(w.hub) == {"link": 0.0, "join": 0.0})
    finally:
        await w.close(phone, agent, sup)
