"""Configuration: file + environment, validation messages, JWT secret rules."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from fluxbase.config import ConfigError, ensure_jwt_secret, load_config, parse_duration

GOOD_SECRET = "a" * 16 + "0123456789abcdef0123456789abcdef"


def write(tmp_path: Path, text: str) -> str:
    path = tmp_path / "fluxbase.yaml"
    path.write_text(text)
    return str(path)


def problems(error: pytest.ExceptionInfo[ConfigError]) -> list[str]:
    return [str(p) for p in error.value.problems]


def test_defaults_without_file_or_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    config = load_config(env={})
    assert config.server.port == 8080
    assert config.database.max_connections == 100
    assert config.security.rate_limit.requests_per_minute == 100
    assert config.embedded_database
    assert config.source is None


def test_runbook_yaml_is_accepted(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        """
server:
  host: "0.0.0.0"
  port: 8080
  body_limit: 2147483648  # 2GB
database:
  max_connections: 100
  min_connections: 10
  connection_max_lifetime: "1h"
  max_conn_idle_time: "10m"
  health_check_period: "1m"
security:
  rate_limit:
    enabled: true
    requests_per_minute: 100
  csrf:
    enabled: false
    cookie_secure: true
realtime:
  enabled: true
  max_connections: 1000
  ping_interval: "30s"
log:
  level: "info"
  format: "json"
""",
    )
    config = load_config(path, env={})
    assert config.database.connection_max_lifetime == 3600
    assert config.database.max_conn_idle_time == 600
    assert config.realtime.ping_interval == 30
    assert config.server.body_limit == 2147483648
    assert config.source == path


def test_unknown_key_is_named(tmp_path: Path) -> None:
    path = write(tmp_path, "server:\n  prot: 8080\n")
    with pytest.raises(ConfigError) as error:
        load_config(path, env={})
    assert problems(error) == [f"{path}: server.prot: unknown key"]


def test_unknown_section_is_named(tmp_path: Path) -> None:
    path = write(tmp_path, "servers:\n  port: 1\n")
    with pytest.raises(ConfigError) as error:
        load_config(path, env={})
    assert problems(error) == [f"{path}: servers: unknown key"]


def test_wrong_type_is_named(tmp_path: Path) -> None:
    path = write(tmp_path, "database:\n  max_connections: lots\n")
    with pytest.raises(ConfigError) as error:
        load_config(path, env={})
    [problem] = problems(error)
    assert problem.startswith(f"{path}: database.max_connections: expected integer")


def test_every_problem_is_reported_at_once(tmp_path: Path) -> None:
    path = write(tmp_path, "server:\n  port: -1\n  colour: red\nlog:\n  level: loud\n")
    with pytest.raises(ConfigError) as error:
        load_config(path, env={})
    text = "\n".join(problems(error))
    assert "server.port" in text and "server.colour: unknown key" in text and "log.level" in text


def test_schema_errors_do_not_hide_the_other_checks(tmp_path: Path) -> None:
    """A wrong type elsewhere must not stop a bad secret or pool size from being named too."""
    path = write(
        tmp_path,
        "server:\n  port: abc\ndatabase:\n  max_connections: 5\n  min_connections: 10\n"
        "auth:\n  jwt_secret: short\napi:\n  schemas: [public, auth]\n",
    )
    with pytest.raises(ConfigError) as error:
        load_config(path, env={})
    text = "\n".join(problems(error))
    assert "server.port: expected integer" in text
    assert "database.min_connections: 10 is more than database.max_connections (5)" in text
    assert "auth.jwt_secret: too short" in text
    assert "schema 'auth' is internal" in text


def test_embedded_database_listens_on_loopback_unless_told(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    everywhere = "0.0.0.0"  # noqa: S104 - what is asserted, not bound
    assert load_config(env={}).server.host == "127.0.0.1"
    assert load_config(env={"FLUXBASE_SERVER_HOST": everywhere}).server.host == everywhere
    assert load_config(env={"FLUXBASE_SERVER_ADDRESS": f"{everywhere}:9000"}).server.host == everywhere
    external = {"DATABASE_URL": "postgresql://u@db/fluxbase", "FLUXBASE_JWT_SECRET": GOOD_SECRET}
    assert load_config(env=external).server.host == everywhere


def test_the_production_config_listens_everywhere_explicitly() -> None:
    from fluxbase.auth.mailbox import active
    from fluxbase.paths import resources_root

    env = {"DATABASE_URL": "postgresql://owner@db/fluxbase", "FLUXBASE_JWT_SECRET": GOOD_SECRET}
    config = load_config(str(resources_root() / "deploy" / "fluxbase.yaml"), env=env)
    assert config.server.host == "0.0.0.0"  # noqa: S104 - what is asserted, not bound
    assert not active(config)
    # Even on an embedded database, this file keeps sign-in links out of the database.
    assert not active(load_config(str(resources_root() / "deploy" / "fluxbase.yaml"), env={}))


def test_bad_duration(tmp_path: Path) -> None:
    path = write(tmp_path, "realtime:\n  ping_interval: soon\n")
    with pytest.raises(ConfigError) as error:
        load_config(path, env={})
    assert "realtime.ping_interval: expected a duration" in problems(error)[0]


def test_invalid_yaml_names_the_line(tmp_path: Path) -> None:
    path = write(tmp_path, "server:\n  port: [8080\n")
    with pytest.raises(ConfigError) as error:
        load_config(path, env={})
    assert problems(error)[0].startswith(f"{path}:")
    assert "invalid YAML" in problems(error)[0]


def test_environment_overrides_file(tmp_path: Path) -> None:
    path = write(tmp_path, "server:\n  port: 9000\ndatabase:\n  max_connections: 20\n")
    config = load_config(
        path,
        env={
            "FLUXBASE_SERVER_ADDRESS": "127.0.0.1:7000",
            "FLUXBASE_DATABASE_MAX_CONNECTIONS": "30",
            "DATABASE_URL": "postgresql://u:p@db:5432/app",
            "FLUXBASE_JWT_SECRET": GOOD_SECRET,
            "FLUXBASE_BASE_URL": "https://api.example.org",
            "FLUXBASE_SECURITY_RATE_LIMIT_ENABLED": "false",
        },
    )
    assert (config.server.host, config.server.port) == ("127.0.0.1", 7000)
    assert config.database.max_connections == 30
    assert config.database.url == "postgresql://u:p@db:5432/app"
    assert config.server.base_url == "https://api.example.org"
    assert config.security.rate_limit.enabled is False
    assert not config.embedded_database


def test_s3_environment_names_from_the_runbook(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    config = load_config(
        env={
            "FLUXBASE_STORAGE_PROVIDER": "s3",
            "FLUXBASE_S3_ENDPOINT": "s3.amazonaws.com",
            "FLUXBASE_S3_ACCESS_KEY": "AKIA",
            "FLUXBASE_S3_SECRET_KEY": "shh",
            "FLUXBASE_S3_BUCKET": "my-bucket",
            "FLUXBASE_S3_REGION": "eu-west-1",
        }
    )
    assert config.storage.provider == "s3"
    assert config.storage.s3.bucket == "my-bucket"
    assert config.storage.s3.region == "eu-west-1"
    assert "shh" not in repr(config)


def test_environment_wrong_type_names_the_variable(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ConfigError) as error:
        load_config(env={"FLUXBASE_DATABASE_MAX_CONNECTIONS": "many"})
    assert problems(error)[0].startswith("FLUXBASE_DATABASE_MAX_CONNECTIONS (database.max_connections)")


def test_unknown_fluxbase_variable_is_an_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ConfigError) as error:
        load_config(env={"FLUXBASE_SERVR_PORT": "1"})
    assert problems(error) == ["FLUXBASE_SERVR_PORT: unknown setting (no such configuration key)"]


def test_bad_server_address(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ConfigError) as error:
        load_config(env={"FLUXBASE_SERVER_ADDRESS": "localhost"})
    assert "FLUXBASE_SERVER_ADDRESS: expected host:port" in problems(error)[0]


def test_config_file_from_environment_and_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as error:
        load_config(env={"FLUXBASE_CONFIG": str(tmp_path / "absent.yaml")})
    assert problems(error)[0].startswith(f"{tmp_path / 'absent.yaml'}: cannot read")


def test_dot_fluxbase_yaml_in_working_directory_is_found(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    write(tmp_path, "server:\n  port: 9123\n")
    assert load_config(env={}).server.port == 9123


@pytest.mark.parametrize(
    "secret",
    ["your-256-bit-secret-key-here", "super-secret-jwt-token-with-at-least-32-characters-long", "short"],
)
def test_placeholder_or_short_secret_is_refused(
    secret: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ConfigError) as error:
        load_config(env={"FLUXBASE_JWT_SECRET": secret})
    [problem] = problems(error)
    assert problem.startswith("FLUXBASE_JWT_SECRET")
    assert "openssl rand -base64 32" in problem


def test_external_database_requires_a_secret(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ConfigError) as error:
        load_config(env={"DATABASE_URL": "postgresql://db/app"})
    assert problems(error)[0].startswith("FLUXBASE_JWT_SECRET: not set")


def test_embedded_secret_is_generated_once_with_mode_0600(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    config = load_config(env={"FLUXBASE_DATA_DIR": str(tmp_path / "data")})
    first = ensure_jwt_secret(config)
    second = ensure_jwt_secret(config)
    secret_file = tmp_path / "data" / "jwt_secret"
    assert first.auth.jwt_secret == second.auth.jwt_secret
    assert first.auth.jwt_secret is not None and len(first.auth.jwt_secret) >= 32
    assert stat.S_IMODE(secret_file.stat().st_mode) == 0o600
    assert [p.name for p in secret_file.parent.iterdir()] == ["jwt_secret"]


def test_secret_file_readable_by_others_is_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    config = load_config(env={"FLUXBASE_DATA_DIR": str(tmp_path)})
    ensure_jwt_secret(config)
    os.chmod(tmp_path / "jwt_secret", 0o644)
    with pytest.raises(ConfigError) as error:
        ensure_jwt_secret(config)
    assert "chmod 600" in problems(error)[0]


def test_min_connections_above_max(tmp_path: Path) -> None:
    path = write(tmp_path, "database:\n  max_connections: 5\n  min_connections: 10\n")
    with pytest.raises(ConfigError) as error:
        load_config(path, env={})
    assert "database.min_connections" in problems(error)[0]


@pytest.mark.parametrize(
    ("text", "seconds"), [("500ms", 0.5), ("30s", 30), ("10m", 600), ("1h", 3600), ("30d", 2592000), (5, 5.0)]
)
def test_parse_duration(text: str | int, seconds: float) -> None:
    assert parse_duration(text) == seconds


def test_api_schemas_from_the_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    config = load_config(env={"FLUXBASE_API_SCHEMAS": "public, api", "FLUXBASE_API_MAX_ROWS": "500"})
    assert config.api.schemas == ("public", "api")
    assert config.api.max_rows == 500
    assert config.api.tx_override is True


@pytest.mark.parametrize(
    "schema", ["auth", "storage", "pg_catalog", "pg_temp_3", "fluxbase_migrations", "tests", "audit"]
)
def test_internal_schemas_can_never_be_exposed(schema: str, tmp_path: Path) -> None:
    path = write(tmp_path, f"api:\n  schemas: [public, {schema}]\n")
    with pytest.raises(ConfigError) as error:
        load_config(path, env={})
    assert problems(error) == [f"{path}: api.schemas: schema {schema!r} is internal and can never be exposed"]


def test_openapi_mode_follows_privileges_by_default(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    assert load_config(env={}).api.openapi_mode == "follow-privileges"
    assert load_config(env={"FLUXBASE_API_OPENAPI_MODE": "disabled"}).api.openapi_mode == "disabled"


def test_openapi_mode_refuses_unknown_values(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ConfigError) as error:
        load_config(env={"FLUXBASE_API_OPENAPI_MODE": "everything"})
    assert problems(error) == [
        "FLUXBASE_API_OPENAPI_MODE (api.openapi_mode): expected one of follow-privileges, "
        "ignore-privileges, disabled, got 'everything'"
    ]


def test_realtime_limits_from_file_and_environment(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "realtime:\n  log_retention: 2h\n  max_connections_per_ip: 7\n  send_queue_size: 50\n",
    )
    config = load_config(
        path,
        env={
            "FLUXBASE_REALTIME_MAX_SUBSCRIPTIONS_PER_SOCKET": "3",
            "FLUXBASE_REALTIME_PRUNE_INTERVAL": "30s",
        },
    )
    assert config.realtime.log_retention == 7200
    assert config.realtime.prune_interval == 30
    assert config.realtime.max_connections_per_ip == 7
    assert config.realtime.send_queue_size == 50
    assert config.realtime.max_subscriptions_per_socket == 3
    assert config.realtime.max_message_size == 5 * 1024 * 1024


def test_realtime_message_size_has_a_floor(tmp_path: Path) -> None:
    path = write(tmp_path, "realtime:\n  max_message_size: 10\n")
    with pytest.raises(ConfigError) as error:
        load_config(path, env={})
    assert "realtime.max_message_size" in problems(error)[0]


def test_a_signing_key_that_does_not_fit_the_algorithm_is_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec

    monkeypatch.chdir(tmp_path)
    key_file = tmp_path / "signing.pem"
    key_file.write_bytes(
        ec.generate_private_key(ec.SECP256R1()).private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    env = {"FLUXBASE_AUTH_JWT_ALGORITHM": "RS256", "FLUXBASE_AUTH_JWT_PRIVATE_KEY": str(key_file)}
    with pytest.raises(ConfigError) as error:
        load_config(env=env)
    [problem] = problems(error)
    assert "auth.jwt_private_key" in problem
    assert "RS256 needs an RSA private key" in problem
    env["FLUXBASE_AUTH_JWT_ALGORITHM"] = "ES256"
    assert load_config(env=env).auth.jwt_algorithm == "ES256"


def test_app_migrations_sit_beside_the_config_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    assert load_config(env={}).app_migrations_dir == tmp_path / "db"  # no file: the working directory
    project = tmp_path / "project"
    project.mkdir()
    path = write(project, "audit:\n  retention: 7d\n  prune_interval: 10m\n")
    config = load_config(path, env={})
    assert config.app_migrations_dir == project / "db"
    assert (config.audit.retention, config.audit.prune_interval) == (7 * 86400, 600)
    moved = load_config(path, env={"FLUXBASE_APP_MIGRATIONS": "sql/app"})
    assert moved.app_migrations_dir == project / "sql" / "app"
    absolute = load_config(path, env={"FLUXBASE_APP_MIGRATIONS": str(tmp_path / "elsewhere")})
    assert absolute.app_migrations_dir == tmp_path / "elsewhere"


def test_audit_retention_must_be_a_duration(tmp_path: Path) -> None:
    path = write(tmp_path, "audit:\n  retention: forever\n")
    with pytest.raises(ConfigError) as error:
        load_config(path, env={})
    assert problems(error) == [
        f"{path}: audit.retention: expected a duration such as 30s, 10m or 1h, got 'forever'"
    ]
