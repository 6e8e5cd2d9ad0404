"""The error table: PGRST codes and statuses, the JSON body, and the SQLSTATE -> HTTP mapping."""

from __future__ import annotations

import json

import pytest

from fluxbase.rest.errors import (
    PGRST_CODES,
    ApiError,
    aggregates_not_allowed,
    column_not_found,
    from_postgres,
    invalid_body,
    invalid_preferences,
    invalid_rpc_method,
    max_affected_violation,
    media_type_error,
    not_embedded,
    pgrst_error,
    range_out_of_bounds,
    reason_phrase,
    related_order_not_to_one,
    singularity_error,
    status_for_sqlstate,
    table_not_found,
    unacceptable_embed_filter,
    unacceptable_schema,
    unsupported_method,
)

# --- body ----------------------------------------------------------------------------------


def test_body_always_has_four_keys() -> None:
    error = ApiError(400, "PGRST100", "bad")
    assert error.body() == {"code": "PGRST100", "message": "bad", "details": None, "hint": None}


def test_body_empty_details_and_hint_are_null() -> None:
    assert ApiError(400, "X", "m", "", "").body() == {
        "code": "X",
        "message": "m",
        "details": None,
        "hint": None,
    }


def test_body_minimal_verbosity() -> None:
    assert ApiError(400, "X", "m", "d", "h").body(minimal=True) == {"code": "X", "message": "m"}


def test_body_details_may_be_an_array() -> None:
    candidates = [{"cardinality": "many-to-one", "embedding": "a with b", "relationship": "r"}]
    assert ApiError(300, "PGRST201", "m", candidates).body()["details"] == candidates


def test_body_is_json_serialisable() -> None:
    assert json.loads(json.dumps(ApiError(400, "X", 'm\n"', "d").body()))["message"] == 'm\n"'


def test_api_error_is_an_exception() -> None:
    with pytest.raises(ApiError) as caught:
        raise ApiError(400, "PGRST100", "bad")
    assert caught.value.status == 400
    assert "PGRST100" in str(caught.value)


# --- PGRST table ---------------------------------------------------------------------------

EXPECTED_STATUSES = {
    "PGRST000": 503, "PGRST001": 503, "PGRST002": 503, "PGRST003": 504,
    "PGRST100": 400, "PGRST101": 405, "PGRST102": 400, "PGRST103": 416,
    "PGRST105": 405, "PGRST106": 406, "PGRST107": 406, "PGRST108": 400,
    "PGRST111": 500, "PGRST112": 500, "PGRST114": 400, "PGRST115": 400,
    "PGRST116": 406, "PGRST117": 405, "PGRST118": 400, "PGRST119": 400, "PGRST120": 400,
    "PGRST121": 500, "PGRST122": 400, "PGRST123": 400, "PGRST124": 400,
    "PGRST125": 404, "PGRST126": 404, "PGRST127": 400, "PGRST128": 400,
    "PGRST200": 400, "PGRST201": 300, "PGRST202": 404, "PGRST203": 300,
    "PGRST204": 400, "PGRST205": 404,
    "PGRST300": 500, "PGRST301": 401, "PGRST302": 401, "PGRST303": 401,
    "PGRSTX00": 500,
}  # fmt: skip


def test_table_statuses_match_upstream() -> None:
    assert {code: row.status for code, row in PGRST_CODES.items()} == EXPECTED_STATUSES


def test_retired_codes_are_absent() -> None:
    for code in ("PGRST104", "PGRST109", "PGRST110", "PGRST113"):
        assert code not in PGRST_CODES


@pytest.mark.parametrize("code", sorted(EXPECTED_STATUSES))
def test_pgrst_error_takes_status_from_table(code: str) -> None:
    error = pgrst_error(code)
    assert (error.status, error.code) == (EXPECTED_STATUSES[code], code)
    assert error.message == PGRST_CODES[code].message


def test_pgrst_401_carries_bearer_challenge() -> None:
    assert pgrst_error("PGRST302").headers == (("WWW-Authenticate", "Bearer"),)
    challenge = (
        "WWW-Authenticate",
        'Bearer error="invalid_token", error_description="JWT expired"',
    )
    assert pgrst_error("PGRST303", "JWT expired", headers=[challenge]).headers == (challenge,)


def test_unknown_code_is_a_programming_error() -> None:
    with pytest.raises(KeyError):
        pgrst_error("PGRST999")


@pytest.mark.parametrize(
    ("error", "status", "body"),
    [
        (
            invalid_rpc_method("PATCH"),
            405,
            {
                "code": "PGRST101",
                "message": "Cannot use the PATCH method on RPC",
                "details": None,
                "hint": None,
            },
        ),
        (
            invalid_body("All object keys must match"),
            400,
            {
                "code": "PGRST102",
                "message": "All object keys must match",
                "details": None,
                "hint": None,
            },
        ),
        (
            range_out_of_bounds(20, 5),
            416,
            {
                "code": "PGRST103",
                "message": "Requested range not satisfiable",
                "details": "An offset of 20 was requested, but there are only 5 rows.",
                "hint": None,
            },
        ),
        (
            unacceptable_schema("x", ["api", "v2"]),
            406,
            {
                "code": "PGRST106",
                "message": "Invalid schema: x",
                "details": None,
                "hint": "Only the following schemas are exposed: api, v2",
            },
        ),
        (
            media_type_error(["text/html"]),
            406,
            {
                "code": "PGRST107",
                "message": "None of these media types are available: text/html",
                "details": None,
                "hint": None,
            },
        ),
        (
            not_embedded("actors"),
            400,
            {
                "code": "PGRST108",
                "message": "'actors' is not an embedded resource in this request",
                "details": None,
                "hint": "Verify that 'actors' is included in the 'select' query parameter.",
            },
        ),
        (
            singularity_error(3),
            406,
            {
                "code": "PGRST116",
                "message": "Cannot coerce the result to a single JSON object",
                "details": "The result contains 3 rows",
                "hint": None,
            },
        ),
        (
            unsupported_method("TRACE"),
            405,
            {
                "code": "PGRST117",
                "message": "Unsupported HTTP method: TRACE",
                "details": None,
                "hint": None,
            },
        ),
        (
            related_order_not_to_one("films", "actors"),
            400,
            {
                "code": "PGRST118",
                "message": "A related order on 'actors' is not possible",
                "details": ("'films' and 'actors' do not form a many-to-one or one-to-one relationship"),
                "hint": None,
            },
        ),
        (
            unacceptable_embed_filter("actors"),
            400,
            {
                "code": "PGRST120",
                "message": "Bad operator on the 'actors' embedded resource",
                "details": "Only is null or not is null filters are allowed on embedded resources",
                "hint": None,
            },
        ),
        (
            invalid_preferences(["foo", "bar"]),
            400,
            {
                "code": "PGRST122",
                "message": "Invalid preferences given with handling=strict",
                "details": "Invalid preferences: foo, bar",
                "hint": None,
            },
        ),
        (
            aggregates_not_allowed(),
            400,
            {
                "code": "PGRST123",
                "message": "Use of aggregate functions is not allowed",
                "details": None,
                "hint": None,
            },
        ),
        (
            max_affected_violation(7),
            400,
            {
                "code": "PGRST124",
                "message": "Query result exceeds max-affected preference constraint",
                "details": "The query affects 7 rows",
                "hint": None,
            },
        ),
        (
            column_not_found("films", "nope"),
            400,
            {
                "code": "PGRST204",
                "message": "Could not find the 'nope' column of 'films' in the schema cache",
                "details": None,
                "hint": None,
            },
        ),
        (
            table_not_found("api", "flims", ("films",)).with_visible(["films"]),
            404,
            {
                "code": "PGRST205",
                "message": "Could not find the table 'api.flims' in the schema cache",
                "details": None,
                "hint": "Perhaps you meant the table 'api.films'",
            },
        ),
    ],
)
def test_constructors_use_upstream_wording(error: ApiError, status: int, body: dict[str, object]) -> None:
    assert error.status == status
    assert error.body() == body


# --- SQLSTATE -> HTTP ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("sqlstate", "status"),
    [
        ("08000", 503), ("08006", 503), ("08P01", 503),
        ("09000", 500),
        ("0L000", 403), ("0LP01", 403), ("0P000", 403),
        ("23503", 409), ("23505", 409),
        ("23502", 400), ("23514", 400),  # other integrity errors are the client's
        ("25006", 405), ("25001", 500), ("25P02", 500),
        ("28000", 403), ("28P01", 403),
        ("2D000", 500), ("38000", 500), ("39000", 500), ("3B000", 500),
        ("40001", 500), ("40P01", 500),
        ("53400", 500), ("53000", 503), ("53100", 503), ("53200", 503), ("53300", 503),
        ("54000", 500), ("54001", 500), ("55000", 500), ("55P03", 500),
        ("57P01", 503), ("57014", 500), ("57P02", 500), ("57000", 500),
        ("58000", 500), ("58030", 500),
        ("F0000", 500), ("HV000", 500), ("XX000", 500), ("XX001", 500),
        ("P0001", 400), ("P0000", 500), ("P0002", 500), ("P0003", 500), ("P0004", 500),
        ("42P01", 404), ("42P17", 500),
        ("42703", 400), ("22P02", 400), ("22001", 400), ("42601", 400), ("2201X", 400),
    ],
)  # fmt: skip
def test_status_for_sqlstate(sqlstate: str, status: int) -> None:
    assert status_for_sqlstate(sqlstate, authenticated=False) == status
    assert status_for_sqlstate(sqlstate, authenticated=True) == status


def test_insufficient_privilege_depends_on_authentication() -> None:
    assert status_for_sqlstate("42501", authenticated=False) == 401
    assert status_for_sqlstate("42501", authenticated=True) == 403


def test_cardinality_violation_from_pg_safeupdate_is_400() -> None:
    assert status_for_sqlstate("21000", authenticated=True, message="DELETE requires a WHERE clause") == 400
    assert (
        status_for_sqlstate("21000", authenticated=True, message="more than one row returned by a subquery")
        == 500
    )


def test_invalid_parameter_value_for_unknown_role_is_401() -> None:
    assert status_for_sqlstate("22023", authenticated=True, message='role "ghost" does not exist') == 401
    assert status_for_sqlstate("22023", authenticated=True, message="invalid value") == 400


def test_undefined_function() -> None:
    assert status_for_sqlstate("42883", authenticated=False, message="function f() does not exist") == 404
    assert (
        status_for_sqlstate("42883", authenticated=False, message="function xmlagg(integer) does not exist")
        == 406
    )


@pytest.mark.parametrize(
    ("sqlstate", "status"),
    [("PT402", 402), ("PT418", 418), ("PT200", 200), ("PT999", 500), ("PT0AB", 500), ("PT", 500)],
)
def test_pt_codes_set_the_status(sqlstate: str, status: int) -> None:
    assert status_for_sqlstate(sqlstate, authenticated=False) == status


# --- from_postgres -------------------------------------------------------------------------


def test_from_postgres_passes_texts_through() -> None:
    error = from_postgres(
        "23505",
        'duplicate key value violates unique constraint "films_pkey"',
        "Key (id)=(1) already exists.",
        None,
        authenticated=True,
    )
    assert error.status == 409
    assert error.body() == {
        "code": "23505",
        "message": 'duplicate key value violates unique constraint "films_pkey"',
        "details": "Key (id)=(1) already exists.",
        "hint": None,
    }


def test_from_postgres_anonymous_privilege_error_asks_for_a_token() -> None:
    error = from_postgres("42501", "permission denied for table secrets", None, None, authenticated=False)
    assert error.status == 401
    assert error.headers == (("WWW-Authenticate", "Bearer"),)
    authed = from_postgres("42501", "permission denied", None, None, authenticated=True)
    assert (authed.status, authed.headers) == (403, ())


def test_from_postgres_pt_reason_phrase() -> None:
    error = from_postgres("PT402", "Payment Required", "pay", "now", authenticated=True)
    assert (error.status, error.code, error.reason) == (402, "PT402", "Payment Required")
    assert reason_phrase(error) == "Payment Required"
    assert reason_phrase(ApiError(404, "X", "m")) == "Not Found"


def test_from_postgres_raise_pgrst_gives_full_control() -> None:
    error = from_postgres(
        "PGRST",
        json.dumps({"code": "123", "message": "Payment Required", "details": "d", "hint": "h"}),
        json.dumps({"status": 402, "status_text": "Pay Up", "headers": {"X-Powered-By": "Nerd"}}),
        None,
        authenticated=False,
    )
    assert error.status == 402
    assert error.body() == {
        "code": "123",
        "message": "Payment Required",
        "details": "d",
        "hint": "h",
    }
    assert error.headers == (("X-Powered-By", "Nerd"),)
    assert error.reason == "Pay Up"


@pytest.mark.parametrize(
    ("message", "detail", "details"),
    [
        ("not json", '{"status":400,"headers":{}}', "Invalid JSON value for MESSAGE: 'not json'"),
        (
            '{"message":"m"}',
            '{"status":400,"headers":{}}',
            'Invalid JSON value for MESSAGE: \'{"message":"m"}\'',
        ),
        ('{"code":"1","message":"m"}', None, "DETAIL is missing in the RAISE statement"),
        ('{"code":"1","message":"m"}', "[]", "Invalid JSON value for DETAIL: '[]'"),
        (
            '{"code":"1","message":"m"}',
            '{"status":"400","headers":{}}',
            'Invalid JSON value for DETAIL: \'{"status":"400","headers":{}}\'',
        ),
        (
            '{"code":"1","message":"m"}',
            '{"status":400}',
            "Invalid JSON value for DETAIL: '{\"status\":400}'",
        ),
        (
            '{"code":"1","message":"m"}',
            '{"status":42,"headers":{}}',
            'Invalid JSON value for DETAIL: \'{"status":42,"headers":{}}\'',
        ),
    ],
)
def test_from_postgres_bad_raise_pgrst_is_pgrst121(message: str, detail: str | None, details: str) -> None:
    error = from_postgres("PGRST", message, detail, None, authenticated=False)
    assert (error.status, error.code) == (500, "PGRST121")
    assert error.details == details
    assert error.hint is not None


def test_from_postgres_empty_detail_and_hint_become_null() -> None:
    error = from_postgres("P0001", "boom", "", "", authenticated=False)
    assert error.status == 400
    assert error.body() == {"code": "P0001", "message": "boom", "details": None, "hint": None}
