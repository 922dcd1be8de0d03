"""Call recordings: the hub's side (docs/recordings.md).

A queue records its SIP calls when its config says `"record": true`. When such a
contact connects to an agent, the hub plays the queue's `record_announcement`
prompt to the caller (if it names one), adds a row to `recordings` and tells the
caller's media worker to `record` the caller's leg and the agent's softphone.
When the contact finishes (hung up, ended, transferred) the hub tells the worker
to stop; the worker finishes the file and reports it (`recording-done`), and the
row gets the file's name, length and size.

`RetentionJob` deletes the files of recordings older than their tenant's
`recordings.retention_days` (default 90) and marks the rows `deleted_at`. It runs
every `UNIDESK_RETENTION_SWEEP_SECONDS` on one hub at a time: the holder of the
lease "recordings-retention" (always the only hub on the embedded default).

Live state: map `recordings:<tenant>`, contact id → the recording running for it.
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
import uuid
from pathlib import Path
from typing import Any

import msgspec
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from realtime import protocol as P
from realtime.live import LiveStore
from realtime.phone import PhoneService, session_id
from realtime.sipcalls import SipCalls, leg_of
from store.models import Recording
from store.repos import TenantRepo, all_tenants
from webrtc.prompts import UnknownPrompt, prompt_path

log = logging.getLogger("unidesk.recordings")

DEFAULT_RETENTION_DAYS = 90.0
# Download is for these roles unless the tenant's `recordings.download_roles` says otherwise.
DEFAULT_DOWNLOAD_ROLES = ("admin",)
LEASE = "recordings-retention"
# A recording whose end the hub never learnt (the hub died mid-call) is kept this much longer.
UNFINISHED_GRACE = 86400.0


def recordings_map(tenant_id: int) -> str:
    return f"recordings:{tenant_id}"


class Running(msgspec.Struct, kw_only=True):
    recording_id: str
    worker: str
    call_id: str


_dec = msgspec.json.Decoder(Running)
_enc = msgspec.json.Encoder()


def _section(settings: dict[str, Any] | None) -> dict[str, Any]:
    section = (settings or {}).get("recordings")
    return section if isinstance(section, dict) else {}


def retention_days(settings: dict[str, Any] | None) -> float:
    """A tenant's retention in days (`recordings.retention_days`; a bad value falls back to the default)."""
    raw = _section(settings).get("retention_days", DEFAULT_RETENTION_DAYS)
    if isinstance(raw, bool) or not isinstance(raw, (int, float)) or raw < 0:
        log.error("recordings.retention_days %r is not a number of days >= 0; using %s", raw, DEFAULT_RETENTION_DAYS)
        return DEFAULT_RETENTION_DAYS
    return float(raw)


def download_roles(settings: dict[str, Any] | None) -> frozenset[str]:
    """Roles that may download a tenant's recordings (`recordings.download_roles`, default admins).
    Only supervisors and admins reach recordings at all, so listing "agent" gives agents nothing."""
    raw = _section(settings).get("download_roles", DEFAULT_DOWNLOAD_ROLES)
    if not isinstance(raw, list | tuple) or not all(isinstance(r, str) for r in raw):
        log.error("recordings.download_roles %r is not a list of roles; using %s", raw, DEFAULT_DOWNLOAD_ROLES)
        return frozenset(DEFAULT_DOWNLOAD_ROLES)
    return frozenset(raw)


def file_of(folder: str | os.PathLike[str], name: str | None) -> Path | None:
    """The file of a recording in the recordings folder; None for no name or a name that is not a plain file name."""
    if not name or os.path.basename(name) != name or name.startswith("."):
        return None
    return Path(folder) / name


class Recordings:
    """Starts and stops recordings as contacts of recording queues connect and finish (a contact observer)."""

    def __init__(
        self, live: LiveStore, sessionmaker: async_sessionmaker[AsyncSession], phone: PhoneService, sip: SipCalls,
        folder: str,
    ) -> None:
        self.live = live
        self.sessionmaker = sessionmaker
        self.phone = phone
        self.sip = sip
        self.folder = folder
        # After SipCalls: its commands (connect the caller) reach the worker first.
        sip.contacts.observe(self)

    async def contact_connected(self, tenant_id: int, contact_id: str, agent_id: int) -> None:
        call = await self.sip.contact(tenant_id, contact_id)
        view = await self.sip.view(call) if call is not None else None
        if call is None or view is None:
            return  # not a SIP contact
        config = await self._queue_config(tenant_id, view.queue)
        if not config.get("record"):
            return
        if not await self.sip.reaches(call, agent_id):
            return  # the caller cannot reach the agent (SipCalls tells the agent): nothing to record
        rid = uuid.uuid4().hex
        async with self.sessionmaker() as s, s.begin():
            await TenantRepo(s, tenant_id).add_recording(rid, contact_id, view.queue, agent_id, time.time())
        running = Running(recording_id=rid, worker=call.worker, call_id=call.call_id)
        await self.live.map_put(recordings_map(tenant_id), contact_id, _enc.encode(running))
        leg = leg_of(call.call_id)
        cmds = []
        announcement = config.get("record_announcement")
        if announcement:
            try:
                prompt_path(announcement)
                cmds.append(P.MediaCommand(op="prompt", session_id=leg, prompts=[announcement]))
            except UnknownPrompt as exc:
                log.error("queue %r: record_announcement: %s; recording without it", view.queue, exc)
        cmds.append(
            P.MediaCommand(op="record", session_id=leg, peer=session_id(tenant_id, agent_id), on=True, recording_id=rid)
        )
        await self.phone.command(call.worker, *cmds)
        log.info("recording %s of contact %s started", rid, contact_id)

    async def _queue_config(self, tenant_id: int, queue: str) -> dict[str, Any]:
        async with self.sessionmaker() as s:
            q = next((q for q in await TenantRepo(s, tenant_id).queues() if q.name == queue), None)
        return dict(q.config or {}) if q is not None else {}

    async def contact_finished(self, tenant_id: int, contact_id: str, reason: str) -> None:
        raw = await self.live.map_get(recordings_map(tenant_id), contact_id)
        if raw is None:
            return
        running = _dec.decode(raw)
        await self.live.map_delete(recordings_map(tenant_id), contact_id)
        await self.phone.command(
            running.worker,
            P.MediaCommand(op="record", session_id=leg_of(running.call_id), on=False, recording_id=running.recording_id),
        )
        async with self.sessionmaker() as s, s.begin():
            row = await TenantRepo(s, tenant_id).recording(running.recording_id)
            if row is not None and row.ended_at is None:
                row.ended_at = time.time()

    async def contact_held(self, tenant_id: int, contact_id: str, agent_id: int, on: bool) -> None:
        pass  # a held call keeps recording: the caller's channel then holds what the caller says on hold

    async def contact_position(self, tenant_id: int, contact_id: str, position: int, expected_wait: float | None) -> None:
        pass

    async def done(self, worker: str, m: P.RecordingDone) -> None:
        """A media worker finished a recording's file."""
        async with self.sessionmaker() as s, s.begin():
            row = (await s.execute(select(Recording).where(Recording.id == m.recording_id))).scalar_one_or_none()
            if row is None:
                log.warning("media worker %s finished recording %s, which the store does not know", worker, m.recording_id)
                return
            row.seconds, row.bytes, row.error = m.seconds, m.bytes, m.error
            row.path = None if m.error and not m.bytes else m.path
            if row.ended_at is None:
                row.ended_at = time.time()
            if row.deleted_at is not None:
                # Past its retention before it was finished (a call longer than the retention).
                _delete(file_of(self.folder, m.path))
        if m.error:
            log.error("recording %s on media worker %s failed: %s", m.recording_id, worker, m.error)


class RetentionJob:
    """Deletes recordings past their tenant's retention, every `interval` seconds, on one hub at a time."""

    def __init__(self, live: LiveStore, sessionmaker: async_sessionmaker[AsyncSession], folder: str,
                 interval: float, hub_id: str) -> None:
        self.live = live
        self.sessionmaker = sessionmaker
        self.folder = folder
        self.interval = interval
        self.hub_id = hub_id

    async def run(self) -> None:
        while True:
            try:
                # Held while renewed each run; another hub takes over two intervals after this one stops.
                if await self.live.lease(LEASE, self.hub_id, self.interval * 2 + 5):
                    await self.sweep(time.time())
            except Exception:  # the store or Redis is away: the next run tries again
                log.exception("recordings retention run failed")
            await asyncio.sleep(self.interval)

    async def sweep(self, now: float) -> int:
        """Delete what is due in every tenant; returns how many recordings were deleted."""
        deleted = 0
        async with self.sessionmaker() as s:
            tenants = [(t.id, t.settings) for t in await all_tenants(s)]
        for tenant_id, settings in tenants:
            cutoff = now - retention_days(settings) * 86400.0
            async with self.sessionmaker() as s, s.begin():
                for row in await TenantRepo(s, tenant_id).recordings_before(cutoff):
                    if row.ended_at is None and row.started_at >= cutoff - UNFINISHED_GRACE:
                        continue  # maybe still running
                    if not _delete(file_of(self.folder, row.path)):
                        continue  # tried again next run
                    row.deleted_at = now
                    deleted += 1
        if deleted:
            log.info("deleted %d recordings past their retention", deleted)
        return deleted


def _delete(path: Path | None) -> bool:
    """Remove a recording's file; True when it is gone (or never was)."""
    if path is None:
        return True
    try:
        path.unlink(missing_ok=True)
        return True
    except OSError as exc:
        log.error("cannot delete recording file %s: %s", path, exc)
        return False
