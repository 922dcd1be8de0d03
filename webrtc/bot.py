"""A headless agent: logs in like the browser, with an aiortc softphone.

`unidesk bot-agent` goes available, answers (or ignores, or rejects) what it
is offered after a delay, plays a WAV file or a tone as its microphone,
records what it hears to a WAV file and wraps up with a code. Load tests and
automated checks use it where a browser per agent would not fit.

`BotAgent` is the same thing as a library (tests drive it step by step).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import fractions
import json
import sys
import time
import uuid
import wave
from collections import deque
from collections.abc import Callable, Sequence
from typing import Any

import av
import httpx
import numpy as np
import websockets
from aiortc import MediaStreamTrack, RTCPeerConnection, RTCSessionDescription
from aiortc.mediastreams import MediaStreamError

from webrtc.audio import FRAME_SAMPLES, RATE, FrameSplitter, Source, ToneSource, WavPlayer
from webrtc.engine import shorten_jitter_buffer
from webrtc.ice import rtc_configuration
from webrtc.tones import dominant_frequency, tone_present, tones_present

TIME_BASE = fractions.Fraction(1, RATE)


class SourceTrack(MediaStreamTrack):
    """A microphone that plays a `Source` in real time (20 ms frames); `mute` sends silence."""

    kind = "audio"

    def __init__(self, source: Source) -> None:
        super().__init__()
        self.source = source
        self.muted = False
        self._start: float | None = None
        self._tick = 0

    async def recv(self) -> av.AudioFrame:
        if self.readyState != "live":
            raise MediaStreamError
        if self._start is None:
            self._start = time.monotonic()
        wait = self._start + self._tick * 0.02 - time.monotonic()
        if wait > 0:
            await asyncio.sleep(wait)  # real-time pacing of the microphone
        samples = np.zeros(FRAME_SAMPLES, np.int16) if self.muted else self.source.frame(self._tick)
        frame = av.AudioFrame.from_ndarray(np.ascontiguousarray(samples).reshape(1, -1), format="s16", layout="mono")
        frame.sample_rate = RATE
        frame.pts = self._tick * FRAME_SAMPLES
        frame.time_base = TIME_BASE
        self._tick += 1
        return frame


class Ear:
    """What the bot hears: the last few seconds as 8 kHz samples, and everything for a recording."""

    def __init__(self, keep_seconds: float = 3.0) -> None:
        self.recent: deque[np.ndarray] = deque(maxlen=int(keep_seconds * 50))
        self.all: list[np.ndarray] = []
        self.frames = 0

    async def pump(self, track: MediaStreamTrack) -> None:
        splitter = FrameSplitter()
        while True:
            try:
                frame = await track.recv()
            except MediaStreamError:
                return
            for f in splitter.split(frame):
                self.recent.append(f)
                self.all.append(f)
                self.frames += 1

    def last(self, seconds: float) -> np.ndarray:
        n = int(seconds * 50)
        frames = list(self.recent)[-n:]
        return np.concatenate(frames) if frames else np.zeros(0, np.int16)

    def save(self, path: str) -> None:
        with wave.open(path, "wb") as w:
            w.setnchannels(1)
            w.setsampwidth(2)
            w.setframerate(RATE)
            w.writeframes(np.concatenate(self.all).astype("<i2").tobytes() if self.all else b"")


class BotAgent:
    """One agent over the hub's protocol with a real aiortc softphone."""

    def __init__(self, hub_url: str, tenant: str, username: str, password: str, mic: Source, own_stream: bool = False) -> None:
        self.url = hub_url.rstrip("/")
        # A supervisor's bot follows its own stream (softphone, monitoring) instead of the board.
        self.own_stream = own_stream
        self.tenant, self.username, self.password = tenant, username, password
        self.mic = SourceTrack(mic)
        self.ear = Ear()
        self.pc: RTCPeerConnection | None = None
        self.ws: Any = None
        self.events: list[dict[str, Any]] = []
        self._waiters: list[tuple[Callable[[dict[str, Any]], bool], asyncio.Future[dict[str, Any]]]] = []
        self._reader: asyncio.Task[None] | None = None
        self._pinger: asyncio.Task[None] | None = None
        self._ear_task: asyncio.Task[None] | None = None
        self._n = 0
        self.ice_servers: list[dict[str, Any]] = []
        self.snapshot: dict[str, Any] = {}

    # ------------------------------------------------------------ protocol

    async def login(self) -> dict[str, Any]:
        async with httpx.AsyncClient() as http:
            r = await http.post(
                f"{self.url}/api/auth/login",
                json={"tenant": self.tenant, "username": self.username, "password": self.password},
            )
        r.raise_for_status()
        token = r.json()["access_token"]
        ws_url = self.url.replace("http://", "ws://").replace("https://", "wss://") + "/ws"
        self.ws = await websockets.connect(ws_url, max_size=2**22)
        auth = {"type": "auth", "token": token, "id": "auth", **({"stream": "own"} if self.own_stream else {})}
        await self.ws.send(json.dumps(auth))
        self._reader = asyncio.create_task(self._read())
        self._pinger = asyncio.create_task(self._ping())
        welcome = await self.expect(lambda m: m["type"] == "welcome", 10)
        self.ice_servers = welcome.get("ice_servers", [])
        self.snapshot = await self.expect(lambda m: m["type"] == "snapshot", 10)
        return welcome

    async def reconnect(self, hub_url: str | None = None, timeout: float = 30.0) -> dict[str, Any]:
        """A new connection to the hub (it restarted, or another hub): log in again, follow the own
        stream again. The softphone's peer connection, to the media worker, stays as it is."""
        for t in (self._reader, self._pinger):
            if t is not None:
                t.cancel()
        if self.ws is not None:
            with contextlib.suppress(Exception):
                await self.ws.close()
        if hub_url is not None:
            self.url = hub_url.rstrip("/")
        deadline = time.monotonic() + timeout
        while True:
            try:
                return await self.login()
            except (OSError, httpx.HTTPError, websockets.exceptions.WebSocketException):
                if time.monotonic() > deadline:
                    raise
                await asyncio.sleep(0.2)  # the hub is starting: try again (bounded)

    async def _read(self) -> None:
        async for raw in self.ws:
            msg = json.loads(raw)
            for pred, fut in list(self._waiters):
                if not fut.done() and pred(msg):
                    fut.set_result(msg)
                    self._waiters.remove((pred, fut))
                    break
            else:
                self.events.append(msg)

    async def _ping(self) -> None:
        while True:
            await asyncio.sleep(5)
            await self.ws.send(json.dumps({"type": "ping"}))

    async def expect(self, pred: Callable[[dict[str, Any]], bool], timeout: float = 10.0) -> dict[str, Any]:
        """The first frame (already received or still to come) that matches `pred`."""
        for i, msg in enumerate(self.events):
            if pred(msg):
                return self.events.pop(i)
        fut: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self._waiters.append((pred, fut))
        try:
            return await asyncio.wait_for(fut, timeout)
        except TimeoutError:
            raise TimeoutError(f"{self.username}: no matching frame in {timeout}s; last: {self.events[-3:]}") from None

    async def request(self, frame: dict[str, Any], timeout: float = 10.0) -> dict[str, Any]:
        """Send a frame and return its `ack` or `error`."""
        self._n += 1
        rid = f"b{self._n}"
        await self.ws.send(json.dumps({**frame, "id": rid}))
        return await self.expect(lambda m: m.get("ref") == rid and m["type"] in ("ack", "error"), timeout)

    async def calls_now(self) -> list[dict[str, Any]]:
        """The calls in progress, as a fresh connection's snapshot lists them."""
        async with httpx.AsyncClient() as http:
            r = await http.post(
                f"{self.url}/api/auth/login",
                json={"tenant": self.tenant, "username": self.username, "password": self.password},
            )
        r.raise_for_status()
        ws_url = self.url.replace("http://", "ws://").replace("https://", "wss://") + "/ws"
        async with websockets.connect(ws_url) as ws:
            await ws.send(json.dumps({"type": "auth", "token": r.json()["access_token"]}))
            while True:
                msg = json.loads(await asyncio.wait_for(ws.recv(), 10))
                if msg["type"] == "snapshot":
                    return list(msg.get("calls", []))

    # ------------------------------------------------------------ softphone

    async def connect_phone(self, timeout: float = 15.0) -> str:
        """Offer the softphone and apply the worker's answer; returns the codec."""
        if self.pc is None:
            from aiortc import RTCIceServer

            servers = [RTCIceServer(urls=s["urls"], username=s.get("username"), credential=s.get("credential"))
                       for s in self.ice_servers]
            self.pc = RTCPeerConnection(rtc_configuration(servers))
            transceiver = self.pc.addTransceiver(self.mic, direction="sendrecv")
            # A browser's jitter buffer on a LAN holds a packet or two, not aiortc's four.
            shorten_jitter_buffer(transceiver.receiver)

            @self.pc.on("track")
            def on_track(track: MediaStreamTrack) -> None:
                if track.kind == "audio" and self._ear_task is None:
                    self._ear_task = asyncio.ensure_future(self.ear.pump(track))

        await self.pc.setLocalDescription(await self.pc.createOffer())
        offer_id = uuid.uuid4().hex[:12]
        ack = await self.request({"type": "phone-offer", "offer_id": offer_id, "sdp": self.pc.localDescription.sdp})
        if ack["type"] == "error":
            raise RuntimeError(f"phone-offer refused: {ack}")
        answer = await self.expect(
            lambda m: m.get("offer_id") == offer_id and m["type"] in ("phone-answer", "phone-state"), timeout
        )
        if answer["type"] != "phone-answer":
            raise RuntimeError(f"softphone failed: {answer}")
        await self.pc.setRemoteDescription(RTCSessionDescription(sdp=answer["sdp"], type="answer"))
        return answer.get("codec", "")

    async def new_phone(self) -> str:
        """Drop the peer connection and offer a new one (what a reloaded page does)."""
        if self.pc is not None:
            await self.pc.close()
        if self._ear_task is not None:
            self._ear_task.cancel()
        self.pc, self._ear_task = None, None
        self.mic = SourceTrack(self.mic.source)
        self.ear = Ear()
        return await self.connect_phone()

    async def hears(self, freq: float, timeout: float = 8.0, seconds: float = 0.5) -> bool:
        """Whether the bot hears `freq` within `timeout` (polls what it received, bounded)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            x = self.ear.last(seconds)
            if len(x) >= seconds * RATE * 0.9 and tone_present(x, RATE, freq):
                return True
            await asyncio.sleep(0.1)
        return False

    async def hears_all(self, freqs: list[float], timeout: float = 8.0, seconds: float = 0.5) -> bool:
        """Whether the bot hears every tone of `freqs` at once (a conference) within `timeout`."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            x = self.ear.last(seconds)
            if len(x) >= seconds * RATE * 0.9 and tones_present(x, RATE, freqs):
                return True
            await asyncio.sleep(0.1)
        return False

    async def hears_not(self, freq: float, timeout: float = 8.0, seconds: float = 0.5) -> bool:
        """Whether, within `timeout`, the last `seconds` heard carry no trace of `freq`."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            x = self.ear.last(seconds)
            if len(x) >= seconds * RATE * 0.9 and not tone_present(x, RATE, freq, min_snr_db=0.0):
                return True
            await asyncio.sleep(0.1)
        return False

    def hearing(self, seconds: float = 0.5) -> float:
        """The dominant frequency of the last `seconds` heard."""
        x = self.ear.last(seconds)
        return dominant_frequency(x, RATE) if len(x) else 0.0

    async def close(self) -> None:
        for t in (self._reader, self._pinger, self._ear_task):
            if t is not None:
                t.cancel()
        if self.pc is not None:
            await self.pc.close()
        if self.ws is not None:
            with contextlib.suppress(Exception):
                await self.ws.close()


# ---------------------------------------------------------------- the command


async def _serve(args: argparse.Namespace) -> None:
    mic: Source = WavPlayer(args.play) if args.play else ToneSource(float(args.tone))
    bot = BotAgent(args.hub, args.tenant, args.user, args.password, mic)
    await bot.login()
    codec = await bot.connect_phone()
    print(f"{args.user}: softphone connected ({codec})", flush=True)
    ack = await bot.request({"type": "set-state", "state": "available"})
    if ack["type"] == "error" and "available" not in ack["message"]:
        raise SystemExit(f"{args.user}: cannot go available: {ack['message']}")
    handled = 0
    try:
        while args.calls == 0 or handled < args.calls:
            m = await bot.expect(
                lambda m: m["type"] == "contact-offered" or (m["type"] == "call-changed"
                                                             and m["call"]["status"] == "ringing"
                                                             and m["call"]["direction"] == "inbound"),
                timeout=3600,
            )
            await asyncio.sleep(args.answer_after)
            if m["type"] == "contact-offered":
                cid = m["contact"]["id"]
                if args.mode == "reject":
                    await bot.request({"type": "reject-offer", "contact_id": cid})
                    continue
                if args.mode == "ignore":
                    continue
                await bot.request({"type": "accept-offer", "contact_id": cid})
                await asyncio.sleep(args.talk)
                await bot.request({"type": "end-contact", "contact_id": cid})
                await bot.request({"type": "complete-wrap-up", "contact_id": cid, "code": args.wrap_up})
            else:
                call_id = m["call"]["id"]
                if args.mode != "answer":
                    await bot.request({"type": "call-hangup", "call_id": call_id})
                    continue
                await bot.request({"type": "call-answer", "call_id": call_id})
                await asyncio.sleep(args.talk)
                await bot.request({"type": "call-hangup", "call_id": call_id})
            handled += 1
            print(f"{args.user}: handled {handled}", flush=True)
    finally:
        if args.record:
            bot.ear.save(args.record)
        await bot.close()


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="unidesk bot-agent", description="A headless agent with a softphone.")
    parser.add_argument("--hub", default="http://127.0.0.1:8000")
    parser.add_argument("--tenant", default="demo")
    parser.add_argument("--user", required=True)
    parser.add_argument("--password", default="demo")
    parser.add_argument("--play", help="WAV file played as the microphone (looped)")
    parser.add_argument("--tone", type=float, default=440.0, help="tone played as the microphone (default 440 Hz)")
    parser.add_argument("--record", help="write what the bot hears to this WAV file")
    parser.add_argument("--mode", choices=("answer", "reject", "ignore"), default="answer")
    parser.add_argument("--answer-after", type=float, default=1.0, help="seconds before answering")
    parser.add_argument("--talk", type=float, default=5.0, help="seconds on a call before hanging up")
    parser.add_argument("--wrap-up", default="resolved", help="wrap-up code")
    parser.add_argument("--calls", type=int, default=0, help="stop after this many (0: run until stopped)")
    args = parser.parse_args(argv)
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(_serve(args))
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
