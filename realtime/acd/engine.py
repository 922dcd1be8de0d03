"""The ACD engine: a sans-I/O state machine that matches contacts with agents.

Inputs are method calls carrying the current time; outputs are command values
drained with `commands_out()`. The caller owns the clock: it asks
`next_deadline()` when to call `handle_timeout(now)` next. Nothing here reads
a clock, sleeps, or touches the network, so the same class runs the live hub
and the simulator.

This module holds the public class: its inputs, and the routing that follows
them. The records and their bookkeeping are in `records` and `state`, the
deadlines in `timers`, the ordered indexes in `strategies`.

Two paths make every decision, and both look only at candidates:

* contact path (a contact arrives or comes back to waiting): the queue's
  AgentIndex yields the best available member for the strategy; skills are
  checked on that candidate only.
* agent path (an agent becomes available): `best_waiting` looks, in each
  queue the agent serves, at the head of each requirement group the agent's
  skills satisfy; the best across queues wins.

After every input the engine is work-conserving: no waiting contact has an
available agent it may be offered to (see docs/acd.md for the exceptions
that are rules: preferred-agent windows, retry and reject delays).
"""

from __future__ import annotations

import math
import random
from collections.abc import Iterable

from .commands import (
    AnnouncePosition, CancelOffer, ContactRequeued, EndContact, Outcome, OverflowContact, PauseAgent, RejectContact,
    SegmentOutcome, build_contact_assigned, build_offer_attempt, build_offer_contact,
)
from .config import (
    AgentConfig, ConfigError, Contact, InvalidContactError, QueueConfig, StateError, UnknownContactError,
)
from .records import (
    CONNECTED, RINGING, WAITING, WRAP_UP, AgentRec, ContactRec, MemberRec, QueueRec, empty_reason, may_take,
)
from .state import EngineState
from .stats import AgentStats, QueueStats, agent_snapshot, queue_snapshot
from .strategies import AgentIndex, WaitingContacts, best_waiting
from .timers import T_ANNOUNCE, T_MAXWAIT, T_PREFER, T_RETRY, T_RING, T_STEP, T_UNBLOCK, next_announcement


class AcdEngine(EngineState):
    """Automatic call distribution as a pure state machine. See docs/acd.md."""

    def __init__(self, *, rng: random.Random | None = None, max_missed_offers: int = 0,
                 stats_changed: bool = True) -> None:
        if isinstance(max_missed_offers, bool) or not isinstance(max_missed_offers, int) or max_missed_offers < 0:
            raise ConfigError(f"AcdEngine.max_missed_offers: {max_missed_offers!r} must be an integer >= 0")
        super().__init__(rng if rng is not None else random.Random())
        self._max_missed = max_missed_offers
        # Emit StatsChanged at drains (a caller that polls statistics can turn it off).
        self._stats_changed = stats_changed

    # ----------------------------------------------------------------- outputs

    def commands_out(self) -> list:
        """Return the commands produced since the last call, and forget them."""
        out = self._out
        self._out = []
        dirty = self._dirty
        if dirty:
            if self._stats_changed:
                out += dirty.values()
            dirty.clear()
        return out

    def next_deadline(self) -> float | None:
        """When handle_timeout must be called next, or None if nothing is pending."""
        return self._timers.next_deadline()

    def handle_timeout(self, now: float) -> None:
        """Fire every timer due at `now`: ring timeouts, max waits, steps, announcements..."""
        self._tick(now)
        timers = self._timers
        while (entry := timers.pop_due(now)) is not None:
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
            q = self._queues[config.name] = QueueRec(config, self._rng)
            for agent in self._members.get(config.name, {}).values():
                self._serve(agent)
                self._count(q, agent, +1, now)
                if agent.available:
                    q.index.push(agent, agent.members[q.name])
            q.counters.reset(now)
            self._dirty[q] = q.changed
            return
        old = q.config
        q.set_config(config)
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
            c.apply_steps(q, now)
            if c.state == WAITING:
                q.waiting.add(c)
            self._timers.arm(c, q.config, now)
        self._dirty[q] = q.changed
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
        for agent in self._members.get(name, {}).values():
            self._serve(agent)
        freed: list[AgentRec] = []
        for c in list(q.contacts.values()):
            freed += self._cancel_offers(c, now, "removed")
            self._leave_queue(c, q, now, SegmentOutcome.ENDED)
            self._end(c, now, "queue-removed")
        self._settle(now, (), freed)
        self._dirty.pop(q, None)

    def configure_agent(self, config: AgentConfig, now: float | None = None) -> None:
        """Add or replace an agent's skills and memberships. A new agent starts logged out."""
        assert isinstance(config, AgentConfig), "configure_agent takes an AgentConfig"
        now = self._tick(now)
        agent = self._agents.get(config.id)
        if agent is None:
            agent = self._agents[config.id] = AgentRec(config.id)
        was_available = agent.available
        if was_available:
            self._set_unavailable(agent)
        old_queues = list(agent.members)
        self._detach(agent, now)
        old = agent.members
        agent.skills = dict(config.skills)
        agent.members = {
            m.queue: MemberRec(m.penalty, m.weight, old[m.queue].order if m.queue in old else next(self._orders))
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
        self._set_state(agent, now, False, False, False)
        self._refresh(agent, now)
        queues = list(agent.members)
        self._detach(agent, now)
        del self._agents[agent_id]
        self._settle(now, requeued, ())
        self._check_leave_all(queues, now)

    # ------------------------------------------------------------ agent state

    def agent_ready(self, agent_id: str, now: float) -> None:
        """The agent is available for offers (login, end of pause, end of wrap-up)."""
        if now > self._now:
            self._now = now  # the usual case of _tick(), spared a call on this hot path
        else:
            self._tick(now)
        agent = self._agents.get(agent_id)
        if agent is None:
            self._agent(agent_id)  # raises UnknownAgentError
        contact = agent.contact
        if contact is not None:
            if contact.state == CONNECTED:
                raise StateError(f"agent_ready: agent {agent_id!r} is still connected to contact {contact.id!r}")
            # Ready again means wrap-up is over, if the hub did not say so already.
            self._complete(contact, now - contact.talk_ended_at, now)
        self._set_state(agent, now, True, False, True)
        if not agent.available and agent.offer is None and agent.blocked_until <= now:
            # Look for work before entering the indexes: when there is some, the
            # agent would only leave them again at once.
            c = best_waiting(agent, now)
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
        self._set_state(agent, now, not logged_out, not logged_out, False)
        self._refresh(agent, now)
        self._settle(now, requeued, ())
        self._check_leave_all(agent.members, now)

    # ---------------------------------------------------------------- contacts

    def contact_arrived(self, contact: Contact, now: float) -> None:
        """A contact asks for a queue: it is offered, queued, or rejected (RejectContact)."""
        assert isinstance(contact, Contact), "contact_arrived takes a Contact"
        if now > self._now:
            self._now = now  # the usual case of _tick(), spared a call on this hot path
        else:
            self._tick(now)
        if contact.id in self._contacts:
            raise StateError(f"contact_arrived: contact {contact.id!r} is already in the ACD")
        q = self._queues.get(contact.queue)
        if q is None:
            refusal = "unknown-queue"
        else:
            refusal = None if q.always_open else q.refusal()
        c = ContactRec(contact, next(self._seq), now)
        if refusal is not None:
            if q is not None:
                q.counters.rejected += 1
                self._dirty[q] = q.changed
            self._out.append(RejectContact(contact.id, refusal))
            self._record(c, now, Outcome.REJECTED, refusal)
            return
        self._contacts[c.id] = c
        self._enter(c, q, now, False)
        # Available agents have nothing waiting that they may take (the engine
        # is work-conserving), so no agent prefers an older contact: the queue's
        # strategy alone picks, and the contact waits only if nobody may take it.
        # (An index whose entries are all dead is emptied by the attempt.)
        if q.index.heap:
            self._route_contact(c, q, now)
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
        c.offers.append(build_offer_attempt(agent_id, q.name, offered_at, now, "accepted"))
        agent.offer = None
        agent.contact = c
        agent.calls += 1
        agent.missed_streak = 0
        agent.counters.answered += 1
        self._set_state(agent, now, agent.logged_in, agent.paused, False)
        wait = now - c.entered_at
        q.counters.on_answered(wait, q.config.service_level_seconds)
        c.busy = q.counters.busy
        c.busy.open(now, now)
        self._leave_queue(c, q, now, SegmentOutcome.ANSWERED)
        c.state = CONNECTED
        c.agent_id = agent_id
        c.answered_at = now
        self._out.append(build_contact_assigned(c.id, agent_id, q.name, wait, q.config.wrap_up_seconds))
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
        c.offers.append(build_offer_attempt(agent_id, q.name, c.ringing.pop(agent_id), now, "busy" if busy else "rejected"))
        agent.offer = None
        agent.counters.rejected += 1
        self._timers.block(agent, now, q.config.busy_delay if busy else q.config.reject_delay)
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
            self._dirty[q] = q.changed
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

    # -- matching

    def _settle(self, now: float, contacts: Iterable[ContactRec], agents: Iterable[AgentRec]) -> None:
        # Newly available agents first take the best contact that was already
        # waiting for them; a new contact that is some agent's best is routed by
        # its queue's strategy instead (it may prefer another agent); agents it
        # left go looking again afterwards. Contacts come in queue order.
        if not contacts:
            # Only agents: each takes the best contact waiting for it, if any.
            for agent in agents:
                if agent.available:
                    c = best_waiting(agent, now)
                    if c is not None:
                        self._offer(c, (agent,), now)
            return
        contacts = [c for c in contacts if c.state == WAITING]
        fresh = {c.id for c in contacts}
        later = []
        for agent in agents:
            if not agent.available:
                continue
            c = best_waiting(agent, now)
            if c is None:
                continue
            if c.id in fresh:
                later.append(agent)
            else:
                self._offer(c, (agent,), now)
        for c in contacts:
            if c.state == WAITING:
                self._route_contact(c, self._queues[c.queue], now)
        for agent in later:
            if agent.available:
                c = best_waiting(agent, now)
                if c is not None:
                    self._offer(c, (agent,), now)

    def _route_contact(self, c: ContactRec, q: QueueRec, now: float) -> None:
        if c.pref_agent is not None:
            agent = self._agents.get(c.pref_agent)
            member = agent.members.get(q.name) if agent is not None else None
            if member is not None:
                if agent.available and may_take(agent, member.penalty, c, now):
                    self._offer(c, (agent,), now)
                return
            # The preferred agent is gone from the queue: route normally.
            queued = c.bucket is not None
            if queued:
                q.waiting.remove(c)
            c.pref_agent = None
            if queued:
                q.waiting.add(c)

        if q.ring_all:
            agents = q.index.select_all(may_take, c, now)
            if agents:
                self._offer(c, agents, now)
        else:
            agent = q.index.select(may_take, c, now)
            if agent is not None:
                self._offer(c, (agent,), now)

    def _offer(self, c: ContactRec, agents: Iterable[AgentRec], now: float) -> None:
        q = self._queues[c.queue]
        if c.bucket is not None:
            q.waiting.remove(c)
        c.state = RINGING
        c.offer_epoch += 1
        ring_timeout = q.config.ring_timeout
        out = self._out
        for agent in agents:
            assert agent.ready and agent.offer is None, "offer to an agent that is not ready"
            agent.offer = c.id
            if agent.available:
                # _set_unavailable(agent), inlined: every contact-path offer does it.
                agent.available = False
                agent.epoch += 1
            agent.counters.offered += 1
            c.ringing[agent.id] = now
            out.append(build_offer_contact(c.id, agent.id, q.name, ring_timeout, c.spec.caller_data))
        self._timers.push(now + ring_timeout, T_RING, c, c.offer_epoch)
        self._dirty[q] = q.changed

    # -- offers that end without an answer

    def _cancel_offers(self, c: ContactRec, now: float, reason: str) -> list[AgentRec]:
        freed = []
        for agent_id, offered_at in c.ringing.items():
            agent = self._agents[agent_id]
            c.offers.append(build_offer_attempt(agent_id, c.queue, offered_at, now, "canceled"))
            self._out.append(CancelOffer(c.id, agent_id, reason))
            agent.offer = None
            self._refresh(agent, now)
            freed.append(agent)
        c.ringing.clear()
        return freed

    def _drop_offer(self, agent: AgentRec, now: float, reason: str) -> tuple:
        # The agent stops ringing for a reason of its own; its contact waits again.
        if agent.offer is None:
            return ()
        c = self._contacts[agent.offer]
        c.offers.append(build_offer_attempt(agent.id, c.queue, c.ringing.pop(agent.id), now, "canceled"))
        self._out.append(CancelOffer(c.id, agent.id, reason))
        agent.offer = None
        self._refresh(agent, now)
        if c.ringing:
            return ()
        self._requeue(c, self._queues[c.queue], now, reason)
        return (c,)

    def _tried(self, c: ContactRec, agent: AgentRec, q: QueueRec, now: float) -> None:
        if c.spec.preferred_agent == agent.id:
            # The preferred agent passed: anyone may take it now, here and after an overflow.
            c.pref_agent = None
            c.pref_declined = True
        if q.config.retry_delay > 0:
            until = now + q.config.retry_delay
            if c.tried is None:
                c.tried = {}
            c.tried[agent.id] = until
            self._timers.push(until, T_RETRY, c, c.timer_epoch)

    def _requeue(self, c: ContactRec, q: QueueRec, now: float, reason: str) -> None:
        c.state = WAITING
        q.waiting.add(c)
        self._out.append(ContactRequeued(c.id, q.name, reason))
        self._dirty[q] = q.changed

    def _ring_timeout(self, c: ContactRec, now: float) -> None:
        q = self._queues[c.queue]
        limit = q.config.max_missed_offers or self._max_missed
        freed = []
        for agent_id, offered_at in c.ringing.items():
            agent = self._agents[agent_id]
            c.offers.append(build_offer_attempt(agent_id, q.name, offered_at, now, "no-answer"))
            self._out.append(CancelOffer(c.id, agent_id, "no-answer"))
            agent.offer = None
            agent.counters.missed += 1
            agent.missed_streak += 1
            self._tried(c, agent, q, now)
            if limit and agent.missed_streak >= limit:
                agent.missed_streak = 0
                self._out.append(PauseAgent(agent_id, "no-answer"))
                self._set_state(agent, now, agent.logged_in, True, False)
            else:
                self._timers.block(agent, now, q.config.no_answer_delay)
            self._refresh(agent, now)
            freed.append(agent)
        c.ringing.clear()
        self._requeue(c, q, now, "no-answer")
        self._settle(now, (c,), freed)
        self._check_leave_all([n for a in freed for n in a.members], now)

    # -- queue exits

    def _end(self, c: ContactRec, now: float, reason: str) -> None:
        self._out.append(EndContact(c.id, reason))
        self._record(c, now, Outcome.ENDED, reason)

    def _max_wait(self, c: ContactRec, now: float) -> None:
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
            refusal = target.refusal()
            if refusal is not None:
                self._end(c, now, refusal)
            else:
                # Same arrival time and sequence: it keeps its place by arrival.
                self._enter(c, target, now, True)
                moved = (c,)
        self._settle(now, moved, freed)

    def _check_leave_all(self, names: Iterable[str], now: float) -> None:
        for name in dict.fromkeys(names):
            q = self._queues.get(name)
            if q is not None:
                self._check_leave(q, now)

    def _check_leave(self, q: QueueRec, now: float) -> None:
        reason = empty_reason(q.config.leave_when_empty, q)
        if reason is None or not q.contacts:
            return
        freed: list[AgentRec] = []
        for c in list(q.contacts.values()):
            freed += self._cancel_offers(c, now, "leave-empty")
            q.counters.ended += 1
            self._leave_queue(c, q, now, SegmentOutcome.ENDED)
            self._end(c, now, "leave-empty")
        self._settle(now, (), freed)

    # -- timers

    def _fire(self, entry: tuple, now: float) -> None:
        due, _, kind, obj, _ = entry
        if kind == T_RING:
            self._ring_timeout(obj, now)
        elif kind == T_MAXWAIT:
            self._max_wait(obj, now)
        elif kind == T_UNBLOCK:
            self._refresh(obj, now)
            self._settle(now, (), (obj,))
        else:
            c = obj
            q = self._queues[c.queue]
            if kind == T_ANNOUNCE:
                if c.state == WAITING:
                    position = q.waiting.position(c)
                    expected = position * q.aht / max(1, q.working) if q.aht is not None else None
                    self._out.append(AnnouncePosition(c.id, position, expected))
                due = next_announcement(due, now, q.config.announce_interval)
                self._timers.push(due, T_ANNOUNCE, c, c.timer_epoch)
                return
            waiting = c.state == WAITING
            if waiting:
                q.waiting.remove(c)
            if kind == T_STEP:
                c.apply_steps(q, now)
                if c.step + 1 < len(c.steps):
                    self._timers.push(c.entered_at + c.steps[c.step + 1].after_seconds, T_STEP, c, c.timer_epoch)
            elif kind == T_PREFER:
                c.pref_agent = None
            elif kind == T_RETRY and c.tried:
                c.tried = {a: until for a, until in c.tried.items() if until > now}
            if waiting:
                q.waiting.add(c)
                self._settle(now, (c,), ())


def _duration(where: str, value: float) -> None:
    if type(value) is float and 0.0 <= value < math.inf:
        return
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value < 0:
        raise InvalidContactError(f"{where}: {value!r} must be a finite number >= 0")

