"""The ACD engine: a sans-I/O state machine that matches contacts with agents.

Inputs are method calls carrying the current time; outputs are command values
drained with `commands_out()`. The caller owns the clock: it asks
`next_deadline()` when to call `handle_timeout(now)` next. Nothing here reads
a clock, sleeps, or touches the network, so the same class runs the live hub
and the simulator.

Two paths make every decision, and both look only at candidates:

* contact path (a contact arrives or comes back to waiting): the queue's
  AgentIndex yields the best available member for the strategy; skills are
  checked on that candidate only.
* agent path (an agent becomes available): for each queue the agent serves,
  WaitingContacts yields the best contact per requirement group the agent's
  skills satisfy; the best across queues wins.

After every input the engine is work-conserving: no waiting contact has an
available agent it may be offered to (see docs/acd.md for the exceptions
that are rules: preferred-agent windows, retry and reject delays).
"""

from __future__ import annotations

import itertools
import math
import random
from collections.abc import Iterable
from heapq import heappop, heappush

from .commands import (
    AnnouncePosition, CancelOffer, ContactAssigned, ContactRecord, ContactRecorded, ContactRequeued,
    EndContact, OfferAttempt, OfferContact, Outcome, OverflowContact, PauseAgent, QueueSegment,
    RejectContact, SegmentOutcome, StatsChanged,
)
from .config import (
    AgentConfig, ConfigError, Contact, EmptyRule, InvalidContactError, QueueConfig, StateError, Strategy,
    UnknownAgentError, UnknownContactError, UnknownQueueError, effective_requirement,
)
from .stats import AgentCounters, AgentStats, QueueCounters, QueueStats, agent_snapshot, queue_snapshot
from .strategies import AgentIndex, WaitingContacts, skills_ok

# Contact states.
WAITING, RINGING, CONNECTED, WRAP_UP, DONE = "waiting", "ringing", "connected", "wrap-up", "done"
# Timer kinds.
_T_RING, _T_MAXWAIT, _T_STEP, _T_ANNOUNCE, _T_PREFER, _T_RETRY, _T_UNBLOCK = range(7)
# Weight of the newest handled contact in the handle-time average used for
# expected-wait announcements (the rest is history).
_AHT_SMOOTHING = 0.25


class _Member:
    __slots__ = ("penalty", "weight", "order")

    def __init__(self, penalty: int, weight: float, order: int) -> None:
        self.penalty = penalty
        self.weight = weight
        # Position in the queue's member list (top-down, round-robin, ring-all order).
        self.order = order


class _Agent:
    __slots__ = (
        "id", "skills", "members", "logged_in", "paused", "ready", "available", "offer", "contact", "epoch",
        "idle_since", "calls", "talk_total", "missed_streak", "blocked_until", "block_epoch", "counters",
    )

    def __init__(self, agent_id: str) -> None:
        self.id = agent_id
        self.skills: dict[str, int] = {}
        self.members: dict[str, _Member] = {}
        self.logged_in = False
        # Not ready by choice (pause), as opposed to busy with a contact.
        self.paused = False
        # The hub says ready for offers (stays true while ringing).
        self.ready = False
        # May be offered a contact right now: ready, not ringing, not blocked.
        self.available = False
        self.offer: str | None = None
        self.contact: _Contact | None = None
        # Bumped whenever the agent stops being available: kills its index entries.
        self.epoch = 0
        self.idle_since = 0.0
        # Routing counters (lifetime, not reset with the statistics).
        self.calls = 0
        self.talk_total = 0.0
        self.missed_streak = 0
        self.blocked_until = -math.inf
        self.block_epoch = 0
        self.counters = AgentCounters()


class _Queue:
    __slots__ = ("name", "config", "index", "waiting", "contacts", "counters", "logged_in", "working", "ready",
                 "aht")

    def __init__(self, config: QueueConfig, rng: random.Random) -> None:
        self.name = config.name
        self.config = config
        self.index = AgentIndex(config.strategy, rng)  # type: ignore[arg-type]
        self.waiting = WaitingContacts(config.ordering, config.priority_weight)  # type: ignore[arg-type]
        # Contacts waiting or ringing here, in order of entry (oldest first).
        self.contacts: dict[str, _Contact] = {}
        self.counters = QueueCounters()
        # Members logged in / logged in and not paused / ready.
        self.logged_in = 0
        self.working = 0
        self.ready = 0
        # Smoothed handle time of this queue's contacts, for expected waits.
        self.aht: float | None = None


class _Contact:
    __slots__ = (
        "id", "spec", "priority", "seq", "arrived_at", "queue", "entered_at", "state", "qkey", "req", "steps",
        "step", "pref_agent", "pref_declined", "bucket", "wait_epoch", "timer_epoch", "offer_epoch", "ringing", "tried",
        "segments", "offers", "agent_id", "answered_at", "talk_ended_at", "talk", "hold", "busy",
    )

    def __init__(self, spec: Contact, seq: int, now: float) -> None:
        self.id = spec.id
        self.spec = spec
        self.priority = spec.priority
        self.seq = seq
        self.arrived_at = now
        self.queue = spec.queue
        self.entered_at = now
        self.state = WAITING
        self.qkey: tuple = ()
        self.req: tuple = ((), None)
        self.steps: tuple = ()
        self.step = -1
        self.pref_agent: str | None = None
        self.pref_declined = False
        self.bucket = None
        self.wait_epoch = 0
        self.timer_epoch = 0
        self.offer_epoch = 0
        # Agent id -> when it started ringing.
        self.ringing: dict[str, float] = {}
        # Agent id -> time until which it may not be offered this contact again.
        self.tried: dict[str, float] = {}
        self.segments: list[QueueSegment] = []
        self.offers: list[OfferAttempt] = []
        self.agent_id: str | None = None
        self.answered_at: float | None = None
        self.talk_ended_at: float | None = None
        self.talk = 0.0
        self.hold = 0.0
        # The LiveSum its busy time runs in (survives a queue's removal).
        self.busy = None


class AcdEngine:
    """Automatic call distribution as a pure state machine. See docs/acd.md."""

    def __init__(self, *, rng: random.Random | None = None, max_missed_offers: int = 0,
                 stats_changed: bool = True) -> None:
        if isinstance(max_missed_offers, bool) or not isinstance(max_missed_offers, int) or max_missed_offers < 0:
            raise ConfigError(f"AcdEngine.max_missed_offers: {max_missed_offers!r} must be an integer >= 0")
        # Random strategies draw from this; pass a seeded one for reproducible runs.
        self._rng = rng if rng is not None else random.Random()
        self._max_missed = max_missed_offers
        # Emit StatsChanged at drains (a caller that polls statistics can turn it off).
        self._stats_changed = stats_changed
        self._queues: dict[str, _Queue] = {}
        self._agents: dict[str, _Agent] = {}
        # Queue name -> its member agents; kept for queues not configured yet too.
        self._members: dict[str, dict[str, _Agent]] = {}
        self._orders = itertools.count()
        self._contacts: dict[str, _Contact] = {}
        self._seq = itertools.count()
        self._timers: list[tuple] = []
        self._timer_seq = itertools.count()
        self._out: list = []
        self._dirty: dict[str, None] = {}
        # StatsChanged values are immutable: one per queue is reused.
        self._stats_cmds: dict[str, StatsChanged] = {}
        self._now = 0.0

    # ----------------------------------------------------------------- outputs

    def commands_out(self) -> list:
        """Return the commands produced since the last call, and forget them."""
        out, self._out = self._out, []
        if self._dirty:
            if self._stats_changed:
                cache = self._stats_cmds
                for name in self._dirty:
                    if name in self._queues:
                        cmd = cache.get(name)
                        if cmd is None:
                            cmd = cache[name] = StatsChanged(name)
                        out.append(cmd)
            self._dirty = {}
        return out

    def next_deadline(self) -> float | None:
        """When handle_timeout must be called next, or None if nothing is pending."""
        timers = self._timers
        while timers and not self._timer_live(timers[0]):
            heappop(timers)
        return timers[0][0] if timers else None

    def handle_timeout(self, now: float) -> None:
        """Fire every timer due at `now`: ring timeouts, max waits, steps, announcements..."""
        self._tick(now)
        timers = self._timers
        while timers and timers[0][0] <= now:
            entry = heappop(timers)
            if self._timer_live(entry):
                self._fire(entry, now)

    # ----------------------------------------------------------- configuration

    def configure_queue(self, config: QueueConfig, now: float | None = None) -> None:
        """Add or replace a queue. Checked entirely before anything changes."""
        assert isinstance(config, QueueConfig), "configure_queue takes a QueueConfig"
        now = self._tick(now)
        target = config.overflow_queue
        if target is not None and target not in self._queues:
            raise ConfigError(f"QueueConfig[{config.name!r}].overflow: queue {target!r} is not configured")
        q = self._queues.get(config.name)
        if q is None:
            q = self._queues[config.name] = _Queue(config, self._rng)
            for agent in self._members.get(config.name, {}).values():
                self._count(q, agent, +1, now)
                if agent.available:
                    q.index.push(agent, agent.members[q.name])
            q.counters.reset(now)
            self._dirty[q.name] = None
            return
        old = q.config
        q.config = config
        if config.strategy != old.strategy:
            q.index = AgentIndex(config.strategy, self._rng)  # type: ignore[arg-type]
            for agent in self._members.get(q.name, {}).values():
                if agent.available:
                    q.index.push(agent, agent.members[q.name])
        waiting = q.waiting.contacts()
        q.waiting = WaitingContacts(config.ordering, config.priority_weight)  # type: ignore[arg-type]
        for c in waiting:
            c.bucket = None
        for c in q.contacts.values():
            # Timings restart from the new rules; places in line are kept.
            c.timer_epoch += 1
            c.qkey = q.waiting.key_for(c)
            self._apply_steps(c, q, now)
            if c.state == WAITING:
                q.waiting.add(c)
            self._arm(c, q, now, restart=False)
        self._dirty[q.name] = None
        self._settle(now, sorted(waiting, key=lambda c: c.qkey), ())
        self._check_leave(q, now)

    def remove_queue(self, name: str, now: float | None = None) -> None:
        """Remove a queue; its waiting contacts end with reason "queue-removed"."""
        now = self._tick(now)
        q = self._queue(name)
        for other in self._queues.values():
            if other.config.overflow_queue == name and other is not q:
                raise ConfigError(f"remove_queue: queue {name!r} is the overflow target of {other.name!r}")
        # Gone first, so that agents freed below are not offered its own contacts.
        del self._queues[name]
        freed: list[_Agent] = []
        for c in list(q.contacts.values()):
            freed += self._cancel_offers(c, now, "removed")
            self._leave_queue(c, q, now, SegmentOutcome.ENDED)
            self._end(c, now, "queue-removed")
        self._settle(now, (), freed)
        self._dirty.pop(name, None)

    def configure_agent(self, config: AgentConfig, now: float | None = None) -> None:
        """Add or replace an agent's skills and memberships. A new agent starts logged out."""
        assert isinstance(config, AgentConfig), "configure_agent takes an AgentConfig"
        now = self._tick(now)
        agent = self._agents.get(config.id)
        if agent is None:
            agent = self._agents[config.id] = _Agent(config.id)
        was_available = agent.available
        if was_available:
            self._set_unavailable(agent)
        old_queues = list(agent.members)
        self._detach(agent, now)
        old = agent.members
        agent.skills = dict(config.skills)
        agent.members = {
            m.queue: _Member(m.penalty, m.weight, old[m.queue].order if m.queue in old else next(self._orders))
            for m in config.memberships
        }
        self._attach(agent, now)
        self._refresh(agent, now)
        if agent.available:
            self._settle(now, (), (agent,))
        self._check_leave_all(old_queues, now)

    def remove_agent(self, agent_id: str, now: float | None = None) -> None:
        """Forget an agent. A contact it is talking to runs on and is recorded normally."""
        now = self._tick(now)
        agent = self._agent(agent_id)
        requeued = self._drop_offer(agent, now, "removed")
        contact = agent.contact
        if contact is not None and contact.state == WRAP_UP:
            self._complete(contact, now - contact.talk_ended_at, now)
        self._set_state(agent, now, logged_in=False, paused=False, ready=False)
        self._refresh(agent, now)
        queues = list(agent.members)
        self._detach(agent, now)
        del self._agents[agent_id]
        self._settle(now, requeued, ())
        self._check_leave_all(queues, now)

    # ------------------------------------------------------------ agent state

    def agent_ready(self, agent_id: str, now: float) -> None:
        """The agent is available for offers (login, end of pause, end of wrap-up)."""
        self._tick(now)
        agent = self._agent(agent_id)
        contact = agent.contact
        if contact is not None:
            if contact.state == CONNECTED:
                raise StateError(f"agent_ready: agent {agent_id!r} is still connected to contact {contact.id!r}")
            # Ready again means wrap-up is over, if the hub did not say so already.
            self._complete(contact, now - contact.talk_ended_at, now)
        self._set_state(agent, now, logged_in=True, paused=False, ready=True)
        if not agent.available and agent.offer is None and agent.blocked_until <= now:
            # Look for work before entering the indexes: when there is some, the
            # agent would only leave them again at once.
            c = self._best_contact(agent, now)
            if c is not None:
                self._offer(c, (agent,), now)
                return
        self._refresh(agent, now)
        if agent.available:
            self._settle(now, (), (agent,))

    def agent_not_ready(self, agent_id: str, now: float, *, logged_out: bool = False) -> None:
        """The agent paused or logged out. A ringing offer to it is cancelled and its contact requeued."""
        self._tick(now)
        agent = self._agent(agent_id)
        requeued = self._drop_offer(agent, now, "agent-not-ready")
        contact = agent.contact
        if logged_out and contact is not None and contact.state == WRAP_UP:
            self._complete(contact, now - contact.talk_ended_at, now)
        self._set_state(agent, now, logged_in=not logged_out, paused=not logged_out, ready=False)
        self._refresh(agent, now)
        self._settle(now, requeued, ())
        self._check_leave_all(agent.members, now)

    # ---------------------------------------------------------------- contacts

    def contact_arrived(self, contact: Contact, now: float) -> None:
        """A contact asks for a queue: it is offered, queued, or rejected (RejectContact)."""
        assert isinstance(contact, Contact), "contact_arrived takes a Contact"
        self._tick(now)
        if contact.id in self._contacts:
            raise StateError(f"contact_arrived: contact {contact.id!r} is already in the ACD")
        q = self._queues.get(contact.queue)
        refusal = "unknown-queue" if q is None else self._refusal(q)
        c = _Contact(contact, next(self._seq), now)
        if refusal is not None:
            if q is not None:
                q.counters.rejected += 1
                self._dirty[q.name] = None
            self._out.append(RejectContact(contact.id, refusal))
            self._record(c, now, Outcome.REJECTED, refusal)
            return
        self._contacts[c.id] = c
        self._enter(c, q, now, wait=False)
        # Available agents have nothing waiting that they may take (the engine
        # is work-conserving), so no agent prefers an older contact: the queue's
        # strategy alone picks, and the contact waits only if nobody may take it.
        if q.index.live:
            self._route_contact(c, now)
        if c.state == WAITING:
            q.waiting.add(c)

    def contact_abandoned(self, contact_id: str, now: float) -> bool:
        """The caller hung up while waiting or ringing. False if it was no longer waiting or ringing."""
        self._tick(now)
        c = self._contacts.get(contact_id)
        if c is None or c.state not in (WAITING, RINGING):
            return False
        q = self._queues[c.queue]
        freed = self._cancel_offers(c, now, "abandoned")
        q.counters.on_abandoned(now - c.entered_at, q.config.service_level_seconds)
        self._leave_queue(c, q, now, SegmentOutcome.ABANDONED)
        self._record(c, now, Outcome.ABANDONED, None)
        self._settle(now, (), freed)
        return True

    def offer_accepted(self, contact_id: str, agent_id: str, now: float) -> bool:
        """The agent took the offer. False if the offer was already void (cancelled, timed out)."""
        self._tick(now)
        c = self._contacts.get(contact_id)
        if c is None or c.state != RINGING or agent_id not in c.ringing:
            return False
        q = self._queues[c.queue]
        agent = self._agents[agent_id]
        offered_at = c.ringing.pop(agent_id)
        freed = self._cancel_offers(c, now, "answered-elsewhere")
        c.offers.append(OfferAttempt(agent_id, q.name, offered_at, now, "accepted"))
        agent.offer = None
        agent.contact = c
        agent.calls += 1
        agent.missed_streak = 0
        agent.counters.answered += 1
        self._set_state(agent, now, ready=False)
        wait = now - c.entered_at
        q.counters.on_answered(wait, q.config.service_level_seconds)
        c.busy = q.counters.busy
        c.busy.open(now, now)
        self._leave_queue(c, q, now, SegmentOutcome.ANSWERED)
        c.state = CONNECTED
        c.agent_id = agent_id
        c.answered_at = now
        self._out.append(ContactAssigned(c.id, agent_id, q.name, wait, q.config.wrap_up_seconds))
        self._settle(now, (), freed)
        return True

    def offer_rejected(self, contact_id: str, agent_id: str, now: float, *, busy: bool = False) -> bool:
        """The agent declined (busy=True: its device was busy). False if the offer was already void."""
        self._tick(now)
        c = self._contacts.get(contact_id)
        if c is None or c.state != RINGING or agent_id not in c.ringing:
            return False
        q = self._queues[c.queue]
        agent = self._agents[agent_id]
        c.offers.append(OfferAttempt(agent_id, q.name, c.ringing.pop(agent_id), now, "busy" if busy else "rejected"))
        agent.offer = None
        agent.counters.rejected += 1
        self._block(agent, now, q.config.busy_delay if busy else q.config.reject_delay)
        self._tried(c, agent, q, now)
        self._refresh(agent, now)
        requeued: tuple = ()
        if not c.ringing:
            self._requeue(c, q, now, "busy" if busy else "rejected")
            requeued = (c,)
        self._settle(now, requeued, (agent,))
        return True

    def contact_ended(self, contact_id: str, now: float, *, hold_seconds: float = 0.0,
                      wrap_up_seconds_used: float | None = None) -> None:
        """Talk ended. With wrap_up_seconds_used the contact is complete now; otherwise at
        contact_wrapped_up, or when the agent is ready again (wrap-up measured up to then)."""
        self._tick(now)
        c = self._contacts.get(contact_id)
        if c is None:
            raise UnknownContactError(f"contact_ended: contact {contact_id!r} is not in the ACD")
        if c.state != CONNECTED:
            raise StateError(f"contact_ended: contact {contact_id!r} is {c.state}, not connected")
        _duration("contact_ended.hold_seconds", hold_seconds)
        if wrap_up_seconds_used is not None:
            _duration("contact_ended.wrap_up_seconds_used", wrap_up_seconds_used)
        c.talk_ended_at = now
        # Hold is part of the call: more hold than call is a reporting slip, capped.
        c.hold = min(hold_seconds, now - c.answered_at)
        c.talk = now - c.answered_at - c.hold
        c.state = WRAP_UP
        if wrap_up_seconds_used is not None:
            self._complete(c, wrap_up_seconds_used, now)

    def contact_wrapped_up(self, contact_id: str, now: float, *, wrap_up_seconds: float | None = None) -> None:
        """Wrap-up of an ended contact is over (its duration defaults to the time since talk ended)."""
        self._tick(now)
        c = self._contacts.get(contact_id)
        if c is None:
            raise UnknownContactError(f"contact_wrapped_up: contact {contact_id!r} is not in the ACD")
        if c.state != WRAP_UP:
            raise StateError(f"contact_wrapped_up: contact {contact_id!r} is {c.state}, not in wrap-up")
        if wrap_up_seconds is None:
            wrap_up_seconds = now - c.talk_ended_at
        _duration("contact_wrapped_up.wrap_up_seconds", wrap_up_seconds)
        self._complete(c, wrap_up_seconds, now)

    # -------------------------------------------------------------- statistics

    def queue_stats(self, name: str, now: float) -> QueueStats:
        q = self._queue(name)
        oldest = next(iter(q.contacts.values()), None)
        return queue_snapshot(
            name, now, q.config.service_level_seconds, q.counters, waiting=q.waiting.count,
            ringing=len(q.contacts) - q.waiting.count,
            longest_wait=now - oldest.entered_at if oldest is not None else 0.0,
            logged_in=q.logged_in, ready=q.ready,
        )

    def agent_stats(self, agent_id: str, now: float) -> AgentStats:
        agent = self._agent(agent_id)
        return agent_snapshot(agent_id, now, self.agent_state(agent_id), agent.counters)

    def reset_stats(self, now: float) -> None:
        """Start a new statistics interval: counters to zero, running durations split at `now`."""
        self._tick(now)
        for q in self._queues.values():
            q.counters.reset(now)
            self._dirty[q.name] = None
        for agent in self._agents.values():
            agent.counters.reset(now)

    # ------------------------------------------------------------ inspection

    @property
    def queue_names(self) -> list[str]:
        return list(self._queues)

    def agent_state(self, agent_id: str) -> str:
        """logged-out, paused, ringing, ready, busy or wrap-up (not ready after a contact)."""
        agent = self._agent(agent_id)
        if not agent.logged_in:
            return "logged-out"
        if agent.offer is not None:
            return "ringing"
        if agent.ready:
            return "ready"
        if agent.contact is not None and agent.contact.state == CONNECTED:
            return "busy"
        return "paused" if agent.paused else "wrap-up"

    def contact_state(self, contact_id: str) -> str | None:
        """waiting, ringing, connected, wrap-up; None once the contact's record was emitted."""
        c = self._contacts.get(contact_id)
        return c.state if c is not None else None

    def contact_queue(self, contact_id: str) -> str | None:
        c = self._contacts.get(contact_id)
        return c.queue if c is not None else None

    def active_contacts(self) -> list[str]:
        return list(self._contacts)

    # ================================================================ internals

    def _tick(self, now: float | None) -> float:
        if now is None:
            return self._now
        assert now >= self._now - 1e-9, f"time went backwards: {now} < {self._now}"
        if now > self._now:
            self._now = now
        return now

    def _queue(self, name: str) -> _Queue:
        q = self._queues.get(name)
        if q is None:
            raise UnknownQueueError(f"queue {name!r} is not configured")
        return q

    def _agent(self, agent_id: str) -> _Agent:
        agent = self._agents.get(agent_id)
        if agent is None:
            raise UnknownAgentError(f"agent {agent_id!r} is not configured")
        return agent

    # -- agent availability and per-queue head counts

    def _count(self, q: _Queue, agent: _Agent, sign: int, now: float) -> None:
        # Add (+1) or remove (-1) the agent's contribution to one queue's counts.
        if agent.logged_in:
            q.logged_in += sign
            if not agent.paused:
                q.working += sign
        if agent.ready:
            q.ready += sign
            if sign > 0:
                q.counters.idle.open(agent.idle_since, now)
            else:
                q.counters.idle.close(agent.idle_since, now)
        self._dirty[q.name] = None

    def _set_state(self, agent: _Agent, now: float, *, logged_in: bool | None = None,
                   paused: bool | None = None, ready: bool | None = None) -> None:
        was_logged, was_paused, was_ready = agent.logged_in, agent.paused, agent.ready
        is_logged = was_logged if logged_in is None else logged_in
        is_paused = was_paused if paused is None else paused
        is_ready = was_ready if ready is None else ready
        d_logged = is_logged - was_logged
        d_working = (is_logged and not is_paused) - (was_logged and not was_paused)
        d_ready = is_ready - was_ready
        agent.logged_in, agent.paused, agent.ready = is_logged, is_paused, is_ready
        if not (d_logged or d_working or d_ready):
            return
        since = agent.idle_since
        if d_ready < 0:
            agent.counters.idle.close(since, now)
        elif d_ready > 0:
            since = agent.idle_since = now
            agent.counters.idle.open(now, now)
        queues = self._queues
        for name in agent.members:
            q = queues.get(name)
            if q is None:
                continue
            q.logged_in += d_logged
            q.working += d_working
            if d_ready:
                q.ready += d_ready
                if d_ready > 0:
                    q.counters.idle.open(now, now)
                else:
                    q.counters.idle.close(since, now)
            self._dirty[name] = None

    def _detach(self, agent: _Agent, now: float) -> None:
        for name in agent.members:
            self._members[name].pop(agent.id, None)
            q = self._queues.get(name)
            if q is not None:
                self._count(q, agent, -1, now)

    def _attach(self, agent: _Agent, now: float) -> None:
        for name in agent.members:
            self._members.setdefault(name, {})[agent.id] = agent
            q = self._queues.get(name)
            if q is not None:
                self._count(q, agent, +1, now)

    def _refresh(self, agent: _Agent, now: float) -> None:
        want = agent.ready and agent.offer is None and agent.blocked_until <= now
        if want and not agent.available:
            agent.available = True
            for name, member in agent.members.items():
                q = self._queues.get(name)
                if q is not None:
                    q.index.push(agent, member)
        elif not want and agent.available:
            self._set_unavailable(agent)

    def _set_unavailable(self, agent: _Agent) -> None:
        agent.available = False
        agent.epoch += 1
        for name in agent.members:
            q = self._queues.get(name)
            if q is not None:
                q.index.discard()

    def _block(self, agent: _Agent, now: float, delay: float) -> None:
        if delay > 0:
            agent.blocked_until = max(agent.blocked_until, now + delay)
            agent.block_epoch += 1
            self._timer(agent.blocked_until, _T_UNBLOCK, agent, agent.block_epoch)

    # -- matching

    def _settle(self, now: float, contacts: Iterable[_Contact], agents: Iterable[_Agent]) -> None:
        # Newly available agents first take the best contact that was already
        # waiting for them; a new contact that is some agent's best is routed by
        # its queue's strategy instead (it may prefer another agent); agents it
        # left go looking again afterwards. Contacts come in queue order.
        if not contacts:
            # Only agents: each takes the best contact waiting for it, if any.
            for agent in agents:
                if agent.available:
                    c = self._best_contact(agent, now)
                    if c is not None:
                        self._offer(c, (agent,), now)
            return
        contacts = [c for c in contacts if c.state == WAITING]
        fresh = {c.id for c in contacts}
        later = []
        for agent in agents:
            if not agent.available:
                continue
            c = self._best_contact(agent, now)
            if c is None:
                continue
            if c.id in fresh:
                later.append(agent)
            else:
                self._offer(c, (agent,), now)
        for c in contacts:
            if c.state == WAITING:
                self._route_contact(c, now)
        for agent in later:
            if agent.available:
                c = self._best_contact(agent, now)
                if c is not None:
                    self._offer(c, (agent,), now)

    def _best_contact(self, agent: _Agent, now: float) -> _Contact | None:
        best = None
        best_rank = None
        for name, member in agent.members.items():
            q = self._queues.get(name)
            if q is None or not q.waiting.count:
                continue
            entry = q.waiting.best_for(agent, member.penalty, now)
            if entry is None:
                continue
            c = entry[-1]
            # Across queues: queue weight, then priority, then arrival.
            rank = (-q.config.weight, -c.priority, c.arrived_at, c.seq)
            if best_rank is None or rank < best_rank:
                best, best_rank = c, rank
        return best

    def _route_contact(self, c: _Contact, now: float) -> None:
        q = self._queues[c.queue]
        if c.pref_agent is not None:
            agent = self._agents.get(c.pref_agent)
            member = agent.members.get(q.name) if agent is not None else None
            if member is not None:
                if agent.available and _may_take(agent, member.penalty, c, now):
                    self._offer(c, (agent,), now)
                return
            # The preferred agent is gone from the queue: route normally.
            queued = c.bucket is not None
            if queued:
                q.waiting.remove(c)
            c.pref_agent = None
            if queued:
                q.waiting.add(c)

        if q.config.strategy is Strategy.RING_ALL:
            agents = q.index.select_all(_may_take, c, now)
            if agents:
                self._offer(c, agents, now)
        else:
            agent = q.index.select(_may_take, c, now)
            if agent is not None:
                self._offer(c, (agent,), now)

    def _offer(self, c: _Contact, agents: Iterable[_Agent], now: float) -> None:
        q = self._queues[c.queue]
        if c.bucket is not None:
            q.waiting.remove(c)
        c.state = RINGING
        c.offer_epoch += 1
        cfg = q.config
        for agent in agents:
            assert agent.ready and agent.offer is None, "offer to an agent that is not ready"
            agent.offer = c.id
            if agent.available:
                self._set_unavailable(agent)
            agent.counters.offered += 1
            c.ringing[agent.id] = now
            self._out.append(OfferContact(c.id, agent.id, q.name, cfg.ring_timeout, c.spec.caller_data))
        self._timer(now + cfg.ring_timeout, _T_RING, c, c.offer_epoch)
        self._dirty[q.name] = None

    # -- offers that end without an answer

    def _cancel_offers(self, c: _Contact, now: float, reason: str) -> list[_Agent]:
        freed = []
        for agent_id, offered_at in c.ringing.items():
            agent = self._agents[agent_id]
            c.offers.append(OfferAttempt(agent_id, c.queue, offered_at, now, "canceled"))
            self._out.append(CancelOffer(c.id, agent_id, reason))
            agent.offer = None
            self._refresh(agent, now)
            freed.append(agent)
        c.ringing.clear()
        return freed

    def _drop_offer(self, agent: _Agent, now: float, reason: str) -> tuple:
        # The agent stops ringing for a reason of its own; its contact waits again.
        if agent.offer is None:
            return ()
        c = self._contacts[agent.offer]
        c.offers.append(OfferAttempt(agent.id, c.queue, c.ringing.pop(agent.id), now, "canceled"))
        self._out.append(CancelOffer(c.id, agent.id, reason))
        agent.offer = None
        self._refresh(agent, now)
        if c.ringing:
            return ()
        self._requeue(c, self._queues[c.queue], now, reason)
        return (c,)

    def _tried(self, c: _Contact, agent: _Agent, q: _Queue, now: float) -> None:
        if c.spec.preferred_agent == agent.id:
            # The preferred agent passed: anyone may take it now, here and after an overflow.
            c.pref_agent = None
            c.pref_declined = True
        if q.config.retry_delay > 0:
            until = now + q.config.retry_delay
            c.tried[agent.id] = until
            self._timer(until, _T_RETRY, c, c.timer_epoch)

    def _requeue(self, c: _Contact, q: _Queue, now: float, reason: str) -> None:
        c.state = WAITING
        q.waiting.add(c)
        self._out.append(ContactRequeued(c.id, q.name, reason))
        self._dirty[q.name] = None

    def _ring_timeout(self, c: _Contact, now: float) -> None:
        q = self._queues[c.queue]
        limit = q.config.max_missed_offers or self._max_missed
        freed = []
        for agent_id, offered_at in c.ringing.items():
            agent = self._agents[agent_id]
            c.offers.append(OfferAttempt(agent_id, q.name, offered_at, now, "no-answer"))
            self._out.append(CancelOffer(c.id, agent_id, "no-answer"))
            agent.offer = None
            agent.counters.missed += 1
            agent.missed_streak += 1
            self._tried(c, agent, q, now)
            if limit and agent.missed_streak >= limit:
                agent.missed_streak = 0
                self._out.append(PauseAgent(agent_id, "no-answer"))
                self._set_state(agent, now, paused=True, ready=False)
            else:
                self._block(agent, now, q.config.no_answer_delay)
            self._refresh(agent, now)
            freed.append(agent)
        c.ringing.clear()
        self._requeue(c, q, now, "no-answer")
        self._settle(now, (c,), freed)
        self._check_leave_all([n for a in freed for n in a.members], now)

    # -- queue entry and exit

    def _refusal(self, q: _Queue) -> str | None:
        cfg = q.config
        if cfg.max_length and len(q.contacts) >= cfg.max_length:
            return "queue-full"
        return _empty_reason(cfg.join_when_empty, q)

    def _enter(self, c: _Contact, q: _Queue, now: float, *, wait: bool = True) -> None:
        c.queue = q.name
        c.entered_at = now
        c.state = WAITING
        c.timer_epoch += 1
        spec = c.spec
        c.pref_agent = None
        if spec.preferred_agent is not None and spec.preferred_until > now and not c.pref_declined:
            if spec.preferred_agent in self._members.get(q.name, ()):
                c.pref_agent = spec.preferred_agent
        c.qkey = q.waiting.key_for(c)
        self._apply_steps(c, q, now)
        q.contacts[c.id] = c
        q.counters.offered += 1
        if wait:
            q.waiting.add(c)
        self._arm(c, q, now, restart=True)
        self._dirty[q.name] = None

    def _apply_steps(self, c: _Contact, q: _Queue, now: float) -> None:
        c.steps = c.spec.routing_steps if c.spec.routing_steps is not None else q.config.routing_steps
        if not c.steps:
            c.step = -1
            c.req = effective_requirement(c.spec.required_skills, None)
            return
        waited = now - c.entered_at
        step = -1
        for i, s in enumerate(c.steps):
            if s.after_seconds <= waited:
                step = i
        c.step = step
        c.req = effective_requirement(c.spec.required_skills, c.steps[step] if step >= 0 else None)

    def _arm(self, c: _Contact, q: _Queue, now: float, *, restart: bool) -> None:
        cfg = q.config
        epoch = c.timer_epoch
        if cfg.max_wait is not None:
            self._timer(c.entered_at + cfg.max_wait, _T_MAXWAIT, c, epoch)
        if c.step + 1 < len(c.steps):
            self._timer(c.entered_at + c.steps[c.step + 1].after_seconds, _T_STEP, c, epoch)
        if cfg.announce_interval > 0:
            self._timer(now + cfg.announce_interval, _T_ANNOUNCE, c, epoch)
        if c.pref_agent is not None:
            self._timer(c.spec.preferred_until, _T_PREFER, c, epoch)
        if restart:
            c.tried.clear()
        for until in c.tried.values():
            if until > now:
                self._timer(until, _T_RETRY, c, epoch)

    def _leave_queue(self, c: _Contact, q: _Queue, now: float, outcome: SegmentOutcome) -> None:
        del q.contacts[c.id]
        if c.bucket is not None:
            q.waiting.remove(c)
        c.segments.append(QueueSegment(q.name, c.entered_at, now, outcome))
        c.timer_epoch += 1
        self._dirty[q.name] = None

    def _end(self, c: _Contact, now: float, reason: str) -> None:
        self._out.append(EndContact(c.id, reason))
        self._record(c, now, Outcome.ENDED, reason)

    def _max_wait(self, c: _Contact, now: float) -> None:
        q = self._queues[c.queue]
        freed = self._cancel_offers(c, now, "max-wait")
        q.counters.overflowed += 1
        self._leave_queue(c, q, now, SegmentOutcome.OVERFLOWED)
        target_name = q.config.overflow_queue
        moved: tuple = ()
        if target_name is None:
            self._end(c, now, q.config.overflow_end_reason)
        else:
            target = self._queues[target_name]
            self._out.append(OverflowContact(c.id, q.name, target_name))
            refusal = self._refusal(target)
            if refusal is not None:
                self._end(c, now, refusal)
            else:
                # Same arrival time and sequence: it keeps its place by arrival.
                self._enter(c, target, now)
                moved = (c,)
        self._settle(now, moved, freed)

    def _check_leave_all(self, names: Iterable[str], now: float) -> None:
        for name in dict.fromkeys(names):
            q = self._queues.get(name)
            if q is not None:
                self._check_leave(q, now)

    def _check_leave(self, q: _Queue, now: float) -> None:
        reason = _empty_reason(q.config.leave_when_empty, q)
        if reason is None or not q.contacts:
            return
        freed: list[_Agent] = []
        for c in list(q.contacts.values()):
            freed += self._cancel_offers(c, now, "leave-empty")
            q.counters.ended += 1
            self._leave_queue(c, q, now, SegmentOutcome.ENDED)
            self._end(c, now, "leave-empty")
        self._settle(now, (), freed)

    # -- completion and records

    def _complete(self, c: _Contact, wrap_up: float, now: float) -> None:
        done_at = c.talk_ended_at + wrap_up
        q = self._queues.get(c.queue)
        c.busy.close(c.answered_at, done_at)
        if q is not None:
            q.counters.on_handled(c.talk, c.hold, wrap_up)
            handle = c.talk + c.hold + wrap_up
            q.aht = handle if q.aht is None else (1 - _AHT_SMOOTHING) * q.aht + _AHT_SMOOTHING * handle
            self._dirty[q.name] = None
        agent = self._agents.get(c.agent_id)
        if agent is not None:
            agent.counters.talk += c.talk
            agent.counters.hold += c.hold
            agent.counters.wrap_up += wrap_up
            agent.talk_total += c.talk
            if agent.contact is c:
                agent.contact = None
        self._record(c, done_at, Outcome.ANSWERED, None, wrap_up)

    def _record(self, c: _Contact, now: float, outcome: Outcome, reason: str | None, wrap_up: float = 0.0) -> None:
        c.state = DONE
        self._contacts.pop(c.id, None)
        answered = c.answered_at is not None
        record = ContactRecord(
            contact_id=c.id, priority=c.priority, arrived_at=c.arrived_at, segments=tuple(c.segments),
            offers=tuple(c.offers), outcome=outcome, reason=reason, queue=c.queue, agent_id=c.agent_id,
            answered_at=c.answered_at, talk_ended_at=c.talk_ended_at, ended_at=now,
            wait_seconds=(c.answered_at if answered else now) - c.arrived_at, talk_seconds=c.talk,
            hold_seconds=c.hold, wrap_up_seconds=wrap_up, caller_data=c.spec.caller_data,
        )
        self._out.append(ContactRecorded(record))

    # -- timers

    def _timer(self, when: float, kind: int, obj: object, epoch: int) -> None:
        heappush(self._timers, (when, next(self._timer_seq), kind, obj, epoch))

    def _timer_live(self, entry: tuple) -> bool:
        _, _, kind, obj, epoch = entry
        if kind == _T_UNBLOCK:
            return obj.block_epoch == epoch and self._agents.get(obj.id) is obj
        if kind == _T_RING:
            return obj.state == RINGING and obj.offer_epoch == epoch
        return obj.timer_epoch == epoch and obj.state in (WAITING, RINGING)

    def _fire(self, entry: tuple, now: float) -> None:
        due, _, kind, obj, _ = entry
        if kind == _T_RING:
            self._ring_timeout(obj, now)
        elif kind == _T_MAXWAIT:
            self._max_wait(obj, now)
        elif kind == _T_UNBLOCK:
            self._refresh(obj, now)
            self._settle(now, (), (obj,))
        else:
            c = obj
            q = self._queues[c.queue]
            if kind == _T_ANNOUNCE:
                if c.state == WAITING:
                    position = q.waiting.position(c)
                    expected = position * q.aht / max(1, q.working) if q.aht is not None else None
                    self._out.append(AnnouncePosition(c.id, position, expected))
                # Keep the cadence of the first announcement even if this one fired late.
                interval = q.config.announce_interval
                due += interval * (1 + math.floor((now - due) / interval))
                self._timer(due, _T_ANNOUNCE, c, c.timer_epoch)
                return
            waiting = c.state == WAITING
            if waiting:
                q.waiting.remove(c)
            if kind == _T_STEP:
                self._apply_steps(c, q, now)
                if c.step + 1 < len(c.steps):
                    self._timer(c.entered_at + c.steps[c.step + 1].after_seconds, _T_STEP, c, c.timer_epoch)
            elif kind == _T_PREFER:
                c.pref_agent = None
            elif kind == _T_RETRY:
                c.tried = {a: until for a, until in c.tried.items() if until > now}
            if waiting:
                q.waiting.add(c)
                self._settle(now, (c,), ())


def _may_take(agent: _Agent, penalty: int, c: _Contact, now: float) -> bool:
    """Whether the contact, at its current step, may be offered to this member."""
    required, max_penalty = c.req
    if max_penalty is not None and penalty > max_penalty:
        return False
    if c.tried and c.tried.get(agent.id, now) > now:
        return False
    return not required or skills_ok(agent.skills, required)


def _empty_reason(rule: EmptyRule, q: _Queue) -> str | None:
    if rule is EmptyRule.NO_LOGGED_IN and q.logged_in == 0:
        return "no-agents-logged-in"
    if rule is EmptyRule.NO_WORKING and q.working == 0:
        return "no-agents-working"
    if rule is EmptyRule.NO_READY and q.ready == 0:
        return "no-agents-ready"
    return None


def _duration(where: str, value: float) -> None:
    if type(value) is float and 0.0 <= value < math.inf:
        return
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value < 0:
        raise InvalidContactError(f"{where}: {value!r} must be a finite number >= 0")

