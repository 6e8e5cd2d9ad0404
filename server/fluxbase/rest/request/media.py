"""Media types: decoding them, negotiating `Accept`, checking `Content-Type` (PGRST102/107).

Includes PostgREST's vendor types (`vnd.pgrst.object`, `vnd.pgrst.array;nulls=stripped`,
`vnd.pgrst.plan` with its `for` and `options` parameters).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Literal

from fluxbase.query_grammar.cursor import DEFAULT_LIMITS, ParseLimits
from fluxbase.rest.errors import content_type_not_acceptable, media_type_error
from fluxbase.rest.request.action import PathKind
from fluxbase.rest.request.syntax import truncate


class MediaKind(StrEnum):
    JSON = "application/json"
    GEOJSON = "application/geo+json"
    CSV = "text/csv"
    TEXT_PLAIN = "text/plain"
    TEXT_XML = "text/xml"
    OPENAPI = "application/openapi+json"
    URLENCODED = "application/x-www-form-urlencoded"
    OCTET_STREAM = "application/octet-stream"
    ANY = "*/*"
    ARRAY_STRIPPED = "application/vnd.pgrst.array+json;nulls=stripped"
    SINGULAR = "application/vnd.pgrst.object+json"
    PLAN = "application/vnd.pgrst.plan"
    OTHER = "other"


class PlanOption(StrEnum):
    ANALYZE = "analyze"
    VERBOSE = "verbose"
    SETTINGS = "settings"
    BUFFERS = "buffers"
    WAL = "wal"


@dataclass(frozen=True, slots=True)
class MediaType:
    """A decoded media type. `mime` is what the client wrote, lower-cased, without parameters."""

    kind: MediaKind
    mime: str
    nulls_stripped: bool = False  # SINGULAR with `;nulls=stripped`
    plan_for: MediaType | None = None  # PLAN: the media type whose plan is asked for
    plan_format: Literal["json", "text"] | None = None
    plan_options: tuple[PlanOption, ...] = ()


# --- Accept and Content-Type ---------------------------------------------------------------

_SIMPLE_MEDIA: Mapping[str, MediaKind] = {
    "application/json": MediaKind.JSON,
    "application/geo+json": MediaKind.GEOJSON,
    "text/csv": MediaKind.CSV,
    "text/plain": MediaKind.TEXT_PLAIN,
    "text/xml": MediaKind.TEXT_XML,
    "application/openapi+json": MediaKind.OPENAPI,
    "application/x-www-form-urlencoded": MediaKind.URLENCODED,
    "application/octet-stream": MediaKind.OCTET_STREAM,
    "*/*": MediaKind.ANY,
}
_PLAN_FORMATS: Mapping[str, Literal["json", "text"]] = {
    "application/vnd.pgrst.plan": "text",
    "application/vnd.pgrst.plan+text": "text",
    "application/vnd.pgrst.plan+json": "json",
}
_PLAN_OPTIONS = {option.value: option for option in PlanOption}


def decode_media_type(text: str, *, _nested: bool = False) -> MediaType:
    """One media type with its parameters, as PostgREST's decodeMediaType reads it."""
    mime, *raw_params = (part.strip(" \t") for part in text.split(";"))
    mime = mime.lower()
    params: dict[str, str] = {}
    for raw in raw_params:
        key, _, val = raw.partition("=")
        params.setdefault(key.strip(" \t").lower(), val.strip(" \t"))
    if mime in _SIMPLE_MEDIA:
        return MediaType(_SIMPLE_MEDIA[mime], mime)
    if mime in ("application/vnd.pgrst.object+json", "application/vnd.pgrst.object"):
        return MediaType(MediaKind.SINGULAR, mime, nulls_stripped=_nulls_stripped(raw_params))
    if mime in ("application/vnd.pgrst.array+json", "application/vnd.pgrst.array"):
        if _nulls_stripped(raw_params):
            return MediaType(MediaKind.ARRAY_STRIPPED, mime, nulls_stripped=True)
        return MediaType(MediaKind.JSON, mime)
    if mime in _PLAN_FORMATS and not _nested:
        target = params.get("for", "").strip('"')
        plan_for = (
            decode_media_type(target, _nested=True)
            if target
            else MediaType(MediaKind.JSON, "application/json")
        )
        requested = params.get("options", "").split("|")
        options = tuple(o for name, o in _PLAN_OPTIONS.items() if name in requested)
        return MediaType(
            MediaKind.PLAN,
            mime,
            plan_for=plan_for,
            plan_format=_PLAN_FORMATS[mime],
            plan_options=options,
        )
    return MediaType(MediaKind.OTHER, mime)


def _nulls_stripped(raw_params: Sequence[str]) -> bool:
    return [p for p in raw_params if p] == ["nulls=stripped"]


def parse_accept(value: str | None, *, limits: ParseLimits = DEFAULT_LIMITS) -> tuple[MediaType, ...]:
    """The media types of an Accept header, most preferred first (by q, then specificity)."""
    if value is None or not value.strip(" \t"):
        return ()
    if len(value) > limits.max_header_bytes:
        raise media_type_error(["(Accept header too long)"])
    ranked: list[tuple[float, int, int, MediaType]] = []
    refused: list[str] = []
    for position, raw in enumerate(_split_accept(value)):
        if not raw.strip(" \t"):
            continue
        if len(ranked) >= limits.max_accept_items:
            raise media_type_error(["(too many media types in Accept)"])
        quality = 1.0
        kept: list[str] = []
        for part in raw.split(";"):
            key, sep, val = part.strip(" \t").partition("=")
            if sep and key.strip(" \t").lower() == "q":
                quality = _quality(val.strip(" \t"))
            else:
                kept.append(part)
        media = decode_media_type(";".join(kept))
        if quality <= 0:
            refused.append(media.mime)  # q=0 means "not acceptable"
            continue
        specificity = 0 if media.mime == "*/*" else 1 if media.mime.endswith("/*") else 2
        ranked.append((-quality, -specificity, position, media))
    if not ranked and refused:
        raise media_type_error([truncate(mime, 100) for mime in dict.fromkeys(refused)])
    ranked.sort(key=lambda entry: entry[:3])
    return tuple(entry[3] for entry in ranked)


def _split_accept(value: str) -> Iterable[str]:
    """Split on commas outside double quotes (`for="..."` may be quoted)."""
    part: list[str] = []
    quoted = False
    for ch in value:
        if ch == '"':
            quoted = not quoted
        if ch == "," and not quoted:
            yield "".join(part)
            part = []
        else:
            part.append(ch)
    yield "".join(part)


def _quality(text: str) -> float:
    if re.fullmatch(r"(0(\.[0-9]{0,3})?|1(\.0{0,3})?)", text):
        return float(text)
    return 1.0  # a malformed weight does not make a type unacceptable


# geo+json is negotiated here and refused later when PostGIS is missing (the schema cache knows).
_READ_OUTPUTS = frozenset(
    {MediaKind.JSON, MediaKind.CSV, MediaKind.SINGULAR, MediaKind.ARRAY_STRIPPED, MediaKind.GEOJSON}
)


def negotiate_accept(
    accepted: Sequence[MediaType], path_kind: PathKind, *, plan_enabled: bool = False
) -> MediaType:
    """Pick the response media type, or PGRST107 (406) listing what the client asked for."""
    default = (
        MediaType(MediaKind.OPENAPI, "application/openapi+json")
        if path_kind == "root"
        else MediaType(MediaKind.JSON, "application/json")
    )
    if not accepted:
        return default
    producible = frozenset({MediaKind.OPENAPI, MediaKind.JSON}) if path_kind == "root" else _READ_OUTPUTS
    for media in accepted:
        if media.kind is MediaKind.ANY:
            return default
        if media.kind in producible:
            return media
        if (
            media.kind is MediaKind.PLAN
            and plan_enabled
            and path_kind != "root"
            and media.plan_for is not None
            and (media.plan_for.kind in _READ_OUTPUTS or media.plan_for.kind is MediaKind.ANY)
        ):
            return media
    asked = list(dict.fromkeys(truncate(m.mime, 100) for m in accepted))
    raise media_type_error(asked)


_BODY_TYPES: Mapping[PathKind, frozenset[MediaKind]] = {
    "relation": frozenset({MediaKind.JSON, MediaKind.CSV, MediaKind.URLENCODED}),
    "rpc": frozenset(
        {
            MediaKind.JSON,
            MediaKind.CSV,
            MediaKind.URLENCODED,
            MediaKind.TEXT_PLAIN,
            MediaKind.TEXT_XML,
            MediaKind.OCTET_STREAM,
        }
    ),
    "root": frozenset(),
}


def parse_content_type(value: str | None, path_kind: PathKind) -> MediaType:
    """The body's media type (JSON when absent); others are PGRST102 as upstream."""
    if value is None or not value.strip(" \t"):
        return MediaType(MediaKind.JSON, "application/json")
    media = decode_media_type(value)
    if media.kind not in _BODY_TYPES[path_kind]:
        raise content_type_not_acceptable(truncate(media.mime, 100))
    return media
