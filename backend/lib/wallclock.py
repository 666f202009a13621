"""Wall-clock times in an IANA zone: weekly "HH:MM" intervals, their UTC instants on clock-change
days, and the validation helpers that business hours and shift schedules share.

Rules for local times that do not exist or exist twice on a clock-change day: a bound inside the
spring-forward gap moves forward to the change; an opening that happens twice is its first
occurrence, a closing that happens twice its last one.
"""

from __future__ import annotations

import re
from datetime import UTC, date, datetime, time, timedelta
from functools import lru_cache
from typing import NoReturn
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import msgspec

from backend.lib.errors import FieldError, InvalidInput

DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
MAX_INTERVALS_PER_DAY = 24

Interval = tuple[str, str]
"""One ``("HH:MM", "HH:MM")`` pair of wall-clock times."""

_HH_MM = re.compile(r"^([01][0-9]|2[0-3]):([0-5][0-9])$")
_MSGSPEC_AT = re.compile(r"\s*-\s*at\s*`\$(?P<path>[^`]*)`\s*$")
_UNKNOWN_FIELD = re.compile(r"^Object contains unknown field `(?P<name>[^`]*)`")
_MISSING_FIELD = re.compile(r"^Object missing required field `(?P<name>[^`]*)`")


def minutes_of_day(text: str) -> int | None:
    """Minutes after midnight of ``"HH:MM"`` (``"24:00"`` is 1440), or None."""
    if text == "24:00":
        return 24 * 60
    match = _HH_MM.match(text)
    return int(match.group(1)) * 60 + int(match.group(2)) if match else None


def raise_invalid(errors: list[FieldError]) -> NoReturn:
    """Raise ``InvalidInput`` listing every field error."""
    raise InvalidInput("; ".join(f"{e.field}: {e.reason}" for e in errors), errors=errors)


def field_error_of(exc: msgspec.ValidationError, field: str) -> FieldError:
    """A msgspec message ("Expected `str`, got `int` - at `$.week.mon[0][1]`") as a FieldError."""
    message = str(exc)
    path = ""
    match = _MSGSPEC_AT.search(message)
    if match:
        path, message = match.group("path"), message[: match.start()].strip()
    unknown = _UNKNOWN_FIELD.match(message)
    if unknown:
        name = unknown.group("name")
        if path == ".week":
            reason = f"unknown day; expected one of {', '.join(DAYS)}"
        else:
            reason = "unknown field"
        return FieldError(f"{field}{path}.{name}", reason)
    missing = _MISSING_FIELD.match(message)
    if missing:
        return FieldError(f"{field}{path}.{missing.group('name')}", "required")
    return FieldError(f"{field}{path}", message)


@lru_cache(maxsize=512)
def zone_of(tz: str) -> ZoneInfo:
    """The zone of an IANA name; ``ValueError`` for an unknown one."""
    try:
        return ZoneInfo(tz)
    except (ZoneInfoNotFoundError, ValueError, OSError) as exc:  # OSError: "Europe" is a folder
        raise ValueError(f"unknown time zone {tz!r}") from exc


def as_utc(moment: datetime, name: str = "datetime") -> datetime:
    """An aware instant in UTC; ``ValueError`` for a naive one."""
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise ValueError(f"{name} must be timezone-aware, got naive {moment!r}")
    return moment.astimezone(UTC)


def wall_to_utc(day: date, minute: int, zone: ZoneInfo, *, closing: bool) -> datetime:
    """The instant the wall clock of ``zone`` shows ``minute`` after midnight of ``day``.

    A time that happens twice is taken at its first occurrence for an opening and its last for
    a closing; a time that does not exist moves forward to the clock change.
    """
    wall = datetime.combine(day, time()) + timedelta(minutes=minute)
    first = wall.replace(tzinfo=zone, fold=0).utcoffset()
    second = wall.replace(tzinfo=zone, fold=1).utcoffset()
    assert first is not None
    assert second is not None
    if first == second:
        return (wall - first).replace(tzinfo=UTC)
    if first > second:  # repeated (fall back): fold 0 is the earlier instant
        return (wall - (second if closing else first)).replace(tzinfo=UTC)
    # Skipped (spring forward): the change lies between the two readings; find it to the second.
    low = int((wall - second).replace(tzinfo=UTC).timestamp())  # before the change
    high = int((wall - first).replace(tzinfo=UTC).timestamp())  # after the change
    while high - low > 1:
        middle = (low + high) // 2
        if datetime.fromtimestamp(middle, zone).utcoffset() == first:
            low = middle
        else:
            high = middle
    return datetime.fromtimestamp(high, UTC)
