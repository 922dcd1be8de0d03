import msgspec
import pytest

from realtime import protocol as P
from realtime.live import frame_seq, make_frame
from tests.conftest import ROOT


def test_client_frames_decode_to_their_types():
    f = P.client_decoder.decode(b'{"type":"set-state","state":"paused","reason":"lunch","id":"r1"}')
    assert f == P.SetState(state="paused", reason="lunch", id="r1")
    assert isinstance(P.client_decoder.decode(b'{"type":"ping"}'), P.Ping)
    f = P.client_decoder.decode(b'{"type":"force-state","agent_id":7,"state":"available"}')
    assert f == P.ForceState(agent_id=7, state="available")


@pytest.mark.parametrize(
    "raw,fragment",
    [
        (b'{"type":"nope"}', "$.type"),
        (b'{"state":"available"}', "type"),
        (b'{"type":"ping","extra":1}', "unknown field `extra`"),
        (b'{"type":"set-state","state":"on-call"}', "$.state"),
        (b'{"type":"force-state","agent_id":"7","state":"available"}', "$.agent_id"),
        (b'{"type":"force-state","agent_id":0,"state":"available"}', "$.agent_id"),
        (b'{"type":"extend-wrap-up","seconds":-5}', "$.seconds"),
        (b'{"type":"auth","token":"' + b"x" * 5000 + b'"}', "$.token"),
    ],
)
def test_bad_client_frames_are_rejected_with_the_field_named(raw, fragment):
    with pytest.raises(msgspec.ValidationError) as info:
        P.client_decoder.decode(raw)
    assert fragment in str(info.value)


def test_server_frames_round_trip_and_omit_defaults():
    ev = P.AgentStateChanged(
        agent=P.AgentView(id=1, username="a", display_name="A", state="available", since=1.5)
    )
    raw = P.encode(ev)
    assert b'"seq"' not in raw and b"reason" not in raw
    frame = make_frame(42, raw)
    assert frame_seq(frame) == 42 and frame_seq(frame.decode()) == 42
    back = P.server_decoder.decode(frame)
    assert isinstance(back, P.AgentStateChanged) and back.seq == 42 and back.agent.username == "a"


def test_published_schema_is_generated_from_the_types():
    published = (ROOT / "docs" / "protocol.schema.json").read_text()
    assert published == P.schema_text(), "docs/protocol.schema.json is stale: run `make schema`"


def test_every_frame_type_is_documented():
    doc = (ROOT / "docs" / "protocol.md").read_text()
    for union in (P.ClientFrame, P.ServerFrame):
        for t in union.__args__:
            tag = t.__struct_config__.tag
            assert f"`{tag}`" in doc, f"docs/protocol.md does not describe `{tag}`"
