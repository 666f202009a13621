"""Customers: search by phone, email and name; cursor pages; contacts, sites and the timeline."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from httpx import AsyncClient

from backend.customers.search import QueryKind, SearchQuery, classify
from backend.lib.clock import FrozenClock
from tests.conftest import Factory, customer_body


async def _create(
    client: AsyncClient, headers: dict[str, str], name: str, phone: str, email: str | None = None
) -> dict[str, Any]:
    body = customer_body(name)
    body["contacts"] = [{"name": name, "phone": phone, **({"email": email} if email else {})}]
    response = await client.post("/api/v1/customers", headers=headers, json=body)
    assert response.status_code == 201, response.text
    result: dict[str, Any] = response.json()
    return result


def test_query_classification() -> None:
    assert classify("anna@mail.ru", "RU").kind is QueryKind.EMAIL
    digits = classify("912 34", "RU")
    assert (digits.kind, digits.text, digits.exact_phone) == (QueryKind.PHONE, "91234", False)
    full = classify("8 (912) 345-67-89", "RU")
    assert (full.kind, full.text, full.exact_phone) == (QueryKind.PHONE, "+79123456789", True)
    assert classify("Ivanov", "RU") == classify("  ivanov ", "RU")
    assert classify("+7 9", "RU") == SearchQuery(QueryKind.PHONE, "")  # still typing: no filter
    assert classify("A1", "RU").kind is QueryKind.NAME


async def test_search_by_phone_email_and_name(client: AsyncClient, factory: Factory) -> None:
    world = await factory.world()
    headers = factory.auth(world.admin)
    ivanov = await _create(client, headers, "Ivanov Petr", "+7 912 345-67-89", "petr@example.ru")
    await _create(client, headers, "Petrova Anna", "+7 903 111-22-33", "anna@mail.ru")
    okna = await _create(client, headers, "OOO Okna Plus", "+7 843 200-00-01")

    async def search(q: str) -> list[str]:
        response = await client.get("/api/v1/customers", params={"q": q}, headers=headers)
        assert response.status_code == 200, response.text
        return [c["name"] for c in response.json()["items"]]

    assert await search("345-67") == ["Ivanov Petr"]  # any part of the number
    assert await search("8 912 345 67 89") == ["Ivanov Petr"]  # national format, whole number
    assert await search("+79031112233") == ["Petrova Anna"]
    assert await search("ANNA@mail") == ["Petrova Anna"]
    assert await search("iva") == ["Ivanov Petr"]  # name prefix, any case
    assert await search("okna") == ["OOO Okna Plus"]  # prefix of a later word
    assert await search("petr") == ["Ivanov Petr", "Petrova Anna"]
    assert await search("pe") == ["Petrova Anna"]  # two letters: the start of the name only
    assert await search("vanov") == []  # middle of a word is not a prefix
    assert len(await search("+7 9")) == 3  # a number being typed does not empty the list
    assert await search("100%") == []  # wildcards are literal
    detail = await client.get(f"/api/v1/customers/{okna['id']}", headers=headers)
    assert detail.json()["contacts"][0]["phone"] == "+78432000001"
    listed = (
        await client.get("/api/v1/customers", params={"q": "Ivanov"}, headers=headers)
    ).json()["items"][0]
    assert listed["phones"] == ["+79123456789"]
    assert listed["emails"] == ["petr@example.ru"]
    assert listed["id"] == ivanov["id"]


async def test_contact_changes_update_search(client: AsyncClient, factory: Factory) -> None:
    world = await factory.world()
    headers = factory.auth(world.admin)
    customer = await _create(client, headers, "Sidorov Oleg", "+7 912 000-00-01")
    contact_id = customer["contacts"][0]["id"]
    base = f"/api/v1/customers/{customer['id']}"
    changed = await client.patch(
        f"{base}/contacts/{contact_id}", headers=headers, json={"phone": "+7 999 888-77-66"}
    )
    assert changed.status_code == 200
    added = await client.post(
        f"{base}/contacts", headers=headers, json={"name": "Wife", "email": "Olga@Example.ru"}
    )
    assert added.status_code == 201
    assert added.json()["email"] == "olga@example.ru"

    async def found(q: str) -> bool:
        items = (await client.get("/api/v1/customers", params={"q": q}, headers=headers)).json()[
            "items"
        ]
        return any(c["id"] == customer["id"] for c in items)

    assert await found("888-77")
    assert not await found("000-00-01")
    assert await found("olga@")
    removed = await client.delete(f"{base}/contacts/{added.json()['id']}", headers=headers)
    assert removed.status_code == 204
    assert not await found("olga@")


async def test_cursor_pages_cover_every_customer_once(
    client: AsyncClient, factory: Factory
) -> None:
    world = await factory.world()
    headers = factory.auth(world.admin)
    names = [f"Client {i:02d}" for i in range(23)] + ["client 05"]  # a case-only duplicate
    for i, name in enumerate(names):
        await _create(client, headers, name, f"+7 912 100-{i // 100:02d}-{i % 100:02d}")
    seen: list[str] = []
    cursor = None
    pages = 0
    while True:
        params: dict[str, Any] = {"limit": 5, **({"cursor": cursor} if cursor else {})}
        page = (await client.get("/api/v1/customers", params=params, headers=headers)).json()
        seen += [c["name"] for c in page["items"]]
        pages += 1
        cursor = page.get("nextCursor")
        if not cursor:
            break
    assert pages == 5
    assert sorted(seen) == sorted(names)
    assert len(seen) == len(set(zip(seen, range(len(seen)), strict=True)))
    assert [n.lower() for n in seen] == sorted(n.lower() for n in seen)


async def test_sites_keep_coordinates_longitude_second(
    client: AsyncClient, factory: Factory
) -> None:
    world = await factory.world()
    headers = factory.auth(world.admin)
    customer = await _create(client, headers, "Geo Test", "+7 912 000-00-02")
    base = f"/api/v1/customers/{customer['id']}/sites"
    site = await client.post(
        base,
        headers=headers,
        json={"address": "Kremlin", "lat": 55.7987, "lon": 49.1064, "label": "office"},
    )
    assert site.status_code == 201
    assert (site.json()["lat"], site.json()["lon"]) == (55.7987, 49.1064)
    moved = await client.patch(
        f"{base}/{site.json()['id']}", headers=headers, json={"lat": 55.8, "lon": 49.2}
    )
    assert (moved.json()["lat"], moved.json()["lon"]) == (55.8, 49.2)
    half = await client.patch(f"{base}/{site.json()['id']}", headers=headers, json={"lat": 1.0})
    assert half.status_code == 422
    gone = await client.delete(f"{base}/{site.json()['id']}", headers=headers)
    assert gone.status_code == 204
    detail = (await client.get(f"/api/v1/customers/{customer['id']}", headers=headers)).json()
    assert [s["address"] for s in detail["sites"]] == ["Kazan, Bauman St 1"]


async def test_timeline_newest_first_with_author_and_pages(
    client: AsyncClient, factory: Factory, clock: FrozenClock
) -> None:
    world = await factory.world()
    customer = await _create(client, factory.auth(world.manager_a), "Timeline", "+7 912 000-00-03")
    url = f"/api/v1/customers/{customer['id']}/interactions"
    for i, kind in enumerate(["call", "visit", "note", "email", "call"]):
        clock.advance(timedelta(minutes=5))
        response = await client.post(
            url,
            headers=factory.auth(world.manager_a if i % 2 else world.admin),
            json={"kind": kind, "outcome": f"outcome {i}", "durationS": 60 * i},
        )
        assert response.status_code == 201, response.text
        assert response.json()["occurredAt"] == clock.now().isoformat().replace("+00:00", "Z")
    first = (await client.get(url, params={"limit": 3}, headers=factory.auth(world.admin))).json()
    assert [i["outcome"] for i in first["items"]] == ["outcome 4", "outcome 3", "outcome 2"]
    rest = (
        await client.get(
            url,
            params={"limit": 3, "cursor": first["nextCursor"]},
            headers=factory.auth(world.admin),
        )
    ).json()
    assert [i["outcome"] for i in rest["items"]] == ["outcome 1", "outcome 0"]
    assert rest.get("nextCursor") is None
    assert first["items"][1]["authorId"] == str(world.manager_a.id)
    calls = (
        await client.get(url, params={"kind": "call"}, headers=factory.auth(world.admin))
    ).json()["items"]
    assert len(calls) == 2
    stage = await client.post(url, headers=factory.auth(world.admin), json={"kind": "stage_change"})
    assert stage.status_code == 422


async def test_owner_defaults_to_creator_and_delete_cascades(
    client: AsyncClient, factory: Factory
) -> None:
    world = await factory.world()
    headers = factory.auth(world.manager_a)
    customer = await _create(client, headers, "Mine", "+7 912 000-00-04")
    assert customer["ownerId"] == str(world.manager_a.id)
    assert (
        await client.delete(f"/api/v1/customers/{customer['id']}", headers=headers)
    ).status_code == 204
    assert (
        await client.get(f"/api/v1/customers/{customer['id']}", headers=headers)
    ).status_code == 404
