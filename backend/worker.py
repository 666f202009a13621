"""The background worker: procrastinate on the same PostgreSQL, running periodic jobs.

Jobs (each opens its own transaction through our SQLAlchemy sessionmaker):
- ``sla_scan`` every 20 seconds: overdue notices and escalations (``backend.tasks.sla``), so a
  task is noticed within 20 s (+ the scan) of its due time. Procrastinate defers one job per
  period for all workers together (``periodic_id``), and the scan itself claims rows with
  ``SKIP LOCKED``, so several workers or a restart never notify twice.
- ``tracking_maintenance`` hourly: day partitions of ``pings`` created a week ahead, those older
  than ``FIELDCRM_PING_RETENTION_DAYS`` (60) dropped, yesterday's daily summaries computed.
- ``purge_expired`` hourly: drops rate-limit windows and ``Idempotency-Key`` answers older than
  a day (phones retry within minutes) and customers' tracking, feedback and unsubscribe links
  a day after they expired.
- ``prune_live_changes`` every minute: the live board's change log keeps its last minute
  (``backend.tracking.roster``).
- ``refresh_routes`` every 2 minutes: today's routes of workers with open visits are re-planned
  from their positions and progress (each ETA that moved by 5 minutes or more is recorded as an
  ``eta_changes`` row) and days whose visits changed are re-optimised
  (``backend.routing.services``).
- ``customer_messages`` every minute: visit confirmations, day-before reminders, "on my way"
  when a worker drives to their next visit, "running late" from ``eta_changes`` and feedback
  requests after a visit (``backend.notifications.customer.jobs``).
- ``field_rollups`` every minute: the daily field KPI roll-ups of the (worker, day) pairs and
  deals queued by triggers, and of tasks that fell overdue (``backend.appraisal.field_rollups``).
- ``rfm_segments`` nightly: customers' RFM segments (``backend.appraisal.rfm``).
- ``report_rollups`` every minute: the owner's reports' daily roll-ups of the days queued by
  triggers since the last run (``backend.appraisal.sales_rollups``).

- the outbox relay (``backend.notifications.relay``): a long-running loop started with the
  worker, woken by NOTIFY on every outbox commit (push, e-mail, SMS leave within milliseconds),
  plus ``outbox_relay`` every minute as a safety net (one drain pass; rows are claimed with
  ``SKIP LOCKED``, so both and several workers share the work without sending twice).

Run it with ``fieldcrm worker`` (same environment as the API). It waits for PostgreSQL at
start-up (``Jobs.prepare_database``) rather than exiting when the database is not up yet.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from datetime import timedelta
from typing import Any

import asyncpg
import procrastinate
from sqlalchemy.engine import make_url
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from backend.appraisal import kpi_jobs, report_jobs
from backend.config import Settings
from backend.db.session import make_engine, make_sessionmaker
from backend.lib import idempotency, ratelimit
from backend.lib.clock import Clock, SystemClock
from backend.notifications.channels import channels_from_settings
from backend.notifications.customer import links as customer_links
from backend.notifications.customer.jobs import CustomerMessageJobs
from backend.notifications.relay import Relay, RelayConfig
from backend.routing import services as routing
from backend.tasks import sla
from backend.tracking import days, partitions, roster

log = logging.getLogger("fieldcrm.worker")
# Pauses between attempts to reach PostgreSQL at start-up: doubling from the first to the most.
START_RETRY_FIRST_S = 0.5
START_RETRY_MAX_S = 10.0

SLA_CRON = "* * * * * */20"  # croniter's sixth field: seconds


def psycopg_conninfo(database_url: str) -> str:
    """Our SQLAlchemy URL (``postgresql+asyncpg://...``) as a libpq connection string."""
    url = make_url(database_url).set(drivername="postgresql")
    return url.render_as_string(hide_password=False)


class Jobs:
    """The jobs with what they need (sessions, clock), registered on a procrastinate app."""

    def __init__(
        self,
        sessionmaker: async_sessionmaker[AsyncSession],
        clock: Clock,
        retention_days: int = 60,
        osrm_url: str | None = None,
        relay: Relay | None = None,
    ) -> None:
        self.sessionmaker = sessionmaker
        self.clock = clock
        self.retention_days = retention_days
        self.osrm_url = osrm_url
        self.relay = relay

    async def prepare_database(
        self, *, sleep: Callable[[float], Awaitable[None]] = asyncio.sleep
    ) -> int:
        """Create today's ping partitions before the first ping (even on a fresh database).
        While PostgreSQL cannot be reached — the worker started before it, or it is restarting
        — try again after a growing pause instead of exiting; returns the failed attempts."""
        delay, failures = START_RETRY_FIRST_S, 0
        while True:
            try:
                async with self.sessionmaker() as session, session.begin():
                    await partitions.maintain(
                        session, today=self.clock.now().date(), retention_days=self.retention_days
                    )
            except (OSError, SQLAlchemyError, asyncpg.PostgresError) as exc:
                failures += 1
                log.warning(
                    "worker: PostgreSQL not reachable (%s); trying again in %.1f s",
                    type(exc).__name__,
                    delay,
                )
                await sleep(delay)
                delay = min(delay * 2, START_RETRY_MAX_S)
            else:
                return failures

    async def outbox_relay(self) -> int:
        """One drain of the outbox (the long-running loop does the same on every wake-up):
        the number of rows claimed."""
        if self.relay is None:
            return 0
        stats = await self.relay.drain()
        return stats.claimed

    async def sla_scan(self) -> tuple[int, int]:
        """One SLA pass in one transaction: (overdue notices, escalations)."""
        async with self.sessionmaker() as session, session.begin():
            overdue, escalated = await sla.run_scan(session, self.clock.now())
        if overdue or escalated:
            log.info("sla scan: %d overdue, %d escalated", overdue, escalated)
        return overdue, escalated

    async def tracking_maintenance(self) -> tuple[int, int, int]:
        """Partitions ahead, old partitions dropped, yesterday's summaries:
        (created, dropped, summaries)."""
        now = self.clock.now()
        async with self.sessionmaker() as session, session.begin():
            summaries = await days.summarize_yesterday(session, now)
            created, dropped = await partitions.maintain(
                session, today=now.date(), retention_days=self.retention_days
            )
        log.info(
            "tracking: %d partitions created, %s dropped, %d summaries",
            len(created),
            dropped,
            summaries,
        )
        return len(created), len(dropped), summaries

    async def prune_live_changes(self) -> int:
        """Forget the live board's change rows older than a minute (``tracking.roster``)."""
        async with self.sessionmaker() as session, session.begin():
            return await roster.prune_changes(session)

    async def purge_expired(self) -> tuple[int, int, int]:
        """Remove rate-limit windows and stored idempotent answers older than a day, and
        customers' links that expired a day ago: (windows, answers, links)."""
        now = self.clock.now()
        async with self.sessionmaker() as session, session.begin():
            windows = await ratelimit.purge_expired(session, now=now, older_than=timedelta(days=1))
            answers = await idempotency.purge_older_than(session, now - timedelta(days=1))
            expired = await customer_links.purge_expired_links(session, now - timedelta(days=1))
        return windows, answers, expired

    async def refresh_routes(self) -> tuple[int, int, int]:
        """Re-plan today's routes (one transaction per worker): (routes, ETA changes recorded,
        days re-optimised)."""
        now = self.clock.now()
        async with self.sessionmaker() as session:
            workers = await routing.workers_with_visits(
                session, now - timedelta(hours=14), now + timedelta(hours=14)
            )
        changes = solved = 0
        for organization_id, user_id, time_zone in workers:
            day = routing.today_in(time_zone, now)
            async with self.sessionmaker() as session, session.begin():
                view, moved = await routing.replan(session, organization_id, user_id, day, now)
            changes += len(moved)
            if view.stale:
                solved += await routing.reoptimise(
                    self.sessionmaker, organization_id, user_id, day, now, osrm_url=self.osrm_url
                )
        if changes or solved:
            log.info(
                "routes: %d re-planned, %d ETA changes, %d re-optimised",
                len(workers),
                changes,
                solved,
            )
        return len(workers), changes, solved

    async def field_rollups(self) -> tuple[int, int]:
        """Recompute the queued field roll-ups: (days, deals)."""
        result = await kpi_jobs.refresh_field_rollups(self.sessionmaker, self.clock)
        return result.days, result.deals

    async def rfm_segments(self) -> int:
        """Recompute customers' RFM segments: customers segmented."""
        return await kpi_jobs.recompute_rfm(self.sessionmaker, self.clock)

    async def report_rollups(self) -> tuple[int, int]:
        """Recompute the owner's reports' queued days: (organisations, days)."""
        result = await report_jobs.refresh_report_rollups(self.sessionmaker, self.clock)
        return result.organizations, result.days


def make_app(settings: Settings, jobs: Jobs) -> procrastinate.App:
    """A procrastinate app on the organisation database with our periodic jobs."""
    app = procrastinate.App(
        connector=procrastinate.PsycopgConnector(conninfo=psycopg_conninfo(settings.database_url))
    )

    @app.periodic(cron=SLA_CRON, periodic_id="sla_scan")
    @app.task(name="sla_scan", queue="sla", queueing_lock="sla_scan", pass_context=False)
    async def sla_scan(timestamp: int) -> Any:
        return list(await jobs.sla_scan())

    @app.periodic(cron="5 * * * *", periodic_id="tracking_maintenance")
    @app.task(name="tracking_maintenance", queue="maintenance", pass_context=False)
    async def tracking_maintenance(timestamp: int) -> Any:
        return list(await jobs.tracking_maintenance())

    @app.periodic(cron="* * * * *", periodic_id="prune_live_changes")
    @app.task(name="prune_live_changes", queue="maintenance", pass_context=False)
    async def prune_live_changes(timestamp: int) -> Any:
        return await jobs.prune_live_changes()

    @app.periodic(cron="0 * * * *", periodic_id="purge_expired")
    @app.task(name="purge_expired", queue="maintenance", pass_context=False)
    async def purge_expired(timestamp: int) -> Any:
        return list(await jobs.purge_expired())

    @app.periodic(cron="*/2 * * * *", periodic_id="refresh_routes")
    @app.task(
        name="refresh_routes", queue="routing", queueing_lock="refresh_routes", pass_context=False
    )
    async def refresh_routes(timestamp: int) -> Any:
        return list(await jobs.refresh_routes())

    customer_jobs = CustomerMessageJobs(jobs.sessionmaker, jobs.clock, settings.public_base_url)

    @app.periodic(cron="* * * * *", periodic_id="customer_messages")
    @app.task(
        name="customer_messages",
        queue="notifications",
        queueing_lock="customer_messages",
        pass_context=False,
    )
    async def customer_messages(timestamp: int) -> Any:
        return await customer_jobs.run()

    @app.periodic(cron=kpi_jobs.FIELD_ROLLUPS_CRON, periodic_id="field_rollups")
    @app.task(
        name="field_rollups", queue="appraisal", queueing_lock="field_rollups", pass_context=False
    )
    async def field_rollups(timestamp: int) -> Any:
        return list(await jobs.field_rollups())

    @app.periodic(cron=kpi_jobs.RFM_CRON, periodic_id="rfm_segments")
    @app.task(name="rfm_segments", queue="appraisal", pass_context=False)
    async def rfm_segments(timestamp: int) -> Any:
        return await jobs.rfm_segments()

    @app.periodic(cron=report_jobs.REPORT_ROLLUPS_CRON, periodic_id="report_rollups")
    @app.task(
        name="report_rollups", queue="appraisal", queueing_lock="report_rollups", pass_context=False
    )
    async def report_rollups(timestamp: int) -> Any:
        return list(await jobs.report_rollups())

    @app.periodic(cron="* * * * *", periodic_id="outbox_relay")
    @app.task(name="outbox_relay", queue="outbox", queueing_lock="outbox_relay", pass_context=False)
    async def outbox_relay(timestamp: int) -> Any:
        return await jobs.outbox_relay()

    return app


async def run_worker(settings: Settings, *, concurrency: int = 2) -> None:
    """Run the worker until interrupted."""
    engine = make_engine(settings)
    sessionmaker = make_sessionmaker(engine)
    channels = channels_from_settings(settings)
    relay = Relay(
        sessionmaker,
        channels,
        SystemClock(),
        RelayConfig(max_attempts=settings.outbox_max_attempts),
    )
    jobs = Jobs(
        sessionmaker,
        SystemClock(),
        settings.ping_retention_days,
        settings.osrm_url,
        relay=relay,
    )
    await jobs.prepare_database()
    app = make_app(settings, jobs)
    stop_relay = asyncio.Event()
    relay_loop = asyncio.create_task(
        relay.serve(psycopg_conninfo(settings.database_url), stop_relay)
    )
    try:
        async with app.open_async():
            await app.run_worker_async(concurrency=concurrency, install_signal_handlers=True)
    finally:
        stop_relay.set()
        await relay_loop
        await channels.aclose()
        await engine.dispose()
