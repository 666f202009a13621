"""Sales pipeline, tasks, notifications with the outbox, documents and attachments, audit log.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-24 16:22:32.903622
"""

from collections.abc import Sequence

import geoalchemy2
import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "rate_limit_windows",
        sa.Column("key", sa.String(length=200), nullable=False),
        sa.Column("window_start", sa.DateTime(timezone=True), nullable=False),
        sa.Column("hits", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("key", "window_start", name=op.f("pk_rate_limit_windows")),
        prefixes=["UNLOGGED"],
    )
    op.create_table(
        "counters",
        sa.Column("organization_id", sa.UUID(), nullable=False),
        sa.Column("name", sa.String(length=100), nullable=False),
        sa.Column("value", sa.BigInteger(), nullable=False),
        sa.ForeignKeyConstraint(
            ["organization_id"],
            ["organizations.id"],
            name=op.f("fk_counters_organization_id_organizations"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("organization_id", "name", name=op.f("pk_counters")),
    )
    op.create_table(
        "document_templates",
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("html", sa.Text(), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("is_active", sa.Boolean(), nullable=False),
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
            ["organization_id"],
            ["organizations.id"],
            name=op.f("fk_document_templates_organization_id_organizations"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_document_templates")),
    )
    op.create_index(
        op.f("ix_document_templates_organization_id"),
        "document_templates",
        ["organization_id"],
        unique=False,
    )
    op.create_index(
        "uq_document_templates_org_name",
        "document_templates",
        ["organization_id", "name"],
        unique=True,
    )
    op.create_table(
        "outbox",
        sa.Column("organization_id", sa.UUID(), nullable=False),
        sa.Column("topic", sa.String(length=50), nullable=False),
        sa.Column("payload", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.Column("dedupe_key", sa.String(length=200), nullable=False),
        sa.Column(
            "status", sa.Enum("pending", "sent", "dead", name="outbox_status"), nullable=False
        ),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("available_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("sent_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column("id", sa.UUID(), server_default=sa.text("gen_random_uuid()"), nullable=False),
        sa.ForeignKeyConstraint(
            ["organization_id"],
            ["organizations.id"],
            name=op.f("fk_outbox_organization_id_organizations"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_outbox")),
    )
    op.create_index(
        "ix_outbox_pending",
        "outbox",
        ["available_at"],
        unique=False,
        postgresql_where="status = 'pending'",
    )
    op.create_index(
        "uq_outbox_org_dedupe", "outbox", ["organization_id", "dedupe_key"], unique=True
    )
    op.create_table(
        "pipelines",
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("is_default", sa.Boolean(), nullable=False),
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
            ["organization_id"],
            ["organizations.id"],
            name=op.f("fk_pipelines_organization_id_organizations"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_pipelines")),
    )
    op.create_index(
        op.f("ix_pipelines_organization_id"), "pipelines", ["organization_id"], unique=False
    )
    op.create_index(
        "uq_pipelines_org_default",
        "pipelines",
        ["organization_id"],
        unique=True,
        postgresql_where="is_default",
    )
    op.create_index("uq_pipelines_org_name", "pipelines", ["organization_id", "name"], unique=True)
    op.create_table(
        "audit_log",
        sa.Column("organization_id", sa.UUID(), nullable=False),
        sa.Column("entity", sa.String(length=50), nullable=False),
        sa.Column("entity_id", sa.UUID(), nullable=False),
        sa.Column("action", sa.String(length=50), nullable=False),
        sa.Column("actor_id", sa.UUID(), nullable=True),
        sa.Column("changes", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("id", sa.UUID(), server_default=sa.text("gen_random_uuid()"), nullable=False),
        sa.ForeignKeyConstraint(
            ["actor_id"],
            ["users.id"],
            name=op.f("fk_audit_log_actor_id_users"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["organization_id"],
            ["organizations.id"],
            name=op.f("fk_audit_log_organization_id_organizations"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_audit_log")),
    )
    op.create_index(
        "ix_audit_log_entity",
        "audit_log",
        ["organization_id", "entity", "entity_id", "at"],
        unique=False,
    )
    op.create_table(
        "lead_forms",
        sa.Column("key", sa.String(length=64), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("pipeline_id", sa.UUID(), nullable=False),
        sa.Column("source", sa.String(length=100), nullable=False),
        sa.Column(
            "assignment",
            sa.Enum("round_robin", "territory", name="lead_assignment"),
            nullable=False,
        ),
        sa.Column("deal_title", sa.String(length=300), nullable=False),
        sa.Column("thank_you", sa.Text(), nullable=False),
        sa.Column("is_active", sa.Boolean(), nullable=False),
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
            ["organization_id"],
            ["organizations.id"],
            name=op.f("fk_lead_forms_organization_id_organizations"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["pipeline_id"],
            ["pipelines.id"],
            name=op.f("fk_lead_forms_pipeline_id_pipelines"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_lead_forms")),
        sa.UniqueConstraint("key", name=op.f("uq_lead_forms_key")),
    )
    op.create_index(
        op.f("ix_lead_forms_organization_id"), "lead_forms", ["organization_id"], unique=False
    )
    op.create_table(
        "notifications",
        sa.Column("user_id", sa.UUID(), nullable=False),
        sa.Column("kind", sa.String(length=50), nullable=False),
        sa.Column("title", sa.String(length=300), nullable=False),
        sa.Column("body", sa.Text(), nullable=True),
        sa.Column("link", sa.String(length=500), nullable=True),
        sa.Column("data", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.Column("urgent", sa.Boolean(), nullable=False),
        sa.Column("dedupe_key", sa.String(length=200), nullable=False),
        sa.Column("read_at", sa.DateTime(timezone=True), nullable=True),
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
            ["organization_id"],
            ["organizations.id"],
            name=op.f("fk_notifications_organization_id_organizations"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["user_id"],
            ["users.id"],
            name=op.f("fk_notifications_user_id_users"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_notifications")),
    )
    op.create_index(
        op.f("ix_notifications_organization_id"), "notifications", ["organization_id"], unique=False
    )
    op.create_index(
        "ix_notifications_user_time", "notifications", ["user_id", "created_at", "id"], unique=False
    )
    op.create_index(
        "ix_notifications_user_unread",
        "notifications",
        ["user_id"],
        unique=False,
        postgresql_where="read_at IS NULL",
    )
    op.create_index(
        "uq_notifications_org_dedupe",
        "notifications",
        ["organization_id", "dedupe_key"],
        unique=True,
    )
    op.create_table(
        "stages",
        sa.Column("pipeline_id", sa.UUID(), nullable=False),
        sa.Column("name", sa.String(length=100), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("kind", sa.Enum("open", "won", "lost", name="stage_kind"), nullable=False),
        sa.Column("allowed_from", postgresql.ARRAY(sa.UUID()), nullable=True),
        sa.Column("requirements", postgresql.ARRAY(sa.String(length=32)), nullable=False),
        sa.Column("entry_roles", postgresql.ARRAY(sa.String(length=16)), nullable=True),
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
            ["organization_id"],
            ["organizations.id"],
            name=op.f("fk_stages_organization_id_organizations"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["pipeline_id"],
            ["pipelines.id"],
            name=op.f("fk_stages_pipeline_id_pipelines"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_stages")),
    )
    op.create_index(op.f("ix_stages_organization_id"), "stages", ["organization_id"], unique=False)
    op.create_index(
        "ix_stages_pipeline_position", "stages", ["pipeline_id", "position"], unique=False
    )
    op.create_index("uq_stages_pipeline_name", "stages", ["pipeline_id", "name"], unique=True)
    op.create_table(
        "territories",
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column(
            "area",
            geoalchemy2.types.Geography(
                geometry_type="MULTIPOLYGON",
                srid=4326,
                dimension=2,
                spatial_index=False,
                from_text="ST_GeogFromText",
                name="geography",
                nullable=False,
            ),
            nullable=False,
        ),
        sa.Column("manager_id", sa.UUID(), nullable=False),
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
            ["manager_id"],
            ["users.id"],
            name=op.f("fk_territories_manager_id_users"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["organization_id"],
            ["organizations.id"],
            name=op.f("fk_territories_organization_id_organizations"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_territories")),
    )
    op.create_index(
        "ix_territories_area", "territories", ["area"], unique=False, postgresql_using="gist"
    )
    op.create_index(
        op.f("ix_territories_organization_id"), "territories", ["organization_id"], unique=False
    )
    op.create_table(
        "automations",
        sa.Column("stage_id", sa.UUID(), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column(
            "action",
            sa.Enum("create_task", "notify", "generate_document", name="automation_action"),
            nullable=False,
        ),
        sa.Column("config", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.Column("is_active", sa.Boolean(), nullable=False),
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
            ["organization_id"],
            ["organizations.id"],
            name=op.f("fk_automations_organization_id_organizations"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["stage_id"],
            ["stages.id"],
            name=op.f("fk_automations_stage_id_stages"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_automations")),
    )
    op.create_index(
        op.f("ix_automations_organization_id"), "automations", ["organization_id"], unique=False
    )
    op.create_index(op.f("ix_automations_stage_id"), "automations", ["stage_id"], unique=False)
    op.create_table(
        "deals",
        sa.Column("pipeline_id", sa.UUID(), nullable=False),
        sa.Column("stage_id", sa.UUID(), nullable=False),
        sa.Column("customer_id", sa.UUID(), nullable=False),
        sa.Column("site_id", sa.UUID(), nullable=True),
        sa.Column("title", sa.String(length=300), nullable=False),
        sa.Column("amount", sa.Numeric(precision=14, scale=2), nullable=True),
        sa.Column("currency", sa.String(length=3), nullable=False),
        sa.Column("line_items", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.Column("source", sa.String(length=100), nullable=True),
        sa.Column("attribution", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.Column("owner_id", sa.UUID(), nullable=True),
        sa.Column("expected_close", sa.Date(), nullable=True),
        sa.Column("lost_reason", sa.String(length=300), nullable=True),
        sa.Column("scheduled_start", sa.DateTime(timezone=True), nullable=True),
        sa.Column("scheduled_end", sa.DateTime(timezone=True), nullable=True),
        sa.Column("stage_entered_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("closed_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("version", sa.Integer(), nullable=False),
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
        sa.CheckConstraint("currency ~ '^[A-Z]{3}$'", name=op.f("ck_deals_currency_iso")),
        sa.CheckConstraint("amount IS NULL OR amount >= 0", name=op.f("ck_deals_amount_positive")),
        sa.CheckConstraint(
            "scheduled_end IS NULL OR scheduled_end > scheduled_start",
            name=op.f("ck_deals_schedule_order"),
        ),
        sa.ForeignKeyConstraint(
            ["customer_id"],
            ["customers.id"],
            name=op.f("fk_deals_customer_id_customers"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["organization_id"],
            ["organizations.id"],
            name=op.f("fk_deals_organization_id_organizations"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["owner_id"], ["users.id"], name=op.f("fk_deals_owner_id_users"), ondelete="SET NULL"
        ),
        sa.ForeignKeyConstraint(
            ["pipeline_id"],
            ["pipelines.id"],
            name=op.f("fk_deals_pipeline_id_pipelines"),
        ),
        sa.ForeignKeyConstraint(
            ["site_id"], ["sites.id"], name=op.f("fk_deals_site_id_sites"), ondelete="SET NULL"
        ),
        sa.ForeignKeyConstraint(["stage_id"], ["stages.id"], name=op.f("fk_deals_stage_id_stages")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_deals")),
    )
    op.create_index("ix_deals_customer", "deals", ["customer_id"], unique=False)
    op.create_index(
        "ix_deals_org_created", "deals", ["organization_id", "created_at"], unique=False
    )
    op.create_index("ix_deals_org_owner", "deals", ["organization_id", "owner_id"], unique=False)
    op.create_index(
        "ix_deals_org_stage",
        "deals",
        ["organization_id", "stage_id", "stage_entered_at"],
        unique=False,
    )
    op.create_index(op.f("ix_deals_organization_id"), "deals", ["organization_id"], unique=False)
    op.create_table(
        "deal_stage_changes",
        sa.Column("deal_id", sa.UUID(), nullable=False),
        sa.Column("from_stage_id", sa.UUID(), nullable=True),
        sa.Column("to_stage_id", sa.UUID(), nullable=False),
        sa.Column("actor_id", sa.UUID(), nullable=True),
        sa.Column("changed_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("seconds_in_previous", sa.Integer(), nullable=True),
        sa.Column("comment", sa.Text(), nullable=True),
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
            ["actor_id"],
            ["users.id"],
            name=op.f("fk_deal_stage_changes_actor_id_users"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["deal_id"],
            ["deals.id"],
            name=op.f("fk_deal_stage_changes_deal_id_deals"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["from_stage_id"],
            ["stages.id"],
            name=op.f("fk_deal_stage_changes_from_stage_id_stages"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["organization_id"],
            ["organizations.id"],
            name=op.f("fk_deal_stage_changes_organization_id_organizations"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["to_stage_id"],
            ["stages.id"],
            name=op.f("fk_deal_stage_changes_to_stage_id_stages"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_deal_stage_changes")),
    )
    op.create_index(
        "ix_deal_stage_changes_deal", "deal_stage_changes", ["deal_id", "changed_at"], unique=False
    )
    op.create_index(
        "ix_deal_stage_changes_org_time",
        "deal_stage_changes",
        ["organization_id", "changed_at"],
        unique=False,
    )
    op.create_index(
        op.f("ix_deal_stage_changes_organization_id"),
        "deal_stage_changes",
        ["organization_id"],
        unique=False,
    )
    op.create_table(
        "tasks",
        sa.Column(
            "kind",
            sa.Enum("call", "measurement", "installation", "visit", "other", name="task_kind"),
            nullable=False,
        ),
        sa.Column("title", sa.String(length=300), nullable=False),
        sa.Column("description", sa.Text(), nullable=True),
        sa.Column(
            "status",
            sa.Enum("open", "in_progress", "done", "cancelled", name="task_status"),
            nullable=False,
        ),
        sa.Column("assignee_id", sa.UUID(), nullable=True),
        sa.Column("created_by_id", sa.UUID(), nullable=True),
        sa.Column("deal_id", sa.UUID(), nullable=True),
        sa.Column("customer_id", sa.UUID(), nullable=True),
        sa.Column("site_id", sa.UUID(), nullable=True),
        sa.Column("automation_id", sa.UUID(), nullable=True),
        sa.Column("due_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("window_start", sa.DateTime(timezone=True), nullable=True),
        sa.Column("window_end", sa.DateTime(timezone=True), nullable=True),
        sa.Column("priority", sa.Integer(), nullable=False),
        sa.Column("outcome", sa.Text(), nullable=True),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("completed_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("escalate_after_minutes", sa.Integer(), nullable=True),
        sa.Column("overdue_notified_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("escalate_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("escalated_at", sa.DateTime(timezone=True), nullable=True),
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
        sa.CheckConstraint(
            "escalate_after_minutes IS NULL OR escalate_after_minutes >= 0",
            name=op.f("ck_tasks_escalation_delay_positive"),
        ),
        sa.CheckConstraint(
            "window_end IS NULL OR window_start IS NULL OR window_end > window_start",
            name=op.f("ck_tasks_window_order"),
        ),
        sa.ForeignKeyConstraint(
            ["assignee_id"],
            ["users.id"],
            name=op.f("fk_tasks_assignee_id_users"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["automation_id"],
            ["automations.id"],
            name=op.f("fk_tasks_automation_id_automations"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["created_by_id"],
            ["users.id"],
            name=op.f("fk_tasks_created_by_id_users"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["customer_id"],
            ["customers.id"],
            name=op.f("fk_tasks_customer_id_customers"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["deal_id"], ["deals.id"], name=op.f("fk_tasks_deal_id_deals"), ondelete="CASCADE"
        ),
        sa.ForeignKeyConstraint(
            ["organization_id"],
            ["organizations.id"],
            name=op.f("fk_tasks_organization_id_organizations"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["site_id"], ["sites.id"], name=op.f("fk_tasks_site_id_sites"), ondelete="SET NULL"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_tasks")),
    )
    op.create_index(
        "ix_tasks_deal", "tasks", ["deal_id"], unique=False, postgresql_where="deal_id IS NOT NULL"
    )
    op.create_index(
        "ix_tasks_escalation_due",
        "tasks",
        ["escalate_at"],
        unique=False,
        postgresql_where="status IN ('open', 'in_progress') AND escalated_at IS NULL AND escalate_at IS NOT NULL",
    )
    op.create_index(
        "ix_tasks_org_assignee_status",
        "tasks",
        ["organization_id", "assignee_id", "status", "due_at"],
        unique=False,
    )
    op.create_index(op.f("ix_tasks_organization_id"), "tasks", ["organization_id"], unique=False)
    op.create_index(
        "ix_tasks_overdue_due",
        "tasks",
        ["due_at"],
        unique=False,
        postgresql_where="status IN ('open', 'in_progress') AND overdue_notified_at IS NULL AND due_at IS NOT NULL",
    )
    op.create_table(
        "attachments",
        sa.Column("deal_id", sa.UUID(), nullable=True),
        sa.Column("task_id", sa.UUID(), nullable=True),
        sa.Column("kind", sa.Enum("upload", "document", name="attachment_kind"), nullable=False),
        sa.Column("filename", sa.String(length=255), nullable=False),
        sa.Column("content_type", sa.String(length=100), nullable=False),
        sa.Column("size", sa.BigInteger(), nullable=False),
        sa.Column("sha256", sa.String(length=64), nullable=False),
        sa.Column("storage_key", sa.String(length=80), nullable=False),
        sa.Column("uploaded_by_id", sa.UUID(), nullable=True),
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
        sa.CheckConstraint(
            "deal_id IS NOT NULL OR task_id IS NOT NULL", name=op.f("ck_attachments_has_owner")
        ),
        sa.CheckConstraint("size > 0", name=op.f("ck_attachments_size_positive")),
        sa.ForeignKeyConstraint(
            ["deal_id"], ["deals.id"], name=op.f("fk_attachments_deal_id_deals"), ondelete="CASCADE"
        ),
        sa.ForeignKeyConstraint(
            ["organization_id"],
            ["organizations.id"],
            name=op.f("fk_attachments_organization_id_organizations"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["task_id"], ["tasks.id"], name=op.f("fk_attachments_task_id_tasks"), ondelete="CASCADE"
        ),
        sa.ForeignKeyConstraint(
            ["uploaded_by_id"],
            ["users.id"],
            name=op.f("fk_attachments_uploaded_by_id_users"),
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_attachments")),
    )
    op.create_index(
        "ix_attachments_deal",
        "attachments",
        ["deal_id"],
        unique=False,
        postgresql_where="deal_id IS NOT NULL",
    )
    op.create_index(
        op.f("ix_attachments_organization_id"), "attachments", ["organization_id"], unique=False
    )
    op.create_index(
        "ix_attachments_task",
        "attachments",
        ["task_id"],
        unique=False,
        postgresql_where="task_id IS NOT NULL",
    )
    op.create_table(
        "documents",
        sa.Column("deal_id", sa.UUID(), nullable=False),
        sa.Column("template_id", sa.UUID(), nullable=True),
        sa.Column("template_version", sa.Integer(), nullable=False),
        sa.Column("title", sa.String(length=300), nullable=False),
        sa.Column("number", sa.BigInteger(), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("attachment_id", sa.UUID(), nullable=False),
        sa.Column("created_by_id", sa.UUID(), nullable=True),
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
            ["attachment_id"],
            ["attachments.id"],
            name=op.f("fk_documents_attachment_id_attachments"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["created_by_id"],
            ["users.id"],
            name=op.f("fk_documents_created_by_id_users"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["deal_id"], ["deals.id"], name=op.f("fk_documents_deal_id_deals"), ondelete="CASCADE"
        ),
        sa.ForeignKeyConstraint(
            ["organization_id"],
            ["organizations.id"],
            name=op.f("fk_documents_organization_id_organizations"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["template_id"],
            ["document_templates.id"],
            name=op.f("fk_documents_template_id_document_templates"),
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_documents")),
    )
    op.create_index(
        "ix_documents_deal", "documents", ["deal_id", "template_id", "version"], unique=False
    )
    op.create_index(
        op.f("ix_documents_organization_id"), "documents", ["organization_id"], unique=False
    )
    op.create_index(
        "uq_documents_org_number", "documents", ["organization_id", "number"], unique=True
    )
    op.add_column("interactions", sa.Column("deal_id", sa.UUID(), nullable=True))
    op.create_index(
        "ix_interactions_deal_time",
        "interactions",
        ["deal_id", "occurred_at"],
        unique=False,
        postgresql_where="deal_id IS NOT NULL",
    )
    op.create_index(
        "ix_interactions_org_kind_time",
        "interactions",
        ["organization_id", "kind", "occurred_at"],
        unique=False,
    )
    op.create_foreign_key(
        op.f("fk_interactions_deal_id_deals"),
        "interactions",
        "deals",
        ["deal_id"],
        ["id"],
        ondelete="SET NULL",
    )
    op.add_column(
        "organizations",
        sa.Column(
            "business_hours",
            postgresql.JSONB(astext_type=sa.Text()),
            server_default=sa.text("'{}'::jsonb"),
            nullable=False,
        ),
    )


def downgrade() -> None:
    op.drop_column("organizations", "business_hours")
    op.drop_constraint(op.f("fk_interactions_deal_id_deals"), "interactions", type_="foreignkey")
    op.drop_index("ix_interactions_org_kind_time", table_name="interactions")
    op.drop_index(
        "ix_interactions_deal_time",
        table_name="interactions",
        postgresql_where="deal_id IS NOT NULL",
    )
    op.drop_column("interactions", "deal_id")
    op.drop_index("uq_documents_org_number", table_name="documents")
    op.drop_index(op.f("ix_documents_organization_id"), table_name="documents")
    op.drop_index("ix_documents_deal", table_name="documents")
    op.drop_table("documents")
    op.drop_index(
        "ix_attachments_task", table_name="attachments", postgresql_where="task_id IS NOT NULL"
    )
    op.drop_index(op.f("ix_attachments_organization_id"), table_name="attachments")
    op.drop_index(
        "ix_attachments_deal", table_name="attachments", postgresql_where="deal_id IS NOT NULL"
    )
    op.drop_table("attachments")
    op.drop_index(
        "ix_tasks_overdue_due",
        table_name="tasks",
        postgresql_where="status IN ('open', 'in_progress') AND overdue_notified_at IS NULL AND due_at IS NOT NULL",
    )
    op.drop_index(op.f("ix_tasks_organization_id"), table_name="tasks")
    op.drop_index("ix_tasks_org_assignee_status", table_name="tasks")
    op.drop_index(
        "ix_tasks_escalation_due",
        table_name="tasks",
        postgresql_where="status IN ('open', 'in_progress') AND escalated_at IS NULL AND escalate_at IS NOT NULL",
    )
    op.drop_index("ix_tasks_deal", table_name="tasks", postgresql_where="deal_id IS NOT NULL")
    op.drop_table("tasks")
    op.drop_index(op.f("ix_deal_stage_changes_organization_id"), table_name="deal_stage_changes")
    op.drop_index("ix_deal_stage_changes_org_time", table_name="deal_stage_changes")
    op.drop_index("ix_deal_stage_changes_deal", table_name="deal_stage_changes")
    op.drop_table("deal_stage_changes")
    op.drop_index(op.f("ix_deals_organization_id"), table_name="deals")
    op.drop_index("ix_deals_org_stage", table_name="deals")
    op.drop_index("ix_deals_org_owner", table_name="deals")
    op.drop_index("ix_deals_org_created", table_name="deals")
    op.drop_index("ix_deals_customer", table_name="deals")
    op.drop_table("deals")
    op.drop_index(op.f("ix_automations_stage_id"), table_name="automations")
    op.drop_index(op.f("ix_automations_organization_id"), table_name="automations")
    op.drop_table("automations")
    op.drop_index(op.f("ix_territories_organization_id"), table_name="territories")
    op.drop_index("ix_territories_area", table_name="territories", postgresql_using="gist")
    op.drop_table("territories")
    op.drop_index("uq_stages_pipeline_name", table_name="stages")
    op.drop_index("ix_stages_pipeline_position", table_name="stages")
    op.drop_index(op.f("ix_stages_organization_id"), table_name="stages")
    op.drop_table("stages")
    op.drop_index("uq_notifications_org_dedupe", table_name="notifications")
    op.drop_index(
        "ix_notifications_user_unread",
        table_name="notifications",
        postgresql_where="read_at IS NULL",
    )
    op.drop_index("ix_notifications_user_time", table_name="notifications")
    op.drop_index(op.f("ix_notifications_organization_id"), table_name="notifications")
    op.drop_table("notifications")
    op.drop_index(op.f("ix_lead_forms_organization_id"), table_name="lead_forms")
    op.drop_table("lead_forms")
    op.drop_index("ix_audit_log_entity", table_name="audit_log")
    op.drop_table("audit_log")
    op.drop_index("uq_pipelines_org_name", table_name="pipelines")
    op.drop_index("uq_pipelines_org_default", table_name="pipelines", postgresql_where="is_default")
    op.drop_index(op.f("ix_pipelines_organization_id"), table_name="pipelines")
    op.drop_table("pipelines")
    op.drop_index("uq_outbox_org_dedupe", table_name="outbox")
    op.drop_index("ix_outbox_pending", table_name="outbox", postgresql_where="status = 'pending'")
    op.drop_table("outbox")
    op.drop_index("uq_document_templates_org_name", table_name="document_templates")
    op.drop_index(op.f("ix_document_templates_organization_id"), table_name="document_templates")
    op.drop_table("document_templates")
    op.drop_table("counters")
    op.drop_table("rate_limit_windows")
