"""Where configuration comes from: environment variables and fluxbase.yaml, checked against
schemas/config.schema.json into a raw tree, with every problem as `where: what`.

config.py builds the frozen Config from that tree; this module knows the sources.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

import jsonschema
import yaml

from fluxbase.paths import schemas_dir

DEFAULT_CONFIG_PATHS = (Path("fluxbase.yaml"), Path("/etc/fluxbase/fluxbase.yaml"))

# Environment variables that steer Fluxbase but are not configuration keys.
NON_CONFIG_ENV = frozenset({"FLUXBASE_CONFIG", "FLUXBASE_RESOURCES"})

# The runbook's names for keys whose generic FLUXBASE_<SECTION>_<KEY> name differs.
ENV_ALIASES: dict[str, tuple[str, ...]] = {
    "DATABASE_URL": ("database", "url"),
    "FLUXBASE_JWT_SECRET": ("auth", "jwt_secret"),
    "FLUXBASE_BASE_URL": ("server", "base_url"),
    "FLUXBASE_S3_ENDPOINT": ("storage", "s3", "endpoint"),
    "FLUXBASE_S3_ACCESS_KEY": ("storage", "s3", "access_key"),
    "FLUXBASE_S3_SECRET_KEY": ("storage", "s3", "secret_key"),
    "FLUXBASE_S3_BUCKET": ("storage", "s3", "bucket"),
    "FLUXBASE_S3_REGION": ("storage", "s3", "region"),
}
SERVER_ADDRESS_ENV = "FLUXBASE_SERVER_ADDRESS"


@dataclass(frozen=True)
class Problem:
    """One thing wrong with the configuration: where it is and what is wrong."""

    where: str
    what: str

    def __str__(self) -> str:
        return f"{self.where}: {self.what}"


@cache
def config_schema() -> dict[str, Any]:
    with open(schemas_dir() / "config.schema.json", encoding="utf-8") as f:
        schema: dict[str, Any] = json.load(f)
    return schema


def _leaves(
    schema: Mapping[str, Any], prefix: tuple[str, ...] = ()
) -> Iterator[tuple[tuple[str, ...], Mapping[str, Any]]]:
    for key, sub in schema.get("properties", {}).items():
        path = (*prefix, key)
        if sub.get("type") == "object":
            yield from _leaves(sub, path)
        else:
            yield path, sub


@cache
def env_names() -> dict[str, tuple[str, ...]]:
    """Every environment variable that sets a key, mapped to that key's path."""
    names = {"FLUXBASE_" + "_".join(path).upper(): path for path, _ in _leaves(config_schema())}
    names.update(ENV_ALIASES)
    return names


def _leaf_schema(path: tuple[str, ...]) -> Mapping[str, Any]:
    node: Mapping[str, Any] = config_schema()
    for key in path:
        node = node["properties"][key]
    ref = node.get("$ref")
    if isinstance(ref, str):
        node = config_schema()["$defs"][ref.rsplit("/", 1)[-1]]
    return node


def _env_value(raw: str, leaf: Mapping[str, Any]) -> Any:
    """Converts an environment string to the type the schema expects.

    A value that does not convert is passed on as the string, so the schema
    check reports it with the variable's name.
    """
    kind = leaf.get("type")
    if kind == "integer":
        return int(raw) if re.fullmatch(r"-?[0-9]+", raw.strip()) else raw
    if kind == "number":
        try:
            return float(raw)
        except ValueError:
            return raw
    if kind == "boolean":
        lowered = raw.strip().lower()
        if lowered in ("true", "1", "yes", "on"):
            return True
        if lowered in ("false", "0", "no", "off"):
            return False
        return raw
    if kind == "array":
        return [item.strip() for item in raw.split(",") if item.strip()]
    return raw


def _set(tree: dict[str, Any], path: tuple[str, ...], value: Any) -> None:
    node = tree
    for key in path[:-1]:
        child = node.get(key)
        if not isinstance(child, dict):
            child = {}
            node[key] = child
        node = child
    node[path[-1]] = value


def from_env(
    env: Mapping[str, str],
) -> tuple[dict[str, Any], dict[tuple[str, ...], str], list[Problem]]:
    tree: dict[str, Any] = {}
    sources: dict[tuple[str, ...], str] = {}
    problems: list[Problem] = []
    names = env_names()
    for name in sorted(env):
        raw = env[name]
        if name == SERVER_ADDRESS_ENV:
            host, sep, port = raw.rpartition(":")
            if not sep or not port.isdigit() or not host:
                problems.append(Problem(name, f"expected host:port, got {raw!r}"))
                continue
            _set(tree, ("server", "host"), host.strip("[]"))
            _set(tree, ("server", "port"), int(port))
            sources[("server", "host")] = sources[("server", "port")] = name
        elif name in names:
            path = names[name]
            _set(tree, path, _env_value(raw, _leaf_schema(path)))
            sources[path] = name
        elif name.startswith("FLUXBASE_") and name not in NON_CONFIG_ENV:
            problems.append(Problem(name, "unknown setting (no such configuration key)"))
    return tree, sources, problems


def merge_trees(base: dict[str, Any], override: Mapping[str, Any]) -> dict[str, Any]:
    merged = dict(base)
    for key, value in override.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = merge_trees(merged[key], value)
        else:
            merged[key] = value
    return merged


def find_config_file(explicit: str | None, env: Mapping[str, str]) -> Path | None:
    """--config, then FLUXBASE_CONFIG, then ./fluxbase.yaml, then /etc/fluxbase/fluxbase.yaml."""
    chosen = explicit or env.get("FLUXBASE_CONFIG")
    if chosen:
        return Path(chosen)
    for candidate in DEFAULT_CONFIG_PATHS:
        if candidate.is_file():
            return candidate
    return None


def read_yaml(path: Path) -> tuple[dict[str, Any], list[Problem]]:
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        return {}, [Problem(str(path), f"cannot read: {exc.strerror}")]
    try:
        loaded = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"{path}:{mark.line + 1}" if mark is not None else str(path)
        return {}, [Problem(where, f"invalid YAML: {getattr(exc, 'problem', exc)}")]
    if loaded is None:
        return {}, []
    if not isinstance(loaded, dict):
        return {}, [Problem(str(path), "expected a mapping of sections at the top level")]
    return loaded, []


def _describe(error: jsonschema.ValidationError) -> str:
    if error.validator == "type":
        return f"expected {error.validator_value}, got {type(error.instance).__name__} {error.instance!r}"
    if error.validator == "enum":
        options = ", ".join(str(v) for v in error.validator_value)  # type: ignore[union-attr]
        return f"expected one of {options}, got {error.instance!r}"
    if error.validator == "oneOf":  # only durations are number-or-string
        return f"expected a duration such as 30s, 10m or 1h, got {error.instance!r}"
    if error.validator in ("minimum", "maximum"):
        return f"{error.instance!r} is out of range ({error.validator} {error.validator_value})"
    if error.validator == "pattern":
        return f"{error.instance!r} does not have the expected form"
    return error.message


def schema_problems(
    tree: Mapping[str, Any], sources: Mapping[tuple[str, ...], str], file_label: str
) -> list[Problem]:
    validator = jsonschema.Draft202012Validator(config_schema())
    problems = []
    for error in sorted(validator.iter_errors(tree), key=lambda e: list(map(str, e.absolute_path))):
        path = tuple(str(p) for p in error.absolute_path)
        if error.validator == "additionalProperties":
            allowed = set(error.schema.get("properties", {}))
            for key in sorted(set(error.instance) - allowed):
                where = ".".join((*path, key))
                problems.append(Problem(f"{file_label}: {where}", "unknown key"))
            continue
        dotted = ".".join(path) or "(top level)"
        source = sources.get(path)
        where = f"{source} ({dotted})" if source else f"{file_label}: {dotted}"
        problems.append(Problem(where, _describe(error)))
    return problems
