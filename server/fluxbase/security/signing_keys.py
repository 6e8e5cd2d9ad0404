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
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from jwt.algorithms import ECAlgorithm, RSAAlgorithm

ASYMMETRIC_ALGORITHMS = ("RS256", "ES256")


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
    if algorithm == "HS256":
        return None
    if algorithm not in ASYMMETRIC_ALGORITHMS:
        raise ValueError(f"auth.jwt_algorithm must be HS256, RS256 or ES256, not {algorithm!r}")
    if not private_key:
        raise ValueError(f"auth.jwt_algorithm {algorithm} needs auth.jwt_private_key (a PEM or a file path)")
    pem = private_key if "-----BEGIN" in private_key else Path(private_key).read_text(encoding="ascii")
    key = serialization.load_pem_private_key(pem.encode(), password=None)
    if algorithm == "RS256" and not (isinstance(key, rsa.RSAPrivateKey) and key.key_size >= 2048):
        raise ValueError("RS256 needs an RSA private key of at least 2048 bits")
    if algorithm == "ES256" and not (
        isinstance(key, ec.EllipticCurvePrivateKey) and key.curve.name == "secp256r1"
    ):
        raise ValueError("ES256 needs an EC private key on the P-256 curve")
    public = key.public_key()
    if not key_id:
        der = public.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
        key_id = hashlib.sha256(der).hexdigest()[:16]
    return SigningKeys(algorithm, key, public, key_id)
