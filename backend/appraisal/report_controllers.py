"""JSON API of the owner's reports, with CSV and XLSX export (``?format=csv|xlsx``).

Every report takes the same filters (``backend.appraisal.report_filters``): ``from``, ``to``,
``team``, ``person``, ``pipeline``, ``source``, ``interval``. A bad filter is a 422
problem+json naming the field.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Annotated, Any

from litestar import Controller, Response, get
from litestar.di import Provide
from litestar.params import QueryParameter
from sqlalchemy.ext.asyncio import AsyncSession

from backend.appraisal import export, reports
from backend.appraisal.report_dashboard import dashboard as build_dashboard
from backend.appraisal.report_filters import RawFilters, ReportQuery, parse_format, resolve
from backend.appraisal.report_schemas import Dashboard, Report
from backend.lib.clock import Clock
from backend.lib.errors import InvalidInput
from backend.lib.tenancy import Actor

Format = Annotated[
    str | None,
    QueryParameter(name="format", max_length=10, description="json (default), csv or xlsx"),
]


def provide_filters(
    start: Annotated[
        str | None,
        QueryParameter(
            name="from", max_length=40, description="first local day, YYYY-MM-DD (inclusive)"
        ),
    ] = None,
    end: Annotated[
        str | None,
        QueryParameter(
            name="to", max_length=40, description="last local day, YYYY-MM-DD; default today"
        ),
    ] = None,
    team: Annotated[str | None, QueryParameter(max_length=80, description="a team id")] = None,
    person: Annotated[str | None, QueryParameter(max_length=80, description="a user id")] = None,
    pipeline: Annotated[
        str | None, QueryParameter(max_length=80, description="a pipeline id")
    ] = None,
    source: Annotated[
        str | None, QueryParameter(max_length=200, description="a lead source")
    ] = None,
    interval: Annotated[
        str | None, QueryParameter(max_length=10, description="day, week or month (series)")
    ] = None,
) -> RawFilters:
    """The reports' filters from the query string (checked by ``report_filters.resolve``)."""
    return RawFilters(start, end, team, person, pipeline, source, interval)


def _file_name(report: Report, extension: str) -> str:
    return f"{report.name}-{report.period.start}-{report.period.end}.{extension}"


def report_response(report: Report, fmt: str) -> Response[Any]:
    """The report as JSON, CSV or XLSX (the files as attachments)."""
    if fmt == "csv":
        return Response(
            export.to_csv(report),
            media_type=export.CSV_MEDIA_TYPE,
            headers={"Content-Disposition": f'attachment; filename="{_file_name(report, "csv")}"'},
        )
    if fmt == "xlsx":
        return Response(
            export.to_xlsx([report]),
            media_type=export.XLSX_MEDIA_TYPE,
            headers={"Content-Disposition": f'attachment; filename="{_file_name(report, "xlsx")}"'},
        )
    return Response(report)


Build = Callable[[AsyncSession, ReportQuery], Awaitable[Report]]


async def _answer(
    db_session: AsyncSession,
    actor: Actor,
    clock: Clock,
    filters: RawFilters,
    report_format: str | None,
    build: Build,
) -> Response[Any]:
    fmt = parse_format(report_format)
    query = await resolve(db_session, actor, filters, clock.now())
    return report_response(await build(db_session, query), fmt)


class ReportController(Controller):
    """The owner's reports. Admins see the organisation, managers their teams, field staff
    their own numbers."""

    path = "/api/v1/reports"
    tags = ["reports"]
    dependencies = {"filters": Provide(provide_filters, sync_to_thread=False)}

    @get("/deals")
    async def deals(
        self,
        db_session: AsyncSession,
        actor: Actor,
        clock: Clock,
        filters: RawFilters,
        report_format: Format = None,
    ) -> Response[Any]:
        """Deals created, won and lost per day, week or month (number and amount), with
        totals against the previous period of equal length."""
        return await _answer(db_session, actor, clock, filters, report_format, reports.deals)

    @get("/calls")
    async def calls(
        self,
        db_session: AsyncSession,
        actor: Actor,
        clock: Clock,
        filters: RawFilters,
        report_format: Format = None,
    ) -> Response[Any]:
        """Calls made per person and their talk time."""
        return await _answer(db_session, actor, clock, filters, report_format, reports.calls)

    @get("/conversion-by-source")
    async def conversion_by_source(
        self,
        db_session: AsyncSession,
        actor: Actor,
        clock: Clock,
        filters: RawFilters,
        report_format: Format = None,
    ) -> Response[Any]:
        """Of the requests received in the period, the share won by now, per source."""
        return await _answer(
            db_session, actor, clock, filters, report_format, reports.conversion_by_source
        )

    @get("/conversion-by-manager")
    async def conversion_by_manager(
        self,
        db_session: AsyncSession,
        actor: Actor,
        clock: Clock,
        filters: RawFilters,
        report_format: Format = None,
    ) -> Response[Any]:
        """Of the requests received in the period, the share won by now, per manager."""
        return await _answer(
            db_session, actor, clock, filters, report_format, reports.conversion_by_manager
        )

    @get("/sources")
    async def sources(
        self,
        db_session: AsyncSession,
        actor: Actor,
        clock: Clock,
        filters: RawFilters,
        report_format: Format = None,
    ) -> Response[Any]:
        """Lead sources ranked by deals won and by revenue."""
        return await _answer(db_session, actor, clock, filters, report_format, reports.sources)

    @get("/funnel")
    async def funnel(
        self,
        db_session: AsyncSession,
        actor: Actor,
        clock: Clock,
        filters: RawFilters,
        report_format: Format = None,
    ) -> Response[Any]:
        """The pipeline's funnel (the default pipeline unless ``pipeline`` is given): requests
        reaching each stage, conversion between stages, average days in each stage."""
        return await _answer(db_session, actor, clock, filters, report_format, reports.funnel)

    @get("/overdue-tasks")
    async def overdue_tasks(
        self,
        db_session: AsyncSession,
        actor: Actor,
        clock: Clock,
        filters: RawFilters,
        report_format: Format = None,
    ) -> Response[Any]:
        """Per person: tasks due in the period, done on time, done late, open past due."""
        return await _answer(
            db_session, actor, clock, filters, report_format, reports.overdue_tasks
        )

    @get("/dashboard")
    async def dashboard(
        self,
        db_session: AsyncSession,
        actor: Actor,
        clock: Clock,
        filters: RawFilters,
        report_format: Format = None,
    ) -> Response[Any]:
        """Every report and the headline figures in one answer (``format=xlsx``: a workbook
        with one sheet per report; CSV is per report)."""
        fmt = parse_format(report_format)
        if fmt == "csv":
            raise InvalidInput.on("format", "the dashboard exports as json or xlsx")
        query = await resolve(db_session, actor, filters, clock.now())
        board: Dashboard = await build_dashboard(db_session, query)
        if fmt == "xlsx":
            name = f"dashboard-{board.period.start}-{board.period.end}.xlsx"
            return Response(
                export.to_xlsx(list(board.reports.values())),
                media_type=export.XLSX_MEDIA_TYPE,
                headers={"Content-Disposition": f'attachment; filename="{name}"'},
            )
        return Response(board)


CONTROLLERS = [ReportController]
