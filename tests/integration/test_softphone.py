"""Softphones through the hub and a real media worker, with aiortc agents (the bot agent) as browsers.

Audio is proven by frequency on the far side: each agent's microphone plays its own tone.
"""

import asyncio

import httpx
import pytest

from tests.conftest import HOLD_MUSIC_HZ, HubProcess, WorkerProcess, drop_backend, prepared_backend
from tests.helpers import bearer, cached_login, force
from webrtc.audio import ToneSource
from webrtc.bot import BotAgent

A_HZ, B_HZ = 500.0, 1200.0


async def bot(hub, username: str, hz: float) -> BotAgent:
    b = BotAgent(hub.url, "demo", username, "demo", ToneSource(hz))
    await b.login()
    return b


async def test_headset_check_both_ways(hub, media_worker):
    a = await bot(hub, "agent1", A_HZ)
    try:
        codec = await a.connect_phone()
        assert codec.upper() in ("PCMU", "PCMA"), codec
        assert (await a.request({"type": "phone-test", "tone_hz": 1000}))["type"] == "ack"
        assert await a.hears(1000.0), f"heard {a.hearing():.0f} Hz instead of the worker's 1000 Hz"
        # The worker reports what it hears from the microphone: the bot's own tone.
        check = await a.expect(lambda m: m["type"] == "phone-check" and abs(m["frequency"] - A_HZ) < 15, 8)
        assert check["level_db"] > -40
        assert (await a.request({"type": "phone-test", "tone_hz": 0}))["type"] == "ack"
    finally:
        await a.close()


async def test_two_agents_call_hear_each_other_mute_hold_and_hang_up(hub, media_worker):
    a = await bot(hub, "agent1", A_HZ)
    b = await bot(hub, "agent2", B_HZ)
    try:
        await asyncio.gather(a.connect_phone(), b.connect_phone())
        ack = await a.request({"type": "call-dial", "to": "agent2"})
        assert ack["type"] == "ack", ack
        call_id = ack["call_id"]
        ring = await b.expect(lambda m: m["type"] == "call-changed" and m["call"]["status"] == "ringing")
        assert ring["call"]["direction"] == "inbound" and ring["call"]["peer"] == "agent1"
        assert (await b.request({"type": "call-answer", "call_id": call_id}))["type"] == "ack"
        for who in (a, b):
            await who.expect(lambda m: m["type"] == "call-changed" and m["call"]["status"] == "connected")
        assert await a.hears(B_HZ), f"agent1 heard {a.hearing():.0f} Hz"
        assert await b.hears(A_HZ), f"agent2 heard {b.hearing():.0f} Hz"

        # Mute: agent2 no longer hears agent1's tone; unmute brings it back.
        assert (await a.request({"type": "call-mute", "call_id": call_id, "on": True}))["type"] == "ack"
        assert await b.hears_not(A_HZ), "agent1's tone still reaches agent2 while muted"
        assert (await a.request({"type": "call-mute", "call_id": call_id, "on": False}))["type"] == "ack"
        assert await b.hears(A_HZ)

        # Hold: the other party hears the music, not the agent.
        assert (await a.request({"type": "call-hold", "call_id": call_id, "on": True}))["type"] == "ack"
        held = await b.expect(lambda m: m["type"] == "call-changed" and m["call"].get("held_by_peer"))
        assert held["call"]["status"] == "connected"
        assert await b.hears(HOLD_MUSIC_HZ), f"agent2 heard {b.hearing():.0f} Hz on hold"
        assert not await b.hears(A_HZ, timeout=0.6)
        assert (await a.request({"type": "call-hold", "call_id": call_id, "on": False}))["type"] == "ack"
        assert await b.hears(A_HZ)

        assert (await a.request({"type": "call-dtmf", "call_id": call_id, "digits": "12#"}))["type"] == "ack"
        digits = await b.expect(lambda m: m["type"] == "call-digits")
        assert digits["digits"] == "12#"

        assert (await b.request({"type": "call-hangup", "call_id": call_id}))["type"] == "ack"
        for who in (a, b):
            end = await who.expect(lambda m: m["type"] == "call-changed" and m["call"]["status"] == "ended")
            assert end["call"]["end_reason"] == "hangup" and end["call"]["ended_by"] == "agent2"
        rec = httpx.get(f"{hub.url}/api/calls/{call_id}", headers=bearer(cached_login(hub.url, "supervisor"))).json()
        assert rec["from"] == "agent1" and rec["to"] == "agent2" and rec["outcome"] == "answered"
        assert rec["end_reason"] == "hangup" and rec["digits"] == "12#" and rec["held_seconds"] > 0
        assert rec["answered_at"] <= rec["ended_at"]
        # Another tenant's supervisor does not see it.
        other = httpx.get(f"{hub.url}/api/calls/{call_id}", headers=bearer(cached_login(hub.url, "supervisor", tenant="acme")))
        assert other.status_code == 404
    finally:
        await a.close()
        await b.close()


async def test_bad_signaling_gets_clear_errors_and_the_session_survives(hub, media_worker):
    a = await bot(hub, "agent3", A_HZ)
    b = await bot(hub, "agent4", B_HZ)
    try:
        await a.connect_phone()
        # An offer without audio is refused by the hub; a broken one by the worker.
        err = await a.request({"type": "phone-offer", "offer_id": "x1", "sdp": "v=0\r\n"})
        assert err["type"] == "error" and err["code"] == "bad-sdp"
        assert (await a.request({"type": "phone-offer", "offer_id": "x2", "sdp": "m=audio garbage"}))["type"] == "ack"
        failed = await a.expect(lambda m: m["type"] == "phone-state" and m.get("offer_id") == "x2")
        assert failed["state"] == "failed" and "bad-sdp" in failed["reason"]
        # Worker frames from an agent, and another agent's call.
        err = await a.request({"type": "media-answer", "session_id": "1-1", "offer_id": "o", "sdp": "v=0"})
        assert err["code"] == "forbidden"
        err = await b.request({"type": "call-answer", "call_id": "not-a-call"})
        assert err["code"] == "not-found"
        # agent4 without a softphone (a page of an earlier test may have left one: close it) cannot call.
        closed = await b.request({"type": "phone-close"})
        assert closed["type"] == "ack" or closed["code"] == "no-phone", closed
        err = await b.request({"type": "call-dial", "to": "agent3"})
        assert err["type"] == "error" and err["code"] == "no-phone", err
        await b.connect_phone()
        err = await b.request({"type": "call-dial", "to": "nobody"})
        assert err["code"] == "not-found"
        # After all that, the first session still carries audio.
        assert (await a.request({"type": "phone-test", "tone_hz": 800}))["type"] == "ack"
        assert await a.hears(800.0)
    finally:
        await a.close()
        await b.close()


async def test_a_worker_lost_mid_call_ends_the_call_with_a_record(tmp_path):
    # A hub of its own whose only media worker is the one killed.
    backend = prepared_backend(tmp_path)
    hub = HubProcess(backend, tmp_path / "hub.log").start()
    w = WorkerProcess(hub, tmp_path / "w.log", name="doomed").start()
    a = await bot(hub, "agent5", A_HZ)
    b = await bot(hub, "agent1", B_HZ)
    try:
        await a.connect_phone()
        await b.connect_phone()
        ack = await a.request({"type": "call-dial", "to": "agent1"})
        if ack["type"] == "error":
            pytest.fail(f"dial refused: {ack}")
        call_id = ack["call_id"]
        await b.request({"type": "call-answer", "call_id": call_id})
        assert await b.hears(A_HZ)
        w.kill()
        for who in (a, b):
            lost = await who.expect(lambda m: m["type"] == "phone-state" and m["state"] == "lost", 10)
            assert "went away" in lost["reason"]
            end = await who.expect(lambda m: m["type"] == "call-changed" and m["call"]["status"] == "ended", 10)
            assert end["call"]["end_reason"] == "media-lost"
        rec = httpx.get(f"{hub.url}/api/calls/{call_id}", headers=bearer(cached_login(hub.url, "supervisor"))).json()
        assert rec["end_reason"] == "media-lost" and rec["ended_at"] and rec["answered_at"]
    finally:
        await a.close()
        await b.close()
        w.stop()
        hub.stop()
        drop_backend(backend)


async def connected(call_id: str, *who: BotAgent) -> None:
    for w in who:
        await w.expect(lambda m: m["type"] == "call-changed" and m["call"]["id"] == call_id
                       and m["call"]["status"] == "connected")


async def test_a_consult_call_while_the_first_call_holds(hub, media_worker):
    a, b, c = await bot(hub, "agent1", A_HZ), await bot(hub, "agent2", B_HZ), await bot(hub, "agent3", 900.0)
    try:
        await asyncio.gather(a.connect_phone(), b.connect_phone(), c.connect_phone())
        first = (await a.request({"type": "call-dial", "to": "agent2"}))["call_id"]
        assert (await b.request({"type": "call-answer", "call_id": first}))["type"] == "ack"
        await connected(first, a, b)
        assert await b.hears(A_HZ)
        # Consulting needs the first call held.
        err = await a.request({"type": "call-dial", "to": "agent3"})
        assert err["type"] == "error" and err["code"] == "busy"
        assert (await a.request({"type": "call-hold", "call_id": first, "on": True}))["type"] == "ack"
        ack = await a.request({"type": "call-dial", "to": "agent3"})
        assert ack["type"] == "ack", ack
        consult = ack["call_id"]
        assert (await c.request({"type": "call-answer", "call_id": consult}))["type"] == "ack"
        await connected(consult, a, c)
        assert await a.hears(900.0), f"agent1 heard {a.hearing():.0f} Hz in the consult"
        assert await c.hears(A_HZ)
        assert await b.hears(HOLD_MUSIC_HZ), "the held party hears the music during the consult"
        assert not await b.hears(A_HZ, timeout=0.6), "the held party must not hear the consult"
        # Resuming the first call while the consult is live is refused; ending the consult allows it.
        err = await a.request({"type": "call-hold", "call_id": first, "on": False})
        assert err["type"] == "error" and err["code"] == "conflict"
        assert (await a.request({"type": "call-hangup", "call_id": consult}))["type"] == "ack"
        assert await b.hears(HOLD_MUSIC_HZ), "the first call stays held after the consult"
        assert (await a.request({"type": "call-hold", "call_id": first, "on": False}))["type"] == "ack"
        assert await a.hears(B_HZ) and await b.hears(A_HZ)
        snapshot_calls = await a.calls_now()
        assert [x["id"] for x in snapshot_calls] == [first]
        assert (await a.request({"type": "call-hangup", "call_id": first}))["type"] == "ack"
    finally:
        for w in (a, b, c):
            await w.close()


async def test_agents_on_a_call_between_them_are_not_offered_contacts(hub, media_worker):
    for name in ("agent3", "agent4", "agent5"):
        force(hub, name, "logged-out")
    a, b = await bot(hub, "agent1", A_HZ), await bot(hub, "agent2", B_HZ)
    admin = bearer(cached_login(hub.url, "admin"))
    try:
        await asyncio.gather(a.connect_phone(), b.connect_phone())
        for w in (a, b):
            r = await w.request({"type": "set-state", "state": "available"})
            assert r["type"] == "ack" or "available" in r.get("message", ""), r
        call_id = (await a.request({"type": "call-dial", "to": "agent2"}))["call_id"]
        assert (await b.request({"type": "call-answer", "call_id": call_id}))["type"] == "ack"
        await connected(call_id, a, b)
        r = httpx.post(f"{hub.url}/api/contacts", json={"queue": "support", "caller": "+4930999"}, headers=admin)
        assert r.status_code == 201, r.text
        cid = r.json()["contact_id"]
        # Both are available but busy: the contact waits.
        waiting = httpx.get(f"{hub.url}/api/contacts/{cid}", headers=bearer(cached_login(hub.url, "supervisor")))
        assert waiting.json()["agent_id"] is None
        with pytest.raises(TimeoutError):
            await a.expect(lambda m: m["type"] == "contact-offered", 1.5)
        assert not [m for m in b.events if m["type"] == "contact-offered"]
        # The call ends: the contact is offered to one of them.
        assert (await a.request({"type": "call-hangup", "call_id": call_id}))["type"] == "ack"
        offer = await asyncio.wait_for(
            asyncio.shield(asyncio.gather(
                a.expect(lambda m: m["type"] == "contact-offered", 10), return_exceptions=True)), 12
        )
        got = offer[0] if not isinstance(offer[0], Exception) else None
        taker = a
        if got is None:
            got = await b.expect(lambda m: m["type"] == "contact-offered", 1)
            taker = b
        assert got["contact"]["id"] == cid
        assert (await taker.request({"type": "accept-offer", "contact_id": cid}))["type"] == "ack"
        assert (await taker.request({"type": "end-contact", "contact_id": cid}))["type"] == "ack"
        assert (await taker.request({"type": "complete-wrap-up", "contact_id": cid, "code": "resolved"}))["type"] == "ack"
    finally:
        for w in (a, b):
            await w.request({"type": "set-state", "state": "logged-out"})
            await w.close()


async def test_a_softphone_that_comes_back_keeps_its_call(hub, media_worker):
    a, b = await bot(hub, "agent4", A_HZ), await bot(hub, "agent5", B_HZ)
    try:
        await asyncio.gather(a.connect_phone(), b.connect_phone())
        call_id = (await a.request({"type": "call-dial", "to": "agent5"}))["call_id"]
        assert (await b.request({"type": "call-answer", "call_id": call_id}))["type"] == "ack"
        await connected(call_id, a, b)
        assert await b.hears(A_HZ)
        # agent4's page reloads: its peer connection closes, a new one is offered.
        await a.pc.close()
        lost = await a.expect(lambda m: m["type"] == "phone-state" and m["state"] == "lost", 10)
        assert "reconnect within" in lost["reason"]
        await a.new_phone()
        assert await a.hears(B_HZ), f"agent4 heard {a.hearing():.0f} Hz after coming back"
        assert await b.hears(A_HZ)
        assert not [m for m in a.events + b.events if m["type"] == "call-changed" and m["call"]["status"] == "ended"]
        assert (await b.request({"type": "call-hangup", "call_id": call_id}))["type"] == "ack"
    finally:
        await a.close()
        await b.close()


async def test_softphones_are_placed_on_workers_with_room(tmp_path):
    # A hub of its own with two small workers.
    backend = prepared_backend(tmp_path)
    hub = HubProcess(backend, tmp_path / "hub.log").start()
    workers = [
        WorkerProcess(hub, tmp_path / f"w{i}.log", name=f"small{i}", UNIDESK_MEDIA_CAPACITY="2").start()
        for i in (1, 2)
    ]
    bots = [await bot(hub, f"agent{i}", 400.0 + 100 * i) for i in range(1, 6)]
    try:
        for b in bots[:4]:
            await b.connect_phone()
        assert httpx.get(f"{hub.url}/healthz").json()["media_workers"] == ["small1", "small2"]
        # agent1 and agent2 share the first worker: they can call each other.
        call = await bots[0].request({"type": "call-dial", "to": "agent2"})
        assert call["type"] == "ack", call
        assert (await bots[0].request({"type": "call-hangup", "call_id": call["call_id"]}))["type"] == "ack"
        # agent1 and agent3 do not: the call is mixed on agent1's worker, agent3 joins it over an audio link.
        call = await bots[0].request({"type": "call-dial", "to": "agent3"})
        assert call["type"] == "ack", call
        assert (await bots[2].request({"type": "call-answer", "call_id": call["call_id"]}))["type"] == "ack"
        assert await bots[0].hears(700.0), f"agent1 heard {bots[0].hearing():.0f} Hz, not agent3"
        assert await bots[2].hears(500.0), f"agent3 heard {bots[2].hearing():.0f} Hz, not agent1"
        assert (await bots[2].request({"type": "call-hangup", "call_id": call["call_id"]}))["type"] == "ack"
        assert await bots[0].hears_not(700.0)
        # Every worker full: the fifth softphone is refused with a reason.
        err = await bots[4].request({"type": "phone-offer", "offer_id": "o5", "sdp": "v=0\r\nm=audio 9 RTP/AVP 0\r\n"})
        assert err["type"] == "error" and err["code"] == "no-media-worker" and "full" in err["message"]
        assert all(w.proc.poll() is None for w in workers)
    finally:
        for b in bots:
            await b.close()
        for w in workers:
            w.stop()
        hub.stop()
        drop_backend(backend)


async def test_mute_belongs_to_the_call(hub, media_worker):
    a, b, c = await bot(hub, "agent3", A_HZ), await bot(hub, "agent4", B_HZ), await bot(hub, "agent5", 900.0)
    try:
        await asyncio.gather(a.connect_phone(), b.connect_phone(), c.connect_phone())
        first = (await a.request({"type": "call-dial", "to": "agent4"}))["call_id"]
        await b.request({"type": "call-answer", "call_id": first})
        await connected(first, a, b)
        assert (await a.request({"type": "call-mute", "call_id": first, "on": True}))["type"] == "ack"
        assert await b.hears_not(A_HZ)
        assert (await a.request({"type": "call-hold", "call_id": first, "on": True}))["type"] == "ack"
        consult = (await a.request({"type": "call-dial", "to": "agent5"}))["call_id"]
        await c.request({"type": "call-answer", "call_id": consult})
        await connected(consult, a, c)
        assert await c.hears(A_HZ), "a consult starts unmuted although the first call is muted"
        await a.request({"type": "call-hangup", "call_id": consult})
        assert (await a.request({"type": "call-hold", "call_id": first, "on": False}))["type"] == "ack"
        assert await a.hears(B_HZ)
        assert await b.hears_not(A_HZ), "the first call is still muted after resuming"
        await a.request({"type": "call-hangup", "call_id": first})
    finally:
        for w in (a, b, c):
            await w.close()


async def test_the_bot_agent_command_answers_talks_and_records(hub, media_worker, tmp_path):
    import subprocess
    import sys
    import wave

    import numpy as np

    from tests.conftest import ROOT
    from webrtc.tones import tone_present

    force(hub, "agent5", "logged-out")
    recording = tmp_path / "heard.wav"
    cli = subprocess.Popen(
        [sys.executable, "-m", "realtime.cli", "bot-agent", "--hub", hub.url, "--user", "agent5", "--tone", "1500",
         "--calls", "1", "--answer-after", "0", "--talk", "2", "--record", str(recording)],
        cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )
    caller = await bot(hub, "agent4", A_HZ)
    try:
        await caller.connect_phone()
        # The command prints when its softphone is up; then it can be called.
        line = await asyncio.to_thread(cli.stdout.readline)
        assert "softphone connected" in line, line
        ack = await caller.request({"type": "call-dial", "to": "agent5"})
        assert ack["type"] == "ack", ack
        await caller.expect(lambda m: m["type"] == "call-changed" and m["call"]["status"] == "connected", 10)
        assert await caller.hears(1500.0), f"heard {caller.hearing():.0f} Hz from the bot agent"
        end = await caller.expect(lambda m: m["type"] == "call-changed" and m["call"]["status"] == "ended", 15)
        assert end["call"]["ended_by"] == "agent5"
        assert await asyncio.to_thread(cli.wait, 15) == 0
        out = cli.stdout.read()
        assert "handled 1" in out, out
        with wave.open(str(recording)) as w:
            x = np.frombuffer(w.readframes(w.getnframes()), dtype="<i2")
            rate = w.getframerate()
        n = rate // 2
        assert any(tone_present(x[i : i + n], rate, A_HZ) for i in range(0, len(x) - n, n)), "the recording lacks the caller"
    finally:
        if cli.poll() is None:
            cli.kill()
        await caller.close()
        force(hub, "agent5", "logged-out")
