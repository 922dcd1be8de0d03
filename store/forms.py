"""Queries of the queues' data forms: drafts, published versions, answers stored with contacts and the
answers of a period for the export. Like `TenantRepo`, `FormRepo` is bound to one tenant and never commits."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from store.models import Form, FormAnswer, FormVersion, Queue, User


class FormRepo:
    def __init__(self, session: AsyncSession, tenant_id: int) -> None:
        assert tenant_id > 0, "a tenant id is positive"
        self.session = session
        self.tenant_id = tenant_id

    async def forms(self) -> Sequence[tuple[Form, str]]:
        q = (select(Form, Queue.name).join(Queue, Queue.id == Form.queue_id)
             .where(Form.tenant_id == self.tenant_id).order_by(Queue.name))
        return [(f, name) for f, name in (await self.session.execute(q)).all()]

    async def form(self, queue_id: int) -> Form | None:
        q = select(Form).where(Form.tenant_id == self.tenant_id, Form.queue_id == queue_id)
        return (await self.session.execute(q)).scalar_one_or_none()

    async def save_draft(self, queue_id: int, definition: dict[str, Any], by: int, now: float) -> Form:
        row = await self.form(queue_id)
        if row is None:
            row = Form(tenant_id=self.tenant_id, queue_id=queue_id, published_version=None)
            self.session.add(row)
        row.definition, row.updated_at, row.updated_by = definition, now, by
        await self.session.flush()
        return row

    async def versions(self, form_id: int) -> Sequence[FormVersion]:
        q = (select(FormVersion).where(FormVersion.tenant_id == self.tenant_id, FormVersion.form_id == form_id)
             .order_by(FormVersion.version))
        return (await self.session.execute(q)).scalars().all()

    async def version(self, form_id: int, version: int) -> FormVersion | None:
        q = select(FormVersion).where(FormVersion.tenant_id == self.tenant_id, FormVersion.form_id == form_id,
                                      FormVersion.version == version)
        return (await self.session.execute(q)).scalar_one_or_none()

    async def version_by_id(self, version_id: int) -> FormVersion | None:
        q = select(FormVersion).where(FormVersion.tenant_id == self.tenant_id, FormVersion.id == version_id)
        return (await self.session.execute(q)).scalar_one_or_none()

    async def publish(self, form: Form, by: int, now: float) -> FormVersion:
        """The draft as the next version, published from now on. Two admins publishing at once: the
        unique (form, version) lets one of them fail rather than both get the same number."""
        last = (await self.session.execute(
            select(func.max(FormVersion.version)).where(FormVersion.form_id == form.id))).scalar() or 0
        v = FormVersion(tenant_id=self.tenant_id, form_id=form.id, version=last + 1, definition=form.definition,
                        published_at=now, published_by=by)
        self.session.add(v)
        form.published_version = v.version
        await self.session.flush()
        return v

    async def version_for(self, queue_id: int, answered_at: float | None) -> FormVersion | None:
        """The version a contact of the queue answered at `answered_at` fills: the one published then, so a
        contact in progress keeps its version when a new one is published. A contact that had none (no form
        then) gets the current one. None: the queue has no form published now."""
        form = await self.form(queue_id)
        if form is None or form.published_version is None:
            return None
        if answered_at is not None:
            q = (select(FormVersion).where(FormVersion.tenant_id == self.tenant_id, FormVersion.form_id == form.id,
                                           FormVersion.published_at <= answered_at,
                                           FormVersion.version <= form.published_version)
                 .order_by(FormVersion.version.desc()).limit(1))
            then = (await self.session.execute(q)).scalar_one_or_none()
            if then is not None:
                return then
        return await self.version(form.id, form.published_version)

    # -- answers

    async def answer(self, contact_id: str) -> FormAnswer | None:
        q = select(FormAnswer).where(FormAnswer.tenant_id == self.tenant_id, FormAnswer.contact_id == contact_id)
        return (await self.session.execute(q)).scalar_one_or_none()

    async def save_answer(self, contact_id: str, queue: str, version: FormVersion, data: dict[str, Any],
                          draft: bool, by: int, now: float) -> FormAnswer:
        row = await self.answer(contact_id)
        if row is None:
            row = FormAnswer(tenant_id=self.tenant_id, contact_id=contact_id)
            self.session.add(row)
        row.queue, row.form_version_id, row.version = queue, version.id, version.version
        row.data, row.draft, row.filled_by, row.filled_at = data, draft, by, now
        await self.session.flush()
        return row

    async def answers(self, queue: str, start: float, end: float, limit: int
                      ) -> Sequence[tuple[FormAnswer, str | None]]:
        """The queue's answers filled in [start, end), oldest first, each with who filled it."""
        q = (select(FormAnswer, User.username).outerjoin(User, User.id == FormAnswer.filled_by)
             .where(FormAnswer.tenant_id == self.tenant_id, FormAnswer.queue == queue,
                    FormAnswer.filled_at >= start, FormAnswer.filled_at < end)
             .order_by(FormAnswer.filled_at, FormAnswer.id).limit(limit))
        return [(a, who) for a, who in (await self.session.execute(q)).all()]

    async def versions_by_id(self, ids: set[int]) -> dict[int, FormVersion]:
        if not ids:
            return {}
        q = select(FormVersion).where(FormVersion.tenant_id == self.tenant_id, FormVersion.id.in_(ids))
        return {v.id: v for v in (await self.session.execute(q)).scalars().all()}
