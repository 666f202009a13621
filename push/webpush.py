"""Web Push (RFC 8030) for the installed web client: payload encrypted with aes128gcm
(RFC 8188/8291, http-ece), sender identified with VAPID (RFC 8292, py-vapid), sent with httpx.

The payload the service worker receives is JSON: ``{"title", "body", "data"}`` where ``data``
carries the dedupe key (`push.core.DEDUPE_DATA_KEY`). `Message.ttl` becomes the TTL header
(default four weeks, the longest push services keep a message), priority the Urgency header,
and the collapse key the Topic header (a newer message with the same topic replaces an
undelivered older one).

Push service answers: 201 success (the Location header names the message), 404/410 the
subscription is gone (the relay deletes it), 429 and 5xx retry after Retry-After, other 4xx
permanent (a bad VAPID key or an oversize payload does not heal by itself).
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
import os
import re
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from urllib.parse import urlsplit

import http_ece
import httpx
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from py_vapid import Vapid02

from push.core import Message, Priority, Result, WebPushSubscription, parse_retry_after

#: Longest TTL push services honour (Mozilla's cap; others cap lower and say so in the answer).
DEFAULT_TTL = 28 * 24 * 3600
#: RFC 8030 push services accept at least 4096 bytes of encrypted body; aes128gcm adds 86 bytes
#: of header, one delimiter byte and a 16-byte tag to the plaintext.
MAX_PLAINTEXT = 4096 - 86 - 1 - 16
_TOPIC = re.compile(r"^[A-Za-z0-9_-]{1,32}$")


@dataclass(frozen=True)
class VapidConfig:
    """The application server's VAPID identity: `private_key` is the base64url raw P-256 key
    (as made by `generate_vapid_keys`) or a PEM; `subject` a ``mailto:`` or ``https:`` contact.
    Tokens are signed for `token_lifetime` seconds (at most 24 h by RFC 8292)."""

    private_key: str
    subject: str
    token_lifetime: int = 12 * 3600


def generate_vapid_keys() -> tuple[str, str]:
    """A new VAPID key pair: (private key, public key), both base64url. The public key is the
    ``applicationServerKey`` the browser subscribes with."""
    key = ec.generate_private_key(ec.SECP256R1())
    private = key.private_numbers().private_value.to_bytes(32, "big")
    public = key.public_key().public_bytes(
        serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint
    )
    return b64url(private), b64url(public)


def b64url(data: bytes) -> str:
    """Unpadded base64url, as Web Push keys are written."""
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def b64url_decode(text: str) -> bytes:
    """Decode base64url with or without padding."""
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


class WebPushSender:
    """`push.core.Sender` for `WebPushSubscription` recipients."""

    def __init__(
        self,
        vapid: VapidConfig,
        *,
        client: httpx.AsyncClient | None = None,
        timeout: float = 10.0,
        concurrency: int = 20,
        clock: Callable[[], float] = time.time,
    ) -> None:
        """Sign with `vapid`; send through `client` (default: an own httpx client) with at most
        `concurrency` requests at a time; `clock` (Unix seconds) dates the VAPID tokens."""
        key = vapid.private_key.strip()
        self._vapid = (
            Vapid02.from_pem(key.encode())
            if key.startswith("-----")
            else Vapid02.from_raw(key.encode())
        )
        self._config = vapid
        self._client = client or httpx.AsyncClient(timeout=timeout)
        self._own_client = client is None
        self._limit = asyncio.Semaphore(concurrency)
        self._clock = clock
        self._tokens: dict[str, tuple[float, str]] = {}

    async def send(self, messages: Sequence[Message]) -> list[Result]:
        """Send every message; one result per message, in order."""
        return list(await asyncio.gather(*(self._send_one(m) for m in messages)))

    async def aclose(self) -> None:
        """Close the HTTP client if the sender made it."""
        if self._own_client:
            await self._client.aclose()

    async def __aenter__(self) -> WebPushSender:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def _send_one(self, message: Message) -> Result:
        subscription = message.recipient
        if not isinstance(subscription, WebPushSubscription):
            return Result.permanent("INVALID_MESSAGE", "a Web Push recipient is a subscription")
        payload = json.dumps(
            {"title": message.title, "body": message.body, "data": message.data_with_dedupe_key()},
            ensure_ascii=False,
            separators=(",", ":"),
        ).encode()
        if len(payload) > MAX_PLAINTEXT:
            return Result.permanent(
                "PAYLOAD_TOO_LARGE", f"{len(payload)} bytes, at most {MAX_PLAINTEXT}"
            )
        try:
            body = encrypt(payload, subscription)
            headers = self._headers(message, subscription.endpoint)
        except (ValueError, TypeError) as exc:
            return Result.permanent("INVALID_SUBSCRIPTION", f"{type(exc).__name__}: {exc}")
        async with self._limit:
            try:
                response = await self._client.post(
                    subscription.endpoint, content=body, headers=headers
                )
            except httpx.HTTPError as exc:
                return Result.retry("NETWORK", f"{type(exc).__name__}: {exc}")
        return _classify(response)

    def _headers(self, message: Message, endpoint: str) -> dict[str, str]:
        headers = {
            "Authorization": self._authorization(endpoint),
            "Content-Encoding": "aes128gcm",
            "Content-Type": "application/octet-stream",
            "TTL": str(message.ttl if message.ttl is not None else DEFAULT_TTL),
            "Urgency": "high" if message.priority is Priority.HIGH else "normal",
        }
        if message.collapse_key:
            headers["Topic"] = topic(message.collapse_key)
        return headers

    def _authorization(self, endpoint: str) -> str:
        parts = urlsplit(endpoint)
        if parts.scheme not in {"http", "https"} or not parts.netloc:
            raise ValueError(f"not a push endpoint URL: {endpoint!r}")
        audience = f"{parts.scheme}://{parts.netloc}"
        now = self._clock()
        cached = self._tokens.get(audience)
        # Reuse a token while it has more than a third of its life left.
        if cached is not None and cached[0] - now > self._config.token_lifetime / 3:
            return cached[1]
        expires = int(now) + self._config.token_lifetime
        claims = {"aud": audience, "exp": expires, "sub": self._config.subject}
        value = str(self._vapid.sign(claims)["Authorization"])
        self._tokens[audience] = (expires, value)
        return value


def encrypt(payload: bytes, subscription: WebPushSubscription) -> bytes:
    """`payload` encrypted for `subscription` (aes128gcm, a fresh sender key and salt)."""
    server_key = ec.generate_private_key(ec.SECP256R1())
    result = http_ece.encrypt(
        payload,
        salt=os.urandom(16),
        private_key=server_key,
        dh=b64url_decode(subscription.p256dh),
        auth_secret=b64url_decode(subscription.auth),
        version="aes128gcm",
    )
    assert isinstance(result, bytes)
    return result


def topic(collapse_key: str) -> str:
    """A Topic header value for `collapse_key`: itself when it fits RFC 8030's 32 base64url
    characters, else a digest of it."""
    if _TOPIC.match(collapse_key):
        return collapse_key
    return b64url(hashlib.sha256(collapse_key.encode()).digest())[:32]


def _classify(response: httpx.Response) -> Result:
    status = response.status_code
    text = response.text[:500] or response.reason_phrase
    code = f"HTTP_{status}"
    if 200 <= status < 300:
        return Result.success(response.headers.get("Location"))
    if status in {404, 410}:
        return Result.unregistered(code, text)
    if status == 429 or status >= 500:
        return Result.retry(code, text, parse_retry_after(response.headers.get("Retry-After")))
    return Result.permanent(code, text)
