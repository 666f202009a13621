"""The OsmAnd protocol endpoint for the free Traccar Client apps (and OsmAnd's tracking).

Configure the app's server URL as ``https://<host>/api/v1/tracking/osmand`` and register the
app's device identifier for the worker (``POST /api/v1/tracking/devices``). No login: the
registered identifier is the credential (as in Traccar); unknown or disabled devices get 400 and
nothing is stored. Answers follow the protocol notes: 200 with an empty body when the request
was understood — also when the point is dropped by policy (off shift, too old, a duplicate), so
the apps do not retry it forever — and 400 for what cannot be parsed. Query strings and bodies
are never logged: they name a person's phone and say where they are.
"""

from __future__ import annotations

from typing import Any

from litestar import Request, Response, route
from litestar.datastructures import State
from sqlalchemy.ext.asyncio import AsyncSession

from backend.lib.clock import Clock
from backend.tracking import ingest, services
from backend.tracking.osmand import OsmandError, decode

MAX_BODY = 64 * 1024


def _empty(status: int) -> Response[bytes]:
    return Response(b"", status_code=status, media_type="text/plain")


@route(
    "/api/v1/tracking/osmand",
    http_method=["GET", "POST"],
    opt={"public": True},
    request_max_body_size=MAX_BODY,
    include_in_schema=False,
)
async def osmand(
    request: Request[Any, Any, State], db_session: AsyncSession, clock: Clock
) -> Response[bytes]:
    """One position report from a phone (see the module docstring)."""
    now = clock.now()
    body = await request.body()
    try:
        report = decode(
            query=list(request.query_params.multi_items()),
            body=body,
            content_type=request.headers.get("content-type"),
            received_at=now,
        )
    except OsmandError:
        return _empty(400)
    found = await services.device_by_identifier(db_session, report.device_id)
    if found is None:
        return _empty(400)
    device, time_zone = found
    battery = report.point.battery_pct if report.point else report.received_battery_pct
    await services.touch_device(db_session, device, now, battery)
    if report.point is not None and report.valid:
        await ingest.store(
            db_session,
            organization_id=device.organization_id,
            user_id=device.user_id,
            time_zone=time_zone,
            device_id=device.id,
            points=[(0, report.point)],
            now=now,
        )
    return _empty(200)
