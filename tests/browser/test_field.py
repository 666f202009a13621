"""The field worker's phone client in a real Chromium: a visit done in three taps plus the
outcome (with a photo), the offline queue replayed once when the network is back, and
screenshots of /today and /visits/{id} on a phone and a desktop."""

from __future__ import annotations

import uuid
import zlib
from datetime import UTC, datetime, timedelta
from pathlib import Path

from playwright.async_api import BrowserContext, Page, expect
from sqlalchemy import func, select

from backend.documents.models import Attachment
from backend.tasks.models import Task, TaskStatus
from backend.tracking.models import CheckIn, CheckKind
from tests.browser.conftest import BrowserWorld, LiveServer
from tests.browser.helpers import login, screenshot

AT_SITE = {"latitude": 55.7887, "longitude": 49.1221, "accuracy": 8}  # the customer's site


def _png() -> bytes:
    def chunk(kind: bytes, data: bytes) -> bytes:
        body = kind + data
        return len(data).to_bytes(4, "big") + body + zlib.crc32(body).to_bytes(4, "big")

    header = (2).to_bytes(4, "big") * 2 + bytes([8, 2, 0, 0, 0])
    rows = b"".join(b"\x00" + b"\x1f\x6f\xeb" * 2 for _ in range(2))
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(rows))
        + chunk(b"IEND", b"")
    )


async def booked_measurement(live: LiveServer, world: BrowserWorld) -> uuid.UUID:
    """The manager books a measurement: the stage automation gives it to the measurer."""
    async with live.api(world.manager) as api:
        customer = (await api.get(f"/api/v1/customers/{world.customer_id}")).json()
        deal = await api.post(
            "/api/v1/deals",
            json={
                "customerId": str(world.customer_id),
                "siteId": customer["sites"][0]["id"],
                "title": "Three windows",
            },
        )
        assert deal.status_code == 201, deal.text
        starts = datetime.now(UTC).replace(microsecond=0) + timedelta(minutes=30)
        moved = await api.post(
            f"/api/v1/deals/{deal.json()['deal']['id']}/stage",
            json={
                "stageId": str(world.pipeline.stages["measurements"].id),
                "scheduledStart": starts.isoformat(),
                "scheduledEnd": (starts + timedelta(hours=1)).isoformat(),
            },
        )
        assert moved.status_code == 200, moved.text
        tasks = moved.json()["tasks"]
        assert [t["assigneeId"] for t in tasks] == [str(world.measurer.id)]
        return uuid.UUID(tasks[0]["id"])


async def checks(live: LiveServer, task_id: uuid.UUID) -> list[tuple[CheckKind, str | None]]:
    async with live.sessionmaker() as session:
        rows = await session.execute(
            select(CheckIn.kind, CheckIn.outcome).where(CheckIn.task_id == task_id)
        )
        return [(r[0], r[1]) for r in rows.all()]


async def wait_for_fix(page: Page) -> None:
    await expect(page.locator("[data-fix]")).to_contain_text("±8 m")


async def test_a_visit_in_three_taps_with_a_photo_and_the_outcome(
    phone: BrowserContext, live: LiveServer, bworld: BrowserWorld, tmp_path: Path
) -> None:
    task_id = await booked_measurement(live, bworld)
    await phone.set_geolocation(AT_SITE)
    page = await phone.new_page()
    await login(page, bworld.measurer.email)
    await page.goto("/today")
    await expect(page.get_by_text("1 to go", exact=True)).to_be_visible()
    await expect(page.get_by_role("link", name="Call Petrov Ivan")).to_have_attribute(
        "href", "tel:+79123456789"
    )
    await screenshot(page, "field-today")

    await page.locator(f'a.title[href="/visits/{task_id}"]').tap()  # tap 1
    await expect(page.locator(".access")).to_contain_text("gate code 12")
    await wait_for_fix(page)
    await expect(page.locator("[data-fix]")).to_contain_text("m from the site")
    await screenshot(page, "field-visit")
    await page.get_by_role("button", name="Check in").tap()  # tap 2
    await expect(page.locator(".checked")).to_contain_text("verified")

    photo = tmp_path / "window.png"
    photo.write_bytes(_png())
    await page.locator("#photos").set_input_files(str(photo))
    await expect(page.locator(".files img")).to_have_count(1)

    await page.get_by_label("Outcome").fill("Measured three windows, 1200x1400")
    await page.get_by_role("button", name="Done & check out").tap()  # tap 3
    await expect(page.locator(".done-note")).to_contain_text("Measured three windows")
    await screenshot(page, "field-visit-done")

    assert await checks(live, task_id) == [
        (CheckKind.IN, None),
        (CheckKind.OUT, "Measured three windows, 1200x1400"),
    ]
    async with live.sessionmaker() as session:
        task = await session.get(Task, task_id)
        assert task is not None
        assert task.status is TaskStatus.DONE
        files = await session.scalar(
            select(func.count()).select_from(Attachment).where(Attachment.task_id == task_id)
        )
        assert files == 1


async def test_made_offline_then_sent_once_when_back_online(
    phone: BrowserContext, live: LiveServer, bworld: BrowserWorld
) -> None:
    task_id = await booked_measurement(live, bworld)
    await phone.set_geolocation(AT_SITE)
    page = await phone.new_page()
    await login(page, bworld.measurer.email)
    await page.goto(f"/visits/{task_id}")
    await wait_for_fix(page)

    await phone.set_offline(True)
    await page.get_by_role("button", name="Check in").tap()
    outbox = page.locator("#outbox")
    await expect(outbox).to_be_visible()
    await expect(outbox.locator("[data-outbox-count]")).to_have_text("1")
    await page.get_by_label("Outcome").fill("Customer away, measured from outside")
    await page.get_by_role("button", name="Done & check out").tap()
    await expect(outbox.locator("[data-outbox-count]")).to_have_text("2")
    await expect(outbox.locator("[data-outbox-list] li")).to_have_count(2)
    await expect(outbox).to_contain_text("Outcome and check-out")
    await screenshot(page, "field-visit-offline")
    assert await checks(live, task_id) == []

    await phone.set_offline(False)
    await expect(outbox).to_be_hidden(timeout=40_000)
    await expect(page.locator(".done-note")).to_contain_text("Customer away")
    assert await checks(live, task_id) == [
        (CheckKind.IN, None),
        (CheckKind.OUT, "Customer away, measured from outside"),
    ]
    # Another look (and another replay attempt) stores nothing more.
    await page.reload()
    await page.evaluate("document.querySelector('[data-outbox-send]').click()")
    await expect(page.locator(".done-note")).to_be_visible()
    assert len(await checks(live, task_id)) == 2


async def test_the_day_and_the_visit_on_a_desktop(
    desktop: BrowserContext, live: LiveServer, bworld: BrowserWorld
) -> None:
    task_id = await booked_measurement(live, bworld)
    await desktop.set_geolocation(AT_SITE)
    page = await desktop.new_page()
    await login(page, bworld.measurer.email)
    await page.goto("/today")
    await expect(page.get_by_role("link", name="Notifications")).to_be_visible()
    await page.get_by_role("button", name="Start shift").click()
    await expect(page.get_by_text("On shift since")).to_be_visible()
    await screenshot(page, "field-today")
    await page.goto(f"/visits/{task_id}")
    await wait_for_fix(page)
    await screenshot(page, "field-visit")
