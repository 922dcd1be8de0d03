"""REST routes of the queues' data forms (docs/forms.md): admins write and publish definitions, agents
fill a contact's form during the call and in wrap-up, supervisors export the answers as CSV.
Every query is bound to the caller's tenant: another tenant's queue or contact id is not found."""

from __future__ import annotations

import csv
import io
import re
import time
from typing import Annotated, Any

import msgspec
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from realtime import protocol as P
from realtime.api import ApiError, principal
from realtime.contacts import ContactCenter
from realtime.directory import Directory
from realtime.forms import DefinitionError, FormDef, check_answers, missing_required, parse_definition
from realtime.live import LiveStore, stream_agent, stream_board
from realtime.phone import PhoneError
from store.forms import FormRepo
from store.models import CallRecord, Form, FormAnswer, FormVersion, Queue
from store.report_time import parse_time
from store.repos import TenantRepo, tenant_by_id

# A definition or an answer larger than this is refused (413) before it is read.
BODY_LIMIT = 64 * 1024
EXPORT_LIMIT = 100_000
EXPORT_MAX_DAYS = 366
WRITERS = ("admin",)
READERS = ("admin", "supervisor")
INCOMPLETE = "form-incomplete"


class AnswerIn(msgspec.Struct, forbid_unknown_fields=True):
    data: Annotated[dict[Annotated[str, msgspec.Meta(max_length=64)], Any], msgspec.Meta(max_length=100)]
    # A draft may leave required fields empty.
    draft: bool = False
    # The version the agent filled; a different one than the contact's is refused (409).
    version: int | None = None


async def _raw(request: Request) -> bytes:
    body = await request.body()
    if len(body) > BODY_LIMIT:
        raise ApiError(413, "too-large", f"request body over {BODY_LIMIT // 1024} KiB")
    return body


async def _json_body(request: Request) -> Any:
    try:
        return msgspec.json.decode(await _raw(request))
    except msgspec.DecodeError:
        raise ApiError(400, "bad-request", "the body is not valid JSON") from None


def _definition(raw: Any) -> FormDef:
    try:
        return parse_definition(raw)
    except DefinitionError as exc:
        raise ApiError(400, "invalid-definition", str(exc)) from None


def _version_view(v: FormVersion, queue: str) -> dict[str, Any]:
    return {"queue": queue, "version": v.version, "published_at": v.published_at, "definition": v.definition}


class Forms:
    """Publishing forms to running desktops and the wrap-up rule."""

    def __init__(self, live: LiveStore, sessionmaker: async_sessionmaker[AsyncSession], directory: Directory,
                 contacts: ContactCenter) -> None:
        self.live = live
        self.sessionmaker = sessionmaker
        self.directory = directory
        self.contacts = contacts

    async def published(self, tenant_id: int, queue: str, version: int | None) -> None:
        d = await self.directory.get(tenant_id)
        agents = [a for a in d.agent_ids if queue in d.agent_queues.get(a, [])] if d else []
        body = P.encode(P.FormChanged(queue=queue, version=version))
        await self.live.publish([(stream_board(tenant_id), body), *((stream_agent(tenant_id, a), body) for a in agents)])

    async def contact(self, tenant_id: int, user_id: int, contact_id: str
                      ) -> tuple[P.ContactView | None, CallRecord | None]:
        """The agent's live contact with this id (offered to it, connected or in wrap-up), and its call
        record. An offered one counts: the desktop may ask as it shows the answer, before the live
        view it reads here says connected."""
        live = next((c for c in await self.contacts.contacts_of(tenant_id, user_id) if c.id == contact_id), None)
        async with self.sessionmaker() as s:
            record = await TenantRepo(s, tenant_id).call_record(contact_id)
        return live, record

    async def form_of(self, s: AsyncSession, tenant_id: int, contact_id: str, live: P.ContactView | None,
                      record: CallRecord | None) -> tuple[str | None, FormVersion | None, FormAnswer | None]:
        """The contact's queue, the form version it fills (its answer's, else the one published when it
        was answered) and its answer so far."""
        repo = FormRepo(s, tenant_id)
        answer = await repo.answer(contact_id)
        queues = {q.name: q for q in await TenantRepo(s, tenant_id).queues()}
        by_id = {q.id: q.name for q in queues.values()}
        queue = live.queue if live else answer.queue if answer else by_id.get(record.queue_id or 0) if record else None
        if answer is not None:
            return answer.queue, await repo.version_by_id(answer.form_version_id), answer
        if queue is None or queue not in queues:
            return queue, None, None
        return queue, await repo.version_for(queues[queue].id, record.answered_at if record else None), None

    async def check_wrap_up(self, tenant_id: int, agent_id: int, contact_id: str) -> None:
        """Refuse (PhoneError `form-incomplete`) to complete a wrap-up while the contact's form says
        `required_before_wrap_up` and required fields are not saved."""
        live, record = await self.contact(tenant_id, agent_id, contact_id)
        if live is None:
            return  # not this agent's contact: the router says so
        async with self.sessionmaker() as s:
            _, version, answer = await self.form_of(s, tenant_id, contact_id, live, record)
        if version is None:
            return
        form = msgspec.convert(version.definition, FormDef)
        if not form.required_before_wrap_up:
            return
        missing = missing_required(form, None if answer is None or answer.draft else answer.data)
        if missing:
            raise PhoneError(INCOMPLETE, f"form: save the required fields before finishing: {', '.join(missing)}")


# ---------------------------------------------------------------- definitions (admins)


async def _queue(s: AsyncSession, tenant_id: int, name: str) -> Queue:
    row = next((q for q in await TenantRepo(s, tenant_id).queues() if q.name == name), None)
    if row is None:
        raise ApiError(404, "not-found", f"no queue {name[:64]!r} in this tenant")
    return row


async def _form_view(repo: FormRepo, row: Form | None, queue: Queue) -> dict[str, Any]:
    versions = await repo.versions(row.id) if row else []
    return {
        "queue": queue.name, "label": queue.label, "id": row.id if row else None,
        "definition": row.definition if row else None, "published_version": row.published_version if row else None,
        "updated_at": row.updated_at if row else None,
        "versions": [{"version": v.version, "published_at": v.published_at} for v in versions],
    }


async def list_forms(request: Request) -> Response:
    p = principal(request, *READERS)
    async with request.app.state.ctx.sessionmaker() as s:
        repo = FormRepo(s, p.tenant_id)
        forms = {q: f for f, q in await repo.forms()}
        queues = await TenantRepo(s, p.tenant_id).queues()
        return JSONResponse([await _form_view(repo, forms.get(q.name), q) for q in queues])


async def get_form(request: Request) -> Response:
    p = principal(request, *READERS)
    async with request.app.state.ctx.sessionmaker() as s:
        q = await _queue(s, p.tenant_id, request.path_params["queue"])
        repo = FormRepo(s, p.tenant_id)
        return JSONResponse(await _form_view(repo, await repo.form(q.id), q))


async def save_form(request: Request) -> Response:
    """PUT /api/forms/{queue}: the draft (agents see it once published)."""
    p = principal(request, *WRITERS)
    form = _definition(await _json_body(request))
    async with request.app.state.ctx.sessionmaker() as s, s.begin():
        q = await _queue(s, p.tenant_id, request.path_params["queue"])
        repo = FormRepo(s, p.tenant_id)
        row = await repo.save_draft(q.id, msgspec.to_builtins(form), p.user_id, time.time())
        return JSONResponse(await _form_view(repo, row, q))


async def publish_form(request: Request) -> Response:
    """POST /api/forms/{queue}/publish: the draft becomes the next version; running desktops get it."""
    p = principal(request, *WRITERS)
    ctx = request.app.state.ctx
    try:
        async with ctx.sessionmaker() as s, s.begin():
            q = await _queue(s, p.tenant_id, request.path_params["queue"])
            repo = FormRepo(s, p.tenant_id)
            row = await repo.form(q.id)
            if row is None:
                raise ApiError(404, "not-found", f"queue {q.name!r} has no form to publish; save one first")
            _definition(row.definition)
            v = await repo.publish(row, p.user_id, time.time())
            out = _version_view(v, q.name)
    except IntegrityError:
        raise ApiError(409, "conflict", "another version was published at the same moment; publish again") from None
    await ctx.forms.published(p.tenant_id, q.name, v.version)
    return JSONResponse(out, 201)


async def withdraw_form(request: Request) -> Response:
    """POST /api/forms/{queue}/withdraw: new contacts get no form; answers keep their versions."""
    p = principal(request, *WRITERS)
    ctx = request.app.state.ctx
    async with ctx.sessionmaker() as s, s.begin():
        q = await _queue(s, p.tenant_id, request.path_params["queue"])
        row = await FormRepo(s, p.tenant_id).form(q.id)
        if row is None:
            raise ApiError(404, "not-found", f"queue {q.name!r} has no form")
        row.published_version = None
    await ctx.forms.published(p.tenant_id, q.name, None)
    return JSONResponse({"queue": q.name, "published_version": None})


async def get_version(request: Request) -> Response:
    p = principal(request, *READERS)
    raw = request.path_params["version"]
    async with request.app.state.ctx.sessionmaker() as s:
        q = await _queue(s, p.tenant_id, request.path_params["queue"])
        repo = FormRepo(s, p.tenant_id)
        row = await repo.form(q.id)
        v = await repo.version(row.id, int(raw)) if row and re.fullmatch(r"\d{1,9}", raw) else None
    if v is None:
        raise ApiError(404, "not-found", "no such version")
    return JSONResponse(_version_view(v, q.name))


# ---------------------------------------------------------------- a contact's form (agents)


def _contact_id(request: Request) -> str:
    cid = request.path_params["contact_id"]
    if not re.fullmatch(r"[A-Za-z0-9_.:-]{1,64}", cid):
        raise ApiError(404, "not-found", "no such contact")
    return cid


def _answer_view(a: FormAnswer | None, names: dict[int, str]) -> dict[str, Any] | None:
    if a is None:
        return None
    return {"version": a.version, "data": a.data, "draft": a.draft, "filled_by": names.get(a.filled_by or 0),
            "filled_at": a.filled_at}


async def _contact_form(request: Request, write: bool) -> tuple[Any, ...]:
    p = principal(request, "agent", *READERS)
    cid = _contact_id(request)
    forms: Forms = request.app.state.ctx.forms
    live, record = await forms.contact(p.tenant_id, p.user_id, cid)
    mine = live is not None or (record is not None and record.agent_id == p.user_id)
    if not mine and (write or not p.has_any(*READERS)):
        raise ApiError(404, "not-found", f"no contact {cid!r} of yours")
    if record is None and live is None:
        raise ApiError(404, "not-found", "no such contact")
    if write and live is not None and live.status == "ringing":
        raise ApiError(409, "conflict", "the contact is still ringing: answer it before filling its form")
    return p, cid, live, record


async def contact_form(request: Request) -> Response:
    """GET /api/forms/contact/{contact_id}: the form the contact fills (null: its queue has none) and its answer."""
    p, cid, live, record = await _contact_form(request, write=False)
    ctx = request.app.state.ctx
    d = await ctx.directory.get(p.tenant_id)
    names = {u.id: u.username for u in d.users.values()} if d else {}
    async with ctx.sessionmaker() as s:
        queue, version, answer = await ctx.forms.form_of(s, p.tenant_id, cid, live, record)
    return JSONResponse({"contact_id": cid, "queue": queue,
                         "form": _version_view(version, queue or "") if version else None,
                         "answer": _answer_view(answer, names)})


async def save_answer(request: Request) -> Response:
    """PUT /api/forms/contact/{contact_id}: the agent's answer, checked against the contact's version."""
    p, cid, live, record = await _contact_form(request, write=True)
    try:
        req = msgspec.json.decode(await _raw(request), type=AnswerIn)
    except msgspec.ValidationError as exc:
        raise ApiError(422, "bad-request", f"invalid request: {exc}") from None
    except msgspec.DecodeError:
        raise ApiError(400, "bad-request", "the body is not valid JSON") from None
    ctx = request.app.state.ctx
    region = (await ctx.customers.tenant(p.tenant_id))[1]
    async with ctx.sessionmaker() as s, s.begin():
        queue, version, _ = await ctx.forms.form_of(s, p.tenant_id, cid, live, record)
        if version is None or queue is None:
            raise ApiError(404, "not-found", f"the contact's queue {queue!r} has no form")
        if req.version is not None and req.version != version.version:
            raise ApiError(409, "conflict", f"version: this contact fills version {version.version}, not {req.version}")
        clean, errors = check_answers(msgspec.convert(version.definition, FormDef), req.data, draft=req.draft,
                                      region=region)
        if errors:
            message = "; ".join(f"{k}: {v}" for k, v in errors.items())
            return JSONResponse({"error": "invalid-answer", "message": message, "fields": errors}, 422)
        row = await FormRepo(s, p.tenant_id).save_answer(cid, queue, version, clean, req.draft, p.user_id, time.time())
        return JSONResponse(_answer_view(row, {p.user_id: p.username}))


# ---------------------------------------------------------------- export (supervisors)


async def export_answers(request: Request) -> Response:
    """GET /api/reports/forms?queue=&from=&to=&format=csv|json: a queue's answers filled in the period;
    one column per field of the versions found (a version's own fields, in its order, then the others')."""
    p = principal(request, *READERS)
    qp = request.query_params
    unknown = set(qp.keys()) - {"from", "to", "queue", "format"}
    if unknown:
        raise ApiError(400, "bad-request", f"unknown parameter {sorted(unknown)[0]!r}; known: from, to, queue, format")
    fmt = qp.get("format", "csv")
    if fmt not in ("json", "csv"):
        raise ApiError(400, "bad-request", f"format {fmt[:20]!r} is not json or csv")
    if not qp.get("queue"):
        raise ApiError(400, "bad-request", "queue: name the queue whose answers to export")
    if not qp.get("from") or not qp.get("to"):
        raise ApiError(400, "bad-request", "from and to are required (YYYY-MM-DD, YYYY-MM-DDTHH:MM or epoch seconds)")
    ctx = request.app.state.ctx
    async with ctx.sessionmaker() as s:
        q = await _queue(s, p.tenant_id, qp["queue"])
        tenant = await tenant_by_id(s, p.tenant_id)
        tz = (tenant.settings or {}).get("timezone") if tenant else None
        try:
            start, end = parse_time(qp["from"], tz), parse_time(qp["to"], tz)
        except ValueError as exc:
            raise ApiError(400, "bad-request", str(exc)) from None
        if end <= start:
            raise ApiError(400, "bad-request", "to must be after from")
        if end - start > EXPORT_MAX_DAYS * 86400 + 3600:
            raise ApiError(400, "range-too-long", f"an export covers at most {EXPORT_MAX_DAYS} days")
        repo = FormRepo(s, p.tenant_id)
        rows = await repo.answers(q.name, start, end, EXPORT_LIMIT)
        versions = await repo.versions_by_id({a.form_version_id for a, _ in rows})
    columns: list[str] = []
    for v in sorted(versions.values(), key=lambda v: -v.version):
        columns += [f["key"] for f in v.definition.get("fields", []) if f["key"] not in columns]
    out = [{"contact_id": a.contact_id, "agent": who, "filled_at": a.filled_at, "version": a.version,
            "draft": a.draft, "data": a.data} for a, who in rows]
    if fmt == "json":
        return JSONResponse({"queue": q.name, "from": start, "to": end, "columns": columns, "rows": out})
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\r\n")
    w.writerow(["contact_id", "agent", "filled_at", "version", "draft", *columns])
    for r in out:
        at = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(r["filled_at"]))
        w.writerow([r["contact_id"], r["agent"] or "", at, r["version"], "yes" if r["draft"] else "no",
                    *(_cell(r["data"].get(c)) for c in columns)])
    return Response(buf.getvalue(), media_type="text/csv; charset=utf-8",
                    headers={"Content-Disposition": f'attachment; filename="form-{q.name}.csv"'})


def _cell(v: Any) -> str:
    if v is None:
        return ""
    if isinstance(v, bool):
        return "yes" if v else "no"
    if isinstance(v, list):
        return "; ".join(str(x) for x in v)
    return str(v)


routes = [
    Route("/api/forms", list_forms),
    Route("/api/forms/contact/{contact_id}", contact_form),
    Route("/api/forms/contact/{contact_id}", save_answer, methods=["PUT"]),
    Route("/api/forms/{queue}", get_form),
    Route("/api/forms/{queue}", save_form, methods=["PUT"]),
    Route("/api/forms/{queue}/publish", publish_form, methods=["POST"]),
    Route("/api/forms/{queue}/withdraw", withdraw_form, methods=["POST"]),
    Route("/api/forms/{queue}/versions/{version}", get_version),
    Route("/api/reports/forms", export_answers),
]
