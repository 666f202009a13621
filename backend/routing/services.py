"""Day routes: what a worker (or their manager) sees, the background re-optimisation, and the
re-plan that records moved ETAs.

Reading a route never solves: it takes the stored order (``route_plans``) when it was optimised
for the day's current visits, else a quick order, and says whether it needs optimising
(`RouteView.stale`). The caller then runs `reoptimise` after answering (the API does it in a
background task; the worker's `refresh_routes` job does it for the day's routes nobody read).
"""

from __future__ import annotations

import asyncio
import uuid
from dataclasses import dataclass
from datetime import date, datetime, timedelta

from sqlalchemy import func, select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from backend.accounts.models import Role, User
from backend.lib.errors import NotFound
from backend.lib.tenancy import Actor
from backend.lib.wallclock import zone_of
from backend.routing import plans, schemas
from backend.routing.day import WorkerDay, load_day, signature
from backend.routing.models import EtaChange, RoutePlan
from backend.tasks.models import VISIT_KINDS, Task, TaskStatus

# ETAs that move less than this are not recorded as changes (a few minutes is GPS noise).
ETA_CHANGE_MIN = timedelta(minutes=5)
SOLVE_BUDGET_S = 2.0


@dataclass(frozen=True, slots=True)
class RouteView:
    """A route as answered, and whether its order should be re-optimised."""

    route: schemas.RouteOut
    stale: bool


def _totals(stops: list[schemas.RouteStop], back_s: int) -> schemas.RouteTotals:
    open_stops = [s for s in stops if s.status == TaskStatus.OPEN.value]
    last = open_stops[-1].depart_at if open_stops else None
    return schemas.RouteTotals(
        visits=len(stops),
        done=sum(s.status == TaskStatus.DONE.value for s in stops),
        remaining=len(open_stops),
        travel_s=sum(s.travel_s for s in stops) + back_s,
        distance_m=sum(s.distance_m for s in stops),
        service_s=sum(s.service_s for s in open_stops),
        wait_s=sum(s.wait_s for s in stops),
        late_visits=sum(s.late_s > 0 for s in stops),
        ends_at=None if last is None else last + timedelta(seconds=back_s),
    )


def build_route(day: WorkerDay, plan: RoutePlan | None, now: datetime) -> RouteView:
    """The route of `day` from the stored `plan` (when any), timed from now."""
    current = signature(day.visits)
    fresh = plan is not None and plan.signature == current
    start, stops, back_s = plans.route(
        day, now, plan.task_ids if plan else [], plan.legs if plan else {}
    )
    unrouted = [
        schemas.Unrouted(task_id=v.task_id, title=v.title, reason="the task has no site")
        for v in day.visits
        if not v.routable
    ]
    has_open = any(s.status == TaskStatus.OPEN.value for s in stops)
    route = schemas.RouteOut(
        user_id=day.user_id,
        date=day.day,
        time_zone=day.time_zone,
        shift_start=day.shift_start,
        shift_end=day.shift_end,
        optimised=(fresh and bool(plan and plan.optimised)) or not has_open,
        solved_at=plan.solved_at if plan else None,
        start=start,
        stops=stops,
        unrouted=unrouted,
        totals=_totals(stops, back_s),
        geometry=plans.line(start, stops),
    )
    return RouteView(route, stale=has_open and not fresh)


def today_in(time_zone: str, now: datetime) -> date:
    """Today's date in a time zone."""
    return now.astimezone(zone_of(time_zone)).date()


async def get_route(
    session: AsyncSession, actor: Actor, user_id: uuid.UUID, day: date, now: datetime
) -> RouteView:
    """A worker's day as a route: for the worker, their teams' managers and admins."""
    if not actor.may_see_owner(user_id):
        raise NotFound("User not found")
    worker_day = await load_day(session, actor.organization_id, user_id, day)
    plan = await session.get(RoutePlan, (user_id, day))
    return build_route(worker_day, plan, now)


_solving: set[tuple[uuid.UUID, date]] = set()


async def reoptimise(
    sessionmaker: async_sessionmaker[AsyncSession],
    organization_id: uuid.UUID,
    user_id: uuid.UUID,
    day: date,
    now: datetime,
    *,
    osrm_url: str | None,
    budget_s: float = SOLVE_BUDGET_S,
) -> bool:
    """Optimise the order of a worker's day and store it (no transaction is held while the
    solver runs). False when another solve of the same day runs in this process or the day
    changed while solving (the next look starts another)."""
    key = (user_id, day)
    if key in _solving:
        return False
    _solving.add(key)
    try:
        async with sessionmaker() as session:
            worker_day = await load_day(session, organization_id, user_id, day)
            await session.rollback()
        solved = await asyncio.to_thread(
            plans.optimise, worker_day, now, osrm_url=osrm_url, budget_s=budget_s
        )
        async with sessionmaker() as session, session.begin():
            latest = await load_day(session, organization_id, user_id, day)
            if signature(latest.visits) != signature(worker_day.visits):
                return False
            await store_plan(session, worker_day, solved, now)
        return True
    finally:
        _solving.discard(key)


async def store_plan(
    session: AsyncSession, day: WorkerDay, solved: plans.Optimised, now: datetime
) -> None:
    """Upsert the optimised order of `day` (the published ETAs are kept)."""
    values = {
        "signature": signature(day.visits),
        "task_ids": solved.task_ids,
        "legs": solved.legs,
        "optimised": True,
        "solved_at": now,
    }
    await session.execute(
        insert(RoutePlan)
        .values(
            user_id=day.user_id, day=day.day, organization_id=day.organization_id, etas={}, **values
        )
        .on_conflict_do_update(index_elements=[RoutePlan.user_id, RoutePlan.day], set_=values)
    )


async def record_eta_changes(
    session: AsyncSession, day: WorkerDay, route: schemas.RouteOut, now: datetime
) -> list[EtaChange]:
    """Compare the open visits' ETAs with the last published ones: each that moved by
    `ETA_CHANGE_MIN` or more is recorded as an `EtaChange` and published; new ones are
    published. (The customer's "running late" message reads these.)"""
    plan = await session.get(RoutePlan, (day.user_id, day.day), with_for_update=True)
    if plan is None:
        plan = RoutePlan(
            user_id=day.user_id,
            day=day.day,
            organization_id=day.organization_id,
            signature="",
            task_ids=[],
            legs={},
            etas={},
            optimised=False,
            solved_at=now,
        )
        session.add(plan)
    published = dict(plan.etas)
    changes: list[EtaChange] = []
    for stop in route.stops:
        if stop.status != TaskStatus.OPEN.value or stop.eta is None:
            continue
        key = str(stop.task_id)
        before = published.get(key)
        if before is None:
            published[key] = stop.eta.isoformat()
            continue
        previous = datetime.fromisoformat(before)
        if abs(stop.eta - previous) >= ETA_CHANGE_MIN:
            changes.append(
                EtaChange(
                    id=uuid.uuid4(),
                    organization_id=day.organization_id,
                    task_id=stop.task_id,
                    user_id=day.user_id,
                    previous_eta=previous,
                    new_eta=stop.eta,
                    delta_s=int((stop.eta - previous).total_seconds()),
                    changed_at=now,
                )
            )
            published[key] = stop.eta.isoformat()
    plan.etas = published
    session.add_all(changes)
    await session.flush()
    return changes


async def replan(
    session: AsyncSession, organization_id: uuid.UUID, user_id: uuid.UUID, day: date, now: datetime
) -> tuple[RouteView, list[EtaChange]]:
    """Recompute a worker's ETAs from their position and progress now and record the ones
    that moved (a visit overran, the worker is late or early)."""
    worker_day = await load_day(session, organization_id, user_id, day)
    plan = await session.get(RoutePlan, (user_id, day))
    view = build_route(worker_day, plan, now)
    return view, await record_eta_changes(session, worker_day, view.route, now)


async def workers_with_visits(
    session: AsyncSession, start: datetime, end: datetime
) -> list[tuple[uuid.UUID, uuid.UUID, str]]:
    """(organisation, user, time zone) of every field worker with an open or started visit
    planned (window start, else due time) in ``[start, end)``."""
    rows = await session.execute(
        select(User.organization_id, User.id, User.time_zone)
        .where(
            User.is_active,
            User.role == Role.FIELD,
            select(Task.id)
            .where(
                Task.assignee_id == User.id,
                Task.kind.in_(VISIT_KINDS),
                Task.status.in_((TaskStatus.OPEN, TaskStatus.IN_PROGRESS)),
                func.coalesce(Task.window_start, Task.due_at) >= start,
                func.coalesce(Task.window_start, Task.due_at) < end,
            )
            .exists(),
        )
        .order_by(User.id)
    )
    return [(r[0], r[1], r[2]) for r in rows.all()]
