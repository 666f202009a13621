"""Customer search: what a query means (phone, email or name) and the derived search columns.

One query box serves all three: a query with ``@`` searches emails, a query made of digits and
phone punctuation searches phone numbers (by digit substring, or exactly when it parses as a full
number), anything else searches names by the prefix of any word.
"""

from __future__ import annotations

import enum
import re
from collections.abc import Iterable
from dataclasses import dataclass

import phonenumbers

_PHONE_CHARS = re.compile(r"^[\d\s()+\-.]+$")
_MIN_SUBSTRING = 3


class QueryKind(enum.StrEnum):
    """How a search query is matched."""

    PHONE = "phone"
    EMAIL = "email"
    NAME = "name"


@dataclass(frozen=True, slots=True)
class SearchQuery:
    """A classified query: ``text`` is what to match (lower-cased name, digits or E.164);
    an empty phone text means "not enough digits yet": no filter."""

    kind: QueryKind
    text: str
    exact_phone: bool = False


def classify(query: str, region: str | None) -> SearchQuery:
    """Decide how to search for ``query``; ``region`` reads national phone formats."""
    q = " ".join(query.split())
    if "@" in q:
        return SearchQuery(QueryKind.EMAIL, q.lower())
    if _PHONE_CHARS.match(q):
        digits = re.sub(r"\D", "", q)
        if len(digits) >= _MIN_SUBSTRING:
            try:
                number = phonenumbers.parse(q, region)
                if phonenumbers.is_valid_number(number):
                    e164 = phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)
                    return SearchQuery(QueryKind.PHONE, e164, exact_phone=True)
            except phonenumbers.NumberParseException:
                pass
            return SearchQuery(QueryKind.PHONE, digits)
        if any(c.isdigit() or c == "+" for c in q):
            # A phone number being typed ("+7 9"): too short to filter by yet.
            return SearchQuery(QueryKind.PHONE, "")
    return SearchQuery(QueryKind.NAME, q.lower())


def escape_like(text: str) -> str:
    """Escape LIKE wildcards so user text matches literally (escape character ``\\``)."""
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def search_fields(phones: Iterable[str | None], emails: Iterable[str | None]) -> tuple[str, str]:
    """The derived ``search_phones`` / ``search_emails`` columns of a customer: its contacts'
    E.164 phones and lower-case emails, space separated, without repeats."""
    phone_list = dict.fromkeys(p for p in phones if p)
    email_list = dict.fromkeys(e.lower() for e in emails if e)
    return " ".join(phone_list), " ".join(email_list)
