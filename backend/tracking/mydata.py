"""Everything tracking recorded about the caller, for the caller: their devices, shifts and
schedule, raw points, check-ins, daily summaries, and who looked at their location and when.

Only ever the caller's own data (there is no user parameter). The period is capped so that one
answer stays small; a longer history is fetched period by period.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import select, text
from sqlalchemy.ext.asyncio import AsyncSession

from backend.lib.errors import InvalidInput
from backend.lib.tenancy import Actor
from backend.tracking import services
from backend.tracking.ingest import points_between
from backend.tracking.models import CheckIn, DailySummary

MAX_PERIOD = timedelta(days=7)

_VIEWS = text("""
SELECT a.at, a.action, a.actor_id, u.full_name
FROM audit_log a LEFT JOIN users u ON u.id = a.actor_id
WHERE a.organization_id = :org AND a.entity = 'location' AND a.at >= :start AND a.at < :end
  AND a.actor_id IS DISTINCT FROM :me
  AND (a.entity_id = :me  -- a look at this worker's track
       OR a.entity_id = :org  -- an admin's look at everyone
       OR a.entity_id IN (SELECT team_id FROM team_members WHERE user_id = :me))  -- at a team
ORDER BY a.at
""")


async def my_data(
    session: AsyncSession, actor: Actor, start: datetime, end: datetime
) -> dict[str, Any]:
    """The caller's tracking data in [start, end) (at most ``MAX_PERIOD``)."""
    if start.tzinfo is None or end.tzinfo is None:
        raise InvalidInput.on("start", "give times with a zone (e.g. 2026-11-24T00:00:00Z)")
    if end <= start:
        raise InvalidInput.on("end", "must be after start")
    if end - start > MAX_PERIOD:
        raise InvalidInput.on("end", "at most 7 days after start; ask period by period")
    me = actor.user_id
    points = await points_between(session, me, start, end)
    check_ins = (
        await session.scalars(
            select(CheckIn)
            .where(CheckIn.user_id == me, CheckIn.at >= start, CheckIn.at < end)
            .order_by(CheckIn.at)
        )
    ).all()
    summaries = (
        await session.scalars(
            select(DailySummary)
            .where(
                DailySummary.user_id == me,
                DailySummary.day >= start.date(),
                DailySummary.day <= end.date(),
            )
            .order_by(DailySummary.day)
        )
    ).all()
    views = (
        await session.execute(
            _VIEWS, {"org": actor.organization_id, "me": me, "start": start, "end": end}
        )
    ).all()
    schedule = await services.get_schedule(session, actor, me)
    return {
        "userId": str(me),
        "start": start.isoformat(),
        "end": end.isoformat(),
        "devices": await services.list_devices(session, actor, own=True),
        "schedule": schedule.schedule,
        "shifts": await services.list_shifts(session, actor, me, start, end),
        "points": [
            {
                "timestamp": p.recorded_at.isoformat(),
                "lat": p.lat,
                "lon": p.lon,
                "accuracy": p.accuracy_m,
                "speed": p.speed_mps,
                "heading": p.heading_deg,
                "altitude": p.altitude_m,
                "battery": p.battery_pct,
                "mocked": p.mocked,
                "activity": p.activity,
            }
            for p in points
        ],
        "checkIns": [
            {
                "taskId": str(c.task_id),
                "kind": c.kind.value,
                "at": c.at.isoformat(),
                "lat": c.lat,
                "lon": c.lon,
                "accuracy": c.accuracy_m,
                "status": c.status.value,
                "flags": list(c.flags),
                "overrideReason": c.override_reason,
            }
            for c in check_ins
        ],
        "dailySummaries": [
            {
                "day": s.day.isoformat(),
                "points": s.points,
                "distanceM": s.distance_m,
                "onSiteS": s.on_site_s,
                "drivingS": s.driving_s,
                "idleS": s.idle_s,
                "stops": s.stops,
            }
            for s in summaries
        ],
        "locationViews": [
            {
                "at": v.at.isoformat(),
                "action": v.action,
                "viewerId": str(v.actor_id) if v.actor_id else None,
                "viewerName": v.full_name,
            }
            for v in views
        ],
    }
