"""Engine and session wiring. One transaction per request or job, opened at the boundary."""

from __future__ import annotations

from collections.abc import AsyncIterator

from litestar.datastructures import State
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)

from backend.config import Settings


def make_engine(settings: Settings) -> AsyncEngine:
    """An asyncpg engine with a bounded pool; JIT off because our queries are short.

    No pre-ping: it costs a round trip on every checkout (two per request); connections are
    recycled hourly instead and a dead one fails that one request."""
    return create_async_engine(
        settings.database_url,
        pool_size=settings.db_pool_size,
        max_overflow=settings.db_pool_size,
        pool_recycle=3600,
        connect_args={"server_settings": {"jit": "off", "application_name": "fieldcrm"}},
    )


def make_sessionmaker(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    """Sessions that keep loaded objects usable after commit."""
    return async_sessionmaker(engine, expire_on_commit=False, autoflush=False)


async def provide_db_session(state: State) -> AsyncIterator[AsyncSession]:
    """Litestar dependency: a session inside one transaction, committed when the handler
    returns and rolled back when it raises."""
    sessionmaker: async_sessionmaker[AsyncSession] = state.sessionmaker
    async with sessionmaker() as session, session.begin():
        yield session
