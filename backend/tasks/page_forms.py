"""What the field worker's page endpoints share: reading a form into the API's own request
struct (same validation, errors by field), the time an offline action was really taken, and
``Idempotency-Key`` handling with the API's mechanism (``backend.lib.idempotency``).

A page answers a refused input by drawing the form again with the reason at its field, so the
request still succeeds as a transaction. `attempt` therefore runs the change in a SAVEPOINT:
a refusal rolls back whatever the service wrote (and the key it claimed), so nothing is
half-written and a retry with the same key runs again.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, TypeVar
from urllib.parse import parse_qsl

import msgspec
from sqlalchemy.ext.asyncio import AsyncSession

from backend.lib import idempotency
from backend.lib.errors import AppError, FieldError, InvalidInput, MalformedInput
from backend.lib.tenancy import Actor

T = TypeVar("T")

RECORDED_AT_FIELD = "recordedAt"
MAX_OFFLINE_AGE = timedelta(hours=12)
"""A queued action replayed later keeps the time it was taken, if it is at most this old."""
CLOCK_SKEW = timedelta(minutes=5)

_AT_PATH = re.compile(r"\s*-\s*at\s*`\$\.?(?P<path>[^`]*)`\s*$")


def form_fields(body: bytes) -> dict[str, str]:
    """An ``application/x-www-form-urlencoded`` body as a dict; the CSRF field and empty
    values are dropped (an empty optional input means "not given")."""
    try:
        pairs = parse_qsl(body.decode("utf-8"), keep_blank_values=False, strict_parsing=False)
    except UnicodeDecodeError as exc:
        raise MalformedInput.on("body", "not UTF-8 form data") from exc
    return {k: v.strip() for k, v in pairs if k != "_csrf_token" and v.strip()}


def convert(fields: dict[str, Any], kind: type[T]) -> T:
    """``fields`` as the API's request struct ``kind`` (numbers and booleans from strings),
    or 422 naming the field."""
    try:
        return msgspec.convert(fields, kind, strict=False)
    except msgspec.ValidationError as exc:
        message = str(exc)
        match = _AT_PATH.search(message)
        if match:
            raise InvalidInput.on(match.group("path") or "body", message[: match.start()]) from exc
        if message.startswith("Object missing required field"):
            name = message.split("`")[1]
            raise InvalidInput.on(name, "required") from exc
        if message.startswith("Object contains unknown field"):
            raise InvalidInput.on(message.split("`")[1], "unknown field") from exc
        raise InvalidInput.on("body", message) from exc


def recorded_at(fields: dict[str, str], now: datetime) -> datetime:
    """When the worker really took the action: ``recordedAt`` (sent by the offline queue)
    when it is an aware ISO time at most 12 hours old and not in the future, else ``now``."""
    raw = fields.pop(RECORDED_AT_FIELD, None)
    if raw is None:
        return now
    try:
        moment = datetime.fromisoformat(raw.replace("Z", "+00:00"))
    except ValueError as exc:
        raise InvalidInput.on(RECORDED_AT_FIELD, "not an ISO 8601 time") from exc
    if moment.tzinfo is None:
        raise InvalidInput.on(RECORDED_AT_FIELD, "needs a time zone offset")
    if moment > now + CLOCK_SKEW:
        raise InvalidInput.on(RECORDED_AT_FIELD, "is in the future")
    if moment < now - MAX_OFFLINE_AGE:
        raise InvalidInput.on(RECORDED_AT_FIELD, "older than 12 hours: do it again")
    return min(moment, now)


def form_hash(prefix: bytes, fields: dict[str, str]) -> str:
    """The idempotency hash of a form action: what it asks for, without ``recordedAt`` (the
    offline queue adds the time to a request that may already have reached us)."""
    canonical = "&".join(
        f"{k}={v}" for k, v in sorted(fields.items()) if k != RECORDED_AT_FIELD
    ).encode()
    return idempotency.body_hash(prefix + b"\0" + canonical)


@dataclass(frozen=True, slots=True)
class Outcome:
    """What became of a page action: done now, a replay of a key already done, or refused
    (nothing written) with the error to show at its field."""

    replay: bool = False
    error: AppError | None = None
    answer: Any = None

    @property
    def status(self) -> int:
        """The HTTP status to answer with."""
        return self.error.status if self.error else 200

    def errors(self) -> dict[str, str]:
        """Field → reason, for the form (the detail under ``_`` when no field is named)."""
        if self.error is None:
            return {}
        shown: dict[str, str] = {e.field: e.reason for e in self.error.errors}
        return shown or {"_": self.error.detail}


async def attempt(
    session: AsyncSession,
    actor: Actor,
    *,
    scope: str,
    key: str | None,
    request_hash: str,
    now: datetime,
    run: Callable[[], Awaitable[Any]],
) -> Outcome:
    """Run ``run`` once per ``Idempotency-Key`` (when given) inside a savepoint. Its return
    value (JSON-able) is stored as the key's answer; a replay with the same key and body does
    nothing and reports the stored answer; a refusal (`AppError`) rolls back and is returned."""
    checked = idempotency.check_key(key) if key is not None else None
    savepoint = await session.begin_nested()
    try:
        if checked is not None:
            earlier = await idempotency.claim(
                session,
                organization_id=actor.organization_id,
                user_id=actor.user_id,
                scope=scope,
                key=checked,
                request_hash=request_hash,
                now=now,
            )
            if earlier is not None:
                await savepoint.commit()
                return Outcome(replay=True, answer=earlier[1])
        answer = await run()
        if checked is not None:
            await idempotency.store(
                session, user_id=actor.user_id, scope=scope, key=checked, status=200, body=answer
            )
        await savepoint.commit()
    except AppError as exc:
        await savepoint.rollback()
        return Outcome(error=exc)
    return Outcome(answer=answer)


def one_error(field: str, reason: str) -> AppError:
    """A 422 about one field (for checks made by the page itself)."""
    return InvalidInput(f"{field}: {reason}", errors=[FieldError(field=field, reason=reason)])


def new_key() -> str:
    """A fresh idempotency key (the forms carry one so a double tap is stored once)."""
    return uuid.uuid4().hex
