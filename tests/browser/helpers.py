"""What browser tests do again and again: log in, take a screenshot."""

from __future__ import annotations

import re
from pathlib import Path

from playwright.async_api import Page

from tests.conftest import PASSWORD

SCREENSHOTS = Path(__file__).resolve().parents[2] / "test-artifacts" / "screenshots"


async def login(page: Page, email: str, password: str = PASSWORD) -> None:
    """Log in through the login form; ends on the page the app sends a new session to."""
    await page.goto("/login")
    await page.get_by_label("Email").fill(email)
    await page.get_by_label("Password").fill(password)
    await page.get_by_role("button", name="Log in").click()
    await page.wait_for_url(re.compile(r"^(?!.*/login).*$"))


async def screenshot(page: Page, name: str) -> Path:
    """Save a full-page screenshot as test-artifacts/screenshots/<name>-<w>x<h>.png."""
    size = page.viewport_size or {"width": 0, "height": 0}
    path = SCREENSHOTS / f"{name}-{size['width']}x{size['height']}.png"
    path.parent.mkdir(parents=True, exist_ok=True)
    await page.screenshot(path=str(path), full_page=True)
    return path


async def sideways_scroll(page: Page) -> int:
    """How many pixels the page scrolls sideways (0 when it fits the viewport)."""
    overflow: int = await page.evaluate(
        "document.documentElement.scrollWidth - document.documentElement.clientWidth"
    )
    return overflow
