"""Softphone pieces that need no network: TURN credentials and their configuration."""

import base64
import hashlib
import hmac

import pytest

from realtime.config import ConfigError, load_settings
from realtime.phone import ice_servers, parse_session, session_id


def test_no_ice_servers_unless_configured():
    assert ice_servers((), None, 3600, "demo:agent1", 1000.0) == []


def test_turn_credentials_follow_the_coturn_rest_scheme():
    servers = ice_servers(("stun:turn.example:3478", "turn:turn.example:3478"), "s3cret", 600, "demo:agent1", 1000.0)
    stun, turn = servers
    assert stun.urls == ["stun:turn.example:3478"] and stun.username is None
    assert turn.urls == ["turn:turn.example:3478"]
    assert turn.username == "1600:demo:agent1"  # expiry first: coturn refuses it after that moment
    expected = base64.b64encode(hmac.new(b"s3cret", b"1600:demo:agent1", hashlib.sha1).digest()).decode()
    assert turn.credential == expected
    # Another secret gives another password: the credential proves the hub made it.
    other = ice_servers(("turn:turn.example:3478",), "other", 600, "demo:agent1", 1000.0)[0]
    assert other.credential != expected


@pytest.mark.parametrize(
    ("env", "fragment"),
    [
        ({"UNIDESK_TURN_URLS": "http://x"}, "UNIDESK_TURN_URLS"),
        ({"UNIDESK_TURN_URLS": "turn:x:3478"}, "UNIDESK_TURN_SECRET"),
        ({"UNIDESK_HOLD_MUSIC": "/no/such/file.wav"}, "UNIDESK_HOLD_MUSIC"),
        ({"UNIDESK_MEDIA_CAPACITY": "0"}, "UNIDESK_MEDIA_CAPACITY"),
    ],
)
def test_bad_softphone_settings_name_the_variable(env, fragment):
    with pytest.raises(ConfigError, match=fragment):
        load_settings({"UNIDESK_SECRET": "x" * 40, **env})


def test_session_ids_round_trip_and_reject_garbage():
    assert parse_session(session_id(3, 17)) == (3, 17)
    assert parse_session("nonsense") is None and parse_session("a-b") is None
