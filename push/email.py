"""E-mail through SMTP (aiosmtplib): multipart/alternative with a text and an HTML part, both
rendered from Jinja2 templates.

`EmailTemplates` renders ``{name}.txt`` (no escaping) and ``{name}.html`` (autoescaped) for
`Message.template` (``default`` when unset) with ``title``, ``body`` and ``data`` in the
context. Undefined names fail (StrictUndefined), so optional data is read as
``data.get("x")``. The backend passes its own loader for per-organisation and per-language
templates; the package's own ``templates/`` folder is the fallback.

`EmailSender` sends a batch over one SMTP connection (reconnecting after a drop). Failures are
classified by the SMTP reply: 5xx permanent, 4xx retry; connection errors and timeouts retry.
The Message-ID is derived from `Message.dedupe_key` when there is one, so a repeated send of the
same outbox row carries the same Message-ID (mail systems that deduplicate on it drop the copy).
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Sequence
from dataclasses import dataclass
from email.message import EmailMessage
from email.utils import formatdate, make_msgid, parseaddr
from pathlib import Path
from typing import Literal

import aiosmtplib
import jinja2

from push.core import Message, Result

DEFAULT_TEMPLATE = "default"
_TEMPLATES = Path(__file__).parent / "templates"
_SAFE_ID = re.compile(r"^[A-Za-z0-9._-]{1,64}$")


@dataclass(frozen=True)
class SmtpConfig:
    """Where and how to submit mail. `tls`: ``starttls`` (upgrade, required), ``implicit``
    (TLS from the first byte, usually port 465) or ``none`` (local relays and tests only)."""

    host: str
    from_address: str
    port: int = 587
    tls: Literal["starttls", "implicit", "none"] = "starttls"
    username: str | None = None
    password: str | None = None
    timeout: float = 30.0
    validate_certs: bool = True
    cert_bundle: str | None = None
    reply_to: str | None = None


class EmailTemplates:
    """Renders the text and HTML parts of a message from Jinja2 templates."""

    def __init__(self, loader: jinja2.BaseLoader | None = None) -> None:
        """`loader` is searched first, then the package's default templates."""
        fallback = jinja2.FileSystemLoader(_TEMPLATES)
        self._env = jinja2.Environment(
            loader=jinja2.ChoiceLoader([loader, fallback]) if loader else fallback,
            autoescape=jinja2.select_autoescape(enabled_extensions=("html",), default=False),
            undefined=jinja2.StrictUndefined,
            keep_trailing_newline=True,
            trim_blocks=True,
            lstrip_blocks=True,
        )

    def render(self, message: Message) -> tuple[str, str]:
        """(text, html) for `message`; raises jinja2.TemplateError when a template is missing or
        refers to data the message lacks."""
        name = message.template or DEFAULT_TEMPLATE
        context = {"title": message.title, "body": message.body, "data": message.data}
        text = self._env.get_template(f"{name}.txt").render(context)
        html = self._env.get_template(f"{name}.html").render(context)
        return text, html


class EmailSender:
    """`push.core.Sender` for e-mail addresses."""

    def __init__(self, config: SmtpConfig, templates: EmailTemplates | None = None) -> None:
        """Send with `config`, rendering with `templates` (default: the package's)."""
        self._config = config
        self._templates = templates or EmailTemplates()
        self._domain = parseaddr(config.from_address)[1].rpartition("@")[2] or "localhost"

    async def send(self, messages: Sequence[Message]) -> list[Result]:
        """Send each message over one connection; one result per message, in order."""
        results: list[Result] = []
        smtp: aiosmtplib.SMTP | None = None
        try:
            for index, message in enumerate(messages):
                try:
                    email = self.build(message)
                except (jinja2.TemplateError, ValueError, TypeError) as exc:
                    results.append(Result.permanent("TEMPLATE", f"{type(exc).__name__}: {exc}"))
                    continue
                if smtp is None or not smtp.is_connected:
                    try:
                        smtp = await self._connect()
                    except (aiosmtplib.SMTPException, OSError) as exc:
                        # The server is unreachable or refuses us: the same for every message.
                        failure = _classify(exc)
                        results.extend(failure for _ in messages[index:])
                        return results
                try:
                    await smtp.send_message(email)
                except (aiosmtplib.SMTPException, OSError) as exc:
                    results.append(_classify(exc))
                    continue
                results.append(Result.success(str(email["Message-ID"])))
            return results
        finally:
            if smtp is not None and smtp.is_connected:
                try:
                    await smtp.quit()
                except (aiosmtplib.SMTPException, OSError):
                    smtp.close()

    async def aclose(self) -> None:
        """Nothing is held between batches."""

    def build(self, message: Message) -> EmailMessage:
        """The MIME message for `message` (multipart/alternative, text then HTML)."""
        if not isinstance(message.recipient, str) or "@" not in message.recipient:
            raise ValueError("an e-mail recipient is an address")
        text, html = self._templates.render(message)
        email = EmailMessage()
        email["Subject"] = message.title
        email["From"] = self._config.from_address
        email["To"] = message.recipient
        if self._config.reply_to:
            email["Reply-To"] = self._config.reply_to
        email["Date"] = formatdate(localtime=False, usegmt=True)
        email["Message-ID"] = self._message_id(message.dedupe_key)
        if message.dedupe_key is not None:
            email["X-Fieldcrm-Dedupe-Key"] = message.dedupe_key
        email.set_content(text)
        email.add_alternative(html, subtype="html")
        return email

    def _message_id(self, dedupe_key: str | None) -> str:
        if dedupe_key is None:
            return make_msgid(domain=self._domain)
        local = dedupe_key if _SAFE_ID.match(dedupe_key) else _digest(dedupe_key)
        return f"<{local}@{self._domain}>"

    async def _connect(self) -> aiosmtplib.SMTP:
        config = self._config
        smtp = aiosmtplib.SMTP(
            hostname=config.host,
            port=config.port,
            username=config.username,
            password=config.password,
            timeout=config.timeout,
            use_tls=config.tls == "implicit",
            start_tls=config.tls == "starttls",
            validate_certs=config.validate_certs,
            cert_bundle=config.cert_bundle,
        )
        await smtp.connect()
        return smtp


def _digest(value: str) -> str:
    return hashlib.sha256(value.encode()).hexdigest()[:40]


def _classify(exc: BaseException) -> Result:
    if isinstance(exc, aiosmtplib.SMTPRecipientsRefused) and exc.recipients:
        exc = exc.recipients[0]
    if isinstance(exc, aiosmtplib.SMTPResponseException) and exc.code >= 400:
        code = f"SMTP_{exc.code}"
        if exc.code >= 500:
            return Result.permanent(code, exc.message)
        return Result.retry(code, exc.message)
    # Disconnects, timeouts, refused connections, TLS failures and odd replies: try again later.
    return Result.retry("SMTP_CONNECTION", f"{type(exc).__name__}: {exc}")
