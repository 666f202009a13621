"""CSV import of customers. Each row becomes a customer (with an optional contact and site),
imported whole or not at all; refused rows are reported with the row number, field and reason.

Columns (header row required, order free, unknown columns refused):
``kind`` (person|company, default person), ``name`` (required), ``phone``, ``email``,
``contact_name`` (default: the customer's name), ``address``, ``lat``, ``lon``, ``access_notes``,
``source``, ``notes``, ``owner_email`` (default: the importing user).
"""

from __future__ import annotations

import csv
import io
from collections.abc import Callable, Iterable

import msgspec
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from backend.accounts.models import User
from backend.customers import schemas, services
from backend.customers.geocoding import Geocoder
from backend.lib.errors import AppError, InvalidInput
from backend.lib.tenancy import Actor

COLUMNS = (
    "kind",
    "name",
    "phone",
    "email",
    "contact_name",
    "address",
    "lat",
    "lon",
    "access_notes",
    "source",
    "notes",
    "owner_email",
)
MAX_ROWS = 100_000


def read_csv(data: bytes) -> tuple[list[str], list[dict[str, str]]]:
    """Decode (UTF-8, BOM tolerated) and parse; raise InvalidInput on a bad header."""
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise InvalidInput.on("body", "the file is not UTF-8 text") from exc
    reader = csv.DictReader(io.StringIO(text))
    header = [h.strip() for h in (reader.fieldnames or [])]
    if not header:
        raise InvalidInput.on("body", "the file is empty; a header row is required")
    unknown = [h for h in header if h not in COLUMNS]
    if unknown:
        raise InvalidInput.on("header", f"unknown columns: {', '.join(unknown)}")
    if "name" not in header:
        raise InvalidInput.on("header", "the column 'name' is required")
    reader.fieldnames = header
    rows = [{k: (v or "").strip() for k, v in row.items() if k is not None} for row in reader]
    if len(rows) > MAX_ROWS:
        raise InvalidInput.on("body", f"at most {MAX_ROWS} rows per import")
    return header, rows


def _optional(row: dict[str, str], key: str) -> str | None:
    return row.get(key) or None


def row_to_create(row: dict[str, str], owners: dict[str, object]) -> schemas.CustomerCreate:
    """Turn one CSV row into the same input the API takes (so the same rules apply)."""
    lat, lon = _optional(row, "lat"), _optional(row, "lon")
    contact: list[dict[str, object]] = []
    if row.get("phone") or row.get("email"):
        contact.append(
            {
                "name": row.get("contact_name") or row.get("name") or "",
                "phone": _optional(row, "phone"),
                "email": _optional(row, "email"),
            }
        )
    sites: list[dict[str, object]] = []
    if row.get("address") or lat or lon:
        sites.append(
            {
                "address": row.get("address", ""),
                "lat": float(lat) if lat else None,
                "lon": float(lon) if lon else None,
                "accessNotes": _optional(row, "access_notes"),
            }
        )
    owner_email = (row.get("owner_email") or "").lower()
    if owner_email and owner_email not in owners:
        raise InvalidInput.on("owner_email", "no user with this email in the organisation")
    raw = {
        "kind": row.get("kind") or "person",
        "name": row.get("name", ""),
        "ownerId": owners.get(owner_email) if owner_email else None,
        "source": _optional(row, "source"),
        "notes": _optional(row, "notes"),
        "contacts": contact,
        "sites": sites,
    }
    return msgspec.convert(raw, schemas.CustomerCreate, str_keys=True)


_API_TO_CSV = {
    "contacts[0].phone": "phone",
    "contacts[0].email": "email",
    "contacts[0].name": "contact_name",
    "sites[0].address": "address",
    "sites[0].lat": "lat",
    "sites[0].lon": "lon",
    "ownerId": "owner_email",
}


def _csv_field(field: str) -> str:
    field = field.removeprefix("$.")
    for api, column in _API_TO_CSV.items():
        if field.startswith(api):
            return column
    return field


async def import_rows(
    session: AsyncSession,
    actor: Actor,
    rows: Iterable[dict[str, str]],
    geocoder: Geocoder | None,
    *,
    dry_run: bool = False,
    progress: Callable[[int], None] | None = None,
) -> schemas.ImportResult:
    """Import parsed rows; each row in its own savepoint. Row numbers count the header as 1."""
    owners: dict[str, object] = {
        email.lower(): user_id
        for email, user_id in await session.execute(
            select(func.lower(User.email), User.id).where(
                User.organization_id == actor.organization_id, User.is_active.is_(True)
            )
        )
    }
    errors: list[schemas.ImportRowError] = []
    imported = total = 0
    for number, row in enumerate(rows, start=2):
        total += 1
        try:
            data = row_to_create(row, owners)
            async with session.begin_nested() as savepoint:
                await services.create_customer(session, actor, data, geocoder)
                if dry_run:
                    await savepoint.rollback()
            imported += 1
        except AppError as exc:
            reasons = [(e.field, e.reason) for e in exc.errors] or [("row", exc.detail)]
            errors.extend(
                schemas.ImportRowError(row=number, field=_csv_field(field), reason=reason)
                for field, reason in reasons
            )
        except (msgspec.ValidationError, ValueError) as exc:
            message = str(exc)
            field, _, reason = message.rpartition(" - at `")
            where = reason.rstrip("`") if field else "row"
            errors.append(
                schemas.ImportRowError(row=number, field=_csv_field(where), reason=field or message)
            )
        if progress is not None:
            progress(1)
    return schemas.ImportResult(total_rows=total, imported=imported, dry_run=dry_run, errors=errors)


async def import_csv(
    session: AsyncSession,
    actor: Actor,
    data: bytes,
    geocoder: Geocoder | None,
    *,
    dry_run: bool = False,
) -> schemas.ImportResult:
    """Parse and import a CSV file (the API's entry point)."""
    _, rows = read_csv(data)
    return await import_rows(session, actor, rows, geocoder, dry_run=dry_run)
