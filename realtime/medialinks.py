"""Audio links between media workers: the hub's side (the workers' is webrtc/link.py).

A SIP caller sits on the worker that answered the call (worker A); the agent's
softphone on the worker its page was placed on (worker B). When they differ,
the hub links the two workers for the call instead of refusing it:

- on A, the link leg takes the agent's session id: every command the hub
  already sends to the caller's worker (connect, hold, mute, record, analyse,
  disconnect) works on it unchanged, and the caller hears whatever B sends;
- on B, the link leg `link-<id>` stands for the caller and is connected to the
  agent's softphone.

Each link has a fresh id and key (random, sent on the two workers' command
streams only). It ends when the caller leaves the agent (the contact ends, a
transfer, the caller hangs up): both workers get `link` off. When either
worker goes away the other end is removed, and a caller whose agent's worker
went away is ended (`ended_by: media-lost`) like one whose own worker died.

Live state: map `media-links`: "<worker A>|<call id>" → the link.
"""

from __future__ import annotations

import logging
import secrets

import msgspec

from realtime import protocol as P
from realtime.live import LiveStore
from realtime.phone import PhoneService, session_id

log = logging.getLogger("unidesk.links")

LINKS = "media-links"


class MediaLinkInfo(msgspec.Struct, kw_only=True):
    id: str
    key: str
    tenant_id: int
    agent_id: int
    contact_id: str
    # The caller's worker and call, the agent's worker.
    caller_worker: str
    call_id: str
    agent_worker: str

    @property
    def far_leg(self) -> str:
        """The caller's stand-in on the agent's worker."""
        return f"link-{self.id}"


_dec = msgspec.json.Decoder(MediaLinkInfo)
_enc = msgspec.json.Encoder()


def _key(worker: str, call_id: str) -> str:
    return f"{worker}|{call_id}"


class MediaLinks:
    def __init__(self, live: LiveStore, phone: PhoneService) -> None:
        self.live = live
        self.phone = phone

    async def open(self, tenant_id: int, agent_id: int, contact_id: str, caller_worker: str, call_id: str,
                   agent_worker: str) -> bool:
        """Link the caller's worker to the agent's for this call; False when either cannot take links.
        On return the agent's session id names the agent on the caller's worker, and the agent's softphone
        hears the caller."""
        a, b = await self.phone.link_address(caller_worker), await self.phone.link_address(agent_worker)
        if not a or not b:
            return False
        old = await self._get(caller_worker, call_id)
        if old is not None:
            if old.agent_id == agent_id and old.agent_worker == agent_worker:
                old.contact_id = contact_id
                await self.live.map_put(LINKS, _key(caller_worker, call_id), _enc.encode(old))
                return True  # the same agent again (a transfer that was refused)
            await self._close(old)
        link = MediaLinkInfo(id=secrets.token_hex(8), key=secrets.token_hex(16), tenant_id=tenant_id,
                             agent_id=agent_id, contact_id=contact_id, caller_worker=caller_worker,
                             call_id=call_id, agent_worker=agent_worker)
        await self.live.map_put(LINKS, _key(caller_worker, call_id), _enc.encode(link))
        me = session_id(tenant_id, agent_id)
        await self.phone.command(
            caller_worker,
            P.MediaCommand(op="link", session_id=me, on=True,
                           link=P.MediaLink(id=link.id, key=link.key, side="a", peer=b)),
        )
        await self.phone.command(
            agent_worker,
            P.MediaCommand(op="link", session_id=link.far_leg, on=True,
                           link=P.MediaLink(id=link.id, key=link.key, side="b", peer=a)),
            P.MediaCommand(op="connect", session_id=me, peer=link.far_leg),
            P.MediaCommand(op="mute", session_id=me, on=False),
        )
        log.info("call %s on %s linked to agent %s on %s", call_id, caller_worker, agent_id, agent_worker)
        return True

    async def close(self, caller_worker: str, call_id: str, contact_id: str | None = None) -> None:
        """End the call's link (only if it still serves `contact_id`, when given)."""
        link = await self._get(caller_worker, call_id)
        if link is not None and (contact_id is None or link.contact_id == contact_id):
            await self._close(link)

    async def serves(self, caller_worker: str, call_id: str, agent_id: int) -> bool:
        """Whether the call is linked to this agent's worker."""
        link = await self._get(caller_worker, call_id)
        return link is not None and link.agent_id == agent_id

    async def worker_gone(self, name: str) -> list[MediaLinkInfo]:
        """Remove the links of a worker that went away; returns those whose agent's worker it was
        (their callers are still there, without an agent)."""
        orphans = []
        for raw in (await self.live.map_all(LINKS)).values():
            link = _dec.decode(raw)
            if name not in (link.caller_worker, link.agent_worker):
                continue
            await self._close(link, gone=name)
            if link.agent_worker == name:
                orphans.append(link)
        return orphans

    async def _close(self, link: MediaLinkInfo, gone: str | None = None) -> None:
        await self.live.map_delete(LINKS, _key(link.caller_worker, link.call_id))
        if link.caller_worker != gone:
            await self.phone.command(
                link.caller_worker,
                P.MediaCommand(op="link", session_id=session_id(link.tenant_id, link.agent_id), on=False))
        if link.agent_worker != gone:
            await self.phone.command(link.agent_worker, P.MediaCommand(op="link", session_id=link.far_leg, on=False))

    async def _get(self, worker: str, call_id: str) -> MediaLinkInfo | None:
        raw = await self.live.map_get(LINKS, _key(worker, call_id))
        return _dec.decode(raw) if raw is not None else None
