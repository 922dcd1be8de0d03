"""Softphone sessions per media worker, against a minimal aiortc echo server.

    python load/bench_media.py            # ramp 10, 20, 30, 40, 50, 60, 80, 100; 10 s held each
    python load/bench_media.py --quick    # smoke run: 4 and 8 sessions, 3 s each

World: one server process (the unidesk MediaEngine, then a plain aiortc echo
server) and one bot process per step. Each bot is an aiortc peer that offers
PCMU only, sends a tone (pre-encoded, so the bots stay cheap) and counts the
frames it receives. Signaling is a tiny HTTP endpoint on loopback (POST an
offer, get the answer). On unidesk the sessions are paired (A ⇄ B through
`connect`), so every frame crosses the mixer; the echo server sends each
client's own audio straight back (the inbound track re-encoded, as aiortc's
examples do).

For each N, after a 2 s warm-up, the server's figures are sampled at the start
and end of the hold window:
- late/lost: inbound frames that did not arrive in time, as a fraction of the
  frames due (unidesk: the engine's late + dropped + outbound-dropped counters;
  echo: 1 - frames relayed / frames due), plus the frames the bots missed;
- clock: ticks more than one frame (20 ms) late on the server's event loop (unidesk: the
  engine's ticker; echo: a 20 ms probe task);
- CPU seconds per session per second of the server process (/proc), RSS per
  session (RSS growth over the idle server, divided by N).
A step is held when late/lost on both sides and late ticks are all under 1 %.
The ramp of a server stops after its first step that is not held.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import time
import urllib.parse

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

TICKS_PER_S = 50
CLK_TCK = os.sysconf("SC_CLK_TCK")
PAGE = os.sysconf("SC_PAGE_SIZE")


def cpu_seconds() -> float:
    with open("/proc/self/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def machine_busy_seconds() -> float:
    """CPU seconds the whole machine spent busy (all cores), from /proc/stat."""
    with open("/proc/stat") as f:
        fields = [int(x) for x in f.readline().split()[1:]]
    idle = fields[3] + fields[4]  # idle + iowait
    return (sum(fields[:8]) - idle) / CLK_TCK


def cpu_pressure_seconds() -> float:
    """Time some runnable task waited for a CPU (Linux PSI), 0 where unavailable."""
    try:
        with open("/proc/pressure/cpu") as f:
            return int(f.readline().rsplit("total=", 1)[1]) / 1e6
    except (OSError, IndexError, ValueError):
        return 0.0


def cpu_pressure_avg10() -> float | None:
    """Share of the last 10 s in which some task waited for a CPU (Linux PSI), None where unavailable."""
    try:
        with open("/proc/pressure/cpu") as f:
            return float(f.readline().split("avg10=", 1)[1].split()[0]) / 100
    except (OSError, IndexError, ValueError):
        return None


def settle(limit: float, max_wait: float) -> None:
    """Wait (up to max_wait s) until the shared machine's CPU pressure is under `limit`."""
    if max_wait <= 0:
        return
    deadline = time.monotonic() + max_wait
    while (p := cpu_pressure_avg10()) is not None and p >= limit:
        if time.monotonic() > deadline:
            print(f"   (machine still busy: cpu pressure {p*100:.0f}% over the last 10 s; measuring anyway)", flush=True)
            return
        time.sleep(1.0)


def rss_bytes() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * PAGE


# ---------------------------------------------------------------- tiny HTTP


async def http(port: int, method: str, path: str, body: str = "") -> str:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    data = body.encode()
    writer.write(
        f"{method} {path} HTTP/1.1\r\nHost: x\r\nContent-Length: {len(data)}\r\nConnection: close\r\n\r\n".encode()
        + data
    )
    await writer.drain()
    raw = await reader.read()
    writer.close()
    head, _, payload = raw.partition(b"\r\n\r\n")
    if not head.startswith(b"HTTP/1.1 200"):
        raise RuntimeError(f"{method} {path}: {head[:80]!r} {payload[:200]!r}")
    return payload.decode()


async def serve_http(port: int, handle) -> None:
    async def on_client(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            request = await reader.readline()
            method, target, _ = request.decode().split(" ", 2)
            length = 0
            while (line := await reader.readline()) not in (b"\r\n", b""):
                name, _, value = line.decode().partition(":")
                if name.lower() == "content-length":
                    length = int(value)
            body = (await reader.readexactly(length)).decode() if length else ""
            url = urllib.parse.urlsplit(target)
            query = dict(urllib.parse.parse_qsl(url.query))
            status, out = "200 OK", await handle(method, url.path, query, body)
        except Exception as exc:  # report any failure to the bot process, keep serving
            status, out = "500 Error", f"{type(exc).__name__}: {exc}"
        data = out.encode()
        writer.write(f"HTTP/1.1 {status}\r\nContent-Length: {len(data)}\r\nConnection: close\r\n\r\n".encode() + data)
        await writer.drain()
        writer.close()

    server = await asyncio.start_server(on_client, "127.0.0.1", port)
    print("ready", flush=True)
    async with server:
        await server.serve_forever()


# ---------------------------------------------------------------- servers


async def run_unidesk(port: int) -> None:
    from webrtc.engine import MediaEngine

    engine = MediaEngine()

    async def handle(method: str, path: str, q: dict[str, str], body: str) -> str:
        if path == "/offer":
            return await engine.answer(q["id"], body)
        if path == "/pair":
            engine.connect(q["a"], q["b"])
            return "ok"
        if path == "/reset":
            await engine.close_all()
            return "ok"
        if path == "/stats":
            totals = dict(received=0, sent=0, late=0, dropped=0, out_dropped=0)
            for sid in engine.sessions():
                s = engine.stats(sid)
                for k in totals:
                    totals[k] += getattr(s, k)
            c = engine.clock_stats()
            totals.update(
                sessions=len(engine.sessions()), cpu=cpu_seconds(), rss=rss_bytes(),
                ticks=c.ticks, late_ticks=c.late_ticks + c.skipped_ticks, max_lag_ms=c.max_lag_ms,
            )
            return json.dumps(totals)
        raise ValueError(f"no route {path}")

    await serve_http(port, handle)


async def run_echo(port: int) -> None:
    from aiortc import MediaStreamTrack, RTCPeerConnection, RTCSessionDescription

    from webrtc.ice import rtc_configuration

    pcs: dict[str, RTCPeerConnection] = {}
    counters = dict(received=0, ticks=0, late_ticks=0)

    class Echo(MediaStreamTrack):
        kind = "audio"

        def __init__(self, source: MediaStreamTrack) -> None:
            super().__init__()
            self.source = source

        async def recv(self):
            frame = await self.source.recv()
            counters["received"] += 1
            return frame

    async def lag_probe() -> None:
        loop = asyncio.get_running_loop()
        start, n = loop.time(), 0
        while True:
            n += 1
            await asyncio.sleep(max(0.0, start + n * 0.02 - loop.time()))
            counters["ticks"] += 1
            if loop.time() - (start + n * 0.02) > 0.020:
                counters["late_ticks"] += 1

    async def handle(method: str, path: str, q: dict[str, str], body: str) -> str:
        if path == "/offer":
            pc = RTCPeerConnection(rtc_configuration(None))
            pcs[q["id"]] = pc
            pc.on("track", lambda track: pc.addTrack(Echo(track)))
            await pc.setRemoteDescription(RTCSessionDescription(sdp=body, type="offer"))
            await pc.setLocalDescription(await pc.createAnswer())
            return pc.localDescription.sdp
        if path == "/pair":
            return "ok"
        if path == "/reset":
            for pc in pcs.values():
                await pc.close()
            pcs.clear()
            return "ok"
        if path == "/stats":
            return json.dumps(dict(counters, sessions=len(pcs), cpu=cpu_seconds(), rss=rss_bytes(),
                                   late=0, dropped=0, out_dropped=0, max_lag_ms=0.0))
        raise ValueError(f"no route {path}")

    probe = asyncio.ensure_future(lag_probe())
    try:
        await serve_http(port, handle)
    finally:
        probe.cancel()


# ---------------------------------------------------------------- bots


async def run_bots(port: int, n: int, warmup: float, hold: float) -> None:
    import fractions

    import av
    from aiortc import MediaStreamTrack, RTCPeerConnection, RTCRtpSender, RTCSessionDescription

    from webrtc.audio import G711Encoder, ToneSource
    from webrtc.engine import InlineDecoder
    from webrtc.ice import rtc_configuration

    encoder = G711Encoder("audio/PCMU")
    pcmu = [c for c in RTCRtpSender.getCapabilities("audio").codecs if c.mimeType == "audio/PCMU"]
    received = [0] * n
    tb = fractions.Fraction(1, 8000)

    class Mic(MediaStreamTrack):
        kind = "audio"

        def __init__(self, freq: float) -> None:
            super().__init__()
            self.payloads = [encoder.encode(ToneSource(freq).frame(i)) for i in range(50)]
            self.n, self.start = 0, 0.0

        async def recv(self):
            if self.n == 0:
                self.start = time.monotonic()
            else:
                await asyncio.sleep(max(0.0, self.start + self.n * 0.02 - time.monotonic()))
            packet = av.Packet(self.payloads[self.n % 50])
            packet.pts, packet.time_base = self.n * 160, tb
            self.n += 1
            return packet

    pcs: list[RTCPeerConnection] = []

    async def one(i: int) -> None:
        pc = RTCPeerConnection(rtc_configuration(None))
        pcs.append(pc)
        t = pc.addTransceiver(Mic(400 + 10 * (i % 100)), direction="sendrecv")
        t.setCodecPreferences(pcmu)

        def count(samples) -> None:
            received[i] += 1

        # Decoded on the loop like the engine does (no decoder thread per bot), so the
        # bots stay cheap next to the server they load; the same bots load both servers.
        InlineDecoder.install(t.receiver, count)

        await pc.setLocalDescription(await pc.createOffer())
        answer = await http(port, "POST", f"/offer?id=s{i}", pc.localDescription.sdp)
        await pc.setRemoteDescription(RTCSessionDescription(sdp=answer, type="answer"))

    for batch in range(0, n, 10):
        await asyncio.gather(*(one(i) for i in range(batch, min(n, batch + 10))))
    for i in range(0, n - 1, 2):
        await http(port, "POST", f"/pair?a=s{i}&b=s{i + 1}")
    await asyncio.sleep(warmup)
    s0, r0, t0 = json.loads(await http(port, "GET", "/stats")), sum(received), time.monotonic()
    c0, m0, p0 = cpu_seconds(), machine_busy_seconds(), cpu_pressure_seconds()
    await asyncio.sleep(hold)
    s1, r1, t1 = json.loads(await http(port, "GET", "/stats")), sum(received), time.monotonic()
    c1, m1, p1 = cpu_seconds(), machine_busy_seconds(), cpu_pressure_seconds()
    for pc in pcs:
        await pc.close()
    await http(port, "POST", "/reset")
    print(json.dumps(dict(s0=s0, s1=s1, bot_frames=r1 - r0, seconds=t1 - t0, bot_cpu=c1 - c0,
                          machine_busy=m1 - m0, pressure=p1 - p0)), flush=True)


# ---------------------------------------------------------------- orchestration


def spawn(*args: str) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, os.path.abspath(__file__), *args], stdout=subprocess.PIPE, text=True, cwd=os.getcwd()
    )


def step(port: int, n: int, warmup: float, hold: float, idle_rss: int) -> dict:
    bots = spawn("--bots", str(n), "--port", str(port), "--warmup", str(warmup), "--hold", str(hold))
    out, _ = bots.communicate(timeout=120 + n)
    if bots.returncode != 0:
        raise RuntimeError(f"bot process failed for N={n}")
    r = json.loads(out.strip().splitlines()[-1])
    s0, s1, secs = r["s0"], r["s1"], r["seconds"]
    due = n * TICKS_PER_S * secs
    server_bad = s1["late"] - s0["late"] + s1["dropped"] - s0["dropped"] + s1["out_dropped"] - s0["out_dropped"]
    server_missing = max(0.0, due - (s1["received"] - s0["received"]))
    server_lost = (server_bad + server_missing) / due
    bot_lost = max(0.0, 1 - r["bot_frames"] / due)
    ticks = max(1, s1["ticks"] - s0["ticks"])
    late_ticks = (s1["late_ticks"] - s0["late_ticks"]) / ticks
    return dict(
        n=n,
        server_lost=server_lost,
        bot_lost=bot_lost,
        late_ticks=late_ticks,
        cpu_ms=(s1["cpu"] - s0["cpu"]) / (n * secs) * 1000,
        cpu_total=(s1["cpu"] - s0["cpu"]) / secs,
        bot_cpu_total=r["bot_cpu"] / secs,
        # Cores kept busy by everything else on the machine during the window.
        other_cores=max(0.0, (r["machine_busy"] - r["bot_cpu"] - (s1["cpu"] - s0["cpu"])) / secs),
        # Share of the window in which some task on the machine waited for a CPU.
        pressure=r["pressure"] / secs,
        rss_kb=(s1["rss"] - idle_rss) / n / 1024,
        held=server_lost < 0.01 and bot_lost < 0.01 and late_ticks < 0.01,
    )


def show(kind: str, row: dict) -> None:
    print(
        f"{kind:8} N={row['n']:4d}  lost/late server {row['server_lost']*100:5.2f}%  bots {row['bot_lost']*100:5.2f}%"
        f"  late ticks {row['late_ticks']*100:5.2f}%  cpu {row['cpu_ms']:5.2f} ms/s/session"
        f" ({row['cpu_total']*100:3.0f}% of a core; bots {row['bot_cpu_total']*100:3.0f}%)"
        f"  rss {row['rss_kb']:4.0f} KiB/session  other load {row['other_cores']:.2f} cores,"
        f" cpu pressure {row['pressure']*100:3.0f}%  {'held' if row['held'] else 'NOT held'}",
        flush=True,
    )


def ramp(
    kinds: list[str], port: int, steps: list[int], warmup: float, hold: float, quiet: tuple[float, float]
) -> dict[str, list[dict]]:
    """Ramp every server through the same steps, interleaved (N for each server, then the next N).

    Interleaving exposes both servers to the same machine conditions as far as
    possible (the machine is shared); a server leaves the ramp after its first
    step that is not held.
    """
    servers = {kind: (port + i, spawn("--serve", kind, "--port", str(port + i))) for i, kind in enumerate(kinds)}
    rows: dict[str, list[dict]] = {kind: [] for kind in kinds}
    try:
        idle = {}
        for kind, (p, server) in servers.items():
            assert server.stdout is not None and server.stdout.readline().strip() == "ready"
            idle[kind] = json.loads(asyncio.run(http(p, "GET", "/stats")))["rss"]
        running = list(kinds)
        for n in steps:
            for kind in list(running):
                settle(*quiet)
                row = step(servers[kind][0], n, warmup, hold, idle[kind])
                rows[kind].append(row)
                show(kind, row)
                if not row["held"]:
                    running.remove(kind)
            if not running:
                break
        return rows
    finally:
        for _, server in servers.values():
            server.terminate()
            server.wait(timeout=10)


def summary(rows: list[dict]) -> tuple[int, float, float]:
    held = [r for r in rows if r["held"]]
    if not held:
        return 0, float("nan"), float("nan")
    best = held[-1]
    return best["n"], best["cpu_ms"], best["rss_kb"]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="smoke run: 4 and 8 sessions, 3 s held")
    ap.add_argument("--steps", default="10,20,30,40,50,60,80,100", help="session counts to ramp through")
    ap.add_argument("--hold", type=float, default=10.0)
    ap.add_argument("--warmup", type=float, default=2.0)
    ap.add_argument("--repeat", type=int, default=1, help="run the whole ramp this many times")
    ap.add_argument("--port", type=int, default=18931)
    ap.add_argument("--settle", type=float, default=60.0,
                    help="before each step, wait up to this many seconds for the machine's CPU pressure"
                    " (PSI, last 10 s) to fall under --settle-below; 0 disables")
    ap.add_argument("--settle-below", type=float, default=0.15)
    ap.add_argument("--only", choices=["unidesk", "echo"], help="ramp one server only")
    ap.add_argument("--serve", choices=["unidesk", "echo"], help=argparse.SUPPRESS)
    ap.add_argument("--bots", type=int, help=argparse.SUPPRESS)
    args = ap.parse_args()

    if args.serve == "unidesk":
        return asyncio.run(run_unidesk(args.port))
    if args.serve == "echo":
        return asyncio.run(run_echo(args.port))
    if args.bots is not None:
        return asyncio.run(run_bots(args.port, args.bots, args.warmup, args.hold))

    steps = [4, 8] if args.quick else [int(x) for x in args.steps.split(",")]
    hold = 3.0 if args.quick else args.hold
    warmup = 1.0 if args.quick else args.warmup
    kinds = [k for k in ("unidesk", "echo") if args.only in (None, k)]
    print(f"media benchmark: steps {steps}, {hold:g} s held after {warmup:g} s warm-up, {os.cpu_count()} CPUs")
    runs = []
    for run in range(args.repeat):
        if args.repeat > 1:
            print(f"-- run {run + 1} of {args.repeat} (load average {os.getloadavg()[0]:.2f})", flush=True)
        rows = ramp(kinds, args.port, steps, warmup, hold, (args.settle_below, args.settle))
        results = {kind: summary(r) for kind, r in rows.items()}
        runs.append(results)
        print(f"{'server':8} {'sessions held':>14} {'cpu ms/s/session':>17} {'rss KiB/session':>16}")
        for kind, (n, cpu, rss) in results.items():
            print(f"{kind:8} {n:14d} {cpu:17.2f} {rss:16.0f}")
        if len(results) == 2 and results["echo"][0]:
            (nu, cu, _), (ne, ce, _) = results["unidesk"], results["echo"]
            print(f"ratio unidesk/echo: sessions held {nu / ne:.2f}, cpu per session {cu / ce:.2f}", flush=True)
    if len(runs) > 1:
        for kind in kinds:
            held = sorted(r[kind][0] for r in runs)
            print(f"{kind:8} sessions held over {len(runs)} runs: {held} (median {held[len(held) // 2]})")


if __name__ == "__main__":
    main()
