"""Arrival and departure hints from the pings (geofences around the sites of a worker's visits).

A hint, not a proof: proof of visit is the check-in (``visits``). When the newest fix of a batch
is within a site's radius (allowing for its accuracy, as ``geo.track.within_geofence`` does) of
one of the worker's open visits planned around now, the worker is told "you have arrived — check
in?"; when the fix is clearly away from the site of a visit in progress, "you left the site
without checking out". Each hint is sent once per task (notification dedupe keys), and mocked or
poor fixes give none. The candidates come from one indexed query, which ingest runs inside its
store statement (``CANDIDATES_SQL``, with ``window``); ``send`` decides on them.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta

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

# The visits near the newest fix of a batch ``b`` (columns org_id, user_id, lat, lon, since,
# until, reach — see ``window``), for a LATERAL join over the batches of a store.
CANDIDATES_SQL = """
SELECT t.id, t.title, t.status::text AS status,
       ST_Distance(si.location, ST_MakePoint(b.lon, b.lat)::geography) AS distance_m
FROM tasks t JOIN sites si ON si.id = t.site_id
WHERE t.organization_id = b.org_id AND t.assignee_id = b.user_id
  AND t.kind IN ('measurement', 'installation', 'visit')
  AND (t.status = 'in_progress'
       OR (t.status = 'open'
           AND coalesce(t.window_start, t.due_at) BETWEEN b.since AND b.until
           AND ST_DWithin(si.location, ST_MakePoint(b.lon, b.lat)::geography, b.reach)))
ORDER BY distance_m
LIMIT 20
"""


@dataclass(frozen=True, slots=True)
class Candidate:
    """A visit of the worker near (open) or in progress, and how far its site is."""

    id: uuid.UUID
    title: str
    status: str
    distance_m: float


def wanted(newest: Point) -> bool:
    """Whether a fix can give a hint at all (not mocked, accuracy known and good enough)."""
    return (
        not newest.mocked and newest.accuracy_m is not None and newest.accuracy_m <= POOR_ACCURACY_M
    )


def window(newest: Point, now: datetime) -> tuple[datetime, datetime, float]:
    """``since``, ``until`` and ``reach`` of ``CANDIDATES_SQL`` for a batch's newest fix."""
    allowance = min(newest.accuracy_m or 0.0, SITE_RADIUS_M)
    return now - PLANNED_AROUND, now + PLANNED_AROUND, SITE_RADIUS_M + allowance


async def send(
    session: AsyncSession,
    *,
    organization_id: uuid.UUID,
    user_id: uuid.UUID,
    newest: Point,
    rows: list[Candidate],
    now: datetime,
) -> list[str]:
    """Send the hints the newest fix implies (``rows``: ``CANDIDATES_SQL``'s, nearest first);
    returns the notification kinds sent."""
    if not wanted(newest) or newest.accuracy_m is None:
        return []
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
