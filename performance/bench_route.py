"""Benchmark: a field worker's day route — ``GET /api/v1/me/route`` from the cached plan against
solving the day on every request; and how long the background solve takes.

    python performance/bench_route.py [--quick] [--json PATH] [--workers N] [--stops N]
                                      [--requests N] [--clients N] [--solves N]
                                      [--solve-reps N] [--profile] [--seed N] [--keep]

Issue #5's goal: ``GET /api/v1/me/route`` p95 <= 50 ms for a 25-stop day through the API (the
plan is cached; re-solving happens in the background).

Everything happens in its own database ``fieldcrm_bench_route`` (made by backend.db.provision
on FIELDCRM_DATABASE_URL's server, or the local one): its schema is dropped and rebuilt by the
migrations at the start, and the database is dropped at the end (``--keep`` leaves it).

The organisation (direct SQL and COPY, not the API; seeded): Europe/Moscow, a manager and
``--workers`` field workers (default 20, ``--quick`` 5), skill ``measurer``, each with a base
(``users.base_lat/base_lon``) and ``--stops`` (default 25) open measurement visits tomorrow
(local date) at sites drawn uniformly within 15 km of Kazan's centre (55.79 N, 49.12 E), each
with a time window of 2-4 hours (15-minute steps) between 08:00 and 20:00 local. No shift
schedule: the working window is the default 08:00-20:00. Note: 25 measurements of 45 minutes
are 18.75 hours of work, so the 12-hour day is overbooked by construction; the solver plans
what fits and the rest go last (late). That is the solver's slow path (required visits first,
then, after a quarter of the budget, all optional), so the solve times below are for
overbooked days.

Then every worker's plan is cached by ``backend.routing.services.reoptimise`` (the background
solve the API starts, ``SOLVE_BUDGET_S``, no OSRM: haversine estimates), timed per worker.
The clock is real: "tomorrow" has not started, so routes start at the base at 08:00 and stay
fresh (no request in the measured phases starts a background solve; checked on every answer).

a. ``route_api_*``: ``GET /api/v1/me/route?date=<tomorrow>`` through uvicorn with 2 worker
   processes (``FIELDCRM_LOG_JSON=true``, as in production), each request with the token of
   the worker it asks about, round-robin over the workers: ``--requests`` sequential requests
   (default 1,000, ``--quick`` 200) from one client, then twice as many from ``--clients``
   concurrent clients (default 8); 20 warm-up requests before each (not counted). Client time
   (httpx round trip, measured in this script on the same machine) and server time (the
   ``duration_ms`` of the app's access log: from the first byte of the request in the ASGI app
   to the end of the response, auth and the transaction included, uvicorn's parsing not).
   With 8 clients and no think time the server is saturated: that latency is mostly queueing
   (Little's law: clients / throughput), so the requests per second are printed too, and for
   both runs the CPU shares of the machine (from /proc): uvicorn, PostgreSQL, this script
   (the client) and "others" — other people's programs on a shared machine.
b. ``route_inprocess_*``: ``services.get_route`` + ``msgspec.json.encode`` of the answer,
   in-process on one connection pool, each in a fresh session (as many as (a)'s sequential
   requests), and the same split into its steps: ``load_actor`` (what the auth guard runs per
   request), ``load_day`` (user + visits queries), the ``route_plans`` row, ``build_route``
   (``plans.route``: matrices, order, timing; plus totals and line) and the encoding. Also
   ``build_route`` with 3 of the visits missing from the cached order (new since the solve:
   each put at its cheapest place by ``geo.routes.best_insertion``) — the path of a request
   between a change and the end of its background solve.
c. ``solve_per_request_*``: the naive competitor, what an implementation without a cache does
   per request: ``load_day``, ``plans.optimise`` with the same budget as the background solve
   (``services.SOLVE_BUDGET_S``), then ``build_route`` from that order and the encoding;
   in-process (so without HTTP and auth: in its favour), ``--solves`` requests (default 20,
   ``--quick`` 5), round-robin. ``cached_vs_solve_ratio`` = p50 of (c) / p50 of (a) (medians:
   (c) has few samples). Also: how many of (c)'s orders equal the cached one (the budget is a
   wall-clock cap, so on a busy machine the same seed can end elsewhere).

Solve times (``solve_<n>_p50_s``/``_p95_s``): ``plans.optimise`` (as the background solve runs
it) on in-memory days of 10, 25 and 50 measurement visits drawn as above, ``--solve-reps``
days each (default 10, ``--quick`` 3).

``--profile`` adds a cProfile of (b)'s ``get_route`` + encode (functions with the most own and
cumulative time per request). The machine is shared: the load average before and after each
phase is printed; absolute numbers depend on the machine, the ratio is measured in the same
run. ``--quick`` figures are indicative only.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import cProfile
import io
import math
import os
import pstats
import random
import secrets
import statistics
import sys
import time
import uuid
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from datetime import time as dtime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import asyncpg
import httpx
import msgspec
from benchkit import (
    Series,
    Server,
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
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from backend.accounts.security import hash_password
from backend.accounts.services import load_actor
from backend.config import Settings
from backend.db.session import make_engine, make_sessionmaker
from backend.routing import plans, services
from backend.routing.day import DayVisit, WorkerDay, load_day
from backend.routing.models import RoutePlan
from backend.seed.generate import CustomerFactory, asyncpg_dsn, register_geography_codec
from backend.tasks.models import TaskKind, TaskStatus

DATABASE = "fieldcrm_bench_route"
SEED = 42
ORG_NAME = "Bench Route Field Service"
ZONE = "Europe/Moscow"
CENTRE = (55.79, 49.12)
RADIUS_KM = 15.0
BASE_RADIUS_KM = 10.0
KM_PER_DEG_LAT = 111.2
DAY_START_H, DAY_END_H = 8, 20
WINDOW_HOURS = (2, 4)
WORKERS, WORKERS_QUICK = 20, 5
STOPS = 25
REQUESTS, REQUESTS_QUICK = 1_000, 200
CLIENTS = 8
WARMUP = 20
SOLVES, SOLVES_QUICK = 20, 5
SOLVE_SIZES = (10, 25, 50)
SOLVE_REPS, SOLVE_REPS_QUICK = 10, 3
NEW_VISITS = 3  # missing from the cached order in (b)'s best_insertion variant
SERVER_WORKERS = 2
GOAL_ROUTE_P95_MS = 50.0
ROUTE_PATH = "/api/v1/me/route"


def loadavg() -> str:
    one, five, _ = os.getloadavg()
    return f"{one:.2f}/{five:.2f}"


CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
PG_PIDS_SQL = """
SELECT pid FROM pg_stat_activity
WHERE datname = current_database() OR backend_type <> 'client backend'
"""


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
        if entry.name.isdigit():
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


def _machine_busy_s() -> float:
    values = [int(v) for v in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    return (sum(values[:8]) - values[3] - values[4]) / CLOCK_TICKS


@dataclass
class CpuMeter:
    """CPU seconds used during a phase (from /proc, so PostgreSQL must run on this machine to
    be counted; if not, it shows under "others"): the uvicorn processes, this database's
    PostgreSQL backends (and the server's background processes), this script, and the rest of
    the machine's busy time — other people's programs on a shared machine."""

    url: str
    server_pid: int
    before: dict[str, dict[int, float]] = field(default_factory=dict)
    machine: float = 0.0
    started: float = 0.0

    async def _read(self) -> dict[str, dict[int, float]]:
        conn = await asyncpg.connect(asyncpg_dsn(self.url))
        try:
            pg = [r["pid"] for r in await conn.fetch(PG_PIDS_SQL)]
        finally:
            await conn.close()
        groups = {"server": _descendants(self.server_pid), "postgres": pg}
        out = {
            g: {p: c for p in pids if (c := _cpu_s(p)) is not None} for g, pids in groups.items()
        }
        out["client"] = {0: _cpu_s("self") or 0.0}
        return out

    async def start(self) -> None:
        self.before = await self._read()
        self.machine = _machine_busy_s()
        self.started = time.perf_counter()

    async def stop(self) -> dict[str, float]:
        wall = time.perf_counter() - self.started
        busy = _machine_busy_s() - self.machine
        after = await self._read()
        used = {g: sum(v - self.before[g].get(p, 0.0) for p, v in after[g].items()) for g in after}
        used["others"] = max(0.0, busy - sum(used.values()))
        used["wall"] = wall
        return used


def cpu_note(used: dict[str, float]) -> str:
    """CPU shares of the machine's capacity during a phase."""
    capacity = (os.cpu_count() or 1) * used["wall"]
    return "CPU " + ", ".join(
        f"{name} {used[key] / capacity:.0%}"
        for key, name in (
            ("server", "uvicorn"),
            ("postgres", "pg"),
            ("client", "client"),
            ("others", "others"),
        )
    )


# --- the organisation -------------------------------------------------------------------------


def disk_point(
    rng: random.Random, centre: tuple[float, float], radius_km: float
) -> tuple[float, float]:
    """(lat, lon) uniformly within ``radius_km`` of ``centre``."""
    r = radius_km * math.sqrt(rng.random())
    angle = rng.uniform(0, 2 * math.pi)
    lat = centre[0] + r * math.cos(angle) / KM_PER_DEG_LAT
    lon = centre[1] + r * math.sin(angle) / (KM_PER_DEG_LAT * math.cos(math.radians(centre[0])))
    return round(lat, 6), round(lon, 6)


def window(rng: random.Random, day: date) -> tuple[datetime, datetime]:
    """A 2-4 hour window (15-minute steps) between 08:00 and 20:00 local, in UTC."""
    length = rng.randint(WINDOW_HOURS[0] * 4, WINDOW_HOURS[1] * 4) * 15
    latest = (DAY_END_H - DAY_START_H) * 60 - length
    begins = DAY_START_H * 60 + rng.randint(0, latest // 15) * 15
    local = datetime.combine(day, dtime(), ZoneInfo(ZONE)) + timedelta(minutes=begins)
    return local.astimezone(UTC), (local + timedelta(minutes=length)).astimezone(UTC)


@dataclass
class World:
    org_id: uuid.UUID
    manager_id: uuid.UUID
    workers: list[uuid.UUID]
    day: date
    stops: int


USERS_SQL = """
INSERT INTO users (id, organization_id, email, password_hash, full_name, role, skills,
                   time_zone, is_active, token_version, base_lat, base_lon)
SELECT u.id, $1, u.email, $2, u.name, u.role::user_role, u.skills::varchar[], $3, true, 1,
       u.lat, u.lon
FROM unnest($4::uuid[], $5::text[], $6::text[], $7::text[], $8::text[], $9::float8[],
            $10::float8[]) AS u(id, email, name, role, skills, lat, lon)
"""
TASKS_SQL = """
INSERT INTO tasks (organization_id, kind, title, status, assignee_id, created_by_id,
                   customer_id, site_id, due_at, window_start, window_end, priority)
SELECT $1, 'measurement', t.title, 'open', t.assignee, $2, t.customer, t.site,
       t.we, t.ws, t.we, 50
FROM unnest($3::text[], $4::uuid[], $5::uuid[], $6::uuid[], $7::timestamptz[],
            $8::timestamptz[]) AS t(title, assignee, customer, site, ws, we)
"""


async def build_world(url: str, seed: int, workers: int, stops: int, day: date) -> World:
    """The organisation, its manager and field workers (with bases), customers with one site
    each and every worker's visits tomorrow, in one transaction; ANALYZE."""
    rng = random.Random(seed)
    org_id, manager_id = uuid.uuid4(), uuid.uuid4()
    worker_ids = [uuid.uuid4() for _ in range(workers)]
    bases = [disk_point(rng, CENTRE, BASE_RADIUS_KM) for _ in worker_ids]
    factory = CustomerFactory(seed, org_id, [manager_id])
    rows = factory.chunk(workers * stops)
    rows.sites[:] = [  # the generator's sites are clustered by district: spread them out
        (*s[:5], disk_point(rng, CENTRE, RADIUS_KM)[::-1], s[6]) for s in rows.sites
    ]
    titles, assignees, customers, sites, starts, ends = [], [], [], [], [], []
    for i, worker in enumerate(worker_ids):
        for k in range(stops):
            c = i * stops + k
            begins, finishes = window(rng, day)
            titles.append(f"Замер: {rows.sites[c][4]}"[:300])
            assignees.append(worker)
            customers.append(rows.customers[c][0])
            sites.append(rows.sites[c][0])
            starts.append(begins)
            ends.append(finishes)
    password_hash = hash_password(secrets.token_urlsafe(16))
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
            await conn.execute(
                USERS_SQL,
                org_id,
                password_hash,
                ZONE,
                [manager_id, *worker_ids],
                ["route-manager@bench.example"]
                + [f"route-field-{i:03d}@bench.example" for i in range(workers)],
                ["Manager"] + [f"Field worker {i}" for i in range(workers)],
                ["manager"] + ["field"] * workers,
                ["{}"] + ["{measurer}"] * workers,
                [None] + [b[0] for b in bases],
                [None] + [b[1] for b in bases],
            )
            await copy_customers(conn, rows)
            await conn.execute(
                TASKS_SQL, org_id, manager_id, titles, assignees, customers, sites, starts, ends
            )
        await conn.execute("ANALYZE")
    finally:
        await conn.close()
    return World(org_id, manager_id, worker_ids, day, stops)


async def warm_plans(settings: Settings, world: World) -> Series:
    """``services.reoptimise`` for every worker (the background solve): its wall time (s)."""
    engine = make_engine(settings)
    sessionmaker = make_sessionmaker(engine)
    seconds = Series("reoptimise (s)")
    try:
        for user in progress(world.workers, "caching plans: services.reoptimise"):
            started = time.perf_counter()
            stored = await services.reoptimise(
                sessionmaker,
                world.org_id,
                user,
                world.day,
                datetime.now(UTC),
                osrm_url=settings.osrm_url,
            )
            seconds.ms.append(time.perf_counter() - started)
            if not stored:
                raise RuntimeError(f"reoptimise stored no plan for {user}")
    finally:
        await engine.dispose()
    return seconds


# --- a. through the API -----------------------------------------------------------------------


@dataclass
class ApiRun:
    client: Series
    server: Series
    requests: int
    clients: int
    seconds: float
    not_optimised: int = 0
    stops: set[int] = field(default_factory=set)
    late_visits: list[int] = field(default_factory=list)
    response_bytes: int = 0
    load: str = ""
    cpu: dict[str, float] = field(default_factory=dict)


def check_answer(run: ApiRun, answer: httpx.Response) -> None:
    if answer.status_code != 200:
        raise RuntimeError(f"GET {ROUTE_PATH}: {answer.status_code} {answer.text[:300]}")
    body = answer.json()
    run.not_optimised += not body["optimised"]
    run.stops.add(len(body["stops"]))
    run.late_visits.append(body["totals"]["lateVisits"])
    run.response_bytes = len(answer.content)


async def run_api(
    url: str,
    server: Server,
    world: World,
    tokens: dict[uuid.UUID, str],
    requests: int,
    clients: int,
) -> ApiRun:
    """``requests`` GETs from ``clients`` concurrent clients (after WARMUP), round-robin over
    the workers, each with its own token."""
    params = {"date": world.day.isoformat()}
    headers = [{"Authorization": f"Bearer {tokens[u]}"} for u in world.workers]
    limits = httpx.Limits(max_connections=clients, max_keepalive_connections=clients)
    async with httpx.AsyncClient(base_url=server.base, timeout=60.0, limits=limits) as client:
        warm = ApiRun(Series("warm-up"), Series("server"), WARMUP, 1, 0.0)
        for i in range(WARMUP):
            check_answer(
                warm, await client.get(ROUTE_PATH, params=params, headers=headers[i % len(headers)])
            )
        await asyncio.sleep(0.5)  # the access line is written after the response is sent
        offset = server.log_offset()
        run = ApiRun(Series("client"), Series("server"), requests, clients, 0.0)
        counter = iter(range(requests))
        bar = progress(range(requests), f"GET {ROUTE_PATH}, {clients} client(s)", total=requests)

        async def one_client() -> None:
            for i in counter:
                started = time.perf_counter()
                answer = await client.get(
                    ROUTE_PATH, params=params, headers=headers[i % len(headers)]
                )
                run.client.ms.append((time.perf_counter() - started) * 1000)
                check_answer(run, answer)
                bar.update(1)

        load_before = loadavg()
        meter = CpuMeter(url, server.proc.pid)
        await meter.start()
        started = time.perf_counter()
        await asyncio.gather(*(one_client() for _ in range(clients)))
        run.seconds = time.perf_counter() - started
        run.cpu = await meter.stop()
        run.load = f"{load_before} -> {loadavg()}"
        bar.close()
    await asyncio.sleep(0.5)  # the access lines of the last requests
    run.server = server.durations(ROUTE_PATH, offset)
    if len(run.server.ms) != requests:
        log(f"access log: {len(run.server.ms)} lines for {requests} requests")
    return run


# --- b. in-process ----------------------------------------------------------------------------


@dataclass
class InProcess:
    total: Series = field(default_factory=lambda: Series("get_route + encode"))
    actor: Series = field(default_factory=lambda: Series("load_actor (auth guard)"))
    day: Series = field(default_factory=lambda: Series("load_day (2 queries)"))
    plan: Series = field(default_factory=lambda: Series("route_plans row"))
    build: Series = field(default_factory=lambda: Series("build_route"))
    encode: Series = field(default_factory=lambda: Series("msgspec encode"))
    insertion: Series = field(default_factory=lambda: Series("build_route, new visits"))
    profile: str = ""
    load: str = ""


def _ms(started: float) -> float:
    return (time.perf_counter() - started) * 1000


async def run_in_process(settings: Settings, world: World, runs: int, profile: bool) -> InProcess:
    engine = make_engine(settings)
    sessionmaker: async_sessionmaker[AsyncSession] = make_sessionmaker(engine)
    out = InProcess()
    load_before = loadavg()
    try:
        async with sessionmaker() as session:
            actors = {u: await load_actor(session, u, world.org_id, 1) for u in world.workers}
        for i in progress(range(WARMUP + runs), "get_route + encode, in-process"):
            user = world.workers[i % len(world.workers)]
            now = datetime.now(UTC)
            async with sessionmaker() as session:
                started = time.perf_counter()
                view = await services.get_route(session, actors[user], user, world.day, now)
                msgspec.json.encode(view.route)
                ms = _ms(started)
            if view.stale:
                raise RuntimeError("a cached plan was stale")
            if i >= WARMUP:
                out.total.ms.append(ms)
        for i in progress(range(WARMUP + runs), "its steps, in-process"):
            user = world.workers[i % len(world.workers)]
            now = datetime.now(UTC)
            async with sessionmaker() as session:
                t = time.perf_counter()
                await load_actor(session, user, world.org_id, 1)
                actor_ms, t = _ms(t), time.perf_counter()
                worker_day = await load_day(session, world.org_id, user, world.day)
                day_ms, t = _ms(t), time.perf_counter()
                plan = await session.get(RoutePlan, (user, world.day))
                plan_ms, t = _ms(t), time.perf_counter()
                view = services.build_route(worker_day, plan, now)
                build_ms, t = _ms(t), time.perf_counter()
                msgspec.json.encode(view.route)
                encode_ms = _ms(t)
                assert plan is not None
                # the same day with NEW_VISITS visits unknown to the cached order
                partial = RoutePlan(
                    user_id=user,
                    day=world.day,
                    organization_id=world.org_id,
                    signature="",
                    task_ids=plan.task_ids[:-NEW_VISITS],
                    legs=plan.legs,
                    etas={},
                    optimised=True,
                    solved_at=plan.solved_at,
                )
                t = time.perf_counter()
                services.build_route(worker_day, partial, now)
                insertion_ms = _ms(t)
            if i >= WARMUP:
                out.actor.ms.append(actor_ms)
                out.day.ms.append(day_ms)
                out.plan.ms.append(plan_ms)
                out.build.ms.append(build_ms)
                out.encode.ms.append(encode_ms)
                out.insertion.ms.append(insertion_ms)
        if profile:
            profiler = cProfile.Profile()
            for i in range(runs):
                user = world.workers[i % len(world.workers)]
                async with sessionmaker() as session:
                    profiler.enable()
                    view = await services.get_route(
                        session, actors[user], user, world.day, datetime.now(UTC)
                    )
                    msgspec.json.encode(view.route)
                    profiler.disable()
            out.profile = profile_text(profiler, runs)
    finally:
        await engine.dispose()
    out.load = f"{load_before} -> {loadavg()}"
    return out


def profile_text(profiler: cProfile.Profile, runs: int, top: int = 20) -> str:
    parts = []
    for key in ("tottime", "cumulative"):
        buffer = io.StringIO()
        stats = pstats.Stats(profiler, stream=buffer)
        stats.sort_stats(key).print_stats(top)
        parts.append(f"  cProfile of {runs} get_route + encode, sorted by {key} (seconds in all):")
        parts += ["    " + line for line in buffer.getvalue().splitlines() if line.strip()][3:]
    return "\n".join(parts)


# --- c. the competitor: solve on every request ------------------------------------------------


@dataclass
class Competitor:
    total: Series = field(default_factory=lambda: Series("load_day + optimise + route"))
    solve: Series = field(default_factory=lambda: Series("optimise"))
    same_order: int = 0
    load: str = ""


async def run_competitor(settings: Settings, world: World, runs: int) -> Competitor:
    engine = make_engine(settings)
    sessionmaker = make_sessionmaker(engine)
    out = Competitor()
    load_before = loadavg()
    try:
        for i in progress(range(runs), "optimise on every request, in-process"):
            user = world.workers[i % len(world.workers)]
            now = datetime.now(UTC)
            async with sessionmaker() as session:
                started = time.perf_counter()
                worker_day = await load_day(session, world.org_id, user, world.day)
                t = time.perf_counter()
                solved = plans.optimise(
                    worker_day, now, osrm_url=settings.osrm_url, budget_s=services.SOLVE_BUDGET_S
                )
                solve_ms = _ms(t)
                plan = RoutePlan(
                    user_id=user,
                    day=world.day,
                    organization_id=world.org_id,
                    signature="",
                    task_ids=solved.task_ids,
                    legs=solved.legs,
                    etas={},
                    optimised=True,
                    solved_at=now,
                )
                view = services.build_route(worker_day, plan, now)
                msgspec.json.encode(view.route)
                out.total.ms.append(_ms(started))
                out.solve.ms.append(solve_ms)
                cached = await session.get(RoutePlan, (user, world.day))
                out.same_order += cached is not None and list(cached.task_ids) == solved.task_ids
    finally:
        await engine.dispose()
    out.load = f"{load_before} -> {loadavg()}"
    return out


# --- solve times ------------------------------------------------------------------------------


def synthetic_day(rng: random.Random, day: date, stops: int) -> WorkerDay:
    """A worker's day of ``stops`` open measurement visits drawn as in the database."""
    zone = ZoneInfo(ZONE)
    visits = []
    for k in range(stops):
        lat, lon = disk_point(rng, CENTRE, RADIUS_KM)
        begins, finishes = window(rng, day)
        visits.append(
            DayVisit(
                task_id=uuid.UUID(int=rng.getrandbits(128)),
                kind=TaskKind.MEASUREMENT,
                title=f"visit {k}",
                status=TaskStatus.OPEN,
                customer_name=None,
                address=None,
                lat=lat,
                lon=lon,
                window_start=begins,
                window_end=finishes,
                due_at=finishes,
                started_at=None,
                completed_at=None,
                deal_id=None,
            )
        )
    visits.sort(key=lambda v: (v.window_start, v.task_id))
    return WorkerDay(
        user_id=uuid.uuid4(),
        organization_id=uuid.uuid4(),
        day=day,
        time_zone=ZONE,
        skills=frozenset({"measurer"}),
        shift_start=datetime.combine(day, dtime(DAY_START_H), zone).astimezone(UTC),
        shift_end=datetime.combine(day, dtime(DAY_END_H), zone).astimezone(UTC),
        base=disk_point(rng, CENTRE, BASE_RADIUS_KM),
        position=None,
        visits=tuple(visits),
    )


def run_solves(seed: int, day: date, reps: int, osrm_url: str | None) -> dict[int, Series]:
    """``plans.optimise`` wall time (s) on ``reps`` seeded days per size."""
    out: dict[int, Series] = {}
    for size in SOLVE_SIZES:
        rng = random.Random(seed * 1000 + size)
        series = out[size] = Series(f"{size} stops (s)")
        for _ in progress(range(reps), f"plans.optimise, {size} stops"):
            worker_day = synthetic_day(rng, day, size)
            started = time.perf_counter()
            plans.optimise(
                worker_day, datetime.now(UTC), osrm_url=osrm_url, budget_s=services.SOLVE_BUDGET_S
            )
            series.ms.append(time.perf_counter() - started)
    return out


# --- the report -------------------------------------------------------------------------------


def _yes(ok: bool) -> str:
    return "yes" if ok else "NO"


def _header(title: str) -> str:
    return f"{title:<60} {'n':>6} {'p50':>9} {'p95':>9} {'p99':>9} {'max':>9}"


def _row(label: str, s: Series, unit: str = "ms", note: str = "") -> str:
    fmt = "{:9.1f}" if unit == "ms" else "{:9.2f}"
    cells = " ".join(fmt.format(v) for v in (s.p50, s.p95, s.p99, s.max))
    return f"  {label:<58} {len(s.ms):>6} {cells}  {note}".rstrip()


def report(
    world: World,
    warm: Series,
    seq: ApiRun,
    conc: ApiRun,
    inproc: InProcess,
    comp: Competitor,
    solves: dict[int, Series],
    meta: dict[str, Any],
) -> dict[str, Any]:
    ratio = comp.total.p50 / seq.client.p50
    ok = seq.client.p95 <= GOAL_ROUTE_P95_MS
    quick = " (quick run: indicative)" if meta["quick"] else ""
    late = statistics.fmean(seq.late_visits) if seq.late_visits else float("nan")
    lines = [
        "",
        f"fieldcrm day route: {len(world.workers)} field workers x {world.stops} measurement"
        f" visits on {world.day} ({ZONE}), {meta['cpu_count']} CPUs, {meta['platform']},"
        f" Python {meta['python']}, PostgreSQL {meta['postgres']}",
        f"  cached plans: services.reoptimise per worker p50 {warm.p50:.2f} s / max"
        f" {warm.max:.2f} s (budget {services.SOLVE_BUDGET_S:g} s); answers: stops per route"
        f" {sorted(seq.stops | conc.stops)}, late visits per route {late:.1f} (overbooked day),"
        f" not optimised {seq.not_optimised + conc.not_optimised}, {seq.response_bytes:,} bytes",
        "",
        _header("ms per request"),
        f"(a) GET {ROUTE_PATH}?date= through uvicorn x{SERVER_WORKERS}, worker's own token",
        _row("sequential, 1 client: client round trip", seq.client, note=f"load {seq.load}"),
        _row("sequential: server (access log)", seq.server, note=cpu_note(seq.cpu)),
        _row(
            f"{conc.clients} concurrent clients: client round trip",
            conc.client,
            note=f"{conc.requests / conc.seconds:,.0f} req/s, load {conc.load}",
        ),
        _row(
            f"{conc.clients} concurrent clients: server (access log)",
            conc.server,
            note=cpu_note(conc.cpu),
        ),
        "(b) in-process, one session per call",
        _row("services.get_route + msgspec encode", inproc.total, note=f"load {inproc.load}"),
        _row("  load_actor (the auth guard's query)", inproc.actor),
        _row("  load_day (user, visits)", inproc.day),
        _row("  route_plans row (session.get)", inproc.plan),
        _row("  build_route (plans.route + totals + line)", inproc.build),
        _row("  msgspec encode", inproc.encode),
        _row(f"  build_route, {NEW_VISITS} visits new since the solve", inproc.insertion),
        "(c) competitor: solve on every request, in-process (no HTTP, no auth)",
        _row(
            f"load_day + plans.optimise ({services.SOLVE_BUDGET_S:g} s budget) + route + encode",
            comp.total,
            note=f"load {comp.load}",
        ),
        _row("  of which plans.optimise", comp.solve),
        f"  same order as the cached plan: {comp.same_order}/{len(comp.total.ms)}",
        "",
        f"cached_vs_solve_ratio (c)/(a), p50: {ratio:,.0f}x   (p95: "
        f"{comp.total.p95 / seq.client.p95:,.0f}x; vs in-process (b) p50:"
        f" {comp.total.p50 / inproc.total.p50:,.0f}x)",
        f"GOAL GET {ROUTE_PATH} p95 <= {GOAL_ROUTE_P95_MS:g} ms (25-stop day, sequential,"
        f" client time): {_yes(ok)} ({seq.client.p95:.1f} ms; with {conc.clients} concurrent"
        f" clients {conc.client.p95:.1f} ms){quick}",
        "",
        "Background solve: plans.optimise on overbooked measurement days (in-memory), budget"
        f" {services.SOLVE_BUDGET_S:g} s",
        _header("seconds per solve"),
    ]
    for size, series in solves.items():
        lines.append(_row(f"  {size} stops", series, unit="s"))
    if inproc.profile:
        lines += ["", inproc.profile]
    print("\n".join(lines))
    figures = {
        "route_api_p50_ms": seq.client.p50,
        "route_api_p95_ms": seq.client.p95,
        "route_api_p99_ms": seq.client.p99,
        "route_api_server_p95_ms": seq.server.p95,
        "route_api_concurrent_p95_ms": conc.client.p95,
        "route_api_concurrent_server_p95_ms": conc.server.p95,
        "route_inprocess_p50_ms": inproc.total.p50,
        "route_inprocess_p95_ms": inproc.total.p95,
        "route_new_visits_build_p95_ms": inproc.insertion.p95,
        "solve_per_request_p50_ms": comp.total.p50,
        "solve_per_request_p95_ms": comp.total.p95,
        "cached_vs_solve_ratio": ratio,
        **{f"solve_{n}_p50_s": s.p50 for n, s in solves.items()},
        **{f"solve_{n}_p95_s": s.p95 for n, s in solves.items()},
        "goal_route_p95_met": 1.0 if ok else 0.0,
    }
    meta = {
        **meta,
        "goals": {"route_api_p95_ms": GOAL_ROUTE_P95_MS},
        "ratio": "p50 of (c) over p50 of (a)",
        "reoptimise_s": warm.ms,
        "late_visits_mean": late,
        "response_bytes": seq.response_bytes,
        "concurrent_requests_per_s": conc.requests / conc.seconds,
        "competitor_same_order": comp.same_order,
        "cpu_seconds": {"a_seq": seq.cpu, "a_conc": conc.cpu},
        "loadavg": {"a_seq": seq.load, "a_conc": conc.load, "b": inproc.load, "c": comp.load},
        "inprocess_steps_p50_ms": {
            s.name: s.p50
            for s in (inproc.actor, inproc.day, inproc.plan, inproc.build, inproc.encode)
        },
    }
    return {"figures": figures, "meta": meta}


# --- main -------------------------------------------------------------------------------------


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="5 workers, 200 requests, 5 solves")
    parser.add_argument("--json", type=Path, metavar="PATH", help="write figures as JSON")
    parser.add_argument("--workers", type=int, help="field workers (default 20)")
    parser.add_argument("--stops", type=int, default=STOPS, help="visits per worker")
    parser.add_argument("--requests", type=int, help="sequential GETs (default 1,000)")
    parser.add_argument("--clients", type=int, default=CLIENTS, help="concurrent clients")
    parser.add_argument("--solves", type=int, help="competitor requests (default 20)")
    parser.add_argument("--solve-reps", type=int, help="days per size for solve times")
    parser.add_argument("--profile", action="store_true", help="cProfile get_route in-process")
    parser.add_argument("--seed", type=int, default=SEED)
    parser.add_argument("--keep", action="store_true", help="keep the database afterwards")
    args = parser.parse_args(argv)
    args.workers = args.workers or (WORKERS_QUICK if args.quick else WORKERS)
    args.requests = args.requests or (REQUESTS_QUICK if args.quick else REQUESTS)
    args.solves = args.solves or (SOLVES_QUICK if args.quick else SOLVES)
    args.solve_reps = args.solve_reps or (SOLVE_REPS_QUICK if args.quick else SOLVE_REPS)
    if args.stops <= NEW_VISITS or args.workers < 1 or args.clients < 1:
        parser.error(f"need --stops > {NEW_VISITS}, --workers >= 1, --clients >= 1")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    url = start(DATABASE)
    if url is None:
        return 1
    secret_key = app_secret_key()
    with fresh_database(url, keep=args.keep) as files_dir:
        env = server_env(url, secret_key, files_dir, log_json=True)
        settings = app_settings(url, secret_key, files_dir, log_json=True)
        server: Server | None = None
        try:
            tomorrow = datetime.now(ZoneInfo(ZONE)).date() + timedelta(days=1)
            started = time.perf_counter()
            world = asyncio.run(build_world(url, args.seed, args.workers, args.stops, tomorrow))
            log(
                f"{args.workers} workers x {args.stops} visits on {tomorrow}: built in"
                f" {time.perf_counter() - started:.1f} s"
            )
            warm = asyncio.run(warm_plans(settings, world))
            log(f"plans cached: reoptimise p50 {warm.p50:.2f} s")

            tokens = tokens_for(world.workers, world.org_id, secret_key)
            server = Server(env, workers=SERVER_WORKERS)
            log(f"starting {' '.join(server.argv[2:])}")
            server.wait_ready()
            seq = asyncio.run(run_api(url, server, world, tokens, args.requests, 1))
            log(f"(a) sequential: p95 {seq.client.p95:.1f} ms")
            conc = asyncio.run(run_api(url, server, world, tokens, 2 * args.requests, args.clients))
            log(f"(a) {args.clients} clients: p95 {conc.client.p95:.1f} ms")
            server.stop()
            server = None

            inproc = asyncio.run(run_in_process(settings, world, args.requests, args.profile))
            log(f"(b) in-process: p95 {inproc.total.p95:.1f} ms")
            comp = asyncio.run(run_competitor(settings, world, args.solves))
            log(f"(c) solve per request: p50 {comp.total.p50:.0f} ms")
            solves = run_solves(args.seed, tomorrow, args.solve_reps, settings.osrm_url)
            meta = {
                **machine_meta(url),
                "workers": args.workers,
                "stops": args.stops,
                "day": tomorrow.isoformat(),
                "requests": args.requests,
                "concurrent_requests": 2 * args.requests,
                "clients": args.clients,
                "solves": args.solves,
                "solve_reps": args.solve_reps,
                "solve_budget_s": services.SOLVE_BUDGET_S,
                "osrm": settings.osrm_url is not None,
                "server": f"uvicorn --factory backend.app:app_factory --workers {SERVER_WORKERS},"
                " FIELDCRM_ENV=development, FIELDCRM_LOG_JSON=true",
                "quick": args.quick,
                "seed": args.seed,
                "when": datetime.now(UTC).isoformat(timespec="seconds"),
            }
            result = report(world, warm, seq, conc, inproc, comp, solves, meta)
            if args.json:
                write_json(args.json, result)
        finally:
            if server is not None:
                server.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
