"""Public links in customer messages: tracking, feedback and unsubscribe.

A link's token is ``secrets.token_urlsafe(32)`` (256 random bits); only its SHA-256 is stored,
so the table cannot be turned back into working links. A link works until ``expires_at`` and
unless revoked; what a link shows also depends on its visit (``backend.notifications.customer
.public``).
"""

from __future__ import annotations

import hashlib
import re
import secrets
import uuid
from datetime import datetime

from sqlalchemy import delete, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from backend.notifications.customer.models import CustomerLink, LinkPurpose

TOKEN_BYTES = 32
# token_urlsafe(32) is 43 characters of the URL-safe base64 alphabet.
_TOKEN_SHAPE = re.compile(r"^[A-Za-z0-9_-]{43}$")

PATHS = {
    LinkPurpose.TRACKING: "/t/",
    LinkPurpose.FEEDBACK: "/feedback/",
    LinkPurpose.UNSUBSCRIBE: "/u/",
}


def hash_token(token: str) -> str:
    """The stored form of a token."""
    return hashlib.sha256(token.encode("ascii", "replace")).hexdigest()


def url_of(base_url: str, purpose: LinkPurpose, token: str) -> str:
    """The absolute URL of a link."""
    return f"{base_url.rstrip('/')}{PATHS[purpose]}{token}"


async def create_link(
    session: AsyncSession,
    *,
    organization_id: uuid.UUID,
    purpose: LinkPurpose,
    now: datetime,
    expires_at: datetime,
    task_id: uuid.UUID | None = None,
    channel: str | None = None,
    address: str | None = None,
) -> tuple[CustomerLink, str]:
    """Store a new link and return it with its token (the only time the token is known)."""
    token = secrets.token_urlsafe(TOKEN_BYTES)
    link = CustomerLink(
        id=uuid.uuid4(),
        organization_id=organization_id,
        purpose=purpose.value,
        token_hash=hash_token(token),
        task_id=task_id,
        channel=channel,
        address=address,
        created_at=now,
        expires_at=expires_at,
    )
    session.add(link)
    await session.flush()
    return link, token


async def find_link(
    session: AsyncSession, token: str, purpose: LinkPurpose, now: datetime
) -> CustomerLink | None:
    """The live link of ``token`` for ``purpose``: None when unknown, malformed, expired or
    revoked (callers cannot tell which)."""
    if not _TOKEN_SHAPE.match(token):
        return None
    link = await session.scalar(
        select(CustomerLink).where(
            CustomerLink.token_hash == hash_token(token),
            CustomerLink.purpose == purpose.value,
        )
    )
    if link is None or link.revoked_at is not None or link.expires_at <= now:
        return None
    return link


async def purge_expired_links(session: AsyncSession, before: datetime) -> int:
    """Delete the links that expired before ``before`` (an expired link answers like an unknown
    one, so nothing needs them); how many."""
    result = await session.execute(delete(CustomerLink).where(CustomerLink.expires_at < before))
    return int(getattr(result, "rowcount", 0) or 0)


async def live_tracking_link(
    session: AsyncSession, task_id: uuid.UUID, now: datetime
) -> CustomerLink | None:
    """The visit's newest tracking link that still works."""
    link: CustomerLink | None = await session.scalar(
        select(CustomerLink)
        .where(
            CustomerLink.task_id == task_id,
            CustomerLink.purpose == LinkPurpose.TRACKING.value,
            CustomerLink.revoked_at.is_(None),
            CustomerLink.expires_at > now,
        )
        .order_by(CustomerLink.created_at.desc())
        .limit(1)
    )
    return link


async def revoke_links(
    session: AsyncSession, task_id: uuid.UUID, purpose: LinkPurpose, now: datetime
) -> int:
    """Revoke every working link of ``purpose`` of a visit; how many."""
    result = await session.execute(
        update(CustomerLink)
        .where(
            CustomerLink.task_id == task_id,
            CustomerLink.purpose == purpose.value,
            CustomerLink.revoked_at.is_(None),
        )
        .values(revoked_at=now)
    )
    return int(getattr(result, "rowcount", 0) or 0)
