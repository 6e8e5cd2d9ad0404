"""Runs the advisor's checks against a database and renders the findings (text or JSON).

`lint(connection, schemas)` is what `fluxbase lint` and the admin API call;
it only reads the catalogs, in one read-only transaction.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

import asyncpg

from fluxbase.advisor.checks import CHECKS, Check, Level

LEVEL_ORDER: dict[Level, int] = {"error": 0, "warn": 1, "info": 2}


@dataclass(frozen=True)
class Finding:
    """One problem: which check, how bad, which object, why it matters and the SQL that fixes it."""

    check: str
    level: Level
    title: str
    object_type: str
    object: str
    detail: str
    why: str
    fix: str


@dataclass(frozen=True)
class Report:
    schemas: tuple[str, ...]
    findings: tuple[Finding, ...]

    def count(self, level: Level) -> int:
        return sum(1 for f in self.findings if f.level == level)

    def fails(self, threshold: Level | None) -> bool:
        """True when a finding is at least as bad as `threshold` (None: never)."""
        if threshold is None:
            return False
        return any(LEVEL_ORDER[f.level] <= LEVEL_ORDER[threshold] for f in self.findings)

    def as_json(self) -> dict[str, Any]:
        return {
            "schemas": list(self.schemas),
            "findings": [asdict(f) for f in self.findings],
            "summary": {level: self.count(level) for level in LEVEL_ORDER},
        }

    def as_text(self) -> str:
        lines = []
        for finding in self.findings:
            lines += [
                f"{finding.level.upper():5}  {finding.check}  {finding.object_type} {finding.object}",
                f"       {finding.detail}",
                f"       why: {finding.why}",
                f"       fix: {finding.fix}",
                "",
            ]
        schemas = ", ".join(self.schemas)
        if not self.findings:
            lines.append(f"no problems found (exposed schemas: {schemas})")
        else:
            counts = ", ".join(f"{self.count(level)} {level}" for level in LEVEL_ORDER)
            lines.append(f"{len(self.findings)} findings: {counts} (exposed schemas: {schemas})")
        return "\n".join(lines)


async def lint(
    connection: asyncpg.Connection, schemas: Sequence[str], checks: Sequence[Check] = CHECKS
) -> Report:
    """Runs every check; findings come worst first, then in each check's order."""
    findings: list[Finding] = []
    async with connection.transaction(readonly=True):
        for check in checks:
            for object_type, name, detail, fix in await connection.fetch(check.query, list(schemas)):
                findings.append(
                    Finding(check.name, check.level, check.title, object_type, name, detail, check.why, fix)
                )
    findings.sort(key=lambda f: LEVEL_ORDER[f.level])
    return Report(tuple(schemas), tuple(findings))
