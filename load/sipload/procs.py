"""The processes of a run: the store, the hub, media workers, sipp callers and the echo UAS."""

from __future__ import annotations

import asyncio
import os
import secrets
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .common import ROOT, free_port, free_udp_range

TOKEN_TTL = 6 * 3600
PASSWORD = "bench"


def _cli(env: dict[str, str], *args: str) -> None:
    out = subprocess.run([sys.executable, "-m", "realtime.cli", *args], env=env, cwd=ROOT,
                         capture_output=True, text=True, timeout=180)
    if out.returncode != 0:
        raise RuntimeError(f"unidesk {' '.join(args)} failed: {out.stderr.strip()[-2000:]}")


@dataclass
class Store:
    env: dict[str, str]
    tenant_id: int
    # Agents of the support queue and of the sales queue: (user id, username, token).
    support: list[tuple[int, str, str]]
    sales: list[tuple[int, str, str]]
    # Agents and supervisors for the websocket load (members of no queue).
    load_agents: list[tuple[int, str, str]]
    load_boards: list[tuple[int, str, str]]
    load_parts: int = 1


async def _populate(url: str, support: int, sales: int, load_agents: int, boards: int,
                    wrap_up: int) -> tuple[int, dict[str, list[tuple[int, str]]]]:
    from sqlalchemy import select

    from realtime.auth import hash_password
    from store.db import make_engine, make_sessionmaker
    from store.models import Queue
    from store.repos import TenantRepo, tenant_by_slug

    pw = hash_password(PASSWORD)  # once: every bench user shares it
    engine = make_engine(url)
    out: dict[str, list[tuple[int, str]]] = {"support": [], "sales": [], "load": [], "boards": []}
    try:
        async with make_sessionmaker(engine)() as s, s.begin():
            tenant = await tenant_by_slug(s, "demo")
            assert tenant is not None, "seed-demo made no demo tenant"
            repo = TenantRepo(s, tenant.id)
            queues = {q.name: q for q in (await s.execute(select(Queue).where(Queue.tenant_id == tenant.id))).scalars()}
            for q in queues.values():
                q.wrap_up_seconds = wrap_up
            now = time.time()
            for kind, count, role in (("support", support, "agent"), ("sales", sales, "agent"),
                                      ("load", load_agents, "agent"), ("boards", boards, "supervisor")):
                for i in range(1, count + 1):
                    name = f"sip-{kind}-{i:04d}"
                    u = await repo.add_user(name, f"Bench {kind} {i}", pw, [role], now)
                    if kind in ("support", "sales"):
                        await repo.add_membership(queues[kind].id, u.id, penalty=0, level=50)
                    out[kind].append((u.id, name))
            return tenant.id, out
    finally:
        await engine.dispose()


def prepare(tmp: Path, support: int, sales: int, load_agents: int, boards: int) -> Store:
    from realtime.auth import Principal, TokenService

    secret = "bench-" + secrets.token_urlsafe(40)
    path = tmp / "unidesk.db"
    env = {
        **os.environ,
        "UNIDESK_DATABASE_URL": f"sqlite:///{path}",
        "UNIDESK_SECRET": secret,
        "UNIDESK_LOG_JSON": "1",
        "UNIDESK_LOG_LEVEL": "INFO",
        "UNIDESK_ACCESS_TTL": str(TOKEN_TTL),
        "UNIDESK_HEARTBEAT_SECONDS": "60",
    }
    for k in ("UNIDESK_REDIS_URL", "UNIDESK_SIP_PORT", "UNIDESK_MEDIA_CAPACITY"):
        env.pop(k, None)
    _cli(env, "migrate")
    _cli(env, "seed-demo")
    tenant_id, people = asyncio.run(_populate(f"sqlite+aiosqlite:///{path}", support, sales, load_agents, boards, 1))
    tokens = TokenService(secret, TOKEN_TTL, TOKEN_TTL)

    def mint(rows: list[tuple[int, str]], role: str) -> list[tuple[int, str, str]]:
        return [(uid, name, tokens.issue(Principal(uid, tenant_id, "demo", name, frozenset({role}), 0, "access"),
                                         "access", TOKEN_TTL)) for uid, name in rows]

    return Store(env, tenant_id, mint(people["support"], "agent"), mint(people["sales"], "agent"),
                 mint(people["load"], "agent"), mint(people["boards"], "supervisor"))


class Proc:
    """A subprocess with its output in a log file."""

    def __init__(self, argv: list[str], env: dict[str, str], log: Path, cwd: Path = ROOT) -> None:
        self.log_path = log
        self._log = open(log, "ab")
        self.proc = subprocess.Popen(argv, env=env, cwd=cwd, stdout=self._log, stderr=subprocess.STDOUT)

    @property
    def pid(self) -> int:
        return self.proc.pid

    def alive(self) -> bool:
        return self.proc.poll() is None

    def tail(self, chars: int = 2000) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-chars:]
        except OSError:
            return ""

    def stop(self, grace: float = 10.0, sig: int = signal.SIGTERM) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(grace)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        self._log.close()


class Hub(Proc):
    def __init__(self, store: Store, log: Path) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.env = {**store.env, "UNIDESK_PORT": str(self.port)}
        super().__init__([sys.executable, "-m", "realtime.cli", "serve"], self.env, log)

    def health(self) -> dict[str, Any]:
        import httpx

        return httpx.get(self.url + "/healthz", timeout=2, trust_env=False).json()

    def wait_healthy(self, timeout: float = 60.0) -> None:
        import httpx

        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if not self.alive():
                raise RuntimeError(f"hub exited: {self.tail()}")
            try:
                self.health()
                return
            except (httpx.TransportError, ValueError):
                time.sleep(0.1)  # readiness polling
        raise RuntimeError(f"hub not healthy in {timeout}s: {self.tail()}")


class Worker(Proc):
    def __init__(self, hub: Hub, name: str, sip_port: int, capacity: int, log: Path, lanes: int = 1) -> None:
        self.hub, self.name, self.sip_port = hub, name, sip_port
        env = {**hub.env, "UNIDESK_SIP_PORT": str(sip_port), "UNIDESK_SIP_HOST": "127.0.0.1"}
        if lanes > 1:  # SIP lanes (docs/sip.md): their own UDP ports, callers still use sip_port alone
            env.update(UNIDESK_SIP_LANES=str(lanes), UNIDESK_SIP_LANE_PORT=str(free_udp_range(lanes - 1)))
        super().__init__([sys.executable, "-m", "realtime.cli", "media-worker", "--hub", hub.url, "--name", name,
                          "--capacity", str(capacity)], env, log)

    def wait_registered(self, timeout: float = 60.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if not self.alive():
                raise RuntimeError(f"media worker {self.name} exited: {self.tail()}")
            if self.name in self.hub.health().get("media_workers", []):
                return
            time.sleep(0.1)  # readiness polling
        raise RuntimeError(f"media worker {self.name} did not register: {self.tail()}")


class Sipp(Proc):
    """sipp placing `calls` calls at `rate` per second with the bench scenario, from `folder`."""

    def __init__(self, folder: Path, tag: str, target: str, service: str, calls: int, rate: float,
                 hold_ms: int, timeout_s: float, media_port: int) -> None:
        self.folder, self.tag = folder, tag
        self.log_file = folder / f"{tag}.log"
        self.stat_file = folder / f"{tag}.csv"
        self.err_file = folder / f"{tag}.err"
        argv = ["sipp", target, "-sf", "caller.xml", "-s", service, "-key", "tag", tag,
                "-m", str(calls), "-l", str(calls), "-r", f"{rate:g}", "-rp", "1000", "-d", str(hold_ms),
                "-i", "127.0.0.1", "-p", str(free_port()), "-mp", str(media_port),
                "-nostdin", "-timeout", f"{int(timeout_s)}s", "-timeout_error",
                "-trace_logs", "-log_file", str(self.log_file), "-trace_stat", "-stf", str(self.stat_file),
                "-fd", "1", "-trace_err", "-error_file", str(self.err_file)]
        super().__init__(argv, dict(os.environ), folder / f"{tag}.screen", cwd=folder)

    def times(self) -> dict[str, dict[str, float]]:
        """caller → {"invite": t, "play": t} from the scenario's log lines (wall clock)."""
        out: dict[str, dict[str, float]] = {}
        try:
            lines = self.log_file.read_text(errors="replace").splitlines()
        except OSError:
            return out
        for line in lines:
            parts = line.split()
            if len(parts) == 4 and parts[0] in ("INVITE", "PLAY"):
                out.setdefault(parts[1], {})[parts[0].lower()] = float(parts[2]) + float(parts[3]) / 1e6
        return out

    def stats(self) -> dict[str, str]:
        """The last line of sipp's statistics file, by column."""
        try:
            lines = [x for x in self.stat_file.read_text(errors="replace").splitlines() if x.strip()]
        except OSError:
            return {}
        if len(lines) < 2:
            return {}
        return dict(zip(lines[0].split(";"), lines[-1].split(";")))

    def count(self, text: str) -> int:
        """How often `text` occurs in sipp's error file (unexpected responses are logged there)."""
        try:
            return self.err_file.read_text(errors="replace").count(text)
        except OSError:
            return 0

    def errors(self, n: int = 3) -> list[str]:
        try:
            lines = [x for x in self.err_file.read_text(errors="replace").splitlines() if x.strip()]
        except OSError:
            return []
        # sipp's unexpected-message lines run over several lines: keep the ones that say what happened.
        return [x for x in lines if "Aborting" in x or "failed" in x.lower() or "Overload" in x][-n:]


class EchoUas(Proc):
    """sipp's own UAS (`-sn uas`) with RTP echo on its media port: the baseline's far end."""

    def __init__(self, folder: Path) -> None:
        self.sip_port = free_port()
        self.media_port = 29000
        argv = ["sipp", "-sn", "uas", "-rtp_echo", "-i", "127.0.0.1", "-p", str(self.sip_port),
                "-mp", str(self.media_port), "-nostdin"]
        super().__init__(argv, dict(os.environ), folder / "uas.screen", cwd=folder)
