"""Runs the @supabase/storage-js suite (tests/storage-js, `node --test`) against a real
`fluxbase serve`, once per backend, so `make test` covers the JavaScript client too."""

from __future__ import annotations

import os
import shutil
import subprocess

from harness import ROOT
from storage_support import ALICE, ANON_KEY, SERVICE_KEY, StorageStack, user_token

SUITE = ROOT / "tests" / "storage-js"


def test_storage_js(storage_stack: StorageStack) -> None:
    node = shutil.which("node")
    assert node, "Node 20 is needed for the storage-js suite (make installs it)"
    assert (SUITE / "node_modules" / "@supabase" / "storage-js").is_dir(), (
        "run `make install` (npm ci in tests/storage-js) first"
    )
    result = subprocess.run(
        [node, "--test", "--test-reporter=spec", "storage.test.mjs"],
        cwd=SUITE,
        env={
            "PATH": os.environ["PATH"],
            "STORAGE_URL": storage_stack.storage_url,
            "SERVICE_KEY": SERVICE_KEY,
            "ANON_KEY": ANON_KEY,
            "ALICE": ALICE,
            "ALICE_TOKEN": user_token(ALICE),
            "BACKEND": storage_stack.backend,
        },
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "pass 7\n" in result.stdout and "fail 0\n" in result.stdout, result.stdout
