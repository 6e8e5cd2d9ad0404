"""The `Prefer` header (RFC 7240), read into Preferences.

return, count, resolution, missing, handling, tx, max-affected and timezone; anything else is
kept as invalid (PGRST122 under handling=strict).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import TypeVar

from fluxbase.query_grammar.cursor import DEFAULT_LIMITS, ParseLimits
from fluxbase.rest.errors import invalid_preferences
from fluxbase.rest.request.syntax import truncate

_T = TypeVar("_T")


class CountPreference(StrEnum):
    EXACT = "exact"
    PLANNED = "planned"
    ESTIMATED = "estimated"


class ReturnPreference(StrEnum):
    MINIMAL = "minimal"
    HEADERS_ONLY = "headers-only"
    REPRESENTATION = "representation"


class ResolutionPreference(StrEnum):
    MERGE_DUPLICATES = "merge-duplicates"
    IGNORE_DUPLICATES = "ignore-duplicates"


class MissingPreference(StrEnum):
    DEFAULT = "default"
    NULL = "null"


class HandlingPreference(StrEnum):
    STRICT = "strict"
    LENIENT = "lenient"


class TxPreference(StrEnum):
    COMMIT = "commit"
    ROLLBACK = "rollback"


@dataclass(frozen=True, slots=True)
class Preferences:
    """The `Prefer` header. A preference given twice keeps its first value, as upstream.

    `timezone` is unchecked here: the plan stage validates it against pg_timezone_names, and
    `max_affected` and `tx` are honoured only where the plan stage's configuration allows.
    """

    return_: ReturnPreference | None = None
    count: CountPreference | None = None
    resolution: ResolutionPreference | None = None
    missing: MissingPreference | None = None
    handling: HandlingPreference | None = None
    tx: TxPreference | None = None
    max_affected: int | None = None
    timezone: str | None = None
    invalid: tuple[str, ...] = ()


# --- Prefer --------------------------------------------------------------------------------

_PREFERENCE_VALUES: Mapping[str, Callable[[str], object]] = {
    "return": ReturnPreference,
    "count": CountPreference,
    "resolution": ResolutionPreference,
    "missing": MissingPreference,
    "handling": HandlingPreference,
    "tx": TxPreference,
}
_MAX_AFFECTED = re.compile(r"[0-9]{1,18}")
_TIMEZONE = re.compile(r"[A-Za-z0-9_+\-:/]{1,64}")


def parse_prefer(value: str | None, *, limits: ParseLimits = DEFAULT_LIMITS) -> Preferences:
    """RFC 7240 preferences, comma-separated (repeated headers joined with `,` by the caller).

    Unknown or malformed preferences are collected in `invalid`; with handling=strict they
    are PGRST122.
    """
    if not value:
        return Preferences()
    if len(value) > limits.max_header_bytes:
        raise invalid_preferences(["Prefer header too long"])
    chosen: dict[str, object] = {}
    invalid: list[str] = []
    for raw in value.split(","):
        token = raw.strip(" \t")
        if not token:
            continue
        name, sep, setting = token.partition("=")
        if not sep:
            invalid.append(token)
            continue
        parsed: object | None = None
        if name in _PREFERENCE_VALUES:
            try:
                parsed = _PREFERENCE_VALUES[name](setting)
            except ValueError:
                parsed = None
        elif name == "max-affected" and _MAX_AFFECTED.fullmatch(setting):
            parsed = int(setting)
        elif name == "timezone" and _TIMEZONE.fullmatch(setting):
            parsed = setting
        if parsed is None:
            invalid.append(token)
        else:
            chosen.setdefault(name, parsed)

    prefs = Preferences(
        return_=_typed(chosen.get("return"), ReturnPreference),
        count=_typed(chosen.get("count"), CountPreference),
        resolution=_typed(chosen.get("resolution"), ResolutionPreference),
        missing=_typed(chosen.get("missing"), MissingPreference),
        handling=_typed(chosen.get("handling"), HandlingPreference),
        tx=_typed(chosen.get("tx"), TxPreference),
        max_affected=_typed(chosen.get("max-affected"), int),
        timezone=_typed(chosen.get("timezone"), str),
        invalid=tuple(invalid),
    )
    if prefs.handling is HandlingPreference.STRICT and invalid:
        raise invalid_preferences([truncate(p, limits.max_echo_chars) for p in invalid])
    return prefs


def _typed(value: object, kind: type[_T]) -> _T | None:
    return value if isinstance(value, kind) else None
