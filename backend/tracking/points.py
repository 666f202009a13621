"""One GPS fix as every ingest path hands it to storage, whatever the wire format was.

Units are fixed here: degrees (WGS 84), metres, metres per second, degrees clockwise from true
north, battery in percent. Other wire formats convert at the edge (knots, fractions of one, ...);
the JSON batch API's point is this struct itself, so a batch decodes in one typed pass.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Final

import msgspec

from geo.track import Fix

# Ranges of a stored fix (pings keeps these as float4; activity is at most 30 characters).
MAX_ACCURACY_M: Final = 100_000.0
MAX_SPEED_MPS: Final = 200.0
MIN_ALTITUDE_M: Final = -1000.0
MAX_ALTITUDE_M: Final = 20_000.0
MAX_ACTIVITY_LENGTH: Final = 30


class Point(
    msgspec.Struct,
    frozen=True,
    kw_only=True,
    forbid_unknown_fields=True,
    rename={
        "recorded_at": "timestamp",
        "accuracy_m": "accuracy",
        "speed_mps": "speed",
        "heading_deg": "heading",
        "altitude_m": "altitude",
        "battery_pct": "battery",
    },
):
    """A fix. Decoded from JSON (the batch API's point: ``timestamp`` with a zone, ``lat``,
    ``lon``, ``accuracy``, ``speed``, ``heading``, ``altitude``, ``battery``, ``mocked``,
    ``activity``) its ranges are checked; other ingest paths check them before building one."""

    recorded_at: Annotated[datetime, msgspec.Meta(tz=True)]
    lat: Annotated[float, msgspec.Meta(ge=-90, le=90)]
    lon: Annotated[float, msgspec.Meta(ge=-180, le=180)]
    accuracy_m: Annotated[float, msgspec.Meta(ge=0, le=MAX_ACCURACY_M)] | None = None
    speed_mps: Annotated[float, msgspec.Meta(ge=0, le=MAX_SPEED_MPS)] | None = None
    heading_deg: Annotated[float, msgspec.Meta(ge=0, le=360)] | None = None
    altitude_m: Annotated[float, msgspec.Meta(ge=MIN_ALTITUDE_M, le=MAX_ALTITUDE_M)] | None = None
    battery_pct: Annotated[float, msgspec.Meta(ge=0, le=100)] | None = None
    mocked: bool = False
    activity: Annotated[str, msgspec.Meta(max_length=MAX_ACTIVITY_LENGTH)] | None = None


class Rejected(msgspec.Struct, frozen=True, rename="camel"):
    """Why the point at ``index`` of a batch was not stored."""

    index: int
    field: str
    reason: str


def fixes_of(points: list[Point]) -> list[Fix]:
    """``geo.track`` fixes of points, for distances, stops, dwell and jumps."""
    return [Fix(p.recorded_at, p.lat, p.lon, p.accuracy_m, p.speed_mps, p.mocked) for p in points]
