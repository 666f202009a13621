"""The outbox relay end to end inside the test transaction: staff notifications through the real
firebase-admin code path against the fake FCM server, e-mail through aiosmtpd, SMS through a
local HTTP fake; retries, back-off, dead letters, gone tokens, quiet hours and preferences."""

from __future__ import annotations

import random
import uuid
from datetime import UTC, datetime, time, timedelta
from typing import Any

import httpx
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from backend.accounts.models import User
from backend.config import Settings
from backend.lib.clock import FrozenClock
from backend.notifications import preferences
from backend.notifications.channels import Channels
from backend.notifications.models import OutboxMessage, OutboxStatus, PushDevice
from backend.notifications.relay import Relay, RelayConfig, backoff_s
from backend.notifications.services import notify
from push.fake_fcm import FakeFcm, FcmAnswer
from push.fakehttp import FakeHTTPServer, Request, Response
from push.sms import SmsConfig, SmsSender
from tests.conftest import Factory, World
from tests.delivery import Mailbox


def make_relay(
    sessionmaker: async_sessionmaker[AsyncSession],
    channels: Channels,
    clock: FrozenClock,
    **config: Any,
) -> Relay:
    return Relay(sessionmaker, channels, clock, RelayConfig(**config), rng=random.Random(7))


async def _device(
    client: httpx.AsyncClient, factory: Factory, user: User, token: str | None = None
) -> dict[str, Any]:
    body = {"token": token or f"tok-{uuid.uuid4().hex}", "platform": "android", "appVersion": "1.4"}
    answer = await client.post("/api/v1/me/devices", json=body, headers=factory.auth(user))
    assert answer.status_code == 201, answer.text
    result: dict[str, Any] = answer.json()
    result["token"] = body["token"]
    return result


async def _notify(
    session: AsyncSession, world: World, user: User, now: datetime, **kw: Any
) -> uuid.UUID:
    kw.setdefault("kind", "task_assigned")
    kw.setdefault("title", "Install 3 windows")
    notification_id = await notify(
        session,
        organization_id=world.org.id,
        user_id=user.id,
        dedupe_key=f"test:{uuid.uuid4()}",
        now=now,
        body="Bauman St 1, 10:00",
        link="/tasks/1",
        **kw,
    )
    await session.commit()
    assert notification_id is not None
    return notification_id


async def _row(session: AsyncSession, notification_id: uuid.UUID) -> OutboxMessage:
    row = await session.scalar(
        select(OutboxMessage)
        .where(OutboxMessage.dedupe_key == f"notification:{notification_id}")
        .execution_options(populate_existing=True)
    )
    assert row is not None
    return row


async def test_a_staff_notification_reaches_each_device_through_fcm_with_its_dedupe_key(
    client: httpx.AsyncClient,
    factory: Factory,
    session: AsyncSession,
    sessionmaker: async_sessionmaker[AsyncSession],
    clock: FrozenClock,
    fake: FakeFcm,
    channels: Channels,
) -> None:
    world = await factory.world()
    phone = await _device(client, factory, world.installer_a)
    tablet = await _device(client, factory, world.installer_a)
    other = await _device(client, factory, world.installer_b)
    nid = await _notify(session, world, world.installer_a, clock.now(), urgent=True)

    stats = await make_relay(sessionmaker, channels, clock).run_once()

    assert stats.claimed == 1
    assert stats.sent == 1
    by_token = {m.token: m for m in fake.delivered}
    assert set(by_token) == {phone["token"], tablet["token"]}
    assert other["token"] not in by_token
    message = by_token[phone["token"]]
    assert message.dedupe_key == f"notification:{nid}"
    assert message.data["notificationId"] == str(nid)
    assert message.data["kind"] == "task_assigned"
    assert message.message["notification"] == {
        "title": "Install 3 windows",
        "body": "Bauman St 1, 10:00",
    }
    assert message.message["android"]["priority"] == "high"
    row = await _row(session, nid)
    assert row.status is OutboxStatus.SENT
    assert row.sent_at == clock.now()
    assert sorted(row.progress) == sorted([f"fcm:{phone['id']}", f"fcm:{tablet['id']}"])
    # Nothing is due any more: a second pass sends nothing.
    assert (await make_relay(sessionmaker, channels, clock).run_once()).claimed == 0
    assert len(fake.delivered) == 2


async def test_503_with_retry_after_is_retried_after_it_and_only_the_missing_device_again(
    client: httpx.AsyncClient,
    factory: Factory,
    session: AsyncSession,
    sessionmaker: async_sessionmaker[AsyncSession],
    clock: FrozenClock,
    fake: FakeFcm,
    channels: Channels,
) -> None:
    world = await factory.world()
    good = await _device(client, factory, world.installer_a)
    flaky = await _device(client, factory, world.installer_a)
    fake.script(flaky["token"], FcmAnswer.error("UNAVAILABLE", retry_after=120))
    nid = await _notify(session, world, world.installer_a, clock.now())
    relay = make_relay(sessionmaker, channels, clock)

    stats = await relay.run_once()

    assert stats.retried == 1
    row = await _row(session, nid)
    assert row.status is OutboxStatus.PENDING
    assert row.attempts == 1
    assert "UNAVAILABLE" in (row.last_error or "")
    assert row.available_at >= clock.now() + timedelta(seconds=120)
    assert row.progress == [f"fcm:{good['id']}"]
    clock.advance(timedelta(seconds=60))
    assert (await relay.run_once()).claimed == 0  # not before Retry-After
    clock.advance(timedelta(seconds=61))
    assert (await relay.run_once()).sent == 1
    assert fake.delivered_dedupe_keys() == {f"notification:{nid}": 2}
    assert [m.token for m in fake.delivered].count(good["token"]) == 1
    row = await _row(session, nid)
    assert row.status is OutboxStatus.SENT
    assert row.attempts == 1


async def test_after_max_attempts_the_row_is_dead_and_an_admin_can_retry_it(
    client: httpx.AsyncClient,
    factory: Factory,
    session: AsyncSession,
    sessionmaker: async_sessionmaker[AsyncSession],
    clock: FrozenClock,
    fake: FakeFcm,
    channels: Channels,
) -> None:
    world = await factory.world()
    device = await _device(client, factory, world.installer_a)
    fake.fail_always(device["token"], "INTERNAL")
    nid = await _notify(session, world, world.installer_a, clock.now())
    relay = make_relay(sessionmaker, channels, clock, max_attempts=3)

    for _ in range(3):
        await relay.run_once()
        clock.advance(timedelta(hours=2))

    row = await _row(session, nid)
    assert row.status is OutboxStatus.DEAD
    assert row.attempts == 3
    assert "INTERNAL" in (row.last_error or "")
    assert len(fake.received) == 3
    listed = await client.get(
        "/api/v1/admin/outbox", params={"status": "dead"}, headers=factory.auth(world.admin)
    )
    assert listed.status_code == 200, listed.text
    assert [i["id"] for i in listed.json()["items"]] == [str(row.id)]

    del fake._scripts.gone[device["token"]]  # the provider is healthy again
    retried = await client.post(
        f"/api/v1/admin/outbox/{row.id}/retry", headers=factory.auth(world.admin)
    )
    assert retried.status_code == 200, retried.text
    assert retried.json()["status"] == "pending"
    assert retried.json()["attempts"] == 0
    assert (await relay.run_once()).sent == 1
    assert fake.delivered_dedupe_keys() == {f"notification:{nid}": 1}


def test_backoff_is_exponential_with_full_jitter_and_capped() -> None:
    config = RelayConfig(backoff_base_s=1.0, backoff_cap_s=60.0)
    rng = random.Random(1)
    for attempts, ceiling in ((1, 1.0), (2, 2.0), (4, 8.0), (7, 60.0), (30, 60.0)):
        draws = [backoff_s(attempts, config, rng) for _ in range(200)]
        assert all(0.0 <= d <= ceiling for d in draws)
        assert max(draws) > ceiling * 0.8  # spread over the whole range, not a fixed delay
        assert min(draws) < ceiling * 0.2


async def test_unregistered_invalid_and_mismatched_tokens_are_removed(
    client: httpx.AsyncClient,
    factory: Factory,
    session: AsyncSession,
    sessionmaker: async_sessionmaker[AsyncSession],
    clock: FrozenClock,
    fake: FakeFcm,
    channels: Channels,
) -> None:
    world = await factory.world()
    gone = await _device(client, factory, world.installer_a)
    invalid = await _device(client, factory, world.installer_a)
    mismatch = await _device(client, factory, world.installer_a)
    alive = await _device(client, factory, world.installer_a)
    fake.unregister(gone["token"])
    fake.fail_always(invalid["token"], "INVALID_ARGUMENT")
    fake.fail_always(mismatch["token"], "SENDER_ID_MISMATCH")
    nid = await _notify(session, world, world.installer_a, clock.now())

    assert (await make_relay(sessionmaker, channels, clock).run_once()).sent == 1

    left = await client.get("/api/v1/me/devices", headers=factory.auth(world.installer_a))
    assert [d["id"] for d in left.json()] == [alive["id"]]
    row = await _row(session, nid)
    assert row.status is OutboxStatus.SENT
    assert "gone" in (row.note or "")
    assert fake.delivered_dedupe_keys() == {f"notification:{nid}": 1}


async def test_quiet_hours_delay_non_urgent_messages_to_their_end(
    client: httpx.AsyncClient,
    factory: Factory,
    session: AsyncSession,
    sessionmaker: async_sessionmaker[AsyncSession],
    clock: FrozenClock,
    fake: FakeFcm,
    channels: Channels,
) -> None:
    world = await factory.world()  # users in Europe/Moscow (UTC+3)
    await _device(client, factory, world.installer_a)
    put = await client.put(
        "/api/v1/me/notification-settings",
        json={"quietHours": {"start": "22:00", "end": "07:00"}},
        headers=factory.auth(world.installer_a),
    )
    assert put.status_code == 200, put.text
    clock.set(datetime(2026, 11, 24, 20, 30, tzinfo=UTC))  # 23:30 in Moscow
    calm = await _notify(session, world, world.installer_a, clock.now(), title="Tomorrow's list")
    urgent = await _notify(
        session, world, world.installer_a, clock.now(), title="Escalated", urgent=True
    )
    relay = make_relay(sessionmaker, channels, clock)

    stats = await relay.run_once()

    assert (stats.sent, stats.delayed) == (1, 1)
    assert fake.delivered_dedupe_keys() == {f"notification:{urgent}": 1}
    row = await _row(session, calm)
    assert row.status is OutboxStatus.PENDING
    assert row.attempts == 0
    assert row.available_at == datetime(2026, 11, 25, 4, 0, tzinfo=UTC)  # 07:00 Moscow
    clock.set(datetime(2026, 11, 25, 3, 59, tzinfo=UTC))
    assert (await relay.run_once()).claimed == 0
    clock.set(datetime(2026, 11, 25, 4, 0, tzinfo=UTC))
    assert (await relay.run_once()).sent == 1
    assert fake.delivered_dedupe_keys()[f"notification:{calm}"] == 1


def test_quiet_until_in_the_users_zone() -> None:
    start, end = time(22, 0), time(7, 0)
    zone = "Europe/Berlin"
    # 21:59 Berlin (winter, UTC+1): not quiet.
    assert (
        preferences.quiet_until(datetime(2026, 1, 10, 20, 59, tzinfo=UTC), zone, start, end) is None
    )
    # 23:00 Berlin: until 07:00 next morning.
    assert preferences.quiet_until(
        datetime(2026, 1, 10, 22, 0, tzinfo=UTC), zone, start, end
    ) == datetime(2026, 1, 11, 6, 0, tzinfo=UTC)
    # 03:00 Berlin: until 07:00 the same morning.
    assert preferences.quiet_until(
        datetime(2026, 1, 11, 2, 0, tzinfo=UTC), zone, start, end
    ) == datetime(2026, 1, 11, 6, 0, tzinfo=UTC)
    # A span within the day (13:00-14:00) and the night the clocks go forward (UTC+2 after).
    assert preferences.quiet_until(
        datetime(2026, 1, 11, 12, 30, tzinfo=UTC), zone, time(13, 0), time(14, 0)
    ) == datetime(2026, 1, 11, 13, 0, tzinfo=UTC)
    assert preferences.quiet_until(
        datetime(2026, 3, 28, 23, 0, tzinfo=UTC), zone, start, end
    ) == datetime(2026, 3, 29, 5, 0, tzinfo=UTC)
    assert (
        preferences.quiet_until(datetime(2026, 1, 11, 2, 0, tzinfo=UTC), zone, None, None) is None
    )


async def test_preferences_choose_the_channels_per_kind(
    client: httpx.AsyncClient,
    factory: Factory,
    session: AsyncSession,
    sessionmaker: async_sessionmaker[AsyncSession],
    clock: FrozenClock,
    fake: FakeFcm,
    channels: Channels,
    mailbox: tuple[Mailbox, int],
) -> None:
    world = await factory.world()
    await _device(client, factory, world.installer_a)
    put = await client.put(
        "/api/v1/me/notification-settings",
        json={"kinds": {"task_assigned": {"push": False, "email": True}}},
        headers=factory.auth(world.installer_a),
    )
    assert put.status_code == 200, put.text
    assigned = await _notify(session, world, world.installer_a, clock.now())
    overdue = await _notify(session, world, world.installer_a, clock.now(), kind="task_overdue")

    assert (await make_relay(sessionmaker, channels, clock).run_once()).sent == 2

    # task_assigned: e-mail only; task_overdue: the defaults (push, no e-mail).
    assert fake.delivered_dedupe_keys() == {f"notification:{overdue}": 1}
    box, _port = mailbox
    [mail] = box.messages
    assert mail["To"] == world.installer_a.email
    assert mail["Subject"] == "Install 3 windows"
    assert mail["X-Fieldcrm-Dedupe-Key"] == f"notification:{assigned}"
    assert str(assigned) in mail["Message-ID"] or "@" in mail["Message-ID"]
    row = await _row(session, assigned)
    assert "push off by preference" in (row.note or "")


async def test_customer_messages_go_out_rendered_by_email_and_sms(
    factory: Factory,
    session: AsyncSession,
    sessionmaker: async_sessionmaker[AsyncSession],
    clock: FrozenClock,
    channels: Channels,
    mailbox: tuple[Mailbox, int],
) -> None:
    world = await factory.world()
    posts: list[Request] = []

    async def provider(request: Request) -> Response:
        posts.append(request)
        return Response.json(200, {"id": f"sms-{len(posts)}"})

    async with FakeHTTPServer(provider) as sms_server:
        channels.sms = SmsSender(
            SmsConfig(
                url=f"{sms_server.url}/send",
                body_template={"to": "{to}", "text": "{text}"},
                idempotency_header="Idempotency-Key",
                include_title=False,
            )
        )
        for key, payload in (
            (
                "customer:mail",
                {
                    "channel": "email",
                    "to": "anna@example.ru",
                    "subject": "Visit booked",
                    "text": "Tue 10:00-12:00",
                    "html": "<p>Tue <b>10:00-12:00</b></p>",
                },
            ),
            ("customer:sms", {"channel": "sms", "to": "+79123456789", "text": "On my way, 12 min"}),
            ("customer:bad", {"channel": "pigeon", "to": "x"}),
        ):
            session.add(
                OutboxMessage(
                    organization_id=world.org.id,
                    topic="customer",
                    payload=payload,
                    dedupe_key=key,
                    available_at=clock.now(),
                    created_at=clock.now(),
                )
            )
        session.add(
            OutboxMessage(
                organization_id=world.org.id,
                topic="telegram",
                payload={},
                dedupe_key="odd",
                available_at=clock.now(),
                created_at=clock.now(),
            )
        )
        await session.commit()

        stats = await make_relay(sessionmaker, channels, clock).run_once()

    assert (stats.sent, stats.dead) == (2, 2)
    box, _port = mailbox
    [mail] = box.messages
    assert mail["To"] == "anna@example.ru"
    assert mail["X-Fieldcrm-Dedupe-Key"] == "customer:mail"
    html = mail.get_body(("html",))
    assert html is not None
    assert "<b>10:00-12:00</b>" in html.get_content()
    [post] = posts
    assert post.json() == {"to": "+79123456789", "text": "On my way, 12 min"}
    assert post.headers["idempotency-key"] == "customer:sms"
    rows = {
        r.dedupe_key: r
        for r in await session.scalars(
            select(OutboxMessage)
            .where(OutboxMessage.organization_id == world.org.id)
            .execution_options(populate_existing=True)
        )
    }
    assert rows["customer:bad"].status is OutboxStatus.DEAD
    assert "payload.channel" in (rows["customer:bad"].last_error or "")
    assert rows["odd"].status is OutboxStatus.DEAD
    assert "unknown topic 'telegram'" in (rows["odd"].last_error or "")


async def test_channels_not_configured_are_skipped_with_a_note_not_retried(
    client: httpx.AsyncClient,
    factory: Factory,
    session: AsyncSession,
    sessionmaker: async_sessionmaker[AsyncSession],
    clock: FrozenClock,
) -> None:
    world = await factory.world()
    await _device(client, factory, world.installer_a)
    nid = await _notify(session, world, world.installer_a, clock.now())

    stats = await make_relay(sessionmaker, Channels(), clock).run_once()

    assert stats.sent == 1
    row = await _row(session, nid)
    assert row.status is OutboxStatus.SENT
    assert row.attempts == 0
    assert "not configured" in (row.note or "")


async def test_a_device_over_fcm_rate_waits_without_losing_an_attempt(
    client: httpx.AsyncClient,
    factory: Factory,
    session: AsyncSession,
    sessionmaker: async_sessionmaker[AsyncSession],
    clock: FrozenClock,
    fake: FakeFcm,
    channels: Channels,
) -> None:
    from push.ratelimit import Limit, RateLimiter

    world = await factory.world()
    await _device(client, factory, world.installer_a)
    first = await _notify(session, world, world.installer_a, clock.now())
    second = await _notify(session, world, world.installer_a, clock.now())
    ticks = [0.0]
    relay = Relay(
        sessionmaker,
        channels,
        clock,
        RelayConfig(),
        rng=random.Random(1),
        limiter=RateLimiter((Limit(1, 60.0),), clock=lambda: ticks[0]),
    )

    stats = await relay.run_once()

    assert (stats.sent, stats.delayed) == (1, 1)
    assert len(fake.delivered) == 1
    waiting = [r for r in (await _row(session, first), await _row(session, second))]
    pending = [r for r in waiting if r.status is OutboxStatus.PENDING]
    assert len(pending) == 1
    assert pending[0].attempts == 0
    assert pending[0].available_at == clock.now() + timedelta(seconds=60)
    devices = (await session.scalars(select(PushDevice))).all()
    assert devices  # rate limiting never removes a device


async def test_web_push_subscriptions_get_the_message_and_gone_ones_are_removed(
    client: httpx.AsyncClient,
    factory: Factory,
    session: AsyncSession,
    sessionmaker: async_sessionmaker[AsyncSession],
    clock: FrozenClock,
) -> None:
    from push.webpush import VapidConfig, WebPushSender, b64url, generate_vapid_keys

    world = await factory.world()
    posts: list[Request] = []

    async def push_service(request: Request) -> Response:
        posts.append(request)
        if request.path.endswith("/gone"):
            return Response(410)
        return Response(201, headers={"Location": f"/m/{len(posts)}"})

    async with FakeHTTPServer(push_service) as service:
        ids = {}
        for name in ("alive", "gone"):
            _private, browser_key = generate_vapid_keys()
            answer = await client.post(
                "/api/v1/me/web-push-subscriptions",
                json={
                    "endpoint": f"{service.url}/push/{name}",
                    "keys": {"p256dh": browser_key, "auth": b64url(b"0123456789abcdef")},
                },
                headers=factory.auth(world.manager_a),
            )
            assert answer.status_code == 201, answer.text
            ids[name] = answer.json()["id"]
        nid = await _notify(session, world, world.manager_a, clock.now())
        private, _public = generate_vapid_keys()
        sender = WebPushSender(VapidConfig(private_key=private, subject="mailto:ops@acme.test"))
        try:
            stats = await make_relay(sessionmaker, Channels(webpush=sender), clock).run_once()
        finally:
            await sender.aclose()

    assert stats.sent == 1
    assert sorted(p.path for p in posts) == ["/push/alive", "/push/gone"]
    alive = next(p for p in posts if p.path == "/push/alive")
    assert alive.headers["content-encoding"] == "aes128gcm"
    assert alive.headers["authorization"].startswith("vapid t=")
    assert alive.body  # encrypted: the dedupe key is inside, readable only by the browser
    left = await client.get(
        "/api/v1/me/web-push-subscriptions", headers=factory.auth(world.manager_a)
    )
    assert [s["id"] for s in left.json()] == [ids["alive"]]
    row = await _row(session, nid)
    assert row.progress == [f"webpush:{ids['alive']}"]


async def test_the_worker_registers_the_relay_as_a_minute_job_that_drains_the_outbox(
    client: httpx.AsyncClient,
    factory: Factory,
    session: AsyncSession,
    sessionmaker: async_sessionmaker[AsyncSession],
    clock: FrozenClock,
    fake: FakeFcm,
    channels: Channels,
    settings: Settings,
) -> None:
    from backend.worker import Jobs, make_app

    world = await factory.world()
    await _device(client, factory, world.installer_a)
    nid = await _notify(session, world, world.installer_a, clock.now())
    jobs = Jobs(sessionmaker, clock, relay=make_relay(sessionmaker, channels, clock))

    assert "outbox_relay" in make_app(settings, jobs).tasks
    assert await jobs.outbox_relay() == 1
    assert await Jobs(sessionmaker, clock).outbox_relay() == 0  # no relay configured
    assert fake.delivered_dedupe_keys() == {f"notification:{nid}": 1}
