"""What the public links show and take: the tracking page, the feedback form, unsubscribing.

A tracking link shows the worker's first name, the ETA and their live position only while they
are on the way (the visit is open), with the visit's site (the customer's own address) on the
map. Once they checked in (visit in progress) it says they have arrived and shows no position;
once the visit is over (done or cancelled) the link is expired and shows nothing. Positions
older than 10 minutes are not shown.
"""

from __future__ import annotations

import enum
import uuid
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from backend.accounts.models import Organization, User
from backend.customers.models import SITE_LAT, SITE_LON, Site
from backend.lib.errors import InvalidInput
from backend.notifications.customer import links, render, services
from backend.notifications.customer.models import (
    CustomerLink,
    LinkPurpose,
    VisitFeedback,
    VisitMessageState,
)
from backend.routing.models import RoutePlan
from backend.routing.services import today_in
from backend.tasks.models import Task, TaskStatus
from backend.tracking.livecache import OFFLINE_AFTER
from backend.tracking.models import LatestPosition

MAX_COMMENT = 2000


class TrackingStatus(enum.StrEnum):
    """Where the visit stands, as the customer may know it."""

    EN_ROUTE = "en_route"
    ARRIVED = "arrived"
    EXPIRED = "expired"


@dataclass(frozen=True, slots=True)
class Position:
    lat: float
    lon: float
    recorded_at: datetime


@dataclass(frozen=True, slots=True)
class TrackingView:
    """Everything a tracking page may show (nothing but the status once expired)."""

    status: TrackingStatus
    language: str
    time_zone: str
    company: str = ""
    worker: str = ""
    eta: datetime | None = None
    position: Position | None = None
    site: tuple[float, float] | None = None


async def _org(session: AsyncSession, organization_id: uuid.UUID) -> Organization:
    org = await session.get(Organization, organization_id)
    assert org is not None
    return org


async def _eta(session: AsyncSession, task: Task, worker: User, now: datetime) -> datetime | None:
    plan = await session.get(RoutePlan, (worker.id, today_in(worker.time_zone, now)))
    published = plan.etas.get(str(task.id)) if plan is not None else None
    if published:
        return datetime.fromisoformat(published)
    return await session.scalar(
        select(VisitMessageState.told_eta).where(VisitMessageState.task_id == task.id)
    )


async def tracking_view(session: AsyncSession, token: str, now: datetime) -> TrackingView | None:
    """The tracking page's content; None for an unknown, revoked or timed-out link."""
    link = await links.find_link(session, token, LinkPurpose.TRACKING, now)
    if link is None or link.task_id is None:
        return None
    task = await session.get(Task, link.task_id)
    org = await _org(session, link.organization_id)
    lang = render.language_of(org.locale)
    worker = await session.get(User, task.assignee_id) if task and task.assignee_id else None
    if task is None or worker is None or task.status in (TaskStatus.DONE, TaskStatus.CANCELLED):
        return TrackingView(TrackingStatus.EXPIRED, lang, org.time_zone)
    name = services.first_name(worker.full_name)
    if task.status is TaskStatus.IN_PROGRESS:
        return TrackingView(TrackingStatus.ARRIVED, lang, org.time_zone, org.name, name)
    fix = await session.get(LatestPosition, worker.id)
    position = None
    if fix is not None and fix.recorded_at > now - OFFLINE_AFTER:
        position = Position(fix.lat, fix.lon, fix.recorded_at)
    site = None
    if task.site_id is not None:
        point = (
            await session.execute(
                select(SITE_LAT, SITE_LON).where(
                    Site.id == task.site_id, Site.organization_id == task.organization_id
                )
            )
        ).first()
        site = (float(point[0]), float(point[1])) if point else None
    return TrackingView(
        TrackingStatus.EN_ROUTE,
        lang,
        org.time_zone,
        org.name,
        name,
        await _eta(session, task, worker, now),
        position,
        site,
    )


@dataclass(frozen=True, slots=True)
class FeedbackForm:
    """A feedback link that works, with what its page needs."""

    link: CustomerLink
    task_id: uuid.UUID
    company: str
    language: str
    submitted: bool


async def feedback_form(session: AsyncSession, token: str, now: datetime) -> FeedbackForm | None:
    """The feedback link of ``token``; None when unknown, revoked or expired."""
    link = await links.find_link(session, token, LinkPurpose.FEEDBACK, now)
    if link is None or link.task_id is None:
        return None
    org = await _org(session, link.organization_id)
    submitted = await session.scalar(
        select(VisitFeedback.id).where(VisitFeedback.task_id == link.task_id)
    )
    return FeedbackForm(
        link, link.task_id, org.name, render.language_of(org.locale), submitted is not None
    )


def parse_feedback(values: dict[str, str]) -> tuple[int, str | None]:
    """The rating (1-5) and comment of a posted form; InvalidInput on the field at fault."""
    raw = (values.get("rating") or "").strip()
    if not raw.isdigit() or not 1 <= int(raw) <= 5:
        raise InvalidInput.on("rating", "choose a rating from 1 to 5")
    comment = (values.get("comment") or "").strip()
    if len(comment) > MAX_COMMENT:
        raise InvalidInput.on("comment", f"at most {MAX_COMMENT} characters")
    if "\x00" in comment:
        raise InvalidInput.on("comment", "contains a NUL character")
    return int(raw), comment or None


async def store_feedback(
    session: AsyncSession, form: FeedbackForm, rating: int, comment: str | None, now: datetime
) -> bool:
    """Store the visit's feedback; False when it was given before (one per visit)."""
    stored = await session.scalar(
        insert(VisitFeedback)
        .values(
            organization_id=form.link.organization_id,
            task_id=form.task_id,
            rating=rating,
            comment=comment,
            submitted_at=now,
        )
        .on_conflict_do_nothing(index_elements=[VisitFeedback.task_id])
        .returning(VisitFeedback.id)
    )
    return stored is not None


@dataclass(frozen=True, slots=True)
class UnsubscribeLink:
    """An unsubscribe link that works."""

    link: CustomerLink
    company: str
    language: str


async def unsubscribe_link(
    session: AsyncSession, token: str, now: datetime
) -> UnsubscribeLink | None:
    """The unsubscribe link of ``token``; None when unknown or expired."""
    link = await links.find_link(session, token, LinkPurpose.UNSUBSCRIBE, now)
    if link is None or link.address is None or link.channel is None:
        return None
    org = await _org(session, link.organization_id)
    return UnsubscribeLink(link, org.name, render.language_of(org.locale))


async def confirm_unsubscribe(session: AsyncSession, found: UnsubscribeLink, now: datetime) -> None:
    """No more messages to the link's address from its organisation."""
    link = found.link
    assert link.channel is not None
    assert link.address is not None
    await services.unsubscribe(session, link.organization_id, link.channel, link.address, now)
