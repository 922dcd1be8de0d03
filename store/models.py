"""Tables of unidesk. Times are epoch seconds (double precision) so that the
same interval arithmetic works on SQLite and PostgreSQL."""

from __future__ import annotations

from typing import Any

from sqlalchemy import (
    JSON,
    Boolean,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

ROLES = ("admin", "supervisor", "agent", "trainer")


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)


class Tenant(Base):
    __tablename__ = "tenants"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    slug: Mapped[str] = mapped_column(String(64), unique=True)
    name: Mapped[str] = mapped_column(String(200))
    # Tenant-wide settings (e.g. whether agents see that they are monitored).
    settings: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    created_at: Mapped[float] = mapped_column(Float)


class User(Base):
    __tablename__ = "users"
    __table_args__ = (UniqueConstraint("tenant_id", "username"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    tenant_id: Mapped[int] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"), index=True)
    username: Mapped[str] = mapped_column(String(64))
    display_name: Mapped[str] = mapped_column(String(200))
    # argon2id hash; never the password.
    password_hash: Mapped[str] = mapped_column(String(255))
    # Subset of ROLES.
    roles: Mapped[list[str]] = mapped_column(JSON, default=list)
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[float] = mapped_column(Float)
    # Desk phone: the SIP user name it registers as (unique across tenants, since it picks the tenant) and
    # HA1 = MD5(sip_user:realm:password) with the tenant's slug as realm (RFC 2617; never the password).
    sip_user: Mapped[str | None] = mapped_column(String(64), unique=True)
    sip_ha1: Mapped[str | None] = mapped_column(String(64))
    # Where the agent takes calls: "browser" (the softphone) or "desk" (the registered desk phone).
    phone: Mapped[str] = mapped_column(String(16), default="browser")


class Queue(Base):
    __tablename__ = "queues"
    __table_args__ = (UniqueConstraint("tenant_id", "name"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    tenant_id: Mapped[int] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"), index=True)
    name: Mapped[str] = mapped_column(String(64))
    label: Mapped[str] = mapped_column(String(200))
    strategy: Mapped[str] = mapped_column(String(32), default="longest-idle")
    wrap_up_seconds: Mapped[int] = mapped_column(Integer, default=30)
    service_level_seconds: Mapped[int] = mapped_column(Integer, default=20)
    # Further routing settings (ring timeout, overflow, limits, steps), validated by the ACD.
    config: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)


class Skill(Base):
    __tablename__ = "skills"
    __table_args__ = (UniqueConstraint("tenant_id", "name"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    tenant_id: Mapped[int] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"), index=True)
    name: Mapped[str] = mapped_column(String(64))


class AgentSkill(Base):
    __tablename__ = "agent_skills"
    __table_args__ = (UniqueConstraint("user_id", "skill_id"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    tenant_id: Mapped[int] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"), index=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    skill_id: Mapped[int] = mapped_column(ForeignKey("skills.id", ondelete="CASCADE"))
    # 0..100
    level: Mapped[int] = mapped_column(Integer)


class QueueMembership(Base):
    __tablename__ = "queue_memberships"
    __table_args__ = (UniqueConstraint("queue_id", "user_id"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    tenant_id: Mapped[int] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"), index=True)
    queue_id: Mapped[int] = mapped_column(ForeignKey("queues.id", ondelete="CASCADE"))
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    # Lower is preferred (Asterisk's penalty).
    penalty: Mapped[int] = mapped_column(Integer, default=0)
    # The agent's level in this queue, 0..100.
    level: Mapped[int] = mapped_column(Integer, default=50)


class PauseReason(Base):
    __tablename__ = "pause_reasons"
    __table_args__ = (UniqueConstraint("tenant_id", "code"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    tenant_id: Mapped[int] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"), index=True)
    code: Mapped[str] = mapped_column(String(64))
    label: Mapped[str] = mapped_column(String(200))
    # Whether time in this pause counts as productive (training) in reports.
    productive: Mapped[bool] = mapped_column(Boolean, default=False)


class WrapUpCode(Base):
    __tablename__ = "wrapup_codes"
    __table_args__ = (UniqueConstraint("tenant_id", "code"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    tenant_id: Mapped[int] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"), index=True)
    code: Mapped[str] = mapped_column(String(64))
    label: Mapped[str] = mapped_column(String(200))
    # None: offered for every queue.
    queue_id: Mapped[int | None] = mapped_column(ForeignKey("queues.id", ondelete="CASCADE"))


class AgentStateHistory(Base):
    __tablename__ = "agent_state_history"
    __table_args__ = (Index("ix_agent_state_history_tenant_user_at", "tenant_id", "user_id", "at"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    tenant_id: Mapped[int] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"))
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    from_state: Mapped[str] = mapped_column(String(32))
    to_state: Mapped[str] = mapped_column(String(32))
    reason: Mapped[str | None] = mapped_column(String(64))
    # When the transition happened.
    at: Mapped[float] = mapped_column(Float)
    # The user who caused it: the agent, a supervisor, or None for the system (timers, ACD).
    by_user_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    # What caused it: "agent", "supervisor", "system".
    source: Mapped[str] = mapped_column(String(16))
    contact_id: Mapped[str | None] = mapped_column(String(64))


class CallRecord(Base):
    __tablename__ = "call_records"
    __table_args__ = (Index("ix_call_records_tenant_created", "tenant_id", "created_at"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    tenant_id: Mapped[int] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"))
    # The contact's id in the ACD and on the wire.
    contact_id: Mapped[str] = mapped_column(String(64), unique=True)
    queue_id: Mapped[int | None] = mapped_column(ForeignKey("queues.id", ondelete="SET NULL"))
    direction: Mapped[str] = mapped_column(String(16), default="inbound")
    caller: Mapped[str | None] = mapped_column(String(128))
    callee: Mapped[str | None] = mapped_column(String(128))
    agent_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    created_at: Mapped[float] = mapped_column(Float)
    answered_at: Mapped[float | None] = mapped_column(Float)
    ended_at: Mapped[float | None] = mapped_column(Float)
    # answered, abandoned, overflowed, rejected, failed ...
    outcome: Mapped[str | None] = mapped_column(String(32))
    wrapup_code: Mapped[str | None] = mapped_column(String(64))
    notes: Mapped[str | None] = mapped_column(Text)
    # Durations, offers, legs and anything later features add.
    data: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    # The customer this contact was with (the screen pop's single match, or the agent's choice).
    customer_id: Mapped[int | None] = mapped_column(ForeignKey("customers.id", ondelete="SET NULL"), index=True)


class SipRoute(Base):
    """Where a call to an address of unidesk goes: the tenant and the queue (or menu) it lands in, when, and
    who may call it.

    `address` is the called user part or number (the Request-URI's user, e.g. "support" or
    "+4930123456"); it is unique across tenants, since it picks the tenant."""

    __tablename__ = "sip_routes"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    tenant_id: Mapped[int] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"), index=True)
    address: Mapped[str] = mapped_column(String(128), unique=True)
    queue_id: Mapped[int | None] = mapped_column(ForeignKey("queues.id", ondelete="SET NULL"))
    # Networks (CIDR) calls are accepted from: peers allowed by address (trunks, PBXs).
    allow_from: Mapped[list[str]] = mapped_column(JSON, default=list)
    enabled: Mapped[bool] = mapped_column(Boolean, default=True)
    # Opening hours: {"timezone": "Europe/Berlin", "mon": [["08:00", "18:00"]], ...}; empty: always open.
    hours: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    # The prompt a caller hears outside the opening hours before the call ends (None: "closed").
    closed_prompt: Mapped[str | None] = mapped_column(String(64))
    # A menu instead of a queue: {"prompt", "choices": {digit: queue}, "timeout_seconds", "retries", "default"}.
    ivr: Mapped[dict[str, Any] | None] = mapped_column(JSON)


class AlertRecord(Base):
    """An alert raised on the board (realtime/alerts.py): when, why, who acknowledged it, when it cleared."""

    __tablename__ = "alerts"
    __table_args__ = (Index("ix_alerts_tenant_raised", "tenant_id", "raised_at"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    tenant_id: Mapped[int] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"))
    alert_id: Mapped[str] = mapped_column(String(64), unique=True)
    kind: Mapped[str] = mapped_column(String(32))
    subject: Mapped[str] = mapped_column(String(128))
    message: Mapped[str] = mapped_column(Text)
    value: Mapped[float] = mapped_column(Float)
    threshold: Mapped[float] = mapped_column(Float)
    raised_at: Mapped[float] = mapped_column(Float)
    cleared_at: Mapped[float | None] = mapped_column(Float)
    acked_at: Mapped[float | None] = mapped_column(Float)
    acked_by: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
class ContactSegment(Base):
    """One stretch of a contact in one queue, written when the contact's life is over (the ACD's
    record): what the historical reports count per queue."""

    __tablename__ = "contact_segments"
    __table_args__ = (Index("ix_contact_segments_tenant_entered", "tenant_id", "entered_at"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    tenant_id: Mapped[int] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"))
    contact_id: Mapped[str] = mapped_column(String(64), index=True)
    # The queue's name (as the ACD knows it).
    queue: Mapped[str] = mapped_column(String(64))
    # When the contact entered this queue (arrival or overflow in) and left it.
    entered_at: Mapped[float] = mapped_column(Float)
    left_at: Mapped[float] = mapped_column(Float)
    # answered, abandoned, overflowed, ended
    outcome: Mapped[str] = mapped_column(String(16))
    # The queue's service-level threshold (seconds) when the contact waited.
    service_level_seconds: Mapped[float] = mapped_column(Float)
    # On the answered segment: who answered, when, and the contact's handling time.
    agent_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    answered_at: Mapped[float | None] = mapped_column(Float)
    talk_seconds: Mapped[float] = mapped_column(Float, default=0.0)
    hold_seconds: Mapped[float] = mapped_column(Float, default=0.0)
    wrap_up_seconds: Mapped[float] = mapped_column(Float, default=0.0)


class ContactOffer(Base):
    """One offer of a contact to an agent (ringing), with how it ended."""

    __tablename__ = "contact_offers"
    __table_args__ = (Index("ix_contact_offers_tenant_offered", "tenant_id", "offered_at"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    tenant_id: Mapped[int] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"))
    contact_id: Mapped[str] = mapped_column(String(64), index=True)
    agent_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    queue: Mapped[str] = mapped_column(String(64))
    offered_at: Mapped[float] = mapped_column(Float)
    resolved_at: Mapped[float] = mapped_column(Float)
    # accepted, rejected, busy, no-answer, canceled
    result: Mapped[str] = mapped_column(String(16))


class Wallboard(Base):
    """A read-only wallboard: chosen queues shown on a wall screen through a long-lived token
    that names this row; deleting the row's token (revoked_at) locks the screen out."""

    __tablename__ = "wallboards"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    tenant_id: Mapped[int] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"), index=True)
    name: Mapped[str] = mapped_column(String(200))
    # Queue names shown.
    queues: Mapped[list[str]] = mapped_column(JSON, default=list)
    # Colour thresholds per figure (see docs/reports.md).
    thresholds: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    created_by: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    created_at: Mapped[float] = mapped_column(Float)
    expires_at: Mapped[float] = mapped_column(Float)
    revoked_at: Mapped[float | None] = mapped_column(Float)
class Recording(Base):
    """A call recording: the caller and the agent, one channel each, in an Opus file (docs/recordings.md).

    The file is `path` in the recordings folder; it is deleted after the tenant's retention, and the row
    stays with `deleted_at` set (that a call was recorded, and when it was deleted, remain known)."""

    __tablename__ = "recordings"
    __table_args__ = (
        Index("ix_recordings_tenant_started", "tenant_id", "started_at"),
        Index("ix_recordings_tenant_contact", "tenant_id", "contact_id"),
    )
    # 32 hex digits, also the file's name: not guessable, not a count of the tenant's calls.
    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    tenant_id: Mapped[int] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"))
    # The contact recorded (its call record has the same contact id).
    contact_id: Mapped[str] = mapped_column(String(64))
    call_record_id: Mapped[int | None] = mapped_column(ForeignKey("call_records.id", ondelete="SET NULL"))
    queue: Mapped[str] = mapped_column(String(64))
    agent_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    started_at: Mapped[float] = mapped_column(Float)
    ended_at: Mapped[float | None] = mapped_column(Float)
    # Length of the audio and size of the file, as the media worker reported them.
    seconds: Mapped[float | None] = mapped_column(Float)
    bytes: Mapped[int | None] = mapped_column(Integer)
    # The file's name in the recordings folder; None until the media worker finished it.
    path: Mapped[str | None] = mapped_column(String(200))
    # Why the file is missing or cut short, when the media worker could not write it.
    error: Mapped[str | None] = mapped_column(String(500))
    deleted_at: Mapped[float | None] = mapped_column(Float)


class SipTrunk(Base):
    """A SIP trunk of a tenant: the carrier or PBX account unidesk registers with and calls out through.

    The password is a digest secret the media worker needs in clear; it leaves the store only toward
    the media workers (never in a log line or a browser's answer)."""

    __tablename__ = "sip_trunks"
    __table_args__ = (UniqueConstraint("tenant_id", "name"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    tenant_id: Mapped[int] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"), index=True)
    name: Mapped[str] = mapped_column(String(64))
    # The registrar and outbound proxy, "host:port" (or "host": the transport's default port).
    host: Mapped[str] = mapped_column(String(255))
    # udp, tcp or tls.
    transport: Mapped[str] = mapped_column(String(8), default="udp")
    username: Mapped[str] = mapped_column(String(128))
    password: Mapped[str] = mapped_column(String(255))
    # The digest realm the credentials are for; "*": whichever realm the trunk challenges with.
    realm: Mapped[str] = mapped_column(String(255), default="*")
    # Whether unidesk registers with the trunk (calls then come to the registered contact).
    register: Mapped[bool] = mapped_column(Boolean, default=True)
    # Registration lifetime asked for, seconds.
    expires: Mapped[int] = mapped_column(Integer, default=300)
    # The number presented on calls out (the From user); None: the username.
    caller_id: Mapped[str | None] = mapped_column(String(128))
    enabled: Mapped[bool] = mapped_column(Boolean, default=True)


class ChatRecord(Base):
    """A chat message between agents and supervisors (realtime/chat.py): to one user, to all supervisors,
    or a supervisor's broadcast to a queue's agents."""

    __tablename__ = "chat_messages"
    __table_args__ = (Index("ix_chat_messages_tenant_sent", "tenant_id", "sent_at"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    tenant_id: Mapped[int] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"))
    from_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    to_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    to_supervisors: Mapped[bool] = mapped_column(Boolean, default=False)
    queue: Mapped[str | None] = mapped_column(String(64))
    text: Mapped[str] = mapped_column(Text)
    sent_at: Mapped[float] = mapped_column(Float)


class SupportSessionRecord(Base):
    """A 1:1 video support session between an agent and a customer who came through a link
    (realtime/support.py): who, when, how long, and the contact (call) it belongs to."""

    __tablename__ = "support_sessions"
    __table_args__ = (Index("ix_support_sessions_tenant_created", "tenant_id", "created_at"),)
    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    tenant_id: Mapped[int] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"))
    agent_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    # The contact in progress when the agent opened it (its caller is the customer's record).
    contact_id: Mapped[str | None] = mapped_column(String(64), index=True)
    created_at: Mapped[float] = mapped_column(Float)
    expires_at: Mapped[float] = mapped_column(Float)
    admitted_at: Mapped[float | None] = mapped_column(Float)
    ended_at: Mapped[float | None] = mapped_column(Float)
    # Seconds from admission to the end.
    duration: Mapped[float | None] = mapped_column(Float)
    guest_name: Mapped[str | None] = mapped_column(String(80))
    guest_ua: Mapped[str | None] = mapped_column(String(300))
    # host-ended, guest-left, denied, expired
    end_reason: Mapped[str | None] = mapped_column(String(32))


class Customer(Base):
    """A tenant's customer: names, free fields; numbers, addresses and changes in their own tables."""

    __tablename__ = "customers"
    __table_args__ = (Index("ix_customers_tenant_last_name", "tenant_id", "last_name"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    tenant_id: Mapped[int] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"))
    first_name: Mapped[str] = mapped_column(String(100), default="")
    last_name: Mapped[str] = mapped_column(String(100), default="")
    company: Mapped[str | None] = mapped_column(String(200))
    email: Mapped[str | None] = mapped_column(String(254))
    # Free fields: {name: text}.
    fields: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    created_at: Mapped[float] = mapped_column(Float)
    updated_at: Mapped[float] = mapped_column(Float)


class CustomerNumber(Base):
    """A customer's phone number in E.164 (normalised with the tenant's default region): what the screen
    pop looks callers up by. Several customers may share a number (a household, a switchboard)."""

    __tablename__ = "customer_numbers"
    __table_args__ = (Index("ix_customer_numbers_tenant_number", "tenant_id", "number"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    tenant_id: Mapped[int] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"))
    customer_id: Mapped[int] = mapped_column(ForeignKey("customers.id", ondelete="CASCADE"), index=True)
    number: Mapped[str] = mapped_column(String(32))
    # mobile, home, work, ...
    label: Mapped[str] = mapped_column(String(32), default="")


class CustomerAddress(Base):
    __tablename__ = "customer_addresses"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    tenant_id: Mapped[int] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"))
    customer_id: Mapped[int] = mapped_column(ForeignKey("customers.id", ondelete="CASCADE"), index=True)
    label: Mapped[str] = mapped_column(String(32), default="")
    street: Mapped[str] = mapped_column(String(200), default="")
    postcode: Mapped[str] = mapped_column(String(20), default="")
    city: Mapped[str] = mapped_column(String(100), default="")
    # ISO 3166-1 alpha-2.
    country: Mapped[str] = mapped_column(String(2), default="")


class CustomerChange(Base):
    """One field of a customer changed: who, when, the old and the new value (as text)."""

    __tablename__ = "customer_changes"
    __table_args__ = (Index("ix_customer_changes_tenant_customer_at", "tenant_id", "customer_id", "at"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    tenant_id: Mapped[int] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"))
    customer_id: Mapped[int] = mapped_column(ForeignKey("customers.id", ondelete="CASCADE"))
    user_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    at: Mapped[float] = mapped_column(Float)
    # first_name, numbers, fields.<name>, ... ("created" when the record was made).
    field: Mapped[str] = mapped_column(String(100))
    old: Mapped[str | None] = mapped_column(Text)
    new: Mapped[str | None] = mapped_column(Text)


class CrmConnector(Base):
    """A tenant's connection to an external CRM: the lookup on offer and the outgoing webhooks
    (realtime/crm.py validates both). Header values marked secret are never shown back in full."""

    __tablename__ = "crm_connectors"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    tenant_id: Mapped[int] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"), unique=True)
    lookup: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    webhooks: Mapped[list[Any]] = mapped_column(JSON, default=list)
    updated_at: Mapped[float] = mapped_column(Float)
    updated_by: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))


class Snippet(Base):
    """A text snippet agents insert into chats and notes, for one queue or (queue_id None) the whole tenant.
    `text` may hold placeholders such as {{customer.name}} (realtime/kbtext.py lists them)."""

    __tablename__ = "snippets"
    __table_args__ = (UniqueConstraint("tenant_id", "shortcut"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    tenant_id: Mapped[int] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"), index=True)
    queue_id: Mapped[int | None] = mapped_column(ForeignKey("queues.id", ondelete="CASCADE"))
    name: Mapped[str] = mapped_column(String(200))
    # What an agent types to find it, e.g. "refund".
    shortcut: Mapped[str] = mapped_column(String(64))
    text: Mapped[str] = mapped_column(Text)
    updated_at: Mapped[float] = mapped_column(Float)
    updated_by: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))


class WebhookDelivery(Base):
    """One event sent to one webhook: its state, attempts so far and each attempt's result."""

    __tablename__ = "webhook_deliveries"
    __table_args__ = (Index("ix_webhook_deliveries_tenant_created", "tenant_id", "created_at"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    tenant_id: Mapped[int] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"))
    # offered, answered, wrapped-up
    event: Mapped[str] = mapped_column(String(32))
    contact_id: Mapped[str | None] = mapped_column(String(64))
    url: Mapped[str] = mapped_column(String(2000))
    # pending, delivered, failed
    status: Mapped[str] = mapped_column(String(16))
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    # The last attempt's HTTP status (None: no answer) and error.
    status_code: Mapped[int | None] = mapped_column(Integer)
    error: Mapped[str | None] = mapped_column(String(500))
    # Every attempt: [{"at", "status_code", "error"}].
    log: Mapped[list[Any]] = mapped_column(JSON, default=list)
    created_at: Mapped[float] = mapped_column(Float)
    updated_at: Mapped[float] = mapped_column(Float)


class Article(Base):
    """A knowledge-base article; its body is Markdown, shown as sanitized HTML. The full-text index is
    made per dialect by migration 0104 (tsvector + GIN on PostgreSQL, FTS5 on SQLite), not by the model."""

    __tablename__ = "kb_articles"
    __table_args__ = (Index("ix_kb_articles_tenant_updated", "tenant_id", "updated_at"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    tenant_id: Mapped[int] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"))
    title: Mapped[str] = mapped_column(String(300))
    body_md: Mapped[str] = mapped_column(Text)
    tags: Mapped[list[str]] = mapped_column(JSON, default=list)
    # Queue names the article is for (empty: every queue) and wrap-up codes it relates to.
    queues: Mapped[list[str]] = mapped_column(JSON, default=list)
    wrapup_codes: Mapped[list[str]] = mapped_column(JSON, default=list)
    updated_at: Mapped[float] = mapped_column(Float)
    updated_by: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))


class ArticleScope(Base):
    """One queue or wrap-up code of an article, as rows, so search filters and suggestions are indexed
    queries (kept by store/knowledge.py with the article's JSON lists)."""

    __tablename__ = "kb_article_scopes"
    __table_args__ = (Index("ix_kb_article_scopes_tenant_kind_value", "tenant_id", "kind", "value"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    tenant_id: Mapped[int] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"))
    article_id: Mapped[int] = mapped_column(ForeignKey("kb_articles.id", ondelete="CASCADE"), index=True)
    # "queue" or "wrapup".
    kind: Mapped[str] = mapped_column(String(16))
    value: Mapped[str] = mapped_column(String(64))


class WorkInstruction(Base):
    """A supervisor's instruction to the agents of some queues ("outage in region north: use snippet X");
    each addressed agent acknowledges it."""

    __tablename__ = "work_instructions"
    __table_args__ = (Index("ix_work_instructions_tenant_published", "tenant_id", "published_at"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    tenant_id: Mapped[int] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"))
    queues: Mapped[list[str]] = mapped_column(JSON, default=list)
    # The agents it was addressed to when published (members of the queues then).
    agent_ids: Mapped[list[int]] = mapped_column(JSON, default=list)
    text: Mapped[str] = mapped_column(Text)
    published_by: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    published_at: Mapped[float] = mapped_column(Float)
    expires_at: Mapped[float | None] = mapped_column(Float)


class InstructionAck(Base):
    __tablename__ = "instruction_acks"
    __table_args__ = (UniqueConstraint("instruction_id", "user_id"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    tenant_id: Mapped[int] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"), index=True)
    instruction_id: Mapped[int] = mapped_column(ForeignKey("work_instructions.id", ondelete="CASCADE"))
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    at: Mapped[float] = mapped_column(Float)


class WebinarAttendance(Base):
    """One stay of a member in a webinar room (realtime/webinars.py), for the training record."""

    __tablename__ = "webinar_attendance"
    __table_args__ = (Index("ix_webinar_attendance_tenant_room", "tenant_id", "room"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    tenant_id: Mapped[int] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"))
    room: Mapped[str] = mapped_column(String(32))
    title: Mapped[str] = mapped_column(String(200))
    # The user who attended, or None for a guest (then `name` is what the invitation said).
    user_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    name: Mapped[str] = mapped_column(String(128))
    role: Mapped[str] = mapped_column(String(16))
    joined_at: Mapped[float] = mapped_column(Float)
    left_at: Mapped[float] = mapped_column(Float)


class Form(Base):
    """A queue's data form ("data mask") that agents fill during and after a contact: the draft an admin
    edits and which of its versions is published (realtime/forms.py defines and checks a definition)."""

    __tablename__ = "forms"
    __table_args__ = (UniqueConstraint("tenant_id", "queue_id"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    tenant_id: Mapped[int] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"))
    queue_id: Mapped[int] = mapped_column(ForeignKey("queues.id", ondelete="CASCADE"))
    # The draft: {"title", "required_before_wrap_up", "fields": [...]}.
    definition: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    # The version agents get for new contacts; None: none published (or withdrawn).
    published_version: Mapped[int | None] = mapped_column(Integer)
    updated_at: Mapped[float] = mapped_column(Float)
    updated_by: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))


class FormVersion(Base):
    """A published version of a form, never changed afterwards: answers keep the version they were filled with."""

    __tablename__ = "form_versions"
    __table_args__ = (UniqueConstraint("form_id", "version"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    tenant_id: Mapped[int] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"), index=True)
    form_id: Mapped[int] = mapped_column(ForeignKey("forms.id", ondelete="CASCADE"))
    # 1, 2, ... per form.
    version: Mapped[int] = mapped_column(Integer)
    definition: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    published_at: Mapped[float] = mapped_column(Float)
    published_by: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))


class FormAnswer(Base):
    """What an agent filled in a contact's form: one row per contact, with the version it was filled with."""

    __tablename__ = "form_answers"
    __table_args__ = (
        UniqueConstraint("tenant_id", "contact_id"),
        Index("ix_form_answers_tenant_queue_filled", "tenant_id", "queue", "filled_at"),
    )
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    tenant_id: Mapped[int] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"))
    contact_id: Mapped[str] = mapped_column(String(64))
    # The queue's name whose form it is.
    queue: Mapped[str] = mapped_column(String(64))
    form_version_id: Mapped[int] = mapped_column(ForeignKey("form_versions.id", ondelete="CASCADE"))
    version: Mapped[int] = mapped_column(Integer)
    # {field key: value}, checked against the version's definition.
    data: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    # A draft may leave required fields empty; a saved answer may not.
    draft: Mapped[bool] = mapped_column(Boolean, default=False)
    filled_by: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    filled_at: Mapped[float] = mapped_column(Float)


class Script(Base):
    """A queue's call script: the draft admins edit (always a valid definition, realtime/scriptdef.py)
    and the number of its latest published version (0: never published)."""

    __tablename__ = "scripts"
    __table_args__ = (UniqueConstraint("tenant_id", "queue_id"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    tenant_id: Mapped[int] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"), index=True)
    queue_id: Mapped[int] = mapped_column(ForeignKey("queues.id", ondelete="CASCADE"))
    draft: Mapped[dict[str, Any]] = mapped_column(JSON)
    version: Mapped[int] = mapped_column(Integer, default=0)
    updated_at: Mapped[float] = mapped_column(Float)
    updated_by: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))


class ScriptVersion(Base):
    """A published version of a script; never changed (contacts pinned to it keep it)."""

    __tablename__ = "script_versions"
    __table_args__ = (UniqueConstraint("script_id", "version"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    tenant_id: Mapped[int] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"), index=True)
    script_id: Mapped[int] = mapped_column(ForeignKey("scripts.id", ondelete="CASCADE"))
    version: Mapped[int] = mapped_column(Integer)
    title: Mapped[str] = mapped_column(String(200))
    definition: Mapped[dict[str, Any]] = mapped_column(JSON)
    published_at: Mapped[float] = mapped_column(Float)
    published_by: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))


class ContactScript(Base):
    """The script version a contact is pinned to (when it was first offered or opened) and the agent's
    path through it: one entry per move (step, answer or field value, time), saved as the agent goes."""

    __tablename__ = "contact_scripts"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    tenant_id: Mapped[int] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"), index=True)
    contact_id: Mapped[str] = mapped_column(String(64), unique=True)
    script_version_id: Mapped[int] = mapped_column(ForeignKey("script_versions.id", ondelete="CASCADE"))
    path: Mapped[list[dict[str, Any]]] = mapped_column(JSON, default=list)
    started_at: Mapped[float] = mapped_column(Float)
    updated_at: Mapped[float] = mapped_column(Float)
    # Set when the contact is wrapped up; the path no longer changes.
    finished_at: Mapped[float | None] = mapped_column(Float)


class Team(Base):
    """A named group of users (a training cohort, a shift), e.g. a webinar's audience."""

    __tablename__ = "teams"
    __table_args__ = (UniqueConstraint("tenant_id", "name"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    tenant_id: Mapped[int] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"), index=True)
    name: Mapped[str] = mapped_column(String(64))


class TeamMember(Base):
    __tablename__ = "team_members"
    __table_args__ = (UniqueConstraint("team_id", "user_id"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    tenant_id: Mapped[int] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"), index=True)
    team_id: Mapped[int] = mapped_column(ForeignKey("teams.id", ondelete="CASCADE"))
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)


class WebinarSchedule(Base):
    """A webinar scheduled or started (realtime/webinars.py): when, for how long, and for whom."""

    __tablename__ = "webinar_schedules"
    __table_args__ = (UniqueConstraint("room"), Index("ix_webinar_schedules_tenant_starts", "tenant_id", "starts_at"))
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    tenant_id: Mapped[int] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"))
    room: Mapped[str] = mapped_column(String(32))
    title: Mapped[str] = mapped_column(String(200))
    presenter_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    starts_at: Mapped[float] = mapped_column(Float)
    minutes: Mapped[int] = mapped_column(Integer)
    # {"queues": [queue ids], "teams": [team ids]}: only their agents (and invited guests) may join;
    # None: every user of the tenant may.
    audience: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    created_at: Mapped[float] = mapped_column(Float)
    started_at: Mapped[float | None] = mapped_column(Float)
    ended_at: Mapped[float | None] = mapped_column(Float)
