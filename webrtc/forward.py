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
- The slot packetizes each frame once for all its viewers (RFC 7741 payload
  descriptors with the slot's picture id sequence for VP8, which every viewer
  receiving every frame sees go up by one; the payload as is for audio).
- A `ForwardTrack` is a viewer's outbound track. Its `DirectSender`
  (webrtc/rtp_send.py) sends each frame from the slot's fan-out, with the
  viewer's own SSRC, sequence numbers and timestamp origin and SRTP keys, no
  task or queue in between; it answers NACKs from its history, and a PLI or
  FIR from the viewer becomes a keyframe request to the publisher (RFC 4585
  §6.3.1, RFC 5104 §4.3.1), rate-limited. A viewer not connected yet (or any
  more) gets nothing.
- A video track joining late (or one that dropped frames) forwards nothing
  until the next keyframe and asks for one at once, so a late joiner sees
  video after one round trip to the publisher, not after the next periodic
  keyframe.

This reaches into private attributes of aiortc 1.16 (`_RTCRtpReceiver__decoder_queue`,
`RTCRtpSender._send_keyframe`, `RTCRtpReceiver._send_rtcp_pli`, and rtp_send.py's);
tests/webrtc/test_forward.py pins them.
"""

from __future__ import annotations

import asyncio
import logging
import queue
import random
import threading
import time
from collections.abc import Callable

from aiortc import MediaStreamTrack, RTCRtpReceiver, RTCRtpSender
from aiortc.clock import current_ntp_time
from aiortc.codecs.vpx import Vp8Encoder
from aiortc.mediastreams import MediaStreamError

from .audio import MediaError
from .rtp_send import DirectSender, Frame, Parked

log = logging.getLogger(__name__)

_DECODER_QUEUE = "_RTCRtpReceiver__decoder_queue"
# At most one keyframe request to a publisher per this many seconds, however many viewers ask.
KEYFRAME_INTERVAL = 0.3
# Nominal frame step in RTP clock units, used to keep a viewer's timestamps going up when a slot's
# publisher changes (a new speaker, a presenter who reconnected).
_STEP = {"video/vp8": 3000, "audio/opus": 960, "audio/pcmu": 160, "audio/pcma": 160}
FORWARDED_MIMES = ("video/vp8", "audio/opus", "audio/pcmu", "audio/pcma")


def is_vp8_keyframe(data: bytes) -> bool:
    """RFC 6386 §9.1: bit 0 of the frame tag is 0 for a key frame."""
    return bool(data) and not data[0] & 0x01


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
        self._picture_id = random.randint(0, (1 << 15) - 1)

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
        if self.muted or not self.tracks:
            return
        if mime == "video/vp8":
            payloads = Vp8Encoder._packetize(data, self._picture_id)
            self._picture_id = (self._picture_id + 1) % (1 << 15)
        else:
            payloads = [data]
        frame = Frame(payloads, timestamp, key, current_ntp_time())
        for track in self.tracks:
            try:
                track.offer(tap, mime, frame)
            except Exception:  # one failing viewer must not keep the frame from the others
                log.exception("forwarding a %s frame to a viewer failed", self.name)

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
    """A viewer's outbound track: a slot's encoded frames, not decoded, not re-encoded.

    aiortc's sender for it never gets a frame from `recv` (it waits there until the
    track stops): `install_packer` gives the track a `DirectSender`, which sends each
    frame from the slot's fan-out as it arrives.
    """

    def __init__(self, slot: Slot, mime: str) -> None:
        super().__init__()
        self.kind = slot.kind
        self.slot = slot
        self.mime = mime.lower()
        self.out: DirectSender | None = None
        self._parked = Parked()
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

    def offer(self, source: Tap, mime: str, frame: Frame) -> None:
        if mime != self.mime:
            self.slot.stats.wrong_codec += 1
            return
        out = self.out
        if self._need_key and not frame.key:
            if out is not None and out.ready():
                # Ask again (rate-limited): the request made on joining may have gone nowhere, e.g. when
                # the publisher's first packets had not arrived yet, or the viewer connected since.
                self.skipped += 1
                self.slot.request_keyframe()
            return
        offset = self._offset
        if source is not self._source:
            # Another publisher (or the same one again): continue our timestamps one frame on.
            offset = 0 if self._last_out is None else self._last_out + self._step - frame.timestamp
        ts = (frame.timestamp + offset) & 0xFFFFFFFF
        if out is None or not out.send(frame, ts):
            # Not connected (yet, or any more): start again at a keyframe once it is.
            self.dropped += 1
            self._need_key = self.kind == "video"
            return
        self._need_key = False
        self._source, self._offset, self._last_out = source, offset, ts
        self.sent += 1

    async def recv(self) -> None:
        if self.readyState != "live":
            raise MediaStreamError
        await self._parked.wait()

    def stop(self) -> None:
        super().stop()
        self.slot.tracks.discard(self)
        self._parked.release()


def install_packer(sender: RTCRtpSender, track: ForwardTrack) -> None:
    """Make `track`'s frames go out through `sender`'s SSRC and connection as they are (a
    `DirectSender`, installed before the sender starts), and pass its keyframe requests on."""
    track.out = DirectSender(sender)
    # RTCRtpSender._handle_rtcp_packet calls this on a PLI or FIR from the viewer.
    sender._send_keyframe = track.slot.request_keyframe  # type: ignore[method-assign]
