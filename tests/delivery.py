"""Local stand-ins for the outside services messages go to, as pytest fixtures (loaded by
tests/conftest.py): the fake FCM HTTP v1 server, an aiosmtpd mailbox, a fake SMS provider, and
the relay's `Channels` wired to all three through the real senders."""

from __future__ import annotations

import asyncio
import functools
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from email import message_from_bytes, policy
from email.message import EmailMessage

import pytest
from aiosmtpd.smtp import SMTP, Envelope, Session

from backend.notifications.channels import Channels, email_templates
from push.email import EmailSender, SmtpConfig
from push.fake_fcm import FakeFcm, generate_private_key_pem
from push.fakehttp import FakeHTTPServer, Request, Response
from push.fcm import FcmConfig, FcmSender
from push.sms import SmsConfig, SmsSender

key_pem = functools.cache(generate_private_key_pem)


@dataclass
class Mailbox:
    """aiosmtpd handler keeping every accepted message."""

    messages: list[EmailMessage] = field(default_factory=list)

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        assert isinstance(envelope.content, bytes)
        parsed = message_from_bytes(envelope.content, policy=policy.default)
        assert isinstance(parsed, EmailMessage)
        self.messages.append(parsed)
        return "250 Message accepted"


@dataclass
class SmsInbox:
    """What the fake SMS provider was asked to send (JSON bodies)."""

    posts: list[Request] = field(default_factory=list)

    async def handle(self, request: Request) -> Response:
        self.posts.append(request)
        return Response.json(200, {"id": f"sms-{len(self.posts)}"})


@pytest.fixture
async def fake() -> AsyncIterator[FakeFcm]:
    async with FakeFcm() as server:
        yield server


@pytest.fixture
async def mailbox() -> AsyncIterator[tuple[Mailbox, int]]:
    box = Mailbox()
    loop = asyncio.get_running_loop()
    server = await loop.create_server(
        lambda: SMTP(box, hostname="mx.test", loop=loop), "127.0.0.1", 0
    )
    yield box, server.sockets[0].getsockname()[1]
    server.close()
    await server.wait_closed()


@pytest.fixture
async def channels(fake: FakeFcm, mailbox: tuple[Mailbox, int]) -> AsyncIterator[Channels]:
    """FCM to the fake and e-mail to the mailbox (SMS off; see `sms_inbox`)."""
    fcm = FcmSender(
        FcmConfig(service_account=fake.service_account("acme", key_pem()), fcm_url=fake.url)
    )
    smtp = SmtpConfig(
        host="127.0.0.1", port=mailbox[1], from_address="Acme <noreply@acme.test>", tls="none"
    )
    chans = Channels(fcm=fcm, email=EmailSender(smtp, email_templates()))
    yield chans
    await chans.aclose()


@pytest.fixture
async def sms_inbox(channels: Channels) -> AsyncIterator[SmsInbox]:
    """Turns the SMS channel on, sending to a local fake provider."""
    inbox = SmsInbox()
    async with FakeHTTPServer(inbox.handle) as server:
        channels.sms = SmsSender(
            SmsConfig(
                url=f"{server.url}/send",
                body_template={"to": "{to}", "text": "{text}"},
                idempotency_header="Idempotency-Key",
                include_title=False,
            )
        )
        yield inbox
