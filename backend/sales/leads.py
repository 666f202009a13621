"""Lead capture: a request from the company's website becomes a customer and a deal.

The public endpoints call ``capture_lead`` with the form's key. In order:
1. the form must exist and be active (unknown keys are 404);
2. rate limit per client IP (shared by all processes, see ``backend.lib.ratelimit``; the hit
   commits on its own, so refused requests count too);
3. the honeypot field filled in → answer as if accepted, store nothing;
4. the customer is found by phone (E.164) or email, or created;
5. the owner is the manager whose territory contains the site (territory forms), else the
   existing customer's active manager, else the next active manager in round robin;
6. the deal starts at the first stage of the form's pipeline, with the source, UTM parameters
   and referrer, and that stage's automations run (e.g. "call back within 15 minutes").
"""

from __future__ import annotations

import secrets
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import func, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from backend.accounts.models import Organization, Role, User
from backend.customers.geocoding import Geocoder
from backend.customers.models import (
    Contact,
    Customer,
    CustomerKind,
    Interaction,
    InteractionKind,
    Site,
)
from backend.customers.services import point_wkt, refresh_search_fields
from backend.db.counters import next_value_committed
from backend.documents.storage import FileStorage
from backend.lib import ratelimit
from backend.lib.errors import InvalidInput, NotFound
from backend.lib.validation import normalize_email, normalize_phone, region_of_locale
from backend.sales import schemas
from backend.sales.automations import Effects
from backend.sales.models import AssignmentRule, Deal, LeadForm, Territory
from backend.sales.services import first_stage, start_deal

RATE_WINDOW = timedelta(minutes=1)


@dataclass
class LeadOutcome:
    """What became of a submission."""

    accepted: bool
    reference: str
    thank_you: str
    deal: Deal | None = None
    effects: Effects | None = None
    rate_limited: bool = False


async def active_form(session: AsyncSession, key: str) -> tuple[LeadForm, Organization]:
    """The active form with this key and its organisation; 404 otherwise."""
    row = (
        await session.execute(
            select(LeadForm, Organization)
            .join(Organization, Organization.id == LeadForm.organization_id)
            .where(LeadForm.key == key, LeadForm.is_active)
        )
    ).one_or_none()
    if row is None:
        raise NotFound("Form not found")
    return row[0], row[1]


async def _find_customer(
    session: AsyncSession, organization_id: uuid.UUID, phone: str | None, email: str | None
) -> Customer | None:
    matches = []
    if phone:
        matches.append(Contact.phone == phone)
    if email:
        matches.append(func.lower(Contact.email) == email)
    return await session.scalar(
        select(Customer)
        .join(Contact, Contact.customer_id == Customer.id)
        .where(Contact.organization_id == organization_id, or_(*matches))
        .order_by(Customer.created_at)
        .limit(1)
    )


async def _active_manager(session: AsyncSession, user_id: uuid.UUID | None) -> bool:
    if user_id is None:
        return False
    role = await session.scalar(select(User.role).where(User.id == user_id, User.is_active))
    return role in (Role.MANAGER, Role.ADMIN)


async def _territory_manager(
    session: AsyncSession, organization_id: uuid.UUID, lat: float, lon: float
) -> uuid.UUID | None:
    found: uuid.UUID | None = await session.scalar(
        select(Territory.manager_id)
        .join(User, User.id == Territory.manager_id)
        .where(
            Territory.organization_id == organization_id,
            User.is_active,
            func.ST_Covers(Territory.area, func.ST_GeogFromText(point_wkt(lat, lon))),
        )
        .order_by(Territory.created_at)
        .limit(1)
    )
    return found


async def _round_robin_manager(
    session: AsyncSession, organization_id: uuid.UUID
) -> uuid.UUID | None:
    managers = list(
        (
            await session.scalars(
                select(User.id)
                .where(
                    User.organization_id == organization_id,
                    User.role == Role.MANAGER,
                    User.is_active,
                )
                .order_by(User.id)
            )
        ).all()
    )
    if not managers:
        return None
    position = await next_value_committed(session, organization_id, "leads:round_robin")
    return managers[(position - 1) % len(managers)]


def _contact_values(data: schemas.LeadIn, region: str | None) -> tuple[str | None, str | None]:
    phone = (
        normalize_phone(data.phone, "phone", region) if data.phone and data.phone.strip() else None
    )
    email = normalize_email(data.email, "email") if data.email and data.email.strip() else None
    if phone is None and email is None:
        raise InvalidInput.on("phone", "leave a phone number or an email address")
    if (data.lat is None) != (data.lon is None):
        raise InvalidInput.on("lat", "give both lat and lon, or neither")
    return phone, email


def _attribution(form: LeadForm, data: schemas.LeadIn, referrer: str | None) -> dict[str, Any]:
    utm = {
        key: value
        for key, value in (
            ("source", data.utm_source),
            ("medium", data.utm_medium),
            ("campaign", data.utm_campaign),
            ("term", data.utm_term),
            ("content", data.utm_content),
        )
        if value
    }
    return {
        "channel": "web_form",
        "formId": str(form.id),
        "formName": form.name,
        "utm": utm,
        "referrer": data.referrer or referrer,
    }


async def capture_lead(
    session: AsyncSession,
    key: str,
    data: schemas.LeadIn,
    *,
    client_ip: str,
    referrer: str | None,
    now: datetime,
    storage: FileStorage,
    geocoder: Geocoder | None,
    rate_per_minute: int,
) -> LeadOutcome:
    """Turn one website request into a deal (see the module docstring for the rules)."""
    form, organization = await active_form(session, key)
    allowed = await ratelimit.hit(
        session, f"lead:{client_ip}", now=now, limit=rate_per_minute, window=RATE_WINDOW
    )
    if not allowed:
        return LeadOutcome(False, "", form.thank_you, rate_limited=True)
    if data.website and data.website.strip():
        # A bot filled in the hidden field: look accepted, keep nothing.
        return LeadOutcome(False, secrets.token_hex(4).upper(), form.thank_you)
    phone, email = _contact_values(data, region_of_locale(organization.locale))
    name = data.name.strip()
    if not name:
        raise InvalidInput.on("name", "required")
    customer = await _find_customer(session, organization.id, phone, email)
    lat, lon = data.lat, data.lon
    if lat is None and data.address and geocoder is not None:
        found = await geocoder.geocode(data.address)
        if found is not None:
            lat, lon = found
    owner_id: uuid.UUID | None = None
    if form.assignment is AssignmentRule.TERRITORY and lat is not None and lon is not None:
        owner_id = await _territory_manager(session, organization.id, lat, lon)
    if (
        owner_id is None
        and customer is not None
        and await _active_manager(session, customer.owner_id)
    ):
        owner_id = customer.owner_id
    if owner_id is None:
        owner_id = await _round_robin_manager(session, organization.id)
    if customer is None:
        customer = Customer(
            id=uuid.uuid4(),
            organization_id=organization.id,
            kind=CustomerKind.PERSON,
            name=name[:300],
            owner_id=owner_id,
            source=form.source,
        )
        session.add(customer)
        await session.flush()  # no ORM relationship orders the contact after its customer
        session.add(
            Contact(
                id=uuid.uuid4(),
                organization_id=organization.id,
                customer_id=customer.id,
                name=name[:200],
                phone=phone,
                email=email,
            )
        )
        await session.flush()
        await refresh_search_fields(session, customer)
    site_id = None
    if lat is not None and lon is not None:
        site = Site(
            id=uuid.uuid4(),
            organization_id=organization.id,
            customer_id=customer.id,
            address=(data.address or "").strip() or f"{lat:.6f}, {lon:.6f}",
            location=point_wkt(lat, lon),
        )
        session.add(site)
        site_id = site.id
    else:
        site_id = await session.scalar(
            select(Site.id)
            .where(Site.customer_id == customer.id)
            .order_by(Site.created_at)
            .limit(1)
        )
    stage = await first_stage(session, form.pipeline_id)
    deal, effects = await start_deal(
        session,
        organization=organization,
        stage=stage,
        customer_id=customer.id,
        site_id=site_id,
        title=f"{form.deal_title}: {name}"[:300],
        owner_id=owner_id,
        actor_id=None,
        now=now,
        storage=storage,
        source=form.source,
        attribution=_attribution(form, data, referrer),
    )
    body = "\n".join(part for part in (data.message, data.address) if part)
    if body:
        session.add(
            Interaction(
                id=uuid.uuid4(),
                organization_id=organization.id,
                customer_id=customer.id,
                deal_id=deal.id,
                kind=InteractionKind.NOTE,
                occurred_at=now,
                outcome="web form",
                body=body[:10_000],
            )
        )
        await session.flush()
    return LeadOutcome(True, str(deal.id).split("-")[0].upper(), form.thank_you, deal, effects)
