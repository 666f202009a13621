"""geo.track: pure GPS-track functions — no database, milliseconds per test."""

from __future__ import annotations

import itertools
import math
import random
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from geo.track import (
    EARTH_RADIUS_M,
    Fix,
    Stop,
    accepted_fixes,
    detect_stops,
    dwell,
    haversine_m,
    implausible_jumps,
    simplify,
    time_split,
    to_geojson_line,
    track_distance_m,
    within_geofence,
)

T0 = datetime(2026, 11, 24, 9, 0, tzinfo=UTC)
LAT0, LON0 = 55.79, 49.12  # Kazan
M_PER_DEG = EARTH_RADIUS_M * math.pi / 180.0


def at(x_m: float, y_m: float, lat0: float = LAT0, lon0: float = LON0) -> tuple[float, float]:
    """(lat, lon) of the point x metres east and y metres north of (lat0, lon0)."""
    lat = lat0 + y_m / M_PER_DEG
    lon = lon0 + x_m / (M_PER_DEG * math.cos(math.radians(lat0)))
    return lat, (lon + 180.0) % 360.0 - 180.0


def fix(seconds: float, x_m: float, y_m: float, accuracy_m: float | None = 5.0) -> Fix:
    lat, lon = at(x_m, y_m)
    return Fix(T0 + timedelta(seconds=seconds), lat, lon, accuracy_m)


# --- haversine ---------------------------------------------------------------------------------


def test_haversine_known_distances() -> None:
    kremlin_to_station = haversine_m(55.7988, 49.1064, 55.7887, 49.0991)
    assert kremlin_to_station == pytest.approx(1220, rel=0.01)
    assert haversine_m(0, 0, 0, 1) == pytest.approx(111_195, rel=0.001)
    assert haversine_m(0, 179.5, 0, -179.5) == pytest.approx(111_195, rel=0.001)
    assert haversine_m(90, 0, -90, 0) == pytest.approx(math.pi * EARTH_RADIUS_M)
    assert haversine_m(LAT0, LON0, LAT0, LON0) == 0.0


def test_fix_validates_its_fields() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        Fix(datetime(2026, 1, 1), 0, 0)
    with pytest.raises(ValueError, match="latitude"):
        Fix(T0, 91, 0)
    with pytest.raises(ValueError, match="longitude"):
        Fix(T0, 0, 180.5)
    with pytest.raises(ValueError, match="accuracy"):
        Fix(T0, 0, 0, accuracy_m=-1)
    with pytest.raises(ValueError, match="speed"):
        Fix(T0, 0, 0, speed_mps=math.nan)


# --- a synthetic working day: drive, stop, drive -----------------------------------------------

DRIVE1_S, STOP_S, DRIVE2_S, SPEED = 360, 600, 370, 12.0


def drive_stop_drive() -> list[Fix]:
    """Every 10 s: 6 min east then north at 12 m/s along an L-shaped street (±2 m GPS noise),
    10 min parked (±1 m noise), then 370 s further north at 12 m/s."""
    rnd = random.Random(7)
    fixes: list[Fix] = []

    def on_street(d: float) -> tuple[float, float]:  # d metres along the L: 2 km east, then north
        return (d, 0.0) if d <= 2000 else (2000.0, d - 2000)

    stop_d = DRIVE1_S * SPEED
    for s in range(0, DRIVE1_S, 10):
        x, y = on_street(s * SPEED)
        fixes.append(fix(s, x + rnd.uniform(-2, 2), y + rnd.uniform(-2, 2)))
    sx, sy = on_street(stop_d)
    for s in range(DRIVE1_S, DRIVE1_S + STOP_S + 1, 10):
        fixes.append(fix(s, sx + rnd.uniform(-1, 1), sy + rnd.uniform(-1, 1)))
    start2 = DRIVE1_S + STOP_S
    for s in range(start2 + 10, start2 + DRIVE2_S + 1, 10):
        x, y = on_street(stop_d + (s - start2) * SPEED)
        fixes.append(fix(s, x + rnd.uniform(-2, 2), y + rnd.uniform(-2, 2)))
    return fixes


def test_drive_stop_drive() -> None:
    fixes = drive_stop_drive()

    stops = detect_stops(fixes)
    assert len(stops) == 1
    (stop,) = stops
    assert stop.start == T0 + timedelta(seconds=DRIVE1_S)
    assert stop.end == T0 + timedelta(seconds=DRIVE1_S + STOP_S)
    assert stop.fixes == STOP_S // 10 + 1
    assert haversine_m(stop.lat, stop.lon, *at(2000, DRIVE1_S * SPEED - 2000)) < 2

    true_path = (DRIVE1_S + DRIVE2_S) * SPEED
    assert track_distance_m(fixes) == pytest.approx(true_path, rel=0.02)
    assert implausible_jumps(fixes) == []

    split = time_split(fixes, stops)
    assert split.on_stop == timedelta(seconds=STOP_S)
    assert split.driving == timedelta(seconds=DRIVE1_S + DRIVE2_S)
    assert split.idle == timedelta(0)
    assert split.total == fixes[-1].t - fixes[0].t


def test_stop_survives_a_silent_phone_and_an_outlier() -> None:
    fixes = [
        fix(0, 0, 0),
        fix(60, 10, 0),
        fix(70, 5000, 0),  # teleport: skipped, does not cut the stop
        fix(80, 0, 10),
        fix(3600, 20, 20),  # an hour of silence, still parked
        fix(3700, 5, 5, accuracy_m=800),  # too fuzzy to count either way
        fix(3720, 0, 0),
        fix(3730, 500, 0),
    ]
    (stop,) = detect_stops(fixes)
    assert (stop.start, stop.end, stop.fixes) == (fixes[0].t, fixes[6].t, 5)
    # The silent hour is not counted, the rest is the stop; the 10 s drive away is driving.
    split = time_split(fixes, [stop])
    assert split.on_stop == timedelta(seconds=80 + 120)
    assert split.driving == timedelta(seconds=10)
    assert split.idle == timedelta(0)


def test_short_halt_is_not_a_stop_and_slow_time_is_idle() -> None:
    fixes = [fix(s, 0, 0) for s in range(0, 240, 10)]  # 4 min: shorter than min_duration
    assert detect_stops(fixes) == []
    split = time_split(fixes, [])
    assert split == type(split)(timedelta(0), timedelta(0), timedelta(seconds=230))


def test_stops_and_split_of_empty_and_single_inputs() -> None:
    assert detect_stops([]) == []
    assert detect_stops([fix(0, 0, 0)]) == []
    assert time_split([], []).total == timedelta(0)
    assert time_split(iter([fix(0, 0, 0)]), []).total == timedelta(0)
    assert track_distance_m([]) == 0.0
    assert track_distance_m([fix(0, 0, 0)]) == 0.0
    assert implausible_jumps([]) == []
    assert simplify([]) == []
    assert dwell([], LAT0, LON0, 100) == timedelta(0)
    assert to_geojson_line([]) == {"type": "LineString", "coordinates": []}


def test_out_of_order_fixes_are_refused() -> None:
    with pytest.raises(ValueError, match="time order"):
        track_distance_m([fix(10, 0, 0), fix(0, 100, 0)])


# --- implausible jumps -------------------------------------------------------------------------


def test_teleport_is_flagged_and_excluded_from_distance() -> None:
    honest = [fix(s, s * SPEED, 0) for s in range(0, 300, 10)]
    assert honest[9].t == T0 + timedelta(seconds=90)
    teleport = fix(100, 90 * SPEED, 5000)  # 5 km north of the fix 10 s before
    with_teleport = [*honest[:10], teleport, *honest[10:]]
    assert implausible_jumps(with_teleport) == [10]
    assert accepted_fixes(with_teleport) == honest
    assert track_distance_m(with_teleport) == pytest.approx(track_distance_m(honest))
    # The same jump from a fix whose accuracy is 5 km is explainable by it: not flagged...
    fuzzy = [*honest[:10], fix(95, 90 * SPEED, 5000, accuracy_m=5000), *honest[10:]]
    assert implausible_jumps(fuzzy) == []
    # ...but too fuzzy to be counted in the distance.
    assert track_distance_m(fuzzy) == pytest.approx(track_distance_m(honest))


def test_jump_at_the_same_instant_is_implausible() -> None:
    assert implausible_jumps([fix(0, 0, 0), fix(0, 0, 0), fix(0, 300, 0)]) == [2]


# --- simplify ----------------------------------------------------------------------------------


def test_simplify_keeps_corners_and_drops_collinear_points() -> None:
    east = [fix(i, i * 10, 0) for i in range(101)]
    north = [fix(101 + i, 1000, (i + 1) * 10) for i in range(100)]
    path = east + north
    assert simplify(path, 10.0) == [path[0], path[100], path[-1]]
    assert simplify(path, 0.0) == [path[0], path[100], path[-1]]
    assert simplify(path[:2]) == path[:2]
    assert simplify(path[:1]) == path[:1]


def test_simplify_100k_points_keeps_the_bends() -> None:
    # A winding 500 km road, one fix every 5 m: sine bends of 200 m every 2 km. (Its speed is
    # measured in performance/, not here: a timed unit test fails on a busy machine.)
    fixes = [
        fix(i, i * 5.0, 200 * math.sin(i * 5.0 / 2000 * 2 * math.pi), None) for i in range(100_000)
    ]
    kept = simplify(fixes, 10.0)
    assert kept[0] is fixes[0]
    assert kept[-1] is fixes[-1]
    assert 500 < len(kept) < 10_000


# --- geofence and dwell ------------------------------------------------------------------------


def test_geofence_inside_outside_uncertain() -> None:
    c_lat, c_lon = LAT0, LON0
    near = at(50, 0)  # 50 m from the centre of a 100 m fence
    r = within_geofence(*near, 10, c_lat, c_lon, 100)
    assert r.distance_m == pytest.approx(50, abs=0.1)
    assert (r.inside, r.certain) == (True, True)

    r = within_geofence(*near, 60, c_lat, c_lon, 100)  # disc pokes out: inside, not certain
    assert (r.inside, r.certain) == (True, False)

    edge = at(150, 0)
    assert within_geofence(*edge, None, c_lat, c_lon, 100).inside is False
    r = within_geofence(*edge, 60, c_lat, c_lon, 100)  # the disc reaches the fence
    assert (r.inside, r.certain) == (True, False)
    assert within_geofence(*edge, 40, c_lat, c_lon, 100).inside is False

    # Accuracy widens the circle but never more than doubles it.
    far = at(250, 0)
    assert within_geofence(*far, 5000, c_lat, c_lon, 100).inside is False
    assert within_geofence(*at(199, 0), 5000, c_lat, c_lon, 100).inside is True


def test_dwell_over_in_out_in() -> None:
    fixes = [
        fix(0, 500, 0),  # approaching
        fix(60, 10, 0),  # in
        fix(120, 0, 0),
        fix(300, 20, 0),  # in: 240 s
        fix(360, 400, 0),  # out
        fix(420, 300, 0),
        fix(480, 0, 10),  # in again
        fix(1080, 5, 0),  # in: 600 s
    ]
    assert dwell(fixes, LAT0, LON0, 100) == timedelta(seconds=240 + 600)
    assert dwell(fixes[:2], LAT0, LON0, 100) == timedelta(0)


# --- GeoJSON -----------------------------------------------------------------------------------


def test_geojson_is_longitude_first_and_rounded() -> None:
    fixes = [
        Fix(T0, 55.798812345, 49.106412345),
        Fix(T0 + timedelta(seconds=1), 55.7887, 49.0991),
    ]
    assert to_geojson_line(fixes) == {
        "type": "LineString",
        "coordinates": [[49.106412, 55.798812], [49.0991, 55.7887]],
    }


# --- properties --------------------------------------------------------------------------------


def _segment_distance_m(p: Fix, a: Fix, b: Fix) -> float:
    """Distance from p to segment a-b on an equirectangular projection centred on p."""
    k = M_PER_DEG * math.cos(math.radians(p.lat))

    def xy(f: Fix) -> tuple[float, float]:
        return ((f.lon - p.lon + 180) % 360 - 180) * k, (f.lat - p.lat) * M_PER_DEG

    (ax, ay), (bx, by) = xy(a), xy(b)
    dx, dy = bx - ax, by - ay
    len2 = dx * dx + dy * dy
    u = 0.0 if len2 == 0 else max(0.0, min(1.0, -(ax * dx + ay * dy) / len2))
    return math.hypot(ax + u * dx, ay + u * dy)


offsets = st.lists(
    st.tuples(st.floats(-500, 500), st.floats(-500, 500)),
    max_size=60,
)
origins = st.tuples(st.floats(-70, 70), st.floats(-180, 180))


@settings(max_examples=200, deadline=None)
@given(offsets, origins, st.floats(0, 50))
def test_simplify_is_a_subsequence_within_tolerance(
    points: list[tuple[float, float]], origin: tuple[float, float], tolerance: float
) -> None:
    fixes = [Fix(T0 + timedelta(seconds=i), *at(x, y, *origin)) for i, (x, y) in enumerate(points)]
    kept = simplify(fixes, tolerance)
    if not fixes:
        assert kept == []
        return
    assert kept[0] is fixes[0]
    assert kept[-1] is fixes[-1]
    positions = {id(f): i for i, f in enumerate(fixes)}
    indexes = [positions[id(f)] for f in kept]
    assert indexes == sorted(set(indexes))
    for a, b in itertools.pairwise(indexes):
        for i in range(a + 1, b):
            assert _segment_distance_m(fixes[i], fixes[a], fixes[b]) <= tolerance + 1.0


tracks = st.lists(
    st.tuples(
        st.floats(1, 600),  # seconds since the previous fix
        st.floats(-3000, 3000),
        st.floats(-3000, 3000),
        st.one_of(st.none(), st.floats(0, 300)),
    ),
    max_size=40,
)


def _track(rows: list[tuple[float, float, float, float | None]]) -> list[Fix]:
    t = 0.0
    out = []
    for dt, x, y, acc in rows:
        t += dt
        out.append(fix(t, x, y, acc))
    return out


@settings(max_examples=200, deadline=None)
@given(tracks)
def test_track_distance_is_at_least_the_straight_line(
    rows: list[tuple[float, float, float, float | None]],
) -> None:
    fixes = _track(rows)
    kept = accepted_fixes(fixes)
    distance = track_distance_m(fixes)
    if len(kept) < 2:
        assert distance == 0.0
    else:
        straight = haversine_m(kept[0].lat, kept[0].lon, kept[-1].lat, kept[-1].lon)
        assert distance >= straight - 1e-6


# Random walks mixing tiny steps (parked) and long ones (driving).
walks = st.lists(
    st.tuples(
        st.floats(1, 300),
        st.one_of(st.floats(-30, 30), st.floats(-2000, 2000)),
        st.one_of(st.floats(-30, 30), st.floats(-2000, 2000)),
        st.just(5.0),
    ),
    max_size=80,
)


@settings(max_examples=200, deadline=None)
@given(walks, st.floats(10, 200), st.integers(0, 900))
def test_stops_are_disjoint_ordered_and_long_enough(
    rows: list[tuple[float, float, float, float | None]], radius: float, min_s: int
) -> None:
    x = y = 0.0
    steps = []
    for dt, dx, dy, acc in rows:
        x, y = x + dx, y + dy
        steps.append((dt, x, y, acc))
    fixes = _track(steps)
    min_duration = timedelta(seconds=min_s)
    stops = detect_stops(fixes, radius, min_duration)
    for s in stops:
        assert isinstance(s, Stop)
        assert s.end - s.start >= min_duration
        assert s.fixes >= 2
    for before, after in itertools.pairwise(stops):
        assert before.end < after.start
    assert sum(s.fixes for s in stops) <= len(fixes)
    split = time_split(fixes, stops)
    assert split.on_stop <= sum((s.duration for s in stops), timedelta(0))
