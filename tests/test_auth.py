"""Authentication: passwords, access and refresh tokens, revocation, and what is refused."""

from __future__ import annotations

import base64
import json
from datetime import timedelta

import jwt
from httpx import AsyncClient

from backend.accounts.models import Role
from backend.lib.clock import FrozenClock
from tests.conftest import PASSWORD, SECRET_KEY, Factory


async def login(client: AsyncClient, email: str, password: str = PASSWORD) -> dict[str, object]:
    response = await client.post("/api/v1/auth/token", json={"email": email, "password": password})
    assert response.status_code == 200, response.text
    body: dict[str, object] = response.json()
    return body


def bearer(token: object) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def test_login_gives_tokens_that_open_the_api(client: AsyncClient, factory: Factory) -> None:
    world = await factory.world()
    tokens = await login(client, world.manager_a.email.upper())  # emails are case-insensitive
    assert tokens["tokenType"] == "Bearer"
    assert tokens["expiresIn"] == 900
    me = await client.get("/api/v1/me", headers=bearer(tokens["accessToken"]))
    assert me.status_code == 200
    assert me.json()["email"] == world.manager_a.email
    assert "passwordHash" not in me.json()


async def test_wrong_password_and_unknown_email_look_the_same(
    client: AsyncClient, factory: Factory
) -> None:
    world = await factory.world()
    wrong = await client.post(
        "/api/v1/auth/token", json={"email": world.admin.email, "password": "nope-nope-nope"}
    )
    unknown = await client.post(
        "/api/v1/auth/token", json={"email": "ghost@example.test", "password": "x" * 12}
    )
    assert wrong.status_code == unknown.status_code == 401
    assert wrong.json()["detail"] == unknown.json()["detail"] == "Wrong email or password"
    assert wrong.headers["content-type"].startswith("application/problem+json")


async def test_no_token_is_refused(client: AsyncClient) -> None:
    response = await client.get("/api/v1/me")
    assert response.status_code == 401
    assert response.json()["type"] == "urn:fieldcrm:problem:unauthenticated"
    assert response.headers["www-authenticate"] == "Bearer"


async def test_expired_token_is_refused(
    client: AsyncClient, factory: Factory, clock: FrozenClock
) -> None:
    world = await factory.world()
    headers = factory.auth(world.admin)
    assert (await client.get("/api/v1/me", headers=headers)).status_code == 200
    clock.advance(timedelta(minutes=15, seconds=1))
    response = await client.get("/api/v1/me", headers=headers)
    assert response.status_code == 401
    assert "expired" in response.json()["detail"]


def _forge(token: str, **changes: object) -> str:
    header_b64, payload_b64, signature = token.split(".")
    payload = json.loads(base64.urlsafe_b64decode(payload_b64 + "=="))
    payload.update(changes)
    new_payload = base64.urlsafe_b64encode(json.dumps(payload).encode()).rstrip(b"=").decode()
    return f"{header_b64}.{new_payload}.{signature}"


async def test_tampered_token_is_refused(client: AsyncClient, factory: Factory) -> None:
    world = await factory.world()
    token = factory.token(world.installer_a)
    forged = _forge(token, sub=str(world.admin.id))  # claim to be the admin, keep the signature
    response = await client.get("/api/v1/me", headers=bearer(forged))
    assert response.status_code == 401


async def test_alg_none_token_is_refused(client: AsyncClient, factory: Factory) -> None:
    world = await factory.world()
    claims = jwt.decode(factory.token(world.admin), options={"verify_signature": False})
    header = base64.urlsafe_b64encode(b'{"alg":"none","typ":"JWT"}').rstrip(b"=").decode()
    payload = base64.urlsafe_b64encode(json.dumps(claims).encode()).rstrip(b"=").decode()
    for unsigned in (f"{header}.{payload}.", f"{header}.{payload}"):
        response = await client.get("/api/v1/me", headers=bearer(unsigned))
        assert response.status_code == 401


async def test_token_signed_with_another_key_or_algorithm_is_refused(
    client: AsyncClient, factory: Factory
) -> None:
    world = await factory.world()
    claims = jwt.decode(factory.token(world.admin), options={"verify_signature": False})
    other_key = jwt.encode(claims, "another-secret-key-" + "y" * 40, algorithm="HS256")
    other_alg = jwt.encode(claims, SECRET_KEY, algorithm="HS512")
    for token in (other_key, other_alg, "not.a.jwt", "garbage"):
        assert (await client.get("/api/v1/me", headers=bearer(token))).status_code == 401


async def test_refresh_rotates_and_a_reused_refresh_token_ends_every_session(
    client: AsyncClient, factory: Factory
) -> None:
    world = await factory.world()
    first = await login(client, world.measurer_a.email)
    second_response = await client.post(
        "/api/v1/auth/refresh", json={"refreshToken": first["refreshToken"]}
    )
    assert second_response.status_code == 200
    second = second_response.json()
    assert second["refreshToken"] != first["refreshToken"]
    # The spent token comes back (someone copied it): refused, and the new one dies with it.
    reuse = await client.post("/api/v1/auth/refresh", json={"refreshToken": first["refreshToken"]})
    assert reuse.status_code == 401
    after = await client.post("/api/v1/auth/refresh", json={"refreshToken": second["refreshToken"]})
    assert after.status_code == 401


async def test_logout_revokes_the_refresh_token(client: AsyncClient, factory: Factory) -> None:
    world = await factory.world()
    tokens = await login(client, world.manager_b.email)
    out = await client.post("/api/v1/auth/logout", json={"refreshToken": tokens["refreshToken"]})
    assert out.status_code == 204
    again = await client.post("/api/v1/auth/refresh", json={"refreshToken": tokens["refreshToken"]})
    assert again.status_code == 401


async def test_refresh_token_expires(
    client: AsyncClient, factory: Factory, clock: FrozenClock
) -> None:
    world = await factory.world()
    tokens = await login(client, world.manager_b.email)
    clock.advance(timedelta(days=31))
    response = await client.post(
        "/api/v1/auth/refresh", json={"refreshToken": tokens["refreshToken"]}
    )
    assert response.status_code == 401


async def test_password_change_voids_old_tokens(client: AsyncClient, factory: Factory) -> None:
    world = await factory.world()
    tokens = await login(client, world.installer_b.email)
    headers = bearer(tokens["accessToken"])
    bad = await client.post(
        "/api/v1/me/password",
        headers=headers,
        json={"currentPassword": "wrong-one-x", "newPassword": "n" * 12},
    )
    assert bad.status_code == 422
    assert bad.json()["errors"] == [
        {"field": "currentPassword", "reason": "does not match the current password"}
    ]
    changed = await client.post(
        "/api/v1/me/password",
        headers=headers,
        json={"currentPassword": PASSWORD, "newPassword": "a-brand-new-password"},
    )
    assert changed.status_code == 204
    assert (await client.get("/api/v1/me", headers=headers)).status_code == 401
    refresh = await client.post(
        "/api/v1/auth/refresh", json={"refreshToken": tokens["refreshToken"]}
    )
    assert refresh.status_code == 401
    assert (
        await client.post(
            "/api/v1/auth/token", json={"email": world.installer_b.email, "password": PASSWORD}
        )
    ).status_code == 401
    await login(client, world.installer_b.email, "a-brand-new-password")


async def test_admin_creates_and_deactivates_users(client: AsyncClient, factory: Factory) -> None:
    world = await factory.world()
    admin = factory.auth(world.admin)
    created = await client.post(
        "/api/v1/users",
        headers=admin,
        json={
            "email": "New.Installer@Example.test",
            "fullName": "Nina New",
            "role": "field",
            "skills": ["installer", "measurer"],
            "password": "first-password-1",
            "phone": "8 (912) 000-11-22",
        },
    )
    assert created.status_code == 201, created.text
    body = created.json()
    assert body["email"] == "new.installer@example.test"
    assert body["phone"] == "+79120001122"  # national format read with the organisation's region
    assert body["timeZone"] == "Europe/Moscow"
    assert sorted(body["skills"]) == ["installer", "measurer"]
    tokens = await login(client, "new.installer@example.test", "first-password-1")

    off = await client.patch(f"/api/v1/users/{body['id']}", headers=admin, json={"isActive": False})
    assert off.status_code == 200
    assert off.json()["isActive"] is False
    assert (
        await client.get("/api/v1/me", headers=bearer(tokens["accessToken"]))
    ).status_code == 401
    assert (
        await client.post("/api/v1/auth/refresh", json={"refreshToken": tokens["refreshToken"]})
    ).status_code == 401
    denied = await client.post(
        "/api/v1/auth/token",
        json={"email": "new.installer@example.test", "password": "first-password-1"},
    )
    assert denied.status_code == 401


async def test_duplicate_email_is_a_conflict(client: AsyncClient, factory: Factory) -> None:
    world = await factory.world()
    response = await client.post(
        "/api/v1/users",
        headers=factory.auth(world.admin),
        json={
            "email": world.manager_a.email,
            "fullName": "Dup",
            "role": "manager",
            "password": "p" * 12,
        },
    )
    assert response.status_code == 409
    assert response.json()["errors"] == [{"field": "email", "reason": "already used"}]


async def test_only_admins_manage_users(client: AsyncClient, factory: Factory) -> None:
    world = await factory.world()
    body = {"email": "x@example.test", "fullName": "X", "role": "field", "password": "p" * 12}
    for user in (world.manager_a, world.installer_a):
        response = await client.post("/api/v1/users", headers=factory.auth(user), json=body)
        assert response.status_code == 403
        assert response.json()["type"] == "urn:fieldcrm:problem:forbidden"


async def test_skills_belong_to_field_staff(client: AsyncClient, factory: Factory) -> None:
    world = await factory.world()
    response = await client.post(
        "/api/v1/users",
        headers=factory.auth(world.admin),
        json={
            "email": "m@example.test",
            "fullName": "M",
            "role": "manager",
            "password": "p" * 12,
            "skills": ["installer"],
        },
    )
    assert response.status_code == 422
    assert response.json()["errors"][0]["field"] == "skills"


async def test_admin_cannot_lock_themselves_out(client: AsyncClient, factory: Factory) -> None:
    world = await factory.world()
    response = await client.patch(
        f"/api/v1/users/{world.admin.id}",
        headers=factory.auth(world.admin),
        json={"isActive": False},
    )
    assert response.status_code == 422


async def test_role_change_voids_tokens(client: AsyncClient, factory: Factory) -> None:
    world = await factory.world()
    old = factory.auth(world.manager_a)
    response = await client.patch(
        f"/api/v1/users/{world.manager_a.id}",
        headers=factory.auth(world.admin),
        json={"role": "admin"},
    )
    assert response.status_code == 200
    assert (await client.get("/api/v1/me", headers=old)).status_code == 401
    assert Role(response.json()["role"]) is Role.ADMIN
