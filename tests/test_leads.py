"""Lead capture: the public JSON endpoint and the embeddable form turn a website request into a
customer, a deal at the first stage and a call-back task, with dedupe, owner assignment (round
robin, territory), a honeypot, a per-IP rate limit and all-or-nothing validation."""

from __future__ import annotations

import uuid
from collections import Counter
from datetime import timedelta
from typing import Any

import httpx
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from backend.accounts.models import Organization
from backend.customers.models import Contact, Customer, Interaction, Site
from backend.lib.clock import FrozenClock
from backend.lib.ratelimit import RateLimitWindow
from backend.sales.models import AssignmentRule, Deal, Territory
from backend.seed.pipeline import WindowPipeline, seed_window_pipeline
from backend.tasks.models import Task, TaskKind, TaskStatus
from tests.conftest import START, Factory, World

KAZAN_AREA = "SRID=4326;MULTIPOLYGON(((49.0 55.7, 49.3 55.7, 49.3 55.9, 49.0 55.9, 49.0 55.7)))"


async def _setup(
    factory: Factory, session: AsyncSession, key: str | None = None
) -> tuple[World, WindowPipeline, str]:
    world = await factory.world()
    key = key or f"lead-form-{uuid.uuid4().hex}"
    setup = await seed_window_pipeline(session, world.org, form_key=key)
    await session.commit()
    return world, setup, key


async def _post_lead(client: httpx.AsyncClient, key: str, **body: Any) -> httpx.Response:
    body.setdefault("name", "Иванова Мария")
    return await client.post(f"/api/v1/leads/{key}", json=body)


async def _count(session: AsyncSession, model: Any, org: Organization) -> int:
    return int(
        await session.scalar(
            select(func.count()).select_from(model).where(model.organization_id == org.id)
        )
        or 0
    )


async def _deals(session: AsyncSession, org: Organization) -> list[Deal]:
    rows = await session.scalars(select(Deal).where(Deal.organization_id == org.id))
    return list(rows.all())


async def _owner_of_phone(session: AsyncSession, org: Organization, phone: str) -> uuid.UUID:
    owner = await session.scalar(
        select(Deal.owner_id)
        .join(Contact, Contact.customer_id == Deal.customer_id)
        .where(Deal.organization_id == org.id, Contact.phone == phone)
    )
    assert owner is not None
    return owner


async def test_json_lead_creates_customer_deal_and_call_task(
    client: httpx.AsyncClient, factory: Factory, session: AsyncSession
) -> None:
    world, setup, key = await _setup(factory, session)
    answer = await client.post(
        f"/api/v1/leads/{key}",
        json={
            "name": "Иванова Мария Петровна",
            "phone": "8 917 555-12-34",
            "email": "Maria@Example.RU",
            "message": "Три окна",
            "address": "Казань, ул. Баумана, 15",
            "lat": 55.7887,
            "lon": 49.1221,
            "utmSource": "yandex",
            "utmMedium": "cpc",
            "utmCampaign": "autumn",
        },
        headers={"Referer": "https://windows.example/contacts"},
    )
    assert answer.status_code == 201, answer.text
    body = answer.json()
    assert body["status"] == "accepted"
    assert body["message"] == setup.form.thank_you
    assert body["reference"]
    assert set(body) == {"status", "reference", "message"}  # no internal ids

    [deal] = await _deals(session, world.org)
    assert str(deal.id).split("-")[0].upper() == body["reference"]
    assert deal.stage_id == setup.stages["first_call"].id
    assert deal.pipeline_id == setup.pipeline.id
    assert deal.source == "website"
    assert deal.currency == "RUB"
    assert deal.attribution["utm"] == {"source": "yandex", "medium": "cpc", "campaign": "autumn"}
    assert deal.attribution["referrer"] == "https://windows.example/contacts"
    assert deal.attribution["formId"] == str(setup.form.id)
    assert deal.owner_id in {world.manager_a.id, world.manager_b.id}
    assert deal.stage_entered_at == START

    customer = await session.get(Customer, deal.customer_id)
    assert customer is not None
    assert customer.name == "Иванова Мария Петровна"
    assert customer.source == "website"
    assert customer.owner_id == deal.owner_id
    [contact] = (
        await session.scalars(select(Contact).where(Contact.customer_id == customer.id))
    ).all()
    assert contact.phone == "+79175551234"
    assert contact.email == "maria@example.ru"
    [site] = (await session.scalars(select(Site).where(Site.customer_id == customer.id))).all()
    assert deal.site_id == site.id
    assert site.address == "Казань, ул. Баумана, 15"
    note = await session.scalar(select(Interaction).where(Interaction.deal_id == deal.id))
    assert note is not None
    assert "Три окна" in (note.body or "")

    [task] = (await session.scalars(select(Task).where(Task.deal_id == deal.id))).all()
    assert task.kind is TaskKind.CALL
    assert task.status is TaskStatus.OPEN
    assert task.assignee_id == deal.owner_id
    assert task.due_at == START + timedelta(minutes=15)
    assert task.escalate_after_minutes == 15
    assert "Иванова Мария Петровна" in task.title


async def test_same_phone_or_email_reuses_the_customer(
    client: httpx.AsyncClient, factory: Factory, session: AsyncSession
) -> None:
    world, _, key = await _setup(factory, session)
    first = await _post_lead(client, key, phone="8 917 555-12-34", name="Мария")
    assert first.status_code == 201, first.text
    [deal] = await _deals(session, world.org)
    owner = deal.owner_id
    assert owner is not None

    # The same number written differently: the same customer, a second deal, the same manager
    # (round robin alone would have given the other manager now).
    again = await _post_lead(client, key, phone="+7 (917) 555 12 34", name="Мария П.")
    assert again.status_code == 201, again.text
    # An email lead in other case, then the same email in lower case.
    by_email = await _post_lead(client, key, email="Oleg.Petrov@Mail.RU", name="Олег")
    assert by_email.status_code == 201, by_email.text
    email_again = await _post_lead(client, key, email="OLEG.PETROV@mail.ru", name="Олег Петров")
    assert email_again.status_code == 201, email_again.text

    assert await _count(session, Customer, world.org) == 2
    assert await _count(session, Contact, world.org) == 2
    deals = await _deals(session, world.org)
    assert len(deals) == 4
    by_customer = Counter(d.customer_id for d in deals)
    assert sorted(by_customer.values()) == [2, 2]
    maria = deal.customer_id
    assert {d.owner_id for d in deals if d.customer_id == maria} == {owner}
    oleg = next(c for c in by_customer if c != maria)
    oleg_row = await session.get(Customer, oleg)
    assert oleg_row is not None
    assert oleg_row.owner_id in {world.manager_a.id, world.manager_b.id}
    assert {d.owner_id for d in deals if d.customer_id == oleg} == {oleg_row.owner_id}
    assert await session.scalar(select(Contact.email).where(Contact.customer_id == oleg)) == (
        "oleg.petrov@mail.ru"
    )


async def test_round_robin_alternates_between_active_managers(
    client: httpx.AsyncClient, factory: Factory, session: AsyncSession
) -> None:
    world, _, key = await _setup(factory, session)
    phones = [f"+7917555{n:04d}" for n in range(4)]
    for phone in phones:
        answer = await _post_lead(client, key, phone=phone)
        assert answer.status_code == 201, answer.text
    owners = [await _owner_of_phone(session, world.org, p) for p in phones]
    assert Counter(owners) == {world.manager_a.id: 2, world.manager_b.id: 2}
    assert owners[0] != owners[1]
    assert owners[2:] == owners[:2]  # strictly alternating

    # A deactivated manager gets no more leads.
    world.manager_b.is_active = False
    await session.commit()
    later = [f"+7917666{n:04d}" for n in range(3)]
    for phone in later:
        answer = await _post_lead(client, key, phone=phone)
        assert answer.status_code == 201, answer.text
    assert [await _owner_of_phone(session, world.org, p) for p in later] == [world.manager_a.id] * 3


async def test_known_customer_of_a_deactivated_manager_goes_round_robin(
    client: httpx.AsyncClient, factory: Factory, session: AsyncSession
) -> None:
    world, _, key = await _setup(factory, session)
    first = await _post_lead(client, key, phone="+79175550001")
    assert first.status_code == 201
    [deal] = await _deals(session, world.org)
    leaving = world.manager_a if deal.owner_id == world.manager_a.id else world.manager_b
    staying = world.manager_b if leaving is world.manager_a else world.manager_a
    leaving.is_active = False
    await session.commit()
    again = await _post_lead(client, key, phone="+79175550001")
    assert again.status_code == 201
    deals = await _deals(session, world.org)
    assert len(deals) == 2
    assert len({d.customer_id for d in deals}) == 1
    assert {d.owner_id for d in deals} == {leaving.id, staying.id}


async def test_territory_assignment_with_round_robin_fallback(
    client: httpx.AsyncClient, factory: Factory, session: AsyncSession
) -> None:
    world, setup, key = await _setup(factory, session)
    session.add(
        Territory(
            id=uuid.uuid4(),
            organization_id=world.org.id,
            name="Kazan centre",
            area=KAZAN_AREA,
            manager_id=world.manager_b.id,
        )
    )
    setup.form.assignment = AssignmentRule.TERRITORY
    await session.commit()

    inside = []
    for n in range(3):
        phone = f"+7917111{n:04d}"
        answer = await _post_lead(client, key, phone=phone, lat=55.79 + n / 100, lon=49.12)
        assert answer.status_code == 201, answer.text
        inside.append(await _owner_of_phone(session, world.org, phone))
    assert inside == [world.manager_b.id] * 3

    # Outside the polygon (Moscow) or without coordinates: round robin over both managers.
    outside = []
    for n, coords in enumerate(({"lat": 55.7558, "lon": 37.6173}, {})):
        phone = f"+7917222{n:04d}"
        answer = await _post_lead(client, key, phone=phone, **coords)
        assert answer.status_code == 201, answer.text
        outside.append(await _owner_of_phone(session, world.org, phone))
    assert set(outside) == {world.manager_a.id, world.manager_b.id}


async def test_honeypot_looks_accepted_but_stores_nothing(
    client: httpx.AsyncClient, factory: Factory, session: AsyncSession
) -> None:
    world, setup, key = await _setup(factory, session)
    answer = await _post_lead(client, key, phone="+79175551234", website="http://spam.example")
    assert answer.status_code == 201
    assert answer.json()["status"] == "accepted"
    assert answer.json()["reference"]
    page = await client.post(
        f"/f/{key}", data={"name": "Bot", "phone": "+79175551234", "website": "x"}
    )
    assert page.status_code == 200
    assert setup.form.thank_you in page.text
    for model in (Customer, Contact, Deal, Task):
        assert await _count(session, model, world.org) == 0


async def test_rate_limit_per_client_address(
    client: httpx.AsyncClient, factory: Factory, session: AsyncSession, clock: FrozenClock
) -> None:
    world, _, key = await _setup(factory, session)
    clock.advance(timedelta(seconds=5))  # inside one fixed one-minute window
    for n in range(10):
        answer = await _post_lead(client, key, phone=f"+7917333{n:04d}")
        assert answer.status_code == 201, (n, answer.text)
    refused = await _post_lead(client, key, phone="+79173339999")
    assert refused.status_code == 429
    assert refused.headers["retry-after"] == "60"
    assert refused.headers["content-type"].startswith("application/problem+json")
    assert refused.json()["type"] == "urn:fieldcrm:problem:rate-limited"
    assert refused.json()["status"] == 429
    page = await client.post(f"/f/{key}", data={"name": "Мария", "phone": "+79173339998"})
    assert page.status_code == 429
    assert page.headers["retry-after"] == "60"
    assert await _count(session, Deal, world.org) == 10

    # The ASGI test transport's client address is 127.0.0.1: one window row counts them all.
    hits = await session.scalar(
        select(RateLimitWindow.hits).where(RateLimitWindow.key == "lead:127.0.0.1")
    )
    assert hits == 12

    clock.advance(timedelta(minutes=1))
    accepted = await _post_lead(client, key, phone="+79173339999")
    assert accepted.status_code == 201, accepted.text
    assert await _count(session, Deal, world.org) == 11


async def test_lead_validation(
    client: httpx.AsyncClient, factory: Factory, session: AsyncSession
) -> None:
    world, setup, key = await _setup(factory, session)

    def fields(response: httpx.Response) -> set[str]:
        return {e["field"] for e in response.json()["errors"]}

    nothing = await _post_lead(client, key, message="call me")
    assert nothing.status_code == 422
    assert nothing.json()["type"] == "urn:fieldcrm:problem:validation-error"
    assert fields(nothing) == {"phone"}
    blank = await _post_lead(client, key, phone="  ", email=" ")
    assert blank.status_code == 422
    assert fields(blank) == {"phone"}
    bad_phone = await _post_lead(client, key, phone="12345")
    assert bad_phone.status_code == 422
    assert fields(bad_phone) == {"phone"}
    bad_email = await _post_lead(client, key, email="not-an-email")
    assert bad_email.status_code == 422
    assert fields(bad_email) == {"email"}
    half_point = await _post_lead(client, key, phone="+79175551234", lat=55.7)
    assert half_point.status_code == 422
    assert fields(half_point) == {"lat"}
    blank_name = await _post_lead(client, key, phone="+79175551234", name="   ")
    assert blank_name.status_code == 422
    assert fields(blank_name) == {"name"}

    unknown = await _post_lead(client, "no-such-form-key", phone="+79175551234")
    assert unknown.status_code == 404
    assert unknown.json()["type"] == "urn:fieldcrm:problem:not-found"
    assert (await client.get("/f/no-such-form-key")).status_code == 404

    # Nothing of the refused requests was written (not even rate-limit hits).
    for model in (Customer, Contact, Site, Deal, Task, Interaction):
        assert await _count(session, model, world.org) == 0

    setup.form.is_active = False
    await session.commit()
    inactive = await _post_lead(client, key, phone="+79175551234")
    assert inactive.status_code == 404
    assert (await client.get(f"/f/{key}")).status_code == 404
    assert (
        await client.post(f"/f/{key}", data={"name": "A", "phone": "+79175551234"})
    ).status_code == 404
    assert await _count(session, Deal, world.org) == 0


async def test_form_page_carries_utm_and_posts_a_lead(
    client: httpx.AsyncClient, factory: Factory, session: AsyncSession
) -> None:
    world, _, key = await _setup(factory, session)
    page = await client.get(
        f"/f/{key}?utm_source=yandex&utm_campaign=autumn&utm_term=okna",
        headers={"Referer": "https://windows.example/"},
    )
    assert page.status_code == 200
    assert '<input type="hidden" name="utm_source" value="yandex">' in page.text
    assert '<input type="hidden" name="utm_campaign" value="autumn">' in page.text
    assert '<input type="hidden" name="utm_term" value="okna">' in page.text
    assert 'name="utm_medium"' not in page.text
    assert 'name="referrer" value="https://windows.example/"' in page.text
    assert 'name="website"' in page.text

    accepted = await client.post(
        f"/f/{key}",
        data={"name": "Пётр Сидоров", "phone": "8 917 555-12-34", "utm_source": "yandex"},
    )
    assert accepted.status_code == 200, accepted.text
    assert "Номер заявки" in accepted.text
    [deal] = await _deals(session, world.org)
    assert deal.attribution["utm"] == {"source": "yandex"}
    phone = await session.scalar(
        select(Contact.phone).where(Contact.customer_id == deal.customer_id)
    )
    assert phone == "+79175551234"


async def test_form_post_with_errors_rerenders_the_form_with_typed_values(
    client: httpx.AsyncClient, factory: Factory, session: AsyncSession
) -> None:
    world, _, key = await _setup(factory, session)
    refused = await client.post(
        f"/f/{key}",
        data={
            "name": "Пётр Сидоров",
            "phone": "12345",
            "email": "petr@example.ru",
            "message": "Балкон",
            "utm_source": "yandex",
            "website": "",
        },
    )
    assert refused.status_code == 422
    assert "text/html" in refused.headers["content-type"]
    assert 'value="Пётр Сидоров"' in refused.text
    assert 'value="12345"' in refused.text
    assert 'value="petr@example.ru"' in refused.text
    assert ">Балкон</textarea>" in refused.text
    assert '<input type="hidden" name="utm_source" value="yandex">' in refused.text
    assert 'role="alert"' in refused.text
    for model in (Customer, Deal, Task):
        assert await _count(session, model, world.org) == 0


async def test_lead_matches_a_customer_entered_by_hand(
    client: httpx.AsyncClient, factory: Factory, session: AsyncSession
) -> None:
    world, _, key = await _setup(factory, session)
    created = await client.post(
        "/api/v1/customers",
        json={
            "kind": "person",
            "name": "Ivanov Petr",
            "contacts": [{"name": "Ivanov Petr", "phone": "+7 912 345-67-89"}],
        },
        headers=factory.auth(world.manager_b),
    )
    assert created.status_code == 201, created.text
    answer = await _post_lead(client, key, phone="8 (912) 345 67 89", name="Пётр")
    assert answer.status_code == 201, answer.text
    [deal] = await _deals(session, world.org)
    assert str(deal.customer_id) == created.json()["id"]
    assert deal.owner_id == world.manager_b.id
    assert deal.site_id is None
    assert await _count(session, Customer, world.org) == 1
    [task] = (await session.scalars(select(Task).where(Task.deal_id == deal.id))).all()
    assert task.assignee_id == world.manager_b.id
