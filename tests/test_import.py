"""CSV import: valid rows are imported whole, refused rows are reported by number and field."""

from __future__ import annotations

from httpx import AsyncClient

from tests.conftest import Factory

CSV = """name,kind,phone,email,address,lat,lon,owner_email
Ivanov Petr,person,8 912 345-67-89,petr@example.ru,"Kazan, Bauman St 1",55.7887,49.1221,
OOO Okna,company,+7 843 200-00-01,,"Kazan, Pushkin St 5",55.79,49.13,{owner}
Bad Phone,person,12345,,"Kazan",55.7,49.1,
Bad Lat,person,+7 903 111-22-33,,"Kazan",95,49.1,
,person,+7 903 111-22-34,,,,,
Unknown Owner,person,+7 903 111-22-35,,,,,nobody@example.test
Half Site,person,+7 903 111-22-36,,"No coordinates",,,
"""


async def test_import_reports_each_bad_row_and_keeps_the_good(
    client: AsyncClient, factory: Factory
) -> None:
    world = await factory.world()
    headers = {**factory.auth(world.admin), "content-type": "text/csv"}
    data = CSV.format(owner=world.installer_a.email).encode()

    dry = await client.post("/api/v1/customers/import?dryRun=true", headers=headers, content=data)
    assert dry.status_code == 200, dry.text
    assert dry.json()["dryRun"] is True
    assert dry.json()["imported"] == 2
    listed = await client.get("/api/v1/customers", headers=factory.auth(world.admin))
    assert listed.json()["items"] == []  # a dry run writes nothing

    result = await client.post("/api/v1/customers/import", headers=headers, content=data)
    assert result.status_code == 200
    body = result.json()
    assert (body["totalRows"], body["imported"]) == (7, 2)
    assert {(e["row"], e["field"]) for e in body["errors"]} == {
        (4, "phone"),
        (5, "lat"),
        (6, "name"),
        (7, "owner_email"),
        (8, "lat"),
    }
    names = sorted(
        c["name"]
        for c in (await client.get("/api/v1/customers", headers=factory.auth(world.admin))).json()[
            "items"
        ]
    )
    assert names == ["Ivanov Petr", "OOO Okna"]
    # The owner column was honoured: the installer sees the company.
    own = (await client.get("/api/v1/customers", headers=factory.auth(world.installer_a))).json()[
        "items"
    ]
    assert [c["name"] for c in own] == ["OOO Okna"]


async def test_import_refuses_unknown_columns_and_non_utf8(
    client: AsyncClient, factory: Factory
) -> None:
    world = await factory.world()
    headers = {**factory.auth(world.admin), "content-type": "text/csv"}
    unknown = await client.post(
        "/api/v1/customers/import", headers=headers, content=b"name,salary\nA,1\n"
    )
    assert unknown.status_code == 422
    assert unknown.json()["errors"] == [{"field": "header", "reason": "unknown columns: salary"}]
    latin = await client.post(
        "/api/v1/customers/import", headers=headers, content="name\nJos\xe9\n".encode("latin-1")
    )
    assert latin.status_code == 422
    assert latin.json()["errors"][0]["field"] == "body"


async def test_field_staff_import_customers_for_themselves(
    client: AsyncClient, factory: Factory
) -> None:
    world = await factory.world()
    headers = {**factory.auth(world.installer_a), "content-type": "text/csv"}
    data = (
        "name,phone,owner_email\n"
        "Mine,+7 912 000-00-09,\n"
        f"Theirs,+7 912 000-00-08,{world.installer_b.email}\n"
    )
    body = (
        await client.post("/api/v1/customers/import", headers=headers, content=data.encode())
    ).json()
    assert body["imported"] == 1
    assert body["errors"] == [
        {"row": 3, "field": "owner_email", "reason": "you cannot assign customers to this user"}
    ]
