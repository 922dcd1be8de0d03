"""Webinar rooms in the media worker: publishers' peer connections feed slots, viewers' take them.

A room has four slots (webrtc/forward.py): "camera" and "screen" (VP8), "audio"
(the presenter's microphone) and "speaker" (the promoted attendee's microphone),
both Opus (or PCMU/PCMA, if that is what the publisher sends). The presenter
publishes camera, audio and screen on one peer connection; a promoted attendee
publishes "speaker" on a second peer connection of their own; every attendee
has one receive-only peer connection taking the slots. The presenter hears the
speaker through a viewer connection that takes only "speaker".

The offer's media sections map to slots in order (`slots`), or by kind by
default: a publisher's first video is the camera, the second the screen, its
audio the microphone; a viewer's first video is the camera, the second the
screen, the first audio the presenter, the second the speaker. Nothing is
decoded or encoded here: see forward.py.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass

from aiortc import RTCBundlePolicy, RTCConfiguration, RTCIceServer, RTCPeerConnection, RTCRtpSender, RTCSessionDescription, sdp

from .audio import MediaError
from .forward import ForwardTrack, Slot, Tap, install_packer

log = logging.getLogger(__name__)

SLOTS = {"camera": "video", "screen": "video", "audio": "audio", "speaker": "audio"}
PUBLISH_DEFAULT = {"video": ["camera", "screen"], "audio": ["audio"]}
VIEW_DEFAULT = {"video": ["camera", "screen"], "audio": ["audio", "speaker"]}
# What a publisher may send: VP8 video; Opus audio from browsers, G.711 from phones and bots.
VIDEO_CODECS = ("video/VP8",)
AUDIO_CODECS = ("audio/opus", "audio/PCMU", "audio/PCMA")


def max_bundle(ice_servers: list[RTCIceServer] | None) -> RTCConfiguration:
    """aiortc's configuration for a webinar peer: host candidates only unless ICE servers are given,
    and max-bundle. With aiortc's default (balanced), a second transceiver of one kind added before
    negotiation keeps a transport of its own that BUNDLE never replaces: its media never flows."""
    return RTCConfiguration(iceServers=list(ice_servers or []), bundlePolicy=RTCBundlePolicy.MAX_BUNDLE)


def _caps(kind: str, names: tuple[str, ...]) -> list:
    caps = RTCRtpSender.getCapabilities(kind).codecs
    return [c for name in names for c in caps if c.mimeType.lower() == name.lower()]


def check_offer(offer_sdp: str, publish: bool) -> sdp.SessionDescription:
    """Parse a webinar offer and check it; MediaError naming the problem."""
    if not isinstance(offer_sdp, str) or not offer_sdp.lstrip().startswith("v=0"):
        raise MediaError("offer SDP does not start with 'v=0'")
    try:
        description = sdp.SessionDescription.parse(offer_sdp)
    except Exception as exc:  # the parser raises whatever the bad line provokes
        raise MediaError(f"offer SDP cannot be parsed: {type(exc).__name__}: {exc}") from exc
    if not description.media:
        raise MediaError("offer SDP has no media section")
    for m in description.media:
        if m.kind not in ("audio", "video"):
            raise MediaError(f"offer SDP has a {m.kind!r} media section; a webinar carries audio and video")
        if not m.ice or not m.ice.usernameFragment or not m.ice.password:
            raise MediaError(f"offer SDP {m.kind} section lacks ice-ufrag or ice-pwd")
        if not m.dtls or not m.dtls.fingerprints:
            raise MediaError(f"offer SDP {m.kind} section lacks a DTLS fingerprint")
        if not m.rtcp_mux:
            raise MediaError(f"offer SDP {m.kind} section lacks rtcp-mux")
        if publish and m.direction not in ("sendonly", "sendrecv"):
            raise MediaError(f"a publisher's {m.kind} section must send (it is {m.direction})")
        if not publish and m.direction not in ("recvonly", "inactive"):
            raise MediaError(f"an attendee receives only: its {m.kind} section is {m.direction}, not recvonly")
        names = {c.mimeType.lower() for c in m.rtp.codecs}
        wanted = VIDEO_CODECS if m.kind == "video" else AUDIO_CODECS
        if not names & {n.lower() for n in wanted}:
            raise MediaError(f"offer SDP {m.kind} section offers none of {', '.join(wanted)}")
    return description


def map_slots(description: sdp.SessionDescription, slots: list[str] | None, publish: bool) -> list[str]:
    """The slot of each media section of an offer, in order."""
    kinds = [m.kind for m in description.media]
    if slots:
        if len(slots) != len(kinds):
            raise MediaError(f"{len(slots)} slots named for {len(kinds)} media sections")
        for name, kind in zip(slots, kinds):
            if SLOTS.get(name) != kind:
                raise MediaError(f"slot {name!r} does not carry {kind}")
        out = list(slots)
    else:
        pool = {k: list(v) for k, v in (PUBLISH_DEFAULT if publish else VIEW_DEFAULT).items()}
        out = []
        for kind in kinds:
            if not pool[kind]:
                raise MediaError(f"too many {kind} sections in the offer")
            out.append(pool[kind].pop(0))
    if len(set(out)) != len(out):
        raise MediaError("an offer names a slot twice")
    return out


@dataclass
class ConnStats:
    """A webinar peer connection's counters."""

    room: str
    publish: bool
    slots: list[str]
    frames: dict[str, int]
    "Publisher: frames received per slot; viewer: frames sent per slot."
    dropped: int
    "Viewer: frames not sent while its connection was down (it restarts at a keyframe)."
    skipped: int
    "Viewer: video frames skipped while waiting for a keyframe."
    connection_state: str


class _Conn:
    def __init__(self, conn_id: str, room: Room, pc: RTCPeerConnection, publish: bool) -> None:
        self.id = conn_id
        self.room = room
        self.pc = pc
        self.publish = publish
        self.slots: list[str] = []
        self.taps: list[Tap] = []
        self.tracks: list[ForwardTrack] = []
        self.closing = False


class Room:
    def __init__(self, room_id: str) -> None:
        self.id = room_id
        self.slots = {name: Slot(name, kind) for name, kind in SLOTS.items()}
        self.conns: set[str] = set()


class WebinarMedia:
    """Webinar rooms of one media worker. `on_closed(conn_id, reason)` is told when a peer
    connection fails or is closed by the far end (not for `close()` called here)."""

    def __init__(
        self, ice_servers: list[RTCIceServer] | None = None, on_closed: Callable[[str, str], object] | None = None
    ) -> None:
        self._ice_servers = list(ice_servers or [])
        self._on_closed = on_closed
        self.rooms: dict[str, Room] = {}
        self._conns: dict[str, _Conn] = {}

    def room(self, room_id: str) -> Room:
        room = self.rooms.get(room_id)
        if room is None:
            room = self.rooms[room_id] = Room(room_id)
        return room

    async def publish(self, room_id: str, conn_id: str, offer_sdp: str, slots: list[str] | None = None) -> str:
        """Apply a publisher's offer (presenter or speaker); its media feeds the slots. Returns the answer."""
        return await self._answer(room_id, conn_id, offer_sdp, slots, publish=True)

    async def view(self, room_id: str, conn_id: str, offer_sdp: str, slots: list[str] | None = None) -> str:
        """Apply a receive-only viewer's offer; it gets the slots' media. Returns the answer."""
        return await self._answer(room_id, conn_id, offer_sdp, slots, publish=False)

    async def _answer(self, room_id: str, conn_id: str, offer_sdp: str, slots: list[str] | None, publish: bool) -> str:
        description = check_offer(offer_sdp, publish)
        names = map_slots(description, slots, publish)
        if conn_id in self._conns:
            # A new page or a reconnect: a fresh peer connection replaces the old one.
            await self.close(conn_id)
        room = self.room(room_id)
        pc = RTCPeerConnection(max_bundle(self._ice_servers))
        conn = _Conn(conn_id, room, pc, publish)
        conn.slots = names
        self._conns[conn_id] = conn
        room.conns.add(conn_id)
        try:
            transceivers = []
            for name in names:
                slot = room.slots[name]
                t = pc.addTransceiver(slot.kind, direction="recvonly" if publish else "sendonly")
                wanted = VIDEO_CODECS if slot.kind == "video" else self._audio_order(slot)
                t.setCodecPreferences(_caps(slot.kind, wanted))
                if publish:
                    conn.taps.append(Tap.install(slot, t.receiver))
                transceivers.append(t)
            await pc.setRemoteDescription(RTCSessionDescription(sdp=offer_sdp, type="offer"))
            await pc.setLocalDescription(await pc.createAnswer())
            for name, t in zip(names, transceivers):
                slot = room.slots[name]
                if publish:
                    continue
                mime = t._codecs[0].mimeType if t._codecs else ""
                track = ForwardTrack(slot, mime)
                t.sender.replaceTrack(track)
                install_packer(t.sender, track)
                conn.tracks.append(track)
            if publish:
                for tap in conn.taps:
                    tap.slot.attach(tap)
        except MediaError:
            await self.close(conn_id)
            raise
        except Exception as exc:  # aiortc raises ValueError, OperationError, InvalidStateError, ...
            await self.close(conn_id)
            raise MediaError(f"offer for {conn_id!r} rejected: {exc}") from exc

        @pc.on("connectionstatechange")
        def on_state() -> None:
            if pc.connectionState in ("failed", "closed") and not conn.closing:
                asyncio.ensure_future(self._lost(conn, pc.connectionState))

        return pc.localDescription.sdp

    @staticmethod
    def _audio_order(slot: Slot) -> tuple[str, ...]:
        # A viewer takes the codec its slot's publisher sends, when known (nothing is transcoded).
        if slot.mime:
            return (slot.mime,) + tuple(n for n in AUDIO_CODECS if n.lower() != slot.mime)
        return AUDIO_CODECS

    async def _lost(self, conn: _Conn, reason: str) -> None:
        if conn.closing:
            return
        await self.close(conn.id)
        if self._on_closed is not None:
            try:
                self._on_closed(conn.id, reason)
            except Exception:  # a failing observer must not take the worker down
                log.exception("on_closed(%r) raised", conn.id)

    def mute(self, room_id: str, slot: str, on: bool) -> None:
        """Stop (or resume) forwarding a slot to everyone: mute all silences the speakers."""
        room = self.rooms.get(room_id)
        if room is None:
            raise MediaError(f"unknown webinar room {room_id!r}")
        if slot not in room.slots:
            raise MediaError(f"unknown slot {slot!r}")
        room.slots[slot].muted = on

    async def close(self, conn_id: str) -> None:
        """Close one publisher or viewer connection; a no-op for an unknown one."""
        conn = self._conns.pop(conn_id, None)
        if conn is None:
            return
        conn.closing = True
        conn.room.conns.discard(conn_id)
        for tap in conn.taps:
            tap.slot.detach(tap)
        for track in conn.tracks:
            track.stop()
        await conn.pc.close()

    async def close_room(self, room_id: str) -> None:
        room = self.rooms.pop(room_id, None)
        if room is not None:
            for conn_id in list(room.conns):
                await self.close(conn_id)

    async def close_all(self) -> None:
        for room_id in list(self.rooms):
            await self.close_room(room_id)

    def connections(self) -> list[str]:
        return list(self._conns)

    def stats(self, conn_id: str) -> ConnStats:
        conn = self._conns.get(conn_id)
        if conn is None:
            raise MediaError(f"unknown webinar connection {conn_id!r}")
        if conn.publish:
            frames = {tap.slot.name: tap.frames for tap in conn.taps}
        else:
            frames = {t.slot.name: t.sent for t in conn.tracks}
        return ConnStats(
            room=conn.room.id, publish=conn.publish, slots=list(conn.slots), frames=frames,
            dropped=sum(t.dropped for t in conn.tracks), skipped=sum(t.skipped for t in conn.tracks),
            connection_state=conn.pc.connectionState,
        )
