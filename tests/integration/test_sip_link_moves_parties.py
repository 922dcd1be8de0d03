"""More parties follow a softphone that comes back on another media worker mid-call: a number outside
the agent dialled, the agent's mute, a supervisor's own softphone, a conference of three.

As in test_sip_link_moves.py, each test names (and sizes) its workers so that placement puts a reloaded
softphone where the step needs it, and after each move every party proves by frequency what it hears.
"""

import asyncio

from tests.conftest import HOLD_MUSIC_HZ, set_tenant_settings
from tests.integration.test_sip import available_bot, only
from tests.integration.test_sip_link import link_lines, wait_for
from tests.integration.test_sip_link_moves import Workers, end_call, media_links, reload
from tests.integration.test_sip_link_parties import answered
from tests.integration.test_sip_transfer import consulted
from tests.sip_peers import Baresip, ended, hears, hears_all, hears_not
from webrtc.audio import ToneSource
from webrtc.bot import BotAgent

CALLER_HZ, FIRST_HZ, SECOND_HZ, SUPERVISOR_HZ, FAR_HZ = 1000.0, 500.0, 800.0, 1500.0, 1300.0
NUMBER = "+4930555888"


async def _supervisor(w: Workers) -> BotAgent:
    sup = BotAgent(w.hub.url, "demo", "supervisor", "demo", ToneSource(SUPERVISOR_HZ), own_stream=True)
    await sup.login()
    await sup.connect_phone()
    return sup


def _outside(w: Workers, far: Baresip) -> None:
    """The far end answers calls to NUMBER, the tenant's calls outside go to it."""
    only(w.hub)
    far.listen(120)
    set_tenant_settings(w.backend, "demo", sip={"outbound": {"proxy": f"127.0.0.1:{far.port}", "caller_id": "+4930100"}})


async def _dial(agent: BotAgent, far: Baresip) -> str:
    """The (paused) agent calls NUMBER; once answered each hears the other. Returns the call's id."""
    await agent.request({"type": "set-state", "state": "paused"})
    ack = await agent.request({"type": "call-dial", "to": NUMBER})
    assert ack["type"] == "ack", ack
    await agent.expect(lambda m: m["type"] == "call-changed" and m["call"]["status"] == "connected", 15)
    assert await agent.hears(FAR_HZ) and await asyncio.to_thread(hears, far, FIRST_HZ)
    return ack["call_id"]


async def test_a_call_outside_follows_the_softphone_that_dialled_it(tmp_path):
    w = Workers(tmp_path)
    agent = filler = None
    far = Baresip(tmp_path / "far", int(FAR_HZ), user=NUMBER, auto_answer=True)
    try:
        _outside(w, far)
        c = w.start("c-agents")
        agent = await available_bot(w.hub, "agent1", FIRST_HZ)
        k = await _dial(agent, far)

        # 1. Back on another worker: the SIP leg stays on C, linked to D.
        d = w.start("d-moved", UNIDESK_MEDIA_CAPACITY="1")
        await reload(agent, far, FIRST_HZ)
        assert len(link_lines(c, "side a")) == 1 and len(link_lines(d, "side b")) == 1
        assert await agent.hears(FAR_HZ), f"over the link the agent heard {agent.hearing():.0f} Hz"
        assert await asyncio.to_thread(hears, far, FIRST_HZ), "the number called does not hear the agent over the link"
        assert media_links(w.hub) == {"link": 1.0, "join": 0.0}
        # Hold and resume work where the SIP leg is.
        assert (await agent.request({"type": "call-hold", "call_id": k, "on": True}))["type"] == "ack"
        assert await asyncio.to_thread(hears, far, HOLD_MUSIC_HZ), "the held number hears no music"
        assert await agent.hears_not(FAR_HZ)
        assert (await agent.request({"type": "call-hold", "call_id": k, "on": False}))["type"] == "ack"
        assert await agent.hears(FAR_HZ) and await asyncio.to_thread(hears, far, FIRST_HZ)

        # 2. Back on the worker that dialled (D is full): the link goes, the two talk there directly.
        filler = await _supervisor(w)
        await reload(agent, far, FIRST_HZ)
        assert await wait_for(lambda: len(link_lines(c, "closed")) == 1 and len(link_lines(d, "closed")) == 1)
        assert await agent.hears(FAR_HZ), f"back on C the agent heard {agent.hearing():.0f} Hz"
        assert await asyncio.to_thread(hears, far, FIRST_HZ), "the number called does not hear the agent on C"
        assert media_links(w.hub) == {"link": 0.0, "join": 0.0}

        assert (await agent.request({"type": "call-hangup", "call_id": k}))["type"] == "ack"
        assert await asyncio.to_thread(ended, far), far.output()[-2000:]
    finally:
        set_tenant_settings(w.backend, "demo", sip={})
        await w.close(far, agent, filler)


async def test_a_call_outside_ends_with_its_link(tmp_path):
    w = Workers(tmp_path)
    agent = None
    far = Baresip(tmp_path / "far", int(FAR_HZ), user=NUMBER, auto_answer=True)
    try:
        _outside(w, far)
        c = w.start("c-agents")
        agent = await available_bot(w.hub, "agent1", FIRST_HZ)
        await _dial(agent, far)
        d = w.start("d-moved")
        await reload(agent, far, FIRST_HZ)
        assert await agent.hears(FAR_HZ) and await asyncio.to_thread(hears, far, FIRST_HZ)
        # The number called hangs up: the link goes at both ends.
        far.stop()
        await agent.expect(lambda m: m["type"] == "call-changed" and m["call"]["status"] == "ended", 15)
        assert await wait_for(lambda: len(link_lines(c, "closed")) == 1 and len(link_lines(d, "closed")) == 1)
        assert media_links(w.hub) == {"link": 0.0, "join": 0.0}
    finally:
        set_tenant_settings(w.backend, "demo", sip={})
        await w.close(far, agent)


async def test_a_muted_agent_stays_muted_on_a_leg_made_anew(tmp_path):
    w = Workers(tmp_path)
    agent = None
    phone = Baresip(tmp_path / "phone", int(CALLER_HZ))
    try:
        only(w.hub)
        w.start("b-agents")
        agent = await available_bot(w.hub, "agent1", FIRST_HZ)
        z = w.start("z-callers")
        cid = await answered(agent, phone, z, 120)
        assert await asyncio.to_thread(hears, phone, FIRST_HZ)
        assert (await agent.request({"type": "call-mute", "call_id": cid, "on": True}))["type"] == "ack"
        assert await asyncio.to_thread(hears_not, phone, FIRST_HZ), "the caller hears a muted agent"

        # Back on the caller's worker (a new softphone leg there), then on another one (a new link leg
        # there): the caller hears nothing of the agent, who hears the caller.
        for target in (None, "zz-moved"):
            if target:
                w.start(target)
            await reload(agent, phone, FIRST_HZ)
            assert await agent.hears(CALLER_HZ), f"after moving the agent heard {agent.hearing():.0f} Hz"
            assert await asyncio.to_thread(hears_not, phone, FIRST_HZ), "the muted agent is heard after moving"
        assert len(link_lines(z, "side a")) == 2
        assert (await agent.request({"type": "call-mute", "call_id": cid, "on": False}))["type"] == "ack"
        assert await asyncio.to_thread(hears, phone, FIRST_HZ), "the caller does not hear the agent unmuted"

        await end_call(agent, phone, cid)
    finally:
        await w.close(phone, agent)


async def test_a_supervisors_softphone_that_moves_is_routed_again(tmp_path):
    w = Workers(tmp_path)
    agent = sup = None
    phone = Baresip(tmp_path / "phone", int(CALLER_HZ))
    try:
        only(w.hub)
        # The supervisor's softphone fills B, agent1's fills C; the caller arrives on Z.
        w.start("b-supervisors", UNIDESK_MEDIA_CAPACITY="1")
        sup = await _supervisor(w)
        w.start("c-agents", UNIDESK_MEDIA_CAPACITY="1")
        agent = await available_bot(w.hub, "agent1", FIRST_HZ)
        z = w.start("z-callers")
        cid = await answered(agent, phone, z, 120)
        assert (await sup.request({"type": "monitor", "call_id": cid, "mode": "whisper"}))["type"] == "ack"
        assert await sup.hears_all([CALLER_HZ, FIRST_HZ]) and await agent.hears_all([CALLER_HZ, SUPERVISOR_HZ])
        assert media_links(w.hub) == {"link": 1.0, "join": 1.0}

        # The supervisor comes back on the call's worker (its join goes), then leaves it for another one
        # (a join is made): each time it hears both, the agent hears it, the caller only the agent.
        for target, joins in ((None, 0.0), ("zz-moved", 1.0)):
            if target:
                w.start(target)
            await reload(sup)
            assert await sup.hears_all([CALLER_HZ, FIRST_HZ]), f"the moved supervisor heard {sup.hearing():.0f} Hz"
            assert await agent.hears_all([CALLER_HZ, SUPERVISOR_HZ]), "the agent does not hear the whisper"
            assert await asyncio.to_thread(hears, phone, FIRST_HZ), "the caller does not hear the agent"
            assert await asyncio.to_thread(hears_not, phone, SUPERVISOR_HZ), "the caller hears the whisper"
            assert media_links(w.hub) == {"link": 1.0, "join": joins}
        assert len(link_lines(z, "side a")) == 3  # the agent's link, the first join, the new one

        await end_call(agent, phone, cid)
        await sup.expect(lambda m: m["type"] == "monitor-changed" and m.get("reason") == "call-ended", 10)
        assert await wait_for(lambda: media_links(w.hub) == {"link": 0.0, "join": 0.0})
    finally:
        await w.close(phone, agent, sup)


async def test_a_conference_goes_on_when_the_agent_moves(tmp_path):
    w = Workers(tmp_path)
    first = second = None
    phone = Baresip(tmp_path / "phone", int(CALLER_HZ))
    try:
        only(w.hub)
        # agent1 fills B, agent3 fills D; the caller arrives on Z, where the consult is mixed.
        w.start("b-agents", UNIDESK_MEDIA_CAPACITY="1")
        first = await available_bot(w.hub, "agent1", FIRST_HZ)
        w.start("d-agents", UNIDESK_MEDIA_CAPACITY="1")
        second = await available_bot(w.hub, "agent3", SECOND_HZ)
        await second.request({"type": "set-state", "state": "paused"})
        z = w.start("z-callers")
        cid = await answered(first, phone, z, 120)
        consult = await consulted(first, second, cid)
        ack = await first.request({"type": "call-conference", "call_id": cid, "consult": consult})
        assert ack["type"] == "ack", ack
        assert await first.hears_all([CALLER_HZ, SECOND_HZ]) and await second.hears_all([CALLER_HZ, FIRST_HZ])

        # agent1 comes back on the caller's worker (its link goes), then on another one (a new link):
        # each time every party hears both others.
        for target in (None, "zz-moved"):
            if target:
                w.start(target)
            await reload(first)
            assert await first.hears_all([CALLER_HZ, SECOND_HZ]), f"the moved agent heard {first.hearing():.0f} Hz"
            assert await second.hears_all([CALLER_HZ, FIRST_HZ]), "agent3 lost the caller or the moved agent"
            assert await asyncio.to_thread(hears_all, phone, [FIRST_HZ, SECOND_HZ]), "the caller does not hear both"
        assert len(link_lines(z, "side a")) == 3  # agent1's first link, agent3's join, agent1's new link

        # agent3 comes back beside agent1 (the tenant's softphones together): its join is re-pointed.
        await reload(second)
        assert await wait_for(lambda: len(link_lines(z, "re-pointed")) == 1)
        assert await second.hears_all([CALLER_HZ, FIRST_HZ]), f"the moved agent3 heard {second.hearing():.0f} Hz"
        assert await first.hears_all([CALLER_HZ, SECOND_HZ]), "agent1 lost the caller or the moved agent3"
        assert await asyncio.to_thread(hears_all, phone, [FIRST_HZ, SECOND_HZ]), "the caller does not hear both"
        assert media_links(w.hub) == {"link": 1.0, "join": 1.0}

        # agent3 leaves: agent1 and the caller go on; then the call ends and nothing is left.
        assert (await second.request({"type": "call-hangup", "call_id": consult}))["type"] == "ack"
        assert await first.hears(CALLER_HZ) and await asyncio.to_thread(hears, phone, FIRST_HZ)
        assert await asyncio.to_thread(hears_not, phone, SECOND_HZ)
        await end_call(first, phone, cid)
        assert await wait_for(lambda: media_links(w.hub) == {"link": 0.0, "join": 0.0})
    finally:
        await w.close(phone, first, second)
