"""The dashboard's error table: SQL outcomes and refusals -> HTTP status, code and message."""

from __future__ import annotations

from fluxbase.errors import HttpError

# outcome -> (status, message)
OUTCOMES: dict[str, tuple[int, str]] = {
    "invalid_credentials": (401, "Invalid email or password"),
    "signup_closed": (
        403,
        "Signup is closed: an administrator exists. Ask one for an invitation, "
        "or run `fluxbase admin create`",
    ),
    "email_exists": (409, "An administrator with this email already exists"),
    "challenge_not_found": (401, "The 2FA challenge is invalid, used or expired: log in again"),
    "invalid_code": (401, "Invalid 2FA code"),
    "code_already_used": (401, "This 2FA code has already been used: wait for the next one"),
    "locked": (401, "Invalid email or password"),
    "refresh_token_not_found": (401, "Invalid refresh token"),
    "refresh_token_reused": (401, "Invalid refresh token: it was already used, the session has ended"),
    "token_not_found": (400, "The link is invalid, used or expired"),
    "totp_already_enabled": (409, "Two-factor authentication is already enabled"),
    "totp_not_set_up": (409, "Call POST /dashboard/auth/2fa/setup first"),
    "totp_not_enabled": (409, "Two-factor authentication is not enabled"),
    "last_admin": (409, "The last administrator cannot be deleted"),
    "not_found": (404, "Not found"),
}


def outcome_error(outcome: str) -> HttpError:
    status, message = OUTCOMES.get(outcome, (400, outcome.replace("_", " ")))
    return HttpError(status, outcome, message)
