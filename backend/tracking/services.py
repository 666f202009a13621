"""Business rules of tracking: devices, shifts, schedules and the JSON ping batch."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

import msgspec
from sqlalchemy import select, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from backend.accounts.models import Role, User
from backend.accounts.services import get_user
from backend.lib import idempotency
from backend.lib.errors import Conflict, InvalidInput, MalformedInput, NotFound
from backend.lib.tenancy import Actor
from backend.lib.wallclock import field_error_of
from backend.tracking import ingest, schemas
from backend.tracking.group_commit import Outcome, PingWriter, Submission
from backend.tracking.models import Device, Shift, ShiftSchedule, ShiftSource
from backend.tracking.points import Point, Rejected
from backend.tracking.schedule import dump_weekly_shifts, parse_weekly_shifts


def _reason(exc: msgspec.ValidationError) -> tuple[str, str]:
    """(field, reason) of a point that msgspec refused; "point" when it is not an object."""
    error = field_error_of(exc, "point")
    field = error.field.removeprefix("point.").split("[")[0]
    if "timezone" in error.reason:
        return field, "needs a time zone (e.g. Z)"
    return field, error.reason


_WHOLE_BATCH = msgspec.json.Decoder(schemas.TypedPingBatch)


def parse_batch(body: bytes) -> list[tuple[int, Point] | Rejected]:
    """Each point of a JSON batch as a ``Point`` or the reason it is refused."""
    try:  # the usual case, a batch without a bad point, in one typed decode
        whole = _WHOLE_BATCH.decode(body).points
    except (msgspec.ValidationError, msgspec.DecodeError):
        pass
    else:
        if len(whole) > ingest.MAX_BATCH:
            raise InvalidInput.on("points", f"at most {ingest.MAX_BATCH} points per batch")
        return list(enumerate(whole))
    try:
        batch = msgspec.json.decode(body, type=schemas.PingBatch)
    except (msgspec.ValidationError, msgspec.DecodeError) as exc:
        raise MalformedInput.on("points", f"not a batch of points: {exc}") from exc
    if len(batch.points) > ingest.MAX_BATCH:
        raise InvalidInput.on("points", f"at most {ingest.MAX_BATCH} points per batch")
    out: list[tuple[int, Point] | Rejected] = []
    for index, raw in enumerate(batch.points):
        try:
            point = msgspec.convert(raw, Point)
        except msgspec.ValidationError as exc:
            out.append(Rejected(index, *_reason(exc)))
            continue
        out.append((index, point))
    return out


PINGS_SCOPE = "tracking.pings"


async def submit_pings(
    writer: PingWriter, actor: Actor, body: bytes, now: datetime, idempotency_key: str | None
) -> Outcome:
    """Validate a JSON batch of the caller's own points and store it through the group writer
    (with the points of other requests of the moment); the answer lists each refused point."""
    key = idempotency.check_key(idempotency_key) if idempotency_key is not None else None
    parsed = parse_batch(body)
    kept, refused = ingest.policy_filter([p for p in parsed if isinstance(p, tuple)], now)
    refused += [p for p in parsed if isinstance(p, Rejected)]
    rejected = sorted(refused, key=lambda r: r.index)

    def answer(result: ingest.StoreResult) -> Any:
        return msgspec.to_builtins(
            schemas.PingResult(
                accepted=result.stored,
                duplicates=result.duplicates,
                off_shift=result.off_shift,
                rejected=rejected,
            )
        )

    claim = None
    if key is not None:
        claim = idempotency.Claim(
            actor.organization_id, actor.user_id, PINGS_SCOPE, key, idempotency.body_hash(body), now
        )
    batch = ingest.Batch(
        actor.organization_id, actor.user_id, actor.time_zone, None, [p for _, p in kept], now
    )
    return await writer.submit(Submission(batch, claim, answer))


# --- devices ----------------------------------------------------------------------------------


def device_out(row: Device) -> schemas.DeviceOut:
    """The API shape of a device."""
    return schemas.DeviceOut(
        id=row.id,
        user_id=row.user_id,
        identifier=row.identifier,
        name=row.name,
        is_active=row.is_active,
        last_seen_at=row.last_seen_at,
        battery_pct=row.battery_pct,
    )


async def register_device(session: AsyncSession, actor: Actor, data: schemas.DeviceIn) -> Device:
    """Register a phone's identifier for the caller (admins: for any user of the org)."""
    owner = data.user_id or actor.user_id
    if owner != actor.user_id:
        actor.require_role(Role.ADMIN)
        await get_user(session, actor, owner)
    taken = await session.scalar(select(Device).where(Device.identifier == data.identifier))
    if taken is not None:
        raise Conflict(
            "This device identifier is registered already",
            errors=[],
        )
    row = Device(
        id=uuid.uuid4(),
        organization_id=actor.organization_id,
        user_id=owner,
        identifier=data.identifier,
        name=data.name,
    )
    session.add(row)
    await session.flush()
    return row


async def list_devices(
    session: AsyncSession, actor: Actor, *, own: bool = False
) -> list[schemas.DeviceOut]:
    """The caller's devices (admins: all of the organisation, unless ``own``)."""
    stmt = select(Device).where(Device.organization_id == actor.organization_id)
    if own or actor.role is not Role.ADMIN:
        stmt = stmt.where(Device.user_id == actor.user_id)
    rows = await session.scalars(stmt.order_by(Device.created_at))
    return [device_out(r) for r in rows.all()]


async def remove_device(session: AsyncSession, actor: Actor, device_id: uuid.UUID) -> None:
    """Unregister a device (its owner or an admin)."""
    row = await session.scalar(
        select(Device).where(
            Device.id == device_id, Device.organization_id == actor.organization_id
        )
    )
    if row is None or (row.user_id != actor.user_id and actor.role is not Role.ADMIN):
        raise NotFound("Device not found")
    await session.delete(row)


async def device_by_identifier(session: AsyncSession, identifier: str) -> tuple[Device, str] | None:
    """An active device of an active user by the identifier a phone sends (any organisation),
    with its user's time zone."""
    row = (
        await session.execute(
            select(Device, User.time_zone)
            .join(User, User.id == Device.user_id)
            .where(Device.identifier == identifier, Device.is_active, User.is_active)
        )
    ).first()
    return None if row is None else (row[0], row[1])


async def touch_device(
    session: AsyncSession, device: Device, now: datetime, battery_pct: float | None
) -> None:
    """Record that the device reported (and its battery)."""
    values: dict[str, Any] = {"last_seen_at": now}
    if battery_pct is not None:
        values["battery_pct"] = battery_pct
    await session.execute(update(Device).where(Device.id == device.id).values(**values))


# --- shifts -----------------------------------------------------------------------------------


def shift_out(row: Shift) -> schemas.ShiftOut:
    """The API shape of a shift."""
    return schemas.ShiftOut(
        id=row.id,
        user_id=row.user_id,
        started_at=row.started_at,
        ended_at=row.ended_at,
        source=row.source.value,
    )


async def open_shift(session: AsyncSession, user_id: uuid.UUID) -> Shift | None:
    """The user's shift in progress, if any."""
    return await session.scalar(
        select(Shift).where(Shift.user_id == user_id, Shift.ended_at.is_(None))
    )


async def start_shift(session: AsyncSession, actor: Actor, now: datetime) -> Shift:
    """Start the caller's shift (409 if one is already open)."""
    if await open_shift(session, actor.user_id) is not None:
        raise Conflict("A shift is already in progress")
    row = Shift(
        id=uuid.uuid4(),
        organization_id=actor.organization_id,
        user_id=actor.user_id,
        started_at=now,
        source=ShiftSource.MANUAL,
    )
    session.add(row)
    await session.flush()
    return row


async def end_shift(session: AsyncSession, actor: Actor, now: datetime) -> Shift:
    """End the caller's open shift (409 if none)."""
    row = await open_shift(session, actor.user_id)
    if row is None:
        raise Conflict("No shift is in progress")
    if now <= row.started_at:
        raise Conflict("The shift started just now; wait a moment before ending it")
    row.ended_at = now
    await session.flush()
    return row


async def list_shifts(
    session: AsyncSession, actor: Actor, user_id: uuid.UUID, start: datetime, end: datetime
) -> list[schemas.ShiftOut]:
    """A visible user's shifts overlapping [start, end)."""
    await get_user(session, actor, user_id)
    rows = await session.scalars(
        select(Shift)
        .where(
            Shift.user_id == user_id,
            Shift.organization_id == actor.organization_id,
            Shift.started_at < end,
            (Shift.ended_at.is_(None)) | (Shift.ended_at > start),
        )
        .order_by(Shift.started_at)
    )
    return [shift_out(r) for r in rows.all()]


async def set_schedule(
    session: AsyncSession, actor: Actor, user_id: uuid.UUID, raw: dict[str, Any], now: datetime
) -> schemas.ScheduleOut:
    """Set a worker's weekly shifts (admins, and managers for their teams' members)."""
    actor.require_role(Role.ADMIN, Role.MANAGER)
    user = await get_user(session, actor, user_id)
    stored = dump_weekly_shifts(parse_weekly_shifts(raw))
    stmt = insert(ShiftSchedule).values(
        user_id=user.id, organization_id=actor.organization_id, schedule=stored, updated_at=now
    )
    await session.execute(
        stmt.on_conflict_do_update(
            index_elements=[ShiftSchedule.user_id], set_={"schedule": stored, "updated_at": now}
        )
    )
    return schemas.ScheduleOut(user_id=user.id, time_zone=user.time_zone, schedule=stored)


async def get_schedule(
    session: AsyncSession, actor: Actor, user_id: uuid.UUID
) -> schemas.ScheduleOut:
    """A visible worker's weekly shifts ({} when none)."""
    user = await get_user(session, actor, user_id)
    raw = await session.scalar(
        select(ShiftSchedule.schedule).where(ShiftSchedule.user_id == user_id)
    )
    return schemas.ScheduleOut(user_id=user.id, time_zone=user.time_zone, schedule=raw or {})
