"""Split mode with real processes: the orchestrator and execution export their spans over OTLP/HTTP to a small
receiver started by the test, and a task is one trace across both, the execution's server span a child of the
orchestrator's HTTP call."""

from __future__ import annotations

import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import httpx
import pytest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)
from opentelemetry.proto.trace.v1.trace_pb2 import Span
from support import free_port

pytestmark = pytest.mark.slow


class Receiver:
    """An OTLP/HTTP trace receiver on loopback: keeps every span with the service.name of its process."""

    def __init__(self) -> None:
        self.spans: list[tuple[str, Span]] = []
        self.scopes: set[str] = set()
        self.lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                request = ExportTraceServiceRequest.FromString(body)
                with receiver.lock:
                    for resource_spans in request.resource_spans:
                        attributes = {a.key: a.value.string_value for a in resource_spans.resource.attributes}
                        for scope_spans in resource_spans.scope_spans:
                            receiver.scopes.add(scope_spans.scope.name)
                            receiver.spans.extend((attributes["service.name"], s) for s in scope_spans.spans)
                answer = ExportTraceServiceResponse().SerializeToString()
                self.send_response(200)
                self.send_header("Content-Type", "application/x-protobuf")
                self.send_header("Content-Length", str(len(answer)))
                self.end_headers()
                self.wfile.write(answer)

            def log_message(self, *args) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", free_port()), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> Receiver:
        self.thread.start()
        return self

    def __exit__(self, *_) -> None:
        self.server.shutdown()
        self.server.server_close()

    def snapshot(self) -> list[tuple[str, Span]]:
        with self.lock:
            return list(self.spans)


def wait_for(predicate, timeout: float = 20):
    deadline = time.monotonic() + timeout
    while not (value := predicate()):
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        time.sleep(0.05)
    return value


def test_a_task_is_one_trace_across_the_orchestrator_and_execution_processes(cluster):
    with Receiver() as receiver:
        otel = {
            "ALP_TRACING": "true",
            "ALP_OTEL_EXPORTER": "otlp",
            "OTEL_EXPORTER_OTLP_ENDPOINT": receiver.url,
            "OTEL_BSP_SCHEDULE_DELAY": "50",
        }
        execution = cluster.start("exec", "execution", free_port(), **otel)
        orchestrator = cluster.start(
            "orchestrator",
            "orchestrator",
            free_port(),
            ALP_EXECUTION_URLS=execution,
            ALP_AGENTS_URL=execution,
            **otel,
        )
        body = httpx.post(
            f"{orchestrator}/assign-task",
            json={"description": "Deploy with docker"},
            headers={"X-Correlation-ID": "split-trace"},
        ).json()
        task = wait_for(
            lambda: (
                (t := httpx.get(f"{orchestrator}/tasks/{body['task_id']}").json())["status"]
                in ("succeeded", "failed")
                and t
            )
        )
        assert task["status"] == "succeeded"

        def complete():
            spans = receiver.snapshot()
            names = {(service, s.name) for service, s in spans}
            wanted = {
                ("agent-lightning-orchestrator", "process orchestrator.run_task"),
                ("agent-lightning-execution", "chat scripted-1"),
            }
            return spans if wanted <= names else None

        spans = wait_for(complete)
        cluster.stop_all()  # while the receiver still takes their last export

    def one(service: str, name: str) -> Span:
        found = [s for svc, s in spans if svc == service and s.name == name]
        assert len(found) == 1, (service, name, len(found))
        return found[0]

    request = one("agent-lightning-orchestrator", "POST /assign-task")
    assert {a.key: a.value.string_value for a in request.attributes}["alp.correlation_id"] == "split-trace"
    attempt = one("agent-lightning-orchestrator", "attempt")
    served = one("agent-lightning-execution", "POST /api/v2/agents/execute")
    model_call = one("agent-lightning-execution", "chat scripted-1")
    trace_id = request.trace_id
    assert attempt.trace_id == served.trace_id == model_call.trace_id == trace_id  # one trace, two processes

    orchestrator_spans = {s.span_id: s for svc, s in spans if svc == "agent-lightning-orchestrator"}
    call = orchestrator_spans[served.parent_span_id]  # the execution's server span: a child of the HTTP call
    assert call.kind == Span.SPAN_KIND_CLIENT and call.name == "POST" and call.trace_id == trace_id
    assert call.parent_span_id == attempt.span_id  # made by the attempt (no retry, no fallback)
    execution_spans = {s.span_id: s for svc, s in spans if svc == "agent-lightning-execution"}
    execute = execution_spans[model_call.parent_span_id]
    assert (
        execute.name == "execute agent" and execution_spans[execute.parent_span_id].span_id == served.span_id
    )
    job = one("agent-lightning-orchestrator", "process orchestrator.run_task")
    assert attempt.parent_span_id == job.span_id
    route = orchestrator_spans[orchestrator_spans[job.parent_span_id].parent_span_id]
    assert route.name == "route task" and route.parent_span_id == request.span_id
    # the orchestrator asked the agent registry (served with execution) over HTTP inside the routing decision
    registry_calls = [
        s
        for svc, s in spans
        if svc == "agent-lightning-execution"
        and s.name.startswith("GET /api/v2/agents")
        and s.trace_id == trace_id
    ]
    assert registry_calls and all(
        orchestrator_spans[s.parent_span_id].parent_span_id == route.span_id for s in registry_calls
    )
    assert (
        "opentelemetry.instrumentation.sqlalchemy" not in receiver.scopes
    )  # statement spans are opt-in (ALP_TRACING_DB)
