"""Writing the audit log: one row per change, with the changed fields' old and new values."""

from __future__ import annotations

import uuid
from datetime import date, datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import insert
from sqlalchemy.ext.asyncio import AsyncSession

from backend.audit.models import AuditEntry


def json_value(value: Any) -> Any:
    """A value as it is stored in the log (JSON types only)."""
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, Decimal | uuid.UUID):
        return str(value)
    if isinstance(value, list):
        return [json_value(v) for v in value]
    if isinstance(value, dict):
        return {str(k): json_value(v) for k, v in value.items()}
    return value


def diff(before: dict[str, Any], after: dict[str, Any]) -> dict[str, list[Any]]:
    """``{field: [old, new]}`` for every field whose value differs."""
    return {
        key: [json_value(before.get(key)), json_value(value)]
        for key, value in after.items()
        if before.get(key) != value
    }


async def record(
    session: AsyncSession,
    *,
    organization_id: uuid.UUID,
    entity: str,
    entity_id: uuid.UUID,
    action: str,
    actor_id: uuid.UUID | None,
    at: datetime,
    changes: dict[str, Any] | None = None,
) -> None:
    """Append one entry to the audit log (in the caller's transaction)."""
    await session.execute(
        insert(AuditEntry).values(
            organization_id=organization_id,
            entity=entity,
            entity_id=entity_id,
            action=action,
            actor_id=actor_id,
            at=at,
            changes=changes or {},
        )
    )
