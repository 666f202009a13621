"""Arrival and departure hints from the pings (geofences around the sites of a worker's visits).

A hint, not a proof: proof of visit is the check-in (``visits``). When the newest fix of a batch
is within a site's radius (allowing for its accuracy, as ``geo.track.within_geofence`` does) of
one of the worker's open visits planned around now, the worker is told "you have arrived — check
in?"; when the fix is clearly away from the site of a visit in progress, "you left the site
without checking out". Each hint is sent once per task (notification dedupe keys), and mocked or
poor fixes give none. One indexed query per stored batch.
"""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from backend.notifications import services as notifications
from backend.tracking.points import Point
from backend.tracking.policy import POOR_ACCURACY_M, SITE_RADIUS_M

ARRIVAL_KIND = "arrived_at_site"
DEPARTURE_KIND = "left_site"
# Open visits planned this far around now are candidates for an arrival.
PLANNED_AROUND = timedelta(hours=12)
# Beyond the fence plus this margin the worker has clearly left.
DEPARTURE_MARGIN_M = 150.0

_CANDIDATES = text("""
SELECT t.id, t.title, t.status,
       ST_Distance(si.location, ST_MakePoint(:lon, :lat)::geography) AS distance_m
FROM tasks t JOIN sites si ON si.id = t.site_id
WHERE t.organization_id = :org AND t.assignee_id = :user
  AND t.kind IN ('measurement', 'installation', 'visit')
  AND (t.status = 'in_progress'
       OR (t.status = 'open'
           AND coalesce(t.window_start, t.due_at) BETWEEN :since AND :until
           AND ST_DWithin(si.location, ST_MakePoint(:lon, :lat)::geography, :reach)))
ORDER BY distance_m
LIMIT 20
""")


async def detect(
    session: AsyncSession,
    *,
    organization_id: uuid.UUID,
    user_id: uuid.UUID,
    newest: Point,
    now: datetime,
) -> list[str]:
    """Send the hints the newest fix implies; returns the notification kinds sent."""
    if newest.mocked or newest.accuracy_m is None or newest.accuracy_m > POOR_ACCURACY_M:
        return []
    allowance = min(newest.accuracy_m, SITE_RADIUS_M)
    rows = (
        await session.execute(
            _CANDIDATES,
            {
                "org": organization_id,
                "user": user_id,
                "lat": newest.lat,
                "lon": newest.lon,
                "since": now - PLANNED_AROUND,
                "until": now + PLANNED_AROUND,
                "reach": SITE_RADIUS_M + allowance,
            },
        )
    ).all()
    sent: list[str] = []
    arrived = next((r for r in rows if r.status == "open"), None)
    if arrived is not None and await notifications.notify(
        session,
        organization_id=organization_id,
        user_id=user_id,
        kind=ARRIVAL_KIND,
        title=f"You are at the site of “{arrived.title}”: check in?",
        dedupe_key=f"arrival:{arrived.id}",
        now=now,
        link=f"/tasks/{arrived.id}",
        data={"taskId": str(arrived.id), "distanceM": round(arrived.distance_m, 1)},
    ):
        sent.append(ARRIVAL_KIND)
    far = SITE_RADIUS_M + newest.accuracy_m + DEPARTURE_MARGIN_M
    left = [r for r in rows if r.status == "in_progress" and r.distance_m > far]
    for row in left:
        if await notifications.notify(
            session,
            organization_id=organization_id,
            user_id=user_id,
            kind=DEPARTURE_KIND,
            title=f"You left the site of “{row.title}” without checking out",
            dedupe_key=f"departure:{row.id}",
            now=now,
            link=f"/tasks/{row.id}",
            data={"taskId": str(row.id), "distanceM": round(row.distance_m, 1)},
        ):
            sent.append(DEPARTURE_KIND)
    return sent
