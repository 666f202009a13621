"""The manager's team board: who is on shift, where, doing what, battery; refreshed by htmx
polling."""

from __future__ import annotations

from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from litestar import Controller, Request, get
from litestar.response import Template
from sqlalchemy.ext.asyncio import AsyncSession

from backend.accounts.models import Role
from backend.accounts.services import get_user
from backend.lib.clock import Clock
from backend.lib.tenancy import Actor
from backend.tracking import live
from backend.tracking.pages import STATUS_LABELS, local_time


class TeamPages(Controller):
    """``/team`` (managers and admins)."""

    path = "/"
    include_in_schema = False

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
                    "nextAt": local_time(
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
