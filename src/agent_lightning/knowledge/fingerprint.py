"""A document's fingerprint: what makes two documents the same to store (their text, format and who sees
them), computed from what a client sends, so that `alp knowledge add` can ask the server which files it holds
already and send only the others."""

from __future__ import annotations

import hashlib


def fingerprint(*, content: str, fmt: str, agent_id: str | None, shared: bool) -> str:
    """The SHA-256 (hex) of a document as sent to `POST /knowledge/items` or `/items/batch`."""
    scope = "shared" if shared else f"agent:{agent_id}" if agent_id else "tenant"
    return hashlib.sha256("\x1f".join((scope, fmt, content)).encode()).hexdigest()
