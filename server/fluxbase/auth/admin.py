"""The administrator's endpoints (service_role): /admin/users and /admin/generate_link."""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Mapping
from urllib.parse import urlencode

import orjson
from aiohttp import web

from fluxbase.auth.accounts import Issued, find_user, issue, sign_up, user_json
from fluxbase.auth.context import AuthContext
from fluxbase.auth.errors import AuthError, bad_request, unprocessable
from fluxbase.auth.mailer import allowed_redirect, verify_link
from fluxbase.auth.request import (
    admin_caller,
    check_password_policy,
    client_ip,
    email_field,
    json_response,
    read_body,
    service,
)
from fluxbase.observability.logging import audit


def _user_id_param(request: web.Request) -> str:
    try:
        return str(uuid.UUID(request.match_info["user_id"]))
    except ValueError as exc:
        raise AuthError(404, "user_not_found", "User not found") from exc


MAX_PER_PAGE = 1000
MAX_PAGE = 1_000_000_000  # page * per_page stays far inside bigint


def _int_param(request: web.Request, name: str, default: int, maximum: int) -> int:
    raw = request.query.get(name)
    if raw is None or raw == "":
        return default
    # isdigit() alone would pass other scripts' digits ("²"), which int() then refuses.
    if not (raw.isascii() and raw.isdigit()) or not 1 <= int(raw) <= maximum:
        raise bad_request(f"{name} must be a whole number from 1 to {maximum}")
    return int(raw)


def page_links(path: str, query: Mapping[str, str], page: int, per_page: int, total: int) -> str:
    """GoTrue's Link header: the request's own query with `page` set, keys sorted as Go's
    url.Values encodes them, so `page` comes before `per_page` (auth-js reads the first number).
    next only while there is a further page; last is the number of pages (0 when there are none)."""
    last = -(-total // per_page)

    def url(to: int) -> str:
        params = {**query, "page": str(to), "per_page": str(per_page)}
        return f"{path}?{urlencode(sorted(params.items()))}"

    links = [f'<{url(page + 1)}>; rel="next"'] if page < last else []
    links.append(f'<{url(last)}>; rel="last"')
    return ", ".join(links)


async def list_users(request: web.Request, ctx: AuthContext) -> web.StreamResponse:
    admin_caller(request, ctx)
    page = _int_param(request, "page", 1, MAX_PAGE)
    per_page = _int_param(request, "per_page", 50, MAX_PER_PAGE)
    async with ctx.database.transaction(service(request), read_only=True) as tx:
        row = await tx.fetchrow("select users::text, total from auth.list_users($1, $2)", page, per_page)
    assert row is not None
    total = int(row["total"])
    return json_response(
        {"users": orjson.loads(row["users"]), "aud": "authenticated"},
        headers={
            "X-Total-Count": str(total),
            "Link": page_links(request.path, request.query, page, per_page, total),
        },
    )


async def create_user(request: web.Request, ctx: AuthContext) -> web.StreamResponse:
    caller = admin_caller(request, ctx)
    body = await read_body(request)
    email = email_field(body)
    if email is None:
        raise bad_request("Creating a user needs an email address (phone users are not supported)")
    password = body.get("password")
    if password is not None:
        check_password_policy(ctx.config, password)
    metadata = body.get("user_metadata") or body.get("data") or {}
    rest = {
        k: v
        for k, v in body.items()
        if k not in ("email", "password", "user_metadata", "data", "email_confirm")
    }
    ip = client_ip(request)
    async with ctx.database.transaction(service(request)) as tx:
        user_id, created = await sign_up(
            tx,
            ctx,
            email,
            password if isinstance(password, str) else None,
            metadata,
            confirmed=bool(body.get("email_confirm")),
            ip=ip,
        )
        if not created:
            raise unprocessable("email_exists", "A user with this email address has already been registered")
        if rest:
            error = await tx.fetchval(
                "select auth.admin_update_user($1::uuid, $2::jsonb, null, $3::inet, $4)",
                user_id,
                orjson.dumps(rest).decode(),
                ip,
                ctx.config.bcrypt_cost,
            )
            if error:
                raise unprocessable(error, error.replace("_", " "))
        user = await user_json(tx, user_id)
    audit("auth.admin_user_created", user_id=user_id, actor_role=caller.role, ip=ip)
    return json_response(user)


async def get_user(request: web.Request, ctx: AuthContext) -> web.StreamResponse:
    admin_caller(request, ctx)
    async with ctx.database.transaction(service(request), read_only=True) as tx:
        user = await user_json(tx, _user_id_param(request))
    if user is None:
        raise AuthError(404, "user_not_found", "User not found")
    return json_response(user)


async def update_user(request: web.Request, ctx: AuthContext) -> web.StreamResponse:
    caller = admin_caller(request, ctx)
    user_id = _user_id_param(request)
    body = await read_body(request)
    if "data" in body and "user_metadata" not in body:
        body["user_metadata"] = body.pop("data")
    if "password" in body:  # a number would otherwise become the password "5"
        check_password_policy(ctx.config, body["password"])
    ip = client_ip(request)
    async with ctx.database.transaction(service(request)) as tx:
        error = await tx.fetchval(
            "select auth.admin_update_user($1::uuid, $2::jsonb, null, $3::inet, $4)",
            user_id,
            orjson.dumps(body).decode(),
            ip,
            ctx.config.bcrypt_cost,
        )
        user = None if error else await user_json(tx, user_id)
    if error:
        raise AuthError(404 if error == "user_not_found" else 422, error, error.replace("_", " "))
    audit("auth.admin_user_modified", user_id=user_id, actor_role=caller.role, ip=ip, fields=sorted(body))
    return json_response(user)


async def delete_user(request: web.Request, ctx: AuthContext) -> web.StreamResponse:
    caller = admin_caller(request, ctx)
    user_id = _user_id_param(request)
    body = await read_body(request)
    ip = client_ip(request)
    async with ctx.database.transaction(service(request)) as tx:
        deleted = await tx.fetchval(
            "select auth.delete_user($1::uuid, $2, null, $3::inet)",
            user_id,
            bool(body.get("should_soft_delete")),
            ip,
        )
    if not deleted:
        raise AuthError(404, "user_not_found", "User not found")
    audit("auth.admin_user_deleted", user_id=user_id, actor_role=caller.role, ip=ip)
    return json_response({})


GENERATE_LINK_TYPES = {
    "signup",
    "invite",
    "magiclink",
    "recovery",
    "email_change_current",
    "email_change_new",
}


async def generate_link(request: web.Request, ctx: AuthContext) -> web.StreamResponse:
    """A verification link without sending it (GoTrue's generate_link).

    `hashed_token` is the token itself: our one-time tokens are verified by
    hashing what is presented, so the stored digest would verify nothing.
    """
    admin_caller(request, ctx)
    body = await read_body(request)
    kind = body.get("type")
    if not isinstance(kind, str) or kind not in GENERATE_LINK_TYPES:
        raise bad_request(f"type must be one of {', '.join(sorted(GENERATE_LINK_TYPES))}")
    email = email_field(body)
    if email is None:
        raise bad_request("An email address is required")
    ip = client_ip(request)
    metadata = body.get("data") or {}
    async with ctx.database.transaction(service(request)) as tx:
        user_id = await find_user(tx, email)
        if user_id is None and kind in ("signup", "invite"):
            password = body.get("password") if kind == "signup" else None
            if password is not None:
                check_password_policy(ctx.config, password)
            user_id, _ = await sign_up(tx, ctx, email, password or None, metadata, confirmed=False, ip=ip)
        elif kind in ("signup", "invite"):
            raise unprocessable("email_exists", "A user with this email address has already been registered")
        if user_id is None:
            raise AuthError(404, "user_not_found", "User with this email not found")
        if kind in ("email_change_current", "email_change_new"):
            new_email = email_field({"email": body.get("new_email")})
            if new_email is None:
                raise bad_request("new_email is required")
            row = await tx.fetchrow(
                "select error, email_change_token from auth.update_user($1::uuid, null, null, $2, $3, null,"
                " $4::interval, $5::inet)",
                user_id,
                new_email,
                ctx.config.bcrypt_cost,
                dt.timedelta(seconds=ctx.config.otp_ttl),
                ip,
            )
            if row is None or row["error"]:
                error = row["error"] if row else "user_not_found"
                raise unprocessable(error, error.replace("_", " "))
            mail_kind, issued = "email_change", Issued(row["email_change_token"])
        else:
            mail_kind = {"signup": "confirmation", "invite": "confirmation", "magiclink": "magic_link"}.get(
                kind, "recovery"
            )
            issued = await issue(tx, ctx, user_id, mail_kind, email, ip)
        user = await user_json(tx, user_id)
    redirect_to = allowed_redirect(
        body.get("redirect_to") or request.query.get("redirect_to"), ctx.site_url, ctx.config.redirect_urls
    )
    verification_type = {"confirmation": "signup", "magic_link": "magiclink"}.get(mail_kind, mail_kind)
    if kind == "invite":
        verification_type = "invite"
    link = verify_link(ctx.base_url, issued.token, mail_kind, redirect_to)
    if kind == "invite":
        link = link.replace("type=signup", "type=invite")
    properties = {
        "action_link": link,
        "email_otp": issued.code,
        "hashed_token": issued.token,
        "redirect_to": redirect_to,
        "verification_type": verification_type,
    }
    return json_response({**(user or {}), **properties, "properties": properties})
