"""The ACD adapter: runs one `AcdEngine` per tenant in one task (single writer),
feeds it agent readiness and agents' answers, and carries out its commands
(agent-state changes, events, call records, queue figures).

Exactly one hub routes at a time: the holder of the lease "acd" (always the
only hub on the embedded default; with Redis, the first hub to take it, and
another when it stops renewing). Other hubs forward their inputs to it
through the live store's inbox. Agent readiness reaches the router through
the board streams, which every hub receives, so a change made on any hub
counts. A new router rebuilds its engines from the store and the live state.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections.abc import Awaitable, Callable
from typing import Any, Protocol

import msgspec
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from realtime import acd
from realtime import protocol as P
from realtime.agent_state import Action, IllegalTransition, State
from realtime.agents import AgentService, Conflict, NotFound, UnknownReason
from realtime.directory import Directory
from realtime.phone import Call, calls_map
from realtime.live import LiveStore, stream_agent, stream_board
from store.models import CallRecord, Queue
from store.repos import TenantRepo, all_tenants

log = logging.getLogger("unidesk.contacts")

LEASE = "acd"
LEASE_TTL = 6.0
STATS_INTERVAL = 1.0
# Seconds between position announcements to a waiting caller, unless the queue says otherwise (0: none).
ANNOUNCE_INTERVAL = 30.0
# Queue settings that may live in queues.config (JSON) and map to QueueConfig fields.
QUEUE_KEYS = {
    "ring_timeout", "max_wait", "overflow", "max_length", "join_when_empty", "leave_when_empty",
    "announce_interval", "max_missed_offers", "reject_delay", "busy_delay", "no_answer_delay",
    "retry_delay", "ordering", "priority_weight", "weight",
}


# ---------------------------------------------------------------- inputs (also the inbox's wire format)


class _In(msgspec.Struct, tag_field="kind", kw_only=True):
    tenant_id: int


class Arrive(_In, tag="arrive"):
    contact_id: str
    queue: str
    caller: str
    caller_name: str | None = None
    priority: int = 0
    skills: dict[str, int] = {}
    data: dict[str, str] = {}
    # Audio comes with it (a SIP call bridged to the agent's softphone).
    media: bool = False
    # Offered to this agent first, for `preferred_seconds` (a transfer to an agent).
    preferred_agent: int | None = None
    preferred_seconds: float = 30.0
    # The preferred agent takes it at once when offered (an attended transfer: they agreed on the phone).
    answer_now: bool = False
    # The screen pop (realtime/customers.py), looked up before the contact reaches the router; None: not yet.
    customers: list[P.CustomerBrief] | None = None
    customer_id: int | None = None
    crm: dict[str, str] = {}


class Abandon(_In, tag="abandon"):
    contact_id: str
    # Set when the contact was lost rather than given up (its media worker died): recorded as failed.
    failed: str | None = None


class Accept(_In, tag="accept"):
    agent_id: int
    contact_id: str


class Reject(_In, tag="reject"):
    agent_id: int
    contact_id: str


class End(_In, tag="end"):
    agent_id: int
    contact_id: str
    # Who ended it: "agent", or "caller" (the caller hung up).
    by: str = "agent"


class WrapUp(_In, tag="wrap-up"):
    agent_id: int
    contact_id: str
    code: str
    notes: str = ""


class AgentChanged(_In, tag="agent-changed"):
    agent_id: int
    state: str
    version: int


class Hold(_In, tag="hold"):
    """The agent holds its connected contact (or resumes it); the time held counts in the handle time."""

    agent_id: int
    contact_id: str
    on: bool


class Reconfigure(_In, tag="reconfigure"):
    # The queue whose settings changed (realtime/queues.py); None: rebuild the tenant's engine.
    queue: str | None = None


class Busy(_In, tag="busy"):
    """An agent is on (or done with) calls outside the ACD (between agents): not offered contacts meanwhile."""

    agent_id: int
    on: bool


Input = Arrive | Abandon | Accept | Reject | End | WrapUp | AgentChanged | Reconfigure | Busy | Hold
_in_dec = msgspec.json.Decoder(Input)
_enc = msgspec.json.Encoder()
_view_dec = msgspec.json.Decoder(P.ContactView)
_agent_event_dec = msgspec.json.Decoder(P.AgentStateChanged)
_call_dec = msgspec.json.Decoder(Call)


class ContactObserver(Protocol):
    async def contact_connected(self, tenant_id: int, contact_id: str, agent_id: int) -> None: ...

    async def contact_finished(self, tenant_id: int, contact_id: str, reason: str) -> None: ...

    async def contact_held(self, tenant_id: int, contact_id: str, agent_id: int, on: bool) -> None: ...

    async def contact_position(
        self, tenant_id: int, contact_id: str, position: int, expected_wait: float | None
    ) -> None: ...

    # Optional (an observer without them is not told): an offer rings an agent, and ends unanswered
    # (rejected, timed out, withdrawn).
    # async def contact_offered(self, tenant_id: int, contact_id: str, agent_id: int) -> None
    # async def contact_offer_ended(self, tenant_id: int, contact_id: str, agent_id: int) -> None


class ContactError(Exception):
    """An input the router refused; the message is for the user."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


def contacts_map(tenant_id: int) -> str:
    return f"contacts:{tenant_id}"


def stats_map(tenant_id: int) -> str:
    return f"queue-stats:{tenant_id}"


def agent_stats_map(tenant_id: int) -> str:
    return f"agent-stats:{tenant_id}"


class _Tenant:
    """One tenant's engine and what the adapter keeps beside it."""

    def __init__(self, tenant_id: int, engine: acd.AcdEngine) -> None:
        self.tenant_id = tenant_id
        self.engine = engine
        self.views: dict[str, P.ContactView] = {}
        # Wrap-up time of each connected contact's queue.
        self.wrap_up: dict[str, float] = {}
        self.versions: dict[int, int] = {}
        self.dirty: set[str] = set()
        self.dirty_agents: set[int] = set()
        self.thresholds: dict[str, float] = {}
        # Contacts lost with their media (recorded as failed, not abandoned), and why.
        self.failed: dict[str, str] = {}
        # Hold of connected contacts: since when (None: not held now) and the time held before.
        self.holds: dict[str, tuple[float | None, float]] = {}
        # Agents on calls between agents: the ACD treats them as not ready.
        self.busy: set[int] = set()
        # Their last reported agent state.
        self.states: dict[int, str] = {}
        # Contacts their preferred agent takes at once when offered: contact id → agent id.
        self.answer_now: dict[str, int] = {}


class ContactCenter:
    def __init__(
        self,
        live: LiveStore,
        sessionmaker: async_sessionmaker[AsyncSession],
        directory: Directory,
        agents: AgentService,
        hub_id: str | None = None,
    ) -> None:
        self.live = live
        self.sessionmaker = sessionmaker
        self.directory = directory
        self.agents = agents
        self.hub_id = hub_id or uuid.uuid4().hex
        self.leading = False
        self._tenants: dict[int, _Tenant] = {}
        self._queue: asyncio.Queue[tuple[Input, asyncio.Future[Any] | None]] = asyncio.Queue()
        self._tasks: list[asyncio.Task[None]] = []
        self._next_stats = 0.0
        self._observers: list[ContactObserver] = []
        # Fills an arriving contact's screen pop (customers matching the caller, CRM fields).
        self.screen_pop: Callable[[Arrive], Awaitable[Arrive]] | None = None
        live.subscribe(self._on_event)

    # ------------------------------------------------------------ lifecycle

    async def start(self) -> None:
        self._tasks.append(asyncio.create_task(self._lease_loop(), name="acd-lease"))

    async def close(self) -> None:
        for t in self._tasks:
            t.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks.clear()

    async def _lease_loop(self) -> None:
        runner: asyncio.Task[None] | None = None
        inbox: asyncio.Task[None] | None = None
        try:
            while True:
                try:
                    ok = await self.live.lease(LEASE, self.hub_id, LEASE_TTL)
                except Exception:  # the store is away: stop routing rather than risk two routers
                    log.exception("lease renewal failed")
                    ok = False
                if self.leading and runner is not None and runner.done():
                    # The router died on a bug: give up the engines and rebuild them.
                    self.leading = False
                    if inbox:
                        inbox.cancel()
                if ok and not self.leading:
                    await self._rebuild()
                    self.leading = True
                    runner = asyncio.create_task(self._run(), name="acd")
                    inbox = asyncio.create_task(self._inbox(), name="acd-inbox")
                    runner.add_done_callback(_report_death)
                    inbox.add_done_callback(_report_death)
                    log.info("routing contacts on this hub")
                elif not ok and self.leading:
                    self.leading = False
                    for t in (runner, inbox):
                        if t:
                            t.cancel()
                    self._tenants.clear()
                    log.warning("lost the routing lease; another hub routes now")
                await asyncio.sleep(LEASE_TTL / 3)
        finally:
            for t in (runner, inbox):
                if t:
                    t.cancel()

    async def _inbox(self) -> None:
        while True:
            raw = await self.live.inbox_pop(LEASE, 1.0)
            if raw is None:
                continue
            try:
                self._queue.put_nowait((_in_dec.decode(raw), None))
            except msgspec.ValidationError:
                log.error("dropped a malformed inbox message")

    # ------------------------------------------------------------ inputs

    async def submit(self, msg: Input) -> Any:
        """Hand an input to the router. Returns its result when this hub routes,
        None when it was forwarded; raises ContactError when it was refused."""
        if isinstance(msg, Arrive) and msg.customers is None and self.screen_pop is not None:
            # In the submitter's task, bounded: the routing task never waits for a lookup.
            msg = await self.screen_pop(msg)
        if not self.leading:
            await self.live.inbox_push(LEASE, _enc.encode(msg))
            return None
        fut: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._queue.put_nowait((msg, fut))
        return await fut

    def _on_event(self, stream: str, seq: int, frame: bytes) -> None:
        # Agent readiness, from whichever hub made the change.
        if not self.leading or not stream.startswith("board:") or b'"agent-state"' not in frame[:40]:
            return
        ev = _agent_event_dec.decode(frame)
        tenant_id = int(stream.split(":", 1)[1])
        self._queue.put_nowait(
            (AgentChanged(tenant_id=tenant_id, agent_id=ev.agent.id, state=ev.agent.state, version=ev.agent.version), None)
        )

    # ------------------------------------------------------------ the routing task

    async def _run(self) -> None:
        while True:
            now = time.time()
            deadline = min([self._next_stats] + [d for t in self._tenants.values() if (d := t.engine.next_deadline())])
            try:
                msg, fut = await asyncio.wait_for(self._queue.get(), max(0.0, deadline - now))
            except asyncio.TimeoutError:
                msg, fut = None, None
            if msg is not None:
                try:
                    result = await self._apply(msg)
                    if fut and not fut.done():
                        fut.set_result(result)
                except ContactError as exc:
                    if fut and not fut.done():
                        fut.set_exception(exc)
                except Exception as exc:  # one bad input must not stop routing
                    log.exception("ACD input %s failed", type(msg).__name__)
                    if fut and not fut.done():
                        fut.set_exception(ContactError("internal", f"not applied: {exc}"))
            now = time.time()
            for t in list(self._tenants.values()):
                d = t.engine.next_deadline()
                if d is not None and d <= now:
                    t.engine.handle_timeout(now)
                await self._drain(t)
            if now >= self._next_stats:
                self._next_stats = now + STATS_INTERVAL
                for t in list(self._tenants.values()):
                    try:
                        await self._publish_stats(t, now)
                    except Exception:  # figures are refreshed next second; routing goes on
                        log.exception("publishing queue figures failed")

    async def _apply(self, msg: Input) -> Any:
        t = await self._tenant(msg.tenant_id)
        e = t.engine
        now = time.time()
        match msg:
            case Arrive():
                return await self._arrive(t, msg, now)
            case Abandon(contact_id=cid, failed=failed):
                if failed:
                    t.failed[cid] = failed
                if not e.contact_abandoned(cid, now):
                    raise ContactError("not-found", f"no waiting or ringing contact {cid}")
            case Accept(agent_id=aid, contact_id=cid):
                if not e.offer_accepted(cid, str(aid), now):
                    raise ContactError("offer-void", f"contact {cid} is no longer offered to you")
            case Reject(agent_id=aid, contact_id=cid):
                if not e.offer_rejected(cid, str(aid), now):
                    raise ContactError("offer-void", f"contact {cid} is no longer offered to you")
                t.dirty_agents.add(aid)
                await self._tell("contact_offer_ended", t.tenant_id, cid, aid)
                # The engine frees the agent at once; the agent's state follows before any new offer.
                view = t.views.get(cid) or P.ContactView(id=cid, queue="", caller="", arrived_at=now)
                gone = msgspec.structs.replace(view, status="cancelled", agent_id=aid)
                try:
                    await self._change(t, aid, Action.OFFER_ENDED, cid, view=gone, reason="rejected")
                except (IllegalTransition, Conflict):
                    pass
            case End(agent_id=aid, contact_id=cid, by=by):
                await self._end(t, aid, cid, now, by)
            case Hold(agent_id=aid, contact_id=cid, on=on):
                await self._hold(t, aid, cid, on, now)
            case WrapUp():
                await self._wrap_up(t, msg, now)
            case AgentChanged(agent_id=aid, state=state, version=version):
                if version <= t.versions.get(aid, -1):
                    return None
                t.versions[aid] = version
                t.states[aid] = state
                try:
                    if state == State.AVAILABLE.value and aid in t.busy:
                        e.agent_not_ready(str(aid), now)
                    elif state == State.AVAILABLE.value:
                        e.agent_ready(str(aid), now)
                    elif state == State.PAUSED.value:
                        e.agent_not_ready(str(aid), now)
                    elif state == State.LOGGED_OUT.value:
                        e.agent_not_ready(str(aid), now, logged_out=True)
                except acd.AcdError:
                    pass  # not a member of any queue, or a stale report
            case Busy(agent_id=aid, on=on):
                if on:
                    t.busy.add(aid)
                else:
                    t.busy.discard(aid)
                try:
                    if on or t.states.get(aid) != State.AVAILABLE.value:
                        e.agent_not_ready(str(aid), now)
                    else:
                        e.agent_ready(str(aid), now)
                except acd.AcdError:
                    pass  # not a member of any queue
            case Reconfigure(queue=str(name)):
                async with self.sessionmaker() as s:
                    row = next((q for q in await TenantRepo(s, t.tenant_id).queues() if q.name == name), None)
                if row is not None:
                    e.configure_queue(queue_config(row), now)
                    t.thresholds[name] = float(row.service_level_seconds)
            case Reconfigure():
                self._tenants.pop(msg.tenant_id, None)
                await self._tenant(msg.tenant_id)
        await self._drain(t)
        return None

    async def _arrive(self, t: _Tenant, msg: Arrive, now: float) -> str:
        d = await self.directory.get(t.tenant_id)
        if d is None or msg.queue not in {q.name for q in d.queues}:
            raise ContactError("not-found", f"unknown queue {msg.queue!r}")
        view = P.ContactView(
            id=msg.contact_id, queue=msg.queue, caller=msg.caller, caller_name=msg.caller_name,
            priority=msg.priority, arrived_at=now, data=msg.data, media=msg.media,
            customers=msg.customers or [], customer_id=msg.customer_id, crm=msg.crm,
        )
        try:
            t.engine.contact_arrived(
                acd.Contact(
                    id=msg.contact_id, queue=msg.queue, priority=msg.priority,
                    required_skills=msg.skills, caller_data={"caller": msg.caller},
                    preferred_agent=str(msg.preferred_agent) if msg.preferred_agent else None,
                    preferred_until=now + msg.preferred_seconds if msg.preferred_agent else None,
                ),
                now,
            )
        except acd.AcdError as exc:
            raise ContactError("bad-contact", str(exc)) from None
        t.views[msg.contact_id] = view
        if msg.answer_now and msg.preferred_agent:
            t.answer_now[msg.contact_id] = msg.preferred_agent
        async with self.sessionmaker() as s, s.begin():
            queue_id = next((q.id for q in await TenantRepo(s, t.tenant_id).queues() if q.name == msg.queue), None)
            await TenantRepo(s, t.tenant_id).add_call_record(
                msg.contact_id, now, queue_id=queue_id, caller=msg.caller, direction="inbound",
                customer_id=msg.customer_id,
            )
        await self._save(t, view)
        return msg.contact_id

    async def _hold(self, t: _Tenant, agent_id: int, cid: str, on: bool, now: float) -> None:
        view = t.views.get(cid)
        if view is None or view.agent_id != agent_id or view.status != "connected":
            raise ContactError("not-found", f"you are not connected to contact {cid}")
        if view.held == on:
            return
        since, total = t.holds.get(cid, (None, 0.0))
        t.holds[cid] = (now, total) if on else (None, total + (now - since if since is not None else 0.0))
        view.held = on
        await self._save(t, view)
        await self._emit_contact(t, agent_id, view, None)
        await self._tell("contact_held", t.tenant_id, cid, agent_id, on)

    async def _end(self, t: _Tenant, agent_id: int, cid: str, now: float, by: str = "agent") -> None:
        view = t.views.get(cid)
        if view is None or view.agent_id != agent_id or view.status != "connected":
            raise ContactError("not-found", f"you are not connected to contact {cid}")
        since, held = t.holds.pop(cid, (None, 0.0))
        held += now - since if since is not None else 0.0
        view.held = False
        try:
            t.engine.contact_ended(cid, now, hold_seconds=held)
        except acd.AcdError:
            pass  # the router restarted since the answer; the record below still closes the talk
        view.status = "wrap-up"
        t.dirty_agents.add(agent_id)
        wrap = t.wrap_up.pop(cid, 0.0)
        await self._change(t, agent_id, Action.HANG_UP, cid, wrap_up_seconds=wrap, view=view)
        await self._record(t, cid, ended_at=now, data={"ended_by": by, "hold_seconds": round(held, 3)})
        await self._save(t, view)
        await self._tell("contact_finished", t.tenant_id, cid, "caller hung up" if by == "caller" else "agent hung up")

    async def _wrap_up(self, t: _Tenant, msg: WrapUp, now: float) -> None:
        view = t.views.get(msg.contact_id)
        if view is None or view.agent_id != msg.agent_id or view.status not in ("wrap-up", "connected"):
            raise ContactError("not-found", f"contact {msg.contact_id} is not yours to wrap up")
        async with self.sessionmaker() as s:
            codes = {c.code for c in await TenantRepo(s, t.tenant_id).wrapup_codes()}
        if msg.code not in codes:
            raise ContactError("unknown-code", f"unknown wrap-up code {msg.code!r}; known: {', '.join(sorted(codes))}")
        if view.status == "connected":
            raise ContactError("illegal-transition", "end the contact before wrapping it up")
        await self._record(
            t, msg.contact_id, wrapup_code=msg.code, notes=msg.notes or None, default_outcome="answered"
        )
        view.status = "ended"
        current, _ = await self.agents.live.agent(t.tenant_id, msg.agent_id)
        if current.state is State.WRAP_UP and current.contact_id == msg.contact_id:
            await self._change(t, msg.agent_id, Action.END_WRAP_UP, msg.contact_id, view=view)
        else:
            await self._emit_contact(t, msg.agent_id, view, None)
        t.views.pop(msg.contact_id, None)
        await self.live.map_delete(contacts_map(t.tenant_id), msg.contact_id)

    # ------------------------------------------------------------ observers

    def tenant_ids(self) -> list[int]:
        """The tenants this hub routes for now (the leader's; empty elsewhere)."""
        return list(self._tenants)

    def observe(self, observer: ContactObserver) -> None:
        """Be told when contacts connect to an agent and when they finish (the SIP calls behind them)."""
        self._observers.append(observer)

    async def _tell(self, what: str, *args: Any) -> None:
        for o in self._observers:
            fn = getattr(o, what, None)
            if fn is None:
                continue
            try:
                await fn(*args)
            except Exception:  # an observer's failure must not stop routing
                log.exception("contact observer %s failed", what)

    # ------------------------------------------------------------ commands

    async def _drain(self, t: _Tenant) -> None:
        e = t.engine
        for _ in range(100):  # carrying out a command may produce more; bounded for safety
            cmds = e.commands_out()
            if not cmds:
                return
            for cmd in cmds:
                try:
                    await self._carry_out(t, cmd)
                except Exception:  # keep routing; the command's effect is logged as lost
                    log.exception("ACD command %s failed", type(cmd).__name__)

    async def _carry_out(self, t: _Tenant, cmd: Any) -> None:
        now = time.time()
        match cmd:
            case acd.OfferContact(contact_id=cid, agent_id=aid, ring_timeout=ring):
                view = t.views.get(cid)
                assert view is not None, f"offer of an unknown contact {cid}"
                offered = msgspec.structs.replace(view, status="ringing", agent_id=int(aid))
                body = P.encode(P.ContactOffered(contact=offered, ring_timeout=ring))
                try:
                    await self.agents.change(
                        t.tenant_id, int(aid), Action.OFFER, contact_id=cid, source="system",
                        expect_state=State.AVAILABLE,
                        events=lambda _new: [(stream_agent(t.tenant_id, int(aid)), body)],
                    )
                except (IllegalTransition, Conflict, NotFound):
                    # The agent left "available" before the offer landed: next agent.
                    t.engine.offer_rejected(cid, aid, now, busy=True)
                    return
                t.views[cid] = offered
                t.dirty_agents.add(int(aid))
                await self._save(t, offered)
                await self._record_offer(t, cid, int(aid), now)
                if t.answer_now.pop(cid, None) == int(aid):
                    t.engine.offer_accepted(cid, aid, now)  # its ContactAssigned follows in this drain
                else:
                    await self._tell("contact_offered", t.tenant_id, cid, int(aid))
            case acd.CancelOffer(contact_id=cid, agent_id=aid, reason=reason):
                view = t.views.get(cid) or P.ContactView(id=cid, queue="", caller="", arrived_at=now)
                cancelled = msgspec.structs.replace(view, status="cancelled", agent_id=int(aid))
                t.dirty_agents.add(int(aid))
                await self._tell("contact_offer_ended", t.tenant_id, cid, int(aid))
                try:
                    await self._change(t, int(aid), Action.OFFER_ENDED, cid, view=cancelled, reason=reason)
                except (IllegalTransition, Conflict):
                    pass  # the agent already left ringing (paused, logged out)
            case acd.ContactAssigned(contact_id=cid, agent_id=aid, wrap_up_seconds=wrap):
                view = t.views[cid]
                view.status = "connected"
                view.agent_id = int(aid)
                t.wrap_up[cid] = wrap
                t.dirty_agents.add(int(aid))
                await self._change(t, int(aid), Action.ANSWER, cid, view=view)
                await self._record(t, cid, agent_id=int(aid), answered_at=now)
                await self._save(t, view)
                await self._tell("contact_connected", t.tenant_id, cid, int(aid))
            case acd.ContactRequeued(contact_id=cid):
                view = t.views.get(cid)
                if view is not None:
                    view.status, view.agent_id = "waiting", None
                    await self._save(t, view)
            case acd.OverflowContact(contact_id=cid, to_queue=to):
                view = t.views.get(cid)
                if view is not None:
                    view.queue = to
                    await self._save(t, view)
            case acd.EndContact(contact_id=cid, reason=reason) | acd.RejectContact(contact_id=cid, reason=reason):
                t.views.pop(cid, None)
                t.answer_now.pop(cid, None)
                await self.live.map_delete(contacts_map(t.tenant_id), cid)
                await self._record(t, cid, ended_at=now, outcome_reason=reason)
                await self._tell("contact_finished", t.tenant_id, cid, str(reason))
            case acd.PauseAgent(agent_id=aid, reason=reason):
                try:
                    await self.agents.change(t.tenant_id, int(aid), Action.PAUSE, reason=reason, source="system")
                except (IllegalTransition, Conflict, UnknownReason, NotFound) as exc:
                    log.warning("could not pause agent %s after missed offers: %s", aid, exc)
            case acd.StatsChanged(queue=q):
                t.dirty.add(q)
            case acd.ContactRecorded(record=rec):
                if rec.agent_id is not None:
                    t.dirty_agents.add(int(rec.agent_id))
                if rec.outcome is not acd.Outcome.ANSWERED:
                    t.views.pop(rec.contact_id, None)
                    await self.live.map_delete(contacts_map(t.tenant_id), rec.contact_id)
                failed = t.failed.pop(rec.contact_id, None)
                await self._record(
                    t, rec.contact_id, outcome="failed" if failed else _outcome(rec), outcome_reason=failed,
                    **({} if rec.outcome is acd.Outcome.ANSWERED else {"ended_at": rec.ended_at}),
                    data={
                        "wait": rec.wait_seconds,
                        "talk": rec.talk_seconds,
                        "hold": rec.hold_seconds,
                        "wrap_up": rec.wrap_up_seconds,
                        "segments": [
                            {"queue": s.queue, "entered": s.entered_at, "left": s.left_at, "outcome": str(s.outcome)}
                            for s in rec.segments
                        ],
                        "offers": [
                            {"agent": int(o.agent_id), "queue": o.queue, "at": o.offered_at,
                             "resolved": o.resolved_at, "result": o.result}
                            for o in rec.offers
                        ],
                    },
                )
                # After the call record: rows for the reports never stand in the way of the outcome.
                await self._record_for_reports(t, rec)
            case acd.AnnouncePosition(contact_id=cid, position=position, expected_wait=expected):
                await self._tell("contact_position", t.tenant_id, cid, position, expected)

    async def _change(
        self, t: _Tenant, agent_id: int, action: Action, cid: str, *, view: P.ContactView,
        reason: str | None = None, wrap_up_seconds: float = 0.0,
    ) -> None:
        body = P.encode(P.ContactChanged(contact=view, reason=reason))
        await self.agents.change(
            t.tenant_id, agent_id, action, contact_id=cid, source="system", wrap_up_seconds=wrap_up_seconds,
            events=lambda _new: [(stream_agent(t.tenant_id, agent_id), body)],
        )

    async def _emit_contact(self, t: _Tenant, agent_id: int, view: P.ContactView, reason: str | None) -> None:
        body = P.encode(P.ContactChanged(contact=view, reason=reason))
        await self.live.publish([(stream_agent(t.tenant_id, agent_id), body)])

    async def _save(self, t: _Tenant, view: P.ContactView) -> None:
        await self.live.map_put(contacts_map(t.tenant_id), view.id, _enc.encode(view))

    async def _record(self, t: _Tenant, cid: str, *, data: dict[str, Any] | None = None,
                      outcome_reason: str | None = None, default_outcome: str | None = None,
                      **fields: Any) -> None:
        async with self.sessionmaker() as s, s.begin():
            row: CallRecord | None = await TenantRepo(s, t.tenant_id).call_record(cid)
            if row is None:
                return
            for k, v in fields.items():
                setattr(row, k, v)
            if default_outcome and row.outcome is None:
                # Answered under a previous router, whose engine cannot report it.
                row.outcome = default_outcome
            if data or outcome_reason:
                merged = dict(row.data or {})
                merged.update(data or {})
                if outcome_reason:
                    merged["reason"] = outcome_reason
                row.data = merged

    async def _record_for_reports(self, t: _Tenant, rec: Any) -> None:
        """The contact's queue segments and offers, one row each: what the historical reports count."""
        last = len(rec.segments) - 1
        segments = []
        for i, s in enumerate(rec.segments):
            answered = i == last and rec.outcome is acd.Outcome.ANSWERED
            segments.append({
                "contact_id": rec.contact_id, "queue": s.queue, "entered_at": s.entered_at, "left_at": s.left_at,
                "outcome": str(s.outcome), "service_level_seconds": t.thresholds.get(s.queue, 20.0),
                "agent_id": int(rec.agent_id) if answered and rec.agent_id else None,
                "answered_at": rec.answered_at if answered else None,
                "talk_seconds": rec.talk_seconds if answered else 0.0,
                "hold_seconds": rec.hold_seconds if answered else 0.0,
                "wrap_up_seconds": rec.wrap_up_seconds if answered else 0.0,
            })
        offers = [
            {"contact_id": rec.contact_id, "agent_id": int(o.agent_id), "queue": o.queue, "offered_at": o.offered_at,
             "resolved_at": o.resolved_at, "result": o.result}
            for o in rec.offers
        ]
        async with self.sessionmaker() as s, s.begin():
            repo = TenantRepo(s, t.tenant_id)
            await repo.add_contact_segments(segments)
            await repo.add_contact_offers(offers)

    async def _record_offer(self, t: _Tenant, cid: str, agent_id: int, now: float) -> None:
        async with self.sessionmaker() as s, s.begin():
            row = await TenantRepo(s, t.tenant_id).call_record(cid)
            if row is not None:
                merged = dict(row.data or {})
                merged["offered_to"] = [*merged.get("offered_to", []), agent_id]
                row.data = merged

    # ------------------------------------------------------------ statistics

    async def queue_stats(self, tenant_id: int) -> list[P.QueueStatsView]:
        """The latest published figures (from whichever hub routes)."""
        raw = await self.live.map_all(stats_map(tenant_id))
        dec = msgspec.json.Decoder(P.QueueStatsView)
        return sorted((dec.decode(v) for v in raw.values()), key=lambda q: q.queue)

    async def agent_stats(self, tenant_id: int) -> list[P.AgentStatsView]:
        raw = await self.live.map_all(agent_stats_map(tenant_id))
        dec = msgspec.json.Decoder(P.AgentStatsView)
        return sorted((dec.decode(v) for v in raw.values()), key=lambda a: a.agent_id)

    async def _publish_stats(self, t: _Tenant, now: float) -> None:
        e = t.engine
        names = set(t.dirty)
        t.dirty.clear()
        for q in e.queue_names:
            if e.queue_stats(q, now).waiting:
                names.add(q)  # longest wait grows by itself
        if not names and not t.dirty_agents:
            return
        states = await self.live.agents(t.tenant_id)
        d = await self.directory.get(t.tenant_id)
        views = []
        for q in sorted(names):
            if q not in e.queue_names:
                continue
            st = e.queue_stats(q, now)
            members = [uid for uid, qs in (d.agent_queues.items() if d else ()) if q in qs]
            counts: dict[str, int] = {}
            paused: dict[str, int] = {}
            for uid in members:
                s = states.get(uid)
                name = s[0].state.value if s else "logged-out"
                counts[name] = counts.get(name, 0) + 1
                if name == "paused" and s and s[0].reason:
                    paused[s[0].reason] = paused.get(s[0].reason, 0) + 1
            views.append(
                P.QueueStatsView(
                    queue=q, waiting=st.waiting, longest_wait=round(st.longest_wait, 1), offered=st.offered,
                    answered=st.answered, abandoned=st.abandoned, overflowed=st.overflowed,
                    service_level_seconds=st.threshold, service_level=st.service_level,
                    service_level_with_abandons=st.service_level_with_abandons, asa=st.asa, aht=st.aht,
                    abandon_rate=st.abandon_rate, occupancy=st.occupancy,
                    agents_logged_in=len(members) - counts.get("logged-out", 0),
                    agents_available=counts.get("available", 0), agents_ringing=counts.get("ringing", 0),
                    agents_on_call=counts.get("on-call", 0), agents_wrap_up=counts.get("wrap-up", 0),
                    agents_paused=paused,
                )
            )
        agents = []
        for aid in sorted(t.dirty_agents):
            try:
                a = e.agent_stats(str(aid), now)
            except acd.AcdError:
                continue
            agents.append(
                P.AgentStatsView(
                    agent_id=aid, offered=a.offered, answered=a.answered, missed=a.missed, rejected=a.rejected,
                    talk_seconds=round(a.talk_seconds, 1), hold_seconds=round(a.hold_seconds, 1),
                    wrap_up_seconds=round(a.wrap_up_seconds, 1), idle_seconds=round(a.idle_seconds, 1),
                    occupancy=a.occupancy,
                )
            )
        t.dirty_agents.clear()
        for v in views:
            await self.live.map_put(stats_map(t.tenant_id), v.queue, _enc.encode(v))
        for a in agents:
            await self.live.map_put(agent_stats_map(t.tenant_id), str(a.agent_id), _enc.encode(a))
        if views or agents:
            frame = P.encode(P.QueueStatsChanged(queues=views, agents=agents))
            await self.live.publish([(stream_board(t.tenant_id), frame)])

    # ------------------------------------------------------------ building engines

    async def _tenant(self, tenant_id: int) -> _Tenant:
        t = self._tenants.get(tenant_id)
        if t is None:
            t = self._tenants[tenant_id] = await self._build(tenant_id)
        return t

    async def _build(self, tenant_id: int) -> _Tenant:
        now = time.time()
        engine = acd.AcdEngine()
        t = _Tenant(tenant_id, engine)
        async with self.sessionmaker() as s:
            repo = TenantRepo(s, tenant_id)
            queues = await repo.queues()
            memberships = await repo.memberships()
            skills = await repo.agent_skills()
        for q in queues:
            engine.configure_queue(queue_config(q), now)
            t.thresholds[q.name] = float(q.service_level_seconds)
        by_agent: dict[int, list[acd.Membership]] = {}
        for m in memberships:
            by_agent.setdefault(m.user_id, []).append(acd.Membership(queue=m.queue, penalty=m.penalty))
        for uid, ms in by_agent.items():
            engine.configure_agent(acd.AgentConfig(id=str(uid), skills=skills.get(uid, {}), memberships=tuple(ms)), now)
        states = await self.live.agents(tenant_id)
        for raw in (await self.live.map_all(calls_map(tenant_id))).values():
            call = _call_dec.decode(raw)
            t.busy.update((call.caller, call.callee))
        for uid, (state, _) in states.items():
            t.versions[uid] = state.version
            t.states[uid] = state.state.value
            if uid not in by_agent:
                continue
            if state.state is State.AVAILABLE and uid in t.busy:
                engine.agent_not_ready(str(uid), now)
            elif state.state is State.AVAILABLE:
                engine.agent_ready(str(uid), now)
            elif state.state is State.PAUSED:
                engine.agent_not_ready(str(uid), now)
        # Contacts that waited under the previous router wait again; a ringing one rang
        # an agent who is released first. Connected ones need no routing.
        for raw in (await self.live.map_all(contacts_map(tenant_id))).values():
            view = _view_dec.decode(raw)
            if view.status in ("waiting", "ringing"):
                if view.status == "ringing" and view.agent_id is not None:
                    try:
                        await self.agents.change(
                            tenant_id, view.agent_id, Action.OFFER_ENDED, contact_id=view.id, source="system"
                        )
                    except (IllegalTransition, Conflict, NotFound):
                        pass
                view.status, view.agent_id = "waiting", None
                try:
                    engine.contact_arrived(acd.Contact(id=view.id, queue=view.queue, priority=view.priority,
                                                       caller_data={"caller": view.caller}), now)
                except acd.AcdError:
                    continue
            t.views[view.id] = view
        await self._close_lost(tenant_id, set(t.views), now)
        return t

    async def _close_lost(self, tenant_id: int, live_ids: set[str], now: float) -> None:
        """Contacts with an open record but no live state (the embedded hub restarted,
        or the live store was flushed) can never be served: record them as failed."""
        async with self.sessionmaker() as s, s.begin():
            for row in await TenantRepo(s, tenant_id).open_call_records():
                if row.contact_id in live_ids:
                    continue
                row.outcome = row.outcome or ("answered" if row.answered_at else "failed")
                row.ended_at = row.ended_at or now
                row.data = {**(row.data or {}), "reason": "lost when the routing hub restarted"}

    async def _rebuild(self) -> None:
        self._tenants.clear()
        async with self.sessionmaker() as s:
            ids = [t.id for t in await all_tenants(s)]
        for tid in ids:
            t = await self._tenant(tid)
            await self._drain(t)

    # ------------------------------------------------------------ views for snapshots

    async def contacts_of(self, tenant_id: int, agent_id: int) -> list[P.ContactView]:
        raw = await self.live.map_all(contacts_map(tenant_id))
        views = [_view_dec.decode(v) for v in raw.values()]
        return [v for v in views if v.agent_id == agent_id and v.status in ("ringing", "connected", "wrap-up")]


def queue_config(q: Queue) -> acd.QueueConfig:
    """The ACD's configuration of a queue row."""
    extra = {k: v for k, v in (q.config or {}).items() if k in QUEUE_KEYS}
    extra.setdefault("max_missed_offers", 3)
    extra.setdefault("announce_interval", ANNOUNCE_INTERVAL)
    return acd.QueueConfig(name=q.name, strategy=q.strategy, wrap_up_seconds=float(q.wrap_up_seconds),
                           service_level_seconds=float(q.service_level_seconds), **extra)


def _outcome(rec: Any) -> str:
    if rec.outcome is acd.Outcome.ANSWERED:
        return "answered"
    if rec.outcome is acd.Outcome.ABANDONED:
        return "abandoned"
    if rec.segments and rec.segments[-1].outcome is acd.SegmentOutcome.OVERFLOWED:
        return "overflowed"
    if any(s.outcome is acd.SegmentOutcome.OVERFLOWED for s in rec.segments):
        return "overflowed"
    return str(rec.outcome)


def _report_death(task: asyncio.Task[None]) -> None:
    if not task.cancelled() and task.exception() is not None:
        log.error("%s stopped", task.get_name(), exc_info=task.exception())


def new_contact_id() -> str:
    return uuid.uuid4().hex[:20]
