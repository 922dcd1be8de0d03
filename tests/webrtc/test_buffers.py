"""The queues between a leg's network side and the engine's clock (webrtc/audio.py FrameBuffer,
webrtc/mixer.py LegPort.pull): they give frames in order, grow by the jitter that made a read late,
and give back a frame they did not need for a whole window, so a burst adds no delay for good."""

from __future__ import annotations

import numpy as np

from webrtc.audio import FRAME_SAMPLES, SILENCE, SLACK_WINDOW, FrameBuffer, Slack
from webrtc.mixer import LegPort, Mixer

WINDOW = 50


def frame(n: int) -> np.ndarray:
    return np.full(FRAME_SAMPLES, n, dtype=np.int16)


def test_slack_says_so_once_per_window_with_a_spare_frame() -> None:
    s = Slack(4)
    assert [s.see(d) for d in (3, 2, 2, 2)] == [False, False, False, True]
    assert [s.see(d) for d in (2, 1, 3, 3)] == [False, False, False, False]  # one read had no spare
    assert [s.see(d) for d in (5, 5, 5, 5)] == [False, False, False, True]


def test_a_burst_is_given_back_down_to_one_frame_at_the_tick() -> None:
    buf = FrameBuffer(capacity=5, window=WINDOW)
    n = 0
    for _ in range(3):  # a burst: three frames early
        buf.push(frame(n))
        n += 1
    popped = []
    depths = []
    for _ in range(5 * WINDOW):
        buf.push(frame(n))
        n += 1
        depths.append(len(buf))
        popped.append(int(buf.pop()[0]))
    assert buf.late == 0 and buf.trimmed == 3
    assert depths[-1] == 1  # one frame at the tick: no delay beyond the clocks' phase
    assert all(b > a for a, b in zip(popped, popped[1:]))  # in order; trimmed frames are skipped


def test_jitter_keeps_the_depth_it_needs() -> None:
    buf = FrameBuffer(capacity=5, window=WINDOW)
    n = 0
    for tick in range(6 * WINDOW):
        if tick % 2 == 0:  # two frames every other tick
            for _ in range(2):
                buf.push(frame(n))
                n += 1
        buf.pop()
    assert buf.late == 0 and buf.trimmed == 0


def test_the_first_read_waits_for_the_prefetch_and_is_not_late() -> None:
    buf = FrameBuffer(capacity=5, window=WINDOW, prefetch=2)
    assert buf.pop() is SILENCE and buf.late == 0  # nothing yet
    buf.push(frame(0))
    assert buf.pop() is SILENCE and buf.late == 0  # one of two
    buf.push(frame(1))
    assert int(buf.pop()[0]) == 0 and len(buf) == 1


def test_a_late_frame_grows_the_buffer_until_a_window_shows_it_spare() -> None:
    buf = FrameBuffer(capacity=5, window=WINDOW, prefetch=1)
    n = 0
    for _ in range(WINDOW):
        buf.push(frame(n))
        n += 1
        buf.pop()
    assert buf.pop() is SILENCE and buf.late == 1  # the frame for this tick is late...
    buf.push(frame(n))  # ...and comes with the next: two queued from now on
    n += 1
    depths = []
    for _ in range(3 * WINDOW):
        buf.push(frame(n))
        n += 1
        depths.append(len(buf))
        buf.pop()
    assert depths[0] == 2 and depths[-1] == 1 and buf.trimmed == 1 and buf.late == 1


def test_full_buffer_drops_the_oldest() -> None:
    buf = FrameBuffer(capacity=3)
    for n in range(5):
        buf.push(frame(n))
    assert buf.dropped == 2 and [int(buf.pop()[0]) for _ in range(3)] == [2, 3, 4]


async def test_a_pulled_leg_gives_back_what_a_stall_piled_up() -> None:
    mixer = Mixer()
    leg = mixer.add("sip")
    port = LegPort(leg)
    mixer.set_inputs("sip", [])
    try:
        for tick in range(3):  # the engine's clock caught up after a stall: three frames waiting
            leg.deliver(tick, frame(tick))
        depths = []
        for tick in range(3, 3 + 4 * SLACK_WINDOW):  # a LegPort's Slack has the default window
            leg.deliver(tick, frame(tick))
            depths.append(len(leg.out))
            port.pull()
        assert depths[0] == 3 and depths[-1] == 1 and leg.out_dropped == 2
    finally:
        await mixer.stop()
