"""The audio port between a pjsua2 call and an engine leg.

pjsua2 calls `onFrameReceived` / `onFrameRequested` on PJSIP's media clock
thread, 50 times a second per call, holding the GIL for the duration. They
must stay tiny (see ARCHITECTURE, "Why media lives in its own process").

`MediaFrame.buf` is a SWIG `std::vector<unsigned char>`: iterating it from
Python costs ~125 µs per 320-byte frame. Instead we read the vector's data
pointer (libstdc++ lays a vector out as begin, end, capacity pointers) and
view its bytes as a numpy array through a ctypes array type (`from_address`,
no foreign call, so the GIL is never released mid-callback: a release would
make the media thread queue behind the event loop for the GIL again).
`vector_access_works()` checks that layout once at import; if it ever fails
the port falls back to the slow, portable path.

Ports are lent, not freed (`PortPool`). pjsua2's `~AudioMediaPort` only
queues the port's removal from the conference bridge (carried out on the
media clock's next tick) and frees the port at once: in between, the clock
may call the freed port, and a port whose Python side is being deallocated
can be called back into (with the GIL released for the C++ destructor). A
port therefore serves one call after another for the Endpoint's life, and at
the end every port is taken off the bridge and seen gone before it is freed.
"""

from __future__ import annotations

import ctypes
import functools
import logging
import time
from types import ModuleType
from typing import Callable

import numpy as np
import pjsua2 as pj

from webrtc.audio import FRAME_SAMPLES, SILENCE
from webrtc.mixer import LegPort

log = logging.getLogger(__name__)

FRAME_BYTES = FRAME_SAMPLES * 2
_AUDIO = pj.PJMEDIA_FRAME_TYPE_AUDIO
_ptr = ctypes.c_void_p.from_address
_Samples = ctypes.c_int16 * FRAME_SAMPLES
_at = _Samples.from_address
_frombuffer = np.frombuffer
_int16 = np.int16

# pjsua_conf_port_info holds a listener array of PJSUA_MAX_CONF_PORTS; room enough for any build.
_PORT_INFO_BYTES = 16384
# Seconds a port that served a call rests before it serves another (late frames of the ended call).
PORT_REST = 2.0


def _data(vector: pj.ByteVector) -> int:
    """Address of a ByteVector's first byte (libstdc++ `_M_start`)."""
    return _ptr(int(vector.this)).value or 0


def _view(vector: pj.ByteVector) -> np.ndarray:
    """The 160 samples stored in a 320-byte ByteVector, as an int16 view (no copy)."""
    return _frombuffer(_at(_data(vector)), _int16)


def vector_access_works(pj: ModuleType = pj) -> bool:
    """Whether reading/writing ByteVector storage through its data pointer round-trips."""
    try:
        probe = np.arange(FRAME_SAMPLES, dtype=np.int16)
        vector = pj.ByteVector(probe.tobytes())
        if not np.array_equal(_view(vector), probe):
            return False
        _view(vector)[0] = 0x0707
        return list(vector)[:3] == [7, 7, 1]
    except Exception:  # any surprise in the layout means: use the portable path
        return False


def audio_format(pj: ModuleType = pj) -> pj.MediaFormatAudio:
    """8 kHz, mono, 16-bit, 20 ms: the engine's canonical frame."""
    fmt = pj.MediaFormatAudio()
    fmt.init(pj.PJMEDIA_FORMAT_PCM, 8000, 1, 20000, 16)
    return fmt


@functools.cache
def frame_port_class(pj: ModuleType) -> type:
    """`FramePort` for one pjsua2 module (each lane has its own, bridge/lanes.py)."""
    FAST = vector_access_works(pj)
    if not FAST:
        log.warning("ByteVector layout not recognised: SIP audio uses the slow copy path (~125 µs/frame)")

    class FramePort(pj.AudioMediaPort):
        """Moves one call's audio: caller → `leg.push`, `leg.pull` → caller.

        `leg` may be set later (an outbound call's leg is created when the owner's
        loop sees the answer); until then inbound frames are dropped and silence
        is sent. Create, connect and destroy it on the pjsua2 thread only.
        """

        # Class-level defaults: pjsua's media clock may still call a port whose Python side is being torn
        # down (its instance attributes already gone); it then finds no leg and does nothing.
        leg: LegPort | None = None
        _timed = False
        _out: pj.ByteVector | None = None

        def __init__(self, name: str, leg: LegPort | None = None, timed: bool = False) -> None:
            super().__init__()
            self.leg = leg
            self._out = pj.ByteVector(bytes(FRAME_BYTES))
            self._out_view = _view(self._out) if FAST else None
            self._timed = timed
            self.lend(leg)
            self.createPort(name, audio_format(pj))

        def lend(self, leg: LegPort | None) -> None:
            """Serve a new call: its leg, the cost counters from zero."""
            self.rx_ns = 0
            self.tx_ns = 0
            self.rx_frames = 0
            self.tx_frames = 0
            self.leg = leg

        # Both callbacks run on PJSIP's media clock thread.

        def onFrameReceived(self, frame: pj.MediaFrame) -> None:
            if self._timed:
                t0 = time.perf_counter_ns()
            leg = self.leg
            if leg is not None and frame.type == _AUDIO and frame.size == FRAME_BYTES:
                if FAST:
                    # A view of pjsua2's buffer: LegPort.push copies it.
                    leg.push(_frombuffer(_at(_ptr(int(frame.buf.this)).value), _int16))
                else:
                    leg.push(_frombuffer(bytes(bytearray(frame.buf)), _int16))
            if self._timed:
                self.rx_ns += time.perf_counter_ns() - t0
                self.rx_frames += 1

        def onFrameRequested(self, frame: pj.MediaFrame) -> None:
            if self._out is None:  # torn down (see the class attributes)
                return
            if self._timed:
                t0 = time.perf_counter_ns()
            leg = self.leg
            samples = SILENCE if leg is None else leg.pull()
            if FAST:
                self._out_view[:] = samples
                frame.buf = self._out  # copied into the frame by SWIG
            else:
                frame.buf = pj.ByteVector(samples.tobytes())
            frame.size = FRAME_BYTES
            frame.type = _AUDIO
            if self._timed:
                self.tx_ns += time.perf_counter_ns() - t0
                self.tx_frames += 1

    return FramePort


FramePort = frame_port_class(pj)
FAST = vector_access_works(pj)


@functools.cache
def _conf_lib(pj: ModuleType) -> ctypes.CDLL:
    """The conference-bridge functions of one pjsua2 module's own library (each lane has its own)."""
    lib = ctypes.CDLL(pj._pjsua2.__file__)  # dlopen hands back the library already loaded
    lib.pjsua_conf_remove_port.argtypes = [ctypes.c_int]
    lib.pjsua_conf_remove_port.restype = ctypes.c_int
    lib.pjsua_conf_get_port_info.argtypes = [ctypes.c_int, ctypes.c_void_p]
    lib.pjsua_conf_get_port_info.restype = ctypes.c_int
    return lib


class PortPool:
    """The FramePorts of one Endpoint (see the module's doc): `take` one for a call, `give_back` when it
    ends, `close` before libDestroy. Lives on that Endpoint's pjsua2 thread."""

    def __init__(self, pj: ModuleType = pj, timed: bool = False) -> None:
        self.timed = timed
        self._cls = frame_port_class(pj)
        self._lib = _conf_lib(pj)
        self._ports: list = []
        self._free: list = []
        self._resting: list[tuple[float, object]] = []

    def __len__(self) -> int:
        return len(self._ports)

    def take(self, leg: LegPort | None):
        if self._free:
            port = self._free.pop()
            port.lend(leg)
            return port
        port = self._cls(f"sip-port-{len(self._ports)}", leg, timed=self.timed)
        self._ports.append(port)
        return port

    def give_back(self, port, now: float) -> None:
        port.leg = None
        self._resting.append((now + PORT_REST, port))

    def tick(self, now: float) -> None:
        while self._resting and self._resting[0][0] <= now:
            self._free.append(self._resting.pop(0)[1])

    def close(self, wait: Callable[[], None], timeout: float = 2.0) -> bool:
        """Take every port off the conference bridge, wait (calling `wait`) until the media clock has
        done it, then free them. False if the bridge still held one at `timeout` (freed all the same)."""
        for port in self._ports:
            port.leg = None
        ids = [port.getPortId() for port in self._ports]
        for slot in ids:
            self._lib.pjsua_conf_remove_port(slot)
        info = ctypes.create_string_buffer(_PORT_INFO_BYTES)
        until = time.monotonic() + timeout
        left = ids
        while left and time.monotonic() < until:
            wait()
            left = [slot for slot in left if self._lib.pjsua_conf_get_port_info(slot, info) == 0]
        if left:
            log.warning("conference bridge still holds ports %s at shutdown", left)
        # Freed now: each destructor asks again to remove its (empty) slot, and is told it is not there.
        self._free.clear()
        self._resting.clear()
        self._ports.clear()
        return not left
