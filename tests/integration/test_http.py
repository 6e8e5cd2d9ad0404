"""The HTTP core in-process: ops endpoints, request ids, headers, errors, limits, CSRF."""

from __future__ import annotations

import asyncio
import dataclasses
import re
from collections.abc import AsyncIterator, Callable

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from fluxbase.app import DATABASE, Runtime, build_app
from fluxbase.config import Config, CsrfConfig, RateLimitConfig, SecurityConfig, ServerConfig
from fluxbase.db.migrate import Migrator
from fluxbase.db.transaction import RequestContext
from harness import AUTHENTICATOR_PASSWORD, make_config

METRIC_NAMES = (
    "fluxbase_http_requests_total",
    "fluxbase_http_request_duration_seconds",
    "fluxbase_db_queries_total",
    "fluxbase_db_query_duration_seconds",
    "fluxbase_db_connections",
    "fluxbase_realtime_connections",
    "fluxbase_auth_attempts_total",
    "fluxbase_rate_limit_hits_total",
    "fluxbase_system_uptime_seconds",
)

Client = TestClient  # type: ignore[type-arg]


async def start(config: Config, extra_routes: Callable[[web.Application], None] | None = None) -> Client:
    app = build_app(config, Runtime(config.database.url or "", AUTHENTICATOR_PASSWORD))
    if extra_routes:
        extra_routes(app)
    client = TestClient(TestServer(app))
    await client.start_server()
    return client


@pytest.fixture
async def custom() -> AsyncIterator[Callable[..., object]]:
    """Starts apps with a configuration of the test's choosing; closes them afterwards."""
    clients: list[Client] = []

    async def factory(
        config: Config, extra_routes: Callable[[web.Application], None] | None = None
    ) -> Client:
        client = await start(config, extra_routes)
        clients.append(client)
        return client

    yield factory
    for client in clients:
        await client.close()


async def test_health_is_ok_with_security_headers(client: Client) -> None:
    response = await client.get("/health")
    assert response.status == 200
    assert await response.json() == {"status": "ok"}
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    assert response.headers["X-Frame-Options"] == "DENY"
    assert response.headers["Referrer-Policy"] == "no-referrer"
    assert "default-src 'none'" in response.headers["Content-Security-Policy"]
    assert response.headers["Server"] == "Fluxbase"
    assert "Strict-Transport-Security" not in response.headers  # plain-http base URL


async def test_hsts_when_the_public_url_is_https(custom: Callable[..., object], migrated_dsn: str) -> None:
    config = make_config(migrated_dsn, server=ServerConfig(base_url="https://api.example.org"))
    client: Client = await custom(config)  # type: ignore[misc]
    response = await client.get("/health")
    assert response.headers["Strict-Transport-Security"].startswith("max-age=")


async def test_ready_with_a_migrated_database(client: Client) -> None:
    response = await client.get("/ready")
    assert response.status == 200
    assert await response.json() == {"status": "ready", "database": "ok", "migrations": "current"}


async def test_ready_is_503_while_migrations_are_pending(
    custom: Callable[..., object], fresh_dsn: str
) -> None:
    # The roles exist (another database migrated), but this database has no registry yet.
    client: Client = await custom(make_config(fresh_dsn))  # type: ignore[misc]
    response = await client.get("/ready")
    assert response.status == 503
    body = await response.json()
    assert body["status"] == "not_ready"
    assert body["database"] == "ok"
    assert body["migrations"] == "pending"
    Migrator(fresh_dsn, authenticator_password=AUTHENTICATOR_PASSWORD).up()
    assert (await client.get("/ready")).status == 200


async def test_request_id_is_generated_or_honoured(client: Client) -> None:
    generated = (await client.get("/health")).headers["X-Request-ID"]
    assert re.fullmatch(r"[0-9a-f]{32}", generated)
    assert (await client.get("/health", headers={"X-Request-ID": "abc-123"})).headers[
        "X-Request-ID"
    ] == "abc-123"
    hostile = await client.get("/health", headers={"X-Request-ID": 'a b\\"{}'})
    assert re.fullmatch(r"[0-9a-f]{32}", hostile.headers["X-Request-ID"])


async def test_metrics_exposes_the_runbook_names(client: Client) -> None:
    await client.get("/health")
    response = await client.get("/metrics")
    assert response.status == 200
    assert response.headers["Content-Type"].startswith("text/plain")
    text = await response.text()
    for name in METRIC_NAMES:
        assert f"# TYPE {name} " in text, name
    assert re.search(r'fluxbase_http_requests_total\{method="GET",path="/health",status="200"\} [1-9]', text)
    assert re.search(r"^fluxbase_system_uptime_seconds [0-9.e+]+$", text, re.M)


async def test_unknown_path_is_a_json_404(client: Client) -> None:
    response = await client.get("/no/such/thing")
    assert response.status == 404
    assert await response.json() == {
        "code": "not_found",
        "message": "No such endpoint",
        "details": None,
        "hint": None,
    }
    assert response.headers["X-Content-Type-Options"] == "nosniff"


async def test_wrong_method_is_a_json_405_with_allow(client: Client) -> None:
    response = await client.delete("/health")
    assert response.status == 405
    assert (await response.json())["code"] == "method_not_allowed"
    assert "GET" in response.headers["Allow"]


def _routes(app: web.Application) -> None:
    async def echo(request: web.Request) -> web.Response:
        return web.Response(body=await request.read())

    async def explode(request: web.Request) -> web.Response:
        raise RuntimeError("secret internals: password=hunter2")

    async def hold(request: web.Request) -> web.Response:
        async with request.app[DATABASE].transaction(RequestContext("anon"), read_only=True) as tx:
            await tx.execute("select pg_sleep(0.5)")
        return web.Response(text="done")

    async def who(request: web.Request) -> web.Response:
        async with request.app[DATABASE].transaction(RequestContext("anon"), read_only=True) as tx:
            return web.Response(text=await tx.fetchval("select current_user"))

    app.router.add_post("/test/echo", echo)
    app.router.add_get("/test/explode", explode)
    app.router.add_get("/test/hold", hold)
    app.router.add_get("/test/who", who)


async def test_body_over_the_limit_is_a_json_413(custom: Callable[..., object], migrated_dsn: str) -> None:
    config = make_config(migrated_dsn, server=ServerConfig(body_limit=1024))
    client: Client = await custom(config, _routes)  # type: ignore[misc]
    assert (await client.post("/test/echo", data=b"x" * 1000)).status == 200
    response = await client.post("/test/echo", data=b"x" * 5000)
    assert response.status == 413
    assert (await response.json())["code"] == "payload_too_large"


async def test_unexpected_error_is_a_500_that_reveals_nothing(
    custom: Callable[..., object], config: Config
) -> None:
    client: Client = await custom(config, _routes)  # type: ignore[misc]
    response = await client.get("/test/explode")
    assert response.status == 500
    body = await response.text()
    assert "hunter2" not in body and "RuntimeError" not in body
    assert (await response.json())["code"] == "internal_error"


async def test_handlers_query_as_the_api_role(custom: Callable[..., object], config: Config) -> None:
    client: Client = await custom(config, _routes)  # type: ignore[misc]
    assert await (await client.get("/test/who")).text() == "anon"


async def test_busy_pool_answers_503_fast(custom: Callable[..., object], migrated_dsn: str) -> None:
    config = make_config(migrated_dsn)
    config = dataclasses.replace(
        config, database=dataclasses.replace(config.database, max_connections=1, acquire_timeout=0.1)
    )
    client: Client = await custom(config, _routes)  # type: ignore[misc]
    holder = asyncio.create_task(client.get("/test/hold"))
    await asyncio.sleep(0.2)
    response = await client.get("/test/who")
    assert response.status == 503
    assert (await response.json())["code"] == "pool_busy"
    assert response.headers["Retry-After"] == "1"
    assert (await holder).status == 200


async def test_rate_limit_per_ip_with_retry_after(custom: Callable[..., object], migrated_dsn: str) -> None:
    config = make_config(
        migrated_dsn, security=SecurityConfig(rate_limit=RateLimitConfig(enabled=True, requests_per_minute=3))
    )
    client: Client = await custom(config)  # type: ignore[misc]
    statuses = [(await client.get("/nothing-here")).status for _ in range(3)]
    assert statuses == [404, 404, 404]
    refused = await client.get("/nothing-here")
    assert refused.status == 429
    assert (await refused.json())["code"] == "rate_limited"
    assert 1 <= int(refused.headers["Retry-After"]) <= 60
    # Probes are never limited.
    assert (await client.get("/health")).status == 200
    metrics_text = await (await client.get("/metrics")).text()
    assert re.search(r'fluxbase_rate_limit_hits_total\{tier="ip"\} [1-9]', metrics_text)


async def test_csrf_when_enabled(custom: Callable[..., object], migrated_dsn: str) -> None:
    config = make_config(
        migrated_dsn,
        security=SecurityConfig(
            rate_limit=RateLimitConfig(enabled=False), csrf=CsrfConfig(enabled=True, cookie_secure=False)
        ),
    )
    client: Client = await custom(config, _routes)  # type: ignore[misc]
    first = await client.get("/health")
    token = first.cookies["fluxbase_csrf"].value
    assert first.cookies["fluxbase_csrf"]["samesite"] == "Strict"
    refused = await client.post("/test/echo", data=b"x")
    assert refused.status == 403
    assert (await refused.json())["code"] == "csrf_failed"
    wrong = await client.post("/test/echo", data=b"x", headers={"X-CSRF-Token": "guess"})
    assert wrong.status == 403
    assert (await client.post("/test/echo", data=b"x", headers={"X-CSRF-Token": token})).status == 200
    # Credentials in a header cannot be sent cross-site by a browser: no token needed.
    client.session.cookie_jar.clear()
    assert (await client.post("/test/echo", data=b"x", headers={"Authorization": "Bearer t"})).status == 200


async def test_cors_only_for_allowed_origins(custom: Callable[..., object], migrated_dsn: str) -> None:
    from fluxbase.config import CorsConfig

    config = make_config(
        migrated_dsn,
        security=SecurityConfig(
            rate_limit=RateLimitConfig(enabled=False), cors=CorsConfig(("https://good.example",))
        ),
    )
    client: Client = await custom(config)  # type: ignore[misc]
    good = await client.get("/health", headers={"Origin": "https://good.example"})
    assert good.headers["Access-Control-Allow-Origin"] == "https://good.example"
    evil = await client.get("/health", headers={"Origin": "https://evil.example"})
    assert "Access-Control-Allow-Origin" not in evil.headers


async def test_metric_labels_stay_bounded_whatever_the_method(client: Client) -> None:
    # aiohttp refuses made-up methods itself (400); these it passes on to the application.
    for method in ("TRACE", "PROPFIND", "MKCOL", "LOCK", "UNLOCK"):
        await client.request(method, "/no-such-path")
    text = await (await client.get("/metrics")).text()
    assert "PROPFIND" not in text
    counted = re.search(
        r'fluxbase_http_requests_total\{method="OTHER",path="unmatched",status="404"\} (\S+)', text
    )
    assert counted is not None and float(counted.group(1)) >= 5
