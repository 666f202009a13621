"""The owner's reports, the appraisal pages and the notification centre in a real browser, on a
phone and a desktop: they render, fit the screen, and are photographed for the record."""

from __future__ import annotations

import pytest
from playwright.async_api import BrowserContext, expect

from tests.browser.conftest import BrowserWorld
from tests.browser.helpers import login, screenshot, sideways_scroll

MANAGER_PAGES = {
    "/reports": "Reports",
    "/appraisal": "Appraisal",
    "/notifications": "Notifications",
}
WORKER_PAGES = {
    "/me/scorecard": "scorecard",
    "/notifications": "Notifications",
}


@pytest.mark.parametrize("size", ["phone", "desktop"])
async def test_manager_and_worker_pages_fit_both_screens(
    size: str, phone: BrowserContext, desktop: BrowserContext, bworld: BrowserWorld
) -> None:
    context = phone if size == "phone" else desktop
    page = await context.new_page()
    await login(page, bworld.manager.email)
    for url, heading in MANAGER_PAGES.items():
        answer = await page.goto(url)
        assert answer is not None
        assert answer.status == 200, url
        await expect(page.get_by_role("heading", level=1)).to_contain_text(heading)
        assert await sideways_scroll(page) <= 0, f"{url} scrolls sideways"
        await screenshot(page, url.strip("/").replace("/", "-"))
    await context.clear_cookies()
    await login(page, bworld.measurer.email)
    for url, heading in WORKER_PAGES.items():
        answer = await page.goto(url)
        assert answer is not None
        assert answer.status == 200, url
        await expect(page.get_by_role("heading", level=1)).to_contain_text(heading)
        assert await sideways_scroll(page) <= 0, f"{url} scrolls sideways"
        await screenshot(page, "worker-" + url.strip("/").replace("/", "-"))
