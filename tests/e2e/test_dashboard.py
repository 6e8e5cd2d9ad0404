"""The dashboard in a real browser: Debian's chromium (Playwright) against a real `fluxbase serve`.

One administrator's first session, page by page, in order: first-admin setup,
2FA with pyotp codes, a table made by SQL, a policy, a row inserted in the
table editor that an app user then reads over /rest/v1 and that the realtime
inspector shows arriving, an API key created and revoked, a file uploaded and
downloaded (when storage is served).  Every page is screenshotted (light and
dark) into the run's output folder and checked with axe-core: no serious or
critical violation.
"""

from __future__ import annotations

import json
import os
import re
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pyotp
import pytest

from fluxbase.db.migrate import Migrator
from fluxbase.security.api_keys import api_key
from harness import (
    AUTHENTICATOR_PASSWORD,
    JWT_SECRET,
    ROOT,
    PostgresServer,
    ServerProcess,
    server_env,
    start_server,
)

pytestmark = pytest.mark.process

CHROMIUM = Path("/usr/bin/chromium")
AXE = ROOT / "tests" / "e2e" / "node_modules" / "axe-core" / "axe.min.js"
BUILD = ROOT / "server" / "fluxbase" / "dashboard_ui" / "static" / "index.html"
CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
ADMIN_EMAIL = "admin@example.com"
ADMIN_PASSWORD = "SecurePassword123!"
APP_USER = "reader@example.com"
APP_PASSWORD = "reader-password-1"
ANON = api_key(JWT_SECRET, "anon")
TIMEOUT_MS = 15_000
# axe-core's serious and critical findings, one line each.
AXE_RUN = """async () => {
    const result = await axe.run(document, {resultTypes: ['violations']});
    return result.violations
      .filter(v => v.impact === 'serious' || v.impact === 'critical')
      .map(v => `${v.impact} ${v.id}: ${v.help} `
                + `(${v.nodes.map(n => n.target.join(' ')).slice(0, 3).join('; ')})`);
}"""
RESTORE_THEME = """() => {
    document.documentElement.dataset.theme = localStorage.getItem('fluxbase.theme') || 'light';
}"""

sync_api = pytest.importorskip("playwright.sync_api")


def output_dir() -> Path:
    """The run's output folder: FLUXBASE_TEST_OUTPUT, or test-output/ in the repository (ignored by git)."""
    base = Path(os.environ.get("FLUXBASE_TEST_OUTPUT", ROOT / "test-output"))
    folder = base / "dashboard" / time.strftime("%Y%m%d-%H%M%S")
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def http(method: str, url: str, headers: dict[str, str] | None = None, body: Any = None) -> tuple[int, Any]:
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(url, data=data, method=method, headers=headers or {})
    if data is not None:
        request.add_header("Content-Type", "application/json")
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            raw = response.read()
            return response.status, json.loads(raw) if raw else None
    except urllib.error.HTTPError as error:
        raw = error.read()
        try:
            return error.code, json.loads(raw)
        except ValueError:
            return error.code, raw.decode(errors="replace")


@dataclass
class Dashboard:
    server: ServerProcess
    page: Any
    context: Any
    out: Path
    totp: pyotp.TOTP | None = None
    shots: list[str] = field(default_factory=list)
    violations: dict[str, list[str]] = field(default_factory=dict)

    @property
    def url(self) -> str:
        return self.server.url + "/dashboard"

    def go(self, title: str) -> None:
        """Follows the sidebar link, as a person would."""
        sidebar = self.page.get_by_role("navigation", name="Dashboard")
        sidebar.get_by_role("link", name=title, exact=True).click()
        self.page.get_by_role("heading", level=1, name=title).wait_for()

    def check(self, name: str, page: Any = None) -> None:
        """A screenshot of the page in each theme, and axe-core's findings in each."""
        page = page or self.page
        page.wait_for_load_state("networkidle")
        for theme in ("light", "dark"):
            page.evaluate("t => { document.documentElement.dataset.theme = t }", theme)
            path = self.out / f"{len(self.shots):02d}-{name}-{theme}.png"
            page.screenshot(path=str(path), full_page=True)
            self.shots.append(path.name)
            if not page.evaluate("() => typeof window.axe !== 'undefined'"):
                page.evaluate(AXE.read_text())
            found = page.evaluate(AXE_RUN)
            if found:
                self.violations[f"{name} ({theme})"] = found
        page.evaluate(RESTORE_THEME)


@pytest.fixture(scope="module")
def dashboard_server(postgres: PostgresServer) -> Iterator[ServerProcess]:
    if not CHROMIUM.exists():
        pytest.fail("no /usr/bin/chromium: run `bash deploy/scripts/system-deps.sh e2e` (make test does)")
    if not BUILD.exists() or not AXE.exists():
        pytest.fail("the dashboard is not built or axe-core is missing: `make e2e-deps` (make test runs it)")
    dsn = postgres.create_database("e2e")
    Migrator(dsn, authenticator_password=AUTHENTICATOR_PASSWORD).up()
    # With the opt-in CSRF check on as well: the app sends the token on every change.
    env = server_env(
        dsn,
        FLUXBASE_DASHBOARD_BCRYPT_COST="10",
        FLUXBASE_SECURITY_CSRF_ENABLED="true",
        FLUXBASE_SECURITY_CSRF_COOKIE_SECURE="false",
        FLUXBASE_AUTH_LOCAL_MAILBOX="true",
    )
    server = start_server(env)
    yield server
    server.terminate()
    postgres.drop_database(dsn)


@pytest.fixture(scope="module")
def ui(dashboard_server: ServerProcess) -> Iterator[Dashboard]:
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=str(CHROMIUM), args=CHROMIUM_FLAGS, headless=True
        )
        context = browser.new_context(viewport={"width": 1280, "height": 860}, accept_downloads=True)
        context.set_default_timeout(TIMEOUT_MS)
        page = context.new_page()
        errors: list[str] = []
        page.on("pageerror", lambda error: errors.append(str(error)))
        page.on(
            "console",
            lambda m: errors.append(m.text) if "Content Security Policy" in m.text else None,
        )
        dashboard = Dashboard(dashboard_server, page, context, output_dir())
        yield dashboard
        page.screenshot(path=str(dashboard.out / "last.png"), full_page=True)  # where a failure stopped
        print(f"\nscreenshots: {dashboard.out}")
        context.close()
        browser.close()
        assert not errors, f"script errors or CSP refusals in the page: {errors}"


def test_first_admin_setup(ui: Dashboard) -> None:
    page = ui.page
    page.goto(ui.url + "/")
    page.get_by_role("heading", name="Create the first administrator").wait_for()
    ui.check("setup")
    page.get_by_label("Full name").fill("Admin User")
    page.get_by_label("Email").fill(ADMIN_EMAIL)
    page.get_by_label("Password", exact=True).fill(ADMIN_PASSWORD)
    page.get_by_label("Repeat the password").fill(ADMIN_PASSWORD)
    page.get_by_role("button", name="Create administrator").click()
    page.get_by_role("heading", level=1, name="Overview").wait_for()
    # The runbook's curl is now refused: there is an administrator.
    status, body = http(
        "POST",
        ui.server.url + "/dashboard/auth/signup",
        body={"email": "second@example.com", "password": ADMIN_PASSWORD, "full_name": "Second"},
    )
    assert status == 403, body


def test_enable_2fa_then_sign_in_with_a_code(ui: Dashboard) -> None:
    page = ui.page
    ui.go("Account")
    page.get_by_role("button", name="Set up 2FA").click()
    qr = page.get_by_role("img", name=re.compile("QR code"))
    qr.wait_for()
    assert (qr.get_attribute("src") or "").startswith("data:image/svg+xml")
    ui.totp = pyotp.TOTP(page.get_by_test_id("totp-secret").inner_text().strip())
    page.get_by_label("Code from the app").fill("000000" if ui.totp.now() != "000000" else "111111")
    page.get_by_role("button", name="Enable 2FA").click()
    page.get_by_role("alert").wait_for()  # a wrong code: the server's message shows
    page.get_by_label("Code from the app").fill(ui.totp.now())
    page.get_by_role("button", name="Enable 2FA").click()
    codes = page.get_by_test_id("backup-codes").get_by_role("listitem")
    codes.first.wait_for()
    assert codes.count() == 10
    ui.check("account-2fa-backup-codes")
    page.get_by_role("button", name="I have saved them").click()
    page.get_by_text("Two-factor authentication is on").wait_for()

    page.get_by_role("button", name="Sign out").click()
    page.get_by_role("heading", name="Sign in to Fluxbase").wait_for()
    ui.check("login")
    page.get_by_label("Email").fill(ADMIN_EMAIL)
    page.get_by_label("Password").fill("not the password")
    page.get_by_role("button", name="Sign in").click()
    page.get_by_role("alert").wait_for()
    # By keyboard alone: Tab between the fields, Enter submits.
    page.get_by_label("Email").focus()
    page.keyboard.press("Tab")
    page.keyboard.type(ADMIN_PASSWORD)
    page.keyboard.press("Enter")
    page.get_by_role("heading", name="Two-factor authentication").wait_for()
    assert page.evaluate("document.activeElement.name") == "code"  # focus waits in the code field
    ui.check("2fa-challenge")
    # The enabling code's time step is spent; the next step's code is within the accepted drift.
    page.keyboard.type(ui.totp.at(time.time() + 30))
    page.keyboard.press("Enter")
    page.get_by_role("heading", level=1, name="Overview").wait_for()


def test_overview_draws_charts(ui: Dashboard) -> None:
    page = ui.page
    charts = page.get_by_test_id("overview-charts")
    charts.wait_for()
    # The local mailbox is on in this run: the sidebar links to it.
    mailbox = page.get_by_role("link", name="Mailbox (development) ↗")
    assert mailbox.get_attribute("href") == "/_dev/mailbox"
    titles = [f.inner_text() for f in charts.locator("figcaption").all()]
    assert [t.split(" (")[0] for t in titles] == [
        "Requests",
        "Latency",
        "Database connections",
        "Realtime connections",
    ]
    # The server's own traffic so far (this very session's calls) is on the requests chart.
    requests = charts.locator("figure").first.locator("desc").text_content() or ""
    assert re.search(r"latest: requests \d", requests), requests
    ui.check("overview")


def run_sql(ui: Dashboard, sql: str, tag: str) -> None:
    """Runs one statement and waits for its command tag in the result line."""
    page = ui.page
    page.get_by_label("SQL", exact=True).fill(sql)
    page.get_by_role("button", name="Run", exact=True).click()
    page.get_by_role("status").filter(has_text=re.compile(rf"^{tag} · \d+ rows? ·")).wait_for()


def test_sql_editor_creates_a_table(ui: Dashboard) -> None:
    page = ui.page
    ui.go("SQL editor")
    page.get_by_label("SQL", exact=True).fill("select * from public.nonexistent")
    page.get_by_role("button", name="Run", exact=True).click()
    assert "nonexistent" in page.get_by_role("alert").inner_text()
    run_sql(
        ui,
        "create table public.notes (id bigint generated always as identity primary key,"
        " body text not null, done boolean not null default false,"
        " created_at timestamptz not null default now())",
        "CREATE TABLE",
    )
    run_sql(ui, "grant select, insert, update, delete on public.notes to authenticated", "GRANT")
    run_sql(
        ui,
        "create table public.comments (id bigint generated always as identity primary key,"
        " note_id bigint not null references public.notes (id), text text not null)",
        "CREATE TABLE",
    )
    run_sql(ui, "select 1 as one, 'two' as two", "SELECT 1")
    grid = page.get_by_role("region", name="Query results")
    assert "two" in grid.inner_text()
    page.get_by_label("Snippet name").fill("one and two")
    page.get_by_role("button", name="Save current SQL").click()
    page.get_by_role("button", name="one and two", exact=True).wait_for()
    ui.check("sql-editor")


def test_policies_enable_rls_and_add_a_policy(ui: Dashboard) -> None:
    page = ui.page
    ui.go("Policies")
    page.get_by_label("Table").select_option("public.notes")
    page.get_by_text("RLS is off").wait_for()
    advisor = page.get_by_role("region", name="Security advisor")
    advisor.get_by_text("Row level security is off").first.wait_for()
    assert "public.notes" in advisor.inner_text()
    page.get_by_role("button", name="Enable RLS").click()
    page.get_by_text("RLS is on").wait_for()
    page.get_by_label("Policy name").fill("signed-in users read notes")
    page.get_by_label("Command").select_option("select")
    page.get_by_label("Roles (comma-separated)").fill("authenticated")
    page.get_by_label("using (which rows it sees)").fill("true")
    page.get_by_role("button", name="Show SQL").click()
    sql = page.get_by_test_id("policy-sql").inner_text()
    assert sql == (
        'create policy "signed-in users read notes" on "public"."notes" as permissive'
        ' for select to "authenticated" using (true)'
    )
    page.get_by_role("button", name="Create policy").click()
    page.get_by_text("signed-in users read notes", exact=True).wait_for()
    for name, using in (("users insert notes", "true"),):
        page.get_by_label("Policy name").fill(name)
        page.get_by_label("Command").select_option("insert")
        page.get_by_label("using (which rows it sees)").fill("")
        page.get_by_label("with check (which rows it may write)").fill(using)
        page.get_by_role("button", name="Show SQL").click()
        page.get_by_role("button", name="Create policy").click()
        page.get_by_text(name, exact=True).wait_for()
    ui.check("policies")
    # Dropping asks first, showing the statement.
    card = page.get_by_role("listitem").filter(has_text="users insert notes")
    card.get_by_role("button", name="Drop").click()
    confirm = page.get_by_role("dialog", name="Drop policy users insert notes?")
    assert confirm.locator("pre").inner_text() == 'drop policy "users insert notes" on "public"."notes"'
    confirm.get_by_role("button", name="Drop policy").click()
    page.get_by_text("users insert notes", exact=True).wait_for(state="detached")


def test_realtime_inspector_and_table_editor(ui: Dashboard) -> None:
    page = ui.page
    ui.go("Realtime")
    page.get_by_role("button", name="Enable realtime for public.notes").click()
    page.get_by_role("button", name="Disable realtime for public.notes").wait_for()

    # The inspector in a second tab watches while the first inserts in the table editor.
    watcher = ui.context.new_page()
    watcher.goto(ui.url + "/realtime")
    watcher.get_by_label("Watch table").select_option("public.notes")
    watcher.get_by_test_id("realtime-status").filter(has_text="listening").wait_for()

    ui.go("Table editor")
    page.get_by_role("button", name=re.compile("^notes")).click()
    page.get_by_role("region", name="Rows of public.notes").wait_for()
    page.get_by_role("button", name="Insert row").click()
    dialog = page.get_by_role("dialog", name="Insert row")
    dialog.get_by_label("body").fill("written in the table editor")
    dialog.get_by_label("done").select_option("true")
    ui.check("table-editor-insert")
    dialog.get_by_role("button", name="Insert").click()
    page.get_by_role("status").filter(has_text="Row inserted").wait_for()
    grid = page.get_by_role("region", name="Rows of public.notes")
    grid.get_by_text("written in the table editor").wait_for()

    # Sort, filter and edit go through /rest/v1 as well.
    page.get_by_role("button", name="Insert row").click()
    dialog = page.get_by_role("dialog", name="Insert row")
    dialog.get_by_label("body").fill("a second note")
    dialog.get_by_role("button", name="Insert").click()
    grid.get_by_text("a second note").wait_for()
    page.get_by_role("button", name="body", exact=True).click()
    page.get_by_role("button", name="body ▲").wait_for()
    sync_api.expect(grid.locator("tbody tr").first).to_contain_text("a second note")
    page.get_by_role("button", name="body ▲").click()
    sync_api.expect(grid.locator("tbody tr").first).to_contain_text("written in the table editor")
    page.get_by_role("form", name="Filter rows").get_by_label("Column").select_option("done")
    page.get_by_role("form", name="Filter rows").get_by_label("Value").fill("true")
    page.get_by_role("button", name="Add filter").click()
    page.get_by_role("button", name="Remove filter done eq true").wait_for()
    grid.get_by_text("a second note").wait_for(state="detached")
    assert "written in the table editor" in grid.inner_text()
    ui.check("table-editor")

    # Edit and delete name the row by its primary key.
    page.get_by_role("button", name="Remove filter done eq true").click()
    row = grid.locator("tbody tr").filter(has_text="a second note")
    row.get_by_role("button", name="Edit").click()
    dialog = page.get_by_role("dialog", name="Edit row")
    dialog.get_by_label("body").fill("an edited note")
    dialog.get_by_role("button", name="Save").click()
    grid.get_by_text("an edited note").wait_for()
    grid.locator("tbody tr").filter(has_text="an edited note").get_by_role("button", name="Delete").click()
    page.get_by_role("dialog", name="Delete this row?").get_by_role("button", name="Delete row").click()
    grid.get_by_text("an edited note").wait_for(state="detached")

    # A foreign key leads to the row it references.
    page.get_by_role("button", name=re.compile("^comments")).click()
    page.get_by_role("button", name="Insert row").click()
    dialog = page.get_by_role("dialog", name="Insert row")
    dialog.get_by_label("note_id").fill("1")
    dialog.get_by_label("text", exact=True).fill("a comment on the first note")
    dialog.get_by_role("button", name="Insert").click()
    comments = page.get_by_role("region", name="Rows of public.comments")
    comments.get_by_role("button", name="1: open notes where id = 1").click()
    page.get_by_role("button", name="Remove filter id eq 1").wait_for()
    notes = page.get_by_role("region", name="Rows of public.notes")
    sync_api.expect(notes.locator("tbody tr")).to_have_count(1)
    assert "written in the table editor" in notes.inner_text()

    feed = watcher.get_by_role("region", name="Changes, newest first")
    feed.get_by_text("written in the table editor").wait_for()
    feed.get_by_text("DELETE").wait_for()
    assert "INSERT" in feed.inner_text() and "UPDATE" in feed.inner_text()
    ui.check("realtime-inspector", watcher)
    watcher.close()


def test_app_user_reads_the_row_over_rest(ui: Dashboard) -> None:
    page = ui.page
    ui.go("App users")
    page.get_by_role("button", name="Create user").click()
    dialog = page.get_by_role("dialog", name="Create an app user")
    dialog.get_by_label("Email").fill(APP_USER)
    dialog.get_by_label("Password").fill(APP_PASSWORD)
    dialog.get_by_role("button", name="Create").click()
    page.get_by_role("region", name="Application users").get_by_text(APP_USER).wait_for()
    ui.check("app-users")

    status, session = http(
        "POST",
        ui.server.url + "/auth/v1/token?grant_type=password",
        {"apikey": ANON},
        {"email": APP_USER, "password": APP_PASSWORD},
    )
    assert status == 200, session
    user = {"apikey": ANON, "Authorization": f"Bearer {session['access_token']}"}
    status, rows = http("GET", ui.server.url + "/rest/v1/notes?select=body,done&order=id", user)
    assert status == 200, rows
    assert rows[0] == {"body": "written in the table editor", "done": True}
    # anon has neither a grant nor a policy on notes.
    status, rows = http("GET", ui.server.url + "/rest/v1/notes", {"apikey": ANON})
    assert status in (401, 403), rows

    # Ban (the user's sessions end), search, delete after a confirmation.
    users = page.get_by_role("region", name="Application users")
    users.locator("tbody tr").filter(has_text=APP_USER).get_by_role("button", name="Ban").click()
    page.get_by_role("status").filter(has_text="User banned").wait_for()
    sync_api.expect(users).to_contain_text("banned until")
    refresh = {"refresh_token": session["refresh_token"]}
    status, _ = http(
        "POST", ui.server.url + "/auth/v1/token?grant_type=refresh_token", {"apikey": ANON}, refresh
    )
    assert status in (400, 401, 403)
    page.get_by_label("Search by email").fill("nobody-like-this")
    page.get_by_role("button", name="Search").click()
    sync_api.expect(users).to_contain_text("No rows")
    page.get_by_label("Search by email").fill("reader@")
    page.get_by_role("button", name="Search").click()
    row = users.locator("tbody tr").filter(has_text=APP_USER)
    row.get_by_role("button", name="Delete").click()
    page.get_by_role("dialog", name="Delete this user?").get_by_role("button", name="Delete user").click()
    sync_api.expect(users).to_contain_text("No rows")


def test_api_key_created_shown_once_and_revoked(ui: Dashboard) -> None:
    page = ui.page
    ui.go("API keys")
    page.get_by_role("button", name="Create key").click()
    dialog = page.get_by_role("dialog", name="Create an API key")
    dialog.get_by_label("Name").fill("ci reader")
    dialog.get_by_label("Database role").select_option("service_role")
    dialog.get_by_role("button", name="Create key").click()
    key = page.get_by_test_id("new-api-key").inner_text().strip()
    assert key.startswith("fbk_")
    ui.check("api-key-shown-once")
    page.get_by_role("button", name="Done").click()
    keys = page.get_by_role("region", name="API keys")
    keys.get_by_text("ci reader").wait_for()
    assert key not in page.content()

    status, rows = http("GET", ui.server.url + "/rest/v1/notes?select=body", {"apikey": key})
    assert status == 200 and rows == [{"body": "written in the table editor"}], rows
    status, body = http("POST", ui.server.url + "/rest/v1/notes", {"apikey": key}, {"body": "no write scope"})
    assert status == 403, body

    page.get_by_role("button", name="Revoke ci reader").click()
    confirm = page.get_by_role("dialog", name="Revoke ci reader?")
    confirm.get_by_role("button", name="Revoke key").click()
    page.get_by_role("status").filter(has_text="Revoked ci reader").wait_for()
    ui.check("api-keys")
    deadline = time.monotonic() + 10
    while (status := http("GET", ui.server.url + "/rest/v1/notes", {"apikey": key})[0]) == 200:
        assert time.monotonic() < deadline, "a revoked key still works after 10 s"
        time.sleep(0.2)
    assert status in (401, 403)


def test_storage_upload_and_download(ui: Dashboard, tmp_path: Path) -> None:
    page = ui.page
    if http("GET", ui.server.url + "/storage/v1/bucket", {"apikey": ANON})[0] == 404:
        ui.go("Storage")
        page.get_by_role("alert").wait_for()  # the server's answer, shown
        ui.check("storage-not-served")
        pytest.skip("no /storage/v1 in this build (issue 8 not landed): upload/download not exercised")
    ui.go("Storage")
    page.get_by_role("button", name="New bucket").click()
    dialog = page.get_by_role("dialog", name="New bucket")
    dialog.get_by_label("Bucket name").fill("docs")
    dialog.get_by_role("button", name="Create bucket").click()
    page.get_by_role("button", name="docs private").wait_for()
    source = tmp_path / "hello.txt"
    source.write_bytes(b"hello from the dashboard\n" * 1000)
    page.get_by_label("Upload files").set_input_files(str(source))
    files = page.get_by_role("region", name=re.compile("Files in docs"))
    files.get_by_text("hello.txt").wait_for()
    page.get_by_role("status").filter(has_text="Uploaded 1 file").wait_for()
    with page.expect_download() as download:
        page.get_by_role("button", name="Download hello.txt").click()
    target = tmp_path / "downloaded.txt"
    download.value.save_as(target)
    assert target.read_bytes() == source.read_bytes()
    page.get_by_role("button", name="Signed link for hello.txt").click()
    link = page.get_by_test_id("signed-link").inner_text()
    with urllib.request.urlopen(link, timeout=10) as response:
        assert response.read() == source.read_bytes()
    ui.check("storage")
    page.get_by_role("button", name="Delete hello.txt").click()
    page.get_by_role("dialog", name="Delete hello.txt?").get_by_role("button", name="Delete file").click()
    files.get_by_text("hello.txt").wait_for(state="detached")


def test_activity_settings_and_account(ui: Dashboard) -> None:
    page = ui.page
    ui.go("Activity log")
    page.get_by_label("Action").fill("policy_created")
    page.get_by_role("button", name="Apply filters").click()
    log = page.get_by_role("region", name="Activity, newest first")
    sync_api.expect(log).not_to_contain_text("sql_executed")
    sync_api.expect(log.locator("tbody tr")).to_have_count(2)  # the two policies made above
    assert log.inner_text().count("policy_created") == 2
    ui.check("activity")

    ui.go("Settings")
    page.get_by_text("auth.jwt_secret", exact=True).wait_for()
    assert JWT_SECRET not in page.content()
    ui.check("settings")

    ui.go("Administrators")
    admins = page.get_by_role("region", name="Administrators")
    admins.get_by_text(f"{ADMIN_EMAIL} (you)").wait_for()
    page.get_by_role("button", name="Invite administrator").click()
    dialog = page.get_by_role("dialog", name="Invite an administrator")
    dialog.get_by_label("Email").fill("second@example.com")
    dialog.get_by_role("button", name="Send invitation").click()
    # No SMTP server in this run: the server's reason is shown, nothing is created.
    assert "SMTP" in dialog.get_by_role("alert").inner_text()
    page.keyboard.press("Escape")
    dialog.wait_for(state="detached")
    assert admins.locator("tbody tr").count() == 1
    ui.check("administrators")

    ui.go("Account")
    sessions = page.get_by_role("region", name="Your sessions")
    sessions.get_by_text("(this session)").wait_for()
    assert "password + 2FA" in sessions.inner_text()
    ui.check("account")


def test_no_serious_accessibility_violations(ui: Dashboard) -> None:
    """Collected by every check() above: axe-core's serious and critical findings, per page and theme."""
    assert ui.shots, "no page was checked"
    assert not ui.violations, json.dumps(ui.violations, indent=2)
