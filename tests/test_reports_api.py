"""The reports' JSON API, CSV/XLSX export, roles and filter validation."""

from __future__ import annotations

import csv
import io
import uuid
import zipfile

import httpx
import pytest
from sqlalchemy.ext.asyncio import AsyncSession

from tests.conftest import Factory, World
from tests.test_reports_data import SalesData, local, october

OCTOBER = {"from": "2026-10-01", "to": "2026-10-31"}
REPORTS = (
    "deals",
    "calls",
    "conversion-by-source",
    "conversion-by-manager",
    "sources",
    "funnel",
    "overdue-tasks",
)


@pytest.fixture
async def world(factory: Factory, session: AsyncSession) -> World:
    world = await factory.world()
    await october(session, world)
    return world


async def get(
    client: httpx.AsyncClient, factory: Factory, world: World, path: str, **params: str
) -> httpx.Response:
    return await client.get(
        f"/api/v1/reports/{path}", params={**OCTOBER, **params}, headers=factory.auth(world.admin)
    )


@pytest.mark.parametrize("name", REPORTS)
async def test_every_report_answers_json_csv_and_xlsx(
    client: httpx.AsyncClient, factory: Factory, world: World, name: str
) -> None:
    answer = await get(client, factory, world, name)
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert body["period"] == {"start": "2026-10-01", "end": "2026-10-31", "days": 31}
    assert body["previous"] == {"start": "2026-08-31", "end": "2026-09-30", "days": 31}
    assert body["timeZone"] == "Europe/Moscow"
    assert body["currency"] == "RUB"
    assert body["columns"]
    assert body["rows"]
    keys = {c["key"] for c in body["columns"]}
    assert all(keys <= set(row) for row in body["rows"])

    as_csv = await get(client, factory, world, name, format="csv")
    assert as_csv.status_code == 200
    assert as_csv.headers["content-type"].startswith("text/csv")
    assert f"{body['name']}-2026-10-01-2026-10-31.csv" in as_csv.headers["content-disposition"]
    lines = list(csv.reader(io.StringIO(as_csv.content.decode("utf-8-sig"))))
    assert lines[0] == [c["label"] for c in body["columns"]]
    assert len(lines) == len(body["rows"]) + 1

    as_xlsx = await get(client, factory, world, name, format="xlsx")
    assert as_xlsx.status_code == 200
    with zipfile.ZipFile(io.BytesIO(as_xlsx.content)) as book:
        sheet = book.read("xl/worksheets/sheet1.xml").decode()
        strings = book.read("xl/sharedStrings.xml").decode()
    assert body["title"] in strings
    assert all(c["label"] in strings for c in body["columns"])
    assert "<f>" not in sheet  # no formulas, only values


async def test_csv_has_the_numbers_and_defuses_formulas(
    client: httpx.AsyncClient, factory: Factory, session: AsyncSession
) -> None:
    world = await factory.world()
    data = await SalesData(session, world.org).setup()
    await data.deal(local(10, 5), world.manager_a, "=HYPERLINK(1)", 1234, [("Won", local(10, 6))])
    await session.commit()
    answer = await get(client, factory, world, "sources", format="csv")
    lines = list(csv.reader(io.StringIO(answer.content.decode("utf-8-sig"))))
    assert lines[1][:5] == ["1", "'=HYPERLINK(1)", "1", "1", "1234.00"]


async def test_dashboard_has_every_report_and_the_headline_figures(
    client: httpx.AsyncClient, factory: Factory, world: World
) -> None:
    answer = await get(client, factory, world, "dashboard")
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert set(body["reports"]) == {
        "deals",
        "calls",
        "conversion_by_source",
        "conversion_by_manager",
        "sources",
        "funnel",
        "overdue_tasks",
    }
    kpis = body["kpis"]
    assert kpis["dealsWon"] == {"current": 3, "previous": 1, "change": 2.0}
    assert kpis["revenue"]["current"] == "210000.00"
    assert kpis["calls"]["current"] == 4
    assert kpis["overdueTasks"]["current"] == 3
    assert kpis["conversion"]["current"] == 0.6
    workbook = await get(client, factory, world, "dashboard", format="xlsx")
    with zipfile.ZipFile(io.BytesIO(workbook.content)) as book:
        sheets = [n for n in book.namelist() if n.startswith("xl/worksheets/sheet")]
    assert len(sheets) == 7
    as_csv = await get(client, factory, world, "dashboard", format="csv")
    assert as_csv.status_code == 422
    assert as_csv.json()["errors"] == [
        {"field": "format", "reason": "the dashboard exports as json or xlsx"}
    ]


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"from": "yesterday"}, "from"),
        ({"to": "2026-13-01"}, "to"),
        ({"from": "2026-11-01", "to": "2026-10-01"}, "from"),
        ({"from": "2020-01-01", "to": "2026-10-01"}, "to"),
        ({"team": "not-an-id"}, "team"),
        ({"team": str(uuid.uuid4())}, "team"),
        ({"person": str(uuid.uuid4())}, "person"),
        ({"pipeline": str(uuid.uuid4())}, "pipeline"),
        ({"interval": "year"}, "interval"),
        ({"format": "pdf"}, "format"),
        ({"source": "x" * 150}, "source"),
    ],
)
async def test_bad_filters_are_422_naming_the_field(
    client: httpx.AsyncClient, factory: Factory, world: World, params: dict[str, str], field: str
) -> None:
    answer = await get(client, factory, world, "deals", **params)
    assert answer.status_code == 422, answer.text
    assert answer.headers["content-type"].startswith("application/problem+json")
    body = answer.json()
    assert body["type"] == "urn:fieldcrm:problem:validation-error"
    assert [e["field"] for e in body["errors"]] == [field]
    assert body["errors"][0]["reason"]


async def test_another_organisations_ids_are_unknown(
    client: httpx.AsyncClient, factory: Factory, world: World
) -> None:
    other = await factory.world("Rival Windows")
    for name, value in (("team", other.team_a.id), ("person", other.manager_a.id)):
        answer = await get(client, factory, world, "deals", **{name: str(value)})
        assert answer.status_code == 422
        assert answer.json()["errors"][0]["field"] == name
    # Nor do the rival's numbers leak into ours.
    rival_view = await client.get(
        "/api/v1/reports/deals", params=OCTOBER, headers=factory.auth(other.admin)
    )
    assert rival_view.json()["totals"]["createdCount"]["current"] == 0


async def test_roles_scope_the_numbers(
    client: httpx.AsyncClient, factory: Factory, world: World
) -> None:
    async def as_user(user: object, path: str, **params: str) -> httpx.Response:
        return await client.get(
            f"/api/v1/reports/{path}",
            params={**OCTOBER, **params},
            headers=factory.auth(user),  # type: ignore[arg-type]
        )

    mark = await as_user(world.manager_a, "conversion-by-manager")
    assert [r["person"] for r in mark.json()["rows"]] == ["Mark Manager"]
    own_team = await as_user(world.manager_a, "overdue-tasks", team=str(world.team_a.id))
    assert [r["person"] for r in own_team.json()["rows"]] == ["Igor Installer"]
    other_team = await as_user(world.manager_a, "overdue-tasks", team=str(world.team_b.id))
    assert other_team.status_code == 403
    other_person = await as_user(world.manager_a, "calls", person=str(world.manager_b.id))
    assert other_person.status_code == 403
    igor = await as_user(world.installer_a, "overdue-tasks")
    assert [r["person"] for r in igor.json()["rows"]] == ["Igor Installer"]
    assert (await as_user(world.installer_a, "calls", team=str(world.team_a.id))).status_code == 403
    boss = await as_user(world.installer_a, "deals", person=str(world.manager_a.id))
    assert boss.status_code == 403
    assert (await client.get("/api/v1/reports/deals")).status_code == 401


async def test_default_period_is_the_last_30_days(
    client: httpx.AsyncClient, factory: Factory, world: World
) -> None:
    answer = await client.get("/api/v1/reports/deals", headers=factory.auth(world.admin))
    assert answer.json()["period"] == {"start": "2026-10-26", "end": "2026-11-24", "days": 30}
    assert answer.json()["columns"][0]["label"] == "Day starting"
