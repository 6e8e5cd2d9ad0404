"""Reading the sqitch plan and scripts the way `fluxbase migrate` does."""

from __future__ import annotations

import base64
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from fluxbase.db.migrate import MigrationError, read_plan, scram_verifier, script_body
from fluxbase.paths import migrations_dir


def test_plan_lists_every_change_with_its_three_scripts() -> None:
    plan = read_plan()
    assert plan.project == "fluxbase"
    assert plan.changes[0].name == "foundation"
    for change in plan.changes:
        assert change.deploy.is_file() and change.revert.is_file() and change.verify.is_file()


def test_plan_with_dependencies(tmp_path: Path) -> None:
    (tmp_path / "sqitch.plan").write_text(
        "%syntax-version=1.0.0\n%project=x\n\n"
        "one 2026-01-01T00:00:00Z A <a@b> # first\n"
        "two [one] 2026-01-02T00:00:00Z A B <a@b>\n"
    )
    changes = read_plan(tmp_path).changes
    assert [c.name for c in changes] == ["one", "two"]
    assert changes[1].requires == ("one",)
    assert (changes[1].planner_name, changes[1].note) == ("A B", "")


@pytest.mark.parametrize(
    "line", ["@v1 2026-01-01T00:00:00Z A <a@b> # tag", "two [other:thing] 2026-01-02T00:00:00Z A <a@b>"]
)
def test_what_fluxbase_migrate_cannot_record_like_sqitch_is_refused(tmp_path: Path, line: str) -> None:
    """Tags and cross-project dependencies would need more of sqitch's registry: refused, not half-done."""
    (tmp_path / "sqitch.plan").write_text(f"%project=x\none 2026-01-01T00:00:00Z A <a@b>\n{line}\n")
    with pytest.raises(MigrationError, match=re.escape("sqitch.plan:3")):
        read_plan(tmp_path)


@pytest.mark.skipif(not shutil.which("sqitch"), reason="sqitch is installed by `make test`")
def test_change_ids_are_the_ones_sqitch_computes() -> None:
    """Both tools must name a change alike, or each would find the other's work pending."""
    result = subprocess.run(
        ["sqitch", "plan", "--format", "raw"],
        cwd=migrations_dir(), env={"PATH": "/usr/bin:/bin", "HOME": "/tmp"},
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    sqitch_ids = re.findall(r"^deploy ([0-9a-f]{40})$", result.stdout, re.M)
    assert sqitch_ids == [c.change_id for c in read_plan().changes]


def test_unreadable_plan_line(tmp_path: Path) -> None:
    (tmp_path / "sqitch.plan").write_text("%project=x\n!!!\n")
    with pytest.raises(MigrationError, match=re.escape("sqitch.plan:2")):
        read_plan(tmp_path)


def test_script_body_drops_only_the_transaction_lines() -> None:
    body = script_body(migrations_dir() / "deploy" / "foundation.sql")
    assert not re.search(r"^\s*(BEGIN|COMMIT);", body, re.M | re.I)
    assert "create schema auth;" in body


def test_scram_verifier_shape() -> None:
    verifier = scram_verifier("correct horse battery staple")
    match = re.fullmatch(r"SCRAM-SHA-256\$4096:([^$]+)\$([^:]+):(.+)", verifier)
    assert match
    assert len(base64.b64decode(match.group(2))) == 32
    assert "correct horse" not in verifier  # spaces never occur in base64
