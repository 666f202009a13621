"""Property: the roll-ups kept by the triggers, the queue and the job (and those rebuilt from
scratch) equal the counts computed on the fly from the raw tables, for random tasks, check-ins,
plans, summaries and deals around the period's edges, after random changes and with time moving
on."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import delete, update
from sqlalchemy.ext.asyncio import AsyncSession

from backend.accounts.models import Role
from backend.appraisal import field_rollups
from backend.appraisal.field_rollups import FieldCounts
from backend.appraisal.kpis import group_revenue, rolled_up_counts
from backend.routing.models import RoutePlan
from backend.sales.models import Deal, StageKind
from backend.tasks.models import Task, TaskKind, TaskStatus
from backend.tracking.models import CheckIn, CheckStatus
from tests.conftest import START, Factory
from tests.test_kpis import Builder

PERIOD = (date(2026, 11, 10), date(2026, 11, 12))
# events fall from Nov 9 00:00 to Nov 14 00:00 Moscow time (both sides of the period's edges)
ORIGIN = datetime(2026, 11, 8, 21, 0, tzinfo=UTC)
SPAN_MIN = 5 * 24 * 60

minutes = st.integers(min_value=0, max_value=SPAN_MIN)
task_spec = st.fixed_dictionaries(
    {
        "user": st.integers(0, 1),
        "kind": st.sampled_from([TaskKind.VISIT, TaskKind.MEASUREMENT, TaskKind.CALL]),
        "status": st.sampled_from(list(TaskStatus)),
        "completed": minutes,
        "due": st.none() | minutes,
        "window": st.none() | st.tuples(minutes, st.integers(30, 600)),
        "eta": st.none() | minutes,
        "eta_change": st.none() | st.tuples(minutes, minutes),
        "checks": st.lists(
            st.tuples(st.integers(0, 1), minutes, st.sampled_from(list(CheckStatus))),
            max_size=3,
        ),
        "deal": st.none() | st.integers(0, 2),
    }
)
deal_spec = st.fixed_dictionaries(
    {
        "kind": st.sampled_from(list(StageKind)),
        "owner": st.none() | st.integers(0, 2),
        "closed": minutes,
        "amount": st.integers(0, 100_000),
    }
)
summary_spec = st.tuples(st.integers(0, 1), st.integers(0, 4), st.integers(0, 30_000))
change_spec = st.fixed_dictionaries(
    {
        "task": st.integers(0, 50),
        "assignee": st.none() | st.integers(0, 1),
        "status": st.sampled_from(list(TaskStatus)),
        "drop_check_ins": st.booleans(),
        "deal_repriced": st.none() | st.integers(0, 2),
    }
)


def at(minute: int) -> datetime:
    return ORIGIN + timedelta(minutes=minute)


async def build(
    b: Builder,
    people: list[Any],
    tasks: list[dict[str, Any]],
    deals: list[dict[str, Any]],
    summaries: list[tuple[int, int, int]],
) -> tuple[list[Task], list[Deal]]:
    stages = await b.stages()
    made_deals = []
    for spec in deals:
        closed = at(spec["closed"]) if spec["kind"] is not StageKind.OPEN else None
        owner = people[spec["owner"]] if spec["owner"] is not None else None
        made_deals.append(await b.deal(stages[spec["kind"]], owner, f"{spec['amount']}.00", closed))
    made_tasks = []
    for spec in tasks:
        user = people[spec["user"]]
        done = spec["status"] is TaskStatus.DONE
        window = None
        if spec["window"] is not None:
            start, length = spec["window"]
            window = (at(start), at(start) + timedelta(minutes=length))
        index = spec["deal"]
        deal = made_deals[index] if index is not None and index < len(made_deals) else None
        task = await b.task(
            user,
            spec["kind"],
            status=spec["status"],
            completed=at(spec["completed"]) if done else None,
            due=at(spec["due"]) if spec["due"] is not None else None,
            window=window,
            deal=deal,
        )
        if spec["eta"] is not None:
            day = (at(spec["eta"]) + timedelta(hours=3)).date()
            existing = await b.session.get(RoutePlan, (user.id, day))
            if existing is None:
                await b.plan_eta(user, day, task, at(spec["eta"]))
            else:
                existing.etas = {**existing.etas, str(task.id): at(spec["eta"]).isoformat()}
                await b.session.flush()
        if spec["eta_change"] is not None:
            previous, new = spec["eta_change"]
            await b.eta_change(user, task, at(previous), at(new))
        for who, minute, status in spec["checks"]:
            await b.check_in(task, people[who], at(minute), status)
        made_tasks.append(task)
    seen = set()
    for who, day_index, on_site in summaries:
        day = date(2026, 11, 9) + timedelta(days=day_index)
        if (who, day) in seen:
            continue
        seen.add((who, day))
        await b.summary(people[who], day, on_site, on_site // 2, on_site // 3, on_site * 1.5)
    return made_tasks, made_deals


async def change(
    session: AsyncSession,
    people: list[Any],
    tasks: list[Task],
    deals: list[Deal],
    spec: dict[str, Any],
    now: datetime,
) -> None:
    if tasks:
        task = tasks[spec["task"] % len(tasks)]
        values: dict[str, Any] = {"status": spec["status"]}
        if spec["assignee"] is not None:
            values["assignee_id"] = people[spec["assignee"]].id
        values["completed_at"] = now if spec["status"] is TaskStatus.DONE else None
        await session.execute(update(Task).where(Task.id == task.id).values(**values))
        if spec["drop_check_ins"]:
            await session.execute(delete(CheckIn).where(CheckIn.task_id == task.id))
    if spec["deal_repriced"] is not None and spec["deal_repriced"] < len(deals):
        await session.execute(
            update(Deal).where(Deal.id == deals[spec["deal_repriced"]].id).values(amount=1)
        )


async def assert_same(session: AsyncSession, org_id: Any, people: list[Any], now: datetime) -> None:
    ids = [p.id for p in people]
    rolled = await rolled_up_counts(session, org_id, ids, *PERIOD)
    live = await field_rollups.live_counts(session, org_id, ids, *PERIOD, now)
    for user_id in ids:
        assert rolled[user_id] == live.get(user_id, FieldCounts()), user_id
    assert await group_revenue(session, org_id, ids, *PERIOD) == (
        await field_rollups.live_team_revenue(session, org_id, ids, *PERIOD)
    )


@settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    tasks=st.lists(task_spec, max_size=12),
    deals=st.lists(deal_spec, max_size=3),
    summaries=st.lists(summary_spec, max_size=6),
    changes=st.lists(change_spec, max_size=4),
    later=st.integers(0, 3 * 24 * 60),
)
async def test_roll_ups_equal_on_the_fly_counts(
    session: AsyncSession,
    factory: Factory,
    tasks: list[dict[str, Any]],
    deals: list[dict[str, Any]],
    summaries: list[tuple[int, int, int]],
    changes: list[dict[str, Any]],
    later: int,
) -> None:
    savepoint = await session.begin_nested()
    try:
        org = await factory.org("Property Windows")
        people = [
            await factory.user(org, Role.FIELD, skills=["measurer"]),
            await factory.user(org, Role.FIELD, skills=["installer"]),
            await factory.user(org, Role.MANAGER),
        ]
        b = Builder(session, org)
        now = START - timedelta(days=14)  # Nov 10 09:00 UTC: inside the period
        made_tasks, made_deals = await build(b, people, tasks, deals, summaries)
        await field_rollups.refresh(session, now)
        await assert_same(session, org.id, people, now)
        now = now + timedelta(minutes=later)
        for spec in changes:
            await change(session, people, made_tasks, made_deals, spec, now)
        await session.flush()
        await field_rollups.refresh(session, now)
        await assert_same(session, org.id, people, now)
        # the bulk loaders' path: everything rebuilt from scratch gives the same numbers
        await field_rollups.rebuild(session, org.id, date(2026, 11, 8), date(2026, 11, 14), now)
        await assert_same(session, org.id, people, now)
    finally:
        await savepoint.rollback()
