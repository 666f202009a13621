"""One GPS fix as every ingest path hands it to storage, whatever the wire format was.

Units are fixed here: degrees (WGS 84), metres, metres per second, degrees clockwise from true
north, battery in percent. Wire formats convert at the edge (knots, fractions of one, ...).
"""

from __future__ import annotations

from datetime import datetime

import msgspec


class Point(msgspec.Struct, frozen=True, kw_only=True):
    """A validated fix (ranges and finiteness checked; time aware, UTC)."""

    recorded_at: datetime
    lat: float
    lon: float
    accuracy_m: float | None = None
    speed_mps: float | None = None
    heading_deg: float | None = None
    altitude_m: float | None = None
    battery_pct: float | None = None
    mocked: bool = False
    activity: str | None = None


class Rejected(msgspec.Struct, frozen=True, rename="camel"):
    """Why the point at ``index`` of a batch was not stored."""

    index: int
    field: str
    reason: str
