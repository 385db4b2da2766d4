"""The tenant of the current request or task: the default one, or with authentication the credential's."""

from __future__ import annotations

from contextvars import ContextVar

DEFAULT_TENANT = "default"

_tenant: ContextVar[str] = ContextVar("tenant_id", default=DEFAULT_TENANT)


def current_tenant() -> str:
    """The tenant every query of this request or task is filtered by."""
    return _tenant.get()


def set_tenant(tenant_id: str) -> None:
    """Bind the tenant for the rest of this context (a request, a queued task)."""
    _tenant.set(tenant_id)
