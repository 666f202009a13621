"""FcmSender through firebase-admin's real messaging code against the local fake FCM server."""

from __future__ import annotations

import functools
import json
import socket
from collections.abc import AsyncIterator
from pathlib import Path

import firebase_admin
import pytest

from push.core import DEDUPE_DATA_KEY, Message, Outcome, Priority, WebPushSubscription
from push.fake_fcm import FakeFcm, FcmAnswer, generate_private_key_pem
from push.fcm import FcmConfig, FcmSender

NOW = 1_800_000_000.0


# One throwaway RSA key for the run: generating one costs about 0.2 s.
_key_pem = functools.cache(generate_private_key_pem)


def _account(fake: FakeFcm, project: str) -> dict[str, str]:
    return fake.service_account(project, _key_pem())


@pytest.fixture
async def fake() -> AsyncIterator[FakeFcm]:
    async with FakeFcm() as server:
        yield server


@pytest.fixture
async def sender(fake: FakeFcm) -> AsyncIterator[FcmSender]:
    config = FcmConfig(service_account=_account(fake, "acme-push"), fcm_url=fake.url)
    async with FcmSender(config, clock=lambda: NOW) as s:
        yield s


def _message(token: str, **kw: object) -> Message:
    fields: dict[str, object] = {"recipient": token, "title": "New task", "body": "Fix window"}
    fields.update(kw)
    return Message(**fields)  # type: ignore[arg-type]


async def test_success_sends_notification_data_android_and_apns_options(
    fake: FakeFcm, sender: FcmSender
) -> None:
    message = _message(
        "device-1",
        title="Visit booked",
        body="Tue 10:00-12:00",
        data={"task_id": "42"},
        priority=Priority.HIGH,
        ttl=3600,
        collapse_key="task-42",
        dedupe_key="outbox-7",
        apns_headers={"apns-topic": "com.example.fieldcrm"},
    )

    [result] = await sender.send([message])

    assert result.outcome is Outcome.OK
    [received] = fake.delivered
    assert result.provider_id == f"projects/acme-push/messages/{received.message_id}"
    assert received.project == "acme-push"
    assert received.token == "device-1"
    assert received.message["notification"] == {"title": "Visit booked", "body": "Tue 10:00-12:00"}
    assert received.data == {"task_id": "42", DEDUPE_DATA_KEY: "outbox-7"}
    assert received.dedupe_key == "outbox-7"
    assert received.message["android"] == {
        "priority": "high",
        "ttl": "3600s",
        "collapse_key": "task-42",
    }
    assert received.message["apns"]["headers"] == {
        "apns-priority": "10",
        "apns-push-type": "alert",
        "apns-collapse-id": "task-42",
        "apns-expiration": str(int(NOW) + 3600),
        "apns-topic": "com.example.fieldcrm",
    }
    assert received.authorization == f"Bearer {fake.token_requests[0].access_token}"


async def test_normal_priority_without_ttl_or_collapse_key(
    fake: FakeFcm, sender: FcmSender
) -> None:
    [result] = await sender.send([_message("device-2")])

    assert result.ok
    [received] = fake.delivered
    assert received.message["android"] == {"priority": "normal"}
    assert received.message["apns"]["headers"] == {
        "apns-priority": "5",
        "apns-push-type": "alert",
    }
    assert DEDUPE_DATA_KEY not in received.data


@pytest.mark.parametrize(
    ("code", "outcome"),
    [
        ("UNREGISTERED", Outcome.UNREGISTERED),
        ("INVALID_ARGUMENT", Outcome.UNREGISTERED),
        ("SENDER_ID_MISMATCH", Outcome.UNREGISTERED),
        ("QUOTA_EXCEEDED", Outcome.RETRY),
        ("UNAVAILABLE", Outcome.RETRY),
        ("INTERNAL", Outcome.RETRY),
    ],
)
async def test_each_fcm_error_code_is_classified_from_one_request(
    fake: FakeFcm, sender: FcmSender, code: str, outcome: Outcome
) -> None:
    fake.script("bad-device", FcmAnswer.error(code))

    results = await sender.send([_message("good-device"), _message("bad-device")])

    assert [r.outcome for r in results] == [Outcome.OK, outcome]
    assert results[1].error_code == code
    assert results[1].error_message
    assert results[1].retry_after is None
    # firebase-admin's own retries of 500/503 are off: the relay decides when to try again.
    assert [m.token for m in fake.received].count("bad-device") == 1


async def test_quota_exceeded_carries_retry_after(fake: FakeFcm, sender: FcmSender) -> None:
    fake.script("busy-device", FcmAnswer.error("QUOTA_EXCEEDED", retry_after=42))

    [result] = await sender.send([_message("busy-device")])

    assert result.outcome is Outcome.RETRY
    assert result.error_code == "QUOTA_EXCEEDED"
    assert result.retry_after == 42.0


async def test_unavailable_with_retry_after_is_not_slept_through(
    fake: FakeFcm, sender: FcmSender
) -> None:
    fake.script("device-503", FcmAnswer.error("UNAVAILABLE", retry_after=120))

    [result] = await sender.send([_message("device-503")])

    assert (result.outcome, result.error_code, result.retry_after) == (
        Outcome.RETRY,
        "UNAVAILABLE",
        120.0,
    )
    assert len(fake.received) == 1


async def test_scripted_failure_then_success_on_the_next_send(
    fake: FakeFcm, sender: FcmSender
) -> None:
    fake.script("flaky", FcmAnswer.error("UNAVAILABLE"))

    first = await sender.send([_message("flaky", dedupe_key="d1")])
    second = await sender.send([_message("flaky", dedupe_key="d1")])

    assert first[0].outcome is Outcome.RETRY
    assert second[0].ok
    assert fake.delivered_dedupe_keys() == {"d1": 1}


async def test_malformed_payload_is_permanent_and_keeps_the_token(
    fake: FakeFcm, sender: FcmSender
) -> None:
    # "from" is reserved by FCM: INVALID_ARGUMENT with a BadRequest detail, not a bad token.
    [result] = await sender.send([_message("device-3", data={"from": "office"})])

    assert result.outcome is Outcome.PERMANENT
    assert result.error_code == "INVALID_ARGUMENT"
    assert "reserved" in (result.error_message or "")


async def test_wrong_recipient_type_fails_alone_without_a_request(
    fake: FakeFcm, sender: FcmSender
) -> None:
    subscription = WebPushSubscription(endpoint="https://push.example/x", p256dh="k", auth="a")

    results = await sender.send([_message(subscription), _message("device-4")])  # type: ignore[arg-type]

    assert [r.outcome for r in results] == [Outcome.PERMANENT, Outcome.OK]
    assert results[0].error_code == "INVALID_MESSAGE"
    assert [m.token for m in fake.received] == ["device-4"]


async def test_batch_over_500_is_split_and_results_keep_their_order(
    fake: FakeFcm, sender: FcmSender
) -> None:
    tokens = [f"tok-{i}" for i in range(1201)]
    for i in (0, 499, 500, 1200):
        fake.unregister(tokens[i])

    results = await sender.send([_message(t, dedupe_key=f"k-{t}") for t in tokens])

    assert len(results) == 1201
    gone = {i for i, r in enumerate(results) if r.outcome is Outcome.UNREGISTERED}
    assert gone == {0, 499, 500, 1200}
    token_of = {f"projects/acme-push/messages/{m.message_id}": m.token for m in fake.delivered}
    assert all(token_of[r.provider_id] == tokens[i] for i, r in enumerate(results) if r.ok)  # type: ignore[index]
    assert len(fake.received) == 1201
    assert set(fake.delivered_dedupe_keys().values()) == {1}


async def test_access_token_is_fetched_once_and_reused(fake: FakeFcm, sender: FcmSender) -> None:
    await sender.send([_message(f"a-{i}") for i in range(50)])
    await sender.send([_message("b")])

    assert len(fake.token_requests) == 1
    claims = fake.token_requests[0].claims
    assert claims["iss"] == "firebase-adminsdk@acme-push.iam.gserviceaccount.com"
    assert "https://www.googleapis.com/auth/firebase" in claims["scope"].split()
    bearer = f"Bearer {fake.token_requests[0].access_token}"
    assert {m.authorization for m in fake.received} == {bearer}


async def test_third_party_auth_error_is_permanent_after_google_auth_retries(
    fake: FakeFcm, sender: FcmSender
) -> None:
    # A 401 makes google-auth fetch a new OAuth token and repeat the request; an APNs or Web
    # Push credential problem stays, so the end is a permanent failure.
    fake.fail_always("ios-device", "THIRD_PARTY_AUTH_ERROR")

    [result] = await sender.send([_message("ios-device")])

    assert result.outcome is Outcome.PERMANENT
    assert result.error_code == "THIRD_PARTY_AUTH_ERROR"
    attempts = [m for m in fake.received if m.token == "ios-device"]
    assert len(attempts) > 1
    assert len(fake.token_requests) == len(attempts)


async def test_two_senders_with_their_own_apps_side_by_side(fake: FakeFcm) -> None:
    one = FcmSender(FcmConfig(service_account=_account(fake, "org-one"), fcm_url=fake.url))
    two = FcmSender(
        FcmConfig(
            service_account=_account(fake, "org-two"),
            fcm_url=fake.url,
            app_name="org-two-push",
        )
    )
    try:
        assert one.app_name != two.app_name == "org-two-push"
        assert firebase_admin.get_app("org-two-push") is not None
        with pytest.raises(ValueError, match="does not exist"):
            firebase_admin.get_app()  # the default App is never created

        [r1] = await one.send([_message("phone-1")])
        [r2] = await two.send([_message("phone-2")])
        await one.aclose()
        [r3] = await two.send([_message("phone-3")])
    finally:
        await two.aclose()

    assert (r1.provider_id or "").startswith("projects/org-one/messages/")
    assert (r2.provider_id or "").startswith("projects/org-two/messages/")
    assert r3.ok
    assert [(m.project, m.token) for m in fake.received] == [
        ("org-one", "phone-1"),
        ("org-two", "phone-2"),
        ("org-two", "phone-3"),
    ]
    assert {t.claims["iss"].split("@")[1] for t in fake.token_requests} == {
        "org-one.iam.gserviceaccount.com",
        "org-two.iam.gserviceaccount.com",
    }
    with pytest.raises(ValueError, match="does not exist"):
        firebase_admin.get_app(one.app_name)


async def test_token_uri_override_and_refused_assertion_is_permanent(fake: FakeFcm) -> None:
    key = _account(fake, "p")
    key["token_uri"] = "https://oauth2.invalid/token"  # never reached: the override wins
    config = FcmConfig(service_account=key, fcm_url=fake.url, token_uri=fake.url + "/nowhere")
    async with FcmSender(config) as sender:
        results = await sender.send([_message("x"), _message("y")])

    # The fake answers 404 on /nowhere: google-auth cannot get a token.
    assert [r.outcome for r in results] == [Outcome.PERMANENT] * 2
    assert results[0].error_code == "OAUTH_REFRESH"
    assert fake.received == []


async def test_unreachable_fcm_is_retried_later(fake: FakeFcm) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        closed_port = probe.getsockname()[1]
    config = FcmConfig(
        service_account=_account(fake, "p"),
        fcm_url=f"http://127.0.0.1:{closed_port}",
        timeout=2,
    )
    async with FcmSender(config) as sender:
        results = await sender.send([_message("x"), _message("y")])

    assert [r.outcome for r in results] == [Outcome.RETRY] * 2
    assert results[0].error_code == "UNAVAILABLE"


async def test_random_failures_then_retries_deliver_each_dedupe_key_once() -> None:
    async with FakeFcm(failure_rate=0.3, seed=7, random_retry_after=0) as fake:
        config = FcmConfig(service_account=_account(fake, "p"), fcm_url=fake.url)
        async with FcmSender(config) as sender:
            pending = [_message(f"dev-{i % 17}", dedupe_key=f"event-{i}") for i in range(300)]
            rounds = 0
            while pending and rounds < 20:
                results = await sender.send(pending)
                assert {r.outcome for r in results} <= {Outcome.OK, Outcome.RETRY}
                pending = [m for m, r in zip(pending, results, strict=True) if not r.ok]
                rounds += 1

    assert pending == []
    assert rounds > 1
    failed = [m for m in fake.received if m.status != 200]
    assert 50 < len(failed) < 150  # about 30 % of the first round, then of the retries
    assert {m.error_code for m in failed} == {"UNAVAILABLE", "INTERNAL", "QUOTA_EXCEEDED"}
    assert fake.delivered_dedupe_keys() == {f"event-{i}": 1 for i in range(300)}


async def test_service_account_from_a_file(fake: FakeFcm, tmp_path: Path) -> None:
    path = tmp_path / "key.json"
    path.write_text(json.dumps(_account(fake, "from-file")))
    async with FcmSender(FcmConfig(service_account=path, fcm_url=fake.url)) as sender:
        [result] = await sender.send([_message("z")])

    assert sender.project_id == "from-file"
    assert result.ok
    assert fake.received[0].project == "from-file"
