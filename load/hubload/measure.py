"""One measured run: start the client processes, drive the load, read CPU and memory, compute the figures."""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, replace
from typing import Any

from .backends import Prepared
from .clients import agent_worker, board_worker
from .common import DEFAULT_BATCH, DRAIN_SECONDS, HEARTBEAT, PHASE_TIMEOUT, REDIS_BATCH, say
from .servers import Server, warm_directory


# ---------------------------------------------------------------- /proc readings

CLK_TCK = os.sysconf("SC_CLK_TCK")


def proc_cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process (not its children)."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    # After the command name: state is field 3, utime field 14, stime field 15.
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def proc_rss_bytes(pid: int) -> int:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    return 0


DATASTORES = ("postgres", "redis-server")


def datastore_cpu_seconds() -> dict[int, float]:
    """CPU time of every PostgreSQL and Redis server process, by pid (only read, never touched)."""
    out: dict[int, float] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/comm") as f:
                if f.read().strip() not in DATASTORES:
                    continue
            out[int(entry)] = proc_cpu_seconds(int(entry))
        except OSError:  # gone meanwhile
            continue
    return out


def machine_busy() -> tuple[float, float]:
    """(busy, total) jiffies of all CPUs, from /proc/stat."""
    with open("/proc/stat") as f:
        vals = [int(x) for x in f.readline().split()[1:]]
    idle = vals[3] + (vals[4] if len(vals) > 4 else 0)
    total = sum(vals[:8])
    return total - idle, total


# ---------------------------------------------------------------- coordinator: one measured run


@dataclass
class Load:
    agents: int
    boards: int
    rate: float
    duration: float
    warmup: float
    agent_procs: int
    board_procs: int
    batch: int
    compression: str
    seed: int


def _split(items: list[Any], parts: int) -> list[list[Any]]:
    parts = max(1, min(parts, len(items))) if items else 1
    return [items[i::parts] for i in range(parts)]


def measure(label: str, server: Server, load: Load, prep: Prepared | None) -> dict[str, Any]:
    """Connect the clients to `server`, run the load, return the figures."""
    import multiprocessing as mp

    if load.batch <= 0:
        # The hub's Redis client pool refuses (rather than queues) a 101st concurrent command,
        # and every authentication costs two commands: keep the connection storm under that.
        redis = prep is not None and prep.kind == "redis"
        load = replace(load, batch=REDIS_BATCH if redis else DEFAULT_BATCH)

    ctx = mp.get_context("spawn")
    mode = "bare" if prep is None else "hub"
    n_agents = load.agents
    ids = prep.agent_ids if prep else list(range(1, n_agents + 1))
    names = prep.agent_names if prep else [f"bench-agent-{i:05d}" for i in ids]
    atoks = prep.agent_tokens if prep else [""] * n_agents
    btoks = prep.board_tokens if prep else [""] * load.boards
    common = {
        "url": server.ws_url,
        "mode": mode,
        "batch": load.batch,
        "compression": load.compression,
        "ping_every": HEARTBEAT / 2,
    }
    workers: list[tuple[str, Any, Any]] = []  # (role, process, pipe)
    result: dict[str, Any] = {"target": label}
    try:
        if prep is not None:
            warm_directory(server.ws_url, btoks[0])
        time.sleep(0.5)
        rss_before = proc_rss_bytes(server.pid)
        cpu_connect0 = proc_cpu_seconds(server.pid)
        t_connect = time.monotonic()
        # Boards first, so every board is listening before any agent exists.
        for part in _split(list(range(load.boards)), load.board_procs):
            a, b = ctx.Pipe()
            cfg = {**common, "tokens": [btoks[i] for i in part]}
            p = ctx.Process(target=board_worker, args=(b, cfg), daemon=True)
            p.start()
            workers.append(("board", p, a))
        connected = _await_connected(workers, "board")
        for k, part in enumerate(_split(list(range(n_agents)), load.agent_procs)):
            a, b = ctx.Pipe()
            cfg = {
                **common,
                "ids": [ids[i] for i in part],
                "names": [names[i] for i in part],
                "tokens": [atoks[i] for i in part],
                "seed": load.seed + k,
            }
            p = ctx.Process(target=agent_worker, args=(b, cfg), daemon=True)
            p.start()
            workers.append(("agent", p, a))
        connected.update(_await_connected(workers, "agent"))
        connect_s = time.monotonic() - t_connect
        cpu_connect = proc_cpu_seconds(server.pid) - cpu_connect0
        n_conn = sum(c for c, _ in connected.values())
        errors = [e for _, errs in connected.values() for e in errs]
        time.sleep(1.0)
        rss_connected = proc_rss_bytes(server.pid)
        say(
            f"  {label}: {n_conn}/{n_agents + load.boards} connected in {connect_s:.1f}s"
            + (f"; first errors: {errors[:2]}" if errors else "")
        )

        t0 = time.monotonic() + 1.0
        agent_workers = [w for w in workers if w[0] == "agent"]
        share = load.rate / len(agent_workers)
        for role, _, pipe in workers:
            pipe.send(("go", t0, load.warmup, load.duration, share if role == "agent" else 0.0))
        w0, w1 = t0 + load.warmup, t0 + load.warmup + load.duration
        time.sleep(max(0.0, w0 - time.monotonic()))
        server.profile(True)
        cpu0, m0, ds0 = proc_cpu_seconds(server.pid), machine_busy(), datastore_cpu_seconds()
        time.sleep(max(0.0, w1 - time.monotonic()))
        cpu1, m1, ds1 = proc_cpu_seconds(server.pid), machine_busy(), datastore_cpu_seconds()
        server.profile(False)
        ds_cpu = 100.0 * sum(ds1[pid] - ds0[pid] for pid in ds1 if pid in ds0) / (w1 - w0)
        rss_end = proc_rss_bytes(server.pid)
        say(f"  {label}: load done, collecting")
        reports: list[tuple[str, dict[str, Any]]] = []
        for role, _, pipe in workers:
            if not pipe.poll(DRAIN_SECONDS + 60):
                raise RuntimeError(f"a {role} process did not report")
            msg = pipe.recv()
            assert msg[0] == "done", msg
            reports.append((role, msg[1]))
        figs = _figures(load, reports, w0, w1, n_conn, errors)
        server_cpu = 100.0 * (cpu1 - cpu0) / (w1 - w0)
        machine_cores = (os.cpu_count() or 1) * (m1[0] - m0[0]) / max(1, m1[1] - m0[1])
        others = (
            100.0 * machine_cores
            - server_cpu
            - ds_cpu
            - figs["client_cpu_percent_agents"]
            - figs["client_cpu_percent_boards"]
        )
        result.update(
            figs
            | {
                "connect_seconds": round(connect_s, 1),
                "server_cpu_ms_per_connect": round(1000.0 * cpu_connect / max(1, n_conn), 2),
                "server_cpu_percent": round(server_cpu, 1),
                "machine_cpu_percent": round(100.0 * (m1[0] - m0[0]) / max(1, m1[1] - m0[1]), 1),
                "datastore_cpu_percent": round(ds_cpu, 1),
                "other_cpu_percent": round(max(0.0, others), 1),
                "server_rss_mb_before": round(rss_before / 2**20, 1),
                "server_rss_mb_connected": round(rss_connected / 2**20, 1),
                "server_rss_mb_end": round(rss_end / 2**20, 1),
                "kib_per_connection": round((rss_connected - rss_before) / max(1, n_conn) / 1024, 1),
            }
        )
        return result
    finally:
        for _, p, pipe in workers:
            try:
                pipe.send(("exit",))
            except (OSError, ValueError):
                pass
        for _, p, _ in workers:
            p.join(5)
            if p.is_alive():
                p.terminate()
                p.join(5)
            if p.is_alive():
                p.kill()
                p.join()


def _await_connected(workers: list[tuple[str, Any, Any]], role: str) -> dict[int, tuple[int, list[str]]]:
    out = {}
    deadline = time.monotonic() + PHASE_TIMEOUT
    for r, p, pipe in workers:
        if r != role:
            continue
        left = max(0.1, deadline - time.monotonic())
        if not pipe.poll(left):
            raise RuntimeError(f"{role} clients did not finish connecting in {PHASE_TIMEOUT:.0f}s")
        msg = pipe.recv()
        assert msg[0] == "connected", msg
        out[p.pid] = (msg[1], msg[2])
    return out


def _pct(a: Any, q: float) -> float | None:
    import numpy as np

    return None if len(a) == 0 else round(float(np.percentile(a, q)) * 1000.0, 1)


def _figures(
    load: Load,
    reports: list[tuple[str, dict[str, Any]]],
    w0: float,
    w1: float,
    n_conn: int,
    errors: list[str],
) -> dict[str, Any]:
    import numpy as np

    dur = w1 - w0
    a_id, a_since, a_send, a_ack, a_done, lag = [], [], [], [], [], []
    b_id, b_since, b_mono, b_wall = [], [], [], []
    held = 0
    agent_errors = skipped = unanswered = 0
    samples: list[str] = []
    cpu_agents = cpu_boards = 0.0
    for role, r in reports:
        held += r["held"]
        i, s, m, x = r["records"]
        if role == "agent":
            a_id.append(np.frombuffer(i, np.int64))
            a_since.append(np.frombuffer(s, np.float64))
            a_send.append(np.frombuffer(m, np.float64))
            a_ack.append(np.frombuffer(x, np.float64))
            a_done.append(np.frombuffer(r["done"], np.float64))
            lag.append(np.frombuffer(r["lag"], np.float64))
            agent_errors += r["errors"]
            samples += r["error_sample"]
            skipped += r["skipped"]
            unanswered += r["unanswered"]
            cpu_agents += r["cpu"]
        else:
            b_id.append(np.frombuffer(i, np.int64))
            b_since.append(np.frombuffer(s, np.float64))
            b_mono.append(np.frombuffer(m, np.float64))
            b_wall.append(np.frombuffer(x, np.float64))
            cpu_boards += r["cpu"]
    a_id, a_since, a_send, a_ack, a_done = (np.concatenate(v) for v in (a_id, a_since, a_send, a_ack, a_done))
    b_id, b_since, b_mono, b_wall = (np.concatenate(v) for v in (b_id, b_since, b_mono, b_wall))
    lag_all = np.concatenate(lag)

    in_win = (a_send >= w0) & (a_send < w1)
    changes = int(in_win.sum())
    # Throughput: changes completed (acknowledged, own event received) inside the window.
    completed = int(((a_done >= w0) & (a_done < w1)).sum())
    # Join board receipts to the change that caused them, on (agent id, since).
    sent_at = {(int(k), float(s)): float(t) for k, s, t in zip(a_id[in_win], a_since[in_win], a_send[in_win])}
    lat = np.empty(len(b_id))
    n = 0
    for k, s, t in zip(b_id.tolist(), b_since.tolist(), b_mono.tolist()):
        t_sent = sent_at.get((k, s))
        if t_sent is not None:
            lat[n] = t - t_sent
            n += 1
    lat = lat[:n]
    # The server's own stamp of the change (`since`, wall clock) to the board's wall clock: the part of
    # the latency after the hub decided the change. Against the baseline `since` is the sender's clock.
    stamp = b_wall - b_since
    stamp = stamp[(b_mono >= w0) & (b_mono < w1)]
    delivered_win = int(((b_mono >= w0) & (b_mono < w1)).sum())
    expected = changes * load.boards
    ack = a_ack[in_win] - a_send[in_win]
    return {
        "agents": load.agents,
        "boards": load.boards,
        "rate_target": load.rate,
        "duration_s": round(dur, 1),
        "connections_expected": load.agents + load.boards,
        "connections_opened": n_conn,
        "connections_held": held,
        "connect_errors": errors[:3],
        "changes_per_s": round(completed / dur, 1),
        "changes_sent_in_window": changes,
        "board_frames_per_s": round(delivered_win / dur, 1),
        "latency_ms_p50": _pct(lat, 50),
        "latency_ms_p99": _pct(lat, 99),
        "latency_ms_max": None if n == 0 else round(float(lat.max()) * 1000.0, 1),
        "ack_ms_p50": _pct(ack, 50),
        "ack_ms_p99": _pct(ack, 99),
        "stamp_to_board_ms_p50": _pct(stamp, 50),
        "stamp_to_board_ms_p99": _pct(stamp, 99),
        "latency_samples": n,
        "deliveries_missing": max(0, expected - n),
        "error_frames": agent_errors,
        "error_sample": samples[:3],
        "changes_skipped_no_idle_agent": skipped,
        "changes_unanswered": unanswered,
        "send_lag_ms_p99": _pct(lag_all, 99),
        "client_cpu_percent_agents": round(100.0 * cpu_agents / dur, 1),
        "client_cpu_percent_boards": round(100.0 * cpu_boards / dur, 1),
    }
