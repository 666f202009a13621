"""The demo company's past (backend.seed.history): a short history for a factory organisation,
checked through the rows the reports and scorecards read."""

from __future__ import annotations

import itertools
import uuid
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import func, select, text
from sqlalchemy.ext.asyncio import AsyncSession

from backend.accounts.models import Organization
from backend.notifications.models import Notification, OutboxMessage, OutboxStatus
from backend.sales.models import Deal, DealStageChange, Stage, StageKind
from backend.seed.history import HistoryCounts, seed_history
from backend.tasks.models import Task, TaskKind, TaskStatus
from backend.tracking.models import CheckIn, CheckKind, CheckStatus, DailySummary, Shift

NOW = datetime.fromisoformat("2026-11-24T09:00:00+00:00")
DAYS = 30  # a full cycle (request to installation) takes two to four weeks


async def _history(
    factory: Any, seed: int = 7, name: str = "Acme Windows"
) -> tuple[Any, HistoryCounts]:
    world = await factory.world(name)
    counts = await seed_history(factory.session, world.org, NOW, seed, days=DAYS)
    await factory.session.flush()
    return world, counts


async def _scalar(session: AsyncSession, sql: str, org: Organization) -> Any:
    return await session.scalar(text(sql), {"org": org.id})


async def test_deals_are_won_and_lost_through_the_stages_in_order(
    session: AsyncSession, factory: Any
) -> None:
    world, counts = await _history(factory)
    org = world.org
    stages = {
        s.id: s
        for s in (await session.scalars(select(Stage).where(Stage.organization_id == org.id))).all()
    }
    deals = (await session.scalars(select(Deal).where(Deal.organization_id == org.id))).all()
    assert len(deals) == counts.leads > 30
    kinds = [stages[d.stage_id].kind for d in deals]
    assert kinds.count(StageKind.WON) == counts.won > 0
    assert kinds.count(StageKind.LOST) == counts.lost > 0
    for deal in deals:
        changes = (
            await session.scalars(
                select(DealStageChange)
                .where(DealStageChange.deal_id == deal.id)
                .order_by(DealStageChange.changed_at)
            )
        ).all()
        assert changes[0].from_stage_id is None
        assert changes[-1].to_stage_id == deal.stage_id
        for earlier, later in itertools.pairwise(changes):
            assert later.from_stage_id == earlier.to_stage_id
            assert later.changed_at > earlier.changed_at
            assert later.seconds_in_previous == int(
                (later.changed_at - earlier.changed_at).total_seconds()
            )
        positions = [stages[c.to_stage_id].position for c in changes]
        open_path = [p for p in positions if stages_by_position(stages, p) is StageKind.OPEN]
        assert open_path == sorted(open_path)
        if stages[deal.stage_id].kind is StageKind.WON:
            assert deal.closed_at == changes[-1].changed_at
            assert deal.amount is not None
            assert 25_000 <= deal.amount <= 400_000
            assert [stages[c.to_stage_id].position for c in changes] == [10, 20, 30, 40, 50, 60]
        if stages[deal.stage_id].kind is StageKind.LOST:
            assert deal.lost_reason
    owners = {d.owner_id for d in deals}
    assert owners == {world.manager_a.id, world.manager_b.id}
    calls = await _scalar(
        session,
        "SELECT count(*) FROM interactions WHERE organization_id = :org AND kind = 'call'",
        org,
    )
    assert calls == counts.calls > counts.leads // 2


def stages_by_position(stages: dict[uuid.UUID, Stage], position: int) -> StageKind:
    return next(s.kind for s in stages.values() if s.position == position)


async def test_every_done_visit_has_a_check_in_and_a_check_out(
    session: AsyncSession, factory: Any
) -> None:
    world, counts = await _history(factory)
    org = world.org
    done = (
        await session.scalars(
            select(Task).where(
                Task.organization_id == org.id,
                Task.kind.in_([TaskKind.MEASUREMENT, TaskKind.INSTALLATION]),
                Task.status == TaskStatus.DONE,
            )
        )
    ).all()
    assert len(done) == counts.visits > 5
    for task in done:
        checks = (
            await session.scalars(
                select(CheckIn).where(CheckIn.task_id == task.id).order_by(CheckIn.at)
            )
        ).all()
        assert [c.kind for c in checks] == [CheckKind.IN, CheckKind.OUT]
        assert checks[0].at == task.started_at
        assert checks[1].at == task.completed_at
        assert checks[0].user_id == checks[1].user_id == task.assignee_id
        assert task.window_start is not None
        assert checks[1].dwell_s == int((checks[1].at - checks[0].at).total_seconds())
        assert checks[0].at.astimezone(ZoneInfo(org.time_zone)).weekday() < 5
    statuses = await session.scalars(
        select(CheckIn.status).where(CheckIn.organization_id == org.id, CheckIn.kind == "in")
    )
    seen = list(statuses.all())
    assert seen.count(CheckStatus.VERIFIED) > len(seen) / 2
    shifts = await session.scalar(
        select(func.count()).select_from(Shift).where(Shift.organization_id == org.id)
    )
    summaries = (
        await session.scalars(select(DailySummary).where(DailySummary.organization_id == org.id))
    ).all()
    assert shifts == len(summaries) == counts.shifts > 0
    for summary in summaries:
        assert summary.on_site_s + summary.driving_s + summary.idle_s > 8 * 3600
        assert min(summary.on_site_s, summary.driving_s, summary.idle_s) >= 0
        assert summary.distance_m > 0


async def test_history_sends_nothing_and_lies_in_the_past(
    session: AsyncSession, factory: Any
) -> None:
    world, counts = await _history(factory)
    org = world.org
    pending = await session.scalar(
        select(func.count())
        .select_from(OutboxMessage)
        .where(OutboxMessage.organization_id == org.id, OutboxMessage.status != OutboxStatus.SENT)
    )
    assert pending == 0
    assert counts.notifications > 0
    unread = await session.scalar(
        select(func.count())
        .select_from(Notification)
        .where(Notification.organization_id == org.id, Notification.read_at.is_(None))
    )
    assert unread == 0
    latest = {
        "deal_stage_changes": "max(changed_at)",
        "interactions": "max(occurred_at)",
        "check_ins": "max(at)",
        "audit_log": "max(at)",
        "notifications": "max(greatest(created_at, read_at))",
        "outbox": "max(greatest(created_at, sent_at))",
        "shifts": "max(ended_at)",
        "daily_summaries": "max(computed_at)",
        "customers": "max(created_at)",
    }
    for table, expr in latest.items():
        moment = await _scalar(
            session, f"SELECT {expr} FROM {table} WHERE organization_id = :org", org
        )
        assert moment is not None, table
        assert moment <= NOW, table
    future_visits = await session.scalar(
        text("SELECT count(*) FROM tasks WHERE organization_id = :org AND window_end >= :now"),
        {"org": org.id, "now": NOW},
    )
    assert future_visits == 0
    first = await _scalar(
        session, "SELECT min(changed_at) FROM deal_stage_changes WHERE organization_id = :org", org
    )
    assert first >= NOW - timedelta(days=DAYS + 1)
    assert counts.overdue_tasks == await session.scalar(
        select(func.count())
        .select_from(Task)
        .where(
            Task.organization_id == org.id,
            Task.status.in_([TaskStatus.OPEN, TaskStatus.IN_PROGRESS]),
            Task.due_at < NOW,
        )
    )


async def test_same_seed_same_numbers(session: AsyncSession, factory: Any) -> None:
    _, one = await _history(factory, seed=11, name="One")
    _, two = await _history(factory, seed=11, name="Two")
    _, other = await _history(factory, seed=12, name="Three")
    assert one == two
    assert one != other
