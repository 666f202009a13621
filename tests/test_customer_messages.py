"""Customer messages of a visit: booking confirmation (once per window, email else SMS, in the
organisation's language and time zone), the day-before reminder, unsubscribing, and the
organisation's own templates (admins only, validated)."""

from __future__ import annotations

import re
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from backend.accounts.models import Organization
from backend.lib.clock import FrozenClock
from backend.notifications.customer.jobs import CustomerMessageJobs
from backend.notifications.customer.models import CustomerLink, Unsubscribe
from backend.notifications.models import OutboxMessage
from tests.conftest import Factory, World, customer_body

BASE_URL = "https://crm.example"
# The conftest organisation is in Europe/Moscow (UTC+3), locale ru-RU; its clock starts at
# Tuesday 24 November 2026, 12:00 Moscow time.
VISIT_START = datetime(2026, 11, 26, 7, 0, tzinfo=UTC)  # Thursday 10:00 Moscow
VISIT_END = VISIT_START + timedelta(hours=2)
TOKEN = re.compile(r"/(t|feedback|u)/([A-Za-z0-9_-]+)")


async def make_visit(
    client: httpx.AsyncClient,
    factory: Factory,
    world: World,
    *,
    starts: datetime = VISIT_START,
    ends: datetime | None = VISIT_END,
    email: str | None = "anna@example.ru",
    phone: str | None = "+7 912 345-67-89",
    assignee: Any = None,
    lat: float = 55.7887,
    lon: float = 49.1221,
) -> str:
    """A customer (one contact with ``email``/``phone``, one site) and a measurement for them
    in the given window, assigned to the measurer of team A; the task id."""
    contact: dict[str, Any] = {"name": "Anna Petrova"}
    if email:
        contact["email"] = email
    if phone:
        contact["phone"] = phone
    body = customer_body(
        "Anna Petrova",
        contacts=[contact],
        sites=[{"address": "Kazan, Bauman St 1", "lat": lat, "lon": lon}],
    )
    made = await client.post("/api/v1/customers", json=body, headers=factory.auth(world.admin))
    assert made.status_code == 201, made.text
    task: dict[str, Any] = {
        "kind": "measurement",
        "title": "Measure the windows",
        "customerId": made.json()["id"],
        "siteId": made.json()["sites"][0]["id"],
        "assigneeId": str((assignee or world.measurer_a).id),
        "windowStart": starts.isoformat(),
    }
    if ends is not None:
        task["windowEnd"] = ends.isoformat()
    created = await client.post("/api/v1/tasks", json=task, headers=factory.auth(world.admin))
    assert created.status_code == 201, created.text
    task_id: str = created.json()["id"]
    return task_id


async def customer_outbox(session: AsyncSession, org_id: uuid.UUID) -> list[OutboxMessage]:
    """The organisation's customer messages, oldest first."""
    rows = await session.scalars(
        select(OutboxMessage)
        .where(OutboxMessage.organization_id == org_id, OutboxMessage.topic == "customer")
        .order_by(OutboxMessage.created_at, OutboxMessage.dedupe_key)
        .execution_options(populate_existing=True)
    )
    return list(rows.all())


async def sweep(
    sessionmaker: async_sessionmaker[AsyncSession], clock: FrozenClock
) -> dict[str, int]:
    """One pass of the worker's customer_messages job."""
    return await CustomerMessageJobs(sessionmaker, clock, BASE_URL).run()


def token_in(text: str, kind: str) -> str:
    """The token of the first link of ``kind`` ("t", "feedback", "u") in a message."""
    for found_kind, token in TOKEN.findall(text):
        if found_kind == kind:
            return str(token)
    raise AssertionError(f"no /{kind}/ link in {text!r}")


async def test_a_booked_visit_is_confirmed_once_by_email_in_the_organisations_language(
    client: httpx.AsyncClient,
    factory: Factory,
    session: AsyncSession,
    sessionmaker: async_sessionmaker[AsyncSession],
    clock: FrozenClock,
) -> None:
    world = await factory.world()
    await make_visit(client, factory, world)

    assert (await sweep(sessionmaker, clock))["booked"] == 1
    # The same event again (a second pass, a second worker) queues nothing more.
    assert (await sweep(sessionmaker, clock))["booked"] == 0
    rows = await customer_outbox(session, world.org.id)
    assert len(rows) == 1
    payload = rows[0].payload
    assert set(payload) == {"channel", "to", "subject", "text", "html"}
    assert payload["channel"] == "email"
    assert payload["to"] == "anna@example.ru"
    # Russian, and Moscow time: 07:00-09:00 UTC is 10:00-12:00 on Thursday 26 November.
    assert "четверг, 26 ноября" in payload["text"]
    assert "10:00–12:00" in payload["text"]
    assert "замер" in payload["text"]
    assert "<strong>четверг, 26 ноября, 10:00–12:00</strong>" in payload["html"]
    assert payload["subject"].startswith("Acme Windows")
    assert f"{BASE_URL}/u/" in payload["text"]
    assert rows[0].status.value == "pending"
    assert rows[0].available_at == clock.now()


async def test_a_new_window_is_confirmed_again_and_an_unchanged_one_is_not(
    client: httpx.AsyncClient,
    factory: Factory,
    session: AsyncSession,
    sessionmaker: async_sessionmaker[AsyncSession],
    clock: FrozenClock,
) -> None:
    world = await factory.world()
    task_id = await make_visit(client, factory, world)
    await sweep(sessionmaker, clock)
    same = await client.patch(
        f"/api/v1/tasks/{task_id}",
        json={"title": "Measure all windows"},
        headers=factory.auth(world.admin),
    )
    assert same.status_code == 200
    assert (await sweep(sessionmaker, clock))["booked"] == 0
    moved = await client.patch(
        f"/api/v1/tasks/{task_id}",
        json={
            "windowStart": (VISIT_START + timedelta(days=1)).isoformat(),
            "windowEnd": (VISIT_END + timedelta(days=1)).isoformat(),
        },
        headers=factory.auth(world.admin),
    )
    assert moved.status_code == 200, moved.text
    assert (await sweep(sessionmaker, clock))["booked"] == 1
    rows = await customer_outbox(session, world.org.id)
    assert len(rows) == 2
    assert "пятница, 27 ноября" in rows[1].payload["text"]


async def test_a_customer_without_email_gets_an_sms_and_a_past_visit_nothing(
    client: httpx.AsyncClient,
    factory: Factory,
    session: AsyncSession,
    sessionmaker: async_sessionmaker[AsyncSession],
    clock: FrozenClock,
) -> None:
    world = await factory.world()
    await make_visit(client, factory, world, email=None)
    await make_visit(
        client, factory, world, starts=clock.now() - timedelta(hours=2), ends=clock.now()
    )
    assert (await sweep(sessionmaker, clock))["booked"] == 1
    [row] = await customer_outbox(session, world.org.id)
    assert set(row.payload) == {"channel", "to", "text"}
    assert row.payload["channel"] == "sms"
    assert row.payload["to"] == "+79123456789"
    assert "10:00–12:00" in row.payload["text"]


async def test_the_reminder_goes_the_day_before_from_ten_oclock_local_once(
    client: httpx.AsyncClient,
    factory: Factory,
    session: AsyncSession,
    sessionmaker: async_sessionmaker[AsyncSession],
    clock: FrozenClock,
) -> None:
    world = await factory.world()
    await make_visit(client, factory, world)
    await sweep(sessionmaker, clock)  # booked on Tuesday
    clock.set(datetime(2026, 11, 25, 6, 59, tzinfo=UTC))  # Wednesday 09:59 Moscow
    assert (await sweep(sessionmaker, clock))["reminder"] == 0
    clock.set(datetime(2026, 11, 25, 7, 0, tzinfo=UTC))  # 10:00 Moscow
    assert (await sweep(sessionmaker, clock))["reminder"] == 1
    clock.advance(timedelta(hours=3))
    assert (await sweep(sessionmaker, clock))["reminder"] == 0
    rows = await customer_outbox(session, world.org.id)
    assert [r.dedupe_key.split(":")[1] for r in rows] == ["booked", "reminder"]
    assert "завтра" in rows[1].payload["text"]
    assert "10:00–12:00" in rows[1].payload["text"]


async def test_a_visit_booked_the_day_before_gets_no_separate_reminder(
    client: httpx.AsyncClient,
    factory: Factory,
    session: AsyncSession,
    sessionmaker: async_sessionmaker[AsyncSession],
    clock: FrozenClock,
) -> None:
    world = await factory.world()
    await make_visit(
        client, factory, world, starts=VISIT_START - timedelta(days=1), ends=None
    )  # Wednesday 10:00, booked on Tuesday 12:00 (the day before)
    result = await sweep(sessionmaker, clock)
    assert (result["booked"], result["reminder"]) == (1, 0)
    assert "10:00" in (await customer_outbox(session, world.org.id))[0].payload["text"]


async def test_an_unsubscribed_address_gets_nothing_more_from_that_organisation_only(
    client: httpx.AsyncClient,
    factory: Factory,
    session: AsyncSession,
    sessionmaker: async_sessionmaker[AsyncSession],
    clock: FrozenClock,
) -> None:
    world = await factory.world()
    other = await factory.world("Other Windows")
    task_id = await make_visit(client, factory, world)
    await sweep(sessionmaker, clock)
    [row] = await customer_outbox(session, world.org.id)
    token = token_in(row.payload["text"], "u")

    page = await client.get(f"/u/{token}")
    assert page.status_code == 200
    assert "anna@example.ru" in page.text
    assert page.headers["referrer-policy"] == "no-referrer"
    # Opening the link (a mail scanner does) unsubscribes nothing: only the button does.
    assert await session.scalar(select(func.count()).select_from(Unsubscribe)) == 0
    done = await client.post(f"/u/{token}")
    assert done.status_code == 200
    assert (await client.post(f"/u/{token}")).status_code == 200  # idempotent

    moved = await client.patch(
        f"/api/v1/tasks/{task_id}",
        json={"windowStart": (VISIT_START + timedelta(hours=1)).isoformat()},
        headers=factory.auth(world.admin),
    )
    assert moved.status_code == 200, moved.text
    await make_visit(client, factory, other)
    result = await sweep(sessionmaker, clock)
    assert result["booked"] == 1  # the other organisation's customer, same address
    assert len(await customer_outbox(session, world.org.id)) == 1
    assert len(await customer_outbox(session, other.org.id)) == 1

    assert (await client.get("/u/not-a-token")).status_code == 404
    assert (await client.post("/u/" + "A" * 43)).status_code == 404


async def test_links_are_random_256_bit_tokens_stored_only_as_hashes(
    client: httpx.AsyncClient,
    factory: Factory,
    session: AsyncSession,
    sessionmaker: async_sessionmaker[AsyncSession],
    clock: FrozenClock,
) -> None:
    world = await factory.world()
    for day in range(3):
        starts = VISIT_START + timedelta(days=day)
        await make_visit(client, factory, world, starts=starts, ends=starts + timedelta(hours=1))
    await sweep(sessionmaker, clock)
    tokens = [
        token_in(r.payload["text"], "u") for r in await customer_outbox(session, world.org.id)
    ]
    assert len(set(tokens)) == 3
    assert all(len(t) == 43 for t in tokens)  # token_urlsafe(32): 256 bits
    stored = set((await session.scalars(select(CustomerLink.token_hash))).all())
    assert not stored & set(tokens)
    assert all(re.fullmatch(r"[0-9a-f]{64}", h) for h in stored)


async def test_admins_override_a_template_per_language_and_it_is_used(
    client: httpx.AsyncClient,
    factory: Factory,
    session: AsyncSession,
    sessionmaker: async_sessionmaker[AsyncSession],
    clock: FrozenClock,
) -> None:
    world = await factory.world()
    other = await factory.world("Other Windows")
    admin = factory.auth(world.admin)
    url = "/api/v1/admin/customer-templates/booked/ru"

    got = await client.get(url, headers=admin)
    assert got.status_code == 200, got.text
    assert got.json()["source"] == "default"
    assert "unsubscribe_url" in got.json()["variables"]
    english = await client.get("/api/v1/admin/customer-templates/booked/en", headers=admin)
    assert "is booked for" in english.json()["text"]

    body = {
        "subject": "Запись: {{ date }}",
        "text": "Ждём вас {{ date }} в {{ window }}. {{ unsubscribe_url }}",
        "html": "<p>{{ customer_name }}: {{ date }} {{ window }}</p>",
    }
    saved = await client.put(url, json=body, headers=admin)
    assert saved.status_code == 200, saved.text
    assert saved.json()["source"] == "organization"

    await make_visit(client, factory, world)
    await make_visit(client, factory, other)
    await sweep(sessionmaker, clock)
    [mine] = await customer_outbox(session, world.org.id)
    assert mine.payload["subject"] == "Запись: четверг, 26 ноября"
    assert mine.payload["text"].startswith("Ждём вас четверг, 26 ноября в 10:00–12:00.")
    assert mine.payload["html"] == "<p>Anna Petrova: четверг, 26 ноября 10:00–12:00</p>"
    [theirs] = await customer_outbox(session, other.org.id)
    assert theirs.payload["subject"] != mine.payload["subject"]  # the other org: the default

    reset = await client.delete(url, headers=admin)
    assert reset.status_code == 204
    assert (await client.get(url, headers=admin)).json()["source"] == "default"


async def test_template_input_is_checked_and_only_admins_may_change_it(
    client: httpx.AsyncClient, factory: Factory
) -> None:
    world = await factory.world()
    admin = factory.auth(world.admin)
    ok = {"subject": "s", "text": "t", "html": "h"}
    url = "/api/v1/admin/customer-templates/booked/ru"

    denied = await client.put(url, json=ok, headers=factory.auth(world.manager_a))
    assert denied.status_code == 403
    assert denied.headers["content-type"].startswith("application/problem+json")
    assert (await client.get(url, headers=factory.auth(world.measurer_a))).status_code == 403

    unknown_var = await client.put(url, json=ok | {"text": "{{ secret }}"}, headers=admin)
    assert unknown_var.status_code == 422
    assert unknown_var.json()["errors"][0]["field"] == "text"
    broken = await client.put(url, json=ok | {"html": "{% if %}"}, headers=admin)
    assert broken.status_code == 422
    assert broken.json()["errors"][0]["field"] == "html"
    escape = await client.put(url, json=ok | {"subject": "{{ ''.__class__ }}"}, headers=admin)
    assert escape.status_code == 422
    assert escape.json()["errors"][0]["field"] == "subject"

    kind = await client.put("/api/v1/admin/customer-templates/spam/ru", json=ok, headers=admin)
    assert kind.status_code == 422
    assert kind.json()["errors"][0]["field"] == "kind"
    language = await client.get("/api/v1/admin/customer-templates/booked/RU-x", headers=admin)
    assert language.status_code == 422
    assert language.json()["errors"][0]["field"] == "language"
    extra = await client.put(url, json=ok | {"footer": "x"}, headers=admin)
    assert extra.status_code == 400
    empty = await client.put(url, json=ok | {"subject": ""}, headers=admin)
    assert empty.status_code == 400
    assert (await client.put(url, content=b"{", headers=admin)).status_code == 400


async def test_an_organisation_in_english_gets_english_messages(
    client: httpx.AsyncClient,
    factory: Factory,
    session: AsyncSession,
    sessionmaker: async_sessionmaker[AsyncSession],
    clock: FrozenClock,
) -> None:
    world = await factory.world()
    org = await session.get(Organization, world.org.id)
    assert org is not None
    org.locale, org.time_zone = "en-GB", "Europe/London"
    await session.commit()
    await make_visit(client, factory, world)
    await sweep(sessionmaker, clock)
    [row] = await customer_outbox(session, world.org.id)
    assert "Thursday, 26 November, 07:00–09:00" in row.payload["text"]
    assert "measurement is booked" in row.payload["text"]
