"""Bridged SIP calls per media worker: sipp callers with G.711 audio, bot agents answering.

    python load/bench_sip.py                 # ramp 10, 20, 30 calls, one media worker (8 SIP lanes: 32 calls)
    python load/bench_sip.py --quick         # smoke run: 4 calls
    python load/bench_sip.py --workers 2     # two media workers, ramp 20, 40, 60
    python load/bench_sip.py --hub-load      # the ramp again with the websocket load on the hub

World (all on loopback): a hub (`unidesk serve`, SQLite) with the demo
tenant plus bench agents in the support (and sales) queues, wrap-up 1 s;
for each step fresh media workers (`unidesk media-worker`, SIP on a port of
their own) and bot agent processes (load/sipload/bots.py: aiortc
softphones that accept every offer at once); then sipp places N calls at
`--rate` per second with its own scenario (INVITE with PCMU, ACK, a pcap of
the caller's audio for the call's length, BYE). Every call lasts long enough
for all N to be bridged at once for `--hold` seconds: the measured window.

The caller's audio is a 1 s cycle: 200 ms silence, then 800 ms of 1000 Hz.
Figures, per step:
- bridged: calls an agent had accepted before the window and still had at its end;
- frames lost (agent side): 1 - frames the agents' softphones received in the
  window / frames due (50 per second per bridged call);
- caller audio gaps (agent side): silent frames inside the tone stretches
  (silent runs of 1-6 frames between tone, and silence beyond the 10
  designed frames), over the tone frames due. pjsua conceals lost packets, so
  a gap here is audio that went missing inside the bridge, not on the wire;
- set-up: wall clock from sipp's INVITE (logged by the scenario) to the bot's
  `contact-offered`, p50/p99 over every call of the step; "to bridged" adds
  the `accept-offer` round trip;
- added delay: for every tone onset an agent heard, its arrival time (the
  onset sample's time within the packet that carried it, taken as the packet
  arrives: the bots have no jitter buffer, as a browser's is its own and not
  the bridge's) minus the time sipp
  sent the packet that started it (the scenario logs when the pcap starts),
  one sample per onset per call, p50/p99;
- CPU seconds per second of the workers, the hub, the bot processes and sipp
  over the window; "per call" is the workers' CPU divided by the calls.
A step is held when all N calls were bridged through the window, sipp saw no
failed call, and frames lost and caller audio gaps are both under 1 %.

Baseline, same N, same scenario and rate: sipp's UAC calling sipp's own UAS
(`-sn uas -rtp_echo`): no hub, no bridge, the RTP sent straight back. Its CPU
is that of the UAS; four probe streams of the same pattern through the echo
give its loss and delay. The ratios printed are unidesk / baseline.
"""

from __future__ import annotations

import argparse
import json
import math
import multiprocessing as mp
import os
import shutil
import signal
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(HERE.parent), str(HERE)]

import numpy as np  # noqa: E402

from sipload.bots import start_bots, stop_bots  # noqa: E402
from sipload.common import (  # noqa: E402
    CYCLE_FRAMES, LOUD_RMS, ONSET_S, SILENT_FRAMES, Meter, free_udp_tcp_port, pct, say, settle, write_pcap,
    write_scenario,
)
from sipload.probe import probe_worker  # noqa: E402
from sipload.procs import EchoUas, Hub, Sipp, Store, Worker, prepare  # noqa: E402

GOAL_ONE_WORKER = 30
GOAL_TWO_WORKERS = 60
GOAL_DELAY_MS = 40.0
SETUP_MARGIN_S = 10.0
WARM_S = 1.0


class Run:
    def __init__(self, args: argparse.Namespace, tmp: Path, logs: Path) -> None:
        self.args, self.tmp, self.logs = args, tmp, logs
        self.step_no = 0
        self.load_part = 0
        self.agent_offset = 0
        self.store: Store | None = None
        self.hub: Hub | None = None

    # ------------------------------------------------------------ helpers

    def folder(self, name: str, hold_ms: int) -> Path:
        """A folder for one sipp run: the scenario and pcap/bench.pcap (sipp opens it relative to its cwd)."""
        d = self.tmp / name
        (d / "pcap").mkdir(parents=True, exist_ok=True)
        write_scenario(d / "caller.xml")
        write_pcap(d / "pcap" / "bench.pcap", hold_ms / 1000 + 1)
        return d

    def hold_ms(self, n: int) -> int:
        return int(1000 * (n / self.args.rate + SETUP_MARGIN_S + WARM_S + self.args.hold))

    # ------------------------------------------------------------ one unidesk step

    def unidesk_step(self, n: int, workers: int, hub_load: bool) -> dict[str, Any]:
        args, hub, store = self.args, self.hub, self.store
        assert hub is not None and store is not None
        self.step_no += 1
        s = self.step_no
        hold_ms = self.hold_ms(n)
        first = math.ceil(n / workers)
        # Agents not used by an earlier step: an agent left on a call by an earlier step (see the
        # "still connected" note) would not be available.
        o = self.agent_offset
        groups = [("support", first, store.support[o:o + first])]
        if workers == 2:
            groups.append(("sales", n - first, store.sales[o:o + n - first]))
        self.agent_offset += first
        ctx = mp.get_context("spawn")
        ws: list[Worker] = []
        bots: list[tuple[Any, Any]] = []
        sipps: list[Sipp] = []
        load = None
        try:
            if hub_load:
                from sipload.hubload_bridge import HubLoad

                load = HubLoad(hub, store, args.hub_rate, self.load_part)
                self.load_part += 1
                load.start(hold_ms / 1000 + 40 + n / 2)
            # One worker per group, started before its agents connect: the hub places a tenant's
            # softphones on the worker with most of them while it has room, so the first group fills
            # the first worker (capacity = the group) and the second group lands on the second.
            for g, (queue, count, people) in enumerate(groups):
                w = Worker(hub, f"s{s}w{g + 1}", free_udp_tcp_port(), count if workers == 2 else 200,
                           self.logs / f"worker-s{s}w{g + 1}.log", lanes=args.lanes)
                ws.append(w)
                w.wait_registered()
                start_bots(ctx, hub.url, people, bots)
            say(f"   {n} agents available on {len(ws)} worker(s); placing {n} calls at {args.rate:g}/s,"
                f" {hold_ms / 1000:.0f} s each")
            t_start = time.time()
            for g, (queue, count, _) in enumerate(groups):
                d = self.folder(f"s{s}-{queue}", hold_ms)
                sipps.append(Sipp(d, f"s{s}{'ab'[g]}", f"127.0.0.1:{ws[g].sip_port}", queue, count,
                                  args.rate * count / n, hold_ms, hold_ms / 1000 + 60, 20000 + 4000 * g))
            meter = Meter({"workers": [w.pid for w in ws], "hub": [hub.pid], "bots": [p.pid for p, _ in bots],
                           "sipp": [x.pid for x in sipps], **({"hubload": load.pids} if load else {})})
            connected: dict[str, float] = {}
            failures: list[str] = []
            deadline = time.monotonic() + n / args.rate + SETUP_MARGIN_S + 20
            while len(connected) < n and time.monotonic() < deadline and all(x.alive() for x in sipps):
                for _, a in bots:
                    while a.poll(0):
                        msg = a.recv()
                        if msg[0] == "connected":
                            connected[msg[1]] = msg[3]
                        elif msg[0] == "failed":
                            failures.append(f"{msg[1]}: {msg[2]}")
                time.sleep(0.05)
            all_in = time.time()
            w0 = all_in + WARM_S
            w1 = min(w0 + args.hold, t_start + hold_ms / 1000 - 1.0)
            if w1 - w0 < 2.0:  # the calls did not all get through in time: measure what there is
                w0 = time.time()
                w1 = w0 + 2.0
            time.sleep(max(0.0, w0 - time.time()))
            meter.start()
            time.sleep(max(0.0, w1 - time.time()))
            fig = meter.stop()
            for x in sipps:
                try:
                    x.proc.wait(hold_ms / 1000 + 90)
                except Exception:
                    x.stop(5, signal.SIGINT)
            time.sleep(2.0)  # the last hang-ups reach the agents
            records: list[dict[str, Any]] = []
            bot_errors: list[str] = []
            for p, a in bots:
                a.send(("report",))
                if a.poll(30):
                    msg = a.recv()
                    records += msg[1]
                    bot_errors += msg[2]
            times: dict[str, dict[str, float]] = {}
            sipp_ok = sipp_failed = 0
            sipp_errs: list[str] = []
            busy = 0
            for x in sipps:
                times.update(x.times())
                st = x.stats()
                sipp_ok += int(st.get("SuccessfulCall(C)", 0) or 0)
                sipp_failed += int(st.get("FailedCall(C)", 0) or 0)
                sipp_errs += x.errors(2)
                busy += x.count("486 Busy Here")
            row = analyse(n, records, times, w0, w1)
            row.update(
                kind="unidesk", workers=workers, with_hub_load=bool(load), calls_placed=n,
                sipp_ok=sipp_ok, sipp_failed=sipp_failed, sipp_busy=busy, sipp_errors=sipp_errs[:4],
                bot_problems=(failures + bot_errors)[:4], **fig,
            )
            row["worker_ms_per_call_s"] = 1000 * fig["cpu_workers"] / max(1, row["bridged"])
            row["held"] = (row["bridged"] == n and sipp_failed == 0 and sipp_ok == n
                           and row["frames_lost"] < 0.01 and row["caller_gaps"] < 0.01)
            if load is not None:
                h = load.finish()
                load = None
                row["hub_load"] = {k: h.get(k) for k in ("agents", "boards", "rate_target", "changes_per_s",
                                                          "latency_ms_p50", "latency_ms_p99", "error_frames",
                                                          "connections_held", "connections_expected",
                                                          "error_sample")}
            return row
        finally:
            if load is not None:
                load.stop()
            for x in sipps:
                x.stop(5, signal.SIGINT)
            stop_bots(bots)
            for w in ws:
                w.stop()

    # ------------------------------------------------------------ one baseline step

    def baseline_step(self, n: int) -> dict[str, Any]:
        args = self.args
        self.step_no += 1
        s = self.step_no
        hold_ms = self.hold_ms(n)
        d = self.folder(f"s{s}-baseline", hold_ms)
        uas = EchoUas(d)
        ctx = mp.get_context("spawn")
        uac = None
        probe = None
        try:
            time.sleep(0.5)
            if not uas.alive():
                raise RuntimeError(f"sipp UAS exited: {uas.tail()}")
            t_start = time.time()
            uac = Sipp(d, f"s{s}base", f"127.0.0.1:{uas.sip_port}", "support", n, args.rate, hold_ms,
                       hold_ms / 1000 + 60, 24000)
            w0 = t_start + n / args.rate + 2.0
            w1 = min(w0 + args.hold, t_start + hold_ms / 1000 - 1.0)
            time.sleep(max(0.0, w0 - 0.3 - time.time()))
            a, b = ctx.Pipe()
            probe = ctx.Process(target=probe_worker, args=(b, uas.media_port, 4, w1 - w0), daemon=True)
            probe.start()
            meter = Meter({"uas": [uas.pid], "sipp": [uac.pid], "probe": [probe.pid]})
            time.sleep(max(0.0, w0 - time.time()))
            meter.start()
            time.sleep(max(0.0, w1 - time.time()))
            fig = meter.stop()
            res = a.recv() if a.poll(30) else {"sent": 0, "received": 0, "delays": []}
            uac.proc.wait(hold_ms / 1000 + 90)
            st = uac.stats()
            ok, failed = int(st.get("SuccessfulCall(C)", 0) or 0), int(st.get("FailedCall(C)", 0) or 0)
            lost = 1 - res["received"] / res["sent"] if res["sent"] else 1.0
            delays = [x * 1000 for x in res["delays"]]
            row = dict(kind="baseline", n=n, calls_placed=n, sipp_ok=ok, sipp_failed=failed,
                       sipp_errors=uac.errors(2), bridged=ok, frames_lost=max(0.0, lost), caller_gaps=0.0,
                       delay_ms_p50=pct(delays, 50), delay_ms_p99=pct(delays, 99), delay_samples=len(delays),
                       **fig)
            row["uas_ms_per_call_s"] = 1000 * fig["cpu_uas"] / n
            row["held"] = ok == n and failed == 0 and lost < 0.01
            return row
        finally:
            if probe is not None:
                probe.join(5)
                if probe.is_alive():
                    probe.terminate()
            if uac is not None:
                uac.stop(5, signal.SIGINT)
            uas.stop(5, signal.SIGINT)


# ---------------------------------------------------------------- figures


def analyse(n: int, records: list[dict[str, Any]], times: dict[str, dict[str, float]], w0: float,
            w1: float) -> dict[str, Any]:
    setup, to_bridged, delays = [], [], []
    received = due = 0.0
    gap_frames = tone_due = 0.0
    bridged = 0
    problems: list[str] = []
    stuck = []
    for r in records:
        problems += r["problems"]
        if r.get("stuck"):
            stuck.append(f"{r['agent']} still connected to {r['caller']} after the caller hung up")
        sent = times.get(r["caller"], {})
        if "invite" in sent:
            setup.append((r["t_offer"] - sent["invite"]) * 1000)
            to_bridged.append((r["t_connected"] - sent["invite"]) * 1000)
        t = np.frombuffer(r["t"], np.float64)
        rms = np.frombuffer(r["rms"], np.float32)
        if r["t_connected"] <= w0 and r["t_end"] >= w1 and not r["problems"]:
            bridged += 1
            inside = (t >= w0) & (t < w1)
            received += float(inside.sum())
            due += 50.0 * (w1 - w0)
            loud = rms[inside] >= LOUD_RMS
            g, tone = _gaps(loud)
            gap_frames += g
            tone_due += tone
        if "play" in sent:
            play = sent["play"]
            for onset in np.frombuffer(r["onsets"], np.float64):
                if onset < r["t_connected"] + 0.3 or onset > r["t_end"] - 0.1:
                    continue  # the first onset after connecting may be a cut-in, not an onset
                dd = onset - play - ONSET_S + 0.02
                c = math.floor(dd + 0.25)
                delays.append((dd - c) * 1000)
    return dict(
        n=n,
        bridged=bridged,
        offered=len(records),
        frames_lost=max(0.0, 1 - received / due) if due else 1.0,
        caller_gaps=gap_frames / tone_due if tone_due else 1.0,
        setup_ms_p50=pct(setup, 50), setup_ms_p99=pct(setup, 99),
        bridged_ms_p50=pct(to_bridged, 50), bridged_ms_p99=pct(to_bridged, 99),
        delay_ms_p50=pct(delays, 50), delay_ms_p99=pct(delays, 99), delay_samples=len(delays),
        call_problems=problems[:4],
        stuck_after_hangup=len(stuck),
        stuck_sample=stuck[:2],
    )


def _gaps(loud: np.ndarray) -> tuple[float, float]:
    """(missing tone frames, tone frames due) in a window of loud/quiet flags, one per frame received."""
    if len(loud) == 0:
        return 0.0, 0.0
    tone_due = len(loud) * (CYCLE_FRAMES - SILENT_FRAMES) / CYCLE_FRAMES
    change = np.flatnonzero(np.diff(loud.astype(np.int8))) + 1
    bounds = np.concatenate([[0], change, [len(loud)]])
    missing = 0
    for a, b in zip(bounds[:-1], bounds[1:]):
        if loud[a] or a == 0 or b == len(loud):
            continue  # tone, or a quiet run cut by the window's edge
        run = b - a
        if run <= 6:
            missing += run
        elif run > SILENT_FRAMES + 3:
            missing += run - SILENT_FRAMES
    return float(missing), tone_due


# ---------------------------------------------------------------- output


def f(x: float | None, spec: str = ".0f") -> str:
    return "-" if x is None else format(x, spec)


def show(row: dict[str, Any]) -> None:
    if row["kind"] == "unidesk":
        who = f"unidesk{'+hubload' if row['with_hub_load'] else ''} w={row['workers']}"
        cpu = (f"cpu workers {row['cpu_workers'] * 100:3.0f}% ({row['worker_ms_per_call_s']:.2f} ms/s/call)"
               f" hub {row['cpu_hub'] * 100:3.0f}% bots {row['cpu_bots'] * 100:3.0f}% sipp {row['cpu_sipp'] * 100:2.0f}%"
               + (f" wsload {row['cpu_hubload'] * 100:3.0f}%" if "cpu_hubload" in row else ""))
        setup = (f" setup p50/p99 {f(row['setup_ms_p50'])}/{f(row['setup_ms_p99'])} ms"
                 f" (bridged {f(row['bridged_ms_p50'])}/{f(row['bridged_ms_p99'])})")
    else:
        who = "baseline"
        cpu = (f"cpu uas {row['cpu_uas'] * 100:3.0f}% ({row['uas_ms_per_call_s']:.2f} ms/s/call)"
               f" uac {row['cpu_sipp'] * 100:2.0f}% probe {row['cpu_probe'] * 100:2.0f}%")
        setup = ""
    print(
        f"{who:22} N={row['n']:3d} bridged {row['bridged']:3d} sipp ok/failed {row['sipp_ok']}/{row['sipp_failed']}"
        f"  lost {row['frames_lost'] * 100:5.2f}% gaps {row['caller_gaps'] * 100:5.2f}%{setup}"
        f"  delay p50/p99 {f(row['delay_ms_p50'], '.1f')}/{f(row['delay_ms_p99'], '.1f')} ms"
        f"  {cpu}  machine {row['machine_cores']:.2f} cores (other {row['other_cores']:.2f}),"
        f" psi {row['pressure'] * 100:3.0f}%, load1 {row['load1']:.1f}  {'held' if row['held'] else 'NOT held'}",
        flush=True,
    )
    if row.get("sipp_busy"):
        print(f"     ! {row['sipp_busy']} call(s) refused with 486 Busy Here by the worker's SIP stack: pjsua2"
              " refuses calls beyond its compiled PJSUA_MAX_CALLS (4 in the PyPI wheel, docs/sip.md)", flush=True)
    if row.get("stuck_after_hangup"):
        print(f"     ! {row['stuck_after_hangup']} call(s) still connected for their agent after the caller hung up,"
              f" e.g. {row['stuck_sample'][0]}", flush=True)
    extra = row.get("sipp_errors", []) + row.get("bot_problems", []) + row.get("call_problems", [])
    for e in extra[:4]:
        print(f"     ! {e[:240]}", flush=True)
    if "hub_load" in row:
        h = row["hub_load"]
        print(f"     websocket load: {h['connections_held']}/{h['connections_expected']} connections,"
              f" {h['changes_per_s']}/s changes (target {h['rate_target']:g}), p50/p99 {h['latency_ms_p50']}/"
              f"{h['latency_ms_p99']} ms, {h['error_frames']} error frames", flush=True)


def best(rows: list[dict[str, Any]]) -> dict[str, Any] | None:
    """The largest step held, provided every step below it was held too."""
    out = None
    for r in sorted(rows, key=lambda r: r["n"]):
        if not r["held"]:
            break
        out = r
    return out


def ratio(a: float | None, b: float | None) -> float | None:
    return None if a is None or not b else round(a / b, 3)


# ---------------------------------------------------------------- main


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="smoke run: 4 calls, 4 s held, one pass")
    ap.add_argument("--steps", default=None, help="concurrent calls to ramp through (default 10,20,30; "
                                                  "20,40,60 with --workers 2)")
    ap.add_argument("--workers", type=int, choices=(1, 2), default=1)
    ap.add_argument("--lanes", type=int, default=8, help="SIP lanes per worker, 4 calls each (default 8: 32 calls)")
    ap.add_argument("--rate", type=float, default=5.0, help="calls placed per second (default 5)")
    ap.add_argument("--hold", type=float, default=10.0, help="seconds all calls are bridged and measured")
    ap.add_argument("--hub-load", action="store_true", help="then run the ramp again with the websocket load")
    ap.add_argument("--hub-agents", type=int, default=1000, help="websocket load: agents (default 1000)")
    ap.add_argument("--hub-boards", type=int, default=10, help="websocket load: boards (default 10)")
    ap.add_argument("--hub-rate", type=float, default=50.0, help="websocket load: state changes/s (default 50)")
    ap.add_argument("--no-baseline", action="store_true")
    ap.add_argument("--keep-going", action="store_true", help="do not stop the ramp at the first step not held")
    ap.add_argument("--settle", type=float, default=30.0, help="wait up to this long before a step for the "
                                                               "machine's CPU pressure to fall under --settle-below")
    ap.add_argument("--settle-below", type=float, default=0.2)
    ap.add_argument("--log-dir", default=None, help="keep the hub's, workers' and sipp's logs here")
    ap.add_argument("--json", action="store_true", help="only the final JSON line on stdout")
    args = ap.parse_args(argv)
    if shutil.which("sipp") is None:
        print("bench_sip: sipp is not installed (Debian package sip-tester)", file=sys.stderr)
        return 2
    if args.quick:
        steps = [4]
        args.hold = min(args.hold, 4.0)
    elif args.steps:
        steps = [int(x) for x in args.steps.split(",")]
    else:
        top = 4 * args.lanes * args.workers  # what the workers' lanes hold (PJSUA_MAX_CALLS 4 each)
        steps = [n for n in ([20, 40, 60] if args.workers == 2 else [10, 20, 30]) if n <= top] or [top]
    if args.json:
        sys.stdout = open(os.devnull, "w")  # noqa: SIM115 - the JSON line goes to the real stdout below
    real_stdout = sys.__stdout__

    def on_term(signum: int, frame: Any) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, on_term)
    tmp = Path(tempfile.mkdtemp(prefix="unidesk-sipbench-"))
    logs = Path(args.log_dir).resolve() if args.log_dir else tmp / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    per_queue = sum(math.ceil(n / args.workers) for n in steps) * (2 if args.hub_load else 1)
    run = Run(args, tmp, logs)
    passes = [False] + ([True] if args.hub_load else [])
    results: dict[str, list[dict[str, Any]]] = {}
    t_begin = time.monotonic()
    print(f"SIP benchmark: steps {steps}, {args.workers} media worker(s), {args.rate:g} calls/s, {args.hold:g} s"
          f" held, {os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.2f}", flush=True)
    try:
        say("preparing the store (demo tenant + bench agents)")
        run.store = prepare(tmp, per_queue, per_queue if args.workers == 2 else 0,
                            args.hub_agents * len(steps) if args.hub_load else 0,
                            args.hub_boards if args.hub_load else 0)
        run.store.load_parts = len(steps)
        run.hub = Hub(run.store, logs / "hub.log")
        run.hub.wait_healthy()
        for hub_load in passes:
            key = f"unidesk{'+hubload' if hub_load else ''}"
            results[key] = []
            base_rows = results.setdefault("baseline", [])
            running = {"unidesk": True, "baseline": not args.no_baseline and not hub_load}
            for n in steps:
                if not any(running.values()):
                    break
                if running["unidesk"]:
                    settle(args.settle_below, args.settle)
                    say(f"-- {key}, N={n}")
                    row = run.unidesk_step(n, args.workers, hub_load)
                    results[key].append(row)
                    show(row)
                    if not row["held"] and not args.keep_going:
                        running["unidesk"] = False
                if running["baseline"]:
                    settle(args.settle_below, args.settle)
                    say(f"-- baseline, N={n}")
                    row = run.baseline_step(n)
                    base_rows.append(row)
                    show(row)
                    if not row["held"] and not args.keep_going:
                        running["baseline"] = False
                    # The baseline follows the ramp of the bridge; it is not ramped past it.
                    if not running["unidesk"]:
                        running["baseline"] = False
    except KeyboardInterrupt:
        print("bench_sip: interrupted", file=sys.stderr)
        return 130
    except Exception:
        if run.hub is not None:
            say(f"hub log (tail): {run.hub.tail(3000)}")
        raise
    finally:
        if run.hub is not None:
            run.hub.stop()
        if not args.log_dir:
            shutil.rmtree(tmp, ignore_errors=True)

    summary: dict[str, Any] = {}
    base = best(results.get("baseline", []))
    print()
    print(f"{'target':18} {'calls held':>10} {'lost %':>7} {'gaps %':>7} {'setup p50/p99 ms':>17}"
          f" {'delay p50/p99 ms':>17} {'cpu ms/s/call':>14} {'machine cores':>14} {'load1':>6}")
    for key, rows in results.items():
        b = best(rows)
        summary[key] = {"held": b["n"] if b else 0, "at": b}
        if b is None:
            print(f"{key:18} {0:10d}")
            continue
        cpu = b["worker_ms_per_call_s"] if b["kind"] == "unidesk" else b["uas_ms_per_call_s"]
        print(f"{key:18} {b['n']:10d} {b['frames_lost'] * 100:7.2f} {b['caller_gaps'] * 100:7.2f}"
              f" {f(b.get('setup_ms_p50')):>8}/{f(b.get('setup_ms_p99')):<8}"
              f" {f(b['delay_ms_p50'], '.1f'):>8}/{f(b['delay_ms_p99'], '.1f'):<8} {cpu:14.2f}"
              f" {b['machine_cores']:14.2f} {b['load1']:6.1f}")
    comparisons = {}
    goals = {}
    for key in [k for k in results if k != "baseline"]:
        u = summary[key]["at"]
        if base is not None:
            comparisons[key] = {
                "calls_held_ratio": ratio(summary[key]["held"], base["n"]),
                "baseline_capped_at": base["n"],
                "cpu_per_call_ratio": ratio(u["worker_ms_per_call_s"], base["uas_ms_per_call_s"]) if u else None,
                "delay_p50_ratio": ratio(u["delay_ms_p50"], base["delay_ms_p50"]) if u else None,
            }
            c = comparisons[key]
            print(f"ratio {key}/baseline: calls held {f(c['calls_held_ratio'], '.2f')} (the baseline was not"
                  f" ramped past {base['n']}), cpu per call {f(c['cpu_per_call_ratio'], '.1f')},"
                  f" delay p50 {f(c['delay_p50_ratio'], '.1f')}")
        want = GOAL_TWO_WORKERS if args.workers == 2 else GOAL_ONE_WORKER
        # The bridge's share: the agents' p50 less the baseline's (the onset detector's own error).
        delay = u["delay_ms_p50"] if u else None
        if delay is not None and base is not None and base["delay_ms_p50"] is not None:
            delay -= base["delay_ms_p50"]
        goals[key] = {f"calls_held>={want}": summary[key]["held"] >= want,
                      f"added_delay_p50<{GOAL_DELAY_MS:g}ms": delay is not None and delay < GOAL_DELAY_MS}
        print(f"goals {key}: " + ", ".join(f"{k} {'met' if v else 'MISSED'}" for k, v in goals[key].items()))
    out = {
        "load": {"steps": steps, "workers": args.workers, "rate": args.rate, "hold_s": args.hold,
                 "hub_load": {"agents": args.hub_agents, "boards": args.hub_boards, "rate": args.hub_rate}
                 if args.hub_load else None, "cpus": os.cpu_count()},
        "results": {k: [{kk: vv for kk, vv in r.items()} for r in rows] for k, rows in results.items()},
        "held": {k: v["held"] for k, v in summary.items()},
        "comparisons": comparisons,
        "goals": goals,
        "all_goals_met": bool(goals) and all(all(g.values()) for g in goals.values()),
        "wall_seconds": round(time.monotonic() - t_begin, 1),
    }
    print(json.dumps(out, separators=(",", ":"), default=str), file=real_stdout, flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
