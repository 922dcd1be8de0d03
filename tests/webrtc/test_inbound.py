"""Inbound decoding on the event loop: G.711 tables, aiortc's receiver hook, no decoder threads."""

from __future__ import annotations

import asyncio
import threading

import av
import numpy as np
import pytest
from aiortc import RTCRtpCodecParameters, RTCRtpReceiver
from aiortc.rtcrtpparameters import RTCRtpReceiveParameters
from aiortc.rtcrtpreceiver import RemoteStreamTrack
from aiortc.mediastreams import MediaStreamError
from aiortc.rtp import RtpPacket

from webrtc.audio import FRAME_SAMPLES, G711Decoder, G711Encoder
from webrtc.engine import InlineDecoder, MediaEngine

from .test_engine import A_HZ, B_HZ, Phone, probe_hears, until

pytestmark = pytest.mark.timeout(30)


def libav_decode(codec_name: str, payload: bytes) -> np.ndarray:
    ctx = av.CodecContext.create(codec_name, "r")
    ctx.format, ctx.layout, ctx.sample_rate = "s16", "mono", 8000
    return np.concatenate([f.to_ndarray().reshape(-1) for f in ctx.decode(av.Packet(payload))])


@pytest.mark.parametrize("mime,codec_name", [("audio/PCMU", "pcm_mulaw"), ("audio/PCMA", "pcm_alaw")])
def test_g711_decoder_is_bit_exact_with_libav(mime: str, codec_name: str) -> None:
    every_byte = bytes(range(256)) + bytes(range(64))  # 320 bytes: two frames
    frames = G711Decoder(mime).decode(every_byte)
    assert [len(f) for f in frames] == [FRAME_SAMPLES, FRAME_SAMPLES]
    assert all(f.dtype == np.int16 for f in frames)
    np.testing.assert_array_equal(np.concatenate(frames), libav_decode(codec_name, every_byte))
    # Round trip through the table encoder stays within G.711's quantisation.
    x = (np.sin(np.arange(FRAME_SAMPLES) * 0.2) * 12000).astype(np.int16)
    (y,) = G711Decoder(mime).decode(G711Encoder(mime).encode(x))
    assert np.abs(y.astype(np.int32) - x).max() < 400


def test_g711_decoder_cuts_other_packet_times_into_20ms_frames() -> None:
    decoder = G711Decoder("audio/PCMU")
    payload = bytes(range(240))  # 30 ms packets
    out = [f for _ in range(4) for f in decoder.decode(payload)]  # 120 ms
    assert len(out) == 6 and all(len(f) == FRAME_SAMPLES for f in out)
    np.testing.assert_array_equal(np.concatenate(out), libav_decode("pcm_mulaw", payload * 4))
    assert decoder.decode(bytes(80)) == []  # 10 ms: waits for the other half


class NullTransport:
    """Just enough of an RTCDtlsTransport for a receiver fed by hand."""

    state = "connected"
    _stats_id = "transport"

    def _register_rtp_receiver(self, receiver, parameters) -> None:
        pass

    def _unregister_rtp_receiver(self, receiver) -> None:
        pass

    async def _send_rtp(self, data: bytes) -> None:
        pass


async def test_receiver_hook_keeps_sequence_order_and_stops_cleanly() -> None:
    receiver = RTCRtpReceiver("audio", NullTransport())
    receiver._track = RemoteStreamTrack(kind="audio")  # as RTCPeerConnection does
    frames: list[np.ndarray] = []
    decoder = InlineDecoder.install(receiver, frames.append)
    assert decoder is not None, "aiortc's receiver layout changed: the inline decoder cannot be installed"
    pcmu = RTCRtpCodecParameters(mimeType="audio/PCMU", clockRate=8000, payloadType=0)
    await receiver.receive(RTCRtpReceiveParameters(codecs=[pcmu]))
    # Packet k carries byte value k, so each decoded frame names its packet.
    table = G711Decoder("audio/PCMU").decode(bytes(range(256)) + bytes(64))[0]
    order = [0, 1, 3, 2, 4, 6, 5, 7, 8, 10, 9, 11, 12, 13, 14, 15, 16, 17, 18, 19]
    for k in order:
        packet = RtpPacket(payload_type=0, sequence_number=1000 + k, timestamp=k * 160, ssrc=42, payload=bytes([k]) * 160)
        await receiver._handle_rtp_packet(packet, arrival_time_ms=k * 20)
    received = [int(np.flatnonzero(table == f[0])[0]) for f in frames]
    assert received == sorted(received) and received[0] == 0, received
    assert len(received) >= len(order) - 5  # aiortc's jitter buffer holds back a few frames
    assert all(len(f) == FRAME_SAMPLES for f in frames)
    # Stopping the receiver releases aiortc's thread and ends the remote track, as before.
    thread_names = lambda: [t.name for t in threading.enumerate() if t.name == "audio-decoder"]  # noqa: E731
    assert thread_names()
    await receiver.stop()
    assert not thread_names()
    with pytest.raises(MediaStreamError):
        await asyncio.wait_for(receiver.track.recv(), 1.0)


async def test_sessions_decode_on_the_loop_for_pcmu_and_opus() -> None:
    engine = MediaEngine()
    phones = [Phone(A_HZ), Phone(B_HZ, codecs=("audio/opus",))]
    try:
        await phones[0].call(engine, "a")
        await phones[1].call(engine, "b")
        for sid in ("a", "b"):
            session = engine._sessions[sid]
            assert session.decoder is not None and session.pump is None
        assert engine.stats("b").codec == "audio/opus"
        assert await probe_hears(engine, "a", A_HZ)
        assert await probe_hears(engine, "b", B_HZ)
        await until(lambda: engine.stats("b").received > 50, what="opus frames")
        assert engine._sessions["b"].decoder.errors == 0
    finally:
        for p in phones:
            await p.close()
        await engine.close_all()
    await until(lambda: not any(t.name == "audio-decoder" for t in threading.enumerate()), what="decoder threads gone")


async def test_without_the_hook_aiortcs_thread_and_the_pump_decode(monkeypatch) -> None:
    monkeypatch.setattr("webrtc.engine._DECODER_QUEUE", "_no_such_attribute")
    engine = MediaEngine()
    phone = Phone(A_HZ)
    try:
        await phone.call(engine, "a")
        session = engine._sessions["a"]
        assert session.decoder is None
        await until(lambda: session.pump is not None, what="pump started")
        assert await probe_hears(engine, "a", A_HZ)
    finally:
        await phone.close()
        await engine.close_all()


def test_an_undecodable_frame_is_counted_not_raised() -> None:
    from aiortc.jitterbuffer import JitterFrame

    frames: list[np.ndarray] = []
    decoder = InlineDecoder(frames.append)
    unknown = RTCRtpCodecParameters(mimeType="audio/x-unknown", clockRate=8000, payloadType=101)
    decoder.put((unknown, JitterFrame(data=b"\x00" * 10, timestamp=0)))
    decoder.put((unknown, JitterFrame(data=b"\x00" * 10, timestamp=160)))
    assert decoder.errors == 2 and frames == []
    pcmu = RTCRtpCodecParameters(mimeType="audio/PCMU", clockRate=8000, payloadType=0)
    decoder.put((pcmu, JitterFrame(data=b"\xff" * 160, timestamp=320)))
    assert len(frames) == 1 and not frames[0].any()  # 0xff is PCMU's zero
