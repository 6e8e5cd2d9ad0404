"""The `fluxbase` command as a user runs it: --version, --config-test, migrate, keys."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import jwt
import pytest

from fluxbase import __version__
from fluxbase.db.migrate import read_plan
from harness import FLUXBASE, JWT_SECRET, PostgresServer

PLAN = [change.name for change in read_plan().changes]


def run(
    *args: str, env: dict[str, str] | None = None, cwd: Path | None = None
) -> subprocess.CompletedProcess[str]:
    base = {"PATH": "/usr/bin:/bin", "HOME": "/tmp"}
    return subprocess.run(
        [FLUXBASE, *args], env={**base, **(env or {})}, cwd=cwd, capture_output=True, text=True, timeout=120
    )


def test_version() -> None:
    result = run("--version")
    assert result.returncode == 0
    assert result.stdout.strip() == f"fluxbase {__version__}"


def test_keys_into_a_closed_pipe_ends_quietly(tmp_path: Path) -> None:
    """`fluxbase keys | head -1`: the reader may leave before the writer is done."""
    env = {"PATH": "/usr/bin:/bin", "HOME": "/tmp", "FLUXBASE_DATA_DIR": str(tmp_path)}
    process = subprocess.Popen([FLUXBASE, "keys"], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    assert process.stdout is not None and process.stderr is not None
    process.stdout.close()  # before the interpreter has even started: its write must fail
    stderr = process.stderr.read().decode()
    assert process.wait(timeout=60) == 0
    assert stderr == ""


def test_config_test_names_an_unknown_key(tmp_path: Path) -> None:
    config = tmp_path / "fluxbase.yaml"
    config.write_text("server:\n  port: 8080\n  prot: 8081\n")
    result = run("--config", str(config), "--config-test")
    assert result.returncode != 0
    assert f"{config}: server.prot: unknown key" in result.stderr


def test_config_test_names_a_wrong_type(tmp_path: Path) -> None:
    config = tmp_path / "fluxbase.yaml"
    config.write_text("database:\n  max_connections: plenty\n")
    result = run("--config-test", env={"FLUXBASE_CONFIG": str(config)})
    assert result.returncode != 0
    assert f"{config}: database.max_connections: expected integer" in result.stderr


def test_config_test_refuses_a_placeholder_secret(migrated_dsn: str) -> None:
    result = run(
        "--config-test",
        env={"DATABASE_URL": migrated_dsn, "FLUXBASE_JWT_SECRET": "your-256-bit-secret-key-here"},
    )
    assert result.returncode != 0
    assert "FLUXBASE_JWT_SECRET" in result.stderr and "openssl rand" in result.stderr


def test_config_test_with_a_good_config_and_database(tmp_path: Path, migrated_dsn: str) -> None:
    config = tmp_path / "fluxbase.yaml"
    config.write_text("server:\n  port: 8080\ndatabase:\n  max_connections: 20\nlog:\n  level: info\n")
    result = run(
        "--config",
        str(config),
        "--config-test",
        env={"DATABASE_URL": migrated_dsn, "FLUXBASE_JWT_SECRET": JWT_SECRET},
    )
    assert result.returncode == 0, result.stderr
    assert "configuration OK" in result.stdout


def test_config_test_reports_an_unreachable_database(tmp_path: Path) -> None:
    missing = f"postgresql://postgres@/nowhere?host={tmp_path}&port=5999"
    result = run("--config-test", env={"DATABASE_URL": missing, "FLUXBASE_JWT_SECRET": JWT_SECRET})
    assert result.returncode != 0
    assert result.stderr.startswith("database.url: cannot connect")


def test_unreachable_data_folder_is_explained(tmp_path: Path) -> None:
    if os.geteuid() != 0:
        pytest.skip("only root hands the database to another user")
    result = run("migrate", env={"FLUXBASE_DATA_DIR": str(tmp_path / "data")})
    assert result.returncode == 1
    assert result.stderr.startswith("database: the database runs as user")
    assert "Traceback" not in result.stderr


def test_unreachable_database_is_explained(tmp_path: Path) -> None:
    missing = f"postgresql://postgres@/nowhere?host={tmp_path}&port=5999"
    env = {"DATABASE_URL": missing, "FLUXBASE_JWT_SECRET": JWT_SECRET}
    for args in (("migrate",), ("serve", "--port", "0"), ("serve", "--port", "0", "--no-migrate")):
        result = run(*args, env=env)
        assert result.returncode == 1, args
        assert "Traceback" not in result.stdout + result.stderr, args
    assert "cannot connect to the database" in result.stdout


def test_migrate_twice_then_status(postgres: PostgresServer, fresh_dsn: str) -> None:
    env = {"DATABASE_URL": fresh_dsn, "FLUXBASE_JWT_SECRET": JWT_SECRET}
    first = run("migrate", env=env)
    assert first.returncode == 0, first.stderr
    assert first.stdout.strip() == "applied: " + ", ".join(PLAN)
    assert PLAN[:2] == ["foundation", "auth_schema"]
    second = run("migrate", "up", env=env)
    assert second.returncode == 0, second.stderr
    assert second.stdout.strip() == "nothing to apply: the database is current"
    status = run("migrate", "status", env=env)
    assert status.stdout.strip().splitlines() == [f"applied  {name}" for name in PLAN]


def test_migrate_down_reverts_the_last_change(fresh_dsn: str) -> None:
    env = {"DATABASE_URL": fresh_dsn, "FLUXBASE_JWT_SECRET": JWT_SECRET}
    assert run("migrate", env=env).returncode == 0
    down = run("migrate", "down", env=env)
    assert down.returncode == 0, down.stderr
    assert down.stdout.strip() == f"reverted: {PLAN[-1]}"
    assert run("migrate", "status", env=env).stdout.strip().splitlines() == [
        *(f"applied  {name}" for name in PLAN[:-1]),
        f"pending  {PLAN[-1]}",
    ]


@pytest.mark.parametrize("role", ["anon", "service_role"])
def test_keys_are_jwts_signed_with_the_secret(role: str, migrated_dsn: str) -> None:
    result = run("keys", env={"DATABASE_URL": migrated_dsn, "FLUXBASE_JWT_SECRET": JWT_SECRET})
    assert result.returncode == 0, result.stderr
    lines = dict(
        line.split(":", 1)
        for line in result.stdout.splitlines()
        if line.endswith(tuple("0123456789")) is False and ":" in line
    )
    token = lines[f"{role} key"].strip()
    claims = jwt.decode(token, JWT_SECRET, algorithms=["HS256"])
    assert claims["role"] == role
    # The same secret always gives the same keys.
    again = run("keys", env={"DATABASE_URL": migrated_dsn, "FLUXBASE_JWT_SECRET": JWT_SECRET})
    assert again.stdout == result.stdout


def test_keys_name_the_dashboard_url(migrated_dsn: str) -> None:
    """`make run` prints this: where an administrator opens the dashboard."""
    env = {
        "DATABASE_URL": migrated_dsn,
        "FLUXBASE_JWT_SECRET": JWT_SECRET,
        "FLUXBASE_BASE_URL": "https://db.example.com/",
    }
    result = run("keys", env=env)
    assert result.returncode == 0, result.stderr
    assert "Dashboard:        https://db.example.com/dashboard/" in result.stdout.splitlines()
