"""Live team status: where each visible worker is and what they are doing, as GeoJSON.

Who may look (privacy): admins see their organisation's field staff, managers the members of
the teams they lead, a worker only themself. Every look at other people's positions is written
to the audit log (entity ``location``): one entry per team looked at (``entity_id`` the team),
or for an admin's look at everyone, the organisation — so a worker can find every look that
covered them (``mydata``) without each look storing thousands of ids.

Status of a worker, in this order: ``off_shift`` (no shift in progress), ``offline`` (nothing
heard for 10 minutes), ``on_site`` (a task in progress and within its site's radius),
``driving`` (speed ≥ 2 m/s), else ``idle``.

How it stays fast for thousands of workers (``livecache`` keeps the parts per process): the
slow-changing part — workers, names, shifts, current and next tasks, teams — is a ``roster``
kept with the fingerprint of the change log of its tables (``roster``); positions are kept with
the fingerprint of the row versions they were read from. One
statement per request recomputes both fingerprints in PostgreSQL, sends the positions (and each
one's distance to the site of the current task) only when theirs changed, and writes the audit
entry when the kept roster still holds (else the roster is read again and the entry written
after it). So the answer is always that of the committed data, whichever process changed it;
each worker's JSON is encoded once per change, and the status follows the clock at each request.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import msgspec
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from backend.accounts.models import Role
from backend.lib.errors import NotFound
from backend.lib.tenancy import Actor
from backend.tracking import roster as rosters
from backend.tracking.livecache import (
    CACHE,
    Entry,
    LiveCache,
    Positions,
    View,
    features,
)
from backend.tracking.roster import Roster, Window, Worker

_AUDIT_SQL = """
INSERT INTO audit_log (organization_id, entity, entity_id, action, actor_id, at, changes)
SELECT :org, 'location', s.id, 'viewed_live', :actor, :now,
       jsonb_build_object('scope', s.kind, 'workers', CAST(:workers AS integer))
FROM unnest(CAST(:scope_ids AS uuid[]), CAST(:scope_kinds AS text[])) AS s(id, kind)
"""
_AUDIT = text(_AUDIT_SQL)

# The fingerprints; the positions when theirs (or the current tasks' sites) changed; the audit
# entry when the roster the caller looked with still holds. Uncorrelated subqueries make the
# gate a one-time filter: unchanged positions are not even scanned.
_CHECK = text(f"""
WITH fp AS MATERIALIZED (
    SELECT ({rosters.FINGERPRINT_SQL}) AS roster,
           (SELECT coalesce(bit_xor({rosters.version_sql("lp", 0)}), 0)
            FROM latest_positions lp WHERE lp.organization_id = :org) AS positions
), audit AS (
    {_AUDIT_SQL}, fp
    WHERE CAST(:workers AS integer) > 0 AND fp.roster = CAST(:roster AS bigint)
), gate AS (
    SELECT fp.positions IS DISTINCT FROM CAST(:positions AS bigint)
           OR fp.roster IS DISTINCT FROM CAST(:sites AS bigint) AS wanted
    FROM fp
), here AS (
    SELECT cur.assignee_id, si.location
    FROM ({rosters.CURRENT_SQL}) cur JOIN sites si ON si.id = cur.site_id
), pos AS (
    SELECT array_agg(lp.user_id) AS ids, array_agg(lp.recorded_at) AS at,
           array_agg(lp.lat) AS lat, array_agg(lp.lon) AS lon,
           array_agg(lp.accuracy_m) AS accuracy, array_agg(lp.speed_mps) AS speed,
           array_agg(lp.heading_deg) AS heading, array_agg(lp.battery_pct) AS battery,
           array_agg(lp.mocked) AS mocked,
           array_agg(ST_Distance(here.location, lp.location)) AS site_m
    FROM latest_positions lp LEFT JOIN here ON here.assignee_id = lp.user_id
    WHERE lp.organization_id = :org AND (SELECT wanted FROM gate)
)
SELECT fp.roster, fp.positions, gate.wanted, pos.* FROM fp, gate, pos
""")


@dataclass(frozen=True, slots=True)
class _Look:
    """What one look shows and how it is audited."""

    workers: tuple[Worker, ...]
    scope_ids: list[uuid.UUID]
    scope_kinds: list[str]
    seen: int  # workers shown other than the caller


def _look(roster: Roster, actor: Actor, team_id: uuid.UUID | None) -> _Look:
    """The workers ``actor`` may see (of ``team_id``, or all visible) and the audit's scope."""
    scope: list[tuple[uuid.UUID, str]]
    if team_id is not None:
        team = roster.teams.get(team_id)
        if team is None:
            raise NotFound("Team not found")
        # An empty team shows nothing to anyone: only a team with members is guarded.
        if team.members and actor.role is not Role.ADMIN and team.lead_id != actor.user_id:
            raise NotFound("Team not found")
        ids: frozenset[uuid.UUID] | None = team.members
        scope = [(team_id, "team")]
    elif actor.role is Role.ADMIN:
        ids = None
        scope = [(actor.organization_id, "organization")]
    else:
        ids = actor.visible_owner_ids() or frozenset({actor.user_id})
        scope = [(t, "team") for t, team in roster.teams.items() if team.lead_id == actor.user_id]
    workers = roster.workers if ids is None else tuple(w for w in roster.workers if w.id in ids)
    return _Look(
        workers=workers,
        scope_ids=[s[0] for s in scope],
        scope_kinds=[s[1] for s in scope],
        seen=sum(w.id != actor.user_id for w in workers),
    )


def _kept_look(entry: Entry, roster: Roster, actor: Actor, team_id: uuid.UUID | None) -> _Look:
    """``_look``, computed once per roster and caller."""
    key = (team_id, actor.user_id, actor.role, actor.team_member_ids)
    found = entry.looks.get(key)
    if found is not None and found[0] is roster:
        look: _Look = found[1]
        return look
    look = _look(roster, actor, team_id)
    entry.keep(entry.looks, key, (roster, look))
    return look


async def live_json(
    session: AsyncSession,
    actor: Actor,
    now: datetime,
    team_id: uuid.UUID | None,
    cache: LiveCache | None = None,
) -> bytes:
    """The GeoJSON FeatureCollection of the visible workers (with or without a position), as
    JSON; the look at other people's positions is audited in the caller's transaction.
    ``cache`` is this process's (tests pass their own to play several processes)."""
    entry = (cache or CACHE).entry(actor.organization_id)
    kept = entry.roster if entry.roster is not None and entry.roster.answers_for(now) else None
    guess: _Look | None = None
    if kept is not None:
        try:
            guess = _kept_look(entry, kept, actor, team_id)
        except NotFound:
            guess = None  # decided below, once the roster is known to hold
    positions = entry.positions
    row = (
        await session.execute(
            _CHECK,
            {
                "org": actor.organization_id,
                "actor": actor.user_id,
                "now": now,
                "workers": guess.seen if guess is not None else 0,
                "scope_ids": guess.scope_ids if guess is not None else [],
                "scope_kinds": guess.scope_kinds if guess is not None else [],
                "roster": kept.fingerprint if kept is not None else None,
                "positions": positions.fingerprint if positions is not None else None,
                "sites": positions.sites if positions is not None else None,
            },
        )
    ).one()
    if kept is None or kept.fingerprint != row.roster:
        kept = await rosters.build(session, actor.organization_id, row.roster, Window.at(now), now)
        entry.roster = kept
        guess = None
    look = guess if guess is not None else _kept_look(entry, kept, actor, team_id)
    if guess is None and look.seen > 0:
        await session.execute(
            _AUDIT,
            {
                "org": actor.organization_id,
                "actor": actor.user_id,
                "now": now,
                "workers": look.seen,
                "scope_ids": look.scope_ids,
                "scope_kinds": look.scope_kinds,
            },
        )
    if row.wanted or positions is None:
        positions = Positions.read(row, previous=positions, sites=row.roster)
        entry.positions = positions
    key = (team_id, actor.user_id, actor.role, actor.team_member_ids)
    view = entry.views.get(key)
    if view is None or not view.shows(kept, positions, now):
        body, valid_until = features(look.workers, positions, now)
        view = View(kept, positions, now, valid_until, body)
        entry.keep(entry.views, key, view)
    return view.collection(now)


async def live(
    session: AsyncSession, actor: Actor, now: datetime, team_id: uuid.UUID | None
) -> dict[str, Any]:
    """``live_json`` decoded, for callers that read it (the team board, the stream's snapshot)."""
    decoded: dict[str, Any] = msgspec.json.decode(await live_json(session, actor, now, team_id))
    return decoded
