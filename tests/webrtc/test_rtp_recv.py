"""The direct G.711 paths of a softphone session (webrtc/rtp_recv.py, MixTrack's direct send), against
real aiortc peers: audio both ways goes through them, aiortc's statistics still count it, stale and
foreign packets are sorted out, and a forged one is refused without harm to the call."""

from __future__ import annotations

import struct

import pytest
from aiortc.rtcdtlstransport import RTCDtlsTransport
from aiortc.rtcrtpreceiver import RTCRtpReceiver
from aiortc.rtp import RtpPacket

from webrtc.engine import MediaEngine
from webrtc.rtp_recv import DirectReceiver, is_newer, rtp_payload

from .test_engine import A_HZ, B_HZ, Phone, engine, phones, until  # noqa: F401 (fixtures)

pytestmark = pytest.mark.timeout(60)


def test_rtp_header_variants() -> None:
    payload = bytes(range(160))
    plain = RtpPacket(payload_type=0, sequence_number=7, timestamp=1600, ssrc=42, payload=payload).serialize()
    assert rtp_payload(plain) == (0, 7, 1600, 42, payload)
    marked = RtpPacket(payload_type=8, marker=1, sequence_number=65535, timestamp=0, ssrc=1, payload=b"ab")
    assert rtp_payload(marked.serialize()) == (8, 65535, 0, 1, b"ab")
    csrc = RtpPacket(payload_type=0, sequence_number=1, timestamp=2, ssrc=3, payload=b"xyz")
    csrc.csrc = [10, 11]
    assert rtp_payload(csrc.serialize())[4] == b"xyz"
    # Header extension (profile 0xBEDE, one word) and three octets of padding.
    head = struct.pack("!BBHII", 0x80 | 0x10 | 0x20, 0, 5, 6, 7) + struct.pack("!HH", 0xBEDE, 1) + b"\x10\x01\x00\x00"
    assert rtp_payload(head + b"pay" + b"\x00\x00\x03") == (0, 5, 6, 7, b"pay")
    assert rtp_payload(plain[:11]) is None
    assert rtp_payload(b"\x40" + plain[1:]) is None  # version 1
    assert rtp_payload(head[:14]) is None  # extension cut short
    assert rtp_payload(struct.pack("!BBHII", 0xA0, 0, 1, 2, 3) + b"\x40") is None  # padding past the header


def test_sequence_order_wraps() -> None:
    assert is_newer(2, 1) and is_newer(0, 65535) and is_newer(100, 65500)
    assert not is_newer(1, 1) and not is_newer(1, 2) and not is_newer(65535, 0)


def test_aiortc_internals_the_direct_paths_rely_on() -> None:
    import aioice

    assert "_rx_srtp" in RTCDtlsTransport.__init__.__code__.co_names
    assert callable(RTCDtlsTransport._handle_rtp_data)
    names = RTCDtlsTransport.__init__.__code__.co_names
    assert "_RTCDtlsTransport__rx_packets" in names and "_RTCDtlsTransport__rx_bytes" in names
    assert "_RTCRtpReceiver__remote_streams" in RTCRtpReceiver.__init__.__code__.co_names
    assert "_protocols" in aioice.Connection.__init__.__code__.co_names
    assert callable(aioice.ice.StunProtocol.datagram_received)


def _session(engine: MediaEngine, sid: str):  # type: ignore[no-untyped-def]
    return engine._sessions[sid]


async def test_pcmu_audio_takes_the_direct_paths_both_ways(engine: MediaEngine, phones) -> None:
    a, b = phones(A_HZ), phones(B_HZ)
    await a.call(engine, "a")
    await b.call(engine, "b")
    engine.connect("a", "b")
    await a.wait_fresh()
    await b.wait_fresh()
    assert a.hears(B_HZ) and b.hears(A_HZ)
    for sid in ("a", "b"):
        s = _session(engine, sid)
        assert s.codec == "audio/PCMU" and s.track.direct
        assert s.receiver.received > 20 and s.receiver.stale == 0 and s.receiver.refused == 0
        assert s.track.out.packets >= s.track.sent > 20
        # aiortc's own statistics (its RTCP receiver and sender reports) still count the packets.
        stats = await s.pc.getStats()
        inbound = [x for x in stats.values() if x.type == "inbound-rtp"]
        outbound = [x for x in stats.values() if x.type == "outbound-rtp"]
        assert inbound and inbound[0].packetsReceived >= s.receiver.received - 5
        assert outbound and outbound[0].packetsSent >= s.track.sent - 5
    # The phone's side sees a well-formed stream: aiortc's receiver counts no loss.
    phone_stats = await a.pc.getStats()
    inbound = [x for x in phone_stats.values() if x.type == "inbound-rtp"][0]
    assert inbound.packetsReceived > 20 and inbound.packetsLost <= 2


async def test_stale_foreign_and_forged_packets(engine: MediaEngine, phones) -> None:
    a, b = phones(A_HZ), phones(B_HZ)
    await a.call(engine, "a")
    await b.call(engine, "b")
    engine.connect("a", "b")
    receiver: DirectReceiver = _session(engine, "a").receiver
    dtls = a.pc.getTransceivers()[0].sender.transport
    before = (receiver.received, receiver.stale, receiver.passed, receiver.refused)

    def packet(pt: int, seq: int) -> bytes:
        return RtpPacket(payload_type=pt, sequence_number=seq, timestamp=seq * 160, ssrc=0x5EED,
                         payload=b"\xff" * 160).serialize()

    # A second stream of the phone (its SRTP keys, another SSRC): 100, 101, then 99 late.
    for seq in (100, 101, 99):
        await dtls._send_rtp(packet(0, seq))
    await dtls._send_rtp(packet(101, 102))  # telephone-event: aiortc's path
    # Not from the phone: unauthenticated bytes that look like RTP.
    pair = dtls.transport._connection._nominated[1]
    pair.protocol.transport.sendto(packet(0, 500) + b"\x00" * 10, pair.remote_addr)
    await until(lambda: receiver.stale > before[1] and receiver.passed > before[2]
                and receiver.refused > before[3], what="the crafted packets sorted")
    assert receiver.stale == before[1] + 1 and receiver.passed == before[2] + 1
    assert receiver.refused == before[3] + 1
    # The call goes on: both still hear each other.
    await a.wait_fresh()
    await b.wait_fresh()
    assert a.hears(B_HZ) and b.hears(A_HZ)
