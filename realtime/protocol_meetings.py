"""Frames of meetings: 1:1 video support sessions with customers and webinars. Part of the wire
protocol (realtime/protocol.py holds the unions and the schema; docs/protocol.md, docs/meetings.md)."""

from __future__ import annotations

from typing import Annotated, Literal

import msgspec

from realtime.protocol_base import CallId, ClientMessage, Code, OfferId, RequestId, Sdp, ServerMessage  # noqa: F401


# Support sessions (1:1 video with a customer; realtime/support.py). `session_id` names the room; the
# guest's token is scoped to one room, so a guest may name only that one.
SupportId = Annotated[str, msgspec.Meta(min_length=1, max_length=64)]


class SupportJoin(ClientMessage, tag="support-join"):
    """The guest, done testing camera and microphone, asks to come in (the lobby)."""

    session_id: SupportId
    name: Annotated[str, msgspec.Meta(max_length=80)] = ""


class SupportAdmit(ClientMessage, tag="support-admit"):
    """The agent lets the waiting guest in (`admit` true) or turns them away (false: the room ends)."""

    session_id: SupportId
    admit: bool = True


class SupportSignal(ClientMessage, tag="support-signal"):
    """SDP for the other side's RTCPeerConnection (ICE gathered, no trickle); relayed as is."""

    session_id: SupportId
    sdp_type: Literal["offer", "answer"]
    sdp: Sdp


class SupportChat(ClientMessage, tag="support-chat"):
    session_id: SupportId
    text: Annotated[str, msgspec.Meta(min_length=1, max_length=2000)]


class SupportScreen(ClientMessage, tag="support-screen"):
    """The sender's video now shows its screen (`on`) or its camera again."""

    session_id: SupportId
    on: bool


class SupportEnd(ClientMessage, tag="support-end"):
    """Either side ends the session, for both."""

    session_id: SupportId


# -- webinars (realtime/webinars.py, docs/meetings.md) -------------------------------

RoomId = Annotated[str, msgspec.Meta(pattern=r"^[0-9a-f]{8,32}$")]
SlotName = Literal["camera", "screen", "audio", "speaker"]
MemberId = Annotated[str, msgspec.Meta(pattern=r"^[ug][0-9]{1,18}$")]


class WebinarJoin(ClientMessage, tag="webinar-join"):
    """Enter a webinar room: a user with an access token, or a guest with the room's invitation token.
    The connection then follows the member's own webinar stream (`webinar-state`, `webinar-answer`, ...)."""

    room: RoomId


class WebinarOffer(ClientMessage, tag="webinar-offer"):
    """A member's peer connection for the room (ICE gathered, no trickle): receive-only (`publish`
    false: attendees, and the presenter hearing the speaker) or publishing (the presenter: camera,
    audio, screen; a promoted speaker: speaker). `slots` names each media section's slot in order
    (default by kind). The answer comes back as `webinar-answer` with the same `offer_id`."""

    offer_id: OfferId
    sdp: Sdp
    publish: bool = False
    slots: Annotated[list[SlotName], msgspec.Meta(max_length=4)] | None = None


class WebinarAction(ClientMessage, tag="webinar-action"):
    """A moderator action (the presenter only): start a scheduled webinar (at or after its time),
    promote or demote an attendee (`member`), mute-all and
    unmute-all (the speakers), remove an attendee, lock or unlock the room, mark a question answered
    (`question`), end the webinar."""

    action: Literal["start", "promote", "demote", "mute-all", "unmute-all", "remove", "lock", "unlock", "answer", "end"]
    member: MemberId | None = None
    question: Annotated[int, msgspec.Meta(ge=1)] | None = None


class WebinarAsk(ClientMessage, tag="webinar-ask"):
    """Ask the presenter a question (listed for everyone until marked answered)."""

    text: Annotated[str, msgspec.Meta(min_length=1, max_length=1000)]


class WebinarHand(ClientMessage, tag="webinar-hand"):
    """Raise or lower a hand."""

    on: bool


class WebinarChat(ClientMessage, tag="webinar-chat"):
    """A chat message to everyone in the room."""

    text: Annotated[str, msgspec.Meta(min_length=1, max_length=2000)]


class WebinarLeave(ClientMessage, tag="webinar-leave"):
    """Leave the room (closing the connection does the same)."""


class WebinarMemberView(msgspec.Struct, omit_defaults=True, kw_only=True):
    id: str
    name: str
    # presenter, speaker, attendee
    role: str
    guest: bool = False
    hand_since: float | None = None


class WebinarQuestionView(msgspec.Struct, omit_defaults=True, kw_only=True):
    id: int
    name: str
    text: str
    asked_at: float
    answered: bool = False


class WebinarState(ServerMessage, tag="webinar-state"):
    """The room as its members see it, after every change: who is in, roles, hands, questions, the lock
    and the live attendee count (everyone but the presenter). `you`: this member's id."""

    room: str
    title: str
    you: str
    role: str
    attendees: int
    members: list[WebinarMemberView]
    questions: list[WebinarQuestionView] = []
    locked: bool = False
    speakers_muted: bool = False
    # A scheduled webinar: when it starts, and whether the presenter started it (until then the
    # presenter cannot publish and attendees wait).
    starts_at: float = 0.0
    started: bool = True
    seq: int = 0


class WebinarAnswer(ServerMessage, tag="webinar-answer"):
    """The media worker's answer to this member's `webinar-offer` with this `offer_id`."""

    offer_id: str
    sdp: str
    seq: int = 0


class WebinarChatMessage(ServerMessage, tag="webinar-chat-message"):
    """A chat message in the room."""

    member: str
    name: str
    text: str
    sent_at: float
    seq: int = 0


class WebinarClosed(ServerMessage, tag="webinar-closed"):
    """This member is out of the room: "removed" by the presenter, the webinar "ended", or its media
    "failed" (`message` says why)."""

    reason: Literal["removed", "ended", "failed", "left"]
    message: str = ""
    seq: int = 0


class WebinarMediaLost(ServerMessage, tag="webinar-media-lost"):
    """The media worker carrying the room went away: every peer connection of the room is gone.
    `moved`: the room continues on another worker (offer again: publish, view); otherwise the webinar
    ended (`webinar-closed` follows)."""

    room: str
    moved: bool
    message: str = ""
    seq: int = 0


class WebinarListing(msgspec.Struct, omit_defaults=True, kw_only=True):
    """A webinar its reader may join (GET /api/webinars, `webinar-invited`)."""

    room: str
    title: str
    presenter: str
    starts_at: float
    minutes: int
    # Members may come in from `opens_at` (a scheduled webinar opens 10 minutes before its start).
    opens_at: float
    # scheduled (not started yet), live, ended
    state: str
    # The reader presents it.
    presenting: bool = False


class WebinarInvited(ServerMessage, tag="webinar-invited"):
    """To each agent of a webinar's audience (their agent stream) when it is scheduled and when it
    starts: the desktop lists it with a join button once it opens."""

    webinar: WebinarListing
    seq: int = 0


class SupportView(msgspec.Struct, omit_defaults=True, kw_only=True):
    id: str
    # waiting (no guest yet), lobby, live, ended
    phase: str
    contact_id: str | None = None
    created_at: float
    expires_at: float
    guest_name: str = ""
    admitted_at: float | None = None
    ended_at: float | None = None
    end_reason: str | None = None
    # Bumped each time the guest (re)joins a live session: the agent offers a fresh connection.
    guest_epoch: int = 0


class SupportChanged(ServerMessage, tag="support-changed"):
    """A support session changed (to its agent's stream and to its guest)."""

    session: SupportView
    seq: int = 0


class SupportRelayed(ServerMessage, tag="support-relay"):
    """A frame from the other side of a support session: `kind` signal (`sdp_type`, `sdp`), chat
    (`text`, `sent_at`) or screen (`on`)."""

    session_id: str
    kind: Literal["signal", "chat", "screen"]
    # host (the agent) or guest
    sender: Literal["host", "guest"]
    sender_name: str = ""
    sdp_type: str | None = None
    sdp: str | None = None
    text: str | None = None
    sent_at: float | None = None
    on: bool | None = None
    seq: int = 0
