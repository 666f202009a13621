"""The worker job ``customer_messages`` (every minute): one pass of each scan in
``scans``, each visit decided in the scan's transaction by ``services`` (which locks the
visit's message state, so overlapping passes never send twice)."""

from __future__ import annotations

import logging
from collections import Counter

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from backend.lib.clock import Clock
from backend.notifications.customer import scans, services
from backend.notifications.customer.models import MessageKind

log = logging.getLogger("fieldcrm.customer_messages")


class CustomerMessageJobs:
    """The scans with what they need; ``run`` is one pass."""

    def __init__(
        self, sessionmaker: async_sessionmaker[AsyncSession], clock: Clock, base_url: str
    ) -> None:
        self.sessionmaker = sessionmaker
        self.clock = clock
        self.base_url = base_url

    async def run(self) -> dict[str, int]:
        """One pass: confirmations, reminders, on my way, running late, feedback requests.
        Returns how many messages of each kind were queued."""
        queued: Counter[str] = Counter()
        now = self.clock.now()
        async with self.sessionmaker() as session, session.begin():
            for task in await scans.bookings_due(session, now):
                outcome = await services.confirm_booking(session, task, now, self.base_url)
                queued["booked"] += outcome is services.Outcome.QUEUED
        async with self.sessionmaker() as session, session.begin():
            for task in await scans.reminders_due(session, now):
                outcome = await services.remind(session, task, now, self.base_url)
                queued["reminder"] += outcome is services.Outcome.QUEUED
        async with self.sessionmaker() as session:
            workers = await scans.driving_workers(session, now)
        for organization_id, user_id, zone in workers:
            async with self.sessionmaker() as session, session.begin():
                departure = await scans.next_visit(session, organization_id, user_id, zone, now)
                if departure is not None:
                    outcome = await services.on_my_way(
                        session, departure.task, departure.eta, now, self.base_url
                    )
                    queued["on_my_way"] += outcome is services.Outcome.QUEUED
        async with self.sessionmaker() as session, session.begin():
            for due in await scans.eta_changes_due(session, now):
                outcome = await services.running_late(
                    session, due.task, due.new_eta, due.change_id, now, self.base_url
                )
                queued["running_late"] += outcome is services.Outcome.QUEUED
        async with self.sessionmaker() as session, session.begin():
            for task in await scans.feedback_due(session, now):
                outcome = await services.request_feedback(session, task, now, self.base_url)
                queued["feedback"] += outcome is services.Outcome.QUEUED
        result = {kind.value: queued[kind.value] for kind in MessageKind}
        if any(result.values()):
            log.info("customer messages queued: %s", result)
        return result
