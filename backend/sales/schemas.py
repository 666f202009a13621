"""Request and response bodies of the sales API: pipelines, stages, automations, deals, leads."""

from __future__ import annotations

import uuid
from datetime import date, datetime
from decimal import Decimal
from typing import Annotated, Any, Literal

import msgspec

from backend.accounts.schemas import Input, Output
from backend.sales.models import AssignmentRule, AutomationAction, Requirement, StageKind
from backend.tasks.schemas import TaskOut

Name = Annotated[str, msgspec.Meta(min_length=1, max_length=200)]
# Decimal bounds are checked by the services (msgspec has no bounds for Decimal).
Money = Decimal
Currency = Annotated[str, msgspec.Meta(pattern="^[A-Z]{3}$")]


# --- pipelines and stages ---------------------------------------------------------------------


class StageIn(Input):
    name: Annotated[str, msgspec.Meta(min_length=1, max_length=100)]
    kind: StageKind = StageKind.OPEN
    position: Annotated[int, msgspec.Meta(ge=0, le=1000)] | None = None
    requirements: list[Requirement] = []
    # Names or ids of the stages a deal may come from; None: any.
    allowed_from: list[uuid.UUID] | None = None
    entry_roles: list[Literal["admin", "manager", "field"]] | None = None


class StageUpdate(Input):
    name: Annotated[str, msgspec.Meta(min_length=1, max_length=100)] | msgspec.UnsetType = (
        msgspec.UNSET
    )
    kind: StageKind | msgspec.UnsetType = msgspec.UNSET
    position: Annotated[int, msgspec.Meta(ge=0, le=1000)] | msgspec.UnsetType = msgspec.UNSET
    requirements: list[Requirement] | msgspec.UnsetType = msgspec.UNSET
    allowed_from: list[uuid.UUID] | msgspec.UnsetType | None = msgspec.UNSET
    entry_roles: list[Literal["admin", "manager", "field"]] | msgspec.UnsetType | None = (
        msgspec.UNSET
    )


class AutomationIn(Input):
    """``config`` depends on ``action``; see ``backend.sales.automations`` and the README."""

    name: Name
    action: AutomationAction
    config: dict[str, Any]
    position: Annotated[int, msgspec.Meta(ge=0, le=1000)] = 0
    is_active: bool = True


class AutomationUpdate(Input):
    name: Name | msgspec.UnsetType = msgspec.UNSET
    config: dict[str, Any] | msgspec.UnsetType = msgspec.UNSET
    position: Annotated[int, msgspec.Meta(ge=0, le=1000)] | msgspec.UnsetType = msgspec.UNSET
    is_active: bool | msgspec.UnsetType = msgspec.UNSET


class AutomationOut(Output):
    id: uuid.UUID
    stage_id: uuid.UUID
    name: str
    action: AutomationAction
    config: dict[str, Any]
    position: int
    is_active: bool


class StageOut(Output):
    id: uuid.UUID
    name: str
    kind: StageKind
    position: int
    requirements: list[str]
    allowed_from: list[uuid.UUID] | None
    entry_roles: list[str] | None
    automations: list[AutomationOut]


class PipelineIn(Input):
    name: Name
    is_default: bool = False
    stages: list[StageIn] = []


class PipelineOut(Output):
    id: uuid.UUID
    name: str
    is_default: bool
    stages: list[StageOut]


# --- deals ------------------------------------------------------------------------------------


class LineItem(Input):
    name: Annotated[str, msgspec.Meta(min_length=1, max_length=300)]
    quantity: Decimal
    unit_price: Money
    unit: Annotated[str, msgspec.Meta(max_length=20)] | None = None


class LineItemOut(Output):
    name: str
    quantity: Decimal
    unit_price: Decimal
    total: Decimal
    unit: str | None = None


class DealCreate(Input):
    customer_id: uuid.UUID
    title: Annotated[str, msgspec.Meta(min_length=1, max_length=300)]
    site_id: uuid.UUID | None = None
    pipeline_id: uuid.UUID | None = None
    owner_id: uuid.UUID | None = None
    amount: Money | None = None
    currency: Currency | None = None
    line_items: list[LineItem] = []
    source: Annotated[str, msgspec.Meta(max_length=100)] | None = None
    expected_close: date | None = None


class DealUpdate(Input):
    """Change deal fields; stages change through ``POST /deals/{id}/stage``. With
    ``lineItems`` and no ``amount`` the amount becomes the sum of the items."""

    title: Annotated[str, msgspec.Meta(min_length=1, max_length=300)] | msgspec.UnsetType = (
        msgspec.UNSET
    )
    site_id: uuid.UUID | msgspec.UnsetType | None = msgspec.UNSET
    owner_id: uuid.UUID | msgspec.UnsetType = msgspec.UNSET
    amount: Money | msgspec.UnsetType | None = msgspec.UNSET
    currency: Currency | msgspec.UnsetType = msgspec.UNSET
    line_items: list[LineItem] | msgspec.UnsetType = msgspec.UNSET
    source: Annotated[str, msgspec.Meta(max_length=100)] | msgspec.UnsetType | None = msgspec.UNSET
    expected_close: date | msgspec.UnsetType | None = msgspec.UNSET
    scheduled_start: datetime | msgspec.UnsetType | None = msgspec.UNSET
    scheduled_end: datetime | msgspec.UnsetType | None = msgspec.UNSET
    expected_version: int | None = None


class StageMove(Input):
    """Move a deal to ``stageId``. Fields the target stage needs may be given here."""

    stage_id: uuid.UUID
    scheduled_start: datetime | None = None
    scheduled_end: datetime | None = None
    lost_reason: Annotated[str, msgspec.Meta(min_length=1, max_length=300)] | None = None
    comment: Annotated[str, msgspec.Meta(max_length=2000)] | None = None
    expected_version: int | None = None


class DealOut(Output):
    id: uuid.UUID
    title: str
    pipeline_id: uuid.UUID
    stage_id: uuid.UUID
    stage_name: str
    stage_kind: StageKind
    customer_id: uuid.UUID
    customer_name: str
    site_id: uuid.UUID | None
    owner_id: uuid.UUID | None
    amount: Decimal | None
    currency: str
    line_items: list[LineItemOut]
    source: str | None
    attribution: dict[str, Any]
    expected_close: date | None
    lost_reason: str | None
    scheduled_start: datetime | None
    scheduled_end: datetime | None
    stage_entered_at: datetime
    closed_at: datetime | None
    version: int
    created_at: datetime


class DocumentRef(Output):
    id: uuid.UUID
    title: str
    number: int
    version: int
    attachment_id: uuid.UUID


class StageChangeResult(Output):
    """The moved deal and what its automations made."""

    deal: DealOut
    tasks: list[TaskOut]
    documents: list[DocumentRef]
    notifications: int


class StageChangeOut(Output):
    id: uuid.UUID
    from_stage_id: uuid.UUID | None
    to_stage_id: uuid.UUID
    actor_id: uuid.UUID | None
    changed_at: datetime
    seconds_in_previous: int | None
    comment: str | None


class AuditOut(Output):
    id: uuid.UUID
    action: str
    actor_id: uuid.UUID | None
    changes: dict[str, Any]
    at: datetime


class CallIn(Input):
    """A call made while working the deal."""

    outcome: Annotated[str, msgspec.Meta(min_length=1, max_length=200)]
    duration_s: Annotated[int, msgspec.Meta(ge=0, le=86_400)] | None = None
    notes: Annotated[str, msgspec.Meta(max_length=10_000)] | None = None
    occurred_at: datetime | None = None
    # Close this (call) task with the call's outcome.
    task_id: uuid.UUID | None = None


# --- lead capture -----------------------------------------------------------------------------


class LeadIn(Input):
    """A request from the website. ``website`` is the honeypot: people leave it empty."""

    name: Annotated[str, msgspec.Meta(min_length=1, max_length=200)]
    phone: Annotated[str, msgspec.Meta(max_length=40)] | None = None
    email: Annotated[str, msgspec.Meta(max_length=320)] | None = None
    message: Annotated[str, msgspec.Meta(max_length=5000)] | None = None
    address: Annotated[str, msgspec.Meta(max_length=1000)] | None = None
    lat: Annotated[float, msgspec.Meta(ge=-90, le=90)] | None = None
    lon: Annotated[float, msgspec.Meta(ge=-180, le=180)] | None = None
    utm_source: Annotated[str, msgspec.Meta(max_length=200)] | None = None
    utm_medium: Annotated[str, msgspec.Meta(max_length=200)] | None = None
    utm_campaign: Annotated[str, msgspec.Meta(max_length=200)] | None = None
    utm_term: Annotated[str, msgspec.Meta(max_length=200)] | None = None
    utm_content: Annotated[str, msgspec.Meta(max_length=200)] | None = None
    referrer: Annotated[str, msgspec.Meta(max_length=1000)] | None = None
    website: Annotated[str, msgspec.Meta(max_length=1000)] | None = None


class LeadAccepted(Output):
    """Public answer: no internal ids beyond the request reference."""

    status: Literal["accepted"]
    reference: str
    message: str


class LeadFormIn(Input):
    name: Name
    pipeline_id: uuid.UUID | None = None
    source: Annotated[str, msgspec.Meta(min_length=1, max_length=100)] = "website"
    assignment: AssignmentRule = AssignmentRule.ROUND_ROBIN
    deal_title: Annotated[str, msgspec.Meta(min_length=1, max_length=300)] = "Request"
    thank_you: Annotated[str, msgspec.Meta(min_length=1, max_length=2000)] = (
        "Thank you! We will call you back shortly."
    )


class LeadFormOut(Output):
    id: uuid.UUID
    key: str
    name: str
    pipeline_id: uuid.UUID
    source: str
    assignment: AssignmentRule
    deal_title: str
    thank_you: str
    is_active: bool
    url: str
    embed_code: str


class TerritoryIn(Input):
    """``area`` is a GeoJSON Polygon or MultiPolygon (lon, lat)."""

    name: Name
    manager_id: uuid.UUID
    area: dict[str, Any]


class TerritoryOut(Output):
    id: uuid.UUID
    name: str
    manager_id: uuid.UUID
    area: dict[str, Any]
