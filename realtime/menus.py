"""Callers in a menu, or hearing that we are closed, kept in the live store so any hub can lead them.

A caller's place in a menu (realtime/ivr.py `MenuCall.saved()`), the prompt
playing and when it will have played, and the call itself live in the map
`sip-menus`: "<worker>|<call id>" → `MenuState`. Whichever hub receives the
call's next `sip-dtmf` (or `sip-ended`) loads it, feeds the pure core, carries
out its commands and saves it again. Timers (a prompt that has played, the
silence after it) are run by the hub the call's worker is connected to: each
hub looks at the map five to ten times a second for its own workers' callers.
So when the hub that answered the call stops, and the worker reconnects to
another hub, that hub resumes the menu where it was.

Within a hub, one caller's inputs are handled one at a time (a lock per call);
across hubs, a worker's frames all reach the one hub it is connected to.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import time
from collections.abc import Awaitable, Callable, Iterable
from typing import Any

import msgspec

from realtime import ivr
from realtime import protocol as P
from realtime.live import LiveStore
from webrtc.prompts import UnknownPrompt, sequence_seconds

log = logging.getLogger("unidesk.sip")

SIP_MENUS = "sip-menus"
# Played prompts are given this long beyond their length before what follows (the caller's jitter buffer).
PROMPT_TAIL = 0.3
# How often a hub looks for its callers' timers (seconds).
TICK = 0.1


class MenuState(msgspec.Struct, kw_only=True):
    worker: str
    "The media worker carrying the call."
    tenant_id: int
    call: P.SipIncoming
    "The call as the worker reported it (to queue it when a choice is made)."
    menu: dict[str, Any] | None = None
    "The route's menu (its `ivr` JSON); None while the caller only hears the closed prompt."
    core: dict[str, Any] | None = None
    "`MenuCall.saved()`."
    playing: int | None = None
    "Token of the prompt playing (0 for the closed prompt)."
    played_at: float | None = None
    "When that prompt will have played (epoch seconds)."

    def due(self) -> float | None:
        """When this caller next needs the hub, without input from the caller."""
        deadline = (self.core or {}).get("deadline")
        times = [t for t in (deadline, self.played_at) if t is not None]
        return min(times) if times else None


_dec = msgspec.json.Decoder(MenuState)
_enc = msgspec.json.Encoder()

# What a menu does with a choice: (worker, the call, tenant, queue, digits pressed) → the caller waits in it.
Enqueue = Callable[[str, P.SipIncoming, int, str, str], Awaitable[None]]
Command = Callable[..., Awaitable[None]]


def key(worker: str, call_id: str) -> str:
    return f"{worker}|{call_id}"


class Menus:
    def __init__(self, live: LiveStore, command: Command, enqueue: Enqueue) -> None:
        self.live = live
        self._command = command
        self._enqueue = enqueue
        self._locks: dict[str, asyncio.Lock] = {}

    # ------------------------------------------------------------ entering

    async def start_menu(self, worker: str, m: P.SipIncoming, tenant_id: int, menu: ivr.Menu) -> None:
        """The caller (answered) enters the menu: its prompt plays."""
        core = ivr.MenuCall(menu)
        state = MenuState(worker=worker, tenant_id=tenant_id, call=m, menu=dataclasses.asdict(menu))
        async with self._lock(key(worker, m.call_id)):
            core.start(time.time())
            await self._run(state, core)

    async def start_closed(self, worker: str, m: P.SipIncoming, tenant_id: int, prompt: str) -> None:
        """The caller (answered) hears that we are closed; the call ends once it has played."""
        log.info("SIP call %s to %r outside opening hours", m.call_id, m.to_user)
        state = MenuState(worker=worker, tenant_id=tenant_id, call=m, playing=0,
                          played_at=time.time() + _seconds(prompt) + PROMPT_TAIL)
        await self._command(worker, P.MediaCommand(op="prompt", session_id=_leg(m.call_id), prompts=[prompt]))
        await self._save(state)

    # ------------------------------------------------------------ inputs

    async def digits(self, worker: str, m: P.SipDtmf) -> bool:
        """Digits of a caller in a menu (or hearing the closed prompt): True when they were this module's."""
        k = key(worker, m.call_id)
        async with self._lock(k):
            state = await self._load(k)
            if state is None:
                return False
            if state.menu is None:
                return True  # closed: digits mean nothing
            core = self._core(state)
            now = time.time()
            for d in m.digits:
                core.digit(d, now)
            await self._run(state, core)
            return True

    async def ended(self, worker: str, call_id: str) -> bool:
        """The caller hung up: True when it was in a menu (there is no contact yet)."""
        k = key(worker, call_id)
        async with self._lock(k):
            if await self.live.map_get(SIP_MENUS, k) is None:
                return False
            await self.live.map_delete(SIP_MENUS, k)
            return True

    async def forget_worker(self, worker: str) -> None:
        """The worker went away with its calls."""
        for k, raw in (await self.live.map_all(SIP_MENUS)).items():
            if _dec.decode(raw).worker == worker:
                await self.live.map_delete(SIP_MENUS, k)

    async def tick(self, now: float, workers: Iterable[str]) -> None:
        """Run the timers that are due for the callers of `workers` (those connected to this hub)."""
        mine = set(workers)
        if not mine:
            return
        for k, raw in (await self.live.map_all(SIP_MENUS)).items():
            state = _dec.decode(raw)
            due = state.due()
            if state.worker not in mine or due is None or due > now:
                continue
            async with self._lock(k):
                state = await self._load(k)  # again, under the lock: an input may have moved it on
                if state is None or (state.due() or now + 1) > now:
                    continue
                await self._timeout(state, now)

    async def clock(self, workers: Callable[[], Iterable[str]]) -> None:
        """Run `tick` every TICK seconds for the workers connected now (a hub's background task)."""
        while True:
            await asyncio.sleep(TICK)
            try:
                await self.tick(time.time(), workers())
            except Exception:  # the store is away for a moment: the timers run on the next tick
                log.exception("menu timers failed")

    # ------------------------------------------------------------ inside

    async def _timeout(self, state: MenuState, now: float) -> None:
        if state.menu is None:
            # The closed prompt has played: goodbye.
            await self.live.map_delete(SIP_MENUS, key(state.worker, state.call.call_id))
            await self._command(state.worker, P.MediaCommand(op="sip-hangup", session_id=state.call.call_id, code=200,
                                                             reason="closed"))
            return
        core = self._core(state)
        if state.played_at is not None and now >= state.played_at:
            token, state.playing, state.played_at = state.playing, None, None
            core.prompt_done(token or 0, now)
        core.handle_timeout(now)
        await self._run(state, core)

    async def _run(self, state: MenuState, core: ivr.MenuCall) -> None:
        """Carry out the core's commands, then save the caller (or forget it: the menu is over)."""
        worker, m = state.worker, state.call
        k = key(worker, m.call_id)
        leg = _leg(m.call_id)
        for cmd in core.commands_out():
            match cmd:
                case ivr.PlayPrompt(name=name, token=token):
                    await self._command(worker, P.MediaCommand(op="prompt", session_id=leg, prompts=[name]))
                    state.playing, state.played_at = token, time.time() + _seconds(name) + PROMPT_TAIL
                case ivr.ChooseQueue(queue=queue):
                    log.info("SIP call %s chose %s (digits %r)", m.call_id, queue, core.digits)
                    await self.live.map_delete(SIP_MENUS, k)
                    await self._command(worker, P.MediaCommand(op="prompt", session_id=leg))
                    await self._enqueue(worker, m, state.tenant_id, queue, core.digits)
                    return
                case ivr.Hangup(reason=reason):
                    log.info("SIP call %s left the menu: %s (digits %r)", m.call_id, reason, core.digits)
                    await self.live.map_delete(SIP_MENUS, k)
                    await self._command(worker, P.MediaCommand(op="sip-hangup", session_id=m.call_id, code=200,
                                                               reason=reason))
                    return
        state.core = core.saved()
        await self._save(state)

    def _core(self, state: MenuState) -> ivr.MenuCall:
        assert state.menu is not None and state.core is not None, "a caller in a menu has its core"
        return ivr.MenuCall.restored(ivr.Menu.from_json(state.menu), state.core)

    async def _load(self, k: str) -> MenuState | None:
        raw = await self.live.map_get(SIP_MENUS, k)
        return _dec.decode(raw) if raw is not None else None

    async def _save(self, state: MenuState) -> None:
        await self.live.map_put(SIP_MENUS, key(state.worker, state.call.call_id), _enc.encode(state))

    def _lock(self, k: str) -> _KeyLock:
        return _KeyLock(self._locks, k)


class _KeyLock:
    """An asyncio lock per key, dropped when nobody holds or waits for it."""

    def __init__(self, locks: dict[str, asyncio.Lock], k: str) -> None:
        self.locks, self.k = locks, k

    async def __aenter__(self) -> None:
        lock = self.locks.setdefault(self.k, asyncio.Lock())
        await lock.acquire()

    async def __aexit__(self, *exc: object) -> None:
        lock = self.locks[self.k]
        lock.release()
        if not lock.locked() and not getattr(lock, "_waiters", None):
            del self.locks[self.k]


def _leg(call_id: str) -> str:
    return f"sip-{call_id}"


def _seconds(prompt: str) -> float:
    try:
        return sequence_seconds([prompt])
    except UnknownPrompt:
        log.error("no prompt %r: nothing is played", prompt)
        return 0.0
