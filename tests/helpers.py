"""A small synchronous client of the hub for tests: REST login and a websocket
that reads frames until one matches."""

from __future__ import annotations

import itertools
import json
import time
from typing import Any

import httpx
from websockets.sync.client import ClientConnection, connect


def login(base_url: str, username: str, password: str = "demo", tenant: str = "demo") -> dict[str, Any]:
    r = httpx.post(f"{base_url}/api/auth/login", json={"tenant": tenant, "username": username, "password": password})
    assert r.status_code == 200, r.text
    return r.json()


_cache: dict[tuple[str, str, str], tuple[float, dict[str, Any]]] = {}


def cached_login(base_url: str, username: str, tenant: str = "demo") -> dict[str, Any]:
    """A login reused across calls (password hashing is deliberately slow), renewed a minute before
    its access token expires (a hub shared by the whole run outlives the token's 15 minutes)."""
    key = (base_url, username, tenant)
    hit = _cache.get(key)
    if hit is None or time.monotonic() >= hit[0]:
        started = time.monotonic()
        tokens = login(base_url, username, tenant=tenant)
        _cache[key] = (started + float(tokens.get("expires_in", 900)) - 60.0, tokens)
        return tokens
    return hit[1]


def bearer(tokens: dict[str, Any] | str) -> dict[str, str]:
    token = tokens if isinstance(tokens, str) else tokens["access_token"]
    return {"Authorization": f"Bearer {token}"}


class Ws:
    """One websocket connection; `expect` waits (bounded) for a frame matching a predicate."""

    _ids = itertools.count(1)

    def __init__(self, url: str, max_size: int | None = 2**22) -> None:
        self._cm = connect(url, max_size=max_size, open_timeout=10)
        self.conn: ClientConnection = self._cm.__enter__()
        # Every frame received, in order; `unread` holds those no `expect` has taken yet.
        self.seen: list[dict[str, Any]] = []
        self.unread: list[dict[str, Any]] = []
        self.last_seq: int | None = None

    def send(self, frame: dict[str, Any] | str) -> str | None:
        if isinstance(frame, dict):
            frame = dict(frame)
            frame.setdefault("id", f"t{next(self._ids)}")
            self.conn.send(json.dumps(frame))
            return frame["id"]
        self.conn.send(frame)
        return None

    def recv(self, timeout: float = 5.0) -> dict[str, Any]:
        msg = json.loads(self.conn.recv(timeout=timeout))
        if msg.get("type") == "snapshot":
            self.last_seq = msg["seq"]
        elif isinstance(msg.get("seq"), int):
            self.last_seq = max(self.last_seq or 0, msg["seq"])
        self.seen.append(msg)
        return msg

    def next(self, timeout: float = 5.0) -> dict[str, Any]:
        """The oldest frame no `expect` has taken yet."""
        return self.unread.pop(0) if self.unread else self.recv(timeout)

    def expect(self, pred, timeout: float = 5.0, what: str = "frame") -> dict[str, Any]:  # type: ignore[no-untyped-def]
        """Take the first unread frame matching `pred`, receiving until one comes (bounded)."""
        for i, msg in enumerate(self.unread):
            if pred(msg):
                return self.unread.pop(i)
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError(f"no {what} within {timeout}s; last frames: {self.seen[-5:]}")
            try:
                msg = self.recv(left)
            except TimeoutError:
                raise AssertionError(f"no {what} within {timeout}s; last frames: {self.seen[-5:]}") from None
            if pred(msg):
                return msg
            self.unread.append(msg)

    def reply(self, ref: str | None, timeout: float = 5.0) -> dict[str, Any]:
        """The ack, welcome or error answering request `ref`."""
        return self.expect(lambda m: m.get("ref") == ref, timeout, f"reply to {ref}")

    def request(self, frame: dict[str, Any]) -> dict[str, Any]:
        return self.reply(self.send(frame))

    def auth(self, token: str, last_seq: int | None = None) -> dict[str, Any]:
        frame: dict[str, Any] = {"type": "auth", "token": token}
        if last_seq is not None:
            frame["last_seq"] = last_seq
        welcome = self.request(frame)
        assert welcome["type"] == "welcome", welcome
        return welcome

    def agent_event(self, username: str, state: str, timeout: float = 5.0) -> dict[str, Any]:
        return self.expect(
            lambda m: m.get("type") == "agent-state"
            and m["agent"]["username"] == username
            and m["agent"]["state"] == state,
            timeout,
            f"agent-state {username}={state}",
        )

    def close(self) -> None:
        self._cm.__exit__(None, None, None)

    def __enter__(self) -> Ws:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def connect_as(hub: Any, username: str, tenant: str = "demo", last_seq: int | None = None) -> tuple[Ws, dict[str, Any]]:
    tokens = login(hub.url, username, tenant=tenant)
    ws = Ws(hub.ws_url)
    ws.auth(tokens["access_token"], last_seq)
    return ws, tokens


def agent_id(hub: Any, username: str, tenant: str = "demo") -> int:
    sup = cached_login(hub.url, "supervisor", tenant=tenant)
    r = httpx.get(f"{hub.url}/api/agents", headers=bearer(sup))
    assert r.status_code == 200, r.text
    return next(a["id"] for a in r.json() if a["username"] == username)


def force(hub: Any, username: str, state: str, reason: str | None = None, tenant: str = "demo") -> httpx.Response:
    sup = cached_login(hub.url, "supervisor", tenant=tenant)
    body: dict[str, Any] = {"state": state}
    if reason:
        body["reason"] = reason
    return httpx.post(f"{hub.url}/api/agents/{agent_id(hub, username, tenant)}/state", json=body, headers=bearer(sup))
