"""Telling users about their work: the in-app notification centre and the outbox.

``notify`` stores the notification and its outbox row in the caller's transaction, so a change
and the message about it commit (or roll back) together. A ``dedupe_key`` makes notifying
idempotent: the second call with the same key stores nothing and returns None.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import func, select, text, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from backend.accounts.models import Role
from backend.lib.errors import Conflict, NotFound
from backend.lib.pagination import Page, keyset_desc, page_of
from backend.lib.tenancy import Actor
from backend.notifications import schemas
from backend.notifications.models import Notification, OutboxMessage, OutboxStatus

OUTBOX_TOPIC = "notification"


async def notify(
    session: AsyncSession,
    *,
    organization_id: uuid.UUID,
    user_id: uuid.UUID,
    kind: str,
    title: str,
    dedupe_key: str,
    now: datetime,
    body: str | None = None,
    link: str | None = None,
    data: dict[str, Any] | None = None,
    urgent: bool = False,
) -> uuid.UUID | None:
    """Store a notification for ``user_id`` and queue its delivery; None if ``dedupe_key``
    was used before in the organisation."""
    notification_id: uuid.UUID | None = await session.scalar(
        insert(Notification)
        .values(
            organization_id=organization_id,
            user_id=user_id,
            kind=kind,
            title=title[:300],
            body=body,
            link=link,
            data=data or {},
            urgent=urgent,
            dedupe_key=dedupe_key,
            created_at=now,
            updated_at=now,
        )
        .on_conflict_do_nothing(
            index_elements=[Notification.organization_id, Notification.dedupe_key]
        )
        .returning(Notification.id)
    )
    if notification_id is None:
        return None
    await session.execute(
        insert(OutboxMessage)
        .values(
            organization_id=organization_id,
            topic=OUTBOX_TOPIC,
            payload={"notificationId": str(notification_id), "userId": str(user_id), "kind": kind},
            dedupe_key=f"{OUTBOX_TOPIC}:{notification_id}",
            available_at=now,
            created_at=now,
        )
        .on_conflict_do_nothing(
            index_elements=[OutboxMessage.organization_id, OutboxMessage.dedupe_key]
        )
    )
    return notification_id


def notification_out(row: Notification) -> schemas.NotificationOut:
    """The API shape of a notification."""
    return schemas.NotificationOut(
        id=row.id,
        kind=row.kind,
        title=row.title,
        body=row.body,
        link=row.link,
        data=row.data,
        urgent=row.urgent,
        created_at=row.created_at,
        read_at=row.read_at,
    )


async def list_notifications(
    session: AsyncSession,
    actor: Actor,
    *,
    unread_only: bool,
    limit: int,
    cursor: str | None,
) -> Page[schemas.NotificationOut]:
    """The caller's own notifications, newest first."""
    stmt = select(Notification).where(
        Notification.organization_id == actor.organization_id,
        Notification.user_id == actor.user_id,
    )
    if unread_only:
        stmt = stmt.where(Notification.read_at.is_(None))
    stmt = keyset_desc(stmt, Notification.created_at, Notification.id, cursor, limit)
    rows = list((await session.scalars(stmt)).all())
    return page_of([notification_out(r) for r in rows], limit, lambda n: [n.created_at, n.id])


async def unread_count(session: AsyncSession, actor: Actor) -> int:
    """How many of the caller's notifications are unread."""
    count = await session.scalar(
        select(func.count())
        .select_from(Notification)
        .where(
            Notification.organization_id == actor.organization_id,
            Notification.user_id == actor.user_id,
            Notification.read_at.is_(None),
        )
    )
    return int(count or 0)


async def mark_read(
    session: AsyncSession, actor: Actor, ids: list[uuid.UUID] | None, now: datetime
) -> int:
    """Mark the given (or, with None, all) of the caller's notifications read."""
    stmt = update(Notification).where(
        Notification.organization_id == actor.organization_id,
        Notification.user_id == actor.user_id,
        Notification.read_at.is_(None),
    )
    if ids is not None:
        stmt = stmt.where(Notification.id.in_(ids))
    result = await session.execute(stmt.values(read_at=now))
    return int(getattr(result, "rowcount", 0) or 0)


def outbox_out(row: OutboxMessage) -> schemas.OutboxOut:
    """The admin view of an outbox row."""
    return schemas.OutboxOut(
        id=row.id,
        topic=row.topic,
        payload=row.payload,
        dedupe_key=row.dedupe_key,
        status=row.status,
        attempts=row.attempts,
        available_at=row.available_at,
        created_at=row.created_at,
        sent_at=row.sent_at,
        last_error=row.last_error,
        note=row.note,
        progress=list(row.progress),
    )


async def list_outbox(
    session: AsyncSession,
    actor: Actor,
    *,
    status: OutboxStatus | None,
    limit: int,
    cursor: str | None,
) -> Page[schemas.OutboxOut]:
    """The organisation's outbox rows, newest first (admins only)."""
    actor.require_role(Role.ADMIN)
    stmt = select(OutboxMessage).where(OutboxMessage.organization_id == actor.organization_id)
    if status is not None:
        stmt = stmt.where(OutboxMessage.status == status)
    stmt = keyset_desc(stmt, OutboxMessage.created_at, OutboxMessage.id, cursor, limit)
    rows = list((await session.scalars(stmt)).all())
    return page_of([outbox_out(r) for r in rows], limit, lambda o: [o.created_at, o.id])


async def retry_outbox(
    session: AsyncSession, actor: Actor, outbox_id: uuid.UUID, now: datetime
) -> schemas.OutboxOut:
    """Give a dead row a fresh set of attempts, due now (admins only; 409 unless dead).
    Targets it already reached are not sent again."""
    actor.require_role(Role.ADMIN)
    row = await session.scalar(
        select(OutboxMessage)
        .where(
            OutboxMessage.id == outbox_id,
            OutboxMessage.organization_id == actor.organization_id,
        )
        .with_for_update()
    )
    if row is None:
        raise NotFound("No such outbox message")
    if row.status is not OutboxStatus.DEAD:
        raise Conflict(f"Only dead messages can be retried; this one is {row.status.value}")
    row.status = OutboxStatus.PENDING
    row.attempts = 0
    row.available_at = now
    row.note = f"retried by an admin after: {row.last_error or 'no error recorded'}"[:2000]
    row.last_error = None
    await session.flush()
    # The insert trigger wakes the relay for new rows; a revived row needs its own wake-up.
    await session.execute(text("SELECT pg_notify('fieldcrm_outbox', '')"))
    return outbox_out(row)
