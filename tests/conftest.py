"""Test fixtures: a real PostGIS database whose schema is built by the Alembic migrations, and
each test inside a transaction that is rolled back, with the real ASGI app bound to it.

The database comes from FIELDCRM_TEST_DATABASE_URL (set by `make test`), or is provisioned on
the local server by backend.db.provision.
"""

from __future__ import annotations

import asyncio
import os
import uuid
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest
from litestar import Litestar
from sqlalchemy import text
from sqlalchemy.ext.asyncio import (
    AsyncConnection,
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)
from sqlalchemy.pool import NullPool

from backend.accounts.models import Organization, Role, Team, TeamMember, User
from backend.accounts.security import hash_password, mint_access_token
from backend.app import create_app
from backend.config import Settings
from backend.db.migrate import upgrade
from backend.lib.clock import FrozenClock

pytest_plugins = ["tests.delivery"]

PASSWORD = "correct-horse-battery"
SECRET_KEY = "test-secret-key-" + "x" * 40
START = datetime(2026, 11, 24, 9, 0, tzinfo=UTC)


def _test_database_url() -> str:
    url = os.environ.get("FIELDCRM_TEST_DATABASE_URL")
    if url:
        return url
    from backend.db.provision import ensure_databases

    return asyncio.run(ensure_databases(["fieldcrm_test"]))["fieldcrm_test"]


@pytest.fixture(scope="session")
def database_url() -> str:
    """A fresh schema, built by running every migration."""
    url = _test_database_url()

    async def reset() -> None:
        engine = create_async_engine(url, poolclass=NullPool)
        async with engine.begin() as conn:
            await conn.execute(text("DROP SCHEMA IF EXISTS public CASCADE"))
            await conn.execute(text("CREATE SCHEMA public"))
            await conn.execute(text("CREATE EXTENSION IF NOT EXISTS postgis"))
            await conn.execute(text("CREATE EXTENSION IF NOT EXISTS pg_trgm"))
        await engine.dispose()

    asyncio.run(reset())
    upgrade(url)
    return url


@pytest.fixture(scope="session")
async def engine(database_url: str) -> AsyncIterator[AsyncEngine]:
    engine = create_async_engine(database_url, pool_size=2)
    yield engine
    await engine.dispose()


@pytest.fixture(scope="session")
def password_hash() -> str:
    """One argon2 hash reused by every test user (hashing is slow on purpose)."""
    return hash_password(PASSWORD)


@pytest.fixture
async def connection(engine: AsyncEngine) -> AsyncIterator[AsyncConnection]:
    """A connection inside a transaction that is rolled back after the test."""
    async with engine.connect() as conn:
        transaction = await conn.begin()
        yield conn
        await transaction.rollback()


@pytest.fixture
def sessionmaker(connection: AsyncConnection) -> async_sessionmaker[AsyncSession]:
    """Sessions that join the test transaction: their commits become savepoints."""
    return async_sessionmaker(
        bind=connection,
        expire_on_commit=False,
        autoflush=False,
        join_transaction_mode="create_savepoint",
    )


@pytest.fixture
async def session(sessionmaker: async_sessionmaker[AsyncSession]) -> AsyncIterator[AsyncSession]:
    """A session for arranging data and checking state."""
    async with sessionmaker() as s:
        yield s


@pytest.fixture
def settings(database_url: str, tmp_path: Path) -> Settings:
    return Settings(
        database_url=database_url,
        secret_key=SECRET_KEY,
        env="test",
        cookie_secure=False,
        log_json=False,
        files_dir=str(tmp_path / "files"),
    )


@pytest.fixture
def clock() -> FrozenClock:
    return FrozenClock(START)


@pytest.fixture
def app(
    settings: Settings, clock: FrozenClock, sessionmaker: async_sessionmaker[AsyncSession]
) -> Litestar:
    return create_app(settings, clock=clock, sessionmaker=sessionmaker)


@pytest.fixture
async def client(app: Litestar) -> AsyncIterator[httpx.AsyncClient]:
    """The real ASGI app, called in the test's own event loop (the app shares its connection)."""
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as c:
        yield c


@dataclass
class World:
    """An organisation with an admin, two teams (manager + field staff each) and helpers."""

    org: Organization
    admin: User
    manager_a: User
    manager_b: User
    measurer_a: User
    installer_a: User
    installer_b: User
    team_a: Team
    team_b: Team


class Factory:
    """Creates rows directly in the test transaction."""

    def __init__(
        self, session: AsyncSession, password_hash: str, settings: Settings, clock: FrozenClock
    ) -> None:
        self.session = session
        self.password_hash = password_hash
        self.settings = settings
        self.clock = clock

    async def org(self, name: str = "Acme Windows", **kw: object) -> Organization:
        org = Organization(
            id=uuid.uuid4(),
            name=name,
            time_zone=kw.get("time_zone", "Europe/Moscow"),
            currency=kw.get("currency", "RUB"),
            locale=kw.get("locale", "ru-RU"),
            payment_details={
                "recipient": name,
                "bankName": "Test Bank",
                "accountNumber": "40702810000000000001",
            },
        )
        self.session.add(org)
        await self.session.flush()
        return org

    async def user(
        self,
        org: Organization,
        role: Role,
        *,
        skills: list[str] | None = None,
        name: str | None = None,
    ) -> User:
        uid = uuid.uuid4()
        user = User(
            id=uid,
            organization_id=org.id,
            email=f"{role.value}-{uid.hex[:8]}@example.test",
            password_hash=self.password_hash,
            full_name=name or f"{role.value.title()} {uid.hex[:4]}",
            role=role,
            skills=skills or [],
            time_zone=org.time_zone,
            is_active=True,
            token_version=1,
        )
        self.session.add(user)
        await self.session.flush()
        return user

    async def team(self, org: Organization, name: str, lead: User, members: list[User]) -> Team:
        team = Team(id=uuid.uuid4(), organization_id=org.id, name=name, lead_id=lead.id)
        self.session.add(team)
        await self.session.flush()
        for m in members:
            self.session.add(TeamMember(team_id=team.id, user_id=m.id, organization_id=org.id))
        await self.session.flush()
        return team

    def token(self, user: User) -> str:
        return mint_access_token(
            user_id=user.id,
            organization_id=user.organization_id,
            token_version=user.token_version,
            now=self.clock.now(),
            ttl_s=self.settings.access_token_ttl_s,
            secret_key=self.settings.secret_key,
        )

    def auth(self, user: User) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token(user)}"}

    async def world(self, name: str = "Acme Windows") -> World:
        org = await self.org(name)
        admin = await self.user(org, Role.ADMIN, name="Ada Admin")
        manager_a = await self.user(org, Role.MANAGER, name="Mark Manager")
        manager_b = await self.user(org, Role.MANAGER, name="Mona Manager")
        measurer_a = await self.user(org, Role.FIELD, skills=["measurer"], name="Max Measurer")
        installer_a = await self.user(org, Role.FIELD, skills=["installer"], name="Igor Installer")
        installer_b = await self.user(org, Role.FIELD, skills=["installer"], name="Ivan Installer")
        team_a = await self.team(org, "Team A", manager_a, [measurer_a, installer_a])
        team_b = await self.team(org, "Team B", manager_b, [installer_b])
        await self.session.commit()
        return World(
            org, admin, manager_a, manager_b, measurer_a, installer_a, installer_b, team_a, team_b
        )


@pytest.fixture
def factory(
    session: AsyncSession, password_hash: str, settings: Settings, clock: FrozenClock
) -> Factory:
    return Factory(session, password_hash, settings, clock)


def customer_body(
    name: str = "Ivanov Petr", *, owner_id: uuid.UUID | None = None, **extra: object
) -> dict[str, object]:
    """A valid customer creation body with one contact and one site in Kazan."""
    body: dict[str, object] = {
        "kind": "person",
        "name": name,
        "contacts": [{"name": name, "phone": "+7 912 345-67-89", "email": "petr@example.ru"}],
        "sites": [
            {
                "address": "Kazan, Bauman St 1",
                "lat": 55.7887,
                "lon": 49.1221,
                "accessNotes": "gate code 12",
            }
        ],
    }
    if owner_id is not None:
        body["ownerId"] = str(owner_id)
    body.update(extra)
    return body


@asynccontextmanager
async def unreachable_first(
    sessionmaker: async_sessionmaker[AsyncSession], failures: int
) -> AsyncIterator[Callable[[], AsyncSession]]:
    """A session factory whose first ``failures`` sessions talk to no server (connection
    refused, as when PostgreSQL is down), then ``sessionmaker``'s."""
    nowhere = create_async_engine("postgresql+asyncpg://postgres@127.0.0.1:1/none")
    broken = async_sessionmaker(nowhere)
    left = [failures]

    def next_session() -> AsyncSession:
        if left[0] > 0:
            left[0] -= 1
            return broken()
        return sessionmaker()

    try:
        yield next_session
    finally:
        await nowhere.dispose()
