"""Applies agent-state transitions: decide (pure), commit and publish (live
store), then record (the history writer, in batches). The one place that
changes an agent's state."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

from realtime.agent_state import Action, AgentState, IllegalTransition, State, transition
from realtime.directory import Directory, TenantDirectory
from realtime.history import HistoryRow, HistoryWriter
from realtime.live import LiveStore, stream_agent, stream_board
from realtime.metrics import Metrics
from realtime.protocol import AgentStateChanged, AgentView, encode

log = logging.getLogger("unidesk.agents")


class NotFound(Exception):
    """No such agent in this tenant."""


class UnknownReason(Exception):
    """The pause reason is not one of the tenant's."""


class Conflict(Exception):
    """Other writers kept changing the agent; the change was not applied."""


class AgentService:
    def __init__(
        self,
        live: LiveStore,
        history: HistoryWriter | None,
        directory: Directory,
        clock: Callable[[], float] = time.time,
        on_change: Callable[[int, int, AgentState, AgentState], None] | None = None,
        metrics: Metrics | None = None,
    ) -> None:
        self.live = live
        self.history = history
        self.directory = directory
        self.clock = clock
        # Called after each committed change (tenant, agent, before, after); the ACD listens here.
        self.on_change = on_change
        self.metrics = metrics

    async def tenant(self, tenant_id: int) -> TenantDirectory:
        d = await self.directory.get(tenant_id)
        if d is None:
            raise NotFound(f"tenant {tenant_id} does not exist")
        return d

    async def view(self, tenant_id: int, user_id: int) -> AgentView:
        d = await self.tenant(tenant_id)
        if not d.is_agent(user_id):
            raise NotFound(f"no agent with id {user_id}")
        state, by = await self.live.agent(tenant_id, user_id)
        return d.view(user_id, state, by)

    async def views(self, tenant_id: int) -> list[AgentView]:
        d = await self.tenant(tenant_id)
        states = await self.live.agents(tenant_id)
        return [d.view(uid, *states.get(uid, (AgentState(), None))) for uid in d.agent_ids]

    async def change(
        self,
        tenant_id: int,
        agent_id: int,
        action: Action,
        *,
        reason: str | None = None,
        by_user_id: int | None = None,
        source: str = "agent",
        contact_id: str | None = None,
        wrap_up_seconds: float = 0.0,
        expect_state: State | None = None,
        events: Callable[[AgentState], list[tuple[str, bytes]]] | None = None,
    ) -> AgentState:
        """Apply `action` to the agent; raise NotFound, UnknownReason,
        IllegalTransition or Conflict. Nothing is written unless it succeeds.

        `events(new_state)` may add events (e.g. the offer itself) that are
        committed and published atomically with the change."""
        d = await self.tenant(tenant_id)
        if not d.is_agent(agent_id):
            raise NotFound(f"no agent with id {agent_id}")
        if action is Action.PAUSE and reason not in d.pause_reason_codes():
            known = ", ".join(sorted(d.pause_reason_codes()))
            if reason is None:
                raise UnknownReason(f"a pause needs a reason; known: {known}")
            raise UnknownReason(f"unknown pause reason {reason!r}; known: {known}")
        changed_by = None
        if by_user_id is not None and by_user_id != agent_id:
            who = d.users.get(by_user_id)
            changed_by = who.username if who else None
        for _ in range(8):
            current, _by = await self.live.agent(tenant_id, agent_id)
            if expect_state is not None and current.state is not expect_state:
                raise IllegalTransition(current.state, action, f"expected {expect_state.value}")
            now = self.clock()
            new = transition(
                current,
                action,
                now,
                reason=reason,
                contact_id=contact_id,
                wrap_up_seconds=wrap_up_seconds,
            )
            body = encode(AgentStateChanged(agent=d.view(agent_id, new, changed_by)))
            seqs = await self.live.commit(
                tenant_id,
                agent_id,
                current.version,
                new,
                changed_by,
                [
                    (stream_board(tenant_id), body),
                    (stream_agent(tenant_id, agent_id), body),
                    *(events(new) if events else ()),
                ],
            )
            if seqs is None:
                continue  # another writer changed the agent first: decide again on the fresh state
            if self.history is not None:
                self.history.add(
                    HistoryRow(
                        tenant_id=tenant_id, user_id=agent_id, from_state=current.state.value,
                        to_state=new.state.value, reason=new.reason, at=now, by_user_id=by_user_id,
                        source=source, contact_id=new.contact_id or contact_id,
                    )
                )
            if self.metrics is not None:
                self.metrics.state_changes.labels(source).inc()
            if self.on_change is not None:
                self.on_change(tenant_id, agent_id, current, new)
            return new
        raise Conflict(f"agent {agent_id} changed too often to apply {action.value}; try again")

    async def fire_deadlines(self) -> int:
        """End wrap-ups whose time has run out. Returns how many were ended."""
        done = 0
        for tenant_id, agent_id in await self.live.due(self.clock()):
            try:
                await self.change(tenant_id, agent_id, Action.WRAP_UP_TIMEOUT, source="system")
                done += 1
            except (IllegalTransition, NotFound, Conflict):
                # The agent left wrap-up by other means (or the deadline moved): nothing to do.
                pass
        return done
