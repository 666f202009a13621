"""What every sender shares: the message, the classified result and the `Sender` protocol.

A sender takes a batch of `Message` and answers one `Result` per message, in the same order, and
never raises for a failure of a single message: the relay decides from `Result.outcome` what to
do (delete the device token, retry later, dead-letter).
"""

from __future__ import annotations

import enum
import math
from collections.abc import Sequence
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Protocol

import msgspec

#: The data key that carries `Message.dedupe_key` to receivers (FCM data, Web Push payload),
#: so an app can drop a repeat of a message it has already shown.
DEDUPE_DATA_KEY = "dedupe_key"


class Priority(enum.StrEnum):
    """Delivery urgency: `high` wakes a dozing phone (FCM high, APNs 10, Web Push Urgency high)."""

    HIGH = "high"
    NORMAL = "normal"


class Outcome(enum.StrEnum):
    """How a send ended, as the relay needs to act on it."""

    OK = "ok"
    #: The token or subscription is gone for good: delete it, do not retry.
    UNREGISTERED = "unregistered"
    #: Transient (quota, unavailable, network): try again, no sooner than `retry_after`.
    RETRY = "retry"
    #: Anything else: retrying the same message will not help.
    PERMANENT = "permanent"


class WebPushSubscription(msgspec.Struct, frozen=True):
    """A browser's PushSubscription as JSON-serialised by the client (keys base64url)."""

    endpoint: str
    p256dh: str
    auth: str


class Message(msgspec.Struct, frozen=True, kw_only=True):
    """One message to one recipient.

    `recipient` is a device registration token (FCM), an e-mail address, a phone number in E.164
    (SMS) or a `WebPushSubscription`. `title` and `body` are plain text; `data` is delivered as
    is (FCM data, Web Push payload, e-mail template context). `ttl` is in seconds. `template`
    names the e-mail template (see `push.email`); other senders ignore it. `apns_headers` are
    added to (and override) the APNs headers derived from priority, ttl and collapse key.
    """

    recipient: str | WebPushSubscription
    title: str
    body: str
    data: dict[str, str] = {}
    priority: Priority = Priority.NORMAL
    ttl: int | None = None
    collapse_key: str | None = None
    apns_headers: dict[str, str] = {}
    dedupe_key: str | None = None
    template: str | None = None

    def data_with_dedupe_key(self) -> dict[str, str]:
        """`data` plus the dedupe key under `DEDUPE_DATA_KEY` when there is one."""
        if self.dedupe_key is None:
            return dict(self.data)
        return {**self.data, DEDUPE_DATA_KEY: self.dedupe_key}


class Result(msgspec.Struct, frozen=True, kw_only=True):
    """The answer for one message: success with the provider's id, or a classified failure."""

    outcome: Outcome
    provider_id: str | None = None
    retry_after: float | None = None
    error_code: str | None = None
    error_message: str | None = None

    @property
    def ok(self) -> bool:
        """True when the provider accepted the message."""
        return self.outcome is Outcome.OK

    @classmethod
    def success(cls, provider_id: str | None) -> Result:
        """The provider accepted the message (`provider_id` when it names one)."""
        return cls(outcome=Outcome.OK, provider_id=provider_id)

    @classmethod
    def unregistered(cls, code: str, message: str) -> Result:
        """The recipient is gone: the relay deletes the token or subscription."""
        return cls(outcome=Outcome.UNREGISTERED, error_code=code, error_message=message)

    @classmethod
    def retry(cls, code: str, message: str, retry_after: float | None = None) -> Result:
        """A transient failure; `retry_after` (seconds) when the provider said how long to wait."""
        return cls(
            outcome=Outcome.RETRY, error_code=code, error_message=message, retry_after=retry_after
        )

    @classmethod
    def permanent(cls, code: str, message: str) -> Result:
        """A failure that the same message will meet again."""
        return cls(outcome=Outcome.PERMANENT, error_code=code, error_message=message)


class Sender(Protocol):
    """Delivers messages through one channel."""

    async def send(self, messages: Sequence[Message]) -> list[Result]:
        """Send every message; one `Result` per message, in the same order."""
        ...

    async def aclose(self) -> None:
        """Release connections, threads and provider apps held by the sender."""
        ...


def parse_retry_after(value: str | None, now: datetime | None = None) -> float | None:
    """Seconds to wait from a Retry-After header (delta-seconds or HTTP-date), None if absent or
    unreadable; never negative."""
    if value is None:
        return None
    value = value.strip()
    try:
        seconds = float(value)
    except ValueError:
        try:
            when = parsedate_to_datetime(value)
        except (TypeError, ValueError):
            return None
        if when.tzinfo is None:
            when = when.replace(tzinfo=UTC)
        seconds = (when - (now or datetime.now(UTC))).total_seconds()
    if not math.isfinite(seconds):
        return None
    return max(seconds, 0.0)
