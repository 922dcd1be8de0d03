"""Every party of a call can be on another media worker than the caller: links join them to the mix.

Worker B comes first and carries the agents' and the supervisor's softphones (and the desk phone's
registration); worker A comes next and answers the callers (baresip). A consult to a second agent,
a conference of the three and the completed transfer; a supervisor listening and whispering; a desk
phone taking a queued call: each party proves by frequency what it hears, and what it must not.
"""

import asyncio

from tests.conftest import HOLD_MUSIC_HZ, HubProcess, WorkerProcess, drop_backend, prepared_backend
from tests.integration.test_deskphone import (
    credentials_in_force, desk_agent, hangups, registered, set_desk_phone, wait_hangups,
)
from tests.integration.test_sip import available_bot, only, record
from tests.integration.test_sip_link import link_lines, wait_for
from tests.sip_peers import Baresip, ended, hears, hears_all, hears_not
from webrtc.audio import ToneSource
from webrtc.bot import BotAgent
from webrtc.tones import write_tone_wav

CALLER_HZ, FIRST_HZ, SECOND_HZ, SUPERVISOR_HZ, DESK_HZ = 1000.0, 500.0, 800.0, 1500.0, 650.0


class TwoWorkers:
    """A hub, worker B (softphones) and, once `callers()` is called, worker A (callers)."""

    def __init__(self, tmp_path) -> None:
        self.tmp = tmp_path
        self.backend = prepared_backend(tmp_path)
        self.hub = HubProcess(self.backend, tmp_path / "hub.log").start()
        music = tmp_path / "hold.wav"
        write_tone_wav(music, HOLD_MUSIC_HZ, 2.0, 8000)
        self.env = {"UNIDESK_HOLD_MUSIC": str(music)}
        self.b = WorkerProcess(self.hub, tmp_path / "b.log", name="b-agents", **self.env).start()
        self.a: WorkerProcess | None = None

    def callers(self) -> WorkerProcess:
        self.a = WorkerProcess(self.hub, self.tmp / "a.log", name="a-callers", **self.env).start()
        return self.a

    def stop(self) -> None:
        if self.a is not None:
            self.a.stop()
        self.b.stop()
        self.hub.stop()
        drop_backend(self.backend)


async def answered(agent: BotAgent, phone: Baresip, a: WorkerProcess, seconds: int = 90) -> str:
    """The phone calls worker `a`, the agent accepts the offer and hears the caller; returns the contact id."""
    phone.call(f"sip:support@127.0.0.1:{a.sip_port}", seconds)
    offer = await agent.expect(lambda m: m["type"] == "contact-offered", 15)
    cid = offer["contact"]["id"]
    assert (await agent.request({"type": "accept-offer", "contact_id": cid}))["type"] == "ack"
    assert await agent.hears(CALLER_HZ), f"the agent heard {agent.hearing():.0f} Hz, not the caller"
    return cid


async def test_a_consult_conference_and_transfer_across_workers(tmp_path):
    w = TwoWorkers(tmp_path)
    first = second = None
    phone = Baresip(tmp_path / "phone", int(CALLER_HZ))
    try:
        only(w.hub)
        first = await available_bot(w.hub, "agent1", FIRST_HZ)
        second = await available_bot(w.hub, "agent3", SECOND_HZ)
        await second.request({"type": "set-state", "state": "paused"})
        a = w.callers()
        cid = await answered(first, phone, a)
        assert len(link_lines(a, "side a")) == 1 and len(link_lines(w.b, "side b")) == 1

        # Consult: the caller held on A, agent3 on B rung; the consult is mixed on A, agent3 joins it there.
        assert (await first.request({"type": "call-hold", "call_id": cid, "on": True}))["type"] == "ack"
        await first.expect(lambda m: m["type"] == "contact-changed" and m["contact"].get("held"))
        ack = await first.request({"type": "call-dial", "to": "agent3"})
        assert ack["type"] == "ack", ack
        consult = ack["call_id"]
        ring = await second.expect(lambda m: m["type"] == "call-changed" and m["call"]["status"] == "ringing")
        assert (await second.request({"type": "call-answer", "call_id": ring["call"]["id"]}))["type"] == "ack"
        assert await first.hears(SECOND_HZ) and await second.hears(FIRST_HZ), "the agents do not hear each other"
        assert await asyncio.to_thread(hears, phone, HOLD_MUSIC_HZ), "the held caller hears no music"
        assert await asyncio.to_thread(hears_not, phone, SECOND_HZ), "the held caller hears the consult"
        assert await second.hears_not(CALLER_HZ)
        assert len(link_lines(a, "side a")) == 2 and len(link_lines(w.b, "side b")) == 2, "agent3 did not join A"

        # Conference: each hears both others at once.
        ack = await first.request({"type": "call-conference", "call_id": cid, "consult": consult})
        assert ack["type"] == "ack", ack
        assert await first.hears_all([CALLER_HZ, SECOND_HZ]), "the first agent does not hear both"
        assert await second.hears_all([CALLER_HZ, FIRST_HZ]), "the second agent does not hear both"
        assert await asyncio.to_thread(hears_all, phone, [FIRST_HZ, SECOND_HZ]), "the caller does not hear both"

        # Complete: agent3 has the caller (a new link), agent1 leaves; agent3's join for the consult is gone.
        ack = await first.request({"type": "call-transfer", "call_id": cid, "consult": consult})
        assert ack["type"] == "ack", ack
        new_id = ack["call_id"]
        await first.expect(lambda m: m["type"] == "contact-changed" and m["contact"]["status"] == "wrap-up")
        await second.expect(
            lambda m: m["type"] == "contact-changed" and m["contact"]["id"] == new_id
            and m["contact"]["status"] == "connected", 15,
        )
        assert await second.hears(CALLER_HZ), f"the second agent heard {second.hearing():.0f} Hz, not the caller"
        assert await asyncio.to_thread(hears, phone, SECOND_HZ), "the caller does not hear the second agent"
        assert await asyncio.to_thread(hears_not, phone, FIRST_HZ), "the caller still hears the first agent"
        assert await first.hears_not(CALLER_HZ) and await first.hears_not(SECOND_HZ)
        # agent1's link and agent3's join closed; agent3's own link to the caller carries the call.
        assert await wait_for(lambda: len(link_lines(a, "closed")) == 2 and len(link_lines(w.b, "closed")) == 2)
        assert len(link_lines(a, "side a")) == 3
        assert record(w.hub, cid)["data"]["ended_by"] == "transfer"

        assert (await second.request({"type": "end-contact", "contact_id": new_id}))["type"] == "ack"
        assert await asyncio.to_thread(ended, phone), phone.output()[-2000:]
        assert await wait_for(lambda: len(link_lines(a, "closed")) == 3 and len(link_lines(w.b, "closed")) == 3)
        for bot_, contact in ((first, cid), (second, new_id)):
            await bot_.request({"type": "complete-wrap-up", "contact_id": contact, "code": "resolved"})
    finally:
        phone.stop()
        for bot_ in (first, second):
            if bot_ is not None:
                await bot_.close()
        w.stop()


async def test_a_supervisor_on_another_worker_listens_and_whispers(tmp_path):
    w = TwoWorkers(tmp_path)
    agent = None
    sup = BotAgent(w.hub.url, "demo", "supervisor", "demo", ToneSource(SUPERVISOR_HZ), own_stream=True)
    phone = Baresip(tmp_path / "phone", int(CALLER_HZ))
    try:
        only(w.hub)
        agent = await available_bot(w.hub, "agent1", FIRST_HZ)
        await sup.login()
        await sup.connect_phone()
        a = w.callers()
        cid = await answered(agent, phone, a)

        # Listen: the supervisor (on B) hears both; neither hears the supervisor.
        assert (await sup.request({"type": "monitor", "call_id": cid, "mode": "listen"}))["type"] == "ack"
        assert await sup.hears_all([CALLER_HZ, FIRST_HZ]), "listening, the supervisor does not hear both"
        assert await agent.hears_not(SUPERVISOR_HZ), "the agent hears a listening supervisor"
        assert await asyncio.to_thread(hears_not, phone, SUPERVISOR_HZ), "the caller hears a listening supervisor"
        assert await asyncio.to_thread(hears, phone, FIRST_HZ)
        assert len(link_lines(a, "side a")) == 2, "the supervisor did not join the call's worker"

        # Whisper: the agent hears the supervisor and the caller, the caller still only the agent.
        assert (await sup.request({"type": "monitor", "call_id": cid, "mode": "whisper"}))["type"] == "ack"
        assert await agent.hears_all([CALLER_HZ, SUPERVISOR_HZ]), "the agent does not hear the whisper"
        assert await asyncio.to_thread(hears_not, phone, SUPERVISOR_HZ), "the caller hears the whisper"
        assert await sup.hears_all([CALLER_HZ, FIRST_HZ])

        # Stop: the supervisor's join goes; the call goes on.
        assert (await sup.request({"type": "monitor-stop", "call_id": cid}))["type"] == "ack"
        assert await wait_for(lambda: len(link_lines(a, "closed")) == 1 and len(link_lines(w.b, "closed")) == 1)
        assert await sup.hears_not(CALLER_HZ) and await agent.hears_not(SUPERVISOR_HZ)
        assert await agent.hears(CALLER_HZ)

        # Listening again, then the caller's contact ends: the join ends with it.
        assert (await sup.request({"type": "monitor", "call_id": cid, "mode": "listen"}))["type"] == "ack"
        assert await sup.hears_all([CALLER_HZ, FIRST_HZ])
        assert (await agent.request({"type": "end-contact", "contact_id": cid}))["type"] == "ack"
        assert await asyncio.to_thread(ended, phone), phone.output()[-2000:]
        await sup.expect(lambda m: m["type"] == "monitor-changed" and m.get("reason") == "call-ended", 10)
        assert await wait_for(lambda: len(link_lines(a, "closed")) == 3 and len(link_lines(w.b, "closed")) == 3)
        await agent.request({"type": "complete-wrap-up", "contact_id": cid, "code": "resolved"})
    finally:
        phone.stop()
        if agent is not None:
            await agent.close()
        await sup.close()
        w.stop()


async def test_a_desk_phone_registered_with_another_worker_takes_a_queued_call(tmp_path):
    w = TwoWorkers(tmp_path)
    agent = None
    me = 0
    desk = Baresip(tmp_path / "desk", int(DESK_HZ), user="agent3", auto_answer=True,
                   registrar=f"127.0.0.1:{w.b.sip_port}", password="desk-3")
    caller = Baresip(tmp_path / "caller", int(CALLER_HZ))
    try:
        only(w.hub)
        agent, me = await desk_agent(w.hub, "agent3")
        assert set_desk_phone(w.hub, me, password="desk-3", phone="desk").status_code == 200
        await credentials_in_force(w.b.sip_port, "agent3", "desk-3")
        await asyncio.to_thread(desk.listen, 60)
        await registered(agent)
        assert (await agent.request({"type": "set-state", "state": "available"}))["type"] == "ack"
        a = w.callers()
        caller.call(f"sip:support@127.0.0.1:{a.sip_port}", 40)
        offer = await agent.expect(lambda m: m["type"] == "contact-offered", 15)
        contact_id = offer["contact"]["id"]
        connected = await agent.expect(
            lambda m: m["type"] == "contact-changed" and m["contact"]["status"] == "connected", 15
        )
        assert connected["contact"]["id"] == contact_id
        assert await asyncio.to_thread(hears, desk, CALLER_HZ), "the desk phone does not hear the caller"
        assert await asyncio.to_thread(hears, caller, DESK_HZ), "the caller does not hear the desk phone"
        assert link_lines(a, "side a") and link_lines(w.b, "side b"), "the call did not go over a link"
        assert (await agent.request({"type": "end-contact", "contact_id": contact_id}))["type"] == "ack"
        assert await asyncio.to_thread(ended, caller), caller.output()[-2000:]
        assert await asyncio.to_thread(ended, desk), desk.output()[-2000:]
        assert await wait_for(lambda: len(link_lines(a, "closed")) == 1 and len(link_lines(w.b, "closed")) == 1)
        await agent.request({"type": "complete-wrap-up", "contact_id": contact_id, "code": "resolved"})
    finally:
        caller.stop()
        desk.stop()
        if agent is not None:
            if me:
                set_desk_phone(w.hub, me, phone="browser")
            await agent.close()
        w.stop()


async def test_a_consult_to_a_desk_phone_on_another_worker_and_its_transfer(tmp_path):
    w = TwoWorkers(tmp_path)
    first = desk_bot = None
    me = 0
    desk = Baresip(tmp_path / "desk", int(DESK_HZ), user="agent2", auto_answer=True,
                   registrar=f"127.0.0.1:{w.b.sip_port}", password="desk-2")
    phone = Baresip(tmp_path / "phone", int(CALLER_HZ))
    try:
        only(w.hub)
        desk_bot, me = await desk_agent(w.hub, "agent2")
        assert set_desk_phone(w.hub, me, password="desk-2", phone="desk").status_code == 200
        await credentials_in_force(w.b.sip_port, "agent2", "desk-2")
        await asyncio.to_thread(desk.listen, 90)
        await registered(desk_bot)
        first = await available_bot(w.hub, "agent1", FIRST_HZ)
        a = w.callers()
        cid = await answered(first, phone, a)
        assert (await desk_bot.request({"type": "set-state", "state": "available"}))["type"] == "ack"

        # The consult is mixed beside the caller (A); the desk phone is rung from B and joins A.
        assert (await first.request({"type": "call-hold", "call_id": cid, "on": True}))["type"] == "ack"
        await first.expect(lambda m: m["type"] == "contact-changed" and m["contact"].get("held"))
        consult = await first.request({"type": "call-dial", "to": "agent2"})
        assert consult["type"] == "ack", consult
        await first.expect(lambda m: m["type"] == "call-changed" and m["call"]["id"] == consult["call_id"]
                           and m["call"]["status"] == "connected", 15)
        assert await first.hears(DESK_HZ), f"the consulting agent heard {first.hearing():.0f} Hz, not the desk phone"
        assert await asyncio.to_thread(hears, desk, FIRST_HZ), "the desk phone does not hear the consulting agent"
        assert len(link_lines(a, "side a")) == 2, "the desk phone did not join the caller's worker"

        # Completed: the caller reaches the same desk call over its own link; no hang-up on the way.
        done = await first.request({"type": "call-transfer", "call_id": cid, "consult": consult["call_id"]})
        assert done["type"] == "ack", done
        took = await desk_bot.expect(
            lambda m: m["type"] == "contact-changed" and m["contact"]["id"] == done["call_id"]
            and m["contact"]["status"] == "connected", 15)
        assert took["contact"]["agent_id"] == me
        assert await asyncio.to_thread(hears, desk, CALLER_HZ), "the desk phone does not hear the caller"
        assert await asyncio.to_thread(hears, phone, DESK_HZ), "the caller does not hear the desk phone"
        assert await first.hears_not(CALLER_HZ) and await first.hears_not(DESK_HZ)
        assert hangups(desk) == 0, "the desk call was hung up on the way"
        assert (await desk_bot.request({"type": "end-contact", "contact_id": done["call_id"]}))["type"] == "ack"
        assert await asyncio.to_thread(ended, phone), phone.output()[-2000:]
        assert await wait_hangups(desk, 1), desk.output()[-2000:]
        for b, contact in ((first, cid), (desk_bot, done["call_id"])):
            await b.request({"type": "complete-wrap-up", "contact_id": contact, "code": "resolved"})
    finally:
        phone.stop()
        desk.stop()
        if desk_bot is not None:
            if me:
                set_desk_phone(w.hub, me, phone="browser")
            await desk_bot.close()
        if first is not None:
            await first.close()
        w.stop()


async def test_the_agents_of_a_conference_across_workers_go_on_when_the_caller_leaves(tmp_path):
    w = TwoWorkers(tmp_path)
    first = second = None
    phone = Baresip(tmp_path / "phone", int(CALLER_HZ))
    try:
        only(w.hub)
        first = await available_bot(w.hub, "agent1", FIRST_HZ)
        second = await available_bot(w.hub, "agent3", SECOND_HZ)
        await second.request({"type": "set-state", "state": "paused"})
        a = w.callers()
        cid = await answered(first, phone, a)
        assert (await first.request({"type": "call-hold", "call_id": cid, "on": True}))["type"] == "ack"
        await first.expect(lambda m: m["type"] == "contact-changed" and m["contact"].get("held"))
        consult = (await first.request({"type": "call-dial", "to": "agent3"}))["call_id"]
        ring = await second.expect(lambda m: m["type"] == "call-changed" and m["call"]["status"] == "ringing")
        assert (await second.request({"type": "call-answer", "call_id": ring["call"]["id"]}))["type"] == "ack"
        assert (await first.request({"type": "call-conference", "call_id": cid, "consult": consult}))["type"] == "ack"
        assert await first.hears_all([CALLER_HZ, SECOND_HZ]) and await second.hears_all([CALLER_HZ, FIRST_HZ])

        # The caller's contact ends: agent1's link to A goes, agent1 joins the agents' call on A again.
        assert (await first.request({"type": "end-contact", "contact_id": cid}))["type"] == "ack"
        assert await asyncio.to_thread(ended, phone), phone.output()[-2000:]
        assert await first.hears(SECOND_HZ), f"agent1 heard {first.hearing():.0f} Hz, not agent3"
        assert await second.hears(FIRST_HZ), f"agent3 heard {second.hearing():.0f} Hz, not agent1"
        assert await first.hears_not(CALLER_HZ) and await second.hears_not(CALLER_HZ)
        assert len(link_lines(a, "side a")) == 3, "agent1 did not join A again"

        # The agents hang up: every link and join is closed on both workers.
        assert (await second.request({"type": "call-hangup", "call_id": consult}))["type"] == "ack"
        assert await wait_for(lambda: len(link_lines(a, "closed")) == 3 and len(link_lines(w.b, "closed")) == 3)
        assert await first.hears_not(SECOND_HZ)
        await first.request({"type": "complete-wrap-up", "contact_id": cid, "code": "resolved"})
    finally:
        phone.stop()
        for bot_ in (first, second):
            if bot_ is not None:
                await bot_.close()
        w.stop()


async def test_a_reloaded_softphone_hears_its_caller_on_the_other_worker_again(tmp_path):
    w = TwoWorkers(tmp_path)
    agent = None
    phone = Baresip(tmp_path / "phone", int(CALLER_HZ))
    try:
        only(w.hub)
        agent = await available_bot(w.hub, "agent1", FIRST_HZ)
        a = w.callers()
        await answered(agent, phone, a)
        # The agent's page reloads: its peer connection closes, a new one is offered (placed on B again).
        assert agent.pc is not None
        await agent.pc.close()
        await agent.expect(lambda m: m["type"] == "phone-state" and m["state"] == "lost", 10)
        await agent.new_phone()
        assert await agent.hears(CALLER_HZ), f"the agent heard {agent.hearing():.0f} Hz after coming back"
        assert await asyncio.to_thread(hears, phone, FIRST_HZ), "the caller does not hear the agent again"
        assert len(link_lines(a, "side a")) == 1, "the caller's link was not kept"
    finally:
        phone.stop()
        if agent is not None:
            await agent.close()
        w.stop()
