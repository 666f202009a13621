"""The field-service model on PyVRP 0.14: build `pyvrp.ProblemData`, search, read the routes
back. Internal to `geo.vrp`, whose docstring explains the modelling choices."""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np
import numpy.typing as npt
import pyvrp
from pyvrp.constants import MAX_VALUE
from pyvrp.PenaltyManager import PenaltyManager
from pyvrp.search import LocalSearch, NeighbourhoodParams, PerturbationManager, compute_neighbours

from geo._schedule import Item, first_violation, simulate
from geo._screen import (
    NO_LIMIT,
    PIN_ORDER,
    Head,
    break_item,
    heads,
    skill_screen,
    time_screen,
    validate,
    visit_item,
    window,
)
from geo.vrp import DID_NOT_FIT, Break, Plan, RoutePlan, Unassigned, Visit, Worker

IntMatrix = npt.NDArray[np.int64]

INFEASIBLE_COST = int(np.iinfo(np.int64).max)
GIVE_UP_FRACTION = 0.25
"""Share of the budget after which a search that requires every required visit and has found
no feasible plan gives way to the search in which all visits are optional."""


@dataclass(frozen=True, slots=True)
class _Meta:
    """What a PyVRP client stands for."""

    kind: Literal["visit", "break"]
    index: int  # visit index, or worker index for a break
    brk: int = 0  # break number (into Worker.breaks)
    site: int = 0  # caller location of a break client


class _Stop:
    """PyVRP stopping criterion: budget in seconds and/or iterations; optionally gives up
    early (remembering it did) while no feasible solution has been found."""

    def __init__(
        self,
        budget_s: float,
        max_iterations: int | None,
        give_up: bool,
        no_improvement: int | None = None,
    ) -> None:
        self.budget_s = budget_s
        self.max_iterations = max_iterations
        self.no_improvement = no_improvement
        self.best = INFEASIBLE_COST
        self.since_best = 0
        self.give_up = give_up
        self.gave_up = False
        self.calls = 0
        self.started: float | None = None

    def __call__(self, best_cost: int) -> bool:
        if self.started is None:
            self.started = time.perf_counter()
        self.calls += 1
        elapsed = time.perf_counter() - self.started
        iters = self.calls - 1
        if best_cost < self.best:
            self.best, self.since_best = best_cost, 0
        else:
            self.since_best += 1
        if (
            elapsed >= self.budget_s
            or (self.max_iterations is not None and iters >= self.max_iterations)
            or (
                self.no_improvement is not None
                and best_cost < INFEASIBLE_COST
                and self.since_best >= self.no_improvement
            )
        ):
            return True
        if self.give_up and best_cost >= INFEASIBLE_COST:
            late = elapsed >= GIVE_UP_FRACTION * self.budget_s or (
                self.max_iterations is not None and iters >= GIVE_UP_FRACTION * self.max_iterations
            )
            if late:
                self.gave_up = True
                return True
        return False

    @property
    def elapsed(self) -> float:
        return 0.0 if self.started is None else time.perf_counter() - self.started


@dataclass(slots=True)
class _Model:
    data: pyvrp.ProblemData
    metas: list[_Meta]
    type_workers: list[list[int]]


def _client(
    v: Visit,
    location: int,
    early: int,
    delivery: list[int],
    tw_late: int,
    prize: int,
    required: bool,
    group: int | None = None,
) -> pyvrp.Client:
    return pyvrp.Client(
        location=location,
        delivery=delivery,
        service_duration=v.service_s,
        tw_early=early,
        tw_late=tw_late,
        prize=prize,
        required=required,
        group=group,
        name=v.id,
    )


def _build(
    visits: Sequence[Visit],
    workers: Sequence[Worker],
    todo: list[int],
    allowed: list[set[int]],
    head_list: Sequence[Head],
    distance: IntMatrix,
    duration: IntMatrix,
    *,
    all_optional: bool,
    distance_cost: int,
    duration_cost: int,
) -> _Model | None:
    included = [
        k
        for k, w in enumerate(workers)
        if any(k in allowed[i] for i in todo) or (head_list[k].items and head_list[k].breaks_left)
    ]
    if not included:
        return None

    # Locations: one per distinct start/end place, then one per visit (so that the profiles
    # can close a visit to some workers without closing another visit at the same place).
    depot_of: dict[int, int] = {}
    for k in included:
        for place in (head_list[k].location, workers[k].end):
            depot_of.setdefault(place, len(depot_of))
    n_depots = len(depot_of)
    caller = [*depot_of, *(visits[i].location for i in todo)]
    sub = np.ix_(caller, caller)
    base_d, base_t = distance[sub], duration[sub]

    horizon = max(workers[k].shift[1] for k in included)
    forbid = int(min(MAX_VALUE, 2 * max(horizon, int(base_d.max()), int(base_t.max())) + 1))
    profiles: dict[frozenset[int], int] = {}
    mats_d: list[IntMatrix] = []
    mats_t: list[IntMatrix] = []
    profile_of: dict[int, int] = {}
    for k in included:
        closed = frozenset(j for j, i in enumerate(todo) if k not in allowed[i])
        if closed not in profiles:
            profiles[closed] = len(profiles)
            cols = [n_depots + j for j in sorted(closed)]
            pd, pt = base_d.copy(), base_t.copy()
            if cols:
                pd[:, cols] = forbid
                pt[:, cols] = forbid
                pd[cols, cols] = 0
                pt[cols, cols] = 0
            mats_d.append(pd)
            mats_t.append(pt)
        profile_of[k] = profiles[closed]

    # Load dimensions: [demand] (when anyone has a capacity or a visit a demand), then one
    # per worker with breaks left, in which only that worker has room.
    use_demand = any(workers[k].capacity is not None for k in included) or any(
        visits[i].demand for i in todo
    )
    breakers = [k for k in included if head_list[k].breaks_left]
    dims = int(use_demand) + len(breakers)
    dim_of = {k: int(use_demand) + n for n, k in enumerate(breakers)}
    total_demand = sum(visits[i].demand for i in todo)

    locations = [pyvrp.Location(x=0.0, y=0.0) for _ in caller]
    depots = [pyvrp.Depot(location=loc) for loc in range(n_depots)]
    clients: list[pyvrp.Client] = []
    groups: list[pyvrp.ClientGroup] = []
    metas: list[_Meta] = []

    max_leg = int(base_d.max()) * distance_cost + int(base_t.max()) * duration_cost
    required_prize = (len(todo) + 2 * len(included) + 2) * max(1, max_leg) + 1
    required_prize += sum(visits[i].value + visits[i].late_penalty for i in todo)

    def load(amount: int, dim: int | None = None) -> list[int]:
        vector = [0] * dims
        if use_demand:
            vector[0] = amount
        if dim is not None:
            vector[dim] = 1
        return vector

    for j, i in enumerate(todo):
        v, loc, meta = visits[i], n_depots + j, _Meta("visit", i)
        early, late, due = window(v)

        if due is None or late is not None:  # hard window (or none)
            tw_late = NO_LIMIT if late is None else late
            if v.required and not all_optional:
                clients.append(_client(v, loc, early, load(v.demand), tw_late, 0, True))
            else:
                prize = required_prize if v.required else v.value
                clients.append(_client(v, loc, early, load(v.demand), tw_late, prize, False))
            metas.append(meta)
            continue
        # Soft deadline: on time, or late for `late_penalty` less.
        if v.required:
            base = required_prize if all_optional else 0
            on_time, in_late = base + v.late_penalty, base
        else:
            on_time, in_late = v.value, max(0, v.value - v.late_penalty)
        group = len(groups)
        members = [len(clients), len(clients) + 1]
        groups.append(pyvrp.ClientGroup(members, required=v.required and not all_optional))
        for tw_late, prize in ((due, on_time), (NO_LIMIT, in_late)):
            clients.append(_client(v, loc, early, load(v.demand), tw_late, prize, False, group))
            metas.append(meta)

    for k in breakers:
        w, head = workers[k], head_list[k]
        sites = {depot_of[head.location]: head.location, depot_of[w.end]: w.end}
        for j, i in enumerate(todo):
            if k in allowed[i]:
                sites.setdefault(n_depots + j, visits[i].location)
        for bk, b in head.breaks_left:
            group = len(groups)
            members = list(range(len(clients), len(clients) + len(sites)))
            groups.append(pyvrp.ClientGroup(members, required=True))
            for loc, place in sites.items():
                clients.append(
                    pyvrp.Client(
                        location=loc,
                        delivery=load(0, dim_of[k]),
                        service_duration=b.duration_s,
                        tw_early=b.earliest_s,
                        tw_late=b.latest_s,
                        required=False,
                        group=group,
                        name=f"{w.id}/break/{bk}",
                    )
                )
                metas.append(_Meta("break", k, bk, place))

    types: dict[tuple[object, ...], int] = {}
    type_workers: list[list[int]] = []
    vehicle_types: list[pyvrp.VehicleType] = []
    for k in included:
        w, head = workers[k], head_list[k]
        pinned = head.depart is not None
        used = (head.time - head.depart) if head.depart is not None else 0
        capacity = [0] * dims
        if use_demand:
            room = total_demand if w.capacity is None else w.capacity - head.load
            capacity[0] = max(0, room)
        if k in dim_of:
            capacity[dim_of[k]] = len(head.breaks_left)
        attrs = {
            "capacity": capacity,
            "start_depot": depot_of[head.location],
            "end_depot": depot_of[w.end],
            "fixed_cost": 0 if pinned else w.fixed_cost,
            "tw_early": head.time if pinned else w.shift[0],
            "tw_late": w.shift[1],
            "shift_duration": NO_LIMIT if w.max_work_s is None else max(0, w.max_work_s - used),
            "unit_distance_cost": distance_cost,
            "unit_duration_cost": duration_cost,
            "profile": profile_of[k],
            "start_late": head.time if pinned else None,
        }
        key = tuple(
            (name, tuple(value) if isinstance(value, list) else value)
            for name, value in attrs.items()
        )
        if key not in types:
            types[key] = len(vehicle_types)
            type_workers.append([])
            vehicle_types.append(pyvrp.VehicleType(**attrs))  # type: ignore[arg-type]
        type_workers[types[key]].append(k)
    vehicle_types = [
        vt.replace(num_available=len(ks), name=",".join(workers[k].id for k in ks))
        for vt, ks in zip(vehicle_types, type_workers, strict=True)
    ]
    if not clients:
        return None
    data = pyvrp.ProblemData(
        locations,
        clients,
        depots,
        vehicle_types,
        mats_d,  # type: ignore[arg-type]  # the stub's ndarray[int] is not a valid shape type
        mats_t,  # type: ignore[arg-type]
        groups=groups,
    )
    return _Model(data, metas, type_workers)


NEIGHBOURS = 50
"""Granular neighbourhood size: PyVRP's default."""
BREAK_NEIGHBOURS = 5
"""Neighbours of a break client: the visits nearest to its site (its own visit first)."""


def _pyvrp_solve(model: _Model, stop: _Stop, seed: int) -> pyvrp.Result:
    """`pyvrp.solve`, except that with break clients the granular neighbourhood is filtered:
    PyVRP's nearest-neighbour lists would otherwise fill up with the (many, zero-distance)
    break clients at each site and starve the moves between real visits. A visit keeps its
    nearest visits plus the break clients at its own site; a break client only the few visits
    nearest to its site (a break belongs next to the visit at its site)."""
    data = model.data
    breaks = {c for c, meta in enumerate(model.metas) if meta.kind == "break"}
    if not breaks:
        return pyvrp.solve(data, stop, seed=seed, collect_stats=False, display=False)
    params = pyvrp.SolveParams()
    rng = pyvrp.RandomNumberGenerator(seed=seed)
    wide = NeighbourhoodParams(num_neighbours=min(data.num_clients - 1, NEIGHBOURS + len(breaks)))
    neighbours = {}
    for activity, near in compute_neighbours(data, wide).items():
        me = activity.idx
        here = data.client(me).location
        visits_near = [a for a in near if a.idx not in breaks]
        if me in breaks:
            neighbours[activity] = visits_near[:BREAK_NEIGHBOURS]
        else:
            same_site = [a for a in near if a.idx in breaks and data.client(a.idx).location == here]
            neighbours[activity] = visits_near[:NEIGHBOURS] + same_site
    perturbation = PerturbationManager(params.perturbation)
    search = LocalSearch(data, rng, neighbours, perturbation)
    for op in params.operators:
        if op.supports(data):
            search.add_operator(op(data))
    penalties = PenaltyManager(params.penalty.midpoint_penalties(data), params.penalty)
    start = pyvrp.Solution.make_random(data, rng)
    start = search(start, penalties.max_cost_evaluator(), exhaustive=True)
    ils = pyvrp.IteratedLocalSearch(data, penalties, search, start, params.ils)
    return ils.run(stop, collect_stats=False, display=False)


def _routes(model: _Model, solution: pyvrp.Solution) -> dict[int, tuple[list[_Meta], int]]:
    """Worker index → (clients in order, departure time) for each route of the solution."""
    handed = [0] * len(model.type_workers)
    result: dict[int, tuple[list[_Meta], int]] = {}
    for route in solution.routes():
        t = route.vehicle_type()
        worker = model.type_workers[t][handed[t]]
        handed[t] += 1
        stops = [model.metas[a.idx] for a in route if a.is_client()]
        result[worker] = (stops, int(route.start_time()))
    return result


def _search(
    visits: Sequence[Visit],
    workers: Sequence[Worker],
    todo: list[int],
    allowed: list[set[int]],
    head_list: Sequence[Head],
    distance: IntMatrix,
    duration: IntMatrix,
    *,
    seed: int,
    budget_s: float,
    max_iterations: int | None,
    no_improvement: int | None,
    distance_cost: int,
    duration_cost: int,
    info: dict[str, float | int | str],
) -> dict[int, tuple[list[_Meta], int]]:
    any_required = any(visits[i].required for i in todo)
    spent_s, spent_iters = 0.0, 0
    for all_optional in (False, True) if any_required else (True,):
        model = _build(
            visits, workers, todo, allowed, head_list, distance, duration,
            all_optional=all_optional, distance_cost=distance_cost, duration_cost=duration_cost,
        )  # fmt: skip
        if model is None:
            return {}
        left_iters = None if max_iterations is None else max(1, max_iterations - spent_iters)
        stop = _Stop(max(0.01, budget_s - spent_s), left_iters, not all_optional, no_improvement)
        result = _pyvrp_solve(model, stop, seed)
        spent_s += stop.elapsed
        spent_iters += result.num_iterations
        info.update(
            phase="all optional" if all_optional else "required",
            iterations=spent_iters,
            runtime_s=round(spent_s, 3),
            solver_feasible=int(result.is_feasible()),
        )
        if not stop.gave_up:
            return _routes(model, result.best)
    return {}


def _finish(
    worker: Worker, head: Head, items: list[Item], depart: int, distance: IntMatrix,
    duration: IntMatrix,
) -> tuple[RoutePlan | None, list[Item]]:  # fmt: skip
    """Time a worker's route, dropping visits until it keeps every hard rule."""
    dropped: list[Item] = []
    start = worker.start
    while True:
        timed = simulate(items, start, depart, worker.end, distance, duration)
        for pinned_too in (False, True):  # pinned visits only as a last resort
            bad = first_violation(
                items, timed, depart=depart, shift_end=worker.shift[1],
                max_work=worker.max_work_s, capacity=worker.capacity, pinned_too=pinned_too,
            )  # fmt: skip
            if bad is not None:
                break
        if bad is None:
            break
        dropped.append(items[bad])
        items = items[:bad] + items[bad + 1 :]
        if head.depart is None:  # leave no earlier than needed for the (new) first stop
            depart = worker.shift[0]
            if items:
                first = items[0]
                depart = max(depart, first.early - int(duration[start, first.location]))
    if not any(item.kind == "visit" for item in items):
        return None, dropped
    plan = RoutePlan(
        worker_id=worker.id,
        depart_s=depart,
        return_s=timed.return_s,
        stops=timed.stops,
        end_travel_s=timed.end_travel_s,
        end_distance_m=timed.end_distance_m,
    )
    return plan, dropped


def _insert_break(
    w: Worker,
    bk: int,
    b: Break,
    items: list[Item],
    after: int,
    depart: int,
    distance: IntMatrix,
    duration: IntMatrix,
) -> list[Item]:
    """Put a break the search left out at the first place (not inside the pinned head) where
    the route keeps every rule, else at the last place where the break itself starts in time
    (the repair then drops visits after it)."""
    fallback = after
    for p in range(after, len(items) + 1):
        site = items[p - 1].location if p else w.start
        trial = [*items[:p], break_item(w, bk, b, site), *items[p:]]
        timed = simulate(trial, w.start, depart, w.end, distance, duration)
        ok = first_violation(
            trial, timed, depart=depart, shift_end=w.shift[1], max_work=w.max_work_s,
            capacity=w.capacity, pinned_too=True,
        ) is None  # fmt: skip
        if ok:
            return trial
        if timed.stops[p].start_s <= b.latest_s:
            fallback = p
    site = items[fallback - 1].location if fallback else w.start
    return [*items[:fallback], break_item(w, bk, b, site), *items[fallback:]]


def run(
    visits: list[Visit],
    workers: list[Worker],
    distance: IntMatrix,
    duration: IntMatrix,
    *,
    seed: int,
    budget_s: float,
    max_iterations: int | None,
    no_improvement: int | None,
    distance_cost: int,
    duration_cost: int,
) -> Plan:
    """`geo.vrp.solve` after argument normalisation."""
    validate(visits, workers, distance, duration)
    allowed, reasons = skill_screen(visits, workers)
    head_list, in_heads = heads(visits, workers, allowed, reasons, distance, duration)
    time_screen(visits, workers, allowed, reasons, head_list, duration, skip=in_heads)
    todo = [i for i in range(len(visits)) if i not in reasons and i not in in_heads]

    info: dict[str, float | int | str] = {"phase": "none", "iterations": 0, "runtime_s": 0.0}
    routed = _search(
        visits, workers, todo, allowed, head_list, distance, duration,
        seed=seed, budget_s=budget_s, max_iterations=max_iterations,
        no_improvement=no_improvement, distance_cost=distance_cost,
        duration_cost=duration_cost, info=info,
    )  # fmt: skip

    routes: list[RoutePlan] = []
    planned: set[str] = set()
    index_of = {v.id: i for i, v in enumerate(visits)}
    seen: set[int] = set()
    for k, w in enumerate(workers):
        head = head_list[k]
        metas, start_time = routed.get(k, ([], w.shift[0]))
        items = list(head.items)
        taken: set[int] = set()
        for meta in metas:
            if meta.kind == "visit" and meta.index not in seen:
                seen.add(meta.index)
                items.append(visit_item(visits[meta.index]))
            elif meta.kind == "break" and meta.index == k and meta.brk not in taken:
                taken.add(meta.brk)
                items.append(break_item(w, meta.brk, w.breaks[meta.brk], meta.site))
        depart = head.depart if head.depart is not None else start_time
        for bk, b in head.breaks_left:  # only after a search that ended infeasible
            if bk not in taken:
                items = _insert_break(w, bk, b, items, len(head.items), depart, distance, duration)
        if not any(item.kind == "visit" for item in items):
            continue
        plan, dropped = _finish(w, head, items, depart, distance, duration)
        for item in dropped:
            if item.kind == "visit" and not item.removable:
                reasons[index_of[item.id]] = PIN_ORDER.format("the rest of the day does not fit")
        if plan is not None:
            routes.append(plan)
            planned.update(plan.visit_ids)
    unassigned = tuple(
        Unassigned(v.id, reasons.get(i, DID_NOT_FIT))
        for i, v in enumerate(visits)
        if v.id not in planned
    )
    return Plan(tuple(routes), unassigned, info)
