"""The notification centre page (list, mark read with and without htmx, CSRF) and the admins'
outbox page, through the real app with a browser session."""

from __future__ import annotations

import uuid
from datetime import datetime

import httpx
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from backend.accounts.models import User
from backend.lib.clock import FrozenClock
from backend.notifications.models import Notification, OutboxMessage, OutboxStatus
from backend.notifications.services import notify
from tests.conftest import Factory
from tests.test_web import csrf_from, login_in_browser


async def _note(session: AsyncSession, user: User, now: datetime, title: str) -> uuid.UUID:
    nid = await notify(
        session,
        organization_id=user.organization_id,
        user_id=user.id,
        kind="task_assigned",
        title=title,
        dedupe_key=f"page:{uuid.uuid4()}",
        now=now,
        link="/tasks",
    )
    await session.commit()
    assert nid is not None
    return nid


async def test_the_centre_lists_own_notifications_and_marks_them_read(
    client: httpx.AsyncClient, factory: Factory, session: AsyncSession, clock: FrozenClock
) -> None:
    world = await factory.world()
    first = await _note(session, world.installer_a, clock.now(), "Install 3 windows")
    await _note(session, world.installer_a, clock.now(), "Measure the balcony")
    await _note(session, world.installer_b, clock.now(), "Someone else's job")
    await login_in_browser(client, world.installer_a.email)

    page = await client.get("/notifications")
    assert page.status_code == 200
    assert "Install 3 windows" in page.text
    assert "Measure the balcony" in page.text
    assert "Someone else" not in page.text
    assert 'id="unread-count"' in page.text
    assert 'name="viewport"' in page.text
    assert 'EventSource("/notifications/stream")' in page.text
    token = csrf_from(page.text)

    # Without the CSRF token the post is refused and nothing changes.
    forged = await client.post("/notifications/read", data={"id": str(first)})
    assert forged.status_code == 403
    partial = await client.post(
        "/notifications/read",
        data={"id": str(first), "_csrf_token": token},
        headers={"hx-request": "true"},
    )
    assert partial.status_code == 200
    assert "<html" not in partial.text
    assert partial.text.count("Mark read</button>") == 1
    row = await session.scalar(
        select(Notification)
        .where(Notification.id == first)
        .execution_options(populate_existing=True)
    )
    assert row is not None
    assert row.read_at == clock.now()

    redirected = await client.post("/notifications/read", data={"_csrf_token": token})
    assert redirected.status_code == 303
    assert redirected.headers["location"] == "/notifications"
    unread = await client.get("/notifications", params={"unread": "true"})
    assert "No unread notifications." in unread.text

    bad = await client.post("/notifications/read", data={"id": "nope", "_csrf_token": token})
    assert bad.status_code == 422


async def test_the_outbox_page_is_for_admins_and_retries_dead_rows(
    client: httpx.AsyncClient, factory: Factory, session: AsyncSession, clock: FrozenClock
) -> None:
    world = await factory.world()
    await _note(session, world.installer_a, clock.now(), "Job")
    row = await session.scalar(
        select(OutboxMessage).where(OutboxMessage.organization_id == world.org.id)
    )
    assert row is not None
    row.status = OutboxStatus.DEAD
    row.attempts = 8
    row.last_error = "fcm:1: UNAVAILABLE The service is currently unavailable."
    await session.commit()

    await login_in_browser(client, world.manager_a.email)
    assert (await client.get("/admin/outbox")).status_code == 403
    client.cookies.clear()
    await login_in_browser(client, world.admin.email)
    page = await client.get("/admin/outbox", params={"status": "dead"})
    assert page.status_code == 200
    assert "UNAVAILABLE" in page.text
    assert f"/admin/outbox/{row.id}/retry" in page.text
    token = csrf_from(page.text)
    retried = await client.post(f"/admin/outbox/{row.id}/retry", data={"_csrf_token": token})
    assert retried.status_code == 303
    await session.refresh(row)
    assert row.status is OutboxStatus.PENDING
    assert row.attempts == 0
    empty = await client.get("/admin/outbox", params={"status": "dead"})
    assert "Nothing here." in empty.text
