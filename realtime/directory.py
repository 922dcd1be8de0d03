"""Per-tenant reference data the hub needs on every event: who the agents are,
their queues, the pause reasons. Loaded from the store once and kept; an admin
change calls `invalidate`."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from realtime.agent_state import AgentState
from realtime.protocol import AgentView, PauseReason, QueueInfo
from store.repos import TenantRepo, tenant_by_id


@dataclass(frozen=True, slots=True)
class Person:
    id: int
    username: str
    display_name: str
    roles: frozenset[str]
    active: bool


@dataclass(slots=True)
class TenantDirectory:
    tenant_id: int
    slug: str
    name: str
    # Every user of the tenant by id.
    users: dict[int, Person] = field(default_factory=dict)
    # Queue names per agent.
    agent_queues: dict[int, list[str]] = field(default_factory=dict)
    pause_reasons: list[PauseReason] = field(default_factory=list)
    queues: list[QueueInfo] = field(default_factory=list)
    wrapup_codes: list[PauseReason] = field(default_factory=list)

    @property
    def agent_ids(self) -> list[int]:
        return sorted(uid for uid, p in self.users.items() if "agent" in p.roles and p.active)

    def is_agent(self, user_id: int) -> bool:
        p = self.users.get(user_id)
        return p is not None and p.active and "agent" in p.roles

    def pause_reason_codes(self) -> set[str]:
        return {r.code for r in self.pause_reasons}

    def view(self, user_id: int, state: AgentState, changed_by: str | None) -> AgentView:
        p = self.users[user_id]
        return AgentView(
            id=user_id,
            username=p.username,
            display_name=p.display_name,
            state=state.state.value,
            since=state.since,
            reason=state.reason,
            wrap_up_until=state.wrap_up_until,
            queues=self.agent_queues.get(user_id, []),
            changed_by=changed_by,
            contact_id=state.contact_id,
            version=state.version,
        )


class Directory:
    def __init__(self, sessionmaker: async_sessionmaker[AsyncSession]) -> None:
        self._sessionmaker = sessionmaker
        self._cache: dict[int, TenantDirectory] = {}
        self._locks: dict[int, asyncio.Lock] = {}

    def invalidate(self, tenant_id: int) -> None:
        self._cache.pop(tenant_id, None)

    async def get(self, tenant_id: int) -> TenantDirectory | None:
        cached = self._cache.get(tenant_id)
        if cached is not None:
            return cached
        lock = self._locks.setdefault(tenant_id, asyncio.Lock())
        async with lock:
            cached = self._cache.get(tenant_id)
            if cached is None:
                cached = await self._load(tenant_id)
                if cached is not None:
                    self._cache[tenant_id] = cached
            return cached

    async def _load(self, tenant_id: int) -> TenantDirectory | None:
        async with self._sessionmaker() as session:
            tenant = await tenant_by_id(session, tenant_id)
            if tenant is None:
                return None
            repo = TenantRepo(session, tenant_id)
            d = TenantDirectory(tenant_id=tenant.id, slug=tenant.slug, name=tenant.name)
            for u in await repo.users():
                d.users[u.id] = Person(u.id, u.username, u.display_name, frozenset(u.roles), u.active)
            for m in await repo.memberships():
                d.agent_queues.setdefault(m.user_id, []).append(m.queue)
            d.pause_reasons = [PauseReason(code=r.code, label=r.label) for r in await repo.pause_reasons()]
            d.wrapup_codes = [PauseReason(code=c.code, label=c.label) for c in await repo.wrapup_codes()]
            d.queues = [QueueInfo(name=q.name, label=q.label) for q in await repo.queues()]
            return d
