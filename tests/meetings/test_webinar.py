"""The webinar room's rules, without a network: roles, lock, promote, mute all, remove, questions,
hands and attendance."""

from __future__ import annotations

import pytest

from meetings.webinar import ATTENDEE, OPEN_BEFORE, PRESENTER, SPEAKER, Command, Webinar, WebinarError


def room() -> Webinar:
    w = Webinar("r1", "Onboarding", presenter="u1")
    w.join("u1", "Trainer", now=0.0)
    w.join("u2", "Ann", now=1.0)
    w.join("g7", "Guest", now=2.0, guest=True)
    return w


def test_roles_and_the_live_count() -> None:
    w = room()
    assert w.members["u1"].role == PRESENTER and w.members["u2"].role == ATTENDEE
    assert w.attendees() == 2
    w.check_publish("u1", ["camera", "audio", "screen"])
    with pytest.raises(WebinarError, match="receive only") as exc:
        w.check_publish("u2", ["speaker"])
    assert exc.value.code == "forbidden"


def test_promote_lets_an_attendee_speak_and_demote_stops_it() -> None:
    w = room()
    w.hand("u2", True, now=3.0)
    w.act("u1", "promote", now=4.0, target="u2")
    assert w.members["u2"].role == SPEAKER and w.members["u2"].hand_since is None
    w.check_publish("u2", ["speaker"])
    with pytest.raises(WebinarError, match="cannot publish camera"):
        w.check_publish("u2", ["camera"])
    assert w.speakers() == ["u2"]
    w.act("u1", "demote", now=5.0, target="u2")
    assert w.members["u2"].role == ATTENDEE
    assert w.commands_out() == [Command("stop", "u2")]
    assert w.commands_out() == []


def test_guests_and_attendees_cannot_moderate() -> None:
    w = room()
    for who in ("g7", "u2"):
        for action in ("mute-all", "remove", "lock", "promote"):
            with pytest.raises(WebinarError, match="only the presenter") as exc:
                w.act(who, action, now=3.0, target="u2")
            assert exc.value.code == "forbidden"
    assert not w.locked and w.commands_out() == []
    with pytest.raises(WebinarError, match="unknown action"):
        w.act("u1", "explode", now=3.0)


def test_mute_all_lock_remove_and_attendance() -> None:
    w = room()
    w.act("u1", "mute-all", now=3.0)
    assert w.commands_out() == [Command("mute", on=True)]
    w.act("u1", "lock", now=4.0)
    with pytest.raises(WebinarError, match="locked"):
        w.join("u3", "Late", now=5.0)
    w.join("u2", "Ann", now=5.0)  # already inside: no error, no second visit
    w.act("u1", "remove", now=6.0, target="g7")
    assert w.commands_out() == [Command("drop", "g7")]
    w.act("u1", "unlock", now=7.0)
    with pytest.raises(WebinarError, match="removed"):
        w.join("g7", "Guest", now=8.0)
    w.leave("u2", now=9.0)
    w.join("u2", "Ann", now=10.0)
    visits = [(v.member, v.joined_at, v.left_at) for v in w.visits]
    assert visits == [("u1", 0.0, None), ("u2", 1.0, 9.0), ("g7", 2.0, 6.0), ("u2", 10.0, None)]
    assert [(v.member, v.left_at) for v in w.visits_out()] == [("g7", 6.0), ("u2", 9.0)]
    assert w.visits_out() == []
    with pytest.raises(WebinarError, match="presenter cannot"):
        w.act("u1", "remove", now=11.0, target="u1")
    w.act("u1", "end", now=12.0)
    assert all(v.left_at is not None for v in w.visits) and w.commands_out() == [Command("end")]
    with pytest.raises(WebinarError, match="ended"):
        w.join("u2", "Ann", now=13.0)


def test_questions_marked_answered_and_a_round_trip() -> None:
    w = room()
    q = w.ask("g7", "Where are the slides?", now=3.0)
    w.act("u1", "answer", now=4.0, question=q.id)
    with pytest.raises(WebinarError, match="no question 9"):
        w.act("u1", "answer", now=4.0, question=9)
    copy = Webinar.from_dict(w.to_dict())
    assert copy.to_dict() == w.to_dict() and copy.questions[0].answered
    with pytest.raises(WebinarError, match="join the webinar first"):
        w.ask("u9", "hello", now=5.0)


def test_a_scheduled_webinar_opens_before_its_start_and_starts_at_its_time() -> None:
    w = Webinar("r2", "Scheduled", presenter="u1", starts_at=10_000.0, started=False)
    with pytest.raises(WebinarError, match="opens 10 minutes before") as exc:
        w.join("u2", "Ann", now=10_000.0 - OPEN_BEFORE - 1)
    assert exc.value.code == "conflict"
    w.join("u1", "Trainer", now=9_000.0)  # the presenter may come in earlier to get ready
    w.join("u2", "Ann", now=10_000.0 - OPEN_BEFORE)
    with pytest.raises(WebinarError, match="start the webinar first"):
        w.check_publish("u1", ["camera"])
    with pytest.raises(WebinarError, match="before its scheduled time"):
        w.act("u1", "start", now=9_999.0)
    with pytest.raises(WebinarError, match="only the presenter can start"):
        w.act("u2", "start", now=10_000.0)
    w.act("u1", "start", now=10_000.0)
    assert w.started
    w.check_publish("u1", ["camera", "audio", "screen"])
    with pytest.raises(WebinarError, match="started already"):
        w.act("u1", "start", now=10_001.0)
    assert Webinar.from_dict(w.to_dict()).started and Webinar.from_dict(w.to_dict()).starts_at == 10_000.0


def test_only_the_audience_joins() -> None:
    w = Webinar("r3", "Audience", presenter="u1")
    with pytest.raises(WebinarError, match="invited audience only") as exc:
        w.join("u5", "Eve", now=1.0, invited=False)
    assert exc.value.code == "forbidden" and "u5" not in w.members
    w.join("u1", "Trainer", now=1.0, invited=False)  # the presenter always may
    w.join("u2", "Ann", now=2.0, invited=True)
    assert w.attendees() == 1


def test_closing_for_lost_media_records_every_stay_and_moving_keeps_the_mute() -> None:
    w = room()
    w.act("u1", "mute-all", now=3.0)
    w.commands_out()
    w.media_moved()
    assert w.commands_out() == [Command("mute", on=True)]
    w.close(now=10.0)
    assert w.ended and w.online() == [] and w.commands_out() == [Command("end")]
    assert sorted((v.member, v.left_at) for v in w.visits_out()) == [("g7", 10.0), ("u1", 10.0), ("u2", 10.0)]
    with pytest.raises(WebinarError, match="has ended"):
        w.join("u2", "Ann", now=11.0)
