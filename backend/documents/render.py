"""Documents (invoices, acts, quotes) from per-organisation HTML templates, rendered to PDF.

Templates are Jinja2, edited by an organisation's admins and therefore treated as untrusted:

- They run in :class:`jinja2.sandbox.ImmutableSandboxedEnvironment`: no ``_private`` attributes
  (``''.__class__.__mro__`` and ``cycler.__init__.__globals__`` raise ``SecurityError``), no
  mutating methods on the context's lists and dicts, ``range`` capped at 100 000 items, ``*`` and
  ``**`` refused when they would build a huge string or number. There is no loader, so
  ``{% include %}`` / ``{% extends %}`` / ``{% import %}`` cannot read files.
- Autoescaping is on; values from the context are escaped.
- ``StrictUndefined``: a missing variable or key fails the render instead of printing nothing.
  Use ``x is defined`` or ``x | default('')`` for optional keys (e.g. in ``payment_details``).
- Every template error (syntax, missing variable, sandbox violation, a filter given bad input)
  becomes ``InvalidInput`` on the field ``html`` with the template line where known, so a bad
  template is a 422, never a 500. The rendered HTML is capped at :data:`MAX_OUTPUT_CHARS`.
- WeasyPrint gets a URL fetcher that refuses every URL except ``data:``: a template cannot read
  local files (``file:///etc/passwd``), reach the network or our own services. Refused
  resources are simply left out of the PDF (WeasyPrint logs them on the ``weasyprint`` logger).

Residual risk, by design of Jinja: a template can still burn CPU or memory (e.g. doubling a
string with ``~`` in a loop, or a huge width in ``format``). Templates come from authenticated
admins of the organisation; run PDF renders in the worker or behind a per-organisation rate
limit rather than inline on hot request paths.

The context templates get (every key is always present; unknown values are ``None``)::

    deal:          title (str), number (str: the deal's short id / running number),
                   amount (Decimal | None), currency (str, ISO 4217, e.g. "RUB"),
                   line_items (list of {name: str, quantity: Decimal, unitPrice: Decimal,
                   total: Decimal}; may be empty), scheduled_at (datetime | None, local time)
    customer:      name (str), phone (str | None, E.164), email (str | None)
    site:          address (str | None)
    organization:  name (str), payment_details (dict, keys as entered by the admin, usually
                   recipient, bankName, accountNumber, correspondentAccount, iban, bic, taxId)
    service:       str — the deal's title, or the first line item's name
    generated_at:  datetime — when the document was generated, in the organisation's time zone
    document:      number (int: the organisation's running document number), version (int)

Filters besides Jinja's own: ``money(value, currency, decimal_mark=".")`` and
``date(value, fmt="%d.%m.%Y")``.

WeasyPrint layout is pure Python (it holds the GIL) on top of Pango/fontconfig; renders are
serialised by a lock, so running them in threads keeps the event loop free without betting on
the thread safety of the C libraries. Use :func:`render_pdf_async` from async code.
"""

from __future__ import annotations

import asyncio
import functools
import threading
import types
from collections.abc import Callable, Mapping
from datetime import date as date_type
from datetime import datetime
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation
from importlib import resources
from typing import Any, cast

import jinja2
import jinja2.meta
from jinja2.exceptions import SecurityError
from jinja2.runtime import Context
from jinja2.sandbox import ImmutableSandboxedEnvironment
from weasyprint import HTML  # type: ignore[import-untyped]
from weasyprint.urls import URLFetcher, URLFetcherResponse  # type: ignore[import-untyped]

from backend.lib.errors import InvalidInput

CONTEXT_VARIABLES: frozenset[str] = frozenset(
    {"deal", "customer", "site", "organization", "service", "generated_at", "document"}
)
"""The names a template may use besides Jinja's globals (``range``, ``loop``, ``namespace``...)."""

MAX_TEMPLATE_CHARS = 1_000_000
"""A template larger than this is refused (room for a logo or two as ``data:`` URLs)."""

MAX_OUTPUT_CHARS = 5_000_000
"""The rendered HTML may not be longer than this."""

_MAX_REPEAT = 1_000_000
_MAX_EXPONENT = 1_000

NARROW_NBSP = "\u202f"
"""Groups thousands: a thin space that does not break (the typographic rule in ru, fr, SI)."""

_CURRENCY_SYMBOLS = {"RUB": "₽", "EUR": "€", "USD": "$"}
_CENT = Decimal("0.01")


def money(value: Any, currency: str = "", decimal_mark: str = ".") -> str:
    """Format an amount: two decimals, thousands grouped by a narrow no-break space.

    ``RUB``, ``EUR`` and ``USD`` are shown as ₽, €, $; other codes as the code itself. With the
    English decimal mark ``"."``, $ and € go before the amount ("$1 250.00"); otherwise the
    symbol follows it ("148 500,00 ₽"). ``None`` gives an empty string.
    """
    if value is None:
        return ""
    if isinstance(value, bool) or not isinstance(value, Decimal | int | float | str):
        raise ValueError(f"money: not an amount: {type(value).__name__}")
    try:
        amount = Decimal(str(value).strip()) if not isinstance(value, Decimal) else value
    except InvalidOperation:
        raise ValueError(f"money: not an amount: {value!r}") from None
    if not amount.is_finite():
        raise ValueError(f"money: not an amount: {value!r}")
    amount = amount.quantize(_CENT, rounding=ROUND_HALF_UP)
    whole, cents = f"{abs(amount):,.2f}".split(".")
    number = ("-" if amount < 0 else "") + whole.replace(",", NARROW_NBSP) + decimal_mark + cents
    code = str(currency).strip().upper()
    symbol = _CURRENCY_SYMBOLS.get(code, code)
    if not symbol:
        return number
    if decimal_mark == "." and code in {"USD", "EUR"}:
        return f"-{symbol}{number[1:]}" if number.startswith("-") else f"{symbol}{number}"
    return f"{number}\xa0{symbol}"


def format_date(value: Any, fmt: str = "%d.%m.%Y") -> str:
    """Format a date or datetime (or an ISO 8601 string) with ``strftime``; ``None`` gives ""."""
    if value is None:
        return ""
    if isinstance(value, str):
        try:
            value = datetime.fromisoformat(value)
        except ValueError:
            raise ValueError(f"date: not an ISO 8601 date: {value!r}") from None
    if not isinstance(value, date_type):
        raise ValueError(f"date: not a date: {type(value).__name__}")
    return value.strftime(str(fmt))


def _too_long(value: Any, times: Any) -> bool:
    return (
        isinstance(value, str | bytes | list | tuple)
        and isinstance(times, int)
        and len(value) * times > _MAX_REPEAT
    )


class _TemplateEnvironment(ImmutableSandboxedEnvironment):
    """The sandbox, also refusing ``*`` and ``**`` that would allocate without bound."""

    intercepted_binops = frozenset({"*", "**"})

    def call_binop(self, context: Context, operator: str, left: Any, right: Any) -> Any:
        """Apply an intercepted operator after checking the size of its result."""
        if operator == "*" and (_too_long(left, right) or _too_long(right, left)):
            raise SecurityError("repetition too large")
        if operator == "**" and isinstance(right, int | float) and abs(right) > _MAX_EXPONENT:
            raise SecurityError("exponent too large")
        return super().call_binop(context, operator, left, right)


def _make_environment() -> _TemplateEnvironment:
    env = _TemplateEnvironment(
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        auto_reload=False,
        cache_size=0,
        # No constant folding: compiling (and so validating) a template never runs its code,
        # e.g. ``{{ 'a' | center(10000000000) }}`` would otherwise allocate at compile time.
        optimized=False,
    )
    env.filters["money"] = money
    env.filters["date"] = format_date
    return env


_ENV = _make_environment()
_ALLOWED_NAMES = CONTEXT_VARIABLES | frozenset(_ENV.globals)


def _template_line(exc: BaseException) -> int | None:
    """The template line of a render error, from the frames Jinja maps back to the template."""
    line = None
    tb: types.TracebackType | None = exc.__traceback__
    while tb is not None:
        if tb.tb_frame.f_code.co_filename == "<template>":
            line = tb.tb_lineno
        tb = tb.tb_next
    return line


def _invalid(reason: str, line: int | None) -> InvalidInput:
    return InvalidInput.on("html", f"line {line}: {reason}" if line else reason)


@functools.lru_cache(maxsize=64)
def _compile(html: str) -> jinja2.Template:
    if len(html) > MAX_TEMPLATE_CHARS:
        raise InvalidInput.on("html", f"longer than {MAX_TEMPLATE_CHARS} characters")
    try:
        return _ENV.from_string(html)
    except jinja2.TemplateSyntaxError as exc:
        raise _invalid(exc.message or "syntax error", exc.lineno) from None


def validate_template(html: str) -> None:
    """Check a template before it is saved; ``InvalidInput`` on ``html`` if it cannot be used.

    Refuses syntax errors ("line 3: unexpected '}'") and names that are neither in
    :data:`CONTEXT_VARIABLES` nor Jinja globals (a typo like ``{{ custmer.name }}`` would
    otherwise only fail when a document is generated).
    """
    _compile(html)
    try:
        unknown = jinja2.meta.find_undeclared_variables(_ENV.parse(html)) - _ALLOWED_NAMES
    except jinja2.TemplateSyntaxError as exc:  # pragma: no cover - _compile parsed it already
        raise _invalid(exc.message or "syntax error", exc.lineno) from None
    if unknown:
        names = ", ".join(sorted(unknown))
        raise InvalidInput.on(
            "html",
            f"unknown variable(s): {names}; available: {', '.join(sorted(CONTEXT_VARIABLES))}",
        )


def render_html(html: str, context: Mapping[str, Any]) -> str:
    """Render a template to HTML; every template error becomes ``InvalidInput`` on ``html``."""
    template = _compile(html)
    parts: list[str] = []
    size = 0
    try:
        for part in template.generate(dict(context)):
            size += len(part)
            if size > MAX_OUTPUT_CHARS:
                raise InvalidInput.on("html", f"output longer than {MAX_OUTPUT_CHARS} characters")
            parts.append(part)
    except jinja2.TemplateError as exc:
        raise _invalid(exc.message or type(exc).__name__, _template_line(exc)) from None
    except (TypeError, ValueError, ArithmeticError, LookupError, RecursionError) as exc:
        raise _invalid(f"{type(exc).__name__}: {exc}", _template_line(exc)) from None
    return "".join(parts)


class DataOnlyFetcher(URLFetcher):  # type: ignore[misc]
    """A WeasyPrint URL fetcher that serves ``data:`` URLs and refuses everything else.

    Since WeasyPrint 68 (CVE-2025-68616: HTTP redirects bypassed custom fetchers) a fetcher is
    an instance of ``weasyprint.urls.URLFetcher`` (a urllib ``OpenerDirector``) whose
    ``fetch(url, headers=None)`` returns a ``URLFetcherResponse``; in 70 the old
    ``default_url_fetcher`` is gone and a plain function returning a dict no longer works
    (WeasyPrint reads ``url_fetcher._fail_on_errors`` and asserts the response type). So this
    needs WeasyPrint >= 68. Refused URLs are kept in :attr:`refused` (for tests and logs);
    WeasyPrint logs them, leaves the resource out and goes on.
    """

    def __init__(self) -> None:
        """A fetcher allowing only the ``data`` scheme, no redirects, never failing the render."""
        super().__init__(
            timeout=1, allowed_protocols={"data"}, allow_redirects=False, fail_on_errors=False
        )
        self.refused: list[str] = []

    def fetch(self, url: str, headers: Mapping[str, str] | None = None) -> URLFetcherResponse:
        """Fetch a ``data:`` URL; raise ``ValueError`` for any other."""
        if url.lstrip()[:5].lower() != "data:":
            self.refused.append(url)
            raise ValueError(f"only data: URLs may be used in document templates: {url[:100]}")
        return super().fetch(url, headers)


_PDF_LOCK = threading.Lock()


def render_pdf(
    html: str,
    context: Mapping[str, Any],
    *,
    base_url: str | None = None,
    url_fetcher: DataOnlyFetcher | None = None,
) -> bytes:
    """Render a template to PDF bytes; ``InvalidInput`` on ``html`` for template errors.

    ``base_url`` only resolves relative links; resources are never fetched from it, since the
    fetcher (a fresh :class:`DataOnlyFetcher` unless one is given) allows ``data:`` URLs only.
    Blocking and CPU-bound (tens to hundreds of milliseconds): from async code use
    :func:`render_pdf_async`.
    """
    markup = render_html(html, context)
    fetcher = url_fetcher if url_fetcher is not None else DataOnlyFetcher()
    with _PDF_LOCK:
        document = HTML(string=markup, base_url=base_url, url_fetcher=fetcher)
        pdf = document.write_pdf()
    return cast(bytes, pdf)


async def render_pdf_async(
    html: str,
    context: Mapping[str, Any],
    *,
    base_url: str | None = None,
    url_fetcher: DataOnlyFetcher | None = None,
) -> bytes:
    """:func:`render_pdf` in a worker thread, so the event loop keeps serving."""
    render: Callable[[], bytes] = functools.partial(
        render_pdf, html, context, base_url=base_url, url_fetcher=url_fetcher
    )
    return await asyncio.to_thread(render)


def default_template(locale: str) -> str:
    """The built-in invoice template: Russian for locales starting with "ru", else English."""
    return _read_default("ru" if locale.strip().lower().startswith("ru") else "en")


@functools.cache
def _read_default(language: str) -> str:
    return (
        resources.files("backend.documents")
        .joinpath("default_templates", f"invoice_{language}.html")
        .read_text(encoding="utf-8")
    )
