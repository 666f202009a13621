"""Business rules of tasks: who sees them, creating, assigning, starting, completing.

Assigning a task to someone notifies them (outbox, same transaction). Changing the due time
restarts the SLA clock: the overdue notice and escalation may happen again for the new time.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import msgspec
from sqlalchemy import Select, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from backend.accounts.models import Role, User
from backend.audit import services as audit
from backend.customers.models import SITE_LAT, SITE_LON, Site
from backend.lib.errors import Conflict, InvalidInput, NotFound
from backend.lib.pagination import Page, keyset_asc, page_of
from backend.lib.tenancy import Actor, scope
from backend.lib.visibility import deal_visible, task_visible
from backend.notifications.services import notify
from backend.sales.models import Deal
from backend.tasks import schemas
from backend.tasks.models import ACTIVE_STATUSES, VISIT_KINDS, Task, TaskKind, TaskStatus


def _visible(actor: Actor) -> Select[Task]:
    return scope(select(Task), actor, Task.organization_id).where(task_visible(actor))


async def visible_task(
    session: AsyncSession, actor: Actor, task_id: uuid.UUID, *, for_update: bool = False
) -> Task:
    """The task if the caller may see it; 404 otherwise."""
    stmt = _visible(actor).where(Task.id == task_id)
    if for_update:
        stmt = stmt.with_for_update()
    task = await session.scalar(stmt)
    if task is None:
        raise NotFound("Task not found")
    return task


def task_out(task: Task, now: datetime) -> schemas.TaskOut:
    """The API shape of a task; ``overdue`` is judged at ``now``."""
    return schemas.TaskOut(
        id=task.id,
        kind=task.kind,
        title=task.title,
        description=task.description,
        status=task.status,
        assignee_id=task.assignee_id,
        created_by_id=task.created_by_id,
        deal_id=task.deal_id,
        customer_id=task.customer_id,
        site_id=task.site_id,
        due_at=task.due_at,
        window_start=task.window_start,
        window_end=task.window_end,
        priority=task.priority,
        outcome=task.outcome,
        overdue=is_overdue(task, now),
        started_at=task.started_at,
        completed_at=task.completed_at,
        escalate_after_minutes=task.escalate_after_minutes,
        overdue_notified_at=task.overdue_notified_at,
        escalated_at=task.escalated_at,
        created_at=task.created_at,
    )


def is_overdue(task: Task, now: datetime) -> bool:
    """An active task whose due time has passed."""
    return task.status in ACTIVE_STATUSES and task.due_at is not None and task.due_at <= now


async def list_tasks(
    session: AsyncSession,
    actor: Actor,
    *,
    now: datetime,
    assignee_id: uuid.UUID | None,
    status: TaskStatus | None,
    kind: TaskKind | None,
    deal_id: uuid.UUID | None,
    overdue: bool,
    limit: int,
    cursor: str | None,
) -> Page[schemas.TaskOut]:
    """Visible tasks, soonest due first (tasks without a due time last)."""
    stmt = _visible(actor)
    if assignee_id is not None:
        stmt = stmt.where(Task.assignee_id == assignee_id)
    if status is not None:
        stmt = stmt.where(Task.status == status)
    if kind is not None:
        stmt = stmt.where(Task.kind == kind)
    if deal_id is not None:
        stmt = stmt.where(Task.deal_id == deal_id)
    if overdue:
        stmt = stmt.where(Task.status.in_(ACTIVE_STATUSES), Task.due_at <= now)
    stmt = keyset_asc(stmt, Task.due_at, Task.id, cursor, limit)
    rows = (await session.scalars(stmt)).all()
    far = datetime.fromisoformat("9999-12-31T00:00:00+00:00")
    return page_of([task_out(t, now) for t in rows], limit, lambda t: [t.due_at or far, t.id])


@dataclass(frozen=True, slots=True)
class PlannedVisit:
    """A visit with where it happens (no site: all None)."""

    task: Task
    address: str | None
    access_notes: str | None
    lat: float | None
    lon: float | None


async def visits_between(
    session: AsyncSession, actor: Actor, assignee_id: uuid.UUID, start: datetime, end: datetime
) -> list[PlannedVisit]:
    """A visible assignee's visits planned in [start, end) (by window start, else due time),
    any visit in progress, and the visits completed in the period; in planned order."""
    planned = func.coalesce(Task.window_start, Task.due_at)
    in_period = (planned >= start) & (planned < end)
    done_in_period = (
        (Task.status == TaskStatus.DONE) & (Task.completed_at >= start) & (Task.completed_at < end)
    )
    stmt = (
        _visible(actor)
        .add_columns(
            Site.address,
            Site.access_notes,
            SITE_LAT,
            SITE_LON,
        )
        .outerjoin(Site, Site.id == Task.site_id)
        .where(
            Task.assignee_id == assignee_id,
            Task.kind.in_(VISIT_KINDS),
            (Task.status == TaskStatus.IN_PROGRESS)
            | ((Task.status == TaskStatus.OPEN) & in_period)
            | done_in_period,
        )
        .order_by(planned.nulls_last(), Task.id)
    )
    rows = (await session.execute(stmt)).all()
    return [PlannedVisit(*row) for row in rows]


async def check_assignee(
    session: AsyncSession, organization_id: uuid.UUID, user_id: uuid.UUID, field: str
) -> User:
    """An assignee must be an active user of the organisation."""
    user = await session.scalar(
        select(User).where(User.id == user_id, User.organization_id == organization_id)
    )
    if user is None or not user.is_active:
        raise InvalidInput.on(field, "no such active user in the organisation")
    return user


def _check_times(values: dict[str, Any]) -> None:
    for field in ("due_at", "window_start", "window_end"):
        moment = values.get(field)
        if moment is not None and moment.tzinfo is None:
            raise InvalidInput.on(_FIELDS[field], "needs a time zone offset")
    start, end = values.get("window_start"), values.get("window_end")
    if start is not None and end is not None and end <= start:
        raise InvalidInput.on("windowEnd", "must be after windowStart")


async def notify_assigned(session: AsyncSession, task: Task, now: datetime) -> None:
    """Tell the assignee about a task given to them (once per assignment)."""
    if task.assignee_id is None:
        return
    await notify(
        session,
        organization_id=task.organization_id,
        user_id=task.assignee_id,
        kind="task_assigned",
        title=task.title,
        body=task.description,
        link=f"/tasks/{task.id}",
        data={
            "taskId": str(task.id),
            "dealId": str(task.deal_id) if task.deal_id else None,
            "dueAt": task.due_at.isoformat() if task.due_at else None,
            "windowStart": task.window_start.isoformat() if task.window_start else None,
        },
        urgent=task.kind is TaskKind.CALL,
        dedupe_key=f"task_assigned:{task.id}:{task.assignee_id}:{now.isoformat()}",
        now=now,
    )


async def create_task(
    session: AsyncSession, actor: Actor, data: schemas.TaskCreate, now: datetime
) -> Task:
    """Create a task by hand. Managers and admins assign to anyone they may see; field staff
    only to themselves."""
    values = msgspec.structs.asdict(data)
    _check_times(values)
    assignee = data.assignee_id or actor.user_id
    if not actor.may_see_owner(assignee):
        raise InvalidInput.on("assigneeId", "you cannot assign work to this user")
    await check_assignee(session, actor.organization_id, assignee, "assigneeId")
    customer_id, site_id = data.customer_id, data.site_id
    if data.deal_id is not None:
        deal = await session.scalar(
            scope(select(Deal), actor, Deal.organization_id).where(
                Deal.id == data.deal_id, deal_visible(actor)
            )
        )
        if deal is None:
            raise InvalidInput.on("dealId", "no such deal")
        customer_id = customer_id or deal.customer_id
        site_id = site_id or deal.site_id
    if site_id is not None:
        site_customer = await session.scalar(
            select(Site.customer_id).where(
                Site.id == site_id, Site.organization_id == actor.organization_id
            )
        )
        if site_customer is None or (customer_id is not None and site_customer != customer_id):
            raise InvalidInput.on("siteId", "no such site of this customer")
        customer_id = site_customer
    task = Task(
        id=uuid.uuid4(),
        organization_id=actor.organization_id,
        kind=data.kind,
        title=data.title,
        description=data.description,
        assignee_id=assignee,
        created_by_id=actor.user_id,
        deal_id=data.deal_id,
        customer_id=customer_id,
        site_id=site_id,
        due_at=data.due_at,
        window_start=data.window_start,
        window_end=data.window_end,
        priority=data.priority,
        escalate_after_minutes=data.escalate_after_minutes,
    )
    session.add(task)
    await session.flush()
    if assignee != actor.user_id:
        await notify_assigned(session, task, now)
    await audit.record(
        session,
        organization_id=actor.organization_id,
        entity="task",
        entity_id=task.id,
        action="created",
        actor_id=actor.user_id,
        at=now,
    )
    return task


_FIELDS = {
    "title": "title",
    "description": "description",
    "assignee_id": "assigneeId",
    "due_at": "dueAt",
    "window_start": "windowStart",
    "window_end": "windowEnd",
    "priority": "priority",
    "escalate_after_minutes": "escalateAfterMinutes",
}


async def update_task(
    session: AsyncSession,
    actor: Actor,
    task_id: uuid.UUID,
    data: schemas.TaskUpdate,
    now: datetime,
) -> Task:
    """Change an open task. Field staff may not hand their work to someone else."""
    task = await visible_task(session, actor, task_id, for_update=True)
    if task.status not in ACTIVE_STATUSES:
        raise Conflict("The task is closed")
    changes = {k: v for k, v in msgspec.structs.asdict(data).items() if v is not msgspec.UNSET}
    merged = {f: getattr(task, f) for f in ("due_at", "window_start", "window_end")} | changes
    _check_times(merged)
    before = {field: getattr(task, field) for field in changes}
    if "assignee_id" in changes and changes["assignee_id"] != task.assignee_id:
        new = changes["assignee_id"]
        if actor.role is Role.FIELD:
            raise InvalidInput.on("assigneeId", "field staff cannot reassign tasks")
        if new is not None:
            if not actor.may_see_owner(new):
                raise InvalidInput.on("assigneeId", "you cannot assign work to this user")
            await check_assignee(session, actor.organization_id, new, "assigneeId")
    for field, value in changes.items():
        setattr(task, field, value)
    if "due_at" in changes and before["due_at"] != task.due_at:
        task.overdue_notified_at = None
        task.escalate_at = None
        task.escalated_at = None
    await session.flush()
    if "assignee_id" in changes and before["assignee_id"] != task.assignee_id:
        await notify_assigned(session, task, now)
    await audit.record(
        session,
        organization_id=actor.organization_id,
        entity="task",
        entity_id=task.id,
        action="updated",
        actor_id=actor.user_id,
        at=now,
        changes=audit.diff(before, changes),
    )
    return task


async def _own_active(session: AsyncSession, actor: Actor, task_id: uuid.UUID) -> Task:
    task = await visible_task(session, actor, task_id, for_update=True)
    if task.status not in ACTIVE_STATUSES:
        raise Conflict(f"The task is already {task.status.value}")
    if actor.role is Role.FIELD and task.assignee_id != actor.user_id:
        raise InvalidInput.on("taskId", "only the assignee can work on this task")
    return task


async def start_task(
    session: AsyncSession, actor: Actor, task_id: uuid.UUID, now: datetime
) -> Task:
    """Mark the task in progress (e.g. on arrival)."""
    task = await _own_active(session, actor, task_id)
    if task.status is TaskStatus.OPEN:
        task.status = TaskStatus.IN_PROGRESS
        task.started_at = now
        await session.flush()
    return task


async def complete_task(
    session: AsyncSession, actor: Actor, task_id: uuid.UUID, outcome: str, now: datetime
) -> Task:
    """Close the task with its outcome."""
    task = await _own_active(session, actor, task_id)
    task.status = TaskStatus.DONE
    task.outcome = outcome
    task.started_at = task.started_at or now
    task.completed_at = now
    await session.flush()
    await audit.record(
        session,
        organization_id=actor.organization_id,
        entity="task",
        entity_id=task.id,
        action="completed",
        actor_id=actor.user_id,
        at=now,
        changes={"outcome": [None, outcome]},
    )
    return task


async def cancel_task(
    session: AsyncSession, actor: Actor, task_id: uuid.UUID, reason: str, now: datetime
) -> Task:
    """Cancel an active task (managers and admins)."""
    actor.require_role(Role.ADMIN, Role.MANAGER)
    task = await _own_active(session, actor, task_id)
    task.status = TaskStatus.CANCELLED
    task.outcome = reason
    task.completed_at = now
    await session.flush()
    await audit.record(
        session,
        organization_id=actor.organization_id,
        entity="task",
        entity_id=task.id,
        action="cancelled",
        actor_id=actor.user_id,
        at=now,
        changes={"reason": [None, reason]},
    )
    return task
