"""RFM segmentation of customers from their won deals: recency (days since the last won
deal), frequency (won deals) and monetary value (their amounts).

Each measure is scored 1–5 by quintile within the organisation: ``ceil(5 · cume_dist)`` over
the customers ordered from worst to best, so equal values always get the same score (5 = most
recent / most frequent / most valuable). Named segments (``segment_of``) follow the usual RFM
grid on R and the mean of F and M. Customers without a won deal have no row (no segment).
Recomputed nightly by a job (``backend.appraisal.kpi_jobs``) and stored per customer, so the
customers list can filter by segment.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from decimal import Decimal

from sqlalchemy import ColumnElement, select, text
from sqlalchemy.ext.asyncio import AsyncSession

from backend.accounts.models import Organization
from backend.appraisal.kpi_models import CustomerRfm
from backend.appraisal.kpi_schemas import RfmSummary, SegmentSummary
from backend.customers.models import Customer
from backend.lib.errors import InvalidInput
from backend.lib.tenancy import Actor
from backend.lib.visibility import customer_visible

SEGMENTS: dict[str, str] = {
    "champions": "Champions",
    "loyal": "Loyal",
    "new": "New",
    "promising": "Promising",
    "need_attention": "Need attention",
    "at_risk": "At risk",
    "hibernating": "Hibernating",
    "lost": "Lost",
}


def segment_of(r: int, f: int, m: int) -> str:
    """The named segment of R, F, M scores (1–5 each)."""
    fm = (f + m) / 2
    if r >= 4 and fm >= 4:
        return "champions"
    if r >= 3 and fm >= 3:
        return "loyal"
    if r >= 4 and f == 1:
        return "new"
    if r >= 4:
        return "promising"
    if r <= 2 and fm >= 3:
        return "at_risk"
    if r == 3:
        return "need_attention"
    if r == 2:
        return "hibernating"
    return "lost"


_SCORES = """
WITH won AS (
  SELECT d.customer_id, max(d.closed_at) AS last_won_at, count(*) AS frequency,
    coalesce(sum(d.amount), 0) AS monetary
  FROM deals d JOIN stages s ON s.id = d.stage_id AND s.kind = 'won'
  WHERE d.organization_id = :org AND d.closed_at IS NOT NULL
  GROUP BY d.customer_id
)
SELECT customer_id, last_won_at, frequency, monetary,
  ceil(5 * cume_dist() OVER (ORDER BY last_won_at) - 1e-9)::int AS r_score,
  ceil(5 * cume_dist() OVER (ORDER BY frequency) - 1e-9)::int AS f_score,
  ceil(5 * cume_dist() OVER (ORDER BY monetary) - 1e-9)::int AS m_score
FROM won
"""


def check_segment(segment: str) -> str:
    """A known segment name (422 otherwise)."""
    if segment not in SEGMENTS:
        raise InvalidInput.on("segment", f"one of {', '.join(SEGMENTS)}")
    return segment


def in_segment(actor: Actor, segment: str) -> ColumnElement[bool]:
    """Condition on ``Customer`` rows: in the RFM segment ``segment`` (checked) of the last
    computation."""
    return Customer.id.in_(
        select(CustomerRfm.customer_id).where(
            CustomerRfm.organization_id == actor.organization_id,
            CustomerRfm.segment == check_segment(segment),
        )
    )


async def recompute(session: AsyncSession, organization_id: uuid.UUID, now: datetime) -> int:
    """Replace the organisation's RFM rows; returns how many customers have one."""
    rows = (await session.execute(text(_SCORES), {"org": organization_id})).all()
    await session.execute(
        text("DELETE FROM customer_rfm WHERE organization_id = :org"), {"org": organization_id}
    )
    if not rows:
        return 0
    await session.execute(
        text(
            "INSERT INTO customer_rfm (customer_id, organization_id, last_won_at, recency_days,"
            " frequency, monetary, r_score, f_score, m_score, segment, computed_at)"
            " SELECT c, :org, l, GREATEST(0, floor(extract(epoch FROM (:now - l)) / 86400))::int,"
            " f, m, rs, fs, ms, sg, :now FROM unnest(CAST(:c AS uuid[]),"
            " CAST(:l AS timestamptz[]), CAST(:f AS int[]), CAST(:m AS numeric[]),"
            " CAST(:rs AS int[]), CAST(:fs AS int[]), CAST(:ms AS int[]), CAST(:sg AS text[]))"
            " AS x(c, l, f, m, rs, fs, ms, sg)"
        ),
        {
            "org": organization_id,
            "now": now,
            "c": [r.customer_id for r in rows],
            "l": [r.last_won_at for r in rows],
            "f": [int(r.frequency) for r in rows],
            "m": [Decimal(r.monetary) for r in rows],
            "rs": [r.r_score for r in rows],
            "fs": [r.f_score for r in rows],
            "ms": [r.m_score for r in rows],
            "sg": [segment_of(r.r_score, r.f_score, r.m_score) for r in rows],
        },
    )
    return len(rows)


async def organizations_with_won_deals(session: AsyncSession) -> list[uuid.UUID]:
    """Every organisation (those without won deals get their stale rows cleared)."""
    return list((await session.scalars(select(Organization.id))).all())


async def summary(session: AsyncSession, actor: Actor) -> RfmSummary:
    """Customers per segment with their won revenue and mean recency and frequency, over the
    customers the actor may see."""
    visible = select(Customer.id).where(
        Customer.organization_id == actor.organization_id, customer_visible(actor)
    )
    rows = (
        await session.execute(
            select(
                CustomerRfm.segment,
                text("count(*)"),
                text("coalesce(sum(customer_rfm.monetary), 0)"),
                text("avg(customer_rfm.recency_days)"),
                text("avg(customer_rfm.frequency)"),
                text("max(customer_rfm.computed_at)"),
            )
            .where(
                CustomerRfm.organization_id == actor.organization_id,
                CustomerRfm.customer_id.in_(visible),
            )
            .group_by(CustomerRfm.segment)
        )
    ).all()
    by_segment = {row[0]: row for row in rows}
    segments = []
    for name, label in SEGMENTS.items():
        row = by_segment.get(name)
        segments.append(
            SegmentSummary(
                segment=name,
                label=label,
                customers=int(row[1]) if row else 0,
                monetary=Decimal(row[2]) if row else Decimal(0),
                avg_recency_days=round(float(row[3]), 1) if row else None,
                avg_frequency=round(float(row[4]), 2) if row else None,
            )
        )
    computed = max((row[5] for row in rows), default=None)
    return RfmSummary(
        computed_at=computed, customers=sum(s.customers for s in segments), segments=segments
    )
