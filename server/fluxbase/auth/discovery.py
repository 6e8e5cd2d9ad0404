"""The open endpoints: /settings, /health and the JWKS clients verify tokens with."""

from __future__ import annotations

from aiohttp import web

from fluxbase import __version__
from fluxbase.auth.context import AuthContext
from fluxbase.auth.request import json_response


async def settings(request: web.Request, ctx: AuthContext) -> web.StreamResponse:
    return json_response(
        {
            "external": {"email": True, "phone": False, "anonymous_users": ctx.config.anonymous_sign_ins},
            "disable_signup": ctx.config.disable_signup,
            "mailer_autoconfirm": ctx.config.autoconfirm,
            "phone_autoconfirm": False,
            "sms_provider": "",
            "saml_enabled": False,
            "passkeys_enabled": False,
        }
    )


async def health(request: web.Request, ctx: AuthContext) -> web.StreamResponse:
    return json_response(
        {"version": __version__, "name": "GoTrue", "description": "Fluxbase auth (GoTrue-compatible)"}
    )


async def jwks(request: web.Request, ctx: AuthContext) -> web.StreamResponse:
    # HS256 keys are secret: GoTrue publishes none of them, so the set is empty then.
    keys = ctx.signing_keys
    return json_response({"keys": [keys.jwk()] if keys is not None else []})
