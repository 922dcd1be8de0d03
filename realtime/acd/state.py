"""The engine's state and the bookkeeping that keeps it consistent.

`EngineState` owns the records (queues, agents, contacts), the timer heap and
the output buffer, and maintains what is derived from them: each queue's
head counts (logged in, working, ready) and idle-time sum, its index of
available members, its contacts, and the record of every contact that is
over. `AcdEngine` (in `engine`) builds the inputs and the routing on top of
it.
"""

from __future__ import annotations

import itertools
import random

from .commands import Outcome, SegmentOutcome, StatsChanged, build_contact_recorded, build_queue_segment
from .config import UnknownAgentError, UnknownQueueError, effective_requirement
from .records import DONE, WAITING, AgentRec, ContactRec, QueueRec
from .timers import TimerHeap

# Weight of the newest handled contact in the handle-time average used for
# expected-wait announcements (the rest is history).
_AHT_SMOOTHING = 0.25


class EngineState:
    """Records, timers and outputs of one engine, with their bookkeeping."""

    def __init__(self, rng: random.Random) -> None:
        # Random strategies draw from this; pass a seeded one for reproducible runs.
        self._rng = rng
        self._queues: dict[str, QueueRec] = {}
        self._agents: dict[str, AgentRec] = {}
        # Queue name -> its member agents; kept for queues not configured yet too.
        self._members: dict[str, dict[str, AgentRec]] = {}
        self._orders = itertools.count()
        self._contacts: dict[str, ContactRec] = {}
        self._seq = itertools.count()
        self._timers = TimerHeap(self._agents)
        self._out: list = []
        # Queues whose figures moved since the last drain, with what to emit
        # for each (one StatsChanged per queue and drain).
        self._dirty: dict[QueueRec, StatsChanged] = {}
        self._now = 0.0

    def _tick(self, now: float | None) -> float:
        if now is None:
            return self._now
        assert now >= self._now - 1e-9, f"time went backwards: {now} < {self._now}"
        if now > self._now:
            self._now = now
        return now

    def _queue(self, name: str) -> QueueRec:
        q = self._queues.get(name)
        if q is None:
            raise UnknownQueueError(f"queue {name!r} is not configured")
        return q

    def _agent(self, agent_id: str) -> AgentRec:
        agent = self._agents.get(agent_id)
        if agent is None:
            raise UnknownAgentError(f"agent {agent_id!r} is not configured")
        return agent

    # -- per-queue head counts

    def _count(self, q: QueueRec, agent: AgentRec, sign: int, now: float) -> None:
        # Add (+1) or remove (-1) the agent's contribution to one queue's counts.
        if agent.logged_in:
            q.logged_in += sign
            if not agent.paused:
                q.working += sign
        if agent.ready:
            if sign > 0:
                q.idle.open(agent.idle_since, now)
            else:
                q.idle.close(agent.idle_since, now)
        self._dirty[q] = q.changed

    def _set_state(self, agent: AgentRec, now: float, logged_in: bool, paused: bool, ready: bool) -> None:
        """Put the agent in a new state and move its queues' head counts and idle time with it."""
        d_logged = logged_in - agent.logged_in
        d_working = (logged_in and not paused) - (agent.logged_in and not agent.paused)
        d_ready = ready - agent.ready
        agent.logged_in = logged_in
        agent.paused = paused
        agent.ready = ready
        since = agent.idle_since
        if d_ready > 0:
            since = agent.idle_since = now
            # LiveSum.open(now, now) is inlined here and below: it is
            # count += 1, start_sum += now, and this runs for every agent
            # made ready, in each of its queues.
            idle = agent.counters.idle
            idle.count += 1
            idle.start_sum += now
        elif d_ready < 0:
            agent.counters.idle.close(since, now)
        elif not (d_logged or d_working):
            return
        dirty = self._dirty
        for q, _ in agent.routes:
            if d_logged:
                q.logged_in += d_logged
            if d_working:
                q.working += d_working
            if d_ready > 0:
                idle = q.idle
                idle.count += 1
                idle.start_sum += now
            elif d_ready < 0:
                q.idle.close(since, now)
            dirty[q] = q.changed

    def _detach(self, agent: AgentRec, now: float) -> None:
        for q, _ in agent.routes:
            self._count(q, agent, -1, now)
        for name in agent.members:
            self._members[name].pop(agent.id, None)
        agent.served, agent.routes = [], ()

    def _attach(self, agent: AgentRec, now: float) -> None:
        for name in agent.members:
            self._members.setdefault(name, {})[agent.id] = agent
        self._serve(agent)
        for q, _ in agent.routes:
            self._count(q, agent, +1, now)

    def _serve(self, agent: AgentRec) -> None:
        # Rebuild the agent's list of configured queues (after its memberships
        # changed, or a queue it belongs to was added or removed).
        queues = self._queues
        served = []
        for name, member in agent.members.items():
            member.queue = queues.get(name)
            if member.queue is not None:
                served.append(member)
        agent.served = served
        agent.routes = tuple((member.queue, member.penalty) for member in served)

    # -- availability and the member indexes

    def _refresh(self, agent: AgentRec, now: float) -> None:
        want = agent.ready and agent.offer is None and agent.blocked_until <= now
        if want and not agent.available:
            agent.available = True
            for member in agent.served:
                member.queue.index.push(agent, member)
        elif not want and agent.available:
            self._set_unavailable(agent)

    def _set_unavailable(self, agent: AgentRec) -> None:
        agent.available = False
        # The new epoch kills the agent's entries in every index at once.
        agent.epoch += 1

    # -- stays in queues, completion and records

    def _enter(self, c: ContactRec, q: QueueRec, now: float, wait: bool) -> None:
        c.queue = q.name
        c.entered_at = now
        c.state = WAITING
        c.timer_epoch += 1
        spec = c.spec
        c.pref_agent = None
        if spec.preferred_agent is not None and spec.preferred_until > now and not c.pref_declined:
            if spec.preferred_agent in self._members.get(q.name, ()):
                c.pref_agent = spec.preferred_agent
        waiting = q.waiting
        c.qkey = c.order if waiting.fifo else waiting.key_for(c)
        if spec.routing_steps is None and not q.config.routing_steps:
            # No steps: apply_steps() in short.
            c.steps, c.step, c.req = (), -1, effective_requirement(spec.required_skills, None)
        else:
            c.apply_steps(q, now)
        # A new stay: retry delays from an earlier queue are forgotten.
        c.tried = None
        q.contacts[c.id] = c
        q.counters.offered += 1
        if wait:
            waiting.add(c)
        if q.timed or c.steps or c.pref_agent is not None:
            self._timers.arm(c, q.config, now)
        self._dirty[q] = q.changed

    def _leave_queue(self, c: ContactRec, q: QueueRec, now: float, outcome: SegmentOutcome) -> None:
        del q.contacts[c.id]
        if c.bucket is not None:
            q.waiting.remove(c)
        c.segments.append(build_queue_segment(q.name, c.entered_at, now, outcome))
        c.timer_epoch += 1
        self._dirty[q] = q.changed

    def _complete(self, c: ContactRec, wrap_up: float, now: float) -> None:
        done_at = c.talk_ended_at + wrap_up
        q = self._queues.get(c.queue)
        c.busy.close(c.answered_at, done_at)
        if q is not None:
            q.counters.on_handled(c.talk, c.hold, wrap_up)
            handle = c.talk + c.hold + wrap_up
            q.aht = handle if q.aht is None else (1 - _AHT_SMOOTHING) * q.aht + _AHT_SMOOTHING * handle
            self._dirty[q] = q.changed
        agent = self._agents.get(c.agent_id)
        if agent is not None:
            agent.counters.talk += c.talk
            agent.counters.hold += c.hold
            agent.counters.wrap_up += wrap_up
            agent.talk_total += c.talk
            if agent.contact is c:
                agent.contact = None
        self._record(c, done_at, Outcome.ANSWERED, None, wrap_up)

    def _record(self, c: ContactRec, now: float, outcome: Outcome, reason: str | None, wrap_up: float = 0.0) -> None:
        c.state = DONE
        self._contacts.pop(c.id, None)
        self._out.append(build_contact_recorded(c.record(now, outcome, reason, wrap_up)))
