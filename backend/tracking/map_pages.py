"""The manager's live team map (``/map``): markers by status beside a list of the same rows,
the selected worker's track of today and next stops, kept fresh by server-sent events.

The browser holds the session cookie, not a bearer token, and the app's guard accepts only
bearer tokens under ``/api/``; so the page has its own event route, ``/map/stream``, which
reuses the live API's snapshot (``live.live``) and stream (``stream.events``) unchanged. The
worker's details (``/map/workers/{id}``) are the JSON of the track and route services the API
serves, with the same visibility and auditing. Without a tile URL (``FIELDCRM_MAP_TILE_URL``)
the map is markers on a plain background fitted to the team, and the list carries everything.
"""

from __future__ import annotations

import uuid
from datetime import date
from typing import Annotated, Any

from litestar import Controller, Request, get
from litestar.channels import ChannelsPlugin
from litestar.datastructures import State
from litestar.params import Parameter, QueryParameter
from litestar.response import ServerSentEvent, Template
from sqlalchemy.ext.asyncio import AsyncSession

from backend.accounts.models import Role
from backend.accounts.services import get_user
from backend.config import Settings
from backend.lib.clock import Clock
from backend.lib.forms import is_htmx
from backend.lib.tenancy import Actor
from backend.routing import services as routing
from backend.tracking import days, live, stream
from backend.tracking.pages import STATUS_LABELS
from backend.tracking.team_pages import board_rows, check_team, status_counts, visible_teams

TeamParam = Annotated[uuid.UUID | None, Parameter(description="a team you lead")]


class MapPages(Controller):
    """``/map`` and its data routes (managers and admins)."""

    path = "/map"
    include_in_schema = False

    @get("/")
    async def map_page(
        self,
        request: Request[Any, Any, Any],
        db_session: AsyncSession,
        actor: Actor,
        clock: Clock,
        settings: Settings,
        team: TeamParam = None,
        focus: Annotated[uuid.UUID | None, Parameter(description="worker to select")] = None,
    ) -> Template:
        """The map and the list of visible workers (an htmx request gets the list only).
        Audited like the live API."""
        actor.require_role(Role.ADMIN, Role.MANAGER)
        me = await get_user(db_session, actor, actor.user_id)
        teams = await visible_teams(db_session, actor)
        check_team(teams, team)
        rows = await board_rows(db_session, actor, me, clock.now(), team)
        context = {
            "me": me,
            "rows": rows,
            "counts": status_counts(rows),
            "labels": STATUS_LABELS,
            "teams": teams,
            "team": team,
            "focus": focus,
            "tiles": settings.map_tile_url,
        }
        partial = is_htmx(request)
        return Template("map/_list.html" if partial else "map/map.html", context=context)

    @get("/stream", media_type="text/event-stream")
    async def map_stream(
        self,
        request: Request[Any, Any, Any],
        actor: Actor,
        clock: Clock,
        state: State,
        team: TeamParam = None,
    ) -> ServerSentEvent:
        """The live stream of ``GET /api/v1/tracking/stream`` for the session cookie:
        ``snapshot``, then a ``position`` per new fix of a visible worker."""
        actor.require_role(Role.ADMIN, Role.MANAGER)
        # A short transaction of its own: the stream may stay open for hours.
        async with state.sessionmaker() as session, session.begin():
            teams = await visible_teams(session, actor)
            check_team(teams, team)
            snapshot = await live.live(session, actor, clock.now(), team)
        everyone = actor.role is Role.ADMIN and team is None
        visible = None if everyone else frozenset(f["id"] for f in snapshot["features"])
        channels = request.app.plugins.get(ChannelsPlugin)
        return ServerSentEvent(stream.events(channels, actor.organization_id, visible, snapshot))

    @get("/workers/{user_id:uuid}")
    async def worker(
        self,
        user_id: uuid.UUID,
        db_session: AsyncSession,
        actor: Actor,
        clock: Clock,
        day: Annotated[date | None, QueryParameter(name="date", description="local day")] = None,
    ) -> dict[str, Any]:
        """The worker's track of the day (GeoJSON with stops) and route (visits in driving
        order with ETAs and lateness): the API's ``/tracking/users/{id}/track`` and
        ``/users/{id}/route``. The look at the track is audited."""
        actor.require_role(Role.ADMIN, Role.MANAGER)
        now = clock.now()
        the_day = day or routing.today_in(actor.org_time_zone, now)
        view = await routing.get_route(db_session, actor, user_id, the_day, now)
        track = await days.day_track(db_session, actor, user_id, the_day, now)
        return {"track": track, "route": view.route}
