"""Appraisal field KPIs: field roll-ups, scorecards, reviews, RFM segments.

``field_daily`` holds one row per worker and local day with the counts every field KPI is made
of; ``field_deal_credits`` credits each won deal to its owner and to everyone who did work on
it. Both are maintained incrementally: triggers on the source tables (tasks, check-ins, daily
summaries, deals, visit feedback) only queue the (worker, day) pairs and deals they touch, and
the worker's ``field_rollups`` job recomputes exactly those (``backend.appraisal.field_rollups``).
Bulk loaders may switch the triggers off for their session with
``SET fieldcrm.skip_field_marks = 'on'`` and rebuild the roll-ups afterwards.

Revision ID: 0011
Revises: 0010
Create Date: 2026-11-24 09:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0011"
down_revision: str | None = "0010"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

ROLE = postgresql.ENUM("admin", "manager", "field", name="user_role", create_type=False)

MARK_FUNCTIONS = """
CREATE FUNCTION field_skip_marks() RETURNS boolean LANGUAGE sql STABLE AS $$
  SELECT coalesce(current_setting('fieldcrm.skip_field_marks', true), '') = 'on'
$$;

CREATE FUNCTION field_mark_at(org uuid, uid uuid, at timestamptz) RETURNS void
LANGUAGE plpgsql AS $$
BEGIN
  IF uid IS NULL OR at IS NULL THEN
    RETURN;
  END IF;
  INSERT INTO field_rollup_queue (organization_id, user_id, day)
  SELECT org, u.id, (at AT TIME ZONE u.time_zone)::date FROM users u WHERE u.id = uid
  ON CONFLICT DO NOTHING;
END $$;

CREATE FUNCTION field_task_marks(r tasks) RETURNS void LANGUAGE plpgsql AS $$
BEGIN
  PERFORM field_mark_at(r.organization_id, r.assignee_id, r.due_at);
  PERFORM field_mark_at(r.organization_id, r.assignee_id, r.completed_at);
  -- arrivals are judged against the task's window: the days of its check-ins
  PERFORM field_mark_at(c.organization_id, c.user_id, c.at)
     FROM check_ins c WHERE c.task_id = r.id AND c.kind = 'in';
  IF r.deal_id IS NOT NULL THEN
    INSERT INTO field_deal_queue (deal_id, organization_id)
    VALUES (r.deal_id, r.organization_id) ON CONFLICT DO NOTHING;
  END IF;
END $$;

CREATE FUNCTION field_tasks_changed() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  IF field_skip_marks() THEN
    RETURN NULL;
  END IF;
  IF TG_OP = 'UPDATE' AND (OLD.assignee_id, OLD.status, OLD.kind, OLD.due_at, OLD.completed_at,
      OLD.window_start, OLD.window_end, OLD.deal_id)
      IS NOT DISTINCT FROM (NEW.assignee_id, NEW.status, NEW.kind, NEW.due_at,
      NEW.completed_at, NEW.window_start, NEW.window_end, NEW.deal_id) THEN
    RETURN NULL;
  END IF;
  IF TG_OP <> 'INSERT' THEN
    PERFORM field_task_marks(OLD);
  END IF;
  IF TG_OP <> 'DELETE' THEN
    PERFORM field_task_marks(NEW);
  END IF;
  RETURN NULL;
END $$;

CREATE FUNCTION field_check_ins_changed() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  IF field_skip_marks() THEN
    RETURN NULL;
  END IF;
  IF TG_OP <> 'INSERT' THEN
    PERFORM field_mark_at(OLD.organization_id, OLD.user_id, OLD.at);
  END IF;
  IF TG_OP <> 'DELETE' THEN
    PERFORM field_mark_at(NEW.organization_id, NEW.user_id, NEW.at);
  END IF;
  RETURN NULL;
END $$;

CREATE FUNCTION field_summaries_changed() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  IF field_skip_marks() THEN
    RETURN NULL;
  END IF;
  IF TG_OP <> 'INSERT' THEN
    INSERT INTO field_rollup_queue (organization_id, user_id, day)
    VALUES (OLD.organization_id, OLD.user_id, OLD.day) ON CONFLICT DO NOTHING;
  END IF;
  IF TG_OP <> 'DELETE' THEN
    INSERT INTO field_rollup_queue (organization_id, user_id, day)
    VALUES (NEW.organization_id, NEW.user_id, NEW.day) ON CONFLICT DO NOTHING;
  END IF;
  RETURN NULL;
END $$;

CREATE FUNCTION field_deals_changed() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  IF field_skip_marks() THEN
    RETURN NULL;
  END IF;
  IF TG_OP = 'UPDATE' AND (OLD.stage_id, OLD.amount, OLD.owner_id, OLD.closed_at)
      IS NOT DISTINCT FROM (NEW.stage_id, NEW.amount, NEW.owner_id, NEW.closed_at) THEN
    RETURN NULL;
  END IF;
  IF TG_OP = 'DELETE' THEN
    INSERT INTO field_deal_queue (deal_id, organization_id)
    VALUES (OLD.id, OLD.organization_id) ON CONFLICT DO NOTHING;
  ELSE
    INSERT INTO field_deal_queue (deal_id, organization_id)
    VALUES (NEW.id, NEW.organization_id) ON CONFLICT DO NOTHING;
  END IF;
  RETURN NULL;
END $$;

CREATE FUNCTION field_feedback_changed() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  IF field_skip_marks() THEN
    RETURN NULL;
  END IF;
  -- a rating counts on the day its visit was done, for the visit's assignee
  IF TG_OP <> 'INSERT' THEN
    PERFORM field_mark_at(t.organization_id, t.assignee_id, t.completed_at)
       FROM tasks t WHERE t.id = OLD.task_id;
  END IF;
  IF TG_OP <> 'DELETE' THEN
    PERFORM field_mark_at(t.organization_id, t.assignee_id, t.completed_at)
       FROM tasks t WHERE t.id = NEW.task_id;
  END IF;
  RETURN NULL;
END $$;
"""

TRIGGERS = """
CREATE TRIGGER field_tasks_marks AFTER INSERT OR UPDATE OR DELETE ON tasks
  FOR EACH ROW EXECUTE FUNCTION field_tasks_changed();
CREATE TRIGGER field_check_ins_marks AFTER INSERT OR UPDATE OR DELETE ON check_ins
  FOR EACH ROW EXECUTE FUNCTION field_check_ins_changed();
CREATE TRIGGER field_summaries_marks AFTER INSERT OR UPDATE OR DELETE ON daily_summaries
  FOR EACH ROW EXECUTE FUNCTION field_summaries_changed();
CREATE TRIGGER field_deals_marks AFTER INSERT OR UPDATE OR DELETE ON deals
  FOR EACH ROW EXECUTE FUNCTION field_deals_changed();
DO $$
BEGIN
  -- visit_feedback comes with the customer notifications (0009)
  IF to_regclass('visit_feedback') IS NOT NULL THEN
    CREATE TRIGGER field_feedback_marks AFTER INSERT OR UPDATE OR DELETE ON visit_feedback
      FOR EACH ROW EXECUTE FUNCTION field_feedback_changed();
  END IF;
END $$;
"""

DROP_TRIGGERS = """
DROP TRIGGER IF EXISTS field_deals_marks ON deals;
DROP TRIGGER IF EXISTS field_summaries_marks ON daily_summaries;
DROP TRIGGER IF EXISTS field_check_ins_marks ON check_ins;
DROP TRIGGER IF EXISTS field_tasks_marks ON tasks;
DROP FUNCTION IF EXISTS field_feedback_changed();
DROP FUNCTION IF EXISTS field_deals_changed();
DROP FUNCTION IF EXISTS field_summaries_changed();
DROP FUNCTION IF EXISTS field_check_ins_changed();
DROP FUNCTION IF EXISTS field_tasks_changed();
DROP FUNCTION IF EXISTS field_task_marks(tasks);
DROP FUNCTION IF EXISTS field_mark_at(uuid, uuid, timestamptz);
DROP FUNCTION IF EXISTS field_skip_marks();
"""


def _statements(script: str) -> list[str]:
    """The statements of a script (one per execute: asyncpg prepares each); statements end
    with a semicolon at the end of a line, function bodies with ``END $$;``."""
    out: list[str] = []
    current: list[str] = []
    in_body = False
    for line in script.strip().splitlines():
        current.append(line)
        if "$$" in line:
            in_body = line.count("$$") == 1 and not in_body
        if line.rstrip().endswith(";") and not in_body:
            out.append("\n".join(current))
            current = []
    return out


def _org_fk(table: str) -> sa.ForeignKeyConstraint:
    return sa.ForeignKeyConstraint(
        ["organization_id"],
        ["organizations.id"],
        name=op.f(f"fk_{table}_organization_id_organizations"),
        ondelete="CASCADE",
    )


def _user_fk(table: str, column: str = "user_id") -> sa.ForeignKeyConstraint:
    return sa.ForeignKeyConstraint(
        [column], ["users.id"], name=op.f(f"fk_{table}_{column}_users"), ondelete="CASCADE"
    )


def _counts() -> list[sa.Column[int]]:
    names = (
        "visits_done",
        "arrivals_judged",
        "arrivals_on_time",
        "sla_judged",
        "sla_met",
        "check_ins",
        "check_ins_verified",
        "on_site_s",
        "driving_s",
        "idle_s",
        "rating_sum",
        "rating_count",
        "tasks_overdue",
    )
    return [sa.Column(name, sa.Integer(), server_default="0", nullable=False) for name in names]


def upgrade() -> None:
    op.create_table(
        "field_daily",
        sa.Column("user_id", sa.UUID(), nullable=False),
        sa.Column("day", sa.Date(), nullable=False),
        sa.Column("organization_id", sa.UUID(), nullable=False),
        *_counts(),
        sa.Column("distance_m", sa.Float(), server_default="0", nullable=False),
        sa.Column("computed_at", sa.DateTime(timezone=True), nullable=False),
        _org_fk("field_daily"),
        _user_fk("field_daily"),
        sa.PrimaryKeyConstraint("user_id", "day", name=op.f("pk_field_daily")),
    )
    op.create_table(
        "field_deal_credits",
        sa.Column("deal_id", sa.UUID(), nullable=False),
        sa.Column("user_id", sa.UUID(), nullable=False),
        sa.Column("organization_id", sa.UUID(), nullable=False),
        sa.Column("day", sa.Date(), nullable=False),
        sa.Column("amount", sa.Numeric(14, 2), nullable=False),
        _org_fk("field_deal_credits"),
        _user_fk("field_deal_credits"),
        sa.ForeignKeyConstraint(
            ["deal_id"],
            ["deals.id"],
            name=op.f("fk_field_deal_credits_deal_id_deals"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("deal_id", "user_id", name=op.f("pk_field_deal_credits")),
    )
    op.create_index(
        "ix_field_deal_credits_user_day", "field_deal_credits", ["user_id", "day"], unique=False
    )
    # Queues of what the triggers touched; no foreign keys (rows of deleted users or deals are
    # simply dropped when processed).
    op.create_table(
        "field_rollup_queue",
        sa.Column("user_id", sa.UUID(), nullable=False),
        sa.Column("day", sa.Date(), nullable=False),
        sa.Column("organization_id", sa.UUID(), nullable=False),
        sa.PrimaryKeyConstraint("user_id", "day", name=op.f("pk_field_rollup_queue")),
    )
    op.create_table(
        "field_deal_queue",
        sa.Column("deal_id", sa.UUID(), nullable=False),
        sa.Column("organization_id", sa.UUID(), nullable=False),
        sa.PrimaryKeyConstraint("deal_id", name=op.f("pk_field_deal_queue")),
    )
    op.create_table(
        "field_rollup_state",
        sa.Column("name", sa.String(length=40), nullable=False),
        sa.Column("watermark", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("name", name=op.f("pk_field_rollup_state")),
    )
    # The job finds tasks that became overdue since its last run (no row changes then).
    op.create_index(
        "ix_tasks_active_due_assigned",
        "tasks",
        ["due_at"],
        unique=False,
        postgresql_where=sa.text(
            "status IN ('open', 'in_progress') AND assignee_id IS NOT NULL AND due_at IS NOT NULL"
        ),
    )
    for statement in _statements(MARK_FUNCTIONS):
        op.execute(statement)
    for statement in _statements(TRIGGERS):
        op.execute(statement)

    op.create_table(
        "scorecards",
        sa.Column("organization_id", sa.UUID(), nullable=False),
        sa.Column("role", ROLE, nullable=False),
        sa.Column("items", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_by_id", sa.UUID(), nullable=True),
        _org_fk("scorecards"),
        sa.ForeignKeyConstraint(
            ["updated_by_id"],
            ["users.id"],
            name=op.f("fk_scorecards_updated_by_id_users"),
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("organization_id", "role", name=op.f("pk_scorecards")),
    )
    op.create_table(
        "scorecard_reviews",
        sa.Column("user_id", sa.UUID(), nullable=False),
        sa.Column("author_id", sa.UUID(), nullable=True),
        sa.Column("period_start", sa.Date(), nullable=False),
        sa.Column("period_end", sa.Date(), nullable=False),
        sa.Column("comment", sa.Text(), nullable=False),
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
        _org_fk("scorecard_reviews"),
        _user_fk("scorecard_reviews"),
        sa.ForeignKeyConstraint(
            ["author_id"],
            ["users.id"],
            name=op.f("fk_scorecard_reviews_author_id_users"),
            ondelete="SET NULL",
        ),
        sa.CheckConstraint(
            "period_end >= period_start", name=op.f("ck_scorecard_reviews_period_order")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_scorecard_reviews")),
    )
    op.create_index(
        op.f("ix_scorecard_reviews_organization_id"),
        "scorecard_reviews",
        ["organization_id"],
        unique=False,
    )
    op.create_index(
        "ix_scorecard_reviews_user_period",
        "scorecard_reviews",
        ["user_id", "period_start", "period_end"],
        unique=False,
    )
    op.create_table(
        "customer_rfm",
        sa.Column("customer_id", sa.UUID(), nullable=False),
        sa.Column("organization_id", sa.UUID(), nullable=False),
        sa.Column("last_won_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("recency_days", sa.Integer(), nullable=False),
        sa.Column("frequency", sa.Integer(), nullable=False),
        sa.Column("monetary", sa.Numeric(16, 2), nullable=False),
        sa.Column("r_score", sa.SmallInteger(), nullable=False),
        sa.Column("f_score", sa.SmallInteger(), nullable=False),
        sa.Column("m_score", sa.SmallInteger(), nullable=False),
        sa.Column("segment", sa.String(length=32), nullable=False),
        sa.Column("computed_at", sa.DateTime(timezone=True), nullable=False),
        _org_fk("customer_rfm"),
        sa.ForeignKeyConstraint(
            ["customer_id"],
            ["customers.id"],
            name=op.f("fk_customer_rfm_customer_id_customers"),
            ondelete="CASCADE",
        ),
        sa.CheckConstraint(
            "r_score BETWEEN 1 AND 5 AND f_score BETWEEN 1 AND 5 AND m_score BETWEEN 1 AND 5",
            name=op.f("ck_customer_rfm_scores_range"),
        ),
        sa.PrimaryKeyConstraint("customer_id", name=op.f("pk_customer_rfm")),
    )
    op.create_index(
        "ix_customer_rfm_org_segment", "customer_rfm", ["organization_id", "segment"], unique=False
    )


def downgrade() -> None:
    op.drop_index("ix_customer_rfm_org_segment", table_name="customer_rfm")
    op.drop_table("customer_rfm")
    op.drop_index("ix_scorecard_reviews_user_period", table_name="scorecard_reviews")
    op.drop_index(op.f("ix_scorecard_reviews_organization_id"), table_name="scorecard_reviews")
    op.drop_table("scorecard_reviews")
    op.drop_table("scorecards")
    op.execute(
        "DO $$ BEGIN IF to_regclass('visit_feedback') IS NOT NULL THEN"
        " DROP TRIGGER IF EXISTS field_feedback_marks ON visit_feedback; END IF; END $$"
    )
    for statement in _statements(DROP_TRIGGERS):
        op.execute(statement)
    op.drop_index("ix_tasks_active_due_assigned", table_name="tasks")
    op.drop_table("field_rollup_state")
    op.drop_table("field_deal_queue")
    op.drop_table("field_rollup_queue")
    op.drop_index("ix_field_deal_credits_user_day", table_name="field_deal_credits")
    op.drop_table("field_deal_credits")
    op.drop_table("field_daily")
