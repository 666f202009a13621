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
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import msgspec
from sqlalchemy import DateTime, ForeignKey, Index, Integer, String, delete, text
from sqlalchemy.dialects.postgresql import JSONB, UUID
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Mapped, mapped_column

from backend.db.base import Base, IdMixin
from backend.lib.errors import Conflict, InvalidInput

MAX_KEY_LENGTH = 200
_JSON = msgspec.json.Encoder()


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


@dataclass(frozen=True, slots=True)
class Claim:
    """A request that wants ``key`` for itself."""

    organization_id: uuid.UUID
    user_id: uuid.UUID
    scope: str
    key: str
    request_hash: str
    now: datetime


# An earlier request's answer, (status, body); or Conflict when the key was used for another
# body; None when the key is now this request's.
Claimed = tuple[int, Any] | Conflict | None

_CLAIM = text("""
INSERT INTO idempotent_requests (id, organization_id, user_id, scope, key, request_hash,
                                 created_at)
SELECT gen_random_uuid(), c.org, c.usr, c.scope, c.key, c.hash, c.at
FROM unnest(CAST(:orgs AS uuid[]), CAST(:users AS uuid[]), CAST(:scopes AS text[]),
            CAST(:keys AS text[]), CAST(:hashes AS text[]), CAST(:ats AS timestamptz[]))
     AS c(org, usr, scope, key, hash, at)
ON CONFLICT (user_id, scope, key) DO NOTHING
RETURNING user_id, scope, key
""")
_EARLIER = text("""
SELECT r.user_id, r.scope, r.key, r.request_hash, r.status, r.response
FROM idempotent_requests r
JOIN unnest(CAST(:users AS uuid[]), CAST(:scopes AS text[]), CAST(:keys AS text[]))
     AS c(usr, scope, key) ON (r.user_id, r.scope, r.key) = (c.usr, c.scope, c.key)
""")
_STORE = text("""
UPDATE idempotent_requests r SET status = a.status, response = CAST(a.body AS jsonb)
FROM unnest(CAST(:users AS uuid[]), CAST(:scopes AS text[]), CAST(:keys AS text[]),
            CAST(:statuses AS int[]), CAST(:bodies AS text[])) AS a(usr, scope, key, status, body)
WHERE (r.user_id, r.scope, r.key) = (a.usr, a.scope, a.key)
""")


async def claim_many(session: AsyncSession, claims: list[Claim]) -> list[Claimed]:
    """Reserve each claim's key for its request (two statements for all), or say what an
    earlier request with that key got. The claims must name distinct (user, scope, key)."""
    if len({(c.user_id, c.scope, c.key) for c in claims}) != len(claims):
        raise ValueError("claim_many: one key twice")
    if not claims:
        return []
    rows = await session.execute(
        _CLAIM,
        {
            "orgs": [c.organization_id for c in claims],
            "users": [c.user_id for c in claims],
            "scopes": [c.scope for c in claims],
            "keys": [c.key for c in claims],
            "hashes": [c.request_hash for c in claims],
            "ats": [c.now for c in claims],
        },
    )
    mine = {(r.user_id, r.scope, r.key) for r in rows}
    taken = [c for c in claims if (c.user_id, c.scope, c.key) not in mine]
    earlier: dict[tuple[uuid.UUID, str, str], Any] = {}
    if taken:
        found = await session.execute(
            _EARLIER,
            {
                "users": [c.user_id for c in taken],
                "scopes": [c.scope for c in taken],
                "keys": [c.key for c in taken],
            },
        )
        earlier = {(r.user_id, r.scope, r.key): r for r in found}
    out: list[Claimed] = []
    for c in claims:
        row = earlier.get((c.user_id, c.scope, c.key))
        if row is None:
            out.append(None)
        elif row.request_hash != c.request_hash:
            out.append(Conflict("This Idempotency-Key was used for a different request", errors=[]))
        else:
            out.append((int(row.status or 200), row.response))
    return out


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
    (claimed,) = await claim_many(
        session, [Claim(organization_id, user_id, scope, key, request_hash, now)]
    )
    if isinstance(claimed, Conflict):
        raise claimed
    return claimed


async def store_many(
    session: AsyncSession, answers: list[tuple[uuid.UUID, str, str, int, Any]]
) -> None:
    """Record the answers ``(user_id, scope, key, status, body)`` of requests that claimed
    their keys (same transaction), with one statement."""
    if not answers:
        return
    await session.execute(
        _STORE,
        {
            "users": [a[0] for a in answers],
            "scopes": [a[1] for a in answers],
            "keys": [a[2] for a in answers],
            "statuses": [a[3] for a in answers],
            "bodies": [_JSON.encode(a[4]).decode() for a in answers],
        },
    )


async def store(
    session: AsyncSession, *, user_id: uuid.UUID, scope: str, key: str, status: int, body: Any
) -> None:
    """Record the answer of the request that claimed ``key`` (same transaction)."""
    await store_many(session, [(user_id, scope, key, status, body)])


async def purge_older_than(session: AsyncSession, moment: datetime) -> int:
    """Forget keys created before ``moment`` (the worker keeps a day)."""
    result = await session.execute(
        delete(IdempotentRequest).where(IdempotentRequest.created_at < moment)
    )
    return int(getattr(result, "rowcount", 0) or 0)
