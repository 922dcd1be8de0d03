"""Lanes (bridge/lanes.py, bridge/spread.py): one SIP port, three pjsua2 instances behind it.

The bridge runs in a process of its own (tests/bridge/lane_rig.py), as in the
media worker; callers are real sipp and baresip processes that know only the
one public port. Audio is proven by the tone's frequency on both sides.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
import time
from pathlib import Path

import pytest

from webrtc.tones import tone_present

from .peers import Baresip, free_udp_port, rtp_base, run_sipp, tone_pcap, uac_expecting, uac_playing

pytestmark = pytest.mark.timeout(120)

CALLER_HZ, OUR_HZ = 1000, 500
ROOT = Path(__file__).resolve().parents[2]


class Rig:
    """The lane rig's process: lines in, JSON lines out (kept in `seen`)."""

    def __init__(self, proc: asyncio.subprocess.Process) -> None:
        self.proc = proc
        self.seen: list[dict] = []
        self._unread: asyncio.Queue[dict] = asyncio.Queue()
        self._reader = asyncio.get_running_loop().create_task(self._read())

    async def _read(self) -> None:
        assert self.proc.stdout is not None
        while line := await self.proc.stdout.readline():
            try:
                msg = json.loads(line)
            except ValueError:
                continue
            self.seen.append(msg)
            self._unread.put_nowait(msg)

    async def expect(self, key: str, n: int = 1, timeout: float = 20.0) -> list[dict]:
        """The next `n` lines carrying `key` (others stay in `seen`)."""
        got: list[dict] = []
        deadline = time.monotonic() + timeout
        while len(got) < n:
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError(f"{len(got)}/{n} {key!r} lines within {timeout} s; seen: {self.seen}")
            try:
                msg = await asyncio.wait_for(self._unread.get(), left)
            except asyncio.TimeoutError:
                continue
            if key in msg:
                got.append(msg)
        return got

    async def ask(self, line: str, key: str) -> dict:
        return (await self.ask_all(line, key, 1))[0]

    async def stop(self) -> None:
        """Ask the bridge's process to quit (its lanes stop, pjsua2 freed); killed if it does not."""
        if self.proc.returncode is None:
            try:
                await asyncio.wait_for(self.ask("quit", "stopped"), 20)
            except (AssertionError, asyncio.TimeoutError, BrokenPipeError, ConnectionResetError):
                self.proc.kill()
            await self.proc.wait()

    async def ask_all(self, line: str, key: str, n: int) -> list[dict]:
        assert self.proc.stdin is not None
        self.proc.stdin.write(line.encode() + b"\n")
        await self.proc.stdin.drain()
        return await self.expect(key, n)


async def start_rig(port: int, lane_port: int, lanes: int, env: dict[str, str] | None = None,
                    ready: bool = True, options: tuple[str, ...] = ()) -> Rig:
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "tests.bridge.lane_rig", str(port), str(lane_port), str(rtp_base()), str(lanes), *options,
        cwd=ROOT, stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE, env=env,
    )
    rig = Rig(proc)
    if ready:
        await rig.expect("ready", timeout=30)
    return rig


async def test_three_lanes_hold_ten_calls_at_one_port_with_audio_then_refuse_past_capacity(tmp_path: Path) -> None:
    port, lane_port = free_udp_port(), free_udp_port()  # lanes 1 and 2: lane_port, lane_port + 1
    rig = await start_rig(port, lane_port, 3)
    target = f"127.0.0.1:{port}"
    work = tmp_path / "sipp"
    tone_pcap(work / "pcap" / "tone.pcap", CALLER_HZ, 20)
    (work / "caller.xml").write_text(uac_playing("pcap/tone.pcap"))
    (work / "busy.xml").write_text(uac_expecting(486))
    phones = [Baresip(tmp_path / f"baresip{i}", tone_hz=CALLER_HZ) for i in range(2)]
    callers: asyncio.Task | None = None
    try:
        # Eight sipp callers, each held 14 s, all at the one public port.
        callers = asyncio.create_task(run_sipp(
            work, target, "-sf", "caller.xml", "-s", "support", "-m", "8", "-l", "8", "-r", "10",
            "-d", "14000", "-p", str(free_udp_port()), "-mp", str(rtp_base()), timeout=40,
        ))
        offers = await rig.expect("offer", 8)
        # Then two baresip phones (they follow our Contact: their ACK and BYE carry the lane).
        for phone in phones:
            await phone.dial(f"sip:support@{target}", seconds=9)
            offers += await rig.expect("offer")
        lanes = [o["lane"] for o in offers]
        assert sorted(set(lanes)) == [0, 1, 2], lanes
        assert all(lanes.count(k) <= 4 for k in range(3)), lanes
        assert all(o["remote"].startswith("127.0.0.1:") and not o["remote"].endswith(f":{port}") for o in offers), offers
        assert len({o["offer"] for o in offers}) == 10
        phone_lanes = lanes[8:]
        assert phone_lanes[0] != phone_lanes[1], f"the phones share lane {phone_lanes[0]}"
        stats = await rig.ask("stats", "stats")
        assert stats["calls"] == 10 and sum(stats["lanes"]) == 10, stats

        # Every call carried the caller's tone to its leg (sipp's pcap, baresip's microphone).
        heard = await rig.expect("heard", 10, timeout=30)
        assert all(h["caller_tone"] for h in heard), heard

        # Two more fill the twelve slots; the thirteenth is refused with 486, not left unanswered.
        fill = asyncio.create_task(run_sipp(
            work, target, "-sf", "caller.xml", "-s", "support", "-m", "2", "-l", "2", "-r", "10",
            "-d", "3000", "-p", str(free_udp_port()), "-mp", str(rtp_base()), timeout=30,
        ))
        await rig.expect("offer", 2)
        stats = await rig.ask("stats", "stats")
        assert stats["lanes"] == [4, 4, 4], stats
        rc, out = await run_sipp(work, target, "-sf", "busy.xml", "-s", "support", "-m", "1",
                                 "-p", str(free_udp_port()), timeout=15)
        assert rc == 0, out[-2000:]
        assert (await fill)[0] == 0

        # Our tone reached both phones, which sit in two different lanes.
        for phone in phones:
            assert await phone.wait() == 0
            samples, rate = phone.heard()
            assert tone_present(samples[-rate * 2:], rate, OUR_HZ), "our 500 Hz did not reach the phone"
        rc, out = await callers
        callers = None
        assert rc == 0, out[-2000:]

        # Everything hung up by the callers, cleanly, and the lanes are empty again.
        ended = await rig.expect("ended", 12)
        assert len(ended) == 12 and all((e["code"], e["by"]) == (200, "remote") for e in ended), ended
        deadline = time.monotonic() + 10
        while True:
            stats = await rig.ask("stats", "stats")
            if stats["lanes"] == [0, 0, 0] or time.monotonic() > deadline:
                break
            await asyncio.sleep(0.2)  # bounded poll: pjsua frees its slots on its own thread
        assert stats["lanes"] == [0, 0, 0] and stats["calls"] == 0, stats
        assert stats["stats"].get("answered") == 12 and stats["stats"].get("pjsua-486") == 1, stats
    finally:
        if callers is not None:
            callers.cancel()
        for phone in phones:
            phone.kill()
        await rig.stop()


async def test_calls_out_spread_over_lanes_and_hang_up_from_each(tmp_path: Path) -> None:
    port, lane_port, far = free_udp_port(), free_udp_port(), free_udp_port()
    rig = await start_rig(port, lane_port, 3)
    # sipp's own UAS answers every INVITE with 200 and waits for our BYE.
    uas = asyncio.create_task(run_sipp(tmp_path, "-sn", "uas", "-p", str(far), "-m", "6", timeout=40))
    try:
        dialed = [d["lane"] for d in await rig.ask_all(f"dial sip:service@127.0.0.1:{far} 6", "dialed", 6)]
        assert sorted(dialed) == [0, 0, 1, 1, 2, 2], dialed  # the most free slots, lane 0 first among equals
        answered: list[dict] = []
        while len(answered) < 6:
            answered += [p for p in await rig.expect("progress") if p["state"] == "answered"]
        assert sorted(a["lane"] for a in answered) == [0, 0, 1, 1, 2, 2], answered
        stats = await rig.ask("stats", "stats")
        assert stats["lanes"] == [2, 2, 2], stats
        assert rig.proc.stdin is not None
        rig.proc.stdin.write(b"hangup\n")
        ended = await rig.expect("ended", 6)
        assert all((e["code"], e["by"]) == (200, "local") for e in ended), ended
        rc, out = await uas
        assert rc == 0, out[-2000:]
    finally:
        uas.cancel()
        await rig.stop()


async def test_a_call_out_through_a_trunk_authenticates_from_every_lane(tmp_path: Path) -> None:
    from tests.integration.test_trunks import CARRIER, challenging_carrier_xml, digest_is_right

    port, lane_port, far = free_udp_port(), free_udp_port(), free_udp_port()
    rig = await start_rig(port, lane_port, 3)
    (tmp_path / "carrier.xml").write_text(challenging_carrier_xml())
    # A carrier that answers 407 to every first INVITE and takes the retried one.
    carrier = asyncio.create_task(run_sipp(tmp_path, "-sf", "carrier.xml", "-p", str(far), "-m", "3", "-rtp_echo",
                                           "-mp", str(rtp_base()), "-trace_logs", timeout=40))
    try:
        assert rig.proc.stdin is not None
        rig.proc.stdin.write(f"trunk 1/carrier 127.0.0.1:{far} {CARRIER[0]} {CARRIER[1]}\n".encode())
        dialed = [d["lane"] for d in await rig.ask_all(f"dial sip:+4930555777@127.0.0.1:{far} 3 1/carrier",
                                                       "dialed", 3)]
        assert sorted(dialed) == [0, 1, 2], dialed
        answered: list[dict] = []
        while len(answered) < 3:
            answered += [p for p in await rig.expect("progress") if p["state"] == "answered"]
        assert sorted(a["lane"] for a in answered) == [0, 1, 2], answered
        rig.proc.stdin.write(b"hangup\n")
        await rig.expect("ended", 3)
        rc, out = await carrier
        assert rc == 0, out[-3000:]
    finally:
        carrier.cancel()
        await rig.stop()
    # Each retried INVITE carried the trunk's credentials, whichever lane sent it.
    logged = [line for f in tmp_path.glob("*_logs.log") for line in f.read_text().splitlines() if "Authorization" in line]
    assert len(logged) == 3, logged
    for line in logged:
        assert digest_is_right(line.split("Proxy-Authorization:", 1)[1], "INVITE", *CARRIER), line


async def test_a_lane_that_cannot_be_loaded_fails_the_start_with_a_clear_error(tmp_path: Path) -> None:
    blocked = tmp_path / "not-a-folder"
    blocked.write_text("")  # the cache root below a file: no copy can be made
    env = {**os.environ, "XDG_CACHE_HOME": str(blocked / "cache")}
    rig = await start_rig(free_udp_port(), free_udp_port(), 2, env=env, ready=False)
    (msg,) = await rig.expect("error", timeout=30)
    assert msg["error"].startswith("SIP lane 1: cannot load a copy of pjsua2 under"), msg
    assert await asyncio.wait_for(rig.proc.wait(), 30) == 0
