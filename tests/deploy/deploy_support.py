"""Shared by the deployment tests: the repository's deploy/ folder, the metric names the server
exports, and where the Debian tools live (installed by deploy/scripts/system-deps.sh test)."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest

from fluxbase.observability import metrics

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"

# A metric name inside a PromQL expression: fluxbase_ followed by name characters.
METRIC_IN_PROMQL = re.compile(r"\bfluxbase_[a-z0-9_]+")


def exported_series_names() -> set[str]:
    """Every series name the server's /metrics can show (counters as _total, histograms in parts),
    read from the registry /metrics renders, collectors sampled at scrape time included."""
    names: set[str] = set()
    for family in metrics.registry().collect():
        if family.type == "counter":
            names.add(family.name + "_total")
        elif family.type == "histogram":
            names.update(family.name + suffix for suffix in ("_bucket", "_count", "_sum"))
        else:
            names.add(family.name)
    return names


def metrics_named(expression: str) -> set[str]:
    return set(METRIC_IN_PROMQL.findall(expression))


def tool(name: str) -> str:
    """A system tool's path; missing means `make system-deps` was not run, which is a failure."""
    found = shutil.which(name) or shutil.which(name, path="/usr/sbin:/sbin")
    if found is None:
        pytest.fail(f"{name} is not installed: run deploy/scripts/system-deps.sh test")
    return found
