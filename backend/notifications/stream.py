"""The notification centre, live: server-sent events for one user.

A trigger on ``notifications`` (migration 0008) calls ``pg_notify('fieldcrm_inbox_<user hex>',
...)`` on every new notification (payload: its id) and on every change of ``read_at`` (payload:
``read``), whoever wrote it (a request, the SLA scan, another process); PostgreSQL delivers it
on commit. Each API process LISTENs through Litestar's channels plugin, as the live team stream
does. The stream sends ``event: count`` (``{"unread": n}``) first, then for each new
notification ``event: notification`` (the item as the list API shows it) followed by the new
count, for each read change the new count, and a comment every 15 s to keep proxies quiet. Every
look at the database is a short transaction of its own, scoped to the caller.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncGenerator
from datetime import datetime

import msgspec
from litestar.channels import ChannelsPlugin
from litestar.response import ServerSentEventMessage
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from backend.lib.tenancy import Actor
from backend.notifications import schemas, services
from backend.notifications.models import Notification

KEEPALIVE_S = 15.0


def inbox_channel(user_id: uuid.UUID) -> str:
    """The NOTIFY channel of a user's notification centre (the trigger's name for it)."""
    return f"fieldcrm_inbox_{user_id.hex}"


async def _count(sessionmaker: async_sessionmaker[AsyncSession], actor: Actor) -> str:
    async with sessionmaker() as session:
        unread = await services.unread_count(session, actor)
    return msgspec.json.encode(schemas.UnreadCount(unread=unread)).decode()


async def _item(
    sessionmaker: async_sessionmaker[AsyncSession], actor: Actor, notification_id: uuid.UUID
) -> str | None:
    async with sessionmaker() as session:
        row = await session.scalar(
            select(Notification).where(
                Notification.id == notification_id,
                Notification.organization_id == actor.organization_id,
                Notification.user_id == actor.user_id,
            )
        )
    if row is None:
        return None
    return msgspec.json.encode(services.notification_out(row)).decode()


async def events(
    channels: ChannelsPlugin,
    sessionmaker: async_sessionmaker[AsyncSession],
    actor: Actor,
) -> AsyncGenerator[ServerSentEventMessage, None]:
    """The SSE messages for one subscriber: the unread count, then each change."""
    async with channels.start_subscription([inbox_channel(actor.user_id)]) as subscriber:
        # Subscribed before counting: nothing committed in between is missed.
        yield ServerSentEventMessage(data=await _count(sessionmaker, actor), event="count")
        iterator = subscriber.iter_events().__aiter__()
        while True:
            try:
                message = await asyncio.wait_for(iterator.__anext__(), timeout=KEEPALIVE_S)
            except TimeoutError:
                yield ServerSentEventMessage(comment=f"keep-alive {datetime.now().isoformat()}")
                continue
            except StopAsyncIteration:
                return
            payload = message.decode()
            if payload != "read":
                try:
                    notification_id = uuid.UUID(payload)
                except ValueError:
                    continue
                item = await _item(sessionmaker, actor, notification_id)
                if item is not None:
                    yield ServerSentEventMessage(data=item, event="notification")
            yield ServerSentEventMessage(data=await _count(sessionmaker, actor), event="count")
