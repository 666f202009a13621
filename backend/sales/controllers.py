"""JSON API of deals: list, create, change, move between stages, calls, history, files."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from typing import Annotated, Any

from litestar import Controller, Request, get, patch, post
from litestar.datastructures import State
from litestar.params import Parameter, QueryParameter
from litestar.response import File
from litestar.status_codes import HTTP_201_CREATED
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from backend.config import Settings
from backend.customers.schemas import InteractionOut
from backend.customers.services import interaction_out
from backend.documents import schemas as doc_schemas
from backend.documents import services as documents
from backend.documents.models import Document
from backend.lib.clock import Clock
from backend.lib.errors import InvalidInput
from backend.lib.pagination import DEFAULT_LIMIT, Cursor, Limit, Page
from backend.lib.tenancy import Actor
from backend.sales import schemas, services
from backend.sales.automations import Effects
from backend.sales.models import Deal
from backend.tasks.services import task_out

Filename = Annotated[
    str, Parameter(min_length=1, max_length=255, description="the file's name, e.g. sheet.pdf")
]


async def _result(
    session: AsyncSession, deal: Deal, effects: Effects, clock: Clock
) -> schemas.StageChangeResult:
    documents_made: list[schemas.DocumentRef] = []
    if effects.document_ids:
        rows = await session.scalars(select(Document).where(Document.id.in_(effects.document_ids)))
        documents_made = [
            schemas.DocumentRef(
                id=d.id,
                title=d.title,
                number=d.number,
                version=d.version,
                attachment_id=d.attachment_id,
            )
            for d in rows.all()
        ]
    now = clock.now()
    return schemas.StageChangeResult(
        deal=await services.deal_out(session, deal),
        tasks=[task_out(t, now) for t in effects.tasks],
        documents=documents_made,
        notifications=effects.notifications,
    )


async def request_chunks(request: Request[Any, Any, Any]) -> AsyncIterator[bytes]:
    """The request body as it arrives (never held whole in memory)."""
    async for chunk in request.stream():
        if chunk:
            yield chunk


class DealController(Controller):
    """Deals and what hangs off them."""

    path = "/api/v1/deals"
    tags = ["deals"]

    @get("/")
    async def list_deals(
        self,
        db_session: AsyncSession,
        actor: Actor,
        pipeline_id: Annotated[uuid.UUID | None, QueryParameter(name="pipelineId")] = None,
        stage_id: Annotated[uuid.UUID | None, QueryParameter(name="stageId")] = None,
        owner_id: Annotated[uuid.UUID | None, QueryParameter(name="ownerId")] = None,
        customer_id: Annotated[uuid.UUID | None, QueryParameter(name="customerId")] = None,
        limit: Limit = DEFAULT_LIMIT,
        cursor: Cursor = None,
    ) -> Page[schemas.DealOut]:
        """Visible deals, newest first."""
        return await services.list_deals(
            db_session,
            actor,
            pipeline_id=pipeline_id,
            stage_id=stage_id,
            owner_id=owner_id,
            customer_id=customer_id,
            limit=limit,
            cursor=cursor,
        )

    @post("/", status_code=HTTP_201_CREATED)
    async def create_deal(
        self,
        data: schemas.DealCreate,
        db_session: AsyncSession,
        actor: Actor,
        clock: Clock,
        state: State,
    ) -> schemas.StageChangeResult:
        """Open a deal at the first stage of the pipeline (its automations run)."""
        deal, effects = await services.create_deal(
            db_session, actor, data, clock.now(), state.storage
        )
        return await _result(db_session, deal, effects, clock)

    @get("/{deal_id:uuid}")
    async def get_deal(
        self, deal_id: uuid.UUID, db_session: AsyncSession, actor: Actor
    ) -> schemas.DealOut:
        """One deal."""
        deal = await services.visible_deal(db_session, actor, deal_id)
        return await services.deal_out(db_session, deal)

    @patch("/{deal_id:uuid}")
    async def update_deal(
        self,
        deal_id: uuid.UUID,
        data: schemas.DealUpdate,
        db_session: AsyncSession,
        actor: Actor,
        clock: Clock,
    ) -> schemas.DealOut:
        """Change fields (amount, line items, schedule, owner...)."""
        deal = await services.update_deal(db_session, actor, deal_id, data, clock.now())
        return await services.deal_out(db_session, deal)

    @post("/{deal_id:uuid}/stage", status_code=200)
    async def move_deal(
        self,
        deal_id: uuid.UUID,
        data: schemas.StageMove,
        db_session: AsyncSession,
        actor: Actor,
        clock: Clock,
        state: State,
    ) -> schemas.StageChangeResult:
        """Move to another stage; unmet stage rules are a 422 ``stage-rule`` problem."""
        deal, effects = await services.move_deal(
            db_session, actor, deal_id, data, clock.now(), state.storage
        )
        return await _result(db_session, deal, effects, clock)

    @post("/{deal_id:uuid}/calls", status_code=HTTP_201_CREATED)
    async def log_call(
        self,
        deal_id: uuid.UUID,
        data: schemas.CallIn,
        db_session: AsyncSession,
        actor: Actor,
        clock: Clock,
    ) -> InteractionOut:
        """Record a call (outcome, duration, notes); ``taskId`` closes that call task."""
        return interaction_out(
            await services.log_call(db_session, actor, deal_id, data, clock.now())
        )

    @get("/{deal_id:uuid}/timeline")
    async def timeline(
        self,
        deal_id: uuid.UUID,
        db_session: AsyncSession,
        actor: Actor,
        limit: Limit = DEFAULT_LIMIT,
        cursor: Cursor = None,
    ) -> Page[InteractionOut]:
        """Calls, visits, notes and stage changes, newest first."""
        return await services.deal_timeline(db_session, actor, deal_id, limit=limit, cursor=cursor)

    @get("/{deal_id:uuid}/history")
    async def history(
        self, deal_id: uuid.UUID, db_session: AsyncSession, actor: Actor
    ) -> list[schemas.StageChangeOut]:
        """The stages it went through, with times."""
        return await services.stage_history(db_session, actor, deal_id)

    @get("/{deal_id:uuid}/audit")
    async def audit(
        self, deal_id: uuid.UUID, db_session: AsyncSession, actor: Actor
    ) -> list[schemas.AuditOut]:
        """Every change, who made it and when (managers and admins)."""
        return await services.audit_log(db_session, actor, deal_id)

    @post(
        "/{deal_id:uuid}/attachments",
        status_code=HTTP_201_CREATED,
        request_max_body_size=None,
        summary="Attach a file",
    )
    async def attach(
        self,
        deal_id: uuid.UUID,
        request: Request[Any, Any, Any],
        db_session: AsyncSession,
        actor: Actor,
        clock: Clock,
        state: State,
        settings: Settings,
        filename: Filename,
    ) -> doc_schemas.AttachmentOut:
        """Send the file's bytes as the body and its name as ``?filename=``. The type is found
        from the content (PDF, images incl. HEIC, office documents, text); at most
        ``FIELDCRM_MAX_UPLOAD_BYTES`` (20 MB by default)."""
        row = await documents.upload(
            db_session,
            actor,
            state.storage,
            deal_id=deal_id,
            task_id=None,
            filename=filename,
            chunks=request_chunks(request),
            max_bytes=settings.max_upload_bytes,
            now=clock.now(),
        )
        return documents.attachment_out(row)

    @get("/{deal_id:uuid}/attachments")
    async def attachments(
        self, deal_id: uuid.UUID, db_session: AsyncSession, actor: Actor
    ) -> list[doc_schemas.AttachmentOut]:
        """Files on the deal and its tasks, newest first."""
        return await documents.list_attachments(db_session, actor, deal_id=deal_id)

    @get("/{deal_id:uuid}/documents")
    async def list_documents(
        self, deal_id: uuid.UUID, db_session: AsyncSession, actor: Actor
    ) -> list[doc_schemas.DocumentOut]:
        """Generated documents, newest first."""
        return await documents.list_documents(db_session, actor, deal_id)

    @post("/{deal_id:uuid}/documents", status_code=HTTP_201_CREATED)
    async def generate_document(
        self,
        deal_id: uuid.UUID,
        data: doc_schemas.GenerateDocument,
        db_session: AsyncSession,
        actor: Actor,
        clock: Clock,
        state: State,
    ) -> doc_schemas.DocumentOut:
        """Generate (a new version of) a document for the deal from a template."""
        deal = await services.visible_deal(db_session, actor, deal_id)
        organization = await services.organization_of(db_session, actor.organization_id)
        document = await documents.generate_for_deal(
            db_session,
            deal,
            organization,
            template_name=data.template,
            actor_id=actor.user_id,
            now=clock.now(),
            storage=state.storage,
        )
        return documents.document_out(document)


class AttachmentController(Controller):
    """Downloading files, and attaching files to tasks."""

    path = "/api/v1"
    tags = ["attachments"]

    @get("/attachments/{attachment_id:uuid}/content", media_type="application/octet-stream")
    async def download(
        self, attachment_id: uuid.UUID, db_session: AsyncSession, actor: Actor, state: State
    ) -> File:
        """The file, for users who may see its deal or task."""
        row = await documents.visible_attachment(db_session, actor, attachment_id)
        return File(
            path=state.storage.path_of(row.storage_key),
            filename=row.filename,
            media_type=row.content_type,
            content_disposition_type="attachment",
            headers={"X-Content-Type-Options": "nosniff", "Cache-Control": "private"},
        )

    @post(
        "/tasks/{task_id:uuid}/attachments",
        status_code=HTTP_201_CREATED,
        request_max_body_size=None,
        summary="Attach a file to a task",
    )
    async def attach_to_task(
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
        """Like deal attachments; the file also shows on the task's deal."""
        if not filename.strip():
            raise InvalidInput.on("filename", "required")
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

    @get("/tasks/{task_id:uuid}/attachments")
    async def task_attachments(
        self, task_id: uuid.UUID, db_session: AsyncSession, actor: Actor
    ) -> list[doc_schemas.AttachmentOut]:
        """A task's files (a visit's photos, a measurement sheet), newest first."""
        return await documents.list_task_attachments(db_session, actor, task_id=task_id)


CONTROLLERS = [DealController, AttachmentController]
