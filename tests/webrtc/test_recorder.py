"""RecordingWriter in the media worker: two legs' frames on the tick, an Opus/Ogg file from the writer thread."""

from __future__ import annotations

import queue
from types import SimpleNamespace

import numpy as np
import pytest

from webrtc.audio import FRAME_SAMPLES, MediaError, ToneSource
from webrtc.recorder import CHUNK_FRAMES, RecordingWriter, read_channels
from webrtc.tones import tone_present

RID = "0123456789abcdef0123456789abcdef"


def run(recordings: RecordingWriter, taps: dict, legs: dict, sources: dict, ticks: int, start: int = 0) -> None:
    for tick in range(start, start + ticks):
        for name, leg in legs.items():
            leg.current = sources[name].frame(tick)
        for tap in list(taps.values()):
            tap.capture(legs)


def test_both_parties_land_in_their_own_channel_and_the_length_is_the_ticks(tmp_path):
    taps: dict = {}
    done: queue.Queue = queue.Queue()
    rec = RecordingWriter(taps, tmp_path / "rec", done.put)
    legs = {"sip-1": SimpleNamespace(current=None), "1-2": SimpleNamespace(current=None)}
    sources = {"sip-1": ToneSource(1000), "1-2": ToneSource(500)}
    rec.start(RID, "sip-1", "1-2")
    run(rec, taps, legs, sources, 3 * CHUNK_FRAMES + 7)  # 3.14 s
    assert rec.stop(RID) and not taps
    result = done.get(timeout=10)
    assert result.error is None and result.path == f"{RID}.ogg"
    path = tmp_path / "rec" / result.path
    assert path.stat().st_size == result.bytes > 0
    assert not (tmp_path / "rec" / f"{RID}.ogg.part").exists()
    assert result.seconds == pytest.approx((3 * CHUNK_FRAMES + 7) * FRAME_SAMPLES / 8000)
    left, right = read_channels(path)
    assert len(left) / 8000 == pytest.approx(result.seconds, abs=0.1)
    middle = slice(4000, 20000)
    assert tone_present(left[middle], 8000, 1000) and not tone_present(left[middle], 8000, 500)
    assert tone_present(right[middle], 8000, 500) and not tone_present(right[middle], 8000, 1000)
    rec.close()


def test_a_party_that_has_gone_is_silence_and_stop_leg_finishes_its_recordings(tmp_path):
    taps: dict = {}
    done: queue.Queue = queue.Queue()
    rec = RecordingWriter(taps, tmp_path, done.put)
    legs = {"sip-9": SimpleNamespace(current=None)}
    rec.start(RID, "sip-9", "gone")
    run(rec, taps, legs, {"sip-9": ToneSource(800)}, 60)
    assert rec.stop_leg("sip-9") == [RID] and rec.running() == []
    result = done.get(timeout=10)
    left, right = read_channels(tmp_path / result.path)
    rms = lambda x: float(np.sqrt(np.mean(x.astype(np.float64) ** 2)))  # noqa: E731
    # Joint-stereo Opus leaks a little of one channel into the other: well under -20 dB.
    assert tone_present(left[2000:8000], 8000, 800) and rms(right) < rms(left) / 10
    rec.close()


def test_bad_ids_and_twice_the_same_id_are_refused(tmp_path):
    rec = RecordingWriter({}, tmp_path, lambda r: None)
    with pytest.raises(MediaError, match="bad recording id"):
        rec.start("../etc/passwd", "a", "b")
    rec.start(RID, "a", "b")
    with pytest.raises(MediaError, match="running already"):
        rec.start(RID, "a", "b")
    assert rec.stop("f" * 32) is False
    rec.close()


def test_a_folder_that_cannot_be_made_is_a_clear_error(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    rec = RecordingWriter({}, blocker / "sub", lambda r: None)
    with pytest.raises(MediaError, match="recordings folder"):
        rec.start(RID, "a", "b")
