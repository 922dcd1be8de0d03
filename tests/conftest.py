"""Shared fixtures: the backend under test and running hub processes.

`UNIDESK_TEST_BACKEND` picks the backend: `embedded` (SQLite file + in-process
bus, the default) or `redis` (PostgreSQL + Redis). Each run makes its own
database and Redis key prefix and removes them afterwards.
"""

from __future__ import annotations

import asyncio
import json
import os
import secrets
import shutil
import socket
import sqlite3
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
from _pytest.runner import runtestprotocol

from webrtc.tones import write_tone_wav

ROOT = Path(__file__).resolve().parent.parent
BACKEND = os.environ.get("UNIDESK_TEST_BACKEND", "embedded")
PG_BASE = os.environ.get("UNIDESK_TEST_PG", "postgresql://postgres@127.0.0.1:5432")
REDIS_URL = os.environ.get("UNIDESK_TEST_REDIS", "redis://127.0.0.1:6379/0")
SECRET = "test-secret-" + "x" * 40
# The music a held call plays to the other party in tests: a known tone, detected by frequency.
HOLD_MUSIC_HZ = 700.0
assert BACKEND in ("embedded", "redis"), f"UNIDESK_TEST_BACKEND={BACKEND!r}: use embedded or redis"


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    # Tests that need Redis by nature (several hubs) belong to the PostgreSQL + Redis pass only, and
    # tests of the embedded hub's own behaviour to the embedded pass only; each is deselected, not
    # skipped, in the other pass.
    other = "embedded_only" if BACKEND == "redis" else "redis_only"
    keep, drop = [], []
    for item in items:
        (drop if item.get_closest_marker(other) else keep).append(item)
    if drop:
        config.hook.pytest_deselected(items=drop)
        items[:] = keep


# ---------------------------------------------------------------- a process per test

# `@pytest.mark.own_process`: the test runs in a forked child, and only its reports come back. pjsua is
# one per process and a media worker creates it once for its life; tests of the bridge that create and
# destroy it in the test process would run pjsua2 through cycles it is not built for. A child that dies
# (a signal) fails its test with the child's last output, and the rest of the pass goes on. Only
# function- and module-scoped fixtures may serve such a test (the child is not the one that tears the
# others down), and a module's tests are all in their own processes or none.


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_protocol(item: pytest.Item, nextitem: pytest.Item | None) -> bool | None:
    if item.get_closest_marker("own_process") is None:
        return None
    hook = item.ihook
    hook.pytest_runtest_logstart(nodeid=item.nodeid, location=item.location)
    with tempfile.TemporaryFile() as out:
        pid = os.fork()
        if pid == 0:  # the child: run setup, call and teardown of this test alone, write the reports
            code = 0
            try:
                os.dup2(out.fileno(), 2)  # its stderr (a crash's traceback) goes to the parent's report
                reports = runtestprotocol(item, log=False, nextitem=item)
                data = [item.config.hook.pytest_report_to_serializable(config=item.config, report=r) for r in reports]
                # After anything written to stderr: the two share the file and its offset.
                os.write(out.fileno(), ("\n" + _REPORTS + json.dumps(data) + "\n").encode())
            except BaseException:  # anything: the parent reports the output
                import traceback

                traceback.print_exc()
                code = 1
            finally:
                os._exit(code)
        stopped = ""
        try:
            _, status = os.waitpid(pid, 0)
        except BaseException as exc:  # the test's timeout (or Ctrl-C) struck here: the child goes too
            os.kill(pid, 9)
            _, status = os.waitpid(pid, 0)
            if isinstance(exc, KeyboardInterrupt):
                raise
            stopped = f"{exc}\n"
        out.seek(0)
        text = stopped + out.read().decode("utf-8", "replace")
    head, sep, tail = text.rpartition(_REPORTS)
    if sep and not stopped and os.waitstatus_to_exitcode(status) == 0:
        for data in json.loads(tail):
            report = item.config.hook.pytest_report_from_serializable(config=item.config, data=data)
            hook.pytest_runtest_logreport(report=report)
        if head.strip():
            sys.stderr.write(head)
    else:
        why = os.waitstatus_to_exitcode(status)
        what = f"killed by signal {-why}" if why < 0 else f"exited with status {why}"
        report = pytest.TestReport(
            item.nodeid, item.location, {k: 1 for k in item.keywords}, "failed",
            f"the test's process {what}; its last output:\n{text[-6000:]}", "call",
        )
        hook.pytest_runtest_logreport(report=report)
    # What the parent itself set up (session, packages) and the next test does not need goes, as after
    # any test; the child set up and tore down this test's own module and fixtures in its own process.
    item.session._setupstate.teardown_exact(nextitem)
    hook.pytest_runtest_logfinish(nodeid=item.nodeid, location=item.location)
    return True


_REPORTS = "==unidesk-test-reports== "


# Ports the tests' servers and peers listen on come from below the kernel's ephemeral range (32768 and
# up), so no outgoing connection takes one between its choice and its bind, and each backend's pass has
# its own half (the two passes of `make test` run side by side). Ports are even, and the odd one above
# each is left for peers that listen on a pair (baresip: SIP and TLS).
_PORTS = (20000, 26000) if BACKEND == "embedded" else (26000, 32000)
# The RTP ports a bridge in the test process starts from (pjsua takes pairs upward from there): below
# the listening ports, each pass its own range, so a peer of one pass never sends to the other's bridge.
RTP_PORTS = (12000, 16000) if BACKEND == "embedded" else (16000, 20000)


def shard_range(bounds: tuple[int, int], shard: str) -> tuple[int, int]:
    """The part of `bounds` (even ends) for pytest process `shard` ("K/N": the K-th of N processes that
    run one backend's pass side by side, each on other test files): N equal, even, disjoint parts."""
    try:
        k, n = (int(x) for x in shard.split("/"))
    except ValueError:
        raise ValueError(f"UNIDESK_TEST_SHARD={shard!r}: expected K/N, e.g. 1/2") from None
    if not 1 <= k <= n:
        raise ValueError(f"UNIDESK_TEST_SHARD={shard!r}: K must be between 1 and N")
    low, high = bounds
    size = (high - low) // n // 2 * 2
    return low + (k - 1) * size, low + k * size


# A pass split into several pytest processes (see the Makefile) gives each its own part of both ranges.
SHARD = os.environ.get("UNIDESK_TEST_SHARD", "1/1")
_PORTS = shard_range(_PORTS, SHARD)
RTP_PORTS = shard_range(RTP_PORTS, SHARD)
_next_port = _PORTS[0] + 2 * ((os.getpid() * 7919) % ((_PORTS[1] - _PORTS[0]) // 2))


def _bindable(port: int) -> bool:
    for kind in (socket.SOCK_STREAM, socket.SOCK_DGRAM):
        with socket.socket(socket.AF_INET, kind) as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                return False
    return True


def free_port() -> int:
    """A port free for TCP and UDP on 127.0.0.1 (and its odd neighbour too), from this pass's range."""
    global _next_port
    low, high = _PORTS
    for _ in range((high - low) // 2):
        p = _next_port
        _next_port = p + 2 if p + 2 < high else low
        if _bindable(p) and _bindable(p + 1):
            return p
    raise RuntimeError(f"no free port in {low}-{high}")


# ---------------------------------------------------------------- databases


def _pg_admin(sql: str) -> None:
    import asyncpg

    async def run() -> None:
        conn = await asyncpg.connect(PG_BASE + "/postgres")
        try:
            await conn.execute(sql)
        finally:
            await conn.close()

    # A thread of its own: callers may be inside a running event loop.
    with ThreadPoolExecutor(1) as pool:
        pool.submit(asyncio.run, run()).result()


@dataclass
class Backend:
    kind: str
    database_url: str
    redis_url: str | None
    redis_prefix: str
    _cleanup: list = field(default_factory=list)

    def env(self) -> dict[str, str]:
        env = {
            "UNIDESK_DATABASE_URL": self.database_url,
            "UNIDESK_REDIS_PREFIX": self.redis_prefix,
        }
        if self.redis_url:
            env["UNIDESK_REDIS_URL"] = self.redis_url
        return env


def make_backend(tmp: Path, kind: str = BACKEND, template: Backend | None = None) -> Backend:
    """An empty backend, or one whose store is a copy of `template`'s (a store of the same kind that
    nothing is connected to)."""
    tag = secrets.token_hex(4)
    prefix = f"udtest-{tag}"
    if kind == "embedded":
        path = tmp / f"unidesk-{tag}.db"
        if template is not None:
            # SQLite's backup API: a consistent copy, whatever journal the template was written with.
            src = sqlite3.connect(template.database_url.removeprefix("sqlite:///"))
            dst = sqlite3.connect(path)
            try:
                src.backup(dst)
            finally:
                dst.close()
                src.close()
        return Backend(kind, f"sqlite:///{path}", None, prefix)
    name = f"udtest_{tag}"
    copy = f' TEMPLATE "{template.database_url.rpartition("/")[2]}"' if template is not None else ""
    _pg_admin(f'CREATE DATABASE "{name}"{copy}')
    b = Backend(kind, f"{PG_BASE}/{name}", REDIS_URL, prefix)
    b._cleanup.append(lambda: _pg_admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    b._cleanup.append(lambda: drop_redis_prefix(prefix))
    return b


def drop_redis_prefix(prefix: str) -> None:
    import redis

    r = redis.Redis.from_url(REDIS_URL)
    keys = list(r.scan_iter(match=f"{prefix}:*", count=1000))
    if keys:
        r.delete(*keys)
    r.close()


def drop_backend(b: Backend) -> None:
    for fn in b._cleanup:
        fn()


def cli(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "realtime.cli", *args],
        env={**os.environ, **env},
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )


def _migrated_and_seeded(b: Backend) -> Backend:
    env = b.env()
    for args in (("migrate",), ("seed-demo",), ("seed-demo", "--tenant", "acme", "--name", "Acme")):
        out = cli(env, *args)
        assert out.returncode == 0, out.stderr
    return b


# Per kind, the store this test process prepared with the commands, copied by `prepared_backend`.
_templates: dict[str, Backend] = {}
_MAIN_PID = os.getpid()


def prepared_backend(tmp: Path, kind: str = BACKEND) -> Backend:
    """A backend with the schema migrated and the tenants demo and acme seeded. The commands run once
    per test process and kind (three processes, seconds); each backend after that starts from a copy
    of that store, which the commands would have left the same but for password salts and creation
    times. A forked test process (own_process) runs the commands itself: it could not drop a copy."""
    if os.getpid() != _MAIN_PID:
        return _migrated_and_seeded(make_backend(tmp, kind))
    if kind not in _templates:
        folder = Path(tempfile.mkdtemp(prefix="unidesk-template-"))
        template = _templates[kind] = _migrated_and_seeded(make_backend(folder, kind))
        template._cleanup.append(lambda: shutil.rmtree(folder, ignore_errors=True))
    return make_backend(tmp, kind, _templates[kind])


def pytest_unconfigure(config: pytest.Config) -> None:
    if os.getpid() == _MAIN_PID:
        for template in _templates.values():
            drop_backend(template)


def set_queue_config(b: Backend, tenant: str, queue: str, **config: object) -> None:
    """Change a queue's routing settings in the store (before its hub starts)."""
    from sqlalchemy import select

    from store.db import make_engine, make_sessionmaker
    from store.models import Queue, Tenant

    url = b.database_url.replace("sqlite://", "sqlite+aiosqlite://").replace(
        "postgresql://", "postgresql+asyncpg://"
    )

    async def run() -> None:
        engine = make_engine(url)
        async with make_sessionmaker(engine)() as s, s.begin():
            q = (
                await s.execute(
                    select(Queue).join(Tenant, Tenant.id == Queue.tenant_id).where(Tenant.slug == tenant, Queue.name == queue)
                )
            ).scalar_one()
            q.config = {**(q.config or {}), **config}
        await engine.dispose()

    with ThreadPoolExecutor(1) as pool:
        pool.submit(asyncio.run, run()).result()


def set_tenant_settings(b: Backend, tenant: str, **settings: object) -> None:
    """Change a tenant's settings in the store (read by the hub when it needs them)."""
    from sqlalchemy import select

    from store.db import make_engine, make_sessionmaker
    from store.models import Tenant

    url = b.database_url.replace("sqlite://", "sqlite+aiosqlite://").replace("postgresql://", "postgresql+asyncpg://")

    async def run() -> None:
        engine = make_engine(url)
        async with make_sessionmaker(engine)() as s, s.begin():
            t = (await s.execute(select(Tenant).where(Tenant.slug == tenant))).scalar_one()
            t.settings = {**(t.settings or {}), **settings}
        await engine.dispose()

    with ThreadPoolExecutor(1) as pool:
        pool.submit(asyncio.run, run()).result()


@pytest.fixture(scope="session")
def backend(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Backend]:
    b = prepared_backend(tmp_path_factory.mktemp("db"))
    yield b
    drop_backend(b)


# ---------------------------------------------------------------- hub processes


class _Process:
    """A unidesk process started by a test: stopped politely, killed on purpose, its log at hand."""

    proc: subprocess.Popen[bytes] | None
    log_path: Path
    _log: Any

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if hasattr(self, "_log"):
            self._log.close()

    def kill(self) -> None:
        assert self.proc is not None
        self.proc.kill()
        self.proc.wait()
        self._log.close()

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""


class HubProcess(_Process):
    def __init__(self, backend: Backend, log_path: Path, **env: str) -> None:
        self.backend = backend
        self.port = int(env["UNIDESK_PORT"]) if "UNIDESK_PORT" in env else free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.ws_url = f"ws://127.0.0.1:{self.port}/ws"
        self.log_path = log_path
        self.env = {
            **os.environ,
            **backend.env(),
            "UNIDESK_PORT": str(self.port),
            "UNIDESK_SECRET": SECRET,
            "UNIDESK_LOG_JSON": "1",
            **env,
        }
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> HubProcess:
        self._log = open(self.log_path, "ab")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "realtime.cli", "serve"],
            env=self.env,
            cwd=ROOT,
            stdout=self._log,
            stderr=subprocess.STDOUT,
        )
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"hub exited with {self.proc.returncode}: {self.log()}")
            try:
                if httpx.get(self.url + "/healthz", timeout=1).status_code == 200:
                    return self
            except httpx.TransportError:
                pass
            time.sleep(0.05)  # polling for readiness, not a synchronisation sleep
        raise RuntimeError(f"hub did not become healthy: {self.log()}")



class WorkerProcess(_Process):
    """A media worker (`unidesk media-worker`) serving a hub; ready once the hub lists it."""

    def __init__(self, hub: HubProcess, log_path: Path, name: str | None = None,
                 others: tuple[HubProcess, ...] = (), **env: str) -> None:
        self.hub = hub
        # Hubs the worker turns to when its connection fails (it tries them in turn, `hub` first).
        self.others = others
        self.name = name or f"w{free_port()}"
        self.log_path = log_path
        # Each worker listens for SIP on a port of its own (the default 5060 may be taken).
        self.sip_port = int(env.get("UNIDESK_SIP_PORT") or free_port())
        self.env = {**hub.env, "UNIDESK_SIP_PORT": str(self.sip_port), **env}
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> WorkerProcess:
        self._log = open(self.log_path, "ab")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "realtime.cli", "media-worker", "--hub",
             ",".join(h.url for h in (self.hub, *self.others)), "--name", self.name],
            env=self.env, cwd=ROOT, stdout=self._log, stderr=subprocess.STDOUT,
        )
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"media worker exited with {self.proc.returncode}: {self.log()}")
            if self.name in httpx.get(self.hub.url + "/healthz", timeout=2).json().get("media_workers", []):
                return self
            time.sleep(0.05)  # polling for readiness, not a synchronisation sleep
        raise RuntimeError(f"media worker did not register: {self.log()}")



@pytest.fixture(scope="session")
def hub(backend: Backend, tmp_path_factory: pytest.TempPathFactory) -> Iterator[HubProcess]:
    h = HubProcess(backend, tmp_path_factory.mktemp("hub") / "hub.log").start()
    yield h
    h.stop()


@pytest.fixture
def start_hub(backend: Backend, tmp_path: Path) -> Iterator:
    """Start extra hubs with their own settings; stopped at the end of the test."""
    started: list[HubProcess] = []

    def start(b: Backend | None = None, **env: str) -> HubProcess:
        h = HubProcess(b or backend, tmp_path / f"hub{len(started)}.log", **env).start()
        started.append(h)
        return h

    yield start
    for h in started:
        h.stop()


@pytest.fixture(scope="session")
def media_worker(hub: HubProcess, tmp_path_factory: pytest.TempPathFactory) -> Iterator[WorkerProcess]:
    """A media worker for the session's hub (music on hold: a known 700 Hz tone, see `hold_music_wav`)."""
    folder = tmp_path_factory.mktemp("worker")
    music = folder / "hold.wav"
    write_tone_wav(music, HOLD_MUSIC_HZ, 2.0, 8000)
    w = WorkerProcess(hub, folder / "worker.log", UNIDESK_HOLD_MUSIC=str(music)).start()
    yield w
    w.stop()
