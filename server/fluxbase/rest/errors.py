"""The one error type of the data API and its table of codes and HTTP statuses.

Every stage (request -> parse -> plan -> query -> response) raises ApiError; nothing else
invents a status code. Messages follow PostgREST's wording because clients match on them.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from http import HTTPStatus
from typing import Any

from fluxbase.db.errors import ConnectionLost, DatabaseUnavailable, DatabaseUnreachable, PoolTimeout

# PGRST201 sends its candidate relationships as an array, so details is not always text.
ErrorDetails = str | list[dict[str, str]] | None


class ApiError(Exception):
    """An error answered to the client as PostgREST's `{code, message, details, hint}` body."""

    status: int
    code: str
    message: str
    details: ErrorDetails
    hint: str | None
    headers: tuple[tuple[str, str], ...]
    reason: str | None

    def __init__(
        self,
        status: int,
        code: str,
        message: str,
        details: ErrorDetails = None,
        hint: str | None = None,
        *,
        headers: Sequence[tuple[str, str]] = (),
        reason: str | None = None,
    ) -> None:
        super().__init__(f"{code} ({status}): {message}")
        self.status = status
        self.code = code
        self.message = message
        self.details = details
        self.hint = hint
        self.headers = tuple(headers)
        # A custom reason phrase, set by `RAISE SQLSTATE 'PTxyz'` and `status_text`.
        self.reason = reason

    def body(self, *, minimal: bool = False) -> dict[str, Any]:
        """The JSON body; `minimal` mirrors PostgREST's client-error-verbosity=minimal."""
        if minimal:
            return {"code": self.code, "message": self.message}
        return {
            "code": self.code,
            "message": self.message,
            "details": self.details if self.details not in ("", []) else None,
            "hint": self.hint or None,
        }

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, ApiError):
            return NotImplemented
        return (self.status, self.body(), self.headers, self.reason) == (
            other.status,
            other.body(),
            other.headers,
            other.reason,
        )

    __hash__ = None  # type: ignore[assignment]


@dataclass(frozen=True, slots=True)
class ErrorCode:
    """One row of the PGRST table: the HTTP status and upstream's fixed message, if any."""

    status: int
    message: str


# Statuses and fixed messages as in PostgREST's Error.hs. Codes 104, 109, 110, 113 are retired.
PGRST_CODES: Mapping[str, ErrorCode] = {
    "PGRST000": ErrorCode(503, "Database connection error. Retrying the connection."),
    "PGRST001": ErrorCode(503, "Database client error. Retrying the connection."),
    "PGRST002": ErrorCode(503, "Could not query the database for the schema cache. Retrying."),
    "PGRST003": ErrorCode(504, "Timed out acquiring connection from connection pool."),
    "PGRST100": ErrorCode(400, "failed to parse query parameters"),
    "PGRST101": ErrorCode(405, "Cannot use this method on RPC"),
    "PGRST102": ErrorCode(400, "Empty or invalid json"),
    "PGRST103": ErrorCode(416, "Requested range not satisfiable"),
    "PGRST105": ErrorCode(405, "Filters must include all and only primary key columns with 'eq' operators"),
    "PGRST106": ErrorCode(406, "Invalid schema"),
    "PGRST107": ErrorCode(406, "None of these media types are available"),
    "PGRST108": ErrorCode(400, "Not an embedded resource in this request"),
    "PGRST111": ErrorCode(
        500,
        "response.headers guc must be a JSON array composed of objects with a single key and a string value",
    ),
    "PGRST112": ErrorCode(500, "response.status guc must be a valid status code"),
    "PGRST114": ErrorCode(400, "limit/offset querystring parameters are not allowed for PUT"),
    "PGRST115": ErrorCode(400, "Payload values do not match URL in primary key column(s)"),
    "PGRST116": ErrorCode(406, "Cannot coerce the result to a single JSON object"),
    "PGRST117": ErrorCode(405, "Unsupported HTTP method"),
    "PGRST118": ErrorCode(400, "A related order is not possible"),
    "PGRST119": ErrorCode(400, "A spread operation is not possible"),
    "PGRST120": ErrorCode(400, "Bad operator on an embedded resource"),
    "PGRST121": ErrorCode(500, "Could not parse JSON in the \"RAISE SQLSTATE 'PGRST'\" error"),
    "PGRST122": ErrorCode(400, "Invalid preferences given with handling=strict"),
    "PGRST123": ErrorCode(400, "Use of aggregate functions is not allowed"),
    "PGRST124": ErrorCode(400, "Query result exceeds max-affected preference constraint"),
    "PGRST125": ErrorCode(404, "Invalid path specified in request URL"),
    "PGRST126": ErrorCode(404, "Root endpoint metadata is disabled"),
    "PGRST127": ErrorCode(400, "Feature not implemented"),
    "PGRST128": ErrorCode(
        400,
        "Function must return SETOF or TABLE when max-affected preference is used with handling=strict",
    ),
    "PGRST200": ErrorCode(400, "Could not find a relationship in the schema cache"),
    "PGRST201": ErrorCode(300, "Could not embed because more than one relationship was found"),
    "PGRST202": ErrorCode(404, "Could not find the function in the schema cache"),
    "PGRST203": ErrorCode(300, "Could not choose the best candidate function"),
    "PGRST204": ErrorCode(400, "Could not find the column in the schema cache"),
    "PGRST205": ErrorCode(404, "Could not find the table in the schema cache"),
    "PGRST300": ErrorCode(500, "Server lacks JWT secret"),
    "PGRST301": ErrorCode(401, "JWT cannot be decoded or verified"),
    "PGRST302": ErrorCode(401, "Anonymous access is disabled"),
    "PGRST303": ErrorCode(401, "JWT claims are invalid"),
    "PGRSTX00": ErrorCode(500, "Internal database library error"),
}

_BEARER_CHALLENGE = ("WWW-Authenticate", "Bearer")

# The database's domain errors (db/errors.py), as PostgREST's hasql usage errors map them:
# acquisition timeout PGRST003 (504), connection error PGRST000, client error PGRST001 (503).
# Retry-After is ours: each is worth retrying.  The reason stays in the log, not in details.
DATABASE_UNAVAILABLE_CODES: Mapping[type[DatabaseUnavailable], tuple[str, str]] = {
    PoolTimeout: ("PGRST003", "1"),
    DatabaseUnreachable: ("PGRST000", "5"),
    ConnectionLost: ("PGRST001", "1"),
}


def pgrst_error(
    code: str,
    message: str | None = None,
    details: ErrorDetails = None,
    hint: str | None = None,
    *,
    headers: Sequence[tuple[str, str]] = (),
) -> ApiError:
    """An ApiError for a PGRST code, with the status (and default message) from the table."""
    row = PGRST_CODES[code]
    if row.status == 401 and not any(name.lower() == "www-authenticate" for name, _ in headers):
        headers = (*headers, _BEARER_CHALLENGE)
    return ApiError(
        row.status,
        code,
        row.message if message is None else message,
        details,
        hint,
        headers=headers,
    )


# --- constructors for the errors whose wording clients depend on -------------------------


def query_param_error(message: str, details: str | None) -> ApiError:
    """PGRST100: message is `"failed to parse <what> (<input>)" (line L, column C)`."""
    return pgrst_error("PGRST100", message, details)


def invalid_rpc_method(method: str) -> ApiError:
    return pgrst_error("PGRST101", f"Cannot use the {method} method on RPC")


def invalid_body(message: str) -> ApiError:
    return pgrst_error("PGRST102", message)


def content_type_not_acceptable(mime: str) -> ApiError:
    # Upstream answers an unparseable body media type with PGRST102, not PGRST107.
    return pgrst_error("PGRST102", f"Content-Type not acceptable: {mime}")


def negative_limit() -> ApiError:
    return pgrst_error("PGRST103", details="Limit should be greater than or equal to zero.")


def range_lower_gt_upper() -> ApiError:
    return pgrst_error(
        "PGRST103",
        details="The lower boundary must be lower than or equal to the upper boundary in the Range header.",
    )


def range_out_of_bounds(offset: int, total: int) -> ApiError:
    return pgrst_error(
        "PGRST103",
        details=f"An offset of {offset} was requested, but there are only {total} rows.",
    )


def invalid_put_filters() -> ApiError:
    return pgrst_error("PGRST105")


def unacceptable_schema(schema: str, exposed: Sequence[str]) -> ApiError:
    return pgrst_error(
        "PGRST106",
        f"Invalid schema: {schema}",
        hint=f"Only the following schemas are exposed: {', '.join(exposed)}",
    )


def media_type_error(mimes: Sequence[str], details: str | None = None) -> ApiError:
    return pgrst_error("PGRST107", f"None of these media types are available: {', '.join(mimes)}", details)


def not_embedded(resource: str) -> ApiError:
    return pgrst_error(
        "PGRST108",
        f"'{resource}' is not an embedded resource in this request",
        hint=f"Verify that '{resource}' is included in the 'select' query parameter.",
    )


def put_limit_not_allowed() -> ApiError:
    return pgrst_error("PGRST114")


def put_matching_pk_error() -> ApiError:
    return pgrst_error("PGRST115")


def singularity_error(row_count: int, *, postgrest_version: int = 13) -> ApiError:
    # PostgREST 12 and before worded the message differently; clients show it as is.
    message = None if postgrest_version >= 13 else "JSON object requested, multiple (or no) rows returned"
    return pgrst_error("PGRST116", message, details=f"The result contains {row_count} rows")


def unsupported_method(method: str) -> ApiError:
    return pgrst_error("PGRST117", f"Unsupported HTTP method: {method}")


def related_order_not_to_one(origin: str, target: str) -> ApiError:
    return pgrst_error(
        "PGRST118",
        f"A related order on '{target}' is not possible",
        f"'{origin}' and '{target}' do not form a many-to-one or one-to-one relationship",
    )


def spread_not_to_one(origin: str, target: str) -> ApiError:
    """PostgREST 12's refusal of `...rel(...)` on a to-many relationship."""
    return pgrst_error(
        "PGRST119",
        f"A spread operation on '{target}' is not possible",
        f"'{origin}' and '{target}' do not form a many-to-one or one-to-one relationship",
    )


def unacceptable_embed_filter(target: str) -> ApiError:
    return pgrst_error(
        "PGRST120",
        f"Bad operator on the '{target}' embedded resource",
        "Only is null or not is null filters are allowed on embedded resources",
    )


def invalid_preferences(preferences: Sequence[str]) -> ApiError:
    return pgrst_error("PGRST122", details=f"Invalid preferences: {', '.join(preferences)}")


def aggregates_not_allowed() -> ApiError:
    return pgrst_error("PGRST123")


def max_affected_violation(row_count: int) -> ApiError:
    return pgrst_error("PGRST124", details=f"The query affects {row_count} rows")


def invalid_resource_path() -> ApiError:
    return pgrst_error("PGRST125")


def openapi_disabled() -> ApiError:
    return pgrst_error("PGRST126")


def not_implemented(details: str) -> ApiError:
    return pgrst_error("PGRST127", details=details)


def max_affected_rpc_violation() -> ApiError:
    return pgrst_error("PGRST128")


def database_unavailable(error: DatabaseUnavailable) -> ApiError:
    code, retry_after = DATABASE_UNAVAILABLE_CODES.get(type(error), ("PGRST000", "5"))
    return pgrst_error(code, headers=(("Retry-After", retry_after),))


def schema_cache_not_loaded() -> ApiError:
    return pgrst_error("PGRST002")


def column_not_found(relation: str, column: str) -> ApiError:
    return pgrst_error(
        "PGRST204", f"Could not find the '{column}' column of '{relation}' in the schema cache"
    )


class TableNotFound(ApiError):
    """PGRST205. `candidates` are the close names a hint may suggest once the caller's
    privileges on them are known (the handler asks the database: issue 10, names leak)."""

    def __init__(self, schema: str, relation: str, candidates: tuple[str, ...]) -> None:
        super().__init__(
            404, "PGRST205", f"Could not find the table '{schema}.{relation}' in the schema cache"
        )
        self.schema = schema
        self.candidates = candidates

    def with_visible(self, visible: Sequence[str]) -> ApiError:
        """The error answered: hinting the closest candidate the caller may use, if any."""
        suggestion = next((name for name in self.candidates if name in visible), None)
        hint = None if suggestion is None else f"Perhaps you meant the table '{self.schema}.{suggestion}'"
        return ApiError(self.status, self.code, self.message, hint=hint)


def table_not_found(schema: str, relation: str, candidates: tuple[str, ...] = ()) -> TableNotFound:
    return TableNotFound(schema, relation, candidates)


# --- SQLSTATE -> HTTP status (PostgREST's mapSQLtoHTTP) -----------------------------------

# Exact codes are checked before two-character classes, as upstream does.
_EXACT_SQLSTATE_STATUS: Mapping[str, int] = {
    "23503": 409,  # foreign_key_violation
    "23505": 409,  # unique_violation
    "25006": 405,  # read_only_sql_transaction: GET of a function that writes
    "53400": 500,  # configuration_limit_exceeded
    "57P01": 503,  # admin_shutdown: the server is going away, retry elsewhere
    "P0001": 400,  # plain RAISE EXCEPTION is the user's own validation error
    "42P01": 404,  # undefined_table
    "42P17": 500,  # infinite recursion, e.g. in an RLS policy
}

_CLASS_SQLSTATE_STATUS: Mapping[str, int] = {
    "08": 503,  # connection exception
    "09": 500,  # triggered action exception
    "0L": 403,  # invalid grantor
    "0P": 403,  # invalid role specification
    "25": 500,  # invalid transaction state
    "28": 403,  # invalid authorization specification
    "2D": 500,  # invalid transaction termination
    "38": 500,  # external routine exception
    "39": 500,  # external routine invocation exception
    "3B": 500,  # savepoint exception
    "40": 500,  # transaction rollback
    "53": 503,  # insufficient resources
    "54": 500,  # program limit exceeded
    "55": 500,  # object not in prerequisite state
    "57": 500,  # operator intervention, e.g. 57014 statement timeout
    "58": 500,  # system error
    "F0": 500,  # configuration file error
    "HV": 500,  # foreign data wrapper error
    "P0": 500,  # PL/pgSQL error other than P0001
    "XX": 500,  # internal error
}


def status_for_sqlstate(sqlstate: str, *, authenticated: bool, message: str = "") -> int:
    """HTTP status for a PostgreSQL error; `message` matters for 21000, 22023 and 42883.

    `authenticated` is true when the request carried a valid JWT: a privilege error is then
    403, and 401 otherwise so that an anonymous client knows to log in.
    """
    code = sqlstate.upper()
    if code in _EXACT_SQLSTATE_STATUS:
        return _EXACT_SQLSTATE_STATUS[code]
    if code == "42501":
        return 403 if authenticated else 401
    if code == "21000":
        # pg-safeupdate refuses unfiltered PATCH/DELETE: that is the client's mistake.
        return 400 if message.endswith("requires a WHERE clause") else 500
    if code == "22023":
        # A JWT naming a role that does not exist is an authentication failure.
        return 401 if message.startswith("role") and message.endswith("does not exist") else 400
    if code == "42883":
        return 406 if message.startswith("function xmlagg(") else 404
    if code.startswith("PT") and code != "PGRST":
        return _status_from_pt_code(code[2:])
    return _CLASS_SQLSTATE_STATUS.get(code[:2], 400)


def _status_from_pt_code(digits: str) -> int:
    if len(digits) == 3 and digits.isascii() and digits.isdigit():
        status = int(digits)
        if 100 <= status <= 599:
            return status
    return 500


def from_postgres(
    sqlstate: str,
    message: str,
    detail: str | None,
    hint: str | None,
    *,
    authenticated: bool,
) -> ApiError:
    """Turn a PostgreSQL error into the ApiError PostgREST would answer with.

    The code is the SQLSTATE and the texts pass through, except for `RAISE SQLSTATE 'PGRST'`,
    whose MESSAGE and DETAIL are JSON giving the full response (PGRST121 when they are not).
    """
    if sqlstate.upper() == "PGRST":
        return _from_raise_pgrst(message, detail)
    status = status_for_sqlstate(sqlstate, authenticated=authenticated, message=message)
    headers = (_BEARER_CHALLENGE,) if status == 401 else ()
    reason = message if sqlstate.upper().startswith("PT") and status != 500 else None
    return ApiError(status, sqlstate, message, detail or None, hint or None, headers=headers, reason=reason)


def _from_raise_pgrst(message: str, detail: str | None) -> ApiError:
    body = _json_object(message)
    if body is None or not isinstance(body.get("code"), str) or not isinstance(body.get("message"), str):
        return pgrst_error(
            "PGRST121",
            details=f"Invalid JSON value for MESSAGE: '{message}'",
            hint="MESSAGE must be a JSON object with obligatory keys: 'code', 'message' and "
            "optional keys: 'details', 'hint'.",
        )
    detail_hint = (
        "DETAIL must be a JSON object with obligatory keys: 'status', 'headers' and optional "
        "key: 'status_text'."
    )
    if detail is None:
        return pgrst_error("PGRST121", details="DETAIL is missing in the RAISE statement", hint=detail_hint)
    response = _json_object(detail)
    status = None if response is None else response.get("status")
    headers = None if response is None else response.get("headers")
    status_text = None if response is None else response.get("status_text")
    valid = (
        isinstance(status, int)
        and not isinstance(status, bool)
        and 100 <= status <= 599
        and isinstance(headers, dict)
        and all(isinstance(v, str) for v in headers.values())
        and (status_text is None or isinstance(status_text, str))
    )
    if not valid:
        return pgrst_error("PGRST121", details=f"Invalid JSON value for DETAIL: '{detail}'", hint=detail_hint)
    assert isinstance(status, int) and isinstance(headers, dict)
    details = body.get("details")
    hint = body.get("hint")
    return ApiError(
        status,
        body["code"],
        body["message"],
        details if isinstance(details, str) else None,
        hint if isinstance(hint, str) else None,
        headers=tuple(headers.items()),
        reason=status_text if isinstance(status_text, str) else None,
    )


def _json_object(text: str) -> dict[str, Any] | None:
    try:
        value = json.loads(text)
    except (ValueError, RecursionError):
        return None
    return value if isinstance(value, dict) else None


def reason_phrase(error: ApiError) -> str:
    """The status line's reason: the custom one if set, else the standard phrase."""
    if error.reason:
        return error.reason
    try:
        return HTTPStatus(error.status).phrase
    except ValueError:
        return ""
