"""The embedded PostgreSQL: a private cluster under the data folder.

Used when DATABASE_URL is unset (and by the test harness).  It listens on a
Unix socket in a folder only its owner can enter, never on TCP.  PostgreSQL
refuses to run as root, so under root the cluster runs as an unprivileged
system user.
"""

from __future__ import annotations

import logging
import os
import pwd
import shutil
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Literal
from urllib.parse import quote

log = logging.getLogger("fluxbase.embedded")

SUPERUSER = "postgres"
DATABASE = "fluxbase"
SYSTEM_USER = "fluxbase-db"  # created when running as root and no `postgres` user exists
INSTALL_HINT = (
    "PostgreSQL server binaries (initdb, pg_ctl, postgres) were not found. Install them "
    "(Debian/Ubuntu: apt-get install postgresql; Fedora: dnf install postgresql-server; "
    "macOS: brew install postgresql@15), put their folder on PATH or in FLUXBASE_PG_BIN, "
    "or set DATABASE_URL to use an existing server."
)


class EmbeddedPostgresError(RuntimeError):
    pass


def find_pg_bin() -> Path:
    """The folder holding initdb and pg_ctl: FLUXBASE_PG_BIN, the newest Debian install, or PATH."""
    override = os.environ.get("FLUXBASE_PG_BIN")
    candidates = [Path(override)] if override else []
    debian = sorted(
        Path("/usr/lib/postgresql").glob("*/bin"),
        key=lambda p: int(p.parent.name) if p.parent.name.isdigit() else 0,
        reverse=True,
    )
    candidates += debian
    on_path = shutil.which("initdb")
    if on_path:
        candidates.append(Path(on_path).parent)
    for folder in candidates:
        if (folder / "initdb").is_file() and (folder / "pg_ctl").is_file():
            return folder
    raise EmbeddedPostgresError(INSTALL_HINT)


@dataclass(frozen=True)
class RunAs:
    uid: int
    gid: int
    name: str


def _unprivileged_user() -> RunAs | None:
    """None when we are not root; otherwise the user the cluster must run as."""
    if os.geteuid() != 0:
        return None
    for name in (SUPERUSER, SYSTEM_USER):
        try:
            entry = pwd.getpwnam(name)
        except KeyError:
            continue
        return RunAs(entry.pw_uid, entry.pw_gid, name)
    subprocess.run(
        ["useradd", "--system", "--no-create-home", "--shell", "/usr/sbin/nologin", SYSTEM_USER],
        check=True,
        capture_output=True,
    )
    entry = pwd.getpwnam(SYSTEM_USER)
    return RunAs(entry.pw_uid, entry.pw_gid, SYSTEM_USER)


class EmbeddedPostgres:
    """Creates (first run), starts and stops a private PostgreSQL cluster."""

    def __init__(self, data_dir: Path, *, port: int = 5432, max_connections: int = 300) -> None:
        self.data_dir = data_dir.resolve()
        self.pgdata = self.data_dir / "pgdata"
        self.socket_dir = self.data_dir / "run"
        self.logfile = self.data_dir / "postgresql.log"
        self.port = port
        self.max_connections = max_connections
        self.started_here = False
        self._bin: Path | None = None
        self._run_as = _unprivileged_user()

    @property
    def bin(self) -> Path:
        if self._bin is None:
            self._bin = find_pg_bin()
        return self._bin

    @property
    def initialized(self) -> bool:
        return (self.pgdata / "PG_VERSION").is_file()

    def dsn(self, user: str = SUPERUSER, database: str = DATABASE) -> str:
        return f"postgresql://{quote(user)}@/{quote(database)}?host={quote(str(self.socket_dir))}&port={self.port}"

    def _run(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        kwargs: dict[str, object] = {}
        if self._run_as is not None:
            kwargs = {"user": self._run_as.uid, "group": self._run_as.gid, "extra_groups": []}
        return subprocess.run(  # type: ignore[call-overload, no-any-return]
            [str(self.bin / args[0]), *args[1:]],
            check=check,
            capture_output=True,
            text=True,
            cwd="/",
            **kwargs,
        )

    def _prepare_folders(self) -> None:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        for folder in (self.pgdata, self.socket_dir):
            folder.mkdir(mode=0o700, exist_ok=True)
        if self._run_as is None:
            return
        # The data folder stays root's (it holds the JWT secret, mode 0600);
        # the cluster's user may only pass through it to its own folders.
        self.data_dir.chmod(self.data_dir.stat().st_mode | 0o711)
        for folder in (self.pgdata, self.socket_dir):
            os.chown(folder, self._run_as.uid, self._run_as.gid)
        if not self.logfile.exists():
            self.logfile.touch(mode=0o600)
        os.chown(self.logfile, self._run_as.uid, self._run_as.gid)
        blocked = [p for p in self.data_dir.parents if not p.stat().st_mode & 0o001]
        if blocked:
            raise EmbeddedPostgresError(
                f"the database runs as user {self._run_as.name}, who cannot enter {blocked[0]}; "
                f"choose a data folder outside it (data_dir / FLUXBASE_DATA_DIR), e.g. /var/lib/fluxbase"
            )

    def _initdb(self) -> None:
        log.info("creating the embedded PostgreSQL cluster", extra={"pgdata": str(self.pgdata)})
        result = self._run(
            "initdb", "-D", str(self.pgdata), "-U", SUPERUSER, "-E", "UTF8", "--no-locale",
            "--auth-local=trust", "--auth-host=reject", check=False,
        )  # fmt: skip
        if result.returncode != 0:
            raise EmbeddedPostgresError(f"initdb failed: {result.stderr.strip() or result.stdout.strip()}")
        # Trust is safe only because nobody else can reach the socket: it sits
        # in a folder of mode 0700, and TCP is switched off.
        settings = (
            "\n# Added by Fluxbase: a private cluster reached only through its own socket.\n"
            "listen_addresses = ''\n"
            f"unix_socket_directories = '{self.socket_dir}'\n"
            "unix_socket_permissions = 0700\n"
            f"port = {self.port}\n"
            f"max_connections = {self.max_connections}\n"
        )
        with open(self.pgdata / "postgresql.conf", "a", encoding="utf-8") as conf:
            conf.write(settings)

    def running(self) -> bool:
        if not self.initialized:
            return False
        return self._run("pg_ctl", "status", "-D", str(self.pgdata), check=False).returncode == 0

    def start(self) -> str:
        """Starts the cluster (creating it on first use); returns the superuser DSN."""
        self._prepare_folders()
        if not self.initialized:
            self._initdb()
        if not self.running():
            result = self._run(
                "pg_ctl", "start", "-D", str(self.pgdata), "-l", str(self.logfile), "-w", "-t", "60",
                check=False,
            )  # fmt: skip
            if result.returncode != 0:
                tail = self._log_tail()
                raise EmbeddedPostgresError(f"PostgreSQL did not start: {result.stderr.strip()}\n{tail}")
            self.started_here = True
        self._ensure_database()
        return self.dsn()

    def stop(self, mode: Literal["smart", "fast", "immediate"] = "fast") -> None:
        """Stops the cluster; `immediate` is a crash as far as clients see (tests use it)."""
        if self.initialized and self.running():
            self._run("pg_ctl", "stop", "-D", str(self.pgdata), "-m", mode, "-w", "-t", "60", check=False)

    def _ensure_database(self) -> None:
        import psycopg

        deadline = time.monotonic() + 30
        while True:
            try:
                with psycopg.connect(self.dsn(database="postgres"), autocommit=True) as conn:
                    exists = conn.execute(
                        "select 1 from pg_database where datname = %s", (DATABASE,)
                    ).fetchone()
                    if not exists:
                        conn.execute(f'create database "{DATABASE}"')
                    return
            except psycopg.OperationalError:
                # Right after start the server may still refuse while it recovers.
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.2)

    def _log_tail(self, lines: int = 20) -> str:
        try:
            return "\n".join(self.logfile.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""
