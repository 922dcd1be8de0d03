"""Tones: generate them, and tell whether a stretch of audio carries one.

Pure numpy (plus stdlib `wave` for fixtures). Used by tests on every leg
(aiortc peers, Chromium's fake microphone, SIP peers) and by the engine's
`ToneSource` for ringback and beeps.
"""

from __future__ import annotations

import struct
import wave
from collections.abc import Iterable
from os import PathLike

import numpy as np

FULL_SCALE = 32767


def tone(
    freq_hz: float,
    n_samples: int,
    rate: int = 8000,
    amplitude: float = 0.3,
    phase: float = 0.0,
) -> np.ndarray:
    """`n_samples` of a sine at `freq_hz` as int16; `amplitude` is a fraction of full scale."""
    assert 0.0 <= amplitude <= 1.0, f"amplitude {amplitude} is not a fraction of full scale"
    t = np.arange(n_samples, dtype=np.float64)
    wave_ = np.sin(2.0 * np.pi * freq_hz * t / rate + phase)
    return np.round(wave_ * amplitude * FULL_SCALE).astype(np.int16)


def _power_spectrum(samples: np.ndarray) -> np.ndarray:
    x = np.asarray(samples, dtype=np.float64)
    x = x - x.mean()
    spectrum = np.fft.rfft(x * np.hanning(len(x)))
    return spectrum.real**2 + spectrum.imag**2


def _peak(power: np.ndarray) -> tuple[int, float]:
    """Index of the strongest bin (DC excluded) and its parabolic-interpolated offset."""
    k = int(np.argmax(power[1:])) + 1
    if 1 <= k < len(power) - 1:
        # Parabolic interpolation on log power (Smith, "Spectral Audio Signal
        # Processing", quadratic interpolation of spectral peaks).
        a, b, c = np.log(power[k - 1 : k + 2] + 1e-12)
        denom = a - 2 * b + c
        offset = 0.5 * (a - c) / denom if denom != 0 else 0.0
        return k, float(np.clip(offset, -0.5, 0.5))
    return k, 0.0


def dominant_frequency(samples: np.ndarray, rate: int) -> float:
    """Frequency (Hz) of the strongest spectral peak; 0.0 for silence or too few samples."""
    if len(samples) < 16:
        return 0.0
    power = _power_spectrum(samples)
    if not power[1:].any():
        return 0.0
    k, offset = _peak(power)
    return (k + offset) * rate / len(samples)


def tone_snr_db(samples: np.ndarray, rate: int, freq: float, tolerance_hz: float = 15.0) -> float:
    """Power within `tolerance_hz` of `freq` against all the other power, in dB (-inf if none)."""
    if len(samples) < 16:
        return float("-inf")
    power = _power_spectrum(samples)
    power[0] = 0.0
    bin_hz = rate / len(samples)
    # A Hann window spreads a pure tone over about 2 bins either side.
    half = max(2, int(np.ceil(tolerance_hz / bin_hz)) + 2)
    centre = int(round(freq / bin_hz))
    lo, hi = max(1, centre - half), min(len(power), centre + half + 1)
    signal = float(power[lo:hi].sum())
    rest = float(power.sum()) - signal
    if signal <= 0.0:
        return float("-inf")
    if rest <= 0.0:
        return float("inf")
    return 10.0 * np.log10(signal / rest)


def tone_present(
    samples: np.ndarray,
    rate: int,
    freq: float,
    tolerance_hz: float = 15.0,
    min_snr_db: float = 10.0,
    min_level_dbfs: float = -50.0,
) -> bool:
    """Whether `samples` carry a tone at `freq` (± `tolerance_hz`) that stands out.

    Three checks, so that silence, white noise and a wrong tone all fail: the
    signal is louder than `min_level_dbfs`; the dominant peak is within the
    tolerance of `freq`; the power around `freq` exceeds the rest of the
    spectrum by `min_snr_db`.
    """
    x = np.asarray(samples, dtype=np.float64)
    if len(x) < 16:
        return False
    rms = float(np.sqrt(np.mean((x - x.mean()) ** 2)))
    if rms <= 0.0 or 20.0 * np.log10(rms / FULL_SCALE) < min_level_dbfs:
        return False
    if abs(dominant_frequency(x, rate) - freq) > tolerance_hz:
        return False
    return tone_snr_db(x, rate, freq, tolerance_hz) >= min_snr_db


def tones_present(
    samples: np.ndarray,
    rate: int,
    freqs: list[float] | tuple[float, ...],
    tolerance_hz: float = 15.0,
    min_snr_db: float = 6.0,
    min_level_dbfs: float = -50.0,
) -> bool:
    """Whether `samples` carry every tone of `freqs` at once (a mix: a conference).

    Each tone's power must exceed the power outside all of the tones' bands by
    `min_snr_db`, and the signal must be louder than `min_level_dbfs`; a mix
    missing one tone, or noise, fails.
    """
    x = np.asarray(samples, dtype=np.float64)
    if len(x) < 16:
        return False
    rms = float(np.sqrt(np.mean((x - x.mean()) ** 2)))
    if rms <= 0.0 or 20.0 * np.log10(rms / FULL_SCALE) < min_level_dbfs:
        return False
    power = _power_spectrum(x)
    power[0] = 0.0
    bin_hz = rate / len(x)
    half = max(2, int(np.ceil(tolerance_hz / bin_hz)) + 2)
    bands = []
    for f in freqs:
        centre = int(round(f / bin_hz))
        bands.append((max(1, centre - half), min(len(power), centre + half + 1)))
    inside = np.zeros(len(power), dtype=bool)
    for lo, hi in bands:
        inside[lo:hi] = True
    rest = float(power[~inside].sum())
    for lo, hi in bands:
        signal = float(power[lo:hi].sum())
        if signal <= 0.0:
            return False
        if rest > 0.0 and 10.0 * np.log10(signal / rest) < min_snr_db:
            return False
    return True


def write_tone_wav(
    path: str | PathLike[str],
    freq: float,
    seconds: float,
    rate: int = 8000,
    amplitude: float = 0.3,
    channels: int = 1,
) -> None:
    """Write a 16-bit PCM WAV holding a tone (fixtures; Chromium's fake microphone)."""
    samples = tone(freq, int(round(seconds * rate)), rate, amplitude)
    if channels > 1:
        samples = np.repeat(samples, channels)
    with wave.open(str(path), "wb") as w:
        w.setnchannels(channels)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(samples.astype("<i2").tobytes())


def write_pcmu_pcap(path: str | PathLike[str], frames: Iterable[np.ndarray]) -> None:
    """Write a pcap of PCMU RTP, one 20 ms packet per frame (160 int16 samples), loopback to loopback:
    what sipp's `play_pcap_audio` sends (test callers, the SIP benchmarks)."""
    from webrtc.audio import G711Encoder

    enc = G711Encoder("audio/PCMU")
    out = [struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, 1)]
    for j, pcm in enumerate(frames):
        rtp = struct.pack("!BBHII", 0x80, 0, j & 0xFFFF, (j * 160) & 0xFFFFFFFF, 0x5EED0001) + enc.encode(pcm)
        udp = struct.pack("!HHHH", 6000, 6000, 8 + len(rtp), 0) + rtp
        ip = bytearray(struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(udp), j & 0xFFFF, 0, 64, 17, 0,
                                   bytes([127, 0, 0, 1]), bytes([127, 0, 0, 1])))
        s = sum(struct.unpack("!10H", bytes(ip)))
        s = (s & 0xFFFF) + (s >> 16)
        s = (s & 0xFFFF) + (s >> 16)
        ip[10:12] = struct.pack("!H", ~s & 0xFFFF)
        frame = b"\x02\x00\x00\x00\x00\x02" + b"\x02\x00\x00\x00\x00\x01" + b"\x08\x00" + bytes(ip) + udp
        t = j * 0.02
        out.append(struct.pack("<IIII", int(t), int(round((t % 1) * 1e6)) % 1_000_000, len(frame), len(frame)))
        out.append(frame)
    with open(path, "wb") as f:
        f.write(b"".join(out))
