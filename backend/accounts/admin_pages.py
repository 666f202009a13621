"""Admin pages for people: users (list, search, create, edit, deactivate) and teams (create,
rename, lead, members). Admins only; every change goes through ``backend.accounts.services``
exactly as the JSON API does, and a refused form comes back with the reason next to its field
(status 422)."""

from __future__ import annotations

import uuid
from typing import Annotated, Any

from litestar import Controller, Request, get, post
from litestar.params import Parameter
from litestar.response import Redirect, Template
from litestar.types import ExceptionHandlersMap
from sqlalchemy.ext.asyncio import AsyncSession

from backend.accounts import schemas, services
from backend.accounts.models import Role, Skill, User
from backend.lib.clock import Clock
from backend.lib.errors import AppError, Forbidden, NotFound
from backend.lib.forms import (
    checked,
    choices,
    field_errors,
    in_savepoint,
    is_htmx,
    optional,
    read_form,
    text,
    to_input,
)
from backend.lib.pagination import MAX_LIMIT, Cursor
from backend.lib.tenancy import Actor

PAGE_SIZE = 50
ROLES = [(Role.ADMIN, "Admin"), (Role.MANAGER, "Manager"), (Role.FIELD, "Field staff")]
SKILLS = [
    (Skill.MEASURER, "Measurer"),
    (Skill.INSTALLER, "Installer"),
    (Skill.SALESPERSON, "Sales"),
]


def page_error(_: Request[Any, Any, Any], exc: AppError) -> Template:
    """Admin pages answer "not allowed" and "not found" with a page (same status as the API)
    rather than a problem+json body."""
    return Template(
        "admin/error.html",
        context={"me": None, "status": exc.status, "title": exc.title, "detail": exc.detail},
        status_code=exc.status,
    )


PAGE_ERRORS: ExceptionHandlersMap = {Forbidden: page_error, NotFound: page_error}
"""``exception_handlers`` of the admin page controllers."""


async def admin_me(session: AsyncSession, actor: Actor) -> User:
    """The calling admin (for the page header); 403 for everyone else."""
    actor.require_role(Role.ADMIN)
    return await services.get_user(session, actor, actor.user_id)


async def all_users(session: AsyncSession, actor: Actor) -> list[schemas.UserOut]:
    """Every user the actor may see, by name (pickers of team leads and members)."""
    users: list[schemas.UserOut] = []
    cursor: str | None = None
    while True:
        page = await services.list_users(session, actor, MAX_LIMIT, cursor, None)
        users.extend(page.items)
        if page.next_cursor is None:
            return users
        cursor = page.next_cursor


async def all_teams(session: AsyncSession, actor: Actor) -> list[schemas.TeamOut]:
    """Every team the actor may see, by name."""
    teams: list[schemas.TeamOut] = []
    cursor: str | None = None
    while True:
        page = await services.list_teams(session, actor, MAX_LIMIT, cursor)
        teams.extend(page.items)
        if page.next_cursor is None:
            return teams
        cursor = page.next_cursor


def _user_values(form: Any, *, creating: bool) -> dict[str, Any]:
    """The API body of a user form (camelCase, as ``UserCreate`` / ``UserUpdate`` read it)."""
    values: dict[str, Any] = {
        "fullName": text(form, "fullName"),
        "role": text(form, "role"),
        "skills": choices(form, "skills"),
        "phone": optional(form, "phone"),
        "timeZone": optional(form, "timeZone"),
        "baseLat": optional(form, "baseLat"),
        "baseLon": optional(form, "baseLon"),
        "teamIds": choices(form, "teamIds"),
    }
    if creating:
        values |= {"email": text(form, "email"), "password": form.get("password") or ""}
    elif values["timeZone"] is None:
        del values["timeZone"]
    return values


async def _stored_values(
    session: AsyncSession, actor: Actor, user: schemas.UserOut
) -> dict[str, Any]:
    """A user's form values as stored."""
    team_ids = await services.user_team_ids(session, actor, user.id)
    return {
        "fullName": user.full_name,
        "role": user.role.value,
        "skills": [s.value for s in user.skills],
        "phone": user.phone,
        "timeZone": user.time_zone,
        "baseLat": user.base_lat,
        "baseLon": user.base_lon,
        "teamIds": [str(t) for t in team_ids],
    }


class AdminUserPages(Controller):
    """``/admin``, ``/admin/users`` and ``/admin/teams``."""

    path = "/admin"
    include_in_schema = False
    exception_handlers = PAGE_ERRORS

    @get("/")
    async def index(self, actor: Actor) -> Redirect:
        """The admin area starts at the users."""
        actor.require_role(Role.ADMIN)
        return Redirect("/admin/users")

    # --- users ----------------------------------------------------------------------------

    @get("/users")
    async def users(
        self,
        request: Request[Any, Any, Any],
        db_session: AsyncSession,
        actor: Actor,
        q: Annotated[str | None, Parameter(max_length=200)] = None,
        cursor: Cursor = None,
    ) -> Template:
        """Users by name, searchable by name or email, 50 a page."""
        me = await admin_me(db_session, actor)
        page = await services.list_users(db_session, actor, PAGE_SIZE, cursor, None, q)
        context = {"me": me, "page": page, "q": q or "", "roles": dict(ROLES)}
        template = "admin/_user_rows.html" if is_htmx(request) else "admin/users.html"
        return Template(template, context=context)

    async def _user_form(
        self,
        session: AsyncSession,
        actor: Actor,
        me: User,
        *,
        user: schemas.UserOut | None,
        values: dict[str, Any],
        errors: dict[str, str],
        status_code: int = 200,
        saved: bool = False,
    ) -> Template:
        teams = await all_teams(session, actor)
        return Template(
            "admin/user_form.html",
            context={
                "me": me,
                "user": user,
                "v": values,
                "errors": errors,
                "roles": ROLES,
                "skills": SKILLS,
                "teams": teams,
                "saved": saved,
            },
            status_code=status_code,
        )

    @get("/users/new")
    async def new_user(self, db_session: AsyncSession, actor: Actor) -> Template:
        """The form for a new user (the organisation's time zone by default)."""
        me = await admin_me(db_session, actor)
        org = await services.get_organization(db_session, actor)
        values = {"role": Role.FIELD.value, "timeZone": org.time_zone, "skills": [], "teamIds": []}
        return await self._user_form(db_session, actor, me, user=None, values=values, errors={})

    @post("/users", status_code=303)
    async def create_user(
        self, request: Request[Any, Any, Any], db_session: AsyncSession, actor: Actor
    ) -> Redirect | Template:
        """Create the user; the form again with the reasons when refused."""
        me = await admin_me(db_session, actor)
        form = await read_form(request)
        values = _user_values(form, creating=True)
        try:
            data = to_input(values, schemas.UserCreate)
            user = await in_savepoint(
                db_session, lambda: services.create_user(db_session, actor, data)
            )
        except AppError as exc:
            values.pop("password", None)
            return await self._user_form(
                db_session,
                actor,
                me,
                user=None,
                values=values,
                errors=field_errors(exc),
                status_code=exc.status,
            )
        return Redirect(f"/admin/users/{user.id}?saved=1", status_code=303)

    @get("/users/{user_id:uuid}")
    async def edit_user(
        self, user_id: uuid.UUID, db_session: AsyncSession, actor: Actor, saved: bool = False
    ) -> Template:
        """One user's settings, teams and base location."""
        me = await admin_me(db_session, actor)
        user = services.user_out(await services.get_user(db_session, actor, user_id))
        values = await _stored_values(db_session, actor, user)
        return await self._user_form(
            db_session, actor, me, user=user, values=values, errors={}, saved=saved
        )

    @post("/users/{user_id:uuid}", status_code=303)
    async def update_user(
        self,
        user_id: uuid.UUID,
        request: Request[Any, Any, Any],
        db_session: AsyncSession,
        actor: Actor,
        clock: Clock,
    ) -> Redirect | Template:
        """Save a user's settings (a role change ends their sessions, as in the API)."""
        me = await admin_me(db_session, actor)
        user = services.user_out(await services.get_user(db_session, actor, user_id))
        form = await read_form(request)
        values = _user_values(form, creating=False)
        try:
            data = to_input(values, schemas.UserUpdate)
            await in_savepoint(
                db_session,
                lambda: services.update_user(db_session, actor, user_id, data, clock.now()),
            )
        except AppError as exc:
            return await self._user_form(
                db_session,
                actor,
                me,
                user=user,
                values=values,
                errors=field_errors(exc),
                status_code=exc.status,
            )
        return Redirect(f"/admin/users/{user_id}?saved=1", status_code=303)

    @post("/users/{user_id:uuid}/active", status_code=303)
    async def set_active(
        self,
        user_id: uuid.UUID,
        request: Request[Any, Any, Any],
        db_session: AsyncSession,
        actor: Actor,
        clock: Clock,
    ) -> Redirect | Template:
        """Deactivate (every session and token ends at once) or reactivate a user."""
        me = await admin_me(db_session, actor)
        form = await read_form(request)
        data = schemas.UserUpdate(is_active=checked(form, "isActive"))
        try:
            await in_savepoint(
                db_session,
                lambda: services.update_user(db_session, actor, user_id, data, clock.now()),
            )
        except AppError as exc:
            user = services.user_out(await services.get_user(db_session, actor, user_id))
            values = await _stored_values(db_session, actor, user)
            return await self._user_form(
                db_session,
                actor,
                me,
                user=user,
                values=values,
                errors=field_errors(exc),
                status_code=exc.status,
            )
        return Redirect(f"/admin/users/{user_id}?saved=1", status_code=303)

    # --- teams ----------------------------------------------------------------------------

    async def _teams_page(
        self,
        session: AsyncSession,
        actor: Actor,
        me: User,
        *,
        values: dict[str, Any],
        errors: dict[str, str],
        status_code: int = 200,
    ) -> Template:
        teams = await all_teams(session, actor)
        users = await all_users(session, actor)
        return Template(
            "admin/teams.html",
            context={
                "me": me,
                "teams": teams,
                "names": {u.id: u.full_name for u in users},
                "leads": [u for u in users if u.role is not Role.FIELD and u.is_active],
                "v": values,
                "errors": errors,
            },
            status_code=status_code,
        )

    @get("/teams")
    async def teams(self, db_session: AsyncSession, actor: Actor) -> Template:
        """Teams with their leads and members, and the form for a new team."""
        me = await admin_me(db_session, actor)
        return await self._teams_page(db_session, actor, me, values={}, errors={})

    @post("/teams", status_code=303)
    async def create_team(
        self, request: Request[Any, Any, Any], db_session: AsyncSession, actor: Actor
    ) -> Redirect | Template:
        """Create a team (members are added on its page)."""
        me = await admin_me(db_session, actor)
        form = await read_form(request)
        values = {"name": text(form, "name"), "leadId": optional(form, "leadId")}
        try:
            data = to_input(values, schemas.TeamCreate)
            team = await in_savepoint(
                db_session, lambda: services.create_team(db_session, actor, data)
            )
        except AppError as exc:
            return await self._teams_page(
                db_session,
                actor,
                me,
                values=values,
                errors=field_errors(exc),
                status_code=exc.status,
            )
        return Redirect(f"/admin/teams/{team.id}?saved=1", status_code=303)

    async def _team_form(
        self,
        session: AsyncSession,
        actor: Actor,
        me: User,
        team: schemas.TeamOut,
        *,
        values: dict[str, Any],
        errors: dict[str, str],
        status_code: int = 200,
        saved: bool = False,
    ) -> Template:
        users = await all_users(session, actor)
        return Template(
            "admin/team_form.html",
            context={
                "me": me,
                "team": team,
                "users": users,
                "leads": [u for u in users if u.role is not Role.FIELD and u.is_active],
                "roles": dict(ROLES),
                "v": values,
                "errors": errors,
                "saved": saved,
            },
            status_code=status_code,
        )

    @get("/teams/{team_id:uuid}")
    async def edit_team(
        self, team_id: uuid.UUID, db_session: AsyncSession, actor: Actor, saved: bool = False
    ) -> Template:
        """A team's name, lead and members."""
        me = await admin_me(db_session, actor)
        team = await services.get_team(db_session, actor, team_id)
        values = {
            "name": team.name,
            "leadId": str(team.lead_id) if team.lead_id else None,
            "memberIds": [str(m) for m in team.member_ids],
        }
        return await self._team_form(
            db_session, actor, me, team, values=values, errors={}, saved=saved
        )

    @post("/teams/{team_id:uuid}", status_code=303)
    async def update_team(
        self,
        team_id: uuid.UUID,
        request: Request[Any, Any, Any],
        db_session: AsyncSession,
        actor: Actor,
    ) -> Redirect | Template:
        """Rename a team, change its lead and its members."""
        me = await admin_me(db_session, actor)
        team = await services.get_team(db_session, actor, team_id)
        form = await read_form(request)
        values = {
            "name": text(form, "name"),
            "leadId": optional(form, "leadId"),
            "memberIds": choices(form, "memberIds"),
        }
        try:
            data = to_input(values, schemas.TeamUpdate)
            await in_savepoint(
                db_session, lambda: services.update_team(db_session, actor, team_id, data)
            )
        except AppError as exc:
            return await self._team_form(
                db_session,
                actor,
                me,
                team,
                values=values,
                errors=field_errors(exc),
                status_code=exc.status,
            )
        return Redirect(f"/admin/teams/{team_id}?saved=1", status_code=303)
