"""API keys: the anon and service_role JWTs that clients send in the `apikey` header.

They are ordinary HS256 JWTs signed with the configured secret, with fixed
issue and expiry times, so the same secret always yields the same keys;
rotating the secret rotates them.
"""

from __future__ import annotations

import jwt

ISSUER = "fluxbase"
ISSUED_AT = 1735689600  # 2025-01-01T00:00:00Z
EXPIRES_AT = ISSUED_AT + 10 * 365 * 24 * 3600


def api_key(secret: str, role: str) -> str:
    if role not in ("anon", "service_role"):
        raise ValueError(f"API keys exist for anon and service_role, not {role!r}")
    claims = {"iss": ISSUER, "role": role, "iat": ISSUED_AT, "exp": EXPIRES_AT}
    return jwt.encode(claims, secret, algorithm="HS256")
