"""Rooms changed at the same moment through two hubs on one Redis: every change survives (the live
store's compare-and-set `map_swap`, retried on conflict), for a support session and a webinar."""

from __future__ import annotations

import asyncio
import secrets
from concurrent.futures import ThreadPoolExecutor

import pytest

from tests.conftest import WorkerProcess, drop_backend, prepared_backend
from tests.helpers import cached_login, connect_as
from tests.integration.test_support import changed, guest, open_session
from tests.integration.test_webinars import Member, post

pytestmark = [pytest.mark.redis_only, pytest.mark.timeout(240)]
ROUNDS = 15


@pytest.fixture
def two_hubs(start_hub, tmp_path):
    b = prepared_backend(tmp_path)
    yield start_hub(b), start_hub(b)
    drop_backend(b)


def test_a_support_room_changed_through_two_hubs_at_once_keeps_every_change(two_hubs):
    a, b = two_hubs
    agent, tokens = connect_as(a, "agent1")
    s = open_session(a, tokens)
    key = secrets.token_hex(16)  # one browser, two tabs: the same secret, one tab on each hub
    tab_a, reply = guest(a, s["token"], key)
    assert reply["type"] == "welcome", reply
    tab_b, reply = guest(b, s["token"], key)
    assert reply["type"] == "welcome", reply
    assert tab_a.request({"type": "support-join", "session_id": s["id"], "name": "Erika"})["type"] == "ack"
    agent.expect(changed("lobby"))
    assert agent.request({"type": "support-admit", "session_id": s["id"]})["type"] == "ack"
    start = agent.expect(changed("live"))["session"]["guest_epoch"]

    # Each (re)join of the live room bumps its guest_epoch: both tabs rejoin at the same time.
    def rejoin(tab) -> None:  # type: ignore[no-untyped-def]
        for _ in range(ROUNDS):
            reply = tab.request({"type": "support-join", "session_id": s["id"], "name": "Erika"})
            assert reply["type"] == "ack", reply

    with ThreadPoolExecutor(2) as pool:
        for f in [pool.submit(rejoin, tab_a), pool.submit(rejoin, tab_b)]:
            f.result()
    want = start + 2 * ROUNDS
    final = agent.expect(lambda m: m["type"] == "support-changed" and m["session"].get("guest_epoch", 0) >= want, 10,
                         f"guest_epoch {want}")
    assert final["session"]["guest_epoch"] == want
    for ws in (agent, tab_a, tab_b):
        ws.close()


async def test_a_webinar_changed_through_two_hubs_at_once_keeps_every_change(two_hubs, tmp_path):
    a, b = two_hubs
    worker = WorkerProcess(a, tmp_path / "worker.log").start()
    host, one, two = Member(a), Member(a), Member(b)
    try:
        trainer = cached_login(a.url, "trainer")
        room = post(a, "/api/webinars", trainer, {"title": "Two hubs"}).json()["room"]
        await host.connect(trainer["access_token"])
        await host.join(room)
        for m, name in ((one, "One"), (two, "Two")):
            await m.connect(post(a, f"/api/webinars/{room}/invites", trainer, {"name": name}).json()["token"])
            await m.join(room)

        async def ask(m: Member, name: str) -> None:
            for i in range(ROUNDS):
                assert (await m.request({"type": "webinar-ask", "text": f"{name} {i}"}))["type"] == "ack"
            assert (await m.request({"type": "webinar-hand", "on": True}))["type"] == "ack"

        await asyncio.gather(ask(one, "one"), ask(two, "two"))
        state = await host.expect(lambda m: m["type"] == "webinar-state" and len(m.get("questions", [])) >= 2 * ROUNDS
                                  and sum(1 for x in m["members"] if x.get("hand_since")) == 2, 15, "every question")
        texts = sorted(q["text"] for q in state["questions"])
        assert texts == sorted([f"one {i}" for i in range(ROUNDS)] + [f"two {i}" for i in range(ROUNDS)])
        assert sorted(q["id"] for q in state["questions"]) == list(range(1, 2 * ROUNDS + 1))
    finally:
        for m in (host, one, two):
            await m.close()
        worker.stop()
