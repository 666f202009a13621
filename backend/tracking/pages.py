"""Tracking pages of the web client: a worker's day with the shift buttons, and the manager's
team board (who is on shift, where, doing what, battery), refreshed by htmx polling."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any
from urllib.parse import quote
from zoneinfo import ZoneInfo

from litestar import Controller, Request, get, post
from litestar.params import Parameter
from litestar.response import Redirect, Template
from sqlalchemy.ext.asyncio import AsyncSession

from backend.accounts.models import Role
from backend.accounts.services import get_user
from backend.lib.clock import Clock
from backend.lib.errors import AppError
from backend.lib.tenancy import Actor
from backend.tasks.services import visits_between
from backend.tracking import days, live, services

STATUS_LABELS = {
    "off_shift": "off shift",
    "offline": "offline",
    "on_site": "on site",
    "driving": "driving",
    "idle": "idle",
}


def _local(moment: datetime | None, tz: ZoneInfo) -> str:
    return moment.astimezone(tz).strftime("%H:%M") if moment else ""


class TrackingPages(Controller):
    """``/today`` (everyone's own day) and ``/team`` (managers and admins)."""

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
            "shift_since": _local(shift.started_at, zone) if shift else "",
            "ahead": ahead,
            "done": done,
            "local": lambda moment: _local(moment, zone),
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

    @get("/team")
    async def team(
        self, request: Request[Any, Any, Any], db_session: AsyncSession, actor: Actor, clock: Clock
    ) -> Template:
        """Every visible worker's status, position age, battery, current and next task. Each
        look is audited like the live API (it shows where people are)."""
        actor.require_role(Role.ADMIN, Role.MANAGER)
        now = clock.now()
        me = await get_user(db_session, actor, actor.user_id)
        zone = ZoneInfo(me.time_zone)
        board = await live.live(db_session, actor, now, None)
        rows = []
        for feature in board["features"]:
            props = feature["properties"]
            seen = datetime.fromisoformat(props["lastSeen"]) if props["lastSeen"] else None
            rows.append(
                {
                    **props,
                    "statusLabel": STATUS_LABELS[props["status"]],
                    "seenAgo": _ago(now, seen),
                    "coordinates": feature["geometry"]["coordinates"]
                    if feature["geometry"]
                    else None,
                    "nextAt": _local(
                        datetime.fromisoformat(props["nextTask"]["startsAt"])
                        if props["nextTask"] and props["nextTask"]["startsAt"]
                        else None,
                        zone,
                    ),
                }
            )
        counts = {label: 0 for label in STATUS_LABELS}
        for row in rows:
            counts[row["status"]] += 1
        context = {"me": me, "rows": rows, "counts": counts, "labels": STATUS_LABELS}
        is_htmx = request.headers.get("hx-request") == "true"
        return Template(
            "tracking/_team_rows.html" if is_htmx else "tracking/team.html", context=context
        )


def _ago(now: datetime, then: datetime | None) -> str:
    """ "just now", "4 min ago", "2 h ago", or "never"."""
    if then is None:
        return "never"
    seconds = max(int((now - then).total_seconds()), 0)
    if seconds < 60:
        return "just now"
    if seconds < 3600:
        return f"{seconds // 60} min ago"
    return f"{seconds // 3600} h ago"
