"""A caller in a menu outlives the hub that answered it (two hubs on PostgreSQL + Redis).

The caller's place in the menu is in the live store (realtime/menus.py). Hub A answers the call and
plays the menu; A stops; the media worker reconnects to hub B (it was given both); the caller presses 2
and B, which never saw the call before, puts it in the sales queue, where an agent takes it.
"""

from __future__ import annotations

import asyncio
import time

import pytest
import redis

from tests.conftest import HOLD_MUSIC_HZ, REDIS_URL, HubProcess, WorkerProcess, drop_backend, prepared_backend
from tests.helpers import force
from tests.integration.test_ivr import MENU, add_routes, available, finish, sipp_call
from webrtc.tones import write_tone_wav

pytestmark = [pytest.mark.redis_only, pytest.mark.timeout(150)]

# The digit comes this long after the call is answered: time for hub A to stop and the worker to move.
PRESS_AFTER_MS = 9000


def menu_callers(prefix: str) -> dict:
    r = redis.Redis.from_url(REDIS_URL)
    try:
        return r.hgetall(f"{prefix}:map:sip-menus")
    finally:
        r.close()


async def test_a_caller_in_a_menu_chooses_through_another_hub_after_the_first_stops(tmp_path):
    backend = prepared_backend(tmp_path)
    # A long silence allowed: the menu is not replayed before the digit.
    add_routes(backend, {"address": "menu-slow", "ivr": {**MENU, "timeout_seconds": 30, "retries": 1}})
    a = HubProcess(backend, tmp_path / "a.log").start()
    b = HubProcess(backend, tmp_path / "b.log").start()
    music = tmp_path / "hold.wav"
    write_tone_wav(music, HOLD_MUSIC_HZ, 2.0, 8000)
    worker = WorkerProcess(a, tmp_path / "w.log", others=(b,), UNIDESK_HOLD_MUSIC=str(music)).start()
    agent = None
    try:
        for i in range(1, 6):
            force(b, f"agent{i}", "logged-out")
        agent = await available(b, "agent3")  # in support and in sales: the queue tells which was chosen
        call = asyncio.create_task(sipp_call(tmp_path / "sipp", worker, "menu-slow", [("2", PRESS_AFTER_MS)]))
        deadline = time.monotonic() + 15
        while not menu_callers(backend.redis_prefix):
            assert time.monotonic() < deadline and not call.done(), "the caller never entered the menu"
            await asyncio.sleep(0.05)  # polling the live store, bounded
        assert "connected to the hub at " + a.ws_url in worker.log()
        a.stop()
        deadline = time.monotonic() + 10
        while "connected to the hub at " + b.ws_url not in worker.log():
            assert time.monotonic() < deadline, worker.log()[-3000:]
            await asyncio.sleep(0.05)  # polling the worker's log, bounded
        # (Under load the digit may already have been taken by the second hub here: what proves the failover
        # is that the second hub chose the queue and the first did not, below.)
        offer = await agent.expect(lambda m: m["type"] == "contact-offered", 30)
        assert offer["contact"]["queue"] == "sales", offer
        assert offer["contact"]["data"]["menu"] == "2"
        assert "chose sales" in b.log() and "chose sales" not in a.log()
        cid = offer["contact"]["id"]
        assert (await agent.request({"type": "accept-offer", "contact_id": cid}))["type"] == "ack"
        await finish(agent, cid)
        agent = None
        rc, out = await call
        assert rc == 0, out[-2000:]
        assert not menu_callers(backend.redis_prefix)
    finally:
        if agent is not None:
            await agent.close()
        worker.stop()
        b.stop()
        a.stop()
        drop_backend(backend)
