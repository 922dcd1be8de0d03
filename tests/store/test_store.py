"""The store on the backend under test: migrations match the models, repositories are tenant-scoped."""

import time

import pytest

from realtime.auth import hash_password
from store.db import make_engine, make_sessionmaker
from store.migrate import check, upgrade
from store.repos import TenantRepo, create_tenant, tenant_by_slug
from store.seed import seed_demo
from tests.conftest import drop_backend, make_backend


@pytest.fixture
def db(tmp_path):
    b = make_backend(tmp_path)
    url = b.database_url.replace("sqlite://", "sqlite+aiosqlite://").replace("postgresql://", "postgresql+asyncpg://")
    upgrade(url)
    yield url
    drop_backend(b)


async def test_migrations_build_exactly_the_models(db):
    check(db)  # raises when a model change has no migration


async def test_demo_seed_is_complete_and_idempotent(db):
    engine = make_engine(db)
    sm = make_sessionmaker(engine)
    async with sm() as s, s.begin():
        assert await seed_demo(s, hash_password) is True
    async with sm() as s, s.begin():
        assert await seed_demo(s, hash_password) is False
    async with sm() as s:
        tenant = await tenant_by_slug(s, "demo")
        repo = TenantRepo(s, tenant.id)
        users = {u.username: u for u in await repo.users()}
        assert set(users) == {"admin", "supervisor", "trainer", *(f"agent{i}" for i in range(1, 6))}
        assert users["supervisor"].roles == ["supervisor"] and "demo" not in users["agent1"].password_hash
        assert [q.name for q in await repo.queues()] == ["sales", "support"]
        assert {r.code for r in await repo.pause_reasons()} >= {"lunch", "break", "training", "no-answer"}
        assert len(await repo.wrapup_codes()) >= 3
        skills = await repo.agent_skills()
        assert skills[users["agent2"].id] == {"english": 90, "german": 70}
    await engine.dispose()


async def test_repositories_never_cross_tenants(db):
    engine = make_engine(db)
    sm = make_sessionmaker(engine)
    now = time.time()
    async with sm() as s, s.begin():
        a = await create_tenant(s, "a", "A", now)
        b = await create_tenant(s, "b", "B", now)
        ua = await TenantRepo(s, a.id).add_user("x", "X", "h", ["agent"], now)
        await TenantRepo(s, a.id).record_transition(ua.id, "logged-out", "available", None, now, ua.id, "agent")
        await TenantRepo(s, a.id).add_call_record("c-1", now, caller="+4930123")
    async with sm() as s:
        rb = TenantRepo(s, b.id)
        assert await rb.user_by_id(ua.id) is None
        assert await rb.user_by_username("x") is None
        assert await rb.history(ua.id) == [] and await rb.history_count() == 0
        assert await rb.call_record("c-1") is None
        ra = TenantRepo(s, a.id)
        assert (await ra.user_by_id(ua.id)).username == "x"
        assert await ra.history_count() == 1
        assert (await ra.call_record("c-1")).caller == "+4930123"
    await engine.dispose()


async def test_unknown_role_is_refused(db):
    engine = make_engine(db)
    async with make_sessionmaker(engine)() as s, s.begin():
        t = await create_tenant(s, "r", "R", time.time())
        with pytest.raises(ValueError, match="unknown role 'boss'"):
            await TenantRepo(s, t.id).add_user("u", "U", "h", ["boss"], time.time())
    await engine.dispose()
