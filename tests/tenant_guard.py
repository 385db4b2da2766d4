"""The tenancy guard of the test suite (issue 16): while any test runs, a statement the platform's code makes
on a table with tenant_id must constrain the tenant or be marked `all_tenants` (core/tenancy.py), or the
statement raises `TenantUnscoped` and the test fails. Statements a test makes itself (to arrange or inspect
rows) are the test's business and are not checked."""

from __future__ import annotations

import sys

import greenlet

from agent_lightning.core.tenancy import guard_sessions

PLUMBING = ("sqlalchemy.", "greenlet", "asyncio.", "contextlib", "agent_lightning.core.tenancy", __name__)


def _frames():
    """The frames of the current statement, innermost first: the synchronous part SQLAlchemy runs in its
    greenlet, then the coroutines that awaited it."""
    frame = sys._getframe(1)
    while frame is not None:
        yield frame
        frame = frame.f_back
    current = greenlet.getcurrent()
    frame = current.parent.gr_frame if current.parent is not None else None
    while frame is not None:
        yield frame
        frame = frame.f_back


def made_by_the_platform() -> bool:
    """Whether the code that made the statement is the platform's (not a test's)."""
    for frame in _frames():
        module = frame.f_globals.get("__name__", "")
        if not module.startswith(PLUMBING):
            return module.startswith("agent_lightning.")
    return False


def install() -> None:
    guard_sessions(applies=made_by_the_platform)
