"""Live call analytics on synthetic legs: talk time, over-talk, silence stretches, levels, missing frames."""

from webrtc.analytics import HANGOVER_TICKS, STEP, Analytics
from webrtc.audio import SILENCE, FrameBuffer
from webrtc.tones import tone

SPEECH = tone(700.0, 160, amplitude=0.3)
WHISPER = tone(700.0, 160, amplitude=0.001)  # about -66 dBFS: below the speech threshold


class FakeLeg:
    def __init__(self) -> None:
        self.current = SILENCE
        self.inbound = FrameBuffer()


def run(pattern_a, pattern_b, ticks: int):
    legs = {"sip-1": FakeLeg(), "1-2": FakeLeg()}
    a = Analytics()
    a.add("sip-1", "1-2")
    for t in range(ticks):
        legs["sip-1"].current = SPEECH if pattern_a(t) else WHISPER
        legs["1-2"].current = SPEECH if pattern_b(t) else SILENCE
        a.tick(legs)
    return a, legs


def test_talk_overtalk_and_silence_follow_who_spoke_when() -> None:
    # Caller talks ticks 0-49, agent 25-74, then nobody until 150.
    a, legs = run(lambda t: t < 50, lambda t: 25 <= t < 75, 150)
    [f] = a.report(legs)
    h, one = HANGOVER_TICKS, STEP * 0.02 + 1e-9  # measured every STEP ticks: within one measurement
    assert abs(f["caller_talk"] - (50 + h) * 0.02) <= one, f
    assert abs(f["agent_talk"] - (50 + h) * 0.02) <= one, f
    assert abs(f["overtalk"] - (50 - 25 + h) * 0.02) <= one, f  # 25-49 both, plus the caller's hangover
    assert abs(f["silence"] - (150 - 75 - h) * 0.02) <= one and f["silence"] == f["longest_silence"], f
    assert f["seconds"] == 3.0
    assert -14.0 < f["caller_level_db"] < -13.0  # a 0.3 amplitude sine: -13.5 dBFS
    # The next window has no talking: no level.
    [g] = a.report(legs)
    assert "caller_level_db" not in g or g["caller_level_db"] is None


def test_a_leg_that_goes_away_ends_its_call_and_missing_frames_are_counted() -> None:
    a, legs = run(lambda t: True, lambda t: True, 10)
    buf = legs["1-2"].inbound
    for _ in range(3):
        buf.push(SPEECH)
    for _ in range(4):
        buf.pop()  # the fourth finds nothing: late
    [f] = a.report(legs)
    assert f["agent_missing_pct"] == 25.0 and f["caller_missing_pct"] == 0.0
    del legs["sip-1"]
    assert a.report(legs) == [] and not a.calls
