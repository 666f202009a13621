"""Builders of report test data (rows inserted directly, with explicit local times) and the
hand-computed scenario the report tests check. No tests here."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from zoneinfo import ZoneInfo

from sqlalchemy.ext.asyncio import AsyncSession

from backend.accounts.models import Organization, User
from backend.customers.models import Customer, CustomerKind, Interaction, InteractionKind
from backend.sales.models import Deal, DealStageChange, Pipeline, Stage, StageKind
from backend.tasks.models import Task, TaskKind, TaskStatus
from tests.conftest import World

MOSCOW = ZoneInfo("Europe/Moscow")
STAGES = (
    ("New", StageKind.OPEN),
    ("Measure", StageKind.OPEN),
    ("Quote", StageKind.OPEN),
    ("Won", StageKind.WON),
    ("Lost", StageKind.LOST),
)


def local(month: int, day: int, hour: int = 10, minute: int = 0, year: int = 2026) -> datetime:
    """A Moscow wall-clock time (the test organisation's zone)."""
    return datetime(year, month, day, hour, minute, tzinfo=MOSCOW)


@dataclass
class SalesData:
    """Inserts pipelines, deals with their stage history, calls and tasks for one organisation."""

    session: AsyncSession
    org: Organization
    stages: dict[str, Stage] = field(default_factory=dict)
    pipeline: Pipeline | None = None
    customer_id: uuid.UUID | None = None

    async def setup(self, *, default: bool = True, name: str = "Sales") -> SalesData:
        """A pipeline New → Measure → Quote → Won (+ Lost) and one customer."""
        self.pipeline = Pipeline(
            id=uuid.uuid4(), organization_id=self.org.id, name=name, is_default=default
        )
        self.session.add(self.pipeline)
        await self.session.flush()
        for position, (stage_name, kind) in enumerate(STAGES):
            stage = Stage(
                id=uuid.uuid4(),
                organization_id=self.org.id,
                pipeline_id=self.pipeline.id,
                name=stage_name,
                position=position,
                kind=kind,
                requirements=[],
            )
            self.session.add(stage)
            self.stages[stage_name] = stage
        customer = Customer(
            id=uuid.uuid4(), organization_id=self.org.id, kind=CustomerKind.PERSON, name="Buyer"
        )
        self.session.add(customer)
        await self.session.flush()
        self.customer_id = customer.id
        return self

    async def deal(
        self,
        created: datetime,
        owner: User | None,
        source: str | None,
        amount: int | None,
        moves: list[tuple[str, datetime]] | None = None,
    ) -> Deal:
        """A deal created at ``created`` in New, then moved through ``moves`` (stage, time)."""
        assert self.pipeline is not None
        assert self.customer_id is not None
        path = [("New", created), *(moves or [])]
        last_stage, last_at = path[-1]
        stage = self.stages[last_stage]
        deal = Deal(
            id=uuid.uuid4(),
            organization_id=self.org.id,
            pipeline_id=self.pipeline.id,
            stage_id=stage.id,
            customer_id=self.customer_id,
            title="Windows",
            amount=Decimal(amount) if amount is not None else None,
            currency="RUB",
            source=source,
            owner_id=owner.id if owner else None,
            stage_entered_at=last_at,
            closed_at=last_at if stage.kind is not StageKind.OPEN else None,
            created_at=created,
        )
        self.session.add(deal)
        await self.session.flush()
        previous: tuple[str, datetime] | None = None
        for stage_name, at in path:
            self.session.add(
                DealStageChange(
                    id=uuid.uuid4(),
                    organization_id=self.org.id,
                    deal_id=deal.id,
                    from_stage_id=self.stages[previous[0]].id if previous else None,
                    to_stage_id=self.stages[stage_name].id,
                    changed_at=at,
                    seconds_in_previous=int((at - previous[1]).total_seconds())
                    if previous
                    else None,
                )
            )
            previous = (stage_name, at)
        await self.session.flush()
        return deal

    async def call(self, author: User | None, at: datetime, seconds: int | None = 60) -> None:
        """A call on the customer's timeline."""
        assert self.customer_id is not None
        self.session.add(
            Interaction(
                id=uuid.uuid4(),
                organization_id=self.org.id,
                customer_id=self.customer_id,
                kind=InteractionKind.CALL,
                author_id=author.id if author else None,
                occurred_at=at,
                duration_s=seconds,
            )
        )
        await self.session.flush()

    async def task(
        self,
        assignee: User | None,
        due: datetime | None,
        status: TaskStatus = TaskStatus.OPEN,
        completed: datetime | None = None,
    ) -> Task:
        """A visit task due at ``due``."""
        task = Task(
            id=uuid.uuid4(),
            organization_id=self.org.id,
            kind=TaskKind.VISIT,
            title="Visit",
            status=status,
            assignee_id=assignee.id if assignee else None,
            due_at=due,
            completed_at=completed,
        )
        self.session.add(task)
        await self.session.flush()
        return task


async def october(session: AsyncSession, world: World) -> SalesData:
    """The hand-computed scenario: October 2026 (previous period 31 Aug - 30 Sep), Moscow.

    Deals (created; owner; source; amount; moves):
      D1 2 Oct; A; website; 100000; Measure 3 Oct, Quote 5 Oct, Won 31 Oct 23:30 (in October)
      D2 3 Oct 12:00; A; website; 50000; Measure 4 Oct 12:00, Lost 10 Oct 12:00
      D3 10 Oct 09:00; B; phone; 80000; Quote 12 Oct 09:00, Won 20 Oct 09:00
      D4 15 Sep; B; phone; 30000; Won 1 Oct 00:30 (in October, created in September)
      D5 25 Oct; A; referral; no amount; stays New
      D6 20 Oct; B; no source; 20000; Won 1 Nov 00:30 (after October: 31 Oct 21:30 UTC)
      D7 20 Sep; A; website; 40000; Won 25 Sep
    Calls: A three in October (60+120+180 s, one at 31 Oct 23:30) and one at 1 Nov 00:10; B one
    in October (30 s) and two in September; the measurer one in September.
    Tasks: installer A: on time 5 Oct, late 6 Oct, open due 31 Oct 23:30, cancelled 8 Oct, open
    due 1 Nov 00:30; installer B: in progress due 15 Oct, done late due 20 Sep.
    """
    data = await SalesData(session, world.org).setup()
    a, b = world.manager_a, world.manager_b
    await data.deal(
        local(10, 2),
        a,
        "website",
        100000,
        [("Measure", local(10, 3)), ("Quote", local(10, 5)), ("Won", local(10, 31, 23, 30))],
    )
    await data.deal(
        local(10, 3, 12),
        a,
        "website",
        50000,
        [("Measure", local(10, 4, 12)), ("Lost", local(10, 10, 12))],
    )
    await data.deal(
        local(10, 10, 9),
        b,
        "phone",
        80000,
        [("Quote", local(10, 12, 9)), ("Won", local(10, 20, 9))],
    )
    await data.deal(local(9, 15), b, "phone", 30000, [("Won", local(10, 1, 0, 30))])
    await data.deal(local(10, 25), a, "referral", None)
    await data.deal(local(10, 20), b, None, 20000, [("Won", local(11, 1, 0, 30))])
    await data.deal(local(9, 20), a, "website", 40000, [("Won", local(9, 25))])
    await data.call(a, local(10, 2), 60)
    await data.call(a, local(10, 15), 120)
    await data.call(a, local(10, 31, 23, 30), 180)
    await data.call(a, local(11, 1, 0, 10), 600)
    await data.call(b, local(10, 7), 30)
    await data.call(b, local(9, 7), 30)
    await data.call(b, local(9, 8), 30)
    await data.call(world.measurer_a, local(9, 9), 30)
    ia, ib = world.installer_a, world.installer_b
    await data.task(ia, local(10, 5), TaskStatus.DONE, local(10, 5, 9))
    await data.task(ia, local(10, 6), TaskStatus.DONE, local(10, 7))
    await data.task(ia, local(10, 31, 23, 30))
    await data.task(ia, local(10, 8), TaskStatus.CANCELLED)
    await data.task(ia, local(11, 1, 0, 30))
    await data.task(ib, local(10, 15), TaskStatus.IN_PROGRESS)
    await data.task(ib, local(9, 20), TaskStatus.DONE, local(9, 21))
    await session.commit()
    return data
