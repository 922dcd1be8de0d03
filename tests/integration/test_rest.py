"""REST over real HTTP against a running hub."""

import base64
import json
import time

import httpx
import jwt

from tests.conftest import SECRET
from tests.helpers import agent_id, bearer, force, login


def test_login_returns_tokens_with_roles(hub):
    t = login(hub.url, "agent1")
    assert set(t) >= {"access_token", "refresh_token", "expires_in"} and t["expires_in"] > 0
    claims = jwt.decode(t["access_token"], SECRET, algorithms=["HS256"])
    assert claims["roles"] == ["agent"] and claims["typ"] == "access" and claims["ten"] == "demo"
    me = httpx.get(f"{hub.url}/api/me", headers=bearer(t)).json()
    assert me["username"] == "agent1" and me["tenant"]["slug"] == "demo"


def test_wrong_password_unknown_user_and_unknown_tenant_look_the_same(hub):
    for body in (
        {"tenant": "demo", "username": "agent1", "password": "wrong"},
        {"tenant": "demo", "username": "nobody", "password": "demo"},
        {"tenant": "nowhere", "username": "agent1", "password": "demo"},
    ):
        r = httpx.post(f"{hub.url}/api/auth/login", json=body)
        assert r.status_code == 401 and r.json()["error"] == "invalid-credentials", r.text


def test_malformed_login_bodies_get_clear_errors(hub):
    r = httpx.post(f"{hub.url}/api/auth/login", content=b"{nope")
    assert r.status_code == 400 and "JSON" in r.json()["message"]
    r = httpx.post(f"{hub.url}/api/auth/login", json={"tenant": "demo", "username": "agent1"})
    assert r.status_code == 422 and "password" in r.json()["message"]


def test_repeated_failed_logins_are_slowed_down(hub):
    # acme's trainer is used by no other test: its lock-out cannot disturb them.
    body = {"tenant": "acme", "username": "trainer", "password": "wrong"}
    codes = [httpx.post(f"{hub.url}/api/auth/login", json=body).status_code for _ in range(6)]
    assert codes[:5] == [401] * 5 and codes[5] == 429
    r = httpx.post(f"{hub.url}/api/auth/login", json={**body, "password": "demo"})
    # Even the right password waits until the delay has passed.
    assert r.status_code == 429 and int(r.headers["Retry-After"]) >= 1
    assert "try again" in r.json()["message"]


def test_password_never_appears_in_the_log(hub):
    secret_pw = "Sup3r-Secret-Pw-" + str(time.time_ns())
    httpx.post(f"{hub.url}/api/auth/login", json={"tenant": "demo", "username": "agent5", "password": secret_pw})
    httpx.post(f"{hub.url}/api/auth/login", json={"tenant": "demo", "username": secret_pw, "password": "x"})
    log = hub.log()
    assert "login failed" in log
    # The attempted username is logged (it is not a password), the password never is.
    assert log.count(secret_pw) == 1


def test_refresh_gives_a_new_pair_and_refuses_access_tokens(hub):
    t = login(hub.url, "agent2")
    r = httpx.post(f"{hub.url}/api/auth/refresh", json={"refresh_token": t["refresh_token"]})
    assert r.status_code == 200 and r.json()["access_token"] != t["access_token"]
    r = httpx.post(f"{hub.url}/api/auth/refresh", json={"refresh_token": t["access_token"]})
    assert r.status_code == 401 and "access token cannot be used" in r.json()["message"]


def _none_token() -> str:
    enc = lambda d: base64.urlsafe_b64encode(json.dumps(d).encode()).rstrip(b"=").decode()  # noqa: E731
    claims = {"sub": "2", "tid": 1, "typ": "access", "iss": "unidesk", "iat": 1, "exp": 2**40, "roles": ["admin"]}
    return enc({"alg": "none", "typ": "JWT"}) + "." + enc(claims) + "."


def test_forged_expired_and_alg_none_tokens_get_401_with_a_reason(hub):
    claims = {"sub": "2", "tid": 1, "typ": "access", "iss": "unidesk", "roles": ["supervisor"]}
    now = int(time.time())
    cases = {
        "signature": jwt.encode({**claims, "iat": now, "exp": now + 60}, "another-key-" + "y" * 30, "HS256"),
        "expired": jwt.encode({**claims, "iat": now - 100, "exp": now - 50}, SECRET, "HS256"),
        "algorithm 'none'": _none_token(),
        "malformed": "garbage",
    }
    for reason, token in cases.items():
        r = httpx.get(f"{hub.url}/api/agents", headers=bearer(token))
        assert r.status_code == 401, (reason, r.text)
        assert reason in r.json()["message"] and "WWW-Authenticate" in r.headers
    r = httpx.get(f"{hub.url}/api/agents")
    assert r.status_code == 401 and "missing bearer token" in r.json()["message"]


def test_roles_are_checked_on_every_route(hub):
    agent = login(hub.url, "agent3")
    r = httpx.get(f"{hub.url}/api/agents", headers=bearer(agent))
    assert r.status_code == 403 and "supervisor" in r.json()["message"]
    r = httpx.post(f"{hub.url}/api/agents/1/state", json={"state": "available"}, headers=bearer(agent))
    assert r.status_code == 403
    trainer = login(hub.url, "trainer")
    assert httpx.get(f"{hub.url}/api/agents", headers=bearer(trainer)).status_code == 403


def test_supervisor_force_is_recorded_with_who_did_it(hub):
    force(hub, "agent4", "logged-out")
    r = force(hub, "agent4", "paused", "training")
    assert r.status_code == 200 and r.json()["state"] == "paused" and r.json()["changed_by"] == "supervisor"
    sup = login(hub.url, "supervisor")
    hist = httpx.get(f"{hub.url}/api/agents/{agent_id(hub, 'agent4')}/history", headers=bearer(sup)).json()
    assert hist[0]["to"] == "paused" and hist[0]["reason"] == "training"
    assert hist[0]["by"] == "supervisor" and hist[0]["source"] == "supervisor"


def test_force_errors_are_clear_and_write_nothing(hub):
    force(hub, "agent4", "logged-out")
    sup = login(hub.url, "supervisor")
    aid = agent_id(hub, "agent4")
    before = httpx.get(f"{hub.url}/api/agents/{aid}/history", headers=bearer(sup)).json()
    r = force(hub, "agent4", "paused", "holiday")
    assert r.status_code == 422 and "unknown pause reason 'holiday'" in r.json()["message"]
    r = force(hub, "agent4", "paused")
    assert r.status_code == 422 and "a pause needs a reason" in r.json()["message"]
    r = httpx.post(f"{hub.url}/api/agents/{aid}/state", json={"state": "on-call"}, headers=bearer(sup))
    assert r.status_code == 422
    after = httpx.get(f"{hub.url}/api/agents/{aid}/history", headers=bearer(sup)).json()
    assert after == before


def test_another_tenants_agent_is_not_found(hub):
    acme_agent = agent_id(hub, "agent1", tenant="acme")
    demo_sup = login(hub.url, "supervisor")
    r = httpx.post(f"{hub.url}/api/agents/{acme_agent}/state", json={"state": "available"}, headers=bearer(demo_sup))
    assert r.status_code == 404
    r = httpx.get(f"{hub.url}/api/agents/{acme_agent}/history", headers=bearer(demo_sup))
    assert r.status_code == 404
    names = {a["username"] for a in httpx.get(f"{hub.url}/api/agents", headers=bearer(demo_sup)).json()}
    ids = {a["id"] for a in httpx.get(f"{hub.url}/api/agents", headers=bearer(demo_sup)).json()}
    assert names == {f"agent{i}" for i in range(1, 6)} and acme_agent not in ids


def test_health_and_metrics(hub):
    r = httpx.get(f"{hub.url}/healthz")
    body = r.json()
    # Media workers come and go with the tests that need them: only the shape is fixed here.
    assert isinstance(body.pop("media_workers"), list)
    assert r.status_code == 200 and body == {"status": "ok", "database": True, "bus": True, "routing": True}
    force(hub, "agent5", "logged-out")
    force(hub, "agent5", "available")
    text = httpx.get(f"{hub.url}/metrics").text
    for name in ("unidesk_ws_connections", "unidesk_ws_messages_in", "unidesk_ws_messages_out",
                 "unidesk_agent_state_changes_total", "unidesk_errors", "unidesk_logins_total"):
        assert name in text, name
    changes = [line for line in text.splitlines() if line.startswith('unidesk_agent_state_changes_total{source="supervisor"}')]
    assert changes and float(changes[0].split()[-1]) >= 1
