"""Request and response bodies of the notification centre, devices, settings and the outbox."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Any

import msgspec

from backend.accounts.schemas import Input, Output
from backend.notifications.models import OutboxStatus, PushPlatform


class NotificationOut(Output):
    id: uuid.UUID
    kind: str
    title: str
    body: str | None
    link: str | None
    data: dict[str, Any]
    urgent: bool
    created_at: datetime
    read_at: datetime | None


class UnreadCount(Output):
    unread: int


class MarkRead(Input):
    """Mark these notifications read; leave ``ids`` out to mark all read."""

    ids: Annotated[list[uuid.UUID], msgspec.Meta(max_length=500)] | None = None


class MarkedRead(Output):
    marked: int


class DeviceIn(Input):
    """Register (or refresh) this phone's or browser's FCM registration token."""

    token: Annotated[str, msgspec.Meta(min_length=10, max_length=4096, pattern=r"^[\x21-\x7e]+$")]
    platform: PushPlatform
    app_version: Annotated[str, msgspec.Meta(min_length=1, max_length=50)] | None = None


class DeviceOut(Output):
    id: uuid.UUID
    platform: PushPlatform
    app_version: str | None
    token_suffix: str
    last_seen_at: datetime
    created_at: datetime


class WebPushKeys(Input):
    """The subscription's keys as the browser serialises them (base64url)."""

    p256dh: Annotated[str, msgspec.Meta(min_length=80, max_length=200)]
    auth: Annotated[str, msgspec.Meta(min_length=16, max_length=100)]


class WebPushSubscriptionIn(Input):
    """A browser's PushSubscription.toJSON() (expirationTime is accepted and ignored)."""

    endpoint: Annotated[str, msgspec.Meta(min_length=10, max_length=2048)]
    keys: WebPushKeys
    expiration_time: int | None = None


class WebPushSubscriptionOut(Output):
    id: uuid.UUID
    endpoint_host: str
    last_seen_at: datetime
    created_at: datetime


class KindChannels(msgspec.Struct, rename="camel", forbid_unknown_fields=True, kw_only=True):
    """Channels of one notification kind (in-app is always on)."""

    push: bool = True
    email: bool = False


class QuietHours(msgspec.Struct, rename="camel", forbid_unknown_fields=True, kw_only=True):
    """Local times HH:MM in the user's time zone; the span may wrap midnight."""

    start: Annotated[str, msgspec.Meta(min_length=4, max_length=5)]
    end: Annotated[str, msgspec.Meta(min_length=4, max_length=5)]


class NotificationSettingsIn(Input):
    """The caller's settings; kinds left out use the defaults; quietHours null: none."""

    kinds: Annotated[dict[str, KindChannels], msgspec.Meta(max_length=100)] = {}
    quiet_hours: QuietHours | None = None


class NotificationSettingsOut(Output):
    kinds: dict[str, KindChannels]
    quiet_hours: QuietHours | None
    defaults: KindChannels


class OutboxOut(Output):
    id: uuid.UUID
    topic: str
    payload: dict[str, Any]
    dedupe_key: str
    status: OutboxStatus
    attempts: int
    available_at: datetime
    created_at: datetime
    sent_at: datetime | None
    last_error: str | None
    note: str | None
    progress: list[str]


class WebPushKey(Output):
    public_key: str | None
