"""Constants of the hub benchmark and the small functions the coordinator and the clients share."""

from __future__ import annotations

import os
import resource
import socket
import sys
from pathlib import Path

# The repository root: the servers and the `unidesk` command run from here.
ROOT = Path(__file__).resolve().parents[2]

PG_BASE = os.environ.get("UNIDESK_BENCH_PG", "postgresql://postgres@127.0.0.1:5432")
REDIS_URL = os.environ.get("UNIDESK_BENCH_REDIS", "redis://127.0.0.1:6379/0")
PASSWORD = "bench"
TOKEN_TTL = 3600
HEARTBEAT = 60.0
MAX_FRAME = 64 * 1024
# Goals on the reference machine (2 cores).
GOAL_P99_MS = 100.0
GOAL_FANOUT_RATIO = 0.7
# How long the clients keep listening after the last change was sent.
DRAIN_SECONDS = 3.0
CONNECT_TIMEOUT = 30.0
DEFAULT_BATCH = 200
REDIS_BATCH = 40
# Upper bound of a whole phase (connecting, reporting), so nothing waits forever.
PHASE_TIMEOUT = 300.0

log_quiet = False


def set_quiet(quiet: bool) -> None:
    """With `--json` the progress lines on stderr are left out."""
    global log_quiet
    log_quiet = quiet


def say(*parts: object) -> None:
    if not log_quiet:
        print(*parts, file=sys.stderr, flush=True)


def raise_nofile() -> int:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard == resource.RLIM_INFINITY:
        hard = 1 << 20
    if soft < hard:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
            soft = hard
        except (ValueError, OSError):
            pass
    return soft


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]
