"""Tone generation and detection: the right tone passes; silence, noise and a wrong tone fail."""

from __future__ import annotations

import wave

import numpy as np
import pytest

from webrtc.tones import dominant_frequency, tone, tone_present, tones_present, write_tone_wav

RATE = 8000


@pytest.mark.parametrize("freq", [440.0, 1000.0, 1333.3, 3000.0])
def test_dominant_frequency_is_accurate(freq: float) -> None:
    assert abs(dominant_frequency(tone(freq, 2000, RATE), RATE) - freq) < 1.0


def test_right_tone_passes_even_with_some_noise() -> None:
    rng = np.random.default_rng(1)
    x = tone(700, 2000, RATE, 0.3).astype(np.float64) + rng.normal(0, 300, 2000)
    assert tone_present(x, RATE, 700)


def test_silence_fails() -> None:
    assert not tone_present(np.zeros(2000, dtype=np.int16), RATE, 700)


def test_white_noise_fails() -> None:
    rng = np.random.default_rng(2)
    noise = rng.normal(0, 8000, 2000).clip(-32768, 32767).astype(np.int16)
    assert not tone_present(noise, RATE, 700)
    assert not tone_present(noise, RATE, dominant_frequency(noise, RATE))


def test_wrong_tone_fails() -> None:
    assert not tone_present(tone(1000, 2000, RATE), RATE, 700)
    assert not tone_present(tone(740, 2000, RATE), RATE, 700)


def test_two_equal_tones_fail_for_either() -> None:
    mix = tone(700, 2000, RATE, 0.2) + tone(1300, 2000, RATE, 0.2)
    assert not tone_present(mix, RATE, 700, min_snr_db=10)
    assert not tone_present(mix, RATE, 1300, min_snr_db=10)


def test_write_tone_wav(tmp_path) -> None:
    path = tmp_path / "t.wav"
    write_tone_wav(path, 500, 0.5, rate=16000, channels=2)
    with wave.open(str(path)) as w:
        assert (w.getnchannels(), w.getsampwidth(), w.getframerate(), w.getnframes()) == (2, 2, 16000, 8000)
        data = np.frombuffer(w.readframes(8000), dtype="<i2")[::2]
    assert tone_present(data, 16000, 500)


def test_a_mix_of_two_tones_is_told_apart_from_one_tone_or_a_third() -> None:
    a, b, c = (tone(f, 4000).astype(np.int32) for f in (500.0, 800.0, 1000.0))
    both = ((a + b) // 2).astype(np.int16)
    assert tones_present(both, 8000, [500.0, 800.0])
    assert not tones_present(a.astype(np.int16), 8000, [500.0, 800.0]), "one tone is not a mix of two"
    assert not tones_present(((a + b + c) // 3).astype(np.int16), 8000, [500.0, 800.0]), "a third tone is heard"
    assert not tones_present(np.zeros(4000, dtype=np.int16), 8000, [500.0, 800.0])
