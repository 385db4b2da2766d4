"""Prometheus metrics: one registry per application, an ASGI middleware for HTTP requests, and two
observers that turn what the platform does into counters and histograms: `observe_event` (tasks,
routing decisions and rewards, from the events the services publish) and `observe_usage` (model calls,
from the model gateway's usage records).

Each process counts what it did itself: events when it publishes them (`bus.observe`; with a shared
broker bus every process receives every event, so counting deliveries would count each task once per
process), model calls where the model gateway runs. Summing a counter over processes gives the
platform's total. This module imports no service.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Any

from fastapi import APIRouter, Response
from fastapi.responses import PlainTextResponse
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    GCCollector,
    Histogram,
    PlatformCollector,
    ProcessCollector,
    generate_latest,
)
from pydantic import RootModel
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from agent_lightning.core.events import Event
from agent_lightning.core.logging import get_logger

log = get_logger(__name__)

REFRESH_TIMEOUT_S = 5.0
"""How long a scrape waits for the gauges read from the database (an outage must not hang /metrics)."""

UNMATCHED_ROUTE = "unmatched"
"""The route label of requests that matched no route (404s): raw paths would make unbounded labels."""

TASK_OUTCOMES = {"task.succeeded": "succeeded", "task.failed": "failed", "task.cancelled": "cancelled"}

_LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0)
_STAGE_BUCKETS = (
    0.0001,
    0.00025,
    0.0005,
    0.001,
    0.0025,
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1.0,
    5.0,
    30.0,
)
_REWARD_BUCKETS = (0.0, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0)


class Metrics:
    """The application's metrics, in a registry of its own (so several apps in one process never collide)."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        r = self.registry
        ProcessCollector(registry=r)  # process_cpu_seconds_total, process_resident_memory_bytes, …
        PlatformCollector(registry=r)  # python_info
        GCCollector(registry=r)
        self.http_requests = Counter(
            "alp_http_requests",
            "HTTP requests by method, route template and status.",
            ["method", "route", "status"],
            registry=r,
        )
        self.http_duration = Histogram(
            "alp_http_request_duration_seconds",
            "HTTP request latency by method and route template.",
            ["method", "route"],
            buckets=_LATENCY_BUCKETS,
            registry=r,
        )
        self.tasks = Counter(
            "alp_tasks",
            "Finished tasks by outcome (succeeded, failed, cancelled) and agent.",
            ["outcome", "agent"],
            registry=r,
        )
        self.task_run = Histogram(
            "alp_task_run_seconds",
            "Run time of a task's successful attempt, by agent.",
            ["agent"],
            buckets=_LATENCY_BUCKETS,
            registry=r,
        )
        self.decisions = Counter(
            "alp_routing_decisions",
            "Routing decisions at intake by policy (or 'explicit') and chosen agent.",
            ["policy", "agent"],
            registry=r,
        )
        self.decision_duration = Histogram(
            "alp_routing_decision_seconds",
            "Time from a task's intake to its logged routing decision (candidates, policy choice, storage).",
            ["policy"],
            buckets=_LATENCY_BUCKETS,
            registry=r,
        )
        self.rewards = Histogram(
            "alp_reward",
            "Rewards given to routing decisions, by source (outcome, feedback) and agent.",
            ["source", "agent"],
            buckets=_REWARD_BUCKETS,
            registry=r,
        )
        # The database's view, platform-wide: set at each scrape by the process that runs monitoring.
        self.tasks_current = Gauge(
            "alp_tasks_current",
            "Unfinished tasks by status (queued and assigned: the queue's depth; running: in "
            "flight), platform-wide, as the database has them.",
            ["status"],
            registry=r,
        )
        self.tasks_lease_expired = Gauge(
            "alp_tasks_lease_expired",
            "Running tasks whose lease ran out (their process may have died).",
            registry=r,
        )
        self._refreshers: list[Callable[[Metrics], Awaitable[None]]] = []
        self.logins = Counter(
            "alp_auth_logins",
            "Password logins by outcome (succeeded, or why they failed) when auth is on.",
            ["outcome"],
            registry=r,
        )
        self.model_requests = Counter(
            "alp_model_requests",
            "Model gateway calls by provider, model alias, kind and status (ok, error, cached).",
            ["provider", "model", "kind", "status"],
            registry=r,
        )
        self.model_tokens = Counter(
            "alp_model_tokens",
            "Tokens through the model gateway by provider, model alias and type (prompt, completion).",
            ["provider", "model", "type"],
            registry=r,
        )
        self.model_cost = Counter(
            "alp_model_cost_usd",
            "What model gateway calls cost in USD (ALP_MODEL_PRICES), by provider and model alias.",
            ["provider", "model"],
            registry=r,
        )
        self.task_stages = Histogram(
            "alp_task_stage_seconds",
            "Time spent per task in each stage: intake, routing, queue_wait, execution, "
            "persistence, learning (core/stages.py).",
            ["stage"],
            buckets=_STAGE_BUCKETS,
            registry=r,
        )
        self.model_duration = Histogram(
            "alp_model_request_duration_seconds",
            "Model gateway call latency (cache hits excluded), by provider and model.",
            ["provider", "model"],
            buckets=_LATENCY_BUCKETS,
            registry=r,
        )

    def exposition(self) -> bytes:
        """The registry in the Prometheus text format."""
        return generate_latest(self.registry)

    def refresh_with(self, refresher: Callable[[Metrics], Awaitable[None]]) -> None:
        """Have `refresher` set gauges before each scrape (from the database, say)."""
        self._refreshers.append(refresher)

    async def refresh(self) -> None:
        """Run the refreshers; one that fails or takes longer than REFRESH_TIMEOUT_S leaves its gauges as they
        were (a scrape still answers during a database outage)."""
        for refresher in self._refreshers:
            try:
                await asyncio.wait_for(refresher(self), REFRESH_TIMEOUT_S)
            except Exception as exc:
                log.warning("metrics_refresh_failed", error=repr(exc))

    # -- what the platform does ---------------------------------------------------------------------------

    def observe_event(self, event: Event) -> None:
        """Count an event this process publishes: a new task's routing decision (``task.created``
        carries `policy`, `agent_id`, `decision_ms`), a finished task and its outcome reward, feedback,
        password logins."""
        data = event.data
        outcome = TASK_OUTCOMES.get(event.type)
        if outcome is not None:
            agent = str(data.get("agent_id") or "none")
            self.tasks.labels(outcome, agent).inc()
            if outcome == "succeeded" and isinstance(data.get("latency_ms"), (int, float)):
                self.task_run.labels(agent).observe(data["latency_ms"] / 1000)
            if isinstance(data.get("reward"), (int, float)):
                self.rewards.labels("outcome", agent).observe(data["reward"])
        elif event.type == "task.created" and data.get("policy"):
            self.decisions.labels(data["policy"], str(data.get("agent_id") or "none")).inc()
            if isinstance(data.get("decision_ms"), (int, float)):
                self.decision_duration.labels(data["policy"]).observe(data["decision_ms"] / 1000)
        elif event.type == "feedback.received" and isinstance(data.get("reward"), (int, float)):
            self.rewards.labels("feedback", str(data.get("agent_id") or "none")).observe(data["reward"])
        elif event.type == "auth.login_succeeded":
            self.logins.labels("succeeded").inc()
        elif event.type == "auth.login_failed":
            self.logins.labels(str(data.get("reason") or "failed")).inc()

    def observe_stage(self, stage: str, seconds: float) -> None:
        """Count the time one task spent in one stage (core/stages.py)."""
        self.task_stages.labels(stage).observe(seconds)

    def observe_usage(self, usage: Any) -> None:
        """Count one model gateway call from its usage record (`provider`, `model`, `kind`, `status`,
        `cached`, `prompt_tokens`, `completion_tokens`, `latency_ms`, `cost_usd`)."""
        provider = usage.provider or "none"
        status = "error" if usage.status != "ok" else ("cached" if usage.cached else "ok")
        self.model_requests.labels(provider, usage.model, usage.kind, status).inc()
        if usage.prompt_tokens:
            self.model_tokens.labels(provider, usage.model, "prompt").inc(usage.prompt_tokens)
        if usage.completion_tokens:
            self.model_tokens.labels(provider, usage.model, "completion").inc(usage.completion_tokens)
        if usage.cost_usd:
            self.model_cost.labels(provider, usage.model).inc(usage.cost_usd)
        if not usage.cached and usage.latency_ms:
            self.model_duration.labels(provider, usage.model).observe(usage.latency_ms / 1000)


# -- HTTP ---------------------------------------------------------------------------------------------------


class HTTPMetricsMiddleware:
    """Counts HTTP requests by method, route template (``/tasks/{task_id}``, never the raw path) and
    status, and observes their latency. Websocket connections are not requests and are not counted."""

    def __init__(self, app: ASGIApp, metrics: Metrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500  # unless a response starts: an exception escaping the app becomes a 500

        async def send_and_remember(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_and_remember)
        finally:
            route = scope.get("route")  # set by the router on the scope it was given
            template = getattr(route, "path", None) or UNMATCHED_ROUTE
            method = scope["method"]
            self.metrics.http_requests.labels(method, template, str(status)).inc()
            self.metrics.http_duration.labels(method, template).observe(time.perf_counter() - started)


class PrometheusText(RootModel[str]):
    """Metrics in the Prometheus text exposition format (``text/plain; version=…``)."""


def metrics_router(metrics: Metrics) -> APIRouter:
    """``GET /metrics`` in the Prometheus text format."""
    api = APIRouter(tags=["monitoring"])

    @api.get(
        "/metrics",
        summary="Prometheus metrics",
        response_class=PlainTextResponse,
        responses={
            200: {"model": PrometheusText, "description": "The metrics in the Prometheus text format."}
        },
    )
    async def prometheus_metrics() -> Response:
        await metrics.refresh()
        return Response(content=metrics.exposition(), media_type=CONTENT_TYPE_LATEST)

    return api
