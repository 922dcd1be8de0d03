"""Wallboards: a read-only screen of chosen queues' live figures, opened with a long-lived token.

A supervisor or admin creates a wallboard (POST /api/wallboards) and gets a URL holding a
signed token of kind "wallboard" (realtime/auth.py). The wall screen's page sends that token
in its `auth` frame; the hub answers with a `wallboard` frame and then forwards the board's
`queue-stats` frames cut down to the wallboard's queues, with no agents. The token can do
nothing else: any other frame is refused. Deleting the wallboard revokes the token: it is
checked at `auth` and, for open screens, by the hub's reaper every few seconds.
"""

from __future__ import annotations

import logging
import time
from typing import Annotated, Any, Literal, Protocol

import msgspec
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from realtime import protocol as P
from realtime.api import ApiError, Name, principal, read_body
from realtime.auth import Principal
from store.repos import TenantRepo

log = logging.getLogger("unidesk.wallboards")

Figure = Literal["service_level", "longest_wait", "waiting", "asa", "abandon_rate"]
DEFAULT_THRESHOLDS: dict[str, P.Threshold] = {
    "service_level": P.Threshold(amber=0.8, red=0.6),
    "longest_wait": P.Threshold(amber=30, red=60),
    "waiting": P.Threshold(amber=3, red=6),
    "asa": P.Threshold(amber=20, red=40),
    "abandon_rate": P.Threshold(amber=0.05, red=0.1),
}
REVOKED = "this wallboard was revoked; ask a supervisor for a new link"
DENIED = "a wallboard token only receives its queues' figures; it may send ping (and auth), nothing else"


class CreateWallboard(msgspec.Struct, forbid_unknown_fields=True):
    name: Annotated[str, msgspec.Meta(min_length=1, max_length=200)]
    queues: Annotated[list[Name], msgspec.Meta(min_length=1, max_length=50)]
    thresholds: dict[Figure, P.Threshold] = {}
    # How long the token is valid.
    days: Annotated[int, msgspec.Meta(ge=1, le=3650)] = 365


def thresholds_of(given: dict[str, Any]) -> dict[str, P.Threshold]:
    out = dict(DEFAULT_THRESHOLDS)
    for k, v in given.items():
        out[k] = v if isinstance(v, P.Threshold) else msgspec.convert(v, P.Threshold)
    return out


class Screen(Protocol):
    """What the hub's connection offers a wallboard feed."""

    principal: Principal | None
    wallboard: tuple[int, frozenset[str]] | None

    def push(self, frame: str) -> None: ...

    def close(self, code: int, reason: str) -> None: ...


_stats_dec = msgspec.json.Decoder(P.QueueStatsChanged)


class WallboardFeeds:
    """The open wallboard screens of this hub, by tenant."""

    def __init__(self, sessionmaker: async_sessionmaker[AsyncSession], contacts: Any) -> None:
        self.sessionmaker = sessionmaker
        self.contacts = contacts
        self.by_tenant: dict[int, set[Screen]] = {}

    async def open(self, conn: Screen, p: Principal, directory: Any, ref: str | None,
                   heartbeat: float) -> P.WallboardView:
        """Check the wallboard behind the token and register the screen; raises LookupError with
        the reason the screen is refused."""
        async with self.sessionmaker() as s:
            row = await TenantRepo(s, p.tenant_id).wallboard(p.user_id)
        if row is None or row.revoked_at is not None:
            raise LookupError(REVOKED)
        d = await directory.get(p.tenant_id)
        if d is None:
            raise LookupError("the wallboard's tenant no longer exists")
        labels = {q.name: q.label for q in d.queues}
        queues = [q for q in row.queues if q in labels]
        conn.principal = p
        conn.wallboard = (row.id, frozenset(queues))
        self.by_tenant.setdefault(p.tenant_id, set()).add(conn)
        stats = await self.contacts.queue_stats(p.tenant_id) if self.contacts is not None else []
        return P.WallboardView(
            ref=ref, name=row.name, tenant=P.TenantInfo(id=d.tenant_id, slug=d.slug, name=d.name),
            queues=[P.QueueInfo(name=q, label=labels[q]) for q in queues],
            thresholds=thresholds_of(row.thresholds or {}), heartbeat_seconds=heartbeat, server_time=time.time(),
            queue_stats=[q for q in stats if q.queue in queues],
        )

    def forget(self, conn: Screen) -> None:
        if conn.principal is None:
            return
        screens = self.by_tenant.get(conn.principal.tenant_id)
        if screens is not None:
            screens.discard(conn)
            if not screens:
                del self.by_tenant[conn.principal.tenant_id]

    def deliver(self, stream: str, frame: bytes) -> None:
        """A board event: the queue figures go on to the tenant's screens, each cut to its queues."""
        if not self.by_tenant or not stream.startswith("board:") or b'"queue-stats"' not in frame[:40]:
            return
        screens = self.by_tenant.get(int(stream.split(":", 1)[1]))
        if not screens:
            return
        stats = _stats_dec.decode(frame)
        for conn in screens:
            assert conn.wallboard is not None, "a registered screen has a wallboard"
            mine = [q for q in stats.queues if q.queue in conn.wallboard[1]]
            if mine:
                conn.push(P.encode(P.QueueStatsChanged(queues=mine)).decode())

    def revoked(self, tenant_id: int, wallboard_id: int, close_code: int) -> None:
        for conn in list(self.by_tenant.get(tenant_id, ())):
            if conn.wallboard and conn.wallboard[0] == wallboard_id:
                self._refuse(conn, close_code)

    async def check_revoked(self, close_code: int) -> None:
        """Close the screens whose wallboard was revoked (on any hub)."""
        for tenant_id, screens in list(self.by_tenant.items()):
            ids = {c.wallboard[0] for c in screens if c.wallboard}
            async with self.sessionmaker() as s:
                gone = await TenantRepo(s, tenant_id).revoked_wallboards(ids)
            for conn in list(screens):
                if conn.wallboard and conn.wallboard[0] in gone:
                    self._refuse(conn, close_code)

    def _refuse(self, conn: Screen, close_code: int) -> None:
        conn.close(close_code, REVOKED)
        self.forget(conn)


# ---------------------------------------------------------------- REST


def _view(row: Any) -> dict[str, Any]:
    return {
        "id": row.id, "name": row.name, "queues": row.queues,
        "thresholds": msgspec.to_builtins(thresholds_of(row.thresholds or {})),
        "created_at": row.created_at, "expires_at": row.expires_at, "revoked": row.revoked_at is not None,
    }


async def create_wallboard(request: Request) -> Response:
    p = principal(request, "supervisor", "admin")
    req: CreateWallboard = await read_body(request, CreateWallboard)
    ctx = request.app.state.ctx
    d = await ctx.directory.get(p.tenant_id)
    known = {q.name for q in d.queues} if d else set()
    for q in req.queues:
        if q not in known:
            raise ApiError(404, "not-found", f"unknown queue {q!r}")
    for figure, t in req.thresholds.items():
        worse_is_lower = figure == "service_level"
        if (t.red > t.amber) if worse_is_lower else (t.red < t.amber):
            order = "at most" if worse_is_lower else "at least"
            raise ApiError(422, "bad-request", f"thresholds of {figure}: red must be {order} amber")
        if figure in ("service_level", "abandon_rate") and max(t.amber, t.red) > 1:
            raise ApiError(422, "bad-request", f"thresholds of {figure} are fractions from 0 to 1")
    now = time.time()
    expires = now + req.days * 86400
    async with ctx.sessionmaker() as s, s.begin():
        row = await TenantRepo(s, p.tenant_id).add_wallboard(
            req.name, list(dict.fromkeys(req.queues)), msgspec.to_builtins(req.thresholds), p.user_id, now, expires
        )
    token = ctx.tokens.issue_wallboard(p.tenant_id, p.tenant_slug, row.id, expires, now)
    path = f"/wallboard?token={token}"
    return JSONResponse({**_view(row), "token": token, "path": path, "url": str(request.base_url).rstrip("/") + path},
                        201)


async def list_wallboards(request: Request) -> Response:
    p = principal(request, "supervisor", "admin")
    async with request.app.state.ctx.sessionmaker() as s:
        rows = await TenantRepo(s, p.tenant_id).wallboards()
    return JSONResponse([_view(r) for r in rows])


async def revoke_wallboard(request: Request) -> Response:
    p = principal(request, "supervisor", "admin")
    ctx = request.app.state.ctx
    try:
        wallboard_id = int(request.path_params["wallboard_id"])
    except ValueError:
        raise ApiError(404, "not-found", "no such wallboard") from None
    async with ctx.sessionmaker() as s, s.begin():
        row = await TenantRepo(s, p.tenant_id).wallboard(wallboard_id)
        if row is None:
            raise ApiError(404, "not-found", "no such wallboard")
        row.revoked_at = row.revoked_at or time.time()
    ctx.hub.wallboard_revoked(p.tenant_id, wallboard_id)
    return JSONResponse({"revoked": True})


routes = [
    Route("/api/wallboards", create_wallboard, methods=["POST"]),
    Route("/api/wallboards", list_wallboards, methods=["GET"]),
    Route("/api/wallboards/{wallboard_id}", revoke_wallboard, methods=["DELETE"]),
]
