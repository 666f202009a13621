"""Customer notifications: per-visit message state, public links (hashed tokens), unsubscribed
addresses, per-organisation message templates, visit feedback.

Revision ID: 0009
Revises: 0008
Create Date: 2026-11-24 09:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0009"
down_revision: str | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _org(table: str) -> sa.ForeignKeyConstraint:
    return sa.ForeignKeyConstraint(
        ["organization_id"],
        ["organizations.id"],
        name=op.f(f"fk_{table}_organization_id_organizations"),
        ondelete="CASCADE",
    )


def _task(table: str) -> sa.ForeignKeyConstraint:
    return sa.ForeignKeyConstraint(
        ["task_id"], ["tasks.id"], name=op.f(f"fk_{table}_task_id_tasks"), ondelete="CASCADE"
    )


def upgrade() -> None:
    op.create_table(
        "customer_visit_states",
        sa.Column("task_id", sa.UUID(), nullable=False),
        sa.Column("organization_id", sa.UUID(), nullable=False),
        sa.Column("booked_start", sa.DateTime(timezone=True), nullable=True),
        sa.Column("booked_end", sa.DateTime(timezone=True), nullable=True),
        sa.Column("booked_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("reminded_start", sa.DateTime(timezone=True), nullable=True),
        sa.Column("on_my_way_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("told_eta", sa.DateTime(timezone=True), nullable=True),
        sa.Column("late_sent_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("feedback_requested_at", sa.DateTime(timezone=True), nullable=True),
        _org("customer_visit_states"),
        _task("customer_visit_states"),
        sa.PrimaryKeyConstraint("task_id", name=op.f("pk_customer_visit_states")),
    )
    op.create_table(
        "customer_links",
        sa.Column("id", sa.UUID(), server_default=sa.text("gen_random_uuid()"), nullable=False),
        sa.Column("organization_id", sa.UUID(), nullable=False),
        sa.Column("purpose", sa.String(length=20), nullable=False),
        sa.Column("token_hash", sa.String(length=64), nullable=False),
        sa.Column("task_id", sa.UUID(), nullable=True),
        sa.Column("channel", sa.String(length=10), nullable=True),
        sa.Column("address", sa.String(length=320), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("revoked_at", sa.DateTime(timezone=True), nullable=True),
        sa.CheckConstraint(
            "purpose IN ('tracking', 'feedback', 'unsubscribe')",
            name=op.f("ck_customer_links_known_purpose"),
        ),
        sa.CheckConstraint(
            "(purpose = 'unsubscribe') = (address IS NOT NULL AND channel IS NOT NULL)"
            " AND (purpose = 'unsubscribe' OR task_id IS NOT NULL)",
            name=op.f("ck_customer_links_purpose_fields"),
        ),
        _org("customer_links"),
        _task("customer_links"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_customer_links")),
        sa.UniqueConstraint("token_hash", name=op.f("uq_customer_links_token_hash")),
    )
    op.create_index("ix_customer_links_task", "customer_links", ["task_id", "purpose"])
    op.create_table(
        "customer_unsubscribes",
        sa.Column("organization_id", sa.UUID(), nullable=False),
        sa.Column("address", sa.String(length=320), nullable=False),
        sa.Column("channel", sa.String(length=10), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        _org("customer_unsubscribes"),
        sa.PrimaryKeyConstraint(
            "organization_id", "address", name=op.f("pk_customer_unsubscribes")
        ),
    )
    op.create_table(
        "customer_message_templates",
        sa.Column("organization_id", sa.UUID(), nullable=False),
        sa.Column("kind", sa.String(length=30), nullable=False),
        sa.Column("language", sa.String(length=8), nullable=False),
        sa.Column("subject", sa.Text(), nullable=False),
        sa.Column("text", sa.Text(), nullable=False),
        sa.Column("html", sa.Text(), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_by_id", sa.UUID(), nullable=True),
        _org("customer_message_templates"),
        sa.ForeignKeyConstraint(
            ["updated_by_id"],
            ["users.id"],
            name=op.f("fk_customer_message_templates_updated_by_id_users"),
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint(
            "organization_id", "kind", "language", name=op.f("pk_customer_message_templates")
        ),
    )
    op.create_table(
        "visit_feedback",
        sa.Column("id", sa.UUID(), server_default=sa.text("gen_random_uuid()"), nullable=False),
        sa.Column("organization_id", sa.UUID(), nullable=False),
        sa.Column("task_id", sa.UUID(), nullable=False),
        sa.Column("rating", sa.SmallInteger(), nullable=False),
        sa.Column("comment", sa.Text(), nullable=True),
        sa.Column("submitted_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint("rating BETWEEN 1 AND 5", name=op.f("ck_visit_feedback_rating_range")),
        _org("visit_feedback"),
        _task("visit_feedback"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_visit_feedback")),
        sa.UniqueConstraint("task_id", name=op.f("uq_visit_feedback_task_id")),
    )
    op.create_index(
        "ix_visit_feedback_org_time", "visit_feedback", ["organization_id", "submitted_at"]
    )
    # The customer-message scans: visits completed lately, the newest ETA changes.
    op.create_index(
        "ix_tasks_done_visits_completed",
        "tasks",
        ["completed_at"],
        postgresql_where=sa.text(
            "status = 'done' AND kind IN ('measurement', 'installation', 'visit')"
            " AND customer_id IS NOT NULL"
        ),
    )
    op.create_index("ix_eta_changes_changed_at", "eta_changes", ["changed_at"])


def downgrade() -> None:
    op.drop_index("ix_eta_changes_changed_at", table_name="eta_changes")
    op.drop_index("ix_tasks_done_visits_completed", table_name="tasks")
    op.drop_index("ix_visit_feedback_org_time", table_name="visit_feedback")
    op.drop_table("visit_feedback")
    op.drop_table("customer_message_templates")
    op.drop_table("customer_unsubscribes")
    op.drop_index("ix_customer_links_task", table_name="customer_links")
    op.drop_table("customer_links")
    op.drop_table("customer_visit_states")
