"""Staff actions on a visit's customer messages: the worker's "on my way", revoking the
tracking link, reading the customer's feedback."""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from backend.accounts.models import Role
from backend.lib.errors import Conflict, Forbidden, InvalidInput, NotFound
from backend.lib.tenancy import Actor
from backend.notifications.customer import links, schemas, services
from backend.notifications.customer.models import LinkPurpose, VisitFeedback
from backend.routing import services as routing
from backend.tasks import services as tasks
from backend.tasks.models import VISIT_KINDS, Task, TaskStatus


async def _route_eta(session: AsyncSession, actor: Actor, task: Task, now: datetime) -> datetime:
    assert task.assignee_id is not None
    day = routing.today_in(actor.time_zone, now)
    view = await routing.get_route(session, actor, task.assignee_id, day, now)
    stop = next((s for s in view.route.stops if s.task_id == task.id), None)
    if stop is None or stop.eta is None:
        raise InvalidInput.on(
            "etaMinutes", "no ETA is known for this visit today (no site or not today): send it"
        )
    return stop.eta


async def announce(
    session: AsyncSession,
    actor: Actor,
    task_id: uuid.UUID,
    data: schemas.OnMyWayIn,
    now: datetime,
    base_url: str,
) -> schemas.OnMyWayOut:
    """The assignee sets off to an open visit: the customer gets the ETA and a tracking link
    (once; again only after the link was revoked or ran out)."""
    task = await tasks.visible_task(session, actor, task_id, for_update=True)
    if task.assignee_id != actor.user_id:
        raise Forbidden("Only the visit's assignee can say they are on the way")
    if task.kind not in VISIT_KINDS:
        raise InvalidInput.on("taskId", "only visits (measurement, installation, visit)")
    if task.status is not TaskStatus.OPEN:
        raise Conflict(f"The visit is {task.status.value}")
    if task.customer_id is None:
        raise InvalidInput.on("taskId", "the visit has no customer to tell")
    if data.eta_minutes is not None:
        eta = now + timedelta(minutes=data.eta_minutes)
    else:
        eta = await _route_eta(session, actor, task, now)
    outcome = await services.on_my_way(session, task, eta, now, base_url, explicit=True)
    return schemas.OnMyWayOut(status=outcome.value, eta=eta)


async def revoke_tracking(
    session: AsyncSession, actor: Actor, task_id: uuid.UUID, now: datetime
) -> schemas.RevokedOut:
    """Stop the visit's tracking links (the assignee, the team's manager, admins)."""
    task = await tasks.visible_task(session, actor, task_id, for_update=True)
    if actor.role is Role.FIELD and task.assignee_id != actor.user_id:
        raise Forbidden("Only the assignee, their manager or an admin can revoke the link")
    revoked = await links.revoke_links(session, task.id, LinkPurpose.TRACKING, now)
    return schemas.RevokedOut(revoked=revoked)


async def feedback_of(
    session: AsyncSession, actor: Actor, task_id: uuid.UUID
) -> schemas.FeedbackOut:
    """The customer's feedback on a visit the caller may see; 404 when there is none."""
    task = await tasks.visible_task(session, actor, task_id)
    row = await session.scalar(
        select(VisitFeedback).where(
            VisitFeedback.task_id == task.id,
            VisitFeedback.organization_id == actor.organization_id,
        )
    )
    if row is None:
        raise NotFound("No feedback on this visit yet")
    return schemas.FeedbackOut(
        task_id=row.task_id, rating=row.rating, comment=row.comment, submitted_at=row.submitted_at
    )
