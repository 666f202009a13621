"""Settings read from the environment (prefix ``FIELDCRM_``), one cached getter.

Every variable is documented in the README's configuration table. Secrets (the signing key,
database passwords) only ever come from the environment.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from functools import lru_cache

_MIN_SECRET_LENGTH = 32


class ConfigError(RuntimeError):
    """Raised at start-up when the environment is missing or has a bad setting."""


def _int(name: str, default: int) -> int:
    raw = os.environ.get(name)
    if raw is None or raw == "":
        return default
    try:
        return int(raw)
    except ValueError as exc:
        raise ConfigError(f"{name} must be an integer, got {raw!r}") from exc


def _bool(name: str, default: bool) -> bool:
    raw = os.environ.get(name)
    if raw is None or raw == "":
        return default
    return raw.strip().lower() in {"1", "true", "yes", "on"}


@dataclass(frozen=True, slots=True)
class Settings:
    """Runtime configuration of the API, worker and command line."""

    database_url: str
    secret_key: str = field(repr=False)
    env: str = "production"
    access_token_ttl_s: int = 15 * 60
    refresh_token_ttl_s: int = 30 * 24 * 3600
    web_session_ttl_s: int = 12 * 3600
    cookie_secure: bool = True
    max_body_bytes: int = 1_000_000
    import_max_body_bytes: int = 10_000_000
    db_pool_size: int = 10
    log_json: bool = True
    files_dir: str = "var/files"
    max_upload_bytes: int = 20 * 1024 * 1024
    lead_rate_per_minute: int = 10
    ping_retention_days: int = 60
    osrm_url: str | None = None
    # Where customers open the links in their messages (tracking, feedback, unsubscribe).
    public_base_url: str = "http://127.0.0.1:8000"
    # Notification delivery (backend.notifications.channels); a channel without its settings is
    # off and its messages are marked sent with a "not configured" note.
    fcm_service_account: str | None = None
    fcm_project_id: str | None = None
    fcm_url: str | None = None
    smtp_host: str | None = None
    smtp_port: int = 587
    smtp_user: str | None = None
    smtp_password: str | None = field(default=None, repr=False)
    smtp_from: str = "fieldcrm <noreply@localhost>"
    smtp_starttls: bool = True
    sms_url: str | None = None
    sms_token: str | None = field(default=None, repr=False)
    vapid_private_key: str | None = field(default=None, repr=False)
    vapid_public_key: str | None = None
    vapid_subject: str = "mailto:admin@localhost"
    outbox_max_attempts: int = 8
    map_tile_url: str = ""

    @property
    def is_development(self) -> bool:
        """True in development and test, where cookies may travel over plain HTTP."""
        return self.env in {"development", "test"}


def settings_from_env() -> Settings:
    """Build settings from ``FIELDCRM_*`` variables; raise ConfigError when one is unusable."""
    database_url = os.environ.get("FIELDCRM_DATABASE_URL", "")
    if not database_url:
        raise ConfigError(
            "FIELDCRM_DATABASE_URL is not set (e.g. postgresql+asyncpg://postgres@127.0.0.1/fieldcrm)"
        )
    secret_key = os.environ.get("FIELDCRM_SECRET_KEY", "")
    if len(secret_key) < _MIN_SECRET_LENGTH:
        raise ConfigError(
            f"FIELDCRM_SECRET_KEY must be set to a random string of at least {_MIN_SECRET_LENGTH}"
            " characters (e.g. `python -c 'import secrets; print(secrets.token_urlsafe(48))'`)"
        )
    env = os.environ.get("FIELDCRM_ENV", "production")
    development = env in {"development", "test"}
    return Settings(
        database_url=database_url,
        secret_key=secret_key,
        env=env,
        access_token_ttl_s=_int("FIELDCRM_ACCESS_TOKEN_TTL", 15 * 60),
        refresh_token_ttl_s=_int("FIELDCRM_REFRESH_TOKEN_TTL", 30 * 24 * 3600),
        web_session_ttl_s=_int("FIELDCRM_WEB_SESSION_TTL", 12 * 3600),
        cookie_secure=_bool("FIELDCRM_COOKIE_SECURE", not development),
        max_body_bytes=_int("FIELDCRM_MAX_BODY_BYTES", 1_000_000),
        import_max_body_bytes=_int("FIELDCRM_IMPORT_MAX_BODY_BYTES", 10_000_000),
        db_pool_size=_int("FIELDCRM_DB_POOL_SIZE", 10),
        log_json=_bool("FIELDCRM_LOG_JSON", not development),
        files_dir=os.environ.get("FIELDCRM_FILES_DIR", "var/files"),
        max_upload_bytes=_int("FIELDCRM_MAX_UPLOAD_BYTES", 20 * 1024 * 1024),
        lead_rate_per_minute=_int("FIELDCRM_LEAD_RATE_PER_MINUTE", 10),
        ping_retention_days=_int("FIELDCRM_PING_RETENTION_DAYS", 60),
        osrm_url=os.environ.get("FIELDCRM_OSRM_URL") or None,
        public_base_url=os.environ.get("FIELDCRM_PUBLIC_BASE_URL") or "http://127.0.0.1:8000",
        fcm_service_account=os.environ.get("FIELDCRM_FCM_SERVICE_ACCOUNT") or None,
        fcm_project_id=os.environ.get("FIELDCRM_FCM_PROJECT_ID") or None,
        fcm_url=os.environ.get("FIELDCRM_FCM_URL") or None,
        smtp_host=os.environ.get("FIELDCRM_SMTP_HOST") or None,
        smtp_port=_int("FIELDCRM_SMTP_PORT", 587),
        smtp_user=os.environ.get("FIELDCRM_SMTP_USER") or None,
        smtp_password=os.environ.get("FIELDCRM_SMTP_PASSWORD") or None,
        smtp_from=os.environ.get("FIELDCRM_SMTP_FROM") or "fieldcrm <noreply@localhost>",
        smtp_starttls=_bool("FIELDCRM_SMTP_STARTTLS", True),
        sms_url=os.environ.get("FIELDCRM_SMS_URL") or None,
        sms_token=os.environ.get("FIELDCRM_SMS_TOKEN") or None,
        vapid_private_key=os.environ.get("FIELDCRM_VAPID_PRIVATE_KEY") or None,
        vapid_public_key=os.environ.get("FIELDCRM_VAPID_PUBLIC_KEY") or None,
        vapid_subject=os.environ.get("FIELDCRM_VAPID_SUBJECT") or "mailto:admin@localhost",
        outbox_max_attempts=_int("FIELDCRM_OUTBOX_MAX_ATTEMPTS", 8),
        map_tile_url=os.environ.get("FIELDCRM_MAP_TILE_URL", "").strip(),
    )


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The process-wide settings, read once."""
    return settings_from_env()
