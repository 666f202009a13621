"""Group commit for ping batches: the batches of concurrent requests share one transaction.

Phones send many small requests at once. Alone, each pays a transaction of its own: BEGIN, the
idempotency claim, the readiness statement, the COPY, storing the answer, COMMIT with its WAL
flush, and a pooled connection for all of it — several times the cost of writing its points.
``PingWriter`` takes the batches of the requests that wait at the same moment (each validated and
policy-filtered by its request) and stores them in one transaction with one statement of each
kind (``ingest.store_many``, ``idempotency.claim_many``/``store_many``); each request is answered
after that transaction commits, so an answer still means "stored". A lone request waits for no
one: its transaction starts at once, and those that arrive meanwhile form the next group.

If a group's transaction fails, each of its batches is tried again alone, so a failure stays with
the batch that caused it. Two requests with the same ``Idempotency-Key`` never share a group: the
second waits for the next one and then sees the first's answer.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, cast

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from backend.lib import idempotency
from backend.lib.errors import AppError
from backend.tracking import ingest

# Points per transaction at most: bounds a group's time and the size of its COPY.
MAX_GROUP_POINTS = 20_000
# Transactions under way at once per process. One: a second one (writing the next group while
# the first waits for its COMMIT) made the groups smaller and cost more CPU per batch than it
# saved in waiting (bench_ingest: 8.4 -> 10.1 ms of CPU per 500-point batch).
RUNNERS = 1


@dataclass(slots=True)
class Submission:
    """One request's batch, its idempotency claim, and how its answer is made from the result."""

    batch: ingest.Batch
    claim: idempotency.Claim | None
    answer: Callable[[ingest.StoreResult], Any]


@dataclass(frozen=True, slots=True)
class Outcome:
    """What the request answers: a 200 with ``body``, or an earlier answer replayed."""

    status: int
    body: Any
    replay: bool = False


_Waiting = tuple[Submission, "asyncio.Future[Outcome]"]


class PingWriter:
    """Stores submitted batches in shared transactions, ``RUNNERS`` at a time per process."""

    def __init__(self, sessionmaker: async_sessionmaker[AsyncSession]) -> None:
        self._sessionmaker = sessionmaker
        self._waiting: list[_Waiting] = []
        self._runners: set[asyncio.Task[None]] = set()

    async def submit(self, submission: Submission) -> Outcome:
        """Store the batch with whatever else is waiting; its answer once committed."""
        future: asyncio.Future[Outcome] = asyncio.get_running_loop().create_future()
        self._waiting.append((submission, future))
        if len(self._runners) < RUNNERS:
            self._runners.add(asyncio.create_task(self._run()))
        return await future

    async def drain(self) -> None:
        """Wait until every submitted batch is stored (at shutdown)."""
        while self._runners:
            await asyncio.wait(set(self._runners))

    def _next_group(self) -> list[_Waiting]:
        group: list[_Waiting] = []
        rest: list[_Waiting] = []
        keys: set[tuple[object, str, str]] = set()
        points = 0
        for item in self._waiting:
            claim = item[0].claim
            key = (claim.user_id, claim.scope, claim.key) if claim else None
            size = len(item[0].batch.points)
            if (group and points + size > MAX_GROUP_POINTS) or (key is not None and key in keys):
                rest.append(item)
                continue
            group.append(item)
            points += size
            if key is not None:
                keys.add(key)
        self._waiting = rest
        return group

    async def _run(self) -> None:
        try:
            while self._waiting:
                group = self._next_group()
                try:
                    outcomes = await self._store(group)
                except Exception as exc:
                    if len(group) == 1:
                        _settle(group[0][1], exc)
                        continue
                    for item in group:  # alone, so that only the culprit fails
                        outcome: Outcome | Exception
                        try:
                            (outcome,) = await self._store([item])
                        except Exception as alone:
                            outcome = alone
                        _settle(item[1], outcome)
                    continue
                for (_, future), outcome in zip(group, outcomes, strict=True):
                    _settle(future, outcome)
        finally:
            # No await between the last look at the queue and leaving the set: a batch
            # submitted meanwhile starts a runner of its own.
            task = asyncio.current_task()
            if task is not None:
                self._runners.discard(task)

    async def _store(self, group: list[_Waiting]) -> list[Outcome | AppError]:
        """One transaction for the group: claims, points, answers."""
        subs = [s for s, _ in group]
        outcomes: list[Outcome | AppError | None] = [None] * len(subs)
        async with self._sessionmaker() as session, session.begin():
            keyed = [i for i, s in enumerate(subs) if s.claim is not None]
            claimed = await idempotency.claim_many(
                session, [c for i in keyed if (c := subs[i].claim) is not None]
            )
            for i, earlier in zip(keyed, claimed, strict=True):
                if isinstance(earlier, AppError):
                    outcomes[i] = earlier
                elif earlier is not None:
                    outcomes[i] = Outcome(earlier[0], earlier[1], replay=True)
            todo = [i for i, outcome in enumerate(outcomes) if outcome is None]
            results = await ingest.store_many(session, [subs[i].batch for i in todo])
            answers = []
            for i, result in zip(todo, results, strict=True):
                body = subs[i].answer(result)
                outcomes[i] = Outcome(200, body)
                if (claim := subs[i].claim) is not None:
                    answers.append((claim.user_id, claim.scope, claim.key, 200, body))
            await idempotency.store_many(session, answers)
        return cast(list[Outcome | AppError], outcomes)  # each was set above


def _settle(future: asyncio.Future[Outcome], outcome: Outcome | BaseException) -> None:
    if future.done():  # the request went away; its batch is stored all the same
        return
    if isinstance(outcome, BaseException):
        future.set_exception(outcome)
    else:
        future.set_result(outcome)
