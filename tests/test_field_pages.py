"""The field worker's phone pages over HTTP: the visit page and its actions (check-in, files,
outcome and check-out, moving the deal), idempotent replays of the offline queue, roles and
CSRF; the day page in driving order; pings from the browser; the installable shell."""

from __future__ import annotations

import re
import uuid
import zlib
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import httpx
from sqlalchemy import func, select, text
from sqlalchemy.ext.asyncio import AsyncSession

from backend.documents.models import Attachment
from backend.lib.clock import FrozenClock
from backend.sales.models import Deal
from backend.seed.pipeline import WindowPipeline, seed_window_pipeline
from backend.tasks.models import Task, TaskStatus
from backend.tracking.models import CheckIn, CheckKind, CheckStatus
from tests.conftest import START, Factory, World, customer_body
from tests.test_web import csrf_from, login_in_browser

SITE = {"lat": "55.7887", "lon": "49.1221"}  # the conftest customer's site in Kazan
HTMX = {"hx-request": "true"}


def png() -> bytes:
    """A valid 1×1 PNG."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        body = kind + data
        return len(data).to_bytes(4, "big") + body + zlib.crc32(body).to_bytes(4, "big")

    header = (1).to_bytes(4, "big") * 2 + bytes([8, 2, 0, 0, 0])
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(b"\x00\xff\x00\x00"))
        + chunk(b"IEND", b"")
    )


@dataclass
class Visit:
    world: World
    pipeline: WindowPipeline
    task_id: str
    deal_id: str
    csrf: str


async def measurement_visit(
    client: httpx.AsyncClient,
    factory: Factory,
    session: AsyncSession,
    *,
    title: str = "Measure 3 windows",
    starts: Any = None,
    world: World | None = None,
    pipeline: WindowPipeline | None = None,
) -> tuple[World, WindowPipeline, str, str]:
    """A deal at "Measurements" (the manager's) with a measurement of it assigned to the
    measurer at the conftest customer's site."""
    world = world or await factory.world()
    pipeline = pipeline or await seed_window_pipeline(session, world.org)
    await session.commit()
    manager = factory.auth(world.manager_a)
    customer = await client.post(
        "/api/v1/customers", json=customer_body(owner_id=world.manager_a.id), headers=manager
    )
    assert customer.status_code == 201, customer.text
    body = customer.json()
    deal = await client.post(
        "/api/v1/deals",
        json={
            "customerId": body["id"],
            "title": "Windows for the flat",
            "siteId": body["sites"][0]["id"],
        },
        headers=manager,
    )
    assert deal.status_code == 201, deal.text
    deal_id = deal.json()["deal"]["id"]
    row = await session.get(Deal, uuid.UUID(deal_id))
    assert row is not None
    row.stage_id = pipeline.stages["measurements"].id  # arranged: the visit is booked
    await session.commit()
    starts = starts or START + timedelta(hours=1)
    task = await client.post(
        "/api/v1/tasks",
        json={
            "kind": "measurement",
            "title": title,
            "description": "Measure the kitchen and two bedroom windows",
            "assigneeId": str(world.measurer_a.id),
            "dealId": deal_id,
            "windowStart": starts.isoformat(),
            "windowEnd": (starts + timedelta(hours=1)).isoformat(),
        },
        headers=manager,
    )
    assert task.status_code == 201, task.text
    return world, pipeline, task.json()["id"], deal_id


async def open_visit(client: httpx.AsyncClient, factory: Factory, session: AsyncSession) -> Visit:
    world, pipeline, task_id, deal_id = await measurement_visit(client, factory, session)
    await login_in_browser(client, world.measurer_a.email)
    page = await client.get(f"/visits/{task_id}")
    assert page.status_code == 200, page.text
    return Visit(world, pipeline, task_id, deal_id, csrf_from(page.text))


def posting(visit: Visit, key: str | None = None) -> dict[str, str]:
    """What the page script sends: the CSRF header, htmx's marker, an idempotency key."""
    headers = {"x-csrftoken": visit.csrf, **HTMX}
    if key:
        headers["Idempotency-Key"] = key
    return headers


async def count(session: AsyncSession, stmt: Any) -> int:
    return int(await session.scalar(stmt) or 0)


async def test_a_visit_from_check_in_to_check_out_with_photo_and_the_next_stage(
    client: httpx.AsyncClient, factory: Factory, session: AsyncSession, clock: FrozenClock
) -> None:
    v = await open_visit(client, factory, session)
    page = (await client.get(f"/visits/{v.task_id}")).text
    assert "Measure 3 windows" in page
    assert "Measure the kitchen and two bedroom windows" in page
    assert "Kazan, Bauman St 1" in page
    assert "gate code 12" in page
    assert 'href="tel:+79123456789"' in page
    assert 'href="geo:55.788700,49.122100' in page
    assert "Замер" in page  # the deal's stage (the organisation speaks Russian)
    assert "Move to Согласование" in page
    assert 'capture="environment"' in page
    assert 'for="outcome"' in page

    # Check in (the script's post, with a key): verified, the task starts.
    checked = await client.post(
        f"/visits/{v.task_id}/check-in",
        data={**SITE, "accuracy": "8"},
        headers=posting(v, "check-in-1"),
    )
    assert checked.status_code == 200, checked.text
    assert "<html" not in checked.text
    assert "verified" in checked.text
    assert "Done &amp; check out" in checked.text
    again = await client.post(
        f"/visits/{v.task_id}/check-in",
        data={**SITE, "accuracy": "8"},
        headers=posting(v, "check-in-1"),
    )
    assert again.status_code == 200
    assert again.headers["idempotent-replay"] == "true"
    task_id = uuid.UUID(v.task_id)
    assert await count(session, select(func.count()).where(CheckIn.task_id == task_id)) == 1

    # Agreement needs an attached file: the rule is shown at the stage form.
    refused = await client.post(
        f"/visits/{v.task_id}/stage",
        data={"stageId": str(v.pipeline.stages["agreement"].id)},
        headers=posting(v),
    )
    assert refused.status_code == 422
    assert "needs an attached file" in refused.text
    deal = await session.get(Deal, uuid.UUID(v.deal_id))
    assert deal is not None
    await session.refresh(deal)
    assert deal.stage_id == v.pipeline.stages["measurements"].id

    photo = await client.post(
        f"/visits/{v.task_id}/files",
        params={"filename": "window.png"},
        content=png(),
        headers={**posting(v, "photo-1"), "content-type": "image/png"},
    )
    assert photo.status_code == 200, photo.text
    replayed = await client.post(
        f"/visits/{v.task_id}/files",
        params={"filename": "window.png"},
        content=png(),
        headers={**posting(v, "photo-1"), "content-type": "image/png"},
    )
    assert replayed.headers["idempotent-replay"] == "true"
    assert await count(session, select(func.count()).where(Attachment.task_id == task_id)) == 1
    attachment_id = await session.scalar(select(Attachment.id).where(Attachment.task_id == task_id))
    assert f"/visits/{v.task_id}/files/{attachment_id}" in photo.text
    shown = await client.get(f"/visits/{v.task_id}/files/{attachment_id}")
    assert shown.status_code == 200
    assert shown.headers["content-type"] == "image/png"
    assert shown.content == png()

    moved = await client.post(
        f"/visits/{v.task_id}/stage",
        data={"stageId": str(v.pipeline.stages["agreement"].id)},
        headers=posting(v),
    )
    assert moved.status_code == 200, moved.text
    assert "Согласование" in moved.text
    await session.refresh(deal)
    assert deal.stage_id == v.pipeline.stages["agreement"].id

    # Check out: the outcome is required and shown at its field; then the task is done.
    clock.advance(timedelta(minutes=30))
    empty = await client.post(
        f"/visits/{v.task_id}/check-out", data={**SITE, "outcome": " "}, headers=posting(v)
    )
    assert empty.status_code == 422
    assert re.search(r'aria-describedby="outcome-err"', empty.text)
    assert re.search(r'id="outcome-err">required<', empty.text)
    done = await client.post(
        f"/visits/{v.task_id}/check-out",
        data={**SITE, "accuracy": "10", "outcome": "Measured 3 windows"},
        headers=posting(v, "check-out-1"),
    )
    assert done.status_code == 200, done.text
    assert "Measured 3 windows" in done.text
    task = await session.get(Task, task_id)
    assert task is not None
    await session.refresh(task)
    assert task.status is TaskStatus.DONE
    assert task.outcome == "Measured 3 windows"
    assert task.completed_at == START + timedelta(minutes=30)


async def test_only_who_may_see_the_visit_opens_it_and_every_post_needs_the_csrf_token(
    client: httpx.AsyncClient, factory: Factory, session: AsyncSession
) -> None:
    world, _, task_id, _ = await measurement_visit(client, factory, session)
    for who, status in (
        (world.installer_a, 404),  # another worker of the same team
        (world.installer_b, 404),
        (world.manager_b, 404),  # another team's manager
        (world.manager_a, 200),
        (world.admin, 200),
    ):
        client.cookies.clear()
        await login_in_browser(client, who.email)
        page = await client.get(f"/visits/{task_id}")
        assert page.status_code == status, who.full_name
        if status == 404:  # nor act on it
            token = csrf_from((await client.get("/today")).text)
            checked = await client.post(
                f"/visits/{task_id}/check-in", data={**SITE, "_csrf_token": token}
            )
            assert checked.status_code == 404
    client.cookies.clear()
    other = await factory.world("Other Windows")
    await login_in_browser(client, other.admin.email)
    assert (await client.get(f"/visits/{task_id}")).status_code == 404

    client.cookies.clear()
    await login_in_browser(client, world.measurer_a.email)
    for path in ("check-in", "check-out", "stage", "files?filename=a.png"):
        forged = await client.post(f"/visits/{task_id}/{path}", data=SITE, headers=HTMX)
        assert forged.status_code == 403, path
    assert (await client.post("/today/pings", json={"points": []}, headers=HTMX)).status_code == 403
    assert (
        await count(session, select(func.count()).where(CheckIn.task_id == uuid.UUID(task_id))) == 0
    )


async def test_a_plain_form_post_goes_back_to_the_page_or_shows_the_reason_at_the_field(
    client: httpx.AsyncClient, factory: Factory, session: AsyncSession
) -> None:
    v = await open_visit(client, factory, session)
    far = await client.post(
        f"/visits/{v.task_id}/check-in",
        data={"lat": "95", "lon": "49.1", "_csrf_token": v.csrf},
    )
    assert far.status_code == 422
    assert "<html" in far.text  # the whole page again
    assert re.search(r"lat: Expected `float` &lt;= 90", far.text)
    assert (
        await count(session, select(func.count()).where(CheckIn.task_id == uuid.UUID(v.task_id)))
        == 0
    )
    # Away from the site without a reason: recorded as unverified (the API's judgement).
    away = await client.post(
        f"/visits/{v.task_id}/check-in",
        data={"lat": "55.80", "lon": "49.20", "accuracy": "10", "_csrf_token": v.csrf},
    )
    assert away.status_code == 303
    assert away.headers["location"] == f"/visits/{v.task_id}"
    row = await session.scalar(select(CheckIn).where(CheckIn.task_id == uuid.UUID(v.task_id)))
    assert row is not None
    assert row.status is CheckStatus.UNVERIFIED
    assert "outside_site" in row.flags
    page = await client.get(away.headers["location"])
    assert "unverified" in page.text
    assert "Done &amp; check out" in page.text
    # Checking in again while in progress is allowed by the check-in rules (recorded again).
    twice = await client.post(
        f"/visits/{v.task_id}/check-in", data={**SITE, "_csrf_token": v.csrf}, headers=HTMX
    )
    assert twice.status_code == 200  # an in-progress visit may be checked in again
    # A key used for another body is a conflict, shown, and nothing is stored for it.
    key = {**posting(v, "same-key")}
    first = await client.post(
        f"/visits/{v.task_id}/check-out", data={**SITE, "outcome": "A"}, headers=key
    )
    assert first.status_code == 200
    other = await client.post(
        f"/visits/{v.task_id}/check-out", data={**SITE, "outcome": "B"}, headers=key
    )
    assert other.status_code == 409
    assert "different request" in other.text
    outs = await session.scalars(
        select(CheckIn.outcome).where(
            CheckIn.task_id == uuid.UUID(v.task_id), CheckIn.kind == CheckKind.OUT
        )
    )
    assert outs.all() == ["A"]


async def test_an_offline_check_in_replayed_later_keeps_its_time_and_is_stored_once(
    client: httpx.AsyncClient, factory: Factory, session: AsyncSession, clock: FrozenClock
) -> None:
    v = await open_visit(client, factory, session)
    tapped = START - timedelta(minutes=40)
    # The first try reached the server without the time; the queue's replay adds it.
    first = await client.post(
        f"/visits/{v.task_id}/check-in", data={**SITE, "accuracy": "5"}, headers=posting(v, "k1")
    )
    assert first.status_code == 200
    replay = await client.post(
        f"/visits/{v.task_id}/check-in",
        data={**SITE, "accuracy": "5", "recordedAt": tapped.isoformat()},
        headers=posting(v, "k1"),
    )
    assert replay.headers["idempotent-replay"] == "true"
    rows = (
        await session.scalars(select(CheckIn).where(CheckIn.task_id == uuid.UUID(v.task_id)))
    ).all()
    assert [r.at for r in rows] == [START]

    # Made offline: only the replay arrives, with the time of the tap.
    _, _, second_id, _ = await measurement_visit(
        client, factory, session, world=v.world, pipeline=v.pipeline, title="Second"
    )
    clock.advance(timedelta(minutes=5))
    late = await client.post(
        f"/visits/{second_id}/check-in",
        data={**SITE, "accuracy": "5", "recordedAt": tapped.isoformat()},
        headers=posting(v, "k2"),
    )
    assert late.status_code == 200, late.text
    row = await session.scalar(select(CheckIn).where(CheckIn.task_id == uuid.UUID(second_id)))
    assert row is not None
    assert row.at == tapped
    task = await session.get(Task, uuid.UUID(second_id))
    assert task is not None
    await session.refresh(task)
    assert task.started_at == tapped

    too_old = await client.post(
        f"/visits/{second_id}/check-out",
        data={**SITE, "outcome": "ok", "recordedAt": (START - timedelta(hours=13)).isoformat()},
        headers=posting(v, "k3"),
    )
    assert too_old.status_code == 422
    assert "recordedAt: older than 12 hours" in too_old.text
    naive = await client.post(
        f"/visits/{second_id}/check-out",
        data={**SITE, "outcome": "ok", "recordedAt": "2026-11-24T08:00:00"},
        headers=posting(v),
    )
    assert "recordedAt: needs a time zone offset" in naive.text


async def test_the_day_in_driving_order_with_etas_call_buttons_and_totals(
    client: httpx.AsyncClient, factory: Factory, session: AsyncSession, clock: FrozenClock
) -> None:
    world, pipeline, late_id, _ = await measurement_visit(
        client, factory, session, title="Later visit", starts=START + timedelta(hours=5)
    )
    _, _, first_id, _ = await measurement_visit(
        client,
        factory,
        session,
        title="First visit",
        starts=START + timedelta(hours=1),
        world=world,
        pipeline=pipeline,
    )
    _, _, done_id, _ = await measurement_visit(
        client, factory, session, title="Done visit", world=world, pipeline=pipeline
    )
    await login_in_browser(client, world.measurer_a.email)
    page = await client.get("/today")
    csrf = csrf_from(page.text)
    headers = {"x-csrftoken": csrf, **HTMX}
    await client.post(f"/visits/{done_id}/check-in", data=SITE, headers=headers)
    clock.advance(timedelta(minutes=20))
    await client.post(
        f"/visits/{done_id}/check-out", data={**SITE, "outcome": "ok"}, headers=headers
    )
    html = (await client.get("/today")).text
    first = html.index("<strong>First visit</strong>")
    assert first < html.index("<strong>Later visit</strong>")
    assert html.index("Later visit") < html.index("Done (1)")  # done ones folded at the end
    assert html.index("<summary>Done (1)</summary>") < html.index("Done visit")
    assert re.search(r'class="badge next-b">next<', html)
    assert re.search(r'class="eta">ETA \d\d:\d\d<', html)
    assert "13:00–14:00" in html  # First visit's window, Moscow time
    assert 'href="tel:+79123456789"' in html
    assert f'href="/visits/{first_id}"' in html
    assert f'href="/visits/{late_id}"' in html
    assert "<strong>3</strong> visits · <strong>1</strong> done · <strong>2</strong> to go" in html
    partial = await client.get("/today", headers=HTMX)
    assert "<html" not in partial.text
    assert 'id="day"' in partial.text


async def test_pings_from_the_page_go_through_the_ping_ingest_once_per_key(
    client: httpx.AsyncClient, factory: Factory, session: AsyncSession
) -> None:
    world = await factory.world()
    worker = world.installer_a
    await login_in_browser(client, worker.email)
    csrf = csrf_from((await client.get("/today")).text)
    headers = {"x-csrftoken": csrf, "Idempotency-Key": "batch-1"}
    points = {
        "points": [
            {"timestamp": (START - timedelta(seconds=30)).isoformat(), "lat": 55.79, "lon": 49.12},
            {"timestamp": START.isoformat(), "lat": 95, "lon": 49.12},
        ]
    }
    off_shift = await client.post("/today/pings", json=points, headers=headers)
    assert off_shift.status_code == 200, off_shift.text
    body = off_shift.json()
    assert body["accepted"] == 0
    assert [r["field"] for r in body["rejected"]] == ["lat"]
    started = await client.post("/today/shift/start", data={"_csrf_token": csrf})
    assert started.status_code == 303
    headers["Idempotency-Key"] = "batch-2"
    batch = {
        "points": [{"timestamp": START.isoformat(), "lat": 55.79, "lon": 49.12, "accuracy": 6}]
    }
    stored = await client.post("/today/pings", json=batch, headers=headers)
    assert stored.json()["accepted"] == 1
    again = await client.post("/today/pings", json=batch, headers=headers)
    assert again.headers["idempotent-replay"] == "true"
    assert again.json() == stored.json()
    recorded = await session.scalar(
        text("SELECT count(*) FROM pings WHERE user_id = :u"), {"u": worker.id}
    )
    assert recorded == 1
    broken = await client.post("/today/pings", content=b"{nope", headers={"x-csrftoken": csrf})
    assert broken.status_code == 400
    assert broken.headers["content-type"].startswith("application/problem+json")
    page = await client.get("/today")
    assert "data-shift-open" in page.text


async def test_the_app_installs_manifest_service_worker_and_icons(
    client: httpx.AsyncClient,
) -> None:
    manifest = await client.get("/manifest.webmanifest")
    assert manifest.status_code == 200
    assert manifest.headers["content-type"].startswith("application/manifest+json")
    body = manifest.json()
    assert body["start_url"] == "/today"
    assert {i["sizes"] for i in body["icons"]} == {"192x192", "512x512"}
    for icon in body["icons"]:
        image = await client.get(icon["src"])
        assert image.status_code == 200
        assert image.content.startswith(b"\x89PNG")
        size = int(icon["sizes"].split("x")[0])
        assert int.from_bytes(image.content[16:20], "big") == size
    worker = await client.get("/sw.js")
    assert worker.status_code == 200
    assert worker.headers["content-type"].startswith("text/javascript")
    assert worker.headers["service-worker-allowed"] == "/"
    assert "caches.open" in worker.text
    own = len(worker.content)
    for name in ("field.js", "offline.js"):
        script = await client.get(f"/static/js/{name}")
        assert script.status_code == 200
        own += len(script.content)
    assert own <= 18 * 1024  # the brief's budget for this client's scripts
