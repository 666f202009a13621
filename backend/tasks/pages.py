"""The visit page ``/visits/{task_id}`` for the field worker's phone: customer, address, access
notes, what to do, the deal and its stage; check in, photos and files, outcome and check out,
and moving the deal on.

Every action calls the same service as the JSON API (``tracking.visits.check``,
``documents.upload``, ``sales.move_deal``). The page's script posts with ``HX-Request: true``
and gets the visit partial back (422 with the reason at its field when refused); a plain form
post is answered 303 back to the page, or the whole page with the reasons. Posts honour
``Idempotency-Key`` like the API, so the offline queue's replays are stored once; a replayed
check-in or check-out keeps the time it was taken (``recordedAt``, at most 12 hours old).
"""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import AsyncIterator
from datetime import datetime
from typing import Annotated, Any
from zoneinfo import ZoneInfo

import msgspec
from litestar import Controller, Request, get, post
from litestar.datastructures import State
from litestar.params import HeaderParameter, Parameter
from litestar.response import File, Redirect, Template
from sqlalchemy.ext.asyncio import AsyncSession

from backend.accounts.services import get_user
from backend.config import Settings
from backend.documents import services as documents
from backend.lib.clock import Clock
from backend.lib.forms import is_htmx
from backend.lib.tenancy import Actor
from backend.sales import schemas as sales_schemas
from backend.sales import services as sales
from backend.tasks import page_forms
from backend.tasks.page_forms import Outcome
from backend.tasks.visit_view import deal_of_visit, load_visit
from backend.tracking import schemas as tracking_schemas
from backend.tracking import visits
from backend.tracking.controllers import check_in_out
from backend.tracking.models import CheckKind
from backend.tracking.policy import POOR_ACCURACY_M, SITE_RADIUS_M

IdempotencyKey = Annotated[str | None, HeaderParameter(name="Idempotency-Key", required=False)]
Filename = Annotated[str, Parameter(min_length=1, max_length=255)]


async def _page(
    request: Request[Any, Any, Any],
    db_session: AsyncSession,
    actor: Actor,
    task_id: uuid.UUID,
    *,
    outcome: Outcome | None = None,
    form: str = "",
    values: dict[str, str] | None = None,
) -> Template:
    view = await load_visit(db_session, actor, task_id)
    me = await get_user(db_session, actor, actor.user_id)
    zone = ZoneInfo(me.time_zone)
    context = {
        "me": me,
        "v": view,
        "form": form,
        "errors": outcome.errors() if outcome else {},
        "values": values or {},
        "local": lambda moment: moment.astimezone(zone).strftime("%H:%M") if moment else "",
        "radius_m": SITE_RADIUS_M,
        "poor_m": POOR_ACCURACY_M,
    }
    headers = {"Idempotent-Replay": "true"} if outcome and outcome.replay else None
    status = outcome.status if outcome else 200
    name = "field/_visit.html" if is_htmx(request) else "field/visit.html"
    return Template(name, context=context, status_code=status, headers=headers)


async def _answer(
    request: Request[Any, Any, Any],
    db_session: AsyncSession,
    actor: Actor,
    task_id: uuid.UUID,
    outcome: Outcome,
    form: str,
    values: dict[str, str],
) -> Template | Redirect:
    """The partial for the script, 303 back to the page for a plain form, or the page with the
    reasons when refused."""
    if outcome.error is None and not is_htmx(request):
        return Redirect(f"/visits/{task_id}", status_code=303)
    return await _page(
        request, db_session, actor, task_id, outcome=outcome, form=form, values=values
    )


async def _buffered(request: Request[Any, Any, Any], limit: int) -> bytes | None:
    """The whole body when it is at most ``limit`` bytes, else None (read no further)."""
    parts: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            return None
        parts.append(chunk)
    return b"".join(parts)


async def _chunks(data: bytes) -> AsyncIterator[bytes]:
    yield data


async def _streamed(request: Request[Any, Any, Any]) -> AsyncIterator[bytes]:
    async for chunk in request.stream():
        if chunk:
            yield chunk


class VisitPages(Controller):
    """``/visits/{task_id}`` and its actions."""

    path = "/visits/{task_id:uuid}"
    include_in_schema = False

    @get("/")
    async def visit(
        self,
        request: Request[Any, Any, Any],
        task_id: uuid.UUID,
        db_session: AsyncSession,
        actor: Actor,
    ) -> Template:
        """The visit (the partial for htmx); 404 when the caller may not see it."""
        return await _page(request, db_session, actor, task_id)

    async def _check(
        self,
        request: Request[Any, Any, Any],
        task_id: uuid.UUID,
        db_session: AsyncSession,
        actor: Actor,
        clock: Clock,
        key: str | None,
        kind: CheckKind,
    ) -> Template | Redirect:
        body = await request.body()
        now = clock.now()
        fields = page_forms.form_fields(body)
        values = dict(fields)
        form = f"check_{kind.value}"
        schema: type[msgspec.Struct] = (
            tracking_schemas.CheckInIn if kind is CheckKind.IN else tracking_schemas.CheckOutIn
        )

        async def run() -> Any:
            at = page_forms.recorded_at(fields, now)
            data: Any = page_forms.convert(fields, schema)
            row = await visits.check(
                db_session,
                actor,
                task_id,
                kind=kind,
                lat=data.lat,
                lon=data.lon,
                accuracy_m=data.accuracy,
                mocked=data.mocked,
                now=at,
                override_reason=data.override_reason,
                outcome=getattr(data, "outcome", None),
            )
            return msgspec.to_builtins(check_in_out(row))

        outcome = await page_forms.attempt(
            db_session,
            actor,
            scope=f"page.{form}",
            key=key,
            request_hash=page_forms.form_hash(task_id.bytes, values),
            now=now,
            run=run,
        )
        return await _answer(request, db_session, actor, task_id, outcome, form, values)

    @post("/check-in", status_code=200)
    async def check_in(
        self,
        request: Request[Any, Any, Any],
        task_id: uuid.UUID,
        db_session: AsyncSession,
        actor: Actor,
        clock: Clock,
        idempotency_key: IdempotencyKey = None,
    ) -> Template | Redirect:
        """Check in at the site: ``lat``, ``lon``, ``accuracy``, ``overrideReason`` (form);
        judged and recorded by the API's check-in service, which starts the task."""
        return await self._check(
            request, task_id, db_session, actor, clock, idempotency_key, CheckKind.IN
        )

    @post("/check-out", status_code=200)
    async def check_out(
        self,
        request: Request[Any, Any, Any],
        task_id: uuid.UUID,
        db_session: AsyncSession,
        actor: Actor,
        clock: Clock,
        idempotency_key: IdempotencyKey = None,
    ) -> Template | Redirect:
        """Record the outcome and check out (``outcome``, ``lat``, ``lon``, ``accuracy``):
        completes the task."""
        return await self._check(
            request, task_id, db_session, actor, clock, idempotency_key, CheckKind.OUT
        )

    @post("/files", status_code=200, request_max_body_size=None)
    async def attach(
        self,
        request: Request[Any, Any, Any],
        task_id: uuid.UUID,
        db_session: AsyncSession,
        actor: Actor,
        clock: Clock,
        state: State,
        settings: Settings,
        filename: Filename,
        idempotency_key: IdempotencyKey = None,
    ) -> Template | Redirect:
        """A photo or file of the visit: the bytes as the body, ``?filename=``; stored by the
        API's attachment service (type sniffed, at most ``FIELDCRM_MAX_UPLOAD_BYTES``)."""
        now = clock.now()
        values = {"filename": filename}
        chunks: AsyncIterator[bytes]
        request_hash = ""
        if idempotency_key is not None:
            # A key needs the body's hash before anything is stored: read it (bounded) first.
            data = await _buffered(request, settings.max_upload_bytes)
            if data is None:
                too_big = page_forms.one_error(
                    "file", f"larger than {settings.max_upload_bytes // (1024 * 1024)} MB"
                )
                return await _answer(
                    request, db_session, actor, task_id, Outcome(error=too_big), "files", values
                )
            request_hash = hashlib.sha256(
                task_id.bytes + filename.encode() + b"\0" + data
            ).hexdigest()
            chunks = _chunks(data)
        else:
            chunks = _streamed(request)

        async def run() -> Any:
            row = await documents.upload(
                db_session,
                actor,
                state.storage,
                deal_id=None,
                task_id=task_id,
                filename=filename,
                chunks=chunks,
                max_bytes=settings.max_upload_bytes,
                now=now,
            )
            return msgspec.to_builtins(documents.attachment_out(row))

        outcome = await page_forms.attempt(
            db_session,
            actor,
            scope="page.visit_file",
            key=idempotency_key,
            request_hash=request_hash,
            now=now,
            run=run,
        )
        return await _answer(request, db_session, actor, task_id, outcome, "files", values)

    @get("/files/{attachment_id:uuid}", media_type="application/octet-stream")
    async def download(
        self,
        task_id: uuid.UUID,
        attachment_id: uuid.UUID,
        db_session: AsyncSession,
        actor: Actor,
        state: State,
    ) -> File:
        """A file of the visit, for whoever may see it (inline: photos show on the page)."""
        row = await documents.visible_attachment(db_session, actor, attachment_id)
        return File(
            path=state.storage.path_of(row.storage_key),
            filename=row.filename,
            media_type=row.content_type,
            content_disposition_type="inline",
            headers={
                "X-Content-Type-Options": "nosniff",
                "Cache-Control": "private, max-age=3600",
                "Content-Security-Policy": "default-src 'none'; sandbox",
            },
        )

    @post("/stage", status_code=200)
    async def move_deal(
        self,
        request: Request[Any, Any, Any],
        task_id: uuid.UUID,
        db_session: AsyncSession,
        actor: Actor,
        clock: Clock,
        state: State,
        idempotency_key: IdempotencyKey = None,
    ) -> Template | Redirect:
        """Move the visit's deal to ``stageId`` under the stage's rules (the API's service;
        each unmet rule is shown)."""
        body = await request.body()
        now = clock.now()
        fields = page_forms.form_fields(body)
        values = dict(fields)

        async def run() -> Any:
            data = page_forms.convert(fields, sales_schemas.StageMove)
            deal = await deal_of_visit(db_session, actor, task_id)
            moved, _ = await sales.move_deal(db_session, actor, deal.id, data, now, state.storage)
            return {"dealId": str(moved.id), "stageId": str(moved.stage_id), "at": _iso(now)}

        outcome = await page_forms.attempt(
            db_session,
            actor,
            scope="page.deal_stage",
            key=idempotency_key,
            request_hash=page_forms.form_hash(task_id.bytes, values),
            now=now,
            run=run,
        )
        return await _answer(request, db_session, actor, task_id, outcome, "stage", values)


def _iso(moment: datetime) -> str:
    return moment.isoformat()
