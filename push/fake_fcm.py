"""A fake FCM HTTP v1 server with its OAuth token endpoint — for tests, benchmarks and staging
only, never in front of real phones.

It speaks the protocol that firebase-admin speaks to Google:

- ``POST /token``: the OAuth 2.0 token endpoint of a service-account key (its ``token_uri``).
  google-auth posts a signed JWT assertion (grant type jwt-bearer); the fake accepts any
  well-formed one and answers ``{"access_token", "expires_in", "token_type"}``.
- ``POST /v1/projects/{project}/messages:send``: one message per request, as firebase-admin's
  ``send_each`` sends them (it has no batch endpoint any more: each message of a batch is its own
  request on a thread pool). Success is FCM's ``{"name": "projects/{p}/messages/{id}"}``; errors
  are FCM's google.rpc.Status bodies with a ``google.firebase.fcm.v1.FcmError`` detail
  (UNREGISTERED 404, INVALID_ARGUMENT 400, SENDER_ID_MISMATCH 403, QUOTA_EXCEEDED 429 with
  Retry-After, UNAVAILABLE 503, INTERNAL 500, THIRD_PARTY_AUTH_ERROR 401), and a
  ``google.rpc.BadRequest`` detail for a malformed message (non-string data, reserved data key,
  payload over 4096 bytes). A request without a token it issued gets 401 UNAUTHENTICATED.
- ``GET /_fake/deliveries`` and ``GET /_fake/stats``: what was accepted, for a benchmark that
  runs the fake in another process.

It is programmable: scripted answers per device token (`FakeFcm.script`), tokens that are gone
(`FakeFcm.unregister`), a seeded random failure rate for transient errors, a fixed latency; and
it records every message it received (`received`) and accepted (`delivered`), with the data and
so the dedupe key, so a test can assert exactly-once delivery per dedupe key.

Run it alone with ``python -m push.fake_fcm --port 9099 --write-service-account key.json``.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import binascii
import collections
import contextlib
import itertools
import json
import random
import re
import secrets
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from push.core import DEDUPE_DATA_KEY
from push.fakehttp import FakeHTTPServer, Request, Response

FCM_ERROR_TYPE = "type.googleapis.com/google.firebase.fcm.v1.FcmError"
BAD_REQUEST_TYPE = "type.googleapis.com/google.rpc.BadRequest"

#: FCM error code -> (HTTP status, google.rpc status, FCM's message).
FCM_ERRORS: dict[str, tuple[int, str, str]] = {
    "UNREGISTERED": (404, "NOT_FOUND", "Requested entity was not found."),
    "INVALID_ARGUMENT": (
        400,
        "INVALID_ARGUMENT",
        "The registration token is not a valid FCM registration token",
    ),
    "SENDER_ID_MISMATCH": (403, "PERMISSION_DENIED", "SenderId mismatch"),
    "QUOTA_EXCEEDED": (
        429,
        "RESOURCE_EXHAUSTED",
        "Quota exceeded for quota metric 'Send requests' and limit 'Send requests per minute'.",
    ),
    "UNAVAILABLE": (503, "UNAVAILABLE", "The service is currently unavailable."),
    "INTERNAL": (500, "INTERNAL", "Internal error encountered."),
    "THIRD_PARTY_AUTH_ERROR": (401, "UNAUTHENTICATED", "Auth error from APNS or Web Push Service"),
}

TRANSIENT_ERRORS = ("UNAVAILABLE", "INTERNAL", "QUOTA_EXCEEDED")

_SEND_PATH = re.compile(r"^/v1/projects/(?P<project>[^/]+)/messages:send$")
_TTL = re.compile(r"^\d+(\.\d{1,9})?s$")
_RESERVED_DATA_KEYS = {"from", "notification", "message_type"}
_MAX_PAYLOAD = 4096


@dataclass(frozen=True)
class FcmAnswer:
    """What the fake answers to one request: success, or an FCM error code (with an optional
    Retry-After in seconds and message)."""

    error_code: str | None = None
    retry_after: int | None = None
    message: str | None = None

    @classmethod
    def ok(cls) -> FcmAnswer:
        """Accept the message."""
        return cls()

    @classmethod
    def error(
        cls, code: str, *, retry_after: int | None = None, message: str | None = None
    ) -> FcmAnswer:
        """Answer with FCM error `code` (a key of `FCM_ERRORS`)."""
        if code not in FCM_ERRORS:
            raise ValueError(f"unknown FCM error code {code!r}")
        return cls(code, retry_after, message)


@dataclass(frozen=True)
class ReceivedMessage:
    """One message request as the fake saw it, and how it answered."""

    project: str
    message: dict[str, Any]
    status: int
    message_id: str | None
    error_code: str | None
    authorization: str | None
    headers: dict[str, str]

    @property
    def token(self) -> str | None:
        """The target device token."""
        token = self.message.get("token")
        return token if isinstance(token, str) else None

    @property
    def data(self) -> dict[str, str]:
        """The message's data payload."""
        data = self.message.get("data")
        return dict(data) if isinstance(data, dict) else {}

    @property
    def dedupe_key(self) -> str | None:
        """The dedupe key carried in the data payload."""
        return self.data.get(DEDUPE_DATA_KEY)


@dataclass(frozen=True)
class TokenRequest:
    """One call of the OAuth token endpoint: the assertion's claims (unverified)."""

    grant_type: str
    claims: dict[str, Any]
    access_token: str


@dataclass
class _Scripts:
    queues: dict[str, collections.deque[FcmAnswer]] = field(default_factory=dict)
    gone: dict[str, str] = field(default_factory=dict)


class FakeFcm:
    """The fake FCM server; use as ``async with FakeFcm() as fcm`` and point a sender's
    ``fcm_url`` at `url` and its service account's ``token_uri`` at `token_uri`."""

    def __init__(
        self,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        failure_rate: float = 0.0,
        seed: int | None = 0,
        random_errors: Iterable[str] = TRANSIENT_ERRORS,
        random_retry_after: int = 1,
        token_lifetime: int = 3600,
        latency: float = 0.0,
    ) -> None:
        if not 0.0 <= failure_rate <= 1.0:
            raise ValueError("failure_rate must be within [0, 1]")
        self.failure_rate = failure_rate
        self.random_errors = tuple(random_errors)
        for code in self.random_errors:
            FcmAnswer.error(code)
        self.random_retry_after = random_retry_after
        self.token_lifetime = token_lifetime
        self.latency = latency
        self.received: list[ReceivedMessage] = []
        self.token_requests: list[TokenRequest] = []
        self._random = random.Random(seed)  # noqa: S311 - failure injection, not security
        self._scripts = _Scripts()
        self._issued: dict[str, float] = {}
        self._ids = itertools.count(1)
        self._http = FakeHTTPServer(self._handle, host, port)

    # -- lifecycle -------------------------------------------------------------------------

    @property
    def url(self) -> str:
        """Base URL to use as a sender's FCM URL."""
        return self._http.url

    @property
    def token_uri(self) -> str:
        """The OAuth token endpoint, for a service account's ``token_uri``."""
        return f"{self._http.url}/token"

    async def start(self) -> None:
        """Start listening."""
        await self._http.start()

    async def stop(self) -> None:
        """Stop listening."""
        await self._http.stop()

    async def __aenter__(self) -> FakeFcm:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    # -- programming -----------------------------------------------------------------------

    def script(self, token: str, *answers: FcmAnswer) -> None:
        """Answer the next requests for `token` with `answers` in order, then as usual."""
        self._scripts.queues.setdefault(token, collections.deque()).extend(answers)

    def fail_always(self, token: str, code: str) -> None:
        """From now on answer every request for `token` with FCM error `code`."""
        FcmAnswer.error(code)
        self._scripts.gone[token] = code

    def unregister(self, token: str) -> None:
        """`token` is gone: every request for it gets UNREGISTERED from now on."""
        self.fail_always(token, "UNREGISTERED")

    def service_account(
        self, project_id: str = "fake-project", private_key_pem: str | None = None
    ) -> dict[str, str]:
        """A throwaway service-account key whose ``token_uri`` is this fake's."""
        return make_service_account(project_id, self.token_uri, private_key_pem)

    # -- reading ---------------------------------------------------------------------------

    @property
    def delivered(self) -> list[ReceivedMessage]:
        """The messages the fake accepted (answered 200), in order of arrival."""
        return [m for m in self.received if m.status == 200 and m.message_id is not None]

    def delivered_dedupe_keys(self) -> collections.Counter[str | None]:
        """How many times each dedupe key was accepted."""
        return collections.Counter(m.dedupe_key for m in self.delivered)

    # -- protocol --------------------------------------------------------------------------

    async def _handle(self, request: Request) -> Response:
        if self.latency:
            await asyncio.sleep(self.latency)
        if request.method == "POST" and request.path == "/token":
            return self._token(request)
        match = _SEND_PATH.match(request.path)
        if request.method == "POST" and match:
            return self._send(match["project"], request)
        if request.method == "GET" and request.path == "/_fake/deliveries":
            return Response.json(
                200,
                [
                    {"token": m.token, "dedupe_key": m.dedupe_key, "message_id": m.message_id}
                    for m in self.delivered
                ],
            )
        if request.method == "GET" and request.path == "/_fake/stats":
            return Response.json(
                200,
                {
                    "received": len(self.received),
                    "delivered": len(self.delivered),
                    "token_requests": len(self.token_requests),
                },
            )
        return _status(404, "NOT_FOUND", f"No route for {request.method} {request.path}")

    def _token(self, request: Request) -> Response:
        form = request.form()
        grant_type = form.get("grant_type", "")
        claims = _jwt_claims(form.get("assertion", ""))
        if grant_type != "urn:ietf:params:oauth:grant-type:jwt-bearer" or claims is None:
            return Response.json(
                400,
                {"error": "invalid_grant", "error_description": "Invalid JWT assertion."},
            )
        access_token = "ya29.fake-" + secrets.token_urlsafe(24)
        self._issued[access_token] = time.monotonic() + self.token_lifetime
        self.token_requests.append(TokenRequest(grant_type, claims, access_token))
        return Response.json(
            200,
            {
                "access_token": access_token,
                "expires_in": self.token_lifetime,
                "token_type": "Bearer",
            },
        )

    def _send(self, project: str, request: Request) -> Response:
        authorization = request.headers.get("authorization")
        if not self._authorised(authorization):
            return _status(
                401,
                "UNAUTHENTICATED",
                "Request had invalid authentication credentials. Expected OAuth 2 access "
                "token, login cookie or other valid authentication credential.",
            )
        try:
            body = request.json()
        except ValueError:
            return _status(400, "INVALID_ARGUMENT", "Invalid JSON payload received.")
        message = body.get("message") if isinstance(body, dict) else None
        if not isinstance(message, dict):
            return _bad_request("message", "Message must be set.")
        invalid = _validate(message)
        if invalid is not None:
            response = _bad_request(*invalid)
            self._record(project, message, response, None, None, request)
            return response
        if body.get("validate_only") is True:
            return Response.json(200, {"name": f"projects/{project}/messages/fake_message_id"})

        answer = self._answer_for(message.get("token"))
        if answer.error_code is None:
            message_id = f"0:{next(self._ids)}%{secrets.token_hex(8)}"
            response = Response.json(200, {"name": f"projects/{project}/messages/{message_id}"})
            self._record(project, message, response, message_id, None, request)
            return response
        response = _fcm_error(answer)
        self._record(project, message, response, None, answer.error_code, request)
        return response

    def _authorised(self, authorization: str | None) -> bool:
        if not authorization or not authorization.startswith("Bearer "):
            return False
        expires = self._issued.get(authorization.removeprefix("Bearer "))
        return expires is not None and expires > time.monotonic()

    def _answer_for(self, token: object) -> FcmAnswer:
        if isinstance(token, str):
            if token in self._scripts.gone:
                return FcmAnswer.error(self._scripts.gone[token])
            queue = self._scripts.queues.get(token)
            if queue:
                return queue.popleft()
        if self.failure_rate and self._random.random() < self.failure_rate:
            code = self._random.choice(self.random_errors)
            retry_after = self.random_retry_after if code == "QUOTA_EXCEEDED" else None
            return FcmAnswer.error(code, retry_after=retry_after)
        return FcmAnswer.ok()

    def _record(
        self,
        project: str,
        message: dict[str, Any],
        response: Response,
        message_id: str | None,
        error_code: str | None,
        request: Request,
    ) -> None:
        self.received.append(
            ReceivedMessage(
                project=project,
                message=message,
                status=response.status,
                message_id=message_id,
                error_code=error_code,
                authorization=request.headers.get("authorization"),
                headers=dict(request.headers),
            )
        )


def generate_private_key_pem() -> str:
    """A fresh RSA 2048 private key in PKCS#8 PEM, as in Google's JSON keys."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode()


def make_service_account(
    project_id: str, token_uri: str, private_key_pem: str | None = None
) -> dict[str, str]:
    """A throwaway service-account key for `project_id` whose OAuth token endpoint is
    `token_uri`, shaped like the JSON key Google hands out; a new RSA key unless one is given."""
    pem = private_key_pem or generate_private_key_pem()
    return {
        "type": "service_account",
        "project_id": project_id,
        "private_key_id": secrets.token_hex(20),
        "private_key": pem,
        "client_email": f"firebase-adminsdk@{project_id}.iam.gserviceaccount.com",
        "client_id": str(secrets.randbelow(10**20)),
        "auth_uri": "https://accounts.google.com/o/oauth2/auth",
        "token_uri": token_uri,
    }


def _validate(message: dict[str, Any]) -> tuple[str, str] | None:
    """The first (field, description) that FCM would refuse in `message`, or None."""
    targets = [k for k in ("token", "topic", "condition", "fid") if message.get(k)]
    if len(targets) != 1:
        return "message", "Exactly one of token, topic, condition or fid must be set."
    data = message.get("data", {})
    if not isinstance(data, dict):
        return "message.data", "Invalid value at 'message.data' (map)."
    for index, (key, value) in enumerate(data.items()):
        if not isinstance(value, str):
            return (
                f"message.data[{index}].value",
                f"Invalid value at 'message.data[{index}].value' (TYPE_STRING), {value}",
            )
        lowered = key.lower()
        if lowered in _RESERVED_DATA_KEYS or lowered.startswith(("google", "gcm")):
            return f"message.data[{index}].key", f"Invalid data key: {key!r} is reserved."
    payload = sum(len(k.encode()) + len(v.encode()) for k, v in data.items())
    notification = message.get("notification") or {}
    if isinstance(notification, dict):
        payload += sum(len(str(v).encode()) for v in notification.values())
    if payload > _MAX_PAYLOAD:
        return "message", f"Message is too big: {payload} bytes, the limit is {_MAX_PAYLOAD}."
    android = message.get("android") or {}
    ttl = android.get("ttl")
    if ttl is not None and not (isinstance(ttl, str) and _TTL.match(ttl)):
        return "message.android.ttl", f"Invalid value at 'message.android.ttl' ({ttl!r})."
    priority = android.get("priority")
    if priority is not None and str(priority).upper() not in {"NORMAL", "HIGH"}:
        return (
            "message.android.priority",
            f"Invalid value at 'message.android.priority' ({priority!r}).",
        )
    headers = (message.get("apns") or {}).get("headers") or {}
    if not all(isinstance(v, str) for v in headers.values()):
        return "message.apns.headers", "Invalid value at 'message.apns.headers' (TYPE_STRING)."
    return None


def _status(code: int, status: str, message: str, details: list[Any] | None = None) -> Response:
    error: dict[str, Any] = {"code": code, "message": message, "status": status}
    if details:
        error["details"] = details
    return Response.json(code, {"error": error})


def _fcm_error(answer: FcmAnswer) -> Response:
    assert answer.error_code is not None
    http_status, status, default_message = FCM_ERRORS[answer.error_code]
    response = _status(
        http_status,
        status,
        answer.message or default_message,
        [{"@type": FCM_ERROR_TYPE, "errorCode": answer.error_code}],
    )
    if answer.retry_after is not None:
        return Response(
            response.status,
            response.body,
            {**response.headers, "Retry-After": str(answer.retry_after)},
        )
    return response


def _bad_request(field_name: str, description: str) -> Response:
    return _status(
        400,
        "INVALID_ARGUMENT",
        description,
        [
            {
                "@type": BAD_REQUEST_TYPE,
                "fieldViolations": [{"field": field_name, "description": description}],
            }
        ],
    )


def _jwt_claims(assertion: str) -> dict[str, Any] | None:
    """The claims of a compact JWS, unverified: the fake trusts any caller on loopback."""
    parts = assertion.split(".")
    if len(parts) != 3:
        return None
    try:
        claims = json.loads(base64.urlsafe_b64decode(parts[1] + "=" * (-len(parts[1]) % 4)))
    except (ValueError, binascii.Error):
        return None
    return claims if isinstance(claims, dict) else None


async def _main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Fake FCM HTTP v1 server (tests and staging).")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=9099)
    parser.add_argument("--failure-rate", type=float, default=0.0)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--latency", type=float, default=0.0, help="seconds per request")
    parser.add_argument("--project", default="fake-project")
    parser.add_argument(
        "--write-service-account",
        type=Path,
        help="write a throwaway service-account key pointed at this fake to this path",
    )
    args = parser.parse_args(argv)
    fake = FakeFcm(
        host=args.host,
        port=args.port,
        failure_rate=args.failure_rate,
        seed=args.seed,
        latency=args.latency,
    )
    async with fake:
        if args.write_service_account:
            args.write_service_account.write_text(
                json.dumps(fake.service_account(args.project), indent=2)
            )
        print(f"fake FCM listening on {fake.url} (token_uri {fake.token_uri})", flush=True)
        await asyncio.Event().wait()


if __name__ == "__main__":
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(_main())
