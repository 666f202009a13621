"""Who wants what, when: channels per notification kind and quiet hours.

In-app is always on (the notification is stored before any of this is asked). Push defaults to
on and e-mail to off for every kind; a user's ``channels`` override per kind. Quiet hours run in
the user's own time zone from ``quiet_start`` to ``quiet_end`` (wrapping midnight when the end
is earlier); a non-urgent message that falls inside them is delayed to their end, never dropped.
Urgent notifications ignore quiet hours.
"""

from __future__ import annotations

import re
import uuid
from dataclasses import dataclass
from datetime import datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from backend.lib.errors import InvalidInput
from backend.lib.tenancy import Actor
from backend.notifications import schemas
from backend.notifications.models import NotificationSettings

CHANNELS = ("push", "email")
DEFAULTS: dict[str, bool] = {"push": True, "email": False}
#: Kinds the application sends today (others may be set too: new kinds appear over time).
KNOWN_KINDS = (
    "task_assigned",
    "task_overdue",
    "task_escalated",
    "deal_stage",
    "document_ready",
    "arrived_at_site",
    "left_site",
    "visit_feedback",
)
KIND_PATTERN = re.compile(r"^[a-z][a-z0-9_]{0,49}$")


@dataclass(frozen=True)
class Preferences:
    """A user's effective settings."""

    channels: dict[str, dict[str, bool]]
    quiet_start: time | None = None
    quiet_end: time | None = None

    def wants(self, kind: str, channel: str) -> bool:
        """Whether ``kind`` goes out on ``channel`` (push or email)."""
        return self.channels.get(kind, {}).get(channel, DEFAULTS[channel])


def quiet_until(
    now: datetime, time_zone: str, start: time | None, end: time | None
) -> datetime | None:
    """The end of the quiet hours (aware, UTC) when ``now`` falls inside them, else None.

    Wall-clock times in ``time_zone``; the end of a span crossing a DST change is the first
    instant the clock shows ``end`` (a skipped time resolves forward by the zone's rule)."""
    if start is None or end is None or start == end:
        return None
    zone = ZoneInfo(time_zone)
    local = now.astimezone(zone)
    clock = local.time().replace(tzinfo=None)
    if start < end:
        inside = start <= clock < end
        end_day = local.date()
    else:  # wraps midnight, e.g. 22:00-07:00
        inside = clock >= start or clock < end
        end_day = local.date() + timedelta(days=1) if clock >= start else local.date()
    if not inside:
        return None
    resume = datetime.combine(end_day, end, tzinfo=zone)
    return resume.astimezone(ZoneInfo("UTC"))


def preferences_of(row: NotificationSettings | None) -> Preferences:
    """Effective preferences from a stored row (defaults when there is none)."""
    if row is None:
        return Preferences(channels={})
    return Preferences(
        channels={k: dict(v) for k, v in row.channels.items() if isinstance(v, dict)},
        quiet_start=row.quiet_start,
        quiet_end=row.quiet_end,
    )


async def load_many(
    session: AsyncSession, user_ids: list[uuid.UUID]
) -> dict[uuid.UUID, Preferences]:
    """Preferences of several users (defaults for those without a row)."""
    rows = (
        await session.scalars(
            select(NotificationSettings).where(NotificationSettings.user_id.in_(user_ids))
        )
    ).all()
    found = {r.user_id: preferences_of(r) for r in rows}
    return {uid: found.get(uid, preferences_of(None)) for uid in user_ids}


def settings_out(prefs: Preferences) -> schemas.NotificationSettingsOut:
    """The API shape: every known kind (and every stored one) with its channels."""
    kinds = sorted(set(KNOWN_KINDS) | set(prefs.channels))
    return schemas.NotificationSettingsOut(
        kinds={k: schemas.KindChannels(**{c: prefs.wants(k, c) for c in CHANNELS}) for k in kinds},
        quiet_hours=(
            schemas.QuietHours(
                start=prefs.quiet_start.strftime("%H:%M"), end=prefs.quiet_end.strftime("%H:%M")
            )
            if prefs.quiet_start is not None and prefs.quiet_end is not None
            else None
        ),
        defaults=schemas.KindChannels(**DEFAULTS),
    )


async def get_settings(session: AsyncSession, actor: Actor) -> schemas.NotificationSettingsOut:
    """The caller's own settings."""
    row = await session.get(NotificationSettings, actor.user_id)
    if row is not None and row.organization_id != actor.organization_id:
        row = None
    return settings_out(preferences_of(row))


def _clock_time(value: str, field: str) -> time:
    try:
        parsed = time.fromisoformat(value)
    except ValueError as exc:
        raise InvalidInput.on(field, "a time of day as HH:MM") from exc
    if parsed.tzinfo is not None or parsed.second or parsed.microsecond:
        raise InvalidInput.on(field, "a time of day as HH:MM")
    return parsed


async def put_settings(
    session: AsyncSession, actor: Actor, data: schemas.NotificationSettingsIn, now: datetime
) -> schemas.NotificationSettingsOut:
    """Replace the caller's settings (kinds left out go back to the defaults)."""
    channels: dict[str, Any] = {}
    for kind, choice in data.kinds.items():
        if not KIND_PATTERN.match(kind):
            raise InvalidInput.on(f"kinds.{kind}", "a notification kind (lower-case, _ allowed)")
        channels[kind] = {c: getattr(choice, c) for c in CHANNELS}
    start = end = None
    if data.quiet_hours is not None:
        start = _clock_time(data.quiet_hours.start, "quietHours.start")
        end = _clock_time(data.quiet_hours.end, "quietHours.end")
        if start == end:
            raise InvalidInput.on("quietHours.end", "must differ from the start")
    values = {
        "user_id": actor.user_id,
        "organization_id": actor.organization_id,
        "channels": channels,
        "quiet_start": start,
        "quiet_end": end,
        "created_at": now,
        "updated_at": now,
    }
    await session.execute(
        insert(NotificationSettings)
        .values(**values)
        .on_conflict_do_update(
            index_elements=[NotificationSettings.user_id],
            set_={"channels": channels, "quiet_start": start, "quiet_end": end, "updated_at": now},
            where=NotificationSettings.organization_id == actor.organization_id,
        )
    )
    return settings_out(Preferences(channels=channels, quiet_start=start, quiet_end=end))
