"""In-app notifications per user, the transactional outbox that delivers them, and where and
when each user wants them: push devices, web push subscriptions, per-kind channel settings."""

from __future__ import annotations

import enum
import uuid
from datetime import datetime, time
from typing import Any

from sqlalchemy import (
    Boolean,
    CheckConstraint,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    Time,
    text,
)
from sqlalchemy.dialects.postgresql import JSONB, UUID
from sqlalchemy.orm import Mapped, mapped_column

from backend.db.base import Base, IdMixin, TenantMixin, TimestampMixin, pg_enum


class Notification(Base, TenantMixin):
    """A message for one user, shown in the notification centre.

    ``dedupe_key`` is unique per organisation: writing the same notification twice (a retried
    job, two workers) stores it once.
    """

    __tablename__ = "notifications"

    user_id: Mapped[uuid.UUID] = mapped_column(
        UUID(as_uuid=True), ForeignKey("users.id", ondelete="CASCADE"), nullable=False
    )
    kind: Mapped[str] = mapped_column(String(50), nullable=False)
    title: Mapped[str] = mapped_column(String(300), nullable=False)
    body: Mapped[str | None] = mapped_column(Text)
    link: Mapped[str | None] = mapped_column(String(500))
    data: Mapped[dict[str, Any]] = mapped_column(JSONB, nullable=False, default=dict)
    urgent: Mapped[bool] = mapped_column(Boolean, nullable=False, default=False)
    dedupe_key: Mapped[str] = mapped_column(String(200), nullable=False)
    read_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))

    __table_args__ = (
        Index("uq_notifications_org_dedupe", "organization_id", "dedupe_key", unique=True),
        Index("ix_notifications_user_time", "user_id", "created_at", "id"),
        Index("ix_notifications_user_unread", "user_id", postgresql_where="read_at IS NULL"),
    )


class OutboxStatus(enum.StrEnum):
    """Delivery state of an outbox row."""

    PENDING = "pending"
    SENT = "sent"
    DEAD = "dead"


class OutboxMessage(Base, IdMixin):
    """Something to send outside the process, written in the transaction of the change that
    caused it and relayed by the worker after commit."""

    __tablename__ = "outbox"

    organization_id: Mapped[uuid.UUID] = mapped_column(
        UUID(as_uuid=True), ForeignKey("organizations.id", ondelete="CASCADE"), nullable=False
    )
    topic: Mapped[str] = mapped_column(String(50), nullable=False)
    payload: Mapped[dict[str, Any]] = mapped_column(JSONB, nullable=False)
    dedupe_key: Mapped[str] = mapped_column(String(200), nullable=False)
    status: Mapped[OutboxStatus] = mapped_column(
        pg_enum(OutboxStatus, "outbox_status"), nullable=False, default=OutboxStatus.PENDING
    )
    attempts: Mapped[int] = mapped_column(Integer, nullable=False, default=0)
    available_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False)
    sent_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    last_error: Mapped[str | None] = mapped_column(Text)
    # Targets of a fan-out already delivered ("fcm:<device id>", "email:<user id>", ...), so a
    # retry sends only what is still missing.
    progress: Mapped[list[str]] = mapped_column(
        JSONB, nullable=False, default=list, server_default=text("'[]'::jsonb")
    )
    # Why a row was sent without reaching anyone (a channel not configured, no device).
    note: Mapped[str | None] = mapped_column(Text)

    __table_args__ = (
        Index("uq_outbox_org_dedupe", "organization_id", "dedupe_key", unique=True),
        Index("ix_outbox_pending", "available_at", postgresql_where="status = 'pending'"),
        Index("ix_outbox_org_status_time", "organization_id", "status", "created_at", "id"),
    )


class PushPlatform(enum.StrEnum):
    """Where an FCM registration token lives."""

    ANDROID = "android"
    IOS = "ios"
    WEB = "web"


class PushDevice(Base, TenantMixin):
    """A phone or browser's FCM registration token (not a GPS device: see tracking.Device).

    The token is unique: registering a token that another account had moves it to the caller
    (the app on that phone is now logged in as the caller).
    """

    __tablename__ = "push_devices"

    user_id: Mapped[uuid.UUID] = mapped_column(
        UUID(as_uuid=True), ForeignKey("users.id", ondelete="CASCADE"), nullable=False, index=True
    )
    token: Mapped[str] = mapped_column(String(4096), nullable=False)
    platform: Mapped[PushPlatform] = mapped_column(
        pg_enum(PushPlatform, "push_platform"), nullable=False
    )
    app_version: Mapped[str | None] = mapped_column(String(50))
    last_seen_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False)

    __table_args__ = (Index("uq_push_devices_token", "token", unique=True),)


class WebPushSubscriptionRow(Base, TenantMixin):
    """A browser's Web Push subscription (endpoint and its keys, base64url)."""

    __tablename__ = "web_push_subscriptions"

    user_id: Mapped[uuid.UUID] = mapped_column(
        UUID(as_uuid=True), ForeignKey("users.id", ondelete="CASCADE"), nullable=False, index=True
    )
    endpoint: Mapped[str] = mapped_column(String(2048), nullable=False)
    p256dh: Mapped[str] = mapped_column(String(200), nullable=False)
    auth: Mapped[str] = mapped_column(String(100), nullable=False)
    last_seen_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False)

    __table_args__ = (Index("uq_web_push_subscriptions_endpoint", "endpoint", unique=True),)


class NotificationSettings(Base, TimestampMixin):
    """A user's choices: channels per notification kind (``{"task_assigned": {"push": true,
    "email": false}}``; a kind left out uses the defaults) and quiet hours in the user's time
    zone (``quiet_start`` to ``quiet_end``, may wrap midnight; urgent kinds are exempt)."""

    __tablename__ = "notification_settings"

    user_id: Mapped[uuid.UUID] = mapped_column(
        UUID(as_uuid=True), ForeignKey("users.id", ondelete="CASCADE"), primary_key=True
    )
    organization_id: Mapped[uuid.UUID] = mapped_column(
        UUID(as_uuid=True), ForeignKey("organizations.id", ondelete="CASCADE"), nullable=False
    )
    channels: Mapped[dict[str, Any]] = mapped_column(JSONB, nullable=False, default=dict)
    quiet_start: Mapped[time | None] = mapped_column(Time)
    quiet_end: Mapped[time | None] = mapped_column(Time)

    __table_args__ = (
        CheckConstraint(
            "(quiet_start IS NULL) = (quiet_end IS NULL)"
            " AND (quiet_start IS NULL OR quiet_start <> quiet_end)",
            name="quiet_hours_pair",
        ),
    )
