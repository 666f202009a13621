"""Simulated field day: drive the demo workers through today's visits over the real API.

Usage (against a running ``make demo`` server; ``make simulate`` runs the same)::

    uv run python scripts/simulate_gps.py --base-url http://127.0.0.1:8000 [--speedup 10]
        [--workers igor,marat,...] [--once] [--seed N] [--osmand marat]
        [--fake-checkin WORKER [--fake-how far|mocked|both]] [--keep-shift]
        [--min-dwell-real 130] [--live-every 20]

Each demo field worker (measurers igor, marat; installers alexey, rinat, sergey; salesperson
elena) logs in with the demo password (``FIELDCRM_DEMO_PASSWORD``, default windows-demo-2026),
fetches their open visits for today (``backend.seed.visits`` seeds them) and the sites' positions,
starts a shift and then lives through the day: from home (installers: the warehouse) they drive
to each visit in window order along a street-grid path at 25-60 km/h, slowing for turns and
traffic, stopping 20-90 s at red lights; at each site they park, walk to the door, check in
(``POST /api/v1/tasks/{id}/check-in``), stay 10-40 minutes and check out with an outcome; at the
end they drive home and end the shift (unless ``--keep-shift``). The phone reports a fix every
5 s while moving and every 30 s while still, with GPS noise (about 5 m; accuracy 3-15 m; now
and then a 30-60 m outlier) and a slowly draining battery. Fixes go in batches (every 30 s of
simulated time or 10 fixes) to ``POST /api/v1/tracking/pings`` with an ``Idempotency-Key``;
a batch that meets a network error or a 5xx is sent again with the same key. The ``--osmand``
worker (default marat) sends each fix like the Traccar Client app instead
(``/api/v1/tracking/osmand?id=demo-marat-phone&lat=..&lon=..&timestamp=..&speed=<knots>..``).

``--fake-checkin WORKER`` makes one worker cheat on the first visit: ``far`` checks in from
2 km away (judged unverified, ``outside_site``), ``mocked`` reports a mocked location (judged
suspicious); ``both`` does ``far`` at the first visit and ``mocked`` at the second.

Time: simulated time runs ``--speedup`` times faster than the clock, but every timestamp sent is
the real time of sending (the server refuses fixes more than 5 minutes ahead, and judges
check-ins at its own clock). So the *path* is compressed, not the clock: at speedup 10 a
10-minute drive takes one real minute and its fixes carry that minute's timestamps (the implied
speed between fixes is 10 times the reported one). The server flags a visit shorter than
2 real minutes (``short_visit``), so a stay on site lasts at least ``--min-dwell-real`` real
seconds (default 130; 0 keeps the simulated 10-40 minutes, compressed). The OsmAnd worker sends
Unix seconds when fixes are at least 2 real seconds apart (speedup <= 2.5), Unix milliseconds
otherwise (as the OsmAnd app does), so that no two fixes share a timestamp.

``--once`` stops each worker after their first check-out (a quick check). ``--live-every N``
logs in as the demo admin and prints the live board (``GET /api/v1/tracking/live``) every N
real seconds. The pure parts (``street_path``, ``drive``, ``observe``, ``plan_day``) take a
``random.Random`` and need no server; ``tests/test_simulate.py`` checks them.
"""

from __future__ import annotations

import argparse
import asyncio
import math
import random
import sys
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from itertools import pairwise
from typing import Any, Literal
from zoneinfo import ZoneInfo

import httpx

from backend.accounts.models import Role, Skill
from backend.seed.demo import DEMO_ADMIN_EMAIL, DEMO_USERS, demo_password, kazan_point
from backend.seed.demo import random_district as demo_district
from backend.seed.visits import device_identifier
from geo.track import haversine_m

LatLon = tuple[float, float]
FakeHow = Literal["far", "mocked"]

# --- the numbers of the simulation ---------------------------------------------------------------

MIN_CRUISE_MPS = 25 / 3.6
MAX_CRUISE_MPS = 60 / 3.6
TURN_MPS = (3.5, 6.0)  # speed through a corner
SLOWDOWN = (0.45, 0.7)  # cruise factor of a congested stretch
ACCEL_MPS2 = 1.5
BRAKE_MPS2 = 2.0
LIGHT_EVERY_M = (350.0, 900.0)
RED_LIGHT_P = 0.45
RED_LIGHT_S = (20.0, 90.0)
MOVING_FIX_S = 5.0
STILL_FIX_S = 30.0
NOISE_SIGMA_M = 4.0  # per axis: about 5 m from the truth on average
NOISE_CUT_SIGMAS = 3.0
ACCURACY_M = (3.0, 15.0)
OUTLIER_P = 0.02
OUTLIER_M = (30.0, 60.0)
OUTLIER_ACCURACY_M = (20.0, 50.0)
DWELL_S = (600.0, 2400.0)
WALK_S = (60.0, 150.0)  # from the car to the door, and back
PARK_M = (20.0, 50.0)  # where the car stands, from the site's point
DOOR_M = 8.0
FAKE_FAR_M = 2000.0
MAX_WAIT_S = 3600.0  # waiting for a window to open, at most
BATTERY_DRAIN_PER_S = {True: 4.5 / 3600, False: 1.5 / 3600}  # percent; moving / still
DEPOT: LatLon = (55.814, 49.025)  # the warehouse, Kirovsky district
_M_PER_DEG_LAT = 111_195.0

OUTCOMES = {
    "measurement": (
        "Замер выполнен, эскизы и размеры в карточке.",
        "Замер выполнен, клиент ждёт расчёт сегодня.",
        "Замер выполнен, откосы под замену.",
    ),
    "installation": (
        "Монтаж выполнен, мусор вывезли, акт подписан.",
        "Монтаж выполнен, откосы отделаны.",
        "Монтаж выполнен, регулировка фурнитуры через неделю.",
    ),
    "visit": (
        "КП вручено, клиент думает до пятницы.",
        "Договор подписан, предоплата 30 %.",
        "Показали образцы, выбран профиль 70 мм.",
    ),
}


# --- geometry ------------------------------------------------------------------------------------


def move(point: LatLon, north_m: float, east_m: float) -> LatLon:
    """``point`` moved by metres north and east (flat Earth: fine within a city)."""
    lat, lon = point
    return (
        lat + north_m / _M_PER_DEG_LAT,
        lon + east_m / (_M_PER_DEG_LAT * math.cos(math.radians(lat))),
    )


def metres(a: LatLon, b: LatLon) -> tuple[float, float]:
    """(north, east) in metres from ``a`` to ``b``."""
    north = (b[0] - a[0]) * _M_PER_DEG_LAT
    east = (b[1] - a[1]) * _M_PER_DEG_LAT * math.cos(math.radians((a[0] + b[0]) / 2))
    return north, east


def distance(a: LatLon, b: LatLon) -> float:
    """Great-circle distance in metres."""
    return haversine_m(a[0], a[1], b[0], b[1])


def bearing(a: LatLon, b: LatLon) -> float:
    """Degrees clockwise from north, from ``a`` towards ``b`` (0 for the same point)."""
    north, east = metres(a, b)
    return math.degrees(math.atan2(east, north)) % 360.0


def street_path(start: LatLon, end: LatLon, rng: random.Random) -> list[LatLon]:
    """Waypoints from ``start`` to ``end`` along a plausible street grid, not a straight line.

    The grid has a random orientation; the way alternates between its two directions (an L for
    short trips, a staircase of 2-4 turns for longer ones), corners are jittered by up to ~20 m
    and long legs get small bends, as real streets have.
    """
    north, east = metres(start, end)
    straight = math.hypot(north, east)
    if straight < 30.0:
        return [start, end]
    theta = rng.uniform(0.0, math.pi / 2)
    u = (math.cos(theta), math.sin(theta))  # (north, east) of the grid's first direction
    v = (-math.sin(theta), math.cos(theta))
    a = north * u[0] + east * u[1]
    b = north * v[0] + east * v[1]
    turns = 1 if straight < 1500.0 else rng.randint(2, 4)
    legs = turns + 1
    along_u = [i % 2 == 0 for i in range(legs)]
    if rng.random() < 0.5:
        along_u = [not x for x in along_u]
    n_u, n_v = sum(along_u), legs - sum(along_u)
    shares_u = _shares(rng, n_u)
    shares_v = _shares(rng, n_v)
    corners: list[tuple[float, float]] = [(0.0, 0.0)]
    x = y = 0.0
    iu = iv = 0
    for leg_u in along_u:
        if leg_u:
            x += a * shares_u[iu]
            iu += 1
        else:
            y += b * shares_v[iv]
            iv += 1
        corners.append((x, y))
    points: list[LatLon] = [start]
    for i in range(1, len(corners)):
        (x0, y0), (x1, y1) = corners[i - 1], corners[i]
        length = math.hypot(x1 - x0, y1 - y0)
        bends = int(length // 450.0)
        for k in range(1, bends + 1):  # small bends along a long street
            f = k / (bends + 1)
            wiggle = rng.gauss(0.0, 6.0)
            px, py = x0 + (x1 - x0) * f, y0 + (y1 - y0) * f
            if x1 != x0:
                py += wiggle
            else:
                px += wiggle
            points.append(_grid_point(start, u, v, px, py))
        if i < len(corners) - 1:
            jx = max(-20.0, min(20.0, rng.gauss(0.0, 8.0)))
            jy = max(-20.0, min(20.0, rng.gauss(0.0, 8.0)))
            points.append(_grid_point(start, u, v, x1 + jx, y1 + jy))
    points.append(end)
    return [p for i, p in enumerate(points) if i == 0 or distance(points[i - 1], p) > 1.0]


def _shares(rng: random.Random, n: int) -> list[float]:
    if n == 0:
        return []
    weights = [rng.uniform(0.5, 1.5) for _ in range(n)]
    total = sum(weights)
    return [w / total for w in weights]


def _grid_point(
    origin: LatLon, u: tuple[float, float], v: tuple[float, float], x: float, y: float
) -> LatLon:
    return move(origin, x * u[0] + y * v[0], x * u[1] + y * v[1])


def path_length(path: Sequence[LatLon]) -> float:
    """Length in metres of a polyline."""
    return sum(distance(a, b) for a, b in pairwise(path))


# --- driving -------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Sample:
    """Where the worker truly is at ``t`` (simulated seconds since the day began)."""

    t: float
    lat: float
    lon: float
    speed: float  # m/s
    heading: float | None
    moving: bool
    activity: str = "in_vehicle"


@dataclass(frozen=True, slots=True)
class _Limit:
    s: float  # metres along the path
    speed: float  # at most this fast when passing
    stop_s: float = 0.0  # a red light: stand this long


def _limits(path: Sequence[LatLon], cum: list[float], rng: random.Random) -> list[_Limit]:
    limits: list[_Limit] = []
    for i in range(1, len(path) - 1):
        turn = abs(
            (bearing(path[i], path[i + 1]) - bearing(path[i - 1], path[i]) + 180) % 360 - 180
        )
        if turn > 25.0:
            red = rng.random() < RED_LIGHT_P * 0.8
            limits.append(
                _Limit(
                    cum[i],
                    0.0 if red else rng.uniform(*TURN_MPS),
                    rng.uniform(*RED_LIGHT_S) if red else 0.0,
                )
            )
    s = rng.uniform(*LIGHT_EVERY_M)
    while s < cum[-1] - 150.0:
        if rng.random() < RED_LIGHT_P:
            limits.append(_Limit(s, 0.0, rng.uniform(*RED_LIGHT_S)))
        s += rng.uniform(*LIGHT_EVERY_M)
    limits.append(_Limit(cum[-1], 0.0))
    return sorted(limits, key=lambda c: c.s)


def _cruise_profile(cum: list[float], rng: random.Random) -> list[tuple[float, float]]:
    """(from metre, cruise m/s) stretches: a speed per street, some congested."""
    out = []
    for i in range(len(cum) - 1):
        cruise = rng.uniform(MIN_CRUISE_MPS, MAX_CRUISE_MPS)
        out.append((cum[i], cruise))
        if cum[i + 1] - cum[i] > 500.0 and rng.random() < 0.3:
            start = rng.uniform(cum[i], cum[i + 1] - 300.0)
            out.append((start, cruise * rng.uniform(*SLOWDOWN)))
            out.append((start + rng.uniform(150.0, 300.0), cruise))
    return sorted(out)


def _at(path: Sequence[LatLon], cum: list[float], s: float) -> tuple[LatLon, float]:
    """The point ``s`` metres along the path, and the heading there."""
    s = max(0.0, min(s, cum[-1]))
    i = 1
    while i < len(cum) - 1 and cum[i] < s:
        i += 1
    a, b = path[i - 1], path[i]
    seg = cum[i] - cum[i - 1]
    f = 0.0 if seg <= 0 else (s - cum[i - 1]) / seg
    return (a[0] + (b[0] - a[0]) * f, a[1] + (b[1] - a[1]) * f), bearing(a, b)


def drive(path: Sequence[LatLon], t0: float, rng: random.Random) -> list[Sample]:
    """The true states of a drive along ``path`` from simulated second ``t0``: one every 5 s
    while moving and every 30 s while standing at a red light, ending stopped at the last point.

    Speeds never exceed 60 km/h; each street has a cruise speed of 25-60 km/h (some stretches
    congested), the car accelerates at 1.5 m/s² and brakes at 2 m/s² for corners, red lights
    (20-90 s) and the destination.
    """
    cum = [0.0]
    for a, b in pairwise(path):
        cum.append(cum[-1] + distance(a, b))
    limits = _limits(path, cum, rng)
    profile = _cruise_profile(cum, rng)
    samples: list[Sample] = []
    t, s, v = t0, 0.0, 0.0
    last_emit = -math.inf
    next_limit = 0
    dt = 1.0

    def emit(moving: bool) -> None:
        nonlocal last_emit
        point, heading = _at(path, cum, s)
        if samples and samples[-1].t >= t:
            samples.pop()  # stopping right after a fix: the stop replaces it
        samples.append(Sample(t, point[0], point[1], v, heading if moving else None, moving))
        last_emit = t

    emit(False)
    while True:
        while next_limit < len(limits) and limits[next_limit].s < s - 0.01:
            next_limit += 1
        limit = limits[next_limit] if next_limit < len(limits) else None
        if limit is not None and limit.speed == 0.0 and s >= limit.s - 0.5:
            s, v = limit.s, 0.0
            if limit is limits[-1]:
                t += dt
                emit(False)
                return samples
            emit(False)
            end = t + limit.stop_s
            while t + STILL_FIX_S < end:
                t += STILL_FIX_S
                emit(False)
            t = end
            next_limit += 1
            continue
        cruise = next(c for start, c in reversed(profile) if start <= s + 1e-9)
        target = cruise
        for lim in limits[next_limit:]:
            if lim.s - s > 400.0:
                break
            target = min(target, math.sqrt(lim.speed**2 + 2 * BRAKE_MPS2 * max(lim.s - s, 0.0)))
        if v < target:
            v = min(target, v + ACCEL_MPS2 * dt)
        else:
            v = max(target, v - BRAKE_MPS2 * 1.5 * dt)
        v = max(v, 1.0)  # creeping, never standing, between stops
        if limit is not None:
            v = min(v, max(limit.s - s, 0.5) / dt) if limit.speed == 0.0 else v
        v = min(v, MAX_CRUISE_MPS)
        s += v * dt
        t += dt
        if t - last_emit >= MOVING_FIX_S - 1e-9:
            emit(True)


# --- the phone -----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Fix:
    """What the phone reports: a noisy position with its accuracy, at simulated second ``t``."""

    t: float
    lat: float
    lon: float
    true_lat: float
    true_lon: float
    accuracy: float
    speed: float
    heading: float | None
    battery: float
    activity: str
    moving: bool


def noise(rng: random.Random, *, outliers: bool = True) -> tuple[float, float, float]:
    """(north m, east m, reported accuracy m) of one fix's error: Gaussian, about 5 m from the
    truth and cut at 3 sigma, accuracy 3-15 m; with ``outliers``, 2 % of fixes are 30-60 m off
    and say so (accuracy 20-50 m)."""
    if outliers and rng.random() < OUTLIER_P:
        d = rng.uniform(*OUTLIER_M)
        a = rng.uniform(0.0, 2 * math.pi)
        return d * math.cos(a), d * math.sin(a), rng.uniform(*OUTLIER_ACCURACY_M)
    cut = NOISE_CUT_SIGMAS * NOISE_SIGMA_M
    north = max(-cut, min(cut, rng.gauss(0.0, NOISE_SIGMA_M)))
    east = max(-cut, min(cut, rng.gauss(0.0, NOISE_SIGMA_M)))
    accuracy = math.hypot(north, east) * 1.2 + rng.uniform(2.0, 5.0)
    return north, east, round(max(ACCURACY_M[0], min(ACCURACY_M[1], accuracy)), 1)


def observe(sample: Sample, battery: float, rng: random.Random, *, outliers: bool = True) -> Fix:
    """The phone's fix of a true state."""
    north, east, accuracy = noise(rng, outliers=outliers)
    lat, lon = move((sample.lat, sample.lon), north, east)
    return Fix(
        t=sample.t,
        lat=round(lat, 7),
        lon=round(lon, 7),
        true_lat=sample.lat,
        true_lon=sample.lon,
        accuracy=accuracy,
        speed=round(sample.speed, 2),
        heading=None if sample.heading is None else round(sample.heading, 1),
        battery=round(battery, 1),
        activity=sample.activity if sample.moving else "still",
        moving=sample.moving,
    )


# --- the day -------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Visit:
    """A visit to make: the task and where its site is."""

    task_id: str
    title: str
    kind: str
    lat: float
    lon: float
    window_start: datetime | None = None


@dataclass(frozen=True, slots=True)
class Step:
    """One thing the phone does at simulated second ``fix.t``: send a fix, check in or out."""

    action: Literal["fix", "check_in", "check_out"]
    fix: Fix
    visit: Visit | None = None
    outcome: str = ""
    mocked: bool = False


@dataclass
class _Day:
    """The day being planned: ``t`` is the simulated time now, ``last`` that of the last fix
    (fixes are strictly increasing in time)."""

    rng: random.Random
    steps: list[Step] = field(default_factory=list)
    battery: float = 100.0
    t: float = 0.0
    last: float = -math.inf

    def fix(self, sample: Sample, *, outliers: bool = True) -> Fix:
        if self.last > -math.inf:
            self.battery -= BATTERY_DRAIN_PER_S[sample.moving] * (sample.t - self.last)
        self.battery = max(self.battery, 5.0)
        self.last = sample.t
        self.t = max(self.t, sample.t)
        return observe(sample, self.battery, self.rng, outliers=outliers)

    def now(self) -> float:
        """A moment for a new fix: now, and after the last fix."""
        self.t = max(self.t, self.last + 1.0)
        return self.t

    def send(self, sample: Sample) -> None:
        if sample.t > self.last:
            self.steps.append(Step("fix", self.fix(sample)))

    def stand(self, at: LatLon, until: float, activity: str = "still") -> None:
        """Still at ``at`` until ``until``: a fix now and every 30 s."""
        t = self.now()
        while True:
            self.send(Sample(t, at[0], at[1], 0.0, None, False, activity))
            if t + STILL_FIX_S >= until:
                break
            t += STILL_FIX_S
        self.t = max(self.t, until)

    def drive_to(self, start: LatLon, end: LatLon) -> None:
        for sample in drive(street_path(start, end, self.rng), self.now(), self.rng):
            self.send(sample)


def plan_day(
    home: LatLon,
    visits: Sequence[Visit],
    rng: random.Random,
    *,
    start: datetime,
    min_dwell_s: float = 0.0,
    fakes: dict[int, FakeHow] | None = None,
    go_home: bool = True,
    battery: float | None = None,
) -> list[Step]:
    """Everything the phone does in the day, in order of simulated time (seconds after
    ``start``): drive from ``home`` to each visit (in the given order), wait there for a window
    that opens later, park, walk to the door, check in, stay 10-40 minutes (at least
    ``min_dwell_s``), check out, walk back; finally drive home.

    ``fakes`` maps a visit's index to how the worker cheats there: ``far`` stays 2 km away and
    checks in from there; ``mocked`` drives there but reports a mocked location.
    """
    day = _Day(rng, battery=battery if battery is not None else rng.uniform(78.0, 100.0))
    fakes = fakes or {}
    here = home
    day.stand(here, 0.0)
    for index, visit in enumerate(visits):
        site = (visit.lat, visit.lon)
        how = fakes.get(index)
        if how == "far":
            angle = rng.uniform(0.0, 2 * math.pi)
            site = move(site, FAKE_FAR_M * math.cos(angle), FAKE_FAR_M * math.sin(angle))
        angle = rng.uniform(0.0, 2 * math.pi)
        park_m = rng.uniform(*PARK_M)
        park = move(site, park_m * math.cos(angle), park_m * math.sin(angle))
        day.drive_to(here, park)
        if visit.window_start is not None:
            opens = (visit.window_start - start).total_seconds() - 300.0
            if opens > day.t:
                day.stand(park, min(opens, day.t + MAX_WAIT_S))
        door = move(site, rng.uniform(-DOOR_M, DOOR_M), rng.uniform(-DOOR_M, DOOR_M))
        day.stand(park, day.now() + rng.uniform(*WALK_S), "on_foot")
        arrive = Sample(day.now(), door[0], door[1], 0.0, None, False, "still")
        check_in = day.fix(arrive, outliers=False)
        day.steps.append(Step("fix", check_in))
        day.steps.append(Step("check_in", check_in, visit, mocked=how == "mocked"))
        stay = max(rng.uniform(*DWELL_S), min_dwell_s)
        day.t = check_in.t + STILL_FIX_S
        day.stand(door, check_in.t + stay)
        leave_at = Sample(day.now(), door[0], door[1], 0.0, None, False, "still")
        leave = day.fix(leave_at, outliers=False)
        day.steps.append(Step("fix", leave))
        outcome = rng.choice(OUTCOMES.get(visit.kind, OUTCOMES["visit"]))
        day.steps.append(Step("check_out", leave, visit, outcome, mocked=how == "mocked"))
        day.stand(park, day.now() + rng.uniform(*WALK_S), "on_foot")
        here = park
    if go_home and visits:
        day.drive_to(here, home)
    return day.steps


def home_of(key: str, skills: Sequence[str], seed: int) -> LatLon:
    """Where a worker's day starts: the warehouse for installers, else home (a fixed point in
    a Kazan district, drawn from ``seed`` and the worker's key)."""
    if Skill.INSTALLER.value in skills:
        return DEPOT
    rng = random.Random(f"{seed}:home:{key}")  # noqa: S311 - a simulation
    return kazan_point(rng, demo_district(rng))


# --- the server ----------------------------------------------------------------------------------


class ApiError(RuntimeError):
    """The server answered something the simulator cannot go on with."""


def _say(worker: str, action: str, detail: str, t: float | None = None) -> None:
    now = datetime.now().strftime("%H:%M:%S")
    sim = f"+{int(t // 3600)}:{int(t % 3600 // 60):02d}" if t is not None else "     "
    print(f"{now} {sim:>6} {worker:<7} {action:<11} {detail}", flush=True)


class Api:
    """One user's session with the server: tokens, retries."""

    def __init__(self, client: httpx.AsyncClient, email: str, password: str) -> None:
        self.client = client
        self.email = email
        self.password = password
        self.token: str | None = None

    async def login(self) -> None:
        """Log in with email and password (``POST /api/v1/auth/token``)."""
        r = await self.client.post(
            "/api/v1/auth/token", json={"email": self.email, "password": self.password}
        )
        if r.status_code != 200:
            raise ApiError(f"login as {self.email}: {r.status_code} {r.text[:300]}")
        self.token = r.json()["accessToken"]

    async def call(
        self,
        method: str,
        path: str,
        *,
        json: Any = None,
        params: dict[str, Any] | None = None,
        headers: dict[str, str] | None = None,
        retry: bool = False,
    ) -> httpx.Response:
        """A request with the bearer token; logs in again on 401 (tokens last 15 minutes).
        With ``retry``, network errors and 5xx are tried again (same headers, so the same
        Idempotency-Key) up to 5 times; without it only failed connects are."""
        delay = 0.5
        relogged = False
        for attempt in range(6):
            if self.token is None:
                await self.login()
            sent = {"Authorization": f"Bearer {self.token}", **(headers or {})}
            try:
                r = await self.client.request(method, path, json=json, params=params, headers=sent)
            except httpx.TransportError as exc:
                # A request that may have reached the server is sent again only when that is
                # safe (an Idempotency-Key, or nothing was sent yet).
                unsent = isinstance(exc, httpx.ConnectError | httpx.ConnectTimeout)
                if attempt == 5 or not (retry or unsent):
                    raise
                await asyncio.sleep(delay)
                delay *= 2
                continue
            if r.status_code == 401 and not relogged:
                self.token = None
                relogged = True
                continue
            if retry and r.status_code >= 500 and attempt < 5:
                await asyncio.sleep(delay)
                delay *= 2
                continue
            return r
        raise ApiError(f"{method} {path}: no answer")


async def today_visits(api: Api, me: str, time_zone: str, today: date) -> list[Visit]:
    """The caller's open and in-progress visits planned for ``today`` (in ``time_zone``),
    in window order, with their sites' positions."""
    tasks: list[dict[str, Any]] = []
    cursor: str | None = None
    while True:
        params: dict[str, Any] = {"assigneeId": me, "limit": 200}
        if cursor:
            params["cursor"] = cursor
        r = await api.call("GET", "/api/v1/tasks", params=params)
        if r.status_code != 200:
            raise ApiError(f"GET /api/v1/tasks: {r.status_code} {r.text[:300]}")
        page = r.json()
        tasks += page["items"]
        cursor = page.get("nextCursor")
        if not cursor:
            break
    zone = ZoneInfo(time_zone)
    visits: list[tuple[datetime, Visit]] = []
    sites: dict[str, tuple[float, float]] = {}
    for task in tasks:
        planned = task.get("windowStart") or task.get("dueAt")
        if (
            task["kind"] not in ("measurement", "installation", "visit")
            or task["status"] not in ("open", "in_progress")
            or not planned
            or not task.get("siteId")
            or not task.get("customerId")
        ):
            continue
        when = datetime.fromisoformat(planned)
        if when.astimezone(zone).date() != today:
            continue
        if task["siteId"] not in sites:
            r = await api.call("GET", f"/api/v1/customers/{task['customerId']}")
            if r.status_code != 200:
                raise ApiError(f"GET customer of {task['title']}: {r.status_code} {r.text[:200]}")
            for site in r.json()["sites"]:
                sites[site["id"]] = (site["lat"], site["lon"])
        lat, lon = sites[task["siteId"]]
        start = datetime.fromisoformat(task["windowStart"]) if task.get("windowStart") else None
        visits.append(
            (when, Visit(task["id"], task["title"], task["kind"], lat, lon, window_start=start))
        )
    return [v for _, v in sorted(visits, key=lambda x: x[0])]


class Sender:
    """Sends a worker's fixes: JSON batches with an Idempotency-Key, or OsmAnd requests."""

    def __init__(self, api: Api, name: str, speedup: float, osmand_id: str | None = None) -> None:
        self.api = api
        self.name = name
        self.osmand_id = osmand_id
        self.millis = speedup > 2.5
        self.batch: list[tuple[datetime, Fix]] = []
        self.sent = 0
        self.stored = 0
        self.last_stamp = datetime.min.replace(tzinfo=UTC)
        self.last_osmand = -math.inf

    def stamp(self) -> datetime:
        """The real time now, strictly after the previous fix's."""
        now = datetime.now(UTC)
        step = timedelta(milliseconds=1)
        self.last_stamp = max(now, self.last_stamp + step)
        return self.last_stamp

    async def add(self, fix: Fix, *, force: bool = False) -> datetime:
        """Queue a fix stamped now; send when the batch is due (OsmAnd: at once)."""
        at = self.stamp()
        if self.osmand_id is not None:
            # At most 4 requests a second, as a phone's minimum interval would; fixes on site
            # and at check-in/out always go.
            if force or not fix.moving or time.monotonic() - self.last_osmand >= 0.25:
                await self._osmand(at, fix)
            return at
        self.batch.append((at, fix))
        if len(self.batch) >= 10 or fix.t - self.batch[0][1].t >= STILL_FIX_S or force:
            await self.flush()
        return at

    async def flush(self) -> None:
        """Send the queued fixes as one batch."""
        if not self.batch:
            return
        points = [
            {
                "timestamp": at.isoformat(),
                "lat": f.lat,
                "lon": f.lon,
                "accuracy": f.accuracy,
                "speed": f.speed,
                "heading": f.heading,
                "battery": f.battery,
                "activity": f.activity,
            }
            for at, f in self.batch
        ]
        key = str(uuid.uuid4())
        r = await self.api.call(
            "POST",
            "/api/v1/tracking/pings",
            json={"points": points},
            headers={"Idempotency-Key": key},
            retry=True,
        )
        self.batch = []
        self.sent += len(points)
        if r.status_code != 200:
            _say(self.name, "pings!", f"{r.status_code} {r.text[:300]}")
            return
        answer = r.json()
        self.stored += answer["accepted"] + answer["duplicates"]
        if answer["rejected"] or answer["offShift"]:
            _say(
                self.name,
                "pings!",
                f"offShift={answer['offShift']} rejected={answer['rejected'][:3]}",
            )

    async def _osmand(self, at: datetime, fix: Fix) -> None:
        stamp = int(at.timestamp() * 1000) if self.millis else int(at.timestamp())
        params: dict[str, Any] = {
            "id": self.osmand_id,
            "lat": fix.lat,
            "lon": fix.lon,
            "timestamp": stamp,
            "speed": round(fix.speed / 0.514444, 2),
            "accuracy": fix.accuracy,
            "batt": round(fix.battery),
        }
        if fix.heading is not None:
            params["bearing"] = fix.heading
        delay = 0.5
        for attempt in range(6):
            try:
                r = await self.api.client.post("/api/v1/tracking/osmand", params=params)
            except httpx.TransportError:
                if attempt == 5:
                    raise
                await asyncio.sleep(delay)
                delay *= 2
                continue
            if r.status_code >= 500 and attempt < 5:
                await asyncio.sleep(delay)
                delay *= 2
                continue
            break
        self.last_osmand = time.monotonic()
        self.sent += 1
        if r.status_code != 200:
            _say(self.name, "osmand!", f"{r.status_code} {r.text[:200]}")
        else:
            self.stored += 1


@dataclass
class Options:
    """The command line, parsed."""

    base_url: str
    speedup: float
    workers: list[str]
    once: bool
    seed: int
    osmand: set[str]
    fake: str | None
    fake_how: str
    keep_shift: bool
    min_dwell_real: float
    live_every: float


def _fakes(opts: Options, key: str) -> dict[int, FakeHow]:
    if opts.fake != key:
        return {}
    if opts.fake_how == "both":
        return {0: "far", 1: "mocked"}
    return {0: "far" if opts.fake_how == "far" else "mocked"}


def _judged(answer: dict[str, Any]) -> str:
    flags = ",".join(answer.get("flags") or []) or "-"
    dwell = f" dwell {answer['dwellS']} s" if answer.get("dwellS") is not None else ""
    return f"{answer['status'].upper()} {answer.get('distanceM')} m flags={flags}{dwell}"


async def run_worker(client: httpx.AsyncClient, key: str, opts: Options) -> dict[str, int]:
    """One worker's day over the API; returns counts for the summary."""
    demo = next(u for u in DEMO_USERS if u.key == key)
    api = Api(client, demo.email, demo_password())
    await api.login()
    me = (await api.call("GET", "/api/v1/me")).json()
    org = (await api.call("GET", "/api/v1/organization")).json()
    zone = org["timeZone"]
    today = datetime.now(ZoneInfo(zone)).date()
    visits = await today_visits(api, me["id"], zone, today)
    counts = {"visits": 0, "fixes": 0, "check_ins": 0}
    if not visits:
        _say(key, "no visits", f"no open visits on {today} ({zone}): run `make seed` again")
        return counts
    osmand_id = device_identifier(demo.email) if key in opts.osmand else None
    if osmand_id is not None:
        devices = (await api.call("GET", "/api/v1/tracking/devices")).json()
        if not any(d["identifier"] == osmand_id for d in devices):
            r = await api.call(
                "POST", "/api/v1/tracking/devices", json={"identifier": osmand_id, "name": key}
            )
            _say(key, "device", f"registered {osmand_id}: {r.status_code}")
    r = await api.call("POST", "/api/v1/tracking/shifts/start")
    if r.status_code == 201:
        _say(key, "shift", "started")
    elif r.status_code == 409:
        _say(key, "shift", "already in progress: going on")
    else:
        raise ApiError(f"start shift: {r.status_code} {r.text[:300]}")
    rng = random.Random(f"{opts.seed}:{key}")  # noqa: S311 - a simulation
    start = datetime.now(UTC)
    if opts.once:
        visits = visits[:1]
    steps = plan_day(
        home_of(key, [s.value for s in demo.skills], opts.seed),
        visits,
        rng,
        start=start,
        min_dwell_s=opts.min_dwell_real * opts.speedup,
        fakes=_fakes(opts, key),
        go_home=not opts.once,
    )
    how = f"OsmAnd as {osmand_id}" if osmand_id else "JSON batches"
    names = "; ".join(v.title for v in visits)
    _say(key, "day", f"{len(visits)} visits, {len(steps)} steps, fixes by {how}: {names}")
    sender = Sender(api, key, opts.speedup, osmand_id)
    began = time.monotonic()
    targets = iter([s.visit.title for s in steps if s.action == "check_in" and s.visit])
    on_the_road = False
    try:
        for step in steps:
            delay = began + step.fix.t / opts.speedup - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            if step.action == "fix":
                if step.fix.moving and not on_the_road:
                    on_the_road = True
                    to = next(targets, "home")
                    _say(key, "drive", f"to {to} (battery {step.fix.battery:.0f}%)", step.fix.t)
                await sender.add(step.fix)
                counts["fixes"] += 1
                continue
            await sender.flush()
            assert step.visit is not None
            body: dict[str, Any] = {
                "lat": step.fix.lat,
                "lon": step.fix.lon,
                "accuracy": step.fix.accuracy,
                "mocked": step.mocked,
            }
            if step.action == "check_in":
                path = f"/api/v1/tasks/{step.visit.task_id}/check-in"
            else:
                path = f"/api/v1/tasks/{step.visit.task_id}/check-out"
                body["outcome"] = step.outcome
            r = await api.call("POST", path, json=body)
            action = step.action.replace("_", "-")
            if r.status_code != 201:
                _say(key, action + "!", f"{r.status_code} {r.text[:300]}", step.fix.t)
                continue
            _say(key, action, f"{_judged(r.json())} — {step.visit.title}", step.fix.t)
            on_the_road = False
            if step.action == "check_in":
                counts["check_ins"] += 1
            else:
                counts["visits"] += 1
                if opts.once:
                    break
        await sender.flush()
    finally:
        if not opts.keep_shift:
            r = await api.call("POST", "/api/v1/tracking/shifts/end")
            _say(key, "shift", f"ended ({r.status_code}); {sender.sent} fixes sent")
    return counts


async def watch_live(client: httpx.AsyncClient, every: float) -> None:
    """Print the live board as the demo admin sees it, every ``every`` real seconds."""
    api = Api(client, DEMO_ADMIN_EMAIL, demo_password())
    while True:
        await asyncio.sleep(every)
        await print_live(api)


async def print_live(api: Api) -> None:
    """One look at ``GET /api/v1/tracking/live``."""
    r = await api.call("GET", "/api/v1/tracking/live")
    if r.status_code != 200:
        _say("live", "live!", f"{r.status_code} {r.text[:300]}")
        return
    for f in r.json()["features"]:
        p = f["properties"]
        speed = f"{p['speed'] * 3.6:.0f} km/h" if p.get("speed") is not None else "-"
        task = (p.get("currentTask") or p.get("nextTask") or {}).get("title", "-")
        battery = f"{p['battery']:.0f}%" if p.get("battery") is not None else "-"
        _say("live", p["status"], f"{p['name']}: {speed}, battery {battery}, task: {task}")


async def simulate(opts: Options) -> int:
    """Run every chosen worker's day at once; return the exit status."""
    timeout = httpx.Timeout(30.0)
    limits = httpx.Limits(max_connections=50)
    async with httpx.AsyncClient(base_url=opts.base_url, timeout=timeout, limits=limits) as client:
        try:
            r = await client.get("/health")
        except httpx.TransportError as exc:
            print(
                f"simulate: no server at {opts.base_url} ({exc}); start `make demo`",
                file=sys.stderr,
            )
            return 2
        if r.status_code != 200:
            print(f"simulate: {opts.base_url}/health answered {r.status_code}", file=sys.stderr)
            return 2
        watcher = (
            asyncio.create_task(watch_live(client, opts.live_every)) if opts.live_every else None
        )
        results = await asyncio.gather(
            *(run_worker(client, key, opts) for key in opts.workers), return_exceptions=True
        )
        if watcher is not None:
            watcher.cancel()
            await print_live(Api(client, DEMO_ADMIN_EMAIL, demo_password()))
    status = 0
    for key, result in zip(opts.workers, results, strict=True):
        if isinstance(result, BaseException):
            print(f"simulate: {key} failed: {result!r}", file=sys.stderr)
            status = 1
        else:
            _say(key, "done", ", ".join(f"{k} {v}" for k, v in result.items()))
    return status


def parse_args(argv: Sequence[str] | None = None) -> Options:
    """The command line (see the module docstring)."""
    field_keys = [u.key for u in DEMO_USERS if u.role is Role.FIELD]
    parser = argparse.ArgumentParser(
        description="Drive the demo field workers through today's visits over the real API.",
        epilog="Simulated time runs --speedup times faster; timestamps are real ones.",
    )
    parser.add_argument("--base-url", default="http://127.0.0.1:8000")
    parser.add_argument("--speedup", type=float, default=10.0, help="simulated s per real s")
    parser.add_argument("--workers", default=",".join(field_keys), help="comma-separated keys")
    parser.add_argument("--once", action="store_true", help="stop after the first check-out")
    parser.add_argument("--seed", type=int, default=2026)
    parser.add_argument("--osmand", default="marat", help="workers sending as Traccar Client")
    parser.add_argument("--fake-checkin", metavar="WORKER", help="this worker cheats")
    parser.add_argument("--fake-how", choices=("far", "mocked", "both"), default="far")
    parser.add_argument("--keep-shift", action="store_true", help="do not end the shifts")
    parser.add_argument(
        "--min-dwell-real", type=float, default=130.0, help="real seconds on site, at least"
    )
    parser.add_argument("--live-every", type=float, default=0.0, help="print the live board")
    args = parser.parse_args(argv)
    workers = [w.strip() for w in args.workers.split(",") if w.strip()]
    unknown = sorted(set(workers) - set(field_keys))
    if unknown:
        parser.error(
            f"not demo field workers: {', '.join(unknown)} (known: {', '.join(field_keys)})"
        )
    if args.fake_checkin and args.fake_checkin not in workers:
        parser.error("--fake-checkin must name one of the simulated workers")
    if not 0.1 <= args.speedup <= 1000:
        parser.error("--speedup must be between 0.1 and 1000")
    return Options(
        base_url=args.base_url.rstrip("/"),
        speedup=args.speedup,
        workers=workers,
        once=args.once,
        seed=args.seed,
        osmand={w.strip() for w in args.osmand.split(",") if w.strip()},
        fake=args.fake_checkin,
        fake_how=args.fake_how,
        keep_shift=args.keep_shift,
        min_dwell_real=max(args.min_dwell_real, 0.0),
        live_every=max(args.live_every, 0.0),
    )


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point."""
    opts = parse_args(argv)
    try:
        return asyncio.run(simulate(opts))
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
