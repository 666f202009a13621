"""Business rules of customers: visibility, search, contacts, sites and the timeline.

A customer is visible when the caller may see its owner (see ``backend.lib.tenancy``); contacts,
sites and interactions are reached only through a visible customer.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

import msgspec
from sqlalchemy import ColumnElement, Select, collate, delete, func, or_, select, true, union
from sqlalchemy.ext.asyncio import AsyncSession

from backend.accounts.models import Role, User
from backend.appraisal import rfm
from backend.customers import schemas
from backend.customers.geocoding import Geocoder
from backend.customers.models import (
    SITE_LAT,
    SITE_LON,
    Contact,
    Customer,
    CustomerKind,
    Interaction,
    InteractionKind,
    Site,
)
from backend.customers.search import QueryKind, classify, escape_like, search_fields
from backend.lib.errors import InvalidInput, NotFound
from backend.lib.pagination import Page, decode_cursor, page_of
from backend.lib.tenancy import Actor, scope
from backend.lib.validation import normalize_email, normalize_phone
from backend.lib.visibility import customer_visible

_NAME_KEY = collate(func.lower(Customer.name), "C")
# Below this many characters a name query matches only the start of the name (index-backed).
MIN_WORD_SEARCH = 3

# --- customers --------------------------------------------------------------------------------


def _visible(actor: Actor) -> Select[Customer]:
    return scope(select(Customer), actor, Customer.organization_id).where(customer_visible(actor))


async def visible_customer(
    session: AsyncSession, actor: Actor, customer_id: uuid.UUID, *, for_update: bool = False
) -> Customer:
    """The customer if the caller may see it; 404 otherwise (also for other organisations)."""
    stmt = _visible(actor).where(Customer.id == customer_id)
    if for_update:
        stmt = stmt.with_for_update()
    customer = await session.scalar(stmt)
    if customer is None:
        raise NotFound("Customer not found")
    return customer


async def name_and_first_contact(
    session: AsyncSession, customer_id: uuid.UUID
) -> tuple[str, str | None, str | None]:
    """The customer's name and the phone and email of their first contact (for documents and
    task texts)."""
    row = (
        await session.execute(
            select(Customer.name, Contact.phone, Contact.email)
            .outerjoin(Contact, Contact.customer_id == Customer.id)
            .where(Customer.id == customer_id)
            .order_by(Contact.created_at)
            .limit(1)
        )
    ).one()
    return row[0], row[1], row[2]


def _search_conditions(actor: Actor, q: str) -> list[ColumnElement[bool]]:
    """The conditions a query means; a row matching any of them is a hit."""
    query = classify(q, actor.phone_region)
    if query.kind is QueryKind.PHONE:
        if not query.text:
            return [true()]
        if query.exact_phone:
            # A whole number: an exact, indexed look-up of the contacts' E.164 phones.
            return [
                Customer.id.in_(
                    select(Contact.customer_id).where(
                        Contact.organization_id == actor.organization_id,
                        Contact.phone == query.text,
                    )
                )
            ]
        return [Customer.search_phones.like(f"%{escape_like(query.text)}%", escape="\\")]
    if query.kind is QueryKind.EMAIL:
        return [Customer.search_emails.like(f"%{escape_like(query.text)}%", escape="\\")]
    pattern = escape_like(query.text)
    name_prefix = _NAME_KEY.like(f"{pattern}%", escape="\\")
    if len(query.text) < MIN_WORD_SEARCH:
        # Trigrams need three characters; shorter text matches the start of the name only.
        return [name_prefix]
    # Two conditions, searched separately (see list_customers): the name starts with the text,
    # or a later word does.
    return [
        name_prefix,
        func.lower(Customer.name).like(f"% {pattern}%", escape="\\"),
    ]


def _first_page(stmt: Select[Any], limit: int) -> Select[Any]:
    return stmt.order_by(_NAME_KEY, Customer.id).limit(limit + 1)


def summary(customer: Customer) -> schemas.CustomerSummary:
    """The list row of a customer."""
    return schemas.CustomerSummary(
        id=customer.id,
        kind=customer.kind,
        name=customer.name,
        owner_id=customer.owner_id,
        phones=customer.search_phones.split(),
        emails=customer.search_emails.split(),
        created_at=customer.created_at,
    )


async def list_customers(
    session: AsyncSession,
    actor: Actor,
    *,
    q: str | None,
    owner_id: uuid.UUID | None,
    kind: CustomerKind | None,
    limit: int,
    cursor: str | None,
    segment: str | None = None,
) -> Page[schemas.CustomerSummary]:
    """Visible customers by name; ``q`` searches phone, email or name (see ``search``);
    ``segment`` keeps those in an RFM segment (``backend.appraisal.rfm``)."""
    stmt = _visible(actor)
    if segment is not None:
        stmt = stmt.where(rfm.in_segment(actor, segment))
    if owner_id is not None:
        stmt = stmt.where(Customer.owner_id == owner_id)
    if kind is not None:
        stmt = stmt.where(Customer.kind == kind)
    if cursor:
        name, last_id = decode_cursor(cursor, (str, uuid.UUID))
        stmt = stmt.where(or_(_NAME_KEY > name, (_NAME_KEY == name) & (Customer.id > last_id)))
    conditions = _search_conditions(actor, q) if q and q.strip() else [true()]
    if len(conditions) == 1:
        stmt = _first_page(stmt.where(conditions[0]), limit)
    else:
        # Each alternative gets its own ordered, limited scan and the union is merged: one OR
        # makes PostgreSQL walk the name index hoping matches are spread evenly, and prefix
        # matches all sit together (75 000 rows read for "Саг" in 100 000 customers).
        branches = [
            _first_page(stmt.where(c), limit).with_only_columns(Customer.id) for c in conditions
        ]
        hits = union(*branches).subquery()
        stmt = _first_page(select(Customer).where(Customer.id.in_(select(hits.c.id))), limit)
    rows = (await session.scalars(stmt)).all()
    return page_of([summary(c) for c in rows], limit, lambda c: [c.name.lower(), str(c.id)])


async def _check_owner(session: AsyncSession, actor: Actor, owner_id: uuid.UUID) -> None:
    """An owner must be an active user of the organisation the caller may assign work to."""
    if not actor.may_see_owner(owner_id):
        raise InvalidInput.on("ownerId", "you cannot assign customers to this user")
    active = await session.scalar(
        select(User.is_active).where(
            User.id == owner_id, User.organization_id == actor.organization_id
        )
    )
    if not active:
        raise InvalidInput.on("ownerId", "no such active user in the organisation")


def _contact_values(actor: Actor, data: schemas.ContactIn, prefix: str) -> dict[str, Any]:
    phone = (
        normalize_phone(data.phone, f"{prefix}phone", actor.phone_region) if data.phone else None
    )
    email = normalize_email(data.email, f"{prefix}email") if data.email else None
    if phone is None and email is None:
        raise InvalidInput.on(f"{prefix}phone", "a contact needs a phone or an email")
    return {
        "name": data.name.strip(),
        "position": data.position,
        "phone": phone,
        "email": email,
    }


async def _point(
    data: schemas.SiteIn, geocoder: Geocoder | None, prefix: str
) -> tuple[float, float]:
    if (data.lat is None) != (data.lon is None):
        missing = "lat" if data.lat is None else "lon"
        raise InvalidInput.on(f"{prefix}{missing}", "give both lat and lon, or neither")
    if data.lat is not None and data.lon is not None:
        return data.lat, data.lon
    if geocoder is None:
        raise InvalidInput.on(
            f"{prefix}lat", "lat and lon are required (no geocoder is configured)"
        )
    found = await geocoder.geocode(data.address)
    if found is None:
        raise InvalidInput.on(
            f"{prefix}address", "the address could not be located; give lat and lon"
        )
    return found


def point_wkt(lat: float, lon: float) -> str:
    """EWKT of a WGS 84 point; longitude comes first."""
    return f"SRID=4326;POINT({lon!r} {lat!r})"


async def refresh_search_fields(session: AsyncSession, customer: Customer) -> None:
    """Recompute the derived phone/email search columns from the customer's contacts."""
    rows = (
        await session.execute(
            select(Contact.phone, Contact.email)
            .where(Contact.customer_id == customer.id)
            .order_by(Contact.created_at, Contact.id)
        )
    ).all()
    customer.search_phones, customer.search_emails = search_fields(
        (r.phone for r in rows), (r.email for r in rows)
    )


async def create_customer(
    session: AsyncSession, actor: Actor, data: schemas.CustomerCreate, geocoder: Geocoder | None
) -> Customer:
    """A customer with its contacts and sites, all or nothing. The owner defaults to the caller."""
    owner_id = data.owner_id or actor.user_id
    await _check_owner(session, actor, owner_id)
    contacts = [_contact_values(actor, c, f"contacts[{i}].") for i, c in enumerate(data.contacts)]
    points = [await _point(s, geocoder, f"sites[{i}].") for i, s in enumerate(data.sites)]
    customer = Customer(
        id=uuid.uuid4(),
        organization_id=actor.organization_id,
        kind=data.kind,
        name=data.name.strip(),
        owner_id=owner_id,
        source=data.source,
        notes=data.notes,
    )
    customer.search_phones, customer.search_emails = search_fields(
        (c["phone"] for c in contacts), (c["email"] for c in contacts)
    )
    session.add(customer)
    await session.flush()
    for values in contacts:
        session.add(
            Contact(
                id=uuid.uuid4(),
                organization_id=actor.organization_id,
                customer_id=customer.id,
                **values,
            )
        )
    for site, (lat, lon) in zip(data.sites, points, strict=True):
        session.add(_site(actor, customer.id, site, lat, lon))
    await session.flush()
    return customer


def _site(
    actor: Actor, customer_id: uuid.UUID, data: schemas.SiteIn, lat: float, lon: float
) -> Site:
    return Site(
        id=uuid.uuid4(),
        organization_id=actor.organization_id,
        customer_id=customer_id,
        label=data.label,
        address=data.address.strip(),
        location=point_wkt(lat, lon),
        access_notes=data.access_notes,
    )


async def customer_out(session: AsyncSession, customer: Customer) -> schemas.CustomerOut:
    """The full customer with contacts and sites."""
    contacts = (
        await session.scalars(
            select(Contact)
            .where(Contact.customer_id == customer.id)
            .order_by(Contact.created_at, Contact.id)
        )
    ).all()
    return schemas.CustomerOut(
        id=customer.id,
        kind=customer.kind,
        name=customer.name,
        owner_id=customer.owner_id,
        source=customer.source,
        notes=customer.notes,
        contacts=[contact_out(c) for c in contacts],
        sites=await sites_out(session, customer.id),
        created_at=customer.created_at,
        updated_at=customer.updated_at,
    )


def contact_out(contact: Contact) -> schemas.ContactOut:
    """Response body of a contact."""
    return schemas.ContactOut(
        id=contact.id,
        name=contact.name,
        position=contact.position,
        phone=contact.phone,
        email=contact.email,
    )


async def sites_out(
    session: AsyncSession, customer_id: uuid.UUID, site_id: uuid.UUID | None = None
) -> list[schemas.SiteOut]:
    """A customer's sites (or one of them) with coordinates."""
    stmt = select(Site.id, Site.label, Site.address, SITE_LAT, SITE_LON, Site.access_notes).where(
        Site.customer_id == customer_id
    )
    if site_id is not None:
        stmt = stmt.where(Site.id == site_id)
    rows = (await session.execute(stmt.order_by(Site.created_at, Site.id))).all()
    return [
        schemas.SiteOut(id=r[0], label=r[1], address=r[2], lat=r[3], lon=r[4], access_notes=r[5])
        for r in rows
    ]


async def update_customer(
    session: AsyncSession, actor: Actor, customer_id: uuid.UUID, data: schemas.CustomerUpdate
) -> Customer:
    """Change a visible customer; only admins and managers reassign the owner."""
    customer = await visible_customer(session, actor, customer_id, for_update=True)
    if data.kind is not msgspec.UNSET:
        customer.kind = data.kind
    if data.name is not msgspec.UNSET:
        customer.name = data.name.strip()
    if data.source is not msgspec.UNSET:
        customer.source = data.source
    if data.notes is not msgspec.UNSET:
        customer.notes = data.notes
    if data.owner_id is not msgspec.UNSET and data.owner_id != customer.owner_id:
        actor.require_role(Role.ADMIN, Role.MANAGER)
        if data.owner_id is not None:
            await _check_owner(session, actor, data.owner_id)
        elif not actor.is_admin:
            raise InvalidInput.on("ownerId", "only admins leave a customer without an owner")
        customer.owner_id = data.owner_id
    await session.flush()
    return customer


async def delete_customer(session: AsyncSession, actor: Actor, customer_id: uuid.UUID) -> None:
    """Admins and managers delete a visible customer with everything attached to it."""
    actor.require_role(Role.ADMIN, Role.MANAGER)
    customer = await visible_customer(session, actor, customer_id, for_update=True)
    await session.delete(customer)
    await session.flush()


# --- contacts ---------------------------------------------------------------------------------


async def _contact(session: AsyncSession, customer: Customer, contact_id: uuid.UUID) -> Contact:
    contact = await session.scalar(
        select(Contact).where(Contact.id == contact_id, Contact.customer_id == customer.id)
    )
    if contact is None:
        raise NotFound("Contact not found")
    return contact


async def add_contact(
    session: AsyncSession, actor: Actor, customer_id: uuid.UUID, data: schemas.ContactIn
) -> Contact:
    """Add a contact to a visible customer."""
    customer = await visible_customer(session, actor, customer_id, for_update=True)
    contact = Contact(
        id=uuid.uuid4(),
        organization_id=actor.organization_id,
        customer_id=customer.id,
        **_contact_values(actor, data, ""),
    )
    session.add(contact)
    await session.flush()
    await refresh_search_fields(session, customer)
    return contact


async def update_contact(
    session: AsyncSession,
    actor: Actor,
    customer_id: uuid.UUID,
    contact_id: uuid.UUID,
    data: schemas.ContactUpdate,
) -> Contact:
    """Change a contact of a visible customer."""
    customer = await visible_customer(session, actor, customer_id, for_update=True)
    contact = await _contact(session, customer, contact_id)
    merged = schemas.ContactIn(
        name=contact.name if data.name is msgspec.UNSET else data.name,
        position=contact.position if data.position is msgspec.UNSET else data.position,
        phone=contact.phone if data.phone is msgspec.UNSET else data.phone,
        email=contact.email if data.email is msgspec.UNSET else data.email,
    )
    for key, value in _contact_values(actor, merged, "").items():
        setattr(contact, key, value)
    await session.flush()
    await refresh_search_fields(session, customer)
    return contact


async def delete_contact(
    session: AsyncSession, actor: Actor, customer_id: uuid.UUID, contact_id: uuid.UUID
) -> None:
    """Remove a contact of a visible customer."""
    customer = await visible_customer(session, actor, customer_id, for_update=True)
    contact = await _contact(session, customer, contact_id)
    await session.delete(contact)
    await session.flush()
    await refresh_search_fields(session, customer)


# --- sites ------------------------------------------------------------------------------------


async def add_site(
    session: AsyncSession,
    actor: Actor,
    customer_id: uuid.UUID,
    data: schemas.SiteIn,
    geocoder: Geocoder | None,
) -> schemas.SiteOut:
    """Add a site (address and point) to a visible customer."""
    customer = await visible_customer(session, actor, customer_id)
    lat, lon = await _point(data, geocoder, "")
    site = _site(actor, customer.id, data, lat, lon)
    session.add(site)
    await session.flush()
    return (await sites_out(session, customer.id, site.id))[0]


async def _site_of(session: AsyncSession, customer: Customer, site_id: uuid.UUID) -> Site:
    site = await session.scalar(
        select(Site).where(Site.id == site_id, Site.customer_id == customer.id)
    )
    if site is None:
        raise NotFound("Site not found")
    return site


async def update_site(
    session: AsyncSession,
    actor: Actor,
    customer_id: uuid.UUID,
    site_id: uuid.UUID,
    data: schemas.SiteUpdate,
) -> schemas.SiteOut:
    """Change a site of a visible customer; a new point needs both lat and lon."""
    customer = await visible_customer(session, actor, customer_id)
    site = await _site_of(session, customer, site_id)
    if (data.lat is msgspec.UNSET) != (data.lon is msgspec.UNSET):
        missing = "lat" if data.lat is msgspec.UNSET else "lon"
        raise InvalidInput.on(missing, "give both lat and lon to move a site")
    if data.lat is not msgspec.UNSET and data.lon is not msgspec.UNSET:
        site.location = point_wkt(data.lat, data.lon)
    if data.address is not msgspec.UNSET:
        site.address = data.address.strip()
    if data.label is not msgspec.UNSET:
        site.label = data.label
    if data.access_notes is not msgspec.UNSET:
        site.access_notes = data.access_notes
    await session.flush()
    return (await sites_out(session, customer.id, site.id))[0]


async def delete_site(
    session: AsyncSession, actor: Actor, customer_id: uuid.UUID, site_id: uuid.UUID
) -> None:
    """Remove a site of a visible customer."""
    customer = await visible_customer(session, actor, customer_id)
    await session.execute(
        delete(Site).where(Site.id == (await _site_of(session, customer, site_id)).id)
    )


# --- interactions -----------------------------------------------------------------------------


def interaction_out(row: Interaction) -> schemas.InteractionOut:
    """Response body of a timeline entry."""
    return schemas.InteractionOut(
        id=row.id,
        kind=row.kind,
        author_id=row.author_id,
        deal_id=row.deal_id,
        occurred_at=row.occurred_at,
        outcome=row.outcome,
        body=row.body,
        duration_s=row.duration_s,
        created_at=row.created_at,
    )


async def add_interaction(
    session: AsyncSession,
    actor: Actor,
    customer_id: uuid.UUID,
    data: schemas.InteractionIn,
    now: datetime,
) -> Interaction:
    """Record a call, email, visit or note on a visible customer's timeline."""
    if data.kind is InteractionKind.STAGE_CHANGE:
        raise InvalidInput.on("kind", "stage changes are recorded by the pipeline")
    if data.occurred_at is not None and data.occurred_at.tzinfo is None:
        raise InvalidInput.on(
            "occurredAt", "needs a time zone offset (e.g. 2026-11-24T10:00:00+03:00)"
        )
    customer = await visible_customer(session, actor, customer_id)
    row = Interaction(
        id=uuid.uuid4(),
        organization_id=actor.organization_id,
        customer_id=customer.id,
        kind=data.kind,
        author_id=actor.user_id,
        occurred_at=data.occurred_at or now,
        outcome=data.outcome,
        body=data.body,
        duration_s=data.duration_s,
    )
    session.add(row)
    await session.flush()
    return row


async def list_interactions(
    session: AsyncSession,
    actor: Actor,
    customer_id: uuid.UUID,
    *,
    kind: InteractionKind | None,
    limit: int,
    cursor: str | None,
) -> Page[schemas.InteractionOut]:
    """A visible customer's timeline, newest first."""
    customer = await visible_customer(session, actor, customer_id)
    stmt = select(Interaction).where(
        Interaction.customer_id == customer.id, Interaction.organization_id == actor.organization_id
    )
    if kind is not None:
        stmt = stmt.where(Interaction.kind == kind)
    if cursor:
        at, last_id = decode_cursor(cursor, (datetime, uuid.UUID))
        stmt = stmt.where(
            or_(
                Interaction.occurred_at < at,
                (Interaction.occurred_at == at) & (Interaction.id < last_id),
            )
        )
    rows = (
        await session.scalars(
            stmt.order_by(Interaction.occurred_at.desc(), Interaction.id.desc()).limit(limit + 1)
        )
    ).all()
    return page_of(
        [interaction_out(r) for r in rows], limit, lambda r: [r.occurred_at.isoformat(), str(r.id)]
    )
