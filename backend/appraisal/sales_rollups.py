"""Daily roll-ups of the owner's reports, kept up to date incrementally.

What is rolled up (one row per organisation, organisation-local day and dimensions):
- ``report_deal_days`` (owner, pipeline, source): deals created, won and lost that day (number
  and amount), and "converted": created that day and won by now;
- ``report_stage_days`` (pipeline, stage, owner, source): ``reached``, deals created that day
  whose furthest non-lost stage is this one or later (the funnel of that day's requests), and
  ``exits``, moves out of the stage made that day with the seconds spent in it;
- ``report_call_days`` (author): calls made and their duration;
- ``report_task_days`` (assignee): tasks by due day, done on time, done late, still open.

Which days to refresh: triggers on the source tables (migration 0010) append the local days a
changed row feeds to ``report_dirty_days`` — from the old and the new values, in the changing
transaction. We chose this over an ``updated_at`` watermark because a watermark cannot see
deletions (a deleted customer takes its deals, calls and tasks along) nor the day a row *left*
(a reopened deal's old closing day, a task's old due date). The queue is append-only (no unique
key), so concurrent writers never wait on each other. ``refresh`` claims queued rows with
``SKIP LOCKED``, recomputes each claimed day from the raw rows (``DELETE`` + ``INSERT ...
SELECT`` of that day, under a per-organisation advisory lock) and records the watermark
(``report_refresh_state.refreshed_at``). ``rebuild`` recomputes every day of an organisation.

Reports stay exact between runs: they read roll-ups for clean days and recompute only the
still-queued days (``queued_days``, read first) from the raw rows (``rows_sql``). Changing an
organisation's time zone moves every day boundary: run ``fieldcrm rebuild-reports`` after it.
Changing a stage's kind or position likewise needs a rebuild.

The per-day SQL (``*_FACTS``) is the single definition of every number: the refresh, the live
part of a report and the on-the-fly ("raw") computation used by tests and the benchmark all
run it.
"""

from __future__ import annotations

import uuid
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

NIL = "'00000000-0000-0000-0000-000000000000'::uuid"

# The organisation-local days of ``{days}`` (a date[] expression) as UTC bounds.
_BOUNDS = """
b AS (
  SELECT d.day,
         (d.day::timestamp AT TIME ZONE z.tz) AS lo,
         ((d.day + 1)::timestamp AT TIME ZONE z.tz) AS hi
  FROM unnest({days}) AS d(day)
  CROSS JOIN (SELECT time_zone AS tz FROM organizations WHERE id = :org) AS z
)"""


def deal_facts(days: str) -> str:
    """Per day, owner, pipeline and source: deals created / won / lost / converted."""
    return f"""
WITH {_BOUNDS.format(days=days)},
created AS (
  SELECT b.day, coalesce(x.owner_id, {NIL}) AS owner_id, x.pipeline_id,
         coalesce(x.source, '') AS source,
         count(*) AS created_count, coalesce(sum(x.amount), 0) AS created_amount,
         0 AS won_count, 0 AS won_amount, 0 AS lost_count, 0 AS lost_amount,
         count(*) FILTER (WHERE s.kind = 'won') AS converted_count,
         coalesce(sum(x.amount) FILTER (WHERE s.kind = 'won'), 0) AS converted_amount
  FROM b
  JOIN deals x ON x.organization_id = :org AND x.created_at >= b.lo AND x.created_at < b.hi
  JOIN stages s ON s.id = x.stage_id
  GROUP BY 1, 2, 3, 4
),
closed AS (
  SELECT b.day, coalesce(x.owner_id, {NIL}), x.pipeline_id, coalesce(x.source, ''),
         0, 0,
         count(*) FILTER (WHERE s.kind = 'won'),
         coalesce(sum(x.amount) FILTER (WHERE s.kind = 'won'), 0),
         count(*) FILTER (WHERE s.kind = 'lost'),
         coalesce(sum(x.amount) FILTER (WHERE s.kind = 'lost'), 0),
         0, 0
  FROM b
  JOIN deals x ON x.organization_id = :org AND x.closed_at >= b.lo AND x.closed_at < b.hi
  JOIN stages s ON s.id = x.stage_id AND s.kind <> 'open'
  GROUP BY 1, 2, 3, 4
)
SELECT day, owner_id, pipeline_id, source,
       sum(created_count)::int AS created_count, sum(created_amount) AS created_amount,
       sum(won_count)::int AS won_count, sum(won_amount) AS won_amount,
       sum(lost_count)::int AS lost_count, sum(lost_amount) AS lost_amount,
       sum(converted_count)::int AS converted_count, sum(converted_amount) AS converted_amount
FROM (SELECT * FROM created UNION ALL SELECT * FROM closed) AS u
GROUP BY 1, 2, 3, 4
"""


def stage_facts(days: str) -> str:
    """Per day, pipeline, stage, owner and source: the creation-day cohort's reach, and the
    exits (with time spent) made that day."""
    return f"""
WITH {_BOUNDS.format(days=days)},
cohort AS (
  SELECT b.day, x.pipeline_id, coalesce(x.owner_id, {NIL}) AS owner_id,
         coalesce(x.source, '') AS source,
         (SELECT max(s.position) FROM stages s
           WHERE s.kind <> 'lost'
             AND (s.id = x.stage_id
                  OR s.id IN (SELECT c.to_stage_id FROM deal_stage_changes c
                              WHERE c.deal_id = x.id))) AS furthest
  FROM b
  JOIN deals x ON x.organization_id = :org AND x.created_at >= b.lo AND x.created_at < b.hi
),
reached AS (
  SELECT c.day, c.pipeline_id, t.id AS stage_id, c.owner_id, c.source,
         count(*) AS reached_count, 0 AS exit_count, 0 AS exit_seconds
  FROM cohort c
  JOIN stages t ON t.pipeline_id = c.pipeline_id AND t.kind <> 'lost' AND t.position <= c.furthest
  GROUP BY 1, 2, 3, 4, 5
),
exits AS (
  SELECT b.day, x.pipeline_id, c.from_stage_id, coalesce(x.owner_id, {NIL}),
         coalesce(x.source, ''), 0, count(*), coalesce(sum(c.seconds_in_previous), 0)
  FROM b
  JOIN deal_stage_changes c
    ON c.organization_id = :org AND c.changed_at >= b.lo AND c.changed_at < b.hi
   AND c.from_stage_id IS NOT NULL
  JOIN deals x ON x.id = c.deal_id
  GROUP BY 1, 2, 3, 4, 5
)
SELECT day, pipeline_id, stage_id, owner_id, source,
       sum(reached_count)::int AS reached_count, sum(exit_count)::int AS exit_count,
       sum(exit_seconds)::bigint AS exit_seconds
FROM (SELECT * FROM reached UNION ALL SELECT * FROM exits) AS u
GROUP BY 1, 2, 3, 4, 5
"""


def call_facts(days: str) -> str:
    """Per day and author: calls made and their total duration."""
    return f"""
WITH {_BOUNDS.format(days=days)}
SELECT b.day, coalesce(i.author_id, {NIL}) AS user_id, count(*)::int AS call_count,
       coalesce(sum(i.duration_s), 0)::bigint AS call_seconds
FROM b
JOIN interactions i ON i.organization_id = :org AND i.kind = 'call'
 AND i.occurred_at >= b.lo AND i.occurred_at < b.hi
GROUP BY 1, 2
"""


def task_facts(days: str) -> str:
    """Per due day and assignee: tasks due, done on time, done late, open, cancelled."""
    return f"""
WITH {_BOUNDS.format(days=days)}
SELECT b.day, coalesce(t.assignee_id, {NIL}) AS assignee_id,
       count(*) FILTER (WHERE t.status <> 'cancelled')::int AS due_count,
       count(*) FILTER (WHERE t.status = 'done'
                        AND (t.completed_at IS NULL OR t.completed_at <= t.due_at))::int
         AS done_on_time,
       count(*) FILTER (WHERE t.status = 'done' AND t.completed_at > t.due_at)::int AS done_late,
       count(*) FILTER (WHERE t.status IN ('open', 'in_progress'))::int AS open_count,
       count(*) FILTER (WHERE t.status = 'cancelled')::int AS cancelled_count
FROM b
JOIN tasks t ON t.organization_id = :org AND t.due_at >= b.lo AND t.due_at < b.hi
GROUP BY 1, 2
"""


@dataclass(frozen=True, slots=True)
class Rollup:
    """One roll-up table: its dirty-queue fact, columns (after ``organization_id``) and the
    per-day SQL that computes its rows."""

    fact: str
    table: str
    columns: tuple[str, ...]
    facts: Callable[[str], str]


DEALS = Rollup(
    "sales",
    "report_deal_days",
    (
        "day",
        "owner_id",
        "pipeline_id",
        "source",
        "created_count",
        "created_amount",
        "won_count",
        "won_amount",
        "lost_count",
        "lost_amount",
        "converted_count",
        "converted_amount",
    ),
    deal_facts,
)
STAGES = Rollup(
    "sales",
    "report_stage_days",
    (
        "day",
        "pipeline_id",
        "stage_id",
        "owner_id",
        "source",
        "reached_count",
        "exit_count",
        "exit_seconds",
    ),
    stage_facts,
)
CALLS = Rollup(
    "calls", "report_call_days", ("day", "user_id", "call_count", "call_seconds"), call_facts
)
TASKS = Rollup(
    "tasks",
    "report_task_days",
    (
        "day",
        "assignee_id",
        "due_count",
        "done_on_time",
        "done_late",
        "open_count",
        "cancelled_count",
    ),
    task_facts,
)
ROLLUPS = (DEALS, STAGES, CALLS, TASKS)
FACTS = ("sales", "calls", "tasks")

_ALL_DAYS = (
    "(SELECT array_agg(g::date) FROM generate_series(CAST(:lo AS date), CAST(:hi AS date), "
    "interval '1 day') AS g)"
)


async def queued_days(
    session: AsyncSession, organization_id: uuid.UUID, fact: str, lo: date, hi: date
) -> list[date]:
    """The days ``lo`` .. ``hi`` still queued for ``fact``'s refresh (index-only, cheap)."""
    found = await session.scalars(
        text(
            "SELECT DISTINCT day FROM report_dirty_days WHERE organization_id = :org"
            " AND fact = :fact AND day BETWEEN :lo AND :hi ORDER BY day"
        ),
        {"org": organization_id, "fact": fact, "lo": lo, "hi": hi},
    )
    return list(found.all())


def rows_sql(rollup: Rollup, *, raw: bool = False, queued: bool = True) -> str:
    """A SELECT of ``rollup``'s rows for the days ``:lo`` .. ``:hi`` of organisation ``:org``.

    Normally: the stored rows of the days not in ``:queued`` (a date[] parameter: the days still
    queued for refresh, from ``queued_days``), plus those days computed from the raw rows —
    exact at any moment, reading raw rows only for recently changed days. With ``queued=False``
    (nothing queued) only the stored rows are read. ``raw=True`` computes every day from the
    raw rows (the on-the-fly baseline)."""
    cols = ", ".join(rollup.columns)
    if raw:
        return f"SELECT {cols} FROM ({rollup.facts(_ALL_DAYS)}) AS f"
    stored = (
        f"SELECT {cols} FROM {rollup.table} r"
        " WHERE r.organization_id = :org AND r.day BETWEEN :lo AND :hi"
    )
    if not queued:
        return stored
    return f"""
{stored} AND r.day <> ALL(CAST(:queued AS date[]))
UNION ALL
SELECT {cols} FROM ({rollup.facts("CAST(:queued AS date[])")}) AS f
"""


async def _lock(session: AsyncSession, organization_id: uuid.UUID) -> None:
    """Serialise roll-up writes of one organisation (two refreshes of a day must not both
    insert it)."""
    await session.execute(
        text("SELECT pg_advisory_xact_lock(hashtextextended('report_rollups:' || :org, 0))"),
        {"org": str(organization_id)},
    )


async def recompute(
    session: AsyncSession, organization_id: uuid.UUID, rollup: Rollup, days: list[date]
) -> None:
    """Replace ``rollup``'s rows of ``days`` by rows computed from the raw tables (the caller
    holds the organisation's lock)."""
    if not days:
        return
    params = {"org": organization_id, "days": days}
    await session.execute(
        text(f"DELETE FROM {rollup.table} WHERE organization_id = :org AND day = ANY(:days)"),
        params,
    )
    cols = ", ".join(rollup.columns)
    await session.execute(
        text(
            f"INSERT INTO {rollup.table} (organization_id, {cols}) "
            f"SELECT :org, {cols} FROM ({rollup.facts('CAST(:days AS date[])')}) AS f"
        ),
        params,
    )


async def _record(
    session: AsyncSession, organization_id: uuid.UUID, now: datetime, days: int, rebuilt: bool
) -> None:
    await session.execute(
        text(
            "INSERT INTO report_refresh_state (organization_id, refreshed_at, days_refreshed,"
            " rebuilt_at) VALUES (:org, :now, :days, CAST(:rebuilt_at AS timestamptz))"
            " ON CONFLICT (organization_id) DO UPDATE SET refreshed_at = EXCLUDED.refreshed_at,"
            " days_refreshed = EXCLUDED.days_refreshed,"
            " rebuilt_at = coalesce(EXCLUDED.rebuilt_at, report_refresh_state.rebuilt_at)"
        ),
        {
            "org": organization_id,
            "now": now,
            "days": days,
            "rebuilt_at": now if rebuilt else None,
        },
    )


@dataclass(frozen=True, slots=True)
class RefreshResult:
    """What one refresh did."""

    organizations: int
    days: int
    queued_rows: int


async def refresh(session: AsyncSession, now: datetime, *, batch: int = 50_000) -> RefreshResult:
    """Recompute the days queued by the triggers (at most ``batch`` queue rows; rows another
    refresh holds are skipped). The caller owns the transaction."""
    claimed = (
        await session.execute(
            text(
                "DELETE FROM report_dirty_days WHERE id IN (SELECT id FROM report_dirty_days"
                " ORDER BY id LIMIT :batch FOR UPDATE SKIP LOCKED)"
                " RETURNING organization_id, fact, day"
            ),
            {"batch": batch},
        )
    ).all()
    todo: dict[uuid.UUID, dict[str, set[date]]] = defaultdict(lambda: defaultdict(set))
    for org, fact, day in claimed:
        todo[org][fact].add(day)
    total = 0
    for org in sorted(todo):
        await _lock(session, org)
        count = 0
        for rollup in ROLLUPS:
            days = sorted(todo[org].get(rollup.fact, ()))
            await recompute(session, org, rollup, days)
        for days_of_fact in todo[org].values():
            count += len(days_of_fact)
        await _record(session, org, now, count, rebuilt=False)
        total += count
    return RefreshResult(len(todo), total, len(claimed))


_SPAN = """
SELECT min(t), max(t) FROM (
  SELECT min(created_at) AS t FROM deals WHERE organization_id = :org
  UNION ALL SELECT max(greatest(created_at, closed_at)) FROM deals WHERE organization_id = :org
  UNION ALL SELECT min(changed_at) FROM deal_stage_changes WHERE organization_id = :org
  UNION ALL SELECT max(changed_at) FROM deal_stage_changes WHERE organization_id = :org
  UNION ALL SELECT min(occurred_at) FROM interactions WHERE organization_id = :org AND kind = 'call'
  UNION ALL SELECT max(occurred_at) FROM interactions WHERE organization_id = :org AND kind = 'call'
  UNION ALL SELECT min(due_at) FROM tasks WHERE organization_id = :org
  UNION ALL SELECT max(due_at) FROM tasks WHERE organization_id = :org
) AS s
"""


async def rebuild(session: AsyncSession, organization_id: uuid.UUID, now: datetime) -> int:
    """Recompute every roll-up of the organisation from the raw rows; the number of days."""
    await _lock(session, organization_id)
    params = {"org": organization_id}
    await session.execute(
        text("DELETE FROM report_dirty_days WHERE organization_id = :org"), params
    )
    for rollup in ROLLUPS:
        await session.execute(
            text(f"DELETE FROM {rollup.table} WHERE organization_id = :org"), params
        )
    first, last = (await session.execute(text(_SPAN), params)).one()
    zone_name = await session.scalar(
        text("SELECT time_zone FROM organizations WHERE id = :org"), params
    )
    if first is None or zone_name is None:
        await _record(session, organization_id, now, 0, rebuilt=True)
        return 0
    zone = ZoneInfo(zone_name)
    start, end = first.astimezone(zone).date(), last.astimezone(zone).date()
    days = [start + timedelta(days=i) for i in range((end - start).days + 1)]
    for rollup in ROLLUPS:
        await recompute(session, organization_id, rollup, days)
    await _record(session, organization_id, now, len(days), rebuilt=True)
    return len(days)


async def organizations(session: AsyncSession) -> list[uuid.UUID]:
    """Every organisation's id (for a rebuild of all)."""
    return list((await session.scalars(text("SELECT id FROM organizations ORDER BY id"))).all())
