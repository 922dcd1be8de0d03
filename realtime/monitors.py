"""Supervisors listening, whispering and barging into agents' calls with callers: the hub's side.

A supervisor connects a softphone like an agent's (their connection follows their own stream, `auth`
with `stream: "own"`), picks a caller's contact on the board and sends `monitor` with a mode. The
mixing happens in the media worker; the hub only sets what each leg hears (`hear`):

| mode    | supervisor hears  | agent hears           | caller hears          |
|---------|-------------------|-----------------------|-----------------------|
| listen  | caller + agent    | caller                | agent                 |
| whisper | caller + agent    | caller + supervisor   | agent                 |
| barge   | caller + agent    | caller + supervisor   | agent + supervisor    |

Switching mode re-routes without rejoining. A held caller hears the music whatever the mode (a
whispering supervisor still reaches the agent). The monitoring ends with `monitor-stop`, or when the
caller's contact ends (transferred, hung up). A supervisor's softphone on another media worker than the
caller's joins the call's mix over an audio link (realtime/medialinks.py), left when the monitoring
ends. A supervisor's softphone that comes back (a reloaded page) is routed again, wherever it lands: on
the call's worker directly, elsewhere over a join. Whether the agent is told is the tenant setting
`monitoring.notify_agent` (default false).

Live state: map `monitors:<tenant>`, contact id → Watch (one supervisor per call).
"""

from __future__ import annotations

import logging

import msgspec
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from realtime import protocol as P
from realtime.chat import Chat
from realtime.live import LiveStore, stream_agent
from realtime.phone import PhoneError, PhoneService, session_id
from realtime.sipcalls import SipCall, SipCalls, leg_of
from store.repos import tenant_by_id

log = logging.getLogger("unidesk.monitors")


def monitors_map(tenant_id: int) -> str:
    return f"monitors:{tenant_id}"


class Watch(msgspec.Struct, kw_only=True):
    supervisor: int
    supervisor_name: str
    agent: int
    mode: str


_dec = msgspec.json.Decoder(Watch)
_enc = msgspec.json.Encoder()


class Monitors:
    def __init__(
        self,
        live: LiveStore,
        sessionmaker: async_sessionmaker[AsyncSession],
        phone: PhoneService,
        sip: SipCalls,
        chat: Chat | None = None,
    ) -> None:
        self.chat = chat
        self.live = live
        self.sessionmaker = sessionmaker
        self.phone = phone
        self.sip = sip
        sip.on_rerouted.append(self._rerouted)
        sip.on_finished.append(self._finished)
        sip.on_softphone_back.append(self._softphone_back)

    async def start(self, tenant_id: int, supervisor: int, name: str, contact_id: str, mode: str) -> None:
        call = await self.sip.contact(tenant_id, contact_id)
        view = await self.sip.view(call) if call is not None else None
        if call is None or view is None or view.status != "connected" or view.agent_id is None:
            raise PhoneError(P.NOT_FOUND, f"no call {contact_id} with a caller to monitor")
        if call.conference:
            raise PhoneError(P.CONFLICT, "the call is a conference; monitoring starts when it is over")
        worker = await self.phone.worker_of(tenant_id, supervisor)
        if worker is None:
            raise PhoneError(P.NO_PHONE, "connect your softphone first")
        raw = await self.live.map_get(monitors_map(tenant_id), contact_id)
        if raw is not None and (old := _dec.decode(raw)).supervisor != supervisor:
            raise PhoneError(P.CONFLICT, f"{old.supervisor_name} monitors this call already")
        if worker != call.worker and not await self.sip.links.join(tenant_id, supervisor, call.worker, contact_id):
            raise PhoneError(P.NO_MEDIA_WORKER, "your softphone is on another media worker than the call, and the two cannot be linked")
        watch = Watch(supervisor=supervisor, supervisor_name=name, agent=view.agent_id, mode=mode)
        await self.live.map_put(monitors_map(tenant_id), contact_id, _enc.encode(watch))
        await self._route(call, watch, held=view.held)
        await self._tell(tenant_id, contact_id, watch, mode)
        if mode != "listen" and self.chat is not None:
            await self.chat.answered(tenant_id, view.agent_id, name)  # talking to the agent answers a raised hand

    async def stop(self, tenant_id: int, supervisor: int, contact_id: str) -> None:
        raw = await self.live.map_get(monitors_map(tenant_id), contact_id)
        watch = _dec.decode(raw) if raw is not None else None
        if watch is None or watch.supervisor != supervisor:
            raise PhoneError(P.NOT_FOUND, f"you do not monitor call {contact_id}")
        await self.live.map_delete(monitors_map(tenant_id), contact_id)
        call = await self.sip.contact(tenant_id, contact_id)
        if call is not None:
            view = await self.sip.view(call)
            me, agent, caller = session_id(tenant_id, supervisor), session_id(tenant_id, watch.agent), leg_of(call.call_id)
            cmds = [P.MediaCommand(op="hear", session_id=me, peers=[])]
            if view is not None and view.held:
                cmds.append(P.MediaCommand(op="hear", session_id=agent, peers=[]))
            else:
                cmds.append(P.MediaCommand(op="connect", session_id=agent, peer=caller))
            await self.phone.command(call.worker, *cmds)
            await self.sip.links.leave(tenant_id, supervisor, call.worker, contact_id)
        await self._tell(tenant_id, contact_id, watch, None)

    async def _route(self, call: SipCall, w: Watch, held: bool) -> None:
        t = call.tenant_id
        me, agent, caller = session_id(t, w.supervisor), session_id(t, w.agent), leg_of(call.call_id)
        talks = w.mode in ("whisper", "barge")
        cmds = [P.MediaCommand(op="hear", session_id=me, peers=[caller, agent])]
        if held:
            # The caller hears the music; the agent hears only a supervisor who talks to them.
            cmds.append(P.MediaCommand(op="hear", session_id=agent, peers=[me] if talks else []))
        else:
            cmds.append(P.MediaCommand(op="hear", session_id=agent, peers=[caller, me] if talks else [caller]))
            cmds.append(P.MediaCommand(op="hear", session_id=caller, peers=[agent, me] if w.mode == "barge" else [agent]))
        await self.phone.command(call.worker, *cmds)

    async def _rerouted(self, call: SipCall, agent_id: int, held: bool) -> None:
        raw = await self.live.map_get(monitors_map(call.tenant_id), call.contact_id)
        if raw is not None:
            await self._route(call, _dec.decode(raw), held)

    async def _softphone_back(self, worker: str, tenant_id: int, user_id: int) -> None:
        """A supervisor's softphone answered anew on `worker` (a reloaded page: a fresh leg, maybe on another
        worker). Each call it monitors is routed again on the call's worker: there directly, or over a join
        (kept when it was re-pointed, made when the softphone left the call's worker)."""
        for contact_id, raw in (await self.live.map_all(monitors_map(tenant_id))).items():
            watch = _dec.decode(raw)
            if watch.supervisor != user_id:
                continue
            call = await self.sip.contact(tenant_id, contact_id)
            view = await self.sip.view(call) if call is not None else None
            if call is None or view is None:
                continue
            if worker != call.worker and not await self.sip.links.join(tenant_id, user_id, call.worker, contact_id):
                log.warning("supervisor %s came back on %s, which cannot be linked to the call %s on %s",
                            user_id, worker, contact_id, call.worker)
                continue
            await self._route(call, watch, held=view.held)

    async def _finished(self, call: SipCall) -> None:
        raw = await self.live.map_get(monitors_map(call.tenant_id), call.contact_id)
        if raw is None:
            return
        watch = _dec.decode(raw)
        await self.live.map_delete(monitors_map(call.tenant_id), call.contact_id)
        await self.phone.command(
            call.worker, P.MediaCommand(op="hear", session_id=session_id(call.tenant_id, watch.supervisor), peers=[])
        )
        await self.sip.links.leave(call.tenant_id, watch.supervisor, call.worker, call.contact_id)
        await self._tell(call.tenant_id, call.contact_id, watch, None, reason="call-ended")

    async def _tell(self, tenant_id: int, contact_id: str, w: Watch, mode: str | None, reason: str | None = None) -> None:
        frame = P.encode(
            P.MonitorChanged(call_id=contact_id, mode=mode, supervisor=w.supervisor_name, agent_id=w.agent, reason=reason)  # type: ignore[arg-type]
        )
        streams = [stream_agent(tenant_id, w.supervisor)]
        if await self._notify_agent(tenant_id):
            streams.append(stream_agent(tenant_id, w.agent))
        await self.live.publish([(s, frame) for s in streams])

    async def _notify_agent(self, tenant_id: int) -> bool:
        async with self.sessionmaker() as s:
            tenant = await tenant_by_id(s, tenant_id)
        return bool(((tenant.settings or {}).get("monitoring") or {}).get("notify_agent")) if tenant else False
