"""Call scripts' queries: a queue's script (draft and head version), its published versions, and each
contact's pinned version with the agent's path. Bound to one tenant; never commits."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from store.models import ContactScript, Script, ScriptVersion


class ScriptRepo:
    def __init__(self, session: AsyncSession, tenant_id: int) -> None:
        assert tenant_id > 0, "a tenant id is positive"
        self.session = session
        self.tenant_id = tenant_id

    # -- scripts and versions
    async def scripts(self) -> Sequence[Script]:
        q = select(Script).where(Script.tenant_id == self.tenant_id).order_by(Script.queue_id)
        return (await self.session.execute(q)).scalars().all()

    async def script(self, script_id: int) -> Script | None:
        q = select(Script).where(Script.tenant_id == self.tenant_id, Script.id == script_id)
        return (await self.session.execute(q)).scalar_one_or_none()

    async def script_of_queue(self, queue_id: int) -> Script | None:
        q = select(Script).where(Script.tenant_id == self.tenant_id, Script.queue_id == queue_id)
        return (await self.session.execute(q)).scalar_one_or_none()

    async def add_script(self, **fields: object) -> Script:
        row = Script(tenant_id=self.tenant_id, version=0, **fields)
        self.session.add(row)
        await self.session.flush()
        return row

    async def publish(self, script: Script, title: str, now: float, by: int | None) -> ScriptVersion:
        """The draft as version N+1; the caller's transaction makes the number unique (a race: IntegrityError)."""
        assert script.tenant_id == self.tenant_id, "a script of another tenant"
        latest = (await self.session.execute(
            select(func.max(ScriptVersion.version)).where(ScriptVersion.script_id == script.id)
        )).scalar_one()
        row = ScriptVersion(tenant_id=self.tenant_id, script_id=script.id, version=(latest or 0) + 1, title=title,
                            definition=dict(script.draft), published_at=now, published_by=by)
        self.session.add(row)
        script.version = row.version
        await self.session.flush()
        return row

    async def version(self, script_id: int, version: int) -> ScriptVersion | None:
        q = select(ScriptVersion).where(ScriptVersion.tenant_id == self.tenant_id, ScriptVersion.script_id == script_id,
                                        ScriptVersion.version == version)
        return (await self.session.execute(q)).scalar_one_or_none()

    async def version_by_id(self, version_id: int) -> ScriptVersion | None:
        q = select(ScriptVersion).where(ScriptVersion.tenant_id == self.tenant_id, ScriptVersion.id == version_id)
        return (await self.session.execute(q)).scalar_one_or_none()

    async def versions(self, script_id: int) -> Sequence[ScriptVersion]:
        q = (select(ScriptVersion).where(ScriptVersion.tenant_id == self.tenant_id, ScriptVersion.script_id == script_id)
             .order_by(ScriptVersion.version.desc()))
        return (await self.session.execute(q)).scalars().all()

    async def heads(self, queue_ids: Iterable[int]) -> list[tuple[Script, ScriptVersion]]:
        """The latest published version of these queues' scripts."""
        ids = list(queue_ids)
        if not ids:
            return []
        q = (select(Script, ScriptVersion)
             .join(ScriptVersion, (ScriptVersion.script_id == Script.id) & (ScriptVersion.version == Script.version))
             .where(Script.tenant_id == self.tenant_id, Script.queue_id.in_(ids)))
        return [(s, v) for s, v in (await self.session.execute(q)).all()]

    # -- contacts
    async def contact(self, contact_id: str, for_update: bool = False) -> ContactScript | None:
        """`for_update`: locked until the transaction ends (PostgreSQL; SQLite has one writer anyway)."""
        q = select(ContactScript).where(ContactScript.tenant_id == self.tenant_id, ContactScript.contact_id == contact_id)
        if for_update:
            q = q.with_for_update()
        return (await self.session.execute(q)).scalar_one_or_none()

    async def pin(self, contact_id: str, version: ScriptVersion, now: float) -> ContactScript:
        """Pin the contact to this version (a second pin of the same contact: IntegrityError on commit)."""
        row = ContactScript(tenant_id=self.tenant_id, contact_id=contact_id, script_version_id=version.id, path=[],
                            started_at=now, updated_at=now)
        self.session.add(row)
        await self.session.flush()
        return row

    async def of_contacts(self, contact_ids: Iterable[str]) -> dict[str, dict[str, Any]]:
        """contact id → {script_id, version, title, path, finished_at} for those with a script."""
        ids = list(contact_ids)
        if not ids:
            return {}
        q = (select(ContactScript, ScriptVersion)
             .join(ScriptVersion, ScriptVersion.id == ContactScript.script_version_id)
             .where(ContactScript.tenant_id == self.tenant_id, ContactScript.contact_id.in_(ids)))
        return {
            c.contact_id: {"script_id": v.script_id, "version": v.version, "title": v.title, "path": list(c.path or []),
                           "started_at": c.started_at, "finished_at": c.finished_at}
            for c, v in (await self.session.execute(q)).all()
        }
