"""Validators used at the boundary: phones (E.164), emails, time zones, currencies."""

from __future__ import annotations

import re
from functools import lru_cache
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError, available_timezones

import phonenumbers

from backend.lib.errors import InvalidInput

_EMAIL = re.compile(r"^[^@\s]{1,64}@[^@\s]+\.[^@\s]{2,}$")
_CURRENCY = re.compile(r"^[A-Z]{3}$")


def region_of_locale(locale: str) -> str | None:
    """The country part of a locale (``ru-RU`` → ``RU``), used to read national phone numbers."""
    parts = re.split(r"[-_]", locale)
    return parts[1].upper() if len(parts) > 1 and len(parts[1]) == 2 else None


def normalize_phone(raw: str, field: str, region: str | None = None) -> str:
    """Parse a phone number as written by people and return it in E.164, or raise."""
    try:
        number = phonenumbers.parse(raw, region)
    except phonenumbers.NumberParseException as exc:
        raise InvalidInput.on(field, f"not a phone number: {exc}") from exc
    if not phonenumbers.is_valid_number(number):
        raise InvalidInput.on(field, "not a valid phone number")
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)


def normalize_email(raw: str, field: str) -> str:
    """Trim and lower-case an email address; raise when it cannot be one."""
    email = raw.strip().lower()
    if not _EMAIL.match(email) or len(email) > 320:
        raise InvalidInput.on(field, "not an email address")
    return email


@lru_cache(maxsize=1)
def _zones() -> frozenset[str]:
    return frozenset(available_timezones())


def check_time_zone(name: str, field: str = "timeZone") -> str:
    """Accept an IANA time zone name (``Europe/Moscow``)."""
    if name not in _zones():
        raise InvalidInput.on(field, f"unknown IANA time zone {name!r}")
    try:
        ZoneInfo(name)
    except ZoneInfoNotFoundError as exc:  # pragma: no cover - listed but not loadable
        raise InvalidInput.on(field, f"unknown IANA time zone {name!r}") from exc
    return name


def check_currency(code: str, field: str = "currency") -> str:
    """An ISO 4217 alphabetic code (three capital letters)."""
    if not _CURRENCY.match(code):
        raise InvalidInput.on(field, "must be an ISO 4217 code such as EUR or RUB")
    return code
