"""Request and response bodies of the notification centre."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Any

import msgspec

from backend.accounts.schemas import Input, Output


class NotificationOut(Output):
    id: uuid.UUID
    kind: str
    title: str
    body: str | None
    link: str | None
    data: dict[str, Any]
    urgent: bool
    created_at: datetime
    read_at: datetime | None


class UnreadCount(Output):
    unread: int


class MarkRead(Input):
    """Mark these notifications read; leave ``ids`` out to mark all read."""

    ids: Annotated[list[uuid.UUID], msgspec.Meta(max_length=500)] | None = None


class MarkedRead(Output):
    marked: int
