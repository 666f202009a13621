"""GPS tracks: distance, outlier jumps, simplification, stops, geofences, dwell and time split.

Pure functions over plain `Fix` values: no database, no I/O, no import of `backend/`. Every
function accepts any iterable of fixes, handles empty and one-fix inputs, and runs in O(n) or
O(n log n) (Douglas–Peucker's worst case aside).

Conventions shared by all functions:

- Fixes must be in time order (equal times allowed); the functions that use time raise
  `ValueError` otherwise, instead of silently computing nonsense. Sort at the edge
  (`ORDER BY t`) — a phone's offline buffer may arrive out of order.
- An accuracy of `None` means "unknown" and counts as 0 m (the fix is taken at face value).
- `Fix.mocked` is carried for the caller (anti-fraud, audit) and is not interpreted here: whether
  a mocked position counts is a business rule, not geometry.
- Cleaning is the same everywhere time or distance is summed (`accepted_fixes`): fixes whose
  accuracy is worse than `max_accuracy_m` are dropped first, then fixes that imply an impossible
  speed from the previous accepted fix (`implausible_jumps`). `track_distance_m`,
  `detect_stops` and `time_split` all work on that cleaned sequence, so a single teleport
  neither adds kilometres nor splits a stop in two.

Known limitation: the jump filter trusts the first fix. If the very first fix is the outlier,
every later fix looks like a jump from it; callers that start tracks from a cold GPS should
drop fixes with poor accuracy (the default `max_accuracy_m`) before anything else — which
`accepted_fixes` does.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from itertools import pairwise
from typing import Any

__all__ = [
    "EARTH_RADIUS_M",
    "Fix",
    "GeofenceResult",
    "Stop",
    "TimeSplit",
    "accepted_fixes",
    "detect_stops",
    "dwell",
    "haversine_m",
    "implausible_jumps",
    "simplify",
    "time_split",
    "to_geojson_line",
    "track_distance_m",
    "within_geofence",
]

EARTH_RADIUS_M = 6_371_008.8
"""Mean Earth radius (IUGG), metres."""

DEFAULT_MAX_ACCURACY_M = 100.0
DEFAULT_MAX_SPEED_MPS = 70.0
DEFAULT_MAX_GAP = timedelta(minutes=20)

_M_PER_DEG = EARTH_RADIUS_M * math.pi / 180.0
_ZERO = timedelta(0)


def haversine_m(lat1: float, lon1: float, lat2: float, lon2: float) -> float:
    """Great-circle distance in metres between two points given in degrees (sphere of mean
    Earth radius; within 0.5 % of the ellipsoid, good enough for field work)."""
    p1 = math.radians(lat1)
    p2 = math.radians(lat2)
    s_dlat = math.sin((p2 - p1) / 2.0)
    s_dlon = math.sin(math.radians(lon2 - lon1) / 2.0)
    h = s_dlat * s_dlat + math.cos(p1) * math.cos(p2) * s_dlon * s_dlon
    return 2.0 * EARTH_RADIUS_M * math.asin(math.sqrt(min(1.0, h)))


@dataclass(frozen=True, slots=True)
class Fix:
    """One position report. `t` must be timezone-aware; `accuracy_m` is the horizontal
    accuracy radius the device reports (None: unknown); `speed_mps` the device's own speed."""

    t: datetime
    lat: float
    lon: float
    accuracy_m: float | None = None
    speed_mps: float | None = None
    mocked: bool = False

    def __post_init__(self) -> None:
        if self.t.tzinfo is None or self.t.utcoffset() is None:
            raise ValueError("Fix.t must be timezone-aware")
        if not -90.0 <= self.lat <= 90.0:
            raise ValueError(f"latitude out of range: {self.lat!r}")
        if not -180.0 <= self.lon <= 180.0:
            raise ValueError(f"longitude out of range: {self.lon!r}")
        if self.accuracy_m is not None and not 0.0 <= self.accuracy_m < math.inf:
            raise ValueError(f"accuracy must be a finite number >= 0: {self.accuracy_m!r}")
        if self.speed_mps is not None and not 0.0 <= self.speed_mps < math.inf:
            raise ValueError(f"speed must be a finite number >= 0: {self.speed_mps!r}")


@dataclass(frozen=True, slots=True)
class Stop:
    """Consecutive fixes that stayed within a radius of their running centroid (lat, lon) from
    `start` to `end`; `fixes` counts the (accepted) fixes in it."""

    start: datetime
    end: datetime
    lat: float
    lon: float
    fixes: int

    @property
    def duration(self) -> timedelta:
        return self.end - self.start


@dataclass(frozen=True, slots=True)
class GeofenceResult:
    distance_m: float
    inside: bool
    certain: bool


@dataclass(frozen=True, slots=True)
class TimeSplit:
    on_stop: timedelta
    driving: timedelta
    idle: timedelta

    @property
    def total(self) -> timedelta:
        return self.on_stop + self.driving + self.idle


# --- helpers -----------------------------------------------------------------------------------


def _seq(fixes: Iterable[Fix]) -> Sequence[Fix]:
    return fixes if isinstance(fixes, Sequence) else list(fixes)


def _ordered(fixes: Iterable[Fix]) -> Sequence[Fix]:
    seq = _seq(fixes)
    for i in range(1, len(seq)):
        if seq[i].t < seq[i - 1].t:
            raise ValueError(f"fixes must be in time order (fix {i} is earlier than fix {i - 1})")
    return seq


def _wrap180(deg: float) -> float:
    """Longitude difference folded into [-180, 180)."""
    return (deg + 180.0) % 360.0 - 180.0


def _acc(fix: Fix) -> float:
    return fix.accuracy_m if fix.accuracy_m is not None else 0.0


def _non_negative(name: str, value: float) -> None:
    if not value >= 0.0:  # also refuses NaN
        raise ValueError(f"{name} must be >= 0, got {value!r}")


def _jump_flags(seq: Sequence[Fix], max_speed_mps: float) -> list[bool]:
    flags = [False] * len(seq)
    if not seq:
        return flags
    prev = seq[0]
    for i in range(1, len(seq)):
        f = seq[i]
        dist = haversine_m(prev.lat, prev.lon, f.lat, f.lon) - _acc(prev) - _acc(f)
        if dist > 0.0:
            dt = (f.t - prev.t).total_seconds()
            if dt <= 0.0 or dist > max_speed_mps * dt:
                flags[i] = True
                continue
        prev = f
    return flags


def _accepted(seq: Sequence[Fix], max_accuracy_m: float, max_speed_mps: float) -> list[Fix]:
    precise = [f for f in seq if f.accuracy_m is None or f.accuracy_m <= max_accuracy_m]
    flags = _jump_flags(precise, max_speed_mps)
    return [f for f, bad in zip(precise, flags, strict=True) if not bad]


def _path_length(seq: Sequence[Fix]) -> float:
    total = 0.0
    for a, b in pairwise(seq):
        total += haversine_m(a.lat, a.lon, b.lat, b.lon)
    return total


# --- public API --------------------------------------------------------------------------------


def implausible_jumps(
    fixes: Iterable[Fix], max_speed_mps: float = DEFAULT_MAX_SPEED_MPS
) -> list[int]:
    """Indexes of fixes that imply a speed above `max_speed_mps` from the previous accepted fix.

    The distance is reduced by both fixes' accuracy radii first (two fuzzy fixes 80 m apart with
    50 m accuracy each may be the same place), so only jumps that no accuracy can explain are
    flagged. A flagged fix does not become the reference for the next one; the first fix is
    always accepted. A distinct position at the same instant counts as an infinite speed.
    Default 70 m/s ≈ 250 km/h: nothing a field worker drives reaches it.
    """
    _non_negative("max_speed_mps", max_speed_mps)
    flags = _jump_flags(_ordered(fixes), max_speed_mps)
    return [i for i, bad in enumerate(flags) if bad]


def accepted_fixes(
    fixes: Iterable[Fix],
    max_accuracy_m: float = DEFAULT_MAX_ACCURACY_M,
    max_speed_mps: float = DEFAULT_MAX_SPEED_MPS,
) -> list[Fix]:
    """The cleaned track: fixes with accuracy worse than `max_accuracy_m` dropped, then the
    implausible jumps among the rest (see `implausible_jumps`) dropped."""
    _non_negative("max_accuracy_m", max_accuracy_m)
    _non_negative("max_speed_mps", max_speed_mps)
    return _accepted(_ordered(fixes), max_accuracy_m, max_speed_mps)


def track_distance_m(
    fixes: Iterable[Fix],
    max_accuracy_m: float = DEFAULT_MAX_ACCURACY_M,
    max_speed_mps: float = DEFAULT_MAX_SPEED_MPS,
) -> float:
    """Length in metres of the path through the accepted fixes (see `accepted_fixes`).

    Stationary GPS jitter is counted as movement (a few metres per fix); simplify or detect stops
    first if that matters for the figure at hand.
    """
    return _path_length(accepted_fixes(fixes, max_accuracy_m, max_speed_mps))


def simplify(fixes: Iterable[Fix], tolerance_m: float = 10.0) -> list[Fix]:
    """Douglas–Peucker: the subsequence of fixes (first and last always kept) such that every
    dropped fix lies within `tolerance_m` of the segment between the kept fixes around it.

    Distances are measured on a local equirectangular projection centred on the middle latitude
    of the track (longitudes unwrapped across the antimeridian), accurate to well under a metre
    for city-scale tracks. The splitting is iterative with an explicit stack, so 100 000-fix
    tracks cannot overflow Python's recursion limit. Time order is not required.
    """
    _non_negative("tolerance_m", tolerance_m)
    seq = _seq(fixes)
    n = len(seq)
    if n <= 2:
        return list(seq)

    ulon = [0.0] * n
    lats = [0.0] * n
    prev_lon = seq[0].lon
    acc_lon = 0.0
    lat_min = lat_max = seq[0].lat
    for i, f in enumerate(seq):
        acc_lon += _wrap180(f.lon - prev_lon)
        prev_lon = f.lon
        ulon[i] = acc_lon
        lats[i] = f.lat
        lat_min = min(lat_min, f.lat)
        lat_max = max(lat_max, f.lat)
    kx = _M_PER_DEG * math.cos(math.radians((lat_min + lat_max) / 2.0))
    lat0 = seq[0].lat
    xs = [u * kx for u in ulon]
    ys = [(la - lat0) * _M_PER_DEG for la in lats]

    tol2 = tolerance_m * tolerance_m
    keep = bytearray(n)
    keep[0] = keep[n - 1] = 1
    stack = [(0, n - 1)]
    while stack:
        s, e = stack.pop()
        if e - s < 2:
            continue
        ax, ay = xs[s], ys[s]
        dx, dy = xs[e] - ax, ys[e] - ay
        len2 = dx * dx + dy * dy
        best = -1.0
        best_i = -1
        if len2 == 0.0:
            for i in range(s + 1, e):
                px, py = xs[i] - ax, ys[i] - ay
                d2 = px * px + py * py
                if d2 > best:
                    best, best_i = d2, i
        else:
            for i in range(s + 1, e):
                px, py = xs[i] - ax, ys[i] - ay
                u = (px * dx + py * dy) / len2
                if u <= 0.0:
                    d2 = px * px + py * py
                elif u >= 1.0:
                    qx, qy = px - dx, py - dy
                    d2 = qx * qx + qy * qy
                else:
                    cross = px * dy - py * dx
                    d2 = cross * cross / len2
                if d2 > best:
                    best, best_i = d2, i
        if best > tol2:
            keep[best_i] = 1
            stack.append((s, best_i))
            stack.append((best_i, e))
    return [f for f, k in zip(seq, keep, strict=True) if k]


def detect_stops(
    fixes: Iterable[Fix],
    radius_m: float = 75.0,
    min_duration: timedelta = timedelta(minutes=5),
    *,
    max_accuracy_m: float = DEFAULT_MAX_ACCURACY_M,
    max_speed_mps: float = DEFAULT_MAX_SPEED_MPS,
) -> list[Stop]:
    """Stops: runs of consecutive accepted fixes each within `radius_m` of the running centroid
    of the fixes before it in the run, lasting at least `min_duration` (and two fixes).

    One pass, O(n): a fix farther than `radius_m` from the centroid closes the run and starts
    the next one. A gap in reporting does not end a stop — phones report rarely while parked — so
    a fix after a long silence that is still within the radius continues the stop. Poor-accuracy
    fixes and implausible jumps are skipped (`accepted_fixes`), so one outlier does not cut a
    stop in two. Stops are returned in time order and never share a fix.
    """
    _non_negative("radius_m", radius_m)
    seq = accepted_fixes(fixes, max_accuracy_m, max_speed_mps)
    stops: list[Stop] = []
    if not seq:
        return stops

    first = last = seq[0]
    count = 1
    sum_lat = first.lat
    sum_dlon = 0.0  # longitudes relative to the first fix, unwrapped across the antimeridian

    def close() -> None:
        if count >= 2 and last.t - first.t >= min_duration:
            lon = _wrap180(first.lon + sum_dlon / count)
            stops.append(Stop(first.t, last.t, sum_lat / count, lon, count))

    for f in seq[1:]:
        c_lat = sum_lat / count
        c_lon = first.lon + sum_dlon / count
        if haversine_m(c_lat, c_lon, f.lat, f.lon) <= radius_m:
            count += 1
            sum_lat += f.lat
            sum_dlon += _wrap180(f.lon - first.lon)
            last = f
        else:
            close()
            first = last = f
            count = 1
            sum_lat = f.lat
            sum_dlon = 0.0
    close()
    return stops


def _inside(distance_m: float, accuracy_m: float, radius_m: float) -> bool:
    return distance_m <= radius_m + min(accuracy_m, radius_m)


def within_geofence(
    lat: float,
    lon: float,
    accuracy_m: float | None,
    center_lat: float,
    center_lon: float,
    radius_m: float,
) -> GeofenceResult:
    """Whether a fix is inside a circular fence.

    The fix is a disc of radius `accuracy_m` around (lat, lon), not a point. It counts as
    `inside` when that disc touches the fence — distance ≤ radius + accuracy — except that the
    accuracy allowance is capped at the fence radius: a fuzzy fix may widen the circle, but never
    to more than twice its radius, so a 2 km cell-tower fix cannot "check in" at every site in
    town. `certain` is the strict reading: the whole disc lies within the fence
    (distance + accuracy ≤ radius). `inside and not certain` is the grey zone a caller may show
    as "probably there". Unknown accuracy (None) counts as 0.
    """
    _non_negative("radius_m", radius_m)
    acc = 0.0 if accuracy_m is None else accuracy_m
    _non_negative("accuracy_m", acc)
    d = haversine_m(lat, lon, center_lat, center_lon)
    return GeofenceResult(
        distance_m=d, inside=_inside(d, acc, radius_m), certain=d + acc <= radius_m
    )


def dwell(fixes: Iterable[Fix], center_lat: float, center_lon: float, radius_m: float) -> timedelta:
    """Total time inside a fence: for each run of consecutive fixes that are `inside`
    (rule of `within_geofence`), the time from its first to its last fix, summed.

    Time spent crossing the boundary is not counted (the run starts at the first inside fix),
    and a gap in reporting within a run counts as dwelling — the fixes either side say the
    device was there.
    """
    _non_negative("radius_m", radius_m)
    total = _ZERO
    run_start: datetime | None = None
    run_last: datetime | None = None
    for f in _ordered(fixes):
        d = haversine_m(f.lat, f.lon, center_lat, center_lon)
        if _inside(d, _acc(f), radius_m):
            if run_start is None:
                run_start = f.t
            run_last = f.t
        elif run_start is not None and run_last is not None:
            total += run_last - run_start
            run_start = run_last = None
    if run_start is not None and run_last is not None:
        total += run_last - run_start
    return total


def time_split(
    fixes: Iterable[Fix],
    stops: Iterable[Stop],
    moving_speed_mps: float = 2.0,
    *,
    max_gap: timedelta = DEFAULT_MAX_GAP,
    max_accuracy_m: float = DEFAULT_MAX_ACCURACY_M,
    max_speed_mps: float = DEFAULT_MAX_SPEED_MPS,
) -> TimeSplit:
    """Split the tracked time into time at stops, driving and idle.

    Each interval between consecutive accepted fixes goes to `on_stop` when both fixes belong to
    the same stop (by time: start ≤ t ≤ end), else to `driving` when the straight-line speed over
    it is ≥ `moving_speed_mps`, else to `idle` (moving slowly or standing outside a stop, e.g. in
    a traffic jam or a stop too short to count). Intervals longer than `max_gap` (20 min) are
    not counted at all: nobody knows what happened while the phone was silent.
    """
    _non_negative("moving_speed_mps", moving_speed_mps)
    seq = accepted_fixes(fixes, max_accuracy_m, max_speed_mps)
    stop_list = sorted(stops, key=lambda s: s.start)
    on_stop = driving = idle = _ZERO
    if len(seq) < 2:
        return TimeSplit(on_stop, driving, idle)

    # Which stop each fix belongs to (-1: none), by one merge-like walk over both sorted lists.
    member = [-1] * len(seq)
    p = 0
    for i, f in enumerate(seq):
        while p < len(stop_list) and stop_list[p].end < f.t:
            p += 1
        if p < len(stop_list) and stop_list[p].start <= f.t:
            member[i] = p

    for i in range(1, len(seq)):
        a, b = seq[i - 1], seq[i]
        dt = b.t - a.t
        if dt > max_gap or dt <= _ZERO:
            continue
        if member[i] >= 0 and member[i] == member[i - 1]:
            on_stop += dt
        elif haversine_m(a.lat, a.lon, b.lat, b.lon) >= moving_speed_mps * dt.total_seconds():
            driving += dt
        else:
            idle += dt
    return TimeSplit(on_stop, driving, idle)


def to_geojson_line(fixes: Iterable[Fix]) -> dict[str, Any]:
    """A GeoJSON LineString geometry (RFC 7946: longitude first), coordinates rounded to 6
    decimals (~0.1 m). Empty or one-fix input gives 0 or 1 positions — valid for Leaflet, but
    RFC 7946 asks for two or more, so check the length before publishing it elsewhere."""
    return {
        "type": "LineString",
        "coordinates": [[round(f.lon, 6), round(f.lat, 6)] for f in fixes],
    }
