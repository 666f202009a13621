"""Everything the visit page shows about one visit, read with the API's visibility rules:
the task, its customer and contacts, the site, the deal with its stage and the stage a deal may
go to next from here, the visit's files and check-ins."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from backend.customers.models import SITE_LAT, SITE_LON, Contact, Customer, Site
from backend.documents import services as documents
from backend.documents.schemas import AttachmentOut
from backend.lib.errors import NotFound
from backend.lib.tenancy import Actor
from backend.sales import services as sales
from backend.sales.models import Deal, Stage, StageKind
from backend.tasks import services as tasks
from backend.tasks.models import VISIT_KINDS, Task
from backend.tracking.models import CheckIn


@dataclass(frozen=True, slots=True)
class SiteView:
    """Where the visit happens."""

    address: str
    access_notes: str | None
    lat: float
    lon: float


@dataclass(frozen=True, slots=True)
class DealView:
    """The visit's deal, its stage, and the next stage when the caller may move it there."""

    deal: Deal
    stage: Stage
    next_stage: Stage | None
    next_blocked: str | None
    """Why the caller cannot move the deal on (a role rule), or None."""


@dataclass(slots=True)
class VisitView:
    """One visit as the page shows it."""

    task: Task
    customer: Customer | None
    contacts: list[Contact]
    site: SiteView | None
    deal: DealView | None
    files: list[AttachmentOut]
    check_ins: list[CheckIn]
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def phone(self) -> str | None:
        """The first contact phone (for the call button)."""
        return next((c.phone for c in self.contacts if c.phone), None)

    @property
    def last_check_in(self) -> CheckIn | None:
        """The latest check-in or check-out."""
        return self.check_ins[-1] if self.check_ins else None


def next_stage_of(
    stages: list[Stage], current: Stage, role: str
) -> tuple[Stage | None, str | None]:
    """The first later stage (by position, never a "lost" one) a deal may enter from
    ``current``, and why ``role`` may not move it there (None when it may). The stage's other
    requirements are checked by the sales service when the move is asked for."""
    for stage in sorted(stages, key=lambda s: s.position):
        if stage.position <= current.position or stage.kind is StageKind.LOST:
            continue
        if stage.allowed_from is not None and current.id not in stage.allowed_from:
            continue
        if stage.entry_roles is not None and role not in stage.entry_roles:
            return stage, f"only {', '.join(stage.entry_roles)} can move deals to {stage.name}"
        return stage, None
    return None, None


async def _deal_view(session: AsyncSession, actor: Actor, deal_id: uuid.UUID) -> DealView | None:
    try:
        deal = await sales.visible_deal(session, actor, deal_id)
    except NotFound:
        return None
    stages = list(
        (await session.scalars(select(Stage).where(Stage.pipeline_id == deal.pipeline_id))).all()
    )
    current = next(s for s in stages if s.id == deal.stage_id)
    upcoming, blocked = next_stage_of(stages, current, actor.role.value)
    return DealView(deal, current, upcoming, blocked)


async def load_visit(session: AsyncSession, actor: Actor, task_id: uuid.UUID) -> VisitView:
    """The visit if the caller may see it (the API's task visibility); 404 for anything else,
    including tasks that are not visits."""
    task = await tasks.visible_task(session, actor, task_id)
    if task.kind not in VISIT_KINDS:
        raise NotFound("Visit not found")
    customer = None
    contacts: list[Contact] = []
    if task.customer_id is not None:
        customer = await session.scalar(
            select(Customer).where(
                Customer.id == task.customer_id, Customer.organization_id == actor.organization_id
            )
        )
        contacts = list(
            (
                await session.scalars(
                    select(Contact)
                    .where(
                        Contact.customer_id == task.customer_id,
                        Contact.organization_id == actor.organization_id,
                    )
                    .order_by(Contact.created_at, Contact.id)
                )
            ).all()
        )
    site = None
    if task.site_id is not None:
        row = (
            await session.execute(
                select(Site.address, Site.access_notes, SITE_LAT, SITE_LON).where(
                    Site.id == task.site_id, Site.organization_id == actor.organization_id
                )
            )
        ).first()
        if row is not None:
            site = SiteView(row[0], row[1], float(row[2]), float(row[3]))
    deal = await _deal_view(session, actor, task.deal_id) if task.deal_id else None
    files = await documents.list_task_attachments(session, actor, task_id=task.id)
    check_ins = list(
        (
            await session.scalars(
                select(CheckIn)
                .where(CheckIn.task_id == task.id, CheckIn.organization_id == actor.organization_id)
                .order_by(CheckIn.at, CheckIn.id)
            )
        ).all()
    )
    return VisitView(task, customer, contacts, site, deal, files, check_ins)


async def deal_of_visit(session: AsyncSession, actor: Actor, task_id: uuid.UUID) -> Deal:
    """The deal of a visible visit (422-free: 404 when the visit has none)."""
    task = await tasks.visible_task(session, actor, task_id)
    if task.kind not in VISIT_KINDS or task.deal_id is None:
        raise NotFound("The visit has no deal")
    return await sales.visible_deal(session, actor, task.deal_id)
