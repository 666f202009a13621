"""The simulated field day: the simulator's pure path, speed and noise model, and the seed of
today's visits, shifts and devices (``backend.seed.visits``)."""

from __future__ import annotations

import math
import random
import uuid
from datetime import UTC, date, datetime, time, timedelta
from itertools import pairwise
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from backend.accounts.models import Role
from backend.customers.models import Contact, Customer, CustomerKind, Site
from backend.customers.services import point_wkt
from backend.sales.models import Deal, Stage
from backend.seed.visits import day_windows, seed_field_day, short_address, windows_phrase
from backend.tasks.models import Task, TaskKind, TaskStatus
from backend.tracking.models import Device, ShiftSchedule
from scripts import simulate_gps as sim
from tests.conftest import Factory

KMH_60 = 60 / 3.6 + 1e-6
HOME = (55.7800, 49.1000)
SITES = [(55.7950, 49.1300), (55.8010, 49.1520), (55.7880, 49.1700)]
MOSCOW = ZoneInfo("Europe/Moscow")


def _drives(n: int = 12) -> list[list[sim.Sample]]:
    out = []
    for seed in range(n):
        rng = random.Random(seed)
        start = sim.move(HOME, rng.uniform(-3000, 3000), rng.uniform(-3000, 3000))
        end = sim.move(HOME, rng.uniform(2000, 6000), rng.uniform(2000, 6000))
        out.append(sim.drive(sim.street_path(start, end, rng), 100.0, rng))
    return out


def test_paths_follow_a_street_grid_from_start_to_end() -> None:
    for seed in range(30):
        rng = random.Random(seed)
        start, end = sim.move(HOME, 0, 0), sim.move(HOME, rng.uniform(-6000, 6000), 3000)
        path = sim.street_path(start, end, rng)
        assert path[0] == start
        assert path[-1] == end
        assert len(path) >= 3  # at least one turn: not a straight line
        ratio = sim.path_length(path) / sim.distance(start, end)
        assert 1.0 < ratio < 1.5  # a grid detour (at most about sqrt 2), not a wander


def test_drives_keep_urban_speeds_stop_at_lights_and_report_on_cadence() -> None:
    stops = 0
    for samples in _drives():
        speeds = [s.speed for s in samples]
        assert max(speeds) <= KMH_60
        assert max(speeds) >= sim.MIN_CRUISE_MPS  # cruises at 25 km/h or more somewhere
        assert (samples[0].speed, samples[0].moving) == (0.0, False)
        assert (samples[-1].speed, samples[-1].moving) == (0.0, False)
        for a, b in pairwise(samples):
            gap = b.t - a.t
            assert gap > 0  # strictly increasing time
            assert gap <= (sim.MOVING_FIX_S if a.moving else sim.STILL_FIX_S) + 1.0
            # The true positions move no faster than the car may.
            assert sim.distance((a.lat, a.lon), (b.lat, b.lon)) <= KMH_60 * gap + 0.5
        # Standing still in the middle of the drive: red lights of 20-90 s.
        runs: list[float] = []
        begun: float | None = None
        for s in samples[1:-1]:
            if not s.moving and begun is None:
                begun = s.t
            elif s.moving and begun is not None:
                runs.append(s.t - begun)
                begun = None
        stops += len(runs)
        assert all(r <= sim.RED_LIGHT_S[1] + sim.MOVING_FIX_S + 1.0 for r in runs)
        average = sim.path_length([(s.lat, s.lon) for s in samples]) / (
            samples[-1].t - samples[0].t
        )
        assert 10 / 3.6 < average < 50 / 3.6  # door to door, lights and turns included
    assert stops >= 12  # about one red light per km or two


def test_gps_noise_is_bounded_and_accuracy_is_plausible() -> None:
    rng = random.Random(7)
    errors, outliers = [], 0
    for _ in range(20_000):
        north, east, accuracy = sim.noise(rng)
        error = math.hypot(north, east)
        assert error <= sim.OUTLIER_M[1] + 1e-9
        if error > sim.NOISE_CUT_SIGMAS * sim.NOISE_SIGMA_M * math.sqrt(2):
            outliers += 1
            assert sim.OUTLIER_ACCURACY_M[0] <= accuracy <= sim.OUTLIER_ACCURACY_M[1]
            continue
        assert sim.ACCURACY_M[0] <= accuracy <= sim.ACCURACY_M[1]
        errors.append(error)
    assert 4.0 < sum(errors) / len(errors) < 6.5  # "about 5 m"
    assert 0.01 < outliers / 20_000 < 0.03
    rng = random.Random(8)
    assert all(math.hypot(*sim.noise(rng, outliers=False)[:2]) < 17.0 for _ in range(5000))


def _visits(start: datetime | None = None) -> list[sim.Visit]:
    return [
        sim.Visit(f"task-{i}", f"Замер {i}", "measurement", lat, lon, window_start=start)
        for i, (lat, lon) in enumerate(SITES)
    ]


def test_a_day_stops_at_each_site_checks_in_there_and_times_increase() -> None:
    visits = _visits()
    steps = sim.plan_day(HOME, visits, random.Random(3), start=datetime(2026, 11, 24, tzinfo=UTC))
    times = [s.fix.t for s in steps]
    assert all(b >= a for a, b in pairwise(times))
    fix_times = [s.fix.t for s in steps if s.action == "fix"]
    assert all(b > a for a, b in pairwise(fix_times))
    batteries = [s.fix.battery for s in steps]
    assert all(b <= a for a, b in pairwise(batteries))
    assert 5.0 <= batteries[-1] < batteries[0] <= 100.0
    checks = [(i, s) for i, s in enumerate(steps) if s.action != "fix"]
    assert [(s.action, s.visit) for _, s in checks] == [
        (action, v) for v in visits for action in ("check_in", "check_out")
    ]
    for (i, check_in), (j, check_out) in zip(checks[::2], checks[1::2], strict=True):
        assert check_in.visit is not None
        site = (check_in.visit.lat, check_in.visit.lon)
        assert sim.distance((check_in.fix.lat, check_in.fix.lon), site) < 30.0
        assert check_in.fix.accuracy <= sim.ACCURACY_M[1]
        assert not check_in.mocked
        stay = check_out.fix.t - check_in.fix.t
        assert sim.DWELL_S[0] <= stay <= sim.DWELL_S[1]
        on_site = [s.fix for s in steps[i:j] if s.action == "fix"]
        assert all(f.speed == 0.0 and not f.moving for f in on_site)
        assert all(sim.distance((f.true_lat, f.true_lon), site) <= 12.0 for f in on_site)
        assert all(b.t - a.t <= sim.STILL_FIX_S + 1e-6 for a, b in pairwise(on_site))
        # Before the check-in the car stopped near the site: parked, then on foot.
        before = steps[i - 1].fix
        assert not before.moving
        assert sim.distance((before.true_lat, before.true_lon), site) < 60
    last = steps[-1].fix
    assert sim.distance((last.true_lat, last.true_lon), HOME) < 1.0  # drove home
    moving = [s.fix for s in steps if s.fix.moving]
    assert moving
    assert max(f.speed for f in moving) <= KMH_60


def test_windows_waits_minimum_dwell_and_fake_check_ins() -> None:
    start = datetime(2026, 11, 24, 6, 0, tzinfo=UTC)
    later = start + timedelta(hours=3)
    steps = sim.plan_day(
        HOME,
        _visits(later)[:1],
        random.Random(4),
        start=start,
        min_dwell_s=3000.0,
        fakes={0: "far"},
        go_home=False,
    )
    check_in, check_out = [s for s in steps if s.action != "fix"]
    # Arrived early: waited (at most an hour) for the window, 5 minutes before it opens.
    assert check_in.fix.t >= min(3 * 3600 - 300, sim.MAX_WAIT_S)
    assert check_out.fix.t - check_in.fix.t >= 3000.0
    site = (SITES[0][0], SITES[0][1])
    away = sim.distance((check_in.fix.lat, check_in.fix.lon), site)
    assert sim.FAKE_FAR_M - 80 < away < sim.FAKE_FAR_M + 80
    mocked = sim.plan_day(HOME, _visits(), random.Random(5), start=start, fakes={1: "mocked"})
    assert [s.mocked for s in mocked if s.action == "check_in"] == [False, True, False]


def test_window_helpers() -> None:
    assert [windows_phrase(n) for n in (1, 2, 5, 11, 21, 22)] == [
        "1 окно",
        "2 окна",
        "5 окон",
        "11 окон",
        "21 окно",
        "22 окна",
    ]
    assert short_address("г. Казань, ул. Баумана, д. 12, кв. 34") == "ул. Баумана, д. 12"
    for count in range(1, 7):
        windows = day_windows(date(2026, 11, 24), "Europe/Moscow", count)
        assert len(windows) == count
        for start, end in windows:
            assert time(9, 0) <= start.timetz().replace(tzinfo=None)
            assert end.timetz().replace(tzinfo=None) <= time(18, 0)
            assert timedelta(hours=1) <= end - start <= timedelta(hours=2)
        assert all(a[1] <= b[0] for a, b in pairwise(windows))


async def _customers(session: AsyncSession, org_id: uuid.UUID, n: int) -> dict[uuid.UUID, Site]:
    rng = random.Random(11)
    sites = {}
    for i in range(n):
        company = i % 4 == 0
        customer = Customer(
            id=uuid.uuid4(),
            organization_id=org_id,
            kind=CustomerKind.COMPANY if company else CustomerKind.PERSON,
            name=f"ООО «Окна {i}»" if company else f"Иванов Пётр {i}",
        )
        session.add(customer)
        await session.flush()
        lat, lon = 55.74 + rng.uniform(0, 0.1), 49.05 + rng.uniform(0, 0.15)
        site = Site(
            id=uuid.uuid4(),
            organization_id=org_id,
            customer_id=customer.id,
            address=f"г. Казань, ул. Баумана, д. {i + 1}, кв. {i + 10}",
            location=point_wkt(lat, lon),
        )
        contact = Contact(
            id=uuid.uuid4(),
            organization_id=org_id,
            customer_id=customer.id,
            name=customer.name,
            phone=f"+7917200{i:04d}",
        )
        session.add_all([site, contact])
        sites[site.id] = site
    await session.flush()
    return sites


async def test_seed_gives_each_field_worker_todays_visits_shifts_and_a_phone(
    session: AsyncSession, factory: Factory
) -> None:
    world = await factory.world()
    seller = await factory.user(world.org, Role.FIELD, skills=["salesperson"], name="Sara Sales")
    sites = await _customers(session, world.org.id, 30)
    now = datetime(2026, 11, 24, 21, 30, tzinfo=UTC)  # 00:30 on the 25th in Moscow
    today = date(2026, 11, 25)
    day = await seed_field_day(session, world.org, now=now, seed=5)
    assert day.day == today

    expected = {
        world.measurer_a.id: TaskKind.MEASUREMENT,
        world.installer_a.id: TaskKind.INSTALLATION,
        world.installer_b.id: TaskKind.INSTALLATION,
        seller.id: TaskKind.VISIT,
    }
    tasks = (await session.scalars(select(Task).where(Task.organization_id == world.org.id))).all()
    assert len(tasks) == day.visits == day.deals
    deals = {
        d.id: d
        for d in (await session.scalars(select(Deal).where(Deal.organization_id == world.org.id)))
    }
    stages = {s.id: s.name for s in (await session.scalars(select(Stage)))}
    stage_of_kind = {
        TaskKind.MEASUREMENT: "Замер",
        TaskKind.INSTALLATION: "Монтаж",
        TaskKind.VISIT: "Согласование",
    }
    for user_id, kind in expected.items():
        mine = sorted((t for t in tasks if t.assignee_id == user_id), key=lambda t: t.due_at)
        assert 3 <= len(mine) <= 6
        windows = []
        for task in mine:
            assert task.kind is kind  # by skill
            assert task.status is TaskStatus.OPEN
            assert task.window_start is not None
            assert task.window_end is not None
            start, end = task.window_start.astimezone(MOSCOW), task.window_end.astimezone(MOSCOW)
            assert (start.date(), end.date()) == (today, today)  # today in the org's zone
            assert time(9, 0) <= start.time()
            assert end.time() <= time(18, 0)
            assert timedelta(hours=1) <= end - start <= timedelta(hours=2)
            assert task.due_at == task.window_end
            windows.append((start, end))
            site = sites[task.site_id]  # a real site of the organisation...
            assert task.customer_id == site.customer_id  # ...of the task's customer
            assert short_address(site.address) in task.title
            deal = deals[task.deal_id]
            assert (deal.customer_id, deal.site_id) == (task.customer_id, task.site_id)
            assert stages[deal.stage_id] == stage_of_kind[kind]
        assert all(a[1] <= b[0] for a, b in pairwise(windows))
        assert len({t.site_id for t in mine}) == len(mine)
    assert {t.assignee_id for t in tasks} == set(expected)
    measurement = next(t for t in tasks if t.kind is TaskKind.MEASUREMENT)
    assert measurement.title.startswith("Замер")
    measured = deals[measurement.deal_id]
    assert (measured.scheduled_start, measured.scheduled_end) == (
        measurement.window_start,
        measurement.window_end,
    )
    assert measured.owner_id == world.manager_a.id  # the team's manager

    schedules = {
        s.user_id: s.schedule
        for s in await session.scalars(
            select(ShiftSchedule).where(ShiftSchedule.organization_id == world.org.id)
        )
    }
    assert set(schedules) == set(expected)
    for schedule in schedules.values():
        for weekday in ("mon", "tue", "wed", "thu", "fri", "sat"):
            assert schedule[weekday] == [["08:00", "19:00"]]
        assert schedule["sun"] == []
    devices = {
        d.user_id: d.identifier
        for d in await session.scalars(select(Device).where(Device.organization_id == world.org.id))
    }
    assert set(devices) == set(expected)
    assert devices[seller.id] == f"demo-{seller.email.split('@')[0]}-phone"
    assert (day.schedules, day.devices) == (4, 4)


def test_a_day_holds_at_most_six_visits() -> None:
    with pytest.raises(ValueError, match="count"):
        day_windows(date(2026, 11, 24), "Europe/Moscow", 7)
