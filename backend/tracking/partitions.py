"""Daily partitions of ``pings``: created ahead of time, dropped after the retention period.

Partition bounds are UTC days. Ingest accepts points up to 7 days old and 5 minutes ahead, so
the worker keeps partitions from 8 days back to 7 days ahead; ingest also creates a missing one
on demand (``CREATE TABLE IF NOT EXISTS``) when its store statement finds a batch's day missing.
Retention drops whole partitions: instant, no bloat, no VACUUM.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from datetime import UTC, date, datetime, time, timedelta

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

_NAME = re.compile(r"^pings_(\d{8})$")


def partition_name(day: date) -> str:
    """``pings_YYYYMMDD``."""
    return f"pings_{day:%Y%m%d}"


def day_of(moment: datetime) -> date:
    """The UTC day whose partition holds ``moment``."""
    return moment.astimezone(UTC).date()


def days_between(first: datetime, last: datetime) -> list[date]:
    """The UTC days from ``first``'s to ``last``'s, both included."""
    start, end = day_of(first), day_of(last)
    return [start + timedelta(days=d) for d in range((end - start).days + 1)]


async def ensure_partitions(session: AsyncSession, days: Iterable[date]) -> list[str]:
    """Create the partitions of ``days`` that do not exist yet; returns the names created."""
    wanted = {partition_name(day): day for day in days}
    missing = (
        await session.scalars(
            text("SELECT n FROM unnest(CAST(:names AS text[])) AS n WHERE to_regclass(n) IS NULL"),
            {"names": sorted(wanted)},
        )
    ).all()
    if missing:
        # Two processes may race here: the lock serialises them, IF NOT EXISTS settles it.
        await session.execute(text("SELECT pg_advisory_xact_lock(hashtext('fieldcrm-pings'))"))
    for name in sorted(missing):
        start = datetime.combine(wanted[name], time(), tzinfo=UTC)
        end = start + timedelta(days=1)
        await session.execute(
            text(
                f"CREATE TABLE IF NOT EXISTS {name} PARTITION OF pings "
                f"FOR VALUES FROM ('{start.isoformat()}') TO ('{end.isoformat()}')"
            )
        )
    return list(missing)


async def existing_partitions(session: AsyncSession) -> dict[date, str]:
    """The day partitions of ``pings`` that exist now."""
    rows = await session.scalars(
        text(
            "SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid "
            "WHERE i.inhparent = 'pings'::regclass"
        )
    )
    found = {}
    for name in rows.all():
        match = _NAME.match(name)
        if match:
            found[datetime.strptime(match.group(1), "%Y%m%d").date()] = name
    return found


async def maintain(
    session: AsyncSession, *, today: date, retention_days: int, ahead_days: int = 7
) -> tuple[list[str], list[str]]:
    """Create partitions from 8 days back to ``ahead_days`` ahead and drop those older than
    ``retention_days``; returns (created, dropped)."""
    created = await ensure_partitions(
        session, (today + timedelta(days=d) for d in range(-8, ahead_days + 1))
    )
    cutoff = today - timedelta(days=retention_days)
    dropped = []
    for day, name in sorted((await existing_partitions(session)).items()):
        if day < cutoff:
            await session.execute(text(f"DROP TABLE IF EXISTS {name}"))
            dropped.append(name)
    return created, dropped
