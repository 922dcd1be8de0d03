"""REST routes: auth, the agents' live states and history, reference data, health, metrics."""

from __future__ import annotations

import logging
import time
from typing import Annotated, Any, Literal

import msgspec
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from realtime.agent_state import IllegalTransition, action_for_target
from realtime.agents import Conflict, NotFound, UnknownReason
from realtime.auth import Principal, TokenError, verify_password
from realtime.medialinks import JOINS, LINKS
from realtime.protocol import TargetState
from store.repos import TenantRepo, sip_user_taken, tenant_by_id, tenant_by_slug
from store.seed import desk_phone_ha1

log = logging.getLogger("unidesk.api")

Name = Annotated[str, msgspec.Meta(min_length=1, max_length=64)]


class LoginRequest(msgspec.Struct, forbid_unknown_fields=True):
    tenant: Name
    username: Name
    password: Annotated[str, msgspec.Meta(max_length=1024)]


class RefreshRequest(msgspec.Struct, forbid_unknown_fields=True):
    refresh_token: Annotated[str, msgspec.Meta(max_length=4096)]


class ForceRequest(msgspec.Struct, forbid_unknown_fields=True):
    state: TargetState
    reason: Name | None = None


SkillLevel = Annotated[int, msgspec.Meta(ge=0, le=100)]
Text = Annotated[str, msgspec.Meta(max_length=500)]


class DeskPhoneRequest(msgspec.Struct, forbid_unknown_fields=True):
    # A new desk-phone password (the store keeps its HA1 only).
    password: Annotated[str, msgspec.Meta(min_length=4, max_length=128)] | None = None
    # Where the agent takes calls.
    phone: Literal["browser", "desk"] | None = None
    # The SIP user name (unique across tenants); default: the one it has, else the username
    # (prefixed "<tenant slug>-" outside the demo tenant).
    sip_user: Annotated[str, msgspec.Meta(pattern=r"^[A-Za-z0-9._-]{1,64}$")] | None = None


class ContactRequest(msgspec.Struct, forbid_unknown_fields=True):
    queue: Name
    caller: Annotated[str, msgspec.Meta(min_length=1, max_length=128)]
    caller_name: Annotated[str, msgspec.Meta(max_length=200)] | None = None
    priority: Annotated[int, msgspec.Meta(ge=0, le=100)] = 0
    skills: dict[Name, SkillLevel] = {}
    data: Annotated[dict[Name, Text], msgspec.Meta(max_length=50)] = {}


class ApiError(Exception):
    def __init__(self, status: int, code: str, message: str, headers: dict[str, str] | None = None,
                 extra: dict[str, Any] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.headers = headers
        # More of the error's body beside `error` and `message` (e.g. every problem of a script).
        self.extra = extra or {}


def error_response(exc: ApiError) -> JSONResponse:
    return JSONResponse({**exc.extra, "error": exc.code, "message": str(exc)}, exc.status, headers=exc.headers)


async def read_body(request: Request, kind: type[Any]) -> Any:
    body = await request.body()
    if len(body) > 16 * 1024:
        raise ApiError(413, "too-large", "request body over 16 KiB")
    try:
        return msgspec.json.decode(body, type=kind)
    except msgspec.ValidationError as exc:
        raise ApiError(422, "bad-request", f"invalid request: {exc}") from None
    except msgspec.DecodeError:
        raise ApiError(400, "bad-request", "the body is not valid JSON") from None


def principal(request: Request, *roles: str) -> Principal:
    header = request.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token:
        raise ApiError(401, "unauthorized", "missing bearer token", {"WWW-Authenticate": "Bearer"})
    try:
        p = request.app.state.ctx.tokens.verify(token, "access")
    except TokenError as exc:
        raise ApiError(
            401, "unauthorized", str(exc), {"WWW-Authenticate": 'Bearer error="invalid_token"'}
        ) from None
    if roles and not p.has_any(*roles):
        raise ApiError(403, "forbidden", f"needs the role {' or '.join(roles)}")
    return p


def client_address(request: Request) -> str:
    return request.client.host if request.client else "unknown"


async def login(request: Request) -> Response:
    ctx = request.app.state.ctx
    req: LoginRequest = await read_body(request, LoginRequest)
    now = time.time()
    keys = [f"user:{req.tenant}:{req.username}", f"addr:{client_address(request)}"]
    wait = await ctx.throttle.retry_after(keys, now)
    if wait > 0:
        ctx.metrics.logins.labels("throttled").inc()
        raise ApiError(
            429,
            "too-many-attempts",
            f"too many failed logins; try again in {int(wait) + 1} s",
            {"Retry-After": str(int(wait) + 1)},
        )
    async with ctx.sessionmaker() as session:
        tenant = await tenant_by_slug(session, req.tenant)
        user = await TenantRepo(session, tenant.id).user_by_username(req.username) if tenant else None
    ok = verify_password(user.password_hash if user else None, req.password)
    if not ok or user is None or tenant is None or not user.active:
        await ctx.throttle.failed(keys, now)
        ctx.metrics.logins.labels("failed").inc()
        log.info("login failed", extra={"ud_tenant": req.tenant, "ud_username": req.username})
        raise ApiError(401, "invalid-credentials", "unknown tenant, user or password")
    await ctx.throttle.succeeded(keys)
    ctx.metrics.logins.labels("ok").inc()
    p = Principal(
        user_id=user.id,
        tenant_id=tenant.id,
        tenant_slug=tenant.slug,
        username=user.username,
        roles=frozenset(user.roles),
        expires_at=0,
        kind="access",
    )
    return JSONResponse(ctx.tokens.pair(p))


async def refresh(request: Request) -> Response:
    ctx = request.app.state.ctx
    req: RefreshRequest = await read_body(request, RefreshRequest)
    try:
        old = ctx.tokens.verify(req.refresh_token, "refresh")
    except TokenError as exc:
        raise ApiError(401, "unauthorized", str(exc)) from None
    async with ctx.sessionmaker() as session:
        user = await TenantRepo(session, old.tenant_id).user_by_id(old.user_id)
    if user is None or not user.active:
        raise ApiError(401, "unauthorized", "the user no longer exists or is disabled")
    # Roles are read again, so a change takes effect at the next refresh.
    p = Principal(
        user_id=user.id,
        tenant_id=old.tenant_id,
        tenant_slug=old.tenant_slug,
        username=user.username,
        roles=frozenset(user.roles),
        expires_at=0,
        kind="access",
    )
    return JSONResponse(ctx.tokens.pair(p))


async def me(request: Request) -> Response:
    p = principal(request)
    d = await request.app.state.ctx.directory.get(p.tenant_id)
    person = d.users.get(p.user_id) if d else None
    if d is None or person is None:
        raise ApiError(401, "unauthorized", "the token's user no longer exists")
    return JSONResponse(
        {
            "id": person.id,
            "username": person.username,
            "display_name": person.display_name,
            "roles": sorted(person.roles),
            "tenant": {"id": d.tenant_id, "slug": d.slug, "name": d.name},
        }
    )


async def list_agents(request: Request) -> Response:
    p = principal(request, "supervisor", "admin")
    views = await request.app.state.ctx.agents.views(p.tenant_id)
    return Response(msgspec.json.encode(views), media_type="application/json")


def _agent_id(request: Request) -> int:
    try:
        return int(request.path_params["agent_id"])
    except ValueError:
        raise ApiError(404, "not-found", "no such agent") from None


async def force_state(request: Request) -> Response:
    p = principal(request, "supervisor", "admin")
    agent_id = _agent_id(request)
    req: ForceRequest = await read_body(request, ForceRequest)
    svc = request.app.state.ctx.agents
    try:
        current, _ = await svc.live.agent(p.tenant_id, agent_id)
        await svc.change(
            p.tenant_id,
            agent_id,
            action_for_target(current, req.state),
            reason=req.reason,
            by_user_id=p.user_id,
            source="supervisor",
        )
        view = await svc.view(p.tenant_id, agent_id)
    except NotFound as exc:
        raise ApiError(404, "not-found", str(exc)) from None
    except UnknownReason as exc:
        raise ApiError(422, "unknown-reason", str(exc)) from None
    except IllegalTransition as exc:
        raise ApiError(409, "illegal-transition", str(exc)) from None
    except Conflict as exc:
        raise ApiError(409, "conflict", str(exc)) from None
    return Response(msgspec.json.encode(view), media_type="application/json")


async def set_desk_phone(request: Request) -> Response:
    """PUT /api/users/{user_id}/desk-phone: an admin, or the user, sets the desk-phone password, SIP user
    name or phone choice. Every media worker gets the new credentials; registrations with old ones end."""
    p = principal(request)
    user_id = _id(request, "user_id")
    if user_id != p.user_id and not p.has_any("admin"):
        raise ApiError(403, "forbidden", "only an admin sets another user's desk phone")
    req: DeskPhoneRequest = await read_body(request, DeskPhoneRequest)
    ctx = request.app.state.ctx
    async with ctx.sessionmaker() as s, s.begin():
        user = await TenantRepo(s, p.tenant_id).user_by_id(user_id)
        tenant = await tenant_by_id(s, p.tenant_id)
        if user is None or tenant is None:
            raise ApiError(404, "not-found", "no such user")
        name = req.sip_user or user.sip_user or (
            user.username if tenant.slug == "demo" else f"{tenant.slug}-{user.username}"
        )
        if await sip_user_taken(s, name, but=user.id):
            raise ApiError(409, "conflict", f"the SIP user name {name!r} is taken")
        if name != user.sip_user and req.password is None:
            raise ApiError(422, "bad-request", "a new SIP user name needs a password")
        user.sip_user = name
        if req.password is not None:
            user.sip_ha1 = desk_phone_ha1(name, tenant.slug, req.password)
        if req.phone is not None:
            user.phone = req.phone
    if ctx.desk is not None:
        await ctx.desk.users_changed()
        await ctx.desk.tell(p.tenant_id, user_id)
    return await _desk_phone_view(request, p.tenant_id, user_id)


async def desk_phones(request: Request) -> Response:
    """GET /api/desk-phones: the tenant's desk phones (supervisors, admins) or the agent's own."""
    p = principal(request)
    ctx = request.app.state.ctx
    async with ctx.sessionmaker() as s:
        users = [u for u in await TenantRepo(s, p.tenant_id).users() if u.sip_user]
    if not p.has_any("supervisor", "admin"):
        users = [u for u in users if u.id == p.user_id]
    out = []
    for u in users:
        state = await ctx.desk.state(p.tenant_id, u.id) if ctx.desk is not None else None
        out.append({"user_id": u.id, "username": u.username, "sip_user": u.sip_user, "phone": u.phone,
                    **(msgspec.to_builtins(state) if state is not None else {})})
    return JSONResponse(out)


async def _desk_phone_view(request: Request, tenant_id: int, user_id: int) -> Response:
    ctx = request.app.state.ctx
    async with ctx.sessionmaker() as s:
        user = await TenantRepo(s, tenant_id).user_by_id(user_id)
    assert user is not None
    state = await ctx.desk.state(tenant_id, user_id) if ctx.desk is not None else None
    return JSONResponse({"user_id": user.id, "username": user.username, "sip_user": user.sip_user,
                         "phone": user.phone, **(msgspec.to_builtins(state) if state is not None else {})})


def _id(request: Request, name: str) -> int:
    try:
        return int(request.path_params[name])
    except ValueError:
        raise ApiError(404, "not-found", f"no such {name.removesuffix('_id')}") from None


async def agent_history(request: Request) -> Response:
    p = principal(request, "supervisor", "admin")
    agent_id = _agent_id(request)
    ctx = request.app.state.ctx
    d = await ctx.directory.get(p.tenant_id)
    if d is None or agent_id not in d.users:
        raise ApiError(404, "not-found", "no such agent")
    # Every change this hub committed is in the history a reader gets.
    await ctx.history.flush()
    async with ctx.sessionmaker() as session:
        rows = await TenantRepo(session, p.tenant_id).history(agent_id, limit=200)
    by_name = {uid: person.username for uid, person in d.users.items()}
    return JSONResponse(
        [
            {
                "from": r.from_state,
                "to": r.to_state,
                "reason": r.reason,
                "at": r.at,
                "by": by_name.get(r.by_user_id) if r.by_user_id else None,
                "source": r.source,
            }
            for r in rows
        ]
    )


async def reference(request: Request) -> Response:
    p = principal(request)
    ctx = request.app.state.ctx
    d = await ctx.directory.get(p.tenant_id)
    async with ctx.sessionmaker() as session:
        codes = await TenantRepo(session, p.tenant_id).wrapup_codes()
    return JSONResponse(
        {
            "queues": [{"name": q.name, "label": q.label} for q in d.queues] if d else [],
            "pause_reasons": [{"code": r.code, "label": r.label} for r in d.pause_reasons] if d else [],
            "wrapup_codes": [{"code": c.code, "label": c.label} for c in codes],
        }
    )


async def create_contact(request: Request) -> Response:
    """Create a contact in a queue (admins; for demos and tests until calls arrive by SIP)."""
    from realtime.contacts import Arrive, ContactError, new_contact_id

    p = principal(request, "admin")
    req: ContactRequest = await read_body(request, ContactRequest)
    ctx = request.app.state.ctx
    d = await ctx.directory.get(p.tenant_id)
    if d is None or req.queue not in {q.name for q in d.queues}:
        raise ApiError(404, "not-found", f"unknown queue {req.queue!r}")
    cid = new_contact_id()
    try:
        await ctx.contacts.submit(
            Arrive(
                tenant_id=p.tenant_id, contact_id=cid, queue=req.queue, caller=req.caller,
                caller_name=req.caller_name, priority=req.priority, skills=req.skills, data=req.data,
            )
        )
    except ContactError as exc:
        raise ApiError(422, exc.code, str(exc)) from None
    return JSONResponse({"contact_id": cid}, 201)


async def abandon_contact(request: Request) -> Response:
    """The caller hung up while waiting or ringing (admins; the SIP gateway does this for calls)."""
    from realtime.contacts import Abandon, ContactError

    p = principal(request, "admin")
    try:
        await request.app.state.ctx.contacts.submit(
            Abandon(tenant_id=p.tenant_id, contact_id=request.path_params["contact_id"])
        )
    except ContactError as exc:
        raise ApiError(404 if exc.code == "not-found" else 409, exc.code, str(exc)) from None
    return JSONResponse({"abandoned": True})


async def contact_record(request: Request) -> Response:
    p = principal(request, "supervisor", "admin")
    async with request.app.state.ctx.sessionmaker() as session:
        row = await TenantRepo(session, p.tenant_id).call_record(request.path_params["contact_id"])
    if row is None:
        raise ApiError(404, "not-found", "no such contact")
    return JSONResponse(
        {
            "contact_id": row.contact_id, "queue_id": row.queue_id, "caller": row.caller,
            "agent_id": row.agent_id, "created_at": row.created_at, "answered_at": row.answered_at,
            "ended_at": row.ended_at, "outcome": row.outcome, "wrapup_code": row.wrapup_code,
            "notes": row.notes, "data": row.data,
        }
    )


async def call_record(request: Request) -> Response:
    """A call between agents: supervisors and admins see any; an agent the calls it was party to."""
    p = principal(request, "supervisor", "admin", "agent")
    async with request.app.state.ctx.sessionmaker() as session:
        row = await TenantRepo(session, p.tenant_id).call_record(request.path_params["call_id"])
    party = row is not None and p.username in (row.caller, row.callee)
    if row is None or row.direction != "internal" or not (party or p.has_any("supervisor", "admin")):
        raise ApiError(404, "not-found", "no such call")
    data = row.data or {}
    return JSONResponse(
        {
            "id": row.contact_id, "from": row.caller, "to": row.callee, "started_at": row.created_at,
            "answered_at": row.answered_at, "ended_at": row.ended_at, "outcome": row.outcome,
            "end_reason": data.get("end_reason"), "ended_by": data.get("ended_by"),
            "held_seconds": data.get("held_seconds", 0.0), "digits": data.get("digits", ""),
        }
    )


async def queue_stats(request: Request) -> Response:
    p = principal(request, "supervisor", "admin")
    stats = await request.app.state.ctx.contacts.queue_stats(p.tenant_id)
    return Response(msgspec.json.encode(stats), media_type="application/json")


async def healthz(request: Request) -> Response:
    ctx = request.app.state.ctx
    checks = {"database": await ctx.db_ok(), "bus": await ctx.live.ping()}
    ok = all(checks.values())
    # Whether this hub is the one routing contacts now (exactly one is), and the media workers connected.
    workers = await ctx.phone.worker_names() if checks["bus"] else []
    return JSONResponse(
        {"status": "ok" if ok else "degraded", **checks, "routing": ctx.contacts.leading, "media_workers": workers},
        200 if ok else 503,
    )


async def sip_trunks(request: Request) -> Response:
    """The tenant's SIP trunks and their registration state (admins; passwords never leave the hub)."""
    p = principal(request, "admin")
    return JSONResponse(await request.app.state.ctx.trunks.statuses(p.tenant_id))


async def metrics(request: Request) -> Response:
    ctx = request.app.state.ctx
    m = ctx.metrics
    try:
        for kind, name in (("link", LINKS), ("join", JOINS)):
            m.media_links.labels(kind).set(len(await ctx.live.map_all(name)))
    except Exception:  # the live store is away: the last figures stand, the rest is still served
        log.warning("the live store did not answer for the media link figures", exc_info=True)
    return Response(m.render(), media_type=m.content_type)


routes = [
    Route("/api/auth/login", login, methods=["POST"]),
    Route("/api/auth/refresh", refresh, methods=["POST"]),
    Route("/api/me", me),
    Route("/api/agents", list_agents),
    Route("/api/agents/{agent_id}/state", force_state, methods=["POST"]),
    Route("/api/agents/{agent_id}/history", agent_history),
    Route("/api/reference", reference),
    Route("/api/contacts", create_contact, methods=["POST"]),
    Route("/api/contacts/{contact_id}", contact_record),
    Route("/api/contacts/{contact_id}/abandon", abandon_contact, methods=["POST"]),
    Route("/api/queue-stats", queue_stats),
    Route("/api/users/{user_id}/desk-phone", set_desk_phone, methods=["PUT"]),
    Route("/api/desk-phones", desk_phones),
    Route("/api/calls/{call_id}", call_record),
    Route("/api/sip/trunks", sip_trunks),
    Route("/healthz", healthz),
    Route("/metrics", metrics),
]
