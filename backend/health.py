"""Liveness and readiness probes."""

from __future__ import annotations

import logging

from litestar import get
from litestar.datastructures import State
from litestar.exceptions import HTTPException
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

log = logging.getLogger("fieldcrm.health")


@get("/health", opt={"public": True}, tags=["ops"], sync_to_thread=False)
def health() -> dict[str, str]:
    """The process answers."""
    return {"status": "ok"}


@get("/ready", opt={"public": True}, tags=["ops"])
async def ready(state: State) -> dict[str, str]:
    """The database answers (and has PostGIS); 503 otherwise."""
    sessionmaker: async_sessionmaker[AsyncSession] = state.sessionmaker
    try:
        async with sessionmaker() as session:
            await session.execute(text("SELECT postgis_lib_version()"))
    except Exception as exc:
        log.warning("readiness check failed: %r", exc)
        raise HTTPException(status_code=503, detail="database unreachable") from exc
    return {"status": "ready"}
