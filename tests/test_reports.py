"""The owner's reports against the hand-computed October scenario (tests/test_reports_data.py).

Every report is checked three ways, which must all give the same numbers: with every day still
queued for refresh (the live part), after the roll-up refresh (roll-ups only), and computed on
the fly from the raw rows.
"""

from __future__ import annotations

from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any

import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from backend.accounts.models import User
from backend.accounts.services import load_actor
from backend.appraisal import reports, sales_rollups
from backend.appraisal.report_filters import RawFilters, ReportQuery, resolve
from backend.appraisal.report_schemas import Report
from tests.conftest import Factory, World
from tests.test_reports_data import SalesData, local, october

NOW = datetime(2026, 11, 24, 9, 0, tzinfo=UTC)
MODES = ("queued", "rolled_up", "raw")


async def query(
    session: AsyncSession,
    user: User,
    mode: str = "rolled_up",
    now: datetime = NOW,
    **filters: Any,
) -> ReportQuery:
    """The resolved query of ``user`` for October 2026 (unless ``start``/``end`` given)."""
    actor = await load_actor(session, user.id, user.organization_id, user.token_version)
    raw = RawFilters(
        start=filters.pop("start", "2026-10-01"), end=filters.pop("end", "2026-10-31"), **filters
    )
    return await resolve(session, actor, raw, now, raw_mode=mode == "raw")


async def prepare(session: AsyncSession, mode: str) -> None:
    """Leave the queue as it is, or refresh every queued day."""
    if mode != "queued":
        await sales_rollups.refresh(session, NOW)
        queued = await session.scalar(text("SELECT count(*) FROM report_dirty_days"))
        assert queued == 0


def by(report: Report, key: str) -> dict[Any, dict[str, Any]]:
    return {row[key]: row for row in report.rows}


def totals(report: Report) -> dict[str, tuple[Any, Any]]:
    return {k: (f.current, f.previous) for k, f in report.totals.items()}


@pytest.fixture
async def world(factory: Factory, session: AsyncSession) -> World:
    world = await factory.world()
    await october(session, world)
    return world


@pytest.mark.parametrize("mode", MODES)
async def test_deals_created_won_lost(session: AsyncSession, world: World, mode: str) -> None:
    await prepare(session, mode)
    q = await query(session, world.admin, mode, interval="week")
    report = await reports.deals(session, q)
    assert report.period.days == 31
    assert (report.previous.start, report.previous.end) == (date(2026, 8, 31), date(2026, 9, 30))
    assert totals(report) == {
        "createdCount": (5, 2),
        "createdAmount": (Decimal("250000.00"), Decimal("70000.00")),
        "wonCount": (3, 1),
        "wonAmount": (Decimal("210000.00"), Decimal("40000.00")),
        "lostCount": (1, 0),
        "lostAmount": (Decimal("50000.00"), Decimal("0.00")),
        "winRate": (0.75, 1.0),
    }
    assert report.totals["wonCount"].change == 2.0
    weeks = by(report, "period")
    # Weeks start on Monday: 28 Sep, 5 Oct, 12 Oct, 19 Oct, 26 Oct.
    assert list(weeks) == [
        date(2026, 9, 28) + (date(2026, 10, 5) - date(2026, 9, 28)) * i for i in range(5)
    ]
    # D4 won 1 Oct 00:30; D1 won 31 Oct 23:30 (the last local day counts); D3 won 20 Oct.
    assert weeks[date(2026, 9, 28)]["wonCount"] == 1
    assert weeks[date(2026, 10, 26)]["wonCount"] == 1
    assert weeks[date(2026, 10, 26)]["wonAmount"] == Decimal("100000.00")
    assert weeks[date(2026, 10, 19)]["wonCount"] == 1
    assert weeks[date(2026, 10, 5)]["lostCount"] == 1
    assert sum(w["createdCount"] for w in report.rows) == 5


@pytest.mark.parametrize("mode", MODES)
async def test_calls_per_person(session: AsyncSession, world: World, mode: str) -> None:
    await prepare(session, mode)
    report = await reports.calls(session, await query(session, world.admin, mode))
    assert [
        (r["person"], r["calls"], r["minutes"], r["avgMinutes"], r["callsPrevious"])
        for r in report.rows
    ] == [
        ("Mark Manager", 3, 6.0, 2.0, 0),
        ("Mona Manager", 1, 0.5, 0.5, 2),
        ("Max Measurer", 0, 0.0, None, 1),
    ]
    assert by(report, "person")["Mona Manager"]["change"] == -0.5
    assert totals(report)["calls"] == (4, 3)


@pytest.mark.parametrize("mode", MODES)
async def test_conversion_by_source(session: AsyncSession, world: World, mode: str) -> None:
    await prepare(session, mode)
    report = await reports.conversion_by_source(session, await query(session, world.admin, mode))
    rows = [(r["source"], r["leads"], r["won"], r["conversion"], r["revenue"]) for r in report.rows]
    assert rows == [
        ("website", 2, 1, 0.5, Decimal("100000.00")),
        ("(none)", 1, 1, 1.0, Decimal("20000.00")),
        ("phone", 1, 1, 1.0, Decimal("80000.00")),
        ("referral", 1, 0, 0.0, Decimal("0.00")),
    ]
    assert by(report, "source")["website"]["conversionPrevious"] == 1.0
    assert by(report, "source")["referral"]["conversionPrevious"] is None
    assert totals(report) == {"leads": (5, 2), "won": (3, 2), "conversion": (0.6, 1.0)}


@pytest.mark.parametrize("mode", MODES)
async def test_conversion_by_manager(session: AsyncSession, world: World, mode: str) -> None:
    await prepare(session, mode)
    report = await reports.conversion_by_manager(session, await query(session, world.admin, mode))
    rows = [(r["person"], r["leads"], r["won"], r["conversion"], r["revenue"]) for r in report.rows]
    assert rows == [
        ("Mona Manager", 2, 2, 1.0, Decimal("100000.00")),
        ("Mark Manager", 3, 1, 0.3333, Decimal("100000.00")),
    ]
    assert by(report, "person")["Mark Manager"]["personId"] == str(world.manager_a.id)


@pytest.mark.parametrize("mode", MODES)
async def test_sources_ranked(session: AsyncSession, world: World, mode: str) -> None:
    await prepare(session, mode)
    report = await reports.sources(session, await query(session, world.admin, mode))
    rows = [
        (r["rank"], r["source"], r["leads"], r["won"], r["revenue"], r["revenueRank"], r["lost"])
        for r in report.rows
    ]
    assert rows == [
        (1, "phone", 1, 2, Decimal("110000.00"), 1, 0),
        (2, "website", 2, 1, Decimal("100000.00"), 2, 1),
        (3, "(none)", 1, 0, Decimal("0.00"), 3, 0),
        (4, "referral", 1, 0, Decimal("0.00"), 4, 0),
    ]
    assert by(report, "source")["phone"]["revenueShare"] == 0.5238
    assert by(report, "source")["website"]["wonPrevious"] == 1
    assert by(report, "source")["website"]["revenuePrevious"] == Decimal("40000.00")
    assert totals(report)["revenue"] == (Decimal("210000.00"), Decimal("40000.00"))


@pytest.mark.parametrize("mode", MODES)
async def test_funnel(session: AsyncSession, world: World, mode: str) -> None:
    await prepare(session, mode)
    report = await reports.funnel(session, await query(session, world.admin, mode))
    rows = [
        (
            r["stage"],
            r["reached"],
            r["conversionFromPrevious"],
            r["conversionFromFirst"],
            r["avgDaysInStage"],
            r["reachedPrevious"],
        )
        for r in report.rows
    ]
    # New exits: D1 1 d, D2 1 d, D3 2 d, D4 15 d 14.5 h (left 1 Oct 00:30) = 4.8976 d on average.
    # Quote exits: D1 26 d 13.5 h (left 31 Oct 23:30), D3 8 d.
    assert rows == [
        ("New", 5, None, 1.0, 4.9, 2),
        ("Measure", 4, 0.8, 0.8, 4.0, 2),
        ("Quote", 3, 0.75, 0.6, 17.28, 2),
        ("Won", 3, 1.0, 0.6, None, 2),
    ]
    assert totals(report) == {"requests": (5, 2), "won": (3, 2), "conversion": (0.6, 1.0)}


@pytest.mark.parametrize("mode", MODES)
async def test_overdue_tasks(session: AsyncSession, world: World, mode: str) -> None:
    await prepare(session, mode)
    report = await reports.overdue_tasks(session, await query(session, world.admin, mode))
    rows = [
        (
            r["person"],
            r["due"],
            r["doneOnTime"],
            r["doneLate"],
            r["openOverdue"],
            r["overdue"],
            r["overdueRate"],
            r["overduePrevious"],
        )
        for r in report.rows
    ]
    assert rows == [
        ("Igor Installer", 3, 1, 1, 1, 2, 0.6667, 0),
        ("Ivan Installer", 1, 0, 0, 1, 1, 1.0, 1),
    ]
    assert totals(report)["overdue"] == (3, 1)
    assert totals(report)["overdueRate"] == (0.75, 1.0)


@pytest.mark.parametrize("mode", MODES)
async def test_overdue_today_counts_only_what_is_past_due_now(
    session: AsyncSession, factory: Factory, mode: str
) -> None:
    world = await factory.world()
    data = await SalesData(session, world.org).setup()
    worker = world.installer_a
    # Now is 24 Nov 12:00 in Moscow.
    await data.task(worker, local(11, 24, 10))  # due this morning: overdue
    await data.task(worker, local(11, 24, 15))  # due this afternoon: not yet
    await data.task(worker, local(11, 23, 18))  # due yesterday: overdue
    await data.task(worker, local(11, 25, 9))  # due tomorrow: not yet
    await session.commit()
    await prepare(session, mode)
    q = await query(session, world.admin, mode, start="2026-11-20", end="2026-11-26")
    report = await reports.overdue_tasks(session, q)
    assert [(r["due"], r["openOverdue"], r["overdue"]) for r in report.rows] == [(4, 2, 2)]


async def test_period_boundaries_follow_the_org_time_zone(
    session: AsyncSession, world: World
) -> None:
    """A deal won at 23:30 local on the last day is in the period; one won at 00:30 local the
    next day (still the last day in UTC) is not; one won at 00:30 local on the first day is."""
    await prepare(session, "rolled_up")
    one_day = await reports.deals(
        session, await query(session, world.admin, start="2026-10-31", end="2026-10-31")
    )
    assert totals(one_day)["wonCount"] == (1, 0)
    assert totals(one_day)["wonAmount"][0] == Decimal("100000.00")
    next_day = await reports.deals(
        session, await query(session, world.admin, start="2026-11-01", end="2026-11-01")
    )
    # D6 (won 1 Nov 00:30 local = 31 Oct 21:30 UTC) is in 1 November; D1 in the previous day.
    assert totals(next_day)["wonCount"] == (1, 1)
    first = await reports.deals(
        session, await query(session, world.admin, start="2026-10-01", end="2026-10-01")
    )
    assert totals(first)["wonCount"] == (1, 0)


async def test_filters_narrow_every_report(session: AsyncSession, world: World) -> None:
    await prepare(session, "rolled_up")
    by_source = await reports.deals(session, await query(session, world.admin, source="phone"))
    assert totals(by_source)["wonCount"] == (2, 0)
    by_person = await reports.deals(
        session, await query(session, world.admin, person=str(world.manager_a.id))
    )
    assert totals(by_person)["createdCount"] == (3, 1)
    team_b = await reports.calls(
        session, await query(session, world.admin, team=str(world.team_b.id))
    )
    assert [r["person"] for r in team_b.rows] == ["Mona Manager"]
    team_a_tasks = await reports.overdue_tasks(
        session, await query(session, world.admin, team=str(world.team_a.id))
    )
    assert [r["person"] for r in team_a_tasks.rows] == ["Igor Installer"]
    other = await SalesData(session, world.org).setup(default=False, name="Service")
    await other.deal(local(10, 5), world.manager_a, "website", 999, [("Won", local(10, 6))])
    await session.commit()
    assert other.pipeline is not None
    pipe = await reports.deals(
        session, await query(session, world.admin, pipeline=str(other.pipeline.id))
    )
    assert totals(pipe)["wonAmount"][0] == Decimal("999.00")
    funnel = await reports.funnel(
        session, await query(session, world.admin, pipeline=str(other.pipeline.id))
    )
    assert [(r["stage"], r["reached"]) for r in funnel.rows] == [
        ("New", 1),
        ("Measure", 1),
        ("Quote", 1),
        ("Won", 1),
    ]
    # The default pipeline's funnel does not see the other pipeline's deal.
    default_funnel = await reports.funnel(session, await query(session, world.admin))
    assert default_funnel.rows[0]["reached"] == 5


async def test_managers_see_their_teams_and_field_staff_themselves(
    session: AsyncSession, world: World
) -> None:
    await prepare(session, "rolled_up")
    mark = await reports.conversion_by_manager(session, await query(session, world.manager_a))
    assert [r["person"] for r in mark.rows] == ["Mark Manager"]
    mona_tasks = await reports.overdue_tasks(session, await query(session, world.manager_b))
    assert [r["person"] for r in mona_tasks.rows] == ["Ivan Installer"]
    igor = await reports.overdue_tasks(session, await query(session, world.installer_a))
    assert [r["person"] for r in igor.rows] == ["Igor Installer"]
    igor_deals = await reports.deals(session, await query(session, world.installer_a))
    assert totals(igor_deals)["createdCount"] == (0, 0)
