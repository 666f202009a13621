"""Attachments on deals and tasks, document templates, and PDFs generated for deals.

Uploads are streamed to ``FileStorage`` (size limit, SHA-256), their real type is sniffed from
the bytes (the client's Content-Type is ignored) and checked against an allowlist. Files are
reached only through a deal or task the caller may see.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterable
from datetime import datetime
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import func, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from backend.accounts.models import Organization
from backend.audit import services as audit
from backend.customers.models import Site
from backend.customers.services import name_and_first_contact
from backend.db.counters import next_value
from backend.documents import schemas
from backend.documents.models import Attachment, AttachmentKind, Document, DocumentTemplate
from backend.documents.render import default_template, render_pdf_async, validate_template
from backend.documents.sniff import check_upload, safe_filename
from backend.documents.storage import FileStorage
from backend.lib.errors import InvalidInput, NotFound
from backend.lib.tenancy import Actor, scope
from backend.lib.visibility import deal_visible, task_visible
from backend.sales.models import Deal
from backend.tasks.models import Task

DEFAULT_TEMPLATE_NAME = "Invoice"


def attachment_out(row: Attachment) -> schemas.AttachmentOut:
    """The API shape of an attachment."""
    return schemas.AttachmentOut(
        id=row.id,
        deal_id=row.deal_id,
        task_id=row.task_id,
        kind=row.kind,
        filename=row.filename,
        content_type=row.content_type,
        size=row.size,
        sha256=row.sha256,
        uploaded_by_id=row.uploaded_by_id,
        created_at=row.created_at,
        url=f"/api/v1/attachments/{row.id}/content",
    )


async def _visible_deal_id(session: AsyncSession, actor: Actor, deal_id: uuid.UUID) -> uuid.UUID:
    found = await session.scalar(
        scope(select(Deal.id), actor, Deal.organization_id).where(
            Deal.id == deal_id, deal_visible(actor)
        )
    )
    if found is None:
        raise NotFound("Deal not found")
    return found


async def _visible_task(session: AsyncSession, actor: Actor, task_id: uuid.UUID) -> Task:
    task = await session.scalar(
        scope(select(Task), actor, Task.organization_id).where(
            Task.id == task_id, task_visible(actor)
        )
    )
    if task is None:
        raise NotFound("Task not found")
    return task


async def upload(
    session: AsyncSession,
    actor: Actor,
    storage: FileStorage,
    *,
    deal_id: uuid.UUID | None,
    task_id: uuid.UUID | None,
    filename: str,
    chunks: AsyncIterable[bytes],
    max_bytes: int,
    now: datetime,
) -> Attachment:
    """Store an upload on a visible deal or task (a task's file also shows on its deal)."""
    if task_id is not None:
        task = await _visible_task(session, actor, task_id)
        deal_id = deal_id or task.deal_id
    elif deal_id is not None:
        await _visible_deal_id(session, actor, deal_id)
    else:
        raise InvalidInput.on("dealId", "an attachment belongs to a deal or a task")
    stored = await storage.save(
        chunks, max_bytes=max_bytes, check=lambda head: check_upload(head, filename)
    )
    content_type = check_upload(stored.head, filename)
    row = Attachment(
        id=uuid.uuid4(),
        organization_id=actor.organization_id,
        deal_id=deal_id,
        task_id=task_id,
        kind=AttachmentKind.UPLOAD,
        filename=safe_filename(filename),
        content_type=content_type,
        size=stored.size,
        sha256=stored.sha256,
        storage_key=stored.key,
        uploaded_by_id=actor.user_id,
    )
    session.add(row)
    await session.flush()
    if deal_id is not None:
        await audit.record(
            session,
            organization_id=actor.organization_id,
            entity="deal",
            entity_id=deal_id,
            action="attachment_added",
            actor_id=actor.user_id,
            at=now,
            changes={"attachment": [None, {"id": str(row.id), "filename": row.filename}]},
        )
    return row


async def list_attachments(
    session: AsyncSession, actor: Actor, *, deal_id: uuid.UUID
) -> list[schemas.AttachmentOut]:
    """Files of a visible deal and of its tasks, newest first."""
    await _visible_deal_id(session, actor, deal_id)
    rows = await session.scalars(
        select(Attachment)
        .where(
            Attachment.organization_id == actor.organization_id,
            or_(
                Attachment.deal_id == deal_id,
                Attachment.task_id.in_(select(Task.id).where(Task.deal_id == deal_id)),
            ),
        )
        .order_by(Attachment.created_at.desc(), Attachment.id.desc())
        .limit(500)
    )
    return [attachment_out(r) for r in rows.all()]


async def list_task_attachments(
    session: AsyncSession, actor: Actor, *, task_id: uuid.UUID
) -> list[schemas.AttachmentOut]:
    """Files of a visible task (a visit's photos and sheets), newest first."""
    await _visible_task(session, actor, task_id)
    rows = await session.scalars(
        select(Attachment)
        .where(Attachment.organization_id == actor.organization_id, Attachment.task_id == task_id)
        .order_by(Attachment.created_at.desc(), Attachment.id.desc())
        .limit(500)
    )
    return [attachment_out(r) for r in rows.all()]


async def visible_attachment(
    session: AsyncSession, actor: Actor, attachment_id: uuid.UUID
) -> Attachment:
    """An attachment on a deal or task the caller may see; 404 otherwise."""
    row = await session.scalar(
        select(Attachment).where(
            Attachment.id == attachment_id, Attachment.organization_id == actor.organization_id
        )
    )
    if row is None:
        raise NotFound("Attachment not found")
    try:
        if row.deal_id is not None:
            await _visible_deal_id(session, actor, row.deal_id)
        else:
            assert row.task_id is not None
            await _visible_task(session, actor, row.task_id)
    except NotFound as exc:
        raise NotFound("Attachment not found") from exc
    return row


async def deal_has_upload(session: AsyncSession, deal_id: uuid.UUID) -> bool:
    """Whether a person attached a file to the deal or one of its tasks."""
    found = await session.scalar(
        select(func.count())
        .select_from(Attachment)
        .where(
            Attachment.kind == AttachmentKind.UPLOAD,
            or_(
                Attachment.deal_id == deal_id,
                Attachment.task_id.in_(select(Task.id).where(Task.deal_id == deal_id)),
            ),
        )
    )
    return bool(found)


async def deal_has_document(session: AsyncSession, deal_id: uuid.UUID) -> bool:
    """Whether a document was generated for the deal."""
    found = await session.scalar(select(func.count()).where(Document.deal_id == deal_id))
    return bool(found)


# --- templates and generated documents --------------------------------------------------------


async def template_by_name(
    session: AsyncSession, organization: Organization, name: str
) -> DocumentTemplate:
    """The organisation's active template ``name``; the built-in invoice is created on first
    use of the default name."""
    template = await session.scalar(
        select(DocumentTemplate).where(
            DocumentTemplate.organization_id == organization.id,
            DocumentTemplate.name == name,
            DocumentTemplate.is_active,
        )
    )
    if template is None and name == DEFAULT_TEMPLATE_NAME:
        template = DocumentTemplate(
            id=uuid.uuid4(),
            organization_id=organization.id,
            name=name,
            html=default_template(organization.locale),
            version=1,
        )
        session.add(template)
        await session.flush()
    if template is None:
        raise InvalidInput.on("template", f"no active document template named {name!r}")
    return template


def _line_items(deal: Deal) -> list[dict[str, Any]]:
    return [
        {
            "name": item["name"],
            "quantity": Decimal(str(item["quantity"])),
            "unitPrice": Decimal(str(item["unitPrice"])),
            "total": Decimal(str(item["total"])),
            "unit": item.get("unit"),
        }
        for item in deal.line_items
    ]


async def document_context(
    session: AsyncSession,
    deal: Deal,
    organization: Organization,
    *,
    number: int,
    version: int,
    now: datetime,
) -> dict[str, Any]:
    """The variables a document template gets (see ``backend.documents.render``)."""
    customer_name, phone, email = await name_and_first_contact(session, deal.customer_id)
    address = None
    if deal.site_id is not None:
        address = await session.scalar(select(Site.address).where(Site.id == deal.site_id))
    zone = ZoneInfo(organization.time_zone)
    items = _line_items(deal)
    return {
        "deal": {
            "title": deal.title,
            "number": str(deal.id).split("-")[0].upper(),
            "amount": deal.amount,
            "currency": deal.currency,
            "line_items": items,
            "scheduled_at": deal.scheduled_start.astimezone(zone) if deal.scheduled_start else None,
        },
        "customer": {"name": customer_name, "phone": phone, "email": email},
        "site": {"address": address},
        "organization": {
            "name": organization.name,
            "payment_details": dict(organization.payment_details),
        },
        "service": items[0]["name"] if items else deal.title,
        "generated_at": now.astimezone(zone),
        "document": {"number": number, "version": version},
    }


async def generate_for_deal(
    session: AsyncSession,
    deal: Deal,
    organization: Organization,
    *,
    template_name: str,
    actor_id: uuid.UUID | None,
    now: datetime,
    storage: FileStorage,
) -> Document:
    """Render the template for the deal to PDF, store it, attach it, and record the document
    (version = how many times this template was generated for the deal)."""
    template = await template_by_name(session, organization, template_name)
    previous = await session.scalar(
        select(func.coalesce(func.max(Document.version), 0)).where(
            Document.deal_id == deal.id, Document.template_id == template.id
        )
    )
    version = int(previous or 0) + 1
    number = await next_value(session, organization.id, "document_number")
    context = await document_context(
        session, deal, organization, number=number, version=version, now=now
    )
    pdf = await render_pdf_async(template.html, context)
    stored = await storage.save_bytes(pdf)
    title = f"{template.name} {number}" + (f" (v{version})" if version > 1 else "")
    attachment = Attachment(
        id=uuid.uuid4(),
        organization_id=organization.id,
        deal_id=deal.id,
        kind=AttachmentKind.DOCUMENT,
        filename=safe_filename(f"{template.name}-{number}-v{version}.pdf"),
        content_type="application/pdf",
        size=stored.size,
        sha256=stored.sha256,
        storage_key=stored.key,
        uploaded_by_id=actor_id,
    )
    session.add(attachment)
    await session.flush()
    document = Document(
        id=uuid.uuid4(),
        organization_id=organization.id,
        deal_id=deal.id,
        template_id=template.id,
        template_version=template.version,
        title=title,
        number=number,
        version=version,
        attachment_id=attachment.id,
        created_by_id=actor_id,
    )
    session.add(document)
    await session.flush()
    await audit.record(
        session,
        organization_id=organization.id,
        entity="deal",
        entity_id=deal.id,
        action="document_generated",
        actor_id=actor_id,
        at=now,
        changes={"document": [None, {"id": str(document.id), "title": title}]},
    )
    return document


def document_out(row: Document) -> schemas.DocumentOut:
    """The API shape of a generated document."""
    return schemas.DocumentOut(
        id=row.id,
        deal_id=row.deal_id,
        template_id=row.template_id,
        template_version=row.template_version,
        title=row.title,
        number=row.number,
        version=row.version,
        attachment_id=row.attachment_id,
        url=f"/api/v1/attachments/{row.attachment_id}/content",
        created_at=row.created_at,
    )


async def list_documents(
    session: AsyncSession, actor: Actor, deal_id: uuid.UUID
) -> list[schemas.DocumentOut]:
    """Documents of a visible deal, newest first."""
    await _visible_deal_id(session, actor, deal_id)
    rows = await session.scalars(
        select(Document)
        .where(Document.deal_id == deal_id, Document.organization_id == actor.organization_id)
        .order_by(Document.created_at.desc(), Document.number.desc())
    )
    return [document_out(r) for r in rows.all()]


def template_out(row: DocumentTemplate) -> schemas.TemplateOut:
    """The API shape of a document template."""
    return schemas.TemplateOut(
        id=row.id,
        name=row.name,
        html=row.html,
        version=row.version,
        is_active=row.is_active,
        updated_at=row.updated_at,
    )


async def list_templates(session: AsyncSession, actor: Actor) -> list[schemas.TemplateOut]:
    """The organisation's document templates."""
    rows = await session.scalars(
        select(DocumentTemplate)
        .where(DocumentTemplate.organization_id == actor.organization_id)
        .order_by(DocumentTemplate.name)
    )
    return [template_out(r) for r in rows.all()]


async def save_template(
    session: AsyncSession,
    actor: Actor,
    data: schemas.TemplateIn,
    now: datetime,
    template_id: uuid.UUID | None = None,
) -> DocumentTemplate:
    """Create or replace a template (admins); a changed body bumps its version."""
    from backend.accounts.models import Role

    actor.require_role(Role.ADMIN)
    validate_template(data.html)
    if template_id is None:
        row = DocumentTemplate(
            id=uuid.uuid4(),
            organization_id=actor.organization_id,
            name=data.name,
            html=data.html,
            version=1,
            is_active=data.is_active,
        )
        session.add(row)
    else:
        found = await session.scalar(
            select(DocumentTemplate)
            .where(
                DocumentTemplate.id == template_id,
                DocumentTemplate.organization_id == actor.organization_id,
            )
            .with_for_update()
        )
        if found is None:
            raise NotFound("Template not found")
        row = found
        if row.html != data.html:
            row.version += 1
        row.name, row.html, row.is_active = data.name, data.html, data.is_active
    await session.flush()
    await audit.record(
        session,
        organization_id=actor.organization_id,
        entity="document_template",
        entity_id=row.id,
        action="saved",
        actor_id=actor.user_id,
        at=now,
        changes={"version": [None, row.version]},
    )
    return row
