"""Configuration: fluxbase.yaml plus environment variables -> one frozen Config.

The file and the environment are merged (environment wins), validated against
schemas/config.schema.json, and every problem is reported as `where: what`.
"""

from __future__ import annotations

import dataclasses
import os
import re
import secrets
import stat
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from fluxbase.config_sources import Problem as Problem  # part of ConfigError's interface
from fluxbase.config_sources import (
    find_config_file,
    from_env,
    merge_trees,
    read_yaml,
    schema_problems,
)
from fluxbase.keyfile import load_private_key

# Where the embedded database's server listens unless told otherwise: this machine only.
LOOPBACK = "127.0.0.1"

MIN_JWT_SECRET_LENGTH = 32
GENERATE_SECRET_HINT = "generate one with: openssl rand -base64 32"  # noqa: S105 - advice, not a secret
# Secrets copied from documentation and quick-starts: refusing them stops a
# deployment from signing tokens with a key that anyone can look up.
KNOWN_DOCUMENTED_SECRETS = frozenset(
    {
        "your-256-bit-secret-key-here",
        "super-secret-jwt-token-with-at-least-32-characters-long",
        "your-super-secret-jwt-token-with-at-least-32-characters-long",
    }
)
DOCUMENTED_SECRET_PATTERN = re.compile(
    r"change[-_ ]?me|your[-_ ]|example|place[-_ ]?holder|secret[-_]?key", re.I
)

_DURATION = re.compile(r"^([0-9]+(?:\.[0-9]+)?)(ms|s|m|h|d)$")
_DURATION_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}


class ConfigError(Exception):
    def __init__(self, problems: list[Problem]) -> None:
        super().__init__("\n".join(str(p) for p in problems))
        self.problems = problems


@dataclass(frozen=True)
class ServerConfig:
    # Unset, the host follows the database (see _build): a laptop's embedded database
    # listens on loopback only; a deployment with DATABASE_URL on every interface.
    host: str = "0.0.0.0"  # noqa: S104
    port: int = 8080
    base_url: str = "http://localhost:8080"
    # The largest request body a route takes unless it streams with its own limit (storage).
    body_limit: int = 1024**2
    workers: int = 1
    shutdown_timeout: float = 30.0
    migrate_on_start: bool = True
    max_url_length: int = 8192
    max_headers: int = 100
    max_header_size: int = 8190  # one header line, name and value
    max_json_depth: int = 64
    header_read_timeout: float = 10.0  # from a request's first byte to its last header
    idle_timeout: float = 75.0  # a keep-alive connection with no request in flight


@dataclass(frozen=True)
class DatabaseConfig:
    url: str | None = None
    max_connections: int = 100
    min_connections: int = 10
    connection_max_lifetime: float = 3600.0
    max_conn_idle_time: float = 600.0
    health_check_period: float = 60.0
    statement_timeout: float = 30.0
    acquire_timeout: float = 5.0
    slow_query_threshold: float = 1.0


# Never reachable through the data API, whatever the configuration says.
INTERNAL_SCHEMAS = frozenset(
    {
        "auth", "dashboard", "storage", "realtime", "audit", "extensions", "fluxbase_migrations",
        "sqitch", "dev_mailbox", "tests", "pg_catalog", "information_schema", "pg_toast",
    }
)  # fmt: skip


def is_internal_schema(schema: str) -> bool:
    """True for schemas the data API never exposes: Fluxbase's own and PostgreSQL's (pg_*)."""
    return schema in INTERNAL_SCHEMAS or schema.startswith("pg_")


@dataclass(frozen=True)
class ApiConfig:
    schemas: tuple[str, ...] = ("public",)
    extra_search_path: tuple[str, ...] = ("public", "extensions")
    max_rows: int | None = None
    aggregates_enabled: bool = False
    # PostgREST 12 or 13 where their behaviour differs (to-many spreads).
    postgrest_version: int = 13
    plan_enabled: bool = False
    tx_override: bool = True
    pre_request: str | None = None
    # The root's OpenAPI description (rest/openapi.py): follow-privileges | ignore-privileges | disabled.
    openapi_mode: str = "follow-privileges"


@dataclass(frozen=True)
class SmtpConfig:
    host: str | None = None  # no host: no mail, so signup needs autoconfirm
    port: int = 587
    user: str | None = None
    password: str | None = field(default=None, repr=False)
    sender: str = "Fluxbase <noreply@localhost>"
    tls: str = "starttls"


@dataclass(frozen=True)
class AuthRateLimitConfig:
    sign_in_attempts: int = 5
    sign_in_window: float = 900.0
    emails_per_hour: int = 30


@dataclass(frozen=True)
class AuthLockoutConfig:
    """Wrong passwords, counted per account and source (client IP): see auth.check_password."""

    failures_per_source: int = 5
    # Above failures_per_source, so that one source alone can never start the account's backoff.
    failures_per_account: int = 20
    window: float = 900.0
    duration: float = 900.0  # the first lock; each further lock of the same scope doubles it
    max_duration: float = 86400.0


@dataclass(frozen=True)
class AuthConfig:
    jwt_secret: str | None = field(default=None, repr=False)
    jwt_algorithm: str = "HS256"  # of user access tokens; API keys are always HS256 with jwt_secret
    jwt_private_key: str | None = field(default=None, repr=False)  # PEM text or a file path
    jwt_key_id: str | None = None  # default: from the public key
    site_url: str | None = None  # None: server.base_url
    redirect_urls: tuple[str, ...] = ()
    autoconfirm: bool = False
    disable_signup: bool = False
    anonymous_sign_ins: bool = False
    password_min_length: int = 8
    # GoTrue's GOTRUE_PASSWORD_REQUIRED_CHARACTERS: a password holds one character of each set.
    password_required_characters: tuple[str, ...] = ()
    bcrypt_cost: int = 10
    access_token_ttl: float = 3600.0
    refresh_reuse_window: float = 10.0
    session_check_interval: float = 10.0
    otp_ttl: float = 3600.0
    otp_max_attempts: int = 5
    templates_dir: str | None = None
    # Keep auth mail in the local mailbox when no SMTP server is set; None: auth/mailbox.py decides.
    local_mailbox: bool | None = None
    rate_limit: AuthRateLimitConfig = AuthRateLimitConfig()
    lockout: AuthLockoutConfig = AuthLockoutConfig()
    smtp: SmtpConfig = SmtpConfig()


@dataclass(frozen=True)
class DashboardConfig:
    """Dashboard administrators and API keys (/dashboard/auth, /api/v1/admin)."""

    access_token_ttl: float = 900.0
    session_ttl: float = 7 * 24 * 3600.0  # how long a refresh token keeps a session alive
    mfa_challenge_ttl: float = 300.0
    lockout_max_failures: int = 5
    lockout_duration: float = 900.0
    password_min_length: int = 12
    bcrypt_cost: int = 12
    # The runbook's "5 login attempts per 15 min": per client address and per account, each
    # step (signup, login, 2FA, reset, link) counted on its own.
    sign_in_attempts: int = 5
    sign_in_window: float = 900.0
    link_ttl: float = 3600.0  # password reset, verification and invitation links
    api_key_refresh_interval: float = 5.0
    api_key_rate_limit: int = 1000  # requests per minute, each key's default


@dataclass(frozen=True)
class RateLimitConfig:
    enabled: bool = True
    requests_per_minute: int = 100  # no user, no API key: per client IP
    user_requests_per_minute: int = 500  # a valid user JWT: per user
    api_key_requests_per_minute: int = 1000  # an API key: per key
    backend: str = "memory"  # memory (per process) | redis (shared by every replica and worker)
    redis_url: str | None = field(default=None, repr=False)  # may carry a password
    redis_timeout: float = 0.25


@dataclass(frozen=True)
class CsrfConfig:
    enabled: bool = False
    cookie_secure: bool = True


@dataclass(frozen=True)
class CorsConfig:
    allowed_origins: tuple[str, ...] = ("*",)


@dataclass(frozen=True)
class SecurityConfig:
    rate_limit: RateLimitConfig = RateLimitConfig()
    csrf: CsrfConfig = CsrfConfig()
    cors: CorsConfig = CorsConfig()
    trusted_proxies: tuple[str, ...] = ()


@dataclass(frozen=True)
class RealtimeConfig:
    enabled: bool = True
    max_connections: int = 1000
    ping_interval: float = 30.0
    max_connections_per_ip: int = 100
    max_connections_per_user: int = 20
    max_message_size: int = 5 * 1024 * 1024
    max_subscriptions_per_socket: int = 100
    send_queue_size: int = 1000
    log_retention: float = 3600.0
    prune_interval: float = 60.0
    # A replica not heard from for this long has its presence members removed everywhere.
    presence_lease: float = 15.0


@dataclass(frozen=True)
class S3Config:
    endpoint: str | None = None
    access_key: str | None = None
    secret_key: str | None = field(default=None, repr=False)
    bucket: str | None = None
    region: str = "us-east-1"
    # MinIO, moto and most self-hosted S3s need path-style URLs (endpoint/bucket/key).
    force_path_style: bool = False


@dataclass(frozen=True)
class StorageConfig:
    provider: str = "local"
    local_path: str | None = None  # default: <data_dir>/storage
    s3: S3Config = S3Config()
    # The largest object anyone may store; a bucket's file_size_limit can only lower it.
    max_file_size: int = 50 * 1024 * 1024


@dataclass(frozen=True)
class AppConfig:
    # The application's sqitch project; relative to the folder of fluxbase.yaml (else the
    # working directory).
    migrations: str = "db"


@dataclass(frozen=True)
class AuditConfig:
    retention: float = 30 * 86400.0  # audit.record_changes rows older than this are deleted; 0 keeps all
    prune_interval: float = 3600.0


@dataclass(frozen=True)
class LogConfig:
    level: str = "info"
    format: str = "json"


@dataclass(frozen=True)
class Config:
    data_dir: Path = Path(".fluxbase")
    server: ServerConfig = ServerConfig()
    database: DatabaseConfig = DatabaseConfig()
    api: ApiConfig = ApiConfig()
    auth: AuthConfig = AuthConfig()
    dashboard: DashboardConfig = DashboardConfig()
    security: SecurityConfig = SecurityConfig()
    realtime: RealtimeConfig = RealtimeConfig()
    storage: StorageConfig = StorageConfig()
    app: AppConfig = AppConfig()
    audit: AuditConfig = AuditConfig()
    log: LogConfig = LogConfig()
    source: str | None = None  # the yaml file the values came from, if any

    @property
    def embedded_database(self) -> bool:
        """True when Fluxbase runs its own PostgreSQL under data_dir."""
        return self.database.url is None

    @property
    def app_migrations_dir(self) -> Path:
        """The application's sqitch project: app.migrations, beside fluxbase.yaml when relative."""
        folder = Path(self.app.migrations).expanduser()
        if folder.is_absolute():
            return folder
        return (Path(self.source).parent if self.source else Path.cwd()) / folder


def default_base_url(port: int) -> str:
    return f"http://localhost:{port}"


def parse_duration(value: float | int | str) -> float:
    """Seconds in a duration given as a number or as "500ms", "30s", "10m", "1h"."""
    if isinstance(value, int | float):
        return float(value)
    match = _DURATION.match(value)
    if not match:
        raise ValueError(f"not a duration: {value!r}")
    return float(match.group(1)) * _DURATION_UNITS[match.group(2)]


def jwt_secret_problem(secret: str) -> str | None:
    """Why a JWT secret must be refused, or None when it is acceptable."""
    if secret in KNOWN_DOCUMENTED_SECRETS or DOCUMENTED_SECRET_PATTERN.search(secret):
        return f"looks copied from documentation or an example; {GENERATE_SECRET_HINT}"
    if len(secret) < MIN_JWT_SECRET_LENGTH:
        return (
            f"too short ({len(secret)} characters, at least {MIN_JWT_SECRET_LENGTH}); {GENERATE_SECRET_HINT}"
        )
    return None


def _build(tree: Mapping[str, Any], source: str | None) -> Config:
    def section(name: str) -> dict[str, Any]:
        value = tree.get(name, {})
        return dict(value) if isinstance(value, dict) else {}

    def durations(values: dict[str, Any], keys: tuple[str, ...]) -> dict[str, Any]:
        return {k: parse_duration(v) if k in keys else v for k, v in values.items()}

    server = durations(section("server"), ("shutdown_timeout", "header_read_timeout", "idle_timeout"))
    embedded = section("database").get("url") is None
    if "base_url" not in server:
        # Links in mail and the printed API URL follow the port unless a public URL is set.
        server["base_url"] = default_base_url(server.get("port", ServerConfig.port))
    if "host" not in server and embedded:
        server["host"] = LOOPBACK
    database = durations(
        section("database"),
        (
            "connection_max_lifetime",
            "max_conn_idle_time",
            "health_check_period",
            "statement_timeout",
            "acquire_timeout",
            "slow_query_threshold",
        ),
    )
    security = section("security")
    storage = section("storage")
    auth = durations(
        section("auth"), ("access_token_ttl", "refresh_reuse_window", "session_check_interval", "otp_ttl")
    )
    for key in ("redirect_urls", "password_required_characters"):
        if key in auth:
            auth[key] = tuple(auth[key])
    auth["lockout"] = AuthLockoutConfig(
        **durations(dict(auth.get("lockout", {})), ("window", "duration", "max_duration"))
    )
    auth["rate_limit"] = AuthRateLimitConfig(
        **durations(dict(auth.get("rate_limit", {})), ("sign_in_window",))
    )
    auth["smtp"] = SmtpConfig(**auth.get("smtp", {}))
    dashboard = durations(
        section("dashboard"),
        (
            "access_token_ttl",
            "session_ttl",
            "mfa_challenge_ttl",
            "lockout_duration",
            "sign_in_window",
            "link_ttl",
            "api_key_refresh_interval",
        ),
    )
    api = section("api")
    for key in ("schemas", "extra_search_path"):
        if key in api:
            api[key] = tuple(api[key])
    return Config(
        data_dir=Path(tree.get("data_dir", ".fluxbase")),
        server=ServerConfig(**server),
        database=DatabaseConfig(**database),
        api=ApiConfig(**api),
        auth=AuthConfig(**auth),
        dashboard=DashboardConfig(**dashboard),
        security=SecurityConfig(
            rate_limit=RateLimitConfig(**durations(dict(security.get("rate_limit", {})), ("redis_timeout",))),
            csrf=CsrfConfig(**security.get("csrf", {})),
            cors=CorsConfig(tuple(security.get("cors", {}).get("allowed_origins", ("*",)))),
            trusted_proxies=tuple(security.get("trusted_proxies", ())),
        ),
        realtime=RealtimeConfig(
            **durations(
                section("realtime"), ("ping_interval", "log_retention", "prune_interval", "presence_lease")
            )
        ),
        storage=StorageConfig(
            provider=storage.get("provider", "local"),
            local_path=storage.get("local_path"),
            max_file_size=storage.get("max_file_size", StorageConfig.max_file_size),
            s3=S3Config(**storage.get("s3", {})),
        ),
        app=AppConfig(**section("app")),
        audit=AuditConfig(**durations(section("audit"), ("retention", "prune_interval"))),
        log=LogConfig(**section("log")),
        source=source,
    )


def _get(tree: Mapping[str, Any], *path: str) -> Any:
    node: Any = tree
    for key in path:
        node = node.get(key) if isinstance(node, Mapping) else None
    return node


def _cross_check(
    tree: Mapping[str, Any], sources: Mapping[tuple[str, ...], str], file_label: str
) -> list[Problem]:
    """What the schema cannot say, checked on the raw values so that a schema error
    elsewhere does not hide these (every problem is listed at once)."""

    def where(*path: str) -> str:
        return sources.get(path, f"{file_label}: {'.'.join(path)}")

    problems = []
    low = _get(tree, "database", "min_connections")
    high = _get(tree, "database", "max_connections")
    low = DatabaseConfig.min_connections if low is None else low
    high = DatabaseConfig.max_connections if high is None else high
    if isinstance(low, int) and isinstance(high, int) and 1 <= high < low:
        problems.append(
            Problem(
                where("database", "min_connections"), f"{low} is more than database.max_connections ({high})"
            )
        )
    schemas = _get(tree, "api", "schemas")
    if isinstance(schemas, list) and all(isinstance(s, str) for s in schemas):
        for schema in schemas:
            if is_internal_schema(schema):
                problems.append(
                    Problem(
                        where("api", "schemas"), f"schema {schema!r} is internal and can never be exposed"
                    )
                )
        if len(set(schemas)) != len(schemas):
            problems.append(Problem(where("api", "schemas"), "lists a schema twice"))
    secret = _get(tree, "auth", "jwt_secret")
    if isinstance(secret, str):
        reason = jwt_secret_problem(secret)
        if reason:
            problems.append(Problem(where("auth", "jwt_secret"), reason))
    elif secret is None and _get(tree, "database", "url") is not None:
        problems.append(
            Problem(
                "FLUXBASE_JWT_SECRET",
                f"not set; a JWT secret is required with an external database ({GENERATE_SECRET_HINT})",
            )
        )
    algorithm = _get(tree, "auth", "jwt_algorithm") or AuthConfig.jwt_algorithm
    private_key = _get(tree, "auth", "jwt_private_key")
    if isinstance(algorithm, str) and isinstance(private_key, str | None):
        try:
            load_private_key(algorithm, private_key)
        except (ValueError, TypeError, OSError) as exc:
            problems.append(Problem(f"{file_label}: auth.jwt_private_key", str(exc)))
    enabled = _get(tree, "security", "rate_limit", "enabled")
    if (
        enabled is not False
        and _get(tree, "security", "rate_limit", "backend") == "redis"
        and not _get(tree, "security", "rate_limit", "redis_url")
    ):
        problems.append(
            Problem("FLUXBASE_SECURITY_RATE_LIMIT_REDIS_URL", "required when the rate-limit backend is redis")
        )
    if _get(tree, "storage", "provider") == "s3" and not _get(tree, "storage", "s3", "bucket"):
        problems.append(Problem("FLUXBASE_S3_BUCKET", "required when the storage provider is s3"))
    return problems


def load_config(explicit_path: str | None = None, env: Mapping[str, str] | None = None) -> Config:
    """Reads, merges and validates the configuration; raises ConfigError listing every problem."""
    env = os.environ if env is None else env
    path = find_config_file(explicit_path, env)
    file_tree: dict[str, Any] = {}
    problems: list[Problem] = []
    file_label = str(path) if path else "configuration"
    if path is not None:
        file_tree, problems = read_yaml(path)
    env_tree, sources, env_problems = from_env(env)
    problems += env_problems
    merged = merge_trees(file_tree, env_tree)
    problems += schema_problems(merged, sources, file_label)
    problems += _cross_check(merged, sources, file_label)
    if problems:
        raise ConfigError(problems)
    return _build(merged, str(path) if path else None)


def ensure_jwt_secret(config: Config) -> Config:
    """Gives an embedded-database setup a JWT secret, generated once and kept in data_dir.

    With an external database the secret must be configured: several replicas
    must share it, and a secret generated on one machine would sign tokens the
    others refuse.
    """
    if config.auth.jwt_secret is not None:
        return config
    if not config.embedded_database:
        raise ConfigError([Problem("FLUXBASE_JWT_SECRET", f"not set; {GENERATE_SECRET_HINT}")])
    secret_file = config.data_dir / "jwt_secret"
    config.data_dir.mkdir(parents=True, exist_ok=True)
    if not secret_file.exists():
        # Written aside, then linked into place: link() fails if another
        # process got there first, and nobody ever reads a half-written file.
        candidate = secret_file.with_name(f".jwt_secret.{os.getpid()}")
        fd = os.open(candidate, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w", encoding="ascii") as f:
            f.write(secrets.token_hex(32) + "\n")
            f.flush()
            os.fsync(f.fileno())
        try:
            os.link(candidate, secret_file)
        except FileExistsError:
            pass
        finally:
            candidate.unlink()
    secret = _read_secret_file(secret_file)
    return dataclasses.replace(config, auth=dataclasses.replace(config.auth, jwt_secret=secret))


def _read_secret_file(secret_file: Path) -> str:
    mode = stat.S_IMODE(secret_file.stat().st_mode)
    if mode & 0o077:
        raise ConfigError(
            [
                Problem(
                    str(secret_file),
                    f"readable by others (mode {mode:o}); run chmod 600 {secret_file}",
                )
            ]
        )
    secret: str = secret_file.read_text(encoding="ascii").strip()
    reason = jwt_secret_problem(secret)
    if reason:
        raise ConfigError([Problem(str(secret_file), reason)])
    return secret
