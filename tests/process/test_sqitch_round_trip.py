"""One registry for both tools, through the real commands: sqitch, then `fluxbase serve`, and back."""

from __future__ import annotations

import shutil
import subprocess
import urllib.request

import pytest

from harness import FLUXBASE, PostgresServer, server_env, start_server
from sqitch_support import sqitch

pytestmark = pytest.mark.skipif(not shutil.which("sqitch"), reason="sqitch is installed by `make test`")


def fluxbase(dsn: str, *args: str) -> subprocess.CompletedProcess[str]:
    env = {"PATH": "/usr/bin:/bin", "HOME": "/tmp", **server_env(dsn)}
    return subprocess.run([FLUXBASE, *args], env=env, capture_output=True, text=True, timeout=120)


def ready(url: str) -> int:
    try:
        with urllib.request.urlopen(url + "/ready", timeout=10) as response:
            return int(response.status)
    except urllib.error.HTTPError as error:
        return error.code


def test_sqitch_deploy_then_fluxbase_serve_no_migrate(local_postgres: PostgresServer, fresh_dsn: str) -> None:
    """The DBA path of the README: sqitch deploys, `fluxbase migrate` has nothing to deploy."""
    sqitch(fresh_dsn, "deploy", "--verify")
    status = fluxbase(fresh_dsn, "migrate", "status")
    assert status.returncode == 0, status.stderr
    assert "pending" not in status.stdout and status.stdout.count("applied") >= 5
    migrate = fluxbase(fresh_dsn, "migrate")
    assert migrate.returncode == 0, migrate.stderr
    assert "nothing to apply: the database is current" in migrate.stdout
    server = start_server(server_env(fresh_dsn), "serve", "--no-migrate")
    try:
        assert ready(server.url) == 200
    finally:
        assert server.terminate() == 0


def test_fluxbase_serve_then_sqitch_finds_nothing_to_deploy(
    local_postgres: PostgresServer, fresh_dsn: str
) -> None:
    server = start_server(server_env(fresh_dsn), "serve")  # migrates at start
    try:
        assert ready(server.url) == 200
    finally:
        assert server.terminate() == 0
    assert "Nothing to deploy (up-to-date)" in sqitch(fresh_dsn, "status").stdout
    assert "Nothing to deploy" in sqitch(fresh_dsn, "deploy").stdout
    sqitch(fresh_dsn, "verify")
    # And sqitch's revert is seen by the server, which then says it is not ready.
    sqitch(fresh_dsn, "revert", "-y", "--to", "auth_email_codes")
    server = start_server(server_env(fresh_dsn), "serve", "--no-migrate")
    try:
        assert ready(server.url) == 503
    finally:
        assert server.terminate() == 0
