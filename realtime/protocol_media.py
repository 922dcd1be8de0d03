"""Frames between the hub and its media workers: what a worker reports (its sessions, SIP calls,
analytics, recordings, registrations) and the commands it receives. Part of the wire protocol
(realtime/protocol.py holds the unions and the schema; docs/protocol.md, "Media workers")."""

from __future__ import annotations

from typing import Annotated, Literal

import msgspec

from realtime.protocol_base import CallId, ClientMessage, Code, OfferId, RequestId, Sdp, ServerMessage  # noqa: F401


# -- the media worker ---------------------------------------------------------------

SessionId = Annotated[str, msgspec.Meta(min_length=1, max_length=64)]


class WorkerHello(ClientMessage, tag="worker-hello"):
    """A media worker announces itself after `auth`; the hub places sessions on it."""

    name: Annotated[str, msgspec.Meta(min_length=1, max_length=64)]
    capacity: Annotated[int, msgspec.Meta(ge=1, le=100_000)]
    # Sessions it still carries (after reconnecting to a hub).
    sessions: list[SessionId] = []
    # Whether it has a SIP user agent (it then may register the trunks).
    sip: bool = False
    # Where it takes audio links from other workers ("host:port", UDP; webrtc/link.py); empty: none.
    link: Annotated[str, msgspec.Meta(max_length=300)] = ""


class MediaAnswer(ClientMessage, tag="media-answer"):
    session_id: SessionId
    offer_id: OfferId
    sdp: Sdp
    codec: Annotated[str, msgspec.Meta(max_length=32)] = ""


class MediaFailed(ClientMessage, tag="media-failed"):
    """The worker could not serve a command for a session (bad SDP, unknown session, …)."""

    session_id: SessionId
    code: Code
    message: Annotated[str, msgspec.Meta(max_length=1000)]
    offer_id: OfferId | None = None


class MediaClosed(ClientMessage, tag="media-closed"):
    """A session's peer connection ended (ICE failed, closed)."""

    session_id: SessionId
    reason: Annotated[str, msgspec.Meta(max_length=200)]


class MediaCheck(ClientMessage, tag="media-check"):
    """What the worker hears from a session's microphone (headset check)."""

    session_id: SessionId
    frequency: float
    level_db: float


SipCallId = Annotated[str, msgspec.Meta(min_length=1, max_length=200)]
SipText = Annotated[str, msgspec.Meta(max_length=256)]


class SipIncoming(ClientMessage, tag="sip-incoming"):
    """A SIP call reached the worker; the hub answers it into a queue or rejects it."""

    call_id: SipCallId
    to_user: SipText
    caller: SipText
    # The sender's address, "ip:port".
    remote: SipText
    caller_name: SipText | None = None
    transport: Annotated[str, msgspec.Meta(max_length=8)] = "udp"


class SipEnded(ClientMessage, tag="sip-ended"):
    """A SIP call ended (either side): the final SIP code and reason, and who ended it."""

    call_id: SipCallId
    code: Annotated[int, msgspec.Meta(ge=0, le=699)]
    reason: SipText = ""
    by: Literal["remote", "local"] = "remote"


class CallFigures(msgspec.Struct, omit_defaults=True, kw_only=True):
    """Live analytics of a caller's call with an agent, measured in the media worker (seconds so far;
    levels, missing frames and jitter over the last report)."""

    leg: SessionId
    peer: SessionId
    seconds: float
    caller_talk: float
    agent_talk: float
    overtalk: float
    # The current stretch with neither side talking, and the longest one.
    silence: float
    longest_silence: float
    caller_level_db: float | None = None
    agent_level_db: float | None = None
    # Frames that did not arrive in time (lost or late), percent, and arrival jitter at the mixer.
    caller_missing_pct: float = 0.0
    agent_missing_pct: float = 0.0
    caller_jitter_ms: float = 0.0
    agent_jitter_ms: float = 0.0


class CallAnalytics(ClientMessage, tag="call-analytics"):
    """The worker's analysed calls, about once a second."""

    calls: Annotated[list[CallFigures], msgspec.Meta(max_length=10_000)]


class SipProgress(ClientMessage, tag="sip-progress"):
    """An outbound SIP call rings at the far end, or was answered."""

    call_id: SipCallId
    state: Literal["ringing", "answered"]


class SipDtmf(ClientMessage, tag="sip-dtmf"):
    """Digits the caller pressed (RFC 4733)."""

    call_id: SipCallId
    digits: Annotated[str, msgspec.Meta(pattern=r"^[0-9*#A-D]{1,32}$")]


class RecordingDone(ClientMessage, tag="recording-done"):
    """A recording's file is finished (or failed): its name in the recordings folder, length and size."""

    recording_id: Annotated[str, msgspec.Meta(pattern=r"^[0-9a-f]{32}$")]
    path: Annotated[str, msgspec.Meta(pattern=r"^[0-9a-f]{32}\.ogg$")]
    seconds: Annotated[float, msgspec.Meta(ge=0)]
    bytes: Annotated[int, msgspec.Meta(ge=0)]
    error: Annotated[str, msgspec.Meta(max_length=500)] | None = None


TrunkKey = Annotated[str, msgspec.Meta(min_length=1, max_length=100)]


class SipRegistration(ClientMessage, tag="sip-registration"):
    """The worker's registration with a trunk changed: registered (for `expires` seconds), failed (the
    registrar's final code, or a local one such as 408 or 503), or unregistered."""

    trunk: TrunkKey
    state: Literal["registered", "failed", "unregistered"]
    code: Annotated[int, msgspec.Meta(ge=0, le=699)] = 0
    reason: SipText = ""
    expires: Annotated[int, msgspec.Meta(ge=0)] = 0


class SipRegistered(ClientMessage, tag="sip-registered"):
    """A desk phone registered with the worker, refreshed its registration, or left (`expires` 0)."""

    user: SipText
    # Where the phone takes INVITEs (its Contact URI).
    contact: SipText
    expires: Annotated[int, msgspec.Meta(ge=0, le=86400)]
    # The sender's address, "ip:port".
    remote: SipText = ""


class SipTrunkSpec(msgspec.Struct, omit_defaults=True, kw_only=True):
    """A trunk as a media worker needs it (command `sip-trunks`); the only frame that carries a password."""

    # "<tenant id>/<name>": names the trunk in `sip-dial` and `sip-registration`.
    key: str
    # Registrar and proxy, "host:port" or "host".
    host: str
    transport: Literal["udp", "tcp", "tls"] = "udp"
    username: str
    password: str
    # Digest realm of the credentials; "*": any.
    realm: str = "*"
    # Whether this worker registers the trunk (one worker does; the others only dial through it).
    register: bool = False
    # Registration lifetime asked for, seconds.
    expires: int = 300


class SipUserEntry(msgspec.Struct, kw_only=True):
    """A desk phone's credentials for the worker's registrar (never the password)."""

    user: str
    # Digest realm: the tenant's slug.
    realm: str
    # MD5(user:realm:password), hex.
    ha1: str


class MediaLink(msgspec.Struct, kw_only=True):
    """One end of an audio link between two media workers (webrtc/link.py)."""

    # 8 bytes, hex: names the link in every datagram.
    id: str
    # 16 random bytes, hex: the HMAC key of the link's datagrams (both ends, nobody else).
    key: str
    # This end's side: "a" the caller's worker, "b" the agent's.
    side: Literal["a", "b"]
    # The other worker's link address ("host:port").
    peer: str


class MediaCommand(msgspec.Struct, omit_defaults=True, kw_only=True):
    """One instruction for a media worker (see docs/protocol.md, "Media worker")."""

    op: Literal[
        "offer", "close", "connect", "disconnect", "unlisten", "hold", "mute", "tone", "music",
        "sip-answer", "sip-reject", "sip-hangup", "sip-dtmf", "sip-dial", "ringback", "prompt", "hear",
        "analyse", "record", "sip-trunks", "sip-users", "webinar-publish", "webinar-view", "webinar-close",
        "webinar-mute", "webinar-end", "link",
    ]
    session_id: str
    offer_id: str | None = None
    sdp: str | None = None
    # The other session of a connect.
    peer: str | None = None
    # Everything the session hears from now on (a conference): other sessions or SIP legs.
    peers: list[str] | None = None
    on: bool | None = None
    tone_hz: int | None = None
    # SIP: the response or BYE cause code and reason; DTMF digits to send.
    code: int | None = None
    reason: str | None = None
    digits: str | None = None
    # An outbound SIP call: whom to call and as whom.
    uri: str | None = None
    from_uri: str | None = None
    # The trunk a `sip-dial` goes through (its key): a digest challenge is answered with its credentials.
    trunk: str | None = None
    # `sip-trunks`: every trunk the worker dials through or registers (replaces the previous list).
    trunks: list[SipTrunkSpec] | None = None
    # Prompts played in a row to the leg (names of the worker's prompt files; none: stop playing).
    prompts: list[str] | None = None
    # A recording started or stopped by `record` (32 hex digits; the file is `<id>.ogg`).
    recording_id: str | None = None
    # sip-dial: the engine leg the answered call becomes (a desk phone: the agent's session id).
    leg: str | None = None
    # sip-users: every desk phone that may register with the worker (replaces the previous list).
    users: list[SipUserEntry] | None = None
    # link: the link whose end is the leg `session_id` (`on`); off: that leg's link ends.
    link: MediaLink | None = None

    # Webinars: the room of a `webinar-*` op, and the slots of an offer's media sections in order.
    room: str | None = None
    slots: list[str] | None = None


class MediaCommands(ServerMessage, tag="media-commands"):
    """Commands for the media worker this stream belongs to, in order."""

    commands: list[MediaCommand]
    seq: int = 0
