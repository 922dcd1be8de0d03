"""The customer repository on the backend under test: tenant scope, search, edits recorded, links."""

import time

import pytest

from store.customers import CustomerRepo, normalise
from store.db import make_engine, make_sessionmaker
from store.migrate import upgrade
from store.repos import TenantRepo, create_tenant
from tests.conftest import drop_backend, make_backend


@pytest.fixture
async def sm(tmp_path):
    b = make_backend(tmp_path)
    url = b.database_url.replace("sqlite://", "sqlite+aiosqlite://").replace("postgresql://", "postgresql+asyncpg://")
    upgrade(url)
    engine = make_engine(url)
    yield make_sessionmaker(engine)
    await engine.dispose()
    drop_backend(b)


async def test_customers_never_cross_tenants_and_edits_are_recorded(sm):
    now = time.time()
    async with sm() as s, s.begin():
        a = await create_tenant(s, "a", "A", now)
        b = await create_tenant(s, "b", "B", now)
        ua = await TenantRepo(s, a.id).add_user("x", "X", "h", ["agent"], now)
        ra, rb = CustomerRepo(s, a.id), CustomerRepo(s, b.id)
        number = normalise("030 1234567", "DE")
        ca = await ra.create(ua.id, numbers=[(number, "work")], first_name="Erika", last_name="Muster", now=now)
        cb = await rb.create(None, numbers=[(number, "")], first_name="Other", last_name="Tenant", now=now)
        await TenantRepo(s, a.id).add_call_record("c-a", now, caller=number)
        await TenantRepo(s, b.id).add_call_record("c-b", now, caller=number)
    async with sm() as s, s.begin():
        ra, rb = CustomerRepo(s, a.id), CustomerRepo(s, b.id)
        # The same number in two tenants: each sees only its own customer.
        assert await ra.ids_by_number("+49301234567") == [ca.id]
        assert await rb.ids_by_number("+49301234567") == [cb.id]
        assert await ra.get(cb.id) is None and await rb.get(ca.id) is None
        assert [c.id for c in await ra.search("muster")] == [ca.id] and await rb.search("muster") == []
        assert [c.id for c in await ra.search(number="+49301234567")] == [ca.id]
        # Linking across tenants finds nothing: not the other's contact, not the other's customer.
        assert await ra.link_contact("c-b", ca.id) is None
        assert await ra.link_contact("c-a", cb.id) is None
        assert (await ra.link_contact("c-a", ca.id)).customer_id == ca.id
        [m] = await ra.matches([ca.id])
        assert m.numbers == ["+49301234567"] and [h["contact_id"] for h in m.last_contacts] == ["c-a"]
        c = await ra.get(ca.id)
        changed = await ra.update(c, ua.id, {"last_name": "Mustermann", "company": "", "fields": {"Tier": "gold"},
                                             "numbers": [("+49301234567", "work"), ("+491511234567", "mobile")]})
        assert sorted(changed) == ["fields.Tier", "last_name", "numbers"]
    async with sm() as s:
        ra = CustomerRepo(s, a.id)
        log = {ch["field"]: ch for ch in await ra.changes(ca.id)}
        assert (log["last_name"]["old"], log["last_name"]["new"], log["last_name"]["by"]) == ("Muster", "Mustermann", "x")
        assert log["numbers"]["new"] == "+49301234567, +491511234567" and log["created"]["new"] == "Erika Muster"
        assert await CustomerRepo(s, b.id).changes(ca.id) == []
        assert await CustomerRepo(s, b.id).history(ca.id) == []
        assert await ra.ids_by_number("+491511234567") == [ca.id]
