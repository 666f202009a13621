"""From a `WorkerDay` to the route a worker sees, and to an optimised order.

Two speeds on purpose. `optimise` runs the PyVRP model (``geo.vrp``) over the day's open visits
— a second or two, so it runs in the background — and gives the driving order and the travel of
each leg (from OSRM when configured). `route` is what every request runs (milliseconds): the
cached order (visits added since are put at their cheapest place, ``geo.routes``), timed from
where the worker is now (``geo.routes.time_route``) with the cached legs and the estimate for
the rest. So ETAs follow the worker's position and progress at every look, and the order
follows the visits once the background solve has stored it.
"""

from __future__ import annotations

import itertools
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from backend.lib.wallclock import zone_of
from backend.routing import schemas
from backend.routing.day import FRESH_POSITION, DayVisit, WorkerDay, seconds_since
from backend.routing.schemas import StartSource
from backend.tasks.models import TaskKind, TaskStatus
from geo import routes as georoutes
from geo import vrp
from geo.travel import Location, Matrices, matrix, travel_matrix

SKILL_OF_KIND = {TaskKind.MEASUREMENT: "measurer", TaskKind.INSTALLATION: "installer"}
START = "start"


@dataclass(frozen=True, slots=True)
class Start:
    """Where and when the open part of the day starts."""

    lat: float
    lon: float
    at: datetime
    source: StartSource


def start_of(day: WorkerDay, now: datetime) -> Start | None:
    """Where the remaining route starts: the visit in progress (when its work should end, or
    now if later), else — on the day itself, once the shift began — the worker's fresh
    position or the last visit done, else the base at the shift's start, else the first open
    visit. None when there is nothing to route."""
    routable = [v for v in day.visits if v.routable]
    if not routable:
        return None
    today = now.astimezone(zone_of(day.time_zone)).date() == day.day
    working = today and now >= day.shift_start
    depart = max(now, day.shift_start) if working else day.shift_start
    in_progress = [v for v in routable if v.status is TaskStatus.IN_PROGRESS]
    if in_progress:
        v = in_progress[-1]
        ends = (v.started_at or depart) + timedelta(seconds=v.service_s)
        return Start(*v.point, max(ends, depart), "in_progress")
    if working:
        p = day.position
        if p is not None and now - p.recorded_at <= FRESH_POSITION:
            return Start(p.lat, p.lon, depart, "position")
        done = sorted(
            (v for v in routable if v.status is TaskStatus.DONE and v.completed_at),
            key=lambda v: v.completed_at or depart,
        )
        if done:
            return Start(*done[-1].point, depart, "last_visit")
    if day.base is not None:
        return Start(day.base[0], day.base[1], depart, "base")
    first = next((v for v in routable if v.status is TaskStatus.OPEN), routable[0])
    return Start(*first.point, depart, "first_visit")


def _seconds(day: WorkerDay, moment: datetime) -> int:
    return seconds_since(day.midnight, moment)


def _geo_visit(day: WorkerDay, v: DayVisit, location: int) -> vrp.Visit:
    window = v.window_s(day.midnight, _seconds(day, day.shift_start))
    return vrp.Visit(str(v.task_id), location, service_s=v.service_s, window=window)


def open_visits(day: WorkerDay) -> list[DayVisit]:
    """The visits still to drive to, in planned order."""
    return [v for v in day.visits if v.status is TaskStatus.OPEN and v.routable]


def _locations(start: Start, visits: Sequence[DayVisit], day: WorkerDay) -> list[Location]:
    """Start, the visits, and the end (the base; a stand-in for "anywhere" without one)."""
    places = [Location(start.lat, start.lon)]
    places += [Location(*v.point) for v in visits]
    end = day.base or (start.lat, start.lon)
    places.append(Location(end[0], end[1]))
    return places


def _free_ends(matrices: Matrices, start: Start, day: WorkerDay) -> Matrices:
    """Without a base the day starts at whichever visit comes first (no driving before it) and
    ends at the last one (none after it): the start's row and the end's column cost nothing."""
    distance, duration = matrices.distance_m.copy(), matrices.duration_s.copy()
    if start.source == "first_visit":
        distance[0, :] = duration[0, :] = 0
    if day.base is None:
        distance[:, -1] = duration[:, -1] = 0
    return Matrices(distance, duration)


def _hour(day: WorkerDay, moment: datetime) -> int:
    return moment.astimezone(zone_of(day.time_zone)).hour


@dataclass(frozen=True, slots=True)
class Optimised:
    """An order of the open visits and the travel of its legs."""

    task_ids: list[uuid.UUID]
    legs: dict[str, list[int]]


def _leg_key(a: str, b: str) -> str:
    return f"{a}>{b}"


def optimise(
    day: WorkerDay, now: datetime, *, osrm_url: str | None, budget_s: float, seed: int = 0
) -> Optimised:
    """The driving order of the day's open visits from where the day starts now, by the
    optimiser; visits it cannot fit in their windows go last, in planned order."""
    start = start_of(day, now)
    visits = open_visits(day)
    if start is None or not visits:
        return Optimised([], {})
    places = _locations(start, visits, day)
    matrices = _free_ends(
        travel_matrix(places, _hour(day, start.at), osrm_url=osrm_url), start, day
    )
    depart = _seconds(day, start.at)
    shift_end = max(_seconds(day, day.shift_end), depart + 12 * 3600)
    worker = vrp.Worker("w", start=0, end=len(places) - 1, shift=(depart, shift_end))
    geo_visits = [_geo_visit(day, v, i + 1) for i, v in enumerate(visits)]
    plan = vrp.solve(
        geo_visits, [worker], matrices, seed=seed, budget_s=budget_s, no_improvement=2000
    )
    route = plan.route_of("w")
    ordered = route.visit_ids if route else []
    left = [str(v.task_id) for v in visits if str(v.task_id) not in set(ordered)]
    order = ordered + left
    index = {str(v.task_id): i + 1 for i, v in enumerate(visits)}
    legs: dict[str, list[int]] = {}
    for a, b in itertools.pairwise(order):
        i, j = index[a], index[b]
        legs[_leg_key(a, b)] = [int(matrices.duration_s[i, j]), int(matrices.distance_m[i, j])]
    return Optimised([uuid.UUID(t) for t in order], legs)


def _quick_order(
    day: WorkerDay,
    visits: Sequence[DayVisit],
    cached: Sequence[uuid.UUID],
    start: Start,
    matrices: Matrices,
) -> list[DayVisit]:
    """The cached order of the visits it knows, each new visit at its cheapest place."""
    position = {task_id: i for i, task_id in enumerate(cached)}
    known = sorted((v for v in visits if v.task_id in position), key=lambda v: position[v.task_id])
    new = [v for v in visits if v.task_id not in position]
    if not known:
        return list(visits)  # planned order
    index = {v.task_id: i + 1 for i, v in enumerate(visits)}
    worker = vrp.Worker("w", start=0, end=len(visits) + 1, shift=(_seconds(day, start.at), 10**9))
    order = list(known)
    for v in new:
        geo_day = [_geo_visit(day, o, index[o.task_id]) for o in order]
        found = georoutes.best_insertion(
            _geo_visit(day, v, index[v.task_id]), [worker], [geo_day], matrices
        )
        order.insert(len(order) if found is None else found.position, v)
    return order


def _matrices(
    day: WorkerDay, start: Start, visits: Sequence[DayVisit], legs: Mapping[str, Any]
) -> Matrices:
    """The estimate for every pair, with the cached legs (OSRM's when configured) where known."""
    distance, duration = _free_ends(
        matrix(_locations(start, visits, day), _hour(day, start.at)), start, day
    )
    index = {str(v.task_id): i for i, v in enumerate(visits, start=1)}
    for key, (seconds, metres) in legs.items():
        a, _, b = key.partition(">")
        if a in index and b in index:
            duration[index[a], index[b]], distance[index[a], index[b]] = seconds, metres
    return Matrices(distance, duration)


def _stop_out(v: DayVisit, stop: vrp.Stop | None, day: WorkerDay) -> schemas.RouteStop:
    def at(seconds: int) -> datetime:
        return day.midnight + timedelta(seconds=seconds)

    return schemas.RouteStop(
        task_id=v.task_id,
        kind=v.kind.value,
        title=v.title,
        status=v.status.value,
        customer_name=v.customer_name,
        address=v.address,
        lat=v.point[0],
        lon=v.point[1],
        window_start=v.window_start,
        window_end=v.window_end,
        eta=None if stop is None else at(stop.arrival_s),
        start_at=v.started_at if stop is None else at(stop.start_s),
        depart_at=v.completed_at if stop is None else at(stop.departure_s),
        wait_s=0 if stop is None else stop.wait_s,
        late_s=0 if stop is None else stop.late_s,
        travel_s=0 if stop is None else stop.travel_s,
        distance_m=0 if stop is None else stop.distance_m,
        service_s=v.service_s,
        started_at=v.started_at,
        completed_at=v.completed_at,
    )


def route(
    day: WorkerDay, now: datetime, cached: Sequence[uuid.UUID], legs: Mapping[str, Any]
) -> tuple[schemas.RouteStart | None, list[schemas.RouteStop], int]:
    """The day's stops: visits done (by completion) and in progress first, then the open
    ones in the cached order (new ones at their cheapest place) timed from the start now.
    Also returns the driving back to the base (seconds)."""
    history = sorted(
        (v for v in day.visits if v.routable and v.status is not TaskStatus.OPEN),
        key=lambda v: (v.status is TaskStatus.IN_PROGRESS, v.completed_at or v.started_at or now),
    )
    stops = [_stop_out(v, None, day) for v in history]
    start = start_of(day, now)
    visits = open_visits(day)
    if start is None:
        return None, stops, 0
    matrices = _matrices(day, start, visits, legs) if visits else None
    order = _quick_order(day, visits, cached, start, matrices) if matrices else []
    if start.source == "first_visit" and order:
        start = Start(*order[0].point, start.at, start.source)
    start_out = schemas.RouteStart(lat=start.lat, lon=start.lon, at=start.at, source=start.source)
    if not order or matrices is None:
        return start_out, stops, 0
    index = {v.task_id: i + 1 for i, v in enumerate(visits)}
    timed = georoutes.time_route(
        "w",
        [_geo_visit(day, v, index[v.task_id]) for v in order],
        start=0,
        depart_s=_seconds(day, start.at),
        end=len(visits) + 1,
        matrices=matrices,
    )
    stops += [_stop_out(v, s, day) for v, s in zip(order, timed.stops, strict=True)]
    return start_out, stops, timed.end_travel_s


def line(start: schemas.RouteStart | None, stops: Sequence[schemas.RouteStop]) -> dict[str, Any]:
    """The day as a GeoJSON LineString (longitude first): visits in order, from the start of
    the open part."""
    coords = [[s.lon, s.lat] for s in stops if s.status != TaskStatus.OPEN.value]
    if start is not None:
        coords.append([start.lon, start.lat])
    coords += [[s.lon, s.lat] for s in stops if s.status == TaskStatus.OPEN.value]
    deduped = [c for i, c in enumerate(coords) if i == 0 or c != coords[i - 1]]
    return {"type": "LineString", "coordinates": deduped}
