"""JSON API of tasks."""

from __future__ import annotations

import uuid
from typing import Annotated

from litestar import Controller, get, patch, post
from litestar.params import Parameter, QueryParameter
from litestar.status_codes import HTTP_201_CREATED
from sqlalchemy.ext.asyncio import AsyncSession

from backend.lib.clock import Clock
from backend.lib.pagination import DEFAULT_LIMIT, Cursor, Limit, Page
from backend.lib.tenancy import Actor
from backend.tasks import schemas, services
from backend.tasks.models import TaskKind, TaskStatus


class TaskController(Controller):
    """Calls to make and visits to do."""

    path = "/api/v1/tasks"
    tags = ["tasks"]

    @get("/")
    async def list_tasks(
        self,
        db_session: AsyncSession,
        actor: Actor,
        clock: Clock,
        assignee_id: Annotated[uuid.UUID | None, QueryParameter(name="assigneeId")] = None,
        status: TaskStatus | None = None,
        kind: TaskKind | None = None,
        deal_id: Annotated[uuid.UUID | None, QueryParameter(name="dealId")] = None,
        overdue: Annotated[bool, Parameter(description="only active tasks past due")] = False,
        limit: Limit = DEFAULT_LIMIT,
        cursor: Cursor = None,
    ) -> Page[schemas.TaskOut]:
        """Visible tasks, soonest due first."""
        return await services.list_tasks(
            db_session,
            actor,
            now=clock.now(),
            assignee_id=assignee_id,
            status=status,
            kind=kind,
            deal_id=deal_id,
            overdue=overdue,
            limit=limit,
            cursor=cursor,
        )

    @post("/", status_code=HTTP_201_CREATED)
    async def create_task(
        self, data: schemas.TaskCreate, db_session: AsyncSession, actor: Actor, clock: Clock
    ) -> schemas.TaskOut:
        """Create a task (the assignee is told)."""
        now = clock.now()
        return services.task_out(await services.create_task(db_session, actor, data, now), now)

    @get("/{task_id:uuid}")
    async def get_task(
        self, task_id: uuid.UUID, db_session: AsyncSession, actor: Actor, clock: Clock
    ) -> schemas.TaskOut:
        """One task."""
        return services.task_out(
            await services.visible_task(db_session, actor, task_id), clock.now()
        )

    @patch("/{task_id:uuid}")
    async def update_task(
        self,
        task_id: uuid.UUID,
        data: schemas.TaskUpdate,
        db_session: AsyncSession,
        actor: Actor,
        clock: Clock,
    ) -> schemas.TaskOut:
        """Change an open task."""
        now = clock.now()
        task = await services.update_task(db_session, actor, task_id, data, now)
        return services.task_out(task, now)

    @post("/{task_id:uuid}/start", status_code=200)
    async def start_task(
        self, task_id: uuid.UUID, db_session: AsyncSession, actor: Actor, clock: Clock
    ) -> schemas.TaskOut:
        """Mark it in progress."""
        now = clock.now()
        return services.task_out(await services.start_task(db_session, actor, task_id, now), now)

    @post("/{task_id:uuid}/complete", status_code=200)
    async def complete_task(
        self,
        task_id: uuid.UUID,
        data: schemas.TaskComplete,
        db_session: AsyncSession,
        actor: Actor,
        clock: Clock,
    ) -> schemas.TaskOut:
        """Close it with the outcome."""
        now = clock.now()
        task = await services.complete_task(db_session, actor, task_id, data.outcome, now)
        return services.task_out(task, now)

    @post("/{task_id:uuid}/cancel", status_code=200)
    async def cancel_task(
        self,
        task_id: uuid.UUID,
        data: schemas.TaskCancel,
        db_session: AsyncSession,
        actor: Actor,
        clock: Clock,
    ) -> schemas.TaskOut:
        """Cancel it, with the reason (managers and admins)."""
        now = clock.now()
        task = await services.cancel_task(db_session, actor, task_id, data.reason, now)
        return services.task_out(task, now)


CONTROLLERS = [TaskController]
