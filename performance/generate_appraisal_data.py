"""A large organisation for the appraisal and reports benchmarks, loaded with binary COPY.

``python performance/generate_appraisal_data.py [--scale 0.01] [--seed 7]`` on the database of
``FIELDCRM_DATABASE_URL`` creates "Appraisal Bench <seed>" (Europe/Moscow, RUB) with 500 staff
(an admin, 49 managers each leading a team of 9 field workers, one team per manager) and, at
``--scale 1``, 200,000 deals over the last year (with their stage history, ~30 % won, ~25 %
lost), 400,000 calls, 500,000 tasks (mostly done, some late, some still open) and 10 million
GPS pings over the last 60 days during the workers' shifts (in the day partitions of
``pings``, columns ``backend.tracking.copy_rows.COLUMNS``) with their daily summaries.
``--scale`` multiplies the row counts (not the staff).

Rows go in with asyncpg's ``copy_records_to_table`` in chunks with a progress bar, in one
transaction with ``session_replication_role = replica`` (row triggers off, like a restore),
then the report roll-ups (``sales_rollups.rebuild``) and the field KPI roll-ups
(``field_rollups.rebuild``, the last ``FIELD_DAYS``) are built set-based and the tables
ANALYZEd. A previous organisation of the same name is deleted first. Deterministic for a seed
(ids are random).
"""

from __future__ import annotations

import argparse
import asyncio
import math
import os
import random
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import TYPE_CHECKING, Any, TypeAlias
from zoneinfo import ZoneInfo

import asyncpg
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker, create_async_engine
from tqdm import tqdm

from backend.accounts.security import hash_password
from backend.seed.generate import asyncpg_dsn
from backend.tracking.copy_rows import COLUMNS as PING_COLUMNS
from backend.tracking.partitions import partition_name

if TYPE_CHECKING:
    Connection: TypeAlias = asyncpg.Connection[asyncpg.Record]

ZONE = "Europe/Moscow"
TZ = ZoneInfo(ZONE)
MANAGERS = 49
PER_TEAM = 9
DEALS = 200_000
CALLS = 400_000
TASKS = 500_000
PINGS = 10_000_000
PING_DAYS = 60
FIELD_DAYS = 190  # field KPI roll-ups built for: a quarter and the one before
DEAL_DAYS = 365
CHUNK = 50_000
KAZAN = (55.7963, 49.1088)
SOURCES = ("website", "phone", "referral", "avito", "instagram", "repeat")
STAGES = (
    ("Заявка", "open"),
    ("Замер", "open"),
    ("Расчёт", "open"),
    ("Договор", "open"),
    ("Монтаж", "open"),
    ("Оплата", "won"),
    ("Отказ", "lost"),
)
DEAL_COLUMNS = (
    "id",
    "organization_id",
    "pipeline_id",
    "stage_id",
    "customer_id",
    "title",
    "amount",
    "currency",
    "line_items",
    "source",
    "attribution",
    "owner_id",
    "stage_entered_at",
    "closed_at",
    "version",
    "created_at",
    "updated_at",
)
CHANGE_COLUMNS = (
    "id",
    "organization_id",
    "deal_id",
    "from_stage_id",
    "to_stage_id",
    "actor_id",
    "changed_at",
    "seconds_in_previous",
)
CALL_COLUMNS = (
    "id",
    "organization_id",
    "customer_id",
    "kind",
    "author_id",
    "deal_id",
    "occurred_at",
    "duration_s",
)
TASK_COLUMNS = (
    "id",
    "organization_id",
    "kind",
    "title",
    "status",
    "assignee_id",
    "deal_id",
    "customer_id",
    "due_at",
    "window_start",
    "window_end",
    "priority",
    "started_at",
    "completed_at",
)
SUMMARY_COLUMNS = (
    "user_id",
    "day",
    "organization_id",
    "points",
    "distance_m",
    "on_site_s",
    "driving_s",
    "idle_s",
    "stops",
    "computed_at",
)


def org_name(seed: int) -> str:
    """The generated organisation's name."""
    return f"Appraisal Bench {seed}"


@dataclass
class People:
    """The generated staff."""

    admin: uuid.UUID
    admin_email: str
    managers: list[uuid.UUID]
    field: list[uuid.UUID]
    teams: list[uuid.UUID] = field(default_factory=list)


@dataclass
class Generated:
    """What was generated and how long it took."""

    org_id: uuid.UUID
    people: People
    counts: dict[str, int]
    seconds: dict[str, float]

    def summary(self) -> str:
        rows = ", ".join(f"{v:,} {k}" for k, v in self.counts.items())
        took = ", ".join(f"{k} {v:.1f} s" for k, v in self.seconds.items())
        return f"{rows} ({took})"


def _chunks(total: int, size: int = CHUNK) -> Iterator[int]:
    done = 0
    while done < total:
        n = min(size, total - done)
        yield n
        done += n


async def _copy(
    conn: Connection,
    table: str,
    columns: tuple[str, ...],
    rows: Iterator[tuple[Any, ...]],
    total: int,
) -> int:
    """COPY ``rows`` in chunks with a progress bar; returns the number of rows."""
    written = 0
    bar = tqdm(total=total, desc=table, unit="rows", file=sys.stderr, leave=False)
    batch: list[tuple[Any, ...]] = []
    for row in rows:
        batch.append(row)
        if len(batch) >= CHUNK:
            await conn.copy_records_to_table(table, records=batch, columns=columns)
            written += len(batch)
            bar.update(len(batch))
            batch = []
    if batch:
        await conn.copy_records_to_table(table, records=batch, columns=columns)
        written += len(batch)
        bar.update(len(batch))
    bar.close()
    return written


async def _people(conn: Connection, org_id: uuid.UUID, seed: int) -> People:
    password = hash_password(os.environ.get("FIELDCRM_BENCH_PASSWORD", "bench-password-2026"))
    admin = uuid.uuid4()
    admin_email = f"appraisal-{seed}-admin@bench.example"
    users = [(admin, admin_email, "Владелец", "admin", [])]
    managers = [uuid.uuid4() for _ in range(MANAGERS)]
    field_users = [uuid.uuid4() for _ in range(MANAGERS * PER_TEAM)]
    for i, uid in enumerate(managers):
        users.append(
            (uid, f"appraisal-{seed}-m{i:03d}@bench.example", f"Менеджер {i + 1}", "manager", [])
        )
    skills = (["measurer"], ["installer"], ["installer"])
    for i, uid in enumerate(field_users):
        users.append(
            (
                uid,
                f"appraisal-{seed}-f{i:03d}@bench.example",
                f"Монтажник {i + 1}",
                "field",
                skills[i % 3],
            )
        )
    await conn.executemany(
        """INSERT INTO users (id, organization_id, email, password_hash, full_name, role, skills,
                              time_zone, is_active, token_version)
           VALUES ($1, $2, $3, $4, $5, $6::user_role, $7::varchar[], $8, true, 1)""",
        [(u[0], org_id, u[1], password, u[2], u[3], u[4], ZONE) for u in users],
    )
    people = People(admin, admin_email, managers, field_users)
    for t, lead in enumerate(managers):
        team_id = uuid.uuid4()
        people.teams.append(team_id)
        await conn.execute(
            "INSERT INTO teams (id, organization_id, name, lead_id) VALUES ($1, $2, $3, $4)",
            team_id,
            org_id,
            f"Бригада {t + 1:02d}",
            lead,
        )
        await conn.executemany(
            "INSERT INTO team_members (team_id, user_id, organization_id) VALUES ($1, $2, $3)",
            [(team_id, m, org_id) for m in field_users[t * PER_TEAM : (t + 1) * PER_TEAM]],
        )
    return people


def _deals(
    rng: random.Random,
    org_id: uuid.UUID,
    pipeline_id: uuid.UUID,
    stages: list[uuid.UUID],
    customers: list[uuid.UUID],
    people: People,
    total: int,
    now: datetime,
    changes: list[tuple[Any, ...]],
    deal_refs: list[tuple[uuid.UUID, uuid.UUID, uuid.UUID, datetime, bool]],
) -> Iterator[tuple[Any, ...]]:
    """Deal records; their stage changes are appended to ``changes`` and (id, customer, owner,
    created, won) to ``deal_refs``."""
    won_stage, lost_stage = stages[5], stages[6]
    for _ in range(total):
        deal_id = uuid.uuid4()
        owner = rng.choice(people.managers)
        created = now - timedelta(seconds=rng.uniform(0, DEAL_DAYS * 86400))
        amount = Decimal(rng.randrange(20_000, 600_000, 500))
        at, current = created, 0
        changes.append((uuid.uuid4(), org_id, deal_id, None, stages[0], owner, created, None))
        fate = rng.random()
        target = rng.randint(1, 4) if fate < 0.75 else 0
        closed: datetime | None = None
        for position in range(1, target + 1):
            step = timedelta(hours=rng.uniform(4, 24 * 9))
            if at + step > now:
                break
            changes.append(
                (
                    uuid.uuid4(),
                    org_id,
                    deal_id,
                    stages[current],
                    stages[position],
                    owner,
                    at + step,
                    int(step.total_seconds()),
                )
            )
            at, current = at + step, position
        stage_id = stages[current]
        if fate < 0.30 or 0.75 <= fate < 0.95:
            step = timedelta(hours=rng.uniform(2, 24 * 7))
            if at + step <= now:
                stage_id = won_stage if fate < 0.30 else lost_stage
                changes.append(
                    (
                        uuid.uuid4(),
                        org_id,
                        deal_id,
                        stages[current],
                        stage_id,
                        owner,
                        at + step,
                        int(step.total_seconds()),
                    )
                )
                at = closed = at + step
        customer = rng.choice(customers)
        deal_refs.append((deal_id, customer, owner, created, stage_id == won_stage))
        yield (
            deal_id,
            org_id,
            pipeline_id,
            stage_id,
            customer,
            "Окна",
            amount,
            "RUB",
            "[]",
            rng.choice(SOURCES),
            "{}",
            owner,
            at,
            closed,
            1,
            created,
            at,
        )


def _calls(
    rng: random.Random,
    org_id: uuid.UUID,
    deal_refs: list[tuple[uuid.UUID, uuid.UUID, uuid.UUID, datetime, bool]],
    total: int,
    now: datetime,
) -> Iterator[tuple[Any, ...]]:
    for _ in range(total):
        deal_id, customer, owner, created, _won = rng.choice(deal_refs)
        at = min(created + timedelta(hours=rng.uniform(0, 24 * 20)), now)
        yield (uuid.uuid4(), org_id, customer, "call", owner, deal_id, at, rng.randint(15, 900))


def _tasks(
    rng: random.Random,
    org_id: uuid.UUID,
    people: People,
    deal_refs: list[tuple[uuid.UUID, uuid.UUID, uuid.UUID, datetime, bool]],
    total: int,
    now: datetime,
) -> Iterator[tuple[Any, ...]]:
    kinds = ("measurement", "installation", "visit", "call")
    for _ in range(total):
        deal_id, customer, _owner, _created, _won = rng.choice(deal_refs)
        due = now - timedelta(seconds=rng.uniform(-7 * 86400, DEAL_DAYS * 86400))
        start = due - timedelta(hours=2)
        roll = rng.random()
        if due > now or roll < 0.04:
            status, started, done = "open", None, None
        elif roll < 0.06:
            status, started, done = "cancelled", None, None
        else:
            late = roll > 0.85
            done = due + timedelta(minutes=rng.uniform(5, 600) if late else -rng.uniform(0, 90))
            status, started = "done", done - timedelta(minutes=40)
        yield (
            uuid.uuid4(),
            org_id,
            rng.choice(kinds),
            "Визит",
            status,
            rng.choice(people.field),
            deal_id,
            customer,
            due,
            start,
            due,
            0,
            started,
            done,
        )


def _pings(
    rng: random.Random,
    org_id: uuid.UUID,
    people: People,
    days: list[date],
    per_day: int,
    summaries: list[tuple[Any, ...]],
    now: datetime,
) -> Iterator[tuple[Any, ...]]:
    """``per_day`` points per worker and day, 08:00-17:00 local, a random walk in Kazan."""
    shift_s = 9 * 3600
    step = shift_s / max(per_day, 1)
    for day in days:
        shift_start = datetime(day.year, day.month, day.day, 8, tzinfo=TZ).astimezone(UTC)
        for worker in people.field:
            lat = KAZAN[0] + rng.uniform(-0.08, 0.08)
            lon = KAZAN[1] + rng.uniform(-0.12, 0.12)
            distance = 0.0
            for i in range(per_day):
                at = shift_start + timedelta(seconds=i * step + rng.uniform(0, step / 2))
                dlat, dlon = rng.gauss(0, 0.0008), rng.gauss(0, 0.0012)
                lat, lon = lat + dlat, lon + dlon
                distance += math.hypot(dlat * 111_000, dlon * 63_000)
                yield (
                    org_id,
                    worker,
                    None,
                    at,
                    at,
                    lat,
                    lon,
                    8.0,
                    rng.uniform(0, 15),
                    rng.uniform(0, 360),
                    None,
                    90.0,
                    False,
                    None,
                )
            driving = int(shift_s * rng.uniform(0.25, 0.45))
            on_site = int(shift_s * rng.uniform(0.35, 0.55))
            summaries.append(
                (
                    worker,
                    day,
                    org_id,
                    per_day,
                    distance,
                    on_site,
                    driving,
                    shift_s - on_site - driving,
                    rng.randint(2, 6),
                    now,
                )
            )


async def generate_into(conn: Connection, scale: float, seed: int, now: datetime) -> Generated:
    """Create the organisation and load it (one transaction, row triggers off)."""
    rng = random.Random(seed)
    seconds: dict[str, float] = {}
    counts: dict[str, int] = {}
    await conn.execute("DELETE FROM organizations WHERE name = $1", org_name(seed))
    org_id = uuid.uuid4()
    await conn.execute(
        "INSERT INTO organizations (id, name, time_zone, currency, locale, payment_details)"
        " VALUES ($1, $2, $3, 'RUB', 'ru-RU', '{}')",
        org_id,
        org_name(seed),
        ZONE,
    )
    people = await _people(conn, org_id, seed)
    pipeline_id = uuid.uuid4()
    await conn.execute(
        "INSERT INTO pipelines (id, organization_id, name, is_default) VALUES ($1, $2, 'Продажи',"
        " true)",
        pipeline_id,
        org_id,
    )
    stages = [uuid.uuid4() for _ in STAGES]
    await conn.executemany(
        "INSERT INTO stages (id, organization_id, pipeline_id, name, position, kind, requirements)"
        " VALUES ($1, $2, $3, $4, $5, $6::stage_kind, '{}')",
        [
            (sid, org_id, pipeline_id, name, i, kind)
            for i, (sid, (name, kind)) in enumerate(zip(stages, STAGES, strict=True))
        ],
    )
    n_deals = max(int(DEALS * scale), 100)
    started = time.perf_counter()
    customers = [uuid.uuid4() for _ in range(max(n_deals // 2, 50))]
    counts["customers"] = await _copy(
        conn,
        "customers",
        ("id", "organization_id", "kind", "name", "owner_id", "search_phones", "search_emails"),
        (
            (c, org_id, "person", f"Клиент {i}", rng.choice(people.managers), "", "")
            for i, c in enumerate(customers)
        ),
        len(customers),
    )
    changes: list[tuple[Any, ...]] = []
    refs: list[tuple[uuid.UUID, uuid.UUID, uuid.UUID, datetime, bool]] = []
    counts["deals"] = await _copy(
        conn,
        "deals",
        DEAL_COLUMNS,
        _deals(rng, org_id, pipeline_id, stages, customers, people, n_deals, now, changes, refs),
        n_deals,
    )
    counts["stage changes"] = await _copy(
        conn, "deal_stage_changes", CHANGE_COLUMNS, iter(changes), len(changes)
    )
    n_calls = max(int(CALLS * scale), 100)
    counts["calls"] = await _copy(
        conn, "interactions", CALL_COLUMNS, _calls(rng, org_id, refs, n_calls, now), n_calls
    )
    n_tasks = max(int(TASKS * scale), 100)
    counts["tasks"] = await _copy(
        conn, "tasks", TASK_COLUMNS, _tasks(rng, org_id, people, refs, n_tasks, now), n_tasks
    )
    seconds["sales and tasks"] = time.perf_counter() - started

    started = time.perf_counter()
    today = now.astimezone(TZ).date()
    days = [today - timedelta(days=d) for d in range(PING_DAYS, 0, -1)]
    per_day = max(int(PINGS * scale) // (len(days) * len(people.field)), 1)
    for day in {d + timedelta(days=k) for d in days for k in (-1, 0, 1)}:
        name = partition_name(day)
        start = datetime(day.year, day.month, day.day, tzinfo=UTC)
        await conn.execute(
            f"CREATE TABLE IF NOT EXISTS {name} PARTITION OF pings FOR VALUES FROM"
            f" ('{start.isoformat()}') TO ('{(start + timedelta(days=1)).isoformat()}')"
        )
    summaries: list[tuple[Any, ...]] = []
    total_pings = per_day * len(days) * len(people.field)
    counts["pings"] = await _copy(
        conn,
        "pings",
        PING_COLUMNS,
        _pings(rng, org_id, people, days, per_day, summaries, now),
        total_pings,
    )
    counts["daily summaries"] = await _copy(
        conn, "daily_summaries", SUMMARY_COLUMNS, iter(summaries), len(summaries)
    )
    seconds["pings"] = time.perf_counter() - started
    return Generated(org_id, people, counts, seconds)


async def build_rollups(database_url: str, org_id: uuid.UUID, now: datetime) -> dict[str, float]:
    """The report and field KPI roll-ups of the organisation, set-based; seconds each."""
    from backend.appraisal import sales_rollups

    engine = create_async_engine(database_url, pool_size=1)
    took: dict[str, float] = {}
    try:
        sessionmaker = async_sessionmaker(engine, expire_on_commit=False)
        async with sessionmaker() as session, session.begin():
            started = time.perf_counter()
            await sales_rollups.rebuild(session, org_id, now)
            took["report roll-ups"] = time.perf_counter() - started
        async with sessionmaker() as session, session.begin():
            started = time.perf_counter()
            if await _field_rebuild(session, org_id, now):
                took["field roll-ups"] = time.perf_counter() - started
    finally:
        await engine.dispose()
    return took


async def _field_rebuild(session: AsyncSession, org_id: uuid.UUID, now: datetime) -> bool:
    try:
        from backend.appraisal import field_rollups
    except ImportError:
        return False
    today = now.astimezone(TZ).date()
    await field_rollups.rebuild(session, org_id, today - timedelta(days=FIELD_DAYS), today, now)
    return True


async def generate(database_url: str, scale: float, seed: int) -> Generated:
    """Generate the organisation on ``database_url``, build its roll-ups, ANALYZE."""
    now = datetime.now(UTC)
    conn = await asyncpg.connect(asyncpg_dsn(database_url))
    try:
        async with conn.transaction():
            await conn.execute("SET LOCAL session_replication_role = replica")
            result = await generate_into(conn, scale, seed, now)
    finally:
        await conn.close()
    result.seconds.update(await build_rollups(database_url, result.org_id, now))
    conn = await asyncpg.connect(asyncpg_dsn(database_url))
    try:
        await conn.execute("ANALYZE")
    finally:
        await conn.close()
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--scale", type=float, default=1.0, help="row counts x scale")
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args(argv)
    url = os.environ.get("FIELDCRM_DATABASE_URL")
    if not url:
        print("FIELDCRM_DATABASE_URL is not set", file=sys.stderr)
        return 1
    result = asyncio.run(generate(url, args.scale, args.seed))
    print(result.summary(), file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
