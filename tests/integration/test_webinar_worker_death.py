"""A webinar whose media worker dies (the process killed): the presenter and the attendees are told
(`webinar-media-lost`), the room moves to the other worker where their new connections carry the
presenter's tone again; when that worker dies too, the webinar ends and every stay is recorded."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from tests.conftest import WorkerProcess, drop_backend, prepared_backend
from tests.helpers import bearer, cached_login
from tests.integration.test_webinars import PRESENTER_HZ, Member, post, until
from webrtc.webinar_bot import Attendee, Publisher

pytestmark = pytest.mark.timeout(240)


@pytest.fixture
def own_hub(start_hub, tmp_path):
    """A hub on a backend of its own: no other hub's media workers share its live store."""
    b = prepared_backend(tmp_path)
    yield start_hub(b)
    drop_backend(b)


async def test_a_webinar_moves_off_a_dead_worker_and_ends_when_none_is_left(own_hub, tmp_path: Path):
    hub = own_hub
    workers: dict[str, WorkerProcess] = {}
    peers: list = []  # type: ignore[type-arg]
    host, guest = Member(hub), Member(hub)
    try:
        for i in range(2):
            w = WorkerProcess(hub, tmp_path / f"worker{i}.log").start()
            workers[w.name] = w
        trainer = cached_login(hub.url, "trainer")
        r = post(hub, "/api/webinars", trainer, {"title": "Resilience"})
        assert r.status_code == 201, r.text
        room, carrier = r.json()["room"], r.json()["worker"]
        (spare,) = set(workers) - {carrier}
        invite = post(hub, f"/api/webinars/{room}/invites", trainer, {"name": "Viewer"}).json()["token"]

        presenter, viewer = Publisher(PRESENTER_HZ), Attendee(video=1, audio=2)
        peers += [presenter, viewer]
        await host.connect(trainer["access_token"])
        await host.join(room)
        await host.media(presenter, publish=True)
        await guest.connect(invite)
        await guest.join(room)
        await guest.media(viewer)
        await until(lambda: viewer.hears(0, PRESENTER_HZ), 30, "the presenter's tone")

        # The carrying worker dies: both sides are told, and the room goes on on the other worker.
        workers[carrier].kill()
        for m in (host, guest):
            lost = await m.expect(lambda f: f["type"] == "webinar-media-lost", 30, "webinar-media-lost")
            assert lost["room"] == room and lost["moved"] is True and "went away" in lost["message"], lost
        presenter2, viewer2 = Publisher(PRESENTER_HZ), Attendee(video=1, audio=2)
        peers += [presenter2, viewer2]
        await host.media(presenter2, publish=True)
        await guest.media(viewer2)
        await until(lambda: viewer2.hears(0, PRESENTER_HZ), 30, "the presenter's tone on the other worker")
        health = httpx.get(f"{hub.url}/healthz", timeout=5).json()
        assert health["media_workers"] == [spare], health

        # The other worker dies too: the webinar ends for everyone and every stay is on the record.
        workers[spare].kill()
        for m in (host, guest):
            lost = await m.expect(lambda f: f["type"] == "webinar-media-lost", 30, "webinar-media-lost")
            assert lost["moved"] is False and "webinar ended" in lost["message"], lost
            closed = await m.expect(lambda f: f["type"] == "webinar-closed", 10, "webinar-closed")
            assert closed["reason"] == "ended" and "media server" in closed["message"], closed
        rows = httpx.get(f"{hub.url}/api/webinars/{room}/attendance", headers=bearer(trainer), timeout=10).json()
        assert sorted((r["name"], r["role"]) for r in rows["attendance"]) == [("Viewer", "attendee"),
                                                                              ("trainer", "presenter")], rows
        assert all(r["seconds"] > 0 for r in rows["attendance"])
        listed = httpx.get(f"{hub.url}/api/webinars", headers=bearer(trainer), timeout=10).json()["webinars"]
        assert room not in [x["room"] for x in listed]
        no = await guest.request({"type": "webinar-join", "room": room})
        assert no["type"] == "error" and "ended" in no["message"], no
    finally:
        await host.close()
        await guest.close()
        for p in peers:
            await p.close()
        for w in workers.values():
            w.stop()
