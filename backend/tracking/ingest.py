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
from itertools import pairwise

import msgspec
from sqlalchemy import or_, select, text
from sqlalchemy.ext.asyncio import AsyncSession

from backend.tracking import arrival
from backend.tracking.models import Shift, ShiftSchedule
from backend.tracking.partitions import days_between, ensure_partitions
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
    earliest, latest = now - MAX_AGE, now + MAX_FUTURE
    times = [point.recorded_at for _, point in points]
    if (
        times
        and earliest <= min(times)
        and max(times) <= latest
        and all(a < b for a, b in pairwise(times))
    ):
        return points, []  # the usual batch: in time order, in the window
    kept: list[tuple[int, Point]] = []
    refused: list[Rejected] = []
    seen: set[datetime] = set()
    for index, point in points:
        if point.recorded_at > latest:
            refused.append(Rejected(index, "timestamp", "more than 5 minutes in the future"))
        elif point.recorded_at < earliest:
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
    if any(s <= first and (e is None or last <= e) for s, e in shifts):
        return [True] * len(instants)  # the usual case: one shift covers the whole batch
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


# One statement per batch: the points travel as one JSON text (PostgreSQL parses it in C; no
# per-value work in Python), are inserted into their day partitions, and the newest becomes the
# user's latest position unless a newer one is already there.
_STORE = text("""
WITH p AS (
    SELECT timestamp AS recorded_at, lat, lon, accuracy AS accuracy_m, speed AS speed_mps,
           heading AS heading_deg, altitude AS altitude_m, battery AS battery_pct, mocked,
           activity
    FROM json_to_recordset(CAST(:points AS json)) AS p(
        timestamp timestamptz, lat float8, lon float8, accuracy float4, speed float4,
        heading float4, altitude float4, battery float4, mocked boolean, activity text)
), ins AS (
    INSERT INTO pings (organization_id, user_id, device_id, recorded_at, received_at, lat, lon,
                       accuracy_m, speed_mps, heading_deg, altitude_m, battery_pct, mocked,
                       activity)
    SELECT CAST(:org AS uuid), CAST(:user AS uuid), CAST(:device AS uuid), recorded_at,
           CAST(:now AS timestamptz), lat, lon, accuracy_m, speed_mps, heading_deg, altitude_m,
           battery_pct, coalesce(mocked, false), activity
    FROM p
    ON CONFLICT (user_id, recorded_at) DO NOTHING
    RETURNING 1
), newest AS (
    SELECT * FROM p ORDER BY recorded_at DESC LIMIT 1
), latest AS (
    INSERT INTO latest_positions AS lp (user_id, organization_id, recorded_at, lat, lon, location,
                                        accuracy_m, speed_mps, heading_deg, battery_pct, mocked,
                                        activity)
    SELECT CAST(:user AS uuid), CAST(:org AS uuid), recorded_at, lat, lon,
           ST_SetSRID(ST_MakePoint(lon, lat), 4326)::geography, accuracy_m, speed_mps,
           heading_deg, battery_pct, coalesce(mocked, false), activity
    FROM newest
    ON CONFLICT (user_id) DO UPDATE SET
        organization_id = excluded.organization_id, recorded_at = excluded.recorded_at,
        lat = excluded.lat, lon = excluded.lon, location = excluded.location,
        accuracy_m = excluded.accuracy_m, speed_mps = excluded.speed_mps,
        heading_deg = excluded.heading_deg, battery_pct = excluded.battery_pct,
        mocked = excluded.mocked, activity = excluded.activity
    WHERE lp.recorded_at < excluded.recorded_at
)
SELECT count(*) FROM ins
""")

_POINTS_JSON = msgspec.json.Encoder()


async def _insert(
    session: AsyncSession,
    organization_id: uuid.UUID,
    user_id: uuid.UUID,
    device_id: uuid.UUID | None,
    points: list[Point],
    now: datetime,
) -> int:
    """Insert the points and upsert the latest position; returns how many points were new."""
    stored = await session.scalar(
        _STORE,
        {
            "org": str(organization_id),
            "user": str(user_id),
            "device": str(device_id) if device_id else None,
            "now": now,
            "points": _POINTS_JSON.encode(points).decode(),
        },
    )
    return int(stored or 0)


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
        newest = max(work, key=lambda p: p.recorded_at)
        oldest = min(work, key=lambda p: p.recorded_at)
        await ensure_partitions(session, days_between(oldest.recorded_at, newest.recorded_at))
        result.stored = await _insert(session, organization_id, user_id, device_id, work, now)
        result.duplicates = len(work) - result.stored
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
