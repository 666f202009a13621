"""Tasks over the API, the SLA scans (overdue once, escalation to the team lead or the admins,
safe under concurrent workers) and the notification centre."""

from __future__ import annotations

import asyncio
import uuid
from datetime import datetime, timedelta
from typing import Any

import httpx
from sqlalchemy import delete, func, select
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from backend.accounts.models import Organization, Role, Team, TeamMember, User
from backend.lib.clock import FrozenClock
from backend.notifications.models import Notification, OutboxMessage
from backend.tasks import sla
from backend.tasks.models import Task, TaskKind, TaskStatus
from tests.conftest import START, Factory


def _iso(moment: datetime) -> str:
    return moment.isoformat()


async def _create(
    client: httpx.AsyncClient, factory: Factory, author: User, **body: Any
) -> dict[str, Any]:
    body.setdefault("kind", "visit")
    body.setdefault("title", "Check the balcony")
    if isinstance(body.get("assigneeId"), uuid.UUID):
        body["assigneeId"] = str(body["assigneeId"])
    created = await client.post("/api/v1/tasks", json=body, headers=factory.auth(author))
    assert created.status_code == 201, created.text
    result: dict[str, Any] = created.json()
    return result


async def _notifications(
    session: AsyncSession, user_id: uuid.UUID, kind: str | None = None
) -> list[Notification]:
    stmt = select(Notification).where(Notification.user_id == user_id)
    if kind is not None:
        stmt = stmt.where(Notification.kind == kind)
    return list((await session.scalars(stmt.order_by(Notification.created_at))).all())


async def _task(session: AsyncSession, task_id: str) -> Task:
    task = await session.get(Task, uuid.UUID(task_id))
    assert task is not None
    await session.refresh(task)
    return task


async def test_manual_task_notifies_the_assignee(
    client: httpx.AsyncClient, factory: Factory, session: AsyncSession
) -> None:
    world = await factory.world()
    due = START + timedelta(hours=3)
    task = await _create(
        client,
        factory,
        world.manager_a,
        kind="measurement",
        title="Measure the kitchen window",
        assigneeId=world.measurer_a.id,
        dueAt=_iso(due),
        escalateAfterMinutes=30,
    )
    assert task["assigneeId"] == str(world.measurer_a.id)
    assert task["createdById"] == str(world.manager_a.id)
    assert task["status"] == "open"
    assert task["overdue"] is False

    [note] = await _notifications(session, world.measurer_a.id)
    assert note.kind == "task_assigned"
    assert note.title == "Measure the kitchen window"
    assert note.data["taskId"] == task["id"]
    assert note.link == f"/tasks/{task['id']}"
    assert note.organization_id == world.org.id
    outbox = (
        await session.scalars(
            select(OutboxMessage).where(
                OutboxMessage.payload["notificationId"].astext == str(note.id)
            )
        )
    ).all()
    assert len(outbox) == 1
    assert outbox[0].payload["userId"] == str(world.measurer_a.id)
    assert outbox[0].payload["kind"] == "task_assigned"
    assert outbox[0].status.value == "pending"

    # A task for oneself tells nobody.
    await _create(client, factory, world.manager_a, title="Mine")
    assert await _notifications(session, world.manager_a.id) == []

    # Field staff only give work to themselves.
    refused = await client.post(
        "/api/v1/tasks",
        json={"kind": "visit", "title": "Yours", "assigneeId": str(world.installer_a.id)},
        headers=factory.auth(world.measurer_a),
    )
    assert refused.status_code == 422
    assert {e["field"] for e in refused.json()["errors"]} == {"assigneeId"}
    # A manager cannot give work to another team's member either.
    other_team = await client.post(
        "/api/v1/tasks",
        json={"kind": "visit", "title": "Theirs", "assigneeId": str(world.installer_b.id)},
        headers=factory.auth(world.manager_a),
    )
    assert other_team.status_code == 422
    assert {e["field"] for e in other_team.json()["errors"]} == {"assigneeId"}
    titles = set(
        (
            await session.scalars(select(Task.title).where(Task.organization_id == world.org.id))
        ).all()
    )
    assert titles == {"Measure the kitchen window", "Mine"}
    assert await _notifications(session, world.installer_a.id) == []
    assert await _notifications(session, world.installer_b.id) == []


async def test_overdue_filter_lists_only_active_past_due_tasks(
    client: httpx.AsyncClient, factory: Factory, session: AsyncSession, clock: FrozenClock
) -> None:
    world = await factory.world()
    soon = await _create(
        client, factory, world.manager_a, title="soon", dueAt=_iso(START + timedelta(minutes=10))
    )
    later = await _create(
        client, factory, world.manager_a, title="later", dueAt=_iso(START + timedelta(hours=2))
    )
    await _create(client, factory, world.manager_a, title="no due time")
    done = await _create(
        client, factory, world.manager_a, title="done", dueAt=_iso(START + timedelta(minutes=5))
    )
    closed = await client.post(
        f"/api/v1/tasks/{done['id']}/complete",
        json={"outcome": "ok"},
        headers=factory.auth(world.manager_a),
    )
    assert closed.status_code == 200

    listed = await client.get("/api/v1/tasks?overdue=true", headers=factory.auth(world.manager_a))
    assert listed.json()["items"] == []

    clock.advance(timedelta(minutes=20))
    headers = factory.auth(world.manager_a)
    overdue = (await client.get("/api/v1/tasks?overdue=true", headers=headers)).json()["items"]
    assert [t["id"] for t in overdue] == [soon["id"]]
    assert overdue[0]["overdue"] is True
    everything = (await client.get("/api/v1/tasks", headers=headers)).json()["items"]
    assert len(everything) == 4
    assert {t["id"]: t["overdue"] for t in everything}[later["id"]] is False
    # Another manager's overdue work is not listed.
    theirs = await client.get("/api/v1/tasks?overdue=true", headers=factory.auth(world.manager_b))
    assert theirs.json()["items"] == []


async def test_overdue_notice_once_then_escalation_to_team_lead(
    client: httpx.AsyncClient, factory: Factory, session: AsyncSession, clock: FrozenClock
) -> None:
    world = await factory.world()
    task = await _create(
        client,
        factory,
        world.manager_a,
        kind="measurement",
        title="Measure",
        assigneeId=world.measurer_a.id,
        dueAt=_iso(START + timedelta(minutes=30)),
        escalateAfterMinutes=60,
    )
    assert await sla.notify_overdue(session, clock.now()) == 0

    clock.advance(timedelta(minutes=31))
    assert await sla.notify_overdue(session, clock.now()) == 1
    assert await sla.notify_overdue(session, clock.now()) == 0
    assert await sla.escalate_overdue(session, clock.now()) == 0  # due + 60 not reached
    await session.commit()
    [overdue] = await _notifications(session, world.measurer_a.id, "task_overdue")
    assert overdue.urgent
    assert overdue.data["taskId"] == task["id"]
    assert overdue.title.startswith("Просрочено: ")
    row = await _task(session, task["id"])
    assert row.overdue_notified_at == clock.now()
    assert row.escalate_at == START + timedelta(minutes=90)
    assert await _notifications(session, world.manager_a.id, "task_escalated") == []

    clock.advance(timedelta(minutes=60))
    assert await sla.escalate_overdue(session, clock.now()) == 1
    assert await sla.escalate_overdue(session, clock.now()) == 0
    assert await sla.notify_overdue(session, clock.now()) == 0
    await session.commit()
    [escalated] = await _notifications(session, world.manager_a.id, "task_escalated")
    assert escalated.data["taskId"] == task["id"]
    assert escalated.data["assigneeId"] == str(world.measurer_a.id)
    assert escalated.title.startswith("Просрочено в команде: ")
    # Only the team lead: not the other manager, not the admins, not the assignee.
    for user in (world.manager_b, world.admin, world.measurer_a):
        assert await _notifications(session, user.id, "task_escalated") == []
    outbox = await session.scalar(
        select(func.count())
        .select_from(OutboxMessage)
        .where(OutboxMessage.payload["notificationId"].astext == str(escalated.id))
    )
    assert outbox == 1
    assert len(await _notifications(session, world.measurer_a.id, "task_overdue")) == 1


async def test_a_managers_own_overdue_task_escalates_to_the_admins(
    client: httpx.AsyncClient, factory: Factory, session: AsyncSession, clock: FrozenClock
) -> None:
    world = await factory.world()
    second_admin = await factory.user(world.org, Role.ADMIN, name="Second Admin")
    await session.commit()
    task = await _create(
        client,
        factory,
        world.manager_a,
        kind="call",
        title="Call back",
        dueAt=_iso(START + timedelta(minutes=15)),
        escalateAfterMinutes=15,
    )
    clock.advance(timedelta(minutes=31))
    assert await sla.notify_overdue(session, clock.now()) == 1
    assert await sla.escalate_overdue(session, clock.now()) == 1
    await session.commit()
    assert len(await _notifications(session, world.manager_a.id, "task_overdue")) == 1
    for admin in (world.admin, second_admin):
        [note] = await _notifications(session, admin.id, "task_escalated")
        assert note.data["taskId"] == task["id"]
    assert await _notifications(session, world.manager_a.id, "task_escalated") == []
    assert await _notifications(session, world.manager_b.id, "task_escalated") == []


async def test_closed_tasks_are_never_notified(
    client: httpx.AsyncClient, factory: Factory, session: AsyncSession, clock: FrozenClock
) -> None:
    world = await factory.world()
    done = await _create(
        client,
        factory,
        world.manager_a,
        assigneeId=world.measurer_a.id,
        dueAt=_iso(START + timedelta(minutes=10)),
        escalateAfterMinutes=0,
    )
    cancelled = await _create(
        client,
        factory,
        world.manager_a,
        assigneeId=world.measurer_a.id,
        dueAt=_iso(START + timedelta(minutes=10)),
        escalateAfterMinutes=0,
    )
    finished = await client.post(
        f"/api/v1/tasks/{done['id']}/complete",
        json={"outcome": "done early"},
        headers=factory.auth(world.measurer_a),
    )
    assert finished.status_code == 200
    dropped = await client.post(
        f"/api/v1/tasks/{cancelled['id']}/cancel",
        json={"reason": "customer cancelled"},
        headers=factory.auth(world.manager_a),
    )
    assert dropped.status_code == 200
    clock.advance(timedelta(days=2))
    assert await sla.run_scan(session, clock.now()) == (0, 0)
    for user in (world.measurer_a, world.manager_a, world.admin):
        assert await _notifications(session, user.id, "task_overdue") == []
        assert await _notifications(session, user.id, "task_escalated") == []
    assert (await _task(session, done["id"])).overdue_notified_at is None


async def test_new_due_time_resets_the_sla_state(
    client: httpx.AsyncClient, factory: Factory, session: AsyncSession, clock: FrozenClock
) -> None:
    world = await factory.world()
    task = await _create(
        client,
        factory,
        world.manager_a,
        assigneeId=world.measurer_a.id,
        dueAt=_iso(START + timedelta(minutes=10)),
        escalateAfterMinutes=0,
    )
    clock.advance(timedelta(minutes=11))
    assert await sla.run_scan(session, clock.now()) == (1, 1)
    await session.commit()
    row = await _task(session, task["id"])
    assert row.overdue_notified_at is not None
    assert row.escalated_at is not None

    new_due = clock.now() + timedelta(hours=1)
    moved = await client.patch(
        f"/api/v1/tasks/{task['id']}",
        json={"dueAt": _iso(new_due)},
        headers=factory.auth(world.manager_a),
    )
    assert moved.status_code == 200, moved.text
    assert moved.json()["overdueNotifiedAt"] is None
    assert moved.json()["escalatedAt"] is None
    assert moved.json()["overdue"] is False
    row = await _task(session, task["id"])
    assert (row.overdue_notified_at, row.escalate_at, row.escalated_at) == (None, None, None)
    # Not overdue again until the new time.
    assert await sla.notify_overdue(session, clock.now()) == 0
    clock.advance(timedelta(minutes=61))
    assert await sla.notify_overdue(session, clock.now()) == 1
    row = await _task(session, task["id"])
    assert row.overdue_notified_at == clock.now()


async def test_new_due_time_gives_a_new_overdue_notice_and_escalation(
    client: httpx.AsyncClient, factory: Factory, session: AsyncSession, clock: FrozenClock
) -> None:
    world = await factory.world()
    task = await _create(
        client,
        factory,
        world.manager_a,
        assigneeId=world.measurer_a.id,
        dueAt=_iso(START + timedelta(minutes=10)),
        escalateAfterMinutes=0,
    )
    clock.advance(timedelta(minutes=11))
    assert await sla.run_scan(session, clock.now()) == (1, 1)
    moved = await client.patch(
        f"/api/v1/tasks/{task['id']}",
        json={"dueAt": _iso(clock.now() + timedelta(hours=1))},
        headers=factory.auth(world.manager_a),
    )
    assert moved.status_code == 200, moved.text
    clock.advance(timedelta(minutes=61))
    assert await sla.run_scan(session, clock.now()) == (1, 1)
    await session.commit()
    notices = await _notifications(session, world.measurer_a.id, "task_overdue")
    assert len(notices) == 2
    assert len(await _notifications(session, world.manager_a.id, "task_escalated")) == 2


async def test_two_concurrent_scans_never_notify_twice(
    engine: AsyncEngine, password_hash: str
) -> None:
    """Two workers on two real connections, committed data: each task is claimed once."""
    org_id = uuid.uuid4()
    now = START + timedelta(hours=1)
    async with AsyncSession(bind=engine, expire_on_commit=False) as setup:
        setup.add(
            Organization(
                id=org_id,
                name=f"Concurrent {org_id.hex[:6]}",
                time_zone="Europe/Moscow",
                currency="RUB",
                locale="ru-RU",
            )
        )
        await setup.flush()
        users = {}
        for key, role in (("lead", Role.MANAGER), ("worker", Role.FIELD)):
            uid = uuid.uuid4()
            users[key] = uid
            setup.add(
                User(
                    id=uid,
                    organization_id=org_id,
                    email=f"{key}-{uid.hex[:8]}@example.test",
                    password_hash=password_hash,
                    full_name=key,
                    role=role,
                    skills=[],
                    time_zone="Europe/Moscow",
                    is_active=True,
                    token_version=1,
                )
            )
        await setup.flush()
        team_id = uuid.uuid4()
        setup.add(Team(id=team_id, organization_id=org_id, name="Team", lead_id=users["lead"]))
        await setup.flush()
        setup.add(TeamMember(team_id=team_id, user_id=users["worker"], organization_id=org_id))
        for n in range(50):
            setup.add(
                Task(
                    id=uuid.uuid4(),
                    organization_id=org_id,
                    kind=TaskKind.VISIT,
                    title=f"Visit {n}",
                    status=TaskStatus.OPEN,
                    assignee_id=users["worker"],
                    due_at=START + timedelta(minutes=n),
                    escalate_after_minutes=0,
                    priority=0,
                )
            )
        await setup.commit()

    try:

        async def scan(kind: str) -> tuple[int, int]:
            run = sla.notify_overdue if kind == "overdue" else sla.escalate_overdue
            async with AsyncSession(bind=engine) as one, AsyncSession(bind=engine) as two:
                counts = await asyncio.gather(run(one, now, batch=30), run(two, now, batch=30))
                await asyncio.gather(one.commit(), two.commit())
            return counts[0], counts[1]

        first = await scan("overdue")
        assert sum(first) <= 50
        rest = await scan("overdue")  # whatever the batches left, claimed once
        assert sum(first) + sum(rest) == 50
        assert sum(await scan("overdue")) == 0
        escalated = await scan("escalation")
        escalated_rest = await scan("escalation")
        assert sum(escalated) + sum(escalated_rest) == 50

        async with AsyncSession(bind=engine) as check:
            rows = (
                await check.execute(
                    select(
                        Notification.kind, Notification.user_id, Notification.data["taskId"].astext
                    ).where(Notification.organization_id == org_id)
                )
            ).all()
            overdue = [r for r in rows if r[0] == "task_overdue"]
            escalations = [r for r in rows if r[0] == "task_escalated"]
            assert len(overdue) == 50
            assert len({r[2] for r in overdue}) == 50
            assert {r[1] for r in overdue} == {users["worker"]}
            assert len(escalations) == 50
            assert len({r[2] for r in escalations}) == 50
            assert {r[1] for r in escalations} == {users["lead"]}
            queued = await check.scalar(
                select(func.count())
                .select_from(OutboxMessage)
                .where(OutboxMessage.organization_id == org_id)
            )
            assert queued == 100
            stamped = await check.scalar(
                select(func.count())
                .select_from(Task)
                .where(
                    Task.organization_id == org_id,
                    Task.overdue_notified_at.is_not(None),
                    Task.escalated_at.is_not(None),
                )
            )
            assert stamped == 50
    finally:
        async with AsyncSession(bind=engine) as cleanup:
            await cleanup.execute(delete(Organization).where(Organization.id == org_id))
            await cleanup.commit()
        async with AsyncSession(bind=engine) as check:
            left = await check.scalar(
                select(func.count()).select_from(Task).where(Task.organization_id == org_id)
            )
            assert left == 0


async def test_notification_centre(
    client: httpx.AsyncClient, factory: Factory, session: AsyncSession, clock: FrozenClock
) -> None:
    world = await factory.world()
    first = await _create(
        client, factory, world.manager_a, title="First", assigneeId=world.measurer_a.id
    )
    clock.advance(timedelta(minutes=1))
    second = await _create(
        client, factory, world.manager_a, title="Second", assigneeId=world.measurer_a.id
    )
    await _create(
        client, factory, world.manager_a, title="For Igor", assigneeId=world.installer_a.id
    )
    measurer = factory.auth(world.measurer_a)

    listed = (await client.get("/api/v1/me/notifications", headers=measurer)).json()["items"]
    assert [n["data"]["taskId"] for n in listed] == [second["id"], first["id"]]  # newest first
    assert all(n["kind"] == "task_assigned" and n["readAt"] is None for n in listed)
    count = await client.get("/api/v1/me/notifications/unread-count", headers=measurer)
    assert count.json() == {"unread": 2}

    igors = await _notifications(session, world.installer_a.id)
    assert len(igors) == 1
    # Another user's notification can neither be listed nor marked read.
    stolen = await client.post(
        "/api/v1/me/notifications/read", json={"ids": [str(igors[0].id)]}, headers=measurer
    )
    assert stolen.json() == {"marked": 0}
    await session.refresh(igors[0])
    assert igors[0].read_at is None

    one = await client.post(
        "/api/v1/me/notifications/read", json={"ids": [listed[1]["id"]]}, headers=measurer
    )
    assert one.status_code == 200
    assert one.json() == {"marked": 1}
    unread = (await client.get("/api/v1/me/notifications?unread=true", headers=measurer)).json()
    assert [n["id"] for n in unread["items"]] == [listed[0]["id"]]
    assert (await client.get("/api/v1/me/notifications/unread-count", headers=measurer)).json() == {
        "unread": 1
    }

    everything = await client.post("/api/v1/me/notifications/read", json={}, headers=measurer)
    assert everything.json() == {"marked": 1}
    assert (await client.get("/api/v1/me/notifications/unread-count", headers=measurer)).json() == {
        "unread": 0
    }
    rows = await _notifications(session, world.measurer_a.id)
    for row in rows:
        await session.refresh(row)
    assert all(r.read_at is not None for r in rows)
    await session.refresh(igors[0])
    assert igors[0].read_at is None

    igor = (
        await client.get("/api/v1/me/notifications", headers=factory.auth(world.installer_a))
    ).json()
    assert [n["title"] for n in igor["items"]] == ["For Igor"]
    assert (
        await client.get("/api/v1/me/notifications", headers=factory.auth(world.manager_b))
    ).json()["items"] == []


async def test_task_lifecycle(
    client: httpx.AsyncClient, factory: Factory, session: AsyncSession, clock: FrozenClock
) -> None:
    world = await factory.world()

    def manager() -> dict[str, str]:  # fresh tokens: the clock moves past their 15 minutes
        return factory.auth(world.manager_a)

    def measurer() -> dict[str, str]:
        return factory.auth(world.measurer_a)

    task = await _create(client, factory, world.manager_a, assigneeId=world.measurer_a.id)

    # Field staff outside the task do not see it.
    for user in (world.installer_a, world.installer_b):
        hidden = await client.post(f"/api/v1/tasks/{task['id']}/start", headers=factory.auth(user))
        assert hidden.status_code == 404

    clock.advance(timedelta(minutes=5))
    started = await client.post(f"/api/v1/tasks/{task['id']}/start", headers=measurer())
    assert started.status_code == 200, started.text
    assert started.json()["status"] == "in_progress"
    assert started.json()["startedAt"].startswith("2026-11-24T09:05:00")
    clock.advance(timedelta(minutes=30))
    completed = await client.post(
        f"/api/v1/tasks/{task['id']}/complete", json={"outcome": "measured"}, headers=measurer()
    )
    assert completed.status_code == 200, completed.text
    row = await _task(session, task["id"])
    assert row.status is TaskStatus.DONE
    assert row.outcome == "measured"
    assert row.started_at == START + timedelta(minutes=5)
    assert row.completed_at == START + timedelta(minutes=35)

    again = await client.post(
        f"/api/v1/tasks/{task['id']}/complete", json={"outcome": "twice"}, headers=measurer()
    )
    assert again.status_code == 409
    assert again.json()["type"] == "urn:fieldcrm:problem:conflict"
    edit_closed = await client.patch(
        f"/api/v1/tasks/{task['id']}", json={"title": "x"}, headers=manager()
    )
    assert edit_closed.status_code == 409
    assert (await _task(session, task["id"])).outcome == "measured"

    # A field user who sees a task (they created it) but no longer has it cannot work on it.
    own = await _create(client, factory, world.installer_a, title="Own task")
    handed = await client.patch(
        f"/api/v1/tasks/{own['id']}",
        json={"assigneeId": str(world.measurer_a.id)},
        headers=manager(),
    )
    assert handed.status_code == 200, handed.text
    not_theirs = await client.post(
        f"/api/v1/tasks/{own['id']}/complete",
        json={"outcome": "x"},
        headers=factory.auth(world.installer_a),
    )
    assert not_theirs.status_code == 422
    assert {e["field"] for e in not_theirs.json()["errors"]} == {"taskId"}
    reassign = await client.patch(
        f"/api/v1/tasks/{own['id']}",
        json={"assigneeId": str(world.installer_a.id)},
        headers=factory.auth(world.installer_a),
    )
    assert reassign.status_code == 422
    assert {e["field"] for e in reassign.json()["errors"]} == {"assigneeId"}
    assert (await _task(session, own["id"])).assignee_id == world.measurer_a.id

    # Cancelling: managers only, with a reason; a cancelled task is closed.
    field_cancel = await client.post(
        f"/api/v1/tasks/{own['id']}/cancel", json={"reason": "no"}, headers=measurer()
    )
    assert field_cancel.status_code == 403
    cancelled = await client.post(
        f"/api/v1/tasks/{own['id']}/cancel",
        json={"reason": "customer cancelled"},
        headers=manager(),
    )
    assert cancelled.status_code == 200, cancelled.text
    assert cancelled.json()["status"] == "cancelled"
    row = await _task(session, own["id"])
    assert (row.status, row.outcome) == (TaskStatus.CANCELLED, "customer cancelled")
    assert row.completed_at == clock.now()
    late = await client.post(
        f"/api/v1/tasks/{own['id']}/complete", json={"outcome": "done anyway"}, headers=measurer()
    )
    assert late.status_code == 409
    assert (await _task(session, own["id"])).status is TaskStatus.CANCELLED
    no_reason = await client.post(f"/api/v1/tasks/{task['id']}/cancel", json={}, headers=manager())
    assert no_reason.status_code == 400
