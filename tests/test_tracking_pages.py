"""The tracking pages: a worker's day with the shift buttons (CSRF-protected) and the manager's
team board (audited like the live API)."""

from __future__ import annotations

from datetime import timedelta

from httpx import AsyncClient
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from backend.audit.models import AuditEntry
from backend.lib.clock import FrozenClock
from backend.tracking.models import Shift
from tests.conftest import START, Factory
from tests.test_tracking import visit_task
from tests.test_web import csrf_from, login_in_browser


async def test_a_worker_starts_and_ends_the_shift_from_the_day_page(
    client: AsyncClient, factory: Factory, session: AsyncSession, clock: FrozenClock
) -> None:
    world = await factory.world()
    worker = world.measurer_a
    # 10:00 and 13:00 Moscow time (the org's zone), created by the manager through the API.
    await visit_task(client, factory, world, worker, starts=START + timedelta(hours=4), title="B")
    await visit_task(client, factory, world, worker, starts=START - timedelta(hours=2), title="A")
    await login_in_browser(client, worker.email)
    home = await client.get("/")
    assert home.headers["location"] == "/today"
    page = await client.get("/today")
    assert page.status_code == 200
    html = page.text
    assert html.index("<strong>A</strong>") < html.index("<strong>B</strong>")
    assert "10:00–11:00" in html
    assert "16:00–17:00" in html
    assert 'href="geo:55.788700,49.122100' in html
    assert "Start shift" in html
    forged = await client.post("/today/shift/start", data={"_csrf_token": "forged" * 10})
    assert forged.status_code == 403
    assert (await session.scalars(select(Shift).where(Shift.user_id == worker.id))).all() == []
    started = await client.post("/today/shift/start", data={"_csrf_token": csrf_from(html)})
    assert started.status_code == 303
    assert started.headers["location"] == "/today"
    page = await client.get("/today")
    assert "On shift since <strong>12:00</strong>" in page.text
    again = await client.post("/today/shift/start", data={"_csrf_token": csrf_from(page.text)})
    assert again.headers["location"].startswith("/today?error=")
    shown = await client.get(again.headers["location"])
    assert "A shift is already in progress" in shown.text
    clock.advance(timedelta(hours=8))
    ended = await client.post("/today/shift/end", data={"_csrf_token": csrf_from(page.text)})
    assert ended.status_code == 303
    shift = await session.scalar(select(Shift).where(Shift.user_id == worker.id))
    assert shift is not None
    await session.refresh(shift)
    assert shift.ended_at == START + timedelta(hours=8)


async def test_the_team_board_is_for_managers_and_audited(
    client: AsyncClient, factory: Factory, session: AsyncSession
) -> None:
    world = await factory.world()
    await login_in_browser(client, world.measurer_a.email)
    assert (await client.get("/team")).status_code == 403
    client.cookies.clear()
    await login_in_browser(client, world.manager_a.email)
    board = await client.get("/team")
    assert board.status_code == 200
    assert "Max Measurer" in board.text
    assert "Igor Installer" in board.text
    assert "Ivan Installer" not in board.text  # team B
    assert "2 off shift" in board.text
    partial = await client.get("/team", headers={"hx-request": "true"})
    assert "<html" not in partial.text
    assert "Max Measurer" in partial.text
    looks = await session.scalars(
        select(AuditEntry).where(
            AuditEntry.entity == "location", AuditEntry.actor_id == world.manager_a.id
        )
    )
    assert len(looks.all()) == 2
