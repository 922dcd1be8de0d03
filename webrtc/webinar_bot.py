"""aiortc peers for webinars: a presenter (test card and tone), a speaker (tone) and attendees.

Tests and load generators use them as independent WebRTC endpoints: each has
its own RTCPeerConnection, offers (ICE gathered, no trickle) and takes an
answer from wherever the signaling goes (the media worker directly, or the hub).
An attendee decodes what it receives, counts decoded video frames per track and
keeps the last second of each audio track, so a test can ask which tones it hears.
"""

from __future__ import annotations

import asyncio
import contextlib
import fractions
import time
from collections import deque

import av
import numpy as np
from aiortc import MediaStreamTrack, RTCPeerConnection, RTCSessionDescription
from aiortc.mediastreams import MediaStreamError, VideoStreamTrack

from webrtc.tones import tone_present
from webrtc.webinar import max_bundle

AUDIO_RATE = 48000
AUDIO_TIME_BASE = fractions.Fraction(1, AUDIO_RATE)


class TestCard(VideoStreamTrack):
    """A small moving test card (aiortc paces it at 30 frames a second)."""

    def __init__(self, width: int = 320, height: int = 240) -> None:
        super().__init__()
        self._base = np.zeros((height, width, 3), dtype=np.uint8)
        self._base[:, :, 1] = np.linspace(0, 255, width, dtype=np.uint8)[None, :]
        self._n = 0

    async def recv(self) -> av.VideoFrame:
        pts, time_base = await self.next_timestamp()
        img = self._base.copy()
        x = (self._n * 4) % img.shape[1]
        img[:, x:x + 16, 0] = 255
        self._n += 1
        frame = av.VideoFrame.from_ndarray(img, format="rgb24")
        frame.pts, frame.time_base = pts, time_base
        return frame


class ToneTrack(MediaStreamTrack):
    """A microphone playing a steady tone at 48 kHz in 20 ms frames, paced in real time."""

    kind = "audio"

    def __init__(self, freq: float, amplitude: float = 0.3) -> None:
        super().__init__()
        self.freq = freq
        self.amplitude = amplitude
        self._n = 0
        self._start: float | None = None

    async def recv(self) -> av.AudioFrame:
        if self.readyState != "live":
            raise MediaStreamError
        if self._start is None:
            self._start = time.monotonic()
        wait = self._start + self._n * 0.02 - time.monotonic()
        if wait > 0:
            await asyncio.sleep(wait)
        samples = 960
        t = (np.arange(samples) + self._n * samples) / AUDIO_RATE
        x = (np.sin(2 * np.pi * self.freq * t) * self.amplitude * 32767).astype(np.int16)
        frame = av.AudioFrame.from_ndarray(x.reshape(1, -1), format="s16", layout="mono")
        frame.sample_rate = AUDIO_RATE
        frame.pts = self._n * samples
        frame.time_base = AUDIO_TIME_BASE
        self._n += 1
        return frame


class Peer:
    def __init__(self) -> None:
        self.pc = RTCPeerConnection(max_bundle([]))

    async def offer(self) -> str:
        await self.pc.setLocalDescription(await self.pc.createOffer())
        return self.pc.localDescription.sdp

    async def accept(self, answer_sdp: str) -> None:
        await self.pc.setRemoteDescription(RTCSessionDescription(sdp=answer_sdp, type="answer"))

    async def close(self) -> None:
        await self.pc.close()


class Publisher(Peer):
    """Sends a test card (and a second one as the screen, if asked) and a tone; or only a tone."""

    def __init__(self, tone_hz: float, video: bool = True, screen: bool = False) -> None:
        super().__init__()
        if video:
            self.pc.addTransceiver(TestCard(), direction="sendonly")
        self.pc.addTransceiver(ToneTrack(tone_hz), direction="sendonly")
        if screen:
            self.pc.addTransceiver(TestCard(160, 120), direction="sendonly")


class Attendee(Peer):
    """Receives `video` video and `audio` audio tracks, decoding them (aiortc's receivers)."""

    def __init__(self, video: int = 1, audio: int = 2) -> None:
        super().__init__()
        self.video_frames: list[int] = []
        self.first_frame_at: float | None = None
        # Per audio track: (arrival time, samples) of the last second or so.
        self.audio: list[deque[tuple[float, np.ndarray]]] = []
        self._pumps: list[asyncio.Task[None]] = []
        for _ in range(video):
            self.pc.addTransceiver("video", direction="recvonly")
        for _ in range(audio):
            self.pc.addTransceiver("audio", direction="recvonly")

        @self.pc.on("track")
        def on_track(track: MediaStreamTrack) -> None:
            if track.kind == "video":
                i = len(self.video_frames)
                self.video_frames.append(0)
                self._pumps.append(asyncio.ensure_future(self._video(track, i)))
            else:
                buf: deque[tuple[float, np.ndarray]] = deque(maxlen=50)
                self.audio.append(buf)
                self._pumps.append(asyncio.ensure_future(self._audio(track, buf)))

    async def _video(self, track: MediaStreamTrack, i: int) -> None:
        with contextlib.suppress(MediaStreamError):
            while True:
                await track.recv()
                if self.first_frame_at is None:
                    self.first_frame_at = time.monotonic()
                self.video_frames[i] += 1

    @staticmethod
    async def _audio(track: MediaStreamTrack, buf: deque[tuple[float, np.ndarray]]) -> None:
        with contextlib.suppress(MediaStreamError):
            while True:
                frame = await track.recv()
                x = frame.to_ndarray().reshape(-1)
                if len(frame.layout.channels) == 2:
                    x = x[0::2]
                buf.append((time.monotonic(), x.astype(np.int16)))

    def _recent(self, track: int, seconds: float = 0.5) -> np.ndarray:
        if track >= len(self.audio):
            return np.zeros(0, dtype=np.int16)
        since = time.monotonic() - seconds
        chunks = [x for t, x in self.audio[track] if t >= since]
        return np.concatenate(chunks) if chunks else np.zeros(0, dtype=np.int16)

    def hears(self, track: int, freq: float) -> bool:
        """Whether audio track `track` carried `freq` over the last half second."""
        samples = self._recent(track)
        return len(samples) >= AUDIO_RATE // 4 and tone_present(samples, AUDIO_RATE, freq)

    def silent(self, track: int) -> bool:
        """Whether audio track `track` carried nothing audible over the last half second (or nothing at all)."""
        samples = self._recent(track).astype(np.float64)
        return not len(samples) or float(np.sqrt(np.mean(samples**2))) < 100.0

    async def close(self) -> None:
        for p in self._pumps:
            p.cancel()
        await super().close()
