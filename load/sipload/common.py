"""Shared constants and helpers: /proc figures, the caller's audio pattern, the pcap and the sipp scenario."""

from __future__ import annotations

import os
import socket
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[2]
CLK_TCK = os.sysconf("SC_CLK_TCK")

# The caller's audio (the pcap sipp plays): a 1 s cycle of 200 ms silence then 800 ms of a tone,
# so every second the agent's side sees one tone onset (for the delay) and any silent frame in
# the middle of a tone stretch is caller audio that went missing.
CALLER_HZ = 1000.0
AGENT_HZ = 500.0
CYCLE_FRAMES = 50
SILENT_FRAMES = 10
ONSET_S = SILENT_FRAMES * 0.02
AMPLITUDE = 0.3
LOUD_RMS = 1000.0  # a tone frame has ~6,900; a decoded G.711 silence ~0
LOUD_SAMPLE = 800


def say(*parts: object) -> None:
    print(*parts, file=sys.stderr, flush=True)


def free_port(kind: int = socket.SOCK_STREAM) -> int:
    with socket.socket(socket.AF_INET, kind) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def free_udp_tcp_port() -> int:
    """A port free for both UDP and TCP (a SIP listener takes both)."""
    for _ in range(50):
        p = free_port(socket.SOCK_DGRAM)
        try:
            with socket.socket() as s:
                s.bind(("127.0.0.1", p))
            return p
        except OSError:
            continue
    raise RuntimeError("no free port")


def free_udp_range(count: int) -> int:
    """The first of `count` consecutive UDP ports free on 127.0.0.1 (a media worker's SIP lanes)."""
    for _ in range(200):
        first = free_port(socket.SOCK_DGRAM)
        if first + count > 65535:
            continue
        socks: list[socket.socket] = []
        try:
            for p in range(first, first + count):
                s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
                socks.append(s)
                s.bind(("127.0.0.1", p))
            return first
        except OSError:
            continue
        finally:
            for s in socks:
                s.close()
    raise RuntimeError("no free port range")


# ---------------------------------------------------------------- /proc


def proc_cpu(pid: int) -> float:
    """CPU seconds (user + system) of a process and its reaped children; 0 once it is gone."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / CLK_TCK
    except (OSError, IndexError, ValueError):
        return 0.0


def proc_rss_mb(pid: int) -> float:
    try:
        with open(f"/proc/{pid}/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20
    except (OSError, IndexError, ValueError):
        return 0.0


def machine_busy() -> float:
    """CPU seconds the whole machine spent busy (all cores)."""
    with open("/proc/stat") as f:
        v = [int(x) for x in f.readline().split()[1:]]
    return (sum(v[:8]) - v[3] - v[4]) / CLK_TCK


def pressure_total() -> float:
    """Seconds in which some runnable task waited for a CPU (Linux PSI), 0 where unavailable."""
    try:
        with open("/proc/pressure/cpu") as f:
            return int(f.readline().rsplit("total=", 1)[1]) / 1e6
    except (OSError, IndexError, ValueError):
        return 0.0


def pressure_avg10() -> float | None:
    try:
        with open("/proc/pressure/cpu") as f:
            return float(f.readline().split("avg10=", 1)[1].split()[0]) / 100
    except (OSError, IndexError, ValueError):
        return None


def settle(below: float, max_wait: float) -> None:
    """Wait (up to max_wait s) until the machine's CPU pressure over the last 10 s is under `below`."""
    if max_wait <= 0:
        return
    deadline = time.monotonic() + max_wait
    while (p := pressure_avg10()) is not None and p >= below:
        if time.monotonic() > deadline:
            say(f"   (machine still busy: cpu pressure {p * 100:.0f}% over the last 10 s; measuring anyway)")
            return
        time.sleep(1.0)


class Meter:
    """CPU of named processes and of the machine between `start` and `stop`."""

    def __init__(self, pids: dict[str, list[int]]) -> None:
        self.pids = pids

    def _read(self) -> tuple[float, dict[str, float], float, float]:
        per = {name: sum(proc_cpu(p) for p in pids) for name, pids in self.pids.items()}
        return time.monotonic(), per, machine_busy(), pressure_total()

    def start(self) -> None:
        self.a = self._read()
        self.load1 = os.getloadavg()[0]

    def stop(self) -> dict[str, float]:
        b = self._read()
        t0, c0, m0, p0 = self.a
        t1, c1, m1, p1 = b
        secs = max(1e-3, t1 - t0)
        out = {f"cpu_{k}": (c1[k] - c0[k]) / secs for k in c1}
        ours = sum(out.values())
        machine = (m1 - m0) / secs
        out.update(
            seconds=secs,
            machine_cores=machine,
            other_cores=max(0.0, machine - ours),
            pressure=(p1 - p0) / secs,
            load1=max(self.load1, os.getloadavg()[0]),
        )
        return out


def pct(values: list[float], q: float) -> float | None:
    if not values:
        return None
    return float(np.percentile(np.asarray(values, dtype=np.float64), q))


# ---------------------------------------------------------------- the caller's audio


def pattern_frame(j: int) -> np.ndarray:
    """The j-th 20 ms frame of the caller's pattern (int16, 160 samples)."""
    p = j % CYCLE_FRAMES
    if p < SILENT_FRAMES:
        return np.zeros(160, np.int16)
    n = (p - SILENT_FRAMES) * 160 + np.arange(160)
    # A cosine: the onset's first sample is already at full amplitude.
    return np.round(AMPLITUDE * 32767 * np.cos(2 * np.pi * CALLER_HZ * n / 8000)).astype(np.int16)


def write_pcap(path: Path, seconds: float) -> None:
    """A pcap of PCMU RTP packets (payload type 0, 20 ms) playing the pattern for `seconds`."""
    from webrtc.tones import write_pcmu_pcap

    write_pcmu_pcap(path, (pattern_frame(j) for j in range(int(seconds * 50))))


SCENARIO = """<?xml version="1.0" encoding="ISO-8859-1" ?>
<!DOCTYPE scenario SYSTEM "sipp.dtd">
<!-- One caller: INVITE (PCMU), ACK, the pcap for the call's length (-d), BYE.
     The log lines give the wall-clock time of the INVITE and of the start of the audio. -->
<scenario name="unidesk bench caller">
  <nop><action><gettimeofday assign_to="is,ius"/><log message="INVITE [tag]-[call_number] [$is] [$ius]"/></action></nop>
  <send retrans="500">
    <![CDATA[

      INVITE sip:[service]@[remote_ip]:[remote_port] SIP/2.0
      Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]
      From: "Bench [call_number]" <sip:[tag]-[call_number]@[local_ip]:[local_port]>;tag=[pid]B[call_number]
      To: <sip:[service]@[remote_ip]:[remote_port]>
      Call-ID: [call_id]
      CSeq: 1 INVITE
      Contact: <sip:[tag]-[call_number]@[local_ip]:[local_port]>
      Max-Forwards: 70
      Content-Type: application/sdp
      Content-Length: [len]

      v=0
      o=bench 1 1 IN IP[local_ip_type] [local_ip]
      s=-
      c=IN IP[media_ip_type] [media_ip]
      t=0 0
      m=audio [auto_media_port] RTP/AVP 0
      a=rtpmap:0 PCMU/8000
      a=sendrecv

    ]]>
  </send>
  <recv response="100" optional="true"/>
  <recv response="180" optional="true"/>
  <recv response="183" optional="true"/>
  <recv response="200" rtd="true" timeout="30000"/>
  <send>
    <![CDATA[

      ACK sip:[service]@[remote_ip]:[remote_port] SIP/2.0
      Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]
      From: "Bench [call_number]" <sip:[tag]-[call_number]@[local_ip]:[local_port]>;tag=[pid]B[call_number]
      To: <sip:[service]@[remote_ip]:[remote_port]>[peer_tag_param]
      Call-ID: [call_id]
      CSeq: 1 ACK
      Contact: <sip:[tag]-[call_number]@[local_ip]:[local_port]>
      Max-Forwards: 70
      Content-Length: 0

    ]]>
  </send>
  <nop><action><gettimeofday assign_to="ps,pus"/><log message="PLAY [tag]-[call_number] [$ps] [$pus]"/><exec play_pcap_audio="pcap/bench.pcap"/></action></nop>
  <pause/>
  <send retrans="500">
    <![CDATA[

      BYE sip:[service]@[remote_ip]:[remote_port] SIP/2.0
      Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]
      From: "Bench [call_number]" <sip:[tag]-[call_number]@[local_ip]:[local_port]>;tag=[pid]B[call_number]
      To: <sip:[service]@[remote_ip]:[remote_port]>[peer_tag_param]
      Call-ID: [call_id]
      CSeq: 2 BYE
      Contact: <sip:[tag]-[call_number]@[local_ip]:[local_port]>
      Max-Forwards: 70
      Content-Length: 0

    ]]>
  </send>
  <recv response="200" crlf="true" timeout="10000"/>
  <ResponseTimeRepartition value="50, 100, 200, 500, 1000, 2000"/>
</scenario>
"""


def write_scenario(path: Path) -> None:
    path.write_text(SCENARIO)
