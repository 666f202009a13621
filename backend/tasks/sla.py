"""SLA scans: tell assignees about overdue tasks, then escalate to their team leads.

Each scan is one SQL statement that claims due rows with ``FOR UPDATE SKIP LOCKED``, stamps them
(``overdue_notified_at`` / ``escalated_at``) and writes the notifications and outbox rows, all
in the caller's transaction. So:
- two workers scanning at once never claim the same task (the second skips locked rows);
- a worker that dies before committing leaves nothing stamped, and the next scan redoes it;
- a task is stamped once per due time, and the notifications' dedupe keys (task and due time)
  make a repeat harmless anyway; a new due time gets its own notice.
The partial indexes ``ix_tasks_overdue_due`` / ``ix_tasks_escalation_due`` hold only tasks still
waiting for a notice, so a scan costs the same with ten or a million open tasks.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

BATCH = 1000

# Localised texts chosen by the organisation's locale (SQL CASE); {title} is the task's title.
_TEXTS = {
    "overdue": {"en": "Overdue: ", "ru": "Просрочено: "},
    "escalated": {"en": "Overdue in your team: ", "ru": "Просрочено в команде: "},
}


def _prefix(kind: str) -> str:
    texts = _TEXTS[kind]
    return f"CASE WHEN o.locale LIKE 'ru%' THEN '{texts['ru']}' ELSE '{texts['en']}' END"


# Queues the CTE ``notes`` (the notifications just inserted) in the outbox, like ``notify``.
_QUEUE_NOTES = """
    INSERT INTO outbox (organization_id, topic, payload, dedupe_key, status, attempts,
                        available_at, created_at)
    SELECT organization_id, 'notification',
           jsonb_build_object('notificationId', id, 'userId', user_id, 'kind', kind),
           'notification:' || id, 'pending', 0, :now, :now
    FROM notes
    ON CONFLICT (organization_id, dedupe_key) DO NOTHING"""

_OVERDUE_SQL = text(f"""
WITH due AS (
    SELECT id FROM tasks
    WHERE status IN ('open', 'in_progress') AND overdue_notified_at IS NULL
      AND due_at IS NOT NULL AND due_at <= :now
    ORDER BY due_at
    LIMIT :batch
    FOR UPDATE SKIP LOCKED
), claimed AS (
    UPDATE tasks t
    SET overdue_notified_at = :now,
        escalate_at = t.due_at + make_interval(mins => t.escalate_after_minutes),
        updated_at = :now
    FROM due WHERE t.id = due.id
    RETURNING t.id, t.organization_id, t.assignee_id, t.title, t.due_at, t.deal_id
), notes AS (
    INSERT INTO notifications (organization_id, user_id, kind, title, link, data, urgent,
                               dedupe_key, created_at, updated_at)
    SELECT c.organization_id, c.assignee_id, 'task_overdue',
           left({_prefix("overdue")} || c.title, 300), '/tasks/' || c.id,
           jsonb_build_object('taskId', c.id, 'dealId', c.deal_id, 'dueAt', c.due_at),
           true, 'task_overdue:' || c.id || ':' || extract(epoch FROM c.due_at)::bigint, :now, :now
    FROM claimed c JOIN organizations o ON o.id = c.organization_id
    WHERE c.assignee_id IS NOT NULL
    ON CONFLICT (organization_id, dedupe_key) DO NOTHING
    RETURNING id, organization_id, user_id, kind
), queued AS (
{_QUEUE_NOTES}
)
SELECT count(*) FROM claimed
""")

_ESCALATION_SQL = text(f"""
WITH due AS (
    SELECT id FROM tasks
    WHERE status IN ('open', 'in_progress') AND escalated_at IS NULL
      AND escalate_at IS NOT NULL AND escalate_at <= :now
    ORDER BY escalate_at
    LIMIT :batch
    FOR UPDATE SKIP LOCKED
), claimed AS (
    UPDATE tasks t SET escalated_at = :now, updated_at = :now
    FROM due WHERE t.id = due.id
    RETURNING t.id, t.organization_id, t.assignee_id, t.title, t.due_at, t.deal_id
), leads AS (
    SELECT DISTINCT c.id AS task_id, tm.lead_id AS user_id
    FROM claimed c
    JOIN team_members m ON m.user_id = c.assignee_id
    JOIN teams tm ON tm.id = m.team_id
    JOIN users u ON u.id = tm.lead_id AND u.is_active
    WHERE tm.lead_id <> c.assignee_id
), admins AS (
    -- Nobody leads the assignee (or the assignee leads their own team): tell the admins.
    SELECT c.id AS task_id, u.id AS user_id
    FROM claimed c
    JOIN users u ON u.organization_id = c.organization_id AND u.role = 'admin' AND u.is_active
    WHERE u.id IS DISTINCT FROM c.assignee_id
      AND NOT EXISTS (SELECT 1 FROM leads l WHERE l.task_id = c.id)
), recipients AS (
    SELECT * FROM leads UNION SELECT * FROM admins
), notes AS (
    INSERT INTO notifications (organization_id, user_id, kind, title, link, data, urgent,
                               dedupe_key, created_at, updated_at)
    SELECT c.organization_id, r.user_id, 'task_escalated',
           left({_prefix("escalated")} || c.title, 300), '/tasks/' || c.id,
           jsonb_build_object('taskId', c.id, 'dealId', c.deal_id, 'dueAt', c.due_at,
                              'assigneeId', c.assignee_id),
           true,
           'task_escalated:' || c.id || ':' || extract(epoch FROM c.due_at)::bigint
               || ':' || r.user_id,
           :now, :now
    FROM recipients r
    JOIN claimed c ON c.id = r.task_id
    JOIN organizations o ON o.id = c.organization_id
    ON CONFLICT (organization_id, dedupe_key) DO NOTHING
    RETURNING id, organization_id, user_id, kind
), queued AS (
{_QUEUE_NOTES}
)
SELECT count(*) FROM claimed
""")


async def notify_overdue(session: AsyncSession, now: datetime, *, batch: int = BATCH) -> int:
    """Claim up to ``batch`` tasks that became overdue by ``now`` and notify their assignees;
    returns how many tasks were claimed."""
    claimed = await session.scalar(_OVERDUE_SQL, {"now": now, "batch": batch})
    return int(claimed or 0)


async def escalate_overdue(session: AsyncSession, now: datetime, *, batch: int = BATCH) -> int:
    """Claim up to ``batch`` overdue tasks whose escalation delay has passed and notify the
    assignee's team leads (or the admins); returns how many tasks were claimed."""
    claimed = await session.scalar(_ESCALATION_SQL, {"now": now, "batch": batch})
    return int(claimed or 0)


async def run_scan(session: AsyncSession, now: datetime) -> tuple[int, int]:
    """Both scans, draining every due task: (overdue notices, escalations)."""
    overdue = escalated = 0
    while (n := await notify_overdue(session, now)) > 0:
        overdue += n
        if n < BATCH:
            break
    while (n := await escalate_overdue(session, now)) > 0:
        escalated += n
        if n < BATCH:
            break
    return overdue, escalated
