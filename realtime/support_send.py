"""Sending a support session's link to the customer: by e-mail through the tenant's SMTP server
(aiosmtplib) or by SMS through the tenant's HTTP SMS gateway (a templated request, like a CRM
webhook: Jinja2 in the sandbox of realtime/crm.py).

Settings per tenant in `Tenant.settings["support.sender"]`; the SMTP password and gateway headers
marked secret are shown back masked ("****abcd") and a masked value sent back keeps the stored one.

REST: GET and PUT /api/support-sender (admins), POST /api/support-sessions/{id}/send (the agent of
the session: `{"email": ...}` or `{"sms": ...}`). The link sent carries a fresh guest token for the
room (same expiry as the first), built by the server: a client cannot make it send another text.
"""

from __future__ import annotations

import logging
import time
from email.message import EmailMessage
from typing import Annotated, Any, Literal

import aiosmtplib
import httpx
import msgspec
import phonenumbers
from email_validator import EmailNotValidError, validate_email
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from meetings.support import Phase
from realtime.api import ApiError, principal, read_body
from realtime.crm import MASK, ConnectorError, Header, Template, Url, check_template, mask, render
from store.customers import BadNumber, normalise
from store.models import Tenant

log = logging.getLogger("unidesk.support")

SETTING = "support.sender"
TIMEOUT = 10.0
Host = Annotated[str, msgspec.Meta(min_length=1, max_length=255)]
Short = Annotated[str, msgspec.Meta(max_length=255)]
DEFAULT_SMS_BODY = '{"to": {{ to|tojson }}, "text": {{ text|tojson }}}'


class Smtp(msgspec.Struct, forbid_unknown_fields=True, omit_defaults=True):
    host: Host
    from_addr: Host
    port: Annotated[int, msgspec.Meta(ge=1, le=65535)] = 587
    # none: plain; starttls: upgrade after connecting (port 587); tls: TLS from the start (port 465).
    security: Literal["none", "starttls", "tls"] = "starttls"
    username: Short = ""
    # Secret: shown back masked.
    password: Short = ""


class Sms(msgspec.Struct, forbid_unknown_fields=True, omit_defaults=True):
    """A POST to the gateway; `body` is a template over `to` (E.164), `text`, `link` and `tenant`."""

    url: Url
    headers: Annotated[list[Header], msgspec.Meta(max_length=20)] = []
    body: Template = DEFAULT_SMS_BODY
    content_type: Short = "application/json"


class Sender(msgspec.Struct, forbid_unknown_fields=True, omit_defaults=True):
    smtp: Smtp | None = None
    sms: Sms | None = None


class SendRequest(msgspec.Struct, forbid_unknown_fields=True):
    email: Annotated[str, msgspec.Meta(max_length=320)] | None = None
    sms: Annotated[str, msgspec.Meta(max_length=40)] | None = None


def masked(s: Sender) -> dict[str, Any]:
    raw = msgspec.to_builtins(s)
    if raw.get("smtp", {}).get("password"):
        raw["smtp"]["password"] = mask(raw["smtp"]["password"])
    for h in raw.get("sms", {}).get("headers", []):
        if h.get("secret"):
            h["value"] = mask(h["value"])
    return raw


def keep_secrets(new: Sender, old: Sender) -> Sender:
    """Masked values sent back keep the stored secrets; a masked value with none stored is refused."""
    if new.smtp is not None and new.smtp.password.startswith(MASK):
        if old.smtp is None or not old.smtp.password:
            raise ApiError(422, "bad-request", "smtp.password: a masked value with no stored password to keep")
        new.smtp.password = old.smtp.password
    if new.sms is not None:
        stored = {h.name.lower(): h.value for h in (old.sms.headers if old.sms else []) if h.secret}
        for h in new.sms.headers:
            if h.secret and h.value.startswith(MASK):
                if h.name.lower() not in stored:
                    raise ApiError(422, "bad-request", f"sms.headers {h.name}: a masked value with no stored secret to keep")
                h.value = stored[h.name.lower()]
    return new


def validate(s: Sender) -> None:
    if s.smtp is not None:
        try:
            validate_email(s.smtp.from_addr, check_deliverability=False)
        except EmailNotValidError as exc:
            raise ApiError(422, "bad-request", f"smtp.from_addr: {exc}") from None
    if s.sms is not None:
        if not s.sms.url.lower().startswith(("http://", "https://")):
            raise ApiError(422, "bad-request", f"sms.url: {s.sms.url[:80]!r} is not an http:// or https:// URL")
        try:
            check_template("sms.body", s.sms.body)
        except ConnectorError as exc:
            raise ApiError(422, "bad-request", str(exc)) from None


async def load(sessionmaker: async_sessionmaker[AsyncSession], tenant_id: int) -> tuple[Sender, Tenant]:
    async with sessionmaker() as s:
        t = await s.get(Tenant, tenant_id)
    assert t is not None, "a principal's tenant exists"
    return msgspec.convert((t.settings or {}).get(SETTING) or {}, Sender), t


def message_text(tenant: str, link: str, expires_at: float) -> str:
    until = time.strftime("%H:%M UTC", time.gmtime(expires_at))
    return f"{tenant}: join your video support session here: {link} (valid until {until})"


async def send_email(cfg: Smtp, to: str, tenant: str, text: str) -> None:
    msg = EmailMessage()
    msg["From"], msg["To"], msg["Subject"] = cfg.from_addr, to, f"Video support with {tenant}"
    msg.set_content(text)
    try:
        await aiosmtplib.send(msg, hostname=cfg.host, port=cfg.port, username=cfg.username or None,
                              password=cfg.password or None, use_tls=cfg.security == "tls",
                              start_tls=cfg.security == "starttls", timeout=TIMEOUT)
    except (aiosmtplib.SMTPException, OSError) as exc:
        raise ApiError(502, "send-failed", f"the e-mail server did not take the message: {exc}") from None


async def send_sms(cfg: Sms, to: str, tenant: str, text: str, link: str) -> None:
    context = {"to": to, "text": text, "link": link, "tenant": tenant}
    try:
        body = render("sms.body", cfg.body, context)
    except ConnectorError as exc:
        raise ApiError(502, "send-failed", f"the SMS template failed: {exc}") from None
    headers = {"Content-Type": cfg.content_type, **{h.name: h.value for h in cfg.headers}}
    try:
        async with httpx.AsyncClient(timeout=TIMEOUT) as client:
            r = await client.post(cfg.url, content=body.encode(), headers=headers)
    except httpx.HTTPError as exc:
        raise ApiError(502, "send-failed", f"the SMS gateway could not be reached: {exc}") from None
    if not 200 <= r.status_code < 300:
        raise ApiError(502, "send-failed", f"the SMS gateway answered {r.status_code}: {r.text[:200]}")


# ---------------------------------------------------------------- REST


async def get_sender(request: Request) -> Response:
    p = principal(request, "admin")
    sender, _ = await load(request.app.state.ctx.sessionmaker, p.tenant_id)
    return JSONResponse(masked(sender))


async def put_sender(request: Request) -> Response:
    p = principal(request, "admin")
    new: Sender = await read_body(request, Sender)
    sm = request.app.state.ctx.sessionmaker
    old, _ = await load(sm, p.tenant_id)
    new = keep_secrets(new, old)
    validate(new)
    async with sm() as s, s.begin():
        t = await s.get(Tenant, p.tenant_id)
        t.settings = {**(t.settings or {}), SETTING: msgspec.to_builtins(new)}
    return JSONResponse(masked(new))


async def send_link(request: Request) -> Response:
    """Send the session's link to the customer by e-mail or SMS; bad addresses and numbers are refused."""
    p = principal(request, "agent")
    ctx = request.app.state.ctx
    req: SendRequest = await read_body(request, SendRequest)
    if (req.email is None) == (req.sms is None):
        raise ApiError(422, "bad-request", "send either an `email` address or an `sms` number")
    room, _ = await ctx.support._load(p.tenant_id, request.path_params["id"])
    if room is None or room.host_id != p.user_id or room.phase is Phase.ENDED:
        raise ApiError(404, "not-found", "no open support session of yours with this id")
    sender, tenant = await load(ctx.sessionmaker, p.tenant_id)
    token = ctx.tokens.issue_guest(p.tenant_id, p.tenant_slug, room.id, room.expires_at)
    link = f"{str(request.base_url).rstrip('/')}/support/{room.id}#t={token}"
    text = message_text(tenant.name, link, room.expires_at)
    if req.email is not None:
        try:
            to = validate_email(req.email, check_deliverability=False).normalized
        except EmailNotValidError as exc:
            raise ApiError(422, "bad-address", f"{req.email[:80]!r} is not an e-mail address: {exc}") from None
        if sender.smtp is None:
            raise ApiError(409, "not-configured", "no e-mail sender is configured for this tenant (an admin sets it)")
        await send_email(sender.smtp, to, tenant.name, text)
    else:
        assert req.sms is not None
        try:
            to = normalise(req.sms, (tenant.settings or {}).get("customers.region"))
        except BadNumber as exc:
            raise ApiError(422, "bad-number", str(exc)) from None
        if not phonenumbers.is_valid_number(phonenumbers.parse(to)):
            raise ApiError(422, "bad-number", f"{req.sms!r} is not a valid phone number to send an SMS to")
        if sender.sms is None:
            raise ApiError(409, "not-configured", "no SMS gateway is configured for this tenant (an admin sets it)")
        await send_sms(sender.sms, to, tenant.name, text, link)
    log.info("support link sent", extra={"ud_tenant": p.tenant_id, "ud_support": room.id,
                                          "ud_channel": "email" if req.email else "sms"})
    return JSONResponse({"sent": "email" if req.email is not None else "sms", "to": to})


routes = [
    Route("/api/support-sender", get_sender),
    Route("/api/support-sender", put_sender, methods=["PUT"]),
    Route("/api/support-sessions/{id}/send", send_link, methods=["POST"]),
]
