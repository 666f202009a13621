"""The admin pages: users and teams, pipelines, stages and automations, lead forms, document
templates. Admins only (403 otherwise), CSRF on every form, refusals shown next to the field."""

from __future__ import annotations

import html as html_lib
import re
import uuid

from httpx import AsyncClient, Response
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from backend.accounts.models import AuthSession, Role, TeamMember, User
from backend.app import CSRF_COOKIE
from backend.documents.models import DocumentTemplate
from backend.lib.forms import plain_reason
from backend.sales.models import Automation, LeadForm, Pipeline, Stage
from tests.conftest import PASSWORD, Factory, World
from tests.test_web import csrf_from, login_in_browser


async def admin_in(client: AsyncClient, factory: Factory) -> tuple[World, str]:
    """A world whose admin is logged in the browser; returns the CSRF token."""
    world = await factory.world()
    token = await login_in_browser(client, world.admin.email)
    return world, token


def field_error(html: str, field: str) -> str:
    """The error text shown next to ``field`` (its element has id ``err-<field>``)."""
    match = re.search(rf'<p class="field-error" id="err-{re.escape(field)}">([^<]*)</p>', html)
    assert match, f"no error shown next to {field}"
    return html_lib.unescape(match.group(1))


async def post(client: AsyncClient, url: str, token: str, data: dict[str, object]) -> Response:
    return await client.post(url, data={**data, "_csrf_token": token})


# --- who may use the admin pages --------------------------------------------------------------


ADMIN_PAGES = [
    "/admin/users",
    "/admin/users/new",
    "/admin/teams",
]


async def test_admin_pages_are_for_admins_only(client: AsyncClient, factory: Factory) -> None:
    world = await factory.world()
    await login_in_browser(client, world.manager_a.email)
    for url in [*ADMIN_PAGES, f"/admin/users/{world.installer_a.id}"]:
        response = await client.get(url)
        assert response.status_code == 403, url
        assert response.headers["content-type"].startswith("text/html")
        assert "admin screens are for the organisation's admins" in html_lib.unescape(response.text)
    token = client.cookies[CSRF_COOKIE]
    refused = await post(
        client, f"/admin/users/{world.installer_a.id}/active", token, {"isActive": "false"}
    )
    assert refused.status_code == 403
    home = await client.get("/customers")
    assert 'href="/admin"' not in home.text


async def test_field_staff_get_403_too(client: AsyncClient, factory: Factory) -> None:
    world = await factory.world()
    await login_in_browser(client, world.installer_a.email)
    assert (await client.get("/admin/teams")).status_code == 403
    assert (await client.get("/admin")).status_code == 403


async def test_admin_sees_the_nav_link_and_each_page(client: AsyncClient, factory: Factory) -> None:
    await admin_in(client, factory)
    home = await client.get("/customers")
    assert 'href="/admin">Admin</a>' in home.text
    start = await client.get("/admin")
    assert start.status_code in (302, 303)
    assert start.headers["location"] == "/admin/users"
    for url in ADMIN_PAGES:
        response = await client.get(url)
        assert response.status_code == 200, url
        assert 'aria-label="Admin sections"' in response.text


async def test_forms_without_csrf_token_are_refused(
    client: AsyncClient, factory: Factory, session: AsyncSession
) -> None:
    world, _ = await admin_in(client, factory)
    response = await client.post(
        "/admin/users",
        data={
            "email": "nocsrf@example.test",
            "fullName": "No Token",
            "password": "long-enough-pw",
            "role": "field",
        },
    )
    assert response.status_code == 403
    assert await session.scalar(select(User).where(User.email == "nocsrf@example.test")) is None
    renamed = await client.post(f"/admin/teams/{world.team_a.id}", data={"name": "Hijacked"})
    assert renamed.status_code == 403


# --- users ------------------------------------------------------------------------------------


async def test_list_searches_by_name_or_email_and_pages(
    client: AsyncClient, factory: Factory
) -> None:
    world, _ = await admin_in(client, factory)
    page = await client.get("/admin/users")
    assert "Max Measurer" in page.text
    assert "Igor Installer" in page.text
    found = await client.get("/admin/users", params={"q": "measur"}, headers={"HX-Request": "true"})
    assert found.status_code == 200
    assert "<html" not in found.text
    assert "Max Measurer" in found.text
    assert "Igor Installer" not in found.text
    by_email = await client.get("/admin/users", params={"q": world.installer_b.email.upper()})
    assert "Ivan Installer" in by_email.text
    assert "Igor Installer" not in by_email.text
    literal = await client.get("/admin/users", params={"q": "%"})
    assert "No users found." in literal.text
    for i in range(50):
        await factory.user(world.org, Role.FIELD, name=f"Zed {i:02d}")
    first = await client.get("/admin/users")
    assert "Next page" in first.text
    cursor = re.search(r'cursor=([^"&]+)"', first.text)
    assert cursor
    second = await client.get(f"/admin/users?q=&cursor={cursor.group(1)}")
    assert "Zed 49" in second.text
    assert "Max Measurer</a>" not in second.text


async def test_admin_creates_a_field_worker_with_teams_and_a_base(
    client: AsyncClient, factory: Factory, session: AsyncSession
) -> None:
    world, token = await admin_in(client, factory)
    form = await client.get("/admin/users/new")
    assert 'value="Europe/Moscow"' in form.text  # the organisation's zone by default
    for field in ("email", "fullName", "password", "role", "phone", "timeZone", "baseLat"):
        assert f'<label for="{field}">' in form.text
    response = await post(
        client,
        "/admin/users",
        csrf_from(form.text),
        {
            "email": "Nina.New@Example.test",
            "fullName": "Nina New",
            "password": "a-long-password",
            "role": "field",
            "skills": ["installer", "measurer"],
            "teamIds": [str(world.team_a.id), str(world.team_b.id)],
            "phone": "+7 912 000-11-22",
            "timeZone": "Europe/Samara",
            "baseLat": "55.79",
            "baseLon": "49.12",
        },
    )
    assert response.status_code == 303, response.text
    user = await session.scalar(select(User).where(User.email == "nina.new@example.test"))
    assert user is not None
    assert response.headers["location"] == f"/admin/users/{user.id}?saved=1"
    assert user.skills == ["installer", "measurer"]
    assert user.time_zone == "Europe/Samara"
    assert user.phone == "+79120001122"
    assert (user.base_lat, user.base_lon) == (55.79, 49.12)
    teams = set(
        await session.scalars(select(TeamMember.team_id).where(TeamMember.user_id == user.id))
    )
    assert teams == {world.team_a.id, world.team_b.id}
    shown = await client.get(response.headers["location"])
    assert "Saved." in shown.text
    assert 'value="55.79"' in shown.text
    # The new user can log in with the password the admin set.
    login = await client.post(
        "/api/v1/auth/token", json={"email": "nina.new@example.test", "password": "a-long-password"}
    )
    assert login.status_code == 200
    del token


async def test_refused_user_form_shows_each_reason_next_to_its_field(
    client: AsyncClient, factory: Factory, session: AsyncSession
) -> None:
    world, token = await admin_in(client, factory)
    short = await post(
        client,
        "/admin/users",
        token,
        {"email": "x@example.test", "fullName": "X", "password": "short", "role": "field"},
    )
    assert short.status_code == 422
    assert field_error(short.text, "password") == "must be at least 10 characters"
    assert 'aria-describedby="err-password"' in short.text
    assert 'value="x@example.test"' in short.text  # what was typed is kept
    zone = await post(
        client,
        "/admin/users",
        token,
        {
            "email": "y@example.test",
            "fullName": "Y",
            "password": "long-enough-pw",
            "role": "field",
            "timeZone": "Mars/Olympus",
        },
    )
    assert zone.status_code == 422
    assert "unknown IANA time zone" in field_error(zone.text, "timeZone")
    skills = await post(
        client,
        "/admin/users",
        token,
        {
            "email": "z@example.test",
            "fullName": "Z",
            "password": "long-enough-pw",
            "role": "manager",
            "skills": ["installer"],
        },
    )
    assert skills.status_code == 422
    assert field_error(skills.text, "skills") == "only field staff have field skills"
    half_base = await post(
        client,
        "/admin/users",
        token,
        {
            "email": "b@example.test",
            "fullName": "B",
            "password": "long-enough-pw",
            "role": "field",
            "baseLat": "55.7",
        },
    )
    assert half_base.status_code == 422
    assert "both latitude and longitude" in field_error(half_base.text, "baseLon")
    far = await post(
        client,
        "/admin/users",
        token,
        {
            "email": "c@example.test",
            "fullName": "C",
            "password": "long-enough-pw",
            "role": "field",
            "baseLat": "95",
            "baseLon": "10",
        },
    )
    assert far.status_code == 422
    assert field_error(far.text, "baseLat") == "must be at most 90"
    taken = await post(
        client,
        "/admin/users",
        token,
        {
            "email": world.manager_a.email,
            "fullName": "Dup",
            "password": "long-enough-pw",
            "role": "field",
        },
    )
    assert taken.status_code == 409
    assert field_error(taken.text, "email") == "already used"
    emails = {"x@example.test", "y@example.test", "z@example.test", "b@example.test"}
    assert (await session.scalars(select(User).where(User.email.in_(emails)))).all() == []


async def test_admin_edits_a_user_and_a_refused_edit_changes_nothing(
    client: AsyncClient, factory: Factory, session: AsyncSession
) -> None:
    world, token = await admin_in(client, factory)
    worker = world.installer_a
    page = await client.get(f"/admin/users/{worker.id}")
    assert page.status_code == 200
    assert f'value="{world.team_a.id}" checked' in page.text
    refused = await post(
        client,
        f"/admin/users/{worker.id}",
        token,
        {"fullName": "Renamed", "role": "field", "skills": ["installer"], "phone": "12"},
    )
    assert refused.status_code == 422
    assert "phone" in refused.text
    field_error(refused.text, "phone")
    await session.refresh(worker)
    assert worker.full_name == "Igor Installer"
    saved = await post(
        client,
        f"/admin/users/{worker.id}",
        token,
        {
            "fullName": "Igor Fitter",
            "role": "field",
            "skills": ["installer", "measurer"],
            "teamIds": [str(world.team_b.id)],
            "timeZone": "Europe/Moscow",
            "baseLat": "",
            "baseLon": "",
        },
    )
    assert saved.status_code == 303
    await session.refresh(worker)
    assert worker.full_name == "Igor Fitter"
    assert worker.skills == ["installer", "measurer"]
    teams = set(
        await session.scalars(select(TeamMember.team_id).where(TeamMember.user_id == worker.id))
    )
    assert teams == {world.team_b.id}


async def test_deactivating_ends_the_users_sessions(
    client: AsyncClient, factory: Factory, session: AsyncSession
) -> None:
    world, token = await admin_in(client, factory)
    worker = world.measurer_a
    issued = await client.post(
        "/api/v1/auth/token", json={"email": worker.email, "password": PASSWORD}
    )
    assert issued.status_code == 200
    response = await post(client, f"/admin/users/{worker.id}/active", token, {"isActive": "false"})
    assert response.status_code == 303
    await session.refresh(worker)
    assert worker.is_active is False
    sessions = (
        await session.scalars(select(AuthSession).where(AuthSession.user_id == worker.id))
    ).all()
    assert sessions
    assert all(s.revoked_at is not None for s in sessions)
    page = await client.get(f"/admin/users/{worker.id}")
    assert "Reactivate" in page.text
    listed = await client.get("/admin/users", params={"q": "Max"})
    assert "deactivated" in listed.text
    back = await post(client, f"/admin/users/{worker.id}/active", token, {"isActive": "true"})
    assert back.status_code == 303
    await session.refresh(worker)
    assert worker.is_active is True


async def test_an_admin_cannot_deactivate_themselves(
    client: AsyncClient, factory: Factory, session: AsyncSession
) -> None:
    world, token = await admin_in(client, factory)
    response = await post(
        client, f"/admin/users/{world.admin.id}/active", token, {"isActive": "false"}
    )
    assert response.status_code == 422
    assert field_error(response.text, "isActive") == "you cannot deactivate yourself"
    await session.refresh(world.admin)
    assert world.admin.is_active


async def test_another_organisations_user_is_not_found(
    client: AsyncClient, factory: Factory
) -> None:
    _, token = await admin_in(client, factory)
    other = await factory.world("Other Org")
    missing = await client.get(f"/admin/users/{other.installer_a.id}")
    assert missing.status_code == 404
    assert "User not found" in missing.text
    response = await post(
        client, f"/admin/users/{other.installer_a.id}/active", token, {"isActive": "false"}
    )
    assert response.status_code == 404
    assert (await client.get(f"/admin/teams/{other.team_a.id}")).status_code == 404
    listed = await client.get("/admin/users", params={"q": other.installer_a.email})
    assert "No users found." in listed.text


# --- teams ------------------------------------------------------------------------------------


async def test_admin_creates_a_team_then_sets_lead_and_members(
    client: AsyncClient, factory: Factory, session: AsyncSession
) -> None:
    world, token = await admin_in(client, factory)
    page = await client.get("/admin/teams")
    assert "Team A" in page.text
    assert "Max Measurer" in page.text
    created = await post(
        client, "/admin/teams", token, {"name": "Night crew", "leadId": str(world.manager_b.id)}
    )
    assert created.status_code == 303
    team_id = uuid.UUID(created.headers["location"].split("/")[3].split("?")[0])
    edit = await client.get(created.headers["location"])
    assert "Saved." in edit.text
    assert f'<option value="{world.manager_b.id}" selected>' in edit.text
    saved = await post(
        client,
        f"/admin/teams/{team_id}",
        token,
        {
            "name": "Night shift",
            "leadId": str(world.manager_a.id),
            "memberIds": [str(world.installer_a.id), str(world.installer_b.id)],
        },
    )
    assert saved.status_code == 303
    members = set(
        await session.scalars(select(TeamMember.user_id).where(TeamMember.team_id == team_id))
    )
    assert members == {world.installer_a.id, world.installer_b.id}
    listed = await client.get("/admin/teams")
    assert "Night shift" in listed.text


async def test_refused_team_forms_show_the_reason_at_the_field(
    client: AsyncClient, factory: Factory, session: AsyncSession
) -> None:
    world, token = await admin_in(client, factory)
    duplicate = await post(client, "/admin/teams", token, {"name": "Team A"})
    assert duplicate.status_code == 409
    assert field_error(duplicate.text, "name") == "already used"
    blank = await post(client, "/admin/teams", token, {"name": ""})
    assert blank.status_code == 422
    field_error(blank.text, "name")
    field_lead = await post(
        client,
        f"/admin/teams/{world.team_a.id}",
        token,
        {"name": "Team A2", "leadId": str(world.installer_a.id), "memberIds": []},
    )
    assert field_lead.status_code == 422
    assert field_error(field_lead.text, "leadId") == "a team is led by a manager or an admin"
    await session.refresh(world.team_a)
    assert world.team_a.name == "Team A"
    members = set(
        await session.scalars(
            select(TeamMember.user_id).where(TeamMember.team_id == world.team_a.id)
        )
    )
    assert members == {world.measurer_a.id, world.installer_a.id}


async def test_the_json_api_takes_teams_base_and_search_too(
    client: AsyncClient, factory: Factory, session: AsyncSession
) -> None:
    world = await factory.world()
    admin = factory.auth(world.admin)
    created = await client.post(
        "/api/v1/users",
        headers=admin,
        json={
            "email": "api.user@example.test",
            "fullName": "Api Worker",
            "role": "field",
            "password": "a-long-password",
            "teamIds": [str(world.team_b.id)],
            "baseLat": 55.8,
            "baseLon": 49.1,
        },
    )
    assert created.status_code == 201, created.text
    body = created.json()
    assert (body["baseLat"], body["baseLon"]) == (55.8, 49.1)
    members = set(
        await session.scalars(
            select(TeamMember.user_id).where(TeamMember.team_id == world.team_b.id)
        )
    )
    assert uuid.UUID(body["id"]) in members
    cleared = await client.patch(
        f"/api/v1/users/{body['id']}", headers=admin, json={"baseLat": None, "baseLon": None}
    )
    assert cleared.json()["baseLat"] is None
    half = await client.patch(f"/api/v1/users/{body['id']}", headers=admin, json={"baseLat": 50})
    assert half.status_code == 422
    assert half.json()["errors"][0]["field"] == "baseLon"
    other = await factory.world("Elsewhere")
    foreign = await client.patch(
        f"/api/v1/users/{body['id']}", headers=admin, json={"teamIds": [str(other.team_a.id)]}
    )
    assert foreign.status_code == 422
    assert foreign.json()["errors"][0]["field"] == "teamIds"
    found = await client.get("/api/v1/users", headers=admin, params={"q": "api wor"})
    assert [u["fullName"] for u in found.json()["items"]] == ["Api Worker"]
    manager = await client.get(
        "/api/v1/users", headers=factory.auth(world.manager_a), params={"q": "api"}
    )
    assert manager.json()["items"] == []  # not in the manager's teams


# --- pipelines, stages and automations ----------------------------------------------------------


async def make_pipeline(
    client: AsyncClient, token: str, session: AsyncSession, name: str = "Windows"
) -> Pipeline:
    response = await post(
        client,
        "/admin/pipelines",
        token,
        {"name": name, "stages": "New\nMeasurement\nInstallation\n\nDone"},
    )
    assert response.status_code == 303, response.text
    pipeline = await session.scalar(select(Pipeline).where(Pipeline.name == name))
    assert pipeline is not None
    return pipeline


async def stages_of(session: AsyncSession, pipeline: Pipeline) -> list[Stage]:
    rows = await session.scalars(
        select(Stage)
        .where(Stage.pipeline_id == pipeline.id)
        .order_by(Stage.position)
        .execution_options(populate_existing=True)
    )
    return list(rows.all())


async def test_pipeline_pages_are_for_admins_only(
    client: AsyncClient, factory: Factory, session: AsyncSession
) -> None:
    world, token = await admin_in(client, factory)
    pipeline = await make_pipeline(client, token, session)
    stage = (await stages_of(session, pipeline))[0]
    client.cookies.clear()
    await login_in_browser(client, world.manager_a.email)
    for url in [
        "/admin/pipelines",
        f"/admin/stages/{stage.id}",
        f"/admin/stages/{stage.id}/automations/new",
        "/admin/lead-forms",
        "/admin/templates",
        "/admin/templates/new",
    ]:
        assert (await client.get(url)).status_code == 403, url
    token = client.cookies[CSRF_COOKIE]
    refused = await post(client, f"/admin/stages/{stage.id}", token, {"name": "Hijacked"})
    assert refused.status_code == 403
    await session.refresh(stage)
    assert stage.name == "New"


async def test_admin_builds_a_pipeline_renames_reorders_and_flags_stages(
    client: AsyncClient, factory: Factory, session: AsyncSession
) -> None:
    _, token = await admin_in(client, factory)
    pipeline = await make_pipeline(client, token, session)
    assert pipeline.is_default
    page = await client.get("/admin/pipelines")
    assert page.status_code == 200
    assert page.text.index(">New</a>") < page.text.index(">Done</a>")
    stages = await stages_of(session, pipeline)
    assert [s.name for s in stages] == ["New", "Measurement", "Installation", "Done"]
    added = await post(
        client, f"/admin/pipelines/{pipeline.id}/stages", token, {"name": "Lost", "kind": "lost"}
    )
    assert added.status_code == 303
    lost = await session.scalar(select(Stage).where(Stage.name == "Lost"))
    assert lost is not None
    assert lost.kind.value == "lost"
    assert added.headers["location"] == f"/admin/stages/{lost.id}?saved=1"
    # Move "Done" up above "Installation".
    done = stages[3]
    moved = await post(client, f"/admin/stages/{done.id}/move", token, {"direction": "up"})
    assert moved.status_code == 303
    assert [s.name for s in await stages_of(session, pipeline)] == [
        "New",
        "Measurement",
        "Done",
        "Installation",
        "Lost",
    ]
    # Rename, mark as won, require an amount, allow only from "Installation", managers only.
    installation = stages[2]
    edited = await post(
        client,
        f"/admin/stages/{done.id}",
        token,
        {
            "name": "Paid",
            "kind": "won",
            "requirements": ["amount"],
            "allowedFromMode": "only",
            "allowedFrom": [str(installation.id)],
            "entryRolesMode": "only",
            "entryRoles": ["manager", "admin"],
        },
    )
    assert edited.status_code == 303, edited.text
    await session.refresh(done)
    assert (done.name, done.kind.value) == ("Paid", "won")
    assert done.requirements == ["amount"]
    assert done.allowed_from == [installation.id]
    assert done.entry_roles == ["manager", "admin"]
    stage_page = await client.get(f"/admin/stages/{done.id}")
    assert f'value="{installation.id}" checked' in stage_page.text
    assert 'value="amount" checked' in stage_page.text
    # Back to "any stage" and "anyone".
    await post(
        client,
        f"/admin/stages/{done.id}",
        token,
        {"name": "Paid", "kind": "won", "allowedFromMode": "any", "entryRolesMode": "any"},
    )
    await session.refresh(done)
    assert done.allowed_from is None
    assert done.entry_roles is None
    assert done.requirements == []
    renamed = await post(client, f"/admin/pipelines/{pipeline.id}", token, {"name": "Glazing"})
    assert renamed.status_code == 303
    await session.refresh(pipeline)
    assert pipeline.name == "Glazing"


async def test_refused_stage_and_pipeline_forms_show_reasons_next_to_fields(
    client: AsyncClient, factory: Factory, session: AsyncSession
) -> None:
    _, token = await admin_in(client, factory)
    pipeline = await make_pipeline(client, token, session)
    stages = await stages_of(session, pipeline)
    twin = await post(
        client, f"/admin/stages/{stages[0].id}", token, {"name": "Measurement", "kind": "open"}
    )
    assert twin.status_code == 409
    assert field_error(twin.text, "name") == "another stage of the pipeline has this name"
    await session.refresh(stages[0])
    assert stages[0].name == "New"
    duplicate = await post(client, "/admin/pipelines", token, {"name": "Other", "stages": "A\nA"})
    assert duplicate.status_code == 422
    assert field_error(duplicate.text, "new-stages") == "two stages have this name"
    assert "A\nA</textarea>" in duplicate.text
    taken = await post(client, "/admin/pipelines", token, {"name": "Windows", "stages": "X"})
    assert taken.status_code == 409
    assert field_error(taken.text, "new-name") == "another pipeline has this name"
    blank = await post(client, f"/admin/pipelines/{pipeline.id}/stages", token, {"name": ""})
    assert blank.status_code == 422
    field_error(blank.text, f"s{pipeline.id}-name")
    # The last open stage cannot become a won stage.
    for stage in stages[1:]:
        await post(client, f"/admin/stages/{stage.id}", token, {"name": stage.name, "kind": "won"})
    last = await post(
        client, f"/admin/stages/{stages[0].id}", token, {"name": "New", "kind": "won"}
    )
    assert last.status_code == 409
    assert field_error(last.text, "kind") == "the pipeline needs an open stage"
    gone = await post(client, f"/admin/stages/{stages[0].id}/delete", token, {})
    assert gone.status_code == 409
    assert "last open stage" in field_error(gone.text, "delete")
    deleted = await post(client, f"/admin/stages/{stages[3].id}/delete", token, {})
    assert deleted.status_code == 303
    assert len(await stages_of(session, pipeline)) == 3


async def test_admin_creates_edits_and_deletes_a_task_automation(
    client: AsyncClient, factory: Factory, session: AsyncSession
) -> None:
    world, token = await admin_in(client, factory)
    pipeline = await make_pipeline(client, token, session)
    measurement = (await stages_of(session, pipeline))[1]
    form = await client.get(f"/admin/stages/{measurement.id}/automations/new?action=create_task")
    assert form.status_code == 200
    for field in ("name", "kind", "title", "assigneeRule", "assigneeSkill", "dueFrom"):
        assert f'<label for="{field}">' in form.text
    created = await post(
        client,
        f"/admin/stages/{measurement.id}/automations",
        token,
        {
            "action": "create_task",
            "name": "Measure",
            "kind": "measurement",
            "title": "Measure at {{ site.address }}",
            "assigneeRule": "skill",
            "assigneeSkill": "measurer",
            "assigneePick": "route",
            "dueFrom": "entered",
            "dueOffsetMinutes": "120",
            "dueBusinessHours": "true",
            "window": "scheduled",
            "durationMinutes": "90",
            "escalateAfterMinutes": "30",
            "priority": "5",
            "position": "0",
            "isActive": "true",
        },
    )
    assert created.status_code == 303, created.text
    automation = await session.scalar(
        select(Automation).where(Automation.stage_id == measurement.id)
    )
    assert automation is not None
    assert created.headers["location"] == f"/admin/automations/{automation.id}?saved=1"
    assert automation.config["assignee"] == {"rule": "skill", "skill": "measurer", "pick": "route"}
    assert automation.config["due"] == {
        "from": "entered",
        "offsetMinutes": 120,
        "businessHours": True,
    }
    assert automation.config["window"] == "scheduled"
    assert automation.config["durationMinutes"] == 90
    assert automation.config["escalateAfterMinutes"] == 30
    # The stored automation shows in its form as it was entered.
    shown = await client.get(f"/admin/automations/{automation.id}")
    assert '<option value="skill" selected>' in shown.text
    assert '<option value="route" selected>' in shown.text
    assert 'value="120"' in shown.text
    # Edit: one person gets it, no deadline.
    edited = await post(
        client,
        f"/admin/automations/{automation.id}",
        token,
        {
            "name": "Measure (Max)",
            "kind": "measurement",
            "title": "Measure",
            "assigneeRule": "user",
            "assigneeUserId": str(world.measurer_a.id),
            "dueFrom": "",
            "isActive": "true",
        },
    )
    assert edited.status_code == 303, edited.text
    await session.refresh(automation)
    assert automation.name == "Measure (Max)"
    assert automation.config["assignee"] == {"rule": "user", "userId": str(world.measurer_a.id)}
    assert automation.config["due"] is None
    stage_page = await client.get(f"/admin/stages/{measurement.id}")
    assert "Measure (Max)" in stage_page.text
    deleted = await post(client, f"/admin/automations/{automation.id}/delete", token, {})
    assert deleted.status_code == 303
    assert deleted.headers["location"] == f"/admin/stages/{measurement.id}?saved=1"
    assert await session.scalar(select(Automation).where(Automation.id == automation.id)) is None


async def test_refused_automations_show_the_apis_reasons_at_the_field(
    client: AsyncClient, factory: Factory, session: AsyncSession
) -> None:
    _, token = await admin_in(client, factory)
    pipeline = await make_pipeline(client, token, session)
    stage = (await stages_of(session, pipeline))[1]
    url = f"/admin/stages/{stage.id}/automations"
    base = {
        "action": "create_task",
        "name": "T",
        "kind": "call",
        "title": "Call",
        "isActive": "true",
    }
    bad_template = await post(client, url, token, base | {"title": "Call {{ customer.nme }}"})
    assert bad_template.status_code == 422
    assert "template" in field_error(bad_template.text, "title")
    assert 'value="Call {{ customer.nme }}"' in bad_template.text
    role_route = await post(
        client,
        url,
        token,
        base | {"assigneeRule": "role", "assigneeRole": "manager", "assigneePick": "route"},
    )
    assert role_route.status_code == 422
    field_error(role_route.text, "assigneePick")
    no_user = await post(client, url, token, base | {"assigneeRule": "user"})
    assert no_user.status_code == 422
    field_error(no_user.text, "assigneeUserId")
    no_skill = await post(client, url, token, base | {"assigneeRule": "skill"})
    assert no_skill.status_code == 422
    field_error(no_skill.text, "assigneeSkill")
    not_number = await post(
        client, url, token, base | {"dueFrom": "entered", "dueOffsetMinutes": "soon"}
    )
    assert not_number.status_code == 422
    assert field_error(not_number.text, "dueOffsetMinutes") == "must be a whole number"
    too_far = await post(client, url, token, base | {"priority": "500"})
    assert too_far.status_code == 422
    assert field_error(too_far.text, "priority") == "must be at most 100"
    bad_kind = await post(client, url, token, base | {"kind": "dance"})
    assert bad_kind.status_code == 422
    field_error(bad_kind.text, "kind")
    nobody = await post(
        client,
        url,
        token,
        {"action": "notify", "name": "N", "title": "Hi", "isActive": "true"},
    )
    assert nobody.status_code == 422
    field_error(nobody.text, "recipients")
    no_name = await post(client, url, token, base | {"name": ""})
    assert no_name.status_code == 422
    field_error(no_name.text, "name")
    assert (
        await session.scalars(select(Automation).where(Automation.stage_id == stage.id))
    ).all() == []


async def test_notify_and_document_automations(
    client: AsyncClient, factory: Factory, session: AsyncSession
) -> None:
    _, token = await admin_in(client, factory)
    pipeline = await make_pipeline(client, token, session)
    stage = (await stages_of(session, pipeline))[3]
    url = f"/admin/stages/{stage.id}/automations"
    notify = await post(
        client,
        url,
        token,
        {
            "action": "notify",
            "name": "Tell them",
            "recipients": ["owner", "admins"],
            "title": "{{ deal.title }} is done",
            "body": "Well done",
            "urgent": "true",
            "isActive": "true",
        },
    )
    assert notify.status_code == 303, notify.text
    document = await post(
        client,
        url,
        token,
        {
            "action": "generate_document",
            "name": "Invoice",
            "template": "Invoice",
            "notifyOwner": "true",
        },
    )
    assert document.status_code == 303, document.text
    rows = {
        a.name: a
        for a in await session.scalars(select(Automation).where(Automation.stage_id == stage.id))
    }
    assert rows["Tell them"].config == {
        "recipients": ["owner", "admins"],
        "title": "{{ deal.title }} is done",
        "body": "Well done",
        "urgent": True,
    }
    assert rows["Invoice"].config == {"template": "Invoice", "notifyOwner": True}
    assert rows["Invoice"].is_active is False  # the box was not ticked
    form = await client.get(f"/admin/automations/{rows['Tell them'].id}")
    assert 'value="admins" checked' in form.text


# --- lead forms -----------------------------------------------------------------------------------


async def test_admin_creates_a_lead_form_and_copies_its_embed_code(
    client: AsyncClient, factory: Factory, session: AsyncSession
) -> None:
    _, token = await admin_in(client, factory)
    pipeline = await make_pipeline(client, token, session)
    created = await post(
        client,
        "/admin/lead-forms",
        token,
        {
            "name": "Website",
            "pipelineId": str(pipeline.id),
            "assignment": "round_robin",
            "source": "site",
            "dealTitle": "Website request",
            "thankYou": "Thanks!",
        },
    )
    assert created.status_code == 303, created.text
    form = await session.scalar(select(LeadForm).where(LeadForm.name == "Website"))
    assert form is not None
    assert (form.source, form.deal_title, form.thank_you) == ("site", "Website request", "Thanks!")
    page = await client.get(created.headers["location"])
    assert page.status_code == 200
    embed = re.search(
        r'<textarea id="embed-[^"]+" class="embed" rows="3" readonly>([^<]*)</textarea>', page.text
    )
    assert embed, "the embed code is shown read-only"
    code = html_lib.unescape(embed.group(1))
    assert code.startswith(f'<iframe src="http://testserver/f/{form.key}"')
    assert "Copy embed code" in page.text
    assert '<label for="embed-' in page.text
    # The embedded page answers.
    public = await client.get(f"/f/{form.key}")
    assert public.status_code == 200
    listed = await client.get("/admin/lead-forms")
    assert f"/f/{form.key}" in listed.text
    # Switch it off and rename; then rotate its key.
    saved = await post(
        client,
        f"/admin/lead-forms/{form.id}",
        token,
        {
            "name": "Website (old)",
            "assignment": "territory",
            "source": "site",
            "dealTitle": "Website request",
            "thankYou": "Thanks!",
        },
    )
    assert saved.status_code == 303
    await session.refresh(form)
    assert (form.name, form.assignment.value, form.is_active) == (
        "Website (old)",
        "territory",
        False,
    )
    old_key = form.key
    rotated = await post(client, f"/admin/lead-forms/{form.id}/rotate-key", token, {})
    assert rotated.status_code == 303
    await session.refresh(form)
    assert form.key != old_key
    assert old_key not in (await client.get(f"/admin/lead-forms/{form.id}")).text


async def test_refused_lead_forms_show_the_reason_at_the_field(
    client: AsyncClient, factory: Factory, session: AsyncSession
) -> None:
    _, token = await admin_in(client, factory)
    await make_pipeline(client, token, session)
    unnamed = await post(client, "/admin/lead-forms", token, {"name": "", "source": "x"})
    assert unnamed.status_code == 422
    field_error(unnamed.text, "name")
    foreign = await post(
        client, "/admin/lead-forms", token, {"name": "Foreign", "pipelineId": str(uuid.uuid4())}
    )
    assert foreign.status_code == 422
    assert field_error(foreign.text, "pipelineId") == "no such pipeline in the organisation"
    bad_rule = await post(
        client, "/admin/lead-forms", token, {"name": "R", "assignment": "lottery"}
    )
    assert bad_rule.status_code == 422
    field_error(bad_rule.text, "assignment")
    assert (await session.scalars(select(LeadForm))).all() == []


# --- document templates ---------------------------------------------------------------------------


async def test_admin_previews_and_saves_a_document_template(
    client: AsyncClient, factory: Factory, session: AsyncSession
) -> None:
    world, token = await admin_in(client, factory)
    new = await client.get("/admin/templates/new")
    assert new.status_code == 200
    assert "{{ organization.name }}" in html_lib.unescape(new.text)  # starts from the invoice
    body = "<h1>Act for {{ customer.name }}</h1><p>{{ deal.amount | money(deal.currency) }}</p>"
    previewed = await post(
        client,
        "/admin/templates",
        token,
        {"name": "Act", "html": body, "isActive": "true", "intent": "preview"},
    )
    assert previewed.status_code == 200
    frame = re.search(
        r'<iframe class="preview-frame" title="[^"]+" sandbox srcdoc="([^"]*)"', previewed.text
    )
    assert frame, "the preview is shown in a sandboxed frame"
    rendered = html_lib.unescape(frame.group(1))
    assert "<h1>Act for Anna Sample</h1>" in rendered
    assert "43" in rendered
    assert (await session.scalars(select(DocumentTemplate))).all() == []  # a preview saves nothing
    created = await post(
        client, "/admin/templates", token, {"name": "Act", "html": body, "isActive": "true"}
    )
    assert created.status_code == 303, created.text
    template = await session.scalar(select(DocumentTemplate).where(DocumentTemplate.name == "Act"))
    assert template is not None
    assert template.version == 1
    listed = await client.get("/admin/templates")
    assert ">Act</a>" in listed.text
    changed = await post(
        client,
        f"/admin/templates/{template.id}",
        token,
        {"name": "Act", "html": body + "<p>{{ site.address }}</p>", "isActive": "true"},
    )
    assert changed.status_code == 303
    await session.refresh(template)
    assert template.version == 2
    assert world.org.name in html_lib.unescape(
        (
            await post(
                client,
                f"/admin/templates/{template.id}",
                token,
                {"name": "Act", "html": "{{ organization.name }}", "intent": "preview"},
            )
        ).text
    )


async def test_template_errors_are_shown_next_to_the_body(
    client: AsyncClient, factory: Factory, session: AsyncSession
) -> None:
    _, token = await admin_in(client, factory)
    syntax = await post(
        client,
        "/admin/templates",
        token,
        {"name": "Bad", "html": "<p>\n{% if %}</p>", "isActive": "true", "intent": "preview"},
    )
    assert syntax.status_code == 422
    assert field_error(syntax.text, "html").startswith("line 2:")
    unknown = await post(
        client, "/admin/templates", token, {"name": "Bad", "html": "{{ custmer.name }}"}
    )
    assert unknown.status_code == 422
    assert "unknown variable(s): custmer" in field_error(unknown.text, "html")
    assert "{{ custmer.name }}</textarea>" in html_lib.unescape(unknown.text)
    missing_key = await post(
        client,
        "/admin/templates",
        token,
        {"name": "Bad", "html": "{{ customer.nickname }}", "intent": "preview"},
    )
    assert missing_key.status_code == 422
    assert "nickname" in field_error(missing_key.text, "html")
    escape = await post(
        client,
        "/admin/templates",
        token,
        {"name": "Bad", "html": "{{ ''.__class__.__mro__ }}", "intent": "preview"},
    )
    assert escape.status_code == 422
    field_error(escape.text, "html")
    ok = await post(
        client, "/admin/templates", token, {"name": "Twin", "html": "x", "isActive": "true"}
    )
    assert ok.status_code == 303
    twin = await post(client, "/admin/templates", token, {"name": "Twin", "html": "y"})
    assert twin.status_code == 409
    assert field_error(twin.text, "name") == "another template has this name"
    names = [t.name for t in await session.scalars(select(DocumentTemplate))]
    assert names == ["Twin"]


def test_refusals_read_as_words_in_forms() -> None:
    assert plain_reason("Expected `str` of length >= 10") == "must be at least 10 characters"
    assert plain_reason("Expected `str` of length <= 200") == "must be at most 200 characters"
    assert plain_reason("Expected `float` <= 90.0") == "must be at most 90"
    assert plain_reason("Expected `int` >= -10080") == "must be at least -10080"
    assert plain_reason("Expected `float | null`, got `str`") == "must be a number"
    assert plain_reason("Expected `int`, got `str`") == "must be a whole number"
    assert plain_reason("Invalid enum value 'boss'") == "'boss' is not one of the choices"
    assert plain_reason("unknown IANA time zone 'Mars'") == "unknown IANA time zone 'Mars'"


async def test_another_organisations_configuration_is_not_found(
    client: AsyncClient, factory: Factory, session: AsyncSession
) -> None:
    _, token = await admin_in(client, factory)
    other = await factory.world("Other Org")
    api = factory.auth(other.admin)
    pipeline = await client.post(
        "/api/v1/pipelines", headers=api, json={"name": "Theirs", "stages": [{"name": "Open"}]}
    )
    assert pipeline.status_code == 201, pipeline.text
    stage_id = pipeline.json()["stages"][0]["id"]
    automation = await client.post(
        f"/api/v1/stages/{stage_id}/automations",
        headers=api,
        json={"name": "Call", "action": "create_task", "config": {"kind": "call", "title": "Call"}},
    )
    assert automation.status_code == 201, automation.text
    form = await client.post("/api/v1/lead-forms", headers=api, json={"name": "Theirs"})
    assert form.status_code == 201, form.text
    template = await client.post(
        "/api/v1/document-templates", headers=api, json={"name": "Theirs", "html": "<p>x</p>"}
    )
    assert template.status_code == 201, template.text
    for url in [
        f"/admin/stages/{stage_id}",
        f"/admin/stages/{stage_id}/automations/new",
        f"/admin/automations/{automation.json()['id']}",
        f"/admin/lead-forms/{form.json()['id']}",
        f"/admin/templates/{template.json()['id']}",
    ]:
        assert (await client.get(url)).status_code == 404, url
    for url, data in [
        (f"/admin/pipelines/{pipeline.json()['id']}", {"name": "Mine now"}),
        (f"/admin/stages/{stage_id}", {"name": "Mine now", "kind": "open"}),
        (f"/admin/stages/{stage_id}/move", {"direction": "up"}),
        (f"/admin/stages/{stage_id}/delete", {}),
        (f"/admin/automations/{automation.json()['id']}/delete", {}),
        (f"/admin/lead-forms/{form.json()['id']}/rotate-key", {}),
        (f"/admin/templates/{template.json()['id']}", {"name": "Mine now", "html": "y"}),
    ]:
        assert (await post(client, url, token, data)).status_code == 404, url
    listed = await client.get("/admin/pipelines")
    assert "Theirs" not in listed.text
    assert "Theirs" not in (await client.get("/admin/lead-forms")).text
    assert "Theirs" not in (await client.get("/admin/templates")).text
    stage = await session.scalar(select(Stage).where(Stage.id == uuid.UUID(stage_id)))
    assert stage is not None
    assert stage.name == "Open"
