"""SMS through a generic HTTP provider: one JSON POST per message (httpx).

Providers differ only in URL, authentication header and body shape, so those are configuration:
`SmsConfig.body_template` is the JSON body with the placeholders ``{to}``, ``{text}`` and
``{dedupe_key}`` inside its strings (substituted in the parsed structure, so quotes in the text
cannot break the JSON), e.g. ``{"from": "ACME", "to": "{to}", "text": "{text}"}``. The text is
``title`` and ``body`` on two lines (the body alone when the title is empty or `include_title`
is off).

Answers: 2xx success (the message id read from `id_field`, a dotted path into the JSON answer),
408/429/5xx and network errors retry (after Retry-After), other 4xx permanent.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import httpx

from push.core import Message, Result, parse_retry_after

_PLACEHOLDER = re.compile(r"\{(to|text|dedupe_key)\}")
_E164 = re.compile(r"^\+[1-9]\d{6,14}$")


@dataclass(frozen=True)
class SmsConfig:
    """A provider's API: where to post, which headers (e.g. Authorization), the body shape,
    where the answer names the message (`id_field`, e.g. ``messages.0.id``), and the header
    that carries the dedupe key for providers that deduplicate (`idempotency_header`)."""

    url: str
    body_template: Mapping[str, Any]
    headers: Mapping[str, str] = field(default_factory=dict)
    id_field: str | None = "id"
    idempotency_header: str | None = None
    include_title: bool = True
    timeout: float = 10.0


class SmsSender:
    """`push.core.Sender` for phone numbers in E.164 form (``+4915112345678``)."""

    def __init__(
        self, config: SmsConfig, *, client: httpx.AsyncClient | None = None, concurrency: int = 10
    ) -> None:
        """Post through `client` (default: an own httpx client), `concurrency` at a time."""
        self._config = config
        self._client = client or httpx.AsyncClient(timeout=config.timeout)
        self._own_client = client is None
        self._limit = asyncio.Semaphore(concurrency)

    async def send(self, messages: Sequence[Message]) -> list[Result]:
        """Send every message; one result per message, in order."""
        return list(await asyncio.gather(*(self._send_one(m) for m in messages)))

    async def aclose(self) -> None:
        """Close the HTTP client if the sender made it."""
        if self._own_client:
            await self._client.aclose()

    async def __aenter__(self) -> SmsSender:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    def body(self, message: Message) -> Any:
        """The JSON body posted for `message`."""
        with_title = self._config.include_title and message.title
        text = f"{message.title}\n{message.body}" if with_title else message.body
        values = {
            "to": str(message.recipient),
            "text": text,
            "dedupe_key": message.dedupe_key or "",
        }
        return _fill(self._config.body_template, values)

    async def _send_one(self, message: Message) -> Result:
        if not isinstance(message.recipient, str) or not _E164.match(message.recipient):
            return Result.permanent("INVALID_RECIPIENT", "an SMS recipient is an E.164 number")
        headers = dict(self._config.headers)
        if self._config.idempotency_header and message.dedupe_key:
            headers[self._config.idempotency_header] = message.dedupe_key
        async with self._limit:
            try:
                response = await self._client.post(
                    self._config.url, json=self.body(message), headers=headers
                )
            except httpx.HTTPError as exc:
                return Result.retry("NETWORK", f"{type(exc).__name__}: {exc}")
        return self._classify(response)

    def _classify(self, response: httpx.Response) -> Result:
        status = response.status_code
        code = f"HTTP_{status}"
        if 200 <= status < 300:
            return Result.success(_lookup(response, self._config.id_field))
        text = response.text[:500] or response.reason_phrase
        if status in {408, 429} or status >= 500:
            return Result.retry(code, text, parse_retry_after(response.headers.get("Retry-After")))
        return Result.permanent(code, text)


def _fill(template: Any, values: Mapping[str, str]) -> Any:
    if isinstance(template, str):
        return _PLACEHOLDER.sub(lambda m: values[m.group(1)], template)
    if isinstance(template, Mapping):
        return {key: _fill(value, values) for key, value in template.items()}
    if isinstance(template, list | tuple):
        return [_fill(item, values) for item in template]
    return template


def _lookup(response: httpx.Response, path: str | None) -> str | None:
    if not path:
        return None
    try:
        node: Any = response.json()
    except ValueError:
        return None
    for part in path.split("."):
        if isinstance(node, list) and part.isdigit() and int(part) < len(node):
            node = node[int(part)]
        elif isinstance(node, dict) and part in node:
            node = node[part]
        else:
            return None
    return None if node is None or isinstance(node, dict | list) else str(node)
