"""Queue settings changed by an admin while the contact center runs (docs/acd.md, "Changing a queue").

PATCH /api/queues/{name} checks the new settings as the ACD would (a `QueueConfig` is built before
anything is stored), stores them, hands the router a `Reconfigure` for that queue (the engine swaps
the queue's configuration in place: waiting contacts keep their places, calls in progress go on) and
sends `queue-changed` to the boards and the queue's agents, whose desktops show the new label at once.
Every hub drops its cached directory of the tenant when it sees that frame.
"""

from __future__ import annotations

from typing import Annotated, Any

import msgspec
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from realtime import acd
from realtime import protocol as P
from realtime.api import ApiError, principal, read_body
from realtime.contacts import QUEUE_KEYS, ContactCenter, ContactError, Reconfigure, queue_config
from realtime.directory import Directory
from realtime.live import LiveStore, stream_agent, stream_board
from store.models import Queue
from store.repos import TenantRepo

Seconds = Annotated[int, msgspec.Meta(ge=0, le=3600)]


class QueuePatch(msgspec.Struct, forbid_unknown_fields=True):
    label: Annotated[str, msgspec.Meta(min_length=1, max_length=200)] | None = None
    strategy: Annotated[str, msgspec.Meta(max_length=32)] | None = None
    wrap_up_seconds: Seconds | None = None
    service_level_seconds: Annotated[int, msgspec.Meta(ge=1, le=3600)] | None = None
    # Seconds an offer rings before it counts as missed (kept in the queue's routing config).
    ring_timeout: Annotated[float, msgspec.Meta(ge=5, le=300)] | None = None
    # Further routing settings by the ACD's names (max_wait, overflow, max_length, join_when_empty,
    # retry_delay, ...: docs/acd.md); a null value returns that setting to its default.
    routing: Annotated[dict[str, Any], msgspec.Meta(max_length=32)] | None = None


def settings_view(q: Queue) -> P.QueueSettingsView:
    return P.QueueSettingsView(
        name=q.name, label=q.label, strategy=q.strategy, wrap_up_seconds=q.wrap_up_seconds,
        service_level_seconds=q.service_level_seconds, ring_timeout=float((q.config or {}).get("ring_timeout", 20.0)),
    )


class QueueSettings:
    def __init__(self, live: LiveStore, directory: Directory, contacts: ContactCenter) -> None:
        self.live = live
        self.directory = directory
        self.contacts = contacts
        live.subscribe(self._on_event)

    def _on_event(self, stream: str, seq: int, frame: bytes) -> None:
        # A change made on any hub: this hub's directory (queue labels in snapshots) is read again.
        if stream.startswith("board:") and b'"queue-changed"' in frame[:40]:
            self.directory.invalidate(int(stream.split(":", 1)[1]))

    async def changed(self, tenant_id: int, q: Queue) -> None:
        self.directory.invalidate(tenant_id)
        try:
            await self.contacts.submit(Reconfigure(tenant_id=tenant_id, queue=q.name))
        except ContactError as exc:
            raise ApiError(409, "conflict", f"stored, but the router did not take it: {exc}") from None
        d = await self.directory.get(tenant_id)
        agents = [a for a in (d.agent_ids if d else []) if q.name in d.agent_queues.get(a, [])] if d else []
        body = P.encode(P.QueueChanged(queue=settings_view(q)))
        await self.live.publish([(stream_board(tenant_id), body), *((stream_agent(tenant_id, a), body) for a in agents)])


def _dict(q: Queue) -> dict[str, Any]:
    routing = {k: v for k, v in (q.config or {}).items() if k in QUEUE_KEYS}
    return {**msgspec.to_builtins(settings_view(q)), "routing": routing}


def _routing(config: dict[str, Any], patch: dict[str, Any], queues: set[str]) -> dict[str, Any]:
    """The queue's routing config with `patch` applied; ApiError naming the first bad setting."""
    out = dict(config)
    for key, value in patch.items():
        if key not in QUEUE_KEYS:
            raise ApiError(400, "bad-request", f"routing.{key[:64]}: not a queue setting")
        if value is None:
            out.pop(key, None)
        elif isinstance(value, (dict, list)):
            raise ApiError(400, "bad-request", f"routing.{key}: expected a number or a string")
        else:
            out[key] = value
    overflow = out.get("overflow")
    if isinstance(overflow, str) and not overflow.startswith("end:") and overflow not in queues:
        raise ApiError(400, "bad-request", f"routing.overflow: no queue {overflow[:64]!r} in this tenant")
    return out


async def list_queues(request: Request) -> Response:
    p = principal(request, "admin", "supervisor")
    async with request.app.state.ctx.sessionmaker() as s:
        rows = await TenantRepo(s, p.tenant_id).queues()
    return JSONResponse([_dict(q) for q in rows])


async def patch_queue(request: Request) -> Response:
    p = principal(request, "admin")
    name = request.path_params["name"]
    req: QueuePatch = await read_body(request, QueuePatch)
    ctx = request.app.state.ctx
    async with ctx.sessionmaker() as s, s.begin():
        row = next((q for q in await TenantRepo(s, p.tenant_id).queues() if q.name == name), None)
        if row is None:
            raise ApiError(404, "not-found", f"no queue {name[:64]!r} in this tenant")
        for key in ("label", "strategy", "wrap_up_seconds", "service_level_seconds"):
            v = getattr(req, key)
            if v is not None:
                setattr(row, key, v)
        if req.ring_timeout is not None:
            row.config = {**(row.config or {}), "ring_timeout": req.ring_timeout}
        if req.routing is not None:
            row.config = _routing(row.config or {}, req.routing, {q.name for q in await TenantRepo(s, p.tenant_id).queues()})
        try:
            queue_config(row)  # what the router will build: refused here, before it is stored
        except (acd.ConfigError, ValueError, TypeError) as exc:
            raise ApiError(400, "bad-request", str(exc).replace("QueueConfig.", "")) from None
    await ctx.queue_settings.changed(p.tenant_id, row)
    return JSONResponse(_dict(row))


routes = [
    Route("/api/queues", list_queues),
    Route("/api/queues/{name}", patch_queue, methods=["PATCH"]),
]
