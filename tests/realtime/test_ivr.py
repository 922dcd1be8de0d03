"""The dial plan's core: opening hours and a caller's way through a menu (no I/O)."""

import datetime as dt
from zoneinfo import ZoneInfo

import pytest

from realtime.ivr import (
    ChooseQueue,
    DialPlanError,
    Hangup,
    Menu,
    MenuCall,
    PlayPrompt,
    announcement,
    check_hours,
    is_open,
)
from webrtc.prompts import UnknownPrompt, prompt_path, prompt_seconds

BERLIN = ZoneInfo("Europe/Berlin")
MENU = {"prompt": "welcome-menu", "choices": {"1": "support", "2": "sales"}, "timeout_seconds": 8, "retries": 2}


def at(y: int, mo: int, d: int, h: int, mi: int = 0, tz: ZoneInfo = BERLIN) -> float:
    return dt.datetime(y, mo, d, h, mi, tzinfo=tz).timestamp()


# ---------------------------------------------------------------- hours

OFFICE = {"timezone": "Europe/Berlin", "mon": [["08:00", "12:00"], ["13:00", "18:00"]], "tue": ["08:00", "18:00"],
          "sat": [["22:00", "02:00"]], "closed_dates": ["2026-12-01"]}


def test_empty_hours_are_always_open():
    assert is_open({}, 0.0) and is_open(None, 1e9)


def test_weekday_spans_in_the_route_time_zone():
    # 2026-11-30 is a Monday.
    assert is_open(OFFICE, at(2026, 11, 30, 8, 0))
    assert is_open(OFFICE, at(2026, 11, 30, 11, 59))
    assert not is_open(OFFICE, at(2026, 11, 30, 12, 30))  # lunch
    assert not is_open(OFFICE, at(2026, 11, 30, 18, 0))  # closing time is exclusive
    assert not is_open(OFFICE, at(2026, 11, 30, 7, 59))
    # 08:30 in Berlin is 07:30 UTC: the zone decides, not the machine's.
    assert is_open(OFFICE, at(2026, 11, 30, 7, 30, tz=ZoneInfo("UTC")))
    assert not is_open(OFFICE, at(2026, 11, 30, 6, 30, tz=ZoneInfo("UTC")))
    # Wednesday is not listed: closed all day.
    assert not is_open(OFFICE, at(2026, 12, 2, 10))


def test_a_span_past_midnight_and_holidays():
    # Saturday 2026-12-05 22:00 .. Sunday 02:00.
    assert is_open(OFFICE, at(2026, 12, 5, 23, 30))
    assert is_open(OFFICE, at(2026, 12, 6, 1, 59))
    assert not is_open(OFFICE, at(2026, 12, 6, 2, 0))
    assert not is_open(OFFICE, at(2026, 12, 5, 21, 59))
    # Tuesday 2026-12-01 is a holiday.
    assert not is_open(OFFICE, at(2026, 12, 1, 10))
    assert is_open(OFFICE, at(2026, 12, 8, 10))


def test_all_day_with_24_00():
    hours = {"timezone": "UTC", "sun": [["00:00", "24:00"]]}
    sunday = dt.datetime(2026, 11, 29, tzinfo=ZoneInfo("UTC")).timestamp()
    assert is_open(hours, sunday) and is_open(hours, sunday + 86399) and not is_open(hours, sunday + 86400)


@pytest.mark.parametrize("bad", [
    {"timezone": "Mars/Olympus"}, {"mon": [["8:00", "18:00"]]}, {"mon": [["08:00"]]}, {"monday": []},
    {"mon": "08:00-18:00"}, {"closed_dates": ["25.12.2026"]}, {"mon": [["08:00", "25:00"]]},
])
def test_unusable_hours_are_refused(bad):
    with pytest.raises(DialPlanError):
        check_hours(bad)


# ---------------------------------------------------------------- menus


def run(call: MenuCall) -> list:
    return call.commands_out()


def test_a_digit_picks_its_queue_even_while_the_menu_plays():
    call = MenuCall(Menu.from_json(MENU))
    call.start(0.0)
    (play,) = run(call)
    assert play == PlayPrompt("welcome-menu", 1)
    assert call.next_deadline() is None  # no timeout while the prompt plays
    call.digit("2", 1.0)
    assert run(call) == [ChooseQueue("sales", "2")] and call.done
    call.digit("1", 2.0)  # too late: ignored
    assert run(call) == []


def test_an_invalid_digit_plays_invalid_then_the_menu_again():
    call = MenuCall(Menu.from_json(MENU))
    call.start(0.0)
    (menu,) = run(call)
    call.prompt_done(menu.token, 3.0)
    assert call.next_deadline() == 11.0
    call.digit("7", 4.0)
    (invalid,) = run(call)
    assert invalid.name == "invalid" and call.next_deadline() is None
    call.prompt_done(menu.token, 4.5)  # a stale report of the menu prompt: ignored
    assert run(call) == []
    call.prompt_done(invalid.token, 5.0)
    (again,) = run(call)
    assert again.name == "welcome-menu"
    call.prompt_done(again.token, 8.0)
    call.digit("1", 9.0)
    assert run(call) == [ChooseQueue("support", "1")]
    assert call.digits == "71"


def test_silence_replays_the_menu_then_takes_the_default():
    call = MenuCall(Menu.from_json({**MENU, "retries": 1, "default": "support"}))
    call.start(0.0)
    (p,) = run(call)
    call.prompt_done(p.token, 3.0)
    call.handle_timeout(10.0)  # early: nothing
    assert run(call) == []
    call.handle_timeout(11.0)
    (p,) = run(call)
    assert p.name == "welcome-menu"
    call.prompt_done(p.token, 14.0)
    call.handle_timeout(call.next_deadline())
    assert run(call) == [ChooseQueue("support", None)] and call.done


def test_no_choice_and_no_default_says_goodbye_then_hangs_up():
    call = MenuCall(Menu.from_json({**MENU, "retries": 1}))
    call.start(0.0)
    (p,) = run(call)
    call.digit("9", 1.0)
    (inv,) = run(call)
    call.digit("9", 1.5)  # a second wrong digit: no tries left
    (bye,) = run(call)
    assert bye.name == "no-choice"
    call.digit("1", 2.0)  # the goodbye is not a menu
    assert run(call) == []
    call.prompt_done(inv.token, 2.5)
    assert run(call) == []
    call.prompt_done(bye.token, 4.0)
    assert run(call) == [Hangup("no choice")] and call.done


def test_retries_zero_gives_one_chance():
    call = MenuCall(Menu.from_json({**MENU, "retries": 0, "default": "sales"}))
    call.start(0.0)
    (p,) = run(call)
    call.prompt_done(p.token, 1.0)
    call.handle_timeout(9.0)
    assert run(call) == [ChooseQueue("sales", None)]


@pytest.mark.parametrize("bad", [
    {**MENU, "prompt": "../etc/passwd"}, {**MENU, "choices": {}}, {**MENU, "choices": {"x": "sales"}},
    {**MENU, "timeout_seconds": 0}, {**MENU, "retries": -1}, {**MENU, "retries": True}, {**MENU, "extra": 1},
    {**MENU, "default": ""}, [],
])
def test_unusable_menus_are_refused(bad):
    with pytest.raises(DialPlanError):
        Menu.from_json(bad)


# ---------------------------------------------------------------- prompts


def test_announcements_name_existing_prompts():
    assert announcement(3, None) == ["caller-number", "number-3"]
    assert announcement(1, 200.0) == ["caller-number", "number-1", "wait-about", "minutes-3"]
    assert announcement(12, 10.0) == ["position-many", "wait-about", "minutes-1"]
    assert announcement(2, 3600.0)[-1] == "wait-long"
    for position in range(1, 13):
        for wait in (None, 1.0, 90.0, 599.0, 5000.0):
            for name in announcement(position, wait):
                assert prompt_seconds(name) > 0.2, name
    for name in ("welcome-menu", "invalid", "closed", "no-choice"):
        assert 0.5 < prompt_seconds(name) < 6, name


@pytest.mark.parametrize("name", ["../closed", "closed.wav", "/etc/passwd", "Closed", "", "a/b", "nope"])
def test_prompt_names_are_plain_words_of_existing_files(name):
    with pytest.raises(UnknownPrompt):
        prompt_path(name)


def test_a_menu_call_saved_and_restored_goes_on_where_it_was() -> None:
    from realtime.ivr import ChooseQueue, Menu, MenuCall, PlayPrompt

    menu = Menu.from_json({"prompt": "welcome-menu", "choices": {"1": "support", "2": "sales"}, "retries": 1})
    a = MenuCall(menu)
    a.start(0.0)
    (play,) = a.commands_out()
    a.digit("9", 1.0)  # invalid: "invalid" plays, one retry used
    (invalid,) = a.commands_out()
    assert isinstance(invalid, PlayPrompt) and invalid.name == "invalid"
    b = MenuCall.restored(menu, a.saved())
    # The old prompt's report is stale in the copy too; the invalid prompt's is not.
    b.prompt_done(play.token, 2.0)
    assert b.commands_out() == []
    b.prompt_done(invalid.token, 2.5)
    assert [c.name for c in b.commands_out()] == ["welcome-menu"]
    b.digit("2", 3.0)
    assert b.commands_out() == [ChooseQueue("sales", "2")] and b.digits == "92"
