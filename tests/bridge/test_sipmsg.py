"""The pure SIP text helpers: no network."""

import pytest

from bridge.sipmsg import check_digits, content_length_mismatch, split_name_addr, uri_user, via_transport


@pytest.mark.parametrize(
    "value, expected",
    [
        ('"Ann Smith" <sip:ann@example.com>;tag=1', ("Ann Smith", "sip:ann@example.com")),
        ('"a \\"q\\"" <sip:q@h>', ('a "q"', "sip:q@h")),
        ("Bob <sip:+4930123@h;user=phone>", ("Bob", "sip:+4930123@h;user=phone")),
        ("<sip:support@127.0.0.1:5060>", (None, "sip:support@127.0.0.1:5060")),
        ("sip:bare@h;tag=9", (None, "sip:bare@h")),
    ],
)
def test_split_name_addr(value: str, expected: tuple) -> None:
    assert split_name_addr(value) == expected


@pytest.mark.parametrize(
    "uri, user",
    [("sip:+4930123@h;user=phone", "+4930123"), ("sip:ann:secret@h", "ann"), ("sip:h", ""), ("sips:x@h:5061", "x")],
)
def test_uri_user(uri: str, user: str) -> None:
    assert uri_user(uri) == user


def test_via_transport_and_content_length() -> None:
    msg = "INVITE sip:a@h SIP/2.0\r\nv: SIP/2.0/TCP 1.2.3.4;branch=z\r\nl: 10\r\n\r\n12345"
    assert via_transport(msg) == "tcp"
    assert content_length_mismatch(msg)
    assert not content_length_mismatch(msg.replace("l: 10", "l: 5"))
    assert via_transport("OPTIONS sip:h SIP/2.0\r\n\r\n") == ""


def test_check_digits() -> None:
    assert check_digits("12#*ab") == "12#*AB"
    with pytest.raises(ValueError, match="'X'"):
        check_digits("1x")
    with pytest.raises(ValueError):
        check_digits("")


def test_repeated_headers() -> None:
    from bridge.sipmsg import repeated_headers

    ok = "INVITE sip:a@h SIP/2.0\r\nTo: <sip:a@h>\r\nFrom: <sip:b@h>;tag=1\r\nVia: x\r\nVia: y\r\n\r\nTo: in the body\r\n"
    assert repeated_headers(ok) == []
    two = "INVITE sip:a@h SIP/2.0\r\nTo: <sip:a@h>\r\nt: <sip:c@h>\r\nCall-ID: 1\r\ni: 2\r\nf: x\r\n\r\n"
    assert sorted(repeated_headers(two)) == ["call-id", "to"]
    folded = "OPTIONS sip:a@h SIP/2.0\r\nTo:\r\n <sip:a@h>\r\nContent-Length: 0\r\n\r\n"
    assert repeated_headers(folded) == []
