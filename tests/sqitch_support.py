"""Running sqitch and psql against a test database, as a DBA would."""

from __future__ import annotations

import subprocess
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

from fluxbase.db.embedded import find_pg_bin
from harness import ROOT


def libpq_args(dsn: str) -> list[str]:
    parts = urlsplit(dsn)
    query = parse_qs(parts.query)
    args = ["-d", parts.path.lstrip("/"), "-U", parts.username or "postgres"]
    if "host" in query:
        args += ["-h", query["host"][0]]
    elif parts.hostname:
        args += ["-h", parts.hostname]
    port = query.get("port", [str(parts.port or 5432)])[0]
    return [*args, "-p", port]


def sqitch(
    dsn: str, *args: str, expect: int = 0, cwd: Path | None = None
) -> subprocess.CompletedProcess[str]:
    """`sqitch ARGS db:pg://...` in cwd (default: Fluxbase's migrations/)."""
    parts = urlsplit(dsn)
    query = parse_qs(parts.query)
    host = query.get("host", [parts.hostname or "localhost"])[0]
    port = query.get("port", [str(parts.port or 5432)])[0]
    target = f"db:pg://{parts.username or 'postgres'}@/{parts.path.lstrip('/')}"
    env = {"PATH": f"{find_pg_bin()}:/usr/bin:/bin", "PGHOST": host, "PGPORT": port, "HOME": "/tmp"}
    env["SQITCH_FULLNAME"] = "Fluxbase Tests"
    env["SQITCH_EMAIL"] = "tests@fluxbase.dev"
    result = subprocess.run(
        ["sqitch", *args, target], cwd=cwd or ROOT / "migrations", env=env, capture_output=True, text=True
    )
    assert result.returncode == expect, result.stdout + result.stderr
    return result
