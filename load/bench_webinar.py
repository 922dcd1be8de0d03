"""Webinar attendees per media worker: encoded forwarding against aiortc's plain MediaRelay.

    python load/bench_webinar.py                 # forward 10..150 attendees, relay 1..12, 8 s held each
    python load/bench_webinar.py --quick         # smoke run

World: three kinds of process on loopback, signaling over a tiny HTTP endpoint.
- server: `forward` (webrtc/webinar.py: the presenter's frames forwarded as they
  are, one packetization per attendee) or `relay` (aiortc as its examples use it:
  the presenter's tracks decoded once, `MediaRelay` hands the frames to every
  attendee's track, and every attendee's sender encodes VP8 and Opus itself);
- presenter: an aiortc peer sending a VP8 clip at about 1 Mbit/s (640x360, 30
  frames a second, a keyframe every second) and an Opus tone, both encoded once
  before the run and looped, so the presenter costs packetization only;
- attendees: one process of receive-only aiortc peers per step. They never
  decode: each receiver's decoder queue is replaced by a counter that gets every
  complete frame leaving aiortc's jitter buffer, checks it (forward: the frame
  is byte for byte one of the clip's frames; relay: a well-formed VP8 frame
  tag, and a keyframe's start code) and notes the gap since the previous one.

A step holds when every attendee got at least 99 % of the video and audio
frames due in the window (30 and 50 a second), no bad frame, and no gap over
--stall-ms between frames (a stall). CPU per attendee is the server process's
CPU over the window divided by N. Each server ramps until its first step that
does not hold; the ratio of attendees held is printed at the end.
"""

from __future__ import annotations

import argparse
import asyncio
import fractions
import hashlib
import json
import os
import subprocess
import sys
import tempfile
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from bench_media import (  # noqa: E402
    cpu_pressure_seconds, cpu_seconds, http, machine_busy_seconds, rss_bytes, serve_http, settle,
)

FPS = 30
AUDIO_PER_S = 50
VIDEO_TB = fractions.Fraction(1, 90000)
AUDIO_TB = fractions.Fraction(1, 48000)


# ---------------------------------------------------------------- the clip


def make_clip(seconds: float, bitrate: int, width: int = 640, height: int = 360) -> list[bytes]:
    """VP8 frames of a moving test picture at `bitrate`, a keyframe every second."""
    import av
    import numpy as np

    ctx = av.CodecContext.create("libvpx", "w")
    ctx.width, ctx.height, ctx.pix_fmt = width, height, "yuv420p"
    ctx.bit_rate = bitrate
    ctx.framerate = fractions.Fraction(FPS, 1)
    ctx.time_base = fractions.Fraction(1, FPS)
    ctx.gop_size = FPS
    ctx.options = {"deadline": "realtime", "cpu-used": "8", "lag-in-frames": "0", "kf-max-dist": str(FPS),
                   "kf-min-dist": str(FPS)}
    rng = np.random.default_rng(7)
    yy, xx = np.mgrid[0:height, 0:width]
    base = np.stack([(xx * 255 // width), (yy * 255 // height), ((xx + yy) * 127 // (width + height))], -1)
    noise = (base + rng.integers(0, 24, (height, width, 3))).astype(np.uint8)
    frames: list[bytes] = []
    for i in range(int(seconds * FPS)):
        img = np.roll(noise, i * 7, axis=1)
        frame = av.VideoFrame.from_ndarray(img, format="rgb24").reformat(format="yuv420p")
        frame.pts = i
        for p in ctx.encode(frame):
            frames.append(bytes(p))
    for p in ctx.encode(None):
        frames.append(bytes(p))
    return frames


def make_opus(freq: float = 440.0) -> list[bytes]:
    import av
    import numpy as np

    ctx = av.CodecContext.create("libopus", "w")
    ctx.sample_rate, ctx.layout, ctx.format, ctx.bit_rate = 48000, "stereo", "s16", 64000
    ctx.time_base = AUDIO_TB
    out: list[bytes] = []
    for i in range(AUDIO_PER_S):
        t = (np.arange(960) + i * 960) / 48000
        x = (np.sin(2 * np.pi * freq * t) * 9000).astype(np.int16)
        frame = av.AudioFrame.from_ndarray(np.repeat(x, 2).reshape(1, -1), format="s16", layout="stereo")
        frame.sample_rate, frame.pts, frame.time_base = 48000, i * 960, AUDIO_TB
        out += [bytes(p) for p in ctx.encode(frame)]
    return out


# ---------------------------------------------------------------- servers


async def run_server(kind: str, port: int) -> None:
    from aiortc import RTCPeerConnection, RTCSessionDescription
    from aiortc.contrib.media import MediaRelay

    from webrtc.webinar import WebinarMedia, max_bundle

    media = WebinarMedia()
    relay = MediaRelay()
    pcs: dict[str, RTCPeerConnection] = {}
    published: dict[str, object] = {}

    async def handle(method: str, path: str, q: dict[str, str], body: str) -> str:
        if kind == "forward" and path == "/publish":
            return await media.publish("bench", "presenter", body)
        if kind == "forward" and path == "/view":
            return await media.view("bench", q["id"], body)
        if kind == "relay" and path == "/publish":
            pc = RTCPeerConnection(max_bundle([]))
            pcs["presenter"] = pc

            @pc.on("track")
            def on_track(track) -> None:  # type: ignore[no-untyped-def]
                published[track.kind] = track

            await pc.setRemoteDescription(RTCSessionDescription(sdp=body, type="offer"))
            await pc.setLocalDescription(await pc.createAnswer())
            return pc.localDescription.sdp
        if kind == "relay" and path == "/view":
            pc = RTCPeerConnection(max_bundle([]))
            pcs[q["id"]] = pc
            for k in ("video", "audio"):
                # buffered=False: a sender that falls behind skips to the latest frame instead of queueing.
                pc.addTransceiver(relay.subscribe(published[k], buffered=False), direction="sendonly")
            await pc.setRemoteDescription(RTCSessionDescription(sdp=body, type="offer"))
            await pc.setLocalDescription(await pc.createAnswer())
            return pc.localDescription.sdp
        if path == "/reset":
            for conn in [c for c in media.connections() if c != "presenter"]:
                await media.close(conn)
            for cid in [c for c in pcs if c != "presenter"]:
                await pcs.pop(cid).close()
            return "ok"
        if path == "/stats":
            return json.dumps(dict(cpu=cpu_seconds(), rss=rss_bytes()))
        raise ValueError(f"no route {path}")

    await serve_http(port, handle)


# ---------------------------------------------------------------- presenter


async def run_presenter(port: int, clip_path: str, bitrate: int) -> None:
    import av
    from aiortc import MediaStreamTrack, RTCPeerConnection, RTCSessionDescription

    from webrtc.webinar import max_bundle

    video = make_clip(10.0, bitrate)
    audio = make_opus()
    with open(clip_path, "w") as f:
        json.dump([hashlib.sha1(v).hexdigest() for v in video], f)
    start = time.monotonic() + 0.5

    class Looped(MediaStreamTrack):
        def __init__(self, kind: str, frames: list[bytes], rate: int, step: int, tb: fractions.Fraction) -> None:
            super().__init__()
            self.kind, self.frames, self.rate, self.step, self.tb, self.n = kind, frames, rate, step, tb, 0

        async def recv(self):  # type: ignore[no-untyped-def]
            await asyncio.sleep(max(0.0, start + self.n / self.rate - time.monotonic()))
            p = av.Packet(self.frames[self.n % len(self.frames)])
            p.pts, p.time_base = self.n * self.step, self.tb
            self.n += 1
            return p

    pc = RTCPeerConnection(max_bundle([]))
    pc.addTransceiver(Looped("video", video, FPS, 3000, VIDEO_TB), direction="sendonly")
    pc.addTransceiver(Looped("audio", audio, AUDIO_PER_S, 960, AUDIO_TB), direction="sendonly")
    await pc.setLocalDescription(await pc.createOffer())
    answer = await http(port, "POST", "/publish", pc.localDescription.sdp)
    await pc.setRemoteDescription(RTCSessionDescription(sdp=answer, type="answer"))
    kbps = sum(len(v) for v in video) * 8 / 10.0 / 1000
    print(f"ready {kbps:.0f}", flush=True)
    await asyncio.Event().wait()


# ---------------------------------------------------------------- attendees


class Counter:
    """Stands in for an attendee receiver's decoder queue: counts and checks frames, never decodes."""

    def __init__(self, kind: str, known: set[bytes] | None) -> None:
        self.kind, self.known = kind, known
        self.frames = self.bad = 0
        self.max_gap = 0.0
        self.last: float | None = None
        self.counting = False
        self.stopped = threading.Event()
        self.seen = 0

    def put(self, task) -> None:  # type: ignore[no-untyped-def]
        if task is None:
            self.stopped.set()
            return
        data = task[1].data
        now = time.monotonic()
        self.seen += 1
        if self.counting:
            self.frames += 1
            if self.last is not None:
                self.max_gap = max(self.max_gap, now - self.last)
            if self.kind == "video" and not self.check(data):
                self.bad += 1
        self.last = now

    def check(self, data: bytes) -> bool:
        if self.known is not None:
            return hashlib.sha1(data).digest() in self.known
        if len(data) < 3:
            return False
        key = not data[0] & 1
        first_partition = (data[0] | data[1] << 8 | data[2] << 16) >> 5
        return first_partition <= len(data) and (not key or data[3:6] == b"\x9d\x01\x2a")

    def get(self, block: bool = True, timeout: float | None = None) -> None:
        self.stopped.wait()  # aiortc's decoder thread idles here until the receiver stops


async def run_attendees(port: int, n: int, warmup: float, hold: float, clip_path: str | None) -> None:
    from aiortc import RTCPeerConnection, RTCSessionDescription

    from webrtc.webinar import max_bundle

    import faulthandler

    faulthandler.dump_traceback_later(warmup + hold + 60 + n, exit=True)
    known = {bytes.fromhex(h) for h in json.load(open(clip_path))} if clip_path else None
    counters: list[tuple[Counter, Counter]] = []
    pcs: list[RTCPeerConnection] = []

    async def one(i: int) -> None:
        pc = RTCPeerConnection(max_bundle([]))
        pcs.append(pc)
        pair = (Counter("video", known), Counter("audio", None))
        for kind, c in zip(("video", "audio"), pair):
            t = pc.addTransceiver(kind, direction="recvonly")
            t.receiver._RTCRtpReceiver__decoder_queue = c
        counters.append(pair)
        await pc.setLocalDescription(await pc.createOffer())
        answer = await http(port, "POST", f"/view?id=a{i}", pc.localDescription.sdp)
        await pc.setRemoteDescription(RTCSessionDescription(sdp=answer, type="answer"))

    joined = time.monotonic()
    for batch in range(0, n, 10):
        await asyncio.gather(*(one(i) for i in range(batch, min(n, batch + 10))))
    # Every attendee connected and receiving before the window (joining is not what is measured).
    deadline = time.monotonic() + 30 + n * 0.2
    while any(v.seen == 0 for v, _ in counters) and time.monotonic() < deadline:
        await asyncio.sleep(0.1)
    waiting = sum(1 for v, _ in counters if v.seen == 0)
    connected = time.monotonic() - joined
    await asyncio.sleep(warmup)
    s0, t0 = json.loads(await http(port, "GET", "/stats")), time.monotonic()
    c0, m0, p0 = cpu_seconds(), machine_busy_seconds(), cpu_pressure_seconds()
    for pair in counters:
        for c in pair:
            c.counting, c.last = True, None
    await asyncio.sleep(hold)
    for pair in counters:
        for c in pair:
            c.counting = False
    s1, t1 = json.loads(await http(port, "GET", "/stats")), time.monotonic()
    c1, m1, p1 = cpu_seconds(), machine_busy_seconds(), cpu_pressure_seconds()
    secs = t1 - t0
    rows = [dict(video=v.frames, audio=a.frames, bad=v.bad, gap=max(v.max_gap, a.max_gap)) for v, a in counters]
    await http(port, "POST", "/reset")
    print(json.dumps(dict(rows=rows, seconds=secs, server_cpu=s1["cpu"] - s0["cpu"], rss=s1["rss"],
                          bot_cpu=c1 - c0, machine_busy=m1 - m0, pressure=p1 - p0,
                          join_seconds=connected, never_connected=waiting)), flush=True)
    for pc in pcs:
        await pc.close()


# ---------------------------------------------------------------- orchestration


def spawn(*args: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, os.path.abspath(__file__), *args], stdout=subprocess.PIPE, text=True)


def step(kind: str, port: int, n: int, args: argparse.Namespace, clip: str) -> dict:
    extra = ["--clip", clip] if kind == "forward" else []
    bots = spawn("--attendees", str(n), "--port", str(port), "--warmup", str(args.warmup), "--hold",
                 str(args.hold), *extra)
    out, _ = bots.communicate(timeout=180 + 2 * n)
    r = json.loads(out.strip().splitlines()[-1])
    secs = r["seconds"]
    video_due, audio_due = FPS * secs, AUDIO_PER_S * secs
    loss = max(max(0.0, 1 - x["video"] / video_due, 1 - x["audio"] / audio_due) for x in r["rows"])
    stalls = sum(1 for x in r["rows"] if x["gap"] * 1000 > args.stall_ms)
    bad = sum(x["bad"] for x in r["rows"])
    return dict(
        n=n, worst_loss=loss, stalls=stalls, bad=bad, max_gap_ms=max(x["gap"] for x in r["rows"]) * 1000,
        cpu_ms=r["server_cpu"] / (n * secs) * 1000, cpu_total=r["server_cpu"] / secs, bot_cpu=r["bot_cpu"] / secs,
        other=max(0.0, (r["machine_busy"] - r["bot_cpu"] - r["server_cpu"]) / secs), pressure=r["pressure"] / secs,
        held=loss < 0.01 and stalls == 0 and bad == 0, join_s=r["join_seconds"], never=r["never_connected"],
    )


def show(kind: str, row: dict) -> None:
    print(f"{kind:8} N={row['n']:4d}  worst attendee loss {row['worst_loss']*100:5.2f}%  stalls {row['stalls']:3d}"
          f"  bad frames {row['bad']:3d}  max gap {row['max_gap_ms']:5.0f} ms  cpu {row['cpu_ms']:6.2f} ms/s/attendee"
          f" ({row['cpu_total']*100:3.0f}% of a core; attendees' process {row['bot_cpu']*100:3.0f}%,"
          f" other {row['other']:.2f} cores, cpu pressure {row['pressure']*100:3.0f}%)"
          f"  all receiving after {row['join_s']:.1f} s{' (' + str(row['never']) + ' never)' if row['never'] else ''}"
          f"  {'held' if row['held'] else 'NOT held'}", flush=True)


def ramp(kind: str, port: int, steps: list[int], args: argparse.Namespace) -> list[dict]:
    server = spawn("--serve", kind, "--port", str(port))
    clip = os.path.join(tempfile.mkdtemp(prefix="webinar-bench-"), "clip.json")
    presenter = None
    rows: list[dict] = []
    try:
        assert server.stdout is not None and server.stdout.readline().strip() == "ready"
        presenter = spawn("--presenter", "--port", str(port), "--clip", clip, "--bitrate", str(args.bitrate))
        assert presenter.stdout is not None
        line = presenter.stdout.readline().split()
        assert line and line[0] == "ready", "the presenter did not start"
        print(f"{kind}: presenter sends VP8 at {line[1]} kbit/s (640x360, {FPS} fps) and Opus", flush=True)
        for n in steps:
            settle(args.settle_below, args.settle)
            row = step(kind, port, n, args, clip)
            rows.append(row)
            show(kind, row)
            if not row["held"]:
                break
        return rows
    finally:
        for p in (presenter, server):
            if p is not None:
                p.terminate()
                p.wait(timeout=10)


def best(rows: list[dict]) -> dict | None:
    held = [r for r in rows if r["held"]]
    return held[-1] if held else None


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="smoke run: forward 5, 10; relay 1, 2; 3 s held")
    ap.add_argument("--steps", default="10,25,50,75,100,125,150", help="attendee counts for forwarding")
    ap.add_argument("--relay-steps", default="1,2,3,4,6,8,10,12", help="attendee counts for the plain relay")
    ap.add_argument("--hold", type=float, default=8.0)
    ap.add_argument("--warmup", type=float, default=3.0)
    ap.add_argument("--stall-ms", type=float, default=300.0, help="a gap between frames longer than this is a stall")
    ap.add_argument("--bitrate", type=int, default=1_000_000)
    ap.add_argument("--port", type=int, default=18971)
    ap.add_argument("--settle", type=float, default=30.0)
    ap.add_argument("--settle-below", type=float, default=0.15)
    ap.add_argument("--only", choices=["forward", "relay"])
    ap.add_argument("--serve", choices=["forward", "relay"], help=argparse.SUPPRESS)
    ap.add_argument("--presenter", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--attendees", type=int, help=argparse.SUPPRESS)
    ap.add_argument("--clip", help=argparse.SUPPRESS)
    args = ap.parse_args()

    if args.serve:
        return asyncio.run(run_server(args.serve, args.port))
    if args.presenter:
        return asyncio.run(run_presenter(args.port, args.clip, args.bitrate))
    if args.attendees is not None:
        return asyncio.run(run_attendees(args.port, args.attendees, args.warmup, args.hold, args.clip))

    fwd_steps = [5, 10] if args.quick else [int(x) for x in args.steps.split(",")]
    relay_steps = [1, 2] if args.quick else [int(x) for x in args.relay_steps.split(",")]
    if args.quick:
        args.hold, args.warmup = 3.0, 2.0
    print(f"webinar benchmark: {os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.2f}, {args.hold:g} s held")
    results = {}
    for i, (kind, steps) in enumerate((("forward", fwd_steps), ("relay", relay_steps))):
        if args.only in (None, kind):
            results[kind] = best(ramp(kind, args.port + 10 * i, steps, args))
    print(f"{'server':8} {'attendees held':>15} {'cpu ms/s/attendee':>18}")
    for kind, row in results.items():
        print(f"{kind:8} {row['n'] if row else 0:15d} {row['cpu_ms'] if row else float('nan'):18.2f}")
    f, r = results.get("forward"), results.get("relay")
    if f and r:
        print(f"ratio forward/relay: attendees held {f['n'] / r['n']:.1f}x, cpu per attendee {r['cpu_ms'] / f['cpu_ms']:.1f}x"
              " lower", flush=True)


if __name__ == "__main__":
    main()
