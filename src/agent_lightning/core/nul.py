"""NUL (U+0000) in client text: refused alike on every backend (PostgreSQL cannot store it in text, SQLite
can, so the same request was stored on one and a 500 on the other). `core.http` refuses it in URLs and in
JSON and form bodies; routes that read raw bodies check the text they extract with these helpers."""

from __future__ import annotations

import re

from agent_lightning.core.errors import Invalid

_JSON_ESCAPE = re.compile(rb"(?<!\\)(?:\\\\)*\\u0000")
"""A JSON `\\u0000` escape that is not itself escaped (`\\\\u0000` is a backslash and the text "u0000")."""


def in_json(body: bytes) -> bool:
    """Whether JSON text (raw, before parsing) holds a NUL byte or decodes to a string holding one."""
    return b"\x00" in body or (b"\\u0000" in body and _JSON_ESCAPE.search(body) is not None)


def refused(where: str) -> Invalid:
    """The 422 `nul_character` error, saying where the NUL was (url, body)."""
    return Invalid(
        f"NUL characters (U+0000) are not accepted (found in the {where}).",
        code="nul_character",
        details={"location": where},
    )
