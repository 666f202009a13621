"""The /reports page: charts and tables for the filters, htmx partials, errors, exports."""

from __future__ import annotations

import csv
import io

import httpx
import pytest
from sqlalchemy.ext.asyncio import AsyncSession

from tests.conftest import Factory, World
from tests.test_reports_data import october
from tests.test_web import login_in_browser

OCTOBER = {"from": "2026-10-01", "to": "2026-10-31"}


@pytest.fixture
async def world(factory: Factory, session: AsyncSession) -> World:
    world = await factory.world()
    await october(session, world)
    return world


async def test_owner_sees_figures_charts_and_tables(
    client: httpx.AsyncClient, world: World
) -> None:
    await login_in_browser(client, world.admin.email)
    page = await client.get("/reports", params=OCTOBER)
    assert page.status_code == 200, page.text
    html = page.text
    assert '<a href="/reports">Reports</a>' in html
    assert html.count('<svg class="chart"') == 6
    assert 'role="img"' in html
    # Headline figures and table cells, formatted.
    assert "210\u202f000.00" in html  # revenue
    assert "75.0 %" in html  # win rate
    assert "Mark Manager" in html
    assert "Igor Installer" in html
    for label in ("From", "To", "Team", "Person", "Pipeline", "Source", "Group by"):
        assert f">{label}</label>" in html
    assert 'name="viewport"' in html


async def test_htmx_gets_the_body_only_and_bad_filters_say_why(
    client: httpx.AsyncClient, world: World
) -> None:
    await login_in_browser(client, world.manager_a.email)
    partial = await client.get("/reports", params=OCTOBER, headers={"hx-request": "true"})
    assert partial.status_code == 200
    assert "<html" not in partial.text
    assert "Mark Manager" in partial.text
    assert "Mona Manager" not in partial.text  # another team's manager
    bad = await client.get(
        "/reports",
        params={"from": "2026-11-01", "to": "2026-10-01"},
        headers={"hx-request": "true"},
    )
    assert bad.status_code == 422
    assert "must not be after to" in bad.text


async def test_page_exports_and_roles(client: httpx.AsyncClient, world: World) -> None:
    await login_in_browser(client, world.admin.email)
    exported = await client.get("/reports/export/sources", params={**OCTOBER, "format": "csv"})
    assert exported.status_code == 200
    rows = list(csv.reader(io.StringIO(exported.content.decode("utf-8-sig"))))
    assert rows[1][:2] == ["1", "phone"]
    book = await client.get("/reports/export/dashboard", params={**OCTOBER, "format": "xlsx"})
    assert book.content[:2] == b"PK"
    assert (await client.get("/reports/export/nonsense")).status_code == 404
    field = httpx.AsyncClient(transport=client._transport, base_url="http://testserver")
    async with field:
        await login_in_browser(field, world.installer_a.email)
        assert (await field.get("/reports")).status_code == 403
