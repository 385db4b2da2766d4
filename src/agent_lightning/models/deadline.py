"""The deadline of the model call in progress (monotonic seconds), set by the router around each attempt, so
that a provider with a queue can refuse at once what it could not finish in time."""

from __future__ import annotations

from contextvars import ContextVar

call_deadline: ContextVar[float | None] = ContextVar("alp_model_call_deadline", default=None)
