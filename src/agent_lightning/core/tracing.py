"""OpenTelemetry traces: the one place that configures them (docs "Tracing").

`configure` builds this process's tracer provider from the settings (`ALP_TRACING`, `ALP_OTEL_EXPORTER`,
`ALP_TRACING_SAMPLE_RATIO`, `ALP_TRACING_DB`): resource `service.name` = `agent-lightning-<services>`,
`service.version`; a parent-based ratio sampler; an OTLP/HTTP exporter (the standard `OTEL_EXPORTER_OTLP_*`
variables), one-line JSON on stdout, or none. Then:

- `instrument_app`, `instrument_client`, `instrument_engine`: the maintained instrumentations for the
  FastAPI server spans, the httpx calls between services (they carry W3C `traceparent`, so a task in split
  mode is one trace across processes) and the database statements.
- `span`, `traced`, `annotate`, `record_error`: spans of our own (routing decision, attempt, knowledge,
  memory, model inference) without any OpenTelemetry import in the services.
- `inject` / `consume`: a queued job carries the trace context of the code that queued it; the process
  that runs it (maybe another one) continues the same trace.

With tracing off (the default) nothing is configured: `span` hands back one shared no-op context, `traced`
calls straight through, nothing is instrumented and jobs carry no context.

Tracing is per process: the last `configure` wins (a process runs one application).
"""

from __future__ import annotations

import functools
import json
import os
import sys
from collections.abc import Awaitable, Callable, Iterable, Mapping
from contextlib import AbstractContextManager, nullcontext
from typing import Any, TypeVar

from opentelemetry import propagate, trace
from opentelemetry.metrics import NoOpMeterProvider
from opentelemetry.sdk.resources import SERVICE_NAME, SERVICE_VERSION, Resource
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SimpleSpanProcessor, SpanExporter
from opentelemetry.sdk.trace.sampling import ParentBased, TraceIdRatioBased
from opentelemetry.trace import Span, SpanKind, Status, StatusCode

from agent_lightning.core.logging import get_logger

log = get_logger(__name__)

SCOPE = "agent_lightning"
"""Instrumentation scope of the platform's own spans."""
EXPORTERS = ("otlp", "console", "none")
CORRELATION_ATTRIBUTE = "alp.correlation_id"

_provider: TracerProvider | None = None
_tracer: trace.Tracer | None = None
_NOOP: AbstractContextManager[Span] = nullcontext(trace.INVALID_SPAN)  # reusable, reentrant
_NO_METERS = NoOpMeterProvider()  # the instrumentations' metrics: /metrics (Prometheus) covers them

F = TypeVar("F", bound=Callable[..., Awaitable[Any]])


def service_name(services: Iterable[str], every: Iterable[str]) -> str:
    """`agent-lightning-<services>` of one process: `-all` when it runs every service."""
    mine = sorted(set(services))
    return "agent-lightning-" + ("all" if set(mine) >= set(every) else "-".join(mine))


def configure(
    settings: Any, *, name: str, version: str, exporter: SpanExporter | None = None
) -> TracerProvider | None:
    """Set up this process's tracing from `settings` (or turn it off); return the provider, or None when off.

    `exporter` replaces the configured exporter, with synchronous export (tests use an in-memory one).
    """
    global _provider, _tracer
    if not settings.tracing:
        _provider = _tracer = None
        return None
    attributes: dict[str, Any] = {SERVICE_VERSION: version, "service.namespace": "agent-lightning"}
    if not os.environ.get("OTEL_SERVICE_NAME"):  # the standard variable wins
        attributes[SERVICE_NAME] = name
    provider = TracerProvider(
        resource=Resource.create(attributes),
        sampler=ParentBased(TraceIdRatioBased(settings.tracing_sample_ratio)),
    )
    if exporter is not None:
        provider.add_span_processor(SimpleSpanProcessor(exporter))
    elif (chosen := _exporter(settings.otel_exporter)) is not None:
        provider.add_span_processor(BatchSpanProcessor(chosen))
    _provider, _tracer = provider, provider.get_tracer(SCOPE, version)
    log.info(
        "tracing_enabled",
        service=name,
        exporter=settings.otel_exporter if exporter is None else "custom",
        sample_ratio=settings.tracing_sample_ratio,
    )
    return provider


def _exporter(kind: str) -> SpanExporter | None:
    if kind == "otlp":  # OTLP/HTTP (protobuf): OTEL_EXPORTER_OTLP_(TRACES_)ENDPOINT, _HEADERS, _TIMEOUT …
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

        return OTLPSpanExporter()
    if kind == "console":
        from opentelemetry.sdk.trace.export import ConsoleSpanExporter

        return ConsoleSpanExporter(
            out=sys.stdout, formatter=_one_line
        )  # today's stdout, not the one at import
    if kind == "none":
        return None  # spans still give the logs their trace ids
    raise ValueError(f"ALP_OTEL_EXPORTER: {kind!r} is not one of {', '.join(EXPORTERS)}.")


def _one_line(span: ReadableSpan) -> str:
    return json.dumps(json.loads(span.to_json()), separators=(",", ":")) + "\n"


def shutdown(provider: TracerProvider | None) -> None:
    """Export what is left and stop `provider` (the application stops)."""
    global _provider, _tracer
    if provider is None:
        return
    if provider is _provider:
        _provider = _tracer = None
    provider.shutdown()


def enabled() -> bool:
    """Whether this process traces."""
    return _tracer is not None


def current_provider() -> TracerProvider | None:
    """This process's tracer provider (None when tracing is off)."""
    return _provider


# -- instrumentations ----------------------------------------------------------------------------------


def instrument_app(app: Any) -> None:
    """A server span for every HTTP request (route template as its name; health and metrics left out)."""
    if _provider is None:
        return
    from opentelemetry.instrumentation.fastapi import FastAPIInstrumentor

    FastAPIInstrumentor.instrument_app(
        app,
        tracer_provider=_provider,
        meter_provider=_NO_METERS,
        excluded_urls="/health,/metrics",
        exclude_spans=["receive", "send"],
    )


def instrument_client(client: Any) -> None:
    """A client span for every call of this httpx client, with `traceparent` sent along."""
    if _provider is None:
        return
    from opentelemetry.instrumentation.httpx import HTTPXClientInstrumentor

    HTTPXClientInstrumentor.instrument_client(client, tracer_provider=_provider, meter_provider=_NO_METERS)


def instrument_engine(engine: Any, *, statements: bool = True) -> None:
    """A client span for every statement run inside a span on this (async) SQLAlchemy engine (the maintained
    instrumentation's engine tracer), unless `statements` is false."""
    if _provider is None or not statements:
        return
    from opentelemetry.instrumentation.sqlalchemy.engine import EngineTracer

    class StatementTracer(EngineTracer):
        """Statements inside a span only: start-up, migrations and background sweeps make no traces."""

        def _before_cur_exec(self, conn, cursor, statement, params, context, executemany):
            if not trace.get_current_span().get_span_context().is_valid:
                return statement, params
            return super()._before_cur_exec(conn, cursor, statement, params, context, executemany)

    tracer = _provider.get_tracer("opentelemetry.instrumentation.sqlalchemy")
    connections = _NO_METERS.get_meter(SCOPE).create_up_down_counter("db.client.connections.usage")
    StatementTracer(tracer, getattr(engine, "sync_engine", engine), connections)


# -- the platform's own spans --------------------------------------------------------------------------


def span(
    name: str, *, kind: SpanKind = SpanKind.INTERNAL, attributes: Mapping[str, Any] | None = None
) -> AbstractContextManager[Span]:
    """A span around a `with` block (current inside it); an exception leaving it is recorded, status ERROR."""
    if _tracer is None:
        return _NOOP
    return _tracer.start_as_current_span(name, kind=kind, attributes=attributes)


def traced(name: str) -> Callable[[F], F]:
    """Decorate an async function: each call runs in a span called `name`."""

    def decorate(function: F) -> F:
        @functools.wraps(function)
        async def wrapper(*args: Any, **kwargs: Any) -> Any:
            if _tracer is None:
                return await function(*args, **kwargs)
            with _tracer.start_as_current_span(name):
                return await function(*args, **kwargs)

        return wrapper  # type: ignore[return-value]

    return decorate


def annotate(attributes: Mapping[str, Any], target: Span | None = None) -> None:
    """Set attributes on `target` or the current span (None values are left out)."""
    if _tracer is None:
        return
    target = target or trace.get_current_span()
    if target.is_recording():
        target.set_attributes({k: v for k, v in attributes.items() if v is not None})


def record_error(error: BaseException | str, target: Span | None = None) -> None:
    """Mark `target` (or the current span) failed: status ERROR and, for an exception, an exception event."""
    if _tracer is None:
        return
    target = target or trace.get_current_span()
    if not target.is_recording():
        return
    if isinstance(error, BaseException):
        target.record_exception(error)
        description = f"{type(error).__name__}: {error}"
    else:
        description = error
    target.set_status(Status(StatusCode.ERROR, description))


def tag_correlation(correlation_id: str) -> None:
    """Put the request's correlation id (X-Correlation-ID) on the current span."""
    if _tracer is not None:
        annotate({CORRELATION_ATTRIBUTE: correlation_id})


# -- queued jobs ---------------------------------------------------------------------------------------


def send(job: str, record_id: str) -> AbstractContextManager[Span]:
    """The producer span around queueing one job."""
    if _tracer is None:
        return _NOOP
    return _tracer.start_as_current_span(
        f"send {job}",
        kind=SpanKind.PRODUCER,
        attributes={
            "messaging.system": "taskiq",
            "messaging.operation.type": "send",
            "messaging.destination.name": job,
            "alp.job.record_id": record_id,
        },
    )


def inject() -> dict[str, str] | None:
    """The current trace context as W3C headers (`traceparent`, `tracestate`), for a job to carry."""
    if _tracer is None:
        return None
    carrier: dict[str, str] = {}
    propagate.inject(carrier)
    return carrier or None


def consume(job: str, record_id: str, carrier: Mapping[str, str] | None) -> AbstractContextManager[Span]:
    """The consumer span of one job run, a child of the context the job carries (else of the current one)."""
    if _tracer is None:
        return _NOOP
    parent = propagate.extract(carrier) if carrier else None
    return _tracer.start_as_current_span(
        f"process {job}",
        context=parent,
        kind=SpanKind.CONSUMER,
        attributes={
            "messaging.system": "taskiq",
            "messaging.operation.type": "process",
            "messaging.destination.name": job,
            "alp.job.record_id": record_id,
        },
    )


# -- model inference (GenAI semantic conventions) ------------------------------------------------------


def inference(
    *,
    operation: str,
    system: str,
    model: str,
    alias: str,
    max_tokens: int | None = None,
    temperature: float | None = None,
) -> AbstractContextManager[Span]:
    """A client span around one call to a model (`gen_ai.*` attributes; usage added by `inference_usage`)."""
    if _tracer is None:
        return _NOOP
    attributes = {
        "gen_ai.operation.name": operation,
        "gen_ai.system": system,
        "gen_ai.request.model": model,
        "alp.model.alias": alias,
        "gen_ai.request.max_tokens": max_tokens,
        "gen_ai.request.temperature": temperature,
    }
    return _tracer.start_as_current_span(
        f"{operation} {model}",
        kind=SpanKind.CLIENT,
        attributes={k: v for k, v in attributes.items() if v is not None},
    )


def inference_usage(
    target: Span, *, input_tokens: int, output_tokens: int | None = None, response_model: str | None = None
) -> None:
    """Token usage of a finished model call on its span."""
    if _tracer is None or not target.is_recording():
        return
    annotate(
        {
            "gen_ai.usage.input_tokens": input_tokens,
            "gen_ai.usage.output_tokens": output_tokens,
            "gen_ai.response.model": response_model,
        },
        target,
    )
