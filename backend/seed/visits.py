"""Today's field work for the demo: visits, deals, weekly shifts and tracking devices.

For each active field worker of an organisation (measurers, installers, salespeople) this makes
three to six visits for *today in the organisation's time zone* -- measurements for measurers,
installations for installers, visits for salespeople -- at real sites of the organisation's
customers. A worker's sites lie in one part of town (drawn near an anchor site, then put in
nearest-neighbour order, so the day is a plausible route) and their arrival windows of 1-2 hours
follow each other between 09:00 and 18:00 local time. Measurements and installations are linked
to a deal of the window pipeline at the matching stage ("Замер", "Монтаж"), owned by the team's
manager; a salesperson's visit to a deal at "Согласование" owned by the salesperson.

Each worker also gets a weekly shift schedule (Mon-Sat 08:00-19:00 in their own zone) and a
registered phone (``demo-<name>-phone``) so the Traccar Client / OsmAnd path works at once;
``scripts/simulate_gps.py`` drives the team through the day over the real API.

Rows are written directly (no automations run, nobody is notified), deterministically from
``seed``; the demo calls it after its people, customers and pipeline exist.
"""

from __future__ import annotations

import random
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from backend.accounts.models import Organization, Role, Skill, Team, TeamMember, User
from backend.customers.models import SITE_LAT, SITE_LON, Contact, Customer, CustomerKind, Site
from backend.sales.models import Deal, DealStageChange, Stage
from backend.seed.pipeline import seed_window_pipeline
from backend.tasks.models import Task, TaskKind, TaskStatus
from backend.tracking.models import Device, ShiftSchedule
from backend.tracking.schedule import dump_weekly_shifts, parse_weekly_shifts
from geo.track import haversine_m

DAY_START = time(9, 0)
DAY_END = time(18, 0)
MIN_VISITS = 3
MAX_VISITS = 6
# The weekly shifts of every field worker, in their own time zone.
FIELD_WEEK: dict[str, Any] = {
    **{day: [["08:00", "19:00"]] for day in ("mon", "tue", "wed", "thu", "fri", "sat")},
    "sun": [],
}
# How many sites near the anchor a worker's day is drawn from.
_NEIGHBOURHOOD = 15
_CENTS = Decimal("0.01")

# Skill -> the kind of visit, in order of preference for people with several skills.
KIND_BY_SKILL: tuple[tuple[Skill, TaskKind], ...] = (
    (Skill.INSTALLER, TaskKind.INSTALLATION),
    (Skill.MEASURER, TaskKind.MEASUREMENT),
    (Skill.SALESPERSON, TaskKind.VISIT),
)
# Task kind -> the stage key (backend.seed.pipeline) of the deal the visit belongs to.
_STAGE_OF = {
    TaskKind.MEASUREMENT: "measurements",
    TaskKind.INSTALLATION: "installation",
    TaskKind.VISIT: "agreement",
}


def device_identifier(email: str) -> str:
    """The demo phone's identifier of a user: ``igor@windows.example`` → ``demo-igor-phone``."""
    return f"demo-{email.split('@', 1)[0].lower()}-phone"


def visit_kind(skills: Sequence[str]) -> TaskKind | None:
    """The kind of visit a field worker with ``skills`` goes on (None: none of the three)."""
    for skill, kind in KIND_BY_SKILL:
        if skill.value in skills:
            return kind
    return None


def day_windows(day: date, time_zone: str, count: int) -> list[tuple[datetime, datetime]]:
    """``count`` arrival windows on ``day`` in ``time_zone``: consecutive, not overlapping,
    starting on the half hour from 09:00, 1-2 hours long (shorter when the day is full), all
    ending by 18:00. Aware datetimes in that zone."""
    if not 1 <= count <= MAX_VISITS:
        raise ValueError(f"count must be 1 to {MAX_VISITS}")
    zone = ZoneInfo(time_zone)
    first = datetime.combine(day, DAY_START, zone)
    span = (DAY_END.hour - DAY_START.hour) * 60 + DAY_END.minute - DAY_START.minute
    slot = span // count
    length = 120 if slot >= 150 else 90 if slot >= 105 else 60
    windows = []
    for i in range(count):
        offset = (i * slot) // 30 * 30
        start = first + timedelta(minutes=offset)
        windows.append((start, start + timedelta(minutes=length)))
    return windows


def short_address(address: str) -> str:
    """The street and house of an address: ``г. Казань, ул. Баумана, д. 12, кв. 34`` →
    ``ул. Баумана, д. 12``."""
    parts = [p.strip() for p in address.split(",") if p.strip()]
    if parts and parts[0].startswith("г. "):
        parts = parts[1:]
    for i, part in enumerate(parts):
        if part.startswith("д. "):
            return ", ".join(parts[: i + 1])
    return ", ".join(parts) or address


def windows_phrase(n: int) -> str:
    """``1 окно``, ``3 окна``, ``5 окон``."""
    if n % 10 == 1 and n % 100 != 11:
        return f"{n} окно"
    if 2 <= n % 10 <= 4 and not 12 <= n % 100 <= 14:
        return f"{n} окна"
    return f"{n} окон"


@dataclass(frozen=True, slots=True)
class _SiteRow:
    site_id: uuid.UUID
    customer_id: uuid.UUID
    customer_name: str
    company: bool
    address: str
    access_notes: str | None
    phone: str | None
    lat: float
    lon: float


@dataclass(frozen=True, slots=True)
class _Work:
    """What one visit is about: the task's title head, its details and the deal's product."""

    head: str
    details: str
    product: str
    windows: int  # how many windows the deal prices (0: none)


def _work(rng: random.Random, kind: TaskKind, company: bool) -> _Work:
    n = rng.randint(2, 6)
    if kind is TaskKind.MEASUREMENT:
        return rng.choice(
            (
                _Work(
                    f"Замер: {windows_phrase(n)}",
                    f"Замер {windows_phrase(n)}, откосы и подоконники.",
                    "Замена окон",
                    0,
                ),
                _Work(
                    "Замер: остекление балкона",
                    "Тёплое остекление балкона, вынос 30 см.",
                    "Остекление балкона",
                    0,
                ),
                _Work(
                    f"Замер: балконный блок и {windows_phrase(n - 1)}",
                    "Панельный дом, замер балконного блока и окон.",
                    "Замена окон",
                    0,
                ),
            )
        )
    if kind is TaskKind.INSTALLATION:
        return rng.choice(
            (
                _Work(
                    f"Монтаж: {windows_phrase(n)}",
                    f"Монтаж {windows_phrase(n)}, отделка откосов, вывоз мусора.",
                    "Замена окон",
                    n,
                ),
                _Work(
                    "Монтаж: остекление лоджии",
                    "Остекление лоджии 6 м, тёплый профиль.",
                    "Остекление лоджии",
                    3,
                ),
                _Work(
                    f"Монтаж: {windows_phrase(n)} и подоконники",
                    f"Монтаж {windows_phrase(n)} и подоконников, москитные сетки.",
                    "Замена окон",
                    n,
                ),
            )
        )
    if company:
        return rng.choice(
            (
                _Work(
                    "Встреча: коммерческое предложение",
                    "Показать КП на остекление офиса, обсудить сроки.",
                    "Остекление офиса",
                    2 * n,
                ),
                _Work(
                    "Встреча: подписание договора",
                    "Подписать договор и согласовать график монтажа.",
                    "Замена окон в подъездах",
                    2 * n,
                ),
            )
        )
    return rng.choice(
        (
            _Work(
                "Визит: образцы профиля и фурнитуры",
                "Показать образцы профиля, ламинации и фурнитуры.",
                "Замена окон",
                n,
            ),
            _Work(
                "Визит: согласование расчёта",
                "Обсудить расчёт и варианты стеклопакетов.",
                "Замена окон",
                n,
            ),
        )
    )


def _line_items(rng: random.Random, work: _Work) -> tuple[Decimal | None, list[dict[str, Any]]]:
    if not work.windows:
        return None, []
    price = Decimal(rng.randrange(120, 260) * 100)
    install = Decimal(rng.randrange(35, 60) * 100)
    items = [
        ("Окно ПВХ, профиль 70 мм, двухкамерный стеклопакет", Decimal(work.windows), price),
        ("Монтаж и отделка откосов", Decimal(work.windows), install),
    ]
    rows = [
        {
            "name": name,
            "quantity": str(qty),
            "unitPrice": str(unit.quantize(_CENTS)),
            "total": str((qty * unit).quantize(_CENTS)),
        }
        for name, qty, unit in items
    ]
    return sum((q * u for _, q, u in items), Decimal(0)).quantize(_CENTS), rows


@dataclass(slots=True)
class FieldDay:
    """What ``seed_field_day`` wrote."""

    day: date
    visits: int = 0
    deals: int = 0
    schedules: int = 0
    devices: int = 0

    def summary(self) -> str:
        """One line for the seed's report."""
        return (
            f"{self.visits} visits on {self.day.isoformat()} ({self.deals} deals),"
            f" {self.schedules} shift schedules, {self.devices} tracking devices"
        )


async def _sites(session: AsyncSession, organization_id: uuid.UUID) -> list[_SiteRow]:
    phone = (
        select(Contact.phone)
        .where(Contact.customer_id == Customer.id, Contact.phone.is_not(None))
        .order_by(Contact.created_at, Contact.id)
        .limit(1)
        .scalar_subquery()
    )
    rows = await session.execute(
        select(
            Site.id,
            Customer.id,
            Customer.name,
            Customer.kind == CustomerKind.COMPANY,
            Site.address,
            Site.access_notes,
            phone,
            SITE_LAT,
            SITE_LON,
        )
        .join(Customer, Customer.id == Site.customer_id)
        .where(Site.organization_id == organization_id)
        .order_by(Site.address, Customer.name, Site.id)
    )
    return [_SiteRow(*row) for row in rows.all()]


async def _field_workers(
    session: AsyncSession, organization_id: uuid.UUID
) -> list[tuple[User, TaskKind, uuid.UUID | None]]:
    """(user, visit kind, team lead) of each active field worker, by email."""
    users = (
        await session.scalars(
            select(User)
            .where(
                User.organization_id == organization_id,
                User.role == Role.FIELD,
                User.is_active,
            )
            .order_by(User.email)
        )
    ).all()
    memberships = await session.execute(
        select(TeamMember.user_id, Team.lead_id)
        .join(Team, Team.id == TeamMember.team_id)
        .where(Team.organization_id == organization_id)
        .order_by(Team.name)
    )
    leads = {member: lead for member, lead in memberships.all()}
    out = []
    for user in users:
        kind = visit_kind(user.skills)
        if kind is not None:
            out.append((user, kind, leads.get(user.id)))
    return out


def _pick_sites(
    rng: random.Random, sites: list[_SiteRow], used: set[uuid.UUID], count: int, companies: bool
) -> list[_SiteRow]:
    """``count`` sites close to each other, in nearest-neighbour order; unused ones first and,
    for ``companies``, companies' sites when there are enough."""
    free = [s for s in sites if s.site_id not in used] or sites
    if companies:
        offices = [s for s in free if s.company]
        if len(offices) >= count:
            free = offices
    anchor = rng.choice(free)
    near = sorted(free, key=lambda s: haversine_m(anchor.lat, anchor.lon, s.lat, s.lon))
    chosen = rng.sample(near[: max(_NEIGHBOURHOOD, count)], min(count, len(near)))
    route = [min(chosen, key=lambda s: haversine_m(anchor.lat, anchor.lon, s.lat, s.lon))]
    rest = [s for s in chosen if s is not route[0]]
    while rest:
        last = route[-1]
        step = min(rest, key=lambda s: haversine_m(last.lat, last.lon, s.lat, s.lon))
        route.append(step)
        rest.remove(step)
    return route


def _deal(
    rng: random.Random,
    org: Organization,
    stage: Stage,
    site: _SiteRow,
    work: _Work,
    owner_id: uuid.UUID | None,
    window: tuple[datetime, datetime] | None,
    now: datetime,
) -> tuple[Deal, DealStageChange]:
    """A deal in ``stage`` for the visit; ``window`` is its scheduled time (measurements)."""
    amount, items = _line_items(rng, work)
    entered = now - timedelta(days=rng.randint(1, 12), minutes=rng.randrange(0, 600))
    deal = Deal(
        id=uuid.uuid4(),
        organization_id=org.id,
        pipeline_id=stage.pipeline_id,
        stage_id=stage.id,
        customer_id=site.customer_id,
        site_id=site.site_id,
        title=f"{work.product}: {short_address(site.address)}",
        amount=amount,
        currency=org.currency,
        line_items=items,
        source=rng.choice(("сайт", "рекомендация", "звонок", "Авито")),
        attribution={},
        owner_id=owner_id,
        scheduled_start=window[0] if window else None,
        scheduled_end=window[1] if window else None,
        stage_entered_at=entered,
        version=1,
    )
    change = DealStageChange(
        id=uuid.uuid4(),
        organization_id=org.id,
        deal_id=deal.id,
        from_stage_id=None,
        to_stage_id=stage.id,
        actor_id=owner_id,
        changed_at=entered,
    )
    return deal, change


async def seed_field_day(
    session: AsyncSession, organization: Organization, *, now: datetime, seed: int = 2026
) -> FieldDay:
    """Write today's visits (with their deals), weekly shifts and tracking devices for the
    organisation's field workers (see the module docstring); return what was written."""
    if now.tzinfo is None:
        raise ValueError("now must be timezone-aware")
    rng = random.Random(seed)
    today = now.astimezone(ZoneInfo(organization.time_zone)).date()
    result = FieldDay(today)
    pipeline = await seed_window_pipeline(session, organization)
    sites = await _sites(session, organization.id)
    workers = await _field_workers(session, organization.id)
    week = dump_weekly_shifts(parse_weekly_shifts(FIELD_WEEK))
    used: set[uuid.UUID] = set()
    deals: list[Deal] = []
    dependents: list[DealStageChange | Task | Device] = []
    for user, kind, lead_id in workers:
        await session.execute(
            insert(ShiftSchedule)
            .values(user_id=user.id, organization_id=organization.id, schedule=week, updated_at=now)
            .on_conflict_do_update(
                index_elements=[ShiftSchedule.user_id],
                set_={"schedule": week, "updated_at": now},
            )
        )
        result.schedules += 1
        identifier = device_identifier(user.email)
        taken = await session.scalar(select(Device.id).where(Device.identifier == identifier))
        if taken is None:
            dependents.append(
                Device(
                    id=uuid.uuid4(),
                    organization_id=organization.id,
                    user_id=user.id,
                    identifier=identifier,
                    name=f"Телефон: {user.full_name}",
                    is_active=True,
                )
            )
            result.devices += 1
        if not sites:
            continue
        count = rng.randint(MIN_VISITS, MAX_VISITS)
        route = _pick_sites(rng, sites, used, count, companies=kind is TaskKind.VISIT)
        used.update(s.site_id for s in route)
        stage = pipeline.stages[_STAGE_OF[kind]]
        deal_owner = user.id if kind is TaskKind.VISIT else lead_id
        for site, window in zip(
            route, day_windows(today, organization.time_zone, len(route)), strict=True
        ):
            work = _work(rng, kind, site.company)
            scheduled = window if kind is TaskKind.MEASUREMENT else None
            deal, change = _deal(rng, organization, stage, site, work, deal_owner, scheduled, now)
            deals.append(deal)
            details = [f"Адрес: {site.address}.", work.details]
            details.append(
                f"Клиент: {site.customer_name}" + (f", {site.phone}." if site.phone else ".")
            )
            if site.access_notes:
                details.append(site.access_notes)
            dependents += [
                change,
                Task(
                    id=uuid.uuid4(),
                    organization_id=organization.id,
                    kind=kind,
                    title=f"{work.head}, {short_address(site.address)}",
                    description=" ".join(details),
                    status=TaskStatus.OPEN,
                    assignee_id=user.id,
                    created_by_id=lead_id or user.id,
                    deal_id=deal.id,
                    customer_id=site.customer_id,
                    site_id=site.site_id,
                    due_at=window[1],
                    window_start=window[0],
                    window_end=window[1],
                    priority=50 if kind is TaskKind.INSTALLATION else 0,
                ),
            ]
            result.visits += 1
    # Deals first: without relationships the ORM does not order INSERTs by foreign keys.
    session.add_all(deals)
    await session.flush()
    session.add_all(dependents)
    await session.flush()
    result.deals = len(deals)
    return result
