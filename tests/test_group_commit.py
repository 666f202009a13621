"""Group commit: concurrent ping batches share one transaction and keep their own answers."""

from __future__ import annotations

import asyncio
import uuid
from datetime import datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession, async_sessionmaker

from backend.accounts.models import User
from backend.lib import idempotency
from backend.lib.errors import Conflict
from backend.tracking import ingest
from backend.tracking.group_commit import Outcome, PingWriter, Submission
from backend.tracking.models import Shift
from backend.tracking.points import Point
from tests.conftest import START, Factory


def points(first: datetime, count: int, lat: float = 55.75) -> list[Point]:
    return [
        Point(recorded_at=first + timedelta(seconds=10 * i), lat=lat, lon=37.6, accuracy_m=9.0)
        for i in range(count)
    ]


def submission(
    user: User, batch: list[Point], claim: idempotency.Claim | None = None
) -> Submission:
    return Submission(
        ingest.Batch(user.organization_id, user.id, user.time_zone, None, batch, START),
        claim,
        lambda result: {"accepted": result.stored, "duplicates": result.duplicates},
    )


async def on_shift(session: AsyncSession, *users: User) -> None:
    for user in users:
        session.add(
            Shift(
                id=uuid.uuid4(),
                organization_id=user.organization_id,
                user_id=user.id,
                started_at=START - timedelta(hours=3),
            )
        )
    await session.flush()


@pytest.fixture
async def crew(session: AsyncSession, factory: Factory) -> tuple[User, User, User]:
    """Three field workers of one organisation, each with a shift in progress."""
    world = await factory.world()
    workers = (world.measurer_a, world.installer_a, world.installer_b)
    await on_shift(session, *workers)
    return workers


@pytest.fixture
def writer(sessionmaker: async_sessionmaker[AsyncSession]) -> PingWriter:
    """A group writer on the test's transaction."""
    return PingWriter(sessionmaker)


async def statements(connection: AsyncConnection) -> list[str]:
    """What asyncpg sends on the test connection from now on."""
    seen: list[str] = []
    raw: Any = (await connection.get_raw_connection()).driver_connection
    raw.add_query_logger(lambda record: seen.append(record.query))
    return seen


async def stored(session: AsyncSession, user: User) -> int:
    return int(
        await session.scalar(text("SELECT count(*) FROM pings WHERE user_id = :u"), {"u": user.id})
        or 0
    )


async def test_concurrent_batches_share_one_transaction(
    connection: AsyncConnection,
    session: AsyncSession,
    writer: PingWriter,
    crew: tuple[User, User, User],
) -> None:
    workers = list(crew)
    sent = await statements(connection)
    first = START - timedelta(minutes=30)
    outcomes = await asyncio.gather(
        writer.submit(submission(workers[0], points(first, 5))),
        writer.submit(submission(workers[1], points(first, 3, lat=55.8))),
        writer.submit(submission(workers[2], points(first, 4, lat=55.9))),
    )
    await asyncio.sleep(0)  # asyncpg reports to query loggers with call_soon
    assert [o.body for o in outcomes] == [
        {"accepted": 5, "duplicates": 0},
        {"accepted": 3, "duplicates": 0},
        {"accepted": 4, "duplicates": 0},
    ]
    # One write (the COPY in its savepoint) and one readiness statement for the three batches,
    # run again once because the day's partition did not exist yet (the long way).
    assert sum(q == "SAVEPOINT fieldcrm_pings" for q in sent) == 1
    assert sum(q.lstrip().startswith("WITH batch AS") for q in sent) == 2
    assert [await stored(session, w) for w in workers] == [5, 3, 4]
    latest = await session.execute(
        text(
            "SELECT user_id, recorded_at, lat FROM latest_positions WHERE user_id = ANY(:u)"
            " ORDER BY lat"
        ),
        {"u": [w.id for w in workers]},
    )
    assert [tuple(r) for r in latest] == [
        (workers[0].id, first + timedelta(seconds=40), 55.75),
        (workers[1].id, first + timedelta(seconds=20), 55.8),
        (workers[2].id, first + timedelta(seconds=30), 55.9),
    ]


async def test_one_key_in_flight_twice_is_stored_once_and_replayed(
    session: AsyncSession, writer: PingWriter, crew: tuple[User, User, User]
) -> None:
    worker = crew[0]
    batch = points(START - timedelta(minutes=5), 3)
    claim = idempotency.Claim(
        worker.organization_id, worker.id, "tracking.pings", "phone-retry-1", "same-body", START
    )
    other = idempotency.Claim(
        worker.organization_id, worker.id, "tracking.pings", "phone-retry-1", "other-body", START
    )
    first, again, conflict = await asyncio.gather(
        writer.submit(submission(worker, batch, claim)),
        writer.submit(submission(worker, batch, claim)),
        writer.submit(submission(worker, batch, other)),
        return_exceptions=True,
    )
    assert first == Outcome(200, {"accepted": 3, "duplicates": 0})
    assert again == Outcome(200, {"accepted": 3, "duplicates": 0}, replay=True)
    assert isinstance(conflict, Conflict)
    assert await stored(session, worker) == 3


async def test_a_failing_batch_fails_alone(
    session: AsyncSession, writer: PingWriter, crew: tuple[User, User, User]
) -> None:
    good, bad, _ = crew
    first = START - timedelta(minutes=10)
    # Point's ranges are checked when JSON is decoded; built by hand, the database refuses it.
    broken = points(first, 2, lat=95.0)
    ok, failed = await asyncio.gather(
        writer.submit(submission(good, points(first, 4))),
        writer.submit(submission(bad, broken)),
        return_exceptions=True,
    )
    assert ok == Outcome(200, {"accepted": 4, "duplicates": 0})
    assert isinstance(failed, Exception)
    assert "check" in str(failed).lower()
    assert await stored(session, good) == 4
    assert await stored(session, bad) == 0
    # The writer goes on serving.
    later = await writer.submit(submission(bad, points(first, 1)))
    assert later.body == {"accepted": 1, "duplicates": 0}


@pytest.mark.parametrize("resent", [1, 3])
async def test_resent_points_in_a_group_are_counted_per_batch(
    session: AsyncSession, writer: PingWriter, crew: tuple[User, User, User], resent: int
) -> None:
    worker, other, _ = crew
    first = START - timedelta(minutes=20)
    await writer.submit(submission(worker, points(first, resent)))
    outcomes = await asyncio.gather(
        writer.submit(submission(worker, points(first, 5))),
        writer.submit(submission(other, points(first, 2))),
    )
    assert [o.body for o in outcomes] == [
        {"accepted": 5 - resent, "duplicates": resent},
        {"accepted": 2, "duplicates": 0},
    ]
    assert await stored(session, worker) == 5
