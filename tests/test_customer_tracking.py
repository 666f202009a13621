"""'On my way' (the worker's call and the job that sees them drive off), the public tracking page
(only the first name, ETA and position, only while en route; arrived; expired after the visit),
its tokens (expiry, revocation), and 'running late' from ETA changes (more than 15 minutes
against the time told, at most once per 15 minutes)."""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta

import httpx
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from backend.lib.clock import FrozenClock
from backend.notifications.customer.models import CustomerLink, VisitMessageState
from backend.routing.models import EtaChange
from backend.worker import Jobs
from tests.conftest import Factory, World
from tests.test_customer_messages import customer_outbox, make_visit, sweep, token_in
from tests.test_tracking import fix, send, start_shift

SITE = (55.7887, 49.1221)


async def visit_today(client: httpx.AsyncClient, factory: Factory, world: World) -> str:
    """A visit of the team A measurer today, 13:00-15:00 Moscow (the clock: 12:00 Moscow)."""
    now = factory.clock.now()
    return await make_visit(
        client, factory, world, starts=now + timedelta(hours=1), ends=now + timedelta(hours=3)
    )


async def announce(
    client: httpx.AsyncClient, factory: Factory, world: World, task_id: str, minutes: int = 25
) -> httpx.Response:
    return await client.post(
        f"/api/v1/tasks/{task_id}/on-my-way",
        json={"etaMinutes": minutes},
        headers=factory.auth(world.measurer_a),
    )


async def tracking_token(session: AsyncSession, world: World, index: int = -1) -> str:
    rows = [r for r in await customer_outbox(session, world.org.id) if "/t/" in r.payload["text"]]
    return token_in(rows[index].payload["text"], "t")


async def test_on_my_way_sends_the_eta_and_a_link_that_shows_the_first_name_and_position(
    client: httpx.AsyncClient,
    factory: Factory,
    session: AsyncSession,
    clock: FrozenClock,
) -> None:
    world = await factory.world()
    task_id = await visit_today(client, factory, world)
    await start_shift(client, factory, world.measurer_a)
    sent = await send(
        client, factory, world.measurer_a, [fix(clock.now(), 55.79, 49.05, speed=12.0)]
    )
    assert sent.status_code == 200, sent.text

    said = await announce(client, factory, world, task_id)
    assert said.status_code == 200, said.text
    assert said.json()["status"] == "queued"
    eta = clock.now() + timedelta(minutes=25)
    assert datetime.fromisoformat(said.json()["eta"]) == eta
    [row] = await customer_outbox(session, world.org.id)
    assert row.dedupe_key.startswith("customer:on_my_way:")
    text = row.payload["text"]
    assert "Max" in text
    assert "Measurer" not in text  # the first name only
    assert "12:25" in text  # 09:25 UTC in Moscow time
    token = token_in(text, "t")
    assert len(token) >= 43

    page = await client.get(f"/t/{token}")
    assert page.status_code == 200
    assert "Max" in page.text
    assert "Measurer" not in page.text
    assert "12:25" in page.text
    assert "leaflet.js" in page.text
    assert page.headers["cache-control"] == "no-store"
    assert page.headers["referrer-policy"] == "no-referrer"
    live = await client.get(f"/t/{token}/position")
    assert live.status_code == 200
    body = live.json()
    assert body["status"] == "en_route"
    assert body["worker"] == "Max"
    assert (body["lat"], body["lon"]) == (55.79, 49.05)
    assert set(body) == {"status", "worker", "eta", "lat", "lon", "recordedAt"}

    # Saying it again tells the customer nothing new.
    again = await announce(client, factory, world, task_id)
    assert again.json()["status"] == "duplicate"
    assert len(await customer_outbox(session, world.org.id)) == 1

    # A stale position is not shown.
    clock.advance(timedelta(minutes=11))
    assert (await client.get(f"/t/{token}/position")).json()["lat"] is None


async def test_the_page_says_arrived_after_check_in_and_shows_nothing_after_the_visit(
    client: httpx.AsyncClient, factory: Factory, session: AsyncSession, clock: FrozenClock
) -> None:
    world = await factory.world()
    task_id = await visit_today(client, factory, world)
    await start_shift(client, factory, world.measurer_a)
    await send(client, factory, world.measurer_a, [fix(clock.now(), *SITE, speed=0.0)])
    await announce(client, factory, world, task_id)
    token = await tracking_token(session, world)

    checked_in = await client.post(
        f"/api/v1/tasks/{task_id}/check-in",
        json={"lat": SITE[0], "lon": SITE[1], "accuracy": 8.0},
        headers=factory.auth(world.measurer_a),
    )
    assert checked_in.status_code == 201, checked_in.text
    arrived = await client.get(f"/t/{token}")
    assert arrived.status_code == 200
    assert "Max" in arrived.text
    assert "data-lat" not in arrived.text  # no position any more
    live = (await client.get(f"/t/{token}/position")).json()
    assert live["status"] == "arrived"
    assert live["lat"] is None

    clock.advance(timedelta(minutes=50))
    done = await client.post(
        f"/api/v1/tasks/{task_id}/complete",
        json={"outcome": "measured"},
        headers=factory.auth(world.measurer_a),
    )
    assert done.status_code == 200, done.text
    expired = await client.get(f"/t/{token}")
    assert expired.status_code == 410
    assert "Max" not in expired.text
    assert "12:" not in expired.text
    gone = await client.get(f"/t/{token}/position")
    assert gone.status_code == 410
    assert gone.headers["content-type"].startswith("application/problem+json")
    assert "Max" not in gone.text


async def test_links_expire_after_the_visit_and_can_be_revoked_by_the_manager(
    client: httpx.AsyncClient,
    factory: Factory,
    session: AsyncSession,
    sessionmaker: async_sessionmaker[AsyncSession],
    clock: FrozenClock,
) -> None:
    world = await factory.world()
    task_id = await visit_today(client, factory, world)
    await announce(client, factory, world, task_id)
    token = await tracking_token(session, world)
    link = await session.scalar(select(CustomerLink).where(CustomerLink.purpose == "tracking"))
    assert link is not None
    # The visit window ends at 15:00 Moscow: the link works until 12 hours after.
    assert link.expires_at == clock.now() + timedelta(hours=3 + 12)

    # Another manager's team, another organisation, field staff of the team: not theirs.
    other = await factory.world("Other Windows")
    for who in (world.manager_b, other.admin):
        refused = await client.post(
            f"/api/v1/tasks/{task_id}/tracking-link/revoke", headers=factory.auth(who)
        )
        assert refused.status_code == 404
    revoked = await client.post(
        f"/api/v1/tasks/{task_id}/tracking-link/revoke", headers=factory.auth(world.manager_a)
    )
    assert revoked.status_code == 200
    assert revoked.json() == {"revoked": 1}
    assert (await client.get(f"/t/{token}")).status_code == 404
    assert (await client.get(f"/t/{token}/position")).status_code == 404

    # After a revocation the worker's call sends a new link; the old one stays dead.
    clock.advance(timedelta(minutes=1))
    again = await announce(client, factory, world, task_id, minutes=10)
    assert again.json()["status"] == "queued"
    fresh = await tracking_token(session, world)
    assert fresh != token
    assert (await client.get(f"/t/{fresh}")).status_code == 200

    clock.advance(timedelta(hours=16))
    assert (await client.get(f"/t/{fresh}")).status_code == 404
    assert (await client.get("/t/short")).status_code == 404
    assert (await client.get("/t/" + "A" * 43 + "/position")).status_code == 404

    # A day after they expired the worker's hourly job deletes the links.
    links_of_visit = select(CustomerLink).where(CustomerLink.task_id == uuid.UUID(task_id))
    assert len((await session.scalars(links_of_visit)).all()) == 2
    assert (await Jobs(sessionmaker, clock).purge_expired())[2] == 0  # expired, not a day ago
    clock.advance(timedelta(days=1))
    assert (await Jobs(sessionmaker, clock).purge_expired())[2] >= 2
    assert (await session.scalars(links_of_visit)).all() == []


async def test_on_my_way_input_and_permissions(
    client: httpx.AsyncClient, factory: Factory, session: AsyncSession
) -> None:
    world = await factory.world()
    other = await factory.world("Other Windows")
    task_id = await visit_today(client, factory, world)
    url = f"/api/v1/tasks/{task_id}/on-my-way"

    manager = await client.post(url, json={}, headers=factory.auth(world.manager_a))
    assert manager.status_code == 403  # only the assignee is on the way
    assert (await client.post(url, headers=factory.auth(other.admin))).status_code == 404
    assert (await client.post(url, headers=factory.auth(world.installer_a))).status_code == 404
    me = factory.auth(world.measurer_a)
    for bad in ({"etaMinutes": 0}, {"etaMinutes": 10_000}, {"etaMinutes": "soon"}, {"x": 1}):
        refused = await client.post(url, json=bad, headers=me)
        assert refused.status_code == 400, bad
        assert refused.headers["content-type"].startswith("application/problem+json")
    # No fix, no site order for today known to the route: the route still has the visit.
    routed = await client.post(url, headers=me)
    assert routed.status_code == 200, routed.text
    assert routed.json()["status"] == "queued"

    cancelled = await client.post(
        f"/api/v1/tasks/{task_id}/cancel",
        json={"reason": "customer away"},
        headers=factory.auth(world.admin),
    )
    assert cancelled.status_code == 200
    closed = await client.post(url, json={"etaMinutes": 5}, headers=me)
    assert closed.status_code == 409
    assert closed.headers["content-type"].startswith("application/problem+json")
    assert len(await customer_outbox(session, world.org.id)) == 1


async def test_the_job_tells_the_customer_when_the_worker_drives_off_to_their_visit(
    client: httpx.AsyncClient,
    factory: Factory,
    session: AsyncSession,
    sessionmaker: async_sessionmaker[AsyncSession],
    clock: FrozenClock,
) -> None:
    world = await factory.world()
    task_id = await visit_today(client, factory, world)
    await sweep(sessionmaker, clock)  # the booking confirmation
    await start_shift(client, factory, world.measurer_a)
    # Standing still at the depot: not on the way yet.
    await send(client, factory, world.measurer_a, [fix(clock.now(), 55.79, 49.05, speed=0.0)])
    assert (await sweep(sessionmaker, clock))["on_my_way"] == 0
    clock.advance(timedelta(minutes=1))
    await send(client, factory, world.measurer_a, [fix(clock.now(), 55.79, 49.06, speed=11.0)])
    assert (await sweep(sessionmaker, clock))["on_my_way"] == 1
    clock.advance(timedelta(minutes=1))
    await send(client, factory, world.measurer_a, [fix(clock.now(), 55.79, 49.07, speed=11.0)])
    assert (await sweep(sessionmaker, clock))["on_my_way"] == 0  # once per visit
    rows = await customer_outbox(session, world.org.id)
    assert [r.dedupe_key.split(":")[1] for r in rows] == ["booked", "on_my_way"]
    state = await session.get(VisitMessageState, uuid.UUID(task_id), populate_existing=True)
    assert state is not None
    assert state.told_eta is not None
    assert clock.now() < state.told_eta < clock.now() + timedelta(hours=2)


async def eta_change(
    session: AsyncSession, world: World, task_id: str, eta: datetime, now: datetime
) -> None:
    """An ETA change as the route re-plan records it."""
    session.add(
        EtaChange(
            id=uuid.uuid4(),
            organization_id=world.org.id,
            task_id=uuid.UUID(task_id),
            user_id=world.measurer_a.id,
            previous_eta=eta - timedelta(minutes=5),
            new_eta=eta,
            delta_s=300,
            changed_at=now,
        )
    )
    await session.commit()


async def test_running_late_is_sent_past_15_minutes_and_at_most_every_15_minutes(
    client: httpx.AsyncClient,
    factory: Factory,
    session: AsyncSession,
    sessionmaker: async_sessionmaker[AsyncSession],
    clock: FrozenClock,
) -> None:
    world = await factory.world()
    task_id = await visit_today(client, factory, world)
    await announce(client, factory, world, task_id, minutes=30)
    told = clock.now() + timedelta(minutes=30)  # 12:30 Moscow

    clock.advance(timedelta(minutes=2))
    await eta_change(session, world, task_id, told + timedelta(minutes=15), clock.now())
    assert (await sweep(sessionmaker, clock))["running_late"] == 0  # 15 min is not "more"
    clock.advance(timedelta(minutes=2))
    await eta_change(session, world, task_id, told + timedelta(minutes=20), clock.now())
    assert (await sweep(sessionmaker, clock))["running_late"] == 1
    assert (await sweep(sessionmaker, clock))["running_late"] == 0  # the same change again
    clock.advance(timedelta(minutes=5))
    await eta_change(session, world, task_id, told + timedelta(minutes=45), clock.now())
    assert (await sweep(sessionmaker, clock))["running_late"] == 0  # within 15 min of the last
    clock.advance(timedelta(minutes=9))
    assert (await sweep(sessionmaker, clock))["running_late"] == 0
    clock.advance(timedelta(minutes=1))  # 15 minutes after the first message
    assert (await sweep(sessionmaker, clock))["running_late"] == 1
    rows = [
        r for r in await customer_outbox(session, world.org.id) if "running_late" in r.dedupe_key
    ]
    assert len(rows) == 2
    assert "12:50" in rows[0].payload["text"]
    assert "13:15" in rows[1].payload["text"]
    # The running-late message carries a working tracking link too.
    assert (await client.get(f"/t/{token_in(rows[1].payload['text'], 't')}")).status_code == 200


async def test_a_late_eta_before_on_my_way_counts_against_the_booked_window(
    client: httpx.AsyncClient,
    factory: Factory,
    session: AsyncSession,
    sessionmaker: async_sessionmaker[AsyncSession],
    clock: FrozenClock,
) -> None:
    world = await factory.world()
    task_id = await visit_today(client, factory, world)  # 13:00-15:00 Moscow
    window_end = clock.now() + timedelta(hours=3)
    await eta_change(session, world, task_id, window_end - timedelta(minutes=30), clock.now())
    assert (await sweep(sessionmaker, clock))["running_late"] == 0  # within the window
    clock.advance(timedelta(minutes=2))
    await eta_change(session, world, task_id, window_end + timedelta(minutes=16), clock.now())
    assert (await sweep(sessionmaker, clock))["running_late"] == 1
    [late] = [
        r for r in await customer_outbox(session, world.org.id) if "running_late" in r.dedupe_key
    ]
    assert "15:16" in late.payload["text"]
    assert "/t/" not in late.payload["text"]  # no tracking link before they set off
