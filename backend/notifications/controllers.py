"""JSON API of the caller's notification centre."""

from __future__ import annotations

from typing import Annotated

from litestar import Controller, get, post
from litestar.params import Parameter
from sqlalchemy.ext.asyncio import AsyncSession

from backend.lib.clock import Clock
from backend.lib.pagination import DEFAULT_LIMIT, Cursor, Limit, Page
from backend.lib.tenancy import Actor
from backend.notifications import schemas, services


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


CONTROLLERS = [NotificationController]
