"""Structured logs (structlog) with a correlation id bound per request and carried across services."""

from __future__ import annotations

import logging
import uuid
from contextvars import ContextVar

import structlog
from opentelemetry import trace

from agent_lightning.core.pii import mask_log_event, mask_stdlib_logs

correlation_id: ContextVar[str | None] = ContextVar("correlation_id", default=None)

CORRELATION_HEADER = "X-Correlation-ID"


def new_correlation_id() -> str:
    """A fresh correlation id."""
    return uuid.uuid4().hex


def current_correlation_id() -> str:
    """The correlation id of the current request or task, creating one if there is none."""
    value = correlation_id.get()
    if value is None:
        value = new_correlation_id()
        correlation_id.set(value)
    return value


def _add_correlation_id(_, __, event_dict: dict) -> dict:
    cid = correlation_id.get()
    if cid and "correlation_id" not in event_dict:
        event_dict["correlation_id"] = cid
    return event_dict


def _add_trace_ids(_, __, event_dict: dict) -> dict:
    """The ids of the current OpenTelemetry span (with ALP_TRACING), so that logs and traces join."""
    context = trace.get_current_span().get_span_context()
    if context.is_valid and "trace_id" not in event_dict:
        event_dict["trace_id"] = format(context.trace_id, "032x")
        event_dict["span_id"] = format(context.span_id, "016x")
    return event_dict


def configure_logging(level: str = "INFO", json: bool = True, mask_pii: bool = True) -> None:
    """Route stdlib and structlog output through one renderer; with `mask_pii`, personal data in any field
    is masked first (core/pii.py)."""
    renderer = structlog.processors.JSONRenderer() if json else structlog.dev.ConsoleRenderer()
    mask_stdlib_logs(mask_pii)  # uvicorn's, SQLAlchemy's and taskiq's records too
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            _add_correlation_id,
            _add_trace_ids,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            structlog.processors.format_exc_info,
            *([mask_log_event] if mask_pii else []),
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(logging.getLevelName(level.upper())),
        cache_logger_on_first_use=False,
    )


def get_logger(name: str) -> structlog.stdlib.BoundLogger:
    """A named structured logger."""
    return structlog.get_logger(name)
