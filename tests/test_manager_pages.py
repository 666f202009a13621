"""The manager's pages over HTTP with the session cookie: roles (field staff refused, managers
see their teams only), the deal board's stage moves (rules refused on the card, 422), the deal
card's forms, the tasks filters and pages, plan-the-day preview and apply, the live map's data
routes and the customer card's site map."""

from __future__ import annotations

import re
import uuid
from datetime import timedelta
from typing import Any

import httpx
import msgspec
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from backend.audit.models import AuditEntry
from backend.customers.models import Site
from backend.sales.models import Deal, DealStageChange
from backend.seed.pipeline import seed_window_pipeline
from backend.tasks.models import Task, TaskStatus
from tests.conftest import START, Factory, World, customer_body
from tests.test_routing import BASE_LON, LAT, TOMORROW, local, set_base, unassigned
from tests.test_tracking import fix, send, start_shift
from tests.test_web import csrf_from, login_in_browser

HTMX = {"hx-request": "true"}


async def as_user(client: httpx.AsyncClient, email: str) -> str:
    """Log the browser in as ``email`` (a fresh cookie jar); the CSRF token of its pages."""
    client.cookies.clear()
    return await login_in_browser(client, email)


async def a_deal(
    client: httpx.AsyncClient, factory: Factory, world: World, title: str = "Три окна"
) -> dict[str, Any]:
    """A customer of manager A and a deal on it at the first stage."""
    made = await client.post(
        "/api/v1/customers",
        json=customer_body(f"Customer of {title}"),
        headers=factory.auth(world.manager_a),
    )
    assert made.status_code == 201, made.text
    customer = made.json()
    body = {"customerId": customer["id"], "siteId": customer["sites"][0]["id"], "title": title}
    created = await client.post("/api/v1/deals", json=body, headers=factory.auth(world.manager_a))
    assert created.status_code == 201, created.text
    deal: dict[str, Any] = created.json()["deal"]
    return deal


async def test_field_staff_are_refused_the_manager_pages(
    client: httpx.AsyncClient, factory: Factory
) -> None:
    world = await factory.world()
    await as_user(client, world.measurer_a.email)
    for path in ("/team", "/map", "/deals", "/dispatch", f"/map/workers/{world.installer_a.id}"):
        response = await client.get(path)
        assert response.status_code == 403, path
    own = await client.get("/tasks")
    assert own.status_code == 200
    assert 'href="/map"' not in own.text  # no manager links in the nav


async def test_managers_see_only_their_teams_and_the_board_shows_lateness(
    client: httpx.AsyncClient, factory: Factory, session: AsyncSession
) -> None:
    world = await factory.world()
    # A visit of the measurer's that should have ended an hour ago: he is late for it.
    made = await client.post(
        "/api/v1/customers",
        json=customer_body("Late Customer"),
        headers=factory.auth(world.manager_a),
    )
    customer = made.json()
    task = await client.post(
        "/api/v1/tasks",
        json={
            "kind": "measurement",
            "title": "Measure the late flat",
            "customerId": customer["id"],
            "siteId": customer["sites"][0]["id"],
            "assigneeId": str(world.measurer_a.id),
            "windowStart": (START - timedelta(hours=2)).isoformat(),
            "windowEnd": (START - timedelta(hours=1)).isoformat(),
        },
        headers=factory.auth(world.manager_a),
    )
    assert task.status_code == 201, task.text
    await start_shift(client, factory, world.installer_a)
    sent = await send(client, factory, world.installer_a, [fix(START, battery=12.0)])
    assert sent.status_code == 200, sent.text

    await as_user(client, world.manager_a.email)
    board = await client.get("/team")
    assert board.status_code == 200
    assert "Max Measurer" in board.text
    assert "Ivan Installer" not in board.text  # team B
    row = board.text[board.text.index("Max Measurer") :]
    row = row[: row.index("</tr>")]
    assert "Measure the late flat" in row
    assert "late" in row
    igor = board.text[board.text.index("Igor Installer") :]
    igor = igor[: igor.index("</tr>")]
    assert "12 %" in igor
    assert "idle" in igor
    # Another team's id is not the manager's to look at.
    other = await client.get(f"/team?team={world.team_b.id}")
    assert other.status_code == 404
    mine = await client.get(f"/team?team={world.team_a.id}", headers=HTMX)
    assert mine.status_code == 200
    assert "<html" not in mine.text

    page = await client.get("/map")
    assert page.status_code == 200
    assert 'data-stream="/map/stream"' in page.text
    assert f'data-user="{world.installer_a.id}"' in page.text
    assert 'data-lat="55.7887' in page.text
    assert "Ivan Installer" not in page.text
    assert "No map tiles are configured" in page.text
    assert (await client.get(f"/map/workers/{world.installer_b.id}")).status_code == 404
    detail = await client.get(f"/map/workers/{world.measurer_a.id}")
    assert detail.status_code == 200
    body = detail.json()
    assert body["track"]["type"] == "FeatureCollection"
    [stop] = body["route"]["stops"]
    assert stop["title"] == "Measure the late flat"
    assert stop["lateS"] > 0
    looks = await session.scalars(
        select(AuditEntry).where(
            AuditEntry.actor_id == world.manager_a.id, AuditEntry.entity == "location"
        )
    )
    assert {e.action for e in looks.all()} == {"viewed_live", "viewed_track"}


async def test_the_admin_picks_a_team_on_the_map(
    client: httpx.AsyncClient, factory: Factory
) -> None:
    world = await factory.world()
    await as_user(client, world.admin.email)
    everyone = await client.get("/map")
    assert "Ivan Installer" in everyone.text
    assert "Igor Installer" in everyone.text
    team_b = await client.get(f"/map?team={world.team_b.id}")
    assert "Ivan Installer" in team_b.text
    assert "Igor Installer" not in team_b.text
    assert f'data-stream="/map/stream?team={world.team_b.id}"' in team_b.text
    bad = await client.get("/map?team=not-a-uuid")
    assert bad.status_code == 400


async def test_a_stage_move_refused_by_a_rule_shows_its_error_on_the_card(
    client: httpx.AsyncClient, factory: Factory, session: AsyncSession
) -> None:
    world = await factory.world()
    pipeline = await seed_window_pipeline(session, world.org)
    await session.commit()
    deal = await a_deal(client, factory, world)
    csrf = await as_user(client, world.manager_a.email)
    board = await client.get("/deals")
    assert board.status_code == 200
    assert "Три окна" in board.text
    for stage in pipeline.stages.values():
        assert stage.name in board.text
    csrf = csrf_from(board.text)

    measurements = pipeline.stages["measurements"].id
    refused = await client.post(
        f"/deals/{deal['id']}/move",
        data={
            "_csrf_token": csrf,
            "stage_id": str(measurements),
            "version": "1",
            "pipeline": str(pipeline.pipeline.id),
        },
        headers=HTMX,
    )
    assert refused.status_code == 422
    assert "<html" not in refused.text
    card = refused.text[refused.text.index(f'id="deal-{deal["id"]}"') :]
    card = card[: card.index("</article>")]
    assert 'role="alert"' in card
    assert "a date and time for the visit" in card
    row = await session.get(Deal, uuid.UUID(deal["id"]))
    assert row is not None
    await session.refresh(row)
    assert row.stage_id == pipeline.stages["first_call"].id

    # Without htmx the whole page comes back with the error on the card.
    plain = await client.post(
        f"/deals/{deal['id']}/move",
        data={
            "_csrf_token": csrf,
            "stage_id": str(pipeline.stages["payment"].id),
            "pipeline": str(pipeline.pipeline.id),
        },
    )
    assert plain.status_code == 422
    assert "<html" in plain.text
    assert "can be reached only from" in plain.text

    lost = pipeline.stages["lost"].id
    needs_reason = await client.post(
        f"/deals/{deal['id']}/move",
        data={"_csrf_token": csrf, "stage_id": str(lost), "version": "1"},
    )
    assert needs_reason.status_code == 422
    assert 'id="m-lost-err"' in needs_reason.text
    field = needs_reason.text[needs_reason.text.index('id="m-lost"') :]
    assert "the reason the deal was lost" in field[: field.index("</p>")]

    forged = await client.post(
        f"/deals/{deal['id']}/move",
        data={"_csrf_token": "forged" * 10, "stage_id": str(lost), "lost_reason": "x"},
    )
    assert forged.status_code == 403

    # The card's form gives the visit time in the manager's zone (Moscow) and moves the deal.
    moved = await client.post(
        f"/deals/{deal['id']}/move",
        data={
            "_csrf_token": csrf,
            "stage_id": str(measurements),
            "version": "1",
            "scheduled_start": "2026-11-25T10:00",
            "scheduled_end": "2026-11-25T11:00",
            "comment": "Called, agreed",
        },
    )
    assert moved.status_code == 303
    assert moved.headers["location"] == f"/deals/{deal['id']}"
    await session.refresh(row)
    assert row.stage_id == measurements
    assert row.scheduled_start == local(TOMORROW, 10)
    changes = await session.scalars(
        select(DealStageChange).where(DealStageChange.deal_id == row.id)
    )
    assert [c.comment for c in changes.all()][-1] == "Called, agreed"

    # A stale card (version 1) is refused with the conflict's message.
    stale = await client.post(
        f"/deals/{deal['id']}/move",
        data={
            "_csrf_token": csrf,
            "stage_id": str(pipeline.stages["first_call"].id),
            "version": "1",
            "pipeline": str(pipeline.pipeline.id),
        },
        headers=HTMX,
    )
    assert stale.status_code == 409
    assert "changed meanwhile" in stale.text

    card_page = await client.get(f"/deals/{deal['id']}")
    assert card_page.status_code == 200
    text = card_page.text
    assert "Called, agreed" in text
    assert pipeline.stages["measurements"].name in text
    assert "Generate PDF" in text


async def test_manager_b_cannot_open_or_move_team_a_deals(
    client: httpx.AsyncClient, factory: Factory, session: AsyncSession
) -> None:
    world = await factory.world()
    pipeline = await seed_window_pipeline(session, world.org)
    await session.commit()
    deal = await a_deal(client, factory, world, title="Secret deal")
    csrf = await as_user(client, world.manager_b.email)
    board = await client.get("/deals")
    assert "Secret deal" not in board.text
    assert (await client.get(f"/deals/{deal['id']}")).status_code == 404
    moved = await client.post(
        f"/deals/{deal['id']}/move",
        data={
            "_csrf_token": csrf,
            "stage_id": str(pipeline.stages["lost"].id),
            "lost_reason": "mine now",
        },
    )
    assert moved.status_code == 404
    row = await session.get(Deal, uuid.UUID(deal["id"]))
    assert row is not None
    await session.refresh(row)
    assert row.stage_id == pipeline.stages["first_call"].id


async def test_the_deal_card_logs_calls_and_shows_errors_at_the_field(
    client: httpx.AsyncClient, factory: Factory, session: AsyncSession
) -> None:
    world = await factory.world()
    await seed_window_pipeline(session, world.org)
    await session.commit()
    deal = await a_deal(client, factory, world)
    await as_user(client, world.manager_a.email)
    csrf = csrf_from((await client.get(f"/deals/{deal['id']}")).text)
    empty = await client.post(
        f"/deals/{deal['id']}/calls",
        data={"_csrf_token": csrf, "outcome": " ", "duration_min": "abc"},
    )
    assert empty.status_code == 422
    assert 'id="c-outcome-err"' in empty.text
    bad_minutes = await client.post(
        f"/deals/{deal['id']}/calls",
        data={"_csrf_token": csrf, "outcome": "Reached", "duration_min": "-3"},
    )
    assert bad_minutes.status_code == 422
    assert "between 0 and 1440 minutes" in bad_minutes.text
    logged = await client.post(
        f"/deals/{deal['id']}/calls",
        data={"_csrf_token": csrf, "outcome": "Reached the wife", "duration_min": "2.5"},
    )
    assert logged.status_code == 303
    card = await client.get(f"/deals/{deal['id']}")
    calls = card.text[card.text.index('id="calls"') :]
    assert "Reached the wife" in calls[: calls.index("</section>")]
    assert "2 min" in calls or "3 min" in calls
    # The deal's open call task (the automation's call-back) is offered and closed by the call.
    offered = re.search(
        r'<select id="c-task" name="task_id">\s*<option value="">[^<]*</option>'
        r'\s*<option value="([0-9a-f-]{36})" selected>',
        card.text,
    )
    assert offered, "the open call task is offered on the call form"
    closing = await client.post(
        f"/deals/{deal['id']}/calls",
        data={"_csrf_token": csrf, "outcome": "Booked a measurement", "task_id": offered[1]},
    )
    assert closing.status_code == 303
    closed = await session.get(Task, uuid.UUID(offered[1]))
    assert closed is not None
    await session.refresh(closed)
    assert closed.status is TaskStatus.DONE
    card = await client.get(f"/deals/{deal['id']}")
    assert offered[1] not in card.text[card.text.index('id="calls"') :]
    stray = await client.post(
        f"/deals/{deal['id']}/calls",
        data={"_csrf_token": csrf, "outcome": "Again", "task_id": "not-a-task"},
    )
    assert stray.status_code == 422
    assert "call tasks" in stray.text
    unknown = await client.post(
        f"/deals/{deal['id']}/documents", data={"_csrf_token": csrf, "template": "No such"}
    )
    assert unknown.status_code in (404, 422)
    assert 'id="d-template-err"' in unknown.text


async def test_tasks_filter_by_owner_status_and_overdue_with_pages(
    client: httpx.AsyncClient, factory: Factory, session: AsyncSession
) -> None:
    world = await factory.world()
    made = await client.post(
        "/api/v1/customers", json=customer_body(), headers=factory.auth(world.manager_a)
    )
    customer_id = made.json()["id"]
    for n in range(53):
        due = START + timedelta(hours=n - 2, minutes=30)  # two of them already overdue
        body = {
            "kind": "call",
            "title": f"Call {n:02d}",
            "customerId": customer_id,
            "assigneeId": str(world.measurer_a.id if n % 2 else world.manager_a.id),
            "dueAt": due.isoformat(),
        }
        created = await client.post(
            "/api/v1/tasks", json=body, headers=factory.auth(world.manager_a)
        )
        assert created.status_code == 201, created.text
    await as_user(client, world.manager_a.email)
    first = await client.get("/tasks")
    assert first.status_code == 200
    assert first.text.count("data-task=") == 50
    nxt = re.search(r'rel="next" href="([^"]+)"', first.text)
    assert nxt is not None
    second = await client.get(nxt.group(1).replace("&amp;", "&"))
    assert second.text.count("data-task=") == 3
    assert "Call 52" in second.text
    overdue = await client.get("/tasks?overdue=true", headers=HTMX)
    assert overdue.text.count("data-task=") == 2
    assert "<html" not in overdue.text
    mine = await client.get("/tasks?scope=mine")
    assert mine.text.count("data-task=") == 27  # the even ones
    assert "Max Measurer" not in mine.text
    wrong = await client.get("/tasks?status=sleeping&kind=nap")
    assert wrong.status_code == 422
    assert 'id="f-status-err"' in wrong.text
    assert 'id="f-kind-err"' in wrong.text

    await as_user(client, world.installer_b.email)
    theirs = await client.get("/tasks")
    assert theirs.status_code == 200
    assert "data-task=" not in theirs.text


async def test_plan_the_day_preview_then_apply(
    client: httpx.AsyncClient, factory: Factory, session: AsyncSession
) -> None:
    world = await factory.world()
    await set_base(session, world.measurer_a, LAT, BASE_LON)
    await set_base(session, world.installer_a, LAT, 49.30)
    day_start, day_end = local(TOMORROW, 9), local(TOMORROW, 18)
    measure = await unassigned(client, factory, world, "measurement", 49.25, day_start, day_end)
    await as_user(client, world.manager_a.email)
    page = await client.get("/dispatch")
    assert page.status_code == 200
    csrf = csrf_from(page.text)
    assert "Team A" in page.text
    assert "Team B" not in page.text

    wrong = await client.post(
        "/dispatch/preview", data={"_csrf_token": csrf, "team_id": "x", "date": "soon"}
    )
    assert wrong.status_code == 422
    assert 'id="p-team-err"' in wrong.text
    far = await client.post(
        "/dispatch/preview",
        data={"_csrf_token": csrf, "team_id": str(world.team_a.id), "date": "2027-06-01"},
    )
    assert far.status_code == 422
    assert 'id="p-date-err"' in far.text
    foreign = await client.post(
        "/dispatch/preview",
        data={"_csrf_token": csrf, "team_id": str(world.team_b.id), "date": "2026-11-25"},
    )
    assert foreign.status_code == 422
    assert 'id="p-team-err"' in foreign.text

    made = await client.post(
        "/dispatch/preview",
        data={"_csrf_token": csrf, "team_id": str(world.team_a.id), "date": "2026-11-25"},
    )
    assert made.status_code == 303
    plan_url = made.headers["location"]
    plan = await client.get(plan_url)
    assert plan.status_code == 200
    assert 'data-status="preview"' in plan.text
    assert f'data-task="{measure}"' in plan.text
    assert "Apply: assign 1 visits" in plan.text
    task = await session.get(Task, uuid.UUID(measure))
    assert task is not None
    await session.refresh(task)
    assert task.assignee_id is None

    applied = await client.post(f"{plan_url}/apply", data={"_csrf_token": csrf})
    assert applied.status_code == 303
    shown = await client.get(plan_url)
    assert 'data-status="applied"' in shown.text
    assert "1 visits assigned" in shown.text
    await session.refresh(task)
    assert task.assignee_id == world.measurer_a.id

    await as_user(client, world.manager_b.email)
    assert (await client.get(plan_url)).status_code == 404


async def test_the_customer_card_shows_its_sites_on_a_map(
    client: httpx.AsyncClient, factory: Factory
) -> None:
    world = await factory.world()
    made = await client.post(
        "/api/v1/customers", json=customer_body(), headers=factory.auth(world.manager_a)
    )
    await as_user(client, world.manager_a.email)
    card = await client.get(f"/customers/{made.json()['id']}")
    assert card.status_code == 200
    match = re.search(r'data-sites="([^"]+)"', card.text)
    assert match is not None
    sites = msgspec.json.decode(match.group(1).replace("&#34;", '"').replace("&quot;", '"'))
    assert sites == [{"lat": 55.7887, "lon": 49.1221, "label": sites[0]["label"]}]
    assert "/static/js/map.js" in card.text


async def test_the_deal_card_sets_where_the_work_is(
    client: httpx.AsyncClient, factory: Factory, session: AsyncSession
) -> None:
    # A website request without coordinates (no geocoder) leaves the deal without a site: the
    # manager adds it on the card, with the point copied from a map app.
    world = await factory.world()
    await seed_window_pipeline(session, world.org)
    await session.commit()
    made = await client.post(
        "/api/v1/customers",
        json=customer_body("Sidorova Anna", sites=[]),
        headers=factory.auth(world.manager_a),
    )
    assert made.status_code == 201, made.text
    created = await client.post(
        "/api/v1/deals",
        json={"customerId": made.json()["id"], "title": "Balcony"},
        headers=factory.auth(world.manager_a),
    )
    assert created.status_code == 201, created.text
    deal_id = created.json()["deal"]["id"]
    other = await a_deal(client, factory, world, "Someone else's")
    other_site = (await session.get(Deal, uuid.UUID(other["id"]))).site_id  # type: ignore[union-attr]
    await as_user(client, world.manager_a.email)
    card = await client.get(f"/deals/{deal_id}")
    assert "set where the work is" in card.text
    csrf = csrf_from(card.text)

    no_point = await client.post(
        f"/deals/{deal_id}/site",
        data={"_csrf_token": csrf, "address": "Kazan, Pushkin St 5", "lat": "", "lon": ""},
    )
    assert no_point.status_code == 422
    assert 'id="s-lat-err"' in no_point.text
    assert "Kazan, Pushkin St 5" in no_point.text  # what was typed is kept
    half = await client.post(
        f"/deals/{deal_id}/site",
        data={"_csrf_token": csrf, "address": "Kazan, Pushkin St 5", "lat": "55,79", "lon": "x"},
    )
    assert half.status_code == 422
    assert 'id="s-lon-err"' in half.text
    foreign = await client.post(
        f"/deals/{deal_id}/site", data={"_csrf_token": csrf, "site_id": str(other_site)}
    )
    assert foreign.status_code == 422
    assert "no such site of the deal" in foreign.text

    saved = await client.post(
        f"/deals/{deal_id}/site",
        data={
            "_csrf_token": csrf,
            "address": "Kazan, Pushkin St 5",
            "access_notes": "code 77",
            "lat": "55,7903",
            "lon": "49.1347",
        },
    )
    assert saved.status_code == 303
    row = await session.get(Deal, uuid.UUID(deal_id))
    assert row is not None
    await session.refresh(row)
    site = await session.get(Site, row.site_id)
    assert site is not None
    assert site.customer_id == uuid.UUID(made.json()["id"])
    assert (site.address, site.access_notes) == ("Kazan, Pushkin St 5", "code 77")
    card = await client.get(f"/deals/{deal_id}")
    assert "Kazan, Pushkin St 5" in card.text
    assert "set where the work is" not in card.text
