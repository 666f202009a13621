"""The live board kept per process (``backend.tracking.livecache`` and ``roster``): every answer
is the one the committed data gives, whatever changed and whichever process changed it.

Two ``LiveCache`` instances play two API processes. Each look made with a kept board is compared
byte for byte with a reference: the single statement the live board ran before it kept anything
(``REFERENCE_SQL``, without its audit part) and its encoding, on the same data at the same time.
"""

from __future__ import annotations

import random
import uuid
from datetime import datetime, timedelta
from typing import Any

import httpx
import msgspec
import pytest
from sqlalchemy import select, text
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from backend.accounts.models import User
from backend.accounts.services import load_actor
from backend.audit.models import AuditEntry
from backend.lib.clock import FrozenClock
from backend.lib.errors import NotFound
from backend.tracking import live
from backend.tracking import roster as rosters
from backend.tracking.livecache import LiveCache, round6
from backend.tracking.policy import SITE_RADIUS_M
from tests.conftest import START, Factory, World
from tests.test_tracking import SITE_LAT, fix, north, send, start_shift, visit_task

REFERENCE_SQL = """
WITH who AS (
    SELECT u.id, u.full_name FROM users u
    WHERE u.organization_id = $1 AND u.is_active AND u.role = 'field'
      AND ($2::boolean OR u.id = ANY($3::uuid[]))
), cur AS (
    SELECT DISTINCT ON (t.assignee_id) t.assignee_id, t.id, t.title, t.site_id
    FROM tasks t
    WHERE t.organization_id = $1 AND t.status = 'in_progress'
    ORDER BY t.assignee_id, t.started_at DESC NULLS LAST
), nxt AS (
    SELECT DISTINCT ON (t.assignee_id) t.assignee_id, t.id, t.title,
           coalesce(t.window_start, t.due_at) AS starts
    FROM tasks t
    WHERE t.organization_id = $1 AND t.status = 'open'
      AND t.kind IN ('measurement', 'installation', 'visit')
      AND coalesce(t.window_start, t.due_at) BETWEEN $5::timestamptz AND $6::timestamptz
    ORDER BY t.assignee_id, coalesce(t.window_start, t.due_at)
)
SELECT w.id, w.full_name, lp.recorded_at, round(lp.lat::numeric, 6)::float8 AS lat,
       round(lp.lon::numeric, 6)::float8 AS lon, lp.accuracy_m, lp.speed_mps,
       lp.heading_deg, lp.battery_pct, lp.mocked, cur.id AS current_id,
       cur.title AS current_title, nxt.id AS next_id, nxt.title AS next_title,
       nxt.starts AS next_starts,
       CASE
         WHEN s.user_id IS NULL THEN 'off_shift'
         WHEN lp.recorded_at IS NULL OR lp.recorded_at < $4::timestamptz THEN 'offline'
         WHEN cur.id IS NOT NULL AND ST_Distance(si.location, lp.location)
              <= $7::float8 + least(coalesce(lp.accuracy_m, 0), $7::float8) THEN 'on_site'
         WHEN coalesce(lp.speed_mps, 0) >= $8::float8 THEN 'driving'
         ELSE 'idle'
       END AS status
FROM who w
LEFT JOIN shifts s ON s.user_id = w.id AND s.ended_at IS NULL
LEFT JOIN latest_positions lp ON lp.user_id = w.id
LEFT JOIN cur ON cur.assignee_id = w.id
LEFT JOIN sites si ON si.id = cur.site_id
LEFT JOIN nxt ON nxt.assignee_id = w.id
ORDER BY w.full_name, w.id
"""


async def reference(
    session: AsyncSession, organization_id: uuid.UUID, ids: list[uuid.UUID] | None, now: datetime
) -> bytes:
    """The board as the single statement answered it (``ids`` None: every field worker)."""
    raw = (await (await session.connection()).get_raw_connection()).driver_connection
    assert raw is not None
    rows = await raw.fetch(
        REFERENCE_SQL,
        organization_id,
        ids is None,
        ids or [],
        now - timedelta(minutes=10),
        now - timedelta(hours=12),
        now + timedelta(days=14),
        SITE_RADIUS_M,
        2.0,
    )
    features = [
        {
            "type": "Feature",
            "id": r[0],
            "geometry": None if r[3] is None else {"type": "Point", "coordinates": (r[4], r[3])},
            "properties": {
                "userId": r[0],
                "name": r[1],
                "status": r[15],
                "lastSeen": r[2],
                "accuracy": r[5],
                "speed": r[6],
                "heading": r[7],
                "battery": r[8],
                "mocked": r[9],
                "currentTask": None if r[10] is None else {"id": r[10], "title": r[11]},
                "nextTask": None
                if r[12] is None
                else {"id": r[12], "title": r[13], "startsAt": r[14]},
            },
        }
        for r in rows
    ]
    return msgspec.json.encode(
        {"type": "FeatureCollection", "features": features, "generatedAt": now}
    )


class Boards:
    """Looks at one organisation's live board through two processes' caches."""

    def __init__(
        self,
        sessionmaker: async_sessionmaker[AsyncSession],
        world: World,
        clock: FrozenClock,
    ) -> None:
        self.sessionmaker = sessionmaker
        self.world = world
        self.clock = clock
        self.caches = (LiveCache(), LiveCache())

    async def look(
        self, viewer: User, team: uuid.UUID | None = None, cache: LiveCache | None = None
    ) -> bytes:
        """One look (its own transaction), with the first process's cache unless told."""
        async with self.sessionmaker() as session:
            actor = await load_actor(
                session, viewer.id, viewer.organization_id, viewer.token_version
            )
            body = await live.live_json(
                session, actor, self.clock.now(), team, cache=cache or self.caches[0]
            )
            await session.commit()
        return body

    async def expected(self, ids: list[uuid.UUID] | None) -> bytes:
        async with self.sessionmaker() as session:
            return await reference(session, self.world.org.id, ids, self.clock.now())

    async def members(self, *teams: uuid.UUID) -> list[uuid.UUID]:
        async with self.sessionmaker() as session:
            rows = await session.scalars(
                text("SELECT user_id FROM team_members WHERE team_id = ANY(:teams)"),
                {"teams": list(teams)},
            )
            return list(rows.all())

    async def cases(self) -> list[tuple[User, uuid.UUID | None, list[uuid.UUID] | None]]:
        """(viewer, team asked for, the ids the reference shows) of the usual looks."""
        w = self.world
        team_a = await self.members(w.team_a.id)
        return [
            (w.manager_a, w.team_a.id, team_a),
            (w.manager_a, None, [*team_a, w.manager_a.id]),
            (w.admin, None, None),
            (w.admin, w.team_b.id, await self.members(w.team_b.id)),
            (w.installer_b, None, [w.installer_b.id]),
        ]

    async def check(self) -> dict[str, dict[str, Any]]:
        """Every usual look, in both processes, equals the reference; the admin's board by
        worker name."""
        for viewer, team, ids in await self.cases():
            wanted = await self.expected(ids)
            for cache in self.caches:
                assert await self.look(viewer, team, cache) == wanted, (viewer.full_name, team)
        everyone = msgspec.json.decode(await self.look(self.world.admin))
        return {f["properties"]["name"]: f["properties"] for f in everyone["features"]}


@pytest.fixture
async def boards(
    factory: Factory, sessionmaker: async_sessionmaker[AsyncSession], clock: FrozenClock
) -> Boards:
    boards = Boards(sessionmaker, await factory.world(), clock)
    await boards.check()  # both processes keep the board from here on
    return boards


async def test_round6_is_postgresql_rounding(session: AsyncSession) -> None:
    rng = random.Random(6)
    values = [rng.uniform(-180.0, 180.0) for _ in range(2000)]
    values += [round(rng.uniform(-90.0, 90.0), rng.randint(5, 8)) for _ in range(2000)]
    # Ties at the 7th decimal: PostgreSQL rounds them away from zero, Python's round to even.
    values += [
        float(f"{rng.randint(-1800000000, 1800000000) / 1e7:.7f}"[:-1] + "5") for _ in range(2000)
    ]
    values += [0.0, -0.0, 4e-7, -4e-7, 5e-7, -5e-7, 1e-300, 55.1234565, -49.0000005, 180.0, -90.0]
    rows = await session.execute(
        text(
            "SELECT round(v::numeric, 6)::float8 FROM unnest(CAST(:values AS float8[]))"
            " WITH ORDINALITY AS x(v, i) ORDER BY i"
        ),
        {"values": values},
    )
    expected = [r[0] for r in rows.all()]
    got = round6(values)
    mismatches = [(v, g, e) for v, g, e in zip(values, got, expected, strict=True) if g != e]
    assert not mismatches[:5]
    assert [msgspec.json.encode(g) for g in got] == [msgspec.json.encode(e) for e in expected]


async def test_a_committed_ping_is_seen_by_every_process(
    boards: Boards, client: httpx.AsyncClient, factory: Factory, clock: FrozenClock
) -> None:
    worker = boards.world.measurer_a
    await start_shift(client, factory, worker)
    await send(client, factory, worker, [fix(START - timedelta(seconds=5), speed=8.0)])
    board = await boards.check()
    assert board["Max Measurer"]["status"] == "driving"
    await send(client, factory, worker, [fix(START - timedelta(seconds=1), speed=0.5, battery=41)])
    board = await boards.check()
    assert board["Max Measurer"]["status"] == "idle"
    assert board["Max Measurer"]["battery"] == 41
    # An older fix sent late does not move the worker back.
    await send(client, factory, worker, [fix(START - timedelta(seconds=3), speed=9.0)])
    assert (await boards.check())["Max Measurer"]["status"] == "idle"


async def test_the_status_follows_the_clock_without_any_change(
    boards: Boards, client: httpx.AsyncClient, factory: Factory, clock: FrozenClock
) -> None:
    worker = boards.world.installer_a
    await start_shift(client, factory, worker)
    await send(client, factory, worker, [fix(START - timedelta(seconds=30))])
    assert (await boards.check())["Igor Installer"]["status"] == "idle"
    clock.advance(timedelta(minutes=9, seconds=30))
    assert (await boards.check())["Igor Installer"]["status"] == "idle"
    clock.advance(timedelta(seconds=1))
    assert (await boards.check())["Igor Installer"]["status"] == "offline"
    clock.set(START)  # a clock going back is answered too
    assert (await boards.check())["Igor Installer"]["status"] == "idle"


async def test_task_start_and_finish_and_a_moved_site_are_seen_by_every_process(
    boards: Boards, client: httpx.AsyncClient, factory: Factory, session: AsyncSession
) -> None:
    world = boards.world
    worker = world.measurer_a
    task_id = await visit_task(client, factory, world, worker, starts=START, title="Here")
    await start_shift(client, factory, worker)
    await send(client, factory, worker, [fix(START - timedelta(seconds=20))])
    board = await boards.check()
    assert board["Max Measurer"]["nextTask"]["id"] == task_id
    assert board["Max Measurer"]["currentTask"] is None
    arrived = await client.post(
        f"/api/v1/tasks/{task_id}/check-in",
        json={"lat": SITE_LAT, "lon": 49.1221, "accuracy": 6.0},
        headers=factory.auth(worker),
    )
    assert arrived.status_code == 201, arrived.text
    board = await boards.check()
    assert board["Max Measurer"]["status"] == "on_site"
    assert board["Max Measurer"]["currentTask"] == {"id": task_id, "title": "Here"}
    # The site is moved 400 m away: not on site any more, though nothing else changed.
    await session.execute(
        text(
            "UPDATE sites SET location = ST_MakePoint(49.1221, :lat)::geography"
            " WHERE id = (SELECT site_id FROM tasks WHERE id = :task)"
        ),
        {"lat": north(SITE_LAT, 400), "task": task_id},
    )
    await session.commit()
    assert (await boards.check())["Max Measurer"]["status"] == "idle"
    left = await client.post(
        f"/api/v1/tasks/{task_id}/check-out",
        json={"lat": SITE_LAT, "lon": 49.1221, "accuracy": 6.0, "outcome": "Measured"},
        headers=factory.auth(worker),
    )
    assert left.status_code == 201, left.text
    board = await boards.check()
    assert board["Max Measurer"]["currentTask"] is None
    assert board["Max Measurer"]["nextTask"] is None


async def fingerprint(session: AsyncSession, org: uuid.UUID) -> int:
    return int(await session.scalar(text(rosters.FINGERPRINT_SQL), {"org": org}) or 0)


async def test_pruned_changes_cost_one_rebuild_never_a_stale_board(
    boards: Boards, session: AsyncSession
) -> None:
    org = boards.world.org.id
    await session.execute(
        text("UPDATE users SET full_name = 'Ivan Renamed' WHERE id = :u"),
        {"u": boards.world.installer_b.id},
    )
    await session.flush()
    changed = await fingerprint(session, org)
    assert "Ivan Renamed" in await boards.check()
    await session.execute(
        text("UPDATE live_changes SET at = at - interval '2 minutes' WHERE organization_id = :o"),
        {"o": org},
    )
    assert await rosters.prune_changes(session) >= 1
    assert await fingerprint(session, org) != changed
    assert (
        await session.scalar(
            text("SELECT count(*) FROM live_changes WHERE organization_id = :o"), {"o": org}
        )
        == 0
    )
    assert "Ivan Renamed" in await boards.check()  # rebuilt in both processes, still right


async def test_shift_start_and_end_are_seen_by_every_process(
    boards: Boards, client: httpx.AsyncClient, factory: Factory, clock: FrozenClock
) -> None:
    worker = boards.world.installer_b
    await start_shift(client, factory, worker)
    await send(client, factory, worker, [fix(START - timedelta(seconds=10))])
    assert (await boards.check())["Ivan Installer"]["status"] == "idle"
    clock.advance(timedelta(seconds=30))
    ended = await client.post("/api/v1/tracking/shifts/end", headers=factory.auth(worker))
    assert ended.status_code == 200, ended.text
    assert (await boards.check())["Ivan Installer"]["status"] == "off_shift"


async def test_members_added_removed_renamed_or_deactivated_are_seen_by_every_process(
    boards: Boards, client: httpx.AsyncClient, factory: Factory, session: AsyncSession
) -> None:
    world = boards.world
    admin = factory.auth(world.admin)
    newcomer = await factory.user(world.org, world.measurer_a.role, name="Nina Newcomer")
    await session.commit()
    members = [str(world.measurer_a.id), str(world.installer_a.id), str(newcomer.id)]
    moved = await client.patch(
        f"/api/v1/teams/{world.team_a.id}", json={"memberIds": members}, headers=admin
    )
    assert moved.status_code == 200, moved.text
    team_a = [world.measurer_a.id, world.installer_a.id, newcomer.id]
    wanted = await boards.expected(team_a)
    for cache in boards.caches:
        assert await boards.look(world.manager_a, world.team_a.id, cache) == wanted
    assert b"Nina Newcomer" in wanted
    removed = await client.patch(
        f"/api/v1/teams/{world.team_a.id}", json={"memberIds": members[:1]}, headers=admin
    )
    assert removed.status_code == 200, removed.text
    wanted = await boards.expected([world.measurer_a.id])
    for cache in boards.caches:
        assert await boards.look(world.manager_a, world.team_a.id, cache) == wanted
    renamed = await client.patch(
        f"/api/v1/users/{world.measurer_a.id}", json={"fullName": "Max Renamed"}, headers=admin
    )
    assert renamed.status_code == 200, renamed.text
    assert "Max Renamed" in await boards.check()
    gone = await client.patch(
        f"/api/v1/users/{world.installer_a.id}", json={"isActive": False}, headers=admin
    )
    assert gone.status_code == 200, gone.text
    assert "Igor Installer" not in await boards.check()


async def test_the_next_visit_follows_planning_and_the_clock(
    boards: Boards, client: httpx.AsyncClient, factory: Factory, clock: FrozenClock
) -> None:
    world = boards.world
    worker = world.installer_a
    far = await visit_task(client, factory, world, worker, starts=START + timedelta(days=15))
    assert (await boards.check())["Igor Installer"]["nextTask"] is None
    soon = await visit_task(client, factory, world, worker, starts=START + timedelta(hours=2))
    assert (await boards.check())["Igor Installer"]["nextTask"]["id"] == soon
    clock.advance(timedelta(hours=14, seconds=1))  # "soon" was planned more than 12 hours ago
    assert (await boards.check())["Igor Installer"]["nextTask"] is None
    clock.set(START + timedelta(days=1, hours=1))  # two weeks before "far"
    assert (await boards.check())["Igor Installer"]["nextTask"]["id"] == far


async def test_each_look_with_a_kept_board_is_audited_once(
    boards: Boards, client: httpx.AsyncClient, factory: Factory, session: AsyncSession
) -> None:
    world = boards.world

    async def looks(actor: User) -> list[tuple[uuid.UUID | None, dict[str, Any]]]:
        rows = await session.execute(
            select(AuditEntry.entity_id, AuditEntry.changes).where(
                AuditEntry.entity == "location", AuditEntry.actor_id == actor.id
            )
        )
        return [(r[0], r[1]) for r in rows.all()]

    before = len(await looks(world.manager_a))
    await boards.look(world.manager_a, world.team_a.id)  # kept board, kept roster
    await start_shift(client, factory, world.measurer_a)  # the roster changes
    await boards.look(world.manager_a, world.team_a.id)
    await boards.look(world.manager_a)  # the manager's own view: the teams they lead
    after = await looks(world.manager_a)
    assert len(after) == before + 3
    assert all(look == (world.team_a.id, {"scope": "team", "workers": 2}) for look in after)
    await boards.look(world.installer_b)  # a worker looking at themself is not audited
    assert await looks(world.installer_b) == []


async def test_a_team_stays_private_with_a_kept_board(boards: Boards) -> None:
    world = boards.world
    for cache in boards.caches:
        with pytest.raises(NotFound):
            await boards.look(world.manager_b, world.team_a.id, cache)
        with pytest.raises(NotFound):
            await boards.look(world.manager_a, uuid.uuid4(), cache)
