"""Notifications delivery: device tokens, preferences, quiet hours, outbox delivery attempts.

- ``push_devices`` (FCM registration tokens) and ``web_push_subscriptions`` per user;
- ``notification_settings``: channels per kind and quiet hours per user;
- ``outbox.progress`` (targets of a fan-out already delivered) and ``outbox.note``;
- triggers that wake listeners up on commit: ``fieldcrm_outbox`` on every outbox insert (the
  relay), and ``fieldcrm_inbox_<user id hex>`` on a user's new or read notifications (the
  notification centre's live stream). PostgreSQL delivers NOTIFY only when the transaction
  commits and folds identical payloads of one transaction into one.

Revision ID: 0008
Revises: 0007
Create Date: 2026-11-24 09:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _tenant_columns() -> list[sa.Column[object]]:
    return [
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
    ]


def upgrade() -> None:
    platform = postgresql.ENUM("android", "ios", "web", name="push_platform", create_type=False)
    platform.create(op.get_bind(), checkfirst=False)
    op.create_table(
        "push_devices",
        sa.Column("user_id", sa.UUID(), nullable=False),
        sa.Column("token", sa.String(length=4096), nullable=False),
        sa.Column("platform", platform, nullable=False),
        sa.Column("app_version", sa.String(length=50), nullable=True),
        sa.Column("last_seen_at", sa.DateTime(timezone=True), nullable=False),
        *_tenant_columns(),
        sa.ForeignKeyConstraint(
            ["organization_id"],
            ["organizations.id"],
            name=op.f("fk_push_devices_organization_id_organizations"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["user_id"],
            ["users.id"],
            name=op.f("fk_push_devices_user_id_users"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_push_devices")),
    )
    op.create_index(
        op.f("ix_push_devices_organization_id"), "push_devices", ["organization_id"], unique=False
    )
    op.create_index(op.f("ix_push_devices_user_id"), "push_devices", ["user_id"], unique=False)
    op.create_index("uq_push_devices_token", "push_devices", ["token"], unique=True)

    op.create_table(
        "web_push_subscriptions",
        sa.Column("user_id", sa.UUID(), nullable=False),
        sa.Column("endpoint", sa.String(length=2048), nullable=False),
        sa.Column("p256dh", sa.String(length=200), nullable=False),
        sa.Column("auth", sa.String(length=100), nullable=False),
        sa.Column("last_seen_at", sa.DateTime(timezone=True), nullable=False),
        *_tenant_columns(),
        sa.ForeignKeyConstraint(
            ["organization_id"],
            ["organizations.id"],
            name=op.f("fk_web_push_subscriptions_organization_id_organizations"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["user_id"],
            ["users.id"],
            name=op.f("fk_web_push_subscriptions_user_id_users"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_web_push_subscriptions")),
    )
    op.create_index(
        op.f("ix_web_push_subscriptions_organization_id"),
        "web_push_subscriptions",
        ["organization_id"],
        unique=False,
    )
    op.create_index(
        op.f("ix_web_push_subscriptions_user_id"),
        "web_push_subscriptions",
        ["user_id"],
        unique=False,
    )
    op.create_index(
        "uq_web_push_subscriptions_endpoint", "web_push_subscriptions", ["endpoint"], unique=True
    )

    op.create_table(
        "notification_settings",
        sa.Column("user_id", sa.UUID(), nullable=False),
        sa.Column("organization_id", sa.UUID(), nullable=False),
        sa.Column("channels", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.Column("quiet_start", sa.Time(), nullable=True),
        sa.Column("quiet_end", sa.Time(), nullable=True),
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
            "(quiet_start IS NULL) = (quiet_end IS NULL)"
            " AND (quiet_start IS NULL OR quiet_start <> quiet_end)",
            name=op.f("ck_notification_settings_quiet_hours_pair"),
        ),
        sa.ForeignKeyConstraint(
            ["organization_id"],
            ["organizations.id"],
            name=op.f("fk_notification_settings_organization_id_organizations"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["user_id"],
            ["users.id"],
            name=op.f("fk_notification_settings_user_id_users"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("user_id", name=op.f("pk_notification_settings")),
    )

    op.add_column(
        "outbox",
        sa.Column(
            "progress",
            postgresql.JSONB(astext_type=sa.Text()),
            server_default=sa.text("'[]'::jsonb"),
            nullable=False,
        ),
    )
    op.add_column("outbox", sa.Column("note", sa.Text(), nullable=True))
    # The admin view lists rows by status, newest first.
    op.create_index(
        "ix_outbox_org_status_time", "outbox", ["organization_id", "status", "created_at", "id"]
    )

    op.execute(
        """
        CREATE FUNCTION fieldcrm_outbox_wake() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
            PERFORM pg_notify('fieldcrm_outbox', '');
            RETURN NULL;
        END $$
        """
    )
    op.execute(
        """
        CREATE TRIGGER outbox_wake AFTER INSERT ON outbox
        FOR EACH STATEMENT EXECUTE FUNCTION fieldcrm_outbox_wake()
        """
    )
    op.execute(
        """
        CREATE FUNCTION fieldcrm_inbox_wake() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
            IF TG_OP = 'INSERT' THEN
                PERFORM pg_notify('fieldcrm_inbox_' || replace(NEW.user_id::text, '-', ''),
                                  NEW.id::text);
            ELSIF NEW.read_at IS DISTINCT FROM OLD.read_at THEN
                PERFORM pg_notify('fieldcrm_inbox_' || replace(NEW.user_id::text, '-', ''),
                                  'read');
            END IF;
            RETURN NULL;
        END $$
        """
    )
    op.execute(
        """
        CREATE TRIGGER notifications_inbox_wake AFTER INSERT OR UPDATE OF read_at
        ON notifications FOR EACH ROW EXECUTE FUNCTION fieldcrm_inbox_wake()
        """
    )


def downgrade() -> None:
    op.execute("DROP TRIGGER notifications_inbox_wake ON notifications")
    op.execute("DROP FUNCTION fieldcrm_inbox_wake()")
    op.execute("DROP TRIGGER outbox_wake ON outbox")
    op.execute("DROP FUNCTION fieldcrm_outbox_wake()")
    op.drop_index("ix_outbox_org_status_time", table_name="outbox")
    op.drop_column("outbox", "note")
    op.drop_column("outbox", "progress")
    op.drop_table("notification_settings")
    op.drop_index("uq_web_push_subscriptions_endpoint", table_name="web_push_subscriptions")
    op.drop_index(op.f("ix_web_push_subscriptions_user_id"), table_name="web_push_subscriptions")
    op.drop_index(
        op.f("ix_web_push_subscriptions_organization_id"), table_name="web_push_subscriptions"
    )
    op.drop_table("web_push_subscriptions")
    op.drop_index("uq_push_devices_token", table_name="push_devices")
    op.drop_index(op.f("ix_push_devices_user_id"), table_name="push_devices")
    op.drop_index(op.f("ix_push_devices_organization_id"), table_name="push_devices")
    op.drop_table("push_devices")
    postgresql.ENUM(name="push_platform").drop(op.get_bind(), checkfirst=False)
