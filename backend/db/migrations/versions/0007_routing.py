"""Routing: each worker's planned day (cached order), ETA changes, dispatch plans; users' base
(where a worker's day starts and ends).

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-24 20:59:06.427351
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "route_plans",
        sa.Column("user_id", sa.UUID(), nullable=False),
        sa.Column("day", sa.Date(), nullable=False),
        sa.Column("organization_id", sa.UUID(), nullable=False),
        sa.Column("signature", sa.String(length=64), nullable=False),
        sa.Column("task_ids", postgresql.ARRAY(sa.UUID()), nullable=False),
        sa.Column("legs", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.Column("etas", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.Column("optimised", sa.Boolean(), nullable=False),
        sa.Column("solved_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["organization_id"],
            ["organizations.id"],
            name=op.f("fk_route_plans_organization_id_organizations"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["user_id"], ["users.id"], name=op.f("fk_route_plans_user_id_users"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("user_id", "day", name=op.f("pk_route_plans")),
    )
    op.create_table(
        "dispatch_plans",
        sa.Column("team_id", sa.UUID(), nullable=False),
        sa.Column("day", sa.Date(), nullable=False),
        sa.Column("created_by_id", sa.UUID(), nullable=True),
        sa.Column("preview", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.Column("applied_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("applied_by_id", sa.UUID(), nullable=True),
        sa.Column("result", postgresql.JSONB(astext_type=sa.Text()), nullable=True),
        sa.Column("organization_id", sa.UUID(), nullable=False),
        sa.Column("id", sa.UUID(), server_default=sa.text("gen_random_uuid()"), nullable=False),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.Column(
            "updated_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.ForeignKeyConstraint(
            ["applied_by_id"],
            ["users.id"],
            name=op.f("fk_dispatch_plans_applied_by_id_users"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["created_by_id"],
            ["users.id"],
            name=op.f("fk_dispatch_plans_created_by_id_users"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["organization_id"],
            ["organizations.id"],
            name=op.f("fk_dispatch_plans_organization_id_organizations"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["team_id"],
            ["teams.id"],
            name=op.f("fk_dispatch_plans_team_id_teams"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_dispatch_plans")),
    )
    op.create_index(
        op.f("ix_dispatch_plans_organization_id"),
        "dispatch_plans",
        ["organization_id"],
        unique=False,
    )
    op.create_index(
        "ix_dispatch_plans_team_day", "dispatch_plans", ["team_id", "day"], unique=False
    )
    op.create_table(
        "eta_changes",
        sa.Column("organization_id", sa.UUID(), nullable=False),
        sa.Column("task_id", sa.UUID(), nullable=False),
        sa.Column("user_id", sa.UUID(), nullable=False),
        sa.Column("previous_eta", sa.DateTime(timezone=True), nullable=False),
        sa.Column("new_eta", sa.DateTime(timezone=True), nullable=False),
        sa.Column("delta_s", sa.Integer(), nullable=False),
        sa.Column("changed_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("id", sa.UUID(), server_default=sa.text("gen_random_uuid()"), nullable=False),
        sa.ForeignKeyConstraint(
            ["organization_id"],
            ["organizations.id"],
            name=op.f("fk_eta_changes_organization_id_organizations"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["task_id"], ["tasks.id"], name=op.f("fk_eta_changes_task_id_tasks"), ondelete="CASCADE"
        ),
        sa.ForeignKeyConstraint(
            ["user_id"], ["users.id"], name=op.f("fk_eta_changes_user_id_users"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_eta_changes")),
    )
    op.create_index(
        "ix_eta_changes_org_time", "eta_changes", ["organization_id", "changed_at"], unique=False
    )
    op.create_index(
        "ix_eta_changes_task_time", "eta_changes", ["task_id", "changed_at"], unique=False
    )
    op.add_column("users", sa.Column("base_lat", sa.Float(), nullable=True))
    op.add_column("users", sa.Column("base_lon", sa.Float(), nullable=True))
    op.create_check_constraint(
        "base_in_range",
        "users",
        "(base_lat IS NULL) = (base_lon IS NULL) AND base_lat BETWEEN -90 AND 90"
        " AND base_lon BETWEEN -180 AND 180",
    )


def downgrade() -> None:
    op.drop_constraint(op.f("ck_users_base_in_range"), "users")
    op.drop_column("users", "base_lon")
    op.drop_column("users", "base_lat")
    op.drop_index("ix_eta_changes_task_time", table_name="eta_changes")
    op.drop_index("ix_eta_changes_org_time", table_name="eta_changes")
    op.drop_table("eta_changes")
    op.drop_index("ix_dispatch_plans_team_day", table_name="dispatch_plans")
    op.drop_index(op.f("ix_dispatch_plans_organization_id"), table_name="dispatch_plans")
    op.drop_table("dispatch_plans")
    op.drop_table("route_plans")
