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

import inspect
import json
import sys
from typing import Annotated, Literal, Union

import msgspec

from realtime.protocol_base import CallId, ClientMessage, Code, ContactId, OfferId, RequestId, Sdp, ServerMessage
from realtime.protocol_media import (  # noqa: F401 (re-exported: the protocol is one namespace)
    SessionId, WorkerHello, MediaAnswer, MediaFailed, MediaClosed, MediaCheck,
    SipCallId, SipText, SipIncoming, SipEnded, CallFigures, CallAnalytics,
    SipProgress, SipDtmf, RecordingDone, TrunkKey, SipRegistration, SipRegistered,
    SipTrunkSpec, SipUserEntry, MediaLink, MediaCommand, MediaCommands,
)
from realtime.protocol_meetings import (  # noqa: F401
    SupportId, SupportJoin, SupportAdmit, SupportSignal, SupportChat, SupportScreen,
    SupportEnd, RoomId, SlotName, MemberId, WebinarJoin, WebinarOffer,
    WebinarAction, WebinarAsk, WebinarHand, WebinarChat, WebinarLeave, WebinarMemberView,
    WebinarQuestionView, WebinarState, WebinarAnswer, WebinarChatMessage, WebinarClosed, SupportView,
    WebinarMediaLost, WebinarListing, WebinarInvited,
    SupportChanged, SupportRelayed,
)

TargetState = Literal["available", "paused", "logged-out"]


# ---------------------------------------------------------------- client → server




class Auth(ClientMessage, tag="auth"):
    """First frame of a connection (and again later with a fresh token)."""

    token: Annotated[str, msgspec.Meta(max_length=4096)]
    # Last event sequence the client saw; the server replays what followed.
    last_seq: Annotated[int, msgspec.Meta(ge=0)] | None = None
    # A supervisor's connection follows the board; "own": the supervisor's own stream instead (their
    # softphone and the calls they monitor).
    stream: Literal["default", "own"] = "default"
    # A customer's support-session link (a "guest" token): the browser's own secret, which binds the
    # single-use link to this browser at first use (a reload sends the same one).
    guest_key: Annotated[str, msgspec.Meta(min_length=16, max_length=128)] | None = None


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


ChatText = Annotated[str, msgspec.Meta(min_length=1, max_length=2000)]


class ChatSend(ClientMessage, tag="chat-send"):
    """A chat message: to one user of the tenant (`to`: user id), to every supervisor of the tenant
    (`to_supervisors`, an agent asking for help), or, from a supervisor, to every agent of a queue
    (`queue`: a broadcast). Exactly one of the three."""

    text: ChatText
    to: int | None = None
    to_supervisors: bool = False
    queue: Annotated[str, msgspec.Meta(min_length=1, max_length=64)] | None = None


class HandRaise(ClientMessage, tag="hand-raise"):
    """An agent raises a hand for help (with the contact in progress, if any) or lowers it; a supervisor
    lowers an agent's hand (`agent_id`) when answering it."""

    on: bool
    note: Annotated[str, msgspec.Meta(max_length=500)] | None = None
    agent_id: int | None = None


class AlertAck(ClientMessage, tag="alert-ack"):
    """A supervisor acknowledges an alert on the board (recorded with who and when)."""

    alert_id: Annotated[str, msgspec.Meta(min_length=1, max_length=64)]


class CallDtmf(ClientMessage, tag="call-dtmf"):
    """Digits pressed on the keypad (RFC 4733 on a SIP leg)."""

    call_id: CallId
    digits: Annotated[str, msgspec.Meta(pattern=r"^[0-9*#A-D]{1,32}$")]


ClientFrame = Union[
    Auth, Ping, SetState, ExtendWrapUp, ForceState, AcceptOffer, RejectOffer, EndContact, CompleteWrapUp,
    PhoneOffer, PhoneClose, PhoneTest, CallDial, CallAnswer, CallHangup, CallHold, CallMute, CallDtmf, CallTransfer,
    CallConference, Monitor, MonitorStop, AlertAck, ChatSend, HandRaise, WorkerHello, MediaAnswer, MediaFailed, MediaClosed, MediaCheck, SipIncoming, SipEnded, SipDtmf, SipProgress,
    CallAnalytics, RecordingDone, SipRegistration, SipRegistered,
    SupportJoin, SupportAdmit, SupportSignal, SupportChat, SupportScreen, SupportEnd,
    WebinarJoin, WebinarOffer, WebinarAction, WebinarAsk, WebinarHand, WebinarChat, WebinarLeave,
]


# ---------------------------------------------------------------- server → client



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


class PastContact(msgspec.Struct, omit_defaults=True, kw_only=True):
    """One of a customer's latest contacts, shown with the screen pop."""

    contact_id: str
    at: float
    queue: str | None = None
    outcome: str | None = None
    wrapup_code: str | None = None
    notes: str | None = None


class CustomerBrief(msgspec.Struct, omit_defaults=True, kw_only=True):
    """A customer whose number matched the caller's (docs/customers.md)."""

    id: int
    name: str
    company: str | None = None
    # E.164 numbers.
    numbers: list[str] = []
    last_contacts: list[PastContact] = []


class ContactView(msgspec.Struct, omit_defaults=True, kw_only=True):
    id: str
    queue: str
    # The caller's number or address.
    caller: str
    caller_name: str | None = None
    priority: int = 0
    # Epoch seconds when the contact arrived.
    arrived_at: float
    # Free fields shown with the offer (given with the contact: an IVR choice, an order number).
    data: dict[str, str] = {}
    # waiting, ringing, connected, wrap-up, ended
    status: str = "waiting"
    agent_id: int | None = None
    # A connected contact the agent holds (the caller hears music).
    held: bool = False
    # Whether audio reaches the agent's softphone (a call over SIP), rather than a contact without media.
    media: bool = False
    # The screen pop: customers whose number is the caller's (none: unknown caller; several: the agent
    # chooses), the one the contact is linked to (a single match), and the CRM lookup's mapped fields.
    customers: list[CustomerBrief] = []
    customer_id: int | None = None
    crm: dict[str, str] = {}


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


class LiveCall(msgspec.Struct, omit_defaults=True, kw_only=True):
    """A caller talking with an agent, with the call's live figures (board)."""

    contact_id: str
    agent_id: int
    queue: str
    caller: str
    figures: CallFigures


class AlertView(msgspec.Struct, omit_defaults=True, kw_only=True):
    id: str
    # silence, long-call, service-level, longest-wait, paused
    kind: str
    # What it is about: a contact id, a queue name or an agent id.
    subject: str
    message: str
    value: float
    threshold: float
    raised_at: float
    cleared_at: float | None = None
    acked_by: str | None = None
    acked_at: float | None = None
    # The agent concerned (a call's or a paused agent).
    agent_id: int | None = None


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
    # A board's snapshot: the calls with callers and their live figures, and the alerts not cleared.
    live_calls: list[LiveCall] = []
    alerts: list[AlertView] = []
    # Hands raised (a board's snapshot), and the latest chat messages to or from this user.
    hands: list[HandView] = []
    chat: list[ChatMessage] = []
    # An agent's support sessions not ended.
    support: list[SupportView] = []
    # Work instructions not expired: an agent's those it has not acknowledged; a board's all, with who
    # has acknowledged.
    instructions: list[InstructionView] = []


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


class Threshold(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """Where a wallboard figure turns amber and red. For `service_level` lower is worse (amber
    below `amber`, red below `red`); for the other figures higher is worse (amber from `amber`,
    red from `red`)."""

    amber: Annotated[float, msgspec.Meta(ge=0)]
    red: Annotated[float, msgspec.Meta(ge=0)]


class WallboardView(ServerMessage, tag="wallboard"):
    """Answer to `auth` with a wallboard token: what the screen shows. `queue-stats` frames follow,
    with only these queues' figures and no agents."""

    name: str
    tenant: TenantInfo
    queues: list[QueueInfo]
    # By figure: service_level, longest_wait, waiting, asa, abandon_rate.
    thresholds: dict[str, Threshold]
    heartbeat_seconds: float
    server_time: float
    queue_stats: list[QueueStatsView] = []
    ref: RequestId | None = None


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


class DeskPhone(ServerMessage, tag="desk-phone"):
    """The agent's desk phone: registered (where from, until when) or not, and whether calls go to it."""

    registered: bool
    # "desk": offered contacts ring the desk phone; "browser": the softphone.
    phone: Literal["browser", "desk"] = "browser"
    contact: str = ""
    remote: str = ""
    expires_at: float | None = None
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


class ChatMessage(msgspec.Struct, omit_defaults=True, kw_only=True):
    id: int
    from_id: int
    from_name: str
    text: str
    sent_at: float
    # One of: the user it was sent to, all supervisors, a queue's agents.
    to: int | None = None
    to_supervisors: bool = False
    queue: str | None = None


class HandView(msgspec.Struct, omit_defaults=True, kw_only=True):
    agent_id: int
    raised_at: float
    # The contact in progress when raised (the call the supervisor may join), and what the agent wrote.
    contact_id: str | None = None
    note: str | None = None


class ChatReceived(ServerMessage, tag="chat"):
    """A chat message, on the streams of whoever it reaches (and the sender's own)."""

    message: ChatMessage
    seq: int = 0


class HandChanged(ServerMessage, tag="hand"):
    """An agent's hand went up or down (`raised` false: `lowered_by` names who lowered it)."""

    hand: HandView
    raised: bool
    lowered_by: str | None = None
    seq: int = 0


class InstructionAckView(msgspec.Struct, kw_only=True):
    agent_id: int
    at: float


class InstructionView(msgspec.Struct, omit_defaults=True, kw_only=True):
    """A supervisor's work instruction to the agents of some queues."""

    id: int
    text: str
    queues: list[str]
    # Display name of the supervisor who published it.
    published_by: str
    published_at: float
    expires_at: float | None = None
    # Boards only: the agents it was addressed to, and those who acknowledged it (when).
    agents: list[int] = []
    acks: list[InstructionAckView] = []


class InstructionPublished(ServerMessage, tag="instruction"):
    """A work instruction was published: to the streams of the agents it addresses and to the boards."""

    instruction: InstructionView
    seq: int = 0


class InstructionAcked(ServerMessage, tag="instruction-ack"):
    """An agent acknowledged a work instruction: to the boards and to the agent's own stream."""

    instruction_id: int
    agent_id: int
    at: float
    seq: int = 0


class ContentChanged(ServerMessage, tag="content-changed"):
    """A snippet or knowledge-base article was created, changed or deleted by an admin or supervisor,
    or a call script was published: desktops fetch it again (`GET /api/snippets`,
    `GET /api/kb/articles/{id}`, `GET /api/scripts/mine`) without a reload."""

    kind: Literal["snippet", "article", "script"]
    id: int
    action: Literal["created", "updated", "deleted", "published"]
    seq: int = 0


class FormChanged(ServerMessage, tag="form-changed"):
    """An admin published (or withdrew: `version` null) a queue's data form: to the boards and the queue's
    agents. Desktops fetch their contact's form again; a contact in progress keeps its version."""

    queue: str
    version: int | None = None
    seq: int = 0


class QueueSettingsView(msgspec.Struct, kw_only=True):
    name: str
    label: str
    strategy: str
    wrap_up_seconds: int
    service_level_seconds: int
    ring_timeout: float


class QueueChanged(ServerMessage, tag="queue-changed"):
    """An admin changed a queue's settings: to the boards and the queue's agents; the router already
    uses them."""

    queue: QueueSettingsView
    seq: int = 0


class LiveCallsChanged(ServerMessage, tag="live-calls"):
    """The board's calls with callers: figures of the calls measured since the last one, and the calls
    that ended (contact ids)."""

    calls: list[LiveCall] = []
    ended: list[str] = []
    seq: int = 0


class AlertChanged(ServerMessage, tag="alert"):
    """An alert was raised, acknowledged or cleared (`cleared_at`): the whole alert each time."""

    alert: AlertView
    seq: int = 0


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
    Welcome, Snapshot, AgentStateChanged, ContactOffered, ContactChanged, QueueStatsChanged, WallboardView, PhoneAnswer,
    PhoneState, PhoneCheck, CallChanged, CallDigits, MonitorChanged, LiveCallsChanged, AlertChanged, ChatReceived,
    HandChanged, MediaCommands, SupportChanged, SupportRelayed, InstructionPublished, InstructionAcked, ContentChanged,
    FormChanged, QueueChanged,
    WebinarState, WebinarAnswer, WebinarChatMessage, WebinarClosed, WebinarMediaLost, WebinarInvited,
    Ack, Pong, Error, DeskPhone
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
SUPPORT_ENDED = "support-ended"  # the support session is over (its link no longer works)

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
    return _clean_descriptions({
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "title": "unidesk websocket protocol",
        "description": "Frames on /ws. clientFrame: client to server; serverFrame: server to client.",
        "$defs": components,
        "properties": {"clientFrame": client, "serverFrame": server},
    })


def _clean_descriptions(node: object) -> object:
    """Docstring-made descriptions without their source indentation (msgspec releases differ here)."""
    if isinstance(node, dict):
        return {k: inspect.cleandoc(v) if k == "description" and isinstance(v, str) else _clean_descriptions(v)
                for k, v in node.items()}
    if isinstance(node, list):
        return [_clean_descriptions(v) for v in node]
    return node


def schema_text() -> str:
    return json.dumps(json_schema(), indent=2, sort_keys=True) + "\n"


if __name__ == "__main__":  # pragma: no cover
    sys.stdout.write(schema_text())
