"""Indexes for the live team board (tasks in progress, open visits by planned time); the
(organization, time) index of pings is dropped: every query reads pings by user and time (the
primary key) or by time (BRIN), and each index costs ingest about a tenth of its speed.

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-24 20:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.execute("DROP INDEX IF EXISTS ix_pings_org_time")
    op.create_index(
        "ix_tasks_in_progress",
        "tasks",
        ["organization_id", "assignee_id"],
        postgresql_where=sa.text("status = 'in_progress'"),
    )
    op.create_index(
        "ix_tasks_open_visits_planned",
        "tasks",
        ["organization_id", sa.text("coalesce(window_start, due_at)")],
        postgresql_where=sa.text(
            "status = 'open' AND kind IN ('measurement', 'installation', 'visit')"
        ),
    )


def downgrade() -> None:
    op.execute("CREATE INDEX ix_pings_org_time ON pings (organization_id, recorded_at)")
    op.drop_index("ix_tasks_open_visits_planned", table_name="tasks")
    op.drop_index("ix_tasks_in_progress", table_name="tasks")
