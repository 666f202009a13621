"""Committed for real: the notification centre's SSE stream through a uvicorn server with
PostgreSQL LISTEN/NOTIFY, and the relay's long-running loop woken by the outbox trigger.

Both need commits (NOTIFY is delivered on commit), so each test makes its own organisation,
commits it, and deletes it afterwards.
"""

from __future__ import annotations

import asyncio
import functools
import socket
import time
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

import httpx
import msgspec
import pytest
import uvicorn
from sqlalchemy import delete
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from backend.accounts.models import Organization, Role, User
from backend.accounts.security import mint_access_token
from backend.app import create_app
from backend.config import Settings
from backend.lib.clock import SystemClock
from backend.notifications.channels import Channels
from backend.notifications.models import PushDevice, PushPlatform
from backend.notifications.relay import Relay, RelayConfig
from backend.notifications.services import notify
from backend.worker import psycopg_conninfo
from push.fake_fcm import FakeFcm, generate_private_key_pem
from push.fcm import FcmConfig, FcmSender

_key_pem = functools.cache(generate_private_key_pem)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


@pytest.fixture
async def committed_org(engine: AsyncEngine, password_hash: str) -> AsyncIterator[dict[str, Any]]:
    """An organisation with two field workers, committed; deleted after the test."""
    org_id = uuid.uuid4()
    users = {"walt": uuid.uuid4(), "sam": uuid.uuid4()}
    async with AsyncSession(bind=engine) as setup:
        setup.add(Organization(id=org_id, name=f"Live {org_id.hex[:6]}", time_zone="UTC"))
        await setup.flush()
        for name, uid in users.items():
            setup.add(
                User(
                    id=uid,
                    organization_id=org_id,
                    email=f"{uid.hex}@live.test",
                    password_hash=password_hash,
                    full_name=name.title(),
                    role=Role.FIELD,
                    skills=[],
                    time_zone="UTC",
                    is_active=True,
                    token_version=1,
                )
            )
        await setup.commit()
    yield {"org": org_id, **users}
    async with AsyncSession(bind=engine) as cleanup:
        await cleanup.execute(delete(Organization).where(Organization.id == org_id))
        await cleanup.commit()


async def _notify_committed(
    engine: AsyncEngine, org_id: uuid.UUID, user_id: uuid.UUID, title: str
) -> uuid.UUID:
    async with AsyncSession(bind=engine) as session:
        nid = await notify(
            session,
            organization_id=org_id,
            user_id=user_id,
            kind="task_assigned",
            title=title,
            dedupe_key=f"live:{uuid.uuid4()}",
            now=datetime.now(UTC),
        )
        await session.commit()
    assert nid is not None
    return nid


async def _next_event(lines: Any) -> tuple[str, dict[str, Any]]:
    event = None
    async for line in lines:
        if line.startswith("event:"):
            event = line.split(":", 1)[1].strip()
        elif line.startswith("data:") and event is not None:
            data: dict[str, Any] = msgspec.json.decode(line.split(":", 1)[1].strip())
            return event, data
    raise AssertionError("the stream ended")


async def test_the_stream_sends_the_count_then_new_items_and_read_changes(
    engine: AsyncEngine, settings: Settings, committed_org: dict[str, Any]
) -> None:
    org_id, walt, sam = committed_org["org"], committed_org["walt"], committed_org["sam"]

    def auth(user_id: uuid.UUID) -> dict[str, str]:
        token = mint_access_token(
            user_id=user_id,
            organization_id=org_id,
            token_version=1,
            now=datetime.now(UTC),
            ttl_s=900,
            secret_key=settings.secret_key,
        )
        return {"Authorization": f"Bearer {token}"}

    await _notify_committed(engine, org_id, walt, "Older job")
    port = _free_port()
    server = uvicorn.Server(
        uvicorn.Config(create_app(settings), host="127.0.0.1", port=port, log_level="warning")
    )
    serving = asyncio.create_task(server.serve())
    try:
        for _ in range(200):
            if server.started:
                break
            await asyncio.sleep(0.05)
        assert server.started
        async with (
            httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=10) as client,
            client.stream("GET", "/api/v1/me/notifications/stream", headers=auth(walt)) as stream,
        ):
            assert stream.status_code == 200
            assert stream.headers["content-type"].startswith("text/event-stream")
            lines = stream.aiter_lines()
            assert await _next_event(lines) == ("count", {"unread": 1})
            # Someone else's notification never reaches this stream.
            await _notify_committed(engine, org_id, sam, "Not for Walt")
            nid = await _notify_committed(engine, org_id, walt, "Install 3 windows")
            event, item = await asyncio.wait_for(_next_event(lines), timeout=5)
            assert event == "notification"
            assert item["id"] == str(nid)
            assert item["title"] == "Install 3 windows"
            assert await asyncio.wait_for(_next_event(lines), timeout=5) == (
                "count",
                {"unread": 2},
            )
            marked = await client.post("/api/v1/me/notifications/read", json={}, headers=auth(walt))
            assert marked.json() == {"marked": 2}
            assert await asyncio.wait_for(_next_event(lines), timeout=5) == (
                "count",
                {"unread": 0},
            )
    finally:
        server.should_exit = True
        await serving


async def test_the_relay_loop_is_woken_by_the_commit_not_by_its_poll(
    engine: AsyncEngine, database_url: str, committed_org: dict[str, Any]
) -> None:
    org_id, walt = committed_org["org"], committed_org["walt"]
    token = f"live-{uuid.uuid4().hex}"
    async with AsyncSession(bind=engine) as setup:
        now = datetime.now(UTC)
        setup.add(
            PushDevice(
                organization_id=org_id,
                user_id=walt,
                token=token,
                platform=PushPlatform.ANDROID,
                last_seen_at=now,
            )
        )
        await setup.commit()
    async with FakeFcm() as fake:
        fcm = FcmSender(
            FcmConfig(service_account=fake.service_account("live", _key_pem()), fcm_url=fake.url)
        )
        relay = Relay(
            async_sessionmaker(engine, expire_on_commit=False),
            Channels(fcm=fcm),
            SystemClock(),
            RelayConfig(poll_s=120.0),  # it would sleep 2 minutes unless NOTIFY wakes it
        )
        stop = asyncio.Event()
        loop = asyncio.create_task(relay.serve(psycopg_conninfo(database_url), stop))
        try:
            await asyncio.sleep(0.5)  # listening and idle
            # Not a timing test (performance/bench_notifications.py measures latency): each
            # message must arrive long before the relay's 2-minute poll could have found it.
            for i in range(3):
                committed_at = time.monotonic()
                nid = await _notify_committed(engine, org_id, walt, f"Job {i}")
                while f"notification:{nid}" not in fake.delivered_dedupe_keys():
                    assert time.monotonic() - committed_at < 30, "the commit did not wake it"
                    await asyncio.sleep(0.01)
            assert sum(fake.delivered_dedupe_keys().values()) == 3
        finally:
            stop.set()
            await asyncio.wait_for(loop, timeout=10)
            await fcm.aclose()
