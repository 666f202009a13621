"""Live positions pushed to managers' screens as server-sent events.

Ingest calls ``pg_notify`` on the organisation's channel inside its own transaction, so a
position is announced exactly when it is committed (never for a rolled-back batch). Every API
process LISTENs through Litestar's channels plugin with the asyncpg backend — one connection per
process — so any process can serve any subscriber. The stream sends the visible team's snapshot
first (``event: snapshot``, the live FeatureCollection), then one ``event: position`` per fix of
a visible worker, and a comment line every 15 s to keep proxies from closing it.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncGenerator
from datetime import datetime
from typing import Any

import msgspec
from litestar.channels import ChannelsPlugin
from litestar.channels.backends.asyncpg import AsyncPgChannelsBackend
from litestar.response import ServerSentEventMessage
from sqlalchemy.engine import make_url

from backend.tracking.points import Point

KEEPALIVE_S = 15.0


def channel_of(organization_id: uuid.UUID) -> str:
    """The NOTIFY channel of an organisation's live positions."""
    return f"fieldcrm_live_{organization_id.hex}"


def make_channels(database_url: str) -> ChannelsPlugin:
    """The channels plugin listening on PostgreSQL (asyncpg DSN from our SQLAlchemy URL)."""
    dsn = make_url(database_url).set(drivername="postgresql").render_as_string(hide_password=False)
    return ChannelsPlugin(
        backend=AsyncPgChannelsBackend(dsn=dsn),
        arbitrary_channels_allowed=True,
        subscriber_max_backlog=1000,
        subscriber_backlog_strategy="dropleft",
    )


def position_payload(user_id: uuid.UUID, point: Point) -> str:
    """The NOTIFY payload announcing a worker's newest stored fix (ingest sends it with
    ``pg_notify`` in its store statement, so PostgreSQL delivers it on commit)."""
    return msgspec.json.encode(
        {
            "userId": str(user_id),
            "lat": round(point.lat, 6),
            "lon": round(point.lon, 6),
            "recordedAt": point.recorded_at.isoformat(),
            "accuracy": point.accuracy_m,
            "speed": point.speed_mps,
            "heading": point.heading_deg,
            "battery": point.battery_pct,
        }
    ).decode()


async def events(
    channels: ChannelsPlugin,
    organization_id: uuid.UUID,
    visible: frozenset[str] | None,
    snapshot: dict[str, Any],
) -> AsyncGenerator[ServerSentEventMessage, None]:
    """The SSE messages for one subscriber: the snapshot, then visible workers' positions."""
    yield ServerSentEventMessage(data=msgspec.json.encode(snapshot).decode(), event="snapshot")
    async with channels.start_subscription([channel_of(organization_id)]) as subscriber:
        iterator = subscriber.iter_events().__aiter__()
        while True:
            try:
                message = await asyncio.wait_for(iterator.__anext__(), timeout=KEEPALIVE_S)
            except TimeoutError:
                yield ServerSentEventMessage(comment=f"keep-alive {datetime.now().isoformat()}")
                continue
            except StopAsyncIteration:
                return
            data = msgspec.json.decode(message)
            if visible is None or data.get("userId") in visible:
                yield ServerSentEventMessage(data=message.decode(), event="position")
