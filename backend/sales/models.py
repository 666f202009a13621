"""Pipelines with ordered stages, stage automations, deals with their stage history, lead forms
and sales territories."""

from __future__ import annotations

import enum
import uuid
from datetime import date, datetime
from decimal import Decimal
from typing import Any

from geoalchemy2 import Geography
from sqlalchemy import (
    Boolean,
    CheckConstraint,
    Date,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    Numeric,
    String,
    Text,
)
from sqlalchemy.dialects.postgresql import ARRAY, JSONB, UUID
from sqlalchemy.orm import Mapped, mapped_column

from backend.db.base import Base, TenantMixin, pg_enum


class StageKind(enum.StrEnum):
    """Open stages are work in progress; won and lost close the deal."""

    OPEN = "open"
    WON = "won"
    LOST = "lost"


class Requirement(enum.StrEnum):
    """What a deal must have before it may enter a stage."""

    SCHEDULED_TIME = "scheduledTime"
    SITE = "site"
    AMOUNT = "amount"
    LINE_ITEMS = "lineItems"
    ATTACHMENT = "attachment"
    DOCUMENT = "document"
    LOST_REASON = "lostReason"


class AutomationAction(enum.StrEnum):
    """What an automation does when a deal enters its stage."""

    CREATE_TASK = "create_task"
    NOTIFY = "notify"
    GENERATE_DOCUMENT = "generate_document"


class AssignmentRule(enum.StrEnum):
    """How a lead form picks the responsible manager."""

    ROUND_ROBIN = "round_robin"
    TERRITORY = "territory"


class Pipeline(Base, TenantMixin):
    """A sales process: an ordered list of stages."""

    __tablename__ = "pipelines"

    name: Mapped[str] = mapped_column(String(200), nullable=False)
    is_default: Mapped[bool] = mapped_column(Boolean, nullable=False, default=False)

    __table_args__ = (
        Index("uq_pipelines_org_name", "organization_id", "name", unique=True),
        Index(
            "uq_pipelines_org_default",
            "organization_id",
            unique=True,
            postgresql_where="is_default",
        ),
    )


class Stage(Base, TenantMixin):
    """One step of a pipeline, with the rules for entering it.

    ``allowed_from``: the stages a deal may come from (NULL: any stage of the pipeline).
    ``requirements``: ``Requirement`` values the deal must satisfy on entry.
    ``entry_roles``: roles that may move a deal into the stage (NULL: anyone who sees the deal).
    """

    __tablename__ = "stages"

    pipeline_id: Mapped[uuid.UUID] = mapped_column(
        UUID(as_uuid=True), ForeignKey("pipelines.id", ondelete="CASCADE"), nullable=False
    )
    name: Mapped[str] = mapped_column(String(100), nullable=False)
    position: Mapped[int] = mapped_column(Integer, nullable=False)
    kind: Mapped[StageKind] = mapped_column(
        pg_enum(StageKind, "stage_kind"), nullable=False, default=StageKind.OPEN
    )
    allowed_from: Mapped[list[uuid.UUID] | None] = mapped_column(ARRAY(UUID(as_uuid=True)))
    requirements: Mapped[list[str]] = mapped_column(ARRAY(String(32)), nullable=False, default=list)
    entry_roles: Mapped[list[str] | None] = mapped_column(ARRAY(String(16)))

    __table_args__ = (
        Index("uq_stages_pipeline_name", "pipeline_id", "name", unique=True),
        Index("ix_stages_pipeline_position", "pipeline_id", "position"),
    )


class Automation(Base, TenantMixin):
    """A rule run when a deal enters ``stage_id``; ``config`` is validated by
    ``backend.sales.automations`` for its ``action``."""

    __tablename__ = "automations"

    stage_id: Mapped[uuid.UUID] = mapped_column(
        UUID(as_uuid=True), ForeignKey("stages.id", ondelete="CASCADE"), nullable=False, index=True
    )
    name: Mapped[str] = mapped_column(String(200), nullable=False)
    position: Mapped[int] = mapped_column(Integer, nullable=False, default=0)
    action: Mapped[AutomationAction] = mapped_column(
        pg_enum(AutomationAction, "automation_action"), nullable=False
    )
    config: Mapped[dict[str, Any]] = mapped_column(JSONB, nullable=False, default=dict)
    is_active: Mapped[bool] = mapped_column(Boolean, nullable=False, default=True)


class Deal(Base, TenantMixin):
    """A sale in progress. ``owner_id`` is the responsible manager (drives visibility)."""

    __tablename__ = "deals"

    pipeline_id: Mapped[uuid.UUID] = mapped_column(
        UUID(as_uuid=True), ForeignKey("pipelines.id"), nullable=False
    )
    stage_id: Mapped[uuid.UUID] = mapped_column(
        UUID(as_uuid=True), ForeignKey("stages.id"), nullable=False
    )
    customer_id: Mapped[uuid.UUID] = mapped_column(
        UUID(as_uuid=True), ForeignKey("customers.id", ondelete="CASCADE"), nullable=False
    )
    site_id: Mapped[uuid.UUID | None] = mapped_column(
        UUID(as_uuid=True), ForeignKey("sites.id", ondelete="SET NULL")
    )
    title: Mapped[str] = mapped_column(String(300), nullable=False)
    amount: Mapped[Decimal | None] = mapped_column(Numeric(14, 2))
    currency: Mapped[str] = mapped_column(String(3), nullable=False)
    # [{"name", "quantity", "unitPrice", "total"}], amounts as strings (exact decimals).
    line_items: Mapped[list[dict[str, Any]]] = mapped_column(JSONB, nullable=False, default=list)
    source: Mapped[str | None] = mapped_column(String(100))
    # Where the lead came from: form key, UTM parameters, referrer.
    attribution: Mapped[dict[str, Any]] = mapped_column(JSONB, nullable=False, default=dict)
    owner_id: Mapped[uuid.UUID | None] = mapped_column(
        UUID(as_uuid=True), ForeignKey("users.id", ondelete="SET NULL")
    )
    expected_close: Mapped[date | None] = mapped_column(Date)
    lost_reason: Mapped[str | None] = mapped_column(String(300))
    scheduled_start: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    scheduled_end: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    stage_entered_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False)
    closed_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    # Optimistic concurrency: clients may send the version they saw.
    version: Mapped[int] = mapped_column(Integer, nullable=False, default=1)

    __table_args__ = (
        Index("ix_deals_org_stage", "organization_id", "stage_id", "stage_entered_at"),
        Index("ix_deals_org_owner", "organization_id", "owner_id"),
        Index("ix_deals_customer", "customer_id"),
        Index("ix_deals_org_created", "organization_id", "created_at"),
        CheckConstraint("amount IS NULL OR amount >= 0", name="amount_positive"),
        CheckConstraint("currency ~ '^[A-Z]{3}$'", name="currency_iso"),
        CheckConstraint(
            "scheduled_end IS NULL OR scheduled_end > scheduled_start", name="schedule_order"
        ),
    )


class DealStageChange(Base, TenantMixin):
    """A deal's move between stages, with who moved it and how long it sat in the old stage."""

    __tablename__ = "deal_stage_changes"

    deal_id: Mapped[uuid.UUID] = mapped_column(
        UUID(as_uuid=True), ForeignKey("deals.id", ondelete="CASCADE"), nullable=False
    )
    from_stage_id: Mapped[uuid.UUID | None] = mapped_column(
        UUID(as_uuid=True), ForeignKey("stages.id", ondelete="SET NULL")
    )
    to_stage_id: Mapped[uuid.UUID] = mapped_column(
        UUID(as_uuid=True), ForeignKey("stages.id", ondelete="CASCADE"), nullable=False
    )
    actor_id: Mapped[uuid.UUID | None] = mapped_column(
        UUID(as_uuid=True), ForeignKey("users.id", ondelete="SET NULL")
    )
    changed_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False)
    seconds_in_previous: Mapped[int | None] = mapped_column(Integer)
    comment: Mapped[str | None] = mapped_column(Text)

    __table_args__ = (
        Index("ix_deal_stage_changes_deal", "deal_id", "changed_at"),
        Index("ix_deal_stage_changes_org_time", "organization_id", "changed_at"),
    )


class LeadForm(Base, TenantMixin):
    """A public intake form. ``key`` is the unguessable part of its URL."""

    __tablename__ = "lead_forms"

    key: Mapped[str] = mapped_column(String(64), nullable=False, unique=True)
    name: Mapped[str] = mapped_column(String(200), nullable=False)
    pipeline_id: Mapped[uuid.UUID] = mapped_column(
        UUID(as_uuid=True), ForeignKey("pipelines.id", ondelete="CASCADE"), nullable=False
    )
    source: Mapped[str] = mapped_column(String(100), nullable=False, default="website")
    assignment: Mapped[AssignmentRule] = mapped_column(
        pg_enum(AssignmentRule, "lead_assignment"), nullable=False
    )
    deal_title: Mapped[str] = mapped_column(String(300), nullable=False, default="Request")
    thank_you: Mapped[str] = mapped_column(
        Text, nullable=False, default="Thank you! We will call you back shortly."
    )
    is_active: Mapped[bool] = mapped_column(Boolean, nullable=False, default=True)


class Territory(Base, TenantMixin):
    """An area whose leads go to one manager."""

    __tablename__ = "territories"

    name: Mapped[str] = mapped_column(String(200), nullable=False)
    area: Mapped[str] = mapped_column(
        Geography(geometry_type="MULTIPOLYGON", srid=4326, spatial_index=False), nullable=False
    )
    manager_id: Mapped[uuid.UUID] = mapped_column(
        UUID(as_uuid=True), ForeignKey("users.id", ondelete="CASCADE"), nullable=False
    )

    __table_args__ = (Index("ix_territories_area", "area", postgresql_using="gist"),)
