"""Forwarding encoded media: one stream in, one packetization per viewer out, no decoding.

aiortc decodes every received track (a thread per receiver) and encodes every
sent frame (libvpx/libopus per sender), and `MediaRelay` shares the decoded
frames, not the encodes: a webinar relayed that way costs one VP8 encode per
attendee. Here nothing is decoded or encoded:

- `Tap` takes the place of a publisher receiver's decoder queue (as
  `engine.InlineDecoder` does for softphones). aiortc hands it every complete
  encoded frame leaving the jitter buffer (VP8 partitions reassembled, Opus or
  G.711 payloads) on the event loop; the tap feeds its `Slot`.
- A `Slot` is one forwarded stream of a room ("camera", "screen", "audio",
  "speaker"): whichever publisher feeds it now, fanned out to every
  `ForwardTrack` subscribed to it.
- A `ForwardTrack` is a viewer's outbound track. It yields the encoded frame
  itself; the viewer's `RTCRtpSender` gets a `PassThroughPacker` in place of
  its encoder, which only packetizes (RFC 7741 payload descriptor with the
  viewer's own picture id for VP8; the payload as is for audio). The sender
  keeps its own SSRC, sequence numbers and timestamp origin, answers NACKs
  from its history, and a PLI or FIR from the viewer becomes a keyframe
  request to the publisher (RFC 4585 §6.3.1, RFC 5104 §4.3.1), rate-limited.
- A video track joining late (or one that dropped frames) forwards nothing
  until the next keyframe and asks for one at once, so a late joiner sees
  video after one round trip to the publisher, not after the next periodic
  keyframe.

This reaches into private attributes of aiortc 1.16 (`_RTCRtpReceiver__decoder_queue`,
`_RTCRtpSender__encoder`, `RTCRtpSender._send_keyframe`, `RTCRtpReceiver._send_rtcp_pli`);
tests/webrtc/test_forward.py pins them.
"""

from __future__ import annotations

import asyncio
import logging
import queue
import random
import threading
import time
from collections import deque
from collections.abc import Callable

from aiortc import MediaStreamTrack, RTCRtpReceiver, RTCRtpSender
from aiortc.codecs.vpx import Vp8Encoder
from aiortc.mediastreams import MediaStreamError

from .audio import MediaError

log = logging.getLogger(__name__)

_DECODER_QUEUE = "_RTCRtpReceiver__decoder_queue"
_ENCODER = "_RTCRtpSender__encoder"

# Frames a viewer may fall behind before the oldest are dropped (about a second of video).
TRACK_QUEUE = 32
# At most one keyframe request to a publisher per this many seconds, however many viewers ask.
KEYFRAME_INTERVAL = 0.3
# Nominal frame step in RTP clock units, used to keep a viewer's timestamps going up when a slot's
# publisher changes (a new speaker, a presenter who reconnected).
_STEP = {"video/vp8": 3000, "audio/opus": 960, "audio/pcmu": 160, "audio/pcma": 160}
FORWARDED_MIMES = ("video/vp8", "audio/opus", "audio/pcmu", "audio/pcma")


def is_vp8_keyframe(data: bytes) -> bool:
    """RFC 6386 §9.1: bit 0 of the frame tag is 0 for a key frame."""
    return bool(data) and not data[0] & 0x01


class Encoded:
    """One encoded frame as a viewer's sender gets it."""

    __slots__ = ("data", "timestamp", "keyframe")

    def __init__(self, data: bytes, timestamp: int, keyframe: bool) -> None:
        self.data = data
        "The frame: VP8 bitstream (no payload descriptor), or one Opus/G.711 payload."
        self.timestamp = timestamp
        "RTP timestamp relative to the viewer's first frame, in the codec's clock."
        self.keyframe = keyframe


class PassThroughPacker:
    """Stands in for a viewer sender's encoder: packetizes, never encodes."""

    def __init__(self, mime: str) -> None:
        self.mime = mime.lower()
        self._vp8 = self.mime == "video/vp8"
        self.picture_id = random.randint(0, (1 << 15) - 1)

    def pack(self, frame: Encoded) -> tuple[list[bytes], int]:
        if self._vp8:
            payloads = Vp8Encoder._packetize(frame.data, self.picture_id)
            self.picture_id = (self.picture_id + 1) % (1 << 15)
            return payloads, frame.timestamp
        return [frame.data], frame.timestamp

    def encode(self, frame: object, force_keyframe: bool = False) -> tuple[list[bytes], int]:
        raise MediaError("a forwarded track carries encoded frames only")


# ---------------------------------------------------------------- slots


class SlotStats:
    __slots__ = ("frames", "keyframes", "keyframe_requests", "wrong_codec")

    def __init__(self) -> None:
        self.frames = 0
        self.keyframes = 0
        self.keyframe_requests = 0
        self.wrong_codec = 0


class Slot:
    """One forwarded stream of a room, fed by at most one publisher at a time."""

    def __init__(self, name: str, kind: str, clock: Callable[[], float] = time.monotonic) -> None:
        assert kind in ("audio", "video"), f"a slot carries audio or video, not {kind!r}"
        self.name = name
        self.kind = kind
        self.source: Tap | None = None
        self.mime: str | None = None
        self.muted = False
        self.tracks: set[ForwardTrack] = set()
        self.stats = SlotStats()
        self._clock = clock
        self._last_request = -1e9

    def attach(self, tap: Tap) -> None:
        """`tap` feeds this slot from now on (the previous publisher's frames are ignored)."""
        self.source = tap
        self.mime = None
        self.request_keyframe(force=True)

    def detach(self, tap: Tap) -> None:
        if self.source is tap:
            self.source = None

    def feed(self, tap: Tap, mime: str, data: bytes, timestamp: int) -> None:
        if tap is not self.source:
            return
        self.mime = mime
        stats = self.stats
        stats.frames += 1
        key = self.kind == "video" and is_vp8_keyframe(data)
        if key:
            stats.keyframes += 1
        if self.muted:
            return
        for track in self.tracks:
            track.offer(tap, mime, data, timestamp, key)

    def request_keyframe(self, force: bool = False) -> None:
        """Ask the publisher for a keyframe (a viewer's PLI/FIR, a late joiner), at most every
        KEYFRAME_INTERVAL seconds."""
        if self.kind != "video" or self.source is None:
            return
        now = self._clock()
        if not force and now - self._last_request < KEYFRAME_INTERVAL:
            return
        self._last_request = now
        self.stats.keyframe_requests += 1
        self.source.request_keyframe()


class Tap:
    """Takes the place of a publisher receiver's decoder queue and feeds a slot.

    aiortc's receiver calls `put((codec, frame))` on the event loop for every
    complete frame leaving its jitter buffer, and `put(None)` when it stops;
    its decoder thread waits in `get` until then and ends the remote track.
    """

    def __init__(self, slot: Slot, receiver: RTCRtpReceiver) -> None:
        self.slot = slot
        self.receiver = receiver
        self._stopped = threading.Event()
        self.frames = 0

    @classmethod
    def install(cls, slot: Slot, receiver: RTCRtpReceiver) -> Tap:
        """Put a tap in `receiver` (before the receiver starts); MediaError if aiortc's layout differs."""
        if not isinstance(getattr(receiver, _DECODER_QUEUE, None), queue.Queue):
            raise MediaError(f"aiortc's receiver has no {_DECODER_QUEUE}: forwarding is not possible")
        tap = cls(slot, receiver)
        setattr(receiver, _DECODER_QUEUE, tap)
        return tap

    def put(self, task: tuple | None) -> None:
        if task is None:
            self._stopped.set()
            self.slot.detach(self)
            return
        codec, frame = task
        self.frames += 1
        try:
            self.slot.feed(self, codec.mimeType.lower(), frame.data, frame.timestamp)
        except Exception:  # a failing viewer must never reach the receiver (it would end the transport)
            log.exception("forwarding a %s frame failed", self.slot.name)

    def get(self, block: bool = True, timeout: float | None = None) -> None:
        self._stopped.wait()
        return None

    def request_keyframe(self) -> None:
        # A PLI to every SSRC the publisher sent from lately (one, unless it restarted).
        for source in self.receiver.getSynchronizationSources():
            asyncio.ensure_future(self.receiver._send_rtcp_pli(source.source))


# ---------------------------------------------------------------- viewers


class ForwardTrack(MediaStreamTrack):
    """A viewer's outbound track: a slot's encoded frames, not decoded, not re-encoded."""

    def __init__(self, slot: Slot, mime: str, queue_size: int = TRACK_QUEUE) -> None:
        super().__init__()
        self.kind = slot.kind
        self.slot = slot
        self.mime = mime.lower()
        self._frames: deque[Encoded] = deque()
        self._size = queue_size
        self._waiter: asyncio.Future[None] | None = None
        self._need_key = slot.kind == "video"
        self._source: Tap | None = None
        self._offset = 0
        self._last_out: int | None = None
        self._step = _STEP.get(self.mime, 960)
        self.sent = 0
        self.dropped = 0
        self.skipped = 0
        slot.tracks.add(self)
        slot.request_keyframe(force=True)

    def offer(self, source: Tap, mime: str, data: bytes, timestamp: int, key: bool) -> None:
        if mime != self.mime:
            self.slot.stats.wrong_codec += 1
            return
        if self._need_key:
            if not key:
                # Ask again (rate-limited): the request made on joining may have gone nowhere, e.g. when the
                # publisher's first packets had not arrived yet.
                self.skipped += 1
                self.slot.request_keyframe()
                return
            self._need_key = False
        if source is not self._source:
            # Another publisher (or the same one again): continue our timestamps one frame on.
            self._source = source
            self._offset = 0 if self._last_out is None else self._last_out + self._step - timestamp
        ts = (timestamp + self._offset) & 0xFFFFFFFF
        self._last_out = ts
        frames = self._frames
        if len(frames) >= self._size:
            # The viewer's sender fell behind: what is queued is stale; start again at a keyframe.
            self.dropped += len(frames)
            frames.clear()
            if self.kind == "video":
                if not key:
                    self._need_key = True
                    self.slot.request_keyframe()
                    return
        frames.append(Encoded(data, ts, key))
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    async def recv(self) -> Encoded:
        while not self._frames:
            if self.readyState != "live":
                raise MediaStreamError
            self._waiter = asyncio.get_running_loop().create_future()
            try:
                await self._waiter
            finally:
                self._waiter = None
        if self.readyState != "live":
            raise MediaStreamError
        self.sent += 1
        return self._frames.popleft()

    def stop(self) -> None:
        super().stop()
        self.slot.tracks.discard(self)
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)


def install_packer(sender: RTCRtpSender, track: ForwardTrack) -> None:
    """Make `sender` packetize `track`'s frames as they are, and pass its keyframe requests on."""
    if not hasattr(sender, _ENCODER):
        raise MediaError(f"aiortc's sender has no {_ENCODER}: forwarding is not possible")
    setattr(sender, _ENCODER, PassThroughPacker(track.mime))
    # RTCRtpSender._handle_rtcp_packet calls this on a PLI or FIR from the viewer.
    sender._send_keyframe = track.slot.request_keyframe  # type: ignore[method-assign]
