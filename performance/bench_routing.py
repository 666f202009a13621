"""Benchmark: route optimisation quality (Solomon VRPTW) and day-route solve times.

    python performance/bench_routing.py [--quick] [--json PATH] [--instances FILE...]
                                        [--budget SECONDS] [--methods ours,ortools,vroom,nn]
                                        [--bks CSV] [--day-reps N] [--seed N]

Needs the ``bench`` dependency group for the competitors (``uv run --group bench ...``; ``make
bench`` does this); a method whose package is missing is skipped with a note. No database.

1. Solomon VRPTW. Every instance file (default: ``../shared/data/solomon/*.txt`` next to the
   checkout; any Solomon-format file works) is solved by each method with the same time budget
   (default 10 s; ``--quick``: 2 s and C101, R101, RC201):

   - ``ours``: the field-service model of ``geo.vrp`` (visits with windows and demand, one
     worker per vehicle with shift and capacity: ``geo.solomon.field_service_model``) solved by
     ``geo.vrp.solve`` — the code path the backend uses, not a bare PyVRP call;
   - ``ortools``: OR-Tools RoutingModel with a time dimension and a capacity dimension,
     PATH_CHEAPEST_ARC then GUIDED_LOCAL_SEARCH, time limit = budget (one thread);
   - ``vroom``: pyvroom, ``solve(exploration_level=5, nb_threads=2)`` with the budget as its
     timeout (it usually stops earlier by itself: its own time is reported), cost = distance;
   - ``nn``: a nearest-neighbour baseline: each route repeatedly goes to the unvisited customer
     it can start soonest (travel + waiting) within its window and the capacity.

   The fleet is at most VEHICLE NUMBER. Distances and times follow the DIMACS convention (each
   arc truncated to one decimal; integers ×10 for the solvers), the convention of the
   distance-only best-known values in ``bks_dimacs.csv`` (vehicle count free) against which the
   gap is computed. Every solution is checked here, independently of all solvers (each
   customer once, fleet size, capacity, time windows and depot closing time in DIMACS time);
   an infeasible one is marked and left out of the mean gap. The exact-Euclidean length of the
   same routes is reported too.

2. Day routes (field service): seeded instances of 10, 25 and 50 stops around a city (haversine
   × 1.3 travel matrix), 1, 3 and 5 workers with shifts 8:00-17:00, a 30-minute lunch break
   starting 12:00-13:30, skills (gas/electric/water), half of the visits with 2-hour windows.
   ``geo.vrp.solve`` runs with a 10 s cap and stops after 2,000 iterations without improvement;
   p50/p95 of the wall time over ``--day-reps`` instances (default 10, quick 3). pyvroom solves
   the same instances with skills and breaks natively, for the comparison that decided how
   skills are modelled (see geo/vrp.py).

Figures (``--json``): ``mean_gap_pct_<method>``, ``infeasible_<method>``,
``day_route_p50_s_<n>``, ``day_route_p95_s_<n>``, ``day_route_km_<n>``,
``day_route_vroom_km_ratio_<n>`` (vroom distance / ours) and ``day_route_vroom_p50_s_<n>``.
The JSON also holds ``solutions``: per instance and method the routes as lists of customer
numbers (as in the file), vehicles, distances, gap, time and violations, so that anyone can
re-check them.
"""

from __future__ import annotations

import argparse
import csv
import importlib.util
import itertools
import json
import math
import os
import platform
import random
import statistics
import sys
import time
import warnings
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
from pyvrp.exceptions import PenaltyBoundWarning

from geo.feasibility import check
from geo.solomon import (
    DIMACS_SCALE,
    SolomonInstance,
    dimacs_matrix,
    euclidean_distance,
    field_service_model,
    read_solomon,
)
from geo.travel import Location, Matrices, matrix
from geo.vrp import Break, Visit, Worker, solve

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_DIR = ROOT.parent / "shared" / "data" / "solomon"
QUICK_INSTANCES = ("C101", "R101", "RC201")
METHODS = ("ours", "ortools", "vroom", "nn")
DAY_SIZES = ((10, 1), (25, 3), (50, 5))
DAY_NO_IMPROVEMENT = 2_000
DAY_CAP_S = 10.0

IntMatrix = npt.NDArray[np.int64]
Routes = list[list[int]]


def _log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


# --- methods ----------------------------------------------------------------------------------


def run_ours(inst: SolomonInstance, d: IntMatrix, budget: float, seed: int) -> Routes:
    """The field-service model through geo.vrp.solve."""
    visits, workers, m = field_service_model(inst)
    plan = solve(visits, workers, m, seed=seed, budget_s=budget)
    problems = check(plan, visits, workers, m)
    if problems:
        _log(f"  geo.feasibility found {len(problems)} problems: {problems[:3]}")
    return [[int(v) for v in r.visit_ids] for r in plan.routes]


def run_ortools(inst: SolomonInstance, d: IntMatrix, budget: float, seed: int) -> Routes:
    """OR-Tools routing: time + capacity dimensions, PATH_CHEAPEST_ARC, GLS."""
    from ortools.constraint_solver import (  # type: ignore[import-untyped]
        pywrapcp,
        routing_enums_pb2,
    )

    n, fleet = len(inst.customers), inst.vehicles
    service = np.array([c.service * DIMACS_SCALE for c in inst.customers], dtype=np.int64)
    manager = pywrapcp.RoutingIndexManager(n, fleet, 0)
    routing = pywrapcp.RoutingModel(manager)
    arc = routing.RegisterTransitMatrix(d.tolist())
    routing.SetArcCostEvaluatorOfAllVehicles(arc)
    travel_and_service = routing.RegisterTransitMatrix((d + service[:, None]).tolist())
    horizon = inst.depot.due * DIMACS_SCALE
    routing.AddDimension(travel_and_service, horizon, horizon, False, "Time")
    time_dim = routing.GetDimensionOrDie("Time")
    for node, c in enumerate(inst.customers):
        if node:
            index = manager.NodeToIndex(node)
            time_dim.CumulVar(index).SetRange(c.ready * DIMACS_SCALE, c.due * DIMACS_SCALE)
    for v in range(fleet):
        for index in (routing.Start(v), routing.End(v)):
            time_dim.CumulVar(index).SetRange(inst.depot.ready * DIMACS_SCALE, horizon)
    demand = routing.RegisterUnaryTransitVector([c.demand for c in inst.customers])
    routing.AddDimensionWithVehicleCapacity(demand, 0, [inst.capacity] * fleet, True, "Load")
    params = pywrapcp.DefaultRoutingSearchParameters()
    params.first_solution_strategy = routing_enums_pb2.FirstSolutionStrategy.PATH_CHEAPEST_ARC
    params.local_search_metaheuristic = (
        routing_enums_pb2.LocalSearchMetaheuristic.GUIDED_LOCAL_SEARCH
    )
    params.time_limit.FromMilliseconds(int(budget * 1000))
    solution = routing.SolveWithParameters(params)
    if solution is None:
        return []
    routes: Routes = []
    for v in range(fleet):
        index = solution.Value(routing.NextVar(routing.Start(v)))
        route = []
        while not routing.IsEnd(index):
            route.append(inst.customers[manager.IndexToNode(index)].number)
            index = solution.Value(routing.NextVar(index))
        if route:
            routes.append(route)
    return routes


def run_vroom(inst: SolomonInstance, d: IntMatrix, budget: float, seed: int) -> Routes:
    """pyvroom, exploration level 5 on 2 threads, cost = distance."""
    import vroom  # type: ignore[import-untyped]

    problem = vroom.Input()
    problem.set_durations_matrix("car", d)
    problem.set_costs_matrix("car", d)
    depot = inst.depot
    shift = vroom.TimeWindow(depot.ready * DIMACS_SCALE, depot.due * DIMACS_SCALE)
    problem.add_vehicle(
        [
            vroom.Vehicle(v, start=0, end=0, capacity=[inst.capacity], time_window=shift)
            for v in range(inst.vehicles)
        ]
    )
    problem.add_job(
        [
            vroom.Job(
                i,
                location=i,
                default_service=c.service * DIMACS_SCALE,
                delivery=[c.demand],
                time_windows=[vroom.TimeWindow(c.ready * DIMACS_SCALE, c.due * DIMACS_SCALE)],
            )
            for i, c in enumerate(inst.customers)
            if i
        ]
    )
    solution = problem.solve(exploration_level=5, nb_threads=2, timeout=timedelta(seconds=budget))
    return _vroom_routes(solution, lambda job: inst.customers[job].number)


def _vroom_routes(solution: Any, name: Callable[[int], int]) -> Routes:
    frame = solution.routes
    routes: dict[int, list[int]] = {}
    for vehicle, kind, job in zip(frame["vehicle_id"], frame["type"], frame["id"], strict=True):
        if kind == "job":
            routes.setdefault(int(vehicle), []).append(name(int(job)))
    return [routes[v] for v in sorted(routes)]


def run_nn(inst: SolomonInstance, d: IntMatrix, budget: float, seed: int) -> Routes:
    """Nearest neighbour: go to the customer that can be started soonest."""
    cs = inst.customers
    ready = [c.ready * DIMACS_SCALE for c in cs]
    due = [c.due * DIMACS_SCALE for c in cs]
    service = [c.service * DIMACS_SCALE for c in cs]
    todo = set(range(1, len(cs)))
    routes: Routes = []
    while todo:
        here, now, load, route = 0, ready[0], 0, []
        while True:
            best, best_key = None, None
            for j in todo:
                begin = max(now + int(d[here, j]), ready[j])
                fits = load + cs[j].demand <= inst.capacity and begin <= due[j]
                if fits and begin + service[j] + int(d[j, 0]) <= due[0]:
                    key = (begin - now, j)
                    if best_key is None or key < best_key:
                        best, best_key = j, key
            if best is None:
                break
            now = max(now + int(d[here, best]), ready[best]) + service[best]
            here, load = best, load + cs[best].demand
            route.append(best)
            todo.discard(best)
        if not route:
            break  # someone nobody can serve: reported by the checker
        routes.append([cs[j].number for j in route])
    return routes


RUNNERS: dict[str, Callable[[SolomonInstance, IntMatrix, float, int], Routes]] = {
    "ours": run_ours,
    "ortools": run_ortools,
    "vroom": run_vroom,
    "nn": run_nn,
}
PACKAGES = {"ortools": "ortools", "vroom": "vroom"}


# --- independent verification ---------------------------------------------------------------


def verify(inst: SolomonInstance, d: IntMatrix, routes: Routes) -> list[str]:
    """Violations of the Solomon rules in DIMACS time: each customer exactly once, at most
    VEHICLE NUMBER routes, capacity, service starting by the due date, back by the depot's."""
    index = {c.number: i for i, c in enumerate(inst.customers)}
    problems: list[str] = []
    served = [n for r in routes for n in r]
    unknown = [n for n in served if n not in index or n == inst.depot.number]
    missing = sorted(set(index) - {inst.depot.number} - set(served))
    if unknown:
        problems.append(f"unknown customers {unknown[:5]}")
    if len(served) != len(set(served)):
        problems.append("a customer is served twice")
    if missing:
        problems.append(f"{len(missing)} customers not served, e.g. {missing[:5]}")
    if len(routes) > inst.vehicles:
        problems.append(f"{len(routes)} routes > {inst.vehicles} vehicles")
    for r, route in enumerate(routes):
        load = sum(inst.customers[index[n]].demand for n in route if n in index)
        if load > inst.capacity:
            problems.append(f"route {r}: load {load} > {inst.capacity}")
        here, now = 0, inst.depot.ready * DIMACS_SCALE
        for n in route:
            if n not in index:
                continue
            j, c = index[n], inst.customers[index[n]]
            begin = max(now + int(d[here, j]), c.ready * DIMACS_SCALE)
            if begin > c.due * DIMACS_SCALE:
                problems.append(f"route {r}: customer {n} starts {begin / 10} > due {c.due}")
            here, now = j, begin + c.service * DIMACS_SCALE
        if now + int(d[here, 0]) > inst.depot.due * DIMACS_SCALE:
            problems.append(f"route {r}: back after the depot closes")
    return problems


def distances(inst: SolomonInstance, d: IntMatrix, routes: Routes) -> tuple[float, float]:
    """(DIMACS distance, exact Euclidean distance) of the routes."""
    index = {c.number: i for i, c in enumerate(inst.customers)}
    dimacs = exact = 0.0
    for route in routes:
        path = [0, *(index[n] for n in route if n in index), 0]
        for a, b in itertools.pairwise(path):
            dimacs += int(d[a, b])
            exact += euclidean_distance(inst.customers[a], inst.customers[b])
    return dimacs / DIMACS_SCALE, exact


# --- Solomon part -----------------------------------------------------------------------------


@dataclass
class Result:
    instance: str
    method: str
    vehicles: int
    distance: float
    distance_exact: float
    bks: float | None
    gap_pct: float | None
    time_s: float
    feasible: bool
    violations: list[str]
    routes: Routes = field(repr=False)


def read_bks(paths: Sequence[Path]) -> dict[str, tuple[int, float]]:
    """name → (vehicles, distance) from bks_dimacs.csv files."""
    best: dict[str, tuple[int, float]] = {}
    for path in paths:
        if path.is_file():
            with path.open(newline="") as fh:
                for row in csv.DictReader(fh):
                    best[row["instance"].upper()] = (int(row["vehicles"]), float(row["distance"]))
    return best


def solomon_part(
    files: Sequence[Path], methods: Sequence[str], budget: float, seed: int, bks_paths: list[Path]
) -> list[Result]:
    bks = read_bks(bks_paths)
    results: list[Result] = []
    for path in files:
        inst = read_solomon(path)
        name = inst.name.strip() or path.stem
        d = dimacs_matrix(inst)
        reference = bks.get(name.upper()) or bks.get(path.stem.upper())
        for method in methods:
            _log(f"{name}: {method} ({budget:g} s budget) ...")
            started = time.perf_counter()
            try:
                routes = RUNNERS[method](inst, d, budget, seed)
                error = None
            except Exception as exc:  # a competitor crashing is a result, not our crash
                routes, error = [], f"{type(exc).__name__}: {exc}"
            elapsed = time.perf_counter() - started
            problems = verify(inst, d, routes) if routes else [error or "no solution"]
            dist, exact = distances(inst, d, routes)
            gap = None
            if reference and not problems:
                gap = 100.0 * (dist - reference[1]) / reference[1]
            results.append(
                Result(
                    name,
                    method,
                    len(routes),
                    round(dist, 1),
                    round(exact, 2),
                    reference[1] if reference else None,
                    None if gap is None else round(gap, 3),
                    round(elapsed, 2),
                    not problems,
                    problems,
                    routes,
                )
            )
            _log(f"  {len(routes)} routes, {dist:.1f}, {elapsed:.1f} s, ok={not problems}")
    return results


# --- day routes -------------------------------------------------------------------------------

SKILLS = ("gas", "electric", "water")
HOUR = 3600


def day_instance(
    stops: int, n_workers: int, seed: int
) -> tuple[list[Visit], list[Worker], Matrices]:
    """A seeded field-service day around Kazan: office = location 0."""
    rng = random.Random(seed)
    office = Location(55.7963, 49.1088)
    places = [office] + [
        Location(office.lat + rng.uniform(-0.12, 0.12), office.lon + rng.uniform(-0.2, 0.2))
        for _ in range(stops)
    ]
    m = matrix(places)
    workers = []
    for k in range(n_workers):
        skills = frozenset(SKILLS) if k == 0 else frozenset(rng.sample(SKILLS, rng.randint(1, 2)))
        lunch = Break(12 * HOUR, 13 * HOUR + 30 * 60, 30 * 60)
        workers.append(Worker(f"w{k}", 0, 0, (8 * HOUR, 17 * HOUR), skills, breaks=(lunch,)))
    visits = []
    for i in range(1, stops + 1):
        window = None
        if rng.random() < 0.5:
            start = rng.randrange(8 * HOUR, 15 * HOUR, 30 * 60)
            window = (start, start + 2 * HOUR)
        skills = frozenset({rng.choice(SKILLS)}) if rng.random() < 0.3 else frozenset()
        service = rng.choice((15, 20, 30, 45)) * 60
        visits.append(Visit(f"s{i}", i, service_s=service, window=window, skills=skills))
    return visits, workers, m


def vroom_day(visits: list[Visit], workers: list[Worker], m: Matrices) -> tuple[int, int]:
    """(distance m, unassigned) of pyvroom on a day instance, skills and breaks native."""
    import vroom

    skill_id = {s: n for n, s in enumerate(SKILLS)}
    problem = vroom.Input()
    problem.set_durations_matrix("car", m.duration_s)
    problem.set_costs_matrix("car", m.distance_m)
    for k, w in enumerate(workers):
        breaks = [
            vroom.Break(
                k * 10 + b, time_windows=[(br.earliest_s, br.latest_s)], service=br.duration_s
            )
            for b, br in enumerate(w.breaks)
        ]
        problem.add_vehicle(
            vroom.Vehicle(
                k,
                start=w.start,
                end=w.end,
                skills={skill_id[s] for s in w.skills},
                time_window=vroom.TimeWindow(*w.shift),
                breaks=breaks,
            )
        )
    for i, v in enumerate(visits):
        problem.add_job(
            vroom.Job(
                i + 1,
                location=v.location,
                default_service=v.service_s,
                skills={skill_id[s] for s in v.skills},
                time_windows=[vroom.TimeWindow(*v.window)] if v.window else (),
            )
        )
    solution = problem.solve(exploration_level=5, nb_threads=2)
    routes = _vroom_routes(solution, lambda job: job)
    total = 0
    for route in routes:
        path = [0, *(visits[j - 1].location for j in route), 0]
        total += sum(int(m.distance_m[a, b]) for a, b in itertools.pairwise(path))
    return total, len(visits) - sum(len(r) for r in routes)


def pct(values: Sequence[float], p: float) -> float:
    ordered = sorted(values)
    k = (len(ordered) - 1) * p / 100
    lo, hi = math.floor(k), math.ceil(k)
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (k - lo)


def day_part(reps: int, with_vroom: bool, seed: int) -> dict[str, dict[str, float]]:
    out: dict[str, dict[str, float]] = {}
    for stops, n_workers in DAY_SIZES:
        times, kms, vroom_times, vroom_ratio, unassigned, vroom_unassigned = [], [], [], [], [], []
        for r in range(reps):
            visits, workers, m = day_instance(stops, n_workers, seed * 1000 + r)
            started = time.perf_counter()
            plan = solve(
                visits, workers, m, seed=seed, budget_s=DAY_CAP_S,
                no_improvement=DAY_NO_IMPROVEMENT,
            )  # fmt: skip
            times.append(time.perf_counter() - started)
            problems = check(plan, visits, workers, m)
            if problems:
                _log(f"  day {stops}/{r}: geo.feasibility: {problems[:3]}")
            kms.append(plan.distance_m / 1000)
            unassigned.append(len(plan.unassigned))
            if with_vroom:
                started = time.perf_counter()
                vroom_m, vroom_left = vroom_day(visits, workers, m)
                vroom_times.append(time.perf_counter() - started)
                vroom_ratio.append(vroom_m / max(1, plan.distance_m))
                vroom_unassigned.append(vroom_left)
        row = {
            "workers": n_workers,
            "p50_s": round(pct(times, 50), 3),
            "p95_s": round(pct(times, 95), 3),
            "km": round(statistics.mean(kms), 2),
            "unassigned": round(statistics.mean(unassigned), 2),
        }
        if vroom_times:
            row |= {
                "vroom_p50_s": round(pct(vroom_times, 50), 3),
                "vroom_km_ratio": round(statistics.mean(vroom_ratio), 4),
                "vroom_unassigned": round(statistics.mean(vroom_unassigned), 2),
            }
        out[str(stops)] = row
        _log(f"day routes, {stops} stops: {row}")
    return out


# --- report -----------------------------------------------------------------------------------


def report(
    results: list[Result], methods: Sequence[str], day: dict[str, dict[str, float]]
) -> dict[str, float]:
    figures: dict[str, float] = {}
    head = ["instance", "method", "veh", "distance", "exact", "BKS", "gap %", "time s", "ok"]
    rows = [
        [
            r.instance,
            r.method,
            str(r.vehicles),
            f"{r.distance:.1f}",
            f"{r.distance_exact:.2f}",
            "-" if r.bks is None else f"{r.bks:.1f}",
            "-" if r.gap_pct is None else f"{r.gap_pct:+.2f}",
            f"{r.time_s:.1f}",
            "yes" if r.feasible else "NO: " + r.violations[0][:40],
        ]
        for r in results
    ]
    widths = [max(len(x) for x in col) for col in zip(head, *rows, strict=False)]
    print(" | ".join(h.ljust(w) for h, w in zip(head, widths, strict=True)))
    print("-+-".join("-" * w for w in widths))
    for row in rows:
        print(" | ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)))
    print()
    for method in methods:
        mine = [r for r in results if r.method == method]
        gaps = [r.gap_pct for r in mine if r.gap_pct is not None]
        infeasible = sum(not r.feasible for r in mine)
        if gaps:
            figures[f"mean_gap_pct_{method}"] = round(statistics.mean(gaps), 3)
        figures[f"infeasible_{method}"] = infeasible
        mean = f"{statistics.mean(gaps):+.3f} %" if gaps else "-"
        note = f" ({infeasible} infeasible, left out)" if infeasible else ""
        print(f"mean gap to BKS (DIMACS), {method:8s}: {mean} over {len(gaps)} instances{note}")
    if day:
        print()
        print("day routes (geo.vrp.solve, cap 10 s, stop after 2,000 iterations without gain):")
        for stops, dr in day.items():
            line = (
                f"  {stops:>3} stops, {int(dr['workers'])} workers: p50 {dr['p50_s']:.2f} s, "
                f"p95 {dr['p95_s']:.2f} s, {dr['km']:.1f} km, {dr['unassigned']:.1f} unassigned"
            )
            if "vroom_p50_s" in dr:
                line += (
                    f" | vroom: {dr['vroom_p50_s']:.2f} s, distance ×{dr['vroom_km_ratio']:.3f}, "
                    f"{dr['vroom_unassigned']:.1f} unassigned"
                )
            print(line)
            figures[f"day_route_p50_s_{stops}"] = dr["p50_s"]
            figures[f"day_route_p95_s_{stops}"] = dr["p95_s"]
            figures[f"day_route_km_{stops}"] = dr["km"]
            if "vroom_p50_s" in dr:
                figures[f"day_route_vroom_km_ratio_{stops}"] = dr["vroom_km_ratio"]
                figures[f"day_route_vroom_p50_s_{stops}"] = dr["vroom_p50_s"]
    return figures


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--instances", nargs="+", type=Path, metavar="FILE")
    parser.add_argument("--budget", type=float, help="seconds per instance and method (10)")
    parser.add_argument("--methods", default=",".join(METHODS))
    parser.add_argument("--bks", type=Path, action="append", help="bks_dimacs.csv (repeatable)")
    parser.add_argument("--quick", action="store_true", help="2 s, 3 instances, 3 day reps")
    parser.add_argument("--day-reps", type=int)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--json", type=Path, metavar="PATH", help="write figures as JSON")
    args = parser.parse_args(argv)
    args.methods = [m.strip() for m in args.methods.split(",") if m.strip()]
    unknown = set(args.methods) - set(METHODS)
    if unknown:
        parser.error(f"unknown methods {sorted(unknown)}; choose from {', '.join(METHODS)}")
    if args.budget is None:
        args.budget = 2.0 if args.quick else 10.0
    if args.day_reps is None:
        args.day_reps = 3 if args.quick else 10
    if args.instances is None:
        names = QUICK_INSTANCES if args.quick else None
        found = sorted(DEFAULT_DIR.glob("*.txt"))
        args.instances = [p for p in found if names is None or p.stem.upper() in names]
        if not args.instances:
            parser.error(f"no instances in {DEFAULT_DIR}; pass --instances FILE...")
    if args.bks is None:
        args.bks = sorted({p.resolve().parent / "bks_dimacs.csv" for p in args.instances})
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    # PyVRP warns when a penalty hits its bound (hard-to-feasible moments of the search); the
    # outcome is checked here anyway, so keep the table readable.
    warnings.filterwarnings("ignore", category=PenaltyBoundWarning)
    methods = []
    for method in args.methods:
        package = PACKAGES.get(method)
        if package and importlib.util.find_spec(package) is None:
            _log(f"{method}: package {package} not installed (uv run --group bench): skipped")
            continue
        methods.append(method)
    cores = os.cpu_count()
    _log(f"machine: {platform.machine()}, {cores} cores, Python {platform.python_version()}")
    results = solomon_part(args.instances, methods, args.budget, args.seed, args.bks)
    with_vroom = "vroom" in methods
    day = day_part(args.day_reps, with_vroom, args.seed) if args.day_reps > 0 else {}
    print(f"\nSolomon VRPTW, budget {args.budget:g} s per instance and method, {cores} cores\n")
    figures = report(results, methods, day)
    if args.json:
        payload = {
            "figures": figures,
            "meta": {
                "budget_s": args.budget,
                "methods": methods,
                "instances": [str(p) for p in args.instances],
                "cores": cores,
                "machine": platform.platform(),
                "python": platform.python_version(),
                "seed": args.seed,
                "convention": "DIMACS: arcs truncated to 0.1; gap vs bks_dimacs.csv",
                "day_routes": day,
            },
            "solutions": [asdict(r) for r in results],
        }
        args.json.write_text(json.dumps(payload, indent=2))
        _log(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
