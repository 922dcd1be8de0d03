"""Webinar attendees per media worker: encoded forwarding against aiortc's plain MediaRelay.

    python load/bench_webinar.py                 # forward 25..300 attendees, relay 1..12, 8 s held each
    python load/bench_webinar.py --quick         # smoke run

World: three kinds of process on loopback, signaling over a tiny HTTP endpoint.
- server: `forward` (webrtc/webinar.py: the presenter's frames forwarded as they
  are, packetized once, sent to each attendee directly) or `relay` (aiortc as its examples use it:
  the presenter's tracks decoded once, `MediaRelay` hands the frames to every
  attendee's track, and every attendee's sender encodes VP8 and Opus itself);
- presenter: an aiortc peer sending a VP8 clip at about 1 Mbit/s (640x360, 30
  frames a second, a keyframe every second) and an Opus tone, both encoded once
  before the run and looped, so the presenter costs packetization only;
- attendees: receive-only aiortc peers (ICE, DTLS-SRTP as usual), split over
  --bot-processes processes, that never decode. Once DTLS is up, each one's
  SRTP is taken off the wire: the ICE candidates' datagram handler is wrapped,
  STUN and DTLS still go to aiortc, RTP is unprotected with the DTLS-derived
  keys and reassembled into frames (VP8: partition start to marker, no packet
  missing) without aiortc's jitter buffer, NACKs or bandwidth estimation
  (which cost the attendees more CPU than the server being measured). Each
  complete frame is checked (forward: byte for byte one of the clip's frames;
  relay: a well-formed VP8 frame tag, and a keyframe's start code) and the gap
  since the previous one noted; each attendee sends a receiver report a
  second. The orchestrator starts and stops the measured window in all of
  them at once.

A step holds when every attendee got at least 99 % of the video and audio
frames due in the window (30 and 50 a second), no bad frame, and no gap over
--stall-ms between frames (a stall). CPU per attendee is the server process's
CPU over the window divided by N. Each step also prints the load average and
the datagrams the kernel dropped on the attendees' and the server's sockets
(full receive buffers) in the window. Each
server ramps until its first step that does not hold (measured --retries more
times first); the ratio of attendees held is printed at the end.
"""

from __future__ import annotations

import argparse
import asyncio
import fractions
import gc
import hashlib
import json
import os
import random
import socket
import struct
import subprocess
import sys
import tempfile
import time

import pylibsrtp
from aiortc.codecs.vpx import VpxPayloadDescriptor
from aiortc.rtp import RtcpReceiverInfo, RtcpRrPacket

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from bench_media import (  # noqa: E402
    cpu_pressure_seconds, cpu_seconds, http, machine_busy_seconds, rss_bytes, serve_http, settle,
)

FPS = 30
AUDIO_PER_S = 50
VIDEO_TB = fractions.Fraction(1, 90000)
AUDIO_TB = fractions.Fraction(1, 48000)
RTP_HEADER = struct.Struct("!HII")  # sequence number, timestamp, SSRC
RECEIVE_BUFFER = 256 * 1024


class GcPauses:
    """The longest garbage collection pause of this process (every attendee waits through it)."""

    def __init__(self) -> None:
        self.longest = 0.0
        self._start = 0.0
        gc.callbacks.append(self._on_gc)

    def _on_gc(self, phase: str, info: dict) -> None:
        if phase == "start":
            self._start = time.perf_counter()
        else:
            self.longest = max(self.longest, time.perf_counter() - self._start)

    def take(self) -> float:
        longest, self.longest = self.longest, 0.0
        return longest


def udp_drops() -> int:
    """Datagrams the kernel dropped on this process's UDP sockets (full receive buffers), so far."""
    inodes = set()
    for fd in os.listdir("/proc/self/fd"):
        try:
            link = os.readlink(f"/proc/self/fd/{fd}")
        except OSError:
            continue
        if link.startswith("socket:["):
            inodes.add(link[8:-1])
    drops = 0
    for table in ("/proc/net/udp", "/proc/net/udp6"):
        with open(table) as f:
            for line in list(f)[1:]:
                fields = line.split()
                if fields[9] in inodes:
                    drops += int(fields[-1])
    return drops


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
    pauses = GcPauses()
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
            return json.dumps(dict(cpu=cpu_seconds(), rss=rss_bytes(), drops=udp_drops(), gc=pauses.take()))
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
    """One received track of an attendee: reassembles, counts and checks frames, never decodes."""

    def __init__(self, kind: str, known: set[bytes] | None) -> None:
        self.kind, self.known = kind, known
        self.frames = self.bad = 0
        self.max_gap = 0.0
        self.last: float | None = None
        self.counting = False
        self.seen = 0
        self.ssrc: int | None = None
        self.highest = 0
        self._parts: list[bytes] | None = None
        self._next = -1

    def packet(self, ssrc: int, seq: int, marker: bool, payload: bytes) -> None:
        self.ssrc, self.highest = ssrc, seq
        if self.kind == "audio":
            self.frame(payload)  # an Opus packet is a frame
            return
        # VP8 (RFC 7741): a frame is the packets from a partition start to the marker, none missing.
        descriptor, data = VpxPayloadDescriptor.parse(payload)
        if descriptor.partition_start and descriptor.partition_id == 0:
            self._parts = [data]
        elif self._parts is not None and seq == self._next:
            self._parts.append(data)
        else:
            self._parts = None  # a packet of this frame is missing: the frame is lost
        self._next = (seq + 1) & 0xFFFF
        if marker and self._parts is not None:
            self.frame(b"".join(self._parts))
            self._parts = None

    def frame(self, data: bytes) -> None:
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


class Wire:
    """An attendee's media taken off the wire once ICE and DTLS-SRTP are up.

    aiortc's receivers would run a jitter buffer, NACK and bitrate estimation
    per packet (more CPU than the server being measured). Here the ICE
    candidates' datagram handler is wrapped: STUN and DTLS go to aiortc as
    before; SRTP is unprotected with the DTLS-derived keys and each packet goes
    to its track's Counter. A receiver report per track every second keeps the
    server's RTCP path as busy as with a real receiver.
    """

    def __init__(self, pc, counters: dict[int, Counter]) -> None:  # type: ignore[no-untyped-def]
        self.pc, self.counters = pc, counters
        self.dtls = pc.getTransceivers()[0].receiver.transport
        self.ssrc = random.getrandbits(32)
        self.undecryptable = 0
        for protocol in self.dtls.transport._connection._protocols:
            protocol.datagram_received = self._wrap(protocol.datagram_received)
            # The receive buffer libwebrtc asks for (without NACKs a burst the kernel drops is lost).
            sock = protocol.transport.get_extra_info("socket")
            if sock is not None:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, RECEIVE_BUFFER)

    def _wrap(self, original):  # type: ignore[no-untyped-def]
        def datagram_received(data: bytes, addr: tuple) -> None:
            srtp = self.dtls._rx_srtp
            if srtp is None or len(data) < 12 or not 127 < data[0] < 192:  # RFC 7983: not RTP/RTCP
                return original(data, addr)
            if 191 < data[1] < 224:
                return  # RTCP (sender reports): not needed here
            try:
                packet = srtp.unprotect(data)
            except pylibsrtp.Error:
                self.undecryptable += 1
                return
            self._rtp(packet)

        return datagram_received

    def _rtp(self, packet: bytes) -> None:
        counter = self.counters.get(packet[1] & 0x7F)
        if counter is None:
            return
        seq, _, ssrc = RTP_HEADER.unpack_from(packet, 2)
        pos = 12 + 4 * (packet[0] & 0x0F)
        if packet[0] & 0x10:
            pos += 4 + 4 * int.from_bytes(packet[pos + 2:pos + 4], "big")
        end = len(packet) - (packet[-1] if packet[0] & 0x20 else 0)
        counter.packet(ssrc, seq, bool(packet[1] & 0x80), packet[pos:end])

    async def report(self) -> None:
        reports = [RtcpReceiverInfo(ssrc=c.ssrc, fraction_lost=0, packets_lost=0, highest_sequence=c.highest,
                                    jitter=0, lsr=0, dlsr=0) for c in self.counters.values() if c.ssrc is not None]
        if reports and self.dtls._rx_srtp is not None:
            try:
                await self.dtls._send_rtp(bytes(RtcpRrPacket(ssrc=self.ssrc, reports=reports)))
            except ConnectionError:
                pass


def payload_types(sdp: str) -> dict[str, int]:
    from aiortc.sdp import SessionDescription

    return {m.kind: m.rtp.codecs[0].payloadType for m in SessionDescription.parse(sdp).media}


async def run_attendees(port: int, first: int, n: int, clip_path: str | None) -> None:
    """Attendees first..first+n-1, driven by the orchestrator over stdin: "start" and "stop"
    delimit the measured window, "close" (or end of input) ends them."""
    from aiortc import RTCPeerConnection, RTCSessionDescription

    from webrtc.webinar import max_bundle

    import faulthandler

    faulthandler.dump_traceback_later(600 + n, exit=True)
    known = {bytes.fromhex(h) for h in json.load(open(clip_path))} if clip_path else None
    wires: list[Wire] = []
    pauses = GcPauses()

    async def one(i: int) -> None:
        pc = RTCPeerConnection(max_bundle([]))
        for kind in ("video", "audio"):
            pc.addTransceiver(kind, direction="recvonly")
        await pc.setLocalDescription(await pc.createOffer())
        answer = await http(port, "POST", f"/view?id=a{i}", pc.localDescription.sdp)
        pts = payload_types(answer)
        wires.append(Wire(pc, {pts["video"]: Counter("video", known), pts["audio"]: Counter("audio", None)}))
        await pc.setRemoteDescription(RTCSessionDescription(sdp=answer, type="answer"))

    async def reports() -> None:
        while True:
            for w in list(wires):
                await w.report()
                await asyncio.sleep(1.0 / max(1, len(wires)))

    def counters() -> list[Counter]:
        return [c for w in wires for c in w.counters.values()]

    loop = asyncio.get_running_loop()
    joined = time.monotonic()
    for batch in range(first, first + n, 10):
        await asyncio.gather(*(one(i) for i in range(batch, min(first + n, batch + 10))))
    reporting = asyncio.ensure_future(reports())
    # Every attendee connected and receiving before the window (joining is not what is measured).
    deadline = time.monotonic() + 30 + n * 0.2
    while any(c.seen == 0 for c in counters()) and time.monotonic() < deadline:
        await asyncio.sleep(0.1)
    waiting = sum(1 for w in wires if any(c.seen == 0 for c in w.counters.values()))
    print(json.dumps(dict(join_seconds=time.monotonic() - joined, never_connected=waiting)), flush=True)
    command = await loop.run_in_executor(None, sys.stdin.readline)
    t0, c0, d0, _ = time.monotonic(), cpu_seconds(), udp_drops(), pauses.take()
    for c in counters():
        c.counting, c.last = True, None
    command = await loop.run_in_executor(None, sys.stdin.readline)
    for c in counters():
        c.counting = False
    secs, bot_cpu, drops = time.monotonic() - t0, cpu_seconds() - c0, udp_drops() - d0
    rows = [dict(video=w.counters[v].frames, audio=w.counters[a].frames, bad=w.counters[v].bad,
                 gap=max(w.counters[v].max_gap, w.counters[a].max_gap), undecryptable=w.undecryptable)
            for w in wires for v, a in [sorted(w.counters, key=lambda pt: w.counters[pt].kind != "video")]]
    print(json.dumps(dict(rows=rows, seconds=secs, bot_cpu=bot_cpu, drops=drops, gc=pauses.take())), flush=True)
    command = await loop.run_in_executor(None, sys.stdin.readline)
    assert command.strip() in ("close", "")
    reporting.cancel()
    for w in wires:
        await w.pc.close()


# ---------------------------------------------------------------- orchestration


def spawn(*args: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, os.path.abspath(__file__), *args], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, text=True)


def tell(procs: list[subprocess.Popen], command: str) -> None:
    for p in procs:
        assert p.stdin is not None
        p.stdin.write(command + "\n")
        p.stdin.flush()


def answer(p: subprocess.Popen) -> dict:
    assert p.stdout is not None
    line = p.stdout.readline()
    if not line:
        raise RuntimeError(f"an attendees' process ended (exit {p.wait()})")
    return json.loads(line)


def step(kind: str, port: int, n: int, args: argparse.Namespace, clip: str) -> dict:
    extra = ["--clip", clip] if kind == "forward" else []
    shares = [n // args.bot_processes + (1 if i < n % args.bot_processes else 0) for i in range(args.bot_processes)]
    firsts = [sum(shares[:i]) for i in range(len(shares))]
    bots = [spawn("--attendees", str(k), "--first", str(f), "--port", str(port), *extra)
            for k, f in zip(shares, firsts) if k]
    try:
        joined = [answer(b) for b in bots]
        time.sleep(args.warmup)
        stats = lambda: json.loads(asyncio.run(http(port, "GET", "/stats")))  # noqa: E731
        s0, m0, p0 = stats(), machine_busy_seconds(), cpu_pressure_seconds()
        tell(bots, "start")
        t0 = time.monotonic()
        time.sleep(args.hold)
        tell(bots, "stop")
        secs = time.monotonic() - t0
        s1, m1, p1 = stats(), machine_busy_seconds(), cpu_pressure_seconds()
        results = [answer(b) for b in bots]
        asyncio.run(http(port, "POST", "/reset"))
        tell(bots, "close")
        for b in bots:
            b.wait(timeout=60)
    finally:
        for b in bots:
            if b.poll() is None:
                b.kill()
    rows = [row for r in results for row in r["rows"]]
    loss = max(max(0.0, 1 - x["video"] / (FPS * r["seconds"]), 1 - x["audio"] / (AUDIO_PER_S * r["seconds"]))
               for r in results for x in r["rows"])
    stalls = sum(1 for x in rows if x["gap"] * 1000 > args.stall_ms)
    bad = sum(x["bad"] + x["undecryptable"] for x in rows)
    bot_cpu = sum(r["bot_cpu"] for r in results)
    server_cpu = s1["cpu"] - s0["cpu"]
    return dict(
        n=n, worst_loss=loss, stalls=stalls, bad=bad, max_gap_ms=max(x["gap"] for x in rows) * 1000,
        cpu_ms=server_cpu / (n * secs) * 1000, cpu_total=server_cpu / secs, bot_cpu=bot_cpu / secs,
        other=max(0.0, (m1 - m0 - bot_cpu - server_cpu) / secs), pressure=(p1 - p0) / secs,
        held=loss < 0.01 and stalls == 0 and bad == 0, join_s=max(j["join_seconds"] for j in joined),
        never=sum(j["never_connected"] for j in joined), load=os.getloadavg()[0],
        drops=sum(r["drops"] for r in results), server_drops=s1["drops"] - s0["drops"],
        gc_ms=1000 * s1["gc"], bot_gc_ms=1000 * max(r["gc"] for r in results),
    )


def show(kind: str, row: dict) -> None:
    print(f"{kind:8} N={row['n']:4d}  worst attendee loss {row['worst_loss']*100:5.2f}%  stalls {row['stalls']:3d}"
          f"  bad frames {row['bad']:3d}  max gap {row['max_gap_ms']:5.0f} ms  cpu {row['cpu_ms']:6.2f} ms/s/attendee"
          f" ({row['cpu_total']*100:3.0f}% of a core; attendees' processes {row['bot_cpu']*100:3.0f}%,"
          f" other {row['other']:.2f} cores, cpu pressure {row['pressure']*100:3.0f}%,"
          f" datagrams the kernel dropped: {row['drops']} at attendees, {row['server_drops']} at the server;"
          f" longest GC pause {row['gc_ms']:.0f} ms at the server, {row['bot_gc_ms']:.0f} ms at attendees)"
          f"  all receiving after {row['join_s']:.1f} s{' (' + str(row['never']) + ' never)' if row['never'] else ''}"
          f"  load average {row['load']:.2f}  {'held' if row['held'] else 'NOT held'}", flush=True)


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
            for attempt in range(1 + args.retries):
                settle(args.settle_below, args.settle)
                row = step(kind, port, n, args, clip)
                rows.append(row)
                show(kind, row)
                if row["held"]:
                    break
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
    ap.add_argument("--steps", default="25,50,100,150,200,250,300", help="attendee counts for forwarding")
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
    ap.add_argument("--retries", type=int, default=1,
                    help="measure a step that does not hold again this many times (a shared machine's hiccups)")
    ap.add_argument("--bot-processes", type=int, default=2, help="attendees' processes (split evenly)")
    ap.add_argument("--attendees", type=int, help=argparse.SUPPRESS)
    ap.add_argument("--first", type=int, default=0, help=argparse.SUPPRESS)
    ap.add_argument("--clip", help=argparse.SUPPRESS)
    args = ap.parse_args()

    if args.serve:
        return asyncio.run(run_server(args.serve, args.port))
    if args.presenter:
        return asyncio.run(run_presenter(args.port, args.clip, args.bitrate))
    if args.attendees is not None:
        return asyncio.run(run_attendees(args.port, args.first, args.attendees, args.clip))

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
