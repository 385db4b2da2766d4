"""Bounds the wire schemas share. Every number a client sends has a lower and an upper bound
(`tests/platform/test_http_edges.py` checks the OpenAPI document), so none reaches the database or a library
as an integer beyond 64 bits or a float beyond a timedelta."""

from __future__ import annotations

MAX_VERSION = 2**31 - 1
"""The highest version number a client may ask for: versions are INTEGER columns (32 bits on PostgreSQL)."""

MIN_TIMEOUT_S = 0.1
"""The shortest timeout a request may set: below it a model call times out before it starts."""

MAX_TIMEOUT_S = 3600
