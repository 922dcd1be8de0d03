"""Customers of a tenant: numbers in E.164, search, edits recorded field by field, contact history.

`CustomerRepo` is bound to one tenant like `TenantRepo`; an id of another tenant is "not found".
Numbers are normalised with the `phonenumbers` library and the tenant's default region (tenant
setting `customers.region`, e.g. "DE"), so "030 123456" and "+49 30 123456" are the same number.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import phonenumbers
from sqlalchemy import and_, delete, func, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from store.models import (
    CallRecord, Customer, CustomerAddress, CustomerChange, CustomerNumber, FormAnswer, FormVersion, Queue, User,
)

# The scalar fields an edit may change; numbers, addresses and free fields are handled apart.
SCALARS = ("first_name", "last_name", "company", "email")
ADDRESS_KEYS = ("label", "street", "postcode", "city", "country")


class BadNumber(ValueError):
    """A phone number that cannot be read; the message names it."""


def normalise(raw: str, region: str | None) -> str:
    """The number in E.164 ("+4930123456"). `region` (ISO 3166 alpha-2) reads national numbers;
    without it only international ones ("+…", "00…" is not understood) are accepted."""
    try:
        n = phonenumbers.parse(raw, region.upper() if region else None)
    except phonenumbers.NumberParseException as exc:
        raise BadNumber(f"{raw!r} is not a phone number: {exc}") from None
    if not phonenumbers.is_possible_number(n):
        raise BadNumber(f"{raw!r} is not a possible phone number")
    return phonenumbers.format_number(n, phonenumbers.PhoneNumberFormat.E164)


def try_normalise(raw: str, region: str | None) -> str | None:
    try:
        return normalise(raw, region)
    except BadNumber:
        return None


def display_name(c: Customer) -> str:
    name = " ".join(p for p in (c.first_name, c.last_name) if p)
    return name or c.company or f"customer {c.id}"


def _text(value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, list):
        return ", ".join(_text(v) or "" for v in value)
    if isinstance(value, dict):
        return " ".join(str(v) for v in value.values() if v)
    return str(value)


@dataclass(frozen=True, slots=True)
class Match:
    """A customer the pop found, with the numbers and latest contacts it shows."""

    customer: Customer
    numbers: list[str]
    last_contacts: list[dict[str, Any]]


def _form(answer: FormAnswer | None, definition: dict[str, Any] | None) -> dict[str, Any] | None:
    """A contact's form answer as its history shows it: each filled field with its label, in the form's order."""
    if answer is None:
        return None
    fields = (definition or {}).get("fields", [])
    return {"title": (definition or {}).get("title"), "version": answer.version, "draft": answer.draft,
            "data": answer.data,
            "fields": [{"key": f["key"], "label": f["label"], "value": answer.data[f["key"]]}
                       for f in fields if f["key"] in answer.data]}


class CustomerRepo:
    """Queries of one tenant's customers. Never commits: the caller owns the transaction."""

    def __init__(self, session: AsyncSession, tenant_id: int) -> None:
        assert tenant_id > 0, "a tenant id is positive"
        self.session = session
        self.tenant_id = tenant_id

    # -- the screen pop
    async def ids_by_number(self, number: str, limit: int = 5) -> list[int]:
        """Customers with this E.164 number (the pop's query: one index range)."""
        q = (
            select(CustomerNumber.customer_id)
            .where(CustomerNumber.tenant_id == self.tenant_id, CustomerNumber.number == number)
            .order_by(CustomerNumber.customer_id)
            .limit(limit)
        )
        return list(dict.fromkeys((await self.session.execute(q)).scalars().all()))

    async def matches(self, ids: Sequence[int], contacts: int = 3) -> list[Match]:
        """The customers with these ids (in this order), their numbers and latest contacts."""
        if not ids:
            return []
        q = (
            select(Customer, CustomerNumber.number)
            .outerjoin(CustomerNumber, and_(CustomerNumber.customer_id == Customer.id,
                                            CustomerNumber.tenant_id == self.tenant_id))
            .where(Customer.tenant_id == self.tenant_id, Customer.id.in_(ids))
            .order_by(CustomerNumber.id)
        )
        rows: dict[int, Customer] = {}
        numbers: dict[int, list[str]] = {}
        for c, number in (await self.session.execute(q)).all():
            rows[c.id] = c
            if number is not None:
                numbers.setdefault(c.id, []).append(number)
        return [Match(rows[cid], numbers.get(cid, []), await self.history(cid, limit=contacts))
                for cid in ids if cid in rows]

    # -- reading
    async def get(self, customer_id: int) -> Customer | None:
        q = select(Customer).where(Customer.tenant_id == self.tenant_id, Customer.id == customer_id)
        return (await self.session.execute(q)).scalar_one_or_none()

    async def numbers_of(self, ids: list[int]) -> dict[int, list[CustomerNumber]]:
        if not ids:
            return {}
        q = select(CustomerNumber).where(
            CustomerNumber.tenant_id == self.tenant_id, CustomerNumber.customer_id.in_(ids)
        ).order_by(CustomerNumber.id)
        out: dict[int, list[CustomerNumber]] = {}
        for n in (await self.session.execute(q)).scalars().all():
            out.setdefault(n.customer_id, []).append(n)
        return out

    async def numbers(self, customer_id: int) -> list[CustomerNumber]:
        return (await self.numbers_of([customer_id])).get(customer_id, [])

    async def addresses(self, customer_id: int) -> Sequence[CustomerAddress]:
        q = select(CustomerAddress).where(
            CustomerAddress.tenant_id == self.tenant_id, CustomerAddress.customer_id == customer_id
        ).order_by(CustomerAddress.id)
        return (await self.session.execute(q)).scalars().all()

    async def search(self, text: str | None = None, number: str | None = None, limit: int = 50) -> Sequence[Customer]:
        """By name or company (case-insensitive, contains) and/or by E.164 number."""
        q = select(Customer).where(Customer.tenant_id == self.tenant_id)
        if number is not None:
            q = q.where(Customer.id.in_(
                select(CustomerNumber.customer_id).where(
                    CustomerNumber.tenant_id == self.tenant_id, CustomerNumber.number == number)
            ))
        for word in (text or "").lower().split()[:5]:
            like = f"%{word.replace('%', '').replace('_', '')}%"
            q = q.where(or_(func.lower(Customer.first_name).like(like), func.lower(Customer.last_name).like(like),
                            func.lower(func.coalesce(Customer.company, "")).like(like)))
        q = q.order_by(Customer.last_name, Customer.first_name, Customer.id).limit(limit)
        return (await self.session.execute(q)).scalars().all()

    async def changes(self, customer_id: int, limit: int = 200) -> list[dict[str, Any]]:
        q = (
            select(CustomerChange, User.username)
            .outerjoin(User, User.id == CustomerChange.user_id)
            .where(CustomerChange.tenant_id == self.tenant_id, CustomerChange.customer_id == customer_id)
            .order_by(CustomerChange.at.desc(), CustomerChange.id.desc())
            .limit(limit)
        )
        return [
            {"at": ch.at, "by": name, "field": ch.field, "old": ch.old, "new": ch.new}
            for ch, name in (await self.session.execute(q)).all()
        ]

    async def history(self, customer_id: int, limit: int = 100) -> list[dict[str, Any]]:
        """The customer's contacts, newest first, with queue, agent, outcome, wrap-up code and notes."""
        q = (
            select(CallRecord, Queue.name, User.username, FormAnswer, FormVersion.definition)
            .outerjoin(Queue, Queue.id == CallRecord.queue_id)
            .outerjoin(User, User.id == CallRecord.agent_id)
            .outerjoin(FormAnswer, (FormAnswer.tenant_id == self.tenant_id)
                       & (FormAnswer.contact_id == CallRecord.contact_id))
            .outerjoin(FormVersion, FormVersion.id == FormAnswer.form_version_id)
            .where(CallRecord.tenant_id == self.tenant_id, CallRecord.customer_id == customer_id)
            .order_by(CallRecord.created_at.desc(), CallRecord.id.desc())
            .limit(limit)
        )
        return [
            {"contact_id": r.contact_id, "direction": r.direction, "channel": (r.data or {}).get("channel", "call"),
             "queue": queue, "caller": r.caller, "agent": agent, "at": r.created_at, "answered_at": r.answered_at,
             "ended_at": r.ended_at, "outcome": r.outcome, "wrapup_code": r.wrapup_code, "notes": r.notes,
             "form": _form(answer, definition)}
            for r, queue, agent, answer, definition in (await self.session.execute(q)).all()
        ]

    # -- writing
    async def create(self, user_id: int | None, *, numbers: Iterable[tuple[str, str]] = (),
                     addresses: Iterable[dict[str, str]] = (), fields: dict[str, str] | None = None,
                     now: float | None = None, **scalars: Any) -> Customer:
        """`numbers`: (E.164, label) pairs, already normalised."""
        now = time.time() if now is None else now
        c = Customer(tenant_id=self.tenant_id, first_name=scalars.get("first_name") or "",
                     last_name=scalars.get("last_name") or "", company=scalars.get("company"),
                     email=scalars.get("email"), fields=dict(fields or {}), created_at=now, updated_at=now)
        self.session.add(c)
        await self.session.flush()
        await self._set_numbers(c.id, list(numbers))
        await self._set_addresses(c.id, list(addresses))
        self.session.add(CustomerChange(tenant_id=self.tenant_id, customer_id=c.id, user_id=user_id, at=now,
                                        field="created", old=None, new=display_name(c)))
        await self.session.flush()
        return c

    async def update(self, c: Customer, user_id: int | None, changes: dict[str, Any],
                     now: float | None = None) -> list[str]:
        """Apply `changes` (scalars; `fields` merged, a None value removes a field; `numbers` and
        `addresses` replaced) and record each changed field. Returns the fields that changed."""
        assert c.tenant_id == self.tenant_id, "a customer of another tenant"
        now = time.time() if now is None else now
        log: list[tuple[str, Any, Any]] = []
        for key in (k for k in SCALARS if k in changes):
            # Names are never null (empty instead); company and e-mail are null when empty.
            new = changes[key] or ("" if key.endswith("name") else None)
            if new != getattr(c, key):
                log.append((key, getattr(c, key), new))
                setattr(c, key, new)
        if "fields" in changes:
            merged = dict(c.fields or {})
            for k, v in changes["fields"].items():
                if merged.get(k) != v:
                    log.append((f"fields.{k}", merged.get(k), v))
                    if v is None:
                        merged.pop(k, None)
                    else:
                        merged[k] = v
            c.fields = merged
        if "numbers" in changes:
            old = [n.number for n in await self.numbers(c.id)]
            new_numbers = list(changes["numbers"])
            if [n for n, _ in new_numbers] != old:
                log.append(("numbers", old, [n for n, _ in new_numbers]))
            await self._set_numbers(c.id, new_numbers, replace=True)
        if "addresses" in changes:
            old_a = [{k: getattr(a, k) for k in ADDRESS_KEYS} for a in await self.addresses(c.id)]
            new_a = [{k: a.get(k, "") for k in ADDRESS_KEYS} for a in changes["addresses"]]
            if old_a != new_a:
                log.append(("addresses", " | ".join(_text(a) or "" for a in old_a),
                            " | ".join(_text(a) or "" for a in new_a)))
                await self._set_addresses(c.id, new_a, replace=True)
        for field, old_v, new_v in log:
            self.session.add(CustomerChange(tenant_id=self.tenant_id, customer_id=c.id, user_id=user_id, at=now,
                                            field=field, old=_text(old_v), new=_text(new_v)))
        if log:
            c.updated_at = now
        await self.session.flush()
        return [f for f, _, _ in log]

    async def _set_numbers(self, customer_id: int, numbers: list[tuple[str, str]], replace: bool = False) -> None:
        if replace:
            await self.session.execute(delete(CustomerNumber).where(
                CustomerNumber.tenant_id == self.tenant_id, CustomerNumber.customer_id == customer_id))
        self.session.add_all(CustomerNumber(tenant_id=self.tenant_id, customer_id=customer_id, number=n, label=label)
                             for n, label in dict(numbers).items())

    async def _set_addresses(self, customer_id: int, addresses: list[dict[str, str]], replace: bool = False) -> None:
        if replace:
            await self.session.execute(delete(CustomerAddress).where(
                CustomerAddress.tenant_id == self.tenant_id, CustomerAddress.customer_id == customer_id))
        self.session.add_all(CustomerAddress(tenant_id=self.tenant_id, customer_id=customer_id,
                                             **{k: a.get(k, "") for k in ADDRESS_KEYS}) for a in addresses)

    async def link_contact(self, contact_id: str, customer_id: int | None) -> CallRecord | None:
        """Link a contact's record to a customer of this tenant (None unlinks); None when either is unknown."""
        row = (await self.session.execute(select(CallRecord).where(
            CallRecord.tenant_id == self.tenant_id, CallRecord.contact_id == contact_id))).scalar_one_or_none()
        if row is None or (customer_id is not None and await self.get(customer_id) is None):
            return None
        row.customer_id = customer_id
        await self.session.flush()
        return row
