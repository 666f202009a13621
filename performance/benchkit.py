"""Helpers shared by the benchmark scripts in this folder (bench_customers, bench_pipeline,
bench_ingest): logging and progress bars, latency series, the benchmark database (provision,
fresh schema, drop), access tokens, the API server in a subprocess, SQL statement timing, and
the start and the cleanup of a run.

The scripts run as ``python performance/bench_x.py``, so this folder is on ``sys.path`` and
they ``import benchkit``; it is not a package and not part of the app. What only one script
needs stays in that script.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import platform
import re
import secrets
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any, TypeAlias
from urllib.parse import unquote, urlsplit, urlunsplit

import asyncpg
import httpx
from sqlalchemy import event
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession
from tqdm import tqdm

from backend.accounts.security import mint_access_token
from backend.config import Settings
from backend.db.migrate import upgrade
from backend.db.provision import ProvisionError, ensure_databases
from backend.seed.generate import (
    CONTACT_COLUMNS,
    CUSTOMER_COLUMNS,
    SITE_COLUMNS,
    CustomerRows,
    asyncpg_dsn,
)

if TYPE_CHECKING:
    Connection: TypeAlias = asyncpg.Connection[asyncpg.Record]

ROOT = Path(__file__).resolve().parents[1]
SERVER_START_TIMEOUT_S = 90.0
TOKEN_TTL_S = 6 * 3600  # outlives a full run


def log(message: str) -> None:
    print(f"bench: {message}", file=sys.stderr, flush=True)


def progress(iterable: Iterable[Any], desc: str, total: int | None = None) -> tqdm[Any]:
    """A progress bar on stderr that disappears when done."""
    return tqdm(iterable, desc=desc, total=total, file=sys.stderr, leave=False)


# --- statistics -------------------------------------------------------------------------------


class Percentiles:
    """p50/p95/p99, mean and max of the latencies ``ms`` (milliseconds) of a dataclass."""

    ms: list[float]

    def pct(self, p: int) -> float:
        if not self.ms:
            return float("nan")
        if len(self.ms) == 1:
            return self.ms[0]
        return statistics.quantiles(self.ms, n=100, method="inclusive")[p - 1]

    @property
    def p50(self) -> float:
        return self.pct(50)

    @property
    def p95(self) -> float:
        return self.pct(95)

    @property
    def p99(self) -> float:
        return self.pct(99)

    @property
    def mean(self) -> float:
        return statistics.fmean(self.ms) if self.ms else float("nan")

    @property
    def max(self) -> float:
        return max(self.ms) if self.ms else float("nan")


@dataclass
class Series(Percentiles):
    """Latencies (ms) of one kind of request."""

    name: str
    ms: list[float] = field(default_factory=list)


# --- the database -----------------------------------------------------------------------------


def safe_url(url: str) -> str:
    """The URL without its credentials, for the log."""
    return re.sub(r"//[^@/]*@", "//***@", url)


async def reset_schema(url: str) -> None:
    """An empty public schema (the migrations build the rest)."""
    conn = await asyncpg.connect(asyncpg_dsn(url))
    try:
        await conn.execute("DROP SCHEMA IF EXISTS public CASCADE")
        await conn.execute("CREATE SCHEMA public")
        for extension in ("postgis", "pg_trgm", "btree_gist"):
            await conn.execute(f"CREATE EXTENSION IF NOT EXISTS {extension}")
    finally:
        await conn.close()


def database_name(url: str) -> str:
    """The database a URL names (its path)."""
    name = unquote(urlsplit(url).path.lstrip("/"))
    if not name:
        raise ValueError(f"no database in {safe_url(url)}")
    return name


async def drop_database(url: str) -> None:
    """Drop the database ``url`` names (from the server's maintenance database)."""
    name = database_name(url).replace('"', '""')
    parts = urlsplit(asyncpg_dsn(url))
    maintenance = urlunsplit(parts._replace(path="/postgres"))
    conn = await asyncpg.connect(maintenance)
    try:
        await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await conn.close()


async def copy_customers(conn: Connection, rows: CustomerRows) -> None:
    """COPY a ``CustomerFactory`` chunk: the customers, their contacts and their sites (in the
    caller's transaction; the geography codec registered on ``conn``)."""
    await conn.copy_records_to_table("customers", records=rows.customers, columns=CUSTOMER_COLUMNS)
    await conn.copy_records_to_table("contacts", records=rows.contacts, columns=CONTACT_COLUMNS)
    await conn.copy_records_to_table("sites", records=rows.sites, columns=SITE_COLUMNS)


async def postgres_version(url: str) -> str:
    conn = await asyncpg.connect(asyncpg_dsn(url))
    try:
        return str(await conn.fetchval("SHOW server_version"))
    finally:
        await conn.close()


# --- tokens and the API server ----------------------------------------------------------------


def tokens_for(users: list[uuid.UUID], org_id: uuid.UUID, secret_key: str) -> dict[uuid.UUID, str]:
    """An access token per user (token version 1), valid for TOKEN_TTL_S."""
    now = datetime.now(UTC)
    return {
        u: mint_access_token(
            user_id=u,
            organization_id=org_id,
            token_version=1,
            now=now,
            ttl_s=TOKEN_TTL_S,
            secret_key=secret_key,
        )
        for u in users
    }


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def app_secret_key() -> str:
    """FIELDCRM_SECRET_KEY when it is long enough, else a random one for this run."""
    key = os.environ.get("FIELDCRM_SECRET_KEY", "")
    return key if len(key) >= 32 else secrets.token_urlsafe(48)


def server_env(
    url: str,
    secret_key: str,
    files_dir: str,
    *,
    log_json: bool,
    lead_rate_per_minute: int | None = None,
) -> dict[str, str]:
    """The environment of the app, in-process and in the uvicorn subprocesses (development
    mode); ``lead_rate_per_minute`` sets FIELDCRM_LEAD_RATE_PER_MINUTE when given."""
    env = {
        "FIELDCRM_DATABASE_URL": url,
        "FIELDCRM_SECRET_KEY": secret_key,
        "FIELDCRM_ENV": "development",
        "FIELDCRM_LOG_JSON": "true" if log_json else "false",
        "FIELDCRM_FILES_DIR": files_dir,
        "FIELDCRM_ACCESS_TOKEN_TTL": str(TOKEN_TTL_S),
    }
    if lead_rate_per_minute is not None:
        env["FIELDCRM_LEAD_RATE_PER_MINUTE"] = str(lead_rate_per_minute)
    return env


def app_settings(
    url: str, secret_key: str, files_dir: str, *, log_json: bool, **extra: Any
) -> Settings:
    """The app's settings in-process, as `server_env` gives them to uvicorn (``extra``: other
    `Settings` fields)."""
    return Settings(
        database_url=url,
        secret_key=secret_key,
        env="development",
        cookie_secure=False,
        log_json=log_json,
        files_dir=files_dir,
        access_token_ttl_s=TOKEN_TTL_S,
        **extra,
    )


class Server:
    """The app in a subprocess on a free local port, with ``env`` on top of this environment:
    ``uvicorn --factory backend.app:app_factory --workers N`` (``forwarded_allow_ips``: the
    addresses whose X-Forwarded-For uvicorn trusts), or with ``cli=True`` ``fieldcrm serve``.
    uvicorn's own access log is off; fieldcrm's access lines (logger ``fieldcrm.access``, INFO,
    always on) and all other output go to a temporary log file, shown when the server fails
    and, with FIELDCRM_LOG_JSON=true, read by ``durations``."""

    def __init__(
        self,
        env: dict[str, str],
        workers: int = 1,
        *,
        cli: bool = False,
        forwarded_allow_ips: str | None = None,
    ) -> None:
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.workers = workers
        self.log: IO[bytes] = tempfile.NamedTemporaryFile(  # noqa: SIM115 - closed in stop()
            prefix="fieldcrm-bench-server-", suffix=".log", delete=False
        )
        address = ["--host", "127.0.0.1", "--port", str(self.port)]
        if cli:
            self.argv = [sys.executable, "-m", "backend.cli", "serve", *address]
            if workers != 1:
                self.argv += ["--workers", str(workers)]
        else:
            self.argv = [
                sys.executable, "-m", "uvicorn", "--factory", "backend.app:app_factory",
                *address, "--workers", str(workers), "--no-access-log", "--log-level", "warning",
            ]  # fmt: skip
            if forwarded_allow_ips is not None:
                self.argv += ["--forwarded-allow-ips", forwarded_allow_ips]
        self.proc = subprocess.Popen(  # noqa: S603 - our own command line
            self.argv,
            cwd=ROOT,
            env={**os.environ, **env},
            stdout=self.log,
            stderr=subprocess.STDOUT,
        )

    def tail(self, lines: int = 40) -> str:
        self.log.flush()
        content = Path(self.log.name).read_text(errors="replace")
        return "\n".join(content.splitlines()[-lines:])

    def log_offset(self) -> int:
        return Path(self.log.name).stat().st_size

    def durations(self, path: str, since: int) -> Series:
        """``duration_ms`` of the JSON access lines of ``path`` (status 200) written after
        ``since`` (a ``log_offset``)."""
        series = Series(f"server {path}")
        with Path(self.log.name).open("rb") as lines:
            lines.seek(since)
            for line in lines:
                if b'"fieldcrm.access"' not in line:
                    continue
                try:
                    entry = json.loads(line)
                except ValueError:
                    continue
                if entry.get("path") == path and entry.get("status") == 200:
                    series.ms.append(float(entry["duration_ms"]))
        return series

    def wait_ready(self) -> None:
        """Until /health answers, then /ready (the database) in every worker we reach."""
        deadline = time.monotonic() + SERVER_START_TIMEOUT_S
        with httpx.Client(timeout=2.0) as client:
            for path in ("/health", "/ready"):
                ok = 0
                while ok < self.workers * 3:
                    if self.proc.poll() is not None:
                        raise RuntimeError(
                            f"the server exited with {self.proc.returncode}:\n{self.tail()}"
                        )
                    try:
                        ok += client.get(f"{self.base}{path}").status_code == 200
                    except httpx.TransportError:
                        time.sleep(0.2)
                    if time.monotonic() > deadline:
                        raise RuntimeError(f"the server was not ready in time:\n{self.tail()}")

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


# --- SQL statements ---------------------------------------------------------------------------


def _all_statements(_statement: str) -> str:
    return "SQL"


@dataclass
class StatementMeter:
    """Client-side time in SQL statements on an engine, per kind (``classify`` names a
    statement's kind; by default all are one kind), one task at a time."""

    classify: Callable[[str], str] = _all_statements
    ms: dict[str, float] = field(default_factory=dict)
    count: Counter[str] = field(default_factory=Counter)
    last: dict[str, tuple[str, Any]] = field(default_factory=dict)  # statement, parameters
    watched: set[int] = field(default_factory=set)
    _started: list[float] = field(default_factory=list)

    def attach(self, engine: AsyncEngine) -> None:
        @event.listens_for(engine.sync_engine, "before_cursor_execute")
        def _before(_conn: Any, _cursor: Any, statement: str, parameters: Any, *_: Any) -> None:
            self.last[self.classify(statement)] = (statement, parameters)
            self._started.append(time.perf_counter())

        @event.listens_for(engine.sync_engine, "after_cursor_execute")
        def _after(_conn: Any, _cursor: Any, statement: str, *_: Any) -> None:
            kind = self.classify(statement)
            self.count[kind] += 1
            if self._started:
                elapsed = (time.perf_counter() - self._started.pop()) * 1000
                self.ms[kind] = self.ms.get(kind, 0.0) + elapsed

    def logged(self, record: Any) -> None:
        """asyncpg query logger: statements sent on the raw connection, past SQLAlchemy."""
        kind = self.classify(record.query)
        self.last[kind] = (record.query, record.args)
        self.count[kind] += 1
        self.ms[kind] = self.ms.get(kind, 0.0) + record.elapsed * 1000

    async def watch(self, session: AsyncSession) -> Any:
        """Log the statements of the session's asyncpg connection too; returns it."""
        raw = (await (await session.connection()).get_raw_connection()).driver_connection
        if raw is not None and id(raw) not in self.watched:
            raw.add_query_logger(self.logged)
            self.watched.add(id(raw))
        return raw

    def take(self) -> tuple[dict[str, float], Counter[str]]:
        """Milliseconds and statements per kind since the last take."""
        out = (self.ms, self.count)
        self.ms, self.count = {}, Counter()
        return out

    def take_total(self) -> tuple[int, float]:
        """Statements and milliseconds in them, all kinds together, since the last take."""
        ms, count = self.take()
        return sum(count.values()), sum(ms.values(), 0.0)


# --- a run ------------------------------------------------------------------------------------


def _terminated(signum: int, _frame: object) -> None:
    raise SystemExit(128 + signum)  # unwinds through the finally blocks: cleanup still runs


def start(database: str) -> str | None:
    """The start of every run: SIGTERM unwinds like Ctrl-C (the cleanup still runs), httpx logs
    no line per request, and the database exists (``backend.db.provision``). Its URL, or None
    when there is no usable server (said on stderr)."""
    logging.getLogger("httpx").setLevel(logging.WARNING)
    signal.signal(signal.SIGTERM, _terminated)
    try:
        return asyncio.run(ensure_databases([database]))[database]
    except ProvisionError as exc:
        log(f"no database: {exc}")
        return None


@contextlib.contextmanager
def fresh_database(url: str, *, keep: bool) -> Iterator[str]:
    """The database's schema dropped and rebuilt by the migrations, and a temporary files
    directory (FIELDCRM_FILES_DIR), yielded. At the end, also on failure or Ctrl-C, the
    directory is removed and the database dropped, unless ``keep``."""
    log(f"database {safe_url(url)}: fresh schema, running migrations")
    database = database_name(url)
    files_dir = tempfile.mkdtemp(prefix=f"{database}-files-")
    try:
        asyncio.run(reset_schema(url))
        upgrade(url)
        yield files_dir
    finally:
        shutil.rmtree(files_dir)
        if keep:
            log(f"kept the database {database}")
        else:
            try:
                asyncio.run(drop_database(url))
                log(f"dropped the database {database}")
            except Exception as exc:  # report, but do not hide the error that got us here
                log(f"could not drop {database}: {exc!r}; drop it by hand")


def machine_meta(url: str) -> dict[str, Any]:
    """The first keys of every run's ``meta``: CPUs, platform, Python, PostgreSQL."""
    return {
        "cpu_count": os.cpu_count(),
        "platform": platform.platform(terse=True),
        "python": platform.python_version(),
        "postgres": asyncio.run(postgres_version(url)),
    }


def write_json(path: Path, result: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(result, indent=2, default=str) + "\n")
    log(f"wrote {path}")


# --- a light load generator -------------------------------------------------------------------


class RawHttpConnection:
    """One keep-alive HTTP/1.1 connection that writes requests encoded beforehand and reads
    answers with a Content-Length. A load generator on the server's own machine takes CPU from
    the server: httpx spends ~3 ms per 500-point batch, this ~0.1 ms, so (b) measures the
    server rather than the client."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer

    @classmethod
    async def open(cls, base: str) -> RawHttpConnection:
        """Connect to ``http://host:port``."""
        parts = urlsplit(base)
        reader, writer = await asyncio.open_connection(parts.hostname, parts.port)
        return cls(reader, writer)

    @staticmethod
    def encode_post(base: str, path: str, body: bytes, headers: dict[str, str]) -> bytes:
        """A whole POST request as bytes."""
        host = urlsplit(base).netloc
        head = [f"POST {path} HTTP/1.1", f"Host: {host}", f"Content-Length: {len(body)}"]
        head += [f"{name}: {value}" for name, value in headers.items()]
        return ("\r\n".join(head) + "\r\n\r\n").encode() + body

    async def send(self, request: bytes) -> tuple[int, bytes]:
        """Write one request, read its answer: (status, body)."""
        self.writer.write(request)
        head = await self.reader.readuntil(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        status = int(lines[0].split(" ", 2)[1])
        length = None
        for line in lines[1:]:
            name, _, value = line.partition(":")
            lowered = name.strip().lower()
            if lowered == "content-length":
                length = int(value.strip())
            elif lowered == "transfer-encoding":
                raise RuntimeError("RawHttpConnection reads only answers with a Content-Length")
        if length is None:
            raise RuntimeError(f"an answer without Content-Length: {lines[0]}")
        return status, await self.reader.readexactly(length)

    async def close(self) -> None:
        """Close the connection."""
        self.writer.close()
        with contextlib.suppress(OSError):
            await self.writer.wait_closed()
