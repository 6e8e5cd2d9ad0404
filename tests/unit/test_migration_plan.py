"""Reading the sqitch plan and scripts the way `fluxbase migrate` does."""

from __future__ import annotations

import base64
import re
from pathlib import Path

import pytest

from fluxbase.db.migrate import MigrationError, read_plan, scram_verifier, script_body
from fluxbase.paths import migrations_dir


def test_plan_lists_every_change_with_its_three_scripts() -> None:
    changes = read_plan()
    assert changes[0].name == "foundation"
    for change in changes:
        assert change.deploy.is_file() and change.revert.is_file() and change.verify.is_file()


def test_plan_with_dependencies_and_tags(tmp_path: Path) -> None:
    (tmp_path / "sqitch.plan").write_text(
        "%syntax-version=1.0.0\n%project=x\n\n"
        "one 2026-01-01T00:00:00Z A <a@b> # first\n"
        "@v1 2026-01-01T00:00:00Z A <a@b> # tag\n"
        "two [one other:thing] 2026-01-02T00:00:00Z A <a@b> # second\n"
    )
    changes = read_plan(tmp_path)
    assert [c.name for c in changes] == ["one", "two"]
    assert changes[1].requires == ("one", "other:thing")


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
