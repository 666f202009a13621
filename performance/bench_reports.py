"""Benchmark: the owner's dashboard and the team appraisal for a quarter, from the daily roll-ups,
against computing the same numbers on the fly from the raw tables, in the same run.

Data: ``performance/generate_appraisal_data.py`` (500 staff; at full size 200k deals, 400k
calls, 500k tasks, 10 M pings; ``--quick`` uses scale 0.01). In process (no HTTP), on the
organisation's admin:

- ``owner_dashboard_ms``: ``report_dashboard.dashboard`` (seven reports, both periods) for the
  last 90 local days, median of the runs; the baseline runs the same function with
  ``raw=True`` (every day from the raw rows) → ``naive_vs_rollup_ratio`` = naive / roll-ups;
- ``team_appraisal_ms``: ``backend.appraisal.kpis.team_appraisal`` for one team and the same
  quarter; baseline: ``field_rollups.live_counts`` + ``live_team_revenue`` of its members.

GOAL: each ≤ 300 ms. Own database (fieldcrm_bench_reports), dropped afterwards unless --keep.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import time
import uuid
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from benchkit import fresh_database, log, machine_meta, start, write_json
from generate_appraisal_data import TZ, generate
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker, create_async_engine

from backend.accounts.services import load_actor
from backend.appraisal.report_dashboard import dashboard
from backend.appraisal.report_filters import RawFilters, resolve

DATABASE = "fieldcrm_bench_reports"
GOAL_MS = 300.0
QUARTER_DAYS = 90


async def _time(
    sessionmaker: async_sessionmaker[AsyncSession],
    runs: int,
    work: Callable[[AsyncSession], Awaitable[Any]],
) -> list[float]:
    """Milliseconds of ``runs`` calls (after one warm-up), each in its own transaction."""
    out = []
    for i in range(runs + 1):
        async with sessionmaker() as session, session.begin():
            started = time.perf_counter()
            await work(session)
            if i:
                out.append((time.perf_counter() - started) * 1000)
    return out


async def measure(
    url: str, org_id: uuid.UUID, admin_id: uuid.UUID, team_id: uuid.UUID, runs: int
) -> dict[str, Any]:
    """Every timing of the run."""
    engine = create_async_engine(url, pool_size=1, connect_args={"server_settings": {"jit": "off"}})
    sessionmaker = async_sessionmaker(engine, expire_on_commit=False)
    now = datetime.now(UTC)
    end = now.astimezone(TZ).date()
    begin = end - timedelta(days=QUARTER_DAYS - 1)
    filters = RawFilters(start=begin.isoformat(), end=end.isoformat())
    results: dict[str, Any] = {}
    try:
        async with sessionmaker() as session:
            actor = await load_actor(session, admin_id, org_id, 1)

        async def rolled(session: AsyncSession) -> Any:
            return await dashboard(session, await resolve(session, actor, filters, now))

        async def naive(session: AsyncSession) -> Any:
            return await dashboard(
                session, await resolve(session, actor, filters, now, raw_mode=True)
            )

        async with sessionmaker() as session:
            a, b = await rolled(session), await naive(session)
            results["same_numbers"] = a.reports == b.reports
        results["dashboard"] = await _time(sessionmaker, runs, rolled)
        results["dashboard_naive"] = await _time(sessionmaker, max(runs // 2, 2), naive)
        try:
            from backend.appraisal import field_rollups, kpis
        except ImportError:
            log("backend.appraisal.kpis.team_appraisal is not there: team_appraisal_ms left out")
            return results

        async def team(session: AsyncSession) -> Any:
            return await kpis.team_appraisal(session, org_id, team_id, begin, end)

        async def team_naive(session: AsyncSession) -> Any:
            appraisal = await kpis.team_appraisal(session, org_id, team_id, begin, begin)
            members = [m.user_id for m in appraisal.members]
            counts = await field_rollups.live_counts(session, org_id, members, begin, end, now)
            revenue = await field_rollups.live_team_revenue(session, org_id, members, begin, end)
            return counts, revenue

        results["team"] = await _time(sessionmaker, runs, team)
        results["team_naive"] = await _time(sessionmaker, max(runs // 2, 2), team_naive)
    finally:
        await engine.dispose()
    return results


def report(results: dict[str, Any], meta: dict[str, Any]) -> dict[str, Any]:
    """Print the table; the figures and meta for --json."""
    med = {k: statistics.median(v) for k, v in results.items() if isinstance(v, list)}
    figures: dict[str, float] = {
        "owner_dashboard_ms": round(med["dashboard"], 1),
        "owner_dashboard_naive_ms": round(med["dashboard_naive"], 1),
        "naive_vs_rollup_ratio": round(med["dashboard_naive"] / med["dashboard"], 1),
    }
    if "team" in med:
        figures["team_appraisal_ms"] = round(med["team"], 1)
        figures["team_appraisal_naive_ms"] = round(med["team_naive"], 1)
        figures["team_appraisal_naive_vs_rollup_ratio"] = round(med["team_naive"] / med["team"], 1)
    print(f"\n{'a quarter, median of runs':<44} {'roll-ups':>10} {'on the fly':>11} {'ratio':>7}")
    print(
        f"{'owner dashboard (7 reports, 2 periods)':<44} {med['dashboard']:>8.1f}ms"
        f" {med['dashboard_naive']:>9.1f}ms {figures['naive_vs_rollup_ratio']:>6.1f}x"
    )
    if "team" in med:
        print(
            f"{'team appraisal (kpis.team_appraisal)':<44} {med['team']:>8.1f}ms"
            f" {med['team_naive']:>9.1f}ms {figures['team_appraisal_naive_vs_rollup_ratio']:>6.1f}x"
        )
    else:
        print("team appraisal: backend.appraisal.kpis.team_appraisal not available (left out)")
    for key in ("owner_dashboard_ms", "team_appraisal_ms"):
        if key in figures:
            verdict = "ok" if figures[key] <= GOAL_MS else "OVER"
            print(f"GOAL {key} <= {GOAL_MS:.0f}: {figures[key]:.1f} {verdict}")
    print(f"dashboard numbers equal on both paths: {results['same_numbers']}")
    return {"figures": figures, "meta": {**meta, "same_numbers": results["same_numbers"]}}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="scale 0.01, 5 runs")
    parser.add_argument("--scale", type=float, help="data scale (default 1, quick 0.01)")
    parser.add_argument("--runs", type=int, help="timed runs (default 20, quick 5)")
    parser.add_argument("--json", type=Path, metavar="PATH", help="write figures as JSON")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--keep", action="store_true", help="keep the database afterwards")
    args = parser.parse_args(argv)
    scale = args.scale or (0.01 if args.quick else 1.0)
    runs = args.runs or (5 if args.quick else 20)
    url = start(DATABASE)
    if url is None:
        return 1
    with fresh_database(url, keep=args.keep):
        started = time.perf_counter()
        generated = asyncio.run(generate(url, scale, args.seed))
        log(f"generated in {time.perf_counter() - started:.0f} s: {generated.summary()}")
        results = asyncio.run(
            measure(url, generated.org_id, generated.people.admin, generated.people.teams[0], runs)
        )
        meta = {
            **machine_meta(url),
            "scale": scale,
            "rows": generated.counts,
            "load_seconds": {k: round(v, 1) for k, v in generated.seconds.items()},
            "quarter_days": QUARTER_DAYS,
            "runs": runs,
            "quick": args.quick,
            "seed": args.seed,
            "when": datetime.now(UTC).isoformat(timespec="seconds"),
        }
        result = report(results, meta)
        if args.json:
            write_json(args.json, result)
    return 0


if __name__ == "__main__":
    sys.exit(main())
