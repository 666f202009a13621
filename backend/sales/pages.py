"""The deal board (``/deals``: kanban by stage of a pipeline) and the deal card
(``/deals/{id}``: timeline, stage history, calls, files, documents, tasks).

Every change goes through the JSON API's services (``move_deal``, ``log_call``,
``generate_for_deal``) inside a savepoint: a refused change undoes its writes, and the page
shows the service's reasons next to the field (or on the deal's card on the board) with 422.
Managers and admins only; what they see is the API's visibility (own teams / organisation).
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Annotated, Any
from zoneinfo import ZoneInfo

import msgspec
from litestar import Controller, Request, get, post
from litestar.datastructures import State
from litestar.enums import RequestEncodingType
from litestar.params import Body, Parameter
from litestar.response import File, Redirect, Response, Template
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from backend.accounts.models import Role, User
from backend.accounts.services import get_user
from backend.customers import services as customer_services
from backend.customers.geocoding import Geocoder
from backend.customers.models import Customer
from backend.customers.schemas import SiteIn
from backend.documents import services as documents
from backend.documents.models import DocumentTemplate
from backend.lib.clock import Clock
from backend.lib.errors import AppError, InvalidInput
from backend.lib.forms import is_htmx
from backend.lib.tenancy import Actor, scope
from backend.lib.visibility import deal_visible
from backend.sales import config_services, schemas, services
from backend.sales.models import Deal, Stage, StageKind
from backend.tasks.models import ACTIVE_STATUSES, TaskStatus
from backend.tasks.services import list_tasks

# Deals per column: the newest of each open stage, fewer of the closed ones (won, lost).
COLUMN_LIMIT = 15
CLOSED_COLUMN_LIMIT = 5
# Stage requirements (``sales.models.Requirement``) in words, for the move form's hints.
REQUIREMENT_LABELS = {
    "scheduledTime": "a visit time",
    "site": "a site",
    "amount": "an amount",
    "lineItems": "line items",
    "attachment": "a file",
    "document": "a document",
    "lostReason": "a reason",
}
# Service field names → the form's field names.
FORM_FIELDS = {
    "stageId": "stage_id",
    "scheduledStart": "scheduled_start",
    "scheduledEnd": "scheduled_end",
    "lostReason": "lost_reason",
    "comment": "comment",
    "expectedVersion": "stage_id",
    "outcome": "outcome",
    "durationS": "duration_min",
    "notes": "notes",
    "template": "template",
    "taskId": "taskId",
    "siteId": "site_id",
    "address": "address",
    "accessNotes": "access_notes",
    "lat": "lat",
    "lon": "lon",
}


class MoveForm(msgspec.Struct):
    """The stage-move form (strings as browsers send them; checked in ``move_of``)."""

    stage_id: str = ""
    version: str = ""
    scheduled_start: str = ""
    scheduled_end: str = ""
    lost_reason: str = ""
    comment: str = ""
    pipeline: str = ""


class CallForm(msgspec.Struct):
    """The log-a-call form."""

    outcome: str = ""
    duration_min: str = ""
    notes: str = ""
    task_id: str = ""


class DocumentForm(msgspec.Struct):
    """The generate-a-document form."""

    template: str = ""


class SiteForm(msgspec.Struct):
    """Where the work is: one of the customer's sites, or a new one (address and point)."""

    site_id: str = ""
    address: str = ""
    access_notes: str = ""
    lat: str = ""
    lon: str = ""


def _coordinate(raw: str, field: str, limit: int) -> float:
    """A latitude or longitude as typed (a decimal comma is fine), within ±``limit``."""
    try:
        value = float(raw.strip().replace(",", "."))
    except ValueError:
        raise InvalidInput.on(field, "a number in degrees, e.g. 55.7887") from None
    if not -limit <= value <= limit:
        raise InvalidInput.on(field, f"between -{limit} and {limit} degrees")
    return value


def new_site_of(form: SiteForm, geocoder: Geocoder | None) -> SiteIn:
    """The API's ``SiteIn`` from the form's new-site fields; coordinates are needed unless a
    geocoder can find the address."""
    address = form.address.strip()
    if not address:
        raise InvalidInput.on("address", "give the address, or pick one of the sites")
    lat = _coordinate(form.lat, "lat", 90) if form.lat.strip() else None
    lon = _coordinate(form.lon, "lon", 180) if form.lon.strip() else None
    if (lat is None) != (lon is None):
        raise InvalidInput.on("lon" if lon is None else "lat", "give both coordinates")
    if lat is None and geocoder is None:
        raise InvalidInput.on("lat", "give the coordinates (copy them from a map app)")
    return SiteIn(
        address=address[:1000],
        access_notes=form.access_notes.strip()[:2000] or None,
        lat=lat,
        lon=lon,
    )


class CalculationForm(msgspec.Struct):
    """The calculation form: line items one per line (``name; quantity; unit price``) and an
    amount (empty: the sum of the items)."""

    items: str = ""
    amount: str = ""


def form_errors(exc: AppError) -> dict[str, str]:
    """The error's reasons by form field (the detail under ``_`` when it names no field)."""
    found: dict[str, str] = {}
    for error in exc.errors:
        name = FORM_FIELDS.get(error.field, "_")
        found[name] = f"{found[name]}; {error.reason}" if name in found else error.reason
    return found or {"_": exc.detail}


def _local(raw: str, field: str, zone: ZoneInfo) -> datetime | None:
    """A ``datetime-local`` value read in the user's zone; None when empty."""
    if not raw.strip():
        return None
    try:
        moment = datetime.fromisoformat(raw.strip())
    except ValueError:
        raise InvalidInput.on(field, "a date and time like 2026-11-25T10:00") from None
    return moment if moment.tzinfo else moment.replace(tzinfo=zone)


def move_of(form: MoveForm, zone: ZoneInfo) -> schemas.StageMove:
    """The API's ``StageMove`` from the form; InvalidInput on the field that is wrong."""
    try:
        stage_id = uuid.UUID(form.stage_id)
    except ValueError:
        raise InvalidInput.on("stageId", "choose a stage") from None
    version = int(form.version) if form.version.strip().isdigit() else None
    if len(form.lost_reason) > 300:
        raise InvalidInput.on("lostReason", "at most 300 characters")
    if len(form.comment) > 2000:
        raise InvalidInput.on("comment", "at most 2000 characters")
    return schemas.StageMove(
        stage_id=stage_id,
        scheduled_start=_local(form.scheduled_start, "scheduledStart", zone),
        scheduled_end=_local(form.scheduled_end, "scheduledEnd", zone),
        lost_reason=form.lost_reason.strip() or None,
        comment=form.comment.strip() or None,
        expected_version=version,
    )


def call_of(form: CallForm) -> schemas.CallIn:
    """The API's ``CallIn`` from the form."""
    outcome = form.outcome.strip()
    if not outcome:
        raise InvalidInput.on("outcome", "say how the call went")
    if len(outcome) > 200:
        raise InvalidInput.on("outcome", "at most 200 characters")
    duration = None
    if form.duration_min.strip():
        try:
            minutes = Decimal(form.duration_min.strip())
        except ArithmeticError:
            raise InvalidInput.on("durationS", "minutes, a number") from None
        if not minutes.is_finite() or not 0 <= minutes <= 1440:
            raise InvalidInput.on("durationS", "between 0 and 1440 minutes")
        duration = int(minutes * 60)
    if len(form.notes) > 10_000:
        raise InvalidInput.on("notes", "at most 10,000 characters")
    task_id = None
    if form.task_id.strip():
        try:
            task_id = uuid.UUID(form.task_id.strip())
        except ValueError:
            raise InvalidInput.on("taskId", "pick one of the deal's call tasks") from None
    return schemas.CallIn(
        outcome=outcome, duration_s=duration, notes=form.notes.strip() or None, task_id=task_id
    )


def _decimal(raw: str, field: str, what: str) -> Decimal:
    """A number as people type it (spaces between thousands, a decimal comma)."""
    try:
        value = Decimal(raw.replace("\u00a0", "").replace(" ", "").replace(",", "."))
    except ArithmeticError:
        raise InvalidInput.on(field, f"{what} is not a number") from None
    if not value.is_finite():
        raise InvalidInput.on(field, f"{what} is not a number")
    return value


def calculation_of(form: CalculationForm) -> schemas.DealUpdate:
    """The API's ``DealUpdate`` (line items, and the amount when given) from the form;
    InvalidInput naming the line that is wrong. The service checks the ranges."""
    lines = [line.strip() for line in form.items.splitlines() if line.strip()]
    if not lines:
        raise InvalidInput.on("lineItems", "one item per line: name; quantity; unit price")
    if len(lines) > 200:
        raise InvalidInput.on("lineItems", "at most 200 items")
    items = []
    for n, line in enumerate(lines, start=1):
        parts = [part.strip() for part in line.split(";")]
        if len(parts) != 3 or not parts[0]:
            raise InvalidInput.on("lineItems", f"line {n}: write name; quantity; unit price")
        if len(parts[0]) > 300:
            raise InvalidInput.on("lineItems", f"line {n}: the name is over 300 characters")
        items.append(
            schemas.LineItem(
                name=parts[0],
                quantity=_decimal(parts[1], "lineItems", f"line {n}: the quantity"),
                unit_price=_decimal(parts[2], "lineItems", f"line {n}: the unit price"),
            )
        )
    if not form.amount.strip():
        return schemas.DealUpdate(line_items=items)
    return schemas.DealUpdate(
        line_items=items, amount=_decimal(form.amount, "amount", "the amount")
    )


def calculation_errors(exc: AppError) -> dict[str, str]:
    """The calculation form's reasons by field: ``items`` (any ``lineItems[n]...`` of the
    service, told by line), ``amount``, or ``_``."""
    found: dict[str, str] = {}
    for error in exc.errors:
        reason = error.reason
        if error.field.startswith("lineItems"):
            name = "items"
            index = error.field.removeprefix("lineItems[").split("]", 1)[0]
            if index.isdigit() and not reason.startswith("line "):
                reason = f"line {int(index) + 1}: {reason}"
        else:
            name = "amount" if error.field == "amount" else "_"
        found[name] = f"{found[name]}; {reason}" if name in found else reason
    return found or {"_": exc.detail}


async def _names(session: AsyncSession, actor: Actor, ids: set[uuid.UUID]) -> dict[Any, str]:
    """Full names of the organisation's users among ``ids``."""
    if not ids:
        return {}
    rows = await session.execute(
        select(User.id, User.full_name).where(
            User.id.in_(ids), User.organization_id == actor.organization_id
        )
    )
    return {user_id: name for user_id, name in rows.all()}


async def board_context(
    session: AsyncSession, actor: Actor, pipeline_id: uuid.UUID | None
) -> dict[str, Any]:
    """The pipelines, the chosen one's stages and each stage's visible deals (newest first,
    at most ``COLUMN_LIMIT`` per open column and ``CLOSED_COLUMN_LIMIT`` per closed one)."""
    pipelines = await config_services.list_pipelines(session, actor)
    chosen = next((p for p in pipelines if p.id == pipeline_id), None)
    if pipeline_id is not None and chosen is None:
        raise InvalidInput.on("pipeline", "no such pipeline")
    chosen = chosen or (pipelines[0] if pipelines else None)
    stages = chosen.stages if chosen else []
    by_stage = await _newest_by_stage(session, actor, stages)
    columns = [
        {
            "stage": stage,
            "deals": by_stage.get(stage.id, [])[: _limit_of(stage.kind)],
            "more": len(by_stage.get(stage.id, [])) > _limit_of(stage.kind),
        }
        for stage in stages
    ]
    owners = {d.owner_id for deals in by_stage.values() for d in deals if d.owner_id}
    return {
        "pipelines": pipelines,
        "pipeline": chosen,
        "columns": columns,
        "owners": await _names(session, actor, owners),
        "card_errors": {},
    }


def _limit_of(kind: StageKind) -> int:
    return COLUMN_LIMIT if kind is StageKind.OPEN else CLOSED_COLUMN_LIMIT


@dataclass(frozen=True, slots=True)
class DealCard:
    """What a deal's card on the board shows (the columns it needs, not the whole deal)."""

    id: uuid.UUID
    stage_id: uuid.UUID
    title: str
    customer_name: str
    amount: Decimal | None
    currency: str
    owner_id: uuid.UUID | None
    version: int


async def _newest_by_stage(
    session: AsyncSession, actor: Actor, stages: list[schemas.StageOut]
) -> dict[uuid.UUID, list[DealCard]]:
    """The newest visible deals of each stage (one more than the column shows, to tell that
    there are more), in one statement: the deal list's visibility rule (``scope`` +
    ``deal_visible``, as ``services.list_deals``) with a row number per stage."""
    if not stages:
        return {}
    rank = (
        func.row_number()
        .over(partition_by=Deal.stage_id, order_by=(Deal.created_at.desc(), Deal.id.desc()))
        .label("rank")
    )
    newest = (
        scope(select(Deal.id, rank), actor, Deal.organization_id)
        .where(Deal.stage_id.in_([s.id for s in stages]), deal_visible(actor))
        .subquery()
    )
    rows = await session.execute(
        select(
            Deal.id,
            Deal.stage_id,
            Deal.title,
            Customer.name,
            Deal.amount,
            Deal.currency,
            Deal.owner_id,
            Deal.version,
        )
        .join(newest, newest.c.id == Deal.id)
        .join(Customer, Customer.id == Deal.customer_id)
        .where(newest.c.rank <= max(COLUMN_LIMIT, CLOSED_COLUMN_LIMIT) + 1)
        .order_by(Deal.stage_id, newest.c.rank)
    )
    found: dict[uuid.UUID, list[DealCard]] = {}
    for row in rows.all():
        card = DealCard(*row)
        found.setdefault(card.stage_id, []).append(card)
    return found


class DealPages(Controller):
    """``/deals`` and ``/deals/{id}`` (managers and admins)."""

    path = "/deals"
    include_in_schema = False

    @get("/")
    async def board(
        self,
        request: Request[Any, Any, Any],
        db_session: AsyncSession,
        actor: Actor,
        pipeline: Annotated[uuid.UUID | None, Parameter(description="pipeline id")] = None,
    ) -> Template:
        """The kanban of a pipeline (the default one first); htmx gets the board only."""
        actor.require_role(Role.ADMIN, Role.MANAGER)
        me = await get_user(db_session, actor, actor.user_id)
        context = await board_context(db_session, actor, pipeline) | {"me": me}
        name = "deals/_board.html" if is_htmx(request) else "deals/board.html"
        return Template(name, context=context)

    @post("/{deal_id:uuid}/move", status_code=303)
    async def move(
        self,
        deal_id: uuid.UUID,
        data: Annotated[MoveForm, Body(media_type=RequestEncodingType.URL_ENCODED)],
        request: Request[Any, Any, Any],
        db_session: AsyncSession,
        actor: Actor,
        clock: Clock,
        state: State,
    ) -> Response[Any]:
        """Move a deal to another stage under the stage's rules. From the board (``pipeline``
        given) it answers the board, with the refusal's reasons on the deal's card; from the
        deal card, the card with the reasons next to the fields."""
        actor.require_role(Role.ADMIN, Role.MANAGER)
        me = await get_user(db_session, actor, actor.user_id)
        from_board = bool(data.pipeline)
        try:
            async with db_session.begin_nested():
                move = move_of(data, ZoneInfo(me.time_zone))
                deal, _ = await services.move_deal(
                    db_session, actor, deal_id, move, clock.now(), state.storage
                )
        except AppError as exc:
            errors = form_errors(exc)
            if from_board:
                pipeline_id = _uuid_or_none(data.pipeline)
                context = await board_context(db_session, actor, pipeline_id)
                context |= {"me": me, "card_errors": {deal_id: list(errors.values())}}
                name = "deals/_board.html" if is_htmx(request) else "deals/board.html"
                return Template(name, context=context, status_code=exc.status)
            context = await card_context(db_session, actor, deal_id, me, clock.now())
            context |= {"move_errors": errors, "move_values": data}
            name = "deals/_move.html" if is_htmx(request) else "deals/card.html"
            return Template(name, context=context, status_code=exc.status)
        if from_board:
            target = f"/deals?pipeline={deal.pipeline_id}"
            if is_htmx(request):
                context = await board_context(db_session, actor, deal.pipeline_id)
                return Template("deals/_board.html", context=context | {"me": me})
            return Redirect(target, status_code=303)
        if is_htmx(request):
            return Response(b"", status_code=200, headers={"HX-Redirect": f"/deals/{deal_id}"})
        return Redirect(f"/deals/{deal_id}", status_code=303)

    @get("/{deal_id:uuid}")
    async def card(
        self, deal_id: uuid.UUID, db_session: AsyncSession, actor: Actor, clock: Clock
    ) -> Template:
        """One deal: facts, move form, timeline, stage history, calls, files, documents,
        tasks."""
        actor.require_role(Role.ADMIN, Role.MANAGER)
        me = await get_user(db_session, actor, actor.user_id)
        context = await card_context(db_session, actor, deal_id, me, clock.now())
        return Template("deals/card.html", context=context)

    @post("/{deal_id:uuid}/calls", status_code=303)
    async def log_call(
        self,
        deal_id: uuid.UUID,
        data: Annotated[CallForm, Body(media_type=RequestEncodingType.URL_ENCODED)],
        db_session: AsyncSession,
        actor: Actor,
        clock: Clock,
    ) -> Redirect | Template:
        """Record a call on the deal (as ``POST /api/v1/deals/{id}/calls``)."""
        actor.require_role(Role.ADMIN, Role.MANAGER)
        try:
            async with db_session.begin_nested():
                await services.log_call(db_session, actor, deal_id, call_of(data), clock.now())
        except AppError as exc:
            return await card_with_errors(
                db_session,
                actor,
                deal_id,
                clock,
                exc,
                {"call_errors": form_errors(exc), "call_values": data},
            )
        return Redirect(f"/deals/{deal_id}#calls", status_code=303)

    @post("/{deal_id:uuid}/site", status_code=303)
    async def set_site(
        self,
        request: Request[Any, Any, Any],
        deal_id: uuid.UUID,
        data: Annotated[SiteForm, Body(media_type=RequestEncodingType.URL_ENCODED)],
        db_session: AsyncSession,
        actor: Actor,
        clock: Clock,
    ) -> Redirect | Template:
        """Set where the work is: one of the customer's sites, or a new site added to the
        customer (as ``POST /api/v1/customers/{id}/sites`` and ``PATCH /api/v1/deals/{id}``)."""
        actor.require_role(Role.ADMIN, Role.MANAGER)
        try:
            async with db_session.begin_nested():
                deal = await services.visible_deal(db_session, actor, deal_id)
                if data.site_id.strip():
                    try:
                        site_id = uuid.UUID(data.site_id.strip())
                    except ValueError:
                        raise InvalidInput.on("siteId", "pick one of the sites") from None
                else:
                    geocoder = request.app.state.geocoder
                    site = await customer_services.add_site(
                        db_session, actor, deal.customer_id, new_site_of(data, geocoder), geocoder
                    )
                    site_id = site.id
                await services.update_deal(
                    db_session, actor, deal_id, schemas.DealUpdate(site_id=site_id), clock.now()
                )
        except AppError as exc:
            return await card_with_errors(
                db_session,
                actor,
                deal_id,
                clock,
                exc,
                {"site_errors": form_errors(exc), "site_values": data},
            )
        return Redirect(f"/deals/{deal_id}#site", status_code=303)

    @post("/{deal_id:uuid}/calculation", status_code=303)
    async def save_calculation(
        self,
        deal_id: uuid.UUID,
        data: Annotated[CalculationForm, Body(media_type=RequestEncodingType.URL_ENCODED)],
        db_session: AsyncSession,
        actor: Actor,
        clock: Clock,
    ) -> Redirect | Template:
        """Save the calculation (line items; the amount is their sum unless given), as
        ``PATCH /api/v1/deals/{id}`` does."""
        actor.require_role(Role.ADMIN, Role.MANAGER)
        try:
            async with db_session.begin_nested():
                update = calculation_of(data)
                await services.update_deal(db_session, actor, deal_id, update, clock.now())
        except AppError as exc:
            return await card_with_errors(
                db_session,
                actor,
                deal_id,
                clock,
                exc,
                {"calc_errors": calculation_errors(exc), "calc_values": data},
            )
        return Redirect(f"/deals/{deal_id}#calculation", status_code=303)

    @post("/{deal_id:uuid}/documents", status_code=303)
    async def generate_document(
        self,
        deal_id: uuid.UUID,
        data: Annotated[DocumentForm, Body(media_type=RequestEncodingType.URL_ENCODED)],
        db_session: AsyncSession,
        actor: Actor,
        clock: Clock,
        state: State,
    ) -> Redirect | Template:
        """Generate (a new version of) a PDF from a template, as the API does."""
        actor.require_role(Role.ADMIN, Role.MANAGER)
        try:
            async with db_session.begin_nested():
                if not data.template.strip():
                    raise InvalidInput.on("template", "choose a template")
                deal = await services.visible_deal(db_session, actor, deal_id)
                organization = await services.organization_of(db_session, actor.organization_id)
                await documents.generate_for_deal(
                    db_session,
                    deal,
                    organization,
                    template_name=data.template.strip()[:200],
                    actor_id=actor.user_id,
                    now=clock.now(),
                    storage=state.storage,
                )
        except AppError as exc:
            return await card_with_errors(
                db_session, actor, deal_id, clock, exc, {"document_errors": form_errors(exc)}
            )
        return Redirect(f"/deals/{deal_id}#documents", status_code=303)

    @get("/{deal_id:uuid}/files/{attachment_id:uuid}", media_type="application/octet-stream")
    async def download(
        self,
        deal_id: uuid.UUID,
        attachment_id: uuid.UUID,
        db_session: AsyncSession,
        actor: Actor,
        state: State,
    ) -> File:
        """A file of the deal for the browser session (as ``/api/v1/attachments/{id}/content``)."""
        row = await documents.visible_attachment(db_session, actor, attachment_id)
        return File(
            path=state.storage.path_of(row.storage_key),
            filename=row.filename,
            media_type=row.content_type,
            content_disposition_type="attachment",
            headers={"X-Content-Type-Options": "nosniff", "Cache-Control": "private"},
        )


def _uuid_or_none(raw: str) -> uuid.UUID | None:
    try:
        return uuid.UUID(raw)
    except ValueError:
        return None


async def card_with_errors(
    session: AsyncSession,
    actor: Actor,
    deal_id: uuid.UUID,
    clock: Clock,
    exc: AppError,
    errors: dict[str, Any],
) -> Template:
    """The deal card again with one form's refusals (and what was typed) at its fields."""
    me = await get_user(session, actor, actor.user_id)
    context = await card_context(session, actor, deal_id, me, clock.now()) | errors
    return Template("deals/card.html", context=context, status_code=exc.status)


async def card_context(
    session: AsyncSession, actor: Actor, deal_id: uuid.UUID, me: User, now: datetime
) -> dict[str, Any]:
    """Everything the deal card shows, from the API's services."""
    deal = await services.deal_out(session, await services.visible_deal(session, actor, deal_id))
    stages = [
        config_services.stage_out(stage)
        for stage in await session.scalars(
            select(Stage)
            .where(
                Stage.pipeline_id == deal.pipeline_id,
                Stage.organization_id == actor.organization_id,
            )
            .order_by(Stage.position, Stage.created_at, Stage.name)
        )
    ]
    stage_names = {s.id: s.name for s in stages}
    timeline = await services.deal_timeline(session, actor, deal_id, limit=100, cursor=None)
    history = await services.stage_history(session, actor, deal_id)
    attachments = await documents.list_attachments(session, actor, deal_id=deal_id)
    docs = await documents.list_documents(session, actor, deal_id)
    templates = list(
        await session.scalars(
            select(DocumentTemplate.name)
            .where(
                DocumentTemplate.organization_id == actor.organization_id,
                DocumentTemplate.is_active,
            )
            .order_by(DocumentTemplate.name)
        )
    )
    tasks = await list_tasks(
        session,
        actor,
        now=now,
        assignee_id=None,
        status=None,
        kind=None,
        deal_id=deal_id,
        overdue=False,
        limit=100,
        cursor=None,
    )
    customer = await customer_services.customer_out(
        session, await customer_services.visible_customer(session, actor, deal.customer_id)
    )
    people = {i.author_id for i in timeline.items if i.author_id}
    people |= {h.actor_id for h in history if h.actor_id}
    people |= {t.assignee_id for t in tasks.items if t.assignee_id}
    if deal.owner_id:
        people.add(deal.owner_id)
    return {
        "me": me,
        "deal": deal,
        "stages": stages,
        "stage_names": stage_names,
        "timeline": timeline.items,
        "calls": [i for i in timeline.items if i.kind.value == "call"],
        "history": history,
        "attachments": attachments,
        "documents": docs,
        "templates": templates or ["Invoice"],
        "tasks": tasks.items,
        # Open call tasks a logged call can close ("call back within 15 minutes"...).
        "call_tasks": [
            t for t in tasks.items if t.kind.value == "call" and t.status in ACTIVE_STATUSES
        ],
        "open_statuses": {TaskStatus.OPEN.value, TaskStatus.IN_PROGRESS.value},
        "names": await _names(session, actor, people),
        "requirement_labels": REQUIREMENT_LABELS,
        "move_errors": {},
        "move_values": MoveForm(),
        "call_errors": {},
        "call_values": CallForm(),
        "document_errors": {},
        "sites": customer.sites,
        "site": next((x for x in customer.sites if x.id == deal.site_id), None),
        "site_errors": {},
        "site_values": SiteForm(),
        "calc_errors": {},
        "calc_values": CalculationForm(
            items="\n".join(f"{li.name}; {li.quantity}; {li.unit_price}" for li in deal.line_items)
        ),
    }
