"""The demo tenant: users admin, supervisor, trainer, agent1..agent5 (password
"demo"), queues support and sales, pause reasons and wrap-up codes. Idempotent.

Each agent may also register a desk phone: SIP user `agentN` (`<slug>-agentN` in
another tenant), password "demo", realm the tenant's slug (docs/sip.md)."""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable

from sqlalchemy.ext.asyncio import AsyncSession

from store.repos import TenantRepo, create_tenant, sip_route, sip_user_taken, tenant_by_slug

DEMO_PASSWORD = "demo"
DEMO_USERS = [
    ("admin", "Ada Admin", ["admin"]),
    ("supervisor", "Sam Supervisor", ["supervisor"]),
    ("trainer", "Tina Trainer", ["trainer"]),
    *[(f"agent{i}", f"Agent {i}", ["agent"]) for i in range(1, 6)],
]
PAUSE_REASONS = [("lunch", "Lunch", False), ("break", "Break", False), ("training", "Training", True),
                 ("no-answer", "No answer", False)]
WRAPUP_CODES = [("resolved", "Resolved"), ("callback", "Callback needed"), ("escalated", "Escalated"),
                ("sale", "Sale"), ("no-sale", "No sale")]


# Calls from this machine reach the demo's queues (any SIP phone on it can call in).
LOOPBACK = ["127.0.0.0/8", "::1/128"]


async def seed_demo(session: AsyncSession, hash_password: Callable[[str], str], slug: str = "demo",
                    name: str = "Demo Contact Center") -> bool:
    """Create the demo tenant unless it exists. Returns whether it was created."""
    existing = await tenant_by_slug(session, slug)
    if existing is not None:
        await _demo_routes(session, existing.id, slug)  # installations seeded before calls came by SIP
        await _demo_desk_phones(session, existing.id, slug)  # ... or before desk phones
        return False
    now = time.time()
    tenant = await create_tenant(session, slug, name, now)
    # Callers' national numbers are read as German ones (customer numbers, the screen pop).
    tenant.settings = {"customers.region": "DE"}
    repo = TenantRepo(session, tenant.id)
    pw = hash_password(DEMO_PASSWORD)
    users = {u: await repo.add_user(u, dn, pw, roles, now) for u, dn, roles in DEMO_USERS}
    support = await repo.add_queue("support", "Support", strategy="longest-idle", wrap_up_seconds=30,
                                   service_level_seconds=20)
    sales = await repo.add_queue("sales", "Sales", strategy="round-robin", wrap_up_seconds=20,
                                 service_level_seconds=30)
    english = await repo.add_skill("english")
    german = await repo.add_skill("german")
    for i in range(1, 6):
        agent = users[f"agent{i}"]
        await repo.add_membership(support.id, agent.id, penalty=0, level=80 - 5 * i)
        if i >= 3:
            await repo.add_membership(sales.id, agent.id, penalty=i - 3, level=60)
        await repo.set_agent_skill(agent.id, english.id, 90)
        if i % 2 == 0:
            await repo.set_agent_skill(agent.id, german.id, 70)
    for code, label, productive in PAUSE_REASONS:
        await repo.add_pause_reason(code, label, productive)
    for code, label in WRAPUP_CODES:
        await repo.add_wrapup_code(code, label, sales.id if code in ("sale", "no-sale") else None)
    await _demo_routes(session, tenant.id, slug)
    await _demo_desk_phones(session, tenant.id, slug)
    return True


def desk_phone_ha1(sip_user: str, realm: str, password: str) -> str:
    """HA1 of RFC 2617 §3.2.2.2, what the store keeps for a desk phone (the realm is the tenant's slug)."""
    return hashlib.md5(f"{sip_user}:{realm}:{password}".encode()).hexdigest()


async def _demo_desk_phones(session: AsyncSession, tenant_id: int, slug: str) -> None:
    """SIP user agentN (or <slug>-agentN), password "demo", for every demo agent without one."""
    for user in await TenantRepo(session, tenant_id).users():
        if "agent" not in user.roles or user.sip_user:
            continue
        name = user.username if slug == "demo" else f"{slug}-{user.username}"
        if await sip_user_taken(session, name):
            continue
        user.sip_user = name
        user.sip_ha1 = desk_phone_ha1(name, slug, DEMO_PASSWORD)
    await session.flush()


# sip:menu@…: a welcome menu (1: support, 2: sales), open around the clock (empty hours).
DEMO_MENU = {"prompt": "welcome-menu", "choices": {"1": "support", "2": "sales"}, "timeout_seconds": 8,
             "retries": 2, "default": "support"}


async def _demo_routes(session: AsyncSession, tenant_id: int, slug: str) -> None:
    """sip:support@…, sip:sales@… and sip:menu@… for the demo tenant ("<slug>-support" for another one)."""
    repo = TenantRepo(session, tenant_id)
    have = {r.address for r in await repo.sip_routes()}
    for q in await repo.queues():
        address = q.name if slug == "demo" else f"{slug}-{q.name}"
        if address not in have and await sip_route(session, address) is None:
            await repo.add_sip_route(address, q.id, LOOPBACK)
    menu = "menu" if slug == "demo" else f"{slug}-menu"
    if menu not in have and await sip_route(session, menu) is None:
        await repo.add_sip_route(menu, None, LOOPBACK, hours={}, ivr=DEMO_MENU)
