"""Request and response bodies of the accounts API (camelCase JSON)."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated

import msgspec

from backend.accounts.models import Role, Skill

Password = Annotated[str, msgspec.Meta(min_length=10, max_length=200)]
Name = Annotated[str, msgspec.Meta(min_length=1, max_length=200)]
Email = Annotated[str, msgspec.Meta(min_length=3, max_length=320)]
TimeZone = Annotated[str, msgspec.Meta(min_length=1, max_length=64)]
Latitude = Annotated[float, msgspec.Meta(ge=-90, le=90)]
Longitude = Annotated[float, msgspec.Meta(ge=-180, le=180)]


class Input(msgspec.Struct, rename="camel", forbid_unknown_fields=True, kw_only=True):
    """Base of request bodies: camelCase, unknown fields refused."""


class Output(msgspec.Struct, rename="camel", kw_only=True):
    """Base of response bodies."""


class LoginInput(Input):
    email: Email
    password: Annotated[str, msgspec.Meta(min_length=1, max_length=200)]


class RefreshInput(Input):
    refresh_token: Annotated[str, msgspec.Meta(min_length=10, max_length=200)]


class TokenPair(Output):
    access_token: str
    refresh_token: str
    expires_in: int
    token_type: str = "Bearer"  # noqa: S105 - the OAuth token type, not a secret


class PasswordChangeInput(Input):
    current_password: Annotated[str, msgspec.Meta(min_length=1, max_length=200)]
    new_password: Password


class PaymentDetails(msgspec.Struct, rename="camel", forbid_unknown_fields=True, kw_only=True):
    """What documents print so the customer can pay."""

    recipient: str | None = None
    bank_name: str | None = None
    account_number: str | None = None
    correspondent_account: str | None = None
    iban: str | None = None
    bic: str | None = None
    tax_id: str | None = None
    note: str | None = None


class OrganizationOut(Output):
    id: uuid.UUID
    name: str
    time_zone: str
    currency: str
    locale: str
    payment_details: PaymentDetails
    created_at: datetime


class OrganizationUpdate(Input):
    name: Name | msgspec.UnsetType = msgspec.UNSET
    time_zone: TimeZone | msgspec.UnsetType = msgspec.UNSET
    currency: str | msgspec.UnsetType = msgspec.UNSET
    locale: Annotated[str, msgspec.Meta(min_length=2, max_length=16)] | msgspec.UnsetType = (
        msgspec.UNSET
    )
    payment_details: PaymentDetails | msgspec.UnsetType = msgspec.UNSET


class UserOut(Output):
    id: uuid.UUID
    email: str
    full_name: str
    role: Role
    skills: list[Skill]
    phone: str | None
    time_zone: str
    is_active: bool
    created_at: datetime
    # Where a field worker's day starts and ends (home or depot); both or neither.
    base_lat: float | None = None
    base_lon: float | None = None


class UserCreate(Input):
    email: Email
    full_name: Name
    role: Role
    password: Password
    skills: list[Skill] = []
    phone: str | None = None
    time_zone: TimeZone | None = None
    base_lat: Latitude | None = None
    base_lon: Longitude | None = None
    # Teams the new user joins.
    team_ids: list[uuid.UUID] = []


class UserUpdate(Input):
    full_name: Name | msgspec.UnsetType = msgspec.UNSET
    role: Role | msgspec.UnsetType = msgspec.UNSET
    skills: list[Skill] | msgspec.UnsetType = msgspec.UNSET
    phone: str | msgspec.UnsetType | None = msgspec.UNSET
    time_zone: TimeZone | msgspec.UnsetType = msgspec.UNSET
    is_active: bool | msgspec.UnsetType = msgspec.UNSET
    # Send both (numbers, or null to clear the base).
    base_lat: Latitude | msgspec.UnsetType | None = msgspec.UNSET
    base_lon: Longitude | msgspec.UnsetType | None = msgspec.UNSET
    # The user's teams (replaces every membership of the user).
    team_ids: list[uuid.UUID] | msgspec.UnsetType = msgspec.UNSET


class TeamOut(Output):
    id: uuid.UUID
    name: str
    lead_id: uuid.UUID | None
    member_ids: list[uuid.UUID]
    created_at: datetime


class TeamCreate(Input):
    name: Name
    lead_id: uuid.UUID | None = None
    member_ids: list[uuid.UUID] = []


class TeamUpdate(Input):
    name: Name | msgspec.UnsetType = msgspec.UNSET
    lead_id: uuid.UUID | msgspec.UnsetType | None = msgspec.UNSET
    member_ids: list[uuid.UUID] | msgspec.UnsetType = msgspec.UNSET
