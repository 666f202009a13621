"""Customers, their contacts, sites and the interaction timeline."""

from __future__ import annotations

import enum
import uuid
from datetime import datetime

from geoalchemy2 import Geography
from sqlalchemy import (
    CheckConstraint,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    collate,
    func,
)
from sqlalchemy.dialects.postgresql import UUID
from sqlalchemy.orm import Mapped, mapped_column

from backend.db.base import Base, TenantMixin, pg_enum


class CustomerKind(enum.StrEnum):
    """A private person or a company."""

    PERSON = "person"
    COMPANY = "company"


class InteractionKind(enum.StrEnum):
    """What happened on the customer's timeline."""

    CALL = "call"
    EMAIL = "email"
    VISIT = "visit"
    NOTE = "note"
    STAGE_CHANGE = "stage_change"


class Customer(Base, TenantMixin):
    """Someone the company sells to. ``owner_id`` is the responsible user (drives visibility).

    ``search_phones`` / ``search_emails`` are derived from the contacts by
    ``backend.customers.search.search_fields`` so one trigram index answers a phone or email
    search without a join.
    """

    __tablename__ = "customers"

    kind: Mapped[CustomerKind] = mapped_column(
        pg_enum(CustomerKind, "customer_kind"), nullable=False
    )
    name: Mapped[str] = mapped_column(String(300), nullable=False)
    owner_id: Mapped[uuid.UUID | None] = mapped_column(
        UUID(as_uuid=True), ForeignKey("users.id", ondelete="SET NULL")
    )
    source: Mapped[str | None] = mapped_column(String(100))
    notes: Mapped[str | None] = mapped_column(Text)
    search_phones: Mapped[str] = mapped_column(Text, nullable=False, default="")
    search_emails: Mapped[str] = mapped_column(Text, nullable=False, default="")

    __table_args__ = (
        # Byte-order ("C") collation: serves both `LIKE 'prefix%'` and ORDER BY for keyset pages.
        Index("ix_customers_org_name", "organization_id", collate(func.lower(name), "C"), "id"),
        Index("ix_customers_org_owner", "organization_id", "owner_id"),
        Index(
            "ix_customers_name_trgm",
            func.lower(name).label("lname_trgm"),
            postgresql_using="gin",
            postgresql_ops={"lname_trgm": "gin_trgm_ops"},
        ),
        Index(
            "ix_customers_phones_trgm",
            "search_phones",
            postgresql_using="gin",
            postgresql_ops={"search_phones": "gin_trgm_ops"},
        ),
        Index(
            "ix_customers_emails_trgm",
            "search_emails",
            postgresql_using="gin",
            postgresql_ops={"search_emails": "gin_trgm_ops"},
        ),
    )


class Contact(Base, TenantMixin):
    """A person to talk to at a customer; phone in E.164, email lower-cased."""

    __tablename__ = "contacts"

    customer_id: Mapped[uuid.UUID] = mapped_column(
        UUID(as_uuid=True),
        ForeignKey("customers.id", ondelete="CASCADE"),
        nullable=False,
        index=True,
    )
    name: Mapped[str] = mapped_column(String(200), nullable=False)
    position: Mapped[str | None] = mapped_column(String(200))
    phone: Mapped[str | None] = mapped_column(String(20))
    email: Mapped[str | None] = mapped_column(String(320))

    __table_args__ = (
        Index("ix_contacts_org_phone", "organization_id", "phone"),
        CheckConstraint("phone IS NULL OR phone ~ '^\\+[1-9][0-9]{6,14}$'", name="phone_e164"),
        CheckConstraint("phone IS NOT NULL OR email IS NOT NULL", name="reachable"),
    )


class Site(Base, TenantMixin):
    """A place where work happens: address text plus a geography point (lon/lat, WGS 84)."""

    __tablename__ = "sites"

    customer_id: Mapped[uuid.UUID] = mapped_column(
        UUID(as_uuid=True),
        ForeignKey("customers.id", ondelete="CASCADE"),
        nullable=False,
        index=True,
    )
    label: Mapped[str | None] = mapped_column(String(200))
    address: Mapped[str] = mapped_column(Text, nullable=False)
    location: Mapped[str] = mapped_column(
        Geography(geometry_type="POINT", srid=4326, spatial_index=False), nullable=False
    )
    access_notes: Mapped[str | None] = mapped_column(Text)

    __table_args__ = (
        Index("ix_sites_location", "location", postgresql_using="gist"),
        CheckConstraint(
            "ST_Y(location::geometry) BETWEEN -90 AND 90"
            " AND ST_X(location::geometry) BETWEEN -180 AND 180",
            name="location_range",
        ),
    )


class Interaction(Base, TenantMixin):
    """One event on a customer's timeline (call, email, visit, note, stage change)."""

    __tablename__ = "interactions"

    customer_id: Mapped[uuid.UUID] = mapped_column(
        UUID(as_uuid=True), ForeignKey("customers.id", ondelete="CASCADE"), nullable=False
    )
    kind: Mapped[InteractionKind] = mapped_column(
        pg_enum(InteractionKind, "interaction_kind"), nullable=False
    )
    author_id: Mapped[uuid.UUID | None] = mapped_column(
        UUID(as_uuid=True), ForeignKey("users.id", ondelete="SET NULL")
    )
    # Calls and stage changes made while working a deal are on the deal's timeline too.
    deal_id: Mapped[uuid.UUID | None] = mapped_column(
        UUID(as_uuid=True), ForeignKey("deals.id", ondelete="SET NULL")
    )
    occurred_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False)
    outcome: Mapped[str | None] = mapped_column(String(200))
    body: Mapped[str | None] = mapped_column(Text)
    duration_s: Mapped[int | None] = mapped_column(Integer)

    __table_args__ = (
        Index("ix_interactions_customer_time", "customer_id", "occurred_at", "id"),
        Index(
            "ix_interactions_deal_time",
            "deal_id",
            "occurred_at",
            postgresql_where="deal_id IS NOT NULL",
        ),
        Index("ix_interactions_org_kind_time", "organization_id", "kind", "occurred_at"),
        CheckConstraint("duration_s IS NULL OR duration_s >= 0", name="duration_positive"),
    )


SITE_LAT = func.ST_Y(func.geometry(Site.location))
"""A site's latitude, as a column expression for queries."""
SITE_LON = func.ST_X(func.geometry(Site.location))
"""A site's longitude, as a column expression for queries."""
