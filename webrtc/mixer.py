"""Legs, routing and the engine-wide 20 ms clock. No aiortc here.

A *leg* is one party's audio in the media worker: a browser softphone
(aiortc), later a SIP call (pjsua2), or a probe in a test. Each leg has an
inbound `FrameBuffer` that its network side fills, and an outbound queue of
mixed frames that its network side drains. What a leg hears is its list of
`Input`s: other legs' inbound audio or sources (player, tone), each with a
gain. Listen, whisper, barge and conferences are just input lists.

One ticker task drives every leg: each 20 ms tick it pops exactly one frame
from every inbound buffer into that leg's *current* slot, then computes every
leg's mix from the current slots, so any number of listeners read the same
frame of a speaker in the same tick (nobody pops anyone else's buffer), and
all legs share one clock (no per-leg timers drifting against each other).
"""

from __future__ import annotations

import asyncio
import collections
import logging
from dataclasses import dataclass
from os import PathLike
from typing import TYPE_CHECKING, Any, Callable

import numpy as np

from .audio import FRAME_SAMPLES, FRAME_SECONDS, SILENCE, FrameBuffer, MediaError, Slack, Source, WavPlayer

if TYPE_CHECKING:
    from .recorder import Tap

log = logging.getLogger(__name__)

# Mixed frames a leg's sender may fall behind by before the oldest is dropped.
OUT_DEPTH = 3
# Ticks the clock replays after a stall; a longer stall is skipped, not replayed.
MAX_CATCH_UP = 5


@dataclass(frozen=True)
class Input:
    """One thing a leg hears: another leg's voice or a source, with a gain."""

    leg: str | None = None
    "Id of the leg whose inbound audio is heard."
    source: Source | None = None
    "A source heard instead (player, tone); exactly one of `leg`, `source`."
    gain: float = 1.0
    "Linear gain applied before summing (0.5 ≈ -6 dB)."

    def __post_init__(self) -> None:
        assert (self.leg is None) != (self.source is None), "an Input is either a leg or a source"
        assert self.gain >= 0.0, f"gain {self.gain} must be >= 0"


@dataclass
class ClockStats:
    """How well the engine's 20 ms ticker kept time."""

    ticks: int
    "Ticks run since the clock started."
    late_ticks: int
    "Ticks that ran more than one frame (20 ms) after their due time."
    skipped_ticks: int
    "Ticks dropped after a stall longer than the catch-up window."
    max_lag_ms: float
    "Worst lateness of a tick."
    mean_lag_ms: float
    "Average lateness of a tick."


class Leg:
    """A party's audio: inbound buffer → current frame; inputs → mix → outbound queue."""

    def __init__(self, leg_id: str) -> None:
        self.id = leg_id
        self.inbound = FrameBuffer()
        self.current: np.ndarray = SILENCE
        self.inputs: list[Input] = []
        self.muted = False
        self.hold_source: Source | None = None
        self.overlay: Input | None = None
        self.out: collections.deque[tuple[int, np.ndarray]] = collections.deque()
        self.out_dropped = 0
        self.consuming = False
        self.waiter: asyncio.Future[None] | None = None
        # Takes each mixed frame on the ticker in place of the queue (a softphone's direct send path).
        self.sink: Callable[[int, np.ndarray], None] | None = None
        self._acc = np.zeros(FRAME_SAMPLES, dtype=np.float32)

    def deliver(self, tick: int, frame: np.ndarray) -> None:
        sink = self.sink
        if sink is not None:
            try:
                sink(tick, frame)
            except Exception:  # one leg's failing send must not stop the clock for every other leg
                self.out_dropped += 1
                if self.out_dropped == 1 or self.out_dropped % 500 == 0:
                    log.exception("leg %s: sending a mixed frame failed (%d so far)", self.id, self.out_dropped)
            return
        if len(self.out) >= OUT_DEPTH:
            self.out.popleft()
            if self.consuming:
                self.out_dropped += 1
        self.out.append((tick, frame))
        waiter = self.waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    async def next_frame(self) -> tuple[int, np.ndarray]:
        """Wait for the next mixed frame: (tick, 160 int16 samples; read-only, do not keep)."""
        self.consuming = True
        while not self.out:
            self.waiter = asyncio.get_running_loop().create_future()
            try:
                await self.waiter
            finally:
                self.waiter = None
        return self.out.popleft()


class LegPort:
    """The handle a non-WebRTC leg (SIP, a test probe) uses to move its audio.

    `push` inbound frames as they arrive (any thread); take outbound frames
    with `pull` (sync, never blocks: silence when none is ready) or
    `await next_frame()` (paced by the engine's clock).
    """

    def __init__(self, leg: Leg) -> None:
        self._leg = leg
        self.id = leg.id
        self._slack = Slack()

    def push(self, frame: np.ndarray) -> None:
        """Queue one inbound frame of 160 int16 samples (copied)."""
        if frame.shape != (FRAME_SAMPLES,):
            raise MediaError(f"leg {self.id!r}: a frame holds {FRAME_SAMPLES} samples, got shape {frame.shape}")
        self._leg.inbound.push(np.array(frame, dtype=np.int16))

    def pull(self) -> np.ndarray:
        """The oldest mixed frame not yet taken, or silence.

        Read at the far side's own pace (pjsua's media clock): a frame more than that pace needed for
        a whole window (`Slack`) is dropped, so a stall of either clock does not leave the call's
        audio that much later for good."""
        leg = self._leg
        leg.consuming = True
        out = leg.out
        if self._slack.see(len(out)):
            out.popleft()
            leg.out_dropped += 1
        return out.popleft()[1] if out else SILENCE

    def deliver_to(self, sink: Callable[[int, np.ndarray], None] | None) -> None:
        """Hand each mixed frame to `sink(tick, frame)` on the clock's tick, in place of `pull` and
        `next_frame` (None: back to the queue). The frame is read-only; the sink must not block."""
        self._leg.sink = sink

    async def next_frame(self) -> np.ndarray:
        """Wait for the next mixed frame."""
        return (await self._leg.next_frame())[1]


class Mixer:
    """All legs, their routing, and the ticker that moves their audio every 20 ms."""

    def __init__(self) -> None:
        self.legs: dict[str, Leg] = {}
        self.tick = 0
        self._task: asyncio.Task[None] | None = None
        self._players: dict[str, WavPlayer] = {}
        self._lags_sum = 0.0
        self._late_ticks = 0
        self._skipped = 0
        self._max_lag = 0.0
        self.on_tick: Callable[[int], None] | None = None
        # Live call analytics (webrtc/analytics.py), stepped each tick once the frames are popped.
        self.analytics: Any = None
        # Bumped whenever a leg comes or goes.
        self.version = 0
        # Shown every leg's current frame once per tick (recorders); they must only keep references.
        self.taps: dict[str, Tap] = {}

    # ------------------------------------------------------------ legs

    def add(self, leg_id: str) -> Leg:
        if leg_id in self.legs:
            raise MediaError(f"leg {leg_id!r} already exists")
        leg = Leg(leg_id)
        self.legs[leg_id] = leg
        self.version += 1
        self._ensure_running()
        return leg

    def remove(self, leg_id: str) -> None:
        leg = self.legs.pop(leg_id, None)
        if leg is None:
            return
        self.version += 1
        # Nobody keeps hearing a leg that has gone.
        for other in self.legs.values():
            if any(i.leg == leg_id for i in other.inputs):
                other.inputs = [i for i in other.inputs if i.leg != leg_id]
        if leg.waiter is not None and not leg.waiter.done():
            leg.waiter.cancel()

    def get(self, leg_id: str) -> Leg:
        leg = self.legs.get(leg_id)
        if leg is None:
            raise MediaError(f"unknown session or leg {leg_id!r}")
        return leg

    # ------------------------------------------------------------ routing

    def set_inputs(self, leg_id: str, inputs: list[Input]) -> None:
        leg = self.get(leg_id)
        for i in inputs:
            if not isinstance(i, Input):
                raise MediaError(f"inputs of {leg_id!r}: {i!r} is not an Input")
            if i.leg is not None and i.leg not in self.legs:
                raise MediaError(f"inputs of {leg_id!r}: unknown session or leg {i.leg!r}")
        leg.inputs = list(inputs)

    def connect(self, a: str, b: str) -> None:
        self.get(a), self.get(b)
        if a == b:
            raise MediaError(f"cannot connect {a!r} to itself")
        self.set_inputs(a, [Input(leg=b)])
        self.set_inputs(b, [Input(leg=a)])

    def disconnect(self, leg_id: str) -> None:
        leg = self.get(leg_id)
        leg.inputs = []
        for other in self.legs.values():
            if any(i.leg == leg_id for i in other.inputs):
                other.inputs = [i for i in other.inputs if i.leg != leg_id]

    def mute(self, leg_id: str, on: bool) -> None:
        self.get(leg_id).muted = bool(on)

    def hold(self, leg_id: str, moh: str | PathLike[str] | Source | None) -> None:
        leg = self.get(leg_id)
        if moh is None:
            source: Source = _SILENT
        elif isinstance(moh, (str, PathLike)):
            source = self.player(moh)
        else:
            source = moh
        leg.hold_source = source

    def unhold(self, leg_id: str) -> None:
        self.get(leg_id).hold_source = None

    def play(self, leg_id: str, source: Source | str | PathLike[str], gain: float = 1.0) -> Source:
        leg = self.get(leg_id)
        if isinstance(source, (str, PathLike)):
            source = WavPlayer(source, loop=False)
        rewind = getattr(source, "rewind", None)
        if rewind is not None:
            rewind()
        leg.overlay = Input(source=source, gain=gain)
        return source

    def stop_playing(self, leg_id: str) -> None:
        self.get(leg_id).overlay = None

    def player(self, path: str | PathLike[str]) -> WavPlayer:
        """A looping player per file, loaded once and shared (every held call hears the same stream)."""
        key = str(path)
        player = self._players.get(key)
        if player is None:
            player = self._players[key] = WavPlayer(key, loop=True)
        return player

    # ------------------------------------------------------------ the clock

    def _ensure_running(self) -> None:
        if self._task is None or self._task.done():
            self._task = asyncio.get_running_loop().create_task(self._run(), name="media-ticker")

    async def stop(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            try:
                await task
            except asyncio.CancelledError:
                pass

    def clock_stats(self) -> ClockStats:
        ran = max(1, self.tick)
        return ClockStats(
            ticks=self.tick,
            late_ticks=self._late_ticks,
            skipped_ticks=self._skipped,
            max_lag_ms=self._max_lag * 1000.0,
            mean_lag_ms=self._lags_sum / ran * 1000.0,
        )

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        start = loop.time()
        done = 0  # ticks since start that have run (or been skipped)
        while True:
            due = start + (done + 1) * FRAME_SECONDS
            delay = due - loop.time()
            if delay > 0:
                await asyncio.sleep(delay)
            lag = loop.time() - due
            behind = int(lag / FRAME_SECONDS)
            if behind:
                # Late: let the pumps push what arrived meanwhile (their callbacks are
                # queued behind us) before this tick pops the buffers.
                await asyncio.sleep(0)
            if behind > MAX_CATCH_UP:
                # A long stall: replaying it would only flood the senders' queues.
                self._skipped += behind
                done += behind
                lag -= behind * FRAME_SECONDS
            done += 1
            self._lags_sum += lag
            if lag > FRAME_SECONDS:
                self._late_ticks += 1
            if lag > self._max_lag:
                self._max_lag = lag
            self.run_tick()

    def run_tick(self) -> None:
        """Advance one 20 ms tick: take one inbound frame per leg, then mix and deliver."""
        self.tick += 1
        tick = self.tick
        legs = self.legs
        for leg in legs.values():
            frame = leg.inbound.pop()
            leg.current = SILENCE if leg.muted else frame
        analytics = self.analytics
        if analytics is not None and analytics.calls:
            analytics.tick(legs, self.version)
        if self.taps:
            for tap in self.taps.values():
                tap.capture(legs)
        for leg in legs.values():
            leg.deliver(tick, self._mix(leg, tick))
        if self.on_tick is not None:
            self.on_tick(tick)

    def _mix(self, leg: Leg, tick: int) -> np.ndarray:
        legs = self.legs
        parts: list[tuple[np.ndarray, float]] = []
        if leg.hold_source is None:
            # A held leg hears nothing of its call (only what is played to it).
            for i in leg.inputs:
                if i.leg is not None:
                    speaker = legs.get(i.leg)
                    if speaker is None:
                        continue
                    frame = speaker.current if speaker.hold_source is None else speaker.hold_source.frame(tick)
                else:
                    frame = i.source.frame(tick)  # type: ignore[union-attr]
                parts.append((frame, i.gain))
        overlay = leg.overlay
        if overlay is not None:
            source = overlay.source
            parts.append((source.frame(tick), overlay.gain))  # type: ignore[union-attr]
            finished = getattr(source, "finished", None)
            if finished is not None and finished(tick + 1):
                leg.overlay = None
        if not parts:
            return SILENCE
        if len(parts) == 1 and parts[0][1] == 1.0:
            return parts[0][0]
        acc = leg._acc
        frame, gain = parts[0]
        np.multiply(frame, gain, out=acc, casting="unsafe")
        for frame, gain in parts[1:]:
            if gain == 1.0:
                np.add(acc, frame, out=acc, casting="unsafe")
            else:
                acc += frame * np.float32(gain)
        np.clip(acc, -32768, 32767, out=acc)
        # A fresh array: the frame may wait in the outbound queue past the next tick.
        return acc.astype(np.int16)


class _Silent:
    def frame(self, tick: int) -> np.ndarray:
        return SILENCE


_SILENT = _Silent()
