"""The command line: `unidesk run` from an empty folder, and the ACD tools."""

import json
import os
import subprocess
import sys
import time

import httpx

from tests.conftest import ROOT, cli, free_port


def test_run_sets_up_everything_and_prints_the_url_and_demo_logins(tmp_path):
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("UNIDESK_")}
    env.update(UNIDESK_PORT=str(port), PYTHONPATH=str(ROOT))
    proc = subprocess.Popen(
        [sys.executable, "-m", "realtime.cli", "run"],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        lines = []
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            line = proc.stdout.readline()
            assert line, f"unidesk run exited early: {''.join(lines)}"
            lines.append(line)
            if "Stop with Ctrl+C" in line:
                break
        banner = "".join(lines)
        assert f"http://127.0.0.1:{port}/" in banner
        assert "agent1" in banner and "supervisor" in banner and 'password "demo"' in banner
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                if httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                time.sleep(0.05)  # polling for readiness
        r = httpx.post(
            f"http://127.0.0.1:{port}/api/auth/login",
            json={"tenant": "demo", "username": "agent1", "password": "demo"},
        )
        assert r.status_code == 200
        assert (tmp_path / "unidesk.db").exists() and (tmp_path / ".unidesk-secret").exists()
        page = httpx.get(f"http://127.0.0.1:{port}/")
        assert page.status_code == 200 and "Sign in" in page.text
        # A media worker runs beside the hub and registers with it.
        deadline = time.monotonic() + 30
        while "embedded" not in httpx.get(f"http://127.0.0.1:{port}/healthz").json()["media_workers"]:
            assert time.monotonic() < deadline, "the embedded media worker never registered"
            time.sleep(0.05)  # polling for readiness
    finally:
        proc.terminate()
        proc.wait(15)
        proc.stdout.close()


def test_erlang_is_reachable_from_the_cli():
    out = cli({}, "erlang", "--rate", "120", "--aht", "180", "--agents", "8", "--sl-seconds", "20", "--json")
    assert out.returncode == 0, out.stderr
    staffed = json.loads(out.stdout)["staffed"]
    assert abs(staffed["p_wait"] - 0.357) < 0.001 and abs(staffed["asa"] - 32.13) < 0.01
    bad = cli({}, "erlang", "--rate", "-1", "--aht", "180", "--agents", "8")
    assert bad.returncode == 2 and "rate" in bad.stderr


def test_simulate_runs_the_documented_example_from_the_cli():
    out = cli({}, "simulate", "realtime/acd/scenario_example.json", "--json")
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout)


def test_trunks_are_added_listed_and_removed_without_the_password_on_the_command_line(backend):
    env = {**os.environ, **backend.env(), "PYTHONPATH": str(ROOT)}

    def trunk(*args, stdin=""):
        return subprocess.run([sys.executable, "-m", "realtime.cli", "trunk", *args], env=env, cwd=ROOT,
                              input=stdin, capture_output=True, text=True, timeout=60)

    added = trunk("add", "--tenant", "acme", "--name", "cli-carrier", "--host", "sip.example:5061", "--transport",
                  "tls", "--username", "acme1", "--caller-id", "+4940111", stdin="cl1-s3cret\n")
    assert added.returncode == 0, added.stderr
    listed = trunk("list", "--tenant", "acme")
    assert "cli-carrier\ttls:sip.example:5061\tuser acme1" in listed.stdout and "cl1-s3cret" not in listed.stdout
    bad = trunk("add", "--tenant", "acme", "--name", "x", "--host", "h", "--transport", "sctp", "--username", "u",
                stdin="pw\n")
    assert bad.returncode == 2 and "transport 'sctp'" in bad.stderr
    assert trunk("add", "--tenant", "acme", "--name", "y", "--host", "h", "--username", "u").returncode == 2
    assert trunk("remove", "--tenant", "acme", "--name", "cli-carrier").returncode == 0
    assert "cli-carrier" not in trunk("list", "--tenant", "acme").stdout
