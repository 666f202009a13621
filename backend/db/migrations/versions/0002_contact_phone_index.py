"""An index for exact phone look-ups (a whole number typed into search).

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-24 14:50:00
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_index("ix_contacts_org_phone", "contacts", ["organization_id", "phone"])


def downgrade() -> None:
    op.drop_index("ix_contacts_org_phone", table_name="contacts")
