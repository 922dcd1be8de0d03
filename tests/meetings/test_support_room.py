"""The support session's rules, without I/O: lobby, admission, single-use links, ends."""

import pytest

from meetings.support import Phase, Role, RoomError, SupportRoom


def room(now: float = 1000.0) -> SupportRoom:
    return SupportRoom(id="r1", tenant_id=1, host_id=7, contact_id="c1", created_at=now, expires_at=now + 7200)


def test_guest_waits_in_the_lobby_until_admitted_then_both_relay_and_the_duration_counts_from_admission():
    r = room()
    r.bind_guest("k1", 1001)
    assert r.phase is Phase.WAITING
    with pytest.raises(RoomError) as e:
        r.check_relay(Role.GUEST, "signal")
    assert e.value.code == "conflict"
    r.join("k1", "  Erika  ", "Chromium", 1002)
    assert (r.phase, r.guest_name, r.lobby_at) == (Phase.LOBBY, "Erika", 1002)
    with pytest.raises(RoomError):
        r.check_relay(Role.HOST, "chat")
    r.admit(Role.HOST, 1010)
    assert r.phase is Phase.LIVE and r.guest_epoch == 1
    assert r.check_relay(Role.HOST, "signal") is Role.GUEST
    assert r.check_relay(Role.GUEST, "screen") is Role.HOST
    r.end(Role.GUEST, 1070)
    assert (r.phase, r.end_reason, r.duration) == (Phase.ENDED, "guest-left", 60.0)


def test_the_link_is_single_use_but_a_reload_of_the_same_browser_comes_back():
    r = room()
    r.join("k1", "Erika", "", 1001)
    r.admit(Role.HOST, 1002)
    with pytest.raises(RoomError) as e:
        r.bind_guest("k2", 1003)
    assert e.value.code == "unauthorized" and "already used" in str(e.value)
    r.join("k1", "", "", 1004)  # a reload: back into the live room, the host offers anew
    assert r.phase is Phase.LIVE and r.guest_epoch == 2 and r.guest_name == "Erika"


def test_a_guest_may_not_moderate_and_the_room_keeps_going():
    r = room()
    r.join("k1", "Erika", "", 1001)
    for action in (r.admit, r.deny):
        with pytest.raises(RoomError) as e:
            action(Role.GUEST, 1002)
        assert e.value.code == "forbidden"
    assert r.phase is Phase.LOBBY
    r.admit(Role.HOST, 1003)
    with pytest.raises(RoomError) as e:
        r.admit(Role.HOST, 1004)
    assert e.value.code == "conflict"
    assert r.phase is Phase.LIVE


def test_deny_expiry_and_ended_rooms_refuse_the_link():
    r = room()
    r.join("k1", "Erika", "", 1001)
    r.deny(Role.HOST, 1002)
    assert (r.phase, r.end_reason, r.duration) == (Phase.ENDED, "denied", None)
    with pytest.raises(RoomError) as e:
        r.bind_guest("k1", 1003)
    assert e.value.code == "support-ended"
    with pytest.raises(RoomError):
        r.end(Role.HOST, 1004)

    late = room()
    with pytest.raises(RoomError) as e:
        late.bind_guest("k1", late.expires_at)
    assert "expired" in str(e.value)
    assert late.expire(late.expires_at) and late.end_reason == "expired"
    live = room()
    live.join("k", "x", "", 1001)
    live.admit(Role.HOST, 1002)
    assert not live.expire(live.expires_at + 1)  # an admitted call is not cut by the link's expiry


def test_a_room_survives_the_live_store_round_trip():
    r = room()
    r.join("k1", "Erika", "UA", 1001)
    back = SupportRoom.load(r.dump())
    assert back == r and back.phase is Phase.LOBBY
