"""Working with a given order of visits, without the optimiser: timing it, and the cheapest place
to add one more visit to one of several workers' days.

`time_route` turns an order into arrival, start, departure, waiting and travel per stop — the
ETAs a worker's day shows between two solves (from where the worker is now, with the order the
last solve chose). Windows are kept where they can be: a stop may start no earlier than its
window; when it cannot start by the window's end it starts late, and `Stop.late_s` says by how
much (a route shown to a worker never drops a visit that is theirs).

`best_insertion` is the dispatcher for one new visit (a deal entering a stage that creates an
installation): for each candidate worker and each position in their current order it times the
route with the visit inserted and keeps the insertion that starts the visit within its window,
makes no other visit later, ends within the shift and adds the least driving; ties go to the
worker with fewer visits, then input order.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from geo._schedule import Item, simulate
from geo.travel import Matrices
from geo.vrp import RoutePlan, Visit, Worker

__all__ = ["Insertion", "best_insertion", "time_route"]

IntMatrix = npt.NDArray[np.int64]


def _items(visits: Sequence[Visit]) -> list[Item]:
    return [
        Item(
            kind="visit",
            id=v.id,
            location=v.location,
            service=v.service_s,
            early=v.window[0] if v.window else 0,
            late=None,
            due=v.window[1] if v.window else None,
        )
        for v in visits
    ]


def time_route(
    worker_id: str,
    visits: Sequence[Visit],
    *,
    start: int,
    depart_s: int,
    end: int,
    matrices: Matrices | tuple[IntMatrix, IntMatrix],
) -> RoutePlan:
    """The earliest schedule of `visits` in the given order, leaving location `start` at
    `depart_s` and returning to `end`: wait for a window's start, start late (``late_s``)
    after its end."""
    distance, duration = (np.asarray(m, dtype=np.int64) for m in matrices)
    timed = simulate(_items(visits), start, depart_s, end, distance, duration)
    return RoutePlan(
        worker_id=worker_id,
        depart_s=depart_s,
        return_s=timed.return_s,
        stops=timed.stops,
        end_travel_s=timed.end_travel_s,
        end_distance_m=timed.end_distance_m,
    )


@dataclass(frozen=True, slots=True)
class Insertion:
    """Where `best_insertion` puts the visit: the worker, the position in their order and the
    driving it adds (metres)."""

    worker_id: str
    position: int
    added_m: int


def _late(route: RoutePlan) -> int:
    return sum(stop.late_s for stop in route.stops)


def _keeps_rules(route: RoutePlan, base: RoutePlan, visit_id: str, worker: Worker) -> bool:
    """The inserted visit starts within its window, the others are no later than before, the
    worker is back by the shift's end and within the maximum working time."""
    if any(stop.id == visit_id and stop.late_s > 0 for stop in route.stops):
        return False
    if _late(route) > _late(base) or route.return_s > worker.shift[1]:
        return False
    return worker.max_work_s is None or route.work_s <= worker.max_work_s


def best_insertion(
    visit: Visit,
    workers: Sequence[Worker],
    days: Sequence[Sequence[Visit]],
    matrices: Matrices | tuple[IntMatrix, IntMatrix],
) -> Insertion | None:
    """The cheapest feasible insertion of `visit` into one of `workers`' days (``days[i]`` is
    worker i's current order), or None when it fits nowhere. Skills and the visit's pinned
    worker are respected; each day is timed from the worker's shift start."""
    best: tuple[int, int, int, Insertion] | None = None
    for rank, (worker, day) in enumerate(zip(workers, days, strict=True)):
        if not visit.skills <= worker.skills:
            continue
        if visit.pinned_worker is not None and visit.pinned_worker != worker.id:
            continue

        def timed(order: Sequence[Visit], worker: Worker = worker) -> RoutePlan:
            return time_route(
                worker.id,
                order,
                start=worker.start,
                depart_s=worker.shift[0],
                end=worker.end,
                matrices=matrices,
            )

        base = timed(day)
        for position in range(len(day) + 1):
            route = timed([*day[:position], visit, *day[position:]])
            if not _keeps_rules(route, base, visit.id, worker):
                continue
            added = route.distance_m - base.distance_m
            key = (added, len(day), rank)
            if best is None or key < best[:3]:
                best = (*key, Insertion(worker.id, position, added))
    return None if best is None else best[3]
