"""Canonical audio frames and the things that produce and hold them.

Canonical format: 8 kHz, mono, signed 16-bit, 160 samples per 20 ms frame,
as numpy int16 arrays. It is the telephone band: G.711 (PCMU/PCMA) toward
SIP and browsers needs no resampling, and only an Opus leg is resampled.

Nothing here imports aiortc: a SIP leg (pjsua2) uses the same sources,
buffers and G.711 tables as a browser leg.
"""

from __future__ import annotations

import collections
import os
import time
from os import PathLike
from typing import Protocol

import av
import numpy as np

from .tones import tone

RATE = 8000
FRAME_MS = 20
FRAME_SAMPLES = RATE * FRAME_MS // 1000  # 160
FRAME_SECONDS = FRAME_MS / 1000.0

SILENCE = np.zeros(FRAME_SAMPLES, dtype=np.int16)
SILENCE.flags.writeable = False


class MediaError(ValueError):
    """Bad input to the media engine (SDP, session id, WAV file); the message names it."""


# ---------------------------------------------------------------- sources


class Source(Protocol):
    """Anything that yields one canonical frame per engine tick.

    `frame(tick)` is called at most once per tick per listener and must be
    cheap; several listeners may read the same tick (a player heard by two
    sessions), so a source is indexed by tick rather than popped.
    """

    def frame(self, tick: int) -> np.ndarray: ...


class Silence:
    """Zeros, forever."""

    def frame(self, tick: int) -> np.ndarray:
        return SILENCE

    def __repr__(self) -> str:
        return "Silence()"


class SampleSource:
    """Frames cut from a sample buffer at load time, served by index."""

    def __init__(self, samples: np.ndarray, loop: bool) -> None:
        n = len(samples)
        padded = -(-n // FRAME_SAMPLES) * FRAME_SAMPLES if n else FRAME_SAMPLES
        data = np.zeros(padded, dtype=np.int16)
        data[:n] = samples
        data.flags.writeable = False
        self._frames = data.reshape(-1, FRAME_SAMPLES)
        self.loop = loop
        self._start: int | None = None

    @property
    def frame_count(self) -> int:
        return len(self._frames)

    def frame(self, tick: int) -> np.ndarray:
        if self._start is None:
            self._start = tick
        index = tick - self._start
        if self.loop:
            return self._frames[index % len(self._frames)]
        if 0 <= index < len(self._frames):
            return self._frames[index]
        return SILENCE

    def finished(self, tick: int) -> bool:
        """A one-shot source has played its last frame before `tick`."""
        return not self.loop and self._start is not None and tick - self._start >= len(self._frames)

    def rewind(self) -> None:
        """Start again from the first frame at the next read."""
        self._start = None


class ToneSource(SampleSource):
    """A continuous sine (ringback, beeps, tests).

    One second is precomputed and looped: seamless for whole-hertz
    frequencies, a phase step once a second otherwise.
    """

    def __init__(self, freq: float, amplitude: float = 0.3, seconds: float | None = None) -> None:
        assert 0 < freq < RATE / 2, f"tone of {freq} Hz does not fit an {RATE} Hz stream"
        self.freq = freq
        if seconds is None:
            super().__init__(tone(freq, RATE, RATE, amplitude), loop=True)
        else:
            super().__init__(tone(freq, int(seconds * RATE), RATE, amplitude), loop=False)

    def __repr__(self) -> str:
        return f"ToneSource({self.freq})"


class WavPlayer(SampleSource):
    """An audio file (music on hold, a prompt), converted once at load, served by index.

    Any file libav decodes is accepted (WAV of any rate, width and channel
    count; also MP3, FLAC, ...). `loop=False` plays it once then silence.
    """

    def __init__(self, path: str | PathLike[str], loop: bool = True) -> None:
        self.path = os.fspath(path)
        super().__init__(load_audio(self.path), loop=loop)

    def __repr__(self) -> str:
        return f"WavPlayer({self.path!r}, loop={self.loop})"


def load_audio(path: str) -> np.ndarray:
    """Decode a whole audio file to canonical samples (8 kHz mono int16)."""
    if not os.path.isfile(path):
        raise MediaError(f"audio file {path!r} does not exist")
    chunks: list[np.ndarray] = []
    try:
        with av.open(path) as container:
            if not container.streams.audio:
                raise MediaError(f"{path!r} has no audio stream")
            resampler = av.AudioResampler(format="s16", layout="mono", rate=RATE)
            for frame in container.decode(audio=0):
                for out in resampler.resample(frame):
                    chunks.append(out.to_ndarray().reshape(-1).copy())
            for out in resampler.resample(None):
                chunks.append(out.to_ndarray().reshape(-1).copy())
    except MediaError:
        raise
    except (av.FFmpegError, OSError, ValueError) as exc:
        raise MediaError(f"cannot decode audio file {path!r}: {exc}") from exc
    if not chunks:
        raise MediaError(f"audio file {path!r} holds no samples")
    return np.concatenate(chunks).astype(np.int16, copy=False)


# ---------------------------------------------------------------- inbound buffer


# Reads (20 ms each) a queue must show a spare frame throughout before one is given back. Shorter
# windows cut latency sooner but, on a machine whose CPU is starved now and then, give back the very
# frame the next stall needs (a gap in the audio each time). An inbound buffer gives back after 2 s
# (what the caller says reaches the agent with little delay); the queue pjsua's clock reads towards a
# caller after 5 s (a cut there is heard in every prompt, the music and the agent's voice).
SLACK_WINDOW = 250
INBOUND_WINDOW = 100


class Slack:
    """Whether a queue read at a steady pace holds a frame more than it needs.

    `see(depth)` is called at each read with the frames queued just before it. The fewest seen over a
    window of `window` reads is the queue's margin; when it is two or more (a frame always ready and one
    more besides, a whole window long), `see` says True once, and the caller drops one frame."""

    __slots__ = ("window", "_reads", "_low")

    def __init__(self, window: int = SLACK_WINDOW) -> None:
        assert window >= 1, f"window {window}"
        self.window = window
        self._reads = 0
        self._low = 1 << 30

    def see(self, depth: int) -> bool:
        if depth < self._low:
            self._low = depth
        self._reads += 1
        if self._reads < self.window:
            return False
        surplus = self._low >= 2
        self._reads, self._low = 0, 1 << 30
        return surplus


class FrameBuffer:
    """A small bounded ring of inbound frames between a network leg and the ticker.

    The network side `push`es whenever a frame is decoded; the engine's
    ticker `pop`s exactly one per 20 ms tick. Full: the oldest frame is
    dropped (`dropped`). Empty at a tick once audio has started: silence is
    played and `late` counts it, and the frame that comes late stays queued,
    so the buffer has grown by the jitter that made it late. The first read
    waits for `prefetch` frames (a stream's start is its most uneven part).

    It shrinks by the depth it did not need (`Slack`: a frame more than it
    needed at every tick of a window of `window` ticks is dropped). A burst or a stall of the far side's clock does not add
    latency for the rest of the call, and a steady source (pjsua's media
    clock, a LAN) ends up with one frame queued at the tick: no more delay
    than the clocks' phase. (RFC 3550's running jitter of the arrivals is
    kept in `jitter` for the figures.)

    Thread-safe enough for one producer thread (pjsua2's media clock) and the
    asyncio ticker: deque append/popleft are atomic under the GIL; the
    counters are only advisory.
    """

    def __init__(self, capacity: int = 5, window: int = INBOUND_WINDOW, prefetch: int = 2) -> None:
        assert capacity >= 2 and 1 <= prefetch <= capacity, f"capacity {capacity}, prefetch {prefetch}"
        self.capacity = capacity
        self.prefetch = prefetch
        self._primed = False
        self._slack = Slack(window)
        self._frames: collections.deque[np.ndarray] = collections.deque()
        self.received = 0
        self.dropped = 0
        self.late = 0
        self.trimmed = 0
        "Frames dropped because the buffer held more than it needed for a whole window."
        # Arrival jitter at the mixer's input (RFC 3550's running estimate over 20 ms frames), seconds.
        self.jitter = 0.0
        self._last_arrival = 0.0

    def __len__(self) -> int:
        return len(self._frames)

    def push(self, frame: np.ndarray) -> None:
        """Queue one canonical frame (160 int16 samples; not copied, do not reuse it)."""
        if len(self._frames) >= self.capacity:
            self._frames.popleft()
            self.dropped += 1
        self._frames.append(frame)
        self.received += 1
        now = time.monotonic()
        if self._last_arrival:
            self.jitter += (abs(now - self._last_arrival - FRAME_SECONDS) - self.jitter) / 16.0
        self._last_arrival = now

    def pop(self) -> np.ndarray:
        """The frame for this tick, or silence (counted late once audio has started)."""
        frames = self._frames
        if not self._primed:
            # The first frames of a stream come as unevenly as its start-up: wait for `prefetch` of
            # them (silence meanwhile, not late), and let Slack take back what was not needed.
            if len(frames) < self.prefetch:
                return SILENCE
            self._primed = True
        if self._slack.see(len(frames)):
            frames.popleft()
            self.dropped += 1
            self.trimmed += 1
        if not frames:
            if self.received:
                self.late += 1
            return SILENCE
        return frames.popleft()

    def clear(self) -> None:
        self._frames.clear()


# ---------------------------------------------------------------- conversion


class FrameSplitter:
    """Turns decoded `av.AudioFrame`s of any format into canonical 160-sample frames.

    G.711 frames (s16, mono, 8 kHz, 160 samples) take a copy-only fast path;
    anything else (Opus at 48 kHz stereo) goes through one `av.AudioResampler`
    and a sample accumulator.
    """

    def __init__(self) -> None:
        self._resampler: av.AudioResampler | None = None
        self._pending = np.zeros(0, dtype=np.int16)

    def split(self, frame: av.AudioFrame) -> list[np.ndarray]:
        if (
            frame.sample_rate == RATE
            and frame.samples == FRAME_SAMPLES
            and frame.format.name == "s16"
            and frame.layout.nb_channels == 1
            and not len(self._pending)
        ):
            return [np.frombuffer(frame.planes[0], dtype=np.int16, count=FRAME_SAMPLES).copy()]
        if self._resampler is None:
            self._resampler = av.AudioResampler(format="s16", layout="mono", rate=RATE)
        parts = [self._pending]
        for out in self._resampler.resample(frame):
            parts.append(out.to_ndarray().reshape(-1))
        samples = np.concatenate(parts)
        whole = len(samples) // FRAME_SAMPLES * FRAME_SAMPLES
        self._pending = samples[whole:].copy()
        return [samples[i : i + FRAME_SAMPLES].copy() for i in range(0, whole, FRAME_SAMPLES)]


# ---------------------------------------------------------------- G.711


def _g711_table(codec_name: str) -> np.ndarray:
    """int16 → G.711 byte for all 65,536 inputs, encoded once by libav so it is bit-exact."""
    ctx = av.CodecContext.create(codec_name, "w")
    ctx.format = "s16"
    ctx.layout = "mono"
    ctx.sample_rate = RATE
    everything = np.arange(-32768, 32768, dtype=np.int16)
    frame = av.AudioFrame.from_ndarray(everything.reshape(1, -1), format="s16", layout="mono")
    frame.sample_rate = RATE
    frame.pts = 0
    encoded = b"".join(bytes(p) for p in ctx.encode(frame)) + b"".join(bytes(p) for p in ctx.encode(None))
    table = np.frombuffer(encoded, dtype=np.uint8)
    assert len(table) == 65536, f"{codec_name} table has {len(table)} entries"
    return table


def _g711_decode_table(codec_name: str) -> np.ndarray:
    """G.711 byte → int16 for all 256 inputs, decoded once by libav so it is bit-exact."""
    ctx = av.CodecContext.create(codec_name, "r")
    ctx.format = "s16"
    ctx.layout = "mono"
    ctx.sample_rate = RATE
    decoded = [f.to_ndarray().reshape(-1) for f in ctx.decode(av.Packet(bytes(range(256))))]
    table = np.concatenate(decoded).astype(np.int16)
    assert len(table) == 256, f"{codec_name} table has {len(table)} entries"
    table.flags.writeable = False
    return table


_G711_NAMES = {"audio/pcmu": "pcm_mulaw", "audio/pcma": "pcm_alaw"}


class G711Decoder:
    """PCMU or PCMA payload → canonical frames with one table lookup (no codec context).

    A 20 ms payload (160 bytes, what browsers and SIP phones send) becomes one
    frame directly; other packet times are accumulated and cut into 160-sample
    frames.
    """

    _tables: dict[str, np.ndarray] = {}

    def __init__(self, mime: str) -> None:
        name = _G711_NAMES[mime.lower()]
        if name not in self._tables:
            self._tables[name] = _g711_decode_table(name)
        self._table = self._tables[name]
        self._pending = np.zeros(0, dtype=np.int16)

    def decode(self, payload: bytes) -> list[np.ndarray]:
        samples = self._table.take(np.frombuffer(payload, dtype=np.uint8))
        if len(samples) == FRAME_SAMPLES and not len(self._pending):
            return [samples]
        if len(self._pending):
            samples = np.concatenate((self._pending, samples))
        whole = len(samples) // FRAME_SAMPLES * FRAME_SAMPLES
        self._pending = samples[whole:].copy()
        return [samples[i : i + FRAME_SAMPLES] for i in range(0, whole, FRAME_SAMPLES)]


class G711Encoder:
    """Canonical frame → PCMU or PCMA payload with one table lookup (no codec context)."""

    _tables: dict[str, np.ndarray] = {}

    def __init__(self, mime: str) -> None:
        name = _G711_NAMES[mime.lower()]
        if name not in self._tables:
            self._tables[name] = _g711_table(name)
        self._table = self._tables[name]
        self._index = np.empty(FRAME_SAMPLES, dtype=np.int32)

    def encode(self, frame: np.ndarray) -> bytes:
        np.add(frame, 32768, out=self._index, dtype=np.int32)
        return self._table.take(self._index).tobytes()

