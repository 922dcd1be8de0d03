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

The same link also brings any other party's leg to a mix on another worker (a **join**): an agent
consulted from a call whose caller is elsewhere, both agents of a call between two workers, a supervisor
listening to a call on another worker. On the mix's worker the link leg takes the party's session id, so
the mixing commands (`connect`, `hear`, `hold`, `mute`) work there unchanged; on the party's own worker
the link leg is connected to its softphone (or desk phone). A join serves one purpose (`tag`: the call
or contact it was made for) and is left when that ends.

A softphone that comes back (a reloaded page) is followed. On the same worker its fresh leg is connected to
the link legs there again (`reattach`). Placed on another worker, its links and joins move with it before
its offer is sent (`rehome`): one whose caller (or mix) is on the new worker is dropped, the softphone being
there directly; any other keeps its leg on the caller's worker and gets a new far leg (and id and key) on
the new worker, the old one removed. A caller it talked to directly on its old worker is linked to the new one
(realtime/sipcalls.py), a call to a number outside (whose SIP leg stays where it was dialled) is linked
like a caller, and a call between agents mixed on a worker it has left is joined again (realtime/phone.py);
a supervisor's softphone joins the calls it monitors again (realtime/monitors.py).

Live state: map `media-links`: "<worker A>|<call id>" → the link; map `media-joins`:
"<mix worker>|<session id>" → a join.
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
JOINS = "media-joins"


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
    # A join: `caller_worker` is the mix's worker, `contact_id` what it serves (call_id unused).
    join: bool = False

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
                   agent_worker: str, connect: bool = True) -> bool:
        """Link the caller's worker to the agent's for this call; False when either cannot take links.
        On return the agent's session id names the agent on the caller's worker, and the agent's softphone
        hears the caller (`connect` False: a softphone still to come, connected by `reattach` on its answer)."""
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
        await self._start(link, a, b, connect)
        log.info("call %s on %s linked to agent %s on %s", call_id, caller_worker, agent_id, agent_worker)
        return True

    async def _start(self, link: MediaLinkInfo, a: str, b: str, connect: bool = True) -> None:
        me = session_id(link.tenant_id, link.agent_id)
        await self.phone.command(
            link.caller_worker,
            P.MediaCommand(op="link", session_id=me, on=True,
                           link=P.MediaLink(id=link.id, key=link.key, side="a", peer=b)),
        )
        cmds = [P.MediaCommand(op="link", session_id=link.far_leg, on=True,
                               link=P.MediaLink(id=link.id, key=link.key, side="b", peer=a))]
        if connect:
            cmds += await self.reattach(link.tenant_id, link.agent_id, link.agent_worker)
        await self.phone.command(link.agent_worker, *cmds)

    # ------------------------------------------------------------ joins

    async def join(self, tenant_id: int, agent_id: int, mix_worker: str, tag: str) -> bool:
        """Make the agent's leg a party of `mix_worker`'s mix (for `tag`, a call or contact id): True when it
        is one already (its softphone is there, or a caller's link or a join brought it), or now is; False
        when it has no leg or the two workers cannot be linked."""
        worker = await self.phone.worker_of(tenant_id, agent_id)
        if worker is None:
            return False
        if worker == mix_worker or await self.present(tenant_id, agent_id, mix_worker):
            return True
        a, b = await self.phone.link_address(mix_worker), await self.phone.link_address(worker)
        if not a or not b:
            return False
        link = MediaLinkInfo(id=secrets.token_hex(8), key=secrets.token_hex(16), tenant_id=tenant_id,
                             agent_id=agent_id, contact_id=tag, caller_worker=mix_worker, call_id="",
                             agent_worker=worker, join=True)
        await self.live.map_put(JOINS, _key(mix_worker, session_id(tenant_id, agent_id)), _enc.encode(link))
        await self._start(link, a, b)
        log.info("agent %s on %s joins the mix on %s for %s", agent_id, worker, mix_worker, tag)
        return True

    async def leave(self, tenant_id: int, agent_id: int, mix_worker: str, tag: str) -> None:
        """End the agent's join to `mix_worker` made for `tag` (none: nothing happens)."""
        raw = await self.live.map_get(JOINS, _key(mix_worker, session_id(tenant_id, agent_id)))
        link = _dec.decode(raw) if raw is not None else None
        if link is not None and link.contact_id == tag:
            await self._close(link)

    async def present(self, tenant_id: int, agent_id: int, worker: str) -> bool:
        """Whether the agent's leg is on `worker` through a link (a caller's there, or a join)."""
        if await self.live.map_get(JOINS, _key(worker, session_id(tenant_id, agent_id))) is not None:
            return True
        return any(
            link.caller_worker == worker for link in await self._links() if (link.tenant_id, link.agent_id) == (tenant_id, agent_id)
        )

    async def home(self, tenant_id: int, agent_id: int) -> str | None:
        """Where the agent's calls are mixed: the worker of a caller the agent talks to (or holds) over a
        link, else the agent's own worker."""
        for link in await self._links():
            if (link.tenant_id, link.agent_id) == (tenant_id, agent_id):
                return link.caller_worker
        return await self.phone.worker_of(tenant_id, agent_id)

    async def reattach(self, tenant_id: int, agent_id: int, worker: str, local: list[str] | None = None) -> list[P.MediaCommand]:
        """Commands that connect the agent's softphone on `worker` (a new peer connection: a fresh leg) to the
        link legs standing for its callers and calls there. The softphone hears all of them at once (and
        `local`, legs it hears on this worker directly): each is mixed on its own worker, where hold and
        mute apply, so a held call's leg sends silence."""
        me = session_id(tenant_id, agent_id)
        far = [link.far_leg for link in await self._all()
               if (link.tenant_id, link.agent_id) == (tenant_id, agent_id) and link.agent_worker == worker]
        if not far:
            return []
        return [*(P.MediaCommand(op="hear", session_id=leg, peers=[me]) for leg in far),
                P.MediaCommand(op="hear", session_id=me, peers=[*(local or []), *far]),
                # A leg it hears here directly was routed with its call's mute (kept: a muted agent stays so).
                *([] if local else [P.MediaCommand(op="mute", session_id=me, on=False)])]

    async def rehome(self, tenant_id: int, agent_id: int, worker: str) -> None:
        """The agent's softphone was placed on `worker`, away from where its links end (it came back on another
        worker: a reloaded page placed afresh, its old worker full or another one chosen). Each link and join follows: one whose
        caller or mix is on `worker` is dropped (the softphone is there directly now; the routing is restored
        on its answer), any other is re-pointed: its leg on the caller's (mix's) worker stays, with its routing,
        hold and mute, and a new far leg on `worker` replaces the old one. Sent before the offer, so that on
        `worker` the agent's session id is free and the far legs wait for the softphone."""
        b = await self.phone.link_address(worker)
        for link in await self._all():
            if (link.tenant_id, link.agent_id) != (tenant_id, agent_id) or link.agent_worker == worker:
                continue
            a = await self.phone.link_address(link.caller_worker)
            if link.caller_worker == worker or not a or not b:
                if link.caller_worker != worker:
                    log.warning("agent %s came back on %s, which cannot be linked to %s: its %s there ends",
                                agent_id, worker, link.caller_worker, "join" if link.join else "link")
                await self._close(link)
                continue
            old_worker, old_leg = link.agent_worker, link.far_leg
            link.id, link.key, link.agent_worker = secrets.token_hex(8), secrets.token_hex(16), worker
            await self._put(link)
            await self.phone.command(
                link.caller_worker,
                P.MediaCommand(op="link", session_id=session_id(tenant_id, agent_id), on=True,
                               link=P.MediaLink(id=link.id, key=link.key, side="a", peer=b)),
            )
            await self.phone.command(old_worker, P.MediaCommand(op="link", session_id=old_leg, on=False))
            await self.phone.command(
                worker,
                P.MediaCommand(op="link", session_id=link.far_leg, on=True,
                               link=P.MediaLink(id=link.id, key=link.key, side="b", peer=a)),
            )
            log.info("%s of agent %s on %s moved from %s to %s", "join" if link.join else "link",
                     agent_id, link.caller_worker, old_worker, worker)

    async def _all(self) -> list[MediaLinkInfo]:
        return [_dec.decode(raw) for raw in
                [*(await self.live.map_all(LINKS)).values(), *(await self.live.map_all(JOINS)).values()]]

    async def _put(self, link: MediaLinkInfo) -> None:
        if link.join:
            await self.live.map_put(JOINS, _key(link.caller_worker, session_id(link.tenant_id, link.agent_id)),
                                    _enc.encode(link))
        else:
            await self.live.map_put(LINKS, _key(link.caller_worker, link.call_id), _enc.encode(link))

    async def _links(self) -> list[MediaLinkInfo]:
        return [_dec.decode(raw) for raw in (await self.live.map_all(LINKS)).values()]

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
        for link in await self._all():
            if name not in (link.caller_worker, link.agent_worker):
                continue
            await self._close(link, gone=name)
            if link.agent_worker == name and not link.join:
                orphans.append(link)
        return orphans

    async def _close(self, link: MediaLinkInfo, gone: str | None = None) -> None:
        if link.join:
            await self.live.map_delete(JOINS, _key(link.caller_worker, session_id(link.tenant_id, link.agent_id)))
        else:
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
