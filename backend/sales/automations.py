"""Stage automations stored as data, and running them when a deal enters a stage.

Each automation row has an ``action`` and a JSON ``config``, checked here when saved:

``create_task``::

    {"kind": "call", "title": "Call {{ customer.name }} back", "description": "...",
     "assignee": {"rule": "owner"}                      # the deal's owner
              | {"rule": "user", "userId": "..."}       # one person
              | {"rule": "skill", "skill": "installer",
                 "pick": "route" | "fewest_open" | "round_robin"}
              | {"rule": "role", "role": "manager", "pick": "round_robin" | "fewest_open"},
     "due": {"from": "entered" | "scheduledStart" | "scheduledEnd",
             "offsetMinutes": 15, "businessHours": false},
     "window": "scheduled" | null,    # visits: the deal's scheduled time is the task's window
     "durationMinutes": 60,           # window length when the deal has no scheduled end
     "escalateAfterMinutes": 30,      # tell the assignee's team lead this long after the due time
     "priority": 0}

``notify``::

    {"recipients": ["owner", "owner_lead", "admins"], "title": "...", "body": "...",
     "urgent": false}

``generate_document``::

    {"template": "Invoice", "notifyOwner": true}

Titles and bodies are sandboxed Jinja2 text with ``deal`` (title, amount, currency, source,
scheduledStart, scheduledEnd, stage), ``customer`` (name, phone, email), ``site`` (address,
accessNotes), ``owner`` (name) and, in task texts, ``due``; times are in the organisation's zone.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from functools import lru_cache
from typing import Annotated, Any, Literal
from zoneinfo import ZoneInfo

import msgspec
from jinja2 import StrictUndefined, Template, TemplateError
from jinja2.sandbox import ImmutableSandboxedEnvironment
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from backend.accounts.models import Organization, Role, Skill, Team, TeamMember, User
from backend.customers.models import Site
from backend.customers.services import name_and_first_contact
from backend.db.counters import next_value_committed
from backend.documents.storage import FileStorage
from backend.lib.errors import FieldError, InvalidInput
from backend.notifications.services import notify
from backend.routing.assign import best_worker
from backend.sales.models import Automation, AutomationAction, Deal, Stage
from backend.tasks.deadlines import due_at, load_business_hours
from backend.tasks.models import ACTIVE_STATUSES, VISIT_KINDS, Task, TaskKind

TemplateText = Annotated[str, msgspec.Meta(min_length=1, max_length=2000)]


class _Config(
    msgspec.Struct, rename="camel", forbid_unknown_fields=True, kw_only=True, frozen=True
):
    pass


class OwnerRule(_Config, frozen=True, tag="owner", tag_field="rule"):
    pass


class UserRule(_Config, frozen=True, tag="user", tag_field="rule"):
    user_id: uuid.UUID


class SkillRule(_Config, frozen=True, tag="skill", tag_field="rule"):
    skill: Skill
    # "route": the worker whose day takes the visit at least extra driving
    # (``backend.routing.assign``), else the fewest open tasks.
    pick: Literal["route", "fewest_open", "round_robin"] = "fewest_open"


class RoleRule(_Config, frozen=True, tag="role", tag_field="rule"):
    role: Role
    pick: Literal["fewest_open", "round_robin"] = "round_robin"


AssigneeRule = OwnerRule | UserRule | SkillRule | RoleRule


class DueRule(_Config, frozen=True):
    from_: Literal["entered", "scheduledStart", "scheduledEnd"] = msgspec.field(
        default="entered", name="from"
    )
    offset_minutes: Annotated[int, msgspec.Meta(ge=-10_080, le=525_600)] = 0
    business_hours: bool = False


class CreateTaskConfig(_Config, frozen=True):
    kind: TaskKind
    title: TemplateText
    description: TemplateText | None = None
    assignee: AssigneeRule = OwnerRule()
    due: DueRule | None = None
    window: Literal["scheduled"] | None = None
    duration_minutes: Annotated[int, msgspec.Meta(ge=1, le=1440)] = 60
    escalate_after_minutes: Annotated[int, msgspec.Meta(ge=0, le=43_200)] | None = None
    priority: Annotated[int, msgspec.Meta(ge=0, le=100)] = 0


class NotifyConfig(_Config, frozen=True):
    recipients: Annotated[
        list[Literal["owner", "owner_lead", "admins", "assignees"]], msgspec.Meta(min_length=1)
    ]
    title: TemplateText
    body: TemplateText | None = None
    urgent: bool = False


class GenerateDocumentConfig(_Config, frozen=True):
    template: Annotated[str, msgspec.Meta(min_length=1, max_length=200)]
    notify_owner: bool = True


CONFIG_TYPES: dict[AutomationAction, type[_Config]] = {
    AutomationAction.CREATE_TASK: CreateTaskConfig,
    AutomationAction.NOTIFY: NotifyConfig,
    AutomationAction.GENERATE_DOCUMENT: GenerateDocumentConfig,
}

_TEXT = ImmutableSandboxedEnvironment(autoescape=False, undefined=StrictUndefined)

_SAMPLE_CONTEXT: dict[str, Any] = {
    "deal": {
        "title": "Deal",
        "amount": "0",
        "currency": "EUR",
        "source": "website",
        "scheduledStart": "2026-01-01 10:00",
        "scheduledEnd": "2026-01-01 11:00",
        "stage": "Stage",
    },
    "customer": {"name": "Customer", "phone": "+10000000000", "email": "a@example.com"},
    "site": {"address": "Address", "accessNotes": ""},
    "owner": {"name": "Owner"},
    "due": "2026-01-01 10:15",
}


@lru_cache(maxsize=512)
def _compiled(template: str) -> Template:
    return _TEXT.from_string(template)


def render_text(template: str, context: Mapping[str, Any]) -> str:
    """Render a title/body template in the sandbox (no attribute tricks, no I/O); compiled
    templates are cached."""
    return _compiled(template).render(context)


def parse_config(
    action: AutomationAction, raw: Mapping[str, Any], *, check_templates: bool = True
) -> _Config:
    """Check an automation's ``config`` for its action; 422 naming the field on any problem,
    including template texts that do not render with the documented variables (skipped with
    ``check_templates=False`` for stored configs, which were checked when saved)."""
    try:
        config = msgspec.convert(dict(raw), CONFIG_TYPES[action])
    except msgspec.ValidationError as exc:
        message = str(exc)
        path = message.rsplit("at `$", 1)[-1].rstrip("`") if "at `$" in message else ""
        reason = message.split(" - at `$")[0]
        raise InvalidInput.on(f"config{path}", reason) from exc
    texts: dict[str, str | None] = {}
    if not check_templates:
        return config
    if isinstance(config, CreateTaskConfig):
        texts = {"title": config.title, "description": config.description}
    elif isinstance(config, NotifyConfig):
        texts = {"title": config.title, "body": config.body}
    errors = []
    for name, template in texts.items():
        if template is None:
            continue
        try:
            render_text(template, _SAMPLE_CONTEXT)
        except TemplateError as exc:
            errors.append(FieldError(field=f"config.{name}", reason=f"template: {exc}"))
    if errors:
        raise InvalidInput("The automation's texts are not valid templates", errors=errors)
    return config


# --- running ----------------------------------------------------------------------------------


@dataclass
class Effects:
    """What the automations of one stage entry made."""

    tasks: list[Task] = field(default_factory=list)
    document_ids: list[uuid.UUID] = field(default_factory=list)
    notifications: int = 0


@dataclass
class StageEntry:
    """A deal entering a stage: everything automations need, loaded once."""

    deal: Deal
    stage: Stage
    organization: Organization
    actor_id: uuid.UUID | None
    now: datetime
    context: dict[str, Any]
    storage: FileStorage


def _local(moment: datetime | None, zone: str) -> str:
    if moment is None:
        return ""
    return moment.astimezone(ZoneInfo(zone)).strftime("%d.%m.%Y %H:%M")


async def load_entry(
    session: AsyncSession,
    deal: Deal,
    stage: Stage,
    organization: Organization,
    actor_id: uuid.UUID | None,
    now: datetime,
    storage: FileStorage,
) -> StageEntry:
    """Gather the texts' variables for a deal entering ``stage``."""
    customer_name, phone, email = await name_and_first_contact(session, deal.customer_id)
    site_row = None
    if deal.site_id is not None:
        site_row = (
            await session.execute(
                select(Site.address, Site.access_notes).where(Site.id == deal.site_id)
            )
        ).one_or_none()
    owner_name = None
    if deal.owner_id is not None:
        owner_name = await session.scalar(select(User.full_name).where(User.id == deal.owner_id))
    zone = organization.time_zone
    context = {
        "deal": {
            "title": deal.title,
            "amount": str(deal.amount) if deal.amount is not None else "",
            "currency": deal.currency,
            "source": deal.source or "",
            "scheduledStart": _local(deal.scheduled_start, zone),
            "scheduledEnd": _local(deal.scheduled_end, zone),
            "stage": stage.name,
        },
        "customer": {"name": customer_name, "phone": phone or "", "email": email or ""},
        "site": {
            "address": site_row.address if site_row else "",
            "accessNotes": (site_row.access_notes or "") if site_row else "",
        },
        "owner": {"name": owner_name or ""},
    }
    return StageEntry(deal, stage, organization, actor_id, now, context, storage)


async def _eligible(
    session: AsyncSession, organization_id: uuid.UUID, rule: SkillRule | RoleRule
) -> list[uuid.UUID]:
    stmt = select(User.id).where(User.organization_id == organization_id, User.is_active)
    if isinstance(rule, SkillRule):
        stmt = stmt.where(User.skills.contains([rule.skill.value]))
    else:
        stmt = stmt.where(User.role == rule.role)
    return list((await session.scalars(stmt.order_by(User.id))).all())


async def _fewest_open(
    session: AsyncSession, organization_id: uuid.UUID, users: list[uuid.UUID], kind: TaskKind
) -> uuid.UUID:
    """The user with the fewest active tasks of ``kind``; ties go to the one whose latest such
    task is oldest, then by id (deterministic)."""
    open_count = func.count(Task.id)
    stmt = (
        select(User.id)
        .outerjoin(
            Task,
            (Task.assignee_id == User.id)
            & (Task.organization_id == organization_id)
            & (Task.kind == kind)
            & Task.status.in_(ACTIVE_STATUSES),
        )
        .where(User.id.in_(users))
        .group_by(User.id)
        .order_by(open_count, func.max(Task.created_at).nulls_first(), User.id)
        .limit(1)
    )
    chosen: uuid.UUID = (await session.execute(stmt)).scalar_one()
    return chosen


async def pick_assignee(
    session: AsyncSession,
    entry: StageEntry,
    automation_id: uuid.UUID,
    rule: AssigneeRule,
    kind: TaskKind,
    window: tuple[datetime, datetime] | None = None,
) -> uuid.UUID | None:
    """Who gets the task under ``rule``; None when nobody qualifies. ``window`` is the visit's
    time window (for picking by route)."""
    org_id = entry.organization.id
    if isinstance(rule, OwnerRule):
        return entry.deal.owner_id
    if isinstance(rule, UserRule):
        active = await session.scalar(
            select(User.is_active).where(User.id == rule.user_id, User.organization_id == org_id)
        )
        return rule.user_id if active else None
    users = await _eligible(session, org_id, rule)
    if not users:
        return None
    if isinstance(rule, SkillRule) and rule.pick == "route" and kind in VISIT_KINDS:
        chosen = await best_worker(
            session,
            org_id,
            users,
            site_id=entry.deal.site_id,
            kind=kind,
            window=window,
            time_zone=entry.organization.time_zone,
            now=entry.now,
        )
        if chosen is not None:
            return chosen
    if rule.pick in ("fewest_open", "route"):
        return await _fewest_open(session, org_id, users, kind)
    position = await next_value_committed(
        session, org_id, f"automation:{automation_id}:round_robin"
    )
    return users[(position - 1) % len(users)]


def _due(entry: StageEntry, config: CreateTaskConfig) -> datetime | None:
    rule = config.due
    if rule is None:
        return None
    deal = entry.deal
    base = {
        "entered": entry.now,
        "scheduledStart": deal.scheduled_start,
        "scheduledEnd": deal.scheduled_end or deal.scheduled_start,
    }[rule.from_]
    if base is None:
        raise InvalidInput.on("scheduledStart", f"the stage {entry.stage.name} needs a time")
    if rule.offset_minutes < 0:
        return base + timedelta(minutes=rule.offset_minutes)
    hours = load_business_hours(entry.organization.business_hours)
    return due_at(
        base,
        rule.offset_minutes,
        business_hours=hours if rule.business_hours else None,
        tz=entry.organization.time_zone,
    )


async def _create_task(
    session: AsyncSession, entry: StageEntry, automation: Automation, config: CreateTaskConfig
) -> Task:
    deal = entry.deal
    due = _due(entry, config)
    window_start = window_end = None
    if config.window == "scheduled" and deal.scheduled_start is not None:
        window_start = deal.scheduled_start
        window_end = deal.scheduled_end or window_start + timedelta(minutes=config.duration_minutes)
    context = entry.context | {"due": _local(due, entry.organization.time_zone)}
    window = None if window_start is None or window_end is None else (window_start, window_end)
    assignee = await pick_assignee(
        session, entry, automation.id, config.assignee, config.kind, window
    )
    task = Task(
        id=uuid.uuid4(),
        organization_id=deal.organization_id,
        kind=config.kind,
        title=render_text(config.title, context)[:300],
        description=render_text(config.description, context) if config.description else None,
        assignee_id=assignee,
        created_by_id=entry.actor_id,
        deal_id=deal.id,
        customer_id=deal.customer_id,
        site_id=deal.site_id,
        automation_id=automation.id,
        due_at=due,
        window_start=window_start,
        window_end=window_end,
        priority=config.priority,
        escalate_after_minutes=config.escalate_after_minutes,
    )
    session.add(task)
    return task


async def _team_leads(session: AsyncSession, user_id: uuid.UUID) -> list[uuid.UUID]:
    rows = await session.scalars(
        select(Team.lead_id)
        .join(TeamMember, TeamMember.team_id == Team.id)
        .where(TeamMember.user_id == user_id, Team.lead_id.is_not(None), Team.lead_id != user_id)
    )
    return [r for r in rows.all() if r is not None]


async def _recipients(
    session: AsyncSession, entry: StageEntry, names: list[str], effects: Effects
) -> list[uuid.UUID]:
    found: list[uuid.UUID] = []
    owner = entry.deal.owner_id
    for name in names:
        if name == "owner" and owner is not None:
            found.append(owner)
        elif name == "owner_lead" and owner is not None:
            found.extend(await _team_leads(session, owner))
        elif name == "admins":
            admins = await session.scalars(
                select(User.id).where(
                    User.organization_id == entry.organization.id,
                    User.role == Role.ADMIN,
                    User.is_active,
                )
            )
            found.extend(admins.all())
        elif name == "assignees":
            found.extend(t.assignee_id for t in effects.tasks if t.assignee_id is not None)
    return list(dict.fromkeys(found))


async def _notify(
    session: AsyncSession,
    entry: StageEntry,
    automation: Automation,
    config: NotifyConfig,
    effects: Effects,
) -> None:
    title = render_text(config.title, entry.context)
    body = render_text(config.body, entry.context) if config.body else None
    for user_id in await _recipients(session, entry, list(config.recipients), effects):
        created = await notify(
            session,
            organization_id=entry.organization.id,
            user_id=user_id,
            kind="deal_stage",
            title=title,
            body=body,
            link=f"/deals/{entry.deal.id}",
            data={"dealId": str(entry.deal.id), "stageId": str(entry.stage.id)},
            urgent=config.urgent,
            dedupe_key=f"automation:{automation.id}:{entry.deal.id}:{user_id}:{entry.now.isoformat()}",
            now=entry.now,
        )
        effects.notifications += created is not None


async def run_stage_automations(session: AsyncSession, entry: StageEntry) -> Effects:
    """Run the active automations of the stage the deal just entered, in order, in the
    caller's transaction. Tasks are created first so notifications can name their assignees."""
    from backend.documents.services import generate_for_deal  # documents depend on sales
    from backend.tasks.services import notify_assigned

    automations = (
        await session.scalars(
            select(Automation)
            .where(Automation.stage_id == entry.stage.id, Automation.is_active)
            .order_by(Automation.position, Automation.created_at)
        )
    ).all()
    effects = Effects()
    configs = [
        (automation, parse_config(automation.action, automation.config, check_templates=False))
        for automation in automations
    ]
    for automation, config in configs:
        if isinstance(config, CreateTaskConfig):
            effects.tasks.append(await _create_task(session, entry, automation, config))
    if effects.tasks:
        await session.flush()
        for task in effects.tasks:
            await notify_assigned(session, task, entry.now)
            effects.notifications += task.assignee_id is not None
    for automation, config in configs:
        if isinstance(config, GenerateDocumentConfig):
            document = await generate_for_deal(
                session,
                entry.deal,
                entry.organization,
                template_name=config.template,
                actor_id=entry.actor_id,
                now=entry.now,
                storage=entry.storage,
            )
            effects.document_ids.append(document.id)
            if config.notify_owner and entry.deal.owner_id is not None:
                await notify(
                    session,
                    organization_id=entry.organization.id,
                    user_id=entry.deal.owner_id,
                    kind="document_ready",
                    title=document.title,
                    link=f"/deals/{entry.deal.id}",
                    data={"dealId": str(entry.deal.id), "documentId": str(document.id)},
                    dedupe_key=f"document_ready:{document.id}",
                    now=entry.now,
                )
                effects.notifications += 1
        elif isinstance(config, NotifyConfig):
            await _notify(session, entry, automation, config, effects)
    return effects
