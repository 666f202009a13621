"""The web client's session cookie and CSRF protection on every unsafe form."""

from __future__ import annotations

import re

from httpx import AsyncClient

from backend.accounts.auth import SESSION_COOKIE
from backend.app import CSRF_COOKIE
from tests.conftest import PASSWORD, Factory, customer_body


def csrf_from(html: str) -> str:
    match = re.search(r'name="_csrf_token" value="([^"]+)"', html)
    assert match, "the form carries a CSRF token"
    return match.group(1)


async def login_in_browser(client: AsyncClient, email: str) -> str:
    form = await client.get("/login")
    assert form.status_code == 200
    token = csrf_from(form.text)
    response = await client.post(
        "/login",
        data={"email": email, "password": PASSWORD, "next": "/customers", "_csrf_token": token},
    )
    assert response.status_code == 303, response.text
    assert response.headers["location"] == "/customers"
    cookie = response.headers["set-cookie"]
    assert "HttpOnly" in cookie
    assert "SameSite=lax" in cookie or "samesite=lax" in cookie.lower()
    return token


async def test_login_form_without_csrf_token_is_refused(
    client: AsyncClient, factory: Factory
) -> None:
    world = await factory.world()
    await client.get("/login")  # gets the CSRF cookie, but the form field is missing
    response = await client.post("/login", data={"email": world.admin.email, "password": PASSWORD})
    assert response.status_code == 403
    assert SESSION_COOKIE not in response.cookies


async def test_login_with_a_forged_csrf_token_is_refused(
    client: AsyncClient, factory: Factory
) -> None:
    world = await factory.world()
    await client.get("/login")
    response = await client.post(
        "/login",
        data={"email": world.admin.email, "password": PASSWORD, "_csrf_token": "forged" * 10},
    )
    assert response.status_code == 403


async def test_pages_need_a_session(client: AsyncClient) -> None:
    response = await client.get("/customers")
    assert response.status_code == 303
    assert response.headers["location"].startswith("/login")


async def test_session_cookie_opens_pages_and_logout_needs_csrf(
    client: AsyncClient, factory: Factory
) -> None:
    world = await factory.world()
    admin = factory.auth(world.admin)
    created = await client.post(
        "/api/v1/customers", headers=admin, json=customer_body("Page Customer")
    )
    assert created.status_code == 201
    token = await login_in_browser(client, world.admin.email)

    page = await client.get("/customers")
    assert page.status_code == 200
    assert "Page Customer" in page.text
    assert "Ada Admin" in page.text
    partial = await client.get("/customers", params={"q": "page"}, headers={"HX-Request": "true"})
    assert partial.status_code == 200
    assert "<html" not in partial.text
    assert "Page Customer" in partial.text
    detail = await client.get(f"/customers/{created.json()['id']}")
    assert "gate code 12" in detail.text
    note = await client.post(
        f"/api/v1/customers/{created.json()['id']}/interactions",
        headers=admin,
        json={"kind": "call", "outcome": "called back", "occurredAt": "2026-11-24T09:30:00Z"},
    )
    assert note.status_code == 201
    timeline = await client.get(f"/customers/{created.json()['id']}")
    assert "2026-11-24 12:30" in timeline.text  # shown in the viewer's zone (Moscow, UTC+3)

    # A cross-site form post carries the cookie but cannot know the token.
    forged = await client.post("/logout")
    assert forged.status_code == 403
    assert (await client.get("/customers")).status_code == 200

    out = await client.post("/logout", data={"_csrf_token": token})
    assert out.status_code == 303
    client.cookies.delete(SESSION_COOKIE)
    assert (await client.get("/customers")).status_code == 303


async def test_htmx_requests_send_the_token_as_a_header(
    client: AsyncClient, factory: Factory
) -> None:
    world = await factory.world()
    token = await login_in_browser(client, world.admin.email)
    page = await client.get("/customers")
    assert f'"x-csrftoken": "{token}"' in page.text or '"x-csrftoken": "' in page.text
    response = await client.post("/logout", headers={"x-csrftoken": client.cookies[CSRF_COOKIE]})
    assert response.status_code == 303


async def test_wrong_password_shows_the_form_again(client: AsyncClient, factory: Factory) -> None:
    world = await factory.world()
    token = csrf_from((await client.get("/login")).text)
    response = await client.post(
        "/login",
        data={"email": world.admin.email, "password": "wrong-password", "_csrf_token": token},
    )
    assert response.status_code == 401
    assert "Wrong email or password" in response.text
    assert 'for="email"' in response.text
    assert 'for="password"' in response.text


async def test_session_cookie_is_not_accepted_by_the_api(
    client: AsyncClient, factory: Factory
) -> None:
    world = await factory.world()
    await login_in_browser(client, world.admin.email)
    response = await client.get("/api/v1/me")
    assert response.status_code == 401


async def test_open_redirect_after_login_is_prevented(
    client: AsyncClient, factory: Factory
) -> None:
    world = await factory.world()
    token = csrf_from((await client.get("/login")).text)
    response = await client.post(
        "/login",
        data={
            "email": world.admin.email,
            "password": PASSWORD,
            "next": "//evil.example/",
            "_csrf_token": token,
        },
    )
    assert response.status_code == 303
    assert response.headers["location"] == "/"
