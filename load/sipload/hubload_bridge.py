"""The hub benchmark's websocket load (load/hubload/) run against this benchmark's hub, beside the calls."""

from __future__ import annotations

import multiprocessing as mp
import time
from typing import Any

from hubload.clients import agent_worker, board_worker
from hubload.measure import Load, _figures

from .common import say
from .procs import Hub, Store


class HubLoad:
    """Agents changing state and boards watching them, started before a step and collected after it."""

    def __init__(self, hub: Hub, store: Store, rate: float, part: int, agent_procs: int = 1) -> None:
        self.hub, self.store, self.rate, self.agent_procs = hub, store, rate, agent_procs
        # Each step has agents of its own: the clients assume their agents start logged out.
        size = len(store.load_agents) // store.load_parts
        self.agents = store.load_agents[part * size:(part + 1) * size]
        self.workers: list[tuple[str, Any, Any]] = []

    @property
    def pids(self) -> list[int]:
        return [p.pid for _, p, _ in self.workers]

    def start(self, seconds: float) -> None:
        ctx = mp.get_context("spawn")
        common = {"url": self.hub.url.replace("http://", "ws://") + "/ws", "mode": "hub", "batch": 200,
                  "compression": "none", "ping_every": 30.0}
        agents, boards = self.agents, self.store.load_boards
        a, b = ctx.Pipe()
        p = ctx.Process(target=board_worker, args=(b, {**common, "tokens": [t for _, _, t in boards]}), daemon=True)
        p.start()
        self.workers.append(("board", p, a))
        self._wait("board")
        for k in range(self.agent_procs):
            part = agents[k::self.agent_procs]
            a, b = ctx.Pipe()
            cfg = {**common, "ids": [u for u, _, _ in part], "names": [n for _, n, _ in part],
                   "tokens": [t for _, _, t in part], "seed": 7 + k}
            p = ctx.Process(target=agent_worker, args=(b, cfg), daemon=True)
            p.start()
            self.workers.append(("agent", p, a))
        self._wait("agent")
        self.t0 = time.monotonic() + 0.5
        self.seconds = seconds
        share = self.rate / self.agent_procs
        for role, _, pipe in self.workers:
            pipe.send(("go", self.t0, 0.0, seconds, share if role == "agent" else 0.0))
        say(f"   websocket load: {self.connected} connections, {self.rate:g} state changes/s for {seconds:.0f} s")

    def _wait(self, role: str) -> None:
        self.connected = getattr(self, "connected", 0)
        self.errors: list[str] = getattr(self, "errors", [])
        for r, p, pipe in self.workers:
            if r != role:
                continue
            if not pipe.poll(180):
                raise RuntimeError(f"websocket load: {role} clients did not connect")
            msg = pipe.recv()
            self.connected += msg[1]
            self.errors += msg[2]

    def finish(self) -> dict[str, Any]:
        reports = []
        try:
            for role, _, pipe in self.workers:
                left = self.t0 + self.seconds + 60 - time.monotonic()
                if not pipe.poll(max(1.0, left)):
                    raise RuntimeError(f"websocket load: a {role} process did not report")
                reports.append((role, pipe.recv()[1]))
            load = Load(agents=len(self.agents), boards=len(self.store.load_boards), rate=self.rate,
                        duration=self.seconds, warmup=0.0, agent_procs=self.agent_procs, board_procs=1,
                        batch=200, compression="none", seed=7)
            return _figures(load, reports, self.t0, self.t0 + self.seconds, self.connected, self.errors)
        finally:
            self.stop()

    def stop(self) -> None:
        for _, p, pipe in self.workers:
            try:
                pipe.send(("exit",))
            except (OSError, ValueError):
                pass
        for _, p, _ in self.workers:
            p.join(5)
            if p.is_alive():
                p.terminate()
                p.join(5)
        self.workers = []
