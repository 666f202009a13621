"""JSON API for configuring sales: pipelines, stages, automations, lead forms, territories and
document templates. Everyone in the organisation reads pipelines and lead forms; admins change
everything here (see ``backend.sales.config_services`` for the rules)."""

from __future__ import annotations

import uuid
from typing import Any

from litestar import Controller, Request, delete, get, patch, post, put
from litestar.status_codes import HTTP_201_CREATED, HTTP_204_NO_CONTENT
from sqlalchemy.ext.asyncio import AsyncSession

from backend.documents import schemas as document_schemas
from backend.lib.clock import Clock
from backend.lib.tenancy import Actor
from backend.sales import config_services as services
from backend.sales import schemas
from backend.sales.config_services import LeadFormUpdate, PipelineUpdate


def _base_url(request: Request[Any, Any, Any]) -> str:
    """Scheme, host and root path the caller used (for absolute embed URLs)."""
    return str(request.base_url).rstrip("/")


class PipelineController(Controller):
    """Pipelines and adding stages to them."""

    path = "/api/v1/pipelines"
    tags = ["configuration"]

    @get("/")
    async def list_pipelines(
        self, db_session: AsyncSession, actor: Actor
    ) -> list[schemas.PipelineOut]:
        """The organisation's pipelines (default first) with their stages and automations in
        order."""
        return await services.list_pipelines(db_session, actor)

    @post("/", status_code=HTTP_201_CREATED)
    async def create_pipeline(
        self, data: schemas.PipelineIn, db_session: AsyncSession, actor: Actor, clock: Clock
    ) -> schemas.PipelineOut:
        """Create a pipeline with its stages in order (admins). The first pipeline, or one sent
        with ``isDefault: true``, becomes the organisation's default."""
        pipeline = await services.create_pipeline(db_session, actor, data, clock.now())
        return await services.pipeline_out(db_session, pipeline)

    @get("/{pipeline_id:uuid}")
    async def get_pipeline(
        self, pipeline_id: uuid.UUID, db_session: AsyncSession, actor: Actor
    ) -> schemas.PipelineOut:
        """One pipeline with its stages and automations."""
        pipeline = await services.get_pipeline(db_session, actor, pipeline_id)
        return await services.pipeline_out(db_session, pipeline)

    @patch("/{pipeline_id:uuid}")
    async def update_pipeline(
        self,
        pipeline_id: uuid.UUID,
        data: PipelineUpdate,
        db_session: AsyncSession,
        actor: Actor,
        clock: Clock,
    ) -> schemas.PipelineOut:
        """Rename a pipeline or make it the default (admins)."""
        pipeline = await services.update_pipeline(db_session, actor, pipeline_id, data, clock.now())
        return await services.pipeline_out(db_session, pipeline)

    @post("/{pipeline_id:uuid}/stages", status_code=HTTP_201_CREATED)
    async def add_stage(
        self,
        pipeline_id: uuid.UUID,
        data: schemas.StageIn,
        db_session: AsyncSession,
        actor: Actor,
        clock: Clock,
    ) -> schemas.StageOut:
        """Add a stage (admins); without ``position`` it goes after the last stage."""
        stage = await services.add_stage(db_session, actor, pipeline_id, data, clock.now())
        return services.stage_out(stage)


class StageController(Controller):
    """Changing and deleting stages, and their automations."""

    path = "/api/v1/stages"
    tags = ["configuration"]

    @patch("/{stage_id:uuid}")
    async def update_stage(
        self,
        stage_id: uuid.UUID,
        data: schemas.StageUpdate,
        db_session: AsyncSession,
        actor: Actor,
        clock: Clock,
    ) -> schemas.StageOut:
        """Change a stage's name, kind, position or entry rules (admins)."""
        stage = await services.update_stage(db_session, actor, stage_id, data, clock.now())
        return await services.stage_with_automations(db_session, stage)

    @delete("/{stage_id:uuid}", status_code=HTTP_204_NO_CONTENT)
    async def delete_stage(
        self, stage_id: uuid.UUID, db_session: AsyncSession, actor: Actor, clock: Clock
    ) -> None:
        """Delete a stage and its automations (admins); 409 while deals are at it or when it is
        the pipeline's last open stage."""
        await services.delete_stage(db_session, actor, stage_id, clock.now())

    @post("/{stage_id:uuid}/automations", status_code=HTTP_201_CREATED)
    async def add_automation(
        self,
        stage_id: uuid.UUID,
        data: schemas.AutomationIn,
        db_session: AsyncSession,
        actor: Actor,
        clock: Clock,
    ) -> schemas.AutomationOut:
        """Add an automation run when a deal enters the stage (admins); the config is checked
        for the action and stored with its defaults written out."""
        row = await services.add_automation(db_session, actor, stage_id, data, clock.now())
        return services.automation_out(row)


class AutomationController(Controller):
    """Changing and deleting automations."""

    path = "/api/v1/automations"
    tags = ["configuration"]

    @patch("/{automation_id:uuid}")
    async def update_automation(
        self,
        automation_id: uuid.UUID,
        data: schemas.AutomationUpdate,
        db_session: AsyncSession,
        actor: Actor,
        clock: Clock,
    ) -> schemas.AutomationOut:
        """Change an automation (admins); a new config is checked for its action."""
        row = await services.update_automation(db_session, actor, automation_id, data, clock.now())
        return services.automation_out(row)

    @delete("/{automation_id:uuid}", status_code=HTTP_204_NO_CONTENT)
    async def delete_automation(
        self, automation_id: uuid.UUID, db_session: AsyncSession, actor: Actor, clock: Clock
    ) -> None:
        """Delete an automation (admins)."""
        await services.delete_automation(db_session, actor, automation_id, clock.now())


class LeadFormController(Controller):
    """Public intake forms: their settings, URL and embed code."""

    path = "/api/v1/lead-forms"
    tags = ["configuration"]

    @get("/")
    async def list_lead_forms(
        self,
        request: Request[Any, Any, Any],
        db_session: AsyncSession,
        actor: Actor,
    ) -> list[schemas.LeadFormOut]:
        """The organisation's lead forms with their URLs and embed codes."""
        base = _base_url(request)
        rows = await services.list_lead_forms(db_session, actor)
        return [services.lead_form_out(row, base) for row in rows]

    @post("/", status_code=HTTP_201_CREATED)
    async def create_lead_form(
        self,
        request: Request[Any, Any, Any],
        data: schemas.LeadFormIn,
        db_session: AsyncSession,
        actor: Actor,
        clock: Clock,
    ) -> schemas.LeadFormOut:
        """Create a lead form (admins) on ``pipelineId`` or the default pipeline."""
        row = await services.create_lead_form(db_session, actor, data, clock.now())
        return services.lead_form_out(row, _base_url(request))

    @patch("/{form_id:uuid}")
    async def update_lead_form(
        self,
        request: Request[Any, Any, Any],
        form_id: uuid.UUID,
        data: LeadFormUpdate,
        db_session: AsyncSession,
        actor: Actor,
        clock: Clock,
    ) -> schemas.LeadFormOut:
        """Change a lead form (admins)."""
        row = await services.update_lead_form(db_session, actor, form_id, data, clock.now())
        return services.lead_form_out(row, _base_url(request))

    @post("/{form_id:uuid}/rotate-key", status_code=200)
    async def rotate_key(
        self,
        request: Request[Any, Any, Any],
        form_id: uuid.UUID,
        db_session: AsyncSession,
        actor: Actor,
        clock: Clock,
    ) -> schemas.LeadFormOut:
        """Give the form a new key (admins): the old URL and embed code stop working."""
        row = await services.rotate_lead_form_key(db_session, actor, form_id, clock.now())
        return services.lead_form_out(row, _base_url(request))


class TerritoryController(Controller):
    """Areas whose leads go to one manager."""

    path = "/api/v1/territories"
    tags = ["configuration"]

    @get("/")
    async def list_territories(
        self, db_session: AsyncSession, actor: Actor
    ) -> list[schemas.TerritoryOut]:
        """The organisation's territories with their areas as GeoJSON (admins and managers)."""
        return await services.list_territories(db_session, actor)

    @post("/", status_code=HTTP_201_CREATED)
    async def create_territory(
        self, data: schemas.TerritoryIn, db_session: AsyncSession, actor: Actor, clock: Clock
    ) -> schemas.TerritoryOut:
        """Create a territory (admins); ``area`` is a GeoJSON Polygon or MultiPolygon (lon, lat)
        and comes back as a MultiPolygon."""
        return await services.create_territory(db_session, actor, data, clock.now())

    @delete("/{territory_id:uuid}", status_code=HTTP_204_NO_CONTENT)
    async def delete_territory(
        self, territory_id: uuid.UUID, db_session: AsyncSession, actor: Actor, clock: Clock
    ) -> None:
        """Delete a territory (admins)."""
        await services.delete_territory(db_session, actor, territory_id, clock.now())


class DocumentTemplateController(Controller):
    """HTML templates documents are rendered from."""

    path = "/api/v1/document-templates"
    tags = ["configuration"]

    @get("/")
    async def list_templates(
        self, db_session: AsyncSession, actor: Actor
    ) -> list[document_schemas.TemplateOut]:
        """The organisation's document templates (admins and managers)."""
        return await services.list_document_templates(db_session, actor)

    @post("/", status_code=HTTP_201_CREATED)
    async def create_template(
        self,
        data: document_schemas.TemplateIn,
        db_session: AsyncSession,
        actor: Actor,
        clock: Clock,
    ) -> document_schemas.TemplateOut:
        """Create a template (admins); syntax errors and unknown variables are 422 on
        ``html``."""
        return await services.save_document_template(db_session, actor, data, clock.now())

    @put("/{template_id:uuid}")
    async def replace_template(
        self,
        template_id: uuid.UUID,
        data: document_schemas.TemplateIn,
        db_session: AsyncSession,
        actor: Actor,
        clock: Clock,
    ) -> document_schemas.TemplateOut:
        """Replace a template (admins); a changed body bumps its version."""
        return await services.save_document_template(
            db_session, actor, data, clock.now(), template_id
        )


CONTROLLERS: list[type] = [
    PipelineController,
    StageController,
    AutomationController,
    LeadFormController,
    TerritoryController,
    DocumentTemplateController,
]
