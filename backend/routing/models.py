"""Routing tables: each worker's planned day (the cached order), ETA changes, dispatch plans."""

from __future__ import annotations

import uuid
from datetime import date, datetime
from typing import Any

from sqlalchemy import Boolean, Date, DateTime, ForeignKey, Index, Integer, String
from sqlalchemy.dialects.postgresql import ARRAY, JSONB, UUID
from sqlalchemy.orm import Mapped, mapped_column

from backend.db.base import Base, IdMixin, TenantMixin


class RoutePlan(Base):
    """The driving order the optimiser chose for a worker's day, and what it was chosen for.

    ``signature`` fingerprints the visits it was solved for (ids, sites, windows, status): when
    the day's visits no longer match it the order is re-optimised. ``legs`` keeps the travel
    (seconds, metres) between consecutive places of the order as the travel source gave them
    (OSRM when configured), keyed ``"<from>><to>"`` with task ids or ``base``. ``etas`` holds
    the last ETA published per task: a re-plan that moves one records an `EtaChange`.
    """

    __tablename__ = "route_plans"

    user_id: Mapped[uuid.UUID] = mapped_column(
        UUID(as_uuid=True), ForeignKey("users.id", ondelete="CASCADE"), primary_key=True
    )
    day: Mapped[date] = mapped_column(Date, primary_key=True)
    organization_id: Mapped[uuid.UUID] = mapped_column(
        UUID(as_uuid=True), ForeignKey("organizations.id", ondelete="CASCADE"), nullable=False
    )
    signature: Mapped[str] = mapped_column(String(64), nullable=False)
    task_ids: Mapped[list[uuid.UUID]] = mapped_column(ARRAY(UUID(as_uuid=True)), nullable=False)
    legs: Mapped[dict[str, Any]] = mapped_column(JSONB, nullable=False, default=dict)
    etas: Mapped[dict[str, Any]] = mapped_column(JSONB, nullable=False, default=dict)
    optimised: Mapped[bool] = mapped_column(Boolean, nullable=False)
    solved_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False)


class EtaChange(Base, IdMixin):
    """A visit's ETA moved by a re-plan (a visit overran, the worker is late or early)."""

    __tablename__ = "eta_changes"

    organization_id: Mapped[uuid.UUID] = mapped_column(
        UUID(as_uuid=True), ForeignKey("organizations.id", ondelete="CASCADE"), nullable=False
    )
    task_id: Mapped[uuid.UUID] = mapped_column(
        UUID(as_uuid=True), ForeignKey("tasks.id", ondelete="CASCADE"), nullable=False
    )
    user_id: Mapped[uuid.UUID] = mapped_column(
        UUID(as_uuid=True), ForeignKey("users.id", ondelete="CASCADE"), nullable=False
    )
    previous_eta: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False)
    new_eta: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False)
    delta_s: Mapped[int] = mapped_column(Integer, nullable=False)
    changed_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False)

    __table_args__ = (
        Index("ix_eta_changes_task_time", "task_id", "changed_at"),
        Index("ix_eta_changes_org_time", "organization_id", "changed_at"),
    )


class DispatchPlan(Base, TenantMixin):
    """A manager's plan of a team's day: previewed (``preview``), then applied once
    (``applied_at``, ``result``); applying again answers the stored result."""

    __tablename__ = "dispatch_plans"

    team_id: Mapped[uuid.UUID] = mapped_column(
        UUID(as_uuid=True), ForeignKey("teams.id", ondelete="CASCADE"), nullable=False
    )
    day: Mapped[date] = mapped_column(Date, nullable=False)
    created_by_id: Mapped[uuid.UUID | None] = mapped_column(
        UUID(as_uuid=True), ForeignKey("users.id", ondelete="SET NULL")
    )
    preview: Mapped[dict[str, Any]] = mapped_column(JSONB, nullable=False)
    applied_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    applied_by_id: Mapped[uuid.UUID | None] = mapped_column(
        UUID(as_uuid=True), ForeignKey("users.id", ondelete="SET NULL")
    )
    result: Mapped[dict[str, Any] | None] = mapped_column(JSONB)

    __table_args__ = (Index("ix_dispatch_plans_team_day", "team_id", "day"),)
