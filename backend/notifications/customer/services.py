"""What the customer of a visit is told, and when each message counts as sent.

Every message is an outbox row (topic ``customer``) written in the caller's transaction with a
payload already rendered for the relay: ``{"channel": "email", "to", "subject", "text",
"html"}`` or ``{"channel": "sms", "to", "text"}``. Its ``dedupe_key`` names the event (the
booking of a window, one ETA change, one tracking link...), so the same event queued twice is
stored once. Before deciding, each function locks the visit's `VisitMessageState` row, so the
worker's scans and the API never decide twice at the same time.

Who gets it: the customer's first contact with an email (email), else the first with a phone
(SMS). An address that unsubscribed gets nothing (there is no fallback to the other channel:
someone who unsubscribed asked us to stop). Every message carries its own unsubscribe link.
"""

from __future__ import annotations

import enum
import logging
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from backend.accounts.models import Organization, User
from backend.customers.models import Contact, Customer, Site
from backend.lib.errors import InvalidInput
from backend.notifications.customer import links, render
from backend.notifications.customer.models import (
    Channel,
    LinkPurpose,
    MessageKind,
    MessageTemplate,
    Unsubscribe,
    VisitMessageState,
)
from backend.notifications.models import OutboxMessage
from backend.tasks.models import Task

log = logging.getLogger("fieldcrm.customer_messages")

OUTBOX_TOPIC = "customer"
LATE_THRESHOLD = timedelta(minutes=15)
LATE_EVERY = timedelta(minutes=15)
UNSUBSCRIBE_TTL = timedelta(days=365)
FEEDBACK_TTL = timedelta(days=30)
TRACKING_AFTER = timedelta(hours=12)


class Outcome(enum.StrEnum):
    """What became of a message."""

    QUEUED = "queued"
    DUPLICATE = "duplicate"
    NO_CONTACT = "no_contact"
    UNSUBSCRIBED = "unsubscribed"
    SKIPPED = "skipped"


@dataclass(frozen=True, slots=True)
class Recipient:
    """Where a customer message goes."""

    channel: Channel
    address: str
    name: str


@dataclass(frozen=True, slots=True)
class Visit:
    """A visit with what its messages say."""

    task: Task
    organization: Organization
    customer_name: str
    address: str | None
    worker_first_name: str
    recipient: Recipient | None

    @property
    def language(self) -> str:
        """The organisation's language."""
        return render.language_of(self.organization.locale)

    @property
    def planned_at(self) -> datetime | None:
        """When the visit is planned to start."""
        return self.task.window_start or self.task.due_at


async def queue_customer_message(
    session: AsyncSession,
    *,
    organization_id: uuid.UUID,
    dedupe_key: str,
    payload: dict[str, Any],
    now: datetime,
) -> bool:
    """Queue one rendered customer message; False when ``dedupe_key`` was queued before."""
    queued = await session.scalar(
        insert(OutboxMessage)
        .values(
            organization_id=organization_id,
            topic=OUTBOX_TOPIC,
            payload=payload,
            dedupe_key=dedupe_key[:200],
            available_at=now,
            created_at=now,
        )
        .on_conflict_do_nothing(
            index_elements=[OutboxMessage.organization_id, OutboxMessage.dedupe_key]
        )
        .returning(OutboxMessage.id)
    )
    return queued is not None


async def _queued_before(session: AsyncSession, organization_id: uuid.UUID, key: str) -> bool:
    found = await session.scalar(
        select(OutboxMessage.id).where(
            OutboxMessage.organization_id == organization_id,
            OutboxMessage.dedupe_key == key[:200],
        )
    )
    return found is not None


def first_name(full_name: str) -> str:
    """The first word of a name: all the customer learns of the worker."""
    parts = full_name.split()
    return parts[0] if parts else ""


async def recipient_of(
    session: AsyncSession, organization_id: uuid.UUID, customer_id: uuid.UUID
) -> Recipient | None:
    """The first contact with an email (email), else the first with a phone (SMS)."""
    rows = (
        await session.execute(
            select(Contact.name, Contact.email, Contact.phone)
            .where(Contact.organization_id == organization_id, Contact.customer_id == customer_id)
            .order_by(Contact.created_at, Contact.id)
        )
    ).all()
    for name, email, _ in rows:
        if email:
            return Recipient(Channel.EMAIL, email.lower(), name)
    for name, _, phone in rows:
        if phone:
            return Recipient(Channel.SMS, phone, name)
    return None


async def load_visit(session: AsyncSession, task: Task) -> Visit | None:
    """The visit's organisation, customer, site, worker and recipient; None without a
    customer."""
    if task.customer_id is None:
        return None
    row = (
        await session.execute(
            select(Organization, Customer.name, Site.address, User.full_name)
            .select_from(Organization)
            .join(
                Customer,
                (Customer.organization_id == Organization.id) & (Customer.id == task.customer_id),
            )
            .outerjoin(Site, (Site.organization_id == Organization.id) & (Site.id == task.site_id))
            .outerjoin(
                User, (User.organization_id == Organization.id) & (User.id == task.assignee_id)
            )
            .where(Organization.id == task.organization_id)
        )
    ).first()
    if row is None:
        return None
    organization, customer_name, address, worker = row
    return Visit(
        task=task,
        organization=organization,
        customer_name=customer_name,
        address=address,
        worker_first_name=first_name(worker or ""),
        recipient=await recipient_of(session, task.organization_id, task.customer_id),
    )


async def lock_state(session: AsyncSession, task: Task) -> VisitMessageState:
    """The visit's message state, created when missing and locked for this transaction."""
    await session.execute(
        insert(VisitMessageState)
        .values(task_id=task.id, organization_id=task.organization_id)
        .on_conflict_do_nothing(index_elements=[VisitMessageState.task_id])
    )
    state = await session.scalar(
        select(VisitMessageState)
        .where(VisitMessageState.task_id == task.id)
        .with_for_update()
        .execution_options(populate_existing=True)
    )
    assert state is not None
    return state


async def is_unsubscribed(session: AsyncSession, organization_id: uuid.UUID, address: str) -> bool:
    """Whether ``address`` asked the organisation for no more messages."""
    found = await session.scalar(
        select(Unsubscribe.address).where(
            Unsubscribe.organization_id == organization_id, Unsubscribe.address == address
        )
    )
    return found is not None


async def template_for(
    session: AsyncSession, organization_id: uuid.UUID, kind: MessageKind, language: str
) -> tuple[render.TemplateText, bool]:
    """The organisation's template of ``kind`` in ``language``, else the default; and whether
    it is the organisation's own."""
    own = await session.get(MessageTemplate, (organization_id, kind.value, language))
    if own is not None:
        return render.TemplateText(own.subject, own.text, own.html), True
    return render.default_template(kind, language), False


def _context(visit: Visit, recipient: Recipient, extra: dict[str, str]) -> dict[str, str]:
    task, zone, lang = visit.task, visit.organization.time_zone, visit.language
    planned = visit.planned_at
    context = {
        "company": visit.organization.name,
        "customer_name": recipient.name or visit.customer_name,
        "visit": render.visit_word(task.kind.value, lang),
        "date": render.local_date(planned, zone, lang) if planned else "",
        "window": render.window_text(planned, task.window_end, zone) if planned else "",
        "address": visit.address or "",
        "worker": visit.worker_first_name,
        "eta": "",
        "tracking_url": "",
        "feedback_url": "",
        "unsubscribe_url": "",
    }
    return context | extra


async def send(
    session: AsyncSession,
    visit: Visit,
    kind: MessageKind,
    *,
    dedupe_key: str,
    now: datetime,
    base_url: str,
    extra: dict[str, str] | None = None,
) -> Outcome:
    """Render ``kind`` for the visit's recipient and queue it (once per ``dedupe_key``)."""
    recipient = visit.recipient
    organization_id = visit.organization.id
    if recipient is None:
        return Outcome.NO_CONTACT
    if await is_unsubscribed(session, organization_id, recipient.address):
        return Outcome.UNSUBSCRIBED
    key = f"customer:{kind.value}:{dedupe_key}"
    if await _queued_before(session, organization_id, key):
        return Outcome.DUPLICATE
    _, unsubscribe_token = await links.create_link(
        session,
        organization_id=organization_id,
        purpose=LinkPurpose.UNSUBSCRIBE,
        now=now,
        expires_at=now + UNSUBSCRIBE_TTL,
        channel=recipient.channel.value,
        address=recipient.address,
    )
    context = _context(
        visit,
        recipient,
        (extra or {})
        | {"unsubscribe_url": links.url_of(base_url, LinkPurpose.UNSUBSCRIBE, unsubscribe_token)},
    )
    template, own = await template_for(session, organization_id, kind, visit.language)
    try:
        message = render.render(template, context)
    except InvalidInput as exc:
        if not own:
            raise
        # An organisation's template that fails on real data must not stop the message.
        log.warning("customer template %s/%s failed: %s", kind.value, visit.language, exc.detail)
        message = render.render(render.default_template(kind, visit.language), context)
    payload: dict[str, Any]
    if recipient.channel is Channel.EMAIL:
        payload = {
            "channel": "email",
            "to": recipient.address,
            "subject": message.subject,
            "text": message.text,
            "html": message.html,
        }
    else:
        payload = {"channel": "sms", "to": recipient.address, "text": message.text}
    queued = await queue_customer_message(
        session, organization_id=organization_id, dedupe_key=key, payload=payload, now=now
    )
    return Outcome.QUEUED if queued else Outcome.DUPLICATE


def _iso(moment: datetime | None) -> str:
    return moment.isoformat() if moment else "-"


async def confirm_booking(
    session: AsyncSession, task: Task, now: datetime, base_url: str
) -> Outcome:
    """Confirm the visit's date and window, once per window (a new window is confirmed
    again)."""
    state = await lock_state(session, task)
    start = task.window_start or task.due_at
    if start is None or (state.booked_start == start and state.booked_end == task.window_end):
        return Outcome.SKIPPED
    visit = await load_visit(session, task)
    outcome = Outcome.NO_CONTACT
    if visit is not None:
        outcome = await send(
            session,
            visit,
            MessageKind.BOOKED,
            dedupe_key=f"{task.id}:{_iso(start)}:{_iso(task.window_end)}",
            now=now,
            base_url=base_url,
        )
    state.booked_start, state.booked_end, state.booked_at = start, task.window_end, now
    return outcome


async def remind(session: AsyncSession, task: Task, now: datetime, base_url: str) -> Outcome:
    """The day-before reminder, once per window start."""
    state = await lock_state(session, task)
    start = task.window_start or task.due_at
    if start is None or state.reminded_start == start:
        return Outcome.SKIPPED
    visit = await load_visit(session, task)
    outcome = Outcome.NO_CONTACT
    if visit is not None:
        outcome = await send(
            session,
            visit,
            MessageKind.REMINDER,
            dedupe_key=f"{task.id}:{_iso(start)}",
            now=now,
            base_url=base_url,
        )
    state.reminded_start = start
    return outcome


async def on_my_way(
    session: AsyncSession,
    task: Task,
    eta: datetime,
    now: datetime,
    base_url: str,
    *,
    explicit: bool = False,
) -> Outcome:
    """Tell the customer the worker is coming, with the ETA and a new tracking link, once per
    visit. Only the worker's ``explicit`` call sends again, and only when no tracking link of
    the visit works any more (it was revoked or ran out)."""
    state = await lock_state(session, task)
    if state.on_my_way_at is not None and (
        not explicit or await links.live_tracking_link(session, task.id, now) is not None
    ):
        return Outcome.DUPLICATE
    visit = await load_visit(session, task)
    if visit is None:
        return Outcome.NO_CONTACT
    end = max(eta, task.window_end or eta)
    link, token = await links.create_link(
        session,
        organization_id=task.organization_id,
        purpose=LinkPurpose.TRACKING,
        task_id=task.id,
        now=now,
        expires_at=end + TRACKING_AFTER,
    )
    outcome = await send(
        session,
        visit,
        MessageKind.ON_MY_WAY,
        dedupe_key=f"{task.id}:{link.id}",
        now=now,
        base_url=base_url,
        extra={
            "eta": render.local_time(eta, visit.organization.time_zone),
            "tracking_url": links.url_of(base_url, LinkPurpose.TRACKING, token),
        },
    )
    if outcome is not Outcome.QUEUED:
        # Nobody will get the link: do not leave a working one behind.
        link.revoked_at = now
    state.on_my_way_at, state.told_eta = now, eta
    return outcome


def late_reference(task: Task, state: VisitMessageState) -> datetime | None:
    """The arrival time the customer was last told: the ETA of the last message, else the
    end of the booked window (else its start)."""
    return state.told_eta or task.window_end or task.window_start or task.due_at


def is_late_news(task: Task, state: VisitMessageState, new_eta: datetime) -> bool:
    """Whether ``new_eta`` moved more than 15 minutes against what the customer was told
    (either way once they were given an ETA; only later against the booked window)."""
    reference = late_reference(task, state)
    if reference is None:
        return False
    moved = new_eta - reference
    if state.told_eta is not None:
        return abs(moved) > LATE_THRESHOLD
    return moved > LATE_THRESHOLD


async def running_late(
    session: AsyncSession,
    task: Task,
    new_eta: datetime,
    change_id: uuid.UUID,
    now: datetime,
    base_url: str,
) -> Outcome:
    """Send the new arrival time when it moved more than 15 minutes against the time last
    told, at most once per 15 minutes per visit (a change held back by the limit is sent by a
    later scan with the ETA of that time)."""
    state = await lock_state(session, task)
    if not is_late_news(task, state, new_eta):
        return Outcome.SKIPPED
    if state.late_sent_at is not None and now - state.late_sent_at < LATE_EVERY:
        return Outcome.SKIPPED
    visit = await load_visit(session, task)
    if visit is None:
        return Outcome.NO_CONTACT
    extra = {"eta": render.local_time(new_eta, visit.organization.time_zone)}
    current = await links.live_tracking_link(session, task.id, now)
    if current is not None:
        _, token = await links.create_link(
            session,
            organization_id=task.organization_id,
            purpose=LinkPurpose.TRACKING,
            task_id=task.id,
            now=now,
            expires_at=max(current.expires_at, new_eta + TRACKING_AFTER),
        )
        extra["tracking_url"] = links.url_of(base_url, LinkPurpose.TRACKING, token)
    outcome = await send(
        session,
        visit,
        MessageKind.RUNNING_LATE,
        dedupe_key=f"{task.id}:{change_id}",
        now=now,
        base_url=base_url,
        extra=extra,
    )
    state.told_eta, state.late_sent_at = new_eta, now
    return outcome


async def request_feedback(
    session: AsyncSession, task: Task, now: datetime, base_url: str
) -> Outcome:
    """After the visit: a link to rate it (once per visit)."""
    state = await lock_state(session, task)
    if state.feedback_requested_at is not None:
        return Outcome.SKIPPED
    state.feedback_requested_at = now
    visit = await load_visit(session, task)
    if visit is None:
        return Outcome.NO_CONTACT
    link, token = await links.create_link(
        session,
        organization_id=task.organization_id,
        purpose=LinkPurpose.FEEDBACK,
        task_id=task.id,
        now=now,
        expires_at=now + FEEDBACK_TTL,
    )
    outcome = await send(
        session,
        visit,
        MessageKind.FEEDBACK,
        dedupe_key=str(task.id),
        now=now,
        base_url=base_url,
        extra={"feedback_url": links.url_of(base_url, LinkPurpose.FEEDBACK, token)},
    )
    if outcome is not Outcome.QUEUED:
        link.revoked_at = now
    return outcome


async def unsubscribe(
    session: AsyncSession, organization_id: uuid.UUID, channel: str, address: str, now: datetime
) -> None:
    """Record that ``address`` wants no more messages (idempotent)."""
    await session.execute(
        insert(Unsubscribe)
        .values(organization_id=organization_id, address=address, channel=channel, created_at=now)
        .on_conflict_do_nothing(index_elements=[Unsubscribe.organization_id, Unsubscribe.address])
    )
