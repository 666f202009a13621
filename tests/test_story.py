"""The window company's story end to end, over HTTP, with the demo's own pipeline rules and an
injected clock: website request → call-back task → overdue notice (once) → measurement →
attachment → agreement → calculation → invoice PDF → installation with a deadline; then every
message the story implies goes out through the real senders (firebase-admin to the fake FCM
server, SMS to a fake provider), each exactly once."""

from __future__ import annotations

import io
import re
from datetime import timedelta

import httpx
from pypdf import PdfReader
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from backend.lib.clock import FrozenClock
from backend.notifications.channels import Channels
from backend.notifications.customer.jobs import CustomerMessageJobs
from backend.notifications.models import Notification, OutboxMessage
from backend.notifications.relay import Relay
from backend.seed.pipeline import seed_window_pipeline
from backend.tasks import sla
from backend.tasks.models import Task
from push.fake_fcm import FakeFcm
from tests.conftest import Factory
from tests.delivery import SmsInbox

PNG = (
    b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\x00\x00\x01\x00\x00\x00\x01\x08\x06\x00\x00\x00"
    b"\x1f\x15\xc4\x89\x00\x00\x00\rIDATx\x9cc\xf8\x0f\x00\x00\x01\x01\x00\x05\x18\xd8N\x00\x00"
    b"\x00\x00IEND\xaeB`\x82"
)


def _squash(text: str) -> str:
    return re.sub(r"[\s\u00a0\u202f\u2009]+", "", text)


async def _notifications(session: AsyncSession, user_id: object, kind: str) -> list[Notification]:
    rows = await session.scalars(
        select(Notification).where(Notification.user_id == user_id, Notification.kind == kind)
    )
    return list(rows.all())


async def test_window_company_story(
    client: httpx.AsyncClient,
    factory: Factory,
    session: AsyncSession,
    sessionmaker: async_sessionmaker[AsyncSession],
    clock: FrozenClock,
    fake: FakeFcm,
    channels: Channels,
    sms_inbox: SmsInbox,
) -> None:
    world = await factory.world()
    world.org.payment_details = {
        "recipient": "ООО «Окна»",
        "bankName": "ПАО «АК БАРС» БАНК",
        "accountNumber": "40702810400020012345",
        "bic": "049205805",
        "taxId": "1657123456",
    }
    setup = await seed_window_pipeline(session, world.org, form_key="story-form-key-0123456789")
    await session.commit()
    stages = {k: str(s.id) for k, s in setup.stages.items()}
    # Everyone on staff has the app on a phone.
    devices: dict[str, str] = {}
    for person in (
        world.manager_a,
        world.manager_b,
        world.measurer_a,
        world.installer_a,
        world.installer_b,
    ):
        token = f"phone-of-{person.id}"
        registered = await client.post(
            "/api/v1/me/devices",
            json={"token": token, "platform": "android", "appVersion": "2.1"},
            headers=factory.auth(person),
        )
        assert registered.status_code == 201, registered.text
        devices[str(person.id)] = token
    customer_messages = CustomerMessageJobs(sessionmaker, clock, "https://crm.test")
    relay = Relay(sessionmaker, channels, clock)

    async def deliver() -> dict[str, int]:
        """What the worker does every minute: queue customer messages, relay the outbox."""
        queued = await customer_messages.run()
        assert (await relay.drain()).dead == 0
        return queued

    # 1. A visitor leaves a request on the website (the form POST of the embeddable page).
    page = await client.get("/f/story-form-key-0123456789?utm_source=yandex&utm_campaign=autumn")
    assert page.status_code == 200
    assert 'name="website"' in page.text
    answer = await client.post(
        "/f/story-form-key-0123456789",
        data={
            "name": "Иванова Мария Петровна",
            "phone": "8 (917) 555-12-34",
            "address": "Казань, ул. Баумана, 15, кв. 7",
            "lat": "55.7887",
            "lon": "49.1221",
            "message": "Три окна в квартире",
            "utm_source": "yandex",
            "utm_campaign": "autumn",
            "website": "",
        },
        headers={"Referer": "https://windows.example/contacts"},
    )
    assert answer.status_code == 200, answer.text
    assert "Номер заявки" in answer.text

    deals = (await client.get("/api/v1/deals", headers=factory.auth(world.admin))).json()["items"]
    assert len(deals) == 1
    deal = deals[0]
    assert deal["stageId"] == stages["first_call"]
    assert deal["source"] == "website"
    assert deal["attribution"]["utm"] == {"source": "yandex", "campaign": "autumn"}
    assert deal["attribution"]["referrer"] == "https://windows.example/contacts"
    owner = deal["ownerId"]
    assert owner in {str(world.manager_a.id), str(world.manager_b.id)}
    owner_user = world.manager_a if owner == str(world.manager_a.id) else world.manager_b

    def manager() -> dict[str, str]:  # fresh tokens: the clock moves past their 15 minutes
        return factory.auth(owner_user)

    deal_id = deal["id"]

    tasks = (await client.get(f"/api/v1/tasks?dealId={deal_id}", headers=manager())).json()["items"]
    assert len(tasks) == 1
    call_task = tasks[0]
    assert call_task["kind"] == "call"
    assert call_task["assigneeId"] == owner
    assert "15 минут" in call_task["title"]
    assert "Иванова Мария Петровна" in call_task["title"]
    # 09:00 UTC is 12:00 in Moscow, inside business hours: due 15 minutes later.
    assert call_task["dueAt"].startswith("2026-11-24T09:15:00")

    # 2. Sixteen minutes pass without a call: the SLA scan tells the manager, exactly once.
    clock.advance(timedelta(minutes=16))
    assert await sla.notify_overdue(session, clock.now()) == 1
    assert await sla.notify_overdue(session, clock.now()) == 0
    await session.commit()
    overdue = await _notifications(session, owner_user.id, "task_overdue")
    assert len(overdue) == 1
    assert overdue[0].urgent
    outbox = await session.scalar(
        select(func.count())
        .select_from(OutboxMessage)
        .where(OutboxMessage.payload["notificationId"].astext == str(overdue[0].id))
    )
    assert outbox == 1
    listed = (await client.get("/api/v1/me/notifications?unread=true", headers=manager())).json()
    assert any(n["kind"] == "task_overdue" for n in listed["items"])

    # The manager calls, logs it on the deal (closing the call task) and books the measurement.
    call = await client.post(
        f"/api/v1/deals/{deal_id}/calls",
        json={
            "outcome": "measurement booked",
            "durationS": 184,
            "notes": "Три окна, 5 этаж",
            "taskId": call_task["id"],
        },
        headers=manager(),
    )
    assert call.status_code == 201, call.text
    refused = await client.post(
        f"/api/v1/deals/{deal_id}/stage",
        json={"stageId": stages["measurements"]},
        headers=manager(),
    )
    assert refused.status_code == 422
    assert refused.json()["type"] == "urn:fieldcrm:problem:stage-rule"
    assert {e["field"] for e in refused.json()["errors"]} == {"scheduledStart"}
    moved = await client.post(
        f"/api/v1/deals/{deal_id}/stage",
        json={
            "stageId": stages["measurements"],
            "scheduledStart": "2026-11-26T10:00:00+03:00",
            "scheduledEnd": "2026-11-26T11:00:00+03:00",
        },
        headers=manager(),
    )
    assert moved.status_code == 200, moved.text
    measure_task = moved.json()["tasks"][0]
    assert measure_task["kind"] == "measurement"
    assert measure_task["assigneeId"] == str(world.measurer_a.id)
    assert measure_task["windowStart"].startswith("2026-11-26T07:00:00")
    assert "26.11.2026 10:00" in measure_task["title"]
    assigned = await _notifications(session, world.measurer_a.id, "task_assigned")
    assert [n.data["taskId"] for n in assigned] == [measure_task["id"]]

    # The worker tells the customer the measurement is booked (SMS: the form gave no e-mail).
    assert (await deliver())["booked"] == 1
    [booked] = sms_inbox.posts
    assert booked.json()["to"] == "+79175551234"
    assert "замер" in booked.json()["text"].lower()

    # 3. The measurer sees the deal, attaches the measurement sheet and moves it on.

    def measurer() -> dict[str, str]:
        return factory.auth(world.measurer_a)

    assert (await client.get(f"/api/v1/deals/{deal_id}", headers=measurer())).status_code == 200
    early = await client.post(
        f"/api/v1/deals/{deal_id}/stage", json={"stageId": stages["agreement"]}, headers=measurer()
    )
    assert early.status_code == 422
    assert early.json()["errors"][0]["field"] == "attachments"
    upload = await client.post(
        f"/api/v1/tasks/{measure_task['id']}/attachments?filename=замер.png",
        content=PNG,
        headers=measurer() | {"Content-Type": "application/octet-stream"},
    )
    assert upload.status_code == 201, upload.text
    assert upload.json()["contentType"] == "image/png"
    clock.advance(timedelta(days=2))
    agreed = await client.post(
        f"/api/v1/deals/{deal_id}/stage", json={"stageId": stages["agreement"]}, headers=measurer()
    )
    assert agreed.status_code == 200, agreed.text

    # 4. The manager gets "calculate and call within 2 hours", records the calculation.
    calc_task = agreed.json()["tasks"][0]
    assert calc_task["assigneeId"] == owner
    assert calc_task["kind"] == "call"
    assert "2 часов" in calc_task["title"]
    priced = await client.patch(
        f"/api/v1/deals/{deal_id}",
        json={
            "lineItems": [
                {"name": "Установка окон ПВХ", "quantity": "3", "unitPrice": "45000"},
                {"name": "Подоконник", "quantity": "3", "unitPrice": "4500"},
            ]
        },
        headers=manager(),
    )
    assert priced.status_code == 200, priced.text
    assert priced.json()["amount"] == "148500.00"

    clock.advance(timedelta(minutes=50))
    # 5. At Payment the invoice is generated as a PDF with the customer's details.
    paid = await client.post(
        f"/api/v1/deals/{deal_id}/stage", json={"stageId": stages["payment"]}, headers=manager()
    )
    assert paid.status_code == 200, paid.text
    [document] = paid.json()["documents"]
    pdf = await client.get(
        f"/api/v1/attachments/{document['attachmentId']}/content", headers=manager()
    )
    assert pdf.status_code == 200
    assert pdf.content.startswith(b"%PDF-")
    text = _squash("".join(p.extract_text() for p in PdfReader(io.BytesIO(pdf.content)).pages))
    for expected in (
        "Иванова Мария Петровна",
        "Казань, ул. Баумана, 15, кв. 7",
        "Установка окон ПВХ",
        "148500,00",
        "40702810400020012345",
        "049205805",
    ):
        assert _squash(expected) in text or _squash(expected.replace(",", ".")) in text, expected
    other_org = await factory.world("Other Windows")
    stranger = await client.get(
        f"/api/v1/attachments/{document['attachmentId']}/content",
        headers=factory.auth(other_org.admin),
    )
    assert stranger.status_code == 404

    clock.advance(timedelta(days=1))
    # 6. Installation: an installer (fewest open installations) is told at once, with a deadline.
    installed = await client.post(
        f"/api/v1/deals/{deal_id}/stage",
        json={"stageId": stages["installation"]},
        headers=manager(),
    )
    assert installed.status_code == 200, installed.text
    install_task = installed.json()["tasks"][0]
    assert install_task["kind"] == "installation"
    assert install_task["assigneeId"] in {str(world.installer_a.id), str(world.installer_b.id)}
    assert install_task["dueAt"].startswith("2026-12-11T10:06:00")  # entered + 14 days
    installer_id = install_task["assigneeId"]
    told = await session.scalars(
        select(Notification).where(
            Notification.user_id == installer_id, Notification.kind == "task_assigned"
        )
    )
    assert [n.data["taskId"] for n in told.all()] == [install_task["id"]]

    # 7. Everything the owner's reports need was recorded.
    history = (await client.get(f"/api/v1/deals/{deal_id}/history", headers=manager())).json()
    assert [h["toStageId"] for h in history] == [
        stages[k] for k in ("first_call", "measurements", "agreement", "payment", "installation")
    ]
    assert history[1]["secondsInPrevious"] == 16 * 60
    timeline = (await client.get(f"/api/v1/deals/{deal_id}/timeline", headers=manager())).json()
    calls = [i for i in timeline["items"] if i["kind"] == "call"]
    assert len(calls) == 1
    assert calls[0]["authorId"] == owner
    assert calls[0]["durationS"] == 184
    audit = (await client.get(f"/api/v1/deals/{deal_id}/audit", headers=manager())).json()
    actions = [a["action"] for a in audit]
    assert actions.count("stage_changed") == 4
    assert "document_generated" in actions
    closed_call = await session.get(Task, call_task["id"])
    assert closed_call is not None
    assert closed_call.status.value == "done"

    # 8. Every message of the story went out: staff pushes to each of their phones through
    # firebase-admin, customer messages by SMS; each exactly once.
    assert (await deliver())["booked"] == 1  # the installation
    pending = await session.scalar(
        select(func.count())
        .select_from(OutboxMessage)
        .where(OutboxMessage.organization_id == world.org.id, OutboxMessage.status != "sent")
    )
    assert pending == 0
    told = list(
        (
            await session.scalars(
                select(Notification).where(Notification.organization_id == world.org.id)
            )
        ).all()
    )
    kinds = {(str(n.user_id), n.kind) for n in told}
    assert (owner, "task_assigned") in kinds  # call back within 15 minutes
    assert (owner, "task_overdue") in kinds
    assert (str(world.measurer_a.id), "task_assigned") in kinds
    assert (installer_id, "task_assigned") in kinds
    received = fake.delivered_dedupe_keys()
    by_key = {m.dedupe_key: m for m in fake.delivered}
    for notification in told:
        key = f"notification:{notification.id}"
        assert received[key] == 1, notification.kind
        assert by_key[key].token == devices[str(notification.user_id)]
    assert len(fake.delivered) == len(told)
    assert [p.json()["to"] for p in sms_inbox.posts] == ["+79175551234"] * 2
    assert "монтаж" in sms_inbox.posts[1].json()["text"].lower()
