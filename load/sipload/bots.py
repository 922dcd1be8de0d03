"""A bot agent process: many headless agents with aiortc softphones that answer every offer.

Each agent authenticates with a token minted by the coordinator (no argon2
login per step), connects its softphone (PCMU only; one clock task sends every bot's
pre-encoded 500 Hz tone through its direct send path, and the inbound audio
is taken off each packet as it arrives, webrtc/rtp_recv.py, so a bot costs
little next to the worker it loads), goes available, accepts
every `contact-offered` at once, stays on the call until the caller hangs up
(`contact-changed` to wrap-up), completes wrap-up and goes available again.

While connected it notes, for every 20 ms frame it receives: the wall-clock
arrival time and the frame's RMS, and for every frame that turns loud after
at least five quiet ones the estimated time of the onset sample (see
`Heard.push`). The coordinator turns these into frames lost, caller-audio
gaps and the added delay.

Protocol on the pipe: the process sends ("ready", ok, errors) once every
agent is available, ("connected", caller, t_offer, t_connected) per accepted
call, ("failed", caller, text) per problem; it answers ("report",) with
("report", records) and ends on ("exit",).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import math
import time
from array import array
from typing import Any

from .common import AGENT_HZ, LOUD_RMS, LOUD_SAMPLE


class Heard:
    """What one call sounded like at the agent."""

    def __init__(self) -> None:
        self.t = array("d")
        self.rms = array("f")
        self.onsets = array("d")
        self._quiet = 0

    def push(self, samples: Any) -> None:
        import numpy as np

        now = time.time()
        x = samples.astype(np.float32)
        rms = float(np.sqrt(np.dot(x, x) / len(x)))
        self.t.append(now)
        self.rms.append(rms)
        if rms >= LOUD_RMS:
            if self._quiet >= 5:
                # The frame ends now (a real-time stream); sample k was heard (160 - k) / 8000 s earlier.
                k = int(np.argmax(np.abs(x) >= LOUD_SAMPLE))
                self.onsets.append(now - (160 - k) / 8000)
            self._quiet = 0
        else:
            self._quiet += 1


# Bot agents per process (each process is one event loop with its softphones).
AGENTS_PER_BOT_PROC = 30


def start_bots(ctx: Any, hub_url: str, people: list[tuple[Any, str, str]], bots: list[tuple[Any, Any]]) -> None:
    """Start `people` ((id, username, token)) as bot agents in processes of AGENTS_PER_BOT_PROC, each
    added to `bots` as (process, pipe) at once (so the caller stops them whatever happens), and wait
    until every one is logged in, available and has its softphone up."""
    procs = max(1, math.ceil(len(people) / AGENTS_PER_BOT_PROC))
    started = []
    for j in range(procs):
        part = people[j::procs]
        a, b = ctx.Pipe()
        p = ctx.Process(target=bot_worker, args=(b, {"hub": hub_url, "users": [u for _, u, _ in part],
                                                     "tokens": [t for _, _, t in part]}), daemon=True)
        p.start()
        bots.append((p, a))
        started.append((a, len(part)))
    for a, want in started:
        if not a.poll(60 + 2 * want):
            raise RuntimeError("bot agents did not get ready")
        msg = a.recv()
        if msg[1] != want:
            raise RuntimeError(f"only {msg[1]} of {want} bot agents ready: {msg[2]}")


def stop_bots(bots: list[tuple[Any, Any]]) -> None:
    """Ask every bot process started by `start_bots` to leave, then end those that do not."""
    for _, a in bots:
        try:
            a.send(("exit",))
        except (OSError, ValueError):
            pass
    for p, _ in bots:
        p.join(15)
        if p.is_alive():
            p.terminate()
            p.join(5)


def bot_worker(pipe: Any, cfg: dict[str, Any]) -> None:
    import logging
    import signal

    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the coordinator stops us
    logging.basicConfig(level=logging.WARNING)
    logging.getLogger("aioice").setLevel(logging.ERROR)
    try:
        asyncio.run(_main(pipe, cfg))
    finally:
        pipe.close()


async def _main(pipe: Any, cfg: dict[str, Any]) -> None:
    import websockets
    from aiortc import MediaStreamTrack, RTCPeerConnection, RTCRtpSender
    from aiortc.clock import current_ntp_time
    from aiortc.mediastreams import MediaStreamError

    from webrtc.audio import G711Decoder, G711Encoder, ToneSource
    from webrtc.bot import BotAgent
    from webrtc.ice import rtc_configuration
    from webrtc.rtp_recv import DirectReceiver
    from webrtc.rtp_send import DirectSender, Frame, Parked

    encoder = G711Encoder("audio/PCMU")
    payloads = [encoder.encode(ToneSource(AGENT_HZ).frame(i)) for i in range(50)]
    pcmu = [c for c in RTCRtpSender.getCapabilities("audio").codecs if c.mimeType == "audio/PCMU"]
    lock = asyncio.Semaphore(4)

    def send(*msg: Any) -> None:
        pipe.send(msg)

    class Mic(MediaStreamTrack):
        """A microphone of pre-encoded PCMU packets: `mic_clock` sends them for every bot through
        its `DirectSender`; aiortc's sender gets nothing from `recv` (it waits there until the end)."""

        kind = "audio"

        def __init__(self) -> None:
            super().__init__()
            self.out: DirectSender | None = None
            self._parked = Parked()

        async def recv(self) -> Any:
            if self.readyState != "live":
                raise MediaStreamError
            await self._parked.wait()

        def stop(self) -> None:
            super().stop()
            self._parked.release()

    async def mic_clock() -> None:
        # One task paces every bot's microphone: one wake-up per 20 ms per process, not per bot.
        start, k = time.monotonic(), 0
        while True:
            k += 1
            await asyncio.sleep(max(0.0, start + k * 0.02 - time.monotonic()))
            frame = Frame([payloads[k % 50]], 0, False, current_ntp_time())
            for a in agents:
                out = a.mic.out
                if out is not None:
                    out.send(frame, k * 160)

    class BenchAgent(BotAgent):
        def __init__(self, username: str, token: str) -> None:
            super().__init__(cfg["hub"], "demo", username, "", ToneSource(AGENT_HZ))
            self.token = token
            self.mic = Mic()  # type: ignore[assignment]
            self.heard: Heard | None = None

        async def login(self) -> dict[str, Any]:
            ws_url = self.url.replace("http://", "ws://") + "/ws"
            self.ws = await websockets.connect(ws_url, max_size=2**22)
            await self.ws.send(json.dumps({"type": "auth", "token": self.token, "id": "auth"}))
            self._reader = asyncio.create_task(self._read())
            self._pinger = asyncio.create_task(self._ping())
            welcome = await self.expect(lambda m: m["type"] == "welcome", 30)
            await self.expect(lambda m: m["type"] == "snapshot", 30)
            return welcome

        async def connect_phone(self, timeout: float = 60.0) -> str:
            self.pc = RTCPeerConnection(rtc_configuration(None))
            t = self.pc.addTransceiver(self.mic, direction="sendrecv")
            t.setCodecPreferences(pcmu)
            self.mic.out = DirectSender(t.sender)
            # The caller's audio is taken as each packet arrives (no jitter buffer): the delay
            # measured is the bridge's, up to the agent's machine (a browser adds its own buffer).
            decoder = G711Decoder("audio/PCMU")
            receiver = DirectReceiver(t.receiver, 0, lambda payload: self._frames(decoder.decode(payload)))
            # At most four offers at a time per process: gathering is CPU-bound and the
            # hub's 15 s answer timeout would hit offers queued behind dozens of others.
            async with lock:
                codec = await super().connect_phone(timeout)
            if not receiver.attach():
                raise RuntimeError("the direct receive path could not be attached")
            return codec

        def _frames(self, frames: list[Any]) -> None:
            if self.heard is not None:
                for samples in frames:
                    self.heard.push(samples)

    records: list[dict[str, Any]] = []
    current: dict[str, dict[str, Any]] = {}  # agent → the call it is on
    agents: list[BenchAgent] = []
    errors: list[str] = []

    async def start(username: str, token: str) -> BenchAgent | None:
        a = BenchAgent(username, token)
        agents.append(a)
        try:
            await a.login()
            await a.connect_phone()
            r = await a.request({"type": "set-state", "state": "available"}, 30)
            if r["type"] == "error" and "available" not in r.get("message", ""):
                raise RuntimeError(f"set-state available: {r}")
            return a
        except Exception as exc:  # reported, the step counts it
            errors.append(f"{username}: {type(exc).__name__}: {exc}"[:300])
            return None

    async def serve(a: BenchAgent) -> None:
        while True:
            m = await a.expect(lambda m: m["type"] == "contact-offered", 3600)
            t_offer = time.time()
            contact = m["contact"]
            cid, caller = contact["id"], contact.get("caller", "")
            rec: dict[str, Any] = {"agent": a.username, "caller": caller, "contact": cid, "t_offer": t_offer,
                                   "arrived_at": contact.get("arrived_at"), "problems": []}
            a.heard = Heard()
            current[a.username] = rec
            r = await a.request({"type": "accept-offer", "contact_id": cid}, 30)
            rec["t_connected"] = time.time()
            if r["type"] != "ack":
                rec["problems"].append(f"accept-offer: {r}")
                send("failed", caller, str(r)[:300])
            else:
                send("connected", caller, t_offer, rec["t_connected"])
            try:
                ch = await a.expect(
                    lambda m: m["type"] == "contact-changed" and m["contact"]["id"] == cid
                    and m["contact"]["status"] in ("wrap-up", "ended", "cancelled"), 3600)
                rec["end_status"] = ch["contact"]["status"]
            finally:
                rec["t_end"] = time.time()
                heard, a.heard = a.heard, None
                rec["t"] = heard.t.tobytes()
                rec["rms"] = heard.rms.tobytes()
                rec["onsets"] = heard.onsets.tobytes()
                current.pop(a.username, None)
                # The softphone told the agent the caller cannot be heard, and similar.
                for ev in list(a.events):
                    if ev.get("type") == "phone-state" and ev.get("state") in ("failed", "lost"):
                        rec["problems"].append(f"phone-state: {ev}")
                        a.events.remove(ev)
                records.append(rec)
            if rec["end_status"] == "wrap-up":
                await a.request({"type": "complete-wrap-up", "contact_id": cid, "code": "resolved"}, 30)
            await a.request({"type": "set-state", "state": "available"}, 30)
            # Drop what piled up (agent-state echoes) so `expect` stays cheap.
            a.events = [e for e in a.events if e.get("type") == "contact-offered"]

    clock = asyncio.create_task(mic_clock())
    started = await asyncio.gather(*(start(u, t) for u, t in zip(cfg["users"], cfg["tokens"])))
    live = [a for a in started if a is not None]
    send("ready", len(live), errors[:5])
    tasks = [asyncio.create_task(serve(a)) for a in live]
    loop = asyncio.get_running_loop()
    try:
        while True:
            msg = await loop.run_in_executor(None, pipe.recv)
            if msg[0] == "report":
                # Calls still connected for their agent (the caller has hung up by now): reported as such.
                open_calls = []
                for a in live:
                    rec = current.get(a.username)
                    if rec is not None and a.heard is not None:
                        open_calls.append({**rec, "t_end": time.time(), "end_status": "still connected",
                                           "t": a.heard.t.tobytes(), "rms": a.heard.rms.tobytes(),
                                           "onsets": a.heard.onsets.tobytes(), "stuck": True})
                send("report", records + open_calls, [f"{type(t.exception()).__name__}: {t.exception()}"[:300]
                                         for t in tasks if t.done() and not t.cancelled() and t.exception()])
            elif msg[0] == "exit":
                break
    finally:
        clock.cancel()
        for t in tasks:
            t.cancel()
        for a in agents:
            with contextlib.suppress(Exception):
                if a.ws is not None:
                    await a.request({"type": "set-state", "state": "logged-out"}, 5)
        await asyncio.gather(*(a.close() for a in agents), return_exceptions=True)
