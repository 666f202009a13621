"""Fixed-window rate limits kept in PostgreSQL, so every API process shares them.

The table is UNLOGGED (nothing to recover after a crash: the windows are seconds long) and each
check is one upsert. Old windows are removed by ``purge_expired`` (run by the worker).
"""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import DateTime, Integer, String, delete
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession
from sqlalchemy.orm import Mapped, mapped_column

from backend.db.base import Base


class RateLimitWindow(Base):
    """How many hits ``key`` had in the window starting at ``window_start``."""

    __tablename__ = "rate_limit_windows"
    __table_args__ = {"prefixes": ["UNLOGGED"]}

    key: Mapped[str] = mapped_column(String(200), primary_key=True)
    window_start: Mapped[datetime] = mapped_column(DateTime(timezone=True), primary_key=True)
    hits: Mapped[int] = mapped_column(Integer, nullable=False)


def window_start(now: datetime, window: timedelta) -> datetime:
    """The start of the fixed window containing ``now``."""
    seconds = int(window.total_seconds())
    epoch = int(now.timestamp())
    return datetime.fromtimestamp(epoch - epoch % seconds, tz=now.tzinfo)


async def hit(
    session: AsyncSession, key: str, *, now: datetime, limit: int, window: timedelta
) -> bool:
    """Count one hit for ``key``; True while the window's count stays within ``limit``.

    The hit is committed at once in a transaction of its own: it counts even when the request
    fails later, and requests with the same key never wait for each other's transactions. (On a
    session bound to one connection, as in tests, it joins the caller's transaction.)"""
    stmt = (
        insert(RateLimitWindow)
        .values(key=key, window_start=window_start(now, window), hits=1)
        .on_conflict_do_update(
            index_elements=[RateLimitWindow.key, RateLimitWindow.window_start],
            set_={"hits": RateLimitWindow.hits + 1},
        )
        .returning(RateLimitWindow.hits)
    )
    bind = session.bind
    if isinstance(bind, AsyncEngine):
        async with bind.begin() as connection:
            hits: int = (await connection.execute(stmt)).scalar_one()
    else:
        hits = (await session.execute(stmt)).scalar_one()
    return hits <= limit


async def purge_expired(session: AsyncSession, *, now: datetime, older_than: timedelta) -> int:
    """Delete windows that started before ``now - older_than``; returns how many."""
    result = await session.execute(
        delete(RateLimitWindow).where(RateLimitWindow.window_start < now - older_than)
    )
    return int(getattr(result, "rowcount", 0) or 0)
