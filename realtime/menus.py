"""Callers in a menu, or hearing that we are closed, kept in the live store so any hub can lead them.

A caller's place in a menu (realtime/ivr.py `MenuCall.saved()`), the prompt
playing and when it will have played, and the call itself live in the map
`sip-menus`: "<worker>|<call id>" → `MenuState`. Whichever hub receives the
call's next `sip-dtmf` (or `sip-ended`) loads it, feeds the pure core, writes
the result back with a compare-and-set of what it loaded (`map_swap`), and only
then carries out its commands: a decision taken on a state another hub has
replaced meanwhile is refused, taken again on the new state, and sends nothing. Timers (a prompt that has played, the
silence after it) are run by the hub the call's worker is connected to: each
hub looks at the map five to ten times a second for its own workers' callers.
So when the hub that answered the call stops, and the worker reconnects to
another hub, that hub resumes the menu where it was.

Within a hub, one caller's inputs are handled one at a time (a lock per call);
across hubs, a worker's frames all reach the one hub it is connected to, except
while it moves from one hub to another, which the compare-and-set covers.
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
# Reads and decisions again when another hub changed a caller's menu in between (compare-and-set).
SWAP_TRIES = 20


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
            if not await self._run(state, core, None):
                log.warning("SIP call %s is in a menu already: not started again", m.call_id)

    async def start_closed(self, worker: str, m: P.SipIncoming, tenant_id: int, prompt: str) -> None:
        """The caller (answered) hears that we are closed; the call ends once it has played."""
        log.info("SIP call %s to %r outside opening hours", m.call_id, m.to_user)
        state = MenuState(worker=worker, tenant_id=tenant_id, call=m, playing=0,
                          played_at=time.time() + _seconds(prompt) + PROMPT_TAIL)
        if await self.live.map_swap(SIP_MENUS, key(worker, m.call_id), None, _enc.encode(state)):
            await self._command(worker, P.MediaCommand(op="prompt", session_id=_leg(m.call_id), prompts=[prompt]))

    # ------------------------------------------------------------ inputs

    async def digits(self, worker: str, m: P.SipDtmf) -> bool:
        """Digits of a caller in a menu (or hearing the closed prompt): True when they were this module's."""
        k = key(worker, m.call_id)
        async with self._lock(k):
            for _ in range(SWAP_TRIES):
                raw = await self.live.map_get(SIP_MENUS, k)
                if raw is None:
                    return False
                state = _dec.decode(raw)
                if state.menu is None:
                    return True  # closed: digits mean nothing
                core = self._core(state)
                now = time.time()
                for d in m.digits:
                    core.digit(d, now)
                if await self._run(state, core, raw):
                    return True
            log.error("SIP call %s: the menu kept changing under its digits %r", m.call_id, m.digits)
            return True

    async def ended(self, worker: str, call_id: str) -> bool:
        """The caller hung up: True when it was in a menu (there is no contact yet)."""
        k = key(worker, call_id)
        async with self._lock(k):
            for _ in range(SWAP_TRIES):
                raw = await self.live.map_get(SIP_MENUS, k)
                if raw is None:
                    return False
                if await self.live.map_swap(SIP_MENUS, k, raw, None):
                    return True
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
                for _ in range(SWAP_TRIES):
                    raw = await self.live.map_get(SIP_MENUS, k)  # again, under the lock: an input may have moved it on
                    if raw is None:
                        break
                    state = _dec.decode(raw)
                    if (state.due() or now + 1) > now or await self._timeout(state, now, raw):
                        break

    async def clock(self, workers: Callable[[], Iterable[str]]) -> None:
        """Run `tick` every TICK seconds for the workers connected now (a hub's background task)."""
        while True:
            await asyncio.sleep(TICK)
            try:
                await self.tick(time.time(), workers())
            except Exception:  # the store is away for a moment: the timers run on the next tick
                log.exception("menu timers failed")

    # ------------------------------------------------------------ inside

    async def _timeout(self, state: MenuState, now: float, raw: bytes) -> bool:
        """A timer of the caller is due; False when the state changed since `raw` was read."""
        if state.menu is None:
            # The closed prompt has played: goodbye.
            if not await self.live.map_swap(SIP_MENUS, key(state.worker, state.call.call_id), raw, None):
                return False
            await self._command(state.worker, P.MediaCommand(op="sip-hangup", session_id=state.call.call_id, code=200,
                                                             reason="closed"))
            return True
        core = self._core(state)
        if state.played_at is not None and now >= state.played_at:
            token, state.playing, state.played_at = state.playing, None, None
            core.prompt_done(token or 0, now)
        core.handle_timeout(now)
        return await self._run(state, core, raw)

    async def _run(self, state: MenuState, core: ivr.MenuCall, raw: bytes | None) -> bool:
        """Save the caller as the core leaves it (or forget it: the menu is over), if the stored state is
        still `raw` (None: a new caller); then carry out the core's commands. False, with nothing sent,
        when another hub changed the caller in between: the input is decided again on what it wrote."""
        worker, m = state.worker, state.call
        leg = _leg(m.call_id)
        sends: list[P.MediaCommand] = []
        end: ivr.ChooseQueue | ivr.Hangup | None = None
        for cmd in core.commands_out():
            match cmd:
                case ivr.PlayPrompt(name=name, token=token):
                    sends.append(P.MediaCommand(op="prompt", session_id=leg, prompts=[name]))
                    state.playing, state.played_at = token, time.time() + _seconds(name) + PROMPT_TAIL
                case ivr.ChooseQueue() | ivr.Hangup():
                    end = cmd
                    break
        state.core = core.saved()
        if not await self.live.map_swap(SIP_MENUS, key(worker, m.call_id), raw, None if end else _enc.encode(state)):
            return False
        for c in sends:
            await self._command(worker, c)
        match end:
            case ivr.ChooseQueue(queue=queue):
                log.info("SIP call %s chose %s (digits %r)", m.call_id, queue, core.digits)
                await self._command(worker, P.MediaCommand(op="prompt", session_id=leg))
                await self._enqueue(worker, m, state.tenant_id, queue, core.digits)
            case ivr.Hangup(reason=reason):
                log.info("SIP call %s left the menu: %s (digits %r)", m.call_id, reason, core.digits)
                await self._command(worker, P.MediaCommand(op="sip-hangup", session_id=m.call_id, code=200,
                                                           reason=reason))
        return True

    def _core(self, state: MenuState) -> ivr.MenuCall:
        assert state.menu is not None and state.core is not None, "a caller in a menu has its core"
        return ivr.MenuCall.restored(ivr.Menu.from_json(state.menu), state.core)

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
