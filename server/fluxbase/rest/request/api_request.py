"""The data API's parse stage as one call: request line and headers -> ApiRequest.

Request -> parse -> plan -> query -> response; this module is PostgREST's ApiRequest.hs. It
sorts the query parameters out (select, filters, logic trees, order, limit/offset per embed,
columns, on_conflict, RPC arguments) and reads the headers (Range, Prefer, Accept, Content-Type,
the profiles), each through its own module of `rest/request/`. Pure: no I/O, no SQL; it raises
ApiError (always 4xx) and nothing else. Identifiers stay plain strings for the plan stage to
check against the schema cache; values stay raw.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from fluxbase.query_grammar.cursor import DEFAULT_LIMITS, Cursor, ParseLimits
from fluxbase.query_grammar.filters import FTS_NAMES, OPERATOR_NAMES
from fluxbase.query_grammar.names import read_field_name
from fluxbase.rest.errors import (
    ApiError,
    invalid_resource_path,
    put_limit_not_allowed,
    query_param_error,
    unacceptable_schema,
)
from fluxbase.rest.request.action import Action, PathKind, action_for
from fluxbase.rest.request.columns import parse_columns
from fluxbase.rest.request.filters import (
    EmbeddedFilter,
    EmbeddedLogic,
    FilterBudget,
    parse_filter_key,
    parse_filter_value,
    parse_logic_key,
    parse_logic_tree,
)
from fluxbase.rest.request.media import (
    MediaKind,
    MediaType,
    negotiate_accept,
    parse_accept,
    parse_content_type,
)
from fluxbase.rest.request.order import EmbeddedOrder, OrderTerm, parse_order
from fluxbase.rest.request.preferences import Preferences, parse_prefer
from fluxbase.rest.request.ranges import (
    EmbeddedPage,
    Page,
    intersect_pages,
    parse_limit,
    parse_offset,
    parse_range_header,
)
from fluxbase.rest.request.select import SelectItem, SelectStar, parse_select
from fluxbase.rest.request.syntax import EmbedPath, run_grammar, truncate


@dataclass(frozen=True, slots=True)
class ApiRequest:
    """Everything the plan stage needs from the request line and headers (not the body)."""

    method: str
    path_kind: PathKind
    target: str
    action: Action
    select: tuple[SelectItem, ...]
    filters: tuple[EmbeddedFilter, ...] = ()
    logic: tuple[EmbeddedLogic, ...] = ()
    order: tuple[EmbeddedOrder, ...] = ()
    pages: tuple[EmbeddedPage, ...] = ()  # limit/offset query parameters, per embed
    top_page: Page = field(default_factory=Page)  # top-level limit/offset combined with Range
    columns: tuple[str, ...] | None = None
    on_conflict: tuple[str, ...] | None = None
    rpc_args: tuple[tuple[str, str], ...] = ()  # GET /rpc/fn?a=1: parameters that are no filter
    preferences: Preferences = field(default_factory=Preferences)
    accept: MediaType = field(default_factory=lambda: MediaType(MediaKind.JSON, "application/json"))
    content_type: MediaType | None = None  # only for methods that carry a body
    profile: str | None = None  # Accept-Profile or Content-Profile, unchecked

    @property
    def is_read_only(self) -> bool:
        return self.method in ("GET", "HEAD")


def check_profile(profile: str | None, exposed_schemas: Sequence[str]) -> str:
    """The schema a request works in: the profile if exposed, the first exposed one if none.

    The plan stage calls this with the configured allow-list; anything else is PGRST106.
    """
    if not exposed_schemas:
        raise unacceptable_schema(profile or "", exposed_schemas)
    if profile is None:
        return exposed_schemas[0]
    if profile not in exposed_schemas:
        raise unacceptable_schema(truncate(profile, 100), exposed_schemas)
    return profile


# --- the whole request ---------------------------------------------------------------------

_BODY_METHODS = frozenset({"POST", "PATCH", "PUT"})
_RESERVED = frozenset({"select", "columns", "on_conflict"})
_RESERVED_EMBEDDABLE = frozenset({"order", "limit", "offset", "and", "or"})
_FILTER_LIKE = re.compile(r"(not\.)?([a-z]+)[.(]")


def _looks_like_filter(key: str, value: str) -> bool:
    """Upstream's test for which GET /rpc parameters are filters rather than arguments."""
    if "." in key:
        return True
    match = _FILTER_LIKE.match(value)
    if match is None:
        return False
    name = match.group(2)
    return name in OPERATOR_NAMES or name in FTS_NAMES or name in ("in", "is") or (match.group(1) is not None)


def _last_segment(key: str) -> str:
    return key.rsplit(".", 1)[-1]


def _embed_path_of(key: str, limits: ParseLimits) -> EmbedPath:
    """`actors.roles.limit` -> `("actors", "roles")`."""

    def grammar(cur: Cursor) -> EmbedPath:
        names = [read_field_name(cur)]
        while cur.peek() == ".":
            cur.pos += 1
            names.append(read_field_name(cur))
        cur.expect_end("delimiter (.) or end of input")
        return tuple(names[:-1])

    result = run_grammar("tree path", key, limits, grammar)
    return result


def _header(headers: Mapping[str, str], name: str) -> str | None:
    """Every value of header `name` (lower case), joined as one; None when it is absent."""
    getall = getattr(headers, "getall", None)
    if getall is not None:
        # aiohttp's case-insensitive multidict: a lookup, not a scan of every header.
        found: list[str] = getall(name, [])
    else:
        found = [value for key, value in headers.items() if key.lower() == name]
    return ", ".join(found) if found else None


def parse_request(
    method: str,
    path_kind: PathKind,
    target: str,
    query: Sequence[tuple[str, str]],
    headers: Mapping[str, str],
    *,
    limits: ParseLimits = DEFAULT_LIMITS,
    plan_enabled: bool = False,
) -> ApiRequest:
    """Parse one request. `query` is the percent-decoded (name, value) pairs in order.

    Raises ApiError (always a 4xx) and nothing else.
    """
    action = action_for(method, path_kind)
    if path_kind != "root" and (
        not target or len(target.encode("utf-8", "surrogatepass")) > limits.max_identifier_bytes
    ):
        raise invalid_resource_path()
    if len(query) > limits.max_query_params:
        raise query_param_error(
            "too many query parameters",
            f"at most {limits.max_query_params} query parameters are allowed",
        )

    singletons: dict[str, str] = {}
    filters: list[EmbeddedFilter] = []
    logic: list[EmbeddedLogic] = []
    orders: dict[EmbedPath, tuple[OrderTerm, ...]] = {}
    page_limits: dict[EmbedPath, int] = {}
    page_offsets: dict[EmbedPath, int] = {}
    rpc_args: list[tuple[str, str]] = []
    budget = FilterBudget()
    rpc_read = path_kind == "rpc" and method in ("GET", "HEAD")

    for key, value in query:
        if key in _RESERVED:
            if key in singletons:
                raise _duplicate(key, limits)
            singletons[key] = value
            continue
        last = _last_segment(key)
        if last in _RESERVED_EMBEDDABLE:
            if last in ("and", "or"):
                path, negated, operator = parse_logic_key(key, limits=limits)
                tree = parse_logic_tree(operator, value, negated=negated, limits=limits, budget=budget)
                logic.append(EmbeddedLogic(path, tree))
                continue
            path = _embed_path_of(key, limits)
            if last == "order":
                if path in orders:
                    raise _duplicate(key, limits)
                orders[path] = parse_order(value, limits=limits)
            elif last == "limit":
                if path in page_limits:
                    raise _duplicate(key, limits)
                page_limits[path] = parse_limit(value, limits=limits)
            else:
                if path in page_offsets:
                    raise _duplicate(key, limits)
                page_offsets[path] = parse_offset(value, limits=limits)
            continue
        if rpc_read and not _looks_like_filter(key, value):
            rpc_args.append((key, value))
            continue
        budget.used += 1
        if budget.used > limits.max_filters:
            raise query_param_error("too many filters", f"at most {limits.max_filters} filters are allowed")
        path, field_path = parse_filter_key(key, limits=limits)
        filters.append(EmbeddedFilter(path, parse_filter_value(field_path, value, limits=limits)))

    if method == "PUT" and (() in page_limits or () in page_offsets):
        raise put_limit_not_allowed()

    pages = tuple(
        EmbeddedPage(path, Page(page_offsets.get(path, 0), page_limits.get(path)))
        for path in dict.fromkeys([*page_limits, *page_offsets])
    )
    top_page = next((p.page for p in pages if p.path == ()), Page())
    if method in ("GET", "HEAD"):
        range_value = _header(headers, "range")
        if range_value is not None and len(range_value) <= limits.max_header_bytes:
            header_page = parse_range_header(range_value)
            if header_page is not None:
                top_page = intersect_pages(top_page, header_page)

    select_text = singletons.get("select")
    select = (SelectStar(),) if select_text is None else parse_select(select_text, limits=limits)
    columns_text = singletons.get("columns")
    on_conflict_text = singletons.get("on_conflict")

    preferences = parse_prefer(_header(headers, "prefer"), limits=limits)
    accept = negotiate_accept(
        parse_accept(_header(headers, "accept"), limits=limits),
        path_kind,
        plan_enabled=plan_enabled,
    )
    content_type = (
        parse_content_type(_header(headers, "content-type"), path_kind) if method in _BODY_METHODS else None
    )
    profile_header = "accept-profile" if method in ("GET", "HEAD") else "content-profile"
    profile = _header(headers, profile_header)

    return ApiRequest(
        method=method,
        path_kind=path_kind,
        target=target,
        action=action,
        select=select,
        filters=tuple(filters),
        logic=tuple(logic),
        order=tuple(EmbeddedOrder(path, terms) for path, terms in orders.items()),
        pages=pages,
        top_page=top_page,
        columns=None if columns_text is None else parse_columns(columns_text, limits=limits),
        on_conflict=(
            None
            if on_conflict_text is None
            else parse_columns(on_conflict_text, what="on_conflict parameter", limits=limits)
        ),
        rpc_args=tuple(rpc_args),
        preferences=preferences,
        accept=accept,
        content_type=content_type,
        profile=None if profile is None else profile.strip(" \t"),
    )


def _duplicate(key: str, limits: ParseLimits) -> ApiError:
    # Upstream silently keeps one of the values; a clear error is safer than a guess.
    return query_param_error(
        f'"failed to parse {truncate(key, limits.max_echo_chars)} parameter"',
        f"the '{truncate(key, limits.max_echo_chars)}' parameter is given more than once",
    )
