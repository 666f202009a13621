"""WebPushSender end to end against a local fake push service that checks VAPID and the
aes128gcm body; the test decrypts each payload as the browser would."""

from __future__ import annotations

import itertools
import json
import os
import socket
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import http_ece
import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from push.core import DEDUPE_DATA_KEY, Message, Outcome, Priority, WebPushSubscription
from push.fakehttp import FakeHTTPServer, Request, Response
from push.webpush import (
    MAX_PLAINTEXT,
    VapidConfig,
    WebPushSender,
    b64url,
    b64url_decode,
    generate_vapid_keys,
    topic,
)


@dataclass
class Browser:
    """A subscribed browser: its key pair and auth secret."""

    key: ec.EllipticCurvePrivateKey
    auth: bytes
    subscription: WebPushSubscription

    def decrypt(self, body: bytes) -> dict[str, object]:
        plain = http_ece.decrypt(body, private_key=self.key, auth_secret=self.auth)
        loaded = json.loads(plain)
        assert isinstance(loaded, dict)
        return loaded


@dataclass
class PushService:
    """A fake push service: accepts pushes for subscriptions created with `server_key`."""

    server_key: str
    http: FakeHTTPServer | None = None
    answers: dict[str, Response] = field(default_factory=dict)
    received: list[Request] = field(default_factory=list)
    ids: itertools.count[int] = field(default_factory=lambda: itertools.count(1))

    @property
    def url(self) -> str:
        assert self.http is not None
        return self.http.url

    def subscribe(self, name: str) -> Browser:
        key = ec.generate_private_key(ec.SECP256R1())
        auth = os.urandom(16)
        public = key.public_key().public_bytes(
            serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint
        )
        subscription = WebPushSubscription(
            endpoint=f"{self.url}/push/{name}", p256dh=b64url(public), auth=b64url(auth)
        )
        return Browser(key, auth, subscription)

    async def handle(self, request: Request) -> Response:
        if request.method != "POST" or not request.path.startswith("/push/"):
            return Response(404)
        refusal = self._check(request)
        if refusal is not None:
            return Response(refusal[0], refusal[1].encode())
        self.received.append(request)
        name = request.path.removeprefix("/push/")
        if name in self.answers:
            return self.answers[name]
        return Response(201, headers={"Location": f"{self.url}/m/{next(self.ids)}"})

    def _check(self, request: Request) -> tuple[int, str] | None:
        scheme, _, params = request.headers.get("authorization", "").partition(" ")
        fields = dict(p.strip().split("=", 1) for p in params.split(",") if "=" in p)
        if scheme != "vapid" or not {"t", "k"} <= fields.keys():
            return 401, "missing VAPID authorization"
        if fields["k"] != self.server_key:
            return 403, "key does not match the subscription's applicationServerKey"
        public = ec.EllipticCurvePublicKey.from_encoded_point(
            ec.SECP256R1(), b64url_decode(fields["k"])
        )
        try:
            claims = jwt.decode(fields["t"], public, algorithms=["ES256"], audience=self.url)
        except jwt.InvalidTokenError as exc:
            return 403, f"bad VAPID token: {exc}"
        if claims["exp"] > time.time() + 24 * 3600:
            return 403, "VAPID token lives longer than 24 h"
        if not str(claims.get("sub", "")).startswith(("mailto:", "https:")):
            return 403, "VAPID subject is not a contact URI"
        if request.headers.get("content-encoding") != "aes128gcm":
            return 415, "Content-Encoding must be aes128gcm"
        if not request.headers.get("ttl", "").isdigit():
            return 400, "TTL header required"
        if len(request.body) > 4096:
            return 413, "payload too large"
        return None


@pytest.fixture
def vapid() -> tuple[str, str]:
    return generate_vapid_keys()


@pytest.fixture
async def service(vapid: tuple[str, str]) -> AsyncIterator[PushService]:
    push_service = PushService(server_key=vapid[1])
    async with FakeHTTPServer(push_service.handle) as http:
        push_service.http = http
        yield push_service


@pytest.fixture
async def sender(vapid: tuple[str, str]) -> AsyncIterator[WebPushSender]:
    config = VapidConfig(private_key=vapid[0], subject="mailto:ops@acme.example")
    async with WebPushSender(config) as s:
        yield s


def _push(to: WebPushSubscription | str, **kw: object) -> Message:
    fields: dict[str, object] = {"recipient": to, "title": "Route changed", "body": "2 new stops"}
    fields.update(kw)
    return Message(**fields)  # type: ignore[arg-type]


async def test_payload_arrives_encrypted_and_decrypts_in_the_browser(
    service: PushService, sender: WebPushSender
) -> None:
    anna, ben = service.subscribe("anna"), service.subscribe("ben")

    results = await sender.send(
        [
            _push(
                anna.subscription,
                title="Visit in 15 min",
                body="Müller, Hauptstr. 5",
                data={"task_id": "7"},
                dedupe_key="outbox-1",
                priority=Priority.HIGH,
                ttl=600,
                collapse_key="task-7",
            ),
            _push(ben.subscription),
        ]
    )

    assert [r.outcome for r in results] == [Outcome.OK, Outcome.OK]
    assert [r.provider_id for r in results] == [f"{service.url}/m/1", f"{service.url}/m/2"]
    to_anna, to_ben = service.received
    assert to_anna.path == "/push/anna"
    assert anna.decrypt(to_anna.body) == {
        "title": "Visit in 15 min",
        "body": "Müller, Hauptstr. 5",
        "data": {"task_id": "7", DEDUPE_DATA_KEY: "outbox-1"},
    }
    assert to_anna.headers["ttl"] == "600"
    assert to_anna.headers["urgency"] == "high"
    assert to_anna.headers["topic"] == "task-7"
    assert to_anna.headers["content-type"] == "application/octet-stream"
    assert ben.decrypt(to_ben.body)["title"] == "Route changed"
    assert to_ben.headers["urgency"] == "normal"
    assert int(to_ben.headers["ttl"]) == 28 * 24 * 3600
    assert "topic" not in to_ben.headers
    with pytest.raises(Exception, match=r"(?i)decrypt|tag|invalid"):
        ben.decrypt(to_anna.body)  # only the addressee can read it


@pytest.mark.parametrize(
    ("answer", "outcome", "retry_after"),
    [
        (Response(404), Outcome.UNREGISTERED, None),
        (
            Response(410, b"push subscription has unsubscribed or expired."),
            Outcome.UNREGISTERED,
            None,
        ),
        (Response(429, headers={"Retry-After": "30"}), Outcome.RETRY, 30.0),
        (Response(503, headers={"Retry-After": "5"}), Outcome.RETRY, 5.0),
        (Response(500), Outcome.RETRY, None),
        (Response(400, b"bad request"), Outcome.PERMANENT, None),
    ],
)
async def test_push_service_answers_are_classified(
    service: PushService,
    sender: WebPushSender,
    answer: Response,
    outcome: Outcome,
    retry_after: float | None,
) -> None:
    service.answers["broken"] = answer
    broken, fine = service.subscribe("broken"), service.subscribe("fine")

    results = await sender.send([_push(broken.subscription), _push(fine.subscription)])

    assert [r.outcome for r in results] == [outcome, Outcome.OK]
    assert results[0].error_code == f"HTTP_{answer.status}"
    assert results[0].retry_after == retry_after


async def test_wrong_vapid_key_is_refused_permanently(service: PushService) -> None:
    other_private, _other_public = generate_vapid_keys()
    browser = service.subscribe("carl")
    config = VapidConfig(private_key=other_private, subject="mailto:ops@acme.example")
    async with WebPushSender(config) as sender:
        [result] = await sender.send([_push(browser.subscription)])

    assert result.outcome is Outcome.PERMANENT
    assert result.error_code == "HTTP_403"
    assert "applicationServerKey" in (result.error_message or "")
    assert service.received == []


async def test_pem_private_key_is_accepted(service: PushService, vapid: tuple[str, str]) -> None:
    number = int.from_bytes(b64url_decode(vapid[0]), "big")
    pem = (
        ec.derive_private_key(number, ec.SECP256R1())
        .private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
        .decode()
    )
    browser = service.subscribe("dora")
    async with WebPushSender(VapidConfig(private_key=pem, subject="https://acme.example")) as s:
        [result] = await s.send([_push(browser.subscription)])

    assert result.ok


async def test_vapid_token_is_reused_per_audience_then_renewed(
    service: PushService, vapid: tuple[str, str]
) -> None:
    now = [time.time()]
    config = VapidConfig(private_key=vapid[0], subject="mailto:ops@acme.example")
    browser = service.subscribe("eve")
    async with WebPushSender(config, clock=lambda: now[0]) as sender:
        await sender.send([_push(browser.subscription)])
        await sender.send([_push(browser.subscription)])
        now[0] += 9 * 3600  # less than a third of the 12 h lifetime left
        await sender.send([_push(browser.subscription)])

    first, second, third = (r.headers["authorization"] for r in service.received)
    assert first == second != third
    token = third.split("t=")[1].split(",")[0]
    claims = jwt.decode(token, options={"verify_signature": False})
    assert claims["exp"] == int(now[0]) + 12 * 3600
    assert claims["aud"] == service.url


async def test_oversize_payload_and_wrong_recipient_fail_without_a_request(
    service: PushService, sender: WebPushSender
) -> None:
    browser = service.subscribe("finn")

    results = await sender.send(
        [
            _push(browser.subscription, body="x" * MAX_PLAINTEXT),
            _push("not-a-subscription"),
            _push(browser.subscription, body="x" * (MAX_PLAINTEXT - 60)),
        ]
    )

    assert [(r.outcome, r.error_code) for r in results] == [
        (Outcome.PERMANENT, "PAYLOAD_TOO_LARGE"),
        (Outcome.PERMANENT, "INVALID_MESSAGE"),
        (Outcome.OK, None),
    ]
    [largest] = service.received
    assert len(largest.body) <= 4096  # the service's limit holds for the largest we allow


async def test_unreachable_push_service_is_retried(sender: WebPushSender) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    key = ec.generate_private_key(ec.SECP256R1()).public_key()
    subscription = WebPushSubscription(
        endpoint=f"http://127.0.0.1:{port}/push/x",
        p256dh=b64url(
            key.public_bytes(
                serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint
            )
        ),
        auth=b64url(os.urandom(16)),
    )

    [result] = await sender.send([_push(subscription)])

    assert result.outcome is Outcome.RETRY
    assert result.error_code == "NETWORK"


async def test_malformed_subscription_keys_are_permanent(sender: WebPushSender) -> None:
    subscription = WebPushSubscription(
        endpoint="https://push.invalid/x", p256dh=b64url(b"not a point"), auth=b64url(b"a")
    )

    [result] = await sender.send([_push(subscription)])

    assert result.outcome is Outcome.PERMANENT
    assert result.error_code == "INVALID_SUBSCRIPTION"


def test_topic_keeps_short_keys_and_digests_long_ones() -> None:
    assert topic("task-7") == "task-7"
    long_key = "route:2026-11-24:worker-0b5c1f7e-long"
    digested = topic(long_key)
    assert len(digested) == 32
    assert digested == topic(long_key) != topic(long_key + "x")
    assert all(c.isalnum() or c in "-_" for c in digested)
