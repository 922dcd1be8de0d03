"""Work instructions and live content changes.

- A supervisor publishes a work instruction to queues: it is kept (`work_instructions`, with the
  agents of those queues at that moment) and reaches at once the streams of those agents and the
  boards (`instruction`). Each agent acknowledges it once (`instruction-ack` to the boards and to
  the agent's other tabs). An agent's snapshot lists what it has not acknowledged; a board's lists
  every instruction not expired with who acknowledged it and when.
- When an admin or supervisor creates, changes or deletes a snippet or an article, the agents it
  concerns (a queue's snippet: that queue's agents; else every agent) and the boards get
  `content-changed`, and desktops fetch it again without a reload. Publishing a call script
  (realtime/scripts.py) sends the same frame to the script's queue.
"""

from __future__ import annotations

import time
from typing import Literal

from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from realtime import protocol as P
from realtime.directory import Directory, TenantDirectory
from realtime.live import LiveStore, stream_agent, stream_board
from store.knowledge import KnowledgeRepo
from store.models import WorkInstruction


def _view(d: TenantDirectory, row: WorkInstruction, acks: dict[int, float] | None) -> P.InstructionView:
    by = d.users.get(row.published_by or 0)
    view = P.InstructionView(
        id=row.id, text=row.text, queues=list(row.queues), published_by=by.display_name if by else "?",
        published_at=row.published_at, expires_at=row.expires_at,
    )
    if acks is not None:
        view.agents = list(row.agent_ids)
        view.acks = [P.InstructionAckView(agent_id=a, at=at) for a, at in sorted(acks.items(), key=lambda x: x[1])]
    return view


class Knowledge:
    def __init__(self, live: LiveStore, sessionmaker: async_sessionmaker[AsyncSession], directory: Directory) -> None:
        self.live = live
        self.sessionmaker = sessionmaker
        self.directory = directory

    async def _dir(self, tenant_id: int) -> TenantDirectory:
        d = await self.directory.get(tenant_id)
        if d is None:
            raise LookupError("no such tenant")
        return d

    def _agents_of(self, d: TenantDirectory, queues: list[str] | None) -> list[int]:
        """Active agents of any of these queues (None: every agent)."""
        if queues is None:
            return d.agent_ids
        wanted = set(queues)
        return [a for a in d.agent_ids if wanted.intersection(d.agent_queues.get(a, []))]

    # ------------------------------------------------------------ content

    async def content_changed(self, tenant_id: int, kind: Literal["snippet", "article", "script"], item_id: int,
                              action: Literal["created", "updated", "deleted", "published"],
                              queue: str | None = None) -> None:
        d = await self._dir(tenant_id)
        body = P.encode(P.ContentChanged(kind=kind, id=item_id, action=action))
        targets = self._agents_of(d, [queue] if queue else None)
        await self.live.publish([(stream_board(tenant_id), body), *((stream_agent(tenant_id, a), body) for a in targets)])

    # ------------------------------------------------------------ work instructions

    async def publish(self, tenant_id: int, by_user_id: int, text: str, queues: list[str],
                      expires_at: float | None) -> P.InstructionView:
        """Keep and send an instruction; ValueError names an unknown queue."""
        d = await self._dir(tenant_id)
        known = {q.name for q in d.queues}
        for q in queues:
            if q not in known:
                raise ValueError(f"queues: no queue {q!r} in this tenant; known: {', '.join(sorted(known))}")
        agents = self._agents_of(d, queues)
        async with self.sessionmaker() as s, s.begin():
            row = await KnowledgeRepo(s, tenant_id).add_instruction(
                queues=sorted(set(queues)), agent_ids=agents, text=text, published_by=by_user_id,
                published_at=time.time(), expires_at=expires_at,
            )
        board = P.encode(P.InstructionPublished(instruction=_view(d, row, {})))
        own = P.encode(P.InstructionPublished(instruction=_view(d, row, None)))
        await self.live.publish([(stream_board(tenant_id), board), *((stream_agent(tenant_id, a), own) for a in agents)])
        return _view(d, row, {})

    async def ack(self, tenant_id: int, agent_id: int, instruction_id: int) -> P.InstructionAckView:
        """The agent acknowledges; LookupError when the instruction is not addressed to this agent."""
        now = time.time()
        try:
            async with self.sessionmaker() as s, s.begin():
                repo = KnowledgeRepo(s, tenant_id)
                row = await repo.instruction(instruction_id)
                if row is None or agent_id not in row.agent_ids:
                    raise LookupError(f"no instruction {instruction_id} addressed to you")
                at, new = await repo.ack(instruction_id, agent_id, now)
        except IntegrityError:  # the same agent acknowledged at the same moment elsewhere: that one counts
            async with self.sessionmaker() as s:
                at = (await KnowledgeRepo(s, tenant_id).acks([instruction_id]))[instruction_id][agent_id]
            new = False
        if new:
            body = P.encode(P.InstructionAcked(instruction_id=instruction_id, agent_id=agent_id, at=at))
            await self.live.publish([(stream_board(tenant_id), body), (stream_agent(tenant_id, agent_id), body)])
        return P.InstructionAckView(agent_id=agent_id, at=at)

    async def for_board(self, tenant_id: int, include_expired: bool = False) -> list[P.InstructionView]:
        d = await self._dir(tenant_id)
        async with self.sessionmaker() as s:
            repo = KnowledgeRepo(s, tenant_id)
            rows = await repo.instructions(time.time(), include_expired)
            acks = await repo.acks(r.id for r in rows)
        return [_view(d, r, acks.get(r.id, {})) for r in rows]

    async def for_agent(self, tenant_id: int, agent_id: int, unacked_only: bool = True) -> list[tuple[P.InstructionView, float | None]]:
        """The instructions not expired addressed to the agent, each with when the agent acknowledged it."""
        d = await self._dir(tenant_id)
        async with self.sessionmaker() as s:
            repo = KnowledgeRepo(s, tenant_id)
            rows = [r for r in await repo.instructions(time.time()) if agent_id in r.agent_ids]
            acks = await repo.acks(r.id for r in rows)
        out = [(_view(d, r, None), acks.get(r.id, {}).get(agent_id)) for r in rows]
        return [(v, at) for v, at in out if at is None or not unacked_only]
