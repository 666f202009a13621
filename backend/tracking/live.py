"""Live team status: where each visible worker is and what they are doing, as GeoJSON.

Who may look (privacy): admins see their organisation's field staff, managers the members of
the teams they lead, a worker only themself. Every look at other people's positions is written
to the audit log (entity ``location``), with the ids of the people seen.

Status of a worker, in this order: ``off_shift`` (no shift in progress), ``offline`` (nothing
heard for 10 minutes), ``on_site`` (a task in progress and within its site's radius),
``driving`` (speed ≥ 2 m/s), else ``idle``. One SQL statement answers for the whole team.
"""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from backend.accounts.models import Role
from backend.audit import services as audit
from backend.lib.errors import NotFound
from backend.lib.tenancy import Actor
from backend.tracking.policy import SITE_RADIUS_M

OFFLINE_AFTER = timedelta(minutes=10)
DRIVING_MPS = 2.0

_LIVE_SQL = text("""
SELECT u.id, u.full_name, lp.recorded_at, lp.lat, lp.lon, lp.accuracy_m, lp.speed_mps,
       lp.heading_deg, lp.battery_pct, lp.mocked, (s.id IS NOT NULL) AS on_shift,
       cur.id AS current_id, cur.title AS current_title, cur.distance_m AS current_distance,
       nxt.id AS next_id, nxt.title AS next_title, nxt.starts AS next_starts
FROM users u
LEFT JOIN latest_positions lp ON lp.user_id = u.id
LEFT JOIN shifts s ON s.user_id = u.id AND s.ended_at IS NULL
LEFT JOIN LATERAL (
    SELECT t.id, t.title, ST_Distance(si.location, lp.location) AS distance_m
    FROM tasks t LEFT JOIN sites si ON si.id = t.site_id
    WHERE t.organization_id = :org AND t.assignee_id = u.id AND t.status = 'in_progress'
    ORDER BY t.started_at DESC NULLS LAST LIMIT 1
) cur ON true
LEFT JOIN LATERAL (
    SELECT t.id, t.title, coalesce(t.window_start, t.due_at) AS starts
    FROM tasks t
    WHERE t.organization_id = :org AND t.assignee_id = u.id AND t.status = 'open'
      AND t.kind IN ('measurement', 'installation', 'visit')
    ORDER BY coalesce(t.window_start, t.due_at) NULLS LAST LIMIT 1
) nxt ON true
WHERE u.organization_id = :org AND u.is_active AND u.role = 'field'
  AND (CAST(:all AS boolean) OR u.id = ANY(CAST(:ids AS uuid[])))
ORDER BY u.full_name, u.id
""")


def status_of(row: Any, now: datetime) -> str:
    """The worker's status from their row (see the module docstring)."""
    if not row.on_shift:
        return "off_shift"
    if row.recorded_at is None or now - row.recorded_at > OFFLINE_AFTER:
        return "offline"
    near = SITE_RADIUS_M + min(row.accuracy_m or 0.0, SITE_RADIUS_M)
    distance = row.current_distance
    if row.current_id is not None and distance is not None and distance <= near:
        return "on_site"
    if (row.speed_mps or 0.0) >= DRIVING_MPS:
        return "driving"
    return "idle"


async def _team_members(session: AsyncSession, actor: Actor, team_id: uuid.UUID) -> list[uuid.UUID]:
    rows = await session.execute(
        text(
            "SELECT m.user_id, t.lead_id FROM teams t JOIN team_members m ON m.team_id = t.id"
            " WHERE t.id = :team AND t.organization_id = :org"
        ),
        {"team": team_id, "org": actor.organization_id},
    )
    found = rows.all()
    if not found:
        exists = await session.scalar(
            text("SELECT count(*) FROM teams WHERE id = :team AND organization_id = :org"),
            {"team": team_id, "org": actor.organization_id},
        )
        if not exists:
            raise NotFound("Team not found")
        return []
    lead = found[0][1]
    if actor.role is not Role.ADMIN and lead != actor.user_id:
        raise NotFound("Team not found")
    return [r[0] for r in found]


async def live(
    session: AsyncSession, actor: Actor, now: datetime, team_id: uuid.UUID | None
) -> dict[str, Any]:
    """A GeoJSON FeatureCollection of the visible workers (with or without a position)."""
    if team_id is not None:
        ids: list[uuid.UUID] | None = await _team_members(session, actor, team_id)
    elif actor.role is Role.ADMIN:
        ids = None
    else:
        ids = sorted(actor.visible_owner_ids() or {actor.user_id})
    rows = (
        await session.execute(
            _LIVE_SQL,
            {"org": actor.organization_id, "all": ids is None, "ids": ids or []},
        )
    ).all()
    features = []
    for row in rows:
        geometry = (
            {"type": "Point", "coordinates": [round(row.lon, 6), round(row.lat, 6)]}
            if row.lat is not None
            else None
        )
        features.append(
            {
                "type": "Feature",
                "id": str(row.id),
                "geometry": geometry,
                "properties": {
                    "userId": str(row.id),
                    "name": row.full_name,
                    "status": status_of(row, now),
                    "lastSeen": row.recorded_at.isoformat() if row.recorded_at else None,
                    "accuracy": row.accuracy_m,
                    "speed": row.speed_mps,
                    "heading": row.heading_deg,
                    "battery": row.battery_pct,
                    "mocked": row.mocked,
                    "currentTask": (
                        {"id": str(row.current_id), "title": row.current_title}
                        if row.current_id
                        else None
                    ),
                    "nextTask": (
                        {
                            "id": str(row.next_id),
                            "title": row.next_title,
                            "startsAt": row.next_starts.isoformat() if row.next_starts else None,
                        }
                        if row.next_id
                        else None
                    ),
                },
            }
        )
    seen = [f["id"] for f in features if f["id"] != str(actor.user_id)]
    if seen:
        await audit.record(
            session,
            organization_id=actor.organization_id,
            entity="location",
            entity_id=team_id or actor.organization_id,
            action="viewed_live",
            actor_id=actor.user_id,
            at=now,
            changes={"users": [None, seen]},
        )
    return {"type": "FeatureCollection", "features": features, "generatedAt": now.isoformat()}
