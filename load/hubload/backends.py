"""The backend of a run: a fresh database with the demo tenant, N agents, B supervisors and their tokens."""

from __future__ import annotations

import asyncio
import os
import secrets
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .common import HEARTBEAT, PASSWORD, PG_BASE, REDIS_URL, ROOT, TOKEN_TTL, say


@dataclass
class Prepared:
    kind: str  # embedded | redis
    env: dict[str, str]
    secret: str
    agent_ids: list[int]
    agent_names: list[str]
    agent_tokens: list[str]
    board_tokens: list[str]
    cleanup: list[Any] = field(default_factory=list)
    tenant_id: int = 0


def _pg_admin(sql: str) -> None:
    import asyncpg

    async def run() -> None:
        conn = await asyncpg.connect(PG_BASE + "/postgres", timeout=10)
        try:
            await conn.execute(sql)
        finally:
            await conn.close()

    asyncio.run(run())


def _drop_redis_prefix(prefix: str) -> None:
    import redis

    r = redis.Redis.from_url(REDIS_URL, socket_timeout=10)
    try:
        keys = list(r.scan_iter(match=f"{prefix}:*", count=1000))
        for i in range(0, len(keys), 1000):
            r.delete(*keys[i : i + 1000])
    finally:
        r.close()


def _cli(env: dict[str, str], *args: str) -> None:
    out = subprocess.run(
        [sys.executable, "-m", "realtime.cli", *args],
        env=env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=180,
    )
    if out.returncode != 0:
        raise RuntimeError(f"unidesk {' '.join(args)} failed: {out.stderr.strip()[-2000:]}")


People = list[tuple[int, str]]  # (user id, username)


async def _add_people(async_url: str, agents: int, boards: int) -> tuple[int, People, People]:
    from realtime.auth import hash_password
    from store.db import make_engine, make_sessionmaker
    from store.repos import TenantRepo, tenant_by_slug

    pw = hash_password(PASSWORD)
    engine = make_engine(async_url)
    try:
        async with make_sessionmaker(engine)() as session, session.begin():
            tenant = await tenant_by_slug(session, "demo")
            if tenant is None:
                raise RuntimeError("the demo tenant is missing after seed-demo")
            repo = TenantRepo(session, tenant.id)
            now = time.time()
            a_out, b_out = [], []
            for i in range(1, agents + 1):
                name = f"bench-agent-{i:05d}"
                u = await repo.add_user(name, f"Bench Agent {i}", pw, ["agent"], now)
                a_out.append((u.id, name))
            for i in range(1, boards + 1):
                name = f"bench-supervisor-{i:03d}"
                u = await repo.add_user(name, f"Bench Supervisor {i}", pw, ["supervisor"], now)
                b_out.append((u.id, name))
            return tenant.id, a_out, b_out
    finally:
        await engine.dispose()


def prepare(kind: str, tmp: Path, agents: int, boards: int) -> Prepared:
    from realtime.auth import Principal, TokenService

    tag = secrets.token_hex(4)
    secret = "bench-" + secrets.token_urlsafe(40)
    cleanup: list[Any] = []
    env = {
        **os.environ,
        "UNIDESK_SECRET": secret,
        "UNIDESK_LOG_LEVEL": "WARNING",
        "UNIDESK_LOG_JSON": "1",
        "UNIDESK_ACCESS_TTL": str(TOKEN_TTL),
        "UNIDESK_HEARTBEAT_SECONDS": str(HEARTBEAT),
        "UNIDESK_REDIS_PREFIX": f"udbench-{tag}",
    }
    env.pop("UNIDESK_REDIS_URL", None)
    try:
        if kind == "embedded":
            path = tmp / f"bench-{tag}.db"
            env["UNIDESK_DATABASE_URL"] = f"sqlite:///{path}"
            async_url = f"sqlite+aiosqlite:///{path}"
        else:
            name = f"udbench_{tag}"
            _pg_admin(f'CREATE DATABASE "{name}"')
            cleanup.append(lambda: _pg_admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
            prefix = env["UNIDESK_REDIS_PREFIX"]
            cleanup.append(lambda: _drop_redis_prefix(prefix))
            env["UNIDESK_DATABASE_URL"] = f"{PG_BASE}/{name}"
            env["UNIDESK_REDIS_URL"] = REDIS_URL
            async_url = f"{PG_BASE.replace('postgresql://', 'postgresql+asyncpg://', 1)}/{name}"
        _cli(env, "migrate")
        _cli(env, "seed-demo")
        t = time.monotonic()
        tenant_id, a, b = asyncio.run(_add_people(async_url, agents, boards))
        say(f"  {agents} agents and {boards} supervisors added in {time.monotonic() - t:.1f}s")
        tokens = TokenService(secret, TOKEN_TTL, TOKEN_TTL)

        def mint(uid: int, name: str, role: str) -> str:
            p = Principal(uid, tenant_id, "demo", name, frozenset({role}), 0, "access")
            return tokens.issue(p, "access", TOKEN_TTL)

        return Prepared(
            kind,
            env,
            secret,
            [uid for uid, _ in a],
            [name for _, name in a],
            [mint(uid, name, "agent") for uid, name in a],
            [mint(uid, name, "supervisor") for uid, name in b],
            cleanup,
            tenant_id,
        )
    except BaseException:
        run_cleanup(cleanup)
        raise


def run_cleanup(fns: list[Any]) -> None:
    for fn in reversed(fns):
        try:
            fn()
        except Exception as exc:  # keep cleaning the rest
            print(f"bench: cleanup failed: {exc}", file=sys.stderr)
