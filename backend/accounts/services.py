"""Business rules of accounts: authentication, sessions, users, teams, the organisation.

Services take an open session (the boundary owns the transaction) and never speak HTTP.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from datetime import datetime, timedelta
from typing import Any

import msgspec
from sqlalchemy import Select, delete, func, select, tuple_, update
from sqlalchemy.ext.asyncio import AsyncSession

from backend.accounts import schemas
from backend.accounts.models import (
    AuthSession,
    Organization,
    Role,
    SessionKind,
    Skill,
    Team,
    TeamMember,
    User,
)
from backend.accounts.security import (
    AccessClaims,
    hash_password,
    mint_access_token,
    new_opaque_token,
    token_digest,
    verify_password,
)
from backend.config import Settings
from backend.customers.search import escape_like
from backend.lib.errors import Conflict, FieldError, InvalidInput, NotFound, Unauthenticated
from backend.lib.pagination import Page, decode_cursor, page_of
from backend.lib.tenancy import Actor, scope
from backend.lib.validation import (
    check_currency,
    check_time_zone,
    normalize_email,
    normalize_phone,
    region_of_locale,
)

# --- authentication ---------------------------------------------------------------------------


async def authenticate_password(session: AsyncSession, email: str, password: str) -> User:
    """The active user with this email and password; one vague error for every failure."""
    user = await session.scalar(select(User).where(func.lower(User.email) == email.strip().lower()))
    if not verify_password(password, user.password_hash if user else None) or user is None:
        raise Unauthenticated("Wrong email or password")
    if not user.is_active:
        raise Unauthenticated("Wrong email or password")
    return user


# The callers behind verified credentials, with what every request may need of their
# organisation and, for a manager, the members of the teams they lead. Every API request runs
# it (through ``ActorLoader``), so it is one fixed statement for any number of credentials (one
# prepared plan) and goes straight to asyncpg: no ORM compile, no BEGIN/ROLLBACK round trips.
_ACTORS_SQL = """
SELECT u.id, u.organization_id, u.token_version, u.role::text, u.skills, u.time_zone,
       o.time_zone AS org_time_zone, o.locale,
       CASE WHEN u.role = 'manager' THEN array(
           SELECT m.user_id FROM team_members m JOIN teams t ON t.id = m.team_id
           WHERE t.lead_id = u.id AND t.organization_id = u.organization_id) END AS members
FROM unnest($1::uuid[], $2::uuid[], $3::int[]) AS c(user_id, organization_id, token_version)
JOIN users u ON u.id = c.user_id AND u.organization_id = c.organization_id
            AND u.token_version = c.token_version AND u.is_active
JOIN organizations o ON o.id = u.organization_id
"""


async def load_actors(
    session: AsyncSession, credentials: Iterable[AccessClaims]
) -> dict[AccessClaims, Actor]:
    """The callers behind verified credentials, in one query: the actor of each credential
    whose user is active and whose token version is current (the others are left out)."""
    wanted = list(dict.fromkeys(credentials))
    if not wanted:
        return {}
    raw = await (await session.connection()).get_raw_connection()
    connection: Any = raw.driver_connection
    rows = await connection.fetch(
        _ACTORS_SQL,
        [c.user_id for c in wanted],
        [c.organization_id for c in wanted],
        [c.token_version for c in wanted],
    )
    out: dict[AccessClaims, Actor] = {}
    for r in rows:
        out[AccessClaims(r["id"], r["organization_id"], r["token_version"])] = Actor(
            user_id=r["id"],
            organization_id=r["organization_id"],
            role=Role(r["role"]),
            skills=frozenset(r["skills"]),
            time_zone=r["time_zone"],
            org_time_zone=r["org_time_zone"],
            phone_region=region_of_locale(r["locale"]),
            team_member_ids=frozenset(r["members"] or ()),
        )
    return out


async def load_actor(
    session: AsyncSession, user_id: uuid.UUID, organization_id: uuid.UUID, token_version: int
) -> Actor:
    """The caller behind a verified credential; refuses inactive users and stale tokens."""
    claims = AccessClaims(user_id, organization_id, token_version)
    actor = (await load_actors(session, [claims])).get(claims)
    if actor is None:
        raise Unauthenticated("The credentials are no longer valid")
    return actor


async def _new_session(
    session: AsyncSession,
    user: User,
    kind: SessionKind,
    ttl_s: int,
    now: datetime,
    user_agent: str | None,
) -> tuple[str, AuthSession]:
    token, digest = new_opaque_token()
    row = AuthSession(
        id=uuid.uuid4(),
        user_id=user.id,
        organization_id=user.organization_id,
        kind=kind,
        token_hash=digest,
        token_version=user.token_version,
        created_at=now,
        expires_at=now + timedelta(seconds=ttl_s),
        user_agent=(user_agent or "")[:300] or None,
    )
    session.add(row)
    await session.flush()
    return token, row


async def issue_tokens(
    session: AsyncSession, user: User, settings: Settings, now: datetime, user_agent: str | None
) -> schemas.TokenPair:
    """A fresh access token and a new refresh token for a phone or API client."""
    refresh, _ = await _new_session(
        session, user, SessionKind.REFRESH, settings.refresh_token_ttl_s, now, user_agent
    )
    return _token_pair(user, refresh, settings, now)


def _token_pair(user: User, refresh: str, settings: Settings, now: datetime) -> schemas.TokenPair:
    access = mint_access_token(
        user_id=user.id,
        organization_id=user.organization_id,
        token_version=user.token_version,
        now=now,
        ttl_s=settings.access_token_ttl_s,
        secret_key=settings.secret_key,
    )
    return schemas.TokenPair(
        access_token=access, refresh_token=refresh, expires_in=settings.access_token_ttl_s
    )


async def _live_session(
    session: AsyncSession, token: str, kind: SessionKind, now: datetime
) -> tuple[AuthSession, User]:
    row = await session.scalar(
        select(AuthSession)
        .where(AuthSession.token_hash == token_digest(token), AuthSession.kind == kind)
        .with_for_update()
    )
    if row is None:
        raise Unauthenticated("The token is not valid")
    if row.revoked_at is not None:
        raise Unauthenticated("The token has been revoked")
    if row.expires_at <= now:
        raise Unauthenticated("The token has expired")
    user = await session.get(User, row.user_id)
    if user is None or not user.is_active or user.token_version != row.token_version:
        raise Unauthenticated("The token is no longer valid")
    return row, user


async def rotate_refresh_token(
    session: AsyncSession, token: str, settings: Settings, now: datetime, user_agent: str | None
) -> schemas.TokenPair | None:
    """Exchange a refresh token for a new pair; the old refresh token stops working.

    A token that was already exchanged coming back means it was copied: every session of the
    user ends. That revocation must be committed, so it is reported by returning None (the
    caller answers 401 without raising, which would roll the revocation back)."""
    spent = await session.scalar(
        select(AuthSession.user_id).where(
            AuthSession.token_hash == token_digest(token),
            AuthSession.kind == SessionKind.REFRESH,
            AuthSession.replaced_by_id.is_not(None),
        )
    )
    if spent is not None:
        await revoke_all_sessions(session, spent, now)
        return None
    row, user = await _live_session(session, token, SessionKind.REFRESH, now)
    refresh, new_row = await _new_session(
        session, user, SessionKind.REFRESH, settings.refresh_token_ttl_s, now, user_agent
    )
    row.revoked_at = now
    row.replaced_by_id = new_row.id
    return _token_pair(user, refresh, settings, now)


async def revoke_token(session: AsyncSession, token: str, kind: SessionKind, now: datetime) -> None:
    """Log out: revoke one refresh token or web session (unknown tokens are ignored)."""
    await session.execute(
        update(AuthSession)
        .where(
            AuthSession.token_hash == token_digest(token),
            AuthSession.kind == kind,
            AuthSession.revoked_at.is_(None),
        )
        .values(revoked_at=now)
    )


async def revoke_all_sessions(session: AsyncSession, user_id: uuid.UUID, now: datetime) -> None:
    """Revoke every refresh token and web session of a user."""
    await session.execute(
        update(AuthSession)
        .where(AuthSession.user_id == user_id, AuthSession.revoked_at.is_(None))
        .values(revoked_at=now)
    )


async def start_web_session(
    session: AsyncSession, user: User, settings: Settings, now: datetime, user_agent: str | None
) -> str:
    """A browser session; the returned secret goes into an HttpOnly cookie."""
    token, _ = await _new_session(
        session, user, SessionKind.WEB, settings.web_session_ttl_s, now, user_agent
    )
    return token


async def actor_from_web_session(session: AsyncSession, token: str, now: datetime) -> Actor:
    """The caller behind a session cookie."""
    row = await session.scalar(
        select(AuthSession).where(
            AuthSession.token_hash == token_digest(token),
            AuthSession.kind == SessionKind.WEB,
            AuthSession.revoked_at.is_(None),
            AuthSession.expires_at > now,
        )
    )
    if row is None:
        raise Unauthenticated("The session has ended")
    return await load_actor(session, row.user_id, row.organization_id, row.token_version)


async def change_password(
    session: AsyncSession, actor: Actor, data: schemas.PasswordChangeInput, now: datetime
) -> User:
    """Change the caller's password; every token and session issued before stops working."""
    user = await _user(session, actor, actor.user_id)
    if not verify_password(data.current_password, user.password_hash):
        raise InvalidInput.on("currentPassword", "does not match the current password")
    user.password_hash = hash_password(data.new_password)
    user.token_version += 1
    await revoke_all_sessions(session, user.id, now)
    await session.flush()
    return user


# --- organisation -----------------------------------------------------------------------------


def organization_out(org: Organization) -> schemas.OrganizationOut:
    """Response body of an organisation."""
    return schemas.OrganizationOut(
        id=org.id,
        name=org.name,
        time_zone=org.time_zone,
        currency=org.currency,
        locale=org.locale,
        payment_details=msgspec.convert(org.payment_details, schemas.PaymentDetails),
        created_at=org.created_at,
    )


async def get_organization(session: AsyncSession, actor: Actor) -> Organization:
    """The caller's organisation."""
    org = await session.get(Organization, actor.organization_id)
    if org is None:  # pragma: no cover - the actor was loaded from it a moment ago
        raise NotFound("Organisation not found")
    return org


async def update_organization(
    session: AsyncSession, actor: Actor, data: schemas.OrganizationUpdate
) -> Organization:
    """Admins change the organisation's name, time zone, currency, locale and payment details."""
    actor.require_role(Role.ADMIN)
    org = await get_organization(session, actor)
    if data.name is not msgspec.UNSET:
        org.name = data.name
    if data.time_zone is not msgspec.UNSET:
        org.time_zone = check_time_zone(data.time_zone)
    if data.currency is not msgspec.UNSET:
        org.currency = check_currency(data.currency)
    if data.locale is not msgspec.UNSET:
        org.locale = data.locale
    if data.payment_details is not msgspec.UNSET:
        org.payment_details = msgspec.to_builtins(data.payment_details)
    await session.flush()
    return org


# --- users ------------------------------------------------------------------------------------


def user_out(user: User) -> schemas.UserOut:
    """Response body of a user (never the password hash)."""
    return schemas.UserOut(
        id=user.id,
        email=user.email,
        full_name=user.full_name,
        role=user.role,
        skills=[Skill(s) for s in user.skills],
        phone=user.phone,
        time_zone=user.time_zone,
        is_active=user.is_active,
        created_at=user.created_at,
        base_lat=user.base_lat,
        base_lon=user.base_lon,
    )


async def _user(session: AsyncSession, actor: Actor, user_id: uuid.UUID) -> User:
    user = await session.scalar(
        scope(select(User), actor, User.organization_id, User.id).where(User.id == user_id)
    )
    if user is None:
        raise NotFound("User not found")
    return user


async def get_user(session: AsyncSession, actor: Actor, user_id: uuid.UUID) -> User:
    """A user the caller may see: admins all, managers their teams, field staff themselves."""
    return await _user(session, actor, user_id)


async def list_users(
    session: AsyncSession,
    actor: Actor,
    limit: int,
    cursor: str | None,
    active: bool | None,
    q: str | None = None,
) -> Page[schemas.UserOut]:
    """Users the caller may see, by name; ``q`` keeps those whose name or email contains it
    (case-insensitive)."""
    stmt = scope(select(User), actor, User.organization_id, User.id)
    if active is not None:
        stmt = stmt.where(User.is_active.is_(active))
    if q and q.strip():
        pattern = f"%{escape_like(q.strip())}%"
        stmt = stmt.where(
            User.full_name.ilike(pattern, escape="\\") | User.email.ilike(pattern, escape="\\")
        )
    if cursor:
        name, last_id = decode_cursor(cursor, (str, uuid.UUID))
        stmt = stmt.where(tuple_(User.full_name, User.id) > tuple_(name, last_id))
    rows = (await session.scalars(stmt.order_by(User.full_name, User.id).limit(limit + 1))).all()
    return page_of([user_out(u) for u in rows], limit, lambda u: [u.full_name, str(u.id)])


async def create_user(session: AsyncSession, actor: Actor, data: schemas.UserCreate) -> User:
    """Admins add users to their organisation."""
    actor.require_role(Role.ADMIN)
    email = normalize_email(data.email, "email")
    if await session.scalar(select(User.id).where(func.lower(User.email) == email)):
        raise Conflict(
            "A user with this email exists",
            errors=[FieldError(field="email", reason="already used")],
        )
    org = await get_organization(session, actor)
    _check_skills(data.role, [s.value for s in data.skills])
    user = User(
        id=uuid.uuid4(),
        organization_id=actor.organization_id,
        email=email,
        password_hash=hash_password(data.password),
        full_name=data.full_name.strip(),
        role=data.role,
        skills=sorted({s.value for s in data.skills}),
        phone=normalize_phone(data.phone, "phone", actor.phone_region) if data.phone else None,
        time_zone=check_time_zone(data.time_zone) if data.time_zone else org.time_zone,
        base_lat=data.base_lat,
        base_lon=data.base_lon,
        is_active=True,
        token_version=1,
    )
    _check_base(user)
    session.add(user)
    await session.flush()
    if data.team_ids:
        await _set_user_teams(session, actor, user.id, data.team_ids)
    return user


def _check_base(user: User) -> None:
    if (user.base_lat is None) != (user.base_lon is None):
        field = "baseLon" if user.base_lon is None else "baseLat"
        raise InvalidInput.on(field, "give both latitude and longitude of the base, or neither")


async def _set_user_teams(
    session: AsyncSession, actor: Actor, user_id: uuid.UUID, team_ids: list[uuid.UUID]
) -> None:
    """Make the user a member of exactly ``team_ids`` (teams of the actor's organisation)."""
    wanted = list(dict.fromkeys(team_ids))
    if wanted:
        found = set(
            await session.scalars(
                select(Team.id).where(
                    Team.organization_id == actor.organization_id, Team.id.in_(wanted)
                )
            )
        )
        missing = [str(t) for t in wanted if t not in found]
        if missing:
            raise InvalidInput.on(
                "teamIds", f"no such team in the organisation: {', '.join(missing)}"
            )
    await session.execute(
        delete(TeamMember).where(
            TeamMember.user_id == user_id,
            TeamMember.organization_id == actor.organization_id,
            TeamMember.team_id.not_in(wanted),
        )
    )
    current = set(
        await session.scalars(select(TeamMember.team_id).where(TeamMember.user_id == user_id))
    )
    for team_id in wanted:
        if team_id not in current:
            session.add(
                TeamMember(team_id=team_id, user_id=user_id, organization_id=actor.organization_id)
            )
    await session.flush()


async def user_team_ids(session: AsyncSession, actor: Actor, user_id: uuid.UUID) -> list[uuid.UUID]:
    """The teams (visible to the actor) a user the actor may see belongs to, by team name."""
    await _user(session, actor, user_id)
    rows = await session.scalars(
        _teams_visible(actor)
        .join(TeamMember, TeamMember.team_id == Team.id)
        .where(TeamMember.user_id == user_id)
        .order_by(Team.name, Team.id)
    )
    return [team.id for team in rows.all()]


def _check_skills(role: Role, skills: list[str]) -> None:
    if skills and role is not Role.FIELD:
        raise InvalidInput.on("skills", "only field staff have field skills")


async def update_user(
    session: AsyncSession, actor: Actor, user_id: uuid.UUID, data: schemas.UserUpdate, now: datetime
) -> User:
    """Admins change users; deactivation ends all of the user's sessions at once."""
    actor.require_role(Role.ADMIN)
    user = await _user(session, actor, user_id)
    if data.full_name is not msgspec.UNSET:
        user.full_name = data.full_name.strip()
    role = user.role if data.role is msgspec.UNSET else data.role
    skills = user.skills if data.skills is msgspec.UNSET else sorted({s.value for s in data.skills})
    if role is not Role.FIELD and data.skills is msgspec.UNSET:
        skills = []
    _check_skills(role, skills)
    if user.id == actor.user_id and role is not Role.ADMIN:
        raise InvalidInput.on("role", "you cannot take the admin role from yourself")
    if user.role != role:
        user.token_version += 1
    user.role, user.skills = role, skills
    if data.phone is not msgspec.UNSET:
        user.phone = (
            normalize_phone(data.phone, "phone", actor.phone_region) if data.phone else None
        )
    if data.time_zone is not msgspec.UNSET:
        user.time_zone = check_time_zone(data.time_zone)
    if data.base_lat is not msgspec.UNSET:
        user.base_lat = data.base_lat
    if data.base_lon is not msgspec.UNSET:
        user.base_lon = data.base_lon
    _check_base(user)
    if data.team_ids is not msgspec.UNSET:
        await _set_user_teams(session, actor, user.id, data.team_ids)
    if data.is_active is not msgspec.UNSET and data.is_active != user.is_active:
        if user.id == actor.user_id:
            raise InvalidInput.on("isActive", "you cannot deactivate yourself")
        user.is_active = data.is_active
        if not data.is_active:
            user.token_version += 1
            await revoke_all_sessions(session, user.id, now)
    await session.flush()
    return user


# --- teams ------------------------------------------------------------------------------------


async def _members(
    session: AsyncSession, team_ids: list[uuid.UUID]
) -> dict[uuid.UUID, list[uuid.UUID]]:
    found: dict[uuid.UUID, list[uuid.UUID]] = {t: [] for t in team_ids}
    if team_ids:
        rows = await session.execute(
            select(TeamMember.team_id, TeamMember.user_id)
            .where(TeamMember.team_id.in_(team_ids))
            .order_by(TeamMember.user_id)
        )
        for team_id, user_id in rows:
            found[team_id].append(user_id)
    return found


def team_out(team: Team, member_ids: list[uuid.UUID]) -> schemas.TeamOut:
    """Response body of a team."""
    return schemas.TeamOut(
        id=team.id,
        name=team.name,
        lead_id=team.lead_id,
        member_ids=member_ids,
        created_at=team.created_at,
    )


def _teams_visible(actor: Actor) -> Select[Team]:
    stmt = select(Team).where(Team.organization_id == actor.organization_id)
    if actor.role is Role.MANAGER:
        stmt = stmt.where(Team.lead_id == actor.user_id)
    elif actor.role is Role.FIELD:
        stmt = stmt.where(
            Team.id.in_(select(TeamMember.team_id).where(TeamMember.user_id == actor.user_id))
        )
    return stmt


async def list_teams(
    session: AsyncSession, actor: Actor, limit: int, cursor: str | None
) -> Page[schemas.TeamOut]:
    """Teams: admins all, managers those they lead, field staff those they belong to."""
    stmt = _teams_visible(actor)
    if cursor:
        name, last_id = decode_cursor(cursor, (str, uuid.UUID))
        stmt = stmt.where(tuple_(Team.name, Team.id) > tuple_(name, last_id))
    teams = (await session.scalars(stmt.order_by(Team.name, Team.id).limit(limit + 1))).all()
    members = await _members(session, [t.id for t in teams])
    return page_of(
        [team_out(t, members[t.id]) for t in teams], limit, lambda t: [t.name, str(t.id)]
    )


async def get_team(session: AsyncSession, actor: Actor, team_id: uuid.UUID) -> schemas.TeamOut:
    """One visible team with its members."""
    team = await session.scalar(_teams_visible(actor).where(Team.id == team_id))
    if team is None:
        raise NotFound("Team not found")
    return team_out(team, (await _members(session, [team.id]))[team.id])


async def _check_org_users(
    session: AsyncSession, actor: Actor, ids: list[uuid.UUID], field: str
) -> None:
    if not ids:
        return
    found = set(
        await session.scalars(
            select(User.id).where(User.organization_id == actor.organization_id, User.id.in_(ids))
        )
    )
    missing = [str(i) for i in ids if i not in found]
    if missing:
        raise InvalidInput.on(field, f"no such user in the organisation: {', '.join(missing)}")


async def _check_lead(session: AsyncSession, actor: Actor, lead_id: uuid.UUID | None) -> None:
    if lead_id is None:
        return
    role = await session.scalar(
        select(User.role).where(User.organization_id == actor.organization_id, User.id == lead_id)
    )
    if role is None:
        raise InvalidInput.on("leadId", "no such user in the organisation")
    if role not in (Role.MANAGER, Role.ADMIN):
        raise InvalidInput.on("leadId", "a team is led by a manager or an admin")


async def _set_members(
    session: AsyncSession, actor: Actor, team: Team, member_ids: list[uuid.UUID]
) -> None:
    await _check_org_users(session, actor, member_ids, "memberIds")
    await session.execute(delete(TeamMember).where(TeamMember.team_id == team.id))
    for user_id in dict.fromkeys(member_ids):
        session.add(
            TeamMember(team_id=team.id, user_id=user_id, organization_id=actor.organization_id)
        )
    await session.flush()


async def create_team(
    session: AsyncSession, actor: Actor, data: schemas.TeamCreate
) -> schemas.TeamOut:
    """Admins create teams with a lead and members."""
    actor.require_role(Role.ADMIN)
    await _check_lead(session, actor, data.lead_id)
    if await session.scalar(
        select(Team.id).where(Team.organization_id == actor.organization_id, Team.name == data.name)
    ):
        raise Conflict(
            "A team with this name exists", errors=[FieldError(field="name", reason="already used")]
        )
    team = Team(
        id=uuid.uuid4(), organization_id=actor.organization_id, name=data.name, lead_id=data.lead_id
    )
    session.add(team)
    await session.flush()
    await _set_members(session, actor, team, data.member_ids)
    return team_out(team, (await _members(session, [team.id]))[team.id])


async def update_team(
    session: AsyncSession, actor: Actor, team_id: uuid.UUID, data: schemas.TeamUpdate
) -> schemas.TeamOut:
    """Admins rename teams, change the lead and the members."""
    actor.require_role(Role.ADMIN)
    team = await session.scalar(_teams_visible(actor).where(Team.id == team_id))
    if team is None:
        raise NotFound("Team not found")
    if data.name is not msgspec.UNSET:
        team.name = data.name
    if data.lead_id is not msgspec.UNSET:
        await _check_lead(session, actor, data.lead_id)
        team.lead_id = data.lead_id
    if data.member_ids is not msgspec.UNSET:
        await _set_members(session, actor, team, data.member_ids)
    await session.flush()
    return team_out(team, (await _members(session, [team.id]))[team.id])
