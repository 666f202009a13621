"""Benchmark: customer search through the real API on 100,000 customers, and bulk loading.

    python performance/bench_customers.py [--quick] [--json PATH] [--customers N] [--requests N]

What it does, all in its own database ``fieldcrm_bench`` (made by backend.db.provision):

1. runs the migrations and loads "Bench Org <seed>" with ``backend.seed.generate`` (COPY):
   100,000 customers (``--quick``: 10,000) -> ``load_customers_per_s``; as the baseline it
   inserts a small sample through the ORM, one row per statement, in a throwaway organisation;
2. starts the API (``fieldcrm serve``) in a subprocess with FIELDCRM_ENV=production, logs in as
   the organisation's admin (who sees every customer: the largest search space) and times
   ``GET /api/v1/customers?q=...&limit=20`` sequentially from one httpx client over loopback:
   phone searches (4-7 digit substrings of existing phones, and full numbers written the
   national way, "8 912 345-67-89") and name searches (2-5 letter prefixes of existing surnames);
3. runs competitors on the same data in the same run, straight on asyncpg: our exact SQL (the
   statement the service sends, captured from SQLAlchemy: the floor, which shows the API's
   overhead) and the naive search, ``ILIKE '%q%'`` over customers joined to contacts on name,
   phone and email without our derived columns and indexes;
4. prints a table with p50/p95/p99 and ratios, says whether the goal (API p95 <= 20 ms) was
   met, and with ``--json`` writes ``{"figures": {...}, "meta": {...}}``.

It stops the server and deletes the organisations it made at the end, also on failure or
Ctrl-C. The goal is stated for 100,000 customers; ``--quick`` figures are indicative only.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import secrets
import sys
import time
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeAlias

import asyncpg
import httpx
from benchkit import Percentiles, Server, log, machine_meta, safe_url, start, write_json
from sqlalchemy import event
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker, create_async_engine
from tqdm import tqdm

from backend.accounts.models import Organization, Role, User
from backend.accounts.security import hash_password
from backend.accounts.services import load_actor
from backend.customers import services as customer_services
from backend.customers.models import Contact, Customer, CustomerKind, Site
from backend.customers.services import point_wkt
from backend.db.migrate import upgrade
from backend.seed.demo import national_format
from backend.seed.generate import (
    CustomerFactory,
    asyncpg_dsn,
    bench_admin_email,
    bench_org_name,
    bench_password,
    delete_organizations,
    generate_into,
)

if TYPE_CHECKING:
    Connection: TypeAlias = asyncpg.Connection[asyncpg.Record]

DATABASE = "fieldcrm_bench"
GOAL_P95_MS = 20.0
PAGE_SIZE = 20
SEED = 42


def orm_org_name(seed: int) -> str:
    """The throwaway organisation of the ORM baseline."""
    return f"Bench ORM baseline {seed}"


# --- statistics -------------------------------------------------------------------------------


@dataclass
class Series(Percentiles):
    """Latencies (ms) of one method on one kind of query, and how many queries found rows."""

    method: str
    kind: str
    ms: list[float] = field(default_factory=list)
    found: int = 0

    def add(self, ms: float, rows: int) -> None:
        self.ms.append(ms)
        self.found += rows > 0


def merged(method: str, kind: str, parts: Iterable[Series]) -> Series:
    out = Series(method, kind)
    for part in parts:
        out.ms += part.ms
        out.found += part.found
    return out


# --- the queries ------------------------------------------------------------------------------


@dataclass
class Queries:
    """Search strings by kind; ``warmup`` is a separate set of each."""

    phone_part: list[str]
    phone_full: list[str]
    name: list[str]
    warmup: list[str]

    def kinds(self) -> dict[str, list[str]]:
        return {
            "phone substring": self.phone_part,
            "phone full": self.phone_full,
            "name": self.name,
        }


async def build_queries(conn: Connection, org_id: uuid.UUID, n: int, seed: int) -> Queries:
    """Queries taken from the loaded data, deterministically."""
    rng = random.Random(seed)
    phones = [
        str(r["phone"])
        for r in await conn.fetch(
            "SELECT phone FROM contacts WHERE organization_id = $1 AND phone IS NOT NULL"
            " ORDER BY phone",
            org_id,
        )
    ]
    surnames = [
        str(r["surname"])
        for r in await conn.fetch(
            "SELECT DISTINCT split_part(name, ' ', 1) AS surname FROM customers"
            " WHERE organization_id = $1 AND kind = 'person' ORDER BY 1",
            org_id,
        )
    ]

    def part() -> str:
        digits = rng.choice(phones).lstrip("+")
        length = rng.randint(4, 7)
        start = rng.randrange(len(digits) - length + 1)
        return digits[start : start + length]

    def full() -> str:
        return national_format(rng.choice(phones))

    def prefix() -> str:
        surname = rng.choice(surnames)
        text = surname[: rng.randint(2, min(5, len(surname)))]
        return text.lower() if rng.random() < 0.3 else text

    def draw(make: Callable[[], str], count: int) -> list[str]:
        return [make() for _ in range(count)]

    half = n // 2
    phone_part, phone_full = draw(part, n - half), draw(full, half)
    warmup_each = max(10, n // 10)
    warmup = draw(part, warmup_each) + draw(full, warmup_each) + draw(prefix, warmup_each)
    rng.shuffle(warmup)
    return Queries(phone_part, phone_full, draw(prefix, n), warmup)


NAIVE_SQL = """
SELECT c.id, c.kind, c.name, c.owner_id, c.created_at,
       array_remove(array_agg(ct.phone), NULL) AS phones,
       array_remove(array_agg(ct.email), NULL) AS emails
FROM customers c
LEFT JOIN contacts ct ON ct.customer_id = c.id
WHERE c.organization_id = $1
  AND (c.name ILIKE $2 OR ct.phone ILIKE $2 OR ct.email ILIKE $2)
GROUP BY c.id
ORDER BY lower(c.name), c.id
LIMIT $3
"""


def naive_pattern(q: str) -> str:
    escaped = q.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"


async def capture_our_sql(
    url: str, admin_id: uuid.UUID, org_id: uuid.UUID, queries: list[str]
) -> list[tuple[str, tuple[Any, ...]]]:
    """The exact statement and parameters ``customers.services.list_customers`` sends for each
    query, captured from SQLAlchemy (the service itself decides what SQL to run)."""
    engine = create_async_engine(url)
    captured: list[tuple[str, tuple[Any, ...]]] = []

    @event.listens_for(engine.sync_engine, "before_cursor_execute")
    def _grab(_c: Any, _cur: Any, statement: str, params: Any, _ctx: Any, _many: bool) -> None:
        captured.append((statement, tuple(params)))

    out: list[tuple[str, tuple[Any, ...]]] = []
    try:
        async with AsyncSession(engine) as session:
            actor = await load_actor(session, admin_id, org_id, 1)
            for q in queries:
                captured.clear()
                await customer_services.list_customers(
                    session, actor, q=q, owner_id=None, kind=None, limit=PAGE_SIZE, cursor=None
                )
                if len(captured) != 1:
                    raise RuntimeError(f"expected one statement for {q!r}, saw {len(captured)}")
                out.append(captured[0])
    finally:
        await engine.dispose()
    return out


# --- loading ----------------------------------------------------------------------------------


@dataclass
class LoadResult:
    org_id: uuid.UUID
    admin_id: uuid.UUID
    customers: int
    customers_per_s: float
    rows_per_s: float
    seconds: float
    orm_customers: int
    orm_customers_per_s: float


async def orm_baseline(url: str, count: int, seed: int) -> float:
    """Customers per second through the ORM, one INSERT per row (customer, contact, site),
    in one transaction, into a throwaway organisation."""
    factory = CustomerFactory(seed + 1, uuid.uuid4(), [])
    engine = create_async_engine(url)
    try:
        sessionmaker = async_sessionmaker(engine, expire_on_commit=False, autoflush=False)
        async with sessionmaker() as session, session.begin():
            org = Organization(
                id=uuid.uuid4(), name=orm_org_name(seed), currency="RUB", locale="ru-RU"
            )
            session.add(org)
            await session.flush()
            owner = User(
                id=uuid.uuid4(),
                organization_id=org.id,
                email=f"bench-orm-{seed}-{uuid.uuid4().hex[:8]}@bench.example",
                password_hash=hash_password(secrets.token_urlsafe(16)),
                full_name="ORM Baseline",
                role=Role.MANAGER,
                skills=[],
                time_zone="Europe/Moscow",
                is_active=True,
                token_version=1,
            )
            session.add(owner)
            await session.flush()
            factory.org_id, factory.owner_ids = org.id, [owner.id]
            rows = factory.chunk(count)  # drawn before the clock starts
            started = time.perf_counter()
            for c, ct, s in tqdm(
                zip(rows.customers, rows.contacts, rows.sites, strict=True),
                total=count,
                desc="ORM baseline",
                unit="customer",
                file=sys.stderr,
            ):
                session.add(
                    Customer(
                        id=c[0], organization_id=c[1], kind=CustomerKind(c[2]), name=c[3],
                        owner_id=c[4], source=c[5], notes=c[6], search_phones=c[7],
                        search_emails=c[8],
                    )
                )  # fmt: skip
                await session.flush()
                session.add(
                    Contact(
                        id=ct[0], organization_id=ct[1], customer_id=ct[2], name=ct[3],
                        position=ct[4], phone=ct[5], email=ct[6],
                    )
                )  # fmt: skip
                await session.flush()
                lon, lat = s[5]
                session.add(
                    Site(
                        id=s[0], organization_id=s[1], customer_id=s[2], label=s[3],
                        address=s[4], location=point_wkt(lat, lon), access_notes=s[6],
                    )
                )  # fmt: skip
                await session.flush()
            seconds = time.perf_counter() - started
    finally:
        await engine.dispose()
    return count / seconds


async def load(url: str, customers: int, orm_count: int, seed: int) -> LoadResult:
    conn = await asyncpg.connect(asyncpg_dsn(url))
    try:
        await delete_organizations(conn, orm_org_name(seed))
        result = await generate_into(conn, customers, seed)
        admin_id = await conn.fetchval(
            "SELECT id FROM users WHERE lower(email) = $1", bench_admin_email(seed)
        )
    finally:
        await conn.close()
    log(result.summary().splitlines()[0])
    orm_rate = await orm_baseline(url, orm_count, seed)
    return LoadResult(
        org_id=result.organization_id,
        admin_id=admin_id,
        customers=customers,
        customers_per_s=result.customers_per_s,
        rows_per_s=result.rows_per_s,
        seconds=result.seconds,
        orm_customers=orm_count,
        orm_customers_per_s=orm_rate,
    )


# --- the API server ---------------------------------------------------------------------------


def login(client: httpx.Client, base: str, email: str, password: str) -> str:
    response = client.post(f"{base}/api/v1/auth/token", json={"email": email, "password": password})
    if response.status_code != 200:
        raise RuntimeError(f"login failed: {response.status_code} {response.text[:500]}")
    token: str = response.json()["accessToken"]
    return token


def time_api(client: httpx.Client, base: str, token: str, queries: Queries) -> list[Series]:
    headers = {"Authorization": f"Bearer {token}"}
    url = f"{base}/api/v1/customers"

    def one(q: str) -> tuple[float, int]:
        started = time.perf_counter()
        response = client.get(url, params={"q": q, "limit": PAGE_SIZE}, headers=headers)
        ms = (time.perf_counter() - started) * 1000
        if response.status_code != 200:
            raise RuntimeError(
                f"GET /api/v1/customers?q={q!r}: {response.status_code} {response.text[:500]}"
            )
        return ms, len(response.json()["items"])

    for q in tqdm(queries.warmup, desc="API warm-up", file=sys.stderr):
        one(q)
    out = []
    for kind, items in queries.kinds().items():
        series = Series("fieldcrm API (HTTP, auth, JSON)", kind)
        for q in tqdm(items, desc=f"API {kind}", file=sys.stderr):
            series.add(*one(q))
        out.append(series)
    return out


async def time_sql(
    url: str, load_result: LoadResult, queries: Queries, naive_count: int
) -> list[Series]:
    """Our exact SQL and the naive join, straight on asyncpg, on the same queries."""
    conn = await asyncpg.connect(asyncpg_dsn(url), server_settings={"jit": "off"})
    org_id = load_result.org_id
    out: list[Series] = []
    try:
        warm = await capture_our_sql(url, load_result.admin_id, org_id, queries.warmup)
        for statement, params in warm:
            await conn.fetch(statement, *params)
        for kind, items in queries.kinds().items():
            ours = await capture_our_sql(url, load_result.admin_id, org_id, items)
            series = Series("our SQL direct (asyncpg)", kind)
            for statement, params in tqdm(ours, desc=f"SQL {kind}", file=sys.stderr):
                started = time.perf_counter()
                rows = await conn.fetch(statement, *params)
                series.add((time.perf_counter() - started) * 1000, len(rows))
            out.append(series)

            naive = Series("naive ILIKE join (asyncpg)", kind)
            for q in queries.warmup[:3]:
                await conn.fetch(NAIVE_SQL, org_id, naive_pattern(q), PAGE_SIZE + 1)
            for q in tqdm(items[:naive_count], desc=f"naive {kind}", file=sys.stderr):
                started = time.perf_counter()
                rows = await conn.fetch(NAIVE_SQL, org_id, naive_pattern(q), PAGE_SIZE + 1)
                naive.add((time.perf_counter() - started) * 1000, len(rows))
            out.append(naive)
    finally:
        await conn.close()
    return out


async def cleanup(url: str, seed: int) -> None:
    conn = await asyncpg.connect(asyncpg_dsn(url))
    try:
        for name in (bench_org_name(seed), orm_org_name(seed)):
            started = time.perf_counter()
            if await delete_organizations(conn, name):
                log(f"deleted {name!r} in {time.perf_counter() - started:.1f} s")
    finally:
        await conn.close()


# --- report -----------------------------------------------------------------------------------


def _fmt(ms: float) -> str:
    return f"{ms:8.2f}"


def report(
    args: argparse.Namespace,
    load_result: LoadResult,
    series: list[Series],
    meta: dict[str, Any],
) -> dict[str, Any]:
    by = {(s.method, s.kind): s for s in series}
    methods = [
        "fieldcrm API (HTTP, auth, JSON)",
        "our SQL direct (asyncpg)",
        "naive ILIKE join (asyncpg)",
    ]
    kinds = ["phone substring", "phone full", "name"]
    table: dict[tuple[str, str], Series] = dict(by)
    for method in methods:
        table[(method, "phone")] = merged(
            method, "phone", (by[(method, k)] for k in ("phone substring", "phone full"))
        )
    api = methods[0]

    lines = [
        "",
        f"fieldcrm customer search: {load_result.customers:,} customers,"
        f" {meta['requests_per_kind']} API requests per kind, {meta['cpu_count']} CPUs,"
        f" {meta['platform']}, Python {meta['python']}, PostgreSQL {meta['postgres']}",
        "",
        "Loading                                         customers/s      rows/s   ratio",
        f"  generator, COPY (backend.seed.generate)      {load_result.customers_per_s:11,.0f}"
        f" {load_result.rows_per_s:11,.0f}   {1.0:5.2f}",
        f"  ORM, one INSERT per row ({load_result.orm_customers:,} customers)".ljust(47)
        + f"{load_result.orm_customers_per_s:11,.0f} {load_result.orm_customers_per_s * 3:11,.0f}"
        f"   {load_result.orm_customers_per_s / load_result.customers_per_s:5.2f}",
        "",
        "Search GET /api/v1/customers?q=...&limit=20 (ms; ratio = p95 / API p95; found = queries"
        " with results)",
        f"  {'query kind':<16} {'method':<32} {'n':>5} {'p50':>8} {'p95':>8} {'p99':>8}"
        f" {'ratio':>7} {'found':>7}",
    ]
    for kind in ["phone", *kinds]:
        ours = table[(api, kind)]
        for method in methods:
            s = table[(method, kind)]
            lines.append(
                f"  {kind:<16} {method:<32} {len(s.ms):>5} {_fmt(s.p50)} {_fmt(s.p95)}"
                f" {_fmt(s.p99)} {s.p95 / ours.p95:7.2f} {s.found / max(1, len(s.ms)):7.0%}"
            )
        lines.append("")
    phone_p95, name_p95 = table[(api, "phone")].p95, table[(api, "name")].p95
    met = phone_p95 <= GOAL_P95_MS and name_p95 <= GOAL_P95_MS
    scale = (
        "" if load_result.customers >= 100_000 else " (quick run on fewer customers: indicative)"
    )
    lines.append(
        f"GOAL API p95 <= {GOAL_P95_MS:g} ms: {'MET' if met else 'NOT MET'}"
        f" (phone {phone_p95:.2f} ms, name {name_p95:.2f} ms){scale}"
    )
    naive_phone_full = table[("naive ILIKE join (asyncpg)", "phone full")]
    lines.append(
        f"Note: the naive search finds {naive_phone_full.found}/{len(naive_phone_full.ms)}"
        " numbers typed the national way (8 912 ...): it compares the text as typed with E.164."
    )
    print("\n".join(lines))

    figures: dict[str, float] = {
        "search_phone_p95_ms": phone_p95,
        "search_name_p95_ms": name_p95,
        "load_customers_per_s": load_result.customers_per_s,
        "search_phone_p50_ms": table[(api, "phone")].p50,
        "search_phone_p99_ms": table[(api, "phone")].p99,
        "search_name_p50_ms": table[(api, "name")].p50,
        "search_name_p99_ms": table[(api, "name")].p99,
        "search_phone_substring_p95_ms": table[(api, "phone substring")].p95,
        "search_phone_full_p95_ms": table[(api, "phone full")].p95,
        "sql_phone_p95_ms": table[(methods[1], "phone")].p95,
        "sql_name_p95_ms": table[(methods[1], "name")].p95,
        "naive_phone_p95_ms": table[(methods[2], "phone")].p95,
        "naive_name_p95_ms": table[(methods[2], "name")].p95,
        "naive_vs_api_phone_p95_ratio": table[(methods[2], "phone")].p95 / phone_p95,
        "naive_vs_api_name_p95_ratio": table[(methods[2], "name")].p95 / name_p95,
        "load_rows_per_s": load_result.rows_per_s,
        "orm_load_customers_per_s": load_result.orm_customers_per_s,
        "load_vs_orm_ratio": load_result.customers_per_s / load_result.orm_customers_per_s,
        "goal_met": 1.0 if met else 0.0,
    }
    meta = {**meta, "goal_p95_ms": GOAL_P95_MS, "goal_met": met}
    return {"figures": figures, "meta": meta}


# --- main -------------------------------------------------------------------------------------


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="10k customers, 100 requests")
    parser.add_argument("--json", type=Path, metavar="PATH", help="write figures as JSON")
    parser.add_argument("--customers", type=int, help="customers to load (default 100,000)")
    parser.add_argument("--requests", type=int, help="API requests per query kind")
    parser.add_argument("--seed", type=int, default=SEED)
    args = parser.parse_args(argv)
    args.customers = args.customers or (10_000 if args.quick else 100_000)
    args.requests = args.requests or (100 if args.quick else 500)
    args.orm_count = 500 if args.quick else 2_000
    args.naive_count = min(args.requests, 50 if args.quick else 100)
    if args.customers < 100 or args.requests < 2:
        parser.error("--customers must be at least 100 and --requests at least 2")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    url = start(DATABASE)
    if url is None:
        return 1
    log(f"database {safe_url(url)}; running migrations")
    upgrade(url)
    server: Server | None = None
    try:
        load_result = asyncio.run(load(url, args.customers, args.orm_count, args.seed))
        queries = asyncio.run(_queries(url, load_result, args))
        env = {
            "FIELDCRM_DATABASE_URL": url,
            "FIELDCRM_SECRET_KEY": secrets.token_urlsafe(48),
            "FIELDCRM_ENV": "production",
            "FIELDCRM_LOG_JSON": "true",
            "FIELDCRM_ACCESS_TOKEN_TTL": "3600",  # outlives the full run
        }
        server = Server(env, cli=True)
        log(f"starting the API on {server.base}: {' '.join(server.argv[1:])}")
        server.wait_ready()
        with httpx.Client(timeout=30.0) as client:
            token = login(client, server.base, bench_admin_email(args.seed), bench_password())
            api_series = time_api(client, server.base, token, queries)
        server.stop()
        server = None
        sql_series = asyncio.run(time_sql(url, load_result, queries, args.naive_count))
        meta = {
            **machine_meta(url),
            "customers": args.customers,
            "requests_per_kind": args.requests,
            "naive_requests_per_kind": args.naive_count,
            "orm_baseline_customers": args.orm_count,
            "quick": args.quick,
            "seed": args.seed,
            "page_size": PAGE_SIZE,
            "client": "httpx, sequential, one connection, loopback",
            "server": "fieldcrm serve (uvicorn, 1 worker), FIELDCRM_ENV=production",
            "when": datetime.now(UTC).isoformat(timespec="seconds"),
        }
        result = report(args, load_result, api_series + sql_series, meta)
        if args.json:
            write_json(args.json, result)
    finally:
        if server is not None:
            server.stop()
        log("cleaning up the benchmark organisations ...")
        try:
            asyncio.run(cleanup(url, args.seed))
        except Exception as exc:  # report, but do not hide the error that got us here
            log(f"cleanup failed: {exc!r}; delete {bench_org_name(args.seed)!r} by hand")
    return 0


async def _queries(url: str, load_result: LoadResult, args: argparse.Namespace) -> Queries:
    conn = await asyncpg.connect(asyncpg_dsn(url))
    try:
        return await build_queries(conn, load_result.org_id, args.requests, args.seed)
    finally:
        await conn.close()


if __name__ == "__main__":
    sys.exit(main())
