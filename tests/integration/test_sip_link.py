"""A caller on one media worker, the agent's softphone on another: the two workers link the call.

Worker B comes first and carries the agents' softphones; worker A comes next and answers the caller
(baresip). Each side proves it hears the other by frequency, through hold, mute and a blind transfer
to another agent (whose softphone is on B too: a new link, the old one gone).
"""

import asyncio
import contextlib

from tests.conftest import HOLD_MUSIC_HZ, HubProcess, WorkerProcess, drop_backend, prepared_backend
from tests.integration.test_sip import AGENT_HZ, CALLER_HZ, available_bot, only, record
from tests.sip_peers import Baresip, ended, hears, hears_not
from webrtc.tones import write_tone_wav


def link_lines(worker: WorkerProcess, what: str) -> list[str]:
    return [line for line in worker.log().splitlines() if "link " in line and what in line]


async def wait_for(cond, timeout: float = 10.0) -> bool:
    deadline = asyncio.get_running_loop().time() + timeout
    while not cond():
        if asyncio.get_running_loop().time() > deadline:
            return False
        await asyncio.sleep(0.05)  # polling a condition with a deadline
    return True


async def test_a_caller_on_one_worker_talks_to_an_agent_on_another(tmp_path):
    backend = prepared_backend(tmp_path)
    hub = HubProcess(backend, tmp_path / "hub.log").start()
    music = tmp_path / "hold.wav"
    write_tone_wav(music, HOLD_MUSIC_HZ, 2.0, 8000)
    b = WorkerProcess(hub, tmp_path / "b.log", name="b-agents", UNIDESK_HOLD_MUSIC=str(music)).start()
    first = second = None
    phone = Baresip(tmp_path / "phone", int(CALLER_HZ))
    a = None
    try:
        only(hub)
        first = await available_bot(hub, "agent1", AGENT_HZ)
        second = await available_bot(hub, "agent4", 1300.0)
        await second.request({"type": "set-state", "state": "paused"})
        # Both softphones are on B (the only worker so far); the caller arrives on A.
        a = WorkerProcess(hub, tmp_path / "a.log", name="a-callers", UNIDESK_HOLD_MUSIC=str(music)).start()
        phone.call(f"sip:support@127.0.0.1:{a.sip_port}", 60)
        offer = await first.expect(lambda m: m["type"] == "contact-offered", 15)
        cid = offer["contact"]["id"]
        assert (await first.request({"type": "accept-offer", "contact_id": cid}))["type"] == "ack"
        assert await first.hears(CALLER_HZ), f"the agent heard {first.hearing():.0f} Hz, not the caller"
        assert await asyncio.to_thread(hears, phone, AGENT_HZ), "the caller does not hear the agent"
        assert link_lines(a, "side a") and link_lines(b, "side b"), "the call did not go over a link"

        # Hold: the caller hears the music (from A), the agent nothing of the caller; then back.
        assert (await first.request({"type": "call-hold", "call_id": cid, "on": True}))["type"] == "ack"
        assert await asyncio.to_thread(hears, phone, HOLD_MUSIC_HZ), "the caller hears no music on hold"
        assert await first.hears_not(CALLER_HZ)
        assert (await first.request({"type": "call-hold", "call_id": cid, "on": False}))["type"] == "ack"
        assert await first.hears(CALLER_HZ)
        assert await asyncio.to_thread(hears, phone, AGENT_HZ)
        # Mute: the caller no longer hears the agent.
        assert (await first.request({"type": "call-mute", "call_id": cid, "on": True}))["type"] == "ack"
        assert await asyncio.to_thread(hears_not, phone, AGENT_HZ), "the caller still hears a muted agent"
        assert (await first.request({"type": "call-mute", "call_id": cid, "on": False}))["type"] == "ack"
        assert await asyncio.to_thread(hears, phone, AGENT_HZ)

        # Blind transfer to agent4: the first link ends, a new one carries the caller to agent4.
        await second.request({"type": "set-state", "state": "available"})
        ack = await first.request({"type": "call-transfer", "call_id": cid, "to": "agent4"})
        assert ack["type"] == "ack", ack
        await first.expect(lambda m: m["type"] == "contact-changed" and m["contact"]["status"] == "wrap-up")
        assert await wait_for(lambda: len(link_lines(a, "closed")) == 1 and len(link_lines(b, "closed")) == 1)
        assert await first.hears_not(CALLER_HZ), "the first agent still hears the caller"
        moved = await second.expect(lambda m: m["type"] == "contact-offered", 15)
        assert moved["contact"]["id"] == ack["call_id"]
        assert (await second.request({"type": "accept-offer", "contact_id": ack["call_id"]}))["type"] == "ack"
        assert await second.hears(CALLER_HZ), "the caller did not reach the second agent"
        assert await asyncio.to_thread(hears, phone, 1300.0)
        assert await asyncio.to_thread(hears_not, phone, AGENT_HZ), "the caller still hears the first agent"

        # The agent ends the call: the caller gets a BYE and both ends of the link go.
        assert (await second.request({"type": "end-contact", "contact_id": ack["call_id"]}))["type"] == "ack"
        assert await asyncio.to_thread(ended, phone), phone.output()[-2000:]
        assert await wait_for(lambda: len(link_lines(a, "closed")) == 2 and len(link_lines(b, "closed")) == 2)
        assert record(hub, ack["call_id"])["data"]["ended_by"] == "agent"
        for bot_, contact in ((first, cid), (second, ack["call_id"])):
            await bot_.request({"type": "complete-wrap-up", "contact_id": contact, "code": "resolved"})
    finally:
        phone.stop()
        for bot_ in (first, second):
            if bot_ is not None:
                await bot_.close()
        if a is not None:
            a.stop()
        b.stop()
        hub.stop()
        drop_backend(backend)


@contextlib.asynccontextmanager
async def linked_call(tmp_path):
    """A baresip caller answered on worker A, talking to agent1 (a bot) whose softphone is on worker B,
    both hearing each other: yields (hub, a, b, agent, phone, contact id); everything goes afterwards."""
    backend = prepared_backend(tmp_path)
    hub = HubProcess(backend, tmp_path / "hub.log").start()
    b = WorkerProcess(hub, tmp_path / "b.log", name="b-agents").start()
    agent = None
    phone = Baresip(tmp_path / "phone", int(CALLER_HZ))
    a = None
    try:
        only(hub)
        agent = await available_bot(hub, "agent1", AGENT_HZ)
        a = WorkerProcess(hub, tmp_path / "a.log", name="a-callers").start()
        phone.call(f"sip:support@127.0.0.1:{a.sip_port}", 60)
        offer = await agent.expect(lambda m: m["type"] == "contact-offered", 15)
        cid = offer["contact"]["id"]
        assert (await agent.request({"type": "accept-offer", "contact_id": cid}))["type"] == "ack"
        assert await agent.hears(CALLER_HZ)
        assert await asyncio.to_thread(hears, phone, AGENT_HZ)
        yield hub, a, b, agent, phone, cid
    finally:
        phone.stop()
        if agent is not None:
            await agent.close()
        if a is not None:
            a.stop()
        b.stop()
        hub.stop()
        drop_backend(backend)


async def test_a_caller_whose_agents_worker_dies_is_ended(tmp_path):
    async with linked_call(tmp_path) as (hub, a, b, agent, phone, cid):
        # B dies: the caller is not left in silence; A's end of the link goes, the call ends.
        assert b.proc is not None
        b.proc.kill()
        assert await asyncio.to_thread(ended, phone, 20.0), phone.output()[-2000:]
        assert await wait_for(lambda: len(link_lines(a, "closed")) == 1)
        assert record(hub, cid)["data"]["ended_by"] == "media-lost"


async def test_the_link_ends_on_the_agents_worker_when_the_callers_worker_dies(tmp_path):
    async with linked_call(tmp_path) as (hub, a, b, agent, phone, cid):
        # A dies: the agent's contact ends (media-lost) and B's end of the link goes; the softphone stays.
        assert a.proc is not None
        a.proc.kill()
        wrap = await agent.expect(lambda m: m["type"] == "contact-changed" and m["contact"]["status"] == "wrap-up", 20)
        assert wrap["contact"]["id"] == cid
        assert await wait_for(lambda: len(link_lines(b, "closed")) == 1)
        assert record(hub, cid)["data"]["ended_by"] == "media-lost"
        assert await agent.hears_not(CALLER_HZ)
