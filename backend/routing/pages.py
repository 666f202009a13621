"""Plan-the-day (``/dispatch``): pick a team and a date, preview the plan of
``routing.dispatch.preview`` (each worker's visits in driving order, the new ones marked, what
does not fit with its reason, who is off), then apply it (``dispatch.apply``: idempotent).
Managers (their teams) and admins; the preview is stored, so its page is ``/dispatch/{id}``."""

from __future__ import annotations

import uuid
from datetime import date, timedelta
from typing import Annotated, Any

import msgspec
from litestar import Controller, get, post
from litestar.enums import RequestEncodingType
from litestar.params import Body
from litestar.response import Redirect, Template
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from backend.accounts.models import Role, User
from backend.accounts.services import get_user
from backend.config import Settings
from backend.lib.clock import Clock
from backend.lib.errors import AppError, InvalidInput
from backend.lib.tenancy import Actor
from backend.routing import dispatch, schemas, services
from backend.tracking.team_pages import visible_teams

BUDGET_S = 2.0
FORM_FIELDS = {"teamId": "team_id", "date": "date"}


class PlanForm(msgspec.Struct):
    """The plan-the-day form (strings as browsers send them)."""

    team_id: str = ""
    date: str = ""


def _checked(form: PlanForm, today: date) -> tuple[uuid.UUID, date]:
    """The team and date from the form; InvalidInput on the wrong field."""
    try:
        team_id = uuid.UUID(form.team_id)
    except ValueError:
        raise InvalidInput.on("teamId", "choose a team") from None
    try:
        day = date.fromisoformat(form.date.strip())
    except ValueError:
        raise InvalidInput.on("date", "a date like 2026-11-25") from None
    if not today - timedelta(days=1) <= day <= today + timedelta(days=60):
        raise InvalidInput.on("date", "from yesterday to 60 days ahead")
    return team_id, day


async def _names(session: AsyncSession, actor: Actor, ids: set[uuid.UUID]) -> dict[Any, str]:
    if not ids:
        return {}
    rows = await session.execute(
        select(User.id, User.full_name).where(
            User.id.in_(ids), User.organization_id == actor.organization_id
        )
    )
    return {r[0]: r[1] for r in rows.all()}


class DispatchPages(Controller):
    """``/dispatch`` (managers and admins)."""

    path = "/dispatch"
    include_in_schema = False

    async def _form(
        self,
        session: AsyncSession,
        actor: Actor,
        today: date,
        values: PlanForm,
        errors: dict[str, str],
        plan: schemas.DispatchOut | None = None,
    ) -> dict[str, Any]:
        me = await get_user(session, actor, actor.user_id)
        teams = await visible_teams(session, actor)
        names: dict[Any, str] = {}
        if plan is not None:
            names = await _names(session, actor, set(plan.off))
        return {
            "me": me,
            "teams": teams,
            "values": values,
            "errors": errors,
            "plan": plan,
            "team_name": {t.id: t.name for t in teams},
            "names": names,
            "today": today,
            "new_count": sum(s.new for r in plan.routes for s in r.stops) if plan else 0,
        }

    @get("/")
    async def page(self, db_session: AsyncSession, actor: Actor, clock: Clock) -> Template:
        """The team and date form (today and the caller's first team by default)."""
        actor.require_role(Role.ADMIN, Role.MANAGER)
        today = services.today_in(actor.org_time_zone, clock.now())
        teams = await visible_teams(db_session, actor)
        values = PlanForm(team_id=str(teams[0].id) if teams else "", date=today.isoformat())
        context = await self._form(db_session, actor, today, values, {})
        return Template("dispatch/plan.html", context=context)

    @post("/preview", status_code=303)
    async def preview(
        self,
        data: Annotated[PlanForm, Body(media_type=RequestEncodingType.URL_ENCODED)],
        db_session: AsyncSession,
        actor: Actor,
        clock: Clock,
        settings: Settings,
    ) -> Redirect | Template:
        """Plan the team's date (stored, nothing assigned) and show it."""
        actor.require_role(Role.ADMIN, Role.MANAGER)
        now = clock.now()
        today = services.today_in(actor.org_time_zone, now)
        try:
            async with db_session.begin_nested():
                team_id, day = _checked(data, today)
                plan = await dispatch.preview(
                    db_session,
                    actor,
                    team_id,
                    day,
                    now,
                    osrm_url=settings.osrm_url,
                    budget_s=BUDGET_S,
                )
        except AppError as exc:
            errors = {FORM_FIELDS.get(e.field, "_"): e.reason for e in exc.errors}
            if exc.status == 404:
                errors = {"team_id": exc.detail}
            context = await self._form(db_session, actor, today, data, errors or {"_": exc.detail})
            return Template("dispatch/plan.html", context=context, status_code=422)
        return Redirect(f"/dispatch/{plan.id}", status_code=303)

    @get("/{plan_id:uuid}")
    async def plan(
        self, plan_id: uuid.UUID, db_session: AsyncSession, actor: Actor, clock: Clock
    ) -> Template:
        """A stored plan: the preview with its Apply button, or what applying did."""
        actor.require_role(Role.ADMIN, Role.MANAGER)
        today = services.today_in(actor.org_time_zone, clock.now())
        plan = await dispatch.get_plan(db_session, actor, plan_id)
        values = PlanForm(team_id=str(plan.team_id), date=plan.date.isoformat())
        context = await self._form(db_session, actor, today, values, {}, plan)
        return Template("dispatch/plan.html", context=context)

    @post("/{plan_id:uuid}/apply", status_code=303)
    async def apply(
        self, plan_id: uuid.UUID, db_session: AsyncSession, actor: Actor, clock: Clock
    ) -> Redirect | Template:
        """Assign the plan's new visits (idempotent) and show the result."""
        actor.require_role(Role.ADMIN, Role.MANAGER)
        now = clock.now()
        try:
            async with db_session.begin_nested():
                await dispatch.apply(db_session, actor, plan_id, now)
        except AppError as exc:
            today = services.today_in(actor.org_time_zone, now)
            plan = await dispatch.get_plan(db_session, actor, plan_id)
            values = PlanForm(team_id=str(plan.team_id), date=plan.date.isoformat())
            context = await self._form(
                db_session, actor, today, values, {"apply": exc.detail}, plan
            )
            return Template("dispatch/plan.html", context=context, status_code=exc.status)
        return Redirect(f"/dispatch/{plan_id}", status_code=303)
