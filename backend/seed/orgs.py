"""``fieldcrm create-org``: a new organisation with its first admin, for a real installation."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker, create_async_engine

from backend.accounts.models import Organization, Role, User
from backend.accounts.security import hash_password
from backend.lib.errors import InvalidInput
from backend.lib.validation import check_currency, check_time_zone, normalize_email

MIN_PASSWORD_LENGTH = 10  # the API's rule for passwords (accounts.schemas.Password)
_MAX_NAME = 200


@asynccontextmanager
async def seed_session(database_url: str) -> AsyncIterator[AsyncSession]:
    """A session inside one transaction on a short-lived engine: committed at the end of the
    block, rolled back when it raises."""
    engine = create_async_engine(database_url)
    try:
        sessionmaker = async_sessionmaker(engine, expire_on_commit=False, autoflush=False)
        async with sessionmaker() as session, session.begin():
            yield session
    finally:
        await engine.dispose()


def _check_text(value: str, what: str, max_length: int = _MAX_NAME) -> str:
    text = value.strip()
    if not text or len(text) > max_length:
        raise SystemExit(f"create-org: {what} must be 1 to {max_length} characters long")
    return text


async def create_organization(
    database_url: str,
    *,
    name: str,
    admin_email: str,
    admin_name: str,
    password: str,
    time_zone: str,
    currency: str,
    locale: str,
) -> uuid.UUID:
    """Create an organisation and its admin; return the organisation's id.

    Bad input and an email that is already used end the command (``SystemExit``) with a
    message that says what to change; nothing is written then.
    """
    org_name = _check_text(name, "the organisation name")
    full_name = _check_text(admin_name, "the admin name")
    org_locale = _check_text(locale, "the locale", 16)
    try:
        email = normalize_email(admin_email, "admin email")
        check_time_zone(time_zone, "time zone")
        check_currency(currency, "currency")
    except InvalidInput as exc:
        raise SystemExit(f"create-org: {exc.detail}") from None
    if len(password) < MIN_PASSWORD_LENGTH:
        raise SystemExit(
            f"create-org: the admin password must have at least {MIN_PASSWORD_LENGTH} characters"
        )
    password_hash = hash_password(password)
    async with seed_session(database_url) as session:
        taken = await session.scalar(select(User.id).where(func.lower(User.email) == email))
        if taken is not None:
            raise SystemExit(
                f"create-org: a user with the email {email} already exists;"
                " choose another admin email"
            )
        org = Organization(
            id=uuid.uuid4(),
            name=org_name,
            time_zone=time_zone,
            currency=currency,
            locale=org_locale,
            payment_details={},
        )
        session.add(org)
        await session.flush()
        session.add(
            User(
                id=uuid.uuid4(),
                organization_id=org.id,
                email=email,
                password_hash=password_hash,
                full_name=full_name,
                role=Role.ADMIN,
                skills=[],
                phone=None,
                time_zone=time_zone,
                is_active=True,
                token_version=1,
            )
        )
        try:
            await session.flush()
        except IntegrityError:  # the same email was registered meanwhile
            raise SystemExit(
                f"create-org: a user with the email {email} already exists;"
                " choose another admin email"
            ) from None
        return org.id
