"""Access tokens and session objects as GoTrue issues them; HS256 with the configured secret.

The claims come from the database (the user object and the session's aal
and amr); this module only signs them.  Refresh tokens are never JWTs: they
are opaque values made and checked by auth.rotate_refresh_token.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any

import jwt

from fluxbase.security.authenticate import ALGORITHM, USER_AUDIENCE
from fluxbase.security.signing_keys import SigningKeys


def issuer(base_url: str) -> str:
    """GoTrue's `iss`: the auth service's URL."""
    return base_url.rstrip("/") + "/auth/v1"


def access_token_claims(
    user: Mapping[str, Any],
    *,
    session_id: str,
    aal: str,
    amr: list[Any],
    issuer: str,
    ttl: int,
    now: int | None = None,
) -> dict[str, Any]:
    issued_at = int(time.time()) if now is None else now
    return {
        "iss": issuer,
        "sub": str(user["id"]),
        "aud": user.get("aud") or USER_AUDIENCE,
        "exp": issued_at + ttl,
        "iat": issued_at,
        "email": user.get("email") or "",
        "phone": user.get("phone") or "",
        "app_metadata": user.get("app_metadata") or {},
        "user_metadata": user.get("user_metadata") or {},
        "role": user.get("role") or "authenticated",
        "aal": aal,
        "amr": amr,
        "session_id": session_id,
        "is_anonymous": bool(user.get("is_anonymous")),
    }


def sign(claims: Mapping[str, Any], secret: str, keys: SigningKeys | None = None) -> str:
    """HS256 with the secret, or the configured private key with `kid` in the header."""
    if keys is not None:
        return jwt.encode(
            dict(claims), keys.private_key, algorithm=keys.algorithm, headers={"kid": keys.key_id}
        )
    return jwt.encode(dict(claims), secret, algorithm=ALGORITHM)


def session_object(
    user: Mapping[str, Any],
    *,
    session_id: str,
    aal: str,
    amr: list[Any],
    refresh_token: str,
    secret: str,
    issuer: str,
    ttl: int,
    keys: SigningKeys | None = None,
) -> dict[str, Any]:
    """GoTrue's Session: what /token, /verify and signup with autoconfirm answer."""
    claims = access_token_claims(user, session_id=session_id, aal=aal, amr=amr, issuer=issuer, ttl=ttl)
    return {
        "access_token": sign(claims, secret, keys),
        "token_type": "bearer",
        "expires_in": ttl,
        "expires_at": claims["exp"],
        "refresh_token": refresh_token,
        "user": dict(user),
    }
