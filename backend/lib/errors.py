"""One exception hierarchy, mapped to RFC 9457 problem+json responses.

Every error answer has a stable ``type`` (``urn:fieldcrm:problem:<slug>``), a human ``title``,
the HTTP ``status``, a ``detail`` and, for input errors, ``errors``: a list of ``{field, reason}``.
Unexpected exceptions become a 500 problem without internals; they are logged with the request id.
"""

from __future__ import annotations

import logging
import re
from typing import Any

import msgspec
from litestar import Request, Response
from litestar.exceptions import (
    HTTPException,
    NotAuthorizedException,
    NotFoundException,
    PermissionDeniedException,
    ValidationException,
)
from litestar.status_codes import (
    HTTP_400_BAD_REQUEST,
    HTTP_401_UNAUTHORIZED,
    HTTP_403_FORBIDDEN,
    HTTP_404_NOT_FOUND,
    HTTP_409_CONFLICT,
    HTTP_422_UNPROCESSABLE_ENTITY,
    HTTP_500_INTERNAL_SERVER_ERROR,
)
from sqlalchemy.exc import DBAPIError, IntegrityError

log = logging.getLogger("fieldcrm.errors")

PROBLEM_MEDIA_TYPE = "application/problem+json"


class FieldError(msgspec.Struct, frozen=True):
    """One reason an input field was refused."""

    field: str
    reason: str


class Problem(msgspec.Struct, omit_defaults=True):
    """The RFC 9457 body."""

    type: str
    title: str
    status: int
    detail: str = ""
    errors: list[FieldError] = []
    instance: str | None = None


class AppError(Exception):
    """Base of every error the application raises on purpose."""

    status: int = HTTP_400_BAD_REQUEST
    slug: str = "bad-request"
    title: str = "Bad request"

    def __init__(self, detail: str = "", *, errors: list[FieldError] | None = None) -> None:
        super().__init__(detail or self.title)
        self.detail = detail or self.title
        self.errors = errors or []

    def problem(self) -> Problem:
        """This error as a problem body."""
        return Problem(
            type=f"urn:fieldcrm:problem:{self.slug}",
            title=self.title,
            status=self.status,
            detail=self.detail,
            errors=self.errors,
        )


class InvalidInput(AppError):
    """Input that is well-formed but breaks a rule (bad phone, unknown time zone, ...)."""

    status = HTTP_422_UNPROCESSABLE_ENTITY
    slug = "validation-error"
    title = "The input is not valid"

    @classmethod
    def on(cls, field: str, reason: str) -> InvalidInput:
        """An error about one field."""
        return cls(f"{field}: {reason}", errors=[FieldError(field=field, reason=reason)])


class MalformedInput(AppError):
    """A body that cannot be read as the expected shape at all (not JSON, wrong structure)."""

    slug = "validation-error"
    title = "The input is not valid"

    @classmethod
    def on(cls, field: str, reason: str) -> MalformedInput:
        """An error about one field."""
        return cls(f"{field}: {reason}", errors=[FieldError(field=field, reason=reason)])


class StageRuleBroken(InvalidInput):
    """A deal may not enter a stage: the move is not allowed, or the deal lacks what the stage
    requires. ``errors`` lists every unmet rule by field."""

    slug = "stage-rule"
    title = "The deal cannot enter this stage"


class NotFound(AppError):
    """The resource does not exist or the caller may not see it (the two are not told apart)."""

    status = HTTP_404_NOT_FOUND
    slug = "not-found"
    title = "Not found"


class Conflict(AppError):
    """The change clashes with existing data (a duplicate email, a reused key)."""

    status = HTTP_409_CONFLICT
    slug = "conflict"
    title = "Conflict"


class Unauthenticated(AppError):
    """No valid credentials."""

    status = HTTP_401_UNAUTHORIZED
    slug = "unauthenticated"
    title = "Authentication required"


class Forbidden(AppError):
    """Authenticated but the role does not allow the action on a resource it can see."""

    status = HTTP_403_FORBIDDEN
    slug = "forbidden"
    title = "Not allowed"


def problem_response(problem: Problem, headers: dict[str, str] | None = None) -> Response[bytes]:
    """Encode a problem as an ``application/problem+json`` response."""
    return Response(
        content=msgspec.json.encode(problem),
        status_code=problem.status,
        media_type=PROBLEM_MEDIA_TYPE,
        headers=headers,
    )


def _app_error_handler(_: Request[Any, Any, Any], exc: AppError) -> Response[bytes]:
    headers = {"WWW-Authenticate": "Bearer"} if isinstance(exc, Unauthenticated) else None
    return problem_response(exc.problem(), headers)


_MSGSPEC_PATH = re.compile(r"\s*-\s*at\s*`\$(?P<path>[^`]*)`\s*$")


def _field_from_message(message: str, key: str | None) -> tuple[str, str]:
    """Split msgspec's "Expected `int`, got `str` - at `$.lat`" into ("lat", "Expected ...")."""
    match = _MSGSPEC_PATH.search(message)
    if match:
        path = match.group("path").lstrip(".") or (key or "body")
        return path, message[: match.start()].strip()
    if message.startswith("Object contains unknown field"):
        name = message.split("`")[1] if "`" in message else "body"
        return name, "unknown field"
    return key or "body", message


def _validation_handler(
    request: Request[Any, Any, Any], exc: ValidationException
) -> Response[bytes]:
    errors: list[FieldError] = []
    extra = exc.extra if isinstance(exc.extra, list) else []
    for item in extra:
        if not isinstance(item, dict):
            continue
        message = str(item.get("message", "invalid"))
        key = item.get("key")
        field, reason = _field_from_message(message, str(key) if key else None)
        errors.append(FieldError(field=field, reason=reason))
    if not errors:
        errors.append(FieldError(field="body", reason=str(exc.detail)))
    detail = "; ".join(f"{e.field}: {e.reason}" for e in errors)
    return problem_response(
        Problem(
            type="urn:fieldcrm:problem:validation-error",
            title="The input is not valid",
            status=HTTP_400_BAD_REQUEST,
            detail=detail,
            errors=errors,
        )
    )


_HTTP_SLUGS = {
    HTTP_401_UNAUTHORIZED: "unauthenticated",
    HTTP_403_FORBIDDEN: "forbidden",
    HTTP_404_NOT_FOUND: "not-found",
    405: "method-not-allowed",
    413: "payload-too-large",
    415: "unsupported-media-type",
    429: "too-many-requests",
}


def _http_handler(request: Request[Any, Any, Any], exc: HTTPException) -> Response[bytes]:
    if exc.status_code >= HTTP_500_INTERNAL_SERVER_ERROR:
        return _internal_handler(request, exc)
    slug = _HTTP_SLUGS.get(exc.status_code, "http-error")
    problem = Problem(
        type=f"urn:fieldcrm:problem:{slug}",
        title=slug.replace("-", " ").capitalize(),
        status=exc.status_code,
        detail=str(exc.detail),
        errors=[FieldError(field="body", reason=str(exc.detail))]
        if exc.status_code == HTTP_400_BAD_REQUEST
        else [],
    )
    return problem_response(problem, exc.headers or None)


def _integrity_handler(request: Request[Any, Any, Any], exc: IntegrityError) -> Response[bytes]:
    # A constraint the service layer did not pre-check (a race between two requests).
    constraint = getattr(getattr(exc.orig, "__cause__", None), "constraint_name", None)
    log.warning("integrity error on %s: %s", request.url.path, constraint)
    return problem_response(
        Problem(
            type="urn:fieldcrm:problem:conflict",
            title="Conflict",
            status=HTTP_409_CONFLICT,
            detail="The change conflicts with existing data",
            errors=[FieldError(field=constraint or "body", reason="conflicts with existing data")],
        )
    )


def _internal_handler(request: Request[Any, Any, Any], exc: Exception) -> Response[bytes]:
    log.exception("unhandled error on %s %s", request.method, request.url.path, exc_info=exc)
    return problem_response(
        Problem(
            type="urn:fieldcrm:problem:internal-error",
            title="Internal error",
            status=HTTP_500_INTERNAL_SERVER_ERROR,
            detail="Something went wrong on our side; it has been logged.",
        )
    )


def _dbapi_handler(request: Request[Any, Any, Any], exc: DBAPIError) -> Response[bytes]:
    # Data errors the database refused (e.g. a value out of a column's range) are input errors.
    sqlstate = getattr(exc.orig, "sqlstate", None) or getattr(
        getattr(exc.orig, "__cause__", None), "sqlstate", None
    )
    if isinstance(sqlstate, str) and sqlstate.startswith("22"):
        return problem_response(
            Problem(
                type="urn:fieldcrm:problem:validation-error",
                title="The input is not valid",
                status=HTTP_422_UNPROCESSABLE_ENTITY,
                detail="A value is out of the allowed range",
                errors=[FieldError(field="body", reason="value out of range")],
            )
        )
    return _internal_handler(request, exc)


EXCEPTION_HANDLERS: dict[type[Exception] | int, Any] = {
    AppError: _app_error_handler,
    ValidationException: _validation_handler,
    NotAuthorizedException: _http_handler,
    PermissionDeniedException: _http_handler,
    NotFoundException: _http_handler,
    HTTPException: _http_handler,
    IntegrityError: _integrity_handler,
    DBAPIError: _dbapi_handler,
    Exception: _internal_handler,
}

__all__ = [
    "EXCEPTION_HANDLERS",
    "PROBLEM_MEDIA_TYPE",
    "AppError",
    "Conflict",
    "FieldError",
    "Forbidden",
    "InvalidInput",
    "NotFound",
    "Problem",
    "Unauthenticated",
    "problem_response",
]
