"""Response and request bodies for attachments, documents and document templates."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated

import msgspec

from backend.accounts.schemas import Input, Output
from backend.documents.models import AttachmentKind


class AttachmentOut(Output):
    id: uuid.UUID
    deal_id: uuid.UUID | None
    task_id: uuid.UUID | None
    kind: AttachmentKind
    filename: str
    content_type: str
    size: int
    sha256: str
    uploaded_by_id: uuid.UUID | None
    created_at: datetime
    url: str


class DocumentOut(Output):
    id: uuid.UUID
    deal_id: uuid.UUID
    template_id: uuid.UUID | None
    template_version: int
    title: str
    number: int
    version: int
    attachment_id: uuid.UUID
    url: str
    created_at: datetime


class GenerateDocument(Input):
    """Generate a document for the deal now (default: the organisation's invoice)."""

    template: Annotated[str, msgspec.Meta(min_length=1, max_length=200)] = "Invoice"


class TemplateIn(Input):
    """A sandboxed Jinja2 HTML template; see the README for the variables."""

    name: Annotated[str, msgspec.Meta(min_length=1, max_length=200)]
    html: Annotated[str, msgspec.Meta(min_length=1, max_length=200_000)]
    is_active: bool = True


class TemplateOut(Output):
    id: uuid.UUID
    name: str
    html: str
    version: int
    is_active: bool
    updated_at: datetime
