"""Public pages behind the links in customer messages: ``/t/{token}`` (live tracking, with
``/t/{token}/position`` polled by it), ``/feedback/{token}`` and ``/u/{token}`` (unsubscribe).

No login: the token is the key. CSRF does not apply (like the lead forms, the CSRF middleware
excludes these paths; the pages are reached from mail clients); input is validated and each
client address is rate limited. Answers are never cached and send no Referer (the token is in
the URL, and the map tiles come from another site).
"""

from __future__ import annotations

from datetime import timedelta
from typing import Annotated, Any

from litestar import Controller, Request, Response, get, post
from litestar.enums import RequestEncodingType
from litestar.params import Body
from litestar.response import Template
from sqlalchemy.ext.asyncio import AsyncSession

from backend.config import Settings
from backend.lib import ratelimit
from backend.lib.clock import Clock
from backend.lib.errors import InvalidInput, NotFound, Problem, problem_response
from backend.notifications.customer import public, render, schemas
from backend.notifications.customer.texts import texts_for

VIEWS_PER_MINUTE = 120
POSTS_PER_MINUTE = 10
_MINUTE = timedelta(minutes=1)
HEADERS = {
    "Cache-Control": "no-store",
    "Referrer-Policy": "no-referrer",
    "X-Robots-Tag": "noindex, nofollow",
}


def _ip(request: Request[Any, Any, Any]) -> str:
    return request.client.host if request.client else "unknown"


async def _allowed(
    db_session: AsyncSession, request: Request[Any, Any, Any], what: str, limit: int, clock: Clock
) -> bool:
    return await ratelimit.hit(
        db_session, f"customer:{what}:{_ip(request)}", now=clock.now(), limit=limit, window=_MINUTE
    )


def _page(
    name: str, lang: str, status: int = 200, headers: dict[str, str] | None = None, **context: Any
) -> Template:
    return Template(
        f"public/{name}.html",
        context={"lang": lang, "t": texts_for(lang), **context},
        status_code=status,
        headers={**HEADERS, **(headers or {})},
    )


def _slow_down(lang: str) -> Template:
    return _page("message", lang, 429, {"Retry-After": "60"}, message_key="slow_down")


def _gone(lang: str = "en", status: int = 404) -> Template:
    return _page("message", lang, status, message_key="gone")


class CustomerLinkPages(Controller):
    """The pages customers open from their messages."""

    opt = {"public": True}
    include_in_schema = False

    @get("/t/{token:str}")
    async def tracking(
        self,
        token: str,
        request: Request[Any, Any, Any],
        db_session: AsyncSession,
        clock: Clock,
        settings: Settings,
    ) -> Template:
        """Who is coming, when, and where they are now, while they are on the way."""
        if not await _allowed(db_session, request, "view", VIEWS_PER_MINUTE, clock):
            return _slow_down("en")
        view = await public.tracking_view(db_session, token, clock.now())
        if view is None:
            return _gone()
        if view.status is public.TrackingStatus.EXPIRED:
            return _gone(view.language, 410)
        return _page(
            "tracking",
            view.language,
            view=view,
            eta=render.local_time(view.eta, view.time_zone) if view.eta else None,
            token=token,
            tiles=str(getattr(settings, "map_tile_url", "") or ""),
        )

    @get("/t/{token:str}/position")
    async def position(
        self,
        token: str,
        request: Request[Any, Any, Any],
        db_session: AsyncSession,
        clock: Clock,
    ) -> Response[Any]:
        """The tracking page's live data (polled): status, ETA and the latest fix while the
        worker is on the way; 410 once the visit is over, 404 for a dead link."""
        if not await _allowed(db_session, request, "view", VIEWS_PER_MINUTE, clock):
            return problem_response(
                Problem(
                    type="urn:fieldcrm:problem:rate-limited",
                    title="Too many requests",
                    status=429,
                    detail="Too many requests from this address; try again in a minute",
                ),
                headers={"Retry-After": "60", **HEADERS},
            )
        view = await public.tracking_view(db_session, token, clock.now())
        if view is None:
            raise NotFound("This link does not work (any more)")
        if view.status is public.TrackingStatus.EXPIRED:
            return problem_response(
                Problem(
                    type="urn:fieldcrm:problem:gone",
                    title="Gone",
                    status=410,
                    detail="The visit is over; this link has expired",
                ),
                headers=HEADERS,
            )
        fix = view.position if view.status is public.TrackingStatus.EN_ROUTE else None
        body = schemas.TrackingPositionOut(
            status="en_route" if view.status is public.TrackingStatus.EN_ROUTE else "arrived",
            worker=view.worker,
            eta=view.eta,
            lat=fix.lat if fix else None,
            lon=fix.lon if fix else None,
            recorded_at=fix.recorded_at if fix else None,
        )
        return Response(body, headers=HEADERS)

    @get("/feedback/{token:str}")
    async def feedback_form(
        self, token: str, request: Request[Any, Any, Any], db_session: AsyncSession, clock: Clock
    ) -> Template:
        """The 1-5 rating and comment form (or thanks, when already given)."""
        if not await _allowed(db_session, request, "view", VIEWS_PER_MINUTE, clock):
            return _slow_down("en")
        form = await public.feedback_form(db_session, token, clock.now())
        if form is None:
            return _gone()
        if form.submitted:
            return _page("message", form.language, message_key="feedback_done")
        return _page("feedback", form.language, form=form, token=token, values={}, errors={})

    @post("/feedback/{token:str}", status_code=200)
    async def submit_feedback(
        self,
        token: str,
        request: Request[Any, Any, Any],
        data: Annotated[dict[str, str], Body(media_type=RequestEncodingType.URL_ENCODED)],
        db_session: AsyncSession,
        clock: Clock,
    ) -> Template:
        """Take the rating (once per visit); the form again with what to fix (422)."""
        if not await _allowed(db_session, request, "post", POSTS_PER_MINUTE, clock):
            return _slow_down("en")
        now = clock.now()
        form = await public.feedback_form(db_session, token, now)
        if form is None:
            return _gone()
        if form.submitted:
            return _page("message", form.language, 409, message_key="feedback_done")
        try:
            rating, comment = public.parse_feedback(data)
        except InvalidInput as exc:
            errors = {e.field: e.reason for e in exc.errors}
            return _page(
                "feedback", form.language, 422, form=form, token=token, values=data, errors=errors
            )
        if not await public.store_feedback(db_session, form, rating, comment, now):
            return _page("message", form.language, 409, message_key="feedback_done")
        return _page("message", form.language, message_key="feedback_thanks")

    @get("/u/{token:str}")
    async def unsubscribe_page(
        self, token: str, request: Request[Any, Any, Any], db_session: AsyncSession, clock: Clock
    ) -> Template:
        """Asks to confirm (mail scanners open links; only the button unsubscribes)."""
        if not await _allowed(db_session, request, "view", VIEWS_PER_MINUTE, clock):
            return _slow_down("en")
        found = await public.unsubscribe_link(db_session, token, clock.now())
        if found is None:
            return _gone()
        return _page("unsubscribe", found.language, found=found, token=token)

    @post("/u/{token:str}", status_code=200)
    async def unsubscribe(
        self, token: str, request: Request[Any, Any, Any], db_session: AsyncSession, clock: Clock
    ) -> Template:
        """No more messages to this address (also the one-click POST of RFC 8058)."""
        if not await _allowed(db_session, request, "post", POSTS_PER_MINUTE, clock):
            return _slow_down("en")
        now = clock.now()
        found = await public.unsubscribe_link(db_session, token, now)
        if found is None:
            return _gone()
        await public.confirm_unsubscribe(db_session, found, now)
        return _page("message", found.language, message_key="unsubscribed")
