"""After the visit: the feedback request (once), the public form (1-5 and a comment, validated,
one submission, rate limited), ``visit_feedback`` and its API for staff who see the visit."""

from __future__ import annotations

import uuid
from datetime import timedelta

import httpx
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from backend.lib.clock import FrozenClock
from backend.notifications.customer.models import VisitFeedback
from tests.conftest import Factory, World
from tests.test_customer_messages import customer_outbox, make_visit, sweep, token_in


async def done_visit(client: httpx.AsyncClient, factory: Factory, world: World) -> str:
    """A visit of today, completed by its assignee."""
    now = factory.clock.now()
    task_id = await make_visit(
        client,
        factory,
        world,
        starts=now + timedelta(hours=1),
        ends=now + timedelta(hours=2),
    )
    done = await client.post(
        f"/api/v1/tasks/{task_id}/complete",
        json={"outcome": "measured"},
        headers=factory.auth(world.measurer_a),
    )
    assert done.status_code == 200, done.text
    return task_id


async def feedback_token(session: AsyncSession, world: World) -> str:
    [row] = [r for r in await customer_outbox(session, world.org.id) if "feedback" in r.dedupe_key]
    return token_in(row.payload["text"], "feedback")


async def test_a_completed_visit_asks_for_feedback_once_and_takes_one_rating(
    client: httpx.AsyncClient,
    factory: Factory,
    session: AsyncSession,
    sessionmaker: async_sessionmaker[AsyncSession],
    clock: FrozenClock,
) -> None:
    world = await factory.world()
    task_id = await done_visit(client, factory, world)
    assert (await sweep(sessionmaker, clock))["feedback"] == 1
    assert (await sweep(sessionmaker, clock))["feedback"] == 0
    token = await feedback_token(session, world)
    assert len(token) == 43

    form = await client.get(f"/feedback/{token}")
    assert form.status_code == 200
    assert 'name="rating"' in form.text
    assert "csrf" not in form.text.lower()

    sent = await client.post(
        f"/feedback/{token}", data={"rating": "4", "comment": "  Quick and tidy.  "}
    )
    assert sent.status_code == 200, sent.text
    stored = await session.scalar(
        select(VisitFeedback).where(VisitFeedback.task_id == uuid.UUID(task_id))
    )
    assert stored is not None
    assert (stored.rating, stored.comment) == (4, "Quick and tidy.")
    assert stored.organization_id == world.org.id
    assert stored.submitted_at == clock.now()

    again = await client.post(f"/feedback/{token}", data={"rating": "1"})
    assert again.status_code == 409
    assert (await client.get(f"/feedback/{token}")).status_code == 200  # "thank you" page
    count = select(func.count()).select_from(VisitFeedback)
    assert await session.scalar(count.where(VisitFeedback.task_id == uuid.UUID(task_id))) == 1
    stored = await session.get(VisitFeedback, stored.id, populate_existing=True)
    assert stored is not None
    assert stored.rating == 4

    # Staff who see the visit read it through the task API.
    for who in (world.admin, world.manager_a, world.measurer_a):
        got = await client.get(f"/api/v1/tasks/{task_id}/feedback", headers=factory.auth(who))
        assert got.status_code == 200, got.text
        assert got.json()["rating"] == 4
        assert got.json()["comment"] == "Quick and tidy."
    other = await factory.world("Other Windows")
    for who in (world.manager_b, world.installer_a, other.admin):
        hidden = await client.get(f"/api/v1/tasks/{task_id}/feedback", headers=factory.auth(who))
        assert hidden.status_code == 404


async def test_bad_feedback_is_refused_with_the_reason_and_nothing_is_stored(
    client: httpx.AsyncClient,
    factory: Factory,
    session: AsyncSession,
    sessionmaker: async_sessionmaker[AsyncSession],
    clock: FrozenClock,
) -> None:
    world = await factory.world()
    await done_visit(client, factory, world)
    await sweep(sessionmaker, clock)
    token = await feedback_token(session, world)
    for bad in ({"rating": "6"}, {"rating": "0"}, {"rating": "x"}, {}, {"rating": "-1"}):
        refused = await client.post(f"/feedback/{token}", data=bad)
        assert refused.status_code == 422, bad
        assert "1 to 5" in refused.text or "1 до 5" in refused.text or "1-5" in refused.text
    long = await client.post(f"/feedback/{token}", data={"rating": "3", "comment": "x" * 2001})
    assert long.status_code == 422
    assert await session.scalar(select(func.count()).select_from(VisitFeedback)) == 0
    assert (await client.post("/feedback/" + "B" * 43, data={"rating": "5"})).status_code == 404
    assert (await client.get("/feedback/../../etc")).status_code == 404

    # The link runs out after 30 days.
    clock.advance(timedelta(days=31))
    assert (await client.get(f"/feedback/{token}")).status_code == 404
    assert (await client.post(f"/feedback/{token}", data={"rating": "5"})).status_code == 404


async def test_feedback_posts_are_rate_limited_per_address(
    client: httpx.AsyncClient,
    factory: Factory,
    session: AsyncSession,
    sessionmaker: async_sessionmaker[AsyncSession],
    clock: FrozenClock,
) -> None:
    world = await factory.world()
    await done_visit(client, factory, world)
    await sweep(sessionmaker, clock)
    token = await feedback_token(session, world)
    for _ in range(10):
        assert (await client.post(f"/feedback/{token}", data={"rating": "9"})).status_code == 422
    limited = await client.post(f"/feedback/{token}", data={"rating": "5"})
    assert limited.status_code == 429
    assert limited.headers["retry-after"] == "60"
    assert await session.scalar(select(func.count()).select_from(VisitFeedback)) == 0
    clock.advance(timedelta(minutes=1))
    assert (await client.post(f"/feedback/{token}", data={"rating": "5"})).status_code == 200


async def test_a_cancelled_visit_gets_no_confirmation_and_no_feedback_request(
    client: httpx.AsyncClient,
    factory: Factory,
    session: AsyncSession,
    sessionmaker: async_sessionmaker[AsyncSession],
    clock: FrozenClock,
) -> None:
    world = await factory.world()
    now = clock.now()
    task_id = await make_visit(
        client, factory, world, starts=now + timedelta(hours=1), ends=now + timedelta(hours=2)
    )
    cancelled = await client.post(
        f"/api/v1/tasks/{task_id}/cancel", json={"reason": "no"}, headers=factory.auth(world.admin)
    )
    assert cancelled.status_code == 200
    result = await sweep(sessionmaker, clock)
    assert result["feedback"] == 0
    assert result["booked"] == 0
    assert await customer_outbox(session, world.org.id) == []
    missing = await client.get(
        f"/api/v1/tasks/{task_id}/feedback", headers=factory.auth(world.admin)
    )
    assert missing.status_code == 404
    assert missing.headers["content-type"].startswith("application/problem+json")
