"""Which rows: `limit=`, `offset=` (top level or per embed) and the `Range` header."""

from __future__ import annotations

import re
from dataclasses import dataclass

from fluxbase.query_grammar.cursor import DEFAULT_LIMITS, WS, ParseLimits
from fluxbase.rest.errors import negative_limit, range_lower_gt_upper
from fluxbase.rest.request.syntax import EmbedPath, syntax_error


@dataclass(frozen=True, slots=True)
class Page:
    """Rows to skip and the most rows to return (None: no limit)."""

    offset: int = 0
    limit: int | None = None


@dataclass(frozen=True, slots=True)
class EmbeddedPage:
    path: EmbedPath
    page: Page


# --- limit=, offset= and Range -------------------------------------------------------------

_INTEGER = re.compile(r"-?[0-9]{1,18}")
_RANGE = re.compile(r"([0-9]{1,18})-([0-9]{0,18})")


def parse_limit(text: str, *, limits: ParseLimits = DEFAULT_LIMITS) -> int:
    """A limit; a negative one is PGRST103 (416), as upstream."""
    if not _INTEGER.fullmatch(text.strip(WS)):
        raise syntax_error("limit parameter", text, 0, "expecting an integer", limits)
    value = int(text)
    if value < 0:
        raise negative_limit()
    return value


def parse_offset(text: str, *, limits: ParseLimits = DEFAULT_LIMITS) -> int:
    stripped = text.strip(WS)
    if not _INTEGER.fullmatch(stripped) or stripped.startswith("-"):
        raise syntax_error("offset parameter", text, 0, "expecting a non-negative integer", limits)
    return int(stripped)


def parse_range_header(value: str) -> Page | None:
    """`Range: 0-19` or `10-`. Anything unparseable is ignored (None), as upstream does."""
    match = _RANGE.fullmatch(value.strip(WS))
    if match is None:
        return None
    lower = int(match.group(1))
    if not match.group(2):
        return Page(lower, None)
    upper = int(match.group(2))
    if lower > upper:
        raise range_lower_gt_upper()
    return Page(lower, upper - lower + 1)


def intersect_pages(first: Page, second: Page) -> Page:
    """Rows both windows allow: how a Range header combines with limit/offset."""
    offset = max(first.offset, second.offset)
    ends = [p.offset + p.limit for p in (first, second) if p.limit is not None]
    if not ends:
        return Page(offset, None)
    return Page(offset, max(0, min(ends) - offset))
