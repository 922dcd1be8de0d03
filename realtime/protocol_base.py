"""The wire protocol's base types: every client frame is a ClientMessage (unknown fields refused, an
optional `id`), every server frame a ServerMessage (defaults omitted), tagged by `type`; and the
constrained strings several frames share. realtime/protocol.py builds the unions from them."""

from __future__ import annotations

from typing import Annotated

import msgspec

RequestId = Annotated[str, msgspec.Meta(max_length=64)]
Code = Annotated[str, msgspec.Meta(min_length=1, max_length=64)]
ContactId = Annotated[str, msgspec.Meta(min_length=1, max_length=64)]
Sdp = Annotated[str, msgspec.Meta(min_length=1, max_length=20_000)]
OfferId = Annotated[str, msgspec.Meta(min_length=1, max_length=64)]
CallId = Annotated[str, msgspec.Meta(min_length=1, max_length=64)]


class ClientMessage(
    msgspec.Struct, tag_field="type", forbid_unknown_fields=True, kw_only=True, frozen=True
):
    id: RequestId | None = None


class ServerMessage(msgspec.Struct, tag_field="type", omit_defaults=True, kw_only=True):
    pass
