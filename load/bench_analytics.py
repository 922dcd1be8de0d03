#!/usr/bin/env python
"""What live call analytics and monitoring cost the media worker, against the same load without them.

    python load/bench_analytics.py                 # 200 calls, 20 monitored, 5 rounds of 500 ticks
    python load/bench_analytics.py --quick         # smoke run: 20 calls, 2 monitored, 2 rounds of 100 ticks

World: one process, the worker's real mixer (webrtc/mixer.py) and analytics (webrtc/analytics.py),
driven tick by tick without the event loop's sleeps (so the figure is the work, not the timer): each
tick every leg gets one inbound frame (as its network side would push it: a caller who talks half the
time, an agent who talks a third of it), the mixer pops, mixes and delivers, and the outbound queues
are drained. Three configurations run interleaved, `--rounds` times each:

- **base**: N calls (caller leg ⇄ agent leg), analytics off, nobody monitored;
- **analytics**: the same, every call analysed;
- **monitored**: the same as analytics, plus M supervisors whispering (each hears caller and agent,
  the agent hears the caller and the supervisor) — the costliest mode for the mixer;
- **codec** and **codec+analytics**: base and analytics with each leg's inbound G.711 payload decoded
  and its outbound frame encoded every tick (the worker's own per-frame codec work for a softphone).

Printed: CPU microseconds per call per second of audio (median of the rounds) for each, the extra CPU
of analytics per call and its ratio to the base (the issue's aim: at most 10 % more), and the extra CPU
per monitored call. Both bases leave out the network stacks (aiortc's RTP/SRTP, pjsua2), which a real
call also costs, so even the codec ratio overstates the share analytics takes of a real call's CPU.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import numpy as np  # noqa: E402

from webrtc.analytics import Analytics  # noqa: E402
from webrtc.audio import FRAME_SAMPLES, G711Decoder, G711Encoder  # noqa: E402
from webrtc.mixer import Input, Mixer  # noqa: E402
from webrtc.tones import tone  # noqa: E402

TICKS_PER_S = 50


def build(calls: int, monitored: int, analytics: bool) -> tuple[Mixer, list[tuple[str, str]]]:
    m = Mixer()
    pairs = []
    for i in range(calls):
        a, b = f"sip-c{i}", f"1-{i}"
        m.add(a)
        m.add(b)
        m.connect(a, b)
        pairs.append((a, b))
    if analytics:
        m.analytics = Analytics()
        for a, b in pairs:
            m.analytics.add(a, b)
    for i in range(monitored):
        a, b = pairs[i]
        s = f"1-s{i}"
        m.add(s)
        m.set_inputs(s, [Input(leg=a), Input(leg=b)])
        m.set_inputs(b, [Input(leg=a), Input(leg=s)])
    return m, pairs


def run(m: Mixer, ticks: int, speech: np.ndarray, quiet: np.ndarray, codec: bool = False) -> float:
    """CPU seconds for `ticks` ticks of the mixer with every leg fed and drained (with `codec`: each leg's
    inbound G.711 payload decoded and its outbound frame encoded, the worker's per-frame codec work)."""
    legs = list(m.legs.values())
    dec, enc = G711Decoder("audio/PCMU"), G711Encoder("audio/PCMU")
    payloads = (enc.encode(speech), enc.encode(quiet))
    t0 = time.process_time()
    for t in range(ticks):
        for k, leg in enumerate(legs):
            # Callers talk half the time, agents a third, in turns that differ per leg.
            talk = ((t + 7 * k) // 50) % (2 if k % 2 == 0 else 3) == 0
            if codec:
                leg.inbound.push(dec.decode(payloads[0 if talk else 1])[0])
            else:
                leg.inbound.push(speech if talk else quiet)
        m.run_tick()
        for leg in legs:
            if codec:
                for _, frame in leg.out:
                    enc.encode(frame)
            leg.out.clear()
    return time.process_time() - t0


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--calls", type=int, default=200)
    p.add_argument("--monitored", type=int, default=20)
    p.add_argument("--ticks", type=int, default=500, help="ticks per round (500 = 10 s of audio)")
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--quick", action="store_true")
    p.add_argument("--json", action="store_true")
    a = p.parse_args(argv)
    if a.quick:
        a.calls, a.monitored, a.ticks, a.rounds = 20, 2, 100, 2
    speech = tone(440.0, FRAME_SAMPLES, amplitude=0.3)
    quiet = (np.random.default_rng(1).normal(0, 20, FRAME_SAMPLES)).astype(np.int16)  # line noise, not speech
    configs = {
        "base": (False, 0, False),
        "analytics": (True, 0, False),
        "monitored": (True, a.monitored, False),
        "codec": (False, 0, True),
        "codec+analytics": (True, 0, True),
    }
    cpu: dict[str, list[float]] = {k: [] for k in configs}

    async def one(analytics: bool, monitored: int, codec: bool) -> float:
        # Built on a loop (the mixer starts its ticker task there), run by hand without yielding to it,
        # then stopped: the ticker never runs beside the measured loop.
        m, _ = build(a.calls, monitored, analytics)
        try:
            run(m, 20, speech, quiet, codec)  # warm-up
            return run(m, a.ticks, speech, quiet, codec)
        finally:
            await m.stop()

    for r in range(a.rounds):
        for name, (analytics, monitored, codec) in configs.items():
            cpu[name].append(asyncio.run(one(analytics, monitored, codec)))
        if not a.json:
            print(f"round {r + 1}/{a.rounds}: " + ", ".join(f"{k} {v[-1]:.3f} s" for k, v in cpu.items()), flush=True)
    seconds_of_audio = a.ticks / TICKS_PER_S
    per_call = {k: statistics.median(v) / seconds_of_audio / a.calls * 1e6 for k, v in cpu.items()}
    extra_analytics = per_call["analytics"] - per_call["base"]
    extra_monitor = (per_call["monitored"] - per_call["analytics"]) * a.calls / max(1, a.monitored)
    result = {
        "calls": a.calls,
        "monitored": a.monitored,
        "cpu_us_per_call_per_s": {k: round(v, 1) for k, v in per_call.items()},
        "analytics_extra_us_per_call_per_s": round(extra_analytics, 1),
        "analytics_ratio_to_base": round(per_call["analytics"] / per_call["base"], 3),
        "monitor_extra_us_per_monitored_call_per_s": round(extra_monitor, 1),
        "monitored_ratio_to_analytics": round(per_call["monitored"] / per_call["analytics"], 3),
        "analytics_ratio_with_codec": round(per_call["codec+analytics"] / per_call["codec"], 3),
    }
    if a.json:
        print(json.dumps(result))
        return 0
    print()
    print(f"{a.calls} calls, {a.monitored} monitored (whisper), {a.rounds} rounds of {seconds_of_audio:.0f} s of audio")
    for k, v in per_call.items():
        print(f"  {k:10s} {v:8.1f} µs CPU per call per second")
    print(f"  analytics: +{extra_analytics:.1f} µs per call per second; ratio to the mixer alone"
          f" {result['analytics_ratio_to_base']:.3f}, to the mixer with G.711 on every leg"
          f" {result['analytics_ratio_with_codec']:.3f} (aim ≤ 1.10)")
    print(f"  monitoring: +{extra_monitor:.1f} µs per monitored call per second")
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
