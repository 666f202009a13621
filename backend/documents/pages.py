"""Admin pages for document templates: the list, editing a template's Jinja/HTML body, and a
preview rendered on the server with sample data (the organisation's own name and payment
details, a made-up deal). Admins only; saving goes through the same service as the JSON API
(``config_services.save_document_template``), and a template that does not compile or render
comes back with the reason (and line) next to the body."""

from __future__ import annotations

import uuid
from datetime import datetime
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

from litestar import Controller, Request, get, post
from litestar.response import Redirect, Template
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from backend.accounts.admin_pages import PAGE_ERRORS, admin_me
from backend.accounts.models import Organization, User
from backend.accounts.services import get_organization
from backend.documents import schemas
from backend.documents.render import CONTEXT_VARIABLES, default_template, render_html
from backend.documents.render import validate_template as check_template
from backend.lib.clock import Clock
from backend.lib.errors import AppError, NotFound
from backend.lib.forms import checked, field_errors, in_savepoint, read_form, text, to_input
from backend.lib.tenancy import Actor
from backend.sales import config_services as services


def sample_context(organization: Organization, now: datetime) -> dict[str, Any]:
    """Made-up document variables (every key ``backend.documents.render`` documents) with the
    organisation's own name, currency and payment details."""
    zone = ZoneInfo(organization.time_zone)
    items = [
        {
            "name": "Window, two-pane, 1200×1400",
            "quantity": Decimal("2"),
            "unitPrice": Decimal("18500.00"),
            "total": Decimal("37000.00"),
            "unit": "pcs",
        },
        {
            "name": "Installation",
            "quantity": Decimal("1"),
            "unitPrice": Decimal("6000.00"),
            "total": Decimal("6000.00"),
            "unit": None,
        },
    ]
    return {
        "deal": {
            "title": "Windows for the living room",
            "number": "SAMPLE1",
            "amount": Decimal("43000.00"),
            "currency": organization.currency,
            "line_items": items,
            "scheduled_at": now.astimezone(zone),
        },
        "customer": {"name": "Anna Sample", "phone": "+79001234567", "email": "anna@example.com"},
        "site": {"address": "1 Sample Street, flat 2"},
        "organization": {
            "name": organization.name,
            "payment_details": dict(organization.payment_details),
        },
        "service": items[0]["name"],
        "generated_at": now.astimezone(zone),
        "document": {"number": 1, "version": 1},
    }


def preview(organization: Organization, html: str, now: datetime) -> str:
    """The template rendered on sample data; ``InvalidInput`` on ``html`` (with the line) when
    it would not be accepted or does not render."""
    check_template(html)
    return render_html(html, sample_context(organization, now))


class DocumentTemplatePages(Controller):
    """``/admin/templates``."""

    path = "/admin/templates"
    include_in_schema = False
    exception_handlers = PAGE_ERRORS

    @get("/")
    async def templates(self, db_session: AsyncSession, actor: Actor) -> Template:
        """The organisation's templates."""
        me = await admin_me(db_session, actor)
        templates = await services.list_document_templates(db_session, actor)
        return Template("admin/templates.html", context={"me": me, "templates": templates})

    async def _form(
        self,
        session: AsyncSession,
        actor: Actor,
        me: User,
        *,
        template: schemas.TemplateOut | None,
        values: dict[str, Any],
        errors: dict[str, str],
        rendered: str | None = None,
        status_code: int = 200,
        saved: bool = False,
    ) -> Template:
        return Template(
            "admin/template_form.html",
            context={
                "me": me,
                "template": template,
                "v": values,
                "errors": errors,
                "rendered": rendered,
                "variables": sorted(CONTEXT_VARIABLES),
                "saved": saved,
            },
            status_code=status_code,
        )

    async def _find(
        self, session: AsyncSession, actor: Actor, template_id: uuid.UUID
    ) -> schemas.TemplateOut:
        for row in await services.list_document_templates(session, actor):
            if row.id == template_id:
                return row
        raise NotFound("Template not found")

    @get("/new")
    async def new(self, db_session: AsyncSession, actor: Actor) -> Template:
        """A new template, starting from the built-in invoice in the organisation's language."""
        me = await admin_me(db_session, actor)
        org = await get_organization(db_session, actor)
        values = {"name": "", "html": default_template(org.locale), "isActive": True}
        return await self._form(db_session, actor, me, template=None, values=values, errors={})

    @get("/{template_id:uuid}")
    async def edit(
        self, template_id: uuid.UUID, db_session: AsyncSession, actor: Actor, saved: bool = False
    ) -> Template:
        """One template's name and body."""
        me = await admin_me(db_session, actor)
        row = await self._find(db_session, actor, template_id)
        values = {"name": row.name, "html": row.html, "isActive": row.is_active}
        return await self._form(
            db_session, actor, me, template=row, values=values, errors={}, saved=saved
        )

    @post("/", status_code=303)
    async def create(
        self, request: Request[Any, Any, Any], db_session: AsyncSession, actor: Actor, clock: Clock
    ) -> Redirect | Template:
        """Create a template (or show its preview when the Preview button was pressed)."""
        return await self._save(request, db_session, actor, clock, None)

    @post("/{template_id:uuid}", status_code=303)
    async def save(
        self,
        template_id: uuid.UUID,
        request: Request[Any, Any, Any],
        db_session: AsyncSession,
        actor: Actor,
        clock: Clock,
    ) -> Redirect | Template:
        """Save a template (a changed body is a new version), or preview it."""
        return await self._save(request, db_session, actor, clock, template_id)

    async def _save(
        self,
        request: Request[Any, Any, Any],
        session: AsyncSession,
        actor: Actor,
        clock: Clock,
        template_id: uuid.UUID | None,
    ) -> Redirect | Template:
        me = await admin_me(session, actor)
        template = await self._find(session, actor, template_id) if template_id else None
        form = await read_form(request)
        html = str(form.get("html") or "")
        values: dict[str, Any] = {
            "name": text(form, "name"),
            "html": html,
            "isActive": checked(form, "isActive"),
        }
        if text(form, "intent") == "preview":
            org = await get_organization(session, actor)
            try:
                rendered = preview(org, html, clock.now())
            except AppError as exc:
                return await self._form(
                    session,
                    actor,
                    me,
                    template=template,
                    values=values,
                    errors=field_errors(exc),
                    status_code=exc.status,
                )
            return await self._form(
                session, actor, me, template=template, values=values, errors={}, rendered=rendered
            )
        try:
            data = to_input(values, schemas.TemplateIn)
            saved = await in_savepoint(
                session,
                lambda: services.save_document_template(
                    session, actor, data, clock.now(), template_id
                ),
            )
        except AppError as exc:
            return await self._form(
                session,
                actor,
                me,
                template=template,
                values=values,
                errors=field_errors(exc),
                status_code=exc.status,
            )
        except IntegrityError:
            # The unique (organisation, name) index: the API answers this 409 too.
            return await self._form(
                session,
                actor,
                me,
                template=template,
                values=values,
                errors={"name": "another template has this name"},
                status_code=409,
            )
        return Redirect(f"/admin/templates/{saved.id}?saved=1", status_code=303)
