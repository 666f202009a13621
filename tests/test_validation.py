"""Bad input gets problem+json naming the field and the reason; nothing is half-written."""

from __future__ import annotations

import math
from typing import Any

import pytest
from httpx import AsyncClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from backend.customers.models import Contact, Customer
from backend.lib.errors import InvalidInput
from backend.lib.validation import normalize_phone
from tests.conftest import Factory, customer_body


def fields(response: Any) -> list[str]:
    assert response.headers["content-type"].startswith("application/problem+json"), response.text
    body = response.json()
    assert body["status"] == response.status_code
    assert body["type"].startswith("urn:fieldcrm:problem:")
    return [e["field"] for e in body["errors"]]


@pytest.mark.parametrize(
    ("change", "status", "field"),
    [
        ({"name": 42}, 400, "name"),
        ({"kind": "alien"}, 400, "kind"),
        ({"name": ""}, 400, "name"),
        ({"unexpected": True}, 400, "unexpected"),
        ({"sites": [{"address": "x", "lat": 91, "lon": 10}]}, 400, "sites[0].lat"),
        ({"sites": [{"address": "x", "lat": 10, "lon": 181}]}, 400, "sites[0].lon"),
        # Numeric strings are read as numbers (lax JSON numbers); anything else is refused.
        ({"sites": [{"address": "x", "lat": "55,7", "lon": 49.1}]}, 400, "sites[0].lat"),
        ({"sites": [{"address": "x", "lat": None, "lon": [1]}]}, 400, "sites[0].lon"),
        ({"sites": [{"address": "x", "lat": 55.7}]}, 422, "sites[0].lon"),
        ({"sites": [{"address": "x"}]}, 422, "sites[0].lat"),
        ({"contacts": [{"name": "A", "phone": "12"}]}, 422, "contacts[0].phone"),
        ({"contacts": [{"name": "A", "phone": "+7 000 000"}]}, 422, "contacts[0].phone"),
        ({"contacts": [{"name": "A", "email": "not-an-email"}]}, 422, "contacts[0].email"),
        ({"contacts": [{"name": "A"}]}, 422, "contacts[0].phone"),
        ({"ownerId": "not-a-uuid"}, 400, "ownerId"),
    ],
)
async def test_bad_customer_input_names_the_field(
    client: AsyncClient,
    factory: Factory,
    session: AsyncSession,
    change: dict[str, Any],
    status: int,
    field: str,
) -> None:
    world = await factory.world()
    body = customer_body("Half Written")
    body.update(change)
    response = await client.post("/api/v1/customers", headers=factory.auth(world.admin), json=body)
    assert response.status_code == status, response.text
    assert field in fields(response)
    assert response.json()["errors"][0]["reason"]
    count = await session.scalar(
        select(func.count()).select_from(Customer).where(Customer.name == "Half Written")
    )
    assert count == 0


async def test_a_bad_second_site_leaves_nothing_behind(
    client: AsyncClient, factory: Factory, session: AsyncSession
) -> None:
    world = await factory.world()
    body = customer_body("All Or Nothing")
    body["sites"] = [
        {"address": "good", "lat": 55.78, "lon": 49.12},
        {"address": "bad"},  # no coordinates and no geocoder
    ]
    response = await client.post("/api/v1/customers", headers=factory.auth(world.admin), json=body)
    assert response.status_code == 422
    assert fields(response) == ["sites[1].lat"]
    assert (
        await session.scalar(
            select(func.count()).select_from(Customer).where(Customer.name == "All Or Nothing")
        )
        == 0
    )
    assert (
        await session.scalar(
            select(func.count()).select_from(Contact).where(Contact.name == "All Or Nothing")
        )
        == 0
    )


async def test_non_json_body_is_a_clear_error(client: AsyncClient, factory: Factory) -> None:
    world = await factory.world()
    response = await client.post(
        "/api/v1/customers",
        headers={**factory.auth(world.admin), "content-type": "application/json"},
        content=b"{not json",
    )
    assert response.status_code == 400
    assert fields(response)


async def test_request_body_size_is_limited(client: AsyncClient, factory: Factory) -> None:
    world = await factory.world()
    body = customer_body("Huge")
    body["notes"] = "x" * 2_000_000
    response = await client.post("/api/v1/customers", headers=factory.auth(world.admin), json=body)
    assert response.status_code == 413
    assert response.json()["type"] == "urn:fieldcrm:problem:payload-too-large"


async def test_bad_query_parameters(client: AsyncClient, factory: Factory) -> None:
    world = await factory.world()
    headers = factory.auth(world.admin)
    too_many = await client.get("/api/v1/customers?limit=100000", headers=headers)
    assert too_many.status_code == 400
    assert "limit" in fields(too_many)
    bad_cursor = await client.get("/api/v1/customers?cursor=definitely-not-ours", headers=headers)
    assert bad_cursor.status_code == 422
    assert fields(bad_cursor) == ["cursor"]
    bad_kind = await client.get("/api/v1/customers?kind=alien", headers=headers)
    assert bad_kind.status_code == 400


async def test_unknown_time_zone_and_currency(client: AsyncClient, factory: Factory) -> None:
    world = await factory.world()
    headers = factory.auth(world.admin)
    tz = await client.patch(
        "/api/v1/organization", headers=headers, json={"timeZone": "Mars/Olympus"}
    )
    assert tz.status_code == 422
    assert fields(tz) == ["timeZone"]
    cur = await client.patch("/api/v1/organization", headers=headers, json={"currency": "rubles"})
    assert cur.status_code == 422
    assert fields(cur) == ["currency"]


async def test_interaction_times_need_a_zone(client: AsyncClient, factory: Factory) -> None:
    world = await factory.world()
    headers = factory.auth(world.admin)
    created = await client.post("/api/v1/customers", headers=headers, json=customer_body())
    naive = await client.post(
        f"/api/v1/customers/{created.json()['id']}/interactions",
        headers=headers,
        json={"kind": "call", "occurredAt": "2026-11-24T10:00:00"},
    )
    assert naive.status_code == 422
    assert fields(naive) == ["occurredAt"]


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow], deadline=None)
@given(st.text(max_size=40))
def test_phone_normaliser_returns_e164_or_a_field_error(raw: str) -> None:
    try:
        phone = normalize_phone(raw, "phone", "RU")
    except InvalidInput as exc:
        assert exc.errors[0].field == "phone"
        assert exc.errors[0].reason
    else:
        assert phone.startswith("+")
        assert phone[1:].isdigit()
        assert 8 <= len(phone) <= 16


@settings(
    max_examples=40,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
    deadline=None,
)
@given(
    lat=st.one_of(
        st.floats(allow_nan=True, allow_infinity=True),
        st.text(max_size=5),
        st.none(),
        st.integers(),
    ),
    lon=st.one_of(
        st.floats(allow_nan=True, allow_infinity=True),
        st.text(max_size=5),
        st.none(),
        st.integers(),
    ),
)
async def test_any_coordinates_give_a_site_or_a_clear_refusal(
    client: AsyncClient, factory: Factory, lat: Any, lon: Any
) -> None:
    if not hasattr(factory, "_world"):
        factory._world = await factory.world()  # type: ignore[attr-defined]
        created = await client.post(
            "/api/v1/customers", headers=factory.auth(factory._world.admin), json=customer_body()
        )  # type: ignore[attr-defined]
        factory._customer = created.json()["id"]  # type: ignore[attr-defined]
    headers = factory.auth(factory._world.admin)  # type: ignore[attr-defined]
    body: dict[str, Any] = {"address": "Somewhere"}
    for key, value in (("lat", lat), ("lon", lon)):
        if value is not None:
            body[key] = (
                value if not (isinstance(value, float) and not math.isfinite(value)) else str(value)
            )
    response = await client.post(
        f"/api/v1/customers/{factory._customer}/sites", headers=headers, json=body
    )  # type: ignore[attr-defined]
    assert response.status_code in (201, 400, 422), response.text
    if response.status_code == 201:
        site = response.json()
        assert -90 <= site["lat"] <= 90
        assert -180 <= site["lon"] <= 180
        assert site["lat"] == pytest.approx(float(lat))
        assert site["lon"] == pytest.approx(float(lon))
    else:
        assert set(fields(response)) & {"lat", "lon"}
