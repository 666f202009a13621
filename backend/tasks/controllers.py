"""JSON API of tasks."""

from __future__ import annotations

import uuid
from typing import Annotated, Any

from litestar import Controller, Request, get, patch, post
from litestar.datastructures import State
from litestar.params import Parameter, QueryParameter
from litestar.status_codes import HTTP_201_CREATED
from sqlalchemy.ext.asyncio import AsyncSession

from backend.config import Settings
from backend.documents import schemas as doc_schemas
from backend.documents import services as documents
from backend.documents.uploads import Filename, request_chunks
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

    @post(
        "/{task_id:uuid}/attachments",
        status_code=HTTP_201_CREATED,
        request_max_body_size=None,
        summary="Attach a file (a visit's photo, a measurement sheet)",
    )
    async def attach(
        self,
        task_id: uuid.UUID,
        request: Request[Any, Any, Any],
        db_session: AsyncSession,
        actor: Actor,
        clock: Clock,
        state: State,
        settings: Settings,
        filename: Filename,
    ) -> doc_schemas.AttachmentOut:
        """Send the file's bytes as the body and its name as ``?filename=``; it also shows on
        the task's deal. The type is found from the content (images incl. HEIC, PDF, office
        documents, text); at most ``FIELDCRM_MAX_UPLOAD_BYTES``."""
        row = await documents.upload(
            db_session,
            actor,
            state.storage,
            deal_id=None,
            task_id=task_id,
            filename=filename,
            chunks=request_chunks(request),
            max_bytes=settings.max_upload_bytes,
            now=clock.now(),
        )
        return documents.attachment_out(row)

    @get("/{task_id:uuid}/attachments")
    async def attachments(
        self, task_id: uuid.UUID, db_session: AsyncSession, actor: Actor
    ) -> list[doc_schemas.AttachmentOut]:
        """The task's files, newest first."""
        return await documents.list_task_attachments(db_session, actor, task_id=task_id)


CONTROLLERS = [TaskController]
