"""Authentication at the boundary: one app-level guard authenticates every route that is not
marked ``opt={"public": True}``.

- ``/api/...`` accepts only ``Authorization: Bearer <access token>`` (no cookies, so the JSON API
  needs no CSRF token).
- Pages accept only the HttpOnly session cookie; Litestar's CSRF middleware guards their unsafe
  methods (double-submit token).
The guard verifies a bearer token's signature and expiry itself and loads its user with the
app's ``ActorLoader`` (one query for the concurrent requests of a moment); a session cookie is
looked up in a short read-only session of its own. The Actor goes on ``connection.state.actor``
for the ``actor`` dependency.
"""

from __future__ import annotations

from typing import Any

from litestar import Request
from litestar.connection import ASGIConnection
from litestar.datastructures import State
from litestar.handlers.base import BaseRouteHandler
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from backend.accounts.actor_loader import ActorLoader
from backend.accounts.security import verify_access_token
from backend.accounts.services import actor_from_web_session
from backend.config import Settings
from backend.lib.clock import Clock
from backend.lib.errors import Unauthenticated
from backend.lib.tenancy import Actor

SESSION_COOKIE = "fieldcrm_session"
API_PREFIX = "/api/"


def is_api_path(path: str) -> bool:
    """JSON API paths use bearer tokens; everything else is a page using the session cookie."""
    return path.startswith(API_PREFIX)


async def authenticate(
    connection: ASGIConnection[Any, Any, Any, Any], handler: BaseRouteHandler
) -> None:
    """App-level guard: authenticate the caller unless the route is public."""
    if handler.opt.get("public"):
        return
    state = connection.app.state
    settings: Settings = state.settings
    clock: Clock = state.clock
    now = clock.now()
    if is_api_path(connection.url.path):
        header = connection.headers.get("authorization", "")
        scheme, _, token = header.partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise Unauthenticated("Send an access token: Authorization: Bearer <token>")
        claims = verify_access_token(token.strip(), secret_key=settings.secret_key, now=now)
        loader: ActorLoader = state.actor_loader
        actor = await loader.load(claims)
    else:
        cookie = connection.cookies.get(SESSION_COOKIE)
        if not cookie:
            raise Unauthenticated("Log in first")
        sessionmaker: async_sessionmaker[AsyncSession] = state.sessionmaker
        async with sessionmaker() as session:
            actor = await actor_from_web_session(session, cookie, now)
    connection.state.actor = actor


def provide_actor(request: Request[Any, Any, Any]) -> Actor:
    """Dependency: the authenticated caller (set by the guard)."""
    actor: Actor | None = getattr(request.state, "actor", None)
    if actor is None:  # a public route asked for an actor
        raise Unauthenticated("Log in first")
    return actor


def provide_settings(state: State) -> Settings:
    """Dependency: the application settings."""
    settings: Settings = state.settings
    return settings


def provide_clock(state: State) -> Clock:
    """Dependency: the injectable clock."""
    clock: Clock = state.clock
    return clock
