"""Desk phones: agents who take their calls on a registered SIP phone instead of the browser.

The media workers are the registrars (bridge/registrar.py) but have no
database: the hub sends each worker the desk-phone credentials of every
tenant (media command `sip-users`: SIP user, realm = the tenant's slug,
HA1) when it says hello and whenever they change. A worker reports each
registration (`sip-registered`, `expires` 0 when it ends); the hub keeps
them per tenant and tells the agent (`desk-phone`).

An agent whose phone is "desk" is rung when the ACD offers a caller: the
worker the desk phone is registered with INVITEs the phone's contact, naming the answered call's leg
after the agent's session (`session_id(tenant, agent)`), where a softphone
would be. The desktop shows the offer as usual.

- The phone answers: the agent accepts the contact (the ACD's `Accept`);
  the desk call stands as the agent's softphone (map `phones:<tenant>`),
  so connecting to the caller, hold, mute, transfer and hang-up from the
  desktop work unchanged. A desk phone registered with another worker than
  the caller's is linked to it like a softphone there (realtime/medialinks.py).
- The phone declines, or rings out: the agent rejects the offer (the
  caller goes to the next agent). The offer ends otherwise (ring timeout,
  the caller left, accepted on the desktop): the phone stops ringing.
- The contact ends (from the desktop, the caller, a transfer): the desk
  phone gets a BYE. The desk phone hangs up: the contact ends for the
  agent (wrap-up), as when an agent hangs up on the desktop.

Calls between agents (`call-dial`, a consult before an attended transfer)
ring the called agent's desk phone in the same way when its phone is
"desk", from the worker it is registered with (it joins the call's mix over a
link when that is another worker). Answered on the phone, the call is answered (the two legs are
connected on that worker); declined, the call ends `declined`; hung up on
the phone, the call ends; the call ending elsewhere (the caller hangs up,
no answer in time) stops the ringing or sends a BYE. A consult completed as
an attended transfer to that agent keeps the desk call: it becomes the
caller's contact's (the ACD gives the agent the caller at once, and the
desk call's leg is where a softphone's would be).

Live state (shared by all hubs):
- map `desk-phones:<tenant>`: agent id → the registration (worker, SIP user, contact, until);
- map `desk-calls`: "<worker>|<call id>" → the desk call; map `desk-contacts:<tenant>`: contact id → it.
"""

from __future__ import annotations

import logging
import re
import time
import uuid
from collections.abc import Callable

import msgspec
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from realtime import protocol as P
from realtime.contacts import Accept, ContactCenter, ContactError, End, Reject, contacts_map
from realtime.live import LiveStore, stream_agent
from realtime.phone import Call, PhoneError, PhoneService, phones_map, session_id, worker_sessions
from realtime.sipcalls import SipCall, sip_contacts
from store.repos import TenantRepo, desk_phone_logins

log = logging.getLogger("unidesk.deskphones")

DESK_CALLS = "desk-calls"
# The phones map's marker for a desk phone (where a softphone keeps its DTLS fingerprint).
DESK = "desk"


def desk_phones_map(tenant_id: int) -> str:
    return f"desk-phones:{tenant_id}"


def desk_contacts(tenant_id: int) -> str:
    return f"desk-contacts:{tenant_id}"


class Registration(msgspec.Struct, kw_only=True):
    worker: str
    user: str
    contact: str
    remote: str
    expires_at: float


class DeskCall(msgspec.Struct, kw_only=True):
    worker: str
    call_id: str
    tenant_id: int
    agent_id: int
    contact_id: str
    answered: bool = False
    # A call from another agent (realtime/phone.py) instead of a contact; `contact_id` is then "call:<id>".
    agent_call: str | None = None


_reg_dec = msgspec.json.Decoder(Registration)
_call_dec = msgspec.json.Decoder(DeskCall)
_sip_dec = msgspec.json.Decoder(SipCall)
_enc = msgspec.json.Encoder()
_CALLER = re.compile(r"^[A-Za-z0-9+*#._-]{1,64}$")


def _handed(agent_id: int) -> str:
    """Where a consult's desk call waits for the caller an attended transfer brings (`contact_connected`)."""
    return f"transfer:{agent_id}"


class DeskPhones:
    def __init__(
        self,
        live: LiveStore,
        sessionmaker: async_sessionmaker[AsyncSession],
        phone: PhoneService,
        contacts: ContactCenter,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.live = live
        self.sessionmaker = sessionmaker
        self.phone = phone
        self.contacts = contacts
        self.clock = clock
        contacts.observe(self)
        phone.desk = self

    # ------------------------------------------------------------ credentials to the workers

    async def _users_command(self) -> P.MediaCommand:
        async with self.sessionmaker() as s:
            logins = await desk_phone_logins(s)
        users = [P.SipUserEntry(user=x.sip_user, realm=x.realm, ha1=x.ha1) for x in logins]
        return P.MediaCommand(op="sip-users", session_id="registrar", users=users)

    async def worker_hello(self, worker: str) -> None:
        """A worker (re)connected: it gets every desk phone's credentials."""
        await self.phone.command(worker, await self._users_command())

    async def users_changed(self) -> None:
        """Credentials or phone choices changed in the store: every worker gets the new list."""
        cmd = await self._users_command()
        for worker in await self.phone.worker_names():
            await self.phone.command(worker, cmd)

    # ------------------------------------------------------------ registrations

    async def registered(self, worker: str, m: P.SipRegistered) -> None:
        async with self.sessionmaker() as s:
            found = await desk_phone_logins(s, m.user)
        if not found:
            log.info("registration of unknown SIP user %r reported by %s", m.user, worker)
            return
        who = found[0]
        key = desk_phones_map(who.tenant_id)
        if m.expires > 0:
            reg = Registration(worker=worker, user=m.user, contact=m.contact, remote=m.remote,
                               expires_at=self.clock() + m.expires)
            await self.live.map_put(key, str(who.user_id), _enc.encode(reg))
            log.info("desk phone %s of agent %s registered at %s", m.user, who.user_id, m.contact)
        else:
            raw = await self.live.map_get(key, str(who.user_id))
            if raw is None or _reg_dec.decode(raw).worker != worker:
                return  # registered elsewhere since
            await self.live.map_delete(key, str(who.user_id))
            log.info("desk phone %s of agent %s unregistered", m.user, who.user_id)
        await self.tell(who.tenant_id, who.user_id)

    async def worker_gone(self, worker: str) -> None:
        """A worker went away: the desk phones registered with it are not reachable, its desk calls are over
        (their contacts end with the callers, see SipCalls.worker_gone)."""
        for raw in (await self.live.map_all(DESK_CALLS)).values():
            call = _call_dec.decode(raw)
            if call.worker == worker:
                await self._forget(call)
        async with self.sessionmaker() as s:
            tenants = {x.tenant_id for x in await desk_phone_logins(s)}
        for tenant_id in tenants:
            for agent, raw in (await self.live.map_all(desk_phones_map(tenant_id))).items():
                if _reg_dec.decode(raw).worker == worker:
                    await self.live.map_delete(desk_phones_map(tenant_id), agent)
                    await self.tell(tenant_id, int(agent))

    async def registration(self, tenant_id: int, agent_id: int) -> Registration | None:
        raw = await self.live.map_get(desk_phones_map(tenant_id), str(agent_id))
        if raw is None:
            return None
        reg = _reg_dec.decode(raw)
        return reg if reg.expires_at > self.clock() else None

    async def state(self, tenant_id: int, agent_id: int) -> P.DeskPhone:
        async with self.sessionmaker() as s:
            user = await TenantRepo(s, tenant_id).user_by_id(agent_id)
        choice = "desk" if user is not None and user.phone == "desk" else "browser"
        reg = await self.registration(tenant_id, agent_id)
        if reg is None:
            return P.DeskPhone(registered=False, phone=choice)
        return P.DeskPhone(registered=True, phone=choice, contact=reg.contact, remote=reg.remote,
                           expires_at=round(reg.expires_at, 3))

    async def tell(self, tenant_id: int, agent_id: int) -> None:
        """Send the agent its desk phone's state."""
        frame = await self.state(tenant_id, agent_id)
        await self.live.publish([(stream_agent(tenant_id, agent_id), P.encode(frame))])

    async def on_desk(self, tenant_id: int, agent_id: int) -> bool:
        """Whether the agent takes calls on a desk phone (its softphone is then refused)."""
        async with self.sessionmaker() as s:
            user = await TenantRepo(s, tenant_id).user_by_id(agent_id)
        return user is not None and user.phone == "desk"

    async def in_call(self, tenant_id: int, agent_id: int) -> bool:
        """Whether the agent's leg on its worker is a desk phone's call now (a softphone's close leaves it)."""
        raw = await self.live.map_get(phones_map(tenant_id), str(agent_id))
        return raw is not None and raw.decode().endswith(f"\n{DESK}")

    async def ringing(self, tenant_id: int, contact_id: str, agent_id: int) -> bool:
        """Whether the agent's desk phone rings for this contact now."""
        call = await self._by_contact(tenant_id, contact_id)
        return call is not None and call.agent_id == agent_id and not call.answered

    # ------------------------------------------------------------ from the ACD

    async def contact_offered(self, tenant_id: int, contact_id: str, agent_id: int) -> None:
        raw = await self.live.map_get(sip_contacts(tenant_id), contact_id)
        if raw is None:
            return  # not a caller over SIP
        caller = _sip_dec.decode(raw)
        async with self.sessionmaker() as s:
            user = await TenantRepo(s, tenant_id).user_by_id(agent_id)
        if user is None or user.phone != "desk":
            return
        reg = await self.registration(tenant_id, agent_id)
        if reg is None:
            log.info("agent %s takes calls on a desk phone, but none is registered: offered on the desktop only", agent_id)
            return
        if reg.worker != caller.worker and not (
            await self.phone.link_address(reg.worker) and await self.phone.link_address(caller.worker)
        ):
            log.warning("agent %s's desk phone is registered with %s, the caller is on %s: not rung",
                        agent_id, reg.worker, caller.worker)
            return
        call = DeskCall(worker=reg.worker, call_id="dp" + uuid.uuid4().hex[:14], tenant_id=tenant_id,
                        agent_id=agent_id, contact_id=contact_id)
        await self._save(call)
        view = await self.live.map_get(contacts_map(tenant_id), contact_id)
        name = msgspec.json.decode(view).get("caller", "") if view is not None else ""
        from_uri = f"sip:{name}@unidesk.invalid" if _CALLER.match(name or "") else None
        await self.phone.command(
            reg.worker,
            P.MediaCommand(op="sip-dial", session_id=call.call_id, uri=reg.contact, from_uri=from_uri,
                           leg=session_id(tenant_id, agent_id)),
        )

    async def contact_connected(self, tenant_id: int, contact_id: str, agent_id: int) -> None:
        """An attended transfer's caller reached the agent whose desk phone took the consult: that desk
        call is now the contact's (its hang-up ends the contact, the contact's end sends it a BYE)."""
        call = await self._by_contact(tenant_id, _handed(agent_id))
        if call is None:
            return
        await self._forget(call)
        call.contact_id = contact_id
        await self._save(call)

    async def contact_offer_ended(self, tenant_id: int, contact_id: str, agent_id: int) -> None:
        call = await self._by_contact(tenant_id, contact_id)
        if call is not None and call.agent_id == agent_id and not call.answered:
            await self._forget(call)
            await self.phone.command(call.worker, P.MediaCommand(op="sip-hangup", session_id=call.call_id, code=200))

    async def contact_finished(self, tenant_id: int, contact_id: str, reason: str) -> None:
        call = await self._by_contact(tenant_id, contact_id)
        if call is None:
            return
        await self._forget(call)
        await self._release_phone(call)
        await self.phone.command(call.worker, P.MediaCommand(op="sip-hangup", session_id=call.call_id, code=200))

    # ------------------------------------------------------------ calls between agents (realtime/phone.py)

    async def takes_agent_call(self, tenant_id: int, agent_id: int, name: str, worker: str) -> str | None:
        """The worker of this agent's desk phone when a call from another agent (mixed on `worker`) rings it
        (None: the agent takes calls in the browser); PhoneError when the desk phone cannot be rung."""
        if not await self.on_desk(tenant_id, agent_id):
            return None
        reg = await self.registration(tenant_id, agent_id)
        if reg is None:
            raise PhoneError(P.NO_PHONE, f"{name} takes calls on a desk phone, and it is not registered")
        if reg.worker != worker and not (await self.phone.link_address(reg.worker) and await self.phone.link_address(worker)):
            raise PhoneError(P.NO_MEDIA_WORKER,
                             f"{name}'s desk phone is registered with another media worker, and the two cannot be linked")
        return reg.worker

    async def ring_agent_call(self, tenant_id: int, c: Call, worker: str) -> None:
        """Ring the called agent's desk phone for the call `c` (checked by `takes_agent_call`)."""
        reg = await self.registration(tenant_id, c.callee)
        if reg is None or reg.worker != worker:
            return  # gone meanwhile: the call rings out on the desktop
        call = DeskCall(worker=worker, call_id="dp" + uuid.uuid4().hex[:14], tenant_id=tenant_id, agent_id=c.callee,
                        contact_id=f"call:{c.id}", agent_call=c.id)
        await self._save(call)
        d = await self.phone.directory.get(tenant_id)
        caller = d.users.get(c.caller) if d else None
        name = caller.username if caller is not None else ""
        from_uri = f"sip:{name}@unidesk.invalid" if _CALLER.match(name) else None
        await self.phone.command(
            worker,
            P.MediaCommand(op="sip-dial", session_id=call.call_id, uri=reg.contact, from_uri=from_uri,
                           leg=session_id(tenant_id, c.callee)),
        )

    async def agent_call_ended(self, tenant_id: int, c: Call, reason: str) -> None:
        """A call between agents ended: the desk phone it rang stops ringing, or gets a BYE; a consult
        handed on as an attended transfer stays up for the caller who comes next (`contact_connected`)."""
        call = await self._by_contact(tenant_id, f"call:{c.id}")
        if call is None:
            return
        await self._forget(call)
        if reason == "transferred" and call.answered:
            call.agent_call, call.contact_id = None, _handed(call.agent_id)
            await self._save(call)
            return
        await self._release_phone(call)
        await self.phone.command(call.worker, P.MediaCommand(op="sip-hangup", session_id=call.call_id, code=200))

    # ------------------------------------------------------------ from the worker

    async def progress(self, worker: str, m: P.SipProgress) -> bool:
        """The desk phone rings or answered; False when the call is not a desk phone's."""
        call = await self._call(worker, m.call_id)
        if call is None:
            return False
        if m.state != "answered" or call.answered:
            return True
        call.answered = True
        await self._save(call)
        sid = session_id(call.tenant_id, call.agent_id)
        # The desk call stands where the agent's softphone would: routing finds it there.
        await self.live.map_put(phones_map(call.tenant_id), str(call.agent_id), f"{worker}\n{DESK}".encode())
        await self.live.map_put(worker_sessions(worker), sid, f"{call.tenant_id}:{call.agent_id}".encode())
        if call.agent_call is not None:
            try:
                await self.phone.answer(call.tenant_id, call.agent_id, call.agent_call)
            except PhoneError as exc:
                log.info("desk phone of agent %s answered call %s too late: %s", call.agent_id, call.agent_call, exc)
                await self._forget(call)
                await self._release_phone(call)
                await self.phone.command(worker, P.MediaCommand(op="sip-hangup", session_id=call.call_id, code=200))
            return True
        try:
            await self.contacts.submit(Accept(tenant_id=call.tenant_id, agent_id=call.agent_id, contact_id=call.contact_id))
        except ContactError as exc:
            log.info("desk phone of agent %s answered contact %s too late: %s", call.agent_id, call.contact_id, exc)
            await self._forget(call)
            await self._release_phone(call)
            await self.phone.command(worker, P.MediaCommand(op="sip-hangup", session_id=call.call_id, code=200))
        return True

    async def ended(self, worker: str, m: P.SipEnded) -> bool:
        """The desk call ended; False when it is not a desk phone's."""
        call = await self._call(worker, m.call_id)
        if call is None:
            return False
        await self._forget(call)
        await self._release_phone(call)
        if call.agent_call is not None:
            # Declined, unreachable or hung up on the desk phone: the call between the agents ends.
            try:
                await self.phone.hangup(call.tenant_id, call.agent_id, call.agent_call)
            except PhoneError:
                pass  # it ended already
            return True
        try:
            if call.answered:
                # Hung up on the desk phone: the agent ends the contact (wrap-up follows).
                await self.contacts.submit(
                    End(tenant_id=call.tenant_id, agent_id=call.agent_id, contact_id=call.contact_id, by="agent")
                )
            else:
                # Declined on the phone (or it could not be reached): the caller goes to the next agent.
                await self.contacts.submit(
                    Reject(tenant_id=call.tenant_id, agent_id=call.agent_id, contact_id=call.contact_id)
                )
        except ContactError as exc:
            log.info("desk call %s ended (%s %s); its contact: %s", m.call_id, m.code, m.reason, exc)
        return True

    # ------------------------------------------------------------ helpers

    async def transfer_refused(self, tenant_id: int, agent_id: int) -> None:
        """The caller an attended transfer was to bring to this agent's desk call did not come (the queue
        refused the new contact): the desk call ends (BYE) rather than staying up in silence."""
        call = await self._by_contact(tenant_id, _handed(agent_id))
        if call is None:
            return
        await self._forget(call)
        await self._release_phone(call)
        await self.phone.command(call.worker, P.MediaCommand(op="sip-hangup", session_id=call.call_id, code=200))

    async def _release_phone(self, call: DeskCall) -> None:
        raw = await self.live.map_get(phones_map(call.tenant_id), str(call.agent_id))
        if raw is not None and raw.decode() == f"{call.worker}\n{DESK}":
            await self.live.map_delete(phones_map(call.tenant_id), str(call.agent_id))
            await self.live.map_delete(worker_sessions(call.worker), session_id(call.tenant_id, call.agent_id))

    async def _save(self, call: DeskCall) -> None:
        await self.live.map_put(DESK_CALLS, f"{call.worker}|{call.call_id}", _enc.encode(call))
        await self.live.map_put(desk_contacts(call.tenant_id), call.contact_id, _enc.encode(call))

    async def _forget(self, call: DeskCall) -> None:
        await self.live.map_delete(DESK_CALLS, f"{call.worker}|{call.call_id}")
        raw = await self.live.map_get(desk_contacts(call.tenant_id), call.contact_id)
        if raw is not None and _call_dec.decode(raw).call_id == call.call_id:
            await self.live.map_delete(desk_contacts(call.tenant_id), call.contact_id)

    async def _call(self, worker: str, call_id: str) -> DeskCall | None:
        raw = await self.live.map_get(DESK_CALLS, f"{worker}|{call_id}")
        return _call_dec.decode(raw) if raw is not None else None

    async def _by_contact(self, tenant_id: int, contact_id: str) -> DeskCall | None:
        raw = await self.live.map_get(desk_contacts(tenant_id), contact_id)
        return _call_dec.decode(raw) if raw is not None else None
