"""Benchmark: server time of the web client's main pages with the demo company, each against the
JSON API call that serves the same data, in the same run; and the size of our JavaScript.

    python performance/bench_pages.py [--quick] [--json PATH] [--requests N] [--keep]

Issue #8's goals: every page's server time p95 <= 50 ms with the demo data, and the JavaScript
we write (``web/static/js/*.js``, vendored libraries not counted) <= 30 KB.

Everything happens in its own database ``fieldcrm_bench_pages`` (made by backend.db.provision
on FIELDCRM_DATABASE_URL's server, or the local one): its schema is dropped and rebuilt by the
migrations, the demo company is loaded by ``backend.seed.demo.seed_demo`` (Kirill's Windows:
320 customers, today's visits for every field worker, the window pipeline with its deals),
and the database is dropped at the end (``--keep`` leaves it).

The app runs under uvicorn (one worker process, ``FIELDCRM_LOG_JSON=true`` as in production).
Each page is requested as the person who uses it, with a browser session cookie from the real
login form: the field worker Igor for ``/today`` and his visit, the manager Anna (team A) for
the manager's screens and appraisal, the admin Kirill for reports. Its baseline is the
API call with the same person's bearer token that returns the page's data:

    page                    baseline API call
    /today                  GET /api/v1/me/route
    /visits/{id}            GET /api/v1/tasks/{id}
    /team, /map             GET /api/v1/tracking/live
    /deals                  GET /api/v1/deals?pipelineId=...&limit=200
    /deals/{id}             GET /api/v1/deals/{id}/timeline
    /customers              GET /api/v1/customers
    /customers/{id}         GET /api/v1/customers/{id}
    /tasks                  GET /api/v1/tasks
    /dispatch               GET /api/v1/teams
    /reports                GET /api/v1/reports/dashboard   (when the checkout has them)
    /appraisal              GET /api/v1/appraisal/teams/{Anna's team}

``--requests`` sequential requests per page and per baseline (default 200, ``--quick`` 40)
after 5 warm-up requests each, interleaved page/API so both see the same machine load. Server
time is the ``duration_ms`` of the app's access log (from the first byte in the ASGI app to
the end of the response: authentication, the transaction and template rendering included;
uvicorn's HTTP parsing not). ``<page>_p50_ms``/``_p95_ms`` are the page's, ``<page>_api_*``
its baseline's, ``<page>_ratio_p95`` page p95 / API p95 (how much the HTML costs over the
JSON). A page that does not answer 200 (not built in this checkout) is listed as absent.
"""

from __future__ import annotations

import argparse
import asyncio
import re
import sys
import time
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
from benchkit import (
    ROOT,
    Series,
    Server,
    app_secret_key,
    fresh_database,
    log,
    machine_meta,
    progress,
    server_env,
    start,
    tokens_for,
    write_json,
)
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker, create_async_engine

from backend.accounts.models import Organization, Team, User
from backend.customers.models import Customer
from backend.sales.models import Deal, Pipeline
from backend.seed.demo import DEMO_ORG_NAME, DEMO_USERS, demo_password, seed_demo
from backend.tasks.models import Task, TaskKind

DATABASE = "fieldcrm_bench_pages"
GOAL_P95_MS = 50.0
GOAL_JS_KB = 30.0
WARMUP = 5
JS_DIR = ROOT / "web" / "static" / "js"


@dataclass
class Target:
    """One page and its baseline API call, as whom."""

    key: str
    who: str
    page: str
    api: str


@dataclass
class Measured:
    target: Target
    page: Series
    api: Series
    present: bool = True
    notes: list[str] = field(default_factory=list)


@dataclass
class Demo:
    """Ids of the demo company the pages are asked about."""

    org_id: uuid.UUID
    users: dict[str, uuid.UUID]
    emails: dict[str, str]
    pipeline_id: uuid.UUID
    deal_id: uuid.UUID
    customer_id: uuid.UUID
    visit_id: uuid.UUID | None
    team_id: uuid.UUID


async def load_demo(url: str) -> Demo:
    """Look up the ids the targets need (the busiest deal, a customer of Anna's, a visit of
    Igor's today)."""
    engine = create_async_engine(url)
    sessions = async_sessionmaker(engine, expire_on_commit=False)
    try:
        async with sessions() as session:
            return await _demo(session)
    finally:
        await engine.dispose()


async def _demo(session: AsyncSession) -> Demo:
    org_id = await session.scalar(select(Organization.id).where(Organization.name == DEMO_ORG_NAME))
    assert org_id is not None, "the demo organisation was not seeded"
    emails = {u.key: u.email for u in DEMO_USERS}
    rows = await session.execute(select(User.email, User.id).where(User.organization_id == org_id))
    by_email = dict(rows.all())
    users = {key: by_email[email] for key, email in emails.items()}
    pipeline_id = await session.scalar(
        select(Pipeline.id).where(Pipeline.organization_id == org_id, Pipeline.is_default)
    )
    assert pipeline_id is not None
    anna = users["anna"]
    deal_id = await session.scalar(
        select(Deal.id)
        .where(Deal.organization_id == org_id, Deal.owner_id == anna)
        .order_by(Deal.created_at.desc())
        .limit(1)
    )
    customer_id = await session.scalar(
        select(Customer.id)
        .where(Customer.organization_id == org_id, Customer.owner_id == anna)
        .limit(1)
    )
    assert deal_id is not None
    assert customer_id is not None
    visit_id = await session.scalar(
        select(Task.id)
        .where(
            Task.organization_id == org_id,
            Task.assignee_id == users["igor"],
            Task.kind.in_((TaskKind.MEASUREMENT, TaskKind.INSTALLATION, TaskKind.VISIT)),
        )
        .order_by(Task.window_start.desc().nulls_last())
        .limit(1)
    )
    team = await session.scalar(select(Team.id).where(Team.lead_id == anna))
    assert team is not None
    return Demo(org_id, users, emails, pipeline_id, deal_id, customer_id, visit_id, team)


def targets(demo: Demo) -> list[Target]:
    """The pages and their baselines."""
    found = [
        Target("today", "igor", "/today", "/api/v1/me/route"),
        Target("team", "anna", "/team", "/api/v1/tracking/live"),
        Target("map", "anna", "/map", "/api/v1/tracking/live"),
        Target(
            "deals",
            "anna",
            "/deals",
            f"/api/v1/deals?pipelineId={demo.pipeline_id}&limit=200",
        ),
        Target(
            "deal_card",
            "anna",
            f"/deals/{demo.deal_id}",
            f"/api/v1/deals/{demo.deal_id}/timeline",
        ),
        Target("customers", "anna", "/customers", "/api/v1/customers"),
        Target(
            "customer_card",
            "anna",
            f"/customers/{demo.customer_id}",
            f"/api/v1/customers/{demo.customer_id}",
        ),
        Target("tasks", "anna", "/tasks", "/api/v1/tasks"),
        Target("dispatch", "anna", "/dispatch", "/api/v1/teams"),
        Target("reports", "kirill", "/reports", "/api/v1/reports/dashboard"),
        Target("appraisal", "anna", "/appraisal", f"/api/v1/appraisal/teams/{demo.team_id}"),
    ]
    if demo.visit_id is not None:
        found.insert(
            1, Target("visit", "igor", f"/visits/{demo.visit_id}", f"/api/v1/tasks/{demo.visit_id}")
        )
    return found


def browser_login(base: str, email: str) -> httpx.Client:
    """An HTTP client holding a session cookie from the real login form."""
    client = httpx.Client(base_url=base, timeout=30.0, follow_redirects=False)
    form = client.get("/login")
    match = re.search(r'name="_csrf_token" value="([^"]+)"', form.text)
    assert match, "the login form has a CSRF token"
    answer = client.post(
        "/login",
        data={"email": email, "password": demo_password(), "next": "/", "_csrf_token": match[1]},
    )
    if answer.status_code != 303:
        raise RuntimeError(f"login of {email} failed: {answer.status_code} {answer.text[:200]}")
    return client


def measure(
    server: Server,
    target: Target,
    browser: httpx.Client,
    api: httpx.Client,
    requests: int,
) -> Measured:
    """``requests`` sequential page and API requests, interleaved, after the warm-up; server
    times from the access log."""
    page_path = target.page.split("?")[0]
    api_path = target.api.split("?")[0]
    probe = browser.get(target.page)
    if probe.status_code != 200:
        return Measured(target, Series(page_path), Series(api_path), present=False)
    if api.get(target.api).status_code != 200:
        return Measured(target, Series(page_path), Series(api_path), present=False)
    for _ in range(WARMUP):
        browser.get(target.page)
        api.get(target.api)
    since = server.log_offset()
    for _ in progress(range(requests), target.key):
        page = browser.get(target.page)
        if page.status_code != 200:
            raise RuntimeError(f"{target.page}: {page.status_code}")
        answer = api.get(target.api)
        if answer.status_code != 200:
            raise RuntimeError(f"{target.api}: {answer.status_code}")
    time.sleep(0.3)  # the access log is written after the response
    return Measured(
        target,
        server.durations(page_path, since),
        server.durations(api_path, since),
    )


def javascript_bytes() -> dict[str, int]:
    """Size of each JavaScript file we wrote (web/static/js/*.js)."""
    return (
        {p.name: p.stat().st_size for p in sorted(JS_DIR.glob("*.js"))} if JS_DIR.exists() else {}
    )


def report(results: list[Measured], js: dict[str, int], meta: dict[str, Any]) -> dict[str, Any]:
    """Print the table and return the JSON result."""
    figures: dict[str, float] = {}
    print(f"\nServer time of the pages (ms, {meta['requests']} requests each, demo company)")
    header = (
        f"{'page':<15}{'p50':>8}{'p95':>8}   {'API p50':>8}{'API p95':>8}   {'page/API p95':>12}"
    )
    print(header)
    print("-" * len(header))
    worst = 0.0
    for m in results:
        key = m.target.key
        if not m.present:
            print(f"{key:<15}{'absent (no 200 in this checkout)':>50}")
            continue
        ratio = m.page.p95 / m.api.p95 if m.api.p95 else float("nan")
        goal = "" if m.page.p95 <= GOAL_P95_MS else "  > goal"
        print(
            f"{key:<15}{m.page.p50:>8.1f}{m.page.p95:>8.1f}   {m.api.p50:>8.1f}{m.api.p95:>8.1f}"
            f"   {ratio:>11.2f}x{goal}"
        )
        figures |= {
            f"{key}_p50_ms": round(m.page.p50, 2),
            f"{key}_p95_ms": round(m.page.p95, 2),
            f"{key}_api_p50_ms": round(m.api.p50, 2),
            f"{key}_api_p95_ms": round(m.api.p95, 2),
            f"{key}_ratio_p95": round(ratio, 3),
        }
        worst = max(worst, m.page.p95)
    total = sum(js.values())
    figures["pages_worst_p95_ms"] = round(worst, 2)
    figures["js_total_bytes"] = total
    figures["js_total_kb"] = round(total / 1024, 2)
    print(f"\nworst page p95 {worst:.1f} ms (goal <= {GOAL_P95_MS:.0f} ms)")
    print(
        f"JavaScript we wrote: {total / 1024:.1f} KB in {len(js)} files (goal <= {GOAL_JS_KB:.0f}"
        " KB): " + ", ".join(f"{name} {size / 1024:.1f} KB" for name, size in js.items())
    )
    print(
        f"machine: {meta['cpu_count']} CPUs, {meta['platform']}, Python {meta['python']},"
        f" PostgreSQL {meta['postgres']}"
    )
    absent = [m.target.key for m in results if not m.present]
    return {"figures": figures, "meta": meta | {"absent_pages": absent, "js_files": js}}


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="fewer requests (under a minute)")
    parser.add_argument("--json", type=Path, help="write the figures to this file")
    parser.add_argument("--requests", type=int, help="requests per page (default 200/40)")
    parser.add_argument("--keep", action="store_true", help="keep the database afterwards")
    args = parser.parse_args(argv)
    if args.requests is None:
        args.requests = 40 if args.quick else 200
    if args.requests < 2:
        parser.error("--requests must be at least 2")
    return args


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
            tokens = tokens_for(list(demo.users.values()), demo.org_id, secret_key)
            server = Server(server_env(url, secret_key, files_dir, log_json=True))
            log(f"starting {' '.join(server.argv[2:])}")
            server.wait_ready()
            browsers: dict[str, httpx.Client] = {}
            apis: dict[str, httpx.Client] = {}
            results = []
            for target in targets(demo):
                who = target.who
                if who not in browsers:
                    browsers[who] = browser_login(server.base, demo.emails[who])
                    apis[who] = httpx.Client(
                        base_url=server.base,
                        timeout=30.0,
                        headers={"Authorization": f"Bearer {tokens[demo.users[who]]}"},
                    )
                    clients += [browsers[who], apis[who]]
                measured = measure(server, target, browsers[who], apis[who], args.requests)
                status = f"p95 {measured.page.p95:.1f} ms" if measured.present else "absent"
                log(f"{target.key}: {status}")
                results.append(measured)
            meta = {
                **machine_meta(url),
                "requests": args.requests,
                "warmup": WARMUP,
                "server": "uvicorn --factory backend.app:app_factory --workers 1,"
                " FIELDCRM_ENV=development, FIELDCRM_LOG_JSON=true",
                "pages": {m.target.key: [m.target.page, m.target.api] for m in results},
                "goal_p95_ms": GOAL_P95_MS,
                "goal_js_kb": GOAL_JS_KB,
                "quick": args.quick,
                "when": datetime.now(UTC).isoformat(timespec="seconds"),
            }
            result = report(results, javascript_bytes(), meta)
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
