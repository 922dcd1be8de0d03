"""Support sessions over the hub's websocket: the link's single use, the lobby, relaying between
agent and customer, refusals that leave the room going, the record in the store."""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
import time

import httpx
import pytest
from websockets.exceptions import ConnectionClosed

from realtime.auth import TokenService
from tests.conftest import SECRET, drop_backend, prepared_backend
from tests.helpers import Ws, bearer, connect_as, force, login


def open_session(hub, tokens, **body) -> dict:
    r = httpx.post(f"{hub.url}/api/support-sessions", json=body, headers=bearer(tokens))
    assert r.status_code == 201, r.text
    return r.json()


def guest(hub, token: str, key: str) -> tuple[Ws, dict]:
    ws = Ws(hub.ws_url)
    reply = ws.request({"type": "auth", "token": token, "guest_key": key})
    return ws, reply


def changed(phase: str):
    return lambda m: m["type"] == "support-changed" and m["session"]["phase"] == phase


def refused_and_closed(ws: Ws, reply: dict, code: str, words: str) -> None:
    assert reply["type"] == "error" and reply["code"] == code and words in reply["message"], reply
    with pytest.raises(ConnectionClosed) as e:
        ws.recv(5)
    assert e.value.rcvd is not None and e.value.rcvd.code == 4401
    ws.close()


def test_a_customer_is_admitted_from_the_lobby_and_both_sides_relay_until_the_agent_ends(hub):
    agent, tokens = connect_as(hub, "agent1")
    s = open_session(hub, tokens)
    assert s["link"].startswith(f"{hub.url}/support/{s['id']}#t=") and s["link"].endswith(s["token"])
    agent.expect(changed("waiting"))
    key = secrets.token_hex(16)
    g, welcome = guest(hub, s["token"], key)
    assert welcome["type"] == "welcome" and welcome["tenant"]["slug"] == "demo" and welcome["tenant"]["name"]
    assert welcome["user"]["roles"] == ["guest"] and welcome["stream"] == f"support:{welcome['tenant']['id']}:{s['id']}"
    g.expect(changed("waiting"))

    # The same link in a second browser is refused with a clear message; the first one goes on.
    other, reply = guest(hub, s["token"], secrets.token_hex(16))
    refused_and_closed(other, reply, "unauthorized", "already used in another browser")

    # A guest may send nothing but the session's frames, and no moderation.
    for frame, code, words in [
        ({"type": "set-state", "state": "available"}, "forbidden", "may only send the session's frames"),
        ({"type": "chat-send", "to_supervisors": True, "text": "hi"}, "forbidden", "may only send"),
        ({"type": "support-admit", "session_id": s["id"]}, "forbidden", "only the agent"),
        ({"type": "support-signal", "session_id": s["id"], "sdp_type": "offer", "sdp": "v=0"}, "conflict", "not live"),
        ({"type": "support-join", "session_id": "someone-elses", "name": "x"}, "forbidden", "another support session"),
    ]:
        err = g.request(frame)
        assert err["type"] == "error" and err["code"] == code and words in err["message"], (frame, err)

    assert g.request({"type": "support-join", "session_id": s["id"], "name": "Erika Muster"})["type"] == "ack"
    lobby = agent.expect(changed("lobby"))
    assert lobby["session"]["guest_name"] == "Erika Muster"
    # Another agent cannot see or admit it; the agent cannot join as a guest.
    other_agent, _ = connect_as(hub, "agent2")
    err = other_agent.request({"type": "support-admit", "session_id": s["id"]})
    assert err["type"] == "error" and err["code"] == "not-found", err
    other_agent.close()
    err = agent.request({"type": "support-join", "session_id": s["id"]})
    assert err["type"] == "error" and err["code"] == "forbidden", err

    assert agent.request({"type": "support-admit", "session_id": s["id"]})["type"] == "ack"
    live = g.expect(changed("live"))
    assert live["session"]["guest_epoch"] == 1 and live["session"]["admitted_at"]
    agent.expect(changed("live"))
    err = agent.request({"type": "support-admit", "session_id": s["id"]})
    assert err["type"] == "error" and err["code"] == "conflict", err

    # Signaling, screen notices and chat pass between the two.
    assert agent.request({"type": "support-signal", "session_id": s["id"], "sdp_type": "offer", "sdp": "v=0 offer"})["type"] == "ack"
    m = g.expect(lambda m: m["type"] == "support-relay" and m["kind"] == "signal")
    assert (m["sdp_type"], m["sdp"], m["sender"], m["sender_name"]) == ("offer", "v=0 offer", "host", "Agent 1")
    assert g.request({"type": "support-signal", "session_id": s["id"], "sdp_type": "answer", "sdp": "v=0 answer"})["type"] == "ack"
    m = agent.expect(lambda m: m["type"] == "support-relay" and m["kind"] == "signal")
    assert (m["sdp_type"], m["sender"], m["sender_name"]) == ("answer", "guest", "Erika Muster")
    assert g.request({"type": "support-screen", "session_id": s["id"], "on": True})["type"] == "ack"
    assert agent.expect(lambda m: m["type"] == "support-relay" and m["kind"] == "screen")["on"] is True
    assert g.request({"type": "support-chat", "session_id": s["id"], "text": "my router blinks red"})["type"] == "ack"
    for side in (agent, g):
        m = side.expect(lambda m: m["type"] == "support-relay" and m["kind"] == "chat")
        assert m["text"] == "my router blinks red" and m["sender"] == "guest"

    # A reload of the customer's page (same browser secret) comes back into the live room.
    g.close()
    g, welcome = guest(hub, s["token"], key)
    assert welcome["type"] == "welcome", welcome
    g.expect(changed("live"))
    assert g.request({"type": "support-join", "session_id": s["id"], "name": "Erika Muster"})["type"] == "ack"
    assert agent.expect(changed("live"))["session"]["guest_epoch"] == 2
    # The agent's fresh connection lists the session in its snapshot.
    again, _ = connect_as(hub, "agent1")
    snap = again.expect(lambda m: m["type"] == "snapshot")
    assert [v["id"] for v in snap["support"]] == [s["id"]]
    again.close()

    assert agent.request({"type": "support-end", "session_id": s["id"]})["type"] == "ack"
    for side in (agent, g):
        assert side.expect(changed("ended"))["session"]["end_reason"] == "host-ended"
    g.close()
    # The ended session's link no longer works.
    late, reply = guest(hub, s["token"], key)
    refused_and_closed(late, reply, "support-ended", "ended")

    r = httpx.get(f"{hub.url}/api/support-sessions/{s['id']}", headers=bearer(tokens))
    rec = r.json()
    assert r.status_code == 200 and rec["guest_name"] == "Erika Muster" and rec["end_reason"] == "host-ended", rec
    assert rec["duration"] is not None and rec["duration"] >= 0 and rec["admitted_at"] >= rec["created_at"]
    assert rec["guest_ua"] and rec["agent_id"] is not None
    # Not visible to another tenant; visible to the tenant's supervisor.
    acme = login(hub.url, "supervisor", tenant="acme")
    assert httpx.get(f"{hub.url}/api/support-sessions/{s['id']}", headers=bearer(acme)).status_code == 404
    sup = login(hub.url, "supervisor")
    assert httpx.get(f"{hub.url}/api/support-sessions/{s['id']}", headers=bearer(sup)).status_code == 200
    agent.close()


def test_bad_links_are_refused_clearly_and_a_denied_guest_ends_the_session(hub):
    agent, tokens = connect_as(hub, "agent2")
    tenant_id = agent.seen[0]["tenant"]["id"]
    s = open_session(hub, tokens)
    key = secrets.token_hex(16)
    expired = TokenService(SECRET, 900, 900).issue_guest(tenant_id, "demo", s["id"], time.time() - 5, time.time() - 100)
    forged = TokenService("another-secret-" + "y" * 40, 900, 900).issue_guest(tenant_id, "demo", s["id"], time.time() + 60)
    other_tenant = TokenService(SECRET, 900, 900).issue_guest(tenant_id + 1, "acme", s["id"], time.time() + 60)
    for token, code, words in [
        (expired, "unauthorized", "expired"),
        (forged, "unauthorized", "signature"),
        (other_tenant, "support-ended", "does not exist"),
        ("not-a-token", "unauthorized", "malformed"),
    ]:
        ws = Ws(hub.ws_url)
        reply = ws.request({"type": "auth", "token": token, "guest_key": key})
        assert reply["type"] == "error" and reply["code"] == code and words in reply["message"], (words, reply)
        ws.close()
    # A guest token is not an access token for the REST API, and the link needs the browser's key.
    assert httpx.post(f"{hub.url}/api/support-sessions", json={}, headers=bearer(s["token"])).status_code == 401
    ws = Ws(hub.ws_url)
    reply = ws.request({"type": "auth", "token": s["token"]})
    assert reply["type"] == "error" and reply["code"] == "bad-frame" and "guest_key" in reply["message"], reply
    ws.close()
    # An agent may only link a contact of their own.
    r = httpx.post(f"{hub.url}/api/support-sessions", json={"contact_id": "nope"}, headers=bearer(tokens))
    assert r.status_code == 404 and "nope" in r.json()["message"]

    g, welcome = guest(hub, s["token"], key)
    assert welcome["type"] == "welcome", welcome
    assert g.request({"type": "support-join", "session_id": s["id"], "name": ""})["type"] == "ack"
    assert agent.expect(changed("lobby"))["session"]["guest_name"] == "Guest"
    assert agent.request({"type": "support-admit", "session_id": s["id"], "admit": False})["type"] == "ack"
    assert g.expect(changed("ended"))["session"]["end_reason"] == "denied"
    rec = httpx.get(f"{hub.url}/api/support-sessions/{s['id']}", headers=bearer(tokens)).json()
    assert rec["end_reason"] == "denied" and rec["admitted_at"] is None and rec["duration"] is None
    g.close()
    agent.close()


def test_a_session_opened_during_a_call_is_linked_to_it_and_the_guest_gets_turn_credentials(start_hub, tmp_path):
    b = prepared_backend(tmp_path)
    try:
        h = start_hub(b, UNIDESK_TURN_URLS="turn:turn.example.net:3478", UNIDESK_TURN_SECRET="coturn-secret")
        for i in range(1, 6):
            force(h, f"agent{i}", "logged-out")
        assert force(h, "agent4", "available").status_code == 200
        agent, tokens = connect_as(h, "agent4")
        r = httpx.post(f"{h.url}/api/contacts", json={"queue": "support", "caller": "+4930123456"},
                       headers=bearer(login(h.url, "admin")))
        assert r.status_code == 201, r.text
        cid = r.json()["contact_id"]
        agent.expect(lambda m: m["type"] == "contact-offered" and m["contact"]["id"] == cid, 10)
        assert agent.request({"type": "accept-offer", "contact_id": cid})["type"] == "ack"
        agent.expect(lambda m: m["type"] == "contact-changed" and m["contact"]["status"] == "connected")

        s = open_session(h, tokens, contact_id=cid)
        assert s["contact_id"] == cid
        assert agent.expect(changed("waiting"))["session"]["contact_id"] == cid
        g, welcome = guest(h, s["token"], secrets.token_hex(16))
        (turn,) = welcome["ice_servers"]
        assert turn["urls"] == ["turn:turn.example.net:3478"] and turn["username"].endswith(f":demo:guest-{s['id']}")
        expiry = int(turn["username"].split(":", 1)[0])
        assert time.time() < expiry <= time.time() + 3700
        digest = hmac.new(b"coturn-secret", turn["username"].encode(), hashlib.sha1).digest()
        assert turn["credential"] == base64.b64encode(digest).decode()
        assert g.request({"type": "support-end", "session_id": s["id"]})["type"] == "ack"
        assert agent.expect(changed("ended"))["session"]["end_reason"] == "guest-left"
        rec = httpx.get(f"{h.url}/api/support-sessions/{s['id']}", headers=bearer(tokens)).json()
        assert rec["contact_id"] == cid and rec["end_reason"] == "guest-left" and rec["admitted_at"] is None, rec
        g.close()
        agent.close()
    finally:
        drop_backend(b)


@pytest.mark.redis_only
def test_agent_and_customer_on_two_hubs(hub, start_hub):
    other = start_hub()
    agent, tokens = connect_as(hub, "agent5")
    s = open_session(hub, tokens)
    g, welcome = guest(other, s["token"], secrets.token_hex(16))
    assert welcome["type"] == "welcome", welcome
    assert g.request({"type": "support-join", "session_id": s["id"], "name": "Max"})["type"] == "ack"
    agent.expect(changed("lobby"), 10)
    assert agent.request({"type": "support-admit", "session_id": s["id"]})["type"] == "ack"
    g.expect(changed("live"), 10)
    assert agent.request({"type": "support-signal", "session_id": s["id"], "sdp_type": "offer", "sdp": "v=0 x"})["type"] == "ack"
    assert g.expect(lambda m: m["type"] == "support-relay" and m["kind"] == "signal", 10)["sdp"] == "v=0 x"
    assert g.request({"type": "support-signal", "session_id": s["id"], "sdp_type": "answer", "sdp": "v=0 y"})["type"] == "ack"
    assert agent.expect(lambda m: m["type"] == "support-relay" and m["kind"] == "signal", 10)["sdp"] == "v=0 y"
    assert agent.request({"type": "support-end", "session_id": s["id"]})["type"] == "ack"
    g.expect(changed("ended"), 10)
    g.close()
    agent.close()
