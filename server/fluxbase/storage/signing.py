"""Signed URLs: HS256 tokens bound to a bucket, a key and an operation, with an expiry.

The key is derived from the JWT secret with HMAC under a fixed label, so a
URL token is never a valid API JWT and an API JWT is never a valid URL token
(the two keys differ); rotating the JWT secret invalidates every URL.
Download tokens carry `{url: "bucket/key", scope: "download"}`; upload tokens
also carry the owner (the signer's `sub`) and whether they may overwrite.
Using a token later bypasses RLS: the check happened when it was signed.
"""

from __future__ import annotations

import hashlib
import hmac
import time
from dataclasses import dataclass
from typing import Any

import jwt

from fluxbase.storage import errors

_LABEL = b"fluxbase storage url signing v1"
MAX_EXPIRES_IN = 60 * 60 * 24 * 365  # a year, as Supabase allows
UPLOAD_EXPIRES_IN = 2 * 60 * 60  # signed upload URLs last two hours, as on Supabase


@dataclass(frozen=True)
class UrlGrant:
    bucket: str
    key: str
    scope: str
    owner: str | None
    upsert: bool


class UrlSigner:
    def __init__(self, jwt_secret: str) -> None:
        self._key = hmac.new(jwt_secret.encode(), _LABEL, hashlib.sha256).digest()

    def sign(
        self,
        bucket: str,
        key: str,
        scope: str,
        expires_in: int,
        *,
        owner: str | None = None,
        upsert: bool = False,
    ) -> str:
        now = int(time.time())
        claims: dict[str, Any] = {
            "url": f"{bucket}/{key}",
            "scope": scope,
            "iat": now,
            "exp": now + expires_in,
        }
        if scope == "upload":
            claims["owner"] = owner
            claims["upsert"] = upsert
        return jwt.encode(claims, self._key, algorithm="HS256")

    def verify(self, token: str, bucket: str, key: str, scope: str) -> UrlGrant:
        """The grant of a token for exactly this bucket, key and scope; StorageError otherwise."""
        try:
            claims = jwt.decode(
                token, self._key, algorithms=["HS256"], options={"require": ["exp", "url", "scope"]}
            )
        except jwt.ExpiredSignatureError as exc:
            raise errors.expired_token() from exc
        except jwt.InvalidTokenError as exc:
            raise errors.invalid_signature("Invalid signature") from exc
        if claims.get("url") != f"{bucket}/{key}" or claims.get("scope") != scope:
            raise errors.invalid_signature("The token was signed for another object or operation")
        owner = claims.get("owner")
        return UrlGrant(
            bucket, key, scope, owner if isinstance(owner, str) else None, claims.get("upsert") is True
        )


def expires_in(value: Any) -> int:
    """`expiresIn` as storage clients send it (a number, or its string), bounded."""
    try:
        seconds = int(str(value))
    except (TypeError, ValueError) as exc:
        raise errors.invalid_request("expiresIn must be a number of seconds") from exc
    if seconds < 1 or seconds > MAX_EXPIRES_IN:
        raise errors.invalid_request(f"expiresIn must be between 1 and {MAX_EXPIRES_IN} seconds")
    return seconds
