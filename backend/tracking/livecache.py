"""What the live board keeps per process and organisation (``live`` decides when it holds):
the roster, the positions with each one's JSON encoded once, and the JSON of recent looks.

A look's JSON is kept until the roster or the positions change, or the clock passes the first
moment a worker shown as fresh would turn ``offline`` (or goes back): the status is the only
part that follows the clock.
"""

from __future__ import annotations

import uuid
from collections import OrderedDict
from collections.abc import Hashable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal
from typing import Any, Final

import msgspec
import numpy as np

from backend.tracking.policy import SITE_RADIUS_M
from backend.tracking.roster import Roster, Worker

OFFLINE_AFTER: Final = timedelta(minutes=10)
DRIVING_MPS: Final = 2.0
ORGANIZATIONS_KEPT: Final = 128
VIEWS_KEPT: Final = 8  # per organisation (a 2,000-worker look is about 1 MB)

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


def round6(values: list[float]) -> list[float]:
    """``round(v::numeric, 6)::float8`` of each value as PostgreSQL computes it (the value to
    15 significant digits, then half away from zero). Away from a tie at the 7th decimal that
    is the nearest integer to v·10⁶ (v·10⁶ errs by < 10⁻⁷ here) divided by 10⁶ (the division is
    correctly rounded); next to one, it is done PostgreSQL's way."""
    scaled = np.asarray(values, dtype=np.float64) * 1e6
    rounded = np.rint(scaled) / 1e6 + 0.0  # + 0.0: PostgreSQL's numeric has no -0
    out: list[float] = rounded.tolist()
    for i in np.flatnonzero(np.abs(scaled - np.floor(scaled) - 0.5) <= 1e-5).tolist():
        exact = Decimal(f"{values[i]:.15g}").quantize(_MICRO, rounding=ROUND_HALF_UP)
        out[i] = float(exact) + 0.0
    return out


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


def _encode(raws: list[tuple[Any, ...]]) -> list[Fix]:
    """The fixes of rows (user, recorded_at, lat, lon, accuracy, speed, heading, battery,
    mocked, site_m), their JSON from one encoding of them all."""
    lats = round6([r[2] for r in raws])
    lons = round6([r[3] for r in raws])
    values = [
        (lon, lat, r[1], r[4], r[5], r[6], r[7], r[8])
        for r, lat, lon in zip(raws, lats, lons, strict=True)
    ]
    # [[lon,lat,"time",accuracy,speed,heading,battery,mocked],...]: no value holds "," or "]"
    texts = _ENCODER.encode(values)[2:-2].split(b"],[")
    fixes = []
    for raw, text in zip(raws, texts, strict=True):
        lon, lat, at, accuracy, speed, heading, battery, mocked = text.split(b",")
        fixes.append(
            Fix(
                raw=raw,
                recorded_at=raw[1],
                accuracy=raw[4],
                speed=raw[5],
                site_m=raw[9],
                geometry=b'{"type":"Point","coordinates":[' + lon + b"," + lat + b"]}",
                properties=b"".join(
                    (
                        b'","lastSeen":',
                        at,
                        b',"accuracy":',
                        accuracy,
                        b',"speed":',
                        speed,
                        b',"heading":',
                        heading,
                        b',"battery":',
                        battery,
                        b',"mocked":',
                        mocked,
                    )
                ),
            )
        )
    return fixes


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
        changed: list[tuple[Any, ...]] = []
        if row.ids is not None:
            columns = (row.at, row.lat, row.lon, row.accuracy, row.speed, row.heading, row.battery)
            for raw in zip(row.ids, *columns, row.mocked, row.site_m, strict=True):
                fix = old.get(raw[0])
                if fix is not None and fix.raw == raw:
                    by_user[raw[0]] = fix
                else:
                    changed.append(raw)
        if changed:
            for fix in _encode(changed):
                by_user[fix.raw[0]] = fix
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
