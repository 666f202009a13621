"""Configuring sales: pipelines and their stages, stage automations, lead forms, territories
and (through ``backend.documents.services``) document templates.

Who may do what:
- pipelines, stages, automations and lead forms: everyone in the organisation reads them (deal
  pages and the phone app need the stages and their rules); only admins change them;
- territories and document templates: admins and managers read, admins change.

Every look-up is restricted to the actor's organisation, so another organisation's id is "not
found". Every change writes an audit entry in the caller's transaction.

Rules kept here:
- an organisation that has pipelines always has exactly one default: its first pipeline
  becomes the default, making another one the default unsets the old one in the same
  transaction, and the default cannot simply be switched off (make another one the default);
- a stage's ``allowedFrom`` may name only other stages of the same pipeline (a new pipeline's
  stages have no ids yet: add the rule afterwards with ``PATCH /stages/{id}``);
- a stage with deals cannot be deleted, nor can a pipeline lose its last open stage (by
  deletion or by turning it into a won/lost stage): new deals start at the first open stage;
- automation configs are checked by ``backend.sales.automations.parse_config`` and stored with
  every default written out, in the shape ``parse_config`` reads back;
- territories are GeoJSON (Multi)Polygons, checked here (type, closed rings of at least four
  positions, longitude/latitude ranges) and by PostGIS (self-intersections) before storing.
"""

from __future__ import annotations

import math
import secrets
import uuid
from collections.abc import Mapping, Sequence
from datetime import datetime
from html import escape
from typing import Annotated, Any

import msgspec
from geoalchemy2 import Geography
from sqlalchemy import Text, cast, delete, func, insert, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from backend.accounts.models import Organization, Role, User
from backend.accounts.schemas import Input
from backend.audit import services as audit
from backend.documents import schemas as document_schemas
from backend.documents import services as documents
from backend.lib.errors import Conflict, FieldError, InvalidInput, NotFound
from backend.lib.tenancy import Actor
from backend.sales import schemas
from backend.sales.automations import parse_config
from backend.sales.models import (
    AssignmentRule,
    Automation,
    AutomationAction,
    Deal,
    DealStageChange,
    LeadForm,
    Pipeline,
    Stage,
    StageKind,
    Territory,
)
from backend.sales.services import default_pipeline

POSITION_STEP = 10
# A territory is drawn by hand: a few hundred points. This bounds the work one request causes.
MAX_AREA_POSITIONS = 20_000


class PipelineUpdate(Input):
    """Rename a pipeline or make it the organisation's default."""

    name: schemas.Name | msgspec.UnsetType = msgspec.UNSET
    is_default: bool | msgspec.UnsetType = msgspec.UNSET


class LeadFormUpdate(Input):
    """Change a lead form; its key changes only through ``rotate-key``."""

    name: schemas.Name | msgspec.UnsetType = msgspec.UNSET
    source: Annotated[str, msgspec.Meta(min_length=1, max_length=100)] | msgspec.UnsetType = (
        msgspec.UNSET
    )
    assignment: AssignmentRule | msgspec.UnsetType = msgspec.UNSET
    deal_title: Annotated[str, msgspec.Meta(min_length=1, max_length=300)] | msgspec.UnsetType = (
        msgspec.UNSET
    )
    thank_you: Annotated[str, msgspec.Meta(min_length=1, max_length=2000)] | msgspec.UnsetType = (
        msgspec.UNSET
    )
    is_active: bool | msgspec.UnsetType = msgspec.UNSET


async def _record(
    session: AsyncSession,
    actor: Actor,
    entity: str,
    entity_id: uuid.UUID,
    action: str,
    now: datetime,
    changes: dict[str, Any],
) -> None:
    await audit.record(
        session,
        organization_id=actor.organization_id,
        entity=entity,
        entity_id=entity_id,
        action=action,
        actor_id=actor.user_id,
        at=now,
        changes=changes,
    )


def _created(values: dict[str, Any]) -> dict[str, list[Any]]:
    """Audit changes of a new row: ``{field: [None, value]}``."""
    return {key: [None, audit.json_value(value)] for key, value in values.items()}


def _require_admin(actor: Actor) -> None:
    actor.require_role(Role.ADMIN)


async def _lock_organization(session: AsyncSession, organization_id: uuid.UUID) -> None:
    """Serialise changes of the organisation's default pipeline."""
    await session.execute(
        select(Organization.id).where(Organization.id == organization_id).with_for_update()
    )


# --- reading pipelines --------------------------------------------------------------------------


def automation_out(row: Automation) -> schemas.AutomationOut:
    """The API shape of an automation."""
    return schemas.AutomationOut(
        id=row.id,
        stage_id=row.stage_id,
        name=row.name,
        action=row.action,
        config=dict(row.config),
        position=row.position,
        is_active=row.is_active,
    )


def stage_out(row: Stage, automations: Sequence[Automation] = ()) -> schemas.StageOut:
    """The API shape of a stage with its automations (already in order)."""
    return schemas.StageOut(
        id=row.id,
        name=row.name,
        kind=row.kind,
        position=row.position,
        requirements=list(row.requirements),
        allowed_from=list(row.allowed_from) if row.allowed_from is not None else None,
        entry_roles=list(row.entry_roles) if row.entry_roles is not None else None,
        automations=[automation_out(a) for a in automations],
    )


async def _pipelines_out(
    session: AsyncSession, pipelines: Sequence[Pipeline]
) -> list[schemas.PipelineOut]:
    """Pipelines with their stages by position and each stage's automations by position."""
    ids = [p.id for p in pipelines]
    stages = (
        (
            await session.scalars(
                select(Stage)
                .where(Stage.pipeline_id.in_(ids))
                .order_by(Stage.position, Stage.created_at, Stage.name)
            )
        ).all()
        if ids
        else []
    )
    stage_ids = [s.id for s in stages]
    automations = (
        (
            await session.scalars(
                select(Automation)
                .where(Automation.stage_id.in_(stage_ids))
                .order_by(
                    Automation.position, Automation.created_at, Automation.name, Automation.id
                )
            )
        ).all()
        if stage_ids
        else []
    )
    by_stage: dict[uuid.UUID, list[Automation]] = {}
    for automation in automations:
        by_stage.setdefault(automation.stage_id, []).append(automation)
    by_pipeline: dict[uuid.UUID, list[schemas.StageOut]] = {}
    for stage in stages:
        by_pipeline.setdefault(stage.pipeline_id, []).append(
            stage_out(stage, by_stage.get(stage.id, []))
        )
    return [
        schemas.PipelineOut(
            id=p.id, name=p.name, is_default=p.is_default, stages=by_pipeline.get(p.id, [])
        )
        for p in pipelines
    ]


async def get_pipeline(
    session: AsyncSession, actor: Actor, pipeline_id: uuid.UUID, *, for_update: bool = False
) -> Pipeline:
    """A pipeline of the actor's organisation; 404 otherwise."""
    stmt = select(Pipeline).where(
        Pipeline.id == pipeline_id, Pipeline.organization_id == actor.organization_id
    )
    if for_update:
        stmt = stmt.with_for_update()
    pipeline = await session.scalar(stmt)
    if pipeline is None:
        raise NotFound("Pipeline not found")
    return pipeline


async def list_pipelines(session: AsyncSession, actor: Actor) -> list[schemas.PipelineOut]:
    """The organisation's pipelines, the default first, then by name."""
    pipelines = (
        await session.scalars(
            select(Pipeline)
            .where(Pipeline.organization_id == actor.organization_id)
            .order_by(Pipeline.is_default.desc(), Pipeline.name)
        )
    ).all()
    return await _pipelines_out(session, pipelines)


async def pipeline_out(session: AsyncSession, pipeline: Pipeline) -> schemas.PipelineOut:
    """One pipeline with its stages and automations."""
    return (await _pipelines_out(session, [pipeline]))[0]


# --- changing pipelines -------------------------------------------------------------------------


async def _check_pipeline_name(
    session: AsyncSession, actor: Actor, name: str, exclude: uuid.UUID | None = None
) -> None:
    stmt = select(Pipeline.id).where(
        Pipeline.organization_id == actor.organization_id, Pipeline.name == name
    )
    if exclude is not None:
        stmt = stmt.where(Pipeline.id != exclude)
    if await session.scalar(stmt) is not None:
        raise Conflict(
            f"A pipeline named {name!r} exists",
            errors=[FieldError(field="name", reason="another pipeline has this name")],
        )


async def _unset_default(
    session: AsyncSession, organization_id: uuid.UUID, keep: uuid.UUID | None = None
) -> None:
    stmt = update(Pipeline).where(Pipeline.organization_id == organization_id, Pipeline.is_default)
    if keep is not None:
        stmt = stmt.where(Pipeline.id != keep)
    await session.execute(
        stmt.values(is_default=False).execution_options(synchronize_session=False)
    )


def _unique(values: Sequence[str]) -> list[str]:
    return list(dict.fromkeys(values))


def _check_allowed_from(
    field: str,
    allowed_from: list[uuid.UUID] | None,
    pipeline_stage_ids: set[uuid.UUID],
    own_id: uuid.UUID | None,
) -> list[uuid.UUID] | None:
    """``allowedFrom`` without repeats; 422 on ``field`` unless every id is another stage of
    the same pipeline."""
    if allowed_from is None:
        return None
    ids = list(dict.fromkeys(allowed_from))
    if own_id is not None and own_id in ids:
        raise InvalidInput.on(field, "a stage cannot be reached from itself")
    unknown = [str(i) for i in ids if i not in pipeline_stage_ids]
    if unknown:
        raise InvalidInput.on(field, f"not stages of this pipeline: {', '.join(unknown)}")
    return ids


async def create_pipeline(
    session: AsyncSession, actor: Actor, data: schemas.PipelineIn, now: datetime
) -> Pipeline:
    """Create a pipeline with its stages in the given order (positions 0, 10, 20, ... unless
    given). The organisation's first pipeline, or one sent with ``isDefault``, is the default."""
    _require_admin(actor)
    seen: set[str] = set()
    for index, stage in enumerate(data.stages):
        if stage.name in seen:
            raise InvalidInput.on(f"stages[{index}].name", "two stages have this name")
        seen.add(stage.name)
        if stage.allowed_from:
            raise InvalidInput.on(
                f"stages[{index}].allowedFrom",
                "the stages of a new pipeline have no ids yet; set allowedFrom with "
                "PATCH /api/v1/stages/{id} after creating the pipeline",
            )
    await _lock_organization(session, actor.organization_id)
    await _check_pipeline_name(session, actor, data.name)
    has_default = await session.scalar(
        select(Pipeline.id).where(
            Pipeline.organization_id == actor.organization_id, Pipeline.is_default
        )
    )
    is_default = data.is_default or has_default is None
    if data.is_default and has_default is not None:
        await _unset_default(session, actor.organization_id)
    pipeline = Pipeline(
        id=uuid.uuid4(),
        organization_id=actor.organization_id,
        name=data.name,
        is_default=is_default,
    )
    session.add(pipeline)
    await session.flush()
    for index, stage in enumerate(data.stages):
        session.add(
            Stage(
                id=uuid.uuid4(),
                organization_id=actor.organization_id,
                pipeline_id=pipeline.id,
                name=stage.name,
                position=stage.position if stage.position is not None else index * POSITION_STEP,
                kind=stage.kind,
                allowed_from=None,
                requirements=_unique([r.value for r in stage.requirements]),
                entry_roles=_unique(stage.entry_roles) if stage.entry_roles is not None else None,
            )
        )
    await session.flush()
    await _record(
        session,
        actor,
        "pipeline",
        pipeline.id,
        "created",
        now,
        _created(
            {
                "name": pipeline.name,
                "isDefault": pipeline.is_default,
                "stages": [s.name for s in data.stages],
            }
        ),
    )
    return pipeline


async def update_pipeline(
    session: AsyncSession,
    actor: Actor,
    pipeline_id: uuid.UUID,
    data: PipelineUpdate,
    now: datetime,
) -> Pipeline:
    """Rename a pipeline or make it the default (the previous default is unset)."""
    _require_admin(actor)
    pipeline = await get_pipeline(session, actor, pipeline_id, for_update=True)
    before = {"name": pipeline.name, "isDefault": pipeline.is_default}
    if not isinstance(data.name, msgspec.UnsetType) and data.name != pipeline.name:
        await _check_pipeline_name(session, actor, data.name, exclude=pipeline.id)
        pipeline.name = data.name
    if (
        not isinstance(data.is_default, msgspec.UnsetType)
        and data.is_default != pipeline.is_default
    ):
        if not data.is_default:
            raise InvalidInput.on(
                "isDefault", "make another pipeline the default instead of unsetting this one"
            )
        await _lock_organization(session, actor.organization_id)
        await _unset_default(session, actor.organization_id, keep=pipeline.id)
        pipeline.is_default = True
    await session.flush()
    changes = audit.diff(before, {"name": pipeline.name, "isDefault": pipeline.is_default})
    if changes:
        await _record(session, actor, "pipeline", pipeline.id, "updated", now, changes)
    return pipeline


# --- stages -------------------------------------------------------------------------------------


async def _stage(
    session: AsyncSession, actor: Actor, stage_id: uuid.UUID, *, for_update: bool = False
) -> Stage:
    stmt = select(Stage).where(Stage.id == stage_id, Stage.organization_id == actor.organization_id)
    if for_update:
        stmt = stmt.with_for_update()
    stage = await session.scalar(stmt)
    if stage is None:
        raise NotFound("Stage not found")
    return stage


async def _pipeline_stages(session: AsyncSession, pipeline_id: uuid.UUID) -> list[Stage]:
    return list(
        (await session.scalars(select(Stage).where(Stage.pipeline_id == pipeline_id))).all()
    )


def _check_stage_name(stages: Sequence[Stage], name: str, own_id: uuid.UUID | None) -> None:
    if any(s.name == name and s.id != own_id for s in stages):
        raise Conflict(
            f"The pipeline has a stage named {name!r}",
            errors=[FieldError(field="name", reason="another stage of the pipeline has this name")],
        )


def _stage_values(stage: Stage) -> dict[str, Any]:
    return {
        "name": stage.name,
        "kind": stage.kind.value,
        "position": stage.position,
        "requirements": list(stage.requirements),
        "allowedFrom": list(stage.allowed_from) if stage.allowed_from is not None else None,
        "entryRoles": list(stage.entry_roles) if stage.entry_roles is not None else None,
    }


async def get_stage(session: AsyncSession, actor: Actor, stage_id: uuid.UUID) -> Stage:
    """A stage of the actor's organisation; 404 otherwise."""
    return await _stage(session, actor, stage_id)


async def stage_with_automations(session: AsyncSession, stage: Stage) -> schemas.StageOut:
    """The API shape of one stage with its automations in order."""
    automations = (
        await session.scalars(
            select(Automation)
            .where(Automation.stage_id == stage.id)
            .order_by(Automation.position, Automation.created_at, Automation.name, Automation.id)
        )
    ).all()
    return stage_out(stage, automations)


async def add_stage(
    session: AsyncSession,
    actor: Actor,
    pipeline_id: uuid.UUID,
    data: schemas.StageIn,
    now: datetime,
) -> Stage:
    """Add a stage to a pipeline, by default after its last stage."""
    _require_admin(actor)
    pipeline = await get_pipeline(session, actor, pipeline_id, for_update=True)
    stages = await _pipeline_stages(session, pipeline.id)
    _check_stage_name(stages, data.name, None)
    allowed_from = _check_allowed_from(
        "allowedFrom", data.allowed_from, {s.id for s in stages}, None
    )
    position = data.position
    if position is None:
        position = max((s.position for s in stages), default=-POSITION_STEP) + POSITION_STEP
    stage = Stage(
        id=uuid.uuid4(),
        organization_id=actor.organization_id,
        pipeline_id=pipeline.id,
        name=data.name,
        position=position,
        kind=data.kind,
        allowed_from=allowed_from,
        requirements=_unique([r.value for r in data.requirements]),
        entry_roles=_unique(data.entry_roles) if data.entry_roles is not None else None,
    )
    session.add(stage)
    await session.flush()
    values = _stage_values(stage) | {"pipelineId": pipeline.id}
    await _record(session, actor, "stage", stage.id, "created", now, _created(values))
    return stage


def _is_last_open(stage: Stage, stages: Sequence[Stage]) -> bool:
    return stage.kind is StageKind.OPEN and not any(
        s.kind is StageKind.OPEN and s.id != stage.id for s in stages
    )


async def update_stage(
    session: AsyncSession,
    actor: Actor,
    stage_id: uuid.UUID,
    data: schemas.StageUpdate,
    now: datetime,
) -> Stage:
    """Change a stage's name, kind, position or entry rules."""
    _require_admin(actor)
    stage = await _stage(session, actor, stage_id)
    # Lock the pipeline: two concurrent changes must not both remove its last open stage.
    await get_pipeline(session, actor, stage.pipeline_id, for_update=True)
    stage = await _stage(session, actor, stage_id, for_update=True)
    stages = await _pipeline_stages(session, stage.pipeline_id)
    before = _stage_values(stage)
    if not isinstance(data.name, msgspec.UnsetType):
        _check_stage_name(stages, data.name, stage.id)
        stage.name = data.name
    if not isinstance(data.kind, msgspec.UnsetType) and data.kind is not stage.kind:
        if _is_last_open(stage, stages):
            raise Conflict(
                "This is the pipeline's last open stage: new deals start there",
                errors=[FieldError(field="kind", reason="the pipeline needs an open stage")],
            )
        stage.kind = data.kind
    if not isinstance(data.position, msgspec.UnsetType):
        stage.position = data.position
    if not isinstance(data.requirements, msgspec.UnsetType):
        stage.requirements = _unique([r.value for r in data.requirements])
    if not isinstance(data.allowed_from, msgspec.UnsetType):
        stage.allowed_from = _check_allowed_from(
            "allowedFrom", data.allowed_from, {s.id for s in stages}, stage.id
        )
    if not isinstance(data.entry_roles, msgspec.UnsetType):
        stage.entry_roles = _unique(data.entry_roles) if data.entry_roles is not None else None
    await session.flush()
    changes = audit.diff(before, _stage_values(stage))
    if changes:
        await _record(session, actor, "stage", stage.id, "updated", now, changes)
    return stage


async def delete_stage(
    session: AsyncSession, actor: Actor, stage_id: uuid.UUID, now: datetime
) -> None:
    """Delete a stage and its automations; 409 while deals are at it or when it is the
    pipeline's last open stage. Other stages stop naming it in ``allowedFrom``."""
    _require_admin(actor)
    stage = await _stage(session, actor, stage_id)
    await get_pipeline(session, actor, stage.pipeline_id, for_update=True)
    stage = await _stage(session, actor, stage_id, for_update=True)
    deals = await session.scalar(
        select(func.count()).select_from(Deal).where(Deal.stage_id == stage.id)
    )
    if deals:
        raise Conflict(
            f"{deals} deal(s) are at the stage {stage.name}; move them first",
            errors=[FieldError(field="stageId", reason=f"{deals} deal(s) are at this stage")],
        )
    passed = await session.scalar(
        select(func.count())
        .select_from(DealStageChange)
        .where(
            (DealStageChange.to_stage_id == stage.id) | (DealStageChange.from_stage_id == stage.id)
        )
    )
    if passed:
        # Deleting it would erase those deals' stage history (the reports' source).
        raise Conflict(
            f"Deals have passed through the stage {stage.name}; rename it instead",
            errors=[FieldError(field="stageId", reason="the stage is in deals' history")],
        )
    stages = await _pipeline_stages(session, stage.pipeline_id)
    if _is_last_open(stage, stages):
        raise Conflict(
            "This is the pipeline's last open stage: new deals start there",
            errors=[FieldError(field="stageId", reason="the pipeline needs an open stage")],
        )
    await session.execute(
        update(Stage)
        .where(Stage.pipeline_id == stage.pipeline_id, Stage.allowed_from.contains([stage.id]))
        .values(allowed_from=func.array_remove(Stage.allowed_from, stage.id))
        .execution_options(synchronize_session=False)
    )
    values = _stage_values(stage) | {"pipelineId": stage.pipeline_id}
    await session.execute(delete(Stage).where(Stage.id == stage.id))
    await _record(
        session,
        actor,
        "stage",
        stage.id,
        "deleted",
        now,
        {key: [audit.json_value(value), None] for key, value in values.items()},
    )


# --- automations --------------------------------------------------------------------------------


def _automation_values(row: Automation) -> dict[str, Any]:
    return {
        "name": row.name,
        "action": row.action.value,
        "config": dict(row.config),
        "position": row.position,
        "isActive": row.is_active,
    }


def checked_config(action: AutomationAction, raw: Mapping[str, Any]) -> dict[str, Any]:
    """The config as stored: checked by ``parse_config`` and with every default written out.
    The result passes ``parse_config`` again unchanged."""
    stored: dict[str, Any] = msgspec.to_builtins(parse_config(action, raw))
    return stored


async def add_automation(
    session: AsyncSession,
    actor: Actor,
    stage_id: uuid.UUID,
    data: schemas.AutomationIn,
    now: datetime,
) -> Automation:
    """Add an automation to a stage; its config is checked for the action."""
    _require_admin(actor)
    stage = await _stage(session, actor, stage_id)
    row = Automation(
        id=uuid.uuid4(),
        organization_id=actor.organization_id,
        stage_id=stage.id,
        name=data.name,
        position=data.position,
        action=data.action,
        config=checked_config(data.action, data.config),
        is_active=data.is_active,
    )
    session.add(row)
    await session.flush()
    values = _automation_values(row) | {"stageId": stage.id}
    await _record(session, actor, "automation", row.id, "created", now, _created(values))
    return row


async def _automation(session: AsyncSession, actor: Actor, automation_id: uuid.UUID) -> Automation:
    row = await session.scalar(
        select(Automation)
        .where(
            Automation.id == automation_id,
            Automation.organization_id == actor.organization_id,
        )
        .with_for_update()
    )
    if row is None:
        raise NotFound("Automation not found")
    return row


async def update_automation(
    session: AsyncSession,
    actor: Actor,
    automation_id: uuid.UUID,
    data: schemas.AutomationUpdate,
    now: datetime,
) -> Automation:
    """Change an automation (its action stays; a new config is checked for it)."""
    _require_admin(actor)
    row = await _automation(session, actor, automation_id)
    before = _automation_values(row)
    if not isinstance(data.name, msgspec.UnsetType):
        row.name = data.name
    if not isinstance(data.config, msgspec.UnsetType):
        row.config = checked_config(row.action, data.config)
    if not isinstance(data.position, msgspec.UnsetType):
        row.position = data.position
    if not isinstance(data.is_active, msgspec.UnsetType):
        row.is_active = data.is_active
    await session.flush()
    changes = audit.diff(before, _automation_values(row))
    if changes:
        await _record(session, actor, "automation", row.id, "updated", now, changes)
    return row


async def delete_automation(
    session: AsyncSession, actor: Actor, automation_id: uuid.UUID, now: datetime
) -> None:
    """Delete an automation (tasks it made keep existing)."""
    _require_admin(actor)
    row = await _automation(session, actor, automation_id)
    values = _automation_values(row) | {"stageId": row.stage_id}
    await session.execute(delete(Automation).where(Automation.id == row.id))
    await _record(
        session,
        actor,
        "automation",
        row.id,
        "deleted",
        now,
        {key: [audit.json_value(value), None] for key, value in values.items()},
    )


# --- lead forms ---------------------------------------------------------------------------------


def new_form_key() -> str:
    """An unguessable form key (32 URL-safe characters)."""
    return secrets.token_urlsafe(24)


def lead_form_out(row: LeadForm, base_url: str) -> schemas.LeadFormOut:
    """The API shape of a lead form; ``base_url`` (scheme and host the caller used) makes the
    embed code absolute."""
    path = f"/f/{row.key}"
    src = base_url.rstrip("/") + path
    embed = (
        f'<iframe src="{escape(src)}" title="{escape(row.name)}" width="100%" height="640" '
        'style="border:0;max-width:480px" loading="lazy"></iframe>'
    )
    return schemas.LeadFormOut(
        id=row.id,
        key=row.key,
        name=row.name,
        pipeline_id=row.pipeline_id,
        source=row.source,
        assignment=row.assignment,
        deal_title=row.deal_title,
        thank_you=row.thank_you,
        is_active=row.is_active,
        url=path,
        embed_code=embed,
    )


def _form_values(row: LeadForm) -> dict[str, Any]:
    return {
        "name": row.name,
        "pipelineId": row.pipeline_id,
        "source": row.source,
        "assignment": row.assignment.value,
        "dealTitle": row.deal_title,
        "thankYou": row.thank_you,
        "isActive": row.is_active,
    }


async def list_lead_forms(session: AsyncSession, actor: Actor) -> list[LeadForm]:
    """The organisation's lead forms by name."""
    rows = await session.scalars(
        select(LeadForm)
        .where(LeadForm.organization_id == actor.organization_id)
        .order_by(LeadForm.name, LeadForm.created_at, LeadForm.id)
    )
    return list(rows.all())


async def _lead_form(session: AsyncSession, actor: Actor, form_id: uuid.UUID) -> LeadForm:
    row = await session.scalar(
        select(LeadForm)
        .where(LeadForm.id == form_id, LeadForm.organization_id == actor.organization_id)
        .with_for_update()
    )
    if row is None:
        raise NotFound("Lead form not found")
    return row


async def create_lead_form(
    session: AsyncSession, actor: Actor, data: schemas.LeadFormIn, now: datetime
) -> LeadForm:
    """Create a lead form on the given pipeline (default: the organisation's default)."""
    _require_admin(actor)
    if data.pipeline_id is None:
        pipeline_id = (await default_pipeline(session, actor.organization_id)).id
    else:
        found = await session.scalar(
            select(Pipeline.id).where(
                Pipeline.id == data.pipeline_id,
                Pipeline.organization_id == actor.organization_id,
            )
        )
        if found is None:
            raise InvalidInput.on("pipelineId", "no such pipeline in the organisation")
        pipeline_id = found
    row = LeadForm(
        id=uuid.uuid4(),
        organization_id=actor.organization_id,
        key=new_form_key(),
        name=data.name,
        pipeline_id=pipeline_id,
        source=data.source,
        assignment=data.assignment,
        deal_title=data.deal_title,
        thank_you=data.thank_you,
        is_active=True,
    )
    session.add(row)
    await session.flush()
    await _record(session, actor, "lead_form", row.id, "created", now, _created(_form_values(row)))
    return row


async def update_lead_form(
    session: AsyncSession,
    actor: Actor,
    form_id: uuid.UUID,
    data: LeadFormUpdate,
    now: datetime,
) -> LeadForm:
    """Change a lead form's texts, assignment rule or whether it takes requests."""
    _require_admin(actor)
    row = await _lead_form(session, actor, form_id)
    before = _form_values(row)
    if not isinstance(data.name, msgspec.UnsetType):
        row.name = data.name
    if not isinstance(data.source, msgspec.UnsetType):
        row.source = data.source
    if not isinstance(data.assignment, msgspec.UnsetType):
        row.assignment = data.assignment
    if not isinstance(data.deal_title, msgspec.UnsetType):
        row.deal_title = data.deal_title
    if not isinstance(data.thank_you, msgspec.UnsetType):
        row.thank_you = data.thank_you
    if not isinstance(data.is_active, msgspec.UnsetType):
        row.is_active = data.is_active
    await session.flush()
    changes = audit.diff(before, _form_values(row))
    if changes:
        await _record(session, actor, "lead_form", row.id, "updated", now, changes)
    return row


async def rotate_lead_form_key(
    session: AsyncSession, actor: Actor, form_id: uuid.UUID, now: datetime
) -> LeadForm:
    """Give the form a new key: the old URL and embed code stop working at once."""
    _require_admin(actor)
    row = await _lead_form(session, actor, form_id)
    row.key = new_form_key()
    await session.flush()
    # The key itself is not logged: it is the form's only credential.
    await _record(session, actor, "lead_form", row.id, "key_rotated", now, {})
    return row


# --- territories --------------------------------------------------------------------------------


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def _position(value: Any, path: str) -> list[float]:
    if not isinstance(value, list) or len(value) not in (2, 3) or not all(map(_is_number, value)):
        raise InvalidInput.on(
            "area", f"{path}: a position is [longitude, latitude] (numbers), got {value!r}"[:300]
        )
    lon, lat = float(value[0]), float(value[1])
    if not -180 <= lon <= 180:
        raise InvalidInput.on("area", f"{path}: longitude {lon} is outside -180..180")
    if not -90 <= lat <= 90:
        raise InvalidInput.on("area", f"{path}: latitude {lat} is outside -90..90")
    return [lon, lat]


def _polygon(value: Any, path: str) -> list[list[list[float]]]:
    if not isinstance(value, list) or not value:
        raise InvalidInput.on("area", f"{path}: a polygon is a non-empty list of rings")
    rings = []
    for r, ring in enumerate(value):
        ring_path = f"{path}[{r}]"
        if not isinstance(ring, list):
            raise InvalidInput.on("area", f"{ring_path}: a ring is a list of positions")
        if len(ring) < 4:
            raise InvalidInput.on(
                "area", f"{ring_path}: a ring needs at least 4 positions, has {len(ring)}"
            )
        positions = [_position(p, f"{ring_path}[{i}]") for i, p in enumerate(ring)]
        if positions[0] != positions[-1]:
            raise InvalidInput.on(
                "area", f"{ring_path}: the ring is not closed (first and last positions differ)"
            )
        rings.append(positions)
    return rings


def parse_area(raw: Mapping[str, Any]) -> dict[str, Any]:
    """Check a GeoJSON Polygon or MultiPolygon; returns it as a 2-D MultiPolygon. 422 on
    ``area`` with the reason (and where, as a path into ``coordinates``) otherwise."""
    kind = raw.get("type")
    coordinates = raw.get("coordinates")
    if kind not in ("Polygon", "MultiPolygon"):
        raise InvalidInput.on("area", f"type must be Polygon or MultiPolygon, got {kind!r}"[:300])
    if kind == "Polygon":
        polygons = [_polygon(coordinates, "coordinates")]
    else:
        if not isinstance(coordinates, list) or not coordinates:
            raise InvalidInput.on("area", "coordinates: a MultiPolygon needs at least one polygon")
        polygons = [_polygon(p, f"coordinates[{i}]") for i, p in enumerate(coordinates)]
    count = sum(len(ring) for polygon in polygons for ring in polygon)
    if count > MAX_AREA_POSITIONS:
        raise InvalidInput.on("area", f"more than {MAX_AREA_POSITIONS} positions")
    return {"type": "MultiPolygon", "coordinates": polygons}


def territory_out(row: Territory, area_geojson: str) -> schemas.TerritoryOut:
    """The API shape of a territory; ``area_geojson`` is PostGIS's ``ST_AsGeoJSON`` text."""
    area: dict[str, Any] = msgspec.json.decode(area_geojson)
    return schemas.TerritoryOut(id=row.id, name=row.name, manager_id=row.manager_id, area=area)


async def list_territories(session: AsyncSession, actor: Actor) -> list[schemas.TerritoryOut]:
    """The organisation's territories by name (admins and managers)."""
    actor.require_role(Role.ADMIN, Role.MANAGER)
    rows = await session.execute(
        select(Territory, func.ST_AsGeoJSON(Territory.area))
        .where(Territory.organization_id == actor.organization_id)
        .order_by(Territory.name, Territory.created_at, Territory.id)
    )
    return [territory_out(row, geojson) for row, geojson in rows.all()]


async def create_territory(
    session: AsyncSession, actor: Actor, data: schemas.TerritoryIn, now: datetime
) -> schemas.TerritoryOut:
    """Create a territory whose leads go to ``managerId`` (an active manager)."""
    _require_admin(actor)
    area = parse_area(data.area)
    manager = await session.scalar(
        select(User.id).where(
            User.id == data.manager_id,
            User.organization_id == actor.organization_id,
            User.role == Role.MANAGER,
            User.is_active,
        )
    )
    if manager is None:
        raise InvalidInput.on("managerId", "no such active manager in the organisation")
    geojson = cast(msgspec.json.encode(area).decode(), Text)
    geometry = func.ST_Multi(func.ST_GeomFromGeoJSON(geojson))
    reason = await session.scalar(select(func.ST_IsValidReason(geometry)))
    if reason != "Valid Geometry":
        raise InvalidInput.on("area", f"not a valid polygon: {reason}")
    territory_id = uuid.uuid4()
    await session.execute(
        insert(Territory).values(
            id=territory_id,
            organization_id=actor.organization_id,
            name=data.name,
            manager_id=manager,
            area=cast(geometry, Geography(geometry_type="MULTIPOLYGON", srid=4326)),
        )
    )
    row, stored = (
        await session.execute(
            select(Territory, func.ST_AsGeoJSON(Territory.area)).where(Territory.id == territory_id)
        )
    ).one()
    await _record(
        session,
        actor,
        "territory",
        territory_id,
        "created",
        now,
        _created({"name": row.name, "managerId": row.manager_id, "area": area}),
    )
    return territory_out(row, stored)


async def delete_territory(
    session: AsyncSession, actor: Actor, territory_id: uuid.UUID, now: datetime
) -> None:
    """Delete a territory (its leads go round robin again)."""
    _require_admin(actor)
    row = await session.scalar(
        select(Territory).where(
            Territory.id == territory_id, Territory.organization_id == actor.organization_id
        )
    )
    if row is None:
        raise NotFound("Territory not found")
    values = {"name": row.name, "managerId": row.manager_id}
    await session.execute(delete(Territory).where(Territory.id == row.id))
    await _record(
        session,
        actor,
        "territory",
        row.id,
        "deleted",
        now,
        {key: [audit.json_value(value), None] for key, value in values.items()},
    )


# --- document templates -------------------------------------------------------------------------


async def list_document_templates(
    session: AsyncSession, actor: Actor
) -> list[document_schemas.TemplateOut]:
    """The organisation's document templates (admins and managers)."""
    actor.require_role(Role.ADMIN, Role.MANAGER)
    return await documents.list_templates(session, actor)


async def save_document_template(
    session: AsyncSession,
    actor: Actor,
    data: document_schemas.TemplateIn,
    now: datetime,
    template_id: uuid.UUID | None = None,
) -> document_schemas.TemplateOut:
    """Create or replace a template (admins; checked, audited and versioned by
    ``backend.documents.services.save_template``)."""
    _require_admin(actor)
    row = await documents.save_template(session, actor, data, now, template_id)
    return documents.template_out(row)
