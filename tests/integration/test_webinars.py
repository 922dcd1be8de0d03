"""Webinars through the hub and a real media worker, with aiortc peers as presenter and attendees:
signaling over the websocket, the presenter's video and tone at every attendee, a promoted attendee
heard by everyone, mute all, questions, remove, the live count, attendance, and bad input refused
with a clear message while the room keeps going."""

from __future__ import annotations

import asyncio
import itertools
import json
import time
from typing import Any

import httpx
import pytest
import websockets

from realtime.auth import TokenService
from tests.conftest import SECRET
from tests.helpers import bearer, cached_login
from webrtc.webinar_bot import Attendee, Publisher

pytestmark = pytest.mark.timeout(240)

PRESENTER_HZ, SPEAKER_HZ = 600.0, 900.0
_ids = itertools.count(1)


class Member:
    """One member's websocket (a presenter's page or an attendee's), asyncio."""

    def __init__(self, hub: Any) -> None:
        self.hub = hub
        self.ws: Any = None
        self.unread: list[dict[str, Any]] = []
        self.state: dict[str, Any] | None = None

    async def connect(self, token: str) -> dict[str, Any]:
        self.ws = await websockets.connect(self.hub.ws_url, max_size=2**22)
        return await self.request({"type": "auth", "token": token})

    async def request(self, frame: dict[str, Any]) -> dict[str, Any]:
        fid = f"m{next(_ids)}"
        await self.ws.send(json.dumps({**frame, "id": fid}))
        return await self.expect(lambda m: m.get("ref") == fid, what=f"reply to {frame['type']}")

    async def expect(self, pred, timeout: float = 10.0, what: str = "frame") -> dict[str, Any]:  # type: ignore[no-untyped-def]
        for i, m in enumerate(self.unread):
            if pred(m):
                return self.unread.pop(i)
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError(f"no {what} within {timeout} s; unread: {self.unread[-4:]}")
            try:
                m = json.loads(await asyncio.wait_for(self.ws.recv(), left))
            except asyncio.TimeoutError:
                continue
            if m.get("type") == "webinar-state":
                self.state = m
            if pred(m):
                return m
            self.unread.append(m)

    async def join(self, room: str) -> dict[str, Any]:
        ack = await self.request({"type": "webinar-join", "room": room})
        assert ack["type"] == "ack", ack
        return await self.expect(lambda m: m["type"] == "webinar-state", what="webinar-state")

    async def media(self, peer, publish: bool = False, slots: list[str] | None = None) -> None:  # type: ignore[no-untyped-def]
        oid = f"o{next(_ids)}"
        frame: dict[str, Any] = {"type": "webinar-offer", "offer_id": oid, "sdp": await peer.offer(), "publish": publish}
        if slots:
            frame["slots"] = slots
        ack = await self.request(frame)
        assert ack["type"] == "ack", ack
        answer = await self.expect(lambda m: m["type"] == "webinar-answer" and m["offer_id"] == oid, 15, "answer")
        await peer.accept(answer["sdp"])

    async def close(self) -> None:
        if self.ws is not None:
            await self.ws.close()


async def until(cond, timeout: float, what: str) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        await asyncio.sleep(0.05)


def post(hub: Any, path: str, token: dict[str, Any], body: dict[str, Any]) -> httpx.Response:
    return httpx.post(f"{hub.url}{path}", headers=bearer(token), json=body, timeout=10)


async def test_webinar_through_the_hub(hub, media_worker):
    trainer = cached_login(hub.url, "trainer")
    r = post(hub, "/api/webinars", trainer, {"title": "Onboarding"})
    assert r.status_code == 201, r.text
    room = r.json()["room"]
    other = post(hub, "/api/webinars", trainer, {"title": "Another"}).json()["room"]
    invites = [post(hub, f"/api/webinars/{room}/invites", trainer, {"name": f"Guest {i}"}).json()["token"] for i in range(3)]
    agent = cached_login(hub.url, "agent1")
    assert post(hub, "/api/webinars", agent, {"title": "x"}).status_code == 403

    presenter, ears = Publisher(PRESENTER_HZ), Attendee(video=0, audio=1)
    attendees = [Attendee(video=1, audio=2) for _ in range(3)]
    speaker_mic = Publisher(SPEAKER_HZ, video=False)
    host = Member(hub)
    guests = [Member(hub) for _ in range(3)]
    intruders = [Member(hub) for _ in range(3)]
    try:
        await host.connect(trainer["access_token"])
        state = await host.join(room)
        assert state["role"] == "presenter" and state["attendees"] == 0
        await host.media(presenter, publish=True)
        await host.media(ears, slots=["speaker"])
        for g, token, peer in zip(guests, invites, attendees):
            welcome = await g.connect(token)
            assert welcome["type"] == "welcome" and welcome["user"]["roles"] == ["guest"]
            await g.join(room)
            await g.media(peer)
        await host.expect(lambda m: m["type"] == "webinar-state" and m["attendees"] == 3, what="3 attendees")

        await until(lambda: all(a.video_frames and a.video_frames[0] > 20 for a in attendees), 40, "video decoded")
        await until(lambda: all(a.hears(0, PRESENTER_HZ) for a in attendees), 20, "the presenter's tone")

        # Bad input, each refused with a reason; the room keeps going.
        no = await guests[0].request({"type": "webinar-offer", "offer_id": "x1", "sdp": await Publisher(1.0).offer(),
                                      "publish": True})
        assert no["type"] == "error" and no["code"] == "forbidden" and "receive only" in no["message"], no
        no = await guests[1].request({"type": "webinar-action", "action": "mute-all"})
        assert no["code"] == "forbidden" and "only the presenter" in no["message"], no
        no = await guests[1].request({"type": "webinar-action", "action": "remove", "member": "g1"})
        assert no["code"] == "forbidden", no
        tokens = TokenService(SECRET, 900, 3600)
        expired = tokens.issue_webinar_guest(1, "demo", room, 99, "Late", expires_at=time.time() - 60,
                                             now=time.time() - 120)
        no = await intruders[0].connect(expired)
        assert no["type"] == "error" and no["code"] == "unauthorized" and "expired" in no["message"], no
        foreign = post(hub, f"/api/webinars/{other}/invites", trainer, {"name": "Elsewhere"}).json()["token"]
        await intruders[1].connect(foreign)
        no = await intruders[1].request({"type": "webinar-join", "room": room})
        assert no["code"] == "forbidden" and "another webinar" in no["message"], no
        no = await intruders[1].request({"type": "set-state", "state": "available"})
        assert no["code"] == "forbidden", no
        # Another tenant's invitation naming this room, and a forged one.
        acme = Member(hub)
        intruders.append(acme)
        await acme.connect(tokens.issue_webinar_guest(2, "acme", room, 98, "Acme", expires_at=time.time() + 600))
        no = await acme.request({"type": "webinar-join", "room": room})
        assert no["type"] == "error" and no["code"] == "not-found" and "no webinar" in no["message"], no
        forged = TokenService("another-secret-" + "y" * 40, 900, 3600).issue_webinar_guest(
            1, "demo", room, 97, "Forger", expires_at=time.time() + 600)
        no = await intruders[2].connect(forged)
        assert no["type"] == "error" and no["code"] == "unauthorized" and "signature" in no["message"], no
        await until(lambda: all(a.hears(0, PRESENTER_HZ) for a in attendees), 10, "the presenter still heard")

        # Questions and hands.
        assert (await guests[2].request({"type": "webinar-ask", "text": "Where are the slides?"}))["type"] == "ack"
        assert (await guests[0].request({"type": "webinar-hand", "on": True}))["type"] == "ack"
        await host.expect(lambda m: m["type"] == "webinar-state" and m.get("questions")
                          and any(x.get("hand_since") for x in m["members"]), what="question and hand")
        assert (await host.request({"type": "webinar-action", "action": "answer", "question": 1}))["type"] == "ack"
        await guests[2].expect(lambda m: m["type"] == "webinar-state" and m.get("questions", [{}])[0].get("answered"), what="answered")

        # Promote guest 0: it publishes on the speaker slot and everyone hears it.
        me = guests[0].state["you"] if guests[0].state else None
        assert me and me.startswith("g")
        assert (await host.request({"type": "webinar-action", "action": "promote", "member": me}))["type"] == "ack"
        await guests[0].expect(lambda m: m["type"] == "webinar-state" and m["role"] == "speaker", what="promoted")
        await guests[0].media(speaker_mic, publish=True, slots=["speaker"])
        await until(lambda: all(a.hears(1, SPEAKER_HZ) for a in attendees[1:]), 20, "the speaker at the others")
        await until(lambda: ears.hears(0, SPEAKER_HZ), 20, "the speaker at the presenter")

        # Mute all: the speaker falls silent for everyone; the presenter is still heard.
        assert (await host.request({"type": "webinar-action", "action": "mute-all"}))["type"] == "ack"
        await until(lambda: all(a.silent(1) for a in attendees[1:]), 10, "the speaker muted")
        assert all(a.hears(0, PRESENTER_HZ) for a in attendees[1:])

        # Lock, remove, and the count follows.
        assert (await host.request({"type": "webinar-action", "action": "lock"}))["type"] == "ack"
        late = Member(hub)
        intruders.append(late)
        await late.connect(post(hub, f"/api/webinars/{room}/invites", trainer, {"name": "Late"}).json()["token"])
        no = await late.request({"type": "webinar-join", "room": room})
        assert no["code"] == "forbidden" and "locked" in no["message"], no
        target = guests[2].state["you"]  # type: ignore[index]
        assert (await host.request({"type": "webinar-action", "action": "remove", "member": target}))["type"] == "ack"
        closed = await guests[2].expect(lambda m: m["type"] == "webinar-closed", what="removed")
        assert closed["reason"] == "removed"
        await host.expect(lambda m: m["type"] == "webinar-state" and m["attendees"] == 2, what="2 attendees")
        assert all(a.hears(0, PRESENTER_HZ) for a in attendees[:2])

        # Attendance: the removed guest's stay is on the record; a guest who leaves too.
        await guests[1].close()
        deadline = time.monotonic() + 10
        while True:
            rows = httpx.get(f"{hub.url}/api/webinars/{room}/attendance", headers=bearer(trainer)).json()["attendance"]
            if len(rows) >= 2 or time.monotonic() > deadline:
                break
            await asyncio.sleep(0.1)
        assert sorted(r["name"] for r in rows) == ["Guest 1", "Guest 2"], rows
        assert all(r["seconds"] > 0 and r["user_id"] is None for r in rows)
    finally:
        for m in [host, *guests, *intruders]:
            await m.close()
        for p in [presenter, ears, speaker_mic, *attendees]:
            await p.close()
