"""The worker's scans for customer messages: which visits are due a confirmation, a reminder,
an "on my way", a "running late" or a feedback request now.

Why scans rather than calls from every place that creates or moves a visit: visits are made by
the tasks API, stage automations, dispatch and imports; a scan of committed rows covers them all
without touching those paths, never messages a change that was rolled back, and picks up where
it left off after a crash (the outbox keys make a repeat harmless). A message goes out within
one scan period (a minute) of its reason.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime, time, timedelta

from sqlalchemy import Date, Time, cast, func, or_, select
from sqlalchemy.dialects.postgresql import distinct_on
from sqlalchemy.ext.asyncio import AsyncSession

from backend.accounts.models import Organization, Role, User
from backend.notifications.customer.models import VisitMessageState
from backend.routing import services as routing
from backend.routing.day import load_day
from backend.routing.models import EtaChange, RoutePlan
from backend.tasks.models import VISIT_KINDS, Task, TaskStatus
from backend.tracking.livecache import DRIVING_MPS, OFFLINE_AFTER
from backend.tracking.models import LatestPosition, Shift

BATCH = 200
REMINDER_FROM = time(10, 0)  # local time on the day before the visit
FEEDBACK_WITHIN = timedelta(days=2)
LATE_WITHIN = timedelta(hours=12)
ON_MY_WAY_WITHIN = timedelta(hours=2)

_planned = func.coalesce(Task.window_start, Task.due_at)
_customer_visit = (
    Task.kind.in_(VISIT_KINDS),
    Task.customer_id.is_not(None),
)


async def bookings_due(session: AsyncSession, now: datetime) -> list[Task]:
    """Open future visits whose window was never confirmed, or changed since."""
    stmt = (
        select(Task)
        .outerjoin(VisitMessageState, VisitMessageState.task_id == Task.id)
        .where(
            Task.status == TaskStatus.OPEN,
            *_customer_visit,
            _planned > now,
            or_(
                VisitMessageState.task_id.is_(None),
                VisitMessageState.booked_start.is_distinct_from(_planned),
                VisitMessageState.booked_end.is_distinct_from(Task.window_end),
            ),
        )
        .order_by(_planned, Task.id)
        .limit(BATCH)
    )
    return list((await session.scalars(stmt)).all())


async def reminders_due(session: AsyncSession, now: datetime) -> list[Task]:
    """Confirmed open visits planned for tomorrow in the organisation's time zone, from 10:00
    local time today; not when the confirmation of that window went out today (it already
    told them)."""
    zone = Organization.time_zone
    local_now = func.timezone(zone, now)
    today = cast(local_now, Date)
    stmt = (
        select(Task)
        .join(VisitMessageState, VisitMessageState.task_id == Task.id)
        .join(Organization, Organization.id == Task.organization_id)
        .where(
            Task.status == TaskStatus.OPEN,
            *_customer_visit,
            _planned > now,
            cast(func.timezone(zone, _planned), Date) == today + 1,
            cast(local_now, Time) >= REMINDER_FROM,
            VisitMessageState.reminded_start.is_distinct_from(_planned),
            VisitMessageState.booked_start == _planned,
            cast(func.timezone(zone, VisitMessageState.booked_at), Date) < today,
        )
        .order_by(_planned, Task.id)
        .limit(BATCH)
    )
    return list((await session.scalars(stmt)).all())


async def feedback_due(session: AsyncSession, now: datetime) -> list[Task]:
    """Visits completed lately whose customer was not asked for feedback yet."""
    stmt = (
        select(Task)
        .outerjoin(VisitMessageState, VisitMessageState.task_id == Task.id)
        .where(
            Task.status == TaskStatus.DONE,
            *_customer_visit,
            Task.completed_at > now - FEEDBACK_WITHIN,
            Task.completed_at <= now,
            VisitMessageState.feedback_requested_at.is_(None),
        )
        .order_by(Task.completed_at, Task.id)
        .limit(BATCH)
    )
    return list((await session.scalars(stmt)).all())


@dataclass(frozen=True, slots=True)
class LatestEta:
    """The newest ETA change of an open visit whose customer has not been told it."""

    task: Task
    change_id: uuid.UUID
    new_eta: datetime


async def eta_changes_due(session: AsyncSession, now: datetime) -> list[LatestEta]:
    """Open visits whose newest recorded ETA (of the last 12 hours) differs from the one the
    customer was told; the rules of `services.running_late` decide whether it is news."""
    latest = (
        select(EtaChange.task_id, EtaChange.id, EtaChange.new_eta)
        .ext(distinct_on(EtaChange.task_id))
        .where(EtaChange.changed_at > now - LATE_WITHIN, EtaChange.changed_at <= now)
        .order_by(EtaChange.task_id, EtaChange.changed_at.desc(), EtaChange.id)
        .subquery()
    )
    stmt = (
        select(Task, latest.c.id, latest.c.new_eta)
        .join(latest, latest.c.task_id == Task.id)
        .outerjoin(VisitMessageState, VisitMessageState.task_id == Task.id)
        .where(
            Task.status == TaskStatus.OPEN,
            *_customer_visit,
            VisitMessageState.told_eta.is_distinct_from(latest.c.new_eta),
        )
        .order_by(Task.id)
        .limit(BATCH)
    )
    rows = (await session.execute(stmt)).all()
    return [LatestEta(task, change_id, new_eta) for task, change_id, new_eta in rows]


@dataclass(frozen=True, slots=True)
class Departure:
    """A worker driving towards the next visit of their route."""

    task: Task
    eta: datetime


async def driving_workers(
    session: AsyncSession, now: datetime
) -> list[tuple[uuid.UUID, uuid.UUID, str]]:
    """(organisation, user, time zone) of field workers driving now: a fresh fix (10 min) at
    driving speed, a shift in progress, no visit in progress."""
    stmt = (
        select(User.organization_id, User.id, User.time_zone)
        .join(LatestPosition, LatestPosition.user_id == User.id)
        .where(
            User.role == Role.FIELD,
            User.is_active,
            LatestPosition.recorded_at > now - OFFLINE_AFTER,
            LatestPosition.speed_mps >= DRIVING_MPS,
            LatestPosition.mocked.is_(False),
            select(Shift.id)
            .where(Shift.user_id == User.id, Shift.ended_at.is_(None), Shift.started_at <= now)
            .exists(),
            ~select(Task.id)
            .where(
                Task.assignee_id == User.id,
                Task.status == TaskStatus.IN_PROGRESS,
                Task.kind.in_(VISIT_KINDS),
            )
            .exists(),
        )
        .order_by(User.id)
    )
    return [(r[0], r[1], r[2]) for r in (await session.execute(stmt)).all()]


async def next_visit(
    session: AsyncSession, organization_id: uuid.UUID, user_id: uuid.UUID, zone: str, now: datetime
) -> Departure | None:
    """The first open visit of the worker's route today with its ETA, when it is a customer's
    visit that is due within two hours and not announced yet."""
    day = routing.today_in(zone, now)
    worker_day = await load_day(session, organization_id, user_id, day)
    plan = await session.get(RoutePlan, (user_id, day))
    view = routing.build_route(worker_day, plan, now)
    stop = next((s for s in view.route.stops if s.status == TaskStatus.OPEN.value), None)
    if stop is None or stop.eta is None or stop.eta - now > ON_MY_WAY_WITHIN:
        return None
    task = await session.scalar(
        select(Task)
        .outerjoin(VisitMessageState, VisitMessageState.task_id == Task.id)
        .where(
            Task.id == stop.task_id,
            Task.organization_id == organization_id,
            Task.customer_id.is_not(None),
            VisitMessageState.on_my_way_at.is_(None),
        )
    )
    return None if task is None else Departure(task, stop.eta)
