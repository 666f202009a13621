"""The shared message and result types, and the fake FCM server's own protocol surface."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime

import httpx
import msgspec
import pytest

from push import (
    DEDUPE_DATA_KEY,
    Message,
    Outcome,
    Priority,
    Result,
    WebPushSubscription,
    parse_retry_after,
)
from push.fake_fcm import BAD_REQUEST_TYPE, FCM_ERROR_TYPE, FakeFcm, FcmAnswer


def test_message_round_trips_through_json_with_either_recipient_kind() -> None:
    messages = [
        Message(recipient="tok", title="t", body="b", priority=Priority.HIGH, dedupe_key="k"),
        Message(
            recipient=WebPushSubscription(endpoint="https://p.example/1", p256dh="x", auth="y"),
            title="t",
            body="b",
            data={"a": "1"},
        ),
    ]

    decoded = msgspec.json.decode(msgspec.json.encode(messages), type=list[Message])

    assert decoded == messages
    assert decoded[0].data_with_dedupe_key() == {DEDUPE_DATA_KEY: "k"}
    assert decoded[1].data_with_dedupe_key() == {"a": "1"}


def test_result_constructors() -> None:
    assert Result.success("id-1").ok
    retry = Result.retry("UNAVAILABLE", "later", 3.0)
    assert (retry.ok, retry.outcome, retry.retry_after) == (False, Outcome.RETRY, 3.0)
    assert Result.unregistered("UNREGISTERED", "gone").outcome is Outcome.UNREGISTERED
    assert Result.permanent("X", "no").outcome is Outcome.PERMANENT


@pytest.mark.parametrize(
    ("header", "seconds"),
    [
        (None, None),
        ("120", 120.0),
        (" 7 ", 7.0),
        ("-5", 0.0),
        ("Tue, 24 Nov 2026 09:01:30 GMT", 90.0),
        ("Tue, 24 Nov 2026 08:59:00 GMT", 0.0),
        ("soon", None),
        ("nan", None),
    ],
)
def test_retry_after_as_seconds_or_http_date(header: str | None, seconds: float | None) -> None:
    now = datetime(2026, 11, 24, 9, 0, tzinfo=UTC)

    assert parse_retry_after(header, now=now) == seconds


@pytest.fixture
async def fake() -> AsyncIterator[FakeFcm]:
    async with FakeFcm() as server:
        yield server


async def _token(client: httpx.AsyncClient, fake: FakeFcm) -> str:
    answer = await client.post(
        fake.token_uri,
        data={
            "grant_type": "urn:ietf:params:oauth:grant-type:jwt-bearer",
            "assertion": "eyJhbGciOiJub25lIn0.eyJpc3MiOiJ0ZXN0In0.sig",
        },
    )
    assert answer.status_code == 200
    body = answer.json()
    assert body["token_type"] == "Bearer"
    assert body["expires_in"] == 3600
    return str(body["access_token"])


async def test_fake_refuses_missing_tokens_and_bad_grants(fake: FakeFcm) -> None:
    send = f"{fake.url}/v1/projects/p/messages:send"
    async with httpx.AsyncClient() as client:
        anonymous = await client.post(send, json={"message": {"token": "t"}})
        forged = await client.post(
            send, json={"message": {"token": "t"}}, headers={"Authorization": "Bearer made-up"}
        )
        bad_grant = await client.post(fake.token_uri, data={"grant_type": "password"})

    assert anonymous.status_code == forged.status_code == 401
    assert anonymous.json()["error"]["status"] == "UNAUTHENTICATED"
    assert bad_grant.status_code == 400
    assert bad_grant.json()["error"] == "invalid_grant"
    assert fake.received == []


async def test_fake_answers_with_fcm_bodies_and_reports_what_it_accepted(fake: FakeFcm) -> None:
    fake.script("t1", FcmAnswer.error("QUOTA_EXCEEDED", retry_after=9), FcmAnswer.ok())
    send = f"{fake.url}/v1/projects/p/messages:send"
    async with httpx.AsyncClient() as client:
        auth = {"Authorization": f"Bearer {await _token(client, fake)}"}
        message = {"token": "t1", "data": {DEDUPE_DATA_KEY: "e1"}}
        quota = await client.post(send, json={"message": message}, headers=auth)
        accepted = await client.post(send, json={"message": message}, headers=auth)
        dry_run = await client.post(
            send, json={"message": message, "validate_only": True}, headers=auth
        )
        not_string = await client.post(
            send, json={"message": {"token": "t2", "data": {"n": 12}}}, headers=auth
        )
        deliveries = (await client.get(f"{fake.url}/_fake/deliveries")).json()
        stats = (await client.get(f"{fake.url}/_fake/stats")).json()

    assert quota.status_code == 429
    assert quota.headers["Retry-After"] == "9"
    assert quota.json() == {
        "error": {
            "code": 429,
            "message": quota.json()["error"]["message"],
            "status": "RESOURCE_EXHAUSTED",
            "details": [{"@type": FCM_ERROR_TYPE, "errorCode": "QUOTA_EXCEEDED"}],
        }
    }
    name = accepted.json()["name"]
    assert name.startswith("projects/p/messages/0:")
    assert dry_run.json() == {"name": "projects/p/messages/fake_message_id"}
    assert not_string.status_code == 400
    [violation] = not_string.json()["error"]["details"]
    assert violation["@type"] == BAD_REQUEST_TYPE
    assert violation["fieldViolations"][0]["field"] == "message.data[0].value"
    assert deliveries == [{"token": "t1", "dedupe_key": "e1", "message_id": name.rsplit("/", 1)[1]}]
    assert stats == {"received": 3, "delivered": 1, "token_requests": 1}
