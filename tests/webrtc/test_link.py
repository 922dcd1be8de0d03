"""Audio links between two media engines over UDP on loopback (webrtc/link.py).

Each engine has its own 20 ms clock, as two worker processes would. A tone mixed into one end of a
link is heard, by frequency, at the other end; forged, reflected, replayed and malformed datagrams
are refused and counted while the audio goes on; a link whose far end goes silent ends itself.
"""

import asyncio
import collections
import socket
import time
from collections.abc import AsyncIterator

import numpy as np
import pytest

from webrtc.audio import FRAME_SAMPLES, MediaError, ToneSource
from webrtc.engine import MediaEngine
from webrtc.link import LinkEndpoint, encode
from webrtc.mixer import Input
from webrtc.tones import tone, tone_present

RATE = 8000
LINK_ID, KEY = "0123456789abcdef", "00112233445566778899aabbccddeeff"


async def hears(engine: MediaEngine, leg: str, freq: float, timeout: float = 5.0) -> bool:
    """A probe leg hearing `leg`: whether `freq` dominates a 0.3 s window within `timeout`."""
    port = engine.add_leg(f"probe-{leg}-{freq}")
    try:
        engine.set_inputs(port.id, [Input(leg=leg)])
        window: collections.deque[np.ndarray] = collections.deque(maxlen=15)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            window.append(np.array(await port.next_frame()))
            if len(window) == window.maxlen and tone_present(np.concatenate(list(window)), RATE, freq):
                return True
        return False
    finally:
        engine.remove_leg(port.id)


@pytest.fixture
async def pair() -> AsyncIterator[tuple[MediaEngine, LinkEndpoint, MediaEngine, LinkEndpoint, list[str]]]:
    lost: list[str] = []
    ea, eb = MediaEngine(), MediaEngine()
    la, lb = LinkEndpoint(ea, lost.append, timeout=0.5), LinkEndpoint(eb, lost.append, timeout=0.5)
    await la.start("127.0.0.1")
    await lb.start("127.0.0.1")
    yield ea, la, eb, lb, lost
    la.stop()
    lb.stop()
    await ea.close_all()
    await eb.close_all()


async def test_a_tone_crosses_the_link_both_ways(pair) -> None:
    ea, la, eb, lb, _ = pair
    la.open("agent", LINK_ID, KEY, "a", lb.address)
    lb.open("caller", LINK_ID, KEY, "b", la.address)
    # A's end plays 1000 Hz to B, B's end 500 Hz to A.
    ea.set_inputs("agent", [Input(source=ToneSource(1000.0))])
    eb.set_inputs("caller", [Input(source=ToneSource(500.0))])
    assert await hears(eb, "caller", 1000.0)
    assert await hears(ea, "agent", 500.0)
    assert not await hears(eb, "caller", 500.0, timeout=0.5)
    assert la.refused == {} and lb.refused == {}
    # Said again (a replayed command): nothing changes; another leg under the same id is refused.
    la.open("agent", LINK_ID, KEY, "a", lb.address)
    with pytest.raises(MediaError):
        la.open("other", LINK_ID, KEY, "a", lb.address)
    # Closed at both ends: the legs are gone.
    assert la.close("agent") and lb.close("caller")
    assert "agent" not in ea.mixer.legs and "caller" not in eb.mixer.legs
    assert not la.close("agent")


async def test_bad_commands_are_refused(pair) -> None:
    _, la, _, lb, _ = pair
    for lid, key, side, peer in (("zz", KEY, "a", lb.address), (LINK_ID, "00", "a", lb.address),
                                 (LINK_ID, KEY, "c", lb.address), (LINK_ID, KEY, "a", "no-port"),
                                 (LINK_ID, KEY, "a", "127.0.0.1:0")):
        with pytest.raises(MediaError):
            la.open("agent", lid, key, side, peer)
    assert la.links == {}


async def test_forged_reflected_replayed_and_malformed_datagrams_are_dropped(pair) -> None:
    ea, la, eb, lb, _ = pair
    la.open("agent", LINK_ID, KEY, "a", lb.address)
    lb.open("caller", LINK_ID, KEY, "b", la.address)
    ea.set_inputs("agent", [Input(source=ToneSource(1000.0))])
    assert await hears(eb, "caller", 1000.0)
    # A stranger sends B a loud 500 Hz tone in every shape it can think of.
    host, port = lb.address.rsplit(":", 1)
    loud = tone(500.0, FRAME_SAMPLES, RATE, 0.9)
    lid, key = bytes.fromhex(LINK_ID), bytes.fromhex(KEY)
    forged = [
        encode(b"a", lid, bytes(16), 10**9, loud),                 # wrong key
        encode(b"b", lid, key, 10**9, loud),                       # B's own side (reflected)
        encode(b"a", lid, key, 0, loud),                           # an old sequence (a replay)
        encode(b"a", bytes(8), key, 10**9, loud),                  # unknown link
        b"UL\x01garbage", b"", b"x" * 2000,                        # not ours
    ]
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        for _ in range(50):
            for d in forged:
                s.sendto(d, (host, int(port)))
            await asyncio.sleep(0.01)  # spread over the clock's ticks, as a flood would be
    assert await hears(eb, "caller", 1000.0), "the link stopped carrying the real audio"
    assert not await hears(eb, "caller", 500.0, timeout=1.0), "a forged frame was heard"
    assert lb.refused == {"bad tag": 50, "reflected": 50, "old sequence": 50, "unknown link": 50, "not ours": 150}


async def test_a_link_whose_far_end_is_gone_ends_itself(pair) -> None:
    ea, la, eb, lb, lost = pair
    la.open("agent", LINK_ID, KEY, "a", lb.address)
    lb.open("caller", LINK_ID, KEY, "b", la.address)
    ea.set_inputs("agent", [Input(source=ToneSource(1000.0))])
    assert await hears(eb, "caller", 1000.0)
    la.close("agent")  # A's end goes without telling B (the worker died)
    deadline = time.monotonic() + 5
    while "caller" in eb.mixer.legs and time.monotonic() < deadline:
        await asyncio.sleep(0.05)  # polling a condition with a deadline
    assert "caller" not in eb.mixer.legs and lost == ["caller"]


async def test_a_link_re_pointed_to_a_third_engine_keeps_its_leg(pair) -> None:
    ea, la, eb, lb, _ = pair
    ec = MediaEngine()
    lc = LinkEndpoint(ec, timeout=0.5)
    await lc.start("127.0.0.1")
    try:
        la.open("agent", LINK_ID, KEY, "a", lb.address)
        lb.open("caller", LINK_ID, KEY, "b", la.address)
        ea.set_inputs("agent", [Input(source=ToneSource(1000.0))])
        eb.set_inputs("caller", [Input(source=ToneSource(500.0))])
        assert await hears(ea, "agent", 500.0)
        # The far party moves to C: A's leg is re-pointed under a new id and key, B's end goes.
        other_id, other_key = "fedcba9876543210", "ff" * 16
        la.open("agent", other_id, other_key, "a", lc.address)
        lb.close("caller")
        lc.open("caller", other_id, other_key, "b", la.address)
        ec.set_inputs("caller", [Input(source=ToneSource(700.0))])
        assert la.legs() == ["agent"] and len(la.links) == 1
        # The leg kept its routing (the tone it plays) and now hears C.
        assert await hears(ec, "caller", 1000.0)
        assert await hears(ea, "agent", 700.0)
        assert not await hears(ea, "agent", 500.0, timeout=0.5)
        # Datagrams still in flight under the old id are refused, not mixed.
        assert set(la.refused) <= {"unknown link"}
    finally:
        lc.stop()
        await ec.close_all()
