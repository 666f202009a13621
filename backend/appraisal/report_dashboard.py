"""The owner's dashboard: every report for one period and filters, plus the headline figures."""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from backend.appraisal.report_filters import ReportQuery
from backend.appraisal.report_schemas import Dashboard, Report
from backend.appraisal.reports import REPORTS, shared_reads

# Headline figure -> (report, total).
KPIS = {
    "dealsCreated": ("deals", "createdCount"),
    "dealsWon": ("deals", "wonCount"),
    "revenue": ("deals", "wonAmount"),
    "dealsLost": ("deals", "lostCount"),
    "winRate": ("deals", "winRate"),
    "conversion": ("conversion_by_source", "conversion"),
    "calls": ("calls", "calls"),
    "overdueTasks": ("overdue_tasks", "overdue"),
}


async def rollups_refreshed_at(session: AsyncSession, q: ReportQuery) -> datetime | None:
    """When the roll-up job last ran for the organisation (reports are exact regardless)."""
    found: datetime | None = await session.scalar(
        text("SELECT refreshed_at FROM report_refresh_state WHERE organization_id = :org"),
        {"org": q.organization_id},
    )
    return found


async def dashboard(session: AsyncSession, q: ReportQuery) -> Dashboard:
    """All reports and the headline figures (each against the previous period)."""
    reports: dict[str, Report] = {}
    with shared_reads():
        for name, build in REPORTS.items():
            reports[name] = await build(session, q)
    kpis = {key: reports[name].totals[total] for key, (name, total) in KPIS.items()}
    first = reports["deals"]
    return Dashboard(
        period=first.period,
        previous=first.previous,
        time_zone=q.time_zone,
        currency=q.currency,
        kpis=kpis,
        reports=reports,
        generated_at=q.now.astimezone(UTC),
        rollups_refreshed_at=await rollups_refreshed_at(session, q),
    )
