"""The history writer: rows reach the store in batches, and a failing store loses none of them."""

import asyncio

import pytest
from sqlalchemy import text

from realtime.auth import hash_password
from realtime.history import HistoryRow, HistoryWriter
from store.db import make_engine, make_sessionmaker
from store.migrate import upgrade
from store.repos import TenantRepo, tenant_by_slug
from store.seed import seed_demo
from tests.conftest import drop_backend, make_backend


@pytest.fixture
async def store(tmp_path):
    b = make_backend(tmp_path)
    url = b.database_url.replace("sqlite://", "sqlite+aiosqlite://").replace("postgresql://", "postgresql+asyncpg://")
    upgrade(url)
    engine = make_engine(url)
    sm = make_sessionmaker(engine)
    async with sm() as s, s.begin():
        await seed_demo(s, hash_password)
    async with sm() as s:
        tenant = await tenant_by_slug(s, "demo")
        agent = next(u for u in await TenantRepo(s, tenant.id).users() if u.username == "agent1")
    yield engine, sm, tenant.id, agent.id
    await engine.dispose()
    drop_backend(b)


def row(tenant_id: int, user_id: int, i: int) -> HistoryRow:
    return HistoryRow(
        tenant_id=tenant_id, user_id=user_id, from_state="available", to_state="paused", reason="break",
        at=1000.0 + i, by_user_id=None, source="system", contact_id=None,
    )


async def count(sm, tenant_id: int) -> int:
    async with sm() as s:
        return await TenantRepo(s, tenant_id).history_count()


async def test_rows_are_written_in_batches_in_order(store):
    _, sm, tid, uid = store
    w = HistoryWriter(sm, batch=7)
    for i in range(20):
        w.add(row(tid, uid, i))
    assert await count(sm, tid) == 0 and w.pending == 20
    await w.flush()
    assert w.pending == 0 and await count(sm, tid) == 20
    async with sm() as s:
        rows = await TenantRepo(s, tid).history(uid, limit=100)
    assert sorted(r.at for r in rows) == [1000.0 + i for i in range(20)]


async def test_the_background_task_writes_without_a_flush(store):
    _, sm, tid, uid = store
    w = HistoryWriter(sm, interval=0.02)
    w.start()
    try:
        w.add(row(tid, uid, 0))
        # Poll the store (bounded): the writer's own interval is what is under test.
        for _ in range(200):
            if await count(sm, tid) == 1:
                break
            await asyncio.sleep(0.02)
        assert await count(sm, tid) == 1
    finally:
        await w.close()


async def test_a_failing_store_keeps_the_rows_until_it_takes_them(store):
    engine, sm, tid, uid = store
    w = HistoryWriter(sm)
    async with engine.begin() as conn:
        await conn.execute(text("ALTER TABLE agent_state_history RENAME TO agent_state_history_away"))
    for i in range(3):
        w.add(row(tid, uid, i))
    with pytest.raises(Exception):
        await w.flush()
    assert w.pending == 3
    async with engine.begin() as conn:
        await conn.execute(text("ALTER TABLE agent_state_history_away RENAME TO agent_state_history"))
    await w.close()  # a clean shutdown flushes
    assert w.pending == 0 and await count(sm, tid) == 3


async def test_beyond_the_limit_the_oldest_rows_are_dropped_and_counted(store):
    _, sm, tid, uid = store
    w = HistoryWriter(sm, limit=5)
    for i in range(8):
        w.add(row(tid, uid, i))
    assert w.pending == 5 and w.dropped == 3
    await w.flush()
    async with sm() as s:
        rows = await TenantRepo(s, tid).history(uid, limit=100)
    assert sorted(r.at for r in rows) == [1003.0 + i for i in range(5)]
