"""Tracking tables: devices, shifts and schedules, latest positions, check-ins, daily summaries.

The raw points live in ``pings``, a table partitioned by day (native range partitioning on
``recorded_at``), created by a migration and managed by ``backend.tracking.partitions``; it has
no ORM model because it is only written in bulk (``unnest`` arrays) and read by SQL.
"""

from __future__ import annotations

import enum
import uuid
from datetime import date, datetime
from typing import Any

from geoalchemy2 import Geography
from sqlalchemy import (
    Boolean,
    CheckConstraint,
    Date,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
)
from sqlalchemy.dialects.postgresql import ARRAY, JSONB, UUID
from sqlalchemy.orm import Mapped, mapped_column

from backend.db.base import Base, TenantMixin, pg_enum


class Device(Base, TenantMixin):
    """A phone that sends positions for one user; ``identifier`` is what the app sends as its
    id (Traccar Client / OsmAnd) and is unique across fieldcrm."""

    __tablename__ = "devices"

    user_id: Mapped[uuid.UUID] = mapped_column(
        UUID(as_uuid=True), ForeignKey("users.id", ondelete="CASCADE"), nullable=False, index=True
    )
    identifier: Mapped[str] = mapped_column(String(100), nullable=False, unique=True)
    name: Mapped[str | None] = mapped_column(String(200))
    is_active: Mapped[bool] = mapped_column(Boolean, nullable=False, default=True)
    last_seen_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    battery_pct: Mapped[float | None] = mapped_column(Float)


class ShiftSource(enum.StrEnum):
    """Started by the worker, or opened by the schedule."""

    MANUAL = "manual"
    SCHEDULED = "scheduled"


class Shift(Base, TenantMixin):
    """A period of work; points outside every shift are not stored."""

    __tablename__ = "shifts"

    user_id: Mapped[uuid.UUID] = mapped_column(
        UUID(as_uuid=True), ForeignKey("users.id", ondelete="CASCADE"), nullable=False
    )
    started_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False)
    ended_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    source: Mapped[ShiftSource] = mapped_column(
        pg_enum(ShiftSource, "shift_source"), nullable=False, default=ShiftSource.MANUAL
    )

    __table_args__ = (
        Index("ix_shifts_user_time", "user_id", "started_at"),
        Index("uq_shifts_user_open", "user_id", unique=True, postgresql_where="ended_at IS NULL"),
        CheckConstraint("ended_at IS NULL OR ended_at > started_at", name="order"),
    )


class ShiftSchedule(Base):
    """A user's weekly shift pattern in their own time zone (``backend.tracking.schedule``)."""

    __tablename__ = "shift_schedules"

    user_id: Mapped[uuid.UUID] = mapped_column(
        UUID(as_uuid=True), ForeignKey("users.id", ondelete="CASCADE"), primary_key=True
    )
    organization_id: Mapped[uuid.UUID] = mapped_column(
        UUID(as_uuid=True), ForeignKey("organizations.id", ondelete="CASCADE"), nullable=False
    )
    schedule: Mapped[dict[str, Any]] = mapped_column(JSONB, nullable=False)
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False)


class LatestPosition(Base):
    """Where each user was last seen (upserted on ingest when newer): the live map's source."""

    __tablename__ = "latest_positions"

    user_id: Mapped[uuid.UUID] = mapped_column(
        UUID(as_uuid=True), ForeignKey("users.id", ondelete="CASCADE"), primary_key=True
    )
    organization_id: Mapped[uuid.UUID] = mapped_column(
        UUID(as_uuid=True), ForeignKey("organizations.id", ondelete="CASCADE"), nullable=False
    )
    recorded_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False)
    lat: Mapped[float] = mapped_column(Float, nullable=False)
    lon: Mapped[float] = mapped_column(Float, nullable=False)
    location: Mapped[str] = mapped_column(
        Geography(geometry_type="POINT", srid=4326, spatial_index=False), nullable=False
    )
    accuracy_m: Mapped[float | None] = mapped_column(Float)
    speed_mps: Mapped[float | None] = mapped_column(Float)
    heading_deg: Mapped[float | None] = mapped_column(Float)
    battery_pct: Mapped[float | None] = mapped_column(Float)
    mocked: Mapped[bool] = mapped_column(Boolean, nullable=False, default=False)
    activity: Mapped[str | None] = mapped_column(String(30))

    # Only organization_id indexed, half of each page free (migration 0012): updates stay on
    # their page (HOT) and old versions are pruned, so the table stays small for the live board.
    __table_args__ = (Index("ix_latest_positions_org", "organization_id"),)


class CheckKind(enum.StrEnum):
    """Arriving at or leaving a task's site."""

    IN = "in"
    OUT = "out"


class CheckStatus(enum.StrEnum):
    """How much a check-in can be trusted."""

    VERIFIED = "verified"
    UNVERIFIED = "unverified"
    SUSPICIOUS = "suspicious"
    OVERRIDDEN = "overridden"


class CheckIn(Base, TenantMixin):
    """Proof of visit: a check-in or check-out on a task, with how it was judged and why."""

    __tablename__ = "check_ins"

    task_id: Mapped[uuid.UUID] = mapped_column(
        UUID(as_uuid=True), ForeignKey("tasks.id", ondelete="CASCADE"), nullable=False
    )
    user_id: Mapped[uuid.UUID] = mapped_column(
        UUID(as_uuid=True), ForeignKey("users.id", ondelete="CASCADE"), nullable=False
    )
    kind: Mapped[CheckKind] = mapped_column(pg_enum(CheckKind, "check_kind"), nullable=False)
    at: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False)
    lat: Mapped[float | None] = mapped_column(Float)
    lon: Mapped[float | None] = mapped_column(Float)
    accuracy_m: Mapped[float | None] = mapped_column(Float)
    distance_m: Mapped[float | None] = mapped_column(Float)
    status: Mapped[CheckStatus] = mapped_column(
        pg_enum(CheckStatus, "check_status"), nullable=False
    )
    flags: Mapped[list[str]] = mapped_column(ARRAY(String(40)), nullable=False, default=list)
    override_reason: Mapped[str | None] = mapped_column(Text)
    dwell_s: Mapped[int | None] = mapped_column(Integer)
    outcome: Mapped[str | None] = mapped_column(Text)

    __table_args__ = (
        Index("ix_check_ins_task", "task_id", "at"),
        Index("ix_check_ins_user", "user_id", "at"),
    )


class DailySummary(Base):
    """One worker's day, kept after the raw points are dropped (appraisal reads these)."""

    __tablename__ = "daily_summaries"

    user_id: Mapped[uuid.UUID] = mapped_column(
        UUID(as_uuid=True), ForeignKey("users.id", ondelete="CASCADE"), primary_key=True
    )
    day: Mapped[date] = mapped_column(Date, primary_key=True)
    organization_id: Mapped[uuid.UUID] = mapped_column(
        UUID(as_uuid=True), ForeignKey("organizations.id", ondelete="CASCADE"), nullable=False
    )
    points: Mapped[int] = mapped_column(Integer, nullable=False)
    distance_m: Mapped[float] = mapped_column(Float, nullable=False)
    on_site_s: Mapped[int] = mapped_column(Integer, nullable=False)
    driving_s: Mapped[int] = mapped_column(Integer, nullable=False)
    idle_s: Mapped[int] = mapped_column(Integer, nullable=False)
    stops: Mapped[int] = mapped_column(Integer, nullable=False)
    computed_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False)
