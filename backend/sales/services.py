"""Business rules of deals: visibility, creating, changing, moving between stages, calls.

Moving a deal (``move_deal``) checks the stage rules, records the stage history, the timeline
entry and the audit log, then runs the target stage's automations — all in the caller's
transaction, so a move either happens with everything it causes or not at all.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import msgspec
from sqlalchemy import Select, select
from sqlalchemy.ext.asyncio import AsyncSession

from backend.accounts.models import Organization, Role, User
from backend.audit import services as audit
from backend.audit.models import AuditEntry
from backend.customers.models import Customer, Interaction, InteractionKind, Site
from backend.documents.services import deal_has_document, deal_has_upload
from backend.documents.storage import FileStorage
from backend.lib.errors import Conflict, FieldError, InvalidInput, NotFound, StageRuleBroken
from backend.lib.pagination import Page, keyset_desc, page_of
from backend.lib.tenancy import Actor, scope
from backend.lib.visibility import customer_visible, deal_visible
from backend.sales import schemas
from backend.sales.automations import Effects, load_entry, run_stage_automations
from backend.sales.models import Deal, DealStageChange, Pipeline, Requirement, Stage, StageKind
from backend.tasks.models import Task, TaskKind, TaskStatus

CENTS = Decimal("0.01")


def _visible(actor: Actor) -> Select[Deal]:
    return scope(select(Deal), actor, Deal.organization_id).where(deal_visible(actor))


async def visible_deal(
    session: AsyncSession, actor: Actor, deal_id: uuid.UUID, *, for_update: bool = False
) -> Deal:
    """The deal if the caller may see it; 404 otherwise."""
    stmt = _visible(actor).where(Deal.id == deal_id)
    if for_update:
        stmt = stmt.with_for_update(of=Deal)
    deal = await session.scalar(stmt)
    if deal is None:
        raise NotFound("Deal not found")
    return deal


async def deal_out(session: AsyncSession, deal: Deal) -> schemas.DealOut:
    """The API shape of a deal, with its stage and customer names."""
    stage_name, stage_kind, customer_name = (
        await session.execute(
            select(Stage.name, Stage.kind, Customer.name)
            .select_from(Stage)
            .join(Customer, Customer.id == deal.customer_id)
            .where(Stage.id == deal.stage_id)
        )
    ).one()
    return _deal_out(deal, stage_name, stage_kind, customer_name)


def _deal_out(
    deal: Deal, stage_name: str, stage_kind: StageKind, customer_name: str
) -> schemas.DealOut:
    return schemas.DealOut(
        id=deal.id,
        title=deal.title,
        pipeline_id=deal.pipeline_id,
        stage_id=deal.stage_id,
        stage_name=stage_name,
        stage_kind=stage_kind,
        customer_id=deal.customer_id,
        customer_name=customer_name,
        site_id=deal.site_id,
        owner_id=deal.owner_id,
        amount=deal.amount,
        currency=deal.currency,
        line_items=[msgspec.convert(i, schemas.LineItemOut) for i in deal.line_items],
        source=deal.source,
        attribution=deal.attribution,
        expected_close=deal.expected_close,
        lost_reason=deal.lost_reason,
        scheduled_start=deal.scheduled_start,
        scheduled_end=deal.scheduled_end,
        stage_entered_at=deal.stage_entered_at,
        closed_at=deal.closed_at,
        version=deal.version,
        created_at=deal.created_at,
    )


async def list_deals(
    session: AsyncSession,
    actor: Actor,
    *,
    pipeline_id: uuid.UUID | None,
    stage_id: uuid.UUID | None,
    owner_id: uuid.UUID | None,
    customer_id: uuid.UUID | None,
    limit: int,
    cursor: str | None,
) -> Page[schemas.DealOut]:
    """Visible deals, newest first."""
    stmt = _visible(actor)
    for column, value in (
        (Deal.pipeline_id, pipeline_id),
        (Deal.stage_id, stage_id),
        (Deal.owner_id, owner_id),
        (Deal.customer_id, customer_id),
    ):
        if value is not None:
            stmt = stmt.where(column == value)
    stmt = keyset_desc(stmt, Deal.created_at, Deal.id, cursor, limit)
    stmt = (
        stmt.add_columns(Stage.name, Stage.kind, Customer.name)
        .join(Stage, Stage.id == Deal.stage_id)
        .join(Customer, Customer.id == Deal.customer_id)
    )
    rows: list[Any] = list((await session.execute(stmt)).all())
    items = [_deal_out(d, stage_name, kind, name) for d, stage_name, kind, name in rows]
    return page_of(items, limit, lambda d: [d.created_at, d.id])


MAX_MONEY = Decimal("999999999999.99")


def check_money(value: Decimal | None, field: str) -> Decimal | None:
    """A non-negative finite amount below a trillion, rounded to cents."""
    if value is None:
        return None
    if not value.is_finite() or value < 0 or value > MAX_MONEY:
        raise InvalidInput.on(field, "must be a number from 0 to 999999999999.99")
    return value.quantize(CENTS)


def line_items_json(items: list[schemas.LineItem]) -> list[dict[str, Any]]:
    """Line items as stored: exact decimals as strings, totals computed."""
    for n, item in enumerate(items):
        if not item.quantity.is_finite() or not 0 < item.quantity <= 1_000_000:
            raise InvalidInput.on(f"lineItems[{n}].quantity", "must be above 0 and at most 1000000")
        check_money(item.unit_price, f"lineItems[{n}].unitPrice")
        check_money(item.quantity * item.unit_price, f"lineItems[{n}]")
    return [
        {
            "name": i.name,
            "quantity": str(i.quantity),
            "unitPrice": str(i.unit_price.quantize(CENTS)),
            "total": str((i.quantity * i.unit_price).quantize(CENTS)),
            **({"unit": i.unit} if i.unit else {}),
        }
        for i in items
    ]


def _items_total(items: list[dict[str, Any]]) -> Decimal:
    return sum((Decimal(i["total"]) for i in items), Decimal("0"))


async def default_pipeline(session: AsyncSession, organization_id: uuid.UUID) -> Pipeline:
    """The organisation's default pipeline (or its oldest)."""
    pipeline = await session.scalar(
        select(Pipeline)
        .where(Pipeline.organization_id == organization_id)
        .order_by(Pipeline.is_default.desc(), Pipeline.created_at)
        .limit(1)
    )
    if pipeline is None:
        raise InvalidInput.on("pipelineId", "the organisation has no pipeline yet")
    return pipeline


async def first_stage(session: AsyncSession, pipeline_id: uuid.UUID) -> Stage:
    """Where new deals start: the open stage with the lowest position."""
    stage = await session.scalar(
        select(Stage)
        .where(Stage.pipeline_id == pipeline_id, Stage.kind == StageKind.OPEN)
        .order_by(Stage.position, Stage.created_at)
        .limit(1)
    )
    if stage is None:
        raise InvalidInput.on("pipelineId", "the pipeline has no open stage")
    return stage


async def _check_site(
    session: AsyncSession, organization_id: uuid.UUID, customer_id: uuid.UUID, site_id: uuid.UUID
) -> None:
    owner = await session.scalar(
        select(Site.customer_id).where(Site.id == site_id, Site.organization_id == organization_id)
    )
    if owner != customer_id:
        raise InvalidInput.on("siteId", "no such site of the deal's customer")


async def _check_owner(session: AsyncSession, actor: Actor, owner_id: uuid.UUID) -> None:
    if not actor.may_see_owner(owner_id):
        raise InvalidInput.on("ownerId", "you cannot give deals to this user")
    active = await session.scalar(
        select(User.is_active).where(
            User.id == owner_id, User.organization_id == actor.organization_id
        )
    )
    if not active:
        raise InvalidInput.on("ownerId", "no such active user in the organisation")


async def organization_of(session: AsyncSession, organization_id: uuid.UUID) -> Organization:
    """The organisation row (for its time zone, hours, currency, payment details)."""
    org = await session.get(Organization, organization_id)
    assert org is not None
    return org


async def start_deal(
    session: AsyncSession,
    *,
    organization: Organization,
    stage: Stage,
    customer_id: uuid.UUID,
    site_id: uuid.UUID | None,
    title: str,
    owner_id: uuid.UUID | None,
    actor_id: uuid.UUID | None,
    now: datetime,
    storage: FileStorage,
    amount: Decimal | None = None,
    currency: str | None = None,
    line_items: list[dict[str, Any]] | None = None,
    source: str | None = None,
    attribution: dict[str, Any] | None = None,
    expected_close: Any = None,
) -> tuple[Deal, Effects]:
    """Insert a deal in ``stage`` with its first history row, and run that stage's
    automations (used by the API and by lead capture)."""
    deal = Deal(
        id=uuid.uuid4(),
        organization_id=organization.id,
        pipeline_id=stage.pipeline_id,
        stage_id=stage.id,
        customer_id=customer_id,
        site_id=site_id,
        title=title,
        amount=amount,
        currency=currency or organization.currency,
        line_items=line_items or [],
        source=source,
        attribution=attribution or {},
        owner_id=owner_id,
        expected_close=expected_close,
        stage_entered_at=now,
        version=1,
    )
    session.add(deal)
    session.add(
        DealStageChange(
            id=uuid.uuid4(),
            organization_id=organization.id,
            deal_id=deal.id,
            from_stage_id=None,
            to_stage_id=stage.id,
            actor_id=actor_id,
            changed_at=now,
        )
    )
    await session.flush()
    await audit.record(
        session,
        organization_id=organization.id,
        entity="deal",
        entity_id=deal.id,
        action="created",
        actor_id=actor_id,
        at=now,
        changes={"stage": [None, stage.name], "source": [None, source]},
    )
    entry = await load_entry(session, deal, stage, organization, actor_id, now, storage)
    effects = await run_stage_automations(session, entry)
    return deal, effects


async def create_deal(
    session: AsyncSession,
    actor: Actor,
    data: schemas.DealCreate,
    now: datetime,
    storage: FileStorage,
) -> tuple[Deal, Effects]:
    """A deal for a visible customer, at the first stage of the (default) pipeline."""
    actor.require_role(Role.ADMIN, Role.MANAGER)
    customer = await session.scalar(
        scope(select(Customer.id), actor, Customer.organization_id).where(
            Customer.id == data.customer_id, customer_visible(actor)
        )
    )
    if customer is None:
        raise InvalidInput.on("customerId", "no such customer")
    if data.site_id is not None:
        await _check_site(session, actor.organization_id, data.customer_id, data.site_id)
    owner = data.owner_id or actor.user_id
    await _check_owner(session, actor, owner)
    organization = await organization_of(session, actor.organization_id)
    if data.pipeline_id is not None:
        pipeline = await session.scalar(
            select(Pipeline).where(
                Pipeline.id == data.pipeline_id, Pipeline.organization_id == actor.organization_id
            )
        )
        if pipeline is None:
            raise InvalidInput.on("pipelineId", "no such pipeline")
    else:
        pipeline = await default_pipeline(session, actor.organization_id)
    stage = await first_stage(session, pipeline.id)
    items = line_items_json(data.line_items)
    amount = check_money(data.amount, "amount")
    if amount is None and items:
        amount = _items_total(items)
    return await start_deal(
        session,
        organization=organization,
        stage=stage,
        customer_id=data.customer_id,
        site_id=data.site_id,
        title=data.title,
        owner_id=owner,
        actor_id=actor.user_id,
        now=now,
        storage=storage,
        amount=amount,
        currency=data.currency,
        line_items=items,
        source=data.source,
        expected_close=data.expected_close,
    )


def _check_version(deal: Deal, expected: int | None) -> None:
    if expected is not None and expected != deal.version:
        raise Conflict(
            f"The deal changed meanwhile (version {deal.version}, you had {expected}); reload it"
        )


def _check_schedule(start: datetime | None, end: datetime | None) -> None:
    for name, moment in (("scheduledStart", start), ("scheduledEnd", end)):
        if moment is not None and moment.tzinfo is None:
            raise InvalidInput.on(name, "needs a time zone offset")
    if start is not None and end is not None and end <= start:
        raise InvalidInput.on("scheduledEnd", "must be after scheduledStart")
    if start is None and end is not None:
        raise InvalidInput.on("scheduledStart", "needed with scheduledEnd")


def _utc(moment: datetime | None) -> datetime | None:
    return moment.astimezone(UTC) if moment is not None else None


_AUDITED = (
    "title",
    "site_id",
    "owner_id",
    "amount",
    "currency",
    "line_items",
    "source",
    "expected_close",
    "scheduled_start",
    "scheduled_end",
)


async def update_deal(
    session: AsyncSession, actor: Actor, deal_id: uuid.UUID, data: schemas.DealUpdate, now: datetime
) -> Deal:
    """Change deal fields (not the stage); every change goes to the audit log."""
    deal = await visible_deal(session, actor, deal_id, for_update=True)
    _check_version(deal, data.expected_version)
    changes: dict[str, Any] = {
        k: v
        for k, v in msgspec.structs.asdict(data).items()
        if v is not msgspec.UNSET and k != "expected_version"
    }
    if "amount" in changes:
        changes["amount"] = check_money(changes["amount"], "amount")
    if "line_items" in changes:
        changes["line_items"] = line_items_json(changes["line_items"])
        if "amount" not in changes:
            changes["amount"] = _items_total(changes["line_items"])
    if changes.get("site_id") is not None:
        await _check_site(session, actor.organization_id, deal.customer_id, changes["site_id"])
    if "owner_id" in changes and changes["owner_id"] != deal.owner_id:
        actor.require_role(Role.ADMIN, Role.MANAGER)
        await _check_owner(session, actor, changes["owner_id"])
    _check_schedule(
        changes.get("scheduled_start", deal.scheduled_start),
        changes.get("scheduled_end", deal.scheduled_end),
    )
    for field in ("scheduled_start", "scheduled_end"):
        if field in changes:
            changes[field] = _utc(changes[field])
    before = {f: getattr(deal, f) for f in _AUDITED}
    for field, value in changes.items():
        setattr(deal, field, value)
    diff = audit.diff(before, {f: getattr(deal, f) for f in _AUDITED})
    if diff:
        deal.version += 1
        await session.flush()
        await audit.record(
            session,
            organization_id=actor.organization_id,
            entity="deal",
            entity_id=deal.id,
            action="updated",
            actor_id=actor.user_id,
            at=now,
            changes=diff,
        )
    return deal


async def _unmet(session: AsyncSession, deal: Deal, stage: Stage) -> list[FieldError]:
    """Every requirement of ``stage`` the deal does not meet."""
    errors = []
    for requirement in stage.requirements:
        reason = None
        field = requirement
        if requirement == Requirement.SCHEDULED_TIME and deal.scheduled_start is None:
            field, reason = "scheduledStart", "a date and time for the visit"
        elif requirement == Requirement.SITE and deal.site_id is None:
            field, reason = "siteId", "the customer's site (address)"
        elif requirement == Requirement.AMOUNT and not deal.amount:
            reason = "the amount"
        elif requirement == Requirement.LINE_ITEMS and not deal.line_items:
            reason = "the calculation (line items)"
        elif requirement == Requirement.ATTACHMENT and not await deal_has_upload(session, deal.id):
            field, reason = "attachments", "an attached file (e.g. the measurement sheet)"
        elif requirement == Requirement.DOCUMENT and not await deal_has_document(session, deal.id):
            field, reason = "documents", "a generated document"
        elif requirement == Requirement.LOST_REASON and not deal.lost_reason:
            reason = "the reason the deal was lost"
        if reason is not None:
            errors.append(FieldError(field=field, reason=f"{stage.name} needs {reason}"))
    return errors


async def move_deal(
    session: AsyncSession,
    actor: Actor,
    deal_id: uuid.UUID,
    data: schemas.StageMove,
    now: datetime,
    storage: FileStorage,
) -> tuple[Deal, Effects]:
    """Move a deal to another stage of its pipeline under the stage's rules, then run the
    stage's automations. Unmet rules are a 422 ``stage-rule`` problem listing each of them."""
    deal = await visible_deal(session, actor, deal_id, for_update=True)
    _check_version(deal, data.expected_version)
    stages = {
        s.id: s
        for s in (
            await session.scalars(select(Stage).where(Stage.pipeline_id == deal.pipeline_id))
        ).all()
    }
    target = stages.get(data.stage_id)
    if target is None:
        raise InvalidInput.on("stageId", "no such stage in the deal's pipeline")
    current = stages[deal.stage_id]
    if target.id == current.id:
        raise Conflict(f"The deal is already at {target.name}")
    if target.entry_roles is not None and actor.role.value not in target.entry_roles:
        raise StageRuleBroken(
            errors=[
                FieldError(field="stageId", reason=f"your role cannot move deals to {target.name}")
            ]
        )
    if target.allowed_from is not None and current.id not in target.allowed_from:
        allowed = ", ".join(stages[s].name for s in target.allowed_from if s in stages)
        raise StageRuleBroken(
            errors=[
                FieldError(
                    field="stageId",
                    reason=f"{target.name} can be reached only from: {allowed or 'nowhere'}",
                )
            ]
        )
    before = {
        "stage": current.name,
        "scheduled_start": deal.scheduled_start,
        "scheduled_end": deal.scheduled_end,
        "lost_reason": deal.lost_reason,
    }
    if data.scheduled_start is not None or data.scheduled_end is not None:
        start = data.scheduled_start or deal.scheduled_start
        _check_schedule(start, data.scheduled_end)
        deal.scheduled_start = _utc(start)
        deal.scheduled_end = _utc(data.scheduled_end)
    if data.lost_reason is not None:
        deal.lost_reason = data.lost_reason
    errors = await _unmet(session, deal, target)
    if errors:
        raise StageRuleBroken(
            f"{target.name} needs: " + "; ".join(e.reason for e in errors), errors=errors
        )
    seconds = int((now - deal.stage_entered_at).total_seconds())
    deal.stage_id = target.id
    deal.stage_entered_at = now
    deal.version += 1
    deal.closed_at = now if target.kind is not StageKind.OPEN else None
    session.add(
        DealStageChange(
            id=uuid.uuid4(),
            organization_id=deal.organization_id,
            deal_id=deal.id,
            from_stage_id=current.id,
            to_stage_id=target.id,
            actor_id=actor.user_id,
            changed_at=now,
            seconds_in_previous=max(seconds, 0),
            comment=data.comment,
        )
    )
    session.add(
        Interaction(
            id=uuid.uuid4(),
            organization_id=deal.organization_id,
            customer_id=deal.customer_id,
            deal_id=deal.id,
            kind=InteractionKind.STAGE_CHANGE,
            author_id=actor.user_id,
            occurred_at=now,
            outcome=target.name[:200],
            body=data.comment,
        )
    )
    await session.flush()
    after = {
        "stage": target.name,
        "scheduled_start": deal.scheduled_start,
        "scheduled_end": deal.scheduled_end,
        "lost_reason": deal.lost_reason,
    }
    await audit.record(
        session,
        organization_id=deal.organization_id,
        entity="deal",
        entity_id=deal.id,
        action="stage_changed",
        actor_id=actor.user_id,
        at=now,
        changes=audit.diff(before, after),
    )
    organization = await organization_of(session, deal.organization_id)
    entry = await load_entry(session, deal, target, organization, actor.user_id, now, storage)
    return deal, await run_stage_automations(session, entry)


async def log_call(
    session: AsyncSession, actor: Actor, deal_id: uuid.UUID, data: schemas.CallIn, now: datetime
) -> Interaction:
    """Record a call on the deal (and the customer's timeline); with ``taskId`` the call task
    is completed with the call's outcome."""
    deal = await visible_deal(session, actor, deal_id)
    if data.occurred_at is not None and data.occurred_at.tzinfo is None:
        raise InvalidInput.on("occurredAt", "needs a time zone offset")
    row = Interaction(
        id=uuid.uuid4(),
        organization_id=deal.organization_id,
        customer_id=deal.customer_id,
        deal_id=deal.id,
        kind=InteractionKind.CALL,
        author_id=actor.user_id,
        occurred_at=data.occurred_at or now,
        outcome=data.outcome,
        body=data.notes,
        duration_s=data.duration_s,
    )
    session.add(row)
    if data.task_id is not None:
        task = await session.scalar(
            select(Task)
            .where(
                Task.id == data.task_id,
                Task.deal_id == deal.id,
                Task.organization_id == deal.organization_id,
            )
            .with_for_update()
        )
        if task is None or task.kind is not TaskKind.CALL:
            raise InvalidInput.on("taskId", "no such call task on this deal")
        if task.status in (TaskStatus.OPEN, TaskStatus.IN_PROGRESS):
            task.status = TaskStatus.DONE
            task.outcome = data.outcome
            task.started_at = task.started_at or now
            task.completed_at = now
    await session.flush()
    return row


async def deal_timeline(
    session: AsyncSession, actor: Actor, deal_id: uuid.UUID, *, limit: int, cursor: str | None
) -> Page[Any]:
    """Calls, visits, notes and stage changes of the deal, newest first."""
    from backend.customers.services import interaction_out

    deal = await visible_deal(session, actor, deal_id)
    stmt = keyset_desc(
        select(Interaction).where(
            Interaction.deal_id == deal.id, Interaction.organization_id == deal.organization_id
        ),
        Interaction.occurred_at,
        Interaction.id,
        cursor,
        limit,
    )
    rows = (await session.scalars(stmt)).all()
    return page_of([interaction_out(r) for r in rows], limit, lambda i: [i.occurred_at, i.id])


async def stage_history(
    session: AsyncSession, actor: Actor, deal_id: uuid.UUID
) -> list[schemas.StageChangeOut]:
    """Every stage the deal was in, oldest first, with times."""
    deal = await visible_deal(session, actor, deal_id)
    rows = await session.scalars(
        select(DealStageChange)
        .where(DealStageChange.deal_id == deal.id)
        .order_by(DealStageChange.changed_at, DealStageChange.id)
    )
    return [
        schemas.StageChangeOut(
            id=r.id,
            from_stage_id=r.from_stage_id,
            to_stage_id=r.to_stage_id,
            actor_id=r.actor_id,
            changed_at=r.changed_at,
            seconds_in_previous=r.seconds_in_previous,
            comment=r.comment,
        )
        for r in rows.all()
    ]


async def audit_log(
    session: AsyncSession, actor: Actor, deal_id: uuid.UUID
) -> list[schemas.AuditOut]:
    """The deal's audit log, oldest first (managers and admins)."""
    actor.require_role(Role.ADMIN, Role.MANAGER)
    deal = await visible_deal(session, actor, deal_id)
    rows = await session.scalars(
        select(AuditEntry)
        .where(
            AuditEntry.organization_id == deal.organization_id,
            AuditEntry.entity == "deal",
            AuditEntry.entity_id == deal.id,
        )
        .order_by(AuditEntry.at, AuditEntry.id)
        .limit(1000)
    )
    return [
        schemas.AuditOut(id=r.id, action=r.action, actor_id=r.actor_id, changes=r.changes, at=r.at)
        for r in rows.all()
    ]
