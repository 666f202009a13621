"""Notification pages: the caller's centre ``/notifications`` (list, mark read with htmx, a live
unread count over SSE from ``/notifications/stream``) and the admins' ``/admin/outbox`` (rows by
status, dead ones retried with a button). Same services as the JSON API; forms carry the CSRF
token and posts answer 303 (or the list partial for htmx)."""

from __future__ import annotations

import uuid
from typing import Annotated, Any

from litestar import Controller, Request, get, post
from litestar.channels import ChannelsPlugin
from litestar.datastructures import State
from litestar.enums import RequestEncodingType
from litestar.params import Body, Parameter
from litestar.response import Redirect, ServerSentEvent, Template
from sqlalchemy.ext.asyncio import AsyncSession

from backend.accounts.models import Role
from backend.accounts.services import get_user
from backend.lib.clock import Clock
from backend.lib.errors import InvalidInput
from backend.lib.forms import is_htmx
from backend.lib.pagination import Cursor
from backend.lib.tenancy import Actor
from backend.notifications import services, stream
from backend.notifications.models import OutboxStatus

PAGE_SIZE = 30

FormData = Annotated[dict[str, str], Body(media_type=RequestEncodingType.URL_ENCODED)]


class NotificationPages(Controller):
    """``/notifications`` and ``/admin/outbox``."""

    path = "/"
    include_in_schema = False

    async def _centre(
        self, db_session: AsyncSession, actor: Actor, unread: bool, cursor: str | None
    ) -> dict[str, Any]:
        page = await services.list_notifications(
            db_session, actor, unread_only=unread, limit=PAGE_SIZE, cursor=cursor
        )
        count = await services.unread_count(db_session, actor)
        return {"page": page, "unread": unread, "count": count, "tz": actor.time_zone}

    @get("/notifications")
    async def centre(
        self,
        request: Request[Any, Any, Any],
        db_session: AsyncSession,
        actor: Actor,
        unread: Annotated[bool, Parameter(description="only unread ones")] = False,
        cursor: Cursor = None,
    ) -> Template:
        """The caller's notifications, newest first; an htmx request gets the list only."""
        context = await self._centre(db_session, actor, unread, cursor)
        if is_htmx(request):
            return Template("notifications/_list.html", context=context)
        context["me"] = await get_user(db_session, actor, actor.user_id)
        return Template("notifications/centre.html", context=context)

    @post("/notifications/read", status_code=303)
    async def mark_read(
        self,
        request: Request[Any, Any, Any],
        data: FormData,
        db_session: AsyncSession,
        actor: Actor,
        clock: Clock,
    ) -> Template | Redirect:
        """Mark one (form field ``id``) or all of the caller's notifications read."""
        raw = (data.get("id") or "").strip()
        ids: list[uuid.UUID] | None = None
        if raw:
            try:
                ids = [uuid.UUID(raw)]
            except ValueError as exc:
                raise InvalidInput.on("id", "not a notification id") from exc
        await services.mark_read(db_session, actor, ids, clock.now())
        unread = data.get("unread") == "true"
        if is_htmx(request):
            context = await self._centre(db_session, actor, unread, None)
            return Template("notifications/_list.html", context=context, status_code=200)
        return Redirect(
            "/notifications?unread=true" if unread else "/notifications", status_code=303
        )

    @get("/notifications/stream", media_type="text/event-stream")
    async def live(
        self, request: Request[Any, Any, Any], actor: Actor, state: State
    ) -> ServerSentEvent:
        """The centre's live events for the page (session cookie), as the API's stream."""
        channels = request.app.plugins.get(ChannelsPlugin)
        return ServerSentEvent(stream.events(channels, state.sessionmaker, actor))

    @get("/admin/outbox")
    async def outbox(
        self,
        db_session: AsyncSession,
        actor: Actor,
        status: Annotated[
            OutboxStatus | None, Parameter(description="pending, sent or dead")
        ] = None,
        cursor: Cursor = None,
    ) -> Template:
        """What the relay did and has to do, newest first (admins only)."""
        actor.require_role(Role.ADMIN)
        page = await services.list_outbox(
            db_session, actor, status=status, limit=PAGE_SIZE, cursor=cursor
        )
        me = await get_user(db_session, actor, actor.user_id)
        return Template(
            "notifications/outbox.html",
            context={
                "page": page,
                "status": status.value if status else "",
                "statuses": [s.value for s in OutboxStatus],
                "me": me,
                "tz": actor.time_zone,
            },
        )

    @post("/admin/outbox/{outbox_id:uuid}/retry", status_code=303)
    async def retry(
        self, outbox_id: uuid.UUID, db_session: AsyncSession, actor: Actor, clock: Clock
    ) -> Redirect:
        """Send a dead message again, then back to the dead ones."""
        await services.retry_outbox(db_session, actor, outbox_id, clock.now())
        return Redirect("/admin/outbox?status=dead", status_code=303)
