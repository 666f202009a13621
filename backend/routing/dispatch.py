"""Team dispatch: plan a team's day (preview), then assign it (apply, once).

Preview: the team's field workers with their working window that day (scheduled shift, else
08:00-20:00; a worker whose schedule has no shift that day is off), skills and base; the visits
already theirs that day stay theirs (pinned to the worker); every open, unassigned measurement,
installation or visit planned that day (or not planned at all) is a candidate, done by a worker
with the skill its kind needs (measurement: measurer, installation: installer) within its time
window. Candidates are optional with a value in metres of driving (``value_of``): deal amount,
priority and an SLA deadline that day raise it, so when not everything fits the least valuable
are left out, each listed with the reason. The plan is stored.

Apply: assigns each planned candidate that is still open and unassigned (others are skipped
and listed), tells each assignee through the outbox, and stores the result; applying again
answers the stored result without doing anything (idempotent).
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from decimal import Decimal
from typing import Any

import msgspec
from sqlalchemy import case, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from backend.accounts.models import Organization, Role, Team, TeamMember, User
from backend.audit.services import record
from backend.lib.errors import Conflict, NotFound
from backend.lib.tenancy import Actor
from backend.routing import schemas
from backend.routing.day import (
    PLANNED,
    DayVisit,
    load_visits,
    local_bounds,
    seconds_since,
    visit_of,
    visit_select,
    worker_day,
)
from backend.routing.models import DispatchPlan
from backend.routing.plans import SKILL_OF_KIND
from backend.sales.models import Deal
from backend.tasks.models import VISIT_KINDS, Task, TaskStatus
from backend.tasks.services import notify_assigned
from backend.tracking import schedule
from backend.tracking.models import ShiftSchedule
from geo import vrp
from geo.travel import Location, travel_matrix

MAX_CANDIDATES = 500
# Values in metres of driving: any visit that fits is worth more than a day's driving, so only
# what cannot fit is left out, and then the least valuable.
BASE_VALUE = 1_000_000  # a visit is worth 1,000 km...
PRIORITY_VALUE = 100_000  # ... plus 100 km per priority step ...
SLA_VALUE = 300_000  # ... plus 300 km when its deadline is that day ...
DEAL_VALUE_PER_UNIT = Decimal(1)  # ... plus 1 m per unit of the deal's amount ...
DEAL_VALUE_CAP = 500_000  # ... up to 500 km.
PREVIEW_TTL = timedelta(hours=24)


@dataclass(frozen=True, slots=True)
class Candidate:
    """An unassigned visit the plan may give to someone."""

    visit: DayVisit
    priority: int
    amount: Decimal | None

    def value(self, day_end: datetime) -> int:
        """What doing it is worth, in metres of driving (see the module's docstring)."""
        return value_of(self.priority, self.amount, self.visit.due_at, day_end)


def value_of(
    priority: int, amount: Decimal | None, due_at: datetime | None, day_end: datetime
) -> int:
    """The value of a candidate: base + priority + SLA deadline that day + deal amount."""
    value = BASE_VALUE + PRIORITY_VALUE * max(priority, 0)
    if due_at is not None and due_at < day_end:
        value += SLA_VALUE
    if amount is not None and amount > 0:
        value += min(int(amount * DEAL_VALUE_PER_UNIT), DEAL_VALUE_CAP)
    return value


async def _team(session: AsyncSession, actor: Actor, team_id: uuid.UUID) -> Team:
    team = await session.scalar(
        select(Team).where(Team.id == team_id, Team.organization_id == actor.organization_id)
    )
    if team is None or (actor.role is not Role.ADMIN and team.lead_id != actor.user_id):
        raise NotFound("Team not found")
    return team


async def _candidates(
    session: AsyncSession, organization_id: uuid.UUID, start: datetime, end: datetime
) -> list[Candidate]:
    rows = await session.execute(
        visit_select(Task.priority, Deal.amount)
        .outerjoin(Deal, Deal.id == Task.deal_id)
        .where(
            Task.organization_id == organization_id,
            Task.assignee_id.is_(None),
            Task.status == TaskStatus.OPEN,
            Task.kind.in_(VISIT_KINDS),
            Task.site_id.is_not(None),
            or_(PLANNED.is_(None), (PLANNED >= start) & (PLANNED < end)),
        )
        .order_by(PLANNED.nulls_last(), Task.id)
        .limit(MAX_CANDIDATES)
    )
    return [Candidate(visit_of(r), r[-2], r[-1]) for r in rows.all()]


async def preview(
    session: AsyncSession,
    actor: Actor,
    team_id: uuid.UUID,
    day: date,
    now: datetime,
    *,
    osrm_url: str | None,
    budget_s: float,
) -> schemas.DispatchOut:
    """Plan the team's day and store the plan (see the module's docstring)."""
    actor.require_role(Role.ADMIN, Role.MANAGER)
    team = await _team(session, actor, team_id)
    org_tz = await session.scalar(
        select(Organization.time_zone).where(Organization.id == actor.organization_id)
    )
    assert org_tz is not None
    start, end = local_bounds(day, org_tz)
    rows = (
        await session.execute(
            select(User, ShiftSchedule.schedule)
            .join(TeamMember, TeamMember.user_id == User.id)
            .outerjoin(ShiftSchedule, ShiftSchedule.user_id == User.id)
            .where(TeamMember.team_id == team.id, User.is_active, User.role == Role.FIELD)
            .order_by(User.full_name, User.id)
        )
    ).all()
    off = [u.id for u, raw in rows if raw and not _works(raw, u.time_zone, day)]
    members = [(u, raw) for u, raw in rows if u.id not in off]
    existing = await load_visits(
        session, actor.organization_id, [u.id for u, _ in members], org_tz, day
    )
    candidates = await _candidates(session, actor.organization_id, start, end)
    days = [worker_day(u, day, raw, (None, None, None), existing[u.id]) for u, raw in members]

    places: list[Location] = []

    def place(lat: float, lon: float) -> int:
        places.append(Location(lat, lon))
        return len(places) - 1

    all_sites = [v for d in days for v in d.visits if v.routable] + [c.visit for c in candidates]
    # Workers without a base start and end at the middle of the day's sites.
    points = [v.point for v in all_sites] or [(0.0, 0.0)]
    centre = (sum(p[0] for p in points) / len(points), sum(p[1] for p in points) / len(points))
    workers: list[vrp.Worker] = []
    for d in days:
        home = place(*(d.base or centre))
        workers.append(
            vrp.Worker(
                str(d.user_id),
                start=home,
                end=home,
                skills=d.skills,
                shift=(
                    seconds_since(start, d.shift_start),
                    seconds_since(start, d.shift_end),
                ),
            )
        )
    visits: list[vrp.Visit] = []
    for d in days:
        for v in d.visits:
            if v.routable and v.status is not TaskStatus.DONE:
                visits.append(
                    vrp.Visit(
                        str(v.task_id),
                        place(*v.point),
                        service_s=v.service_s,
                        window=v.window_s(start),
                        pinned_worker=str(d.user_id),
                    )
                )
    values: dict[str, int] = {}
    for c in candidates:
        v = c.visit
        skill = SKILL_OF_KIND.get(v.kind)
        values[str(v.task_id)] = c.value(end)
        visits.append(
            vrp.Visit(
                str(v.task_id),
                place(*v.point),
                service_s=v.service_s,
                window=v.window_s(start),
                required=False,
                value=values[str(v.task_id)],
                skills=frozenset({skill}) if skill else frozenset(),
            )
        )
    plan: vrp.Plan | None = None
    if workers and visits:
        matrices = travel_matrix(places, 9, osrm_url=osrm_url)
        plan = await asyncio.to_thread(
            vrp.solve, visits, workers, matrices, seed=0, budget_s=budget_s, no_improvement=3000
        )
    out = _out(team.id, day, now, start, members, days, candidates, values, plan, off)
    row = DispatchPlan(
        id=out.id,
        organization_id=actor.organization_id,
        team_id=team.id,
        day=day,
        created_by_id=actor.user_id,
        preview=msgspec.to_builtins(out),
    )
    session.add(row)
    await session.flush()
    return out


def _works(raw: dict[str, Any], tz: str, day: date) -> bool:
    start, end = local_bounds(day, tz)
    return bool(schedule.windows(schedule.parse_weekly_shifts(raw), tz, start, end))


def _out(
    team_id: uuid.UUID,
    day: date,
    now: datetime,
    origin: datetime,
    members: Sequence[tuple[User, Any]],
    days: Sequence[Any],
    candidates: Sequence[Candidate],
    values: dict[str, int],
    plan: vrp.Plan | None,
    off: list[uuid.UUID],
) -> schemas.DispatchOut:
    titles = {str(v.task_id): (v.title, v.kind.value) for d in days for v in d.visits}
    titles |= {str(c.visit.task_id): (c.visit.title, c.visit.kind.value) for c in candidates}
    new_ids = {str(c.visit.task_id) for c in candidates}

    def at(seconds: int) -> datetime:
        return origin + timedelta(seconds=seconds)

    routes: list[schemas.DispatchRoute] = []
    planned: set[str] = set()
    for user, _ in members:
        route = plan.route_of(str(user.id)) if plan else None
        if route is None:
            continue
        stops = [
            schemas.DispatchStop(
                task_id=uuid.UUID(s.id),
                title=titles[s.id][0],
                kind=titles[s.id][1],
                new=s.id in new_ids,
                eta=at(s.arrival_s),
                start_at=at(s.start_s),
                depart_at=at(s.departure_s),
                travel_s=s.travel_s,
                distance_m=s.distance_m,
            )
            for s in route.stops
            if s.kind == "visit"
        ]
        planned |= {s.id for s in route.stops}
        routes.append(
            schemas.DispatchRoute(
                user_id=user.id,
                name=user.full_name,
                stops=stops,
                distance_m=route.distance_m,
                travel_s=route.travel_s,
                ends_at=at(route.return_s),
            )
        )
    reasons = {u.visit_id: u.reason for u in plan.unassigned} if plan else {}
    left_out = sorted(
        (
            schemas.DispatchLeftOut(
                task_id=c.visit.task_id,
                title=c.visit.title,
                value=values[str(c.visit.task_id)],
                reason=reasons.get(str(c.visit.task_id), "no field worker works that day"),
            )
            for c in candidates
            if str(c.visit.task_id) not in planned
        ),
        key=lambda x: (x.value, str(x.task_id)),
    )
    return schemas.DispatchOut(
        id=uuid.uuid4(),
        team_id=team_id,
        date=day,
        status="preview",
        created_at=now,
        routes=routes,
        left_out=left_out,
        off=off,
        distance_m=sum(r.distance_m for r in routes),
    )


async def get_plan(session: AsyncSession, actor: Actor, plan_id: uuid.UUID) -> schemas.DispatchOut:
    """A stored plan (preview or applied) of a team the caller leads (admins: any)."""
    row = await _plan(session, actor, plan_id, lock=False)
    return _stored(row)


async def _plan(
    session: AsyncSession, actor: Actor, plan_id: uuid.UUID, *, lock: bool
) -> DispatchPlan:
    actor.require_role(Role.ADMIN, Role.MANAGER)
    stmt = select(DispatchPlan).where(
        DispatchPlan.id == plan_id, DispatchPlan.organization_id == actor.organization_id
    )
    row = await session.scalar(stmt.with_for_update() if lock else stmt)
    if row is None:
        raise NotFound("Dispatch plan not found")
    await _team(session, actor, row.team_id)
    return row


def _stored(row: DispatchPlan) -> schemas.DispatchOut:
    data = dict(row.preview)
    if row.result is not None:
        data |= row.result
    return msgspec.convert(data, schemas.DispatchOut)


async def apply(
    session: AsyncSession, actor: Actor, plan_id: uuid.UUID, now: datetime
) -> schemas.DispatchOut:
    """Assign the planned new visits (once; see the module's docstring)."""
    row = await _plan(session, actor, plan_id, lock=True)
    if row.applied_at is not None:
        return _stored(row)
    if now - row.created_at > PREVIEW_TTL:
        raise Conflict("The preview is older than a day: plan the day again")
    preview = _stored(row)
    planned = {
        stop.task_id: route.user_id for route in preview.routes for stop in route.stops if stop.new
    }
    assigned = {
        task.id: task
        for task in await session.scalars(
            update(Task)
            .where(
                Task.id.in_(planned),
                Task.organization_id == actor.organization_id,
                Task.assignee_id.is_(None),
                Task.status == TaskStatus.OPEN,
            )
            .values(assignee_id=case(planned, value=Task.id), updated_at=now)
            .returning(Task),
            execution_options={"synchronize_session": False},
        )
    }
    applied: list[dict[str, str]] = []
    skipped: list[dict[str, str]] = []
    for task_id, user_id in planned.items():
        item = {"taskId": str(task_id), "userId": str(user_id)}
        task = assigned.get(task_id)
        if task is None:
            skipped.append(item | {"reason": "assigned or closed since the preview"})
            continue
        applied.append(item)
        await notify_assigned(session, task, now)
    result = {
        "status": "applied",
        "appliedAt": now.isoformat(),
        "applied": applied,
        "skipped": skipped,
    }
    row.result, row.applied_at, row.applied_by_id = result, now, actor.user_id
    await record(
        session,
        organization_id=actor.organization_id,
        entity="dispatch_plan",
        entity_id=row.id,
        action="applied",
        actor_id=actor.user_id,
        at=now,
        changes={"assigned": len(applied), "skipped": len(skipped)},
    )
    await session.flush()
    return _stored(row)
