"""Find or set up a PostgreSQL + PostGIS server and make sure the named databases exist.

Run it as ``python -m backend.db.provision NAME [NAME ...]``: on success it prints one line
``NAME=URL`` per database on stdout (SQLAlchemy URLs, ``postgresql+asyncpg://...``) and nothing
else there; progress and diagnostics go to stderr. It exits non-zero, with a message saying what
was tried and what to install, when no usable server can be found. ``make demo`` and
``make test`` call it through ``scripts/with_db.sh``. From Python, ``await ensure_databases([...])``
does the same and raises :class:`ProvisionError` instead of exiting.

Every database it hands out exists and has the extensions ``postgis``, ``pg_trgm`` and
``btree_gist``. Running it again is safe and fast: nothing that already exists is touched.

Where the server comes from, in this order:

1. ``FIELDCRM_DATABASE_URL``, when set: its server is used (scheme, user, password, host, port
   and query string are kept) and **the database names always come from the arguments** -- the
   database named in the URL's path is ignored, so ``make test`` never points the test suite
   at the database of a running instance. Nothing is installed for such a server, unless its
   host is this machine (loopback or a Unix socket), where rule 2's PostGIS install applies.
2. The local server: the Unix socket in ``/var/run/postgresql``, then ``127.0.0.1:5432``, each
   first as user ``postgres`` and then as the current OS user; the first that connects is used
   (when that was the socket and TCP works for the same user too, the printed URL uses
   ``127.0.0.1:5432``, which every client understands). If PostGIS is not available there and
   this process is root on Debian, ``postgresql-<major>-postgis-3`` is installed with apt-get
   (``<major>`` read from the server) and the check is repeated. A local server that still lacks
   an extension, or on which the user may not create databases or extensions, is skipped.
3. Docker: when ``docker compose`` exists and an engine answers, the ``postgis`` service of
   ``docker/compose.yaml`` is started (``postgresql+asyncpg://fieldcrm:fieldcrm@127.0.0.1:5433``).
4. Otherwise it fails, listing what it tried and what to install.
"""

from __future__ import annotations

import argparse
import asyncio
import getpass
import os
import re
import shutil
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Literal, TypeAlias
from urllib.parse import parse_qsl, quote, unquote, urlsplit, urlunsplit

import asyncpg

if TYPE_CHECKING:
    _Connection: TypeAlias = asyncpg.Connection[asyncpg.Record]

__all__ = ["EXTENSIONS", "ProvisionError", "ensure_databases", "main"]

EXTENSIONS: tuple[str, ...] = ("postgis", "pg_trgm", "btree_gist")
"""Extensions created in every database, in this order."""

SOCKET_DIR = "/var/run/postgresql"
LOCAL_TCP_HOST = "127.0.0.1"
LOCAL_PORT = 5432
DOCKER_PORT = 5433
DOCKER_USER = "fieldcrm"
DOCKER_PASSWORD = "fieldcrm"  # noqa: S105 - the throwaway local container's documented password
DOCKER_SERVICE = "postgis"
COMPOSE_FILE = Path(__file__).resolve().parents[2] / "docker" / "compose.yaml"

_SCHEMES = frozenset({"postgresql+asyncpg", "postgresql", "postgres"})
_URL_SCHEME = "postgresql+asyncpg"
_MAINTENANCE_DATABASES = ("postgres", "template1")
_NAME_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,62}$")
_CONNECT_TIMEOUT_S = 5.0
_DOCKER_READY_TIMEOUT_S = 90.0
_APT_LOCK_TIMEOUT_S = 300

_SSLMode = Literal["disable", "prefer", "allow", "require", "verify-ca", "verify-full"]
_SSL_MODES: dict[str, _SSLMode] = {
    "disable": "disable",
    "allow": "allow",
    "prefer": "prefer",
    "require": "require",
    "verify-ca": "verify-ca",
    "verify-full": "verify-full",
    "true": "require",
    "1": "require",
    "false": "disable",
    "0": "disable",
}
_CONNECT_ERRORS: tuple[type[BaseException], ...] = (
    OSError,
    TimeoutError,
    asyncpg.PostgresError,
    asyncpg.InterfaceError,
)


class ProvisionError(RuntimeError):
    """No usable PostgreSQL + PostGIS server could be found or set up."""


class _ServerUnusable(Exception):
    """A server answered but cannot serve us (missing extension, missing privilege)."""


def _log(message: str) -> None:
    print(f"provision: {message}", file=sys.stderr, flush=True)


@dataclass(frozen=True, slots=True)
class _Server:
    """Where to connect, and how to spell the URL of one of its databases."""

    label: str
    host: str | None  # a host name, an IP address, a Unix socket directory, or None (libpq default)
    port: int | None
    user: str | None
    password: str | None = None
    ssl: _SSLMode | None = None
    url_template: str = ""  # a URL with "{database}" where the database name goes

    @property
    def is_local(self) -> bool:
        host = self.host
        return (
            host is None
            or host.startswith("/")
            or host in {"localhost", "127.0.0.1", "::1"}
            or host.startswith("127.")
        )

    def url(self, database: str) -> str:
        return self.url_template.replace("{database}", quote(database, safe=""))

    async def connect(self, database: str) -> _Connection:
        conn: _Connection = await asyncpg.connect(
            host=self.host,
            port=self.port,
            user=self.user,
            password=self.password,
            database=database,
            ssl=self.ssl,
            timeout=_CONNECT_TIMEOUT_S,
        )
        return conn


def _local_server(host: str, user: str) -> _Server:
    auth = quote(user, safe="")
    if host.startswith("/"):
        template = f"{_URL_SCHEME}://{auth}@/{{database}}?host={quote(host, safe='/')}"
        label = f"socket {host} as {user}"
    else:
        template = f"{_URL_SCHEME}://{auth}@{host}:{LOCAL_PORT}/{{database}}"
        label = f"{host}:{LOCAL_PORT} as {user}"
    return _Server(label=label, host=host, port=LOCAL_PORT, user=user, url_template=template)


def _docker_server() -> _Server:
    auth = f"{DOCKER_USER}:{DOCKER_PASSWORD}"
    template = f"{_URL_SCHEME}://{auth}@{LOCAL_TCP_HOST}:{DOCKER_PORT}/{{database}}"
    return _Server(
        label=f"docker compose service {DOCKER_SERVICE!r} on {LOCAL_TCP_HOST}:{DOCKER_PORT}",
        host=LOCAL_TCP_HOST,
        port=DOCKER_PORT,
        user=DOCKER_USER,
        password=DOCKER_PASSWORD,
        url_template=template,
    )


def _server_from_url(url: str) -> _Server:
    """The server of a ``postgresql[+asyncpg]://`` URL; its database name is not used."""
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        raise ProvisionError(f"FIELDCRM_DATABASE_URL is not a valid URL: {exc}") from exc
    if parts.scheme.lower() not in _SCHEMES:
        raise ProvisionError(
            f"FIELDCRM_DATABASE_URL must start with {_URL_SCHEME}:// (got {parts.scheme!r}://)"
        )
    query = dict(parse_qsl(parts.query, keep_blank_values=True))
    host = parts.hostname or query.get("host") or None
    raw_ssl = query.get("ssl", query.get("sslmode"))
    ssl: _SSLMode | None = None
    if raw_ssl is not None:
        ssl = _SSL_MODES.get(raw_ssl.lower())
        if ssl is None:
            raise ProvisionError(f"FIELDCRM_DATABASE_URL has an unknown ssl mode {raw_ssl!r}")
    # Keep everything the user wrote (password encoding, query string); swap the database only.
    template = urlunsplit((_URL_SCHEME, parts.netloc, "/{database}", parts.query, ""))
    shown_host = host or "default socket"
    return _Server(
        label=f"FIELDCRM_DATABASE_URL server ({shown_host}{f':{port}' if port else ''})",
        host=host,
        port=port,
        user=unquote(parts.username) if parts.username else None,
        password=unquote(parts.password) if parts.password is not None else None,
        ssl=ssl,
        url_template=template,
    )


def _quote_ident(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _validate_names(names: Sequence[str]) -> list[str]:
    if isinstance(names, str):
        raise TypeError("names must be a list of database names, not a string")
    result: list[str] = []
    for name in names:
        if not _NAME_RE.match(name):
            raise ProvisionError(
                f"invalid database name {name!r}: use letters, digits and underscores"
                " (63 characters at most, not starting with a digit)"
            )
        if name not in result:
            result.append(name)
    if not result:
        raise ProvisionError("no database name given")
    return result


def _current_os_user() -> str | None:
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return os.environ.get("USER") or None


def _stderr_fd() -> int:
    """A file descriptor for children's output, so that our stdout stays clean."""
    try:
        return sys.stderr.fileno()
    except (AttributeError, OSError, ValueError):
        return asyncio.subprocess.DEVNULL


async def _run(
    argv: Sequence[str],
    *,
    env: dict[str, str] | None = None,
    capture: bool = False,
    time_limit: float | None = None,
) -> tuple[int, str]:
    """Run a command; its output goes to stderr, or is captured and returned."""
    out = asyncio.subprocess.PIPE if capture else _stderr_fd()
    proc = await asyncio.create_subprocess_exec(
        *argv,
        stdin=asyncio.subprocess.DEVNULL,
        stdout=out,
        stderr=asyncio.subprocess.STDOUT if capture else out,
        env=env,
    )
    try:
        stdout, _ = await asyncio.wait_for(proc.communicate(), time_limit)
    except TimeoutError:
        proc.kill()
        await proc.wait()
        return 124, f"timed out after {time_limit:.0f} s"
    text = stdout.decode(errors="replace").strip() if stdout else ""
    return (proc.returncode if proc.returncode is not None else 1), text


async def _connect_maintenance(server: _Server) -> _Connection:
    """A connection to a database that always exists (``postgres``, else ``template1``)."""
    last: BaseException | None = None
    for database in _MAINTENANCE_DATABASES:
        try:
            return await server.connect(database)
        except asyncpg.InvalidCatalogNameError as exc:  # that database does not exist
            last = exc
    assert last is not None
    raise last


async def _missing_extensions(conn: _Connection) -> list[str]:
    rows = await conn.fetch(
        "SELECT name FROM pg_available_extensions WHERE name = ANY($1::text[])", list(EXTENSIONS)
    )
    available = {str(row["name"]) for row in rows}
    return [name for name in EXTENSIONS if name not in available]


def _can_apt_install() -> tuple[bool, str]:
    if not Path("/etc/debian_version").exists():
        return False, "this is not Debian, so nothing was installed"
    if not hasattr(os, "geteuid") or os.geteuid() != 0:
        return False, "not running as root, so nothing was installed"
    if shutil.which("apt-get") is None:
        return False, "apt-get was not found, so nothing was installed"
    return True, ""


async def _apt_install(package: str) -> bool:
    apt_get = shutil.which("apt-get")
    if apt_get is None:
        return False
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    lock = f"DPkg::Lock::Timeout={_APT_LOCK_TIMEOUT_S}"
    _log("apt-get update ...")
    rc, _ = await _run([apt_get, "-q", "-o", lock, "update"], env=env)
    if rc != 0:
        _log(f"apt-get update exited with {rc}; trying the install with the lists there are")
    _log(f"apt-get install {package} ...")
    rc, _ = await _run(
        [apt_get, "install", "-y", "-q", "--no-install-recommends", "-o", lock, package], env=env
    )
    if rc != 0:
        _log(f"apt-get install {package} exited with {rc}")
    return rc == 0


async def _ensure_extensions_available(
    conn: _Connection, server: _Server, *, allow_install: bool
) -> None:
    missing = await _missing_extensions(conn)
    if not missing:
        return
    major = int(str(await conn.fetchval("SHOW server_version_num"))) // 10000
    package = f"postgresql-{major}-postgis-3"
    _log(f"{server.label}: extension(s) {', '.join(missing)} not available")
    if "postgis" in missing and allow_install and server.is_local:
        can_install, why_not = _can_apt_install()
        if can_install:
            if await _apt_install(package):
                missing = await _missing_extensions(conn)
                if not missing:
                    _log(f"installed {package}")
                    return
        else:
            _log(why_not)
    hint = f"install the package {package} (Debian/Ubuntu: apt-get install {package})"
    if "postgis" not in missing:
        hint = f"install PostgreSQL {major}'s contrib extensions"
    raise _ServerUnusable(
        f"{server.label}: PostgreSQL {major} lacks the extension(s) {', '.join(missing)}; {hint}"
    )


async def _create_database(conn: _Connection, name: str, server: _Server) -> None:
    exists = await conn.fetchval("SELECT 1 FROM pg_database WHERE datname = $1", name)
    if exists:
        return
    encoding = await conn.fetchval(
        "SELECT pg_encoding_to_char(encoding) FROM pg_database WHERE datname = 'template1'"
    )
    statement = f"CREATE DATABASE {_quote_ident(name)}"
    if encoding != "UTF8":
        # A cluster made under a non-UTF-8 locale: ask for UTF-8 explicitly, with the C locale,
        # which goes with every encoding.
        statement += " TEMPLATE template0 ENCODING 'UTF8' LC_COLLATE 'C' LC_CTYPE 'C'"
    try:
        await conn.execute(statement)
    except asyncpg.DuplicateDatabaseError:
        return  # created meanwhile by a concurrent run
    except asyncpg.PostgresError as exc:
        raise _ServerUnusable(f"{server.label}: cannot create database {name!r}: {exc}") from exc
    _log(f"created database {name!r} on {server.label}")


async def _create_extensions(server: _Server, name: str) -> None:
    try:
        conn = await server.connect(name)
    except _CONNECT_ERRORS as exc:
        raise _ServerUnusable(f"{server.label}: cannot connect to {name!r}: {exc}") from exc
    try:
        for extension in EXTENSIONS:
            installed = await conn.fetchval(
                "SELECT 1 FROM pg_extension WHERE extname = $1", extension
            )
            if installed:
                continue
            try:
                await conn.execute(f"CREATE EXTENSION IF NOT EXISTS {_quote_ident(extension)}")
            except (asyncpg.UniqueViolationError, asyncpg.DuplicateObjectError):
                continue  # created meanwhile by a concurrent run
            except asyncpg.PostgresError as exc:
                raise _ServerUnusable(
                    f"{server.label}: cannot create extension {extension} in {name!r}: {exc}"
                ) from exc
            _log(f"created extension {extension} in {name!r}")
    finally:
        await conn.close()


async def _provision_on(
    server: _Server, names: list[str], *, allow_install: bool
) -> dict[str, str]:
    """Create the databases and extensions on a server that answers; raise _ServerUnusable."""
    try:
        conn = await _connect_maintenance(server)
    except _CONNECT_ERRORS as exc:
        raise _ServerUnusable(f"{server.label}: cannot connect: {exc}") from exc
    try:
        await _ensure_extensions_available(conn, server, allow_install=allow_install)
        for name in names:
            await _create_database(conn, name, server)
    finally:
        await conn.close()
    for name in names:
        await _create_extensions(server, name)
    return {name: server.url(name) for name in names}


async def _answers(server: _Server) -> BaseException | None:
    """None when the server accepts a connection, else the error."""
    try:
        conn = await _connect_maintenance(server)
    except _CONNECT_ERRORS as exc:
        return exc
    await conn.close()
    return None


async def _find_local_server(tried: list[str]) -> _Server | None:
    users = ["postgres"]
    me = _current_os_user()
    if me and me not in users:
        users.append(me)
    socket_file = Path(SOCKET_DIR) / f".s.PGSQL.{LOCAL_PORT}"
    for host in (SOCKET_DIR, LOCAL_TCP_HOST):
        if host == SOCKET_DIR and not socket_file.exists():
            tried.append(f"local PostgreSQL: no socket {socket_file}")
            continue
        for user in users:
            server = _local_server(host, user)
            error = await _answers(server)
            if error is not None:
                tried.append(f"local PostgreSQL, {server.label}: {error}".rstrip())
                continue
            if host == SOCKET_DIR:
                # Prefer a TCP URL in the output: every client and tool understands it.
                tcp = _local_server(LOCAL_TCP_HOST, user)
                if await _answers(tcp) is None:
                    return tcp
            return server
    return None


async def _docker_ready(tried: list[str]) -> str | None:
    """The docker executable when ``docker compose`` and a Docker engine are both there."""
    docker = shutil.which("docker")
    if docker is None:
        tried.append("Docker: the docker command was not found")
        return None
    rc, _ = await _run([docker, "compose", "version"], capture=True, time_limit=30)
    if rc != 0:
        tried.append("Docker: `docker compose version` failed (no Compose v2 plugin)")
        return None
    rc, _ = await _run([docker, "info"], capture=True, time_limit=30)
    if rc != 0:
        tried.append("Docker: `docker info` failed (no Docker engine answers)")
        return None
    return docker


async def _start_docker_server(docker: str) -> _Server:
    if not COMPOSE_FILE.exists():
        raise _ServerUnusable(f"Docker: {COMPOSE_FILE} not found")
    env = dict(os.environ)
    # Compose interpolates the whole file, and the api service requires a secret key that
    # starting the database alone does not need.
    env.setdefault("FIELDCRM_SECRET_KEY", "unused-when-only-starting-the-database-service")
    _log(f"starting the {DOCKER_SERVICE!r} service of {COMPOSE_FILE} ...")
    argv = [docker, "compose", "-f", str(COMPOSE_FILE), "up", "-d", "--wait", DOCKER_SERVICE]
    rc, _ = await _run(argv, env=env, time_limit=600)
    if rc != 0:
        raise _ServerUnusable(f"Docker: `{' '.join(argv[1:])}` exited with {rc}")
    server = _docker_server()
    loop = asyncio.get_running_loop()
    deadline = loop.time() + _DOCKER_READY_TIMEOUT_S
    while True:
        error = await _answers(server)
        if error is None:
            return server
        if loop.time() > deadline:
            raise _ServerUnusable(
                f"{server.label}: started but does not accept connections: {error}"
            )
        await asyncio.sleep(1.0)


def _failure_message(tried: list[str]) -> str:
    lines = ["no PostgreSQL server with PostGIS 3 could be found or set up.", "", "Tried:"]
    lines += [f"  - {item}" for item in tried]
    lines += [
        "",
        "Do one of these, then run this again:",
        "  - Install PostgreSQL with PostGIS 3 and start it; on Debian/Ubuntu:",
        "      sudo apt-get update",
        "      sudo apt-get install postgresql postgresql-15-postgis-3"
        "   (use your server's major version)",
        "      sudo pg_ctlcluster --skip-systemctl-redirect 15 main start"
        "   (or: sudo systemctl start postgresql)",
        "    and let user postgres connect without a password from this machine, or run as a",
        "    database superuser named like your OS user.",
        "  - Install Docker with the Compose v2 plugin, start the engine; `docker compose -f",
        f"    {COMPOSE_FILE} up -d --wait {DOCKER_SERVICE}` is then run for you.",
        "  - Point FIELDCRM_DATABASE_URL at a server you have, e.g.",
        "      export FIELDCRM_DATABASE_URL=postgresql+asyncpg://USER:PASSWORD@HOST:5432/fieldcrm",
        "    (the user must be able to create databases and the extensions "
        + ", ".join(EXTENSIONS)
        + ").",
    ]
    return "\n".join(lines)


async def ensure_databases(names: list[str], *, allow_install: bool = True) -> dict[str, str]:
    """Make sure each database exists with the extensions; return name -> SQLAlchemy URL.

    See the module docstring for where the server comes from. ``allow_install=False`` never
    runs apt-get. Raises :class:`ProvisionError` when no usable server is found.
    """
    wanted = _validate_names(names)
    env_url = os.environ.get("FIELDCRM_DATABASE_URL", "").strip()
    if env_url:
        server = _server_from_url(env_url)
        _log(f"using the server of FIELDCRM_DATABASE_URL for {', '.join(wanted)}")
        try:
            return await _provision_on(server, wanted, allow_install=allow_install)
        except _ServerUnusable as exc:
            raise ProvisionError(
                f"{exc}\n(FIELDCRM_DATABASE_URL is set, so nothing else was tried)"
            ) from exc

    tried: list[str] = []
    local = await _find_local_server(tried)
    if local is not None:
        _log(f"using the local server ({local.label})")
        try:
            return await _provision_on(local, wanted, allow_install=allow_install)
        except _ServerUnusable as exc:
            tried.append(str(exc))
            _log(f"{exc}; trying Docker next")

    docker = await _docker_ready(tried)
    if docker is not None:
        try:
            server = await _start_docker_server(docker)
            return await _provision_on(server, wanted, allow_install=False)
        except _ServerUnusable as exc:
            tried.append(str(exc))

    raise ProvisionError(_failure_message(tried))


def main(argv: Sequence[str] | None = None) -> int:
    """Command line entry point; returns the process exit status."""
    parser = argparse.ArgumentParser(
        prog="python -m backend.db.provision",
        description=(
            "Make sure PostgreSQL databases with PostGIS, pg_trgm and btree_gist exist;"
            " print NAME=URL for each on stdout."
        ),
    )
    parser.add_argument("names", nargs="+", metavar="NAME", help="database name")
    parser.add_argument(
        "--no-install", action="store_true", help="never install PostGIS with apt-get"
    )
    args = parser.parse_args(argv)
    names: list[str] = list(args.names)
    try:
        urls = asyncio.run(ensure_databases(names, allow_install=not args.no_install))
    except ProvisionError as exc:
        print(f"provision: error: {exc}", file=sys.stderr)
        return 1
    for name, url in urls.items():
        print(f"{name}={url}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
