"""Customer message templates: the shipped defaults (en, ru), the sandbox they render in, and
dates and times in the organisation's language and time zone.

A template is three Jinja2 texts: ``subject``, ``text`` (the plain body, also the SMS) and
``html``. They run in Jinja's ``ImmutableSandboxedEnvironment`` with ``StrictUndefined``
(an unknown variable is an error, found when an admin saves the template), with autoescaping
for ``html`` only. Every message gets every variable (empty string when it does not apply)::

    company          the organisation's name
    customer_name    the contact's name
    visit            what the visit is, in the language ("measurement", "замер")
    date             the visit's date, e.g. "Wednesday, 25 November" / "среда, 25 ноября"
    window           its time window, e.g. "10:00–12:00" (a single time without an end)
    address          the site's address
    worker           the worker's first name
    eta              the expected arrival time, e.g. "10:35"
    tracking_url     the live tracking page (on my way, running late)
    feedback_url     the feedback form (feedback)
    unsubscribe_url  the unsubscribe page (every message)
"""

from __future__ import annotations

import functools
import tomllib
from dataclasses import dataclass
from datetime import datetime
from importlib import resources
from typing import Any

import jinja2
from jinja2.sandbox import ImmutableSandboxedEnvironment

from backend.lib.errors import InvalidInput
from backend.lib.wallclock import zone_of
from backend.notifications.customer.models import MessageKind

DEFAULT_LANGUAGES = ("en", "ru")
VARIABLES = (
    "company",
    "customer_name",
    "visit",
    "date",
    "window",
    "address",
    "worker",
    "eta",
    "tracking_url",
    "feedback_url",
    "unsubscribe_url",
)
MAX_TEMPLATE_CHARS = 20_000
MAX_SMS_CHARS = 1_000

_MONTHS = {
    "en": [
        "January",
        "February",
        "March",
        "April",
        "May",
        "June",
        "July",
        "August",
        "September",
        "October",
        "November",
        "December",
    ],
    "ru": [
        "января",
        "февраля",
        "марта",
        "апреля",
        "мая",
        "июня",
        "июля",
        "августа",
        "сентября",
        "октября",
        "ноября",
        "декабря",
    ],
}
_WEEKDAYS = {
    "en": ["Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday"],
    "ru": ["понедельник", "вторник", "среда", "четверг", "пятница", "суббота", "воскресенье"],
}
_VISITS = {
    "en": {"measurement": "measurement", "installation": "installation", "visit": "visit"},
    "ru": {"measurement": "замер", "installation": "монтаж", "visit": "визит"},
}


@dataclass(frozen=True, slots=True)
class TemplateText:
    """The three texts of one message kind in one language."""

    subject: str
    text: str
    html: str


@dataclass(frozen=True, slots=True)
class Rendered:
    """A message ready to send."""

    subject: str
    text: str
    html: str


def language_of(locale: str) -> str:
    """The language part of a locale ("ru-RU" -> "ru"), lower-case."""
    return (locale or "en").replace("_", "-").split("-")[0].lower() or "en"


def _names(lang: str) -> str:
    return lang if lang in _MONTHS else "en"


def local_date(moment: datetime, zone: str, lang: str) -> str:
    """The date of ``moment`` in ``zone``, spelled in ``lang`` (weekday, day and month)."""
    local = moment.astimezone(zone_of(zone))
    names = _names(lang)
    weekday = _WEEKDAYS[names][local.weekday()]
    month = _MONTHS[names][local.month - 1]
    return f"{weekday}, {local.day} {month}"


def local_time(moment: datetime, zone: str) -> str:
    """ "HH:MM" of ``moment`` in ``zone``."""
    return moment.astimezone(zone_of(zone)).strftime("%H:%M")


def window_text(start: datetime, end: datetime | None, zone: str) -> str:
    """A visit window as local times ("10:00–12:00"), or the start alone."""
    if end is None or end == start:
        return local_time(start, zone)
    return f"{local_time(start, zone)}–{local_time(end, zone)}"


def visit_word(kind: str, lang: str) -> str:
    """What a visit of ``kind`` is called in ``lang``."""
    return _VISITS[_names(lang)].get(kind, kind)


@functools.cache
def _defaults(lang: str) -> dict[str, TemplateText]:
    raw = resources.files("backend.notifications.customer").joinpath(f"templates/{lang}.toml")
    data = tomllib.loads(raw.read_text(encoding="utf-8"))
    return {kind: TemplateText(**texts) for kind, texts in data.items()}


def default_template(kind: MessageKind, lang: str) -> TemplateText:
    """The shipped template of ``kind`` in ``lang`` (English when there is none in it)."""
    return _defaults(lang if lang in DEFAULT_LANGUAGES else "en")[kind.value]


_TEXT_ENV = ImmutableSandboxedEnvironment(
    autoescape=False, undefined=jinja2.StrictUndefined, optimized=False, cache_size=0
)
_HTML_ENV = ImmutableSandboxedEnvironment(
    autoescape=True, undefined=jinja2.StrictUndefined, optimized=False, cache_size=0
)


def _render_one(env: ImmutableSandboxedEnvironment, field: str, source: str, ctx: Any) -> str:
    if len(source) > MAX_TEMPLATE_CHARS:
        raise InvalidInput.on(field, f"longer than {MAX_TEMPLATE_CHARS} characters")
    try:
        return env.from_string(source).render(ctx)
    except jinja2.TemplateSyntaxError as exc:
        raise InvalidInput.on(
            field, f"line {exc.lineno}: {exc.message or 'syntax error'}"
        ) from None
    except (jinja2.TemplateError, TypeError, ValueError, ArithmeticError) as exc:
        raise InvalidInput.on(field, str(exc) or type(exc).__name__) from None


def render(template: TemplateText, context: dict[str, str]) -> Rendered:
    """Render a template; every error is ``InvalidInput`` on the field at fault."""
    subject = _render_one(_TEXT_ENV, "subject", template.subject, context)
    return Rendered(
        subject=" ".join(subject.split())[:300],
        text=_render_one(_TEXT_ENV, "text", template.text, context).strip(),
        html=_render_one(_HTML_ENV, "html", template.html, context),
    )


def sample_context(lang: str) -> dict[str, str]:
    """Values to try a template with before it is saved."""
    moment = datetime.fromisoformat("2026-11-25T10:00:00+03:00")
    return {
        "company": "Kirill's Windows",
        "customer_name": "Anna",
        "visit": visit_word("measurement", lang),
        "date": local_date(moment, "Europe/Moscow", lang),
        "window": "10:00–12:00",
        "address": "Kazan, Bauman St 1",
        "worker": "Igor",
        "eta": "10:35",
        "tracking_url": "https://example.test/t/sample",
        "feedback_url": "https://example.test/feedback/sample",
        "unsubscribe_url": "https://example.test/u/sample",
    }
