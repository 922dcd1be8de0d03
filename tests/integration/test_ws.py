"""The websocket hub over a real connection: auth, events, resume, bad input, heartbeats."""

import json
import time

import httpx
import pytest
from websockets.exceptions import ConnectionClosed

from tests.helpers import Ws, agent_id, bearer, cached_login, connect_as, force, login


def snapshot(ws: Ws) -> dict:
    return ws.expect(lambda m: m["type"] == "snapshot", what="snapshot")


def history(hub, username: str) -> list:
    sup = cached_login(hub.url, "supervisor")
    return httpx.get(f"{hub.url}/api/agents/{agent_id(hub, username)}/history", headers=bearer(sup)).json()


def test_first_frame_must_authenticate(hub):
    with Ws(hub.ws_url) as ws:
        err = ws.request({"type": "ping"})
        assert err["type"] == "error" and err["code"] == "not-authenticated"
        err = ws.request({"type": "auth", "token": "forged.token.here"})
        assert err["code"] == "unauthorized" and "malformed" in err["message"]
        ws.auth(login(hub.url, "agent1")["access_token"])
        assert ws.request({"type": "ping"})["type"] == "pong"


def test_agent_change_reaches_the_board_and_the_agent(hub):
    force(hub, "agent1", "logged-out")
    board, _ = connect_as(hub, "supervisor")
    snap = snapshot(board)
    assert {a["username"] for a in snap["agents"]} == {f"agent{i}" for i in range(1, 6)}
    assert {r["code"] for r in snap["pause_reasons"]} >= {"lunch", "break"}
    agent, _ = connect_as(hub, "agent1")
    mine = snapshot(agent)
    assert [a["username"] for a in mine["agents"]] == ["agent1"], "an agent sees only itself"
    assert agent.request({"type": "set-state", "state": "available"})["type"] == "ack"
    ack = agent.request({"type": "set-state", "state": "paused", "reason": "lunch"})
    assert ack["type"] == "ack"
    ev = board.agent_event("agent1", "paused")
    assert ev["agent"]["reason"] == "lunch" and ev["seq"] > snap["seq"]
    assert abs(ev["agent"]["since"] - time.time()) < 5
    own = agent.agent_event("agent1", "paused")
    assert own["agent"]["reason"] == "lunch"
    h = history(hub, "agent1")[0]
    assert (h["from"], h["to"], h["reason"], h["source"], h["by"]) == ("available", "paused", "lunch", "agent", "agent1")
    board.close()
    agent.close()


def test_supervisor_forces_state_and_the_agent_sees_who(hub):
    force(hub, "agent2", "logged-out")
    agent, _ = connect_as(hub, "agent2")
    snapshot(agent)
    board, _ = connect_as(hub, "supervisor")
    snapshot(board)
    aid = agent_id(hub, "agent2")
    assert board.request({"type": "force-state", "agent_id": aid, "state": "available"})["type"] == "ack"
    ev = agent.agent_event("agent2", "available")
    assert ev["agent"]["changed_by"] == "supervisor"
    board.close()
    agent.close()


def test_events_are_sequenced_and_a_reconnect_resumes_without_loss(hub):
    force(hub, "agent3", "logged-out")
    board, _ = connect_as(hub, "supervisor")
    snapshot(board)
    force(hub, "agent3", "available")
    first = board.agent_event("agent3", "available")
    board.close()
    # While the board is away, three changes happen.
    force(hub, "agent3", "paused", "lunch")
    force(hub, "agent3", "paused", "break")
    force(hub, "agent3", "available")
    again, _ = connect_as(hub, "supervisor", last_seq=first["seq"])
    replayed = []
    while len([m for m in replayed if m["type"] == "agent-state"]) < 3:
        replayed.append(again.next())
    assert all("seq" in m for m in replayed), f"a replay, not a snapshot: {replayed}"
    seqs = [m["seq"] for m in replayed]
    assert seqs == list(range(first["seq"] + 1, first["seq"] + 1 + len(seqs))), "in order, no gap"
    got = [m for m in replayed if m["type"] == "agent-state"]
    assert [m["agent"]["username"] for m in got] == ["agent3"] * 3
    assert [m["agent"]["state"] for m in got] == ["paused", "paused", "available"]
    assert [m["agent"].get("reason") for m in got] == ["lunch", "break", None]
    assert again.request({"type": "ping"})["type"] == "pong", "no snapshot when the replay covers the gap"
    again.close()


def test_a_gap_too_old_to_replay_gets_a_snapshot(backend, start_hub):
    h = start_hub(UNIDESK_REPLAY_EVENTS="10")
    board, _ = connect_as(h, "supervisor")
    snap = snapshot(board)
    board.close()
    for i in range(14):
        assert force(h, "agent5", "paused", "lunch" if i % 2 else "break").status_code == 200
    again, _ = connect_as(h, "supervisor", last_seq=snap["seq"])
    s2 = snapshot(again)
    assert s2["seq"] >= snap["seq"] + 14  # queue figures share the stream
    a5 = next(a for a in s2["agents"] if a["username"] == "agent5")
    assert (a5["state"], a5["reason"]) == ("paused", "lunch")
    again.close()


def test_bad_frames_get_errors_and_the_connection_survives(hub):
    force(hub, "agent4", "logged-out")
    ws, _ = connect_as(hub, "agent4")
    snapshot(ws)
    before = history(hub, "agent4")
    cases = [
        ("not json", "bad-frame", "not valid JSON"),
        ('{"type":"launch-rockets","id":"a"}', "bad-frame", "$.type"),
        ('{"type":"set-state","state":"available","colour":"red","id":"b"}', "bad-frame", "unknown field `colour`"),
        ('{"type":"set-state","state":42,"id":"c"}', "bad-frame", "$.state"),
        ('{"type":"set-state","state":"paused","reason":"holiday","id":"d"}', "unknown-reason", "holiday"),
        ('{"type":"set-state","state":"paused","id":"e"}', "unknown-reason", "needs a reason"),
        ('{"type":"force-state","agent_id":1,"state":"available","id":"f"}', "forbidden", "supervisor"),
        ('{"type":"extend-wrap-up","seconds":30,"id":"g"}', "illegal-transition", "logged-out"),
        ("[1,2,3]", "bad-frame", "Expected `object`"),
    ]
    for raw, code, fragment in cases:
        ws.send(raw)
        err = ws.expect(lambda m: m["type"] == "error", what=f"error for {raw}")
        assert err["code"] == code and fragment in err["message"], (raw, err)
        ref = json.loads(raw).get("id") if raw.startswith("{") else None
        assert err.get("ref") == ref
    ws.conn.send(b"\x00\x01binary")
    err = ws.expect(lambda m: m["type"] == "error")
    assert "binary" in err["message"]
    assert ws.request({"type": "ping"})["type"] == "pong"
    assert history(hub, "agent4") == before, "nothing was written"
    ws.close()


def test_another_tenants_agent_is_not_found_over_the_socket(hub):
    acme_agent = agent_id(hub, "agent2", tenant="acme")
    board, _ = connect_as(hub, "supervisor")
    snapshot(board)
    err = board.request({"type": "force-state", "agent_id": acme_agent, "state": "available"})
    assert err["type"] == "error" and err["code"] == "not-found"
    acme_board, _ = connect_as(hub, "supervisor", tenant="acme")
    snap = snapshot(acme_board)
    assert all(a["id"] != agent_id(hub, "agent1") for a in snap["agents"])
    # A change in demo never reaches acme's board.
    force(hub, "agent1", "logged-out")
    force(hub, "agent1", "paused", "training")
    board.agent_event("agent1", "paused")
    assert acme_board.request({"type": "ping"})["type"] == "pong"
    assert not [m for m in acme_board.seen if m["type"] == "agent-state"]
    board.close()
    acme_board.close()


def test_oversized_frame_closes_with_1009(hub):
    ws, _ = connect_as(hub, "agent5")
    ws.send(json.dumps({"type": "ping", "id": "x" * 70_000}))
    with pytest.raises(ConnectionClosed):
        ws.expect(lambda m: False, timeout=5)
    assert ws.conn.close_code == 1009


def test_silent_clients_are_closed_by_the_heartbeat(start_hub):
    h = start_hub(UNIDESK_HEARTBEAT_SECONDS="0.4")
    ws, _ = connect_as(h, "agent1")
    welcome = ws.seen[0]
    assert welcome["heartbeat_seconds"] == 0.4
    started = time.monotonic()
    with pytest.raises(ConnectionClosed):
        ws.expect(lambda m: False, timeout=10)
    assert ws.conn.close_code == 4408 and time.monotonic() - started < 5
    # A client that pings stays.
    ws2, _ = connect_as(h, "agent2")
    for _ in range(8):
        assert ws2.request({"type": "ping"})["type"] == "pong"
        time.sleep(0.2)  # the client's own heartbeat interval, not synchronisation
    assert ws2.conn.close_code is None
    ws2.close()


def test_an_expired_token_is_refused_and_a_fresh_one_extends_the_connection(start_hub):
    h = start_hub(UNIDESK_ACCESS_TTL="10")
    t = login(h.url, "agent1")
    ws = Ws(h.ws_url)
    ws.auth(t["access_token"])
    fresh = httpx.post(f"{h.url}/api/auth/refresh", json={"refresh_token": t["refresh_token"]}).json()
    assert ws.request({"type": "auth", "token": fresh["access_token"]})["type"] == "ack"
    other = login(h.url, "agent2")["access_token"]
    err = ws.request({"type": "auth", "token": other})
    assert err["code"] == "forbidden" and "cannot change user" in err["message"]
    ws.close()
