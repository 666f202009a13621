"""Deadline arithmetic: calendar time and business time in an organisation's time zone.

Pure functions, no database and no I/O. Business hours are wall-clock intervals per weekday in
the organisation's IANA zone plus whole-day holidays; each interval's bounds are converted to UTC
on its own day, so days when the clocks change have their real length (an interval 01:00–04:00
lasts 2 h on a spring-forward night and 4 h on a fall-back night).

Rules for local times that do not exist or exist twice on a clock-change day:

* a bound that does not exist (inside the spring-forward gap) moves forward to the clock change,
  the first instant that exists after it;
* an opening that happens twice is the first occurrence, a closing that happens twice is the
  last one: the interval covers its whole wall-clock span, repeated hour included.

Every function takes and returns aware datetimes (naive ones are refused with ``ValueError``);
results are in UTC.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from functools import lru_cache
from itertools import pairwise
from typing import Any
from zoneinfo import ZoneInfo

import msgspec

from backend.lib.errors import FieldError
from backend.lib.wallclock import (
    DAYS,
    MAX_INTERVALS_PER_DAY,
    Interval,
    as_utc,
    field_error_of,
    minutes_of_day,
    raise_invalid,
    wall_to_utc,
    zone_of,
)

MAX_HOLIDAYS = 1000
# A schedule that yields no working time for this long is treated as broken, not waited out.
SEARCH_LIMIT_DAYS = 366


class WeekHours(msgspec.Struct, frozen=True, rename="camel", forbid_unknown_fields=True):
    """Working intervals per weekday as ``("HH:MM", "HH:MM")`` pairs, local time, end exclusive.

    A day may hold several intervals (a lunch break); ``"24:00"`` is allowed as an end. A day
    left out or empty is closed. Overnight work is split at midnight over two days.
    """

    mon: tuple[Interval, ...] = ()
    tue: tuple[Interval, ...] = ()
    wed: tuple[Interval, ...] = ()
    thu: tuple[Interval, ...] = ()
    fri: tuple[Interval, ...] = ()
    sat: tuple[Interval, ...] = ()
    sun: tuple[Interval, ...] = ()


class BusinessHours(msgspec.Struct, frozen=True, rename="camel", forbid_unknown_fields=True):
    """An organisation's working week and holidays (whole local days off).

    JSON shape (as stored in ``organizations.business_hours``)::

        {"week": {"mon": [["09:00", "13:00"], ["14:00", "18:00"]], ..., "sun": []},
         "holidays": ["2026-12-25", "2027-01-01"]}

    Build it with :func:`parse_business_hours`, which validates and normalises (intervals sorted,
    holidays sorted and deduplicated); immutable and hashable.
    """

    week: WeekHours
    holidays: tuple[date, ...] = ()


_WORKDAY: tuple[Interval, ...] = (("09:00", "18:00"),)
DEFAULT_BUSINESS_HOURS = BusinessHours(
    week=WeekHours(mon=_WORKDAY, tue=_WORKDAY, wed=_WORKDAY, thu=_WORKDAY, fri=_WORKDAY)
)
"""Monday to Friday, 09:00–18:00, no holidays."""


# --- parsing and validation -----------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Schedule:
    """Business hours compiled for arithmetic: minute ranges per weekday (Monday = 0)."""

    days: tuple[tuple[tuple[int, int], ...], ...]
    holidays: frozenset[date]


def _check(hours: BusinessHours, field: str) -> tuple[_Schedule, list[FieldError]]:
    errors: list[FieldError] = []
    days: list[tuple[tuple[int, int], ...]] = []
    for day in DAYS:
        intervals: tuple[Interval, ...] = getattr(hours.week, day)
        day_field = f"{field}.week.{day}"
        if len(intervals) > MAX_INTERVALS_PER_DAY:
            errors.append(FieldError(day_field, f"at most {MAX_INTERVALS_PER_DAY} intervals a day"))
            days.append(())
            continue
        ranges: list[tuple[int, int, int]] = []  # (start, end, index in the input)
        for index, (start_text, end_text) in enumerate(intervals):
            start, end = minutes_of_day(start_text), minutes_of_day(end_text)
            for position, value in ((0, start), (1, end)):
                if value is None:
                    errors.append(
                        FieldError(
                            f"{day_field}[{index}][{position}]",
                            'must be a time "HH:MM" between "00:00" and "24:00"',
                        )
                    )
            if start is None or end is None:
                continue
            if start >= end:
                errors.append(FieldError(f"{day_field}[{index}]", "start must be before end"))
                continue
            ranges.append((start, end, index))
        ranges.sort()
        for (_, previous_end, previous), (start, _, index) in pairwise(ranges):
            if start < previous_end:
                errors.append(
                    FieldError(f"{day_field}[{index}]", f"overlaps {day_field}[{previous}]")
                )
        days.append(tuple((start, end) for start, end, _ in ranges))
    if len(hours.holidays) > MAX_HOLIDAYS:
        errors.append(FieldError(f"{field}.holidays", f"at most {MAX_HOLIDAYS} holidays"))
    if not errors and not any(days):
        errors.append(FieldError(f"{field}.week", "no working time in the week"))
    return _Schedule(days=tuple(days), holidays=frozenset(hours.holidays)), errors


def parse_business_hours(raw: object, field: str = "businessHours") -> BusinessHours:
    """Validate and normalise business hours from JSON-like data (or a ``BusinessHours``).

    Raises ``InvalidInput`` naming each broken part by its path under ``field``, such as
    ``businessHours.week.mon[0]`` ("start must be before end", "overlaps ..."),
    ``businessHours.week.mon[0][1]`` (not "HH:MM"), ``businessHours.week.mond`` (unknown day),
    ``businessHours.holidays[2]`` (not a date) or ``businessHours.week`` (no working time).
    """
    try:
        hours = msgspec.convert(raw, BusinessHours)
    except msgspec.ValidationError as exc:
        raise_invalid([field_error_of(exc, field)])
    schedule, errors = _check(hours, field)
    if errors:
        raise_invalid(errors)
    week = {
        day: tuple(
            (f"{start // 60:02d}:{start % 60:02d}", f"{end // 60:02d}:{end % 60:02d}")
            for start, end in schedule.days[number]
        )
        for number, day in enumerate(DAYS)
    }
    return BusinessHours(week=WeekHours(**week), holidays=tuple(sorted(schedule.holidays)))


def load_business_hours(stored: Mapping[str, Any] | None) -> BusinessHours:
    """Business hours from the organisation's JSONB column: ``{}`` or None is the default."""
    if not stored:
        return DEFAULT_BUSINESS_HOURS
    return parse_business_hours(stored)


def dump_business_hours(hours: BusinessHours) -> dict[str, Any]:
    """Plain JSON data (lists, strings) for storage; ``parse_business_hours`` reads it back."""
    data: dict[str, Any] = msgspec.json.decode(msgspec.json.encode(hours))
    return data


@lru_cache(maxsize=256)
def _compile_cached(hours: BusinessHours) -> _Schedule:
    schedule, errors = _check(hours, "businessHours")
    if errors:
        raise_invalid(errors)
    return schedule


def _compile(hours: BusinessHours) -> _Schedule:
    try:
        return _compile_cached(hours)
    except TypeError:  # built by hand with lists instead of tuples: unhashable, not cached
        schedule, errors = _check(hours, "businessHours")
        if errors:
            raise_invalid(errors)
        return schedule


# --- arithmetic ------------------------------------------------------------------------------


def _intervals(
    schedule: _Schedule, zone: ZoneInfo, after: datetime, stop: datetime | None = None
) -> Iterator[tuple[datetime, datetime]]:
    """Working intervals ``[start, end)`` in UTC, in order, disjoint, clipped to begin at ``after``.

    Walks day by day from the local day before ``after``, skipping closed days and holidays at
    once. Ends when the days pass ``stop``; without ``stop`` raises ValueError after
    ``SEARCH_LIMIT_DAYS`` days without any working time.
    """
    day = after.astimezone(zone).date() - timedelta(days=1)
    cursor = after
    idle_days = 0
    while True:
        # No local day starts more than 26 hours before its UTC midnight.
        if stop is not None and datetime.combine(day, time(), UTC) - timedelta(hours=26) > stop:
            return
        found = False
        if day not in schedule.holidays:
            for start_minute, end_minute in schedule.days[day.weekday()]:
                start = wall_to_utc(day, start_minute, zone, closing=False)
                end = wall_to_utc(day, end_minute, zone, closing=True)
                start = max(start, cursor)
                if end <= start:
                    continue
                found = True
                yield start, end
                cursor = end
        idle_days = 0 if found else idle_days + 1
        if stop is None and idle_days > SEARCH_LIMIT_DAYS:
            raise ValueError(
                f"no working time within {SEARCH_LIMIT_DAYS} days after {after.isoformat()}"
            )
        day += timedelta(days=1)


def add_business_time(start: datetime, delta: timedelta, hours: BusinessHours, tz: str) -> datetime:
    """The UTC instant when ``delta`` of working time has elapsed after ``start``.

    Only working intervals of ``hours`` in the zone ``tz`` count; outside them the clock waits
    for the next opening. A deadline that uses up an interval exactly ends at its closing time.
    ``delta == 0`` gives ``start`` when it is working time, else the next opening.

    Raises ValueError for a naive ``start``, a negative ``delta``, an unknown zone, or when no
    working time comes within a year (every day a holiday); ``InvalidInput`` for invalid hours.
    """
    cursor = as_utc(start, "start")
    if delta < timedelta(0):
        raise ValueError(f"delta must not be negative, got {delta}")
    remaining = delta
    for opening, closing in _intervals(_compile(hours), zone_of(tz), cursor):
        if remaining <= closing - opening:
            return opening + remaining
        remaining -= closing - opening
    raise AssertionError("unreachable: _intervals never ends without stop")  # pragma: no cover


def business_time_between(
    start: datetime, end: datetime, hours: BusinessHours, tz: str
) -> timedelta:
    """Working time from ``start`` to ``end`` (negative when ``end`` comes first).

    The inverse of :func:`add_business_time`: ``business_time_between(s, add_business_time(s,
    d, ...), ...) == d``. Useful for "time left" and paused SLA clocks.
    """
    begin, finish = as_utc(start, "start"), as_utc(end, "end")
    if finish < begin:
        return -business_time_between(finish, begin, hours, tz)
    total = timedelta(0)
    for opening, closing in _intervals(_compile(hours), zone_of(tz), begin, stop=finish):
        if opening >= finish:
            break
        total += min(closing, finish) - opening
    return total


def next_opening(at: datetime, hours: BusinessHours, tz: str) -> datetime:
    """``at`` (in UTC) when it is working time, else the start of the next working interval.

    Raises ValueError when no working time comes within a year.
    """
    moment = as_utc(at, "at")
    for opening, _ in _intervals(_compile(hours), zone_of(tz), moment):
        return opening
    raise AssertionError("unreachable: _intervals never ends without stop")  # pragma: no cover


def is_working_time(at: datetime, hours: BusinessHours, tz: str) -> bool:
    """Whether ``at`` falls inside a working interval (start inclusive, end exclusive)."""
    moment = as_utc(at, "at")
    for opening, _ in _intervals(_compile(hours), zone_of(tz), moment, stop=moment):
        return opening == moment
    return False


def add_calendar_time(start: datetime, delta: timedelta) -> datetime:
    """``start`` plus ``delta`` of elapsed time, in UTC.

    Explicit because adding to an aware datetime in a zone is wall-clock arithmetic in Python
    (a day after 12:00 the day before a clock change would be 23 or 25 hours, not 24).
    """
    return as_utc(start, "start") + delta


def due_at(
    start: datetime, minutes: int, *, business_hours: BusinessHours | None, tz: str
) -> datetime:
    """The deadline ``minutes`` after ``start``: business time when hours are given, else
    calendar time. Returns UTC; raises ValueError for negative minutes or an unknown zone."""
    if minutes < 0:
        raise ValueError(f"minutes must not be negative, got {minutes}")
    zone_of(tz)
    delta = timedelta(minutes=minutes)
    if business_hours is None:
        return add_calendar_time(start, delta)
    return add_business_time(start, delta, business_hours, tz)


__all__ = [
    "DAYS",
    "DEFAULT_BUSINESS_HOURS",
    "BusinessHours",
    "WeekHours",
    "add_business_time",
    "add_calendar_time",
    "business_time_between",
    "due_at",
    "dump_business_hours",
    "is_working_time",
    "load_business_hours",
    "next_opening",
    "parse_business_hours",
]
