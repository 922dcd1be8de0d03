"""Headless Debian Chromium driven by Playwright (never a downloaded browser)."""

from __future__ import annotations

import array
import math
import shutil
import sys
import wave
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, sync_playwright

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--use-fake-ui-for-media-stream",
    "--use-fake-device-for-media-stream",
    "--autoplay-policy=no-user-gesture-required",
]


# Package scope: Playwright's sync API keeps an event loop running in the main
# thread while it is open, which the asyncio tests of other packages cannot share.
@pytest.fixture(scope="package")
def browser() -> Iterator[Browser]:
    assert shutil.which(CHROMIUM), "Debian's chromium is required for the browser tests (apt-get install chromium)"
    with sync_playwright() as pw:
        b = pw.chromium.launch(executable_path=CHROMIUM, args=ARGS, headless=True)
        yield b
        b.close()


# ---------------------------------------------------------------- the softphone: tones as microphones


def write_tone_wav(path: Path, freq: float, seconds: float = 10.0, rate: int = 48000, amplitude: float = 0.3) -> Path:
    """A 16-bit mono WAV holding a steady tone (Chromium's fake microphone loops it)."""
    step = 2 * math.pi * freq / rate
    samples = array.array("h", (int(amplitude * 32767 * math.sin(step * i)) for i in range(int(seconds * rate))))
    if sys.byteorder != "little":
        samples.byteswap()
    frames = samples.tobytes()
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(frames)
    return path


@pytest.fixture(scope="package")
def tone_wav(tmp_path_factory: pytest.TempPathFactory) -> Callable[[float], Path]:
    """`tone_wav(500)`: the path of a WAV holding a 500 Hz tone (written once)."""
    folder = tmp_path_factory.mktemp("tones")
    made: dict[float, Path] = {}

    def make(freq: float) -> Path:
        if freq not in made:
            made[freq] = write_tone_wav(folder / f"tone-{freq:g}.wav", freq)
        return made[freq]

    return make


@pytest.fixture
def launch_browser(browser: Browser) -> Iterator[Callable[..., Browser]]:
    """A Chromium of its own (the fake microphone is per browser process): `launch_browser(mic=wav)`
    plays the WAV as the microphone; `launch_browser(mic=None, grant=False)` has no fake consent,
    so a page's microphone request is refused unless its context grants it. Closed after the test."""
    launched: list[Browser] = []

    def launch(mic: Path | None = None, grant: bool = True) -> Browser:
        args = [a for a in ARGS if grant or a != "--use-fake-ui-for-media-stream"]
        if mic is not None:
            args.append(f"--use-file-for-fake-audio-capture={mic}")
        # Same Playwright driver as the package's browser: the sync API allows one per thread.
        b = browser.browser_type.launch(executable_path=CHROMIUM, args=args, headless=True)
        launched.append(b)
        return b

    yield launch
    for b in launched:
        b.close()
