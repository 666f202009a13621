"""JSON API of customers: search and lists, contacts, sites, timeline and CSV import."""

from __future__ import annotations

import uuid
from typing import Annotated

from litestar import Controller, Request, delete, get, patch, post
from litestar.datastructures import State
from litestar.params import Parameter, QueryParameter
from litestar.status_codes import HTTP_201_CREATED, HTTP_204_NO_CONTENT
from sqlalchemy.ext.asyncio import AsyncSession

from backend.customers import importer, schemas, services
from backend.customers.models import CustomerKind, InteractionKind
from backend.lib.clock import Clock
from backend.lib.pagination import DEFAULT_LIMIT, Cursor, Limit, Page
from backend.lib.tenancy import Actor

Query = Annotated[str | None, Parameter(max_length=200, description="name, phone or email")]


class CustomerController(Controller):
    """Customers and what hangs off them."""

    path = "/api/v1/customers"
    tags = ["customers"]

    @get("/")
    async def list_customers(
        self,
        db_session: AsyncSession,
        actor: Actor,
        q: Query = None,
        owner_id: Annotated[uuid.UUID | None, QueryParameter(name="ownerId")] = None,
        kind: CustomerKind | None = None,
        limit: Limit = DEFAULT_LIMIT,
        cursor: Cursor = None,
        segment: Annotated[
            str | None,
            Parameter(max_length=32, description="RFM segment (champions, loyal, at_risk...)"),
        ] = None,
    ) -> Page[schemas.CustomerSummary]:
        """Visible customers by name. ``q`` searches by phone (any part of the number), email, or
        the start of any word of the name; ``segment`` keeps an RFM segment's customers."""
        return await services.list_customers(
            db_session,
            actor,
            q=q,
            owner_id=owner_id,
            kind=kind,
            limit=limit,
            cursor=cursor,
            segment=segment,
        )

    @post("/", status_code=HTTP_201_CREATED)
    async def create_customer(
        self, data: schemas.CustomerCreate, db_session: AsyncSession, actor: Actor, state: State
    ) -> schemas.CustomerOut:
        """Create a customer with contacts and sites in one go."""
        customer = await services.create_customer(db_session, actor, data, state.geocoder)
        return await services.customer_out(db_session, customer)

    @post(
        "/import",
        status_code=200,
        request_max_body_size=10_000_000,
        summary="Import customers from CSV",
    )
    async def import_customers(
        self,
        request: Request,  # type: ignore[type-arg]
        db_session: AsyncSession,
        actor: Actor,
        state: State,
        dry_run: Annotated[bool, QueryParameter(name="dryRun")] = False,
    ) -> schemas.ImportResult:
        """Send the CSV file as the body (``Content-Type: text/csv``) with a header row (see the
        README for the columns). Each valid row is imported whole; invalid rows are reported by
        number, field and reason. ``dryRun=true`` checks without writing."""
        data = await request.body()
        return await importer.import_csv(db_session, actor, data, state.geocoder, dry_run=dry_run)

    @get("/{customer_id:uuid}")
    async def get_customer(
        self, customer_id: uuid.UUID, db_session: AsyncSession, actor: Actor
    ) -> schemas.CustomerOut:
        """One customer with contacts and sites."""
        customer = await services.visible_customer(db_session, actor, customer_id)
        return await services.customer_out(db_session, customer)

    @patch("/{customer_id:uuid}")
    async def update_customer(
        self,
        customer_id: uuid.UUID,
        data: schemas.CustomerUpdate,
        db_session: AsyncSession,
        actor: Actor,
    ) -> schemas.CustomerOut:
        """Change a customer."""
        customer = await services.update_customer(db_session, actor, customer_id, data)
        return await services.customer_out(db_session, customer)

    @delete("/{customer_id:uuid}", status_code=HTTP_204_NO_CONTENT)
    async def delete_customer(
        self, customer_id: uuid.UUID, db_session: AsyncSession, actor: Actor
    ) -> None:
        """Delete a customer and everything attached (admins and managers)."""
        await services.delete_customer(db_session, actor, customer_id)

    @post("/{customer_id:uuid}/contacts", status_code=HTTP_201_CREATED)
    async def add_contact(
        self,
        customer_id: uuid.UUID,
        data: schemas.ContactIn,
        db_session: AsyncSession,
        actor: Actor,
    ) -> schemas.ContactOut:
        """Add a contact."""
        return services.contact_out(
            await services.add_contact(db_session, actor, customer_id, data)
        )

    @patch("/{customer_id:uuid}/contacts/{contact_id:uuid}")
    async def update_contact(
        self,
        customer_id: uuid.UUID,
        contact_id: uuid.UUID,
        data: schemas.ContactUpdate,
        db_session: AsyncSession,
        actor: Actor,
    ) -> schemas.ContactOut:
        """Change a contact."""
        contact = await services.update_contact(db_session, actor, customer_id, contact_id, data)
        return services.contact_out(contact)

    @delete("/{customer_id:uuid}/contacts/{contact_id:uuid}", status_code=HTTP_204_NO_CONTENT)
    async def delete_contact(
        self, customer_id: uuid.UUID, contact_id: uuid.UUID, db_session: AsyncSession, actor: Actor
    ) -> None:
        """Remove a contact."""
        await services.delete_contact(db_session, actor, customer_id, contact_id)

    @post("/{customer_id:uuid}/sites", status_code=HTTP_201_CREATED)
    async def add_site(
        self,
        customer_id: uuid.UUID,
        data: schemas.SiteIn,
        db_session: AsyncSession,
        actor: Actor,
        state: State,
    ) -> schemas.SiteOut:
        """Add a site."""
        return await services.add_site(db_session, actor, customer_id, data, state.geocoder)

    @patch("/{customer_id:uuid}/sites/{site_id:uuid}")
    async def update_site(
        self,
        customer_id: uuid.UUID,
        site_id: uuid.UUID,
        data: schemas.SiteUpdate,
        db_session: AsyncSession,
        actor: Actor,
    ) -> schemas.SiteOut:
        """Change a site."""
        return await services.update_site(db_session, actor, customer_id, site_id, data)

    @delete("/{customer_id:uuid}/sites/{site_id:uuid}", status_code=HTTP_204_NO_CONTENT)
    async def delete_site(
        self, customer_id: uuid.UUID, site_id: uuid.UUID, db_session: AsyncSession, actor: Actor
    ) -> None:
        """Remove a site."""
        await services.delete_site(db_session, actor, customer_id, site_id)

    @get("/{customer_id:uuid}/interactions")
    async def list_interactions(
        self,
        customer_id: uuid.UUID,
        db_session: AsyncSession,
        actor: Actor,
        kind: InteractionKind | None = None,
        limit: Limit = DEFAULT_LIMIT,
        cursor: Cursor = None,
    ) -> Page[schemas.InteractionOut]:
        """The customer's timeline, newest first."""
        return await services.list_interactions(
            db_session, actor, customer_id, kind=kind, limit=limit, cursor=cursor
        )

    @post("/{customer_id:uuid}/interactions", status_code=HTTP_201_CREATED)
    async def add_interaction(
        self,
        customer_id: uuid.UUID,
        data: schemas.InteractionIn,
        db_session: AsyncSession,
        actor: Actor,
        clock: Clock,
    ) -> schemas.InteractionOut:
        """Record a call, email, visit or note."""
        row = await services.add_interaction(db_session, actor, customer_id, data, clock.now())
        return services.interaction_out(row)


CONTROLLERS = [CustomerController]
