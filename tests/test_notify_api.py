"""Device tokens, web push subscriptions, notification settings and the admins' outbox over the
real API: validation at the boundary, and nobody sees or touches anyone else's rows."""

from __future__ import annotations

import uuid
from datetime import timedelta
from typing import Any

import httpx
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from backend.lib.clock import FrozenClock
from backend.notifications.models import OutboxMessage, OutboxStatus, PushDevice
from backend.notifications.services import notify
from push.webpush import b64url, generate_vapid_keys
from tests.conftest import Factory

DEVICES = "/api/v1/me/devices"
SUBSCRIPTIONS = "/api/v1/me/web-push-subscriptions"
SETTINGS = "/api/v1/me/notification-settings"
OUTBOX = "/api/v1/admin/outbox"


def _device_body(token: str, **kw: Any) -> dict[str, Any]:
    return {"token": token, "platform": "android", "appVersion": "1.0.0", **kw}


async def test_registering_a_device_is_an_upsert_that_refreshes_last_seen(
    client: httpx.AsyncClient, factory: Factory, clock: FrozenClock, session: AsyncSession
) -> None:
    world = await factory.world()
    auth = factory.auth(world.installer_a)
    token = f"fcm-{uuid.uuid4().hex}"

    first = await client.post(DEVICES, json=_device_body(token), headers=auth)
    assert first.status_code == 201, first.text
    assert first.json()["tokenSuffix"] == token[-6:]
    assert "token" not in first.json()
    clock.advance(timedelta(minutes=5))
    again = await client.post(
        DEVICES, json=_device_body(token, appVersion="1.1.0", platform="ios"), headers=auth
    )
    assert again.status_code == 200, again.text
    assert again.json()["id"] == first.json()["id"]
    assert again.json()["appVersion"] == "1.1.0"
    assert again.json()["platform"] == "ios"
    assert again.json()["lastSeenAt"] > first.json()["lastSeenAt"]
    listed = await client.get(DEVICES, headers=auth)
    assert [d["id"] for d in listed.json()] == [first.json()["id"]]


async def test_device_input_is_validated(client: httpx.AsyncClient, factory: Factory) -> None:
    world = await factory.world()
    auth = factory.auth(world.installer_a)
    for body, field in (
        (_device_body("tok-1234567890", platform="blackberry"), "platform"),
        (_device_body("short"), "token"),
        (_device_body("has spaces in the token"), "token"),
        ({"platform": "android"}, "data"),
        (_device_body("tok-1234567890", extra=1), "extra"),
    ):
        answer = await client.post(DEVICES, json=body, headers=auth)
        assert answer.status_code == 400, (body, answer.text)
        assert answer.headers["content-type"].startswith("application/problem+json")
        assert field in {e["field"] for e in answer.json()["errors"]}, answer.json()
        assert field in answer.json()["detail"] or field == "data"


async def test_nobody_sees_or_deletes_anyone_elses_devices(
    client: httpx.AsyncClient, factory: Factory, session: AsyncSession
) -> None:
    world = await factory.world()
    other = await factory.world("Other Windows")
    mine = await client.post(
        DEVICES,
        json=_device_body(f"fcm-{uuid.uuid4().hex}"),
        headers=factory.auth(world.installer_a),
    )
    device_id = mine.json()["id"]
    for intruder in (world.installer_b, world.admin, world.manager_a, other.admin):
        listed = await client.get(DEVICES, headers=factory.auth(intruder))
        assert listed.json() == []
        gone = await client.delete(f"{DEVICES}/{device_id}", headers=factory.auth(intruder))
        assert gone.status_code == 404
    assert await session.get(PushDevice, uuid.UUID(device_id)) is not None
    deleted = await client.delete(f"{DEVICES}/{device_id}", headers=factory.auth(world.installer_a))
    assert deleted.status_code == 204
    assert (await client.get(DEVICES, headers=factory.auth(world.installer_a))).json() == []


async def test_a_token_registered_by_another_account_moves_to_the_caller(
    client: httpx.AsyncClient, factory: Factory, session: AsyncSession
) -> None:
    """Someone else logs in on the same phone: FCM addresses the app install, so the token
    follows the account now using it and the previous owner stops receiving its pushes."""
    world = await factory.world()
    token = f"fcm-{uuid.uuid4().hex}"
    await client.post(DEVICES, json=_device_body(token), headers=factory.auth(world.installer_a))
    moved = await client.post(
        DEVICES, json=_device_body(token), headers=factory.auth(world.installer_b)
    )
    assert moved.status_code == 200
    assert (await client.get(DEVICES, headers=factory.auth(world.installer_a))).json() == []
    row = await session.scalar(
        select(PushDevice)
        .where(PushDevice.token == token)
        .execution_options(populate_existing=True)
    )
    assert row is not None
    assert row.user_id == world.installer_b.id


def _subscription() -> dict[str, Any]:
    _private, public = generate_vapid_keys()  # any P-256 point stands for the browser's key
    return {
        "endpoint": f"https://push.example.net/send/{uuid.uuid4().hex}",
        "keys": {"p256dh": public, "auth": b64url(b"0123456789abcdef")},
        "expirationTime": None,
    }


async def test_web_push_subscriptions_are_registered_validated_and_private(
    client: httpx.AsyncClient, factory: Factory
) -> None:
    world = await factory.world()
    auth = factory.auth(world.measurer_a)
    body = _subscription()
    created = await client.post(SUBSCRIPTIONS, json=body, headers=auth)
    assert created.status_code == 201, created.text
    assert created.json()["endpointHost"] == "push.example.net"
    assert (await client.post(SUBSCRIPTIONS, json=body, headers=auth)).status_code == 200
    bad_key = {**body, "keys": {**body["keys"], "p256dh": "A" * 86}}
    refused = await client.post(SUBSCRIPTIONS, json=bad_key, headers=auth)
    assert refused.status_code == 422
    assert refused.json()["errors"][0]["field"] == "keys.p256dh"
    ftp = await client.post(
        SUBSCRIPTIONS, json={**body, "endpoint": "ftp://x.example/1"}, headers=auth
    )
    assert ftp.status_code == 422
    assert ftp.json()["errors"][0]["field"] == "endpoint"
    sub_id = created.json()["id"]
    assert (await client.get(SUBSCRIPTIONS, headers=factory.auth(world.admin))).json() == []
    stranger = await client.delete(f"{SUBSCRIPTIONS}/{sub_id}", headers=factory.auth(world.admin))
    assert stranger.status_code == 404
    own = await client.delete(f"{SUBSCRIPTIONS}/{sub_id}", headers=auth)
    assert own.status_code == 204


async def test_notification_settings_round_trip_and_validation(
    client: httpx.AsyncClient, factory: Factory
) -> None:
    world = await factory.world()
    auth = factory.auth(world.installer_a)
    defaults = await client.get(SETTINGS, headers=auth)
    assert defaults.status_code == 200
    assert defaults.json()["kinds"]["task_assigned"] == {"push": True, "email": False}
    assert defaults.json()["quietHours"] is None

    saved = await client.put(
        SETTINGS,
        json={
            "kinds": {"deal_stage": {"push": False, "email": True}},
            "quietHours": {"start": "22:30", "end": "06:45"},
        },
        headers=auth,
    )
    assert saved.status_code == 200, saved.text
    again = await client.get(SETTINGS, headers=auth)
    assert again.json()["kinds"]["deal_stage"] == {"push": False, "email": True}
    assert again.json()["kinds"]["task_assigned"] == {"push": True, "email": False}
    assert again.json()["quietHours"] == {"start": "22:30", "end": "06:45"}
    # Someone else's settings are their own.
    other = await client.get(SETTINGS, headers=factory.auth(world.installer_b))
    assert other.json()["quietHours"] is None

    for body, status, field in (
        ({"quietHours": {"start": "25:00", "end": "06:00"}}, 422, "quietHours.start"),
        ({"quietHours": {"start": "07:00", "end": "07:00"}}, 422, "quietHours.end"),
        ({"kinds": {"Bad Kind!": {"push": True}}}, 422, "kinds.Bad Kind!"),
        ({"kinds": {"deal_stage": {"sms": True}}}, 400, "sms"),
        ({"kinds": {"deal_stage": {"push": "yes please"}}}, 400, "kinds[...].push"),
    ):
        answer = await client.put(SETTINGS, json=body, headers=auth)
        assert answer.status_code == status, (body, answer.text)
        assert field in {e["field"] for e in answer.json()["errors"]}, answer.json()
    unchanged = await client.get(SETTINGS, headers=auth)
    assert unchanged.json()["quietHours"] == {"start": "22:30", "end": "06:45"}


async def test_the_outbox_view_is_for_the_organisations_admins_only(
    client: httpx.AsyncClient, factory: Factory, session: AsyncSession, clock: FrozenClock
) -> None:
    world = await factory.world()
    other = await factory.world("Other Windows")
    for w in (world, other):
        await notify(
            session,
            organization_id=w.org.id,
            user_id=w.installer_a.id,
            kind="task_assigned",
            title="Job",
            dedupe_key="t:1",
            now=clock.now(),
        )
    await session.commit()
    for user in (world.manager_a, world.installer_a):
        refused = await client.get(OUTBOX, headers=factory.auth(user))
        assert refused.status_code == 403
    listed = await client.get(OUTBOX, headers=factory.auth(world.admin))
    assert listed.status_code == 200
    [item] = listed.json()["items"]
    assert item["status"] == "pending"
    assert item["payload"]["userId"] == str(world.installer_a.id)
    assert (
        await client.get(OUTBOX, params={"status": "dead"}, headers=factory.auth(world.admin))
    ).json()["items"] == []
    bad = await client.get(OUTBOX, params={"status": "lost"}, headers=factory.auth(world.admin))
    assert bad.status_code == 400
    # Another organisation's row is not found; a pending row cannot be "retried".
    theirs = await session.scalar(
        select(OutboxMessage.id).where(OutboxMessage.organization_id == other.org.id)
    )
    nope = await client.post(f"{OUTBOX}/{theirs}/retry", headers=factory.auth(world.admin))
    assert nope.status_code == 404
    pending = await client.post(f"{OUTBOX}/{item['id']}/retry", headers=factory.auth(world.admin))
    assert pending.status_code == 409
    manager = await client.post(
        f"{OUTBOX}/{item['id']}/retry", headers=factory.auth(world.manager_a)
    )
    assert manager.status_code == 403
    row = await session.get(OutboxMessage, uuid.UUID(item["id"]))
    assert row is not None
    assert row.status is OutboxStatus.PENDING


async def test_the_outbox_list_is_paginated(
    client: httpx.AsyncClient, factory: Factory, session: AsyncSession, clock: FrozenClock
) -> None:
    world = await factory.world()
    for i in range(5):
        await notify(
            session,
            organization_id=world.org.id,
            user_id=world.installer_a.id,
            kind="task_assigned",
            title=f"Job {i}",
            dedupe_key=f"page:{i}",
            now=clock.now(),
        )
    await session.commit()
    seen: list[str] = []
    cursor = None
    while True:
        params: dict[str, Any] = {"limit": 2}
        if cursor:
            params["cursor"] = cursor
        page = (await client.get(OUTBOX, params=params, headers=factory.auth(world.admin))).json()
        seen += [i["id"] for i in page["items"]]
        cursor = page.get("nextCursor")
        if not cursor:
            break
    assert len(seen) == len(set(seen)) == 5
