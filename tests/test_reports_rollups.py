"""Roll-up maintenance: the trigger-fed queue of touched days, the refresh job, the rebuild, and
a property test that the reports read from roll-ups equal the numbers computed on the fly."""

from __future__ import annotations

import uuid
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import delete, select, text, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from backend.accounts.models import Role, User
from backend.appraisal import reports, sales_rollups
from backend.appraisal.report_dashboard import dashboard
from backend.customers.models import Customer
from backend.lib.clock import FrozenClock
from backend.sales.models import Deal
from backend.tasks.models import Task, TaskStatus
from backend.worker import Jobs
from tests.conftest import Factory
from tests.test_reports import NOW, by, query, totals
from tests.test_reports_data import STAGES, SalesData, local, october

ROLLUP_TABLES = ("report_deal_days", "report_stage_days", "report_call_days", "report_task_days")


async def queued(session: AsyncSession, org_id: uuid.UUID) -> set[tuple[str, date]]:
    rows = await session.execute(
        text("SELECT fact, day FROM report_dirty_days WHERE organization_id = :org"),
        {"org": org_id},
    )
    return {(r.fact, r.day) for r in rows}


async def snapshot(session: AsyncSession, org_id: uuid.UUID) -> dict[str, set[tuple[Any, ...]]]:
    """Every roll-up row of the organisation."""
    out = {}
    for table in ROLLUP_TABLES:
        rows = await session.execute(
            text(f"SELECT * FROM {table} WHERE organization_id = :org"), {"org": org_id}
        )
        out[table] = {tuple(r) for r in rows}
    return out


async def test_changes_queue_the_local_days_they_feed(
    factory: Factory, session: AsyncSession
) -> None:
    world = await factory.world()
    data = await SalesData(session, world.org).setup()
    deal = await data.deal(
        local(10, 2), world.manager_a, "web", 100, [("Won", local(10, 31, 23, 30))]
    )
    await data.call(world.manager_a, local(10, 5, 0, 30))  # 4 Oct 21:30 UTC
    task = await data.task(world.installer_a, local(10, 6))
    await session.commit()
    assert await queued(session, world.org.id) == {
        ("sales", date(2026, 10, 2)),
        ("sales", date(2026, 10, 31)),
        ("calls", date(2026, 10, 5)),
        ("tasks", date(2026, 10, 6)),
    }
    result = await sales_rollups.refresh(session, NOW)
    assert (result.organizations, result.days) == (1, 4)
    assert await queued(session, world.org.id) == set()
    state = (
        await session.execute(
            text(
                "SELECT refreshed_at, days_refreshed FROM report_refresh_state"
                " WHERE organization_id = :org"
            ),
            {"org": world.org.id},
        )
    ).one()
    assert state == (NOW, 4)
    # A title change feeds no report: nothing queued. A due date moved queues both days.
    await session.execute(update(Deal).where(Deal.id == deal.id).values(title="Other"))
    await session.execute(update(Task).where(Task.id == task.id).values(due_at=local(11, 2)))
    await session.commit()
    assert await queued(session, world.org.id) == {
        ("tasks", date(2026, 10, 6)),
        ("tasks", date(2026, 11, 2)),
    }


async def test_reopened_deal_leaves_its_old_closing_day(
    factory: Factory, session: AsyncSession
) -> None:
    world = await factory.world()
    data = await october(session, world)
    await sales_rollups.refresh(session, NOW)
    d1 = await session.scalar(
        select(Deal).where(Deal.organization_id == world.org.id, Deal.amount == 100000)
    )
    assert d1 is not None
    await session.execute(
        update(Deal)
        .where(Deal.id == d1.id)
        .values(stage_id=data.stages["Quote"].id, closed_at=None)
    )
    await session.commit()
    assert ("sales", date(2026, 10, 31)) in await queued(session, world.org.id)
    for phase in ("queued", "refreshed"):
        if phase == "refreshed":
            await sales_rollups.refresh(session, NOW)
        report = await reports.deals(session, await query(session, world.admin))
        assert totals(report)["wonCount"] == (2, 1), phase
        assert totals(report)["wonAmount"][0] == Decimal("110000.00"), phase


async def test_deleting_a_customer_takes_its_numbers_along(
    factory: Factory, session: AsyncSession
) -> None:
    world = await factory.world()
    await october(session, world)
    await sales_rollups.refresh(session, NOW)
    await session.execute(delete(Customer).where(Customer.organization_id == world.org.id))
    await session.commit()
    for phase in ("queued", "refreshed"):
        if phase == "refreshed":
            await sales_rollups.refresh(session, NOW)
        q = await query(session, world.admin)
        assert totals(await reports.deals(session, q))["createdCount"] == (0, 0)
        assert totals(await reports.calls(session, q))["calls"] == (0, 0)
    # Tasks of the scenario have no customer: they stay.
    assert totals(await reports.overdue_tasks(session, q))["overdue"] == (3, 1)


async def test_new_owner_moves_the_stage_exits(factory: Factory, session: AsyncSession) -> None:
    world = await factory.world()
    data = await SalesData(session, world.org).setup()
    deal = await data.deal(local(10, 2), world.manager_a, "web", 10, [("Measure", local(10, 4))])
    await session.commit()
    await sales_rollups.refresh(session, NOW)
    await session.execute(
        update(Deal).where(Deal.id == deal.id).values(owner_id=world.manager_b.id)
    )
    await session.commit()
    await sales_rollups.refresh(session, NOW)
    q = await query(session, world.admin, person=str(world.manager_b.id))
    funnel = await reports.funnel(session, q)
    assert by(funnel, "stage")["New"]["avgDaysInStage"] == 2.0
    q_a = await query(session, world.admin, person=str(world.manager_a.id))
    assert by(await reports.funnel(session, q_a), "stage")["New"]["avgDaysInStage"] is None


async def test_worker_job_and_rebuild_agree(
    factory: Factory, session: AsyncSession, sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    world = await factory.world()
    await october(session, world)
    jobs = Jobs(sessionmaker, FrozenClock(NOW))
    organizations, days = await jobs.report_rollups()
    assert organizations >= 1
    assert days >= 20
    refreshed = await snapshot(session, world.org.id)
    assert all(refreshed.values())
    # 7 Sep (the first call) .. 1 Nov (the last closing day)
    assert await sales_rollups.rebuild(session, world.org.id, NOW) == 56
    await session.commit()
    assert await snapshot(session, world.org.id) == refreshed
    assert await jobs.report_rollups() == (0, 0)


# --- property: roll-ups equal the on-the-fly numbers -----------------------------------------

ZONES = ("Europe/Moscow", "America/New_York", "Asia/Kolkata", "UTC")
BASE = datetime(2026, 9, 1, tzinfo=UTC)
hours = st.integers(min_value=0, max_value=24 * 75)
deal_st = st.tuples(
    hours,
    st.integers(0, 3),
    st.sampled_from(["web", "phone", None]),
    st.one_of(st.none(), st.integers(0, 50_000)),
    st.lists(st.tuples(st.integers(1, len(STAGES) - 1), st.integers(1, 24 * 20)), max_size=3),
)
call_st = st.tuples(st.integers(0, 3), hours, st.one_of(st.none(), st.integers(0, 900)))
task_st = st.tuples(
    st.integers(0, 3),
    hours,
    st.sampled_from(list(TaskStatus)),
    st.integers(-48, 48),
)


@settings(
    max_examples=12,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    zone=st.sampled_from(ZONES),
    deals=st.lists(deal_st, max_size=12),
    calls=st.lists(call_st, max_size=8),
    tasks=st.lists(task_st, max_size=8),
    start=st.integers(0, 60),
    length=st.integers(1, 40),
    split=st.integers(0, 12),
)
async def test_rollups_equal_on_the_fly_numbers(
    factory: Factory,
    session: AsyncSession,
    zone: str,
    deals: list[Any],
    calls: list[Any],
    tasks: list[Any],
    start: int,
    length: int,
    split: int,
) -> None:
    org = await factory.org(f"Prop {uuid.uuid4().hex[:6]}", time_zone=zone)
    admin = await factory.user(org, Role.ADMIN)
    people: list[User | None] = [
        await factory.user(org, Role.MANAGER),
        await factory.user(org, Role.MANAGER),
        await factory.user(org, Role.FIELD),
        None,
    ]
    data = await SalesData(session, org).setup()
    stage_names = [name for name, _ in STAGES]

    async def add_deal(spec: Any) -> None:
        created_h, owner, source, amount, moves = spec
        at = BASE + timedelta(hours=created_h)
        path = []
        for stage_index, after in moves:
            at += timedelta(hours=after)
            if path and path[-1][0] == stage_names[stage_index]:
                continue
            path.append((stage_names[stage_index], at))
        await data.deal(BASE + timedelta(hours=created_h), people[owner], source, amount, path)

    for spec in deals[:split]:
        await add_deal(spec)
    await session.commit()
    await sales_rollups.refresh(session, NOW)
    # The rest arrives after the refresh: those days are still queued when we compare.
    for spec in deals[split:]:
        await add_deal(spec)
    for author, at, seconds in calls:
        await data.call(people[author], BASE + timedelta(hours=at), seconds)
    for assignee, due, status, late in tasks:
        due_at = BASE + timedelta(hours=due)
        done = due_at + timedelta(hours=late) if status is TaskStatus.DONE else None
        await data.task(people[assignee], due_at, status, done)
    # Reopen one won deal (its closing day must be recomputed).
    await session.execute(
        update(Deal)
        .where(Deal.organization_id == org.id, Deal.closed_at.is_not(None))
        .values(stage_id=data.stages["Quote"].id, closed_at=None)
        .execution_options(synchronize_session=False)
    )
    await session.commit()
    period = {
        "start": (BASE.date() + timedelta(days=start)).isoformat(),
        "end": (BASE.date() + timedelta(days=start + length - 1)).isoformat(),
    }
    for phase in ("partly queued", "refreshed"):
        if phase == "refreshed":
            await sales_rollups.refresh(session, NOW)
        rolled = await dashboard(session, await query(session, admin, "rolled_up", **period))
        raw = await dashboard(session, await query(session, admin, "raw", **period))
        for name, report in rolled.reports.items():
            assert report == raw.reports[name], (phase, name)
        assert rolled.kpis == raw.kpis
