"""The parts of `load/bench_hub.py`, the load benchmark of the websocket hub.

    common    constants of the benchmark, stderr progress, open-file limit, free ports
    baseline  the bare Starlette websocket fan-out server run as the baseline
    clients   the agent and board client processes (websockets asyncio client)
    backends  a fresh database (SQLite or PostgreSQL + Redis) with agents, boards and tokens
    servers   the hub and baseline server subprocesses
    measure   one measured run: CPU and memory readings, latency percentiles, figures
    report    the table, the ratios to the baseline and the goals

`load/bench_hub.py` parses the command line and runs these in order; it also
serves `--bare-server` and `--profiled-hub`, which the servers module starts as
subprocesses of that script.
"""
