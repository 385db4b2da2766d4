"""The composition root: decides, from configuration, which services run in this process and which
are reached over HTTP, wires them together, and builds the FastAPI application.

Only this module (and the CLI that calls it) knows every service.
"""

from __future__ import annotations

import asyncio
import gc
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

from fastapi import APIRouter, Depends, FastAPI
from fastapi.middleware.cors import CORSMiddleware
from fastapi_offline import FastAPIOffline
from pydantic import BaseModel

from agent_lightning import __version__, flows
from agent_lightning.agents import api as agents_api
from agent_lightning.agents.client import AgentsClient
from agent_lightning.agents.fleet import DEFAULT_FLEET
from agent_lightning.agents.schemas import AgentRegistry
from agent_lightning.agents.service import AgentService
from agent_lightning.auth import api as auth_api
from agent_lightning.auth.service import AuthService
from agent_lightning.core import stages, tracing
from agent_lightning.core.auth import AUTH_RESPONSES, by_method, identify, service_credentials
from agent_lightning.core.brokers import BrokerBus, make_bus
from agent_lightning.core.config import Settings, get_settings
from agent_lightning.core.crypto import SecretCipher, cipher_from_settings
from agent_lightning.core.db import Database, SchemaOutdated
from agent_lightning.core.errors import Unavailable
from agent_lightning.core.events import InProcessBus
from agent_lightning.core.exposure import HostHeaderGuard, is_loopback
from agent_lightning.core.http import (
    ERROR_RESPONSES,
    RequestContextMiddleware,
    install_error_handlers,
    reject_nul_characters,
)
from agent_lightning.core.leases import LeasedWork
from agent_lightning.core.logging import configure_logging, get_logger
from agent_lightning.core.metrics import HTTPMetricsMiddleware, Metrics, metrics_router
from agent_lightning.core.privacy import RemoteTaskTextOwner, TaskTextOwner, UnreachableTaskTextOwner
from agent_lightning.core.queue import JobQueue
from agent_lightning.core.ratelimit import RateLimiter, RateLimitMiddleware
from agent_lightning.core.resilience import ServiceCaller
from agent_lightning.execution import api as execution_api
from agent_lightning.execution.client import ExecutionClient
from agent_lightning.execution.erasure import ExecutionTextEraser
from agent_lightning.execution.schemas import Executor
from agent_lightning.execution.service import ExecutionService
from agent_lightning.execution.tools import builtin_tools, delegate_tool, mcp_connector
from agent_lightning.execution.tools.catalogue import ToolCatalogue
from agent_lightning.knowledge import api as knowledge_api
from agent_lightning.knowledge.client import KnowledgeClient
from agent_lightning.knowledge.erasure import KnowledgeTextEraser
from agent_lightning.knowledge.schemas import KnowledgeBase
from agent_lightning.knowledge.service import KnowledgeService
from agent_lightning.mcp_server import build_server as build_mcp_server
from agent_lightning.mcp_server import in_process_api, mounted
from agent_lightning.memory import api as memory_api
from agent_lightning.memory.client import MemoryClient
from agent_lightning.memory.flows import UserErasure
from agent_lightning.memory.schemas import MemoryStore
from agent_lightning.memory.service import MemoryService
from agent_lightning.models.schemas import ModelGateway
from agent_lightning.models.service import ModelService, build_model_service
from agent_lightning.models.statistics import UsageStatisticsReader
from agent_lightning.monitoring import api as monitoring_api
from agent_lightning.monitoring.service import MonitoringService
from agent_lightning.orchestrator import api as orchestrator_api
from agent_lightning.orchestrator.client import OrchestratorClient
from agent_lightning.orchestrator.embedding import GatewayEmbedder
from agent_lightning.orchestrator.erasure import TaskTextEraser
from agent_lightning.orchestrator.policy import configured_params, make_policy
from agent_lightning.orchestrator.schemas import Router
from agent_lightning.orchestrator.service import OrchestratorService
from agent_lightning.orchestrator.statistics import TaskStatisticsReader
from agent_lightning.orchestrator.worker import TaskWorker
from agent_lightning.realtime import api as realtime_api
from agent_lightning.secrets import api as secrets_api
from agent_lightning.secrets.service import SecretStore
from agent_lightning.validation import api as validation_api
from agent_lightning.validation.client import ValidationClient
from agent_lightning.validation.erasure import ValidationTextEraser
from agent_lightning.validation.schemas import Validator
from agent_lightning.validation.service import ValidationService
from agent_lightning.workflows import api as workflows_api
from agent_lightning.workflows.gateway import OrchestratorTasksClient
from agent_lightning.workflows.schemas import TaskGateway
from agent_lightning.workflows.service import WorkflowService

log = get_logger(__name__)

SERVICES = (
    "auth",
    "orchestrator",
    "execution",
    "models",
    "knowledge",
    "memory",
    "validation",
    "monitoring",
    "workflows",
)
"""Services that can run in their own process. The agent registry is served with execution."""
RUN_TASK, RUN_EXECUTION, RUN_WORKFLOW = "orchestrator.run_task", "execution.run", "workflows.run"
"""The jobs of the work queue: an orchestrator task's attempt, an async execution, a workflow run."""


@dataclass
class Platform:
    """Everything one process runs, wired."""

    settings: Settings
    services: frozenset[str]
    db: Database
    bus: InProcessBus | BrokerBus
    queue: JobQueue
    models: ModelGateway
    secrets: SecretStore
    model_service: ModelService | None = None
    agent_service: AgentService | None = None
    execution: ExecutionService | None = None
    orchestrator: OrchestratorService | None = None
    worker: TaskWorker | None = None
    knowledge_service: KnowledgeService | None = None
    memory_service: MemoryService | None = None
    validation_service: ValidationService | None = None
    workflows: WorkflowService | None = None
    monitoring: MonitoringService | None = None
    erasure: UserErasure | None = None
    callers: list[ServiceCaller] = field(default_factory=list)
    migrate: bool = True
    queue_running: bool = False
    jobs: set[asyncio.Task] = field(default_factory=set)
    background: set[asyncio.Task] = field(default_factory=set)
    loop: asyncio.AbstractEventLoop | None = None
    stopping_since: float | None = None

    async def start(self) -> None:
        """Connect the event bus, migrate, seed, restore learned state, start the queue and requeue
        unfinished work."""
        self.loop = asyncio.get_running_loop()
        await self.bus.start()  # before anything publishes
        if self.migrate:
            await self.db.upgrade()
        elif missing := await self.db.pending_migrations():
            raise SchemaOutdated(
                f"The database lacks the migrations {', '.join(missing)} of this version; "
                "run `alp db upgrade` first (ALP_MIGRATE_ON_START is off)."
            )
        if self.model_service is not None and (recovered := await self.model_service.usage.recover()):
            log.info("usage_rows_recovered", rows=recovered)  # left in the journal by a process that died
        if self.knowledge_service is not None:
            await self.knowledge_service.start()
        if self.agent_service is not None:
            created = await self.agent_service.seed(DEFAULT_FLEET)
            if created:
                log.info("fleet_seeded", agents=created)
        await self.queue.start()
        self.queue_running = True
        if self.orchestrator is not None:
            await self.orchestrator.policies.load()
            self.background.add(
                asyncio.create_task(self.orchestrator.policies.learned.follow())
            )  # other replicas' rewards
        # With a shared queue, or other processes running the same service, work may be running elsewhere:
        # only an expired lease orphans it. Waiting work is queued again when the queue forgot it (in memory).
        sole_worker = frozenset(SERVICES) - {"monitoring"} <= self.services and not self.queue.distributed
        await self._recover(sole_worker=sole_worker, include_waiting=not self.queue.distributed)
        if self._leased():
            self.background.add(asyncio.create_task(self._sweep_orphans()))
        self.queue.consume()  # with a real broker, this process takes its services' jobs from here on
        if self.monitoring is not None:
            await self.monitoring.start()

    def _leased(self) -> list[LeasedWork]:
        """The services of this process whose work is leased."""
        return [s for s in (self.orchestrator, self.execution, self.workflows) if s is not None]

    async def _recover(self, *, sole_worker: bool, include_waiting: bool) -> None:
        """Queue again the work whose lease ran out (core/leases.py) and the waiting work the queue may have
        lost."""
        for service in self._leased():
            for row_id in await service.recoverable(sole_worker=sole_worker, include_waiting=include_waiting):
                await service.enqueue(row_id)

    async def _sweep_orphans(self) -> None:
        """Take over the work of processes that died: every half heartbeat, so that a dead worker's work is
        running again within `lease_s` plus half a heartbeat of its last renewal."""
        while True:
            await asyncio.sleep(self.settings.heartbeat_s / 2)
            try:
                await self._recover(sole_worker=False, include_waiting=False)
                if self.orchestrator is not None:
                    await (
                        self.orchestrator.lifecycle.expire_approvals()
                    )  # tool calls nobody decided on in time
            except Exception as exc:
                log.warning("orphan_sweep_failed", error=f"{type(exc).__name__}: {exc}")

    def begin_stop(self) -> None:
        """Take no new work from now on (a SIGTERM calls it at once, through `request_stop`): the queue's
        deliveries not yet acknowledged go to other processes, and the sweep ends. Work in flight goes on."""
        if self.stopping_since is not None:
            return
        self.stopping_since = time.monotonic()
        self.queue_running = False
        self.queue.stop_accepting()
        for job in self.background:
            job.cancel()

    def request_stop(self) -> None:
        """`begin_stop` from a signal handler (thread-safe)."""
        if self.loop is not None and not self.loop.is_closed():
            self.loop.call_soon_threadsafe(self.begin_stop)

    async def stop(self) -> None:
        """Drain, then close: jobs in flight get until `ALP_SHUTDOWN_GRACE_S` after `begin_stop` to finish;
        the rest are stopped and their leases released, so that another process's sweep (or this one's next
        start) takes them over at once."""
        self.begin_stop()
        if self.monitoring is not None:
            await self.monitoring.stop()
        if self.jobs:
            left = self.settings.shutdown_grace_s - (time.monotonic() - self.stopping_since)
            _, unfinished = await asyncio.wait(set(self.jobs), timeout=max(left, 0))
            if unfinished:
                log.warning("shutdown_grace_exceeded", jobs_left=len(unfinished))
        for job in [*self.jobs, *self.background]:
            job.cancel()
        await asyncio.gather(*self.jobs, *self.background, return_exceptions=True)
        if self.orchestrator is not None:
            await (
                self.orchestrator.policies.learned.flush()
            )  # a snapshot of what was learned: less to fold at the next start
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


@dataclass
class _Wiring:
    """What the services of one process are built from, and the HTTP callers made for the services of
    others."""

    settings: Settings
    local: frozenset[str]
    db: Database
    bus: InProcessBus | BrokerBus
    queue: JobQueue
    cipher: SecretCipher
    secrets: SecretStore
    jobs: set[asyncio.Task] = field(default_factory=set)
    background: set[asyncio.Task] = field(default_factory=set)
    callers: list[ServiceCaller] = field(default_factory=list)

    def remote(self, name: str, url: str | list[str] | None) -> ServiceCaller:
        """A caller of the service `name` in other processes, at `url` (one or several replicas)."""
        urls = [url] if isinstance(url, str) else list(url or [])
        if not urls:
            raise ValueError(f"The {name} service is not in this process: set ALP_{name.upper()}_URL.")
        caller = _caller(self.settings, name, urls)
        self.callers.append(caller)
        return caller


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
        if settings.auth_enabled and settings.auth_secret
        else None,
    )


def build_platform(
    settings: Settings,
    services: Iterable[str] = SERVICES,
    *,
    model_service: ModelService | None = None,
    migrate: bool = True,
) -> Platform:
    """Wire the services named in `services` in-process and the others as HTTP clients.

    `model_service` replaces the configured one (tests register scripted providers through it). `migrate`:
    whether the platform applies pending migrations when it starts (else it refuses to start without them).
    """
    local = frozenset(services)
    unknown = local - set(SERVICES)
    if unknown:
        raise ValueError(f"Unknown services: {sorted(unknown)}")
    db = Database.configured(settings)
    cipher = cipher_from_settings(settings)  # the key is read (or its file made) on first use
    w = _Wiring(
        settings=settings,
        local=local,
        db=db,
        bus=make_bus(settings.event_bus_url, prefix=settings.event_bus_prefix),
        queue=JobQueue(settings),
        cipher=cipher,
        secrets=SecretStore(db, cipher),  # every process reads the secrets its objects name from the database
    )
    models, model_svc = _models(w, model_service)
    knowledge, knowledge_svc = _knowledge(w, models)
    memory, memory_svc = _memory(w, models)
    agents, agent_svc, tools = _agents(w, models, knowledge, memory)
    validator, validation_svc = _validation(w)
    orchestrator = _orchestrator(w, models, agents, validator)
    execution = _execution(w, orchestrator, agents, models, knowledge, memory, tools, validator)
    worker = _worker(w, orchestrator, execution)
    if orchestrator is not None and knowledge is not None:
        w.bus.subscribe("feedback.received", flows.learn_from_feedback(orchestrator, knowledge, w.background))
    platform = Platform(
        settings=settings,
        services=local,
        db=db,
        bus=w.bus,
        queue=w.queue,
        models=models,
        secrets=w.secrets,
        model_service=model_svc,
        agent_service=agent_svc,
        execution=execution,
        orchestrator=orchestrator,
        worker=worker,
        knowledge_service=knowledge_svc,
        memory_service=memory_svc,
        validation_service=validation_svc,
        workflows=_workflows(w, orchestrator),
        erasure=_erasure(w, memory_svc, knowledge_svc),
        callers=w.callers,
        jobs=w.jobs,
        background=w.background,
        migrate=migrate,
    )
    platform.monitoring = _monitoring(w, platform.readiness)  # it probes the platform's own readiness
    return platform


def _models(w: _Wiring, model_service: ModelService | None) -> tuple[ModelGateway, ModelService | None]:
    """The model gateway: in-process when this process serves it or nobody else does."""
    if "models" in w.local or not w.settings.models_url:
        service = model_service or build_model_service(w.settings, w.db, secrets=w.secrets, cipher=w.cipher)
        if service.credentials.secrets is None:
            service.credentials.secrets = w.secrets
        return service, service
    from agent_lightning.models.client import ModelsClient

    return ModelsClient(w.remote("models", w.settings.models_url)), None


def _knowledge(w: _Wiring, models: ModelGateway) -> tuple[KnowledgeBase | None, KnowledgeService | None]:
    if "knowledge" in w.local:
        service = KnowledgeService(settings=w.settings, db=w.db, embeddings=models, models=models)
        return service, service
    if w.settings.knowledge_url:
        return KnowledgeClient(w.remote("knowledge", w.settings.knowledge_url)), None
    return None, None


def _memory(w: _Wiring, models: ModelGateway) -> tuple[MemoryStore | None, MemoryService | None]:
    if "memory" in w.local:
        service = MemoryService(settings=w.settings, db=w.db, embeddings=models, models=models)
        return service, service
    if w.settings.memory_url:
        return MemoryClient(w.remote("memory", w.settings.memory_url)), None
    return None, None


def _agents(
    w: _Wiring, models: ModelGateway, knowledge: KnowledgeBase | None, memory: MemoryStore | None
) -> tuple[AgentRegistry | None, AgentService | None, ToolCatalogue | None]:
    """The agent registry: served with execution (with the tools agents may be granted); reached over HTTP by
    an orchestrator that runs without it."""
    if "execution" in w.local:
        tools = ToolCatalogue(
            w.settings,
            builtin_tools(w.settings, knowledge=knowledge, memory=memory),
            mcp=mcp_connector(w.settings, w.secrets),
        )
        service = AgentService(w.db, models, check_tools=tools.check, check_policy=tools.check_policy)
        return service, service, tools
    if "orchestrator" in w.local:
        # Every execution replica serves the registry: fail over between them unless ALP_AGENTS_URL names one.
        return (
            AgentsClient(w.remote("agents", w.settings.agents_url or w.settings.execution_urls)),
            None,
            None,
        )
    return None, None, None


def _validation(w: _Wiring) -> tuple[Validator | None, ValidationService | None]:
    """Validation: served here, or the scanner of the processes that take task text (/assign-task, the execute
    routes: validation/intake.py), in-process unless ALP_VALIDATION_URL names the service."""
    takes_tasks = "orchestrator" in w.local or "execution" in w.local
    if "validation" in w.local or (takes_tasks and not w.settings.validation_url):
        service = ValidationService(settings=w.settings, db=w.db)
        return service, service
    if takes_tasks:
        return ValidationClient(w.remote("validation", w.settings.validation_url)), None
    return None, None


def _orchestrator(
    w: _Wiring, models: ModelGateway, agents: AgentRegistry | None, validator: Validator | None
) -> OrchestratorService | None:
    if "orchestrator" not in w.local:
        return None
    params = configured_params(w.settings)
    embeddings = w.settings.policy_embeddings
    return OrchestratorService(
        settings=w.settings,
        db=w.db,
        agents=agents,
        policy=make_policy(w.settings.policy, **params),
        bus=w.bus,
        enqueue=w.queue.sender(RUN_TASK),
        policy_params=params,
        embedder=GatewayEmbedder(models, w.settings.policy_embedding_model) if embeddings else None,
        validator=validator,
    )


def _tasks(w: _Wiring, orchestrator: OrchestratorService | None) -> TaskGateway:
    """The orchestrator's task intake for other services: in this process, else over HTTP
    (ALP_ORCHESTRATOR_URL)."""
    if orchestrator is not None:
        return orchestrator
    return OrchestratorTasksClient(w.remote("orchestrator", w.settings.orchestrator_url))


def _execution(
    w: _Wiring,
    orchestrator: OrchestratorService | None,
    agents: AgentRegistry | None,
    models: ModelGateway,
    knowledge: KnowledgeBase | None,
    memory: MemoryStore | None,
    tools: ToolCatalogue | None,
    validator: Validator | None,
) -> ExecutionService | None:
    if "execution" not in w.local:
        return None
    router: Router | None = orchestrator
    if router is None and w.settings.orchestrator_url:
        router = OrchestratorClient(w.remote("orchestrator", w.settings.orchestrator_url))
    execution = ExecutionService(
        settings=w.settings,
        db=w.db,
        agents=agents,
        models=models,
        router=router,
        knowledge=knowledge,
        memory=memory,
        bus=w.bus,
        tools=tools,
        validator=validator,
        enqueue=w.queue.sender(RUN_EXECUTION),
    )
    w.queue.register(RUN_EXECUTION, execution.run_queued, w.jobs)
    if orchestrator is not None or w.settings.orchestrator_url:  # the delegate tool hands it subtasks
        tools.add(delegate_tool(w.settings, _tasks(w, orchestrator)))
    return execution


def _worker(
    w: _Wiring, orchestrator: OrchestratorService | None, execution: ExecutionService | None
) -> TaskWorker | None:
    """The worker of the orchestrator's tasks, running them through the execution service here or over
    HTTP."""
    if orchestrator is None:
        return None
    executor: Executor
    if execution is not None:
        executor = execution
    else:
        if not w.settings.execution_urls:
            raise ValueError("The execution service is not in this process: set ALP_EXECUTION_URLS.")
        executor = ExecutionClient(w.remote("execution", w.settings.execution_urls))
    orchestrator.connect_execution(executor)  # approvals of tool calls
    worker = TaskWorker(orchestrator, executor, w.bus, enqueue=orchestrator.enqueue)
    w.queue.register(RUN_TASK, worker.run, w.jobs)
    return worker


def _workflows(w: _Wiring, orchestrator: OrchestratorService | None) -> WorkflowService | None:
    """The workflows service; a run's agent tasks go through the orchestrator, here or over HTTP."""
    if "workflows" not in w.local:
        return None
    workflows = WorkflowService(
        settings=w.settings,
        db=w.db,
        bus=w.bus,
        tasks=_tasks(w, orchestrator),
        enqueue=w.queue.sender(RUN_WORKFLOW),
    )
    w.queue.register(RUN_WORKFLOW, workflows.run_queued, w.jobs)
    return workflows


def _erasure(
    w: _Wiring, memory: MemoryService | None, knowledge: KnowledgeService | None
) -> UserErasure | None:
    """Erasing a user, served with memory. Tasks, executions and validation reports are rows of the shared
    database, erased from here whichever process serves them; learned knowledge is erased by the knowledge
    service (its vector index follows), here or over HTTP."""
    if memory is None:
        return None
    owners: list[TaskTextOwner] = [
        TaskTextEraser(w.db),
        ExecutionTextEraser(w.db),
        ValidationTextEraser(w.db),
    ]
    if knowledge is not None:
        owners.append(KnowledgeTextEraser(knowledge))
    elif w.settings.knowledge_url:
        caller = w.remote("knowledge", w.settings.knowledge_url)
        owners.append(RemoteTaskTextOwner("knowledge", caller, "/knowledge/erasures"))
    else:
        owners.append(UnreachableTaskTextOwner("knowledge", "ALP_KNOWLEDGE_URL"))
    return UserErasure(memory, owners)


def _monitoring(
    w: _Wiring, local_checks: Callable[[], Awaitable[dict[str, dict[str, Any]]]]
) -> MonitoringService | None:
    """Monitoring: services of other processes are probed on /health; the dashboard calls the orchestrator
    where it is."""
    if "monitoring" not in w.local:
        return None
    settings = w.settings
    urls = {
        "orchestrator": settings.orchestrator_url,
        "execution": (settings.execution_urls or [None])[0],
        "models": settings.models_url,
        "knowledge": settings.knowledge_url,
        "memory": settings.memory_url,
    }
    return MonitoringService(
        settings=settings,
        tasks=TaskStatisticsReader(w.db),
        usage=UsageStatisticsReader(w.db),
        bus=w.bus,
        local_checks=local_checks,
        remote_services={name: url for name, url in urls.items() if url and name not in w.local},
        api_base="" if "orchestrator" in w.local else (settings.orchestrator_url or ""),
        agents_base=""
        if "execution" in w.local
        else (settings.agents_url or (settings.execution_urls or [""])[0]),
        auth_base="" if "auth" in w.local else (settings.auth_url or ""),
    )


async def _run_in_own_task(context) -> Callable[[], Awaitable[None]]:
    """Enter an async context manager in a task of its own (anyio scopes must be left by the task that entered
    them, and a lifespan may end in another task); return the function that leaves it."""
    entered, leave = asyncio.Event(), asyncio.Event()

    async def hold() -> None:
        async with context:
            entered.set()
            await leave.wait()

    holder = asyncio.create_task(hold())
    await asyncio.wait([holder, asyncio.create_task(entered.wait())], return_when=asyncio.FIRST_COMPLETED)
    if holder.done():
        holder.result()  # it failed to enter: raise why

    async def stop() -> None:
        leave.set()
        await holder

    return stop


class Liveness(BaseModel):
    status: str
    version: str
    services: list[str]


class Readiness(BaseModel):
    status: str
    checks: dict[str, dict[str, Any]]


def settle_heap() -> None:
    """Take what start-up allocated (modules, routes, schemas, the fleet) out of the garbage collector's sight
    (`gc.freeze`): a full collection then walks only objects made since. Without it, the requests' objects
    that outlive a few young collections trigger a full collection of the whole heap about once a second under
    load, each taking tens of milliseconds (benchmarks/gateway: about a tenth of the server's time at 1,000
    requests/s, more as concurrency rises)."""
    gc.collect()
    gc.freeze()


def _task_gauges(monitoring: MonitoringService):
    """The refresher of the database-derived gauges, in the process that runs monitoring."""

    async def refresh(metrics: Metrics) -> None:
        counts, expired = await monitoring.platform_task_counts()
        for status, n in counts.items():
            metrics.tasks_current.labels(status).set(n)
        metrics.tasks_lease_expired.set(expired)

    return refresh


def _include_routers(app: FastAPI, platform: Platform, metrics: Metrics) -> None:
    """The routes of the services this process runs. With authentication on, every router but health and the
    docs needs a role (viewer to read, operator to write, admin where a route asks)."""

    def include(router: APIRouter, write: str = "operator") -> None:
        if platform.settings.auth_enabled:
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
        include(memory_api.router(platform.memory_service, platform.erasure))
    if "validation" in platform.services and platform.validation_service is not None:
        include(validation_api.router(platform.validation_service))
    if "models" in platform.services and platform.model_service is not None:
        from agent_lightning.models import api as models_api

        include(models_api.router(platform.model_service))
        include(secrets_api.router(platform.secrets))  # provider keys live with the models service
    if platform.monitoring is not None:
        include(monitoring_api.router(platform.monitoring))
        app.include_router(monitoring_api.dashboard_router(platform.monitoring))  # the page and its files


def create_app(
    settings: Settings | None = None,
    services: Iterable[str] = SERVICES,
    *,
    model_service: ModelService | None = None,
    migrate: bool = True,
    bind_host: str | None = None,
) -> FastAPI:
    """The FastAPI application serving `services` (all of them by default, on one port). `bind_host`: where
    the server listens; on a loopback address only requests to a loopback name (or ALP_ALLOWED_HOSTS) are
    served."""
    settings = settings or get_settings()
    configure_logging(settings.log_level, settings.log_json, mask_pii=settings.pii_mask_logs)
    services = tuple(services)
    tracer_provider = tracing.configure(
        settings, name=tracing.service_name(services, SERVICES), version=__version__
    )
    if settings.auth_enabled:
        AuthService.check_settings(settings)  # before anything starts
    platform = build_platform(settings, services, model_service=model_service, migrate=migrate)
    limiter = RateLimiter(
        limit=settings.rate_limit,
        write_limit=settings.rate_limit_write,
        storage_url=settings.rate_limit_storage_url,
        prefix=settings.rate_limit_prefix,
    )

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        await platform.start()
        mcp_stop = await _run_in_own_task(
            app.state.mcp.session_manager.run()
        )  # the MCP endpoint, mounted below
        stop_stages = stages.listen(metrics.observe_stage)
        settle_heap()
        try:
            yield
        finally:
            gc.unfreeze()  # what the application held may be collected again once it stops
            stop_stages()
            await mcp_stop()
            await platform.stop()
            await limiter.aclose()
            tracing.shutdown(tracer_provider)  # exports the spans still buffered

    app = FastAPIOffline(  # /docs and /redoc with Swagger UI and ReDoc served from the package, not a CDN
        title="Agent Lightning",
        version=__version__,
        description=(
            "Route tasks to specialised AI agents with a policy that learns from outcomes.\n\nLive events: "
            "WebSocket `/ws/events?types=task.*&task_id=…&replay=N` streams the bus's events as JSON "
            "envelopes (not listed below: OpenAPI has no WebSockets). Prometheus metrics: `GET /metrics`."
        ),
        lifespan=lifespan,
        swagger_ui_parameters={"validatorUrl": None},  # no badge fetched from validator.swagger.io
        dependencies=[
            Depends(reject_nul_characters)
        ],  # every route: one answer on SQLite and PostgreSQL alike
    )
    app.state.platform = platform
    tracing.instrument_app(app)  # with ALP_TRACING: a server span per request, traceparent honoured
    tracing.instrument_engine(platform.db.engine, statements=settings.tracing_db)
    metrics = Metrics()  # a registry per application
    platform.bus.observe(metrics.observe_event)  # what this process publishes: tasks, decisions, rewards
    if platform.model_service is not None:
        platform.model_service.usage.listeners.append(metrics.observe_usage)
    app.state.metrics = metrics
    if platform.monitoring is not None:
        metrics.refresh_with(_task_gauges(platform.monitoring))
    install_error_handlers(app)
    # The last added runs first: metrics → correlation id and body size → rate limit → routing, validation.
    app.add_middleware(RateLimitMiddleware, limiter=limiter, identify=identify)  # principal, else address
    app.add_middleware(RequestContextMiddleware, max_body_bytes=settings.max_body_bytes)
    app.add_middleware(HTTPMetricsMiddleware, metrics=metrics)
    if (
        settings.cors_origins
    ):  # outermost: answers preflights; the dashboard of a monitoring process elsewhere
        app.add_middleware(
            CORSMiddleware,
            allow_origins=settings.cors_origins,
            allow_methods=["*"],
            allow_headers=["*"],
            expose_headers=["X-Correlation-ID"],
        )
    if bind_host is not None and is_loopback(bind_host):  # outermost of all: DNS rebinding gets nothing
        app.add_middleware(HostHeaderGuard, extra=settings.allowed_hosts)
    # Authentication (opt-in, README "Authentication and roles"): with it on, every router but health and the
    # docs needs a role (viewer to read, operator to write, admin where a route asks); with it off everyone is
    # the anonymous platform admin of the default tenant.
    if settings.auth_enabled:
        app.state.auth = AuthService(
            platform.db,
            settings,
            platform.bus,  # every process checks credentials
            cipher=platform.secrets.cipher,
        )
        if "auth" in platform.services:
            app.include_router(auth_api.router(app.state.auth))  # logins, users and keys

    _include_routers(app, platform, metrics)

    # MCP clients reach the fleet at /mcp (streamable HTTP; not in OpenAPI, see README "Agents and tools").
    app.state.mcp = build_mcp_server(in_process_api(app))
    app.mount("/mcp", mounted(app.state.mcp))

    @app.get("/health", response_model=Liveness, tags=["health"], summary="Liveness")
    async def health() -> Liveness:
        return Liveness(status="ok", version=__version__, services=sorted(platform.services))

    @app.get(
        "/health/ready",
        response_model=Readiness,
        tags=["health"],
        responses=ERROR_RESPONSES,
        summary="Readiness",
    )
    async def ready() -> Readiness:
        checks = await platform.readiness()
        if not all(check["ok"] for check in checks.values()):
            raise Unavailable("Not ready.", code="not_ready", details=checks)
        return Readiness(status="ready", checks=checks)

    return app
