"""The composition root: decides, from configuration, which services run in this process and which
are reached over HTTP, wires them together, and builds the FastAPI application.

Only this module (and the CLI that calls it) knows every service.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

from fastapi import Depends, FastAPI
from fastapi.middleware.cors import CORSMiddleware
from pydantic import BaseModel

from agent_lightning import __version__
from agent_lightning.agents import api as agents_api
from agent_lightning.agents.client import AgentsClient
from agent_lightning.agents.fleet import DEFAULT_FLEET
from agent_lightning.agents.schemas import AgentRegistry
from agent_lightning.agents.service import AgentService
from agent_lightning.auth import api as auth_api
from agent_lightning.auth.service import AuthService
from agent_lightning.core.auth import AUTH_RESPONSES, by_method, service_credentials
from agent_lightning.core.brokers import BrokerBus, make_bus
from agent_lightning.core.config import Settings, get_settings
from agent_lightning.core.db import Database
from agent_lightning.core.errors import Unavailable
from agent_lightning.core.events import Event, InProcessBus
from agent_lightning.core.http import ERROR_RESPONSES, RequestContextMiddleware, install_error_handlers
from agent_lightning.core import tracing
from agent_lightning.core.logging import configure_logging, get_logger
from agent_lightning.core.metrics import HTTPMetricsMiddleware, Metrics, metrics_router
from agent_lightning.core.queue import JobQueue
from agent_lightning.core.ratelimit import RateLimiter, RateLimitMiddleware
from agent_lightning.core.resilience import ServiceCaller
from agent_lightning.core.tenancy import set_tenant
from agent_lightning.execution import api as execution_api
from agent_lightning.execution.client import ExecutionClient
from agent_lightning.execution.schemas import Executor
from agent_lightning.execution.service import ExecutionService
from agent_lightning.knowledge import api as knowledge_api
from agent_lightning.knowledge.client import KnowledgeClient
from agent_lightning.knowledge.schemas import KnowledgeBase, LearnRequest
from agent_lightning.knowledge.service import KnowledgeService
from agent_lightning.memory import api as memory_api
from agent_lightning.memory.client import MemoryClient
from agent_lightning.memory.schemas import MemoryStore
from agent_lightning.memory.service import MemoryService
from agent_lightning.models.schemas import ModelGateway
from agent_lightning.models.service import ModelService, build_model_service
from agent_lightning.monitoring import api as monitoring_api
from agent_lightning.monitoring.service import MonitoringService
from agent_lightning.orchestrator import api as orchestrator_api
from agent_lightning.orchestrator.client import OrchestratorClient
from agent_lightning.orchestrator.embedding import GatewayEmbedder
from agent_lightning.orchestrator.policy import configured_params, make_policy
from agent_lightning.orchestrator.schemas import Router
from agent_lightning.orchestrator.service import OrchestratorService, feedback_reward
from agent_lightning.orchestrator.worker import TaskWorker
from agent_lightning.realtime import api as realtime_api
from agent_lightning.validation import api as validation_api
from agent_lightning.validation.client import ValidationClient
from agent_lightning.validation.schemas import Validator
from agent_lightning.validation.service import ValidationService
from agent_lightning.workflows import api as workflows_api
from agent_lightning.workflows.gateway import OrchestratorTasksClient
from agent_lightning.workflows.schemas import TaskGateway
from agent_lightning.workflows.service import WorkflowService

log = get_logger(__name__)

SERVICES = ("auth", "orchestrator", "execution", "models", "knowledge", "memory", "validation", "monitoring", "workflows")
"""Services that can run in their own process. The agent registry is served with execution."""


@dataclass
class Platform:
    """Everything one process runs, wired."""

    settings: Settings
    services: frozenset[str]
    db: Database
    bus: InProcessBus | BrokerBus
    queue: JobQueue
    models: ModelGateway
    agents: AgentRegistry | None
    model_service: ModelService | None = None
    agent_service: AgentService | None = None
    execution: ExecutionService | None = None
    orchestrator: OrchestratorService | None = None
    worker: TaskWorker | None = None
    knowledge: KnowledgeBase | None = None
    knowledge_service: KnowledgeService | None = None
    memory: MemoryStore | None = None
    memory_service: MemoryService | None = None
    validation: Validator | None = None
    validation_service: ValidationService | None = None
    workflows: WorkflowService | None = None
    monitoring: MonitoringService | None = None
    callers: list[ServiceCaller] = field(default_factory=list)
    migrate: bool = True
    queue_running: bool = False
    jobs: set[asyncio.Task] = field(default_factory=set)
    background: set[asyncio.Task] = field(default_factory=set)

    async def start(self) -> None:
        """Connect the event bus, migrate, seed, restore learned state, start the queue and requeue
        unfinished work."""
        await self.bus.start()  # before anything publishes
        if self.migrate:
            await self.db.upgrade()
        if self.knowledge_service is not None:
            await self.knowledge_service.start()
        if self.agent_service is not None:
            created = await self.agent_service.seed(DEFAULT_FLEET)
            if created:
                log.info("fleet_seeded", agents=created)
        await self.queue.start()
        self.queue_running = True
        if self.orchestrator is not None:
            await self.orchestrator.load_policy()
        # With a shared queue, or other processes running the same service, work may be running elsewhere:
        # only an expired lease (a task) or an overrun timeout (an execution) orphans it.
        sole_worker = frozenset(SERVICES) - {"monitoring"} <= self.services and not self.queue.distributed
        if self.orchestrator is not None:
            for task_id in await self.orchestrator.recoverable(sole_worker=sole_worker):
                await self.orchestrator.dispatch(task_id)
        if self.execution is not None:
            for execution_id in await self.execution.requeue_unfinished(sole_worker=sole_worker):
                await self.execution.enqueue(execution_id)
        if self.workflows is not None:
            for run_id in await self.workflows.recoverable(sole_worker=sole_worker):
                await self.workflows.enqueue(run_id)
        if self.orchestrator is not None or self.execution is not None or self.workflows is not None:
            self.background.add(asyncio.create_task(self._sweep_orphans()))
        self.queue.consume()  # with a real broker, this process takes its services' jobs from here on
        if self.monitoring is not None:
            await self.monitoring.start()

    async def _sweep_orphans(self) -> None:
        """Requeue running work whose process (another replica) died: tasks whose lease ran out,
        executions that overran their timeout."""
        interval = max(1.0, self.settings.lease_s / 4)
        while True:
            await asyncio.sleep(interval)
            try:
                if self.orchestrator is not None:
                    for task_id in await self.orchestrator.recoverable(sole_worker=False, include_waiting=False):
                        await self.orchestrator.dispatch(task_id)
                if self.execution is not None:
                    for execution_id in await self.execution.requeue_unfinished(sole_worker=False, include_waiting=False):
                        await self.execution.enqueue(execution_id)
                if self.workflows is not None:
                    for run_id in await self.workflows.recoverable(sole_worker=False, include_waiting=False):
                        await self.workflows.enqueue(run_id)
            except Exception:
                log.exception("orphan_sweep_failed")

    async def stop(self) -> None:
        """Stop jobs in flight (their tasks stay `running` and are requeued at the next start, or by
        another replica once their lease runs out)."""
        self.queue_running = False
        self.queue.stop_accepting()  # deliveries not yet acknowledged go to another process
        if self.monitoring is not None:
            await self.monitoring.stop()
        for job in [*self.jobs, *self.background]:
            job.cancel()
        await asyncio.gather(*self.jobs, *self.background, return_exceptions=True)
        await self.queue.stop()
        await self.bus.close()
        if self.knowledge_service is not None:
            await self.knowledge_service.stop()
        if self.model_service is not None:
            await self.model_service.close()
        for caller in self.callers:
            await caller.close()
        await self.db.close()

    async def readiness(self) -> dict[str, dict[str, Any]]:
        """Each dependency this process needs, and whether it answers."""
        checks: dict[str, dict[str, Any]] = {}
        try:
            await self.db.ping()
            checks["database"] = {"ok": True, "detail": self.db.engine.dialect.name}
        except Exception as exc:
            checks["database"] = {"ok": False, "detail": type(exc).__name__}
        queue_ok, queue_detail = await self.queue.ready()
        checks["queue"] = {"ok": self.queue_running and queue_ok, "detail": queue_detail}
        bus_ok, bus_detail = await self.bus.ready()
        checks["bus"] = {"ok": bus_ok, "detail": bus_detail}
        health = await self.models.ready()
        checks["model"] = {"ok": health.ok, "detail": health.detail}
        if self.knowledge_service is not None:
            ok, detail = self.knowledge_service.health()
            if not ok and self.execution is not None:  # tasks still run, without retrieved knowledge
                ok, detail = True, f"degraded, tasks run without knowledge: {detail}"
            checks["knowledge"] = {"ok": ok, "detail": detail}
        if self.worker is not None and self.execution is None:
            reachable = await self.worker.executor.ready()
            checks["execution"] = {"ok": reachable, "detail": "reachable" if reachable else "unreachable"}
        return checks


def _caller(settings: Settings, name: str, urls: Iterable[str]) -> ServiceCaller:
    return ServiceCaller(
        name,
        list(urls),
        timeout_s=settings.http_timeout_s,
        retries=settings.http_retries,
        backoff_s=settings.retry_backoff_s,
        breaker_failures=settings.breaker_failures,
        breaker_reset_s=settings.breaker_reset_s,
        credentials=service_credentials(settings.auth_secret.get_secret_value(), name)
        if settings.auth_enabled and settings.auth_secret else None,
    )


def _queue(
    queue: JobQueue, name: str, handler: Callable[[str], Awaitable[None]], jobs: set[asyncio.Task]
) -> Callable[[str], Awaitable[None]]:
    """Register `handler` as the job `name` (its own stream on a real broker, consumed by every process
    that registers it); return the function that enqueues one job. Jobs running in this process are
    tracked in `jobs` so that shutdown can stop them."""
    return queue.register(name, handler, jobs)


def build_platform(
    settings: Settings,
    services: Iterable[str] = SERVICES,
    *,
    model_service: ModelService | None = None,
) -> Platform:
    """Wire the services named in `services` in-process and the others as HTTP clients.

    `model_service` replaces the configured one (tests register scripted providers through it).
    """
    local = frozenset(services)
    unknown = local - set(SERVICES)
    if unknown:
        raise ValueError(f"Unknown services: {sorted(unknown)}")
    db = Database(settings.resolved_database_url())
    bus = make_bus(settings.event_bus_url, prefix=settings.event_bus_prefix)
    queue = JobQueue(settings)
    callers: list[ServiceCaller] = []

    def remote(name: str, url: str | None) -> ServiceCaller:
        if not url:
            raise ValueError(f"The {name} service is not in this process: set ALP_{name.upper()}_URL.")
        caller = _caller(settings, name, [url])
        callers.append(caller)
        return caller

    # Models: in-process when this process serves it or nobody else does.
    model_svc = None
    if "models" in local or not settings.models_url:
        model_svc = model_service or build_model_service(settings, db)
        models: ModelGateway = model_svc
    else:
        from agent_lightning.models.client import ModelsClient

        models = ModelsClient(remote("models", settings.models_url))

    # Agents: served with execution; reached over HTTP by an orchestrator that runs without it.
    agent_svc = None
    agents: AgentRegistry | None = None
    if "execution" in local:
        agent_svc = AgentService(db, models)
        agents = agent_svc
    elif "orchestrator" in local:
        agents = AgentsClient(remote("agents", settings.agents_url or (settings.execution_urls or [None])[0]))

    knowledge_svc: KnowledgeService | None = None
    knowledge: KnowledgeBase | None = None
    if "knowledge" in local:
        knowledge_svc = KnowledgeService(settings=settings, db=db, embeddings=models, models=models)
        knowledge = knowledge_svc
    elif settings.knowledge_url:
        knowledge = KnowledgeClient(remote("knowledge", settings.knowledge_url))
    memory_svc: MemoryService | None = None
    memory: MemoryStore | None = None
    if "memory" in local:
        memory_svc = MemoryService(settings=settings, db=db, embeddings=models, models=models)
        memory = memory_svc
    elif settings.memory_url:
        memory = MemoryClient(remote("memory", settings.memory_url))
    # Validation: served here, or the orchestrator's (in-process unless ALP_VALIDATION_URL names the service).
    validation_svc: ValidationService | None = None
    validator: Validator | None = None
    if "validation" in local or ("orchestrator" in local and not settings.validation_url):
        validation_svc = ValidationService(settings=settings, db=db)
        validator = validation_svc
    elif "orchestrator" in local:
        validator = ValidationClient(remote("validation", settings.validation_url))

    platform = Platform(
        settings=settings,
        services=local,
        db=db,
        bus=bus,
        queue=queue,
        models=models,
        agents=agents,
        model_service=model_svc,
        agent_service=agent_svc,
        callers=callers,
        knowledge=knowledge,
        knowledge_service=knowledge_svc,
        memory=memory,
        memory_service=memory_svc,
        validation=validator,
        validation_service=validation_svc,
    )

    if "orchestrator" in local:
        params = configured_params(settings)
        policy = make_policy(settings.policy, **params)
        embedder = GatewayEmbedder(models, settings.policy_embedding_model) if settings.policy_embeddings else None
        platform.orchestrator = OrchestratorService(
            settings=settings, db=db, agents=agents, policy=policy, bus=bus, policy_params=params, embedder=embedder,
            validator=validator,
        )

    if "execution" in local:
        router: Router | None = platform.orchestrator
        if router is None and settings.orchestrator_url:
            router = OrchestratorClient(remote("orchestrator", settings.orchestrator_url))
        platform.execution = ExecutionService(
            settings=settings, db=db, agents=agents, models=models, router=router, knowledge=knowledge, memory=memory
        )
        platform.execution.enqueue = _queue(queue, "execution.run", platform.execution.run_queued, platform.jobs)

    if platform.orchestrator is not None:
        if platform.execution is not None:
            executor: Executor = platform.execution
        else:
            if not settings.execution_urls:
                raise ValueError("The execution service is not in this process: set ALP_EXECUTION_URLS.")
            caller = _caller(settings, "execution", settings.execution_urls)
            callers.append(caller)
            executor = ExecutionClient(caller)
        platform.worker = TaskWorker(platform.orchestrator, executor, bus)
        enqueue_task = _queue(queue, "orchestrator.run_task", platform.worker.run, platform.jobs)
        platform.orchestrator.dispatch = enqueue_task
        platform.worker.enqueue = enqueue_task
        if knowledge is not None:
            bus.subscribe("feedback.received", _learn_from_feedback(platform))

    if "workflows" in local:
        # A run's agent tasks go through the orchestrator: in this process, or over HTTP.
        tasks: TaskGateway | None = platform.orchestrator
        if tasks is None:
            tasks = OrchestratorTasksClient(remote("orchestrator", settings.orchestrator_url))
        platform.workflows = WorkflowService(settings=settings, db=db, bus=bus, tasks=tasks)
        platform.workflows.enqueue = _queue(queue, "workflows.run", platform.workflows.run_queued, platform.jobs)

    if "monitoring" in local:
        # Services of other processes are probed on /health; the dashboard calls the orchestrator where it is.
        urls = {"orchestrator": settings.orchestrator_url, "execution": (settings.execution_urls or [None])[0],
                "models": settings.models_url, "knowledge": settings.knowledge_url, "memory": settings.memory_url}
        platform.monitoring = MonitoringService(
            settings=settings, db=db, bus=bus, local_checks=platform.readiness,
            remote_services={name: url for name, url in urls.items() if url and name not in local},
            api_base="" if "orchestrator" in local else (settings.orchestrator_url or ""),
            agents_base="" if "execution" in local else (settings.agents_url or (settings.execution_urls or [""])[0]),
            auth_base="" if "auth" in local else (settings.auth_url or ""),
        )
    return platform


def _learn_from_feedback(platform: Platform) -> Callable[[Event], Awaitable[None]]:
    """A rewarded task, handed to the knowledge service in the background (it may ask the model)."""

    async def learn(event: Event) -> None:
        set_tenant(event.tenant_id)
        task = await platform.orchestrator.get_task(event.data["task_id"])
        if task.status != "succeeded":
            return
        answer = next((a for a in reversed(task.attempts) if a.status == "succeeded"), None)
        request = LearnRequest(task_id=task.task_id, task=task.description, answer=task.result or "",
                               reward=feedback_reward(float(event.data["score"])),
                               agent_id=answer.agent_id if answer else task.assigned_agent)
        result = await platform.knowledge.learn(request)
        log.info("knowledge_learned", task_id=task.task_id, action=result.action, item_id=result.item_id)

    async def handler(event: Event) -> None:
        job = asyncio.create_task(learn(event))
        platform.background.add(job)
        job.add_done_callback(_forget(platform.background))

    return handler


def _forget(jobs: set[asyncio.Task]) -> Callable[[asyncio.Task], None]:
    def done(job: asyncio.Task) -> None:
        jobs.discard(job)
        if not job.cancelled() and job.exception() is not None:
            log.error("knowledge_learning_failed", error=repr(job.exception()))

    return done


class Liveness(BaseModel):
    status: str
    version: str
    services: list[str]


class Readiness(BaseModel):
    status: str
    checks: dict[str, dict[str, Any]]


def create_app(
    settings: Settings | None = None,
    services: Iterable[str] = SERVICES,
    *,
    model_service: ModelService | None = None,
    migrate: bool = True,
) -> FastAPI:
    """The FastAPI application serving `services` (all of them by default, on one port)."""
    settings = settings or get_settings()
    configure_logging(settings.log_level, settings.log_json, mask_pii=settings.pii_mask_logs)
    services = tuple(services)
    tracer_provider = tracing.configure(settings, name=tracing.service_name(services, SERVICES), version=__version__)
    if settings.auth_enabled:
        AuthService.check_settings(settings)  # before anything starts
    platform = build_platform(settings, services, model_service=model_service)
    platform.migrate = migrate
    limiter = RateLimiter(limit=settings.rate_limit, write_limit=settings.rate_limit_write,
                          storage_url=settings.rate_limit_storage_url, prefix=settings.rate_limit_prefix)

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        await platform.start()
        try:
            yield
        finally:
            await platform.stop()
            await limiter.aclose()
            tracing.shutdown(tracer_provider)  # exports the spans still buffered

    app = FastAPI(
        title="Agent Lightning",
        version=__version__,
        description=(
            "Route tasks to specialised AI agents with a policy that learns from outcomes.\n\n"
            "Live events: WebSocket `/ws/events?types=task.*&task_id=…&replay=N` streams the bus's events "
            "as JSON envelopes (not listed below: OpenAPI has no WebSockets). Prometheus metrics: `GET /metrics`."
        ),
        lifespan=lifespan,
    )
    app.state.platform = platform
    tracing.instrument_app(app)  # with ALP_TRACING: a server span per request, traceparent honoured
    tracing.instrument_engine(platform.db.engine, statements=settings.tracing_db)
    metrics = Metrics()  # a registry per application
    platform.bus.observe(metrics.observe_event)  # what this process publishes: tasks, decisions, rewards
    if platform.model_service is not None:
        platform.model_service.usage.listeners.append(metrics.observe_usage)
    app.state.metrics = metrics
    install_error_handlers(app)
    # The last added runs first: metrics → correlation id and body size → rate limit → routing, validation.
    app.add_middleware(RateLimitMiddleware, limiter=limiter)
    app.add_middleware(RequestContextMiddleware, max_body_bytes=settings.max_body_bytes)
    app.add_middleware(HTTPMetricsMiddleware, metrics=metrics)
    if settings.cors_origins:  # outermost: answers preflights; the dashboard of a monitoring process elsewhere
        app.add_middleware(CORSMiddleware, allow_origins=settings.cors_origins, allow_methods=["*"],
                           allow_headers=["*"], expose_headers=["X-Correlation-ID"])
    # Authentication (opt-in, README "Authentication and roles"): with it on, every router but health and the
    # docs needs a role (viewer to read, operator to write, admin where a route asks); with it off everyone is an
    # anonymous admin of the default tenant.
    if settings.auth_enabled:
        app.state.auth = AuthService(platform.db, settings, platform.bus)  # every process checks credentials
        if "auth" in platform.services:
            app.include_router(auth_api.router(app.state.auth))  # logins, users and keys

    def include(router, write: str = "operator") -> None:
        if settings.auth_enabled:
            app.include_router(router, dependencies=[Depends(by_method(write))], responses=AUTH_RESPONSES)
        else:
            app.include_router(router)

    include(metrics_router(metrics))
    if platform.workflows is not None:  # the builder page first: /workflows/builder is not a workflow id
        app.include_router(workflows_api.builder_router())  # the page and its files: no data, logs in itself
        include(workflows_api.router(platform.workflows))
    app.include_router(realtime_api.router(platform.bus))  # authenticates its own handshake

    if platform.orchestrator is not None:
        include(orchestrator_api.router(platform.orchestrator))
    if platform.execution is not None:
        include(execution_api.router(platform.execution))
        include(agents_api.router(platform.agent_service), write="admin")  # the fleet is the admins'
    if platform.knowledge_service is not None:
        include(knowledge_api.router(platform.knowledge_service))
    if platform.memory_service is not None:
        include(memory_api.router(platform.memory_service))
    if "validation" in platform.services and platform.validation_service is not None:
        include(validation_api.router(platform.validation_service))
    if "models" in platform.services and platform.model_service is not None:
        from agent_lightning.models import api as models_api

        include(models_api.router(platform.model_service))
    if platform.monitoring is not None:
        include(monitoring_api.router(platform.monitoring))
        app.include_router(monitoring_api.dashboard_router(platform.monitoring))  # the page and its files: no data

    @app.get("/health", response_model=Liveness, tags=["health"], summary="Liveness")
    async def health() -> Liveness:
        return Liveness(status="ok", version=__version__, services=sorted(platform.services))

    @app.get("/health/ready", response_model=Readiness, tags=["health"], responses=ERROR_RESPONSES, summary="Readiness")
    async def ready() -> Readiness:
        checks = await platform.readiness()
        if not all(check["ok"] for check in checks.values()):
            raise Unavailable("Not ready.", code="not_ready", details=checks)
        return Readiness(status="ready", checks=checks)

    return app
