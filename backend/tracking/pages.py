"""The field worker's day page with the shift buttons."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated
from urllib.parse import quote
from zoneinfo import ZoneInfo

from litestar import Controller, get, post
from litestar.params import Parameter
from litestar.response import Redirect, Template
from sqlalchemy.ext.asyncio import AsyncSession

from backend.accounts.services import get_user
from backend.lib.clock import Clock
from backend.lib.errors import AppError
from backend.lib.tenancy import Actor
from backend.tasks.services import visits_between
from backend.tracking import days, services

STATUS_LABELS = {
    "off_shift": "off shift",
    "offline": "offline",
    "on_site": "on site",
    "driving": "driving",
    "idle": "idle",
}


def local_time(moment: datetime | None, tz: ZoneInfo) -> str:
    """``moment`` as HH:MM in ``tz``; empty for None."""
    return moment.astimezone(tz).strftime("%H:%M") if moment else ""


class TrackingPages(Controller):
    """``/today``: everyone's own day."""

    path = "/"
    include_in_schema = False

    @get("/today")
    async def today(
        self,
        db_session: AsyncSession,
        actor: Actor,
        clock: Clock,
        error: Annotated[str | None, Parameter(max_length=200)] = None,
    ) -> Template:
        """The caller's shift and today's visits in planned order (the next one first)."""
        now = clock.now()
        me = await get_user(db_session, actor, actor.user_id)
        zone = ZoneInfo(me.time_zone)
        start, end = days.local_day_bounds(now.astimezone(zone).date(), me.time_zone)
        visits = await visits_between(db_session, actor, actor.user_id, start, end)
        done = [v for v in visits if v.task.status.value == "done"]
        ahead = [v for v in visits if v.task.status.value != "done"]
        shift = await services.open_shift(db_session, actor.user_id)
        context = {
            "me": me,
            "shift": shift,
            "shift_since": local_time(shift.started_at, zone) if shift else "",
            "ahead": ahead,
            "done": done,
            "local": lambda moment: local_time(moment, zone),
            "day": now.astimezone(zone).strftime("%A %d %B"),
            "error": error,
        }
        return Template("tracking/today.html", context=context)

    @post("/today/shift/start", status_code=303)
    async def start_shift(self, db_session: AsyncSession, actor: Actor, clock: Clock) -> Redirect:
        """Start the caller's shift and go back to the day."""
        try:
            await services.start_shift(db_session, actor, clock.now())
        except AppError as exc:
            return Redirect(f"/today?error={quote(exc.detail)}", status_code=303)
        return Redirect("/today", status_code=303)

    @post("/today/shift/end", status_code=303)
    async def end_shift(self, db_session: AsyncSession, actor: Actor, clock: Clock) -> Redirect:
        """End the caller's shift and go back to the day."""
        try:
            await services.end_shift(db_session, actor, clock.now())
        except AppError as exc:
            return Redirect(f"/today?error={quote(exc.detail)}", status_code=303)
        return Redirect("/today", status_code=303)
