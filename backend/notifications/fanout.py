"""What each outbox row becomes: the deliveries of one relay pass (a `Plan` per row).

Topics:

- ``notification`` (staff; payload ``{notificationId, userId, kind}``): the stored notification
  goes to the user's FCM devices and Web Push subscriptions when their preferences want push for
  the kind, and to their e-mail when they want e-mail; non-urgent ones wait for the end of quiet
  hours. Targets already in the row's ``progress`` are skipped.
- ``customer`` (payload rendered by its writer): ``{"channel": "email", "to", "subject", "text",
  "html"}`` or ``{"channel": "sms", "to", "text"}``.

Anything else is dead-lettered with the reason. A channel that is not configured is skipped with
a note (the row is marked sent: retrying would never help).
"""

from __future__ import annotations

import uuid
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from backend.accounts.models import User
from backend.notifications import preferences
from backend.notifications.channels import PRERENDERED_TEMPLATE, Channels
from backend.notifications.models import (
    Notification,
    OutboxMessage,
    PushDevice,
    WebPushSubscriptionRow,
)
from push.core import Message, Priority, WebPushSubscription

NOTIFICATION_TOPIC = "notification"
CUSTOMER_TOPIC = "customer"
#: How long FCM / push services keep an undelivered staff notification.
PUSH_TTL_S = 24 * 3600


@dataclass(frozen=True)
class Delivery:
    """One message to one target through one channel."""

    channel: str  # a field of Channels: fcm, email, webpush, sms
    target: str  # stable key recorded in the row's progress, e.g. "fcm:<device id>"
    message: Message
    device_id: uuid.UUID | None = None
    subscription_id: uuid.UUID | None = None
    rate_key: str | None = None


@dataclass
class Plan:
    """What to do with one row in this pass."""

    deliveries: list[Delivery] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    delay_until: datetime | None = None
    dead_reason: str | None = None
    gone_devices: list[uuid.UUID] = field(default_factory=list)
    gone_subscriptions: list[uuid.UUID] = field(default_factory=list)

    @property
    def note(self) -> str | None:
        """The notes joined, None when there are none."""
        return "; ".join(dict.fromkeys(self.notes)) or None


@dataclass
class _Context:
    notifications: dict[uuid.UUID, Notification]
    users: dict[uuid.UUID, User]
    prefs: dict[uuid.UUID, preferences.Preferences]
    devices: dict[uuid.UUID, list[PushDevice]]
    subscriptions: dict[uuid.UUID, list[WebPushSubscriptionRow]]


async def plan_rows(
    session: AsyncSession, rows: list[OutboxMessage], channels: Channels, now: datetime
) -> dict[uuid.UUID, Plan]:
    """A plan per row, loading what the rows need in a few queries."""
    context = await _load(session, rows)
    plans: dict[uuid.UUID, Plan] = {}
    for row in rows:
        if row.topic == NOTIFICATION_TOPIC:
            plans[row.id] = _plan_notification(row, context, channels, now)
        elif row.topic == CUSTOMER_TOPIC:
            plans[row.id] = _plan_customer(row, channels)
        else:
            plans[row.id] = Plan(dead_reason=f"unknown topic {row.topic!r}: nothing delivers it")
    return plans


def _notification_id(row: OutboxMessage) -> uuid.UUID | None:
    try:
        return uuid.UUID(str(row.payload.get("notificationId")))
    except (ValueError, AttributeError):
        return None


async def _load(session: AsyncSession, rows: list[OutboxMessage]) -> _Context:
    wanted = {
        nid: row.organization_id
        for row in rows
        if row.topic == NOTIFICATION_TOPIC and (nid := _notification_id(row)) is not None
    }
    notifications: dict[uuid.UUID, Notification] = {}
    if wanted:
        for n in await session.scalars(select(Notification).where(Notification.id.in_(wanted))):
            if wanted[n.id] == n.organization_id:
                notifications[n.id] = n
    user_ids = list({n.user_id for n in notifications.values()})
    users: dict[uuid.UUID, User] = {}
    devices: dict[uuid.UUID, list[PushDevice]] = defaultdict(list)
    subscriptions: dict[uuid.UUID, list[WebPushSubscriptionRow]] = defaultdict(list)
    prefs: dict[uuid.UUID, preferences.Preferences] = {}
    if user_ids:
        users = {u.id: u for u in await session.scalars(select(User).where(User.id.in_(user_ids)))}
        prefs = await preferences.load_many(session, user_ids)
        for d in await session.scalars(
            select(PushDevice).where(PushDevice.user_id.in_(user_ids)).order_by(PushDevice.id)
        ):
            devices[d.user_id].append(d)
        for s in await session.scalars(
            select(WebPushSubscriptionRow)
            .where(WebPushSubscriptionRow.user_id.in_(user_ids))
            .order_by(WebPushSubscriptionRow.id)
        ):
            subscriptions[s.user_id].append(s)
    return _Context(notifications, users, prefs, devices, subscriptions)


def _plan_notification(
    row: OutboxMessage, context: _Context, channels: Channels, now: datetime
) -> Plan:
    plan = Plan()
    nid = _notification_id(row)
    if nid is None:
        plan.dead_reason = "payload.notificationId: missing or not a UUID"
        return plan
    note = context.notifications.get(nid)
    if note is None:
        plan.notes.append("the notification no longer exists")
        return plan
    user = context.users.get(note.user_id)
    if user is None or not user.is_active or user.organization_id != row.organization_id:
        plan.notes.append("the user is inactive")
        return plan
    prefs = context.prefs[user.id]
    if not note.urgent:
        until = preferences.quiet_until(now, user.time_zone, prefs.quiet_start, prefs.quiet_end)
        if until is not None:
            plan.delay_until = until
            plan.notes.append(f"quiet hours until {until.isoformat()}")
            return plan
    done = set(row.progress)
    data = {"notificationId": str(note.id), "kind": note.kind}
    if note.link:
        data["link"] = note.link
    base: dict[str, Any] = {
        "title": note.title,
        "body": note.body or "",
        "data": data,
        "priority": Priority.HIGH if note.urgent else Priority.NORMAL,
        "dedupe_key": row.dedupe_key,
    }
    if prefs.wants(note.kind, "push"):
        user_devices = [
            d for d in context.devices[user.id] if d.organization_id == user.organization_id
        ]
        user_subs = [
            s for s in context.subscriptions[user.id] if s.organization_id == user.organization_id
        ]
        if not user_devices and not user_subs:
            plan.notes.append("no push device registered")
        for device in user_devices:
            target = f"fcm:{device.id}"
            if target in done:
                continue
            if channels.fcm is None:
                plan.notes.append("push (FCM) not configured")
                continue
            plan.deliveries.append(
                Delivery(
                    "fcm",
                    target,
                    Message(recipient=device.token, ttl=PUSH_TTL_S, **base),
                    device_id=device.id,
                    rate_key=device.token,
                )
            )
        for sub in user_subs:
            target = f"webpush:{sub.id}"
            if target in done:
                continue
            if channels.webpush is None:
                plan.notes.append("web push not configured")
                continue
            recipient = WebPushSubscription(endpoint=sub.endpoint, p256dh=sub.p256dh, auth=sub.auth)
            plan.deliveries.append(
                Delivery(
                    "webpush",
                    target,
                    Message(recipient=recipient, ttl=PUSH_TTL_S, **base),
                    subscription_id=sub.id,
                )
            )
    else:
        plan.notes.append("push off by preference")
    if prefs.wants(note.kind, "email"):
        target = f"email:{user.id}"
        if target not in done:
            if channels.email is None:
                plan.notes.append("e-mail not configured")
            else:
                plan.deliveries.append(
                    Delivery("email", target, Message(recipient=user.email, **base))
                )
    else:
        plan.notes.append("e-mail off by preference")
    return plan


def _text(payload: dict[str, Any], key: str, plan: Plan, limit: int = 100_000) -> str:
    value = payload.get(key)
    if not isinstance(value, str) or not value or len(value) > limit:
        plan.dead_reason = f"payload.{key}: a non-empty string is required"
        return ""
    return value


def _plan_customer(row: OutboxMessage, channels: Channels) -> Plan:
    plan = Plan()
    payload = row.payload if isinstance(row.payload, dict) else {}
    channel = payload.get("channel")
    if channel == "email":
        to = _text(payload, "to", plan, 320)
        subject = _text(payload, "subject", plan, 1000)
        text = _text(payload, "text", plan)
        html = _text(payload, "html", plan)
        if plan.dead_reason is not None:
            return plan
        target = f"email:{to}"
        if target in row.progress:
            return plan
        if channels.email is None:
            plan.notes.append("e-mail not configured")
            return plan
        message = Message(
            recipient=to,
            title=subject,
            body=text,
            data={"text": text, "html": html},
            template=PRERENDERED_TEMPLATE,
            dedupe_key=row.dedupe_key,
        )
        plan.deliveries.append(Delivery("email", target, message))
    elif channel == "sms":
        to = _text(payload, "to", plan, 20)
        text = _text(payload, "text", plan, 1600)
        if plan.dead_reason is not None:
            return plan
        target = f"sms:{to}"
        if target in row.progress:
            return plan
        if channels.sms is None:
            plan.notes.append("SMS not configured")
            return plan
        message = Message(recipient=to, title="", body=text, dedupe_key=row.dedupe_key)
        plan.deliveries.append(Delivery("sms", target, message))
    else:
        plan.dead_reason = f"payload.channel: 'email' or 'sms' expected, got {channel!r}"
    return plan
