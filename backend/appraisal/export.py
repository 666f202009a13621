"""Reports as CSV and XLSX files.

CSV: UTF-8 with a byte-order mark (so spreadsheet programs read Cyrillic names right), the
column labels as the header, one line per row. Text cells that a spreadsheet would run as a
formula (starting with ``=``, ``+``, ``-``, ``@``, tab or carriage return — lead sources and
names come from public web forms) are prefixed with an apostrophe.

XLSX (xlsxwriter): one sheet per report with its title, period, the table with number formats
(money, percentages, dates) and the totals against the previous period. Text is always written
as a string, never as a formula.
"""

from __future__ import annotations

import csv
import io
import re
from datetime import date
from decimal import Decimal
from typing import Any

import xlsxwriter  # type: ignore[import-untyped]

from backend.appraisal.report_schemas import Report, Value

CSV_MEDIA_TYPE = "text/csv; charset=utf-8"
XLSX_MEDIA_TYPE = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def safe_text(value: str) -> str:
    """Neutralise a text cell a spreadsheet would evaluate."""
    return "'" + value if value.startswith(_FORMULA_START) else value


def _csv_value(value: Value, kind: str) -> str:
    if value is None:
        return ""
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, str):
        return safe_text(value) if kind == "text" else value
    return str(value)


def to_csv(report: Report) -> bytes:
    """The report's table as CSV."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\r\n")
    writer.writerow([c.label for c in report.columns])
    for row in report.rows:
        writer.writerow([_csv_value(row.get(c.key), c.kind) for c in report.columns])
    return ("\ufeff" + buffer.getvalue()).encode("utf-8")


def _sheet_name(title: str, used: set[str]) -> str:
    name = re.sub(r"[\[\]:*?/\\]", " ", title)[:28].strip() or "Report"
    candidate, n = name, 2
    while candidate.lower() in used:
        candidate, n = f"{name[:25]} {n}", n + 1
    used.add(candidate.lower())
    return candidate


def to_xlsx(reports: list[Report]) -> bytes:
    """A workbook with one sheet per report."""
    buffer = io.BytesIO()
    book = xlsxwriter.Workbook(buffer, {"in_memory": True})
    bold = book.add_format({"bold": True})
    title_format = book.add_format({"bold": True, "font_size": 14})
    formats = {
        "money": book.add_format({"num_format": "#,##0.00"}),
        "rate": book.add_format({"num_format": "0.0%"}),
        "date": book.add_format({"num_format": "yyyy-mm-dd"}),
        "days": book.add_format({"num_format": "0.00"}),
        "minutes": book.add_format({"num_format": "0.0"}),
    }
    used: set[str] = set()
    for report in reports:
        sheet = book.add_worksheet(_sheet_name(report.title, used))
        sheet.write_string(0, 0, report.title, title_format)
        sheet.write_string(
            1,
            0,
            f"{report.period.start} – {report.period.end} ({report.time_zone}); previous period "
            f"{report.previous.start} – {report.previous.end}; amounts in {report.currency}",
        )
        header = 3
        for col, column in enumerate(report.columns):
            sheet.write_string(header, col, column.label, bold)
            sheet.set_column(col, col, max(12, min(40, len(column.label) + 2)))
        for line, row in enumerate(report.rows, start=header + 1):
            for col, column in enumerate(report.columns):
                _write(sheet, line, col, row.get(column.key), formats.get(column.kind))
        line = header + len(report.rows) + 2
        sheet.write_string(line, 0, "Totals", bold)
        sheet.write_string(line, 1, "This period", bold)
        sheet.write_string(line, 2, "Previous period", bold)
        sheet.write_string(line, 3, "Change", bold)
        for offset, (key, fig) in enumerate(report.totals.items(), start=1):
            sheet.write_string(line + offset, 0, key)
            _write(sheet, line + offset, 1, fig.current, None)
            _write(sheet, line + offset, 2, fig.previous, None)
            _write(sheet, line + offset, 3, fig.change, formats["rate"])
        if report.note:
            sheet.write_string(line + len(report.totals) + 2, 0, report.note)
    book.close()
    return buffer.getvalue()


def _write(sheet: Any, row: int, col: int, value: Value, fmt: Any) -> None:
    if value is None:
        sheet.write_blank(row, col, None, fmt)
    elif isinstance(value, bool):
        sheet.write_boolean(row, col, value)
    elif isinstance(value, int | float | Decimal):
        sheet.write_number(row, col, float(value), fmt)
    elif isinstance(value, date):
        sheet.write_datetime(row, col, value, fmt)
    else:
        sheet.write_string(row, col, str(value))
