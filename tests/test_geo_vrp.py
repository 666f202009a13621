"""geo.vrp: the field-service optimiser on small instances with known answers, and property
tests that every plan passes the independent checker geo.feasibility.check. No database."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from geo.feasibility import check
from geo.solomon import field_service_model, parse_solomon
from geo.travel import Matrices
from geo.vrp import DID_NOT_FIT, Break, Plan, RoutePlan, Stop, Unassigned, Visit, Worker, solve

FAST = {"budget_s": 2.0, "max_iterations": 300}
DAY = (0, 10_000)


def on_line(*xs: int) -> Matrices:
    """Places on a straight road at positions xs (metres), driven at 1 m/s."""
    p = np.array(xs, dtype=np.int64)
    d = np.abs(p[:, None] - p[None, :])
    return Matrices(d, d.copy())


def solved(visits: list[Visit], workers: list[Worker], m: Matrices, **kw: object) -> Plan:
    plan = solve(visits, workers, m, **{**FAST, **kw})  # type: ignore[arg-type]
    assert check(plan, visits, workers, m) == []
    return plan


def reasons(plan: Plan) -> dict[str, str]:
    return {u.visit_id: u.reason for u in plan.unassigned}


def test_four_visits_on_a_line_in_order() -> None:
    m = on_line(0, 10, 20, 30, 40)
    visits = [Visit(f"v{x}", x, service_s=5) for x in (3, 1, 4, 2)]
    plan = solved(visits, [Worker("w", 0, 0, DAY)], m)
    (route,) = plan.routes
    assert route.visit_ids in (["v1", "v2", "v3", "v4"], ["v4", "v3", "v2", "v1"])
    assert route.distance_m == 80
    assert route.travel_s == 80
    assert route.work_s == 80 + 4 * 5
    assert plan.unassigned == ()


def test_windows_force_the_order_and_times_are_reported() -> None:
    m = on_line(0, 10, 20)
    visits = [
        Visit("near", 1, service_s=5, window=(100, 200)),
        Visit("far", 2, service_s=5, window=(0, 50)),
    ]
    plan = solved(visits, [Worker("w", 0, 0, DAY)], m)
    (route,) = plan.routes
    assert route.visit_ids == ["far", "near"]
    far, near = route.stops
    assert far == Stop(
        "visit", "far", 2, far.arrival_s, far.arrival_s, far.arrival_s + 5, 0, 20, 20
    )
    assert near.arrival_s == far.departure_s + 10
    assert near.start_s == 100  # waits for the window
    assert near.wait_s == 100 - near.arrival_s
    assert route.return_s == 105 + 10
    assert route.distance_m == 40


def test_only_the_skilled_worker_gets_the_visit() -> None:
    m = on_line(0, 100, 5, -50)
    workers = [
        Worker("near", 0, 0, DAY),
        Worker("gas", 1, 1, DAY, skills=frozenset({"gas", "electric"})),
    ]
    visits = [Visit("boiler", 2, skills=frozenset({"gas"})), Visit("lamp", 3)]
    plan = solved(visits, workers, m)
    assert plan.route_of("gas") is not None
    assert plan.route_of("gas").visit_ids == ["boiler"]  # type: ignore[union-attr]
    assert plan.route_of("near").visit_ids == ["lamp"]  # type: ignore[union-attr]


def test_optional_low_value_visit_is_left_out_when_time_is_short() -> None:
    m = on_line(0, 100, -100)
    visits = [
        Visit("must", 1, service_s=50),
        Visit("nice", 2, service_s=50, required=False, value=100),
        Visit("worth", 2, service_s=0, required=False, value=10_000),
    ]
    # 400 s of shift: must (100 + 50 + 100) leaves 150 s: not enough for nice's 200 + 50.
    plan = solved(visits, [Worker("w", 0, 0, (0, 400))], m)
    assert plan.routes[0].visit_ids == ["must"]
    assert reasons(plan) == {"nice": DID_NOT_FIT, "worth": DID_NOT_FIT}
    # With a long day, the valuable optional visit is worth its 200 m, the cheap one is not...
    plan = solved(visits, [Worker("w", 0, 0, DAY)], m)
    assert sorted(plan.routes[0].visit_ids) == ["must", "nice", "worth"]  # same place: free
    plan = solved(visits[:2], [Worker("w", 0, 0, DAY)], m)
    assert reasons(plan) == {"nice": DID_NOT_FIT}  # 200 m of driving for a value of 100


def test_specific_reasons_before_solving() -> None:
    m = on_line(0, 10, 5000)
    workers = [Worker("a", 0, 0, (1000, 2000), skills=frozenset({"x"}))]
    visits = [
        Visit("night", 1, window=(3000, 4000)),
        Visit("morning", 1, window=(0, 500)),
        Visit("skills", 1, skills=frozenset({"y"})),
        Visit("far", 2, window=(1000, 1500)),
        Visit("pin", 1, pinned_worker="nobody"),
        Visit("heavy", 1, demand=5),
        Visit("ok", 1),
    ]
    workers = [Worker("a", 0, 0, (1000, 2000), skills=frozenset({"x"}), capacity=3)]
    plan = solved(visits, workers, m)
    assert reasons(plan) == {
        "night": "window outside every shift",
        "morning": "window outside every shift",
        "skills": "no worker has the skills: y",
        "far": "unreachable in time from any start",
        "pin": "pinned to unknown worker nobody",
        "heavy": "demand exceeds the capacity of every worker who may do it",
    }
    assert plan.routes[0].visit_ids == ["ok"]
    assert reasons(solved(visits[:1], [], m)) == {"night": "no workers"}


def test_pinned_worker_is_respected() -> None:
    m = on_line(0, 1000, 10, -10)
    workers = [Worker("near", 0, 0, DAY), Worker("far", 1, 1, DAY)]
    visits = [Visit("mine", 2, pinned_worker="far"), Visit("other", 3)]
    plan = solved(visits, workers, m)
    assert plan.route_of("far").visit_ids == ["mine"]  # type: ignore[union-attr]
    assert plan.route_of("near").visit_ids == ["other"]  # type: ignore[union-attr]


def test_pinned_order_is_the_head_of_the_route() -> None:
    m = on_line(0, 10, 20, 30, 40)
    visits = [
        Visit("a", 1),
        Visit("d", 4, pinned_worker="w", pinned_position=0),
        Visit("b", 2, pinned_worker="w", pinned_position=1),
        Visit("c", 3),
    ]
    plan = solved(visits, [Worker("w", 0, 0, DAY)], m)
    ids = plan.routes[0].visit_ids
    assert ids[:2] == ["d", "b"]
    assert sorted(ids[2:]) == ["a", "c"]
    # A pinned head that misses a window is cut there, with the reason.
    late = [Visit("x", 4, pinned_worker="w", pinned_position=0),
            Visit("y", 1, window=(0, 45), pinned_worker="w", pinned_position=1),
            Visit("z", 2, pinned_worker="w", pinned_position=2)]  # fmt: skip
    plan = solved(late, [Worker("w", 0, 0, DAY)], m)
    assert plan.routes[0].visit_ids == ["x"]
    assert reasons(plan)["y"].startswith("pinned order cannot be kept")
    assert reasons(plan)["z"].startswith("pinned order cannot be kept")


def test_break_is_taken_in_its_window_at_a_site() -> None:
    m = on_line(0, 100, 200)
    lunch = Break(earliest_s=300, latest_s=400, duration_s=60)
    worker = Worker("w", 0, 0, (0, 2000), breaks=(lunch,))
    visits = [Visit("a", 1, service_s=100, window=(0, 1000)), Visit("b", 2, service_s=100)]
    plan = solved(visits, [worker], m)
    (route,) = plan.routes
    kinds = [s.kind for s in route.stops]
    assert kinds.count("break") == 1
    brk = next(s for s in route.stops if s.kind == "break")
    assert brk.id == "w/break/0"
    assert 300 <= brk.start_s <= 400
    assert brk.departure_s - brk.start_s == 60
    assert route.distance_m == 400  # the break costs no detour
    # An idle worker takes no break (and has no route).
    assert solved([], [worker], m).routes == ()


def test_break_that_cannot_fit_the_shift_is_an_error() -> None:
    with pytest.raises(ValueError, match="break"):
        solve([], [Worker("w", 0, 0, (0, 100), breaks=(Break(200, 300, 10),))], on_line(0))


def test_soft_deadline_allows_late_service_at_a_price() -> None:
    m = on_line(0, 500)
    hard = Visit("v", 1, service_s=10, window=(0, 100))
    soft = Visit("v", 1, service_s=10, window=(0, 100), hard_deadline=False, late_penalty=50)
    workers = [Worker("w", 0, 0, DAY)]
    assert reasons(solved([hard], workers, m)) == {"v": "unreachable in time from any start"}
    plan = solved([soft], workers, m)
    (stop,) = plan.routes[0].stops
    assert stop.start_s == 500
    assert stop.late_s == 400
    optional = Visit("v", 1, window=(0, 100), hard_deadline=False, late_penalty=50,
                     required=False, value=1040)  # fmt: skip
    assert reasons(solved([optional], workers, m)) == {"v": DID_NOT_FIT}  # 1040 - 50 < 1000 m


def test_capacity_splits_the_work() -> None:
    m = on_line(0, 10, 20, 30)
    workers = [Worker("a", 0, 0, DAY, capacity=10), Worker("b", 0, 0, DAY, capacity=10)]
    visits = [Visit(f"v{k}", k, demand=5) for k in (1, 2, 3)]
    plan = solved(visits, workers, m)
    assert sorted(len(r.visit_ids) for r in plan.routes) == [1, 2]


def test_required_visits_that_cannot_all_fit_keep_as_many_as_possible() -> None:
    m = on_line(0, 100, 200, 300)
    visits = [Visit(f"v{k}", k, service_s=100, window=(0, 450)) for k in (1, 2, 3)]
    plan = solved(visits, [Worker("w", 0, 0, (0, 2000))], m)
    assert len(plan.routes[0].visit_ids) == 2  # v1 at 100-200, v2 at 300-400: v3 too late
    assert list(reasons(plan).values()) == [DID_NOT_FIT]
    assert plan.search["phase"] == "all optional"


def test_max_work_and_separate_start_and_end() -> None:
    m = on_line(0, 100, 200, 1000)
    worker = Worker("w", 0, 3, DAY, max_work_s=1100)
    visits = [Visit("on-the-way", 2, service_s=50), Visit("detour", 1, service_s=100)]
    plan = solved(visits, [worker], m)
    route = plan.routes[0]
    assert route.return_s - route.depart_s <= 1100
    assert route.end_distance_m + sum(s.distance_m for s in route.stops) == 1000


def test_identical_workers_share_the_load() -> None:
    m = on_line(0, -100, 100)
    workers = [Worker(f"w{k}", 0, 0, (0, 250)) for k in range(3)]
    visits = [Visit("left", 1, service_s=10), Visit("right", 2, service_s=10)]
    plan = solved(visits, workers, m)
    assert len(plan.routes) == 2
    assert [r.worker_id for r in plan.routes] == ["w0", "w1"]  # in input order


def test_same_seed_same_plan() -> None:
    rng = np.random.default_rng(7)
    xy = rng.integers(0, 1000, size=(31, 2))
    d = np.rint(np.hypot(*(xy[:, None, :] - xy[None, :, :]).transpose(2, 0, 1))).astype(np.int64)
    m = Matrices(d, d)
    visits = [
        Visit(f"v{i}", i, service_s=30, window=(int(a), int(a) + 1500))
        for i, a in zip(range(1, 31), rng.integers(0, 3000, 30), strict=True)
    ]
    workers = [Worker(f"w{k}", 0, 0, (0, 6000)) for k in range(4)]
    first = solve(visits, workers, m, seed=3, budget_s=30, max_iterations=400)
    again = solve(visits, workers, m, seed=3, budget_s=30, max_iterations=400)
    assert [r.stops for r in first.routes] == [r.stops for r in again.routes]
    assert check(first, visits, workers, m) == []


C101_25 = """C101

VEHICLE
NUMBER     CAPACITY
  25         200

CUSTOMER
CUST NO.  XCOORD.   YCOORD.    DEMAND   READY TIME  DUE DATE   SERVICE   TIME

    0      40         50          0          0       1236          0
    1      45         68         10        912        967         90
    2      45         70         30        825        870         90
    3      42         66         10         65        146         90
    4      42         68         10        727        782         90
    5      42         65         10         15         67         90
    6      40         69         20        621        702         90
    7      40         66         20        170        225         90
    8      38         68         20        255        324         90
    9      38         70         10        534        605         90
   10      35         66         10        357        410         90
   11      35         69         10        448        505         90
   12      25         85         20        652        721         90
   13      22         75         30         30         92         90
   14      22         85         10        567        620         90
   15      20         80         40        384        429         90
   16      20         85         40        475        528         90
   17      18         75         20         99        148         90
   18      15         75         20        179        254         90
   19      15         80         10        278        345         90
   20      30         50         10         10         73         90
   21      30         52         20        914        965         90
   22      28         52         20        812        883         90
   23      28         55         10        732        777         90
   24      25         50         10         65        144         90
   25      25         52         40        169        224         90
"""


def test_solomon_c101_25_reaches_the_known_optimum() -> None:
    """C101 with 25 customers: proven optimum 191.3 with 3 vehicles (Kohl et al., distances
    truncated to one decimal)."""
    visits, workers, m = field_service_model(parse_solomon(C101_25))
    plan = solved(visits, workers, m, budget_s=10, max_iterations=1000)
    assert plan.distance_m == 1913
    assert len(plan.routes) == 3


# --- property: every plan passes the independent checker ------------------------------------

SKILLS = ["gas", "electric", "water"]


@st.composite
def instances(draw: st.DrawFn) -> tuple[list[Visit], list[Worker], Matrices]:
    n_workers = draw(st.integers(1, 3))
    n_visits = draw(st.integers(0, 12))
    n_places = n_visits + 2
    xy = np.array(draw(st.lists(st.tuples(st.integers(0, 300), st.integers(0, 300)),
                                min_size=n_places, max_size=n_places)))  # fmt: skip
    d = np.ceil(np.hypot(*(xy[:, None, :] - xy[None, :, :]).transpose(2, 0, 1))).astype(np.int64)
    m = Matrices(d, d)
    workers = []
    for k in range(n_workers):
        s0 = draw(st.integers(0, 300))
        s1 = s0 + draw(st.integers(200, 2000))
        breaks: tuple[Break, ...] = ()
        if draw(st.booleans()):
            e = draw(st.integers(s0, s1 - 60))
            breaks = (Break(e, e + draw(st.integers(0, 300)), draw(st.integers(1, 60))),)
        workers.append(
            Worker(
                f"w{k}",
                draw(st.integers(0, 1)),
                draw(st.integers(0, 1)),
                (s0, s1),
                skills=frozenset(draw(st.sets(st.sampled_from(SKILLS)))),
                max_work_s=draw(st.none() | st.integers(300, 2000)),
                breaks=breaks,
                capacity=draw(st.none() | st.integers(0, 20)),
            )
        )
    visits = []
    positions: dict[str, int] = {}
    for i in range(n_visits):
        a = draw(st.integers(0, 2000))
        window = draw(st.none() | st.just((a, a + draw(st.integers(0, 800)))))
        pinned = draw(st.none() | st.sampled_from([w.id for w in workers] + ["ghost"]))
        position = None
        if pinned is not None and pinned != "ghost" and draw(st.booleans()):
            position = positions[pinned] = positions.get(pinned, -1) + 1
        required = draw(st.booleans())
        visits.append(
            Visit(
                f"v{i}",
                i + 2,
                service_s=draw(st.integers(0, 120)),
                window=window,
                skills=frozenset(draw(st.sets(st.sampled_from(SKILLS), max_size=1))),
                value=0 if required else draw(st.integers(0, 2000)),
                required=required,
                hard_deadline=draw(st.booleans()),
                late_penalty=draw(st.integers(0, 500)),
                demand=draw(st.integers(0, 8)),
                pinned_worker=pinned,
                pinned_position=position,
            )
        )
    return visits, workers, m


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(instances(), st.integers(0, 3))
def test_every_plan_passes_the_checker(
    instance: tuple[list[Visit], list[Worker], Matrices], seed: int
) -> None:
    visits, workers, m = instance
    try:
        plan = solve(visits, workers, m, seed=seed, budget_s=1.0, max_iterations=60)
    except ValueError as exc:  # only for a break that cannot fit its shift
        assert "break" in str(exc)
        return
    assert check(plan, visits, workers, m) == []
    routed = [vid for r in plan.routes for vid in r.visit_ids]
    unassigned = [u.visit_id for u in plan.unassigned]
    assert sorted(routed + unassigned) == sorted(v.id for v in visits)
    assert all(u.reason for u in plan.unassigned)


def test_checker_catches_broken_plans() -> None:
    m = on_line(0, 100)
    visit = Visit("v", 1, service_s=10, window=(0, 50), skills=frozenset({"gas"}))
    worker = Worker("w", 0, 0, (0, 150), breaks=(Break(0, 500, 5),))
    stop = Stop("visit", "v", 1, 100, 100, 110, 0, 100, 100)
    route = RoutePlan("w", 0, 210, (stop,), 100, 100)
    problems = check(Plan((route,), (Unassigned("v", "x"),)), [visit], [worker], m)
    text = "\n".join(problems)
    for expected in ("appears 2 times", "after the shift", "after its window", "lacks skills",
                     "break 0 taken 0 times"):  # fmt: skip
        assert expected in text
