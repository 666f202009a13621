"""``fieldcrm generate``: a large synthetic organisation for benchmarks, loaded with COPY.

"Bench Org <seed>" gets an admin (``bench-admin-<seed>@bench.example``), 20 managers each
leading a team of 4 of the 80 field users, and N customers, each with one contact and one site in
Kazan, owned by the managers and field users. Names are combined from lists of surnames, first
names and patronymics, so a name-prefix search selects as many rows as it would in a real
Russian customer base; phones are unique, valid Russian mobiles in E.164; ``search_phones`` /
``search_emails`` are filled by ``backend.customers.search.search_fields`` like the app does.

Rows go in through asyncpg's ``copy_records_to_table`` (binary COPY) in chunks, in one
transaction, then the tables are ANALYZEd. Binary COPY cannot take a geography as text (EWKT):
asyncpg refuses a column without a binary encoder ("no binary format encoder for type
geography"), even with a text codec registered. So the connection gets a binary codec for
``geography`` that writes EWKB (little-endian point with the SRID flag, SRID 4326), which
PostGIS's ``geography_recv`` reads; records carry ``(lon, lat)`` tuples.

Deterministic: the data comes from ``random.Random(seed)`` (ids are random UUIDs).
A previous organisation with the same name is deleted first, so running it twice leaves one.
"""

from __future__ import annotations

import asyncio
import os
import random
import struct
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeAlias

import asyncpg
from tqdm import tqdm

from backend.accounts.security import hash_password
from backend.customers.search import search_fields
from backend.seed.demo import (
    COMPANY_POSITIONS,
    District,
    company_email,
    is_valid_phone,
    kazan_address,
    kazan_point,
    person_email,
    random_company,
    random_district,
    random_mobile,
    random_person,
)

if TYPE_CHECKING:
    Connection: TypeAlias = asyncpg.Connection[asyncpg.Record]

BENCH_PASSWORD_ENV = "FIELDCRM_BENCH_PASSWORD"  # noqa: S105 - the name of a variable
DEFAULT_BENCH_PASSWORD = "bench-password-2026"  # noqa: S105 - documented benchmark password
MANAGERS = 20
FIELD_USERS = 80
CHUNK = 10_000
TIME_ZONE = "Europe/Moscow"
_SKILL_CYCLE = (
    ["measurer"],
    ["installer"],
    ["installer"],
    ["salesperson"],
    ["measurer", "installer"],
)
_SOURCES = ("сайт", "рекомендация", "Авито", "2ГИС", "звонок", "выставка", "импорт")
_SITE_LABELS = ("Квартира", "Дом", "Офис", "Объект")
_PHONE_CHECK_EVERY = 997

CUSTOMER_COLUMNS = (
    "id",
    "organization_id",
    "kind",
    "name",
    "owner_id",
    "source",
    "notes",
    "search_phones",
    "search_emails",
)
CONTACT_COLUMNS = ("id", "organization_id", "customer_id", "name", "position", "phone", "email")
SITE_COLUMNS = (
    "id",
    "organization_id",
    "customer_id",
    "label",
    "address",
    "location",
    "access_notes",
)

_EWKB_POINT = struct.Struct("<BIIdd")
_WKB_POINT_WITH_SRID = 0x20000001


def bench_org_name(seed: int) -> str:
    """The name of the generated organisation."""
    return f"Bench Org {seed}"


def bench_admin_email(seed: int) -> str:
    """The login of the generated organisation's admin."""
    return f"bench-admin-{seed}@bench.example"


def bench_password() -> str:
    """The password of every generated user."""
    return os.environ.get(BENCH_PASSWORD_ENV, DEFAULT_BENCH_PASSWORD)


def asyncpg_dsn(database_url: str) -> str:
    """A SQLAlchemy URL (``postgresql+asyncpg://...``) as a DSN asyncpg understands."""
    scheme, sep, rest = database_url.partition("://")
    if not sep:
        return database_url
    return f"{scheme.split('+', 1)[0]}://{rest}"


def encode_ewkb_point(point: tuple[float, float]) -> bytes:
    """EWKB of a ``(lon, lat)`` WGS 84 point: what PostGIS's binary input of geography reads."""
    lon, lat = point
    return _EWKB_POINT.pack(1, _WKB_POINT_WITH_SRID, 4326, lon, lat)


async def register_geography_codec(conn: Connection) -> None:
    """Let binary COPY write ``(lon, lat)`` tuples into geography columns (as EWKB)."""
    await conn.set_type_codec(
        "geography", schema="public", encoder=encode_ewkb_point, decoder=bytes, format="binary"
    )


@dataclass(frozen=True, slots=True)
class GenerateResult:
    """What was loaded and how fast; ``seconds`` covers the organisation, its users and the
    customers' COPY (not the deletion of a previous run nor ANALYZE)."""

    organization_id: uuid.UUID
    organization_name: str
    admin_email: str
    users: int
    customers: int
    seconds: float
    analyze_seconds: float

    @property
    def rows(self) -> int:
        """Rows written for the customers: customer, contact and site each."""
        return self.customers * 3

    @property
    def customers_per_s(self) -> float:
        """Customers (with their contact and site) loaded per second."""
        return self.customers / self.seconds if self.seconds > 0 else 0.0

    @property
    def rows_per_s(self) -> float:
        """Rows loaded per second."""
        return self.rows / self.seconds if self.seconds > 0 else 0.0

    def summary(self) -> str:
        """One paragraph for people."""
        return (
            f"generated {self.organization_name!r} (id {self.organization_id}):"
            f" {self.users} users, {self.customers} customers with a contact and a site each"
            f" ({self.rows} rows) in {self.seconds:.1f} s = {self.customers_per_s:,.0f}"
            f" customers/s, {self.rows_per_s:,.0f} rows/s; ANALYZE {self.analyze_seconds:.1f} s."
            f"\nLog in as {self.admin_email} (password from {BENCH_PASSWORD_ENV},"
            f" default {DEFAULT_BENCH_PASSWORD!r})."
        )


@dataclass(slots=True)
class CustomerRows:
    """Records for ``copy_records_to_table`` in the column order of ``*_COLUMNS``."""

    customers: list[tuple[Any, ...]]
    contacts: list[tuple[Any, ...]]
    sites: list[tuple[Any, ...]]


class CustomerFactory:
    """Draws customers, their contacts and sites from one seeded random generator; phones are
    never repeated within one factory."""

    def __init__(self, seed: int, org_id: uuid.UUID, owner_ids: list[uuid.UUID]) -> None:
        self.rng = random.Random(seed)
        self.org_id = org_id
        self.owner_ids = owner_ids
        self.phones: set[str] = set()

    def phone(self) -> str:
        """A valid Russian mobile number not drawn before."""
        while True:
            phone = random_mobile(self.rng)
            if phone not in self.phones:
                self.phones.add(phone)
                if len(self.phones) % _PHONE_CHECK_EVERY == 0 and not is_valid_phone(phone):
                    raise RuntimeError(f"generated an invalid phone number {phone}")
                return phone

    def chunk(self, size: int) -> CustomerRows:
        """The next ``size`` customers with one contact and one site each."""
        rng, org_id = self.rng, self.org_id
        out = CustomerRows([], [], [])
        for _ in range(size):
            district: District = random_district(rng)
            customer_id = uuid.uuid4()
            company = rng.random() < 0.1
            if company:
                name = random_company(rng, district)
                person = random_person(rng)
                contact_name, position = person.short, rng.choice(COMPANY_POSITIONS)
                email = company_email(rng, name) if rng.random() < 0.8 else None
                label = rng.choice(_SITE_LABELS[2:])
            else:
                person = random_person(rng)
                name = contact_name = person.full
                position = None
                email = person_email(rng, person) if rng.random() < 0.4 else None
                label = rng.choice(_SITE_LABELS[:2])
            phone = self.phone()
            search_phones, search_emails = search_fields((phone,), (email,))
            lat, lon = kazan_point(rng, district)
            address = kazan_address(rng, district, flat=label == "Квартира", office=label == "Офис")
            out.customers.append(
                (
                    customer_id,
                    org_id,
                    "company" if company else "person",
                    name,
                    self.owner_ids[rng.randrange(len(self.owner_ids))],
                    rng.choice(_SOURCES),
                    None,
                    search_phones,
                    search_emails,
                )
            )
            out.contacts.append(
                (uuid.uuid4(), org_id, customer_id, contact_name, position, phone, email)
            )
            out.sites.append((uuid.uuid4(), org_id, customer_id, label, address, (lon, lat), None))
        return out


def _chunks(total: int, size: int) -> Iterator[int]:
    done = 0
    while done < total:
        n = min(size, total - done)
        yield n
        done += n


async def delete_organizations(conn: Connection, name: str) -> int:
    """Delete every organisation called ``name`` with all its rows; return how many."""
    deleted = await conn.fetch("DELETE FROM organizations WHERE name = $1 RETURNING id", name)
    return len(deleted)


async def _create_people(
    conn: Connection, org_id: uuid.UUID, seed: int, gen: CustomerFactory
) -> tuple[str, list[uuid.UUID]]:
    """The admin, managers and field users, and one team per manager; returns the admin's
    email and the ids of the users who own customers."""
    password_hash = hash_password(bench_password())
    admin_email = bench_admin_email(seed)
    users: list[tuple[Any, ...]] = [
        (uuid.uuid4(), admin_email, "Администратор Бенчмарка", "admin", [], gen.phone())
    ]
    managers: list[uuid.UUID] = []
    field: list[uuid.UUID] = []
    for i in range(MANAGERS + FIELD_USERS):
        person = random_person(gen.rng)
        user_id = uuid.uuid4()
        if i < MANAGERS:
            managers.append(user_id)
            email, role, skills = f"bench-{seed}-manager-{i + 1:02d}@bench.example", "manager", []
        else:
            n = i - MANAGERS
            field.append(user_id)
            email, role = f"bench-{seed}-field-{n + 1:03d}@bench.example", "field"
            skills = _SKILL_CYCLE[n % len(_SKILL_CYCLE)]
        users.append((user_id, email, person.short, role, skills, gen.phone()))
    taken = await conn.fetch(
        "SELECT email FROM users WHERE lower(email) = ANY($1::text[])", [u[1] for u in users]
    )
    if taken:
        raise SystemExit(
            f"generate: {len(taken)} of the generated emails (e.g. {taken[0]['email']}) belong to"
            " users of another organisation; remove them first"
        )
    await conn.executemany(
        """INSERT INTO users (id, organization_id, email, password_hash, full_name, role, skills,
                              phone, time_zone, is_active, token_version)
           VALUES ($1, $2, $3, $4, $5, $6::user_role, $7::varchar[], $8, $9, true, 1)""",
        [(u[0], org_id, u[1], password_hash, u[2], u[3], u[4], u[5], TIME_ZONE) for u in users],
    )
    per_team = FIELD_USERS // MANAGERS
    for t, lead in enumerate(managers):
        team_id = uuid.uuid4()
        await conn.execute(
            "INSERT INTO teams (id, organization_id, name, lead_id) VALUES ($1, $2, $3, $4)",
            team_id,
            org_id,
            f"Бригада {t + 1:02d}",
            lead,
        )
        await conn.executemany(
            "INSERT INTO team_members (team_id, user_id, organization_id) VALUES ($1, $2, $3)",
            [(team_id, member, org_id) for member in field[t * per_team : (t + 1) * per_team]],
        )
    return admin_email, managers + field


async def generate_into(
    conn: Connection,
    customers: int = 100_000,
    seed: int = 42,
    *,
    chunk: int = CHUNK,
    progress: bool = True,
    analyze: bool = True,
) -> GenerateResult:
    """Load the benchmark organisation through ``conn`` and return what was done and how fast.

    Deletes a previous "Bench Org <seed>" first. Everything is written in one transaction."""
    if customers < 0:
        raise SystemExit("generate: --customers must not be negative")
    await register_geography_codec(conn)
    name = bench_org_name(seed)
    async with conn.transaction():
        await conn.execute("SELECT pg_advisory_xact_lock(hashtext('fieldcrm-generate'))")
        await delete_organizations(conn, name)
        started = time.perf_counter()
        org_id = uuid.uuid4()
        await conn.execute(
            """INSERT INTO organizations (id, name, time_zone, currency, locale, payment_details)
               VALUES ($1, $2, $3, 'RUB', 'ru-RU', '{}'::jsonb)""",
            org_id,
            name,
            TIME_ZONE,
        )
        gen = CustomerFactory(seed, org_id, [])
        admin_email, owner_ids = await _create_people(conn, org_id, seed, gen)
        gen.owner_ids = owner_ids
        with tqdm(
            total=customers,
            desc=f"generate {name}",
            unit="customer",
            unit_scale=True,
            file=sys.stderr,
            disable=not progress,
        ) as bar:
            # The next chunk is drawn in a thread while the server ingests this one.
            sizes = list(_chunks(customers, chunk))
            pending = asyncio.create_task(asyncio.to_thread(gen.chunk, sizes[0])) if sizes else None
            for i, size in enumerate(sizes):
                assert pending is not None
                rows = await pending
                pending = None
                if i + 1 < len(sizes):
                    pending = asyncio.create_task(asyncio.to_thread(gen.chunk, sizes[i + 1]))
                await conn.copy_records_to_table(
                    "customers", records=rows.customers, columns=CUSTOMER_COLUMNS
                )
                await conn.copy_records_to_table(
                    "contacts", records=rows.contacts, columns=CONTACT_COLUMNS
                )
                await conn.copy_records_to_table("sites", records=rows.sites, columns=SITE_COLUMNS)
                bar.update(size)
        seconds = time.perf_counter() - started
    analyze_started = time.perf_counter()
    if analyze:
        await conn.execute("ANALYZE organizations, users, teams, team_members")
        await conn.execute("ANALYZE customers, contacts, sites")
    return GenerateResult(
        organization_id=org_id,
        organization_name=name,
        admin_email=admin_email,
        users=1 + MANAGERS + FIELD_USERS,
        customers=customers,
        seconds=seconds,
        analyze_seconds=time.perf_counter() - analyze_started,
    )


async def generate(database_url: str, customers: int = 100_000, seed: int = 42) -> str:
    """Generate the benchmark organisation in the database at ``database_url`` (a SQLAlchemy
    or plain PostgreSQL URL); return a summary with the load rate."""
    conn = await asyncpg.connect(asyncpg_dsn(database_url))
    try:
        result = await generate_into(conn, customers, seed)
    finally:
        await conn.close()
    return result.summary()
