"""Choosing who does one new visit by their routes (the stage automations' ``"pick": "route"``).

For a visit with a time window, the day is the window's local date; for one without, the first
of the next `LOOKAHEAD_DAYS` days (from today) on which someone can take it. On that day each
candidate's route (their visits in planned order, from their base) gets the new visit at its
cheapest place (``geo.routes.best_insertion``: the visit within its window, no other visit made
later, back within the shift): the worker whose day grows least gets it. None when the visit
has no site or fits nobody's day — the caller falls back to the fewest open tasks.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import date, datetime, timedelta

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from backend.accounts.models import User
from backend.customers.models import SITE_LAT, SITE_LON, Site
from backend.lib.wallclock import zone_of
from backend.routing.day import SERVICE_S, WorkerDay, load_visits, seconds_since, worker_day
from backend.tasks.models import TaskKind, TaskStatus
from backend.tracking.models import ShiftSchedule
from geo import routes, vrp
from geo.travel import Location, matrix

LOOKAHEAD_DAYS = 7


def _insert(
    days: Sequence[WorkerDay],
    site: tuple[float, float],
    kind: TaskKind,
    window: tuple[datetime, datetime] | None,
) -> uuid.UUID | None:
    origin = days[0].midnight
    places = [Location(*site)]
    workers: list[vrp.Worker] = []
    orders: list[list[vrp.Visit]] = []
    for d in days:
        places.append(Location(*(d.base or site)))
        home = len(places) - 1
        order: list[vrp.Visit] = []
        for v in d.visits:
            if v.status is not TaskStatus.OPEN or not v.routable:
                continue
            places.append(Location(*v.point))
            order.append(
                vrp.Visit(str(v.task_id), len(places) - 1, v.service_s, v.window_s(origin))
            )
        workers.append(
            vrp.Worker(
                str(d.user_id),
                start=home,
                end=home,
                shift=(seconds_since(origin, d.shift_start), seconds_since(origin, d.shift_end)),
            )
        )
        orders.append(order)
    new = vrp.Visit(
        "new",
        0,
        service_s=SERVICE_S.get(kind, 1800),
        window=None
        if window is None
        else (seconds_since(origin, window[0]), seconds_since(origin, window[1])),
    )
    found = routes.best_insertion(new, workers, orders, matrix(places))
    return None if found is None else uuid.UUID(found.worker_id)


async def best_worker(
    session: AsyncSession,
    organization_id: uuid.UUID,
    candidates: Sequence[uuid.UUID],
    *,
    site_id: uuid.UUID | None,
    kind: TaskKind,
    window: tuple[datetime, datetime] | None,
    time_zone: str,
    now: datetime,
) -> uuid.UUID | None:
    """The candidate whose route takes the visit at least cost (see the module's docstring)."""
    if site_id is None or not candidates:
        return None
    site = (await session.execute(select(SITE_LAT, SITE_LON).where(Site.id == site_id))).first()
    if site is None:
        return None
    users = (
        await session.execute(
            select(User, ShiftSchedule.schedule)
            .outerjoin(ShiftSchedule, ShiftSchedule.user_id == User.id)
            .where(User.id.in_(candidates), User.organization_id == organization_id)
            .order_by(User.id)
        )
    ).all()
    zone = zone_of(time_zone)
    first: date = (window[0] if window else now).astimezone(zone).date()
    for offset in range(1 if window else LOOKAHEAD_DAYS):
        day = first + timedelta(days=offset)
        visits = await load_visits(
            session, organization_id, [u.id for u, _ in users], time_zone, day
        )
        days = [worker_day(u, day, raw, (None, None, None), visits[u.id]) for u, raw in users]
        chosen = _insert(days, (float(site[0]), float(site[1])), kind, window)
        if chosen is not None:
            return chosen
    return None
