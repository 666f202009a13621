"""Scorecards: which KPIs make a role's score, with weights and targets, per organisation; the
0–100 score of a person for a period, its trend against the previous period, and a team's
leaderboard.

A KPI's attainment is 0–1: for KPIs where more is better ``min(value / target, 1)``; where less
is better 1 up to the target, then ``target / value`` (``1 / (1 + value)`` for a target of 0).
Counted KPIs (``per30Days``) have targets per 30 days, scaled to the period's length. The score
is 100 × the weighted mean attainment over the KPIs that have a value in the period (a worker
with no judged arrival is not scored on punctuality); with none, there is no score.
"""

from __future__ import annotations

import math
import uuid
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

import msgspec
from sqlalchemy import select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from backend.accounts.models import Role, Team, User
from backend.appraisal import kpis as kpi
from backend.appraisal.kpi_models import Scorecard
from backend.appraisal.kpi_schemas import (
    KpiInfo,
    Kpis,
    Leaderboard,
    LeaderboardRow,
    ScorecardInput,
    ScorecardItem,
    ScorecardOut,
    ScoreLine,
)
from backend.appraisal.kpi_schemas import Scorecard as ScorecardView
from backend.audit import services as audit
from backend.lib.errors import FieldError, InvalidInput
from backend.lib.tenancy import Actor


@dataclass(frozen=True)
class KpiDef:
    """A KPI a scorecard may use: how it reads, which way is better, its target range and the
    evidence behind it."""

    name: str
    label: str
    unit: str
    higher_is_better: bool
    per_30_days: bool
    target_min: float
    target_max: float | None
    evidence: str | None = None

    def info(self) -> KpiInfo:
        """As an API body."""
        return KpiInfo(
            name=self.name,
            label=self.label,
            unit=self.unit,
            higher_is_better=self.higher_is_better,
            per_30_days=self.per_30_days,
            target_min=self.target_min,
            target_max=self.target_max,
        )


CATALOG: dict[str, KpiDef] = {
    d.name: d
    for d in (
        KpiDef("visits_done", "Visits done", "visits", True, True, 1, None, "visits"),
        KpiDef("on_time_rate", "On-time arrivals", "%", True, False, 1, 100, "late"),
        KpiDef("sla_met_rate", "SLA met", "%", True, False, 1, 100, "sla-missed"),
        KpiDef("verified_share", "Verified check-ins", "%", True, False, 1, 100, "unverified"),
        KpiDef("on_site_share", "Time on site", "% of shift", True, False, 1, 100),
        KpiDef("driving_share", "Time driving", "% of shift", False, False, 0, 100),
        KpiDef("idle_share", "Idle time", "% of shift", False, False, 0, 100),
        KpiDef("distance_km", "Distance driven", "km", False, True, 0, None),
        KpiDef("rating_avg", "Customer rating", "of 5", True, False, 1, 5, "visits"),
        KpiDef("revenue_won", "Revenue won", "money", True, True, 1, None, "deals"),
        KpiDef("tasks_overdue", "Tasks overdue", "tasks", False, True, 0, None, "overdue"),
    )
}

DEFAULTS: dict[Role, list[ScorecardItem]] = {
    Role.FIELD: [
        ScorecardItem(kpi="visits_done", weight=3, target=60),
        ScorecardItem(kpi="on_time_rate", weight=2, target=90),
        ScorecardItem(kpi="sla_met_rate", weight=2, target=95),
        ScorecardItem(kpi="verified_share", weight=2, target=95),
        ScorecardItem(kpi="rating_avg", weight=2, target=4.5),
        ScorecardItem(kpi="tasks_overdue", weight=1, target=0),
    ],
    Role.MANAGER: [
        ScorecardItem(kpi="revenue_won", weight=3, target=1_000_000),
        ScorecardItem(kpi="sla_met_rate", weight=1, target=90),
        ScorecardItem(kpi="tasks_overdue", weight=1, target=2),
    ],
    Role.ADMIN: [
        ScorecardItem(kpi="revenue_won", weight=1, target=1_000_000),
    ],
}


def validate(data: ScorecardInput) -> list[ScorecardItem]:
    """Check a scorecard: known KPIs, each once, finite weights >= 0 summing to > 0, targets
    within the KPI's range. Every problem is reported (422) with its field."""
    errors: list[FieldError] = []
    seen: set[str] = set()
    for i, item in enumerate(data.items):
        where = f"items[{i}]"
        definition = CATALOG.get(item.kpi)
        if definition is None:
            errors.append(
                FieldError(f"{where}.kpi", f"unknown KPI; one of {', '.join(sorted(CATALOG))}")
            )
        elif item.kpi in seen:
            errors.append(FieldError(f"{where}.kpi", "listed twice"))
        seen.add(item.kpi)
        if not math.isfinite(item.weight) or item.weight < 0:
            errors.append(FieldError(f"{where}.weight", "must be a number >= 0"))
        elif item.weight > 1000:
            errors.append(FieldError(f"{where}.weight", "must be at most 1000"))
        if not math.isfinite(item.target):
            errors.append(FieldError(f"{where}.target", "must be a finite number"))
        elif definition is not None:
            high = definition.target_max
            if item.target < definition.target_min or (high is not None and item.target > high):
                bounds = (
                    f"between {definition.target_min:g} and {high:g}"
                    if high is not None
                    else f"at least {definition.target_min:g}"
                )
                errors.append(FieldError(f"{where}.target", f"must be {bounds}"))
    weights = [i.weight for i in data.items if math.isfinite(i.weight)]
    if not errors and sum(weights) <= 0:
        errors.append(FieldError("items", "the weights must add up to more than 0"))
    if errors:
        raise InvalidInput("The scorecard is not valid", errors=errors)
    return list(data.items)


async def scorecard_items(
    session: AsyncSession, organization_id: uuid.UUID, role: Role
) -> tuple[list[ScorecardItem], Scorecard | None]:
    """The role's scorecard items (the default when none is saved) and the stored row."""
    row = await session.get(Scorecard, (organization_id, role))
    if row is None:
        return list(DEFAULTS[role]), None
    return msgspec.convert(row.items, list[ScorecardItem]), row


async def get_scorecard(session: AsyncSession, actor: Actor, role: Role) -> ScorecardOut:
    """A role's scorecard, for admins and managers."""
    actor.require_role(Role.ADMIN, Role.MANAGER)
    items, row = await scorecard_items(session, actor.organization_id, role)
    return ScorecardOut(
        role=role.value,
        items=items,
        is_default=row is None,
        updated_at=row.updated_at if row else None,
    )


async def put_scorecard(
    session: AsyncSession, actor: Actor, role: Role, data: ScorecardInput, now: datetime
) -> ScorecardOut:
    """Replace a role's scorecard (admins; validated; audited)."""
    actor.require_role(Role.ADMIN)
    items = validate(data)
    stored = [msgspec.to_builtins(i) for i in items]
    before, _ = await scorecard_items(session, actor.organization_id, role)
    await session.execute(
        insert(Scorecard)
        .values(
            organization_id=actor.organization_id,
            role=role,
            items=stored,
            updated_at=now,
            updated_by_id=actor.user_id,
        )
        .on_conflict_do_update(
            index_elements=[Scorecard.organization_id, Scorecard.role],
            set_={"items": stored, "updated_at": now, "updated_by_id": actor.user_id},
        )
    )
    await audit.record(
        session,
        organization_id=actor.organization_id,
        entity="scorecard",
        entity_id=actor.organization_id,
        action=f"scorecard_{role.value}_saved",
        actor_id=actor.user_id,
        at=now,
        changes={"items": [[msgspec.to_builtins(i) for i in before], stored]},
    )
    return ScorecardOut(role=role.value, items=items, is_default=False, updated_at=now)


def attainment(definition: KpiDef, value: float, target: float) -> float:
    """0–1: how far ``value`` reaches ``target`` (see the module docstring)."""
    if definition.higher_is_better:
        return 1.0 if target <= 0 else max(0.0, min(value / target, 1.0))
    if value <= target:
        return 1.0
    return target / value if target > 0 else 1.0 / (1.0 + value)


def _value(kpis: Kpis, name: str) -> float | None:
    """The KPI's value as a number; None when the period gave nothing to judge it by."""
    raw: Any = getattr(kpis, name)
    return None if raw is None else float(raw)


def score_lines(
    items: list[ScorecardItem], kpis: Kpis, days: int, evidence_base: str | None = None
) -> tuple[float | None, list[ScoreLine]]:
    """The score (0–100, one decimal; None when no KPI has a value) and one line per item."""
    lines: list[ScoreLine] = []
    total = weights = 0.0
    for item in items:
        definition = CATALOG.get(item.kpi)
        if definition is None:
            continue
        target = item.target * days / 30 if definition.per_30_days else item.target
        value = _value(kpis, item.kpi)
        reached = None if value is None else attainment(definition, value, target)
        if reached is not None:
            total += reached * item.weight
            weights += item.weight
        evidence = (
            f"{evidence_base}/{definition.evidence}"
            if evidence_base is not None and definition.evidence is not None
            else None
        )
        lines.append(
            ScoreLine(
                kpi=item.kpi,
                label=definition.label,
                unit=definition.unit,
                value=value,
                target=round(target, 2),
                attainment=round(reached, 3) if reached is not None else None,
                weight=item.weight,
                evidence=evidence,
            )
        )
    score = round(100 * total / weights, 1) if weights > 0 else None
    return score, lines


def _trend(score: float | None, previous: float | None) -> float | None:
    return round(score - previous, 1) if score is not None and previous is not None else None


def period_days(date_from: date, date_to: date) -> int:
    """Days in [date_from, date_to]."""
    return (date_to - date_from).days + 1


async def person_scorecard(
    session: AsyncSession, actor: Actor, user_id: uuid.UUID, date_from: date, date_to: date
) -> ScorecardView:
    """A visible person's scorecard: score, previous period's score, trend, lines (with links
    to their evidence) and the KPIs of both periods."""
    kpi.check_period(date_from, date_to)
    user = await kpi.visible_person(session, actor, user_id)
    prev_from, prev_to = kpi.previous_period(date_from, date_to)
    now_counts = await kpi.rolled_up_counts(
        session, user.organization_id, [user.id], date_from, date_to
    )
    prev_counts = await kpi.rolled_up_counts(
        session, user.organization_id, [user.id], prev_from, prev_to
    )
    items, _ = await scorecard_items(session, user.organization_id, user.role)
    days = period_days(date_from, date_to)
    current = kpi.kpis_of(now_counts[user.id])
    previous = kpi.kpis_of(prev_counts[user.id])
    base = f"/api/v1/appraisal/people/{user.id}/evidence"
    score, lines = score_lines(items, current, days, base)
    previous_score, _ = score_lines(items, previous, days)
    return ScorecardView(
        user_id=user.id,
        full_name=user.full_name,
        role=user.role.value,
        date_from=date_from,
        date_to=date_to,
        score=score,
        previous_score=previous_score,
        trend=_trend(score, previous_score),
        lines=lines,
        kpis=current,
        previous_kpis=previous,
    )


async def leaderboard(
    session: AsyncSession, actor: Actor, team_id: uuid.UUID, date_from: date, date_to: date
) -> Leaderboard:
    """A team's members by score for the period (best first, unscored last), with the previous
    period's score and the trend. Admins any team, managers the teams they lead."""
    kpi.check_period(date_from, date_to)
    team = await kpi.visible_team(session, actor, team_id)
    members = await kpi.team_members(session, team)
    ids = [m.id for m in members]
    prev_from, prev_to = kpi.previous_period(date_from, date_to)
    now_counts = await kpi.rolled_up_counts(session, team.organization_id, ids, date_from, date_to)
    prev_counts = await kpi.rolled_up_counts(session, team.organization_id, ids, prev_from, prev_to)
    days = period_days(date_from, date_to)
    cards: dict[Role, list[ScorecardItem]] = {}
    rows: list[tuple[float | None, float | None, User]] = []
    for member in members:
        if member.role not in cards:
            cards[member.role], _ = await scorecard_items(
                session, team.organization_id, member.role
            )
        items = cards[member.role]
        score, _ = score_lines(items, kpi.kpis_of(now_counts[member.id]), days)
        previous, _ = score_lines(items, kpi.kpis_of(prev_counts[member.id]), days)
        rows.append((score, previous, member))
    rows.sort(key=lambda r: (r[0] is None, -(r[0] or 0.0), r[2].full_name))
    return Leaderboard(
        team_id=team.id,
        team_name=team.name,
        date_from=date_from,
        date_to=date_to,
        rows=[
            LeaderboardRow(
                rank=rank,
                user_id=member.id,
                full_name=member.full_name,
                role=member.role.value,
                score=score,
                previous_score=previous,
                trend=_trend(score, previous),
            )
            for rank, (score, previous, member) in enumerate(rows, start=1)
        ],
    )


async def visible_teams(session: AsyncSession, actor: Actor) -> list[tuple[uuid.UUID, str]]:
    """Teams whose leaderboard the actor may see (admins all, managers those they lead)."""
    if actor.role is Role.FIELD:
        return []
    stmt = select(Team.id, Team.name).where(Team.organization_id == actor.organization_id)
    if actor.role is Role.MANAGER:
        stmt = stmt.where(Team.lead_id == actor.user_id)
    return [(r[0], r[1]) for r in (await session.execute(stmt.order_by(Team.name))).all()]
