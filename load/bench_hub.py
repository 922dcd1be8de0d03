#!/usr/bin/env python
"""Load benchmark of the websocket hub: simulated agents change state, supervisors watch boards.

    python load/bench_hub.py                      # 5,000 agents, 50 boards, 200 changes/s, 20 s
    python load/bench_hub.py --quick              # smoke run: 200 agents, 5 boards, 50/s, 5 s
    python load/bench_hub.py --backend redis      # PostgreSQL + Redis instead of SQLite + in-process bus
    python load/bench_hub.py --backend both --json

What happens, in order (see load/README.md for the meaning of every figure):

1. A fresh database (SQLite file, or a new PostgreSQL database for `redis`) is
   migrated and seeded with the demo tenant, then N agents and B supervisors are
   added to it directly; their access tokens are minted with the hub's secret.
2. A hub (`python -m realtime.cli serve`) is started as a subprocess.
3. Client processes connect: one or more for the boards (supervisors), and
   `--agent-procs` for the agents, in batches of `--batch` connections.
4. The agent processes send `set-state` frames at `--rate` changes per second in
   total (each change picks a random agent with no change in flight), for
   `--warmup` + `--duration` seconds; only the last `--duration` seconds count.
5. The same client load is run against a bare Starlette websocket broadcast
   server (`hubload/baseline.py`, run as this file's `--bare-server PORT`), the
   minimal fan-out, as the baseline.

Latency is measured with CLOCK_MONOTONIC (`time.monotonic()`), which is one
clock for every process of the machine: the agent process notes the moment it
hands a `set-state` frame to its socket, each board process the moment it has
the matching `agent-state` event decoded. The two are joined on (agent id,
`since`), `since` being the exact float the hub put in the event.

Every subprocess is stopped on exit, also on Ctrl+C; every loop is bounded in
count and time. `--profile FILE` profiles the hub (cProfile) during the
measured window only and writes the stats to FILE (read them with `python -m
pstats FILE`).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
# The repository (for `realtime` and `store`) and this directory (for `hubload`), also in the
# client processes, which multiprocessing starts with this sys.path.
for _p in (str(ROOT), str(HERE)):
    if _p not in sys.path:
        sys.path.insert(0, _p)
del _p

from hubload.backends import prepare, run_cleanup  # noqa: E402
from hubload.baseline import bare_server  # noqa: E402
from hubload.common import raise_nofile, say, set_quiet  # noqa: E402
from hubload.measure import Load, measure  # noqa: E402
from hubload.report import goals_for, print_table, ratio  # noqa: E402
from hubload.servers import Server, profiled_hub, start_bare, start_hub  # noqa: E402


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description="Load benchmark of the unidesk websocket hub.")
    p.add_argument("--agents", type=int, default=5000, help="agent connections (default 5000)")
    p.add_argument("--boards", type=int, default=50, help="supervisor board connections (default 50)")
    p.add_argument(
        "--rate", type=float, default=200.0, help="state changes per second, all agents together (200)"
    )
    p.add_argument("--duration", type=float, default=20.0, help="measured seconds (default 20)")
    p.add_argument(
        "--warmup", type=float, default=None, help="seconds of load not measured (default 5; 2 with --quick)"
    )
    p.add_argument(
        "--backend",
        choices=["embedded", "redis", "both"],
        default="embedded",
        help="SQLite + in-process bus, PostgreSQL + Redis, or both in turn (default embedded)",
    )
    p.add_argument("--quick", action="store_true", help="smoke run: 200 agents, 5 boards, 50/s, 5 s")
    p.add_argument("--no-baseline", action="store_true", help="skip the bare broadcast server")
    p.add_argument("--agent-procs", type=int, default=2, help="client processes for the agents (default 2)")
    p.add_argument("--board-procs", type=int, default=1, help="client processes for the boards (default 1)")
    p.add_argument(
        "--batch",
        type=int,
        default=None,
        help="connections opened at a time per client process (default 200; 40 against a Redis-backed hub)",
    )
    p.add_argument(
        "--compression",
        choices=["none", "deflate"],
        default="none",
        help="offer permessage-deflate like a browser does (default none)",
    )
    p.add_argument("--seed", type=int, default=1, help="random seed of the agent choice")
    p.add_argument("--live-calls", type=int, default=0, metavar="N",
                   help="on the redis backend, measure again with N calls' live analytics reported every second")
    p.add_argument("--profile", metavar="FILE", help="cProfile the hub during the measured window into FILE")
    p.add_argument("--log-dir", metavar="DIR", help="keep the servers' logs in DIR (default: removed)")
    p.add_argument("--json", action="store_true", help="print only the final JSON line")
    p.add_argument("--check", action="store_true", help="exit with 3 when a goal is missed")
    p.add_argument("--bare-server", type=int, metavar="PORT", help=argparse.SUPPRESS)
    p.add_argument("--profiled-hub", metavar="FILE", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.quick:
        defaults = p.parse_args([])
        for name, quick in (("agents", 200), ("boards", 5), ("rate", 50.0), ("duration", 5.0)):
            if getattr(args, name) == getattr(defaults, name):
                setattr(args, name, quick)
    if args.warmup is None:
        args.warmup = 2.0 if args.quick else 5.0
    if args.agents < 1 or args.boards < 1 or args.rate <= 0 or args.duration <= 0:
        p.error("--agents, --boards, --rate and --duration must be positive")
    too_big = args.agents > 50_000 or args.boards > 1000 or args.rate > 20_000
    if too_big or args.duration + args.warmup > 600:
        p.error("that is beyond what this benchmark is meant for (agents 50k, boards 1k, rate 20k/s, 10 min)")
    return args


def measure_with_calls(label: str, hub: Any, load: Any, prep: Any, calls: int) -> dict[str, Any]:
    """The same load while `calls` calls' live analytics reach the boards (hubload/livecalls.py)."""
    from hubload.common import REDIS_URL
    from hubload.livecalls import Feeder, seed

    say(f"  again with {calls} live calls reported every second")
    seed(REDIS_URL, prep.env["UNIDESK_REDIS_PREFIX"], prep.tenant_id, prep.agent_ids, calls)
    feeder = Feeder(hub.ws_url, prep.secret, calls)
    feeder.start()
    try:
        r = measure(label, hub, load, prep)
    finally:
        feeder.stop()
    if feeder.error or not feeder.sent:
        raise RuntimeError(f"the live-calls feeder failed: {feeder.error or 'nothing sent'}")
    r["live_calls"] = calls
    r["analytics_reports_sent"] = feeder.sent
    return r


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.bare_server is not None:
        raise_nofile()
        bare_server(args.bare_server)
        return 0
    if args.profiled_hub is not None:
        profiled_hub(args.profiled_hub)
        return 0
    set_quiet(args.json)
    limit = raise_nofile()  # inherited by the servers started below
    per_proc = max(args.agents / max(1, args.agent_procs), args.boards / max(1, args.board_procs))
    if limit < args.agents + args.boards + 100 or limit < per_proc + 100:
        need = args.agents + args.boards
        print(f"bench: open-file limit {limit} is too low for {need} connections", file=sys.stderr)
        return 2

    def on_term(signum: int, frame: Any) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, on_term)
    load = Load(
        agents=args.agents,
        boards=args.boards,
        rate=args.rate,
        duration=args.duration,
        warmup=args.warmup,
        agent_procs=args.agent_procs,
        board_procs=args.board_procs,
        batch=args.batch or 0,
        compression=args.compression,
        seed=args.seed,
    )
    kinds = ["embedded", "redis"] if args.backend == "both" else [args.backend]
    tmp = Path(tempfile.mkdtemp(prefix="unidesk-bench-"))
    logs = Path(args.log_dir) if args.log_dir else tmp
    logs.mkdir(parents=True, exist_ok=True)
    results: list[dict[str, Any]] = []
    t_start = time.monotonic()
    try:
        runs = [(kind, 0) for kind in kinds]
        if args.live_calls and "redis" in kinds:
            runs.append(("redis", args.live_calls))  # a fresh hub: the agents start from logged out again
        for kind, calls in runs:
            say(f"unidesk hub, {kind} backend: preparing {args.agents} agents, {args.boards} boards")
            prep = prepare(kind, tmp, args.agents, args.boards)
            hub: Server | None = None
            try:
                hub = start_hub(prep, logs, args.profile if (kind, calls) == runs[-1] else None)
                hub.wait_healthy()
                if calls:
                    results.append(measure_with_calls(f"unidesk-{kind}+{calls}-calls", hub, load, prep, calls))
                else:
                    results.append(measure(f"unidesk-{kind}", hub, load, prep))
            except BaseException:
                if hub is not None:
                    say(f"  hub log (tail): {hub.log_tail(1500)}")
                raise
            finally:
                if hub is not None:
                    hub.stop()
                run_cleanup(prep.cleanup)
        if not args.no_baseline:
            say("bare broadcast server (baseline)")
            bare = start_bare(logs)
            try:
                bare.wait_healthy()
                results.append(measure("bare", bare, load, None))
            finally:
                bare.stop(10)
    except KeyboardInterrupt:
        print("bench: interrupted", file=sys.stderr)
        return 130
    finally:
        shutil.rmtree(tmp, ignore_errors=True)

    base = next((r for r in results if r["target"] == "bare"), None)
    summary: dict[str, Any] = {"comparisons": {}, "goals": {}}
    for r in results:
        if r["target"] == "bare":
            continue
        if base is not None:
            summary["comparisons"][r["target"]] = {
                "fanout_ratio": ratio(r["board_frames_per_s"], base["board_frames_per_s"]),
                "p99_ratio": ratio(r["latency_ms_p99"], base["latency_ms_p99"]),
            }
        summary["goals"][r["target"]] = goals_for(r, base)
        if r.get("live_calls"):
            plain = next((x for x in results if x["target"] == r["target"].split("+")[0]), None)
            if plain is not None:
                summary["comparisons"].setdefault(r["target"], {})["p99_ratio_to_no_calls"] = ratio(
                    r["latency_ms_p99"], plain["latency_ms_p99"])
    out = {
        "load": {
            "agents": args.agents,
            "boards": args.boards,
            "rate": args.rate,
            "duration_s": args.duration,
            "warmup_s": args.warmup,
            "compression": args.compression,
            "cpus": os.cpu_count(),
        },
        "results": results,
        **summary,
        "all_goals_met": all(all(g.values()) for g in summary["goals"].values()),
        "wall_seconds": round(time.monotonic() - t_start, 1),
    }
    if not args.json:
        print_table(results, summary)
    print(json.dumps(out, separators=(",", ":")))
    if args.check and not out["all_goals_met"]:
        return 3
    return 0


if __name__ == "__main__":
    sys.exit(main())
