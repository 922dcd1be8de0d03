"""Chat between agents and supervisors, supervisors' broadcasts to a queue, and agents' raised hands.

- An agent writes to a supervisor (`to`) or to every supervisor of the tenant (`to_supervisors`);
  a supervisor writes to anyone of the tenant (`to`) or broadcasts to a queue's agents (`queue`).
  Agents do not chat with each other here. Every message is kept in the store (`chat_messages`) and
  reaches the recipients' own streams and the sender's; a snapshot carries the latest ones.
- An agent raises a hand for help (`hand-raise`), with the contact in progress if any (the call a
  supervisor can join) and a note. Boards see it at once (`hand`) and it stays up until the agent
  lowers it or a supervisor answers: lowering it, writing to the agent, or whispering or barging
  into the agent's call (realtime/monitors.py). Raised hands live in map `hands:<tenant>`.
"""

from __future__ import annotations

import time

import msgspec
from sqlalchemy import or_, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from realtime import protocol as P
from realtime.agents import AgentService
from realtime.directory import Directory
from realtime.live import LiveStore, stream_agent, stream_board
from store.models import ChatRecord

SUPERVISORS = ("supervisor", "admin")
RECENT = 50


def hands_map(tenant_id: int) -> str:
    return f"hands:{tenant_id}"


class ChatError(Exception):
    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


_hand_dec = msgspec.json.Decoder(P.HandView)
_enc = msgspec.json.Encoder()


def _view(r: ChatRecord, name: str) -> P.ChatMessage:
    return P.ChatMessage(
        id=r.id, from_id=r.from_id or 0, from_name=name, text=r.text, sent_at=r.sent_at, to=r.to_id,
        to_supervisors=r.to_supervisors, queue=r.queue,
    )


class Chat:
    def __init__(self, live: LiveStore, sessionmaker: async_sessionmaker[AsyncSession], directory: Directory,
                 agents: AgentService) -> None:
        self.live = live
        self.sessionmaker = sessionmaker
        self.directory = directory
        self.agents = agents

    async def send(self, tenant_id: int, sender_id: int, m: P.ChatSend) -> P.ChatMessage:
        d = await self.directory.get(tenant_id)
        sender = d.users.get(sender_id) if d else None
        if d is None or sender is None:
            raise ChatError(P.NOT_FOUND, "no such user")
        supervisor = not sender.roles.isdisjoint(SUPERVISORS)
        if sum((m.to is not None, m.to_supervisors, m.queue is not None)) != 1:
            raise ChatError(P.BAD_FRAME, "a message goes to exactly one of `to`, `to_supervisors` or `queue`")
        supervisors = [u.id for u in d.users.values() if u.active and not u.roles.isdisjoint(SUPERVISORS)]
        if m.to is not None:
            target = d.users.get(m.to)
            if target is None or not target.active:
                raise ChatError(P.NOT_FOUND, f"no user {m.to} in this tenant")
            if m.to == sender_id:
                raise ChatError(P.BAD_FRAME, "a message to oneself")
            if not supervisor and m.to not in supervisors:
                raise ChatError(P.FORBIDDEN, "agents write to supervisors")
            targets = [m.to]
        elif m.to_supervisors:
            targets = supervisors
        else:
            if not supervisor:
                raise ChatError(P.FORBIDDEN, "only supervisors broadcast to a queue")
            if m.queue not in {q.name for q in d.queues}:
                raise ChatError(P.NOT_FOUND, f"no queue {m.queue!r}")
            targets = [a for a, qs in d.agent_queues.items() if m.queue in qs and d.is_agent(a)]
        now = time.time()
        async with self.sessionmaker() as s, s.begin():
            row = ChatRecord(tenant_id=tenant_id, from_id=sender_id, to_id=m.to, to_supervisors=m.to_supervisors,
                             queue=m.queue, text=m.text, sent_at=now)
            s.add(row)
            await s.flush()
            msg = _view(row, sender.display_name)
        body = P.encode(P.ChatReceived(message=msg))
        await self.live.publish([(stream_agent(tenant_id, uid), body) for uid in sorted({*targets, sender_id})])
        if supervisor and m.to is not None:
            await self.answered(tenant_id, m.to, sender.username)  # writing to an agent answers their hand
        return msg

    async def recent(self, tenant_id: int, user_id: int) -> list[P.ChatMessage]:
        """The latest messages this user sent or received, oldest first."""
        d = await self.directory.get(tenant_id)
        me = d.users.get(user_id) if d else None
        if d is None or me is None:
            return []
        mine = [ChatRecord.from_id == user_id, ChatRecord.to_id == user_id]
        if not me.roles.isdisjoint(SUPERVISORS):
            mine.append(ChatRecord.to_supervisors.is_(True))
        queues = d.agent_queues.get(user_id) or []
        if queues:
            mine.append(ChatRecord.queue.in_(list(queues)))
        async with self.sessionmaker() as s:
            q = (select(ChatRecord).where(ChatRecord.tenant_id == tenant_id, or_(*mine))
                 .order_by(ChatRecord.sent_at.desc(), ChatRecord.id.desc()).limit(RECENT))
            rows = list((await s.execute(q)).scalars())
        names = {u.id: u.display_name for u in d.users.values()}
        return [_view(r, names.get(r.from_id or 0, "?")) for r in reversed(rows)]

    # ------------------------------------------------------------ hands

    async def raise_hand(self, tenant_id: int, agent_id: int, note: str | None) -> P.HandView:
        state, _ = await self.agents.live.agent(tenant_id, agent_id)
        hand = P.HandView(agent_id=agent_id, raised_at=time.time(), contact_id=state.contact_id, note=note or None)
        await self.live.map_put(hands_map(tenant_id), str(agent_id), _enc.encode(hand))
        await self._tell(tenant_id, hand, raised=True)
        return hand

    async def lower(self, tenant_id: int, agent_id: int, by: str) -> bool:
        raw = await self.live.map_get(hands_map(tenant_id), str(agent_id))
        # Compare-and-set: of two supervisors lowering it at once (on two hubs) one does; a hand raised
        # again meanwhile is a new call for help and stays up.
        if raw is None or not await self.live.map_swap(hands_map(tenant_id), str(agent_id), raw, None):
            return False
        await self._tell(tenant_id, _hand_dec.decode(raw), raised=False, by=by)
        return True

    async def answered(self, tenant_id: int, agent_id: int, supervisor: str) -> None:
        """A supervisor wrote to the agent or joined their call: a raised hand goes down."""
        await self.lower(tenant_id, agent_id, supervisor)

    async def hands(self, tenant_id: int) -> list[P.HandView]:
        return [_hand_dec.decode(v) for v in (await self.live.map_all(hands_map(tenant_id))).values()]

    async def _tell(self, tenant_id: int, hand: P.HandView, raised: bool, by: str | None = None) -> None:
        body = P.encode(P.HandChanged(hand=hand, raised=raised, lowered_by=by))
        await self.live.publish([(stream_board(tenant_id), body), (stream_agent(tenant_id, hand.agent_id), body)])
