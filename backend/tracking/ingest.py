"""Storing GPS points: policy checks, shift filter, bulk insert, latest position.

Every path (the JSON batch API and the browser through ``group_commit``, the OsmAnd/Traccar
protocol through ``store``) ends in ``store_many``, which stores several batches at once:
1. policy (``policy_filter``, run by each request on its own batch): not more than 5 minutes in
   the future, not older than 7 days, one point per instant in a batch — refused points are
   listed with the reason, the others go on in time order;
2. shifts: points outside the user's shifts (an open or past shift, or a scheduled window) are
   not stored, only counted (location outside work is not ours to keep);
3. each user's latest position is upserted when a batch holds a newer fix, announced to the
   live stream, and checked against the sites of the user's visits (``arrival`` hints) — with
   the shift check of the usual batch (one shift covers it), one statement for all batches;
4. the points of all batches go into the day partitions with one binary COPY
   (``copy_rows``) in a savepoint; a resent point (same user and fix time) makes it fall back
   to one ``INSERT ... SELECT FROM json_to_recordset(...) ON CONFLICT DO NOTHING`` per batch: a
   resent point is stored once.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field, replace
from datetime import date, datetime, timedelta
from itertools import pairwise
from typing import Any

import asyncpg
import msgspec
from sqlalchemy import or_, select, text
from sqlalchemy.ext.asyncio import AsyncSession

from backend.tracking import arrival, copy_rows
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
    """Split indexed points into acceptable ones, in time order, and refusals (time window,
    batch duplicates)."""
    earliest, latest = now - MAX_AGE, now + MAX_FUTURE
    times = [point.recorded_at for _, point in points]
    if (
        times
        and all(a < b for a, b in pairwise(times))
        and earliest <= times[0]
        and times[-1] <= latest
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
    kept.sort(key=lambda item: item[1].recorded_at)
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


@dataclass(slots=True)
class Batch:
    """One caller's points on their way to storage: through ``policy_filter`` already, so
    distinct instants in time order (the first is the oldest, the last the newest)."""

    organization_id: uuid.UUID
    user_id: uuid.UUID
    time_zone: str
    device_id: uuid.UUID | None
    points: list[Point]
    now: datetime


# Before the points of batches are written, one statement keeps the batches whose points may
# be written (one shift covers the batch, unless the caller filtered by shift already, and the
# day partitions exist), makes the newest fix of those the user's latest position unless a newer
# one is there, announces each to the live stream and returns the worker's visits near it for
# the arrival hints. A batch it does not return takes the long way (``store_many``).
_READY = f"""
WITH batch AS (
    SELECT * FROM unnest(
        $1::int[], $2::uuid[], $3::uuid[],
        $4::timestamptz[], $5::timestamptz[],
        $6::float8[], $7::float8[], $8::float4[],
        $9::float4[], $10::float4[], $11::float4[],
        $12::boolean[], $13::text[], $14::text[],
        $15::text[], $16::boolean[], $17::timestamptz[],
        $18::timestamptz[], $19::float8[]
    ) AS b(n, org_id, user_id, first, last, lat, lon, accuracy, speed, heading, battery, mocked,
           activity, channel, payload, hints, since, until, reach)
), ready AS MATERIALIZED (
    SELECT b.* FROM batch b
    WHERE NOT EXISTS (SELECT 1 FROM unnest($20::text[]) AS p(name)
                      WHERE to_regclass(p.name) IS NULL)
      AND (NOT $21::boolean OR EXISTS (
                SELECT 1 FROM shifts s
                WHERE s.user_id = b.user_id AND s.started_at <= b.first
                  AND (s.ended_at IS NULL OR s.ended_at >= b.last)))
), latest AS (
    INSERT INTO latest_positions AS lp (user_id, organization_id, recorded_at, lat, lon, location,
                                        accuracy_m, speed_mps, heading_deg, battery_pct, mocked,
                                        activity)
    SELECT DISTINCT ON (user_id) user_id, org_id, last, lat, lon,
           ST_SetSRID(ST_MakePoint(lon, lat), 4326)::geography, accuracy, speed, heading,
           battery, mocked, activity
    FROM ready ORDER BY user_id, last DESC
    ON CONFLICT (user_id) DO UPDATE SET
        organization_id = excluded.organization_id, recorded_at = excluded.recorded_at,
        lat = excluded.lat, lon = excluded.lon, location = excluded.location,
        accuracy_m = excluded.accuracy_m, speed_mps = excluded.speed_mps,
        heading_deg = excluded.heading_deg, battery_pct = excluded.battery_pct,
        mocked = excluded.mocked, activity = excluded.activity
    WHERE lp.recorded_at < excluded.recorded_at
)
SELECT b.n, pg_notify(b.channel, b.payload) AS announced,
       near.ids, near.titles, near.statuses, near.distances
FROM ready b LEFT JOIN LATERAL (
    SELECT array_agg(c.id ORDER BY c.distance_m) AS ids,
           array_agg(c.title ORDER BY c.distance_m) AS titles,
           array_agg(c.status ORDER BY c.distance_m) AS statuses,
           array_agg(c.distance_m ORDER BY c.distance_m) AS distances
    FROM ({arrival.CANDIDATES_SQL}) c
    WHERE b.hints
) near ON true
"""

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
_SAVEPOINT = "fieldcrm_pings"
# The statements of a store in generic plans: planning ``_READY`` (CTEs, a LATERAL join, PostGIS)
# took three times as long as running it, and its plan does not depend on the values. It also
# begins the session's transaction in PostgreSQL, which the statements sent past SQLAlchemy
# (``_READY``, the COPY and its savepoint) need.
_GENERIC_PLANS = text("SET LOCAL plan_cache_mode = force_generic_plan")
_POINTS_JSON = msgspec.json.Encoder()


def _days(batches: list[Batch]) -> list[date]:
    """The days (partitions) the batches' points fall on."""
    days: set[date] = set()
    for b in batches:
        days.update(days_between(b.points[0].recorded_at, b.points[-1].recorded_at))
    return sorted(days)


async def _ready(
    session: AsyncSession, batches: list[Batch], *, check_shift: bool
) -> dict[int, list[arrival.Candidate]]:
    """Run ``_READY``: the indexes of the batches that may be written, with their visits near
    the newest fix (nearest first)."""
    newest = [b.points[-1] for b in batches]
    firsts = [b.points[0].recorded_at for b in batches]
    windows = [arrival.window(p, b.now) for p, b in zip(newest, batches, strict=True)]
    raw = await (await session.connection()).get_raw_connection()
    connection: Any = raw.driver_connection  # inside the transaction store_many began
    rows = await connection.fetch(
        _READY,
        list(range(len(batches))),
        [b.organization_id for b in batches],
        [b.user_id for b in batches],
        firsts,
        [p.recorded_at for p in newest],
        [p.lat for p in newest],
        [p.lon for p in newest],
        [p.accuracy_m for p in newest],
        [p.speed_mps for p in newest],
        [p.heading_deg for p in newest],
        [p.battery_pct for p in newest],
        [p.mocked for p in newest],
        [p.activity for p in newest],
        [channel_of(b.organization_id) for b in batches],
        [position_payload(b.user_id, p) for b, p in zip(batches, newest, strict=True)],
        [arrival.wanted(p) for p in newest],
        [w[0] for w in windows],
        [w[1] for w in windows],
        [w[2] for w in windows],
        [partition_name(d) for d in _days(batches)],
        check_shift,
    )
    return {
        row["n"]: [
            arrival.Candidate(*values)
            for values in zip(
                row["ids"] or [],
                row["titles"] or [],
                row["statuses"] or [],
                row["distances"] or [],
                strict=True,
            )
        ]
        for row in rows
    }


async def _copy_in(connection: Any, data: bytes) -> None:
    async def chunks() -> Any:
        yield data

    await connection.copy_to_table(
        "pings", source=chunks(), columns=copy_rows.COLUMNS, format="binary"
    )


async def _write(session: AsyncSession, batches: list[Batch]) -> list[int]:
    """Insert the batches' points; returns how many of each were new. One binary COPY in a
    savepoint costs PostgreSQL a fraction of an INSERT; when a point was stored before (a
    resend), the savepoint is rolled back and ``_INSERT`` skips, batch by batch, the points
    stored before."""
    raw = await (await session.connection()).get_raw_connection()
    connection: Any = raw.driver_connection  # asyncpg's, inside the session's transaction
    data = copy_rows.encode(
        (copy_rows.batch_prefix(b.organization_id, b.user_id, b.device_id, b.now), b.points)
        for b in batches
    )
    await connection.execute(f"SAVEPOINT {_SAVEPOINT}")
    try:
        await _copy_in(connection, data)
    except asyncpg.UniqueViolationError:
        await connection.execute(f"ROLLBACK TO SAVEPOINT {_SAVEPOINT}")
        await connection.execute(f"RELEASE SAVEPOINT {_SAVEPOINT}")
        stored = []
        for b in batches:
            count = await session.scalar(
                _INSERT,
                {
                    "org": str(b.organization_id),
                    "user": str(b.user_id),
                    "device": str(b.device_id) if b.device_id else None,
                    "now": b.now,
                    "points": _POINTS_JSON.encode(b.points).decode(),
                },
            )
            stored.append(int(count or 0))
        return stored
    await connection.execute(f"RELEASE SAVEPOINT {_SAVEPOINT}")
    return [len(b.points) for b in batches]


async def store_many(session: AsyncSession, batches: list[Batch]) -> list[StoreResult]:
    """Store the points of several batches (of one or several users) in the session's
    transaction, with a few statements for all of them; one ``StoreResult`` per batch (its
    ``rejected`` stays empty: ``policy_filter`` ran before)."""
    results = [StoreResult() for _ in batches]
    batches = list(batches)  # the long way replaces a batch by its points inside shifts
    work = [i for i, b in enumerate(batches) if b.points]
    if not work:  # replays, or batches whose every point was refused: nothing to write
        return results
    await session.execute(_GENERIC_PLANS)
    # The usual batch: one shift covers it and its day partitions exist.
    near = await _ready(session, [batches[i] for i in work], check_shift=True)
    ready = {work[k]: rows for k, rows in near.items()}
    slow = [i for i in work if i not in ready]
    for i in slow:  # the long way: point by point against shifts and schedules
        b = batches[i]
        inside = await in_shift_mask(
            session, b.user_id, b.time_zone, [p.recorded_at for p in b.points]
        )
        kept = [p for p, ok in zip(b.points, inside, strict=True) if ok]
        results[i].off_shift = len(b.points) - len(kept)
        batches[i] = replace(b, points=kept)
    slow = [i for i in slow if batches[i].points]
    if slow:
        await ensure_partitions(session, _days([batches[i] for i in slow]))
        near = await _ready(session, [batches[i] for i in slow], check_shift=False)
        ready.update({slow[k]: rows for k, rows in near.items()})
    order = sorted(ready)
    stored = await _write(session, [batches[i] for i in order])
    for i, count in zip(order, stored, strict=True):
        results[i].stored = count
        results[i].duplicates = len(batches[i].points) - count
    for i in order:
        b = batches[i]
        await arrival.send(
            session,
            organization_id=b.organization_id,
            user_id=b.user_id,
            newest=b.points[-1],
            rows=ready[i],
            now=b.now,
        )
    return results


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
    if not kept:
        return StoreResult(rejected=refused)
    batch = Batch(organization_id, user_id, time_zone, device_id, [p for _, p in kept], now)
    (result,) = await store_many(session, [batch])
    result.rejected = refused
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
