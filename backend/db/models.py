"""Imports every domain's models so the metadata is complete (Alembic, tests)."""

from backend.accounts.models import AuthSession, Organization, Team, TeamMember, User
from backend.customers.models import Contact, Customer, Interaction, Site
from backend.db.base import Base

__all__ = [
    "AuthSession",
    "Base",
    "Contact",
    "Customer",
    "Interaction",
    "Organization",
    "Site",
    "Team",
    "TeamMember",
    "User",
]
