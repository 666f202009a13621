"""The demo company's past: ~120 days of requests, deals, calls, visits, shifts and ratings.

``seed_history`` writes what the live system would have written had the company worked for
``days`` days before ``now``, so the owner's reports and the field scorecards have something to
show: website and phone requests from several sources become deals owned by the managers (round
robin, as lead intake assigns them), move through the window pipeline (First call → Measurements
→ Agreement → Payment → Installation → Won, some lost at each stage with a reason), with calls
logged per manager, the stage automations' tasks (call back, measurement visit, calculate and
call, installation), visits done by the measurers and installers on weekdays in their time
windows with check-ins and check-outs, shifts and daily summaries, and customer ratings.

The rows are the ones the services write -- a deal with its ``deal_stage_changes`` (with
``seconds_in_previous``), a ``stage_change`` interaction and an audit entry per move; tasks
carrying their automation, due time and window; check-ins judged by the same rule as
``backend.tracking.visits`` (``within_geofence`` and its status rule); notifications with their
outbox rows -- but they are computed in memory and inserted in bulk (one multi-row INSERT per
table), because going through the services action by action takes minutes. Known gaps, on
purpose: no PDF invoices or measurement sheets are generated for past deals (rendering hundreds
of PDFs is slow and their files would not exist on the demo server), and daily summaries are
written directly (consistent with the visits and shifts of the day) instead of from raw pings.

Everything past is settled: outbox rows are written as sent (``sent_at`` = ``created_at``) and
notifications as read, so starting the demo sends nothing from history. Nothing is dated on or
after the start of the organisation's current local day, and no visit of history is planned for
today or later. Deterministic: every choice comes from ``random.Random(seed)``; only ids differ
between runs.
"""

from __future__ import annotations

import random
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from decimal import Decimal
from math import cos, radians
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import insert, select, text
from sqlalchemy.ext.asyncio import AsyncSession

from backend.accounts.models import Organization, Role, User
from backend.audit.models import AuditEntry
from backend.customers.models import (
    Contact,
    Customer,
    CustomerKind,
    Interaction,
    InteractionKind,
    Site,
)
from backend.customers.search import search_fields
from backend.customers.services import point_wkt
from backend.notifications.models import Notification, OutboxMessage, OutboxStatus
from backend.notifications.services import OUTBOX_TOPIC
from backend.sales.automations import CreateTaskConfig, NotifyConfig, parse_config, render_text
from backend.sales.models import Automation, Deal, DealStageChange, Stage
from backend.seed.demo import (
    is_valid_phone,
    kazan_address,
    kazan_point,
    person_email,
    random_district,
    random_mobile,
    random_person,
)
from backend.seed.pipeline import seed_window_pipeline
from backend.tasks.deadlines import due_at, load_business_hours
from backend.tasks.models import Task, TaskKind, TaskStatus
from backend.tracking.models import CheckIn, CheckKind, DailySummary, Shift, ShiftSource
from backend.tracking.policy import SITE_RADIUS_M
from backend.tracking.visits import _status as check_status
from geo.track import haversine_m, within_geofence

_STAGES = ("first_call", "measurements", "agreement", "payment", "installation", "won", "lost")


@dataclass(frozen=True, slots=True)
class _Source:
    name: str
    weight: float
    quality: float  # multiplies the chance of moving on at each stage
    value: float  # multiplies the amount


# ``website`` is what the site's request form records (the form's ``source``).
SOURCES: tuple[_Source, ...] = (
    _Source("website", 0.32, 1.0, 1.0),
    _Source("Яндекс.Директ", 0.18, 0.8, 0.95),
    _Source("Авито", 0.16, 0.7, 0.75),
    _Source("звонок", 0.14, 1.1, 1.0),
    _Source("рекомендация", 0.11, 1.45, 1.25),
    _Source("2ГИС", 0.09, 0.9, 1.05),
)
# The chance that a deal moves on from each stage (before the source's and manager's factors).
_ONWARD = {
    "first_call": 0.62,
    "measurements": 0.86,
    "agreement": 0.68,
    "payment": 0.92,
    "installation": 0.985,
}
_STALL = 0.035  # deals that stop at a stage with their task left open (overdue work)
_LOST_REASONS = {
    "first_call": ("не дозвонились", "просто узнавал цену", "дорого", "выбрал другую компанию"),
    "measurements": ("передумал после замера", "дорого", "отложил до весны"),
    "agreement": ("дорого", "выбрал конкурента", "отложил до весны", "не устроили сроки"),
    "payment": ("не оплатил счёт", "выбрал конкурента"),
    "installation": ("отказ: не устроил монтажный проём",),
}
_PRODUCTS = (
    ("Замена окон", 1.0),
    ("Остекление балкона", 0.8),
    ("Остекление лоджии", 1.1),
    ("Окна в частный дом", 1.8),
)
_CALL_OUTCOMES_FIRST = ("договорились о замере", "клиент думает", "заявка принята")
_CALL_OUTCOMES_FOLLOW = ("обсудили расчёт", "уточнили цвет профиля", "перезвонить позже")
_MEASURE_SLOTS = ((9, 11), (11, 13), (13, 15), (15, 17), (17, 19))
_INSTALL_SLOTS = ((9, 13), (13, 17))
_MEASURES_PER_DAY = 4
_RATING_COMMENTS = {
    5: ("Всё отлично, спасибо!", "Мастер аккуратный, убрал за собой.", None, None),
    4: ("Хорошо, но немного задержались.", "Нормально.", None),
    3: ("Опоздали, не предупредили.", "Долго ждали мастера."),
    2: ("Опоздали на час, пришлось отпрашиваться с работы.",),
    1: ("Мастер так и не позвонил, пришёл на два часа позже.",),
}


@dataclass(slots=True)
class HistoryCounts:
    """What ``seed_history`` wrote."""

    leads: int = 0
    won: int = 0
    lost: int = 0
    open: int = 0
    calls: int = 0
    visits: int = 0
    check_ins: int = 0
    flagged_check_ins: int = 0
    late_arrivals: int = 0
    overdue_tasks: int = 0
    shifts: int = 0
    summaries: int = 0
    ratings: int = 0
    notifications: int = 0
    revenue: Decimal = Decimal(0)

    def summary(self) -> str:
        """One line for the seed's report."""
        return (
            f"{self.leads} requests → {self.won} won ({self.revenue:,.0f} RUB), {self.lost} lost,"
            f" {self.open} open; {self.calls} calls; {self.visits} visits done"
            f" ({self.check_ins} check-ins, {self.flagged_check_ins} flagged,"
            f" {self.late_arrivals} late); {self.overdue_tasks} overdue tasks;"
            f" {self.shifts} shifts, {self.summaries} daily summaries, {self.ratings} ratings"
        )


@dataclass(slots=True)
class _Visit:
    """A visit task planned in the first pass; arrival and departure come in the second."""

    task: dict[str, Any]
    worker: uuid.UUID
    day: date
    lat: float
    lon: float
    done: bool


@dataclass(slots=True)
class _Rows:
    customers: list[dict[str, Any]] = field(default_factory=list)
    contacts: list[dict[str, Any]] = field(default_factory=list)
    sites: list[dict[str, Any]] = field(default_factory=list)
    deals: list[dict[str, Any]] = field(default_factory=list)
    changes: list[dict[str, Any]] = field(default_factory=list)
    interactions: list[dict[str, Any]] = field(default_factory=list)
    tasks: list[dict[str, Any]] = field(default_factory=list)
    check_ins: list[dict[str, Any]] = field(default_factory=list)
    audit: list[dict[str, Any]] = field(default_factory=list)
    notifications: list[dict[str, Any]] = field(default_factory=list)
    outbox: list[dict[str, Any]] = field(default_factory=list)
    shifts: list[dict[str, Any]] = field(default_factory=list)
    summaries: list[dict[str, Any]] = field(default_factory=list)
    feedback: list[dict[str, Any]] = field(default_factory=list)


class _Story:
    """The simulation: walks the days, plays each deal forward, keeps the rows."""

    def __init__(
        self,
        rng: random.Random,
        org: Organization,
        stages: Mapping[str, Stage],
        automations: Mapping[str, list[tuple[Automation, Any]]],
        managers: Sequence[User],
        admins: Sequence[User],
        measurers: Sequence[User],
        installers: Sequence[User],
        taken_phones: set[str],
        cutoff: datetime,
    ) -> None:
        self.rng = rng
        self.org = org
        self.zone = ZoneInfo(org.time_zone)
        self.hours = load_business_hours(org.business_hours)
        self.stages = stages
        self.automations = automations
        self.managers = list(managers)
        self.admins = list(admins)
        self.measurers = list(measurers)
        self.installers = list(installers)
        self.phones = taken_phones
        self.cutoff = cutoff
        self.rows = _Rows()
        self.counts = HistoryCounts()
        self.visits: list[_Visit] = []
        self.booked: dict[tuple[uuid.UUID, date], set[int]] = {}
        self.round_robin = 0
        # The first manager is the stronger seller; the last field worker by name runs late.
        self.skill = {m.id: 1.04 if i == 0 else 0.96 for i, m in enumerate(self.managers)}
        self.call_delay = {m.id: (3, 25) if i == 0 else (10, 110) for i, m in enumerate(managers)}
        field_staff = sorted(
            [*self.measurers, *self.installers], key=lambda u: (u.full_name, u.email)
        )
        self.late_worker = field_staff[-1].id if field_staff else None

    # --- time ---------------------------------------------------------------------------

    def local(self, day: date, hour: int, minute: int = 0) -> datetime:
        """An aware instant at a local wall-clock time of ``day``."""
        return datetime.combine(day, time(hour, minute), tzinfo=self.zone)

    def working(self, moment: datetime) -> datetime:
        """``moment`` if it is in working hours (09-19 local, Mon-Sat), else the next 09:xx."""
        here = moment.astimezone(self.zone)
        if here.weekday() < 6 and 9 <= here.hour < 19:
            return moment
        day = here.date() if here.hour < 9 else here.date() + timedelta(days=1)
        while day.weekday() == 6:
            day += timedelta(days=1)
        return self.local(day, 9, self.rng.randrange(0, 40))

    def next_weekdays(self, after: datetime, skip: int) -> list[date]:
        """Weekdays (Mon-Fri) from ``skip`` days after ``after``'s local date, before today."""
        day = after.astimezone(self.zone).date() + timedelta(days=skip)
        out: list[date] = []
        while len(out) < 6:
            if day.weekday() < 5:
                out.append(day)
            day += timedelta(days=1)
        return out

    # --- rows the services write ----------------------------------------------------------

    def audit(
        self,
        entity: str,
        entity_id: uuid.UUID,
        action: str,
        actor: Any,
        at: datetime,
        changes: dict[str, Any],
    ) -> None:
        self.rows.audit.append(
            {
                "organization_id": self.org.id,
                "entity": entity,
                "entity_id": entity_id,
                "action": action,
                "actor_id": actor,
                "at": at,
                "changes": changes,
            }
        )

    def notify(
        self,
        user_id: uuid.UUID,
        kind: str,
        title: str,
        body: str | None,
        link: str,
        data: dict[str, Any],
        urgent: bool,
        dedupe: str,
        at: datetime,
    ) -> None:
        """A notification and its outbox row, as ``notifications.services.notify`` writes them,
        already delivered and read (they are history)."""
        notification_id = uuid.uuid4()
        read = min(at + timedelta(minutes=self.rng.randrange(1, 240)), self.cutoff)
        self.rows.notifications.append(
            {
                "id": notification_id,
                "organization_id": self.org.id,
                "user_id": user_id,
                "kind": kind,
                "title": title[:300],
                "body": body,
                "link": link,
                "data": data,
                "urgent": urgent,
                "dedupe_key": dedupe[:200],
                "read_at": max(read, at),
                "created_at": at,
                "updated_at": at,
            }
        )
        self.rows.outbox.append(
            {
                "id": uuid.uuid4(),
                "organization_id": self.org.id,
                "topic": OUTBOX_TOPIC,
                "payload": {
                    "notificationId": str(notification_id),
                    "userId": str(user_id),
                    "kind": kind,
                },
                "dedupe_key": f"{OUTBOX_TOPIC}:{notification_id}",
                "status": OutboxStatus.SENT,
                "attempts": 1,
                "available_at": at,
                "created_at": at,
                "sent_at": at,
            }
        )
        self.counts.notifications += 1

    def interaction(
        self,
        deal: dict[str, Any],
        kind: InteractionKind,
        author: Any,
        at: datetime,
        outcome: str | None,
        body: str | None = None,
        duration: int | None = None,
    ) -> None:
        self.rows.interactions.append(
            {
                "id": uuid.uuid4(),
                "organization_id": self.org.id,
                "customer_id": deal["customer_id"],
                "deal_id": deal["id"],
                "kind": kind,
                "author_id": author,
                "occurred_at": at,
                "outcome": outcome,
                "body": body,
                "duration_s": duration,
                "created_at": at,
                "updated_at": at,
            }
        )

    def context(self, deal: dict[str, Any], stage: Stage) -> dict[str, Any]:
        """The automations' text variables, as ``automations.load_entry`` gathers them."""

        def local(moment: datetime | None) -> str:
            return moment.astimezone(self.zone).strftime("%d.%m.%Y %H:%M") if moment else ""

        return {
            "deal": {
                "title": deal["title"],
                "amount": str(deal["amount"]) if deal["amount"] is not None else "",
                "currency": deal["currency"],
                "source": deal["source"] or "",
                "scheduledStart": local(deal["scheduled_start"]),
                "scheduledEnd": local(deal["scheduled_end"]),
                "stage": stage.name,
            },
            "customer": {"name": deal["_customer"], "phone": deal["_phone"], "email": ""},
            "site": {"address": deal["_address"], "accessNotes": ""},
            "owner": {"name": deal["_owner_name"]},
            "due": "",
        }

    def run_automations(
        self,
        deal: dict[str, Any],
        key: str,
        actor: Any,
        at: datetime,
        assignee: uuid.UUID | None = None,
        window: tuple[datetime, datetime] | None = None,
    ) -> dict[str, Any] | None:
        """The stage's task and notify automations (see ``automations.run_stage_automations``);
        ``assignee`` and ``window`` stand for the dispatcher's pick. Returns the task."""
        stage = self.stages[key]
        made = None
        for automation, config in self.automations.get(key, []):
            context = self.context(deal, stage)
            if isinstance(config, CreateTaskConfig):
                due = None
                if config.due is not None:
                    base = {
                        "entered": at,
                        "scheduledStart": deal["scheduled_start"],
                        "scheduledEnd": deal["scheduled_end"] or deal["scheduled_start"],
                    }[config.due.from_]
                    due = due_at(
                        base,
                        config.due.offset_minutes,
                        business_hours=self.hours if config.due.business_hours else None,
                        tz=self.org.time_zone,
                    )
                if config.window == "scheduled" and window is None and deal["scheduled_start"]:
                    window = (deal["scheduled_start"], deal["scheduled_end"])
                context["due"] = due.astimezone(self.zone).strftime("%d.%m.%Y %H:%M") if due else ""
                who = assignee if assignee is not None else deal["owner_id"]
                made = {
                    "id": uuid.uuid4(),
                    "organization_id": self.org.id,
                    "kind": config.kind,
                    "title": render_text(config.title, context)[:300],
                    "description": (
                        render_text(config.description, context) if config.description else None
                    ),
                    "status": TaskStatus.OPEN,
                    "assignee_id": who,
                    "created_by_id": actor,
                    "deal_id": deal["id"],
                    "customer_id": deal["customer_id"],
                    "site_id": deal["site_id"],
                    "automation_id": automation.id,
                    "due_at": due,
                    "window_start": window[0] if window else None,
                    "window_end": window[1] if window else None,
                    "priority": config.priority,
                    "outcome": None,
                    "started_at": None,
                    "completed_at": None,
                    "escalate_after_minutes": config.escalate_after_minutes,
                    "created_at": at,
                    "updated_at": at,
                }
                self.rows.tasks.append(made)
                deal["_tasks"].append(made)
                self.notify(
                    who,
                    "task_assigned",
                    made["title"],
                    made["description"],
                    f"/tasks/{made['id']}",
                    {
                        "taskId": str(made["id"]),
                        "dealId": str(deal["id"]),
                        "dueAt": due.isoformat() if due else None,
                        "windowStart": window[0].isoformat() if window else None,
                    },
                    config.kind is TaskKind.CALL,
                    f"task_assigned:{made['id']}:{who}:{at.isoformat()}",
                    at,
                )
            elif isinstance(config, NotifyConfig):
                recipients: list[uuid.UUID] = []
                for name in config.recipients:
                    if name == "admins":
                        recipients += [a.id for a in self.admins]
                    elif name == "owner" and deal["owner_id"] is not None:
                        recipients.append(deal["owner_id"])
                for user_id in dict.fromkeys(recipients):
                    self.notify(
                        user_id,
                        "deal_stage",
                        render_text(config.title, context),
                        render_text(config.body, context) if config.body else None,
                        f"/deals/{deal['id']}",
                        {"dealId": str(deal["id"]), "stageId": str(stage.id)},
                        config.urgent,
                        f"automation:{automation.id}:{deal['id']}:{user_id}:{at.isoformat()}",
                        at,
                    )
        return made

    def move(
        self,
        deal: dict[str, Any],
        key: str,
        actor: uuid.UUID,
        at: datetime,
        lost_reason: str | None = None,
    ) -> None:
        """A stage move as ``sales.services.move_deal`` records it."""
        target = self.stages[key]
        current = deal["_stage_key"]
        before = {
            "stage": self.stages[current].name,
            "lost_reason": deal["lost_reason"],
        }
        seconds = int((at - deal["stage_entered_at"]).total_seconds())
        if lost_reason is not None:
            deal["lost_reason"] = lost_reason
        deal["stage_id"] = target.id
        deal["_stage_key"] = key
        deal["stage_entered_at"] = at
        deal["version"] += 1
        deal["closed_at"] = at if key in ("won", "lost") else None
        deal["updated_at"] = at
        self.rows.changes.append(
            {
                "id": uuid.uuid4(),
                "organization_id": self.org.id,
                "deal_id": deal["id"],
                "from_stage_id": self.stages[current].id,
                "to_stage_id": target.id,
                "actor_id": actor,
                "changed_at": at,
                "seconds_in_previous": max(seconds, 0),
                "comment": lost_reason,
                "created_at": at,
                "updated_at": at,
            }
        )
        self.interaction(
            deal, InteractionKind.STAGE_CHANGE, actor, at, target.name[:200], lost_reason
        )
        after = {"stage": target.name, "lost_reason": deal["lost_reason"]}
        self.audit(
            "deal",
            deal["id"],
            "stage_changed",
            actor,
            at,
            {k: [before[k], after[k]] for k in before if before[k] != after[k]},
        )

    def call(
        self, deal: dict[str, Any], at: datetime, outcome: str, task: dict[str, Any] | None = None
    ) -> None:
        """A call logged on the deal (``sales.services.log_call``), closing its call task."""
        reached = outcome != "не дозвонились"
        duration = self.rng.randrange(40, 540) if reached else 0
        self.interaction(
            deal,
            InteractionKind.CALL,
            deal["owner_id"],
            at,
            outcome,
            "Звонок по заявке." if reached else None,
            duration,
        )
        self.counts.calls += 1
        if task is not None and task["status"] is TaskStatus.OPEN:
            task.update(
                status=TaskStatus.DONE,
                outcome=outcome,
                started_at=at,
                completed_at=at,
                updated_at=at,
            )

    def close_task(self, task: dict[str, Any], actor: uuid.UUID, at: datetime) -> None:
        """Cancel a visit task of a lost deal (``tasks.services.cancel_task``)."""
        reason = "сделка проиграна"
        task.update(status=TaskStatus.CANCELLED, outcome=reason, completed_at=at, updated_at=at)
        self.audit("task", task["id"], "cancelled", actor, at, {"reason": [None, reason]})

    # --- the story ------------------------------------------------------------------------

    def book(
        self,
        workers: Sequence[User],
        after: datetime,
        skip: int,
        slots: Sequence[tuple[int, int]],
        per_day: int,
    ) -> tuple[uuid.UUID, date, tuple[datetime, datetime]] | None:
        """A free slot of some worker on the next weekdays (the dispatcher's pick)."""
        if not workers:
            return None
        for day in self.next_weekdays(after, skip):
            order = list(workers)
            self.rng.shuffle(order)
            for worker in order:
                taken = self.booked.setdefault((worker.id, day), set())
                if len(taken) >= per_day:
                    continue
                free = [i for i in range(len(slots)) if i not in taken]
                if not free:
                    continue
                slot = self.rng.choice(free) if self.rng.random() < 0.4 else free[0]
                start, end = slots[slot]
                window = (self.local(day, start), self.local(day, end))
                if window[1] >= self.cutoff:
                    return None
                taken.add(slot)
                return worker.id, day, window
        return None

    def lead(self, day: date) -> None:
        """One request on ``day`` and everything that followed it."""
        rng = self.rng
        source = rng.choices(SOURCES, weights=[s.weight for s in SOURCES])[0]
        arrived = self.local(day, rng.randrange(8, 22), rng.randrange(60))
        if arrived >= self.cutoff:
            return
        owner = self.managers[self.round_robin % len(self.managers)]
        self.round_robin += 1
        person = random_person(rng)
        district = random_district(rng)
        lat, lon = kazan_point(rng, district)
        address = kazan_address(rng, district, flat=rng.random() < 0.8, office=False)
        phone = self.new_phone()
        email = person_email(rng, person) if rng.random() < 0.35 else None
        customer_id, site_id = uuid.uuid4(), uuid.uuid4()
        phones, emails = search_fields([phone], [email])
        self.rows.customers.append(
            {
                "id": customer_id,
                "organization_id": self.org.id,
                "kind": CustomerKind.PERSON,
                "name": person.full,
                "owner_id": owner.id,
                "source": source.name,
                "search_phones": phones,
                "search_emails": emails,
                "created_at": arrived,
                "updated_at": arrived,
            }
        )
        self.rows.contacts.append(
            {
                "id": uuid.uuid4(),
                "organization_id": self.org.id,
                "customer_id": customer_id,
                "name": person.full,
                "phone": phone,
                "email": email,
                "created_at": arrived,
                "updated_at": arrived,
            }
        )
        self.rows.sites.append(
            {
                "id": site_id,
                "organization_id": self.org.id,
                "customer_id": customer_id,
                "address": address,
                "location": point_wkt(lat, lon),
                "created_at": arrived,
                "updated_at": arrived,
            }
        )
        product, size = rng.choices(_PRODUCTS, weights=(6, 2, 2, 1))[0]
        first = self.stages["first_call"]
        deal: dict[str, Any] = {
            "id": uuid.uuid4(),
            "organization_id": self.org.id,
            "pipeline_id": first.pipeline_id,
            "stage_id": first.id,
            "customer_id": customer_id,
            "site_id": site_id,
            "title": f"{product}: {person.short}"[:300],
            "amount": None,
            "currency": self.org.currency,
            "line_items": [],
            "source": source.name,
            "attribution": {"utm_source": "yandex", "utm_medium": "cpc"}
            if source.name == "Яндекс.Директ"
            else {},
            "owner_id": owner.id,
            "lost_reason": None,
            "scheduled_start": None,
            "scheduled_end": None,
            "stage_entered_at": arrived,
            "closed_at": None,
            "version": 1,
            "created_at": arrived,
            "updated_at": arrived,
            "_stage_key": "first_call",
            "_customer": person.full,
            "_phone": phone,
            "_address": address,
            "_owner_name": owner.full_name,
            "_tasks": [],
        }
        self.rows.deals.append(deal)
        self.counts.leads += 1
        self.rows.changes.append(
            {
                "id": uuid.uuid4(),
                "organization_id": self.org.id,
                "deal_id": deal["id"],
                "from_stage_id": None,
                "to_stage_id": first.id,
                "actor_id": None,
                "changed_at": arrived,
                "seconds_in_previous": None,
                "comment": None,
                "created_at": arrived,
                "updated_at": arrived,
            }
        )
        self.audit(
            "deal",
            deal["id"],
            "created",
            None,
            arrived,
            {"stage": [None, first.name], "source": [None, source.name]},
        )
        if source.name in ("website", "Яндекс.Директ"):
            self.interaction(
                deal,
                InteractionKind.NOTE,
                None,
                arrived,
                "web form",
                f"Заявка: {product.lower()}\n{address}",
            )
        self.play(deal, source, size, lat, lon, arrived)

    def new_phone(self) -> str:
        while True:
            phone = random_mobile(self.rng)
            if phone not in self.phones and is_valid_phone(phone):
                self.phones.add(phone)
                return phone

    def onward(self, deal: dict[str, Any], source: _Source, key: str) -> str:
        """'on', 'lost' or 'stall' for a deal at ``key``."""
        roll = self.rng.random()
        if roll < _STALL:
            return "stall"
        chance = min(_ONWARD[key] * source.quality * self.skill[deal["owner_id"]], 0.99)
        return "on" if self.rng.random() < chance else "lost"

    def play(
        self,
        deal: dict[str, Any],
        source: _Source,
        size: float,
        lat: float,
        lon: float,
        arrived: datetime,
    ) -> None:
        """Play the deal forward from its first stage until it closes, stalls or reaches
        the present."""
        rng = self.rng
        owner = deal["owner_id"]
        call_task = self.run_automations(deal, "first_call", None, arrived)
        low, high = self.call_delay[owner]
        at = self.working(arrived + timedelta(minutes=rng.randrange(low, high)))
        verdict = self.onward(deal, source, "first_call")
        if at >= self.cutoff or verdict == "stall":
            self.finish(deal)
            return
        if rng.random() < 0.22:  # not reached at first: call again later
            self.call(deal, at, "не дозвонились")
            at = self.working(at + timedelta(hours=rng.randrange(2, 26)))
            if at >= self.cutoff:
                self.finish(deal)
                return
        if verdict == "lost":
            self.call(deal, at, "отказ", call_task)
            self.lose(deal, "first_call", at + timedelta(minutes=rng.randrange(1, 10)))
            return
        self.call(deal, at, rng.choice(_CALL_OUTCOMES_FIRST), call_task)
        booked = self.book(
            self.measurers, at, rng.randrange(1, 4), _MEASURE_SLOTS, _MEASURES_PER_DAY
        )
        if booked is None:
            self.finish(deal)
            return
        worker, day, window = booked
        at += timedelta(minutes=rng.randrange(1, 8))
        deal["scheduled_start"], deal["scheduled_end"] = window
        self.move(deal, "measurements", owner, at)
        task = self.run_automations(deal, "measurements", owner, at, worker, window)
        verdict = self.onward(deal, source, "measurements")
        if task is None:
            self.finish(deal)
            return
        if verdict == "stall":  # the visit never happened: an overdue visit task
            self.finish(deal)
            return
        self.visits.append(_Visit(task, worker, day, lat, lon, True))
        at = self.working(window[1] + timedelta(hours=rng.randrange(3, 30)))
        if at >= self.cutoff:
            self.finish(deal)
            return
        if verdict == "lost":
            self.lose(deal, "measurements", at)
            return
        # Agreement: the calculation (amount and line items), then a call within 2 hours.
        self.price(deal, size * source.value, at)
        self.move(deal, "agreement", owner, at)
        calc = self.run_automations(deal, "agreement", owner, at)
        slow = self.skill[owner] < 1
        at = at + timedelta(minutes=rng.randrange(30, 300 if slow else 110))
        verdict = self.onward(deal, source, "agreement")
        if at >= self.cutoff or verdict == "stall":
            self.finish(deal)
            return
        self.call(deal, at, rng.choice(_CALL_OUTCOMES_FOLLOW), calc)
        for _ in range(rng.randrange(0, 3)):
            at = self.working(at + timedelta(hours=rng.randrange(12, 60)))
            if at >= self.cutoff:
                self.finish(deal)
                return
            self.call(deal, at, rng.choice(_CALL_OUTCOMES_FOLLOW))
        at = self.working(at + timedelta(hours=rng.randrange(4, 96)))
        if at >= self.cutoff:
            self.finish(deal)
            return
        if verdict == "lost":
            self.lose(deal, "agreement", at)
            return
        self.move(deal, "payment", owner, at)
        self.run_automations(deal, "payment", owner, at)
        at = self.working(at + timedelta(hours=rng.randrange(6, 120)))
        verdict = self.onward(deal, source, "payment")
        if at >= self.cutoff or verdict == "stall":
            self.finish(deal)
            return
        if verdict == "lost":
            self.lose(deal, "payment", at)
            return
        booked = self.book(self.installers, at, rng.randrange(2, 8), _INSTALL_SLOTS, 2)
        if booked is None:
            self.finish(deal)
            return
        worker, day, window = booked
        self.move(deal, "installation", owner, at)
        task = self.run_automations(deal, "installation", owner, at, worker, window)
        verdict = self.onward(deal, source, "installation")
        if task is None or verdict == "stall":
            self.finish(deal)
            return
        self.visits.append(_Visit(task, worker, day, lat, lon, True))
        at = self.working(window[1] + timedelta(hours=rng.randrange(8, 40)))
        if at >= self.cutoff:
            self.finish(deal)
            return
        if verdict == "lost":
            self.lose(deal, "installation", at)
            return
        self.move(deal, "won", owner, at)
        self.run_automations(deal, "won", owner, at)
        self.counts.won += 1
        self.counts.revenue += deal["amount"] or Decimal(0)

    def price(self, deal: dict[str, Any], factor: float, at: datetime) -> None:
        """The calculation after the measurement (``sales.services.update_deal``)."""
        rng = self.rng
        windows = max(1, round(rng.triangular(1, 9, 3) * factor))
        unit = Decimal(rng.randrange(150, 330) * 100)
        install = Decimal(rng.randrange(35, 70) * 100)
        items = [
            ("Окно ПВХ, профиль 70 мм, двухкамерный стеклопакет", Decimal(windows), unit),
            ("Монтаж и отделка откосов", Decimal(windows), install),
        ]
        total = sum((q * u for _, q, u in items), Decimal(0))
        total = min(max(total, Decimal(25_000)), Decimal(400_000)).quantize(Decimal("0.01"))
        before = {"amount": deal["amount"]}
        deal["line_items"] = [
            {
                "name": name,
                "quantity": str(q),
                "unitPrice": str(u.quantize(Decimal("0.01"))),
                "total": str((q * u).quantize(Decimal("0.01"))),
            }
            for name, q, u in items
        ]
        deal["amount"] = total
        deal["version"] += 1
        self.audit(
            "deal",
            deal["id"],
            "updated",
            deal["owner_id"],
            at,
            {"amount": [before["amount"], str(total)]},
        )

    def lose(self, deal: dict[str, Any], key: str, at: datetime) -> None:
        """Lost at ``key`` with a reason; the deal's open visit tasks are cancelled."""
        reason = self.rng.choice(_LOST_REASONS[key])
        for task in deal["_tasks"]:
            if task["status"] is TaskStatus.OPEN:
                self.close_task(task, deal["owner_id"], at)
        self.move(deal, "lost", deal["owner_id"], at, lost_reason=reason)
        self.counts.lost += 1

    def finish(self, deal: dict[str, Any]) -> None:
        """The deal stays open where it is."""
        self.counts.open += 1

    # --- the field days -------------------------------------------------------------------

    def field_days(self) -> None:
        """Arrivals, departures, ratings, shifts and daily summaries of the planned visits."""
        rng = self.rng
        by_day: dict[tuple[uuid.UUID, date], list[_Visit]] = {}
        for visit in self.visits:
            by_day.setdefault((visit.worker, visit.day), []).append(visit)
        rank = {
            u.id: i
            for i, u in enumerate(
                sorted([*self.measurers, *self.installers], key=lambda u: (u.full_name, u.email))
            )
        }
        for (worker, day), visits in sorted(
            by_day.items(), key=lambda kv: (kv[0][1], rank[kv[0][0]])
        ):
            visits.sort(key=lambda v: v.task["window_start"])
            late_prone = worker == self.late_worker
            free_at: datetime | None = None
            on_site = 0
            distance = rng.uniform(4_000, 15_000)  # from home or the warehouse to the first site
            previous: tuple[float, float] | None = None
            for visit in visits:
                task = visit.task
                start, end = task["window_start"], task["window_end"]
                span = (end - start).total_seconds() / 60
                if rng.random() < (0.35 if late_prone else 0.07):
                    arrive = end + timedelta(minutes=rng.randrange(8, 80 if late_prone else 35))
                else:
                    arrive = start + timedelta(minutes=rng.triangular(-10, span * 0.85, span * 0.2))
                if previous is not None:
                    leg = haversine_m(previous[0], previous[1], visit.lat, visit.lon) * 1.35
                    distance += leg
                if free_at is not None:
                    arrive = max(arrive, free_at + timedelta(minutes=rng.randrange(12, 35)))
                    arrive = min(arrive, end + timedelta(minutes=100))  # the dispatcher steps in
                kind = task["kind"]
                stay = (
                    rng.randrange(25, 65)
                    if kind is TaskKind.MEASUREMENT
                    else rng.randrange(120, 300)
                )
                leave = arrive + timedelta(minutes=stay)
                self.counts.late_arrivals += arrive > end
                self.check(visit, CheckKind.IN, arrive, late_prone)
                outcome = "замер выполнен" if kind is TaskKind.MEASUREMENT else "монтаж выполнен"
                self.check(visit, CheckKind.OUT, leave, False, outcome, int(stay * 60))
                task.update(
                    status=TaskStatus.DONE,
                    started_at=arrive,
                    completed_at=leave,
                    outcome=outcome,
                    updated_at=leave,
                )
                self.audit(
                    "task", task["id"], "completed", worker, leave, {"outcome": [None, outcome]}
                )
                self.counts.visits += 1
                self.rate(task, arrive > end, leave)
                free_at = leave
                previous = (visit.lat, visit.lon)
                on_site += stay * 60
            distance += rng.uniform(4_000, 15_000)  # back
            first = visits[0].task["started_at"]
            last = visits[-1].task["completed_at"]
            shift_start = min(
                self.local(day, 8, rng.randrange(15, 55)), first - timedelta(minutes=30)
            )
            shift_end = max(
                self.local(day, 17, rng.randrange(30, 59)), last + timedelta(minutes=40)
            )
            self.rows.shifts.append(
                {
                    "id": uuid.uuid4(),
                    "organization_id": self.org.id,
                    "user_id": worker,
                    "started_at": shift_start,
                    "ended_at": shift_end,
                    "source": ShiftSource.SCHEDULED,
                    "created_at": shift_start,
                    "updated_at": shift_end,
                }
            )
            self.counts.shifts += 1
            length = int((shift_end - shift_start).total_seconds())
            on_site_s = min(int(on_site) + rng.randrange(0, 1200), length)
            driving_s = min(int(distance / rng.uniform(6.5, 9.5)), length - on_site_s)
            self.rows.summaries.append(
                {
                    "user_id": worker,
                    "day": day,
                    "organization_id": self.org.id,
                    "points": length // 30,
                    "distance_m": round(distance, 1),
                    "on_site_s": on_site_s,
                    "driving_s": driving_s,
                    "idle_s": length - on_site_s - driving_s,
                    "stops": len(visits) + rng.randrange(0, 3),
                    "computed_at": min(self.local(day + timedelta(days=1), 3), self.cutoff),
                }
            )
            self.counts.summaries += 1

    def check(
        self,
        visit: _Visit,
        kind: CheckKind,
        at: datetime,
        sloppy: bool,
        outcome: str | None = None,
        dwell_s: int | None = None,
    ) -> None:
        """A check-in or -out near the site, judged as ``tracking.visits.check`` judges it."""
        rng = self.rng
        roll = rng.random() if kind is CheckKind.IN else 1.0
        mocked = roll < (0.06 if sloppy else 0.025)
        accuracy = rng.uniform(4, 25)
        distance = rng.uniform(3, 70)
        override = None
        if not mocked and roll < 0.08:
            accuracy = rng.uniform(120, 400)
        elif not mocked and roll < 0.12:
            distance = rng.uniform(SITE_RADIUS_M * 2 + 30, 1_500)
            if rng.random() < 0.5:
                override = "Клиент встретил у въезда во двор"
        bearing = rng.uniform(0, 360)
        dlat = distance * cos(radians(bearing)) / 111_200
        dlon = distance * cos(radians(90 - bearing)) / (111_200 * cos(radians(visit.lat)))
        lat, lon = round(visit.lat + dlat, 6), round(visit.lon + dlon, 6)
        fence = within_geofence(lat, lon, accuracy, visit.lat, visit.lon, SITE_RADIUS_M)
        flags = ["mocked_location"] if mocked else []
        if accuracy > 100:
            flags.append("poor_accuracy")
        if not fence.inside:
            flags.append("outside_site")
        status = check_status(fence.inside, flags, override)
        self.rows.check_ins.append(
            {
                "id": uuid.uuid4(),
                "organization_id": self.org.id,
                "task_id": visit.task["id"],
                "user_id": visit.worker,
                "kind": kind,
                "at": at,
                "lat": lat,
                "lon": lon,
                "accuracy_m": round(accuracy, 1),
                "distance_m": round(fence.distance_m, 1),
                "status": status,
                "flags": flags,
                "override_reason": override,
                "dwell_s": dwell_s,
                "outcome": outcome,
                "created_at": at,
                "updated_at": at,
            }
        )
        changes: dict[str, Any] = {"status": [None, status.value], "flags": [None, flags]}
        if override:
            changes["overrideReason"] = [None, override]
        self.audit("task", visit.task["id"], f"check_{kind.value}", visit.worker, at, changes)
        if kind is CheckKind.IN:
            self.counts.check_ins += 1
            self.counts.flagged_check_ins += bool(flags)

    def rate(self, task: dict[str, Any], late: bool, left: datetime) -> None:
        """The customer's rating of a done visit (~60 % answer)."""
        rng = self.rng
        if rng.random() > 0.6:
            return
        if late:
            rating = rng.choices((1, 2, 3, 4, 5), weights=(1, 3, 4, 3, 1))[0]
        else:
            rating = rng.choices((2, 3, 4, 5), weights=(1, 2, 10, 25))[0]
        at = left + timedelta(hours=rng.uniform(1, 30))
        if at >= self.cutoff:
            return
        self.rows.feedback.append(
            {
                "id": uuid.uuid4(),
                "organization_id": self.org.id,
                "task_id": task["id"],
                "rating": rating,
                "comment": rng.choice(_RATING_COMMENTS[rating]),
                "submitted_at": at,
            }
        )

    def overdue(self, now: datetime) -> None:
        """Count the tasks left open past their due time."""
        self.counts.overdue_tasks = sum(
            1
            for t in self.rows.tasks
            if t["status"] is TaskStatus.OPEN and t["due_at"] is not None and t["due_at"] < now
        )


async def _automations(
    session: AsyncSession, stages: Mapping[str, Stage]
) -> dict[str, list[tuple[Automation, Any]]]:
    out: dict[str, list[tuple[Automation, Any]]] = {}
    for key, stage in stages.items():
        rows = (
            await session.scalars(
                select(Automation)
                .where(Automation.stage_id == stage.id, Automation.is_active)
                .order_by(Automation.position, Automation.created_at)
            )
        ).all()
        out[key] = [(a, parse_config(a.action, a.config, check_templates=False)) for a in rows]
    return out


async def _people(session: AsyncSession, org_id: uuid.UUID) -> list[User]:
    rows = await session.scalars(
        select(User)
        .where(User.organization_id == org_id, User.is_active)
        .order_by(User.full_name, User.email)
    )
    return list(rows.all())


async def _insert(session: AsyncSession, table: Any, rows: list[dict[str, Any]]) -> None:
    """One multi-row INSERT per table (private keys of the simulation dropped)."""
    if not rows:
        return
    clean = [{k: v for k, v in row.items() if not k.startswith("_")} for row in rows]
    await session.execute(insert(table), clean)


async def seed_history(
    session: AsyncSession, org: Organization, now: datetime, seed: int, days: int = 120
) -> HistoryCounts:
    """Write ``days`` days of the organisation's past before ``now`` (see the module
    docstring) in the caller's transaction; return what was written. The organisation needs
    managers, and field staff with the measurer and installer skills for visits."""
    if now.tzinfo is None:
        raise ValueError("now must be timezone-aware")
    if days < 1:
        raise ValueError("days must be at least 1")
    rng = random.Random(seed)
    zone = ZoneInfo(org.time_zone)
    today = now.astimezone(zone).date()
    cutoff = min(now, datetime.combine(today, time(), tzinfo=zone))
    pipeline = await seed_window_pipeline(session, org)
    stages = {k: pipeline.stages[k] for k in _STAGES}
    people = await _people(session, org.id)
    managers = [u for u in people if u.role is Role.MANAGER]
    if not managers:
        raise ValueError("the organisation has no active manager to own deals")
    taken = set(
        (
            await session.scalars(
                select(Contact.phone).where(
                    Contact.organization_id == org.id, Contact.phone.is_not(None)
                )
            )
        ).all()
    )
    story = _Story(
        rng,
        org,
        stages,
        await _automations(session, stages),
        managers,
        [u for u in people if u.role is Role.ADMIN],
        [u for u in people if u.role is Role.FIELD and "measurer" in u.skills],
        [u for u in people if u.role is Role.FIELD and "installer" in u.skills],
        {p for p in taken if p},
        cutoff,
    )
    first_day = today - timedelta(days=days)
    for offset in range(days):
        day = first_day + timedelta(days=offset)
        growth = 0.75 + 0.5 * offset / max(days - 1, 1)  # the business grows over the period
        base = 4.0 if day.weekday() >= 5 else 9.0
        count = max(0, round(rng.gauss(base * growth, 2.0)))
        for _ in range(count):
            story.lead(day)
    story.field_days()
    story.overdue(now)
    rows = story.rows
    await _insert(session, Customer.__table__, rows.customers)
    await _insert(session, Contact.__table__, rows.contacts)
    await _insert(session, Site.__table__, rows.sites)
    await _insert(session, Deal.__table__, rows.deals)
    await _insert(session, DealStageChange.__table__, rows.changes)
    await _insert(session, Interaction.__table__, rows.interactions)
    await _insert(session, Task.__table__, rows.tasks)
    await _insert(session, CheckIn.__table__, rows.check_ins)
    await _insert(session, AuditEntry.__table__, rows.audit)
    await _insert(session, Notification.__table__, rows.notifications)
    await _insert(session, OutboxMessage.__table__, rows.outbox)
    await _insert(session, Shift.__table__, rows.shifts)
    await _insert(session, DailySummary.__table__, rows.summaries)
    if rows.feedback and await session.scalar(text("SELECT to_regclass('visit_feedback')")):
        await session.execute(
            text(
                "INSERT INTO visit_feedback"
                " (id, organization_id, task_id, rating, comment, submitted_at)"
                " VALUES (:id, :organization_id, :task_id, :rating, :comment, :submitted_at)"
            ),
            rows.feedback,
        )
        story.counts.ratings = len(rows.feedback)
    return story.counts
