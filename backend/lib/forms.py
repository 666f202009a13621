"""Reading HTML forms at the page boundary and showing service errors next to their fields.

Pages post ordinary ``application/x-www-form-urlencoded`` forms whose field names are the API's
camelCase names, so an error a service raises on ``timeZone`` lands next to the input named
``timeZone``. The helpers here only turn text fields into the API's request structs and back;
every rule stays in the services.
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable, Mapping
from typing import Any, TypeVar

import msgspec
from litestar import Request
from litestar.datastructures import FormMultiDict
from sqlalchemy.ext.asyncio import AsyncSession

from backend.lib.errors import AppError, FieldError, InvalidInput

T = TypeVar("T")
S = TypeVar("S", bound=msgspec.Struct)

FORM_ERROR = "_form"
"""The key of an error that belongs to no single field (shown above the form)."""


def is_htmx(request: Request[Any, Any, Any]) -> bool:
    """Whether htmx sent the request (it then gets a partial, not the whole page)."""
    return request.headers.get("hx-request") == "true"


async def read_form(request: Request[Any, Any, Any]) -> FormMultiDict:
    """The posted form fields (repeated names, e.g. checkboxes, kept by ``getall``)."""
    return await request.form()


def text(form: Mapping[str, Any], name: str) -> str:
    """A text field, stripped; "" when absent."""
    value = form.get(name)
    return value.strip() if isinstance(value, str) else ""


def optional(form: Mapping[str, Any], name: str) -> str | None:
    """A text field, stripped; None when absent or blank."""
    return text(form, name) or None


def checked(form: Mapping[str, Any], name: str) -> bool:
    """Whether a checkbox was ticked (present with any value but "false"/"0")."""
    value = form.get(name)
    return value is not None and str(value).lower() not in ("", "false", "0", "off")


def choices(form: FormMultiDict, name: str) -> list[str]:
    """Every non-blank value of a repeated field (ticked checkboxes, a multiple select)."""
    return [v.strip() for v in form.getall(name, []) if isinstance(v, str) and v.strip()]


def whole_number(
    form: Mapping[str, Any], name: str, errors: list[FieldError], default: int | None = None
) -> int | None:
    """An integer field; a value that is not a whole number adds an error on ``name``."""
    raw = text(form, name)
    if not raw:
        return default
    try:
        return int(raw)
    except ValueError:
        errors.append(FieldError(field=name, reason="must be a whole number"))
        return default


_PLAIN_REASONS = [
    (re.compile(r"^Expected `str` of length >= (\d+)$"), "must be at least {0} characters"),
    (re.compile(r"^Expected `str` of length <= (\d+)$"), "must be at most {0} characters"),
    (re.compile(r"^Expected `(?:int|float)` >= (-?[\d.]+)$"), "must be at least {0}"),
    (re.compile(r"^Expected `(?:int|float)` <= (-?[\d.]+)$"), "must be at most {0}"),
    (re.compile(r"^Expected `int(?: \| null)?`, got `\w+`$"), "must be a whole number"),
    (re.compile(r"^Expected `float(?: \| null)?`, got `\w+`$"), "must be a number"),
    (re.compile(r"^Invalid enum value (.+)$"), "{0} is not one of the choices"),
    (re.compile(r"^Invalid UUID$"), "pick one of the choices"),
]


def plain_reason(reason: str) -> str:
    """msgspec's refusal in words for a form ("Expected `str` of length >= 10" → "must be at
    least 10 characters"); other reasons are kept as they are."""
    for pattern, words in _PLAIN_REASONS:
        match = pattern.match(reason)
        if match:
            return words.format(*(g.removesuffix(".0") for g in match.groups()))
    return reason


def to_input(values: Mapping[str, Any], struct: type[S]) -> S:
    """Convert form values (camelCase keys, text numbers) into an API request struct; a value
    of the wrong shape is ``InvalidInput`` on its field, like the JSON API's refusals."""
    try:
        return msgspec.convert(dict(values), struct, strict=False)
    except msgspec.ValidationError as exc:
        message = str(exc)
        field = FORM_ERROR
        if " - at `$." in message:
            field = message.rsplit(" - at `$.", 1)[1].rstrip("`").split("[", 1)[0]
        reason = plain_reason(message.split(" - at `$")[0])
        raise InvalidInput(message, errors=[FieldError(field=field, reason=reason)]) from exc


def field_errors(exc: AppError) -> dict[str, str]:
    """``{field: reason}`` of an error, for the form to show next to each field (the first
    reason per field); an error without fields goes to ``FORM_ERROR``."""
    found: dict[str, str] = {}
    for error in exc.errors:
        found.setdefault(error.field, plain_reason(error.reason))
    if not found:
        found[FORM_ERROR] = exc.detail
    return found


async def in_savepoint(session: AsyncSession, action: Callable[[], Awaitable[T]]) -> T:
    """Run a service call in a savepoint: when it refuses the input, what it wrote is undone
    (and objects it changed are reloaded) while the page's transaction stays usable for
    rendering the form again."""
    async with session.begin_nested():
        return await action()
