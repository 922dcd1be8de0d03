"""Audio links between media workers: a call whose parties sit on two workers.

A caller's SIP call lives on the worker that answered it; the agent's
softphone on the worker its page was placed on. When they differ, the hub
links the two: each worker gets a *link leg*, an ordinary mixer leg whose
inbound audio is what the other worker sends and whose mix is sent to the
other worker, 20 ms at a time, over UDP. On the caller's worker the link leg
stands for the agent (it takes the agent's session id, so hold, mute,
recording and analytics commands work on it unchanged); on the agent's
worker it stands for the caller and is connected to the softphone.

Datagram (all integers big-endian):

    "UL" | version 1 | side | link id (8 bytes) | sequence (u32) | 160 PCM16 LE samples | tag (16 bytes)

`side` is the sender's (`a`: the caller's worker, `b`: the agent's); the
tag is HMAC-SHA256, truncated to 16 bytes, of everything before it under the
link's key (16 random bytes chosen by the hub, sent to both workers on their
command streams). A datagram whose link is unknown, whose tag does not match,
which comes from our own side (reflected) or whose sequence is not newer than
the last one taken is dropped and counted: nobody without the key can inject
audio, and nobody can replay a captured frame.

Each worker has one UDP socket for all its links (`UNIDESK_MEDIA_LINK_HOST`,
`UNIDESK_MEDIA_LINK_PORT`), told to the hub in `worker-hello`. A link that
hears nothing for `TIMEOUT` seconds (the other worker died, or never came)
removes itself; the hub normally removes both ends first. A link opened again
for a leg that has one already *re-points* it (the far party's softphone came
back on a third worker): the leg stays, with its routing; the id, key and
peer are the new link's.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import logging
import struct
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from .audio import FRAME_SAMPLES, MediaError
from .engine import MediaEngine
from .mixer import LegPort

log = logging.getLogger("unidesk.link")

MAGIC = b"UL\x01"
_HEAD = struct.Struct("!3sc8sI")
TAG_BYTES = 16
PAYLOAD_BYTES = FRAME_SAMPLES * 2
DATAGRAM_BYTES = _HEAD.size + PAYLOAD_BYTES + TAG_BYTES
# Seconds without a valid datagram after which a link ends itself (the other worker is gone).
TIMEOUT = 5.0
_PCM = np.dtype("<i2")


def encode(side: bytes, link_id: bytes, key: bytes, seq: int, frame: np.ndarray) -> bytes:
    """One datagram: the header, a frame (160 int16 samples) and its tag."""
    body = _HEAD.pack(MAGIC, side, link_id, seq & 0xFFFFFFFF) + frame.astype(_PCM, copy=False).tobytes()
    return body + hmac.digest(key, body, hashlib.sha256)[:TAG_BYTES]


@dataclass
class Link:
    """One end of a link: the local leg and where its mix goes."""

    link_id: bytes
    key: bytes
    side: bytes
    leg: str
    port: LegPort
    peer: tuple[str, int]
    last_seq: int = -1
    last_heard: float = 0.0
    received: int = 0
    sent: int = 0


class LinkEndpoint(asyncio.DatagramProtocol):
    """The worker's UDP socket for links, and its links by id."""

    def __init__(self, engine: MediaEngine, on_lost: Callable[[str], None] | None = None,
                 timeout: float = TIMEOUT) -> None:
        self.engine = engine
        self.on_lost = on_lost
        self.timeout = timeout
        self.links: dict[bytes, Link] = {}
        self._by_leg: dict[str, bytes] = {}
        self.transport: asyncio.DatagramTransport | None = None
        self.address = ""
        # Datagrams dropped, by why: not ours, bad tag, reflected, old sequence.
        self.refused: dict[str, int] = {}
        self._watch: asyncio.Task[None] | None = None

    async def start(self, host: str, port: int = 0) -> str:
        """Listen on host:port (0: any free port); returns the address told to the hub."""
        loop = asyncio.get_running_loop()
        self.transport, _ = await loop.create_datagram_endpoint(lambda: self, local_addr=(host, port))
        bound = self.transport.get_extra_info("sockname")
        self.address = f"{host}:{bound[1]}"
        self._watch = asyncio.create_task(self._watchdog())
        return self.address

    # ------------------------------------------------------------ commands

    def open(self, leg: str, link_id: str, key: str, side: str, peer: str) -> None:
        """A link leg named `leg`, exchanging audio with `peer` ("host:port") under `key` (hex)."""
        try:
            lid, k = bytes.fromhex(link_id), bytes.fromhex(key)
            host, _, p = peer.rpartition(":")
            address = (host.strip("[]"), int(p))
        except ValueError:
            raise MediaError(f"link {link_id!r}: bad id, key or peer address {peer!r}") from None
        if len(lid) != 8 or len(k) < 16 or side not in ("a", "b") or not host or not 0 < address[1] < 65536:
            raise MediaError(f"link {link_id!r}: an 8-byte id, a key of 16 bytes or more, side a or b, host:port")
        if lid in self.links:
            if self.links[lid].leg == leg:
                return  # said again (a replayed command)
            raise MediaError(f"link {link_id!r} already exists")
        if self.transport is None:
            raise MediaError("this worker has no link socket")
        prev = self._by_leg.get(leg)
        if prev is not None:
            # The far party moved to a third worker (a softphone that came back elsewhere): the leg, its
            # routing, hold and mute stay; only where its audio goes (and its id and key) change.
            link = self.links.pop(prev)
            link.link_id, link.key, link.side, link.peer = lid, k, side.encode(), address
            link.last_seq, link.last_heard = -1, asyncio.get_running_loop().time()
            self.links[lid] = link
            self._by_leg[leg] = lid
            log.info("link %s: leg %s re-pointed to %s (side %s; was link %s)", link_id, leg, peer, side, prev.hex())
            return
        port = self.engine.add_leg(leg)
        link = Link(lid, k, side.encode(), leg, port, address,
                    last_heard=asyncio.get_running_loop().time())
        port.deliver_to(self._sender(link))
        self.links[lid] = link
        self._by_leg[leg] = lid
        log.info("link %s: leg %s to %s (side %s)", link_id, leg, peer, side)

    def close(self, leg: str) -> bool:
        """End the link of `leg` (its leg is removed); False when there is none."""
        lid = self._by_leg.pop(leg, None)
        if lid is None:
            return False
        link = self.links.pop(lid)
        with contextlib.suppress(MediaError):
            self.engine.remove_leg(leg)
        log.info("link %s closed (leg %s; %d frames sent, %d received)", lid.hex(), leg, link.sent, link.received)
        return True

    def legs(self) -> list[str]:
        return list(self._by_leg)

    def stop(self) -> None:
        for leg in list(self._by_leg):
            self.close(leg)
        if self._watch is not None:
            self._watch.cancel()
        if self.transport is not None:
            self.transport.close()

    # ------------------------------------------------------------ audio

    def _sender(self, link: Link) -> Callable[[int, np.ndarray], None]:
        """Each mixed frame of the link leg goes to the other worker from the clock's tick itself."""
        seq = 0

        def send(tick: int, frame: np.ndarray) -> None:
            nonlocal seq
            transport = self.transport
            if transport is None:
                return
            transport.sendto(encode(link.side, link.link_id, link.key, seq, frame), link.peer)
            seq += 1
            link.sent += 1

        return send

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        if len(data) != DATAGRAM_BYTES or not data.startswith(MAGIC):
            self._refuse("not ours")
            return
        _, side, lid, seq = _HEAD.unpack_from(data)
        link = self.links.get(lid)
        if link is None:
            self._refuse("unknown link")
            return
        body = data[:-TAG_BYTES]
        if not hmac.compare_digest(hmac.digest(link.key, body, hashlib.sha256)[:TAG_BYTES], data[-TAG_BYTES:]):
            self._refuse("bad tag")
            return
        if side == link.side:
            self._refuse("reflected")
            return
        if seq <= link.last_seq:
            self._refuse("old sequence")
            return
        link.last_seq = seq
        link.received += 1
        link.last_heard = asyncio.get_running_loop().time()
        link.port.push(np.frombuffer(body, dtype=_PCM, count=FRAME_SAMPLES, offset=_HEAD.size))

    def _refuse(self, why: str) -> None:
        self.refused[why] = self.refused.get(why, 0) + 1

    async def _watchdog(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            await asyncio.sleep(self.timeout / 5)
            now = loop.time()
            for link in list(self.links.values()):
                if now - link.last_heard > self.timeout:
                    log.warning("link %s: nothing from %s:%s for %.0f s; ending it",
                                link.link_id.hex(), *link.peer, self.timeout)
                    self.close(link.leg)
                    if self.on_lost is not None:
                        self.on_lost(link.leg)
