"""Attachments on deals and tasks, per-organisation document templates, generated documents."""

from __future__ import annotations

import enum
import uuid

from sqlalchemy import (
    BigInteger,
    Boolean,
    CheckConstraint,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
)
from sqlalchemy.dialects.postgresql import UUID
from sqlalchemy.orm import Mapped, mapped_column

from backend.db.base import Base, TenantMixin, pg_enum


class AttachmentKind(enum.StrEnum):
    """Uploaded by a person, or generated from a template."""

    UPLOAD = "upload"
    DOCUMENT = "document"


class Attachment(Base, TenantMixin):
    """A stored file on a deal and/or a task. The bytes live in ``FileStorage`` under
    ``storage_key`` (content-addressed by SHA-256)."""

    __tablename__ = "attachments"

    deal_id: Mapped[uuid.UUID | None] = mapped_column(
        UUID(as_uuid=True), ForeignKey("deals.id", ondelete="CASCADE")
    )
    task_id: Mapped[uuid.UUID | None] = mapped_column(
        UUID(as_uuid=True), ForeignKey("tasks.id", ondelete="CASCADE")
    )
    kind: Mapped[AttachmentKind] = mapped_column(
        pg_enum(AttachmentKind, "attachment_kind"), nullable=False
    )
    filename: Mapped[str] = mapped_column(String(255), nullable=False)
    content_type: Mapped[str] = mapped_column(String(100), nullable=False)
    size: Mapped[int] = mapped_column(BigInteger, nullable=False)
    sha256: Mapped[str] = mapped_column(String(64), nullable=False)
    storage_key: Mapped[str] = mapped_column(String(80), nullable=False)
    uploaded_by_id: Mapped[uuid.UUID | None] = mapped_column(
        UUID(as_uuid=True), ForeignKey("users.id", ondelete="SET NULL")
    )

    __table_args__ = (
        Index("ix_attachments_deal", "deal_id", postgresql_where="deal_id IS NOT NULL"),
        Index("ix_attachments_task", "task_id", postgresql_where="task_id IS NOT NULL"),
        CheckConstraint("deal_id IS NOT NULL OR task_id IS NOT NULL", name="has_owner"),
        CheckConstraint("size > 0", name="size_positive"),
    )


class DocumentTemplate(Base, TenantMixin):
    """An HTML (Jinja2, sandboxed) template rendered to PDF. Editing bumps ``version``."""

    __tablename__ = "document_templates"

    name: Mapped[str] = mapped_column(String(200), nullable=False)
    html: Mapped[str] = mapped_column(Text, nullable=False)
    version: Mapped[int] = mapped_column(Integer, nullable=False, default=1)
    is_active: Mapped[bool] = mapped_column(Boolean, nullable=False, default=True)

    __table_args__ = (
        Index("uq_document_templates_org_name", "organization_id", "name", unique=True),
    )


class Document(Base, TenantMixin):
    """A PDF generated for a deal; ``version`` counts generations of the same template for the
    deal, ``number`` is the organisation's running document number."""

    __tablename__ = "documents"

    deal_id: Mapped[uuid.UUID] = mapped_column(
        UUID(as_uuid=True), ForeignKey("deals.id", ondelete="CASCADE"), nullable=False
    )
    template_id: Mapped[uuid.UUID | None] = mapped_column(
        UUID(as_uuid=True), ForeignKey("document_templates.id", ondelete="SET NULL")
    )
    template_version: Mapped[int] = mapped_column(Integer, nullable=False)
    title: Mapped[str] = mapped_column(String(300), nullable=False)
    number: Mapped[int] = mapped_column(BigInteger, nullable=False)
    version: Mapped[int] = mapped_column(Integer, nullable=False)
    attachment_id: Mapped[uuid.UUID] = mapped_column(
        UUID(as_uuid=True), ForeignKey("attachments.id", ondelete="CASCADE"), nullable=False
    )
    created_by_id: Mapped[uuid.UUID | None] = mapped_column(
        UUID(as_uuid=True), ForeignKey("users.id", ondelete="SET NULL")
    )

    __table_args__ = (
        Index("ix_documents_deal", "deal_id", "template_id", "version"),
        Index("uq_documents_org_number", "organization_id", "number", unique=True),
    )
