"""The callers of concurrent API requests, loaded together.

Every API request checks that its access token's user is still active with the token's version
(so a password change or a deactivation takes effect at once). Under load many requests wait for
that at the same moment: ``ActorLoader`` sends one query for all the credentials waiting, and one
more for those that arrived while it ran. A lone request waits for no one: its query starts at
once. A query that fails fails the requests that waited for it, nothing else.
"""

from __future__ import annotations

import asyncio

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from backend.accounts.security import AccessClaims
from backend.accounts.services import load_actors
from backend.lib.errors import Unauthenticated
from backend.lib.tenancy import Actor

# Credentials per query at most (the rest wait for the next query).
MAX_PER_QUERY = 500


class ActorLoader:
    """Loads actors for verified access tokens, one query per round trip (one per process)."""

    def __init__(self, sessionmaker: async_sessionmaker[AsyncSession]) -> None:
        self._sessionmaker = sessionmaker
        self._waiting: dict[AccessClaims, list[asyncio.Future[Actor]]] = {}
        self._task: asyncio.Task[None] | None = None

    async def load(self, claims: AccessClaims) -> Actor:
        """The actor of ``claims``; ``Unauthenticated`` when the user is inactive or the
        token's version is stale."""
        future: asyncio.Future[Actor] = asyncio.get_running_loop().create_future()
        self._waiting.setdefault(claims, []).append(future)
        if self._task is None:
            self._task = asyncio.create_task(self._run())
        return await future

    async def _run(self) -> None:
        try:
            while self._waiting:
                batch = dict(list(self._waiting.items())[:MAX_PER_QUERY])
                for claims in batch:
                    del self._waiting[claims]
                await self._answer(batch)
        finally:
            self._task = None

    async def _answer(self, batch: dict[AccessClaims, list[asyncio.Future[Actor]]]) -> None:
        try:
            async with self._sessionmaker() as session:
                actors = await load_actors(session, batch)
        except Exception as exc:
            for futures in batch.values():
                for future in futures:
                    if not future.done():
                        future.set_exception(exc)
            return
        for claims, futures in batch.items():
            actor = actors.get(claims)
            for future in futures:
                if future.done():  # the request went away
                    continue
                if actor is None:
                    future.set_exception(Unauthenticated("The credentials are no longer valid"))
                else:
                    future.set_result(actor)
