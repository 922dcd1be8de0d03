"""Historical reports over REST: GET /api/reports/queues and /api/reports/agents, as JSON or CSV.

Supervisors and admins of the tenant only; every query is bound to the caller's tenant.
The figures come from store/reports.py; docs/reports.md defines them.
"""

from __future__ import annotations

import csv
import io
import time
from dataclasses import dataclass
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from realtime.api import ApiError, principal
from store.report_time import INTERVALS, MAX_DAYS, BadTimeZone, parse_time, zone_for
from store.reports import AgentFigures, QueueFigures, Range, ReportQueries, StateTimes
from store.repos import tenant_by_id


def _r(x: float | None, digits: int = 3) -> float | None:
    return None if x is None else round(x, digits)


def _state_fields(s: StateTimes) -> dict[str, Any]:
    return {
        "logged_in_seconds": _r(s.logged_in_seconds), "ready_seconds": _r(s.ready_seconds),
        "busy_seconds": _r(s.busy_seconds), "occupancy": _r(s.occupancy, 4), "paused_seconds": _r(s.paused_seconds),
        "paused_by_reason": {k: _r(v) for k, v in sorted(s.paused_by_reason.items())},
    }


def queue_fields(f: QueueFigures) -> dict[str, Any]:
    return {
        "offered": f.offered, "answered": f.answered, "answered_within_sl": f.answered_within_sl,
        "abandoned": f.abandoned, "abandoned_within_sl": f.abandoned_within_sl, "overflowed": f.overflowed,
        "ended": f.ended, "service_level": _r(f.service_level, 4), "abandon_rate": _r(f.abandon_rate, 4),
        "asa": _r(f.asa), "aht": _r(f.aht), "talk_seconds": _r(f.talk_seconds), "hold_seconds": _r(f.hold_seconds),
        "wrap_up_seconds": _r(f.wrap_up_seconds), "missed_offers": f.missed_offers,
        "rejected_offers": f.rejected_offers, **_state_fields(f.states),
    }


def agent_fields(f: AgentFigures) -> dict[str, Any]:
    return {
        "offers": f.offers, "answered": f.answered, "missed_offers": f.missed_offers,
        "rejected_offers": f.rejected_offers, "asa": _r(f.asa), "aht": _r(f.aht), "talk_seconds": _r(f.talk_seconds),
        "hold_seconds": _r(f.hold_seconds), "wrap_up_seconds": _r(f.wrap_up_seconds), **_state_fields(f.states),
    }


@dataclass(frozen=True, slots=True)
class Query:
    """A report's parameters, checked."""

    range: Range
    interval: str
    queues: list[str]
    format: str


async def read_query(request: Request, session: AsyncSession, tenant_id: int) -> Query:
    """The query string of a report request; ApiError (400/404) naming what is wrong."""
    qp = request.query_params
    unknown = set(qp.keys()) - {"from", "to", "interval", "queue", "format"}
    if unknown:
        raise ApiError(400, "bad-request", f"unknown parameter {sorted(unknown)[0]!r}; "
                       "known: from, to, interval, queue, format")
    interval = qp.get("interval", "1h")
    if interval not in INTERVALS:
        raise ApiError(400, "bad-request", f"interval {interval!r} is not one of {', '.join(INTERVALS)}")
    fmt = qp.get("format", "json")
    if fmt not in ("json", "csv"):
        raise ApiError(400, "bad-request", f"format {fmt!r} is not json or csv")
    tenant = await tenant_by_id(session, tenant_id)
    tz_name = (tenant.settings or {}).get("timezone") if tenant else None
    if not qp.get("from") or not qp.get("to"):
        raise ApiError(400, "bad-request", "from and to are required (YYYY-MM-DD, YYYY-MM-DDTHH:MM or epoch seconds)")
    try:
        start, end = parse_time(qp["from"], tz_name), parse_time(qp["to"], tz_name)
        if end <= start:
            raise ApiError(400, "bad-request", "to must be after from")
        days = MAX_DAYS[interval]
        if end - start > days * 86400 + 3600:  # an hour of slack for a range across a clock change
            raise ApiError(400, "range-too-long", f"a report by {interval} covers at most {days} days; "
                           "ask for a shorter range or a longer interval")
        zone = zone_for(tz_name, start, end)
    except BadTimeZone as exc:
        raise ApiError(500, "bad-time-zone", f"the tenant's time zone setting is wrong: {exc}") from None
    except ValueError as exc:
        raise ApiError(400, "bad-request", str(exc)) from None
    known = await ReportQueries(session, tenant_id).queue_names()
    wanted = [q for v in qp.getlist("queue") for q in v.split(",") if q]
    for q in wanted:
        if q not in known:
            raise ApiError(404, "not-found", f"unknown queue {q!r}")
    rng = Range(start=start, end=end, width=INTERVALS[interval], zone=zone, now=time.time())
    return Query(range=rng, interval=interval, queues=sorted(set(wanted)) or known, format=fmt)


def buckets(r: Range) -> list[float]:
    """Every bucket key of the range, in order."""
    w = r.width
    key = r.zone.key_of(r.start, w)
    out = []
    while r.zone.start_of(key) < r.end:
        out.append(key)
        key += w
    return out


def _head(q: Query, kind: str, keys: list[float]) -> dict[str, Any]:
    z = q.range.zone
    return {
        "report": kind, "from": q.range.start, "to": q.range.end, "interval": q.interval, "timezone": z.name,
        "queues": q.queues, "buckets": [{"start": z.label(k), "start_ts": z.start_of(k)} for k in keys],
    }


async def queue_report(session: AsyncSession, tenant_id: int, q: Query) -> dict[str, Any]:
    rq = ReportQueries(session, tenant_id)
    r = q.range
    figures = await rq.queue_contacts(r, q.queues)
    members = await rq.members()
    wanted_agents = set().union(*(members.get(name, set()) for name in q.queues))
    states = await rq.state_times(r, wanted_agents)
    for (k, agent), st in states.items():
        for name in q.queues:
            if agent in members.get(name, ()):
                figures.setdefault((k, name), QueueFigures()).states.add(st)
    keys = buckets(r)
    rows, totals = [], {name: QueueFigures() for name in q.queues}
    for k in keys:
        for name in q.queues:
            f = figures.get((k, name))
            if f is None:
                continue
            totals[name].add(f)
            rows.append({"start": r.zone.label(k), "start_ts": r.zone.start_of(k), "queue": name, **queue_fields(f)})
    out = _head(q, "queues", keys)
    out["rows"] = rows
    out["totals"] = [{"queue": name, **queue_fields(f)} for name, f in totals.items()]
    return out


async def agent_report(session: AsyncSession, tenant_id: int, q: Query, all_queues: bool) -> dict[str, Any]:
    rq = ReportQueries(session, tenant_id)
    r = q.range
    figures = await rq.agent_contacts(r, q.queues)
    members = await rq.members()
    agents = None if all_queues else set().union(*(members.get(name, set()) for name in q.queues))
    for key, st in (await rq.state_times(r, agents)).items():
        figures.setdefault(key, AgentFigures()).states.add(st)
    names = await rq.agents()
    keys = buckets(r)
    by_key: dict[float, list[int]] = {}
    for k, agent in figures:
        by_key.setdefault(k, []).append(agent)
    rows, totals = [], {}
    for k in keys:
        for agent in sorted(by_key.get(k, ()), key=lambda a: names.get(a, "")):
            f = figures[(k, agent)]
            totals.setdefault(agent, AgentFigures()).add(f)
            rows.append({"start": r.zone.label(k), "start_ts": r.zone.start_of(k), "agent": names.get(agent, str(agent)),
                         "agent_id": agent, **agent_fields(f)})
    out = _head(q, "agents", keys)
    out["rows"] = rows
    out["totals"] = [
        {"agent": names.get(a, str(a)), "agent_id": a, **agent_fields(f)}
        for a, f in sorted(totals.items(), key=lambda kv: names.get(kv[0], ""))
    ]
    return out


def to_csv(report: dict[str, Any]) -> str:
    """One line per row, a header first; pause time by reason as one column per reason code."""
    rows = report["rows"]
    reasons = sorted({code for row in rows for code in row["paused_by_reason"]})
    if not rows:
        return ""
    columns = [c for c in rows[0] if c not in ("paused_by_reason", "start_ts")]
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\r\n")
    w.writerow(columns + [f"paused_{code}_seconds" for code in reasons])
    for row in rows:
        w.writerow(["" if row[c] is None else row[c] for c in columns]
                   + [row["paused_by_reason"].get(code, 0) for code in reasons])
    return buf.getvalue()


async def _report(request: Request, kind: str) -> Response:
    p = principal(request, "supervisor", "admin")
    ctx = request.app.state.ctx
    # Every state change this hub committed counts.
    await ctx.history.flush()
    async with ctx.sessionmaker() as session:
        q = await read_query(request, session, p.tenant_id)
        if kind == "queues":
            report = await queue_report(session, p.tenant_id, q)
        else:
            report = await agent_report(session, p.tenant_id, q, all_queues=not request.query_params.get("queue"))
    if q.format == "csv":
        name = f"{kind}-{q.interval}-{report['buckets'][0]['start'][:10] if report['buckets'] else 'empty'}.csv"
        text = to_csv(report) or _empty_header(kind)
        return Response(text, media_type="text/csv; charset=utf-8",
                        headers={"Content-Disposition": f'attachment; filename="{name}"'})
    return JSONResponse(report)


def _empty_header(kind: str) -> str:
    sample = queue_fields(QueueFigures()) if kind == "queues" else agent_fields(AgentFigures())
    first = ["start", "queue"] if kind == "queues" else ["start", "agent", "agent_id"]
    return ",".join(first + [c for c in sample if c != "paused_by_reason"]) + "\r\n"


async def queues_report(request: Request) -> Response:
    return await _report(request, "queues")


async def agents_report(request: Request) -> Response:
    return await _report(request, "agents")


routes = [
    Route("/api/reports/queues", queues_report),
    Route("/api/reports/agents", agents_report),
]

