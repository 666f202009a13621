"""A worker's day as the router sees it: the visits planned for a local date, the working window,
where the day starts and where the worker is now — loaded in a few small queries.

A visit belongs to the day when its planned time (window start, else due time) falls on that
local date in the worker's time zone. Service times come from the task kind (a task has no
duration of its own): a measurement 45 minutes, an installation 3 hours, another visit 30. The
working window is the worker's scheduled shift that day (``backend.tracking.schedule``), else
08:00-20:00 local.
"""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

from sqlalchemy import Select, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from backend.accounts.models import User
from backend.customers.models import SITE_LAT, SITE_LON, Customer, Site
from backend.lib.errors import NotFound
from backend.lib.wallclock import zone_of
from backend.tasks.models import VISIT_KINDS, Task, TaskKind, TaskStatus
from backend.tracking import schedule
from backend.tracking.models import LatestPosition, ShiftSchedule

SERVICE_S = {TaskKind.MEASUREMENT: 45 * 60, TaskKind.INSTALLATION: 3 * 3600, TaskKind.VISIT: 1800}
DEFAULT_SHIFT = (time(8), time(20))
# A position older than this does not say where the worker is now.
FRESH_POSITION = timedelta(minutes=30)


def seconds_since(origin: datetime, moment: datetime) -> int:
    """Whole seconds from ``origin`` to ``moment`` (the optimiser's time unit)."""
    return int((moment - origin).total_seconds())


@dataclass(frozen=True, slots=True)
class DayVisit:
    """One visit task of the day, with what the route and the worker's screen need."""

    task_id: uuid.UUID
    kind: TaskKind
    title: str
    status: TaskStatus
    customer_name: str | None
    address: str | None
    lat: float | None
    lon: float | None
    window_start: datetime | None
    window_end: datetime | None
    due_at: datetime | None
    started_at: datetime | None
    completed_at: datetime | None
    deal_id: uuid.UUID | None

    @property
    def service_s(self) -> int:
        """How long the work on site takes."""
        return SERVICE_S.get(self.kind, 1800)

    @property
    def planned_at(self) -> datetime | None:
        """When the visit is planned to start (window start, else due time)."""
        return self.window_start or self.due_at

    def window_s(self, origin: datetime, opens_s: int = 0) -> tuple[int, int] | None:
        """When work may start, in seconds from ``origin``: the window (a window without an
        end is a start time), else from ``opens_s`` (or the due time if earlier) to the due
        time; None when the visit has neither."""
        if self.window_start is not None:
            start = seconds_since(origin, self.window_start)
            return start, max(start, seconds_since(origin, self.window_end or self.window_start))
        if self.due_at is not None:
            due = seconds_since(origin, self.due_at)
            return min(opens_s, due), due
        return None

    @property
    def point(self) -> tuple[float, float]:
        """(lat, lon) of the site; ValueError for a visit without one."""
        if self.lat is None or self.lon is None:
            raise ValueError(f"task {self.task_id} has no site")
        return self.lat, self.lon

    @property
    def routable(self) -> bool:
        """Whether it has a place to drive to."""
        return self.lat is not None and self.lon is not None


@dataclass(frozen=True, slots=True)
class Position:
    """The worker's latest fix."""

    lat: float
    lon: float
    recorded_at: datetime


@dataclass(frozen=True, slots=True)
class WorkerDay:
    """Everything the route of one worker on one local date is computed from."""

    user_id: uuid.UUID
    organization_id: uuid.UUID
    day: date
    time_zone: str
    skills: frozenset[str]
    shift_start: datetime
    shift_end: datetime
    base: tuple[float, float] | None
    position: Position | None
    visits: tuple[DayVisit, ...]

    @property
    def midnight(self) -> datetime:
        """Local midnight starting the day, in UTC: the origin of the optimiser's seconds
        (UTC so that adding seconds is exact across a clock change)."""
        return local_bounds(self.day, self.time_zone)[0].astimezone(UTC)


def local_bounds(day: date, tz: str) -> tuple[datetime, datetime]:
    """The instants where local ``day`` begins and the next begins."""
    zone = zone_of(tz)
    return (
        datetime.combine(day, time(), zone),
        datetime.combine(day + timedelta(days=1), time(), zone),
    )


def signature(visits: Sequence[DayVisit]) -> str:
    """Fingerprint of what an order was optimised for: the open visits, their places and
    times. A started or finished visit changes it (the rest is planned from there)."""
    parts = sorted(
        f"{v.task_id}|{v.status.value}|{v.lat}|{v.lon}|{v.window_start}|{v.window_end}|{v.due_at}"
        for v in visits
    )
    return hashlib.sha256("\n".join(parts).encode()).hexdigest()


def _working_window(raw: dict[str, object] | None, tz: str, day: date) -> tuple[datetime, datetime]:
    start, end = local_bounds(day, tz)
    if raw:
        shifts = schedule.parse_weekly_shifts(raw)
        found = [w for w in schedule.windows(shifts, tz, start, end) if w[0] >= start]
        if found:
            return found[0][0], found[-1][1]
    zone = zone_of(tz)
    return (
        datetime.combine(day, DEFAULT_SHIFT[0], zone),
        datetime.combine(day, DEFAULT_SHIFT[1], zone),
    )


PLANNED = func.coalesce(Task.window_start, Task.due_at)
_VISIT_COLUMNS = (
    Task.id,
    Task.kind,
    Task.title,
    Task.status,
    Customer.name,
    Site.address,
    SITE_LAT,
    SITE_LON,
    Task.window_start,
    Task.window_end,
    Task.due_at,
    Task.started_at,
    Task.completed_at,
    Task.deal_id,
)


def visit_select(*extra: Any) -> Select[Any]:
    """SELECT of what a `DayVisit` needs (then ``extra`` columns) from tasks with their site
    and customer; `visit_of` turns a row into the visit."""
    return (
        select(*_VISIT_COLUMNS, *extra)
        .outerjoin(Site, Site.id == Task.site_id)
        .outerjoin(Customer, Customer.id == Task.customer_id)
    )


def visit_of(row: Sequence[Any]) -> DayVisit:
    """The `DayVisit` of a `visit_select` row."""
    return DayVisit(*row[: len(_VISIT_COLUMNS)])


async def load_visits(
    session: AsyncSession,
    organization_id: uuid.UUID,
    user_ids: Sequence[uuid.UUID],
    day_tz: str,
    day: date,
) -> dict[uuid.UUID, list[DayVisit]]:
    """The visit tasks (not cancelled) planned on local ``day`` (zone ``day_tz``) for each of
    ``user_ids``, in planned order."""
    start, end = local_bounds(day, day_tz)
    rows = await session.execute(
        visit_select(Task.assignee_id)
        .where(
            Task.organization_id == organization_id,
            Task.assignee_id.in_(user_ids),
            Task.kind.in_(VISIT_KINDS),
            Task.status != TaskStatus.CANCELLED,
            PLANNED >= start,
            PLANNED < end,
        )
        .order_by(PLANNED, Task.id)
    )
    found: dict[uuid.UUID, list[DayVisit]] = {u: [] for u in user_ids}
    for r in rows.all():
        found[r[-1]].append(visit_of(r))
    return found


async def load_day(
    session: AsyncSession, organization_id: uuid.UUID, user_id: uuid.UUID, day: date
) -> WorkerDay:
    """The day of one worker of the organisation (``NotFound`` for anyone else)."""
    row = (
        await session.execute(
            select(
                User,
                ShiftSchedule.schedule,
                LatestPosition.lat,
                LatestPosition.lon,
                LatestPosition.recorded_at,
            )
            .outerjoin(ShiftSchedule, ShiftSchedule.user_id == User.id)
            .outerjoin(LatestPosition, LatestPosition.user_id == User.id)
            .where(User.id == user_id, User.organization_id == organization_id)
        )
    ).first()
    if row is None:
        raise NotFound("User not found")
    user: User = row[0]
    visits = (await load_visits(session, organization_id, [user_id], user.time_zone, day))[user_id]
    return worker_day(user, day, row[1], row[2:], visits)


def worker_day(
    user: User,
    day: date,
    raw_schedule: dict[str, object] | None,
    position: Sequence[object],
    visits: Sequence[DayVisit],
) -> WorkerDay:
    """Assemble a `WorkerDay` from loaded rows (``position`` is lat, lon, recorded_at or
    Nones)."""
    shift_start, shift_end = _working_window(raw_schedule, user.time_zone, day)
    lat, lon, recorded_at = position
    return WorkerDay(
        user_id=user.id,
        organization_id=user.organization_id,
        day=day,
        time_zone=user.time_zone,
        skills=frozenset(user.skills),
        shift_start=shift_start.astimezone(UTC),
        shift_end=shift_end.astimezone(UTC),
        base=None
        if user.base_lat is None or user.base_lon is None
        else (user.base_lat, user.base_lon),
        position=None if lat is None else Position(float(lat), float(lon), recorded_at),  # type: ignore[arg-type]
        visits=tuple(visits),
    )
