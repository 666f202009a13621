"""Public lead capture: the embeddable form page, its form POST, and the JSON endpoint.

No login: the form's key in the URL identifies the organisation. CSRF does not apply (the form
is posted from other sites); the honeypot field and the per-IP rate limit stand against spam.
"""

from __future__ import annotations

from typing import Annotated, Any

import msgspec
from litestar import Controller, Request, Response, get, post
from litestar.datastructures import State
from litestar.enums import RequestEncodingType
from litestar.params import Body
from litestar.response import Template
from litestar.status_codes import HTTP_201_CREATED
from sqlalchemy.ext.asyncio import AsyncSession

from backend.config import Settings
from backend.lib.clock import Clock
from backend.lib.errors import InvalidInput, Problem, problem_response
from backend.sales import leads, schemas

UTM_KEYS = ("utm_source", "utm_medium", "utm_campaign", "utm_term", "utm_content")
_FIELDS = {f.encode_name: f.name for f in msgspec.structs.fields(schemas.LeadIn)}
_SNAKE = {name: encoded for encoded, name in _FIELDS.items()}

TEXTS = {
    "en": {
        "name": "Your name",
        "phone": "Phone",
        "email": "Email",
        "address": "Address",
        "message": "What do you need?",
        "send": "Send request",
        "fix": "Please check the fields below.",
        "reference": "Request number",
        "slow_down": "Too many requests from your network. Please try again in a minute.",
    },
    "ru": {
        "name": "Ваше имя",
        "phone": "Телефон",
        "email": "Email",
        "address": "Адрес",
        "message": "Что нужно сделать?",
        "send": "Отправить заявку",
        "fix": "Проверьте поля ниже.",
        "reference": "Номер заявки",
        "slow_down": "Слишком много заявок из вашей сети. Попробуйте через минуту.",
    },
}


def _lang(locale: str) -> str:
    return "ru" if locale.lower().startswith("ru") else "en"


def _client_ip(request: Request[Any, Any, Any]) -> str:
    return request.client.host if request.client else "unknown"


def lead_from_form(values: dict[str, str]) -> schemas.LeadIn:
    """A ``LeadIn`` from form fields (snake_case or camelCase names; unknown ones ignored)."""
    known = {}
    for key, value in values.items():
        encoded = _SNAKE.get(key, key if key in _FIELDS else None)
        if encoded is not None and value != "":
            known[encoded] = value
    try:
        return msgspec.convert(known, schemas.LeadIn, strict=False)
    except msgspec.ValidationError as exc:
        message = str(exc)
        field = message.rsplit("$.", 1)[-1].rstrip("`") if "$." in message else "form"
        raise InvalidInput.on(field, message.split(" - at ")[0]) from exc


class LeadPages(Controller):
    """The public form and where it posts."""

    opt = {"public": True}
    include_in_schema = False

    @get("/f/{key:str}")
    async def form(
        self, key: str, request: Request[Any, Any, Any], db_session: AsyncSession
    ) -> Template:
        """The form, ready to embed in an iframe; UTM parameters of the page are kept."""
        form, organization = await leads.active_form(db_session, key)
        lang = _lang(organization.locale)
        values = {k: request.query_params.get(k) for k in UTM_KEYS}
        values["referrer"] = request.query_params.get("referrer") or request.headers.get("referer")
        return Template(
            "leads/form.html",
            context={
                "form": form,
                "values": values,
                "errors": {},
                "utm_keys": UTM_KEYS,
                "lang": lang,
                "t": TEXTS[lang],
            },
        )

    @post("/f/{key:str}", status_code=200)
    async def submit_form(
        self,
        key: str,
        request: Request[Any, Any, Any],
        data: Annotated[dict[str, str], Body(media_type=RequestEncodingType.URL_ENCODED)],
        db_session: AsyncSession,
        clock: Clock,
        state: State,
        settings: Settings,
    ) -> Template:
        """Take the form; answer with the thank-you page, or the form with what to fix."""
        form, organization = await leads.active_form(db_session, key)
        lang = _lang(organization.locale)
        context: dict[str, Any] = {"form": form, "lang": lang, "t": TEXTS[lang]}
        try:
            # A savepoint: refused input undoes its writes but keeps the page's session usable.
            async with db_session.begin_nested():
                outcome = await leads.capture_lead(
                    db_session,
                    key,
                    lead_from_form(data),
                    client_ip=_client_ip(request),
                    referrer=request.headers.get("referer"),
                    now=clock.now(),
                    storage=state.storage,
                    geocoder=state.geocoder,
                    rate_per_minute=settings.lead_rate_per_minute,
                )
        except InvalidInput as exc:
            errors = {e.field: e.reason for e in exc.errors}
            return Template(
                "leads/form.html",
                context=context
                | {"values": data, "errors": errors or {"name": exc.detail}, "utm_keys": UTM_KEYS},
                status_code=422,
            )
        if outcome.rate_limited:
            return Template(
                "leads/thanks.html",
                context=context | {"message": TEXTS[lang]["slow_down"], "reference": None},
                status_code=429,
                headers={"Retry-After": "60"},
            )
        return Template(
            "leads/thanks.html",
            context=context | {"message": outcome.thank_you, "reference": outcome.reference},
        )

    @post("/api/v1/leads/{key:str}", status_code=HTTP_201_CREATED, include_in_schema=True)
    async def submit_json(
        self,
        key: str,
        data: schemas.LeadIn,
        request: Request[Any, Any, Any],
        db_session: AsyncSession,
        clock: Clock,
        state: State,
        settings: Settings,
    ) -> Response[Any]:
        """Public JSON intake for a lead form (no login; the key identifies the form).
        429 with Retry-After when one address sends too many."""
        outcome = await leads.capture_lead(
            db_session,
            key,
            data,
            client_ip=_client_ip(request),
            referrer=request.headers.get("referer"),
            now=clock.now(),
            storage=state.storage,
            geocoder=state.geocoder,
            rate_per_minute=settings.lead_rate_per_minute,
        )
        if outcome.rate_limited:
            return problem_response(
                Problem(
                    type="urn:fieldcrm:problem:rate-limited",
                    title="Too many requests",
                    status=429,
                    detail="Too many requests from this address; try again in a minute",
                ),
                headers={"Retry-After": "60"},
            )
        body = schemas.LeadAccepted(
            status="accepted", reference=outcome.reference, message=outcome.thank_you
        )
        return Response(body, status_code=HTTP_201_CREATED)
