"""``/reports``: the owner's dashboard page (admins and managers).

The same filters as the API in a form (htmx swaps the body in place and keeps the URL), the
headline figures against the previous period, and every report as a server-rendered SVG chart
(``charts``) with its numbers in a table; export links for CSV and XLSX. A bad filter shows
the reason next to the form (422) instead of a problem document.
"""

from __future__ import annotations

from datetime import date
from decimal import Decimal
from typing import Annotated, Any
from urllib.parse import urlencode

from litestar import Controller, Request, Response, get
from litestar.di import Provide
from litestar.params import QueryParameter
from litestar.response import Template
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from backend.accounts.models import Role
from backend.accounts.services import get_user, list_teams
from backend.appraisal import charts, export
from backend.appraisal.report_controllers import provide_filters, report_response
from backend.appraisal.report_dashboard import dashboard
from backend.appraisal.report_filters import RawFilters, parse_format, resolve
from backend.appraisal.report_schemas import Dashboard, Report, Value
from backend.appraisal.reports import REPORTS
from backend.lib.clock import Clock
from backend.lib.errors import InvalidInput, NotFound
from backend.lib.forms import is_htmx
from backend.lib.tenancy import Actor

REPORT_PATHS = {
    "deals": "deals",
    "calls": "calls",
    "conversion_by_source": "conversion-by-source",
    "conversion_by_manager": "conversion-by-manager",
    "sources": "sources",
    "funnel": "funnel",
    "overdue_tasks": "overdue-tasks",
}
KPI_LABELS = {
    "dealsCreated": ("Requests", "count"),
    "dealsWon": ("Deals won", "count"),
    "revenue": ("Revenue", "money"),
    "dealsLost": ("Deals lost", "count"),
    "winRate": ("Win rate", "rate"),
    "conversion": ("Requests won", "rate"),
    "calls": ("Calls", "count"),
    "overdueTasks": ("Overdue tasks", "count"),
}


def format_value(value: Value, kind: str) -> str:
    """A cell as people read it: 12 345.00, 42.5 %, 2026-10-01, "—" for nothing."""
    if value is None:
        return "—"
    if kind == "rate" and isinstance(value, int | float | Decimal):
        return f"{float(value) * 100:.1f} %"
    if kind == "money" and isinstance(value, int | float | Decimal):
        return f"{Decimal(value):,.2f}".replace(",", "\u202f")
    if isinstance(value, int) and kind in ("count", "rank"):
        return f"{value:,}".replace(",", "\u202f")
    if isinstance(value, date):
        return value.isoformat()
    return str(value)


def _label(start: Any, interval: str) -> str:
    day = start if isinstance(start, date) else date.fromisoformat(str(start))
    if interval == "month":
        return day.strftime("%b %Y")
    return day.strftime("%d %b")


def _number(value: Value) -> float:
    return float(value) if isinstance(value, int | float | Decimal) else 0.0


def chart_markup(board: Dashboard, interval: str) -> dict[str, Any]:
    """The SVG charts of the dashboard."""
    reports: dict[str, Report] = board.reports
    deal_rows = reports["deals"].rows
    labels = [_label(r["period"], interval) for r in deal_rows]
    s = charts.Series
    return {
        "closed": charts.bar_chart(
            "Deals won and lost",
            labels,
            [
                s("Won", [_number(r["wonCount"]) for r in deal_rows], charts.PALETTE[1]),
                s("Lost", [_number(r["lostCount"]) for r in deal_rows], charts.PALETTE[2]),
                s("Created", [_number(r["createdCount"]) for r in deal_rows], charts.PALETTE[0]),
            ],
        ),
        "amounts": charts.line_chart(
            f"Amounts in {board.currency}",
            labels,
            [
                s("Won", [_number(r["wonAmount"]) for r in deal_rows], charts.PALETTE[1]),
                s("Created", [_number(r["createdAmount"]) for r in deal_rows], charts.PALETTE[0]),
            ],
        ),
        "funnel": charts.funnel_chart(
            "Sales funnel",
            [(str(r["stage"]), _number(r["reached"])) for r in reports["funnel"].rows],
        ),
        "sources": charts.hbar_chart(
            f"Revenue by source, {board.currency}",
            [(str(r["source"]), _number(r["revenue"])) for r in reports["sources"].rows[:10]],
            charts.PALETTE[1],
        ),
        "calls": charts.hbar_chart(
            "Calls per person",
            [(str(r["person"]), _number(r["calls"])) for r in reports["calls"].rows[:15]],
        ),
        "overdue": charts.hbar_chart(
            "Overdue tasks per person",
            [(str(r["person"]), _number(r["overdue"])) for r in reports["overdue_tasks"].rows[:15]],
            charts.PALETTE[2],
        ),
    }


class ReportPages(Controller):
    """The reports page."""

    path = "/"
    include_in_schema = False
    dependencies = {"filters": Provide(provide_filters, sync_to_thread=False)}

    @get("/reports")
    async def reports_page(
        self,
        request: Request[Any, Any, Any],
        db_session: AsyncSession,
        actor: Actor,
        clock: Clock,
        filters: RawFilters,
    ) -> Template:
        """The owner's dashboard: headline figures, charts and tables for the chosen period,
        team, person, pipeline and source."""
        actor.require_role(Role.ADMIN, Role.MANAGER)
        me = await get_user(db_session, actor, actor.user_id)
        teams = (await list_teams(db_session, actor, 200, None)).items
        pipelines = (
            await db_session.execute(
                text("SELECT id, name FROM pipelines WHERE organization_id = :org ORDER BY name"),
                {"org": actor.organization_id},
            )
        ).all()
        people = (
            await db_session.execute(
                text(
                    "SELECT id, full_name FROM users WHERE organization_id = :org"
                    " AND is_active ORDER BY full_name"
                ),
                {"org": actor.organization_id},
            )
        ).all()
        visible = actor.visible_owner_ids()
        people = [p for p in people if visible is None or p.id in visible]
        board: Dashboard | None = None
        errors: list[Any] = []
        chart: dict[str, Any] = {}
        try:
            query = await resolve(db_session, actor, filters, clock.now())
            board = await dashboard(db_session, query)
            chart = chart_markup(board, query.interval)
        except InvalidInput as exc:
            errors = exc.errors
        params = {
            k: v
            for k, v in {
                "from": filters.start,
                "to": filters.end,
                "team": filters.team,
                "person": filters.person,
                "pipeline": filters.pipeline,
                "source": filters.source,
                "interval": filters.interval,
            }.items()
            if v
        }
        context = {
            "me": me,
            "board": board,
            "charts": chart,
            "errors": errors,
            "filters": filters,
            "teams": teams,
            "pipelines": pipelines,
            "people": people,
            "fmt": format_value,
            "kpi_labels": KPI_LABELS,
            "paths": REPORT_PATHS,
            "query": urlencode(params),
        }
        partial = is_htmx(request)
        return Template(
            "reports/_body.html" if partial else "reports/index.html",
            context=context,
            status_code=422 if errors else 200,
        )

    @get("/reports/export/{name:str}")
    async def export_report(
        self,
        db_session: AsyncSession,
        actor: Actor,
        clock: Clock,
        filters: RawFilters,
        name: str,
        report_format: Annotated[str | None, QueryParameter(name="format", max_length=10)] = None,
    ) -> Response[Any]:
        """One report (or ``dashboard``, as a workbook) as CSV or XLSX for the signed-in
        browser (the JSON API takes bearer tokens only)."""
        actor.require_role(Role.ADMIN, Role.MANAGER)
        fmt = parse_format(report_format or "csv")
        key = name.replace("-", "_")
        if key != "dashboard" and key not in REPORTS:
            raise NotFound("No such report")
        if key == "dashboard" and fmt != "xlsx":
            raise InvalidInput.on("format", "the dashboard exports as xlsx")
        query = await resolve(db_session, actor, filters, clock.now())
        if key == "dashboard":
            board = await dashboard(db_session, query)
            file_name = f"dashboard-{board.period.start}-{board.period.end}.xlsx"
            return Response(
                export.to_xlsx(list(board.reports.values())),
                media_type=export.XLSX_MEDIA_TYPE,
                headers={"Content-Disposition": f'attachment; filename="{file_name}"'},
            )
        return report_response(await REPORTS[key](db_session, query), fmt)
