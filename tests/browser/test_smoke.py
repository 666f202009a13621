"""The browser harness itself: the app answers a real Chromium, and a login lands on a page."""

from __future__ import annotations

import re

from playwright.async_api import BrowserContext, expect

from tests.browser.conftest import BrowserWorld
from tests.browser.helpers import login, screenshot


async def test_a_manager_logs_in_and_sees_the_customers(
    desktop: BrowserContext, bworld: BrowserWorld
) -> None:
    page = await desktop.new_page()
    await login(page, bworld.manager.email)
    await page.goto("/customers")
    await expect(page.get_by_text("Petrov Ivan").first).to_be_visible()
    path = await screenshot(page, "customers")
    assert path.stat().st_size > 10_000


async def test_a_wrong_password_keeps_the_login_form_with_its_message(
    phone: BrowserContext, bworld: BrowserWorld
) -> None:
    page = await phone.new_page()
    await page.goto("/login")
    await page.get_by_label("Email").fill(bworld.measurer.email)
    await page.get_by_label("Password").fill("not-the-password")
    await page.get_by_role("button", name="Log in").click()
    await expect(page).to_have_url(re.compile(r"/login"))
    await expect(page.get_by_label("Password")).to_be_visible()
    await screenshot(page, "login-refused")
