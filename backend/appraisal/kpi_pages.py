"""Appraisal pages: ``/appraisal`` (a team's leaderboard and KPIs, for managers and admins),
``/appraisal/{user_id}`` and ``/me/scorecard`` (a scorecard with its trend, evidence links and
review comments), ``/appraisal/{user_id}/evidence/{kind}`` (the items behind a number).

Charts are SVG drawn by the templates (bars of scores and attainments); every number is also in
a table. The same services as the JSON API decide who sees what.
"""

from __future__ import annotations

import uuid
from datetime import date
from typing import Annotated, Any

from litestar import Controller, Request, get, post
from litestar.params import QueryParameter
from litestar.response import Redirect, Template
from sqlalchemy.ext.asyncio import AsyncSession

from backend.accounts.models import Role
from backend.accounts.services import get_user
from backend.appraisal import kpi_evidence, kpis, score_reviews, scorecards
from backend.appraisal.kpi_controllers import FromParam, ToParam, resolve_period
from backend.appraisal.kpi_schemas import ReviewInput
from backend.lib.clock import Clock
from backend.lib.errors import AppError
from backend.lib.forms import field_errors, in_savepoint, read_form, text, to_input
from backend.lib.pagination import Cursor
from backend.lib.tenancy import Actor

TeamParam = Annotated[uuid.UUID | None, QueryParameter(name="team")]

EVIDENCE_TITLES = {
    "visits": "Visits done",
    "late": "Late arrivals",
    "unverified": "Check-ins not verified",
    "overdue": "Tasks overdue",
    "sla-missed": "Deadlines missed",
    "deals": "Won deals credited",
}


def _query(date_from: date, date_to: date) -> str:
    return f"from={date_from.isoformat()}&to={date_to.isoformat()}"


VISIT_KINDS = ("measurement", "installation", "visit")


def page_link(link: str, kind: str) -> str:
    """The web page of an evidence item (its ``link`` is the JSON API's)."""
    ident = link.rsplit("/", 1)[1]
    if link.startswith("/api/v1/deals/"):
        return f"/deals/{ident}"
    if kind in VISIT_KINDS:
        return f"/visits/{ident}"
    return "/tasks"


def _posted_period(values: dict[str, str]) -> tuple[date, date] | None:
    """The period a refused review form was about, when it is a valid one."""
    try:
        period = (date.fromisoformat(values["dateFrom"]), date.fromisoformat(values["dateTo"]))
        kpis.check_period(*period)
    except (ValueError, AppError):
        return None
    return period


class KpiPages(Controller):
    """Leaderboards, scorecards and evidence in the browser."""

    path = "/"
    include_in_schema = False

    @get("/appraisal")
    async def appraisal(
        self,
        db_session: AsyncSession,
        actor: Actor,
        clock: Clock,
        team: TeamParam = None,
        date_from: FromParam = None,
        date_to: ToParam = None,
    ) -> Template | Redirect:
        """A team's leaderboard (score bars) and members' KPIs; field staff go to their own
        scorecard."""
        if actor.role is Role.FIELD:
            return Redirect("/me/scorecard", status_code=303)
        period = resolve_period(actor, clock.now(), date_from, date_to)
        me = await get_user(db_session, actor, actor.user_id)
        teams = await scorecards.visible_teams(db_session, actor)
        context: dict[str, Any] = {
            "me": me,
            "teams": teams,
            "team_id": None,
            "period": period,
            "query": _query(*period),
        }
        if teams:
            team_id = team or teams[0][0]
            context["team_id"] = team_id
            context["board"] = await scorecards.leaderboard(db_session, actor, team_id, *period)
            context["appraisal"] = await kpis.team_appraisal(db_session, actor, team_id, *period)
        return Template("appraisal/team.html", context=context)

    @get("/appraisal/{user_id:uuid}")
    async def person(
        self,
        db_session: AsyncSession,
        actor: Actor,
        clock: Clock,
        user_id: uuid.UUID,
        date_from: FromParam = None,
        date_to: ToParam = None,
    ) -> Template:
        """A person's scorecard for the period (themselves, their managers, admins)."""
        period = resolve_period(actor, clock.now(), date_from, date_to)
        return await self._scorecard(db_session, actor, user_id, period, {}, {})

    @get("/me/scorecard")
    async def mine(
        self,
        db_session: AsyncSession,
        actor: Actor,
        clock: Clock,
        date_from: FromParam = None,
        date_to: ToParam = None,
    ) -> Template:
        """The caller's own scorecard."""
        period = resolve_period(actor, clock.now(), date_from, date_to)
        return await self._scorecard(db_session, actor, actor.user_id, period, {}, {})

    @post("/appraisal/{user_id:uuid}/reviews", status_code=303)
    async def review(
        self,
        request: Request[Any, Any, Any],
        db_session: AsyncSession,
        actor: Actor,
        clock: Clock,
        user_id: uuid.UUID,
    ) -> Redirect | Template:
        """Add a review comment; the page again with the reasons when refused."""
        form = await read_form(request)
        values = {
            "dateFrom": text(form, "dateFrom"),
            "dateTo": text(form, "dateTo"),
            "comment": text(form, "comment"),
        }
        try:
            data = to_input(values, ReviewInput)
            await in_savepoint(
                db_session,
                lambda: score_reviews.add_review(db_session, actor, user_id, data, clock.now()),
            )
        except AppError as exc:
            period = _posted_period(values) or resolve_period(actor, clock.now(), None, None)
            page = await self._scorecard(
                db_session, actor, user_id, period, field_errors(exc), values
            )
            page.status_code = exc.status
            return page
        return Redirect(
            f"/appraisal/{user_id}?{_query(data.date_from, data.date_to)}#reviews",
            status_code=303,
        )

    @get("/appraisal/{user_id:uuid}/evidence/{kind:str}")
    async def evidence(
        self,
        db_session: AsyncSession,
        actor: Actor,
        clock: Clock,
        user_id: uuid.UUID,
        kind: str,
        date_from: FromParam = None,
        date_to: ToParam = None,
        cursor: Cursor = None,
    ) -> Template:
        """The items behind one number of a scorecard, 50 a page."""
        now = clock.now()
        period = resolve_period(actor, now, date_from, date_to)
        page = await kpi_evidence.evidence(
            db_session, actor, user_id, kind, *period, now, 50, cursor
        )
        person = await kpis.visible_person(db_session, actor, user_id)
        me = await get_user(db_session, actor, actor.user_id)
        return Template(
            "appraisal/evidence.html",
            context={
                "me": me,
                "person": person,
                "kind": kind,
                "title": EVIDENCE_TITLES[kind],
                "page": page,
                "period": period,
                "query": _query(*period),
                "zone": person.time_zone,
                "links": [page_link(e.link, e.kind) for e in page.items],
            },
        )

    async def _scorecard(
        self,
        db_session: AsyncSession,
        actor: Actor,
        user_id: uuid.UUID,
        period: tuple[date, date],
        errors: dict[str, str],
        values: dict[str, str],
    ) -> Template:
        card = await scorecards.person_scorecard(db_session, actor, user_id, *period)
        reviews = await score_reviews.list_reviews(db_session, actor, user_id, *period)
        me = await get_user(db_session, actor, actor.user_id)
        may_review = actor.role in (Role.ADMIN, Role.MANAGER) and user_id != actor.user_id
        query = _query(*period)
        evidence = {
            kind: f"/appraisal/{user_id}/evidence/{kind}?{query}" for kind in EVIDENCE_TITLES
        }
        line_links = {
            line.kpi: evidence[kind]
            for line in card.lines
            if (kind := scorecards.CATALOG[line.kpi].evidence) is not None
        }
        return Template(
            "appraisal/scorecard.html",
            context={
                "me": me,
                "card": card,
                "reviews": reviews,
                "may_review": may_review,
                "errors": errors,
                "values": values,
                "period": period,
                "query": query,
                "evidence": evidence,
                "line_links": line_links,
                "own": user_id == actor.user_id,
            },
        )
