"""Tasks: calls to make and visits to do, with deadlines, SLA state and outcomes."""

from __future__ import annotations

import enum
import uuid
from datetime import datetime

from sqlalchemy import CheckConstraint, DateTime, ForeignKey, Index, Integer, String, Text, text
from sqlalchemy.dialects.postgresql import UUID
from sqlalchemy.orm import Mapped, mapped_column

from backend.db.base import Base, TenantMixin, pg_enum


class TaskKind(enum.StrEnum):
    """What the task asks for; visits (measurement, installation, visit) happen at a site."""

    CALL = "call"
    MEASUREMENT = "measurement"
    INSTALLATION = "installation"
    VISIT = "visit"
    OTHER = "other"


VISIT_KINDS = frozenset({TaskKind.MEASUREMENT, TaskKind.INSTALLATION, TaskKind.VISIT})


class TaskStatus(enum.StrEnum):
    """Open and in progress tasks count for SLA; done and cancelled are closed."""

    OPEN = "open"
    IN_PROGRESS = "in_progress"
    DONE = "done"
    CANCELLED = "cancelled"


ACTIVE_STATUSES = (TaskStatus.OPEN, TaskStatus.IN_PROGRESS)


class Task(Base, TenantMixin):
    """One piece of work for one person.

    SLA state: ``overdue_notified_at`` is set (once) by the scan that tells the assignee the task
    is overdue, which also sets ``escalate_at``; ``escalated_at`` is set (once) when the team lead
    is told. Both scans claim rows with ``FOR UPDATE SKIP LOCKED`` so two workers never notify
    twice.
    """

    __tablename__ = "tasks"

    kind: Mapped[TaskKind] = mapped_column(pg_enum(TaskKind, "task_kind"), nullable=False)
    title: Mapped[str] = mapped_column(String(300), nullable=False)
    description: Mapped[str | None] = mapped_column(Text)
    status: Mapped[TaskStatus] = mapped_column(
        pg_enum(TaskStatus, "task_status"), nullable=False, default=TaskStatus.OPEN
    )
    assignee_id: Mapped[uuid.UUID | None] = mapped_column(
        UUID(as_uuid=True), ForeignKey("users.id", ondelete="SET NULL")
    )
    created_by_id: Mapped[uuid.UUID | None] = mapped_column(
        UUID(as_uuid=True), ForeignKey("users.id", ondelete="SET NULL")
    )
    deal_id: Mapped[uuid.UUID | None] = mapped_column(
        UUID(as_uuid=True), ForeignKey("deals.id", ondelete="CASCADE")
    )
    customer_id: Mapped[uuid.UUID | None] = mapped_column(
        UUID(as_uuid=True), ForeignKey("customers.id", ondelete="CASCADE")
    )
    site_id: Mapped[uuid.UUID | None] = mapped_column(
        UUID(as_uuid=True), ForeignKey("sites.id", ondelete="SET NULL")
    )
    automation_id: Mapped[uuid.UUID | None] = mapped_column(
        UUID(as_uuid=True), ForeignKey("automations.id", ondelete="SET NULL")
    )
    due_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    window_start: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    window_end: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    priority: Mapped[int] = mapped_column(Integer, nullable=False, default=0)
    outcome: Mapped[str | None] = mapped_column(Text)
    started_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    completed_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    escalate_after_minutes: Mapped[int | None] = mapped_column(Integer)
    overdue_notified_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    escalate_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    escalated_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))

    __table_args__ = (
        # The SLA scans read only these small partial indexes, however many tasks are open.
        Index(
            "ix_tasks_overdue_due",
            "due_at",
            postgresql_where=(
                "status IN ('open', 'in_progress') AND overdue_notified_at IS NULL"
                " AND due_at IS NOT NULL"
            ),
        ),
        Index(
            "ix_tasks_escalation_due",
            "escalate_at",
            postgresql_where=(
                "status IN ('open', 'in_progress') AND escalated_at IS NULL"
                " AND escalate_at IS NOT NULL"
            ),
        ),
        Index("ix_tasks_org_assignee_status", "organization_id", "assignee_id", "status", "due_at"),
        Index("ix_tasks_deal", "deal_id", postgresql_where="deal_id IS NOT NULL"),
        # The live team board: tasks in progress, and open visits by planned time.
        Index(
            "ix_tasks_in_progress",
            "organization_id",
            "assignee_id",
            postgresql_where="status = 'in_progress'",
        ),
        Index(
            "ix_tasks_open_visits_planned",
            "organization_id",
            text("coalesce(window_start, due_at)"),
            postgresql_where=(
                "status = 'open' AND kind IN ('measurement', 'installation', 'visit')"
            ),
        ),
        CheckConstraint(
            "window_end IS NULL OR window_start IS NULL OR window_end > window_start",
            name="window_order",
        ),
        CheckConstraint(
            "escalate_after_minutes IS NULL OR escalate_after_minutes >= 0",
            name="escalation_delay_positive",
        ),
    )
