"""A supervisor listens, whispers and barges into an agent's call with a caller over SIP.

Real peers: a baresip caller, a bot agent and a bot supervisor (aiortc softphones), each playing its own
tone; what each hears is proven by frequency, both what must be heard and what must not."""

import asyncio

from tests.conftest import set_tenant_settings
from tests.integration.test_sip import available_bot, only
from tests.sip_peers import Baresip, ended, hears, hears_all, hears_not
from webrtc.audio import ToneSource
from webrtc.bot import BotAgent

CALLER_HZ, AGENT_HZ, SUPERVISOR_HZ = 1000.0, 500.0, 1500.0


async def test_listen_whisper_and_barge_are_heard_by_exactly_whom_they_should(hub, backend, media_worker, tmp_path):
    only(hub)
    set_tenant_settings(backend, "demo", monitoring={"notify_agent": True})
    agent = await available_bot(hub, "agent1", AGENT_HZ)
    sup = BotAgent(hub.url, "demo", "supervisor", "demo", ToneSource(SUPERVISOR_HZ), own_stream=True)
    board = BotAgent(hub.url, "demo", "supervisor", "demo", ToneSource(SUPERVISOR_HZ))
    phone = Baresip(tmp_path / "phone", int(CALLER_HZ))
    try:
        await sup.login()
        await board.login()
        phone.call(f"sip:support@127.0.0.1:{media_worker.sip_port}", 90)
        offer = await agent.expect(lambda m: m["type"] == "contact-offered", 15)
        cid = offer["contact"]["id"]
        assert (await agent.request({"type": "accept-offer", "contact_id": cid}))["type"] == "ack"
        assert await agent.hears(CALLER_HZ)
        # Without a softphone, or from the board's connection, or as an agent: refused.
        err = await sup.request({"type": "monitor", "call_id": cid, "mode": "listen"})
        assert err["type"] == "error" and err["code"] == "no-phone", err
        err = await board.request({"type": "monitor", "call_id": cid, "mode": "listen"})
        assert err["type"] == "error" and err["code"] == "conflict", err
        err = await agent.request({"type": "monitor", "call_id": cid, "mode": "listen"})
        assert err["type"] == "error" and err["code"] == "forbidden", err
        await sup.connect_phone()

        # Listen: the supervisor hears both; neither hears the supervisor.
        assert (await sup.request({"type": "monitor", "call_id": cid, "mode": "listen"}))["type"] == "ack"
        told = await agent.expect(lambda m: m["type"] == "monitor-changed", 10)
        assert told["mode"] == "listen" and told["supervisor"] == "supervisor"
        assert await sup.hears_all([CALLER_HZ, AGENT_HZ]), "listening, the supervisor does not hear both"
        assert await agent.hears(CALLER_HZ), f"the agent heard {agent.hearing():.0f} Hz"
        assert await asyncio.to_thread(hears, phone, AGENT_HZ)
        assert await asyncio.to_thread(hears_not, phone, SUPERVISOR_HZ), "the caller hears a listening supervisor"

        # Whisper: the agent hears the supervisor too, the caller does not.
        assert (await sup.request({"type": "monitor", "call_id": cid, "mode": "whisper"}))["type"] == "ack"
        assert await agent.hears_all([CALLER_HZ, SUPERVISOR_HZ]), "the agent does not hear the whisper"
        assert await asyncio.to_thread(hears_not, phone, SUPERVISOR_HZ), "the caller hears the whisper"
        assert await asyncio.to_thread(hears, phone, AGENT_HZ)

        # Barge: everyone hears everyone.
        assert (await sup.request({"type": "monitor", "call_id": cid, "mode": "barge"}))["type"] == "ack"
        assert await asyncio.to_thread(hears_all, phone, [AGENT_HZ, SUPERVISOR_HZ]), "the caller does not hear the barge"
        assert await agent.hears_all([CALLER_HZ, SUPERVISOR_HZ])
        assert await sup.hears_all([CALLER_HZ, AGENT_HZ])

        # Back to listen, then leave: the call goes on as before.
        assert (await sup.request({"type": "monitor", "call_id": cid, "mode": "listen"}))["type"] == "ack"
        assert await asyncio.to_thread(hears_not, phone, SUPERVISOR_HZ)
        assert await agent.hears(CALLER_HZ)
        assert (await sup.request({"type": "monitor-stop", "call_id": cid}))["type"] == "ack"
        left = await agent.expect(lambda m: m["type"] == "monitor-changed" and m.get("mode") is None, 10)
        assert left["call_id"] == cid
        assert await sup.hears_not(CALLER_HZ) and await sup.hears_not(AGENT_HZ)
        assert await agent.hears(CALLER_HZ) and await asyncio.to_thread(hears, phone, AGENT_HZ)
        err = await sup.request({"type": "monitor-stop", "call_id": cid})
        assert err["type"] == "error" and err["code"] == "not-found"

        # Monitoring ends with the call.
        assert (await sup.request({"type": "monitor", "call_id": cid, "mode": "listen"}))["type"] == "ack"
        assert (await agent.request({"type": "end-contact", "contact_id": cid}))["type"] == "ack"
        over = await sup.expect(lambda m: m["type"] == "monitor-changed" and m.get("reason") == "call-ended", 10)
        assert over["call_id"] == cid
        assert await asyncio.to_thread(ended, phone), phone.output()[-2000:]
        await agent.request({"type": "complete-wrap-up", "contact_id": cid, "code": "resolved"})
    finally:
        set_tenant_settings(backend, "demo", monitoring={})
        phone.stop()
        await agent.request({"type": "set-state", "state": "logged-out"})
        for b in (agent, sup, board):
            await b.close()
