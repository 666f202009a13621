"""The reports' filters: parsed and checked at the boundary, then resolved against the caller's
role into the set of people whose numbers may be counted.

Query parameters (all optional, as text so every refusal is a 422 naming the field):
``from`` / ``to`` (local dates, inclusive; default the 30 days up to today in the
organisation's time zone), ``team``, ``person``, ``pipeline`` (ids), ``source`` (exact),
``interval`` (day|week|month for series; default by the period's length).

Scope: admins see everyone; managers themselves and the members of the teams they lead (another
team or person is 403); field staff only themselves (a team or another person is 403).
People are attributed as follows: deals to their owner, calls to their author, tasks to their
assignee.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from backend.accounts.models import Organization, Role, Team, TeamMember, User
from backend.lib.errors import Forbidden, InvalidInput
from backend.lib.tenancy import Actor
from backend.sales.models import Pipeline

DEFAULT_DAYS = 30
MAX_DAYS = 732
INTERVALS = ("day", "week", "month")
FORMATS = ("json", "csv", "xlsx")


@dataclass(frozen=True, slots=True)
class RawFilters:
    """The query parameters as received."""

    start: str | None = None
    end: str | None = None
    team: str | None = None
    person: str | None = None
    pipeline: str | None = None
    source: str | None = None
    interval: str | None = None


@dataclass(frozen=True, slots=True)
class ReportQuery:
    """Everything a report needs: the organisation, both periods and the resolved filters.

    ``people`` is None for "everyone in the organisation". ``raw`` computes every day from the
    raw rows instead of the roll-ups (the on-the-fly baseline of tests and benchmarks)."""

    organization_id: uuid.UUID
    time_zone: str
    currency: str
    start: date
    end: date
    previous_start: date
    previous_end: date
    people: frozenset[uuid.UUID] | None
    pipeline_id: uuid.UUID | None
    source: str | None
    interval: str
    now: datetime
    raw: bool = False

    @property
    def today(self) -> date:
        """Today in the organisation's time zone."""
        return self.now.astimezone(ZoneInfo(self.time_zone)).date()

    @property
    def days(self) -> int:
        """Length of the period in days."""
        return (self.end - self.start).days + 1


def _date(value: str, field: str) -> date:
    try:
        return date.fromisoformat(value.strip())
    except ValueError:
        raise InvalidInput.on(field, "a date like 2026-11-01") from None


def _uuid(value: str | None, field: str) -> uuid.UUID | None:
    if value is None or not value.strip():
        return None
    try:
        return uuid.UUID(value.strip())
    except ValueError:
        raise InvalidInput.on(field, "an id (UUID)") from None


def parse_period(raw: RawFilters, today: date) -> tuple[date, date]:
    """The inclusive period; 422 on a bad date, a reversed or an over-long period."""
    end = _date(raw.end, "to") if raw.end else None
    start = _date(raw.start, "from") if raw.start else None
    if end is None:
        end = max(today, start) if start is not None else today
    if start is None:
        start = end - timedelta(days=DEFAULT_DAYS - 1)
    if start > end:
        raise InvalidInput.on("from", "must not be after to")
    if (end - start).days + 1 > MAX_DAYS:
        raise InvalidInput.on("to", f"a period of at most {MAX_DAYS} days")
    return start, end


def default_interval(days: int) -> str:
    """Days up to a month and a half, weeks up to half a year, then months."""
    if days <= 45:
        return "day"
    if days <= 190:
        return "week"
    return "month"


def parse_format(value: str | None) -> str:
    """json (default), csv or xlsx; 422 otherwise."""
    fmt = (value or "json").strip().lower()
    if fmt not in FORMATS:
        raise InvalidInput.on("format", "one of json, csv, xlsx")
    return fmt


async def _team_people(
    session: AsyncSession, actor: Actor, team_id: uuid.UUID
) -> frozenset[uuid.UUID]:
    team = await session.scalar(
        select(Team).where(Team.id == team_id, Team.organization_id == actor.organization_id)
    )
    if team is None:
        raise InvalidInput.on("team", "no such team")
    if actor.role is Role.FIELD:
        raise Forbidden("Field staff see only their own numbers")
    if actor.role is Role.MANAGER and team.lead_id != actor.user_id:
        raise Forbidden("You may see the numbers of the teams you lead only")
    members = (
        await session.scalars(select(TeamMember.user_id).where(TeamMember.team_id == team.id))
    ).all()
    lead = {team.lead_id} if team.lead_id is not None else set()
    return frozenset(members) | lead


async def _check_person(session: AsyncSession, actor: Actor, person_id: uuid.UUID) -> None:
    found = await session.scalar(
        select(User.id).where(User.id == person_id, User.organization_id == actor.organization_id)
    )
    if found is None:
        raise InvalidInput.on("person", "no such person")
    if not actor.may_see_owner(person_id):
        raise Forbidden("You may see the numbers of yourself and your teams only")


async def resolve(
    session: AsyncSession, actor: Actor, raw: RawFilters, now: datetime, *, raw_mode: bool = False
) -> ReportQuery:
    """Check the filters against the organisation and the caller's role."""
    org = await session.get(Organization, actor.organization_id)
    assert org is not None
    today = now.astimezone(ZoneInfo(org.time_zone)).date()
    start, end = parse_period(raw, today)
    interval = (raw.interval or "").strip().lower() or default_interval((end - start).days + 1)
    if interval not in INTERVALS:
        raise InvalidInput.on("interval", "one of day, week, month")
    team_id = _uuid(raw.team, "team")
    person_id = _uuid(raw.person, "person")
    pipeline_id = _uuid(raw.pipeline, "pipeline")
    source = raw.source.strip() if raw.source and raw.source.strip() else None
    if source is not None and len(source) > 100:
        raise InvalidInput.on("source", "at most 100 characters")
    people = actor.visible_owner_ids()
    if team_id is not None:
        team_people = await _team_people(session, actor, team_id)
        people = team_people if people is None else people & team_people
    if person_id is not None:
        await _check_person(session, actor, person_id)
        people = frozenset({person_id}) if people is None else people & {person_id}
    if pipeline_id is not None:
        found = await session.scalar(
            select(Pipeline.id).where(
                Pipeline.id == pipeline_id, Pipeline.organization_id == actor.organization_id
            )
        )
        if found is None:
            raise InvalidInput.on("pipeline", "no such pipeline")
    length = end - start + timedelta(days=1)
    return ReportQuery(
        organization_id=org.id,
        time_zone=org.time_zone,
        currency=org.currency,
        start=start,
        end=end,
        previous_start=start - length,
        previous_end=start - timedelta(days=1),
        people=people,
        pipeline_id=pipeline_id,
        source=source,
        interval=interval,
        now=now,
        raw=raw_mode,
    )
