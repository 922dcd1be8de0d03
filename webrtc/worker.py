"""The media worker process: a client of the hub that carries softphone audio.

It authenticates with a worker token (signed with the hub's secret), follows
its own command stream (`media-commands`), and drives a `MediaEngine`:
answering softphone offers, connecting calls, hold, mute, and the headset
check. What it learns (answers, failures, closed peers, what a microphone
sends) goes back to the hub as frames. When the hub connection drops it
reconnects and resumes its stream from the last command it saw; calls in
progress keep their audio meanwhile.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import os
import signal
import socket
import sys
from collections.abc import Sequence
from typing import Any

import msgspec
import numpy as np
import websockets

from realtime import protocol as P
from realtime.auth import TokenService, worker_principal
from realtime.config import ConfigError, Settings, load_settings
from webrtc.analytics import Analytics
from webrtc.audio import MediaError, SampleSource, Source, ToneSource, WavPlayer
from webrtc.engine import MediaEngine
from webrtc.link import LinkEndpoint
from webrtc.mixer import Input
from webrtc.recorder import RecordingResult, RecordingWriter, check_recording_id
from webrtc.tones import dominant_frequency
from webrtc.webinar import WebinarMedia

log = logging.getLogger("unidesk.worker")

CHECK_FRAMES = 25  # 0.5 s of 20 ms frames per headset-check report
TOKEN_TTL = 24 * 3600
# How often the analysed calls' figures go to the hub.
ANALYTICS_SECONDS = 1.0


class _Frame(msgspec.Struct):
    type: str
    seq: int = 0


_frame_dec = msgspec.json.Decoder(_Frame)
_cmds_dec = msgspec.json.Decoder(P.MediaCommands)


class Worker:
    def __init__(self, settings: Settings, hub_url: str, name: str, capacity: int) -> None:
        self.settings = settings
        # Several hubs (comma-separated): the worker tries the next one whenever a connection fails.
        self.urls = [u.strip().rstrip("/").replace("http://", "ws://").replace("https://", "wss://") + "/ws"
                     for u in hub_url.split(",") if u.strip()]
        assert self.urls, "at least one hub URL"
        self.url = self.urls[0]
        self.name = name
        self.capacity = capacity
        self.tokens = TokenService(settings.secret, settings.access_ttl, settings.refresh_ttl)
        self.engine = MediaEngine(on_session_closed=self._closed)
        # Webinar rooms: forwarded, never mixed (webrtc/webinar.py); their peer connections are sessions too.
        self.webinars = WebinarMedia(on_closed=self._closed)
        self.hold_music: str | None = settings.hold_music
        self.last_seq: int | None = None
        self._ws: Any = None
        self._outbox: asyncio.Queue[str] = asyncio.Queue()
        self._checks: dict[str, asyncio.Task[None]] = {}
        self._hold_player: Source | None = None
        self._ringback = ringback()
        self.sip: Any = None
        self.analytics = Analytics()
        self.engine.mixer.analytics = self.analytics
        self._loop: asyncio.AbstractEventLoop | None = None
        self.recordings = RecordingWriter(self.engine.mixer.taps, settings.recordings_dir, self._recorded)
        # Desk-phone calls placed for the hub: call id -> the engine leg they become (the agent's session id).
        self._desk_legs: dict[str, str] = {}
        self._sip_report: asyncio.Task[None] | None = None
        # Audio links to other workers (a caller here, the agent's softphone there; webrtc/link.py).
        self.links = LinkEndpoint(self.engine)

    async def start_links(self) -> None:
        """Listen for audio links from other workers (UNIDESK_MEDIA_LINK_HOST/PORT)."""
        st = self.settings
        try:
            address = await self.links.start(st.media_link_host or st.sip_host, st.media_link_port)
        except OSError as exc:
            # Calls still work whenever the caller and the agent share this worker.
            log.error("audio links to other workers are off: %s", exc)
            return
        log.info("audio links on %s", address)

    # ------------------------------------------------------------ connection

    async def start_sip(self) -> None:
        """Listen for SIP calls (UNIDESK_SIP_HOST/PORT; port 0: no SIP)."""
        if not self.settings.sip_port:
            return
        from bridge.guard import InviteGuard
        from bridge.ua import SipBridge, SipError

        st = self.settings
        guard = InviteGuard(rate=st.sip_invite_rate, burst=st.sip_invite_burst, max_pending=st.sip_max_pending)
        bridge = SipBridge(
            self.engine, host=st.sip_host, port=st.sip_port, on_event=self._sip_event,
            tls_port=st.sip_tls_port, tls_cert=st.sip_tls_cert, tls_key=st.sip_tls_key, guard=guard,
            lanes=st.sip_lanes, lane_port=st.sip_lane_port,
        )
        try:
            await bridge.start()
        except SipError as exc:
            # Softphones still work; calls between agents too. Said once, loudly.
            log.error("SIP is off: %s", exc)
            return
        self.sip = bridge
        self._sip_report = asyncio.create_task(self._report_sip())
        tls = f", TLS on port {st.sip_tls_port}" if st.sip_tls_port else ""
        lanes = f", {st.sip_lanes} lanes" if st.sip_lanes > 1 else ""
        log.info("SIP on %s:%s%s%s", st.sip_host, st.sip_port, tls, lanes)

    async def _report_sip(self, every: float = 5.0) -> None:
        """Log what became of incoming INVITEs (bridge stats) when it changed, every `every` seconds."""
        last: dict[str, int] = {}
        while True:
            await asyncio.sleep(every)
            now = self.sip.stats() if self.sip is not None else {}
            if now != last:
                log.info("SIP INVITEs so far: %s", msgspec.json.encode(now).decode())
                last = now

    def _sip_event(self, ev: object) -> None:
        from bridge.ua import CallEnded, CallProgress, DtmfReceived, IncomingCall, Registered, Registration

        match ev:
            case Registered():
                self._send({"type": "sip-registered", "user": ev.user[:256], "contact": ev.contact[:256],
                            "expires": ev.expires, "remote": ev.remote[:256]})
            case CallProgress():
                self._send({"type": "sip-progress", "call_id": ev.call_id, "state": ev.state})
            case IncomingCall() if self._ws is None:
                # No hub to route it: the caller is told at once rather than left ringing.
                assert self.sip is not None
                self.sip.reject(ev.call_id, 503, "Service Unavailable", retry_after=5)
            case IncomingCall():
                self._send({"type": "sip-incoming", "call_id": ev.call_id, "to_user": ev.to_user[:256],
                            "caller": ev.caller[:256], "caller_name": (ev.caller_name or "")[:256] or None,
                            "remote": ev.remote[:256], "transport": ev.transport[:8]})
            case CallEnded():
                # The caller is gone: recordings of the call are finished (the hub may say so too, later).
                self.recordings.stop_leg(f"sip-{ev.call_id}")
                self._desk_legs.pop(ev.call_id, None)
                self._send({"type": "sip-ended", "call_id": ev.call_id, "code": ev.code,
                            "reason": (ev.reason or "")[:256], "by": ev.by})
            case DtmfReceived():
                self._send({"type": "sip-dtmf", "call_id": ev.call_id, "digits": ev.digit})
            case Registration():
                self._send({"type": "sip-registration", "trunk": ev.trunk, "state": ev.state,
                            "code": max(0, min(ev.code, 699)), "reason": (ev.reason or "")[:256],
                            "expires": max(0, ev.expires)})

    async def run(self) -> None:
        delay = 0.2
        while True:
            try:
                await self._session()
                delay = 0.2
            except (OSError, websockets.exceptions.WebSocketException) as exc:
                # The next hub, if several are given (a hub that stopped; another serves its workers).
                self.url = self.urls[(self.urls.index(self.url) + 1) % len(self.urls)]
                log.warning("hub connection lost (%s); reconnecting to %s in %.1fs", exc, self.url, delay)
            await asyncio.sleep(delay)
            delay = min(delay * 2, 5.0)

    async def _session(self) -> None:
        token = self.tokens.issue(worker_principal(self.name), "worker", TOKEN_TTL)
        async with websockets.connect(self.url, max_size=2**22, ping_interval=20) as ws:
            self._ws = ws
            await ws.send(msgspec.json.encode({"type": "auth", "token": token, "last_seq": self.last_seq}).decode())
            welcome = msgspec.json.decode(await ws.recv())
            if welcome.get("type") != "welcome":
                raise websockets.exceptions.InvalidHandshake(f"hub refused the worker: {welcome}")
            stream_seq = welcome.get("seq")
            if self.last_seq is not None and stream_seq is not None and self.last_seq > stream_seq:
                self._start_afresh(stream_seq)
            await ws.send(
                msgspec.json.encode(
                    {"type": "worker-hello", "name": self.name, "capacity": self.capacity,
                     "sessions": self.engine.sessions() + list(self._desk_legs.values()) + self.webinars.connections(),
                     "sip": self.sip is not None, "link": self.links.address}
                ).decode()
            )
            log.info("connected to the hub at %s as %s", self.url, self.name)
            sender = asyncio.create_task(self._sender(ws))
            pinger = asyncio.create_task(self._pinger(ws))
            reporter = asyncio.create_task(self._reporter())
            try:
                async for raw in ws:
                    await self._on_frame(raw)
            finally:
                sender.cancel()
                pinger.cancel()
                reporter.cancel()
                self._ws = None

    def _start_afresh(self, stream_seq: int) -> None:
        """The hub's command stream is behind what this worker applied: the hub lost its live state
        (an embedded hub restarted). Nobody there knows the SIP calls this worker carries, so nobody
        could end them or connect them: each gets a BYE (or a refusal) now, instead of a caller left
        talking to an agent whose desktop no longer shows the call. Commands count from the hub's
        stream again. Softphone sessions stay (their pages offer again when they reconnect)."""
        log.warning("the hub lost its live state (its stream is at %s, this worker applied %s): "
                    "starting afresh, ending %d SIP calls", stream_seq, self.last_seq,
                    len(self.sip.calls()) if self.sip is not None else 0)
        self.last_seq = stream_seq
        if self.sip is not None:
            for call_id in self.sip.calls():
                self.sip.hangup(call_id, 503)
        # Reports about those calls meant nothing to the new hub either.
        while not self._outbox.empty():
            self._outbox.get_nowait()

    async def _sender(self, ws: Any) -> None:
        while True:
            data = await self._outbox.get()
            try:
                await ws.send(data)
            except Exception:
                # Not sent: keep it for the next connection (the hub may have gone for a moment).
                self._outbox.put_nowait(data)
                raise

    async def _pinger(self, ws: Any) -> None:
        while True:
            await asyncio.sleep(self.settings.heartbeat_seconds / 2)
            self._send({"type": "ping"})

    async def _reporter(self) -> None:
        """The analysed calls' figures, once a second while there are any."""
        while True:
            await asyncio.sleep(ANALYTICS_SECONDS)
            if self.analytics.calls:
                calls = self.analytics.report(self.engine.mixer.legs)
                if calls:
                    self._send({"type": "call-analytics", "calls": calls})

    def _send(self, frame: dict[str, Any]) -> None:
        self._outbox.put_nowait(msgspec.json.encode(frame).decode())

    async def _on_frame(self, raw: str | bytes) -> None:
        head = _frame_dec.decode(raw)
        if head.type == "error":
            log.warning("hub: %s", raw)
            return
        if head.type != "media-commands":
            return
        if self.last_seq is not None and head.seq and head.seq <= self.last_seq:
            return  # replayed twice
        cmds = _cmds_dec.decode(raw)
        for c in cmds.commands:
            try:
                await self._apply(c)
            except MediaError as exc:
                code = "bad-sdp" if c.op == "offer" else ("no-session" if "unknown" in str(exc) else "media-error")
                self._send(
                    {"type": "media-failed", "session_id": c.session_id, "code": code, "message": str(exc)[:1000],
                     **({"offer_id": c.offer_id} if c.offer_id else {})}
                )
            except Exception:  # one bad command must not stop the worker
                log.exception("command %s for %s failed", c.op, c.session_id)
        if head.seq:
            self.last_seq = head.seq

    # ------------------------------------------------------------ commands

    async def _apply(self, c: P.MediaCommand) -> None:
        e = self.engine
        sid = c.session_id
        match c.op:
            case "offer":
                assert c.sdp is not None and c.offer_id is not None, "an offer carries its SDP"
                answer = await e.answer(sid, c.sdp)
                codec = e.stats(sid).codec or ""
                self._send({"type": "media-answer", "session_id": sid, "offer_id": c.offer_id, "sdp": answer,
                            "codec": codec.split("/")[-1]})
            case "close":
                self._stop_check(sid)
                await e.close(sid)
            case "webinar-publish" | "webinar-view":
                assert c.sdp is not None and c.offer_id is not None and c.room, "a webinar offer carries its SDP and room"
                if c.op == "webinar-publish":
                    answer = await self.webinars.publish(c.room, sid, c.sdp, c.slots)
                else:
                    answer = await self.webinars.view(c.room, sid, c.sdp, c.slots)
                self._send({"type": "media-answer", "session_id": sid, "offer_id": c.offer_id, "sdp": answer})
            case "webinar-close":
                await self.webinars.close(sid)
            case "webinar-mute":
                # Mute all: the speaker slot goes silent for everyone (`session_id`: the slot).
                assert c.room, "webinar-mute names the room"
                # A room moved here from a worker that died is told its mute before anyone offers.
                self.webinars.room(c.room)
                self.webinars.mute(c.room, sid, bool(c.on))
            case "webinar-end":
                await self.webinars.close_room(sid)
            case "connect":
                assert c.peer is not None, "connect names the peer"
                self._need(sid)
                self._need(c.peer)
                e.connect(sid, c.peer)
            case "link":
                # One end of an audio link to another worker: the leg `sid` is the far party.
                if c.on:
                    assert c.link is not None, "link carries the link"
                    self.links.open(sid, c.link.id, c.link.key, c.link.side, c.link.peer)
                else:
                    self.links.close(sid)
            case "disconnect":
                if sid in e.mixer.legs:
                    e.mute(sid, False)
                    e.disconnect(sid)
            case "unlisten":
                # `sid` stops hearing `peer` (a consult ended; its held call stays as it is).
                if sid in e.mixer.legs:
                    e.set_inputs(sid, [i for i in e.mixer.get(sid).inputs if i.leg != c.peer])
            case "hold":
                # Call-level hold: the held party hears music, the holder hears nothing of that call.
                # (Leg-level hold would also silence a consult call the holder makes next.)
                assert c.peer is not None, "hold names the held party"
                self._need(sid)
                self._need(c.peer)
                if c.on:
                    e.set_inputs(c.peer, [Input(source=self._music())])
                    e.set_inputs(sid, [i for i in e.mixer.get(sid).inputs if i.leg != c.peer])
                else:
                    e.connect(sid, c.peer)
            case "hear":
                # Exactly these sessions and legs from now on (a conference: each hears the others).
                self._need(sid)
                for peer in c.peers or []:
                    self._need(peer)
                e.set_inputs(sid, [Input(leg=peer) for peer in c.peers or [] if peer != sid])
            case "analyse":
                # Live analytics of a caller's leg (`session_id`) talking with an agent's session (`peer`).
                if c.on:
                    assert c.peer is not None, "analyse names the agent's session"
                    self._need(sid)
                    self._need(c.peer)
                    self.analytics.add(sid, c.peer)
                else:
                    self.analytics.remove(sid)
            case "mute":
                self._need(sid)
                e.mute(sid, bool(c.on))
            case "music":
                # A waiting caller (or a held party) hears the hold music.
                self._need(sid)
                e.set_inputs(sid, [Input(source=self._music())] if c.on else [])
            case "sip-dial":
                if self.sip is None:
                    # Told as an ended call, like any failed dial: the agent's call ends with a reason.
                    self._send({"type": "sip-ended", "call_id": sid, "code": 503, "reason": "no SIP on this media worker",
                                "by": "local"})
                    return
                assert c.uri is not None, "sip-dial names whom to call"
                self.sip.dial(sid, c.uri, c.from_uri, c.trunk, leg_id=c.leg)
                if c.leg:
                    self._desk_legs[sid] = c.leg
            case "sip-trunks":
                self._set_trunks(c.trunks or [])
            case "sip-users":
                # The desk phones that may register here (credentials from the hub's store).
                if self.sip is not None:
                    from bridge.ua import SipUser

                    await self.sip.set_users([SipUser(u.user, u.realm, u.ha1) for u in c.users or []])
            case "ringback":
                # What the caller hears while the far end rings: 425 Hz, one second in five.
                self._need(sid)
                e.stop_playing(sid)
                if c.on:
                    e.play(sid, self._ringback)
            case "sip-answer" | "sip-reject" | "sip-hangup" | "sip-dtmf":
                if self.sip is None:
                    raise MediaError("this worker has no SIP")
                if c.op == "sip-answer":
                    self.sip.answer(sid)
                elif c.op == "sip-reject":
                    self.sip.reject(sid, c.code or 480, c.reason or "")
                elif c.op == "sip-hangup":
                    if sid in self.sip.calls():
                        self.sip.hangup(sid, c.code or 200)
                elif not c.digits:
                    raise MediaError("sip-dtmf needs digits")
                else:
                    self.sip.send_dtmf(sid, c.digits)
            case "tone":
                self._need(sid)
                e.stop_playing(sid)
                self._stop_check(sid)
                if c.tone_hz:
                    e.play(sid, ToneSource(float(c.tone_hz), amplitude=0.3))
                    self._checks[sid] = asyncio.create_task(self._check(sid))
            case "record":
                # The caller's leg (`sid`, left channel) and the agent's session (`peer`, right) to a file.
                rid = check_recording_id(c.recording_id)
                if not c.on:
                    self.recordings.stop(rid)
                    return
                assert c.peer is not None, "record names the agent's session"
                self._loop = asyncio.get_running_loop()
                try:
                    self._need(sid)
                    self._need(c.peer)
                    self.recordings.start(rid, sid, c.peer)
                except MediaError as exc:
                    # Told as a recording without a file, so its row says why.
                    log.error("recording %s not started: %s", rid, exc)
                    self._recorded(RecordingResult(rid, f"{rid}.ogg", 0.0, 0, str(exc)[:500]))
            case "prompt":
                # Prompts (webrtc/prompts/<name>.wav) in a row, over what the leg hears; none: stop.
                self._need(sid)
                if c.prompts:
                    from webrtc.prompts import UnknownPrompt, prompt_source

                    try:
                        e.play(sid, prompt_source(c.prompts))
                    except UnknownPrompt as exc:
                        raise MediaError(str(exc)) from None
                else:
                    e.stop_playing(sid)

    def _set_trunks(self, specs: list[P.SipTrunkSpec]) -> None:
        """Dial through (and register) these trunks; one that cannot be used is reported failed."""
        from bridge.ua import Trunk

        trunks = []
        for t in specs:
            try:
                trunks.append(Trunk(key=t.key, host=t.host, transport=t.transport, username=t.username,
                                    password=t.password, realm=t.realm, register=t.register, expires=t.expires))
            except ValueError as exc:
                log.error("%s", exc)
                self._send({"type": "sip-registration", "trunk": t.key[:100], "state": "failed", "code": 0,
                            "reason": str(exc)[:256]})
        if self.sip is None:
            for t in trunks:
                if t.register:
                    self._send({"type": "sip-registration", "trunk": t.key, "state": "failed", "code": 0,
                                "reason": "no SIP on this media worker"})
            return
        self.sip.set_trunks(trunks)

    def _music(self) -> Source:
        if self._hold_player is None:
            self._hold_player = WavPlayer(self.hold_music) if self.hold_music else hold_melody()
        return self._hold_player

    def _need(self, sid: str) -> None:
        # A softphone session or another leg (a SIP call).
        if sid not in self.engine.mixer.legs:
            raise MediaError(f"unknown session {sid!r}")

    def _stop_check(self, sid: str) -> None:
        task = self._checks.pop(sid, None)
        if task is not None:
            task.cancel()

    async def _check(self, sid: str) -> None:
        """Report what the session's microphone sends, twice a second, until stopped."""
        probe = f"check:{sid}"
        port = self.engine.add_leg(probe)
        try:
            self.engine.set_inputs(probe, [Input(leg=sid)])
            buf = np.zeros(CHECK_FRAMES * 160, dtype=np.int16)
            while True:
                for i in range(CHECK_FRAMES):
                    buf[i * 160:(i + 1) * 160] = await port.next_frame()
                x = buf.astype(np.float32) / 32768.0
                rms = float(np.sqrt(np.mean(x * x)))
                level = 20 * np.log10(rms) if rms > 1e-6 else -120.0
                freq = dominant_frequency(buf, 8000) if rms > 1e-4 else 0.0
                self._send({"type": "media-check", "session_id": sid, "frequency": float(freq), "level_db": float(level)})
        except asyncio.CancelledError:
            raise
        except Exception:  # the check stops; the call does not
            log.exception("headset check of %s failed", sid)
        finally:
            with contextlib.suppress(MediaError):
                self.engine.remove_leg(probe)

    def _closed(self, sid: str, reason: str) -> None:
        self._stop_check(sid)
        self._send({"type": "media-closed", "session_id": sid, "reason": f"the softphone connection {reason}"})

    def _recorded(self, r: RecordingResult) -> None:
        # On the recordings' writer thread: the report goes out from the event loop.
        frame = {"type": "recording-done", "recording_id": r.recording_id, "path": r.path,
                 "seconds": round(r.seconds, 3), "bytes": r.bytes, **({"error": r.error} if r.error else {})}
        loop = self._loop
        if loop is not None and not loop.is_closed():
            loop.call_soon_threadsafe(self._send, frame)

    async def close(self) -> None:
        for sid in list(self._checks):
            self._stop_check(sid)
        # Files in progress are finished before the process ends (their reports go out if the hub is there).
        await asyncio.to_thread(self.recordings.close)
        if self._sip_report is not None:
            self._sip_report.cancel()
        if self.sip is not None:
            log.info("SIP INVITEs so far: %s", msgspec.json.encode(self.sip.stats()).decode())
            await self.sip.stop()
        await self.webinars.close_all()
        self.links.stop()
        await self.engine.close_all()


def ringback() -> SampleSource:
    """Ringback as European exchanges play it: 425 Hz for one second, then four of silence, looped."""
    rate = 8000
    t = np.arange(rate) / rate
    on = 0.25 * np.sin(2 * np.pi * 425 * t)
    return SampleSource((np.concatenate([on, np.zeros(4 * rate)]) * 32767).astype(np.int16), loop=True)


def hold_melody() -> SampleSource:
    """Music on hold when no file is configured: a soft arpeggio (C5 E5 G5 E5), looped."""
    rate, note = 8000, 3200
    t = np.arange(note) / rate
    envelope = np.minimum(1.0, np.minimum(t, t[::-1]) * 20)
    notes = [523.25, 659.25, 783.99, 659.25]
    x = np.concatenate([0.2 * envelope * np.sin(2 * np.pi * f * t) for f in notes])
    return SampleSource((x * 32767).astype(np.int16), loop=True)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="unidesk media-worker", description="Carry softphone audio for a hub.")
    parser.add_argument("--hub", default=None,
                        help="hub URL, or several separated by commas, tried in turn (default http://UNIDESK_HOST:UNIDESK_PORT)")
    parser.add_argument("--name", default=None, help="worker name, unique per hub (default: host name and pid)")
    parser.add_argument("--capacity", type=int, default=None, help="sessions taken (default UNIDESK_MEDIA_CAPACITY)")
    parser.add_argument("--parent", type=int, default=None, help="exit when the process with this pid ends")
    args = parser.parse_args(argv)
    try:
        settings = load_settings(embedded=os.path.exists(".unidesk-secret") and not os.environ.get("UNIDESK_SECRET"))
    except ConfigError as exc:
        print(f"unidesk: {exc}", file=sys.stderr)
        return 2
    from realtime.logs import setup_logging

    setup_logging(settings.log_level, settings.log_json)
    logging.getLogger("aioice").setLevel(logging.WARNING)  # a line per candidate pair otherwise
    hub = args.hub or f"http://{settings.host}:{settings.port}"
    name = args.name or f"{socket.gethostname()}-{os.getpid()}"
    worker = Worker(settings, hub, name, args.capacity or settings.media_capacity)
    sys.setswitchinterval(settings.media_switch_ms / 1000)

    async def go() -> None:
        await worker.start_sip()
        await worker.start_links()
        run = asyncio.create_task(worker.run())
        # Stopped (docker stop, a service manager): close calls and finish recordings before exiting.
        asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, run.cancel)
        if args.parent:
            # Started beside a hub (`unidesk run`): end with it, however it ends.
            async def watch() -> None:
                while os.getppid() == args.parent:
                    await asyncio.sleep(0.5)
                run.cancel()

            watcher = asyncio.create_task(watch())
        try:
            with contextlib.suppress(asyncio.CancelledError):
                await run
        finally:
            if args.parent:
                watcher.cancel()
            await worker.close()

    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(go())
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
