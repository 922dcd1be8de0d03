"""A SipBridge with lanes in a process of its own, driven over stdin/stdout (JSON lines).

    python -m tests.bridge.lane_rig PORT LANE_PORT RTP_PORT LANES [--host H] [--transports udp,tcp]
        [--tls-port P --tls-cert C --tls-key K] [--sip-log FILE]

It answers every offered call at once, plays OUR_HZ into it and reports
whether the caller's CALLER_HZ reached the call's leg (1 s judged after
0.4 s of set-up). Lines in: "stats", "dial URI N [TRUNK]", "trunk KEY HOST
USER PASSWORD", "hangup" (every call), "quit". Lines out: {"ready"}, {"offer"}, {"heard"}, {"progress"}, {"dialed"},
{"ended"}, {"stats"}, {"stopped"}. Several
pjsua2 Endpoints created and destroyed in the test process itself would be
fragile; one process per bridge is how the media worker runs them.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import sys

import numpy as np

from bridge.events import CallEnded, CallProgress, IncomingCall, SipError
from bridge.trunk import Trunk
from bridge.ua import SipBridge
from webrtc.audio import ToneSource
from webrtc.engine import MediaEngine
from webrtc.mixer import Input
from webrtc.tones import tone_present

CALLER_HZ, OUR_HZ = 1000, 500


def say(**what: object) -> None:
    sys.stdout.write(json.dumps(what) + "\n")
    sys.stdout.flush()


async def main(port: int, lane_port: int, rtp_port: int, lanes: int, opts: argparse.Namespace) -> None:
    if opts.sip_log:  # pjsip's own log (level 5: every message sent and received), for tests that read it
        handler = logging.FileHandler(opts.sip_log)
        logging.getLogger("bridge.agent").addHandler(handler)
        logging.getLogger("bridge.agent").setLevel(logging.DEBUG)
    engine = MediaEngine()
    bridge: SipBridge | None = None
    tasks: set[asyncio.Task[None]] = set()

    async def judge(call_id: str, lane: int) -> None:
        assert bridge is not None
        leg = bridge.leg_id(call_id)
        probe = f"probe-{call_id}"
        port = engine.add_leg(probe)
        engine.set_inputs(probe, [Input(leg=leg)])
        # The caller's tone within 8 s of the answer (its RTP starts after the ACK, later on a busy
        # machine): each second of what the leg heard is judged until it is there.
        frames: list[np.ndarray] = []
        found = False
        try:
            while not found and len(frames) < 400:
                frames.append((await port.next_frame()).copy())
                if len(frames) >= 50 and len(frames) % 10 == 0:
                    found = bool(tone_present(np.concatenate(frames[-50:]), 8000, CALLER_HZ))
        except Exception as exc:  # the call ended before the tone was heard
            say(heard=call_id, lane=lane, caller_tone=False, error=repr(exc))
            return
        finally:
            engine.remove_leg(probe)
        say(heard=call_id, lane=lane, caller_tone=found)

    def on_event(event: object) -> None:
        assert bridge is not None
        if isinstance(event, IncomingCall):
            lane = bridge.lane_of(event.call_id)
            say(offer=event.call_id, lane=lane, remote=event.remote, to_user=event.to_user,
                transport=event.transport)
            bridge.answer(event.call_id)
            engine.set_inputs(bridge.leg_id(event.call_id), [Input(source=ToneSource(OUR_HZ))])
            task = asyncio.get_running_loop().create_task(judge(event.call_id, lane))
            tasks.add(task)
            task.add_done_callback(tasks.discard)
        elif isinstance(event, CallProgress):
            say(progress=event.call_id, state=event.state, lane=bridge.lane_of(event.call_id))
        elif isinstance(event, CallEnded):
            say(ended=event.call_id, code=event.code, by=event.by)

    bridge = SipBridge(engine, host=opts.host, port=port, transports=tuple(opts.transports.split(",")),
                       on_event=on_event, rtp_port=rtp_port, lanes=lanes, lane_port=lane_port,
                       tls_port=opts.tls_port, tls_cert=opts.tls_cert, tls_key=opts.tls_key,
                       log_level=5 if opts.sip_log else 1)
    try:
        await bridge.start()
    except SipError as exc:
        say(error=str(exc))
        return
    say(ready=True, lanes=bridge.lanes())
    while True:
        line = await asyncio.to_thread(sys.stdin.readline)
        words = line.split()
        if line.strip() == "stats":
            say(stats=bridge.stats(), lanes=bridge.lanes(), calls=len(bridge.calls()))
        elif words[:1] == ["dial"]:  # dial URI N [TRUNK]: N calls out, each on the lane with the most free slots
            for i in range(int(words[2])):
                bridge.dial(f"out{i}", words[1], trunk=words[3] if len(words) > 3 else None)
                say(dialed=f"out{i}", lane=bridge.lane_of(f"out{i}"))
        elif words[:1] == ["trunk"]:  # trunk KEY HOST USER PASSWORD: a UDP trunk, not registered
            bridge.set_trunks([Trunk(words[1], words[2], "udp", words[3], words[4])])
        elif words[:1] == ["hangup"]:  # every call, from our side
            for call_id in bridge.calls():
                bridge.hangup(call_id)
        elif not line or line.strip() == "quit":
            break
    await bridge.stop()
    await engine.close_all()
    say(stopped=True)


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("numbers", nargs=4, type=int, help="port lane_port rtp_port lanes")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--transports", default="udp")
    parser.add_argument("--tls-port", type=int, default=0)
    parser.add_argument("--tls-cert")
    parser.add_argument("--tls-key")
    parser.add_argument("--sip-log", help="a file for pjsip's log of every message")
    args = parser.parse_args()
    asyncio.run(main(*args.numbers, args))
