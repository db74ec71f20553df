"""Effective configuration, read once from the environment (`COALITION_*`, `DATABASE_URL`)."""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from pathlib import Path
from urllib.parse import urlsplit

import msgspec

SECRET_FIELDS = frozenset({"jwt_private_key_pem", "master_key"})
PORT_MIN = 1
PORT_MAX = 65_535
POOL_SIZE_MAX = 100
GROUP_COMMIT_LANES_MAX = 64
GROUP_COMMIT_SIZE_MAX = 32  # subtransactions per group: PostgreSQL caches 64 per backend
# Standard Webhooks' suggested schedule: immediately, 5 s, 5 min, 30 min, 2 h, 5 h, 10 h, 10 h.
WEBHOOK_RETRY_SCHEDULE_S_DEFAULT = (0, 5, 300, 1800, 7200, 18000, 36000, 36000)
WEBHOOK_ATTEMPTS_MAX = 16
WEBHOOK_DELAY_S_MAX = 7 * 24 * 3600
# Email (issue 16): expiry notices this many days before the points expire, nearest last.
EXPIRY_NOTICE_DAYS_DEFAULT = (30, 7)
EXPIRY_NOTICE_DAYS_MAX = 366
EXPIRY_NOTICES_MAX = 8
EMAIL_FROM_DEFAULT = "Coalition <no-reply@coalition.example>"
SMTP_SCHEMES = ("smtp", "smtps")
DB_STATEMENT_TIMEOUT_MS_DEFAULT = 30_000
DB_LOCK_TIMEOUT_MS_DEFAULT = 10_000
DB_ACQUIRE_TIMEOUT_MS_DEFAULT = 10_000
DB_TIMEOUT_MS_MAX = 3_600_000
REPLICA_LAG_MAX_S_MAX = 3600


class ConfigError(Exception):
    """A configuration value is unusable; the message names the variable."""


class Settings(msgspec.Struct, frozen=True, kw_only=True):
    database_url: str | None = None
    data_dir: Path = Path(".coalition")
    host: str = "127.0.0.1"
    port: int = 8000
    debug: bool = False
    log_level: str = "INFO"
    currency: str = "EUR"
    pool_size_min: int = 2
    pool_size_max: int = 10
    workers_enabled: bool = True
    group_commit_lanes: int = 4  # 0: every partner call commits alone
    group_commit_size_max: int = 16
    jwt_private_key_pem: str | None = None
    master_key: str | None = None
    # 127.0.0.1 and plain http allowed as webhook targets: the demo and the tests only
    webhooks_allow_loopback: bool = False
    # delay before each delivery attempt, from the previous one (the first from the event)
    webhook_retry_schedule_s: tuple[int, ...] = WEBHOOK_RETRY_SCHEDULE_S_DEFAULT
    # email (issue 16): smtp://host:port or smtps://user:pass@host; None: .eml files under
    # <data_dir>/mail
    smtp_url: str | None = None
    email_from: str = EMAIL_FROM_DEFAULT
    # where links in email point (unsubscribe); None: http://<host>:<port>
    public_base_url: str | None = None
    expiry_notice_days: tuple[int, ...] = EXPIRY_NOTICE_DAYS_DEFAULT
    # Bounds on a pooled connection (issue 21): a stuck statement, a lock wait or a wait for a
    # free connection ends in a 503 instead of a hang. 0 turns the statement or lock bound off.
    db_statement_timeout_ms: int = DB_STATEMENT_TIMEOUT_MS_DEFAULT
    db_lock_timeout_ms: int = DB_LOCK_TIMEOUT_MS_DEFAULT
    db_acquire_timeout_ms: int = DB_ACQUIRE_TIMEOUT_MS_DEFAULT
    # a streaming replica for read-only endpoints (docs/deploy.md); None: all reads on DATABASE_URL
    replica_url: str | None = None
    # past this replay lag, reads fall back to the primary
    replica_lag_max_s: int = 5
    # `coalition serve` applies pending migrations first; off where a job runs them
    migrate_on_start: bool = True

    def masked(self) -> dict[str, str]:
        """Every setting as text, secrets (and the password in DATABASE_URL) masked."""
        shown: dict[str, str] = {}
        for name in self.__struct_fields__:
            value = getattr(self, name)
            if name in SECRET_FIELDS:
                shown[name] = "***" if value else "(unset)"
            elif name == "database_url":
                shown[name] = mask_dsn(value) if value else "(embedded)"
            elif name == "smtp_url":
                shown[name] = mask_dsn(value) if value else "(unset: .eml files in data_dir/mail)"
            elif name == "replica_url":
                shown[name] = mask_dsn(value) if value else "(unset)"
            else:
                shown[name] = str(value)
        return shown


def mask_dsn(dsn: str) -> str:
    """Replace the password of a DSN with ***."""
    return re.sub(r"(://[^:/@]+:)[^@]*@", r"\1***@", dsn)


def _flag(env: Mapping[str, str], name: str, default: bool) -> bool:
    raw = env.get(name)
    if raw is None:
        return default
    if raw.lower() in {"1", "true", "yes", "on"}:
        return True
    if raw.lower() in {"0", "false", "no", "off"}:
        return False
    raise ConfigError(f"{name}={raw!r} is not a boolean (use 1/0, true/false)")


def _int(env: Mapping[str, str], name: str, default: int, low: int, high: int) -> int:
    raw = env.get(name)
    if raw is None:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ConfigError(f"{name}={raw!r} is not an integer") from None
    if not low <= value <= high:
        raise ConfigError(f"{name}={value} is outside {low}..{high}")
    return value


def _schedule(env: Mapping[str, str], name: str, default: tuple[int, ...]) -> tuple[int, ...]:
    raw = env.get(name)
    if raw is None:
        return default
    try:
        delays = tuple(int(part) for part in raw.split(","))
    except ValueError:
        raise ConfigError(f"{name}={raw!r} is not comma-separated whole seconds") from None
    if not 1 <= len(delays) <= WEBHOOK_ATTEMPTS_MAX:
        raise ConfigError(f"{name} has {len(delays)} attempts, not 1..{WEBHOOK_ATTEMPTS_MAX}")
    if any(not 0 <= delay <= WEBHOOK_DELAY_S_MAX for delay in delays):
        raise ConfigError(f"{name}: every delay is 0..{WEBHOOK_DELAY_S_MAX} seconds")
    return delays


def _smtp_url(env: Mapping[str, str], name: str) -> str | None:
    raw = env.get(name) or None
    if raw is None:
        return None
    parsed = urlsplit(raw)
    if parsed.scheme not in SMTP_SCHEMES or not parsed.hostname:
        # the value may hold a password: name the variable, not the value
        raise ConfigError(f"{name} must be smtp://host[:port] or smtps://[user:pass@]host[:port]")
    try:
        parsed.port  # noqa: B018 (raises ValueError on a port outside 0..65535)
    except ValueError:
        raise ConfigError(f"{name} has an invalid port") from None
    return raw


def _base_url(env: Mapping[str, str], name: str) -> str | None:
    raw = env.get(name) or None
    if raw is None:
        return None
    parsed = urlsplit(raw)
    if parsed.scheme not in {"http", "https"} or not parsed.netloc or parsed.query:
        raise ConfigError(f"{name}={raw!r} is not an http(s) base URL")
    return raw.rstrip("/")


def _notice_days(env: Mapping[str, str], name: str) -> tuple[int, ...]:
    raw = env.get(name)
    if raw is None:
        return EXPIRY_NOTICE_DAYS_DEFAULT
    try:
        days = tuple(sorted({int(part) for part in raw.split(",")}, reverse=True))
    except ValueError:
        raise ConfigError(f"{name}={raw!r} is not comma-separated whole days") from None
    if not 1 <= len(days) <= EXPIRY_NOTICES_MAX:
        raise ConfigError(f"{name} has {len(days)} notices, not 1..{EXPIRY_NOTICES_MAX}")
    if any(not 1 <= day <= EXPIRY_NOTICE_DAYS_MAX for day in days):
        raise ConfigError(f"{name}: every notice is 1..{EXPIRY_NOTICE_DAYS_MAX} days ahead")
    return days


def load(env: Mapping[str, str] | None = None) -> Settings:
    """Read settings from `env` (default: the process environment); raise ConfigError."""
    env = os.environ if env is None else env
    currency = env.get("COALITION_CURRENCY", "EUR")
    if not re.fullmatch(r"[A-Z]{3}", currency):
        raise ConfigError(f"COALITION_CURRENCY={currency!r} is not an ISO 4217 code")
    pool_max = _int(env, "COALITION_DB_POOL_MAX", 10, 1, POOL_SIZE_MAX)
    lanes = _int(
        env, "COALITION_GROUP_COMMIT_LANES", min(4, pool_max - 1), 0, GROUP_COMMIT_LANES_MAX
    )
    if lanes >= pool_max:  # reads and the background jobs need a connection of their own
        raise ConfigError(
            f"COALITION_GROUP_COMMIT_LANES={lanes} must be below COALITION_DB_POOL_MAX={pool_max}"
        )
    return Settings(
        database_url=env.get("DATABASE_URL") or None,
        data_dir=Path(env.get("COALITION_DATA_DIR", ".coalition")),
        host=env.get("COALITION_HOST", "127.0.0.1"),
        port=_int(env, "COALITION_PORT", 8000, PORT_MIN, PORT_MAX),
        debug=_flag(env, "COALITION_DEBUG", False),
        log_level=env.get("COALITION_LOG_LEVEL", "INFO").upper(),
        currency=currency,
        pool_size_min=min(2, pool_max),
        pool_size_max=pool_max,
        workers_enabled=_flag(env, "COALITION_WORKERS", True),
        group_commit_lanes=lanes,
        group_commit_size_max=_int(
            env, "COALITION_GROUP_COMMIT_SIZE_MAX", 16, 1, GROUP_COMMIT_SIZE_MAX
        ),
        jwt_private_key_pem=env.get("COALITION_JWT_PRIVATE_KEY") or None,
        master_key=env.get("COALITION_MASTER_KEY") or None,
        webhooks_allow_loopback=_flag(env, "COALITION_WEBHOOKS_ALLOW_LOOPBACK", False),
        webhook_retry_schedule_s=_schedule(
            env, "COALITION_WEBHOOK_RETRY_SCHEDULE_S", WEBHOOK_RETRY_SCHEDULE_S_DEFAULT
        ),
        smtp_url=_smtp_url(env, "COALITION_SMTP_URL"),
        email_from=env.get("COALITION_EMAIL_FROM") or EMAIL_FROM_DEFAULT,
        public_base_url=_base_url(env, "COALITION_PUBLIC_BASE_URL"),
        expiry_notice_days=_notice_days(env, "COALITION_EXPIRY_NOTICE_DAYS"),
        db_statement_timeout_ms=_int(
            env,
            "COALITION_DB_STATEMENT_TIMEOUT_MS",
            DB_STATEMENT_TIMEOUT_MS_DEFAULT,
            0,
            DB_TIMEOUT_MS_MAX,
        ),
        db_lock_timeout_ms=_int(
            env, "COALITION_DB_LOCK_TIMEOUT_MS", DB_LOCK_TIMEOUT_MS_DEFAULT, 0, DB_TIMEOUT_MS_MAX
        ),
        db_acquire_timeout_ms=_int(
            env,
            "COALITION_DB_ACQUIRE_TIMEOUT_MS",
            DB_ACQUIRE_TIMEOUT_MS_DEFAULT,
            1,
            DB_TIMEOUT_MS_MAX,
        ),
        replica_url=env.get("COALITION_REPLICA_URL") or None,
        replica_lag_max_s=_int(env, "COALITION_REPLICA_LAG_MAX_S", 5, 0, REPLICA_LAG_MAX_S_MAX),
        migrate_on_start=_flag(env, "COALITION_MIGRATE_ON_START", True),
    )
