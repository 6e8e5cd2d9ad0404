"""The README as a new user follows it: `make run`, its export line, then every block marked runnable.

A ```bash block in README.md is preceded by `<!-- runnable -->` (this test runs
it, in order, in one shell, as a user in a second terminal would) or by
`<!-- not-runnable: why -->`; an unmarked one fails the test, so no command
in the README escapes review.  `make run` itself runs for real, in this
checkout, on a free port and a new data folder (never :8080 or ./.fluxbase).
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from harness import ROOT, free_port

BLOCK = re.compile(r"(?:^<!-- (?P<marker>[^\n]*?) -->\n)?^```bash\n(?P<body>.*?)^```", re.M | re.S)
EXPORT_LINE = re.compile(r"^\s*(export API_URL=\S+ ANON_KEY=\S+ SERVICE_ROLE_KEY=\S+)$", re.M)

pytestmark = pytest.mark.skipif(not shutil.which("make"), reason="needs make, as a user does")


def readme_blocks() -> list[tuple[str | None, str]]:
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    return [(m.group("marker"), m.group("body")) for m in BLOCK.finditer(text)]


def runnable_script() -> str:
    return "\n".join(body for marker, body in readme_blocks() if marker == "runnable")


def test_every_shell_block_of_the_readme_is_marked() -> None:
    blocks = readme_blocks()
    assert len(blocks) >= 5
    for marker, body in blocks:
        assert marker == "runnable" or (marker or "").startswith("not-runnable: "), (
            f"README block without <!-- runnable --> or <!-- not-runnable: why -->:\n{body}"
        )
    assert sum(marker == "runnable" for marker, _ in blocks) >= 5


@dataclass
class MakeRun:
    process: subprocess.Popen[bytes]
    output: Path
    url: str

    def text(self) -> str:
        return self.output.read_text(errors="replace")

    def stop(self) -> None:
        """Ctrl-C's effect on the server: SIGTERM to `fluxbase serve` (make's exec'd child)."""
        pid = self.process.pid
        children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
        for child in children:
            os.kill(int(child), signal.SIGTERM)
        assert self.process.wait(timeout=60) == 0, self.text()


def make_run(env: dict[str, str], port: int, log: Path) -> MakeRun:
    with open(log, "ab") as out:
        process = subprocess.Popen(
            ["make", "--no-print-directory", "run"], cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT
        )
    run = MakeRun(process, log, f"http://localhost:{port}")
    deadline = time.monotonic() + 180  # the first run creates the cluster and may install the venv
    while time.monotonic() < deadline:
        assert process.poll() is None, f"make run exited with {process.returncode}:\n{run.text()}"
        try:
            with urllib.request.urlopen(run.url + "/ready", timeout=2) as response:
                if response.status == 200:
                    return run
        except OSError:
            time.sleep(0.3)
    process.kill()
    raise AssertionError("make run did not become ready:\n" + run.text())


@pytest.fixture
def user_env() -> Iterator[dict[str, str]]:
    """A user's shell in this checkout: its own data folder and port instead of ./.fluxbase and :8080."""
    data = Path(tempfile.mkdtemp(prefix="fluxbase-readme-"))
    data.chmod(0o755)  # the embedded cluster's system user passes through it when we are root
    env = {
        "PATH": os.environ["PATH"],
        "HOME": os.environ.get("HOME", "/root"),
        "FLUXBASE_DATA_DIR": str(data / "data"),
        "FLUXBASE_SERVER_PORT": str(free_port()),
    }
    try:
        yield env
    finally:
        shutil.rmtree(data, ignore_errors=True)


def shell(script: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    """bash -e: any failing command fails the test (no pipefail: a user's shell has none, and
    `curl ... | grep -m1` rightly ends curl early)."""
    return subprocess.run(
        ["bash", "-e", "-c", script],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=300,
    )  # fmt: skip


def test_the_first_hour_as_the_readme_says(user_env: dict[str, str], tmp_path: Path) -> None:
    port = int(user_env["FLUXBASE_SERVER_PORT"])
    server = make_run(user_env, port, tmp_path / "make-run.log")
    try:
        printed = server.text()
        assert "loaded the example" in printed
        assert f"Local mailbox:    http://localhost:{port}/_dev/mailbox" in printed
        assert "Database:         postgresql://" in printed
        export = EXPORT_LINE.search(printed)
        assert export, printed
        # The user pastes the export line, then follows the runnable blocks in order.
        result = shell(export.group(1) + "\n" + runnable_script(), user_env)
        assert result.returncode == 0, result.stdout + result.stderr
    finally:
        server.stop()
    out = result.stdout
    # In the README's order (curl prints no newline of its own, so the answers run together).
    expected = [
        '{"status":"ok"}',
        '"migrations":"current"',
        "fluxbase_http_requests_total",
        "[]",  # anon: no policy gives it a row
        '[{"task":"Sign up, then add todos of your own"}]',  # service_role: the seed row
        '"email":"ada@example.com"',
        "Subject: Confirm your signup",
        "303",  # the mailbox's link confirmed the address
        '[{"task":"Ship the first feature","is_complete":false}]',  # Ada, through RLS
        "Sign up, then add todos of your own | t",  # psql as the owner sees both rows
        "Ship the first feature              | f",
        " Ship the first feature\n(1 row)",  # psql --role authenticated as Ada
        '{"keys":[]}',
        '"task":"Ship the first feature"',  # the data API one-liner
        '"access_token"',  # the first administrator's signup, then login
    ]
    position = 0
    for text in expected:
        found = out.find(text, position)
        assert found >= 0, f"{text!r} not found after position {position} in:\n{out}"
        position = found + len(text)
    assert "Traceback" not in result.stderr, result.stderr

    # Stop, start again: the rows are still there, and make run loads nothing twice.
    server = make_run(user_env, port, tmp_path / "make-run-2.log")
    try:
        assert "loaded the example" not in server.text()
        rows = shell(
            "source .venv/bin/activate\nfluxbase psql -Atc 'select task, is_complete from todos order by id'",
            user_env,
        )
        assert rows.returncode == 0, rows.stderr
        assert rows.stdout.splitlines() == [
            "Sign up, then add todos of your own|t",
            "Ship the first feature|f",
        ]
    finally:
        server.stop()
