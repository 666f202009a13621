"""geo.travel: the haversine matrix estimate and the OSRM table client (against a local fake
OSRM that speaks its real JSON), plus geo.solomon's reader. No database."""

from __future__ import annotations

import json
import math
import random
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, ClassVar
from urllib.parse import parse_qs, urlsplit

import numpy as np
import pytest

from geo.solomon import dimacs_matrix, parse_solomon, route_distance_dimacs
from geo.track import haversine_m
from geo.travel import (
    OSRM_UNREACHABLE,
    Location,
    OsrmClient,
    OsrmError,
    SpeedProfile,
    matrix,
    travel_matrix,
)

KAZAN = Location(55.7963, 49.1088)


def places(n: int, seed: int = 1) -> list[Location]:
    rng = random.Random(seed)
    return [
        Location(KAZAN.lat + rng.uniform(-0.3, 0.3), KAZAN.lon + rng.uniform(-0.5, 0.5))
        for _ in range(n)
    ]


# --- haversine matrix ---------------------------------------------------------------------


def test_matrix_equals_scalar_haversine_times_detour() -> None:
    pts = places(60)
    profile = SpeedProfile()
    m = matrix(pts, profile=profile)
    for i, a in enumerate(pts):
        for j, b in enumerate(pts):
            road = haversine_m(a.lat, a.lon, b.lat, b.lon) * profile.detour_factor
            assert abs(int(m.distance_m[i, j]) - road) <= 0.5 + 1e-6
            assert abs(int(m.duration_s[i, j]) - profile.duration_s(road)) <= 0.5 + 1e-6
    assert m.distance_m.dtype == np.int64
    assert m.duration_s.dtype == np.int64
    assert (np.diag(m.distance_m) == 0).all()
    assert (np.diag(m.duration_s) == 0).all()
    assert (m.distance_m == m.distance_m.T).all()


def test_matrix_of_500_places() -> None:
    # Its speed (vectorised, ~15 ms) is a benchmark's business, not a unit test's.
    pts = places(500)
    m = matrix(pts)
    assert m.distance_m.shape == (500, 500)
    assert m.duration_s.shape == (500, 500)
    assert (m.distance_m[np.triu_indices(500, 1)] > 0).all()


def test_speed_profile_town_then_country_and_rush_hour() -> None:
    profile = SpeedProfile(urban_kmh=36, rural_kmh=72, urban_km=1, detour_factor=1.0)
    assert profile.duration_s(1000) == pytest.approx(100)  # 1 km at 10 m/s
    assert profile.duration_s(3000) == pytest.approx(100 + 100)  # then 2 km at 20 m/s
    assert profile.duration_s(1000, depart_at_hour=8) == pytest.approx(135)  # rush: × 1.35
    assert profile.duration_s(1000, depart_at_hour=12) == pytest.approx(100)
    a, b = Location(55.0, 49.0), Location(55.0, 49.05)
    plain = matrix([a, b], profile=profile)
    rush = matrix([a, b], depart_at_hour=17, profile=profile)
    assert rush.distance_m[0, 1] == plain.distance_m[0, 1]
    assert abs(rush.duration_s[0, 1] - plain.duration_s[0, 1] * 1.35) <= 1  # rounding


def test_bad_inputs_are_refused() -> None:
    with pytest.raises(ValueError, match="latitude"):
        Location(91, 0)
    with pytest.raises(ValueError, match="longitude"):
        Location(0, 181)
    with pytest.raises(ValueError, match="detour"):
        SpeedProfile(detour_factor=0.9)
    with pytest.raises(ValueError, match="24"):
        SpeedProfile(hourly_factor=(1.0,))
    assert matrix([]).distance_m.shape == (0, 0)


# --- OSRM -----------------------------------------------------------------------------------


class FakeOsrm(BaseHTTPRequestHandler):
    """Answers /table/v1/driving/{lon,lat;...} like OSRM: distance = 1000 × |Δindex| m,
    duration = 100 × |Δindex| s where index is the coordinate's longitude (49 + index/100);
    a longitude of 0 has no route (null); a latitude of 0 is an InvalidQuery (HTTP 400)."""

    requests: ClassVar[list[tuple[str, dict[str, list[str]]]]] = []

    def do_GET(self) -> None:
        url = urlsplit(self.path)
        query = parse_qs(url.query)
        FakeOsrm.requests.append((url.path, query))
        prefix = "/table/v1/driving/"
        if not url.path.startswith(prefix):
            self._send(400, {"code": "InvalidUrl", "message": "URL string malformed"})
            return
        coords = [tuple(map(float, c.split(","))) for c in url.path[len(prefix) :].split(";")]
        if any(lat == 0.0 for _, lat in coords):
            self._send(400, {"code": "InvalidQuery", "message": "Query string malformed"})
            return
        n = len(coords)
        sources = [int(s) for s in query["sources"][0].split(";")] if "sources" in query else []
        dests = (
            [int(s) for s in query["destinations"][0].split(";")] if "destinations" in query else []
        )
        sources, dests = sources or list(range(n)), dests or list(range(n))
        index = [round((lon - 49.0) * 100) if lon else None for lon, _ in coords]

        def cell(i: int, j: int, unit: float) -> float | None:
            a, b = index[i], index[j]
            return None if a is None or b is None else unit * abs(a - b)

        body = {
            "code": "Ok",
            "durations": [[cell(i, j, 100.0) for j in dests] for i in sources],
            "distances": [[cell(i, j, 1000.0) for j in dests] for i in sources],
            "sources": [{"location": list(coords[i]), "name": ""} for i in sources],
            "destinations": [{"location": list(coords[j]), "name": ""} for j in dests],
        }
        self._send(200, body)

    def _send(self, status: int, body: dict[str, Any]) -> None:
        raw = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json; charset=UTF-8")
        self.send_header("Content-Length", str(len(raw)))
        self.end_headers()
        self.wfile.write(raw)

    def log_message(self, *_: object) -> None:
        pass


@pytest.fixture
def osrm_url() -> Iterator[str]:
    FakeOsrm.requests.clear()
    server = ThreadingHTTPServer(("127.0.0.1", 0), FakeOsrm)
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def line(n: int) -> list[Location]:
    return [Location(55.8, 49.0 + k / 100) for k in range(n)]


def expected(n: int, unit: int) -> np.ndarray[Any, Any]:
    k = np.arange(n)
    return unit * np.abs(k[:, None] - k[None, :])


def test_osrm_table(osrm_url: str) -> None:
    with OsrmClient(osrm_url) as client:
        m = client.table(line(5))
    assert (m.duration_s == expected(5, 100)).all()
    assert (m.distance_m == expected(5, 1000)).all()
    path, query = FakeOsrm.requests[0]
    assert path.startswith("/table/v1/driving/49.000000,55.800000;49.010000,55.800000")
    assert query["annotations"] == ["duration,distance"]


def test_osrm_table_in_blocks(osrm_url: str) -> None:
    with OsrmClient(osrm_url, max_locations=4) as client:
        m = client.table(line(9))
    assert (m.duration_s == expected(9, 100)).all()
    assert (m.distance_m == expected(9, 1000)).all()
    assert len(FakeOsrm.requests) > 1
    assert all(len(p.rsplit("/", 1)[1].split(";")) <= 4 for p, _ in FakeOsrm.requests)


def test_osrm_no_route_is_unreachable(osrm_url: str) -> None:
    pts = [*line(2), Location(55.8, 0.0)]
    with OsrmClient(osrm_url) as client:
        m = client.table(pts)
    assert m.duration_s[0, 2] == OSRM_UNREACHABLE
    assert m.distance_m[2, 1] == OSRM_UNREACHABLE
    assert m.duration_s[0, 1] == 100


def test_osrm_error_is_raised_clearly(osrm_url: str) -> None:
    with OsrmClient(osrm_url) as client, pytest.raises(OsrmError) as caught:
        client.table([Location(0.0, 49.0), Location(0.0, 49.01)])
    assert caught.value.code == "InvalidQuery"
    assert "Query string malformed" in str(caught.value)


def test_osrm_down_is_an_osrm_error() -> None:
    with OsrmClient("http://127.0.0.1:9", timeout=2) as client, pytest.raises(OsrmError):
        client.table(line(2))


def test_travel_matrix_uses_osrm_when_configured(osrm_url: str) -> None:
    m = travel_matrix(line(3), osrm_url=osrm_url)
    assert (m.duration_s == expected(3, 100)).all()
    assert travel_matrix(line(3)).duration_s[0, 1] != 100  # the estimate


def test_travel_matrix_falls_back_or_raises(osrm_url: str) -> None:
    bad = [Location(0.0, 49.0), Location(0.0, 49.01)]
    fallback = travel_matrix(bad, osrm_url=osrm_url)
    assert (fallback.distance_m == matrix(bad).distance_m).all()
    with pytest.raises(OsrmError):
        travel_matrix(bad, osrm_url=osrm_url, fallback=False)


# --- Solomon reader -------------------------------------------------------------------------

TINY = """TINY1\r
\r
VEHICLE\r
NUMBER     CAPACITY\r
  2         10\r
\r
CUSTOMER\r
CUST NO.  XCOORD.   YCOORD.    DEMAND   READY TIME  DUE DATE   SERVICE   TIME\r
 \r
    0      0         0          0          0       1000          0\r
    1      3         4          5          0        100         10\r
    2      1         1          5         50        200         10\r
"""


def test_solomon_reader_and_dimacs_distances() -> None:
    inst = parse_solomon(TINY)
    assert (inst.name, inst.vehicles, inst.capacity) == ("TINY1", 2, 10)
    assert [c.number for c in inst.customers] == [0, 1, 2]
    assert inst.customers[2].ready == 50
    assert inst.customers[1].service == 10
    d = dimacs_matrix(inst)
    assert d[0, 1] == 50  # 5.0 exactly
    assert d[0, 2] == math.floor(10 * math.sqrt(2))  # 1.41.. truncated to 1.4
    assert d[1, 2] == math.floor(10 * math.sqrt(13))
    assert route_distance_dimacs(inst, [1, 2]) == (50 + 36 + 14) / 10
    with pytest.raises(ValueError, match="VEHICLE"):
        parse_solomon("X\nCUSTOMER\n0 0 0 0 0 1 0\n")
