"""``Idempotency-Key`` for unsafe requests that phones retry.

The first request with a key stores its answer (status + JSON body) in the same transaction as
its effects; a retry with the same key and the same body gets that answer again without redoing
anything; the same key with another body is a 409. Keys are per user. Two concurrent requests
with one key: the second waits on the unique index and then sees the first's answer (or, if the
first rolled back, proceeds itself).
"""

from __future__ import annotations

import hashlib
import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import DateTime, ForeignKey, Index, Integer, String, delete, select
from sqlalchemy.dialects.postgresql import JSONB, UUID, insert
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Mapped, mapped_column

from backend.db.base import Base, IdMixin
from backend.lib.errors import Conflict, InvalidInput

MAX_KEY_LENGTH = 200


class IdempotentRequest(Base, IdMixin):
    """A stored answer to a request made with an ``Idempotency-Key``."""

    __tablename__ = "idempotent_requests"

    organization_id: Mapped[uuid.UUID] = mapped_column(
        UUID(as_uuid=True), ForeignKey("organizations.id", ondelete="CASCADE"), nullable=False
    )
    user_id: Mapped[uuid.UUID] = mapped_column(
        UUID(as_uuid=True), ForeignKey("users.id", ondelete="CASCADE"), nullable=False
    )
    scope: Mapped[str] = mapped_column(String(100), nullable=False)
    key: Mapped[str] = mapped_column(String(MAX_KEY_LENGTH), nullable=False)
    request_hash: Mapped[str] = mapped_column(String(64), nullable=False)
    status: Mapped[int | None] = mapped_column(Integer)
    response: Mapped[Any | None] = mapped_column(JSONB, nullable=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False)

    __table_args__ = (
        Index("uq_idempotent_requests_user_scope_key", "user_id", "scope", "key", unique=True),
        Index("ix_idempotent_requests_created", "created_at"),
    )


def body_hash(body: bytes) -> str:
    """SHA-256 hex of the raw request body."""
    return hashlib.sha256(body).hexdigest()


def check_key(key: str) -> str:
    """A usable key: 1 to 200 visible ASCII characters."""
    key = key.strip()
    if not key or len(key) > MAX_KEY_LENGTH or not key.isascii() or not key.isprintable():
        raise InvalidInput.on("Idempotency-Key", "1 to 200 printable ASCII characters")
    return key


async def claim(
    session: AsyncSession,
    *,
    organization_id: uuid.UUID,
    user_id: uuid.UUID,
    scope: str,
    key: str,
    request_hash: str,
    now: datetime,
) -> tuple[int, Any] | None:
    """Reserve ``key`` for this request, or return the stored ``(status, body)`` of an earlier
    request with the same key and body. 409 when the key was used with another body."""
    inserted = await session.scalar(
        insert(IdempotentRequest)
        .values(
            organization_id=organization_id,
            user_id=user_id,
            scope=scope,
            key=key,
            request_hash=request_hash,
            created_at=now,
        )
        .on_conflict_do_nothing(
            index_elements=[
                IdempotentRequest.user_id,
                IdempotentRequest.scope,
                IdempotentRequest.key,
            ]
        )
        .returning(IdempotentRequest.id)
    )
    if inserted is not None:
        return None
    row = (
        await session.execute(
            select(
                IdempotentRequest.request_hash, IdempotentRequest.status, IdempotentRequest.response
            ).where(
                IdempotentRequest.user_id == user_id,
                IdempotentRequest.scope == scope,
                IdempotentRequest.key == key,
            )
        )
    ).one()
    if row.request_hash != request_hash:
        raise Conflict(
            "This Idempotency-Key was used for a different request",
            errors=[],
        )
    return int(row.status or 200), row.response


async def store(
    session: AsyncSession, *, user_id: uuid.UUID, scope: str, key: str, status: int, body: Any
) -> None:
    """Record the answer of the request that claimed ``key`` (same transaction)."""
    from sqlalchemy import update

    await session.execute(
        update(IdempotentRequest)
        .where(
            IdempotentRequest.user_id == user_id,
            IdempotentRequest.scope == scope,
            IdempotentRequest.key == key,
        )
        .values(status=status, response=body)
    )


async def purge_older_than(session: AsyncSession, moment: datetime) -> int:
    """Forget keys created before ``moment`` (the worker keeps a day)."""
    result = await session.execute(
        delete(IdempotentRequest).where(IdempotentRequest.created_at < moment)
    )
    return int(getattr(result, "rowcount", 0) or 0)
