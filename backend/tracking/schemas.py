"""Request and response bodies of the tracking API."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Any

import msgspec

from backend.accounts.schemas import Input, Output
from backend.tracking.points import Point, Rejected


class PingBatch(msgspec.Struct, forbid_unknown_fields=True):
    """Up to 1,000 points; each is checked on its own."""

    points: list[Any]


class TypedPingBatch(msgspec.Struct, forbid_unknown_fields=True):
    """A batch whose every point is valid: decoded in one pass (the fast path)."""

    points: list[Point]


class PingResult(Output):
    """``accepted`` were stored; ``duplicates`` were stored before; ``offShift`` were outside
    every shift (not stored); ``rejected`` lists the others with the reason."""

    accepted: int
    duplicates: int
    off_shift: int
    rejected: list[Rejected]


class DeviceIn(Input):
    """A phone of the caller (or, for admins, of ``userId``)."""

    identifier: Annotated[
        str, msgspec.Meta(min_length=1, max_length=100, pattern=r"^[\x21-\x7e]+$")
    ]
    name: Annotated[str, msgspec.Meta(max_length=200)] | None = None
    user_id: uuid.UUID | None = None


class DeviceOut(Output):
    id: uuid.UUID
    user_id: uuid.UUID
    identifier: str
    name: str | None
    is_active: bool
    last_seen_at: datetime | None
    battery_pct: float | None


class ShiftOut(Output):
    id: uuid.UUID
    user_id: uuid.UUID
    started_at: datetime
    ended_at: datetime | None
    source: str


class ScheduleIn(Input):
    """The weekly pattern in the worker's own time zone, e.g. ``{"mon": [["08:00","17:00"]]}``."""

    schedule: dict[str, Any]


class ScheduleOut(Output):
    user_id: uuid.UUID
    time_zone: str
    schedule: dict[str, Any]


class CheckInIn(Input):
    """Where the worker is, from the phone; a reason overrides a check-in away from the site."""

    lat: Annotated[float, msgspec.Meta(ge=-90, le=90)]
    lon: Annotated[float, msgspec.Meta(ge=-180, le=180)]
    accuracy: Annotated[float, msgspec.Meta(ge=0, le=100_000)] | None = None
    mocked: bool = False
    override_reason: Annotated[str, msgspec.Meta(min_length=3, max_length=1000)] | None = None


class CheckOutIn(Input):
    """Where the worker is when leaving, and how the visit went."""

    outcome: Annotated[str, msgspec.Meta(min_length=1, max_length=10_000)]
    lat: Annotated[float, msgspec.Meta(ge=-90, le=90)]
    lon: Annotated[float, msgspec.Meta(ge=-180, le=180)]
    accuracy: Annotated[float, msgspec.Meta(ge=0, le=100_000)] | None = None
    mocked: bool = False
    override_reason: Annotated[str, msgspec.Meta(min_length=3, max_length=1000)] | None = None


class CheckInOut(Output):
    id: uuid.UUID
    task_id: uuid.UUID
    user_id: uuid.UUID
    kind: str
    at: datetime
    lat: float | None
    lon: float | None
    accuracy_m: float | None
    distance_m: float | None
    status: str
    flags: list[str]
    override_reason: str | None
    dwell_s: int | None
    outcome: str | None
