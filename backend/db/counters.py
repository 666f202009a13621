"""Per-organisation counters (document numbers, round-robin positions), one row per name.

``next_value`` is a single upsert: concurrent callers serialise on the row and each gets a
distinct value; the row lock is held until the caller's transaction ends.
"""

from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy import BigInteger, ForeignKey, String
from sqlalchemy.dialects.postgresql import UUID, insert
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession
from sqlalchemy.orm import Mapped, mapped_column
from sqlalchemy.sql.dml import ReturningInsert

from backend.db.base import Base


class Counter(Base):
    """The last value handed out for ``name`` in an organisation."""

    __tablename__ = "counters"

    organization_id: Mapped[uuid.UUID] = mapped_column(
        UUID(as_uuid=True), ForeignKey("organizations.id", ondelete="CASCADE"), primary_key=True
    )
    name: Mapped[str] = mapped_column(String(100), primary_key=True)
    value: Mapped[int] = mapped_column(BigInteger, nullable=False)


def _next_stmt(organization_id: uuid.UUID, name: str) -> ReturningInsert[Any]:
    return (
        insert(Counter)
        .values(organization_id=organization_id, name=name, value=1)
        .on_conflict_do_update(
            index_elements=[Counter.organization_id, Counter.name],
            set_={"value": Counter.value + 1},
        )
        .returning(Counter.value)
    )


async def next_value(session: AsyncSession, organization_id: uuid.UUID, name: str) -> int:
    """The next value of the counter (1 on first use), in the caller's transaction: gapless,
    but the row stays locked until that transaction ends (use for document numbers)."""
    value: int = (await session.execute(_next_stmt(organization_id, name))).scalar_one()
    return value


async def next_value_committed(session: AsyncSession, organization_id: uuid.UUID, name: str) -> int:
    """The next value, taken in a transaction of its own that commits at once, so concurrent
    callers never wait for each other's (long) transactions; a rolled-back caller leaves a gap.
    For round robin. When the session is bound to a single connection (tests), it runs in the
    caller's transaction instead."""
    bind = session.bind
    if isinstance(bind, AsyncEngine):
        async with bind.begin() as connection:
            value: int = (await connection.execute(_next_stmt(organization_id, name))).scalar_one()
            return value
    return await next_value(session, organization_id, name)
