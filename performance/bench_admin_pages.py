"""Benchmark: server time of the admin screens with the demo company, each against the JSON API
call that serves the same data, in the same run.

    python performance/bench_admin_pages.py [--quick] [--json PATH] [--requests N] [--keep]

Issue #8's goal: every page's server time p95 <= 50 ms with the demo data. This is
``bench_pages.py``'s method (same database set-up, server, login, interleaved page/API requests
and access-log timing; its functions are reused, not copied) on the admin's pages, requested by
the demo admin Kirill with a browser session cookie from the real login form; the baseline is
his bearer-token API call returning the page's data:

    page                          baseline API call
    /admin/users                  GET /api/v1/users
    /admin/users/{igor}           GET /api/v1/users/{igor}
    /admin/teams                  GET /api/v1/teams
    /admin/teams/{team A}         GET /api/v1/teams/{team A}
    /admin/pipelines              GET /api/v1/pipelines
    /admin/stages/{measurement}   GET /api/v1/pipelines/{default}
    /admin/automations/{id}       GET /api/v1/pipelines/{default}
    /admin/lead-forms             GET /api/v1/lead-forms
    /admin/lead-forms/{id}        GET /api/v1/lead-forms
    /admin/templates              GET /api/v1/document-templates

Own database ``fieldcrm_bench_admin_pages``, dropped at the end (``--keep`` leaves it).
Figure keys: ``admin_<page>_p50_ms``/``_p95_ms``, ``admin_<page>_api_*``, ``_ratio_p95`` and
``pages_worst_p95_ms``.
"""

from __future__ import annotations

import asyncio
import sys
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import bench_pages
import httpx
from bench_pages import Target, browser_login, load_demo, measure, parse_args
from benchkit import (
    Server,
    app_secret_key,
    fresh_database,
    log,
    machine_meta,
    server_env,
    start,
    tokens_for,
    write_json,
)
from sqlalchemy import select
from sqlalchemy.ext.asyncio import async_sessionmaker, create_async_engine

from backend.accounts.models import Team
from backend.sales.models import Automation, LeadForm, Stage
from backend.seed.demo import seed_demo

DATABASE = "fieldcrm_bench_admin_pages"
ADMIN = "kirill"


@dataclass
class AdminIds:
    """Rows of the demo company the admin pages are asked about."""

    team_id: uuid.UUID
    stage_id: uuid.UUID
    automation_id: uuid.UUID
    form_id: uuid.UUID


async def admin_ids(url: str, demo: bench_pages.Demo) -> AdminIds:
    """Team A, the default pipeline's stage with most automations, one of them, a lead form."""
    engine = create_async_engine(url)
    sessions = async_sessionmaker(engine, expire_on_commit=False)
    try:
        async with sessions() as session:
            team_id = await session.scalar(
                select(Team.id).where(Team.lead_id == demo.users["anna"]).limit(1)
            )
            automation = await session.scalar(
                select(Automation)
                .join(Stage, Stage.id == Automation.stage_id)
                .where(Stage.pipeline_id == demo.pipeline_id)
                .order_by(Stage.position, Automation.position)
                .limit(1)
            )
            form_id = await session.scalar(
                select(LeadForm.id).where(LeadForm.organization_id == demo.org_id).limit(1)
            )
    finally:
        await engine.dispose()
    assert team_id is not None
    assert automation is not None
    assert form_id is not None
    return AdminIds(team_id, automation.stage_id, automation.id, form_id)


def targets(demo: bench_pages.Demo, ids: AdminIds) -> list[Target]:
    """The admin pages and their baselines, all as the admin."""
    igor = demo.users["igor"]
    pipeline = f"/api/v1/pipelines/{demo.pipeline_id}"
    return [
        Target("admin_users", ADMIN, "/admin/users", "/api/v1/users"),
        Target("admin_user", ADMIN, f"/admin/users/{igor}", f"/api/v1/users/{igor}"),
        Target("admin_teams", ADMIN, "/admin/teams", "/api/v1/teams"),
        Target("admin_team", ADMIN, f"/admin/teams/{ids.team_id}", f"/api/v1/teams/{ids.team_id}"),
        Target("admin_pipelines", ADMIN, "/admin/pipelines", "/api/v1/pipelines"),
        Target("admin_stage", ADMIN, f"/admin/stages/{ids.stage_id}", pipeline),
        Target("admin_automation", ADMIN, f"/admin/automations/{ids.automation_id}", pipeline),
        Target("admin_lead_forms", ADMIN, "/admin/lead-forms", "/api/v1/lead-forms"),
        Target("admin_lead_form", ADMIN, f"/admin/lead-forms/{ids.form_id}", "/api/v1/lead-forms"),
        Target("admin_templates", ADMIN, "/admin/templates", "/api/v1/document-templates"),
    ]


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    url = start(DATABASE)
    if url is None:
        return 1
    secret_key = app_secret_key()
    with fresh_database(url, keep=args.keep) as files_dir:
        server: Server | None = None
        clients: list[httpx.Client] = []
        try:
            started = time.perf_counter()
            log(asyncio.run(seed_demo(url)).splitlines()[0])
            log(f"demo seeded in {time.perf_counter() - started:.1f} s")
            demo = asyncio.run(load_demo(url))
            ids = asyncio.run(admin_ids(url, demo))
            tokens = tokens_for(list(demo.users.values()), demo.org_id, secret_key)
            server = Server(server_env(url, secret_key, files_dir, log_json=True))
            log(f"starting {' '.join(server.argv[2:])}")
            server.wait_ready()
            browser = browser_login(server.base, demo.emails[ADMIN])
            api = httpx.Client(
                base_url=server.base,
                timeout=30.0,
                headers={"Authorization": f"Bearer {tokens[demo.users[ADMIN]]}"},
            )
            clients += [browser, api]
            results = []
            for target in targets(demo, ids):
                measured = measure(server, target, browser, api, args.requests)
                status = f"p95 {measured.page.p95:.1f} ms" if measured.present else "absent"
                log(f"{target.key}: {status}")
                results.append(measured)
            meta: dict[str, Any] = {
                **machine_meta(url),
                "requests": args.requests,
                "warmup": bench_pages.WARMUP,
                "server": "uvicorn --factory backend.app:app_factory --workers 1,"
                " FIELDCRM_ENV=development, FIELDCRM_LOG_JSON=true",
                "pages": {m.target.key: [m.target.page, m.target.api] for m in results},
                "goal_p95_ms": bench_pages.GOAL_P95_MS,
                "quick": args.quick,
                "when": datetime.now(UTC).isoformat(timespec="seconds"),
            }
            result = bench_pages.report(results, bench_pages.javascript_bytes(), meta)
            if args.json:
                write_json(args.json, result)
        finally:
            for client in clients:
                client.close()
            if server is not None:
                server.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
