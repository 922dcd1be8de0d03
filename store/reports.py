"""Historical reports: per interval and per queue or agent, computed in SQL from what the
contact center writes (contact segments and offers, the agent-state history).

One code path for SQLite and PostgreSQL: SQLAlchemy Core, epoch-second doubles, bucket
keys by `floor((t + offset) / width) * width` (store/report_time.py). The SQL returns raw
sums per bucket; `QueueFigures` / `AgentFigures` add them up and derive the ratios, so a
total over the range is the same arithmetic as one bucket. docs/reports.md defines each figure.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, fields
from typing import Any

from sqlalchemy import and_, case, func, literal_column, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from store.models import AgentStateHistory, ContactOffer, ContactSegment, QueueMembership, Queue, User
from store.report_time import Zone, greatest, least, num

READY_STATES = ("available", "ringing")
BUSY_STATES = ("on-call", "wrap-up")


def _ratio(a: float, b: float) -> float | None:
    return a / b if b else None


@dataclass(slots=True)
class StateTimes:
    """Seconds an agent (or a queue's members together) spent in each state."""

    logged_in_seconds: float = 0.0
    # available or ringing
    ready_seconds: float = 0.0
    # on a call or in wrap-up
    busy_seconds: float = 0.0
    paused_seconds: float = 0.0
    paused_by_reason: dict[str, float] = field(default_factory=dict)

    def add_span(self, state: str, reason: str | None, seconds: float) -> None:
        if state == "logged-out":
            return
        self.logged_in_seconds += seconds
        if state in READY_STATES:
            self.ready_seconds += seconds
        elif state in BUSY_STATES:
            self.busy_seconds += seconds
        elif state == "paused":
            self.paused_seconds += seconds
            key = reason or "unknown"
            self.paused_by_reason[key] = self.paused_by_reason.get(key, 0.0) + seconds

    def add(self, other: StateTimes) -> None:
        self.logged_in_seconds += other.logged_in_seconds
        self.ready_seconds += other.ready_seconds
        self.busy_seconds += other.busy_seconds
        self.paused_seconds += other.paused_seconds
        for k, v in other.paused_by_reason.items():
            self.paused_by_reason[k] = self.paused_by_reason.get(k, 0.0) + v

    @property
    def occupancy(self) -> float | None:
        return _ratio(self.busy_seconds, self.busy_seconds + self.ready_seconds)


class _Summed:
    """What queue and agent figures share: adding up buckets field by field, and the handling times
    (`answered`, `wait_seconds`, `talk_seconds`, `hold_seconds`, `wrap_up_seconds`, `states`)."""

    __slots__ = ()

    def add(self, o: _Summed) -> None:
        for f in fields(self):  # type: ignore[arg-type]
            if f.name != "states":
                setattr(self, f.name, getattr(self, f.name) + getattr(o, f.name))
        self.states.add(o.states)  # type: ignore[attr-defined]

    @property
    def asa(self) -> float | None:
        return _ratio(self.wait_seconds, self.answered)

    @property
    def aht(self) -> float | None:
        return _ratio(self.talk_seconds + self.hold_seconds + self.wrap_up_seconds, self.answered)


@dataclass(slots=True)
class QueueFigures(_Summed):
    offered: int = 0
    answered: int = 0
    answered_within_sl: int = 0
    abandoned: int = 0
    abandoned_within_sl: int = 0
    overflowed: int = 0
    ended: int = 0
    # Σ waits of the answered contacts
    wait_seconds: float = 0.0
    talk_seconds: float = 0.0
    hold_seconds: float = 0.0
    wrap_up_seconds: float = 0.0
    missed_offers: int = 0
    rejected_offers: int = 0
    states: StateTimes = field(default_factory=StateTimes)

    @property
    def service_level(self) -> float | None:
        return _ratio(self.answered_within_sl, self.answered + self.abandoned - self.abandoned_within_sl)

    @property
    def abandon_rate(self) -> float | None:
        return _ratio(self.abandoned, self.answered + self.abandoned)


@dataclass(slots=True)
class AgentFigures(_Summed):
    offers: int = 0
    answered: int = 0
    missed_offers: int = 0
    rejected_offers: int = 0
    wait_seconds: float = 0.0
    talk_seconds: float = 0.0
    hold_seconds: float = 0.0
    wrap_up_seconds: float = 0.0
    states: StateTimes = field(default_factory=StateTimes)


@dataclass(frozen=True, slots=True)
class Range:
    """What a report covers: [start, end) in epoch seconds, the bucket width, the zone."""

    start: float
    end: float
    width: int
    zone: Zone
    # Counts up to here for spans still open (now); spans never run past `end`.
    now: float


class ReportQueries:
    """The report queries of one tenant."""

    def __init__(self, session: AsyncSession, tenant_id: int) -> None:
        assert tenant_id > 0, "a tenant id is positive"
        self.session = session
        self.tenant_id = tenant_id

    # ------------------------------------------------------------ contacts

    async def queue_contacts(self, r: Range, queues: Sequence[str]) -> dict[tuple[float, str], QueueFigures]:
        s = ContactSegment
        key = r.zone.sql_key(s.entered_at, r.width).label("k")
        wait = s.left_at - s.entered_at
        answered = s.outcome == "answered"
        abandoned = s.outcome == "abandoned"

        def count(cond: Any) -> Any:
            return func.sum(case((cond, 1), else_=0))

        q = (
            select(
                key, s.queue, func.count(), count(answered), count(and_(answered, wait <= s.service_level_seconds)),
                count(abandoned), count(and_(abandoned, wait <= s.service_level_seconds)),
                count(s.outcome == "overflowed"), count(s.outcome == "ended"),
                func.sum(case((answered, wait), else_=num(0))), func.sum(s.talk_seconds), func.sum(s.hold_seconds),
                func.sum(s.wrap_up_seconds),
            )
            .where(s.tenant_id == self.tenant_id, s.entered_at >= num(r.start), s.entered_at < num(r.end),
                   s.queue.in_(queues))
            .group_by(literal_column("k"), s.queue)
        )
        out: dict[tuple[float, str], QueueFigures] = {}
        for k, queue, *v in (await self.session.execute(q)).all():
            out[(float(k), queue)] = QueueFigures(*(int(x or 0) for x in v[:7]), *(float(x or 0) for x in v[7:]))
        for (k, queue), (_, missed, rejected) in (await self._offers(r, queues, by_queue=True)).items():
            f = out.setdefault((k, queue), QueueFigures())
            f.missed_offers, f.rejected_offers = missed, rejected
        return out

    async def agent_contacts(self, r: Range, queues: Sequence[str]) -> dict[tuple[float, int], AgentFigures]:
        s = ContactSegment
        key = r.zone.sql_key(s.answered_at, r.width).label("k")
        q = (
            select(key, s.agent_id, func.count(), func.sum(s.left_at - s.entered_at), func.sum(s.talk_seconds),
                   func.sum(s.hold_seconds), func.sum(s.wrap_up_seconds))
            .where(s.tenant_id == self.tenant_id, s.outcome == "answered", s.agent_id.is_not(None),
                   s.answered_at >= num(r.start), s.answered_at < num(r.end), s.queue.in_(queues))
            .group_by(literal_column("k"), s.agent_id)
        )
        out: dict[tuple[float, int], AgentFigures] = {}
        for k, agent, n, wait, talk, hold, wrap in (await self.session.execute(q)).all():
            out[(float(k), int(agent))] = AgentFigures(
                answered=int(n), wait_seconds=float(wait or 0), talk_seconds=float(talk or 0),
                hold_seconds=float(hold or 0), wrap_up_seconds=float(wrap or 0),
            )
        for (k, agent), (n, missed, rejected) in (await self._offers(r, queues, by_queue=False)).items():
            f = out.setdefault((k, int(agent)), AgentFigures())
            f.offers, f.missed_offers, f.rejected_offers = n, missed, rejected
        return out

    async def _offers(
        self, r: Range, queues: Sequence[str], by_queue: bool
    ) -> dict[tuple[float, Any], tuple[int, int, int]]:
        """Offers, missed offers and rejected offers per bucket and queue (or agent)."""
        o = ContactOffer
        key = r.zone.sql_key(o.offered_at, r.width).label("k")
        col = o.queue if by_queue else o.agent_id
        q = (
            select(key, col, func.count(), func.sum(case((o.result == "no-answer", 1), else_=0)),
                   func.sum(case((o.result == "rejected", 1), else_=0)))
            .where(o.tenant_id == self.tenant_id, o.offered_at >= num(r.start), o.offered_at < num(r.end),
                   o.queue.in_(queues))
            .group_by(literal_column("k"), col)
        )
        rows = (await self.session.execute(q)).all()
        return {(float(k), c): (int(n), int(m or 0), int(j or 0)) for k, c, n, m, j in rows}

    # ------------------------------------------------------------ agent states

    async def state_times(self, r: Range, agents: Iterable[int] | None = None) -> dict[tuple[float, int], StateTimes]:
        """Time per bucket and agent in each state, from the agent-state history: each row starts a
        span that lasts until the agent's next row (or `now`); spans are cut at bucket boundaries."""
        h = AgentStateHistory
        scope = [h.tenant_id == self.tenant_id]
        if agents is not None:
            scope.append(h.user_id.in_(list(agents)))
        # The rows inside the range, and each agent's last row before it (the state it was in at the start).
        last_before = (
            select(func.max(h.id)).where(*scope, h.at < num(r.start)).group_by(h.user_id).scalar_subquery()
        )
        rows = select(h.id, h.user_id, h.to_state, h.reason, h.at).where(
            *scope, h.at < num(r.end), or_(h.at >= num(r.start), h.id.in_(last_before))
        ).subquery()
        lead = func.lead(rows.c.at).over(partition_by=rows.c.user_id, order_by=(rows.c.at, rows.c.id))
        spans = select(
            rows.c.user_id, rows.c.to_state.label("state"), rows.c.reason, rows.c.at.label("s0"), lead.label("e0")
        ).subquery()
        stop = least(func.coalesce(spans.c.e0, num(r.now)), num(min(r.end, r.now)))
        start = greatest(spans.c.s0, num(r.start))
        anchor = select(
            spans.c.user_id.label("user_id"), spans.c.state.label("state"), spans.c.reason.label("reason"),
            start.label("s"), stop.label("e"),
        ).where(spans.c.state != "logged-out", stop > start)
        pieces = anchor.cte("pieces", recursive=True)
        cut = r.zone.sql_next_cut(pieces.c.s, r.width)
        pieces = pieces.union_all(
            select(pieces.c.user_id, pieces.c.state, pieces.c.reason, cut, pieces.c.e).where(cut < pieces.c.e)
        )
        cut = r.zone.sql_next_cut(pieces.c.s, r.width)
        key = r.zone.sql_key(pieces.c.s, r.width).label("k")
        q = select(
            key, pieces.c.user_id, pieces.c.state, pieces.c.reason, func.sum(least(pieces.c.e, cut) - pieces.c.s)
        ).group_by(literal_column("k"), pieces.c.user_id, pieces.c.state, pieces.c.reason)
        out: dict[tuple[float, int], StateTimes] = {}
        for k, user, state, reason, seconds in (await self.session.execute(q)).all():
            out.setdefault((float(k), int(user)), StateTimes()).add_span(state, reason, float(seconds or 0))
        return out

    # ------------------------------------------------------------ reference

    async def queue_names(self) -> list[str]:
        q = select(Queue.name).where(Queue.tenant_id == self.tenant_id).order_by(Queue.name)
        return list((await self.session.execute(q)).scalars().all())

    async def members(self) -> dict[str, set[int]]:
        q = (
            select(Queue.name, QueueMembership.user_id)
            .join(Queue, Queue.id == QueueMembership.queue_id)
            .where(QueueMembership.tenant_id == self.tenant_id)
        )
        out: dict[str, set[int]] = {}
        for name, uid in (await self.session.execute(q)).all():
            out.setdefault(name, set()).add(int(uid))
        return out

    async def agents(self) -> dict[int, str]:
        """The tenant's users: ids → usernames."""
        q = select(User.id, User.username).where(User.tenant_id == self.tenant_id)
        return {int(i): u for i, u in (await self.session.execute(q)).all()}

