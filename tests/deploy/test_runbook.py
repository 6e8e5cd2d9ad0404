"""docs/RUNBOOK.md and deploy/MONITORING.md as an operator follows them: every shell block is
marked, the runnable ones run in order in one shell against a real `fluxbase serve`, and every
file or link they name exists in the repository."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from deploy_support import DEPLOY, ROOT, tool

from harness import server_env, start_server

RUNBOOK = ROOT / "docs" / "RUNBOOK.md"
MONITORING = DEPLOY / "MONITORING.md"
BLOCK = re.compile(r"(?:^<!-- (?P<marker>[^\n]*?) -->\n)?^```bash\n(?P<body>.*?)^```", re.M | re.S)
LINK = re.compile(r"\]\((?P<target>[^)#]+)(?:#[^)]*)?\)")
REPO_PATH = re.compile(r"(?<![\w/.-])((?:deploy|docs|tests|schemas|migrations|sql|examples)/[\w./-]+\w)")


def blocks(path: Path) -> list[tuple[str | None, str]]:
    return [(m.group("marker"), m.group("body")) for m in BLOCK.finditer(path.read_text())]


@pytest.mark.parametrize("doc", [RUNBOOK, MONITORING], ids=lambda p: p.name)
def test_every_shell_block_is_marked(doc: Path) -> None:
    found = blocks(doc)
    assert found
    for marker, body in found:
        assert marker == "runnable" or (marker or "").startswith("not-runnable: "), (
            f"{doc.name} block without <!-- runnable --> or <!-- not-runnable: why -->:\n{body}"
        )


@pytest.mark.parametrize("doc", [RUNBOOK, MONITORING], ids=lambda p: p.name)
def test_every_link_and_named_file_exists_in_the_repository(doc: Path) -> None:
    text = doc.read_text()
    for match in LINK.finditer(text):
        target = match.group("target")
        assert not target.startswith(("http://", "https://", "../../")), f"{doc.name} links outside: {target}"
        assert (doc.parent / target).resolve().exists(), f"{doc.name} links to a missing {target}"
        assert (doc.parent / target).resolve().is_relative_to(ROOT)
    for path in REPO_PATH.findall(text):
        assert (ROOT / path).exists(), f"{doc.name} names a missing {path}"


@pytest.mark.process
def test_the_runnable_blocks_run_against_a_real_server(fresh_dsn: str, tmp_path: Path) -> None:
    tool("promtool")
    tool("psql")
    server = start_server(server_env(fresh_dsn), "serve")
    try:
        script = "\n".join(
            body for doc in (RUNBOOK, MONITORING) for marker, body in blocks(doc) if marker == "runnable"
        )
        env = {
            "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}",
            "HOME": str(tmp_path),
            "API_URL": server.url,
            **server_env(fresh_dsn),
        }
        result = subprocess.run(
            ["bash", "-euo", "pipefail", "-c", script],
            cwd=ROOT,
            env=env,
            capture_output=True,
            text=True,
            timeout=240,
            check=False,
        )
        assert result.returncode == 0, f"{result.stdout}\n{result.stderr}"
        out = result.stdout
        assert "fluxbase " in out  # --version
        assert "fluxbase_system_uptime_seconds" in out
        assert "SUCCESS" in out  # promtool
        assert "proxy_read_timeout 3600s" in out or "Upgrade" in out
    finally:
        assert server.terminate() == 0
