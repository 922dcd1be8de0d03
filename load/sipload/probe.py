"""The baseline's probe: RTP streams of the caller's pattern through sipp's RTP echo.

sipp's UAS with `-rtp_echo` sends every RTP packet it gets on its media port
back to where it came from, whichever call it belongs to. Each probe stream
sends the same 1 s pattern as the callers (20 ms PCMU packets, paced on the
monotonic clock) and times the tone onsets it gets back with the same
estimate the bot agents use, so the two delays are comparable. Loss is
packets sent in the window that never came back.
"""

from __future__ import annotations

import asyncio
import socket
import struct
import time
from typing import Any

from .common import LOUD_RMS, LOUD_SAMPLE, SILENT_FRAMES, CYCLE_FRAMES, pattern_frame


def probe_worker(pipe: Any, port: int, streams: int, seconds: float) -> None:
    pipe.send(asyncio.run(_run(port, streams, seconds)))
    pipe.close()


async def _run(port: int, streams: int, seconds: float) -> dict[str, Any]:
    import numpy as np

    from webrtc.audio import G711Decoder, G711Encoder

    enc = G711Encoder("audio/PCMU")
    payloads = [enc.encode(pattern_frame(j)) for j in range(CYCLE_FRAMES)]
    loop = asyncio.get_running_loop()
    sent = [0] * streams
    got = [0] * streams
    send_at: list[dict[int, float]] = [{} for _ in range(streams)]
    delays: list[float] = []
    quiet = [0] * streams

    class Proto(asyncio.DatagramProtocol):
        def __init__(self, i: int) -> None:
            self.i = i
            self.dec = G711Decoder("audio/PCMU")

        def datagram_received(self, data: bytes, addr: Any) -> None:
            now = time.time()
            i = self.i
            got[i] += 1
            seq = struct.unpack("!H", data[2:4])[0]
            for x in self.dec.decode(data[12:]):
                x = x.astype(np.float32)
                rms = float(np.sqrt(np.dot(x, x) / len(x)))
                if rms >= LOUD_RMS:
                    if quiet[i] >= 5 and seq in send_at[i]:
                        k = int(np.argmax(np.abs(x) >= LOUD_SAMPLE))
                        delays.append((now - (160 - k) / 8000) - (send_at[i][seq] - 0.02))
                    quiet[i] = 0
                else:
                    quiet[i] += 1

    transports = []
    for i in range(streams):
        sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        sock.bind(("127.0.0.1", 0))
        tr, _ = await loop.create_datagram_endpoint(lambda i=i: Proto(i), sock=sock)
        transports.append(tr)
    start = time.monotonic()
    n = int(seconds * 50)
    for j in range(n):
        await asyncio.sleep(max(0.0, start + j * 0.02 - time.monotonic()))
        for i, tr in enumerate(transports):
            pkt = struct.pack("!BBHII", 0x80, 0, j & 0xFFFF, j * 160, 0x9E0B0000 + i) + payloads[j % CYCLE_FRAMES]
            if j % CYCLE_FRAMES == SILENT_FRAMES:
                send_at[i][j & 0xFFFF] = time.time()
            tr.sendto(pkt, ("127.0.0.1", port))
            sent[i] += 1
    await asyncio.sleep(0.5)
    for tr in transports:
        tr.close()
    return {"sent": sum(sent), "received": sum(got), "delays": delays}
