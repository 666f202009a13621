"""Request and response bodies of routes and dispatch."""

from __future__ import annotations

import uuid
from datetime import date, datetime
from typing import Any, Literal

import msgspec

StartSource = Literal["position", "in_progress", "last_visit", "base", "first_visit"]


class Output(msgspec.Struct, rename="camel", kw_only=True):
    pass


class RouteStart(Output):
    """Where and when the remaining route starts: the worker's position now, the site of the
    visit in progress or last done, the worker's base, or the first visit."""

    lat: float
    lon: float
    at: datetime
    source: StartSource


class RouteStop(Output):
    """One visit of the day. Done and in-progress visits come first (actual times); open ones
    follow in driving order with their ETA (``eta``: arrival), start and departure."""

    task_id: uuid.UUID
    kind: str
    title: str
    status: str
    customer_name: str | None
    address: str | None
    lat: float
    lon: float
    window_start: datetime | None
    window_end: datetime | None
    eta: datetime | None
    start_at: datetime | None
    depart_at: datetime | None
    wait_s: int
    late_s: int
    travel_s: int
    distance_m: int
    service_s: int
    started_at: datetime | None
    completed_at: datetime | None


class Unrouted(Output):
    task_id: uuid.UUID
    title: str
    reason: str


class RouteTotals(Output):
    visits: int
    done: int
    remaining: int
    travel_s: int
    distance_m: int
    service_s: int
    wait_s: int
    late_visits: int
    ends_at: datetime | None


class RouteOut(Output):
    """A worker's day in driving order. ``optimised`` is False while the order is a quick
    one (visits changed since the last optimisation; it is re-optimised in the background)."""

    user_id: uuid.UUID
    date: date
    time_zone: str
    shift_start: datetime
    shift_end: datetime
    optimised: bool
    solved_at: datetime | None
    start: RouteStart | None
    stops: list[RouteStop]
    unrouted: list[Unrouted]
    totals: RouteTotals
    geometry: dict[str, Any]


class DispatchRequest(msgspec.Struct, rename="camel", forbid_unknown_fields=True, kw_only=True):
    team_id: uuid.UUID
    date: date
    budget_seconds: float = msgspec.field(default=2.0)


class DispatchStop(Output):
    task_id: uuid.UUID
    title: str
    kind: str
    new: bool
    eta: datetime
    start_at: datetime
    depart_at: datetime
    travel_s: int
    distance_m: int


class DispatchRoute(Output):
    user_id: uuid.UUID
    name: str
    stops: list[DispatchStop]
    distance_m: int
    travel_s: int
    ends_at: datetime


class DispatchLeftOut(Output):
    task_id: uuid.UUID
    title: str
    value: int
    reason: str


class DispatchOut(Output):
    """A team's planned day: ``routes`` per worker (existing visits and newly assigned ones,
    ``new``), tasks ``left_out`` with the reason (least valuable first to go), workers
    ``off`` that day. ``status`` "preview" until applied; ``applied`` lists the assignments
    made, ``skipped`` those whose task changed meanwhile."""

    id: uuid.UUID
    team_id: uuid.UUID
    date: date
    status: Literal["preview", "applied"]
    created_at: datetime
    routes: list[DispatchRoute]
    left_out: list[DispatchLeftOut]
    off: list[uuid.UUID]
    distance_m: int
    applied_at: datetime | None = None
    applied: list[dict[str, str]] = msgspec.field(default_factory=list)
    skipped: list[dict[str, str]] = msgspec.field(default_factory=list)
