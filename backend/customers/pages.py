"""Customer pages: the searchable list (an htmx request gets only the rows partial)."""

from __future__ import annotations

import uuid
from typing import Annotated, Any

import msgspec
from litestar import Controller, Request, get
from litestar.params import Parameter
from litestar.response import Redirect, Template
from sqlalchemy.ext.asyncio import AsyncSession

from backend.accounts.models import Role
from backend.accounts.services import get_user
from backend.config import Settings
from backend.customers import services
from backend.lib.forms import is_htmx
from backend.lib.pagination import Cursor
from backend.lib.tenancy import Actor


class CustomerPages(Controller):
    """``/`` and ``/customers``."""

    path = "/"
    include_in_schema = False

    @get("/")
    async def home(self, actor: Actor) -> Redirect:
        """Field staff start on their day; everyone else on the customer list."""
        return Redirect("/today" if actor.role is Role.FIELD else "/customers")

    @get("/customers")
    async def customers(
        self,
        request: Request[Any, Any, Any],
        db_session: AsyncSession,
        actor: Actor,
        q: Annotated[str | None, Parameter(max_length=200)] = None,
        cursor: Cursor = None,
    ) -> Template:
        """The customers the user may see, searchable by name, phone or email."""
        page = await services.list_customers(
            db_session, actor, q=q, owner_id=None, kind=None, limit=50, cursor=cursor
        )
        me = await get_user(db_session, actor, actor.user_id)
        context = {"page": page, "q": q or "", "me": me}
        partial = is_htmx(request)
        return Template(
            "customers/_rows.html" if partial else "customers/list.html", context=context
        )

    @get("/customers/{customer_id:uuid}")
    async def customer(
        self, customer_id: uuid.UUID, db_session: AsyncSession, actor: Actor, settings: Settings
    ) -> Template:
        """One customer: contacts, sites (on a small map) and the latest timeline."""
        customer = await services.visible_customer(db_session, actor, customer_id)
        detail = await services.customer_out(db_session, customer)
        timeline = await services.list_interactions(
            db_session, actor, customer_id, kind=None, limit=20, cursor=None
        )
        me = await get_user(db_session, actor, actor.user_id)
        sites = [
            {"lat": s.lat, "lon": s.lon, "label": s.label or s.address or "site"}
            for s in detail.sites
        ]
        context = {
            "c": detail,
            "timeline": timeline.items,
            "me": me,
            "sites_json": msgspec.json.encode(sites).decode(),
            "has_sites": bool(sites),
            "tiles": settings.map_tile_url,
        }
        return Template("customers/detail.html", context=context)
