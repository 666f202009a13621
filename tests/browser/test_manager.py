"""The manager's screens in Chromium: the live map follows pings sent by a worker's phone (its
bearer token, through the server-sent events of /map/stream), a deal moves on the board (a
refused move shows the stage rule on the card), plan-the-day previews and applies, and every
page is photographed at 390×844 and 1280×800."""

from __future__ import annotations

import re
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from playwright.async_api import BrowserContext, Page, expect
from sqlalchemy import select, update

from backend.sales.models import Deal
from backend.tasks.models import Task
from tests.browser.conftest import BrowserWorld, LiveServer
from tests.browser.helpers import login, screenshot

MOSCOW = ZoneInfo("Europe/Moscow")
START = (55.7887, 49.1221)
MOVED = (55.7961, 49.1064)


async def _shift_and_ping(live: LiveServer, world: BrowserWorld, at: tuple[float, float]) -> None:
    """The measurer's phone: a shift, then a fix at ``at``."""
    async with live.api(world.measurer) as api:
        started = await api.post("/api/v1/tracking/shifts/start")
        assert started.status_code in (201, 409), started.text
        await _ping(api, at)


async def _ping(api: Any, at: tuple[float, float]) -> None:
    point = {
        "timestamp": datetime.now(UTC).isoformat(),
        "lat": at[0],
        "lon": at[1],
        "accuracy": 6.0,
        "speed": 9.0,
        "battery": 64.0,
    }
    sent = await api.post("/api/v1/tracking/pings", json={"points": [point]})
    assert sent.status_code == 200, sent.text
    assert sent.json()["accepted"] == 1, sent.text


async def _deal(live: LiveServer, world: BrowserWorld, title: str) -> str:
    async with live.api(world.manager) as api:
        customer = (await api.get(f"/api/v1/customers/{world.customer_id}")).json()
        made = await api.post(
            "/api/v1/deals",
            json={
                "customerId": str(world.customer_id),
                "siteId": customer["sites"][0]["id"],
                "title": title,
            },
        )
        assert made.status_code == 201, made.text
        deal_id: str = made.json()["deal"]["id"]
        return deal_id


def _tomorrow() -> datetime:
    """09:00 tomorrow in Moscow."""
    day = datetime.now(MOSCOW).date() + timedelta(days=1)
    return datetime(day.year, day.month, day.day, 9, tzinfo=MOSCOW)


async def _unassigned_visit(live: LiveServer, world: BrowserWorld) -> uuid.UUID:
    """An open measurement tomorrow nobody is assigned to."""
    starts = _tomorrow()
    async with live.api(world.manager) as api:
        customer = (await api.get(f"/api/v1/customers/{world.customer_id}")).json()
        made = await api.post(
            "/api/v1/tasks",
            json={
                "kind": "measurement",
                "title": "Measure the bay window",
                "customerId": str(world.customer_id),
                "siteId": customer["sites"][0]["id"],
                "windowStart": starts.isoformat(),
                "windowEnd": (starts + timedelta(hours=9)).isoformat(),
            },
        )
        assert made.status_code == 201, made.text
        task_id = uuid.UUID(made.json()["id"])
    async with live.sessionmaker() as session, session.begin():
        await session.execute(update(Task).where(Task.id == task_id).values(assignee_id=None))
    return task_id


async def _marker(page: Page, user_id: uuid.UUID) -> Any:
    return page.locator(f'.leaflet-marker-icon[data-user="{user_id}"]')


async def test_the_live_map_follows_the_workers_pings(
    desktop: BrowserContext, live: LiveServer, bworld: BrowserWorld
) -> None:
    await _shift_and_ping(live, bworld, START)
    page = await desktop.new_page()
    await login(page, bworld.manager.email)
    await page.goto("/map")
    marker = await _marker(page, bworld.measurer.id)
    await expect(marker).to_have_attribute("data-lat", f"{START[0]:.6f}")
    await expect(marker).to_contain_text("Igor")
    await expect(page.locator("#map")).to_have_attribute("data-live", "on")
    await screenshot(page, "map")

    async with live.api(bworld.measurer) as api:
        await _ping(api, MOVED)
    await expect(marker).to_have_attribute("data-lat", f"{MOVED[0]:.6f}", timeout=15_000)
    await expect(marker).to_have_attribute("data-lon", f"{MOVED[1]:.6f}")
    row = page.locator(f'#workers li[data-user="{bworld.measurer.id}"]')
    await expect(row.locator(".seen")).to_have_text("just now")

    await row.get_by_role("button", name="Igor Measurer").click()
    await expect(page.locator("#detail")).to_be_visible()
    await expect(page.locator("#detail-name")).to_have_text("Igor Measurer")
    await expect(page.locator("#detail-sum")).to_contain_text("km driven today")
    await screenshot(page, "map-selected")


async def test_a_deal_moves_on_the_board_and_a_refused_move_shows_the_rule(
    desktop: BrowserContext, live: LiveServer, bworld: BrowserWorld
) -> None:
    deal_id = await _deal(live, bworld, "Balcony glazing")
    measurements = bworld.pipeline.stages["measurements"]
    page = await desktop.new_page()
    await login(page, bworld.manager.email)
    await page.goto("/deals")
    card = page.locator(f"#deal-{deal_id}")
    await card.get_by_label("Move to").select_option(str(measurements.id))
    await card.get_by_role("button", name="Move").click()
    alert = page.locator(f"#deal-{deal_id} [role=alert]")
    await expect(alert).to_contain_text("a date and time for the visit")
    await screenshot(page, "deals-refused")

    # The visit gets a time on the deal card; then the board's move goes through.
    await page.locator(f"#deal-{deal_id}").get_by_role("link", name="Open the deal").click()
    await page.wait_for_url(re.compile(f"/deals/{deal_id}"))
    starts = _tomorrow() + timedelta(hours=1)
    await page.get_by_label("Stage", exact=True).select_option(str(measurements.id))
    await page.get_by_label("Visit from").fill(starts.strftime("%Y-%m-%dT%H:%M"))
    await page.get_by_label("Visit until").fill(
        (starts + timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M")
    )
    await page.locator("#move").get_by_role("button", name="Move").click()
    await page.wait_for_url(re.compile(f"/deals/{deal_id}$"))
    await expect(page.locator("h1")).to_contain_text(measurements.name)
    await screenshot(page, "deal-card")

    # Back on the board, the card sits in the Measurements column; Payment is refused there
    # (its rule names the stage it comes from), First call is allowed: the card moves column.
    await page.goto("/deals")
    column = page.locator(f'section[aria-labelledby="stage-{measurements.id}"]')
    await expect(column.locator(f"#deal-{deal_id}")).to_be_visible()
    card = page.locator(f"#deal-{deal_id}")
    await card.get_by_label("Move to").select_option(str(bworld.pipeline.stages["payment"].id))
    await card.get_by_role("button", name="Move").click()
    await expect(page.locator(f"#deal-{deal_id} [role=alert]")).to_contain_text(
        "can be reached only from"
    )
    first_call = bworld.pipeline.stages["first_call"]
    card = page.locator(f"#deal-{deal_id}")
    await card.get_by_label("Move to").select_option(str(first_call.id))
    await card.get_by_role("button", name="Move").click()
    back = page.locator(f'section[aria-labelledby="stage-{first_call.id}"] #deal-{deal_id}')
    await expect(back).to_be_visible()
    await expect(page.locator(f"#deal-{deal_id} [role=alert]")).to_have_count(0)
    await screenshot(page, "deals-moved")
    async with live.sessionmaker() as session:
        row = await session.scalar(select(Deal).where(Deal.id == uuid.UUID(deal_id)))
        assert row is not None
        assert row.stage_id == first_call.id
        assert row.scheduled_start == starts


async def test_plan_the_day_previews_and_applies(
    desktop: BrowserContext, live: LiveServer, bworld: BrowserWorld
) -> None:
    task_id = await _unassigned_visit(live, bworld)
    page = await desktop.new_page()
    await login(page, bworld.manager.email)
    await page.goto("/dispatch")
    await page.get_by_label("Date").fill(_tomorrow().date().isoformat())
    await page.get_by_role("button", name="Preview").click()
    plan = page.locator("#plan")
    await expect(plan).to_have_attribute("data-status", "preview")
    await expect(plan.locator(f'li[data-task="{task_id}"]')).to_contain_text("Measure the bay")
    await expect(plan.locator(f'.route[data-user="{bworld.measurer.id}"]')).to_be_visible()
    await screenshot(page, "dispatch-preview")
    await page.get_by_role("button", name=re.compile("Apply")).click()
    await expect(page.locator("#plan")).to_have_attribute("data-status", "applied")
    await expect(page.get_by_role("status")).to_contain_text("1 visits assigned")
    async with live.sessionmaker() as session:
        task = await session.get(Task, task_id)
        assert task is not None
        assert task.assignee_id == bworld.measurer.id


async def test_every_manager_page_at_phone_and_desktop_size(
    phone: BrowserContext, desktop: BrowserContext, live: LiveServer, bworld: BrowserWorld
) -> None:
    await _shift_and_ping(live, bworld, START)
    deal_id = await _deal(live, bworld, "Three windows")
    await _unassigned_visit(live, bworld)
    for context in (phone, desktop):
        page = await context.new_page()
        await login(page, bworld.manager.email)
        for path, name, ready in (
            ("/team", "team", "Igor Measurer"),
            ("/map", "map", "Igor Measurer"),
            ("/deals", "deals", "Three windows"),
            (f"/deals/{deal_id}", "deal-card", "Stage history"),
            ("/tasks", "tasks", "Measure the bay window"),
            ("/dispatch", "dispatch", "Plan the day"),
            (f"/customers/{bworld.customer_id}", "customer-card", "Petrov Ivan"),
        ):
            response = await page.goto(path)
            assert response is not None
            assert response.status == 200, path
            await expect(page.get_by_text(ready).first).to_be_visible()
            if name in ("map", "customer-card"):
                await expect(page.locator(".leaflet-marker-icon").first).to_be_visible()
            width = await page.evaluate("document.documentElement.scrollWidth")
            assert width <= (page.viewport_size or {"width": 0})["width"] + 1, (path, width)
            await screenshot(page, name)
        await page.close()
