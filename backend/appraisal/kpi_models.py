"""Tables of the field KPIs: daily roll-ups per worker, deal credits, their work queues,
scorecards, review comments and customers' RFM segments (migration 0011)."""

from __future__ import annotations

import uuid
from datetime import date, datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import (
    CheckConstraint,
    Date,
    DateTime,
    Enum,
    Float,
    ForeignKey,
    Index,
    Integer,
    Numeric,
    SmallInteger,
    String,
    Text,
)
from sqlalchemy.dialects.postgresql import JSONB, UUID
from sqlalchemy.orm import Mapped, mapped_column

from backend.accounts.models import Role
from backend.db.base import Base, TenantMixin


def _org() -> Mapped[uuid.UUID]:
    return mapped_column(
        UUID(as_uuid=True), ForeignKey("organizations.id", ondelete="CASCADE"), nullable=False
    )


def _count() -> Mapped[int]:
    return mapped_column(Integer, nullable=False, server_default="0", default=0)


class FieldDaily(Base):
    """One worker's local day of field work, counted (``backend.appraisal.field_rollups``).

    Rates are kept as their two counts (judged, met) so any period and any group of people sums
    exactly. The day is the worker's local calendar day, like ``daily_summaries``.
    """

    __tablename__ = "field_daily"

    user_id: Mapped[uuid.UUID] = mapped_column(
        UUID(as_uuid=True), ForeignKey("users.id", ondelete="CASCADE"), primary_key=True
    )
    day: Mapped[date] = mapped_column(Date, primary_key=True)
    organization_id: Mapped[uuid.UUID] = _org()
    visits_done: Mapped[int] = _count()
    arrivals_judged: Mapped[int] = _count()
    arrivals_on_time: Mapped[int] = _count()
    sla_judged: Mapped[int] = _count()
    sla_met: Mapped[int] = _count()
    check_ins: Mapped[int] = _count()
    check_ins_verified: Mapped[int] = _count()
    on_site_s: Mapped[int] = _count()
    driving_s: Mapped[int] = _count()
    idle_s: Mapped[int] = _count()
    rating_sum: Mapped[int] = _count()
    rating_count: Mapped[int] = _count()
    tasks_overdue: Mapped[int] = _count()
    distance_m: Mapped[float] = mapped_column(Float, nullable=False, server_default="0", default=0)
    computed_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False)


class FieldDealCredit(Base):
    """A won deal credited to one person: its owner, or someone who did a visit or task on it.
    ``day`` is the local day (of that person) the deal was won."""

    __tablename__ = "field_deal_credits"

    deal_id: Mapped[uuid.UUID] = mapped_column(
        UUID(as_uuid=True), ForeignKey("deals.id", ondelete="CASCADE"), primary_key=True
    )
    user_id: Mapped[uuid.UUID] = mapped_column(
        UUID(as_uuid=True), ForeignKey("users.id", ondelete="CASCADE"), primary_key=True
    )
    organization_id: Mapped[uuid.UUID] = _org()
    day: Mapped[date] = mapped_column(Date, nullable=False)
    amount: Mapped[Decimal] = mapped_column(Numeric(14, 2), nullable=False)

    __table_args__ = (Index("ix_field_deal_credits_user_day", "user_id", "day"),)


class FieldRollupQueue(Base):
    """A (worker, day) whose roll-up must be recomputed; filled by triggers."""

    __tablename__ = "field_rollup_queue"

    user_id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), primary_key=True)
    day: Mapped[date] = mapped_column(Date, primary_key=True)
    organization_id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), nullable=False)


class FieldDealQueue(Base):
    """A deal whose credits must be recomputed; filled by triggers."""

    __tablename__ = "field_deal_queue"

    deal_id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), primary_key=True)
    organization_id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), nullable=False)


class FieldRollupState(Base):
    """Up to when the roll-up job has looked for tasks that fell overdue with time."""

    __tablename__ = "field_rollup_state"

    name: Mapped[str] = mapped_column(String(40), primary_key=True)
    watermark: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False)


class Scorecard(Base):
    """Which KPIs count for a role, with weights and targets (``backend.appraisal.scorecards``).

    ``items``: ``[{"kpi": name, "weight": number >= 0, "target": number}]``.
    """

    __tablename__ = "scorecards"

    organization_id: Mapped[uuid.UUID] = mapped_column(
        UUID(as_uuid=True),
        ForeignKey("organizations.id", ondelete="CASCADE"),
        primary_key=True,
    )
    role: Mapped[Role] = mapped_column(
        Enum(
            Role,
            name="user_role",
            values_callable=lambda e: [m.value for m in e],
            create_type=False,
        ),
        primary_key=True,
    )
    items: Mapped[list[dict[str, Any]]] = mapped_column(JSONB, nullable=False)
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False)
    updated_by_id: Mapped[uuid.UUID | None] = mapped_column(
        UUID(as_uuid=True), ForeignKey("users.id", ondelete="SET NULL")
    )


class ScorecardReview(Base, TenantMixin):
    """A manager's comment on one person's scorecard for one period."""

    __tablename__ = "scorecard_reviews"

    user_id: Mapped[uuid.UUID] = mapped_column(
        UUID(as_uuid=True), ForeignKey("users.id", ondelete="CASCADE"), nullable=False
    )
    author_id: Mapped[uuid.UUID | None] = mapped_column(
        UUID(as_uuid=True), ForeignKey("users.id", ondelete="SET NULL")
    )
    period_start: Mapped[date] = mapped_column(Date, nullable=False)
    period_end: Mapped[date] = mapped_column(Date, nullable=False)
    comment: Mapped[str] = mapped_column(Text, nullable=False)

    __table_args__ = (
        Index("ix_scorecard_reviews_user_period", "user_id", "period_start", "period_end"),
        CheckConstraint("period_end >= period_start", name="period_order"),
    )


class CustomerRfm(Base):
    """A customer's recency, frequency and monetary value of won deals, their quintile scores
    (5 best) and the named segment (``backend.appraisal.rfm``)."""

    __tablename__ = "customer_rfm"

    customer_id: Mapped[uuid.UUID] = mapped_column(
        UUID(as_uuid=True), ForeignKey("customers.id", ondelete="CASCADE"), primary_key=True
    )
    organization_id: Mapped[uuid.UUID] = _org()
    last_won_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False)
    recency_days: Mapped[int] = mapped_column(Integer, nullable=False)
    frequency: Mapped[int] = mapped_column(Integer, nullable=False)
    monetary: Mapped[Decimal] = mapped_column(Numeric(16, 2), nullable=False)
    r_score: Mapped[int] = mapped_column(SmallInteger, nullable=False)
    f_score: Mapped[int] = mapped_column(SmallInteger, nullable=False)
    m_score: Mapped[int] = mapped_column(SmallInteger, nullable=False)
    segment: Mapped[str] = mapped_column(String(32), nullable=False)
    computed_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False)

    __table_args__ = (
        Index("ix_customer_rfm_org_segment", "organization_id", "segment"),
        CheckConstraint(
            "r_score BETWEEN 1 AND 5 AND f_score BETWEEN 1 AND 5 AND m_score BETWEEN 1 AND 5",
            name="scores_range",
        ),
    )
