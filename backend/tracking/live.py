"""Live team status: where each visible worker is and what they are doing, as GeoJSON.

Who may look (privacy): admins see their organisation's field staff, managers the members of
the teams they lead, a worker only themself. Every look at other people's positions is written
to the audit log (entity ``location``): one entry per team looked at (``entity_id`` the team),
or for an admin's look at everyone, the organisation — so a worker can find every look that
covered them (``mydata``) without each look storing thousands of ids.

Status of a worker, in this order: ``off_shift`` (no shift in progress), ``offline`` (nothing
heard for 10 minutes), ``on_site`` (a task in progress and within its site's radius),
``driving`` (speed ≥ 2 m/s), else ``idle``. One SQL statement answers for the whole team and
writes the audit entries; it runs on the session's asyncpg connection directly and the GeoJSON is
encoded by msgspec (for thousands of workers the ORM's row handling and PostgreSQL's
``json_build_object`` each cost more than the query itself).
"""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta
from typing import Any

import msgspec
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from backend.accounts.models import Role
from backend.lib.errors import NotFound
from backend.lib.tenancy import Actor
from backend.tracking.policy import SITE_RADIUS_M

OFFLINE_AFTER = timedelta(minutes=10)
DRIVING_MPS = 2.0
# The next task is the first open visit planned from 12 hours ago to two weeks ahead.
NEXT_FROM = timedelta(hours=12)
NEXT_UNTIL = timedelta(days=14)

_LIVE_SQL = """
WITH who AS (
    SELECT u.id, u.full_name FROM users u
    WHERE u.organization_id = $1 AND u.is_active AND u.role = 'field'
      AND ($2::boolean OR u.id = ANY($3::uuid[]))
), cur AS (
    SELECT DISTINCT ON (t.assignee_id) t.assignee_id, t.id, t.title, t.site_id
    FROM tasks t
    WHERE t.organization_id = $1 AND t.status = 'in_progress'
    ORDER BY t.assignee_id, t.started_at DESC NULLS LAST
), nxt AS (
    SELECT DISTINCT ON (t.assignee_id) t.assignee_id, t.id, t.title,
           coalesce(t.window_start, t.due_at) AS starts
    FROM tasks t
    WHERE t.organization_id = $1 AND t.status = 'open'
      AND t.kind IN ('measurement', 'installation', 'visit')
      AND coalesce(t.window_start, t.due_at) BETWEEN $6::timestamptz AND $7::timestamptz
    ORDER BY t.assignee_id, coalesce(t.window_start, t.due_at)
), rows AS (
    SELECT w.id, w.full_name, lp.recorded_at, round(lp.lat::numeric, 6)::float8 AS lat,
           round(lp.lon::numeric, 6)::float8 AS lon, lp.accuracy_m, lp.speed_mps,
           lp.heading_deg, lp.battery_pct, lp.mocked, cur.id AS current_id,
           cur.title AS current_title, nxt.id AS next_id, nxt.title AS next_title,
           nxt.starts AS next_starts,
           CASE
             WHEN s.user_id IS NULL THEN 'off_shift'
             WHEN lp.recorded_at IS NULL OR lp.recorded_at < $5::timestamptz THEN 'offline'
             WHEN cur.id IS NOT NULL AND ST_Distance(si.location, lp.location)
                  <= $8::float8 + least(coalesce(lp.accuracy_m, 0), $8::float8) THEN 'on_site'
             WHEN coalesce(lp.speed_mps, 0) >= $9::float8 THEN 'driving'
             ELSE 'idle'
           END AS status
    FROM who w
    LEFT JOIN shifts s ON s.user_id = w.id AND s.ended_at IS NULL
    LEFT JOIN latest_positions lp ON lp.user_id = w.id
    LEFT JOIN cur ON cur.assignee_id = w.id
    LEFT JOIN sites si ON si.id = cur.site_id
    LEFT JOIN nxt ON nxt.assignee_id = w.id
), seen AS (
    SELECT count(*) AS n FROM rows WHERE id <> $4::uuid
), scope AS (
    SELECT $10::uuid AS id, 'team' AS kind WHERE $10::uuid IS NOT NULL
    UNION ALL
    SELECT $1::uuid, 'organization' WHERE $10::uuid IS NULL AND $11::boolean
    UNION ALL
    SELECT t.id, 'team' FROM teams t
    WHERE $10::uuid IS NULL AND NOT $11::boolean AND t.organization_id = $1 AND t.lead_id = $4
), audit AS (
    INSERT INTO audit_log (organization_id, entity, entity_id, action, actor_id, at, changes)
    SELECT $1, 'location', scope.id, 'viewed_live', $4, $12::timestamptz,
           jsonb_build_object('scope', scope.kind, 'workers', seen.n)
    FROM scope, seen WHERE seen.n > 0
)
SELECT id, full_name, recorded_at, lat, lon, accuracy_m, speed_mps, heading_deg, battery_pct,
       mocked, current_id, current_title, next_id, next_title, next_starts, status
FROM rows ORDER BY full_name, id
"""

_ENCODER = msgspec.json.Encoder()


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


async def live_json(
    session: AsyncSession, actor: Actor, now: datetime, team_id: uuid.UUID | None
) -> bytes:
    """The GeoJSON FeatureCollection of the visible workers (with or without a position), as
    JSON; the look at other people's positions is audited in the same statement."""
    if team_id is not None:
        ids: list[uuid.UUID] | None = await _team_members(session, actor, team_id)
    elif actor.role is Role.ADMIN:
        ids = None
    else:
        ids = sorted(actor.visible_owner_ids() or {actor.user_id})
    if team_id is None:  # (with a team, _team_members has run a statement already)
        # The driver connection below bypasses SQLAlchemy, which begins its transaction lazily
        # on its first statement: make sure it has, so that the audit entry commits (or rolls
        # back) with the request.
        await session.execute(text("SELECT 1"))
    connection = await (await session.connection()).get_raw_connection()
    rows = await connection.driver_connection.fetch(  # type: ignore[union-attr]
        _LIVE_SQL,
        actor.organization_id,
        ids is None,
        ids or [],
        actor.user_id,
        now - OFFLINE_AFTER,
        now - NEXT_FROM,
        now + NEXT_UNTIL,
        SITE_RADIUS_M,
        DRIVING_MPS,
        team_id,
        actor.role is Role.ADMIN,
        now,
    )
    features = [
        {
            "type": "Feature",
            "id": r[0],
            "geometry": None if r[3] is None else {"type": "Point", "coordinates": (r[4], r[3])},
            "properties": {
                "userId": r[0],
                "name": r[1],
                "status": r[15],
                "lastSeen": r[2],
                "accuracy": r[5],
                "speed": r[6],
                "heading": r[7],
                "battery": r[8],
                "mocked": r[9],
                "currentTask": None if r[10] is None else {"id": r[10], "title": r[11]},
                "nextTask": None
                if r[12] is None
                else {"id": r[12], "title": r[13], "startsAt": r[14]},
            },
        }
        for r in rows
    ]
    return _ENCODER.encode({"type": "FeatureCollection", "features": features, "generatedAt": now})


async def live(
    session: AsyncSession, actor: Actor, now: datetime, team_id: uuid.UUID | None
) -> dict[str, Any]:
    """``live_json`` decoded, for callers that read it (the team board, the stream's snapshot)."""
    decoded: dict[str, Any] = msgspec.json.decode(await live_json(session, actor, now, team_id))
    return decoded
