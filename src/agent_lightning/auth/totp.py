"""Time-based one-time passwords (RFC 6238, pyotp) as a second factor: 30-second codes, one step of clock
drift either way, and a code (its time step) accepted once."""

from __future__ import annotations

import hmac
import time

import pyotp

ISSUER = "Agent Lightning"
DRIFT_STEPS = 1


def new_secret() -> str:
    return pyotp.random_base32()


def provisioning_uri(secret: str, account: str) -> str:
    """The otpauth:// URI an authenticator app reads (as a QR code)."""
    return pyotp.TOTP(secret).provisioning_uri(name=account, issuer_name=ISSUER)


def matching_step(
    secret: str, code: str, *, after: int | None = None, now: float | None = None
) -> int | None:
    """The time step `code` belongs to (within the drift), if it is later than `after`; else None (also for a
    code that is not ASCII digits: no step's code can match it, and compare_digest refuses non-ASCII text)."""
    code = code.strip()
    if not (code.isascii() and code.isdigit()):
        return None
    totp = pyotp.TOTP(secret)
    now = time.time() if now is None else now
    current = totp.timecode(now)
    for step in range(current - DRIFT_STEPS, current + DRIFT_STEPS + 1):
        if after is not None and step <= after:
            continue
        if hmac.compare_digest(totp.generate_otp(step), code):
            return step
    return None
