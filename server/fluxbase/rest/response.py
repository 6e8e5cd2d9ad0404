"""The response stage: a statement's result turned into status, headers and body (... -> **response**).

Pure: takes what the transaction returned and what the client asked for.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from urllib.parse import quote

import orjson

from fluxbase.rest.errors import pgrst_error, range_out_of_bounds, singularity_error
from fluxbase.rest.plan import CallPlan, MutatePlan
from fluxbase.rest.request.action import Action
from fluxbase.rest.request.api_request import ApiRequest
from fluxbase.rest.request.media import MediaKind, MediaType
from fluxbase.rest.request.preferences import ResolutionPreference, TxPreference
from fluxbase.rest.request.ranges import Page

JSON = "application/json; charset=utf-8"
SINGULAR = "application/vnd.pgrst.object+json; charset=utf-8"
CSV = "text/csv; charset=utf-8"
GEOJSON = "application/geo+json; charset=utf-8"


@dataclass
class Reply:
    status: int
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes | None = None


def content_range(offset: int, page_total: int, total: int | None) -> str:
    """`0-9/100`, `0-9/*` when not counted, `*/0` for an empty page (RFC 7233 style, as PostgREST)."""
    total_text = "*" if total is None else str(total)
    if page_total == 0:
        return f"*/{total_text}"
    return f"{offset}-{offset + page_total - 1}/{total_text}"


def read_reply(
    *,
    page: Page,
    total: int | None,
    page_total: int,
    body: str | None,
    accept: MediaType,
    head: bool,
    count_applied: str | None,
    keys: Sequence[str] = (),
    postgrest_version: int = 13,
) -> Reply:
    """A read's answer; `keys` are the result objects' keys (the CSV header)."""
    if total is not None and page.offset > 0 and page.offset >= total and page_total == 0:
        raise range_out_of_bounds(page.offset, total)
    headers = {"Content-Range": content_range(page.offset, page_total, total)}
    if count_applied:
        headers["Preference-Applied"] = f"count={count_applied}"
    status = 200
    if total is not None and page_total < total:
        status = 206
    if accept.kind == MediaKind.SINGULAR:
        if page_total != 1:
            raise singularity_error(page_total, postgrest_version=postgrest_version)
        headers["Content-Type"] = SINGULAR
        payload = (body or "null").encode()
        if accept.nulls_stripped:
            payload = orjson.dumps({k: v for k, v in orjson.loads(payload).items() if v is not None})
        return Reply(status, headers, None if head else payload)
    if accept.kind == MediaKind.CSV:
        headers["Content-Type"] = CSV
        return Reply(status, headers, None if head else csv_body(keys, page_total, body or ""))
    if accept.kind == MediaKind.GEOJSON:
        headers["Content-Type"] = GEOJSON
        return Reply(status, headers, None if head else (body or "null").encode())
    headers["Content-Type"] = JSON
    return Reply(status, headers, None if head else (body or "[]").encode())


def csv_body(keys: Sequence[str], page_total: int, rows: str) -> bytes:
    """PostgREST's CSV: the keys as header (empty when there are no rows), a newline, the rows
    as the statement rendered them (query/read.py CSV_ROWS), and no final newline."""
    header = ",".join(keys) if page_total else ""
    return f"{header}\n{rows}".encode()


def write_reply(
    plan: MutatePlan,
    request: ApiRequest,
    *,
    affected: int,
    body: str | None,
    location: str | None,
    count_applied: bool,
    inserted: int | None = None,
    tx_applied: TxPreference | None,
) -> Reply:
    """Status and headers of a write, as PostgREST answers them."""
    action = plan.action
    total = str(affected) if count_applied else "*"
    headers: dict[str, str] = {}
    if action == Action.UPDATE and affected:
        headers["Content-Range"] = f"0-{affected - 1}/{total}"
    else:
        headers["Content-Range"] = f"*/{total}"
    preferences = request.preferences
    # PostgREST's order: resolution, missing, return, count, tx, handling.
    applied = []
    if plan.resolution is not None and action == Action.INSERT:
        applied.append(f"resolution={plan.resolution.value}")
    if plan.missing_default:
        applied.append("missing=default")
    if preferences.return_ is not None:
        applied.append(f"return={preferences.return_.value}")
    if count_applied:
        applied.append("count=exact")
    if tx_applied is not None:
        applied.append(f"tx={tx_applied.value}")
    if preferences.handling is not None:
        applied.append(f"handling={preferences.handling.value}")
    if applied:
        headers["Preference-Applied"] = ", ".join(applied)
    if location:
        values = orjson.loads(location)
        query = "&".join(
            f"{quote(name)}=eq.{quote(str(value))}"
            for name, value in zip(plan.table.primary_key, values, strict=True)
        )
        headers["Location"] = f"/{quote(plan.table.name.name)}?{query}"
    if action == Action.INSERT:
        # PostgREST answers 200, not 201, to a merge-duplicates upsert that inserted no row.
        merged_only = plan.resolution == ResolutionPreference.MERGE_DUPLICATES and inserted == 0
        status = 200 if merged_only else 201
    else:
        status = 200 if plan.representation is not None else 204
    if plan.representation is None:
        return Reply(status, headers)
    if request.accept.kind == MediaKind.SINGULAR:
        headers["Content-Type"] = SINGULAR
        return Reply(status, headers, (body or "null").encode())
    headers["Content-Type"] = JSON
    return Reply(status, headers, (body or "[]").encode())


def call_reply(
    plan: CallPlan,
    *,
    page: Page,
    total: int | None,
    page_total: int,
    body: str | None,
    head: bool,
    singular: bool,
    count_applied: bool = False,
) -> Reply:
    """An RPC result: 204 for void, else the bare JSON value, an object or an array.

    Every answer carries Content-Range, as PostgREST's (`*/*` for void, `0-0/*` for one
    value), with the total under count=exact and 206/416 as for reads.
    """
    if total is not None and page.offset > 0 and page.offset >= total and page_total == 0:
        raise range_out_of_bounds(page.offset, total)
    headers = {"Content-Range": content_range(page.offset, page_total, total)}
    if count_applied:
        headers["Preference-Applied"] = "count=exact"
    if plan.returns_void:
        return Reply(204, headers)
    headers["Content-Type"] = SINGULAR if singular else JSON
    status = 206 if total is not None and page_total < total else 200
    payload = (body or "null").encode()
    return Reply(status, headers, None if head else payload)


def apply_response_settings(reply: Reply, headers_setting: str | None, status_setting: str | None) -> Reply:
    """What the function set in response.headers / response.status overrides the computed answer."""
    if headers_setting:
        try:
            entries = orjson.loads(headers_setting)
            if not isinstance(entries, list):
                raise ValueError
            for entry in entries:
                if not isinstance(entry, dict) or len(entry) != 1:
                    raise ValueError
                [(name, value)] = entry.items()
                if not isinstance(value, str):
                    raise ValueError
                reply.headers[name] = value
        except ValueError as error:
            raise pgrst_error("PGRST111") from error
    if status_setting:
        try:
            status = int(status_setting)
        except ValueError as error:
            raise pgrst_error("PGRST112") from error
        if not 100 <= status <= 599:
            raise pgrst_error("PGRST112")
        reply.status = status
    return reply
