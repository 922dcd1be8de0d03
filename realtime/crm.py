"""CRM connectors: a tenant's HTTP lookup on offer and outgoing webhooks on contact events.

Everything a tenant writes that runs on the server is a Jinja2 template or expression rendered in
`ImmutableSandboxedEnvironment` with `StrictUndefined`: reaching Python internals
(`{{ ''.__class__ }}`) is refused when the connector is saved (a static check of the template and a
trial render) and again when it renders. Header values marked secret are stored as given and
shown back masked ("****abcd").

Pure helpers (validation, masking, rendering, mapping) come first; `CrmService` does the I/O: the
lookup (bounded by its timeout) and the webhook deliveries (a background task per delivery,
retried with exponential backoff, each attempt logged in `webhook_deliveries`).
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Annotated, Any, Literal

import httpx
import msgspec
from jinja2 import StrictUndefined, TemplateError, nodes
from jinja2.exceptions import SecurityError, UndefinedError
from jinja2.sandbox import ImmutableSandboxedEnvironment
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from realtime import protocol as P
from realtime.live import LiveStore
from store.customers import try_normalise
from store.models import CallRecord, CrmConnector, WebhookDelivery

log = logging.getLogger("unidesk.crm")

EVENTS = ("offered", "answered", "wrapped-up")
MASK = "****"
MAX_OUTPUT = 64 * 1024
MAX_RESPONSE = 256 * 1024

Url = Annotated[str, msgspec.Meta(min_length=1, max_length=2000)]
Template = Annotated[str, msgspec.Meta(max_length=8000)]
HeaderName = Annotated[str, msgspec.Meta(pattern=r"^[A-Za-z0-9!#$%&'*+.^_`|~-]{1,100}$")]


class Header(msgspec.Struct, forbid_unknown_fields=True, omit_defaults=True):
    name: HeaderName
    value: Annotated[str, msgspec.Meta(max_length=2000)]
    # Shown back as "****" + its last 4 characters; sending the masked value back keeps the stored one.
    secret: bool = False


class Lookup(msgspec.Struct, forbid_unknown_fields=True, omit_defaults=True):
    """Asked on every offer; its mapped fields pop with the contact."""

    url: Url
    method: Literal["GET", "POST"] = "GET"
    headers: Annotated[list[Header], msgspec.Meta(max_length=20)] = []
    body: Template = ""
    # Field shown to the agent → Jinja expression over `response` (the parsed JSON), e.g. "response.name".
    mapping: Annotated[dict[Annotated[str, msgspec.Meta(min_length=1, max_length=64)], Template],
                       msgspec.Meta(max_length=30)] = {}
    timeout_seconds: Annotated[float, msgspec.Meta(gt=0, le=5)] = 1.0


class Webhook(msgspec.Struct, forbid_unknown_fields=True, omit_defaults=True):
    events: Annotated[list[Literal["offered", "answered", "wrapped-up"]], msgspec.Meta(min_length=1)]
    url: Url
    method: Literal["POST", "PUT"] = "POST"
    headers: Annotated[list[Header], msgspec.Meta(max_length=20)] = []
    # Empty: the event as JSON.
    body: Template = ""
    attempts: Annotated[int, msgspec.Meta(ge=1, le=10)] = 4
    # First retry after this many seconds, doubling each time.
    backoff_seconds: Annotated[float, msgspec.Meta(ge=0.05, le=600)] = 2.0
    timeout_seconds: Annotated[float, msgspec.Meta(gt=0, le=30)] = 5.0


class ConnectorConfig(msgspec.Struct, forbid_unknown_fields=True, omit_defaults=True):
    lookup: Lookup | None = None
    webhooks: Annotated[list[Webhook], msgspec.Meta(max_length=20)] = []


class ConnectorError(ValueError):
    """A connector setting that cannot be used; the message names it (a 400 reply)."""


# ---------------------------------------------------------------- templates (pure)

_env = ImmutableSandboxedEnvironment(undefined=StrictUndefined, autoescape=False)
_env.filters["tojson"] = lambda v: json.dumps(v, ensure_ascii=False, default=str)


def _static_check(where: str, tree: nodes.Node) -> None:
    for node in tree.find_all((nodes.Getattr, nodes.Getitem)):
        name = node.attr if isinstance(node, nodes.Getattr) else getattr(node.arg, "value", None)
        if isinstance(name, str) and name.startswith("_"):
            raise ConnectorError(f"{where}: refused by the sandbox: access to {name!r} is not allowed")


def check_template(where: str, source: str, expression: bool = False) -> None:
    """Refuse a template (or expression) that does not parse or reaches for internals."""
    try:
        tree = _env.parse("{{ (" + source + ") }}" if expression else source)
    except TemplateError as exc:
        raise ConnectorError(f"{where}: {exc}") from None
    _static_check(where, tree)
    try:  # a trial render with sample values: the sandbox refuses what the static check missed
        if expression:
            _env.compile_expression(source, undefined_to_none=False)(**SAMPLE, response={})
        else:
            _env.from_string(source).render(**SAMPLE)
    except SecurityError as exc:
        raise ConnectorError(f"{where}: refused by the sandbox: {exc}") from None
    except Exception:  # other failures depend on the values (a missing response field); they show at render
        pass


def render(where: str, source: str, context: dict[str, Any]) -> str:
    try:
        out = _env.from_string(source).render(**context)
    except SecurityError as exc:
        raise ConnectorError(f"{where}: refused by the sandbox: {exc}") from None
    except (TemplateError, TypeError, ValueError) as exc:
        raise ConnectorError(f"{where}: {exc}") from None
    if len(out) > MAX_OUTPUT:
        raise ConnectorError(f"{where}: renders {len(out)} characters, over {MAX_OUTPUT}")
    return out


def map_response(mapping: dict[str, str], response: Any) -> dict[str, str]:
    """The lookup's fields: each expression evaluated over `response`; missing or empty ones left out."""
    out: dict[str, str] = {}
    for name, expr in mapping.items():
        try:
            value = _env.compile_expression(expr, undefined_to_none=True)(response=response)
        except SecurityError as exc:
            raise ConnectorError(f"lookup.mapping.{name}: refused by the sandbox: {exc}") from None
        except (TemplateError, TypeError, ValueError, UndefinedError):
            continue
        if value is not None and value != "":
            out[name] = str(value)[:500]
    return out


SAMPLE: dict[str, Any] = {
    "event": "offered", "tenant": "demo", "caller": "+4930123456", "caller_raw": "030 123456",
    "contact": {"id": "c0ffee", "queue": "support", "caller": "+4930123456", "caller_name": "Erika", "data": {}},
    "customer": {"id": 1, "name": "Erika Muster", "numbers": ["+4930123456"]}, "customers": [],
    "agent": {"id": 4, "username": "agent1"}, "wrapup_code": "resolved", "notes": "", "at": 0.0,
}


def validate(cfg: ConnectorConfig) -> None:
    """Check every template and expression; raise ConnectorError naming the first bad one."""
    if cfg.lookup is not None:
        _check_url("lookup.url", cfg.lookup.url)
        check_template("lookup.url", cfg.lookup.url)
        check_template("lookup.body", cfg.lookup.body)
        for name, expr in cfg.lookup.mapping.items():
            check_template(f"lookup.mapping.{name}", expr, expression=True)
    for i, w in enumerate(cfg.webhooks):
        _check_url(f"webhooks[{i}].url", w.url)
        check_template(f"webhooks[{i}].url", w.url)
        check_template(f"webhooks[{i}].body", w.body)


def _check_url(where: str, url: str) -> None:
    if not url.lower().startswith(("http://", "https://")):
        raise ConnectorError(f"{where}: {url[:80]!r} is not an http:// or https:// URL")


def mask(value: str) -> str:
    return MASK + value[-4:] if len(value) > 8 else MASK


def masked(cfg: ConnectorConfig) -> dict[str, Any]:
    """The configuration as shown to admins: secret header values masked."""
    raw = msgspec.to_builtins(cfg)
    for part in ([raw.get("lookup")] if raw.get("lookup") else []) + raw.get("webhooks", []):
        for h in part.get("headers", []):
            if h.get("secret"):
                h["value"] = mask(h["value"])
    return raw


def keep_secrets(new: ConnectorConfig, old: ConnectorConfig | None) -> ConnectorConfig:
    """A secret sent back masked keeps its stored value (same place, same header name)."""
    if old is None:
        return new

    def merge(headers: list[Header], before: list[Header]) -> None:
        stored = {h.name.lower(): h.value for h in before if h.secret}
        for h in headers:
            if h.secret and h.value.startswith(MASK) and h.name.lower() in stored:
                h.value = stored[h.name.lower()]

    if new.lookup is not None and old.lookup is not None:
        merge(new.lookup.headers, old.lookup.headers)
    for i, w in enumerate(new.webhooks):
        if i < len(old.webhooks):
            merge(w.headers, old.webhooks[i].headers)
    for part in ([new.lookup] if new.lookup else []) + list(new.webhooks):
        for h in part.headers:
            if h.secret and h.value.startswith(MASK):
                raise ConnectorError(f"header {h.name}: a masked value with no stored secret to keep")
    return new


def from_row(row: CrmConnector | None) -> ConnectorConfig | None:
    if row is None:
        return None
    return msgspec.convert({"lookup": row.lookup, "webhooks": row.webhooks or []}, ConnectorConfig)


def contact_context(view: P.ContactView, event: str, tenant: str, region: str | None) -> dict[str, Any]:
    """What templates see: `caller` in E.164 (as given when it is not a phone number), `caller_raw`,
    `contact`, `customers`, `customer` (the single match), `agent`, `event`, `tenant`, and after
    wrap-up `wrapup_code` and `notes`."""
    customers = [msgspec.to_builtins(c) for c in view.customers]
    return {
        "event": event, "tenant": tenant, "caller": try_normalise(view.caller, region) or view.caller,
        "caller_raw": view.caller,
        "contact": {"id": view.id, "queue": view.queue, "caller": view.caller, "caller_name": view.caller_name,
                    "data": dict(view.data), "status": view.status},
        "customers": customers, "customer": customers[0] if len(customers) == 1 else None,
        "agent": {"id": view.agent_id}, "wrapup_code": None, "notes": None, "at": time.time(),
    }


# ---------------------------------------------------------------- the service


class CrmService:
    """Lookups on offer and webhook deliveries. Only the routing hub delivers webhooks (every hub
    sees the events; the one holding the ACD lease sends them, once)."""

    def __init__(self, live: LiveStore, sessionmaker: async_sessionmaker[AsyncSession],
                 leading: Callable[[], bool], tenant: Callable[[int], Awaitable[tuple[str, str | None]]]) -> None:
        self.live = live
        self.sessionmaker = sessionmaker
        self._leading = leading
        # The tenant's slug and phone region.
        self._tenant = tenant
        self._client: httpx.AsyncClient | None = None
        self._cache: dict[int, tuple[float, ConnectorConfig | None]] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self._queue: asyncio.Queue[tuple[str, bytes]] = asyncio.Queue(maxsize=10_000)
        self._runner: asyncio.Task[None] | None = None
        self._limit = asyncio.Semaphore(20)
        # (contact id, event, agent id) already handed to the webhooks, oldest first.
        self._sent: dict[tuple[str, str, int | None], None] = {}
        live.subscribe(self._on_event)

    def start(self) -> None:
        self._client = httpx.AsyncClient(follow_redirects=False)
        self._runner = asyncio.create_task(self._run(), name="crm-webhooks")

    async def close(self) -> None:
        for t in [self._runner, *self._tasks]:
            if t is not None:
                t.cancel()
        await asyncio.gather(*[t for t in [self._runner, *self._tasks] if t], return_exceptions=True)
        if self._client is not None:
            await self._client.aclose()

    # -- configuration
    async def config(self, tenant_id: int, fresh: bool = False) -> ConnectorConfig | None:
        hit = self._cache.get(tenant_id)
        if hit and not fresh and time.monotonic() - hit[0] < 5.0:
            return hit[1]
        async with self.sessionmaker() as s:
            row = (await s.execute(select(CrmConnector).where(CrmConnector.tenant_id == tenant_id))).scalar_one_or_none()
        cfg = from_row(row)
        self._cache[tenant_id] = (time.monotonic(), cfg)
        return cfg

    async def save(self, tenant_id: int, user_id: int | None, cfg: ConnectorConfig) -> ConnectorConfig:
        validate(cfg)
        async with self.sessionmaker() as s, s.begin():
            row = (await s.execute(select(CrmConnector).where(CrmConnector.tenant_id == tenant_id))).scalar_one_or_none()
            cfg = keep_secrets(cfg, from_row(row))
            raw = msgspec.to_builtins(cfg)
            if row is None:
                row = CrmConnector(tenant_id=tenant_id, webhooks=[])
                s.add(row)
            row.lookup, row.webhooks = raw.get("lookup"), raw.get("webhooks", [])
            row.updated_at, row.updated_by = time.time(), user_id
        self._cache[tenant_id] = (time.monotonic(), cfg)
        return cfg

    # -- the lookup
    async def lookup(self, tenant_id: int, context: dict[str, Any]) -> dict[str, str]:
        """The lookup's mapped fields for this contact ({} without a lookup); raises on failure."""
        cfg = await self.config(tenant_id)
        if cfg is None or cfg.lookup is None or self._client is None:
            return {}
        lk = cfg.lookup
        url = render("lookup.url", lk.url, context)
        body = render("lookup.body", lk.body, context) if lk.body else None
        headers = {h.name: h.value for h in lk.headers}
        r = await self._client.request(lk.method, url, headers=headers, content=body, timeout=lk.timeout_seconds)
        r.raise_for_status()
        if len(r.content) > MAX_RESPONSE:
            raise ConnectorError(f"lookup answer of {len(r.content)} bytes is over {MAX_RESPONSE}")
        try:
            response: Any = r.json()
        except ValueError:
            response = r.text
        return map_response(lk.mapping, response)

    # -- webhooks
    def _on_event(self, stream: str, seq: int, frame: bytes) -> None:
        if not stream.startswith("agent:") or b'"contact-' not in frame[:60] or not self._leading():
            return
        try:
            self._queue.put_nowait((stream, frame))
        except asyncio.QueueFull:
            log.error("webhook queue full: an event was not delivered")

    async def _run(self) -> None:
        dec = msgspec.json.Decoder(P.ContactOffered | P.ContactChanged)
        while True:
            stream, frame = await self._queue.get()
            try:
                msg = dec.decode(frame)
                event = _event_of(msg)
                key = (msg.contact.id, event, msg.contact.agent_id)
                if event is None or key in self._sent:
                    continue  # a resume after hold is "connected" again: answered once only
                self._sent[key] = None
                if len(self._sent) > 10_000:
                    self._sent.pop(next(iter(self._sent)))
                tenant_id = int(stream.split(":")[1])
                cfg = await self.config(tenant_id)
                hooks = [w for w in (cfg.webhooks if cfg else []) if event in w.events]
                if not hooks:
                    continue
                ctx = contact_context(msg.contact, event, *await self._tenant(tenant_id))
                if event == "wrapped-up":
                    await self._add_record(tenant_id, ctx)
                for hook in hooks:
                    task = asyncio.create_task(self._deliver(tenant_id, hook, ctx))
                    self._tasks.add(task)
                    task.add_done_callback(self._tasks.discard)
            except Exception:  # one bad event or a passing store failure must not stop the deliveries
                log.exception("webhook event not handled")

    async def _add_record(self, tenant_id: int, ctx: dict[str, Any]) -> None:
        async with self.sessionmaker() as s:
            row = (await s.execute(select(CallRecord).where(
                CallRecord.tenant_id == tenant_id, CallRecord.contact_id == ctx["contact"]["id"]))).scalar_one_or_none()
        if row is not None:
            ctx.update(wrapup_code=row.wrapup_code, notes=row.notes, customer_id=row.customer_id)

    async def _deliver(self, tenant_id: int, hook: Webhook, ctx: dict[str, Any]) -> None:
        async with self._limit:
            now = time.time()
            payload = {"event": ctx["event"], "at": ctx["at"], "contact": ctx["contact"], "customers": ctx["customers"],
                       "customer_id": ctx.get("customer_id") or (ctx["customer"] or {}).get("id"),
                       "agent_id": ctx["agent"]["id"], "wrapup_code": ctx["wrapup_code"], "notes": ctx["notes"]}
            error: str | None = None
            try:
                url = render("url", hook.url, ctx)
                body = render("body", hook.body, ctx) if hook.body else json.dumps(payload, default=str)
            except ConnectorError as exc:
                url, body, error = hook.url, "", str(exc)
            async with self.sessionmaker() as s, s.begin():
                row = WebhookDelivery(tenant_id=tenant_id, event=ctx["event"], contact_id=ctx["contact"]["id"],
                                      url=url[:2000], status="failed" if error else "pending", attempts=0,
                                      error=error, log=[], created_at=now, updated_at=now)
                s.add(row)
                await s.flush()
                delivery_id = row.id
            if error:
                return
            headers = {"Content-Type": "application/json", **{h.name: h.value for h in hook.headers}}
            for attempt in range(1, hook.attempts + 1):
                code, err = None, None
                try:
                    assert self._client is not None, "the service was not started"
                    r = await self._client.request(hook.method, url, content=body, headers=headers,
                                                   timeout=hook.timeout_seconds)
                    code = r.status_code
                    if not 200 <= code < 300:
                        err = f"HTTP {code}"
                except httpx.HTTPError as exc:
                    err = f"{type(exc).__name__}: {exc}"[:500]
                done = err is None
                last = attempt == hook.attempts
                await self._log_attempt(delivery_id, attempt, code, err,
                                        "delivered" if done else ("failed" if last else "pending"))
                if done or last:
                    return
                await asyncio.sleep(hook.backoff_seconds * 2 ** (attempt - 1))

    async def _log_attempt(self, delivery_id: int, attempt: int, code: int | None, err: str | None, status: str) -> None:
        now = time.time()
        async with self.sessionmaker() as s, s.begin():
            row = await s.get(WebhookDelivery, delivery_id)
            if row is None:
                return
            row.attempts, row.status_code, row.error, row.status, row.updated_at = attempt, code, err, status, now
            row.log = [*(row.log or []), {"attempt": attempt, "at": now, "status_code": code, "error": err}]

    async def deliveries(self, tenant_id: int, limit: int = 100) -> list[dict[str, Any]]:
        async with self.sessionmaker() as s:
            rows = (await s.execute(
                select(WebhookDelivery).where(WebhookDelivery.tenant_id == tenant_id)
                .order_by(WebhookDelivery.created_at.desc(), WebhookDelivery.id.desc()).limit(limit)
            )).scalars().all()
        return [
            {"id": r.id, "event": r.event, "contact_id": r.contact_id, "url": r.url, "status": r.status,
             "attempts": r.attempts, "status_code": r.status_code, "error": r.error, "log": r.log,
             "created_at": r.created_at, "updated_at": r.updated_at}
            for r in rows
        ]


def _event_of(msg: P.ContactOffered | P.ContactChanged) -> str | None:
    if isinstance(msg, P.ContactOffered):
        return "offered"
    return {"connected": "answered", "ended": "wrapped-up"}.get(msg.contact.status)
