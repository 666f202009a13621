"""Cursor pagination: opaque, URL-safe cursors that encode the last row's sort key."""

from __future__ import annotations

import base64
import uuid
from datetime import UTC, datetime
from typing import Annotated, Any, Generic, TypeVar

import msgspec
from litestar.params import Parameter
from sqlalchemy import Select, func, tuple_
from sqlalchemy.orm import InstrumentedAttribute

from backend.lib.errors import InvalidInput

T = TypeVar("T")

DEFAULT_LIMIT = 50
MAX_LIMIT = 200

Cursor = Annotated[
    str | None, Parameter(max_length=500, description="nextCursor of the previous page")
]
Limit = Annotated[int, Parameter(ge=1, le=MAX_LIMIT, description=f"page size, 1 to {MAX_LIMIT}")]


class Page(msgspec.Struct, Generic[T], rename="camel"):
    """One page of a list and the cursor of the next page (absent on the last page)."""

    items: list[T]
    next_cursor: str | None = None


def encode_cursor(key: list[Any]) -> str:
    """Encode a sort key (JSON-able values) as an opaque cursor."""
    return base64.urlsafe_b64encode(msgspec.json.encode(key)).decode().rstrip("=")


def decode_cursor(cursor: str, types: tuple[type[Any], ...]) -> list[Any]:
    """Decode a cursor made by ``encode_cursor`` and check it has the expected shape."""
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        key = msgspec.json.decode(raw, type=list[Any])
        if len(key) != len(types):
            raise ValueError("wrong length")
        return [msgspec.convert(v, t, strict=False) for v, t in zip(key, types, strict=True)]
    except (ValueError, msgspec.ValidationError, msgspec.DecodeError) as exc:
        raise InvalidInput.on("cursor", "not a cursor this list gave out") from exc


def page_of(rows: list[T], limit: int, key: Any) -> Page[T]:
    """Build a page from ``limit + 1`` fetched rows; ``key(row)`` gives the row's sort key."""
    if len(rows) > limit:
        rows = rows[:limit]
        return Page(items=rows, next_cursor=encode_cursor(key(rows[-1])))
    return Page(items=rows)


def keyset_desc(
    stmt: Select[Any],
    time_column: InstrumentedAttribute[datetime],
    id_column: InstrumentedAttribute[uuid.UUID],
    cursor: str | None,
    limit: int,
) -> Select[Any]:
    """Order ``stmt`` newest first by (time, id) and start after ``cursor``; fetches
    ``limit + 1`` rows for ``page_of`` with key ``[time, id]``."""
    if cursor:
        moment, ident = decode_cursor(cursor, (datetime, uuid.UUID))
        stmt = stmt.where(tuple_(time_column, id_column) < tuple_(moment, ident))
    return stmt.order_by(time_column.desc(), id_column.desc()).limit(limit + 1)


def keyset_asc(
    stmt: Select[Any],
    time_column: InstrumentedAttribute[datetime | None],
    id_column: InstrumentedAttribute[uuid.UUID],
    cursor: str | None,
    limit: int,
) -> Select[Any]:
    """Order ``stmt`` oldest first by (time, id), NULL times last, starting after ``cursor``;
    the key of a row is ``[time or "9999-12-31T00:00:00Z", id]``."""
    far = datetime(9999, 12, 31, tzinfo=UTC)
    key = func.coalesce(time_column, far)
    if cursor:
        moment, ident = decode_cursor(cursor, (datetime, uuid.UUID))
        stmt = stmt.where(tuple_(key, id_column) > tuple_(moment, ident))
    return stmt.order_by(key, id_column).limit(limit + 1)
