"""Deadline arithmetic: business hours in the organisation's zone, DST days, holidays, parsing."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import msgspec
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from backend.lib.errors import InvalidInput
from backend.tasks.deadlines import (
    DEFAULT_BUSINESS_HOURS,
    BusinessHours,
    WeekHours,
    add_business_time,
    add_calendar_time,
    business_time_between,
    due_at,
    dump_business_hours,
    is_working_time,
    load_business_hours,
    next_opening,
    parse_business_hours,
)

BERLIN = "Europe/Berlin"
MOSCOW = "Europe/Moscow"
NEW_YORK = "America/New_York"
KOLKATA = "Asia/Kolkata"
CHATHAM = "Pacific/Chatham"
DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")

# The week of Monday 2026-11-23 .. Sunday 2026-11-29 has no DST change in any zone used here.
MON, TUE, WED, THU, FRI, SAT = 23, 24, 25, 26, 27, 28


def local(
    tz: str, year: int, month: int, day: int, hour: int = 0, minute: int = 0, second: int = 0
) -> datetime:
    """An aware datetime on the wall clock of ``tz``."""
    return datetime(year, month, day, hour, minute, second, tzinfo=ZoneInfo(tz))


def utc(year: int, month: int, day: int, hour: int = 0, minute: int = 0) -> datetime:
    return datetime(year, month, day, hour, minute, tzinfo=UTC)


def hours_of(week: dict[str, list[list[str]]], holidays: list[str] | None = None) -> BusinessHours:
    raw: dict[str, Any] = {"week": week}
    if holidays is not None:
        raw["holidays"] = holidays
    return parse_business_hours(raw)


def every_day(*intervals: tuple[str, str]) -> BusinessHours:
    return hours_of({day: [list(i) for i in intervals] for day in DAYS})


WEEKDAYS_WITH_LUNCH = hours_of(
    {day: [["09:00", "13:00"], ["14:00", "18:00"]] for day in ("mon", "tue", "wed", "thu", "fri")}
)
NIGHTS = every_day(("01:00", "04:00"))


def berlin_deadline(
    start: datetime, minutes: float, hours: BusinessHours | None = None
) -> datetime:
    return add_business_time(
        start, timedelta(minutes=minutes), hours or DEFAULT_BUSINESS_HOURS, BERLIN
    )


# --- everyday cases ---------------------------------------------------------------------------


def test_fifteen_minutes_inside_working_hours() -> None:
    start = local(BERLIN, 2026, 11, TUE, 10, 0)
    assert berlin_deadline(start, 15) == local(BERLIN, 2026, 11, TUE, 10, 15)


def test_friday_evening_rolls_over_to_monday_morning() -> None:
    start = local(BERLIN, 2026, 11, FRI, 17, 50)
    assert berlin_deadline(start, 15) == local(BERLIN, 2026, 11, 30, 9, 5)


def test_lead_at_night_starts_the_clock_next_morning() -> None:
    start = local(BERLIN, 2026, 11, TUE, 22, 0)
    assert berlin_deadline(start, 15) == local(BERLIN, 2026, 11, WED, 9, 15)


def test_lead_before_opening_starts_the_clock_at_opening() -> None:
    start = local(BERLIN, 2026, 11, TUE, 6, 30)
    assert berlin_deadline(start, 15) == local(BERLIN, 2026, 11, TUE, 9, 15)


def test_weekend_lead_waits_for_monday() -> None:
    start = local(BERLIN, 2026, 11, SAT, 11, 0)
    assert berlin_deadline(start, 60) == local(BERLIN, 2026, 11, 30, 10, 0)


def test_two_hours_across_the_lunch_break() -> None:
    start = local(BERLIN, 2026, 11, TUE, 12, 0)
    assert berlin_deadline(start, 120, WEEKDAYS_WITH_LUNCH) == local(BERLIN, 2026, 11, TUE, 15, 0)


def test_lead_during_lunch_waits_for_the_afternoon() -> None:
    start = local(BERLIN, 2026, 11, TUE, 13, 20)
    assert berlin_deadline(start, 30, WEEKDAYS_WITH_LUNCH) == local(BERLIN, 2026, 11, TUE, 14, 30)


def test_holidays_are_skipped() -> None:
    hours = hours_of(
        {day: [["09:00", "18:00"]] for day in ("mon", "tue", "wed", "thu", "fri")},
        holidays=["2026-11-30"],
    )
    friday_evening = local(BERLIN, 2026, 11, FRI, 17, 50)
    assert berlin_deadline(friday_evening, 15, hours) == local(BERLIN, 2026, 12, 1, 9, 5)
    # A lead arriving during the holiday itself waits as well.
    on_the_holiday = local(BERLIN, 2026, 11, 30, 11, 0)
    assert berlin_deadline(on_the_holiday, 15, hours) == local(BERLIN, 2026, 12, 1, 9, 15)
    assert not is_working_time(on_the_holiday, hours, BERLIN)


def test_several_consecutive_holidays() -> None:
    hours = hours_of(
        {day: [["09:00", "18:00"]] for day in ("mon", "tue", "wed", "thu", "fri")},
        holidays=["2026-12-31", "2027-01-01", "2027-01-04", "2027-01-05"],
    )
    start = local(BERLIN, 2026, 12, 30, 17, 0)
    assert berlin_deadline(start, 120, hours) == local(BERLIN, 2027, 1, 6, 10, 0)


def test_start_exactly_at_closing_time() -> None:
    closing = local(BERLIN, 2026, 11, FRI, 18, 0)
    assert berlin_deadline(closing, 15) == local(BERLIN, 2026, 11, 30, 9, 15)
    assert not is_working_time(closing, DEFAULT_BUSINESS_HOURS, BERLIN)


def test_deadline_that_fills_the_day_ends_at_closing_time() -> None:
    start = local(BERLIN, 2026, 11, FRI, 17, 45)
    assert berlin_deadline(start, 15) == local(BERLIN, 2026, 11, FRI, 18, 0)


def test_start_exactly_at_opening_time() -> None:
    opening = local(BERLIN, 2026, 11, TUE, 9, 0)
    assert berlin_deadline(opening, 15) == local(BERLIN, 2026, 11, TUE, 9, 15)
    assert is_working_time(opening, DEFAULT_BUSINESS_HOURS, BERLIN)


def test_multi_day_deltas() -> None:
    monday_morning = local(BERLIN, 2026, 11, MON, 9, 0)
    # Three working days of 9 hours.
    assert berlin_deadline(monday_morning, 27 * 60) == local(BERLIN, 2026, 11, WED, 18, 0)
    assert berlin_deadline(monday_morning, 27 * 60 + 1) == local(BERLIN, 2026, 11, THU, 9, 1)
    monday_noon = local(BERLIN, 2026, 11, MON, 12, 0)
    assert berlin_deadline(monday_noon, 27 * 60) == local(BERLIN, 2026, 11, THU, 12, 0)
    # Two working weeks from Wednesday noon end on the Wednesday noon two weeks later.
    wednesday_noon = local(BERLIN, 2026, 11, WED, 12, 0)
    assert berlin_deadline(wednesday_noon, 90 * 60) == local(BERLIN, 2026, 12, 9, 12, 0)


def test_zero_delta_is_the_start_inside_hours_or_the_next_opening() -> None:
    inside = local(BERLIN, 2026, 11, TUE, 10, 7, 30)
    assert berlin_deadline(inside, 0) == inside
    outside = local(BERLIN, 2026, 11, FRI, 19, 0)
    assert berlin_deadline(outside, 0) == local(BERLIN, 2026, 11, 30, 9, 0)
    assert next_opening(outside, DEFAULT_BUSINESS_HOURS, BERLIN) == local(
        BERLIN, 2026, 11, 30, 9, 0
    )
    assert next_opening(inside, DEFAULT_BUSINESS_HOURS, BERLIN) == inside


def test_microseconds_are_kept() -> None:
    start = datetime(2026, 11, 24, 10, 0, 0, 123456, tzinfo=ZoneInfo(BERLIN))
    result = add_business_time(start, timedelta(microseconds=1), DEFAULT_BUSINESS_HOURS, BERLIN)
    assert result == start + timedelta(microseconds=1)


def test_round_the_clock_schedule_is_calendar_time() -> None:
    always = every_day(("00:00", "24:00"))
    start = local(BERLIN, 2026, 3, 27, 15, 0)
    delta = timedelta(days=10, minutes=7)
    assert add_business_time(start, delta, always, BERLIN) == add_calendar_time(start, delta)


def test_overnight_shift_split_at_midnight() -> None:
    night = hours_of({day: [["00:00", "06:00"], ["22:00", "24:00"]] for day in DAYS})
    start = local(BERLIN, 2026, 11, TUE, 23, 0)
    assert berlin_deadline(start, 120, night) == local(BERLIN, 2026, 11, WED, 1, 0)


# --- time zones ------------------------------------------------------------------------------


def test_moscow_has_no_dst() -> None:
    friday = local(MOSCOW, 2026, 11, FRI, 17, 50)
    result = add_business_time(friday, timedelta(minutes=15), DEFAULT_BUSINESS_HOURS, MOSCOW)
    assert result == utc(2026, 11, 30, 6, 5)
    # The same wall-clock case in summer maps to the same UTC hour: +03:00 all year.
    summer = add_business_time(
        local(MOSCOW, 2026, 7, 3, 17, 50), timedelta(minutes=15), DEFAULT_BUSINESS_HOURS, MOSCOW
    )
    assert summer == utc(2026, 7, 6, 6, 5)


def test_berlin_default_hours_across_spring_forward_weekend() -> None:
    friday = local(BERLIN, 2026, 3, 27, 17, 0)  # CET, 16:00 UTC
    result = berlin_deadline(friday, 120)
    assert result == utc(2026, 3, 30, 8, 0)  # Monday 10:00 CEST
    assert result == local(BERLIN, 2026, 3, 30, 10, 0)


def test_berlin_default_hours_across_fall_back_weekend() -> None:
    friday = local(BERLIN, 2026, 10, 23, 17, 0)  # CEST, 15:00 UTC
    result = berlin_deadline(friday, 120)
    assert result == utc(2026, 10, 26, 9, 0)  # Monday 10:00 CET


@pytest.mark.parametrize(
    ("tz", "spring", "fall"),
    [
        (BERLIN, date(2026, 3, 29), date(2026, 10, 25)),
        (NEW_YORK, date(2026, 3, 8), date(2026, 11, 1)),
    ],
)
def test_an_interval_spanning_the_dst_change_has_its_real_length(
    tz: str, spring: date, fall: date
) -> None:
    zone = ZoneInfo(tz)

    def midnight(day: date) -> datetime:
        return datetime(day.year, day.month, day.day, tzinfo=zone)

    def worked(day: date) -> timedelta:
        return business_time_between(midnight(day), midnight(day + timedelta(days=1)), NIGHTS, tz)

    assert worked(spring - timedelta(days=1)) == timedelta(hours=3)
    assert worked(spring) == timedelta(hours=2)
    assert worked(fall) == timedelta(hours=4)
    assert worked(fall + timedelta(days=1)) == timedelta(hours=3)

    # Opening is 01:00 on the old offset, closing 04:00 on the new one.
    opening = next_opening(midnight(spring), NIGHTS, tz)
    assert opening == midnight(spring).replace(hour=1)
    assert add_business_time(midnight(spring), timedelta(hours=2), NIGHTS, tz) == opening + (
        timedelta(hours=2)
    )
    assert add_business_time(midnight(spring), timedelta(hours=2), NIGHTS, tz) == (
        midnight(spring).replace(hour=4)
    )
    # Three hours do not fit into the short night: the last hour is worked the next night.
    next_night = midnight(spring + timedelta(days=1)).replace(hour=2)
    assert add_business_time(midnight(spring), timedelta(hours=3), NIGHTS, tz) == next_night

    fall_opening = next_opening(midnight(fall), NIGHTS, tz)
    assert add_business_time(midnight(fall), timedelta(hours=4), NIGHTS, tz) == (
        fall_opening + timedelta(hours=4)
    )
    assert add_business_time(midnight(fall), timedelta(hours=4), NIGHTS, tz) == (
        midnight(fall).replace(hour=4)
    )


def test_berlin_dst_nights_in_utc() -> None:
    spring_midnight = local(BERLIN, 2026, 3, 29, 0, 0)
    assert add_business_time(spring_midnight, timedelta(hours=2), NIGHTS, BERLIN) == utc(
        2026, 3, 29, 2, 0
    )
    assert add_business_time(spring_midnight, timedelta(hours=3), NIGHTS, BERLIN) == utc(
        2026, 3, 30, 0, 0
    )
    fall_midnight = local(BERLIN, 2026, 10, 25, 0, 0)
    assert add_business_time(fall_midnight, timedelta(hours=3), NIGHTS, BERLIN) == utc(
        2026, 10, 25, 2, 0
    )
    assert add_business_time(fall_midnight, timedelta(hours=4), NIGHTS, BERLIN) == utc(
        2026, 10, 25, 3, 0
    )


def test_new_york_dst_nights_in_utc() -> None:
    spring_midnight = local(NEW_YORK, 2026, 3, 8, 0, 0)  # EST, 05:00 UTC
    assert next_opening(spring_midnight, NIGHTS, NEW_YORK) == utc(2026, 3, 8, 6, 0)
    assert add_business_time(spring_midnight, timedelta(hours=2), NIGHTS, NEW_YORK) == utc(
        2026, 3, 8, 8, 0
    )
    fall_midnight = local(NEW_YORK, 2026, 11, 1, 0, 0)  # EDT, 04:00 UTC
    assert next_opening(fall_midnight, NIGHTS, NEW_YORK) == utc(2026, 11, 1, 5, 0)
    assert add_business_time(fall_midnight, timedelta(hours=4), NIGHTS, NEW_YORK) == utc(
        2026, 11, 1, 9, 0
    )


def test_nonexistent_opening_moves_forward_to_the_clock_change() -> None:
    # 02:30 does not exist in Berlin on 2026-03-29: the clock jumps from 02:00 CET to 03:00 CEST.
    hours = every_day(("02:30", "05:00"))
    midnight = local(BERLIN, 2026, 3, 29, 0, 0)
    assert next_opening(midnight, hours, BERLIN) == utc(2026, 3, 29, 1, 0)  # 03:00 CEST
    day = business_time_between(midnight, local(BERLIN, 2026, 3, 30, 0, 0), hours, BERLIN)
    assert day == timedelta(hours=2)


def test_nonexistent_closing_moves_forward_to_the_clock_change() -> None:
    hours = every_day(("00:00", "02:30"))
    midnight = local(BERLIN, 2026, 3, 29, 0, 0)
    day = business_time_between(midnight, local(BERLIN, 2026, 3, 30, 0, 0), hours, BERLIN)
    assert day == timedelta(hours=2)  # 00:00 CET until the jump at 02:00 CET


def test_ambiguous_bounds_open_at_the_first_and_close_at_the_last_occurrence() -> None:
    # 02:30 happens twice in Berlin on 2026-10-25 (CEST, then CET).
    hours = every_day(("02:30", "05:00"))
    midnight = local(BERLIN, 2026, 10, 25, 0, 0)
    assert next_opening(midnight, hours, BERLIN) == utc(2026, 10, 25, 0, 30)  # 02:30 CEST
    day = business_time_between(midnight, local(BERLIN, 2026, 10, 26, 0, 0), hours, BERLIN)
    assert day == timedelta(hours=3, minutes=30)
    closing_twice = every_day(("00:00", "02:30"))
    day = business_time_between(midnight, local(BERLIN, 2026, 10, 26, 0, 0), closing_twice, BERLIN)
    assert day == timedelta(hours=3, minutes=30)  # until 02:30 CET


def test_adjacent_intervals_across_an_ambiguous_bound_are_not_counted_twice() -> None:
    hours = every_day(("00:00", "02:30"), ("02:30", "06:00"))
    midnight = local(BERLIN, 2026, 10, 25, 0, 0)
    day = business_time_between(midnight, local(BERLIN, 2026, 10, 26, 0, 0), hours, BERLIN)
    assert day == timedelta(hours=7)
    assert add_business_time(midnight, timedelta(hours=7), hours, BERLIN) == local(
        BERLIN, 2026, 10, 25, 6, 0
    )


def test_interval_of_the_day_before_can_reach_into_the_repeated_midnight_hour() -> None:
    # Havana falls back from 01:00 to 00:00 on 2026-11-01: Sunday 00:00-01:00 happens twice, so a
    # Saturday interval closing at 24:00 closes at the last 00:00 (05:00 UTC), 3 h after 22:00.
    havana = "America/Havana"
    hours = hours_of({"sat": [["22:00", "24:00"]]})
    first_half_past_midnight = utc(2026, 11, 1, 4, 30)  # Sunday 00:30 the first time
    assert first_half_past_midnight.astimezone(ZoneInfo(havana)).date() == date(2026, 11, 1)
    assert is_working_time(first_half_past_midnight, hours, havana)
    assert add_business_time(first_half_past_midnight, timedelta(minutes=30), hours, havana) == (
        utc(2026, 11, 1, 5, 0)
    )
    weekend = business_time_between(utc(2026, 10, 31), utc(2026, 11, 2), hours, havana)
    assert weekend == timedelta(hours=3)


@pytest.mark.parametrize(
    ("tz", "expected"),
    [
        (KOLKATA, utc(2026, 7, 6, 3, 45)),  # 09:15 +05:30
        (CHATHAM, utc(2026, 7, 5, 20, 30)),  # 09:15 +12:45
    ],
)
def test_zones_with_non_whole_hour_offsets(tz: str, expected: datetime) -> None:
    # Sunday evening local time: the clock starts on Monday 09:00 local.
    start = local(tz, 2026, 7, 5, 20, 0)
    result = add_business_time(start, timedelta(minutes=15), DEFAULT_BUSINESS_HOURS, tz)
    assert result == expected
    assert result == local(tz, 2026, 7, 6, 9, 15)


def test_chatham_dst_offset() -> None:
    # In January the Chatham Islands are on +13:45.
    start = local(CHATHAM, 2026, 1, 5, 8, 0)
    result = add_business_time(start, timedelta(minutes=30), DEFAULT_BUSINESS_HOURS, CHATHAM)
    assert result == utc(2026, 1, 4, 19, 45)


@pytest.mark.parametrize("tz", [BERLIN, MOSCOW, NEW_YORK, KOLKATA, CHATHAM, "UTC"])
@pytest.mark.parametrize("start_zone", ["UTC", "Asia/Tokyo", "America/Sao_Paulo"])
def test_result_is_aware_utc_whatever_the_zone_of_the_start(tz: str, start_zone: str) -> None:
    instant = utc(2026, 11, 24, 16, 40)
    start = instant.astimezone(ZoneInfo(start_zone))
    for function_result in (
        add_business_time(start, timedelta(hours=5), DEFAULT_BUSINESS_HOURS, tz),
        next_opening(start, DEFAULT_BUSINESS_HOURS, tz),
        add_calendar_time(start, timedelta(hours=5)),
        due_at(start, 90, business_hours=DEFAULT_BUSINESS_HOURS, tz=tz),
        due_at(start, 90, business_hours=None, tz=tz),
    ):
        assert function_result.tzinfo is UTC
    assert add_business_time(start, timedelta(hours=5), DEFAULT_BUSINESS_HOURS, tz) == (
        add_business_time(instant, timedelta(hours=5), DEFAULT_BUSINESS_HOURS, tz)
    )


# --- calendar time and due_at ---------------------------------------------------------------


def test_calendar_time_counts_elapsed_time_not_wall_clock() -> None:
    # Python's aware arithmetic in a zone would give 2026-03-29 12:00 CEST (23 h); we want 24 h.
    start = local(BERLIN, 2026, 3, 28, 12, 0)
    result = add_calendar_time(start, timedelta(days=1))
    assert result == utc(2026, 3, 29, 11, 0)
    assert result.tzinfo is UTC


def test_due_at_uses_business_hours_when_given() -> None:
    start = local(BERLIN, 2026, 11, FRI, 17, 50)
    assert due_at(start, 15, business_hours=DEFAULT_BUSINESS_HOURS, tz=BERLIN) == local(
        BERLIN, 2026, 11, 30, 9, 5
    )
    assert due_at(start, 15, business_hours=None, tz=BERLIN) == local(BERLIN, 2026, 11, FRI, 18, 5)


def test_due_at_refuses_negative_minutes() -> None:
    start = utc(2026, 11, 24, 10, 0)
    with pytest.raises(ValueError, match="minutes"):
        due_at(start, -1, business_hours=None, tz=BERLIN)


# --- is_working_time -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("moment", "working"),
    [
        (local(BERLIN, 2026, 11, TUE, 8, 59, 59), False),
        (local(BERLIN, 2026, 11, TUE, 9, 0), True),
        (datetime(2026, 11, TUE, 17, 59, 59, 999999, tzinfo=ZoneInfo(BERLIN)), True),
        (local(BERLIN, 2026, 11, TUE, 18, 0), False),
        (local(BERLIN, 2026, 11, SAT, 12, 0), False),
        (local(BERLIN, 2026, 11, TUE, 3, 0), False),
    ],
)
def test_is_working_time(moment: datetime, working: bool) -> None:
    assert is_working_time(moment, DEFAULT_BUSINESS_HOURS, BERLIN) is working


def test_is_working_time_uses_the_organisation_zone() -> None:
    # 07:30 UTC on a Tuesday is 08:30 in Berlin (closed) and 10:30 in Moscow (open).
    moment = utc(2026, 11, 24, 7, 30)
    assert not is_working_time(moment, DEFAULT_BUSINESS_HOURS, BERLIN)
    assert is_working_time(moment, DEFAULT_BUSINESS_HOURS, MOSCOW)


def test_is_working_time_never_raises_for_a_schedule_without_future_work() -> None:
    hours = hours_of({"mon": [["09:00", "18:00"]]}, holidays=[str(d) for d in _mondays(2026, 2027)])
    assert not is_working_time(utc(2026, 6, 1, 10, 0), hours, BERLIN)


# --- refusals ------------------------------------------------------------------------------


def _mondays(first_year: int, last_year: int) -> list[date]:
    day = date(first_year, 1, 1)
    day += timedelta(days=(7 - day.weekday()) % 7)
    result = []
    while day.year <= last_year:
        result.append(day)
        day += timedelta(days=7)
    return result


def test_naive_datetimes_are_refused() -> None:
    naive = datetime(2026, 11, 24, 10, 0)
    hours = DEFAULT_BUSINESS_HOURS
    with pytest.raises(ValueError, match="aware"):
        add_business_time(naive, timedelta(minutes=15), hours, BERLIN)
    with pytest.raises(ValueError, match="aware"):
        add_calendar_time(naive, timedelta(minutes=15))
    with pytest.raises(ValueError, match="aware"):
        next_opening(naive, hours, BERLIN)
    with pytest.raises(ValueError, match="aware"):
        is_working_time(naive, hours, BERLIN)
    with pytest.raises(ValueError, match="aware"):
        due_at(naive, 15, business_hours=None, tz=BERLIN)
    with pytest.raises(ValueError, match="aware"):
        business_time_between(naive, utc(2026, 11, 25), hours, BERLIN)


def test_negative_business_delta_is_refused() -> None:
    with pytest.raises(ValueError, match="negative"):
        add_business_time(utc(2026, 11, 24), timedelta(minutes=-1), DEFAULT_BUSINESS_HOURS, BERLIN)


def test_unknown_time_zone_is_refused() -> None:
    with pytest.raises(ValueError, match="time zone"):
        add_business_time(utc(2026, 11, 24), timedelta(0), DEFAULT_BUSINESS_HOURS, "Mars/Olympus")
    with pytest.raises(ValueError, match="time zone"):
        due_at(utc(2026, 11, 24), 5, business_hours=None, tz="../etc/passwd")
    with pytest.raises(ValueError, match="time zone"):
        is_working_time(utc(2026, 11, 24), DEFAULT_BUSINESS_HOURS, "Europe")


def test_no_working_time_within_a_year_raises() -> None:
    hours = hours_of({"mon": [["09:00", "18:00"]]}, holidays=[str(d) for d in _mondays(2026, 2027)])
    start = utc(2026, 1, 1)
    with pytest.raises(ValueError, match="no working time"):
        add_business_time(start, timedelta(minutes=15), hours, BERLIN)
    with pytest.raises(ValueError, match="no working time"):
        next_opening(start, hours, BERLIN)
    # After the last holiday the clock runs again.
    after = add_business_time(utc(2027, 6, 1), timedelta(minutes=15), hours, BERLIN)
    assert after == local(BERLIN, 2028, 1, 3, 9, 15)


def test_hand_built_invalid_hours_are_refused() -> None:
    broken = BusinessHours(week=WeekHours(mon=(("18:00", "09:00"),)))
    with pytest.raises(InvalidInput):
        add_business_time(utc(2026, 11, 24), timedelta(minutes=15), broken, BERLIN)


# --- business_time_between -----------------------------------------------------------------


def test_business_time_between() -> None:
    hours = DEFAULT_BUSINESS_HOURS
    friday = local(BERLIN, 2026, 11, FRI, 17, 0)
    monday = local(BERLIN, 2026, 11, 30, 10, 0)
    assert business_time_between(friday, monday, hours, BERLIN) == timedelta(hours=2)
    assert business_time_between(monday, friday, hours, BERLIN) == timedelta(hours=-2)
    assert business_time_between(friday, friday, hours, BERLIN) == timedelta(0)
    saturday = local(BERLIN, 2026, 11, SAT, 10, 0)
    assert business_time_between(saturday, saturday + timedelta(hours=5), hours, BERLIN) == (
        timedelta(0)
    )


# --- parsing -------------------------------------------------------------------------------


def test_default_business_hours_shape() -> None:
    assert dump_business_hours(DEFAULT_BUSINESS_HOURS) == {
        "week": {
            "mon": [["09:00", "18:00"]],
            "tue": [["09:00", "18:00"]],
            "wed": [["09:00", "18:00"]],
            "thu": [["09:00", "18:00"]],
            "fri": [["09:00", "18:00"]],
            "sat": [],
            "sun": [],
        },
        "holidays": [],
    }


def test_business_hours_round_trip_through_json() -> None:
    hours = hours_of(
        {"mon": [["14:00", "18:00"], ["09:00", "13:00"]], "sat": [["10:00", "14:00"]]},
        holidays=["2026-12-25", "2026-01-01", "2026-12-25"],
    )
    dumped = dump_business_hours(hours)
    assert dumped["week"]["mon"] == [["09:00", "13:00"], ["14:00", "18:00"]]  # sorted
    assert dumped["week"]["tue"] == []  # days left out are closed
    assert dumped["holidays"] == ["2026-01-01", "2026-12-25"]  # sorted, deduplicated
    assert parse_business_hours(dumped) == hours
    assert parse_business_hours(msgspec.json.decode(msgspec.json.encode(hours))) == hours
    assert msgspec.json.decode(msgspec.json.encode(msgspec.to_builtins(hours))) == dumped
    assert parse_business_hours(DEFAULT_BUSINESS_HOURS) == DEFAULT_BUSINESS_HOURS


def test_business_hours_are_immutable_and_hashable() -> None:
    assert hash(DEFAULT_BUSINESS_HOURS) == hash(parse_business_hours(DEFAULT_BUSINESS_HOURS))
    with pytest.raises(AttributeError):
        DEFAULT_BUSINESS_HOURS.holidays = ()  # type: ignore[misc]


def test_load_business_hours_from_the_organisation_column() -> None:
    assert load_business_hours({}) is DEFAULT_BUSINESS_HOURS
    assert load_business_hours(None) is DEFAULT_BUSINESS_HOURS
    stored = {"week": {"sat": [["10:00", "14:00"]]}, "holidays": []}
    assert load_business_hours(stored).week.sat == (("10:00", "14:00"),)
    with pytest.raises(InvalidInput):
        load_business_hours({"week": {}})


def test_round_the_clock_day_is_accepted() -> None:
    hours = hours_of({"sun": [["00:00", "24:00"]]})
    assert hours.week.sun == (("00:00", "24:00"),)


OPEN = [["09:00", "18:00"]]


@pytest.mark.parametrize(
    ("raw", "field", "reason"),
    [
        ([], "businessHours", "Expected `object`"),
        ({}, "businessHours.week", "required"),
        ({"week": OPEN}, "businessHours.week", "Expected `object`"),
        ({"week": {"mon": OPEN}, "extra": 1}, "businessHours.extra", "unknown field"),
        ({"week": {"mond": OPEN}}, "businessHours.week.mond", "unknown day"),
        ({"week": {"mon": "09:00-18:00"}}, "businessHours.week.mon", "Expected `array`"),
        ({"week": {"mon": [["09:00"]]}}, "businessHours.week.mon[0]", "length 2"),
        ({"week": {"mon": [["09:00", 18]]}}, "businessHours.week.mon[0][1]", "Expected `str`"),
        ({"week": {"mon": [["18:00", "09:00"]]}}, "businessHours.week.mon[0]", "start"),
        ({"week": {"mon": [["09:00", "09:00"]]}}, "businessHours.week.mon[0]", "start"),
        ({"week": {"mon": [["24:00", "24:00"]]}}, "businessHours.week.mon[0]", "start"),
        ({"week": {"tue": [["9:00", "18:00"]]}}, "businessHours.week.tue[0][0]", "HH:MM"),
        ({"week": {"tue": [["09:00", "25:00"]]}}, "businessHours.week.tue[0][1]", "HH:MM"),
        ({"week": {"tue": [["09:00", "17:60"]]}}, "businessHours.week.tue[0][1]", "HH:MM"),
        ({"week": {"tue": [["09:00", "24:01"]]}}, "businessHours.week.tue[0][1]", "HH:MM"),
        ({"week": {"tue": [["09:00:00", "18:00"]]}}, "businessHours.week.tue[0][0]", "HH:MM"),
        ({"week": {"tue": [["０９:00", "18:00"]]}}, "businessHours.week.tue[0][0]", "HH:MM"),
        (
            {"week": {"wed": [["09:00", "13:00"], ["12:00", "18:00"]]}},
            "businessHours.week.wed[1]",
            "overlaps businessHours.week.wed[0]",
        ),
        (
            {"week": {"wed": [["12:00", "18:00"], ["09:00", "13:00"]]}},
            "businessHours.week.wed[0]",
            "overlaps businessHours.week.wed[1]",
        ),
        (
            {"week": {"wed": [["09:00", "18:00"], ["09:00", "18:00"]]}},
            "businessHours.week.wed[1]",
            "overlaps",
        ),
        ({"week": {}}, "businessHours.week", "no working time"),
        ({"week": {"sat": [], "sun": []}}, "businessHours.week", "no working time"),
        (
            {"week": {"mon": OPEN}, "holidays": ["2026-02-30"]},
            "businessHours.holidays[0]",
            "date",
        ),
        ({"week": {"mon": OPEN}, "holidays": "2026-01-01"}, "businessHours.holidays", "array"),
        (
            {"week": {"mon": [["09:00", "18:00"]] * 30}},
            "businessHours.week.mon",
            "at most",
        ),
        (
            {
                "week": {"mon": OPEN},
                "holidays": [str(date(2026, 1, 1) + timedelta(n)) for n in range(1001)],
            },
            "businessHours.holidays",
            "at most",
        ),
    ],
)
def test_parse_business_hours_errors(raw: object, field: str, reason: str) -> None:
    with pytest.raises(InvalidInput) as caught:
        parse_business_hours(raw)
    error = caught.value
    assert error.status == 422
    assert [e.field for e in error.errors] == [field]
    assert reason in error.errors[0].reason
    assert field in error.detail


def test_parse_business_hours_reports_every_broken_interval() -> None:
    raw = {"week": {"mon": [["18:00", "09:00"]], "tue": [["9", "18:00"]], "wed": OPEN}}
    with pytest.raises(InvalidInput) as caught:
        parse_business_hours(raw)
    assert [e.field for e in caught.value.errors] == [
        "businessHours.week.mon[0]",
        "businessHours.week.tue[0][0]",
    ]


def test_parse_business_hours_field_prefix() -> None:
    with pytest.raises(InvalidInput) as caught:
        parse_business_hours({"week": {"mon": [["18:00", "09:00"]]}}, field="settings.hours")
    assert caught.value.errors[0].field == "settings.hours.week.mon[0]"


# --- properties ----------------------------------------------------------------------------

# Starts cluster around the 2026 DST changes (and reach into ordinary weeks) to hit the edges.
_ANCHORS = [utc(2026, 3, 27), utc(2026, 10, 23), utc(2026, 11, 23), utc(2027, 12, 20)]
starts = st.builds(
    lambda anchor, offset: anchor + timedelta(microseconds=offset),
    st.sampled_from(_ANCHORS),
    st.integers(min_value=0, max_value=10 * 24 * 3600 * 10**6),
)
deltas = st.one_of(
    st.just(timedelta(0)),
    st.timedeltas(min_value=timedelta(0), max_value=timedelta(hours=9)),
    st.timedeltas(min_value=timedelta(0), max_value=timedelta(days=20)),
    st.integers(min_value=0, max_value=200).map(lambda n: timedelta(minutes=15 * n)),
)


@settings(max_examples=300, deadline=None)
@given(start=starts, delta=deltas)
def test_property_result_is_later_and_ends_inside_working_time(
    start: datetime, delta: timedelta
) -> None:
    hours = DEFAULT_BUSINESS_HOURS
    result = add_business_time(start, delta, hours, BERLIN)
    assert result.tzinfo is UTC
    assert result >= start
    if delta:
        assert is_working_time(result - timedelta(microseconds=1), hours, BERLIN)
        assert result > start
    else:
        assert result == next_opening(start, hours, BERLIN)
        assert is_working_time(result, hours, BERLIN)
    assert business_time_between(start, result, hours, BERLIN) == delta


@settings(max_examples=300, deadline=None)
@given(start=starts, a=deltas, b=deltas)
def test_property_monotonic(start: datetime, a: timedelta, b: timedelta) -> None:
    small, big = sorted((a, b))
    hours = DEFAULT_BUSINESS_HOURS
    assert add_business_time(start, small, hours, BERLIN) <= add_business_time(
        start, big, hours, BERLIN
    )


@settings(max_examples=300, deadline=None)
@given(start=starts, a=deltas, b=deltas)
def test_property_adding_in_two_steps_is_adding_the_sum(
    start: datetime, a: timedelta, b: timedelta
) -> None:
    # Exact for b > 0; for b == 0 the second step only moves a closing-time result to the next
    # opening, which is the same instant in business time.
    hours = DEFAULT_BUSINESS_HOURS
    one_go = add_business_time(start, a + b, hours, BERLIN)
    two_steps = add_business_time(add_business_time(start, a, hours, BERLIN), b, hours, BERLIN)
    if b:
        assert two_steps == one_go
    else:
        assert two_steps == next_opening(one_go, hours, BERLIN)
        assert business_time_between(one_go, two_steps, hours, BERLIN) == timedelta(0)


@settings(max_examples=300, deadline=None)
@given(start=starts, a=deltas, b=deltas)
def test_property_deadlines_keep_their_business_distance(
    start: datetime, a: timedelta, b: timedelta
) -> None:
    hours = DEFAULT_BUSINESS_HOURS
    first = add_business_time(start, a, hours, BERLIN)
    second = add_business_time(start, a + b, hours, BERLIN)
    assert business_time_between(first, second, hours, BERLIN) == b


_SCHEDULES = {
    "default": DEFAULT_BUSINESS_HOURS,
    "lunch": WEEKDAYS_WITH_LUNCH,
    "nights": NIGHTS,
    "overnight": hours_of(
        {
            "mon": [["00:00", "06:00"], ["22:00", "24:00"]],
            "tue": [["00:00", "06:00"], ["22:00", "24:00"]],
            "sat": [["10:00", "10:30"], ["11:00", "11:45"], ["17:15", "23:45"]],
            "sun": [["08:00", "24:00"]],
        },
        holidays=["2026-03-30", "2026-11-02", "2026-11-24"],
    ),
}
_DAY_INDEX = {day: i for i, day in enumerate(DAYS)}


def _brute_force(start: datetime, minutes: int, hours: BusinessHours, tz: str) -> datetime:
    """Walk minute by minute, asking the local wall clock whether it is working time."""
    zone = ZoneInfo(tz)
    week = {
        _DAY_INDEX[day]: [
            (int(a[:2]) * 60 + int(a[3:]), int(b[:2]) * 60 + int(b[3:]))
            for a, b in getattr(hours.week, day)
        ]
        for day in DAYS
    }
    moment, counted = start, 0
    while True:
        wall = moment.astimezone(zone)
        minute = wall.hour * 60 + wall.minute
        if wall.date() not in hours.holidays and any(
            a <= minute < b for a, b in week[wall.weekday()]
        ):
            counted += 1
            if counted == minutes:
                return moment + timedelta(minutes=1)
        moment += timedelta(minutes=1)


@settings(max_examples=150, deadline=None)
@given(
    schedule=st.sampled_from(sorted(_SCHEDULES)),
    tz=st.sampled_from([BERLIN, NEW_YORK, MOSCOW, KOLKATA, CHATHAM]),
    anchor=st.sampled_from(
        [
            utc(2026, 3, 6),
            utc(2026, 3, 27),
            utc(2026, 4, 3),
            utc(2026, 9, 25),
            utc(2026, 10, 23),
            utc(2026, 10, 30),
        ]
    ),
    offset_minutes=st.integers(min_value=0, max_value=4 * 24 * 60),
    minutes=st.integers(min_value=1, max_value=12 * 60),
)
def test_property_matches_a_minute_by_minute_walk_of_the_wall_clock(
    schedule: str, tz: str, anchor: datetime, offset_minutes: int, minutes: int
) -> None:
    hours = _SCHEDULES[schedule]
    start = anchor + timedelta(minutes=offset_minutes)
    expected = _brute_force(start, minutes, hours, tz)
    assert add_business_time(start, timedelta(minutes=minutes), hours, tz) == expected
