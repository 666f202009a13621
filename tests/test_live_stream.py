"""The live stream end to end: a real uvicorn server with the PostgreSQL LISTEN/NOTIFY channel,
a manager subscribed over SSE, a worker's ping committed → the manager receives the position.

This needs committed data (NOTIFY is sent on commit), so it uses its own organisation, committed
for real, and deletes it afterwards.
"""

from __future__ import annotations

import asyncio
import socket
import uuid
from datetime import UTC, datetime

import httpx
import msgspec
import uvicorn
from sqlalchemy import delete, text
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from backend.accounts.models import Organization, Role, Team, TeamMember, User
from backend.accounts.security import mint_access_token
from backend.app import create_app
from backend.config import Settings


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


async def _read_event(lines: object, wanted: str) -> dict[str, object]:
    event = None
    async for line in lines:  # type: ignore[attr-defined]
        if line.startswith("event:"):
            event = line.split(":", 1)[1].strip()
        elif line.startswith("data:") and event == wanted:
            data: dict[str, object] = msgspec.json.decode(line.split(":", 1)[1].strip())
            return data
    raise AssertionError(f"the stream ended before a {wanted} event")


async def test_a_committed_ping_reaches_the_managers_stream(
    engine: AsyncEngine, settings: Settings, password_hash: str
) -> None:
    org_id = uuid.uuid4()
    manager_id, worker_id, stranger_id = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
    async with AsyncSession(bind=engine) as setup:
        setup.add(Organization(id=org_id, name=f"Stream {org_id.hex[:6]}", time_zone="UTC"))
        await setup.flush()
        for uid, role, name in (
            (manager_id, Role.MANAGER, "Mia Manager"),
            (worker_id, Role.FIELD, "Walt Worker"),
            (stranger_id, Role.FIELD, "Sam Stranger"),
        ):
            setup.add(
                User(
                    id=uid,
                    organization_id=org_id,
                    email=f"{uid.hex}@stream.test",
                    password_hash=password_hash,
                    full_name=name,
                    role=role,
                    skills=[],
                    time_zone="UTC",
                    is_active=True,
                    token_version=1,
                )
            )
        await setup.flush()
        team = Team(id=uuid.uuid4(), organization_id=org_id, name="Stream team", lead_id=manager_id)
        setup.add(team)
        await setup.flush()
        setup.add(TeamMember(team_id=team.id, user_id=worker_id, organization_id=org_id))
        await setup.commit()

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

    port = _free_port()
    server = uvicorn.Server(
        uvicorn.Config(create_app(settings), host="127.0.0.1", port=port, log_level="warning")
    )
    serving = asyncio.create_task(server.serve())
    try:
        for _ in range(200):  # uvicorn offers no event to await; 10 s at most
            if server.started:
                break
            await asyncio.sleep(0.05)
        assert server.started, "the test server did not start"
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=10) as client:
            for user in (worker_id, stranger_id):
                started = await client.post("/api/v1/tracking/shifts/start", headers=auth(user))
                assert started.status_code == 201, started.text
            async with client.stream(
                "GET", "/api/v1/tracking/stream", headers=auth(manager_id)
            ) as stream:
                assert stream.status_code == 200
                assert stream.headers["content-type"].startswith("text/event-stream")
                lines = stream.aiter_lines()
                snapshot = await _read_event(lines, "snapshot")
                features = snapshot["features"]
                assert isinstance(features, list)
                assert [f["id"] for f in features] == [str(worker_id)]

                def ping(lat: float) -> dict[str, object]:
                    now = datetime.now(UTC).isoformat()
                    return {"points": [{"timestamp": now, "lat": lat, "lon": 49.12, "speed": 9.5}]}

                # Someone the manager may not see moves first: nothing must reach the stream.
                hidden = await client.post(
                    "/api/v1/tracking/pings", json=ping(55.70), headers=auth(stranger_id)
                )
                assert hidden.json()["accepted"] == 1
                sent = await client.post(
                    "/api/v1/tracking/pings", json=ping(55.79), headers=auth(worker_id)
                )
                assert sent.json()["accepted"] == 1
                position = await asyncio.wait_for(_read_event(lines, "position"), timeout=5)
                assert position["userId"] == str(worker_id)
                assert position["lat"] == 55.79
                assert position["speed"] == 9.5
    finally:
        server.should_exit = True
        await serving
        async with AsyncSession(bind=engine) as cleanup:
            await cleanup.execute(
                text("DELETE FROM pings WHERE organization_id = :org"), {"org": org_id}
            )
            await cleanup.execute(delete(Organization).where(Organization.id == org_id))
            await cleanup.commit()
