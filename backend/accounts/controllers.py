"""JSON API of accounts: tokens, the caller, the organisation, users and teams."""

from __future__ import annotations

import uuid
from typing import Annotated

from litestar import Controller, Request, Response, get, patch, post
from litestar.params import Parameter
from litestar.status_codes import HTTP_201_CREATED, HTTP_204_NO_CONTENT
from sqlalchemy.ext.asyncio import AsyncSession

from backend.accounts import schemas, services
from backend.accounts.models import SessionKind
from backend.config import Settings
from backend.lib.clock import Clock
from backend.lib.errors import Unauthenticated, problem_response
from backend.lib.pagination import DEFAULT_LIMIT, Cursor, Limit, Page
from backend.lib.tenancy import Actor


class AuthController(Controller):
    """Tokens for phones and API clients."""

    path = "/api/v1/auth"
    tags = ["auth"]

    @post("/token", opt={"public": True}, status_code=200)
    async def token(
        self,
        data: schemas.LoginInput,
        db_session: AsyncSession,
        settings: Settings,
        clock: Clock,
        request: Request,  # type: ignore[type-arg]
    ) -> schemas.TokenPair:
        """Log in with email and password: a short-lived access token and a refresh token."""
        user = await services.authenticate_password(db_session, data.email, data.password)
        return await services.issue_tokens(
            db_session, user, settings, clock.now(), request.headers.get("user-agent")
        )

    @post("/refresh", opt={"public": True}, status_code=200)
    async def refresh(
        self,
        data: schemas.RefreshInput,
        db_session: AsyncSession,
        settings: Settings,
        clock: Clock,
        request: Request,  # type: ignore[type-arg]
    ) -> schemas.TokenPair | Response[bytes]:
        """Swap a refresh token for a new pair (the old refresh token is spent). Presenting a
        spent refresh token again ends every session of its user."""
        pair = await services.rotate_refresh_token(
            db_session, data.refresh_token, settings, clock.now(), request.headers.get("user-agent")
        )
        if pair is None:
            refused = Unauthenticated("The refresh token was already used; all sessions have ended")
            return problem_response(refused.problem(), {"WWW-Authenticate": "Bearer"})
        return pair

    @post("/logout", opt={"public": True}, status_code=HTTP_204_NO_CONTENT)
    async def logout(
        self, data: schemas.RefreshInput, db_session: AsyncSession, clock: Clock
    ) -> None:
        """Revoke a refresh token."""
        await services.revoke_token(
            db_session, data.refresh_token, SessionKind.REFRESH, clock.now()
        )


class MeController(Controller):
    """The caller."""

    path = "/api/v1/me"
    tags = ["accounts"]

    @get("/")
    async def me(self, db_session: AsyncSession, actor: Actor) -> schemas.UserOut:
        """Who am I."""
        return services.user_out(await services.get_user(db_session, actor, actor.user_id))

    @post("/password", status_code=HTTP_204_NO_CONTENT)
    async def change_password(
        self,
        data: schemas.PasswordChangeInput,
        db_session: AsyncSession,
        actor: Actor,
        clock: Clock,
    ) -> None:
        """Change my password; all my tokens and sessions end."""
        await services.change_password(db_session, actor, data, clock.now())


class OrganizationController(Controller):
    """The caller's organisation."""

    path = "/api/v1/organization"
    tags = ["accounts"]

    @get("/")
    async def show(self, db_session: AsyncSession, actor: Actor) -> schemas.OrganizationOut:
        """The organisation's settings and payment details."""
        return services.organization_out(await services.get_organization(db_session, actor))

    @patch("/")
    async def update(
        self, data: schemas.OrganizationUpdate, db_session: AsyncSession, actor: Actor
    ) -> schemas.OrganizationOut:
        """Admins change the organisation."""
        return services.organization_out(
            await services.update_organization(db_session, actor, data)
        )


class UserController(Controller):
    """Users of the organisation."""

    path = "/api/v1/users"
    tags = ["accounts"]

    @get("/")
    async def list_users(
        self,
        db_session: AsyncSession,
        actor: Actor,
        limit: Limit = DEFAULT_LIMIT,
        cursor: Cursor = None,
        active: bool | None = None,
        q: Annotated[str | None, Parameter(max_length=200)] = None,
    ) -> Page[schemas.UserOut]:
        """Users the caller may see, by name; ``q`` keeps those whose name or email contains it."""
        return await services.list_users(db_session, actor, limit, cursor, active, q)

    @post("/", status_code=HTTP_201_CREATED)
    async def create_user(
        self, data: schemas.UserCreate, db_session: AsyncSession, actor: Actor
    ) -> schemas.UserOut:
        """Admins add a user."""
        return services.user_out(await services.create_user(db_session, actor, data))

    @get("/{user_id:uuid}")
    async def get_user(
        self, user_id: uuid.UUID, db_session: AsyncSession, actor: Actor
    ) -> schemas.UserOut:
        """One user."""
        return services.user_out(await services.get_user(db_session, actor, user_id))

    @patch("/{user_id:uuid}")
    async def update_user(
        self,
        user_id: uuid.UUID,
        data: schemas.UserUpdate,
        db_session: AsyncSession,
        actor: Actor,
        clock: Clock,
    ) -> schemas.UserOut:
        """Admins change a user (role, skills, deactivation...)."""
        return services.user_out(
            await services.update_user(db_session, actor, user_id, data, clock.now())
        )


class TeamController(Controller):
    """Teams."""

    path = "/api/v1/teams"
    tags = ["accounts"]

    @get("/")
    async def list_teams(
        self,
        db_session: AsyncSession,
        actor: Actor,
        limit: Limit = DEFAULT_LIMIT,
        cursor: Cursor = None,
    ) -> Page[schemas.TeamOut]:
        """Teams the caller may see."""
        return await services.list_teams(db_session, actor, limit, cursor)

    @post("/", status_code=HTTP_201_CREATED)
    async def create_team(
        self, data: schemas.TeamCreate, db_session: AsyncSession, actor: Actor
    ) -> schemas.TeamOut:
        """Admins create a team."""
        return await services.create_team(db_session, actor, data)

    @get("/{team_id:uuid}")
    async def get_team(
        self, team_id: uuid.UUID, db_session: AsyncSession, actor: Actor
    ) -> schemas.TeamOut:
        """One team."""
        return await services.get_team(db_session, actor, team_id)

    @patch("/{team_id:uuid}")
    async def update_team(
        self, team_id: uuid.UUID, data: schemas.TeamUpdate, db_session: AsyncSession, actor: Actor
    ) -> schemas.TeamOut:
        """Admins change a team."""
        return await services.update_team(db_session, actor, team_id, data)


CONTROLLERS = [AuthController, MeController, OrganizationController, UserController, TeamController]
