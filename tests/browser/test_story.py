"""The window company's whole story in a real Chromium, with four people at once: a visitor on
the website form (an anonymous phone), the manager at a desktop (1280×800), and the measurer
and the installer on their phones (390×844).

The admin ticks, on the "Installation" stage's automation, that installations are booked at
the deal's scheduled time → a website request → a deal at "First call", the manager's call-back
task and notification (its link opens the deal) → the manager moves it to "Measurements" with
the visit's time on the deal card → the measurer sees the visit on /today, checks in at the site
(geolocation), adds a photo, records the outcome, checks out and moves the deal to "Agreement"
→ the manager sees the "calculate and call" task, enters the calculation (a slip is refused at
the field) and moves the deal to "Payment" → the invoice PDF is listed on the card and downloads
with the customer's name → "Installation" at a time → the installer's notification (its link
opens the visit) and the visit on /today.

The visitor is a returning customer (Petrov Ivan, found by his phone): without a geocoder a
new visitor's typed address gets no map point, so their deal has no site and "Measurements"
(which needs one) would be refused. Every step is photographed at its context's size
(``test-artifacts/screenshots/story-*``) and checked in the database (stored once).
"""

from __future__ import annotations

import io
import re
import uuid
import zlib
from datetime import datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

from playwright.async_api import Browser, BrowserContext, Page, expect
from pypdf import PdfReader
from sqlalchemy import func, select

from backend.documents.models import Attachment, Document
from backend.notifications.models import Notification
from backend.sales.models import Automation, Deal, DealStageChange
from backend.tasks.models import Task, TaskKind, TaskStatus
from backend.tracking.models import CheckIn, CheckKind
from tests.browser.conftest import DESKTOP, KAZAN, PHONE, BrowserWorld, LiveServer
from tests.browser.helpers import login, screenshot

MOSCOW = ZoneInfo("Europe/Moscow")
AT_SITE = {"latitude": 55.7887, "longitude": 49.1221, "accuracy": 8}  # Petrov's site
CALL_BACK = "Call the client back within 15 minutes: Petrov Ivan"
CALCULATE = "Calculate the cost and call the client within 2 hours: Petrov Ivan"
DEAL_TITLE = "Website request: Petrov Ivan"


def _png() -> bytes:
    """A 2×2 PNG made here (the measurer's photo)."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        body = kind + data
        return len(data).to_bytes(4, "big") + body + zlib.crc32(body).to_bytes(4, "big")

    header = (2).to_bytes(4, "big") * 2 + bytes([8, 2, 0, 0, 0])
    rows = b"".join(b"\x00" + b"\xc8\x64\x32" * 2 for _ in range(2))
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(rows))
        + chunk(b"IEND", b"")
    )


async def _context(browser: Browser, live: LiveServer, *, mobile: bool) -> BrowserContext:
    """Another context like the ``phone``/``desktop`` fixtures' (visitor, installer, admin)."""
    context = await browser.new_context(
        viewport=PHONE if mobile else DESKTOP,
        is_mobile=mobile,
        has_touch=mobile,
        base_url=live.url,
        permissions=["geolocation"],
        geolocation=KAZAN,
        locale="en-GB",
        timezone_id="Europe/Moscow",
    )
    context.set_default_timeout(10_000)
    return context


def _visit_time(after_minutes: int) -> tuple[datetime, datetime]:
    """A one-hour window starting soon, today in Moscow (so it is on the worker's /today)."""
    now = datetime.now(MOSCOW).replace(second=0, microsecond=0)
    start = now + timedelta(minutes=after_minutes)
    if start.date() != now.date():
        start = now
    return start, start + timedelta(hours=1)


async def _fill_visit_time(page: Page, starts: datetime, ends: datetime) -> None:
    await page.get_by_label("Visit from").fill(starts.strftime("%Y-%m-%dT%H:%M"))
    await page.get_by_label("Visit until").fill(ends.strftime("%Y-%m-%dT%H:%M"))


async def _count(live: LiveServer, statement: object) -> int:
    async with live.sessionmaker() as session:
        found = await session.scalar(statement)  # type: ignore[call-overload]
        return int(found or 0)


async def _deal(live: LiveServer, deal_id: uuid.UUID) -> Deal:
    async with live.sessionmaker() as session:
        deal = await session.get(Deal, deal_id)
        assert deal is not None
        return deal


async def _tasks(live: LiveServer, deal_id: uuid.UUID, kind: TaskKind) -> list[Task]:
    async with live.sessionmaker() as session:
        rows = await session.scalars(select(Task).where(Task.deal_id == deal_id, Task.kind == kind))
        return list(rows.all())


async def _notification_titles(live: LiveServer, user_id: uuid.UUID) -> list[str]:
    async with live.sessionmaker() as session:
        rows = await session.scalars(
            select(Notification.title).where(Notification.user_id == user_id)
        )
        return list(rows.all())


async def _move_on_card(page: Page, stage_id: uuid.UUID, stage_name: str) -> None:
    """The deal card's move form: choose the stage, press Move, land on the card at it."""
    await page.get_by_label("Stage", exact=True).select_option(str(stage_id))
    await page.locator("#move").get_by_role("button", name="Move").click()
    await expect(page.locator("h1 .badge")).to_have_text(stage_name)


async def test_the_window_company_story_in_the_browser(
    browser: Browser,
    phone: BrowserContext,
    desktop: BrowserContext,
    live: LiveServer,
    bworld: BrowserWorld,
    tmp_path: Path,
) -> None:
    stages = bworld.pipeline.stages
    visitor_context = await _context(browser, live, mobile=True)
    admin_context = await _context(browser, live, mobile=False)
    installer_context = await _context(browser, live, mobile=True)
    try:
        # 0. The admin books installations at a time: the installer automation of the
        # "Installation" stage takes the deal's scheduled time as the visit's window.
        admin = await admin_context.new_page()
        await login(admin, bworld.admin.email)
        await admin.goto(f"/admin/stages/{stages['installation'].id}")
        await admin.get_by_role("link", name="Installer with a deadline").click()
        await admin.get_by_label("The deal's scheduled time is the visit's window").check()
        await admin.get_by_role("button", name="Save automation").click()
        await expect(admin.get_by_role("status")).to_have_text("Saved.")
        await expect(
            admin.get_by_label("The deal's scheduled time is the visit's window")
        ).to_be_checked()
        await screenshot(admin, "story-0-admin-stage")
        async with live.sessionmaker() as session:
            config = await session.scalar(
                select(Automation.config).where(Automation.stage_id == stages["installation"].id)
            )
        assert config is not None
        assert config["window"] == "scheduled"

        # 1. A visitor sends the website form (no login).
        visitor = await visitor_context.new_page()
        await visitor.goto(f"/f/{bworld.pipeline.form.key}?utm_source=yandex")
        await visitor.get_by_label("Your name").fill("Petrov Ivan")
        await visitor.get_by_label("Phone").fill("+7 912 345-67-89")
        await visitor.get_by_label("Address").fill("Kazan, Bauman St 1")
        await visitor.get_by_label("What do you need?").fill("Three PVC windows, two-chamber")
        await screenshot(visitor, "story-1-website-form")
        await visitor.get_by_role("button", name="Send request").tap()
        await expect(visitor.get_by_role("heading")).to_have_text(
            "Thank you! A manager will call you back within 15 minutes."
        )
        await expect(visitor.get_by_text("Request number")).to_be_visible()
        await screenshot(visitor, "story-1-website-thanks")

        async with live.sessionmaker() as session:
            deal_ids = list(
                (
                    await session.scalars(
                        select(Deal.id).where(Deal.organization_id == bworld.org.id)
                    )
                ).all()
            )
        assert len(deal_ids) == 1, "one request, one deal"
        deal_id = deal_ids[0]
        deal = await _deal(live, deal_id)
        assert deal.customer_id == bworld.customer_id  # found by the phone, not a duplicate
        assert deal.stage_id == stages["first_call"].id
        assert deal.owner_id == bworld.manager.id
        assert deal.site_id is not None

        # ... the manager (desktop) has it at "First call", the call-back task and a notice.
        manager = await desktop.new_page()
        await login(manager, bworld.manager.email)
        await manager.goto("/deals")
        first_call = manager.locator(f'section[aria-labelledby="stage-{stages["first_call"].id}"]')
        await expect(first_call.locator(f"#deal-{deal_id}")).to_contain_text(DEAL_TITLE)
        await expect(first_call.locator("[id^=deal-]")).to_have_count(1)
        await screenshot(manager, "story-1-deals-first-call")
        await manager.goto("/tasks")
        await expect(manager.get_by_role("link", name=CALL_BACK)).to_be_visible()
        await expect(manager.locator("tr[data-task]")).to_have_count(1)
        await screenshot(manager, "story-1-manager-tasks")
        await manager.goto("/notifications")
        await expect(manager.locator(".notifications li.unread")).to_have_count(1)
        await expect(manager.locator(".notifications")).to_contain_text(CALL_BACK)
        await screenshot(manager, "story-1-manager-notifications")
        # The notification's link leads to the deal.
        await manager.locator(".notifications").get_by_role("link", name=CALL_BACK).click()
        await manager.wait_for_url(re.compile(f"/deals/{deal_id}$"))
        await expect(manager.locator("h1 .badge")).to_have_text("First call")
        assert len(await _tasks(live, deal_id, TaskKind.CALL)) == 1
        assert (await _notification_titles(live, bworld.manager.id)).count(CALL_BACK) == 1

        # 2. The manager opens the deal card and books the measurement.
        await manager.goto("/deals")
        await manager.locator(f"#deal-{deal_id}").get_by_role("link", name=DEAL_TITLE).click()
        await manager.wait_for_url(re.compile(f"/deals/{deal_id}$"))
        starts, ends = _visit_time(20)
        await _fill_visit_time(manager, starts, ends)
        await _move_on_card(manager, stages["measurements"].id, "Measurements")
        tasks_card = manager.locator("#tasks")
        await expect(tasks_card).to_contain_text("Go to measure for deal")
        await expect(tasks_card).to_contain_text("Igor Measurer")
        await screenshot(manager, "story-2-deal-measurements")
        measurements = await _tasks(live, deal_id, TaskKind.MEASUREMENT)
        assert [t.assignee_id for t in measurements] == [bworld.measurer.id]
        visit_id = measurements[0].id
        assert measurements[0].window_start == starts

        # 3. The measurer (phone) does the visit and moves the deal on.
        await phone.set_geolocation(AT_SITE)
        measurer = await phone.new_page()
        await login(measurer, bworld.measurer.email)
        await measurer.goto("/today")
        await expect(measurer.get_by_text("1 to go", exact=True)).to_be_visible()
        visit_link = measurer.locator(f'a.title[href="/visits/{visit_id}"]')
        await expect(visit_link).to_contain_text("Go to measure")
        await screenshot(measurer, "story-3-measurer-today")
        await visit_link.tap()
        await expect(measurer.locator(".access")).to_contain_text("gate code 12")
        await expect(measurer.locator("[data-fix]")).to_contain_text("±8 m")
        await expect(measurer.locator("#deal .stage")).to_have_text("Measurements")
        await screenshot(measurer, "story-3-measurer-visit")
        await measurer.get_by_role("button", name="Check in").tap()
        await expect(measurer.locator(".checked")).to_contain_text("verified")
        photo = tmp_path / "bay-window.png"
        photo.write_bytes(_png())
        await measurer.locator("#photos").set_input_files(str(photo))
        await expect(measurer.locator(".files img")).to_have_count(1)
        await measurer.get_by_label("Outcome").fill("Measured three windows, 1200x1400 each")
        await measurer.get_by_role("button", name="Done & check out").tap()
        await expect(measurer.locator(".done-note")).to_contain_text("Measured three windows")
        await screenshot(measurer, "story-3-measurer-done")
        await measurer.get_by_role("button", name="Move to Agreement").tap()
        await expect(measurer.locator("#deal .stage")).to_have_text("Agreement")
        await screenshot(measurer, "story-3-measurer-agreement")

        async with live.sessionmaker() as session:
            checks = (
                await session.execute(
                    select(CheckIn.kind, CheckIn.outcome)
                    .where(CheckIn.task_id == visit_id)
                    .order_by(CheckIn.at)
                )
            ).all()
            visit = await session.get(Task, visit_id)
        assert [(k, o) for k, o in checks] == [
            (CheckKind.IN, None),
            (CheckKind.OUT, "Measured three windows, 1200x1400 each"),
        ]
        assert visit is not None
        assert visit.status is TaskStatus.DONE
        assert (
            await _count(
                live,
                select(func.count()).select_from(Attachment).where(Attachment.task_id == visit_id),
            )
            == 1
        )
        assert (await _deal(live, deal_id)).stage_id == stages["agreement"].id

        # 4. The manager has the calculation task, enters the calculation, moves to Payment.
        await manager.goto("/tasks")
        await expect(manager.get_by_role("link", name=CALCULATE)).to_be_visible()
        await screenshot(manager, "story-4-manager-tasks")
        await manager.get_by_role("link", name=CALCULATE).click()
        await manager.wait_for_url(re.compile(f"/deals/{deal_id}$"))
        await expect(manager.locator("h1 .badge")).to_have_text("Agreement")
        await expect(manager.locator("#files")).to_contain_text("bay-window.png")
        # A slip is refused next to the field; the corrected calculation is saved.
        await manager.get_by_label("Line items").fill("PVC window 1200x1400; three; 18500")
        await manager.get_by_role("button", name="Save the calculation").click()
        await expect(manager.locator("#k-items-err")).to_have_text(
            "line 1: the quantity is not a number"
        )
        await manager.get_by_label("Line items").fill(
            "PVC window 1200x1400; 3; 18 500\nInstallation; 3; 4000"
        )
        await manager.get_by_role("button", name="Save the calculation").click()
        await expect(manager.locator("#facts-h ~ dl")).to_contain_text("67,500.00 RUB")
        await _move_on_card(manager, stages["payment"].id, "Payment")
        invoice = manager.locator("#documents").get_by_role("link", name=re.compile(r"\(PDF\)"))
        await expect(invoice).to_have_count(1)
        await screenshot(manager, "story-4-deal-payment")
        async with manager.expect_download() as download_info:
            await invoice.click()
        download = await download_info.value
        assert download.suggested_filename.endswith(".pdf")
        saved = tmp_path / "invoice.pdf"
        await download.save_as(saved)
        href = await invoice.get_attribute("href")
        assert href is not None
        answer = await manager.request.get(href)
        assert answer.status == 200
        assert answer.headers["content-type"].startswith("application/pdf")
        assert await answer.body() == saved.read_bytes()
        pdf = PdfReader(io.BytesIO(saved.read_bytes()))
        text = "".join(sheet.extract_text() for sheet in pdf.pages)
        assert "Petrov Ivan" in text
        assert (
            await _count(
                live, select(func.count()).select_from(Document).where(Document.deal_id == deal_id)
            )
            == 1
        )
        assert len(await _tasks(live, deal_id, TaskKind.CALL)) == 2

        # 5. Installation: the installer (phone) is told and has the visit.
        install_starts, install_ends = _visit_time(90)
        await _fill_visit_time(manager, install_starts, install_ends)
        await _move_on_card(manager, stages["installation"].id, "Installation")
        await expect(manager.locator("#tasks")).to_contain_text("Oleg Installer")
        await screenshot(manager, "story-5-deal-installation")
        installations = await _tasks(live, deal_id, TaskKind.INSTALLATION)
        assert [t.assignee_id for t in installations] == [bworld.installer.id]
        assert installations[0].window_start == install_starts
        installation_id = installations[0].id

        installer = await installer_context.new_page()
        await login(installer, bworld.installer.email)
        await installer.goto("/notifications")
        await expect(installer.locator(".notifications li.unread")).to_have_count(1)
        await expect(installer.locator(".notifications")).to_contain_text(
            f"Installation for deal {DEAL_TITLE}"
        )
        await screenshot(installer, "story-5-installer-notifications")
        await installer.goto("/today")
        await expect(installer.get_by_text("1 to go", exact=True)).to_be_visible()
        installer_visit = installer.locator(f'a.title[href="/visits/{installation_id}"]')
        await expect(installer_visit).to_contain_text("Installation for deal")
        await screenshot(installer, "story-5-installer-today")
        # The notification's link opens the visit.
        await installer.goto("/notifications")
        await (
            installer.locator(".notifications")
            .get_by_role("link", name=re.compile("Installation for deal"))
            .tap()
        )
        await installer.wait_for_url(re.compile(f"/visits/{installation_id}$"))
        await expect(installer.locator(".where")).to_contain_text("Kazan, Bauman St 1")
        await expect(installer.locator("#deal .stage")).to_have_text("Installation")
        await screenshot(installer, "story-5-installer-visit")

        # Each step stored once: the stage history is the four moves, in order.
        async with live.sessionmaker() as session:
            moves = (
                await session.scalars(
                    select(DealStageChange.to_stage_id)
                    .where(DealStageChange.deal_id == deal_id)
                    .order_by(DealStageChange.changed_at)
                )
            ).all()
        assert [m for m in moves if m != stages["first_call"].id] == [
            stages[k].id for k in ("measurements", "agreement", "payment", "installation")
        ]
        assert (await _notification_titles(live, bworld.installer.id)) == [installations[0].title]
    finally:
        for context in (visitor_context, installer_context, admin_context):
            await context.close()
