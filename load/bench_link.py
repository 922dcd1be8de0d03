"""The delay an audio link between two media workers adds (webrtc/link.py).

    python load/bench_link.py                # 40 tone onsets
    python load/bench_link.py --onsets 100

Two processes, each a `MediaEngine` with its own 20 ms clock and a
`LinkEndpoint` on loopback, linked as the hub links a caller's worker (A)
to an agent's (B). On A a caller leg gets a frame pushed every 20 ms, as
pjsua's media clock pushes a SIP call's frames: 300 ms of silence, then
300 ms of 1000 Hz, repeated. Two probes time each tone onset, the moment
the first frame carrying the tone leaves the engine's mix (the onset
sample's place within that frame counted), minus the moment the frame was
pushed:

- direct: a probe on A hearing the caller (a caller and a softphone on one worker);
- linked: a probe on B hearing B's link leg (A's link leg hears the caller).

Both run in the same pass over the same onsets. Printed: p50, p90 and max of
each, and what the link adds (linked minus direct, per onset). Timestamps
are `time.monotonic()`, which is system-wide on Linux, so the two processes'
figures compare.
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing as mp
import statistics
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(HERE.parent)]

import numpy as np  # noqa: E402

LINK_ID, KEY = "0123456789abcdef", "00112233445566778899aabbccddeeff"
ON, OFF = 15, 15  # frames of tone, of silence
THRESHOLD = 1000.0  # peak amplitude counted as tone (the tone's is ~9800)


def onset_time(frame: np.ndarray, at: float) -> float | None:
    """When the tone starts in a frame handed out at `at`: then plus its first loud sample's place."""
    loud = np.flatnonzero(np.abs(frame.astype(np.int32)) > THRESHOLD)
    if not len(loud):
        return None
    return at + loud[0] / 8000.0


async def probe(port, sink: list[float], stop: asyncio.Event) -> None:
    """Onsets heard by a probe (frames handed out as the engine's clock makes them)."""
    was = False
    while not stop.is_set():
        frame = await port.next_frame()
        t = onset_time(frame, time.monotonic())
        if t is not None and not was:
            sink.append(t)
        was = t is not None


def side_b(conn) -> None:
    asyncio.run(_side_b(conn))


async def _side_b(conn) -> None:
    from webrtc.engine import MediaEngine
    from webrtc.link import LinkEndpoint
    from webrtc.mixer import Input

    engine = MediaEngine()
    links = LinkEndpoint(engine)
    conn.send(await links.start("127.0.0.1"))
    peer = conn.recv()
    links.open("caller", LINK_ID, KEY, "b", peer)
    port = engine.add_leg("softphone")
    engine.set_inputs("softphone", [Input(leg="caller")])
    heard: list[float] = []
    stop = asyncio.Event()
    task = asyncio.create_task(probe(port, heard, stop))
    await asyncio.to_thread(conn.recv)  # A is done
    stop.set()
    task.cancel()
    conn.send(heard)
    links.stop()
    await engine.close_all()


async def side_a(conn, onsets: int) -> tuple[list[float], list[float], list[float]]:
    from webrtc.audio import FRAME_SAMPLES
    from webrtc.engine import MediaEngine
    from webrtc.link import LinkEndpoint
    from webrtc.mixer import Input
    from webrtc.tones import tone

    engine = MediaEngine()
    links = LinkEndpoint(engine)
    address = await links.start("127.0.0.1")
    peer = conn.recv()
    conn.send(address)
    caller = engine.add_leg("sip-caller")
    links.open("agent", LINK_ID, KEY, "a", peer)
    engine.set_inputs("agent", [Input(leg="sip-caller")])
    direct = engine.add_leg("softphone")
    engine.set_inputs("softphone", [Input(leg="sip-caller")])
    heard: list[float] = []
    stop = asyncio.Event()
    task = asyncio.create_task(probe(direct, heard, stop))
    sent: list[float] = []
    loud = tone(1000.0, FRAME_SAMPLES, 8000, 0.3)
    quiet = np.zeros(FRAME_SAMPLES, dtype=np.int16)
    start = time.monotonic() + 0.5
    n = 0
    # A SIP call's frames arrive on their own clock, every 20 ms (the caller's, not the engine's).
    for cycle in range(onsets + 1):
        for i in range(ON + OFF):
            due = start + n * 0.020
            await asyncio.sleep(max(0.0, due - time.monotonic()))
            tone_now = cycle > 0 and i >= OFF
            if tone_now and i == OFF:
                sent.append(time.monotonic())
            caller.push(loud if tone_now else quiet)
            n += 1
    await asyncio.sleep(0.3)
    stop.set()
    task.cancel()
    conn.send("done")
    linked = conn.recv()
    links.stop()
    await engine.close_all()
    return sent, heard, linked


def match(sent: list[float], heard: list[float]) -> dict[int, float]:
    """Delay of each sent onset (by its number): the first onset heard after it, before the next one."""
    out = {}
    for i, t in enumerate(sent):
        nxt = sent[i + 1] if i + 1 < len(sent) else float("inf")
        got = [h for h in heard if t - 0.02 <= h < nxt]
        if got:
            out[i] = got[0] - t
    return out


def pct(xs: list[float], p: float) -> float:
    s = sorted(xs)
    return s[min(len(s) - 1, int(p * len(s)))] * 1000


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--onsets", type=int, default=40)
    args = ap.parse_args()
    ctx = mp.get_context("spawn")
    here, there = ctx.Pipe()
    b = ctx.Process(target=side_b, args=(there,))
    b.start()
    sent, direct_heard, linked_heard = asyncio.run(side_a(here, args.onsets))
    b.join(10)
    d, ln = match(sent, direct_heard), match(sent, linked_heard)
    direct, linked = list(d.values()), list(ln.values())
    added = [ln[i] - d[i] for i in d if i in ln]
    print(f"onsets sent {len(sent)}, heard direct {len(direct)}, heard over the link {len(linked)}")
    for name, xs in (("direct (one worker)", direct), ("over the link", linked), ("added by the link", added)):
        if xs:
            print(f"{name:22s} p50 {pct(xs, 0.5):6.1f} ms   p90 {pct(xs, 0.9):6.1f} ms   max {max(xs) * 1000:6.1f} ms"
                  f"   mean {statistics.fmean(xs) * 1000:6.1f} ms")
    return 0 if len(direct) == len(linked) == len(sent) else 1


if __name__ == "__main__":
    sys.exit(main())
