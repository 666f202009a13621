"""Response and request bodies of the field KPIs, scorecards, reviews and RFM (camelCase)."""

from __future__ import annotations

import uuid
from datetime import date, datetime
from decimal import Decimal
from typing import Annotated

import msgspec

from backend.accounts.schemas import Input, Output


class Kpis(Output):
    """Field KPIs of one person or a group over a period. Rates are percentages (one decimal)
    and ``None`` when there was nothing to judge; each rate comes with its two counts."""

    visits_done: int
    on_time_rate: float | None
    arrivals_judged: int
    arrivals_on_time: int
    sla_met_rate: float | None
    sla_judged: int
    sla_met: int
    verified_share: float | None
    check_ins: int
    check_ins_verified: int
    on_site_share: float | None
    driving_share: float | None
    idle_share: float | None
    on_site_s: int
    driving_s: int
    idle_s: int
    distance_km: float
    rating_avg: float | None
    rating_count: int
    revenue_won: Decimal
    tasks_overdue: int


class PersonKpis(Output):
    """One person's KPIs."""

    user_id: uuid.UUID
    full_name: str
    role: str
    kpis: Kpis


class TeamAppraisal(Output):
    """A team's members' KPIs and the team's totals (rates from the summed counts; revenue of
    distinct deals, a deal worked by two members counts once)."""

    team_id: uuid.UUID
    team_name: str
    date_from: date
    date_to: date
    members: list[PersonKpis]
    totals: Kpis


KpiName = Annotated[str, msgspec.Meta(min_length=1, max_length=40)]


class ScorecardItem(msgspec.Struct, rename="camel", forbid_unknown_fields=True, kw_only=True):
    """One KPI of a scorecard: its weight (>= 0) and target (see ``GET .../kpis``)."""

    kpi: KpiName
    weight: float
    target: float


class ScorecardInput(Input):
    """The KPIs that make a role's score."""

    items: Annotated[list[ScorecardItem], msgspec.Meta(min_length=1, max_length=20)]


class KpiInfo(Output):
    """A KPI a scorecard may use."""

    name: str
    label: str
    unit: str
    higher_is_better: bool
    per_30_days: bool
    target_min: float
    target_max: float | None


class ScorecardOut(Output):
    """A role's scorecard (``isDefault`` until an admin saves one)."""

    role: str
    items: list[ScorecardItem]
    is_default: bool
    updated_at: datetime | None


class ScoreLine(Output):
    """One KPI's part of a score: value, target for the period, 0–1 attainment, weight."""

    kpi: str
    label: str
    unit: str
    value: float | None
    target: float
    attainment: float | None
    weight: float
    evidence: str | None


class Scorecard(Output):
    """A person's score (0–100, ``None`` when no KPI had data) for a period, the previous
    period's score for the trend, the lines and the KPIs."""

    user_id: uuid.UUID
    full_name: str
    role: str
    date_from: date
    date_to: date
    score: float | None
    previous_score: float | None
    trend: float | None
    lines: list[ScoreLine]
    kpis: Kpis
    previous_kpis: Kpis


class LeaderboardRow(Output):
    """A person's place on the leaderboard."""

    rank: int
    user_id: uuid.UUID
    full_name: str
    role: str
    score: float | None
    previous_score: float | None
    trend: float | None


class Leaderboard(Output):
    """A team's people by score, best first (no score last)."""

    team_id: uuid.UUID
    team_name: str
    date_from: date
    date_to: date
    rows: list[LeaderboardRow]


class Evidence(Output):
    """One item behind a number: a visit, check-in, task or deal, with a link to it."""

    id: uuid.UUID
    kind: str
    title: str
    at: datetime | None
    detail: str
    link: str


class ReviewInput(Input):
    """A manager's comment on a person's period."""

    date_from: date
    date_to: date
    comment: Annotated[str, msgspec.Meta(min_length=1, max_length=5000)]


class ReviewOut(Output):
    id: uuid.UUID
    user_id: uuid.UUID
    author_id: uuid.UUID | None
    author_name: str | None
    date_from: date
    date_to: date
    comment: str
    created_at: datetime


class SegmentSummary(Output):
    """Customers in one RFM segment and their won revenue."""

    segment: str
    label: str
    customers: int
    monetary: Decimal
    avg_recency_days: float | None
    avg_frequency: float | None


class RfmSummary(Output):
    """The organisation's RFM segmentation (from the last computation)."""

    computed_at: datetime | None
    customers: int
    segments: list[SegmentSummary]
