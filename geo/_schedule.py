"""Timing of a route on the caller's matrices: the single place where `geo.vrp` turns an order
of stops into arrival/start/departure times (earliest schedule: leave a stop as soon as its
service ends, wait at the next one for its window). Internal to `geo.vrp`; the feasibility
checker (`geo.feasibility`) deliberately does its own arithmetic."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np
import numpy.typing as npt

from geo.vrp import Stop

IntMatrix = npt.NDArray[np.int64]


@dataclass(frozen=True, slots=True)
class Item:
    """A stop to be timed: service may start from `early`; `late` is the hard latest start
    (None: none), `due` the soft one used to report lateness; `removable` is False for pinned
    stops and breaks."""

    kind: Literal["visit", "break"]
    id: str
    location: int
    service: int
    early: int
    late: int | None
    due: int | None
    demand: int = 0
    removable: bool = True


@dataclass(frozen=True, slots=True)
class Timed:
    """A timed route."""

    stops: tuple[Stop, ...]
    return_s: int
    end_travel_s: int
    end_distance_m: int


def simulate(
    items: Sequence[Item],
    start: int,
    depart: int,
    end: int,
    distance: IntMatrix,
    duration: IntMatrix,
) -> Timed:
    """Earliest schedule of `items` leaving location `start` at `depart` and ending at `end`."""
    now, here = depart, start
    stops: list[Stop] = []
    for item in items:
        travel = int(duration[here, item.location])
        arrival = now + travel
        begin = max(arrival, item.early)
        late = 0 if item.due is None else max(0, begin - item.due)
        stops.append(
            Stop(
                kind=item.kind,
                id=item.id,
                location=item.location,
                arrival_s=arrival,
                start_s=begin,
                departure_s=begin + item.service,
                wait_s=begin - arrival,
                travel_s=travel,
                distance_m=int(distance[here, item.location]),
                late_s=late,
            )
        )
        now, here = begin + item.service, item.location
    back = int(duration[here, end])
    return Timed(tuple(stops), now + back, back, int(distance[here, end]))


def first_violation(
    items: Sequence[Item],
    timed: Timed,
    *,
    depart: int,
    shift_end: int,
    max_work: int | None,
    capacity: int | None,
    pinned_too: bool = False,
) -> int | None:
    """Index of the item to drop to repair the route, or None when it keeps every hard rule
    (or only items that may not be dropped could repair it). A missed window or break drops the
    last removable item up to there; a late return, too long a day or too much load drops the
    last removable item (with load). Breaks are never dropped; pinned visits only when
    `pinned_too`."""
    removable = [
        i for i, item in enumerate(items) if item.removable or (pinned_too and item.kind == "visit")
    ]
    for i, (item, stop) in enumerate(zip(items, timed.stops, strict=True)):
        if item.late is not None and stop.start_s > item.late:
            before = [k for k in removable if k <= i]
            return before[-1] if before else (removable[0] if removable else None)
    over_time = timed.return_s > shift_end or (
        max_work is not None and timed.return_s - depart > max_work
    )
    if over_time and removable:
        return removable[-1]
    if capacity is not None and sum(item.demand for item in items) > capacity:
        loaded = [k for k in removable if items[k].demand > 0]
        if loaded:
            return loaded[-1]
    return None
