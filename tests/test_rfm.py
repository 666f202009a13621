"""RFM segmentation: quintile scores with ties, named segments, the nightly job, the customers
list filter and the summary, scoped to what the caller may see."""

from __future__ import annotations

import uuid
from datetime import timedelta

import httpx
import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from backend.appraisal.kpi_models import CustomerRfm
from backend.appraisal.rfm import segment_of
from backend.customers.models import Customer
from backend.lib.clock import FrozenClock
from backend.sales.models import StageKind
from backend.worker import Jobs
from tests.conftest import START, Factory, World
from tests.test_kpis import Builder


@pytest.mark.parametrize(
    ("scores", "segment"),
    [
        ((5, 5, 5), "champions"),
        ((4, 4, 4), "champions"),
        ((3, 3, 3), "loyal"),
        ((5, 1, 2), "new"),
        ((4, 3, 2), "promising"),
        ((2, 4, 4), "at_risk"),
        ((1, 5, 5), "at_risk"),
        ((3, 1, 2), "need_attention"),
        ((2, 2, 1), "hibernating"),
        ((1, 3, 1), "lost"),
    ],
)
def test_segments(scores: tuple[int, int, int], segment: str) -> None:
    assert segment_of(*scores) == segment


async def five_customers(session: AsyncSession, w: World) -> dict[str, str]:
    """A: 3 won deals, 5 days ago, 300k; B: 1, 10 days, 10k; C: 2, 200 days, 200k;
    D: 1, 400 days, 5k; E: 1, 30 days, 50k (plus a lost and an open deal); F: none won."""
    b = Builder(session, w.org)
    stages = await b.stages()
    won = stages[StageKind.WON]
    ids = {}
    plan = {
        "A": [(5, "100000"), (50, "100000"), (90, "100000")],
        "B": [(10, "10000")],
        "C": [(200, "150000"), (300, "50000")],
        "D": [(400, "5000")],
        "E": [(30, "50000")],
        "F": [],
    }
    for name, deals in plan.items():
        customer = await b.customer(f"Customer {name}")
        customer.owner_id = w.manager_a.id if name != "C" else w.manager_b.id
        ids[name] = str(customer.id)
        for days, amount in deals:
            await b.deal(won, w.manager_a, amount, START - timedelta(days=days), customer)
        if name in ("E", "F"):
            await b.deal(stages[StageKind.LOST], w.manager_a, "999999", START, customer)
            await b.deal(stages[StageKind.OPEN], w.manager_a, "999999", None, customer)
    await session.flush()
    return ids


async def test_scores_segments_job_filter_and_summary(
    client: httpx.AsyncClient,
    session: AsyncSession,
    sessionmaker: async_sessionmaker[AsyncSession],
    factory: Factory,
    clock: FrozenClock,
) -> None:
    w = await factory.world()
    ids = await five_customers(session, w)
    await session.commit()
    assert await Jobs(sessionmaker, clock).rfm_segments() == 5

    rows = {
        str(r.customer_id): r
        for r in (
            await session.scalars(
                select(CustomerRfm).where(CustomerRfm.organization_id == w.org.id)
            )
        ).all()
    }
    got = {
        name: (r.r_score, r.f_score, r.m_score, r.segment, r.recency_days, r.frequency)
        for name, cid in ids.items()
        if (r := rows.get(cid)) is not None
    }
    # recency (oldest first): D, C, E, B, A -> 1..5; frequency 1, 1, 1 tie at the 3rd
    # quintile, then C (2) and A (3); monetary: D, B, E, C, A
    assert got == {
        "A": (5, 5, 5, "champions", 5, 3),
        "B": (4, 3, 2, "promising", 10, 1),
        "C": (2, 4, 4, "at_risk", 200, 2),
        "D": (1, 3, 1, "lost", 400, 1),
        "E": (3, 3, 3, "loyal", 30, 1),
    }
    assert rows[ids["A"]].monetary == 300000

    admin = factory.auth(w.admin)
    champions = await client.get("/api/v1/customers?segment=champions", headers=admin)
    assert champions.status_code == 200, champions.text
    assert [c["id"] for c in champions.json()["items"]] == [ids["A"]]
    bogus = await client.get("/api/v1/customers?segment=whales", headers=admin)
    assert bogus.status_code == 422
    assert bogus.json()["errors"][0]["field"] == "segment"
    # C belongs to manager B and has no deal of theirs: manager B sees it at risk, A does not
    at_risk_b = await client.get(
        "/api/v1/customers?segment=at_risk", headers=factory.auth(w.manager_b)
    )
    assert [c["id"] for c in at_risk_b.json()["items"]] == [ids["C"]]

    summary = await client.get("/api/v1/appraisal/rfm", headers=admin)
    assert summary.status_code == 200
    body = summary.json()
    assert body["customers"] == 5
    by_name = {s["segment"]: s for s in body["segments"]}
    assert by_name["champions"]["customers"] == 1
    assert by_name["champions"]["monetary"] == "300000.00"
    assert by_name["new"]["customers"] == 0
    other = await factory.world("Other Windows")
    empty = await client.get("/api/v1/appraisal/rfm", headers=factory.auth(other.admin))
    assert empty.json()["customers"] == 0

    # a new won deal for D today: recomputed, D becomes the most recent
    b = Builder(session, w.org)
    stages = await b.stages()
    d_customer = await session.get(Customer, uuid.UUID(ids["D"]))
    await b.deal(stages[StageKind.WON], w.manager_a, "1000", START, d_customer)
    await session.commit()
    await Jobs(sessionmaker, clock).rfm_segments()
    refreshed = await session.get(CustomerRfm, uuid.UUID(ids["D"]), populate_existing=True)
    assert refreshed is not None
    assert (refreshed.r_score, refreshed.recency_days, refreshed.frequency) == (5, 0, 2)
