"""Alembic environment: runs migrations on the async engine named by FIELDCRM_DATABASE_URL
(or by the ``sqlalchemy.url`` the caller put on the Alembic config)."""

from __future__ import annotations

import asyncio
import os

from alembic import context
from sqlalchemy import pool
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import create_async_engine

from backend.db.models import Base

config = context.config
target_metadata = Base.metadata

# PostGIS and its friends own tables we must never autogenerate against.
_FOREIGN_TABLES = {"spatial_ref_sys", "layer", "topology"}


def _include_object(
    obj: object, name: str | None, type_: str, reflected: bool, compare_to: object
) -> bool:
    # PostGIS's own tables, procrastinate's tables and the partitioned pings (written by hand in
    # SQL, no ORM model) are not ours to autogenerate.
    if type_ == "table" and name is not None:
        return not (
            name in _FOREIGN_TABLES or name.startswith("procrastinate") or name.startswith("pings")
        )
    return True


def _url() -> str:
    url = config.get_main_option("sqlalchemy.url") or os.environ.get("FIELDCRM_DATABASE_URL", "")
    if not url:
        raise RuntimeError("set FIELDCRM_DATABASE_URL to run migrations")
    return url


def _run(connection: Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        include_object=_include_object,
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()


async def _run_async() -> None:
    engine = create_async_engine(_url(), poolclass=pool.NullPool)
    async with engine.connect() as connection:
        await connection.run_sync(_run)
    await engine.dispose()


if context.is_offline_mode():
    context.configure(url=_url(), target_metadata=target_metadata, literal_binds=True)
    with context.begin_transaction():
        context.run_migrations()
else:
    asyncio.run(_run_async())
