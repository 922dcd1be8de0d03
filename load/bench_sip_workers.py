"""Bridged SIP calls per host: K media worker processes on one machine, calls across them over links.

    python load/bench_sip_workers.py                   # K = 1, 2, 4, 8, 12, four calls per worker
    python load/bench_sip_workers.py --workers 1,2,4   # chosen K
    python load/bench_sip_workers.py --quick           # K = 1, 2 only, 4 s held
    python load/bench_sip_workers.py --workers 1,2 --lanes 8   # 8 SIP lanes per worker: 32 calls each

The PyPI pjsua2 wheel holds at most 4 SIP calls per pjsua2 instance (PJSUA_MAX_CALLS, docs/sip.md); a
worker runs `--lanes` instances (UNIDESK_SIP_LANES, bridge/lanes.py) behind its one SIP port, so a
worker holds 4 x lanes calls and a host what its workers hold. For each K: a hub (SQLite), K fresh
media workers (`unidesk media-worker`, each its own SIP port, softphone capacity ceil(N/K)), N = 4K
bot agents (load/sipload/bots.py: aiortc softphones that accept every offer at once) placed by the
hub (it fills one worker with a tenant's softphones before the next), and one sipp per worker placing
its 4 x lanes G.711 calls at the worker's one SIP port (the scenario and pcap of load/bench_sip.py: a 1000 Hz tone 800 ms a second). The
ACD gives each caller whichever agent is free, so a caller and its agent are often on two workers:
those calls cross an audio link (realtime/medialinks.py); the share that did is counted from the
workers' logs (one `side a` line per link opened).

Figures per K (the definitions of load/bench_sip.py): calls bridged through the measured window,
frames lost and caller audio gaps at the agents, set-up (sipp's INVITE to the agent's
`contact-offered`) p50/p99, the workers' CPU per call, the share of calls over a link, and the same
run's baseline at the same N (sipp's UAC calling sipp's echo UAS: no hub, no bridge). A K is held
when all N calls were bridged and frames lost and gaps are both under 1 %.
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

from bench_sip import GOAL_DELAY_MS, GOAL_ONE_WORKER, SETUP_MARGIN_S, WARM_S, Run, analyse, f, ratio  # noqa: E402
from sipload.bots import start_bots, stop_bots  # noqa: E402
from sipload.common import Meter, free_udp_tcp_port, say, settle  # noqa: E402
from sipload.procs import Hub, Sipp, Worker, prepare  # noqa: E402

CALLS_PER_WORKER = 4  # PJSUA_MAX_CALLS of the PyPI wheel


class WorkersRun(Run):
    def workers_step(self, k: int, n: int, lanes: int = 1) -> dict[str, Any]:
        args, hub, store = self.args, self.hub, self.store
        assert hub is not None and store is not None
        self.step_no += 1
        hold_ms = self.hold_ms(n)
        o = self.agent_offset
        people = store.support[o:o + n]
        self.agent_offset += n
        ctx = mp.get_context("spawn")
        ws: list[Worker] = []
        bots: list[tuple[Any, Any]] = []
        sipps: list[Sipp] = []
        try:
            for g in range(k):
                ws.append(Worker(hub, f"k{k}w{g + 1}", free_udp_tcp_port(), math.ceil(n / k),
                                 self.logs / f"worker-k{k}w{g + 1}.log", lanes=lanes))
            for w in ws:
                w.wait_registered()
            start_bots(ctx, hub.url, people, bots)
            say(f"   K={k}: {n} agents available; placing {n // k} calls on each worker,"
                f" {args.rate:g}/s in all, {hold_ms / 1000:.0f} s each")
            t_start = time.time()
            per = [n // k + (1 if g < n % k else 0) for g in range(k)]
            for g, count in enumerate(per):
                if not count:
                    continue
                d = self.folder(f"k{k}-w{g + 1}", hold_ms)
                sipps.append(Sipp(d, f"k{k}w{g + 1}", f"127.0.0.1:{ws[g].sip_port}", "support", count,
                                  args.rate * count / n, hold_ms, hold_ms / 1000 + 60, 20000 + 1000 * g))
            meter = Meter({"workers": [w.pid for w in ws], "hub": [hub.pid], "bots": [p.pid for p, _ in bots],
                           "sipp": [x.pid for x in sipps]})
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
            w0 = time.time() + WARM_S
            w1 = min(w0 + args.hold, t_start + hold_ms / 1000 - 1.0)
            if w1 - w0 < 2.0:
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
            time.sleep(2.0)
            records: list[dict[str, Any]] = []
            bot_errors: list[str] = []
            for p, a in bots:
                a.send(("report",))
                if a.poll(30):
                    msg = a.recv()
                    records += msg[1]
                    bot_errors += msg[2]
            times: dict[str, dict[str, float]] = {}
            sipp_ok = sipp_failed = busy = 0
            sipp_errs: list[str] = []
            for x in sipps:
                times.update(x.times())
                st = x.stats()
                sipp_ok += int(st.get("SuccessfulCall(C)", 0) or 0)
                sipp_failed += int(st.get("FailedCall(C)", 0) or 0)
                sipp_errs += x.errors(2)
                busy += x.count("486 Busy Here")
            row = analyse(n, records, times, w0, w1)
            linked = sum((self.logs / f"worker-k{k}w{g + 1}.log").read_text(errors="replace").count("(side a)")
                         for g in range(k))
            row.update(kind="unidesk", workers=k, lanes=lanes, calls_placed=n, sipp_ok=sipp_ok, sipp_failed=sipp_failed,
                       sipp_busy=busy, sipp_errors=sipp_errs[:4], bot_problems=(failures + bot_errors)[:4],
                       links=linked, linked_share=min(1.0, linked / max(1, len(records))), **fig)
            row["worker_ms_per_call_s"] = 1000 * fig["cpu_workers"] / max(1, row["bridged"])
            row["held"] = (row["bridged"] == n and sipp_failed == 0 and sipp_ok == n
                           and row["frames_lost"] < 0.01 and row["caller_gaps"] < 0.01)
            return row
        finally:
            for x in sipps:
                x.stop(5, signal.SIGINT)
            stop_bots(bots)
            for w in ws:
                w.stop()


def added_delay(row: dict[str, Any], base: dict[str, Any] | None) -> float | None:
    """The bridge's share of the delay: the agents' p50 less the same run's baseline p50 (the probes'
    tone onsets through sipp's echo: the clocks, the pacing and the onset detector's own error)."""
    if row.get("delay_ms_p50") is None:
        return None
    return row["delay_ms_p50"] - ((base["delay_ms_p50"] or 0.0) if base else 0.0)


def show(row: dict[str, Any], base: dict[str, Any] | None) -> None:
    r = row
    line = (f"K={r['workers']:2d} lanes={r.get('lanes', 1)} N={r['n']:3d} bridged {r['bridged']:3d} sipp ok/failed {r['sipp_ok']}/{r['sipp_failed']}"
            f" lost {r['frames_lost'] * 100:5.2f}% gaps {r['caller_gaps'] * 100:5.2f}%"
            f" setup p50/p99 {f(r['setup_ms_p50'])}/{f(r['setup_ms_p99'])} ms"
            f" delay p50/p99 {f(r['delay_ms_p50'], '.1f')}/{f(r['delay_ms_p99'], '.1f')} ms"
            f" cpu workers {r['cpu_workers'] * 100:3.0f}% ({r['worker_ms_per_call_s']:.1f} ms/s/call)"
            f" hub {r['cpu_hub'] * 100:3.0f}% bots {r['cpu_bots'] * 100:3.0f}%"
            f" over a link {r['links']}/{r['offered']} ({r['linked_share'] * 100:.0f}%)"
            f" load1 {r['load1']:.1f} {'held' if r['held'] else 'NOT held'}")
    if base is not None:
        line += (f" | baseline N={base['n']} ok {base['sipp_ok']} lost {base['frames_lost'] * 100:.2f}%"
                 f" delay p50 {f(base['delay_ms_p50'], '.1f')} ms"
                 f" cpu {base['uas_ms_per_call_s']:.2f} ms/s/call; ratio calls"
                 f" {f(ratio(r['bridged'], base['sipp_ok']), '.2f')}, cpu/call"
                 f" {f(ratio(r['worker_ms_per_call_s'], base['uas_ms_per_call_s']), '.0f')};"
                 f" added delay p50 {f(added_delay(r, base), '.1f')} ms")
    print(line, flush=True)
    for e in (r.get("sipp_errors", []) + r.get("bot_problems", []) + r.get("call_problems", []))[:4]:
        print(f"     ! {e[:240]}", flush=True)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--workers", default="1,2,4,8,12", help="worker processes per step (default 1,2,4,8,12)")
    ap.add_argument("--quick", action="store_true", help="K = 1, 2 only, 4 s held")
    ap.add_argument("--lanes", type=int, default=1, help="SIP lanes per worker, 4 calls each (default 1)")
    ap.add_argument("--calls", type=int, default=0, help="calls per worker (default 4 x lanes, what they hold)")
    ap.add_argument("--rate", type=float, default=5.0, help="calls placed per second in all (default 5)")
    ap.add_argument("--hold", type=float, default=10.0, help="seconds all calls are bridged and measured")
    ap.add_argument("--no-baseline", action="store_true")
    ap.add_argument("--settle", type=float, default=30.0)
    ap.add_argument("--settle-below", type=float, default=0.2)
    ap.add_argument("--log-dir", default=None, help="keep the hub's, workers' and sipp's logs here")
    args = ap.parse_args(argv)
    if shutil.which("sipp") is None:
        print("bench_sip_workers: sipp is not installed (Debian package sip-tester)", file=sys.stderr)
        return 2
    ks = [1, 2] if args.quick else [int(x) for x in args.workers.split(",")]
    if args.quick:
        args.hold = min(args.hold, 4.0)
    tmp = Path(tempfile.mkdtemp(prefix="unidesk-sipworkers-"))
    logs = Path(args.log_dir).resolve() if args.log_dir else tmp / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    run = WorkersRun(args, tmp, logs)
    rows: list[dict[str, Any]] = []
    per_worker = args.calls or CALLS_PER_WORKER * args.lanes
    if not 1 <= per_worker <= CALLS_PER_WORKER * args.lanes:
        print(f"bench_sip_workers: --calls {per_worker}: 1 to {CALLS_PER_WORKER * args.lanes} with {args.lanes} lane(s)",
              file=sys.stderr)
        return 2
    print(f"SIP per host: K = {ks}, {args.lanes} lane(s), {per_worker} calls per worker, {args.rate:g} calls/s, {args.hold:g} s held,"
          f" {os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.2f}", flush=True)
    try:
        run.store = prepare(tmp, sum(per_worker * k for k in ks), 0, 0, 0)
        run.hub = Hub(run.store, logs / "hub.log")
        run.hub.wait_healthy()
        for k in ks:
            n = per_worker * k
            settle(args.settle_below, args.settle)
            say(f"-- K={k}, lanes={args.lanes}, N={n}")
            row = run.workers_step(k, n, args.lanes)
            base = None
            if not args.no_baseline:
                settle(args.settle_below, args.settle)
                base = run.baseline_step(n)
            row["baseline"] = base
            rows.append(row)
            show(row, base)
    except KeyboardInterrupt:
        return 130
    finally:
        if run.hub is not None:
            run.hub.stop()
        if not args.log_dir:
            shutil.rmtree(tmp, ignore_errors=True)
    print()
    print(f"{'K':>3} {'lanes':>5} {'calls held':>10} {'lost %':>7} {'setup p50/p99 ms':>17} {'delay p50 ms':>13} {'cpu ms/s/call':>14}"
          f" {'over a link':>12} {'vs baseline calls':>18} {'cpu/call x':>11}")
    for r in rows:
        b = r["baseline"]
        held = r["bridged"] if r["frames_lost"] < 0.01 and r["caller_gaps"] < 0.01 else 0
        print(f"{r['workers']:3d} {r['lanes']:5d} {held:10d} {r['frames_lost'] * 100:7.2f}"
              f" {f(r['setup_ms_p50']):>8}/{f(r['setup_ms_p99']):<8} {f(r['delay_ms_p50'], '.1f'):>13}"
              f" {r['worker_ms_per_call_s']:14.1f}"
              f" {r['linked_share'] * 100:11.0f}% {f(ratio(held, b['sipp_ok'] if b else None), '.2f'):>18}"
              f" {f(ratio(r['worker_ms_per_call_s'], b['uas_ms_per_call_s'] if b else None), '.0f'):>11}")
    for r in rows:
        k, b = r["workers"], r["baseline"]
        held = r["bridged"] if r["held"] else 0
        added = added_delay(r, b)
        print(f"goals K={k}: calls held>={GOAL_ONE_WORKER * k} {'met' if held >= GOAL_ONE_WORKER * k else 'MISSED'}"
              f" ({held}), added delay p50<{GOAL_DELAY_MS:g} ms"
              f" {'met' if added is not None and added < GOAL_DELAY_MS else 'MISSED'} ({f(added, '.1f')} ms"
              f"{'' if b else ', no baseline: the whole delay'})")
    print(json.dumps({"rows": rows}, separators=(",", ":"), default=str), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
