"""SmsSender against a local fake SMS provider."""

from __future__ import annotations

import itertools
import socket
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import pytest

from push.core import Message, Outcome
from push.fakehttp import FakeHTTPServer, Request, Response
from push.sms import SmsConfig, SmsSender

API_KEY = "test-key-123"
BODY = {"from": "ACME", "messages": [{"to": "{to}", "text": "{text}", "ref": "{dedupe_key}"}]}


@dataclass
class Provider:
    """Accepts POST /sms with the right bearer key; per-number scripted answers."""

    answers: dict[str, Response] = field(default_factory=dict)
    received: list[Request] = field(default_factory=list)
    ids: itertools.count[int] = field(default_factory=lambda: itertools.count(100))

    async def handle(self, request: Request) -> Response:
        if request.method != "POST" or request.path != "/sms":
            return Response(404)
        if request.headers.get("authorization") != f"Bearer {API_KEY}":
            return Response.json(401, {"error": "invalid api key"})
        self.received.append(request)
        to = request.json()["messages"][0]["to"]
        if to in self.answers:
            return self.answers[to]
        return Response.json(200, {"messages": [{"id": f"sms-{next(self.ids)}", "to": to}]})


@dataclass
class Fixture:
    provider: Provider
    url: str


@pytest.fixture
async def provider() -> AsyncIterator[Fixture]:
    fake = Provider()
    async with FakeHTTPServer(fake.handle) as http:
        yield Fixture(fake, http.url)


def _config(url: str, **kw: Any) -> SmsConfig:
    fields: dict[str, Any] = {
        "url": f"{url}/sms",
        "body_template": BODY,
        "headers": {"Authorization": f"Bearer {API_KEY}"},
        "id_field": "messages.0.id",
    }
    fields.update(kw)
    return SmsConfig(**fields)


def _sms(to: str, **kw: Any) -> Message:
    fields: dict[str, Any] = {"recipient": to, "title": "ACME", "body": "We arrive at 10:40"}
    fields.update(kw)
    return Message(**fields)


async def test_body_template_is_filled_and_the_id_read_from_the_answer(
    provider: Fixture,
) -> None:
    text = 'Quote "now" {to} & {text}\nbye'
    async with SmsSender(_config(provider.url, idempotency_header="Idempotency-Key")) as sender:
        results = await sender.send(
            [
                _sms("+4915112345678", body=text, dedupe_key="outbox-9"),
                _sms("+441632960961", title="", body="hi"),
            ]
        )

    assert [r.provider_id for r in results] == ["sms-100", "sms-101"]
    first, second = provider.provider.received
    assert first.json() == {
        "from": "ACME",
        "messages": [
            {"to": "+4915112345678", "text": f"ACME\n{text}", "ref": "outbox-9"},
        ],
    }
    assert first.headers["idempotency-key"] == "outbox-9"
    assert first.headers["content-type"] == "application/json"
    assert second.json()["messages"][0]["text"] == "hi"
    assert "idempotency-key" not in second.headers


async def test_body_alone_when_the_title_is_left_out(provider: Fixture) -> None:
    async with SmsSender(_config(provider.url, include_title=False)) as sender:
        [result] = await sender.send([_sms("+4915112345678")])

    assert result.ok
    assert provider.provider.received[0].json()["messages"][0]["text"] == "We arrive at 10:40"


@pytest.mark.parametrize(
    ("answer", "outcome", "retry_after"),
    [
        (Response.json(429, {"error": "slow down"}, {"Retry-After": "12"}), Outcome.RETRY, 12.0),
        (Response(503), Outcome.RETRY, None),
        (Response(408), Outcome.RETRY, None),
        (Response.json(400, {"error": "number not mobile"}), Outcome.PERMANENT, None),
    ],
)
async def test_provider_answers_are_classified(
    provider: Fixture, answer: Response, outcome: Outcome, retry_after: float | None
) -> None:
    provider.provider.answers["+4915100000001"] = answer
    async with SmsSender(_config(provider.url)) as sender:
        results = await sender.send([_sms("+4915100000001"), _sms("+4915100000002")])

    assert [r.outcome for r in results] == [outcome, Outcome.OK]
    assert results[0].error_code == f"HTTP_{answer.status}"
    assert results[0].retry_after == retry_after


async def test_wrong_credentials_are_permanent(provider: Fixture) -> None:
    config = _config(provider.url, headers={"Authorization": "Bearer wrong"})
    async with SmsSender(config) as sender:
        [result] = await sender.send([_sms("+4915112345678")])

    assert (result.outcome, result.error_code) == (Outcome.PERMANENT, "HTTP_401")
    assert "invalid api key" in (result.error_message or "")


async def test_invalid_numbers_fail_without_a_request(provider: Fixture) -> None:
    async with SmsSender(_config(provider.url)) as sender:
        results = await sender.send([_sms("015112345678"), _sms("+49 151 1234"), _sms("+1")])

    assert {(r.outcome, r.error_code) for r in results} == {
        (Outcome.PERMANENT, "INVALID_RECIPIENT")
    }
    assert provider.provider.received == []


async def test_unreachable_provider_is_retried() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    async with SmsSender(_config(f"http://127.0.0.1:{port}")) as sender:
        [result] = await sender.send([_sms("+4915112345678")])

    assert (result.outcome, result.error_code) == (Outcome.RETRY, "NETWORK")


async def test_missing_id_field_still_counts_as_sent(provider: Fixture) -> None:
    async with SmsSender(_config(provider.url, id_field="nowhere.0")) as sender:
        [result] = await sender.send([_sms("+4915112345678")])

    assert result.ok
    assert result.provider_id is None
