"""Pings in PostgreSQL's binary COPY format, encoded here rather than by asyncpg.

asyncpg's ``copy_records_to_table`` encodes each value of each record through its codec
machinery: ~5 µs of CPU per ping, the largest single cost of storing a batch. A ping has a fixed
shape, so this module packs a row with one precompiled ``struct`` per shape of missing values
(~1 µs): the organisation, user, device and receipt time are the same for a whole batch and
encoded once. The bytes are those asyncpg would send (``tests/test_copy_rows.py`` compares
both); the column order is ``COLUMNS``.

Format (PostgreSQL docs, "COPY ... BINARY"): a signature and two int32 (flags, header
extension), then per row an int16 field count and per field an int32 length (-1 for NULL) and
the value in network byte order; uuid as 16 bytes, timestamptz as int64 microseconds since
2000-01-01 UTC, float8/float4 IEEE 754, boolean one byte, text UTF-8; an int16 -1 ends the data.
"""

from __future__ import annotations

import struct
import uuid
from collections.abc import Iterable
from datetime import UTC, datetime, timedelta
from functools import lru_cache

from backend.tracking.points import Point

COLUMNS = (
    "organization_id",
    "user_id",
    "device_id",
    "recorded_at",
    "received_at",
    "lat",
    "lon",
    "accuracy_m",
    "speed_mps",
    "heading_deg",
    "altitude_m",
    "battery_pct",
    "mocked",
    "activity",
)
HEADER = b"PGCOPY\n\xff\r\n\x00" + struct.pack("!ii", 0, 0)
TRAILER = struct.pack("!h", -1)
_POSTGRES_EPOCH = datetime(2000, 1, 1, tzinfo=UTC)
_MICROSECOND = timedelta(microseconds=1)
_NULL = struct.pack("!i", -1)
_UUID = struct.Struct("!i16s")
_TIMESTAMP = struct.Struct("!iq")
_TEXT_LENGTH = struct.Struct("!i")


def _microseconds(moment: datetime) -> int:
    return (moment - _POSTGRES_EPOCH) // _MICROSECOND


def batch_prefix(
    organization_id: uuid.UUID,
    user_id: uuid.UUID,
    device_id: uuid.UUID | None,
    received_at: datetime,
) -> tuple[bytes, bytes]:
    """The fields every row of one batch shares: (before ``recorded_at``, ``received_at``)."""
    head = (
        struct.pack("!h", len(COLUMNS))
        + _UUID.pack(16, organization_id.bytes)
        + _UUID.pack(16, user_id.bytes)
        + (_UUID.pack(16, device_id.bytes) if device_id is not None else _NULL)
    )
    return head, _TIMESTAMP.pack(8, _microseconds(received_at))


@lru_cache(maxsize=128)
def _row(prefix_length: int, present: tuple[bool, ...]) -> struct.Struct:
    """The struct of a row up to ``mocked``: the batch's prefix, recorded_at, received_at,
    lat, lon (float8), each of the five optional float4 (or a NULL length), mocked."""
    fmt = f"!{prefix_length}siq12sidid"
    for here in present:
        fmt += "if" if here else "i"
    return struct.Struct(fmt + "i?")


_ALL = (True,) * 5


def encode(batches: Iterable[tuple[tuple[bytes, bytes], Iterable[Point]]]) -> bytes:
    """The COPY data (header to trailer) of batches of points, each with the ``batch_prefix``
    of its batch."""
    out = [HEADER]
    append = out.append
    epoch, microsecond, null = _POSTGRES_EPOCH, _MICROSECOND, _NULL
    for (head, received), points in batches:
        full = _row(len(head), _ALL).pack
        for p in points:
            us = (p.recorded_at - epoch) // microsecond
            acc, speed, heading, alt, battery = (
                p.accuracy_m,
                p.speed_mps,
                p.heading_deg,
                p.altitude_m,
                p.battery_pct,
            )
            if (
                acc is not None
                and speed is not None
                and heading is not None
                and (alt is not None and battery is not None)
            ):
                append(
                    full(
                        head,
                        8,
                        us,
                        received,
                        8,
                        p.lat,
                        8,
                        p.lon,
                        4,
                        acc,
                        4,
                        speed,
                        4,
                        heading,
                        4,
                        alt,
                        4,
                        battery,
                        1,
                        p.mocked,
                    )
                )
            else:
                values: list[object] = [head, 8, us, received, 8, p.lat, 8, p.lon]
                for value in (acc, speed, heading, alt, battery):
                    if value is None:
                        values.append(-1)
                    else:
                        values += (4, value)
                values += (1, p.mocked)
                present = tuple(v is not None for v in (acc, speed, heading, alt, battery))
                append(_row(len(head), present).pack(*values))
            if p.activity is None:
                append(null)
            else:
                text = p.activity.encode()
                append(_TEXT_LENGTH.pack(len(text)) + text)
    append(TRAILER)
    return b"".join(out)
