"""Who is calling, and what they may see. Every query of tenant data goes through ``scope``.

Visibility rules (one place):
- every row: only the caller's organisation (a row of another organisation is "not found");
- admin: everything in the organisation;
- manager: rows owned by themselves or by members of the teams they lead;
- field staff: rows owned by (assigned to) themselves.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any, TypeVar

from sqlalchemy import Select
from sqlalchemy.orm import InstrumentedAttribute

from backend.accounts.models import Role
from backend.lib.errors import Forbidden

S = TypeVar("S", bound=Select[Any])


@dataclass(frozen=True, slots=True)
class Actor:
    """The authenticated caller, loaded once per request."""

    user_id: uuid.UUID
    organization_id: uuid.UUID
    role: Role
    skills: frozenset[str]
    time_zone: str
    # The organisation's settings every request may need, loaded with the user.
    org_time_zone: str
    phone_region: str | None
    # Users whose work this actor may see: self, plus members of led teams for a manager.
    team_member_ids: frozenset[uuid.UUID]

    @property
    def is_admin(self) -> bool:
        """Admins see and change everything of their organisation."""
        return self.role is Role.ADMIN

    def visible_owner_ids(self) -> frozenset[uuid.UUID] | None:
        """Owners whose rows the actor sees; None means every row of the organisation."""
        if self.role is Role.ADMIN:
            return None
        return self.team_member_ids | {self.user_id}

    def may_see_owner(self, owner_id: uuid.UUID | None) -> bool:
        """Whether a row owned by ``owner_id`` is visible to the actor."""
        visible = self.visible_owner_ids()
        return visible is None or (owner_id is not None and owner_id in visible)

    def require_role(self, *roles: Role) -> None:
        """Refuse (403) unless the actor has one of ``roles``."""
        if self.role not in roles:
            raise Forbidden(f"This needs the role {' or '.join(r.value for r in roles)}")


def scope(
    stmt: S,
    actor: Actor,
    organization_column: InstrumentedAttribute[uuid.UUID],
    owner_column: InstrumentedAttribute[Any] | None = None,
) -> S:
    """Restrict ``stmt`` to the actor's organisation and, when the model has an owner, to the
    owners the actor may see."""
    stmt = stmt.where(organization_column == actor.organization_id)
    if owner_column is not None:
        visible = actor.visible_owner_ids()
        if visible is not None:
            stmt = stmt.where(owner_column.in_(visible))
    return stmt
