"""Webinar forwarding with aiortc peers in one process: a presenter's VP8 and Opus reach receive-only
attendees without a decode or an encode in between (the bytes are the presenter's), a late joiner
gets video at once through a forwarded keyframe request, a promoted speaker is heard by everyone
and muted for everyone, and bad offers are refused with a reason."""

from __future__ import annotations

import asyncio
import hashlib
import queue
import time

import pytest
from aiortc.codecs.vpx import Vp8Encoder

from webrtc.audio import MediaError
from webrtc.forward import Tap, is_vp8_keyframe
from webrtc.rtp_send import DirectSender
from webrtc.webinar import WebinarMedia, map_slots, check_offer
from webrtc.webinar_bot import Attendee, Publisher

from .test_engine import until

pytestmark = pytest.mark.timeout(90)

PRESENTER_HZ = 600.0
SPEAKER_HZ = 900.0


async def join(media: WebinarMedia, peer, room: str, conn: str, publish: bool, slots=None) -> None:
    offer = await peer.offer()
    answer = await (media.publish if publish else media.view)(room, conn, offer, slots)
    await peer.accept(answer)


class _Recorder:
    """Stands in for a viewer receiver's decoder queue: keeps a hash of every encoded frame."""

    def __init__(self) -> None:
        self.hashes: list[bytes] = []
        self.keyframes: list[bool] = []

    def put(self, task) -> None:  # type: ignore[no-untyped-def]
        if task is not None:
            self.hashes.append(hashlib.sha1(task[1].data).digest())
            self.keyframes.append(is_vp8_keyframe(task[1].data))

    def get(self, block: bool = True, timeout: float | None = None) -> None:
        time.sleep(0.05)  # aiortc's decoder thread polls; it ends with the test process
        return None


def test_vp8_keyframe_bit() -> None:
    assert is_vp8_keyframe(b"\x10\x02\x00\x9d\x01\x2a")
    assert not is_vp8_keyframe(b"\x11\x02\x00")
    assert not is_vp8_keyframe(b"")


async def test_aiortc_internals_forwarding_relies_on() -> None:
    """The private parts of aiortc 1.16 and aioice that forward.py and rtp_send.py use (see their
    docstrings): if an upgrade moves them, this says where."""
    from aiortc import RTCPeerConnection

    from webrtc.rtp_send import _DTLS_COUNTERS, _SENDER_COUNTERS, _STARTED

    pc = RTCPeerConnection()
    try:
        t = pc.addTransceiver("video", direction="sendonly")
        sender, dtls = t.sender, t.sender.transport
        for name in (_STARTED, *_SENDER_COUNTERS, "_ssrc", "_rtx_ssrc", "_enabled"):
            assert hasattr(sender, name), name
        assert getattr(sender, _STARTED) is False
        assert callable(sender._retransmit) and callable(sender._send_keyframe)
        assert isinstance(getattr(t.receiver, "_RTCRtpReceiver__decoder_queue"), queue.Queue)
        assert callable(t.receiver._send_rtcp_pli)
        for name in (*_DTLS_COUNTERS, "_state", "_tx_srtp", "_rx_srtp"):
            assert hasattr(dtls, name), name
        assert isinstance(dtls.transport._connection._nominated, dict)
        assert isinstance(dtls.transport._connection._protocols, list)
    finally:
        await pc.close()


async def test_presenter_reaches_attendees_without_reencoding() -> None:
    media = WebinarMedia()
    presenter = Publisher(PRESENTER_HZ)
    attendees = [Attendee(video=1, audio=2) for _ in range(3)]
    try:
        await join(media, presenter, "r1", "presenter", publish=True)
        for i, a in enumerate(attendees):
            await join(media, a, "r1", f"a{i}", publish=False)
        room = media.rooms["r1"]
        # Every attendee decodes video and hears the presenter's tone.
        await until(lambda: all(a.video_frames and a.video_frames[0] > 30 for a in attendees), 30, "video decoded")
        await until(lambda: all(a.hears(0, PRESENTER_HZ) for a in attendees), 15, "the presenter's tone")
        # Nothing encodes on the way: every viewer's frames go out through its direct send path.
        for i in range(3):
            conn = media._conns[f"a{i}"]
            for t in conn.pc.getTransceivers():
                track = t.sender.track
                if track is not None:
                    assert isinstance(track.out, DirectSender)
                    assert track.out.packets > 0 or track.slot.source is None
                    assert t.sender._RTCRtpSender__encoder is None
                    pair = t.sender.transport.transport._connection._nominated[1]
                    assert callable(pair.protocol.transport.sendto)
        s = media.stats("a0")
        assert s.frames["camera"] > 30 and s.frames["audio"] >= 25

        # A late joiner: its sender asks for a keyframe; the request goes to the presenter, and the
        # first frame the joiner gets is that keyframe, byte for byte the presenter's.
        before = room.slots["camera"].stats.keyframe_requests
        late = Attendee(video=1, audio=0)
        recorder = _Recorder()
        video_t = late.pc.getTransceivers()[0]
        video_t.receiver._RTCRtpReceiver__decoder_queue = recorder
        seen: list[bytes] = []
        tap = room.slots["camera"].source
        assert isinstance(tap, Tap)
        original = room.slots["camera"].feed

        def feed(t, mime, data, ts):  # type: ignore[no-untyped-def]
            seen.append(hashlib.sha1(data).digest())
            original(t, mime, data, ts)

        room.slots["camera"].feed = feed  # type: ignore[method-assign]
        started = time.monotonic()
        await join(media, late, "r1", "late", publish=False)
        await until(lambda: len(recorder.hashes) >= 10, 10, "the late joiner's video")
        assert recorder.keyframes[0], "a late joiner's first frame is a keyframe"
        assert time.monotonic() - started < 3.0
        assert room.slots["camera"].stats.keyframe_requests > before
        assert set(recorder.hashes) <= set(seen), "forwarded frames are the presenter's bytes"
        await late.close()
    finally:
        for a in attendees:
            await a.close()
        await presenter.close()
        await media.close_all()


async def test_speaker_is_heard_by_all_and_muted_for_all() -> None:
    media = WebinarMedia()
    presenter = Publisher(PRESENTER_HZ, video=True)
    speaker = Publisher(SPEAKER_HZ, video=False)
    attendees = [Attendee(video=1, audio=2) for _ in range(2)]
    host_ears = Attendee(video=0, audio=1)
    try:
        await join(media, presenter, "r2", "presenter", publish=True)
        for i, a in enumerate(attendees):
            await join(media, a, "r2", f"a{i}", publish=False)
        await join(media, host_ears, "r2", "presenter-ears", publish=False, slots=["speaker"])
        await until(lambda: all(a.hears(0, PRESENTER_HZ) for a in attendees), 20, "the presenter's tone")
        # Promoted: the attendee publishes on the speaker slot; everyone (the presenter too) hears it.
        await join(media, speaker, "r2", "speaker", publish=True, slots=["speaker"])
        await until(lambda: all(a.hears(1, SPEAKER_HZ) for a in attendees), 15, "the speaker's tone")
        await until(lambda: host_ears.hears(0, SPEAKER_HZ), 15, "the speaker's tone at the presenter")
        # Mute all: the speaker is silent for everyone; the presenter still heard.
        media.mute("r2", "speaker", True)
        await until(lambda: all(a.silent(1) for a in attendees), 10, "the speaker muted")
        await until(lambda: all(a.hears(0, PRESENTER_HZ) for a in attendees), 10, "the presenter still heard")
        media.mute("r2", "speaker", False)
        await until(lambda: all(a.hears(1, SPEAKER_HZ) for a in attendees), 15, "the speaker unmuted")
        # Back to attendee: the speaker's connection closes, the slot has no source.
        await media.close("speaker")
        assert media.rooms["r2"].slots["speaker"].source is None
        await until(lambda: all(a.silent(1) for a in attendees), 10, "the speaker gone")
        await until(lambda: all(a.hears(0, PRESENTER_HZ) for a in attendees), 10, "the presenter still heard")
    finally:
        for p in [*attendees, host_ears, speaker, presenter]:
            await p.close()
        await media.close_all()


async def test_bad_offers_are_refused_with_a_reason() -> None:
    media = WebinarMedia()
    presenter = Publisher(PRESENTER_HZ)
    sending_attendee = Publisher(SPEAKER_HZ, video=False)
    try:
        offer = await sending_attendee.offer()
        with pytest.raises(MediaError, match="receives only"):
            await media.view("r3", "x", offer)
        with pytest.raises(MediaError, match="does not start"):
            await media.publish("r3", "p", "hello")
        watcher = Attendee()
        with pytest.raises(MediaError, match="must send"):
            await media.publish("r3", "p", await watcher.offer())
        await watcher.close()
        description = check_offer(await presenter.offer(), publish=True)
        assert map_slots(description, None, True) == ["camera", "audio"]
        with pytest.raises(MediaError, match="does not carry"):
            map_slots(description, ["audio", "camera"], True)
        assert media.connections() == []
    finally:
        await presenter.close()
        await sending_attendee.close()
        await media.close_all()
