"""Where a user's push messages go: FCM registration tokens and Web Push subscriptions.

Registering is an upsert on the token (or endpoint): the same phone registering again refreshes
``last_seen_at`` and its app version; a token last held by another account (someone else logged
in on that phone before) moves to the caller, because FCM delivers to the app install, not the
person. Listing and deleting only ever touch the caller's own rows (others' are "not found").
The relay deletes tokens FCM declares gone (`remove_devices`, `remove_subscriptions`).
"""

from __future__ import annotations

import uuid
from datetime import datetime
from urllib.parse import urlsplit

from sqlalchemy import delete, select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from backend.lib.errors import InvalidInput, NotFound
from backend.lib.tenancy import Actor
from backend.notifications import schemas
from backend.notifications.models import PushDevice, WebPushSubscriptionRow
from push.webpush import b64url_decode

MAX_DEVICES_PER_USER = 20


def device_out(row: PushDevice) -> schemas.DeviceOut:
    """The API shape of a device: never the whole token, only its last characters."""
    return schemas.DeviceOut(
        id=row.id,
        platform=row.platform,
        app_version=row.app_version,
        token_suffix=row.token[-6:],
        last_seen_at=row.last_seen_at,
        created_at=row.created_at,
    )


def subscription_out(row: WebPushSubscriptionRow) -> schemas.WebPushSubscriptionOut:
    """The API shape of a web push subscription (its push service's host only)."""
    return schemas.WebPushSubscriptionOut(
        id=row.id,
        endpoint_host=urlsplit(row.endpoint).hostname or "",
        last_seen_at=row.last_seen_at,
        created_at=row.created_at,
    )


async def register_device(
    session: AsyncSession, actor: Actor, data: schemas.DeviceIn, now: datetime
) -> tuple[schemas.DeviceOut, bool]:
    """Upsert the caller's device by token: (device, created)."""
    existing = await session.scalar(select(PushDevice).where(PushDevice.token == data.token))
    if existing is None:
        await _check_room(session, actor, PushDevice)
    values = {
        "organization_id": actor.organization_id,
        "user_id": actor.user_id,
        "platform": data.platform,
        "app_version": data.app_version,
        "last_seen_at": now,
        "updated_at": now,
    }
    row = await session.scalar(
        insert(PushDevice)
        .values(token=data.token, created_at=now, **values)
        .on_conflict_do_update(index_elements=[PushDevice.token], set_=values)
        .returning(PushDevice)
        .execution_options(populate_existing=True)
    )
    assert row is not None
    return device_out(row), existing is None


async def list_devices(session: AsyncSession, actor: Actor) -> list[schemas.DeviceOut]:
    """The caller's own devices, most recently seen first."""
    rows = await session.scalars(
        select(PushDevice)
        .where(
            PushDevice.organization_id == actor.organization_id,
            PushDevice.user_id == actor.user_id,
        )
        .order_by(PushDevice.last_seen_at.desc(), PushDevice.id)
    )
    return [device_out(r) for r in rows]


async def delete_device(session: AsyncSession, actor: Actor, device_id: uuid.UUID) -> None:
    """Forget one of the caller's devices (404 for anyone else's)."""
    deleted = await session.scalar(
        delete(PushDevice)
        .where(
            PushDevice.id == device_id,
            PushDevice.organization_id == actor.organization_id,
            PushDevice.user_id == actor.user_id,
        )
        .returning(PushDevice.id)
    )
    if deleted is None:
        raise NotFound("No such device")


def check_endpoint(endpoint: str, allow_http: bool) -> str:
    """A push service URL: https (http only in development and tests), with a host."""
    parts = urlsplit(endpoint)
    schemes = {"https", "http"} if allow_http else {"https"}
    if parts.scheme not in schemes or not parts.hostname:
        raise InvalidInput.on("endpoint", "an https URL of a push service")
    return endpoint


def _check_key(value: str, field: str, size: int | None) -> str:
    try:
        raw = b64url_decode(value)
    except ValueError as exc:
        raise InvalidInput.on(field, "base64url") from exc
    if size is not None and len(raw) != size:
        raise InvalidInput.on(field, f"must decode to {size} bytes")
    if size is None and len(raw) < 16:
        raise InvalidInput.on(field, "must decode to at least 16 bytes")
    return value


async def register_subscription(
    session: AsyncSession,
    actor: Actor,
    data: schemas.WebPushSubscriptionIn,
    now: datetime,
    *,
    allow_http: bool,
) -> tuple[schemas.WebPushSubscriptionOut, bool]:
    """Upsert the caller's browser subscription by endpoint: (subscription, created)."""
    endpoint = check_endpoint(data.endpoint, allow_http)
    p256dh = _check_key(data.keys.p256dh, "keys.p256dh", 65)
    auth = _check_key(data.keys.auth, "keys.auth", None)
    existing = await session.scalar(
        select(WebPushSubscriptionRow.id).where(WebPushSubscriptionRow.endpoint == endpoint)
    )
    if existing is None:
        await _check_room(session, actor, WebPushSubscriptionRow)
    values = {
        "organization_id": actor.organization_id,
        "user_id": actor.user_id,
        "p256dh": p256dh,
        "auth": auth,
        "last_seen_at": now,
        "updated_at": now,
    }
    row = await session.scalar(
        insert(WebPushSubscriptionRow)
        .values(endpoint=endpoint, created_at=now, **values)
        .on_conflict_do_update(index_elements=[WebPushSubscriptionRow.endpoint], set_=values)
        .returning(WebPushSubscriptionRow)
        .execution_options(populate_existing=True)
    )
    assert row is not None
    return subscription_out(row), existing is None


async def list_subscriptions(
    session: AsyncSession, actor: Actor
) -> list[schemas.WebPushSubscriptionOut]:
    """The caller's own browser subscriptions."""
    rows = await session.scalars(
        select(WebPushSubscriptionRow)
        .where(
            WebPushSubscriptionRow.organization_id == actor.organization_id,
            WebPushSubscriptionRow.user_id == actor.user_id,
        )
        .order_by(WebPushSubscriptionRow.last_seen_at.desc(), WebPushSubscriptionRow.id)
    )
    return [subscription_out(r) for r in rows]


async def delete_subscription(
    session: AsyncSession, actor: Actor, subscription_id: uuid.UUID
) -> None:
    """Forget one of the caller's browser subscriptions (404 for anyone else's)."""
    deleted = await session.scalar(
        delete(WebPushSubscriptionRow)
        .where(
            WebPushSubscriptionRow.id == subscription_id,
            WebPushSubscriptionRow.organization_id == actor.organization_id,
            WebPushSubscriptionRow.user_id == actor.user_id,
        )
        .returning(WebPushSubscriptionRow.id)
    )
    if deleted is None:
        raise NotFound("No such subscription")


async def _check_room(
    session: AsyncSession, actor: Actor, model: type[PushDevice] | type[WebPushSubscriptionRow]
) -> None:
    ids = (
        await session.scalars(
            select(model.id)
            .where(model.organization_id == actor.organization_id, model.user_id == actor.user_id)
            .limit(MAX_DEVICES_PER_USER)
        )
    ).all()
    if len(ids) >= MAX_DEVICES_PER_USER:
        raise InvalidInput.on(
            "token" if model is PushDevice else "endpoint",
            f"at most {MAX_DEVICES_PER_USER} per user: delete an old one first",
        )


async def remove_devices(session: AsyncSession, device_ids: list[uuid.UUID]) -> None:
    """Delete devices whose tokens the provider declared gone (the relay's call)."""
    if device_ids:
        await session.execute(delete(PushDevice).where(PushDevice.id.in_(device_ids)))


async def remove_subscriptions(session: AsyncSession, subscription_ids: list[uuid.UUID]) -> None:
    """Delete browser subscriptions the push service declared gone (the relay's call)."""
    if subscription_ids:
        await session.execute(
            delete(WebPushSubscriptionRow).where(WebPushSubscriptionRow.id.in_(subscription_ids))
        )
