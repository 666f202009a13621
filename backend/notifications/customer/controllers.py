"""JSON API of customer notifications: "on my way", revoking a tracking link, a visit's
feedback, and admins' message templates."""

from __future__ import annotations

import uuid

from litestar import Controller, delete, get, post, put
from sqlalchemy.ext.asyncio import AsyncSession

from backend.config import Settings
from backend.lib.clock import Clock
from backend.lib.tenancy import Actor
from backend.notifications.customer import actions, schemas, template_admin


class VisitMessageController(Controller):
    """What the customer of a visit is told."""

    path = "/api/v1/tasks"
    tags = ["customer notifications"]

    @post("/{task_id:uuid}/on-my-way", status_code=200)
    async def on_my_way(
        self,
        task_id: uuid.UUID,
        db_session: AsyncSession,
        actor: Actor,
        clock: Clock,
        settings: Settings,
        data: schemas.OnMyWayIn | None = None,
    ) -> schemas.OnMyWayOut:
        """The assignee sets off: the customer gets the ETA (the route's, or ``etaMinutes``
        from now) and a tracking link. Sent once; again only after the link was revoked."""
        return await actions.announce(
            db_session,
            actor,
            task_id,
            data or schemas.OnMyWayIn(),
            clock.now(),
            settings.public_base_url,
        )

    @post("/{task_id:uuid}/tracking-link/revoke", status_code=200)
    async def revoke_tracking_link(
        self, task_id: uuid.UUID, db_session: AsyncSession, actor: Actor, clock: Clock
    ) -> schemas.RevokedOut:
        """Stop the visit's tracking links at once (assignee, their manager, admins)."""
        return await actions.revoke_tracking(db_session, actor, task_id, clock.now())

    @get("/{task_id:uuid}/feedback")
    async def feedback(
        self, task_id: uuid.UUID, db_session: AsyncSession, actor: Actor
    ) -> schemas.FeedbackOut:
        """The customer's rating and comment on the visit (404 until given)."""
        return await actions.feedback_of(db_session, actor, task_id)


class CustomerTemplateController(Controller):
    """Admins' wording of customer messages per kind and language."""

    path = "/api/v1/admin/customer-templates"
    tags = ["customer notifications"]

    @get("/{kind:str}/{language:str}")
    async def get_template(
        self, kind: str, language: str, db_session: AsyncSession, actor: Actor
    ) -> schemas.TemplateOut:
        """The template in use (the organisation's own, else the default) and its variables."""
        return await template_admin.get_template(
            db_session, actor, template_admin.check_kind(kind), language
        )

    @put("/{kind:str}/{language:str}")
    async def put_template(
        self,
        kind: str,
        language: str,
        data: schemas.TemplateIn,
        db_session: AsyncSession,
        actor: Actor,
        clock: Clock,
    ) -> schemas.TemplateOut:
        """Save the organisation's own template (checked by rendering it with sample values)."""
        return await template_admin.put_template(
            db_session, actor, template_admin.check_kind(kind), language, data, clock.now()
        )

    @delete("/{kind:str}/{language:str}")
    async def reset_template(
        self, kind: str, language: str, db_session: AsyncSession, actor: Actor
    ) -> None:
        """Go back to the default wording."""
        await template_admin.reset_template(
            db_session, actor, template_admin.check_kind(kind), language
        )


CONTROLLERS = [VisitMessageController, CustomerTemplateController]
