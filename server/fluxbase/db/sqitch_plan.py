"""sqitch projects on disk: reading a sqitch.plan as sqitch does, and adding a change as `sqitch add`.

Fluxbase's own migrations/ and an application's db/ folder are both sqitch
projects; `db/migrate.py` applies them.  Change ids are computed as sqitch
computes them, so the registry rows we write are the ones sqitch would.
"""

from __future__ import annotations

import datetime
import getpass
import hashlib
import os
import re
import socket
import subprocess
from dataclasses import dataclass
from pathlib import Path

_PLAN_LINE = re.compile(
    r"^(?P<name>[A-Za-z0-9_][A-Za-z0-9_.-]*)(?:\s+\[(?P<requires>[^\]]*)\])?"
    r"\s+(?P<planned>\S+)\s+(?P<planner>[^<]*?)\s*<(?P<email>[^>]*)>(?:\s*#\s*(?P<note>.*))?$"
)
# What `fluxbase migration new` accepts: a name sqitch takes that is also a plain file name.
CHANGE_NAME = re.compile(r"^[A-Za-z0-9_](?:[A-Za-z0-9_.-]{0,62}[A-Za-z0-9_])?$")
_TRANSACTION_LINE = re.compile(r"^\s*(BEGIN|COMMIT)\s*;\s*$", re.I | re.M)


class MigrationError(RuntimeError):
    pass


@dataclass(frozen=True)
class Change:
    """One change of a sqitch plan, its three scripts and the id sqitch gives it."""

    name: str
    requires: tuple[str, ...]
    planned_at: str
    planner_name: str
    planner_email: str
    note: str
    change_id: str
    deploy: Path
    revert: Path
    verify: Path

    @property
    def script_hash(self) -> str:
        """SHA-1 of the deploy script's bytes, as sqitch records it."""
        return hashlib.sha1(self.deploy.read_bytes()).hexdigest()  # noqa: S324 - sqitch's format


@dataclass(frozen=True)
class Plan:
    project: str
    uri: str | None
    changes: list[Change]
    folder: Path


def sqitch_change_id(
    project: str, uri: str | None, change: str, parent: str | None,
    planner: str, planned_at: str, requires: tuple[str, ...], note: str,
) -> str:  # fmt: skip
    """The change id sqitch computes (App::Sqitch::Plan::Change->id): SHA-1 of its info text."""
    lines = [f"project {project}"]
    if uri:
        lines.append(f"uri {uri}")
    lines.append(f"change {change}")
    if parent:
        lines.append(f"parent {parent}")
    lines += [f"planner {planner}", f"date {planned_at}"]
    if requires:
        lines.append("requires\n  + " + "\n  + ".join(requires))
    if note:
        lines += ["", note]
    info = "\n".join(lines).encode()
    return hashlib.sha1(b"change %d\0" % len(info) + info).hexdigest()  # noqa: S324 - sqitch's format


def read_plan(folder: Path) -> Plan:
    """The project and its changes of folder/sqitch.plan in order."""
    project, uri = "", None
    changes: list[Change] = []
    where = folder / "sqitch.plan"
    try:
        text = where.read_text(encoding="utf-8")
    except OSError as exc:
        raise MigrationError(f"{where}: cannot read: {exc.strerror}") from None
    for number, line in enumerate(text.splitlines(), 1):
        stripped = line.strip()
        if stripped.startswith("%project="):
            project = stripped.split("=", 1)[1]
        elif stripped.startswith("%uri="):
            uri = stripped.split("=", 1)[1]
        if not stripped or stripped.startswith(("%", "#")):
            continue
        if stripped.startswith("@"):
            # Tags would need sqitch's tags table kept too; refuse rather than disagree with sqitch.
            raise MigrationError(f"{where}:{number}: tags are not supported by fluxbase migrate")
        match = _PLAN_LINE.match(stripped)
        if not match:
            raise MigrationError(f"{where}:{number}: cannot read {stripped!r}")
        name = match.group("name")
        if any(c.name == name for c in changes):
            raise MigrationError(f"{where}:{number}: reworked change {name!r} is not supported")
        requires = tuple((match.group("requires") or "").split())
        if any(":" in r or r.startswith("!") for r in requires):
            raise MigrationError(
                f"{where}:{number}: conflicts and cross-project dependencies are not supported"
            )
        unknown = [r for r in requires if not any(c.name == r for c in changes)]
        if unknown:
            raise MigrationError(f"{where}:{number}: {name} requires unknown change(s) {', '.join(unknown)}")
        planner_name, planner_email = match.group("planner"), match.group("email")
        note = (match.group("note") or "").strip()
        change_id = sqitch_change_id(
            project, uri, name, changes[-1].change_id if changes else None,
            f"{planner_name} <{planner_email}>", match.group("planned"), requires, note,
        )  # fmt: skip
        changes.append(
            Change(
                name=name, requires=requires, planned_at=match.group("planned"),
                planner_name=planner_name, planner_email=planner_email, note=note, change_id=change_id,
                deploy=folder / "deploy" / f"{name}.sql",
                revert=folder / "revert" / f"{name}.sql",
                verify=folder / "verify" / f"{name}.sql",
            )
        )  # fmt: skip
    if not project:
        raise MigrationError(f"{where}: no %project pragma")
    return Plan(project, uri, changes, folder)


def script_body(path: Path) -> str:
    """A sqitch script without its BEGIN/COMMIT lines: each change runs in a transaction of ours."""
    try:
        return _TRANSACTION_LINE.sub("", path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise MigrationError(f"{path}: cannot read: {exc.strerror}") from None


def _git_config(key: str) -> str | None:
    try:
        result = subprocess.run(["git", "config", key], capture_output=True, text=True, timeout=5)
    except (OSError, subprocess.TimeoutExpired):
        return None
    if result.returncode != 0:
        return None
    return result.stdout.strip() or None


def planner() -> tuple[str, str]:
    """Who plans a change, found as sqitch finds it: SQITCH_FULLNAME/EMAIL, git's user, the login."""
    try:
        login = getpass.getuser()
    except (KeyError, OSError):
        login = "unknown"
    name = os.environ.get("SQITCH_FULLNAME") or _git_config("user.name") or login
    email = os.environ.get("SQITCH_EMAIL") or _git_config("user.email") or f"{login}@{socket.gethostname()}"
    return name, email


_TEMPLATES = {
    "deploy": "-- Deploy {project}:{name} to pg\n{requires}\nBEGIN;\n\n-- XXX Add DDLs here.\n\nCOMMIT;\n",
    "revert": "-- Revert {project}:{name} from pg\n\nBEGIN;\n\n-- XXX Add DDLs here.\n\nCOMMIT;\n",
    "verify": "-- Verify {project}:{name} on pg\n\nBEGIN;\n\n-- XXX Add verifications here.\n\nROLLBACK;\n",
}
NEW_PLAN = "%syntax-version=1.0.0\n%project={project}\n\n"
NEW_CONF = "[core]\n\tengine = pg\n\tplan_file = sqitch.plan\n\ttop_dir = .\n"


def add_change(
    folder: Path, name: str, *, note: str, requires: tuple[str, ...] = (), project: str = "app"
) -> list[Path]:
    """What `sqitch add` does: the three scripts from sqitch's templates and the plan line.

    A folder without a project gets sqitch.conf and sqitch.plan first (`sqitch init`), so
    `sqitch status` works in it.  Returns the files written.
    """
    if not CHANGE_NAME.match(name):
        raise MigrationError(
            f"{name!r} is not a change name: letters, digits, _ . - (not first or last), at most 64"
        )
    if "\n" in note or "#" in note:
        raise MigrationError("the note must be one line without '#'")
    written: list[Path] = []
    folder.mkdir(parents=True, exist_ok=True)
    if not (folder / "sqitch.conf").exists():
        (folder / "sqitch.conf").write_text(NEW_CONF, encoding="utf-8")
        written.append(folder / "sqitch.conf")
    plan_file = folder / "sqitch.plan"
    if not plan_file.exists():
        plan_file.write_text(NEW_PLAN.format(project=project), encoding="utf-8")
        written.append(plan_file)
    plan = read_plan(folder)
    if any(c.name == name for c in plan.changes):
        raise MigrationError(f"{plan_file}: change {name!r} is already planned")
    missing = [r for r in requires if not any(c.name == r for c in plan.changes)]
    if missing:
        raise MigrationError(f"{plan_file}: no change named {', '.join(missing)} to require")
    scripts = {kind: folder / kind / f"{name}.sql" for kind in _TEMPLATES}
    existing = [str(path) for path in scripts.values() if path.exists()]
    if existing:
        raise MigrationError(f"already exists: {', '.join(existing)}")
    for kind, path in scripts.items():
        path.parent.mkdir(exist_ok=True)
        lines = "".join(f"-- requires: {r}\n" for r in requires)
        path.write_text(_TEMPLATES[kind].format(project=plan.project, name=name, requires=lines), "utf-8")
        written.append(path)
    planner_name, planner_email = planner()
    planned_at = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    dependencies = f" [{' '.join(requires)}]" if requires else ""
    line = f"{name}{dependencies} {planned_at} {planner_name} <{planner_email}> # {note}\n"
    text = plan_file.read_text(encoding="utf-8")
    plan_file.write_text(text + ("" if text.endswith("\n") else "\n") + line, encoding="utf-8")
    read_plan(folder)  # the line reads back, or the user learns now rather than at migrate
    return written
