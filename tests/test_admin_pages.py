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
    assert "length >= 10" in field_error(short.text, "password")
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
    assert "<= 90" in field_error(far.text, "baseLat")
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
    assert (await client.get(f"/admin/users/{other.installer_a.id}")).status_code == 404
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
