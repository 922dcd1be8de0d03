"""REST routes of the knowledge base: snippets, articles, search and suggestions, work instructions
(docs/knowledge.md). Admins and supervisors write; agents read, render snippets and acknowledge.
Every query is scoped to the caller's tenant: another tenant's id is simply not found."""

from __future__ import annotations

import re
import time
from collections.abc import Sequence
from typing import Annotated, Any

import msgspec
from sqlalchemy.exc import IntegrityError
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from realtime.api import ApiError, principal
from realtime.kbtext import check_snippet, markdown_html, placeholders, render_snippet
from store.knowledge import Hit, KnowledgeRepo, search_terms
from store.models import Article, Snippet
from store.repos import TenantRepo

WRITERS = ("admin", "supervisor")
READERS = ("agent", "supervisor", "admin")
BODY_LIMIT = 256 * 1024

Name = Annotated[str, msgspec.Meta(min_length=1, max_length=64)]


class SnippetIn(msgspec.Struct, forbid_unknown_fields=True):
    name: Annotated[str, msgspec.Meta(min_length=1, max_length=200)]
    shortcut: Annotated[str, msgspec.Meta(pattern=r"^[A-Za-z0-9_.-]{1,64}$")]
    text: Annotated[str, msgspec.Meta(min_length=1, max_length=4000)]
    # A queue's name; none: every queue of the tenant.
    queue: Name | None = None


class ArticleIn(msgspec.Struct, forbid_unknown_fields=True):
    title: Annotated[str, msgspec.Meta(min_length=1, max_length=300)]
    body_md: Annotated[str, msgspec.Meta(max_length=200_000)]
    tags: Annotated[list[Name], msgspec.Meta(max_length=30)] = []
    queues: Annotated[list[Name], msgspec.Meta(max_length=50)] = []
    wrapup_codes: Annotated[list[Name], msgspec.Meta(max_length=50)] = []


class InstructionIn(msgspec.Struct, forbid_unknown_fields=True):
    text: Annotated[str, msgspec.Meta(min_length=1, max_length=2000)]
    queues: Annotated[list[Name], msgspec.Meta(min_length=1, max_length=50)]
    # Minutes until it is no longer shown (default 8 hours, at most a week).
    expires_minutes: Annotated[int, msgspec.Meta(ge=1, le=10080)] = 480


async def _body(request: Request, kind: type[Any]) -> Any:
    body = await request.body()
    if len(body) > BODY_LIMIT:
        raise ApiError(413, "too-large", f"request body over {BODY_LIMIT // 1024} KiB")
    try:
        return msgspec.json.decode(body, type=kind)
    except msgspec.ValidationError as exc:
        raise ApiError(422, "bad-request", f"invalid request: {exc}") from None
    except msgspec.DecodeError:
        raise ApiError(400, "bad-request", "the body is not valid JSON") from None


def _int(raw: str | None, field: str, default: int, lo: int, hi: int) -> int:
    if raw is None or raw == "":
        return default
    if not re.fullmatch(r"\d{1,9}", raw) or not lo <= int(raw) <= hi:
        raise ApiError(400, "bad-request", f"{field}: expected a whole number from {lo} to {hi}, got {raw[:40]!r}")
    return int(raw)


def _path_id(request: Request, name: str, what: str) -> int:
    raw = request.path_params[name]
    if not re.fullmatch(r"\d{1,12}", raw):
        raise ApiError(404, "not-found", f"no such {what}")
    return int(raw)


async def _queue_ids(request: Request, tenant_id: int) -> dict[str, int]:
    async with request.app.state.ctx.sessionmaker() as s:
        return {q.name: q.id for q in await TenantRepo(s, tenant_id).queues()}


async def _check_names(request: Request, tenant_id: int, queues: Sequence[str], codes: Sequence[str] = ()) -> None:
    known = await _queue_ids(request, tenant_id)
    for q in queues:
        if q not in known:
            raise ApiError(422, "bad-request", f"queues: no queue {q!r} in this tenant")
    if codes:
        async with request.app.state.ctx.sessionmaker() as s:
            have = {c.code for c in await TenantRepo(s, tenant_id).wrapup_codes()}
        for c in codes:
            if c not in have:
                raise ApiError(422, "bad-request", f"wrapup_codes: no wrap-up code {c!r} in this tenant")


def _json(data: Any, status: int = 200) -> Response:
    return Response(msgspec.json.encode(data), status, media_type="application/json")


# ---------------------------------------------------------------- snippets


def _snippet(row: Snippet, queue_names: dict[int, str]) -> dict[str, Any]:
    return {
        "id": row.id, "name": row.name, "shortcut": row.shortcut, "text": row.text,
        "queue": queue_names.get(row.queue_id) if row.queue_id else None,
        "placeholders": placeholders(row.text), "updated_at": row.updated_at,
    }


async def list_snippets(request: Request) -> Response:
    """Agents: the tenant-wide snippets and those of their queues; supervisors and admins: all."""
    p = principal(request, *READERS)
    ctx = request.app.state.ctx
    ids = await _queue_ids(request, p.tenant_id)
    names = {v: k for k, v in ids.items()}
    mine: list[int] | None = None
    if not p.has_any(*WRITERS):
        d = await ctx.directory.get(p.tenant_id)
        mine = [ids[q] for q in (d.agent_queues.get(p.user_id, []) if d else []) if q in ids]
    async with ctx.sessionmaker() as s:
        rows = await KnowledgeRepo(s, p.tenant_id).snippets(mine)
    return _json([_snippet(r, names) for r in rows])


async def _save_snippet(request: Request, snippet_id: int | None) -> Response:
    p = principal(request, *WRITERS)
    req: SnippetIn = await _body(request, SnippetIn)
    try:
        check_snippet(req.text)
    except ValueError as exc:
        raise ApiError(422, "bad-request", f"text: {exc}") from None
    ids = await _queue_ids(request, p.tenant_id)
    if req.queue is not None and req.queue not in ids:
        raise ApiError(422, "bad-request", f"queue: no queue {req.queue!r} in this tenant")
    ctx = request.app.state.ctx
    fields = dict(name=req.name, shortcut=req.shortcut, text=req.text, queue_id=ids.get(req.queue or ""),
                  updated_at=time.time(), updated_by=p.user_id)
    try:
        async with ctx.sessionmaker() as s, s.begin():
            repo = KnowledgeRepo(s, p.tenant_id)
            if snippet_id is None:
                row = await repo.add_snippet(**fields)
            else:
                row = await repo.snippet(snippet_id)
                if row is None:
                    raise ApiError(404, "not-found", "no such snippet")
                old_queue = row.queue_id
                for k, v in fields.items():
                    setattr(row, k, v)
                await s.flush()
    except IntegrityError:
        raise ApiError(409, "conflict", f"shortcut: {req.shortcut!r} is taken by another snippet") from None
    names = {v: k for k, v in ids.items()}
    action = "created" if snippet_id is None else "updated"
    await ctx.knowledge.content_changed(p.tenant_id, "snippet", row.id, action, req.queue)
    if snippet_id is not None and old_queue != row.queue_id:  # the agents it left see it go too
        await ctx.knowledge.content_changed(p.tenant_id, "snippet", row.id, action, names.get(old_queue or 0))
    return _json(_snippet(row, names), 201 if snippet_id is None else 200)


async def create_snippet(request: Request) -> Response:
    return await _save_snippet(request, None)


async def update_snippet(request: Request) -> Response:
    return await _save_snippet(request, _path_id(request, "snippet_id", "snippet"))


async def delete_snippet(request: Request) -> Response:
    p = principal(request, *WRITERS)
    sid = _path_id(request, "snippet_id", "snippet")
    ctx = request.app.state.ctx
    names = {v: k for k, v in (await _queue_ids(request, p.tenant_id)).items()}
    async with ctx.sessionmaker() as s, s.begin():
        repo = KnowledgeRepo(s, p.tenant_id)
        row = await repo.snippet(sid)
        if row is None:
            raise ApiError(404, "not-found", "no such snippet")
        queue = names.get(row.queue_id or 0)
        await repo.delete(row)
    await ctx.knowledge.content_changed(p.tenant_id, "snippet", sid, "deleted", queue)
    return _json({"deleted": sid})


async def render(request: Request) -> Response:
    """A snippet's text with the placeholders filled from the agent and its contact (`contact_id`)."""
    p = principal(request, *READERS)
    sid = _path_id(request, "snippet_id", "snippet")
    ctx = request.app.state.ctx
    async with ctx.sessionmaker() as s:
        row = await KnowledgeRepo(s, p.tenant_id).snippet(sid)
    if row is None:
        raise ApiError(404, "not-found", "no such snippet")
    d = await ctx.directory.get(p.tenant_id)
    me = d.users.get(p.user_id) if d else None
    values: dict[str, str | None] = {
        "agent.name": me.display_name if me else p.username, "agent.username": p.username,
    }
    cid = request.query_params.get("contact_id")
    if cid:
        contact = next((c for c in await ctx.contacts.contacts_of(p.tenant_id, p.user_id) if c.id == cid), None)
        if contact is None:
            raise ApiError(404, "not-found", f"contact_id: no contact {cid[:64]!r} of yours")
        values.update({
            "customer.name": contact.caller_name, "customer.number": contact.caller, "queue": contact.queue,
            "contact.id": contact.id, **{f"data.{k}": v for k, v in contact.data.items()},
        })
    return _json({"id": row.id, "text": render_snippet(row.text, values)})


# ---------------------------------------------------------------- articles


def _article(row: Article, html: bool = True) -> dict[str, Any]:
    out: dict[str, Any] = {
        "id": row.id, "title": row.title, "tags": row.tags, "queues": row.queues, "wrapup_codes": row.wrapup_codes,
        "updated_at": row.updated_at,
    }
    if html:
        out["body_md"] = row.body_md
        out["body_html"] = markdown_html(row.body_md)
    return out


def _hit(h: Hit) -> dict[str, Any]:
    plain = re.sub(r"[#*_`>\[\]()!|-]+", " ", h.article.body_md)
    return {**_article(h.article, html=False), "rank": round(h.rank, 6), "excerpt": " ".join(plain.split())[:200]}


async def list_articles(request: Request) -> Response:
    p = principal(request, *READERS)
    limit = _int(request.query_params.get("limit"), "limit", 100, 1, 500)
    async with request.app.state.ctx.sessionmaker() as s:
        rows = await KnowledgeRepo(s, p.tenant_id).articles(limit)
    return _json([_article(r, html=False) for r in rows])


async def get_article(request: Request) -> Response:
    p = principal(request, *READERS)
    aid = _path_id(request, "article_id", "article")
    async with request.app.state.ctx.sessionmaker() as s:
        row = await KnowledgeRepo(s, p.tenant_id).article(aid)
    if row is None:
        raise ApiError(404, "not-found", "no such article")
    return _json(_article(row))


async def _save_article(request: Request, article_id: int | None) -> Response:
    p = principal(request, *WRITERS)
    req: ArticleIn = await _body(request, ArticleIn)
    await _check_names(request, p.tenant_id, req.queues, req.wrapup_codes)
    ctx = request.app.state.ctx
    fields = dict(title=req.title, body_md=req.body_md, tags=sorted(set(req.tags)), queues=sorted(set(req.queues)),
                  wrapup_codes=sorted(set(req.wrapup_codes)), updated_at=time.time(), updated_by=p.user_id)
    async with ctx.sessionmaker() as s, s.begin():
        repo = KnowledgeRepo(s, p.tenant_id)
        row = None
        if article_id is not None:
            row = await repo.article(article_id)
            if row is None:
                raise ApiError(404, "not-found", "no such article")
        row = await repo.save_article(row, **fields)
    await ctx.knowledge.content_changed(p.tenant_id, "article", row.id, "created" if article_id is None else "updated")
    return _json(_article(row), 201 if article_id is None else 200)


async def create_article(request: Request) -> Response:
    return await _save_article(request, None)


async def update_article(request: Request) -> Response:
    return await _save_article(request, _path_id(request, "article_id", "article"))


async def delete_article(request: Request) -> Response:
    p = principal(request, *WRITERS)
    aid = _path_id(request, "article_id", "article")
    ctx = request.app.state.ctx
    async with ctx.sessionmaker() as s, s.begin():
        repo = KnowledgeRepo(s, p.tenant_id)
        row = await repo.article(aid)
        if row is None:
            raise ApiError(404, "not-found", "no such article")
        await repo.delete(row)
    await ctx.knowledge.content_changed(p.tenant_id, "article", aid, "deleted")
    return _json({"deleted": aid})


async def search(request: Request) -> Response:
    """GET /api/kb/search?q=&queue=&limit=: articles matching every word, best first."""
    p = principal(request, *READERS)
    q = request.query_params.get("q", "")
    try:
        search_terms(q)
    except ValueError as exc:
        raise ApiError(400, "bad-request", str(exc)) from None
    if len(q) > 500:
        raise ApiError(400, "bad-request", "q: at most 500 characters")
    limit = _int(request.query_params.get("limit"), "limit", 10, 1, 50)
    queue = request.query_params.get("queue") or None
    if queue is not None and queue not in await _queue_ids(request, p.tenant_id):
        raise ApiError(400, "bad-request", f"queue: no queue {queue[:64]!r} in this tenant")
    async with request.app.state.ctx.sessionmaker() as s:
        hits = await KnowledgeRepo(s, p.tenant_id).search(q, queue, limit)
    return _json([_hit(h) for h in hits])


async def suggest(request: Request) -> Response:
    """GET /api/kb/suggest?queue=&wrapup=a,b: articles related to the queue and the wrap-up codes in use."""
    p = principal(request, *READERS)
    queue = request.query_params.get("queue") or None
    codes = [c for c in (request.query_params.get("wrapup") or "").split(",") if c][:20]
    if queue is None and not codes:
        raise ApiError(400, "bad-request", "queue or wrapup: name a queue or wrap-up codes to suggest for")
    limit = _int(request.query_params.get("limit"), "limit", 5, 1, 50)
    async with request.app.state.ctx.sessionmaker() as s:
        hits = await KnowledgeRepo(s, p.tenant_id).suggest(queue, codes, limit)
    return _json([_hit(h) for h in hits])


# ---------------------------------------------------------------- work instructions


async def publish_instruction(request: Request) -> Response:
    p = principal(request, *WRITERS)
    req: InstructionIn = await _body(request, InstructionIn)
    try:
        view = await request.app.state.ctx.knowledge.publish(
            p.tenant_id, p.user_id, req.text, req.queues, time.time() + req.expires_minutes * 60
        )
    except ValueError as exc:
        raise ApiError(422, "bad-request", str(exc)) from None
    return _json(view, 201)


async def list_instructions(request: Request) -> Response:
    """Supervisors: every instruction not expired (`?all=1`: expired too) with its acknowledgements;
    agents: those addressed to them with `acked_at`."""
    p = principal(request, *READERS)
    k = request.app.state.ctx.knowledge
    if p.has_any(*WRITERS):
        return _json(await k.for_board(p.tenant_id, include_expired=request.query_params.get("all") == "1"))
    mine = await k.for_agent(p.tenant_id, p.user_id, unacked_only=False)
    return _json([{**msgspec.to_builtins(v), "acked_at": at} for v, at in mine])


async def ack_instruction(request: Request) -> Response:
    p = principal(request, "agent")
    iid = _path_id(request, "instruction_id", "instruction")
    try:
        ack = await request.app.state.ctx.knowledge.ack(p.tenant_id, p.user_id, iid)
    except LookupError as exc:
        raise ApiError(404, "not-found", str(exc)) from None
    return _json({"instruction_id": iid, "agent_id": ack.agent_id, "at": ack.at})


routes = [
    Route("/api/snippets", list_snippets),
    Route("/api/snippets", create_snippet, methods=["POST"]),
    Route("/api/snippets/{snippet_id}", update_snippet, methods=["PUT"]),
    Route("/api/snippets/{snippet_id}", delete_snippet, methods=["DELETE"]),
    Route("/api/snippets/{snippet_id}/render", render),
    Route("/api/kb/articles", list_articles),
    Route("/api/kb/articles", create_article, methods=["POST"]),
    Route("/api/kb/articles/{article_id}", get_article),
    Route("/api/kb/articles/{article_id}", update_article, methods=["PUT"]),
    Route("/api/kb/articles/{article_id}", delete_article, methods=["DELETE"]),
    Route("/api/kb/search", search),
    Route("/api/kb/suggest", suggest),
    Route("/api/instructions", list_instructions),
    Route("/api/instructions", publish_instruction, methods=["POST"]),
    Route("/api/instructions/{instruction_id}/ack", ack_instruction, methods=["POST"]),
]
