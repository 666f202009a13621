"""End to end: one visit walked through booked → reminder → on my way → running late → done →
feedback, with the real API, the real route re-plan job and the customer-messages job; the
outbox holds exactly one rendered message per step, in order, to the customer's email."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import httpx
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from backend.lib.clock import FrozenClock
from backend.notifications.customer.models import VisitFeedback
from backend.routing.models import EtaChange
from backend.worker import Jobs
from tests.conftest import Factory
from tests.test_customer_messages import (
    BASE_URL,
    VISIT_END,
    VISIT_START,
    customer_outbox,
    make_visit,
    sweep,
    token_in,
)
from tests.test_tracking import fix, send, start_shift

SITE = (55.7887, 49.1221)
STUCK = (55.79, 48.98)  # about 9 km west of the site


async def test_a_visit_from_booking_to_feedback_sends_each_customer_message_once(
    client: httpx.AsyncClient,
    factory: Factory,
    session: AsyncSession,
    sessionmaker: async_sessionmaker[AsyncSession],
    clock: FrozenClock,
) -> None:
    world = await factory.world()
    worker = world.measurer_a
    task_id = await make_visit(client, factory, world)  # Thursday 10:00-12:00 Moscow
    routes = Jobs(sessionmaker, clock)

    # Tuesday: booked.
    assert (await sweep(sessionmaker, clock))["booked"] == 1
    # Wednesday 10:00 Moscow: the reminder.
    clock.set(datetime(2026, 11, 25, 7, 0, tzinfo=UTC))
    assert (await sweep(sessionmaker, clock))["reminder"] == 1

    # Thursday 09:30 Moscow: the worker drives off; the route publishes the ETA and the job
    # tells the customer.
    clock.set(VISIT_START - timedelta(minutes=30))
    await start_shift(client, factory, worker)
    await send(client, factory, worker, [fix(clock.now(), *STUCK, speed=12.0)])
    await routes.refresh_routes()
    on_way = await sweep(sessionmaker, clock)
    assert on_way["on_my_way"] == 1
    tracking = token_in((await customer_outbox(session, world.org.id))[-1].payload["text"], "t")
    page = await client.get(f"/t/{tracking}")
    assert page.status_code == 200
    assert "Max" in page.text

    # Stuck in traffic for 40 minutes: the re-plan moves the ETA, the customer hears once.
    for minutes in (10, 20, 30, 40):
        clock.set(VISIT_START - timedelta(minutes=30) + timedelta(minutes=minutes))
        await send(client, factory, worker, [fix(clock.now(), *STUCK, speed=2.5)])
        await routes.refresh_routes()
        await sweep(sessionmaker, clock)
    changes = (
        await session.scalars(select(EtaChange).where(EtaChange.task_id == uuid.UUID(task_id)))
    ).all()
    assert changes, "the re-plan recorded the later ETA"
    late_rows = [
        r for r in await customer_outbox(session, world.org.id) if "running_late" in r.dedupe_key
    ]
    # 40 minutes stuck: the ETA passes the told one by more than 15 minutes twice, 20 minutes
    # apart (a message per 15 minutes at most; smaller moves are not news).
    assert len(late_rows) == 2
    assert late_rows[1].created_at - late_rows[0].created_at >= timedelta(minutes=15)
    assert (await client.get(f"/t/{tracking}/position")).json()["lat"] == STUCK[0]

    # Arrives, works, leaves: the page says arrived, then expires; feedback is requested.
    clock.advance(timedelta(minutes=15))
    checked_in = await client.post(
        f"/api/v1/tasks/{task_id}/check-in",
        json={"lat": SITE[0], "lon": SITE[1], "accuracy": 6.0},
        headers=factory.auth(worker),
    )
    assert checked_in.status_code == 201, checked_in.text
    assert (await client.get(f"/t/{tracking}/position")).json()["status"] == "arrived"
    clock.set(VISIT_END)
    checked_out = await client.post(
        f"/api/v1/tasks/{task_id}/check-out",
        json={"lat": SITE[0], "lon": SITE[1], "accuracy": 6.0, "outcome": "measured 4 windows"},
        headers=factory.auth(worker),
    )
    assert checked_out.status_code == 201, checked_out.text
    assert (await client.get(f"/t/{tracking}")).status_code == 410
    assert (await sweep(sessionmaker, clock))["feedback"] == 1

    rows = await customer_outbox(session, world.org.id)
    kinds = [r.dedupe_key.split(":")[1] for r in rows]
    late = ["running_late"] * len(late_rows)
    assert kinds == ["booked", "reminder", "on_my_way", *late, "feedback"]
    assert {r.payload["to"] for r in rows} == {"anna@example.ru"}
    assert {r.payload["channel"] for r in rows} == {"email"}
    assert all(f"{BASE_URL}/u/" in r.payload["text"] for r in rows)
    assert len({r.dedupe_key for r in rows}) == len(rows)

    # Nothing more on further passes.
    clock.advance(timedelta(minutes=30))
    assert set((await sweep(sessionmaker, clock)).values()) == {0}
    assert len(await customer_outbox(session, world.org.id)) == len(rows)

    feedback = token_in(rows[-1].payload["text"], "feedback")
    rated = await client.post(f"/feedback/{feedback}", data={"rating": "5", "comment": "Great"})
    assert rated.status_code == 200
    got = await client.get(f"/api/v1/tasks/{task_id}/feedback", headers=factory.auth(world.admin))
    assert got.json()["rating"] == 5
    stored = await session.scalar(select(VisitFeedback.comment))
    assert stored == "Great"
