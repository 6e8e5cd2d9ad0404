"""Asymmetric signing keys for user access tokens (auth.jwt_algorithm RS256 or ES256).

With HS256 (the default) user tokens and API keys share the JWT secret.
With RS256/ES256 the server signs user access tokens with the private key,
puts `kid` in their header and publishes the public key at
/.well-known/jwks.json, so other services can verify them without any
secret.  The anon and service_role API keys stay HS256 with the secret:
they are printed by `fluxbase keys`, verified only by this server, and
rotating the signing key must not invalidate every deployed client.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any

from cryptography.hazmat.primitives import serialization
from jwt.algorithms import ECAlgorithm, RSAAlgorithm

from fluxbase.keyfile import load_private_key


@dataclass(frozen=True)
class SigningKeys:
    algorithm: str
    private_key: Any
    public_key: Any
    key_id: str

    def jwk(self) -> dict[str, Any]:
        """The public key as a JWK, with kid, alg and use=sig."""
        if self.algorithm == "RS256":
            jwk: dict[str, Any] = RSAAlgorithm.to_jwk(self.public_key, as_dict=True)
        else:
            jwk = ECAlgorithm.to_jwk(self.public_key, as_dict=True)
        return {**jwk, "kid": self.key_id, "alg": self.algorithm, "use": "sig"}


def load_signing_keys(algorithm: str, private_key: str | None, key_id: str | None) -> SigningKeys | None:
    """None for HS256; else the key pair from a PEM text or a PEM file path.  Raises ValueError."""
    key = load_private_key(algorithm, private_key)
    if key is None:
        return None
    public = key.public_key()
    if not key_id:
        der = public.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
        key_id = hashlib.sha256(der).hexdigest()[:16]
    return SigningKeys(algorithm, key, public, key_id)
