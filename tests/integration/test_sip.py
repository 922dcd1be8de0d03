"""Calls over SIP from real phones (baresip) through the media worker and the ACD to an agent's softphone.

The caller's microphone plays one tone, the agent's another; each side proves it hears the other by frequency.
"""

import asyncio

import httpx

from tests.conftest import HOLD_MUSIC_HZ, HubProcess, WorkerProcess, drop_backend, prepared_backend, set_tenant_settings
from tests.helpers import bearer, cached_login, force
from tests.sip_peers import Baresip, ended, hears, hears_not, windows
from webrtc.audio import ToneSource
from webrtc.bot import BotAgent
from webrtc.tones import tone_present, write_tone_wav

CALLER_HZ, AGENT_HZ = 1000.0, 500.0


async def records(backend) -> list:
    """Every call record in the backend's store (read directly: no route lists them yet)."""
    from sqlalchemy import select

    from store.db import make_engine, make_sessionmaker
    from store.models import CallRecord

    url = backend.database_url.replace("sqlite://", "sqlite+aiosqlite://").replace(
        "postgresql://", "postgresql+asyncpg://"
    )
    engine = make_engine(url)
    try:
        async with make_sessionmaker(engine)() as s:
            return list((await s.execute(select(CallRecord))).scalars())
    finally:
        await engine.dispose()


def record(hub, contact_id: str) -> dict:
    r = httpx.get(f"{hub.url}/api/contacts/{contact_id}", headers=bearer(cached_login(hub.url, "supervisor")))
    assert r.status_code == 200, r.text
    return r.json()


async def available_bot(hub, username: str, hz: float) -> BotAgent:
    b = BotAgent(hub.url, "demo", username, "demo", ToneSource(hz))
    await b.login()
    await b.connect_phone()
    r = await b.request({"type": "set-state", "state": "available"})
    assert r["type"] == "ack" or "available" in r.get("message", ""), r
    return b


def only(hub, *usernames: str) -> None:
    for i in range(1, 6):
        force(hub, f"agent{i}", "logged-out")


async def test_a_caller_on_a_sip_phone_reaches_an_agent_and_both_hear_each_other(hub, media_worker, tmp_path):
    only(hub)
    agent = await available_bot(hub, "agent1", AGENT_HZ)
    phone = Baresip(tmp_path / "phone", int(CALLER_HZ))
    try:
        phone.call(f"sip:support@127.0.0.1:{media_worker.sip_port}", 25)
        offer = await agent.expect(lambda m: m["type"] == "contact-offered", 15)
        contact_id = offer["contact"]["id"]
        assert offer["contact"]["queue"] == "support" and offer["contact"]["caller"] == "caller"
        assert (await agent.request({"type": "accept-offer", "contact_id": contact_id}))["type"] == "ack"
        assert await agent.hears(CALLER_HZ), f"the agent heard {agent.hearing():.0f} Hz, not the caller"
        assert await asyncio.to_thread(hears, phone, AGENT_HZ), "the caller does not hear the agent"
        # The agent ends the call: the phone gets a BYE.
        assert (await agent.request({"type": "end-contact", "contact_id": contact_id}))["type"] == "ack"
        assert await asyncio.to_thread(ended, phone), phone.output()[-2000:]
        phone.stop()
        x, rate = phone.heard()
        parts = windows(x, rate)
        assert any(tone_present(w, rate, AGENT_HZ) for w in parts), "the caller never heard the agent"
        assert (await agent.request({"type": "complete-wrap-up", "contact_id": contact_id, "code": "resolved"}))[
            "type"
        ] == "ack"
        rec = record(hub, contact_id)
        assert rec["outcome"] == "answered" and rec["data"]["ended_by"] == "agent" and rec["wrapup_code"] == "resolved"
    finally:
        phone.stop()
        await agent.request({"type": "set-state", "state": "logged-out"})
        await agent.close()


async def test_the_caller_hanging_up_ends_the_contact_for_the_agent(hub, media_worker, tmp_path):
    only(hub)
    agent = await available_bot(hub, "agent2", AGENT_HZ)
    phone = Baresip(tmp_path / "phone", int(CALLER_HZ))
    try:
        phone.call(f"sip:support@127.0.0.1:{media_worker.sip_port}", 6)
        offer = await agent.expect(lambda m: m["type"] == "contact-offered", 15)
        contact_id = offer["contact"]["id"]
        assert (await agent.request({"type": "accept-offer", "contact_id": contact_id}))["type"] == "ack"
        assert await agent.hears(CALLER_HZ)
        # baresip hangs up after its time: the agent goes to wrap-up.
        changed = await agent.expect(
            lambda m: m["type"] == "contact-changed" and m["contact"]["status"] == "wrap-up", 15
        )
        assert changed["contact"]["id"] == contact_id
        assert record(hub, contact_id)["data"]["ended_by"] == "caller"
        await agent.request({"type": "complete-wrap-up", "contact_id": contact_id, "code": "resolved"})
    finally:
        phone.stop()
        await agent.request({"type": "set-state", "state": "logged-out"})
        await agent.close()


async def test_a_caller_who_gives_up_while_waiting_is_recorded_as_abandoned(hub, media_worker, tmp_path):
    only(hub)  # nobody available: the call waits with music
    phone = Baresip(tmp_path / "phone", int(CALLER_HZ))
    sup = bearer(cached_login(hub.url, "supervisor"))
    before = {q["queue"]: q for q in httpx.get(f"{hub.url}/api/queue-stats", headers=sup).json()}
    try:
        phone.call(f"sip:support@127.0.0.1:{media_worker.sip_port}", 4)
        assert await asyncio.to_thread(phone.wait, 20) == 0
        x, rate = phone.heard()
        assert any(tone_present(w, rate, HOLD_MUSIC_HZ) for w in windows(x, rate)), "no music while waiting"
        want = before.get("support", {}).get("abandoned", 0) + 1
        for _ in range(100):  # published figures trail by up to a second (bounded polling)
            now = {q["queue"]: q for q in httpx.get(f"{hub.url}/api/queue-stats", headers=sup).json()}
            if now["support"].get("abandoned", 0) >= want:
                break
            await asyncio.sleep(0.05)
        assert now["support"]["abandoned"] == want
    finally:
        phone.stop()


async def test_an_unknown_address_is_refused_with_404(hub, media_worker, tmp_path):
    phone = Baresip(tmp_path / "phone", int(CALLER_HZ))
    try:
        phone.call(f"sip:nobody@127.0.0.1:{media_worker.sip_port}", 3)
        await asyncio.to_thread(phone.wait, 15)
        assert "404" in phone.output(), phone.output()[-2000:]
    finally:
        phone.stop()


async def test_hold_and_mute_on_a_sip_call(hub, media_worker, tmp_path):
    only(hub)
    agent = await available_bot(hub, "agent3", AGENT_HZ)
    phone = Baresip(tmp_path / "phone", int(CALLER_HZ))
    try:
        phone.call(f"sip:support@127.0.0.1:{media_worker.sip_port}", 40)
        offer = await agent.expect(lambda m: m["type"] == "contact-offered", 15)
        cid = offer["contact"]["id"]
        assert offer["contact"]["media"] is True
        assert (await agent.request({"type": "accept-offer", "contact_id": cid}))["type"] == "ack"
        assert await agent.hears(CALLER_HZ)
        assert await asyncio.to_thread(hears, phone, AGENT_HZ)
        # Hold: the caller hears the music, the agent nothing of the caller.
        assert (await agent.request({"type": "call-hold", "call_id": cid, "on": True}))["type"] == "ack"
        held = await agent.expect(lambda m: m["type"] == "contact-changed" and m["contact"].get("held"))
        assert held["contact"]["status"] == "connected"
        assert await asyncio.to_thread(hears, phone, HOLD_MUSIC_HZ), "the caller hears no music on hold"
        assert await agent.hears_not(CALLER_HZ)
        assert (await agent.request({"type": "call-hold", "call_id": cid, "on": False}))["type"] == "ack"
        assert await agent.hears(CALLER_HZ)
        assert await asyncio.to_thread(hears, phone, AGENT_HZ)
        # Mute: the caller no longer hears the agent.
        assert (await agent.request({"type": "call-mute", "call_id": cid, "on": True}))["type"] == "ack"
        assert await asyncio.to_thread(hears_not, phone, AGENT_HZ), "the caller still hears a muted agent"
        assert (await agent.request({"type": "call-mute", "call_id": cid, "on": False}))["type"] == "ack"
        assert await asyncio.to_thread(hears, phone, AGENT_HZ)
        # Keypad digits are accepted for the call (their arrival as RFC 4733 events is proven in tests/bridge).
        assert (await agent.request({"type": "call-dtmf", "call_id": cid, "digits": "42"}))["type"] == "ack"
        bad = await agent.request({"type": "call-dtmf", "call_id": cid, "digits": "4x"})
        assert bad["type"] == "error" and bad["code"] == "bad-frame"
        # Another agent cannot hold this caller.
        other = await available_bot(hub, "agent4", 800.0)
        err = await other.request({"type": "call-hold", "call_id": cid, "on": True})
        assert err["type"] == "error" and err["code"] == "not-found"
        await other.request({"type": "set-state", "state": "logged-out"})
        await other.close()
        assert (await agent.request({"type": "end-contact", "contact_id": cid}))["type"] == "ack"
        await agent.request({"type": "complete-wrap-up", "contact_id": cid, "code": "resolved"})
        assert record(hub, cid)["data"]["hold_seconds"] > 0
    finally:
        phone.stop()
        await agent.request({"type": "set-state", "state": "logged-out"})
        await agent.close()


async def test_callers_on_a_worker_that_dies_are_recorded_and_their_agents_freed(tmp_path):
    backend = prepared_backend(tmp_path)
    hub = HubProcess(backend, tmp_path / "hub.log").start()
    music = tmp_path / "hold.wav"
    write_tone_wav(music, HOLD_MUSIC_HZ, 2.0, 8000)
    worker = WorkerProcess(hub, tmp_path / "w.log", name="doomed", UNIDESK_HOLD_MUSIC=str(music)).start()
    agent = await available_bot(hub, "agent1", AGENT_HZ)
    talking = Baresip(tmp_path / "talking", int(CALLER_HZ))
    waiting = Baresip(tmp_path / "waiting", 900)
    try:
        talking.call(f"sip:support@127.0.0.1:{worker.sip_port}", 60)
        offer = await agent.expect(lambda m: m["type"] == "contact-offered", 15)
        connected = offer["contact"]["id"]
        assert (await agent.request({"type": "accept-offer", "contact_id": connected}))["type"] == "ack"
        assert await agent.hears(CALLER_HZ)
        # A second caller waits: nobody else is available.
        waiting.call(f"sip:support@127.0.0.1:{worker.sip_port}", 60)
        assert await asyncio.to_thread(hears, waiting, HOLD_MUSIC_HZ)
        sup = bearer(cached_login(hub.url, "supervisor"))
        stats = {q["queue"]: q for q in httpx.get(f"{hub.url}/api/queue-stats", headers=sup).json()}
        for _ in range(100):  # the second caller shows as waiting (bounded polling)
            if stats.get("support", {}).get("waiting") == 1:
                break
            await asyncio.sleep(0.05)
            stats = {q["queue"]: q for q in httpx.get(f"{hub.url}/api/queue-stats", headers=sup).json()}
        worker.kill()
        # The agent's caller is gone: wrap-up, with the reason on the record.
        await agent.expect(lambda m: m["type"] == "contact-changed" and m["contact"]["status"] == "wrap-up", 15)
        assert record(hub, connected)["data"]["ended_by"] == "media-lost"
        # The waiting caller is recorded as failed, not as having given up.
        for _ in range(100):
            recs = await records(backend)
            if any(r.outcome == "failed" for r in recs):
                break
            await asyncio.sleep(0.05)
        failed = [r for r in recs if r.outcome == "failed"]
        assert len(failed) == 1 and failed[0].data["reason"] == "media worker lost", [(r.outcome, r.data) for r in recs]
    finally:
        talking.stop()
        waiting.stop()
        await agent.close()
        worker.stop()
        hub.stop()
        drop_backend(backend)


async def test_an_agent_calls_a_number_outside_through_the_trunk(hub, backend, media_worker, tmp_path):
    only(hub)
    far = Baresip(tmp_path / "far", int(CALLER_HZ), user="+4930555777", auto_answer=True)
    far.listen(40)
    set_tenant_settings(backend, "demo", sip={"outbound": {"proxy": f"127.0.0.1:{far.port}", "caller_id": "+4930100"}})
    agent = BotAgent(hub.url, "demo", "agent4", "demo", ToneSource(AGENT_HZ))
    await agent.login()
    await agent.connect_phone()
    try:
        ack = await agent.request({"type": "call-dial", "to": "+4930555777"})
        assert ack["type"] == "ack", ack
        call_id = ack["call_id"]
        up = await agent.expect(lambda m: m["type"] == "call-changed" and m["call"]["status"] == "connected", 15)
        assert up["call"]["peer"] == "+4930555777" and up["call"]["direction"] == "outbound"
        assert await agent.hears(CALLER_HZ), f"the agent heard {agent.hearing():.0f} Hz, not the far end"
        assert await asyncio.to_thread(hears, far, AGENT_HZ), "the far end does not hear the agent"
        assert (await agent.request({"type": "call-hangup", "call_id": call_id}))["type"] == "ack"
        end = await agent.expect(lambda m: m["type"] == "call-changed" and m["call"]["status"] == "ended")
        assert end["call"]["end_reason"] == "hangup"
        assert await asyncio.to_thread(ended, far), far.output()[-2000:]
        rec = httpx.get(f"{hub.url}/api/contacts/{call_id}", headers=bearer(cached_login(hub.url, "supervisor"))).json()
        assert rec["outcome"] == "answered" and rec["caller"] == "agent4"
        # A number without a trunk configured is refused with a reason.
        set_tenant_settings(backend, "demo", sip={})
        err = await agent.request({"type": "call-dial", "to": "+4930555777"})
        assert err["type"] == "error" and "trunk" in err["message"]
    finally:
        set_tenant_settings(backend, "demo", sip={})
        far.stop()
        await agent.close()


async def test_callers_on_two_workers_are_kept_apart(tmp_path):
    # Each worker numbers its own SIP calls: the first call on each has the same id.
    backend = prepared_backend(tmp_path)
    hub = HubProcess(backend, tmp_path / "hub.log").start()
    workers = [WorkerProcess(hub, tmp_path / f"w{i}.log", name=f"w{i}", UNIDESK_MEDIA_CAPACITY="1").start() for i in (1, 2)]
    agents = [await available_bot(hub, f"agent{i}", AGENT_HZ) for i in (1, 2)]
    phones = [Baresip(tmp_path / f"phone{i}", int(CALLER_HZ)) for i in (1, 2)]
    try:
        for phone, worker in zip(phones, workers):
            phone.call(f"sip:support@127.0.0.1:{worker.sip_port}", 8)
        offers = [await a.expect(lambda m: m["type"] == "contact-offered", 15) for a in agents]
        for a, offer in zip(agents, offers):
            assert (await a.request({"type": "accept-offer", "contact_id": offer["contact"]["id"]}))["type"] == "ack"
        # Both callers hang up: both agents are released, whichever worker carried their caller.
        for a, offer in zip(agents, offers):
            done = await a.expect(lambda m: m["type"] == "contact-changed" and m["contact"]["status"] == "wrap-up", 20)
            assert done["contact"]["id"] == offer["contact"]["id"]
            assert record(hub, offer["contact"]["id"])["data"]["ended_by"] == "caller"
    finally:
        for p in phones:
            p.stop()
        for a in agents:
            await a.close()
        for w in workers:
            w.stop()
        hub.stop()
        drop_backend(backend)


async def test_a_blind_transfer_hands_the_caller_to_another_queue_or_agent(hub, media_worker, tmp_path):
    only(hub)
    first = await available_bot(hub, "agent1", AGENT_HZ)
    phone = Baresip(tmp_path / "phone", int(CALLER_HZ))
    second = third = None
    try:
        phone.call(f"sip:support@127.0.0.1:{media_worker.sip_port}", 45)
        offer = await first.expect(lambda m: m["type"] == "contact-offered", 15)
        cid = offer["contact"]["id"]
        assert (await first.request({"type": "accept-offer", "contact_id": cid}))["type"] == "ack"
        assert await first.hears(CALLER_HZ)
        err = await first.request({"type": "call-transfer", "call_id": cid, "to": "nowhere"})
        assert err["type"] == "error" and err["code"] == "not-found"
        # To the sales queue: agent3 is the one available there.
        second = await available_bot(hub, "agent3", 800.0)
        ack = await first.request({"type": "call-transfer", "call_id": cid, "to": "sales"})
        assert ack["type"] == "ack", ack
        await first.expect(lambda m: m["type"] == "contact-changed" and m["contact"]["status"] == "wrap-up")
        moved = await second.expect(lambda m: m["type"] == "contact-offered", 15)
        assert moved["contact"]["id"] == ack["call_id"] and moved["contact"]["queue"] == "sales"
        assert moved["contact"]["data"]["transferred_by"] == "agent1"
        assert (await second.request({"type": "accept-offer", "contact_id": ack["call_id"]}))["type"] == "ack"
        assert await second.hears(CALLER_HZ), "the caller did not reach the second agent"
        assert await asyncio.to_thread(hears, phone, 800.0)
        assert record(hub, cid)["data"]["ended_by"] == "transfer"
        # On to a named agent: the caller waits in that agent's first queue, offered to that agent first.
        third = await available_bot(hub, "agent4", 1300.0)
        ack2 = await second.request({"type": "call-transfer", "call_id": ack["call_id"], "to": "agent4"})
        assert ack2["type"] == "ack", ack2
        offered = await third.expect(lambda m: m["type"] == "contact-offered", 15)
        assert offered["contact"]["id"] == ack2["call_id"]
        assert (await third.request({"type": "accept-offer", "contact_id": ack2["call_id"]}))["type"] == "ack"
        assert await third.hears(CALLER_HZ)
        assert (await third.request({"type": "end-contact", "contact_id": ack2["call_id"]}))["type"] == "ack"
        assert await asyncio.to_thread(ended, phone), phone.output()[-2000:]
        for bot_, contact in ((first, cid), (second, ack["call_id"]), (third, ack2["call_id"])):
            await bot_.request({"type": "complete-wrap-up", "contact_id": contact, "code": "resolved"})
    finally:
        phone.stop()
        for b in (first, second, third):
            if b is not None:
                await b.request({"type": "set-state", "state": "logged-out"})
                await b.close()
