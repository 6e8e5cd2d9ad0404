"""The private key auth.jwt_private_key names: read from PEM text or a file, checked for the algorithm.

A leaf below config.py, so configuration is validated (and --config-test fails) on a
bad key without config importing security/; security/signing_keys.py builds the
signing keys and their JWK from what this returns.
"""

from __future__ import annotations

from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

ASYMMETRIC_ALGORITHMS = ("RS256", "ES256")

PrivateKey = rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey


def load_private_key(algorithm: str, private_key: str | None) -> PrivateKey | None:
    """None for HS256; else the key from a PEM text or a PEM file path.  Raises ValueError, OSError."""
    if algorithm == "HS256":
        return None
    if algorithm not in ASYMMETRIC_ALGORITHMS:
        raise ValueError(f"auth.jwt_algorithm must be HS256, RS256 or ES256, not {algorithm!r}")
    if not private_key:
        raise ValueError(f"auth.jwt_algorithm {algorithm} needs auth.jwt_private_key (a PEM or a file path)")
    pem = private_key if "-----BEGIN" in private_key else Path(private_key).read_text(encoding="ascii")
    key = serialization.load_pem_private_key(pem.encode(), password=None)
    if algorithm == "RS256":
        if not (isinstance(key, rsa.RSAPrivateKey) and key.key_size >= 2048):
            raise ValueError("RS256 needs an RSA private key of at least 2048 bits")
        return key
    if not (isinstance(key, ec.EllipticCurvePrivateKey) and key.curve.name == "secp256r1"):
        raise ValueError("ES256 needs an EC private key on the P-256 curve")
    return key
