"""Travel distances and times between places: an estimate that needs nothing, and OSRM.

- `matrix` estimates every pair of N places at once with numpy: great-circle distance (the
  same sphere as `geo.track.haversine_m`) × a detour factor (roads are not straight; 1.3 is the
  usual urban/suburban figure), driven at a `SpeedProfile`: short trips at town speed, the part
  of a trip beyond `urban_km` at country speed, times an hour-of-day factor (rush hours).
- `OsrmClient.table` asks an OSRM server's ``table`` service for real road distances and
  durations; `travel_matrix` uses it when given a server URL (the backend passes
  ``FIELDCRM_OSRM_URL`` from its settings) and falls back to the
  estimate (with a logged warning) when the server fails.

All matrices are integers (metres, seconds): the route optimiser (PyVRP) needs integers and a
metre/second is far below what matters in field work. Row i, column j is the trip i → j.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, NamedTuple

import httpx
import numpy as np
import numpy.typing as npt

from geo.track import EARTH_RADIUS_M

__all__ = [
    "DEFAULT_SPEED_PROFILE",
    "OSRM_UNREACHABLE",
    "Location",
    "Matrices",
    "OsrmClient",
    "OsrmError",
    "SpeedProfile",
    "haversine_matrix_m",
    "matrix",
    "travel_matrix",
]

log = logging.getLogger(__name__)

IntMatrix = npt.NDArray[np.int64]

OSRM_UNREACHABLE = 1_000_000_000
"""Distance (m) and duration (s) used where OSRM finds no route (it answers ``null``)."""

_RUSH = {7: 1.25, 8: 1.35, 9: 1.15, 16: 1.15, 17: 1.35, 18: 1.25}


@dataclass(frozen=True, slots=True)
class Location:
    """A place in WGS 84 degrees (latitude first, as people write it)."""

    lat: float
    lon: float

    def __post_init__(self) -> None:
        if not -90.0 <= self.lat <= 90.0:
            raise ValueError(f"latitude out of range: {self.lat!r}")
        if not -180.0 <= self.lon <= 180.0:
            raise ValueError(f"longitude out of range: {self.lon!r}")


@dataclass(frozen=True, slots=True)
class SpeedProfile:
    """How fast a field worker drives: the first `urban_km` of a trip at `urban_kmh`, the rest
    at `rural_kmh`; road distance = straight distance × `detour_factor`. `hourly_factor[h]`
    multiplies travel times for trips leaving at hour h (local time) when an hour is given."""

    urban_kmh: float = 30.0
    rural_kmh: float = 70.0
    urban_km: float = 8.0
    detour_factor: float = 1.3
    hourly_factor: tuple[float, ...] = field(
        default_factory=lambda: tuple(_RUSH.get(h, 1.0) for h in range(24))
    )

    def __post_init__(self) -> None:
        if min(self.urban_kmh, self.rural_kmh) <= 0 or self.urban_km < 0:
            raise ValueError("speeds must be > 0 and urban_km >= 0")
        if self.detour_factor < 1.0:
            raise ValueError("detour_factor must be >= 1")
        if len(self.hourly_factor) != 24 or min(self.hourly_factor) <= 0:
            raise ValueError("hourly_factor needs 24 positive factors")

    def duration_s(self, road_m: float, depart_at_hour: int | None = None) -> float:
        """Seconds to drive `road_m` metres of road (scalar form of what `matrix` does)."""
        urban_m = self.urban_km * 1000.0
        t = min(road_m, urban_m) / (self.urban_kmh / 3.6)
        t += max(0.0, road_m - urban_m) / (self.rural_kmh / 3.6)
        return t * self._factor(depart_at_hour)

    def _factor(self, depart_at_hour: int | None) -> float:
        return 1.0 if depart_at_hour is None else self.hourly_factor[depart_at_hour % 24]


DEFAULT_SPEED_PROFILE = SpeedProfile()


class Matrices(NamedTuple):
    """Square integer matrices: metres and seconds from row to column."""

    distance_m: IntMatrix
    duration_s: IntMatrix


def _coords(locations: Sequence[Location]) -> tuple[npt.NDArray[np.float64], ...]:
    lat = np.radians(np.fromiter((p.lat for p in locations), np.float64, len(locations)))
    lon = np.radians(np.fromiter((p.lon for p in locations), np.float64, len(locations)))
    return lat, lon


def haversine_matrix_m(locations: Sequence[Location]) -> npt.NDArray[np.float64]:
    """Great-circle distances (m, float) between all pairs, vectorised; entry (i, j) equals
    `geo.track.haversine_m` of the two places."""
    lat, lon = _coords(locations)
    s_dlat = np.sin((lat[None, :] - lat[:, None]) / 2.0)
    s_dlon = np.sin((lon[None, :] - lon[:, None]) / 2.0)
    cos_lat = np.cos(lat)
    h = s_dlat * s_dlat + np.outer(cos_lat, cos_lat) * s_dlon * s_dlon
    result: npt.NDArray[np.float64] = 2.0 * EARTH_RADIUS_M * np.arcsin(np.sqrt(np.minimum(1.0, h)))
    return result


def matrix(
    locations: Sequence[Location],
    depart_at_hour: int | None = None,
    profile: SpeedProfile = DEFAULT_SPEED_PROFILE,
) -> Matrices:
    """Estimated road distances (m) and driving times (s) between all pairs of `locations`,
    computed with numpy (N = 1,000 takes milliseconds). The diagonal is 0."""
    road = haversine_matrix_m(locations) * profile.detour_factor
    urban_m = profile.urban_km * 1000.0
    seconds = np.minimum(road, urban_m) / (profile.urban_kmh / 3.6)
    seconds += np.maximum(0.0, road - urban_m) / (profile.rural_kmh / 3.6)
    seconds *= profile._factor(depart_at_hour)
    return Matrices(np.rint(road).astype(np.int64), np.rint(seconds).astype(np.int64))


class OsrmError(RuntimeError):
    """OSRM could not answer: transport failure, an HTTP error, or a ``code`` other than
    ``Ok`` (``code`` and OSRM's ``message`` are kept)."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(f"OSRM {code}: {message}")
        self.code = code
        self.message = message


class OsrmClient:
    """Client of OSRM's ``table`` service (``/table/v1/{profile}/{lon,lat;...}``).

    Large tables are asked in blocks of at most `max_locations` coordinates per request
    (OSRM's default ``--max-table-size`` is 100). Use as a context manager or call `close`.
    """

    def __init__(
        self,
        base_url: str,
        timeout: float = 10.0,
        *,
        profile: str = "driving",
        max_locations: int = 100,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        if max_locations < 2:
            raise ValueError("max_locations must be >= 2")
        self.base_url = base_url.rstrip("/")
        self.profile = profile
        self.max_locations = max_locations
        self._http = httpx.Client(timeout=timeout, transport=transport)

    def close(self) -> None:
        """Close the HTTP connection pool."""
        self._http.close()

    def __enter__(self) -> OsrmClient:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    def table(self, locations: Sequence[Location]) -> Matrices:
        """Road distances (m) and durations (s) between all pairs; ``null`` (no route) becomes
        `OSRM_UNREACHABLE`. Raises `OsrmError` on any failure."""
        n = len(locations)
        distance = np.zeros((n, n), np.int64)
        duration = np.zeros((n, n), np.int64)
        if n < 2:
            return Matrices(distance, duration)
        block = max(1, self.max_locations // 2) if n > self.max_locations else n
        starts = range(0, n, block)
        for i0 in starts:
            for j0 in starts:
                rows = list(range(i0, min(n, i0 + block)))
                cols = list(range(j0, min(n, j0 + block)))
                self._block(locations, rows, cols, distance, duration)
        return Matrices(distance, duration)

    def _block(
        self,
        locations: Sequence[Location],
        rows: list[int],
        cols: list[int],
        distance: IntMatrix,
        duration: IntMatrix,
    ) -> None:
        same = rows == cols
        points = rows if same else rows + cols
        coords = ";".join(f"{locations[k].lon:.6f},{locations[k].lat:.6f}" for k in points)
        params = {"annotations": "duration,distance"}
        if not same:
            params["sources"] = ";".join(str(k) for k in range(len(rows)))
            params["destinations"] = ";".join(str(len(rows) + k) for k in range(len(cols)))
        url = f"{self.base_url}/table/v1/{self.profile}/{coords}"
        body = self._get(url, params)
        durations = _grid(body, "durations", len(rows), len(cols))
        distances = _grid(body, "distances", len(rows), len(cols))
        idx = np.ix_(rows, cols)
        duration[idx] = durations
        distance[idx] = distances

    def _get(self, url: str, params: Mapping[str, str]) -> dict[str, Any]:
        try:
            answer = self._http.get(url, params=params)
        except httpx.HTTPError as exc:
            raise OsrmError("TransportError", str(exc)) from exc
        try:
            body = answer.json()
        except ValueError:
            body = None
        if not isinstance(body, dict):
            raise OsrmError(f"HTTP{answer.status_code}", "answer is not an OSRM JSON object")
        code = str(body.get("code", f"HTTP{answer.status_code}"))
        if code != "Ok" or answer.status_code >= 400:
            raise OsrmError(code, str(body.get("message", "")))
        return body


def _grid(body: Mapping[str, Any], key: str, rows: int, cols: int) -> IntMatrix:
    raw = body.get(key)
    if not isinstance(raw, list) or len(raw) != rows or any(len(r) != cols for r in raw):
        raise OsrmError("InvalidResponse", f"{key} missing or not {rows}×{cols}")
    values = np.array(
        [[OSRM_UNREACHABLE if v is None else v for v in r] for r in raw], dtype=np.float64
    )
    return np.rint(np.minimum(values, OSRM_UNREACHABLE)).astype(np.int64)


def travel_matrix(
    locations: Sequence[Location],
    depart_at_hour: int | None = None,
    *,
    osrm_url: str | None = None,
    profile: SpeedProfile = DEFAULT_SPEED_PROFILE,
    fallback: bool = True,
) -> Matrices:
    """Distances and durations for `locations`: from OSRM when `osrm_url` is given (the
    backend passes ``FIELDCRM_OSRM_URL``), else — or when OSRM fails and `fallback` is on — the
    haversine estimate of `matrix`. OSRM's durations do not depend on the hour."""
    if osrm_url:
        try:
            with OsrmClient(osrm_url) as client:
                return client.table(locations)
        except OsrmError as exc:
            if not fallback:
                raise
            log.warning("OSRM table failed (%s); using the haversine estimate", exc.code)
    return matrix(locations, depart_at_hour, profile)
