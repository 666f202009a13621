"""Organisations, users, teams and authentication sessions."""

from __future__ import annotations

import enum
import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import (
    Boolean,
    CheckConstraint,
    DateTime,
    Enum,
    Float,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    func,
    text,
)
from sqlalchemy.dialects.postgresql import ARRAY, JSONB, UUID
from sqlalchemy.orm import Mapped, mapped_column

from backend.db.base import Base, IdMixin, TenantMixin, TimestampMixin


class Role(enum.StrEnum):
    """What a user may do: admins run the organisation, managers lead teams, field staff work."""

    ADMIN = "admin"
    MANAGER = "manager"
    FIELD = "field"


class Skill(enum.StrEnum):
    """What field work a user can do; a user may have several."""

    MEASURER = "measurer"
    INSTALLER = "installer"
    SALESPERSON = "salesperson"


class Organization(Base, IdMixin, TimestampMixin):
    """A company using fieldcrm; the unit of tenancy."""

    __tablename__ = "organizations"

    name: Mapped[str] = mapped_column(String(200), nullable=False)
    time_zone: Mapped[str] = mapped_column(String(64), nullable=False, default="UTC")
    currency: Mapped[str] = mapped_column(String(3), nullable=False, default="EUR")
    locale: Mapped[str] = mapped_column(String(16), nullable=False, default="en")
    # Bank and payment details printed on documents (recipient, bank, account, BIC, tax id...).
    payment_details: Mapped[dict[str, Any]] = mapped_column(JSONB, nullable=False, default=dict)
    # Working hours for business-time deadlines (``backend.tasks.deadlines`` shape); {} = default.
    business_hours: Mapped[dict[str, Any]] = mapped_column(
        JSONB, nullable=False, default=dict, server_default=text("'{}'::jsonb")
    )

    __table_args__ = (CheckConstraint("currency ~ '^[A-Z]{3}$'", name="currency_iso"),)


class User(Base, TenantMixin):
    """A person who logs in. Email is unique across fieldcrm so login needs nothing else."""

    __tablename__ = "users"

    email: Mapped[str] = mapped_column(String(320), nullable=False)
    password_hash: Mapped[str] = mapped_column(Text, nullable=False)
    full_name: Mapped[str] = mapped_column(String(200), nullable=False)
    role: Mapped[Role] = mapped_column(
        Enum(Role, name="user_role", values_callable=lambda e: [m.value for m in e]),
        nullable=False,
    )
    skills: Mapped[list[str]] = mapped_column(ARRAY(String(32)), nullable=False, default=list)
    phone: Mapped[str | None] = mapped_column(String(20))
    time_zone: Mapped[str] = mapped_column(String(64), nullable=False, default="UTC")
    # Where a field worker's day starts and ends (home or depot); routes start at the first
    # visit when unset.
    base_lat: Mapped[float | None] = mapped_column(Float)
    base_lon: Mapped[float | None] = mapped_column(Float)
    is_active: Mapped[bool] = mapped_column(Boolean, nullable=False, default=True)
    # Bumped on password change and deactivation: every token issued before is void.
    token_version: Mapped[int] = mapped_column(Integer, nullable=False, default=1)

    __table_args__ = (
        Index("uq_users_email_lower", func.lower(email), unique=True),
        CheckConstraint(
            "skills <@ ARRAY['measurer','installer','salesperson']::varchar[]", name="known_skills"
        ),
        CheckConstraint(
            "(base_lat IS NULL) = (base_lon IS NULL) AND base_lat BETWEEN -90 AND 90"
            " AND base_lon BETWEEN -180 AND 180",
            name="base_in_range",
        ),
    )


class Team(Base, TenantMixin):
    """A group of users led by a manager."""

    __tablename__ = "teams"

    name: Mapped[str] = mapped_column(String(200), nullable=False)
    lead_id: Mapped[uuid.UUID | None] = mapped_column(
        UUID(as_uuid=True), ForeignKey("users.id", ondelete="SET NULL"), index=True
    )

    __table_args__ = (Index("uq_teams_org_name", "organization_id", "name", unique=True),)


class TeamMember(Base):
    """Membership of a user in a team."""

    __tablename__ = "team_members"

    team_id: Mapped[uuid.UUID] = mapped_column(
        UUID(as_uuid=True), ForeignKey("teams.id", ondelete="CASCADE"), primary_key=True
    )
    user_id: Mapped[uuid.UUID] = mapped_column(
        UUID(as_uuid=True), ForeignKey("users.id", ondelete="CASCADE"), primary_key=True, index=True
    )
    organization_id: Mapped[uuid.UUID] = mapped_column(
        UUID(as_uuid=True), ForeignKey("organizations.id", ondelete="CASCADE"), nullable=False
    )


class SessionKind(enum.StrEnum):
    """A refresh token held by a phone/API client, or a browser's session cookie."""

    REFRESH = "refresh"
    WEB = "web"


class AuthSession(Base, IdMixin):
    """A revocable credential: only the SHA-256 of the secret is stored."""

    __tablename__ = "auth_sessions"

    user_id: Mapped[uuid.UUID] = mapped_column(
        UUID(as_uuid=True), ForeignKey("users.id", ondelete="CASCADE"), nullable=False, index=True
    )
    organization_id: Mapped[uuid.UUID] = mapped_column(
        UUID(as_uuid=True), ForeignKey("organizations.id", ondelete="CASCADE"), nullable=False
    )
    kind: Mapped[SessionKind] = mapped_column(
        Enum(SessionKind, name="session_kind", values_callable=lambda e: [m.value for m in e]),
        nullable=False,
    )
    token_hash: Mapped[bytes] = mapped_column(nullable=False, unique=True)
    token_version: Mapped[int] = mapped_column(Integer, nullable=False)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False)
    expires_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False)
    revoked_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    # The refresh token this one replaced; reuse of a replaced token revokes the whole chain.
    replaced_by_id: Mapped[uuid.UUID | None] = mapped_column(UUID(as_uuid=True))
    user_agent: Mapped[str | None] = mapped_column(String(300))
