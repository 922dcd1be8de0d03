"""Live call analytics on the board, and alert rules: the hub's side.

**Live calls.** When a caller over SIP connects to an agent, the hub asks the caller's media worker to
analyse the call (media command `analyse`, webrtc/analytics.py); the worker reports every analysed
call's figures about once a second (`call-analytics`). The hub keeps the latest per contact (map
`live-calls:<tenant>`) and sends them to the tenant's boards (`live-calls`); a call that ends leaves
the board (`ended`). Tenant setting `analytics.enabled` (default true) turns it off.

**Alerts.** The hub that routes contacts (the ContactCenter's leader) checks the tenant's rules every
second (tenant setting `alerts`, defaults in DEFAULT_RULES; a rule set to null is off):

| rule                    | raised when                                                   | subject  |
|-------------------------|---------------------------------------------------------------|----------|
| `silence_seconds`       | neither caller nor agent has talked for that long             | contact  |
| `call_minutes`          | a call with a caller lasts longer                             | contact  |
| `service_level_below`   | a queue's service level is below it (once `min_offered` offered) | queue |
| `longest_wait_seconds`  | a queue's longest waiting contact has waited longer           | queue    |
| `paused_minutes`        | an agent has been paused longer                               | agent id |

An alert is raised once per subject and rule (`alert` to the boards, a row in the store's `alerts`),
can be acknowledged by a supervisor (`alert-ack`: who and when, recorded), and clears when its condition
is over (`cleared_at`; the row keeps it). Active alerts live in map `alerts:<tenant>`.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from typing import Any

import msgspec
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from realtime import protocol as P
from realtime.agents import AgentService
from realtime.contacts import ContactCenter, contacts_map
from realtime.live import LiveStore, stream_board
from realtime.phone import PhoneService, session_id
from realtime.sipcalls import SIP_CALLS, SipCall, SipCalls, leg_of
from store.models import AlertRecord
from store.repos import tenant_by_id

log = logging.getLogger("unidesk.alerts")

DEFAULT_RULES: dict[str, float | None] = {
    "silence_seconds": 20.0,
    "call_minutes": 30.0,
    "service_level_below": 0.8,
    "min_offered": 5.0,
    "longest_wait_seconds": 120.0,
    "paused_minutes": 30.0,
}
EVERY_SECONDS = 1.0
SETTINGS_TTL = 5.0


def live_calls_map(tenant_id: int) -> str:
    return f"live-calls:{tenant_id}"


def alerts_map(tenant_id: int) -> str:
    return f"alerts:{tenant_id}"


_call_dec = msgspec.json.Decoder(P.LiveCall)
_sip_dec = msgspec.json.Decoder(SipCall)
_view_dec = msgspec.json.Decoder(P.ContactView)
_alert_dec = msgspec.json.Decoder(P.AlertView)
_enc = msgspec.json.Encoder()


class _Settings:
    """Tenant settings read at most every SETTINGS_TTL seconds."""

    def __init__(self, sessionmaker: async_sessionmaker[AsyncSession]) -> None:
        self.sessionmaker = sessionmaker
        self._cache: dict[int, tuple[float, dict[str, Any]]] = {}

    async def get(self, tenant_id: int) -> dict[str, Any]:
        now = time.monotonic()
        hit = self._cache.get(tenant_id)
        if hit is not None and now - hit[0] < SETTINGS_TTL:
            return hit[1]
        async with self.sessionmaker() as s:
            tenant = await tenant_by_id(s, tenant_id)
        settings = dict(tenant.settings or {}) if tenant else {}
        self._cache[tenant_id] = (now, settings)
        return settings


class LiveCalls:
    def __init__(self, live: LiveStore, sessionmaker: async_sessionmaker[AsyncSession], phone: PhoneService,
                 sip: SipCalls) -> None:
        self.live = live
        self.phone = phone
        self.sip = sip
        self.settings = _Settings(sessionmaker)
        sip.on_connected.append(self._connected)
        sip.on_finished.append(self._finished)

    async def _connected(self, call: SipCall, agent_id: int) -> None:
        if not ((await self.settings.get(call.tenant_id)).get("analytics") or {}).get("enabled", True):
            return
        await self.phone.command(
            call.worker,
            P.MediaCommand(op="analyse", session_id=leg_of(call.call_id), peer=session_id(call.tenant_id, agent_id), on=True),
        )

    async def _finished(self, call: SipCall) -> None:
        await self.phone.command(call.worker, P.MediaCommand(op="analyse", session_id=leg_of(call.call_id), on=False))
        if await self.live.map_get(live_calls_map(call.tenant_id), call.contact_id) is not None:
            await self.live.map_delete(live_calls_map(call.tenant_id), call.contact_id)
            frame = P.encode(P.LiveCallsChanged(ended=[call.contact_id]))
            await self.live.publish([(stream_board(call.tenant_id), frame)])

    async def report(self, worker: str, m: P.CallAnalytics) -> None:
        """Figures from a worker: kept per contact and sent to the tenants' boards. The calls and their
        contacts are read in one go per report (a map read each), not one lookup per call."""
        sip_calls = await self.live.map_all(SIP_CALLS)
        views: dict[int, dict[str, bytes]] = {}
        by_tenant: dict[int, list[P.LiveCall]] = {}
        for fig in m.calls:
            raw_call = sip_calls.get(f"{worker}|{fig.leg[4:]}") if fig.leg.startswith("sip-") else None
            if raw_call is None:
                continue  # ended meanwhile, or not a contact's (a menu)
            call = _sip_dec.decode(raw_call)
            if call.tenant_id not in views:
                views[call.tenant_id] = await self.live.map_all(contacts_map(call.tenant_id))
            raw_view = views[call.tenant_id].get(call.contact_id)
            view = _view_dec.decode(raw_view) if raw_view is not None else None
            if view is None or view.status != "connected" or view.agent_id is None:
                continue
            live = P.LiveCall(contact_id=call.contact_id, agent_id=view.agent_id, queue=view.queue,
                              caller=view.caller, figures=fig)
            by_tenant.setdefault(call.tenant_id, []).append(live)
        for t, calls in by_tenant.items():
            await self.live.map_put_many(live_calls_map(t), {c.contact_id: _enc.encode(c) for c in calls})
        if by_tenant:
            await self.live.publish(
                [(stream_board(t), P.encode(P.LiveCallsChanged(calls=calls))) for t, calls in by_tenant.items()]
            )

    async def calls(self, tenant_id: int) -> list[P.LiveCall]:
        return [_call_dec.decode(v) for v in (await self.live.map_all(live_calls_map(tenant_id))).values()]


class Alerts:
    def __init__(self, live: LiveStore, sessionmaker: async_sessionmaker[AsyncSession], contacts: ContactCenter,
                 agents: AgentService, calls: LiveCalls) -> None:
        self.live = live
        self.sessionmaker = sessionmaker
        self.contacts = contacts
        self.agents = agents
        self.calls = calls
        self.settings = _Settings(sessionmaker)
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self._loop(), name="alerts")

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)

    async def _loop(self) -> None:
        while True:
            await asyncio.sleep(EVERY_SECONDS)
            if not self.contacts.leading:
                continue  # one hub checks: the one that routes
            for tenant_id in self.contacts.tenant_ids():
                try:
                    await self.check(tenant_id, time.time())
                except Exception:  # keep checking the others through a passing failure
                    log.exception("alert check of tenant %s failed", tenant_id)

    async def rules(self, tenant_id: int) -> dict[str, float | None]:
        configured = (await self.settings.get(tenant_id)).get("alerts") or {}
        return {**DEFAULT_RULES, **{k: v for k, v in configured.items() if k in DEFAULT_RULES}}

    async def check(self, tenant_id: int, now: float) -> None:
        rules = await self.rules(tenant_id)
        found: dict[str, tuple[str, str, str, float, float, int | None]] = {}

        def hit(kind: str, subject: str, message: str, value: float, threshold: float, agent: int | None = None) -> None:
            found[f"{kind}|{subject}"] = (kind, subject, message, value, threshold, agent)

        silence, minutes = rules["silence_seconds"], rules["call_minutes"]
        for c in await self.calls.calls(tenant_id):
            f = c.figures
            if silence is not None and f.silence >= silence:
                hit("silence", c.contact_id, f"no one has spoken for {f.silence:.0f} s on the call with {c.caller}",
                    f.silence, silence, c.agent_id)
            if minutes is not None and f.seconds >= minutes * 60:
                hit("long-call", c.contact_id, f"the call with {c.caller} has lasted {f.seconds / 60:.0f} min",
                    f.seconds / 60, minutes, c.agent_id)
        below, wait, least = rules["service_level_below"], rules["longest_wait_seconds"], rules["min_offered"] or 0
        for q in await self.contacts.queue_stats(tenant_id):
            if below is not None and q.service_level is not None and q.offered >= least and q.service_level < below:
                hit("service-level", q.queue, f"{q.queue}: service level {q.service_level:.0%} (target {below:.0%})",
                    q.service_level, below)
            if wait is not None and q.longest_wait >= wait:
                hit("longest-wait", q.queue, f"{q.queue}: a caller has waited {q.longest_wait:.0f} s",
                    q.longest_wait, wait)
        paused = rules["paused_minutes"]
        if paused is not None:
            for a in await self.agents.views(tenant_id):
                if a.state == "paused" and now - a.since >= paused * 60:
                    hit("paused", str(a.id), f"{a.display_name} has been paused for {(now - a.since) / 60:.0f} min",
                        (now - a.since) / 60, paused, a.id)
        active = {k: _alert_dec.decode(v) for k, v in (await self.live.map_all(alerts_map(tenant_id))).items()}
        for key, (kind, subject, message, value, threshold, agent) in found.items():
            if key in active:
                continue
            alert = P.AlertView(id=uuid.uuid4().hex[:16], kind=kind, subject=subject, message=message,
                                value=round(value, 3), threshold=threshold, raised_at=now, agent_id=agent)
            await self.live.map_put(alerts_map(tenant_id), key, _enc.encode(alert))
            async with self.sessionmaker() as s, s.begin():
                s.add(AlertRecord(tenant_id=tenant_id, alert_id=alert.id, kind=kind, subject=subject, message=message,
                                  value=alert.value, threshold=threshold, raised_at=now))
            await self._tell(tenant_id, alert)
        for key, alert in active.items():
            if key in found:
                continue
            await self.live.map_delete(alerts_map(tenant_id), key)
            alert.cleared_at = now
            await self._update(tenant_id, alert.id, cleared_at=now)
            await self._tell(tenant_id, alert)

    async def ack(self, tenant_id: int, user_id: int, username: str, alert_id: str) -> P.AlertView:
        """Acknowledge an active alert of the tenant; raises LookupError for any other id."""
        for key, raw in (await self.live.map_all(alerts_map(tenant_id))).items():
            alert = _alert_dec.decode(raw)
            if alert.id != alert_id:
                continue
            if alert.acked_at is None:
                alert.acked_at, alert.acked_by = time.time(), username
                await self.live.map_put(alerts_map(tenant_id), key, _enc.encode(alert))
                await self._update(tenant_id, alert.id, acked_at=alert.acked_at, acked_by=user_id)
                await self._tell(tenant_id, alert)
            return alert
        raise LookupError(f"no active alert {alert_id}")

    async def active(self, tenant_id: int) -> list[P.AlertView]:
        return [_alert_dec.decode(v) for v in (await self.live.map_all(alerts_map(tenant_id))).values()]

    async def _update(self, tenant_id: int, alert_id: str, **fields: Any) -> None:
        async with self.sessionmaker() as s, s.begin():
            row = (
                await s.execute(
                    select(AlertRecord).where(AlertRecord.tenant_id == tenant_id, AlertRecord.alert_id == alert_id)
                )
            ).scalar_one_or_none()
            if row is not None:
                for k, v in fields.items():
                    setattr(row, k, v)

    async def _tell(self, tenant_id: int, alert: P.AlertView) -> None:
        await self.live.publish([(stream_board(tenant_id), P.encode(P.AlertChanged(alert=alert)))])
