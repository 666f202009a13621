"""JSON API of field KPIs, scorecards, leaderboards, evidence, reviews and RFM
(``/api/v1/appraisal/...``).

Periods are ``?from=YYYY-MM-DD&to=YYYY-MM-DD`` (local days, both included); without them, the
current quarter up to today in the caller's time zone.
"""

from __future__ import annotations

import uuid
from datetime import date, datetime
from typing import Annotated
from zoneinfo import ZoneInfo

from litestar import Controller, get, post, put
from litestar.params import QueryParameter
from litestar.status_codes import HTTP_201_CREATED
from sqlalchemy.ext.asyncio import AsyncSession

from backend.accounts.models import Role
from backend.appraisal import kpi_evidence, kpis, rfm, score_reviews, scorecards
from backend.appraisal.kpi_schemas import (
    Evidence,
    KpiInfo,
    Leaderboard,
    PersonKpis,
    ReviewInput,
    ReviewOut,
    RfmSummary,
    Scorecard,
    ScorecardInput,
    ScorecardOut,
    TeamAppraisal,
)
from backend.lib.clock import Clock
from backend.lib.errors import InvalidInput
from backend.lib.pagination import DEFAULT_LIMIT, Cursor, Limit, Page
from backend.lib.tenancy import Actor

FromParam = Annotated[
    date | None, QueryParameter(name="from", description="first local day (YYYY-MM-DD)")
]
ToParam = Annotated[date | None, QueryParameter(name="to", description="last local day")]


def quarter_to_date(time_zone: str, now: datetime) -> tuple[date, date]:
    """The current calendar quarter, from its first day to today, in ``time_zone``."""
    today = now.astimezone(ZoneInfo(time_zone)).date()
    first_month = 3 * ((today.month - 1) // 3) + 1
    return date(today.year, first_month, 1), today


def resolve_period(
    actor: Actor, now: datetime, date_from: date | None, date_to: date | None
) -> tuple[date, date]:
    """The asked period, or the quarter to date; both ends or neither."""
    if date_from is None and date_to is None:
        return quarter_to_date(actor.time_zone, now)
    if date_from is None or date_to is None:
        field = "from" if date_from is None else "to"
        raise InvalidInput.on(field, "give both from and to, or neither")
    kpis.check_period(date_from, date_to)
    return date_from, date_to


def parse_role(role: str) -> Role:
    """A role from the path (422 when unknown)."""
    try:
        return Role(role)
    except ValueError as exc:
        raise InvalidInput.on("role", "one of admin, manager, field") from exc


class AppraisalController(Controller):
    """Field KPIs, scores and their evidence."""

    path = "/api/v1/appraisal"
    tags = ["appraisal"]

    @get("/kpis")
    async def kpi_catalog(self) -> list[KpiInfo]:
        """The KPIs a scorecard may use, with their units, direction and target ranges."""
        return [d.info() for d in scorecards.CATALOG.values()]

    @get("/teams/{team_id:uuid}")
    async def team(
        self,
        db_session: AsyncSession,
        actor: Actor,
        clock: Clock,
        team_id: uuid.UUID,
        date_from: FromParam = None,
        date_to: ToParam = None,
    ) -> TeamAppraisal:
        """A team's members' KPIs and the team's totals (admins; managers their teams)."""
        period = resolve_period(actor, clock.now(), date_from, date_to)
        return await kpis.team_appraisal(db_session, actor, team_id, *period)

    @get("/teams/{team_id:uuid}/leaderboard")
    async def leaderboard(
        self,
        db_session: AsyncSession,
        actor: Actor,
        clock: Clock,
        team_id: uuid.UUID,
        date_from: FromParam = None,
        date_to: ToParam = None,
    ) -> Leaderboard:
        """A team's people by score, with the previous period's score and the trend."""
        period = resolve_period(actor, clock.now(), date_from, date_to)
        return await scorecards.leaderboard(db_session, actor, team_id, *period)

    @get("/people/{user_id:uuid}/kpis")
    async def person_kpis(
        self,
        db_session: AsyncSession,
        actor: Actor,
        clock: Clock,
        user_id: uuid.UUID,
        date_from: FromParam = None,
        date_to: ToParam = None,
    ) -> PersonKpis:
        """One person's KPIs (themselves; managers their teams' members; admins anyone)."""
        period = resolve_period(actor, clock.now(), date_from, date_to)
        return await kpis.person_kpis(db_session, actor, user_id, *period)

    @get("/people/{user_id:uuid}/scorecard")
    async def person_scorecard(
        self,
        db_session: AsyncSession,
        actor: Actor,
        clock: Clock,
        user_id: uuid.UUID,
        date_from: FromParam = None,
        date_to: ToParam = None,
    ) -> Scorecard:
        """A person's score for the period, the trend and a link to each number's evidence."""
        period = resolve_period(actor, clock.now(), date_from, date_to)
        return await scorecards.person_scorecard(db_session, actor, user_id, *period)

    @get("/me/scorecard")
    async def my_scorecard(
        self,
        db_session: AsyncSession,
        actor: Actor,
        clock: Clock,
        date_from: FromParam = None,
        date_to: ToParam = None,
    ) -> Scorecard:
        """The caller's own scorecard."""
        period = resolve_period(actor, clock.now(), date_from, date_to)
        return await scorecards.person_scorecard(db_session, actor, actor.user_id, *period)

    @get("/people/{user_id:uuid}/evidence/{kind:str}")
    async def evidence(
        self,
        db_session: AsyncSession,
        actor: Actor,
        clock: Clock,
        user_id: uuid.UUID,
        kind: str,
        date_from: FromParam = None,
        date_to: ToParam = None,
        limit: Limit = DEFAULT_LIMIT,
        cursor: Cursor = None,
    ) -> Page[Evidence]:
        """The items behind a number, newest first: ``visits``, ``late`` (arrivals after
        the promised time), ``unverified`` (check-ins), ``overdue`` (tasks), ``sla-missed``,
        ``deals`` (won deals credited)."""
        now = clock.now()
        period = resolve_period(actor, now, date_from, date_to)
        return await kpi_evidence.evidence(
            db_session, actor, user_id, kind, *period, now, limit, cursor
        )

    @get("/people/{user_id:uuid}/reviews")
    async def reviews(
        self,
        db_session: AsyncSession,
        actor: Actor,
        clock: Clock,
        user_id: uuid.UUID,
        date_from: FromParam = None,
        date_to: ToParam = None,
    ) -> list[ReviewOut]:
        """Review comments on the person whose period overlaps the asked one."""
        period = resolve_period(actor, clock.now(), date_from, date_to)
        return await score_reviews.list_reviews(db_session, actor, user_id, *period)

    @post("/people/{user_id:uuid}/reviews", status_code=HTTP_201_CREATED)
    async def add_review(
        self,
        db_session: AsyncSession,
        actor: Actor,
        clock: Clock,
        user_id: uuid.UUID,
        data: ReviewInput,
    ) -> ReviewOut:
        """Comment on a person's period (admins; managers for their teams' members)."""
        return await score_reviews.add_review(db_session, actor, user_id, data, clock.now())

    @get("/scorecards/{role:str}")
    async def get_scorecard(
        self, db_session: AsyncSession, actor: Actor, role: str
    ) -> ScorecardOut:
        """A role's scorecard: KPIs, weights and targets (the default until one is saved)."""
        return await scorecards.get_scorecard(db_session, actor, parse_role(role))

    @put("/scorecards/{role:str}")
    async def put_scorecard(
        self,
        db_session: AsyncSession,
        actor: Actor,
        clock: Clock,
        role: str,
        data: ScorecardInput,
    ) -> ScorecardOut:
        """Replace a role's scorecard (admins): known KPIs, weights >= 0 adding up to more
        than 0, targets in each KPI's range (``GET /api/v1/appraisal/kpis``)."""
        return await scorecards.put_scorecard(
            db_session, actor, parse_role(role), data, clock.now()
        )

    @get("/rfm")
    async def rfm_summary(self, db_session: AsyncSession, actor: Actor) -> RfmSummary:
        """Customers per RFM segment (recency, frequency, monetary value of won deals) with
        their revenue, over the customers the caller may see."""
        return await rfm.summary(db_session, actor)


CONTROLLERS = [AppraisalController]
