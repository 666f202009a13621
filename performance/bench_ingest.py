"""Benchmark: GPS ingest — raw COPY, our batch API and a naive ORM on the same table; live
positions of a 2,000-worker team; the delay of the live stream (SSE) from ingest to a screen.

    python performance/bench_ingest.py [--quick] [--json PATH] [--points N] [--orm-points N]
                                       [--clients N] [--subscribers N] [--sse-posts N]
                                       [--profile] [--keep]

Everything happens in its own database ``fieldcrm_bench_ingest`` (made by backend.db.provision
on FIELDCRM_DATABASE_URL's server, or the local one): its schema is dropped and rebuilt by the
migrations at the start, and the database is dropped at the end (``--keep`` leaves it).

The organisation (direct SQL and COPY, not the API): an admin, a manager leading one team of
2,000 field workers, each with an open shift (started 12 hours ago) and a latest position; a
quarter of them on site at an in-progress visit, two thirds with an open visit later today
(2,000 customers with a contact and a site in Kazan). Each worker's fixes are a seeded random
walk (driving at 2-17 m/s, or standing at the visit's site) with one fix every 0.5 s, all within
the last few minutes before the run's start (``anchor``); the same points are made again for
each phase, so (a), (b) and (c) store the very same rows.

1. Inserting points into the partitioned ``pings`` table (the day partitions are made first with
   ``backend.tracking.partitions.ensure_partitions``). **Each phase starts from an empty table**:
   ``TRUNCATE pings`` (and a ``CHECKPOINT``, so that one phase's dirty pages are not written
   during the next) before (a), (b) and (c).

   a. ``copy_points_per_s``: asyncpg ``copy_records_to_table`` (binary COPY) of N points
      (``--quick``: 100,000, default 1,000,000) from one connection, in COPYs of 50,000 points;
      the records are made before each COPY (not timed).
   b. ``api_points_per_s``: ``POST /api/v1/tracking/pings`` with batches of 500 points, each
      batch one worker's (with that worker's own token), through uvicorn with 2 worker
      processes from ``--clients`` concurrent keep-alive connections (default 32, a fleet of
      phones posting at once: the batches waiting at the same moment share a transaction, so
      the CPU per batch falls with the requests in flight — on 2 cores 16 connections left 10 %
      of the CPU idle at 8.0 ms per batch, 32 left 8 % at 6.7 ms). The requests are written
      by a minimal HTTP/1.1 client (``benchkit.RawHttpConnection``) encoded before the timing:
      httpx took ~3 ms of the machine's CPU per batch from the server. The same N points as
      (a); the requests are encoded before (not timed); a warm-up
      of small batches first (then the table is emptied again). Afterwards SQL checks that
      the rows stored equal the sum of ``accepted``. ``api_vs_copy_ratio`` = (b) / (a).
   c. ``orm_points_per_s``: the naive baseline — a SQLAlchemy ORM class mapped onto ``pings``
      here (the product has none), one ``session.add`` + ``flush`` (one INSERT) per point, one
      transaction per 500 points, one connection: M points (``--quick``: 5,000, default 20,000).

   Where the time of (b) goes: while it runs, the CPU time of the uvicorn processes, of the
   PostgreSQL processes of this database (and the server's background processes) and of this
   script is read from /proc (the backends every 100 ms, so that one that exits before the
   end, e.g. a pool overflow connection, still counts; the rest of the machine's busy time is
   other people's programs on a shared machine), the sessions PostgreSQL opened are counted,
   and the app's active backends are sampled in pg_stat_activity (what they wait on). Then 40
   batches (``--quick``: 20, after 5 warm-up batches) go sequentially through the steps of the
   ingest service in-process, each step timed (wall and this process's CPU) and every SQL
   statement timed by kind, and as many through the in-process ASGI app (the whole request
   without uvicorn); ``--profile`` adds a cProfile of that request (the functions with the
   most own time per batch).

2. ``live_2000_ms``: ``backend.tracking.live`` for the 2,000-worker team called in-process
   as the team's manager (the ``Actor`` loaded by ``backend.accounts.services.load_actor``, as
   the auth guard does): p95 of 50 calls (``--quick``: 20) after 5 warm-up calls of
   ``live_json`` (the GeoJSON bytes ``GET /live`` answers with; ``live`` decodes them for the
   stream's snapshot and the team board, timed too), each in its own transaction (the audit
   entry it writes committed after the timing); split into its SQL statements (client side;
   those sent on the raw asyncpg connection are seen through asyncpg's query logger), the check
   statement's time inside PostgreSQL (EXPLAIN ANALYZE of the statement and arguments it sent,
   rolled back) and the Python around them. The first call reads the roster (the slow-changing
   part each process keeps, see ``backend.tracking.roster``); the timed calls find it kept and
   check its fingerprint, as every look after the first does while the team does not change.
   Informational: ``GET /api/v1/tracking/live?team=`` through uvicorn, the client's round trip
   and the server's time from its access log; and ``live_json`` when every worker's position
   changed since the last look (a team on the move: all positions sent and encoded again).
3. ``sse_delay_p95_ms``: ``--subscribers`` clients (default 10; half as the manager, half as the
   admin) hold ``GET /api/v1/tracking/stream`` open on the 2-process uvicorn (so a position
   committed in one process reaches subscribers of the other through LISTEN/NOTIFY); then
   ``--sse-posts`` one-point batches (default 200, ``--quick`` 100) of different workers are
   posted at 20 per second. Delay = from just before the POST to the ``position`` event with
   that worker's id and fix time at each subscriber; p50/p95/max, and the events that never
   arrived (waited for up to 5 s after the last POST).

The server runs with ``FIELDCRM_LOG_JSON=true`` (as in production) so that the access log's
``duration_ms`` can be read. Absolute numbers depend on the machine (it prints the cores); the
ratios are measured in the same run. ``--quick`` figures are indicative only.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import cProfile
import logging
import math
import os
import pstats
import random
import re
import secrets
import shutil
import subprocess
import sys
import time
import uuid
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeAlias

import asyncpg
import httpx
import msgspec
from benchkit import (
    ROOT,
    RawHttpConnection,
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
from sqlalchemy import REAL, Boolean, DateTime, Double, Text, Uuid, func, select, text
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column
from tqdm import tqdm

from backend.accounts.actor_loader import ActorLoader
from backend.accounts.security import hash_password, verify_access_token
from backend.accounts.services import load_actor
from backend.app import create_app
from backend.config import Settings
from backend.db.session import make_engine, make_sessionmaker
from backend.seed.demo import kazan_point, random_district, random_person
from backend.seed.generate import CustomerFactory, asyncpg_dsn, register_geography_codec
from backend.tracking import copy_rows, ingest, live, services
from backend.tracking.group_commit import PingWriter
from backend.tracking.partitions import day_of, ensure_partitions

if TYPE_CHECKING:
    Connection: TypeAlias = asyncpg.Connection[asyncpg.Record]

DATABASE = "fieldcrm_bench_ingest"
SEED = 42
ORG_NAME = "Bench Ingest Field Service"
ZONE = "Europe/Moscow"
WORKERS = 2_000
BATCH = 500
STEP_S = 0.5  # between two fixes of one worker
SHIFT_STARTED = timedelta(hours=12)  # before the anchor
COPY_CHUNK_BATCHES = 100  # 50,000 points per COPY
API_CLIENTS = 32
ACCEPT_GAP_S = 0.005  # between opening two client connections
ACCEPT_TRIES = 20  # times the connections are opened again when they land unevenly
BALANCED_SHARE = 0.6  # of the connections at most on the busiest server process
SS = shutil.which("ss")  # iproute2: which server process owns a connection
UNEVEN_SHARE = 0.75  # of (b)'s server CPU in one process: the run is flagged
SERVER_WORKERS = 2
API_WARMUP_POINTS = 20
BREAKDOWN_BATCHES = 40
BREAKDOWN_WARMUP = 5
LIVE_RUNS = 50
LIVE_RUNS_QUICK = 20
LIVE_WARMUP = 5
SSE_SUBSCRIBERS = 10
SSE_RATE_PER_S = 20.0
SSE_WAIT_S = 5.0
WAIT_SAMPLE_S = 0.02
GOAL_API_VS_COPY = 0.5
GOAL_API_POINTS_PER_S = 20_000.0
GOAL_LIVE_MS = 10.0
PINGS_PATH = "/api/v1/tracking/pings"
LIVE_PATH = "/api/v1/tracking/live"
STREAM_PATH = "/api/v1/tracking/stream"
TEAM_SQL_KIND = "live: check (fingerprints, positions, audit)"
OTHER_CPU = "other programs (and backends missed)"
STORE_SQL_KIND = "store: shift check, latest, notify, hints"
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


# --- the database -----------------------------------------------------------------------------


async def empty_pings(conn: Connection) -> bool:
    """``TRUNCATE pings`` (all partitions) and a CHECKPOINT; False if CHECKPOINT was refused."""
    await conn.execute("TRUNCATE pings")
    try:
        await conn.execute("CHECKPOINT")
    except asyncpg.PostgresError:  # needs superuser or pg_checkpoint: the run goes on without
        return False
    return True


# --- the organisation -------------------------------------------------------------------------


@dataclass
class World:
    """One organisation: admin, manager, a team of WORKERS field workers with open shifts."""

    org_id: uuid.UUID
    admin_id: uuid.UUID
    manager_id: uuid.UUID
    team_id: uuid.UUID
    workers: list[uuid.UUID]
    starts: list[tuple[float, float]]  # (lat, lon) where each worker's fixes begin
    on_site: list[bool]  # standing at the site of a visit in progress
    anchor: datetime  # the newest fix of the insert phases is just before this
    rounds: int  # batches per worker in the insert phases
    in_progress_tasks: int
    open_tasks: int


USERS_SQL = """
INSERT INTO users (id, organization_id, email, password_hash, full_name, role, skills,
                   time_zone, is_active, token_version)
SELECT u.id, $1, u.email, $2, u.name, u.role::user_role, '{}', $3, true, 1
FROM unnest($4::uuid[], $5::text[], $6::text[], $7::text[]) AS u(id, email, name, role)
"""
TEAM_MEMBERS_SQL = """
INSERT INTO team_members (team_id, user_id, organization_id)
SELECT $1, u, $2 FROM unnest($3::uuid[]) AS u
"""
SHIFTS_SQL = """
INSERT INTO shifts (id, organization_id, user_id, started_at, source)
SELECT gen_random_uuid(), $1, u, $2, 'manual' FROM unnest($3::uuid[]) AS u
"""
TASKS_SQL = """
INSERT INTO tasks (organization_id, kind, title, status, assignee_id, created_by_id,
                   customer_id, site_id, due_at, window_start, window_end, priority, started_at)
SELECT $1, 'visit', t.title, t.status::task_status, t.assignee, $2, t.customer, t.site,
       t.ws + interval '1 hour', t.ws, t.ws + interval '1 hour', 50,
       CASE WHEN t.status = 'in_progress' THEN t.ws + interval '10 minutes' END
FROM unnest($3::text[], $4::text[], $5::uuid[], $6::uuid[], $7::uuid[], $8::timestamptz[])
     AS t(title, status, assignee, customer, site, ws)
"""
LATEST_COLUMNS = (
    "user_id",
    "organization_id",
    "recorded_at",
    "lat",
    "lon",
    "location",
    "accuracy_m",
    "speed_mps",
    "heading_deg",
    "battery_pct",
    "mocked",
    "activity",
)


async def build_world(
    url: str, seed: int, password_hash: str, anchor: datetime, rounds: int
) -> World:
    """The organisation, its people, team, shifts, customers/sites, visits and latest positions
    (SQL and COPY in one transaction), the day partitions of ``pings``, ANALYZE."""
    rng = random.Random(seed)
    org_id, admin_id, manager_id, team_id = (uuid.uuid4() for _ in range(4))
    workers = [uuid.uuid4() for _ in range(WORKERS)]
    names = ["Admin", "Manager"] + [random_person(rng).full for _ in workers]
    ids = [admin_id, manager_id, *workers]
    emails = ["ingest-admin@bench.example", "ingest-manager@bench.example"] + [
        f"ingest-field-{i:04d}@bench.example" for i in range(WORKERS)
    ]
    roles = ["admin", "manager"] + ["field"] * WORKERS
    factory = CustomerFactory(seed, org_id, [manager_id])
    rows = factory.chunk(WORKERS)  # customer i: site of worker i's visit in progress, if any
    site_points = [(site[5][1], site[5][0]) for site in rows.sites]  # (lat, lon)
    on_site = [i % 4 == 0 for i in range(WORKERS)]
    starts: list[tuple[float, float]] = []
    for i in range(WORKERS):
        if on_site[i]:
            lat, lon = site_points[i]
            starts.append((lat + rng.gauss(0, 0.0001), lon + rng.gauss(0, 0.00015)))
        else:
            starts.append(kazan_point(rng, random_district(rng)))
    titles, statuses, assignees, customers, sites, windows = [], [], [], [], [], []
    for i, worker in enumerate(workers):
        visits = []
        if on_site[i]:
            visits.append(("in_progress", i, anchor - timedelta(minutes=40)))
        if i % 3 != 2:
            visits.append(
                ("open", (i + WORKERS // 2) % WORKERS, anchor + timedelta(hours=1 + i % 6))
            )
        for status, c, window in visits:
            titles.append(f"Визит: {rows.sites[c][4]}"[:300])
            statuses.append(status)
            assignees.append(worker)
            customers.append(rows.customers[c][0])
            sites.append(rows.sites[c][0])
            windows.append(window)
    seen = anchor - timedelta(seconds=rounds * BATCH * STEP_S + 120)
    latest = [
        (w, org_id, seen, lat, lon, (lon, lat), 10.0, 0.0, None, 80.0, False, None)
        for w, (lat, lon) in zip(workers, starts, strict=True)
    ]
    conn = await asyncpg.connect(asyncpg_dsn(url))
    try:
        await register_geography_codec(conn)
        async with conn.transaction():
            await conn.execute(
                "INSERT INTO organizations (id, name, time_zone, currency, locale,"
                " payment_details) VALUES ($1, $2, $3, 'RUB', 'ru-RU', '{}'::jsonb)",
                org_id,
                ORG_NAME,
                ZONE,
            )
            await conn.execute(USERS_SQL, org_id, password_hash, ZONE, ids, emails, names, roles)
            await conn.execute(
                "INSERT INTO teams (id, organization_id, name, lead_id) VALUES ($1, $2, $3, $4)",
                team_id,
                org_id,
                f"Field team ({WORKERS:,})",
                manager_id,
            )
            await conn.execute(TEAM_MEMBERS_SQL, team_id, org_id, workers)
            await conn.execute(SHIFTS_SQL, org_id, anchor - SHIFT_STARTED, workers)
            await copy_customers(conn, rows)
            await conn.execute(
                TASKS_SQL,
                org_id,
                manager_id,
                titles,
                statuses,
                assignees,
                customers,
                sites,
                windows,
            )
            await conn.copy_records_to_table(
                "latest_positions", records=latest, columns=LATEST_COLUMNS
            )
        await conn.execute("ANALYZE")
    finally:
        await conn.close()
    engine = make_engine(Settings(database_url=url, secret_key="x" * 32))
    try:
        async with make_sessionmaker(engine)() as session, session.begin():
            await ensure_partitions(
                session, {day_of(anchor + timedelta(days=d)) for d in (-1, 0, 1)}
            )
    finally:
        await engine.dispose()
    return World(
        org_id=org_id,
        admin_id=admin_id,
        manager_id=manager_id,
        team_id=team_id,
        workers=workers,
        starts=starts,
        on_site=on_site,
        anchor=anchor,
        rounds=rounds,
        in_progress_tasks=statuses.count("in_progress"),
        open_tasks=statuses.count("open"),
    )


# --- the points -------------------------------------------------------------------------------

# (recorded_at, lat, lon, accuracy m, speed m/s, heading deg, altitude m, battery %, activity)
Fix: TypeAlias = tuple[datetime, float, float, float, float, float, float, float, str]
_M_PER_DEG = 111_320.0


def batch_plan(points: int) -> list[tuple[int, int]]:
    """(worker index, round) of each 500-point batch: round-robin over the workers."""
    return [(b % WORKERS, b // WORKERS) for b in range(points // BATCH)]


def round_times(world: World, rnd: int) -> list[datetime]:
    """The fix times of one round: 0.5 s apart, the last round ending 0.5 s before the anchor."""
    first = world.anchor - timedelta(seconds=(world.rounds - rnd) * BATCH * STEP_S)
    return [first + timedelta(seconds=j * STEP_S) for j in range(BATCH)]


def fixes(world: World, w: int, times: list[datetime], salt: int) -> list[Fix]:
    """A worker's fixes at ``times``: standing at the site, or driving (seeded random walk)."""
    rng = random.Random(salt * 1_000_003 + w)
    lat, lon = world.starts[w]
    battery = 95.0 - 40.0 * rng.random()
    out: list[Fix] = []
    if world.on_site[w]:
        altitude = rng.uniform(55.0, 80.0)
        for t in times:
            out.append(
                (
                    t,
                    round(lat + rng.gauss(0.0, 0.00006), 6),
                    round(lon + rng.gauss(0.0, 0.0001), 6),
                    round(rng.uniform(4.0, 20.0), 1),
                    round(0.4 * rng.random(), 2),
                    round(359.9 * rng.random(), 1),
                    round(altitude + rng.uniform(-2.0, 2.0), 1),
                    round(battery, 1),
                    "still",
                )
            )
            battery -= 0.002
        return out
    heading = 360.0 * rng.random()
    speed = rng.uniform(4.0, 14.0)
    per_deg_lon = _M_PER_DEG * math.cos(math.radians(lat))
    for t in times:
        heading = (heading + rng.uniform(-12.0, 12.0)) % 360.0
        speed = min(17.0, max(2.0, speed + rng.uniform(-1.0, 1.0)))
        step = speed * STEP_S
        rad = math.radians(heading)
        lat += step * math.cos(rad) / _M_PER_DEG
        lon += step * math.sin(rad) / per_deg_lon
        out.append(
            (
                t,
                round(lat, 6),
                round(lon, 6),
                round(rng.uniform(3.0, 25.0), 1),
                round(speed, 2),
                round(heading, 1),
                round(rng.uniform(50.0, 110.0), 1),
                round(battery, 1),
                "in_vehicle",
            )
        )
        battery -= 0.002
    return out


def batch_fixes(world: World, w: int, rnd: int) -> list[Fix]:
    """The points of batch (worker, round): the same in every phase."""
    return fixes(world, w, round_times(world, rnd), salt=rnd)


def body_of(points: list[Fix]) -> bytes:
    """The JSON body of ``POST /api/v1/tracking/pings``."""
    return msgspec.json.encode(
        {
            "points": [
                {
                    "timestamp": p[0],
                    "lat": p[1],
                    "lon": p[2],
                    "accuracy": p[3],
                    "speed": p[4],
                    "heading": p[5],
                    "altitude": p[6],
                    "battery": p[7],
                    "mocked": False,
                    "activity": p[8],
                }
                for p in points
            ]
        }
    )


# --- where the time goes: CPU per process group, wait events, SQL statements ------------------


def _cpu_s(pid: int | str) -> float | None:
    """user + system CPU seconds of a process (None when it is gone)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = stat.rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS


def _descendants(root: int) -> list[int]:
    parents: dict[int, int] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        with contextlib.suppress(OSError, IndexError, ValueError):
            parents[int(entry.name)] = int(
                (entry / "stat").read_text().rsplit(")", 1)[1].split()[1]
            )
    found, todo = [root], [root]
    while todo:
        parent = todo.pop()
        children = [pid for pid, ppid in parents.items() if ppid == parent]
        found += children
        todo += children
    return found


def _machine_cpu_s() -> tuple[float, float, float]:
    """(busy, idle, of busy: irq + softirq) CPU seconds of the whole machine since boot."""
    values = [int(v) for v in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    idle = values[3] + values[4]
    busy = sum(values[:8]) - idle
    return busy / CLOCK_TICKS, idle / CLOCK_TICKS, (values[5] + values[6]) / CLOCK_TICKS


PG_PIDS_SQL = """
SELECT pid FROM pg_stat_activity
WHERE datname = current_database() OR backend_type <> 'client backend'
"""
SESSIONS_SQL = "SELECT sessions FROM pg_stat_database WHERE datname = current_database()"
APP_CONNECTIONS_SQL = """
SELECT count(*) FROM pg_stat_activity
WHERE application_name = 'fieldcrm' AND datname = current_database()
"""
WAITS_SQL = """
SELECT coalesce(wait_event_type || ':' || wait_event, 'CPU (no wait event)') AS w
FROM pg_stat_activity
WHERE application_name = 'fieldcrm' AND datname = current_database() AND state = 'active'
  AND pid <> pg_backend_pid()
"""


@dataclass
class CpuMeter:
    """CPU seconds used while a phase runs, per group of processes (read from /proc)."""

    server_pid: int
    started: float = 0.0
    server: dict[int, float] = field(default_factory=dict)
    postgres: dict[int, float] = field(default_factory=dict)
    postgres_last: dict[int, float] = field(default_factory=dict)  # last seen, incl. gone ones
    client: float = 0.0
    machine: tuple[float, float, float] = (0.0, 0.0, 0.0)

    @staticmethod
    def _read(pids: Iterable[int]) -> dict[int, float]:
        out = {}
        for pid in pids:
            used = _cpu_s(pid)
            if used is not None:
                out[pid] = used
        return out

    async def start(self, conn: Connection) -> None:
        self.server = self._read(_descendants(self.server_pid))
        self.postgres = self._read(r["pid"] for r in await conn.fetch(PG_PIDS_SQL))
        self.postgres_last = dict(self.postgres)
        self.client = _cpu_s("self") or 0.0
        self.machine = _machine_cpu_s()
        self.started = time.perf_counter()

    async def sample(self, conn: Connection) -> None:
        """Note the CPU of this database's backends now: a backend that exits before the end
        (a pool overflow connection) keeps what it had used when it was last seen."""
        pids = {r["pid"] for r in await conn.fetch(PG_PIDS_SQL)} | set(self.postgres_last)
        self.postgres_last.update(self._read(pids))

    async def stop(self, conn: Connection) -> dict[str, float]:
        """CPU seconds per group and the wall seconds of the phase."""
        wall = time.perf_counter() - self.started
        server = self._read(_descendants(self.server_pid))
        await self.sample(conn)
        postgres = self.postgres_last
        busy, idle, irq = _machine_cpu_s()
        used = {
            "uvicorn (API server)": sum(v - self.server.get(p, 0.0) for p, v in server.items()),
            "PostgreSQL (this database + background)": sum(
                v - self.postgres.get(p, 0.0) for p, v in postgres.items()
            ),
            "benchmark client (this script)": (_cpu_s("self") or 0.0) - self.client,
        }
        used["kernel: irq + softirq (loopback TCP)"] = irq - self.machine[2]
        used[OTHER_CPU] = max(0.0, busy - self.machine[0] - sum(used.values()))
        used["idle"] = idle - self.machine[1]
        used["wall seconds"] = wall
        return used


async def sample_waits(url: str, stop: asyncio.Event, out: Counter[str], cpu: CpuMeter) -> None:
    """What the app's active backends are doing, every WAIT_SAMPLE_S; ``out["samples"]``; the
    backends' CPU every 5th time."""
    conn = await asyncpg.connect(asyncpg_dsn(url))
    try:
        while not stop.is_set():
            out["samples"] += 1
            out.update(str(r["w"]) for r in await conn.fetch(WAITS_SQL))
            if out["samples"] % 5 == 0:
                await cpu.sample(conn)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), WAIT_SAMPLE_S)
    finally:
        await conn.close()


STATEMENT_KINDS = (
    ("WITH batch AS (", STORE_SQL_KIND),
    ("JOIN organizations", "auth: load the user (guard)"),
    ("FROM teams t JOIN team_members", "live: team members"),
    ("WITH fp AS MATERIALIZED", TEAM_SQL_KIND),
    ("ORDER BY u.full_name, u.id", "live: roster read: workers"),
    ("array_remove(array_agg(m.user_id)", "live: roster read: teams"),
    ("ORDER BY t.assignee_id, starts, t.id", "live: roster read: next visits"),
    ("INSERT INTO audit", "live: audit record"),
    ("FROM shifts", "shift mask: shifts"),
    ("FROM shift_schedules", "shift mask: weekly schedule"),
    ("to_regclass", "ensure_partitions: to_regclass"),
    ("pg_advisory_xact_lock", "ensure_partitions: lock"),
    ("COPY", "store: COPY pings (binary)"),
    ("SAVEPOINT", "store: SAVEPOINT / RELEASE around the COPY"),
    ("INSERT INTO pings", "store: INSERT pings (a resend)"),
    ("INSERT INTO latest_positions", "latest_positions upsert"),
    ("pg_notify", "pg_notify (live stream)"),
    ("ST_DWithin(si.location", "arrival hints: tasks x sites"),
    ("INSERT INTO notifications", "arrival hints: notification"),
    ("INSERT INTO outbox", "arrival hints: outbox"),
)


def statement_kind(statement: str) -> str:
    for needle, kind in STATEMENT_KINDS:
        if needle in statement:
            return kind
    return re.sub(r"\s+", " ", statement)[:50]


# --- 1a. COPY ---------------------------------------------------------------------------------


@dataclass
class InsertRun:
    """One way of putting the points into ``pings``."""

    label: str
    points: int
    seconds: float
    rows: int  # counted with SQL afterwards
    checkpoint: bool
    cpu: dict[str, float] = field(default_factory=dict)  # CPU seconds per group of processes

    @property
    def per_s(self) -> float:
        return self.points / self.seconds


def copy_records(world: World, plan: list[tuple[int, int]]) -> list[tuple[Any, ...]]:
    received = datetime.now(UTC)
    out: list[tuple[Any, ...]] = []
    for w, rnd in plan:
        user = world.workers[w]
        for t, lat, lon, acc, speed, heading, alt, battery, activity in batch_fixes(world, w, rnd):
            out.append(
                (world.org_id, user, None, t, received, lat, lon, acc, speed, heading, alt,
                 battery, False, activity)
            )  # fmt: skip
    return out


async def run_copy(url: str, world: World, plan: list[tuple[int, int]]) -> InsertRun:
    """(a) binary COPY from one connection, 50,000 points per COPY; only the COPYs are timed
    (and their CPU: this process's around each COPY, PostgreSQL's over the phase)."""
    conn = await asyncpg.connect(asyncpg_dsn(url))
    try:
        checkpoint = await empty_pings(conn)
        seconds = client_cpu = 0.0
        points = len(plan) * BATCH
        meter = CpuMeter(os.getpid())
        await meter.start(conn)
        with tqdm(
            total=points, desc="(a) COPY", unit="pt", unit_scale=True, file=sys.stderr
        ) as bar:
            for low in range(0, len(plan), COPY_CHUNK_BATCHES):
                records = copy_records(world, plan[low : low + COPY_CHUNK_BATCHES])
                started, cpu = time.perf_counter(), time.process_time()
                await conn.copy_records_to_table(
                    "pings", records=records, columns=copy_rows.COLUMNS
                )
                seconds += time.perf_counter() - started
                client_cpu += time.process_time() - cpu
                bar.update(len(records))
        used = await meter.stop(conn)
        rows = int(await conn.fetchval("SELECT count(*) FROM pings"))
    finally:
        await conn.close()
    if rows != points:
        raise RuntimeError(f"COPY stored {rows:,} rows, expected {points:,}")
    run = InsertRun("(a) asyncpg binary COPY, 1 connection", points, seconds, rows, checkpoint)
    run.cpu = {"PostgreSQL": used["PostgreSQL (this database + background)"], "client": client_cpu}
    return run


# --- 1b. the API ------------------------------------------------------------------------------


@dataclass
class ApiRun(InsertRun):
    clients: int = 0
    latency: Series = field(default_factory=lambda: Series("batch"))
    server_ms: Series = field(default_factory=lambda: Series("server"))
    statuses: Counter[int] = field(default_factory=Counter)
    accepted: int = 0
    duplicates: int = 0
    off_shift: int = 0
    rejected: int = 0
    waits: Counter[str] = field(default_factory=Counter)
    worker_shares: list[float] = field(default_factory=list)  # of the server's work, busiest first
    sessions_opened: int = 0  # PostgreSQL sessions (connections) started during the run
    app_connections: int = 0  # the app's connections open at the end

    @property
    def consistent(self) -> bool:
        return self.rows == self.accepted == self.points


def api_payloads(world: World, plan: list[tuple[int, int]]) -> list[tuple[uuid.UUID, bytes, int]]:
    """(worker, JSON body, points) of each batch, encoded before the timing."""
    return [
        (world.workers[w], body_of(batch_fixes(world, w, rnd)), BATCH)
        for w, rnd in progress(plan, "(b) encoding the batches")
    ]


def warmup_payloads(world: World, count: int) -> list[tuple[uuid.UUID, bytes, int]]:
    """Small batches an hour before the measured points (the table is emptied afterwards)."""
    start = world.anchor - timedelta(hours=1)
    times = [start + timedelta(seconds=j * STEP_S) for j in range(API_WARMUP_POINTS)]
    out = []
    for k in range(count):
        w = WORKERS - 1 - k
        out.append((world.workers[w], body_of(fixes(world, w, times, salt=-1)), len(times)))
    return out


def encode_requests(
    base: str, payloads: list[tuple[uuid.UUID, bytes, int]], tokens: dict[uuid.UUID, str]
) -> list[tuple[bytes, int]]:
    """Each payload as a whole HTTP request (with its worker's token) and its points."""
    return [
        (
            RawHttpConnection.encode_post(
                base,
                PINGS_PATH,
                body,
                {"Authorization": f"Bearer {tokens[user]}", "Content-Type": "application/json"},
            ),
            n,
        )
        for user, body, n in payloads
    ]


async def open_connections(base: str, count: int) -> list[RawHttpConnection]:
    """``count`` keep-alive connections, one at a time, each accepted before the next arrives:
    opened all at once, one uvicorn process can accept them all in one go (asyncio accepts a
    burst per wake-up) and leave the other idle; phones connect at their own moments."""
    connections = []
    for _ in range(count):
        connections.append(await RawHttpConnection.open(base))
        await asyncio.sleep(ACCEPT_GAP_S)
    return connections


def worker_deltas(before: dict[int, float], after: dict[int, float]) -> str:
    """``pid: seconds`` of each server process between two ``worker_cpu`` readings."""
    return ", ".join(f"{p}: {v - before.get(p, 0.0):.2f} s" for p, v in sorted(after.items()))


def worker_cpu(server: Server) -> dict[int, float]:
    """CPU seconds of each process of the server (the supervisor and its workers)."""
    return {pid: _cpu_s(pid) or 0.0 for pid in _descendants(server.proc.pid)}


def server_pids_of(server: Server, connections: list[RawHttpConnection]) -> list[int | None]:
    """The server process that accepted each connection (``ss`` from iproute2; None each when
    ``ss`` is missing)."""
    if SS is None:
        return [None] * len(connections)
    try:
        listed = subprocess.run(  # noqa: S603 - our own fixed command line
            [SS, "-tnpH", "state", "established", f"( sport = :{server.port} )"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout
    except (OSError, subprocess.CalledProcessError):
        return [None] * len(connections)
    owners: dict[int, int] = {}
    for line in listed.splitlines():
        found = re.search(r"pid=(\d+)", line)
        if found:
            owners[int(line.split()[3].rsplit(":", 1)[1])] = int(found.group(1))
    return [owners.get(c.writer.get_extra_info("sockname")[1]) for c in connections]


async def balanced_connections(
    server: Server, clients: int, warmup: list[tuple[bytes, int]]
) -> list[RawHttpConnection]:
    """Connections shared about evenly by the server's worker processes (checked with ``ss``),
    warmed up. Which process accepts a connection is up to the kernel's wake-up order: with the
    processes idle the last one to wait is woken first, so it is often the same one every time,
    and then one process serves every connection while the other waits (seen: 43 % of the CPU
    idle, 0.39 of COPY)."""
    for attempt in range(1, ACCEPT_TRIES + 1):
        connections = await open_connections(server.base, clients)
        owners = Counter(server_pids_of(server, connections))
        busiest = max(owners.values()) / clients
        if None in owners or busiest <= BALANCED_SHARE or attempt == ACCEPT_TRIES:
            log(f"(b) connections per server process: {dict(owners)}")
            await post_all(connections, warmup, None, None)
            return connections
        log(f"(b) connections per server process: {dict(owners)}; opening them again")
        for connection in connections:
            await connection.close()
        await asyncio.sleep(0.1)
    raise AssertionError("unreachable")


async def post_all(
    connections: list[RawHttpConnection],
    requests: list[tuple[bytes, int]],
    run: ApiRun | None,
    bar: tqdm[Any] | None,
) -> None:
    """Post every request over the connections, one request in flight on each; ``run``
    collects answers."""
    queue: asyncio.Queue[tuple[bytes, int]] = asyncio.Queue()
    for request in requests:
        queue.put_nowait(request)

    async def drain(connection: RawHttpConnection) -> None:
        while True:
            try:
                request, n = queue.get_nowait()
            except asyncio.QueueEmpty:
                return
            started = time.perf_counter()
            status, body = await connection.send(request)
            ms = (time.perf_counter() - started) * 1000
            if status != 200:
                raise RuntimeError(f"POST {PINGS_PATH}: {status} {body[:500]!r}")
            if run is not None:
                data = msgspec.json.decode(body)
                run.latency.ms.append(ms)
                run.statuses[status] += 1
                run.accepted += int(data["accepted"])
                run.duplicates += int(data["duplicates"])
                run.off_shift += int(data["offShift"])
                run.rejected += len(data["rejected"])
            if bar is not None:
                bar.update(n)

    async with asyncio.TaskGroup() as group:
        for connection in connections:
            group.create_task(drain(connection))


async def run_api(
    url: str,
    server: Server,
    world: World,
    tokens: dict[uuid.UUID, str],
    payloads: list[tuple[uuid.UUID, bytes, int]],
    clients: int,
) -> ApiRun:
    """(b) the batches through uvicorn from ``clients`` connections, after a warm-up."""
    points = sum(n for _, _, n in payloads)
    warmup = encode_requests(server.base, warmup_payloads(world, 4 * clients), tokens)
    connections = await balanced_connections(server, clients, warmup)
    requests = encode_requests(server.base, payloads, tokens)
    conn = await asyncpg.connect(asyncpg_dsn(url))
    try:
        checkpoint = await empty_pings(conn)
        run = ApiRun(
            f"(b) POST {PINGS_PATH}, {BATCH}-point batches",
            points,
            0.0,
            0,
            checkpoint,
            clients=clients,
        )
        meter = CpuMeter(server.proc.pid)
        stop = asyncio.Event()
        sampler = asyncio.create_task(sample_waits(url, stop, run.waits, meter))
        offset = server.log_offset()
        sessions = int(await conn.fetchval(SESSIONS_SQL))
        await meter.start(conn)
        before = worker_cpu(server)
        with tqdm(total=points, desc=f"(b) API, {clients} connections", unit="pt",
                  unit_scale=True, file=sys.stderr) as bar:  # fmt: skip
            started = time.perf_counter()
            await post_all(connections, requests, run, bar)
            run.seconds = time.perf_counter() - started
        run.cpu = await meter.stop(conn)
        used = sorted(
            (v - before.get(p, 0.0) for p, v in worker_cpu(server).items()), reverse=True
        )[:SERVER_WORKERS]
        run.worker_shares = [u / (sum(used) or 1.0) for u in used]
        log(f"(b) CPU per server process: {worker_deltas(before, worker_cpu(server))}")
        run.sessions_opened = int(await conn.fetchval(SESSIONS_SQL)) - sessions
        run.app_connections = int(await conn.fetchval(APP_CONNECTIONS_SQL))
        stop.set()
        await sampler
        run.server_ms = server.durations(PINGS_PATH, offset)
        run.rows = int(await conn.fetchval("SELECT count(*) FROM pings"))
    finally:
        await conn.close()
        for connection in connections:
            await connection.close()
    return run


# --- 1b'. where the time of a batch goes (in-process) ----------------------------------------


@dataclass
class Step:
    """Wall and CPU (this process) milliseconds of one step, per batch."""

    wall: Series
    cpu: Series

    @classmethod
    def named(cls, name: str) -> Step:
        return cls(Series(name), Series(name))

    def add(self, wall_started: float, cpu_started: float) -> None:
        self.wall.ms.append((time.perf_counter() - wall_started) * 1000)
        self.cpu.ms.append((time.process_time() - cpu_started) * 1000)


@dataclass
class Breakdown:
    batches: int
    parse: Step  # services.parse_batch: the JSON body to Points
    policy: Step  # ingest.policy_filter on the parsed points
    auth: Step  # the app's guard: verify the token, load the user (ActorLoader, alone)
    ingest: Step  # services.submit_pings: parse + store through the PingWriter, incl. COMMIT
    asgi: Step  # the whole request through the in-process ASGI app (no uvicorn), client incl.
    sql_ms: dict[str, float] = field(default_factory=dict)  # mean per batch
    sql_count: dict[str, float] = field(default_factory=dict)
    ingest_sql_ms: float = 0.0  # mean per batch: the statements submit_pings sent
    profile: str = ""

    @classmethod
    def empty(cls, batches: int) -> Breakdown:
        return cls(
            batches=batches,
            parse=Step.named("parse_batch"),
            policy=Step.named("policy_filter"),
            auth=Step.named("auth"),
            ingest=Step.named("submit_pings"),
            asgi=Step.named("ASGI request"),
        )


def breakdown_batches(world: World, count: int, offset: int) -> list[tuple[uuid.UUID, bytes]]:
    """Batches newer than every stored point (so the latest position moves, as in (b))."""
    base = datetime.now(UTC) - timedelta(seconds=BATCH * 0.1 + 5)
    times = [base + timedelta(seconds=j * 0.1) for j in range(BATCH)]
    out = []
    for k in range(count):
        w = (offset + 7 * k) % WORKERS
        out.append((world.workers[w], body_of(fixes(world, w, times, salt=-2 - offset))))
    return out


def _profile_text(profiler: cProfile.Profile, batches: int, top: int = 25) -> str:
    """The functions with the most own time, per batch (ms), without the event loop's wait."""
    stats = pstats.Stats(profiler)
    rows = []
    for (filename, line, name), entry in stats.stats.items():  # type: ignore[attr-defined]
        calls, own = entry[1], entry[2]
        if name == "<method 'poll' of 'select.epoll' objects>":
            continue
        where = filename.replace(str(ROOT) + "/", "").replace(".venv/lib/python3.11/", "")
        rows.append((own, calls, f"{where}:{line}({name})"))
    rows.sort(reverse=True)
    lines = [f"    {'own ms/batch':>12} {'calls/batch':>11}  function"]
    for own, calls, where in rows[:top]:
        lines.append(f"    {own * 1000 / batches:12.3f} {calls / batches:11.1f}  {where[-100:]}")
    return "\n".join(lines)


async def run_breakdown(settings: Settings, world: World, batches: int, profile: bool) -> Breakdown:
    """Batches through ``services.ingest_batch`` with each SQL statement timed, sequentially;
    then as many through the in-process ASGI app (guard, DI, transaction, JSON answer). The
    first BREAKDOWN_WARMUP of each are not recorded."""
    engine = make_engine(settings)
    meter = StatementMeter(statement_kind)
    meter.attach(engine)
    sessionmaker: async_sessionmaker[AsyncSession] = make_sessionmaker(engine)
    result = Breakdown.empty(batches)
    sql_ms: dict[str, float] = {}
    sql_count: Counter[str] = Counter()
    total = batches + BREAKDOWN_WARMUP
    tokens = tokens_for(world.workers, world.org_id, settings.secret_key)
    writer = PingWriter(sessionmaker)
    ingest_sql = 0.0
    try:
        for k, (user, body) in enumerate(progress(breakdown_batches(world, total, 1), "ingest")):
            keep = k >= BREAKDOWN_WARMUP
            out = result if keep else Breakdown.empty(0)
            wall, cpu = time.perf_counter(), time.process_time()
            parsed = services.parse_batch(body)
            out.parse.add(wall, cpu)
            points = [p for p in parsed if isinstance(p, tuple)]
            wall, cpu = time.perf_counter(), time.process_time()
            ingest.policy_filter(points, datetime.now(UTC))
            out.policy.add(wall, cpu)
            meter.take()
            # The app's guard: the token, then the user (one query: no other request waits).
            wall, cpu = time.perf_counter(), time.process_time()
            claims = verify_access_token(
                tokens[user], secret_key=settings.secret_key, now=datetime.now(UTC)
            )
            actor = await ActorLoader(sessionmaker).load(claims)
            out.auth.add(wall, cpu)
            meter.take()
            wall, cpu = time.perf_counter(), time.process_time()
            outcome = await services.submit_pings(writer, actor, body, datetime.now(UTC), None)
            out.ingest.add(wall, cpu)
            answer = outcome.body
            await asyncio.sleep(0)  # the query logger reports with call_soon
            during = meter.take()
            if answer["accepted"] != BATCH:
                raise RuntimeError(f"breakdown batch: {answer}")
            if keep:
                ingest_sql += sum(during[0].values())
                for kind, value in during[0].items():
                    sql_ms[kind] = sql_ms.get(kind, 0.0) + value
                sql_count.update(during[1])
        result.ingest_sql_ms = ingest_sql / batches
        result.sql_ms = {k: v / batches for k, v in sorted(sql_ms.items(), key=lambda kv: -kv[1])}
        result.sql_count = {k: sql_count[k] / batches for k in result.sql_ms}
    finally:
        await engine.dispose()

    engine = make_engine(settings)  # without the meter's event hooks
    try:
        app = create_app(settings, sessionmaker=make_sessionmaker(engine))
        logging.getLogger("fieldcrm.access").setLevel(logging.WARNING)  # no line per request
        # Litestar's __call__ is typed with its own scope types, narrower than httpx's.
        transport = httpx.ASGITransport(app=app)  # type: ignore[arg-type]
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:

            async def post(user: uuid.UUID, body: bytes) -> None:
                headers = {
                    "Authorization": f"Bearer {tokens[user]}",
                    "Content-Type": "application/json",
                }
                answer = await client.post(PINGS_PATH, content=body, headers=headers)
                if answer.status_code != 200 or answer.json()["accepted"] != BATCH:
                    raise RuntimeError(f"ASGI batch: {answer.status_code} {answer.text[:300]}")

            asgi_batches = breakdown_batches(world, total, 2)
            for k, (user, body) in enumerate(progress(asgi_batches, "ingest via ASGI")):
                wall, cpu = time.perf_counter(), time.process_time()
                await post(user, body)
                if k >= BREAKDOWN_WARMUP:
                    result.asgi.add(wall, cpu)
            if profile:
                profiler = cProfile.Profile()
                for user, body in progress(breakdown_batches(world, batches, 3), "profiling"):
                    profiler.enable()
                    await post(user, body)
                    profiler.disable()
                result.profile = _profile_text(profiler, batches)
    finally:
        await engine.dispose()
    return result


# --- 1c. the naive ORM ------------------------------------------------------------------------


class _BaselineBase(DeclarativeBase):
    """A registry of its own: the baseline's class is not part of the app's metadata."""


class NaivePing(_BaselineBase):
    """The naive baseline only: ``pings`` has no ORM class in the product (it is written in
    bulk with ``unnest``)."""

    __tablename__ = "pings"

    organization_id: Mapped[uuid.UUID] = mapped_column(Uuid)
    user_id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True)
    device_id: Mapped[uuid.UUID | None] = mapped_column(Uuid)
    recorded_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), primary_key=True)
    received_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    lat: Mapped[float] = mapped_column(Double)
    lon: Mapped[float] = mapped_column(Double)
    accuracy_m: Mapped[float | None] = mapped_column(REAL)
    speed_mps: Mapped[float | None] = mapped_column(REAL)
    heading_deg: Mapped[float | None] = mapped_column(REAL)
    altitude_m: Mapped[float | None] = mapped_column(REAL)
    battery_pct: Mapped[float | None] = mapped_column(REAL)
    mocked: Mapped[bool] = mapped_column(Boolean)
    activity: Mapped[str | None] = mapped_column(Text)


async def run_orm(settings: Settings, world: World, plan: list[tuple[int, int]]) -> InsertRun:
    """(c) one ORM object + flush (one INSERT) per point, a transaction per 500 points."""
    conn = await asyncpg.connect(asyncpg_dsn(settings.database_url))
    try:
        checkpoint = await empty_pings(conn)
    finally:
        await conn.close()
    engine = make_engine(settings)
    sessionmaker = make_sessionmaker(engine)
    seconds = 0.0
    points = len(plan) * BATCH
    try:
        with tqdm(total=points, desc="(c) naive ORM", unit="pt", unit_scale=True,
                  file=sys.stderr) as bar:  # fmt: skip
            for w, rnd in plan:
                batch = batch_fixes(world, w, rnd)
                user = world.workers[w]
                started = time.perf_counter()
                async with sessionmaker() as session, session.begin():
                    received = datetime.now(UTC)
                    for t, lat, lon, acc, speed, heading, alt, battery, activity in batch:
                        session.add(
                            NaivePing(
                                organization_id=world.org_id,
                                user_id=user,
                                device_id=None,
                                recorded_at=t,
                                received_at=received,
                                lat=lat,
                                lon=lon,
                                accuracy_m=acc,
                                speed_mps=speed,
                                heading_deg=heading,
                                altitude_m=alt,
                                battery_pct=battery,
                                mocked=False,
                                activity=activity,
                            )
                        )
                        await session.flush()
                seconds += time.perf_counter() - started
                bar.update(len(batch))
        async with sessionmaker() as session:
            rows = int(await session.scalar(select(func.count()).select_from(NaivePing)) or 0)
    finally:
        await engine.dispose()
    if rows != points:
        raise RuntimeError(f"the ORM stored {rows:,} rows, expected {points:,}")
    return InsertRun("(c) naive ORM: add + flush per point", points, seconds, rows, checkpoint)


# --- 2. live positions ------------------------------------------------------------------------


@dataclass
class LiveResult:
    server: Series  # live_json() in-process: what GET /live runs
    decoded: Series  # live(): live_json() + msgspec decode (stream snapshot, team board)
    moving: Series  # live_json() when every position changed since the last look
    sql: dict[str, Series]  # per statement kind, ms per call (client side: incl. transfer)
    python: Series  # live_json() minus its SQL statements
    explain: Series  # EXPLAIN ANALYZE of the check statement: execution inside PostgreSQL
    commit: Series
    http: Series  # client round trip through uvicorn
    http_server: Series  # the server's access log
    features: int
    with_position: int
    statuses: dict[str, int]
    with_current_task: int
    with_next_task: int
    response_bytes: int


async def _explain(
    sessionmaker: async_sessionmaker[AsyncSession], meter: StatementMeter, out: Series
) -> None:
    """EXPLAIN ANALYZE of the check statement as live sent it (rolled back: it also writes
    the audit entry); nothing when it was not seen."""
    statement, parameters = meter.last.get(TEAM_SQL_KIND, ("", None))
    if not statement or not isinstance(parameters, tuple | list):
        log("live: the check statement was not seen; no EXPLAIN ANALYZE")
        return
    async with sessionmaker() as session:
        await session.begin()
        raw = await meter.watch(session)
        try:
            for _ in range(5):
                plan = await raw.fetch(f"EXPLAIN (ANALYZE) {statement}", *parameters)
                found = re.search(r"Execution Time: ([\d.]+) ms", "\n".join(r[0] for r in plan))
                if found:
                    out.ms.append(float(found.group(1)))
        except asyncpg.PostgresError as exc:
            log(f"live: EXPLAIN ANALYZE failed: {exc!r}")
        await session.rollback()


MOVE_ALL_SQL = text(
    "UPDATE latest_positions SET recorded_at = recorded_at + interval '1 millisecond',"
    " lat = lat + 0.000001 WHERE organization_id = :org"
)


async def run_live_in_process(settings: Settings, world: World, runs: int) -> LiveResult:
    engine = make_engine(settings)
    meter = StatementMeter(statement_kind)
    meter.attach(engine)
    sessionmaker = make_sessionmaker(engine)
    server, decoded = Series("live_json()"), Series("live()")
    moving = Series("live_json(), all positions changed")
    python, explain, commit = Series("python"), Series("explain"), Series("commit")
    sql: dict[str, Series] = {}
    body = b""
    try:
        async with sessionmaker() as session:
            actor = await load_actor(session, world.manager_id, world.org_id, 1)
        for i in progress(range(LIVE_WARMUP + runs), "live_json(), 2,000 workers, in-process"):
            async with sessionmaker() as session:
                await session.begin()
                await meter.watch(session)
                await asyncio.sleep(0)  # the query logger reports with call_soon
                meter.take()
                started = time.perf_counter()
                body = await live.live_json(session, actor, datetime.now(UTC), world.team_id)
                ms = (time.perf_counter() - started) * 1000
                await asyncio.sleep(0)
                statements, _ = meter.take()
                started = time.perf_counter()
                await session.commit()
                commit_ms = (time.perf_counter() - started) * 1000
            if i >= LIVE_WARMUP:
                server.ms.append(ms)
                python.ms.append(ms - sum(statements.values()))
                commit.ms.append(commit_ms)
                for kind, value in statements.items():
                    sql.setdefault(kind, Series(kind)).ms.append(value)
        for i in progress(range(LIVE_WARMUP + runs), "live(), decoded, in-process"):
            async with sessionmaker() as session, session.begin():
                started = time.perf_counter()
                await live.live(session, actor, datetime.now(UTC), world.team_id)
                ms = (time.perf_counter() - started) * 1000
            if i >= LIVE_WARMUP:
                decoded.ms.append(ms)
        await _explain(sessionmaker, meter, explain)
        # Informational: a team on the move, every worker with a newer fix at each look.
        for i in progress(range(LIVE_WARMUP + runs), "live_json(), all positions changed"):
            async with sessionmaker() as session, session.begin():
                await session.execute(MOVE_ALL_SQL, {"org": world.org_id})
            async with sessionmaker() as session, session.begin():
                started = time.perf_counter()
                await live.live_json(session, actor, datetime.now(UTC), world.team_id)
                ms = (time.perf_counter() - started) * 1000
            if i >= LIVE_WARMUP:
                moving.ms.append(ms)
    finally:
        await engine.dispose()
    features = msgspec.json.decode(body)["features"]
    if len(features) != WORKERS:
        raise RuntimeError(f"live_json() returned {len(features)} workers, expected {WORKERS}")
    props = [f["properties"] for f in features]
    return LiveResult(
        server=server,
        decoded=decoded,
        moving=moving,
        sql=sql,
        python=python,
        explain=explain,
        commit=commit,
        http=Series("GET /live"),
        http_server=Series("server"),
        features=len(features),
        with_position=sum(f["geometry"] is not None for f in features),
        statuses=dict(Counter(p["status"] for p in props).most_common()),
        with_current_task=sum(p["currentTask"] is not None for p in props),
        with_next_task=sum(p["nextTask"] is not None for p in props),
        response_bytes=0,
    )


async def run_live_http(
    server: Server, world: World, token: str, result: LiveResult, runs: int
) -> None:
    """GET /live?team= as the manager through uvicorn, sequentially."""
    offset = server.log_offset()
    headers = {"Authorization": f"Bearer {token}"}
    params = {"team": str(world.team_id)}
    async with httpx.AsyncClient(base_url=server.base, timeout=60.0) as client:
        for i in progress(range(LIVE_WARMUP + runs), "GET /live, 2,000 workers, uvicorn"):
            started = time.perf_counter()
            answer = await client.get(LIVE_PATH, params=params, headers=headers)
            ms = (time.perf_counter() - started) * 1000
            if answer.status_code != 200:
                raise RuntimeError(f"GET {LIVE_PATH}: {answer.status_code} {answer.text[:300]}")
            if i >= LIVE_WARMUP:
                result.http.ms.append(ms)
            result.response_bytes = len(answer.content)
    server_ms = server.durations(LIVE_PATH, offset)
    result.http_server = Series("server", server_ms.ms[LIVE_WARMUP:])


# --- 3. the live stream -----------------------------------------------------------------------


@dataclass
class SseResult:
    subscribers: int
    posts: int
    rate: float
    delay: Series
    post_ms: Series
    missing: int
    expected: int
    snapshot_features: list[int]
    per_subscriber_p95: list[float]


async def run_sse(
    server: Server, world: World, tokens: dict[uuid.UUID, str], subscribers: int, posts: int
) -> SseResult:
    """Subscribers hold the stream open; one-point batches are posted at SSE_RATE_PER_S."""
    received: list[dict[tuple[str, datetime], float]] = [{} for _ in range(subscribers)]
    ready = [asyncio.Event() for _ in range(subscribers)]
    snapshot_features = [0] * subscribers
    listen_timeout = httpx.Timeout(30.0, read=None)
    limits = httpx.Limits(max_connections=subscribers + 1, max_keepalive_connections=0)
    sent: list[tuple[tuple[str, datetime], float]] = []
    posted = asyncio.Event()  # every POST answered
    delivered = asyncio.Event()  # ... and every subscriber has every position

    def check_delivered() -> None:
        if posted.is_set() and all(key in got for got in received for key, _ in sent):
            delivered.set()

    async def subscribe(i: int, client: httpx.AsyncClient) -> None:
        viewer = world.manager_id if i % 2 == 0 else world.admin_id
        headers = {"Authorization": f"Bearer {tokens[viewer]}", "Accept": "text/event-stream"}
        async with client.stream("GET", STREAM_PATH, headers=headers) as response:
            if response.status_code != 200:
                raise RuntimeError(f"GET {STREAM_PATH}: {response.status_code}")
            kind = ""
            async for line in response.aiter_lines():
                if line.startswith("event:"):
                    kind = line[6:].strip()
                elif line.startswith("data:"):
                    now = time.perf_counter()
                    data = msgspec.json.decode(line[5:].strip())
                    if kind == "snapshot":
                        snapshot_features[i] = len(data["features"])
                        ready[i].set()
                    elif kind == "position":
                        key = (str(data["userId"]), datetime.fromisoformat(data["recordedAt"]))
                        received[i].setdefault(key, now)
                        if posted.is_set():  # only then: no checking while measuring
                            check_delivered()
                elif not line:
                    kind = ""

    post_ms = Series("POST one point")
    async with (
        httpx.AsyncClient(base_url=server.base, timeout=listen_timeout, limits=limits) as listen,
        httpx.AsyncClient(base_url=server.base, timeout=30.0) as sender,
    ):
        tasks = [asyncio.create_task(subscribe(i, listen)) for i in range(subscribers)]
        try:
            deadline = time.monotonic() + 60.0
            while not all(e.is_set() for e in ready):
                failed = [t for t in tasks if t.done()]
                if failed:
                    failed[0].result()  # raises what went wrong
                    raise RuntimeError("a subscriber's stream ended before its snapshot")
                if time.monotonic() > deadline:
                    raise RuntimeError("the subscribers got no snapshot within 60 s")
                await asyncio.sleep(0.02)

            async def send(k: int) -> None:
                w = (k * 7 + 3) % WORKERS
                user = world.workers[w]
                lat, lon = world.starts[w]
                recorded = datetime.now(UTC)
                point = {"timestamp": recorded, "lat": lat, "lon": lon, "accuracy": 8.0,
                         "speed": 6.5, "heading": 90.0, "battery": 70.0}  # fmt: skip
                body = msgspec.json.encode({"points": [point]})
                headers = {
                    "Authorization": f"Bearer {tokens[user]}",
                    "Content-Type": "application/json",
                }
                started = time.perf_counter()
                answer = await sender.post(PINGS_PATH, content=body, headers=headers)
                post_ms.ms.append((time.perf_counter() - started) * 1000)
                if answer.status_code != 200 or answer.json()["accepted"] != 1:
                    raise RuntimeError(f"SSE post: {answer.status_code} {answer.text[:300]}")
                sent.append(((str(user), recorded), started))

            interval = 1.0 / SSE_RATE_PER_S
            began = time.perf_counter()
            pending = []
            for k in progress(range(posts), f"live stream: {subscribers} subscribers, posting"):
                delay = began + k * interval - time.perf_counter()
                if delay > 0:
                    await asyncio.sleep(delay)
                pending.append(asyncio.create_task(send(k)))
            await asyncio.gather(*pending)
            posted.set()
            check_delivered()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(delivered.wait(), SSE_WAIT_S)
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
    delay_series = Series("SSE delay")
    per_subscriber: list[float] = []
    missing = 0
    for got in received:
        mine = Series("subscriber")
        for key, started in sent:
            if key in got:
                mine.ms.append((got[key] - started) * 1000)
            else:
                missing += 1
        delay_series.ms += mine.ms
        per_subscriber.append(mine.p95)
    return SseResult(
        subscribers=subscribers,
        posts=posts,
        rate=SSE_RATE_PER_S,
        delay=delay_series,
        post_ms=post_ms,
        missing=missing,
        expected=subscribers * len(sent),
        snapshot_features=snapshot_features,
        per_subscriber_p95=per_subscriber,
    )


# --- report -----------------------------------------------------------------------------------


def _yes(ok: bool) -> str:
    return "yes" if ok else "NO"


def report(
    copy: InsertRun,
    api: ApiRun,
    orm: InsertRun,
    breakdown: Breakdown,
    live_result: LiveResult,
    sse: SseResult,
    world: World,
    meta: dict[str, Any],
) -> dict[str, Any]:
    ratio = api.per_s / copy.per_s
    api_ok = ratio >= GOAL_API_VS_COPY
    api_fast = api.per_s >= GOAL_API_POINTS_PER_S
    live_ok = live_result.server.p95 <= GOAL_LIVE_MS
    quick = " (quick run: indicative)" if meta["quick"] else ""
    labels = {
        id(copy): "(a) asyncpg binary COPY, 1 connection",
        id(api): f"(b) POST /tracking/pings, {api.clients} conn., uvicorn x{SERVER_WORKERS}",
        id(orm): "(c) naive ORM: add + flush per point, 1 conn.",
    }
    lines = [
        "",
        f"fieldcrm ingest: {WORKERS:,} field workers with open shifts, {meta['cpu_count']} CPUs,"
        f" {meta['platform']}, Python {meta['python']}, PostgreSQL {meta['postgres']}",
        "",
        "1. Points into the partitioned pings table (PK (user_id, recorded_at), BRIN, btree);"
        " each phase starts from an empty table (TRUNCATE + CHECKPOINT) and stores the same"
        f" points; batches of {BATCH} points",
        f"  {'method':<50} {'points':>10} {'seconds':>8} {'points/s':>10} {'vs COPY':>8}",
    ]
    for run in (copy, api, orm):
        lines.append(
            f"  {labels[id(run)]:<50} {run.points:>10,} {run.seconds:8.2f} {run.per_s:10,.0f}"
            f" {run.per_s / copy.per_s:8.3f}"
        )
    lines += [
        f"GOAL API >= {GOAL_API_VS_COPY:.0%} of COPY: {_yes(api_ok)} ({ratio:.1%}){quick}",
        f"GOAL API >= {GOAL_API_POINTS_PER_S:,.0f} points/s: {_yes(api_fast)}"
        f" ({api.per_s:,.0f}){quick}",
        f"  (b) {sum(api.statuses.values()):,} requests {dict(api.statuses)}; accepted"
        f" {api.accepted:,}, duplicates {api.duplicates}, offShift {api.off_shift}, rejected"
        f" {api.rejected}; rows counted {api.rows:,}: {'OK' if api.consistent else 'MISMATCH'}",
        f"  (b) per batch: client p50 {api.latency.p50:.1f} / p95 {api.latency.p95:.1f} /"
        f" p99 {api.latency.p99:.1f} ms; server (access log) p50 {api.server_ms.p50:.1f} /"
        f" p95 {api.server_ms.p95:.1f} ms",
        f"  (c) = the first {orm.points // BATCH} batches of the same points, sequential, one"
        " transaction per batch",
        "",
        f"  Where the time of (b) went: CPU seconds during its {api.cpu['wall seconds']:.1f} s"
        f" (x {meta['cpu_count']} CPUs), per {BATCH}-point batch",
    ]
    capacity = (meta["cpu_count"] or 1) * api.cpu["wall seconds"]
    batches = api.points / BATCH
    for group, seconds in api.cpu.items():
        if group == "wall seconds":
            continue
        lines.append(
            f"    {group:<50} {seconds:8.2f} s  {seconds / capacity:6.1%}"
            f"  {seconds * 1000 / batches:6.2f} ms/batch"
        )
    lines.append(
        "    the server processes' shares of it: "
        + " / ".join(f"{share:.0%}" for share in api.worker_shares)
    )
    copy_batches = copy.points / BATCH
    api_cpu = sum(v for k, v in api.cpu.items() if k not in ("wall seconds", "idle", OTHER_CPU))
    lines.append(
        f"    for comparison, (a) COPY per {BATCH} points: PostgreSQL"
        f" {copy.cpu['PostgreSQL'] * 1000 / copy_batches:.2f} ms + its client (encoding)"
        f" {copy.cpu['client'] * 1000 / copy_batches:.2f} ms of CPU; (b) in all"
        f" {api_cpu * 1000 / batches:.2f} ms"
    )
    if api.worker_shares and api.worker_shares[0] > UNEVEN_SHARE:
        lines.append(
            f"    WARNING: one server process did {api.worker_shares[0]:.0%} of (b)'s work while"
            " the other waited: (b) and the ratio are depressed; run again"
        )
    others = api.cpu[OTHER_CPU] / capacity
    if others > 0.1:
        lines.append(
            f"    WARNING: other programs used {others:.0%} of the CPUs during (b): a shared,"
            " busy machine; (b) and the ratios are depressed, run again when it is quiet"
        )
    lines.append(
        f"    PostgreSQL sessions opened during (b): {api.sessions_opened:,} (the app had"
        f" {api.app_connections} connections open at the end; a process's pool keeps"
        " FIELDCRM_DB_POOL_SIZE=10, overflow connections are closed when returned)"
    )
    samples = api.waits["samples"] or 1
    waits = [(k, v) for k, v in api.waits.most_common() if k != "samples"]
    lines.append(
        f"    the app's active backends (pg_stat_activity every {WAIT_SAMPLE_S * 1000:.0f} ms,"
        f" {samples} samples): {sum(v for _, v in waits) / samples:.2f} on average, of which"
    )
    for kind, n in waits[:6]:
        lines.append(f"      {n / samples:5.2f}  {kind}")
    b = breakdown
    store_python = b.ingest.wall.mean - b.parse.wall.mean - b.ingest_sql_ms
    service = b.auth.wall.mean + b.ingest.wall.mean
    service_cpu = b.auth.cpu.mean + b.ingest.cpu.mean

    def step(label: str, s: Step, note: str = "") -> str:
        return f"    {label:<48} {s.wall.mean:7.2f} {s.cpu.mean:7.2f}{note}"

    lines += [
        f"  One {BATCH}-point batch in-process, sequential, mean of {b.batches}: wall ms,"
        " CPU ms of this process",
        step("auth guard: token + ActorLoader (alone: 1 query)", b.auth),
        step("parse_batch: the JSON body to Points", b.parse),
        step("policy_filter (inside store)", b.policy),
        step("submit_pings: parse + PingWriter incl. COMMIT", b.ingest),
    ]
    for kind, ms in b.sql_ms.items():
        lines.append(f"      SQL {kind:<44} {ms:7.2f}          x{b.sql_count[kind]:.1f}")
    lines += [
        f"      {'store() outside those (excl. parse, incl. COPY)':<46} {store_python:7.2f}",
        f"    {'= auth + submit_pings':<48} {service:7.2f} {service_cpu:7.2f}",
        step("whole request, in-process ASGI app + client", b.asgi),
        f"    => at {service_cpu:.1f} ms of Python CPU per batch (service only), 2 processes"
        f" could take at most {2 * 1000 / service_cpu * BATCH:,.0f} points/s with PostgreSQL"
        " on other cores",
    ]
    if b.profile:
        lines += ["  cProfile of the in-process ASGI request (own time; inflated by profiling):"]
        lines.append(b.profile)
    lr = live_result
    lines += [
        "",
        f"2. Live positions of the {lr.features:,}-worker team (ms, {len(lr.server.ms)} runs)",
        f"  live_json() in-process (what GET /live runs), server time: p50 {lr.server.p50:.2f},"
        f" p95 {lr.server.p95:.2f}, max {lr.server.max:.2f}; commit (audit row) p50"
        f" {lr.commit.p50:.2f}",
    ]
    for kind, series in lr.sql.items():
        lines.append(f"    SQL {kind:<44} p50 {series.p50:7.2f}  p95 {series.p95:7.2f}")
    lines += [
        f"    {'  of it inside PostgreSQL (EXPLAIN ANALYZE)':<48} p50 {lr.explain.p50:7.2f}",
        f"    {'Python: rows -> GeoJSON bytes (the rest)':<48} p50 {lr.python.p50:7.2f}"
        f"  p95 {lr.python.p95:7.2f}",
        f"  live() = live_json() + decode to dicts (stream snapshot, team board): p50"
        f" {lr.decoded.p50:.2f}, p95 {lr.decoded.p95:.2f}",
        f"  informational: live_json() when all {lr.features:,} positions changed since the last"
        f" look (a team on the move): p50 {lr.moving.p50:.2f}, p95 {lr.moving.p95:.2f}",
        f"  GET {LIVE_PATH}?team= via uvicorn: client p50 {lr.http.p50:.2f} /"
        f" p95 {lr.http.p95:.2f}; server (access log) p50 {lr.http_server.p50:.2f} /"
        f" p95 {lr.http_server.p95:.2f}; {lr.response_bytes / 1024:,.0f} KiB",
        f"  {lr.with_position:,} with a position; statuses {lr.statuses}; with a current task"
        f" {lr.with_current_task:,}, with a next task {lr.with_next_task:,}",
        f"GOAL live {WORKERS:,} <= {GOAL_LIVE_MS:g} ms (p95, server time):"
        f" {_yes(live_ok)} ({lr.server.p95:.2f} ms){quick}",
        "",
        f"3. Live stream: {sse.subscribers} SSE subscribers (manager / admin) on uvicorn"
        f" x{SERVER_WORKERS}, {sse.posts} one-point POSTs at {sse.rate:g}/s",
        f"  delay POST -> position event: p50 {sse.delay.p50:.1f}, p95 {sse.delay.p95:.1f},"
        f" max {sse.delay.max:.1f} ms; missing {sse.missing} of {sse.expected:,}; POST p50"
        f" {sse.post_ms.p50:.1f} ms; snapshots had {min(sse.snapshot_features):,} workers",
    ]
    print("\n".join(lines))

    figures: dict[str, float] = {
        "copy_points_per_s": copy.per_s,
        "api_points_per_s": api.per_s,
        "orm_points_per_s": orm.per_s,
        "api_vs_copy_ratio": ratio,
        "live_2000_ms": lr.server.p95,
        "sse_delay_p95_ms": sse.delay.p95,
        "orm_vs_copy_ratio": orm.per_s / copy.per_s,
        "api_vs_orm_ratio": api.per_s / orm.per_s,
        "api_batch_p50_ms": api.latency.p50,
        "api_batch_p95_ms": api.latency.p95,
        "api_server_p50_ms": api.server_ms.p50,
        "api_service_cpu_ms_per_batch": service_cpu,
        "live_2000_p50_ms": lr.server.p50,
        "live_2000_sql_explain_ms": lr.explain.p50,
        "live_2000_python_p50_ms": lr.python.p50,
        "live_2000_decoded_p95_ms": lr.decoded.p95,
        "live_2000_all_moved_p95_ms": lr.moving.p95,
        "live_2000_http_p95_ms": lr.http.p95,
        "live_2000_http_server_p95_ms": lr.http_server.p95,
        "sse_delay_p50_ms": sse.delay.p50,
        "sse_delay_max_ms": sse.delay.max,
        "sse_missing_events": float(sse.missing),
        "goal_api_vs_copy_met": 1.0 if api_ok else 0.0,
        "goal_api_points_per_s_met": 1.0 if api_fast else 0.0,
        "goal_live_met": 1.0 if live_ok else 0.0,
    }
    meta = {
        **meta,
        "goals": {
            "api_vs_copy_ratio": GOAL_API_VS_COPY,
            "api_points_per_s": GOAL_API_POINTS_PER_S,
            "live_2000_ms": GOAL_LIVE_MS,
        },
        "phases": "each insert phase starts with TRUNCATE pings + CHECKPOINT; the same points",
        "checkpoint_ran": copy.checkpoint and api.checkpoint and orm.checkpoint,
        "seconds": {"copy": copy.seconds, "api": api.seconds, "orm": orm.seconds},
        "api": {
            "consistent": api.consistent,
            "rows": api.rows,
            "accepted": api.accepted,
            "duplicates": api.duplicates,
            "off_shift": api.off_shift,
            "rejected": api.rejected,
            "statuses": {str(k): v for k, v in api.statuses.items()},
            "cpu_seconds": api.cpu,
            "server_process_shares": api.worker_shares,
            "copy_cpu_ms_per_batch": {k: v * 1000 / copy_batches for k, v in copy.cpu.items()},
            "other_programs_cpu_share": others,
            "postgres_sessions_opened": api.sessions_opened,
            "app_connections_at_end": api.app_connections,
            "active_backends_per_sample": {k: v / samples for k, v in waits},
            "batch_p99_ms": api.latency.p99,
        },
        "breakdown_ms_per_batch": {
            "batches": b.batches,
            **{
                name: {"wall": s.wall.mean, "cpu": s.cpu.mean}
                for name, s in (
                    ("auth", b.auth),
                    ("parse_batch", b.parse),
                    ("policy_filter", b.policy),
                    ("submit_pings", b.ingest),
                    ("asgi_request", b.asgi),
                )
            },
            "sql": b.sql_ms,
            "sql_statements": b.sql_count,
            "store_python_outside_sql": store_python,
        },
        "live": {
            "sql_p50_ms": {k: s.p50 for k, s in lr.sql.items()},
            "explain_ms": lr.explain.ms,
            "statuses": lr.statuses,
            "with_position": lr.with_position,
            "with_current_task": lr.with_current_task,
            "with_next_task": lr.with_next_task,
            "response_bytes": lr.response_bytes,
            "http_p50_ms": lr.http.p50,
            "http_server_p50_ms": lr.http_server.p50,
        },
        "sse": {
            "subscribers": sse.subscribers,
            "posts": sse.posts,
            "rate_per_s": sse.rate,
            "expected_events": sse.expected,
            "per_subscriber_p95_ms": sse.per_subscriber_p95,
            "post_p50_ms": sse.post_ms.p50,
        },
        "world": {
            "workers": WORKERS,
            "in_progress_visits": world.in_progress_tasks,
            "open_visits": world.open_tasks,
            "anchor": world.anchor.isoformat(),
        },
    }
    return {"figures": figures, "meta": meta}


# --- main -------------------------------------------------------------------------------------


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="100k points, 5k ORM points")
    parser.add_argument("--json", type=Path, metavar="PATH", help="write figures as JSON")
    parser.add_argument("--points", type=int, help="points for COPY and the API (default 1M)")
    parser.add_argument("--orm-points", type=int, help="points for the naive ORM (default 20k)")
    parser.add_argument("--clients", type=int, default=API_CLIENTS, help="API connections")
    parser.add_argument("--subscribers", type=int, default=SSE_SUBSCRIBERS, help="SSE clients")
    parser.add_argument("--sse-posts", type=int, help="one-point POSTs for the SSE delay")
    parser.add_argument("--seed", type=int, default=SEED)
    parser.add_argument("--keep", action="store_true", help="keep the database afterwards")
    parser.add_argument(
        "--profile", action="store_true", help="cProfile the in-process ingest requests"
    )
    args = parser.parse_args(argv)
    args.points = args.points or (100_000 if args.quick else 1_000_000)
    args.orm_points = args.orm_points or (5_000 if args.quick else 20_000)
    args.sse_posts = args.sse_posts or (100 if args.quick else 200)
    args.live_runs = LIVE_RUNS_QUICK if args.quick else LIVE_RUNS
    if args.points < 10 * BATCH or args.orm_points < BATCH or args.sse_posts > WORKERS:
        parser.error(f"need --points >= {10 * BATCH}, --orm-points >= {BATCH}, --sse-posts <= 2000")
    if args.points % BATCH or args.orm_points % BATCH:
        parser.error(f"--points and --orm-points must be multiples of {BATCH}")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    url = start(DATABASE)
    if url is None:
        return 1
    secret_key = app_secret_key()
    with fresh_database(url, keep=args.keep) as files_dir:
        # JSON log lines (as in production): the access log's duration_ms is read
        env = server_env(url, secret_key, files_dir, log_json=True)
        settings = app_settings(url, secret_key, files_dir, log_json=True)
        server: Server | None = None
        try:
            plan = batch_plan(args.points)
            rounds = math.ceil(len(plan) / WORKERS)
            anchor = datetime.now(UTC).replace(microsecond=0)
            started = time.perf_counter()
            password_hash = hash_password(secrets.token_urlsafe(16))
            world = asyncio.run(build_world(url, args.seed, password_hash, anchor, rounds))
            log(
                f"{WORKERS:,} workers, {world.in_progress_tasks:,} visits in progress,"
                f" {world.open_tasks:,} open: built in {time.perf_counter() - started:.1f} s"
            )
            copy = asyncio.run(run_copy(url, world, plan))
            log(f"(a) COPY: {copy.per_s:,.0f} points/s")

            users = [world.admin_id, world.manager_id, *world.workers]
            tokens = tokens_for(users, world.org_id, secret_key)
            payloads = api_payloads(world, plan)
            server = Server(env, workers=SERVER_WORKERS)
            log(f"starting {' '.join(server.argv[2:])}")
            server.wait_ready()
            api = asyncio.run(run_api(url, server, world, tokens, payloads, args.clients))
            del payloads
            log(f"(b) API: {api.per_s:,.0f} points/s; rows {api.rows:,}, accepted {api.accepted:,}")
            if not api.consistent:
                log(
                    f"MISMATCH: {api.points:,} points posted, {api.accepted:,} accepted,"
                    f" {api.rows:,} rows"
                )
            breakdown = asyncio.run(
                run_breakdown(
                    settings, world, BREAKDOWN_BATCHES // (2 if args.quick else 1), args.profile
                )
            )
            orm = asyncio.run(run_orm(settings, world, batch_plan(args.orm_points)))
            log(f"(c) ORM: {orm.per_s:,.0f} points/s")

            live_result = asyncio.run(run_live_in_process(settings, world, args.live_runs))
            token = tokens[world.manager_id]
            asyncio.run(run_live_http(server, world, token, live_result, args.live_runs))
            sse = asyncio.run(run_sse(server, world, tokens, args.subscribers, args.sse_posts))
            server.stop()
            server = None
            meta = {
                **machine_meta(url),
                "points": args.points,
                "orm_points": args.orm_points,
                "batch_points": BATCH,
                "workers": WORKERS,
                "api_clients": args.clients,
                "server": f"uvicorn --factory backend.app:app_factory --workers {SERVER_WORKERS},"
                " FIELDCRM_ENV=development, FIELDCRM_LOG_JSON=true",
                "quick": args.quick,
                "seed": args.seed,
                "when": datetime.now(UTC).isoformat(timespec="seconds"),
            }
            result = report(copy, api, orm, breakdown, live_result, sse, world, meta)
            if args.json:
                write_json(args.json, result)
        finally:
            if server is not None:
                server.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
