"""Benchmark and fault test: the outbox relay delivering staff notifications to a fake FCM.

    python performance/bench_notifications.py [--quick] [--json PATH] [--events N]
                                              [--users N] [--max-attempts N] [--keep]

Issue #7's goals: every message arrives at the receiver exactly once by dedupe key (0 lost)
through 30 % random FCM failures, a SIGKILLed worker and a PostgreSQL restart; commit → receipt
p95 <= 1 s.

It starts its OWN PostgreSQL 15 cluster (``initdb`` in a temporary directory, a free port, trust
authentication on 127.0.0.1; as root through ``runuser -u postgres``), creates the extensions
postgis, pg_trgm, btree_gist and runs the migrations — the shared server is never touched, and
the cluster is restarted with ``pg_ctl restart -m immediate`` (a crash: no shutdown checkpoint)
in the fault run. Data (seeded, direct SQL): one organisation, ``--users`` field workers (default
100) with one Android FCM token each. Events are ``backend.notifications.services.notify`` calls,
each in its own committed transaction (the domain's own path: a notification and its outbox row).

The receivers are ``python -m push.fake_fcm`` processes (standalone, their own port; one with
``--failure-rate 0``, one with ``--failure-rate 0.3``: 503/500/429-with-Retry-After at random,
seeded). Receipt times come from polling the fake's ``GET /_fake/deliveries`` every 10 ms (the
first time a dedupe key shows up), so latencies carry up to ~10 ms of polling resolution.
Our relay runs as ``python -m backend.cli worker`` (procrastinate + the relay loop woken by
LISTEN/NOTIFY), configured through FIELDCRM_FCM_* like production.

Phases (ours and the competitors on the same data, the clean fake):

1. ours: our worker; ``--events`` / 5 events (default 200) paced at 20/s:
   ``commit_to_receipt_p50_ms`` / ``_p95_ms``; then a backlog of ``--events`` notifications
   committed in one transaction: ``relay_msgs_per_s`` from the first to the last receipt.
2. competitor (a): the same relay code in this process without LISTEN, polling every 2 s (as a
   cron-tick or polling relay does), same paced events: ``baseline_poll_p95_ms`` and
   ``latency_ratio`` (its p95 over ours).
3. competitor (b), naive: one row per transaction and one FCM call per message (the same relay
   with a batch of 1), polling continuously, same backlog: ``naive_msgs_per_s`` and
   ``throughput_ratio``.
4. fault run: ``--events`` events at about 150/s to the failing fake; at 35 % of them the worker
   is killed with SIGKILL and started again, at 65 % the cluster is restarted (the producer
   retries its transaction until it commits; notify's dedupe key makes a retry after an unknown
   commit outcome safe). Then the outbox drains (``--max-attempts`` 10 for this run: at a 30 %
   failure rate a message dies after N failures with probability 0.3^N, 6e-6 for 10). Figures:
   ``events``, ``delivered`` (distinct dedupe keys received), ``lost``, ``raw_deliveries``,
   ``duplicates_seen_by_receiver`` (deliveries whose dedupe key was seen before: at-least-once
   sends again what was sent but not yet recorded when the worker died), ``dead``, and the
   fault run's latency (``fault_commit_to_receipt_p50_ms``/``_p95_ms``).

``--quick``: 200 events, 40 for latency, 40 users (about a minute on an idle 2-core machine;
each worker start costs seconds of imports). The
machine is shared: absolute numbers depend on it; the ratios are measured in the same run.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import platform
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any

import asyncpg
import httpx
from benchkit import ROOT, Series, free_port, log, write_json
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine, async_sessionmaker, create_async_engine
from sqlalchemy.pool import NullPool

from backend.db.migrate import upgrade
from backend.lib.clock import SystemClock
from backend.notifications.channels import Channels
from backend.notifications.relay import Relay, RelayConfig
from backend.notifications.services import notify
from push.fcm import FcmConfig, FcmSender

PG_BIN = Path("/usr/lib/postgresql/15/bin")
DATABASE = "fieldcrm_bench_notifications"
GOAL_P95_MS = 1000.0
POLL_BASELINE_S = 2.0
FAILURE_RATE = 0.3
SECRET_KEY = "bench-notifications-" + "k" * 40


# --- the private PostgreSQL cluster ------------------------------------------------------------


class Cluster:
    """A throwaway PostgreSQL cluster in a temporary directory on a free port."""

    def __init__(self) -> None:
        self.dir = Path(tempfile.mkdtemp(prefix="fieldcrm-bench-pg-"))
        self.data = self.dir / "data"
        self.port = free_port()
        self.as_postgres = os.geteuid() == 0  # initdb refuses to run as root
        if self.as_postgres:
            shutil.chown(self.dir, "postgres", "postgres")
        self.url = f"postgresql+asyncpg://postgres@127.0.0.1:{self.port}/{DATABASE}"
        self.dsn = f"postgresql://postgres@127.0.0.1:{self.port}/{DATABASE}"

    def _run(self, *argv: str) -> None:
        command = [*(["runuser", "-u", "postgres", "--"] if self.as_postgres else []), *argv]
        # No pipes: a server started by pg_ctl inherits them and would keep them open.
        with (self.dir / "pg_ctl.out").open("ab") as out:
            subprocess.run(  # noqa: S603 - our own command line
                command, check=True, stdin=subprocess.DEVNULL, stdout=out, stderr=out, cwd=self.dir
            )

    @property
    def _options(self) -> str:
        return (
            f"-p {self.port} -c listen_addresses=127.0.0.1 -c unix_socket_directories={self.dir}"
            " -c max_connections=100 -c shared_buffers=64MB"
        )

    def _start(self) -> None:
        self._run(
            str(PG_BIN / "pg_ctl"),
            "-D",
            str(self.data),
            "-o",
            self._options,
            "-l",
            str(self.dir / "log"),
            "-w",
            "start",
        )

    def init(self) -> None:
        self._run(
            str(PG_BIN / "initdb"),
            "-D",
            str(self.data),
            "-U",
            "postgres",
            "--auth=trust",
            "--encoding=UTF8",
            "--locale=C.UTF-8",
        )
        self._start()
        asyncio.run(self._create())
        upgrade(self.url)

    async def _create(self) -> None:
        conn = await asyncpg.connect(f"postgresql://postgres@127.0.0.1:{self.port}/postgres")
        try:
            await conn.execute(f'CREATE DATABASE "{DATABASE}"')
        finally:
            await conn.close()
        conn = await asyncpg.connect(self.dsn)
        try:
            for extension in ("postgis", "pg_trgm", "btree_gist"):
                await conn.execute(f"CREATE EXTENSION IF NOT EXISTS {extension}")
        finally:
            await conn.close()

    def restart(self) -> None:
        """A crash restart: no shutdown checkpoint, recovery from the WAL."""
        self._run(str(PG_BIN / "pg_ctl"), "-D", str(self.data), "-m", "immediate", "-w", "stop")
        self._start()

    def stop(self, keep: bool) -> None:
        with contextlib.suppress(subprocess.CalledProcessError, FileNotFoundError):
            self._run(str(PG_BIN / "pg_ctl"), "-D", str(self.data), "-m", "fast", "-w", "stop")
        if keep:
            log(f"kept the cluster in {self.dir}")
        else:
            shutil.rmtree(self.dir, ignore_errors=True)


# --- processes: fake FCM and our worker --------------------------------------------------------


class Proc:
    """A subprocess with its output in a temporary log file."""

    def __init__(self, argv: list[str], env: dict[str, str] | None = None) -> None:
        self.argv = argv
        self.env = env
        self.log: IO[bytes] = tempfile.NamedTemporaryFile(  # noqa: SIM115 - closed in stop()
            prefix="fieldcrm-bench-", suffix=".log", delete=False
        )
        self.proc = self._spawn()

    def _spawn(self) -> subprocess.Popen[bytes]:
        return subprocess.Popen(  # noqa: S603 - our own command line
            self.argv,
            cwd=ROOT,
            env={**os.environ, **(self.env or {})},
            stdout=self.log,
            stderr=subprocess.STDOUT,
        )

    def restart(self) -> None:
        self.proc = self._spawn()

    def kill(self) -> None:
        """SIGKILL: no cleanup of any kind in the child."""
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(timeout=20)

    def alive(self) -> bool:
        return self.proc.poll() is None

    def tail(self, lines: int = 30) -> str:
        self.log.flush()
        return "\n".join(Path(self.log.name).read_text(errors="replace").splitlines()[-lines:])

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=20)
        self.log.close()
        Path(self.log.name).unlink(missing_ok=True)


@dataclass
class Fake:
    """A standalone ``python -m push.fake_fcm`` and its throwaway service-account key."""

    proc: Proc
    url: str
    key_path: Path

    @classmethod
    def start(cls, failure_rate: float, workdir: Path, seed: int) -> Fake:
        port = free_port()
        key = workdir / f"fake-fcm-{port}.json"
        proc = Proc(
            [
                sys.executable,
                "-m",
                "push.fake_fcm",
                "--port",
                str(port),
                "--failure-rate",
                str(failure_rate),
                "--seed",
                str(seed),
                "--write-service-account",
                str(key),
            ]
        )
        url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            with contextlib.suppress(httpx.TransportError):
                if httpx.get(f"{url}/_fake/stats", timeout=1).status_code == 200 and key.exists():
                    return cls(proc, url, key)
            if not proc.alive():
                raise RuntimeError(f"the fake FCM exited:\n{proc.tail()}")
            time.sleep(0.1)
        raise RuntimeError("the fake FCM did not start")


def worker_env(cluster: Cluster, fake: Fake, max_attempts: int) -> dict[str, str]:
    """Our worker's environment: the private cluster and the fake as FCM."""
    return {
        "FIELDCRM_DATABASE_URL": cluster.url,
        "FIELDCRM_SECRET_KEY": SECRET_KEY,
        "FIELDCRM_ENV": "development",
        "FIELDCRM_LOG_JSON": "false",
        "FIELDCRM_FCM_SERVICE_ACCOUNT": str(fake.key_path),
        "FIELDCRM_FCM_URL": fake.url,
        "FIELDCRM_OUTBOX_MAX_ATTEMPTS": str(max_attempts),
    }


def start_worker(env: dict[str, str]) -> Proc:
    return Proc([sys.executable, "-m", "backend.cli", "worker"], env)


# --- data and events ---------------------------------------------------------------------------


@dataclass
class World:
    org_id: uuid.UUID
    users: list[uuid.UUID]


async def build_world(dsn: str, users: int, seed: int) -> World:
    rng = random.Random(seed)
    org_id = uuid.UUID(int=rng.getrandbits(128), version=4)
    user_ids = [uuid.UUID(int=rng.getrandbits(128), version=4) for _ in range(users)]
    now = datetime.now(UTC)
    conn = await asyncpg.connect(dsn)
    try:
        async with conn.transaction():
            await conn.execute(
                "INSERT INTO organizations (id, name, time_zone, currency, locale,"
                " payment_details) VALUES ($1, 'Bench Windows', 'UTC', 'EUR', 'en', '{}')",
                org_id,
            )
            await conn.executemany(
                "INSERT INTO users (id, organization_id, email, password_hash, full_name, role,"
                " skills, time_zone, is_active, token_version)"
                " VALUES ($1, $2, $3, 'x', $4, 'field', '{}', 'UTC', true, 1)",
                [(u, org_id, f"w{i}@bench.test", f"Worker {i}") for i, u in enumerate(user_ids)],
            )
            await conn.executemany(
                "INSERT INTO push_devices (organization_id, user_id, token, platform,"
                " app_version, last_seen_at) VALUES ($1, $2, $3, 'android', '1.0', $4)",
                [(org_id, u, f"bench-token-{i:05d}", now) for i, u in enumerate(user_ids)],
            )
    finally:
        await conn.close()
    return World(org_id, user_ids)


@dataclass
class Events:
    """Dedupe keys of the events' outbox rows and when each was committed (monotonic s)."""

    committed: dict[str, float] = field(default_factory=dict)
    retries: int = 0


async def make_event(
    engine: AsyncEngine, world: World, tag: str, index: int, events: Events
) -> None:
    """One notify() in its own transaction, retried until it commits (idempotent by key)."""
    key = f"bench:{tag}:{index}"
    user = world.users[index % len(world.users)]
    sessionmaker = async_sessionmaker(engine, expire_on_commit=False)
    for attempt in range(600):
        try:
            async with sessionmaker() as session, session.begin():
                nid = await notify(
                    session,
                    organization_id=world.org_id,
                    user_id=user,
                    kind="task_assigned",
                    title=f"Job {tag} {index}",
                    body="Bauman St 1, 10:00-12:00",
                    dedupe_key=key,
                    now=datetime.now(UTC),
                )
            if nid is None:  # committed before the connection broke: find its outbox key
                async with sessionmaker() as session:
                    nid = await session.scalar(
                        text("SELECT id FROM notifications WHERE dedupe_key = :k"), {"k": key}
                    )
            events.committed.setdefault(f"notification:{nid}", time.monotonic())
            return
        except Exception:  # the server is restarting: try again
            events.retries += 1
            await asyncio.sleep(min(0.05 * (attempt + 1), 0.5))
    raise RuntimeError(f"event {key} never committed")


async def produce(
    engine: AsyncEngine,
    world: World,
    tag: str,
    count: int,
    rate: float,
    events: Events,
    hooks: dict[int, Any] | None = None,
) -> None:
    """``count`` events at about ``rate`` per second; ``hooks[i]()`` runs before event i."""
    started = time.monotonic()
    for i in range(count):
        if hooks and i in hooks:
            await hooks[i]()
        delay = started + i / rate - time.monotonic()
        if delay > 0:
            await asyncio.sleep(delay)
        await make_event(engine, world, tag, i, events)


class Receipts:
    """First-seen times of dedupe keys at a fake (polling ``/_fake/deliveries``)."""

    def __init__(self, fake_url: str) -> None:
        self.url = f"{fake_url}/_fake/deliveries"
        self.first_seen: dict[str, float] = {}
        self.raw = 0
        self.per_key: dict[str, int] = {}
        self._task: asyncio.Task[None] | None = None

    async def poll_once(self, client: httpx.AsyncClient) -> None:
        deliveries = (await client.get(self.url)).json()
        now = time.monotonic()
        self.raw = len(deliveries)
        counts: dict[str, int] = {}
        for d in deliveries:
            key = d.get("dedupe_key")
            if key is None:
                continue
            counts[key] = counts.get(key, 0) + 1
            self.first_seen.setdefault(key, now)
        self.per_key = counts

    async def _loop(self) -> None:
        async with httpx.AsyncClient(timeout=5) as client:
            while True:
                with contextlib.suppress(httpx.HTTPError):
                    await self.poll_once(client)
                await asyncio.sleep(0.01)

    def start(self) -> None:
        self._task = asyncio.create_task(self._loop())

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def wait_for(self, keys: set[str], timeout_s: float) -> bool:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if keys <= self.first_seen.keys():
                return True
            await asyncio.sleep(0.02)
        return keys <= self.first_seen.keys()


def latencies(events: Events, receipts: Receipts) -> Series:
    series = Series("commit_to_receipt")
    for key, committed in events.committed.items():
        seen = receipts.first_seen.get(key)
        if seen is not None:
            series.ms.append(max(seen - committed, 0.0) * 1000)
    return series


# --- the phases --------------------------------------------------------------------------------


def engine_for(cluster: Cluster) -> AsyncEngine:
    # No pool: every transaction opens its own connection, so a restarted server is no trouble.
    return create_async_engine(cluster.url, poolclass=NullPool)


async def warm_up(engine: AsyncEngine, world: World, receipts: Receipts, tag: str) -> None:
    """One event through, so start-up (imports, OAuth token) is not measured."""
    events = Events()
    await make_event(engine, world, tag, 0, events)
    if not await receipts.wait_for(set(events.committed), 120):
        raise RuntimeError("the warm-up message did not arrive")


async def bulk(engine: AsyncEngine, world: World, tag: str, count: int) -> set[str]:
    """A backlog: ``count`` notify() calls committed together (the relay sees them at once)."""
    sessionmaker = async_sessionmaker(engine, expire_on_commit=False)
    keys: set[str] = set()
    async with sessionmaker() as session, session.begin():
        for i in range(count):
            nid = await notify(
                session,
                organization_id=world.org_id,
                user_id=world.users[i % len(world.users)],
                kind="task_assigned",
                title=f"Job {tag} {i}",
                dedupe_key=f"bench:{tag}:{i}",
                now=datetime.now(UTC),
            )
            keys.add(f"notification:{nid}")
    return keys


def rate_of(keys: set[str], receipts: Receipts) -> float:
    """Messages per second from the first to the last receipt of ``keys``."""
    times = sorted(receipts.first_seen[k] for k in keys if k in receipts.first_seen)
    if len(times) < 2 or times[-1] == times[0]:
        return float("nan")
    return (len(times) - 1) / (times[-1] - times[0])


@dataclass
class CleanRun:
    latency: Series
    msgs_per_s: float


async def measure(
    engine: AsyncEngine,
    world: World,
    receipts: Receipts,
    tag: str,
    latency_events: int,
    backlog: int,
) -> CleanRun:
    """Latency at 20 events/s, then the drain rate of a backlog (whichever relay runs)."""
    await warm_up(engine, world, receipts, f"warm-{tag}")
    events = Events()
    await produce(engine, world, f"lat-{tag}", latency_events, 20.0, events)
    if not await receipts.wait_for(set(events.committed), 60):
        log(f"{tag}: not every message arrived within 60 s")
    series = latencies(events, receipts)
    rate = float("nan")
    if backlog:
        keys = await bulk(engine, world, f"tput-{tag}", backlog)
        if not await receipts.wait_for(keys, 300):
            log(f"{tag}: the backlog did not drain in 300 s")
        rate = rate_of(keys, receipts)
    return CleanRun(series, rate)


async def run_ours(
    cluster: Cluster, world: World, fake: Fake, args: argparse.Namespace
) -> CleanRun:
    """Our worker process (procrastinate + the LISTEN/NOTIFY relay loop)."""
    engine = engine_for(cluster)
    receipts = Receipts(fake.url)
    receipts.start()
    worker = start_worker(worker_env(cluster, fake, args.max_attempts))
    try:
        return await measure(engine, world, receipts, "ours", args.latency_events, args.events)
    finally:
        worker.stop()
        await receipts.stop()
        await engine.dispose()


async def run_competitor(
    cluster: Cluster,
    world: World,
    fake: Fake,
    args: argparse.Namespace,
    config: RelayConfig,
    poll_s: float | None,
    tag: str,
    backlog: int,
) -> CleanRun:
    """A competitor: our relay code in this process, polling instead of listening."""
    engine = engine_for(cluster)
    receipts = Receipts(fake.url)
    receipts.start()
    relay_engine = create_async_engine(cluster.url, pool_size=2)
    fcm = FcmSender(FcmConfig(service_account=fake.key_path, fcm_url=fake.url))
    relay = Relay(
        async_sessionmaker(relay_engine, expire_on_commit=False),
        Channels(fcm=fcm),
        SystemClock(),
        config,
    )
    stop = asyncio.Event()

    async def loop() -> None:
        while not stop.is_set():
            await relay.drain(max_passes=100_000)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), timeout=poll_s or 0.01)

    task = asyncio.create_task(loop())
    try:
        return await measure(engine, world, receipts, tag, args.latency_events, backlog)
    finally:
        stop.set()
        await task
        await fcm.aclose()
        await relay_engine.dispose()
        await receipts.stop()
        await engine.dispose()


@dataclass
class FaultRun:
    events: int
    delivered: int
    raw: int
    duplicates: int
    dead: int
    pending: int
    latency: Series
    drain_s: float
    producer_retries: int
    worker_restarts: int


async def fault_run(
    cluster: Cluster, world: World, fake: Fake, count: int, max_attempts: int, timeout_s: float
) -> FaultRun:
    engine = engine_for(cluster)
    receipts = Receipts(fake.url)
    receipts.start()
    env = worker_env(cluster, fake, max_attempts)
    worker = start_worker(env)
    restarts = 0
    try:

        async def kill_worker() -> None:
            log(f"fault: SIGKILL the worker (pid {worker.proc.pid}) and start it again")
            worker.kill()  # no await until restarted: the supervisor must not see it dead
            worker.restart()

        async def restart_postgres() -> None:
            log("fault: restart PostgreSQL (immediate)")
            await asyncio.to_thread(cluster.restart)

        async def supervise() -> None:
            # What systemd or compose does for a process that exits: start it again.
            nonlocal restarts
            while True:
                await asyncio.sleep(0.2)
                if not worker.alive():
                    log(f"fault: the worker exited; starting it again:\n{worker.tail(6)}")
                    worker.restart()
                    restarts += 1

        supervisor = asyncio.create_task(supervise())
        events = Events()
        hooks = {int(count * 0.35): kill_worker, int(count * 0.65): restart_postgres}
        await produce(engine, world, "fault", count, 150.0, events, hooks)
        log(f"fault: {count} events committed ({events.retries} transaction retries); draining")
        started = time.monotonic()
        keys = set(events.committed)
        deadline = started + timeout_s
        pending = -1
        while time.monotonic() < deadline:
            pending = await count_pending(cluster)
            if pending == 0 and keys <= receipts.first_seen.keys():
                break
            await asyncio.sleep(0.2)
        drain_s = time.monotonic() - started
        supervisor.cancel()
        await asyncio.sleep(0.5)  # a last poll of the fake
        dead = await count_dead(cluster)
        delivered = len(keys & receipts.first_seen.keys())
        raw = sum(receipts.per_key.get(k, 0) for k in keys)
        return FaultRun(
            events=count,
            delivered=delivered,
            raw=raw,
            duplicates=raw - delivered,
            dead=dead,
            pending=pending,
            latency=latencies(events, receipts),
            drain_s=drain_s,
            producer_retries=events.retries,
            worker_restarts=restarts,
        )
    finally:
        worker.stop()
        await receipts.stop()
        await engine.dispose()


async def count_pending(cluster: Cluster) -> int:
    with contextlib.suppress(Exception):
        conn = await asyncpg.connect(cluster.dsn, timeout=5)
        try:
            return int(await conn.fetchval("SELECT count(*) FROM outbox WHERE status='pending'"))
        finally:
            await conn.close()
    return -1


async def count_dead(cluster: Cluster) -> int:
    conn = await asyncpg.connect(cluster.dsn)
    try:
        return int(await conn.fetchval("SELECT count(*) FROM outbox WHERE status = 'dead'"))
    finally:
        await conn.close()


# --- report ------------------------------------------------------------------------------------


def _row(label: str, series: Series) -> str:
    return (
        f"  {label:<54} p50 {series.p50:8.1f}  p95 {series.p95:8.1f}  max {series.max:8.1f}"
        f"  (n={len(series.ms)})"
    )


def report(
    ours_run: CleanRun,
    polling_run: CleanRun,
    naive_run: CleanRun,
    fault: FaultRun,
    meta: dict[str, Any],
) -> dict[str, Any]:
    ours, polling = ours_run.latency, polling_run.latency
    tput = (ours_run.msgs_per_s, naive_run.msgs_per_s)
    latency_ratio = polling.p95 / ours.p95 if ours.p95 else float("nan")
    throughput_ratio = tput[0] / tput[1] if tput[1] else float("nan")
    lost = fault.events - fault.delivered
    ok_latency = ours.p95 <= GOAL_P95_MS
    quick = " (quick run: indicative)" if meta["quick"] else ""
    lines = [
        "",
        f"fieldcrm notification relay: {meta['users']} users with one FCM token each,"
        f" {meta['cpu_count']} CPUs, {meta['platform']}, Python {meta['python']},"
        f" private PostgreSQL {meta['postgres']}",
        "",
        "commit -> receipt at the fake FCM, ms (clean fake, 20 events/s)",
        _row("ours: worker relay woken by LISTEN/NOTIFY", ours),
        _row(f"competitor (a): same relay polling every {POLL_BASELINE_S:g} s", polling),
        f"  latency_ratio (a)/ours, p95: {latency_ratio:,.1f}x",
        "",
        f"throughput draining a backlog of {meta['backlog']} messages",
        f"  ours (batches of {RelayConfig().batch_size}, send_each)        {tput[0]:10,.0f} msg/s",
        f"  competitor (b): one row per transaction, one call   {tput[1]:10,.0f} msg/s",
        f"  throughput_ratio ours/(b): {throughput_ratio:,.1f}x",
        "",
        f"fault run: {fault.events} events, fake FCM failing {FAILURE_RATE:.0%} at random,"
        " worker SIGKILLed and restarted at 35 %, PostgreSQL restarted (immediate) at 65 %",
        f"  delivered (distinct dedupe keys) {fault.delivered}   lost {lost}   dead {fault.dead}"
        f"   still pending {fault.pending}",
        f"  raw deliveries {fault.raw}   duplicates_seen_by_receiver {fault.duplicates}"
        " (the receiver drops them by dedupe key)",
        f"  drained {fault.drain_s:.1f} s after the last commit; producer transaction retries"
        f" {fault.producer_retries}; worker restarts by the supervisor loop"
        f" {fault.worker_restarts}",
        _row("commit -> receipt, with faults and retries", fault.latency),
        "",
        f"GOAL every message exactly once by dedupe key, 0 lost: {'YES' if lost == 0 else 'NO'}",
        f"GOAL commit -> receipt p95 <= {GOAL_P95_MS:g} ms (clean run):"
        f" {'YES' if ok_latency else 'NO'} ({ours.p95:.1f} ms){quick}",
    ]
    print("\n".join(lines))
    figures = {
        "events": float(fault.events),
        "delivered": float(fault.delivered),
        "lost": float(lost),
        "duplicates_seen_by_receiver": float(fault.duplicates),
        "raw_deliveries": float(fault.raw),
        "dead": float(fault.dead),
        "relay_msgs_per_s": tput[0],
        "naive_msgs_per_s": tput[1],
        "throughput_ratio": throughput_ratio,
        "commit_to_receipt_p50_ms": ours.p50,
        "commit_to_receipt_p95_ms": ours.p95,
        "baseline_poll_p50_ms": polling.p50,
        "baseline_poll_p95_ms": polling.p95,
        "latency_ratio": latency_ratio,
        "fault_commit_to_receipt_p50_ms": fault.latency.p50,
        "fault_commit_to_receipt_p95_ms": fault.latency.p95,
        "goal_commit_to_receipt_p95_met": 1.0 if ok_latency else 0.0,
        "goal_zero_lost_met": 1.0 if lost == 0 else 0.0,
    }
    meta = {
        **meta,
        "goals": {"commit_to_receipt_p95_ms": GOAL_P95_MS, "lost": 0},
        "baselines": {
            "latency": f"same relay, polling every {POLL_BASELINE_S:g} s, no LISTEN",
            "throughput": "same relay, batch of 1: one row per transaction, one FCM call",
        },
        "fault": {
            "failure_rate": FAILURE_RATE,
            "drain_s": fault.drain_s,
            "pending_left": fault.pending,
            "producer_retries": fault.producer_retries,
            "worker_restarts": fault.worker_restarts,
        },
        "receipt_resolution_ms": 10,
    }
    return {"figures": figures, "meta": meta}


# --- main --------------------------------------------------------------------------------------


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="200 events, 40 for latency")
    parser.add_argument("--json", type=Path, metavar="PATH", help="write figures as JSON")
    parser.add_argument("--events", type=int, help="fault-run events and backlog (1,000)")
    parser.add_argument("--users", type=int, help="users with an FCM token (100)")
    parser.add_argument("--max-attempts", type=int, default=10)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--keep", action="store_true", help="keep the cluster directory")
    args = parser.parse_args(argv)
    args.events = args.events or (200 if args.quick else 1000)
    args.users = args.users or (40 if args.quick else 100)
    args.latency_events = max(args.events // 5, 20)
    return args


@contextlib.contextmanager
def running(cluster: Cluster, keep: bool) -> Iterator[None]:
    try:
        yield
    finally:
        cluster.stop(keep)


async def amain(args: argparse.Namespace, cluster: Cluster, workdir: Path) -> dict[str, Any]:
    world = await build_world(cluster.dsn, args.users, args.seed)
    phases: dict[str, float] = {}
    clean = Fake.start(0.0, workdir, args.seed)
    failing = Fake.start(FAILURE_RATE, workdir, args.seed)
    try:
        phase = time.monotonic()
        log(f"ours: {args.latency_events} events at 20/s, then a backlog of {args.events}")
        ours = await run_ours(cluster, world, clean, args)
        log(f"  p95 {ours.latency.p95:.1f} ms, {ours.msgs_per_s:,.0f} msg/s")
        phases["ours"] = time.monotonic() - phase
        phase = time.monotonic()
        log(f"competitor (a): the relay polling every {POLL_BASELINE_S:g} s")
        polling = await run_competitor(
            cluster, world, clean, args, RelayConfig(), POLL_BASELINE_S, "poll", 0
        )
        log(f"  p95 {polling.latency.p95:.1f} ms")
        phases["poll"] = time.monotonic() - phase
        phase = time.monotonic()
        log("competitor (b): one row per transaction, one FCM call per message")
        naive = await run_competitor(
            cluster, world, clean, args, RelayConfig(batch_size=1), None, "naive", args.events
        )
        log(f"  {naive.msgs_per_s:,.0f} msg/s")
        phases["naive"] = time.monotonic() - phase
        phase = time.monotonic()
        log(f"fault run: {args.events} events, failure rate {FAILURE_RATE}")
        fault = await fault_run(
            cluster, world, failing, args.events, args.max_attempts, 60.0 if args.quick else 180.0
        )
        phases["fault"] = time.monotonic() - phase
        conn = await asyncpg.connect(cluster.dsn)
        try:
            version = str(await conn.fetchval("SHOW server_version"))
        finally:
            await conn.close()
        meta = {
            "cpu_count": os.cpu_count(),
            "platform": platform.platform(terse=True),
            "python": sys.version.split()[0],
            "postgres": version,
            "users": args.users,
            "events": args.events,
            "backlog": args.events,
            "latency_events": args.latency_events,
            "max_attempts": args.max_attempts,
            "quick": args.quick,
            "seed": args.seed,
            "loadavg": os.getloadavg(),
            "phase_s": phases,
            "when": datetime.now(UTC).isoformat(timespec="seconds"),
        }
        return report(ours, polling, naive, fault, meta)
    finally:
        clean.proc.stop()
        failing.proc.stop()


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if not (PG_BIN / "initdb").exists():
        log(f"no PostgreSQL 15 at {PG_BIN}: install postgresql-15 and postgresql-15-postgis-3")
        return 1
    signal.signal(signal.SIGTERM, lambda signum, _frame: sys.exit(128 + signum))
    cluster = Cluster()
    workdir = Path(tempfile.mkdtemp(prefix="fieldcrm-bench-notify-"))
    started = time.monotonic()
    try:
        with running(cluster, args.keep):
            log(f"private PostgreSQL on port {cluster.port} in {cluster.dir}; migrations")
            cluster.init()
            result = asyncio.run(amain(args, cluster, workdir))
            if args.json:
                write_json(args.json, result)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    log(f"done in {time.monotonic() - started:.0f} s")
    lost = result["figures"]["lost"]
    return 0 if lost == 0 else 2


if __name__ == "__main__":
    sys.exit(main())
