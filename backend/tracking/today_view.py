"""The worker's day as the ``/today`` page shows it: the route service's stops in driving
order (the visit in progress, then the next and the rest with ETAs; done ones apart) with the
contact phone and access notes each card needs, and the day's totals in words."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from zoneinfo import ZoneInfo

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from backend.customers.models import Contact, Site
from backend.lib.tenancy import Actor
from backend.routing import schemas
from backend.tasks.models import Task


@dataclass(frozen=True, slots=True)
class StopCard:
    """One visit on the day page."""

    stop: schemas.RouteStop
    phone: str | None
    access_notes: str | None
    is_next: bool


@dataclass(frozen=True, slots=True)
class DayView:
    """The day split the way the page shows it."""

    current: list[StopCard]
    ahead: list[StopCard]
    done: list[StopCard]
    unrouted: list[schemas.Unrouted]
    totals: schemas.RouteTotals


async def _details(
    session: AsyncSession, actor: Actor, task_ids: list[uuid.UUID]
) -> dict[uuid.UUID, tuple[str | None, str | None]]:
    """task id → (first contact phone, site access notes), within the caller's organisation."""
    if not task_ids:
        return {}
    phone = (
        select(Contact.phone)
        .where(
            Contact.customer_id == Task.customer_id,
            Contact.organization_id == actor.organization_id,
            Contact.phone.is_not(None),
        )
        .order_by(Contact.created_at, Contact.id)
        .limit(1)
        .scalar_subquery()
    )
    rows = await session.execute(
        select(Task.id, phone, Site.access_notes)
        .outerjoin(Site, Site.id == Task.site_id)
        .where(Task.id.in_(task_ids), Task.organization_id == actor.organization_id)
    )
    return {row[0]: (row[1], row[2]) for row in rows.all()}


async def day_view(session: AsyncSession, actor: Actor, route: schemas.RouteOut) -> DayView:
    """Split ``route`` (already checked visible by the route service) into cards."""
    details = await _details(session, actor, [s.task_id for s in route.stops])
    current: list[StopCard] = []
    ahead: list[StopCard] = []
    done: list[StopCard] = []
    for stop in route.stops:
        phone, notes = details.get(stop.task_id, (None, None))
        if stop.status == "in_progress":
            current.append(StopCard(stop, phone, notes, False))
        elif stop.status == "open":
            ahead.append(StopCard(stop, phone, notes, not ahead and not current))
        else:
            done.append(StopCard(stop, phone, notes, False))
    done.sort(key=lambda c: c.stop.completed_at or c.stop.started_at or route.shift_start)
    return DayView(current, ahead, done, list(route.unrouted), route.totals)


def duration(seconds: int) -> str:
    """``1 h 05 min`` / ``25 min``."""
    minutes = round(seconds / 60)
    if minutes < 60:
        return f"{minutes} min"
    return f"{minutes // 60} h {minutes % 60:02d} min"


def distance(metres: int) -> str:
    """``12.4 km`` / ``800 m``."""
    return f"{metres / 1000:.1f} km" if metres >= 1000 else f"{metres} m"


def clock_time(moment: datetime | None, zone: ZoneInfo) -> str:
    """HH:MM in ``zone``; empty for None."""
    return moment.astimezone(zone).strftime("%H:%M") if moment else ""
