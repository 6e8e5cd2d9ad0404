"""The dashboard's app as Fluxbase serves it (pages, assets, headers); its setup status; metrics history."""

from __future__ import annotations

import gzip
from pathlib import Path

import pytest

from dashboard_support import bearer, create_admin, login
from fluxbase import dashboard_ui

INDEX = (
    '<!doctype html><html><head><script type="module" src="/dashboard/assets/index-abc123.js"></script>'
    '</head><body><div id="root"></div></body></html>'
)


@pytest.fixture
def built(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A build of the app's shape (index.html and a hashed asset), without needing Node here."""
    (tmp_path / "assets").mkdir()
    (tmp_path / "index.html").write_text(INDEX)
    (tmp_path / "assets" / "index-abc123.js").write_text("console.log('app')")
    (tmp_path / "assets" / "index-abc123.js.gz").write_bytes(gzip.compress(b"console.log('app')"))
    (tmp_path / "assets" / "index-abc123.css").write_text("body{}")
    monkeypatch.setattr(dashboard_ui, "STATIC", tmp_path)
    return tmp_path


async def test_client_routes_get_the_page_with_a_strict_policy(dashboard_app, built) -> None:
    client = await dashboard_app()
    response = await client.get("/dashboard", allow_redirects=False)
    assert response.status == 308 and response.headers["Location"] == "/dashboard/"
    for path in ("/dashboard/", "/dashboard/tables", "/dashboard/reset-password?token=x", "/dashboard/a/b/c"):
        response = await client.get(path)
        assert response.status == 200, path
        assert response.headers["Content-Type"] == "text/html; charset=utf-8"
        assert await response.text() == INDEX
        assert response.headers["Cache-Control"] == "no-cache"
        policy = response.headers["Content-Security-Policy"]
        assert "script-src 'self';" in policy and "style-src 'self';" in policy
        assert "unsafe-inline" not in policy and "unsafe-eval" not in policy
        assert "frame-ancestors 'none'" in policy and "default-src 'none'" in policy
        assert response.headers["X-Content-Type-Options"] == "nosniff"
        assert response.headers["X-Frame-Options"] == "DENY"


async def test_hashed_assets_are_cached_for_a_year(dashboard_app, built) -> None:
    client = await dashboard_app()
    response = await client.get("/dashboard/assets/index-abc123.js", headers={"Accept-Encoding": "identity"})
    assert response.status == 200
    assert response.headers["Content-Type"] == "text/javascript"
    assert response.headers["Cache-Control"] == "public, max-age=31536000, immutable"
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    assert "Content-Encoding" not in response.headers
    assert (await client.get("/dashboard/assets/index-abc123.css")).headers["Content-Type"] == "text/css"
    # The build's gzip twin, for a browser that takes it.
    response = await client.get("/dashboard/assets/index-abc123.js", headers={"Accept-Encoding": "gzip"})
    assert response.headers["Content-Encoding"] == "gzip"
    assert response.headers["Content-Type"] == "text/javascript"
    assert await response.read() == b"console.log('app')"
    for path in (
        "/dashboard/assets/missing.js",
        "/dashboard/assets/..%2Findex.html",
        "/dashboard/assets/.hidden",
    ):
        response = await client.get(path)
        assert response.status == 404, path
        assert (await response.json())["code"] == "not_found"


async def test_the_dashboard_api_is_never_answered_with_the_page(dashboard_app, built) -> None:
    client = await dashboard_app()
    for path in ("/dashboard/auth", "/dashboard/auth/login", "/dashboard/auth/nope"):
        response = await client.get(path)
        assert response.status in (404, 405), path
        assert response.headers["Content-Type"].startswith("application/json"), path


async def test_an_unbuilt_dashboard_says_how_to_build_it(
    dashboard_app, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(dashboard_ui, "STATIC", tmp_path / "absent")
    client = await dashboard_app()
    response = await client.get("/dashboard/")
    assert response.status == 503
    body = await response.json()
    assert body["code"] == "dashboard_not_built" and "make ui" in body["hint"]


async def test_setup_status_follows_the_first_administrator(dashboard_app, postgres) -> None:
    from fluxbase.db.migrate import Migrator
    from harness import AUTHENTICATOR_PASSWORD

    dsn = postgres.create_database("setup")
    try:
        Migrator(dsn, authenticator_password=AUTHENTICATOR_PASSWORD).up()
        client = await dashboard_app(dsn=dsn)
        response = await client.get("/dashboard/auth/setup")
        assert response.status == 200
        assert await response.json() == {"setup_required": True}
        create_admin(dsn, "first@example.com")
        assert await (await client.get("/dashboard/auth/setup")).json() == {"setup_required": False}
        await client.close()
    finally:
        postgres.drop_database(dsn)


async def test_metrics_history_is_for_administrators(dashboard_app, dashboard_dsn) -> None:
    client = await dashboard_app()
    assert (await client.get("/api/v1/admin/metrics")).status == 401
    create_admin(dashboard_dsn, "metrics@example.com")
    token = (await login(client, "metrics@example.com"))["access_token"]
    for _ in range(3):
        assert (await client.get("/health")).status == 200
    response = await client.get("/api/v1/admin/metrics", headers=bearer(token))
    assert response.status == 200, await response.text()
    body = await response.json()
    assert body["interval_seconds"] == 10 and body["window_seconds"] == 3600
    last = body["points"][-1]
    assert set(last) >= {
        "at",
        "requests_per_second",
        "errors_per_second",
        "p50_ms",
        "p95_ms",
        "p99_ms",
        "db_connections_in_use",
        "db_connections_idle",
        "realtime_connections",
    }
    # The health checks and the login since the first sample are counted.
    assert last["requests"] >= 4
    assert last["p50_ms"] is not None and last["p50_ms"] >= 0
