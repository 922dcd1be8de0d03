"""Attended transfer, conference and transfer to a number outside of a caller over SIP.

Real peers: baresip callers and far ends, bot agents with aiortc softphones. Every party plays its own
tone and each proves what it hears by frequency (a conference: both other tones at once)."""

import asyncio

from tests.conftest import HOLD_MUSIC_HZ, set_tenant_settings
from tests.integration.test_sip import available_bot, only, record
from tests.sip_peers import Baresip, ended, hears, hears_all
from webrtc.bot import BotAgent

CALLER_HZ, FIRST_HZ, SECOND_HZ, FAR_HZ = 1000.0, 500.0, 800.0, 1300.0


async def _caller_with(hub, media_worker, tmp_path, bot: BotAgent, seconds: int = 60) -> tuple[Baresip, str]:
    phone = Baresip(tmp_path / "phone", int(CALLER_HZ))
    phone.call(f"sip:support@127.0.0.1:{media_worker.sip_port}", seconds)
    offer = await bot.expect(lambda m: m["type"] == "contact-offered", 15)
    cid = offer["contact"]["id"]
    assert (await bot.request({"type": "accept-offer", "contact_id": cid}))["type"] == "ack"
    assert await bot.hears(CALLER_HZ), f"the agent heard {bot.hearing():.0f} Hz, not the caller"
    return phone, cid


async def consulted(first: BotAgent, second: BotAgent, cid: str) -> str:
    """The first agent holds the caller and calls the second, who answers; returns the consult call's id."""
    # Calling while talking to the caller is refused: the caller would hear it.
    busy = await first.request({"type": "call-dial", "to": "agent3"})
    assert busy["type"] == "error" and busy["code"] == "busy", busy
    assert (await first.request({"type": "call-hold", "call_id": cid, "on": True}))["type"] == "ack"
    await first.expect(lambda m: m["type"] == "contact-changed" and m["contact"].get("held"))
    ack = await first.request({"type": "call-dial", "to": "agent3"})
    assert ack["type"] == "ack", ack
    ring = await second.expect(lambda m: m["type"] == "call-changed" and m["call"]["status"] == "ringing")
    assert (await second.request({"type": "call-answer", "call_id": ring["call"]["id"]}))["type"] == "ack"
    assert await first.hears(SECOND_HZ) and await second.hears(FIRST_HZ), "the agents do not hear each other"
    return ack["call_id"]


async def _bye(*bots: BotAgent | None) -> None:
    for b in bots:
        if b is not None:
            await b.request({"type": "set-state", "state": "logged-out"})
            await b.close()


async def test_an_attended_transfer_hands_the_caller_to_the_consulted_agent(hub, media_worker, tmp_path):
    only(hub)
    first = await available_bot(hub, "agent1", FIRST_HZ)
    second = await available_bot(hub, "agent3", SECOND_HZ)
    phone = None
    try:
        phone, cid = await _caller_with(hub, media_worker, tmp_path, first)
        consult = await consulted(first, second, cid)
        assert await asyncio.to_thread(hears, phone, HOLD_MUSIC_HZ), "the held caller hears no music"
        # Complete: the second agent has the caller at once, the first goes to wrap-up.
        ack = await first.request({"type": "call-transfer", "call_id": cid, "consult": consult})
        assert ack["type"] == "ack", ack
        new_id = ack["call_id"]
        await first.expect(lambda m: m["type"] == "contact-changed" and m["contact"]["status"] == "wrap-up")
        ended_call = await second.expect(lambda m: m["type"] == "call-changed" and m["call"]["status"] == "ended")
        assert ended_call["call"]["end_reason"] == "transferred"
        took = await second.expect(
            lambda m: m["type"] == "contact-changed" and m["contact"]["id"] == new_id
            and m["contact"]["status"] == "connected", 15,
        )
        assert took["contact"]["data"]["transferred_by"] == "agent1" and took["contact"]["queue"] == "support"
        assert await second.hears(CALLER_HZ), f"the second agent heard {second.hearing():.0f} Hz, not the caller"
        assert await asyncio.to_thread(hears, phone, SECOND_HZ), "the caller does not hear the second agent"
        assert await first.hears_not(CALLER_HZ)
        rec = record(hub, cid)
        assert rec["data"]["ended_by"] == "transfer"
        assert (await second.request({"type": "end-contact", "contact_id": new_id}))["type"] == "ack"
        assert await asyncio.to_thread(ended, phone), phone.output()[-2000:]
        for b, contact in ((first, cid), (second, new_id)):
            await b.request({"type": "complete-wrap-up", "contact_id": contact, "code": "resolved"})
    finally:
        if phone is not None:
            phone.stop()
        await _bye(first, second)


async def test_a_conference_joins_caller_and_two_agents_until_the_consult_ends(hub, media_worker, tmp_path):
    only(hub)
    first = await available_bot(hub, "agent1", FIRST_HZ)
    second = await available_bot(hub, "agent3", SECOND_HZ)
    phone = None
    try:
        phone, cid = await _caller_with(hub, media_worker, tmp_path, first)
        consult = await consulted(first, second, cid)
        ack = await first.request({"type": "call-conference", "call_id": cid, "consult": consult})
        assert ack["type"] == "ack", ack
        # Each hears both others, and not itself.
        assert await first.hears_all([CALLER_HZ, SECOND_HZ]), "the first agent does not hear both"
        assert await second.hears_all([CALLER_HZ, FIRST_HZ]), "the second agent does not hear both"
        assert await asyncio.to_thread(hears_all, phone, [FIRST_HZ, SECOND_HZ]), "the caller does not hear both"
        # A caller in a conference is not put on hold; a second conference is refused.
        err = await first.request({"type": "call-hold", "call_id": cid, "on": True})
        assert err["type"] == "error" and err["code"] == "conflict", err
        err = await first.request({"type": "call-conference", "call_id": cid, "consult": consult})
        assert err["type"] == "error" and err["code"] == "conflict", err
        # The second agent leaves: the first and the caller go on.
        assert (await second.request({"type": "call-hangup", "call_id": consult}))["type"] == "ack"
        assert await first.hears(CALLER_HZ), f"the first agent heard {first.hearing():.0f} Hz, not the caller alone"
        assert await asyncio.to_thread(hears, phone, FIRST_HZ), "the caller no longer hears the first agent"
        assert await second.hears_not(CALLER_HZ)
        assert (await first.request({"type": "end-contact", "contact_id": cid}))["type"] == "ack"
        assert await asyncio.to_thread(ended, phone), phone.output()[-2000:]
        await first.request({"type": "complete-wrap-up", "contact_id": cid, "code": "resolved"})
    finally:
        if phone is not None:
            phone.stop()
        await _bye(first, second)


async def test_a_blind_transfer_to_a_number_outside_bridges_the_caller_there(hub, backend, media_worker, tmp_path):
    only(hub)
    far = Baresip(tmp_path / "far", int(FAR_HZ), user="+4930555888", auto_answer=True)
    far.listen(60)
    set_tenant_settings(backend, "demo", sip={"outbound": {"proxy": f"127.0.0.1:{far.port}", "caller_id": "+4930100"}})
    first = await available_bot(hub, "agent1", FIRST_HZ)
    phone = None
    try:
        phone, cid = await _caller_with(hub, media_worker, tmp_path, first)
        ack = await first.request({"type": "call-transfer", "call_id": cid, "to": "+4930555888"})
        assert ack["type"] == "ack", ack
        await first.expect(lambda m: m["type"] == "contact-changed" and m["contact"]["status"] == "wrap-up")
        assert await asyncio.to_thread(hears, phone, FAR_HZ), "the caller does not hear the number called"
        assert await asyncio.to_thread(hears, far, CALLER_HZ), "the number called does not hear the caller"
        assert await first.hears_not(CALLER_HZ)
        rec = record(hub, cid)
        assert rec["data"]["ended_by"] == "transfer" and rec["data"]["transferred_to"] == "+4930555888"
        # The far end hangs up: the caller gets a BYE.
        far.stop()
        assert await asyncio.to_thread(ended, phone), phone.output()[-2000:]
        await first.request({"type": "complete-wrap-up", "contact_id": cid, "code": "resolved"})
    finally:
        set_tenant_settings(backend, "demo", sip={})
        far.stop()
        if phone is not None:
            phone.stop()
        await _bye(first)


async def test_a_failed_transfer_outside_puts_the_caller_back_in_the_queue(hub, backend, media_worker, tmp_path):
    only(hub)
    # Nothing listens there: the trunk's call fails and the caller must not be lost.
    from tests.conftest import free_port

    set_tenant_settings(backend, "demo", sip={"outbound": {"proxy": f"127.0.0.1:{free_port()}", "caller_id": "+4930100"}})
    first = await available_bot(hub, "agent1", FIRST_HZ)
    phone = None
    try:
        phone, cid = await _caller_with(hub, media_worker, tmp_path, first)
        ack = await first.request({"type": "call-transfer", "call_id": cid, "to": "+4930555999"})
        assert ack["type"] == "ack", ack
        await first.expect(lambda m: m["type"] == "contact-changed" and m["contact"]["status"] == "wrap-up")
        assert (await first.request({"type": "complete-wrap-up", "contact_id": cid, "code": "resolved"}))["type"] == "ack"
        back = await first.expect(lambda m: m["type"] == "contact-offered", 40)
        assert back["contact"]["queue"] == "support" and "+4930555999" in back["contact"]["data"]["transfer_failed"]
        new_id = back["contact"]["id"]
        assert (await first.request({"type": "accept-offer", "contact_id": new_id}))["type"] == "ack"
        assert await first.hears(CALLER_HZ), "the caller did not come back to an agent"
        assert (await first.request({"type": "end-contact", "contact_id": new_id}))["type"] == "ack"
        await first.request({"type": "complete-wrap-up", "contact_id": new_id, "code": "resolved"})
    finally:
        set_tenant_settings(backend, "demo", sip={})
        if phone is not None:
            phone.stop()
        await _bye(first)


async def test_an_attended_transfer_to_a_number_outside(hub, backend, media_worker, tmp_path):
    only(hub)
    far = Baresip(tmp_path / "far", int(FAR_HZ), user="+4930555777", auto_answer=True)
    far.listen(60)
    set_tenant_settings(backend, "demo", sip={"outbound": {"proxy": f"127.0.0.1:{far.port}", "caller_id": "+4930100"}})
    first = await available_bot(hub, "agent1", FIRST_HZ)
    phone = None
    try:
        phone, cid = await _caller_with(hub, media_worker, tmp_path, first)
        assert (await first.request({"type": "call-hold", "call_id": cid, "on": True}))["type"] == "ack"
        ack = await first.request({"type": "call-dial", "to": "+4930555777"})
        assert ack["type"] == "ack", ack
        consult = ack["call_id"]
        await first.expect(lambda m: m["type"] == "call-changed" and m["call"]["status"] == "connected", 15)
        assert await first.hears(FAR_HZ) and await asyncio.to_thread(hears, far, FIRST_HZ)
        done = await first.request({"type": "call-transfer", "call_id": cid, "consult": consult})
        assert done["type"] == "ack", done
        gone = await first.expect(lambda m: m["type"] == "call-changed" and m["call"]["status"] == "ended")
        assert gone["call"]["end_reason"] == "transferred"
        assert await asyncio.to_thread(hears, phone, FAR_HZ), "the caller does not hear the number consulted"
        assert await asyncio.to_thread(hears, far, CALLER_HZ), "the number consulted does not hear the caller"
        assert await first.hears_not(FAR_HZ)
        assert record(hub, cid)["data"]["transferred_to"] == "+4930555777"
        # The caller hangs up: the far end gets a BYE.
        phone.stop()
        assert await asyncio.to_thread(ended, far), far.output()[-2000:]
        await first.request({"type": "complete-wrap-up", "contact_id": cid, "code": "resolved"})
    finally:
        set_tenant_settings(backend, "demo", sip={})
        far.stop()
        if phone is not None:
            phone.stop()
        await _bye(first)
