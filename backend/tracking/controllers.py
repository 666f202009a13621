"""JSON API of tracking: ping batches, devices, shifts, weekly schedules."""

from __future__ import annotations

import uuid
from datetime import date, datetime, timedelta
from typing import Annotated, Any

from litestar import Controller, Request, Response, delete, get, post, put
from litestar.channels import ChannelsPlugin
from litestar.datastructures import State
from litestar.params import HeaderParameter, Parameter, QueryParameter
from litestar.response import ServerSentEvent
from litestar.status_codes import HTTP_201_CREATED, HTTP_204_NO_CONTENT
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from backend.accounts.models import Role
from backend.lib.clock import Clock
from backend.lib.tenancy import Actor
from backend.tasks.services import visible_task
from backend.tracking import days, live, mydata, schemas, services, stream, visits
from backend.tracking.deps import PROVIDE_PING_WRITER, pings_response
from backend.tracking.group_commit import PingWriter
from backend.tracking.models import CheckIn, CheckKind

IdempotencyKey = Annotated[
    str | None,
    HeaderParameter(
        name="Idempotency-Key",
        required=False,
        description="retry-safe: the same key and body get the same answer, stored once",
    ),
]


class TrackingController(Controller):
    """Where field staff are, and when they work."""

    path = "/api/v1/tracking"
    tags = ["tracking"]

    @post(
        "/pings",
        status_code=200,
        request_max_body_size=2_000_000,
        dependencies={"ping_writer": PROVIDE_PING_WRITER},
    )
    async def pings(
        self,
        request: Request[Any, Any, Any],
        actor: Actor,
        clock: Clock,
        ping_writer: PingWriter,
        idempotency_key: IdempotencyKey = None,
    ) -> Response[Any]:
        """A batch of up to 1,000 fixes ``{"points": [{timestamp, lat, lon, accuracy, speed,
        heading, altitude, battery, mocked, activity}]}``. Valid points are stored even when
        others are refused (each refusal is listed); points outside the caller's shifts are
        counted, not stored."""
        outcome = await services.submit_pings(
            ping_writer, actor, await request.body(), clock.now(), idempotency_key
        )
        return pings_response(outcome)

    @get("/live")
    async def live_positions(
        self,
        db_session: AsyncSession,
        actor: Actor,
        clock: Clock,
        team: Annotated[uuid.UUID | None, Parameter(description="a team you lead")] = None,
    ) -> Response[bytes]:
        """GeoJSON FeatureCollection: each visible worker's position, last seen, status
        (off_shift, offline, on_site, driving, idle), battery, current and next task. Views
        of other people's positions are audited."""
        collection = await live.live_json(db_session, actor, clock.now(), team)
        return Response(collection, media_type="application/geo+json")

    @get("/stream", media_type="text/event-stream")
    async def live_stream(
        self,
        request: Request[Any, Any, Any],
        actor: Actor,
        clock: Clock,
        state: State,
        team: Annotated[uuid.UUID | None, Parameter(description="a team you lead")] = None,
    ) -> ServerSentEvent:
        """Server-sent events: ``snapshot`` (the live FeatureCollection), then ``position``
        for each new fix of a visible worker. Served by any API process (PostgreSQL
        LISTEN/NOTIFY)."""
        # A short transaction of its own: the stream may stay open for hours.
        async with state.sessionmaker() as session, session.begin():
            snapshot = await live.live(session, actor, clock.now(), team)
        everyone = actor.role is Role.ADMIN and team is None
        visible = None if everyone else frozenset(f["id"] for f in snapshot["features"])
        channels = request.app.plugins.get(ChannelsPlugin)
        return ServerSentEvent(stream.events(channels, actor.organization_id, visible, snapshot))

    @get("/users/{user_id:uuid}/track")
    async def day_track(
        self,
        user_id: uuid.UUID,
        db_session: AsyncSession,
        actor: Actor,
        clock: Clock,
        day: Annotated[date | None, QueryParameter(name="date", description="local day")] = None,
    ) -> dict[str, Any]:
        """A worker's day as GeoJSON: the simplified track, its stops, distance and time on
        site / driving / idle. Own day, or a team member's (audited)."""
        return await days.day_track(
            db_session, actor, user_id, day or clock.now().date(), clock.now()
        )

    @get("/me")
    async def my_data(
        self,
        db_session: AsyncSession,
        actor: Actor,
        clock: Clock,
        start: datetime | None = None,
        end: datetime | None = None,
    ) -> dict[str, Any]:
        """Everything tracking recorded about the caller in [start, end) (default: the last
        24 hours; at most 7 days): devices, schedule, shifts, points, check-ins, daily
        summaries, and who viewed their location."""
        end = end or clock.now() + timedelta(seconds=1)
        return await mydata.my_data(db_session, actor, start or end - timedelta(days=1), end)

    @post("/devices", status_code=HTTP_201_CREATED)
    async def register_device(
        self, data: schemas.DeviceIn, db_session: AsyncSession, actor: Actor
    ) -> schemas.DeviceOut:
        """Register a phone's identifier (the id the Traccar Client / OsmAnd app sends)."""
        return services.device_out(await services.register_device(db_session, actor, data))

    @get("/devices")
    async def list_devices(self, db_session: AsyncSession, actor: Actor) -> list[schemas.DeviceOut]:
        """The caller's devices (admins: the organisation's)."""
        return await services.list_devices(db_session, actor)

    @delete("/devices/{device_id:uuid}", status_code=HTTP_204_NO_CONTENT)
    async def remove_device(
        self, device_id: uuid.UUID, db_session: AsyncSession, actor: Actor
    ) -> None:
        """Unregister a device."""
        await services.remove_device(db_session, actor, device_id)

    @post("/shifts/start", status_code=HTTP_201_CREATED)
    async def start_shift(
        self, db_session: AsyncSession, actor: Actor, clock: Clock
    ) -> schemas.ShiftOut:
        """Start the caller's shift."""
        return services.shift_out(await services.start_shift(db_session, actor, clock.now()))

    @post("/shifts/end", status_code=200)
    async def end_shift(
        self, db_session: AsyncSession, actor: Actor, clock: Clock
    ) -> schemas.ShiftOut:
        """End the caller's shift."""
        return services.shift_out(await services.end_shift(db_session, actor, clock.now()))

    @get("/shifts")
    async def list_shifts(
        self,
        db_session: AsyncSession,
        actor: Actor,
        clock: Clock,
        user_id: Annotated[uuid.UUID | None, QueryParameter(name="userId")] = None,
        start: datetime | None = None,
        end: datetime | None = None,
    ) -> list[schemas.ShiftOut]:
        """A visible user's shifts (default: the caller's, last 7 days)."""
        now = clock.now()
        return await services.list_shifts(
            db_session,
            actor,
            user_id or actor.user_id,
            start or now - timedelta(days=7),
            end or now + timedelta(days=1),
        )

    @put("/users/{user_id:uuid}/schedule", status_code=200)
    async def set_schedule(
        self,
        user_id: uuid.UUID,
        data: schemas.ScheduleIn,
        db_session: AsyncSession,
        actor: Actor,
        clock: Clock,
    ) -> schemas.ScheduleOut:
        """Set a worker's weekly shifts in their own time zone."""
        return await services.set_schedule(db_session, actor, user_id, data.schedule, clock.now())

    @get("/users/{user_id:uuid}/schedule")
    async def get_schedule(
        self, user_id: uuid.UUID, db_session: AsyncSession, actor: Actor
    ) -> schemas.ScheduleOut:
        """A worker's weekly shifts."""
        return await services.get_schedule(db_session, actor, user_id)


def check_in_out(row: CheckIn) -> schemas.CheckInOut:
    """The API shape of a check-in."""
    return schemas.CheckInOut(
        id=row.id,
        task_id=row.task_id,
        user_id=row.user_id,
        kind=row.kind.value,
        at=row.at,
        lat=row.lat,
        lon=row.lon,
        accuracy_m=row.accuracy_m,
        distance_m=row.distance_m,
        status=row.status.value,
        flags=list(row.flags),
        override_reason=row.override_reason,
        dwell_s=row.dwell_s,
        outcome=row.outcome,
    )


class VisitController(Controller):
    """Proof of visit on tasks."""

    path = "/api/v1/tasks/{task_id:uuid}"
    tags = ["tracking"]

    @post("/check-in", status_code=HTTP_201_CREATED)
    async def check_in(
        self,
        task_id: uuid.UUID,
        data: schemas.CheckInIn,
        db_session: AsyncSession,
        actor: Actor,
        clock: Clock,
    ) -> schemas.CheckInOut:
        """Arrive at the task's site: judged verified / unverified / suspicious; starts the task."""
        row = await visits.check(
            db_session,
            actor,
            task_id,
            kind=CheckKind.IN,
            lat=data.lat,
            lon=data.lon,
            accuracy_m=data.accuracy,
            mocked=data.mocked,
            now=clock.now(),
            override_reason=data.override_reason,
        )
        return check_in_out(row)

    @post("/check-out", status_code=HTTP_201_CREATED)
    async def check_out(
        self,
        task_id: uuid.UUID,
        data: schemas.CheckOutIn,
        db_session: AsyncSession,
        actor: Actor,
        clock: Clock,
    ) -> schemas.CheckInOut:
        """Leave the site with the outcome: completes the task; dwell time from the pings."""
        row = await visits.check(
            db_session,
            actor,
            task_id,
            kind=CheckKind.OUT,
            lat=data.lat,
            lon=data.lon,
            accuracy_m=data.accuracy,
            mocked=data.mocked,
            now=clock.now(),
            override_reason=data.override_reason,
            outcome=data.outcome,
        )
        return check_in_out(row)

    @get("/check-ins")
    async def list_check_ins(
        self, task_id: uuid.UUID, db_session: AsyncSession, actor: Actor
    ) -> list[schemas.CheckInOut]:
        """The task's check-ins and check-outs, oldest first."""
        task = await visible_task(db_session, actor, task_id)
        rows = await db_session.scalars(
            select(CheckIn).where(CheckIn.task_id == task.id).order_by(CheckIn.at)
        )
        return [check_in_out(r) for r in rows.all()]


CONTROLLERS = [TrackingController, VisitController]
