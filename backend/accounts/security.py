"""Password hashing (argon2id) and token minting/verification (JWT HS256, opaque secrets)."""

from __future__ import annotations

import hashlib
import secrets
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import jwt
from pwdlib import PasswordHash
from pwdlib.hashers.argon2 import Argon2Hasher

from backend.lib.errors import Unauthenticated

_hasher = PasswordHash((Argon2Hasher(),))
# A real hash to verify against when the email is unknown, so timing does not reveal accounts.
_DUMMY_HASH = _hasher.hash(secrets.token_urlsafe(16))

JWT_ALGORITHM = "HS256"
JWT_AUDIENCE = "fieldcrm-api"
JWT_ISSUER = "fieldcrm"


def hash_password(password: str) -> str:
    """An argon2id hash of ``password``."""
    return _hasher.hash(password)


def verify_password(password: str, password_hash: str | None) -> bool:
    """True when ``password`` matches; spends the same time when there is no hash."""
    if password_hash is None:
        _hasher.verify(password, _DUMMY_HASH)
        return False
    try:
        return _hasher.verify(password, password_hash)
    except Exception:  # a malformed stored hash is a failed login, not a crash
        return False


def mint_access_token(
    *,
    user_id: uuid.UUID,
    organization_id: uuid.UUID,
    token_version: int,
    now: datetime,
    ttl_s: int,
    secret_key: str,
) -> str:
    """A short-lived signed access token."""
    claims = {
        "sub": str(user_id),
        "org": str(organization_id),
        "tv": token_version,
        "iat": int(now.timestamp()),
        "nbf": int(now.timestamp()) - 5,
        "exp": int((now + timedelta(seconds=ttl_s)).timestamp()),
        "aud": JWT_AUDIENCE,
        "iss": JWT_ISSUER,
        "jti": secrets.token_hex(8),
    }
    return jwt.encode(claims, secret_key, algorithm=JWT_ALGORITHM)


@dataclass(frozen=True, slots=True)
class AccessClaims:
    """The verified content of an access token (equal when they name the same user, organisation
    and token version)."""

    user_id: uuid.UUID
    organization_id: uuid.UUID
    token_version: int


def verify_access_token(token: str, *, secret_key: str, now: datetime) -> AccessClaims:
    """Check signature, algorithm (HS256 only: ``none`` and others are refused), audience,
    issuer and expiry against the injectable clock; raise Unauthenticated otherwise."""
    try:
        claims: dict[str, Any] = jwt.decode(
            token,
            secret_key,
            algorithms=[JWT_ALGORITHM],
            audience=JWT_AUDIENCE,
            issuer=JWT_ISSUER,
            options={
                "require": ["exp", "sub", "org", "tv", "aud", "iss"],
                # Times are checked below against our clock (PyJWT would use the wall clock).
                "verify_exp": False,
                "verify_iat": False,
                "verify_nbf": False,
            },
        )
    except jwt.PyJWTError as exc:
        raise Unauthenticated("The access token is not valid") from exc
    if int(claims["exp"]) <= int(now.timestamp()):
        raise Unauthenticated("The access token has expired")
    if int(claims.get("iat", 0)) > int(now.timestamp()) + 60:
        raise Unauthenticated("The access token is not valid yet")
    try:
        return AccessClaims(uuid.UUID(claims["sub"]), uuid.UUID(claims["org"]), int(claims["tv"]))
    except (ValueError, TypeError) as exc:
        raise Unauthenticated("The access token is not valid") from exc


def new_opaque_token() -> tuple[str, bytes]:
    """A random 256-bit secret for refresh tokens and session cookies, and the hash we store."""
    token = secrets.token_urlsafe(32)
    return token, token_digest(token)


def token_digest(token: str) -> bytes:
    """SHA-256 of an opaque token (what the database keeps)."""
    return hashlib.sha256(token.encode()).digest()
