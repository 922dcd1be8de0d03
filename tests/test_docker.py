"""The container setup in docker/.

nginx.conf is loaded by the real nginx and put in front of two real hubs; the
Dockerfile's health check runs against a hub; compose.yaml and the Dockerfile
are checked against the code they start (commands, variables, ports).
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
import tomllib
from collections.abc import Iterator
from pathlib import Path

import httpx

from tests.conftest import ROOT, free_port
from tests.helpers import Ws, login

DOCKER = ROOT / "docker"
NGINX_CONF = DOCKER / "nginx.conf"
COMPOSE = DOCKER / "compose.yaml"
DOCKERFILE = DOCKER / "Dockerfile"
DOCKERIGNORE = DOCKER / "Dockerfile.dockerignore"

# The two upstream lines of nginx.conf; the tests point them at local hubs.
UPSTREAM_LINE = re.compile(r"^(\s*server\s+)hub[12]:8000(\s*;)", re.M)


def nginx_binary() -> str:
    path = shutil.which("nginx") or "/usr/sbin/nginx"
    assert os.access(path, os.X_OK), "nginx is not installed (.ci/run installs nginx-light)"
    return path


def _sub_once(pattern: str, repl: str, text: str, what: str) -> str:
    new, n = re.subn(pattern, lambda m: m.group(1) + repl + m.group(2), text, flags=re.M)
    assert n == 1, f"nginx.conf: expected one {what} directive, found {n}"
    return new


def local_nginx_conf(tmp: Path, upstreams: list[str], listen_port: int | None = None) -> Path:
    """nginx.conf with its hub addresses replaced and its pid and logs under `tmp`."""
    text = NGINX_CONF.read_text()
    addrs = iter(upstreams)
    text, n = UPSTREAM_LINE.subn(lambda m: m.group(1) + next(addrs) + m.group(2), text)
    assert n == 2, f"nginx.conf: expected the upstream lines hub1:8000 and hub2:8000, replaced {n}"
    text = _sub_once(r"^(pid\s+)\S+(;)", str(tmp / "nginx.pid"), text, "pid")
    text = _sub_once(r"^(error_log\s+)\S+(\s)", str(tmp / "error.log"), text, "error_log")
    text = _sub_once(r"^(\s*access_log\s+)\S+(\s)", str(tmp / "access.log"), text, "access_log")
    if listen_port is not None:
        text = _sub_once(r"^(\s*listen\s+)8080(;)", f"127.0.0.1:{listen_port}", text, "listen 8080")
    path = tmp / "nginx.conf"
    path.write_text(text)
    return path


@contextlib.contextmanager
def running_nginx(conf: Path, tmp: Path, port: int) -> Iterator[str]:
    log = open(tmp / "nginx.out", "wb")
    proc = subprocess.Popen(
        [nginx_binary(), "-c", str(conf), "-p", f"{tmp}/", "-g", "daemon off;"],
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    try:
        deadline = time.monotonic() + 15
        while True:
            assert proc.poll() is None, f"nginx exited with {proc.returncode}: {_read(tmp / 'nginx.out')}"
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
                break
            except OSError:
                pass
            assert time.monotonic() < deadline, f"nginx is not listening: {_read(tmp / 'error.log')}"
            time.sleep(0.05)  # polling for readiness, not a synchronisation sleep
        yield f"127.0.0.1:{port}"
    finally:
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)  # the master and its workers
                proc.wait()
        log.close()


def _read(path: Path) -> str:
    return path.read_text(errors="replace") if path.exists() else ""


# ---------------------------------------------------------------- nginx


def test_nginx_conf_passes_nginx_t(tmp_path):
    conf = local_nginx_conf(tmp_path, ["127.0.0.1:8000", "127.0.0.1:8000"])
    out = subprocess.run(
        [nginx_binary(), "-t", "-c", str(conf), "-p", f"{tmp_path}/"],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert out.returncode == 0, out.stderr
    assert "test is successful" in out.stderr


def test_nginx_balances_http_and_websockets_over_two_hubs(start_hub, tmp_path):
    hubs = [start_hub(), start_hub()]
    upstreams = [f"127.0.0.1:{h.port}" for h in hubs]
    port = free_port()
    conf = local_nginx_conf(tmp_path, upstreams, listen_port=port)

    with running_nginx(conf, tmp_path, port) as addr:
        for _ in range(4):
            r = httpx.get(f"http://{addr}/healthz", timeout=5)
            assert r.status_code == 200, r.text
            assert r.json()["status"] == "ok"
        tokens = login(f"http://{addr}", "agent1")

        # Both websockets stay open: least_conn sends the second one to the other hub.
        sockets = [Ws(f"ws://{addr}/ws"), Ws(f"ws://{addr}/ws")]
        try:
            for ws in sockets:
                ws.auth(tokens["access_token"])
                for _ in range(3):
                    pong = ws.request({"type": "ping"})
                    assert pong["type"] == "pong", pong
        finally:
            for ws in sockets:
                ws.close()

        # nginx logs a websocket when it closes; the log names the hub that served it.
        served: set[str] = set()
        deadline = time.monotonic() + 10
        while len(served) < 2 and time.monotonic() < deadline:
            for line in _read(tmp_path / "access.log").splitlines():
                m = re.search(r'"GET /ws HTTP/1\.1" 101 .* upstream=(\S+)', line)
                if m:
                    served.add(m.group(1))
            time.sleep(0.05)  # polling the log, bounded by the deadline
        assert served == set(upstreams), _read(tmp_path / "access.log")


# ---------------------------------------------------------------- Dockerfile


def _instructions(dockerfile: str) -> list[str]:
    """Dockerfile instructions with continuation lines joined and comments dropped."""
    joined = re.sub(r"\\\n", " ", dockerfile)
    return [ln.strip() for ln in joined.splitlines() if ln.strip() and not ln.lstrip().startswith("#")]


def _healthcheck_argv() -> list[str]:
    (line,) = [i for i in _instructions(DOCKERFILE.read_text()) if i.startswith("HEALTHCHECK ")]
    return json.loads(line.split(" CMD ", 1)[1])


def test_dockerfile_shape():
    text = DOCKERFILE.read_text()
    ins = _instructions(text)
    assert "python:3.11-slim" in text
    assert sum(i.startswith("FROM ") for i in ins) >= 2, "build and runtime stages"
    (cmd,) = [i for i in ins if i.startswith("CMD ")]
    assert json.loads(cmd[4:]) == ["unidesk", "serve"]
    assert "EXPOSE 8000" in ins
    users = [i.split()[1] for i in ins if i.startswith("USER ")]
    assert users and users[-1].split(":")[0] not in ("root", "0"), users
    argv = _healthcheck_argv()
    assert argv[0] == "python" and "/healthz" in argv[-1]


def test_dockerfile_healthcheck_asks_the_hub(hub):
    argv = _healthcheck_argv()
    run = [sys.executable, *argv[1:]]
    ok = subprocess.run(run, env={**os.environ, "UNIDESK_PORT": str(hub.port)}, capture_output=True, timeout=30)
    assert ok.returncode == 0, ok.stderr
    down = subprocess.run(run, env={**os.environ, "UNIDESK_PORT": str(free_port())}, capture_output=True, timeout=30)
    assert down.returncode != 0


def test_dockerignore_keeps_local_state_out_but_not_the_sources():
    patterns = [ln.strip() for ln in DOCKERIGNORE.read_text().splitlines() if ln.strip() and not ln.startswith("#")]
    bare = {p.removeprefix("**/") for p in patterns}
    for needed in (".venv", ".git", "*.db", ".unidesk-secret", ".pytest_cache"):
        assert needed in bare, f"{needed} is not excluded from the build context"
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text())
    packages = [p.rstrip("*") for p in pyproject["tool"]["setuptools"]["packages"]["find"]["include"]]
    for keep in ("pyproject.toml", *packages):
        assert keep not in bare, f"{keep} is excluded, but the wheel needs it"


# ---------------------------------------------------------------- compose


def _compose_services(text: str) -> set[str]:
    section = re.search(r"^services:\n(.*?)(?=^\S)", text, re.M | re.S)
    assert section, "compose.yaml has no services section"
    return set(re.findall(r"^  ([A-Za-z0-9][\w-]*):\s*$", section.group(1), re.M))


def test_compose_shape():
    text = COMPOSE.read_text()
    assert {"postgres", "redis", "migrate", "seed", "hub1", "hub2", "nginx", "media1"} <= _compose_services(text)
    assert re.search(r"^\s*image: postgres:15\s*$", text, re.M)
    assert re.search(r"^\s*image: redis:7\s*$", text, re.M)
    assert "${UNIDESK_SECRET:?" in text, "the hubs must refuse to start without UNIDESK_SECRET"
    assert "UNIDESK_HOST: 0.0.0.0" in text
    assert "condition: service_completed_successfully" in text
    assert "condition: service_healthy" in text
    assert 'profiles: ["seed"]' in text
    assert "dockerfile: docker/Dockerfile" in text and (COMPOSE.parent / "..").resolve() == ROOT
    assert "./nginx.conf:/etc/nginx/nginx.conf:ro" in text

    # The published port reaches nginx's listen port; the hubs' port is the upstream's.
    (published,) = re.findall(r'^\s*- "(\d+):(\d+)"\s*$', text, re.M)
    assert published == ("8080", "8080")
    assert re.search(rf"^\s*listen {published[1]};", NGINX_CONF.read_text(), re.M)
    assert 'UNIDESK_PORT: "8000"' in text


def test_every_unidesk_command_exists():
    texts = COMPOSE.read_text() + DOCKERFILE.read_text()
    commands = set(re.findall(r'\["unidesk", "([\w-]+)"', texts))
    assert {"serve", "migrate", "seed-demo"} <= commands
    for command in sorted(commands):
        out = subprocess.run(
            [sys.executable, "-m", "realtime.cli", command, "--help"],
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert out.returncode == 0, f"unidesk {command}: {out.stderr}"


def test_every_unidesk_variable_is_a_setting():
    known = set(re.findall(r"UNIDESK_[A-Z_]+", (ROOT / "realtime" / "config.py").read_text()))
    for path in (COMPOSE, DOCKERFILE, DOCKER / "README.md"):
        named = set(re.findall(r"UNIDESK_[A-Z_]+", path.read_text()))
        assert named, path
        assert named <= known, f"{path.name} names variables unidesk does not read: {named - known}"
