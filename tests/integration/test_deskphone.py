"""An agent's SIP desk phone (baresip, registered with the media worker) takes queued calls.

The agent is logged in over the websocket without a softphone; the desktop shows and controls the call.
Each side proves it hears the other by frequency (the caller's microphone plays one tone, the desk
phone's another).
"""

import asyncio

import httpx

from tests.conftest import WorkerProcess
from tests.helpers import bearer, cached_login, force
from tests.sip_peers import Baresip, credentials_work, ended, hears
from webrtc.audio import ToneSource
from webrtc.bot import BotAgent

CALLER_HZ, DESK_HZ = 1000.0, 500.0


def only(hub) -> None:
    for i in range(1, 6):
        force(hub, f"agent{i}", "logged-out")


def set_desk_phone(hub, user_id: int, **body: object) -> httpx.Response:
    return httpx.put(f"{hub.url}/api/users/{user_id}/desk-phone", json=body,
                     headers=bearer(cached_login(hub.url, "admin")))


async def desk_agent(hub, username: str) -> tuple[BotAgent, int]:
    agent = BotAgent(hub.url, "demo", username, "demo", ToneSource(200.0))  # no softphone: the microphone is never used
    welcome = await agent.login()
    return agent, welcome["user"]["id"]


async def credentials_in_force(port: int, user: str, password: str) -> None:
    """The worker has the password the hub sent it (before a phone tries it and backs off on a refusal)."""
    assert await asyncio.to_thread(credentials_work, port, user, "demo", password), f"{user}'s password never took"


async def registered(agent: BotAgent) -> dict:
    return await agent.expect(lambda m: m["type"] == "desk-phone" and m["registered"], 15)


async def test_a_registered_desk_phone_takes_a_queued_call(hub, media_worker, tmp_path):
    only(hub)
    agent, me = await desk_agent(hub, "agent3")
    r = set_desk_phone(hub, me, password="desk-3", phone="desk")
    assert r.status_code == 200 and r.json()["sip_user"] == "agent3" and r.json()["phone"] == "desk", r.text
    desk = Baresip(tmp_path / "desk", int(DESK_HZ), user="agent3", auto_answer=True,
                   registrar=f"127.0.0.1:{media_worker.sip_port}", password="desk-3")
    caller = Baresip(tmp_path / "caller", int(CALLER_HZ))
    try:
        await credentials_in_force(media_worker.sip_port, "agent3", "desk-3")
        await asyncio.to_thread(desk.listen, 60)
        state = await registered(agent)
        assert state["phone"] == "desk" and state["contact"].endswith(f"@127.0.0.1:{desk.port}"), state
        listed = httpx.get(f"{hub.url}/api/desk-phones", headers=bearer(cached_login(hub.url, "supervisor"))).json()
        assert [x["registered"] for x in listed if x["username"] == "agent3"] == [True], listed
        assert (await agent.request({"type": "set-state", "state": "available"}))["type"] == "ack"

        caller.call(f"sip:support@127.0.0.1:{media_worker.sip_port}", 40)
        offer = await agent.expect(lambda m: m["type"] == "contact-offered", 15)
        contact_id = offer["contact"]["id"]
        # Answered on the desk phone (auto-answer), not on the desktop: the contact connects to the agent.
        connected = await agent.expect(
            lambda m: m["type"] == "contact-changed" and m["contact"]["status"] == "connected", 15
        )
        assert connected["contact"]["id"] == contact_id and connected["contact"]["agent_id"] == me
        assert await asyncio.to_thread(hears, desk, CALLER_HZ), "the desk phone does not hear the caller"
        assert await asyncio.to_thread(hears, caller, DESK_HZ), "the caller does not hear the desk phone"
        sup = bearer(cached_login(hub.url, "supervisor"))
        rec = httpx.get(f"{hub.url}/api/contacts/{contact_id}", headers=sup).json()
        assert rec["agent_id"] == me and rec["answered_at"], rec

        # Hung up from the desktop: both SIP calls end.
        assert (await agent.request({"type": "end-contact", "contact_id": contact_id}))["type"] == "ack"
        assert await asyncio.to_thread(ended, caller), caller.output()[-2000:]
        assert await asyncio.to_thread(ended, desk), desk.output()[-2000:]
        await agent.request({"type": "complete-wrap-up", "contact_id": contact_id, "code": "resolved"})
    finally:
        caller.stop()
        desk.stop()
        set_desk_phone(hub, me, phone="browser")
        await agent.request({"type": "set-state", "state": "logged-out"})
        await agent.close()


async def test_hanging_up_the_desk_phone_ends_the_contact_and_a_wrong_password_is_refused(hub, media_worker, tmp_path):
    only(hub)
    agent, me = await desk_agent(hub, "agent4")
    assert set_desk_phone(hub, me, password="desk-4", phone="desk").status_code == 200
    intruder = Baresip(tmp_path / "intruder", 300, user="agent4", registrar=f"127.0.0.1:{media_worker.sip_port}",
                       password="guess")
    desk = Baresip(tmp_path / "desk", int(DESK_HZ), user="agent4", auto_answer=True,
                   registrar=f"127.0.0.1:{media_worker.sip_port}", password="desk-4")
    caller = Baresip(tmp_path / "caller", int(CALLER_HZ))
    try:
        await credentials_in_force(media_worker.sip_port, "agent4", "desk-4")
        await asyncio.to_thread(intruder.listen, 30)
        deadline = asyncio.get_running_loop().time() + 10
        while "403 Forbidden" not in intruder.output():
            assert asyncio.get_running_loop().time() < deadline, intruder.output()
            await asyncio.sleep(0.05)  # polling another process's log, bounded
        intruder.stop()
        assert not [m for m in agent.events if m["type"] == "desk-phone" and m.get("registered")]

        # The desk phone quits (baresip hangs up its call first) a while after the call connects.
        await asyncio.to_thread(desk.listen, 12)
        await registered(agent)
        agent.events = [m for m in agent.events if m["type"] != "desk-phone"]  # only what follows counts
        assert (await agent.request({"type": "set-state", "state": "available"}))["type"] == "ack"
        caller.call(f"sip:support@127.0.0.1:{media_worker.sip_port}", 40)
        offer = await agent.expect(lambda m: m["type"] == "contact-offered", 15)
        contact_id = offer["contact"]["id"]
        await agent.expect(lambda m: m["type"] == "contact-changed" and m["contact"]["status"] == "connected", 15)
        wrap = await agent.expect(lambda m: m["type"] == "contact-changed" and m["contact"]["status"] == "wrap-up", 20)
        assert wrap["contact"]["id"] == contact_id
        assert await asyncio.to_thread(ended, caller), "the caller's call did not end with the desk phone's"
        gone = await agent.expect(lambda m: m["type"] == "desk-phone" and not m["registered"], 10)
        assert gone["phone"] == "desk"
        await agent.request({"type": "complete-wrap-up", "contact_id": contact_id, "code": "resolved"})
    finally:
        caller.stop()
        desk.stop()
        intruder.stop()
        set_desk_phone(hub, me, phone="browser")
        await agent.request({"type": "set-state", "state": "logged-out"})
        await agent.close()


def test_desk_phone_settings_are_scoped_to_the_tenant_and_the_user(hub):
    def me(username: str, tenant: str = "demo") -> int:
        r = httpx.get(f"{hub.url}/api/me", headers=bearer(cached_login(hub.url, username, tenant=tenant)))
        return r.json()["id"]

    acme_agent = me("agent1", "acme")
    demo_agent = me("agent5")
    # Another tenant's user is not found; another user's phone is an admin's business.
    assert set_desk_phone(hub, acme_agent, phone="desk").status_code == 404
    as_agent2 = bearer(cached_login(hub.url, "agent2"))
    r = httpx.put(f"{hub.url}/api/users/{demo_agent}/desk-phone", json={"phone": "desk"}, headers=as_agent2)
    assert r.status_code == 403
    # SIP user names are unique across tenants (acme's agents register as acme-agentN).
    r = set_desk_phone(hub, demo_agent, sip_user="acme-agent1", password="pw-12345")
    assert r.status_code == 409, r.text
    assert set_desk_phone(hub, demo_agent, password="x").status_code == 422  # too short
    # The agent may set its own; the listing shows the agent its own phone only.
    as_agent5 = bearer(cached_login(hub.url, "agent5"))
    r = httpx.put(f"{hub.url}/api/users/{demo_agent}/desk-phone", json={"phone": "browser"}, headers=as_agent5)
    assert r.status_code == 200 and r.json()["sip_user"] == "agent5" and r.json()["registered"] is False
    mine = httpx.get(f"{hub.url}/api/desk-phones", headers=as_agent5).json()
    assert [x["username"] for x in mine] == ["agent5"]


async def test_a_ringing_desk_phone_is_answered_there_and_a_declined_offer_stops_its_ringing(hub, media_worker, tmp_path):
    only(hub)
    agent, me = await desk_agent(hub, "agent5")
    assert set_desk_phone(hub, me, password="desk-5", phone="desk").status_code == 200
    desk = Baresip(tmp_path / "desk", int(DESK_HZ), user="agent5", registrar=f"127.0.0.1:{media_worker.sip_port}",
                   password="desk-5")  # no auto-answer: it rings
    caller = Baresip(tmp_path / "caller", int(CALLER_HZ))
    try:
        # With the desk phone chosen, the softphone is refused (the desk call takes its place).
        r = await agent.request({"type": "phone-offer", "offer_id": "o1", "sdp": "v=0\r\nm=audio 9 UDP/TLS/RTP/SAVPF 0\r\n"})
        assert r["type"] == "error" and r["code"] == "conflict", r
        await credentials_in_force(media_worker.sip_port, "agent5", "desk-5")
        await asyncio.to_thread(desk.listen, 40)
        await registered(agent)
        assert (await agent.request({"type": "set-state", "state": "available"}))["type"] == "ack"
        caller.call(f"sip:support@127.0.0.1:{media_worker.sip_port}", 30)
        offer = await agent.expect(lambda m: m["type"] == "contact-offered", 15)
        contact_id = offer["contact"]["id"]
        deadline = asyncio.get_running_loop().time() + 10
        while "Incoming call" not in desk.output():
            assert asyncio.get_running_loop().time() < deadline, desk.output()
            await asyncio.sleep(0.05)  # polling another process's log, bounded
        r = await agent.request({"type": "accept-offer", "contact_id": contact_id})
        assert r["type"] == "error" and r["code"] == "conflict", r
        # Declined on the desktop: the desk phone stops ringing (CANCEL), the caller waits for another agent.
        assert (await agent.request({"type": "reject-offer", "contact_id": contact_id}))["type"] == "ack"
        assert await asyncio.to_thread(ended, desk), desk.output()[-2000:]
        assert "terminated" not in caller.output()
    finally:
        caller.stop()
        desk.stop()
        set_desk_phone(hub, me, phone="browser")
        await agent.request({"type": "set-state", "state": "logged-out"})
        await agent.close()


async def test_a_desk_phone_registered_with_a_worker_that_dies_is_shown_unregistered(hub, media_worker, tmp_path):
    agent, me = await desk_agent(hub, "agent2")
    assert set_desk_phone(hub, me, password="desk-2", phone="desk").status_code == 200
    worker = WorkerProcess(hub, tmp_path / "w.log", name=f"doomed-{me}").start()
    desk = Baresip(tmp_path / "desk", int(DESK_HZ), user="agent2", auto_answer=True,
                   registrar=f"127.0.0.1:{worker.sip_port}", password="desk-2")
    try:
        await credentials_in_force(worker.sip_port, "agent2", "desk-2")
        await asyncio.to_thread(desk.listen, 40)
        await registered(agent)
        agent.events = [m for m in agent.events if m["type"] != "desk-phone"]
        worker.kill()
        gone = await agent.expect(lambda m: m["type"] == "desk-phone" and not m["registered"], 15)
        assert gone["phone"] == "desk"
    finally:
        desk.stop()
        worker.stop()
        set_desk_phone(hub, me, phone="browser")
        await agent.close()


def hangups(phone: Baresip) -> int:
    """Calls the far end (the worker) has ended on the phone so far (its log: one line per BYE)."""
    return phone.output().count("session closed")


async def wait_hangups(phone: Baresip, n: int, timeout: float = 15.0) -> bool:
    deadline = asyncio.get_running_loop().time() + timeout
    while hangups(phone) < n:
        if asyncio.get_running_loop().time() > deadline:
            return False
        await asyncio.sleep(0.05)  # polling another process's log, bounded
    return True


async def test_an_agent_calling_a_desk_phone_agent_rings_the_desk_phone_and_an_attended_transfer_keeps_it(
    hub, media_worker, tmp_path
):
    from tests.integration.test_sip import available_bot

    only(hub)
    desk_agent_bot, me = await desk_agent(hub, "agent2")
    assert set_desk_phone(hub, me, password="desk-2", phone="desk").status_code == 200
    desk = Baresip(tmp_path / "desk", int(DESK_HZ), user="agent2", auto_answer=True,
                   registrar=f"127.0.0.1:{media_worker.sip_port}", password="desk-2")
    caller = Baresip(tmp_path / "caller", int(CALLER_HZ))
    first = None
    try:
        await credentials_in_force(media_worker.sip_port, "agent2", "desk-2")
        await asyncio.to_thread(desk.listen, 90)
        await registered(desk_agent_bot)
        first = await available_bot(hub, "agent1", 800.0)

        # A call between agents: the desk phone rings (and answers itself), not a softphone.
        ack = await first.request({"type": "call-dial", "to": "agent2"})
        assert ack["type"] == "ack", ack
        await first.expect(lambda m: m["type"] == "call-changed" and m["call"]["status"] == "connected", 15)
        assert await first.hears(DESK_HZ), f"the calling agent heard {first.hearing():.0f} Hz, not the desk phone"
        assert await asyncio.to_thread(hears, desk, 800.0), "the desk phone does not hear the calling agent"
        # Hung up by the calling agent: the desk phone gets a BYE.
        assert (await first.request({"type": "call-hangup", "call_id": ack["call_id"]}))["type"] == "ack"
        assert await wait_hangups(desk, 1), desk.output()[-2000:]

        # A consult: the agent holds a caller and calls agent2, whose desk phone answers.
        caller.call(f"sip:support@127.0.0.1:{media_worker.sip_port}", 60)
        offer = await first.expect(lambda m: m["type"] == "contact-offered", 15)
        cid = offer["contact"]["id"]
        assert (await first.request({"type": "accept-offer", "contact_id": cid}))["type"] == "ack"
        assert await first.hears(CALLER_HZ)
        assert (await desk_agent_bot.request({"type": "set-state", "state": "available"}))["type"] == "ack"
        assert (await first.request({"type": "call-hold", "call_id": cid, "on": True}))["type"] == "ack"
        consult = await first.request({"type": "call-dial", "to": "agent2"})
        assert consult["type"] == "ack", consult
        await first.expect(lambda m: m["type"] == "call-changed" and m["call"]["id"] == consult["call_id"]
                           and m["call"]["status"] == "connected", 15)
        assert await first.hears(DESK_HZ), "the consulting agent does not hear the desk phone"
        # Completed: the caller goes to agent2 on the same desk call (no new ring, no hang-up).
        done = await first.request({"type": "call-transfer", "call_id": cid, "consult": consult["call_id"]})
        assert done["type"] == "ack", done
        took = await desk_agent_bot.expect(
            lambda m: m["type"] == "contact-changed" and m["contact"]["id"] == done["call_id"]
            and m["contact"]["status"] == "connected", 15)
        assert took["contact"]["agent_id"] == me
        assert await asyncio.to_thread(hears, desk, CALLER_HZ), "the desk phone does not hear the caller"
        assert await asyncio.to_thread(hears, caller, DESK_HZ), "the caller does not hear the desk phone"
        assert hangups(desk) == 1, "the desk call was hung up on the way"
        # The contact ends from the desktop: both SIP calls end.
        assert (await desk_agent_bot.request({"type": "end-contact", "contact_id": done["call_id"]}))["type"] == "ack"
        assert await asyncio.to_thread(ended, caller), caller.output()[-2000:]
        assert await wait_hangups(desk, 2), desk.output()[-2000:]
        for b, contact in ((first, cid), (desk_agent_bot, done["call_id"])):
            await b.request({"type": "complete-wrap-up", "contact_id": contact, "code": "resolved"})
    finally:
        caller.stop()
        desk.stop()
        set_desk_phone(hub, me, phone="browser")
        for b in (first, desk_agent_bot):
            if b is not None:
                await b.request({"type": "set-state", "state": "logged-out"})
                await b.close()
