"""Where Fluxbase finds its own SQL, migrations and schemas at run time.

They live beside the package in the source tree (editable installs, Docker
images copy the tree); FLUXBASE_RESOURCES points elsewhere when they do not.
"""

from __future__ import annotations

import os
from pathlib import Path


def resources_root() -> Path:
    override = os.environ.get("FLUXBASE_RESOURCES")
    if override:
        return Path(override)
    return Path(__file__).resolve().parents[2]


def migrations_dir() -> Path:
    return resources_root() / "migrations"


def sql_dir() -> Path:
    return resources_root() / "sql"


def schemas_dir() -> Path:
    return resources_root() / "schemas"


def examples_dir() -> Path:
    return resources_root() / "examples"


def testing_dir() -> Path:
    """SQL installed only in `fluxbase test`'s throwaway databases (the tests.* helpers)."""
    return resources_root() / "testing"
