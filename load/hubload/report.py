"""The printed table, the ratios to the baseline and the goals."""

from __future__ import annotations

from typing import Any

from .common import GOAL_FANOUT_RATIO, GOAL_P99_MS


def ratio(a: float | None, b: float | None) -> float | None:
    if a is None or b is None or b == 0:
        return None
    return round(a / b, 3)


ROWS = [
    ("connections held", lambda r: f"{r['connections_held']}/{r['connections_expected']}"),
    ("connect time (s)", lambda r: r["connect_seconds"]),
    ("server CPU per connect (ms)", lambda r: r["server_cpu_ms_per_connect"]),
    ("state changes/s", lambda r: f"{r['changes_per_s']} (target {r['rate_target']:g})"),
    ("board frames/s", lambda r: r["board_frames_per_s"]),
    ("latency p50 (ms)", lambda r: r["latency_ms_p50"]),
    ("latency p99 (ms)", lambda r: r["latency_ms_p99"]),
    ("latency max (ms)", lambda r: r["latency_ms_max"]),
    ("ack p50/p99 (ms)", lambda r: f"{r['ack_ms_p50']}/{r['ack_ms_p99']}"),
    ("since-stamp to board p50/p99 (ms)",
     lambda r: f"{r['stamp_to_board_ms_p50']}/{r['stamp_to_board_ms_p99']}"),
    ("deliveries missing", lambda r: r["deliveries_missing"]),
    ("error frames", lambda r: r["error_frames"]),
    ("server CPU %", lambda r: r["server_cpu_percent"]),
    ("machine CPU % (all cores)", lambda r: r["machine_cpu_percent"]),
    ("PostgreSQL+Redis CPU %", lambda r: r["datastore_cpu_percent"]),
    ("CPU % of anything else", lambda r: r["other_cpu_percent"]),
    ("client CPU % agents/boards",
     lambda r: f"{r['client_cpu_percent_agents']}/{r['client_cpu_percent_boards']}"),
    ("send lag p99 (ms)", lambda r: r["send_lag_ms_p99"]),
    ("server RSS before/conn/end (MiB)",
     lambda r: f"{r['server_rss_mb_before']}/{r['server_rss_mb_connected']}/{r['server_rss_mb_end']}"),
    ("memory per connection (KiB)", lambda r: r["kib_per_connection"]),
]


def print_table(results: list[dict[str, Any]], summary: dict[str, Any]) -> None:
    heads = [r["target"] for r in results]
    rows = []
    for name, fn in ROWS:
        cells = []
        for r in results:
            try:
                cells.append(str(fn(r)))
            except (KeyError, TypeError):
                cells.append("-")
        rows.append((name, cells))
    width = max(len(h) for h, _ in ROWS) + 2
    cols = [max(len(heads[i]), *(len(cells[i]) for _, cells in rows)) + 3 for i in range(len(heads))]
    print()
    print("".ljust(width) + "".join(h.rjust(w) for h, w in zip(heads, cols)))
    for name, cells in rows:
        print(name.ljust(width) + "".join(c.rjust(w) for c, w in zip(cells, cols)))
    print()
    for r in results:
        if r.get("other_cpu_percent", 0) > 25:
            print(
                f"note: during the {r['target']} run, {r['other_cpu_percent']}% of a core went to other work"
                " (other programs, kernel networking); its figures are pessimistic."
            )
    for kind, s in summary.get("comparisons", {}).items():
        if "fanout_ratio" in s:
            print(f"{kind}/bare: fan-out rate ratio {s['fanout_ratio']}, p99 latency ratio {s['p99_ratio']}")
        if "p99_ratio_to_no_calls" in s:
            print(f"{kind}: p99 latency ratio to the same load without live calls {s['p99_ratio_to_no_calls']}")
    for kind, goals in summary.get("goals", {}).items():
        marks = ", ".join(f"{g}: {'met' if ok else 'MISSED'}" for g, ok in goals.items())
        print(f"goals ({kind}): {marks}")
    print()


def goals_for(r: dict[str, Any], bare: dict[str, Any] | None) -> dict[str, bool]:
    g = {
        "all connections held": r["connections_held"] == r["connections_expected"],
        f"p99 <= {GOAL_P99_MS:g} ms": r["latency_ms_p99"] is not None
        and r["latency_ms_p99"] <= GOAL_P99_MS,
        "rate reached (>= 95%)": r["changes_per_s"] >= 0.95 * r["rate_target"],
        "no deliveries missing": r["deliveries_missing"] == 0,
    }
    if bare is not None:
        fr = ratio(r["board_frames_per_s"], bare["board_frames_per_s"])
        g[f"fan-out >= {GOAL_FANOUT_RATIO}x bare"] = fr is not None and fr >= GOAL_FANOUT_RATIO
    return g
