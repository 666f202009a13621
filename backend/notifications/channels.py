"""The delivery channels of the relay, built from the settings: one `push.Sender` per channel,
or None when the channel is not configured (its messages are then marked sent with a note
rather than retried forever).

- ``fcm``: `FIELDCRM_FCM_SERVICE_ACCOUNT` (path to the key JSON; its ``token_uri`` says where
  OAuth tokens come from), `FIELDCRM_FCM_PROJECT_ID` (default: the key's), `FIELDCRM_FCM_URL`
  (default: Google's; a fake's base URL in tests and staging);
- ``email``: `FIELDCRM_SMTP_HOST` and friends; customer messages arrive rendered, so their
  template (``prerendered``) only places the given text and HTML;
- ``webpush``: `FIELDCRM_VAPID_PRIVATE_KEY` / `FIELDCRM_VAPID_SUBJECT`;
- ``sms``: `FIELDCRM_SMS_URL` (a JSON-over-HTTP provider: ``{"to", "text"}`` posted with
  ``Authorization: Bearer FIELDCRM_SMS_TOKEN`` and the dedupe key as ``Idempotency-Key``).
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import jinja2

from backend.config import Settings
from push.core import Sender
from push.email import EmailSender, EmailTemplates, SmtpConfig

EMAIL_TEMPLATES = Path(__file__).parent / "email_templates"
#: Template of customer e-mails: the outbox payload carries the finished text and HTML.
PRERENDERED_TEMPLATE = "prerendered"


@dataclass
class Channels:
    """The configured senders; None means the channel is off."""

    fcm: Sender | None = None
    email: Sender | None = None
    webpush: Sender | None = None
    sms: Sender | None = None

    async def aclose(self) -> None:
        """Release every sender's connections (errors while closing are ignored)."""
        for sender in (self.fcm, self.email, self.webpush, self.sms):
            if sender is not None:
                with contextlib.suppress(Exception):
                    await sender.aclose()


def email_templates() -> EmailTemplates:
    """Our e-mail templates (staff notifications, pre-rendered customer mail), then push's."""
    return EmailTemplates(jinja2.FileSystemLoader(EMAIL_TEMPLATES))


def smtp_config(settings: Settings) -> SmtpConfig | None:
    """SMTP settings, None when no host is set. Without STARTTLS, port 465 means implicit
    TLS and any other port plain SMTP (a local relay)."""
    if not settings.smtp_host:
        return None
    tls: Literal["starttls", "implicit", "none"]
    if settings.smtp_starttls:
        tls = "starttls"
    elif settings.smtp_port == 465:
        tls = "implicit"
    else:
        tls = "none"
    return SmtpConfig(
        host=settings.smtp_host,
        port=settings.smtp_port,
        from_address=settings.smtp_from,
        tls=tls,
        username=settings.smtp_user,
        password=settings.smtp_password,
    )


def channels_from_settings(settings: Settings) -> Channels:
    """Build every configured sender (the FCM key file is read here: a bad one fails start-up)."""
    channels = Channels()
    if settings.fcm_service_account:
        from push.fcm import FcmConfig, FcmSender

        channels.fcm = FcmSender(
            FcmConfig(
                service_account=settings.fcm_service_account,
                project_id=settings.fcm_project_id,
                fcm_url=settings.fcm_url,
            )
        )
    smtp = smtp_config(settings)
    if smtp is not None:
        channels.email = EmailSender(smtp, email_templates())
    if settings.vapid_private_key:
        from push.webpush import VapidConfig, WebPushSender

        channels.webpush = WebPushSender(
            VapidConfig(private_key=settings.vapid_private_key, subject=settings.vapid_subject)
        )
    if settings.sms_url:
        from push.sms import SmsConfig, SmsSender

        headers = {"Authorization": f"Bearer {settings.sms_token}"} if settings.sms_token else {}
        channels.sms = SmsSender(
            SmsConfig(
                url=settings.sms_url,
                body_template={"to": "{to}", "text": "{text}"},
                headers=headers,
                idempotency_header="Idempotency-Key",
                include_title=False,
            )
        )
    return channels
