"""Delivery of notifications to phones, browsers, mailboxes and SMS: a pure library.

Every sender implements `Sender`: ``await sender.send(messages) -> list[Result]``, one result per
message in the same order, each either OK (with the provider's id) or a classified failure the
relay acts on (`Outcome.UNREGISTERED`: delete the token; `Outcome.RETRY`: try again after
`Result.retry_after`; `Outcome.PERMANENT`: dead-letter).

- `push.fcm.FcmSender`: FCM HTTP v1 through firebase-admin (device registration tokens)
- `push.webpush.WebPushSender`: Web Push with VAPID (browser subscriptions)
- `push.email.EmailSender`: SMTP, text and HTML from Jinja2 templates
- `push.sms.SmsSender`: a generic HTTP SMS provider
- `push.ratelimit.RateLimiter`: per-device token buckets (FCM's limits)
- `push.fake_fcm.FakeFcm`: a fake FCM server for tests and staging

The senders live in their modules so that importing `push` loads none of their dependencies.
"""

from push.core import (
    DEDUPE_DATA_KEY,
    Message,
    Outcome,
    Priority,
    Result,
    Sender,
    WebPushSubscription,
    parse_retry_after,
)

__all__ = [
    "DEDUPE_DATA_KEY",
    "Message",
    "Outcome",
    "Priority",
    "Result",
    "Sender",
    "WebPushSubscription",
    "parse_retry_after",
]
