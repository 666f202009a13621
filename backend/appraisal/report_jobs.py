"""Background work of the owner's reports: the roll-up refresh (every minute, registered in
``backend.worker``) and the full rebuild (``fieldcrm rebuild-reports``)."""

from __future__ import annotations

import logging
import uuid

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from backend.appraisal import sales_rollups
from backend.lib.clock import Clock

log = logging.getLogger("fieldcrm.appraisal")

REPORT_ROLLUPS_CRON = "* * * * *"


async def refresh_report_rollups(
    sessionmaker: async_sessionmaker[AsyncSession], clock: Clock
) -> sales_rollups.RefreshResult:
    """Recompute the days queued since the last run, in one transaction."""
    async with sessionmaker() as session, session.begin():
        result = await sales_rollups.refresh(session, clock.now())
    if result.days:
        log.info(
            "report roll-ups: %d days of %d organisations recomputed",
            result.days,
            result.organizations,
        )
    return result


async def rebuild_report_rollups(
    sessionmaker: async_sessionmaker[AsyncSession],
    clock: Clock,
    organization_id: uuid.UUID | None = None,
) -> dict[uuid.UUID, int]:
    """Recompute every day of one organisation (or of all), one transaction each; the number
    of days per organisation."""
    if organization_id is None:
        async with sessionmaker() as session:
            organizations = await sales_rollups.organizations(session)
    else:
        organizations = [organization_id]
    done: dict[uuid.UUID, int] = {}
    for org in organizations:
        async with sessionmaker() as session, session.begin():
            done[org] = await sales_rollups.rebuild(session, org, clock.now())
    return done


async def rebuild_report_rollups_at(database_url: str, organization_id: str | None) -> str:
    """``fieldcrm rebuild-reports``: rebuild on the database at ``database_url``; a summary."""
    from sqlalchemy.ext.asyncio import create_async_engine

    from backend.lib.clock import SystemClock

    org = uuid.UUID(organization_id) if organization_id else None
    engine = create_async_engine(database_url, pool_size=1)
    try:
        sessionmaker = async_sessionmaker(engine, expire_on_commit=False)
        done = await rebuild_report_rollups(sessionmaker, SystemClock(), org)
    finally:
        await engine.dispose()
    return f"{len(done)} organisations, {sum(done.values())} days"
