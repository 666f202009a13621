"""JSON API of routes and dispatch."""

from __future__ import annotations

import uuid
from datetime import date
from typing import Annotated

from litestar import Controller, Response, get, post
from litestar.background_tasks import BackgroundTask
from litestar.datastructures import State
from litestar.params import QueryParameter
from litestar.status_codes import HTTP_201_CREATED
from sqlalchemy.ext.asyncio import AsyncSession

from backend.config import Settings
from backend.lib.clock import Clock
from backend.lib.errors import InvalidInput
from backend.lib.tenancy import Actor
from backend.routing import dispatch, schemas, services

DateParam = Annotated[
    date | None,
    QueryParameter(name="date", description="local date (YYYY-MM-DD); today by default"),
]
MAX_BUDGET_S = 30.0


async def _route_response(
    db_session: AsyncSession,
    actor: Actor,
    user_id: uuid.UUID,
    day: date | None,
    state: State,
    clock: Clock,
    settings: Settings,
    time_zone: str,
) -> Response[schemas.RouteOut]:
    now = clock.now()
    the_day = day or services.today_in(time_zone, now)
    view = await services.get_route(db_session, actor, user_id, the_day, now)
    background = None
    if view.stale:
        background = BackgroundTask(
            services.reoptimise,
            state.sessionmaker,
            actor.organization_id,
            user_id,
            the_day,
            now,
            osrm_url=settings.osrm_url,
        )
    return Response(view.route, background=background)


class RouteController(Controller):
    """Field workers' days in driving order."""

    tags = ["routing"]

    @get("/api/v1/me/route")
    async def my_route(
        self,
        db_session: AsyncSession,
        actor: Actor,
        state: State,
        clock: Clock,
        settings: Settings,
        day: DateParam = None,
    ) -> Response[schemas.RouteOut]:
        """The caller's visits of the day in driving order with ETAs (arrival), start and
        departure, leg travel and distance, the day's totals and a GeoJSON line. Done and
        in-progress visits come first; ETAs are recomputed from the caller's latest position
        and progress at every call. ``optimised`` is false while a changed day is being
        re-optimised (in the background)."""
        return await _route_response(
            db_session, actor, actor.user_id, day, state, clock, settings, actor.time_zone
        )

    @get("/api/v1/users/{user_id:uuid}/route")
    async def user_route(
        self,
        db_session: AsyncSession,
        actor: Actor,
        state: State,
        clock: Clock,
        settings: Settings,
        user_id: uuid.UUID,
        day: DateParam = None,
    ) -> Response[schemas.RouteOut]:
        """A worker's route, for their teams' managers and admins (404 for anyone else)."""
        return await _route_response(
            db_session, actor, user_id, day, state, clock, settings, actor.org_time_zone
        )


class DispatchController(Controller):
    """Planning a team's day."""

    path = "/api/v1/dispatch"
    tags = ["routing"]

    @post("/preview", status_code=HTTP_201_CREATED)
    async def preview(
        self,
        db_session: AsyncSession,
        actor: Actor,
        clock: Clock,
        settings: Settings,
        data: schemas.DispatchRequest,
    ) -> schemas.DispatchOut:
        """Plan a team's date: unassigned visits given to its field workers by skill, time
        window, shift and travel; what does not fit is listed, least valuable first. Nothing
        is assigned until the plan is applied."""
        if not 0.1 <= data.budget_seconds <= MAX_BUDGET_S:
            raise InvalidInput.on("budgetSeconds", f"must be between 0.1 and {MAX_BUDGET_S:g}")
        return await dispatch.preview(
            db_session,
            actor,
            data.team_id,
            data.date,
            clock.now(),
            osrm_url=settings.osrm_url,
            budget_s=data.budget_seconds,
        )

    @get("/{plan_id:uuid}")
    async def get_plan(
        self, db_session: AsyncSession, actor: Actor, plan_id: uuid.UUID
    ) -> schemas.DispatchOut:
        """A stored plan, previewed or applied."""
        return await dispatch.get_plan(db_session, actor, plan_id)

    @post("/{plan_id:uuid}/apply", status_code=200)
    async def apply(
        self, db_session: AsyncSession, actor: Actor, clock: Clock, plan_id: uuid.UUID
    ) -> schemas.DispatchOut:
        """Assign the plan's new visits and tell the assignees. Idempotent: applying again
        answers the same result and changes nothing."""
        return await dispatch.apply(db_session, actor, plan_id, clock.now())


CONTROLLERS = [RouteController, DispatchController]
