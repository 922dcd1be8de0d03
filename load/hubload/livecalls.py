"""Live calls for the hub benchmark (`--live-calls N`, PostgreSQL + Redis only): N calls with callers
connected to agents are written into the hub's live maps in Redis (as the SIP side would have left
them), and a media-worker connection reports their analytics every second (`call-analytics`, as
webrtc/analytics.py does), so the hub looks every call up and sends the boards one `live-calls` frame a
second. The embedded backend keeps its live maps in the hub's memory, out of reach of this process."""

from __future__ import annotations

import asyncio
import json
import threading
import time
from typing import Any

WORKER = "bench-media"


def _figures(i: int, t: float) -> dict[str, Any]:
    return {
        "leg": f"sip-c{i}", "peer": f"x-{i}", "seconds": round(t, 2), "caller_talk": round(t * 0.45, 2),
        "agent_talk": round(t * 0.4, 2), "overtalk": round(t * 0.02, 2), "silence": 0.0, "longest_silence": 2.0,
        "caller_level_db": -20.0, "agent_level_db": -18.0, "caller_missing_pct": 0.0, "agent_missing_pct": 0.1,
        "caller_jitter_ms": 1.0, "agent_jitter_ms": 2.0,
    }


def seed(redis_url: str, prefix: str, tenant_id: int, agent_ids: list[int], calls: int) -> None:
    import redis

    r = redis.Redis.from_url(redis_url)
    now = time.time()
    pipe = r.pipeline()
    for i in range(calls):
        cid = f"benchcall{i:06d}"
        pipe.hset(f"{prefix}:map:sip-calls", f"{WORKER}|c{i}",
                  json.dumps({"worker": WORKER, "tenant_id": tenant_id, "contact_id": cid, "call_id": f"c{i}"}))
        pipe.hset(f"{prefix}:map:contacts:{tenant_id}", cid, json.dumps({
            "id": cid, "queue": "support", "caller": f"+49301{i:06d}", "arrived_at": now, "status": "connected",
            "agent_id": agent_ids[i % len(agent_ids)], "media": True,
        }))
    pipe.execute()
    r.close()


class Feeder:
    """A media-worker connection reporting `calls` calls' figures once a second, on a thread of its own."""

    def __init__(self, ws_url: str, secret: str, calls: int) -> None:
        self.ws_url, self.secret, self.calls = ws_url, secret, calls
        self._stop = threading.Event()
        self.sent = 0
        self.error: str | None = None
        self._thread = threading.Thread(target=lambda: asyncio.run(self._run()), daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(10)

    async def _run(self) -> None:
        import websockets

        from realtime.auth import TokenService, worker_principal

        token = TokenService(self.secret, 3600, 3600).issue(worker_principal(WORKER), "worker", 3600)
        try:
            async with websockets.connect(self.ws_url, max_size=2**24) as ws:
                await ws.send(json.dumps({"type": "auth", "token": token}))
                await ws.send(json.dumps({"type": "worker-hello", "name": WORKER, "capacity": 1000}))
                t0 = time.monotonic()
                while not self._stop.is_set():
                    t = time.monotonic() - t0
                    await ws.send(json.dumps({"type": "call-analytics",
                                              "calls": [_figures(i, 60 + t) for i in range(self.calls)]}))
                    self.sent += 1
                    try:
                        while True:  # drain what the hub sends (acks, commands) without blocking
                            await asyncio.wait_for(ws.recv(), 0.001)
                    except (asyncio.TimeoutError, TimeoutError):
                        pass
                    await asyncio.sleep(max(0.0, 1.0 - (time.monotonic() - t0 - t)))
        except Exception as exc:  # reported by the benchmark, which then fails the step
            self.error = repr(exc)
