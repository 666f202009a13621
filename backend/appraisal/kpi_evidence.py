"""The evidence behind a person's KPIs for a period: which visits were done, which arrivals
were late, which check-ins were not verified, which tasks fell overdue or missed their deadline,
which won deals were credited — newest first, cursor-paginated, each with a link.

Each list uses the same rules as the roll-ups (``backend.appraisal.field_rollups``), so its
length is the number on the scorecard: ``late`` = arrivals judged − on time, ``unverified`` =
check-ins − verified, ``sla-missed`` = judged − met, ``overdue`` = tasks overdue,
``visits`` = visits done, ``deals`` = the deals behind revenue won.
"""

from __future__ import annotations

import uuid
from datetime import date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from backend.appraisal import kpis as kpi
from backend.appraisal.field_rollups import ETA_GRACE, FIRST_CHECK_IN, promise_sql
from backend.appraisal.kpi_schemas import Evidence
from backend.lib.errors import NotFound
from backend.lib.pagination import Page, decode_cursor, page_of
from backend.lib.tenancy import Actor

VISITS = "('measurement', 'installation', 'visit')"

_QUERIES: dict[str, str] = {
    "visits": f"""
SELECT k.id, k.id AS task_id, k.kind::text AS kind, k.title, k.completed_at AS at,
  NULL::timestamptz AS ref,
  coalesce(k.outcome, '') AS note
FROM tasks k WHERE k.organization_id = :org AND k.assignee_id = :user AND k.status = 'done'
 AND k.kind IN {VISITS} AND k.completed_at >= :t0 AND k.completed_at < :t1""",
    "late": f"""
SELECT k.id, k.id AS task_id, k.kind::text AS kind, k.title, c.at, p.promised AS ref, '' AS note
FROM check_ins c JOIN tasks k ON k.id = c.task_id
CROSS JOIN LATERAL (SELECT {promise_sql(":tz")} AS promised) p
WHERE c.organization_id = :org AND c.user_id = :user AND c.kind = 'in'
 AND c.at >= :t0 AND c.at < :t1 AND {FIRST_CHECK_IN} AND c.at > p.promised""",
    "unverified": """
SELECT c.id, k.id AS task_id, k.kind::text AS kind, k.title, c.at, NULL::timestamptz AS ref,
  c.status::text || CASE WHEN cardinality(c.flags) > 0
    THEN ' (' || array_to_string(c.flags, ', ') || ')' ELSE '' END AS note
FROM check_ins c JOIN tasks k ON k.id = c.task_id
WHERE c.organization_id = :org AND c.user_id = :user AND c.kind = 'in'
 AND c.at >= :t0 AND c.at < :t1 AND c.status <> 'verified'""",
    "overdue": """
SELECT k.id, k.id AS task_id, k.kind::text AS kind, k.title, k.due_at AS at, k.completed_at AS ref,
  k.status::text AS note
FROM tasks k WHERE k.organization_id = :org AND k.assignee_id = :user
 AND k.due_at >= :t0 AND k.due_at < :t1 AND k.due_at <= :now AND k.status <> 'cancelled'
 AND (k.completed_at IS NULL OR k.completed_at > k.due_at)""",
    "sla-missed": """
SELECT k.id, k.id AS task_id, k.kind::text AS kind, k.title, k.completed_at AS at,
  k.due_at AS ref, '' AS note
FROM tasks k WHERE k.organization_id = :org AND k.assignee_id = :user AND k.status = 'done'
 AND k.due_at IS NOT NULL AND k.completed_at >= :t0 AND k.completed_at < :t1
 AND k.completed_at > k.due_at""",
    "deals": """
SELECT d.id, NULL::uuid AS task_id, 'deal' AS kind, d.title, d.closed_at AS at,
  NULL::timestamptz AS ref,
  f.amount::text || ' ' || d.currency AS note
FROM field_deal_credits f JOIN deals d ON d.id = f.deal_id
WHERE f.organization_id = :org AND f.user_id = :user AND f.day BETWEEN :d0 AND :d1""",
}

KINDS = tuple(_QUERIES)


def _detail(kind: str, row: Any, zone: ZoneInfo) -> str:
    def hm(moment: datetime | None) -> str:
        return moment.astimezone(zone).strftime("%Y-%m-%d %H:%M") if moment else "—"

    if kind == "late":
        minutes = int((row.at - row.ref).total_seconds() // 60)
        return f"arrived {hm(row.at)}, promised by {hm(row.ref)} ({minutes} min late)"
    if kind == "overdue":
        if row.ref is None:
            return f"due {hm(row.at)}, still {row.note.replace('_', ' ')}"
        return f"due {hm(row.at)}, done {hm(row.ref)}"
    if kind == "sla-missed":
        minutes = int((row.at - row.ref).total_seconds() // 60)
        return f"due {hm(row.ref)}, done {hm(row.at)} ({minutes} min after)"
    if kind == "unverified":
        return f"check-in {hm(row.at)}: {row.note}"
    if kind == "deals":
        return f"won {hm(row.at)}: {row.note}"
    return f"done {hm(row.at)}" + (f": {row.note}" if row.note else "")


def _link(row: Any) -> str:
    if row.task_id is None:
        return f"/api/v1/deals/{row.id}"
    return f"/api/v1/tasks/{row.task_id}"


async def evidence(
    session: AsyncSession,
    actor: Actor,
    user_id: uuid.UUID,
    kind: str,
    date_from: date,
    date_to: date,
    now: datetime,
    limit: int,
    cursor: str | None,
) -> Page[Evidence]:
    """One page of the items behind a visible person's KPI, newest first."""
    if kind not in _QUERIES:
        raise NotFound(f"No evidence list {kind!r}; one of {', '.join(KINDS)}")
    kpi.check_period(date_from, date_to)
    user = await kpi.visible_person(session, actor, user_id)
    zone = ZoneInfo(user.time_zone)
    params: dict[str, Any] = {
        "org": user.organization_id,
        "user": user.id,
        "t0": datetime.combine(date_from, time(), tzinfo=zone),
        "t1": datetime.combine(date_to + timedelta(days=1), time(), tzinfo=zone),
        "d0": date_from,
        "d1": date_to,
        "now": now,
        "tz": user.time_zone,
        "grace": ETA_GRACE,
        "limit": limit + 1,
    }
    where = ""
    if cursor:
        moment, ident = decode_cursor(cursor, (datetime, uuid.UUID))
        where = "WHERE (x.at, x.id) < (:c_at, :c_id)"
        params.update(c_at=moment, c_id=ident)
    inner = _QUERIES[kind]
    rows = (
        await session.execute(
            text(f"SELECT * FROM ({inner}) x {where} ORDER BY x.at DESC, x.id DESC LIMIT :limit"),
            params,
        )
    ).all()
    items = [
        Evidence(
            id=row.id,
            kind=row.kind,
            title=row.title,
            at=row.at,
            detail=_detail(kind, row, zone),
            link=_link(row),
        )
        for row in rows
    ]
    return page_of(items, limit, lambda e: [e.at.isoformat() if e.at else None, str(e.id)])
