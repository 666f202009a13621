"""Browser tests: Playwright driving Debian's Chromium against the real app.

The app runs under uvicorn in a thread on its own committed database (the normal test database's
name + ``_browser``, rebuilt from the migrations once per run), with the wall clock: a browser
needs a real server, so these tests cannot use the rolled-back transaction of the other tests.
Each test gets its own organisation (``bworld``), so tests stay independent and run in any order.

Chromium comes from Debian (``/usr/bin/chromium``; ``scripts/bootstrap.sh`` installs it when
root). Without it the tests are skipped with a message — except in CI, where that is a failure.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import socket
import threading
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest
import uvicorn
from playwright.async_api import Browser, BrowserContext, Playwright, async_playwright
from sqlalchemy import text
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker, create_async_engine
from sqlalchemy.pool import NullPool

from backend.accounts.models import Organization, Role, Team, TeamMember, User
from backend.accounts.security import mint_access_token
from backend.app import create_app
from backend.config import Settings
from backend.db.migrate import upgrade
from backend.seed.pipeline import WindowPipeline, seed_window_pipeline
from tests.conftest import SECRET_KEY, _test_database_url, customer_body

CHROMIUM = os.environ.get("FIELDCRM_CHROMIUM", "/usr/bin/chromium")
KAZAN = {"latitude": 55.7961, "longitude": 49.1064, "accuracy": 8}
PHONE = {"width": 390, "height": 844}
DESKTOP = {"width": 1280, "height": 800}


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Every test under tests/browser/ is a browser test."""
    here = Path(__file__).parent
    for item in items:
        if here in Path(str(item.fspath)).parents:
            item.add_marker(pytest.mark.browser)


def _require_chromium() -> None:
    if Path(CHROMIUM).exists():
        return
    message = (
        f"Chromium not found at {CHROMIUM}: install Debian's chromium package "
        "(`sudo apt-get install chromium`; `make test` does it when run as root) "
        "or set FIELDCRM_CHROMIUM to a Chromium binary"
    )
    if os.environ.get("CI") in {"true", "1"}:
        pytest.fail(message)
    pytest.skip(message)


def _browser_database_url() -> str:
    """The test database's server, database name + ``_browser``; created when missing."""
    base = make_url(_test_database_url())
    name = f"{base.database}_browser"

    async def create() -> None:
        engine = create_async_engine(base, poolclass=NullPool, isolation_level="AUTOCOMMIT")
        async with engine.connect() as conn:
            exists = await conn.scalar(
                text("SELECT 1 FROM pg_database WHERE datname = :name"), {"name": name}
            )
            if not exists:
                await conn.execute(text(f'CREATE DATABASE "{name}"'))
        await engine.dispose()
        engine = create_async_engine(base.set(database=name), poolclass=NullPool)
        async with engine.begin() as conn:
            await conn.execute(text("DROP SCHEMA IF EXISTS public CASCADE"))
            await conn.execute(text("CREATE SCHEMA public"))
            for extension in ("postgis", "pg_trgm", "btree_gist"):
                await conn.execute(text(f"CREATE EXTENSION IF NOT EXISTS {extension}"))
        await engine.dispose()

    asyncio.run(create())
    url = base.set(database=name).render_as_string(hide_password=False)
    upgrade(url)
    return url


@dataclass
class LiveServer:
    """The app on a real port, and sessions on its database."""

    url: str
    database_url: str
    settings: Settings
    sessionmaker: async_sessionmaker[AsyncSession]

    def token(self, user: User) -> str:
        """A bearer token for ``user`` (for API calls that arrange data)."""
        return mint_access_token(
            user_id=user.id,
            organization_id=user.organization_id,
            token_version=user.token_version,
            now=datetime.now(UTC),
            ttl_s=self.settings.access_token_ttl_s,
            secret_key=self.settings.secret_key,
        )

    def api(self, user: User) -> httpx.AsyncClient:
        """An HTTP client on the live server authenticated as ``user``."""
        return httpx.AsyncClient(
            base_url=self.url,
            headers={"Authorization": f"Bearer {self.token(user)}"},
            timeout=30,
        )


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@pytest.fixture(scope="session")
def live_server_settings(tmp_path_factory: pytest.TempPathFactory) -> Settings:
    _require_chromium()
    return Settings(
        database_url=_browser_database_url(),
        secret_key=SECRET_KEY,
        env="test",
        cookie_secure=False,
        log_json=False,
        files_dir=str(tmp_path_factory.mktemp("browser-files")),
        lead_rate_per_minute=1000,
    )


@pytest.fixture(scope="session")
async def live(live_server_settings: Settings) -> AsyncIterator[LiveServer]:
    """The real app under uvicorn in a thread (its own event loop), wall clock."""
    settings = live_server_settings
    port = _free_port()
    config = uvicorn.Config(
        create_app(settings), host="127.0.0.1", port=port, log_level="warning", lifespan="on"
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, name="live-app", daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError("the live app did not start")
        await asyncio.sleep(0.05)
    engine = create_async_engine(settings.database_url, pool_size=2)
    try:
        yield LiveServer(
            url=f"http://127.0.0.1:{port}",
            database_url=settings.database_url,
            settings=settings,
            sessionmaker=async_sessionmaker(engine, expire_on_commit=False),
        )
    finally:
        await engine.dispose()
        server.should_exit = True
        thread.join(timeout=10)


@dataclass
class BrowserWorld:
    """A committed organisation of its own for one browser test."""

    org: Organization
    admin: User
    manager: User
    measurer: User
    installer: User
    team: Team
    pipeline: WindowPipeline
    customer_id: uuid.UUID


@pytest.fixture
async def bworld(live: LiveServer, password_hash: str) -> BrowserWorld:
    """The window company in miniature: pipeline and automations, four people, a team led by
    the manager with the measurer and installer, and one customer with a site in Kazan."""
    suffix = uuid.uuid4().hex[:8]
    async with live.sessionmaker() as session, session.begin():
        org = Organization(
            id=uuid.uuid4(),
            name=f"Browser Windows {suffix}",
            time_zone="Europe/Moscow",
            currency="RUB",
            locale="en-GB",
            payment_details={
                "recipient": "Browser Windows",
                "bankName": "Test Bank",
                "accountNumber": "40702810000000000001",
            },
        )
        session.add(org)
        await session.flush()

        def person(role: Role, name: str, skills: list[str]) -> User:
            user = User(
                id=uuid.uuid4(),
                organization_id=org.id,
                email=f"{name.split()[0].lower()}-{suffix}@browser.test",
                password_hash=password_hash,
                full_name=name,
                role=role,
                skills=skills,
                time_zone=org.time_zone,
                is_active=True,
                token_version=1,
            )
            session.add(user)
            return user

        admin = person(Role.ADMIN, "Anna Admin", [])
        manager = person(Role.MANAGER, "Maria Manager", [])
        measurer = person(Role.FIELD, "Igor Measurer", ["measurer"])
        installer = person(Role.FIELD, "Oleg Installer", ["installer"])
        await session.flush()
        team = Team(id=uuid.uuid4(), organization_id=org.id, name="Field team", lead_id=manager.id)
        session.add(team)
        await session.flush()
        for member in (measurer, installer):
            session.add(TeamMember(team_id=team.id, user_id=member.id, organization_id=org.id))
        pipeline = await seed_window_pipeline(session, org)
    async with live.api(manager) as api:
        response = await api.post(
            "/api/v1/customers", json=customer_body("Petrov Ivan", owner_id=manager.id)
        )
        assert response.status_code == 201, response.text
        customer_id = uuid.UUID(response.json()["id"])
    return BrowserWorld(org, admin, manager, measurer, installer, team, pipeline, customer_id)


@pytest.fixture(scope="session")
async def playwright_instance(live: LiveServer) -> AsyncIterator[Playwright]:
    async with async_playwright() as instance:
        yield instance


@pytest.fixture(scope="session")
async def browser(playwright_instance: Playwright) -> AsyncIterator[Browser]:
    """Headless Debian Chromium; Playwright downloads nothing."""
    chromium = await playwright_instance.chromium.launch(
        executable_path=shutil.which(CHROMIUM) or CHROMIUM,
        headless=True,
        args=["--no-sandbox", "--disable-dev-shm-usage"],
    )
    yield chromium
    await chromium.close()


async def _context(
    browser: Browser, live: LiveServer, *, mobile: bool
) -> AsyncIterator[BrowserContext]:
    context = await browser.new_context(
        viewport=PHONE if mobile else DESKTOP,
        is_mobile=mobile,
        has_touch=mobile,
        base_url=live.url,
        permissions=["geolocation"],
        geolocation=KAZAN,
        locale="en-GB",
        timezone_id="Europe/Moscow",
    )
    context.set_default_timeout(10_000)
    yield context
    await context.close()


@pytest.fixture
async def phone(browser: Browser, live: LiveServer) -> AsyncIterator[BrowserContext]:
    """A phone: 390×844, touch, geolocation allowed (Kazan centre, 8 m)."""
    async for context in _context(browser, live, mobile=True):
        yield context


@pytest.fixture
async def desktop(browser: Browser, live: LiveServer) -> AsyncIterator[BrowserContext]:
    """A desktop browser: 1280×800, geolocation allowed."""
    async for context in _context(browser, live, mobile=False):
        yield context
