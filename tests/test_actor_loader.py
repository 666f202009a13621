"""The actors of concurrent requests come from one query, and revocation still holds at once."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from sqlalchemy import update
from sqlalchemy.ext.asyncio import (
    AsyncConnection,
    AsyncSession,
    async_sessionmaker,
)

from backend.accounts.actor_loader import ActorLoader
from backend.accounts.models import Role, User
from backend.accounts.security import AccessClaims
from backend.lib.errors import Unauthenticated
from tests.conftest import Factory, unreachable_first


def claims_of(user: User) -> AccessClaims:
    return AccessClaims(user.id, user.organization_id, user.token_version)


async def count_user_queries(connection: AsyncConnection) -> list[str]:
    """The statements that read users, as asyncpg sends them on the test connection."""
    seen: list[str] = []
    raw: Any = (await connection.get_raw_connection()).driver_connection

    def logged(record: Any) -> None:
        if "JOIN users" in record.query or "FROM users" in record.query:
            seen.append(record.query)

    raw.add_query_logger(logged)
    return seen


async def test_concurrent_loads_share_one_query(
    connection: AsyncConnection,
    sessionmaker: async_sessionmaker[AsyncSession],
    factory: Factory,
) -> None:
    world = await factory.world()
    people = [world.admin, world.manager_a, world.measurer_a, world.installer_a, world.installer_b]
    loader = ActorLoader(sessionmaker)
    queries = await count_user_queries(connection)
    wanted = [claims_of(u) for u in people] * 4  # the same caller twice at once is fine too
    actors = await asyncio.gather(*(loader.load(c) for c in wanted))
    await asyncio.sleep(0)  # asyncpg reports to query loggers with call_soon
    assert len(queries) == 1
    assert [a.user_id for a in actors] == [c.user_id for c in wanted]
    manager = actors[1]
    assert manager.role is Role.MANAGER
    assert world.measurer_a.id in manager.team_member_ids
    assert world.installer_b.id not in manager.team_member_ids


async def test_stale_version_and_inactive_users_are_refused_alone(
    session: AsyncSession,
    sessionmaker: async_sessionmaker[AsyncSession],
    factory: Factory,
) -> None:
    world = await factory.world()
    loader = ActorLoader(sessionmaker)
    stale = AccessClaims(world.admin.id, world.org.id, world.admin.token_version + 1)
    await session.execute(
        update(User).where(User.id == world.installer_b.id).values(is_active=False)
    )
    await session.flush()
    outcomes = await asyncio.gather(
        loader.load(stale),
        loader.load(claims_of(world.installer_b)),
        loader.load(claims_of(world.manager_b)),
        return_exceptions=True,
    )
    assert isinstance(outcomes[0], Unauthenticated)
    assert isinstance(outcomes[1], Unauthenticated)
    assert not isinstance(outcomes[2], BaseException)
    assert outcomes[2].user_id == world.manager_b.id
    # Another organisation in the token is not this user.
    other = await factory.org("Other Windows")
    with pytest.raises(Unauthenticated):
        await loader.load(AccessClaims(world.admin.id, other.id, world.admin.token_version))


async def test_a_failed_query_fails_its_waiters_and_the_next_is_served(
    sessionmaker: async_sessionmaker[AsyncSession], factory: Factory
) -> None:
    world = await factory.world()
    async with unreachable_first(sessionmaker, 1) as sessions:
        loader = ActorLoader(sessions)  # type: ignore[arg-type]
        failed = await asyncio.gather(
            loader.load(claims_of(world.admin)),
            loader.load(claims_of(world.manager_a)),
            return_exceptions=True,
        )
        assert all(isinstance(f, OSError) for f in failed), failed
        actor = await loader.load(claims_of(world.admin))
        assert actor.user_id == world.admin.id
