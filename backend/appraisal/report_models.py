"""Tables of the owner's reports: daily roll-ups and the queue of days to refresh.

Roll-ups are derived data, keyed by organisation, organisation-local day and dimensions. A
missing owner, assignee or author is stored as ``NIL_UUID`` and a missing source as ``""`` so
every key column is NOT NULL and the primary key forbids a day counted twice.

``report_dirty_days`` is filled by statement-level triggers (migration 0010) on ``deals``,
``deal_stage_changes``, ``interactions`` (calls) and ``tasks``: each change marks the days whose
roll-ups it feeds, from the old and new values. See ``backend.appraisal.sales_rollups``.
"""

from __future__ import annotations

import uuid

from sqlalchemy import (
    BigInteger,
    CheckConstraint,
    Column,
    Date,
    DateTime,
    ForeignKey,
    Identity,
    Index,
    Integer,
    Numeric,
    String,
    Table,
    text,
)
from sqlalchemy.dialects.postgresql import UUID

from backend.db.base import Base
from backend.sales.models import Deal
from backend.tasks.models import Task

NIL_UUID = uuid.UUID(int=0)
"""Stands for "nobody" (no owner, assignee or author) in roll-up keys."""


def _org() -> Column[uuid.UUID]:
    return Column(
        "organization_id",
        UUID(as_uuid=True),
        ForeignKey("organizations.id", ondelete="CASCADE"),
        primary_key=True,
    )


def _count(name: str) -> Column[int]:
    return Column(name, Integer, nullable=False, server_default="0")


def _money(name: str) -> Column[object]:
    return Column(name, Numeric(16, 2), nullable=False, server_default="0")


deal_days = Table(
    "report_deal_days",
    Base.metadata,
    _org(),
    Column("day", Date, primary_key=True),
    Column("owner_id", UUID(as_uuid=True), primary_key=True),
    Column("pipeline_id", UUID(as_uuid=True), primary_key=True),
    Column("source", String(100), primary_key=True),
    _count("created_count"),
    _money("created_amount"),
    _count("won_count"),
    _money("won_amount"),
    _count("lost_count"),
    _money("lost_amount"),
    _count("converted_count"),
    _money("converted_amount"),
    comment="Per local day: deals created, won and lost that day; converted = created that "
    "day and won by now.",
)

stage_days = Table(
    "report_stage_days",
    Base.metadata,
    _org(),
    Column("day", Date, primary_key=True),
    Column("pipeline_id", UUID(as_uuid=True), primary_key=True),
    Column("stage_id", UUID(as_uuid=True), primary_key=True),
    Column("owner_id", UUID(as_uuid=True), primary_key=True),
    Column("source", String(100), primary_key=True),
    _count("reached_count"),
    _count("exit_count"),
    Column("exit_seconds", BigInteger, nullable=False, server_default="0"),
    comment="reached: deals created that day that got to the stage (or further); exits: moves "
    "out of the stage made that day and the seconds spent in it.",
)

call_days = Table(
    "report_call_days",
    Base.metadata,
    _org(),
    Column("day", Date, primary_key=True),
    Column("user_id", UUID(as_uuid=True), primary_key=True),
    _count("call_count"),
    Column("call_seconds", BigInteger, nullable=False, server_default="0"),
)

task_days = Table(
    "report_task_days",
    Base.metadata,
    _org(),
    Column("day", Date, primary_key=True),
    Column("assignee_id", UUID(as_uuid=True), primary_key=True),
    _count("due_count"),
    _count("done_on_time"),
    _count("done_late"),
    _count("open_count"),
    _count("cancelled_count"),
    comment="Tasks by local due day: done on time, done late, still open, cancelled.",
)

dirty_days = Table(
    "report_dirty_days",
    Base.metadata,
    Column("id", BigInteger, Identity(always=True), primary_key=True),
    Column(
        "organization_id",
        UUID(as_uuid=True),
        ForeignKey("organizations.id", ondelete="CASCADE"),
        nullable=False,
    ),
    Column("fact", String(16), nullable=False),
    Column("day", Date, nullable=False),
    Column("marked_at", DateTime(timezone=True), nullable=False, server_default=text("now()")),
    CheckConstraint("fact IN ('sales', 'calls', 'tasks')", name="known_fact"),
    Index("ix_report_dirty_days_org_fact_day", "organization_id", "fact", "day"),
)

refresh_state = Table(
    "report_refresh_state",
    Base.metadata,
    _org(),
    Column("refreshed_at", DateTime(timezone=True), nullable=False),
    Column("days_refreshed", Integer, nullable=False, server_default="0"),
    Column("rebuilt_at", DateTime(timezone=True)),
)

# Read by the per-day recomputation (created in migration 0010).
Index(
    "ix_deals_org_closed",
    Deal.__table__.c.organization_id,
    Deal.__table__.c.closed_at,
    postgresql_where=text("closed_at IS NOT NULL"),
)
Index(
    "ix_tasks_org_due",
    Task.__table__.c.organization_id,
    Task.__table__.c.due_at,
    postgresql_where=text("due_at IS NOT NULL"),
)
