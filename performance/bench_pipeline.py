"""Benchmark: the sales pipeline under load — stage changes, web-form intake, SLA scans.

    python performance/bench_pipeline.py [--quick] [--json PATH] [--deals N] [--leads N]
                                         [--tasks N] [--keep]

Everything happens in its own database ``fieldcrm_bench_pipeline`` (made by
backend.db.provision on FIELDCRM_DATABASE_URL's server, or the local one): its schema is dropped
and rebuilt by the migrations at the start, and the database is dropped at the end (``--keep``
leaves it for inspection). Three figures:

1. ``stage_change_p95_ms``: ``POST /api/v1/deals/{id}/stage`` moving deals First call ->
   Measurements with the window company's automations (``backend.seed.pipeline``): a
   measurement task for the measurer with the fewest open measurements, the "task assigned"
   notification + outbox row, stage history, timeline entry and audit entry. An organisation
   with an admin, 5 managers (each leading a team of one measurer and one installer), 5
   measurers and 5 installers has N deals (``--quick``: 300, default 3,000) at First call, each
   with a customer, contact and site (loaded with COPY/SQL, not through the API). Half the deals
   are moved through the app in-process (``httpx.ASGITransport``, as the tests do; SQL
   statements per request are counted there), half through a real uvicorn server (1 worker) on
   a local port: the headline figure. One sequential client, each move made by the deal's
   owner; 20 warm-up requests first. The baseline in the same run, interleaved request by
   request: ``PATCH /api/v1/deals/{id}`` changing the title (audited, no automations).
2. ``leads_per_s``: ``POST /api/v1/leads/{key}`` (JSON) through uvicorn with 2 worker processes
   from 16 concurrent connections (``--quick``: 500 leads, default 5,000), each lead with a
   distinct phone and a distinct client address (``X-Forwarded-For``, which uvicorn trusts from
   127.0.0.1). The per-IP rate limit is set to 1,000,000/minute for the benchmark server
   (FIELDCRM_LEAD_RATE_PER_MINUTE). Afterwards SQL checks that the deals created equal the 201
   answers. While it runs, pg_stat_activity is sampled to see how often intakes wait on a row
   lock, e.g. the round-robin counter row (``counters``), which every intake updates.
3. ``sla_scan_ms``: one ``backend.tasks.sla.notify_overdue`` call with 1,000,000 open tasks in
   the table (``--quick``: 100,000), of which 1,000 are newly overdue (and one
   ``escalate_overdue`` call with 1,000 due for escalation); median of 5 runs, the rows reset
   between runs. The baseline, interleaved run by run: the same statement with index and bitmap
   scans disabled, i.e. without the partial indexes ``ix_tasks_overdue_due`` /
   ``ix_tasks_escalation_due``: a scan of the whole table.

Absolute numbers depend on the machine (it prints the cores); the ratios are measured in the
same run. ``--quick`` figures are indicative only.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import random
import re
import secrets
import statistics
import sys
import time
import uuid
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeAlias
from zoneinfo import ZoneInfo

import asyncpg
import httpx
from benchkit import (
    Series,
    Server,
    StatementMeter,
    app_secret_key,
    app_settings,
    copy_customers,
    fresh_database,
    log,
    machine_meta,
    progress,
    server_env,
    start,
    tokens_for,
    write_json,
)
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession
from tqdm import tqdm

from backend.accounts.models import Organization, Role, Team, TeamMember, User
from backend.accounts.security import hash_password
from backend.app import create_app
from backend.config import Settings
from backend.db.session import make_engine, make_sessionmaker
from backend.seed.demo import (
    kazan_address,
    kazan_point,
    national_format,
    random_district,
    random_person,
)
from backend.seed.generate import CustomerFactory, asyncpg_dsn, register_geography_codec
from backend.seed.pipeline import seed_window_pipeline
from backend.tasks import sla

if TYPE_CHECKING:
    Connection: TypeAlias = asyncpg.Connection[asyncpg.Record]

DATABASE = "fieldcrm_bench_pipeline"
GOAL_STAGE_P95_MS = 30.0
SEED = 42
ORG_NAME = "Bench Pipeline Windows"
SLA_ORG_NAME = "Bench SLA Windows"
TEAMS = 5
WARMUP = 20
LEAD_CONCURRENCY = 16
LEAD_RATE_PER_MINUTE = 1_000_000
NEW_LEADS = "new customers (round robin)"
REPEAT_LEADS = "same phones again (owner kept, no counter)"
SLA_DUE = 1_000
SLA_RUNS = 5
ZONE = "Europe/Moscow"
LOOPBACK = "127.0.0.1"  # uvicorn trusts its X-Forwarded-For: one client address per lead


# --- the organisation -------------------------------------------------------------------------


@dataclass
class World:
    """The benchmark organisation: people, the window pipeline, the form and the deals."""

    org_id: uuid.UUID
    admin_id: uuid.UUID
    managers: list[uuid.UUID]
    measurers: list[uuid.UUID]
    installers: list[uuid.UUID]
    stages: dict[str, uuid.UUID]
    form_key: str
    deals: list[tuple[uuid.UUID, uuid.UUID]]  # (deal id, owner id), in a seeded random order
    factory: CustomerFactory


async def _people(
    session: AsyncSession, org: Organization, password_hash: str, prefix: str, teams: int
) -> tuple[User, list[User], list[User], list[User]]:
    """An admin, ``teams`` managers each leading a measurer and an installer."""

    def user(role: Role, name: str, skills: list[str] | None = None) -> User:
        row = User(
            id=uuid.uuid4(),
            organization_id=org.id,
            email=f"{prefix}-{name.lower().replace(' ', '-')}@bench.example",
            password_hash=password_hash,
            full_name=name,
            role=role,
            skills=skills or [],
            time_zone=ZONE,
            is_active=True,
            token_version=1,
        )
        session.add(row)
        return row

    admin = user(Role.ADMIN, "Admin")
    managers = [user(Role.MANAGER, f"Manager {i + 1}") for i in range(teams)]
    measurers = [user(Role.FIELD, f"Measurer {i + 1}", ["measurer"]) for i in range(teams)]
    installers = [user(Role.FIELD, f"Installer {i + 1}", ["installer"]) for i in range(teams)]
    await session.flush()
    for i, lead in enumerate(managers):
        team = Team(id=uuid.uuid4(), organization_id=org.id, name=f"Team {i + 1}", lead_id=lead.id)
        session.add(team)
        await session.flush()
        for member in (measurers[i], installers[i]):
            session.add(TeamMember(team_id=team.id, user_id=member.id, organization_id=org.id))
    await session.flush()
    return admin, managers, measurers, installers


def _organization(name: str) -> Organization:
    return Organization(
        id=uuid.uuid4(),
        name=name,
        time_zone=ZONE,
        currency="RUB",
        locale="ru-RU",
        payment_details={"recipient": name, "bankName": "Bench Bank"},
    )


DEALS_SQL = """
WITH src AS (
    SELECT c.id AS customer_id, s.id AS site_id, c.owner_id, c.name
    FROM customers c JOIN sites s ON s.customer_id = c.id
    WHERE c.organization_id = $1
), d AS (
    INSERT INTO deals (id, organization_id, pipeline_id, stage_id, customer_id, site_id, title,
                       currency, line_items, source, attribution, owner_id, stage_entered_at,
                       version, created_at, updated_at)
    SELECT gen_random_uuid(), $1, $2, $3, customer_id, site_id, 'Окна: ' || name, 'RUB',
           '[]'::jsonb, 'website', '{}'::jsonb, owner_id, $4, 1, $4, $4
    FROM src
    RETURNING id, owner_id, customer_id, site_id
), history AS (
    INSERT INTO deal_stage_changes (organization_id, deal_id, from_stage_id, to_stage_id,
                                    changed_at)
    SELECT $1, id, NULL, $3, $4 FROM d
), calls AS (
    -- the "call back within 15 minutes" task of First call, already done (as in the story)
    INSERT INTO tasks (organization_id, kind, title, status, assignee_id, deal_id, customer_id,
                       site_id, due_at, priority, escalate_after_minutes, completed_at)
    SELECT $1, 'call', 'Перезвонить клиенту в течение 15 минут', 'done', owner_id, id,
           customer_id, site_id, $4 + interval '15 minutes', 80, 15, $4 + interval '10 minutes'
    FROM d
)
SELECT id, owner_id FROM d
"""


async def build_world(url: str, deals: int, seed: int, password_hash: str) -> World:
    """The organisation with its pipeline (ORM, as the demo does) and ``deals`` deals at First
    call with a customer, contact and site each (COPY and one INSERT ... SELECT)."""
    engine = make_engine(Settings(database_url=url, secret_key="x" * 32))
    try:
        async with make_sessionmaker(engine)() as session, session.begin():
            org = _organization(ORG_NAME)
            session.add(org)
            await session.flush()
            admin, managers, measurers, installers = await _people(
                session, org, password_hash, "pipeline", TEAMS
            )
            form_key = secrets.token_urlsafe(24)
            setup = await seed_window_pipeline(session, org, form_key=form_key)
            stages = {key: stage.id for key, stage in setup.stages.items()}
            ids = (org.id, admin.id, [u.id for u in managers])
            field_ids = ([u.id for u in measurers], [u.id for u in installers])
    finally:
        await engine.dispose()
    org_id, admin_id, manager_ids = ids
    factory = CustomerFactory(seed, org_id, manager_ids)
    conn = await asyncpg.connect(asyncpg_dsn(url))
    try:
        await register_geography_codec(conn)
        rows = factory.chunk(deals)
        async with conn.transaction():
            await copy_customers(conn, rows)
            pipeline_id = await conn.fetchval(
                "SELECT pipeline_id FROM stages WHERE id = $1", stages["first_call"]
            )
            entered = datetime.now(UTC) - timedelta(hours=1)
            made = await conn.fetch(DEALS_SQL, org_id, pipeline_id, stages["first_call"], entered)
        await conn.execute("ANALYZE")
    finally:
        await conn.close()
    pairs = sorted((r["id"], r["owner_id"]) for r in made)
    random.Random(seed).shuffle(pairs)
    return World(
        org_id=org_id,
        admin_id=admin_id,
        managers=manager_ids,
        measurers=field_ids[0],
        installers=field_ids[1],
        stages=stages,
        form_key=form_key,
        deals=pairs,
        factory=factory,
    )


# --- 1. stage changes -------------------------------------------------------------------------


@dataclass
class MoveResult:
    """One way of calling the app: the stage moves and the PATCH baseline, interleaved."""

    where: str
    move: Series
    patch: Series
    move_sql: list[tuple[int, float]] = field(default_factory=list)
    patch_sql: list[tuple[int, float]] = field(default_factory=list)


def move_body(world: World, i: int) -> dict[str, str]:
    """Measurements needs a scheduled visit (and the site, which every deal has)."""
    day = datetime.now(ZoneInfo(ZONE)).date() + timedelta(days=1 + i % 14)
    hour = 9 + i % 9
    start = datetime(day.year, day.month, day.day, hour, tzinfo=ZoneInfo(ZONE))
    return {
        "stageId": str(world.stages["measurements"]),
        "scheduledStart": start.isoformat(),
        "scheduledEnd": (start + timedelta(hours=1)).isoformat(),
    }


async def time_moves(
    client: httpx.AsyncClient,
    where: str,
    world: World,
    deals: list[tuple[uuid.UUID, uuid.UUID]],
    tokens: dict[uuid.UUID, str],
    meter: StatementMeter | None = None,
) -> MoveResult:
    """Move each deal First call -> Measurements as its owner, then PATCH its title; the first
    WARMUP pairs are not recorded."""
    result = MoveResult(where, Series(f"stage change ({where})"), Series(f"PATCH ({where})"))
    for i, (deal_id, owner) in enumerate(progress(deals, f"stage changes, {where}")):
        headers = {"Authorization": f"Bearer {tokens[owner]}"}
        if meter:
            meter.take_total()
        started = time.perf_counter()
        moved = await client.post(
            f"/api/v1/deals/{deal_id}/stage", json=move_body(world, i), headers=headers
        )
        move_ms = (time.perf_counter() - started) * 1000
        move_sql = meter.take_total() if meter else (0, 0.0)
        if moved.status_code != 200:
            raise RuntimeError(f"stage change: {moved.status_code} {moved.text[:500]}")
        task = moved.json()["tasks"][0]
        if task["kind"] != "measurement" or uuid.UUID(task["assigneeId"]) not in world.measurers:
            raise RuntimeError(f"unexpected task after the move: {task}")
        started = time.perf_counter()
        patched = await client.patch(
            f"/api/v1/deals/{deal_id}", json={"title": f"Окна, замер #{i}"}, headers=headers
        )
        patch_ms = (time.perf_counter() - started) * 1000
        patch_sql = meter.take_total() if meter else (0, 0.0)
        if patched.status_code != 200:
            raise RuntimeError(f"PATCH: {patched.status_code} {patched.text[:500]}")
        if i >= WARMUP:
            result.move.ms.append(move_ms)
            result.patch.ms.append(patch_ms)
            result.move_sql.append(move_sql)
            result.patch_sql.append(patch_sql)
    return result


async def moves_in_process(
    settings: Settings, world: World, deals: list[tuple[uuid.UUID, uuid.UUID]]
) -> MoveResult:
    engine = make_engine(settings)
    meter = StatementMeter()
    meter.attach(engine)
    try:
        app = create_app(settings, sessionmaker=make_sessionmaker(engine))
        logging.getLogger("fieldcrm.access").setLevel(logging.WARNING)  # no line per request
        tokens = tokens_for(world.managers, world.org_id, settings.secret_key)
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
            return await time_moves(client, "in-process ASGI", world, deals, tokens, meter)
    finally:
        await engine.dispose()


async def moves_over_http(
    base: str, secret_key: str, world: World, deals: list[tuple[uuid.UUID, uuid.UUID]]
) -> MoveResult:
    tokens = tokens_for(world.managers, world.org_id, secret_key)
    async with httpx.AsyncClient(base_url=base, timeout=30.0) as client:
        return await time_moves(client, "uvicorn, 1 worker", world, deals, tokens)


async def check_assignments(url: str, world: World) -> dict[str, int]:
    """Measurement tasks per measurer: "fewest open" keeps them within one of each other."""
    conn = await asyncpg.connect(asyncpg_dsn(url))
    try:
        rows = await conn.fetch(
            "SELECT assignee_id, count(*) AS n FROM tasks WHERE organization_id = $1"
            " AND kind = 'measurement' GROUP BY assignee_id",
            world.org_id,
        )
    finally:
        await conn.close()
    counts = [int(r["n"]) for r in rows]
    return {"measurement_tasks": sum(counts), "max": max(counts), "min": min(counts)}


# --- 2. lead intake ---------------------------------------------------------------------------


@dataclass
class LeadResult:
    label: str
    leads: int  # timed (without the warm-up)
    seconds: float
    latency: Series
    statuses: Counter[int]
    deals_created: int  # by this run, warm-up included
    customers_created: int
    counter_advanced: int  # how far the round-robin counter moved
    distinct_ip_keys: int
    lock_samples: int
    samples: int
    counter_wait_samples: int
    waiting_mean: float
    waits_by_statement: dict[str, int]

    @property
    def answered_201(self) -> int:
        return self.statuses[201]

    @property
    def consistent(self) -> bool:
        return self.deals_created == self.answered_201

    @property
    def per_s(self) -> float:
        return self.leads / self.seconds


def lead_payloads(world: World, count: int, seed: int) -> list[dict[str, Any]]:
    """Website requests with distinct phones (none of them already a customer's)."""
    rng = random.Random(seed + 7)
    out = []
    for i in range(count):
        district = random_district(rng)
        lat, lon = kazan_point(rng, district)
        phone = world.factory.phone()
        out.append(
            {
                "name": random_person(rng).full,
                "phone": national_format(phone) if i % 2 else phone,
                "address": kazan_address(rng, district, flat=True, office=False),
                "lat": lat,
                "lon": lon,
                "message": "Нужно заменить окна",
                "utmSource": rng.choice(["yandex", "google", "vk"]),
                "website": "",
            }
        )
    return out


def client_ip(i: int) -> str:
    return f"10.{(i >> 16) & 255}.{(i >> 8) & 255}.{i & 255}"


async def _monitor_locks(
    url: str, stop: asyncio.Event, out: dict[str, Any], interval: float = 0.05
) -> None:
    """Sample the app's backends: how many wait on a lock, and on which statement."""
    conn = await asyncpg.connect(asyncpg_dsn(url))
    samples = lock_samples = counter_samples = waiting_total = 0
    by_statement: Counter[str] = Counter()
    try:
        while not stop.is_set():
            rows = await conn.fetch(
                "SELECT left(regexp_replace(query, '\\s+', ' ', 'g'), 60) AS q"
                " FROM pg_stat_activity WHERE application_name = 'fieldcrm'"
                " AND datname = current_database() AND wait_event_type = 'Lock'"
            )
            samples += 1
            waiting_total += len(rows)
            lock_samples += bool(rows)
            counter_samples += any("counters" in r["q"] for r in rows)
            by_statement.update(str(r["q"]) for r in rows)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), interval)
    finally:
        await conn.close()
    out.update(
        samples=samples,
        lock_samples=lock_samples,
        counter_samples=counter_samples,
        waiting_mean=waiting_total / max(1, samples),
        by_statement=dict(by_statement.most_common(5)),
    )


LEAD_COUNTS_SQL = """
SELECT (SELECT count(*) FROM deals WHERE organization_id = $1
          AND attribution->>'channel' = 'web_form') AS deals,
       (SELECT count(*) FROM customers WHERE organization_id = $1) AS customers,
       (SELECT coalesce(max(value), 0) FROM counters WHERE organization_id = $1
          AND name = 'leads:round_robin') AS counter,
       (SELECT count(DISTINCT key) FROM rate_limit_windows WHERE key = ANY($2::text[])) AS ips
"""


async def run_leads(
    url: str, base: str, world: World, payloads: list[dict[str, Any]], label: str, ip_offset: int
) -> LeadResult:
    """Post every payload from LEAD_CONCURRENCY connections, each from its own client IP."""
    statuses: Counter[int] = Counter()
    latency = Series("lead intake")
    path = f"/api/v1/leads/{world.form_key}"
    ips = [client_ip(ip_offset + i) for i in range(len(payloads))]
    ip_keys = [f"lead:{ip}" for ip in ips]
    conn = await asyncpg.connect(asyncpg_dsn(url))
    try:
        before = await conn.fetchrow(LEAD_COUNTS_SQL, world.org_id, ip_keys)
    finally:
        await conn.close()
    limits = httpx.Limits(
        max_connections=LEAD_CONCURRENCY, max_keepalive_connections=LEAD_CONCURRENCY
    )
    async with httpx.AsyncClient(base_url=base, timeout=60.0, limits=limits) as client:

        async def post(i: int, record: bool) -> None:
            headers = {"X-Forwarded-For": ips[i], "Referer": "https://windows.example/"}
            started = time.perf_counter()
            answer = await client.post(path, json=payloads[i], headers=headers)
            ms = (time.perf_counter() - started) * 1000
            statuses[answer.status_code] += 1
            if answer.status_code != 201 and statuses[answer.status_code] <= 3:
                log(f"lead {i}: {answer.status_code} {answer.text[:300]}")
            if record:
                latency.ms.append(ms)

        async def drain(queue: asyncio.Queue[int], record: bool, bar: tqdm[Any] | None) -> None:
            while True:
                try:
                    i = queue.get_nowait()
                except asyncio.QueueEmpty:
                    return
                await post(i, record)
                if bar is not None:
                    bar.update(1)

        async def wave(indexes: range, record: bool, bar: tqdm[Any] | None) -> None:
            queue: asyncio.Queue[int] = asyncio.Queue()
            for i in indexes:
                queue.put_nowait(i)
            async with asyncio.TaskGroup() as group:
                for _ in range(LEAD_CONCURRENCY):
                    group.create_task(drain(queue, record, bar))

        warm = min(WARMUP * 2, len(payloads) // 10)
        await wave(range(warm), False, None)
        stop = asyncio.Event()
        watched: dict[str, Any] = {}
        monitor = asyncio.create_task(_monitor_locks(url, stop, watched))
        with tqdm(total=len(payloads) - warm, desc=f"leads, {label}", file=sys.stderr) as bar:
            started = time.perf_counter()
            await wave(range(warm, len(payloads)), True, bar)
            seconds = time.perf_counter() - started
        stop.set()
        await monitor
    conn = await asyncpg.connect(asyncpg_dsn(url))
    try:
        after = await conn.fetchrow(LEAD_COUNTS_SQL, world.org_id, ip_keys)
    finally:
        await conn.close()
    return LeadResult(
        label=label,
        leads=len(payloads) - warm,
        seconds=seconds,
        latency=latency,
        statuses=statuses,
        deals_created=int(after["deals"] - before["deals"]),
        customers_created=int(after["customers"] - before["customers"]),
        counter_advanced=int(after["counter"] - before["counter"]),
        distinct_ip_keys=int(after["ips"]),
        lock_samples=watched["lock_samples"],
        samples=watched["samples"],
        counter_wait_samples=watched["counter_samples"],
        waiting_mean=watched["waiting_mean"],
        waits_by_statement=watched["by_statement"],
    )


# --- 3. SLA scans -----------------------------------------------------------------------------

# One INSERT ... SELECT per chunk of generate_series; $1 org, $2 assignees, $3 now, $4/$5 the
# range of i, $6 total. i <= 1000: newly overdue; i <= 2000: notified, escalation due;
# i <= 30 %: long overdue, notified and escalated; the rest due within the next 30 days.
TASKS_SQL = """
INSERT INTO tasks (organization_id, kind, title, status, assignee_id, due_at, priority,
                   escalate_after_minutes, overdue_notified_at, escalate_at, escalated_at,
                   created_at, updated_at)
SELECT $1,
       (CASE WHEN i % 3 = 0 THEN 'measurement' ELSE 'call' END)::task_kind,
       'Задача ' || i,
       (CASE WHEN i % 5 = 0 THEN 'in_progress' ELSE 'open' END)::task_status,
       ($2::uuid[])[1 + i % cardinality($2::uuid[])],
       due, 50, 60,
       CASE WHEN i > $7 THEN
            CASE WHEN i <= $6::int * 0.3 THEN due + interval '1 minute' END END,
       CASE WHEN i > $7 THEN
            CASE WHEN i <= $6 * 0.3 THEN due + interval '60 minutes' END END,
       CASE WHEN i > 2 * $7 AND i <= $6 * 0.3 THEN due + interval '61 minutes' END,
       $3::timestamptz - interval '40 days', $3::timestamptz - interval '40 days'
FROM (
    SELECT i, CASE
        WHEN i <= $7 THEN $3::timestamptz - make_interval(secs => 60 + i % 540)
        WHEN i <= 2 * $7 THEN $3::timestamptz - make_interval(secs => 3660 + i % 540)
        WHEN i <= $6 * 0.3 THEN $3::timestamptz - make_interval(mins => 120 + spread)
        ELSE $3::timestamptz + make_interval(mins => 1 + spread)
    END AS due
    FROM generate_series($4::int, $5::int) AS i,
         LATERAL (SELECT (i::bigint * 7919 % 43200)::int AS spread) s
) g
"""


@dataclass
class SlaResult:
    tasks: int
    load_seconds: float
    vacuum_seconds: float
    notify: dict[str, list[float]]
    escalate: dict[str, list[float]]
    find: dict[str, list[float]]
    commit_ms: list[float]
    plans: dict[str, str]


# The scan's first step alone: finding the due rows (no locks, no writes).
FIND_SQL = """
SELECT id FROM tasks
WHERE status IN ('open', 'in_progress') AND overdue_notified_at IS NULL
  AND due_at IS NOT NULL AND due_at <= :now
ORDER BY due_at
LIMIT :batch
"""


def _scan_settings(naive: bool) -> list[str]:
    if not naive:
        return []
    return [
        "SET LOCAL enable_indexscan = off",
        "SET LOCAL enable_bitmapscan = off",
        "SET LOCAL enable_indexonlyscan = off",
    ]


async def _plan(session: AsyncSession, sql: str, now: datetime, naive: bool) -> str:
    async with session.begin():
        for statement in _scan_settings(naive):
            await session.execute(text(statement))
        rows = await session.execute(text(f"EXPLAIN {sql}"), {"now": now, "batch": sla.BATCH})
        plan = "\n".join(str(r[0]) for r in rows)
    scans = re.findall(r"((?:Index|Seq|Bitmap Heap|Bitmap Index) Scan[^(]*)", plan)
    return "; ".join(s.strip() for s in scans if "tasks" in s or "ix_tasks" in s) or plan[:200]


async def run_sla(url: str, tasks: int, seed: int, password_hash: str) -> SlaResult:
    engine = make_engine(Settings(database_url=url, secret_key="x" * 32))
    sessionmaker = make_sessionmaker(engine)
    now = datetime.now(UTC).replace(microsecond=0)
    try:
        async with sessionmaker() as session, session.begin():
            org = _organization(SLA_ORG_NAME)
            session.add(org)
            await session.flush()
            _, _, measurers, installers = await _people(session, org, password_hash, "sla", 2)
            org_id = org.id
            assignees = [u.id for u in measurers + installers]
            # Tasks of the other benchmarks that are due by `now` count as handled already, so
            # that every scan below finds exactly the rows made for it.
            await session.execute(
                text(
                    "UPDATE tasks SET overdue_notified_at = :now WHERE overdue_notified_at IS NULL"
                    " AND due_at <= :now"
                ),
                {"now": now},
            )
            await session.execute(
                text(
                    "UPDATE tasks SET escalated_at = :now WHERE escalated_at IS NULL"
                    " AND escalate_at <= :now"
                ),
                {"now": now},
            )
        conn = await asyncpg.connect(asyncpg_dsn(url))
        try:
            chunk = 100_000
            started = time.perf_counter()
            with tqdm(total=tasks, desc="SLA tasks (INSERT ... generate_series)", file=sys.stderr,
                      unit_scale=True) as bar:  # fmt: skip
                for low in range(1, tasks + 1, chunk):
                    high = min(tasks, low + chunk - 1)
                    await conn.execute(TASKS_SQL, org_id, assignees, now, low, high, tasks, SLA_DUE)
                    bar.update(high - low + 1)
            load_seconds = time.perf_counter() - started
            started = time.perf_counter()
            log("VACUUM ANALYZE tasks ...")
            await conn.execute("VACUUM ANALYZE tasks")
            vacuum_seconds = time.perf_counter() - started
            overdue_ids = [
                r["id"]
                for r in await conn.fetch(
                    "SELECT id FROM tasks WHERE organization_id = $1"
                    " AND overdue_notified_at IS NULL AND due_at <= $2",
                    org_id,
                    now,
                )
            ]
            escalation_ids = [
                r["id"]
                for r in await conn.fetch(
                    "SELECT id FROM tasks WHERE organization_id = $1 AND escalated_at IS NULL"
                    " AND escalate_at <= $2",
                    org_id,
                    now,
                )
            ]
        finally:
            await conn.close()
        if len(overdue_ids) != SLA_DUE or len(escalation_ids) != SLA_DUE:
            raise RuntimeError(
                f"expected {SLA_DUE} due rows, made {len(overdue_ids)} / {len(escalation_ids)}"
            )

        async def once(
            scan: Callable[[AsyncSession, datetime], Any], naive: bool
        ) -> tuple[float, float]:
            async with sessionmaker() as session:
                await session.begin()
                for statement in _scan_settings(naive):
                    await session.execute(text(statement))
                started = time.perf_counter()
                claimed = await scan(session, now)
                call_ms = (time.perf_counter() - started) * 1000
                started = time.perf_counter()
                await session.commit()
                commit_ms = (time.perf_counter() - started) * 1000
            if claimed != SLA_DUE:
                raise RuntimeError(f"the scan claimed {claimed} tasks, expected {SLA_DUE}")
            return call_ms, commit_ms

        async def reset(kind: str) -> None:
            async with sessionmaker() as session, session.begin():
                if kind == "task_overdue":
                    await session.execute(
                        text(
                            "UPDATE tasks SET overdue_notified_at = NULL, escalate_at = NULL"
                            " WHERE id = ANY(:ids)"
                        ),
                        {"ids": overdue_ids},
                    )
                else:
                    await session.execute(
                        text("UPDATE tasks SET escalated_at = NULL WHERE id = ANY(:ids)"),
                        {"ids": escalation_ids},
                    )
                await session.execute(
                    text(
                        "DELETE FROM outbox WHERE organization_id = :org AND payload->>'kind' = :k"
                    ),
                    {"org": org_id, "k": kind},
                )
                await session.execute(
                    text("DELETE FROM notifications WHERE organization_id = :org AND kind = :k"),
                    {"org": org_id, "k": kind},
                )

        plans: dict[str, str] = {}
        async with sessionmaker() as session:
            for name, sql in (
                ("notify", sla._OVERDUE_SQL.text),
                ("escalate", sla._ESCALATION_SQL.text),
            ):
                for naive in (False, True):
                    plans[f"{name} {'naive' if naive else 'ours'}"] = await _plan(
                        session, sql, now, naive
                    )
        notify: dict[str, list[float]] = {"ours": [], "naive": []}
        escalate: dict[str, list[float]] = {"ours": [], "naive": []}
        find: dict[str, list[float]] = {"ours": [], "naive": []}
        commits: list[float] = []

        async def find_once(naive: bool) -> float:
            async with sessionmaker() as session, session.begin():
                for statement in _scan_settings(naive):
                    await session.execute(text(statement))
                started = time.perf_counter()
                found = await session.execute(text(FIND_SQL), {"now": now, "batch": sla.BATCH})
                rows = len(found.all())
                ms = (time.perf_counter() - started) * 1000
            if rows != SLA_DUE:
                raise RuntimeError(f"found {rows} due tasks, expected {SLA_DUE}")
            return ms

        runs = [
            (kind, naive)
            for _ in range(SLA_RUNS)
            for kind in ("f", "n", "e")
            for naive in (False, True)
        ]
        for kind, naive in progress(runs, "SLA scans (ours / naive)"):
            if kind == "f":
                find["naive" if naive else "ours"].append(await find_once(naive))
                continue
            if kind == "n":
                call_ms, commit_ms = await once(sla.notify_overdue, naive)
                notify["naive" if naive else "ours"].append(call_ms)
                await reset("task_overdue")
            else:
                call_ms, commit_ms = await once(sla.escalate_overdue, naive)
                escalate["naive" if naive else "ours"].append(call_ms)
                await reset("task_escalated")
            commits.append(commit_ms)
    finally:
        await engine.dispose()
    return SlaResult(tasks, load_seconds, vacuum_seconds, notify, escalate, find, commits, plans)


# --- report -----------------------------------------------------------------------------------


def _row(cells: list[str], widths: list[int]) -> str:
    return "  " + " ".join(
        c.ljust(w) if i < 2 else c.rjust(w)
        for i, (c, w) in enumerate(zip(cells, widths, strict=True))
    )


def report(
    moves: list[MoveResult],
    assignments: dict[str, int],
    leads: list[LeadResult],
    sla_result: SlaResult,
    meta: dict[str, Any],
) -> dict[str, Any]:
    http = next(m for m in moves if m.where.startswith("uvicorn"))
    widths = [18, 22, 5, 7, 7, 7, 7, 6, 7, 7]
    lines = [
        "",
        f"fieldcrm pipeline: {meta['deals']:,} deals, {meta['cpu_count']} CPUs,"
        f" {meta['platform']}, Python {meta['python']}, PostgreSQL {meta['postgres']}",
        "",
        "1. Stage change First call -> Measurements, sequential client"
        " (ms; ratio = p95 / PATCH p95 of the same path)",
        _row(
            ["path", "request", "n", "mean", "p50", "p95", "p99", "ratio", "SQL/req", "SQL ms"],
            widths,
        ),
    ]
    for m in moves:
        for series, sql_rows in ((m.move, m.move_sql), (m.patch, m.patch_sql)):
            request = "POST /deals/{id}/stage" if series is m.move else "PATCH /deals/{id}"
            counted = any(n for n, _ in sql_rows)
            statements = statistics.fmean(n for n, _ in sql_rows) if counted else None
            sql_ms = statistics.fmean(ms for _, ms in sql_rows) if counted else None
            lines.append(
                _row(
                    [
                        m.where if series is m.move else "",
                        request,
                        str(len(series.ms)),
                        f"{series.mean:.2f}",
                        f"{series.p50:.2f}",
                        f"{series.p95:.2f}",
                        f"{series.p99:.2f}",
                        f"{series.p95 / m.patch.p95:.2f}",
                        f"{statements:.1f}" if statements is not None else "-",
                        f"{sql_ms:.2f}" if sql_ms is not None else "-",
                    ],
                    widths,
                )
            )
    met = http.move.p95 <= GOAL_STAGE_P95_MS
    lines += [
        f"GOAL stage change p95 <= {GOAL_STAGE_P95_MS:g} ms (uvicorn):"
        f" {'MET' if met else 'NOT MET'}"
        f" ({http.move.p95:.2f} ms)"
        + ("" if meta["deals"] >= 3000 else " (quick run: indicative)"),
        f"  measurement tasks created: {assignments['measurement_tasks']:,} over"
        f" {TEAMS} measurers, {assignments['min']}..{assignments['max']} each (fewest open);"
        " SQL ms = client-side time inside SQL statements (in-process only)",
        "",
        f"2. Lead intake POST /api/v1/leads/{{key}}: uvicorn --workers 2, {LEAD_CONCURRENCY}"
        f" concurrent connections, rate limit"
        f" FIELDCRM_LEAD_RATE_PER_MINUTE={LEAD_RATE_PER_MINUTE:,}"
        " per client IP (one X-Forwarded-For address per lead)",
        f"  {'requests':<44} {'leads':>6} {'seconds':>8} {'leads/s':>8} {'p50 ms':>8}"
        f" {'p95 ms':>8} {'p99 ms':>8} {'ratio':>6}  statuses",
    ]
    new = leads[0]
    for run in leads:
        lines.append(
            f"  {run.label:<44} {run.leads:>6} {run.seconds:8.2f} {run.per_s:8.1f}"
            f" {run.latency.p50:8.2f} {run.latency.p95:8.2f} {run.latency.p99:8.2f}"
            f" {run.per_s / new.per_s:6.2f}  {dict(run.statuses)}"
        )
    for run in leads:
        share = run.lock_samples / max(1, run.samples)
        counter_share = run.counter_wait_samples / max(1, run.samples)
        lines += [
            f"  {run.label}: deals created {run.deals_created:,} = 201 answers"
            f" {run.answered_201:,} (incl. warm-up): {'OK' if run.consistent else 'MISMATCH'};"
            f" new customers {run.customers_created:,}; round-robin counter +"
            f"{run.counter_advanced:,}; distinct client IPs seen by the rate limiter"
            f" {run.distinct_ip_keys:,}",
            f"    lock waits (pg_stat_activity every 50 ms, {run.samples} samples): an intake"
            f" waited on a lock in {share:.0%} of samples (mean {run.waiting_mean:.1f} waiting),"
            f" on the round-robin counter upsert in {counter_share:.0%}",
        ]
        for statement, n in run.waits_by_statement.items():
            lines.append(f"      {n:>5} x waiting in: {statement}")
    notify_ours = statistics.median(sla_result.notify["ours"])
    notify_naive = statistics.median(sla_result.notify["naive"])
    escalate_ours = statistics.median(sla_result.escalate["ours"])
    escalate_naive = statistics.median(sla_result.escalate["naive"])
    find_ours = statistics.median(sla_result.find["ours"])
    find_naive = statistics.median(sla_result.find["naive"])
    lines += [
        "",
        f"3. SLA scans: {sla_result.tasks:,} open tasks, {SLA_DUE:,} newly overdue /"
        f" {SLA_DUE:,} due for escalation (median of {SLA_RUNS} runs, ms, the call without its"
        " commit; ratio = naive / ours)",
        f"  {'scan':<18} {'ours':>8} {'naive':>8} {'ratio':>7}  plan (ours | naive)",
        f"  {'notify_overdue':<18} {notify_ours:8.2f} {notify_naive:8.2f}"
        f" {notify_naive / notify_ours:7.1f}  {sla_result.plans['notify ours']}"
        f" | {sla_result.plans['notify naive']}",
        f"  {'escalate_overdue':<18} {escalate_ours:8.2f} {escalate_naive:8.2f}"
        f" {escalate_naive / escalate_ours:7.1f}  {sla_result.plans['escalate ours']}"
        f" | {sla_result.plans['escalate naive']}",
        f"  {'find due rows only':<18} {find_ours:8.2f} {find_naive:8.2f}"
        f" {find_naive / find_ours:7.1f}  (the scan's SELECT ... ORDER BY due_at LIMIT 1000)",
        f"  naive = the same statement with enable_indexscan/bitmapscan/indexonlyscan off;"
        f" tasks loaded in {sla_result.load_seconds:.1f} s, VACUUM ANALYZE"
        f" {sla_result.vacuum_seconds:.1f} s, commit median"
        f" {statistics.median(sla_result.commit_ms):.1f} ms",
    ]
    print("\n".join(lines))

    inproc = next(m for m in moves if m.where.startswith("in-process"))
    figures: dict[str, float] = {
        "stage_change_p95_ms": http.move.p95,
        "leads_per_s": leads[0].per_s,
        "sla_scan_ms": notify_ours,
        "stage_change_p50_ms": http.move.p50,
        "stage_change_p99_ms": http.move.p99,
        "stage_change_mean_ms": http.move.mean,
        "patch_p95_ms": http.patch.p95,
        "stage_change_vs_patch_p95_ratio": http.move.p95 / http.patch.p95,
        "stage_change_inproc_p95_ms": inproc.move.p95,
        "stage_change_inproc_p50_ms": inproc.move.p50,
        "patch_inproc_p95_ms": inproc.patch.p95,
        "stage_change_sql_statements": statistics.fmean(s for s, _ in inproc.move_sql),
        "stage_change_sql_ms": statistics.fmean(ms for _, ms in inproc.move_sql),
        "leads_p50_ms": leads[0].latency.p50,
        "leads_p95_ms": leads[0].latency.p95,
        "leads_p99_ms": leads[0].latency.p99,
        "leads_lock_wait_share": leads[0].lock_samples / max(1, leads[0].samples),
        "leads_counter_wait_share": leads[0].counter_wait_samples / max(1, leads[0].samples),
        "leads_repeat_per_s": leads[1].per_s,
        "leads_repeat_p95_ms": leads[1].latency.p95,
        "leads_repeat_vs_new_ratio": leads[1].per_s / leads[0].per_s,
        "sla_escalate_ms": escalate_ours,
        "sla_naive_scan_ms": notify_naive,
        "sla_naive_escalate_ms": escalate_naive,
        "sla_naive_vs_ours_ratio": notify_naive / notify_ours,
        "sla_escalate_naive_vs_ours_ratio": escalate_naive / escalate_ours,
        "sla_find_ms": find_ours,
        "sla_naive_find_ms": find_naive,
        "sla_find_naive_vs_ours_ratio": find_naive / find_ours,
        "goal_met": 1.0 if met else 0.0,
    }
    meta = {
        **meta,
        "goal_stage_change_p95_ms": GOAL_STAGE_P95_MS,
        "goal_met": met,
        "leads_consistent": all(run.consistent for run in leads),
        "leads_runs": {
            run.label: {
                "statuses": {str(k): v for k, v in run.statuses.items()},
                "deals_created": run.deals_created,
                "customers_created": run.customers_created,
                "counter_advanced": run.counter_advanced,
                "waits_by_statement": run.waits_by_statement,
            }
            for run in leads
        },
        "measurement_assignments": assignments,
        "sla_runs": {
            "notify": sla_result.notify,
            "escalate": sla_result.escalate,
            "find": sla_result.find,
        },
        "sla_plans": sla_result.plans,
    }
    return {"figures": figures, "meta": meta}


# --- main -------------------------------------------------------------------------------------


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="300 deals, 500 leads, 100k tasks")
    parser.add_argument("--json", type=Path, metavar="PATH", help="write figures as JSON")
    parser.add_argument("--deals", type=int, help="deals at First call (default 3,000)")
    parser.add_argument("--leads", type=int, help="leads to post (default 5,000)")
    parser.add_argument("--tasks", type=int, help="open tasks for the SLA scan (default 1M)")
    parser.add_argument("--seed", type=int, default=SEED)
    parser.add_argument("--keep", action="store_true", help="keep the database afterwards")
    args = parser.parse_args(argv)
    args.deals = args.deals or (300 if args.quick else 3_000)
    args.leads = args.leads or (500 if args.quick else 5_000)
    args.tasks = args.tasks or (100_000 if args.quick else 1_000_000)
    if args.deals < 2 * (WARMUP + 10) or args.leads < 100 or args.tasks < 10 * SLA_DUE:
        parser.error(
            f"need --deals >= {2 * (WARMUP + 10)}, --leads >= 100, --tasks >= {10 * SLA_DUE}"
        )
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    url = start(DATABASE)
    if url is None:
        return 1
    secret_key = app_secret_key()
    with fresh_database(url, keep=args.keep) as files_dir:
        env = server_env(
            url, secret_key, files_dir, log_json=False, lead_rate_per_minute=LEAD_RATE_PER_MINUTE
        )
        server: Server | None = None
        try:
            password_hash = hash_password(secrets.token_urlsafe(16))
            started = time.perf_counter()
            world = asyncio.run(build_world(url, args.deals, args.seed, password_hash))
            seconds = time.perf_counter() - started
            log(f"{args.deals:,} deals at First call loaded in {seconds:.1f} s")
            half = len(world.deals) // 2
            settings = app_settings(
                url,
                secret_key,
                files_dir,
                log_json=False,
                lead_rate_per_minute=LEAD_RATE_PER_MINUTE,
            )
            inproc = asyncio.run(moves_in_process(settings, world, world.deals[:half]))

            server = Server(env, workers=1, forwarded_allow_ips=LOOPBACK)
            log(f"starting {' '.join(server.argv[2:])}")
            server.wait_ready()
            http = asyncio.run(moves_over_http(server.base, secret_key, world, world.deals[half:]))
            server.stop()
            server = None
            assignments = asyncio.run(check_assignments(url, world))

            payloads = lead_payloads(world, args.leads, args.seed)
            server = Server(env, workers=2, forwarded_allow_ips=LOOPBACK)
            log(f"starting {' '.join(server.argv[2:])}")
            server.wait_ready()
            leads = [
                asyncio.run(run_leads(url, server.base, world, payloads, NEW_LEADS, 0)),
                # The same requests again: the customers exist now and keep their manager, so
                # intake skips the round-robin counter (and creating the customer).
                asyncio.run(run_leads(url, server.base, world, payloads, REPEAT_LEADS, 1 << 20)),
            ]
            server.stop()
            server = None

            sla_result = asyncio.run(run_sla(url, args.tasks, args.seed, password_hash))
            meta = {
                **machine_meta(url),
                "deals": args.deals,
                "leads": args.leads,
                "sla_tasks": args.tasks,
                "quick": args.quick,
                "seed": args.seed,
                "warmup_requests": WARMUP,
                "stage_change_client": "httpx.AsyncClient, sequential, one connection, loopback",
                "stage_change_server": "uvicorn --factory backend.app:app_factory --workers 1,"
                " FIELDCRM_ENV=development",
                "leads_server": "uvicorn --workers 2",
                "leads_concurrency": LEAD_CONCURRENCY,
                "lead_rate_per_minute": LEAD_RATE_PER_MINUTE,
                "when": datetime.now(UTC).isoformat(timespec="seconds"),
            }
            result = report([http, inproc], assignments, leads, sla_result, meta)
            if args.json:
                write_json(args.json, result)
        finally:
            if server is not None:
                server.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
