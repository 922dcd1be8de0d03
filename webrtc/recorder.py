"""Call recordings in the media worker: two parties' inbound audio to an Opus file in Ogg.

A recording names two legs: the caller's SIP leg (left channel) and the agent's
softphone (right channel). Each 20 ms tick the mixer hands every `Recorder` the
legs' current frames (the same frames everybody hears that tick, so both
channels stay aligned to the sample); the recorder only keeps references to
them and, once a second, passes the batch to one writer thread, which
interleaves, encodes (libopus via PyAV) and writes. Nothing on the tick
touches libav or the disk.

A file is written as `<id>.ogg.part` and renamed to `<id>.ogg` when finished,
so a finished name is always a whole, playable file. `on_done` is called (on
the writer thread) with the result of each recording.

Two channels rather than one mix: each party can be heard or analysed
(transcribed, checked for talk-over) alone, and a player still plays both at
once; Opus codes the pair at a small cost over mono.
"""

from __future__ import annotations

import logging
import os
import queue
import re
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Protocol

import av
import numpy as np

from .audio import FRAME_SAMPLES, RATE, SILENCE, MediaError

log = logging.getLogger(__name__)

# Ticks (20 ms) a recorder gathers before handing them to the writer thread.
CHUNK_FRAMES = 50
# Opus bit rate of a two-channel telephone-band recording (≈ 3 KB a second).
BIT_RATE = 24_000
SUFFIX = ".ogg"
CONTENT_TYPE = "audio/ogg"
_ID = re.compile(r"[0-9a-f]{32}")


def check_recording_id(recording_id: object) -> str:
    """A recording id is 32 lowercase hex digits (it names a file); MediaError otherwise."""
    if not isinstance(recording_id, str) or not _ID.fullmatch(recording_id):
        raise MediaError(f"bad recording id {recording_id!r}: expected 32 hex digits")
    return recording_id


@dataclass(frozen=True)
class RecordingResult:
    """A finished (or failed) recording, as the worker reports it to the hub."""

    recording_id: str
    "The id the hub gave it."
    path: str
    "File name relative to the recordings folder (`<id>.ogg`)."
    seconds: float
    "Length of the audio."
    bytes: int
    "Size of the file."
    error: str | None = None
    "What went wrong (the file may then be missing or cut short)."


class Tap(Protocol):
    """Something the mixer shows every leg's current frame to, once per tick, after the frames are taken."""

    def capture(self, legs: dict) -> None: ...


class Recorder:
    """The tick side of one recording: keeps references to two legs' frames, hands them on in batches."""

    def __init__(self, recording_id: str, left: str, right: str, hand_on: Callable[[str, list], None]) -> None:
        self.id = recording_id
        self.left = left
        self.right = right
        self._hand_on = hand_on
        self._frames: list[tuple[np.ndarray, np.ndarray]] = []

    def capture(self, legs: dict) -> None:
        a = legs.get(self.left)
        b = legs.get(self.right)
        # Inbound frames are fresh arrays that nobody changes afterwards: keeping references is safe.
        self._frames.append((a.current if a is not None else SILENCE, b.current if b is not None else SILENCE))
        if len(self._frames) >= CHUNK_FRAMES:
            self.flush()

    def flush(self) -> None:
        if self._frames:
            frames, self._frames = self._frames, []
            self._hand_on(self.id, frames)


class _File:
    """One recording's Ogg container and Opus stream (writer thread only)."""

    def __init__(self, folder: Path, recording_id: str) -> None:
        self.id = recording_id
        self.final = folder / f"{recording_id}{SUFFIX}"
        self.part = folder / f"{recording_id}{SUFFIX}.part"
        self.samples = 0
        self.container = av.open(str(self.part), "w", format="ogg")
        self.stream = self.container.add_stream("libopus", rate=RATE, layout="stereo")
        self.stream.bit_rate = BIT_RATE

    def write(self, frames: list[tuple[np.ndarray, np.ndarray]]) -> None:
        pcm = np.empty((len(frames) * FRAME_SAMPLES, 2), dtype=np.int16)
        for i, (a, b) in enumerate(frames):
            pcm[i * FRAME_SAMPLES:(i + 1) * FRAME_SAMPLES, 0] = a
            pcm[i * FRAME_SAMPLES:(i + 1) * FRAME_SAMPLES, 1] = b
        frame = av.AudioFrame.from_ndarray(pcm.reshape(1, -1), format="s16", layout="stereo")
        frame.sample_rate = RATE
        frame.pts = self.samples
        self.samples += len(pcm)
        for packet in self.stream.encode(frame):
            self.container.mux(packet)

    def finish(self) -> RecordingResult:
        try:
            for packet in self.stream.encode(None):
                self.container.mux(packet)
        finally:
            self.container.close()
        os.replace(self.part, self.final)
        return RecordingResult(self.id, self.final.name, self.samples / RATE, self.final.stat().st_size)


class RecordingWriter:
    """The worker's recordings: recorders on the mixer's tick, one writer thread for every file.

    `start` and `stop` run on the event loop; `on_done(result)` is called on the writer thread
    (hop back to the loop with `call_soon_threadsafe`). `close` stops every recording and waits
    for the files to be finished.
    """

    def __init__(self, taps: dict[str, Tap], folder: str | os.PathLike[str],
                 on_done: Callable[[RecordingResult], None]) -> None:
        self._taps = taps
        self.folder = Path(folder)
        self._on_done = on_done
        self._recorders: dict[str, Recorder] = {}
        self._jobs: queue.Queue[tuple[str, str, list | None]] = queue.Queue()
        self._thread: threading.Thread | None = None

    def start(self, recording_id: str, left: str, right: str) -> None:
        """Record `left` (the caller) and `right` (the agent) from the next tick on."""
        check_recording_id(recording_id)
        if recording_id in self._recorders:
            raise MediaError(f"recording {recording_id} is running already")
        try:
            self.folder.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise MediaError(f"cannot create the recordings folder {str(self.folder)!r}: {exc}") from None
        if self._thread is None:
            self._thread = threading.Thread(target=self._write, name="recordings", daemon=True)
            self._thread.start()
        self._jobs.put(("open", recording_id, None))
        recorder = Recorder(recording_id, left, right, lambda rid, frames: self._jobs.put(("write", rid, frames)))
        self._recorders[recording_id] = recorder
        self._taps[f"rec:{recording_id}"] = recorder

    def stop(self, recording_id: str) -> bool:
        """Finish a recording (its file is completed on the writer thread); False if none runs."""
        recorder = self._recorders.pop(recording_id, None)
        if recorder is None:
            return False
        self._taps.pop(f"rec:{recording_id}", None)
        recorder.flush()
        self._jobs.put(("close", recording_id, None))
        return True

    def stop_leg(self, leg_id: str) -> list[str]:
        """Finish the recordings of a party that has gone (a call ended); their ids."""
        ids = [r.id for r in self._recorders.values() if leg_id in (r.left, r.right)]
        for rid in ids:
            self.stop(rid)
        return ids

    def running(self) -> list[str]:
        return list(self._recorders)

    def close(self, timeout: float = 10.0) -> None:
        for rid in list(self._recorders):
            self.stop(rid)
        if self._thread is not None:
            self._jobs.put(("quit", "", None))
            self._thread.join(timeout)
            self._thread = None

    # ------------------------------------------------------------ the writer thread

    def _write(self) -> None:
        files: dict[str, _File] = {}
        while True:
            op, rid, frames = self._jobs.get()
            if op == "quit":
                return
            try:
                if op == "open":
                    files[rid] = _File(self.folder, rid)
                elif op == "write" and rid in files:
                    files[rid].write(frames or [])
                elif op == "close" and rid in files:
                    self._report(files.pop(rid).finish())
            except Exception as exc:  # a failing file (disk full, libav) ends that recording, not the others
                # Later writes of the recording are dropped; its close reports nothing more.
                log.exception("recording %s: %s failed", rid, op)
                broken = files.pop(rid, None)
                if broken is not None:
                    try:
                        broken.container.close()
                    except Exception:  # already failing; the report below says why
                        pass
                    broken.part.unlink(missing_ok=True)
                self._report(RecordingResult(rid, f"{rid}{SUFFIX}", 0.0, 0, f"{type(exc).__name__}: {exc}"[:500]))

    def _report(self, result: RecordingResult) -> None:
        try:
            self._on_done(result)
        except Exception:  # the report is lost, the file is not
            log.exception("reporting recording %s failed", result.recording_id)


def read_channels(path: str | os.PathLike[str]) -> tuple[np.ndarray, np.ndarray]:
    """Decode a recording to its two channels (caller, agent) as 8 kHz int16 samples."""
    parts: list[np.ndarray] = []
    with av.open(os.fspath(path)) as container:
        resampler = av.AudioResampler(format="s16", layout="stereo", rate=RATE)
        for frame in container.decode(audio=0):
            for out in resampler.resample(frame):
                parts.append(out.to_ndarray().reshape(-1, 2))
        for out in resampler.resample(None):
            parts.append(out.to_ndarray().reshape(-1, 2))
    pcm = np.concatenate(parts) if parts else np.zeros((0, 2), dtype=np.int16)
    return pcm[:, 0].copy(), pcm[:, 1].copy()
