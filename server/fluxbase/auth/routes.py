"""GoTrue's endpoints at /auth/v1 and /api/v1/auth: which flow handles which route.

Every handler is wrapped by auth/errors.py's `endpoint`, which renders
errors in GoTrue's shape; each runs as service_role in one role-switched
transaction (auth/request.py's `service`).
"""

from __future__ import annotations

from aiohttp import web

from fluxbase.auth import admin, discovery, mail_flows, sign_in, user
from fluxbase.auth.errors import Handler, endpoint

PREFIXES = ("/auth/v1", "/api/v1/auth")


def add_routes(app: web.Application) -> None:
    routes: list[tuple[str, str, Handler]] = [
        ("POST", "/signup", endpoint(mail_flows.signup)),
        ("POST", "/token", endpoint(sign_in.token, oauth=True)),
        ("POST", "/logout", endpoint(sign_in.logout)),
        ("GET", "/user", endpoint(user.get_user)),
        ("PUT", "/user", endpoint(user.update_user)),
        ("POST", "/recover", endpoint(mail_flows.recover)),
        ("POST", "/otp", endpoint(mail_flows.otp)),
        ("POST", "/magiclink", endpoint(mail_flows.otp)),
        ("POST", "/resend", endpoint(mail_flows.resend)),
        ("GET", "/verify", endpoint(mail_flows.verify_get)),
        ("POST", "/verify", endpoint(mail_flows.verify_post)),
        ("GET", "/settings", endpoint(discovery.settings)),
        ("GET", "/health", endpoint(discovery.health)),
        ("GET", "/.well-known/jwks.json", endpoint(discovery.jwks)),
        ("GET", "/admin/users", endpoint(admin.list_users)),
        ("POST", "/admin/users", endpoint(admin.create_user)),
        ("GET", "/admin/users/{user_id}", endpoint(admin.get_user)),
        ("PUT", "/admin/users/{user_id}", endpoint(admin.update_user)),
        ("DELETE", "/admin/users/{user_id}", endpoint(admin.delete_user)),
        ("POST", "/admin/generate_link", endpoint(admin.generate_link)),
    ]
    for prefix in PREFIXES:
        for method, path, handler in routes:
            app.router.add_route(method, prefix + path, handler)
