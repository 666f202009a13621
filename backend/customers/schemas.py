"""Request and response bodies of the customers API (camelCase JSON)."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated

import msgspec

from backend.accounts.schemas import Input, Output
from backend.customers.models import CustomerKind, InteractionKind

Text200 = Annotated[str, msgspec.Meta(min_length=1, max_length=200)]
Latitude = Annotated[float, msgspec.Meta(ge=-90, le=90)]
Longitude = Annotated[float, msgspec.Meta(ge=-180, le=180)]
LongText = Annotated[str, msgspec.Meta(max_length=10_000)]


class ContactIn(Input):
    name: Text200
    position: Annotated[str, msgspec.Meta(max_length=200)] | None = None
    phone: Annotated[str, msgspec.Meta(max_length=40)] | None = None
    email: Annotated[str, msgspec.Meta(max_length=320)] | None = None


class ContactUpdate(Input):
    name: Text200 | msgspec.UnsetType = msgspec.UNSET
    position: Annotated[str, msgspec.Meta(max_length=200)] | msgspec.UnsetType | None = (
        msgspec.UNSET
    )
    phone: Annotated[str, msgspec.Meta(max_length=40)] | msgspec.UnsetType | None = msgspec.UNSET
    email: Annotated[str, msgspec.Meta(max_length=320)] | msgspec.UnsetType | None = msgspec.UNSET


class ContactOut(Output):
    id: uuid.UUID
    name: str
    position: str | None
    phone: str | None
    email: str | None


class SiteIn(Input):
    """A place; give ``lat`` and ``lon`` (WGS 84) unless a geocoder is configured."""

    address: Annotated[str, msgspec.Meta(min_length=1, max_length=1000)]
    label: Annotated[str, msgspec.Meta(max_length=200)] | None = None
    lat: Latitude | None = None
    lon: Longitude | None = None
    access_notes: Annotated[str, msgspec.Meta(max_length=2000)] | None = None


class SiteUpdate(Input):
    address: Annotated[str, msgspec.Meta(min_length=1, max_length=1000)] | msgspec.UnsetType = (
        msgspec.UNSET
    )
    label: Annotated[str, msgspec.Meta(max_length=200)] | msgspec.UnsetType | None = msgspec.UNSET
    lat: Latitude | msgspec.UnsetType = msgspec.UNSET
    lon: Longitude | msgspec.UnsetType = msgspec.UNSET
    access_notes: Annotated[str, msgspec.Meta(max_length=2000)] | msgspec.UnsetType | None = (
        msgspec.UNSET
    )


class SiteOut(Output):
    id: uuid.UUID
    label: str | None
    address: str
    lat: float
    lon: float
    access_notes: str | None


class CustomerCreate(Input):
    kind: CustomerKind
    name: Annotated[str, msgspec.Meta(min_length=1, max_length=300)]
    owner_id: uuid.UUID | None = None
    source: Annotated[str, msgspec.Meta(max_length=100)] | None = None
    notes: LongText | None = None
    contacts: Annotated[list[ContactIn], msgspec.Meta(max_length=50)] = []
    sites: Annotated[list[SiteIn], msgspec.Meta(max_length=50)] = []


class CustomerUpdate(Input):
    kind: CustomerKind | msgspec.UnsetType = msgspec.UNSET
    name: Annotated[str, msgspec.Meta(min_length=1, max_length=300)] | msgspec.UnsetType = (
        msgspec.UNSET
    )
    owner_id: uuid.UUID | msgspec.UnsetType | None = msgspec.UNSET
    source: Annotated[str, msgspec.Meta(max_length=100)] | msgspec.UnsetType | None = msgspec.UNSET
    notes: LongText | msgspec.UnsetType | None = msgspec.UNSET


class CustomerSummary(Output):
    """A row of the customer list."""

    id: uuid.UUID
    kind: CustomerKind
    name: str
    owner_id: uuid.UUID | None
    phones: list[str]
    emails: list[str]
    created_at: datetime


class CustomerOut(Output):
    id: uuid.UUID
    kind: CustomerKind
    name: str
    owner_id: uuid.UUID | None
    source: str | None
    notes: str | None
    contacts: list[ContactOut]
    sites: list[SiteOut]
    created_at: datetime
    updated_at: datetime


class InteractionIn(Input):
    """Something that happened with the customer. Stage changes are recorded by the system."""

    kind: InteractionKind
    occurred_at: datetime | None = None
    outcome: Annotated[str, msgspec.Meta(max_length=200)] | None = None
    body: LongText | None = None
    duration_s: Annotated[int, msgspec.Meta(ge=0, le=86_400)] | None = None


class InteractionOut(Output):
    id: uuid.UUID
    kind: InteractionKind
    author_id: uuid.UUID | None
    deal_id: uuid.UUID | None
    occurred_at: datetime
    outcome: str | None
    body: str | None
    duration_s: int | None
    created_at: datetime


class ImportRowError(Output):
    row: int
    field: str
    reason: str


class ImportResult(Output):
    """What a CSV import did: rows imported (with ``dryRun``: rows that would be), and the rows
    refused with the reason."""

    total_rows: int
    imported: int
    dry_run: bool
    errors: list[ImportRowError]
