"""Structured logs (structlog) with a correlation id bound per request and carried across services."""

from __future__ import annotations

import logging
import sys
import uuid
from contextvars import ContextVar
from typing import Any

import structlog
from opentelemetry import trace
from structlog.typing import EventDict, Processor

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


def _add_correlation_id(_: Any, __: str, event_dict: EventDict) -> EventDict:
    cid = correlation_id.get()
    if cid and "correlation_id" not in event_dict:
        event_dict["correlation_id"] = cid
    return event_dict


def _add_trace_ids(_: Any, __: str, event_dict: EventDict) -> EventDict:
    """The ids of the current OpenTelemetry span (with ALP_TRACING), so that logs and traces join."""
    context = trace.get_current_span().get_span_context()
    if context.is_valid and "trace_id" not in event_dict:
        event_dict["trace_id"] = format(context.trace_id, "032x")
        event_dict["span_id"] = format(context.span_id, "016x")
    return event_dict


_HANDLER_NAME = "agent-lightning"


def wants_json(json: bool | None) -> bool:
    """JSON lines when asked, or when nobody reads the output on a terminal (a service, a pipe, a file)."""
    return (not sys.stdout.isatty()) if json is None else json


def configure_logging(level: str = "INFO", json: bool | None = None, mask_pii: bool = True) -> None:
    """One pipeline for every log line: structlog's events and standard-library records (uvicorn, SQLAlchemy,
    Alembic, taskiq, the MCP SDK) get the same fields (level, logger, timestamp, correlation and trace ids)
    and the same renderer: JSON, or readable columns on a terminal (`json=None` chooses by whether stdout is
    one). With `mask_pii`, personal data in any field is masked first (core/pii.py)."""
    renderer = structlog.processors.JSONRenderer() if wants_json(json) else structlog.dev.ConsoleRenderer()
    mask_stdlib_logs(mask_pii)
    shared: list[Processor] = [
        structlog.contextvars.merge_contextvars,
        _add_correlation_id,
        _add_trace_ids,
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
    ]
    masking: list[Processor] = [mask_log_event] if mask_pii else []
    structlog.configure(
        processors=[*shared, structlog.processors.format_exc_info, *masking, renderer],
        wrapper_class=structlog.make_filtering_bound_logger(logging.getLevelName(level.upper())),
        logger_factory=structlog.PrintLoggerFactory(sys.stdout),
        cache_logger_on_first_use=False,
    )
    # Standard-library records: one handler on the root logger, rendered by the same processors. Installed
    # before any library configures logging itself, whose basicConfig() then leaves it alone.
    handler = logging.StreamHandler(sys.stdout)
    handler.set_name(_HANDLER_NAME)
    handler.setFormatter(
        structlog.stdlib.ProcessorFormatter(
            foreign_pre_chain=[*shared, structlog.stdlib.add_logger_name],
            processors=[structlog.stdlib.ProcessorFormatter.remove_processors_meta, *masking, renderer],
        )
    )
    root = logging.getLogger()
    root.handlers = [h for h in root.handlers if h.get_name() != _HANDLER_NAME and not _is_library_console(h)]
    root.addHandler(handler)
    root.setLevel(level.upper())
    logging.captureWarnings(True)  # a library's warning is a log line too, not a bare line on stderr
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access"):  # uvicorn's own handlers off: ours print
        logger = logging.getLogger(name)
        logger.handlers = []
        logger.propagate = True


def _is_library_console(handler: logging.Handler) -> bool:
    """A handler a library put on the root logger to print to the console (the MCP SDK's rich handler)."""
    return type(handler).__name__ == "RichHandler" or (
        type(handler) is logging.StreamHandler
        and getattr(handler, "stream", None) in (sys.stderr, sys.stdout)
    )


def get_logger(name: str) -> structlog.stdlib.BoundLogger:
    """A named structured logger."""
    return structlog.get_logger(name)
