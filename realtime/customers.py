"""Customers: the screen pop on arrival and the REST routes agents and supervisors use.

The pop runs in `ContactCenter.submit` (the submitter's task, never the routing task): the caller's
number is normalised with the tenant's region and looked up in the store, then the tenant's CRM
lookup is asked (its templates see the matched customer); together they are bounded
(`POP_TIMEOUT`), and whatever is not back by then is left out of the pop rather than holding up
the contact.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Annotated, Any

import msgspec
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from realtime import protocol as P, scripts
from realtime.api import ApiError, principal
from realtime.contacts import Arrive
from realtime.crm import ConnectorConfig, ConnectorError, CrmService, contact_context, masked
from store.customers import BadNumber, CustomerRepo, Match, display_name, normalise, try_normalise
from store.repos import TenantRepo, tenant_by_id

log = logging.getLogger("unidesk.customers")

# Seconds the store lookup and the CRM lookup together may add to an arrival.
POP_TIMEOUT = 1.0
STORE_TIMEOUT = 0.5
PEOPLE = ("agent", "supervisor", "admin")

Short = Annotated[str, msgspec.Meta(max_length=100)]
FieldName = Annotated[str, msgspec.Meta(min_length=1, max_length=64)]
FieldText = Annotated[str, msgspec.Meta(max_length=2000)]


class NumberIn(msgspec.Struct, forbid_unknown_fields=True):
    number: Annotated[str, msgspec.Meta(min_length=1, max_length=40)]
    label: Annotated[str, msgspec.Meta(max_length=32)] = ""


class AddressIn(msgspec.Struct, forbid_unknown_fields=True):
    label: Annotated[str, msgspec.Meta(max_length=32)] = ""
    street: Annotated[str, msgspec.Meta(max_length=200)] = ""
    postcode: Annotated[str, msgspec.Meta(max_length=20)] = ""
    city: Annotated[str, msgspec.Meta(max_length=100)] = ""
    country: Annotated[str, msgspec.Meta(pattern=r"^([A-Za-z]{2})?$")] = ""


class CustomerIn(msgspec.Struct, forbid_unknown_fields=True):
    first_name: Short = ""
    last_name: Short = ""
    company: Annotated[str, msgspec.Meta(max_length=200)] | None = None
    email: Annotated[str, msgspec.Meta(max_length=254)] | None = None
    fields: Annotated[dict[FieldName, FieldText], msgspec.Meta(max_length=50)] = {}
    numbers: Annotated[list[NumberIn], msgspec.Meta(max_length=20)] = []
    addresses: Annotated[list[AddressIn], msgspec.Meta(max_length=10)] = []


class CustomerPatch(msgspec.Struct, forbid_unknown_fields=True):
    first_name: Short | msgspec.UnsetType = msgspec.UNSET
    last_name: Short | msgspec.UnsetType = msgspec.UNSET
    company: Annotated[str, msgspec.Meta(max_length=200)] | None | msgspec.UnsetType = msgspec.UNSET
    email: Annotated[str, msgspec.Meta(max_length=254)] | None | msgspec.UnsetType = msgspec.UNSET
    # Merged into the free fields; a null value removes the field.
    fields: Annotated[dict[FieldName, FieldText | None], msgspec.Meta(max_length=50)] | msgspec.UnsetType = msgspec.UNSET
    numbers: Annotated[list[NumberIn], msgspec.Meta(max_length=20)] | msgspec.UnsetType = msgspec.UNSET
    addresses: Annotated[list[AddressIn], msgspec.Meta(max_length=10)] | msgspec.UnsetType = msgspec.UNSET


class LinkIn(msgspec.Struct, forbid_unknown_fields=True):
    customer_id: int | None


def brief(m: Match) -> P.CustomerBrief:
    return P.CustomerBrief(
        id=m.customer.id, name=display_name(m.customer), company=m.customer.company, numbers=m.numbers,
        last_contacts=[P.PastContact(contact_id=h["contact_id"], at=h["at"], queue=h["queue"], outcome=h["outcome"],
                                     wrapup_code=h["wrapup_code"], notes=h["notes"]) for h in m.last_contacts],
    )


class CustomerService:
    """Tenant regions (cached briefly) and the screen pop."""

    def __init__(self, sessionmaker: async_sessionmaker[AsyncSession], crm: CrmService) -> None:
        self.sessionmaker = sessionmaker
        self.crm = crm
        self._tenants: dict[int, tuple[float, str, str | None]] = {}

    async def tenant(self, tenant_id: int) -> tuple[str, str | None]:
        """The tenant's slug and default phone region (setting `customers.region`)."""
        hit = self._tenants.get(tenant_id)
        if hit and time.monotonic() - hit[0] < 10.0:
            return hit[1], hit[2]
        async with self.sessionmaker() as s:
            t = await tenant_by_id(s, tenant_id)
        slug, region = (t.slug, (t.settings or {}).get("customers.region")) if t else ("", None)
        self._tenants[tenant_id] = (time.monotonic(), slug, region)
        return slug, region

    async def find(self, tenant_id: int, caller: str) -> list[P.CustomerBrief]:
        _, region = await self.tenant(tenant_id)
        number = try_normalise(caller, region)
        if number is None:
            return []
        async with self.sessionmaker() as s:
            repo = CustomerRepo(s, tenant_id)
            return [brief(m) for m in await repo.matches(await repo.ids_by_number(number))]

    async def pop(self, msg: Arrive) -> Arrive:
        """The arrival with its screen pop: matching customers (one: linked) and the CRM's fields."""
        started = time.perf_counter()
        customers: list[P.CustomerBrief] = []
        try:
            customers = await asyncio.wait_for(self.find(msg.tenant_id, msg.caller), STORE_TIMEOUT)
        except Exception as exc:  # a slow or failing store: the contact pops without its customer
            log.warning("customer lookup for a contact failed: %s", exc or type(exc).__name__)
        crm: dict[str, str] = {}
        try:
            view = P.ContactView(id=msg.contact_id, queue=msg.queue, caller=msg.caller, caller_name=msg.caller_name,
                                 arrived_at=time.time(), data=msg.data, customers=customers)
            ctx = contact_context(view, "offered", *await self.tenant(msg.tenant_id))
            left = max(0.05, POP_TIMEOUT - (time.perf_counter() - started))
            crm = await asyncio.wait_for(self.crm.lookup(msg.tenant_id, ctx), left)
        except Exception as exc:  # the CRM is slow, down or misconfigured: pop without its fields
            log.warning("CRM lookup failed: %s", exc or type(exc).__name__)
        return msgspec.structs.replace(
            msg, customers=customers, crm=crm, customer_id=customers[0].id if len(customers) == 1 else None
        )


# ---------------------------------------------------------------- REST


async def _body(request: Request, kind: type[Any], limit: int = 64 * 1024) -> Any:
    body = await request.body()
    if len(body) > limit:
        raise ApiError(413, "too-large", f"request body over {limit // 1024} KiB")
    try:
        return msgspec.json.decode(body, type=kind)
    except msgspec.ValidationError as exc:
        raise ApiError(400, "bad-request", f"invalid request: {exc}") from None
    except msgspec.DecodeError:
        raise ApiError(400, "bad-request", "the body is not valid JSON") from None


def _id(request: Request, key: str = "customer_id") -> int:
    try:
        return int(request.path_params[key])
    except ValueError:
        raise ApiError(404, "not-found", "no such customer") from None


def _numbers(items: list[NumberIn], region: str | None) -> list[tuple[str, str]]:
    out = []
    for i, n in enumerate(items):
        try:
            out.append((normalise(n.number, region), n.label))
        except BadNumber as exc:
            raise ApiError(400, "bad-number", f"numbers[{i}].number: {exc}") from None
    return out


async def _full(repo: CustomerRepo, c: Any) -> dict[str, Any]:
    return {
        "id": c.id, "name": display_name(c), "first_name": c.first_name, "last_name": c.last_name,
        "company": c.company, "email": c.email, "fields": c.fields or {},
        "numbers": [{"number": n.number, "label": n.label} for n in await repo.numbers(c.id)],
        "addresses": [{k: getattr(a, k) for k in ("label", "street", "postcode", "city", "country")}
                      for a in await repo.addresses(c.id)],
        "created_at": c.created_at, "updated_at": c.updated_at,
    }


async def search_customers(request: Request) -> Response:
    p = principal(request, *PEOPLE)
    ctx = request.app.state.ctx
    q = request.query_params.get("q", "")[:200]
    raw_number = request.query_params.get("number")
    number = None
    if raw_number:
        try:
            number = normalise(raw_number[:40], (await ctx.customers.tenant(p.tenant_id))[1])
        except BadNumber as exc:
            raise ApiError(400, "bad-number", f"number: {exc}") from None
    try:
        limit = max(1, min(200, int(request.query_params.get("limit", "50"))))
    except ValueError:
        raise ApiError(400, "bad-request", "limit: not a number") from None
    async with ctx.sessionmaker() as s:
        repo = CustomerRepo(s, p.tenant_id)
        rows = await repo.search(q, number, limit)
        numbers = await repo.numbers_of([c.id for c in rows])
    return JSONResponse([
        {"id": c.id, "name": display_name(c), "company": c.company,
         "numbers": [n.number for n in numbers.get(c.id, [])]} for c in rows
    ])


async def create_customer(request: Request) -> Response:
    p = principal(request, *PEOPLE)
    ctx = request.app.state.ctx
    req: CustomerIn = await _body(request, CustomerIn)
    if not (req.first_name or req.last_name or req.company):
        raise ApiError(400, "bad-request", "first_name, last_name or company: a customer needs a name")
    numbers = _numbers(req.numbers, (await ctx.customers.tenant(p.tenant_id))[1])
    async with ctx.sessionmaker() as s, s.begin():
        repo = CustomerRepo(s, p.tenant_id)
        c = await repo.create(p.user_id, numbers=numbers, addresses=[msgspec.to_builtins(a) for a in req.addresses],
                              fields=req.fields, first_name=req.first_name, last_name=req.last_name,
                              company=req.company, email=req.email)
        out = await _full(repo, c)
    return JSONResponse(out, 201)


async def get_customer(request: Request) -> Response:
    p = principal(request, *PEOPLE)
    async with request.app.state.ctx.sessionmaker() as s:
        repo = CustomerRepo(s, p.tenant_id)
        c = await repo.get(_id(request))
        if c is None:
            raise ApiError(404, "not-found", "no such customer")
        return JSONResponse(await _full(repo, c))


async def patch_customer(request: Request) -> Response:
    p = principal(request, *PEOPLE)
    ctx = request.app.state.ctx
    req: CustomerPatch = await _body(request, CustomerPatch)
    changes = {k: v for k, v in msgspec.structs.asdict(req).items() if v is not msgspec.UNSET}
    if "numbers" in changes:
        changes["numbers"] = _numbers(changes["numbers"], (await ctx.customers.tenant(p.tenant_id))[1])
    if "addresses" in changes:
        changes["addresses"] = [msgspec.to_builtins(a) for a in changes["addresses"]]
    async with ctx.sessionmaker() as s, s.begin():
        repo = CustomerRepo(s, p.tenant_id)
        c = await repo.get(_id(request))
        if c is None:
            raise ApiError(404, "not-found", "no such customer")
        changed = await repo.update(c, p.user_id, changes)
        out = {**await _full(repo, c), "changed": changed}
    return JSONResponse(out)


async def customer_history(request: Request) -> Response:
    p = principal(request, *PEOPLE)
    async with request.app.state.ctx.sessionmaker() as s:
        repo = CustomerRepo(s, p.tenant_id)
        cid = _id(request)
        if await repo.get(cid) is None:
            raise ApiError(404, "not-found", "no such customer")
        return JSONResponse(await scripts.attach(s, p.tenant_id, await repo.history(cid)))


async def customer_changes(request: Request) -> Response:
    p = principal(request, *PEOPLE)
    async with request.app.state.ctx.sessionmaker() as s:
        repo = CustomerRepo(s, p.tenant_id)
        cid = _id(request)
        if await repo.get(cid) is None:
            raise ApiError(404, "not-found", "no such customer")
        return JSONResponse(await repo.changes(cid))


async def link_contact(request: Request) -> Response:
    """The agent chose (or created) the caller's customer: the contact's record is linked to it.
    Supervisors and admins may link any contact; an agent one offered to or answered by them."""
    p = principal(request, *PEOPLE)
    req: LinkIn = await _body(request, LinkIn)
    cid = request.path_params["contact_id"]
    async with request.app.state.ctx.sessionmaker() as s, s.begin():
        row = await TenantRepo(s, p.tenant_id).call_record(cid)
        mine = row is not None and (row.agent_id == p.user_id or p.user_id in (row.data or {}).get("offered_to", []))
        if row is None or not (mine or p.has_any("supervisor", "admin")):
            raise ApiError(404, "not-found", "no such contact")
        if await CustomerRepo(s, p.tenant_id).link_contact(cid, req.customer_id) is None:
            raise ApiError(404, "not-found", "no such customer")
    return JSONResponse({"contact_id": cid, "customer_id": req.customer_id})


async def get_connector(request: Request) -> Response:
    p = principal(request, "admin")
    cfg = await request.app.state.ctx.crm.config(p.tenant_id, fresh=True)
    return JSONResponse(masked(cfg or ConnectorConfig()))


async def put_connector(request: Request) -> Response:
    p = principal(request, "admin")
    req: ConnectorConfig = await _body(request, ConnectorConfig)
    try:
        cfg = await request.app.state.ctx.crm.save(p.tenant_id, p.user_id, req)
    except ConnectorError as exc:
        raise ApiError(400, "bad-connector", str(exc)) from None
    return JSONResponse(masked(cfg))


async def webhook_deliveries(request: Request) -> Response:
    p = principal(request, "admin", "supervisor")
    try:
        limit = max(1, min(500, int(request.query_params.get("limit", "100"))))
    except ValueError:
        raise ApiError(400, "bad-request", "limit: not a number") from None
    return JSONResponse(await request.app.state.ctx.crm.deliveries(p.tenant_id, limit))


routes = [
    Route("/api/customers", search_customers, methods=["GET"]),
    Route("/api/customers", create_customer, methods=["POST"]),
    Route("/api/customers/{customer_id}", get_customer, methods=["GET"]),
    Route("/api/customers/{customer_id}", patch_customer, methods=["PATCH"]),
    Route("/api/customers/{customer_id}/history", customer_history),
    Route("/api/customers/{customer_id}/changes", customer_changes),
    Route("/api/contacts/{contact_id}/customer", link_contact, methods=["PUT"]),
    Route("/api/crm/connector", get_connector, methods=["GET"]),
    Route("/api/crm/connector", put_connector, methods=["PUT"]),
    Route("/api/crm/deliveries", webhook_deliveries),
]
