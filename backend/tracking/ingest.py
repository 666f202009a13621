"""Storing GPS points: policy checks, shift filter, bulk insert, latest position.

Every path (the JSON batch API, the OsmAnd/Traccar protocol, the browser) ends in ``store``:
1. policy: not more than 5 minutes in the future, not older than 7 days, one point per instant
   in a batch — refused points are listed with the reason, the others go on;
2. shifts: points outside the user's shifts (an open or past shift, or a scheduled window) are
   not stored, only counted (location outside work is not ours to keep);
3. one ``INSERT ... SELECT FROM unnest(...)`` per batch into the day partitions, ``ON CONFLICT
   DO NOTHING`` on (user, fix time): a resent point is stored once;
4. the user's latest position is upserted when the batch holds a newer fix, announced to the
   live stream, and checked against the sites of the user's visits (``arrival`` hints).
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from sqlalchemy import or_, select, text
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from backend.customers.services import point_wkt
from backend.tracking import arrival
from backend.tracking.models import LatestPosition, Shift, ShiftSchedule
from backend.tracking.partitions import day_of, ensure_partitions
from backend.tracking.points import Point, Rejected
from backend.tracking.schedule import mask, parse_weekly_shifts
from backend.tracking.stream import announce

MAX_FUTURE = timedelta(minutes=5)
MAX_AGE = timedelta(days=7)
MAX_BATCH = 1000


@dataclass
class StoreResult:
    """What became of a batch."""

    stored: int = 0
    duplicates: int = 0
    off_shift: int = 0
    rejected: list[Rejected] = field(default_factory=list)


def policy_filter(
    points: list[tuple[int, Point]], now: datetime
) -> tuple[list[tuple[int, Point]], list[Rejected]]:
    """Split indexed points into acceptable ones and refusals (time window, batch duplicates)."""
    kept: list[tuple[int, Point]] = []
    refused: list[Rejected] = []
    seen: set[datetime] = set()
    for index, point in points:
        if point.recorded_at > now + MAX_FUTURE:
            refused.append(Rejected(index, "timestamp", "more than 5 minutes in the future"))
        elif point.recorded_at < now - MAX_AGE:
            refused.append(Rejected(index, "timestamp", "older than 7 days"))
        elif point.recorded_at in seen:
            refused.append(
                Rejected(index, "timestamp", "another point of this batch has this time")
            )
        else:
            seen.add(point.recorded_at)
            kept.append((index, point))
    return kept, refused


async def in_shift_mask(
    session: AsyncSession, user_id: uuid.UUID, time_zone: str, instants: list[datetime]
) -> list[bool]:
    """For each instant: inside one of the user's shifts (manual, or scheduled)?"""
    if not instants:
        return []
    first, last = min(instants), max(instants)
    shifts = (
        await session.execute(
            select(Shift.started_at, Shift.ended_at).where(
                Shift.user_id == user_id,
                Shift.started_at <= last,
                or_(Shift.ended_at.is_(None), Shift.ended_at >= first),
            )
        )
    ).all()
    inside = [any(s <= t and (e is None or t <= e) for s, e in shifts) for t in instants]
    if all(inside):
        return inside
    raw = await session.scalar(
        select(ShiftSchedule.schedule).where(ShiftSchedule.user_id == user_id)
    )
    if raw is None:
        return inside
    scheduled = mask(parse_weekly_shifts(raw), time_zone, instants)
    return [a or b for a, b in zip(inside, scheduled, strict=True)]


_INSERT = text("""
INSERT INTO pings (organization_id, user_id, device_id, recorded_at, received_at, lat, lon,
                   accuracy_m, speed_mps, heading_deg, altitude_m, battery_pct, mocked, activity)
SELECT CAST(:org AS uuid), CAST(:user AS uuid), CAST(:device AS uuid), t, CAST(:now AS timestamptz),
       la, lo, ac, sp, he, al, ba, mo, act
FROM unnest(CAST(:t AS timestamptz[]), CAST(:la AS float8[]), CAST(:lo AS float8[]),
            CAST(:ac AS float4[]), CAST(:sp AS float4[]), CAST(:he AS float4[]),
            CAST(:al AS float4[]), CAST(:ba AS float4[]), CAST(:mo AS boolean[]),
            CAST(:act AS text[]))
     AS p(t, la, lo, ac, sp, he, al, ba, mo, act)
ON CONFLICT (user_id, recorded_at) DO NOTHING
""")


async def _insert(
    session: AsyncSession,
    organization_id: uuid.UUID,
    user_id: uuid.UUID,
    device_id: uuid.UUID | None,
    points: list[Point],
    now: datetime,
) -> int:
    result = await session.execute(
        _INSERT,
        {
            "org": str(organization_id),
            "user": str(user_id),
            "device": str(device_id) if device_id else None,
            "now": now,
            "t": [p.recorded_at for p in points],
            "la": [p.lat for p in points],
            "lo": [p.lon for p in points],
            "ac": [p.accuracy_m for p in points],
            "sp": [p.speed_mps for p in points],
            "he": [p.heading_deg for p in points],
            "al": [p.altitude_m for p in points],
            "ba": [p.battery_pct for p in points],
            "mo": [p.mocked for p in points],
            "act": [p.activity for p in points],
        },
    )
    return int(getattr(result, "rowcount", 0) or 0)


async def _latest(
    session: AsyncSession, organization_id: uuid.UUID, user_id: uuid.UUID, point: Point
) -> None:
    values = {
        "organization_id": organization_id,
        "recorded_at": point.recorded_at,
        "lat": point.lat,
        "lon": point.lon,
        "location": point_wkt(point.lat, point.lon),
        "accuracy_m": point.accuracy_m,
        "speed_mps": point.speed_mps,
        "heading_deg": point.heading_deg,
        "battery_pct": point.battery_pct,
        "mocked": point.mocked,
        "activity": point.activity,
    }
    stmt = insert(LatestPosition).values(user_id=user_id, **values)
    await session.execute(
        stmt.on_conflict_do_update(
            index_elements=[LatestPosition.user_id],
            set_=values,
            where=LatestPosition.recorded_at < stmt.excluded.recorded_at,
        )
    )


async def store(
    session: AsyncSession,
    *,
    organization_id: uuid.UUID,
    user_id: uuid.UUID,
    time_zone: str,
    device_id: uuid.UUID | None,
    points: list[tuple[int, Point]],
    now: datetime,
) -> StoreResult:
    """Store what may be stored of indexed points (see the module docstring)."""
    kept, refused = policy_filter(points, now)
    result = StoreResult(rejected=refused)
    inside = await in_shift_mask(session, user_id, time_zone, [p.recorded_at for _, p in kept])
    work = [p for (_, p), ok in zip(kept, inside, strict=True) if ok]
    result.off_shift = len(kept) - len(work)
    if work:
        await ensure_partitions(session, {day_of(p.recorded_at) for p in work})
        result.stored = await _insert(session, organization_id, user_id, device_id, work, now)
        result.duplicates = len(work) - result.stored
        newest = max(work, key=lambda p: p.recorded_at)
        await _latest(session, organization_id, user_id, newest)
        await announce(session, organization_id, user_id, newest)
        await arrival.detect(
            session, organization_id=organization_id, user_id=user_id, newest=newest, now=now
        )
    return result


async def points_between(
    session: AsyncSession, user_id: uuid.UUID, start: datetime, end: datetime
) -> list[Point]:
    """A user's stored points in [start, end), oldest first."""
    rows = await session.execute(
        text(
            "SELECT recorded_at, lat, lon, accuracy_m, speed_mps, heading_deg, altitude_m,"
            " battery_pct, mocked, activity FROM pings"
            " WHERE user_id = :user AND recorded_at >= :start AND recorded_at < :end"
            " ORDER BY recorded_at"
        ),
        {"user": user_id, "start": start, "end": end},
    )
    return [
        Point(
            recorded_at=r[0],
            lat=r[1],
            lon=r[2],
            accuracy_m=r[3],
            speed_mps=r[4],
            heading_deg=r[5],
            altitude_m=r[6],
            battery_pct=r[7],
            mocked=r[8],
            activity=r[9],
        )
        for r in rows.all()
    ]
