"""SIP trunks: the hub's side (which worker registers, what the registrations say, calls out).

Trunks live in the store (`sip_trunks`). After each `worker-hello` the hub sends
the worker every enabled trunk (`sip-trunks`): any worker may place an agent's
call out through a trunk, since the agent's softphone may be on any worker.
Exactly one worker, the **registrar worker**, registers them: the first worker
with a SIP user agent to say hello while no registrar worker is connected. When
it goes away for good (`worker_gone`, after the reconnect grace), the first
connected worker with SIP by name takes over and is sent the list again with `register` set. A registrar
worker that only reconnects within the grace keeps the role.

Live state (shared by all hubs):
- map `sip-trunk-registrar`: "worker" → the registrar worker's name;
- map `sip-registrations`: trunk key → `TrunkStatus`, as the registrar worker last reported it.

Two hubs greeting two workers at the same instant may each make its own
worker the registrar: both then register (two contacts for one account at the
registrar) until one of them goes away. Rare, and harmless to calls.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import TYPE_CHECKING

import msgspec
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from bridge.trunk import trunk_uri
from realtime import protocol as P
from realtime.live import LiveStore
from store.models import SipTrunk
from store.repos import TenantRepo, enabled_sip_trunks

if TYPE_CHECKING:
    from realtime.phone import PhoneService

log = logging.getLogger("unidesk.trunks")

REGISTRAR = "sip-trunk-registrar"
REGISTRATIONS = "sip-registrations"


def trunk_key(trunk: SipTrunk) -> str:
    """How the hub and the workers name a trunk: '<tenant id>/<name>' (names are unique per tenant)."""
    return f"{trunk.tenant_id}/{trunk.name}"


class TrunkStatus(msgspec.Struct, kw_only=True):
    worker: str
    state: str
    code: int
    reason: str
    expires: int
    # Epoch seconds of the report.
    at: float


_status_dec = msgspec.json.Decoder(TrunkStatus)
_enc = msgspec.json.Encoder()


class TrunkService:
    def __init__(
        self,
        live: LiveStore,
        sessionmaker: async_sessionmaker[AsyncSession],
        phone: PhoneService,  # its worker list and command stream
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.live = live
        self.sessionmaker = sessionmaker
        self.phone = phone
        self.clock = clock

    # ------------------------------------------------------------ workers

    async def worker_hello(self, name: str, sip: bool) -> None:
        """Send the worker the trunks; it registers them when it is (or becomes) the registrar worker."""
        owner = await self.registrar()
        if sip and owner != name and (owner is None or owner not in await self.phone.worker_names(sip=True)):
            log.info("media worker %s registers the SIP trunks (was: %s)", name, owner or "nobody")
            await self.live.map_put(REGISTRAR, "worker", name.encode())
            owner = name
        await self._send(name, register=owner == name)

    async def worker_gone(self, name: str) -> None:
        """A worker went away for good: its registrations with it; another worker takes them over."""
        if await self.registrar() != name:
            return
        for key in await self.live.map_all(REGISTRATIONS):
            await self.live.map_delete(REGISTRATIONS, key)
        others = [w for w in await self.phone.worker_names(sip=True) if w != name]
        if not others:
            await self.live.map_delete(REGISTRAR, "worker")
            log.warning("media worker %s went away; no worker registers the SIP trunks", name)
            return
        await self.live.map_put(REGISTRAR, "worker", others[0].encode())
        log.info("media worker %s registers the SIP trunks (was: %s, gone)", others[0], name)
        await self._send(others[0], register=True)

    async def registrar(self) -> str | None:
        raw = await self.live.map_get(REGISTRAR, "worker")
        return raw.decode() if raw is not None else None

    async def _send(self, worker: str, *, register: bool) -> None:
        async with self.sessionmaker() as s:
            trunks = await enabled_sip_trunks(s)
        specs = [
            P.SipTrunkSpec(
                key=trunk_key(t), host=t.host, transport=t.transport, username=t.username, password=t.password,
                realm=t.realm or "*", register=register and t.register, expires=t.expires,
            )
            for t in trunks
        ]
        await self.phone.command(worker, P.MediaCommand(op="sip-trunks", session_id="sip-trunks", trunks=specs))

    async def registration(self, worker: str, m: P.SipRegistration) -> None:
        """The registrar worker's report; a report of any other worker is stale (it lost the role)."""
        if await self.registrar() != worker:
            return
        if m.state == "failed":
            log.warning("SIP trunk %s: registration failed: %s %s", m.trunk, m.code, m.reason)
        else:
            log.info("SIP trunk %s: %s", m.trunk, m.state)
        status = TrunkStatus(worker=worker, state=m.state, code=m.code, reason=m.reason, expires=m.expires,
                             at=self.clock())
        await self.live.map_put(REGISTRATIONS, m.trunk, _enc.encode(status))

    # ------------------------------------------------------------ reading

    async def statuses(self, tenant_id: int) -> list[dict[str, object]]:
        """The tenant's trunks with their registration state; never their passwords."""
        async with self.sessionmaker() as s:
            trunks = await TenantRepo(s, tenant_id).sip_trunks()
        states = await self.live.map_all(REGISTRATIONS)
        out: list[dict[str, object]] = []
        for t in trunks:
            raw = states.get(trunk_key(t))
            st = _status_dec.decode(raw) if raw is not None else None
            out.append({
                "name": t.name, "host": t.host, "transport": t.transport, "username": t.username,
                "realm": t.realm, "register": t.register, "expires": t.expires, "caller_id": t.caller_id,
                "enabled": t.enabled,
                "registration": (
                    {"state": st.state, "code": st.code, "reason": st.reason, "expires": st.expires,
                     "worker": st.worker, "at": st.at}
                    if st is not None else {"state": "pending" if t.enabled and t.register else "off"}
                ),
            })
        return out


async def outbound_trunk(session: AsyncSession, tenant_id: int) -> SipTrunk | None:
    """The trunk an agent's call out goes through: the tenant's first enabled trunk by name."""
    return next((t for t in await TenantRepo(session, tenant_id).sip_trunks() if t.enabled), None)


def dial_uris(trunk: SipTrunk, number: str) -> tuple[str, str]:
    """(request URI, From URI) of a call to `number` through `trunk`."""
    caller = trunk.caller_id or trunk.username
    return trunk_uri(trunk.host, trunk.transport, number), f"sip:{caller}@{trunk.host}"
