"""The tasks page (``/tasks``): mine or my teams', by status, kind and overdue, a page at a
time (the API's cursor). Everyone may open it; what it lists is the API's visibility (field
staff: their own tasks, managers: their teams', admins: the organisation's)."""

from __future__ import annotations

import uuid
from typing import Annotated, Any

from litestar import Controller, Request, get
from litestar.params import Parameter
from litestar.response import Redirect, Template
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from backend.accounts.models import Role, User
from backend.accounts.services import get_user
from backend.customers.models import Customer
from backend.lib.clock import Clock
from backend.lib.forms import is_htmx
from backend.lib.pagination import Cursor
from backend.lib.tenancy import Actor
from backend.tasks.models import VISIT_KINDS, TaskKind, TaskStatus
from backend.tasks.services import list_tasks, visible_task

PAGE_SIZE = 50
Choice = Annotated[str, Parameter(max_length=40)]


async def _labels(
    session: AsyncSession, actor: Actor, users: set[uuid.UUID], customers: set[uuid.UUID]
) -> tuple[dict[uuid.UUID, str], dict[uuid.UUID, str]]:
    """Names of the organisation's users and customers among the given ids."""
    names: dict[uuid.UUID, str] = {}
    if users:
        rows = await session.execute(
            select(User.id, User.full_name).where(
                User.id.in_(users), User.organization_id == actor.organization_id
            )
        )
        names = {r[0]: r[1] for r in rows.all()}
    customer_names: dict[uuid.UUID, str] = {}
    if customers:
        rows = await session.execute(
            select(Customer.id, Customer.name).where(
                Customer.id.in_(customers), Customer.organization_id == actor.organization_id
            )
        )
        customer_names = {r[0]: r[1] for r in rows.all()}
    return names, customer_names


class TaskPages(Controller):
    """``/tasks``."""

    path = "/tasks"
    include_in_schema = False

    @get("/")
    async def tasks(
        self,
        request: Request[Any, Any, Any],
        db_session: AsyncSession,
        actor: Actor,
        clock: Clock,
        whose: Annotated[str, Parameter(query="scope", max_length=40)] = "team",
        status: Choice = "",
        kind: Choice = "",
        overdue: Annotated[bool, Parameter()] = False,
        cursor: Cursor = None,
    ) -> Template:
        """Visible tasks, soonest due first, filtered; a wrong filter is shown at its field
        (422) instead of the list."""
        now = clock.now()
        me = await get_user(db_session, actor, actor.user_id)
        errors: dict[str, str] = {}
        if whose not in ("mine", "team"):
            errors["scope"] = "choose mine or team"
        status_value = TaskStatus(status) if status in TaskStatus.__members__.values() else None
        if status and status_value is None:
            errors["status"] = "choose one of " + ", ".join(s.value for s in TaskStatus)
        kind_value = TaskKind(kind) if kind in TaskKind.__members__.values() else None
        if kind and kind_value is None:
            errors["kind"] = "choose one of " + ", ".join(k.value for k in TaskKind)
        items: list[Any] = []
        next_cursor = None
        if not errors:
            page = await list_tasks(
                db_session,
                actor,
                now=now,
                assignee_id=actor.user_id if whose == "mine" else None,
                status=status_value,
                kind=kind_value,
                deal_id=None,
                overdue=overdue,
                limit=PAGE_SIZE,
                cursor=cursor,
            )
            items, next_cursor = page.items, page.next_cursor
        names, customers = await _labels(
            db_session,
            actor,
            {t.assignee_id for t in items if t.assignee_id},
            {t.customer_id for t in items if t.customer_id},
        )
        filters = {"scope": whose, "status": status, "kind": kind, "overdue": overdue}
        context = {
            "me": me,
            "tasks": items,
            "next_cursor": next_cursor,
            "first_page": cursor is None,
            "names": names,
            "customers": customers,
            "filters": filters,
            "errors": errors,
            "statuses": list(TaskStatus),
            "kinds": list(TaskKind),
        }
        partial = is_htmx(request)
        return Template(
            "tasks/_rows.html" if partial else "tasks/list.html",
            context=context,
            status_code=422 if errors else 200,
        )

    @get("/{task_id:uuid}", status_code=303)
    async def task(self, task_id: uuid.UUID, db_session: AsyncSession, actor: Actor) -> Redirect:
        """Where a task's link (``/tasks/{id}`` in notifications and pushes) leads: a visit's
        page, else the deal's card for managers and admins, else the caller's tasks; 404 when
        the caller may not see the task."""
        task = await visible_task(db_session, actor, task_id)
        if task.kind in VISIT_KINDS:
            return Redirect(f"/visits/{task.id}", status_code=303)
        if task.deal_id is not None and actor.role is not Role.FIELD:
            return Redirect(f"/deals/{task.deal_id}", status_code=303)
        return Redirect("/tasks?scope=mine", status_code=303)
