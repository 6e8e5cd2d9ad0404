"""Dependencies point one way: app -> handlers -> db, security, observability -> config.

Read from the source (no imports run), so an arrow pointing up fails here, not in review.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[2] / "server" / "fluxbase"
HANDLERS = (
    "fluxbase.app", "fluxbase.ops", "fluxbase.rest", "fluxbase.auth", "fluxbase.realtime",
    "fluxbase.dashboard", "fluxbase.admin_api",
)  # fmt: skip
HANDLER_PACKAGES = ("rest", "auth", "realtime", "dashboard", "admin_api")
WEB = ("fluxbase.errors",)
LOWER = ("fluxbase.db", "fluxbase.security", "fluxbase.observability")


def _imports(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
    return {name for name in names if name.startswith("fluxbase")}


def _under(name: str, prefixes: tuple[str, ...]) -> bool:
    return any(name == prefix or name.startswith(prefix + ".") for prefix in prefixes)


@pytest.mark.parametrize("module", sorted(p.name for p in (PACKAGE / "db").glob("*.py")))
def test_db_imports_no_handler_nor_the_web_error_type(module: str) -> None:
    upward = {name for name in _imports(PACKAGE / "db" / module) if _under(name, HANDLERS + WEB)}
    assert not upward, f"db/{module} imports {upward}"


@pytest.mark.parametrize("module", ["config.py", "keyfile.py", "paths.py"])
def test_config_and_its_leaves_import_nothing_above_them(module: str) -> None:
    upward = {name for name in _imports(PACKAGE / module) if _under(name, HANDLERS + WEB + LOWER)}
    assert not upward, f"{module} imports {upward}"


def test_the_web_error_type_knows_only_the_database_domain_errors() -> None:
    imported = _imports(PACKAGE / "errors.py")
    assert {name for name in imported if _under(name, LOWER)} <= {"fluxbase.db.errors"}
    assert not {name for name in imported if _under(name, HANDLERS)}
    leaf = _imports(PACKAGE / "db" / "errors.py")
    assert not leaf, f"db/errors.py must stay a leaf, imports {leaf}"


@pytest.mark.parametrize("package", HANDLER_PACKAGES)
def test_handler_packages_never_import_each_other(package: str) -> None:
    others = tuple(f"fluxbase.{other}" for other in HANDLER_PACKAGES if other != package)
    for path in (PACKAGE / package).rglob("*.py"):
        sideways = {name for name in _imports(path) if _under(name, others)}
        assert not sideways, f"{path.relative_to(PACKAGE)} imports {sideways}"


@pytest.mark.parametrize("module", sorted(p.name for p in (PACKAGE / "security").glob("*.py")))
def test_security_imports_no_handler(module: str) -> None:
    upward = {name for name in _imports(PACKAGE / "security" / module) if _under(name, HANDLERS)}
    assert not upward, f"security/{module} imports {upward}"
