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
# Sum of squares of a frame at SPEECH_DBFS (RMS relative to full scale).
_THRESHOLD = (10 ** (SPEECH_DBFS / 10.0)) * (32768.0**2) * FRAME_SAMPLES


class _Side:
    __slots__ = ("leg", "hang", "talk_ticks", "energy", "energy_n", "late0", "received0")

    def __init__(self, leg: str) -> None:
        self.leg = leg
        self.hang = 0
        self.talk_ticks = 0
        self.energy = 0.0
        self.energy_n = 0
        self.late0 = 0
        self.received0 = 0

    def step(self, legs: dict[str, Any]) -> bool:
        leg = legs.get(self.leg)
        if leg is None:
            return False
        frame = leg.current
        if frame is SILENCE:
            e = 0.0
        else:
            x = frame.astype(np.float32)
            e = float(np.dot(x, x))
        if e > _THRESHOLD:
            self.hang = HANGOVER_TICKS + 1  # this tick, then HANGOVER_TICKS more
            self.energy += e
            self.energy_n += 1
        elif self.hang:
            self.hang -= 1
        if self.hang:
            self.talk_ticks += 1
            return True
        return False

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
    """The worker's analysed calls, stepped by the mixer's clock (`tick`) and reported (`report`)."""

    def __init__(self) -> None:
        self.calls: dict[str, CallMeter] = {}

    def add(self, caller: str, agent: str) -> None:
        """Analyse the call of `caller`'s leg with `agent`'s session (again: start over with the new agent)."""
        old = self.calls.get(caller)
        if old is not None and old.agent.leg == agent:
            return
        self.calls[caller] = CallMeter(caller, agent)

    def remove(self, caller: str) -> None:
        self.calls.pop(caller, None)

    def tick(self, legs: dict[str, Any]) -> None:
        for m in self.calls.values():
            a = m.caller.step(legs)
            b = m.agent.step(legs)
            m.ticks += 1
            if a and b:
                m.overtalk += 1
            if a or b:
                m.silence = 0
            else:
                m.silence += 1
                if m.silence > m.longest_silence:
                    m.longest_silence = m.silence

    def report(self, legs: dict[str, Any]) -> list[dict[str, Any]]:
        """Each call's figures so far (seconds), and its sides' levels, missing frames and jitter since the last report."""
        out = []
        t = FRAME_SECONDS
        for m in list(self.calls.values()):
            if m.caller.leg not in legs:
                del self.calls[m.id]  # the caller's leg is gone: the call is over here
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
        return out
