"""The media worker's engine: one aiortc peer connection per softphone, mixed on one clock.

A *session* is an agent's browser softphone: one RTCPeerConnection kept up
across calls, inbound audio decoded on the event loop straight into the
leg's FrameBuffer and one outbound `MixTrack` (the leg's mix, paced by the
engine's ticker). G.711 (what softphones negotiate first) skips aiortc's
per-packet paths both ways: taken off each datagram (`DirectReceiver`,
webrtc/rtp_recv.py) and sent from the tick (`DirectSender`,
webrtc/rtp_send.py); Opus goes through aiortc's sender and receiver, decoded
by `InlineDecoder` in place of aiortc's decoder thread.
Routing (who hears whom) lives in `Mixer` and is shared with non-WebRTC legs (`add_leg`), so a SIP leg plugs in the same way.

All methods run on the engine's event loop (single writer, no locks except
one per session to serialise its offer/answer exchanges).
"""

from __future__ import annotations

import asyncio
import fractions
import logging
import queue
import threading
from dataclasses import dataclass
from os import PathLike
from typing import Callable

import av
import numpy as np
from aiortc import (
    MediaStreamTrack,
    RTCIceServer,
    RTCPeerConnection,
    RTCRtpReceiver,
    RTCRtpSender,
    RTCSessionDescription,
    sdp,
)
from aiortc.clock import current_ntp_time
from aiortc.codecs import get_decoder
from aiortc.jitterbuffer import JitterBuffer
from aiortc.mediastreams import MediaStreamError

from .audio import FRAME_SAMPLES, RATE, FrameSplitter, G711Decoder, G711Encoder, MediaError, Source
from .rtp_recv import DirectReceiver
from .rtp_send import DirectSender, Frame, Parked
from .ice import adopt_remote_credentials, remote_ice_changed, restart_local_credentials, rtc_configuration
from .mixer import ClockStats, Input, Leg, LegPort, Mixer

__all__ = ["ClockStats", "Input", "LegPort", "MediaEngine", "MediaError", "SessionStats"]

log = logging.getLogger(__name__)

# The answer's codec order: G.711 first (no transcoding toward SIP, no resampling).
CODEC_PREFERENCE = ("audio/PCMU", "audio/PCMA", "audio/opus")
TIME_BASE = fractions.Fraction(1, RATE)


@dataclass
class SessionStats:
    """A session's media counters (frames are 20 ms)."""

    codec: str | None
    "Negotiated codec, e.g. 'audio/PCMU' (None before the first answer)."
    received: int
    "Inbound frames that reached the session's buffer."
    sent: int
    "Mixed frames handed to the sender."
    late: int
    "Ticks at which no inbound frame was ready (silence was used instead)."
    dropped: int
    "Inbound frames dropped because the buffer was full or latency was trimmed."
    out_dropped: int
    "Mixed frames dropped because the sender fell behind."
    ice_state: str
    "RTCPeerConnection.iceConnectionState."
    connection_state: str
    "RTCPeerConnection.connectionState."


# ---------------------------------------------------------------- SDP checks (pure)


def parse_offer(offer_sdp: str) -> sdp.SessionDescription:
    """Parse and check a softphone offer; raise MediaError naming what is wrong."""
    if not isinstance(offer_sdp, str) or not offer_sdp.strip():
        raise MediaError("offer SDP is empty")
    if not offer_sdp.lstrip().startswith("v=0"):
        raise MediaError("offer SDP does not start with 'v=0'")
    try:
        description = sdp.SessionDescription.parse(offer_sdp)
    except Exception as exc:  # the parser raises whatever the bad line provokes
        raise MediaError(f"offer SDP cannot be parsed: {type(exc).__name__}: {exc}") from exc
    if not description.media:
        raise MediaError("offer SDP has no media section")
    for m in description.media:
        if m.kind != "audio":
            raise MediaError(f"offer SDP has a {m.kind!r} media section; a softphone offers audio only")
        if not m.ice or not m.ice.usernameFragment or not m.ice.password:
            raise MediaError("offer SDP audio section lacks ice-ufrag or ice-pwd")
        if not m.dtls or not m.dtls.fingerprints:
            raise MediaError("offer SDP audio section lacks a DTLS fingerprint")
        if not m.rtcp_mux:
            raise MediaError("offer SDP audio section lacks rtcp-mux")
        names = {c.mimeType.lower() for c in m.rtp.codecs}
        if not names & {c.lower() for c in CODEC_PREFERENCE}:
            offered = ", ".join(sorted(names)) or "none"
            raise MediaError(f"offer SDP audio section offers no PCMU, PCMA or Opus (offered: {offered})")
    return description


def preferred_codecs() -> list:
    caps = RTCRtpSender.getCapabilities("audio").codecs
    return [c for name in CODEC_PREFERENCE for c in caps if c.mimeType.lower() == name.lower()]


def answered_codec(answer_sdp: str) -> tuple[str, int] | None:
    """The answer's audio codec: (MIME type, payload type)."""
    for m in sdp.SessionDescription.parse(answer_sdp).media:
        if m.kind == "audio" and m.rtp.codecs:
            return m.rtp.codecs[0].mimeType, m.rtp.codecs[0].payloadType
    return None


def is_g711(mime: str | None) -> bool:
    return bool(mime) and mime.lower() in ("audio/pcmu", "audio/pcma")  # type: ignore[union-attr]


# ---------------------------------------------------------------- tracks


class MixTrack(MediaStreamTrack):
    """A session's outbound audio: its leg's mix, one frame per engine tick.

    G.711 (what softphones negotiate first) does not go through aiortc's
    sender: `set_codec` gives the leg a sink, so the ticker itself encodes
    each mixed frame with a table lookup and sends it through the session's
    `DirectSender` (header, SRTP protect, sendto), and `recv` waits until the
    track stops. aiortc's sender would take a future, a task wake-up and
    three coroutines per frame for the same packet (webrtc/rtp_send.py).
    Anything else (Opus) is pulled by aiortc's sender through `recv`, paced
    by the ticker, and encoded by aiortc.
    """

    kind = "audio"

    def __init__(self, leg: Leg) -> None:
        super().__init__()
        self._leg = leg
        self.out: DirectSender | None = None
        "Set before the sender starts; without it every frame goes through aiortc's sender."
        self._encoder: G711Encoder | None = None
        self._first_tick: int | None = None
        self._parked = Parked()
        self.sent = 0
        self.errors = 0

    @property
    def direct(self) -> bool:
        return self._leg.sink is not None

    def set_codec(self, mime: str | None) -> None:
        if is_g711(mime) and self.out is not None:
            self._encoder = G711Encoder(mime)  # type: ignore[arg-type]
            self._leg.sink = self._send
        else:
            self._encoder = None
            self._leg.sink = None

    def _send(self, tick: int, samples: np.ndarray) -> None:
        # On the ticker, once per tick: a failure here must not stop every other leg's audio.
        if self._first_tick is None:
            self._first_tick = tick
        try:
            payload = self._encoder.encode(samples)  # type: ignore[union-attr]
            frame = Frame([payload], 0, False, current_ntp_time())
            if self.out.send(frame, (tick - self._first_tick) * FRAME_SAMPLES):  # type: ignore[union-attr]
                self.sent += 1
        except Exception as exc:
            self.errors += 1
            if self.errors == 1 or self.errors % 500 == 0:
                log.warning("failed to send a frame (%d so far): %s", self.errors, exc)

    async def recv(self) -> av.AudioFrame | av.Packet:
        if self.readyState != "live":
            raise MediaStreamError
        if self.direct:
            # Sent by the ticker (see the class doc): nothing for aiortc's sender until the end.
            await self._parked.wait()
        try:
            tick, samples = await self._leg.next_frame()
        except asyncio.CancelledError:
            if self.readyState != "live":
                raise MediaStreamError
            raise
        if self._first_tick is None:
            self._first_tick = tick
        pts = (tick - self._first_tick) * FRAME_SAMPLES
        self.sent += 1
        frame = av.AudioFrame.from_ndarray(samples.reshape(1, -1), format="s16", layout="mono")
        frame.sample_rate = RATE
        frame.pts = pts
        frame.time_base = TIME_BASE
        return frame

    def stop(self) -> None:
        super().stop()
        self._leg.sink = None
        self._parked.release()


# ---------------------------------------------------------------- inbound decoding

# aiortc 1.16's RTCRtpReceiver hands each reassembled frame to this queue, drained by a thread.
_DECODER_QUEUE = "_RTCRtpReceiver__decoder_queue"
_JITTER_BUFFER = "_RTCRtpReceiver__jitter_buffer"
# Packets aiortc's audio jitter buffer holds before it releases the first (aiortc's own default: 4).
JITTER_PREFETCH = 2


def shorten_jitter_buffer(receiver: RTCRtpReceiver, prefetch: int = JITTER_PREFETCH) -> bool:
    """Give an audio receiver a jitter buffer that starts after `prefetch` packets.

    aiortc holds 4 packets (80 ms of G.711) before it releases any, and keeps that depth: most of the
    delay a softphone call had (load/bench_sip.py). The leg's FrameBuffer absorbs the rest of the jitter.
    False (nothing changed) if aiortc's receiver has another layout."""
    current = getattr(receiver, _JITTER_BUFFER, None)
    if not isinstance(current, JitterBuffer):
        log.warning("aiortc's receiver has no %s: its audio jitter buffer keeps aiortc's depth", _JITTER_BUFFER)
        return False
    setattr(receiver, _JITTER_BUFFER, JitterBuffer(capacity=16, prefetch=prefetch))
    return True


class InlineDecoder:
    """Decodes a receiver's inbound audio on the event loop, in place of aiortc's decoder thread.

    aiortc's `RTCRtpReceiver` puts every encoded frame that leaves its jitter
    buffer (in sequence order, one per packet) on a `queue.Queue`, and one
    thread per receiver decodes it with libav and hops each decoded frame back
    to the loop (`run_coroutine_threadsafe`), where the session's pump reads
    the remote track. With dozens of sessions those threads and hops contend
    with the loop for the GIL. This object takes the queue's place on the
    receiver (`install`, before the receiver starts): `put` is called on the
    loop by `_handle_rtp_packet`, decodes right there (G.711 with a 256-entry
    table, anything else with aiortc's own decoder) and pushes canonical
    frames into the leg's buffer. Order and jitter-buffer behaviour are
    aiortc's: frames are decoded in the order the receiver emits them.

    The receiver still starts its thread: it waits in `get` until the receiver
    stops (`put(None)`), then ends the remote track as before.
    """

    def __init__(self, push: Callable[[object], None]) -> None:
        self._push = push
        self._stopped = threading.Event()
        self._mime: str | None = None
        self._g711: G711Decoder | None = None
        self._decoder = None
        self._splitter: FrameSplitter | None = None
        self.errors = 0

    @classmethod
    def install(cls, receiver: RTCRtpReceiver, push: Callable[[object], None]) -> InlineDecoder | None:
        """Put an inline decoder in `receiver`; None (aiortc's thread decodes) if aiortc's layout differs."""
        if not isinstance(getattr(receiver, _DECODER_QUEUE, None), queue.Queue):
            log.warning("aiortc's receiver has no %s: inbound audio is decoded by aiortc's thread", _DECODER_QUEUE)
            return None
        decoder = cls(push)
        setattr(receiver, _DECODER_QUEUE, decoder)
        return decoder

    # The receiver's side (on the event loop).
    def put(self, task: tuple | None) -> None:
        if task is None:
            self._stopped.set()
            return
        codec, encoded_frame = task
        mime = codec.mimeType.lower()
        push = self._push
        try:
            if mime != self._mime:
                self._mime = mime
                self._g711 = G711Decoder(mime) if mime in ("audio/pcmu", "audio/pcma") else None
                self._decoder = None
                self._splitter = FrameSplitter()
                if self._g711 is None:
                    self._decoder = get_decoder(codec)
            if self._g711 is not None:
                for samples in self._g711.decode(encoded_frame.data):
                    push(samples)
                return
            for frame in self._decoder.decode(encoded_frame):
                for samples in self._splitter.split(frame):
                    push(samples)
        except Exception as exc:  # a bad frame must not reach the receiver (it would end the transport)
            self.errors += 1
            if self.errors == 1 or self.errors % 500 == 0:
                log.warning("failed to decode %s frame (%d so far): %s", mime, self.errors, exc)

    # aiortc's thread side: nothing to do until the receiver stops.
    def get(self, block: bool = True, timeout: float | None = None) -> None:
        self._stopped.wait()
        return None


# ---------------------------------------------------------------- sessions


class _Session:
    def __init__(self, session_id: str, pc: RTCPeerConnection, leg: Leg, track: MixTrack) -> None:
        self.id = session_id
        self.pc = pc
        self.leg = leg
        self.track = track
        self.lock = asyncio.Lock()
        self.codec: str | None = None
        self.pump: asyncio.Task[None] | None = None
        self.decoder: InlineDecoder | None = None
        self.receiver: DirectReceiver | None = None
        self.closing = False


async def _pump(track: MediaStreamTrack, leg: Leg) -> None:
    """Remote track → canonical frames → the leg's inbound buffer, until the track ends.

    Only used when `InlineDecoder` cannot be installed (aiortc's receiver changed).
    """
    splitter = FrameSplitter()
    push = leg.inbound.push
    while True:
        try:
            frame = await track.recv()
        except MediaStreamError:
            return
        for samples in splitter.split(frame):
            push(samples)


class MediaEngine:
    """Terminates softphone peer connections and moves their audio through one mixer.

    `ice_servers` defaults to none at all: host candidates only, never a
    public STUN server (pass coturn's STUN/TURN in production).
    `on_session_closed(session_id, reason)` is called when a peer connection
    fails or is closed by the far end (not for `close()` called here);
    reason is the connection state, 'failed' or 'closed'.
    """

    def __init__(
        self,
        ice_servers: list[RTCIceServer] | None = None,
        on_session_closed: Callable[[str, str], object] | None = None,
    ) -> None:
        self._ice_servers = list(ice_servers or [])
        self._on_session_closed = on_session_closed
        self._sessions: dict[str, _Session] = {}
        self.mixer = Mixer()

    # ------------------------------------------------------------ signaling

    async def answer(self, session_id: str, offer_sdp: str) -> str:
        """Apply a softphone's offer and return the answer SDP (candidates included).

        The first offer for `session_id` creates its peer connection; a later
        one renegotiates the same connection (an ICE restart if the offer has
        new ICE credentials), keeping routing and counters. A bad offer raises
        MediaError and leaves an existing session as it was.
        """
        description = parse_offer(offer_sdp)
        session = self._sessions.get(session_id)
        created = session is None
        if session is None:
            session = self._create(session_id)
        async with session.lock:
            pc = session.pc
            if session.closing:
                raise MediaError(f"session {session_id!r} is closing")
            restarted = False
            try:
                if not created and remote_ice_changed(pc, description):
                    adopt_remote_credentials(pc, description)
                    restart_local_credentials(pc)
                    restarted = True
                await pc.setRemoteDescription(RTCSessionDescription(sdp=offer_sdp, type="offer"))
                await pc.setLocalDescription(await pc.createAnswer())
            except Exception as exc:  # aiortc raises ValueError, OperationError, InvalidStateError, ...
                if created:
                    await self._drop(session)
                raise MediaError(f"offer for session {session_id!r} rejected: {exc}") from exc
            answer_sdp = pc.localDescription.sdp
            if session.codec is None:
                # aiortc keeps the first negotiated send codec for the life of the sender.
                answered = answered_codec(answer_sdp)
                session.codec = answered[0] if answered else None
                session.track.set_codec(session.codec)
                if answered and is_g711(session.codec):
                    session.receiver = self._direct_receiver(session, *answered)
            if session.receiver is not None:
                session.receiver.attach()  # the connection's protocols exist once the answer is set
            if restarted:
                log.info("session %s: ICE restart", session_id)
            return answer_sdp

    def _create(self, session_id: str) -> _Session:
        if session_id in self.mixer.legs:
            raise MediaError(f"{session_id!r} is already a leg of another kind")
        pc = RTCPeerConnection(rtc_configuration(self._ice_servers))
        leg = self.mixer.add(session_id)
        track = MixTrack(leg)
        transceiver = pc.addTransceiver(track, direction="sendrecv")
        track.out = DirectSender(transceiver.sender)
        transceiver.setCodecPreferences(preferred_codecs())
        session = _Session(session_id, pc, leg, track)
        session.decoder = InlineDecoder.install(transceiver.receiver, leg.inbound.push)
        shorten_jitter_buffer(transceiver.receiver)
        self._sessions[session_id] = session

        @pc.on("track")
        def on_track(remote: MediaStreamTrack) -> None:
            if remote.kind == "audio" and session.pump is None and session.decoder is None:
                session.pump = asyncio.ensure_future(_pump(remote, leg))

        @pc.on("connectionstatechange")
        def on_state() -> None:
            state = pc.connectionState
            if state in ("failed", "closed") and not session.closing:
                asyncio.ensure_future(self._lost(session, state))

        return session

    @staticmethod
    def _direct_receiver(session: _Session, mime: str, payload_type: int) -> DirectReceiver:
        """G.711 straight from the datagram to the leg's buffer (webrtc/rtp_recv.py)."""
        decoder = G711Decoder(mime)
        push = session.leg.inbound.push

        def on_payload(payload: bytes) -> None:
            for samples in decoder.decode(payload):
                push(samples)

        return DirectReceiver(session.pc.getTransceivers()[0].receiver, payload_type, on_payload,
                              f"session {session.id}")

    async def _lost(self, session: _Session, reason: str) -> None:
        if session.closing:
            return
        await self._drop(session)
        if self._on_session_closed is not None:
            try:
                self._on_session_closed(session.id, reason)
            except Exception:  # a failing observer must not take the engine down
                log.exception("on_session_closed(%r, %r) raised", session.id, reason)

    async def _drop(self, session: _Session) -> None:
        session.closing = True
        if self._sessions.get(session.id) is session:
            del self._sessions[session.id]
        self.mixer.remove(session.id)
        session.track.stop()
        if session.pump is not None:
            session.pump.cancel()
        await session.pc.close()

    async def close(self, session_id: str) -> None:
        """Close a session's peer connection; a no-op for an unknown or already closed one."""
        session = self._sessions.get(session_id)
        if session is not None:
            await self._drop(session)

    async def close_all(self) -> None:
        """Close every session and remove every leg; the clock stops."""
        for session in list(self._sessions.values()):
            await self._drop(session)
        for leg_id in list(self.mixer.legs):
            self.mixer.remove(leg_id)
        await self.mixer.stop()

    # ------------------------------------------------------------ other legs

    def add_leg(self, leg_id: str) -> LegPort:
        """Add a non-WebRTC leg (a SIP call, a probe) and return the port its adapter drives."""
        if leg_id in self._sessions or leg_id in self.mixer.legs:
            raise MediaError(f"leg {leg_id!r} already exists")
        return LegPort(self.mixer.add(leg_id))

    def remove_leg(self, leg_id: str) -> None:
        if leg_id in self._sessions:
            raise MediaError(f"{leg_id!r} is a softphone session: close() it")
        self.mixer.remove(leg_id)

    # ------------------------------------------------------------ routing

    def set_inputs(self, session_id: str, inputs: list[Input]) -> None:
        """What `session_id` hears from now on: a sum of other legs and sources."""
        self.mixer.set_inputs(session_id, inputs)

    def connect(self, a: str, b: str) -> None:
        """A hears B and B hears A (and nothing else)."""
        self.mixer.connect(a, b)

    def disconnect(self, session_id: str) -> None:
        """`session_id` hears silence and nobody hears it any more."""
        self.mixer.disconnect(session_id)

    def mute(self, session_id: str, on: bool) -> None:
        """Everyone hearing `session_id` hears silence from it while on."""
        self.mixer.mute(session_id, on)

    def hold(self, session_id: str, moh: str | PathLike[str] | Source | None) -> None:
        """Put `session_id`'s call on hold.

        Whoever hears `session_id` hears `moh` instead (a file path, looped and
        shared; a Source; None for silence), and `session_id` itself hears
        nothing of its inputs until `unhold`. Routing is untouched, so
        unhold restores the call exactly.
        """
        self.mixer.hold(session_id, moh)

    def unhold(self, session_id: str) -> None:
        self.mixer.unhold(session_id)

    def play(self, session_id: str, source: Source | str | PathLike[str], gain: float = 1.0) -> Source:
        """Play a prompt or tone to `session_id` on top of what it hears (a path plays once)."""
        return self.mixer.play(session_id, source, gain)

    def stop_playing(self, session_id: str) -> None:
        self.mixer.stop_playing(session_id)

    # ------------------------------------------------------------ figures

    def sessions(self) -> list[str]:
        return list(self._sessions)

    def stats(self, session_id: str) -> SessionStats:
        session = self._sessions.get(session_id)
        if session is None:
            raise MediaError(f"unknown session {session_id!r}")
        buf = session.leg.inbound
        return SessionStats(
            codec=session.codec,
            received=buf.received,
            sent=session.track.sent,
            late=buf.late,
            dropped=buf.dropped,
            out_dropped=session.leg.out_dropped,
            ice_state=session.pc.iceConnectionState,
            connection_state=session.pc.connectionState,
        )

    def clock_stats(self) -> ClockStats:
        return self.mixer.clock_stats()
