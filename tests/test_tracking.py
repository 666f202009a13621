"""GPS tracking through the API: ingest rules, shifts and schedules, devices, live status and its
privacy, proof of visit, day tracks, the worker's own data, hints, partitions and retention."""

from __future__ import annotations

import json
import math
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import select, text
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
)

from backend.accounts.models import Role, User
from backend.accounts.security import mint_access_token
from backend.audit.models import AuditEntry
from backend.lib.clock import FrozenClock
from backend.lib.idempotency import IdempotentRequest
from backend.lib.tenancy import Actor
from backend.notifications.models import Notification
from backend.tasks.models import Task, TaskStatus
from backend.tracking import live, partitions
from backend.tracking.days import summarize_day
from backend.worker import Jobs
from tests.conftest import START, Factory, World, customer_body, unreachable_first
from tests.test_documents_unit import PNG

SITE_LAT, SITE_LON = 55.7887, 49.1221  # the site of conftest.customer_body
M_PER_DEG_LAT = 111_195.0


def north(lat: float, metres: float) -> float:
    """The latitude ``metres`` north of ``lat``."""
    return lat + metres / M_PER_DEG_LAT


def fix(at: datetime, lat: float = SITE_LAT, lon: float = SITE_LON, **extra: Any) -> dict[str, Any]:
    """One point of a batch."""
    point: dict[str, Any] = {"timestamp": at.isoformat(), "lat": lat, "lon": lon, "accuracy": 8.0}
    point.update(extra)
    return point


async def send(
    client: httpx.AsyncClient,
    factory: Factory,
    user: User,
    points: list[dict[str, Any]],
    key: str | None = None,
) -> httpx.Response:
    headers = factory.auth(user)
    if key is not None:
        headers["Idempotency-Key"] = key
    return await client.post("/api/v1/tracking/pings", json={"points": points}, headers=headers)


async def start_shift(client: httpx.AsyncClient, factory: Factory, user: User) -> None:
    """Start the user's shift two hours before the clock's time (points before it are off)."""
    now = factory.clock.now()
    factory.clock.set(now - timedelta(hours=2))
    started = await client.post("/api/v1/tracking/shifts/start", headers=factory.auth(user))
    factory.clock.set(now)
    assert started.status_code == 201, started.text


async def stored(session: AsyncSession, user: User) -> list[tuple[datetime, float, float]]:
    rows = await session.execute(
        text("SELECT recorded_at, lat, lon FROM pings WHERE user_id = :u ORDER BY recorded_at"),
        {"u": user.id},
    )
    return [(r[0], r[1], r[2]) for r in rows.all()]


async def visit_task(
    client: httpx.AsyncClient,
    factory: Factory,
    world: World,
    assignee: User,
    *,
    starts: datetime = START + timedelta(hours=1),
    title: str = "Measure 3 windows",
) -> str:
    """A measurement at the conftest customer's site in Kazan, assigned to ``assignee``."""
    customer = await client.post(
        "/api/v1/customers", json=customer_body(), headers=factory.auth(world.manager_a)
    )
    assert customer.status_code == 201, customer.text
    body = customer.json()
    task = await client.post(
        "/api/v1/tasks",
        json={
            "kind": "measurement",
            "title": title,
            "assigneeId": str(assignee.id),
            "customerId": body["id"],
            "siteId": body["sites"][0]["id"],
            "windowStart": starts.isoformat(),
            "windowEnd": (starts + timedelta(hours=1)).isoformat(),
        },
        headers=factory.auth(world.manager_a),
    )
    assert task.status_code == 201, task.text
    task_id: str = task.json()["id"]
    return task_id


# --- ingest --------------------------------------------------------------------------------


async def test_valid_points_are_stored_and_each_refusal_says_why(
    client: httpx.AsyncClient, factory: Factory, session: AsyncSession
) -> None:
    world = await factory.world()
    worker = world.measurer_a
    await start_shift(client, factory, worker)
    t = START - timedelta(minutes=10)
    points = [
        fix(t, speed=12.5, heading=90, altitude=120, battery=81, activity="in_vehicle"),  # 0 ok
        fix(t + timedelta(seconds=5), lat=91),  # 1
        fix(t + timedelta(seconds=10), lon=181),  # 2
        fix(t + timedelta(seconds=15), lat="north"),  # 3
        fix(START + timedelta(minutes=6)),  # 4 future
        fix(START - timedelta(days=8)),  # 5 ancient
        fix(t),  # 6 same instant as 0
        {"lat": 55.0, "lon": 49.0},  # 7 no time
        fix(datetime(2026, 11, 24, 8, 55)),  # 8 naive
        fix(t + timedelta(seconds=20), speed=-1),  # 9
        fix(t + timedelta(seconds=25), lat=129.73, lon=62.03),  # 10 Yakutsk, lat/lon swapped
        fix(t + timedelta(seconds=30), lat=north(SITE_LAT, 50)),  # 11 ok
        "not a point",  # 12
        fix(t + timedelta(seconds=35), battery=101),  # 13
    ]
    answer = await send(client, factory, worker, points)
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert body["accepted"] == 2
    assert body["duplicates"] == 0
    assert body["offShift"] == 0
    reasons = {r["index"]: (r["field"], r["reason"]) for r in body["rejected"]}
    assert sorted(reasons) == [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 12, 13]
    assert reasons[1][0] == "lat"
    assert reasons[2][0] == "lon"
    assert reasons[3][0] == "lat"
    assert reasons[4] == ("timestamp", "more than 5 minutes in the future")
    assert reasons[5] == ("timestamp", "older than 7 days")
    assert reasons[6] == ("timestamp", "another point of this batch has this time")
    assert reasons[7][0] == "timestamp"
    assert reasons[8] == ("timestamp", "needs a time zone (e.g. Z)")
    assert reasons[9][0] == "speed"
    assert reasons[10][0] == "lat"
    assert reasons[12][0] == "point"
    assert reasons[13][0] == "battery"
    rows = await stored(session, worker)
    assert [r[0] for r in rows] == [t, t + timedelta(seconds=30)]
    first = await session.execute(
        text(
            "SELECT speed_mps, heading_deg, altitude_m, battery_pct, activity, received_at"
            " FROM pings WHERE user_id = :u AND recorded_at = :t"
        ),
        {"u": worker.id, "t": t},
    )
    assert tuple(first.one()) == (12.5, 90.0, 120.0, 81.0, "in_vehicle", START)
    latest = await session.execute(
        text("SELECT recorded_at, lat FROM latest_positions WHERE user_id = :u"), {"u": worker.id}
    )
    assert tuple(latest.one()) == (t + timedelta(seconds=30), north(SITE_LAT, 50))


async def test_points_outside_a_shift_are_counted_not_stored(
    client: httpx.AsyncClient, factory: Factory, session: AsyncSession, clock: FrozenClock
) -> None:
    world = await factory.world()
    worker = world.installer_a
    before = START - timedelta(minutes=3)
    answer = await send(client, factory, worker, [fix(before)])
    assert answer.json() == {"accepted": 0, "duplicates": 0, "offShift": 1, "rejected": []}
    started = await client.post("/api/v1/tracking/shifts/start", headers=factory.auth(worker))
    assert started.status_code == 201
    clock.advance(timedelta(minutes=5))
    ended = await client.post("/api/v1/tracking/shifts/end", headers=factory.auth(worker))
    assert ended.status_code == 200
    clock.advance(timedelta(minutes=1))
    batch = [
        fix(before),
        fix(START + timedelta(minutes=1)),
        fix(START + timedelta(minutes=5, seconds=30)),
    ]
    answer = await send(client, factory, worker, batch)
    assert answer.json() == {"accepted": 1, "duplicates": 0, "offShift": 2, "rejected": []}
    assert [r[0] for r in await stored(session, worker)] == [START + timedelta(minutes=1)]
    latest = await session.scalar(
        text("SELECT count(*) FROM latest_positions WHERE user_id = :u"), {"u": worker.id}
    )
    assert latest == 1


async def test_a_resent_batch_is_stored_once(
    client: httpx.AsyncClient, factory: Factory, session: AsyncSession
) -> None:
    world = await factory.world()
    worker = world.measurer_a
    await start_shift(client, factory, worker)
    batch = [fix(START - timedelta(seconds=s)) for s in (30, 20, 10)]
    first = await send(client, factory, worker, batch)
    assert first.json()["accepted"] == 3
    again = await send(client, factory, worker, [*batch, fix(START)])
    assert again.json() == {"accepted": 1, "duplicates": 3, "offShift": 0, "rejected": []}
    assert len(await stored(session, worker)) == 4


async def test_a_batch_out_of_time_order_keeps_the_newest_as_latest(
    client: httpx.AsyncClient, factory: Factory, session: AsyncSession
) -> None:
    world = await factory.world()
    worker = world.measurer_a
    await start_shift(client, factory, worker)
    newest = START - timedelta(seconds=5)
    batch = [
        fix(START - timedelta(seconds=20), lat=north(SITE_LAT, 10)),
        fix(newest, lat=north(SITE_LAT, 30)),
        fix(START - timedelta(seconds=40), lat=north(SITE_LAT, 20)),
    ]
    answer = await send(client, factory, worker, batch)
    assert answer.json() == {"accepted": 3, "duplicates": 0, "offShift": 0, "rejected": []}
    latest = await session.execute(
        text("SELECT recorded_at, lat FROM latest_positions WHERE user_id = :u"), {"u": worker.id}
    )
    assert [tuple(r) for r in latest] == [(newest, north(SITE_LAT, 30))]
    assert [t for t, _, _ in await stored(session, worker)] == sorted(
        [START - timedelta(seconds=s) for s in (40, 20, 5)]
    )


async def test_idempotency_key_replays_the_answer_and_refuses_another_body(
    client: httpx.AsyncClient, factory: Factory, session: AsyncSession
) -> None:
    world = await factory.world()
    worker = world.measurer_a
    await start_shift(client, factory, worker)
    batch = [fix(START - timedelta(seconds=10)), fix(START, lat=95)]
    key = str(uuid.uuid4())
    first = await send(client, factory, worker, batch, key=key)
    assert first.status_code == 200
    replay = await send(client, factory, worker, batch, key=key)
    assert replay.status_code == 200
    assert replay.json() == first.json()
    assert replay.headers["idempotent-replay"] == "true"
    assert first.json()["accepted"] == 1  # the replay did not turn into "duplicates: 1"
    other = await send(client, factory, worker, [fix(START - timedelta(seconds=5))], key=key)
    assert other.status_code == 409
    assert other.headers["content-type"].startswith("application/problem+json")
    assert len(await stored(session, worker)) == 1
    # Keys are per user: another worker may use the same key for their own batch.
    await start_shift(client, factory, world.installer_a)
    theirs = await send(client, factory, world.installer_a, batch, key=key)
    assert theirs.status_code == 200
    assert theirs.json()["accepted"] == 1
    bad_key = await send(client, factory, worker, batch, key="x" * 201)
    assert bad_key.status_code == 422
    assert bad_key.json()["errors"][0]["field"] == "Idempotency-Key"


async def test_oversized_and_malformed_batches_are_refused_whole(
    client: httpx.AsyncClient, factory: Factory, session: AsyncSession
) -> None:
    world = await factory.world()
    worker = world.measurer_a
    await start_shift(client, factory, worker)
    huge = [fix(START - timedelta(milliseconds=10 * i)) for i in range(10_000)]
    answer = await send(client, factory, worker, huge)
    assert answer.status_code in (413, 422)
    assert answer.headers["content-type"].startswith("application/problem+json")
    if answer.status_code == 422:
        assert answer.json()["errors"][0]["field"] == "points"
    for body in (b"not json", b'{"points": 5}', b"[]", b'{"points": [], "extra": 1}'):
        refused = await client.post(
            "/api/v1/tracking/pings",
            content=body,
            headers={**factory.auth(worker), "content-type": "application/json"},
        )
        assert refused.status_code == 400, body
        assert refused.json()["errors"][0]["field"] == "points"
    assert await stored(session, worker) == []
    anonymous = await client.post("/api/v1/tracking/pings", json={"points": [fix(START)]})
    assert anonymous.status_code == 401


async def test_the_ping_endpoint_refuses_what_the_guard_refuses(
    client: httpx.AsyncClient, factory: Factory, session: AsyncSession, clock: FrozenClock
) -> None:
    """Every credential the app's guard refuses is refused by the high-volume ping endpoint,
    and nothing is stored."""
    world = await factory.world()
    worker = world.measurer_a
    await start_shift(client, factory, worker)
    batch = {"points": [fix(START - timedelta(seconds=1))]}

    def bearer(**claims: Any) -> dict[str, str]:
        token = mint_access_token(
            user_id=claims.get("user_id", worker.id),
            organization_id=claims.get("organization_id", worker.organization_id),
            token_version=claims.get("token_version", worker.token_version),
            now=claims.get("now", clock.now()),
            ttl_s=claims.get("ttl_s", 600),
            secret_key=claims.get("secret_key", factory.settings.secret_key),
        )
        return {"Authorization": f"Bearer {token}"}

    refused = [
        {},
        {"Authorization": "Basic abc"},
        {"Authorization": "Bearer "},
        {"Authorization": "Bearer not-a-token"},
        bearer(secret_key="another-secret-key-" + "y" * 40),
        bearer(now=clock.now() - timedelta(hours=2)),  # expired
        bearer(token_version=worker.token_version + 1),  # logged out everywhere since
        bearer(organization_id=world.admin.organization_id, user_id=uuid.uuid4()),
        bearer(organization_id=uuid.uuid4()),  # the user, another organisation
    ]
    for headers in refused:
        answer = await client.post("/api/v1/tracking/pings", json=batch, headers=headers)
        assert answer.status_code == 401, headers
        assert answer.headers["www-authenticate"] == "Bearer"
    assert await stored(session, worker) == []
    await session.execute(
        text("UPDATE users SET is_active = false WHERE id = :id"), {"id": worker.id}
    )
    await session.commit()
    gone = await client.post("/api/v1/tracking/pings", json=batch, headers=bearer())
    assert gone.status_code == 401
    assert await stored(session, worker) == []


_WEIRD_NUMBERS = st.one_of(
    st.floats(allow_nan=True, allow_infinity=True),
    st.integers(min_value=-(10**30), max_value=10**30),
    st.sampled_from(["NaN", "Infinity", "-inf", "55.7", "", "north", None, True]),
)
_WEIRD_TIMES = st.one_of(
    st.datetimes(
        min_value=datetime(1970, 1, 1),
        max_value=datetime(2100, 1, 1),
        timezones=st.sampled_from([UTC, None]),
    ).map(lambda d: d.isoformat()),
    st.integers(min_value=START.toordinal() - 10, max_value=START.toordinal() + 10).map(str),
    st.sampled_from(["", "yesterday", "2026-11-24T08:59:00Z", "2026-13-45T99:00:00Z"]),
    st.integers(min_value=0, max_value=600).map(
        lambda s: (START - timedelta(seconds=s)).isoformat()
    ),
)
_WEIRD_POINT = st.one_of(
    st.fixed_dictionaries(
        {"timestamp": _WEIRD_TIMES, "lat": _WEIRD_NUMBERS, "lon": _WEIRD_NUMBERS},
        optional={
            "accuracy": _WEIRD_NUMBERS,
            "speed": _WEIRD_NUMBERS,
            "heading": _WEIRD_NUMBERS,
            "battery": _WEIRD_NUMBERS,
            "mocked": st.one_of(st.booleans(), st.text(max_size=3)),
            "activity": st.text(max_size=40),
            "unknown": st.integers(),
        },
    ),
    st.text(max_size=5),
    st.none(),
    st.lists(st.integers(), max_size=3),
)


def _raw_json(points: list[Any]) -> bytes:
    """JSON as a sloppy client writes it: NaN and Infinity as bare tokens."""
    return json.dumps({"points": points}, allow_nan=True).encode()


@settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(points=st.lists(_WEIRD_POINT, max_size=30))
async def test_fuzzed_batches_never_fail_the_server(
    client: httpx.AsyncClient, factory: Factory, session: AsyncSession, points: list[Any]
) -> None:
    world = await factory.world(name=f"Fuzz {uuid.uuid4().hex[:6]}")
    worker = world.measurer_a
    await start_shift(client, factory, worker)
    answer = await client.post(
        "/api/v1/tracking/pings",
        content=_raw_json(points),
        headers={**factory.auth(worker), "content-type": "application/json"},
    )
    assert answer.status_code in (200, 400), answer.text
    body = answer.json()
    if answer.status_code == 400:
        assert body["errors"][0]["field"] == "points"
        assert await stored(session, worker) == []
        return
    counted = body["accepted"] + body["duplicates"] + body["offShift"] + len(body["rejected"])
    assert counted == len(points)
    assert all(r["field"] and r["reason"] for r in body["rejected"])
    rows = await stored(session, worker)
    assert len(rows) == body["accepted"]
    for _, lat, lon in rows:
        assert -90 <= lat <= 90
        assert -180 <= lon <= 180
        assert math.isfinite(lat)
        assert math.isfinite(lon)


# --- shifts and schedules ------------------------------------------------------------------


async def test_shift_start_and_end_rules(
    client: httpx.AsyncClient, factory: Factory, clock: FrozenClock
) -> None:
    world = await factory.world()
    worker = world.installer_b
    auth = factory.auth(worker)
    assert (await client.post("/api/v1/tracking/shifts/end", headers=auth)).status_code == 409
    await start_shift(client, factory, worker)
    again = await client.post("/api/v1/tracking/shifts/start", headers=auth)
    assert again.status_code == 409
    clock.advance(timedelta(hours=8))
    ended = await client.post("/api/v1/tracking/shifts/end", headers=factory.auth(worker))
    assert ended.status_code == 200
    assert datetime.fromisoformat(ended.json()["endedAt"]) == START + timedelta(hours=8)
    listed = await client.get("/api/v1/tracking/shifts", headers=factory.auth(worker))
    assert [s["source"] for s in listed.json()] == ["manual"]
    # The team's manager may list them; the other team's manager may not.
    mine = await client.get(
        f"/api/v1/tracking/shifts?userId={worker.id}", headers=factory.auth(world.manager_b)
    )
    assert mine.status_code == 200
    assert len(mine.json()) == 1
    other = await client.get(
        f"/api/v1/tracking/shifts?userId={worker.id}", headers=factory.auth(world.manager_a)
    )
    assert other.status_code == 404


async def _set_schedule(
    client: httpx.AsyncClient, factory: Factory, who: User, worker: User, schedule: Any
) -> httpx.Response:
    return await client.put(
        f"/api/v1/tracking/users/{worker.id}/schedule",
        json={"schedule": schedule},
        headers=factory.auth(who),
    )


async def test_schedule_is_set_by_the_team_manager_and_validated(
    client: httpx.AsyncClient, factory: Factory
) -> None:
    world = await factory.world()
    week = {"mon": [["08:00", "17:00"]], "sat": [["22:00", "06:00"]]}
    assert (
        await _set_schedule(client, factory, world.measurer_a, world.measurer_a, week)
    ).status_code == 403
    assert (
        await _set_schedule(client, factory, world.manager_b, world.measurer_a, week)
    ).status_code == 404
    ok = await _set_schedule(client, factory, world.manager_a, world.measurer_a, week)
    assert ok.status_code == 200, ok.text
    assert ok.json()["timeZone"] == "Europe/Moscow"
    own = await client.get(
        f"/api/v1/tracking/users/{world.measurer_a.id}/schedule",
        headers=factory.auth(world.measurer_a),
    )
    assert own.json()["schedule"] == ok.json()["schedule"]
    bad = await _set_schedule(
        client, factory, world.manager_a, world.measurer_a, {"mon": [["08:00", "25:00"]]}
    )
    assert bad.status_code == 422
    assert bad.json()["errors"][0]["field"].startswith("schedule")


async def test_a_weekly_schedule_keeps_points_in_the_workers_own_time_zone(
    client: httpx.AsyncClient, factory: Factory, session: AsyncSession
) -> None:
    world = await factory.world()
    worker = world.installer_a
    worker.time_zone = "Asia/Yekaterinburg"  # UTC+5, while the org is in Moscow (UTC+3)
    await session.commit()
    week: dict[str, Any] = {d: [["13:00", "17:00"]] for d in ("mon", "tue", "wed", "thu", "fri")}
    week["graceMinutes"] = 0
    assert (await _set_schedule(client, factory, world.manager_a, worker, week)).status_code == 200
    # Tuesday 2026-11-24: 13:00 in Yekaterinburg is 08:00 UTC (11:00 in Moscow).
    batch = [
        fix(datetime(2026, 11, 24, 7, 59, tzinfo=UTC)),
        fix(datetime(2026, 11, 24, 8, 0, tzinfo=UTC)),
        fix(datetime(2026, 11, 24, 8, 30, tzinfo=UTC)),
    ]
    answer = await send(client, factory, worker, batch)
    assert answer.json()["accepted"] == 2
    assert answer.json()["offShift"] == 1


async def test_scheduled_shifts_across_clock_changes(
    client: httpx.AsyncClient, factory: Factory, session: AsyncSession, clock: FrozenClock
) -> None:
    world = await factory.world()
    worker = world.measurer_a
    worker.time_zone = "America/New_York"
    await session.commit()
    # Sunday 01:00-05:00 on the night the US clocks spring forward (2027-03-14, 02:00 → 03:00):
    # 01:00 EST = 06:00 UTC, 05:00 EDT = 09:00 UTC — three hours, not four.
    week = {"sun": [["01:00", "05:00"]], "graceMinutes": 0}
    clock.set(datetime(2027, 3, 14, 9, 30, tzinfo=UTC))
    assert (await _set_schedule(client, factory, world.manager_a, worker, week)).status_code == 200
    spring = [
        fix(datetime(2027, 3, 14, 5, 59, tzinfo=UTC)),
        fix(datetime(2027, 3, 14, 6, 1, tzinfo=UTC)),
        fix(datetime(2027, 3, 14, 8, 59, tzinfo=UTC)),
        fix(datetime(2027, 3, 14, 9, 1, tzinfo=UTC)),
    ]
    answer = await send(client, factory, worker, spring)
    assert (answer.json()["accepted"], answer.json()["offShift"]) == (2, 2)
    # The night the clocks fall back (2027-11-07, 02:00 → 01:00): 01:00 EDT = 05:00 UTC,
    # 05:00 EST = 10:00 UTC — five hours.
    clock.set(datetime(2027, 11, 7, 10, 30, tzinfo=UTC))
    autumn = [
        fix(datetime(2027, 11, 7, 4, 59, tzinfo=UTC)),
        fix(datetime(2027, 11, 7, 5, 1, tzinfo=UTC)),
        fix(datetime(2027, 11, 7, 9, 59, tzinfo=UTC)),
        fix(datetime(2027, 11, 7, 10, 1, tzinfo=UTC)),
    ]
    answer = await send(client, factory, worker, autumn)
    assert (answer.json()["accepted"], answer.json()["offShift"]) == (2, 2)


# --- devices -------------------------------------------------------------------------------


async def test_devices_are_registered_once_and_scoped(
    client: httpx.AsyncClient, factory: Factory
) -> None:
    world = await factory.world()
    other = await factory.world(name="Other Windows")
    mine = await client.post(
        "/api/v1/tracking/devices",
        json={"identifier": "d-4f8a21", "name": "Pixel"},
        headers=factory.auth(world.measurer_a),
    )
    assert mine.status_code == 201, mine.text
    taken = await client.post(
        "/api/v1/tracking/devices",
        json={"identifier": "d-4f8a21"},
        headers=factory.auth(other.measurer_a),
    )
    assert taken.status_code == 409
    for_someone = await client.post(
        "/api/v1/tracking/devices",
        json={"identifier": "d-other", "userId": str(world.installer_a.id)},
        headers=factory.auth(world.measurer_a),
    )
    assert for_someone.status_code == 403
    by_admin = await client.post(
        "/api/v1/tracking/devices",
        json={"identifier": "d-other", "userId": str(world.installer_a.id)},
        headers=factory.auth(world.admin),
    )
    assert by_admin.status_code == 201
    spaces = await client.post(
        "/api/v1/tracking/devices",
        json={"identifier": "has space"},
        headers=factory.auth(world.measurer_a),
    )
    assert spaces.status_code == 400
    assert spaces.json()["errors"][0]["field"] == "identifier"
    own = await client.get("/api/v1/tracking/devices", headers=factory.auth(world.measurer_a))
    assert [d["identifier"] for d in own.json()] == ["d-4f8a21"]
    everyone = await client.get("/api/v1/tracking/devices", headers=factory.auth(world.admin))
    assert sorted(d["identifier"] for d in everyone.json()) == ["d-4f8a21", "d-other"]
    device_id = mine.json()["id"]
    foreign = await client.delete(
        f"/api/v1/tracking/devices/{device_id}", headers=factory.auth(other.admin)
    )
    assert foreign.status_code == 404
    gone = await client.delete(
        f"/api/v1/tracking/devices/{device_id}", headers=factory.auth(world.measurer_a)
    )
    assert gone.status_code == 204


# --- live status and privacy ---------------------------------------------------------------


async def test_live_status_of_a_team_is_for_its_manager_and_each_look_is_audited(
    client: httpx.AsyncClient, factory: Factory, session: AsyncSession, clock: FrozenClock
) -> None:
    world = await factory.world()
    for worker in (world.measurer_a, world.installer_a, world.installer_b):
        await start_shift(client, factory, worker)
    await send(client, factory, world.installer_b, [fix(START - timedelta(seconds=5))])
    await send(client, factory, world.installer_a, [fix(START - timedelta(seconds=60))])
    clock.advance(timedelta(minutes=11))  # installer_a now offline
    await send(
        client,
        factory,
        world.measurer_a,
        [fix(clock.now() - timedelta(seconds=3), speed=11.0, battery=64)],
    )
    answer = await client.get("/api/v1/tracking/live", headers=factory.auth(world.manager_a))
    assert answer.status_code == 200
    live = answer.json()
    assert live["type"] == "FeatureCollection"
    by_name = {f["properties"]["name"]: f for f in live["features"]}
    assert set(by_name) == {"Max Measurer", "Igor Installer"}
    measurer = by_name["Max Measurer"]
    assert measurer["properties"]["status"] == "driving"
    assert measurer["properties"]["battery"] == 64
    assert measurer["geometry"] == {"type": "Point", "coordinates": [SITE_LON, SITE_LAT]}
    assert by_name["Igor Installer"]["properties"]["status"] == "offline"
    audit = (
        await session.scalars(
            select(AuditEntry).where(
                AuditEntry.entity == "location", AuditEntry.actor_id == world.manager_a.id
            )
        )
    ).all()
    assert len(audit) == 1
    assert audit[0].entity_id == world.team_a.id
    assert audit[0].changes == {"scope": "team", "workers": 2}
    # The other team's manager cannot ask for this team; a worker sees only themself, unaudited.
    refused = await client.get(
        f"/api/v1/tracking/live?team={world.team_a.id}", headers=factory.auth(world.manager_b)
    )
    assert refused.status_code == 404
    own = await client.get("/api/v1/tracking/live", headers=factory.auth(world.installer_b))
    assert [f["properties"]["name"] for f in own.json()["features"]] == ["Ivan Installer"]
    assert own.json()["features"][0]["properties"]["status"] == "offline"
    everyone = await client.get("/api/v1/tracking/live", headers=factory.auth(world.admin))
    assert len(everyone.json()["features"]) == 3
    audited = await session.scalar(
        select(AuditEntry.id).where(
            AuditEntry.entity == "location", AuditEntry.actor_id == world.installer_b.id
        )
    )
    assert audited is None


async def test_live_status_off_shift_idle_and_on_site_with_tasks(
    client: httpx.AsyncClient, factory: Factory, session: AsyncSession
) -> None:
    world = await factory.world()
    worker = world.measurer_a
    later = await visit_task(
        client, factory, world, worker, starts=START + timedelta(hours=3), title="Later one"
    )
    now_task = await visit_task(client, factory, world, worker, title="This one")
    live = await client.get("/api/v1/tracking/live", headers=factory.auth(world.manager_a))
    props = {f["properties"]["name"]: f["properties"] for f in live.json()["features"]}
    assert props["Max Measurer"]["status"] == "off_shift"
    assert props["Max Measurer"]["nextTask"]["id"] == now_task
    await start_shift(client, factory, worker)
    await send(
        client, factory, worker, [fix(START - timedelta(seconds=2), lat=north(SITE_LAT, 900))]
    )
    live = await client.get("/api/v1/tracking/live", headers=factory.auth(world.manager_a))
    props = {f["properties"]["name"]: f["properties"] for f in live.json()["features"]}
    assert props["Max Measurer"]["status"] == "idle"
    checked = await client.post(
        f"/api/v1/tasks/{now_task}/check-in",
        json={"lat": SITE_LAT, "lon": SITE_LON, "accuracy": 6},
        headers=factory.auth(worker),
    )
    assert checked.status_code == 201
    await send(client, factory, worker, [fix(START - timedelta(seconds=1))])
    live = await client.get("/api/v1/tracking/live", headers=factory.auth(world.manager_a))
    props = {f["properties"]["name"]: f["properties"] for f in live.json()["features"]}
    assert props["Max Measurer"]["status"] == "on_site"
    assert props["Max Measurer"]["currentTask"] == {"id": now_task, "title": "This one"}
    assert props["Max Measurer"]["nextTask"]["id"] == later


async def test_the_live_query_runs_inside_the_request_transaction(engine: AsyncEngine) -> None:
    """live_json talks to the asyncpg connection directly; its audit entry must still be part
    of the caller's transaction (SQLAlchemy begins that lazily)."""
    actor = Actor(
        user_id=uuid.uuid4(),
        organization_id=uuid.uuid4(),
        role=Role.ADMIN,
        skills=frozenset(),
        time_zone="UTC",
        org_time_zone="UTC",
        phone_region=None,
        team_member_ids=frozenset(),
    )
    async with AsyncSession(bind=engine) as session, session.begin():
        answer = await live.live_json(session, actor, START, None)
        raw = await (await session.connection()).get_raw_connection()
        assert raw.driver_connection is not None
        assert raw.driver_connection.is_in_transaction()
    assert json.loads(answer)["features"] == []


# --- proof of visit ------------------------------------------------------------------------


async def _check(
    client: httpx.AsyncClient,
    factory: Factory,
    worker: User,
    task_id: str,
    kind: str = "in",
    **body: Any,
) -> httpx.Response:
    body.setdefault("lat", SITE_LAT)
    body.setdefault("lon", SITE_LON)
    body.setdefault("accuracy", 6.0)
    if kind == "out":
        body.setdefault("outcome", "Measured 3 windows, sheet attached")
    return await client.post(
        f"/api/v1/tasks/{task_id}/check-{kind}", json=body, headers=factory.auth(worker)
    )


async def test_verified_visit_starts_and_completes_the_task_with_dwell_from_pings(
    client: httpx.AsyncClient, factory: Factory, session: AsyncSession, clock: FrozenClock
) -> None:
    world = await factory.world()
    worker = world.measurer_a
    task_id = await visit_task(client, factory, world, worker)
    await start_shift(client, factory, worker)
    arrive = await _check(client, factory, worker, task_id, lat=north(SITE_LAT, 40), accuracy=12)
    assert arrive.status_code == 201, arrive.text
    assert arrive.json()["status"] == "verified"
    assert arrive.json()["flags"] == []
    assert 35 < arrive.json()["distanceM"] < 45
    task = await session.get(Task, uuid.UUID(task_id), populate_existing=True)
    assert task is not None
    assert task.status is TaskStatus.IN_PROGRESS
    clock.advance(timedelta(minutes=25))
    await send(
        client,
        factory,
        worker,
        [fix(START + timedelta(minutes=m), lat=north(SITE_LAT, 10)) for m in range(1, 25, 2)],
    )
    photo = await client.post(
        f"/api/v1/tasks/{task_id}/attachments?filename=window.png",
        content=PNG,
        headers=factory.auth(worker),
    )
    assert photo.status_code == 201, photo.text
    assert photo.json()["contentType"] == "image/png"
    leave = await _check(client, factory, worker, task_id, kind="out")
    assert leave.status_code == 201, leave.text
    assert leave.json()["status"] == "verified"
    assert leave.json()["dwellS"] == 25 * 60
    assert leave.json()["outcome"] == "Measured 3 windows, sheet attached"
    task = await session.get(Task, uuid.UUID(task_id), populate_existing=True)
    assert task is not None
    assert task.status is TaskStatus.DONE
    history = await client.get(
        f"/api/v1/tasks/{task_id}/check-ins", headers=factory.auth(world.manager_a)
    )
    assert [c["kind"] for c in history.json()] == ["in", "out"]
    files = await client.get(
        f"/api/v1/tasks/{task_id}/attachments", headers=factory.auth(world.manager_a)
    )
    assert [f["filename"] for f in files.json()] == ["window.png"]
    stranger = await client.get(
        f"/api/v1/tasks/{task_id}/attachments", headers=factory.auth(world.manager_b)
    )
    assert stranger.status_code == 404


async def test_check_in_away_from_the_site_is_unverified_unless_a_reason_is_given(
    client: httpx.AsyncClient, factory: Factory, session: AsyncSession
) -> None:
    world = await factory.world()
    worker = world.measurer_a
    far = north(SITE_LAT, 2000)
    first = await visit_task(client, factory, world, worker)
    away = await _check(client, factory, worker, first, lat=far)
    assert away.json()["status"] == "unverified"
    assert away.json()["flags"] == ["outside_site"]
    assert 1990 < away.json()["distanceM"] < 2010
    second = await visit_task(client, factory, world, worker)
    short = await _check(client, factory, worker, second, lat=far, overrideReason="x")
    assert short.status_code == 400
    assert short.json()["errors"][0]["field"] == "overrideReason"
    overridden = await _check(
        client,
        factory,
        worker,
        second,
        lat=far,
        overrideReason="The site pin is on the wrong street",
    )
    assert overridden.json()["status"] == "overridden"
    entry = await session.scalar(
        select(AuditEntry).where(
            AuditEntry.entity_id == uuid.UUID(second), AuditEntry.action == "check_in"
        )
    )
    assert entry is not None
    assert entry.changes["overrideReason"][1] == "The site pin is on the wrong street"
    # A 130 m-accuracy fix 250 m away could be on site, but is too poor to prove it.
    third = await visit_task(client, factory, world, worker)
    fuzzy = await _check(client, factory, worker, third, lat=north(SITE_LAT, 250), accuracy=130)
    assert fuzzy.json()["status"] == "unverified"
    assert fuzzy.json()["flags"] == ["poor_accuracy"]


async def test_mocked_locations_and_impossible_jumps_are_suspicious(
    client: httpx.AsyncClient, factory: Factory
) -> None:
    world = await factory.world()
    worker = world.measurer_a
    await start_shift(client, factory, worker)
    mocked = await _check(
        client, factory, worker, await visit_task(client, factory, world, worker), mocked=True
    )
    assert mocked.json()["status"] == "suspicious"
    assert mocked.json()["flags"] == ["mocked_location"]
    # 20 km away 30 seconds ago: nobody drives 2,400 km/h to the site.
    other = await factory.world(name="Jumpers")
    jumper = other.measurer_a
    await start_shift(client, factory, jumper)
    await send(
        client, factory, jumper, [fix(START - timedelta(seconds=30), lat=north(SITE_LAT, 20_000))]
    )
    task_id = await visit_task(client, factory, other, jumper)
    jump = await _check(client, factory, jumper, task_id)
    assert jump.json()["status"] == "suspicious"
    assert jump.json()["flags"] == ["implausible_jump"]
    # Even a stated reason does not turn a suspicious check-in into an accepted one.
    third = await factory.world(name="Spoofers")
    spoofer = third.measurer_a
    task_id = await visit_task(client, factory, third, spoofer)
    spoofed = await _check(
        client, factory, spoofer, task_id, mocked=True, overrideReason="GPS was acting up"
    )
    assert spoofed.json()["status"] == "suspicious"


async def test_check_out_rules(
    client: httpx.AsyncClient, factory: Factory, clock: FrozenClock
) -> None:
    world = await factory.world()
    worker = world.measurer_a
    task_id = await visit_task(client, factory, world, worker)
    early = await _check(client, factory, worker, task_id, kind="out")
    assert early.status_code == 409
    stranger = await _check(client, factory, world.installer_a, task_id)
    assert stranger.status_code in (400, 404)
    foreign = await factory.world(name="Foreign")
    assert (await _check(client, factory, foreign.measurer_a, task_id)).status_code == 404
    assert (await _check(client, factory, worker, task_id)).status_code == 201
    clock.advance(timedelta(seconds=40))
    no_outcome = await _check(client, factory, worker, task_id, kind="out", outcome="")
    assert no_outcome.status_code == 400
    quick = await _check(client, factory, worker, task_id, kind="out")
    assert quick.status_code == 201
    assert quick.json()["flags"] == ["short_visit"]
    assert quick.json()["dwellS"] == 40
    call = await client.post(
        "/api/v1/tasks",
        json={"kind": "call", "title": "Call back", "assigneeId": str(worker.id)},
        headers=factory.auth(world.manager_a),
    )
    assert call.status_code == 201, call.text
    not_a_visit = await _check(client, factory, worker, call.json()["id"])
    assert not_a_visit.status_code == 422


# --- hints ---------------------------------------------------------------------------------


async def test_arrival_and_departure_hints_are_sent_once(
    client: httpx.AsyncClient, factory: Factory, session: AsyncSession, clock: FrozenClock
) -> None:
    world = await factory.world()
    worker = world.measurer_a
    task_id = await visit_task(client, factory, world, worker)
    await start_shift(client, factory, worker)

    async def hints(kind: str) -> list[Notification]:
        rows = await session.scalars(
            select(Notification).where(Notification.user_id == worker.id, Notification.kind == kind)
        )
        return list(rows.all())

    await send(
        client, factory, worker, [fix(START - timedelta(seconds=60), lat=north(SITE_LAT, 800))]
    )
    assert await hints("arrived_at_site") == []
    await send(
        client, factory, worker, [fix(START - timedelta(seconds=30), lat=north(SITE_LAT, 60))]
    )
    await send(
        client, factory, worker, [fix(START - timedelta(seconds=20), lat=north(SITE_LAT, 30))]
    )
    (arrived,) = await hints("arrived_at_site")
    assert arrived.data["taskId"] == task_id
    # A mocked fix gives no hint; a checked-in visit left behind does.
    await _check(client, factory, worker, task_id)
    clock.advance(timedelta(minutes=10))
    await send(client, factory, worker, [fix(clock.now(), lat=north(SITE_LAT, 900), mocked=True)])
    assert await hints("left_site") == []
    await send(
        client, factory, worker, [fix(clock.now() + timedelta(seconds=1), lat=north(SITE_LAT, 900))]
    )
    await send(
        client, factory, worker, [fix(clock.now() + timedelta(seconds=2), lat=north(SITE_LAT, 950))]
    )
    (left,) = await hints("left_site")
    assert left.data["taskId"] == task_id


# --- day track, own data, retention --------------------------------------------------------


async def _drive_and_stop(
    client: httpx.AsyncClient, factory: Factory, worker: User, start: datetime
) -> None:
    """10 minutes driving north at 10 m/s, then 15 minutes parked."""
    drive = [
        fix(start + timedelta(seconds=s), lat=north(SITE_LAT, -6000 + 10 * s), speed=10.0)
        for s in range(0, 600, 10)
    ]
    park = [
        fix(start + timedelta(seconds=600 + s), lat=north(SITE_LAT, 0), speed=0.0)
        for s in range(0, 900, 30)
    ]
    answer = await send(client, factory, worker, drive + park)
    assert answer.json()["accepted"] == len(drive) + len(park)


async def test_day_track_for_the_worker_and_their_manager_only(
    client: httpx.AsyncClient, factory: Factory, session: AsyncSession
) -> None:
    world = await factory.world()
    worker = world.measurer_a
    await start_shift(client, factory, worker)
    await _drive_and_stop(client, factory, worker, START - timedelta(minutes=30))
    own = await client.get(
        f"/api/v1/tracking/users/{worker.id}/track?date=2026-11-24", headers=factory.auth(worker)
    )
    assert own.status_code == 200
    day = own.json()
    assert day["properties"]["timeZone"] == "Europe/Moscow"
    assert 5800 < day["properties"]["distanceM"] < 6300
    kinds = [f["properties"]["kind"] for f in day["features"]]
    assert kinds == ["track", "stop"]
    assert day["properties"]["drivingS"] >= 550
    assert 14 * 60 <= day["properties"]["onSiteS"] <= 16 * 60
    manager = await client.get(
        f"/api/v1/tracking/users/{worker.id}/track", headers=factory.auth(world.manager_a)
    )
    assert manager.status_code == 200
    stranger = await client.get(
        f"/api/v1/tracking/users/{worker.id}/track", headers=factory.auth(world.manager_b)
    )
    assert stranger.status_code == 404
    views = await session.scalars(
        select(AuditEntry.action).where(
            AuditEntry.entity == "location", AuditEntry.entity_id == worker.id
        )
    )
    assert views.all() == ["viewed_track"]
    summary = await summarize_day(
        session, worker.id, world.org.id, worker.time_zone, START.date(), START
    )
    assert summary is not None
    assert summary.points == 90
    assert summary.stops == 1
    assert round(summary.distance_m, -2) == round(day["properties"]["distanceM"], -2)


async def test_the_worker_sees_everything_recorded_about_them(
    client: httpx.AsyncClient, factory: Factory
) -> None:
    world = await factory.world()
    worker = world.measurer_a
    await client.post(
        "/api/v1/tracking/devices", json={"identifier": "my-phone"}, headers=factory.auth(worker)
    )
    await start_shift(client, factory, worker)
    await send(client, factory, worker, [fix(START - timedelta(seconds=s)) for s in (20, 10)])
    task_id = await visit_task(client, factory, world, worker)
    await _check(client, factory, worker, task_id)
    await client.get("/api/v1/tracking/live", headers=factory.auth(world.manager_a))
    await client.get(f"/api/v1/tracking/users/{worker.id}/track", headers=factory.auth(world.admin))
    mine = await client.get("/api/v1/tracking/me", headers=factory.auth(worker))
    assert mine.status_code == 200, mine.text
    data = mine.json()
    assert [d["identifier"] for d in data["devices"]] == ["my-phone"]
    assert len(data["shifts"]) == 1
    assert [p["lat"] for p in data["points"]] == [SITE_LAT, SITE_LAT]
    assert [c["status"] for c in data["checkIns"]] == ["verified"]
    assert sorted((v["viewerName"], v["action"]) for v in data["locationViews"]) == [
        ("Ada Admin", "viewed_track"),
        ("Mark Manager", "viewed_live"),
    ]
    # Someone else's data is not reachable through this endpoint at all, and periods are capped.
    other = await client.get("/api/v1/tracking/me", headers=factory.auth(world.installer_b))
    assert other.json()["points"] == []
    assert other.json()["locationViews"] == []
    too_long = await client.get(
        "/api/v1/tracking/me?start=2026-11-01T00:00:00Z&end=2026-11-24T00:00:00Z",
        headers=factory.auth(worker),
    )
    assert too_long.status_code == 422
    assert too_long.json()["errors"][0]["field"] == "end"


async def test_the_worker_waits_for_postgresql_at_start_up(
    sessionmaker: async_sessionmaker[AsyncSession], clock: FrozenClock
) -> None:
    pauses: list[float] = []

    async def pause(seconds: float) -> None:
        pauses.append(seconds)

    async with unreachable_first(sessionmaker, 2) as sessions:
        jobs = Jobs(sessions, clock)  # type: ignore[arg-type]
        assert await jobs.prepare_database(sleep=pause) == 2
    assert pauses == [0.5, 1.0]  # doubling, then the partitions were made
    async with sessionmaker() as session:
        existing = await partitions.existing_partitions(session)
    assert START.date() + timedelta(days=7) in existing


async def test_partitions_are_kept_ahead_and_dropped_after_retention(
    session: AsyncSession,
) -> None:
    today = START.date()
    await partitions.ensure_partitions(session, [today - timedelta(days=70)])
    created, dropped = await partitions.maintain(session, today=today, retention_days=60)
    existing = await partitions.existing_partitions(session)
    assert today + timedelta(days=7) in existing
    assert today - timedelta(days=8) in existing
    assert today - timedelta(days=70) not in existing
    assert partitions.partition_name(today - timedelta(days=70)) in dropped
    assert all(day >= today - timedelta(days=60) for day in existing)
    again = await partitions.maintain(session, today=today, retention_days=60)
    assert again == ([], [])
    assert partitions.partition_name(today + timedelta(days=7)) in created


async def test_stored_idempotent_answers_are_forgotten_after_a_day(
    client: httpx.AsyncClient,
    factory: Factory,
    session: AsyncSession,
    sessionmaker: async_sessionmaker[AsyncSession],
    clock: FrozenClock,
) -> None:
    world = await factory.world()
    worker = world.measurer_a
    await start_shift(client, factory, worker)
    await send(client, factory, worker, [fix(START - timedelta(seconds=5))], key="old-key")
    clock.advance(timedelta(hours=23))
    await send(client, factory, worker, [fix(clock.now())], key="new-key")
    clock.advance(timedelta(hours=2))
    jobs = Jobs(sessionmaker, clock)
    _, answers, _ = await jobs.purge_expired()
    assert answers == 1
    keys = await session.scalars(
        select(IdempotentRequest.key).where(IdempotentRequest.user_id == worker.id)
    )
    assert keys.all() == ["new-key"]
