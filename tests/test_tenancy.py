"""Tenancy and visibility: nothing of another organisation is visible or changeable (404, so ids
leak nothing); field staff see their own work, managers their teams', admins everything."""

from __future__ import annotations

from typing import Any

import pytest
from httpx import AsyncClient

from tests.conftest import Factory, World, customer_body


async def _customer(
    client: AsyncClient, factory: Factory, world: World, owner: Any, name: str
) -> dict[str, Any]:
    response = await client.post(
        "/api/v1/customers",
        headers=factory.auth(world.admin),
        json=customer_body(name, owner_id=owner.id),
    )
    assert response.status_code == 201, response.text
    body: dict[str, Any] = response.json()
    return body


async def _foreign_ids(client: AsyncClient, factory: Factory) -> dict[str, str]:
    """Every kind of resource, created in organisation B."""
    other = await factory.world("Other Org")
    customer = await _customer(client, factory, other, other.manager_a, "Foreign Customer")
    headers = factory.auth(other.admin)
    note = await client.post(
        f"/api/v1/customers/{customer['id']}/interactions",
        headers=headers,
        json={"kind": "note", "body": "secret"},
    )
    assert note.status_code == 201
    return {
        "customer": customer["id"],
        "contact": customer["contacts"][0]["id"],
        "site": customer["sites"][0]["id"],
        "user": str(other.installer_a.id),
        "team": str(other.team_a.id),
    }


CROSS_ORG_REQUESTS = [
    ("GET", "/api/v1/customers/{customer}", None),
    ("PATCH", "/api/v1/customers/{customer}", {"name": "Hijacked"}),
    ("DELETE", "/api/v1/customers/{customer}", None),
    ("POST", "/api/v1/customers/{customer}/contacts", {"name": "Spy", "phone": "+79120000000"}),
    ("PATCH", "/api/v1/customers/{customer}/contacts/{contact}", {"name": "Spy"}),
    ("DELETE", "/api/v1/customers/{customer}/contacts/{contact}", None),
    ("POST", "/api/v1/customers/{customer}/sites", {"address": "x", "lat": 1.0, "lon": 1.0}),
    ("PATCH", "/api/v1/customers/{customer}/sites/{site}", {"address": "moved"}),
    ("DELETE", "/api/v1/customers/{customer}/sites/{site}", None),
    ("GET", "/api/v1/customers/{customer}/interactions", None),
    ("POST", "/api/v1/customers/{customer}/interactions", {"kind": "note", "body": "x"}),
    ("GET", "/api/v1/users/{user}", None),
    ("PATCH", "/api/v1/users/{user}", {"fullName": "Hijacked"}),
    ("GET", "/api/v1/teams/{team}", None),
    ("PATCH", "/api/v1/teams/{team}", {"name": "Hijacked"}),
]


@pytest.mark.parametrize(("method", "template", "body"), CROSS_ORG_REQUESTS)
async def test_other_organisations_resources_are_not_found(
    client: AsyncClient, factory: Factory, method: str, template: str, body: dict[str, Any] | None
) -> None:
    ids = await _foreign_ids(client, factory)
    mine = await factory.world("My Org")
    response = await client.request(
        method, template.format(**ids), headers=factory.auth(mine.admin), json=body
    )
    assert response.status_code == 404, response.text
    assert response.json()["type"] == "urn:fieldcrm:problem:not-found"
    # And nothing changed over there.
    check = await client.get(
        f"/api/v1/customers/{ids['customer']}", headers=factory.auth(mine.admin)
    )
    assert check.status_code == 404


async def test_other_organisations_rows_never_appear_in_lists(
    client: AsyncClient, factory: Factory
) -> None:
    ids = await _foreign_ids(client, factory)
    mine = await factory.world("My Org")
    headers = factory.auth(mine.admin)
    customers = (await client.get("/api/v1/customers?q=Foreign", headers=headers)).json()
    assert customers["items"] == []
    users = (await client.get("/api/v1/users?limit=200", headers=headers)).json()["items"]
    assert ids["user"] not in {u["id"] for u in users}
    assert all(u["email"].endswith("@example.test") for u in users)
    teams = (await client.get("/api/v1/teams", headers=headers)).json()["items"]
    assert ids["team"] not in {t["id"] for t in teams}
    assert len(teams) == 2


async def test_cannot_assign_a_customer_to_another_organisations_user(
    client: AsyncClient, factory: Factory
) -> None:
    other = await factory.world("Other Org")
    mine = await factory.world("My Org")
    response = await client.post(
        "/api/v1/customers",
        headers=factory.auth(mine.admin),
        json=customer_body(owner_id=other.manager_a.id),
    )
    assert response.status_code == 422
    assert response.json()["errors"][0]["field"] == "ownerId"


async def test_cannot_put_another_organisations_user_in_a_team(
    client: AsyncClient, factory: Factory
) -> None:
    other = await factory.world("Other Org")
    mine = await factory.world("My Org")
    response = await client.patch(
        f"/api/v1/teams/{mine.team_a.id}",
        headers=factory.auth(mine.admin),
        json={"memberIds": [str(other.installer_a.id)]},
    )
    assert response.status_code == 422
    assert response.json()["errors"][0]["field"] == "memberIds"


async def test_field_staff_see_only_their_own_customers(
    client: AsyncClient, factory: Factory
) -> None:
    world = await factory.world()
    own = await _customer(client, factory, world, world.installer_a, "Own Customer")
    other = await _customer(client, factory, world, world.installer_b, "Colleague Customer")
    headers = factory.auth(world.installer_a)
    listed = (await client.get("/api/v1/customers", headers=headers)).json()["items"]
    assert [c["name"] for c in listed] == ["Own Customer"]
    assert (await client.get(f"/api/v1/customers/{own['id']}", headers=headers)).status_code == 200
    assert (
        await client.get(f"/api/v1/customers/{other['id']}", headers=headers)
    ).status_code == 404
    patch = await client.patch(
        f"/api/v1/customers/{other['id']}", headers=headers, json={"name": "x"}
    )
    assert patch.status_code == 404


async def test_managers_see_their_teams_customers_only(
    client: AsyncClient, factory: Factory
) -> None:
    world = await factory.world()
    await _customer(client, factory, world, world.measurer_a, "Team A Measurer Customer")
    await _customer(client, factory, world, world.manager_a, "Manager A Customer")
    b = await _customer(client, factory, world, world.installer_b, "Team B Customer")
    listed = (await client.get("/api/v1/customers", headers=factory.auth(world.manager_a))).json()[
        "items"
    ]
    assert sorted(c["name"] for c in listed) == ["Manager A Customer", "Team A Measurer Customer"]
    assert (
        await client.get(f"/api/v1/customers/{b['id']}", headers=factory.auth(world.manager_a))
    ).status_code == 404
    everything = (await client.get("/api/v1/customers", headers=factory.auth(world.admin))).json()[
        "items"
    ]
    assert len(everything) == 3


async def test_manager_reassigns_within_the_team_but_not_outside(
    client: AsyncClient, factory: Factory
) -> None:
    world = await factory.world()
    customer = await _customer(client, factory, world, world.measurer_a, "Moving Customer")
    headers = factory.auth(world.manager_a)
    inside = await client.patch(
        f"/api/v1/customers/{customer['id']}",
        headers=headers,
        json={"ownerId": str(world.installer_a.id)},
    )
    assert inside.status_code == 200
    assert inside.json()["ownerId"] == str(world.installer_a.id)
    outside = await client.patch(
        f"/api/v1/customers/{customer['id']}",
        headers=headers,
        json={"ownerId": str(world.installer_b.id)},
    )
    assert outside.status_code == 422
    field = await client.patch(
        f"/api/v1/customers/{customer['id']}",
        headers=factory.auth(world.installer_a),
        json={"ownerId": str(world.measurer_a.id)},
    )
    assert field.status_code == 403


async def test_user_visibility_by_role(client: AsyncClient, factory: Factory) -> None:
    world = await factory.world()

    async def names(user: Any) -> list[str]:
        response = await client.get("/api/v1/users", headers=factory.auth(user))
        assert response.status_code == 200
        return sorted(u["fullName"] for u in response.json()["items"])

    assert await names(world.installer_a) == ["Igor Installer"]
    assert await names(world.manager_a) == ["Igor Installer", "Mark Manager", "Max Measurer"]
    assert len(await names(world.admin)) == 6
    hidden = await client.get(
        f"/api/v1/users/{world.installer_b.id}", headers=factory.auth(world.manager_a)
    )
    assert hidden.status_code == 404


async def test_team_visibility_by_role(client: AsyncClient, factory: Factory) -> None:
    world = await factory.world()
    for user, expected in (
        (world.admin, ["Team A", "Team B"]),
        (world.manager_b, ["Team B"]),
        (world.installer_a, ["Team A"]),
    ):
        teams = (await client.get("/api/v1/teams", headers=factory.auth(user))).json()["items"]
        assert [t["name"] for t in teams] == expected


async def test_field_staff_cannot_delete_customers(client: AsyncClient, factory: Factory) -> None:
    world = await factory.world()
    customer = await _customer(client, factory, world, world.installer_a, "Keep Me")
    response = await client.delete(
        f"/api/v1/customers/{customer['id']}", headers=factory.auth(world.installer_a)
    )
    assert response.status_code == 403
    assert (
        await client.get(f"/api/v1/customers/{customer['id']}", headers=factory.auth(world.admin))
    ).status_code == 200


async def test_only_admins_change_the_organisation(client: AsyncClient, factory: Factory) -> None:
    world = await factory.world()
    denied = await client.patch(
        "/api/v1/organization", headers=factory.auth(world.manager_a), json={"name": "X"}
    )
    assert denied.status_code == 403
    changed = await client.patch(
        "/api/v1/organization",
        headers=factory.auth(world.admin),
        json={
            "timeZone": "Asia/Yekaterinburg",
            "paymentDetails": {"recipient": "Acme", "bic": "044525225"},
        },
    )
    assert changed.status_code == 200
    assert changed.json()["timeZone"] == "Asia/Yekaterinburg"
    assert changed.json()["paymentDetails"]["bic"] == "044525225"
    seen = await client.get("/api/v1/organization", headers=factory.auth(world.installer_a))
    assert seen.json()["paymentDetails"]["recipient"] == "Acme"
