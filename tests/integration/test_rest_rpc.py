"""RPC through /rest/v1/rpc/{fn}: argument forms, result shapes, transactions, errors, RLS."""

from __future__ import annotations

import json
from typing import Any

from rest_support import ALICE, ANON, BOB, SERVICE, Client, user


async def call(
    api: Client, fn: str, body: Any = None, *, get: str | None = None, headers: dict[str, str] | None = None
) -> tuple[int, Any, Any]:
    headers = headers or ANON
    if get is not None:
        response = await api.get(f"/rest/v1/rpc/{fn}?{get}", headers=headers)
    else:
        response = await api.post(
            f"/rest/v1/rpc/{fn}", json=body if body is not None else {}, headers=headers
        )
    text = await response.text()
    return response.status, (json.loads(text) if text else None), response.headers


async def test_named_arguments_and_defaults(api: Client) -> None:
    assert (await call(api, "add", {"a": 2, "b": 3}))[:2] == (200, 5)
    assert (await call(api, "add", {"a": 2}))[:2] == (200, 3)
    assert (await call(api, "add", get="a=40&b=2"))[:2] == (200, 42)


async def test_set_returning_function_takes_filters_order_and_limit(api: Client) -> None:
    status, body, headers = await call(
        api, "films_after", get="y=1960&select=id,title&order=year.desc&limit=2"
    )
    assert status == 200
    assert body == [{"id": 1, "title": "The Shining"}, {"id": 3, "title": "Barry Lyndon"}]
    assert headers["Content-Range"] == "0-1/*"
    _, filtered, _ = await call(api, "films_after?select=id&title=like.*Cleo*", {"y": 1900})
    assert filtered == [{"id": 2}]
    _, embedded, _ = await call(api, "films_after", get="y=1979&select=title,directors(last_name)")
    assert embedded == [{"title": "The Shining", "directors": {"last_name": "Kubrick"}}]


async def test_result_shapes(api: Client) -> None:
    assert (await call(api, "first_film?select=id,title", {}))[1] == {"id": 1, "title": "The Shining"}
    assert (await call(api, "titles", {}))[1][:2] == ["The Shining", "Cleo from 5 to 7"]
    assert (await call(api, "echo", {"any": ["json", 1]}))[1] == {"any": ["json", 1]}
    assert (await call(api, "sum_all", {"nums": [1, 2, 3]}))[1] == 6
    assert (await call(api, "sum_all", get="nums={4,5}"))[1] == 9


async def test_void_is_204_and_volatile_functions_write_only_on_post(api: Client) -> None:
    status, body, _ = await call(api, "touch", {"note": "hello"})
    assert (status, body) == (204, None)
    status, body, _ = await call(api, "touch", get="note=sneaky")
    assert status == 405  # GET runs READ ONLY: 25006
    assert body["code"] == "25006"


async def test_functions_set_status_and_headers(api: Client) -> None:
    status, body, headers = await call(api, "teapot", {})
    assert (status, body, headers["X-Brew"]) == (418, "short and stout", "earl grey")


async def test_errors(api: Client) -> None:
    status, body, _ = await call(api, "nope", {"x": 1})
    assert (status, body["code"]) == (404, "PGRST202")
    status, body, _ = await call(api, "add", {"c": 1})
    assert (status, body["code"]) == (404, "PGRST202")
    status, body, _ = await call(api, "amb", {"a": 1})
    assert (status, body["code"]) == (300, "PGRST203")
    status, body, _ = await call(api, "pay", {})
    assert (status, body["message"]) == (402, "Payment Required")
    status, body, _ = await call(api, "refuse", {})
    assert (status, body) == (
        400,
        {"code": "P0001", "message": "nope", "details": "no way", "hint": "try later"},
    )


async def test_rpc_cannot_reach_internal_functions(api: Client) -> None:
    for fn in ("uid", "sign_up", "check_password", "crypt", "gen_salt", "notify_schema_reload"):
        status, body, _ = await call(api, fn, {}, headers=SERVICE)
        assert (status, body["code"]) == (404, "PGRST202"), fn


async def test_rls_applies_inside_functions(api: Client) -> None:
    await api.post("/rest/v1/todos", json={"title": "a-rpc"}, headers=user(ALICE))
    await api.post("/rest/v1/todos", json={"title": "b-rpc"}, headers=user(BOB))
    _, mine, _ = await call(api, "my_todos?select=title&title=like.*rpc", {}, headers=user(ALICE))
    assert mine == [{"title": "a-rpc"}]
