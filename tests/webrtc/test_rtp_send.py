"""The direct send path of forwarded frames (webrtc/rtp_send.py), seen from a real aiortc viewer:
what arrives is well-formed RTP/VP8 in aiortc's own layout, sequence numbers and picture ids go up
one by one, a NACK is answered from history as RTX, a PLI reaches the presenter as a keyframe
request, and aiortc's sender reports count what was sent."""

from __future__ import annotations

import struct
import time

import pytest
from aiortc.codecs.vpx import VpxPayloadDescriptor
from aiortc.rtcrtpparameters import RTCRtpHeaderExtensionParameters, RTCRtpParameters
from aiortc.rtp import (
    RTCP_PSFB_PLI, RTCP_RTPFB_NACK, HeaderExtensionsMap, RtcpPsfbPacket, RtcpRtpfbPacket, RtpPacket,
)

from webrtc.audio import MediaError
from webrtc.forward import KEYFRAME_INTERVAL, is_vp8_keyframe
from webrtc.rtp_send import DirectSender, Frame, extension_parts
from webrtc.webinar import WebinarMedia
from webrtc.webinar_bot import Attendee, Publisher

from .test_engine import until

pytestmark = pytest.mark.timeout(90)


class Wiretap:
    """Keeps every RTP packet a viewer's DTLS transport decrypts (then lets aiortc have it), and
    loses the first copy of the packets in `lose` (SSRC, sequence number) on the way in."""

    def __init__(self, attendee: Attendee) -> None:
        self.dtls = attendee.pc.getTransceivers()[0].receiver.transport
        self.packets: list[bytes] = []
        self.lose: set[tuple[int, int]] = set()
        handle = self.dtls._handle_rtp_data
        ice = self.dtls.transport
        receive = ice._recv

        async def lossy() -> bytes:
            while True:
                data = await receive()
                if len(data) < 12 or not self.lose:
                    return data
                ssrc, seq = struct.unpack_from("!I", data, 8)[0], struct.unpack_from("!H", data, 2)[0]
                if (ssrc, seq) not in self.lose:  # the SRTP header is in clear
                    return data
                self.lose.discard((ssrc, seq))

        ice._recv = lossy

        async def recorded(data: bytes, arrival_time_ms: int) -> None:
            self.packets.append(data)
            await handle(data, arrival_time_ms)

        self.dtls._handle_rtp_data = recorded

    def of(self, ssrc: int) -> list[bytes]:
        return [p for p in self.packets if struct.unpack_from("!I", p, 8)[0] == ssrc]

    async def send_rtcp(self, packet: object) -> None:
        await self.dtls._send_rtp(bytes(packet))


MID = "urn:ietf:params:rtp-hdrext:sdes:mid"
ABS_SEND_TIME = "http://www.webrtc.org/experiments/rtp-hdrext/abs-send-time"


@pytest.mark.parametrize("mid", ["0", "12", "123", "1234", "a" * 16, None])
@pytest.mark.parametrize("uris", [(MID, ABS_SEND_TIME), (MID,), (ABS_SEND_TIME,), ()])
def test_header_extensions_as_aiortc_lays_them_out(mid: str | None, uris: tuple[str, ...]) -> None:
    ext_map = HeaderExtensionsMap()
    ext_map.configure(RTCRtpParameters(headerExtensions=[
        RTCRtpHeaderExtensionParameters(id=i + 1, uri=uri) for i, uri in enumerate(uris)]))
    head, tail = extension_parts(ext_map, mid)
    frame = Frame([b"x"], 0, False, 0x0123456789ABCDEF)
    block = head if tail is None else head + frame.abs_send_time + tail
    packet = RtpPacket(payload_type=96, sequence_number=1, timestamp=2, ssrc=3, payload=b"x")
    packet.extensions.mid = mid
    packet.extensions.abs_send_time = (0x0123456789ABCDEF >> 14) & 0xFFFFFF
    assert packet.serialize(ext_map)[12:-1] == block
    assert (tail is None) == (ABS_SEND_TIME not in uris)


@pytest.fixture
async def webinar():
    media = WebinarMedia()
    presenter = Publisher(440.0)
    viewer = Attendee(video=1, audio=1)
    try:
        await presenter.accept(await media.publish("r", "presenter", await presenter.offer()))
        offer = await viewer.offer()
        tap = Wiretap(viewer)
        await viewer.accept(await media.view("r", "v", offer, ["camera", "audio"]))
        yield media, presenter, viewer, tap
    finally:
        await viewer.close()
        await presenter.close()
        await media.close_all()


def video_sender(media: WebinarMedia):  # type: ignore[no-untyped-def]
    (t,) = [t for t in media._conns["v"].pc.getTransceivers() if t.sender.track.kind == "video"]
    return t, t.sender


def frames(packets: list[RtpPacket]) -> list[list[RtpPacket]]:
    out: list[list[RtpPacket]] = [[]]
    for p in packets:
        out[-1].append(p)
        if p.marker:
            out.append([])
    return [f for f in out if f]


async def test_viewer_gets_well_formed_rtp_in_sequence(webinar) -> None:  # type: ignore[no-untyped-def]
    media, _, viewer, tap = webinar
    t, sender = video_sender(media)
    await until(lambda: len(tap.of(sender._ssrc)) >= 60, 20, "60 video packets at the viewer")
    ext_map = sender._RTCRtpSender__rtp_header_extensions_map
    raw = tap.of(sender._ssrc)[:60]
    parsed = [RtpPacket.parse(p, ext_map) for p in raw]
    # aiortc lays the packets out exactly as it would have itself (header extensions included).
    for p, data in zip(parsed, raw):
        assert p.serialize(ext_map) == data
        assert p.extensions.mid == t.mid and p.extensions.abs_send_time is not None
    assert {p.payload_type for p in parsed} == {t._codecs[0].payloadType}
    seqs = [p.sequence_number for p in parsed]
    assert all((b - a) & 0xFFFF == 1 for a, b in zip(seqs, seqs[1:])), "sequence numbers one by one"
    # Whole frames: one timestamp each, marker on the last packet, VP8 picture ids one by one.
    whole = frames(parsed)[1:-1]
    assert len(whole) >= 5
    pictures = []
    for f in whole:
        assert len({p.timestamp for p in f}) == 1
        descriptors = [VpxPayloadDescriptor.parse(p.payload)[0] for p in f]
        assert descriptors[0].partition_start == 1 and all(d.partition_start == 0 for d in descriptors[1:])
        assert len({d.picture_id for d in descriptors}) == 1
        pictures.append(descriptors[0].picture_id)
    assert all((b - a) % (1 << 15) == 1 for a, b in zip(pictures, pictures[1:])), "picture ids one by one"
    stamps = [f[0].timestamp for f in whole]
    assert all(0 < (b - a) & 0xFFFFFFFF < 90000 for a, b in zip(stamps, stamps[1:]))
    # aiortc's sender reports (and stats) count what the direct path sent.
    out = t.sender.track.out
    stats = [s for s in (await sender.getStats()).values() if s.type == "outbound-rtp"]
    assert stats and stats[0].packetsSent == out.packets > 0 and stats[0].bytesSent == out.octets


async def test_nack_is_answered_from_history(webinar) -> None:  # type: ignore[no-untyped-def]
    media, _, viewer, tap = webinar
    t, sender = video_sender(media)
    out = t.sender.track.out
    await until(lambda: len(tap.of(sender._ssrc)) >= 20, 20, "video packets at the viewer")
    ext_map = sender._RTCRtpSender__rtp_header_extensions_map
    lost = tap.of(sender._ssrc)[-5]
    seq = RtpPacket.parse(lost, ext_map).sequence_number

    async def nack(sequence_number: int) -> None:
        await tap.send_rtcp(RtcpRtpfbPacket(fmt=RTCP_RTPFB_NACK, ssrc=1, media_ssrc=sender._ssrc,
                                            lost=[sequence_number]))

    # A packet lost on the way: the viewer's aiortc receiver NACKs it and gets it again (the webinar
    # offers VP8 without RTX: the very packet again).
    assert out._rtx_pt is None
    gone = (seq + 40) & 0xFFFF
    tap.lose.add((sender._ssrc, gone))
    await until(lambda: not tap.lose, 10, "the packet lost")
    await until(lambda: any(struct.unpack_from("!H", p, 2)[0] == gone for p in tap.of(sender._ssrc)), 5,
                "the retransmission")
    # A packet long gone from history is not answered; with RTX negotiated, the answer is RTX (RFC 4588).
    out._rtx_pt = 99
    await nack((seq - 1000) & 0xFFFF)
    await nack(seq)
    await until(lambda: tap.of(sender._rtx_ssrc), 5, "the RTX retransmission")
    assert len(tap.of(sender._rtx_ssrc)) == 1
    original, rtx = RtpPacket.parse(lost, ext_map), RtpPacket.parse(tap.of(sender._rtx_ssrc)[0], ext_map)
    assert rtx.payload_type == 99 and rtx.timestamp == original.timestamp and rtx.marker == original.marker
    assert rtx.payload == struct.pack("!H", seq) + original.payload


async def test_pli_becomes_a_keyframe_from_the_presenter(webinar) -> None:  # type: ignore[no-untyped-def]
    media, _, viewer, tap = webinar
    _, sender = video_sender(media)
    slot = media.rooms["r"].slots["camera"]
    ext_map = sender._RTCRtpSender__rtp_header_extensions_map

    def keyframes() -> int:
        n = 0
        for data in tap.of(sender._ssrc):
            p = RtpPacket.parse(data, ext_map)
            descriptor, vp8 = VpxPayloadDescriptor.parse(p.payload)
            n += descriptor.partition_start and descriptor.partition_id == 0 and is_vp8_keyframe(vp8)
        return n

    await until(lambda: keyframes() >= 1 and len(tap.of(sender._ssrc)) >= 60, 20, "video after a keyframe")
    # The presenter's encoder makes keyframes only when asked (aiortc: one in 3000 frames otherwise).
    await until(lambda: time.monotonic() - slot._last_request > KEYFRAME_INTERVAL, 5, "the rate limit over")
    before, requests = keyframes(), slot.stats.keyframe_requests
    await tap.send_rtcp(RtcpPsfbPacket(fmt=RTCP_PSFB_PLI, ssrc=1, media_ssrc=sender._ssrc))
    await until(lambda: slot.stats.keyframe_requests == requests + 1, 5, "the keyframe request")
    await until(lambda: keyframes() > before, 5, "the new keyframe at the viewer")


async def test_direct_sender_goes_in_before_the_sender_starts(webinar) -> None:  # type: ignore[no-untyped-def]
    media, *_ = webinar
    _, sender = video_sender(media)
    await until(lambda: sender._RTCRtpSender__started, 10, "the sender started")
    with pytest.raises(MediaError, match="before it starts"):
        DirectSender(sender)
