"""The owner's reports, computed from the daily roll-ups (``sales_rollups``).

Each report reads one roll-up for the current and the previous period in one statement and
aggregates in SQL; only days still queued for refresh are computed from raw rows
(``sales_rollups.rows_sql``). The reports on the deal roll-up (deals, both conversions,
sources) share one read of it, grouped by bucket, by source and by owner for both periods
(``deal_sums``); within ``shared_reads`` (the dashboard) that read is made once. Reports:

- ``deals``: deals created, won and lost per day/week/month (number and amount);
- ``calls``: calls made per person (managers and anyone else who calls);
- ``conversion_by_source`` / ``conversion_by_manager``: of the requests (deals) received in the
  period, how many are won by now, and their revenue;
- ``sources``: lead sources ranked by deals won in the period and by revenue;
- ``funnel``: how far the period's requests got in a pipeline (reached each stage or a later
  one), conversion between stages and the average days deals spent in each stage (moves out of
  the stage made in the period);
- ``overdue_tasks``: per person, tasks due in the period done on time, done late, and still
  open past their due time (today's from the live rows, as "now" moves within the day).
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from types import SimpleNamespace
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import Row, text
from sqlalchemy.ext.asyncio import AsyncSession

from backend.appraisal import sales_rollups as ru
from backend.appraisal.report_filters import ReportQuery
from backend.appraisal.report_models import NIL_UUID
from backend.appraisal.report_schemas import (
    ColumnKind,
    Figure,
    Period,
    Report,
    ReportColumn,
    Value,
)

NO_SOURCE = "(none)"
NOBODY = "(nobody)"


# --- helpers ------------------------------------------------------------------------------


def _params(q: ReportQuery) -> dict[str, Any]:
    params: dict[str, Any] = {
        "org": q.organization_id,
        "lo": q.previous_start,
        "hi": q.end,
        "cs": q.start,
    }
    if q.people is not None:
        params["people"] = list(q.people)
    if q.pipeline_id is not None:
        params["pipeline"] = q.pipeline_id
    if q.source is not None:
        params["source"] = q.source
    return params


def _where(q: ReportQuery, person_column: str, *, sales: bool) -> str:
    parts = ["TRUE"]
    if q.people is not None:
        parts.append(f"{person_column} = ANY(CAST(:people AS uuid[]))")
    if sales and q.pipeline_id is not None:
        parts.append("pipeline_id = :pipeline")
    if sales and q.source is not None:
        parts.append("source = :source")
    return " AND ".join(parts)


async def _select(
    session: AsyncSession,
    q: ReportQuery,
    rollup: ru.Rollup,
    select_sql: str,
    extra: dict[str, Any] | None = None,
) -> Sequence[Row[Any]]:
    """Run ``select_sql`` (which reads ``rows``) over the roll-up's rows of both periods."""
    params = {**_params(q), **(extra or {})}
    queued: list[date] = []
    if not q.raw:
        queued = await ru.queued_days(
            session, q.organization_id, rollup.fact, q.previous_start, q.end
        )
        params["queued"] = queued
    sql = f"WITH rows AS ({ru.rows_sql(rollup, raw=q.raw, queued=bool(queued))}) {select_sql}"
    # Plan for the actual organisation and days every time: after five runs PostgreSQL may
    # switch a prepared statement to a generic plan, which doubled the dashboard's time at
    # full scale. Planning takes well under a millisecond; SET LOCAL ends with the transaction.
    await session.execute(text("SET LOCAL plan_cache_mode = force_custom_plan"))
    return (await session.execute(text(sql), params)).all()


def _cur(expr: str) -> str:
    return f"coalesce(sum({expr}) FILTER (WHERE day >= :cs), 0)"


def _prev(expr: str) -> str:
    return f"coalesce(sum({expr}) FILTER (WHERE day < :cs), 0)"


def rate(part: float | Decimal | int, whole: float | Decimal | int) -> float | None:
    """``part / whole`` rounded to 4 places; None when ``whole`` is zero."""
    if not whole:
        return None
    return round(float(part) / float(whole), 4)


def change(current: Value, previous: Value) -> float | None:
    """Relative change from ``previous`` to ``current``; None without a non-zero previous."""
    if not isinstance(current, int | float | Decimal) or not isinstance(
        previous, int | float | Decimal
    ):
        return None
    if not previous:
        return None
    return round((float(current) - float(previous)) / float(previous), 4)


def figure(current: Value, previous: Value) -> Figure:
    """A headline number with its previous value and change."""
    return Figure(current=current, previous=previous, change=change(current, previous))


def _money(value: Any) -> Decimal:
    return Decimal(value or 0).quantize(Decimal("0.01"))


def _periods(q: ReportQuery) -> tuple[Period, Period]:
    days = q.days
    return (
        Period(start=q.start, end=q.end, days=days),
        Period(start=q.previous_start, end=q.previous_end, days=days),
    )


def _report(
    q: ReportQuery,
    name: str,
    title: str,
    columns: list[tuple[str, str, ColumnKind]],
    rows: list[dict[str, Value]],
    totals: dict[str, Figure],
    note: str | None = None,
) -> Report:
    period, previous = _periods(q)
    return Report(
        name=name,
        title=title,
        period=period,
        previous=previous,
        time_zone=q.time_zone,
        currency=q.currency,
        columns=[ReportColumn(key=k, label=label, kind=kind) for k, label, kind in columns],
        rows=rows,
        totals=totals,
        generated_at=q.now.astimezone(UTC),
        note=note,
    )


async def people_names(
    session: AsyncSession, organization_id: uuid.UUID, ids: set[uuid.UUID]
) -> dict[uuid.UUID, str]:
    """Full names of the organisation's users among ``ids`` (NIL is "(nobody)")."""
    names = {NIL_UUID: NOBODY}
    wanted = [i for i in ids if i != NIL_UUID]
    if wanted:
        found = await session.execute(
            text("SELECT id, full_name FROM users WHERE organization_id = :org AND id = ANY(:ids)"),
            {"org": organization_id, "ids": wanted},
        )
        names.update({row.id: row.full_name for row in found})
    return names


def buckets(q: ReportQuery) -> list[date]:
    """The first day of every day/week/month bucket of the period."""
    out: list[date] = []
    day = q.start
    if q.interval == "week":
        day = q.start - timedelta(days=q.start.weekday())
    elif q.interval == "month":
        day = q.start.replace(day=1)
    while day <= q.end:
        out.append(day)
        if q.interval == "day":
            day += timedelta(days=1)
        elif q.interval == "week":
            day += timedelta(days=7)
        else:
            day = (day.replace(day=28) + timedelta(days=4)).replace(day=1)
    return out


# --- the deal roll-up, read once ------------------------------------------------------------

_DEAL_COLUMNS = (
    "created_count",
    "created_amount",
    "won_count",
    "won_amount",
    "lost_count",
    "lost_amount",
    "converted_count",
    "converted_amount",
)
_DEAL_SUMS = (
    ("createdCount", "created_count"),
    ("createdAmount", "created_amount"),
    ("wonCount", "won_count"),
    ("wonAmount", "won_amount"),
    ("lostCount", "lost_count"),
    ("lostAmount", "lost_amount"),
)

Sums = dict[str, Any]
"""The deal roll-up's sums (``_DEAL_COLUMNS``) of one group; missing groups are all zero."""


@dataclass(frozen=True, slots=True)
class DealSums:
    """The deal roll-up of both periods, summed three ways. ``current``/``previous`` are the
    period totals; ``by_bucket`` the current period's day/week/month buckets; ``by_source`` and
    ``by_owner`` map a key to its (current, previous) sums."""

    current: Sums
    previous: Sums
    by_bucket: dict[date, Sums]
    by_source: dict[str, tuple[Sums, Sums]]
    by_owner: dict[uuid.UUID, tuple[Sums, Sums]]


_shared: ContextVar[dict[tuple[str, ReportQuery], Any] | None] = ContextVar(
    "report_shared_reads", default=None
)


@contextmanager
def shared_reads() -> Iterator[None]:
    """Within the block, reports with the same query share their roll-up reads (the
    dashboard: one read of the deal roll-up for four reports instead of five)."""
    token = _shared.set({})
    try:
        yield
    finally:
        _shared.reset(token)


def _zero() -> Sums:
    return dict.fromkeys(_DEAL_COLUMNS, 0)


async def deal_sums(session: AsyncSession, q: ReportQuery) -> DealSums:
    """The deal roll-up's sums for both periods in one statement (``GROUPING SETS``)."""
    cache = _shared.get()
    if cache is not None and ("deals", q) in cache:
        found: DealSums = cache[("deals", q)]
        return found
    bucket = "day" if q.interval == "day" else f"date_trunc('{q.interval}', day)::date"
    sums = ", ".join(f"sum({c}) AS {c}" for c in _DEAL_COLUMNS)
    rows = await _select(
        session,
        q,
        ru.DEALS,
        "SELECT cur, bucket, source, owner_id, grouping(bucket) AS no_bucket,"
        f" grouping(source) AS no_source, {sums} FROM ("
        f" SELECT day >= :cs AS cur, CASE WHEN day >= :cs THEN {bucket} END AS bucket,"
        f" source, owner_id, {', '.join(_DEAL_COLUMNS)}"
        f" FROM rows WHERE {_where(q, 'owner_id', sales=True)}) AS t"
        " GROUP BY GROUPING SETS ((cur, bucket), (cur, source), (cur, owner_id))",
    )
    result = DealSums(_zero(), _zero(), {}, {}, {})
    for row in rows:
        values = {c: getattr(row, c) for c in _DEAL_COLUMNS}
        side = 0 if row.cur else 1
        if not row.no_bucket:
            total = result.current if row.cur else result.previous
            for c in _DEAL_COLUMNS:
                total[c] += values[c]
            if row.cur:
                result.by_bucket[row.bucket] = values
        elif not row.no_source:
            result.by_source.setdefault(row.source, (_zero(), _zero()))[side].update(values)
        else:
            result.by_owner.setdefault(row.owner_id, (_zero(), _zero()))[side].update(values)
    if cache is not None:
        cache[("deals", q)] = result
    return result


# --- deals --------------------------------------------------------------------------------


async def deals(session: AsyncSession, q: ReportQuery) -> Report:
    """Deals created, won and lost per bucket, with totals against the previous period."""
    found = await deal_sums(session, q)
    rows: list[dict[str, Value]] = []
    for start in buckets(q):
        sums = found.by_bucket.get(start, _zero())
        row: dict[str, Value] = {"period": start}
        for key, col in _DEAL_SUMS:
            row[key] = _money(sums[col]) if key.endswith("Amount") else int(sums[col])
        rows.append(row)
    cur, prev = found.current, found.previous
    totals: dict[str, Figure] = {}
    for key, col in _DEAL_SUMS:
        if key.endswith("Amount"):
            totals[key] = figure(_money(cur[col]), _money(prev[col]))
        else:
            totals[key] = figure(int(cur[col]), int(prev[col]))
    totals["winRate"] = figure(
        rate(cur["won_count"], cur["won_count"] + cur["lost_count"]),
        rate(prev["won_count"], prev["won_count"] + prev["lost_count"]),
    )
    return _report(
        q,
        "deals",
        "Deals created, won and lost",
        [
            ("period", f"{q.interval.title()} starting", "date"),
            ("createdCount", "Created", "count"),
            ("createdAmount", "Created amount", "money"),
            ("wonCount", "Won", "count"),
            ("wonAmount", "Won amount", "money"),
            ("lostCount", "Lost", "count"),
            ("lostAmount", "Lost amount", "money"),
        ],
        rows,
        totals,
        note="Won and lost count on the day the deal was closed; created on the day it came in.",
    )


# --- calls --------------------------------------------------------------------------------


async def calls(session: AsyncSession, q: ReportQuery) -> Report:
    """Calls made per person, with their talk time, against the previous period."""
    found = await _select(
        session,
        q,
        ru.CALLS,
        f"SELECT user_id, {_cur('call_count')} AS calls, {_cur('call_seconds')} AS seconds,"
        f" {_prev('call_count')} AS calls_prev FROM rows WHERE {_where(q, 'user_id', sales=False)}"
        " GROUP BY user_id",
    )
    names = await people_names(session, q.organization_id, {r.user_id for r in found})
    rows: list[dict[str, Value]] = []
    for r in sorted(found, key=lambda r: (-r.calls, names.get(r.user_id, ""))):
        if not r.calls and not r.calls_prev:
            continue
        rows.append(
            {
                "personId": str(r.user_id),
                "person": names.get(r.user_id, NOBODY),
                "calls": int(r.calls),
                "minutes": round(int(r.seconds) / 60, 1),
                "avgMinutes": round(int(r.seconds) / 60 / r.calls, 1) if r.calls else None,
                "callsPrevious": int(r.calls_prev),
                "change": change(int(r.calls), int(r.calls_prev)),
            }
        )
    total = sum(int(r.calls) for r in found)
    total_prev = sum(int(r.calls_prev) for r in found)
    minutes = round(sum(int(r.seconds) for r in found) / 60, 1)
    return _report(
        q,
        "calls",
        "Calls made per person",
        [
            ("person", "Person", "text"),
            ("calls", "Calls", "count"),
            ("minutes", "Talk time, min", "minutes"),
            ("avgMinutes", "Average call, min", "minutes"),
            ("callsPrevious", "Calls, previous period", "count"),
            ("change", "Change", "rate"),
        ],
        rows,
        {"calls": figure(total, total_prev), "minutes": figure(minutes, None)},
    )


# --- conversion ---------------------------------------------------------------------------


async def _conversion(
    session: AsyncSession, q: ReportQuery, dimension: str
) -> list[dict[str, Any]]:
    found = await deal_sums(session, q)
    groups: dict[Any, tuple[Sums, Sums]] = (
        dict(found.by_source) if dimension == "source" else dict(found.by_owner)
    )
    out = [
        {
            "key": key,
            "leads": cur["created_count"],
            "won": cur["converted_count"],
            "revenue": cur["converted_amount"],
            "leads_prev": prev["created_count"],
            "won_prev": prev["converted_count"],
        }
        for key, (cur, prev) in groups.items()
    ]
    return [r for r in out if r["leads"] or r["leads_prev"]]


def _conversion_rows(
    found: list[dict[str, Any]], labels: Callable[[Any], dict[str, Value]]
) -> list[dict[str, Value]]:
    rows: list[dict[str, Value]] = []
    for r in sorted(found, key=lambda r: (-r["won"], -r["leads"], str(labels(r["key"])))):
        rows.append(
            {
                **labels(r["key"]),
                "leads": int(r["leads"]),
                "won": int(r["won"]),
                "conversion": rate(r["won"], r["leads"]),
                "revenue": _money(r["revenue"]),
                "conversionPrevious": rate(r["won_prev"], r["leads_prev"]),
            }
        )
    return rows


def _conversion_totals(found: list[dict[str, Any]]) -> dict[str, Figure]:
    leads = sum(int(r["leads"]) for r in found)
    won = sum(int(r["won"]) for r in found)
    leads_prev = sum(int(r["leads_prev"]) for r in found)
    won_prev = sum(int(r["won_prev"]) for r in found)
    return {
        "leads": figure(leads, leads_prev),
        "won": figure(won, won_prev),
        "conversion": figure(rate(won, leads), rate(won_prev, leads_prev)),
    }


_CONVERSION_NOTE = (
    "Requests are the deals that came in during the period; won counts those of them won by now."
)


async def conversion_by_source(session: AsyncSession, q: ReportQuery) -> Report:
    """Requests received per source and the share of them won."""
    found = await _conversion(session, q, "source")
    columns: list[tuple[str, str, ColumnKind]] = [
        ("source", "Source", "text"),
        ("leads", "Requests", "count"),
        ("won", "Won", "count"),
        ("conversion", "Conversion", "rate"),
        ("revenue", "Revenue", "money"),
        ("conversionPrevious", "Conversion, previous period", "rate"),
    ]
    rows = _conversion_rows(found, lambda s: {"source": s or NO_SOURCE})
    return _report(
        q,
        "conversion_by_source",
        "Conversion of requests into sales by source",
        columns,
        rows,
        _conversion_totals(found),
        note=_CONVERSION_NOTE,
    )


async def conversion_by_manager(session: AsyncSession, q: ReportQuery) -> Report:
    """Requests received per responsible manager and the share of them won."""
    found = await _conversion(session, q, "owner_id")
    names = await people_names(session, q.organization_id, {r["key"] for r in found})
    columns: list[tuple[str, str, ColumnKind]] = [
        ("person", "Manager", "text"),
        ("leads", "Requests", "count"),
        ("won", "Won", "count"),
        ("conversion", "Conversion", "rate"),
        ("revenue", "Revenue", "money"),
        ("conversionPrevious", "Conversion, previous period", "rate"),
    ]
    rows = _conversion_rows(found, lambda i: {"personId": str(i), "person": names.get(i, NOBODY)})
    return _report(
        q,
        "conversion_by_manager",
        "Conversion of requests into sales by manager",
        columns,
        rows,
        _conversion_totals(found),
        note=_CONVERSION_NOTE,
    )


# --- sources ------------------------------------------------------------------------------


async def sources(session: AsyncSession, q: ReportQuery) -> Report:
    """Lead sources ranked by deals won in the period, then by revenue."""
    found = [
        SimpleNamespace(
            source=source,
            leads=cur["created_count"],
            won=cur["won_count"],
            revenue=cur["won_amount"],
            lost=cur["lost_count"],
            won_prev=prev["won_count"],
            revenue_prev=prev["won_amount"],
        )
        for source, (cur, prev) in (await deal_sums(session, q)).by_source.items()
    ]
    active = [r for r in found if r.leads or r.won or r.lost or r.won_prev]
    ordered = sorted(active, key=lambda r: (-r.won, -r.revenue, r.source))
    by_revenue = sorted(active, key=lambda r: (-r.revenue, -r.won, r.source))
    revenue_rank = {r.source: i + 1 for i, r in enumerate(by_revenue)}
    total_revenue = sum(_money(r.revenue) for r in active)
    rows: list[dict[str, Value]] = [
        {
            "rank": i + 1,
            "source": r.source or NO_SOURCE,
            "leads": int(r.leads),
            "won": int(r.won),
            "revenue": _money(r.revenue),
            "revenueRank": revenue_rank[r.source],
            "revenueShare": rate(r.revenue, total_revenue),
            "lost": int(r.lost),
            "wonPrevious": int(r.won_prev),
            "revenuePrevious": _money(r.revenue_prev),
        }
        for i, r in enumerate(ordered)
    ]
    won = sum(int(r.won) for r in active)
    won_prev = sum(int(r.won_prev) for r in active)
    return _report(
        q,
        "sources",
        "Lead sources ranked by deals won and revenue",
        [
            ("rank", "Rank by deals", "rank"),
            ("source", "Source", "text"),
            ("leads", "Requests", "count"),
            ("won", "Won", "count"),
            ("revenue", "Revenue", "money"),
            ("revenueRank", "Rank by revenue", "rank"),
            ("revenueShare", "Share of revenue", "rate"),
            ("lost", "Lost", "count"),
            ("wonPrevious", "Won, previous period", "count"),
            ("revenuePrevious", "Revenue, previous period", "money"),
        ],
        rows,
        {
            "won": figure(won, won_prev),
            "revenue": figure(total_revenue, sum(_money(r.revenue_prev) for r in active)),
        },
        note="Won deals and revenue count on the day the deal was won.",
    )


# --- funnel -------------------------------------------------------------------------------


async def _funnel_pipeline(session: AsyncSession, q: ReportQuery) -> uuid.UUID | None:
    if q.pipeline_id is not None:
        return q.pipeline_id
    found: uuid.UUID | None = await session.scalar(
        text(
            "SELECT id FROM pipelines WHERE organization_id = :org"
            " ORDER BY is_default DESC, created_at LIMIT 1"
        ),
        {"org": q.organization_id},
    )
    return found


async def funnel(session: AsyncSession, q: ReportQuery) -> Report:
    """The pipeline's stages in order: how many of the period's requests reached each (or a
    later one), the conversion from the stage before and from the first, and the average days
    spent in the stage."""
    pipeline_id = await _funnel_pipeline(session, q)
    stages = (
        (
            await session.execute(
                text(
                    "SELECT id, name, kind::text AS kind FROM stages WHERE pipeline_id = :p"
                    " AND kind <> 'lost' ORDER BY position"
                ),
                {"p": pipeline_id},
            )
        ).all()
        if pipeline_id is not None
        else []
    )
    found = (
        await _select(
            session,
            q,
            ru.STAGES,
            f"SELECT stage_id, {_cur('reached_count')} AS reached,"
            f" {_prev('reached_count')} AS reached_prev, {_cur('exit_count')} AS exits,"
            f" {_cur('exit_seconds')} AS exit_seconds FROM rows"
            f" WHERE {_where(q, 'owner_id', sales=True)} AND pipeline_id = :funnel_pipeline"
            " GROUP BY stage_id",
            {"funnel_pipeline": pipeline_id},
        )
        if pipeline_id is not None
        else []
    )
    by_stage = {r.stage_id: r for r in found}
    rows: list[dict[str, Value]] = []
    first = previous = None
    won = won_prev = first_prev = 0
    for stage in stages:
        r = by_stage.get(stage.id)
        reached = int(r.reached) if r else 0
        exits = int(r.exits) if r else 0
        seconds = int(r.exit_seconds) if r else 0
        reached_prev = int(r.reached_prev) if r else 0
        if first is None:
            first, first_prev = reached, reached_prev
        if stage.kind == "won":
            won, won_prev = won + reached, won_prev + reached_prev
        rows.append(
            {
                "stageId": str(stage.id),
                "stage": stage.name,
                "reached": reached,
                "conversionFromPrevious": rate(reached, previous) if previous is not None else None,
                "conversionFromFirst": rate(reached, first),
                "avgDaysInStage": round(seconds / exits / 86400, 2) if exits else None,
                "reachedPrevious": reached_prev,
            }
        )
        previous = reached
    return _report(
        q,
        "funnel",
        "Sales funnel",
        [
            ("stage", "Stage", "text"),
            ("reached", "Reached", "count"),
            ("conversionFromPrevious", "From the stage before", "rate"),
            ("conversionFromFirst", "From the first stage", "rate"),
            ("avgDaysInStage", "Average days in stage", "days"),
            ("reachedPrevious", "Reached, previous period", "count"),
        ],
        rows,
        {
            "requests": figure(first or 0, first_prev),
            "won": figure(won, won_prev),
            "conversion": figure(rate(won, first or 0), rate(won_prev, first_prev)),
        },
        note="Reached: requests that came in during the period and got to the stage or a later "
        "one. Days in stage: moves out of the stage made during the period.",
    )


# --- overdue tasks ------------------------------------------------------------------------


async def _overdue_today(session: AsyncSession, q: ReportQuery) -> dict[uuid.UUID, int]:
    """Active tasks due earlier today (already late, but their day is not over)."""
    zone = ZoneInfo(q.time_zone)
    today = q.today
    start = datetime(today.year, today.month, today.day, tzinfo=zone)
    people = "AND assignee_id = ANY(CAST(:people AS uuid[]))" if q.people is not None else ""
    found = await session.execute(
        text(
            f"SELECT coalesce(assignee_id, {ru.NIL}) AS person, count(*) AS n FROM tasks"
            " WHERE organization_id = :org AND status IN ('open', 'in_progress')"
            f" AND due_at >= :start AND due_at < :now {people} GROUP BY 1"
        ),
        {
            "org": q.organization_id,
            "start": start,
            "now": q.now,
            **({"people": list(q.people)} if q.people is not None else {}),
        },
    )
    return {row.person: int(row.n) for row in found}


async def overdue_tasks(session: AsyncSession, q: ReportQuery) -> Report:
    """Per person: tasks due in the period, done on time, done late and still open past due."""
    today = q.today
    found = await _select(
        session,
        q,
        ru.TASKS,
        f"SELECT assignee_id, {_cur('due_count')} AS due, {_cur('done_on_time')} AS on_time,"
        f" {_cur('done_late')} AS late,"
        " coalesce(sum(open_count) FILTER (WHERE day >= :cs AND day < :today), 0) AS open_late,"
        f" {_prev('due_count')} AS due_prev, {_prev('done_late')} AS late_prev,"
        " coalesce(sum(open_count) FILTER (WHERE day < :cs AND day < :today), 0) AS open_prev"
        f" FROM rows WHERE {_where(q, 'assignee_id', sales=False)} GROUP BY assignee_id",
        {"today": today},
    )
    live = await _overdue_today(session, q)
    live_current = live if q.start <= today <= q.end else {}
    live_previous = live if q.previous_start <= today <= q.previous_end else {}
    people = {r.assignee_id for r in found} | set(live_current) | set(live_previous)
    names = await people_names(session, q.organization_id, people)
    by_person = {r.assignee_id: r for r in found}
    rows: list[dict[str, Value]] = []
    overdue_of: dict[str, int] = {}
    totals = dict.fromkeys(("due", "late", "open", "overdue", "due_prev", "overdue_prev"), 0)
    for person in people:
        r = by_person.get(person)
        due = int(r.due) if r else 0
        late = int(r.late) if r else 0
        open_late = (int(r.open_late) if r else 0) + live_current.get(person, 0)
        overdue = late + open_late
        overdue_prev = (int(r.late_prev) + int(r.open_prev) if r else 0) + live_previous.get(
            person, 0
        )
        due_prev = int(r.due_prev) if r else 0
        for key, value in (
            ("due", due),
            ("late", late),
            ("open", open_late),
            ("overdue", overdue),
            ("due_prev", due_prev),
            ("overdue_prev", overdue_prev),
        ):
            totals[key] += value
        if not (due or overdue or overdue_prev):
            continue
        overdue_of[str(person)] = overdue
        rows.append(
            {
                "personId": str(person),
                "person": names.get(person, NOBODY),
                "due": due,
                "doneOnTime": int(r.on_time) if r else 0,
                "doneLate": late,
                "openOverdue": open_late,
                "overdue": overdue,
                "overdueRate": rate(overdue, due),
                "overduePrevious": overdue_prev,
            }
        )
    rows.sort(key=lambda row: (-overdue_of[str(row["personId"])], str(row["person"])))
    return _report(
        q,
        "overdue_tasks",
        "Overdue tasks per person",
        [
            ("person", "Person", "text"),
            ("due", "Due in period", "count"),
            ("doneOnTime", "Done on time", "count"),
            ("doneLate", "Done late", "count"),
            ("openOverdue", "Open past due", "count"),
            ("overdue", "Overdue", "count"),
            ("overdueRate", "Overdue share", "rate"),
            ("overduePrevious", "Overdue, previous period", "count"),
        ],
        rows,
        {
            "overdue": figure(totals["overdue"], totals["overdue_prev"]),
            "openOverdue": figure(totals["open"], None),
            "overdueRate": figure(
                rate(totals["overdue"], totals["due"]),
                rate(totals["overdue_prev"], totals["due_prev"]),
            ),
        },
        note="Tasks by their due day; cancelled tasks are left out.",
    )


REPORTS: dict[str, Callable[[AsyncSession, ReportQuery], Any]] = {
    "deals": deals,
    "calls": calls,
    "conversion_by_source": conversion_by_source,
    "conversion_by_manager": conversion_by_manager,
    "sources": sources,
    "funnel": funnel,
    "overdue_tasks": overdue_tasks,
}
"""Every report by name (the dashboard runs them all)."""
