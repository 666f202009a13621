"""Background jobs of the field KPIs: the roll-up refresh (every minute) and the RFM
recomputation (nightly), each in its own transaction. Registered in ``backend.worker``."""

from __future__ import annotations

import logging

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from backend.appraisal import field_rollups, rfm
from backend.lib.clock import Clock

log = logging.getLogger("fieldcrm.appraisal")

FIELD_ROLLUPS_CRON = "* * * * *"
RFM_CRON = "30 2 * * *"


async def refresh_field_rollups(
    sessionmaker: async_sessionmaker[AsyncSession], clock: Clock
) -> field_rollups.RefreshResult:
    """Recompute the queued (worker, day) roll-ups and deal credits in one transaction."""
    async with sessionmaker() as session, session.begin():
        result = await field_rollups.refresh(session, clock.now())
    if result.days or result.deals:
        log.info("field roll-ups: %d days, %d deals recomputed", result.days, result.deals)
    return result


async def recompute_rfm(sessionmaker: async_sessionmaker[AsyncSession], clock: Clock) -> int:
    """Recompute every organisation's RFM segments (one transaction per organisation); returns
    the number of customers segmented."""
    async with sessionmaker() as session:
        organizations = await rfm.organizations_with_won_deals(session)
    total = 0
    for organization_id in organizations:
        async with sessionmaker() as session, session.begin():
            total += await rfm.recompute(session, organization_id, clock.now())
    log.info("rfm: %d customers in %d organisations", total, len(organizations))
    return total
