"""Admins' own wording of customer messages, per kind and language (the defaults otherwise)."""

from __future__ import annotations

import re
from datetime import datetime

from sqlalchemy import delete
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from backend.accounts.models import Role
from backend.lib.errors import InvalidInput
from backend.lib.tenancy import Actor
from backend.notifications.customer import render, schemas
from backend.notifications.customer.models import MessageKind, MessageTemplate

_LANGUAGE = re.compile(r"^[a-z]{2,3}$")


def check_kind(kind: str) -> MessageKind:
    """A message kind from the path; 422 naming the known ones otherwise."""
    try:
        return MessageKind(kind)
    except ValueError:
        known = ", ".join(k.value for k in MessageKind)
        raise InvalidInput.on("kind", f"one of {known}") from None


def check_language(language: str) -> str:
    """A language code as used for templates: two or three lower-case letters (ISO 639)."""
    if not _LANGUAGE.match(language):
        raise InvalidInput.on("language", "use a two- or three-letter ISO 639 code, e.g. en, ru")
    return language


async def get_template(
    session: AsyncSession, actor: Actor, kind: MessageKind, language: str
) -> schemas.TemplateOut:
    """The template in use for ``kind`` in ``language``: the organisation's or the default."""
    actor.require_role(Role.ADMIN)
    check_language(language)
    own = await session.get(
        MessageTemplate, (actor.organization_id, kind.value, language), populate_existing=True
    )
    if own is not None:
        return schemas.TemplateOut(
            kind=kind.value,
            language=language,
            subject=own.subject,
            text=own.text,
            html=own.html,
            source="organization",
            variables=list(render.VARIABLES),
            updated_at=own.updated_at,
        )
    default = render.default_template(kind, language)
    return schemas.TemplateOut(
        kind=kind.value,
        language=language,
        subject=default.subject,
        text=default.text,
        html=default.html,
        source="default",
        variables=list(render.VARIABLES),
    )


async def put_template(
    session: AsyncSession,
    actor: Actor,
    kind: MessageKind,
    language: str,
    data: schemas.TemplateIn,
    now: datetime,
) -> schemas.TemplateOut:
    """Save the organisation's template after rendering it once with sample values (an
    error in it is a 422 on the field at fault)."""
    actor.require_role(Role.ADMIN)
    check_language(language)
    template = render.TemplateText(data.subject, data.text, data.html)
    rendered = render.render(template, render.sample_context(language))
    if len(rendered.text) > render.MAX_SMS_CHARS:
        raise InvalidInput.on("text", f"renders longer than {render.MAX_SMS_CHARS} characters")
    values = {
        "subject": data.subject,
        "text": data.text,
        "html": data.html,
        "updated_at": now,
        "updated_by_id": actor.user_id,
    }
    await session.execute(
        insert(MessageTemplate)
        .values(organization_id=actor.organization_id, kind=kind.value, language=language, **values)
        .on_conflict_do_update(
            index_elements=[
                MessageTemplate.organization_id,
                MessageTemplate.kind,
                MessageTemplate.language,
            ],
            set_=values,
        )
    )
    return await get_template(session, actor, kind, language)


async def reset_template(
    session: AsyncSession, actor: Actor, kind: MessageKind, language: str
) -> None:
    """Go back to the default wording."""
    actor.require_role(Role.ADMIN)
    check_language(language)
    await session.execute(
        delete(MessageTemplate).where(
            MessageTemplate.organization_id == actor.organization_id,
            MessageTemplate.kind == kind.value,
            MessageTemplate.language == language,
        )
    )
