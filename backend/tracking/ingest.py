"""Storing GPS points: policy checks, shift filter, bulk insert, latest position.

Every path (the JSON batch API, the OsmAnd/Traccar protocol, the browser) ends in ``store``:
1. policy: not more than 5 minutes in the future, not older than 7 days, one point per instant
   in a batch — refused points are listed with the reason, the others go on;
2. shifts: points outside the user's shifts (an open or past shift, or a scheduled window) are
   not stored, only counted (location outside work is not ours to keep);
3. the user's latest position is upserted when the batch holds a newer fix, announced to the
   live stream, and checked against the sites of the user's visits (``arrival`` hints) — with
   the shift check of the usual batch (one shift covers it), one statement;
4. the points go into the day partitions with one binary COPY in a savepoint; a resent point
   (same user and fix time) makes it fall back to one ``INSERT ... SELECT FROM
   json_to_recordset(...) ON CONFLICT DO NOTHING``: a resent point is stored once.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from itertools import pairwise
from typing import Any

import asyncpg
import msgspec
from sqlalchemy import or_, select, text
from sqlalchemy.ext.asyncio import AsyncSession

from backend.tracking import arrival
from backend.tracking.models import Shift, ShiftSchedule
from backend.tracking.partitions import days_between, ensure_partitions, partition_name
from backend.tracking.points import Point, Rejected
from backend.tracking.schedule import mask, parse_weekly_shifts
from backend.tracking.stream import channel_of, position_payload

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


# Before the points are written, one statement checks that they may be (one shift covers the
# batch, unless the caller filtered by shift already, and the day partitions exist: ``ready``),
# makes the newest the user's latest position unless a newer one is there, announces it to the
# live stream and returns the worker's visits near it for the arrival hints. When not ready it
# does nothing, and the caller takes the long way and runs it again.
_READY = text(f"""
WITH ready AS MATERIALIZED (
    SELECT (NOT CAST(:check_shift AS boolean) OR EXISTS (
                SELECT 1 FROM shifts s
                WHERE s.user_id = CAST(:user AS uuid)
                  AND s.started_at <= CAST(:first AS timestamptz)
                  AND (s.ended_at IS NULL OR s.ended_at >= CAST(:last AS timestamptz))))
       AND NOT EXISTS (SELECT 1 FROM unnest(CAST(:partitions AS text[])) AS n
                       WHERE to_regclass(n) IS NULL) AS ok
), latest AS (
    INSERT INTO latest_positions AS lp (user_id, organization_id, recorded_at, lat, lon, location,
                                        accuracy_m, speed_mps, heading_deg, battery_pct, mocked,
                                        activity)
    SELECT CAST(:user AS uuid), CAST(:org AS uuid), CAST(:last AS timestamptz),
           CAST(:lat AS float8), CAST(:lon AS float8),
           ST_SetSRID(ST_MakePoint(:lon, :lat), 4326)::geography,
           CAST(:accuracy AS float4), CAST(:speed AS float4), CAST(:heading AS float4),
           CAST(:battery AS float4), CAST(:mocked AS boolean), CAST(:activity AS text)
    FROM ready WHERE ready.ok
    ON CONFLICT (user_id) DO UPDATE SET
        organization_id = excluded.organization_id, recorded_at = excluded.recorded_at,
        lat = excluded.lat, lon = excluded.lon, location = excluded.location,
        accuracy_m = excluded.accuracy_m, speed_mps = excluded.speed_mps,
        heading_deg = excluded.heading_deg, battery_pct = excluded.battery_pct,
        mocked = excluded.mocked, activity = excluded.activity
    WHERE lp.recorded_at < excluded.recorded_at
), near AS (
    SELECT * FROM ({arrival.CANDIDATES_SQL}) c
    WHERE (SELECT ok FROM ready) AND CAST(:hints AS boolean)
)
SELECT ready.ok,
       CASE WHEN ready.ok THEN pg_notify(:channel, :payload) END AS announced,
       (SELECT array_agg(near.id ORDER BY near.distance_m) FROM near) AS near_ids,
       (SELECT array_agg(near.title ORDER BY near.distance_m) FROM near) AS near_titles,
       (SELECT array_agg(near.status ORDER BY near.distance_m) FROM near) AS near_statuses,
       (SELECT array_agg(near.distance_m ORDER BY near.distance_m) FROM near) AS near_m
FROM ready
""")

# The points of a batch in one JSON text (PostgreSQL parses it in C), into their day partitions;
# a point stored before (same user and fix time) is skipped.
_INSERT = text("""
WITH ins AS (
    INSERT INTO pings (organization_id, user_id, device_id, recorded_at, received_at, lat, lon,
                       accuracy_m, speed_mps, heading_deg, altitude_m, battery_pct, mocked,
                       activity)
    SELECT CAST(:org AS uuid), CAST(:user AS uuid), CAST(:device AS uuid), timestamp,
           CAST(:now AS timestamptz), lat, lon, accuracy, speed, heading, altitude, battery,
           coalesce(mocked, false), activity
    FROM json_to_recordset(CAST(:points AS json)) AS p(
        timestamp timestamptz, lat float8, lon float8, accuracy float4, speed float4,
        heading float4, altitude float4, battery float4, mocked boolean, activity text)
    ON CONFLICT (user_id, recorded_at) DO NOTHING
    RETURNING 1
)
SELECT count(*) FROM ins
""")
# The columns of a stored ping, in the order of COPY's records.
PING_COLUMNS = (
    "organization_id",
    "user_id",
    "device_id",
    "recorded_at",
    "received_at",
    "lat",
    "lon",
    "accuracy_m",
    "speed_mps",
    "heading_deg",
    "altitude_m",
    "battery_pct",
    "mocked",
    "activity",
)
_SAVEPOINT = "fieldcrm_pings"
_POINTS_JSON = msgspec.json.Encoder()


@dataclass(frozen=True, slots=True)
class _Ready:
    """Whether the points may be written (else nothing was done), and the visits near."""

    ok: bool
    near: list[arrival.Candidate]


async def _prepare(
    session: AsyncSession,
    *,
    organization_id: uuid.UUID,
    user_id: uuid.UUID,
    first: datetime,
    newest: Point,
    now: datetime,
    check_shift: bool,
) -> _Ready:
    """Run ``_READY`` for a batch from ``first`` to ``newest``."""
    last = newest.recorded_at
    row = (
        await session.execute(
            _READY,
            {
                **arrival.parameters(newest, now),
                "org": str(organization_id),
                "user": str(user_id),
                "check_shift": check_shift,
                "first": first,
                "last": last,
                "partitions": [partition_name(d) for d in days_between(first, last)],
                "lat": newest.lat,
                "lon": newest.lon,
                "accuracy": newest.accuracy_m,
                "speed": newest.speed_mps,
                "heading": newest.heading_deg,
                "battery": newest.battery_pct,
                "mocked": newest.mocked,
                "activity": newest.activity,
                "channel": channel_of(organization_id),
                "payload": position_payload(user_id, newest),
                "hints": arrival.wanted(newest),
            },
        )
    ).one()
    near = [
        arrival.Candidate(*values)
        for values in zip(
            row.near_ids or [],
            row.near_titles or [],
            row.near_statuses or [],
            row.near_m or [],
            strict=True,
        )
    ]
    return _Ready(bool(row.ok), near)


async def _write(
    session: AsyncSession,
    *,
    organization_id: uuid.UUID,
    user_id: uuid.UUID,
    device_id: uuid.UUID | None,
    work: list[Point],
    now: datetime,
) -> int:
    """Insert the points; returns how many were new. A binary COPY in a savepoint costs
    PostgreSQL a fraction of an INSERT; when a point was stored before (a resend), the savepoint
    is rolled back and ``_INSERT`` skips the points stored before."""
    raw = await (await session.connection()).get_raw_connection()
    connection: Any = raw.driver_connection  # asyncpg's, inside the session's transaction
    records = [
        (organization_id, user_id, device_id, p.recorded_at, now, p.lat, p.lon, p.accuracy_m,
         p.speed_mps, p.heading_deg, p.altitude_m, p.battery_pct, p.mocked, p.activity)
        for p in work
    ]  # fmt: skip
    await connection.execute(f"SAVEPOINT {_SAVEPOINT}")
    try:
        await connection.copy_records_to_table("pings", records=records, columns=PING_COLUMNS)
    except asyncpg.UniqueViolationError:
        await connection.execute(f"ROLLBACK TO SAVEPOINT {_SAVEPOINT}")
        await connection.execute(f"RELEASE SAVEPOINT {_SAVEPOINT}")
        stored = await session.scalar(
            _INSERT,
            {
                "org": str(organization_id),
                "user": str(user_id),
                "device": str(device_id) if device_id else None,
                "now": now,
                "points": _POINTS_JSON.encode(work).decode(),
            },
        )
        return int(stored or 0)
    await connection.execute(f"RELEASE SAVEPOINT {_SAVEPOINT}")
    return len(work)


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
    if not kept:
        return result

    async def prepare(work: list[Point], check_shift: bool) -> tuple[_Ready, Point]:
        newest = max(work, key=lambda p: p.recorded_at)
        first = min(p.recorded_at for p in work)
        ready = await _prepare(
            session,
            organization_id=organization_id,
            user_id=user_id,
            first=first,
            newest=newest,
            now=now,
            check_shift=check_shift,
        )
        return ready, newest

    # The usual batch: one shift covers it and its day partitions exist.
    work = [p for _, p in kept]
    ready, newest = await prepare(work, check_shift=True)
    if not ready.ok:  # the long way: point by point against shifts and schedules
        inside = await in_shift_mask(session, user_id, time_zone, [p.recorded_at for p in work])
        work = [p for p, ok in zip(work, inside, strict=True) if ok]
        result.off_shift = len(kept) - len(work)
        if not work:
            return result
        days = days_between(min(p.recorded_at for p in work), max(p.recorded_at for p in work))
        await ensure_partitions(session, days)
        ready, newest = await prepare(work, check_shift=False)
    result.stored = await _write(
        session,
        organization_id=organization_id,
        user_id=user_id,
        device_id=device_id,
        work=work,
        now=now,
    )
    result.duplicates = len(work) - result.stored
    await arrival.send(
        session,
        organization_id=organization_id,
        user_id=user_id,
        newest=newest,
        rows=ready.near,
        now=now,
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
