"""Storing GPS points: policy checks, shift filter, bulk insert, latest position.

Every path (the JSON batch API, the OsmAnd/Traccar protocol, the browser) ends in ``store``:
1. policy: not more than 5 minutes in the future, not older than 7 days, one point per instant
   in a batch — refused points are listed with the reason, the others go on;
2. shifts: points outside the user's shifts (an open or past shift, or a scheduled window) are
   not stored, only counted (location outside work is not ours to keep);
3. one ``INSERT ... SELECT FROM json_to_recordset(...)`` per batch into the day partitions,
   ``ON CONFLICT DO NOTHING`` on (user, fix time): a resent point is stored once;
4. the user's latest position is upserted when the batch holds a newer fix, announced to the
   live stream, and checked against the sites of the user's visits (``arrival`` hints).

Steps 2 to 4 are one statement in the usual case (one shift covers the whole batch, its day
partitions exist): a round trip per statement costs both processes more than the statement.
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


# One statement per batch: the points travel as one JSON text (PostgreSQL parses it in C; no
# per-value work in Python), are inserted into their day partitions, and the newest becomes the
# user's latest position unless a newer one is already there; it is announced to the live
# stream and the worker's visits near it are returned for the arrival hints. All of it only when
# ``ready``: one shift covers the batch (unless the caller filtered by shift already) and the day
# partitions exist; else the caller takes the long way and runs it again.
_STORE = text(f"""
WITH ready AS MATERIALIZED (
    SELECT (NOT CAST(:check_shift AS boolean) OR EXISTS (
                SELECT 1 FROM shifts s
                WHERE s.user_id = CAST(:user AS uuid)
                  AND s.started_at <= CAST(:first AS timestamptz)
                  AND (s.ended_at IS NULL OR s.ended_at >= CAST(:last AS timestamptz))))
       AND NOT EXISTS (SELECT 1 FROM unnest(CAST(:partitions AS text[])) AS n
                       WHERE to_regclass(n) IS NULL) AS ok
), p AS (
    SELECT timestamp AS recorded_at, lat, lon, accuracy AS accuracy_m, speed AS speed_mps,
           heading AS heading_deg, altitude AS altitude_m, battery AS battery_pct, mocked,
           activity
    FROM json_to_recordset(CAST(:points AS json)) AS p(
        timestamp timestamptz, lat float8, lon float8, accuracy float4, speed float4,
        heading float4, altitude float4, battery float4, mocked boolean, activity text)
    WHERE (SELECT ok FROM ready)
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
), near AS (
    SELECT * FROM ({arrival.CANDIDATES_SQL}) c
    WHERE (SELECT ok FROM ready) AND CAST(:hints AS boolean)
)
SELECT ready.ok, (SELECT count(*) FROM ins) AS stored,
       CASE WHEN ready.ok THEN pg_notify(:channel, :payload) END AS announced,
       (SELECT array_agg(near.id ORDER BY near.distance_m) FROM near) AS near_ids,
       (SELECT array_agg(near.title ORDER BY near.distance_m) FROM near) AS near_titles,
       (SELECT array_agg(near.status ORDER BY near.distance_m) FROM near) AS near_statuses,
       (SELECT array_agg(near.distance_m ORDER BY near.distance_m) FROM near) AS near_m
FROM ready
""")

_POINTS_JSON = msgspec.json.Encoder()


@dataclass(frozen=True, slots=True)
class _Stored:
    """What the store statement did: nothing unless ``ready``."""

    ready: bool
    stored: int
    near: list[arrival.Candidate]


async def _store(
    session: AsyncSession,
    *,
    organization_id: uuid.UUID,
    user_id: uuid.UUID,
    device_id: uuid.UUID | None,
    work: list[Point],
    now: datetime,
    check_shift: bool,
) -> tuple[_Stored, Point]:
    """Run the store statement for ``work`` (in time order or not); also returns the newest."""
    oldest = min(work, key=lambda p: p.recorded_at)
    newest = max(work, key=lambda p: p.recorded_at)
    row = (
        await session.execute(
            _STORE,
            {
                "org": str(organization_id),
                "user": str(user_id),
                "device": str(device_id) if device_id else None,
                "now": now,
                "points": _POINTS_JSON.encode(work).decode(),
                "check_shift": check_shift,
                "first": oldest.recorded_at,
                "last": newest.recorded_at,
                "partitions": [
                    partition_name(d) for d in days_between(oldest.recorded_at, newest.recorded_at)
                ],
                "channel": channel_of(organization_id),
                "payload": position_payload(user_id, newest),
                "hints": arrival.wanted(newest),
                **arrival.parameters(newest, now),
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
    return _Stored(bool(row.ok), int(row.stored), near), newest


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

    async def attempt(work: list[Point], check_shift: bool) -> tuple[_Stored, Point]:
        return await _store(
            session,
            organization_id=organization_id,
            user_id=user_id,
            device_id=device_id,
            work=work,
            now=now,
            check_shift=check_shift,
        )

    # The usual batch: one shift covers it and its day partitions exist; one statement.
    work = [p for _, p in kept]
    done, newest = await attempt(work, check_shift=True)
    if not done.ready:  # the long way: point by point against shifts and schedules
        inside = await in_shift_mask(session, user_id, time_zone, [p.recorded_at for p in work])
        work = [p for p, ok in zip(work, inside, strict=True) if ok]
        result.off_shift = len(kept) - len(work)
        if not work:
            return result
        days = days_between(min(p.recorded_at for p in work), max(p.recorded_at for p in work))
        await ensure_partitions(session, days)
        done, newest = await attempt(work, check_shift=False)
    result.stored = done.stored
    result.duplicates = len(work) - done.stored
    await arrival.send(
        session,
        organization_id=organization_id,
        user_id=user_id,
        newest=newest,
        rows=done.near,
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
