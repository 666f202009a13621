"""Weekly shift schedules in a worker's own zone: windows across DST, grace, batches, parsing."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta
from itertools import pairwise
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from backend.lib.errors import InvalidInput
from backend.tracking import schedule as schedule_module
from backend.tracking.schedule import (
    WeeklyShifts,
    dump_weekly_shifts,
    in_shift,
    mask,
    parse_weekly_shifts,
    shift_at,
    windows,
)

BERLIN = "Europe/Berlin"
MOSCOW = "Europe/Moscow"
NEW_YORK = "America/New_York"
KOLKATA = "Asia/Kolkata"
DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
WEEKDAYS = DAYS[:5]

# Monday 2026-11-23 .. Sunday 2026-11-29: no clock change in any zone used here.
MON, TUE, WED, THU, FRI, SAT, SUN = 23, 24, 25, 26, 27, 28, 29


def local(tz: str, year: int, month: int, day: int, hour: int = 0, minute: int = 0) -> datetime:
    return datetime(year, month, day, hour, minute, tzinfo=ZoneInfo(tz))


def utc(
    year: int, month: int, day: int, hour: int = 0, minute: int = 0, second: int = 0
) -> datetime:
    return datetime(year, month, day, hour, minute, second, tzinfo=UTC)


def shifts(
    days: tuple[str, ...] | str, *intervals: tuple[str, str], grace: int | None = None
) -> WeeklyShifts:
    raw: dict[str, Any] = {
        day: [list(i) for i in intervals] for day in ((days,) if isinstance(days, str) else days)
    }
    if grace is not None:
        raw["graceMinutes"] = grace
    return parse_weekly_shifts(raw)


def field_errors(raw: object, field: str = "schedule") -> dict[str, str]:
    with pytest.raises(InvalidInput) as caught:
        parse_weekly_shifts(raw, field)
    return {error.field: error.reason for error in caught.value.errors}


def hours(window: tuple[datetime, datetime]) -> float:
    return (window[1] - window[0]).total_seconds() / 3600


# --- day and night shifts ------------------------------------------------------------------


def test_day_shift_in_moscow() -> None:
    schedule = shifts(WEEKDAYS, ("08:00", "17:00"), grace=0)
    week = windows(schedule, MOSCOW, utc(2026, 11, MON), utc(2026, 11, SUN))
    # Moscow is UTC+3 all year: 08:00–17:00 is 05:00–14:00 UTC, Monday to Friday.
    assert week == [(utc(2026, 11, d, 5), utc(2026, 11, d, 14)) for d in range(MON, FRI + 1)]
    assert all(start.tzinfo is UTC and end.tzinfo is UTC for start, end in week)
    assert in_shift(schedule, MOSCOW, local(MOSCOW, 2026, 11, WED, 8))
    assert in_shift(schedule, MOSCOW, utc(2026, 11, WED, 13, 59, 59))
    assert not in_shift(schedule, MOSCOW, utc(2026, 11, WED, 14))  # the end is exclusive
    assert not in_shift(schedule, MOSCOW, utc(2026, 11, WED, 4, 59, 59))
    assert not in_shift(schedule, MOSCOW, local(MOSCOW, 2026, 11, SAT, 12))
    assert shift_at(schedule, MOSCOW, utc(2026, 11, THU, 9, 30)) == (
        utc(2026, 11, THU, 5),
        utc(2026, 11, THU, 14),
    )
    assert shift_at(schedule, MOSCOW, utc(2026, 11, SAT, 9, 30)) is None


def test_windows_returns_whole_windows_that_intersect_the_range() -> None:
    schedule = shifts(WEEKDAYS, ("08:00", "17:00"))
    # A range from the middle of Tuesday's shift to the middle of Wednesday's.
    found = windows(schedule, MOSCOW, utc(2026, 11, TUE, 10), utc(2026, 11, WED, 6))
    assert found == [
        (utc(2026, 11, TUE, 5), utc(2026, 11, TUE, 14)),
        (utc(2026, 11, WED, 5), utc(2026, 11, WED, 14)),
    ]
    # The range is half-open: a range ending at a shift's start does not include it.
    assert windows(schedule, MOSCOW, utc(2026, 11, TUE, 14), utc(2026, 11, WED, 5)) == []
    assert windows(schedule, MOSCOW, utc(2026, 11, TUE, 6), utc(2026, 11, TUE, 6)) == []
    with pytest.raises(ValueError, match="end"):
        windows(schedule, MOSCOW, utc(2026, 11, WED), utc(2026, 11, TUE))


def test_night_shift_in_berlin_crosses_midnight() -> None:
    schedule = shifts(WEEKDAYS, ("22:00", "06:00"), grace=0)
    week = windows(schedule, BERLIN, utc(2026, 11, MON), utc(2026, 11, SUN))
    # Berlin is UTC+1 in November: each night 21:00 UTC to 05:00 UTC the next day, 8 hours.
    assert week == [(utc(2026, 11, d, 21), utc(2026, 11, d + 1, 5)) for d in range(MON, FRI + 1)]
    # Friday night's shift runs into Saturday morning; Saturday night has none.
    assert in_shift(schedule, BERLIN, local(BERLIN, 2026, 11, SAT, 3))
    assert not in_shift(schedule, BERLIN, local(BERLIN, 2026, 11, SAT, 23))
    # Monday 02:00 belongs to Sunday night, which is not scheduled.
    assert not in_shift(schedule, BERLIN, local(BERLIN, 2026, 11, MON, 2))
    assert shift_at(schedule, BERLIN, local(BERLIN, 2026, 11, WED, 2)) == (
        utc(2026, 11, TUE, 21),
        utc(2026, 11, WED, 5),
    )


def test_overnight_shift_ending_at_midnight_and_full_day() -> None:
    evening = shifts("mon", ("18:00", "00:00"), grace=0)
    assert windows(evening, MOSCOW, utc(2026, 11, MON), utc(2026, 11, TUE, 12)) == [
        (utc(2026, 11, MON, 15), utc(2026, 11, MON, 21))
    ]
    whole = shifts("mon", ("00:00", "24:00"), grace=0)
    assert windows(whole, MOSCOW, utc(2026, 11, MON), utc(2026, 11, TUE, 12)) == [
        (utc(2026, 11, SUN - 7, 21), utc(2026, 11, MON, 21))
    ]


def test_sunday_night_shift_wraps_into_monday() -> None:
    schedule = shifts("sun", ("22:00", "06:00"), grace=0)
    assert in_shift(schedule, MOSCOW, local(MOSCOW, 2026, 11, MON + 7, 5, 59))
    assert not in_shift(schedule, MOSCOW, local(MOSCOW, 2026, 11, MON + 7, 6))
    assert windows(schedule, MOSCOW, utc(2026, 11, MON + 7), utc(2026, 11, MON + 7, 1)) == [
        (utc(2026, 11, SUN, 19), utc(2026, 11, MON + 7, 3))
    ]


def test_several_shifts_a_day() -> None:
    schedule = shifts("sat", ("09:00", "14:00"), ("16:00", "20:00"), grace=0)
    assert windows(schedule, KOLKATA, utc(2026, 11, SAT), utc(2026, 11, SUN)) == [
        (utc(2026, 11, SAT, 3, 30), utc(2026, 11, SAT, 8, 30)),
        (utc(2026, 11, SAT, 10, 30), utc(2026, 11, SAT, 14, 30)),
    ]
    assert not in_shift(schedule, KOLKATA, local(KOLKATA, 2026, 11, SAT, 15))


# --- clock changes ---------------------------------------------------------------------------


def test_berlin_spring_forward_shift_is_three_hours() -> None:
    schedule = shifts("sun", ("01:00", "05:00"), grace=0)
    found = windows(schedule, BERLIN, utc(2026, 3, 29), utc(2026, 3, 30))
    # 01:00 CET is 00:00 UTC; 05:00 CEST is 03:00 UTC: the hour 02:00–03:00 does not exist.
    assert found == [(utc(2026, 3, 29, 0), utc(2026, 3, 29, 3))]
    assert hours(found[0]) == 3


def test_berlin_fall_back_shift_is_five_hours() -> None:
    schedule = shifts("sun", ("01:00", "05:00"), grace=0)
    found = windows(schedule, BERLIN, utc(2026, 10, 24), utc(2026, 10, 26))
    # 01:00 CEST is 23:00 UTC the day before; 05:00 CET is 04:00 UTC: 02:00–03:00 happens twice.
    assert found == [(utc(2026, 10, 24, 23), utc(2026, 10, 25, 4))]
    assert hours(found[0]) == 5
    # Both readings of 02:30 are inside the shift.
    assert in_shift(schedule, BERLIN, utc(2026, 10, 25, 0, 30))
    assert in_shift(schedule, BERLIN, utc(2026, 10, 25, 1, 30))


def test_berlin_night_shift_spanning_the_clock_changes() -> None:
    schedule = shifts("sat", ("22:00", "06:00"), grace=0)
    spring = windows(schedule, BERLIN, utc(2026, 3, 28), utc(2026, 3, 30))
    assert spring == [(utc(2026, 3, 28, 21), utc(2026, 3, 29, 4))]
    assert hours(spring[0]) == 7
    autumn = windows(schedule, BERLIN, utc(2026, 10, 24), utc(2026, 10, 26))
    assert autumn == [(utc(2026, 10, 24, 20), utc(2026, 10, 25, 5))]
    assert hours(autumn[0]) == 9


def test_berlin_bounds_inside_the_gap_and_the_repeated_hour() -> None:
    # 02:30 does not exist on 2026-03-29: the start moves forward to the jump (01:00 UTC).
    gap = shifts("sun", ("02:30", "06:00"), grace=0)
    assert windows(gap, BERLIN, utc(2026, 3, 29), utc(2026, 3, 30)) == [
        (utc(2026, 3, 29, 1), utc(2026, 3, 29, 4))
    ]
    # An end inside the gap also moves to the jump.
    gap_end = shifts("sun", ("00:00", "02:30"), grace=0)
    assert windows(gap_end, BERLIN, utc(2026, 3, 29), utc(2026, 3, 30)) == [
        (utc(2026, 3, 28, 23), utc(2026, 3, 29, 1))
    ]
    # A shift entirely inside the gap has no time at all that night.
    lost = shifts("sun", ("02:00", "03:00"), grace=0)
    assert windows(lost, BERLIN, utc(2026, 3, 28), utc(2026, 3, 30)) == []
    # 02:30 happens twice on 2026-10-25: a start is the first reading, an end the last.
    starts = shifts("sun", ("02:30", "06:00"), grace=0)
    assert windows(starts, BERLIN, utc(2026, 10, 25), utc(2026, 10, 26)) == [
        (utc(2026, 10, 25, 0, 30), utc(2026, 10, 25, 5))
    ]
    ends = shifts("sun", ("00:00", "02:30"), grace=0)
    assert windows(ends, BERLIN, utc(2026, 10, 24), utc(2026, 10, 26)) == [
        (utc(2026, 10, 24, 22), utc(2026, 10, 25, 1, 30))
    ]


def test_back_to_back_shifts_on_the_repeated_hour_do_not_overlap() -> None:
    schedule = shifts("sun", ("00:00", "02:30"), ("02:30", "06:00"), grace=0)
    found = windows(schedule, BERLIN, utc(2026, 10, 24), utc(2026, 10, 26))
    # The second shift would start at the first 02:30 (00:30 UTC), inside the first shift,
    # which ends at the last 02:30 (01:30 UTC): it starts when the first one ends instead.
    assert found == [
        (utc(2026, 10, 24, 22), utc(2026, 10, 25, 1, 30)),
        (utc(2026, 10, 25, 1, 30), utc(2026, 10, 25, 5)),
    ]
    assert shift_at(schedule, BERLIN, utc(2026, 10, 25, 1)) == found[0]


def test_new_york_clock_changes() -> None:
    schedule = shifts("sun", ("01:00", "05:00"), grace=0)
    # 2026-03-08: 02:00 EST jumps to 03:00 EDT.
    spring = windows(schedule, NEW_YORK, utc(2026, 3, 8), utc(2026, 3, 9))
    assert spring == [(utc(2026, 3, 8, 6), utc(2026, 3, 8, 9))]
    assert hours(spring[0]) == 3
    # 2026-11-01: 02:00 EDT falls back to 01:00 EST; 01:00 itself is the ambiguous reading.
    autumn = windows(schedule, NEW_YORK, utc(2026, 11, 1), utc(2026, 11, 2))
    assert autumn == [(utc(2026, 11, 1, 5), utc(2026, 11, 1, 10))]
    assert hours(autumn[0]) == 5
    night = shifts("sat", ("22:00", "06:00"), grace=0)
    assert windows(night, NEW_YORK, utc(2026, 3, 7), utc(2026, 3, 9)) == [
        (utc(2026, 3, 8, 3), utc(2026, 3, 8, 10))
    ]
    assert windows(night, NEW_YORK, utc(2026, 10, 31), utc(2026, 11, 2)) == [
        (utc(2026, 11, 1, 2), utc(2026, 11, 1, 11))
    ]


def test_kolkata_half_hour_offset() -> None:
    schedule = shifts(WEEKDAYS, ("09:00", "18:00"), grace=0)
    assert windows(schedule, KOLKATA, utc(2026, 11, MON), utc(2026, 11, TUE)) == [
        (utc(2026, 11, MON, 3, 30), utc(2026, 11, MON, 12, 30))
    ]
    assert in_shift(schedule, KOLKATA, utc(2026, 11, MON, 3, 30))
    assert not in_shift(schedule, KOLKATA, utc(2026, 11, MON, 3, 29, 59))


# --- grace -----------------------------------------------------------------------------------


def test_grace_minutes_at_both_ends() -> None:
    schedule = shifts(WEEKDAYS, ("08:00", "17:00"))  # the default grace: 15 minutes
    assert schedule.grace_minutes == 15
    start, end = utc(2026, 11, WED, 5), utc(2026, 11, WED, 14)
    grace = timedelta(minutes=15)
    assert in_shift(schedule, MOSCOW, start - grace)
    assert not in_shift(schedule, MOSCOW, start - grace - timedelta(microseconds=1))
    assert in_shift(schedule, MOSCOW, end + grace - timedelta(microseconds=1))
    assert not in_shift(schedule, MOSCOW, end + grace)
    # The windows themselves carry no grace; shift_at names the window a late point belongs to.
    assert windows(schedule, MOSCOW, start, end) == [(start, end)]
    assert shift_at(schedule, MOSCOW, end + timedelta(minutes=10)) == (start, end)
    assert shift_at(schedule, MOSCOW, start - timedelta(minutes=10)) == (start, end)
    assert shift_at(schedule, MOSCOW, end + grace) is None

    wide = shifts(WEEKDAYS, ("08:00", "17:00"), grace=60)
    assert in_shift(wide, MOSCOW, start - timedelta(minutes=59))
    assert not in_shift(wide, MOSCOW, start - timedelta(minutes=61))
    none = shifts(WEEKDAYS, ("08:00", "17:00"), grace=0)
    assert not in_shift(none, MOSCOW, start - timedelta(seconds=1))
    assert mask(none, MOSCOW, [start - timedelta(seconds=1), start, end]) == [False, True, False]


def test_grace_between_close_shifts_picks_the_nearer_window() -> None:
    schedule = shifts("mon", ("08:00", "12:00"), ("12:20", "17:00"))
    morning = (utc(2026, 11, MON, 5), utc(2026, 11, MON, 9))
    afternoon = (utc(2026, 11, MON, 9, 20), utc(2026, 11, MON, 14))
    assert shift_at(schedule, MOSCOW, utc(2026, 11, MON, 9, 5)) == morning
    assert shift_at(schedule, MOSCOW, utc(2026, 11, MON, 9, 15)) == afternoon
    assert shift_at(schedule, MOSCOW, utc(2026, 11, MON, 9, 10)) == morning  # a tie: the earlier
    assert mask(schedule, MOSCOW, [utc(2026, 11, MON, 9, m) for m in range(0, 25, 5)]) == [True] * 5


# --- zones and batches -----------------------------------------------------------------------


def test_same_local_schedule_in_two_zones_gives_different_utc_windows() -> None:
    schedule = shifts(WEEKDAYS, ("08:00", "17:00"), grace=0)
    moscow = windows(schedule, MOSCOW, utc(2026, 11, TUE), utc(2026, 11, WED))
    new_york = windows(schedule, NEW_YORK, utc(2026, 11, TUE), utc(2026, 11, WED))
    assert moscow == [(utc(2026, 11, TUE, 5), utc(2026, 11, TUE, 14))]
    # New York is UTC-5 in November: Monday's window (13:00–22:00 UTC) ends before the range.
    assert new_york == [(utc(2026, 11, TUE, 13), utc(2026, 11, TUE, 22))]
    noon_utc = utc(2026, 11, TUE, 12)  # 15:00 in Moscow, 07:00 in New York
    assert in_shift(schedule, MOSCOW, noon_utc)
    assert not in_shift(schedule, NEW_YORK, noon_utc)
    assert mask(schedule, MOSCOW, [noon_utc]) != mask(schedule, NEW_YORK, [noon_utc])


def test_instants_in_other_zones_are_compared_as_instants() -> None:
    schedule = shifts(WEEKDAYS, ("08:00", "17:00"), grace=0)
    at = local(NEW_YORK, 2026, 11, TUE - 1, 23)  # Tuesday 07:00 in Moscow
    assert not in_shift(schedule, MOSCOW, at)
    assert in_shift(schedule, MOSCOW, at + timedelta(hours=1))


def test_empty_schedule_is_never_in_shift() -> None:
    empty = parse_weekly_shifts({})
    assert empty == WeeklyShifts()
    everything = parse_weekly_shifts({day: [] for day in DAYS})
    assert windows(everything, BERLIN, utc(2026, 1, 1), utc(2027, 1, 1)) == []
    assert not in_shift(empty, BERLIN, utc(2026, 11, MON, 12))
    assert shift_at(empty, BERLIN, utc(2026, 11, MON, 12)) is None
    instants = [utc(2026, 11, MON) + timedelta(hours=h) for h in range(200)]
    assert mask(empty, BERLIN, instants) == [False] * 200
    assert mask(empty, BERLIN, []) == []


def test_mask_computes_windows_once_for_a_contiguous_batch(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    schedule = shifts(WEEKDAYS, ("08:00", "17:00"))
    calls = 0
    original = schedule_module._windows

    def counting(*args: Any, **kwargs: Any) -> Any:
        nonlocal calls
        calls += 1
        return original(*args, **kwargs)

    monkeypatch.setattr(schedule_module, "_windows", counting)
    start = utc(2026, 11, MON)
    instants = [start + timedelta(seconds=30 * i) for i in range(1000)]
    random.Random(7).shuffle(instants)
    result = mask(schedule, MOSCOW, instants)
    assert calls == 1
    assert result == [
        utc(2026, 11, MON, 4, 45) <= at < utc(2026, 11, MON, 14, 15) for at in instants
    ]


def test_mask_of_a_large_batch_matches_one_by_one() -> None:
    schedule = shifts(WEEKDAYS, ("08:00", "12:00"), ("13:00", "17:00"))
    rng = random.Random(11)
    start = utc(2026, 3, 1)
    instants = [start + timedelta(seconds=rng.randrange(60 * 86400)) for _ in range(1000)]
    batch = mask(schedule, BERLIN, instants)
    assert batch == [mask(schedule, BERLIN, [at])[0] for at in instants]
    assert 0 < sum(batch) < len(batch)


def test_mask_with_far_apart_instants() -> None:
    schedule = shifts(WEEKDAYS, ("08:00", "17:00"), grace=0)
    instants = [
        utc(1980, 1, 7, 12),  # a Monday: a GPS week-rollover fix
        utc(2026, 11, TUE, 12),
        utc(2026, 11, SAT, 12),
        utc(2100, 1, 4, 12),  # a Monday
        datetime(1, 1, 1, tzinfo=UTC),
        datetime(9999, 12, 31, 23, 59, tzinfo=UTC),
    ]
    result = mask(schedule, BERLIN, instants)
    assert result[:4] == [True, True, False, True]
    assert result == [in_shift(schedule, BERLIN, at) for at in instants]


zones = st.sampled_from([BERLIN, MOSCOW, NEW_YORK, KOLKATA, "Australia/Lord_Howe", "UTC"])
# Around the 2026 clock changes of the zones above, plus ordinary weeks.
instants_near = st.sampled_from(
    [
        utc(2026, 3, 8),
        utc(2026, 3, 29),
        utc(2026, 4, 5),
        utc(2026, 10, 4),
        utc(2026, 10, 25),
        utc(2026, 11, 1),
        utc(2026, 11, 23),
    ]
)


@st.composite
def schedules(draw: st.DrawFn) -> WeeklyShifts:
    """Random valid schedules: up to three non-overlapping intervals a day, some overnight."""
    raw: dict[str, Any] = {"graceMinutes": draw(st.integers(0, 90))}
    taken: list[tuple[int, int]] = []
    week = 7 * 1440
    for number, day in enumerate(DAYS):
        intervals = []
        for _ in range(draw(st.integers(0, 3))):
            start = draw(st.integers(0, 1439))
            length = draw(st.integers(1, 1440 if start == 0 else 1439))
            begin, end = number * 1440 + start, number * 1440 + start + length
            pieces = [(begin, min(end, week))] + ([(0, end - week)] if end > week else [])
            if any(b < e2 and b2 < e for b, e in pieces for b2, e2 in taken):
                continue
            taken.extend(pieces)
            finish = (start + length) % 1440
            end_text = (
                "24:00" if start + length == 1440 else f"{finish // 60:02d}:{finish % 60:02d}"
            )
            intervals.append([f"{start // 60:02d}:{start % 60:02d}", end_text])
        raw[day] = intervals
    return parse_weekly_shifts(raw)


@settings(max_examples=150, deadline=None)
@given(
    schedule=schedules(),
    tz=zones,
    base=instants_near,
    offsets=st.lists(st.integers(-3 * 86400, 4 * 86400), min_size=1, max_size=40),
)
def test_mask_equals_in_shift_per_point(
    schedule: WeeklyShifts, tz: str, base: datetime, offsets: list[int]
) -> None:
    instants = [base + timedelta(seconds=offset) for offset in offsets]
    result = mask(schedule, tz, instants)
    assert result == [in_shift(schedule, tz, at) for at in instants]
    # An oracle built from the windows of a wide range, extended by the grace.
    grace = timedelta(minutes=schedule.grace_minutes)
    every = windows(schedule, tz, base - timedelta(days=5), base + timedelta(days=6))
    assert result == [any(s - grace <= at < e + grace for s, e in every) for at in instants]
    assert [shift_at(schedule, tz, at) is not None for at in instants] == result


@settings(max_examples=100, deadline=None)
@given(schedule=schedules(), tz=zones, base=instants_near)
def test_windows_are_sorted_disjoint_and_follow_the_local_clock(
    schedule: WeeklyShifts, tz: str, base: datetime
) -> None:
    zone = ZoneInfo(tz)
    found = windows(schedule, tz, base - timedelta(days=3), base + timedelta(days=4))
    for start, end in found:
        assert start < end
        assert end - start <= timedelta(hours=26)
        assert start.utcoffset() == timedelta(0)
    for (_, end), (start, _) in pairwise(found):
        assert end <= start
    # Away from clock changes, a window starts on a scheduled local start time.
    for start, _ in found:
        wall = start.astimezone(zone)
        if (wall - timedelta(hours=3)).utcoffset() == (wall + timedelta(hours=3)).utcoffset():
            intervals = getattr(schedule, DAYS[wall.weekday()])
            assert f"{wall:%H:%M}" in {begin for begin, _ in intervals} or any(
                start == previous_end for _, previous_end in found
            )


# --- time zones and naive datetimes ----------------------------------------------------------


def test_naive_datetimes_and_unknown_zones_are_refused() -> None:
    schedule = shifts(WEEKDAYS, ("08:00", "17:00"))
    naive = datetime(2026, 11, MON, 12)
    with pytest.raises(ValueError, match="at must be timezone-aware"):
        in_shift(schedule, MOSCOW, naive)
    with pytest.raises(ValueError, match="timezone-aware"):
        shift_at(schedule, MOSCOW, naive)
    with pytest.raises(ValueError, match="start must be timezone-aware"):
        windows(schedule, MOSCOW, naive, utc(2026, 11, TUE))
    with pytest.raises(ValueError, match="end must be timezone-aware"):
        windows(schedule, MOSCOW, utc(2026, 11, TUE), naive)
    with pytest.raises(ValueError, match=r"instants\[1\] must be timezone-aware"):
        mask(schedule, MOSCOW, [utc(2026, 11, MON), naive])
    with pytest.raises(ValueError, match="unknown time zone"):
        in_shift(schedule, "Mars/Olympus_Mons", utc(2026, 11, MON))
    with pytest.raises(ValueError, match="unknown time zone"):
        mask(schedule, "Europe", [utc(2026, 11, MON)])


# --- parsing ---------------------------------------------------------------------------------


def test_parse_normalises_and_round_trips() -> None:
    raw = {
        "mon": [["13:00", "17:00"], ["08:00", "12:00"]],
        "fri": [["22:00", "06:00"]],
        "sat": [["09:00", "24:00"]],
        "graceMinutes": 5,
    }
    parsed = parse_weekly_shifts(raw)
    assert parsed.mon == (("08:00", "12:00"), ("13:00", "17:00"))
    assert parsed.fri == (("22:00", "06:00"),)
    assert parsed.sat == (("09:00", "24:00"),)
    assert parsed.sun == ()
    assert parsed.grace_minutes == 5
    dumped = dump_weekly_shifts(parsed)
    assert dumped == {
        "mon": [["08:00", "12:00"], ["13:00", "17:00"]],
        "tue": [],
        "wed": [],
        "thu": [],
        "fri": [["22:00", "06:00"]],
        "sat": [["09:00", "24:00"]],
        "sun": [],
        "graceMinutes": 5,
    }
    assert parse_weekly_shifts(dumped) == parsed
    assert parse_weekly_shifts(parsed) == parsed
    assert hash(parsed) == hash(parse_weekly_shifts(dumped))


def test_parse_errors_name_the_exact_path() -> None:
    assert field_errors({"mon": [["08:00", "08:00"]]}) == {
        "schedule.mon[0]": "start and end must differ"
    }
    assert field_errors({"tue": [["08:00", "12:00"], ["13:00", "25:00"]]}) == {
        "schedule.tue[1][1]": 'must be a time "HH:MM" between "00:00" and "24:00"'
    }
    assert field_errors({"wed": [["24:00", "06:00"]]}) == {
        "schedule.wed[0][0]": 'must be a time "HH:MM" between "00:00" and "23:59"'
    }
    assert field_errors({"thu": [["8:00", "17:00"]]}) == {
        "schedule.thu[0][0]": 'must be a time "HH:MM" between "00:00" and "23:59"'
    }
    assert field_errors({"mond": [["08:00", "17:00"]]}) == {
        "schedule.mond": "unknown day; expected one of mon, tue, wed, thu, fri, sat, sun "
        "(or graceMinutes)"
    }
    assert field_errors({"fri": [["08:00"]]}) == {
        "schedule.fri[0]": "Expected `array` of length 2, got 1"
    }
    assert field_errors({"sat": [["08:00", 17]]}) == {
        "schedule.sat[0][1]": "Expected `str`, got `int`"
    }
    assert field_errors([]) == {"schedule": "Expected `object`, got `array`"}


def test_parse_errors_for_overlaps() -> None:
    assert field_errors({"mon": [["08:00", "12:00"], ["11:00", "17:00"]]}) == {
        "schedule.mon[1]": "overlaps schedule.mon[0]"
    }
    # Reported at the later one, whatever the input order.
    assert field_errors({"mon": [["11:00", "17:00"], ["08:00", "12:00"]]}) == {
        "schedule.mon[0]": "overlaps schedule.mon[1]"
    }
    # An overnight shift runs into the next day's first shift.
    assert field_errors({"mon": [["22:00", "06:00"]], "tue": [["05:30", "13:00"]]}) == {
        "schedule.tue[0]": "overlaps schedule.mon[0]"
    }
    # ... and Sunday night runs into Monday morning.
    assert field_errors({"sun": [["22:00", "06:00"]], "mon": [["01:00", "02:00"]]}) == {
        "schedule.mon[0]": "overlaps schedule.sun[0]"
    }
    # Touching is not overlapping.
    parse_weekly_shifts({"mon": [["22:00", "06:00"]], "tue": [["06:00", "13:00"]]})
    parse_weekly_shifts({"sun": [["22:00", "06:00"]], "mon": [["06:00", "14:00"]]})
    parse_weekly_shifts({"mon": [["08:00", "12:00"], ["12:00", "17:00"]]})


def test_parse_errors_for_grace_and_limits() -> None:
    assert field_errors({"graceMinutes": -1}) == {
        "schedule.graceMinutes": "must be between 0 and 240"
    }
    assert field_errors({"graceMinutes": 241}) == {
        "schedule.graceMinutes": "must be between 0 and 240"
    }
    assert field_errors({"graceMinutes": True}) == {
        "schedule.graceMinutes": "Expected `int`, got `bool`"
    }
    assert field_errors({"grace_minutes": 5}) == {
        "schedule.grace_minutes": "unknown day; expected one of mon, tue, wed, thu, fri, sat, "
        "sun (or graceMinutes)"
    }
    too_many = [[f"{h:02d}:00", f"{h:02d}:30"] for h in range(24)] + [["23:40", "23:50"]]
    assert field_errors({"mon": too_many}) == {"schedule.mon": "at most 24 intervals a day"}


def test_parse_reports_every_error_under_the_given_field() -> None:
    with pytest.raises(InvalidInput) as caught:
        parse_weekly_shifts(
            {
                "mon": [["08:00", "08:00"], ["09:00", "99:00"]],
                "wed": [["10:00", "12:00"], ["11:00", "13:00"]],
                "graceMinutes": 500,
            },
            "workers[3].schedule",
        )
    assert [(e.field, e.reason) for e in caught.value.errors] == [
        ("workers[3].schedule.mon[0]", "start and end must differ"),
        (
            "workers[3].schedule.mon[1][1]",
            'must be a time "HH:MM" between "00:00" and "24:00"',
        ),
        ("workers[3].schedule.wed[1]", "overlaps workers[3].schedule.wed[0]"),
        ("workers[3].schedule.graceMinutes", "must be between 0 and 240"),
    ]
    assert caught.value.detail.startswith("workers[3].schedule.mon[0]: start and end must differ")


def test_functions_refuse_an_invalid_hand_built_schedule() -> None:
    broken = WeeklyShifts(mon=(("08:00", "08:00"),))
    with pytest.raises(InvalidInput):
        in_shift(broken, MOSCOW, utc(2026, 11, MON, 6))
    listed = WeeklyShifts(mon=[["08:00", "17:00"]], grace_minutes=0)  # type: ignore[arg-type]
    assert in_shift(listed, MOSCOW, utc(2026, 11, MON, 6))
