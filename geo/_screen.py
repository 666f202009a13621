"""Before the search: input validation, which worker may do which visit (and why nobody may),
and the pinned heads of routes. Internal to `geo.vrp`.

Cheap reasons are found here so the caller gets a specific one: no worker has the skills, the
pinned worker is unknown or lacks them, the load exceeds every capacity, the window lies
outside every shift, or no worker can reach it in time (and get back) from where it starts.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

from geo._schedule import Item, simulate
from geo.vrp import Break, Stop, Visit, Worker

IntMatrix = npt.NDArray[np.int64]

NO_WORKERS = "no workers"
NO_SKILLS = "no worker has the skills: {}"
PIN_UNKNOWN = "pinned to unknown worker {}"
PIN_SKILLS = "pinned worker {} lacks the skills: {}"
TOO_HEAVY = "demand exceeds the capacity of every worker who may do it"
OUTSIDE_SHIFTS = "window outside every shift"
UNREACHABLE = "unreachable in time from any start"
PIN_ORDER = "pinned order cannot be kept: {}"
NO_LIMIT = np.iinfo(np.int64).max


@dataclass(slots=True)
class Head:
    """A worker's pinned head and where/when the rest of the route starts."""

    items: list[Item] = field(default_factory=list)
    depart: int | None = None
    location: int = 0
    time: int = 0
    breaks_left: list[tuple[int, Break]] = field(default_factory=list)
    load: int = 0


def validate(
    visits: Sequence[Visit], workers: Sequence[Worker], distance: IntMatrix, duration: IntMatrix
) -> None:
    """Raise `ValueError` for input the model cannot mean."""
    n = distance.shape[0] if distance.ndim == 2 else -1
    if distance.shape != (n, n) or duration.shape != (n, n):
        raise ValueError("distance and duration must be square matrices of the same size")
    if (distance < 0).any() or (duration < 0).any():
        raise ValueError("travel matrices must not be negative")
    for kind, ids in (("visit", [v.id for v in visits]), ("worker", [w.id for w in workers])):
        if len(set(ids)) != len(ids):
            raise ValueError(f"duplicate {kind} ids")
    for v in visits:
        if not 0 <= v.location < n:
            raise ValueError(f"visit {v.id}: location {v.location} outside the matrices")
    for w in workers:
        if not (0 <= w.start < n and 0 <= w.end < n):
            raise ValueError(f"worker {w.id}: start/end outside the matrices")
        for b in w.breaks:
            if b.latest_s < w.shift[0] or max(b.earliest_s, w.shift[0]) + b.duration_s > w.shift[1]:
                raise ValueError(f"worker {w.id}: break {b} does not fit the shift {w.shift}")


def window(v: Visit) -> tuple[int, int | None, int | None]:
    """(earliest start, hard latest start or None, soft due or None) of a visit."""
    if v.window is None:
        return 0, None, None
    if v.hard_deadline:
        return v.window[0], v.window[1], v.window[1]
    return v.window[0], None, v.window[1]


def skill_screen(
    visits: Sequence[Visit], workers: Sequence[Worker]
) -> tuple[list[set[int]], dict[int, str]]:
    """Workers (indices) that may do each visit by skills, pin and capacity; reasons for the
    visits nobody may do."""
    by_id = {w.id: k for k, w in enumerate(workers)}
    allowed: list[set[int]] = []
    reasons: dict[int, str] = {}
    for i, v in enumerate(visits):
        skilled = {k for k, w in enumerate(workers) if v.skills <= w.skills}
        ok = set(skilled)
        if v.pinned_worker is not None:
            pin = by_id.get(v.pinned_worker)
            ok = {pin} & skilled if pin is not None else set()
        ok = {k for k in ok if v.demand <= _capacity(workers[k])}
        allowed.append(ok)
        if ok:
            continue
        missing = ", ".join(sorted(v.skills)) or "-"
        if not workers:
            reasons[i] = NO_WORKERS
        elif not skilled:
            reasons[i] = NO_SKILLS.format(missing)
        elif v.pinned_worker is not None and v.pinned_worker not in by_id:
            reasons[i] = PIN_UNKNOWN.format(v.pinned_worker)
        elif v.pinned_worker is not None and by_id[v.pinned_worker] not in skilled:
            reasons[i] = PIN_SKILLS.format(v.pinned_worker, missing)
        else:
            reasons[i] = TOO_HEAVY
    return allowed, reasons


def _capacity(w: Worker) -> int:
    return NO_LIMIT if w.capacity is None else w.capacity


def visit_item(v: Visit, removable: bool = True) -> Item:
    """The schedule item of a visit."""
    early, late, due = window(v)
    return Item("visit", v.id, v.location, v.service_s, early, late, due, v.demand, removable)


def break_item(worker: Worker, k: int, b: Break, location: int) -> Item:
    """The schedule item of a worker's k-th break taken at `location`."""
    return Item(
        "break", f"{worker.id}/break/{k}", location, b.duration_s, b.earliest_s, b.latest_s,
        b.latest_s, 0, False,
    )  # fmt: skip


def heads(
    visits: Sequence[Visit],
    workers: Sequence[Worker],
    allowed: list[set[int]],
    reasons: dict[int, str],
    distance: IntMatrix,
    duration: IntMatrix,
) -> tuple[list[Head], set[int]]:
    """Schedule each worker's pinned head (visits with `pinned_position`, in position order);
    a break is taken at the current site before a head visit that would end after its latest
    start. Visits of a head that cannot be kept get a reason. Returns the heads and the
    indices of all head visits (kept or not)."""
    result: list[Head] = []
    in_heads: set[int] = set()
    for k, w in enumerate(workers):
        pinned = sorted(
            (v.pinned_position or 0, i)
            for i, v in enumerate(visits)
            if v.pinned_position is not None and v.pinned_worker == w.id
        )
        in_heads.update(i for _, i in pinned)
        head = Head(location=w.start, time=w.shift[0])
        pending = sorted(enumerate(w.breaks), key=lambda kb: kb[1].earliest_s)
        todo = [i for _, i in pinned if k in allowed[i]]
        depart = w.shift[0]
        if todo:
            first = visits[todo[0]]
            depart = max(depart, window(first)[0] - int(duration[w.start, first.location]))
        items: list[Item] = []
        for pos, i in enumerate(todo):
            v = visits[i]
            item = visit_item(v, removable=False)
            timed = simulate([*items, item], w.start, depart, w.start, distance, duration)
            finish = timed.stops[-1].departure_s
            # Breaks whose latest start would pass during this visit: take them here first.
            forced = [(bk, b) for bk, b in pending if finish > b.latest_s]
            here = items[-1].location if items else w.start
            trial = [*items, *(break_item(w, bk, b, here) for bk, b in forced), item]
            timed = simulate(trial, w.start, depart, w.start, distance, duration)
            problem = _head_problem(v, timed.stops[-1], w, duration, depart)
            if problem is None and head.load + v.demand > _capacity(w):
                problem = "over capacity"
            if problem is not None:
                for j in todo[pos:]:
                    reasons.setdefault(j, PIN_ORDER.format(problem))
                break
            items = trial
            pending = [kb for kb in pending if kb not in forced]
            head.load += v.demand
        if items:
            timed = simulate(items, w.start, depart, w.start, distance, duration)
            head.depart = depart
            head.location = items[-1].location
            head.time = timed.stops[-1].departure_s
        head.items = items
        head.breaks_left = pending
        result.append(head)
    return result, in_heads


def _head_problem(v: Visit, stop: Stop, w: Worker, duration: IntMatrix, depart: int) -> str | None:
    _, late, _ = window(v)
    if late is not None and stop.start_s > late:
        return f"{v.id} would start after its window"
    back = stop.departure_s + int(duration[v.location, w.end])
    if back > w.shift[1]:
        return f"{v.id} would end the shift late"
    if w.max_work_s is not None and back - depart > w.max_work_s:
        return f"{v.id} would exceed the maximum working time"
    return None


def time_screen(
    visits: Sequence[Visit],
    workers: Sequence[Worker],
    allowed: list[set[int]],
    reasons: dict[int, str],
    head_list: Sequence[Head],
    duration: IntMatrix,
    skip: set[int],
) -> None:
    """Remove from `allowed` the workers who cannot do a visit in time from where their free
    part of the day starts; give a reason when nobody is left."""
    for i, v in enumerate(visits):
        if i in skip or i in reasons:
            continue
        early, late, _ = window(v)
        inside = False
        reachable: set[int] = set()
        for k in allowed[i]:
            w, head = workers[k], head_list[k]
            start_s, end_s = w.shift
            if (late is None or late >= start_s) and early + v.service_s <= end_s:
                inside = True
            t0 = head.time
            begin = max(t0 + int(duration[head.location, v.location]), early)
            done = begin + v.service_s
            back = done + int(duration[v.location, w.end])
            used = (t0 - head.depart) if head.depart is not None else 0
            work = used + int(duration[head.location, v.location]) + v.service_s
            work += int(duration[v.location, w.end])
            if late is not None and begin > late:
                continue
            if back > end_s or (w.max_work_s is not None and work > w.max_work_s):
                continue
            reachable.add(k)
        allowed[i] = reachable
        if not reachable:
            reasons[i] = UNREACHABLE if inside else OUTSIDE_SHIFTS
