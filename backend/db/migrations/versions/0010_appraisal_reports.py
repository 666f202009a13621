"""Appraisal reports: daily sales, call and task roll-ups, the queue of days to refresh (filled
by statement-level triggers on deals, stage changes, calls and tasks) and the indexes the
per-day recomputation reads.

Revision ID: 0010
Revises: 0009
Create Date: 2026-11-24 09:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0010"
down_revision: str | None = "0009"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# One function per source table. Each marks the organisation-local days whose roll-ups the
# changed rows feed, from the old and the new values (so a moved due date or a reopened deal
# refreshes both days). Transition tables: one INSERT per statement, also for COPY.
_LOCAL_DAY = "(({ts}) AT TIME ZONE o.time_zone)::date"

MARK_DEALS = f"""
CREATE FUNCTION report_mark_deals() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  IF TG_OP = 'INSERT' THEN
    INSERT INTO report_dirty_days (organization_id, fact, day)
    SELECT DISTINCT x.organization_id, 'sales', {_LOCAL_DAY.format(ts="v.t")}
    FROM new_rows x JOIN organizations o ON o.id = x.organization_id
    CROSS JOIN LATERAL (VALUES (x.created_at), (x.closed_at)) AS v(t)
    WHERE v.t IS NOT NULL;
  ELSIF TG_OP = 'DELETE' THEN
    INSERT INTO report_dirty_days (organization_id, fact, day)
    SELECT DISTINCT x.organization_id, 'sales', {_LOCAL_DAY.format(ts="v.t")}
    FROM old_rows x JOIN organizations o ON o.id = x.organization_id
    CROSS JOIN LATERAL (VALUES (x.created_at), (x.closed_at)) AS v(t)
    WHERE v.t IS NOT NULL;
  ELSE
    INSERT INTO report_dirty_days (organization_id, fact, day)
    SELECT DISTINCT n.organization_id, 'sales', {_LOCAL_DAY.format(ts="v.t")}
    FROM new_rows n JOIN old_rows p ON p.id = n.id
    JOIN organizations o ON o.id = n.organization_id
    CROSS JOIN LATERAL (
      VALUES (n.created_at), (n.closed_at), (p.created_at), (p.closed_at)
    ) AS v(t)
    WHERE v.t IS NOT NULL
      AND (n.created_at, n.closed_at, n.stage_id, n.amount, n.owner_id, n.source, n.pipeline_id)
          IS DISTINCT FROM
          (p.created_at, p.closed_at, p.stage_id, p.amount, p.owner_id, p.source, p.pipeline_id);
    -- A new owner, source or pipeline moves the deal's stage exits of every day it moved.
    INSERT INTO report_dirty_days (organization_id, fact, day)
    SELECT DISTINCT n.organization_id, 'sales', {_LOCAL_DAY.format(ts="c.changed_at")}
    FROM new_rows n JOIN old_rows p ON p.id = n.id
    JOIN organizations o ON o.id = n.organization_id
    JOIN deal_stage_changes c ON c.deal_id = n.id
    WHERE (n.owner_id, n.source, n.pipeline_id)
          IS DISTINCT FROM (p.owner_id, p.source, p.pipeline_id);
  END IF;
  RETURN NULL;
END $$;
"""

# A stage change counts on its own day (exits, time in stage) and on its deal's creation day
# (how far that day's requests got).
_CHANGE_DAYS = """
    SELECT DISTINCT c.organization_id, 'sales', {day}
    FROM {rows} c JOIN organizations o ON o.id = c.organization_id
    LEFT JOIN deals d ON d.id = c.deal_id
    CROSS JOIN LATERAL (VALUES (c.changed_at), (d.created_at)) AS v(t)
    WHERE v.t IS NOT NULL
"""
MARK_STAGE_CHANGES = f"""
CREATE FUNCTION report_mark_stage_changes() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  IF TG_OP IN ('INSERT', 'UPDATE') THEN
    INSERT INTO report_dirty_days (organization_id, fact, day)
    {_CHANGE_DAYS.format(day=_LOCAL_DAY.format(ts="v.t"), rows="new_rows")};
  END IF;
  IF TG_OP IN ('DELETE', 'UPDATE') THEN
    INSERT INTO report_dirty_days (organization_id, fact, day)
    {_CHANGE_DAYS.format(day=_LOCAL_DAY.format(ts="v.t"), rows="old_rows")};
  END IF;
  RETURN NULL;
END $$;
"""


def _simple_mark(name: str, fact: str, ts: str, where: str, changed: str) -> str:
    """A marking function for a table whose rows count on the local day of one timestamp."""
    day = _LOCAL_DAY.format(ts=f"x.{ts}")
    pday = _LOCAL_DAY.format(ts=f"p.{ts}")
    nday = _LOCAL_DAY.format(ts=f"n.{ts}")
    return f"""
CREATE FUNCTION {name}() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  IF TG_OP = 'INSERT' THEN
    INSERT INTO report_dirty_days (organization_id, fact, day)
    SELECT DISTINCT x.organization_id, '{fact}', {day}
    FROM new_rows x JOIN organizations o ON o.id = x.organization_id
    WHERE x.{ts} IS NOT NULL AND {where.format(r="x")};
  ELSIF TG_OP = 'DELETE' THEN
    INSERT INTO report_dirty_days (organization_id, fact, day)
    SELECT DISTINCT x.organization_id, '{fact}', {day}
    FROM old_rows x JOIN organizations o ON o.id = x.organization_id
    WHERE x.{ts} IS NOT NULL AND {where.format(r="x")};
  ELSE
    INSERT INTO report_dirty_days (organization_id, fact, day)
    SELECT DISTINCT n.organization_id, '{fact}', v.day
    FROM new_rows n JOIN old_rows p ON p.id = n.id
    JOIN organizations o ON o.id = n.organization_id
    CROSS JOIN LATERAL (
      SELECT {nday} WHERE n.{ts} IS NOT NULL AND {where.format(r="n")}
      UNION ALL
      SELECT {pday} WHERE p.{ts} IS NOT NULL AND {where.format(r="p")}
    ) AS v(day)
    WHERE ({changed.format(r="n")}) IS DISTINCT FROM ({changed.format(r="p")});
  END IF;
  RETURN NULL;
END $$;
"""


MARK_CALLS = _simple_mark(
    "report_mark_calls",
    "calls",
    "occurred_at",
    "{r}.kind = 'call'",
    "{r}.occurred_at, {r}.kind, {r}.author_id, {r}.duration_s, {r}.organization_id",
)
MARK_TASKS = _simple_mark(
    "report_mark_tasks",
    "tasks",
    "due_at",
    "TRUE",
    "{r}.due_at, {r}.status, {r}.assignee_id, {r}.completed_at, {r}.organization_id",
)

TRIGGERS = [
    ("deals", "report_mark_deals"),
    ("deal_stage_changes", "report_mark_stage_changes"),
    ("interactions", "report_mark_calls"),
    ("tasks", "report_mark_tasks"),
]


def _create_triggers(table: str, function: str) -> None:
    op.execute(
        f"CREATE TRIGGER {function}_ins AFTER INSERT ON {table} "
        f"REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION {function}()"
    )
    op.execute(
        f"CREATE TRIGGER {function}_upd AFTER UPDATE ON {table} "
        "REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows "
        f"FOR EACH STATEMENT EXECUTE FUNCTION {function}()"
    )
    op.execute(
        f"CREATE TRIGGER {function}_del AFTER DELETE ON {table} "
        f"REFERENCING OLD TABLE AS old_rows FOR EACH STATEMENT EXECUTE FUNCTION {function}()"
    )


def _org_fk(table: str) -> sa.ForeignKeyConstraint:
    return sa.ForeignKeyConstraint(
        ["organization_id"],
        ["organizations.id"],
        name=op.f(f"fk_{table}_organization_id_organizations"),
        ondelete="CASCADE",
    )


def _count(name: str) -> sa.Column[int]:
    return sa.Column(name, sa.Integer(), server_default="0", nullable=False)


def _money(name: str) -> sa.Column[object]:
    return sa.Column(name, sa.Numeric(16, 2), server_default="0", nullable=False)


def upgrade() -> None:
    op.create_table(
        "report_deal_days",
        sa.Column("organization_id", sa.UUID(), nullable=False),
        sa.Column("day", sa.Date(), nullable=False),
        sa.Column("owner_id", sa.UUID(), nullable=False),
        sa.Column("pipeline_id", sa.UUID(), nullable=False),
        sa.Column("source", sa.String(length=100), nullable=False),
        _count("created_count"),
        _money("created_amount"),
        _count("won_count"),
        _money("won_amount"),
        _count("lost_count"),
        _money("lost_amount"),
        _count("converted_count"),
        _money("converted_amount"),
        _org_fk("report_deal_days"),
        sa.PrimaryKeyConstraint(
            "organization_id",
            "day",
            "owner_id",
            "pipeline_id",
            "source",
            name=op.f("pk_report_deal_days"),
        ),
    )
    op.create_table(
        "report_stage_days",
        sa.Column("organization_id", sa.UUID(), nullable=False),
        sa.Column("day", sa.Date(), nullable=False),
        sa.Column("pipeline_id", sa.UUID(), nullable=False),
        sa.Column("stage_id", sa.UUID(), nullable=False),
        sa.Column("owner_id", sa.UUID(), nullable=False),
        sa.Column("source", sa.String(length=100), nullable=False),
        _count("reached_count"),
        _count("exit_count"),
        sa.Column("exit_seconds", sa.BigInteger(), server_default="0", nullable=False),
        _org_fk("report_stage_days"),
        sa.PrimaryKeyConstraint(
            "organization_id",
            "day",
            "pipeline_id",
            "stage_id",
            "owner_id",
            "source",
            name=op.f("pk_report_stage_days"),
        ),
    )
    op.create_table(
        "report_call_days",
        sa.Column("organization_id", sa.UUID(), nullable=False),
        sa.Column("day", sa.Date(), nullable=False),
        sa.Column("user_id", sa.UUID(), nullable=False),
        _count("call_count"),
        sa.Column("call_seconds", sa.BigInteger(), server_default="0", nullable=False),
        _org_fk("report_call_days"),
        sa.PrimaryKeyConstraint(
            "organization_id", "day", "user_id", name=op.f("pk_report_call_days")
        ),
    )
    op.create_table(
        "report_task_days",
        sa.Column("organization_id", sa.UUID(), nullable=False),
        sa.Column("day", sa.Date(), nullable=False),
        sa.Column("assignee_id", sa.UUID(), nullable=False),
        _count("due_count"),
        _count("done_on_time"),
        _count("done_late"),
        _count("open_count"),
        _count("cancelled_count"),
        _org_fk("report_task_days"),
        sa.PrimaryKeyConstraint(
            "organization_id", "day", "assignee_id", name=op.f("pk_report_task_days")
        ),
    )
    op.create_table(
        "report_dirty_days",
        sa.Column("id", sa.BigInteger(), sa.Identity(always=True), nullable=False),
        sa.Column("organization_id", sa.UUID(), nullable=False),
        sa.Column("fact", sa.String(length=16), nullable=False),
        sa.Column("day", sa.Date(), nullable=False),
        sa.Column(
            "marked_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False
        ),
        _org_fk("report_dirty_days"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_report_dirty_days")),
        sa.CheckConstraint(
            "fact IN ('sales', 'calls', 'tasks')", name=op.f("ck_report_dirty_days_known_fact")
        ),
    )
    op.create_index(
        "ix_report_dirty_days_org_fact_day",
        "report_dirty_days",
        ["organization_id", "fact", "day"],
        unique=False,
    )
    op.create_table(
        "report_refresh_state",
        sa.Column("organization_id", sa.UUID(), nullable=False),
        sa.Column("refreshed_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("days_refreshed", sa.Integer(), server_default="0", nullable=False),
        sa.Column("rebuilt_at", sa.DateTime(timezone=True), nullable=True),
        _org_fk("report_refresh_state"),
        sa.PrimaryKeyConstraint("organization_id", name=op.f("pk_report_refresh_state")),
    )
    # What the per-day recomputation reads (deals by creation day already has an index).
    op.create_index(
        "ix_deals_org_closed",
        "deals",
        ["organization_id", "closed_at"],
        unique=False,
        postgresql_where=sa.text("closed_at IS NOT NULL"),
    )
    op.create_index(
        "ix_tasks_org_due",
        "tasks",
        ["organization_id", "due_at"],
        unique=False,
        postgresql_where=sa.text("due_at IS NOT NULL"),
    )
    for ddl in (MARK_DEALS, MARK_STAGE_CHANGES, MARK_CALLS, MARK_TASKS):
        op.execute(ddl)
    for table, function in TRIGGERS:
        _create_triggers(table, function)


def downgrade() -> None:
    for table, function in reversed(TRIGGERS):
        for suffix in ("del", "upd", "ins"):
            op.execute(f"DROP TRIGGER {function}_{suffix} ON {table}")
        op.execute(f"DROP FUNCTION {function}()")
    op.drop_index("ix_tasks_org_due", table_name="tasks")
    op.drop_index("ix_deals_org_closed", table_name="deals")
    op.drop_table("report_refresh_state")
    op.drop_index("ix_report_dirty_days_org_fact_day", table_name="report_dirty_days")
    op.drop_table("report_dirty_days")
    op.drop_table("report_task_days")
    op.drop_table("report_call_days")
    op.drop_table("report_stage_days")
    op.drop_table("report_deal_days")
