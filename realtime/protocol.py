"""The websocket wire protocol: JSON frames typed with msgspec tagged unions.

One union per direction; the tag is the frame's `type` (kebab-case). Inbound
frames reject unknown fields; outbound ones omit defaults. `docs/protocol.md`
describes each frame and `docs/protocol.schema.json` is generated from these
types (`python -m realtime.protocol > docs/protocol.schema.json`).

Every client frame may carry an `id`; the server answers it with `ack` or
`error` carrying the same value as `ref`. Server events carry `seq`, increasing
per stream, which a reconnecting client sends back in `auth.last_seq`.
"""

from __future__ import annotations

import json
import sys
from typing import Annotated, Literal, Union

import msgspec

RequestId = Annotated[str, msgspec.Meta(max_length=64)]
Code = Annotated[str, msgspec.Meta(min_length=1, max_length=64)]
TargetState = Literal["available", "paused", "logged-out"]


# ---------------------------------------------------------------- client → server


class ClientMessage(
    msgspec.Struct, tag_field="type", forbid_unknown_fields=True, kw_only=True, frozen=True
):
    id: RequestId | None = None


class Auth(ClientMessage, tag="auth"):
    """First frame of a connection (and again later with a fresh token)."""

    token: Annotated[str, msgspec.Meta(max_length=4096)]
    # Last event sequence the client saw; the server replays what followed.
    last_seq: Annotated[int, msgspec.Meta(ge=0)] | None = None
    # A supervisor's connection follows the board; "own": the supervisor's own stream instead (their
    # softphone and the calls they monitor).
    stream: Literal["default", "own"] = "default"


class Ping(ClientMessage, tag="ping"):
    """Heartbeat; the server answers `pong`."""


class SetState(ClientMessage, tag="set-state"):
    """An agent changes its own state."""

    state: TargetState
    reason: Code | None = None


class ExtendWrapUp(ClientMessage, tag="extend-wrap-up"):
    """An agent in wrap-up asks for more time."""

    seconds: Annotated[int, msgspec.Meta(ge=1, le=3600)]


class ForceState(ClientMessage, tag="force-state"):
    """A supervisor sets an agent's state."""

    agent_id: Annotated[int, msgspec.Meta(ge=1)]
    state: TargetState
    reason: Code | None = None


ContactId = Annotated[str, msgspec.Meta(min_length=1, max_length=64)]


class AcceptOffer(ClientMessage, tag="accept-offer"):
    """An agent takes the contact it is being offered."""

    contact_id: ContactId


class RejectOffer(ClientMessage, tag="reject-offer"):
    """An agent declines the contact it is being offered; it goes to the next agent."""

    contact_id: ContactId


class EndContact(ClientMessage, tag="end-contact"):
    """An agent ends its contact (hangs up); wrap-up follows."""

    contact_id: ContactId


class CompleteWrapUp(ClientMessage, tag="complete-wrap-up"):
    """An agent files the wrap-up code and notes of its contact and ends wrap-up."""

    contact_id: ContactId
    code: Code
    notes: Annotated[str, msgspec.Meta(max_length=4000)] = ""


# -- the softphone (agent) -------------------------------------------------------

Sdp = Annotated[str, msgspec.Meta(min_length=1, max_length=20_000)]
OfferId = Annotated[str, msgspec.Meta(min_length=1, max_length=64)]
CallId = Annotated[str, msgspec.Meta(min_length=1, max_length=64)]


class PhoneOffer(ClientMessage, tag="phone-offer"):
    """The agent's browser offers its softphone peer connection (audio, ICE
    gathered, no trickle); the answer comes back as `phone-answer` with the
    same `offer_id`. Sent again for an ICE restart: the session survives."""

    offer_id: OfferId
    sdp: Sdp


class PhoneClose(ClientMessage, tag="phone-close"):
    """The agent closes its softphone session (calls on it end)."""


class PhoneTest(ClientMessage, tag="phone-test"):
    """Headset check: the worker plays `tone_hz` to the agent (0 stops it) and
    reports what it hears from the agent's microphone as `phone-check`."""

    tone_hz: Annotated[int, msgspec.Meta(ge=0, le=3400)] = 1000


class CallDial(ClientMessage, tag="call-dial"):
    """Call another agent of the tenant (by username); it rings on their softphone."""

    to: Annotated[str, msgspec.Meta(min_length=1, max_length=64)]


class CallAnswer(ClientMessage, tag="call-answer"):
    call_id: CallId


class CallHangup(ClientMessage, tag="call-hangup"):
    """End (or decline, or cancel) a call."""

    call_id: CallId


class CallHold(ClientMessage, tag="call-hold"):
    """Hold (the other party hears music) or resume."""

    call_id: CallId
    on: bool


class CallMute(ClientMessage, tag="call-mute"):
    """Mute or unmute this agent's microphone toward the other party."""

    call_id: CallId
    on: bool


class CallTransfer(ClientMessage, tag="call-transfer"):
    """Transfer of the agent's caller. Blind (`to`): to a queue (by name), to an agent (by username; the
    caller waits in that agent's first queue, offered to that agent first) or to a number outside (through
    the tenant's trunk). Attended (`consult`): to the party of the agent's consult call (an agent or a
    number), once it has answered; the agent leaves. Exactly one of `to` and `consult`."""

    call_id: CallId
    to: Annotated[str, msgspec.Meta(min_length=1, max_length=64)] | None = None
    consult: CallId | None = None


class CallConference(ClientMessage, tag="call-conference"):
    """Join the agent's held caller and the party of the agent's answered consult call: all three hear
    each other. Hanging up the consult call leaves the agent with the caller again."""

    call_id: CallId
    consult: CallId


class Monitor(ClientMessage, tag="monitor"):
    """A supervisor joins an agent's call with a caller (`call_id`: the contact id) through their own
    softphone, or switches mode: `listen` (hears both, heard by none), `whisper` (heard by the agent
    only), `barge` (heard by both)."""

    call_id: CallId
    mode: Literal["listen", "whisper", "barge"]


class MonitorStop(ClientMessage, tag="monitor-stop"):
    """The supervisor leaves the call they monitor."""

    call_id: CallId


class CallDtmf(ClientMessage, tag="call-dtmf"):
    """Digits pressed on the keypad (RFC 4733 on a SIP leg)."""

    call_id: CallId
    digits: Annotated[str, msgspec.Meta(pattern=r"^[0-9*#A-D]{1,32}$")]


# -- the media worker ---------------------------------------------------------------

SessionId = Annotated[str, msgspec.Meta(min_length=1, max_length=64)]


class WorkerHello(ClientMessage, tag="worker-hello"):
    """A media worker announces itself after `auth`; the hub places sessions on it."""

    name: Annotated[str, msgspec.Meta(min_length=1, max_length=64)]
    capacity: Annotated[int, msgspec.Meta(ge=1, le=100_000)]
    # Sessions it still carries (after reconnecting to a hub).
    sessions: list[SessionId] = []


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


class SipProgress(ClientMessage, tag="sip-progress"):
    """An outbound SIP call rings at the far end, or was answered."""

    call_id: SipCallId
    state: Literal["ringing", "answered"]


class SipDtmf(ClientMessage, tag="sip-dtmf"):
    """Digits the caller pressed (RFC 4733)."""

    call_id: SipCallId
    digits: Annotated[str, msgspec.Meta(pattern=r"^[0-9*#A-D]{1,32}$")]


ClientFrame = Union[
    Auth, Ping, SetState, ExtendWrapUp, ForceState, AcceptOffer, RejectOffer, EndContact, CompleteWrapUp,
    PhoneOffer, PhoneClose, PhoneTest, CallDial, CallAnswer, CallHangup, CallHold, CallMute, CallDtmf, CallTransfer,
    CallConference, Monitor, MonitorStop, WorkerHello, MediaAnswer, MediaFailed, MediaClosed, MediaCheck, SipIncoming, SipEnded, SipDtmf, SipProgress,
]


# ---------------------------------------------------------------- server → client


class ServerMessage(msgspec.Struct, tag_field="type", omit_defaults=True, kw_only=True):
    pass


class UserInfo(msgspec.Struct, omit_defaults=True, kw_only=True):
    id: int
    username: str
    display_name: str
    roles: list[str]


class TenantInfo(msgspec.Struct, kw_only=True):
    id: int
    slug: str
    name: str


class AgentView(msgspec.Struct, omit_defaults=True, kw_only=True):
    id: int
    username: str
    display_name: str
    state: str
    # Epoch seconds when the state began.
    since: float
    reason: str | None = None
    wrap_up_until: float | None = None
    queues: list[str] = []
    # Username of whoever caused the last change, when it was not the agent.
    changed_by: str | None = None
    # The contact the agent is ringing for, talking to or wrapping up.
    contact_id: str | None = None
    # Bumped on every change of this agent.
    version: int = 0


class PauseReason(msgspec.Struct, kw_only=True):
    code: str
    label: str


class QueueInfo(msgspec.Struct, kw_only=True):
    name: str
    label: str


class ContactView(msgspec.Struct, omit_defaults=True, kw_only=True):
    id: str
    queue: str
    # The caller's number or address.
    caller: str
    caller_name: str | None = None
    priority: int = 0
    # Epoch seconds when the contact arrived.
    arrived_at: float
    # Free fields shown with the offer (the caller's record until the CRM lookup exists).
    data: dict[str, str] = {}
    # waiting, ringing, connected, wrap-up, ended
    status: str = "waiting"
    agent_id: int | None = None
    # A connected contact the agent holds (the caller hears music).
    held: bool = False
    # Whether audio reaches the agent's softphone (a call over SIP), rather than a contact without media.
    media: bool = False


class QueueStatsView(msgspec.Struct, omit_defaults=True, kw_only=True):
    """A queue's live figures; docs/acd.md defines each one."""

    queue: str
    waiting: int
    longest_wait: float
    offered: int
    answered: int
    abandoned: int
    overflowed: int
    service_level_seconds: float
    # SL1 (abandons within the threshold excluded) and SL2 (all abandons counted); None before any contact.
    service_level: float | None = None
    service_level_with_abandons: float | None = None
    asa: float | None = None
    aht: float | None = None
    abandon_rate: float | None = None
    occupancy: float | None = None
    agents_logged_in: int = 0
    agents_available: int = 0
    agents_ringing: int = 0
    agents_on_call: int = 0
    agents_wrap_up: int = 0
    # Paused agents by reason code.
    agents_paused: dict[str, int] = {}


class AgentStatsView(msgspec.Struct, omit_defaults=True, kw_only=True):
    """An agent's live figures since the interval began; docs/acd.md defines each one."""

    agent_id: int
    offered: int = 0
    answered: int = 0
    missed: int = 0
    rejected: int = 0
    talk_seconds: float = 0.0
    hold_seconds: float = 0.0
    wrap_up_seconds: float = 0.0
    idle_seconds: float = 0.0
    occupancy: float | None = None


class Welcome(ServerMessage, tag="welcome"):
    """Answer to a successful `auth`."""

    user: UserInfo
    tenant: TenantInfo
    heartbeat_seconds: float
    server_time: float
    # Stream whose `seq` this connection follows.
    stream: str
    # For the softphone's RTCPeerConnection: TURN with short-lived credentials when one is configured,
    # otherwise empty (nothing reaches out to a public STUN server).
    ice_servers: list[IceServer] = []
    # For a media worker: the last `seq` of its command stream. A worker whose `last_seq` is beyond it
    # talks to a hub that lost its live state (an embedded hub restarted): it starts afresh.
    seq: int | None = None
    ref: RequestId | None = None


class IceServer(msgspec.Struct, omit_defaults=True, kw_only=True):
    urls: list[str]
    username: str | None = None
    credential: str | None = None


class Snapshot(ServerMessage, tag="snapshot"):
    """The whole visible state; events with a higher `seq` follow."""

    seq: int
    agents: list[AgentView]
    pause_reasons: list[PauseReason]
    queues: list[QueueInfo]
    # The contacts the connection's agent holds (an agent's snapshot), or nothing.
    contacts: list[ContactView] = []
    # Live queue figures (a board's snapshot).
    queue_stats: list[QueueStatsView] = []
    agent_stats: list[AgentStatsView] = []
    wrapup_codes: list[PauseReason] = []
    # The agent's calls in progress (an agent's snapshot).
    calls: list[CallView] = []


class AgentStateChanged(ServerMessage, tag="agent-state"):
    """An agent's state changed; carries the whole agent, so applying it twice is harmless."""

    agent: AgentView
    seq: int = 0


class ContactOffered(ServerMessage, tag="contact-offered"):
    """This agent is offered a contact: ring, show the caller, accept or reject."""

    contact: ContactView
    ring_timeout: float
    seq: int = 0


class ContactChanged(ServerMessage, tag="contact-changed"):
    """The agent's contact moved on: connected, cancelled (offer void), ended, wrapped-up."""

    contact: ContactView
    # Why, when the change was not the agent's own (e.g. "answered elsewhere", "timeout", "abandoned").
    reason: str | None = None
    seq: int = 0


class QueueStatsChanged(ServerMessage, tag="queue-stats"):
    """Live figures of the queues that changed (at most once a second per queue)."""

    queues: list[QueueStatsView]
    # Figures of the agents whose figures changed.
    agents: list[AgentStatsView] = []
    seq: int = 0


class PhoneAnswer(ServerMessage, tag="phone-answer"):
    """The media worker's answer to the agent's `phone-offer` with this `offer_id`."""

    offer_id: str
    sdp: str
    codec: str = ""
    seq: int = 0


class PhoneState(ServerMessage, tag="phone-state"):
    """The softphone session: "failed" (with `reason`: bad offer, no worker),
    "lost" (its media worker went away; calls on it ended), "closed"."""

    state: Literal["failed", "lost", "closed"]
    reason: str = ""
    offer_id: str | None = None
    seq: int = 0


class PhoneCheck(ServerMessage, tag="phone-check"):
    """Headset check: the dominant frequency and level the worker hears from this agent."""

    frequency: float
    level_db: float
    seq: int = 0


class CallView(msgspec.Struct, omit_defaults=True, kw_only=True):
    id: str
    # "inbound" for the agent being called, "outbound" for the one calling.
    direction: Literal["inbound", "outbound"]
    status: Literal["ringing", "connected", "ended"]
    # The other party: username and display name.
    peer: str
    peer_name: str
    started_at: float
    answered_at: float | None = None
    ended_at: float | None = None
    # Why it ended: "hangup", "declined", "cancelled", "no-answer", "media-lost".
    end_reason: str | None = None
    # Who ended it (username), when an agent did.
    ended_by: str | None = None
    held: bool = False
    # Held by the other party.
    held_by_peer: bool = False
    muted: bool = False
    # The caller (contact id) joined to this call in a conference; "transferred" as an end reason: the
    # call's far end was handed the caller.
    conference: str | None = None


class MonitorChanged(ServerMessage, tag="monitor-changed"):
    """A supervisor joined a call, changed mode or left (`mode` null): to the supervisor, and to the
    agent when the tenant lets agents see it (setting `monitoring.notify_agent`)."""

    call_id: str
    supervisor: str
    agent_id: int
    mode: Literal["listen", "whisper", "barge"] | None = None
    # Why it ended when the supervisor did not leave: "call-ended".
    reason: str | None = None
    seq: int = 0


class CallChanged(ServerMessage, tag="call-changed"):
    """A call of this agent rang, connected, was held or muted, or ended."""

    call: CallView
    seq: int = 0


class CallDigits(ServerMessage, tag="call-digits"):
    """The other party pressed keypad digits."""

    call_id: str
    digits: str
    seq: int = 0


class MediaCommand(msgspec.Struct, omit_defaults=True, kw_only=True):
    """One instruction for a media worker (see docs/protocol.md, "Media worker")."""

    op: Literal[
        "offer", "close", "connect", "disconnect", "unlisten", "hold", "mute", "tone", "music",
        "sip-answer", "sip-reject", "sip-hangup", "sip-dtmf", "sip-dial", "ringback", "prompt", "hear",
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
    # Prompts played in a row to the leg (names of the worker's prompt files; none: stop playing).
    prompts: list[str] | None = None


class MediaCommands(ServerMessage, tag="media-commands"):
    """Commands for the media worker this stream belongs to, in order."""

    commands: list[MediaCommand]
    seq: int = 0


class Ack(ServerMessage, tag="ack"):
    ref: RequestId | None = None
    # The call a `call-dial` started.
    call_id: str | None = None


class Pong(ServerMessage, tag="pong"):
    server_time: float
    ref: RequestId | None = None


class Error(ServerMessage, tag="error"):
    """A frame could not be served; the connection stays up unless said otherwise."""

    code: str
    message: str
    ref: RequestId | None = None


ServerFrame = Union[
    Welcome, Snapshot, AgentStateChanged, ContactOffered, ContactChanged, QueueStatsChanged, PhoneAnswer,
    PhoneState, PhoneCheck, CallChanged, CallDigits, MonitorChanged, MediaCommands, Ack, Pong, Error
]

# Error codes, one per kind of failure.
BAD_FRAME = "bad-frame"  # not JSON, unknown type, wrong or unknown field
NOT_AUTHENTICATED = "not-authenticated"
UNAUTHORIZED = "unauthorized"  # a token that is forged, expired or for another use
FORBIDDEN = "forbidden"  # the role may not do this
NOT_FOUND = "not-found"  # no such thing in this tenant
ILLEGAL_TRANSITION = "illegal-transition"
UNKNOWN_REASON = "unknown-reason"
CONFLICT = "conflict"
INTERNAL = "internal"
NO_MEDIA_WORKER = "no-media-worker"  # no media worker is connected (or all are full)
NO_PHONE = "no-phone"  # the agent (or the one called) has no softphone session
BUSY = "busy"  # the one called is on another call
BAD_SDP = "bad-sdp"

client_decoder = msgspec.json.Decoder(ClientFrame)
server_decoder = msgspec.json.Decoder(ServerFrame)
encoder = msgspec.json.Encoder()


def encode(message: ServerMessage) -> bytes:
    return encoder.encode(message)


def json_schema() -> dict[str, object]:
    """JSON Schema of both directions, as published in docs/protocol.schema.json."""
    (client, server), components = msgspec.json.schema_components(
        [ClientFrame, ServerFrame], ref_template="#/$defs/{name}"
    )
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "title": "unidesk websocket protocol",
        "description": "Frames on /ws. clientFrame: client to server; serverFrame: server to client.",
        "$defs": components,
        "properties": {"clientFrame": client, "serverFrame": server},
    }


def schema_text() -> str:
    return json.dumps(json_schema(), indent=2, sort_keys=True) + "\n"


if __name__ == "__main__":  # pragma: no cover
    sys.stdout.write(schema_text())
