"""Field KPIs per person and team over a period, read from the daily roll-ups.

A period is [date_from, date_to] of each worker's local calendar days (their IANA zone), both
ends included. The definitions of the counts are in ``backend.appraisal.field_rollups``; this
module turns summed counts into KPIs (``kpis_of``) and answers who may see whose.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from datetime import date, timedelta
from decimal import Decimal

from sqlalchemy import select, text
from sqlalchemy.ext.asyncio import AsyncSession

from backend.accounts.models import Role, Team, TeamMember, User
from backend.appraisal.field_rollups import COUNT_COLUMNS, FieldCounts, counts_of
from backend.appraisal.kpi_schemas import Kpis, PersonKpis, TeamAppraisal
from backend.lib.errors import Forbidden, InvalidInput, NotFound
from backend.lib.tenancy import Actor

MAX_PERIOD_DAYS = 366


def check_period(date_from: date, date_to: date) -> None:
    """Refuse (422) a period that ends before it starts or is longer than a year."""
    if date_to < date_from:
        raise InvalidInput.on("to", "must not be before from")
    if (date_to - date_from).days + 1 > MAX_PERIOD_DAYS:
        raise InvalidInput.on("to", f"a period is at most {MAX_PERIOD_DAYS} days")


def previous_period(date_from: date, date_to: date) -> tuple[date, date]:
    """The period of the same length just before [date_from, date_to]."""
    length = (date_to - date_from).days + 1
    return date_from - timedelta(days=length), date_from - timedelta(days=1)


def _rate(part: int, whole: int) -> float | None:
    return round(100.0 * part / whole, 1) if whole else None


def kpis_of(c: FieldCounts) -> Kpis:
    """KPIs from summed counts."""
    shift = c.on_site_s + c.driving_s + c.idle_s
    return Kpis(
        visits_done=c.visits_done,
        on_time_rate=_rate(c.arrivals_on_time, c.arrivals_judged),
        arrivals_judged=c.arrivals_judged,
        arrivals_on_time=c.arrivals_on_time,
        sla_met_rate=_rate(c.sla_met, c.sla_judged),
        sla_judged=c.sla_judged,
        sla_met=c.sla_met,
        verified_share=_rate(c.check_ins_verified, c.check_ins),
        check_ins=c.check_ins,
        check_ins_verified=c.check_ins_verified,
        on_site_share=_rate(c.on_site_s, shift),
        driving_share=_rate(c.driving_s, shift),
        idle_share=_rate(c.idle_s, shift),
        on_site_s=c.on_site_s,
        driving_s=c.driving_s,
        idle_s=c.idle_s,
        distance_km=round(c.distance_m / 1000.0, 1),
        rating_avg=round(c.rating_sum / c.rating_count, 2) if c.rating_count else None,
        rating_count=c.rating_count,
        revenue_won=c.revenue_won,
        tasks_overdue=c.tasks_overdue,
    )


async def rolled_up_counts(
    session: AsyncSession,
    organization_id: uuid.UUID,
    user_ids: Iterable[uuid.UUID],
    date_from: date,
    date_to: date,
) -> dict[uuid.UUID, FieldCounts]:
    """Per-person counts of the period from ``field_daily`` and ``field_deal_credits`` (every
    asked person is in the answer, with zeros when they did nothing)."""
    users = list(user_ids)
    out = {u: FieldCounts() for u in users}
    if not users:
        return out
    params = {"org": organization_id, "users": users, "d0": date_from, "d1": date_to}
    sums = ", ".join(f"sum({c}) AS {c}" for c in (*COUNT_COLUMNS, "distance_m"))
    rows = await session.execute(
        text(
            f"SELECT user_id, {sums} FROM field_daily WHERE organization_id = :org"
            " AND user_id = ANY(CAST(:users AS uuid[])) AND day BETWEEN :d0 AND :d1"
            " GROUP BY user_id"
        ),
        params,
    )
    for row in rows:
        out[row.user_id] = counts_of(row)
    credits = await session.execute(
        text(
            "SELECT user_id, sum(amount) FROM field_deal_credits WHERE organization_id = :org"
            " AND user_id = ANY(CAST(:users AS uuid[])) AND day BETWEEN :d0 AND :d1"
            " GROUP BY user_id"
        ),
        params,
    )
    for user_id, amount in credits:
        out[user_id].revenue_won = Decimal(amount)
    return out


async def group_revenue(
    session: AsyncSession,
    organization_id: uuid.UUID,
    user_ids: list[uuid.UUID],
    date_from: date,
    date_to: date,
) -> Decimal:
    """Revenue of the distinct won deals credited to any of ``user_ids`` in the period."""
    if not user_ids:
        return Decimal(0)
    total = await session.scalar(
        text(
            "SELECT coalesce(sum(amount), 0) FROM (SELECT DISTINCT ON (deal_id) deal_id, amount"
            " FROM field_deal_credits WHERE organization_id = :org"
            " AND user_id = ANY(CAST(:users AS uuid[])) AND day BETWEEN :d0 AND :d1) x"
        ),
        {"org": organization_id, "users": user_ids, "d0": date_from, "d1": date_to},
    )
    return Decimal(total or 0)


def total_of(counts: Iterable[FieldCounts], revenue: Decimal) -> FieldCounts:
    """The sum of several people's counts, with the group's (distinct) revenue."""
    total = FieldCounts()
    for c in counts:
        total.add(c)
    total.revenue_won = revenue
    return total


async def visible_team(session: AsyncSession, actor: Actor, team_id: uuid.UUID) -> Team:
    """A team whose appraisal the actor may see: admins any of their organisation, managers
    the teams they lead (404 otherwise); field staff see only their own scorecard (403)."""
    if actor.role is Role.FIELD:
        raise Forbidden("Field staff see their own scorecard only")
    stmt = select(Team).where(Team.id == team_id, Team.organization_id == actor.organization_id)
    if actor.role is Role.MANAGER:
        stmt = stmt.where(Team.lead_id == actor.user_id)
    team = await session.scalar(stmt)
    if team is None:
        raise NotFound("Team not found")
    return team


async def team_members(session: AsyncSession, team: Team) -> list[User]:
    """The team's members (not its lead, unless a member), by name."""
    return list(
        (
            await session.scalars(
                select(User)
                .join(TeamMember, TeamMember.user_id == User.id)
                .where(TeamMember.team_id == team.id, User.organization_id == team.organization_id)
                .order_by(User.full_name, User.id)
            )
        ).all()
    )


async def team_appraisal(
    session: AsyncSession,
    actor_or_org: Actor | uuid.UUID,
    team_id: uuid.UUID,
    date_from: date,
    date_to: date,
) -> TeamAppraisal:
    """The field KPIs of a team's members and the team's totals for [date_from, date_to]
    (local days, both included), from the daily roll-ups — a few indexed reads, whatever the
    number of pings or tasks.

    ``actor_or_org`` is the caller (visibility: admins any team, managers the teams they lead;
    404/403 otherwise) or, for trusted internal callers such as report generators, the
    organisation's id (no visibility check beyond the organisation). Team totals sum the
    members' counts (rates from the summed counts); their revenue counts each won deal once.
    """
    check_period(date_from, date_to)
    if isinstance(actor_or_org, Actor):
        team = await visible_team(session, actor_or_org, team_id)
    else:
        found = await session.scalar(
            select(Team).where(Team.id == team_id, Team.organization_id == actor_or_org)
        )
        if found is None:
            raise NotFound("Team not found")
        team = found
    members = await team_members(session, team)
    ids = [m.id for m in members]
    counts = await rolled_up_counts(session, team.organization_id, ids, date_from, date_to)
    revenue = await group_revenue(session, team.organization_id, ids, date_from, date_to)
    return TeamAppraisal(
        team_id=team.id,
        team_name=team.name,
        date_from=date_from,
        date_to=date_to,
        members=[
            PersonKpis(
                user_id=m.id, full_name=m.full_name, role=m.role.value, kpis=kpis_of(counts[m.id])
            )
            for m in members
        ],
        totals=kpis_of(total_of(counts.values(), revenue)),
    )


async def visible_person(session: AsyncSession, actor: Actor, user_id: uuid.UUID) -> User:
    """A person whose KPIs the actor may see: themselves; a manager their teams' members;
    an admin anyone of the organisation (404 otherwise)."""
    if not actor.may_see_owner(user_id):
        raise NotFound("User not found")
    user = await session.scalar(
        select(User).where(User.id == user_id, User.organization_id == actor.organization_id)
    )
    if user is None:
        raise NotFound("User not found")
    return user


async def person_kpis(
    session: AsyncSession, actor: Actor, user_id: uuid.UUID, date_from: date, date_to: date
) -> PersonKpis:
    """One visible person's KPIs for the period, from the roll-ups."""
    check_period(date_from, date_to)
    user = await visible_person(session, actor, user_id)
    counts = await rolled_up_counts(session, user.organization_id, [user.id], date_from, date_to)
    return PersonKpis(
        user_id=user.id,
        full_name=user.full_name,
        role=user.role.value,
        kpis=kpis_of(counts[user.id]),
    )
