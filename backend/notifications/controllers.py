"""JSON API of the caller's notification centre, devices and settings, and the admins' outbox."""

from __future__ import annotations

import uuid
from typing import Annotated, Any

from litestar import Controller, Request, Response, delete, get, post, put
from litestar.channels import ChannelsPlugin
from litestar.datastructures import State
from litestar.params import Parameter
from litestar.response import ServerSentEvent
from sqlalchemy.ext.asyncio import AsyncSession

from backend.config import Settings
from backend.lib.clock import Clock
from backend.lib.pagination import DEFAULT_LIMIT, Cursor, Limit, Page
from backend.lib.tenancy import Actor
from backend.notifications import devices, preferences, schemas, services, stream
from backend.notifications.models import OutboxStatus


class NotificationController(Controller):
    """The caller's own notifications."""

    path = "/api/v1/me/notifications"
    tags = ["notifications"]

    @get("/")
    async def list_notifications(
        self,
        db_session: AsyncSession,
        actor: Actor,
        unread: Annotated[bool, Parameter(description="only unread ones")] = False,
        limit: Limit = DEFAULT_LIMIT,
        cursor: Cursor = None,
    ) -> Page[schemas.NotificationOut]:
        """Newest first."""
        return await services.list_notifications(
            db_session, actor, unread_only=unread, limit=limit, cursor=cursor
        )

    @get("/unread-count")
    async def unread_count(self, db_session: AsyncSession, actor: Actor) -> schemas.UnreadCount:
        """How many are unread (for the badge)."""
        return schemas.UnreadCount(unread=await services.unread_count(db_session, actor))

    @post("/read", status_code=200)
    async def mark_read(
        self, data: schemas.MarkRead, db_session: AsyncSession, actor: Actor, clock: Clock
    ) -> schemas.MarkedRead:
        """Mark some or all read."""
        marked = await services.mark_read(db_session, actor, data.ids, clock.now())
        return schemas.MarkedRead(marked=marked)

    @get("/stream", media_type="text/event-stream")
    async def live(
        self, request: Request[Any, Any, Any], actor: Actor, state: State
    ) -> ServerSentEvent:
        """Server-sent events: ``count`` (``{"unread": n}``) at once and after every change,
        ``notification`` (the new item) for each new one. Any API process serves it
        (PostgreSQL LISTEN/NOTIFY)."""
        channels = request.app.plugins.get(ChannelsPlugin)
        return ServerSentEvent(stream.events(channels, state.sessionmaker, actor))


class DeviceController(Controller):
    """The caller's push targets: FCM registration tokens and Web Push subscriptions."""

    path = "/api/v1/me"
    tags = ["notifications"]

    @post("/devices", status_code=200)
    async def register_device(
        self, data: schemas.DeviceIn, db_session: AsyncSession, actor: Actor, clock: Clock
    ) -> Response[schemas.DeviceOut]:
        """Register or refresh this device's FCM token (201 when new, 200 when refreshed)."""
        device, created = await devices.register_device(db_session, actor, data, clock.now())
        return Response(device, status_code=201 if created else 200)

    @get("/devices")
    async def list_devices(self, db_session: AsyncSession, actor: Actor) -> list[schemas.DeviceOut]:
        """The caller's own devices."""
        return await devices.list_devices(db_session, actor)

    @delete("/devices/{device_id:uuid}", status_code=204)
    async def delete_device(
        self, device_id: uuid.UUID, db_session: AsyncSession, actor: Actor
    ) -> None:
        """Forget one of the caller's devices (at logout)."""
        await devices.delete_device(db_session, actor, device_id)

    @post("/web-push-subscriptions", status_code=200)
    async def register_subscription(
        self,
        data: schemas.WebPushSubscriptionIn,
        db_session: AsyncSession,
        actor: Actor,
        clock: Clock,
        settings: Settings,
    ) -> Response[schemas.WebPushSubscriptionOut]:
        """Register or refresh this browser's Web Push subscription (201 when new)."""
        sub, created = await devices.register_subscription(
            db_session, actor, data, clock.now(), allow_http=settings.is_development
        )
        return Response(sub, status_code=201 if created else 200)

    @get("/web-push-subscriptions")
    async def list_subscriptions(
        self, db_session: AsyncSession, actor: Actor
    ) -> list[schemas.WebPushSubscriptionOut]:
        """The caller's own browser subscriptions."""
        return await devices.list_subscriptions(db_session, actor)

    @delete("/web-push-subscriptions/{subscription_id:uuid}", status_code=204)
    async def delete_subscription(
        self, subscription_id: uuid.UUID, db_session: AsyncSession, actor: Actor
    ) -> None:
        """Forget one of the caller's browser subscriptions."""
        await devices.delete_subscription(db_session, actor, subscription_id)

    @get("/web-push-key", sync_to_thread=False)
    def web_push_key(self, settings: Settings) -> schemas.WebPushKey:
        """The VAPID public key browsers subscribe with (null when Web Push is off)."""
        return schemas.WebPushKey(public_key=settings.vapid_public_key)

    @get("/notification-settings")
    async def get_settings(
        self, db_session: AsyncSession, actor: Actor
    ) -> schemas.NotificationSettingsOut:
        """Channels per kind (push, e-mail; in-app is always on) and quiet hours."""
        return await preferences.get_settings(db_session, actor)

    @put("/notification-settings")
    async def put_settings(
        self,
        data: schemas.NotificationSettingsIn,
        db_session: AsyncSession,
        actor: Actor,
        clock: Clock,
    ) -> schemas.NotificationSettingsOut:
        """Replace the caller's settings. Quiet hours are local times in the caller's time
        zone; non-urgent push and e-mail inside them wait for their end."""
        return await preferences.put_settings(db_session, actor, data, clock.now())


class OutboxAdminController(Controller):
    """What the relay is doing, for admins."""

    path = "/api/v1/admin/outbox"
    tags = ["admin"]

    @get("/")
    async def list_outbox(
        self,
        db_session: AsyncSession,
        actor: Actor,
        status: Annotated[
            OutboxStatus | None, Parameter(description="pending, sent or dead")
        ] = None,
        limit: Limit = DEFAULT_LIMIT,
        cursor: Cursor = None,
    ) -> Page[schemas.OutboxOut]:
        """The organisation's outbox, newest first (admins only)."""
        return await services.list_outbox(
            db_session, actor, status=status, limit=limit, cursor=cursor
        )

    @post("/{outbox_id:uuid}/retry", status_code=200)
    async def retry(
        self, outbox_id: uuid.UUID, db_session: AsyncSession, actor: Actor, clock: Clock
    ) -> schemas.OutboxOut:
        """Send a dead message again (admins only; 409 unless it is dead)."""
        return await services.retry_outbox(db_session, actor, outbox_id, clock.now())


CONTROLLERS = [NotificationController, DeviceController, OutboxAdminController]
