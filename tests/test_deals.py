"""Deals over the API: creating, stage rules on moves, optimistic versions, line items,
visibility, audit and history, calls, attachments and generated documents."""

from __future__ import annotations

import dataclasses
import hashlib
import uuid
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from litestar import Litestar
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from backend.app import create_app
from backend.audit.models import AuditEntry
from backend.config import Settings
from backend.documents.models import Attachment, Document
from backend.lib.clock import FrozenClock
from backend.sales.models import Deal, DealStageChange
from backend.seed.pipeline import WindowPipeline, seed_window_pipeline
from backend.tasks.models import Task, TaskKind
from tests.conftest import START, Factory, World, customer_body

PDF_BYTES = b"%PDF-1.4\n1 0 obj << /Type /Catalog >> endobj\ntrailer << /Root 1 0 R >>\n%%EOF\n"


@dataclasses.dataclass
class Setup:
    world: World
    pipeline: WindowPipeline
    stages: dict[str, str]
    customer: dict[str, Any]


async def _setup(
    client: httpx.AsyncClient, factory: Factory, session: AsyncSession, name: str = "Acme Windows"
) -> Setup:
    world = await factory.world(name)
    pipeline = await seed_window_pipeline(session, world.org)
    await session.commit()
    created = await client.post(
        "/api/v1/customers", json=customer_body(), headers=factory.auth(world.manager_a)
    )
    assert created.status_code == 201, created.text
    stages = {k: str(s.id) for k, s in pipeline.stages.items()}
    return Setup(world, pipeline, stages, created.json())


async def _new_deal(
    client: httpx.AsyncClient, factory: Factory, s: Setup, **extra: Any
) -> dict[str, Any]:
    body = {
        "customerId": s.customer["id"],
        "siteId": s.customer["sites"][0]["id"],
        "title": "Три окна",
    } | extra
    created = await client.post("/api/v1/deals", json=body, headers=factory.auth(s.world.manager_a))
    assert created.status_code == 201, created.text
    result: dict[str, Any] = created.json()
    return result


async def _move(
    client: httpx.AsyncClient, headers: dict[str, str], deal_id: str, **body: Any
) -> httpx.Response:
    return await client.post(f"/api/v1/deals/{deal_id}/stage", json=body, headers=headers)


def _fields(response: httpx.Response) -> set[str]:
    return {e["field"] for e in response.json()["errors"]}


async def test_manager_creates_a_deal_at_first_call_with_its_task(
    client: httpx.AsyncClient, factory: Factory, session: AsyncSession
) -> None:
    s = await _setup(client, factory, session)
    result = await _new_deal(client, factory, s)
    deal = result["deal"]
    assert deal["stageId"] == s.stages["first_call"]
    assert deal["stageKind"] == "open"
    assert deal["ownerId"] == str(s.world.manager_a.id)
    assert deal["customerName"] == "Ivanov Petr"
    assert deal["currency"] == "RUB"
    assert deal["version"] == 1
    assert deal["closedAt"] is None
    [task] = result["tasks"]
    assert task["kind"] == "call"
    assert task["assigneeId"] == str(s.world.manager_a.id)
    assert task["dueAt"].startswith("2026-11-24T09:15:00")

    row = await session.get(Deal, uuid.UUID(deal["id"]))
    assert row is not None
    assert row.stage_id == s.pipeline.stages["first_call"].id
    tasks = (await session.scalars(select(Task).where(Task.deal_id == row.id))).all()
    assert [(t.kind, t.assignee_id) for t in tasks] == [(TaskKind.CALL, s.world.manager_a.id)]
    history = (
        await session.scalars(select(DealStageChange).where(DealStageChange.deal_id == row.id))
    ).all()
    assert [(h.from_stage_id, h.to_stage_id) for h in history] == [
        (None, s.pipeline.stages["first_call"].id)
    ]

    refused = await client.post(
        "/api/v1/deals",
        json={"customerId": s.customer["id"], "title": "Mine"},
        headers=factory.auth(s.world.measurer_a),
    )
    assert refused.status_code == 403
    assert refused.json()["type"] == "urn:fieldcrm:problem:forbidden"
    count = await session.scalar(select(Deal.id).where(Deal.title == "Mine"))
    assert count is None


async def test_stage_transitions_follow_the_rules(
    client: httpx.AsyncClient, factory: Factory, session: AsyncSession
) -> None:
    s = await _setup(client, factory, session)
    manager = factory.auth(s.world.manager_a)
    deal_id = (await _new_deal(client, factory, s))["deal"]["id"]

    skip = await _move(client, manager, deal_id, stageId=s.stages["payment"])
    assert skip.status_code == 422
    assert skip.json()["type"] == "urn:fieldcrm:problem:stage-rule"
    [error] = skip.json()["errors"]
    assert error["field"] == "stageId"
    assert "Согласование" in error["reason"]  # Payment is reached only from Agreement

    same = await _move(client, manager, deal_id, stageId=s.stages["first_call"])
    assert same.status_code == 409
    assert same.json()["type"] == "urn:fieldcrm:problem:conflict"

    other = await factory.world("Other Windows")
    foreign = await seed_window_pipeline(session, other.org)
    await session.commit()
    for stage_id in (str(foreign.stages["measurements"].id), str(uuid.uuid4())):
        wrong = await _move(client, manager, deal_id, stageId=stage_id)
        assert wrong.status_code == 422
        assert wrong.json()["type"] == "urn:fieldcrm:problem:validation-error"
        assert _fields(wrong) == {"stageId"}

    unscheduled = await _move(client, manager, deal_id, stageId=s.stages["measurements"])
    assert unscheduled.status_code == 422
    assert unscheduled.json()["type"] == "urn:fieldcrm:problem:stage-rule"
    assert _fields(unscheduled) == {"scheduledStart"}

    row = await session.get(Deal, uuid.UUID(deal_id))
    assert row is not None
    await session.refresh(row)
    assert row.stage_id == s.pipeline.stages["first_call"].id
    assert row.version == 1
    changes = (
        await session.scalars(select(DealStageChange).where(DealStageChange.deal_id == row.id))
    ).all()
    assert len(changes) == 1

    no_reason = await _move(client, manager, deal_id, stageId=s.stages["lost"])
    assert no_reason.status_code == 422
    assert no_reason.json()["type"] == "urn:fieldcrm:problem:stage-rule"
    assert _fields(no_reason) == {"lostReason"}

    lost = await _move(
        client, manager, deal_id, stageId=s.stages["lost"], lostReason="Too expensive"
    )
    assert lost.status_code == 200, lost.text
    deal = lost.json()["deal"]
    assert deal["stageKind"] == "lost"
    assert deal["lostReason"] == "Too expensive"
    assert deal["closedAt"].startswith("2026-11-24T09:00:00")
    assert deal["version"] == 2
    await session.refresh(row)
    assert row.stage_id == s.pipeline.stages["lost"].id
    assert row.closed_at == START
    assert row.lost_reason == "Too expensive"


async def test_measurer_cannot_move_into_measurements(
    client: httpx.AsyncClient, factory: Factory, session: AsyncSession
) -> None:
    s = await _setup(client, factory, session)
    deal_id = (await _new_deal(client, factory, s))["deal"]["id"]
    measurer = factory.auth(s.world.measurer_a)
    start = {
        "scheduledStart": "2026-11-26T10:00:00+03:00",
        "scheduledEnd": "2026-11-26T11:00:00+03:00",
    }

    hidden = await _move(client, measurer, deal_id, stageId=s.stages["measurements"], **start)
    assert hidden.status_code == 404  # not theirs yet
    given = await client.post(
        "/api/v1/tasks",
        json={
            "kind": "visit",
            "title": "Look at the windows",
            "dealId": deal_id,
            "assigneeId": str(s.world.measurer_a.id),
        },
        headers=factory.auth(s.world.manager_a),
    )
    assert given.status_code == 201, given.text
    refused = await _move(client, measurer, deal_id, stageId=s.stages["measurements"], **start)
    assert refused.status_code == 422
    assert refused.json()["type"] == "urn:fieldcrm:problem:stage-rule"
    assert _fields(refused) == {"stageId"}
    row = await session.get(Deal, uuid.UUID(deal_id))
    assert row is not None
    await session.refresh(row)
    assert row.stage_id == s.pipeline.stages["first_call"].id
    assert row.scheduled_start is None

    moved = await _move(
        client, factory.auth(s.world.manager_a), deal_id, stageId=s.stages["measurements"], **start
    )
    assert moved.status_code == 200, moved.text
    assert moved.json()["deal"]["scheduledStart"].startswith("2026-11-26T07:00:00")
    [task] = moved.json()["tasks"]
    assert task["kind"] == "measurement"
    assert task["assigneeId"] == str(s.world.measurer_a.id)


async def test_stale_expected_version_is_a_conflict(
    client: httpx.AsyncClient, factory: Factory, session: AsyncSession
) -> None:
    s = await _setup(client, factory, session)
    manager = factory.auth(s.world.manager_a)
    deal_id = (await _new_deal(client, factory, s))["deal"]["id"]
    renamed = await client.patch(
        f"/api/v1/deals/{deal_id}", json={"title": "Renamed", "expectedVersion": 1}, headers=manager
    )
    assert renamed.status_code == 200, renamed.text
    assert renamed.json()["version"] == 2

    stale = await client.patch(
        f"/api/v1/deals/{deal_id}", json={"title": "Again", "expectedVersion": 1}, headers=manager
    )
    assert stale.status_code == 409
    assert stale.json()["type"] == "urn:fieldcrm:problem:conflict"
    stale_move = await _move(
        client, manager, deal_id, stageId=s.stages["lost"], lostReason="x", expectedVersion=1
    )
    assert stale_move.status_code == 409
    row = await session.get(Deal, uuid.UUID(deal_id))
    assert row is not None
    await session.refresh(row)
    assert (row.title, row.version, row.stage_id) == (
        "Renamed",
        2,
        s.pipeline.stages["first_call"].id,
    )


async def test_line_items_set_the_amount_and_are_checked(
    client: httpx.AsyncClient, factory: Factory, session: AsyncSession
) -> None:
    s = await _setup(client, factory, session)
    manager = factory.auth(s.world.manager_a)
    deal_id = (await _new_deal(client, factory, s))["deal"]["id"]
    priced = await client.patch(
        f"/api/v1/deals/{deal_id}",
        json={
            "lineItems": [
                {"name": "Окно ПВХ", "quantity": "3", "unitPrice": "45000.50"},
                {"name": "Подоконник", "quantity": "2.5", "unitPrice": "1000", "unit": "м"},
            ]
        },
        headers=manager,
    )
    assert priced.status_code == 200, priced.text
    body = priced.json()
    assert body["amount"] == "137501.50"
    assert [i["total"] for i in body["lineItems"]] == ["135001.50", "2500.00"]

    for item, field in (
        ({"name": "Окно", "quantity": "1", "unitPrice": "-1"}, "lineItems[0].unitPrice"),
        ({"name": "Окно", "quantity": "0", "unitPrice": "100"}, "lineItems[0].quantity"),
        ({"name": "Окно", "quantity": "-2", "unitPrice": "100"}, "lineItems[0].quantity"),
    ):
        bad = await client.patch(
            f"/api/v1/deals/{deal_id}", json={"lineItems": [item]}, headers=manager
        )
        assert bad.status_code == 422, bad.text
        assert _fields(bad) == {field}

    row = await session.get(Deal, uuid.UUID(deal_id))
    assert row is not None
    await session.refresh(row)
    assert str(row.amount) == "137501.50"
    assert len(row.line_items) == 2
    assert row.version == 2

    created = await _new_deal(
        client,
        factory,
        s,
        lineItems=[{"name": "Откос", "quantity": "4", "unitPrice": "750"}],
    )
    assert created["deal"]["amount"] == "3000.00"


async def test_visibility_of_deals(
    client: httpx.AsyncClient, factory: Factory, session: AsyncSession
) -> None:
    s = await _setup(client, factory, session)
    deal_id = (await _new_deal(client, factory, s))["deal"]["id"]
    url = f"/api/v1/deals/{deal_id}"

    assert (await client.get(url, headers=factory.auth(s.world.manager_a))).status_code == 200
    assert (await client.get(url, headers=factory.auth(s.world.admin))).status_code == 200
    other_manager = await client.get(url, headers=factory.auth(s.world.manager_b))
    assert other_manager.status_code == 404
    assert other_manager.json()["type"] == "urn:fieldcrm:problem:not-found"
    listed = await client.get("/api/v1/deals", headers=factory.auth(s.world.manager_b))
    assert listed.json()["items"] == []
    moved = await _move(
        client, factory.auth(s.world.manager_b), deal_id, stageId=s.stages["lost"], lostReason="x"
    )
    assert moved.status_code == 404

    measurer = factory.auth(s.world.measurer_a)
    assert (await client.get(url, headers=measurer)).status_code == 404
    given = await client.post(
        "/api/v1/tasks",
        json={
            "kind": "visit",
            "title": "Visit",
            "dealId": deal_id,
            "assigneeId": str(s.world.measurer_a.id),
        },
        headers=factory.auth(s.world.manager_a),
    )
    assert given.status_code == 201, given.text
    seen = await client.get(url, headers=measurer)
    assert seen.status_code == 200
    assert seen.json()["id"] == deal_id
    assert [
        d["id"] for d in (await client.get("/api/v1/deals", headers=measurer)).json()["items"]
    ] == [deal_id]
    # Another field user of the same team still sees nothing.
    assert (await client.get(url, headers=factory.auth(s.world.installer_a))).status_code == 404

    stranger = await factory.world("Other Windows")
    assert (await client.get(url, headers=factory.auth(stranger.admin))).status_code == 404
    for path in ("history", "timeline", "audit", "attachments", "documents"):
        response = await client.get(f"{url}/{path}", headers=factory.auth(stranger.admin))
        assert response.status_code == 404, path


async def test_audit_and_history(
    client: httpx.AsyncClient, factory: Factory, session: AsyncSession, clock: FrozenClock
) -> None:
    s = await _setup(client, factory, session)
    deal_id = (await _new_deal(client, factory, s))["deal"]["id"]
    clock.advance(timedelta(minutes=7))
    renamed = await client.patch(
        f"/api/v1/deals/{deal_id}",
        json={"title": "Пять окон"},
        headers=factory.auth(s.world.manager_a),
    )
    assert renamed.status_code == 200, renamed.text
    unchanged = await client.patch(
        f"/api/v1/deals/{deal_id}",
        json={"title": "Пять окон"},
        headers=factory.auth(s.world.manager_a),
    )
    assert unchanged.json()["version"] == 2  # no change, no new version or entry
    clock.advance(timedelta(minutes=3))
    moved = await _move(
        client,
        factory.auth(s.world.manager_a),
        deal_id,
        stageId=s.stages["measurements"],
        scheduledStart="2026-11-26T10:00:00+03:00",
        comment="Booked",
    )
    assert moved.status_code == 200, moved.text

    audit = await client.get(
        f"/api/v1/deals/{deal_id}/audit", headers=factory.auth(s.world.manager_a)
    )
    assert audit.status_code == 200
    entries = audit.json()
    assert [e["action"] for e in entries] == ["created", "updated", "stage_changed"]
    updated = entries[1]
    assert updated["changes"] == {"title": ["Три окна", "Пять окон"]}
    assert updated["actorId"] == str(s.world.manager_a.id)
    assert updated["at"].startswith("2026-11-24T09:07:00")
    assert entries[2]["changes"]["stage"] == ["Первый звонок", "Замер"]
    rows = (
        await session.scalars(
            select(AuditEntry).where(
                AuditEntry.entity == "deal", AuditEntry.entity_id == uuid.UUID(deal_id)
            )
        )
    ).all()
    assert len(rows) == 3

    history = await client.get(
        f"/api/v1/deals/{deal_id}/history", headers=factory.auth(s.world.manager_a)
    )
    assert history.status_code == 200
    first, second = history.json()
    assert first["fromStageId"] is None
    assert first["toStageId"] == s.stages["first_call"]
    assert first["secondsInPrevious"] is None
    assert second["fromStageId"] == s.stages["first_call"]
    assert second["toStageId"] == s.stages["measurements"]
    assert second["secondsInPrevious"] == 10 * 60
    assert second["comment"] == "Booked"
    assert second["actorId"] == str(s.world.manager_a.id)

    # Field staff may see the deal (the measurement is theirs) but not its audit log.
    forbidden = await client.get(
        f"/api/v1/deals/{deal_id}/audit", headers=factory.auth(s.world.measurer_a)
    )
    assert forbidden.status_code == 403


async def test_calls_close_only_call_tasks(
    client: httpx.AsyncClient, factory: Factory, session: AsyncSession
) -> None:
    s = await _setup(client, factory, session)
    manager = factory.auth(s.world.manager_a)
    result = await _new_deal(client, factory, s)
    deal_id = result["deal"]["id"]
    call_task = result["tasks"][0]
    visit = await client.post(
        "/api/v1/tasks",
        json={"kind": "visit", "title": "Visit", "dealId": deal_id},
        headers=manager,
    )
    assert visit.status_code == 201, visit.text

    wrong = await client.post(
        f"/api/v1/deals/{deal_id}/calls",
        json={"outcome": "no answer", "taskId": visit.json()["id"]},
        headers=manager,
    )
    assert wrong.status_code == 422
    assert _fields(wrong) == {"taskId"}
    unknown = await client.post(
        f"/api/v1/deals/{deal_id}/calls",
        json={"outcome": "no answer", "taskId": str(uuid.uuid4())},
        headers=manager,
    )
    assert unknown.status_code == 422
    assert _fields(unknown) == {"taskId"}
    visit_row = await session.get(Task, uuid.UUID(visit.json()["id"]))
    assert visit_row is not None
    await session.refresh(visit_row)
    assert visit_row.status.value == "open"

    logged = await client.post(
        f"/api/v1/deals/{deal_id}/calls",
        json={"outcome": "booked", "durationS": 60, "taskId": call_task["id"]},
        headers=manager,
    )
    assert logged.status_code == 201, logged.text
    assert logged.json()["kind"] == "call"
    call_row = await session.get(Task, uuid.UUID(call_task["id"]))
    assert call_row is not None
    await session.refresh(call_row)
    assert (call_row.status.value, call_row.outcome) == ("done", "booked")
    timeline = await client.get(f"/api/v1/deals/{deal_id}/timeline", headers=manager)
    assert [i["kind"] for i in timeline.json()["items"]] == ["call"]


@pytest.fixture
async def small_client(
    settings: Settings, clock: FrozenClock, sessionmaker: async_sessionmaker[AsyncSession]
) -> AsyncIterator[httpx.AsyncClient]:
    """The app with uploads limited to 1000 bytes."""
    app: Litestar = create_app(
        dataclasses.replace(settings, max_upload_bytes=1000), clock=clock, sessionmaker=sessionmaker
    )
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as c:
        yield c


async def test_attachments(
    small_client: httpx.AsyncClient, factory: Factory, session: AsyncSession
) -> None:
    client = small_client
    s = await _setup(client, factory, session)
    manager = factory.auth(s.world.manager_a)
    deal_id = (await _new_deal(client, factory, s))["deal"]["id"]

    async def upload(content: bytes, filename: str) -> httpx.Response:
        return await client.post(
            f"/api/v1/deals/{deal_id}/attachments",
            params={"filename": filename},
            content=content,
            headers=manager | {"Content-Type": "application/octet-stream"},
        )

    pdf = await upload(PDF_BYTES, "замер.pdf")
    assert pdf.status_code == 201, pdf.text
    body = pdf.json()
    assert body["contentType"] == "application/pdf"
    assert body["sha256"] == hashlib.sha256(PDF_BYTES).hexdigest()
    assert body["size"] == len(PDF_BYTES)
    assert body["filename"] == "замер.pdf"
    assert body["dealId"] == deal_id
    assert body["kind"] == "upload"

    html = await upload(b"<html><script>alert(1)</script></html>", "x.pdf")
    assert html.status_code == 422
    assert _fields(html) == {"file"}
    too_big = await upload(b"%PDF-1.4\n" + b"0" * 2000, "big.pdf")
    assert too_big.status_code == 422
    assert _fields(too_big) == {"file"}
    empty = await upload(b"", "empty.pdf")
    assert empty.status_code == 422

    rows = (
        await session.scalars(select(Attachment).where(Attachment.deal_id == uuid.UUID(deal_id)))
    ).all()
    assert [r.id for r in rows] == [uuid.UUID(body["id"])]
    listed = await client.get(f"/api/v1/deals/{deal_id}/attachments", headers=manager)
    assert [a["id"] for a in listed.json()] == [body["id"]]

    download = await client.get(body["url"], headers=manager)
    assert download.status_code == 200
    assert download.content == PDF_BYTES
    assert download.headers["content-type"].startswith("application/pdf")
    assert download.headers["x-content-type-options"] == "nosniff"
    stranger = await factory.world("Other Windows")
    foreign = await client.get(body["url"], headers=factory.auth(stranger.admin))
    assert foreign.status_code == 404
    other_manager = await client.get(body["url"], headers=factory.auth(s.world.manager_b))
    assert other_manager.status_code == 404
    foreign_upload = await client.post(
        f"/api/v1/deals/{deal_id}/attachments",
        params={"filename": "a.pdf"},
        content=PDF_BYTES,
        headers=factory.auth(stranger.admin) | {"Content-Type": "application/octet-stream"},
    )
    assert foreign_upload.status_code == 404


async def test_documents_get_versions_and_numbers(
    client: httpx.AsyncClient, factory: Factory, session: AsyncSession
) -> None:
    s = await _setup(client, factory, session)
    manager = factory.auth(s.world.manager_a)
    deal_id = (await _new_deal(client, factory, s))["deal"]["id"]
    first = await client.post(f"/api/v1/deals/{deal_id}/documents", json={}, headers=manager)
    assert first.status_code == 201, first.text
    second = await client.post(
        f"/api/v1/deals/{deal_id}/documents", json={"template": "Invoice"}, headers=manager
    )
    assert second.status_code == 201, second.text
    one, two = first.json(), second.json()
    assert (one["version"], two["version"]) == (1, 2)
    assert two["number"] > one["number"]
    assert one["attachmentId"] != two["attachmentId"]
    assert "(v2)" in two["title"]

    rows = (
        await session.scalars(
            select(Document)
            .where(Document.deal_id == uuid.UUID(deal_id))
            .order_by(Document.version)
        )
    ).all()
    assert [(d.version, d.number) for d in rows] == [
        (one["version"], one["number"]),
        (two["version"], two["number"]),
    ]
    pdf = await client.get(two["url"], headers=manager)
    assert pdf.status_code == 200
    assert pdf.content.startswith(b"%PDF-")
    listed = await client.get(f"/api/v1/deals/{deal_id}/documents", headers=manager)
    assert {d["id"] for d in listed.json()} == {one["id"], two["id"]}

    missing = await client.post(
        f"/api/v1/deals/{deal_id}/documents", json={"template": "No such"}, headers=manager
    )
    assert missing.status_code == 422
    assert _fields(missing) == {"template"}


def _stored_files(root: Path) -> list[str]:
    return [p.name for p in root.rglob("*") if p.is_file()] if root.exists() else []


async def test_a_refused_upload_leaves_no_file_in_storage(
    client: httpx.AsyncClient, factory: Factory, session: AsyncSession, settings: Settings
) -> None:
    s = await _setup(client, factory, session)
    deal_id = (await _new_deal(client, factory, s))["deal"]["id"]
    html = b"<html><body><script>alert(document.cookie)</script></body></html>"
    refused = await client.post(
        f"/api/v1/deals/{deal_id}/attachments",
        params={"filename": "invoice.pdf"},
        content=html,
        headers=factory.auth(s.world.manager_a) | {"Content-Type": "application/octet-stream"},
    )
    assert refused.status_code == 422
    assert _fields(refused) == {"file"}
    assert (
        await session.scalar(select(Attachment.id).where(Attachment.deal_id == uuid.UUID(deal_id)))
        is None
    )
    stored = _stored_files(Path(settings.files_dir))
    assert hashlib.sha256(html).hexdigest() not in stored
    assert stored == []
