"""Timing a given order (ETAs between solves) and the one-visit dispatcher (cheapest insertion)."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from geo.routes import best_insertion, time_route
from geo.vrp import Visit, Worker


def line(n: int, step_m: int = 1000, speed_mps: int = 10) -> tuple[np.ndarray, np.ndarray]:
    """Places 0..n-1 on a straight road, `step_m` apart, driven at `speed_mps`."""
    pos = np.arange(n, dtype=np.int64) * step_m
    distance = np.abs(pos[:, None] - pos[None, :])
    return distance, distance // speed_mps


def test_time_route_waits_for_windows_and_reports_lateness() -> None:
    matrices = line(4)
    visits = [
        Visit("a", 1, service_s=600, window=(500, 1000)),  # arrive 100, wait 400
        Visit("b", 2, service_s=600, window=(0, 1000)),  # arrive 1200: 200 s late
        Visit("c", 3, service_s=0),
    ]
    route = time_route("w", visits, start=0, depart_s=0, end=0, matrices=matrices)
    a, b, c = route.stops
    assert (a.arrival_s, a.start_s, a.wait_s, a.departure_s) == (100, 500, 400, 1100)
    assert (b.arrival_s, b.start_s, b.late_s, b.departure_s) == (1200, 1200, 200, 1800)
    assert (c.arrival_s, c.travel_s, c.distance_m) == (1900, 100, 1000)
    assert route.end_distance_m == 3000
    assert route.return_s == 2200
    assert route.distance_m == 6000


def test_best_insertion_picks_the_least_added_driving_within_windows() -> None:
    matrices = line(6)
    near = Worker("near", start=0, end=0, shift=(0, 10_000), skills=frozenset({"installer"}))
    far = Worker("far", start=5, end=5, shift=(0, 10_000), skills=frozenset({"installer"}))
    new = Visit("new", 4, service_s=300, skills=frozenset({"installer"}))
    # "far" starts next door to place 4; "near" would drive 4 km each way.
    chosen = best_insertion(new, [near, far], [[], []], matrices)
    assert chosen is not None
    assert (chosen.worker_id, chosen.position, chosen.added_m) == (
        "far",
        0,
        2000,
    )
    # Without the skill "far" cannot take it.
    unskilled = Worker("far", start=5, end=5, shift=(0, 10_000))
    chosen = best_insertion(new, [near, unskilled], [[], []], matrices)
    assert chosen is not None
    assert chosen.worker_id == "near"
    assert chosen.added_m == 8000


def test_best_insertion_keeps_the_other_visits_on_time_and_the_shift() -> None:
    matrices = line(6)
    worker = Worker("w", start=0, end=0, shift=(0, 2000))
    day = [Visit("fixed", 2, service_s=100, window=(200, 250))]
    # Before "fixed" it would make "fixed" late (arrive 300 + 400 service); after it, fine.
    new = Visit("new", 1, service_s=400)
    chosen = best_insertion(new, [worker], [day], matrices)
    assert chosen is not None
    assert chosen.position == 1
    # A visit whose window is already over fits nowhere; nor one past the shift's end.
    assert best_insertion(Visit("late", 3, window=(0, 10)), [worker], [day], matrices) is None
    assert best_insertion(Visit("long", 5, service_s=5000), [worker], [day], matrices) is None


@settings(max_examples=60, deadline=None)
@given(
    st.lists(st.integers(0, 9), min_size=0, max_size=5),
    st.integers(0, 9),
    st.integers(0, 3000),
)
def test_an_insertion_found_is_feasible_when_timed(
    day_places: list[int], place: int, window_start: int
) -> None:
    matrices = line(10, step_m=500)
    worker = Worker("w", start=0, end=0, shift=(0, 20_000))
    day = [Visit(f"v{i}", p, service_s=120) for i, p in enumerate(day_places)]
    new = Visit("new", place, service_s=120, window=(window_start, window_start + 600))
    chosen = best_insertion(new, [worker], [day], matrices)
    if chosen is None:
        return
    order = [*day[: chosen.position], new, *day[chosen.position :]]
    route = time_route("w", order, start=0, depart_s=0, end=0, matrices=matrices)
    stop = next(s for s in route.stops if s.id == "new")
    assert window_start <= stop.start_s <= window_start + 600
    assert route.return_s <= 20_000
