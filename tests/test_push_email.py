"""EmailSender against a local aiosmtpd server (plain, and STARTTLS with AUTH)."""

from __future__ import annotations

import asyncio
import datetime as dt
import ipaddress
import socket
import ssl
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from email import message_from_bytes, policy
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import jinja2
import pytest
from aiosmtpd.smtp import SMTP, AuthResult, Envelope, LoginPassword, Session
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from push.core import Message, Outcome
from push.email import EmailSender, EmailTemplates, SmtpConfig

FROM = "Acme Windows <noreply@acme.example>"


@dataclass
class Mailbox:
    """aiosmtpd handler: records accepted mail, refuses scripted recipients."""

    refuse: dict[str, str] = field(default_factory=dict)
    reject_data: dict[str, str] = field(default_factory=dict)
    drop_connection_for: set[str] = field(default_factory=set)
    messages: list[EmailMessage] = field(default_factory=list)
    sessions: list[Session] = field(default_factory=list)
    connections: int = 0

    async def handle_RCPT(
        self, server: SMTP, session: Session, envelope: Envelope, address: str, options: Any
    ) -> str:
        if address in self.refuse:
            return self.refuse[address]
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        [rcpt] = envelope.rcpt_tos
        if rcpt in self.drop_connection_for:
            self.drop_connection_for.discard(rcpt)
            assert server.transport is not None
            server.transport.close()
            return "250 OK"
        if rcpt in self.reject_data:
            return self.reject_data[rcpt]
        assert isinstance(envelope.content, bytes)
        parsed = message_from_bytes(envelope.content, policy=policy.default)
        assert isinstance(parsed, EmailMessage)
        self.messages.append(parsed)
        self.sessions.append(session)
        return "250 Message accepted"


@dataclass
class SmtpServer:
    mailbox: Mailbox
    port: int


async def _serve(mailbox: Mailbox, **smtp_kwargs: Any) -> tuple[asyncio.Server, int]:
    loop = asyncio.get_running_loop()

    def factory() -> SMTP:
        mailbox.connections += 1
        return SMTP(mailbox, hostname="mx.test", loop=loop, **smtp_kwargs)

    server = await loop.create_server(factory, "127.0.0.1", 0)
    return server, server.sockets[0].getsockname()[1]


@pytest.fixture
async def smtp() -> AsyncIterator[SmtpServer]:
    mailbox = Mailbox()
    server, port = await _serve(mailbox)
    yield SmtpServer(mailbox, port)
    server.close()
    await server.wait_closed()


def _sender(port: int, templates: EmailTemplates | None = None) -> EmailSender:
    config = SmtpConfig(host="127.0.0.1", port=port, from_address=FROM, tls="none", timeout=5)
    return EmailSender(config, templates)


def _mail(to: str, **kw: Any) -> Message:
    fields: dict[str, Any] = {"recipient": to, "title": "Visit booked", "body": "Tue 10-12"}
    fields.update(kw)
    return Message(**fields)


def _parts(mail: EmailMessage) -> tuple[str, str]:
    text = mail.get_body(("plain",))
    html = mail.get_body(("html",))
    assert text is not None
    assert html is not None
    # Lines travel as CRLF on the wire.
    return text.get_content().replace("\r\n", "\n"), html.get_content().replace("\r\n", "\n")


async def test_text_and_html_parts_with_escaping_only_in_html(smtp: SmtpServer) -> None:
    message = _mail(
        "ann@customer.example",
        title="Visit <b>booked</b>",
        body="Tom & Jerry <script>alert(1)</script>\nsecond line",
        data={"link": "https://acme.example/t/abc?x=1&y=2"},
        dedupe_key="outbox-17",
    )

    [result] = await _sender(smtp.port).send([message])

    assert result.outcome is Outcome.OK
    [mail] = smtp.mailbox.messages
    assert mail.get_content_type() == "multipart/alternative"
    assert mail["Subject"] == "Visit <b>booked</b>"
    assert mail["From"] == FROM
    assert mail["To"] == "ann@customer.example"
    assert mail["Message-ID"] == "<outbox-17@acme.example>" == result.provider_id
    assert mail["X-Fieldcrm-Dedupe-Key"] == "outbox-17"
    text, html = _parts(mail)
    assert "Tom & Jerry <script>alert(1)</script>\nsecond line" in text
    assert text.endswith("second line\n\nhttps://acme.example/t/abc?x=1&y=2\n")
    assert "Tom &amp; Jerry &lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert "<script>" not in html
    assert "<title>Visit &lt;b&gt;booked&lt;/b&gt;</title>" in html
    assert 'href="https://acme.example/t/abc?x=1&amp;y=2"' in html


async def test_batch_uses_one_connection_and_unique_message_ids(smtp: SmtpServer) -> None:
    messages = [_mail(f"c{i}@customer.example", body=f"visit {i}") for i in range(5)]

    results = await _sender(smtp.port).send(messages)

    assert all(r.ok for r in results)
    assert smtp.mailbox.connections == 1
    assert [m["To"] for m in smtp.mailbox.messages] == [m.recipient for m in messages]
    ids = [r.provider_id for r in results]
    assert len(set(ids)) == 5
    assert all(i and i.endswith("@acme.example>") for i in ids)


async def test_dedupe_key_unsafe_for_a_message_id_is_hashed(smtp: SmtpServer) -> None:
    results = await _sender(smtp.port).send(
        [
            _mail("a@customer.example", dedupe_key="org 1/visit <9>"),
            _mail("a@customer.example", dedupe_key="org 1/visit <9>"),
        ]
    )

    assert results[0].provider_id == results[1].provider_id
    local = (results[0].provider_id or "").strip("<>").split("@")[0]
    assert len(local) == 40
    assert all(c in "0123456789abcdef" for c in local)


async def test_custom_templates_first_then_package_default(smtp: SmtpServer) -> None:
    loader = jinja2.DictLoader(
        {
            "de/visit_booked.txt": "Hallo {{ data.name }}, Termin: {{ data.window }}\n",
            "de/visit_booked.html": "<p>Hallo {{ data.name }}, Termin: {{ data.window }}</p>",
        }
    )
    sender = _sender(smtp.port, EmailTemplates(loader))

    results = await sender.send(
        [
            _mail(
                "b@customer.example",
                template="de/visit_booked",
                data={"name": "Jörg <J>", "window": "Di 10–12"},
            ),
            _mail("c@customer.example", title="Fallback"),
            _mail("d@customer.example", template="de/missing"),
            _mail("e@customer.example", template="de/visit_booked", data={"name": "no window"}),
        ]
    )

    assert [r.outcome for r in results] == [
        Outcome.OK,
        Outcome.OK,
        Outcome.PERMANENT,
        Outcome.PERMANENT,
    ]
    assert results[2].error_code == "TEMPLATE"
    assert "de/missing" in (results[2].error_message or "")
    assert "window" in (results[3].error_message or "")
    custom, fallback = smtp.mailbox.messages
    text, html = _parts(custom)
    assert text == "Hallo Jörg <J>, Termin: Di 10–12\n"
    assert "<p>Hallo Jörg &lt;J&gt;, Termin: Di 10–12</p>" in html
    assert "Fallback" in _parts(fallback)[0]


async def test_refused_recipients_and_data_are_classified(smtp: SmtpServer) -> None:
    smtp.mailbox.refuse["gone@customer.example"] = "550 5.1.1 No such user"
    smtp.mailbox.refuse["full@customer.example"] = "452 4.2.2 Mailbox full"
    smtp.mailbox.reject_data["spam@customer.example"] = "554 5.7.1 Message rejected"
    messages = [
        _mail("gone@customer.example"),
        _mail("full@customer.example"),
        _mail("spam@customer.example"),
        _mail("ok@customer.example"),
        _mail("not-an-address"),
    ]

    results = await _sender(smtp.port).send(messages)

    assert [(r.outcome, r.error_code) for r in results] == [
        (Outcome.PERMANENT, "SMTP_550"),
        (Outcome.RETRY, "SMTP_452"),
        (Outcome.PERMANENT, "SMTP_554"),
        (Outcome.OK, None),
        (Outcome.PERMANENT, "TEMPLATE"),
    ]
    assert "No such user" in (results[0].error_message or "")
    assert [m["To"] for m in smtp.mailbox.messages] == ["ok@customer.example"]


async def test_dropped_connection_is_retried_and_the_rest_goes_through_a_new_one(
    smtp: SmtpServer,
) -> None:
    smtp.mailbox.drop_connection_for.add("first@customer.example")

    results = await _sender(smtp.port).send(
        [_mail("first@customer.example"), _mail("second@customer.example")]
    )

    assert [r.outcome for r in results] == [Outcome.RETRY, Outcome.OK]
    assert results[0].error_code == "SMTP_CONNECTION"
    assert smtp.mailbox.connections == 2
    assert [m["To"] for m in smtp.mailbox.messages] == ["second@customer.example"]


async def test_unreachable_server_retries_every_message() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]

    results = await _sender(port).send([_mail("a@x.example"), _mail("b@x.example")])

    assert [r.outcome for r in results] == [Outcome.RETRY, Outcome.RETRY]
    assert results[0].error_code == "SMTP_CONNECTION"


def _self_signed(tmp: Path) -> tuple[ssl.SSLContext, Path]:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "mx.test")])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(hours=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = tmp / "cert.pem", tmp / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert_path, key_path)
    return context, cert_path


def _authenticator(
    user: str, password: str
) -> Callable[[SMTP, Session, Envelope, str, Any], AuthResult]:
    def check(
        server: SMTP, session: Session, envelope: Envelope, mechanism: str, data: Any
    ) -> AuthResult:
        ok = (
            isinstance(data, LoginPassword)
            and data.login == user.encode()
            and data.password == password.encode()
        )
        return AuthResult(success=ok, handled=False)

    return check


@pytest.mark.parametrize(
    ("password", "outcome", "code"),
    [("s3cret", Outcome.OK, None), ("wrong", Outcome.PERMANENT, "SMTP_535")],
)
async def test_starttls_and_login(
    tmp_path: Path, password: str, outcome: Outcome, code: str | None
) -> None:
    context, cert_path = _self_signed(tmp_path)
    mailbox = Mailbox()
    server, port = await _serve(
        mailbox,
        tls_context=context,
        require_starttls=True,
        auth_required=True,
        authenticator=_authenticator("relay", "s3cret"),
    )
    config = SmtpConfig(
        host="127.0.0.1",
        port=port,
        from_address=FROM,
        tls="starttls",
        username="relay",
        password=password,
        cert_bundle=str(cert_path),
        timeout=5,
    )
    try:
        results = await EmailSender(config).send([_mail("a@x.example"), _mail("b@x.example")])
    finally:
        server.close()
        await server.wait_closed()

    assert [(r.outcome, r.error_code) for r in results] == [(outcome, code)] * 2
    if outcome is Outcome.OK:
        assert len(mailbox.messages) == 2
        assert all(s.ssl is not None and s.authenticated for s in mailbox.sessions)
    else:
        assert mailbox.messages == []


async def test_untrusted_certificate_is_refused(tmp_path: Path) -> None:
    context, _cert_path = _self_signed(tmp_path)
    mailbox = Mailbox()
    server, port = await _serve(mailbox, tls_context=context, require_starttls=True)
    config = SmtpConfig(host="127.0.0.1", port=port, from_address=FROM, tls="starttls", timeout=5)
    try:
        [result] = await EmailSender(config).send([_mail("a@x.example")])
    finally:
        server.close()
        await server.wait_closed()

    assert result.outcome is Outcome.RETRY
    assert result.error_code == "SMTP_CONNECTION"
    assert "certificate" in (result.error_message or "").lower()
    assert mailbox.messages == []
