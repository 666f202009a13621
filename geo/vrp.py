"""Day-route optimisation for field work: the field-service model and its result.

Inputs are plain values: `Visit` (place, service time, time window, skills, value, hard or soft
deadline, optional, pinned worker/order, load), `Worker` (start/end place, shift, skills,
maximum working time, breaks, load capacity) and a travel matrix pair (`geo.travel.Matrices`:
integer metres and seconds, indexed by the ``location`` numbers used in visits and workers).
`solve` returns a `Plan`: per worker the stops with arrival, start, departure, waiting, travel
and distance, and every visit that could not be planned with the reason. `geo.feasibility.check`
verifies any plan without using the solver.

Units: times are integer seconds from a day origin the caller chooses (e.g. local midnight);
costs are in metres of driving (`distance_cost` per metre, `duration_cost` per second), and a
visit's `value` is what doing it is worth in those units (an optional visit worth 5,000 is done
when it costs less than 5 km of extra driving). Any consistent integer units work (the Solomon
benchmark uses tenths of its distance unit).

How the model maps onto PyVRP 0.14 (`geo._pyvrp_model` builds the data):

- Skills and pinned workers: for every visit the set of workers who may do it is computed first.
  Workers with the same set of allowed visits share a routing profile in which every edge into
  a visit they may not do is prohibitively long (longer than any shift: a route using it is
  infeasible). Chosen over pyvroom (skills native) by performance/bench_routing.py (2 cores,
  10 s): on Solomon this model is 0.14 % above the best-known distances on average, pyvroom
  1.44 % (OR-Tools GLS 1.59 % on the 4 of 7 it solved); on field-service days with skills but
  no breaks it was 0.6-4 % shorter than pyvroom on three 50-stop days. pyvroom is much faster
  (about 1 s against about 9 s for 50 stops with breaks) and, with breaks, 0.5 % shorter at 50
  stops: breaks are this model's weak spot (below).
- Identical workers (same start, end, shift, capacity, allowed visits, no breaks or pins) form one
  vehicle type with several vehicles; routes are handed to them in input order.
- Required visits are required in a first search. If no plan serving all of them is found within
  a quarter of the budget, the search restarts with every visit optional and required ones worth
  more than any possible route, so the plan drops as few of them as it must (never a "no
  solution").
- Soft deadlines (``hard_deadline=False``): two mutually exclusive copies of the visit, one within
  its window and one that may start after the window's end (up to the shift's end) but is worth
  `late_penalty` less. Lateness is a flat penalty, not per minute (PyVRP's time windows are hard
  and time warp is not lateness).
- Breaks: PyVRP 0.14 has no breaks. A break is a mutually exclusive group of "break clients", one
  at the worker's start, one at the end and one at the site of every visit the worker may do, each
  with the break's window and duration, and restricted to that worker through a load dimension
  only that worker has capacity in. Exactly one is taken: the worker breaks at that site. This is
  exact (travel is never skipped) at the price of extra clients per worker with breaks, which
  would flood PyVRP's nearest-neighbour lists; so with breaks the search uses a filtered
  neighbourhood (a visit's neighbours are visits plus the break clients at its own site).
- Pinned order: visits with a `pinned_position` form the head of their worker's route in position
  order (as in re-planning during the day, when the first stops are fixed). They are scheduled
  first; the solver plans the rest from the last pinned site and time. A pinned head that cannot
  be kept (a window missed) is cut at the first failing visit, which is reported unassigned.
- After solving, each route is re-simulated on the caller's matrices; should a stop break a hard
  rule (it cannot after a feasible search, but the fallback search may end infeasible), visits are
  removed until it does not, and reported as not fitting.

Determinism: the same inputs and `seed` give the same plan when the search stops on
`max_iterations` or `no_improvement`; `budget_s` is a wall-clock cap and, when it binds first,
results vary with the machine's speed.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Literal

import numpy as np
import numpy.typing as npt

from geo.travel import Matrices

__all__ = [
    "DID_NOT_FIT",
    "Break",
    "Plan",
    "RoutePlan",
    "Stop",
    "Unassigned",
    "Visit",
    "Worker",
    "solve",
]

IntMatrix = npt.NDArray[np.int64]

DID_NOT_FIT = "did not fit (lower value than what was planned)"


@dataclass(frozen=True, slots=True)
class Break:
    """A break of `duration_s` starting between `earliest_s` and `latest_s` (inclusive), taken
    wherever the worker is at that time (at a visit's site, the start or the end)."""

    earliest_s: int
    latest_s: int
    duration_s: int

    def __post_init__(self) -> None:
        if self.earliest_s > self.latest_s or self.duration_s < 0:
            raise ValueError(f"invalid break {self!r}")


@dataclass(frozen=True, slots=True)
class Worker:
    """A field worker for one day: leaves `start`, returns to `end` (location numbers of the
    matrices) within `shift` (start_s, end_s); `max_work_s` caps the time from leaving to
    returning (waiting included); `capacity` caps the total `demand` of the visits (van load),
    None means unlimited; `fixed_cost` is charged when the worker is used at all."""

    id: str
    start: int
    end: int
    shift: tuple[int, int]
    skills: frozenset[str] = frozenset()
    max_work_s: int | None = None
    breaks: tuple[Break, ...] = ()
    capacity: int | None = None
    fixed_cost: int = 0

    def __post_init__(self) -> None:
        if self.shift[0] > self.shift[1]:
            raise ValueError(f"worker {self.id}: shift ends before it starts")
        if self.max_work_s is not None and self.max_work_s < 0:
            raise ValueError(f"worker {self.id}: max_work_s < 0")
        if self.capacity is not None and self.capacity < 0:
            raise ValueError(f"worker {self.id}: capacity < 0")


@dataclass(frozen=True, slots=True)
class Visit:
    """A job at a place. Service must start within `window` (start_s, end_s) — after its end
    only when ``hard_deadline`` is False, at a cost of `late_penalty`. `required` visits are
    planned whenever at all possible; optional ones when their `value` beats the extra cost.
    `skills` must all be held by the worker. `pinned_worker` restricts the visit to that worker;
    `pinned_position` (needs `pinned_worker`) fixes its place among that worker's first stops.
    `demand` counts against the worker's `capacity`."""

    id: str
    location: int
    service_s: int = 0
    window: tuple[int, int] | None = None
    skills: frozenset[str] = frozenset()
    value: int = 0
    required: bool = True
    hard_deadline: bool = True
    late_penalty: int = 0
    demand: int = 0
    pinned_worker: str | None = None
    pinned_position: int | None = None

    def __post_init__(self) -> None:
        if self.window is not None and self.window[0] > self.window[1]:
            raise ValueError(f"visit {self.id}: window ends before it starts")
        if min(self.service_s, self.value, self.late_penalty, self.demand) < 0:
            raise ValueError(f"visit {self.id}: negative service, value, penalty or demand")
        if self.pinned_position is not None and (
            self.pinned_worker is None or self.pinned_position < 0
        ):
            raise ValueError(f"visit {self.id}: pinned_position needs pinned_worker and >= 0")


@dataclass(frozen=True, slots=True)
class Stop:
    """One stop of a route. ``kind`` "visit" (``id`` is the visit's) or "break" (``id`` is
    ``"<worker>/break/<k>"``); `travel_s`/`distance_m` are for the leg that arrives here;
    `late_s` is how long after a soft deadline the service started."""

    kind: Literal["visit", "break"]
    id: str
    location: int
    arrival_s: int
    start_s: int
    departure_s: int
    wait_s: int
    travel_s: int
    distance_m: int
    late_s: int = 0


@dataclass(frozen=True, slots=True)
class RoutePlan:
    """A worker's day: leaves `start` at `depart_s`, makes `stops`, is back at `end` at
    `return_s` after a last leg of `end_travel_s`/`end_distance_m`."""

    worker_id: str
    depart_s: int
    return_s: int
    stops: tuple[Stop, ...]
    end_travel_s: int
    end_distance_m: int

    @property
    def distance_m(self) -> int:
        """Total driving distance including the way back."""
        return sum(s.distance_m for s in self.stops) + self.end_distance_m

    @property
    def travel_s(self) -> int:
        """Total driving time including the way back."""
        return sum(s.travel_s for s in self.stops) + self.end_travel_s

    @property
    def wait_s(self) -> int:
        """Total waiting for windows (and break starts)."""
        return sum(s.wait_s for s in self.stops)

    @property
    def work_s(self) -> int:
        """Time from leaving to returning."""
        return self.return_s - self.depart_s

    @property
    def visit_ids(self) -> list[str]:
        """The visits in order (breaks left out)."""
        return [s.id for s in self.stops if s.kind == "visit"]


@dataclass(frozen=True, slots=True)
class Unassigned:
    """A visit left out of the plan and why."""

    visit_id: str
    reason: str


@dataclass(frozen=True, slots=True)
class Plan:
    """The result of `solve`: routes (in worker input order; idle workers have none) and the
    visits not planned (in visit input order). `search` says how the solver got there."""

    routes: tuple[RoutePlan, ...]
    unassigned: tuple[Unassigned, ...]
    search: dict[str, float | int | str] = field(default_factory=dict)

    @property
    def distance_m(self) -> int:
        """Total driving distance of all routes."""
        return sum(r.distance_m for r in self.routes)

    def route_of(self, worker_id: str) -> RoutePlan | None:
        """The route of a worker, or None when the worker is idle."""
        return next((r for r in self.routes if r.worker_id == worker_id), None)


def solve(
    visits: Sequence[Visit],
    workers: Sequence[Worker],
    matrices: Matrices | tuple[IntMatrix, IntMatrix],
    *,
    seed: int = 0,
    budget_s: float = 1.0,
    max_iterations: int | None = None,
    no_improvement: int | None = None,
    distance_cost: int = 1,
    duration_cost: int = 0,
) -> Plan:
    """Plan the day: assign visits to workers and order them, minimising
    ``distance_cost × metres + duration_cost × seconds + fixed costs + values of visits left
    out``, within the hard rules (windows, shifts, skills, capacity, breaks, maximum working
    time, pins). Stops after `budget_s` seconds, `max_iterations` search iterations or
    `no_improvement` iterations without a better plan, whichever comes first. Raises
    `ValueError` for inconsistent input (duplicate ids, a location outside the matrices, a
    break that cannot fit its shift)."""
    from geo._pyvrp_model import run

    distance, duration = (np.asarray(m, dtype=np.int64) for m in matrices)
    return run(
        list(visits),
        list(workers),
        distance,
        duration,
        seed=seed,
        budget_s=budget_s,
        max_iterations=max_iterations,
        no_improvement=no_improvement,
        distance_cost=distance_cost,
        duration_cost=duration_cost,
    )
