"""Login and logout pages for the web client (session cookie + CSRF-protected forms)."""

from __future__ import annotations

from typing import Annotated, Any

import msgspec
from litestar import Controller, Request, get, post
from litestar.enums import RequestEncodingType
from litestar.params import Body
from litestar.response import Redirect, Template
from sqlalchemy.ext.asyncio import AsyncSession

from backend.accounts import services
from backend.accounts.auth import SESSION_COOKIE
from backend.accounts.models import SessionKind
from backend.config import Settings
from backend.lib.clock import Clock
from backend.lib.errors import Unauthenticated


class LoginForm(msgspec.Struct):
    email: str = ""
    password: str = ""
    next: str = "/"


def safe_next(target: str) -> str:
    """Only same-site relative paths may be redirected to after login."""
    return target if target.startswith("/") and not target.startswith("//") else "/"


class LoginPages(Controller):
    """``/login`` and ``/logout``."""

    path = "/"
    include_in_schema = False

    @get("/login", opt={"public": True})
    async def login_form(self, next: str = "/") -> Template:
        """The login form."""
        return Template("login.html", context={"next": safe_next(next), "error": None, "email": ""})

    @post("/login", opt={"public": True}, status_code=303)
    async def login(
        self,
        data: Annotated[LoginForm, Body(media_type=RequestEncodingType.URL_ENCODED)],
        db_session: AsyncSession,
        settings: Settings,
        clock: Clock,
        request: Request[Any, Any, Any],
    ) -> Redirect | Template:
        """Check the password and start a browser session."""
        try:
            user = await services.authenticate_password(db_session, data.email, data.password)
        except Unauthenticated as exc:
            return Template(
                "login.html",
                context={"next": safe_next(data.next), "error": exc.detail, "email": data.email},
                status_code=401,
            )
        token = await services.start_web_session(
            db_session, user, settings, clock.now(), request.headers.get("user-agent")
        )
        response = Redirect(safe_next(data.next), status_code=303)
        response.set_cookie(
            SESSION_COOKIE,
            token,
            max_age=settings.web_session_ttl_s,
            httponly=True,
            secure=settings.cookie_secure,
            samesite="lax",
            path="/",
        )
        return response

    @post("/logout", status_code=303)
    async def logout(
        self, db_session: AsyncSession, clock: Clock, request: Request[Any, Any, Any]
    ) -> Redirect:
        """End the browser session."""
        token = request.cookies.get(SESSION_COOKIE)
        if token:
            await services.revoke_token(db_session, token, SessionKind.WEB, clock.now())
        response = Redirect("/login", status_code=303)
        response.delete_cookie(SESSION_COOKIE, path="/")
        return response
