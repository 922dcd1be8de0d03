"""The live store's compare-and-set of a map field (`map_swap`), on the backend under test: a write
expecting what another writer replaced is refused and changes nothing; writers that read again and
retry lose no change, also two stores (two hubs) on one Redis."""

from __future__ import annotations

import asyncio
import secrets

from realtime.live import make_live_store
from tests.conftest import BACKEND, REDIS_URL


def stores(n: int):  # type: ignore[no-untyped-def]
    prefix = f"udtest-swap-{secrets.token_hex(4)}"
    if BACKEND == "redis":
        return [make_live_store(REDIS_URL, prefix, 100) for _ in range(n)]
    return [make_live_store(None, prefix, 100)] * n


async def test_a_stale_write_is_refused_and_retried_writers_lose_nothing() -> None:
    a, b = stores(2)
    for s in {id(a): a, id(b): b}.values():
        await s.start()
    try:
        assert await a.map_swap("rooms", "r1", None, b"1")
        assert not await b.map_swap("rooms", "r1", None, b"x")  # it exists already
        assert not await b.map_swap("rooms", "r1", b"0", b"x")  # not what it holds
        assert await b.map_get("rooms", "r1") == b"1"

        async def bump(s, times: int) -> None:  # type: ignore[no-untyped-def]
            for _ in range(times):
                while True:
                    raw = await s.map_get("rooms", "r1")
                    await asyncio.sleep(0)  # let the other writer in between the read and the write
                    if await s.map_swap("rooms", "r1", raw, str(int(raw) + 1).encode()):
                        break

        await asyncio.gather(bump(a, 50), bump(b, 50))
        assert await a.map_get("rooms", "r1") == b"101"
        assert await a.map_swap("rooms", "r1", b"101", None)
        assert await b.map_get("rooms", "r1") is None
    finally:
        for s in {id(a): a, id(b): b}.values():
            await s.close()
