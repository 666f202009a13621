"""Field KPIs from the daily roll-ups: a hand-computed month for every KPI, period boundaries
in the worker's zone (Moscow, and Berlin across the October DST change), incremental upkeep by
the queue, team totals and the team appraisal's visibility."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import text, update
from sqlalchemy.ext.asyncio import AsyncSession

from backend.accounts.models import Organization, Role, User
from backend.appraisal import field_rollups
from backend.appraisal.kpis import team_appraisal
from backend.customers.models import Customer, CustomerKind
from backend.lib.errors import Forbidden, InvalidInput, NotFound
from backend.lib.tenancy import Actor
from backend.routing.models import EtaChange, RoutePlan
from backend.sales.models import Deal, Pipeline, Stage, StageKind
from backend.tasks.models import Task, TaskKind, TaskStatus
from backend.tracking.models import CheckIn, CheckKind, CheckStatus, DailySummary
from tests.conftest import START, Factory, World

NOV = (date(2026, 11, 1), date(2026, 11, 30))


@dataclass
class Builder:
    """Rows for KPI tests, written straight into the test transaction."""

    session: AsyncSession
    org: Organization

    def at(self, day: date, hour: int, minute: int = 0) -> datetime:
        """A wall-clock time in the organisation's zone, as an aware instant."""
        zone = ZoneInfo(self.org.time_zone)
        return datetime(day.year, day.month, day.day, hour, minute, tzinfo=zone).astimezone(UTC)

    async def task(
        self,
        user: User | None,
        kind: TaskKind = TaskKind.VISIT,
        *,
        status: TaskStatus = TaskStatus.DONE,
        completed: datetime | None = None,
        due: datetime | None = None,
        window: tuple[datetime, datetime] | None = None,
        deal: Deal | None = None,
        title: str = "task",
    ) -> Task:
        task = Task(
            id=uuid.uuid4(),
            organization_id=self.org.id,
            kind=kind,
            title=title,
            status=status,
            assignee_id=user.id if user else None,
            due_at=due,
            window_start=window[0] if window else None,
            window_end=window[1] if window else None,
            completed_at=completed,
            started_at=completed - timedelta(hours=1) if completed else None,
            deal_id=deal.id if deal else None,
            customer_id=deal.customer_id if deal else None,
            priority=0,
        )
        self.session.add(task)
        await self.session.flush()
        return task

    async def check_in(
        self, task: Task, user: User, at: datetime, status: CheckStatus = CheckStatus.VERIFIED
    ) -> CheckIn:
        row = CheckIn(
            id=uuid.uuid4(),
            organization_id=self.org.id,
            task_id=task.id,
            user_id=user.id,
            kind=CheckKind.IN,
            at=at,
            status=status,
            flags=[],
        )
        self.session.add(row)
        await self.session.flush()
        return row

    async def summary(
        self, user: User, day: date, on_site: int, driving: int, idle: int, distance: float
    ) -> None:
        self.session.add(
            DailySummary(
                user_id=user.id,
                day=day,
                organization_id=self.org.id,
                points=100,
                distance_m=distance,
                on_site_s=on_site,
                driving_s=driving,
                idle_s=idle,
                stops=3,
                computed_at=START,
            )
        )
        await self.session.flush()

    async def plan_eta(self, user: User, day: date, task: Task, eta: datetime) -> None:
        self.session.add(
            RoutePlan(
                user_id=user.id,
                day=day,
                organization_id=self.org.id,
                signature="x",
                task_ids=[task.id],
                legs={},
                etas={str(task.id): eta.isoformat()},
                optimised=True,
                solved_at=START,
            )
        )
        await self.session.flush()

    async def eta_change(self, user: User, task: Task, previous: datetime, new: datetime) -> None:
        self.session.add(
            EtaChange(
                id=uuid.uuid4(),
                organization_id=self.org.id,
                task_id=task.id,
                user_id=user.id,
                previous_eta=previous,
                new_eta=new,
                delta_s=int((new - previous).total_seconds()),
                changed_at=previous - timedelta(hours=1),
            )
        )
        await self.session.flush()

    async def stages(self) -> dict[StageKind, Stage]:
        pipeline = Pipeline(id=uuid.uuid4(), organization_id=self.org.id, name=f"P {uuid.uuid4()}")
        self.session.add(pipeline)
        await self.session.flush()
        out = {}
        for position, kind in enumerate(StageKind):
            stage = Stage(
                id=uuid.uuid4(),
                organization_id=self.org.id,
                pipeline_id=pipeline.id,
                name=kind.value,
                position=position,
                kind=kind,
                requirements=[],
            )
            self.session.add(stage)
            out[kind] = stage
        await self.session.flush()
        return out

    async def customer(self, name: str = "Customer") -> Customer:
        customer = Customer(
            id=uuid.uuid4(), organization_id=self.org.id, kind=CustomerKind.PERSON, name=name
        )
        self.session.add(customer)
        await self.session.flush()
        return customer

    async def deal(
        self,
        stage: Stage,
        owner: User | None,
        amount: str,
        closed: datetime | None,
        customer: Customer | None = None,
    ) -> Deal:
        customer = customer or await self.customer()
        deal = Deal(
            id=uuid.uuid4(),
            organization_id=self.org.id,
            pipeline_id=stage.pipeline_id,
            stage_id=stage.id,
            customer_id=customer.id,
            title="Windows",
            amount=Decimal(amount),
            currency="RUB",
            owner_id=owner.id if owner else None,
            stage_entered_at=closed or START,
            closed_at=closed,
        )
        self.session.add(deal)
        await self.session.flush()
        return deal


def actor_of(user: User, org: Organization, team_members: frozenset[uuid.UUID]) -> Actor:
    """An Actor as the guard would load it."""
    return Actor(
        user_id=user.id,
        organization_id=org.id,
        role=user.role,
        skills=frozenset(user.skills),
        time_zone=user.time_zone,
        org_time_zone=org.time_zone,
        phone_region="RU",
        team_member_ids=team_members,
    )


async def refresh(session: AsyncSession, now: datetime = START) -> None:
    await field_rollups.refresh(session, now)
    await session.flush()


async def measurer_month(b: Builder, w: World) -> dict[str, Task]:
    """November for Max (measurer, team A), hand-counted in the test below."""
    m = w.measurer_a
    d = date(2026, 11, 10)
    v1 = await b.task(
        m,
        TaskKind.MEASUREMENT,
        window=(b.at(d, 10), b.at(d, 12)),
        due=b.at(d, 18),
        completed=b.at(d, 11, 30),
        title="V1 on time, SLA met",
    )
    await b.check_in(v1, m, b.at(d, 10, 30))
    d = date(2026, 11, 11)
    v2 = await b.task(
        m,
        TaskKind.INSTALLATION,
        window=(b.at(d, 10), b.at(d, 12)),
        due=b.at(d, 18),
        completed=b.at(d, 19),
        title="V2 late, SLA missed",
    )
    await b.check_in(v2, m, b.at(d, 12, 30), CheckStatus.UNVERIFIED)
    d = date(2026, 11, 12)
    v3 = await b.task(m, completed=b.at(d, 15), title="V3 ETA 14:00, arrived 14:10")
    await b.plan_eta(m, d, v3, b.at(d, 14))
    await b.check_in(v3, m, b.at(d, 14, 10))
    d = date(2026, 11, 13)
    v4 = await b.task(m, completed=b.at(d, 10, 30), title="V4 first ETA 09:00, arrived 09:30")
    await b.plan_eta(m, d, v4, b.at(d, 10))
    await b.eta_change(m, v4, b.at(d, 9), b.at(d, 10))
    await b.check_in(v4, m, b.at(d, 9, 30))
    await b.check_in(v4, m, b.at(d, 9, 40), CheckStatus.SUSPICIOUS)
    d = date(2026, 11, 14)
    v5 = await b.task(m, completed=b.at(d, 11), title="V5 no window, no plan")
    await b.check_in(v5, m, b.at(d, 10))
    await b.task(m, TaskKind.CALL, status=TaskStatus.OPEN, due=b.at(date(2026, 11, 20), 10))
    await b.task(m, TaskKind.CALL, status=TaskStatus.OPEN, due=b.at(date(2026, 11, 25), 10))
    await b.task(m, TaskKind.CALL, status=TaskStatus.CANCELLED, due=b.at(date(2026, 11, 15), 10))
    d = date(2026, 11, 16)
    await b.task(m, TaskKind.CALL, due=b.at(d, 18), completed=b.at(d, 12))
    # period boundaries in Moscow time (UTC+3)
    await b.task(m, completed=b.at(date(2026, 10, 31), 23, 30), title="October 31")
    await b.task(m, completed=b.at(date(2026, 11, 30), 23, 30), title="November 30")
    await b.task(m, completed=b.at(date(2026, 12, 1), 0, 10), title="December 1")
    await b.summary(m, date(2026, 11, 10), 3600, 1200, 600, 12000.0)
    await b.summary(m, date(2026, 11, 11), 1800, 1800, 0, 8500.0)
    await b.summary(m, date(2026, 10, 31), 9999, 9999, 9999, 99999.0)
    return {"v1": v1, "v2": v2, "v3": v3, "v4": v4, "v5": v5}


async def test_every_kpi_of_a_hand_counted_month(session: AsyncSession, factory: Factory) -> None:
    w = await factory.world()
    b = Builder(session, w.org)
    await measurer_month(b, w)
    await refresh(session)

    got = await team_appraisal(session, w.org.id, w.team_a.id, *NOV)
    max_ = next(p for p in got.members if p.user_id == w.measurer_a.id).kpis
    # V1-V5 and "November 30" (23:30 Moscow is 20:30 UTC); October 31 and December 1 are out
    assert max_.visits_done == 6
    # first check-ins judged: V1 on time (10:30 <= window end 12:00), V2 late (12:30 > 12:00),
    # V3 on time (14:10 <= ETA 14:00 + 15 min), V4 late (09:30 > first ETA 09:00 + 15 min,
    # although the last published ETA was 10:00); V5 has neither window nor plan
    assert (max_.arrivals_judged, max_.arrivals_on_time, max_.on_time_rate) == (4, 2, 50.0)
    # deadlines: V1 met, V2 missed (19:00 > 18:00), the call of the 16th met
    assert (max_.sla_judged, max_.sla_met, max_.sla_met_rate) == (3, 2, 66.7)
    # six check-ins (V4 twice), V2 unverified and V4's second suspicious
    assert (max_.check_ins, max_.check_ins_verified, max_.verified_share) == (6, 4, 66.7)
    # V2 (done late) and the open call due the 20th; not the call due the 25th (after now),
    # not the cancelled one
    assert max_.tasks_overdue == 2
    assert (max_.on_site_s, max_.driving_s, max_.idle_s) == (5400, 3000, 600)
    assert (max_.on_site_share, max_.driving_share, max_.idle_share) == (60.0, 33.3, 6.7)
    assert max_.distance_km == 20.5
    assert max_.revenue_won == Decimal(0)
    assert max_.rating_count == 0
    assert max_.rating_avg is None

    igor = next(p for p in got.members if p.user_id == w.installer_a.id).kpis
    assert igor.visits_done == 0
    assert igor.on_time_rate is None
    assert igor.sla_met_rate is None
    assert igor.on_site_share is None
    assert igor.tasks_overdue == 0
    assert got.totals.visits_done == 6
    assert got.totals.on_time_rate == 50.0
    assert [p.full_name for p in got.members] == ["Igor Installer", "Max Measurer"]


async def test_revenue_credits_owner_and_workers_and_a_team_counts_a_deal_once(
    session: AsyncSession, factory: Factory
) -> None:
    w = await factory.world()
    b = Builder(session, w.org)
    stages = await b.stages()
    won, lost = stages[StageKind.WON], stages[StageKind.LOST]
    nov15 = b.at(date(2026, 11, 15), 12)
    d1 = await b.deal(won, w.manager_a, "100000.00", nov15)
    d2 = await b.deal(won, w.manager_b, "50000.00", nov15)
    d3 = await b.deal(lost, w.manager_a, "70000.00", nov15)
    d4 = await b.deal(won, w.manager_a, "20000.00", b.at(date(2026, 10, 31), 23, 30))
    d5 = await b.deal(stages[StageKind.OPEN], w.manager_a, "5000.00", None)
    await b.task(w.measurer_a, TaskKind.OTHER, completed=nov15, deal=d1)
    await b.task(w.installer_a, TaskKind.OTHER, completed=nov15, deal=d1)
    await b.task(w.installer_a, TaskKind.OTHER, completed=nov15, deal=d2)
    await b.task(w.measurer_a, TaskKind.OTHER, completed=nov15, deal=d3)
    await b.task(w.measurer_a, TaskKind.OTHER, completed=nov15, deal=d4)
    await b.task(w.measurer_a, TaskKind.OTHER, completed=nov15, deal=d5)
    # an open task on a won deal is no work done on it
    await b.task(w.installer_b, TaskKind.OTHER, status=TaskStatus.OPEN, deal=d1)
    await refresh(session)

    got = await team_appraisal(session, w.org.id, w.team_a.id, *NOV)
    by_id = {p.user_id: p.kpis for p in got.members}
    assert by_id[w.measurer_a.id].revenue_won == Decimal("100000.00")
    assert by_id[w.installer_a.id].revenue_won == Decimal("150000.00")
    assert got.totals.revenue_won == Decimal("150000.00")
    team_b = await team_appraisal(session, w.org.id, w.team_b.id, *NOV)
    assert team_b.totals.revenue_won == Decimal(0)

    # the deal is lost after all: the queue recomputes its credits
    await session.execute(update(Deal).where(Deal.id == d1.id).values(stage_id=lost.id))
    await refresh(session)
    got = await team_appraisal(session, w.org.id, w.team_a.id, *NOV)
    assert got.totals.revenue_won == Decimal("50000.00")


async def test_berlin_days_across_the_october_dst_change(
    session: AsyncSession, factory: Factory
) -> None:
    org = await factory.org("Berlin Fenster", time_zone="Europe/Berlin", currency="EUR")
    lead = await factory.user(org, Role.MANAGER, name="Lena Lead")
    worker = await factory.user(org, Role.FIELD, name="Wim Worker")
    team = await factory.team(org, "Berlin", lead, [worker])
    b = Builder(session, org)
    # 2026-10-25: clocks go back at 03:00 CEST (01:00 UTC); the day is 25 hours long
    sunday = date(2026, 10, 25)
    # 23:30 local on the 25th is 22:30 UTC (CET, +1); 00:30 local on the 25th is 22:30 UTC
    # of the 24th (CEST, +2)
    await b.task(worker, completed=datetime(2026, 10, 25, 22, 30, tzinfo=UTC))
    await b.task(worker, completed=datetime(2026, 10, 24, 22, 30, tzinfo=UTC))
    await b.task(worker, completed=datetime(2026, 10, 24, 21, 59, tzinfo=UTC))
    await b.task(worker, completed=datetime(2026, 10, 25, 23, 0, tzinfo=UTC))
    await refresh(session)
    assert b.at(sunday, 0) == datetime(2026, 10, 24, 22, 0, tzinfo=UTC)

    got = await team_appraisal(session, org.id, team.id, sunday, sunday)
    assert got.totals.visits_done == 2  # early, late
    got = await team_appraisal(session, org.id, team.id, date(2026, 10, 24), date(2026, 10, 24))
    assert got.totals.visits_done == 1  # before
    got = await team_appraisal(session, org.id, team.id, date(2026, 10, 26), date(2026, 10, 26))
    assert got.totals.visits_done == 1  # after (00:00 local on the 26th)
    rows = (
        await session.execute(
            text("SELECT day, visits_done FROM field_daily WHERE user_id = :u ORDER BY day"),
            {"u": worker.id},
        )
    ).all()
    assert [(r.day, r.visits_done) for r in rows] == [
        (date(2026, 10, 24), 1),
        (sunday, 2),
        (date(2026, 10, 26), 1),
    ]


async def test_queue_keeps_roll_ups_current_and_time_makes_tasks_overdue(
    session: AsyncSession, factory: Factory
) -> None:
    w = await factory.world()
    b = Builder(session, w.org)
    m = w.measurer_a
    d = date(2026, 11, 24)
    task = await b.task(m, TaskKind.CALL, status=TaskStatus.OPEN, due=b.at(d, 14))
    await refresh(session)
    day = (d, d)
    kpis = (await team_appraisal(session, w.org.id, w.team_a.id, *day)).totals
    assert kpis.tasks_overdue == 0  # due 14:00 Moscow, now is 12:00 Moscow

    # two hours later nothing changed in the row, but the task is overdue now
    later = START + timedelta(hours=2, minutes=1)
    await refresh(session, later)
    kpis = (await team_appraisal(session, w.org.id, w.team_a.id, *day)).totals
    assert kpis.tasks_overdue == 1

    # done late: still overdue, and judged for the SLA as missed
    await session.execute(
        update(Task).where(Task.id == task.id).values(status=TaskStatus.DONE, completed_at=later)
    )
    await refresh(session, later)
    kpis = (await team_appraisal(session, w.org.id, w.team_a.id, *day)).totals
    assert (kpis.tasks_overdue, kpis.sla_judged, kpis.sla_met) == (1, 1, 0)

    # reassigned to Igor: Max's day is recomputed to nothing, Igor's has it
    await session.execute(
        update(Task).where(Task.id == task.id).values(assignee_id=w.installer_a.id)
    )
    await refresh(session, later)
    got = await team_appraisal(session, w.org.id, w.team_a.id, *day)
    by_id = {p.user_id: p.kpis for p in got.members}
    assert by_id[m.id].sla_judged == 0
    assert by_id[w.installer_a.id].sla_judged == 1
    left = await session.scalar(text("SELECT count(*) FROM field_rollup_queue"))
    assert left == 0


async def test_team_appraisal_visibility_and_period_checks(
    session: AsyncSession, factory: Factory
) -> None:
    w = await factory.world()
    admin = actor_of(w.admin, w.org, frozenset())
    lead_a = actor_of(w.manager_a, w.org, frozenset({w.measurer_a.id, w.installer_a.id}))
    lead_b = actor_of(w.manager_b, w.org, frozenset({w.installer_b.id}))
    field = actor_of(w.measurer_a, w.org, frozenset())
    assert (await team_appraisal(session, admin, w.team_a.id, *NOV)).team_name == "Team A"
    assert (await team_appraisal(session, lead_a, w.team_a.id, *NOV)).team_name == "Team A"
    with pytest.raises(NotFound):
        await team_appraisal(session, lead_b, w.team_a.id, *NOV)
    with pytest.raises(Forbidden):
        await team_appraisal(session, field, w.team_a.id, *NOV)
    other = await factory.world("Other Org")
    with pytest.raises(NotFound):
        await team_appraisal(session, admin, other.team_a.id, *NOV)
    with pytest.raises(NotFound):
        await team_appraisal(session, w.org.id, other.team_a.id, *NOV)
    with pytest.raises(InvalidInput):
        await team_appraisal(session, admin, w.team_a.id, NOV[1], NOV[0])
    with pytest.raises(InvalidInput):
        await team_appraisal(session, admin, w.team_a.id, date(2025, 1, 1), date(2026, 1, 2))


async def rate(session: AsyncSession, task: Task, rating: int, at: datetime) -> None:
    """A customer's rating of a visit (the customer notifications' table)."""
    await session.execute(
        text(
            "INSERT INTO visit_feedback (id, organization_id, task_id, rating, submitted_at)"
            " VALUES (gen_random_uuid(), :org, :task, :rating, :at)"
        ),
        {"org": task.organization_id, "task": task.id, "rating": rating, "at": at},
    )


async def test_customer_ratings_count_on_the_day_of_the_visit(
    session: AsyncSession, factory: Factory
) -> None:
    if not await field_rollups.has_feedback(session):
        pytest.skip("visit_feedback arrives with the customer notifications migration (0009)")
    w = await factory.world()
    b = Builder(session, w.org)
    visits = await measurer_month(b, w)
    await refresh(session)
    # rated days later: the rating belongs to the visit's day (November 10 and 12)
    await rate(session, visits["v1"], 5, START)
    await rate(session, visits["v3"], 4, START)
    october = await b.task(w.measurer_a, completed=b.at(date(2026, 10, 20), 12))
    await rate(session, october, 1, START)
    await refresh(session)
    got = await team_appraisal(session, w.org.id, w.team_a.id, *NOV)
    max_ = next(p for p in got.members if p.user_id == w.measurer_a.id).kpis
    assert (max_.rating_count, max_.rating_avg) == (2, 4.5)
    got = await team_appraisal(session, w.org.id, w.team_a.id, date(2026, 11, 12), NOV[1])
    assert (got.totals.rating_count, got.totals.rating_avg) == (1, 4.0)
    await session.execute(
        text("DELETE FROM visit_feedback WHERE task_id = :t"), {"t": visits["v3"].id}
    )
    await refresh(session)
    got = await team_appraisal(session, w.org.id, w.team_a.id, *NOV)
    assert (got.totals.rating_count, got.totals.rating_avg) == (1, 5.0)
