"""MediaEngine against real aiortc peers playing the browsers' part.

Each `Phone` is an RTCPeerConnection in this process that sends a tone and
records what it receives; assertions are on the frequencies heard. Waits
are bounded polls on a condition, never bare sleeps.
"""

from __future__ import annotations

import asyncio
import collections
import fractions
import time
from collections.abc import AsyncIterator, Callable

import av
import numpy as np
import pytest
from aiortc import MediaStreamTrack, RTCPeerConnection, RTCRtpSender, RTCSessionDescription, sdp

from webrtc.audio import FRAME_SAMPLES, RATE, FrameSplitter, MediaError, ToneSource
from webrtc.engine import Input, MediaEngine
from webrtc.ice import adopt_remote_credentials, restart_local_credentials, rtc_configuration
from webrtc.tones import tone_present, write_tone_wav

pytestmark = pytest.mark.timeout(30)

A_HZ, B_HZ, PLAY_HZ, MUSIC_HZ = 700.0, 1300.0, 1000.0, 500.0
WINDOW = 2400  # 0.3 s of received audio is judged at a time


async def until(condition: Callable[[], bool], timeout: float = 5.0, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        await asyncio.sleep(0.02)


class ToneTrack(MediaStreamTrack):
    """A microphone that plays a tone, paced like aiortc's AudioStreamTrack."""

    kind = "audio"

    def __init__(self, freq: float) -> None:
        super().__init__()
        self._source = ToneSource(freq)
        self._n = 0
        self._start = 0.0

    async def recv(self) -> av.AudioFrame:
        if self._n == 0:
            self._start = time.time()
        else:
            await asyncio.sleep(max(0.0, self._start + self._n * 0.02 - time.time()))
        samples = self._source.frame(self._n)
        frame = av.AudioFrame.from_ndarray(samples.reshape(1, -1), format="s16", layout="mono")
        frame.sample_rate, frame.pts, frame.time_base = RATE, self._n * FRAME_SAMPLES, fractions.Fraction(1, RATE)
        self._n += 1
        return frame


class Phone:
    """A softphone stand-in: sends `freq`, keeps the last received samples."""

    def __init__(self, freq: float, codecs: tuple[str, ...] | None = None) -> None:
        self.pc = RTCPeerConnection(rtc_configuration(None))
        transceiver = self.pc.addTransceiver(ToneTrack(freq), direction="sendrecv")
        if codecs:
            caps = RTCRtpSender.getCapabilities("audio").codecs
            transceiver.setCodecPreferences([c for n in codecs for c in caps if c.mimeType.lower() == n.lower()])
        self.samples: collections.deque[np.ndarray] = collections.deque(maxlen=WINDOW // FRAME_SAMPLES)
        self.frames = 0
        self._task: asyncio.Task[None] | None = None
        self.pc.on("track", self._on_track)

    def _on_track(self, track: MediaStreamTrack) -> None:
        async def record() -> None:
            splitter = FrameSplitter()
            while True:
                try:
                    frame = await track.recv()
                except Exception:
                    return
                for s in splitter.split(frame):
                    self.samples.append(s)
                    self.frames += 1

        self._task = asyncio.ensure_future(record())

    async def offer(self) -> str:
        await self.pc.setLocalDescription(await self.pc.createOffer())
        return self.pc.localDescription.sdp

    async def accept(self, answer_sdp: str) -> None:
        await self.pc.setRemoteDescription(RTCSessionDescription(sdp=answer_sdp, type="answer"))

    async def call(self, engine: MediaEngine, session_id: str) -> str:
        answer = await engine.answer(session_id, await self.offer())
        await self.accept(answer)
        await until(lambda: self.frames > 5, what=f"{session_id}: first frames")
        return answer

    def recent(self) -> np.ndarray:
        return np.concatenate(list(self.samples)) if self.samples else np.zeros(0, np.int16)

    def hears(self, freq: float) -> bool:
        x = self.recent()
        return len(x) >= WINDOW and tone_present(x, RATE, freq)

    def hears_silence(self) -> bool:
        x = self.recent()
        return len(x) >= WINDOW and int(np.abs(x.astype(np.int32)).max()) < 200

    async def wait_fresh(self, frames: int = WINDOW // FRAME_SAMPLES) -> None:
        """Wait until the whole judging window was received after this call."""
        start = self.frames
        await until(lambda: self.frames >= start + frames, what="fresh frames")

    async def close(self) -> None:
        await self.pc.close()
        if self._task is not None:
            self._task.cancel()


@pytest.fixture
async def engine() -> AsyncIterator[MediaEngine]:
    e = MediaEngine()
    yield e
    await e.close_all()


@pytest.fixture
async def phones() -> AsyncIterator[Callable[..., Phone]]:
    made: list[Phone] = []

    def make(freq: float, codecs: tuple[str, ...] | None = None) -> Phone:
        p = Phone(freq, codecs)
        made.append(p)
        return p

    yield make
    for p in made:
        await p.close()


async def probe_hears(engine: MediaEngine, leg: str, freq: float, timeout: float = 5.0) -> bool:
    """A test leg that hears `leg`'s inbound audio, read at the engine's clock."""
    port = engine.add_leg(f"probe-{leg}")
    try:
        engine.set_inputs(port.id, [Input(leg=leg)])
        window: collections.deque[np.ndarray] = collections.deque(maxlen=WINDOW // FRAME_SAMPLES)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            window.append(await port.next_frame())
            if len(window) == window.maxlen and tone_present(np.concatenate(list(window)), RATE, freq):
                return True
        return False
    finally:
        engine.remove_leg(port.id)


async def test_tone_played_to_a_phone_is_heard(engine: MediaEngine, phones) -> None:
    a = phones(A_HZ)
    await a.call(engine, "a")
    engine.play("a", ToneSource(PLAY_HZ))
    await until(lambda: a.hears(PLAY_HZ), what="the played tone")
    s = engine.stats("a")
    assert s.sent > 0 and s.ice_state == "completed" and s.connection_state == "connected"


async def test_phone_tone_reaches_the_engine(engine: MediaEngine, phones) -> None:
    a = phones(A_HZ)
    await a.call(engine, "a")
    assert await probe_hears(engine, "a", A_HZ)
    assert not await probe_hears(engine, "a", B_HZ, timeout=0.5)
    assert engine.stats("a").received > 0


async def test_connected_phones_hear_each_other(engine: MediaEngine, phones) -> None:
    a, b = phones(A_HZ), phones(B_HZ)
    await a.call(engine, "a")
    await b.call(engine, "b")
    engine.connect("a", "b")
    await until(lambda: a.hears(B_HZ) and b.hears(A_HZ), what="each phone hearing the other")
    engine.disconnect("a")
    await until(lambda: a.hears_silence() and b.hears_silence(), what="silence after disconnect")


async def test_mute_silences_a_towards_b(engine: MediaEngine, phones) -> None:
    a, b = phones(A_HZ), phones(B_HZ)
    await a.call(engine, "a")
    await b.call(engine, "b")
    engine.connect("a", "b")
    await until(lambda: b.hears(A_HZ), what="b hearing a")
    engine.mute("a", True)
    await until(lambda: b.hears_silence(), what="b hearing silence while a is muted")
    assert a.hears(B_HZ)  # mute is one way
    engine.mute("a", False)
    await until(lambda: b.hears(A_HZ), what="b hearing a after unmute")


async def test_hold_plays_music_to_the_other_party(engine: MediaEngine, phones, tmp_path) -> None:
    music = tmp_path / "music.wav"
    write_tone_wav(music, MUSIC_HZ, 1.0, rate=16000, channels=2)
    a, b = phones(A_HZ), phones(B_HZ)
    await a.call(engine, "a")
    await b.call(engine, "b")
    engine.connect("a", "b")
    await until(lambda: b.hears(A_HZ) and a.hears(B_HZ), what="the call")
    engine.hold("a", music)
    await until(lambda: b.hears(MUSIC_HZ) and a.hears_silence(), what="music for b, silence for a")
    await b.wait_fresh()
    assert b.hears(MUSIC_HZ) and not b.hears(A_HZ)
    engine.unhold("a")
    await until(lambda: b.hears(A_HZ) and a.hears(B_HZ), what="the call after unhold")


async def consent_check(pc: RTCPeerConnection) -> None:
    """One RFC 7675 consent check over the selected pair, signed with the current credentials."""
    connection = pc.getTransceivers()[0].receiver.transport.transport._connection
    for pair in connection._nominated.values():
        request = connection.build_request(pair, nominate=False)
        await pair.protocol.request(
            request, pair.remote_addr, integrity_key=connection.remote_password.encode(), retransmissions=2
        )


async def test_renegotiation_and_ice_restart_keep_the_session(engine: MediaEngine, phones) -> None:
    a = phones(A_HZ)
    first = await a.call(engine, "a")
    engine.play("a", ToneSource(PLAY_HZ))
    await until(lambda: a.hears(PLAY_HZ), what="tone before")
    before = engine.stats("a")

    # Plain renegotiation: same credentials.
    await a.accept(await engine.answer("a", await a.offer()))

    # ICE restart, as a browser does it: new local credentials in the offer.
    restart_local_credentials(a.pc)
    offer = await a.offer()
    answer = await engine.answer("a", offer)
    adopt_remote_credentials(a.pc, sdp.SessionDescription.parse(answer))
    await a.accept(answer)

    def ufrag(text: str) -> str:
        return sdp.SessionDescription.parse(text).media[0].ice.usernameFragment

    assert ufrag(answer) != ufrag(first)
    # Both ends now check and answer with the new credentials (a stale side would reply 401).
    await consent_check(a.pc)
    await consent_check(engine._sessions["a"].pc)
    assert engine.sessions() == ["a"]
    await a.wait_fresh()
    await until(lambda: a.hears(PLAY_HZ), what="tone after the restart")
    await until(lambda: engine.stats("a").received > before.received + 25, what="inbound counters continuing")
    after = engine.stats("a")
    assert after.sent > before.sent and after.codec == before.codec
    assert await probe_hears(engine, "a", A_HZ)


async def test_malformed_sdp_is_rejected_and_the_session_survives(engine: MediaEngine, phones) -> None:
    a = phones(A_HZ)
    good = await a.call(engine, "a")
    engine.play("a", ToneSource(PLAY_HZ))
    await until(lambda: a.hears(PLAY_HZ), what="tone before")

    bad_offers = {
        "": "empty",
        "hello": "v=0",
        good.replace("a=ice-ufrag", "a=x-ufrag"): "ice-ufrag",
        good.replace("m=audio", "m=video"): "'video'",
        "\r\n".join(line for line in good.splitlines() if not line.startswith("a=rtpmap")): "offers no",
    }
    for offer, words in bad_offers.items():
        for sid in ("a", "new"):
            with pytest.raises(MediaError, match=words):
                await engine.answer(sid, offer)
    assert engine.sessions() == ["a"]
    with pytest.raises(ValueError):  # MediaError is a ValueError
        await engine.answer("a", "v=0\r\nm=audio")
    await a.wait_fresh()
    assert a.hears(PLAY_HZ)
    assert await probe_hears(engine, "a", A_HZ)


async def test_pcmu_is_preferred_over_opus(engine: MediaEngine, phones) -> None:
    a = phones(A_HZ, codecs=("audio/opus", "audio/PCMU", "audio/PCMA"))
    offer = await a.offer()
    assert sdp.SessionDescription.parse(offer).media[0].rtp.codecs[0].mimeType == "audio/opus"
    await a.accept(await engine.answer("a", offer))
    assert engine.stats("a").codec == "audio/PCMU"


async def test_opus_only_offer_carries_audio_both_ways(engine: MediaEngine, phones) -> None:
    a = phones(A_HZ, codecs=("audio/opus",))
    await a.call(engine, "a")
    assert engine.stats("a").codec == "audio/opus"
    engine.play("a", ToneSource(PLAY_HZ))
    await until(lambda: a.hears(PLAY_HZ), what="tone through Opus")
    assert await probe_hears(engine, "a", A_HZ)


async def test_listener_and_speaker_share_one_inbound_frame(engine: MediaEngine, phones) -> None:
    # b and a supervisor both hear a; a conference probe hears a and b summed.
    a, b, sup = phones(A_HZ), phones(B_HZ), phones(PLAY_HZ)
    for p, sid in ((a, "a"), (b, "b"), (sup, "sup")):
        await p.call(engine, sid)
    engine.connect("a", "b")
    engine.set_inputs("sup", [Input(leg="a"), Input(leg="b", gain=0.0)])
    await until(lambda: b.hears(A_HZ) and sup.hears(A_HZ), what="b and the supervisor both hearing a")
    assert engine.stats("a").dropped == 0  # two readers did not consume a's buffer twice
    # Whisper: a hears b and the supervisor; b does not hear the supervisor.
    engine.set_inputs("a", [Input(leg="b"), Input(leg="sup")])
    await a.wait_fresh()
    x = a.recent()
    assert not tone_present(x, RATE, B_HZ) and not tone_present(x, RATE, PLAY_HZ)  # two tones, neither dominant
    spectrum = np.abs(np.fft.rfft(x * np.hanning(len(x))))
    peaks = {round(f) for f in np.argsort(spectrum)[-2:] * RATE / len(x)}
    assert peaks == {int(B_HZ), int(PLAY_HZ)}
    assert b.hears(A_HZ)


async def test_bad_routing_and_files_raise_media_error(engine: MediaEngine, phones, tmp_path) -> None:
    a = phones(A_HZ)
    await a.call(engine, "a")
    with pytest.raises(MediaError, match="'ghost'"):
        engine.set_inputs("a", [Input(leg="ghost")])
    with pytest.raises(MediaError, match="'ghost'"):
        engine.set_inputs("ghost", [])
    with pytest.raises(MediaError, match="does not exist"):
        engine.hold("a", tmp_path / "missing.wav")
    (tmp_path / "junk.wav").write_bytes(b"RIFF nonsense")
    with pytest.raises(MediaError, match="junk.wav"):
        engine.play("a", tmp_path / "junk.wav")
    with pytest.raises(MediaError):
        engine.stats("ghost")
    engine.play("a", ToneSource(PLAY_HZ))
    await until(lambda: a.hears(PLAY_HZ), what="the engine still working")


async def test_far_end_close_is_reported(phones) -> None:
    closed: list[tuple[str, str]] = []
    engine = MediaEngine(on_session_closed=lambda sid, reason: closed.append((sid, reason)))
    try:
        a, b = phones(A_HZ), phones(B_HZ)
        await a.call(engine, "a")
        await b.call(engine, "b")
        engine.connect("a", "b")
        await a.close()
        await until(lambda: bool(closed), what="the close callback")
        assert closed == [("a", "closed")]
        assert engine.sessions() == ["b"]
        assert engine.mixer.get("b").inputs == []
        engine.play("b", ToneSource(PLAY_HZ))
        await until(lambda: b.hears(PLAY_HZ), what="b still served")
    finally:
        await engine.close_all()


async def test_clock_keeps_time(engine: MediaEngine, phones) -> None:
    a = phones(A_HZ)
    await a.call(engine, "a")
    t0, k0 = time.monotonic(), engine.clock_stats().ticks
    await until(lambda: engine.clock_stats().ticks >= k0 + 50, what="50 ticks")
    elapsed = time.monotonic() - t0
    assert 0.9 < elapsed < 1.3
    # Inbound frames were there at the ticks: the buffer keeps about a frame, so a far end whose
    # sending is starved (this process, on a loaded machine) may be late now and then, not often.
    stats = engine.stats("a")
    assert stats.late <= max(2, stats.received // 10), stats
