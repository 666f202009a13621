"""The slow-changing part of the live board, read once and kept per process: an organisation's
active field workers in display order (name, open shift, current task, next visit), its teams
and their members, with each worker's unchanging JSON pieces encoded ahead.

A roster is trusted only while its *fingerprint* holds. Statement triggers on the tables it is
read from (users, teams, team members, shifts, tasks, sites: migration 0012) add a row to
``live_changes`` for each organisation a statement touched; the fingerprint is an XOR of a
64-bit hash of the ids of the organisation's rows there (``FINGERPRINT_SQL``, an index-only scan
of the last minute's changes). The row commits with the change it stands for, so every live
request, recomputing the fingerprint before it uses the roster, sees a change committed by any
process at its next look; NOTIFY-based invalidation would race with it. The fingerprint is read
*before* the rows it stands for: a change committed in between makes the next check fail (one
rebuild too many), never a stale answer. ``prune_changes`` (the worker, every minute) deletes
old rows, which changes the fingerprint too: that only costs a rebuild.

The next visit depends on the time: a roster answers for ``now`` from ``built_at`` up to
``valid_until``, the first moment a visit could enter or leave the window of ``live`` (planned
from 12 hours ago to two weeks ahead), at most an hour.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Final

import msgspec
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

# The next task is the first open visit planned from 12 hours ago to two weeks ahead.
NEXT_FROM: Final = timedelta(hours=12)
NEXT_UNTIL: Final = timedelta(days=14)
HORIZON: Final = timedelta(hours=1)

_VISIT_KINDS = "('measurement', 'installation', 'visit')"


# ``age(xmin)`` is this transaction's id minus xmin (32-bit): the id minus age is xmin again,
# at a fraction of the cost of ``xmin::text::bigint``.
_XID = "(SELECT age('3'::xid)::bigint + 3)"


def version_sql(alias: str, table: int) -> str:
    """SQL: the 64-bit hash of a row version of ``alias`` (distinct per table)."""
    return (
        f"hashtidextended({alias}.ctid, (({_XID} - age({alias}.xmin)) & 4294967295) * 8 + {table})"
    )


# The roster's fingerprint (named parameter ``org``; see the module docstring).
FINGERPRINT_SQL: Final = """
SELECT coalesce(bit_xor(hashint8extended(c.id, 0)), 0) FROM live_changes c
WHERE c.organization_id = :org
"""
# Changes kept this long: a roster built before then is rebuilt once after the prune.
CHANGES_KEPT: Final = timedelta(minutes=1)


async def prune_changes(session: AsyncSession) -> int:
    """Delete the change rows older than ``CHANGES_KEPT``; returns how many. By the database's
    clock: the triggers stamp the rows with it."""
    result = await session.execute(
        text("DELETE FROM live_changes WHERE at < now() - CAST(:kept AS interval)"),
        {"kept": CHANGES_KEPT},
    )
    return int(getattr(result, "rowcount", 0) or 0)


# The current task of a worker: the task in progress started last.
CURRENT_SQL: Final = """
SELECT DISTINCT ON (t.assignee_id) t.assignee_id, t.id, t.title, t.site_id
FROM tasks t WHERE t.organization_id = :org AND t.status = 'in_progress'
ORDER BY t.assignee_id, t.started_at DESC NULLS LAST, t.id
"""

_WORKERS = text(f"""
SELECT u.id, u.full_name, s.user_id IS NOT NULL AS on_shift, cur.id AS task_id, cur.title
FROM users u
LEFT JOIN shifts s ON s.user_id = u.id AND s.ended_at IS NULL AND s.organization_id = :org
LEFT JOIN ({CURRENT_SQL}) cur ON cur.assignee_id = u.id
WHERE u.organization_id = :org AND u.is_active AND u.role = 'field'
ORDER BY u.full_name, u.id
""")
_TEAMS = text("""
SELECT t.id, t.lead_id, array_remove(array_agg(m.user_id), NULL) AS members
FROM teams t LEFT JOIN team_members m ON m.team_id = t.id AND m.organization_id = :org
WHERE t.organization_id = :org
GROUP BY t.id, t.lead_id
""")
_UPCOMING = text(f"""
SELECT t.assignee_id, t.id, t.title, coalesce(t.window_start, t.due_at) AS starts
FROM tasks t
WHERE t.organization_id = :org AND t.status = 'open' AND t.kind IN {_VISIT_KINDS}
  AND coalesce(t.window_start, t.due_at) BETWEEN :low AND :high
ORDER BY t.assignee_id, starts, t.id
""")

_ENCODER = msgspec.json.Encoder()


@dataclass(frozen=True, slots=True)
class Worker:
    """One worker's unchanging part of a live Feature: the JSON before the geometry (``head``),
    between geometry and status (``middle``), and after the position's properties (``tail``)."""

    id: uuid.UUID
    on_shift: bool
    has_task: bool
    head: bytes
    middle: bytes
    tail: bytes


@dataclass(frozen=True, slots=True)
class Team:
    """A team of the organisation: its lead and its members (ids, possibly not field staff)."""

    lead_id: uuid.UUID | None
    members: frozenset[uuid.UUID]


@dataclass(frozen=True, slots=True)
class Window:
    """The planned times of the open visits a roster read: [low, high]."""

    low: datetime
    high: datetime

    @classmethod
    def at(cls, now: datetime) -> Window:
        """The window of a roster built at ``now``: it holds every visit that can be the next
        one until ``now + HORIZON``."""
        return cls(now - NEXT_FROM, now + NEXT_UNTIL + HORIZON)


@dataclass(frozen=True, slots=True)
class Roster:
    """An organisation's live board without the positions, valid while ``fingerprint`` holds
    and for ``now`` in [``built_at``, ``valid_until``]."""

    fingerprint: int
    window: Window
    built_at: datetime
    valid_until: datetime
    workers: tuple[Worker, ...]  # by name, then id
    teams: dict[uuid.UUID, Team]

    def answers_for(self, now: datetime) -> bool:
        """Whether the next visits it chose are still the next ones at ``now``."""
        return self.built_at <= now <= self.valid_until


def _worker(
    user_id: uuid.UUID,
    name: str,
    on_shift: bool,
    current: dict[str, object] | None,
    upcoming: dict[str, object] | None,
) -> Worker:
    uid = _ENCODER.encode(user_id)
    return Worker(
        id=user_id,
        on_shift=on_shift,
        has_task=current is not None,
        head=b'{"type":"Feature","id":' + uid + b',"geometry":',
        middle=b',"properties":{"userId":'
        + uid
        + b',"name":'
        + _ENCODER.encode(name)
        + b',"status":"',
        tail=b',"currentTask":'
        + _ENCODER.encode(current)
        + b',"nextTask":'
        + _ENCODER.encode(upcoming)
        + b"}}",
    )


async def build(
    session: AsyncSession,
    organization_id: uuid.UUID,
    fingerprint: int,
    window: Window,
    now: datetime,
) -> Roster:
    """Read the roster of an organisation for ``window``; ``fingerprint`` must have been read
    before this is called, in this transaction or an earlier one."""
    org = {"org": organization_id}
    span = {"org": organization_id, "low": window.low, "high": window.high}
    valid_until = window.high - NEXT_UNTIL  # beyond it, visits past the window could enter
    firsts: dict[uuid.UUID, dict[str, object]] = {}
    for row in (await session.execute(_UPCOMING, span)).all():
        starts: datetime = row.starts
        if starts > now + NEXT_UNTIL:  # enters the window two weeks before it starts
            valid_until = min(valid_until, starts - NEXT_UNTIL - timedelta(microseconds=1))
        elif starts >= now - NEXT_FROM:  # in the window; leaves it 12 hours after its start
            valid_until = min(valid_until, starts + NEXT_FROM)
            if row.assignee_id not in firsts:
                firsts[row.assignee_id] = {"id": row.id, "title": row.title, "startsAt": starts}
    workers = tuple(
        _worker(
            row.id,
            row.full_name,
            row.on_shift,
            None if row.task_id is None else {"id": row.task_id, "title": row.title},
            firsts.get(row.id),
        )
        for row in (await session.execute(_WORKERS, org)).all()
    )
    teams = {
        row.id: Team(row.lead_id, frozenset(row.members))
        for row in (await session.execute(_TEAMS, org)).all()
    }
    return Roster(fingerprint, window, now, valid_until, workers, teams)
