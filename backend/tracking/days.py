"""A worker's day from their points: the simplified track with its stops, and the daily summary
kept for appraisal after the raw points are dropped.

Days are the worker's local calendar days (their IANA zone), so a night shift's points belong to
the evening it started on only if it ends before midnight — the summary is per local day.
"""

from __future__ import annotations

import uuid
from datetime import date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import text
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from backend.accounts.services import get_user
from backend.audit import services as audit
from backend.lib.tenancy import Actor
from backend.tracking.ingest import points_between
from backend.tracking.models import DailySummary
from backend.tracking.points import fixes_of
from geo.track import detect_stops, simplify, time_split, to_geojson_line, track_distance_m


def local_day_bounds(day: date, tz: str) -> tuple[datetime, datetime]:
    """[start, end) of a local calendar day as aware instants."""
    zone = ZoneInfo(tz)
    start = datetime.combine(day, time(), tzinfo=zone)
    end = datetime.combine(day + timedelta(days=1), time(), tzinfo=zone)
    return start, end


async def day_track(
    session: AsyncSession, actor: Actor, user_id: uuid.UUID, day: date, now: datetime
) -> dict[str, Any]:
    """GeoJSON of a worker's local day: the simplified line and its stops, with the distance
    and time split. The worker sees their own; managers and admins theirs (audited)."""
    user = await get_user(session, actor, user_id)
    start, end = local_day_bounds(day, user.time_zone)
    fixes = fixes_of(await points_between(session, user.id, start, end))
    stops = detect_stops(fixes)
    split = time_split(fixes, stops)
    features: list[dict[str, Any]] = []
    if len(fixes) >= 2:
        features.append(
            {
                "type": "Feature",
                "geometry": to_geojson_line(simplify(fixes)),
                "properties": {"kind": "track", "points": len(fixes)},
            }
        )
    for stop in stops:
        features.append(
            {
                "type": "Feature",
                "geometry": {"type": "Point", "coordinates": [stop.lon, stop.lat]},
                "properties": {
                    "kind": "stop",
                    "start": stop.start.isoformat(),
                    "end": stop.end.isoformat(),
                    "minutes": round((stop.end - stop.start).total_seconds() / 60, 1),
                },
            }
        )
    if user.id != actor.user_id:
        await audit.record(
            session,
            organization_id=actor.organization_id,
            entity="location",
            entity_id=user.id,
            action="viewed_track",
            actor_id=actor.user_id,
            at=now,
            changes={"day": [None, day.isoformat()]},
        )
    return {
        "type": "FeatureCollection",
        "features": features,
        "properties": {
            "userId": str(user.id),
            "day": day.isoformat(),
            "timeZone": user.time_zone,
            "distanceM": round(track_distance_m(fixes), 1),
            "onSiteS": int(split.on_stop.total_seconds()),
            "drivingS": int(split.driving.total_seconds()),
            "idleS": int(split.idle.total_seconds()),
        },
    }


async def summarize_day(
    session: AsyncSession,
    user_id: uuid.UUID,
    organization_id: uuid.UUID,
    tz: str,
    day: date,
    now: datetime,
) -> DailySummary | None:
    """Compute and store (upsert) one worker's daily summary; None when there are no points."""
    start, end = local_day_bounds(day, tz)
    fixes = fixes_of(await points_between(session, user_id, start, end))
    if not fixes:
        return None
    stops = detect_stops(fixes)
    split = time_split(fixes, stops)
    values = {
        "organization_id": organization_id,
        "points": len(fixes),
        "distance_m": round(track_distance_m(fixes), 1),
        "on_site_s": int(split.on_stop.total_seconds()),
        "driving_s": int(split.driving.total_seconds()),
        "idle_s": int(split.idle.total_seconds()),
        "stops": len(stops),
        "computed_at": now,
    }
    stmt = insert(DailySummary).values(user_id=user_id, day=day, **values)
    await session.execute(
        stmt.on_conflict_do_update(
            index_elements=[DailySummary.user_id, DailySummary.day], set_=values
        )
    )
    return await session.get(DailySummary, (user_id, day), populate_existing=True)


async def summarize_yesterday(session: AsyncSession, now: datetime) -> int:
    """Summaries of every worker's previous local day who has points then; returns how many."""
    rows = (
        await session.execute(
            text(
                "SELECT DISTINCT u.id, u.organization_id, u.time_zone FROM users u"
                " WHERE EXISTS (SELECT 1 FROM pings p WHERE p.user_id = u.id"
                " AND p.recorded_at >= :since)"
            ),
            {"since": now - timedelta(days=2)},
        )
    ).all()
    done = 0
    for user_id, organization_id, tz in rows:
        yesterday = now.astimezone(ZoneInfo(tz)).date() - timedelta(days=1)
        if await summarize_day(session, user_id, organization_id, tz, yesterday, now):
            done += 1
    return done
