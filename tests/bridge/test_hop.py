"""bridge/hop.py: the text edits of one stateless hop, on messages as callers write them."""

from __future__ import annotations

import pytest

from bridge import hop
from bridge.hop import Flow, HopError

BYE = (
    "BYE sip:caller@10.0.0.9:5090;transport=tcp SIP/2.0\r\n"
    "Via: SIP/2.0/UDP 127.0.0.1:5070;rport;branch=z9hG4bKlane\r\n"
    "Route: <sip:127.0.0.1:5060;lr;uflow=lane>\r\n"
    "Route: <sip:127.0.0.1:5060;transport=tcp;lr;uflow=tcp-0a000009-13e2>, <sip:edge.example;lr>\r\n"
    "Max-Forwards: 70\r\nCall-ID: x\r\nContent-Length: 0\r\n\r\n"
)


def test_max_forwards_goes_down_by_one_or_is_added_as_70() -> None:
    lines, _ = hop.split(BYE)
    hop.decrement_max_forwards(lines)
    assert hop.max_forwards(lines) == 69
    bare = hop.drop(lines, "Max-Forwards")
    assert hop.max_forwards(bare) is None
    hop.decrement_max_forwards(bare)
    assert hop.max_forwards(bare) == 70  # RFC 3261 §16.6 step 3: a proxy adds one, 70


def test_max_forwards_that_is_not_a_number_is_named() -> None:
    lines, _ = hop.split(BYE.replace("Max-Forwards: 70", "Max-Forwards: seventy"))
    with pytest.raises(HopError, match="'seventy'"):
        hop.max_forwards(lines)


def test_our_route_entries_come_off_and_the_others_stay_in_order() -> None:
    lines, body = hop.split(BYE)
    own = hop.pop_own_routes(lines)
    assert [hop.param(e, "uflow") for e in own] == ["lane", "tcp-0a000009-13e2"]
    assert [x for x in lines if x.startswith("Route")] == ["Route: <sip:edge.example;lr>"]
    assert hop.pop_own_routes(lines) == []  # a foreign Route on top: nothing of ours
    assert body == ""


def test_a_flow_survives_its_token_in_both_families() -> None:
    for flow in (Flow("tcp", "10.0.0.9", 5090), Flow("tls", "::1", 5061), Flow("udp", "2001:db8::7", 1)):
        token = flow.token()
        assert all(ch.isalnum() or ch == "-" for ch in token), token
        assert Flow.parse(token) == flow
    assert Flow.of("TCP", "[::1]:5090") == Flow("tcp", "::1", 5090)
    with pytest.raises(HopError, match="'sctp-7f000001-1'"):
        Flow.parse("sctp-7f000001-1")


def test_the_top_via_comes_off_and_the_next_names_where_the_response_goes() -> None:
    response = ("SIP/2.0 200 OK\r\nVia: SIP/2.0/UDP 127.0.0.1:5060;branch=z9hG4bK.ul1, "
                "SIP/2.0/TCP 10.0.0.9:5090;branch=z9hG4bKc;received=10.0.0.8;rport=40000\r\nContent-Length: 0\r\n\r\n")
    lines, _ = hop.split(response)
    own, nxt = hop.pop_via(lines)
    assert hop.param(own, "branch") == "z9hG4bK.ul1"
    assert hop.via_kind(nxt) == "tcp" and hop.via_address(nxt) == ("10.0.0.8", 40000)
    assert lines[1] == "Via: SIP/2.0/TCP 10.0.0.9:5090;branch=z9hG4bKc;received=10.0.0.8;rport=40000"
    assert hop.pop_via(lines) is None  # the last Via: nobody to pass it to
