"""Proof of visit: check-in and check-out on a task at its site.

A check-in is **verified** when the reported position is within the site's radius allowing for
the reported accuracy (``geo.track.within_geofence``) and nothing looks wrong; **suspicious** when
the phone says the location is mocked or the position implies an impossible jump from the last
stored point; **unverified** when it is outside the site or the accuracy is too poor to tell —
unless the worker gives a reason, which makes it **overridden** (the reason is kept and audited).
Check-in starts the task. Check-out completes it with the outcome; the pings between check-in and
check-out give the dwell time on site, and a visit shorter than ``MIN_DWELL`` is flagged.
"""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from backend.accounts.models import Role
from backend.audit import services as audit
from backend.customers.models import SITE_LAT, SITE_LON, Site
from backend.lib.errors import Conflict, InvalidInput
from backend.lib.tenancy import Actor
from backend.tasks import services as tasks
from backend.tasks.models import VISIT_KINDS, Task
from backend.tracking.ingest import points_between
from backend.tracking.models import CheckIn, CheckKind, CheckStatus
from backend.tracking.points import fixes_of
from backend.tracking.policy import MAX_SPEED_MPS, POOR_ACCURACY_M, SITE_RADIUS_M
from geo.track import Fix, dwell, haversine_m, within_geofence

MIN_DWELL = timedelta(minutes=2)
RECENT = timedelta(minutes=30)


async def _site_point(session: AsyncSession, task: Task) -> tuple[float, float]:
    if task.site_id is None:
        raise InvalidInput.on("taskId", "the task has no site to check in at")
    lat, lon = (
        await session.execute(select(SITE_LAT, SITE_LON).where(Site.id == task.site_id))
    ).one()
    return float(lat), float(lon)


async def _own_visit(session: AsyncSession, actor: Actor, task_id: uuid.UUID) -> Task:
    task = await tasks.visible_task(session, actor, task_id, for_update=True)
    if task.kind not in VISIT_KINDS:
        raise InvalidInput.on(
            "taskId", "only visits (measurement, installation, visit) have check-ins"
        )
    if task.assignee_id != actor.user_id and actor.role is Role.FIELD:
        raise InvalidInput.on("taskId", "only the assignee checks in")
    return task


async def _flags(
    session: AsyncSession,
    user_id: uuid.UUID,
    lat: float,
    lon: float,
    accuracy_m: float | None,
    mocked: bool,
    now: datetime,
) -> list[str]:
    flags = []
    if mocked:
        flags.append("mocked_location")
    if accuracy_m is None or accuracy_m > POOR_ACCURACY_M:
        flags.append("poor_accuracy")
    recent = await points_between(session, user_id, now - RECENT, now + timedelta(seconds=1))
    if any(p.mocked for p in recent) and "mocked_location" not in flags:
        flags.append("mocked_location")
    if recent:
        last = recent[-1]
        seconds = max((now - last.recorded_at).total_seconds(), 1.0)
        slack = (last.accuracy_m or 0.0) + (accuracy_m or 0.0)
        distance = max(haversine_m(last.lat, last.lon, lat, lon) - slack, 0.0)
        if distance / seconds > MAX_SPEED_MPS:
            flags.append("implausible_jump")
    return flags


def _status(inside: bool, flags: list[str], override_reason: str | None) -> CheckStatus:
    if "mocked_location" in flags or "implausible_jump" in flags:
        return CheckStatus.SUSPICIOUS
    if inside and "poor_accuracy" not in flags:
        return CheckStatus.VERIFIED
    if override_reason:
        return CheckStatus.OVERRIDDEN
    return CheckStatus.UNVERIFIED


async def check(
    session: AsyncSession,
    actor: Actor,
    task_id: uuid.UUID,
    *,
    kind: CheckKind,
    lat: float,
    lon: float,
    accuracy_m: float | None,
    mocked: bool,
    now: datetime,
    override_reason: str | None = None,
    outcome: str | None = None,
) -> CheckIn:
    """Record a check-in (starts the task) or check-out (completes it with ``outcome``)."""
    task = await _own_visit(session, actor, task_id)
    site_lat, site_lon = await _site_point(session, task)
    fence = within_geofence(lat, lon, accuracy_m, site_lat, site_lon, SITE_RADIUS_M)
    flags = await _flags(session, actor.user_id, lat, lon, accuracy_m, mocked, now)
    if not fence.inside:
        flags.append("outside_site")
    dwell_s = None
    if kind is CheckKind.OUT:
        if not outcome:
            raise InvalidInput.on("outcome", "say how the visit went")
        checked_in = await session.scalar(
            select(CheckIn)
            .where(CheckIn.task_id == task.id, CheckIn.kind == CheckKind.IN)
            .order_by(CheckIn.at.desc())
            .limit(1)
        )
        if checked_in is None:
            raise Conflict("Check in before checking out")
        points = await points_between(session, actor.user_id, checked_in.at, now)
        # The stay runs from the check-in's own fix, through the pings, to the check-out's fix.
        fixes = (
            [Fix(checked_in.at, checked_in.lat, checked_in.lon, checked_in.accuracy_m)]
            if checked_in.lat is not None and checked_in.lon is not None
            else []
        )
        fixes += fixes_of([p for p in points if p.recorded_at > checked_in.at])
        fixes.append(Fix(now, lat, lon, accuracy_m, None, mocked))
        stay = dwell(fixes, site_lat, site_lon, SITE_RADIUS_M)
        dwell_s = int(stay.total_seconds())
        if stay < MIN_DWELL:
            flags.append("short_visit")
    status = _status(fence.inside, flags, override_reason)
    row = CheckIn(
        id=uuid.uuid4(),
        organization_id=actor.organization_id,
        task_id=task.id,
        user_id=actor.user_id,
        kind=kind,
        at=now,
        lat=lat,
        lon=lon,
        accuracy_m=accuracy_m,
        distance_m=round(fence.distance_m, 1),
        status=status,
        flags=flags,
        override_reason=override_reason,
        dwell_s=dwell_s,
        outcome=outcome,
    )
    session.add(row)
    await session.flush()
    if kind is CheckKind.IN:
        await tasks.start_task(session, actor, task.id, now)
    else:
        await tasks.complete_task(session, actor, task.id, outcome or "", now)
    await audit.record(
        session,
        organization_id=actor.organization_id,
        entity="task",
        entity_id=task.id,
        action=f"check_{kind.value}",
        actor_id=actor.user_id,
        at=now,
        changes={"status": [None, status.value], "flags": [None, flags]}
        | ({"overrideReason": [None, override_reason]} if override_reason else {}),
    )
    return row
