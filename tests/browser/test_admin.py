"""The admin screens in a real browser: an admin creates a user and a stage automation through
the forms (keyboard and labels only), sees a refusal next to its field, and every admin page is
screenshotted at 390×844 and 1280×800."""

from __future__ import annotations

import re

from playwright.async_api import BrowserContext, Page, expect
from sqlalchemy import select

from backend.accounts.models import TeamMember, User
from backend.documents.models import DocumentTemplate
from backend.documents.render import default_template
from backend.sales.models import Automation
from tests.browser.conftest import BrowserWorld, LiveServer
from tests.browser.helpers import login, screenshot


async def test_an_admin_creates_a_user_through_the_form(
    desktop: BrowserContext, bworld: BrowserWorld, live: LiveServer
) -> None:
    page = await desktop.new_page()
    await login(page, bworld.admin.email)
    await page.get_by_role("link", name="Admin", exact=True).click()
    await expect(page).to_have_url(re.compile(r"/admin/users$"))
    await page.get_by_role("link", name="New user").click()
    email = f"nadia-{bworld.org.id.hex[:8]}@browser.test"
    await page.get_by_label("Email (login)").fill(email)
    await page.get_by_label("Full name").fill("Nadia Newcomer")
    await page.get_by_label("Password (at least 10 characters)").fill("short")
    await page.get_by_label("Role").select_option("field")
    await page.get_by_label("Installer").check()
    await page.get_by_label("Field team").check()
    await page.get_by_label("Latitude").fill("55.80")
    await page.get_by_label("Longitude").fill("49.10")
    # Submit with the keyboard.
    await page.get_by_label("Longitude").press("Enter")
    password_error = page.locator("#err-password")
    await expect(password_error).to_have_text("must be at least 10 characters")
    await expect(page.get_by_label("Password (at least 10 characters)")).to_have_attribute(
        "aria-invalid", "true"
    )
    await expect(page.get_by_label("Full name")).to_have_value("Nadia Newcomer")
    await expect(page.get_by_label("Installer")).to_be_checked()
    await screenshot(page, "admin-user-refused")
    await page.get_by_label("Password (at least 10 characters)").fill("a-long-password")
    await page.get_by_role("button", name="Create user").click()
    await expect(page.get_by_role("status")).to_have_text("Saved.")
    await expect(page.get_by_role("heading", name="Nadia Newcomer")).to_be_visible()
    async with live.sessionmaker() as session:
        user = await session.scalar(select(User).where(User.email == email))
        assert user is not None
        assert user.skills == ["installer"]
        assert (user.base_lat, user.base_lon) == (55.80, 49.10)
        teams = set(
            await session.scalars(select(TeamMember.team_id).where(TeamMember.user_id == user.id))
        )
        assert teams == {bworld.team.id}
    # The new user shows in the search.
    await page.goto("/admin/users")
    await page.get_by_label("Search by name or email").fill("nadia")
    await expect(page.locator("#user-rows")).to_contain_text("Nadia Newcomer")
    await expect(page.locator("#user-rows")).not_to_contain_text("Maria Manager")


async def test_an_admin_adds_a_stage_automation_on_a_phone(
    phone: BrowserContext, bworld: BrowserWorld, live: LiveServer
) -> None:
    page = await phone.new_page()
    await login(page, bworld.admin.email)
    await page.goto("/admin/pipelines")
    await page.get_by_role("link", name="Agreement", exact=True).click()
    await expect(page.get_by_role("heading", name="Stage: Agreement")).to_be_visible()
    await page.get_by_role("link", name="+ Create a task").click()
    await page.get_by_label("Name", exact=True).fill("Prepare the contract")
    await page.get_by_label("Task kind").select_option("other")
    await page.get_by_label("Task title").fill("Contract for {{ customer.nme }}")
    await page.get_by_label("Assignment rule", exact=True).select_option("role")
    await page.get_by_label("Role (rule “with a role”)").select_option("manager")
    await page.get_by_label("Counted from").select_option("entered")
    await page.get_by_label("Offset in minutes (may be negative)").fill("60")
    await page.get_by_label("Count only the organisation's business hours").check()
    await page.get_by_role("button", name="Add automation").click()
    title_error = page.locator("#err-title")
    await expect(title_error).to_contain_text("template")
    await expect(page.get_by_label("Task title")).to_have_attribute("aria-invalid", "true")
    await screenshot(page, "admin-automation-refused")
    await page.get_by_label("Task title").fill("Contract for {{ customer.name }}")
    await page.get_by_role("button", name="Add automation").click()
    await expect(page.get_by_role("status")).to_have_text("Saved.")
    async with live.sessionmaker() as session:
        stage = bworld.pipeline.stages["agreement"]
        rows = await session.scalars(
            select(Automation).where(
                Automation.stage_id == stage.id, Automation.name == "Prepare the contract"
            )
        )
        automation = rows.one()
        assert automation.config["assignee"]["rule"] == "role"
        assert automation.config["assignee"]["role"] == "manager"
        assert automation.config["due"] == {
            "from": "entered",
            "offsetMinutes": 60,
            "businessHours": True,
        }
        assert automation.config["title"] == "Contract for {{ customer.name }}"
    await page.get_by_role("link", name=re.compile(r"Window sales · Agreement")).click()
    await expect(page.get_by_role("link", name="Prepare the contract")).to_be_visible()


async def _pages(page: Page, bworld: BrowserWorld, live: LiveServer) -> list[tuple[str, str]]:
    """Every admin page worth a screenshot, with the URLs of this world's rows."""
    async with live.sessionmaker() as session:
        template = await session.scalar(
            select(DocumentTemplate).where(DocumentTemplate.organization_id == bworld.org.id)
        )
        automation = await session.scalar(
            select(Automation).where(
                Automation.stage_id == bworld.pipeline.stages["measurements"].id
            )
        )
    assert automation is not None
    pages = [
        ("admin-users", "/admin/users"),
        ("admin-user", f"/admin/users/{bworld.measurer.id}"),
        ("admin-user-new", "/admin/users/new"),
        ("admin-teams", "/admin/teams"),
        ("admin-team", f"/admin/teams/{bworld.team.id}"),
        ("admin-pipelines", "/admin/pipelines"),
        ("admin-stage", f"/admin/stages/{bworld.pipeline.stages['measurements'].id}"),
        ("admin-automation", f"/admin/automations/{automation.id}"),
        ("admin-lead-forms", "/admin/lead-forms"),
        ("admin-lead-form", f"/admin/lead-forms/{bworld.pipeline.form.id}"),
        ("admin-templates", "/admin/templates"),
    ]
    assert template is not None
    pages.append(("admin-template", f"/admin/templates/{template.id}"))
    return pages


async def test_every_admin_page_at_phone_and_desktop_size(
    phone: BrowserContext, desktop: BrowserContext, bworld: BrowserWorld, live: LiveServer
) -> None:
    async with live.api(bworld.admin) as api:
        created = await api.post(
            "/api/v1/document-templates",
            json={"name": "Invoice", "html": default_template(bworld.org.locale)},
        )
        assert created.status_code == 201, created.text
    for context in (phone, desktop):
        page = await context.new_page()
        await login(page, bworld.admin.email)
        for name, url in await _pages(page, bworld, live):
            response = await page.goto(url)
            assert response is not None
            assert response.status == 200, url
            await expect(page.get_by_role("navigation", name="Admin sections")).to_be_visible()
            # Nothing is wider than the screen.
            overflow = await page.evaluate(
                "document.documentElement.scrollWidth - document.documentElement.clientWidth"
            )
            assert overflow <= 0, f"{url} scrolls sideways by {overflow}px"
            await screenshot(page, name)
        # A template with its server-side preview.
        await page.goto("/admin/templates/new")
        await page.get_by_label("Name (automations refer to it)").fill("Preview only")
        await page.get_by_role("button", name="Preview on sample data").click()
        frame = page.frame_locator("iframe.preview-frame")
        await expect(frame.get_by_text("Anna Sample").first).to_be_visible()
        await page.locator("iframe.preview-frame").scroll_into_view_if_needed()
        await screenshot(page, "admin-template-preview")
        await page.close()
