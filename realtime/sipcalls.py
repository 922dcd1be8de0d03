"""Calls that come in over SIP: the hub's side.

A media worker reports each SIP call (`sip-incoming`). The called address
picks a route in the store (tenant, queue, networks allowed to call it):
unknown addresses get 404, callers from elsewhere 403. An accepted call is
answered by the worker, hears music while it waits, and becomes a contact of
the ACD like any other. When an agent accepts it, the worker connects the
agent's softphone to the call's leg; when either side hangs up, the other
follows (the agent to wrap-up, the caller with a BYE), and the record keeps
who ended it and the SIP cause.

The route also has opening hours (outside them the caller hears the closed
prompt, then the call ends) and may lead to a menu instead of a queue: the
caller hears its prompt and picks a queue with a digit (realtime/ivr.py
decides; realtime/menus.py keeps the caller's place in the live store, so
whichever hub the worker reports to leads it on). A waiting caller hears its
place in the queue over the music every `announce_interval` seconds of the queue.

Live state (shared by all hubs):
- map `sip-calls`: "<worker>|<call id>" → {worker, tenant, contact} (each worker numbers its own calls);
- map `sip-contacts:<tenant>`: contact id → {worker, call id};
- map `sip-menus` (realtime/menus.py): callers in a menu or hearing the closed prompt.
"""

from __future__ import annotations

import ipaddress
import logging
import time
import uuid

from collections.abc import Awaitable, Callable

import msgspec
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from realtime import ivr
from realtime import protocol as P
from realtime.contacts import Abandon, Arrive, ContactCenter, ContactError, End, contacts_map
from realtime.live import LiveStore, stream_agent
from realtime.medialinks import MediaLinks
from realtime.menus import Menus
from realtime.phone import PhoneService, session_id
from store.repos import TenantRepo, sip_route
from webrtc.prompts import UnknownPrompt, prompt_path

log = logging.getLogger("unidesk.sip")

SIP_CALLS = "sip-calls"


def sip_contacts(tenant_id: int) -> str:
    return f"sip-contacts:{tenant_id}"


def _key(worker: str, call_id: str) -> str:
    # Call ids are a worker's own (each numbers its calls): a call is known by both.
    return f"{worker}|{call_id}"


def leg_of(call_id: str) -> str:
    """The media worker's leg for a SIP call (bridge/: "sip-<call id>")."""
    return f"sip-{call_id}"


class SipCall(msgspec.Struct, kw_only=True):
    worker: str
    tenant_id: int
    contact_id: str
    call_id: str
    # The agent's consult call joined to this caller in a conference (realtime/transfers.py).
    conference: str | None = None
    # Agents whose microphone is muted toward this caller (kept for a leg made anew: a softphone that moved).
    muted: list[int] = []


_dec = msgspec.json.Decoder(SipCall)
_view_dec = msgspec.json.Decoder(P.ContactView)
_enc = msgspec.json.Encoder()


class SipCalls:
    def __init__(
        self,
        live: LiveStore,
        sessionmaker: async_sessionmaker[AsyncSession],
        phone: PhoneService,
        contacts: ContactCenter,
    ) -> None:
        self.live = live
        self.sessionmaker = sessionmaker
        self.phone = phone
        self.contacts = contacts
        # Callers in a menu or hearing the closed message (kept in the live store, led by any hub).
        self.menus = Menus(live, self._cmd, self._chosen)
        # Told when a conferenced caller comes off hold or finishes (realtime/transfers.py).
        self.on_conference: Callable[[SipCall, int], Awaitable[None]] | None = None
        self.on_conference_over: Callable[[SipCall], Awaitable[None]] | None = None
        # Told after a connected caller was held or resumed, when it connected to an agent, and when its
        # contact finished (monitoring, live analytics).
        self.on_rerouted: list[Callable[[SipCall, int, bool], Awaitable[None]]] = []
        self.on_connected: list[Callable[[SipCall, int], Awaitable[None]]] = []
        self.on_finished: list[Callable[[SipCall], Awaitable[None]]] = []
        # Told when a softphone answered anew (`worker`, tenant, user) after its callers were routed again
        # (a supervisor's monitoring follows it).
        self.on_softphone_back: list[Callable[[str, int, int], Awaitable[None]]] = []
        # A caller and an agent on two media workers hear each other over a link (realtime/medialinks.py).
        self.links = MediaLinks(live, phone)
        phone.links = self.links
        phone.on_placed = self._follow
        phone.on_back = self._back
        self.on_finished.append(self._unlink)
        contacts.observe(self)

    async def _cmd(self, worker: str, *cmds: P.MediaCommand) -> None:
        await self.phone.command(worker, *cmds)

    # ------------------------------------------------------------ from the worker

    async def incoming(self, worker: str, m: P.SipIncoming) -> None:
        try:
            tenant_id, queue = await self._route(m)
        except _Refused as exc:
            log.info("SIP call to %r from %s refused: %s %s", m.to_user, m.remote, exc.code, exc.reason)
            await self._cmd(
                worker, P.MediaCommand(op="sip-reject", session_id=m.call_id, code=exc.code, reason=exc.reason)
            )
            return
        if isinstance(queue, _Closed):
            await self._cmd(worker, P.MediaCommand(op="sip-answer", session_id=m.call_id))
            await self.menus.start_closed(worker, m, tenant_id, queue.prompt)
            return
        if isinstance(queue, ivr.Menu):
            await self._cmd(worker, P.MediaCommand(op="sip-answer", session_id=m.call_id))
            await self.menus.start_menu(worker, m, tenant_id, queue)
            return
        await self._enqueue(worker, m, tenant_id, queue, answer=True)

    async def _enqueue(
        self, worker: str, m: P.SipIncoming, tenant_id: int, queue: str, answer: bool, menu: str | None = None
    ) -> None:
        """The caller waits in `queue` with music (`menu`: the digits pressed in a menu on the way)."""
        contact_id = uuid.uuid4().hex[:16]
        call = SipCall(worker=worker, tenant_id=tenant_id, contact_id=contact_id, call_id=m.call_id)
        await self.live.map_put(SIP_CALLS, _key(worker, m.call_id), _enc.encode(call))
        await self.live.map_put(sip_contacts(tenant_id), contact_id, _enc.encode(call))
        # Answered at once: the caller hears music while waiting (no ringback timeout at the carrier).
        await self._cmd(
            worker,
            *([P.MediaCommand(op="sip-answer", session_id=m.call_id)] if answer else []),
            P.MediaCommand(op="music", session_id=leg_of(m.call_id), on=True),
        )
        try:
            await self.contacts.submit(
                Arrive(
                    tenant_id=tenant_id, contact_id=contact_id, queue=queue, caller=m.caller or "anonymous",
                    caller_name=m.caller_name, media=True,
                    data={"channel": "sip", "from": m.caller, **({"menu": menu} if menu else {})},
                )
            )
        except ContactError as exc:
            # The queue refused it (full, closed): the caller is told so, not left hanging.
            log.info("SIP call %s not queued: %s", m.call_id, exc)
            await self._forget(call)
            await self._cmd(worker, P.MediaCommand(op="sip-hangup", session_id=m.call_id, code=486, reason=str(exc)))

    async def _route(self, m: P.SipIncoming) -> tuple[int, str | ivr.Menu | _Closed]:
        """(tenant id, queue name, menu or closed) of an accepted call; raises _Refused with the SIP
        response otherwise."""
        async with self.sessionmaker() as s:
            route = await sip_route(s, m.to_user)
            if route is None:
                raise _Refused(404, "Not Found")
            if not _allowed(m.remote, route.allow_from):
                raise _Refused(403, "Forbidden")
            queue = next((q.name for q in await TenantRepo(s, route.tenant_id).queues() if q.id == route.queue_id), None)
        try:
            if not ivr.is_open(route.hours, time.time()):
                return route.tenant_id, _Closed(route.closed_prompt or ivr.CLOSED_PROMPT)
            if route.ivr:
                menu = ivr.Menu.from_json(route.ivr)
                prompt_path(menu.prompt)
                return route.tenant_id, menu
        except (ivr.DialPlanError, UnknownPrompt) as exc:
            log.error("SIP route %r cannot be used: %s", route.address, exc)
            raise _Refused(480, "Temporarily Unavailable") from None
        if queue is None:
            raise _Refused(480, "Temporarily Unavailable")
        return route.tenant_id, queue

    async def _chosen(self, worker: str, m: P.SipIncoming, tenant_id: int, queue: str, digits: str) -> None:
        """A caller chose a queue in a menu (or was sent to its default)."""
        await self._enqueue(worker, m, tenant_id, queue, answer=False, menu=digits or None)

    async def ended(self, worker: str, m: P.SipEnded) -> None:
        if await self.menus.ended(worker, m.call_id):
            return  # in the menu, or hearing that we are closed: no contact yet
        call = await self._call(worker, m.call_id)
        if call is None or call.worker != worker:
            return  # refused before it became a contact, or not this worker's
        await self._forget(call)
        view = await self._view(call)
        if view is None:
            return  # the contact is over already (the agent hung up first)
        try:
            if view.status in ("waiting", "ringing"):
                await self.contacts.submit(Abandon(tenant_id=call.tenant_id, contact_id=call.contact_id))
            elif view.status == "connected" and view.agent_id is not None:
                await self.contacts.submit(
                    End(tenant_id=call.tenant_id, agent_id=view.agent_id, contact_id=call.contact_id, by="caller")
                )
        except ContactError as exc:
            log.info("SIP call %s ended (%s %s); its contact: %s", m.call_id, m.code, m.reason, exc)

    async def worker_gone(self, worker: str) -> None:
        """The worker died: its callers are gone. Waiting ones are recorded as failed, connected
        ones end for their agents (wrap-up) with `ended_by: media-lost`; so do callers whose agent
        talked to them from that worker over a link (they get a BYE)."""
        await self.menus.forget_worker(worker)
        for link in await self.links.worker_gone(worker):
            call = await self._contact(link.tenant_id, link.contact_id)
            view = await self._view(call) if call is not None else None
            if view is not None and view.status == "connected" and view.agent_id == link.agent_id:
                try:
                    await self.contacts.submit(End(tenant_id=link.tenant_id, agent_id=link.agent_id,
                                                   contact_id=link.contact_id, by="media-lost"))
                except ContactError as exc:
                    log.info("SIP call %s lost its agent's worker; its contact: %s", link.call_id, exc)
        for raw in (await self.live.map_all(SIP_CALLS)).values():
            call = _dec.decode(raw)
            if call.worker != worker:
                continue
            await self._forget(call)
            view = await self._view(call)
            try:
                if view is None:
                    continue
                if view.status in ("waiting", "ringing"):
                    await self.contacts.submit(
                        Abandon(tenant_id=call.tenant_id, contact_id=call.contact_id, failed="media worker lost")
                    )
                elif view.status == "connected" and view.agent_id is not None:
                    await self.contacts.submit(
                        End(tenant_id=call.tenant_id, agent_id=view.agent_id, contact_id=call.contact_id, by="media-lost")
                    )
            except ContactError as exc:
                log.info("SIP call %s lost with its worker; its contact: %s", call.call_id, exc)

    async def dtmf(self, worker: str, m: P.SipDtmf) -> None:
        if await self.menus.digits(worker, m):
            return  # a choice in the menu
        call = await self._call(worker, m.call_id)
        if call is None or call.worker != worker:
            return
        view = await self._view(call)
        if view is not None and view.status == "connected" and view.agent_id is not None:
            frame = P.CallDigits(call_id=call.contact_id, digits=m.digits)
            await self.live.publish([(stream_agent(call.tenant_id, view.agent_id), P.encode(frame))])

    # ------------------------------------------------------------ from the ACD

    async def contact_connected(self, tenant_id: int, contact_id: str, agent_id: int) -> None:
        call = await self._contact(tenant_id, contact_id)
        if call is None:
            return  # not a SIP contact
        worker = await self.phone.worker_of(tenant_id, agent_id)
        why = None
        if worker is None:
            why = "no softphone is connected"
        elif worker != call.worker and not await self.links.open(
            tenant_id, agent_id, contact_id, call.worker, call.call_id, worker
        ):
            why = "the softphone is on another media worker, and the two cannot be linked"
        if why is not None:
            log.warning("contact %s answered by agent %s but %s: the caller cannot be heard", contact_id, agent_id, why)
            state = P.PhoneState(state="failed", reason=f"the caller cannot be heard: {why}")
            await self.live.publish([(stream_agent(tenant_id, agent_id), P.encode(state))])
            return
        me, leg = session_id(tenant_id, agent_id), leg_of(call.call_id)
        if call.muted:
            call.muted = []  # a new agent (or the same again) starts unmuted
            await self.save(call)
        await self._cmd(
            call.worker,
            P.MediaCommand(op="prompt", session_id=leg),  # an announcement stops
            P.MediaCommand(op="connect", session_id=me, peer=leg),
            P.MediaCommand(op="mute", session_id=me, on=False),
        )
        for connected in self.on_connected:
            await connected(call, agent_id)

    async def contact_finished(self, tenant_id: int, contact_id: str, reason: str) -> None:
        call = await self._contact(tenant_id, contact_id)
        if call is None:
            return
        await self._forget(call)
        if call.conference and self.on_conference_over is not None:
            await self.on_conference_over(call)
        for hook in self.on_finished:
            await hook(call)
        await self._cmd(call.worker, P.MediaCommand(op="sip-hangup", session_id=call.call_id, code=200, reason=reason))

    async def contact_held(self, tenant_id: int, contact_id: str, agent_id: int, on: bool) -> None:
        call = await self._contact(tenant_id, contact_id)
        if call is None:
            return
        if call.conference and not on and self.on_conference is not None:
            await self.on_conference(call, agent_id)  # off hold into a conference: everyone hears everyone
            return
        me, leg = session_id(tenant_id, agent_id), leg_of(call.call_id)
        # The caller hears the music; the agent hears nothing of the call until resumed.
        await self._cmd(call.worker, P.MediaCommand(op="hold", session_id=me, peer=leg, on=on),
                        # The microphone's mute follows the call that is live (a consult meanwhile unmuted it).
                        *([] if on else [P.MediaCommand(op="mute", session_id=me, on=agent_id in call.muted)]))
        for rerouted in self.on_rerouted:
            await rerouted(call, agent_id, on)

    async def contact_position(
        self, tenant_id: int, contact_id: str, position: int, expected_wait: float | None
    ) -> None:
        """A waiting caller hears their place in the queue (and the expected wait) over the music."""
        call = await self._contact(tenant_id, contact_id)
        if call is None:
            return
        names = ivr.announcement(position, expected_wait)
        await self._cmd(call.worker, P.MediaCommand(op="prompt", session_id=leg_of(call.call_id), prompts=names))

    # ------------------------------------------------------------ from the agent

    async def connected_call(self, tenant_id: int, agent_id: int, contact_id: str) -> SipCall | None:
        """The SIP call behind the agent's connected contact, or None (not a SIP contact of this agent's)."""
        call = await self._contact(tenant_id, contact_id)
        if call is None:
            return None
        view = await self._view(call)
        if view is None or view.agent_id != agent_id or view.status != "connected":
            return None
        return call

    async def transfer(self, call: SipCall, agent_id: int, to: str) -> str:
        """Blind transfer: the caller leaves this agent (who goes to wrap-up) and waits again, in the queue
        named `to` or, for an agent's username, in that agent's first queue offered to that agent first.
        Returns the new contact's id; raises ContactError when `to` is neither."""
        tenant_id = call.tenant_id
        d = await self.contacts.directory.get(tenant_id)
        queues = {q.name for q in d.queues} if d else set()
        target = next((u for u in d.users.values() if u.username == to), None) if d else None
        preferred = None
        if to in queues:
            queue = to
        elif target is not None and d is not None and d.is_agent(target.id) and d.agent_queues.get(target.id):
            if target.id == agent_id:
                raise ContactError("bad-frame", "a caller cannot be transferred to the agent who has it")
            queue, preferred = sorted(d.agent_queues[target.id])[0], target.id
        else:
            raise ContactError("not-found", f"no queue or agent {to!r} to transfer to")
        return await self.requeue(call, agent_id, queue, preferred)

    async def requeue(
        self, call: SipCall, agent_id: int, queue: str, preferred: int | None, answer_now: bool = False,
        data: dict[str, str] | None = None,
    ) -> str:
        """The caller leaves this agent (who goes to wrap-up) and waits again in `queue`, offered to
        `preferred` first (who takes it at once with `answer_now`). Returns the new contact's id; raises
        ContactError when the queue refuses it (the caller then stays with this agent)."""
        tenant_id = call.tenant_id
        d = await self.contacts.directory.get(tenant_id)
        view = await self._view(call)
        assert view is not None, "a connected contact has a view"
        me = d.users.get(agent_id) if d else None
        new = SipCall(worker=call.worker, tenant_id=tenant_id, contact_id=uuid.uuid4().hex[:16], call_id=call.call_id)
        # The call belongs to the new contact before the old one ends, so ending it hangs nothing up.
        await self.live.map_put(SIP_CALLS, _key(call.worker, call.call_id), _enc.encode(new))
        await self.live.map_put(sip_contacts(tenant_id), new.contact_id, _enc.encode(new))
        await self.live.map_delete(sip_contacts(tenant_id), call.contact_id)
        await self._cmd(
            call.worker,
            P.MediaCommand(op="disconnect", session_id=session_id(tenant_id, agent_id)),
            P.MediaCommand(op="music", session_id=leg_of(call.call_id), on=True),
        )
        try:
            await self.contacts.submit(
                Arrive(
                    tenant_id=tenant_id, contact_id=new.contact_id, queue=queue, caller=view.caller,
                    caller_name=view.caller_name,
                    data={**view.data, "transferred_by": me.username if me else str(agent_id), **(data or {})},
                    media=True, preferred_agent=preferred, answer_now=answer_now,
                )
            )
        except ContactError:
            # Not queued: the caller stays with this agent.
            call.conference = None
            await self.save(call)
            await self.live.map_delete(sip_contacts(tenant_id), new.contact_id)
            await self.contact_connected(tenant_id, call.contact_id, agent_id)
            raise
        await self.contacts.submit(End(tenant_id=tenant_id, agent_id=agent_id, contact_id=call.contact_id, by="transfer"))
        for hook in self.on_finished:
            await hook(call)
        return new.contact_id

    async def wait_again(self, worker: str, tenant_id: int, call_id: str, queue: str, view: P.ContactView,
                         data: dict[str, str]) -> str | None:
        """A caller no agent has (a transfer outside that failed) waits in `queue` again with music.
        Returns the new contact's id, or None when the queue refuses it (the caller is then hung up)."""
        call = SipCall(worker=worker, tenant_id=tenant_id, contact_id=uuid.uuid4().hex[:16], call_id=call_id)
        await self.save(call)
        await self._cmd(worker, P.MediaCommand(op="music", session_id=leg_of(call_id), on=True))
        try:
            await self.contacts.submit(
                Arrive(tenant_id=tenant_id, contact_id=call.contact_id, queue=queue, caller=view.caller,
                       caller_name=view.caller_name, data={**view.data, **data}, media=True)
            )
        except ContactError as exc:
            log.info("SIP call %s not queued again: %s", call_id, exc)
            await self.forget(call)
            await self._cmd(worker, P.MediaCommand(op="sip-hangup", session_id=call_id, code=486, reason=str(exc)))
            return None
        return call.contact_id

    async def mute(self, call: SipCall, agent_id: int, on: bool) -> None:
        call.muted = [a for a in call.muted if a != agent_id] + ([agent_id] if on else [])
        await self.save(call)
        await self._cmd(call.worker, P.MediaCommand(op="mute", session_id=session_id(call.tenant_id, agent_id), on=on))

    async def send_digits(self, call: SipCall, digits: str) -> None:
        await self._cmd(call.worker, P.MediaCommand(op="sip-dtmf", session_id=call.call_id, digits=digits))

    async def reaches(self, call: SipCall, agent_id: int) -> bool:
        """Whether the agent's softphone hears the caller: both on the call's worker, or linked to it."""
        worker = await self.phone.worker_of(call.tenant_id, agent_id)
        return worker == call.worker or (worker is not None and await self.links.serves(call.worker, call.call_id, agent_id))

    async def _connected_to(self, tenant_id: int, agent_id: int) -> list[tuple[SipCall, P.ContactView]]:
        """The agent's connected SIP contacts (held ones too) and their views."""
        out = []
        for raw in (await self.live.map_all(sip_contacts(tenant_id))).values():
            call = _dec.decode(raw)
            view = await self._view(call)
            if view is not None and view.agent_id == agent_id and view.status == "connected":
                out.append((call, view))
        return out

    async def _follow(self, tenant_id: int, agent_id: int, worker: str) -> None:
        """The agent's softphone was placed on `worker` anew (before its offer): a caller it talked to directly
        on the worker it left is linked to this one (its links followed already, realtime/medialinks.py)."""
        for call, _ in await self._connected_to(tenant_id, agent_id):
            if call.worker == worker or await self.links.serves(call.worker, call.call_id, agent_id):
                continue
            if not await self.links.open(tenant_id, agent_id, call.contact_id, call.worker, call.call_id, worker,
                                         connect=False):
                log.warning("contact %s: the agent's softphone came back on %s, which cannot be linked to %s",
                            call.contact_id, worker, call.worker)

    async def _back(self, worker: str, tenant_id: int, agent_id: int) -> list[str]:
        """The agent's softphone on `worker` answered (a new peer connection: a fresh leg, here or over a link
        on the caller's worker): each caller it has is connected to it again, held ones on hold, conferences
        and monitoring as they were. Returns the callers' legs it hears directly on `worker`."""
        direct = []
        conferences = {}
        for c in await self.phone.calls_between(tenant_id, agent_id):
            if c.conference and c.status == "connected":
                conferences[c.conference] = None  # a call of the agent's joined to another agent's caller
        for call, view in await self._connected_to(tenant_id, agent_id):
            if not await self.reaches(call, agent_id):
                continue
            me, leg = session_id(tenant_id, agent_id), leg_of(call.call_id)
            if view.held:
                await self._cmd(call.worker, P.MediaCommand(op="hold", session_id=me, peer=leg, on=True))
            elif call.conference:
                conferences[call.contact_id] = None
            else:
                # A leg made anew (a new link, or the softphone itself) starts unmuted: the agent's mute is kept.
                await self._cmd(call.worker, P.MediaCommand(op="connect", session_id=me, peer=leg),
                                P.MediaCommand(op="mute", session_id=me, on=agent_id in call.muted))
                if call.worker == worker:
                    direct.append(leg)
            for rerouted in self.on_rerouted:
                await rerouted(call, agent_id, view.held)
        for contact_id in conferences:
            call = await self._contact(tenant_id, contact_id)
            view = await self._view(call) if call is not None else None
            if call is not None and view is not None and view.agent_id is not None and self.on_conference is not None:
                await self.on_conference(call, view.agent_id)
        for back in self.on_softphone_back:
            await back(worker, tenant_id, agent_id)
        return direct

    async def _unlink(self, call: SipCall) -> None:
        await self.links.close(call.worker, call.call_id, call.contact_id)

    # ------------------------------------------------------------ helpers

    async def _call(self, worker: str, call_id: str) -> SipCall | None:
        raw = await self.live.map_get(SIP_CALLS, _key(worker, call_id))
        return _dec.decode(raw) if raw is not None else None

    async def _contact(self, tenant_id: int, contact_id: str) -> SipCall | None:
        raw = await self.live.map_get(sip_contacts(tenant_id), contact_id)
        return _dec.decode(raw) if raw is not None else None

    async def _view(self, call: SipCall) -> P.ContactView | None:
        raw = await self.live.map_get(contacts_map(call.tenant_id), call.contact_id)
        return _view_dec.decode(raw) if raw is not None else None

    async def _forget(self, call: SipCall) -> None:
        await self.live.map_delete(SIP_CALLS, _key(call.worker, call.call_id))
        await self.live.map_delete(sip_contacts(call.tenant_id), call.contact_id)

    async def forget(self, call: SipCall) -> None:
        """The SIP call is no longer a contact's (handed to a number outside)."""
        await self._forget(call)
        for hook in self.on_finished:
            await hook(call)

    async def save(self, call: SipCall) -> None:
        await self.live.map_put(SIP_CALLS, _key(call.worker, call.call_id), _enc.encode(call))
        await self.live.map_put(sip_contacts(call.tenant_id), call.contact_id, _enc.encode(call))

    async def call_of(self, worker: str, call_id: str) -> SipCall | None:
        return await self._call(worker, call_id)

    async def contact(self, tenant_id: int, contact_id: str) -> SipCall | None:
        return await self._contact(tenant_id, contact_id)

    async def view(self, call: SipCall) -> P.ContactView | None:
        return await self._view(call)


class _Closed(msgspec.Struct, frozen=True):
    prompt: str


class _Refused(Exception):
    def __init__(self, code: int, reason: str) -> None:
        super().__init__(f"{code} {reason}")
        self.code, self.reason = code, reason


def _allowed(remote: str, networks: list[str]) -> bool:
    host = remote.rsplit(":", 1)[0].strip("[]") if remote.count(":") == 1 or remote.startswith("[") else remote
    try:
        addr = ipaddress.ip_address(host)
    except ValueError:
        return False
    for net in networks:
        try:
            if addr in ipaddress.ip_network(net, strict=False):
                return True
        except ValueError:
            log.warning("bad network %r in a SIP route", net)
    return False
