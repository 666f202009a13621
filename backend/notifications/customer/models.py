"""Tables of customer notifications: per-visit message state, public links (stored hashed),
unsubscribed addresses, per-organisation message templates and the customers' visit feedback."""

from __future__ import annotations

import enum
import uuid
from datetime import datetime

from sqlalchemy import (
    CheckConstraint,
    DateTime,
    ForeignKey,
    Index,
    SmallInteger,
    String,
    Text,
    text,
)
from sqlalchemy.dialects.postgresql import UUID
from sqlalchemy.orm import Mapped, mapped_column

from backend.db.base import Base, IdMixin
from backend.routing.models import EtaChange
from backend.tasks.models import Task


class MessageKind(enum.StrEnum):
    """The messages a customer of a visit may get."""

    BOOKED = "booked"
    REMINDER = "reminder"
    ON_MY_WAY = "on_my_way"
    RUNNING_LATE = "running_late"
    FEEDBACK = "feedback"


class LinkPurpose(enum.StrEnum):
    """What a public link opens."""

    TRACKING = "tracking"
    FEEDBACK = "feedback"
    UNSUBSCRIBE = "unsubscribe"


class Channel(enum.StrEnum):
    """How a customer message travels."""

    EMAIL = "email"
    SMS = "sms"


def _org_fk() -> Mapped[uuid.UUID]:
    return mapped_column(
        UUID(as_uuid=True), ForeignKey("organizations.id", ondelete="CASCADE"), nullable=False
    )


class VisitMessageState(Base):
    """What the customer of one visit has been told, so each message goes out once.

    ``booked_start``/``booked_end``: the window of the last confirmation (a new window is
    confirmed again); ``reminded_start``: the window start of the last reminder;
    ``told_eta``: the arrival time last told (on my way / running late), which a re-plan is
    compared with; ``late_sent_at``: the last running-late message (at most one per 15 min).
    """

    __tablename__ = "customer_visit_states"

    task_id: Mapped[uuid.UUID] = mapped_column(
        UUID(as_uuid=True), ForeignKey("tasks.id", ondelete="CASCADE"), primary_key=True
    )
    organization_id: Mapped[uuid.UUID] = _org_fk()
    booked_start: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    booked_end: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    booked_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    reminded_start: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    on_my_way_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    told_eta: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    late_sent_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    feedback_requested_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class CustomerLink(Base, IdMixin):
    """A public link sent to a customer. Only the SHA-256 of its token is stored; the token
    itself (``secrets.token_urlsafe(32)``, 256 bits) exists only in the message."""

    __tablename__ = "customer_links"

    organization_id: Mapped[uuid.UUID] = _org_fk()
    purpose: Mapped[str] = mapped_column(String(20), nullable=False)
    token_hash: Mapped[str] = mapped_column(String(64), nullable=False, unique=True)
    task_id: Mapped[uuid.UUID | None] = mapped_column(
        UUID(as_uuid=True), ForeignKey("tasks.id", ondelete="CASCADE")
    )
    channel: Mapped[str | None] = mapped_column(String(10))
    address: Mapped[str | None] = mapped_column(String(320))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False)
    expires_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False)
    revoked_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))

    __table_args__ = (
        Index("ix_customer_links_task", "task_id", "purpose"),
        CheckConstraint("purpose IN ('tracking', 'feedback', 'unsubscribe')", name="known_purpose"),
        CheckConstraint(
            "(purpose = 'unsubscribe') = (address IS NOT NULL AND channel IS NOT NULL)"
            " AND (purpose = 'unsubscribe' OR task_id IS NOT NULL)",
            name="purpose_fields",
        ),
    )


class Unsubscribe(Base):
    """An address that asked for no more messages from the organisation."""

    __tablename__ = "customer_unsubscribes"

    organization_id: Mapped[uuid.UUID] = mapped_column(
        UUID(as_uuid=True),
        ForeignKey("organizations.id", ondelete="CASCADE"),
        primary_key=True,
    )
    address: Mapped[str] = mapped_column(String(320), primary_key=True)
    channel: Mapped[str] = mapped_column(String(10), nullable=False)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False)


class MessageTemplate(Base):
    """An organisation's own wording of one message kind in one language (the shipped
    defaults apply where there is none)."""

    __tablename__ = "customer_message_templates"

    organization_id: Mapped[uuid.UUID] = mapped_column(
        UUID(as_uuid=True),
        ForeignKey("organizations.id", ondelete="CASCADE"),
        primary_key=True,
    )
    kind: Mapped[str] = mapped_column(String(30), primary_key=True)
    language: Mapped[str] = mapped_column(String(8), primary_key=True)
    subject: Mapped[str] = mapped_column(Text, nullable=False)
    text: Mapped[str] = mapped_column(Text, nullable=False)
    html: Mapped[str] = mapped_column(Text, nullable=False)
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False)
    updated_by_id: Mapped[uuid.UUID | None] = mapped_column(
        UUID(as_uuid=True), ForeignKey("users.id", ondelete="SET NULL")
    )


class VisitFeedback(Base, IdMixin):
    """The customer's rating (1-5) and comment on a visit; one per visit (read by appraisal)."""

    __tablename__ = "visit_feedback"

    organization_id: Mapped[uuid.UUID] = _org_fk()
    task_id: Mapped[uuid.UUID] = mapped_column(
        UUID(as_uuid=True), ForeignKey("tasks.id", ondelete="CASCADE"), nullable=False, unique=True
    )
    rating: Mapped[int] = mapped_column(SmallInteger, nullable=False)
    comment: Mapped[str | None] = mapped_column(Text)
    submitted_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False)

    __table_args__ = (
        CheckConstraint("rating BETWEEN 1 AND 5", name="rating_range"),
        Index("ix_visit_feedback_org_time", "organization_id", "submitted_at"),
    )


# Indexes on other domains' tables that serve only the customer-message scans (``scans``):
# visits completed lately (feedback requests) and the newest ETA changes, across organisations.
Index(
    "ix_tasks_done_visits_completed",
    Task.completed_at,
    postgresql_where=text(
        "status = 'done' AND kind IN ('measurement', 'installation', 'visit')"
        " AND customer_id IS NOT NULL"
    ),
)
Index("ix_eta_changes_changed_at", EtaChange.changed_at)
