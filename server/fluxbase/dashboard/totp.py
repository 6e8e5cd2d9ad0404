"""TOTP for administrators: secrets encrypted at rest, codes matched to time steps, the setup QR code.

The server only finds which 30-second step a code belongs to (pyotp, one
step of clock drift either way); whether that step may still be used is the
database's decision (dashboard.take_totp_step), made atomically.
"""

from __future__ import annotations

import base64
import io
import os
import time

import pyotp
import segno
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from fluxbase.errors import HttpError

ISSUER = "Fluxbase"
INTERVAL = 30
DRIFT_STEPS = 1
NONCE_BYTES = 12
# Associated data: a ciphertext copied into another column or table does not decrypt.
AAD = b"dashboard.users.totp_secret_encrypted"


def new_secret() -> str:
    return pyotp.random_base32()


def encrypt(key: bytes, secret: str) -> bytes:
    nonce = os.urandom(NONCE_BYTES)
    return nonce + AESGCM(key).encrypt(nonce, secret.encode(), AAD)


def decrypt(key: bytes, blob: bytes) -> str:
    """The stored secret; a key that no longer opens it (the JWT secret was rotated) is a 409."""
    try:
        return AESGCM(key).decrypt(blob[:NONCE_BYTES], blob[NONCE_BYTES:], AAD).decode()
    except InvalidTag as exc:
        raise HttpError(
            409,
            "totp_unreadable",
            "The stored 2FA secret cannot be read (the JWT secret changed); "
            "sign in with a backup code and set up 2FA again",
        ) from exc


def matching_step(secret: str, code: str, now: float | None = None) -> int | None:
    """The time step whose code is `code` (current, previous or next), or None."""
    code = code.strip().replace(" ", "")
    if len(code) != 6 or not code.isdigit():
        return None
    totp = pyotp.TOTP(secret, interval=INTERVAL)
    at = time.time() if now is None else now
    step = int(at // INTERVAL)
    for candidate in (step, step - 1, step + 1)[: 2 * DRIFT_STEPS + 1]:
        if pyotp.utils.strings_equal(totp.at(candidate * INTERVAL), code):
            return candidate
    return None


def provisioning_uri(secret: str, email: str) -> str:
    return pyotp.TOTP(secret, interval=INTERVAL).provisioning_uri(name=email, issuer_name=ISSUER)


def qr_code(uri: str, kind: str = "svg") -> str:
    """The otpauth URI as a QR code data URI (SVG, or PNG when kind is 'png')."""
    buffer = io.BytesIO()
    segno.make(uri, error="m").save(buffer, kind=kind, scale=5, border=2)
    mime = "image/png" if kind == "png" else "image/svg+xml"
    return f"data:{mime};base64,{base64.b64encode(buffer.getvalue()).decode()}"
