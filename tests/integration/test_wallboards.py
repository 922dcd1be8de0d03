"""Wallboard tokens over HTTP and the websocket: only the chosen queues' figures, nothing else."""

import time

import httpx
import jwt
import pytest
from websockets.exceptions import ConnectionClosed

from tests.conftest import SECRET
from tests.helpers import Ws, bearer, cached_login, force


def _create(hub, queues=("support",), who="supervisor", tenant="demo", **body):
    return httpx.post(f"{hub.url}/api/wallboards", json={"name": "Floor", "queues": list(queues), **body},
                      headers=bearer(cached_login(hub.url, who, tenant=tenant)))


def _closed(ws: Ws, timeout: float = 10.0) -> ConnectionClosed:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            ws.recv(max(0.1, deadline - time.monotonic()))
        except ConnectionClosed as exc:
            return exc
        except TimeoutError:
            break
    raise AssertionError(f"the connection stayed open; last frames: {ws.seen[-3:]}")


def test_creating_needs_a_supervisor_known_queues_and_sane_thresholds(hub):
    assert _create(hub, who="agent1").status_code == 403
    r = _create(hub, queues=["billing"])
    assert r.status_code == 404 and "unknown queue 'billing'" in r.json()["message"]
    r = _create(hub, thresholds={"service_level": {"amber": 0.6, "red": 0.8}})
    assert r.status_code == 422 and "red must be at most amber" in r.json()["message"]
    r = _create(hub, thresholds={"speed": {"amber": 1, "red": 2}})
    assert r.status_code == 422
    r = _create(hub)
    assert r.status_code == 201, r.text
    w = r.json()
    assert w["path"] == f"/wallboard?token={w['token']}" and w["queues"] == ["support"] and not w["revoked"]
    claims = jwt.decode(w["token"], SECRET, algorithms=["HS256"])
    assert claims["typ"] == "wallboard" and claims["roles"] == [] and claims["sub"] == str(w["id"])
    assert claims["exp"] - claims["iat"] == 365 * 86400
    # The token opens nothing over REST.
    r = httpx.get(f"{hub.url}/api/queue-stats", headers=bearer(w["token"]))
    assert r.status_code == 401 and "wallboard token cannot be used here" in r.json()["message"]
    # Another tenant's supervisor neither sees nor revokes it.
    acme = bearer(cached_login(hub.url, "supervisor", tenant="acme"))
    assert w["id"] not in [x["id"] for x in httpx.get(f"{hub.url}/api/wallboards", headers=acme).json()]
    assert httpx.delete(f"{hub.url}/api/wallboards/{w['id']}", headers=acme).status_code == 404


def test_a_screen_gets_its_queues_figures_live_and_may_do_nothing_else(hub):
    for i in range(1, 6):
        force(hub, f"agent{i}", "logged-out")
    w = _create(hub).json()
    admin = bearer(cached_login(hub.url, "admin"))
    with Ws(hub.ws_url) as ws:
        view = ws.request({"type": "auth", "token": w["token"]})
        assert view["type"] == "wallboard" and view["name"] == "Floor"
        assert [q["name"] for q in view["queues"]] == ["support"]
        assert view["thresholds"]["service_level"] == {"amber": 0.8, "red": 0.6}
        assert {q["queue"] for q in view.get("queue_stats", [])} <= {"support"}
        cid = httpx.post(f"{hub.url}/api/contacts", json={"queue": "support", "caller": "+49301"}, headers=admin).json()["contact_id"]
        ws.expect(lambda m: m["type"] == "queue-stats" and m["queues"][0]["waiting"] >= 1, 10, "support waiting")
        httpx.post(f"{hub.url}/api/contacts/{cid}/abandon", headers=admin)
        ws.expect(lambda m: m["type"] == "queue-stats" and m["queues"][0]["waiting"] == 0, 10, "support empty")
        # A contact in another queue sends nothing to this screen, and no frame carries agents.
        cid = httpx.post(f"{hub.url}/api/contacts", json={"queue": "sales", "caller": "+49302"}, headers=admin).json()["contact_id"]
        httpx.post(f"{hub.url}/api/contacts/{cid}/abandon", headers=admin)
        assert ws.request({"type": "ping"})["type"] == "pong"
        for frame in ws.seen:
            assert "agents" not in frame and "agent" not in frame
            assert all(q["queue"] == "support" for q in frame.get("queues", []) if isinstance(q, dict) and "queue" in q)
        for frame in ({"type": "set-state", "state": "available"}, {"type": "accept-offer", "contact_id": "x"},
                      {"type": "force-state", "agent_id": 1, "state": "available"}):
            err = ws.request(frame)
            assert err["type"] == "error" and err["code"] == "forbidden" and "wallboard token" in err["message"]


def test_forged_and_revoked_tokens_are_refused(hub):
    w = _create(hub).json()
    forged = jwt.encode({**jwt.decode(w["token"], SECRET, algorithms=["HS256"]), "sub": "999999"}, "x" * 40, "HS256")
    with Ws(hub.ws_url) as ws:
        err = ws.request({"type": "auth", "token": forged})
        assert err["type"] == "error" and err["code"] == "unauthorized" and "signature" in err["message"]
    with Ws(hub.ws_url) as ws:
        assert ws.request({"type": "auth", "token": w["token"]})["type"] == "wallboard"
        r = httpx.delete(f"{hub.url}/api/wallboards/{w['id']}", headers=bearer(cached_login(hub.url, "supervisor")))
        assert r.status_code == 200
        closed = _closed(ws)
        assert closed.rcvd is not None and closed.rcvd.code == 4401 and "revoked" in closed.rcvd.reason
    with Ws(hub.ws_url) as ws:
        ws.send({"type": "auth", "token": w["token"]})
        closed = _closed(ws)
        assert closed.rcvd.code == 4401 and "revoked" in closed.rcvd.reason
    listed = httpx.get(f"{hub.url}/api/wallboards", headers=bearer(cached_login(hub.url, "supervisor"))).json()
    assert next(x for x in listed if x["id"] == w["id"])["revoked"] is True


@pytest.mark.parametrize("bad", ["garbage"])
def test_a_malformed_token_gets_a_reason(hub, bad):
    with Ws(hub.ws_url) as ws:
        err = ws.request({"type": "auth", "token": bad})
        assert err["code"] == "unauthorized" and "malformed" in err["message"]


@pytest.mark.redis_only
def test_a_screen_on_another_hub_gets_the_figures_and_is_closed_when_revoked(hub, start_hub):
    other = start_hub(UNIDESK_HEARTBEAT_SECONDS="2")  # its reaper looks every second
    for i in range(1, 6):
        force(hub, f"agent{i}", "logged-out")
    w = _create(hub, queues=["sales"]).json()
    with Ws(other.ws_url) as ws:
        assert ws.request({"type": "auth", "token": w["token"]})["type"] == "wallboard"
        admin = bearer(cached_login(hub.url, "admin"))
        cid = httpx.post(f"{hub.url}/api/contacts", json={"queue": "sales", "caller": "+49303"}, headers=admin).json()["contact_id"]
        ws.expect(lambda m: m["type"] == "queue-stats" and m["queues"][0]["waiting"] >= 1, 10, "sales waiting")
        httpx.post(f"{hub.url}/api/contacts/{cid}/abandon", headers=admin)
        assert httpx.delete(f"{hub.url}/api/wallboards/{w['id']}", headers=bearer(cached_login(hub.url, "supervisor"))).status_code == 200
        ws.send({"type": "ping"})  # keeps the short heartbeat satisfied while the reaper notices
        closed = _closed(ws)
        assert closed.rcvd.code == 4401 and "revoked" in closed.rcvd.reason
