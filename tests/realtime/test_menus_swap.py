"""A caller's menu changed by two hubs at once (realtime/menus.py): every write is a compare-and-set
of the stored state, so a decision taken on a state another hub has replaced is taken again on the
new one, and nothing is sent for the stale one. On the backend under test (two stores on one Redis)."""

from __future__ import annotations

import asyncio
import secrets

from realtime import ivr
from realtime import protocol as P
from realtime.live import make_live_store
from realtime.menus import SIP_MENUS, Menus, key
from tests.conftest import BACKEND, REDIS_URL

MENU = ivr.Menu(prompt="welcome-menu", choices={"1": "support", "2": "sales"}, timeout_seconds=8, retries=2)
CALL = P.SipIncoming(call_id="c1", to_user="menu", caller="+4930555001", remote="127.0.0.1:5062")


class Slow:
    """A live store whose reads take `turns` turns of the event loop to come back, as a slow link to
    the store would: what was read may be replaced before the reader writes."""

    def __init__(self, inner, turns: int) -> None:  # type: ignore[no-untyped-def]
        self.inner = inner
        self.turns = turns

    async def map_get(self, name: str, k: str) -> bytes | None:
        raw = await self.inner.map_get(name, k)
        for _ in range(self.turns):
            await asyncio.sleep(0)
        return raw

    def __getattr__(self, attr: str):  # type: ignore[no-untyped-def]
        return getattr(self.inner, attr)


async def test_two_hubs_deciding_on_one_caller_at_once_lose_no_digit_and_send_nothing_stale() -> None:
    prefix = f"udtest-menus-{secrets.token_hex(4)}"
    if BACKEND == "redis":
        raw_stores = [make_live_store(REDIS_URL, prefix, 100) for _ in range(2)]
    else:
        raw_stores = [make_live_store(None, prefix, 100)] * 2
    for s in {id(s): s for s in raw_stores}.values():
        await s.start()
    sent: list[tuple[str, str, str | None]] = []
    enqueued: list[tuple[str, str]] = []

    def hub(name: str, store, turns: int) -> Menus:  # type: ignore[no-untyped-def]
        async def command(worker: str, c: P.MediaCommand) -> None:
            sent.append((name, c.op, (c.prompts or [None])[0] if c.prompts else None))

        async def enqueue(worker: str, m: P.SipIncoming, tenant_id: int, queue: str, digits: str) -> None:
            enqueued.append((queue, digits))

        return Menus(Slow(store, turns), command, enqueue)

    # Hub a reads the store slowly: the state it decides on is stale by the time it writes.
    a, b = hub("a", raw_stores[0], 50), hub("b", raw_stores[1], 0)
    try:
        await a.start_menu("w1", CALL, 1, MENU)
        assert sent == [("a", "prompt", "welcome-menu")]
        # A wrong digit reaches hub a and the right one hub b at the same instant (a worker moving
        # between hubs). b decides first: the caller goes to support. a's decision (replay the menu)
        # was taken on the state b replaced: its write is refused, it reads again, finds the caller
        # gone, and sends nothing; without the compare-and-set it would write the menu back and play
        # it to a caller who has left it.
        da, db = await asyncio.gather(a.digits("w1", P.SipDtmf(call_id="c1", digits="9")),
                                      b.digits("w1", P.SipDtmf(call_id="c1", digits="1")))
        assert (da, db) == (False, True)
        assert enqueued == [("support", "1")]
        assert await raw_stores[0].map_get(SIP_MENUS, key("w1", "c1")) is None
        assert [x for x in sent if x[0] == "a"] == [("a", "prompt", "welcome-menu")]
        # The caller hanging up now finds nothing to end on either hub.
        assert await a.ended("w1", "c1") is False and await b.ended("w1", "c1") is False
    finally:
        for s in {id(s): s for s in raw_stores}.values():
            await s.close()
