"""Admin pages for the sales set-up: pipelines and their stages (add, rename, reorder, won/lost,
entry rules), each stage's automations (create, edit, delete) and the lead forms with their embed
code. Admins only; every change goes through ``backend.sales.config_services`` exactly as the
JSON API does (automation configs are checked by ``backend.sales.automations.parse_config``), and
a refused form comes back with the reason next to its field."""

from __future__ import annotations

import re
import uuid
from typing import Any

from litestar import Controller, Request, get, post
from litestar.datastructures import FormMultiDict
from litestar.response import Redirect, Template
from sqlalchemy.ext.asyncio import AsyncSession

from backend.accounts.admin_pages import PAGE_ERRORS, admin_me, all_users
from backend.accounts.models import Role, Skill, User
from backend.lib.clock import Clock
from backend.lib.errors import AppError, FieldError, InvalidInput, NotFound
from backend.lib.forms import (
    FORM_ERROR,
    checked,
    choices,
    field_errors,
    in_savepoint,
    optional,
    plain_reason,
    read_form,
    text,
    to_input,
    whole_number,
)
from backend.lib.tenancy import Actor
from backend.sales import config_services as services
from backend.sales import schemas
from backend.sales.config_services import POSITION_STEP, LeadFormUpdate, PipelineUpdate
from backend.sales.models import AssignmentRule, AutomationAction, Requirement, StageKind
from backend.tasks.models import TaskKind

STAGE_KINDS = [(StageKind.OPEN, "Open"), (StageKind.WON, "Won"), (StageKind.LOST, "Lost")]
REQUIREMENTS = [
    (Requirement.SCHEDULED_TIME, "a scheduled time"),
    (Requirement.SITE, "a site"),
    (Requirement.AMOUNT, "an amount"),
    (Requirement.LINE_ITEMS, "line items"),
    (Requirement.ATTACHMENT, "an attachment"),
    (Requirement.DOCUMENT, "a generated document"),
    (Requirement.LOST_REASON, "a lost reason"),
]
ROLE_NAMES = [("admin", "Admins"), ("manager", "Managers"), ("field", "Field staff")]
ACTIONS = {
    AutomationAction.CREATE_TASK: "Create a task",
    AutomationAction.NOTIFY: "Notify people",
    AutomationAction.GENERATE_DOCUMENT: "Generate a document",
}
TASK_KINDS = [(k.value, k.value.title()) for k in TaskKind]
ASSIGNEE_RULES = [
    ("owner", "The deal's owner"),
    ("user", "One person"),
    ("skill", "A field worker with a skill"),
    ("role", "Someone with a role"),
]
PICKS = [
    ("", "default"),
    ("route", "best fit on the day's route (skill only)"),
    ("fewest_open", "fewest open tasks"),
    ("round_robin", "round robin"),
]
DUE_FROM = [
    ("", "no deadline"),
    ("entered", "when the deal enters the stage"),
    ("scheduledStart", "the deal's scheduled start"),
    ("scheduledEnd", "the deal's scheduled end"),
]
RECIPIENTS = [
    ("owner", "the deal's owner"),
    ("owner_lead", "the owner's team lead"),
    ("admins", "the admins"),
    ("assignees", "the assignees of tasks made by this stage"),
]
ASSIGNMENTS = [
    (AssignmentRule.ROUND_ROBIN, "Round robin among managers"),
    (AssignmentRule.TERRITORY, "By territory (the manager of the area containing the site)"),
]
_MISSING = re.compile(r"missing required field `(\w+)`")


def _base_url(request: Request[Any, Any, Any]) -> str:
    return str(request.base_url).rstrip("/")


# --- automation forms ---------------------------------------------------------------------------


def automation_field(field: str, reason: str) -> str:
    """The form field of an automation error: ``config.assignee.pick`` → ``assigneePick``,
    ``config.due.from`` → ``dueFrom``; a missing required key names that key."""
    path = [p for p in field.split(".") if p]
    if path[:1] != ["config"]:
        return field
    path = path[1:]
    missing = _MISSING.search(reason)
    if missing:
        path.append(missing.group(1))
    if not path:
        return FORM_ERROR
    if path == ["assignee"]:
        return "assigneeRule"
    if path == ["due"]:
        return "dueFrom"
    return path[0] + "".join(p[:1].upper() + p[1:] for p in path[1:])


def automation_errors(exc: AppError) -> dict[str, str]:
    """``{form field: reason}`` of a refused automation."""
    found: dict[str, str] = {}
    for error in exc.errors:
        found.setdefault(automation_field(error.field, error.reason), plain_reason(error.reason))
    return found or {FORM_ERROR: exc.detail}


def automation_config(
    action: AutomationAction, form: FormMultiDict, errors: list[FieldError]
) -> dict[str, Any]:
    """The ``config`` an automation form describes, in the API's shape; numbers that are not
    whole numbers are added to ``errors`` (every other rule is ``parse_config``'s)."""
    if action is AutomationAction.NOTIFY:
        config: dict[str, Any] = {
            "recipients": choices(form, "recipients"),
            "title": text(form, "title"),
            "urgent": checked(form, "urgent"),
        }
        if optional(form, "body"):
            config["body"] = text(form, "body")
        return config
    if action is AutomationAction.GENERATE_DOCUMENT:
        return {"template": text(form, "template"), "notifyOwner": checked(form, "notifyOwner")}
    rule = text(form, "assigneeRule") or "owner"
    assignee: dict[str, Any] = {"rule": rule}
    if rule == "user":
        assignee["userId"] = text(form, "assigneeUserId")
    elif rule == "skill":
        assignee["skill"] = text(form, "assigneeSkill")
    elif rule == "role":
        assignee["role"] = text(form, "assigneeRole")
    if rule in ("skill", "role") and text(form, "assigneePick"):
        assignee["pick"] = text(form, "assigneePick")
    config = {"kind": text(form, "kind"), "title": text(form, "title"), "assignee": assignee}
    if optional(form, "description"):
        config["description"] = text(form, "description")
    if text(form, "dueFrom"):
        config["due"] = {
            "from": text(form, "dueFrom"),
            "offsetMinutes": whole_number(form, "dueOffsetMinutes", errors, 0),
            "businessHours": checked(form, "dueBusinessHours"),
        }
    if checked(form, "window"):
        config["window"] = "scheduled"
    for name in ("durationMinutes", "escalateAfterMinutes", "priority"):
        number = whole_number(form, name, errors)
        if number is not None:
            config[name] = number
    return config


def automation_values(
    action: AutomationAction, name: str, position: int, is_active: bool, config: dict[str, Any]
) -> dict[str, Any]:
    """Form values of an automation (the inverse of ``automation_config``)."""
    values: dict[str, Any] = {
        "name": name,
        "position": position,
        "isActive": is_active,
        "title": config.get("title", ""),
    }
    if action is AutomationAction.NOTIFY:
        values |= {
            "recipients": list(config.get("recipients", [])),
            "body": config.get("body") or "",
            "urgent": bool(config.get("urgent")),
        }
    elif action is AutomationAction.GENERATE_DOCUMENT:
        values |= {
            "template": config.get("template", ""),
            "notifyOwner": bool(config.get("notifyOwner", True)),
        }
    else:
        assignee = config.get("assignee") or {"rule": "owner"}
        due = config.get("due") or {}
        values |= {
            "kind": config.get("kind", ""),
            "description": config.get("description") or "",
            "assigneeRule": assignee.get("rule", "owner"),
            "assigneeUserId": str(assignee.get("userId", "")),
            "assigneeSkill": assignee.get("skill", ""),
            "assigneeRole": assignee.get("role", ""),
            "assigneePick": assignee.get("pick", ""),
            "dueFrom": due.get("from", ""),
            "dueOffsetMinutes": due.get("offsetMinutes", 0),
            "dueBusinessHours": bool(due.get("businessHours")),
            "window": config.get("window") == "scheduled",
            "durationMinutes": config.get("durationMinutes", 60),
            "escalateAfterMinutes": config.get("escalateAfterMinutes"),
            "priority": config.get("priority", 0),
        }
    return values


def _posted_values(action: AutomationAction, form: FormMultiDict) -> dict[str, Any]:
    """What was typed, to show the refused form again as it was."""
    values: dict[str, Any] = {key: text(form, key) for key in form}
    values["isActive"] = checked(form, "isActive")
    values["recipients"] = choices(form, "recipients")
    for flag in ("urgent", "notifyOwner", "dueBusinessHours", "window"):
        values[flag] = checked(form, flag)
    return values


# --- page controller ----------------------------------------------------------------------------


class SalesConfigPages(Controller):
    """``/admin/pipelines``, ``/admin/stages/...``, ``/admin/automations/...`` and
    ``/admin/lead-forms``."""

    path = "/admin"
    include_in_schema = False
    exception_handlers = PAGE_ERRORS

    # --- pipelines ------------------------------------------------------------------------

    async def _pipelines_page(
        self,
        session: AsyncSession,
        actor: Actor,
        me: User,
        *,
        form_key: str = "",
        values: dict[str, Any] | None = None,
        errors: dict[str, str] | None = None,
        status_code: int = 200,
        saved: bool = False,
    ) -> Template:
        pipelines = await services.list_pipelines(session, actor)
        return Template(
            "admin/pipelines.html",
            context={
                "me": me,
                "pipelines": pipelines,
                "kinds": STAGE_KINDS,
                "form_key": form_key,
                "v": values or {},
                "errors": errors or {},
                "saved": saved,
            },
            status_code=status_code,
        )

    @get("/pipelines")
    async def pipelines(
        self, db_session: AsyncSession, actor: Actor, saved: bool = False
    ) -> Template:
        """Every pipeline with its stages in order and each stage's automations."""
        me = await admin_me(db_session, actor)
        return await self._pipelines_page(db_session, actor, me, saved=saved)

    @post("/pipelines", status_code=303)
    async def create_pipeline(
        self, request: Request[Any, Any, Any], db_session: AsyncSession, actor: Actor, clock: Clock
    ) -> Redirect | Template:
        """Create a pipeline; its stages are typed one per line."""
        me = await admin_me(db_session, actor)
        form = await read_form(request)
        stage_names = [line.strip() for line in text(form, "stages").splitlines() if line.strip()]
        values = {
            "name": text(form, "name"),
            "isDefault": checked(form, "isDefault"),
            "stages": [{"name": name} for name in stage_names],
        }
        try:
            data = to_input(values, schemas.PipelineIn)
            await in_savepoint(
                db_session, lambda: services.create_pipeline(db_session, actor, data, clock.now())
            )
        except AppError as exc:
            errors = {
                ("stages" if field.startswith("stages") else field): reason
                for field, reason in field_errors(exc).items()
            }
            return await self._pipelines_page(
                db_session,
                actor,
                me,
                form_key="new",
                values=values | {"stages": "\n".join(stage_names)},
                errors=errors,
                status_code=exc.status,
            )
        return Redirect("/admin/pipelines?saved=1", status_code=303)

    @post("/pipelines/{pipeline_id:uuid}", status_code=303)
    async def update_pipeline(
        self,
        pipeline_id: uuid.UUID,
        request: Request[Any, Any, Any],
        db_session: AsyncSession,
        actor: Actor,
        clock: Clock,
    ) -> Redirect | Template:
        """Rename a pipeline or make it the default."""
        me = await admin_me(db_session, actor)
        await services.get_pipeline(db_session, actor, pipeline_id)
        form = await read_form(request)
        values: dict[str, Any] = {"name": text(form, "name")}
        if checked(form, "isDefault"):
            values["isDefault"] = True
        try:
            data = to_input(values, PipelineUpdate)
            await in_savepoint(
                db_session,
                lambda: services.update_pipeline(db_session, actor, pipeline_id, data, clock.now()),
            )
        except AppError as exc:
            return await self._pipelines_page(
                db_session,
                actor,
                me,
                form_key=f"pipeline-{pipeline_id}",
                values=values,
                errors=field_errors(exc),
                status_code=exc.status,
            )
        return Redirect("/admin/pipelines?saved=1", status_code=303)

    @post("/pipelines/{pipeline_id:uuid}/stages", status_code=303)
    async def add_stage(
        self,
        pipeline_id: uuid.UUID,
        request: Request[Any, Any, Any],
        db_session: AsyncSession,
        actor: Actor,
        clock: Clock,
    ) -> Redirect | Template:
        """Add a stage after the pipeline's last one."""
        me = await admin_me(db_session, actor)
        await services.get_pipeline(db_session, actor, pipeline_id)
        form = await read_form(request)
        values = {"name": text(form, "name"), "kind": text(form, "kind") or "open"}
        try:
            data = to_input(values, schemas.StageIn)
            stage = await in_savepoint(
                db_session,
                lambda: services.add_stage(db_session, actor, pipeline_id, data, clock.now()),
            )
        except AppError as exc:
            return await self._pipelines_page(
                db_session,
                actor,
                me,
                form_key=f"stage-{pipeline_id}",
                values=values,
                errors=field_errors(exc),
                status_code=exc.status,
            )
        return Redirect(f"/admin/stages/{stage.id}?saved=1", status_code=303)

    # --- stages ---------------------------------------------------------------------------

    async def _stage_page(
        self,
        session: AsyncSession,
        actor: Actor,
        me: User,
        stage_id: uuid.UUID,
        *,
        values: dict[str, Any] | None = None,
        errors: dict[str, str] | None = None,
        status_code: int = 200,
        saved: bool = False,
    ) -> Template:
        stage_row = await services.get_stage(session, actor, stage_id)
        pipeline = await services.pipeline_out(
            session, await services.get_pipeline(session, actor, stage_row.pipeline_id)
        )
        stage = next(s for s in pipeline.stages if s.id == stage_id)
        if values is None:
            values = {
                "name": stage.name,
                "kind": stage.kind.value,
                "requirements": list(stage.requirements),
                "allowedFromMode": "any" if stage.allowed_from is None else "only",
                "allowedFrom": [str(i) for i in stage.allowed_from or []],
                "entryRolesMode": "any" if stage.entry_roles is None else "only",
                "entryRoles": list(stage.entry_roles or []),
            }
        return Template(
            "admin/stage.html",
            context={
                "me": me,
                "pipeline": pipeline,
                "stage": stage,
                "others": [s for s in pipeline.stages if s.id != stage_id],
                "names": {s.id: s.name for s in pipeline.stages},
                "kinds": STAGE_KINDS,
                "requirements": REQUIREMENTS,
                "role_names": ROLE_NAMES,
                "actions": ACTIONS,
                "v": values,
                "errors": errors or {},
                "saved": saved,
            },
            status_code=status_code,
        )

    @get("/stages/{stage_id:uuid}")
    async def stage(
        self, stage_id: uuid.UUID, db_session: AsyncSession, actor: Actor, saved: bool = False
    ) -> Template:
        """A stage's name, kind, entry rules and automations."""
        me = await admin_me(db_session, actor)
        return await self._stage_page(db_session, actor, me, stage_id, saved=saved)

    @post("/stages/{stage_id:uuid}", status_code=303)
    async def update_stage(
        self,
        stage_id: uuid.UUID,
        request: Request[Any, Any, Any],
        db_session: AsyncSession,
        actor: Actor,
        clock: Clock,
    ) -> Redirect | Template:
        """Save a stage's name, kind and entry rules."""
        me = await admin_me(db_session, actor)
        await services.get_stage(db_session, actor, stage_id)
        form = await read_form(request)
        shown = {
            "name": text(form, "name"),
            "kind": text(form, "kind"),
            "requirements": choices(form, "requirements"),
            "allowedFromMode": text(form, "allowedFromMode") or "any",
            "allowedFrom": choices(form, "allowedFrom"),
            "entryRolesMode": text(form, "entryRolesMode") or "any",
            "entryRoles": choices(form, "entryRoles"),
        }
        body = {
            "name": shown["name"],
            "kind": shown["kind"],
            "requirements": shown["requirements"],
            "allowedFrom": shown["allowedFrom"] if shown["allowedFromMode"] == "only" else None,
            "entryRoles": shown["entryRoles"] if shown["entryRolesMode"] == "only" else None,
        }
        try:
            data = to_input(body, schemas.StageUpdate)
            await in_savepoint(
                db_session,
                lambda: services.update_stage(db_session, actor, stage_id, data, clock.now()),
            )
        except AppError as exc:
            return await self._stage_page(
                db_session,
                actor,
                me,
                stage_id,
                values=shown,
                errors=field_errors(exc),
                status_code=exc.status,
            )
        return Redirect(f"/admin/stages/{stage_id}?saved=1", status_code=303)

    @post("/stages/{stage_id:uuid}/move", status_code=303)
    async def move_stage(
        self,
        stage_id: uuid.UUID,
        request: Request[Any, Any, Any],
        db_session: AsyncSession,
        actor: Actor,
        clock: Clock,
    ) -> Redirect:
        """Move a stage one place up or down; the pipeline's stages are renumbered 0, 10,
        20, ... in the new order (each change audited by ``update_stage``)."""
        await admin_me(db_session, actor)
        stage = await services.get_stage(db_session, actor, stage_id)
        form = await read_form(request)
        direction = text(form, "direction")
        if direction not in ("up", "down"):
            raise InvalidInput.on("direction", "must be up or down")
        pipeline = await services.pipeline_out(
            db_session, await services.get_pipeline(db_session, actor, stage.pipeline_id)
        )
        order = list(pipeline.stages)
        index = next(i for i, s in enumerate(order) if s.id == stage_id)
        other = index - 1 if direction == "up" else index + 1
        if 0 <= other < len(order):
            order[index], order[other] = order[other], order[index]
            for position, item in enumerate(order):
                if item.position != position * POSITION_STEP:
                    await services.update_stage(
                        db_session,
                        actor,
                        item.id,
                        schemas.StageUpdate(position=position * POSITION_STEP),
                        clock.now(),
                    )
        return Redirect(f"/admin/pipelines#stage-{stage_id}", status_code=303)

    @post("/stages/{stage_id:uuid}/delete", status_code=303)
    async def delete_stage(
        self, stage_id: uuid.UUID, db_session: AsyncSession, actor: Actor, clock: Clock
    ) -> Redirect | Template:
        """Delete a stage; refused (shown on its page) while deals are at it or have passed
        through it, or when it is the pipeline's last open stage."""
        me = await admin_me(db_session, actor)
        await services.get_stage(db_session, actor, stage_id)
        try:
            await in_savepoint(
                db_session, lambda: services.delete_stage(db_session, actor, stage_id, clock.now())
            )
        except AppError as exc:
            reason = exc.detail
            return await self._stage_page(
                db_session,
                actor,
                me,
                stage_id,
                errors={"delete": reason},
                status_code=exc.status,
            )
        return Redirect("/admin/pipelines?saved=1", status_code=303)

    # --- automations ----------------------------------------------------------------------

    async def _automation_form(
        self,
        session: AsyncSession,
        actor: Actor,
        me: User,
        *,
        stage_id: uuid.UUID,
        action: AutomationAction,
        automation: schemas.AutomationOut | None,
        values: dict[str, Any],
        errors: dict[str, str],
        status_code: int = 200,
        saved: bool = False,
    ) -> Template:
        stage_row = await services.get_stage(session, actor, stage_id)
        pipeline = await services.get_pipeline(session, actor, stage_row.pipeline_id)
        users = [u for u in await all_users(session, actor) if u.is_active]
        template_names: list[str] = []
        if action is AutomationAction.GENERATE_DOCUMENT:
            templates = await services.list_document_templates(session, actor)
            template_names = sorted({"Invoice", *(t.name for t in templates if t.is_active)})
        return Template(
            "admin/automation_form.html",
            context={
                "me": me,
                "pipeline": pipeline,
                "stage": stage_row,
                "action": action,
                "action_label": ACTIONS[action],
                "automation": automation,
                "users": users,
                "skills": [s.value for s in Skill],
                "roles": [r.value for r in Role],
                "task_kinds": TASK_KINDS,
                "assignee_rules": ASSIGNEE_RULES,
                "picks": PICKS,
                "due_from": DUE_FROM,
                "recipients": RECIPIENTS,
                "template_names": template_names,
                "v": values,
                "errors": errors,
                "saved": saved,
            },
            status_code=status_code,
        )

    @get("/stages/{stage_id:uuid}/automations/new")
    async def new_automation(
        self,
        stage_id: uuid.UUID,
        db_session: AsyncSession,
        actor: Actor,
        action: AutomationAction = AutomationAction.CREATE_TASK,
    ) -> Template:
        """The form for a new automation of the given action."""
        me = await admin_me(db_session, actor)
        defaults: dict[AutomationAction, dict[str, Any]] = {
            AutomationAction.CREATE_TASK: {"kind": "call", "assignee": {"rule": "owner"}},
            AutomationAction.NOTIFY: {"recipients": ["owner"]},
            AutomationAction.GENERATE_DOCUMENT: {"template": "Invoice"},
        }
        values = automation_values(action, "", 0, True, defaults[action])
        return await self._automation_form(
            db_session,
            actor,
            me,
            stage_id=stage_id,
            action=action,
            automation=None,
            values=values,
            errors={},
        )

    @post("/stages/{stage_id:uuid}/automations", status_code=303)
    async def create_automation(
        self,
        stage_id: uuid.UUID,
        request: Request[Any, Any, Any],
        db_session: AsyncSession,
        actor: Actor,
        clock: Clock,
    ) -> Redirect | Template:
        """Add an automation to the stage (checked like the API's)."""
        me = await admin_me(db_session, actor)
        await services.get_stage(db_session, actor, stage_id)
        form = await read_form(request)
        try:
            action = AutomationAction(text(form, "action"))
        except ValueError as exc:
            raise InvalidInput.on("action", "unknown automation action") from exc
        problems: list[FieldError] = []
        config = automation_config(action, form, problems)
        body = {
            "name": text(form, "name"),
            "action": action.value,
            "config": config,
            "position": whole_number(form, "position", problems, 0),
            "isActive": checked(form, "isActive"),
        }
        try:
            if problems:
                raise InvalidInput("Some numbers are not whole numbers", errors=problems)
            data = to_input(body, schemas.AutomationIn)
            row = await in_savepoint(
                db_session,
                lambda: services.add_automation(db_session, actor, stage_id, data, clock.now()),
            )
        except AppError as exc:
            return await self._automation_form(
                db_session,
                actor,
                me,
                stage_id=stage_id,
                action=action,
                automation=None,
                values=_posted_values(action, form),
                errors=automation_errors(exc),
                status_code=exc.status,
            )
        return Redirect(f"/admin/automations/{row.id}?saved=1", status_code=303)

    async def _find_automation(
        self, session: AsyncSession, actor: Actor, automation_id: uuid.UUID
    ) -> schemas.AutomationOut:
        for pipeline in await services.list_pipelines(session, actor):
            for stage in pipeline.stages:
                for automation in stage.automations:
                    if automation.id == automation_id:
                        return automation
        raise NotFound("Automation not found")

    @get("/automations/{automation_id:uuid}")
    async def automation(
        self, automation_id: uuid.UUID, db_session: AsyncSession, actor: Actor, saved: bool = False
    ) -> Template:
        """One automation's settings."""
        me = await admin_me(db_session, actor)
        row = await self._find_automation(db_session, actor, automation_id)
        values = automation_values(row.action, row.name, row.position, row.is_active, row.config)
        return await self._automation_form(
            db_session,
            actor,
            me,
            stage_id=row.stage_id,
            action=row.action,
            automation=row,
            values=values,
            errors={},
            saved=saved,
        )

    @post("/automations/{automation_id:uuid}", status_code=303)
    async def update_automation(
        self,
        automation_id: uuid.UUID,
        request: Request[Any, Any, Any],
        db_session: AsyncSession,
        actor: Actor,
        clock: Clock,
    ) -> Redirect | Template:
        """Save an automation (its action stays; the config is checked again)."""
        me = await admin_me(db_session, actor)
        row = await self._find_automation(db_session, actor, automation_id)
        form = await read_form(request)
        problems: list[FieldError] = []
        body = {
            "name": text(form, "name"),
            "config": automation_config(row.action, form, problems),
            "position": whole_number(form, "position", problems, 0),
            "isActive": checked(form, "isActive"),
        }
        try:
            if problems:
                raise InvalidInput("Some numbers are not whole numbers", errors=problems)
            data = to_input(body, schemas.AutomationUpdate)
            await in_savepoint(
                db_session,
                lambda: services.update_automation(
                    db_session, actor, automation_id, data, clock.now()
                ),
            )
        except AppError as exc:
            return await self._automation_form(
                db_session,
                actor,
                me,
                stage_id=row.stage_id,
                action=row.action,
                automation=row,
                values=_posted_values(row.action, form),
                errors=automation_errors(exc),
                status_code=exc.status,
            )
        return Redirect(f"/admin/automations/{automation_id}?saved=1", status_code=303)

    @post("/automations/{automation_id:uuid}/delete", status_code=303)
    async def delete_automation(
        self, automation_id: uuid.UUID, db_session: AsyncSession, actor: Actor, clock: Clock
    ) -> Redirect:
        """Delete an automation (tasks it made stay)."""
        await admin_me(db_session, actor)
        row = await self._find_automation(db_session, actor, automation_id)
        await services.delete_automation(db_session, actor, automation_id, clock.now())
        return Redirect(f"/admin/stages/{row.stage_id}?saved=1", status_code=303)

    # --- lead forms -----------------------------------------------------------------------

    async def _lead_forms_page(
        self,
        request: Request[Any, Any, Any],
        session: AsyncSession,
        actor: Actor,
        me: User,
        *,
        values: dict[str, Any] | None = None,
        errors: dict[str, str] | None = None,
        status_code: int = 200,
    ) -> Template:
        base = _base_url(request)
        forms = [
            services.lead_form_out(row, base)
            for row in await services.list_lead_forms(session, actor)
        ]
        pipelines = await services.list_pipelines(session, actor)
        return Template(
            "admin/lead_forms.html",
            context={
                "me": me,
                "forms": forms,
                "base": base,
                "pipelines": pipelines,
                "pipeline_names": {p.id: p.name for p in pipelines},
                "assignments": ASSIGNMENTS,
                "v": values or {},
                "errors": errors or {},
            },
            status_code=status_code,
        )

    @get("/lead-forms")
    async def lead_forms(
        self, request: Request[Any, Any, Any], db_session: AsyncSession, actor: Actor
    ) -> Template:
        """The lead forms with their public URLs and embed codes, and the form for a new one."""
        me = await admin_me(db_session, actor)
        return await self._lead_forms_page(request, db_session, actor, me)

    @post("/lead-forms", status_code=303)
    async def create_lead_form(
        self, request: Request[Any, Any, Any], db_session: AsyncSession, actor: Actor, clock: Clock
    ) -> Redirect | Template:
        """Create a lead form."""
        me = await admin_me(db_session, actor)
        form = await read_form(request)
        values: dict[str, Any] = {
            "name": text(form, "name"),
            "pipelineId": optional(form, "pipelineId"),
            "assignment": text(form, "assignment") or AssignmentRule.ROUND_ROBIN.value,
        }
        for key in ("source", "dealTitle", "thankYou"):
            if optional(form, key):
                values[key] = text(form, key)
        try:
            data = to_input(values, schemas.LeadFormIn)
            row = await in_savepoint(
                db_session, lambda: services.create_lead_form(db_session, actor, data, clock.now())
            )
        except AppError as exc:
            return await self._lead_forms_page(
                request,
                db_session,
                actor,
                me,
                values=values,
                errors=field_errors(exc),
                status_code=exc.status,
            )
        return Redirect(f"/admin/lead-forms/{row.id}?saved=1", status_code=303)

    async def _lead_form_page(
        self,
        request: Request[Any, Any, Any],
        session: AsyncSession,
        actor: Actor,
        me: User,
        form_id: uuid.UUID,
        *,
        values: dict[str, Any] | None = None,
        errors: dict[str, str] | None = None,
        status_code: int = 200,
        saved: bool = False,
    ) -> Template:
        base = _base_url(request)
        rows = await services.list_lead_forms(session, actor)
        row = next((r for r in rows if r.id == form_id), None)
        if row is None:
            raise NotFound("Lead form not found")
        out = services.lead_form_out(row, base)
        if values is None:
            values = {
                "name": out.name,
                "source": out.source,
                "assignment": out.assignment.value,
                "dealTitle": out.deal_title,
                "thankYou": out.thank_you,
                "isActive": out.is_active,
            }
        pipeline = await services.get_pipeline(session, actor, out.pipeline_id)
        return Template(
            "admin/lead_form.html",
            context={
                "me": me,
                "form": out,
                "public_url": base + out.url,
                "pipeline": pipeline,
                "assignments": ASSIGNMENTS,
                "v": values,
                "errors": errors or {},
                "saved": saved,
            },
            status_code=status_code,
        )

    @get("/lead-forms/{form_id:uuid}")
    async def lead_form(
        self,
        form_id: uuid.UUID,
        request: Request[Any, Any, Any],
        db_session: AsyncSession,
        actor: Actor,
        saved: bool = False,
    ) -> Template:
        """One lead form's settings and its embed code."""
        me = await admin_me(db_session, actor)
        return await self._lead_form_page(request, db_session, actor, me, form_id, saved=saved)

    @post("/lead-forms/{form_id:uuid}", status_code=303)
    async def update_lead_form(
        self,
        form_id: uuid.UUID,
        request: Request[Any, Any, Any],
        db_session: AsyncSession,
        actor: Actor,
        clock: Clock,
    ) -> Redirect | Template:
        """Save a lead form's texts, assignment and whether it takes requests."""
        me = await admin_me(db_session, actor)
        form = await read_form(request)
        values: dict[str, Any] = {
            "name": text(form, "name"),
            "source": text(form, "source"),
            "assignment": text(form, "assignment"),
            "dealTitle": text(form, "dealTitle"),
            "thankYou": text(form, "thankYou"),
            "isActive": checked(form, "isActive"),
        }
        try:
            data = to_input(values, LeadFormUpdate)
            await in_savepoint(
                db_session,
                lambda: services.update_lead_form(db_session, actor, form_id, data, clock.now()),
            )
        except AppError as exc:
            return await self._lead_form_page(
                request,
                db_session,
                actor,
                me,
                form_id,
                values=values,
                errors=field_errors(exc),
                status_code=exc.status,
            )
        return Redirect(f"/admin/lead-forms/{form_id}?saved=1", status_code=303)

    @post("/lead-forms/{form_id:uuid}/rotate-key", status_code=303)
    async def rotate_key(
        self, form_id: uuid.UUID, db_session: AsyncSession, actor: Actor, clock: Clock
    ) -> Redirect:
        """Give the form a new key: the old URL and embed code stop working."""
        await admin_me(db_session, actor)
        await services.rotate_lead_form_key(db_session, actor, form_id, clock.now())
        return Redirect(f"/admin/lead-forms/{form_id}?saved=1", status_code=303)
