"""Password hashes (argon2id, argon2-cffi) and the policy every new password meets: a minimum length and a
minimum strength as zxcvbn estimates it (dictionary words, keyboard patterns, dates and the account's own
name all count against it)."""

from __future__ import annotations

import asyncio

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from zxcvbn import zxcvbn

from agent_lightning.core.errors import Invalid

SCORED_CHARS = 72
"""zxcvbn scores at most this many characters (its `max_length`: a longer password raises ValueError, and its
cost grows with length); beyond them a password is strong by length alone."""

_hasher = PasswordHasher()


async def hash_password(password: str) -> str:
    return await asyncio.to_thread(_hasher.hash, password)


def _verify(password_hash: str, password: str) -> bool:
    try:
        return _hasher.verify(password_hash, password)
    except (VerificationError, InvalidHashError):
        return False


async def verify(password_hash: str, password: str) -> bool:
    """Whether `password` matches (off the event loop: argon2 is meant to be slow)."""
    return await asyncio.to_thread(_verify, password_hash, password)


async def check_policy(password: str, *, min_length: int, min_score: int, user_inputs: list[str]) -> None:
    """Raise 422 `weak_password` (with zxcvbn's advice) unless the password is long and strong enough."""
    if len(password) < min_length:
        raise Invalid(
            f"The password must have at least {min_length} characters.",
            code="weak_password",
            details={"min_length": min_length},
        )
    result = await asyncio.to_thread(
        zxcvbn, password[:SCORED_CHARS], user_inputs=[u for u in user_inputs if u]
    )
    if result["score"] < min_score:
        feedback = result.get("feedback") or {}
        raise Invalid(
            "The password is too easy to guess"
            + (f": {feedback['warning']}" if feedback.get("warning") else "."),
            code="weak_password",
            details={
                "score": result["score"],
                "min_score": min_score,
                "suggestions": feedback.get("suggestions", []),
            },
        )
