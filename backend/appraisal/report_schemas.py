"""Response bodies of the owner's reports (camelCase JSON).

Every report has the same shape, so other systems, the CSV/XLSX export and the dashboard's
tables read them the same way: ``columns`` (key, label, kind) and ``rows`` (objects keyed by
the columns' keys), plus ``totals``: each headline figure for the period, the previous period
of equal length and the relative change.
"""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal
from typing import Literal

from backend.accounts.schemas import Output

ColumnKind = Literal["text", "count", "money", "rate", "days", "minutes", "rank", "date"]
Value = str | int | float | Decimal | date | None


class Period(Output):
    """Inclusive local dates."""

    start: date
    end: date
    days: int


class ReportColumn(Output):
    """One column: ``rate`` is a share between 0 and 1; ``money`` in the organisation's
    currency; ``days`` and ``minutes`` are averages or totals as labelled."""

    key: str
    label: str
    kind: ColumnKind


class Figure(Output):
    """A headline number now and in the previous period; ``change`` is relative
    ((current - previous) / previous), null when the previous is zero or missing."""

    current: Value
    previous: Value
    change: float | None


class Report(Output):
    """One report for one period and filters."""

    name: str
    title: str
    period: Period
    previous: Period
    time_zone: str
    currency: str
    columns: list[ReportColumn]
    rows: list[dict[str, Value]]
    totals: dict[str, Figure]
    generated_at: datetime
    note: str | None = None


class Dashboard(Output):
    """Every report of the owner's dashboard in one answer."""

    period: Period
    previous: Period
    time_zone: str
    currency: str
    kpis: dict[str, Figure]
    reports: dict[str, Report]
    generated_at: datetime
    rollups_refreshed_at: datetime | None
