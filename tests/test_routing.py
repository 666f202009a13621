"""Day routes and team dispatch through the API: order, ETAs, re-optimisation, visibility,
re-planning with ETA change events, preview/apply (idempotent, notified), what is left out."""

from __future__ import annotations

import uuid
from datetime import UTC, date, datetime, timedelta
from typing import Any

import httpx
from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from backend.accounts.models import User
from backend.notifications.models import Notification
from backend.routing import services
from backend.routing.assign import best_worker
from backend.routing.models import EtaChange
from backend.tasks.models import Task, TaskKind
from backend.worker import Jobs
from geo.track import haversine_m
from tests.conftest import Factory, World, customer_body
from tests.test_tracking import fix, send, start_shift

MSK = 3  # Europe/Moscow, the conftest organisation's zone
TOMORROW = date(2026, 11, 25)
LAT = 55.79
BASE_LON = 49.00


def local(day: date, hour: int, minute: int = 0) -> datetime:
    """A Moscow wall-clock time as UTC."""
    return datetime(day.year, day.month, day.day, hour - MSK, minute, tzinfo=UTC)


async def set_base(session: AsyncSession, user: User, lat: float, lon: float) -> None:
    await session.execute(update(User).where(User.id == user.id).values(base_lat=lat, base_lon=lon))
    await session.commit()


async def site(
    client: httpx.AsyncClient, factory: Factory, world: World, lon: float
) -> tuple[str, str]:
    """A customer with one site at (LAT, lon): (customer id, site id)."""
    body = customer_body(
        f"Customer {lon}",
        sites=[{"address": f"Kazan, {lon}", "lat": LAT, "lon": lon}],
    )
    made = await client.post("/api/v1/customers", json=body, headers=factory.auth(world.manager_a))
    assert made.status_code == 201, made.text
    return made.json()["id"], made.json()["sites"][0]["id"]


async def visit(
    client: httpx.AsyncClient,
    factory: Factory,
    world: World,
    *,
    lon: float,
    starts: datetime,
    ends: datetime,
    assignee: User | None,
    kind: str = "measurement",
    title: str | None = None,
    **extra: Any,
) -> str:
    customer_id, site_id = await site(client, factory, world, lon)
    body = {
        "kind": kind,
        "title": title or f"{kind} at {lon}",
        "customerId": customer_id,
        "siteId": site_id,
        "windowStart": starts.isoformat(),
        "windowEnd": ends.isoformat(),
        **extra,
    }
    if assignee is not None:
        body["assigneeId"] = str(assignee.id)
    made = await client.post("/api/v1/tasks", json=body, headers=factory.auth(world.admin))
    assert made.status_code == 201, made.text
    task_id: str = made.json()["id"]
    return task_id


async def route(
    client: httpx.AsyncClient, factory: Factory, user: User, day: date
) -> dict[str, Any]:
    got = await client.get(f"/api/v1/me/route?date={day.isoformat()}", headers=factory.auth(user))
    assert got.status_code == 200, got.text
    body: dict[str, Any] = got.json()
    return body


def order(body: dict[str, Any]) -> list[str]:
    return [s["taskId"] for s in body["stops"]]


async def three_visits(client: httpx.AsyncClient, factory: Factory, world: World) -> list[str]:
    """Three visits tomorrow on an east-west road, planned (by window start) in the wrong
    order: the farthest east first. The west one must start by 10:30 and the measurer has no
    base (the day starts at the first visit and ends at the last), so the driving order is west
    to east. Returns their ids in driving order."""
    ends = local(TOMORROW, 17)
    far = await visit(
        client,
        factory,
        world,
        lon=49.20,
        starts=local(TOMORROW, 9),
        ends=ends,
        assignee=world.measurer_a,
    )
    middle = await visit(
        client,
        factory,
        world,
        lon=49.15,
        starts=local(TOMORROW, 9, 10),
        ends=ends,
        assignee=world.measurer_a,
    )
    near = await visit(
        client,
        factory,
        world,
        lon=49.10,
        starts=local(TOMORROW, 9, 20),
        ends=local(TOMORROW, 10, 30),
        assignee=world.measurer_a,
    )
    return [near, middle, far]


async def test_a_workers_day_is_ordered_for_driving_with_etas_and_totals(
    client: httpx.AsyncClient, factory: Factory, session: AsyncSession
) -> None:
    world = await factory.world()
    driving_order = await three_visits(client, factory, world)

    first = await route(client, factory, world.measurer_a, TOMORROW)
    # Nothing optimised yet: the quick order is the planned one, and a solve is started.
    assert first["optimised"] is False
    assert sorted(order(first)) == sorted(driving_order)

    body = await route(client, factory, world.measurer_a, TOMORROW)
    assert body["optimised"] is True
    assert body["solvedAt"] is not None
    assert order(body) == driving_order
    # No base: the day starts at the first visit, at the shift's start (08:00 by default).
    assert body["start"]["source"] == "first_visit"
    assert body["start"]["at"] == local(TOMORROW, 8).isoformat().replace("+00:00", "Z")
    assert (body["start"]["lat"], body["start"]["lon"]) == (LAT, 49.10)
    stops = body["stops"]
    # Each ETA is the previous departure plus the leg's travel; work starts within the window.
    previous_departure = datetime.fromisoformat(body["start"]["at"])
    for stop in stops:
        eta = datetime.fromisoformat(stop["eta"])
        assert eta == previous_departure + timedelta(seconds=stop["travelS"])
        start_at = datetime.fromisoformat(stop["startAt"])
        assert start_at >= datetime.fromisoformat(stop["windowStart"])
        assert start_at <= datetime.fromisoformat(stop["windowEnd"])
        assert stop["lateS"] == 0
        assert stop["serviceS"] == 45 * 60
        previous_departure = datetime.fromisoformat(stop["departAt"])
    # Legs are road estimates: longer than the straight line, not absurdly so.
    assert stops[0]["distanceM"] == 0
    assert stops[0]["travelS"] == 0
    straight = haversine_m(LAT, 49.10, LAT, 49.15)
    assert straight < stops[1]["distanceM"] < 2 * straight
    totals = body["totals"]
    assert totals["visits"] == 3
    assert totals["remaining"] == 3
    assert totals["done"] == 0
    assert totals["distanceM"] == sum(s["distanceM"] for s in stops)
    assert totals["travelS"] == sum(s["travelS"] for s in stops)  # no base to drive back to
    line = body["geometry"]
    assert line["type"] == "LineString"
    assert line["coordinates"] == [[49.10, LAT], [49.15, LAT], [49.20, LAT]]


async def test_a_worker_with_a_base_starts_and_ends_there(
    client: httpx.AsyncClient, factory: Factory, session: AsyncSession
) -> None:
    world = await factory.world()
    await set_base(session, world.measurer_a, LAT, BASE_LON)
    task = await visit(
        client,
        factory,
        world,
        lon=49.10,
        starts=local(TOMORROW, 10),
        ends=local(TOMORROW, 12),
        assignee=world.measurer_a,
    )
    body = await route(client, factory, world.measurer_a, TOMORROW)
    assert body["start"] == {
        "lat": LAT,
        "lon": BASE_LON,
        "at": "2026-11-25T05:00:00Z",
        "source": "base",
    }
    (stop,) = body["stops"]
    assert stop["taskId"] == task
    assert stop["startAt"] == "2026-11-25T07:00:00Z"
    assert stop["waitS"] > 0
    assert stop["travelS"] > 0
    back = body["totals"]["travelS"] - stop["travelS"]
    assert abs(back - stop["travelS"]) <= 1  # the same road back to the base
    assert body["totals"]["endsAt"] == (
        datetime.fromisoformat(stop["departAt"]) + timedelta(seconds=back)
    ).isoformat().replace("+00:00", "Z")


async def test_the_order_is_reoptimised_when_visits_are_added_moved_or_cancelled(
    client: httpx.AsyncClient, factory: Factory, session: AsyncSession
) -> None:
    world = await factory.world()
    near, middle, far = await three_visits(client, factory, world)
    await route(client, factory, world.measurer_a, TOMORROW)  # solved in the background

    # A new visit between "near" and "middle": quickly put at its cheapest place, then solved.
    added = await visit(
        client,
        factory,
        world,
        lon=49.125,
        starts=local(TOMORROW, 9),
        ends=local(TOMORROW, 17),
        assignee=world.measurer_a,
    )
    quick = await route(client, factory, world.measurer_a, TOMORROW)
    assert quick["optimised"] is False
    assert order(quick) == [near, added, middle, far]
    assert (await route(client, factory, world.measurer_a, TOMORROW))["optimised"] is True

    # "far" moved to the morning only: it must come first now.
    moved = await client.patch(
        f"/api/v1/tasks/{far}",
        json={
            "windowStart": local(TOMORROW, 8).isoformat(),
            "windowEnd": local(TOMORROW, 9).isoformat(),
        },
        headers=factory.auth(world.manager_a),
    )
    assert moved.status_code == 200, moved.text
    await route(client, factory, world.measurer_a, TOMORROW)
    body = await route(client, factory, world.measurer_a, TOMORROW)
    assert body["optimised"] is True
    assert order(body)[0] == far

    cancelled = await client.post(
        f"/api/v1/tasks/{middle}/cancel",
        json={"reason": "customer cancelled"},
        headers=factory.auth(world.manager_a),
    )
    assert cancelled.status_code == 200, cancelled.text
    await route(client, factory, world.measurer_a, TOMORROW)
    assert middle not in order(await route(client, factory, world.measurer_a, TOMORROW))


async def test_routes_are_seen_by_the_worker_their_managers_and_admins_only(
    client: httpx.AsyncClient, factory: Factory, session: AsyncSession
) -> None:
    world = await factory.world()
    await three_visits(client, factory, world)
    path = f"/api/v1/users/{world.measurer_a.id}/route?date={TOMORROW.isoformat()}"
    for viewer, status in [
        (world.manager_a, 200),
        (world.admin, 200),
        (world.measurer_a, 200),
        (world.manager_b, 404),
        (world.installer_a, 404),
    ]:
        got = await client.get(path, headers=factory.auth(viewer))
        assert got.status_code == status, (viewer.full_name, got.text)
        if status == 200:
            assert len(got.json()["stops"]) == 3
    other_org = await factory.world("Other Windows")
    got = await client.get(path, headers=factory.auth(other_org.admin))
    assert got.status_code == 404
    # The caller's own route never shows anyone else's visits.
    own = await route(client, factory, world.installer_a, TOMORROW)
    assert own["stops"] == []
    assert own["start"] is None
    bad = await client.get("/api/v1/me/route?date=25-11-2026", headers=factory.auth(world.admin))
    assert bad.status_code == 400


async def test_etas_follow_the_workers_position_and_a_late_worker_records_changes(
    client: httpx.AsyncClient, factory: Factory, session: AsyncSession
) -> None:
    world = await factory.world()
    today = date(2026, 11, 24)  # the clock: 12:00 in Moscow
    clock = factory.clock
    await set_base(session, world.measurer_a, LAT, BASE_LON)
    first = await visit(
        client,
        factory,
        world,
        lon=49.10,
        starts=local(today, 12, 30),
        ends=local(today, 16),
        assignee=world.measurer_a,
    )
    second = await visit(
        client,
        factory,
        world,
        lon=49.12,
        starts=local(today, 12, 30),
        ends=local(today, 18),
        assignee=world.measurer_a,
    )
    await start_shift(client, factory, world.measurer_a)
    sent = await send(client, factory, world.measurer_a, [fix(clock.now(), LAT, 49.09)])
    assert sent.status_code == 200, sent.text
    body = await route(client, factory, world.measurer_a, today)
    assert body["start"]["source"] == "position"
    assert body["start"]["lon"] == 49.09
    assert sorted(order(body)) == sorted([first, second])
    body = await route(client, factory, world.measurer_a, today)  # optimised meanwhile
    assert body["optimised"] is True
    _, changes = await services.replan(
        session, world.org.id, world.measurer_a.id, today, clock.now()
    )
    assert changes == []  # first publication of the ETAs
    await session.commit()
    eta_before = {s["taskId"]: datetime.fromisoformat(s["eta"]) for s in body["stops"]}

    # 40 minutes later the worker has not moved: everything is 40 minutes later.
    clock.advance(timedelta(minutes=40))
    sent = await send(client, factory, world.measurer_a, [fix(clock.now(), LAT, 49.09)])
    assert sent.status_code == 200, sent.text
    later = await route(client, factory, world.measurer_a, today)
    assert order(later) == order(body)
    moved = {
        s["taskId"]: datetime.fromisoformat(s["eta"]) - eta_before[s["taskId"]]
        for s in later["stops"]
    }
    # The first ETA moves by the whole delay; the next by what waiting does not absorb.
    assert moved[order(later)[0]] == timedelta(minutes=40)
    assert timedelta(minutes=5) < moved[order(later)[1]] <= timedelta(minutes=40)
    _view, changes = await services.replan(
        session, world.org.id, world.measurer_a.id, today, clock.now()
    )
    await session.commit()
    assert {str(c.task_id): c.delta_s for c in changes} == {
        task: int(delta.total_seconds()) for task, delta in moved.items()
    }
    # Nothing moved since: no new events.
    _, again = await services.replan(session, world.org.id, world.measurer_a.id, today, clock.now())
    assert again == []
    stored = await session.scalar(select(func.count()).select_from(EtaChange))
    assert stored == 2


async def test_a_visit_that_overruns_moves_the_rest(
    client: httpx.AsyncClient, factory: Factory, session: AsyncSession
) -> None:
    world = await factory.world()
    today = date(2026, 11, 24)
    clock = factory.clock
    first = await visit(
        client,
        factory,
        world,
        lon=49.10,
        starts=local(today, 11, 30),
        ends=local(today, 13),
        assignee=world.measurer_a,
    )
    second = await visit(
        client,
        factory,
        world,
        lon=49.12,
        starts=local(today, 12),
        ends=local(today, 18),
        assignee=world.measurer_a,
    )
    await start_shift(client, factory, world.measurer_a)
    checked = await client.post(
        f"/api/v1/tasks/{first}/check-in",
        json={"lat": LAT, "lon": 49.10, "accuracy": 5},
        headers=factory.auth(world.measurer_a),
    )
    assert checked.status_code in (200, 201), checked.text
    body = await route(client, factory, world.measurer_a, today)
    assert body["start"]["source"] == "in_progress"
    assert [s["status"] for s in body["stops"]] == ["in_progress", "open"]
    assert body["stops"][1]["taskId"] == second
    planned_eta = datetime.fromisoformat(body["stops"][1]["eta"])
    # The 45-minute measurement is still going on after 2 hours: the next ETA moves.
    clock.advance(timedelta(hours=2))
    late = await route(client, factory, world.measurer_a, today)
    assert datetime.fromisoformat(late["stops"][1]["eta"]) > planned_eta + timedelta(minutes=60)


async def unassigned(
    client: httpx.AsyncClient,
    factory: Factory,
    world: World,
    kind: str,
    lon: float,
    starts: datetime,
    ends: datetime,
    **extra: Any,
) -> str:
    """An open visit nobody is assigned to (as a stage automation leaves it when nobody
    qualifies; tasks made through the API default to their creator)."""
    task_id = await visit(
        client, factory, world, lon=lon, starts=starts, ends=ends, assignee=None, kind=kind, **extra
    )
    await factory.session.execute(
        update(Task).where(Task.id == uuid.UUID(task_id)).values(assignee_id=None)
    )
    await factory.session.commit()
    return task_id


async def test_dispatch_preview_then_apply_once_by_skill_with_notifications(
    client: httpx.AsyncClient, factory: Factory, session: AsyncSession
) -> None:
    world = await factory.world()
    await set_base(session, world.measurer_a, LAT, BASE_LON)
    await set_base(session, world.installer_a, LAT, 49.30)
    day_start, day_end = local(TOMORROW, 9), local(TOMORROW, 18)
    measure = await unassigned(client, factory, world, "measurement", 49.25, day_start, day_end)
    install = await unassigned(client, factory, world, "installation", 49.05, day_start, day_end)
    headers = factory.auth(world.manager_a)
    request = {"teamId": str(world.team_a.id), "date": TOMORROW.isoformat(), "budgetSeconds": 1}

    made = await client.post("/api/v1/dispatch/preview", json=request, headers=headers)
    assert made.status_code == 201, made.text
    plan = made.json()
    assert plan["status"] == "preview"
    assert plan["leftOut"] == []
    by_worker = {r["userId"]: [s["taskId"] for s in r["stops"]] for r in plan["routes"]}
    # Skills decide, even though each site is nearer the other worker's base.
    assert by_worker == {str(world.measurer_a.id): [measure], str(world.installer_a.id): [install]}
    assert all(s["new"] for r in plan["routes"] for s in r["stops"])
    # Nothing assigned by a preview.
    assignees = await session.execute(
        select(Task.assignee_id).where(Task.id.in_([measure, install]))
    )
    assert {a for (a,) in assignees} == {None}

    # Another team's manager cannot see or apply it.
    other = await client.post(
        f"/api/v1/dispatch/{plan['id']}/apply", headers=factory.auth(world.manager_b)
    )
    assert other.status_code == 404
    forbidden = await client.post(
        "/api/v1/dispatch/preview", json=request, headers=factory.auth(world.manager_b)
    )
    assert forbidden.status_code == 404

    applied = await client.post(f"/api/v1/dispatch/{plan['id']}/apply", headers=headers)
    assert applied.status_code == 200, applied.text
    result = applied.json()
    assert result["status"] == "applied"
    assert result["skipped"] == []
    assert {(a["taskId"], a["userId"]) for a in result["applied"]} == {
        (measure, str(world.measurer_a.id)),
        (install, str(world.installer_a.id)),
    }
    again = await client.post(f"/api/v1/dispatch/{plan['id']}/apply", headers=headers)
    assert again.status_code == 200
    assert again.json() == result
    notified = await session.execute(
        select(Notification.user_id, Notification.data["taskId"].astext).where(
            Notification.kind == "task_assigned"
        )
    )
    assert sorted(notified.all()) == sorted(
        [(world.measurer_a.id, measure), (world.installer_a.id, install)]
    )
    # The measurer's route now shows the visit.
    assert order(await route(client, factory, world.measurer_a, TOMORROW)) == [measure]


async def test_dispatch_leaves_out_the_least_valuable_and_skips_what_changed(
    client: httpx.AsyncClient, factory: Factory, session: AsyncSession
) -> None:
    world = await factory.world()
    # One installer (team B) and three 3-hour installations in the same 09:00-12:00 window:
    # only one fits; the urgent one (priority) is kept.
    start, end = local(TOMORROW, 9), local(TOMORROW, 12)
    low = await unassigned(client, factory, world, "installation", 49.10, start, end)
    high = await unassigned(client, factory, world, "installation", 49.11, start, end, priority=5)
    mid = await unassigned(client, factory, world, "installation", 49.12, start, end, priority=1)
    headers = factory.auth(world.manager_b)
    made = await client.post(
        "/api/v1/dispatch/preview",
        json={"teamId": str(world.team_b.id), "date": TOMORROW.isoformat(), "budgetSeconds": 1},
        headers=headers,
    )
    assert made.status_code == 201, made.text
    plan = made.json()
    assert [s["taskId"] for r in plan["routes"] for s in r["stops"]] == [high]
    assert [x["taskId"] for x in plan["leftOut"]] == [low, mid]  # least valuable first
    assert all(x["reason"] for x in plan["leftOut"])

    # Someone assigns it by hand before the plan is applied: skipped, not overwritten.
    taken = await client.patch(
        f"/api/v1/tasks/{high}",
        json={"assigneeId": str(world.installer_a.id)},
        headers=factory.auth(world.admin),
    )
    assert taken.status_code == 200, taken.text
    applied = await client.post(f"/api/v1/dispatch/{plan['id']}/apply", headers=headers)
    assert applied.status_code == 200, applied.text
    assert applied.json()["applied"] == []
    assert [s["taskId"] for s in applied.json()["skipped"]] == [high]
    assignee = await session.scalar(select(Task.assignee_id).where(Task.id == uuid.UUID(high)))
    assert assignee == world.installer_a.id


async def test_dispatch_input_is_validated(client: httpx.AsyncClient, factory: Factory) -> None:
    world = await factory.world()
    headers = factory.auth(world.manager_a)
    for body, field in [
        ({"teamId": str(world.team_a.id), "date": "2026-13-01"}, "date"),
        ({"teamId": "nope", "date": TOMORROW.isoformat()}, "teamId"),
        (
            {"teamId": str(world.team_a.id), "date": TOMORROW.isoformat(), "budgetSeconds": 99},
            "budgetSeconds",
        ),
    ]:
        got = await client.post("/api/v1/dispatch/preview", json=body, headers=headers)
        assert got.status_code in (400, 422), got.text
        assert field in got.text
    missing = await client.post(f"/api/v1/dispatch/{uuid.uuid4()}/apply", headers=headers)
    assert missing.status_code == 404
    worker = await client.post(
        "/api/v1/dispatch/preview",
        json={"teamId": str(world.team_a.id), "date": TOMORROW.isoformat()},
        headers=factory.auth(world.measurer_a),
    )
    assert worker.status_code == 403


async def test_the_worker_job_replans_todays_routes_and_records_moved_etas(
    client: httpx.AsyncClient,
    factory: Factory,
    session: AsyncSession,
    sessionmaker: async_sessionmaker[AsyncSession],
) -> None:
    world = await factory.world()
    today = date(2026, 11, 24)
    clock = factory.clock
    task = await visit(
        client,
        factory,
        world,
        lon=49.10,
        starts=local(today, 12, 10),
        ends=local(today, 18),
        assignee=world.measurer_a,
    )
    await visit(
        client,
        factory,
        world,
        lon=49.12,
        starts=local(TOMORROW, 10),
        ends=local(TOMORROW, 12),
        assignee=world.installer_a,
    )
    await start_shift(client, factory, world.measurer_a)
    sent = await send(client, factory, world.measurer_a, [fix(clock.now(), LAT, 49.00)])
    assert sent.status_code == 200, sent.text
    jobs = Jobs(sessionmaker, clock)

    # Only today's route with open visits: the measurer's; optimised and published.
    assert await jobs.refresh_routes() == (1, 0, 1)
    assert (await route(client, factory, world.measurer_a, today))["optimised"] is True
    assert await jobs.refresh_routes() == (1, 0, 0)  # nothing changed

    # Half an hour later, still at the same place: the visit's ETA moved by 30 minutes.
    clock.advance(timedelta(minutes=30))
    sent = await send(client, factory, world.measurer_a, [fix(clock.now(), LAT, 49.00)])
    assert sent.status_code == 200, sent.text
    assert await jobs.refresh_routes() == (1, 1, 0)
    change = await session.scalar(select(EtaChange).where(EtaChange.task_id == uuid.UUID(task)))
    assert change is not None
    assert change.user_id == world.measurer_a.id
    assert change.delta_s == 30 * 60
    assert change.new_eta - change.previous_eta == timedelta(minutes=30)


async def test_a_new_visit_goes_to_the_worker_whose_day_it_fits_with_least_driving(
    client: httpx.AsyncClient, factory: Factory, session: AsyncSession
) -> None:
    world = await factory.world()
    await set_base(session, world.installer_a, LAT, 49.00)
    await set_base(session, world.installer_b, LAT, 49.30)
    _, site_id = await site(client, factory, world, 49.28)
    installers = [world.installer_a.id, world.installer_b.id]

    async def pick(window: tuple[datetime, datetime] | None) -> uuid.UUID | None:
        return await best_worker(
            session,
            world.org.id,
            installers,
            site_id=uuid.UUID(site_id),
            kind=TaskKind.INSTALLATION,
            window=window,
            time_zone="Europe/Moscow",
            now=factory.clock.now(),
        )

    morning = (local(TOMORROW, 10), local(TOMORROW, 12))
    assert await pick(morning) == world.installer_b.id  # next door to their base
    # Installer B's morning is taken far away: the visit cannot start by 12:00 there.
    await visit(
        client,
        factory,
        world,
        lon=48.80,
        kind="installation",
        starts=local(TOMORROW, 8),
        ends=local(TOMORROW, 9),
        assignee=world.installer_b,
    )
    assert await pick(morning) == world.installer_a.id
    # Without a window: the first day someone can take it, least driving first.
    assert await pick(None) == world.installer_b.id
    assert (
        await best_worker(
            session,
            world.org.id,
            installers,
            site_id=None,
            kind=TaskKind.INSTALLATION,
            window=morning,
            time_zone="Europe/Moscow",
            now=factory.clock.now(),
        )
        is None
    )
