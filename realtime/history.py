"""Agent-state history, written behind the live path.

A state change is decided and committed in the live store (compare-and-set,
sequence number, event) first; its history row is queued here and inserted
in batches. One insert per change on the change path cost a database round
trip (and on SQLite a file sync) per click: at 200 changes a second the
changes queued behind the database. In batches of up to `batch` rows every
`interval` seconds the same rows cost a few inserts a second.

Rows are kept until their insert commits: a failing database delays them and
they are tried again (the oldest are dropped, with an error in the log, only
beyond `limit` rows). `flush()` writes everything queued so far; the history
API calls it so that a reader sees every change this hub has committed. Rows
queued when a process dies unexpectedly (at most `interval` seconds of them)
are lost; a clean shutdown flushes.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from dataclasses import dataclass

from sqlalchemy import insert
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from store.models import AgentStateHistory

log = logging.getLogger("unidesk.history")


@dataclass(frozen=True, slots=True)
class HistoryRow:
    tenant_id: int
    user_id: int
    from_state: str
    to_state: str
    reason: str | None
    at: float
    by_user_id: int | None
    source: str
    contact_id: str | None


class HistoryWriter:
    def __init__(
        self,
        sessionmaker: async_sessionmaker[AsyncSession],
        *,
        interval: float = 0.1,
        batch: int = 500,
        limit: int = 200_000,
    ) -> None:
        self.sessionmaker = sessionmaker
        self.interval = interval
        self.batch = batch
        self.limit = limit
        self._rows: deque[HistoryRow] = deque()
        self._wake = asyncio.Event()
        self._lock = asyncio.Lock()
        self._task: asyncio.Task[None] | None = None
        self.dropped = 0

    def add(self, row: HistoryRow) -> None:
        self._rows.append(row)
        if len(self._rows) > self.limit:
            self._rows.popleft()
            self.dropped += 1
            if self.dropped % 1000 == 1:
                log.error("history rows dropped: the database has not taken them", extra={"ud_dropped": self.dropped})
        if len(self._rows) >= self.batch:
            self._wake.set()

    @property
    def pending(self) -> int:
        return len(self._rows)

    async def flush(self) -> None:
        """Insert every row queued so far. Raises if the database refuses them
        (they stay queued and are tried again)."""
        async with self._lock:
            while self._rows:
                n = min(len(self._rows), self.batch)
                chunk = [self._rows[i] for i in range(n)]
                async with self.sessionmaker() as s, s.begin():
                    await s.execute(insert(AgentStateHistory), [_values(r) for r in chunk])
                for _ in range(n):
                    self._rows.popleft()

    def start(self) -> None:
        assert self._task is None, "history writer started twice"
        self._task = asyncio.create_task(self._run(), name="history-writer")

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None
        try:
            await self.flush()
        except Exception:  # shutting down: say what is lost rather than hang
            log.exception("history rows not written at shutdown", extra={"ud_pending": len(self._rows)})

    async def _run(self) -> None:
        while True:
            try:
                await asyncio.wait_for(self._wake.wait(), self.interval)
            except TimeoutError:
                pass
            self._wake.clear()
            try:
                await self.flush()
            except Exception:  # a passing database failure: keep the rows, try again next round
                log.exception("history insert failed; will retry", extra={"ud_pending": len(self._rows)})
                await asyncio.sleep(self.interval * 10)


def _values(r: HistoryRow) -> dict[str, object]:
    return {
        "tenant_id": r.tenant_id, "user_id": r.user_id, "from_state": r.from_state, "to_state": r.to_state,
        "reason": r.reason, "at": r.at, "by_user_id": r.by_user_id, "source": r.source, "contact_id": r.contact_id,
    }
