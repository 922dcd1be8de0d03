"""A lean RTP send path for forwarded frames: header, SRTP protect, sendto, on the caller's stack.

aiortc's `RTCRtpSender` sends a frame from its own task: it waits for the
track's next frame (a future and a task wake-up per frame), builds an
`RtpPacket` per packet, serializes its header extensions, and goes through
three coroutines (DTLS, ICE, the candidate pair's protocol) before the socket.
For a webinar forwarding the same frame to a hundred viewers that per-packet
Python is most of the media worker's time. `DirectSender` sends a frame already
packetized (the payloads shared by every viewer of a slot) straight from the
slot's fan-out: per packet one header packed, one SRTP protect, one `sendto` on
the selected candidate pair's transport (a UDP socket, or aioice's TURN
transport, which does its own framing).

The aiortc sender stays in place for everything else and keeps working as
before: its SSRCs are the ones in the SDP answer, its RTCP task sends sender
reports from the counters updated here, a NACK is answered from this send
path's history (RTX when negotiated), a PLI or FIR goes wherever its
`_send_keyframe` points.

Private attributes of aiortc 1.16 / aioice used here (tests/webrtc/test_forward.py pins them):
`RTCDtlsTransport._state`, `._tx_srtp`, `.transport` (`RTCIceTransport`) `._connection`
(aioice `Connection`) `._nominated`; `RTCRtpSender._ssrc`, `._rtx_ssrc`, `._enabled`,
`._retransmit`, `._RTCRtpSender__started` and its RTCP counters (`_SENDER_COUNTERS`).
"""

from __future__ import annotations

import asyncio
import logging
import random
import struct
from typing import NoReturn

from aiortc import RTCRtpSender
from aiortc.codecs import is_rtx
from aiortc.mediastreams import MediaStreamError
from aiortc.rtcdtlstransport import State
from aiortc.rtcrtpparameters import RTCRtpSendParameters
from aiortc.rtp import RTP_HISTORY_SIZE, HeaderExtensions, HeaderExtensionsMap, RtpPacket, wrap_rtx

from .audio import MediaError

log = logging.getLogger(__name__)

_HEADER = struct.Struct("!BBHII")
_STARTED = "_RTCRtpSender__started"
# What aiortc's sender reports in its RTCP sender reports and stats.
_SENDER_COUNTERS = ("_RTCRtpSender__ntp_timestamp", "_RTCRtpSender__rtp_timestamp",
                    "_RTCRtpSender__packet_count", "_RTCRtpSender__octet_count")
_DTLS_COUNTERS = ("_RTCDtlsTransport__tx_packets", "_RTCDtlsTransport__tx_bytes")


class Frame:
    """One frame packetized once for every viewer of a slot."""

    __slots__ = ("payloads", "timestamp", "key", "ntp", "abs_send_time")

    def __init__(self, payloads: list[bytes], timestamp: int, key: bool, ntp: int) -> None:
        self.payloads = payloads
        "RTP payloads in order (VP8 with its payload descriptor; Opus or G.711 as is)."
        self.timestamp = timestamp
        "The publisher's RTP timestamp (each viewer has its own offset), in the codec's clock."
        self.key = key
        self.ntp = ntp
        "When it leaves, as a 64-bit NTP time (for sender reports)."
        self.abs_send_time = struct.pack("!I", (ntp >> 14) & 0x00FFFFFF)[1:]
        "The abs-send-time header extension's 3 bytes (6.18 fixed point seconds)."


def extension_parts(ext_map: HeaderExtensionsMap, mid: str | None) -> tuple[bytes, bytes | None]:
    """The header extension block (profile and length included) before and after the 3
    abs-send-time bytes, laid out by aiortc itself; the whole block and None without
    abs-send-time (b"" when nothing is negotiated)."""

    def block(abs_send_time: int) -> bytes:
        profile, value = ext_map.set(HeaderExtensions(mid=mid, abs_send_time=abs_send_time))
        return struct.pack("!HH", profile, len(value) >> 2) + value if value else b""

    low, high = block(0), block(0xFFFFFF)
    if low == high:  # no abs-send-time: the block never changes
        return low, None
    at = next(i for i in range(len(low)) if low[i] != high[i])
    return low[:at], low[at + 3:]


class Parked:
    """Where aiortc's sender waits for a track whose frames go out through a `DirectSender`: `wait`
    (the track's `recv`) returns only by raising MediaStreamError once the track stops (`release`,
    from its `stop`), which ends the sender's task as a finished track does."""

    __slots__ = ("_future",)

    def __init__(self) -> None:
        self._future: asyncio.Future[None] | None = None

    async def wait(self) -> NoReturn:
        self._future = asyncio.get_running_loop().create_future()
        try:
            await self._future
        finally:
            self._future = None
        raise MediaStreamError

    def release(self) -> None:
        future = self._future
        if future is not None and not future.done():
            future.set_result(None)


class DirectSender:
    """Sends frames for an aiortc `RTCRtpSender` whose track never yields any (see module doc)."""

    def __init__(self, sender: RTCRtpSender) -> None:
        if getattr(sender, _STARTED, True):
            raise MediaError("an RTP sender must get its direct send path before it starts")
        self.sender = sender
        self._dtls = None
        self._pt = 0
        self._rtx_pt: int | None = None
        self._ext_map = HeaderExtensionsMap()
        self._ext_head, self._ext_tail = b"", None
        self._seq = random.randint(0, 0xFFFF)
        self._rtx_seq = random.randint(0, 0xFFFF)
        self._origin = random.randint(0, 0xFFFFFFFF)
        self._history: list[bytes | None] = [None] * RTP_HISTORY_SIZE
        self.packets = self.octets = 0
        start = sender.send

        async def send(parameters: RTCRtpSendParameters) -> None:
            # aiortc calls this once the transports are up: the negotiated payload types and ids.
            self._configure(parameters)
            await start(parameters)

        sender.send = send  # type: ignore[method-assign]
        sender._retransmit = self.retransmit  # type: ignore[method-assign]

    def _configure(self, parameters: RTCRtpSendParameters) -> None:
        codec = parameters.codecs[0]
        self._pt = codec.payloadType
        for c in parameters.codecs:
            if is_rtx(c) and c.parameters.get("apt") == codec.payloadType:
                self._rtx_pt = c.payloadType
                break
        self._ext_map.configure(parameters)
        self._ext_head, self._ext_tail = extension_parts(self._ext_map, parameters.muxId)
        self._dtls = self.sender.transport

    def _path(self):  # type: ignore[no-untyped-def]
        """(protect, sendto, addr) while the viewer's DTLS-SRTP and ICE are up, else None."""
        dtls = self._dtls
        if dtls is None or dtls._state != State.CONNECTED or not self.sender._enabled:
            return None
        pair = dtls.transport._connection._nominated.get(1)
        if pair is None:
            return None
        return dtls._tx_srtp.protect, pair.protocol.transport.sendto, pair.remote_addr

    def ready(self) -> bool:
        return self._path() is not None

    def send(self, frame: Frame, timestamp: int) -> bool:
        """Send a frame's packets now with `timestamp` (relative to this sender's first frame);
        False (nothing sent) while the connection is not up."""
        path = self._path()
        if path is None:
            return False
        protect, sendto, addr = path
        sender = self.sender
        timestamp = (self._origin + timestamp) & 0xFFFFFFFF
        tail = self._ext_tail
        ext = self._ext_head if tail is None else self._ext_head + frame.abs_send_time + tail
        first = 0x90 if ext else 0x80
        pack, history, ssrc, pt = _HEADER.pack, self._history, sender._ssrc, self._pt
        payloads = frame.payloads
        last = len(payloads) - 1
        seq = self._seq
        octets = 0
        for i, payload in enumerate(payloads):
            packet = pack(first, (pt | 0x80) if i == last else pt, seq, timestamp, ssrc) + ext + payload
            history[seq % RTP_HISTORY_SIZE] = packet
            sendto(protect(packet), addr)
            octets += len(payload)
            seq = (seq + 1) & 0xFFFF
        self._seq = seq
        self.packets += len(payloads)
        self.octets += octets
        # aiortc's RTCP task reports these in its sender reports, getStats() too.
        ntp_name, rtp_name, packets_name, octets_name = _SENDER_COUNTERS
        setattr(sender, ntp_name, frame.ntp)
        setattr(sender, rtp_name, timestamp)
        setattr(sender, packets_name, self.packets)
        setattr(sender, octets_name, self.octets)
        dtls = self._dtls
        for name, add in zip(_DTLS_COUNTERS, (len(payloads), octets)):
            setattr(dtls, name, getattr(dtls, name) + add)
        return True

    async def retransmit(self, sequence_number: int) -> None:
        """A NACKed packet again from history (as RTX when negotiated), if still there."""
        packet = self._history[sequence_number % RTP_HISTORY_SIZE]
        path = self._path()
        if packet is None or path is None or struct.unpack_from("!H", packet, 2)[0] != sequence_number:
            return
        protect, sendto, addr = path
        if self._rtx_pt is not None:
            rtx = wrap_rtx(RtpPacket.parse(packet, self._ext_map), payload_type=self._rtx_pt,
                           sequence_number=self._rtx_seq, ssrc=self.sender._rtx_ssrc)
            self._rtx_seq = (self._rtx_seq + 1) & 0xFFFF
            packet = rtx.serialize(self._ext_map)
        sendto(protect(packet), addr)
