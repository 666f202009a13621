"""An independent check of a day plan: does it keep every hard rule?

It uses nothing from the solver (neither PyVRP nor the model code of `geo.vrp`, only its plain
input and output types) and recomputes every time from the travel matrix, so a bug in the
model or in PyVRP shows up as a violation instead of being checked against itself. Tests run it
on every plan the optimiser returns; the backend can run it on plans edited by hand.

Rules checked: each visit exactly once (routed or unassigned); required visits unassigned only
with a reason; stop times consistent with the matrix (arrival = previous departure + travel,
no start before arrival or before the window, departure = start + service, wait and travel as
stated); hard windows (start ≤ window end); shift start/end and maximum working time; skills;
capacity; pinned worker and pinned order (pinned positions are the first visits, in position
order); breaks (each break of a working worker taken once, inside its window, for its
duration).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence

import numpy as np
import numpy.typing as npt

from geo.travel import Matrices
from geo.vrp import Plan, RoutePlan, Visit, Worker

__all__ = ["check"]

IntMatrix = npt.NDArray[np.int64]


def check(
    plan: Plan,
    visits: Sequence[Visit],
    workers: Sequence[Worker],
    matrices: Matrices | tuple[IntMatrix, IntMatrix],
) -> list[str]:
    """Every violation of the hard rules in `plan`, as readable sentences; [] when none."""
    distance, duration = (np.asarray(m) for m in matrices)
    by_visit = {v.id: v for v in visits}
    by_worker = {w.id: w for w in workers}
    problems: list[str] = []

    seen = Counter(
        [vid for r in plan.routes for vid in r.visit_ids] + [u.visit_id for u in plan.unassigned]
    )
    for vid, count in seen.items():
        if vid not in by_visit:
            problems.append(f"unknown visit {vid}")
        elif count > 1:
            problems.append(f"visit {vid} appears {count} times")
    problems.extend(
        f"visit {v.id} is neither routed nor unassigned" for v in visits if not seen[v.id]
    )
    problems.extend(
        f"visit {u.visit_id} unassigned without a reason" for u in plan.unassigned if not u.reason
    )
    worker_counts = Counter(r.worker_id for r in plan.routes)
    problems.extend(f"worker {w} has {n} routes" for w, n in worker_counts.items() if n > 1)

    for route in plan.routes:
        worker = by_worker.get(route.worker_id)
        if worker is None:
            problems.append(f"route of unknown worker {route.worker_id}")
            continue
        problems.extend(_check_route(route, worker, by_visit, distance, duration))

    routed_to = {vid: r.worker_id for r in plan.routes for vid in r.visit_ids}
    for v in visits:
        if v.pinned_worker is not None and v.id in routed_to and routed_to[v.id] != v.pinned_worker:
            problems.append(f"visit {v.id} pinned to {v.pinned_worker} is routed to another")
    return problems


def _check_route(
    route: RoutePlan,
    worker: Worker,
    by_visit: dict[str, Visit],
    distance: IntMatrix,
    duration: IntMatrix,
) -> list[str]:
    w = worker.id
    out: list[str] = []
    if route.depart_s < worker.shift[0]:
        out.append(f"{w} leaves at {route.depart_s}, before the shift starts")
    if route.return_s > worker.shift[1]:
        out.append(f"{w} returns at {route.return_s}, after the shift ends")
    if worker.max_work_s is not None and route.return_s - route.depart_s > worker.max_work_s:
        out.append(f"{w} works {route.return_s - route.depart_s} s > {worker.max_work_s} s")

    here, now = worker.start, route.depart_s
    load = 0
    visits_in_order: list[Visit] = []
    breaks_taken: Counter[str] = Counter()
    for stop in route.stops:
        where = f"{w} at {stop.id}"
        travel = int(duration[here, stop.location])
        if stop.travel_s != travel or stop.distance_m != int(distance[here, stop.location]):
            out.append(f"{where}: travel/distance do not match the matrix")
        if stop.arrival_s != now + travel:
            out.append(f"{where}: arrival {stop.arrival_s} != {now} + {travel}")
        if stop.start_s < stop.arrival_s or stop.wait_s != stop.start_s - stop.arrival_s:
            out.append(f"{where}: starts before arriving or wrong wait")
        if stop.kind == "visit":
            v = by_visit.get(stop.id)
            if v is None:
                out.append(f"{where}: unknown visit")
                continue
            if stop.location != v.location:
                out.append(f"{where}: wrong location")
            if stop.departure_s != stop.start_s + v.service_s:
                out.append(f"{where}: departure != start + service")
            if v.window is not None:
                if stop.start_s < v.window[0]:
                    out.append(f"{where}: starts before its window")
                if v.hard_deadline and stop.start_s > v.window[1]:
                    out.append(f"{where}: starts after its window")
            if not v.skills <= worker.skills:
                out.append(f"{where}: lacks skills {sorted(v.skills - worker.skills)}")
            load += v.demand
            visits_in_order.append(v)
        else:
            prefix, _, number = stop.id.rpartition("/break/")
            if prefix != w or not number.isdigit() or int(number) >= len(worker.breaks):
                out.append(f"{where}: not a break of this worker")
                continue
            b = worker.breaks[int(number)]
            breaks_taken[stop.id] += 1
            if not b.earliest_s <= stop.start_s <= b.latest_s:
                out.append(f"{where}: break starts outside [{b.earliest_s}, {b.latest_s}]")
            if stop.departure_s - stop.start_s != b.duration_s:
                out.append(f"{where}: break is not {b.duration_s} s")
        here, now = stop.location, stop.departure_s
    back = int(duration[here, worker.end])
    if route.end_travel_s != back or route.end_distance_m != int(distance[here, worker.end]):
        out.append(f"{w}: last leg does not match the matrix")
    if route.return_s != now + back:
        out.append(f"{w}: return {route.return_s} != {now} + {back}")
    if worker.capacity is not None and load > worker.capacity:
        out.append(f"{w}: load {load} > capacity {worker.capacity}")
    for k in range(len(worker.breaks)):
        count = breaks_taken[f"{w}/break/{k}"]
        if count != 1:
            out.append(f"{w}: break {k} taken {count} times")

    pinned = sorted(  # ties in position: input order
        (v.pinned_position, n, v.id)
        for n, v in enumerate(by_visit.values())
        if v.pinned_worker == w and v.pinned_position is not None
    )
    routed = {x.id for x in visits_in_order}
    pinned_here = [vid for _, _, vid in pinned if vid in routed]
    head = [v.id for v in visits_in_order[: len(pinned_here)]]
    if head != pinned_here:
        out.append(f"{w}: pinned order {pinned_here} but route starts {head}")
    return out
