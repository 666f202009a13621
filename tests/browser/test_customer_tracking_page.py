"""The customer's tracking page in a real browser (phone size): the worker's first name, the ETA
and a Leaflet marker on a plain background when no tiles are configured, nothing fetched from
other sites; after check-in it says the worker has arrived and shows no map."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

from playwright.async_api import BrowserContext, expect
from sqlalchemy import select

from backend.notifications.models import OutboxMessage
from tests.browser.conftest import BrowserWorld, LiveServer
from tests.browser.helpers import screenshot
from tests.test_customer_messages import token_in


async def test_the_customer_follows_the_worker_on_a_phone(
    phone: BrowserContext, bworld: BrowserWorld, live: LiveServer
) -> None:
    now = datetime.now(UTC)
    async with live.api(bworld.admin) as admin:
        customer = (await admin.get(f"/api/v1/customers/{bworld.customer_id}")).json()
        made = await admin.post(
            "/api/v1/tasks",
            json={
                "kind": "measurement",
                "title": "Measure the windows",
                "customerId": str(bworld.customer_id),
                "siteId": customer["sites"][0]["id"],
                "assigneeId": str(bworld.measurer.id),
                "windowStart": (now + timedelta(hours=1)).isoformat(),
                "windowEnd": (now + timedelta(hours=3)).isoformat(),
            },
        )
        assert made.status_code == 201, made.text
    task_id = made.json()["id"]
    site = customer["sites"][0]
    async with live.api(bworld.measurer) as worker:
        assert (await worker.post("/api/v1/tracking/shifts/start")).status_code == 201
        point = {
            "timestamp": datetime.now(UTC).isoformat(),  # inside the shift just started
            "lat": site["lat"] + 0.01,
            "lon": site["lon"] - 0.02,
            "accuracy": 8.0,
            "speed": 12.0,
        }
        pinged = await worker.post("/api/v1/tracking/pings", json={"points": [point]})
        assert pinged.status_code == 200, pinged.text
        said = await worker.post(f"/api/v1/tasks/{task_id}/on-my-way", json={"etaMinutes": 20})
        assert said.json()["status"] == "queued", said.text
    async with live.sessionmaker() as session:
        row = await session.scalar(
            select(OutboxMessage).where(
                OutboxMessage.organization_id == bworld.org.id,
                OutboxMessage.dedupe_key.like("customer:on_my_way:%"),
            )
        )
    assert row is not None
    token = token_in(row.payload["text"], "t")

    page = await phone.new_page()
    requested: list[str] = []
    page.on("request", lambda request: requested.append(request.url))
    await page.goto(f"/t/{token}")
    await expect(page.get_by_text("Igor is on the way")).to_be_visible()
    moscow = (now + timedelta(minutes=20)).astimezone(ZoneInfo("Europe/Moscow"))
    await expect(page.locator("#eta")).to_have_text(moscow.strftime("%H:%M"))
    # The worker's dot and the customer's own address, on a plain background (no tiles).
    await expect(page.locator("#map .leaflet-interactive")).to_have_count(2)
    assert "Measurer" not in await page.content()
    width = await page.evaluate("document.documentElement.scrollWidth")
    assert width <= 390
    assert all(url.startswith(live.url) for url in requested), requested
    live_data = await page.evaluate(f"fetch('/t/{token}/position').then(r => r.json())")
    assert live_data["status"] == "en_route"
    await screenshot(page, "customer-tracking")

    async with live.api(bworld.measurer) as worker:
        checked = await worker.post(
            f"/api/v1/tasks/{task_id}/check-in",
            json={"lat": site["lat"], "lon": site["lon"], "accuracy": 6.0},
        )
        assert checked.status_code == 201, checked.text
    await page.reload()
    await expect(page.get_by_text("Igor has arrived.")).to_be_visible()
    await expect(page.locator("#map")).to_have_count(0)
