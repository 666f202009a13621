"""Request and response bodies of the customer-notification API."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Literal

import msgspec

from backend.accounts.schemas import Input, Output


class OnMyWayIn(Input):
    """The worker sets off; ``etaMinutes`` overrides the route's ETA (e.g. from the phone's
    navigation)."""

    eta_minutes: Annotated[int, msgspec.Meta(ge=1, le=12 * 60)] | None = None


class OnMyWayOut(Output):
    """``queued``: the customer is told; ``duplicate``: they were told already (and the link
    still works); ``no_contact`` / ``unsubscribed``: nobody to tell."""

    status: str
    eta: datetime


class RevokedOut(Output):
    revoked: int


class FeedbackOut(Output):
    task_id: uuid.UUID
    rating: int
    comment: str | None
    submitted_at: datetime


TemplateText = Annotated[str, msgspec.Meta(min_length=1, max_length=20_000)]


class TemplateIn(Input):
    """An organisation's wording of one message (sandboxed Jinja2; see the variables in
    ``backend.notifications.customer.render``)."""

    subject: Annotated[str, msgspec.Meta(min_length=1, max_length=1000)]
    text: TemplateText
    html: TemplateText


class TemplateOut(Output):
    kind: str
    language: str
    subject: str
    text: str
    html: str
    source: Literal["organization", "default"]
    variables: list[str]
    updated_at: datetime | None = None


class TrackingPositionOut(Output):
    """What the public tracking page polls."""

    status: Literal["en_route", "arrived"]
    worker: str
    eta: datetime | None
    lat: float | None = None
    lon: float | None = None
    recorded_at: datetime | None = None
