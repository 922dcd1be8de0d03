"""The dial plan's decisions, without I/O: opening hours, and one caller's way through a menu.

`is_open(hours, when)` says whether a route is open at an epoch time. `Menu` is a
route's menu (validated from the store's JSON); `MenuCall` is one caller in it,
in the style of the ACD engine: inputs carry `now`, decisions come out of
`commands_out()`, and the owner calls `handle_timeout(now)` at `next_deadline()`.

A caller in a menu hears the menu prompt, then has `timeout_seconds` to press a
digit (digits pressed while a prompt plays count too). A digit of the menu picks
its queue; another digit plays "invalid" and the menu again; silence plays the
menu again. After `retries` replays, the caller goes to the `default` queue, or
hears "no-choice" and the call ends.

The owner plays each `PlayPrompt` and reports `prompt_done(token, now)` when it
has played; a report for a prompt that was cut short by another is ignored.
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass, field
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
DIGITS = frozenset("0123456789*#ABCD")
_TIME = re.compile(r"([01]\d|2[0-3]):([0-5]\d)|24:00")
_PROMPT = re.compile(r"[a-z0-9][a-z0-9_-]{0,63}")

INVALID_PROMPT = "invalid"
NO_CHOICE_PROMPT = "no-choice"
CLOSED_PROMPT = "closed"


class DialPlanError(ValueError):
    """A route's hours or menu that cannot be used; the message says what is wrong."""


# ---------------------------------------------------------------- opening hours


def _minutes(value: Any, where: str) -> int:
    if not isinstance(value, str) or not _TIME.fullmatch(value):
        raise DialPlanError(f"{where}: {value!r} is not a time HH:MM")
    h, m = value.split(":")
    return int(h) * 60 + int(m)


def _ranges(hours: dict[str, Any], day: str) -> list[tuple[int, int]]:
    spans = hours.get(day) or []
    if not isinstance(spans, list):
        raise DialPlanError(f"hours.{day}: a list of [open, close] pairs")
    if len(spans) == 2 and all(isinstance(x, str) for x in spans):
        spans = [spans]  # one pair written flat: ["08:00", "18:00"]
    out = []
    for span in spans:
        if not isinstance(span, list) or len(span) != 2:
            raise DialPlanError(f"hours.{day}: {span!r} is not an [open, close] pair")
        out.append((_minutes(span[0], f"hours.{day}"), _minutes(span[1], f"hours.{day}")))
    return out


def check_hours(hours: dict[str, Any] | None) -> None:
    """Raise DialPlanError unless `hours` is usable.

    `{}` (or None): always open. Otherwise `timezone` (an IANA name, default UTC),
    weekdays `mon`..`sun` each with [open, close] pairs ("HH:MM"; a close not after
    the open runs past midnight; "24:00" is the end of the day; a day not given is
    closed), and `closed_dates`: ISO dates closed all day (holidays)."""
    if not hours:
        return
    if not isinstance(hours, dict):
        raise DialPlanError("hours: an object")
    unknown = set(hours) - {*DAYS, "timezone", "closed_dates"}
    if unknown:
        raise DialPlanError(f"hours: unknown keys {sorted(unknown)}")
    _zone(hours)
    for day in DAYS:
        _ranges(hours, day)
    for d in hours.get("closed_dates") or []:
        try:
            dt.date.fromisoformat(d)
        except (TypeError, ValueError):
            raise DialPlanError(f"hours.closed_dates: {d!r} is not a date YYYY-MM-DD") from None


def _zone(hours: dict[str, Any]) -> ZoneInfo:
    name = hours.get("timezone") or "UTC"
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError, TypeError):
        raise DialPlanError(f"hours.timezone: unknown time zone {name!r}") from None


def is_open(hours: dict[str, Any] | None, when: float) -> bool:
    """Whether a route with these opening hours is open at epoch time `when`."""
    if not hours:
        return True
    check_hours(hours)
    local = dt.datetime.fromtimestamp(when, _zone(hours))
    closed = set(hours.get("closed_dates") or [])
    t = local.hour * 60 + local.minute
    today = DAYS[local.weekday()]
    if local.date().isoformat() not in closed:
        for start, end in _ranges(hours, today):
            if (start < end and start <= t < end) or (end <= start and t >= start):
                return True
    # A span of yesterday's that runs past midnight (it belongs to the day it started).
    yesterday = local.date() - dt.timedelta(days=1)
    if yesterday.isoformat() not in closed:
        for start, end in _ranges(hours, DAYS[yesterday.weekday()]):
            if end <= start and t < end:
                return True
    return False


# ---------------------------------------------------------------- menus


@dataclass(frozen=True, slots=True)
class Menu:
    prompt: str
    # digit → queue name
    choices: dict[str, str]
    timeout_seconds: float = 8.0
    # Replays of the menu after an invalid digit or silence, before giving up.
    retries: int = 2
    # Where a caller who never chose goes (None: the call ends).
    default: str | None = None

    @classmethod
    def from_json(cls, raw: dict[str, Any]) -> Menu:
        """A menu from a route's `ivr` JSON; DialPlanError when unusable."""
        if not isinstance(raw, dict):
            raise DialPlanError("ivr: an object")
        unknown = set(raw) - {"prompt", "choices", "timeout_seconds", "retries", "default"}
        if unknown:
            raise DialPlanError(f"ivr: unknown keys {sorted(unknown)}")
        prompt = raw.get("prompt")
        if not isinstance(prompt, str) or not _PROMPT.fullmatch(prompt):
            raise DialPlanError(f"ivr.prompt: {prompt!r} is not a prompt name")
        choices = raw.get("choices")
        if not isinstance(choices, dict) or not choices:
            raise DialPlanError("ivr.choices: an object of digit → queue, not empty")
        for digit, queue in choices.items():
            if digit not in DIGITS or not isinstance(queue, str) or not queue:
                raise DialPlanError(f"ivr.choices: {digit!r} → {queue!r} is not a digit and a queue")
        timeout = raw.get("timeout_seconds", 8.0)
        if isinstance(timeout, bool) or not isinstance(timeout, (int, float)) or not 0 < timeout <= 300:
            raise DialPlanError(f"ivr.timeout_seconds: {timeout!r} is not in (0, 300]")
        retries = raw.get("retries", 2)
        if isinstance(retries, bool) or not isinstance(retries, int) or not 0 <= retries <= 10:
            raise DialPlanError(f"ivr.retries: {retries!r} is not 0..10")
        default = raw.get("default")
        if default is not None and (not isinstance(default, str) or not default):
            raise DialPlanError(f"ivr.default: {default!r} is not a queue")
        return cls(prompt=prompt, choices=dict(choices), timeout_seconds=float(timeout), retries=retries,
                   default=default)


@dataclass(frozen=True, slots=True)
class PlayPrompt:
    """Play this prompt to the caller (cutting short one that plays) and report when it has played."""

    name: str
    token: int


@dataclass(frozen=True, slots=True)
class ChooseQueue:
    """The caller goes to this queue; the menu is over."""

    queue: str
    # The digit pressed, or None when the default was taken.
    digit: str | None


@dataclass(frozen=True, slots=True)
class Hangup:
    """End the call; the menu is over."""

    reason: str


Command = PlayPrompt | ChooseQueue | Hangup

# States of a caller in a menu.
STARTING, PROMPTING, LISTENING, INVALID, GOODBYE, DONE = (
    "starting", "prompting", "listening", "invalid", "goodbye", "done"
)


@dataclass
class MenuCall:
    menu: Menu
    state: str = STARTING
    # Menus heard in full or cut short by a wrong digit, beyond the first.
    attempts: int = 0
    digits: str = ""
    _token: int = 0
    _deadline: float | None = None
    _out: list[Command] = field(default_factory=list)

    # ------------------------------------------------------------ inputs

    def start(self, now: float) -> None:
        assert self.state == STARTING, "a menu starts once"
        self._play(self.menu.prompt, PROMPTING)

    def digit(self, digit: str, now: float) -> None:
        """The caller pressed `digit` (while a prompt plays or after)."""
        if self.state not in (PROMPTING, LISTENING, INVALID):
            return
        self.digits += digit
        queue = self.menu.choices.get(digit)
        if queue is not None:
            self._finish(ChooseQueue(queue, digit))
        elif self._retry():
            self._play(INVALID_PROMPT, INVALID)

    def prompt_done(self, token: int, now: float) -> None:
        """The prompt of `token` has played to its end."""
        if token != self._token:
            return  # cut short by a later one
        if self.state == PROMPTING:
            self.state = LISTENING
            self._deadline = now + self.menu.timeout_seconds
        elif self.state == INVALID:
            self._play(self.menu.prompt, PROMPTING)
        elif self.state == GOODBYE:
            self._finish(Hangup("no choice"))

    def handle_timeout(self, now: float) -> None:
        if self._deadline is None or now < self._deadline:
            return
        self._deadline = None
        if self.state == LISTENING and self._retry():
            self._play(self.menu.prompt, PROMPTING)

    # ------------------------------------------------------------ outputs

    def commands_out(self) -> list[Command]:
        out, self._out = self._out, []
        return out

    def next_deadline(self) -> float | None:
        return self._deadline

    @property
    def done(self) -> bool:
        return self.state == DONE

    # ------------------------------------------------------------ keeping it elsewhere

    def saved(self) -> dict[str, Any]:
        """The caller's place in the menu as plain data (for a shared store); `restored` reads it back.
        Take `commands_out()` first: pending commands are not part of it."""
        assert not self._out, "commands_out() before saved()"
        return {"state": self.state, "attempts": self.attempts, "digits": self.digits, "token": self._token,
                "deadline": self._deadline}

    @classmethod
    def restored(cls, menu: Menu, saved: dict[str, Any]) -> MenuCall:
        """The caller of `saved()` again, in `menu`, ready for its next input."""
        return cls(menu, state=saved["state"], attempts=saved["attempts"], digits=saved["digits"],
                   _token=saved["token"], _deadline=saved["deadline"])

    # ------------------------------------------------------------ inside

    def _retry(self) -> bool:
        """Count one more try; False (and the way out taken) when none is left."""
        self.attempts += 1
        if self.attempts <= self.menu.retries:
            return True
        if self.menu.default is not None:
            self._finish(ChooseQueue(self.menu.default, None))
        else:
            self._play(NO_CHOICE_PROMPT, GOODBYE)
        return False

    def _play(self, name: str, state: str) -> None:
        self._token += 1
        self._deadline = None
        self.state = state
        self._out.append(PlayPrompt(name, self._token))

    def _finish(self, cmd: ChooseQueue | Hangup) -> None:
        self._deadline = None
        self.state = DONE
        self._out.append(cmd)


# ---------------------------------------------------------------- queue announcements


def announcement(position: int, expected_wait: float | None) -> list[str]:
    """The prompts telling a waiting caller their place (1: next) and, when known, the expected wait."""
    names = ["caller-number", f"number-{position}"] if 1 <= position <= 10 else ["position-many"]
    if expected_wait is not None:
        minutes = max(1, round(expected_wait / 60))
        names += ["wait-about", f"minutes-{minutes}"] if minutes <= 10 else ["wait-long"]
    return names
