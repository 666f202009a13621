"""``create_app(settings)``: the only place where plugins, middleware and routes are wired."""

from __future__ import annotations

import gc
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from litestar import Litestar, Request, Response, Router
from litestar.config.csrf import CSRFConfig
from litestar.contrib.jinja import JinjaTemplateEngine
from litestar.datastructures import State
from litestar.di import Provide
from litestar.openapi.config import OpenAPIConfig
from litestar.openapi.plugins import JsonRenderPlugin, SwaggerRenderPlugin
from litestar.openapi.spec import Components, SecurityScheme
from litestar.response import Redirect
from litestar.static_files import create_static_files_router
from litestar.template.config import TemplateConfig
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from backend.accounts import controllers as accounts_api
from backend.accounts.actor_loader import ActorLoader
from backend.accounts.admin_pages import AdminUserPages
from backend.accounts.auth import (
    authenticate,
    is_api_path,
    provide_actor,
    provide_clock,
    provide_settings,
)
from backend.accounts.pages import LoginPages
from backend.appraisal import kpi_controllers as kpis_api
from backend.appraisal import report_controllers as reports_api
from backend.appraisal.kpi_pages import KpiPages
from backend.appraisal.report_pages import ReportPages
from backend.config import Settings, get_settings
from backend.customers import controllers as customers_api
from backend.customers.geocoding import Geocoder
from backend.customers.pages import CustomerPages
from backend.db.session import make_engine, make_sessionmaker, provide_db_session
from backend.documents.pages import DocumentTemplatePages
from backend.documents.storage import FileStorage
from backend.health import health, ready
from backend.lib.clock import Clock, SystemClock
from backend.lib.errors import EXCEPTION_HANDLERS, AppError, Unauthenticated
from backend.lib.logging import configure_logging, request_id_middleware
from backend.notifications import controllers as notifications_api
from backend.notifications.customer import controllers as customer_messages_api
from backend.notifications.customer.pages import CustomerLinkPages
from backend.notifications.pages import NotificationPages
from backend.routing import controllers as routing_api
from backend.routing.pages import DispatchPages
from backend.sales import config_controllers as sales_config_api
from backend.sales import controllers as sales_api
from backend.sales.config_pages import SalesConfigPages
from backend.sales.lead_pages import LeadPages
from backend.sales.pages import DealPages
from backend.tasks import controllers as tasks_api
from backend.tasks.pages import VisitPages
from backend.tasks.task_pages import TaskPages
from backend.tracking import controllers as tracking_api
from backend.tracking.group_commit import PingWriter
from backend.tracking.map_pages import MapPages
from backend.tracking.osmand_endpoint import osmand
from backend.tracking.pages import TrackingPages
from backend.tracking.pwa import ROUTES as PWA_ROUTES
from backend.tracking.stream import make_channels
from backend.tracking.team_pages import TeamPages

ROOT = Path(__file__).resolve().parent.parent
TEMPLATES = ROOT / "web" / "templates"
STATIC = ROOT / "web" / "static"
CSRF_COOKIE = "fieldcrm_csrf"


def local_time(moment: datetime, zone: str, fmt: str = "%Y-%m-%d %H:%M") -> str:
    """Jinja filter: an aware timestamp in the viewer's IANA time zone."""
    return moment.astimezone(ZoneInfo(zone)).strftime(fmt)


def _register_filters(engine: JinjaTemplateEngine) -> None:
    engine.engine.filters["local"] = local_time


def _app_error_handler(request: Request[Any, Any, Any], exc: AppError) -> Response[Any]:
    """Pages send people to the login form; the API answers problem+json."""
    if isinstance(exc, Unauthenticated) and not is_api_path(request.url.path):
        return Redirect(f"/login?next={request.url.path}", status_code=303)
    handler = EXCEPTION_HANDLERS[AppError]
    response: Response[Any] = handler(request, exc)
    return response


def create_app(
    settings: Settings | None = None,
    *,
    clock: Clock | None = None,
    sessionmaker: async_sessionmaker[AsyncSession] | None = None,
    geocoder: Geocoder | None = None,
) -> Litestar:
    """Build the ASGI app. Tests pass their own clock and a sessionmaker bound to a test
    transaction; production passes nothing and gets the wall clock and a pooled engine."""
    settings = settings or get_settings()
    configure_logging(settings.log_json)
    engine = None
    if sessionmaker is None:
        engine = make_engine(settings)
        sessionmaker = make_sessionmaker(engine)

    ping_writer = PingWriter(sessionmaker)

    @asynccontextmanager
    async def lifespan(_: Litestar) -> AsyncIterator[None]:
        # What exists now (modules, routes, ORM metadata, ~250k objects) lives as long as the
        # process: out of the collector's sight, a collection no longer walks it each time a
        # request allocates (parsing a 500-point batch took twice as long with it).
        gc.collect()
        gc.freeze()
        try:
            yield
        finally:
            await ping_writer.drain()
            if engine is not None:
                await engine.dispose()

    api_docs = Router(path="/api/docs", route_handlers=[], opt={"public": True})
    static = create_static_files_router(
        path="/static", directories=[STATIC], opt={"public": True}, include_in_schema=False
    )
    return Litestar(
        route_handlers=[
            health,
            ready,
            static,
            *accounts_api.CONTROLLERS,
            *customers_api.CONTROLLERS,
            *sales_api.CONTROLLERS,
            *sales_config_api.CONTROLLERS,
            *tasks_api.CONTROLLERS,
            *notifications_api.CONTROLLERS,
            *customer_messages_api.CONTROLLERS,
            *tracking_api.CONTROLLERS,
            *routing_api.CONTROLLERS,
            *reports_api.CONTROLLERS,
            *kpis_api.CONTROLLERS,
            osmand,
            LoginPages,
            AdminUserPages,
            SalesConfigPages,
            DocumentTemplatePages,
            CustomerPages,
            LeadPages,
            CustomerLinkPages,
            TrackingPages,
            TeamPages,
            ReportPages,
            VisitPages,
            *PWA_ROUTES,
            MapPages,
            DealPages,
            TaskPages,
            DispatchPages,
            KpiPages,
            NotificationPages,
        ],
        dependencies={
            "db_session": Provide(provide_db_session),
            "actor": Provide(provide_actor, sync_to_thread=False),
            "settings": Provide(provide_settings, sync_to_thread=False),
            "clock": Provide(provide_clock, sync_to_thread=False),
        },
        guards=[authenticate],
        plugins=[make_channels(settings.database_url)],
        exception_handlers={**EXCEPTION_HANDLERS, AppError: _app_error_handler},
        middleware=[request_id_middleware],
        csrf_config=CSRFConfig(
            secret=settings.secret_key,
            cookie_name=CSRF_COOKIE,
            cookie_secure=settings.cookie_secure,
            cookie_samesite="lax",
            header_name="x-csrftoken",
            # The JSON API takes bearer tokens only (never cookies), so it needs no CSRF token.
            # Public lead forms are posted from other sites: honeypot + rate limit instead.
            # Customers' links (tracking, feedback, unsubscribe) carry their token: rate limit.
            exclude=["/api/", "/health", "/ready", "/static/", "/f/", "/t/", "/feedback/", "/u/"],
        ),
        template_config=TemplateConfig(
            directory=TEMPLATES, engine=JinjaTemplateEngine, engine_callback=_register_filters
        ),
        openapi_config=OpenAPIConfig(
            title="fieldcrm API",
            version="1",
            description="Field-service CRM. Authenticate with POST /api/v1/auth/token, then send "
            "`Authorization: Bearer <accessToken>`. Errors are RFC 9457 problem+json.",
            openapi_router=api_docs,
            use_handler_docstrings=True,
            components=Components(
                security_schemes={
                    "bearer": SecurityScheme(type="http", scheme="bearer", bearer_format="JWT")
                }
            ),
            security=[{"bearer": []}],
            render_plugins=[
                SwaggerRenderPlugin(
                    js_url="/static/vendor/swagger-ui/swagger-ui-bundle.js",
                    css_url="/static/vendor/swagger-ui/swagger-ui.css",
                    standalone_preset_js_url="/static/vendor/swagger-ui/swagger-ui-standalone-preset.js",
                    path="/",
                ),
                JsonRenderPlugin(),
            ],
        ),
        request_max_body_size=settings.max_body_bytes,
        state=State(
            {
                "settings": settings,
                "clock": clock or SystemClock(),
                "sessionmaker": sessionmaker,
                "actor_loader": ActorLoader(sessionmaker),
                "ping_writer": ping_writer,
                "geocoder": geocoder,
                "storage": FileStorage(Path(settings.files_dir)),
            }
        ),
        lifespan=[lifespan],
        debug=False,
    )


def app_factory() -> Litestar:
    """Entry point for ASGI servers: ``uvicorn --factory backend.app:app_factory``."""
    return create_app()
