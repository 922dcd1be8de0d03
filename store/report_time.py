"""Report intervals in a time zone: bucket keys as SQL arithmetic that runs the same on
SQLite and PostgreSQL.

Times are epoch seconds (doubles). A bucket is named by its *key*: the local
wall-clock time of its start, counted in seconds as if the zone were UTC
(`floor((t + offset(t)) / width) * width`). In UTC the key is the bucket's
start. In a zone with daylight saving time the offset is a SQL `CASE` over
the zone's transitions inside the range (found here, with zoneinfo), so a
local day is a day of 23 or 25 hours where the clocks change, and the hour
that is repeated in autumn falls into one bucket of two hours.

Durations are cut at every bucket boundary and at every transition
(`next_cut`), so within a piece the offset is constant and each piece's
length in real seconds is exact.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from sqlalchemy import Float, case, cast, literal
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.elements import ColumnElement
from sqlalchemy.sql.functions import FunctionElement

INTERVALS = {"15m": 900, "1h": 3600, "1d": 86400}
# The longest range each interval may cover.
MAX_DAYS = {"15m": 92, "1h": 366, "1d": 1096}
FAR = 1e18
# The instants a report may name (epoch seconds).
EARLIEST, LATEST = 0.0, 253_370_764_800.0


class BadTimeZone(ValueError):
    pass


class floor_(FunctionElement[float]):  # noqa: N801 - a SQL function's name
    """floor() of a double: PostgreSQL's FLOOR; on SQLite (whose FLOOR needs the math extension)
    the integer part, less one below zero when the value is not whole."""

    type = Float()
    inherit_cache = True


@compiles(floor_)
def _floor_default(element, compiler, **kw):  # type: ignore[no-untyped-def]
    return f"FLOOR({compiler.process(element.clauses, **kw)})"


@compiles(floor_, "sqlite")
def _floor_sqlite(element, compiler, **kw):  # type: ignore[no-untyped-def]
    x = compiler.process(element.clauses, **kw)
    return f"(CAST(CAST(({x}) AS INTEGER) AS REAL) - (({x}) < CAST(({x}) AS INTEGER)))"


def num(x: float) -> ColumnElement[float]:
    return cast(literal(float(x), Float()), Float())


def least(a: ColumnElement[float], b: ColumnElement[float]) -> ColumnElement[float]:
    return case((a < b, a), else_=b)


def greatest(a: ColumnElement[float], b: ColumnElement[float]) -> ColumnElement[float]:
    return case((a > b, a), else_=b)


@dataclass(frozen=True, slots=True)
class Zone:
    """A time zone's offsets over one report range: `offset` before the first transition, then
    each (instant, offset from then on)."""

    name: str
    offset: float
    transitions: tuple[tuple[float, float], ...] = ()

    def offset_at(self, t: float) -> float:
        off = self.offset
        for at, after in self.transitions:
            if t < at:
                break
            off = after
        return off

    def sql_offset(self, t: ColumnElement[float]) -> ColumnElement[float]:
        if not self.transitions:
            return num(self.offset)
        whens = []
        prev = self.offset
        for at, after in self.transitions:
            whens.append((t < num(at), num(prev)))
            prev = after
        return case(*whens, else_=num(prev))

    def sql_key(self, t: ColumnElement[float], width: int) -> ColumnElement[float]:
        """The bucket key of time `t`."""
        return floor_((t + self.sql_offset(t)) / num(width)) * num(width)

    def sql_next_cut(self, t: ColumnElement[float], width: int) -> ColumnElement[float]:
        """The first bucket boundary or transition after `t` (where a duration is cut)."""
        boundary = self.sql_key(t, width) + num(width) - self.sql_offset(t)
        if not self.transitions:
            return boundary
        nxt = case(*((t < num(at), num(at)) for at, _ in self.transitions), else_=num(FAR))
        return least(boundary, nxt)

    def key_of(self, t: float, width: int) -> float:
        return ((t + self.offset_at(t)) // width) * width

    def start_of(self, key: float) -> float:
        """The instant a bucket begins (the first, when its wall-clock start happened twice)."""
        if self.name == "UTC":
            return key
        local = datetime.fromtimestamp(key, UTC).replace(tzinfo=None)
        return local.replace(tzinfo=ZoneInfo(self.name), fold=0).timestamp()

    def label(self, key: float) -> str:
        """ISO 8601 local time of a bucket's start with its UTC offset."""
        start = self.start_of(key)
        if self.name == "UTC":
            return datetime.fromtimestamp(start, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        return datetime.fromtimestamp(start, ZoneInfo(self.name)).isoformat()


def zone_for(name: str | None, start: float, end: float) -> Zone:
    """The zone `name` (IANA, e.g. "Europe/Berlin"; None or "UTC": UTC) over [start, end)."""
    if not name or name == "UTC":
        return Zone("UTC", 0.0)
    try:
        tz = ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise BadTimeZone(f"unknown time zone {name!r}") from None

    def off(t: float) -> float:
        delta = datetime.fromtimestamp(t, tz).utcoffset() or timedelta(0)
        return delta.total_seconds()

    first = off(start)
    transitions: list[tuple[float, float]] = []
    t, prev = start, first
    step = 6 * 3600.0
    while t < end:
        nxt = min(t + step, end)
        now_off = off(nxt)
        if now_off != prev:
            lo, hi = t, nxt  # off(lo) == prev, off(hi) != prev: the change lies in (lo, hi]
            while hi - lo > 1:
                mid = (lo + hi) // 2
                lo, hi = (mid, hi) if off(mid) == prev else (lo, mid)
            transitions.append((float(hi), now_off))
            prev = now_off
        t = nxt
    return Zone(name, first, tuple(transitions))


def parse_time(text: str, zone_name: str | None) -> float:
    """An instant from `YYYY-MM-DD`, `YYYY-MM-DDTHH:MM[:SS]` (local time of the zone unless it
    carries an offset or Z) or epoch seconds. Raises ValueError naming the text."""
    text = text.strip()
    try:
        t = float(text)
    except ValueError:
        try:
            dt = datetime.fromisoformat(text.replace("Z", "+00:00"))
        except ValueError:
            raise ValueError(f"{text!r} is not a date (YYYY-MM-DD), a date and time (YYYY-MM-DDTHH:MM) "
                             "or epoch seconds") from None
        if dt.tzinfo is None:
            tz = ZoneInfo(zone_name) if zone_name and zone_name != "UTC" else UTC
            dt = dt.replace(tzinfo=tz)
        t = dt.timestamp()
    if not EARLIEST <= t <= LATEST:  # also refuses nan and inf
        raise ValueError(f"{text!r} is outside the years 1970 to 9998")
    return t
