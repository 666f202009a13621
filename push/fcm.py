"""FCM (Firebase Cloud Messaging HTTP v1) through firebase-admin's own messaging code.

`FcmSender` turns each `Message` into a ``firebase_admin.messaging.Message`` (notification,
data with the dedupe key, Android priority/TTL/collapse key, APNs headers) and sends batches with
``messaging.send_each`` — up to 500 messages a call, which firebase-admin sends as one HTTP
request per message on a thread pool. firebase-admin is synchronous, so each batch runs in a
worker thread and the event loop stays free.

Two addresses are configurable so that tests and staging can point at `push.fake_fcm`:

- the OAuth token endpoint is the service-account key's ``token_uri`` (google-auth posts its
  JWT assertion there); `FcmConfig.token_uri` overrides the key's value;
- the FCM endpoint is fixed inside firebase-admin (``messaging._MessagingService.FCM_URL``, no
  option or emulator variable exists for it). `FcmConfig.fcm_url` is applied by building the
  App's messaging service ourselves, pointing its URL at the configured base, and placing it in
  the App's service cache before firebase-admin builds one — see `_install_messaging_service`.
  That touches three private names of firebase-admin (pinned below 8); the tests against the
  fake fail if they change.

The same step replaces firebase-admin's HTTP retry policy (up to 4 retries of 500/503 with
back-off, sleeping through Retry-After inside the worker thread) with one connection retry only:
the relay owns retries, with its own back-off and dead-letter state, and needs to see 429/503
with their Retry-After as results.

Each sender owns a named firebase-admin App (never the default App), so several senders — tests,
one per organisation — live side by side; `aclose` deletes it.
"""

from __future__ import annotations

import asyncio
import json
import threading
import time
import uuid
import warnings
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import firebase_admin
import google.auth.exceptions
import google.auth.transport.requests
import requests
import requests.adapters
from firebase_admin import credentials, exceptions, messaging
from urllib3.util.retry import Retry

from push.core import Message, Priority, Result, parse_retry_after

FCM_MAX_BATCH = 500
_FCM_PATH = "/v1/projects/{0}/messages:send"
_FCM_ERROR_TYPE = "type.googleapis.com/google.firebase.fcm.v1.FcmError"
_BAD_REQUEST_TYPE = "type.googleapis.com/google.rpc.BadRequest"
# Platform codes (firebase_admin.exceptions) of failures that never got FCM's verdict.
_TRANSIENT_PLATFORM_CODES = {
    exceptions.UNAVAILABLE,
    exceptions.DEADLINE_EXCEEDED,
    exceptions.INTERNAL,
    exceptions.RESOURCE_EXHAUSTED,
    exceptions.ABORTED,
    exceptions.UNKNOWN,
}


@dataclass(frozen=True)
class FcmConfig:
    """How to reach FCM.

    `service_account` is the parsed JSON key or a path to it. `project_id` defaults to the key's.
    `fcm_url` is a base URL such as ``http://127.0.0.1:9099`` (None: Google's). `token_uri`
    replaces the key's OAuth token endpoint. `batch_size` is at most 500 (FCM's limit per
    ``send_each``). `app_name` names the firebase-admin App (default: a unique name).
    """

    service_account: Mapping[str, Any] | str | Path
    project_id: str | None = None
    fcm_url: str | None = None
    token_uri: str | None = None
    timeout: float = 10.0
    batch_size: int = FCM_MAX_BATCH
    connect_retries: int = 1
    app_name: str | None = None


class FcmSender:
    """`push.core.Sender` for FCM device registration tokens."""

    def __init__(self, config: FcmConfig, *, clock: Callable[[], float] = time.time) -> None:
        """Create the sender's own firebase-admin App; `clock` (Unix seconds) dates
        apns-expiration."""
        if not 1 <= config.batch_size <= FCM_MAX_BATCH:
            raise ValueError(f"batch_size must be within 1..{FCM_MAX_BATCH}")
        self._config = config
        self._clock = clock
        key = _load_key(config.service_account)
        if config.token_uri is not None:
            key["token_uri"] = config.token_uri
        project_id = config.project_id or key.get("project_id")
        if not project_id:
            raise ValueError("FCM needs a project id: set FcmConfig.project_id or the key's")
        self.project_id: str = project_id
        self.app_name = config.app_name or f"fieldcrm-push-{uuid.uuid4().hex}"
        self._app = firebase_admin.initialize_app(
            credentials.Certificate(key),
            {"projectId": project_id, "httpTimeout": config.timeout},
            name=self.app_name,
        )
        try:
            self._session = _install_messaging_service(
                self._app, _fcm_endpoint(config.fcm_url, project_id), config.connect_retries
            )
        except Exception:
            firebase_admin.delete_app(self._app)
            raise
        self._google_credential = self._app.credential.get_credential()
        self._refresh_lock = threading.Lock()

    async def send(self, messages: Sequence[Message]) -> list[Result]:
        """Send `messages` in batches of `batch_size`; one result per message, in order."""
        results: list[Result | None] = [None] * len(messages)
        prepared: list[tuple[int, messaging.Message]] = []
        for index, message in enumerate(messages):
            try:
                prepared.append((index, self._to_firebase(message)))
            except (TypeError, ValueError) as exc:
                results[index] = Result.permanent("INVALID_MESSAGE", str(exc))
        size = self._config.batch_size
        for start in range(0, len(prepared), size):
            chunk = prepared[start : start + size]
            answers = await asyncio.to_thread(self._send_batch, [m for _, m in chunk])
            for (index, _), answer in zip(chunk, answers, strict=True):
                results[index] = answer
        return [r for r in results if r is not None]

    async def aclose(self) -> None:
        """Delete the firebase-admin App and close its HTTP session."""
        # delete_app closes firebase-admin's async client with asyncio.run(): not on our loop.
        await asyncio.to_thread(firebase_admin.delete_app, self._app)
        self._session.close()

    async def __aenter__(self) -> FcmSender:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    def _to_firebase(self, message: Message) -> messaging.Message:
        if not isinstance(message.recipient, str) or not message.recipient:
            raise ValueError("an FCM recipient is a device registration token")
        high = message.priority is Priority.HIGH
        ttl = timedelta(seconds=message.ttl) if message.ttl is not None else None
        apns_headers = {"apns-priority": "10" if high else "5", "apns-push-type": "alert"}
        if message.collapse_key:
            apns_headers["apns-collapse-id"] = message.collapse_key
        if message.ttl is not None:
            apns_headers["apns-expiration"] = str(int(self._clock()) + message.ttl)
        apns_headers.update(message.apns_headers)
        with warnings.catch_warnings():
            # firebase-admin 7.7 deprecates `token` for Firebase installation ids (`fid`); our
            # apps register FCM registration tokens, which FCM v1 still addresses by `token`.
            warnings.simplefilter("ignore", DeprecationWarning)
            return messaging.Message(
                token=message.recipient,
                notification=messaging.Notification(title=message.title, body=message.body),
                data=message.data_with_dedupe_key(),
                android=messaging.AndroidConfig(
                    priority="high" if high else "normal",
                    ttl=ttl,
                    collapse_key=message.collapse_key,
                ),
                apns=messaging.APNSConfig(headers=apns_headers),
            )

    def _send_batch(self, batch: list[messaging.Message]) -> list[Result]:
        """Runs in a worker thread."""
        try:
            self._ensure_token()
            response = messaging.send_each(batch, app=self._app)
        except Exception as exc:  # one verdict for the whole batch
            failure = classify_error(exc)
            return [failure] * len(batch)
        return [
            Result.success(r.message_id) if r.success else classify_error(r.exception)
            for r in response.responses
        ]

    def _ensure_token(self) -> None:
        # Fetch the OAuth token once before a batch: otherwise each of the batch's threads
        # finds the credential expired and asks the token endpoint on its own.
        with self._refresh_lock:
            if not self._google_credential.valid:
                self._google_credential.refresh(google.auth.transport.requests.Request())


def classify_error(exc: BaseException | None) -> Result:
    """Map an exception from firebase-admin (or google-auth under it) to a `Result`.

    UNREGISTERED and SENDER_ID_MISMATCH, and INVALID_ARGUMENT about the token, mean the token is
    gone; QUOTA_EXCEEDED (429), UNAVAILABLE (503), INTERNAL (500), other 5xx and failures that
    got no answer are retried (after Retry-After when given); the rest is permanent.
    """
    if isinstance(exc, exceptions.FirebaseError):
        response = exc.http_response
        if isinstance(response, requests.Response):
            return _classify_response(exc, response)
        if isinstance(exc.cause, BaseException) and not isinstance(
            exc.cause, requests.RequestException
        ):
            return classify_error(exc.cause)
        if exc.code in _TRANSIENT_PLATFORM_CODES:
            return Result.retry(exc.code, str(exc))
        return Result.permanent(exc.code, str(exc))
    if isinstance(exc, google.auth.exceptions.RefreshError):
        # Token endpoint refused: a bad key stays bad unless google-auth says otherwise.
        if getattr(exc, "retryable", False):
            return Result.retry("OAUTH_REFRESH", str(exc))
        return Result.permanent("OAUTH_REFRESH", str(exc))
    if isinstance(exc, google.auth.exceptions.TransportError | requests.RequestException):
        return Result.retry("NETWORK", str(exc))
    return Result.retry("UNKNOWN", f"{type(exc).__name__}: {exc}")


def _classify_response(exc: exceptions.FirebaseError, response: requests.Response) -> Result:
    error = _error_body(response)
    details = [d for d in error.get("details", []) if isinstance(d, dict)]
    fcm_code = next(
        (str(d.get("errorCode")) for d in details if d.get("@type") == _FCM_ERROR_TYPE), None
    )
    bad_fields = [
        str(v.get("field", ""))
        for d in details
        if d.get("@type") == _BAD_REQUEST_TYPE
        for v in d.get("fieldViolations", [])
        if isinstance(v, dict)
    ]
    code = fcm_code or str(error.get("status") or exc.code)
    text = str(error.get("message") or exc)
    status = response.status_code
    if fcm_code in {"UNREGISTERED", "SENDER_ID_MISMATCH"}:
        return Result.unregistered(code, text)
    if fcm_code == "INVALID_ARGUMENT" and all(f == "message.token" for f in bad_fields):
        # FCM's INVALID_ARGUMENT for a bad token; a malformed payload names its field instead.
        return Result.unregistered(code, text)
    if status == 429 or status >= 500 or fcm_code in {"QUOTA_EXCEEDED", "UNAVAILABLE", "INTERNAL"}:
        return Result.retry(code, text, parse_retry_after(response.headers.get("Retry-After")))
    return Result.permanent(code, text)


def _error_body(response: requests.Response) -> dict[str, Any]:
    try:
        body = response.json()
    except ValueError:
        return {}
    error = body.get("error") if isinstance(body, dict) else None
    return error if isinstance(error, dict) else {}


def _load_key(source: Mapping[str, Any] | str | Path) -> dict[str, Any]:
    if isinstance(source, Mapping):
        return dict(source)
    loaded = json.loads(Path(source).read_text())
    if not isinstance(loaded, dict):
        raise ValueError("a service-account key is a JSON object")
    return loaded


def _fcm_endpoint(base: str | None, project_id: str) -> str | None:
    if base is None:
        return None
    return base.rstrip("/") + _FCM_PATH.format(project_id)


def _install_messaging_service(
    app: firebase_admin.App, fcm_url: str | None, connect_retries: int
) -> requests.Session:
    """Give `app` a messaging service that posts to `fcm_url` (None: Google's) and retries only
    failed connections; returns its HTTP session.

    firebase-admin caches one messaging service per App under ``messaging._MESSAGING_ATTRIBUTE``
    and builds it on first use; we build it first, so ``messaging.send_each(app=app)`` runs its
    unchanged code against our URL.
    """
    service = messaging._MessagingService(app)
    client = getattr(service, "_client", None)
    if not hasattr(service, "_fcm_url") or client is None:
        raise RuntimeError("firebase-admin's messaging internals changed: update push/fcm.py")
    if fcm_url is not None:
        service._fcm_url = fcm_url
    session: requests.Session = client.session
    retries = Retry(
        total=connect_retries,
        connect=connect_retries,
        read=0,
        status=0,
        other=0,
        redirect=0,
        raise_on_status=False,
        allowed_methods=None,
    )
    parts = urlsplit(service._fcm_url)
    # One connection per message of a batch runs at once: keep up to 100 of them for reuse.
    adapter = requests.adapters.HTTPAdapter(
        pool_connections=10, pool_maxsize=100, max_retries=retries
    )
    session.mount(f"{parts.scheme}://{parts.netloc}", adapter)
    installed = app._get_service(messaging._MESSAGING_ATTRIBUTE, lambda _app: service)
    if installed is not service:
        raise RuntimeError("the App already had a messaging service")
    return session
