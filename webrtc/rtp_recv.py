"""A lean RTP receive path for G.711: SRTP unprotect, header, payload, on the datagram's own callback.

What aiortc does for every inbound RTP packet: aioice's `StunProtocol`
tries to parse it as STUN (a `ValueError` raised and caught per packet),
puts it on the connection's queue, wakes the DTLS transport's task, which
awaits it through three coroutines, unprotects it, builds an `RtpPacket`
(header extensions parsed), awaits the receiver's `_handle_rtp_packet`
(bitrate estimator, statistics, NACK generator, depayloading, jitter buffer)
and only then hands the frame to a decoder. For a softphone call that is a
task wake-up and a dozen Python calls per 20 ms, per direction, per call:
most of a media worker's time at a few dozen calls (load/bench_sip_workers.py).

`DirectReceiver` takes the packets of one G.711 payload type off that path
where they arrive: it wraps `datagram_received` of the ICE connection's
protocols (and the TURN relay's, which calls the same method), and for an
SRTP packet that is not RTCP and carries the negotiated G.711 payload type it
unprotects, reads the RFC 3550 §5.1 header (CSRCs, extension and padding
skipped), updates the counters aiortc reports (its receiver reports and
`getStats()` stay right) and hands the payload to `on_payload` at once.

Everything else goes the way it went: STUN (consent), DTLS, RTCP, other
payload types (telephone-event, comfort noise: handed to aiortc's own RTP
handler after the unprotect, since SRTP refuses a packet twice), and all of
it before DTLS-SRTP is up.

No jitter buffer: a packet older than the newest taken from its SSRC
(reordered; SRTP itself refuses a replayed one) is dropped and counted (`stale`); the leg's `FrameBuffer` absorbs
timing jitter. aiortc's audio jitter buffer held two packets first, 40 ms of
delay a softphone leg no longer has.

Private attributes of aiortc 1.16 / aioice used here (tests/webrtc/test_rtp_recv.py pins them):
`RTCRtpReceiver.transport` (`RTCDtlsTransport`) `._rx_srtp`, `._handle_rtp_data`, its
`_RTCDtlsTransport__rx_packets` / `__rx_bytes`; `RTCIceTransport._connection` (aioice
`Connection`) `._protocols`; `RTCRtpReceiver._enabled`, `_RTCRtpReceiver__remote_streams`.
"""

from __future__ import annotations

import asyncio
import logging
import struct
from typing import Any, Callable

import pylibsrtp
from aiortc import RTCRtpReceiver
from aiortc.rtcrtpreceiver import StreamStatistics

log = logging.getLogger(__name__)

_HEADER = struct.Struct("!BBHII")
_RX_COUNTERS = ("_RTCDtlsTransport__rx_packets", "_RTCDtlsTransport__rx_bytes")
_REMOTE_STREAMS = "_RTCRtpReceiver__remote_streams"
_WRAPPED = "_unidesk_direct"
RATE = 8000  # G.711's RTP clock


class _Seen:
    """What `StreamStatistics.add` reads of a packet."""

    __slots__ = ("sequence_number", "timestamp")

    def __init__(self) -> None:
        self.sequence_number = 0
        self.timestamp = 0


def rtp_payload(packet: bytes) -> tuple[int, int, int, int, bytes] | None:
    """(payload type, sequence number, timestamp, SSRC, payload) of a plain RTP packet
    (RFC 3550 §5.1: version 2; CSRC list, header extension and padding skipped); None if malformed."""
    if len(packet) < 12:
        return None
    first, second, seq, ts, ssrc = _HEADER.unpack_from(packet)
    if first >> 6 != 2:
        return None
    start = 12 + 4 * (first & 0x0F)
    if first & 0x10:  # header extension: 16-bit profile, 16-bit length in 32-bit words
        if len(packet) < start + 4:
            return None
        start += 4 + 4 * struct.unpack_from("!H", packet, start + 2)[0]
    end = len(packet)
    if first & 0x20:  # padding: its length is the last octet
        end -= packet[-1]
    if start > end:
        return None
    return second & 0x7F, seq, ts, ssrc, packet[start:end]


def is_newer(seq: int, last: int) -> bool:
    """Whether RTP sequence number `seq` comes after `last` (RFC 3550 §A.1: modulo 2**16, within half)."""
    return 0 < (seq - last) & 0xFFFF < 0x8000


class DirectReceiver:
    """Hands a receiver's G.711 payloads to `on_payload(payload)` as they arrive (see module doc)."""

    def __init__(self, receiver: RTCRtpReceiver, payload_type: int,
                 on_payload: Callable[[bytes], None], name: str = "") -> None:
        self.receiver = receiver
        self.name = name
        self.payload_type = payload_type
        self._on_payload = on_payload
        self._last_seq: dict[int, int] = {}
        self._seen = _Seen()
        self._stats: StreamStatistics | None = None
        self._stats_ssrc: int | None = None
        self.received = 0
        "Packets handed to on_payload."
        self.stale = 0
        "Packets dropped as older than the newest taken (reordered or duplicated)."
        self.refused = 0
        "Packets SRTP refused (forged, replayed) or that were not well-formed RTP."
        self.passed = 0
        "SRTP packets of other payload types handed to aiortc."

    def attach(self) -> int:
        """Wrap every protocol of the receiver's ICE connection not wrapped yet; how many were.

        Call it once the connection has gathered (after the local description is set), and again
        after an ICE restart or a TURN allocation."""
        dtls = self.receiver.transport
        protocols = getattr(getattr(dtls.transport, "_connection", None), "_protocols", None)
        if protocols is None:
            log.warning("aiortc's ICE transport has no aioice connection: RTP takes aiortc's path")
            return 0
        wrapped = 0
        for protocol in protocols:
            if getattr(protocol, _WRAPPED, None) is not None:
                continue  # wrapped already (a session has one receiver for its connection's life)
            original = protocol.datagram_received
            protocol._unidesk_original = original
            protocol.datagram_received = self._wrap(dtls, original)
            setattr(protocol, _WRAPPED, self)
            wrapped += 1
        return wrapped

    def _wrap(self, dtls: Any, original: Callable[[bytes, Any], None]) -> Callable[[bytes, Any], None]:
        take = self._take

        def datagram_received(data: bytes, addr: Any) -> None:
            # RTP and RTCP start 0b10 (RFC 7983 §7: 128-191); RTCP's packet types 192-223 are
            # left to aiortc (RFC 5761 §4).
            if data and 127 < data[0] < 192 and len(data) > 1 and not 191 < data[1] < 224:
                rx = dtls._rx_srtp
                if rx is not None:
                    take(dtls, rx, data)
                    return
            original(data, addr)

        return datagram_received

    def _take(self, dtls: Any, rx: pylibsrtp.Session, data: bytes) -> None:
        size = len(data)
        try:
            packet = rx.unprotect(data)
        except pylibsrtp.Error:
            self.refused += 1
            return
        packets_name, bytes_name = _RX_COUNTERS
        setattr(dtls, packets_name, getattr(dtls, packets_name) + 1)
        setattr(dtls, bytes_name, getattr(dtls, bytes_name) + size)
        parsed = rtp_payload(packet)
        if parsed is None:
            self.refused += 1
            return
        pt, seq, ts, ssrc, payload = parsed
        if pt != self.payload_type:
            # Not ours (telephone-event, comfort noise...): aiortc's handler, already unprotected.
            self.passed += 1
            asyncio.ensure_future(dtls._handle_rtp_data(packet, arrival_time_ms=0))
            return
        if not self.receiver._enabled:
            return
        last = self._last_seq.get(ssrc)
        if last is not None and not is_newer(seq, last):
            self.stale += 1
            return
        if last is None and len(self._last_seq) >= 8:
            self._last_seq.clear()  # a peer that keeps changing SSRC: only the latest ones matter
        self._last_seq[ssrc] = seq
        self._count(ssrc, seq, ts)
        if not self.received:
            log.info("%s: payload type %d taken off the datagram (direct path)", self.name, pt)
        self.received += 1
        self._on_payload(payload)

    def _count(self, ssrc: int, seq: int, ts: int) -> None:
        # aiortc's receiver reports (RTCP RR) and getStats() read these.
        if ssrc != self._stats_ssrc:
            streams = getattr(self.receiver, _REMOTE_STREAMS)
            stats = streams.get(ssrc)
            if stats is None:
                stats = streams[ssrc] = StreamStatistics(RATE)
            self._stats, self._stats_ssrc = stats, ssrc
        seen = self._seen
        seen.sequence_number, seen.timestamp = seq, ts
        self._stats.add(seen)  # type: ignore[union-attr, arg-type]

    def detach(self) -> None:
        """Give every wrapped protocol its own `datagram_received` back."""
        dtls = self.receiver.transport
        for protocol in getattr(getattr(dtls.transport, "_connection", None), "_protocols", None) or ():
            if getattr(protocol, _WRAPPED, None) is self:
                protocol.datagram_received = protocol._unidesk_original
                setattr(protocol, _WRAPPED, None)
