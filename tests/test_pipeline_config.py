"""Admin configuration API: pipelines, stages, automations, lead forms, territories and
document templates — roles, organisation scoping, validation and the audit log."""

from __future__ import annotations

import uuid
from typing import Any

import msgspec
import pytest
from httpx import AsyncClient, Response
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from backend.audit.models import AuditEntry
from backend.customers.models import Customer, CustomerKind
from backend.lib.errors import InvalidInput
from backend.sales.automations import parse_config
from backend.sales.config_services import parse_area
from backend.sales.models import AutomationAction, Deal
from tests.conftest import START, Factory

STAGES: list[dict[str, Any]] = [
    {"name": "New"},
    {
        "name": "Measurement",
        "requirements": ["scheduledTime", "site"],
        "entryRoles": ["admin", "manager"],
    },
    {"name": "Won", "kind": "won", "entryRoles": ["admin", "manager"]},
    {"name": "Lost", "kind": "lost", "requirements": ["lostReason"]},
]

CALL_TASK: dict[str, Any] = {
    "kind": "call",
    "title": "Call {{ customer.name }}",
    "assignee": {"rule": "owner"},
    "due": {"from": "entered", "offsetMinutes": 15},
}

SQUARE: dict[str, Any] = {
    "type": "Polygon",
    "coordinates": [[[49.0, 55.7], [49.2, 55.7], [49.2, 55.9], [49.0, 55.9], [49.0, 55.7]]],
}


def _ok(response: Response, status: int = 200) -> Any:
    assert response.status_code == status, response.text
    return response.json() if response.content else None


def _fields(response: Response) -> list[str]:
    return [e["field"] for e in response.json().get("errors", [])]


async def _pipeline(
    client: AsyncClient, headers: dict[str, str], name: str = "Sales", **extra: Any
) -> dict[str, Any]:
    body = {"name": name, "stages": STAGES, **extra}
    result: dict[str, Any] = _ok(
        await client.post("/api/v1/pipelines", headers=headers, json=body), 201
    )
    return result


def _stage(pipeline: dict[str, Any], name: str) -> dict[str, Any]:
    found: dict[str, Any] = next(s for s in pipeline["stages"] if s["name"] == name)
    return found


async def _audit(session: AsyncSession, entity: str, entity_id: str) -> list[str]:
    rows = await session.scalars(
        select(AuditEntry.action).where(
            AuditEntry.entity == entity, AuditEntry.entity_id == uuid.UUID(entity_id)
        )
    )
    return sorted(rows.all())


# --- pipelines and stages -----------------------------------------------------------------------


async def test_admin_creates_pipeline_with_stage_rules(
    client: AsyncClient, factory: Factory, session: AsyncSession
) -> None:
    world = await factory.world()
    headers = factory.auth(world.admin)
    created = await _pipeline(client, headers)
    assert created["isDefault"] is True  # the organisation's first pipeline
    assert [(s["name"], s["position"], s["kind"]) for s in created["stages"]] == [
        ("New", 0, "open"),
        ("Measurement", 10, "open"),
        ("Won", 20, "won"),
        ("Lost", 30, "lost"),
    ]
    measurement = _stage(created, "Measurement")
    assert measurement["requirements"] == ["scheduledTime", "site"]
    assert measurement["entryRoles"] == ["admin", "manager"]
    assert _stage(created, "New")["entryRoles"] is None
    assert measurement["allowedFrom"] is None
    new_id = _stage(created, "New")["id"]

    # allowedFrom names stages of the same pipeline, set once they have ids.
    changed = _ok(
        await client.patch(
            f"/api/v1/stages/{measurement['id']}", headers=headers, json={"allowedFrom": [new_id]}
        )
    )
    assert changed["allowedFrom"] == [new_id]
    added = _ok(
        await client.post(
            f"/api/v1/pipelines/{created['id']}/stages",
            headers=headers,
            json={
                "name": "Payment",
                "position": 15,
                "requirements": ["amount", "lineItems"],
                "allowedFrom": [measurement["id"]],
                "entryRoles": ["manager"],
            },
        ),
        201,
    )
    after_last = _ok(
        await client.post(
            f"/api/v1/pipelines/{created['id']}/stages", headers=headers, json={"name": "Archive"}
        ),
        201,
    )
    assert after_last["position"] == 40

    fetched = _ok(await client.get(f"/api/v1/pipelines/{created['id']}", headers=headers))
    assert [s["name"] for s in fetched["stages"]] == [
        "New",
        "Measurement",
        "Payment",
        "Won",
        "Lost",
        "Archive",
    ]
    assert _stage(fetched, "Payment") == added | {"automations": []}
    assert _stage(fetched, "Measurement")["allowedFrom"] == [new_id]
    assert _ok(await client.get("/api/v1/pipelines", headers=headers)) == [fetched]
    assert await _audit(session, "pipeline", created["id"]) == ["created"]
    assert await _audit(session, "stage", measurement["id"]) == ["updated"]
    assert await _audit(session, "stage", added["id"]) == ["created"]


async def test_stage_rules_are_checked(client: AsyncClient, factory: Factory) -> None:
    world = await factory.world()
    headers = factory.auth(world.admin)
    sales = await _pipeline(client, headers)
    other = await _pipeline(client, headers, name="Service")
    stage_id = _stage(sales, "Measurement")["id"]

    foreign = await client.patch(
        f"/api/v1/stages/{stage_id}",
        headers=headers,
        json={"allowedFrom": [_stage(other, "New")["id"]]},
    )
    assert foreign.status_code == 422, foreign.text
    assert _fields(foreign) == ["allowedFrom"]
    itself = await client.patch(
        f"/api/v1/stages/{stage_id}", headers=headers, json={"allowedFrom": [stage_id]}
    )
    assert (itself.status_code, _fields(itself)) == (422, ["allowedFrom"])
    unknown = await client.post(
        f"/api/v1/pipelines/{sales['id']}/stages",
        headers=headers,
        json={"name": "X", "allowedFrom": [str(uuid.uuid4())]},
    )
    assert (unknown.status_code, _fields(unknown)) == (422, ["allowedFrom"])
    in_new_pipeline = await client.post(
        "/api/v1/pipelines",
        headers=headers,
        json={"name": "Third", "stages": [{"name": "A", "allowedFrom": [stage_id]}]},
    )
    assert (in_new_pipeline.status_code, _fields(in_new_pipeline)) == (
        422,
        ["stages[0].allowedFrom"],
    )
    twice = await client.post(
        "/api/v1/pipelines",
        headers=headers,
        json={"name": "Third", "stages": [{"name": "A"}, {"name": "A"}]},
    )
    assert (twice.status_code, _fields(twice)) == (422, ["stages[1].name"])
    same_name = await client.post(
        f"/api/v1/pipelines/{sales['id']}/stages", headers=headers, json={"name": "New"}
    )
    assert (same_name.status_code, _fields(same_name)) == (409, ["name"])
    duplicate = await client.post("/api/v1/pipelines", headers=headers, json={"name": "Sales"})
    assert (duplicate.status_code, _fields(duplicate)) == (409, ["name"])
    unknown_field = await client.patch(
        f"/api/v1/pipelines/{sales['id']}", headers=headers, json={"colour": "red"}
    )
    assert unknown_field.status_code == 400


async def test_default_pipeline_moves(client: AsyncClient, factory: Factory) -> None:
    world = await factory.world()
    headers = factory.auth(world.admin)
    first = await _pipeline(client, headers, name="Sales")
    second = await _pipeline(client, headers, name="Service")
    assert (first["isDefault"], second["isDefault"]) == (True, False)
    third = await _pipeline(client, headers, name="Repairs", isDefault=True)
    assert third["isDefault"] is True
    listed = _ok(await client.get("/api/v1/pipelines", headers=headers))
    assert [(p["name"], p["isDefault"]) for p in listed] == [
        ("Repairs", True),
        ("Sales", False),
        ("Service", False),
    ]
    made_default = _ok(
        await client.patch(
            f"/api/v1/pipelines/{second['id']}",
            headers=headers,
            json={"isDefault": True, "name": "Service & repair"},
        )
    )
    assert (made_default["name"], made_default["isDefault"]) == ("Service & repair", True)
    listed = _ok(await client.get("/api/v1/pipelines", headers=headers))
    assert [p["name"] for p in listed if p["isDefault"]] == ["Service & repair"]
    unset = await client.patch(
        f"/api/v1/pipelines/{second['id']}", headers=headers, json={"isDefault": False}
    )
    assert (unset.status_code, _fields(unset)) == (422, ["isDefault"])


async def test_manager_and_field_staff_read_but_cannot_write(
    client: AsyncClient, factory: Factory
) -> None:
    world = await factory.world()
    admin = factory.auth(world.admin)
    manager = factory.auth(world.manager_a)
    field = factory.auth(world.installer_a)
    pipeline = await _pipeline(client, admin)
    stage_id = _stage(pipeline, "New")["id"]

    refused = await client.post(
        "/api/v1/pipelines", headers=manager, json={"name": "Mine", "stages": STAGES}
    )
    assert refused.status_code == 403, refused.text
    for headers in (manager, field):
        assert _ok(await client.get("/api/v1/pipelines", headers=headers)) == [pipeline]
        assert _ok(await client.get(f"/api/v1/pipelines/{pipeline['id']}", headers=headers))
    writes = [
        client.patch(f"/api/v1/pipelines/{pipeline['id']}", headers=manager, json={"name": "X"}),
        client.post(
            f"/api/v1/pipelines/{pipeline['id']}/stages", headers=manager, json={"name": "X"}
        ),
        client.patch(f"/api/v1/stages/{stage_id}", headers=field, json={"name": "X"}),
        client.delete(f"/api/v1/stages/{stage_id}", headers=manager),
        client.post(
            f"/api/v1/stages/{stage_id}/automations",
            headers=manager,
            json={"name": "Call", "action": "create_task", "config": CALL_TASK},
        ),
        client.post("/api/v1/lead-forms", headers=manager, json={"name": "Form"}),
        client.post(
            "/api/v1/territories",
            headers=manager,
            json={"name": "T", "managerId": str(world.manager_a.id), "area": SQUARE},
        ),
        client.post(
            "/api/v1/document-templates", headers=manager, json={"name": "Act", "html": "<p>"}
        ),
    ]
    for write in writes:
        response = await write
        assert response.status_code == 403, response.text
    assert (await client.get("/api/v1/territories", headers=field)).status_code == 403
    assert (await client.get("/api/v1/territories", headers=manager)).status_code == 200


async def test_other_organisation_is_not_found(client: AsyncClient, factory: Factory) -> None:
    ours = await factory.world("Acme Windows")
    theirs = await factory.world("Other Windows")
    theirs_admin = factory.auth(theirs.admin)
    pipeline = await _pipeline(client, theirs_admin)
    stage_id = _stage(pipeline, "New")["id"]
    automation = _ok(
        await client.post(
            f"/api/v1/stages/{stage_id}/automations",
            headers=theirs_admin,
            json={"name": "Call", "action": "create_task", "config": CALL_TASK},
        ),
        201,
    )
    form = _ok(
        await client.post("/api/v1/lead-forms", headers=theirs_admin, json={"name": "F"}), 201
    )
    territory = _ok(
        await client.post(
            "/api/v1/territories",
            headers=theirs_admin,
            json={"name": "T", "managerId": str(theirs.manager_a.id), "area": SQUARE},
        ),
        201,
    )

    admin = factory.auth(ours.admin)
    assert _ok(await client.get("/api/v1/pipelines", headers=admin)) == []
    assert _ok(await client.get("/api/v1/lead-forms", headers=admin)) == []
    assert _ok(await client.get("/api/v1/territories", headers=admin)) == []
    requests = [
        client.get(f"/api/v1/pipelines/{pipeline['id']}", headers=admin),
        client.patch(f"/api/v1/pipelines/{pipeline['id']}", headers=admin, json={"name": "X"}),
        client.post(
            f"/api/v1/pipelines/{pipeline['id']}/stages", headers=admin, json={"name": "X"}
        ),
        client.patch(f"/api/v1/stages/{stage_id}", headers=admin, json={"name": "X"}),
        client.delete(f"/api/v1/stages/{stage_id}", headers=admin),
        client.post(
            f"/api/v1/stages/{stage_id}/automations",
            headers=admin,
            json={"name": "Call", "action": "create_task", "config": CALL_TASK},
        ),
        client.patch(f"/api/v1/automations/{automation['id']}", headers=admin, json={"name": "X"}),
        client.delete(f"/api/v1/automations/{automation['id']}", headers=admin),
        client.patch(f"/api/v1/lead-forms/{form['id']}", headers=admin, json={"name": "X"}),
        client.post(f"/api/v1/lead-forms/{form['id']}/rotate-key", headers=admin),
        client.delete(f"/api/v1/territories/{territory['id']}", headers=admin),
    ]
    for request in requests:
        response = await request
        assert response.status_code == 404, response.text
    borrowed = await client.post(
        "/api/v1/lead-forms", headers=admin, json={"name": "F", "pipelineId": pipeline["id"]}
    )
    assert (borrowed.status_code, _fields(borrowed)) == (422, ["pipelineId"])
    # Their data is untouched.
    assert _ok(await client.get(f"/api/v1/pipelines/{pipeline['id']}", headers=theirs_admin))


# --- automations --------------------------------------------------------------------------------


async def test_automation_configs_are_validated_and_stored_with_defaults(
    client: AsyncClient, factory: Factory, session: AsyncSession
) -> None:
    world = await factory.world()
    headers = factory.auth(world.admin)
    pipeline = await _pipeline(client, headers)
    stage_id = _stage(pipeline, "New")["id"]
    url = f"/api/v1/stages/{stage_id}/automations"

    bad_kind = await client.post(
        url,
        headers=headers,
        json={"name": "Call", "action": "create_task", "config": CALL_TASK | {"kind": "nope"}},
    )
    assert bad_kind.status_code == 422, bad_kind.text
    assert _fields(bad_kind) == ["config.kind"]
    bad_text = await client.post(
        url,
        headers=headers,
        json={
            "name": "Call",
            "action": "create_task",
            "config": CALL_TASK | {"title": "Call about {{ deal.nope }}"},
        },
    )
    assert (bad_text.status_code, _fields(bad_text)) == (422, ["config.title"])
    bad_rule = await client.post(
        url,
        headers=headers,
        json={
            "name": "Call",
            "action": "create_task",
            "config": CALL_TASK | {"assignee": {"rule": "astrology"}},
        },
    )
    assert bad_rule.status_code == 422, bad_rule.text
    assert _fields(bad_rule)[0].startswith("config.assignee")

    created = _ok(
        await client.post(
            url,
            headers=headers,
            json={"name": "Call back", "action": "create_task", "config": CALL_TASK},
        ),
        201,
    )
    config = created["config"]
    # What was sent, plus every default written out.
    assert {k: config[k] for k in CALL_TASK} == CALL_TASK | {
        "due": {"from": "entered", "offsetMinutes": 15, "businessHours": False}
    }
    assert config["durationMinutes"] == 60
    assert config["priority"] == 0
    assert config["description"] is None
    # The stored JSON reads back unchanged.
    reparsed = parse_config(AutomationAction.CREATE_TASK, config)
    assert msgspec.to_builtins(reparsed) == config

    notify = _ok(
        await client.post(
            url,
            headers=headers,
            json={
                "name": "Tell admins",
                "action": "notify",
                "position": 5,
                "config": {"recipients": ["admins"], "title": "New deal {{ deal.title }}"},
            },
        ),
        201,
    )
    assert notify["config"]["urgent"] is False
    skill = _ok(
        await client.post(
            url,
            headers=headers,
            json={
                "name": "Measure",
                "action": "create_task",
                "position": 1,
                "config": {
                    "kind": "measurement",
                    "title": "Measure",
                    "assignee": {"rule": "skill", "skill": "measurer"},
                },
            },
        ),
        201,
    )
    assert skill["config"]["assignee"] == {
        "rule": "skill",
        "skill": "measurer",
        "pick": "fewest_open",
    }
    assert skill["config"]["due"] is None
    person = _ok(
        await client.post(
            url,
            headers=headers,
            json={
                "name": "Tell Mark",
                "action": "create_task",
                "position": 9,
                "config": {
                    "kind": "call",
                    "title": "Due {{ due }}",
                    "assignee": {"rule": "user", "userId": str(world.manager_a.id)},
                    "due": {"from": "scheduledStart", "offsetMinutes": -30, "businessHours": True},
                },
            },
        ),
        201,
    )
    assert person["config"]["assignee"] == {"rule": "user", "userId": str(world.manager_a.id)}
    for row in (notify, skill, person):
        action = AutomationAction(row["action"])
        assert msgspec.to_builtins(parse_config(action, row["config"])) == row["config"]

    listed = _stage(
        _ok(await client.get(f"/api/v1/pipelines/{pipeline['id']}", headers=headers)), "New"
    )
    assert [a["name"] for a in listed["automations"]] == [
        "Call back",
        "Measure",
        "Tell admins",
        "Tell Mark",
    ]
    assert listed["automations"][0] == created

    changed = _ok(
        await client.patch(
            f"/api/v1/automations/{created['id']}",
            headers=headers,
            json={"config": CALL_TASK | {"priority": 70}, "isActive": False},
        )
    )
    assert (changed["config"]["priority"], changed["isActive"]) == (70, False)
    refused = await client.patch(
        f"/api/v1/automations/{created['id']}",
        headers=headers,
        json={"config": {"recipients": ["admins"], "title": "wrong action's config"}},
    )
    assert refused.status_code == 422, refused.text
    assert (
        await client.delete(f"/api/v1/automations/{created['id']}", headers=headers)
    ).status_code == 204
    listed = _stage(
        _ok(await client.get(f"/api/v1/pipelines/{pipeline['id']}", headers=headers)), "New"
    )
    assert [a["name"] for a in listed["automations"]] == ["Measure", "Tell admins", "Tell Mark"]
    assert await _audit(session, "automation", created["id"]) == ["created", "deleted", "updated"]


# --- deleting stages ----------------------------------------------------------------------------


async def test_deleting_stages(
    client: AsyncClient, factory: Factory, session: AsyncSession
) -> None:
    world = await factory.world()
    headers = factory.auth(world.admin)
    pipeline = await _pipeline(client, headers)
    new, measurement = _stage(pipeline, "New"), _stage(pipeline, "Measurement")
    _ok(
        await client.patch(
            f"/api/v1/stages/{measurement['id']}",
            headers=headers,
            json={"allowedFrom": [new["id"]]},
        )
    )
    customer = Customer(
        id=uuid.uuid4(), organization_id=world.org.id, kind=CustomerKind.PERSON, name="Ivanov"
    )
    session.add(customer)
    await session.flush()
    deal = Deal(
        id=uuid.uuid4(),
        organization_id=world.org.id,
        pipeline_id=uuid.UUID(pipeline["id"]),
        stage_id=uuid.UUID(measurement["id"]),
        customer_id=customer.id,
        title="Windows",
        currency="RUB",
        owner_id=world.manager_a.id,
        stage_entered_at=START,
    )
    session.add(deal)
    await session.commit()

    busy = await client.delete(f"/api/v1/stages/{measurement['id']}", headers=headers)
    assert busy.status_code == 409, busy.text
    assert "1 deal" in busy.json()["detail"]

    # Move the deal away; the stage can go, and nobody names it in allowedFrom any more.
    deal.stage_id = uuid.UUID(new["id"])
    await session.commit()
    _ok(
        await client.patch(
            f"/api/v1/stages/{_stage(pipeline, 'Won')['id']}",
            headers=headers,
            json={"allowedFrom": [measurement["id"], new["id"]]},
        )
    )
    assert (
        await client.delete(f"/api/v1/stages/{measurement['id']}", headers=headers)
    ).status_code == 204
    fetched = _ok(await client.get(f"/api/v1/pipelines/{pipeline['id']}", headers=headers))
    assert [s["name"] for s in fetched["stages"]] == ["New", "Won", "Lost"]
    assert _stage(fetched, "Won")["allowedFrom"] == [new["id"]]
    assert await _audit(session, "stage", measurement["id"]) == ["deleted", "updated"]

    # New is now the only open stage: it stays open and stays.
    deal.stage_id = uuid.UUID(_stage(pipeline, "Won")["id"])
    await session.commit()
    last = await client.delete(f"/api/v1/stages/{new['id']}", headers=headers)
    assert last.status_code == 409, last.text
    closing = await client.patch(
        f"/api/v1/stages/{new['id']}", headers=headers, json={"kind": "won"}
    )
    assert (closing.status_code, _fields(closing)) == (409, ["kind"])
    assert (
        await client.delete(f"/api/v1/stages/{uuid.uuid4()}", headers=headers)
    ).status_code == 404


# --- territories --------------------------------------------------------------------------------


def test_area_validation_reasons() -> None:
    def reason(area: dict[str, Any]) -> str:
        with pytest.raises(InvalidInput) as caught:
            parse_area(area)
        assert [e.field for e in caught.value.errors] == ["area"]
        return caught.value.errors[0].reason

    ring = SQUARE["coordinates"][0]
    assert "Polygon or MultiPolygon" in reason({"type": "Point", "coordinates": [49, 55]})
    assert "not closed" in reason({"type": "Polygon", "coordinates": [[*ring[:-1], [49.1, 55.8]]]})
    assert "at least 4" in reason({"type": "Polygon", "coordinates": [[ring[0], ring[1], ring[0]]]})
    assert "longitude" in reason(
        {"type": "Polygon", "coordinates": [[[181, 0], [182, 0], [182, 1], [181, 0]]]}
    )
    assert "latitude" in reason(
        {"type": "Polygon", "coordinates": [[[0, 91], [1, 91], [1, 92], [0, 91]]]}
    )
    assert "position" in reason({"type": "Polygon", "coordinates": [[[0, "a"]] * 4]})
    assert "polygon" in reason({"type": "MultiPolygon", "coordinates": []})
    assert parse_area(SQUARE) == {"type": "MultiPolygon", "coordinates": [[ring]]}
    with_altitude = [[*p, 120.0] for p in ring]
    assert parse_area({"type": "Polygon", "coordinates": [with_altitude]})["coordinates"] == [
        [ring]
    ]


async def test_territories(client: AsyncClient, factory: Factory, session: AsyncSession) -> None:
    world = await factory.world()
    headers = factory.auth(world.admin)
    body = {"name": "Kazan centre", "managerId": str(world.manager_a.id), "area": SQUARE}

    ring = SQUARE["coordinates"][0]
    open_ring = await client.post(
        "/api/v1/territories",
        headers=headers,
        json=body | {"area": {"type": "Polygon", "coordinates": [ring[:-1]]}},
    )
    assert open_ring.status_code == 422, open_ring.text
    assert _fields(open_ring) == ["area"]
    assert "not closed" in open_ring.json()["errors"][0]["reason"]
    bowtie = [[49.0, 55.7], [49.2, 55.9], [49.2, 55.7], [49.0, 55.9], [49.0, 55.7]]
    crossing = await client.post(
        "/api/v1/territories",
        headers=headers,
        json=body | {"area": {"type": "Polygon", "coordinates": [bowtie]}},
    )
    assert (crossing.status_code, _fields(crossing)) == (422, ["area"])
    assert "Self-intersection" in crossing.json()["errors"][0]["reason"]
    not_manager = await client.post(
        "/api/v1/territories", headers=headers, json=body | {"managerId": str(world.installer_a.id)}
    )
    assert (not_manager.status_code, _fields(not_manager)) == (422, ["managerId"])

    created = _ok(await client.post("/api/v1/territories", headers=headers, json=body), 201)
    assert created["name"] == "Kazan centre"
    assert created["managerId"] == str(world.manager_a.id)
    assert created["area"] == {"type": "MultiPolygon", "coordinates": [SQUARE["coordinates"]]}
    two = {
        "type": "MultiPolygon",
        "coordinates": [
            SQUARE["coordinates"],
            [[[50.0, 56.0], [50.5, 56.0], [50.5, 56.5], [50.0, 56.0]]],
        ],
    }
    second = _ok(
        await client.post(
            "/api/v1/territories", headers=headers, json=body | {"name": "Both", "area": two}
        ),
        201,
    )
    assert second["area"] == two
    assert _ok(await client.get("/api/v1/territories", headers=headers)) == [second, created]
    assert (
        await client.delete(f"/api/v1/territories/{second['id']}", headers=headers)
    ).status_code == 204
    assert _ok(await client.get("/api/v1/territories", headers=headers)) == [created]
    assert await _audit(session, "territory", second["id"]) == ["created", "deleted"]


# --- lead forms ---------------------------------------------------------------------------------


async def test_lead_forms(client: AsyncClient, factory: Factory, session: AsyncSession) -> None:
    world = await factory.world()
    headers = factory.auth(world.admin)
    no_pipeline = await client.post("/api/v1/lead-forms", headers=headers, json={"name": "Site"})
    assert (no_pipeline.status_code, _fields(no_pipeline)) == (422, ["pipelineId"])
    default = await _pipeline(client, headers)
    other = await _pipeline(client, headers, name="Service")

    form = _ok(
        await client.post(
            "/api/v1/lead-forms",
            headers=headers,
            json={"name": "Window <request>", "dealTitle": "Website request"},
        ),
        201,
    )
    key = form["key"]
    assert len(key) == 32
    assert form["pipelineId"] == default["id"]
    assert (form["source"], form["assignment"], form["isActive"]) == (
        "website",
        "round_robin",
        True,
    )
    assert form["url"] == f"/f/{key}"
    assert f'src="http://testserver/f/{key}"' in form["embedCode"]
    assert form["embedCode"].startswith("<iframe ")
    assert "Window &lt;request&gt;" in form["embedCode"]

    on_other = _ok(
        await client.post(
            "/api/v1/lead-forms",
            headers=headers,
            json={"name": "Service form", "pipelineId": other["id"], "assignment": "territory"},
        ),
        201,
    )
    assert on_other["pipelineId"] == other["id"]
    assert on_other["key"] != key

    rotated = _ok(await client.post(f"/api/v1/lead-forms/{form['id']}/rotate-key", headers=headers))
    assert rotated["key"] != key
    assert rotated["url"] == f"/f/{rotated['key']}"
    assert key not in rotated["embedCode"]
    # The old link no longer finds the form; the new one does.
    assert (await client.get(f"/f/{key}")).status_code == 404
    assert (await client.get(f"/f/{rotated['key']}")).status_code == 200

    changed = _ok(
        await client.patch(
            f"/api/v1/lead-forms/{form['id']}",
            headers=headers,
            json={"thankYou": "Thanks!", "isActive": False, "assignment": "territory"},
        )
    )
    assert (changed["thankYou"], changed["isActive"], changed["assignment"]) == (
        "Thanks!",
        False,
        "territory",
    )
    assert changed["key"] == rotated["key"]
    listed = _ok(await client.get("/api/v1/lead-forms", headers=factory.auth(world.installer_a)))
    assert [f["name"] for f in listed] == ["Service form", "Window <request>"]
    assert await _audit(session, "lead_form", form["id"]) == ["created", "key_rotated", "updated"]
    entries = await session.scalars(
        select(AuditEntry.changes).where(AuditEntry.entity_id == uuid.UUID(form["id"]))
    )
    assert all(rotated["key"] not in str(c) and key not in str(c) for c in entries.all())


# --- document templates -------------------------------------------------------------------------


async def test_document_templates(client: AsyncClient, factory: Factory) -> None:
    world = await factory.world()
    headers = factory.auth(world.admin)
    broken = await client.post(
        "/api/v1/document-templates",
        headers=headers,
        json={"name": "Act", "html": "<h1>{{ deal.title }</h1>"},
    )
    assert broken.status_code == 422, broken.text
    assert _fields(broken) == ["html"]

    created = _ok(
        await client.post(
            "/api/v1/document-templates",
            headers=headers,
            json={"name": "Act", "html": "<h1>{{ deal.title }}</h1>"},
        ),
        201,
    )
    assert (created["version"], created["isActive"]) == (1, True)
    url = f"/api/v1/document-templates/{created['id']}"
    renamed = _ok(
        await client.put(
            url, headers=headers, json={"name": "Act of work", "html": created["html"]}
        )
    )
    assert renamed["version"] == 1  # same body, same version
    updated = _ok(
        await client.put(
            url,
            headers=headers,
            json={"name": "Act of work", "html": "<h1>{{ customer.name }}</h1>"},
        )
    )
    assert updated["version"] == 2
    still_broken = await client.put(
        url, headers=headers, json={"name": "Act of work", "html": "{% if %}"}
    )
    assert (still_broken.status_code, _fields(still_broken)) == (422, ["html"])
    listed = _ok(
        await client.get("/api/v1/document-templates", headers=factory.auth(world.manager_a))
    )
    assert [(t["name"], t["version"]) for t in listed] == [("Act of work", 2)]
    assert (
        await client.get("/api/v1/document-templates", headers=factory.auth(world.installer_a))
    ).status_code == 403
    other = await factory.world("Other")
    assert (
        await client.put(
            url, headers=factory.auth(other.admin), json={"name": "X", "html": "<p></p>"}
        )
    ).status_code == 404
