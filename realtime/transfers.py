"""Transfers and conferences of callers over SIP: the hub's side.

An agent talking to a caller (a contact over SIP, realtime/sipcalls.py) can:

- **transfer blind** (`call-transfer` with `to`): to a queue or an agent (SipCalls.transfer), or to a
  number outside: the caller's worker dials it through the tenant's trunk while the caller hears
  ringback, the agent leaves at once (wrap-up) and the two SIP calls are bridged when the far end
  answers. If it does not (busy, no answer, refused), the caller waits again in the queue they came
  from, with the reason in the new contact's data: nobody is dropped by a failed transfer.
- **consult**: hold the caller (the caller hears music) and call an agent or a number
  (`call-dial`: PhoneService; placing a call while talking to a caller unheld is refused);
- then **complete** (`call-transfer` with `consult`): the consulted party gets the caller and the
  agent leaves. An agent takes the caller at once (a new contact of the caller's queue — or of the
  agent's first queue if not a member — offered to that agent and answered on the spot; an agent who is
  no longer available gets it offered first when available again, like a blind transfer to an agent).
  A number outside is bridged to the caller on the worker; the consult call's record closes as
  "transferred".
- or **cancel**: hang up the consult call and resume the caller (plain call controls);
- or **conference** (`call-conference`): the caller comes off hold and all three hear each other.
  Hanging up the consult call (either agent) leaves the agent with the caller; the agent completing the
  transfer leaves the other two; the caller's contact ending leaves the two agents on their call.

Live state: map `sip-bridges`, "<worker>|<SIP call id>" → Bridge for both SIP calls of a caller handed to
a number outside (a call between two SIP legs with no agent on it). When either ends, the other is hung up.
"""

from __future__ import annotations

import logging
import time
import uuid

import msgspec
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from realtime import protocol as P
from realtime.contacts import ContactCenter, ContactError, End, Hold
from realtime.live import LiveStore
from realtime.phone import EXTERNAL, NUMBER, Call, PhoneError, PhoneService, session_id
from realtime.sipcalls import SipCall, SipCalls, leg_of
from store.repos import TenantRepo

log = logging.getLogger("unidesk.transfers")

BRIDGES = "sip-bridges"


class Bridge(msgspec.Struct, kw_only=True):
    worker: str
    tenant_id: int
    # The caller's SIP call and the call to the number outside (ids of the worker's).
    caller: str
    far: str
    number: str
    # The contact the caller had when handed over, and the caller's view of it (for waiting again).
    contact_id: str
    queue: str
    view: P.ContactView
    status: str = "ringing"  # ringing, connected
    started_at: float


_bridge_dec = msgspec.json.Decoder(Bridge)
_enc = msgspec.json.Encoder()


def _key(worker: str, call_id: str) -> str:
    return f"{worker}|{call_id}"


class Transfers:
    def __init__(
        self,
        live: LiveStore,
        sessionmaker: async_sessionmaker[AsyncSession],
        phone: PhoneService,
        sip: SipCalls,
        contacts: ContactCenter,
    ) -> None:
        self.live = live
        self.sessionmaker = sessionmaker
        self.phone = phone
        self.sip = sip
        self.contacts = contacts
        phone.consult_guard = self.consult_guard
        phone.on_ended = self.call_ended
        sip.on_conference = self._route_conference
        sip.on_conference_over = self._conference_over
        # After the caller's link is gone (SipCalls' own hook runs first): the agents' call is routed again.
        sip.on_finished.append(self._agents_go_on)

    # ------------------------------------------------------------ guards

    async def consult_guard(self, tenant_id: int, agent_id: int) -> None:
        """An agent talking to a caller holds them before calling anyone (the caller would hear it)."""
        for view in await self.contacts.contacts_of(tenant_id, agent_id):
            if view.status == "connected" and view.media and not view.held:
                raise PhoneError(P.BUSY, "hold your caller first to consult (or leave the conference)")

    # ------------------------------------------------------------ blind

    async def blind(self, call: SipCall, agent_id: int, to: str) -> str:
        """Blind transfer to a queue, an agent or a number outside; returns the new contact's id (the
        caller's contact id when handed outside)."""
        d = await self.contacts.directory.get(call.tenant_id)
        known = d is not None and (
            to in {q.name for q in d.queues} or any(u.username == to for u in d.users.values())
        )
        if known or not NUMBER.match(to):
            return await self.sip.transfer(call, agent_id, to)
        return await self._outside(call, agent_id, to)

    async def _outside(self, call: SipCall, agent_id: int, number: str) -> str:
        t = call.tenant_id
        uri, from_uri, via = await self.phone.route_out(t, number)
        view = await self.sip.view(call)
        assert view is not None, "a connected contact has a view"
        if call.conference:
            raise PhoneError(P.CONFLICT, "hang up the consult call before transferring the caller elsewhere")
        far = "x" + uuid.uuid4().hex[:15]
        bridge = Bridge(
            worker=call.worker, tenant_id=t, caller=call.call_id, far=far, number=number,
            contact_id=call.contact_id, queue=view.queue, view=view, started_at=time.time(),
        )
        await self._save(bridge)
        await self.sip.forget(call)
        await self.phone.command(
            call.worker,
            P.MediaCommand(op="disconnect", session_id=session_id(t, agent_id)),
            P.MediaCommand(op="music", session_id=leg_of(call.call_id), on=False),
            P.MediaCommand(op="ringback", session_id=leg_of(call.call_id), on=True),
            P.MediaCommand(op="sip-dial", session_id=far, uri=uri, from_uri=from_uri, trunk=via),
        )
        await self._leave(call, agent_id, {"transferred_to": number, "transfer": "blind"})
        return call.contact_id

    # ------------------------------------------------------------ attended

    async def complete(self, call: SipCall, agent_id: int, consult_id: str) -> str:
        """The party of the agent's answered consult call gets the caller; the agent leaves.
        Returns the caller's new contact id (an agent took it) or the old one (handed outside)."""
        t = call.tenant_id
        k = await self.phone.consult_call(t, agent_id, consult_id)
        view = await self.sip.view(call)
        assert view is not None, "a connected contact has a view"
        if k.external:
            if k.worker != call.worker:
                raise PhoneError(P.NO_MEDIA_WORKER, "the caller and the number called are on different media workers")
            assert k.leg is not None and k.external is not None
            bridge = Bridge(
                worker=call.worker, tenant_id=t, caller=call.call_id, far=k.id, number=k.external,
                contact_id=call.contact_id, queue=view.queue, view=view, status="connected",
                started_at=time.time(),
            )
            await self._save(bridge)
            await self.sip.forget(call)
            await self.phone.command(
                call.worker,
                P.MediaCommand(op="disconnect", session_id=session_id(t, agent_id)),
                P.MediaCommand(op="connect", session_id=leg_of(call.call_id), peer=k.leg),
            )
            await self.phone.hand_over(t, k, agent_id)
            await self._leave(call, agent_id, {"transferred_to": k.external, "transfer": "attended"})
            return call.contact_id
        other = k.callee if k.caller == agent_id else k.caller
        d = await self.contacts.directory.get(t)
        target = d.users.get(other) if d else None
        queues = d.agent_queues.get(other, set()) if d else set()
        if target is None or not queues:
            raise PhoneError(P.NOT_FOUND, "the consulted agent is in no queue and cannot take callers")
        queue = view.queue if view.queue in queues else sorted(queues)[0]
        # The consult ends first: both agents are free for the ACD again when the caller arrives.
        k.conference = None
        await self.phone.end(t, k, "transferred", agent_id)
        try:
            return await self.sip.requeue(call, agent_id, queue, other, answer_now=True, data={"transfer": "attended"})
        except ContactError as exc:
            # The caller stays with the agent; a desk call kept for the caller is not left up in silence.
            if self.phone.desk is not None:
                await self.phone.desk.transfer_refused(t, other)
            raise PhoneError(exc.code, str(exc)) from None

    async def conference(self, call: SipCall, agent_id: int, consult_id: str) -> None:
        """The held caller, the agent and the consult call's party all hear each other."""
        t = call.tenant_id
        k = await self.phone.consult_call(t, agent_id, consult_id)
        if call.conference:
            raise PhoneError(P.CONFLICT, "the caller is in a conference already")
        if k.conference:
            raise PhoneError(P.CONFLICT, "that call is in a conference already")
        other = self.phone._other(k, agent_id)
        # The consult is mixed where the caller is (PhoneService._home): its parties are there, in person or linked.
        there = k.worker if other == EXTERNAL else (k.mix or await self.phone.worker_of(t, other))
        if there != call.worker:
            raise PhoneError(P.NO_MEDIA_WORKER, "the caller and the consulted party are on different media workers")
        view = await self.sip.view(call)
        assert view is not None, "a connected contact has a view"
        call.conference = k.id
        await self.sip.save(call)
        k.conference = call.contact_id
        await self.phone.save(t, k)
        if view.held:
            # Off hold: the router tells SipCalls, which routes the conference (_route_conference).
            await self.contacts.submit(Hold(tenant_id=t, agent_id=agent_id, contact_id=call.contact_id, on=False))
        else:
            await self._route_conference(call, agent_id)

    async def _route_conference(self, call: SipCall, agent_id: int) -> None:
        t = call.tenant_id
        k = await self.phone._call(t, call.conference) if call.conference else None
        if k is None:
            return
        me, caller = session_id(t, agent_id), leg_of(call.call_id)
        far = self.phone._session(t, k, self.phone._other(k, agent_id))
        await self.phone.command(
            call.worker,
            P.MediaCommand(op="hear", session_id=caller, peers=[me, far]),
            P.MediaCommand(op="hear", session_id=me, peers=[caller, far]),
            P.MediaCommand(op="hear", session_id=far, peers=[caller, me]),
        )

    async def call_ended(self, tenant_id: int, c: Call) -> None:
        """A call between agents (or to a number) ended: a caller in conference with it stays with the
        agent who has the caller."""
        if not c.conference:
            return
        call = await self.sip.contact(tenant_id, c.conference)
        if call is None:
            return
        call.conference = None
        await self.sip.save(call)
        view = await self.sip.view(call)
        if view is not None and view.status == "connected" and view.agent_id is not None:
            await self.sip.contact_connected(tenant_id, call.contact_id, view.agent_id)

    async def _conference_over(self, call: SipCall) -> None:
        """The caller's contact ended during a conference: the agents' call goes on without them."""
        assert call.conference is not None
        k = await self.phone._call(call.tenant_id, call.conference)
        if k is not None and k.conference == call.contact_id:
            k.conference = None
            await self.phone.save(call.tenant_id, k)

    async def _agents_go_on(self, call: SipCall) -> None:
        """The caller of a conference left: the two agents' call goes on where it is mixed, each agent whose
        softphone is elsewhere joining it again (the caller's link that carried them is gone)."""
        k = await self.phone._call(call.tenant_id, call.conference) if call.conference else None
        if k is None or k.mix is None or k.external or k.status != "connected":
            return
        t = call.tenant_id
        for who in (k.caller, k.callee):
            await self.sip.links.join(t, who, k.mix, k.id)
        await self.phone.command(k.mix, P.MediaCommand(op="connect", session_id=session_id(t, k.caller),
                                                       peer=session_id(t, k.callee)))

    # ------------------------------------------------------------ bridged calls (from the worker)

    async def sip_progress(self, worker: str, m: P.SipProgress) -> bool:
        b = await self._bridge(worker, m.call_id)
        if b is None or m.call_id != b.far:
            return False
        if m.state == "ringing" or b.status == "connected":
            return True
        b.status = "connected"
        await self._save(b)
        await self.phone.command(
            worker,
            P.MediaCommand(op="ringback", session_id=leg_of(b.caller), on=False),
            P.MediaCommand(op="connect", session_id=leg_of(b.caller), peer=leg_of(b.far)),
        )
        log.info("caller %s handed to %s", b.caller, b.number)
        return True

    async def sip_ended(self, worker: str, m: P.SipEnded) -> bool:
        b = await self._bridge(worker, m.call_id)
        if b is None:
            return False
        await self.live.map_delete(BRIDGES, _key(worker, b.caller))
        await self.live.map_delete(BRIDGES, _key(worker, b.far))
        if m.call_id == b.far and b.status == "ringing":
            # The number did not take the caller: the caller waits again where they came from.
            log.info("transfer of %s to %s failed (%s %s): queued again", b.caller, b.number, m.code, m.reason)
            await self.phone.command(worker, P.MediaCommand(op="ringback", session_id=leg_of(b.caller), on=False))
            await self.sip.wait_again(
                worker, b.tenant_id, b.caller, b.queue, b.view,
                {"transfer_failed": f"{b.number}: {m.code} {m.reason}".strip()},
            )
        elif m.call_id == b.far:
            await self.phone.command(worker, P.MediaCommand(op="sip-hangup", session_id=b.caller, code=200))
        else:
            await self.phone.command(worker, P.MediaCommand(op="sip-hangup", session_id=b.far, code=200))
        return True

    async def worker_gone(self, worker: str) -> None:
        for key, raw in (await self.live.map_all(BRIDGES)).items():
            if _bridge_dec.decode(raw).worker == worker:
                await self.live.map_delete(BRIDGES, key)

    # ------------------------------------------------------------ helpers

    async def _leave(self, call: SipCall, agent_id: int, data: dict[str, str]) -> None:
        """The agent's contact with the caller ends as transferred (the agent to wrap-up)."""
        t = call.tenant_id
        await self.contacts.submit(End(tenant_id=t, agent_id=agent_id, contact_id=call.contact_id, by="transfer"))
        async with self.sessionmaker() as s, s.begin():
            row = await TenantRepo(s, t).call_record(call.contact_id)
            if row is not None:
                row.data = {**(row.data or {}), **data}

    async def _save(self, b: Bridge) -> None:
        raw = _enc.encode(b)
        await self.live.map_put(BRIDGES, _key(b.worker, b.caller), raw)
        await self.live.map_put(BRIDGES, _key(b.worker, b.far), raw)

    async def _bridge(self, worker: str, call_id: str) -> Bridge | None:
        raw = await self.live.map_get(BRIDGES, _key(worker, call_id))
        return _bridge_dec.decode(raw) if raw is not None else None
