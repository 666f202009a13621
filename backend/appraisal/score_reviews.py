"""Managers' review comments on a person's scorecard for a period.

Admins review anyone of their organisation, managers the members of the teams they lead
(never themselves); the person sees the comments on their own scorecard. Every comment is
written to the audit log.
"""

from __future__ import annotations

import uuid
from datetime import date, datetime

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from backend.accounts.models import Role, User
from backend.appraisal import kpis as kpi
from backend.appraisal.kpi_models import ScorecardReview
from backend.appraisal.kpi_schemas import ReviewInput, ReviewOut
from backend.audit import services as audit
from backend.lib.errors import Forbidden, InvalidInput
from backend.lib.tenancy import Actor


async def add_review(
    session: AsyncSession, actor: Actor, user_id: uuid.UUID, data: ReviewInput, now: datetime
) -> ReviewOut:
    """Add a comment on a person's period (admins; managers for their teams' members)."""
    actor.require_role(Role.ADMIN, Role.MANAGER)
    kpi.check_period(data.date_from, data.date_to)
    person = await kpi.visible_person(session, actor, user_id)
    if person.id == actor.user_id:
        raise Forbidden("Nobody reviews their own scorecard")
    comment = data.comment.strip()
    if not comment:
        raise InvalidInput.on("comment", "must not be blank")
    review = ScorecardReview(
        id=uuid.uuid4(),
        organization_id=actor.organization_id,
        user_id=person.id,
        author_id=actor.user_id,
        period_start=data.date_from,
        period_end=data.date_to,
        comment=comment,
    )
    session.add(review)
    await session.flush()
    await audit.record(
        session,
        organization_id=actor.organization_id,
        entity="scorecard_review",
        entity_id=review.id,
        action="created",
        actor_id=actor.user_id,
        at=now,
        changes={
            "userId": [None, str(person.id)],
            "period": [None, f"{data.date_from.isoformat()}/{data.date_to.isoformat()}"],
        },
    )
    author = await session.get(User, actor.user_id)
    return _out(review, author.full_name if author else None)


def _out(review: ScorecardReview, author_name: str | None) -> ReviewOut:
    return ReviewOut(
        id=review.id,
        user_id=review.user_id,
        author_id=review.author_id,
        author_name=author_name,
        date_from=review.period_start,
        date_to=review.period_end,
        comment=review.comment,
        created_at=review.created_at,
    )


async def list_reviews(
    session: AsyncSession, actor: Actor, user_id: uuid.UUID, date_from: date, date_to: date
) -> list[ReviewOut]:
    """Comments on a visible person whose period overlaps [date_from, date_to], oldest first."""
    kpi.check_period(date_from, date_to)
    person = await kpi.visible_person(session, actor, user_id)
    rows = await session.execute(
        select(ScorecardReview, User.full_name)
        .outerjoin(User, User.id == ScorecardReview.author_id)
        .where(
            ScorecardReview.organization_id == actor.organization_id,
            ScorecardReview.user_id == person.id,
            ScorecardReview.period_start <= date_to,
            ScorecardReview.period_end >= date_from,
        )
        .order_by(ScorecardReview.created_at, ScorecardReview.id)
    )
    return [_out(review, name) for review, name in rows.all()]
