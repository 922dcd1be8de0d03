"""Live call analytics in the media worker, from the audio already passing through the mixer.

For each analysed call (a caller's leg and the agent's softphone), every 20 ms tick measures the
frame each side sent this tick (the mixer's `current`: what the others hear of it, silence when
muted). A side talks while its frames' level is above SPEECH_DBFS, with a short hangover so the
gaps between words do not count as silence. Per call: each side's talk time, over-talk (both at
once), the current stretch of silence (neither talks) and the longest one, each side's level
(mean dBFS of its talking frames since the last report). Per side: frames missing when due (no
packet in time: loss or late arrival) and arrival jitter at the mixer's input.

Cost per tick: one float32 dot product of 160 samples per analysed side (a few microseconds);
load/bench_analytics.py measures it against the same load with analytics off.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from .audio import FRAME_SAMPLES, FRAME_SECONDS, SILENCE

SPEECH_DBFS = -42.0
HANGOVER_TICKS = 10  # 200 ms
# Ticks per measurement: every other tick's frames are measured and stand for both (40 ms resolution,
# plenty for talk and silence times and well inside the hangover), which halves the work.
STEP = 2
# Sum of squares of a frame at SPEECH_DBFS (RMS relative to full scale).
_THRESHOLD = (10 ** (SPEECH_DBFS / 10.0)) * (32768.0**2) * FRAME_SAMPLES
_SILENT = SILENCE


class _Side:
    """One side's counters between the arrays' rebuilds (see Analytics)."""

    __slots__ = ("leg", "hang", "talk_ticks", "energy", "energy_n", "late0", "received0")

    def __init__(self, leg: str) -> None:
        self.leg = leg
        self.hang = 0
        self.talk_ticks = 0
        self.energy = 0.0
        self.energy_n = 0
        self.late0 = 0
        self.received0 = 0

    def window(self, legs: dict[str, Any]) -> tuple[float | None, float, float]:
        """(level dBFS while talking, % of frames missing, jitter ms) since the last call; resets the window."""
        level = None
        if self.energy_n:
            rms = math.sqrt(self.energy / self.energy_n / FRAME_SAMPLES)
            level = round(20.0 * math.log10(max(rms, 1e-9) / 32768.0), 1)
        self.energy, self.energy_n = 0.0, 0
        leg = legs.get(self.leg)
        if leg is None:
            return level, 0.0, 0.0
        buf = leg.inbound
        late, received = buf.late - self.late0, buf.received - self.received0
        self.late0, self.received0 = buf.late, buf.received
        missing = 100.0 * late / (late + received) if late + received else 0.0
        return level, round(missing, 2), round(buf.jitter * 1000.0, 2)


class CallMeter:
    __slots__ = ("id", "caller", "agent", "ticks", "overtalk", "silence", "longest_silence")

    def __init__(self, caller: str, agent: str) -> None:
        self.id = caller
        self.caller = _Side(caller)
        self.agent = _Side(agent)
        self.ticks = 0
        self.overtalk = 0
        self.silence = 0
        self.longest_silence = 0


class Analytics:
    """The worker's analysed calls, stepped by the mixer's clock (`tick`) and reported (`report`).

    The per-tick work is vectorised over every analysed side: the frames are gathered into one
    array, their energies computed in one operation and the talk/silence counters kept in arrays
    (built from the CallMeters when calls or legs change, written back before a report).
    """

    def __init__(self) -> None:
        self.calls: dict[str, CallMeter] = {}
        self._dirty = True
        self._legs_seen: dict[str, Any] = {}
        self._sides: list[_Side] = []
        self._leg_objs: list[Any] = []
        self._version: int | None = None
        self._phase = 0

    def add(self, caller: str, agent: str) -> None:
        """Analyse the call of `caller`'s leg with `agent`'s session (again: start over with the new agent)."""
        old = self.calls.get(caller)
        if old is not None and old.agent.leg == agent:
            return
        self._sync()
        self.calls[caller] = CallMeter(caller, agent)
        self._dirty = True

    def remove(self, caller: str) -> None:
        self._sync()
        if self.calls.pop(caller, None) is not None:
            self._dirty = True

    def _build(self, legs: dict[str, Any]) -> None:
        meters = list(self.calls.values())
        self._meters = meters
        self._sides = [s for m in meters for s in (m.caller, m.agent)]
        self._leg_objs = [legs.get(s.leg) for s in self._sides]
        self._legs_seen = {s.leg: legs.get(s.leg) for s in self._sides}
        self._hang = np.array([s.hang for s in self._sides], dtype=np.int32)
        self._talk = np.array([s.talk_ticks for s in self._sides], dtype=np.int64)
        self._energy = np.array([s.energy for s in self._sides], dtype=np.float64)
        self._energy_n = np.array([s.energy_n for s in self._sides], dtype=np.int64)
        self._ticks = np.array([m.ticks for m in meters], dtype=np.int64)
        self._overtalk = np.array([m.overtalk for m in meters], dtype=np.int64)
        self._silence = np.array([m.silence for m in meters], dtype=np.int64)
        self._longest = np.array([m.longest_silence for m in meters], dtype=np.int64)
        self._dirty = False

    def _sync(self) -> None:
        """Write the arrays back into the CallMeters (before a report or a change of calls)."""
        if self._dirty or not self._sides:
            return
        for i, s in enumerate(self._sides):
            s.hang, s.talk_ticks = int(self._hang[i]), int(self._talk[i])
            s.energy, s.energy_n = float(self._energy[i]), int(self._energy_n[i])
        for j, m in enumerate(self._meters):
            m.ticks, m.overtalk = int(self._ticks[j]), int(self._overtalk[j])
            m.silence, m.longest_silence = int(self._silence[j]), int(self._longest[j])

    def tick(self, legs: dict[str, Any], version: int | None = None) -> None:
        """One tick; `version` (the mixer's, bumped when legs come and go) saves looking the legs up."""
        self._phase = (self._phase + 1) % STEP
        if self._phase:
            return  # measured on the next tick, which stands for this one too
        if self._dirty or version is None or version != self._version:
            if self._dirty or any(legs.get(k) is not v for k, v in self._legs_seen.items()):
                self._sync()
                self._build(legs)
            self._version = version
        # Energy from every other sample: an unbiased estimate of the frame's mean square at half the work.
        x = np.array([_SILENT if leg is None else leg.current for leg in self._leg_objs])[:, ::2].astype(np.float32)
        e = np.einsum("ij,ij->i", x, x) * 2.0
        active = e > _THRESHOLD
        hang = self._hang
        np.subtract(hang, 1, out=hang)
        np.maximum(hang, 0, out=hang)
        hang[active] = HANGOVER_TICKS // STEP + 1  # this measurement, then the hangover's worth more
        talking = hang > 0
        self._talk += STEP * talking
        self._energy += np.where(active, e, 0.0)
        self._energy_n += active
        caller, agent = talking[0::2], talking[1::2]
        self._ticks += STEP
        self._overtalk += STEP * (caller & agent)
        quiet = ~(caller | agent)
        self._silence += STEP
        self._silence *= quiet
        np.maximum(self._longest, self._silence, out=self._longest)

    def report(self, legs: dict[str, Any]) -> list[dict[str, Any]]:
        """Each call's figures so far (seconds), and its sides' levels, missing frames and jitter since the last report."""
        self._sync()
        out = []
        t = FRAME_SECONDS
        for m in list(self.calls.values()):
            if m.caller.leg not in legs:
                del self.calls[m.id]  # the caller's leg is gone: the call is over here
                self._dirty = True
                continue
            c_level, c_missing, c_jitter = m.caller.window(legs)
            a_level, a_missing, a_jitter = m.agent.window(legs)
            out.append(
                {
                    "leg": m.id, "peer": m.agent.leg, "seconds": round(m.ticks * t, 2),
                    "caller_talk": round(m.caller.talk_ticks * t, 2), "agent_talk": round(m.agent.talk_ticks * t, 2),
                    "overtalk": round(m.overtalk * t, 2), "silence": round(m.silence * t, 2),
                    "longest_silence": round(m.longest_silence * t, 2),
                    "caller_level_db": c_level, "agent_level_db": a_level,
                    "caller_missing_pct": c_missing, "agent_missing_pct": a_missing,
                    "caller_jitter_ms": c_jitter, "agent_jitter_ms": a_jitter,
                }
            )
        # The windows were reset in the meters: the arrays take them again.
        self._dirty = True
        return out
