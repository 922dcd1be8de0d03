"""Scheduled webinars for an audience, over REST and the websocket with a real media worker: teams,
the invitation on the audience's desktops, the listing, the opening window, the start at (not before)
the scheduled time, the audience alone coming in (agents of another queue refused, invited guests
let in), attendees who came early receiving the presenter once started, and bad input refused."""

from __future__ import annotations

import secrets
import time
from typing import Any

import httpx
import pytest

from tests.helpers import bearer, cached_login
from tests.integration.test_webinars import PRESENTER_HZ, Member, post, until
from webrtc.webinar_bot import Attendee, Publisher

pytestmark = pytest.mark.timeout(240)


def listed(hub: Any, who: dict[str, Any]) -> dict[str, dict[str, Any]]:
    r = httpx.get(f"{hub.url}/api/webinars", headers=bearer(who), timeout=10)
    assert r.status_code == 200, r.text
    return {w["room"]: w for w in r.json()["webinars"]}


async def test_a_scheduled_webinar_for_queues_and_a_team(hub, media_worker):
    admin, trainer = cached_login(hub.url, "admin"), cached_login(hub.url, "trainer")
    agent1, agent2, agent3 = (cached_login(hub.url, f"agent{i}") for i in (1, 2, 3))
    team = f"new-hires-{secrets.token_hex(3)}"

    # Teams: admins keep them; bad input refused with a reason.
    assert post(hub, "/api/teams", trainer, {"name": team}).status_code == 403
    r = post(hub, "/api/teams", admin, {"name": team, "members": ["agent2", "nobody"]})
    assert r.status_code == 422 and "no user nobody" in r.json()["message"], r.text
    r = post(hub, "/api/teams", admin, {"name": team, "members": ["agent2"]})
    assert r.status_code == 201 and r.json()["members"] == ["agent2"], r.text
    team_id = r.json()["id"]
    assert post(hub, "/api/teams", admin, {"name": team}).status_code == 409
    teams = httpx.get(f"{hub.url}/api/teams", headers=bearer(trainer), timeout=10).json()["teams"]
    assert {"id": team_id, "name": team, "members": ["agent2"]} in teams
    r = httpx.put(f"{hub.url}/api/teams/{team_id}", headers=bearer(admin), json={"members": ["agent2", "agent1"]},
                  timeout=10)
    assert r.json()["members"] == ["agent1", "agent2"], r.text
    r = httpx.put(f"{hub.url}/api/teams/{team_id}", headers=bearer(admin), json={"members": ["agent2"]}, timeout=10)
    assert r.json()["members"] == ["agent2"], r.text
    assert httpx.put(f"{hub.url}/api/teams/999999", headers=bearer(admin), json={}, timeout=10).status_code == 404

    # Scheduling: bad input refused with a reason.
    now = time.time()
    for body, words in [
        ({"title": "x", "starts_at": now + 60, "audience": {"queues": ["nope"]}}, "no queue 'nope'"),
        ({"title": "x", "starts_at": now + 60, "audience": {"teams": ["nope"]}}, "no team 'nope'"),
        ({"title": "x", "starts_at": now - 3600}, "not in the past"),
        ({"title": "x", "starts_at": now + 60, "minutes": 0}, "5 minutes to 12 hours"),
        ({"title": "", "starts_at": now + 60}, "title"),
    ]:
        r = post(hub, "/api/webinars", trainer, body)
        assert r.status_code == 422 and words in r.json()["message"], (body, r.text)
    assert post(hub, "/api/webinars", agent3, {"title": "x", "starts_at": now + 60}).status_code == 403

    host, a1, a2, a3, desk3 = Member(hub), Member(hub), Member(hub), Member(hub), Member(hub)
    guest = Member(hub)
    presenter, early = Publisher(PRESENTER_HZ), Attendee(video=1, audio=2)
    try:
        # agent3 is in the queue sales; its desktop is open (a webinar page has a connection of its own).
        await desk3.connect(agent3["access_token"])
        await a3.connect(agent3["access_token"])
        starts = time.time() + 6
        audience = {"queues": ["sales"], "teams": [team]}
        r = post(hub, "/api/webinars", trainer, {"title": "Product update", "starts_at": starts, "minutes": 30,
                                                 "audience": audience})
        assert r.status_code == 201, r.text
        room = r.json()["room"]
        far = post(hub, "/api/webinars", trainer, {"title": "Later", "starts_at": time.time() + 3600,
                                                   "audience": audience}).json()["room"]

        # The invitation reaches the audience's desktop; the listing shows it to the audience only.
        invited = await desk3.expect(lambda m: m["type"] == "webinar-invited" and m["webinar"]["room"] == room,
                                  what="webinar-invited")
        w = invited["webinar"]
        assert w["state"] == "scheduled" and w["title"] == "Product update" and w["presenter"] == "Tina Trainer"
        assert abs(w["starts_at"] - starts) < 0.01 and abs(w["opens_at"] - (starts - 600)) < 0.01
        assert room in listed(hub, agent3) and room in listed(hub, agent2) and far in listed(hub, agent3)
        assert room not in listed(hub, agent1) and far not in listed(hub, agent1)
        assert listed(hub, trainer)[room]["presenting"]

        # Coming in: the audience (the queue, the team, an invited guest) yes; another queue's agent no.
        await a1.connect(agent1["access_token"])
        no = await a1.request({"type": "webinar-join", "room": room})
        assert no["type"] == "error" and no["code"] == "forbidden" and "invited audience only" in no["message"], no
        no = await a3.request({"type": "webinar-join", "room": far})
        assert no["code"] == "conflict" and "opens 10 minutes before" in no["message"], no
        r = post(hub, f"/api/webinars/{room}/invites", cached_login(hub.url, "supervisor"), {"name": "X"})
        assert r.status_code == 403 and "presenter" in r.json()["message"], r.text
        await host.connect(trainer["access_token"])
        state = await host.join(room)
        assert state["role"] == "presenter" and state["started"] is False
        state = await a3.join(room)
        assert state["started"] is False and state["starts_at"] == pytest.approx(starts)
        await a3.media(early)  # an attendee who came early already has its connection
        await a2.connect(agent2["access_token"])
        await a2.join(room)
        invite = post(hub, f"/api/webinars/{room}/invites", trainer, {"name": "Visitor"}).json()["token"]
        await guest.connect(invite)
        await guest.join(room)
        await host.expect(lambda m: m["type"] == "webinar-state" and m["attendees"] == 3, what="3 attendees")
        no = await a1.request({"type": "webinar-join", "room": room})
        assert no["code"] == "forbidden", no

        # Not before its time: no presenting, no start.
        no = await host.request({"type": "webinar-offer", "offer_id": "p0", "sdp": await Publisher(1.0).offer(),
                                 "publish": True})
        assert no["code"] == "conflict" and "start the webinar first" in no["message"], no
        no = await host.request({"type": "webinar-action", "action": "start"})
        assert no["code"] == "conflict" and "before its scheduled time" in no["message"], no
        no = await a3.request({"type": "webinar-action", "action": "start"})
        assert no["code"] == "forbidden", no

        # At its time the presenter starts it: everyone sees it started, the desktops hear it is live,
        # and the attendee who came early hears the presenter.
        deadline = time.monotonic() + 30
        while True:
            reply = await host.request({"type": "webinar-action", "action": "start"})
            if reply["type"] == "ack":
                break
            assert "before its scheduled time" in reply["message"] and time.monotonic() < deadline, reply
            await until(lambda: time.time() >= starts, 30, "the scheduled time")
        assert time.time() >= starts
        await a3.expect(lambda m: m["type"] == "webinar-state" and m.get("started", True), what="started")
        live = await desk3.expect(lambda m: m["type"] == "webinar-invited" and m["webinar"]["state"] == "live",
                               what="webinar-invited live")
        assert live["webinar"]["room"] == room and listed(hub, agent2)[room]["state"] == "live"
        await host.media(presenter, publish=True)
        await until(lambda: early.hears(0, PRESENTER_HZ), 30, "the presenter at the early attendee")

        # Ended: off the listings.
        assert (await host.request({"type": "webinar-action", "action": "end"}))["type"] == "ack"
        await a3.expect(lambda m: m["type"] == "webinar-closed", what="closed")
        assert room not in listed(hub, agent3) and room not in listed(hub, trainer)
        rows = httpx.get(f"{hub.url}/api/webinars/{room}/attendance", headers=bearer(trainer)).json()["attendance"]
        assert sorted(r["name"] for r in rows) == sorted(["Visitor", "agent2", "agent3", "trainer"]), rows
    finally:
        for m in [host, a1, a2, a3, desk3, guest]:
            await m.close()
        for p in [presenter, early]:
            await p.close()
