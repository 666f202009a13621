"""The field worker's day ``/today``: visits in driving order with ETAs from the route service
(the next on top, done ones folded away), call and navigate buttons, the day's totals, the
shift buttons, and ``/today/pings`` where the page sends the phone's positions while a shift is
open (the ping API's own ingest service and ``Idempotency-Key`` handling)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any
from urllib.parse import quote
from zoneinfo import ZoneInfo

from litestar import Controller, Request, Response, get, post
from litestar.background_tasks import BackgroundTask
from litestar.datastructures import State
from litestar.params import HeaderParameter, Parameter
from litestar.response import Redirect, Template
from sqlalchemy.ext.asyncio import AsyncSession

from backend.accounts.services import get_user
from backend.config import Settings
from backend.lib.clock import Clock
from backend.lib.errors import AppError
from backend.lib.forms import is_htmx
from backend.lib.tenancy import Actor
from backend.routing import services as routing
from backend.tracking import services, today_view
from backend.tracking.deps import PROVIDE_PING_WRITER, pings_response
from backend.tracking.group_commit import PingWriter

STATUS_LABELS = {
    "off_shift": "off shift",
    "offline": "offline",
    "on_site": "on site",
    "driving": "driving",
    "idle": "idle",
}

IdempotencyKey = Annotated[str | None, HeaderParameter(name="Idempotency-Key", required=False)]


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
        request: Request[Any, Any, Any],
        db_session: AsyncSession,
        actor: Actor,
        clock: Clock,
        state: State,
        settings: Settings,
        error: Annotated[str | None, Parameter(max_length=200)] = None,
    ) -> Template:
        """The caller's shift and today's visits in driving order (the route service: ETAs
        from where the caller is; a changed day is re-optimised after the answer, like the
        API)."""
        now = clock.now()
        me = await get_user(db_session, actor, actor.user_id)
        zone = ZoneInfo(me.time_zone)
        day = routing.today_in(me.time_zone, now)
        route = await routing.get_route(db_session, actor, actor.user_id, day, now)
        view = await today_view.day_view(db_session, actor, route.route)
        shift = await services.open_shift(db_session, actor.user_id)
        context = {
            "me": me,
            "shift": shift,
            "shift_since": local_time(shift.started_at, zone) if shift else "",
            "day": now.astimezone(zone).strftime("%A %d %B"),
            "view": view,
            "route": route.route,
            "local": lambda moment: local_time(moment, zone),
            "duration": today_view.duration,
            "distance": today_view.distance,
            "error": error,
        }
        background = None
        if route.stale:
            background = BackgroundTask(
                routing.reoptimise,
                state.sessionmaker,
                actor.organization_id,
                actor.user_id,
                day,
                now,
                osrm_url=settings.osrm_url,
            )
        partial = is_htmx(request)
        name = "field/_today.html" if partial else "field/today.html"
        return Template(name, context=context, background=background)

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

    @post(
        "/today/pings",
        status_code=200,
        request_max_body_size=2_000_000,
        dependencies={"ping_writer": PROVIDE_PING_WRITER},
    )
    async def pings(
        self,
        request: Request[Any, Any, Any],
        actor: Actor,
        clock: Clock,
        ping_writer: PingWriter,
        idempotency_key: IdempotencyKey = None,
    ) -> Response[Any]:
        """The page's batch of positions, the body of ``POST /api/v1/tracking/pings``
        (``{"points": [...]}``), stored by the same ingest service; a refusal of the whole
        batch is a problem+json answer like the API's."""
        outcome = await services.submit_pings(
            ping_writer, actor, await request.body(), clock.now(), idempotency_key
        )
        return pings_response(outcome)
