"""The real supabase client (supabase-py's auth) against Fluxbase, with mail read from a real SMTP server."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from urllib.parse import parse_qs, urlsplit

import aiohttp
import psycopg
import pytest
from supabase import AsyncClient, AsyncClientOptions, acreate_client
from supabase_auth.errors import AuthApiError, AuthWeakPasswordError

from auth_support import Client, Inbox
from fluxbase.config import AuthRateLimitConfig
from fluxbase.db.migrate import Migrator
from fluxbase.security.api_keys import api_key
from harness import AUTHENTICATOR_PASSWORD, JWT_SECRET, PostgresServer

ANON_KEY = api_key(JWT_SECRET, "anon")
SERVICE_KEY = api_key(JWT_SECRET, "service_role")
SITE = "http://app.test"
PASSWORD = "correct horse battery"
NOTES = """
create table public.notes (id serial primary key, owner uuid not null, body text not null);
alter table public.notes enable row level security;
alter table public.notes force row level security;
create policy own_notes on public.notes for select to authenticated using (owner = auth.uid());
grant select on public.notes to authenticated;
create function public.whoami() returns uuid language sql stable as $$ select auth.uid() $$;
grant execute on function public.whoami() to authenticated;
"""


@pytest.fixture(scope="module")
def notes_dsn(postgres: PostgresServer) -> str:
    dsn = postgres.create_database("authconf")
    Migrator(dsn, authenticator_password=AUTHENTICATOR_PASSWORD).up()
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(NOTES)  # type: ignore[arg-type]
    return dsn


@pytest.fixture
async def fluxbase_url(auth_app: Callable[..., Awaitable[Client]], notes_dsn: str) -> str:
    api = await auth_app(
        dsn=notes_dsn,
        site_url=SITE,
        anonymous_sign_ins=True,
        rate_limit=AuthRateLimitConfig(sign_in_attempts=100),
    )
    return str(api.make_url("")).rstrip("/")


async def client_for(url: str, key: str = ANON_KEY) -> AsyncClient:
    # supabase-py defaults to PKCE; these tests take the implicit flow (session in the link's fragment),
    # test_pkce_magic_link_then_exchange_code_for_session the PKCE one.
    options = AsyncClientOptions(auto_refresh_token=False, persist_session=False, flow_type="implicit")
    return await acreate_client(url, key, options=options)


@pytest.fixture
async def supabase(fluxbase_url: str) -> AsyncIterator[AsyncClient]:
    yield await client_for(fluxbase_url)


async def follow_mail_link(inbox: Inbox, address: str, count: int = 1) -> dict[str, str]:
    """Opens the link in the mail as a browser would; returns what the redirect's fragment carries."""
    link = await inbox.link_for(address, count)
    async with aiohttp.ClientSession() as http, http.get(link, allow_redirects=False) as response:
        assert response.status == 303
        location = response.headers["Location"]
    assert location.startswith(SITE)
    return {k: v[0] for k, v in parse_qs(urlsplit(location).fragment).items()}


def new_email() -> str:
    return f"conf-{uuid.uuid4().hex[:10]}@example.org"


async def test_sign_up_confirm_sign_in_refresh_update_sign_out(
    supabase: AsyncClient, smtp: tuple[Inbox, int], notes_dsn: str
) -> None:
    email = new_email()
    signed_up = await supabase.auth.sign_up({"email": email, "password": PASSWORD})
    assert signed_up.session is None and signed_up.user is not None and signed_up.user.email == email
    with pytest.raises(AuthApiError) as refused:
        await supabase.auth.sign_in_with_password({"email": email, "password": PASSWORD})
    assert refused.value.code == "email_not_confirmed"

    fragment = await follow_mail_link(smtp[0], email)
    assert fragment["type"] == "signup" and fragment["access_token"]
    confirmed = await supabase.auth.set_session(fragment["access_token"], fragment["refresh_token"])
    assert confirmed.user is not None and confirmed.user.email_confirmed_at is not None

    signed_in = await supabase.auth.sign_in_with_password({"email": email, "password": PASSWORD})
    assert signed_in.session is not None and signed_in.user is not None
    user_id = signed_in.user.id

    refreshed = await supabase.auth.refresh_session()
    assert refreshed.session is not None
    assert refreshed.session.refresh_token != signed_in.session.refresh_token

    got = await supabase.auth.get_user()
    assert got is not None and got.user.id == user_id
    updated = await supabase.auth.update_user({"data": {"favourite": "tea"}})
    assert updated.user.user_metadata["favourite"] == "tea"

    # The data API takes the same token: auth.uid() is this user, and RLS shows only their rows.
    with psycopg.connect(notes_dsn, autocommit=True) as conn:
        conn.execute(
            "insert into public.notes (owner, body) values (%s, 'mine'), (%s, 'theirs')",
            (user_id, str(uuid.uuid4())),
        )
    whoami = await supabase.rpc("whoami").execute()
    assert whoami.data == user_id
    notes = await supabase.table("notes").select("owner, body").execute()
    assert notes.data == [{"owner": user_id, "body": "mine"}]

    await supabase.auth.sign_out()
    with pytest.raises(AuthApiError):
        await supabase.auth.refresh_session(refreshed.session.refresh_token)


async def test_recover_password_by_mail(
    supabase: AsyncClient, smtp: tuple[Inbox, int], fluxbase_url: str
) -> None:
    admin = await client_for(fluxbase_url, SERVICE_KEY)
    email = new_email()
    await admin.auth.admin.create_user({"email": email, "password": PASSWORD, "email_confirm": True})

    await supabase.auth.reset_password_for_email(email, {"redirect_to": SITE})
    fragment = await follow_mail_link(smtp[0], email)
    assert fragment["type"] == "recovery"
    await supabase.auth.set_session(fragment["access_token"], fragment["refresh_token"])
    await supabase.auth.update_user({"password": "a brand new password"})
    await supabase.auth.sign_out()

    with pytest.raises(AuthApiError):
        await supabase.auth.sign_in_with_password({"email": email, "password": PASSWORD})
    again = await supabase.auth.sign_in_with_password({"email": email, "password": "a brand new password"})
    assert again.session is not None


async def test_magic_link(supabase: AsyncClient, smtp: tuple[Inbox, int]) -> None:
    email = new_email()
    await supabase.auth.sign_in_with_otp({"email": email, "options": {"should_create_user": True}})
    fragment = await follow_mail_link(smtp[0], email)
    session = await supabase.auth.set_session(fragment["access_token"], fragment["refresh_token"])
    assert session.user is not None and session.user.email == email
    assert session.user.email_confirmed_at is not None


async def test_anonymous_sign_in(supabase: AsyncClient) -> None:
    signed_in = await supabase.auth.sign_in_anonymously()
    assert signed_in.user is not None and signed_in.user.is_anonymous
    whoami = await supabase.rpc("whoami").execute()
    assert whoami.data == signed_in.user.id


async def test_admin_create_and_delete(fluxbase_url: str) -> None:
    admin = await client_for(fluxbase_url, SERVICE_KEY)
    email = new_email()
    created = await admin.auth.admin.create_user(
        {"email": email, "password": PASSWORD, "email_confirm": True, "app_metadata": {"plan": "pro"}}
    )
    assert created.user.email == email and created.user.app_metadata["plan"] == "pro"
    fetched = await admin.auth.admin.get_user_by_id(created.user.id)
    assert fetched.user.id == created.user.id

    user_client = await client_for(fluxbase_url)
    signed_in = await user_client.auth.sign_in_with_password({"email": email, "password": PASSWORD})
    assert signed_in.session is not None

    await admin.auth.admin.delete_user(created.user.id)
    with pytest.raises(AuthApiError):
        await admin.auth.admin.get_user_by_id(created.user.id)
    with pytest.raises(AuthApiError):
        await user_client.auth.sign_in_with_password({"email": email, "password": PASSWORD})


async def test_sign_in_with_an_email_code(supabase: AsyncClient, smtp: tuple[Inbox, int]) -> None:
    email = new_email()
    await supabase.auth.sign_in_with_otp({"email": email})
    code = await smtp[0].code_for(email)
    verified = await supabase.auth.verify_otp({"email": email, "token": code, "type": "email"})
    assert verified.session is not None and verified.user is not None and verified.user.email == email
    got = await supabase.auth.get_user()
    assert got is not None and got.user.id == verified.user.id
    with pytest.raises(AuthApiError) as reused:
        await supabase.auth.verify_otp({"email": email, "token": code, "type": "email"})
    assert reused.value.code == "otp_expired"


async def test_pkce_magic_link_then_exchange_code_for_session(
    fluxbase_url: str, smtp: tuple[Inbox, int]
) -> None:
    client = await acreate_client(
        fluxbase_url,
        ANON_KEY,
        options=AsyncClientOptions(auto_refresh_token=False, persist_session=False, flow_type="pkce"),
    )
    email = new_email()
    await client.auth.sign_in_with_otp({"email": email})
    link = await smtp[0].link_for(email)
    async with aiohttp.ClientSession() as http, http.get(link, allow_redirects=False) as response:
        assert response.status == 303
        location = urlsplit(response.headers["Location"])
    assert f"{location.scheme}://{location.netloc}" == SITE and not location.fragment
    code = parse_qs(location.query)["code"][0]
    exchanged = await client.auth.exchange_code_for_session({"auth_code": code})
    assert exchanged.session is not None and exchanged.user is not None and exchanged.user.email == email
    got = await client.auth.get_user()
    assert got is not None and got.user.id == exchanged.user.id
    with pytest.raises(AuthApiError) as reused:  # the code is single use
        await client.auth.exchange_code_for_session({"auth_code": code, "code_verifier": "v" * 43})
    assert reused.value.code == "flow_state_not_found"


async def test_weak_password_is_an_auth_weak_password_error_with_reasons(supabase: AsyncClient) -> None:
    with pytest.raises(AuthWeakPasswordError) as weak:
        await supabase.auth.sign_up({"email": new_email(), "password": "short"})
    assert weak.value.status == 422 and weak.value.reasons == ["length"]


async def test_get_user_after_the_session_ended_elsewhere_is_session_not_found(fluxbase_url: str) -> None:
    email = new_email()
    admin = await client_for(fluxbase_url, SERVICE_KEY)
    await admin.auth.admin.create_user({"email": email, "password": PASSWORD, "email_confirm": True})
    phone, laptop = await client_for(fluxbase_url), await client_for(fluxbase_url)
    signed_in = await phone.auth.sign_in_with_password({"email": email, "password": PASSWORD})
    assert signed_in.session is not None
    token = signed_in.session.access_token
    assert (await phone.auth.get_user(token)) is not None
    await laptop.auth.sign_in_with_password({"email": email, "password": PASSWORD})
    await laptop.auth.sign_out({"scope": "global"})  # ends the phone's session too
    with pytest.raises(AuthApiError) as ended:
        await phone.auth.get_user(token)
    assert ended.value.status == 403 and ended.value.code == "session_not_found"
    # Signed out by this very server, which refuses the token at once elsewhere: /user still says why.
    signed_in = await phone.auth.sign_in_with_password({"email": email, "password": PASSWORD})
    assert signed_in.session is not None
    token = signed_in.session.access_token
    await phone.auth.sign_out()
    with pytest.raises(AuthApiError) as ended:
        await phone.auth.get_user(token)
    assert ended.value.status == 403 and ended.value.code == "session_not_found"


async def test_list_users_pages_as_gotrue(fluxbase_url: str) -> None:
    admin = await client_for(fluxbase_url, SERVICE_KEY)
    for _ in range(3):
        await admin.auth.admin.create_user({"email": new_email(), "password": PASSWORD})
    first = await admin.auth.admin.list_users(page=1, per_page=2)
    second = await admin.auth.admin.list_users(page=2, per_page=2)
    assert len(first) == 2 and len(second) >= 1
    assert not {user.id for user in first} & {user.id for user in second}
