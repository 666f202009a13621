"""``fieldcrm import-customers``: the CSV import from a terminal, with a progress bar."""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import create_async_engine
from tqdm import tqdm

from backend.accounts.models import User
from backend.accounts.services import load_actor
from backend.customers.importer import import_rows, read_csv
from backend.db.session import make_sessionmaker
from backend.lib.errors import AppError


async def run_import(database_url: str, path: str, *, as_email: str, dry_run: bool) -> int:
    """Import ``path`` as the user ``as_email``; print refused rows; exit code 0, or 1 when
    any row was refused, or 2 when nothing could be read."""
    try:
        _, rows = read_csv(await asyncio.to_thread(Path(path).read_bytes))
    except (OSError, AppError) as exc:
        print(f"cannot import {path}: {exc}", file=sys.stderr)
        return 2
    engine = create_async_engine(database_url)
    try:
        async with make_sessionmaker(engine)() as session, session.begin():
            user = await session.scalar(
                select(User).where(func.lower(User.email) == as_email.lower())
            )
            if user is None or not user.is_active:
                print(f"no active user {as_email}", file=sys.stderr)
                return 2
            actor = await load_actor(session, user.id, user.organization_id, user.token_version)
            with tqdm(total=len(rows), unit="row", desc="importing", file=sys.stderr) as bar:

                def tick(n: int) -> None:
                    bar.update(n)

                result = await import_rows(
                    session,
                    actor,
                    rows,
                    None,
                    dry_run=dry_run,
                    progress=tick,
                )
    finally:
        await engine.dispose()
    for err in result.errors:
        print(f"row {err.row}: {err.field}: {err.reason}", file=sys.stderr)
    verb = "would import" if dry_run else "imported"
    print(
        f"{verb} {result.imported} of {result.total_rows} rows; {len(result.errors)} refused",
        file=sys.stderr,
    )
    return 1 if result.errors else 0
