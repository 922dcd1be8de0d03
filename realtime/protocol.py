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


ClientFrame = Union[Auth, Ping, SetState, ExtendWrapUp, ForceState]


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


class PauseReason(msgspec.Struct, kw_only=True):
    code: str
    label: str


class QueueInfo(msgspec.Struct, kw_only=True):
    name: str
    label: str


class Welcome(ServerMessage, tag="welcome"):
    """Answer to a successful `auth`."""

    user: UserInfo
    tenant: TenantInfo
    heartbeat_seconds: float
    server_time: float
    # Stream whose `seq` this connection follows.
    stream: str
    ref: RequestId | None = None


class Snapshot(ServerMessage, tag="snapshot"):
    """The whole visible state; events with a higher `seq` follow."""

    seq: int
    agents: list[AgentView]
    pause_reasons: list[PauseReason]
    queues: list[QueueInfo]


class AgentStateChanged(ServerMessage, tag="agent-state"):
    """An agent's state changed; carries the whole agent, so applying it twice is harmless."""

    agent: AgentView
    seq: int = 0


class Ack(ServerMessage, tag="ack"):
    ref: RequestId | None = None


class Pong(ServerMessage, tag="pong"):
    server_time: float
    ref: RequestId | None = None


class Error(ServerMessage, tag="error"):
    """A frame could not be served; the connection stays up unless said otherwise."""

    code: str
    message: str
    ref: RequestId | None = None


ServerFrame = Union[Welcome, Snapshot, AgentStateChanged, Ack, Pong, Error]

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
