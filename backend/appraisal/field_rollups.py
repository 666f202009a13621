"""Daily field roll-ups: what each worker did each local day, kept current incrementally.

Every field KPI (``backend.appraisal.kpis``) is a sum of per-day counts, so a period and a group
of people add up exactly. One SQL definition (``_metrics_sql``) counts them from the raw tables
for any set of (worker, bucket, time range): the roll-up uses one bucket per local day, the
on-the-fly path (tests, benchmarks' baseline) one bucket for the whole period.

The counts, for a worker and a range of their local days (each event on its local day):
- visits done: their visits (measurement, installation, visit) completed in the range;
- SLA: their tasks with a deadline (``due_at``) completed in the range — met when completed by it;
- overdue: their tasks due in the range and already due (``due_at <= now``), not cancelled, not
  completed by the deadline (still open, or completed late);
- check-ins: their check-ins ("in") in the range, and how many were verified;
- arrivals: their first check-in on each visit in the range, judged against what was promised:
  the window's end and the planned ETA (the first ETA published for the visit: the
  ``previous_eta`` of its first ``eta_changes`` row, else the plan's ``etas``) plus
  ``ETA_GRACE``, whichever is earlier; visits with neither are not judged;
- time on site / driving / idle and distance: the worker's ``daily_summaries`` of those days
  (computed from the pings, which exist only during shifts);
- rating: customers' ratings (``visit_feedback``) of their visits completed in the range.
Revenue comes from ``field_deal_credits``: each won deal credited to its owner and to everyone
who completed a task on it, on the local day it was won.

Incremental upkeep: triggers (migration 0011) queue the (worker, day) pairs and deals touched by
any change of tasks, check-ins, daily summaries, deals and feedback; ``refresh`` recomputes
exactly those, and queues the days of tasks that fell overdue since the last run (no row
changes then). Nothing here reads the pings.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, fields
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal
from typing import Any

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

ETA_GRACE = timedelta(minutes=15)
BATCH = 5000
REBUILD_DAYS = 31
STATE_NAME = "overdue_watermark"
FIRST_LOOKBACK = timedelta(days=2)

COUNT_COLUMNS = (
    "visits_done",
    "arrivals_judged",
    "arrivals_on_time",
    "sla_judged",
    "sla_met",
    "check_ins",
    "check_ins_verified",
    "on_site_s",
    "driving_s",
    "idle_s",
    "rating_sum",
    "rating_count",
    "tasks_overdue",
)


@dataclass
class FieldCounts:
    """The summable counts of a worker (or group) over a period."""

    visits_done: int = 0
    arrivals_judged: int = 0
    arrivals_on_time: int = 0
    sla_judged: int = 0
    sla_met: int = 0
    check_ins: int = 0
    check_ins_verified: int = 0
    on_site_s: int = 0
    driving_s: int = 0
    idle_s: int = 0
    rating_sum: int = 0
    rating_count: int = 0
    tasks_overdue: int = 0
    distance_m: float = 0.0
    revenue_won: Decimal = Decimal(0)

    def add(self, other: FieldCounts) -> None:
        """Add ``other``'s counts to these (revenue too: use for one person's parts only)."""
        for f in fields(self):
            setattr(self, f.name, getattr(self, f.name) + getattr(other, f.name))

    def as_dict(self) -> dict[str, Any]:
        """Field name → value."""
        return {f.name: getattr(self, f.name) for f in fields(self)}


def counts_of(row: Any) -> FieldCounts:
    """FieldCounts from a row with the count columns (and optionally distance/revenue)."""
    mapping = row._mapping
    counts = FieldCounts()
    for name in COUNT_COLUMNS:
        setattr(counts, name, int(mapping[name] or 0))
    counts.distance_m = float(mapping.get("distance_m") or 0.0)
    return counts


async def has_feedback(session: AsyncSession) -> bool:
    """Whether the customer feedback table exists (it comes with the customer notifications)."""
    found = await session.scalar(text("SELECT to_regclass('visit_feedback') IS NOT NULL"))
    return bool(found)


FIRST_CHECK_IN = (
    "NOT EXISTS (SELECT 1 FROM check_ins e WHERE e.task_id = c.task_id AND e.kind = 'in'"
    " AND (e.at, e.id) < (c.at, c.id))"
)


def promise_sql(tz: str) -> str:
    """SQL of the time a visit ``k`` (a ``tasks`` row) was promised by, for its check-in ``c``
    in zone ``tz`` (an SQL expression): the window's end or the first planned ETA plus
    ``:grace``, whichever is earlier; NULL when neither is known."""
    return f"""LEAST(k.window_end, coalesce(
      (SELECT e.previous_eta FROM eta_changes e WHERE e.task_id = k.id
        ORDER BY e.changed_at, e.id LIMIT 1),
      (SELECT (rp.etas ->> k.id::text)::timestamptz FROM route_plans rp
        WHERE rp.user_id = k.assignee_id AND rp.day = (c.at AT TIME ZONE {tz})::date)
    ) + :grace)"""


def _metrics_sql(targets: str, *, feedback: bool, daily: bool) -> str:
    """SELECT of the counts per (user_id, day) of ``targets``, a CTE body with columns
    organization_id, user_id, day (the bucket), tz, d0, d1 (the bucket's local days).

    Each event is put on its worker's local day and joined to the buckets by equality (one
    bucket per day, ``daily``) or by range (one bucket per period), so a rebuild of a year is
    one pass over each table (hash joins) rather than one index walk per (worker, day). The
    tables are read between ``:lo`` and ``:hi`` (instants; the local days ``:dlo``..``:dhi``
    with a day's margin) for ``:users`` of ``:orgs``.
    """

    def on_day(expr: str) -> str:
        return f"g.day = {expr}" if daily else f"{expr} BETWEEN g.d0 AND g.d1"

    rating = (
        "coalesce(sum(f.rating), 0) AS rating_sum, count(f.rating) AS rating_count"
        if feedback
        else "0 AS rating_sum, 0 AS rating_count"
    )
    feedback_join = (
        "LEFT JOIN visit_feedback f ON f.task_id = k.id AND f.organization_id = k.organization_id"
        if feedback
        else ""
    )
    promised = promise_sql("z.tz")
    first_check_in = FIRST_CHECK_IN
    return f"""
WITH targets AS ({targets}),
zones AS (SELECT DISTINCT organization_id, user_id, tz FROM targets),
done AS (
  SELECT g.user_id, g.day,
    count(*) FILTER (WHERE k.kind IN ('measurement', 'installation', 'visit')) AS visits_done,
    count(*) FILTER (WHERE k.due_at IS NOT NULL) AS sla_judged,
    count(*) FILTER (WHERE k.due_at IS NOT NULL AND k.completed_at <= k.due_at) AS sla_met,
    {rating}
  FROM tasks k
  JOIN zones z ON z.user_id = k.assignee_id AND z.organization_id = k.organization_id
  JOIN targets g ON g.user_id = k.assignee_id
   AND {on_day("(k.completed_at AT TIME ZONE z.tz)::date")}
  {feedback_join}
  WHERE k.organization_id = ANY(CAST(:orgs AS uuid[]))
   AND k.assignee_id = ANY(CAST(:users AS uuid[])) AND k.status = 'done'
   AND k.completed_at >= :lo AND k.completed_at < :hi
  GROUP BY g.user_id, g.day
),
overdue AS (
  SELECT g.user_id, g.day, count(*) AS tasks_overdue
  FROM tasks k
  JOIN zones z ON z.user_id = k.assignee_id AND z.organization_id = k.organization_id
  JOIN targets g ON g.user_id = k.assignee_id AND {on_day("(k.due_at AT TIME ZONE z.tz)::date")}
  WHERE k.organization_id = ANY(CAST(:orgs AS uuid[]))
   AND k.assignee_id = ANY(CAST(:users AS uuid[]))
   AND k.due_at >= :lo AND k.due_at < :hi AND k.due_at <= :now AND k.status <> 'cancelled'
   AND (k.completed_at IS NULL OR k.completed_at > k.due_at)
  GROUP BY g.user_id, g.day
),
checks AS (
  SELECT g.user_id, g.day, count(*) AS check_ins,
    count(*) FILTER (WHERE c.status = 'verified') AS check_ins_verified
  FROM check_ins c
  JOIN zones z ON z.user_id = c.user_id AND z.organization_id = c.organization_id
  JOIN targets g ON g.user_id = c.user_id AND {on_day("(c.at AT TIME ZONE z.tz)::date")}
  WHERE c.user_id = ANY(CAST(:users AS uuid[])) AND c.kind = 'in'
   AND c.at >= :lo AND c.at < :hi
  GROUP BY g.user_id, g.day
),
arrivals AS (
  SELECT g.user_id, g.day, count(p.promised) AS arrivals_judged,
    count(*) FILTER (WHERE c.at <= p.promised) AS arrivals_on_time
  FROM check_ins c
  JOIN zones z ON z.user_id = c.user_id AND z.organization_id = c.organization_id
  JOIN targets g ON g.user_id = c.user_id AND {on_day("(c.at AT TIME ZONE z.tz)::date")}
  JOIN tasks k ON k.id = c.task_id
  CROSS JOIN LATERAL (SELECT {promised} AS promised) p
  WHERE c.user_id = ANY(CAST(:users AS uuid[])) AND c.kind = 'in'
   AND c.at >= :lo AND c.at < :hi AND {first_check_in}
  GROUP BY g.user_id, g.day
),
summ AS (
  SELECT g.user_id, g.day, sum(s.on_site_s) AS on_site_s, sum(s.driving_s) AS driving_s,
    sum(s.idle_s) AS idle_s, sum(s.distance_m) AS distance_m
  FROM daily_summaries s
  JOIN zones z ON z.user_id = s.user_id AND z.organization_id = s.organization_id
  JOIN targets g ON g.user_id = s.user_id AND {on_day("s.day")}
  WHERE s.user_id = ANY(CAST(:users AS uuid[])) AND s.day BETWEEN :dlo AND :dhi
  GROUP BY g.user_id, g.day
)
SELECT g.organization_id, g.user_id, g.day,
  coalesce(done.visits_done, 0) AS visits_done,
  coalesce(arrivals.arrivals_judged, 0) AS arrivals_judged,
  coalesce(arrivals.arrivals_on_time, 0) AS arrivals_on_time,
  coalesce(done.sla_judged, 0) AS sla_judged,
  coalesce(done.sla_met, 0) AS sla_met,
  coalesce(checks.check_ins, 0) AS check_ins,
  coalesce(checks.check_ins_verified, 0) AS check_ins_verified,
  coalesce(summ.on_site_s, 0) AS on_site_s,
  coalesce(summ.driving_s, 0) AS driving_s,
  coalesce(summ.idle_s, 0) AS idle_s,
  coalesce(done.rating_sum, 0) AS rating_sum,
  coalesce(done.rating_count, 0) AS rating_count,
  coalesce(overdue.tasks_overdue, 0) AS tasks_overdue,
  coalesce(summ.distance_m, 0) AS distance_m
FROM targets g
LEFT JOIN done ON done.user_id = g.user_id AND done.day = g.day
LEFT JOIN overdue ON overdue.user_id = g.user_id AND overdue.day = g.day
LEFT JOIN checks ON checks.user_id = g.user_id AND checks.day = g.day
LEFT JOIN arrivals ON arrivals.user_id = g.user_id AND arrivals.day = g.day
LEFT JOIN summ ON summ.user_id = g.user_id AND summ.day = g.day
WHERE done.user_id IS NOT NULL OR overdue.user_id IS NOT NULL OR checks.user_id IS NOT NULL
   OR arrivals.user_id IS NOT NULL OR summ.user_id IS NOT NULL
"""


def _bounds(first: date, last: date) -> dict[str, Any]:
    """The instants and local days the metric SQL reads, with a day's margin for any zone."""
    return {
        "lo": datetime.combine(first - timedelta(days=1), time(), tzinfo=UTC),
        "hi": datetime.combine(last + timedelta(days=2), time(), tzinfo=UTC),
        "dlo": first,
        "dhi": last,
    }


_DAY_TARGETS = """
  SELECT u.organization_id, q.user_id, q.day, u.time_zone AS tz, q.day AS d0, q.day AS d1
  FROM unnest(CAST(:t_users AS uuid[]), CAST(:t_days AS date[])) AS q(user_id, day)
  JOIN users u ON u.id = q.user_id
"""

_PERIOD_TARGETS = """
  SELECT u.organization_id, u.id AS user_id, CAST(:d0 AS date) AS day, u.time_zone AS tz,
    CAST(:d0 AS date) AS d0, CAST(:d1 AS date) AS d1
  FROM users u WHERE u.organization_id = :org AND u.id = ANY(CAST(:users AS uuid[]))
"""


_CREDITS_SELECT = """
SELECT d.id AS deal_id, w.user_id, d.organization_id,
  (d.closed_at AT TIME ZONE u.time_zone)::date AS day, d.amount
FROM deals d
JOIN stages s ON s.id = d.stage_id AND s.kind = 'won'
CROSS JOIN LATERAL (
  SELECT d.owner_id AS user_id WHERE d.owner_id IS NOT NULL
  UNION
  SELECT k.assignee_id FROM tasks k
  WHERE k.deal_id = d.id AND k.status = 'done' AND k.assignee_id IS NOT NULL
) w
JOIN users u ON u.id = w.user_id AND u.organization_id = d.organization_id
WHERE d.closed_at IS NOT NULL AND d.amount IS NOT NULL AND {where}
"""


async def recompute_days(
    session: AsyncSession, pairs: list[tuple[uuid.UUID, date]], now: datetime
) -> int:
    """Recompute the roll-up rows of these (worker, day) pairs from the raw tables; returns
    how many rows now hold something (empty days have no row)."""
    if not pairs:
        return 0
    users = [u for u, _ in pairs]
    days = [d for _, d in pairs]
    await session.execute(
        text(
            "DELETE FROM field_daily f USING unnest(CAST(:users AS uuid[]), CAST(:days AS date[]))"
            " AS q(user_id, day) WHERE f.user_id = q.user_id AND f.day = q.day"
        ),
        {"users": users, "days": days},
    )
    distinct_users = sorted(set(users))
    orgs = (
        await session.scalars(
            text("SELECT DISTINCT organization_id FROM users WHERE id = ANY(CAST(:u AS uuid[]))"),
            {"u": distinct_users},
        )
    ).all()
    columns = ", ".join((*COUNT_COLUMNS, "distance_m"))
    select = _metrics_sql(_DAY_TARGETS, feedback=await has_feedback(session), daily=True)
    inserted = await session.execute(
        text(
            f"INSERT INTO field_daily (organization_id, user_id, day, {columns}, computed_at)"
            f" SELECT organization_id, user_id, day, {columns}, CAST(:now AS timestamptz)"
            f" FROM ({select}) m"
        ),
        {
            "t_users": users,
            "t_days": days,
            "users": distinct_users,
            "orgs": list(orgs),
            "now": now,
            "grace": ETA_GRACE,
            **_bounds(min(days), max(days)),
        },
    )
    return int(getattr(inserted, "rowcount", 0) or 0)


async def recompute_deals(session: AsyncSession, deal_ids: list[uuid.UUID]) -> int:
    """Recompute the credits of these deals; returns how many credits they now have."""
    if not deal_ids:
        return 0
    await session.execute(
        text("DELETE FROM field_deal_credits WHERE deal_id = ANY(CAST(:deals AS uuid[]))"),
        {"deals": deal_ids},
    )
    inserted = await session.execute(
        text(
            "INSERT INTO field_deal_credits (deal_id, user_id, organization_id, day, amount) "
            + _CREDITS_SELECT.format(where="d.id = ANY(CAST(:deals AS uuid[]))")
        ),
        {"deals": deal_ids},
    )
    return int(getattr(inserted, "rowcount", 0) or 0)


async def _queue_fallen_overdue(session: AsyncSession, now: datetime) -> None:
    """Queue the days of active tasks whose deadline passed since the last run."""
    since = await session.scalar(
        text("SELECT watermark FROM field_rollup_state WHERE name = :name FOR UPDATE"),
        {"name": STATE_NAME},
    )
    if since is None:
        since = now - FIRST_LOOKBACK
    await session.execute(
        text(
            "INSERT INTO field_rollup_queue (organization_id, user_id, day)"
            " SELECT k.organization_id, k.assignee_id, (k.due_at AT TIME ZONE u.time_zone)::date"
            " FROM tasks k JOIN users u ON u.id = k.assignee_id"
            " WHERE k.status IN ('open', 'in_progress') AND k.assignee_id IS NOT NULL"
            " AND k.due_at IS NOT NULL AND k.due_at > :since AND k.due_at <= :now"
            " ON CONFLICT DO NOTHING"
        ),
        {"since": since, "now": now},
    )
    await session.execute(
        text(
            "INSERT INTO field_rollup_state (name, watermark) VALUES (:name, :now)"
            " ON CONFLICT (name) DO UPDATE SET watermark = excluded.watermark"
        ),
        {"name": STATE_NAME, "now": now},
    )


@dataclass(frozen=True)
class RefreshResult:
    """What one refresh did."""

    days: int
    deals: int


async def refresh(session: AsyncSession, now: datetime, *, batch: int = BATCH) -> RefreshResult:
    """Process the queues: recompute every queued (worker, day) and deal, in batches claimed
    with ``SKIP LOCKED`` (two workers never do the same twice). The caller commits."""
    await _queue_fallen_overdue(session, now)
    days = deals = 0
    while True:
        claimed = (
            await session.execute(
                text(
                    "DELETE FROM field_rollup_queue q WHERE (q.user_id, q.day) IN ("
                    " SELECT user_id, day FROM field_rollup_queue"
                    " LIMIT :batch FOR UPDATE SKIP LOCKED) RETURNING q.user_id, q.day"
                ),
                {"batch": batch},
            )
        ).all()
        if not claimed:
            break
        await recompute_days(session, [(u, d) for u, d in claimed], now)
        days += len(claimed)
    while True:
        deal_ids = (
            await session.scalars(
                text(
                    "DELETE FROM field_deal_queue q WHERE q.deal_id IN ("
                    " SELECT deal_id FROM field_deal_queue"
                    " LIMIT :batch FOR UPDATE SKIP LOCKED) RETURNING q.deal_id"
                ),
                {"batch": batch},
            )
        ).all()
        if not deal_ids:
            break
        await recompute_deals(session, list(deal_ids))
        deals += len(deal_ids)
    return RefreshResult(days=days, deals=deals)


async def rebuild(
    session: AsyncSession, organization_id: uuid.UUID, date_from: date, date_to: date, now: datetime
) -> RefreshResult:
    """Recompute an organisation's roll-ups for [date_from, date_to] from scratch (after a bulk
    load with the triggers off): set-based, one statement per month of days."""
    await session.execute(
        text("DELETE FROM field_daily WHERE organization_id = :org AND day BETWEEN :d0 AND :d1"),
        {"org": organization_id, "d0": date_from, "d1": date_to},
    )
    users = list(
        (
            await session.scalars(
                text("SELECT id FROM users WHERE organization_id = :org"),
                {"org": organization_id},
            )
        ).all()
    )
    days_done = 0
    start = date_from
    while start <= date_to:
        end = min(start + timedelta(days=REBUILD_DAYS - 1), date_to)
        span = [start + timedelta(days=i) for i in range((end - start).days + 1)]
        days_done += await recompute_days(session, [(u, d) for d in span for u in users], now)
        start = end + timedelta(days=1)
    deal_ids = list(
        (
            await session.scalars(
                text(
                    "SELECT id FROM deals WHERE organization_id = :org AND closed_at IS NOT NULL"
                    " AND closed_at >= :t0 AND closed_at < :t1"
                ),
                {
                    "org": organization_id,
                    "t0": datetime.combine(date_from - timedelta(days=1), time(), tzinfo=UTC),
                    "t1": datetime.combine(date_to + timedelta(days=2), time(), tzinfo=UTC),
                },
            )
        ).all()
    )
    deals = 0
    for offset in range(0, len(deal_ids), BATCH):
        deals += await recompute_deals(session, deal_ids[offset : offset + BATCH])
    return RefreshResult(days=days_done, deals=deals)


async def live_counts(
    session: AsyncSession,
    organization_id: uuid.UUID,
    user_ids: list[uuid.UUID],
    date_from: date,
    date_to: date,
    now: datetime,
) -> dict[uuid.UUID, FieldCounts]:
    """The same counts computed on the fly from the raw tables (no roll-ups), per worker over
    [date_from, date_to] of their local days; workers with nothing are left out."""
    params: dict[str, Any] = {
        "org": organization_id,
        "orgs": [organization_id],
        "users": user_ids,
        "d0": date_from,
        "d1": date_to,
        "now": now,
        "grace": ETA_GRACE,
        **_bounds(date_from, date_to),
    }
    select = _metrics_sql(_PERIOD_TARGETS, feedback=await has_feedback(session), daily=False)
    out: dict[uuid.UUID, FieldCounts] = {}
    for row in (await session.execute(text(select), params)).all():
        out[row.user_id] = counts_of(row)
    for user_id, amount in await _live_credits(session, params, distinct=False):
        out.setdefault(user_id, FieldCounts()).revenue_won = Decimal(amount)
    return out


async def live_team_revenue(
    session: AsyncSession,
    organization_id: uuid.UUID,
    user_ids: list[uuid.UUID],
    date_from: date,
    date_to: date,
) -> Decimal:
    """Revenue of the distinct won deals credited to any of ``user_ids`` in the period, on the
    fly from the deals."""
    params = {"org": organization_id, "users": user_ids, "d0": date_from, "d1": date_to}
    rows = await _live_credits(session, params, distinct=True)
    return Decimal(rows[0][1]) if rows else Decimal(0)


async def _live_credits(
    session: AsyncSession, params: dict[str, Any], *, distinct: bool
) -> list[tuple[Any, Any]]:
    where = (
        "d.organization_id = :org AND d.closed_at >= CAST(:d0 AS date) - 1"
        " AND d.closed_at < CAST(:d1 AS date) + 2"
    )
    credits = _CREDITS_SELECT.format(where=where)
    filtered = (
        f"SELECT * FROM ({credits}) c WHERE c.user_id = ANY(CAST(:users AS uuid[]))"
        " AND c.day BETWEEN :d0 AND :d1"
    )
    if distinct:
        sql = (
            "SELECT NULL, coalesce(sum(amount), 0) FROM"
            f" (SELECT DISTINCT ON (deal_id) deal_id, amount FROM ({filtered}) f) x"
        )
    else:
        sql = f"SELECT user_id, sum(amount) FROM ({filtered}) f GROUP BY user_id"
    rows = (await session.execute(text(sql), params)).all()
    return [(r[0], r[1]) for r in rows]
