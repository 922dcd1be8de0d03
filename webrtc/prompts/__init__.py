"""Prompts callers hear (menus, closed, queue announcements): `<name>.wav` files in this folder,
8 kHz mono 16-bit, made by `scripts/make_prompts.sh` (espeak-ng + sox).

A prompt is asked for by name; names are plain words (`[a-z0-9_-]`), never paths.
"""

from __future__ import annotations

import functools
import re
import wave
from pathlib import Path

FOLDER = Path(__file__).resolve().parent
_NAME = re.compile(r"[a-z0-9][a-z0-9_-]{0,63}")


class UnknownPrompt(ValueError):
    pass


def prompt_path(name: str) -> Path:
    """The file of the prompt `name`; UnknownPrompt for a name that is not a plain word or has no file."""
    if not isinstance(name, str) or not _NAME.fullmatch(name):
        raise UnknownPrompt(f"bad prompt name {name!r}")
    path = FOLDER / f"{name}.wav"
    if not path.is_file():
        raise UnknownPrompt(f"no prompt {name!r}")
    return path


@functools.lru_cache(maxsize=256)
def prompt_seconds(name: str) -> float:
    """How long the prompt plays."""
    with wave.open(str(prompt_path(name))) as w:
        return w.getnframes() / w.getframerate()


# Silence between prompts played in a row ("You are caller number" … "three").
GAP_SECONDS = 0.12


def sequence_seconds(names: list[str]) -> float:
    """How long prompts played in a row last."""
    return sum(prompt_seconds(n) for n in names) + GAP_SECONDS * max(0, len(names) - 1)


@functools.lru_cache(maxsize=256)
def _samples(name: str):  # type: ignore[no-untyped-def]
    from webrtc.audio import load_audio

    return load_audio(str(prompt_path(name)))


def prompt_source(names: list[str]):  # type: ignore[no-untyped-def]
    """A one-shot source playing the prompts in a row (8 kHz frames for the mixer)."""
    import numpy as np

    from webrtc.audio import RATE, SampleSource

    gap = np.zeros(int(GAP_SECONDS * RATE), dtype=np.int16)
    parts = []
    for i, name in enumerate(names):
        if i:
            parts.append(gap)
        parts.append(_samples(name))
    return SampleSource(np.concatenate(parts) if parts else gap, loop=False)
