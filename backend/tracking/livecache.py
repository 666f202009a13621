"""What the live board keeps per process and organisation (``live`` decides when it holds):
the roster, the positions with each one's JSON encoded once, and the JSON of recent looks.

A look's JSON is kept until the roster or the positions change, or the clock passes the first
moment a worker shown as fresh would turn ``offline`` (or goes back): the status is the only
part that follows the clock.
"""

from __future__ import annotations

import math
import uuid
from collections import OrderedDict
from collections.abc import Hashable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal
from typing import Any, Final

import msgspec

from backend.tracking.policy import SITE_RADIUS_M
from backend.tracking.roster import Roster, Worker

OFFLINE_AFTER: Final = timedelta(minutes=10)
DRIVING_MPS: Final = 2.0
ORGANIZATIONS_KEPT: Final = 256
VIEWS_KEPT: Final = 32  # per organisation

_ENCODER = msgspec.json.Encoder()
_MICRO = Decimal("0.000001")
_OPEN = b'{"type":"FeatureCollection","features":['
_NO_FIX = (
    b'","lastSeen":null,"accuracy":null,"speed":null,"heading":null,"battery":null,"mocked":null'
)
_OFF_SHIFT, _OFFLINE, _ON_SITE, _DRIVING, _IDLE = (
    b"off_shift",
    b"offline",
    b"on_site",
    b"driving",
    b"idle",
)


def round6(value: float) -> float:
    """``round(value::numeric, 6)::float8`` as PostgreSQL computes it (the value to 15
    significant digits, then half away from zero). Python's ``round`` rounds the exact binary
    value half to even: the same but next to a tie, which takes PostgreSQL's way."""
    scaled = value * 1e6
    if abs(scaled - math.floor(scaled) - 0.5) > 1e-5:
        return round(value, 6) + 0.0  # + 0.0: PostgreSQL's numeric has no -0
    exact = Decimal(f"{value:.15g}").quantize(_MICRO, rounding=ROUND_HALF_UP)
    return float(exact) + 0.0


@dataclass(frozen=True, slots=True)
class Fix:
    """A worker's latest position as read (``raw``), what the status needs, and its JSON: the
    geometry, and the properties after the status (``","lastSeen":...,"mocked":false``)."""

    raw: tuple[Any, ...]
    recorded_at: datetime
    accuracy: float | None
    speed: float | None
    site_m: float | None  # distance to the site of the current task
    geometry: bytes
    properties: bytes

    @classmethod
    def of(cls, raw: tuple[Any, ...]) -> Fix:
        """(user, recorded_at, lat, lon, accuracy, speed, heading, battery, mocked, site_m)"""
        _, at, lat, lon, accuracy, speed, heading, battery, mocked, site_m = raw
        point = _ENCODER.encode((round6(lon), round6(lat)))
        properties = _ENCODER.encode(
            {
                "lastSeen": at,
                "accuracy": accuracy,
                "speed": speed,
                "heading": heading,
                "battery": battery,
                "mocked": mocked,
            }
        )
        return cls(
            raw=raw,
            recorded_at=at,
            accuracy=accuracy,
            speed=speed,
            site_m=site_m,
            geometry=b'{"type":"Point","coordinates":' + point + b"}",
            properties=b'",' + properties[1:-1],
        )


@dataclass(frozen=True, slots=True)
class Positions:
    """An organisation's latest positions, valid while ``fingerprint`` holds; the distances to
    the sites while the roster's fingerprint is ``sites``."""

    fingerprint: int
    sites: int
    by_user: dict[uuid.UUID, Fix]

    @classmethod
    def read(cls, row: Any, previous: Positions | None, sites: int) -> Positions:
        """From the check statement's arrays; a fix that did not change keeps its JSON."""
        old = previous.by_user if previous is not None else {}
        by_user: dict[uuid.UUID, Fix] = {}
        if row.ids is not None:
            columns = (row.at, row.lat, row.lon, row.accuracy, row.speed, row.heading, row.battery)
            for raw in zip(row.ids, *columns, row.mocked, row.site_m, strict=True):
                fix = old.get(raw[0])
                by_user[raw[0]] = fix if fix is not None and fix.raw == raw else Fix.of(raw)
        return cls(row.positions, sites, by_user)


def features(
    workers: tuple[Worker, ...], positions: Positions, now: datetime
) -> tuple[bytes, datetime | None]:
    """The collection's JSON up to its last feature, and the last moment it holds (None: for
    ever) — when the first worker shown as fresh turns offline."""
    stale_before = now - OFFLINE_AFTER
    until: datetime | None = None
    by_user = positions.by_user
    parts: list[bytes] = [_OPEN]
    add = parts.append
    for worker in workers:
        add(worker.head)
        fix = by_user.get(worker.id)
        if fix is None:
            add(b"null")
            add(worker.middle)
            add(_OFFLINE if worker.on_shift else _OFF_SHIFT)
            add(_NO_FIX)
        else:
            if not worker.on_shift:
                status = _OFF_SHIFT
            elif fix.recorded_at < stale_before:
                status = _OFFLINE
            else:
                fresh_until = fix.recorded_at + OFFLINE_AFTER
                if until is None or fresh_until < until:
                    until = fresh_until
                if (
                    worker.has_task
                    and fix.site_m is not None
                    and fix.site_m <= SITE_RADIUS_M + min(fix.accuracy or 0.0, SITE_RADIUS_M)
                ):
                    status = _ON_SITE
                elif (fix.speed or 0.0) >= DRIVING_MPS:
                    status = _DRIVING
                else:
                    status = _IDLE
            add(fix.geometry)
            add(worker.middle)
            add(status)
            add(fix.properties)
        add(worker.tail)
        add(b",")
    if workers:
        parts.pop()
    return b"".join(parts), until


@dataclass(frozen=True, slots=True)
class View:
    """The JSON of one look, for as long as it holds."""

    roster: Roster
    positions: Positions
    computed_at: datetime
    valid_until: datetime | None
    body: bytes

    def shows(self, roster: Roster, positions: Positions, now: datetime) -> bool:
        """Whether this JSON is the answer for these parts at ``now``."""
        return (
            self.roster is roster
            and self.positions is positions
            and self.computed_at <= now
            and (self.valid_until is None or now <= self.valid_until)
        )

    def collection(self, now: datetime) -> bytes:
        """The FeatureCollection generated at ``now``."""
        return self.body + b'],"generatedAt":' + _ENCODER.encode(now) + b"}"


@dataclass
class Entry:
    """One organisation's kept parts; ``live`` replaces each part whole."""

    roster: Roster | None = None
    positions: Positions | None = None
    looks: dict[Hashable, tuple[Roster, Any]] = field(default_factory=dict)
    views: dict[Hashable, View] = field(default_factory=dict)

    def keep(self, kept: dict[Hashable, Any], key: Hashable, value: Any) -> None:
        """Keep ``value`` in ``kept`` (one of the dicts above), a bounded number of them."""
        if len(kept) >= VIEWS_KEPT and key not in kept:
            kept.clear()
        kept[key] = value


class LiveCache:
    """The kept parts of the most recently looked-at organisations, in one process."""

    def __init__(self, size: int = ORGANIZATIONS_KEPT) -> None:
        self._size = size
        self._entries: OrderedDict[uuid.UUID, Entry] = OrderedDict()

    def entry(self, organization_id: uuid.UUID) -> Entry:
        """The organisation's entry (a new, empty one the first time)."""
        found = self._entries.get(organization_id)
        if found is None:
            found = self._entries[organization_id] = Entry()
            if len(self._entries) > self._size:
                self._entries.popitem(last=False)
        else:
            self._entries.move_to_end(organization_id)
        return found


CACHE: Final = LiveCache()
