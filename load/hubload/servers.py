"""Server subprocesses on a free loopback port: the hub (`realtime.cli serve`) and the bare baseline."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from .backends import Prepared
from .common import ROOT, free_port

# The benchmark's entry point; its hidden `--bare-server` and `--profiled-hub` options run the servers.
ENTRY = Path(__file__).resolve().parent.parent / "bench_hub.py"


class Server:
    """A server subprocess (hub or bare baseline) on a free loopback port."""

    def __init__(self, argv: list[str], env: dict[str, str], log_path: Path, port: int) -> None:
        self.port = port
        self.url = f"http://127.0.0.1:{port}"
        self.ws_url = f"ws://127.0.0.1:{port}/ws"
        self.log_path = log_path
        self._log = open(log_path, "ab")
        self.proc = subprocess.Popen(argv, env=env, cwd=ROOT, stdout=self._log, stderr=subprocess.STDOUT)

    profiled = False

    def profile(self, on: bool) -> None:
        """Start (SIGUSR1) or stop and write (SIGUSR2) the profile of a `--profiled-hub`."""
        if self.profiled and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGUSR1 if on else signal.SIGUSR2)

    @property
    def pid(self) -> int:
        return self.proc.pid

    def wait_healthy(self, timeout: float = 60.0) -> None:
        import httpx

        deadline = time.monotonic() + timeout
        with httpx.Client(trust_env=False, timeout=1.0) as client:
            while time.monotonic() < deadline:
                if self.proc.poll() is not None:
                    raise RuntimeError(f"server exited with {self.proc.returncode}: {self.log_tail()}")
                try:
                    if client.get(self.url + "/healthz").status_code == 200:
                        return
                except httpx.TransportError:
                    pass
                time.sleep(0.1)  # readiness polling
        raise RuntimeError(f"server not healthy within {timeout}s: {self.log_tail()}")

    def log_tail(self, chars: int = 2000) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-chars:]
        except OSError:
            return ""

    def stop(self, grace: float = 30.0) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
            try:
                self.proc.wait(grace)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        self._log.close()


def start_hub(prep: Prepared, logs: Path, profile: str | None) -> Server:
    port = free_port()
    env = {**prep.env, "UNIDESK_PORT": str(port)}
    if profile:
        argv = [sys.executable, str(ENTRY), "--profiled-hub", str(Path(profile).resolve())]
    else:
        argv = [sys.executable, "-m", "realtime.cli", "serve"]
    srv = Server(argv, env, logs / f"hub-{prep.kind}.log", port)
    srv.profiled = bool(profile)
    return srv


def profiled_hub(out: str) -> None:
    """`realtime.cli serve` with a profiler switched on by SIGUSR1 and written out by SIGUSR2."""
    import cProfile

    prof = cProfile.Profile()

    def on(signum: int, frame: Any) -> None:
        prof.enable()

    def off(signum: int, frame: Any) -> None:
        prof.disable()
        prof.dump_stats(out)

    signal.signal(signal.SIGUSR1, on)
    signal.signal(signal.SIGUSR2, off)
    from realtime.cli import main as unidesk

    unidesk(["serve"])


def start_bare(logs: Path) -> Server:
    port = free_port()
    return Server(
        [sys.executable, str(ENTRY), "--bare-server", str(port)],
        dict(os.environ),
        logs / "bare.log",
        port,
    )


def warm_directory(ws_url: str, token: str) -> None:
    """One board connection before measuring, so the hub's directory cache is loaded."""
    from websockets.sync.client import connect

    with connect(ws_url, max_size=None, open_timeout=30, proxy=None, compression=None) as ws:
        ws.send(json.dumps({"type": "auth", "token": token, "id": "1"}))
        for _ in range(5):
            m = json.loads(ws.recv(timeout=30))
            if m.get("type") == "snapshot":
                return
        raise RuntimeError("no snapshot on the warm-up connection")
