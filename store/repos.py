"""Repositories. Every query of tenant data goes through `TenantRepo`, which is
bound to one tenant at construction, so no call can forget the scope."""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from store.models import (
    ROLES,
    AgentSkill,
    AgentStateHistory,
    CallRecord,
    ContactOffer,
    ContactSegment,
    PauseReason,
    Queue,
    Recording,
    QueueMembership,
    SipRoute,
    SipTrunk,
    Skill,
    Tenant,
    User,
    Wallboard,
    WrapUpCode,
)


async def tenant_by_slug(session: AsyncSession, slug: str) -> Tenant | None:
    return (await session.execute(select(Tenant).where(Tenant.slug == slug))).scalar_one_or_none()


async def tenant_by_id(session: AsyncSession, tenant_id: int) -> Tenant | None:
    return await session.get(Tenant, tenant_id)


async def all_tenants(session: AsyncSession) -> Sequence[Tenant]:
    return (await session.execute(select(Tenant).order_by(Tenant.id))).scalars().all()


async def sip_route(session: AsyncSession, address: str) -> SipRoute | None:
    """The route of a called address (any tenant: the address picks the tenant)."""
    q = select(SipRoute).where(SipRoute.address == address, SipRoute.enabled.is_(True))
    return (await session.execute(q)).scalar_one_or_none()


async def enabled_sip_trunks(session: AsyncSession) -> Sequence[SipTrunk]:
    """Every enabled trunk of every tenant (the media workers register and dial through them)."""
    q = select(SipTrunk).where(SipTrunk.enabled.is_(True)).order_by(SipTrunk.tenant_id, SipTrunk.name)
    return (await session.execute(q)).scalars().all()


TRUNK_TRANSPORTS = ("udp", "tcp", "tls")


def check_trunk(name: str, host: str, transport: str, expires: int) -> None:
    """Raise ValueError naming the field when a trunk's settings cannot be used."""
    if not re.fullmatch(r"[A-Za-z0-9_.-]{1,64}", name):
        raise ValueError(f"trunk name {name!r}: use 1-64 letters, digits, '_', '.' or '-'")
    if transport not in TRUNK_TRANSPORTS:
        raise ValueError(f"trunk {name}: transport {transport!r} is not one of {', '.join(TRUNK_TRANSPORTS)}")
    hostname, _, port = host.rpartition(":") if ":" in host else (host, "", "")
    if not re.fullmatch(r"[A-Za-z0-9_.-]{1,253}", hostname) or (port and not (port.isdigit() and 0 < int(port) < 65536)):
        raise ValueError(f"trunk {name}: host {host!r} is not host or host:port")
    if not 60 <= expires <= 86400:
        raise ValueError(f"trunk {name}: expires {expires} is not 60-86400 seconds")


@dataclass(frozen=True, slots=True)
class DeskPhoneLogin:
    """A desk phone's credentials, with the user and tenant they belong to."""

    tenant_id: int
    user_id: int
    sip_user: str
    realm: str
    ha1: str
    phone: str


async def desk_phone_logins(session: AsyncSession, sip_user: str | None = None) -> list[DeskPhoneLogin]:
    """Every active user's desk-phone credentials (any tenant: the SIP user name picks the tenant),
    or those of one SIP user name."""
    q = (
        select(User, Tenant.slug)
        .join(Tenant, Tenant.id == User.tenant_id)
        .where(User.sip_user.is_not(None), User.sip_ha1.is_not(None), User.active.is_(True))
        .order_by(User.sip_user)
    )
    if sip_user is not None:
        q = q.where(User.sip_user == sip_user)
    return [
        DeskPhoneLogin(u.tenant_id, u.id, u.sip_user, slug, u.sip_ha1, u.phone)  # type: ignore[arg-type]
        for u, slug in (await session.execute(q)).all()
    ]


async def sip_user_taken(session: AsyncSession, sip_user: str, but: int | None = None) -> bool:
    q = select(User.id).where(User.sip_user == sip_user)
    if but is not None:
        q = q.where(User.id != but)
    return (await session.execute(q)).first() is not None


async def create_tenant(session: AsyncSession, slug: str, name: str, now: float) -> Tenant:
    tenant = Tenant(slug=slug, name=name, settings={}, created_at=now)
    session.add(tenant)
    await session.flush()
    return tenant


@dataclass(frozen=True, slots=True)
class Membership:
    user_id: int
    queue: str
    penalty: int
    level: int


class TenantRepo:
    """Queries of one tenant's data."""

    def __init__(self, session: AsyncSession, tenant_id: int) -> None:
        assert tenant_id > 0, "a tenant id is positive"
        self.session = session
        self.tenant_id = tenant_id

    # -- users
    async def user_by_username(self, username: str) -> User | None:
        q = select(User).where(User.tenant_id == self.tenant_id, User.username == username)
        return (await self.session.execute(q)).scalar_one_or_none()

    async def user_by_id(self, user_id: int) -> User | None:
        q = select(User).where(User.tenant_id == self.tenant_id, User.id == user_id)
        return (await self.session.execute(q)).scalar_one_or_none()

    async def users(self) -> Sequence[User]:
        q = select(User).where(User.tenant_id == self.tenant_id).order_by(User.username)
        return (await self.session.execute(q)).scalars().all()

    async def add_user(
        self,
        username: str,
        display_name: str,
        password_hash: str,
        roles: Iterable[str],
        now: float,
    ) -> User:
        roles = sorted(set(roles))
        bad = [r for r in roles if r not in ROLES]
        if bad:
            raise ValueError(f"unknown role {bad[0]!r}; roles are {', '.join(ROLES)}")
        user = User(
            tenant_id=self.tenant_id,
            username=username,
            display_name=display_name,
            password_hash=password_hash,
            roles=roles,
            active=True,
            created_at=now,
        )
        self.session.add(user)
        await self.session.flush()
        return user

    # -- queues, skills, memberships
    async def queues(self) -> Sequence[Queue]:
        q = select(Queue).where(Queue.tenant_id == self.tenant_id).order_by(Queue.name)
        return (await self.session.execute(q)).scalars().all()

    async def sip_routes(self) -> Sequence[SipRoute]:
        q = select(SipRoute).where(SipRoute.tenant_id == self.tenant_id).order_by(SipRoute.address)
        return (await self.session.execute(q)).scalars().all()

    async def add_sip_route(self, address: str, queue_id: int | None, allow_from: list[str],
                            **fields: object) -> SipRoute:
        """`fields`: hours, closed_prompt, ivr (a route with a menu has no queue)."""
        fields.setdefault("hours", {})
        route = SipRoute(tenant_id=self.tenant_id, address=address, queue_id=queue_id, allow_from=allow_from,
                         enabled=True, **fields)
        self.session.add(route)
        await self.session.flush()
        return route

    async def sip_trunks(self) -> Sequence[SipTrunk]:
        q = select(SipTrunk).where(SipTrunk.tenant_id == self.tenant_id).order_by(SipTrunk.name)
        return (await self.session.execute(q)).scalars().all()

    async def add_sip_trunk(self, name: str, host: str, username: str, password: str, *, transport: str = "udp",
                            realm: str = "*", register: bool = True, expires: int = 300,
                            caller_id: str | None = None, enabled: bool = True) -> SipTrunk:
        """A trunk of this tenant; ValueError names a setting that cannot be used."""
        check_trunk(name, host, transport, expires)
        trunk = SipTrunk(tenant_id=self.tenant_id, name=name, host=host, transport=transport, username=username,
                         password=password, realm=realm or "*", register=register, expires=expires,
                         caller_id=caller_id, enabled=enabled)
        self.session.add(trunk)
        await self.session.flush()
        return trunk

    async def add_queue(self, name: str, label: str, **fields: object) -> Queue:
        queue = Queue(tenant_id=self.tenant_id, name=name, label=label, config={}, **fields)
        self.session.add(queue)
        await self.session.flush()
        return queue

    async def add_skill(self, name: str) -> Skill:
        skill = Skill(tenant_id=self.tenant_id, name=name)
        self.session.add(skill)
        await self.session.flush()
        return skill

    async def set_agent_skill(self, user_id: int, skill_id: int, level: int) -> None:
        if not 0 <= level <= 100:
            raise ValueError(f"skill level {level} is outside 0..100")
        self.session.add(
            AgentSkill(tenant_id=self.tenant_id, user_id=user_id, skill_id=skill_id, level=level)
        )
        await self.session.flush()

    async def agent_skills(self) -> dict[int, dict[str, int]]:
        q = (
            select(AgentSkill.user_id, Skill.name, AgentSkill.level)
            .join(Skill, Skill.id == AgentSkill.skill_id)
            .where(AgentSkill.tenant_id == self.tenant_id)
        )
        out: dict[int, dict[str, int]] = {}
        for user_id, name, level in (await self.session.execute(q)).all():
            out.setdefault(user_id, {})[name] = level
        return out

    async def add_membership(self, queue_id: int, user_id: int, penalty: int = 0, level: int = 50) -> None:
        self.session.add(
            QueueMembership(
                tenant_id=self.tenant_id, queue_id=queue_id, user_id=user_id, penalty=penalty, level=level
            )
        )
        await self.session.flush()

    async def memberships(self) -> list[Membership]:
        q = (
            select(QueueMembership.user_id, Queue.name, QueueMembership.penalty, QueueMembership.level)
            .join(Queue, Queue.id == QueueMembership.queue_id)
            .where(QueueMembership.tenant_id == self.tenant_id)
            .order_by(Queue.name)
        )
        return [Membership(*row) for row in (await self.session.execute(q)).all()]

    # -- reasons and codes
    async def pause_reasons(self) -> Sequence[PauseReason]:
        q = select(PauseReason).where(PauseReason.tenant_id == self.tenant_id).order_by(PauseReason.id)
        return (await self.session.execute(q)).scalars().all()

    async def add_pause_reason(self, code: str, label: str, productive: bool = False) -> PauseReason:
        row = PauseReason(tenant_id=self.tenant_id, code=code, label=label, productive=productive)
        self.session.add(row)
        await self.session.flush()
        return row

    async def wrapup_codes(self) -> Sequence[WrapUpCode]:
        q = select(WrapUpCode).where(WrapUpCode.tenant_id == self.tenant_id).order_by(WrapUpCode.id)
        return (await self.session.execute(q)).scalars().all()

    async def add_wrapup_code(self, code: str, label: str, queue_id: int | None = None) -> WrapUpCode:
        row = WrapUpCode(tenant_id=self.tenant_id, code=code, label=label, queue_id=queue_id)
        self.session.add(row)
        await self.session.flush()
        return row

    # -- agent-state history
    async def record_transition(
        self,
        user_id: int,
        from_state: str,
        to_state: str,
        reason: str | None,
        at: float,
        by_user_id: int | None,
        source: str,
        contact_id: str | None = None,
    ) -> None:
        self.session.add(
            AgentStateHistory(
                tenant_id=self.tenant_id,
                user_id=user_id,
                from_state=from_state,
                to_state=to_state,
                reason=reason,
                at=at,
                by_user_id=by_user_id,
                source=source,
                contact_id=contact_id,
            )
        )
        await self.session.flush()

    async def history(self, user_id: int | None = None, limit: int = 100) -> Sequence[AgentStateHistory]:
        q = select(AgentStateHistory).where(AgentStateHistory.tenant_id == self.tenant_id)
        if user_id is not None:
            q = q.where(AgentStateHistory.user_id == user_id)
        q = q.order_by(AgentStateHistory.at.desc(), AgentStateHistory.id.desc()).limit(limit)
        return (await self.session.execute(q)).scalars().all()

    async def history_count(self) -> int:
        q = select(func.count()).select_from(AgentStateHistory).where(
            AgentStateHistory.tenant_id == self.tenant_id
        )
        return int((await self.session.execute(q)).scalar_one())

    # -- call records
    async def add_call_record(self, contact_id: str, created_at: float, **fields: object) -> CallRecord:
        row = CallRecord(tenant_id=self.tenant_id, contact_id=contact_id, created_at=created_at, data={}, **fields)
        self.session.add(row)
        await self.session.flush()
        return row

    async def open_call_records(self) -> Sequence[CallRecord]:
        """Records of contacts that have not ended (no outcome yet)."""
        q = select(CallRecord).where(CallRecord.tenant_id == self.tenant_id, CallRecord.outcome.is_(None))
        return (await self.session.execute(q)).scalars().all()

    async def call_record(self, contact_id: str) -> CallRecord | None:
        q = select(CallRecord).where(CallRecord.tenant_id == self.tenant_id, CallRecord.contact_id == contact_id)
        return (await self.session.execute(q)).scalar_one_or_none()

    # -- what the reports count: queue segments and offers of finished contacts
    async def add_contact_segments(self, rows: Iterable[dict[str, object]]) -> None:
        """`rows`: ContactSegment fields without tenant_id."""
        self.session.add_all(ContactSegment(tenant_id=self.tenant_id, **r) for r in rows)  # type: ignore[arg-type]
        await self.session.flush()

    async def add_contact_offers(self, rows: Iterable[dict[str, object]]) -> None:
        """`rows`: ContactOffer fields without tenant_id."""
        self.session.add_all(ContactOffer(tenant_id=self.tenant_id, **r) for r in rows)  # type: ignore[arg-type]
        await self.session.flush()

    # -- wallboards
    async def add_wallboard(self, name: str, queues: list[str], thresholds: dict[str, object],
                            created_by: int | None, now: float, expires_at: float) -> Wallboard:
        row = Wallboard(tenant_id=self.tenant_id, name=name, queues=queues, thresholds=thresholds,
                        created_by=created_by, created_at=now, expires_at=expires_at)
        self.session.add(row)
        await self.session.flush()
        return row

    # -- recordings
    async def add_recording(self, recording_id: str, contact_id: str, queue: str, agent_id: int | None,
                            started_at: float) -> Recording:
        record = await self.call_record(contact_id)
        row = Recording(
            id=recording_id, tenant_id=self.tenant_id, contact_id=contact_id, queue=queue, agent_id=agent_id,
            started_at=started_at, call_record_id=record.id if record is not None else None,
        )
        self.session.add(row)
        await self.session.flush()
        return row

    async def wallboard(self, wallboard_id: int) -> Wallboard | None:
        q = select(Wallboard).where(Wallboard.tenant_id == self.tenant_id, Wallboard.id == wallboard_id)
        return (await self.session.execute(q)).scalar_one_or_none()

    async def wallboards(self) -> Sequence[Wallboard]:
        q = select(Wallboard).where(Wallboard.tenant_id == self.tenant_id).order_by(Wallboard.id)
        return (await self.session.execute(q)).scalars().all()

    async def revoked_wallboards(self, ids: Iterable[int]) -> set[int]:
        """Which of these wallboards were revoked (or no longer exist in this tenant)."""
        wanted = set(ids)
        q = select(Wallboard.id).where(
            Wallboard.tenant_id == self.tenant_id, Wallboard.id.in_(wanted), Wallboard.revoked_at.is_(None)
        )
        return wanted - set((await self.session.execute(q)).scalars().all())

    async def recording(self, recording_id: str) -> Recording | None:
        q = select(Recording).where(Recording.tenant_id == self.tenant_id, Recording.id == recording_id)
        return (await self.session.execute(q)).scalar_one_or_none()

    async def recordings(self, contact_id: str | None = None, limit: int = 100) -> Sequence[Recording]:
        q = select(Recording).where(Recording.tenant_id == self.tenant_id)
        if contact_id is not None:
            q = q.where(Recording.contact_id == contact_id)
        q = q.order_by(Recording.started_at.desc(), Recording.id).limit(limit)
        return (await self.session.execute(q)).scalars().all()

    async def recordings_before(self, cutoff: float, limit: int = 500) -> Sequence[Recording]:
        """Recordings not deleted yet that ended (or, never told the end, started) before `cutoff`."""
        when = func.coalesce(Recording.ended_at, Recording.started_at)
        q = (
            select(Recording)
            .where(Recording.tenant_id == self.tenant_id, Recording.deleted_at.is_(None), when < cutoff)
            .order_by(when)
            .limit(limit)
        )
        return (await self.session.execute(q)).scalars().all()

    async def callers(self, contact_ids: Iterable[str]) -> dict[str, str | None]:
        """The caller of each of these contacts (from their call records)."""
        ids = list(set(contact_ids))
        if not ids:
            return {}
        q = select(CallRecord.contact_id, CallRecord.caller).where(
            CallRecord.tenant_id == self.tenant_id, CallRecord.contact_id.in_(ids)
        )
        return {cid: caller for cid, caller in (await self.session.execute(q)).all()}
