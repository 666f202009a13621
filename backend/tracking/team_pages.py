"""The manager's team board: who is on shift, where, doing what, late or not, battery;
refreshed by htmx polling.

The rows come from the live board (``tracking.live``, audited like the API) and, for each
worker with a current or next task, from their day's route (``routing.services.get_route``):
a visit whose ETA falls after its window's end makes the worker "late". The live map
(``map_pages``) lists the same rows beside the map.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Any
from zoneinfo import ZoneInfo

from litestar import Controller, Request, get
from litestar.params import Parameter
from litestar.response import Template
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from backend.accounts.models import Role, User
from backend.accounts.schemas import TeamOut
from backend.accounts.services import get_user, list_teams
from backend.lib.clock import Clock
from backend.lib.errors import NotFound
from backend.lib.forms import is_htmx
from backend.lib.tenancy import Actor
from backend.routing import services as routing
from backend.routing.day import DayVisit, load_visits, worker_day
from backend.routing.models import RoutePlan
from backend.tracking import live
from backend.tracking.models import LatestPosition, ShiftSchedule
from backend.tracking.pages import STATUS_LABELS, local_time

MAX_TEAMS = 200


async def visible_teams(session: AsyncSession, actor: Actor) -> list[TeamOut]:
    """Teams the caller may pick on the board and the map (admins: all, managers: led)."""
    return (await list_teams(session, actor, MAX_TEAMS, None)).items


def check_team(teams: list[TeamOut], team_id: uuid.UUID | None) -> None:
    """404 unless ``team_id`` (when given) is one of the caller's teams."""
    if team_id is not None and all(t.id != team_id for t in teams):
        raise NotFound("Team not found")


async def lateness(
    session: AsyncSession, actor: Actor, user_ids: list[uuid.UUID], now: datetime
) -> dict[uuid.UUID, dict[str, Any]]:
    """How late each visible worker runs today, from their day's route as
    ``routing.services.get_route`` builds it (the stored order, ETAs from where they are): the
    number of visits whose ETA is after their window, and the next open visit's lateness in
    minutes (0 when on time). Loaded for all of them at once: three statements, not four per
    worker."""
    ids = [u for u in user_ids if actor.may_see_owner(u)]
    if not ids:
        return {}
    day = routing.today_in(actor.org_time_zone, now)
    rows = (
        await session.execute(
            select(
                User,
                ShiftSchedule.schedule,
                LatestPosition.lat,
                LatestPosition.lon,
                LatestPosition.recorded_at,
            )
            .outerjoin(ShiftSchedule, ShiftSchedule.user_id == User.id)
            .outerjoin(LatestPosition, LatestPosition.user_id == User.id)
            .where(User.id.in_(ids), User.organization_id == actor.organization_id)
        )
    ).all()
    visits: dict[uuid.UUID, list[DayVisit]] = {}
    for zone in {row[0].time_zone for row in rows}:
        same_zone = [row[0].id for row in rows if row[0].time_zone == zone]
        visits |= await load_visits(session, actor.organization_id, same_zone, zone, day)
    plans = {
        plan.user_id: plan
        for plan in await session.scalars(
            select(RoutePlan).where(RoutePlan.user_id.in_(ids), RoutePlan.day == day)
        )
    }
    found = {}
    for user, schedule, *position in rows:
        worker = worker_day(user, day, schedule, position, visits[user.id])
        route = routing.build_route(worker, plans.get(user.id), now).route
        upcoming = [stop for stop in route.stops if stop.status == "open"]
        found[user.id] = {
            "lateVisits": route.totals.late_visits,
            "nextLateMin": upcoming[0].late_s // 60 if upcoming else 0,
            "remaining": route.totals.remaining,
        }
    return found


async def board_rows(
    session: AsyncSession, actor: Actor, me: User, now: datetime, team_id: uuid.UUID | None
) -> list[dict[str, Any]]:
    """The visible workers' live rows, each with its status label, position age, next task's
    local time and today's lateness. Audited (a look at where people are)."""
    zone = ZoneInfo(me.time_zone)
    board = await live.live(session, actor, now, team_id)
    busy = [
        uuid.UUID(f["properties"]["userId"])
        for f in board["features"]
        if f["properties"]["currentTask"] is not None or f["properties"]["nextTask"] is not None
    ]
    late = await lateness(session, actor, busy, now)
    rows = []
    for feature in board["features"]:
        props = feature["properties"]
        seen = datetime.fromisoformat(props["lastSeen"]) if props["lastSeen"] else None
        rows.append(
            {
                **props,
                "statusLabel": STATUS_LABELS[props["status"]],
                "seenAgo": _ago(now, seen),
                "coordinates": feature["geometry"]["coordinates"] if feature["geometry"] else None,
                "nextAt": local_time(
                    datetime.fromisoformat(props["nextTask"]["startsAt"])
                    if props["nextTask"] and props["nextTask"]["startsAt"]
                    else None,
                    zone,
                ),
                "late": late.get(uuid.UUID(props["userId"])),
            }
        )
    return rows


def status_counts(rows: list[dict[str, Any]]) -> dict[str, int]:
    """How many workers are in each status."""
    counts = dict.fromkeys(STATUS_LABELS, 0)
    for row in rows:
        counts[row["status"]] += 1
    return counts


class TeamPages(Controller):
    """``/team`` (managers and admins)."""

    path = "/"
    include_in_schema = False

    @get("/team")
    async def team(
        self,
        request: Request[Any, Any, Any],
        db_session: AsyncSession,
        actor: Actor,
        clock: Clock,
        team: Annotated[uuid.UUID | None, Parameter(description="a team you lead")] = None,
    ) -> Template:
        """Every visible worker's status, position age, battery, current and next task and
        whether they run late. Each look is audited like the live API."""
        actor.require_role(Role.ADMIN, Role.MANAGER)
        now = clock.now()
        me = await get_user(db_session, actor, actor.user_id)
        teams = await visible_teams(db_session, actor)
        check_team(teams, team)
        rows = await board_rows(db_session, actor, me, now, team)
        context = {
            "me": me,
            "rows": rows,
            "counts": status_counts(rows),
            "labels": STATUS_LABELS,
            "teams": teams,
            "team": team,
        }
        partial = is_htmx(request)
        return Template(
            "tracking/_team_rows.html" if partial else "tracking/team.html", context=context
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
