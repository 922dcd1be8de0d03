"""Call scripts (docs/scripts.md): admins edit a queue's draft and publish immutable versions; a contact
is pinned to the version published when it was first offered (or first opened), so a call in
progress keeps its version while the next one gets the new; the agent's path is saved move by move.

Publishing sends `content-changed {kind: "script"}` to the queue's agents and the boards, so running
desktops show the new version without a reload. Every query is scoped to the caller's tenant.
"""

from __future__ import annotations

import time
from typing import Any

import msgspec
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from realtime import scriptdef as sd
from realtime.api import ApiError, principal
from realtime.knowledge import Knowledge
from store.customers import CustomerRepo, display_name
from store.models import CallRecord, ContactScript, ScriptVersion
from store.repos import TenantRepo
from store.scripts import ScriptRepo

PEOPLE = ("agent", "supervisor", "admin")
BODY_LIMIT = 256 * 1024
MOVE_LIMIT = 8 * 1024


class ScriptService:
    """Pins contacts to the published version (told of offers as a contact observer) and tells
    desktops about publications."""

    def __init__(self, sessionmaker: async_sessionmaker[AsyncSession], knowledge: Knowledge) -> None:
        self.sessionmaker = sessionmaker
        self.knowledge = knowledge

    async def contact_offered(self, tenant_id: int, contact_id: str, agent_id: int) -> None:
        await self.pin(tenant_id, contact_id)

    async def pin(self, tenant_id: int, contact_id: str) -> tuple[ContactScript, ScriptVersion] | None:
        """The contact's pinned version, pinning the queue's latest one on first sight; None when
        the contact's queue has no published script (or the contact is unknown)."""
        async with self.sessionmaker() as s:
            repo = ScriptRepo(s, tenant_id)
            row = await repo.contact(contact_id)
            if row is not None:
                v = await repo.version_by_id(row.script_version_id)
                return (row, v) if v else None
        try:
            async with self.sessionmaker() as s, s.begin():
                rec = await TenantRepo(s, tenant_id).call_record(contact_id)
                if rec is None or rec.queue_id is None:
                    return None
                repo = ScriptRepo(s, tenant_id)
                heads = await repo.heads([rec.queue_id])
                if not heads:
                    return None
                v = heads[0][1]
                row = await repo.pin(contact_id, v, time.time())
            return row, v
        except IntegrityError:  # pinned at the same moment by the offer or another tab: that one counts
            async with self.sessionmaker() as s:
                repo = ScriptRepo(s, tenant_id)
                row = await repo.contact(contact_id)
                v = await repo.version_by_id(row.script_version_id) if row else None
            return (row, v) if row and v else None

    async def published(self, tenant_id: int, script_id: int, queue: str) -> None:
        await self.knowledge.content_changed(tenant_id, "script", script_id, "published", queue)


# ---------------------------------------------------------------- REST helpers


class DraftIn(msgspec.Struct, forbid_unknown_fields=True):
    definition: msgspec.Raw


async def _raw(request: Request, limit: int) -> bytes:
    body = await request.body()
    if len(body) > limit:
        raise ApiError(413, "too-large", f"request body over {limit // 1024} KiB")
    return body


def _bad(problems: list[str]) -> ApiError:
    return ApiError(400, "bad-script", problems[0], extra={"problems": problems})


async def _definition(request: Request) -> tuple[sd.Definition, dict[str, Any]]:
    body = await _raw(request, BODY_LIMIT)
    try:
        raw = msgspec.json.decode(body, type=DraftIn).definition
    except msgspec.ValidationError as exc:
        raise _bad([f"invalid request: {exc}"]) from None
    except msgspec.DecodeError:
        raise _bad(["the body is not valid JSON"]) from None
    try:
        d = sd.decode(bytes(raw))
    except sd.DefinitionError as exc:
        raise _bad(exc.problems) from None
    return d, msgspec.to_builtins(d)


def _json(data: Any, status: int = 200) -> Response:
    return Response(msgspec.json.encode(data), status, media_type="application/json")


def _script_id(request: Request) -> int:
    raw = request.path_params["script_id"]
    if not raw.isdigit() or len(raw) > 12:
        raise ApiError(404, "not-found", "no such script")
    return int(raw)


async def _queues(request: Request, tenant_id: int) -> dict[str, Any]:
    async with request.app.state.ctx.sessionmaker() as s:
        return {q.name: q for q in await TenantRepo(s, tenant_id).queues()}


def _version(v: ScriptVersion) -> dict[str, Any]:
    return {"version": v.version, "title": v.title, "published_at": v.published_at, "definition": v.definition}


# ---------------------------------------------------------------- admin routes


async def list_scripts(request: Request) -> Response:
    """Every queue of the tenant with its script (none yet: `script_id` null)."""
    p = principal(request, "admin")
    queues = await _queues(request, p.tenant_id)
    async with request.app.state.ctx.sessionmaker() as s:
        by_queue = {r.queue_id: r for r in await ScriptRepo(s, p.tenant_id).scripts()}
    out = []
    for q in queues.values():
        r = by_queue.get(q.id)
        out.append({"queue": q.name, "queue_label": q.label, "script_id": r.id if r else None,
                    "title": r.draft.get("title") if r else None, "version": r.version if r else 0,
                    "updated_at": r.updated_at if r else None})
    return _json(out)


async def get_script(request: Request) -> Response:
    p = principal(request, "admin")
    sid = _script_id(request)
    async with request.app.state.ctx.sessionmaker() as s:
        repo = ScriptRepo(s, p.tenant_id)
        row = await repo.script(sid)
        if row is None:
            raise ApiError(404, "not-found", "no such script")
        versions = await repo.versions(sid)
    queue = next((q for q in (await _queues(request, p.tenant_id)).values() if q.id == row.queue_id), None)
    return _json({"script_id": row.id, "queue": queue.name if queue else None, "draft": row.draft,
                  "version": row.version, "updated_at": row.updated_at,
                  "versions": [{k: v for k, v in _version(x).items() if k != "definition"} for x in versions]})


async def save_draft(request: Request) -> Response:
    """PUT /api/scripts/queue/{queue} {"definition"}: the queue's draft (created on first save)."""
    p = principal(request, "admin")
    name = request.path_params["queue"]
    queue = (await _queues(request, p.tenant_id)).get(name)
    if queue is None:
        raise ApiError(404, "not-found", f"no queue {name[:64]!r}")
    _, draft = await _definition(request)
    now = time.time()
    try:
        async with request.app.state.ctx.sessionmaker() as s, s.begin():
            repo = ScriptRepo(s, p.tenant_id)
            row = await repo.script_of_queue(queue.id)
            created = row is None
            if row is None:
                row = await repo.add_script(queue_id=queue.id, draft=draft, updated_at=now, updated_by=p.user_id)
            else:
                row.draft, row.updated_at, row.updated_by = draft, now, p.user_id
    except IntegrityError:
        raise ApiError(409, "conflict", f"queue {name!r}: its script was created at the same moment; try again") from None
    return _json({"script_id": row.id, "queue": name, "draft": draft, "version": row.version, "updated_at": now},
                 201 if created else 200)


async def validate(request: Request) -> Response:
    """POST /api/scripts/validate {"definition"}: 200 when usable, else 400 naming every problem."""
    principal(request, "admin")
    d, _ = await _definition(request)
    return _json({"ok": True, "steps": len(d.steps)})


async def publish(request: Request) -> Response:
    """The draft becomes version N+1; desktops are told (contacts in progress keep theirs)."""
    p = principal(request, "admin")
    sid = _script_id(request)
    ctx = request.app.state.ctx
    try:
        async with ctx.sessionmaker() as s, s.begin():
            repo = ScriptRepo(s, p.tenant_id)
            row = await repo.script(sid)
            if row is None:
                raise ApiError(404, "not-found", "no such script")
            try:
                d = sd.decode(row.draft)
            except sd.DefinitionError as exc:  # drafts are checked when saved; rules may have grown since
                raise _bad(exc.problems) from None
            v = await repo.publish(row, d.title, time.time(), p.user_id)
            queue_id = row.queue_id
    except IntegrityError:
        raise ApiError(409, "conflict", "another version was published at the same moment; try again") from None
    queue = next((q.name for q in (await _queues(request, p.tenant_id)).values() if q.id == queue_id), None)
    await ctx.scripts.published(p.tenant_id, sid, queue)
    return _json({"script_id": sid, "queue": queue, "version": v.version, "title": v.title,
                  "published_at": v.published_at}, 201)


# ---------------------------------------------------------------- desktop routes


async def mine(request: Request) -> Response:
    """The latest published script of each of the caller's queues (admins and supervisors: all queues)."""
    p = principal(request, *PEOPLE)
    ctx = request.app.state.ctx
    queues = await _queues(request, p.tenant_id)
    if not p.has_any("supervisor", "admin"):
        d = await ctx.directory.get(p.tenant_id)
        names = set(d.agent_queues.get(p.user_id, [])) if d else set()
        queues = {k: q for k, q in queues.items() if k in names}
    by_id = {q.id: q for q in queues.values()}
    async with ctx.sessionmaker() as s:
        heads = await ScriptRepo(s, p.tenant_id).heads(by_id)
    return _json(sorted(({"queue": by_id[sc.queue_id].name, "queue_label": by_id[sc.queue_id].label,
                          "script_id": sc.id, "version": v.version, "title": v.title} for sc, v in heads),
                        key=lambda x: x["queue"]))


async def _contact(request: Request, write: bool) -> tuple[Any, CallRecord]:
    """The caller and the contact's record: its agent (offered or answered) may write, supervisors
    and admins may read; anyone else (another tenant included) is told it does not exist."""
    p = principal(request, *PEOPLE)
    ctx = request.app.state.ctx
    cid = request.path_params["contact_id"]
    async with ctx.sessionmaker() as s:
        rec = await TenantRepo(s, p.tenant_id).call_record(cid[:64])
    mine = rec is not None and (rec.agent_id == p.user_id or p.user_id in (rec.data or {}).get("offered_to", []))
    if rec is not None and not mine:
        # Just offered: the agent's state names the contact before the record lists the offer.
        state, _ = await ctx.agents.live.agent(p.tenant_id, p.user_id)
        mine = state.contact_id == rec.contact_id
    if rec is None or not (mine or (not write and p.has_any("supervisor", "admin"))):
        raise ApiError(404, "not-found", "no such contact")
    return p, rec


async def _state(request: Request, p: Any, rec: CallRecord, cs: ContactScript, v: ScriptVersion) -> dict[str, Any]:
    """What the desktop shows: the current step with its text filled in, the path, the progress."""
    d = sd.decode(v.definition)
    stack = sd.position(d, cs.path)
    step = next(s for s in d.steps if s.id == stack[-1])
    shown: dict[str, Any] = {"id": step.id, "kind": sd.kind(step),
                             "text": sd.render(step.text, await _values(request, p, rec))}
    if isinstance(step, sd.QuestionStep):
        shown["answers"] = [a.label for a in step.answers]
    if isinstance(step, sd.FieldStep):
        shown.update(key=step.key, label=step.label, type=step.type, required=step.required)
    return {
        "contact_id": rec.contact_id, "script_id": v.script_id, "version": v.version, "title": v.title,
        "step": shown, "trail": stack, "done": len(stack) - 1, "remaining": sd.remaining(d, step.id),
        "path": cs.path, "fields": sd.fields_of(cs.path), "finished_at": cs.finished_at,
    }


async def _values(request: Request, p: Any, rec: CallRecord) -> dict[str, str | None]:
    ctx = request.app.state.ctx
    d = await ctx.directory.get(p.tenant_id)
    agent = d.users.get(rec.agent_id or p.user_id) if d else None
    values: dict[str, str | None] = {
        "agent.name": agent.display_name if agent else None, "agent.username": agent.username if agent else None,
        "call.number": rec.caller, "call.id": rec.contact_id,
    }
    async with ctx.sessionmaker() as s:
        queue = next((q for q in await TenantRepo(s, p.tenant_id).queues() if q.id == rec.queue_id), None)
        c = await CustomerRepo(s, p.tenant_id).get(rec.customer_id) if rec.customer_id else None
    if queue is not None:
        values.update({"queue.name": queue.name, "queue.label": queue.label})
    if c is not None:
        values.update({"customer.first_name": c.first_name, "customer.last_name": c.last_name,
                       "customer.name": display_name(c), "customer.company": c.company, "customer.email": c.email})
    # The caller's name and the contact's data live with the contact while it is in progress.
    live = next((x for x in await ctx.contacts.contacts_of(p.tenant_id, rec.agent_id or p.user_id)
                 if x.id == rec.contact_id), None)
    if live is not None:
        values["call.name"] = live.caller_name
        values.update({f"data.{k}": str(val) for k, val in (live.data or {}).items()})
    return values


async def contact_script(request: Request) -> Response:
    """GET /api/contacts/{id}/script: the contact's script and where the agent is in it (pinned on first sight)."""
    p, rec = await _contact(request, write=False)
    pinned = await request.app.state.ctx.scripts.pin(p.tenant_id, rec.contact_id)
    if pinned is None:  # an answer, not an error: most queues may have no script
        return _json({"contact_id": rec.contact_id, "none": True})
    return _json(await _state(request, p, rec, *pinned))


async def move(request: Request) -> Response:
    """POST /api/contacts/{id}/script {"step","answer"|"value"|"back"}: one move, saved at once."""
    p, rec = await _contact(request, write=True)
    body = await _raw(request, MOVE_LIMIT)
    try:
        m = msgspec.json.decode(body, type=sd.Move)
    except msgspec.ValidationError as exc:
        raise ApiError(400, "bad-request", f"invalid move: {exc}") from None
    except msgspec.DecodeError:
        raise ApiError(400, "bad-request", "the body is not valid JSON") from None
    ctx = request.app.state.ctx
    await _pin(ctx, p.tenant_id, rec.contact_id)
    async with ctx.sessionmaker() as s, s.begin():
        cs, v = await _locked(s, p.tenant_id, rec.contact_id)
        if cs.finished_at is not None:
            raise ApiError(409, "finished", "the script of this contact is finished (wrapped up)")
        try:
            entry = sd.apply(sd.decode(v.definition), list(cs.path), m, time.time())
        except sd.StepError as exc:
            raise ApiError(409 if str(exc).startswith("step:") else 400, "bad-move", str(exc)) from None
        cs.path = [*cs.path, entry]
        cs.updated_at = entry["at"]  # type: ignore[assignment]
    return _json(await _state(request, p, rec, cs, v))


async def _pin(ctx: Any, tenant_id: int, contact_id: str) -> None:
    """Pin the contact's script version if it was not yet; 404 `no-script` when its queue has none."""
    if await ctx.scripts.pin(tenant_id, contact_id) is None:
        raise ApiError(404, "no-script", f"no script for the queue of contact {contact_id}")


async def _locked(s: AsyncSession, tenant_id: int, contact_id: str) -> tuple[Any, Any]:
    """The contact's script row, locked for this transaction, and its version."""
    repo = ScriptRepo(s, tenant_id)
    cs = await repo.contact(contact_id, for_update=True)
    v = await repo.version_by_id(cs.script_version_id) if cs else None
    if cs is None or v is None:
        raise ApiError(404, "no-script", "no script for this contact")
    return cs, v


async def finish(request: Request) -> Response:
    """POST /api/contacts/{id}/script/finish: the contact is wrapped up; the path is final."""
    p, rec = await _contact(request, write=True)
    ctx = request.app.state.ctx
    await _pin(ctx, p.tenant_id, rec.contact_id)
    async with ctx.sessionmaker() as s, s.begin():
        cs, v = await _locked(s, p.tenant_id, rec.contact_id)
        if cs.finished_at is None:
            cs.finished_at = time.time()
    return _json(await _state(request, p, rec, cs, v))


async def attach(session: AsyncSession, tenant_id: int, history: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """A customer's contact history with each contact's script and path (`script`: null without one)."""
    scripts = await ScriptRepo(session, tenant_id).of_contacts(h["contact_id"] for h in history)
    for h in history:
        h["script"] = scripts.get(h["contact_id"])
    return history


routes = [
    Route("/api/scripts", list_scripts),
    Route("/api/scripts/mine", mine),
    Route("/api/scripts/validate", validate, methods=["POST"]),
    Route("/api/scripts/queue/{queue}", save_draft, methods=["PUT"]),
    Route("/api/scripts/{script_id}", get_script),
    Route("/api/scripts/{script_id}/publish", publish, methods=["POST"]),
    Route("/api/contacts/{contact_id}/script", contact_script),
    Route("/api/contacts/{contact_id}/script", move, methods=["POST"]),
    Route("/api/contacts/{contact_id}/script/finish", finish, methods=["POST"]),
]
