"""Request and response bodies of the tasks API."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated

import msgspec

from backend.accounts.schemas import Input, Output
from backend.tasks.models import TaskKind, TaskStatus

Title = Annotated[str, msgspec.Meta(min_length=1, max_length=300)]
Description = Annotated[str, msgspec.Meta(max_length=10_000)]
Minutes = Annotated[int, msgspec.Meta(ge=0, le=60 * 24 * 30)]


class TaskCreate(Input):
    """A task made by hand. Visits (measurement, installation, visit) may have a window."""

    kind: TaskKind
    title: Title
    description: Description | None = None
    assignee_id: uuid.UUID | None = None
    deal_id: uuid.UUID | None = None
    customer_id: uuid.UUID | None = None
    site_id: uuid.UUID | None = None
    due_at: datetime | None = None
    window_start: datetime | None = None
    window_end: datetime | None = None
    priority: Annotated[int, msgspec.Meta(ge=0, le=100)] = 0
    escalate_after_minutes: Minutes | None = None


class TaskUpdate(Input):
    """Change a task; a new due time restarts its SLA clock."""

    title: Title | msgspec.UnsetType = msgspec.UNSET
    description: Description | msgspec.UnsetType | None = msgspec.UNSET
    assignee_id: uuid.UUID | msgspec.UnsetType | None = msgspec.UNSET
    due_at: datetime | msgspec.UnsetType | None = msgspec.UNSET
    window_start: datetime | msgspec.UnsetType | None = msgspec.UNSET
    window_end: datetime | msgspec.UnsetType | None = msgspec.UNSET
    priority: Annotated[int, msgspec.Meta(ge=0, le=100)] | msgspec.UnsetType = msgspec.UNSET
    escalate_after_minutes: Minutes | msgspec.UnsetType | None = msgspec.UNSET


class TaskComplete(Input):
    """How it went."""

    outcome: Annotated[str, msgspec.Meta(min_length=1, max_length=10_000)]


class TaskCancel(Input):
    reason: Annotated[str, msgspec.Meta(min_length=1, max_length=2000)]


class TaskOut(Output):
    id: uuid.UUID
    kind: TaskKind
    title: str
    description: str | None
    status: TaskStatus
    assignee_id: uuid.UUID | None
    created_by_id: uuid.UUID | None
    deal_id: uuid.UUID | None
    customer_id: uuid.UUID | None
    site_id: uuid.UUID | None
    due_at: datetime | None
    window_start: datetime | None
    window_end: datetime | None
    priority: int
    outcome: str | None
    overdue: bool
    started_at: datetime | None
    completed_at: datetime | None
    escalate_after_minutes: int | None
    overdue_notified_at: datetime | None
    escalated_at: datetime | None
    created_at: datetime
