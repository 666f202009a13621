"""Scheduled shifts: a field worker's weekly shift pattern in the worker's own time zone.

Pure functions, no database and no I/O. GPS points are kept only inside a shift; for a worker
with a schedule that means inside a scheduled window (give or take ``grace_minutes``).

A schedule lists wall-clock intervals per weekday in the worker's IANA zone. An interval whose
end comes before its start crosses midnight: ``["22:00", "06:00"]`` on Friday runs from Friday
22:00 to Saturday 06:00 (Sunday night runs into Monday). ``"24:00"`` is allowed as an end.

Windows are built day by day in local time and converted to UTC with the rules of
:mod:`backend.lib.wallclock`, so a window has its real length on a clock-change day (01:00–05:00
lasts 3 h on a spring-forward night and 5 h on a fall-back night):

* a bound that does not exist (inside the spring-forward gap) moves forward to the clock change;
* a start that happens twice is its first occurrence, an end that happens twice its last one.

When those rules make two back-to-back shifts overlap (both touch the repeated hour), the later
one starts when the earlier ends: windows are always sorted and disjoint.

Every function takes aware datetimes (naive ones are refused with ``ValueError``) and returns
UTC. For batches use :func:`mask`, which builds the windows once for the batch and classifies
each instant by binary search.
"""

from __future__ import annotations

from bisect import bisect_right
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
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

DEFAULT_GRACE_MINUTES = 15
MAX_GRACE_MINUTES = 240

_DAY = 24 * 60
_WEEK = 7 * _DAY
# Instants this far apart in a batch get their windows built separately (no work for the gap).
_CLUSTER_GAP = timedelta(days=2)
_TICK = timedelta(microseconds=1)
_SAFE_MIN = datetime.min.replace(tzinfo=UTC) + timedelta(days=8)
_SAFE_MAX = datetime.max.replace(tzinfo=UTC) - timedelta(days=8)

Window = tuple[datetime, datetime]


class WeeklyShifts(msgspec.Struct, frozen=True, rename="camel", forbid_unknown_fields=True):
    """A worker's shifts per weekday as ``("HH:MM", "HH:MM")`` pairs, local time, end exclusive.

    JSON shape (``graceMinutes`` optional, default 15; a day left out or empty has no shift)::

        {"mon": [["08:00", "17:00"]], "tue": [["22:00", "06:00"]], ..., "sat": [["09:00", "14:00"]],
         "sun": [], "graceMinutes": 15}

    An end before the start crosses midnight into the next day; ``"24:00"`` is allowed as an end.
    ``grace_minutes``: points this long before a start or after an end still count as in shift.
    Build it with :func:`parse_weekly_shifts`, which validates and normalises (each day's
    intervals sorted by start, an overnight end at ``"00:00"`` written ``"24:00"``); immutable
    and hashable.
    """

    mon: tuple[Interval, ...] = ()
    tue: tuple[Interval, ...] = ()
    wed: tuple[Interval, ...] = ()
    thu: tuple[Interval, ...] = ()
    fri: tuple[Interval, ...] = ()
    sat: tuple[Interval, ...] = ()
    sun: tuple[Interval, ...] = ()
    grace_minutes: int = DEFAULT_GRACE_MINUTES


# --- parsing and validation -----------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Compiled:
    """A schedule ready for arithmetic.

    ``days[weekday]`` (Monday = 0) holds ``(start, end)`` in minutes after that day's midnight,
    sorted by start, with ``start < end <= start + 1440`` (an end past 1440 is on the next day).
    """

    days: tuple[tuple[tuple[int, int], ...], ...]
    grace: timedelta

    @property
    def empty(self) -> bool:
        return not any(self.days)


def _hh_mm(minute: int) -> str:
    return f"{minute // 60:02d}:{minute % 60:02d}"


def _check(shifts: WeeklyShifts, field: str) -> tuple[_Compiled, list[FieldError]]:
    errors: list[FieldError] = []
    days: list[list[tuple[int, int, int]]] = []  # per weekday: (start, end, index in the input)
    for day in DAYS:
        intervals: Sequence[Sequence[str]] = getattr(shifts, day)
        day_field = f"{field}.{day}"
        ranges: list[tuple[int, int, int]] = []
        days.append(ranges)
        if len(intervals) > MAX_INTERVALS_PER_DAY:
            errors.append(FieldError(day_field, f"at most {MAX_INTERVALS_PER_DAY} intervals a day"))
            continue
        for index, (start_text, end_text) in enumerate(intervals):
            start, end = minutes_of_day(start_text), minutes_of_day(end_text)
            if start is None or start == _DAY:
                errors.append(
                    FieldError(
                        f"{day_field}[{index}][0]",
                        'must be a time "HH:MM" between "00:00" and "23:59"',
                    )
                )
                start = None
            if end is None:
                errors.append(
                    FieldError(
                        f"{day_field}[{index}][1]",
                        'must be a time "HH:MM" between "00:00" and "24:00"',
                    )
                )
            if start is None or end is None:
                continue
            if end == start:
                errors.append(FieldError(f"{day_field}[{index}]", "start and end must differ"))
                continue
            ranges.append((start, end if end > start else end + _DAY, index))
        ranges.sort()

    # Overlaps, on the whole week as one circle: Sunday night runs into Monday morning.
    week = sorted(
        (number * _DAY + start, number * _DAY + end, number, index)
        for number, ranges in enumerate(days)
        for start, end, index in ranges
    )

    def name(number: int, index: int) -> str:
        return f"{field}.{DAYS[number]}[{index}]"

    for (_, previous_end, day_before, previous), (start, _, number, index) in pairwise(week):
        if start < previous_end:
            errors.append(FieldError(name(number, index), f"overlaps {name(day_before, previous)}"))
    for _, end, day_before, previous in week:
        for start, _, number, index in week:
            if end - _WEEK <= start:
                break
            errors.append(FieldError(name(number, index), f"overlaps {name(day_before, previous)}"))

    grace = shifts.grace_minutes
    if not 0 <= grace <= MAX_GRACE_MINUTES:
        errors.append(
            FieldError(f"{field}.graceMinutes", f"must be between 0 and {MAX_GRACE_MINUTES}")
        )
        grace = 0
    compiled = _Compiled(
        days=tuple(tuple((start, end) for start, end, _ in ranges) for ranges in days),
        grace=timedelta(minutes=grace),
    )
    return compiled, errors


def parse_weekly_shifts(raw: object, field: str = "schedule") -> WeeklyShifts:
    """Validate and normalise a weekly shift pattern from JSON-like data (or a ``WeeklyShifts``).

    Raises ``InvalidInput`` naming each broken part by its path under ``field``, such as
    ``schedule.mon[0]`` ("start and end must differ", "overlaps schedule.sun[0]"),
    ``schedule.mon[0][1]`` (not "HH:MM"), ``schedule.mond`` (unknown day) or
    ``schedule.graceMinutes`` (out of range). An empty schedule is valid: never in shift.
    """
    try:
        shifts = msgspec.convert(raw, WeeklyShifts)
    except msgspec.ValidationError as exc:
        error = field_error_of(exc, field)
        if error.reason == "unknown field" and error.field.count(".") == field.count(".") + 1:
            error = FieldError(
                error.field, f"unknown day; expected one of {', '.join(DAYS)} (or graceMinutes)"
            )
        raise_invalid([error])
    compiled, errors = _check(shifts, field)
    if errors:
        raise_invalid(errors)
    week = {
        day: tuple(
            (_hh_mm(start), _hh_mm(end - _DAY if end > _DAY else end)) for start, end in spans
        )
        for day, spans in zip(DAYS, compiled.days, strict=True)
    }
    return WeeklyShifts(**week, grace_minutes=shifts.grace_minutes)


def dump_weekly_shifts(shifts: WeeklyShifts) -> dict[str, Any]:
    """Plain JSON data (lists, strings) for storage; ``parse_weekly_shifts`` reads it back."""
    data: dict[str, Any] = msgspec.json.decode(msgspec.json.encode(shifts))
    return data


@lru_cache(maxsize=1024)
def _compile_cached(shifts: WeeklyShifts) -> _Compiled:
    compiled, errors = _check(shifts, "schedule")
    if errors:
        raise_invalid(errors)
    return compiled


def _compile(shifts: WeeklyShifts) -> _Compiled:
    try:
        return _compile_cached(shifts)
    except TypeError:  # built by hand with lists instead of tuples: unhashable, not cached
        compiled, errors = _check(shifts, "schedule")
        if errors:
            raise_invalid(errors)
        return compiled


# --- windows ---------------------------------------------------------------------------------


def _clamp(moment: datetime) -> datetime:
    """Keep arithmetic a few days clear of the ends of ``datetime``'s range."""
    return min(max(moment, _SAFE_MIN), _SAFE_MAX)


def _local_days(
    compiled: _Compiled, zone: ZoneInfo, start: datetime, end: datetime
) -> Iterator[Window]:
    """Every window of the local days around ``[start, end)``, in order, before any clipping."""
    # A window starts on its local day and ends by the next midnight; starting three days early
    # leaves a full day of margin before ``start`` whatever the offsets and clock changes (and
    # the clipping of the first window that matters is the same whatever the range).
    day: date = _clamp(start).astimezone(zone).date() - timedelta(days=3)
    last: date = _clamp(end).astimezone(zone).date() + timedelta(days=1)
    while day <= last:
        for start_minute, end_minute in compiled.days[day.weekday()]:
            yield (
                wall_to_utc(day, start_minute, zone, closing=False),
                wall_to_utc(day, end_minute, zone, closing=True),
            )
        day += timedelta(days=1)


def _windows(compiled: _Compiled, zone: ZoneInfo, start: datetime, end: datetime) -> list[Window]:
    """The windows intersecting ``[start, end)`` (UTC, aware), sorted and disjoint, unclipped."""
    found: list[Window] = []
    if compiled.empty or end <= start:
        return found
    cursor: datetime | None = None
    for opening, closing in _local_days(compiled, zone, start, end):
        # Starts follow the wall clock and never go back; only a start on the repeated hour can
        # fall before the previous end (that end is the last reading of the hour).
        if cursor is not None and opening < cursor:
            opening = cursor
        if closing <= opening:  # lost in the spring-forward gap
            continue
        cursor = closing
        if opening < end and closing > start:
            found.append((opening, closing))
    return found


def windows(shifts: WeeklyShifts, tz: str, start: datetime, end: datetime) -> list[Window]:
    """The scheduled shift windows in zone ``tz`` that intersect ``[start, end)``, without grace.

    Whole windows ``(start, end)`` (end exclusive) in UTC, sorted and disjoint; a window that
    began before ``start`` or ends after ``end`` is returned whole, not cut. Raises ValueError for
    naive datetimes, ``end`` before ``start`` or an unknown zone; ``InvalidInput`` for an invalid
    schedule.
    """
    begin, finish = as_utc(start, "start"), as_utc(end, "end")
    if finish < begin:
        raise ValueError(f"end {finish.isoformat()} is before start {begin.isoformat()}")
    return _windows(_compile(shifts), zone_of(tz), begin, finish)


def _clusters(moments: list[datetime]) -> Iterator[tuple[datetime, datetime]]:
    """Sorted instants grouped into runs without a gap longer than ``_CLUSTER_GAP``."""
    first = previous = moments[0]
    for moment in moments[1:]:
        if moment - previous > _CLUSTER_GAP:
            yield first, previous
            first = moment
        previous = moment
    yield first, previous


def _mask(compiled: _Compiled, zone: ZoneInfo, moments: list[datetime]) -> list[bool]:
    if compiled.empty or not moments:
        return [False] * len(moments)
    grace = compiled.grace
    # Windows widened by the grace, merged where they touch: sorted disjoint [start, end).
    starts: list[datetime] = []
    ends: list[datetime] = []
    for first, last in _clusters(sorted(moments)):
        low, high = _clamp(first) - grace, _clamp(last) + grace + _TICK
        for opening, closing in _windows(compiled, zone, low, high):
            opening, closing = opening - grace, closing + grace
            if ends and opening <= ends[-1]:
                ends[-1] = max(ends[-1], closing)
            else:
                starts.append(opening)
                ends.append(closing)
    result: list[bool] = []
    for moment in moments:
        position = bisect_right(starts, moment) - 1
        result.append(position >= 0 and moment < ends[position])
    return result


def mask(shifts: WeeklyShifts, tz: str, instants: Sequence[datetime]) -> list[bool]:
    """For each instant, whether it is in shift (grace included): ``in_shift`` for a batch.

    Builds the windows once for the span of the batch (instants far apart in time are grouped,
    so one stray timestamp does not cost years of windows) and places each instant by bisection.
    Raises ValueError naming the first naive instant (``instants[3]``) or an unknown zone.
    """
    compiled, zone = _compile(shifts), zone_of(tz)
    moments = [as_utc(moment, f"instants[{index}]") for index, moment in enumerate(instants)]
    return _mask(compiled, zone, moments)


def in_shift(shifts: WeeklyShifts, tz: str, at: datetime) -> bool:
    """Whether ``at`` lies in a scheduled window, widened by ``grace_minutes`` at both ends.

    Start inclusive, end exclusive: in shift from ``start - grace`` up to ``end + grace``.
    """
    compiled, zone = _compile(shifts), zone_of(tz)
    return _mask(compiled, zone, [as_utc(at, "at")])[0]


def shift_at(shifts: WeeklyShifts, tz: str, at: datetime) -> Window | None:
    """The scheduled window (without grace) that ``at`` belongs to, or None when not in shift.

    The window containing ``at``; else, within the grace, the nearest one (the earlier on a tie).
    Not None exactly when :func:`in_shift` is true.
    """
    moment = as_utc(at, "at")
    compiled, zone = _compile(shifts), zone_of(tz)
    grace = compiled.grace
    clamped = _clamp(moment)
    best: Window | None = None
    best_distance = timedelta.max
    for opening, closing in _windows(compiled, zone, clamped - grace, clamped + grace + _TICK):
        if opening <= moment < closing:
            return opening, closing
        distance = opening - moment if moment < opening else moment - closing
        if opening - grace <= moment < closing + grace and distance < best_distance:
            best, best_distance = (opening, closing), distance
    return best


__all__ = [
    "DEFAULT_GRACE_MINUTES",
    "MAX_GRACE_MINUTES",
    "WeeklyShifts",
    "Window",
    "dump_weekly_shifts",
    "in_shift",
    "mask",
    "parse_weekly_shifts",
    "shift_at",
    "windows",
]
