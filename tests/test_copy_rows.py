"""The hand-packed binary COPY of pings is byte for byte what PostgreSQL itself writes."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy.ext.asyncio import AsyncConnection

from backend.tracking import copy_rows
from backend.tracking.points import MAX_ACTIVITY_LENGTH, Point

# The columns of pings, in COPY order, without its constraints.
TABLE = """CREATE TEMP TABLE copied_pings (
    organization_id uuid, user_id uuid, device_id uuid, recorded_at timestamptz,
    received_at timestamptz, lat double precision, lon double precision, accuracy_m real,
    speed_mps real, heading_deg real, altitude_m real, battery_pct real, mocked boolean,
    activity text, n serial)"""


def optional(low: float, high: float) -> st.SearchStrategy[float | None]:
    return st.none() | st.floats(low, high)


points = st.builds(
    Point,
    recorded_at=st.datetimes(datetime(1990, 1, 1), datetime(2040, 1, 1), timezones=st.just(UTC)),
    lat=st.floats(-90, 90),
    lon=st.floats(-180, 180),
    accuracy_m=optional(0, 100_000),
    speed_mps=optional(0, 200),
    heading_deg=optional(0, 360),
    altitude_m=optional(-1000, 20_000),
    battery_pct=optional(0, 100),
    mocked=st.booleans(),
    activity=st.none() | st.text(max_size=MAX_ACTIVITY_LENGTH).filter(lambda s: "\x00" not in s),
)
batches = st.lists(
    st.tuples(st.booleans(), st.lists(points, min_size=1, max_size=5)), min_size=1, max_size=3
)


async def postgres_copy_of(raw: Any, query: str) -> bytes:
    """What PostgreSQL writes for ``COPY (query) TO STDOUT (FORMAT binary)``."""
    out: list[bytes] = []

    async def collect(chunk: bytes) -> None:
        out.append(chunk)

    await raw.copy_from_query(query, output=collect, format="binary")
    return b"".join(out)


@settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(batches=batches)
async def test_encoded_rows_are_what_postgres_writes(
    connection: AsyncConnection, batches: list[tuple[bool, list[Point]]]
) -> None:
    raw: Any = (await connection.get_raw_connection()).driver_connection
    org, received = uuid.uuid4(), datetime(2026, 11, 25, 9, 30, 0, 123456, tzinfo=UTC)
    encoded = []
    for with_device, batch in batches:
        device = uuid.uuid4() if with_device else None
        encoded.append((copy_rows.batch_prefix(org, uuid.uuid4(), device, received), batch))
    data = copy_rows.encode(encoded)
    await raw.execute("DROP TABLE IF EXISTS copied_pings")
    await raw.execute(TABLE)

    async def chunks() -> Any:
        yield data

    await raw.copy_to_table(
        "copied_pings", source=chunks(), columns=copy_rows.COLUMNS, format="binary"
    )
    columns = ", ".join(copy_rows.COLUMNS)
    assert await postgres_copy_of(raw, f"SELECT {columns} FROM copied_pings ORDER BY n") == data
    stored = await raw.fetch("SELECT recorded_at, lat, lon, activity FROM copied_pings ORDER BY n")
    expected = [p for _, batch in batches for p in batch]
    assert [tuple(r) for r in stored] == [
        (p.recorded_at, p.lat, p.lon, p.activity) for p in expected
    ]


def test_one_row_by_hand() -> None:
    org = uuid.UUID(int=1)
    user = uuid.UUID(int=2)
    at = datetime(2000, 1, 1, tzinfo=UTC) + timedelta(microseconds=5)
    data = copy_rows.encode(
        [(copy_rows.batch_prefix(org, user, None, at), [Point(recorded_at=at, lat=1.5, lon=-2.0)])]
    )
    assert data.startswith(b"PGCOPY\n\xff\r\n\x00" + bytes(8))
    assert data.endswith(b"\xff\xff")
    row = data[19:-2]
    assert row[:2] == b"\x00\x0e"  # 14 fields
    assert row[2:6] == b"\x00\x00\x00\x10"
    assert row[6:22] == org.bytes
    assert row[42:46] == b"\xff\xff\xff\xff"  # no device
    assert row[46:58] == b"\x00\x00\x00\x08" + (5).to_bytes(8, "big")  # recorded_at
