"""The workflows service: versioned graphs, and runs that execute them node by node.

A run executes its graph in topological order, independent branches concurrently. Each `agent_task` node
becomes a real orchestrator task (through the `TaskGateway` the composition root hands over: the service
in-process or its HTTP API), so routing, learning, rewards and task events apply to it. The run and every
node's status, output and error are stored as they change; `workflow.*` events go on the bus.

A run is a queued job like a task: claimed with a lease (core/leases.py) that a heartbeat renews while it
runs; the run's and its nodes' writes are fenced by the lease's token. A process that stops leaves its runs
`running`; once the lease has run out (at once, for a sole process at its next start) the run is queued again
and resumes: finished nodes keep their outputs, and an agent task submitted before the stop is found again by
its idempotency key instead of being submitted twice.
"""

from __future__ import annotations

import asyncio
import builtins
from collections.abc import Awaitable, Callable
from typing import Any

from sqlalchemy import delete, select, update
from sqlalchemy.exc import IntegrityError

from agent_lightning.core.config import Settings
from agent_lightning.core.db import Database, new_id, utcnow
from agent_lightning.core.errors import AppError, Conflict, Invalid, NotFound
from agent_lightning.core.events import Event, EventBus
from agent_lightning.core.leases import Lease, Leases
from agent_lightning.core.logging import correlation_id, current_correlation_id, get_logger
from agent_lightning.core.tenancy import (
    all_tenants,
    current_tenant,
    set_tenant,
    tenant_get,
    tenant_select,
    tenant_update,
)
from agent_lightning.orchestrator.schemas import TASK_FINISHED, AssignTaskRequest, TaskStatus
from agent_lightning.workflows import export as exporter
from agent_lightning.workflows import graph as graphs
from agent_lightning.workflows.sandbox import Limits, TemplateLimitExceeded, TemplateSandbox
from agent_lightning.workflows.schemas import (
    NODE_UNFINISHED,
    RUN_FINISHED,
    AgentTaskConfig,
    ComponentCatalogue,
    ConditionConfig,
    ExportedCode,
    Graph,
    InputConfig,
    NodeRun,
    NodeStatus,
    OutputConfig,
    Run,
    RunAccepted,
    RunList,
    RunRequest,
    RunStatus,
    TaskGateway,
    TransformConfig,
    Workflow,
    WorkflowDeleted,
    WorkflowIn,
    WorkflowList,
    WorkflowSummary,
)
from agent_lightning.workflows.tables import (
    WorkflowRow,
    WorkflowRunNodeRow,
    WorkflowRunRow,
    WorkflowVersionRow,
)

log = get_logger(__name__)


class NodeFailed(Exception):
    """A node could not produce its output; the run fails with this message."""


class WorkflowService:
    """Workflows, their versions and runs. `enqueue` queues a run (the job `workflows.run`); `tasks` takes the
    agent tasks of its nodes."""

    def __init__(
        self,
        *,
        settings: Settings,
        db: Database,
        bus: EventBus,
        tasks: TaskGateway,
        enqueue: Callable[[str], Awaitable[None]],
    ) -> None:
        self.settings = settings
        self.db = db
        self.bus = bus
        self.tasks = tasks
        self.templates = TemplateSandbox(Limits.from_settings(settings))
        self.enqueue = enqueue
        self._runs: dict[str, asyncio.Task] = {}  # run id -> the execution in this process
        self._task_done: dict[str, asyncio.Event] = {}  # task id -> set when the bus says it finished
        self.leases = Leases(db, WorkflowRunRow, lease_s=settings.lease_s, heartbeat_s=settings.heartbeat_s)
        bus.subscribe("task.*", self._on_task_event)

    # -- workflows ---------------------------------------------------------------------------------------

    @staticmethod
    def components() -> ComponentCatalogue:
        """The node types with their ports and config schemas."""
        return graphs.catalogue()

    async def create(self, body: WorkflowIn) -> Workflow:
        """Validate and store a new workflow as version 1."""
        graphs.validate(body.graph)
        now = utcnow()
        workflow_id = new_id()
        async with self.db.session() as session:
            session.add(
                WorkflowRow(
                    id=workflow_id,
                    tenant_id=current_tenant(),
                    name=body.name,
                    description=body.description,
                    latest_version=1,
                    created_at=now,
                    updated_at=now,
                )
            )
            session.add(self._version_row(workflow_id, 1, body))
        return await self.get(workflow_id)

    async def update(self, workflow_id: str, body: WorkflowIn) -> Workflow:
        """Validate and store the next version (earlier versions stay readable and runnable)."""
        graphs.validate(body.graph)
        try:
            async with self.db.session() as session:
                row = await self._workflow_row(session, workflow_id)
                row.latest_version += 1
                row.name, row.description, row.updated_at = body.name, body.description, utcnow()
                session.add(self._version_row(workflow_id, row.latest_version, body))
        except IntegrityError as exc:
            raise Conflict(
                "The workflow was changed at the same time; retry.", code="version_conflict"
            ) from exc
        return await self.get(workflow_id)

    async def get(self, workflow_id: str, version: int | None = None) -> Workflow:
        """A workflow at its latest version or at `version`."""
        async with self.db.session() as session:
            row = await self._workflow_row(session, workflow_id)
            versions = list(
                await session.scalars(
                    select(WorkflowVersionRow.version)
                    .where(WorkflowVersionRow.workflow_id == workflow_id)
                    .order_by(WorkflowVersionRow.version)
                )
            )
            shown = await self._version(session, workflow_id, version or row.latest_version)
        return Workflow(
            id=row.id,
            name=shown.name,
            description=shown.description,
            version=shown.version,
            latest_version=row.latest_version,
            versions=versions,
            graph=Graph.model_validate(shown.graph),
            created_at=row.created_at,
            updated_at=row.updated_at,
        )

    async def list(self) -> WorkflowList:
        """The tenant's workflows, most recently changed first."""
        async with self.db.session() as session:
            rows = await session.scalars(
                tenant_select(WorkflowRow).order_by(WorkflowRow.updated_at.desc(), WorkflowRow.id)
            )
            return WorkflowList(
                items=[
                    WorkflowSummary(
                        id=r.id,
                        name=r.name,
                        description=r.description,
                        latest_version=r.latest_version,
                        updated_at=r.updated_at,
                    )
                    for r in rows
                ]
            )

    async def delete(self, workflow_id: str) -> WorkflowDeleted:
        """Delete a workflow and its versions (past runs stay readable)."""
        async with self.db.session() as session:
            row = await self._workflow_row(session, workflow_id)
            await session.execute(
                delete(WorkflowVersionRow).where(WorkflowVersionRow.workflow_id == workflow_id)
            )
            await session.delete(row)
            return WorkflowDeleted(id=workflow_id, versions=row.latest_version)

    async def export(
        self, workflow_id: str, version: int | None = None, language: str = "python"
    ) -> ExportedCode:
        """A script that runs the workflow against the platform's HTTP API."""
        if language != "python":
            raise Invalid(
                f"Cannot export to '{language}'.",
                code="unsupported_language",
                details={"supported": ["python"]},
            )
        workflow = await self.get(workflow_id, version)
        plan = graphs.validate(workflow.graph)
        code = exporter.python_script(workflow, plan)
        return ExportedCode(
            workflow_id=workflow.id,
            version=workflow.version,
            language="python",
            filename=f"workflow_{exporter.slug(workflow.name)}_v{workflow.version}.py",
            code=code,
        )

    # -- runs ----------------------------------------------------------------------------------------------

    async def start_run(self, workflow_id: str, request: RunRequest) -> RunAccepted:
        """Check the inputs, store the run with every node pending, and queue it."""
        workflow = await self.get(workflow_id, request.version)
        plan = graphs.validate(workflow.graph)
        inputs = graphs.coerce_inputs(plan, request.inputs)
        run_id = new_id()
        now = utcnow()
        async with self.db.session() as session:
            session.add(
                WorkflowRunRow(
                    id=run_id,
                    tenant_id=current_tenant(),
                    workflow_id=workflow.id,
                    version=workflow.version,
                    status=RunStatus.QUEUED,
                    inputs=inputs,
                    outputs={},
                    recoveries=0,
                    correlation_id=current_correlation_id(),
                    created_at=now,
                    updated_at=now,
                )
            )
            for node_id in plan.order:
                session.add(
                    WorkflowRunNodeRow(
                        run_id=run_id,
                        node_id=node_id,
                        type=plan.nodes[node_id].type,
                        status=NodeStatus.PENDING,
                    )
                )
        await self._publish("workflow.run.queued", run_id, workflow.id, version=workflow.version)
        await self._dispatch(run_id)
        return RunAccepted(
            run_id=run_id, workflow_id=workflow.id, version=workflow.version, status=RunStatus.QUEUED
        )

    async def get_run(self, run_id: str) -> Run:
        """A run with each node's status, output and error."""
        async with self.db.session() as session:
            row = await self._run_row(session, run_id)
            nodes = await self._node_rows(session, run_id)
        return _run_out(row, nodes)

    async def list_runs(self, workflow_id: str, limit: int = 20) -> RunList:
        """The newest runs of a workflow."""
        async with self.db.session() as session:
            await self._workflow_row(session, workflow_id)
            rows = list(
                await session.scalars(
                    tenant_select(WorkflowRunRow)
                    .where(WorkflowRunRow.workflow_id == workflow_id)
                    .order_by(WorkflowRunRow.created_at.desc(), WorkflowRunRow.id)
                    .limit(limit)
                )
            )
            items = [_run_out(r, await self._node_rows(session, r.id)) for r in rows]
        return RunList(items=items)

    async def cancel_run(self, run_id: str) -> Run:
        """Cancel an unfinished run, and the orchestrator tasks of its running nodes."""
        now = utcnow()
        async with self.db.session() as session:
            row = await self._run_row(session, run_id)
            if row.status in RUN_FINISHED:
                raise Conflict(
                    f"The run has already {row.status}.", code="run_finished", details={"status": row.status}
                )
            row.status, row.error, row.finished_at, row.lease_until, row.updated_at = (
                RunStatus.CANCELLED,
                "cancelled",
                now,
                None,
                now,
            )
            task_ids = list(
                await session.scalars(
                    select(WorkflowRunNodeRow.task_id).where(
                        WorkflowRunNodeRow.run_id == run_id,
                        WorkflowRunNodeRow.status == NodeStatus.RUNNING,
                        WorkflowRunNodeRow.task_id.is_not(None),
                    )
                )
            )
            await session.execute(
                update(WorkflowRunNodeRow)
                .where(WorkflowRunNodeRow.run_id == run_id, WorkflowRunNodeRow.status.in_(NODE_UNFINISHED))
                .values(status=NodeStatus.CANCELLED, finished_at=now)
            )
            workflow_id = row.workflow_id
        execution = self._runs.get(run_id)
        if execution is not None:
            execution.cancel()
        await self._cancel_tasks(task_ids)
        await self._publish(
            "workflow.run.finished", run_id, workflow_id, status=RunStatus.CANCELLED, error="cancelled"
        )
        return await self.get_run(run_id)

    # -- executing a run (the queue's job) -------------------------------------------------------------------

    async def run_queued(self, run_id: str) -> None:
        """Claim a queued run and execute it; safe to call twice (only one claim wins)."""
        row = await self._claim(run_id)
        if row is None:
            return
        set_tenant(row.tenant_id)
        correlation_id.set(row.correlation_id or None)
        execution = asyncio.ensure_future(self._execute(row))
        self._runs[run_id] = execution
        try:
            async with self.leases.hold(_lease(row), on_lost=execution.cancel):
                await execution
        except asyncio.CancelledError:
            if execution.cancelled() and not asyncio.current_task().cancelling():
                return  # cancelled through cancel_run (here or in another process), or taken over
            raise  # the process is stopping: the run stays running and resumes after its lease
        except Exception as exc:  # a bug or a lost database: fail the run rather than leave it running
            log.exception("workflow_run_crashed", run_id=run_id)
            await self._finish(row, RunStatus.FAILED, error=f"{type(exc).__name__}: {exc}")
        finally:
            self._runs.pop(run_id, None)

    async def _execute(self, row: WorkflowRunRow) -> None:
        async with self.db.session() as session:
            version = await session.scalar(
                select(WorkflowVersionRow).where(
                    WorkflowVersionRow.workflow_id == row.workflow_id,
                    WorkflowVersionRow.version == row.version,
                )
            )
            node_rows = {n.node_id: n for n in await self._node_rows(session, row.id)}
        if version is None:
            await self._finish(row, RunStatus.FAILED, error="The workflow version was deleted.")
            return
        plan = graphs.validate(Graph.model_validate(version.graph))
        states: dict[str, dict[str, Any]] = {
            node_id: {"status": n.status, "output": n.output}
            for node_id, n in node_rows.items()
            if n.status in (NodeStatus.SUCCEEDED, NodeStatus.SKIPPED)
        }  # a resumed run keeps what its nodes already produced
        await self._publish(
            "workflow.run.started", row.id, row.workflow_id, version=row.version, recoveries=row.recoveries
        )
        running: dict[asyncio.Task, str] = {}
        try:
            while True:
                progressed = True
                while progressed:  # start every ready node; skip those whose branches were not taken
                    progressed = False
                    for node_id in plan.order:
                        if node_id in states or node_id in running.values():
                            continue
                        if not all(e.source in states for e in plan.incoming[node_id]):
                            continue
                        if plan.incoming[node_id] and not any(
                            _live(plan, e, states) for e in plan.incoming[node_id]
                        ):
                            states[node_id] = {"status": NodeStatus.SKIPPED, "output": None}
                            await self._node_finished(row, plan, node_id, NodeStatus.SKIPPED)
                            progressed = True
                            continue
                        job = asyncio.create_task(self._run_node(row, plan, node_id, states))
                        running[job] = node_id
                if not running:
                    break
                finished, _ = await asyncio.wait(running, return_when=asyncio.FIRST_COMPLETED)
                for job in finished:
                    node_id = running.pop(job)
                    error = job.exception()
                    if error is not None:
                        message = (
                            str(error)
                            if isinstance(error, NodeFailed)
                            else f"{type(error).__name__}: {error}"
                        )
                        await self._node_finished(row, plan, node_id, NodeStatus.FAILED, error=message)
                        await self._stop_nodes(row, running)
                        await self._finish(row, RunStatus.FAILED, error=f"node '{node_id}' failed: {message}")
                        return
                    states[node_id] = {"status": NodeStatus.SUCCEEDED, "output": job.result()}
                    await self._node_finished(row, plan, node_id, NodeStatus.SUCCEEDED, output=job.result())
        except asyncio.CancelledError:
            for job in running:
                job.cancel()
            await asyncio.gather(*running, return_exceptions=True)
            raise
        outputs = {}
        for node_id in plan.order:
            config = plan.configs[node_id]
            if isinstance(config, OutputConfig) and states[node_id]["status"] == NodeStatus.SUCCEEDED:
                outputs[config.name or node_id] = states[node_id]["output"]
        await self._finish(row, RunStatus.SUCCEEDED, outputs=outputs)

    async def _run_node(self, row: WorkflowRunRow, plan: graphs.Plan, node_id: str, states: dict) -> Any:
        """One node's output; raises NodeFailed."""
        async with self.db.session() as session:
            await session.execute(
                update(WorkflowRunNodeRow)
                .where(self._held(row), WorkflowRunNodeRow.node_id == node_id)
                .values(status=NodeStatus.RUNNING, started_at=utcnow(), error=None, output=None)
            )
        node, config = plan.nodes[node_id], plan.configs[node_id]
        await self._publish("workflow.node.started", row.id, row.workflow_id, node_id=node_id, type=node.type)
        context = {
            "inputs": dict(row.inputs),
            "nodes": {n: {"output": s["output"], "status": s["status"]} for n, s in states.items()},
        }
        try:
            if isinstance(config, InputConfig):
                return {f.name: row.inputs.get(f.name) for f in config.fields}
            if isinstance(config, TransformConfig):
                return await self._render(config.template, context)
            if isinstance(config, ConditionConfig):
                return await asyncio.to_thread(self.templates.evaluate, config.expression, context)
            if isinstance(config, OutputConfig):
                if config.template:
                    return await self._render(config.template, context)
                return next(
                    states[e.source]["output"] for e in plan.incoming[node_id] if _live(plan, e, states)
                )
            if isinstance(config, AgentTaskConfig):
                return await self._agent_task(
                    row, node_id, config, await self._render(config.prompt, context)
                )
        except NodeFailed:
            raise
        except TemplateLimitExceeded as exc:
            raise NodeFailed(f"template_limit_exceeded: {exc}") from exc
        except AppError as exc:
            raise NodeFailed(f"{exc.code}: {exc.message}") from exc
        except Exception as exc:  # a template error (undefined value, sandbox violation) or a bad request
            raise NodeFailed(f"{type(exc).__name__}: {exc}") from exc
        raise NodeFailed(f"Cannot run a node of type '{node.type}'.")

    async def _render(self, template: str, context: dict) -> str:
        """A template rendered within its limits, off the event loop."""
        return await asyncio.to_thread(self.templates.render, template, context)

    async def _agent_task(
        self, row: WorkflowRunRow, node_id: str, config: AgentTaskConfig, prompt: str
    ) -> str:
        if not prompt.strip():
            raise NodeFailed("The rendered prompt is empty.")
        request = AssignTaskRequest(
            description=prompt,
            agent_id=config.agent_id or None,
            required_capabilities=config.required_capabilities,
            priority=config.priority,
            timeout=config.timeout,
            max_attempts=config.max_attempts,
            force_execute=True,  # the workflow's author decided this work is wanted: no review hold
            idempotency_key=f"workflow:{row.id}:{node_id}",  # a resumed run finds its task again
            metadata={
                "workflow_id": row.workflow_id,
                "workflow_version": row.version,
                "workflow_run_id": row.id,
                "workflow_node_id": node_id,
            },
        )
        done = asyncio.Event()
        assigned = await self.tasks.assign(request)
        self._task_done[assigned.task_id] = done
        try:
            async with self.db.session() as session:
                await session.execute(
                    update(WorkflowRunNodeRow)
                    .where(WorkflowRunNodeRow.run_id == row.id, WorkflowRunNodeRow.node_id == node_id)
                    .values(task_id=assigned.task_id, agent_id=assigned.assigned_agent)
                )
            delay = 0.05
            while (
                True
            ):  # the bus wakes us when the task ends; polling covers a bus this process does not share
                task = await self.tasks.get_task(assigned.task_id)
                if task.status in TASK_FINISHED:
                    break
                try:
                    await asyncio.wait_for(done.wait(), delay)
                except TimeoutError:
                    delay = min(delay * 2, 1.0)
                done.clear()
        finally:
            self._task_done.pop(assigned.task_id, None)
        if task.status != TaskStatus.SUCCEEDED:
            raise NodeFailed(f"task {task.task_id} {task.status}: {task.error or 'no answer'}")
        if task.assigned_agent and task.assigned_agent != assigned.assigned_agent:
            async with self.db.session() as session:
                await session.execute(
                    update(WorkflowRunNodeRow)
                    .where(WorkflowRunNodeRow.run_id == row.id, WorkflowRunNodeRow.node_id == node_id)
                    .values(agent_id=task.assigned_agent)
                )
        return task.result or ""

    async def _on_task_event(self, event: Event) -> None:
        if event.type in ("task.succeeded", "task.failed", "task.cancelled"):
            waiter = self._task_done.get(event.data.get("task_id", ""))
            if waiter is not None:
                waiter.set()

    async def _stop_nodes(self, row: WorkflowRunRow, running: dict[asyncio.Task, str]) -> None:
        """After a node failed: stop the others still running, and their orchestrator tasks."""
        for job in running:
            job.cancel()
        await asyncio.gather(*running, return_exceptions=True)
        async with self.db.session() as session:
            task_ids = list(
                await session.scalars(
                    select(WorkflowRunNodeRow.task_id).where(
                        WorkflowRunNodeRow.run_id == row.id,
                        WorkflowRunNodeRow.status == NodeStatus.RUNNING,
                        WorkflowRunNodeRow.task_id.is_not(None),
                    )
                )
            )
        await self._cancel_tasks(task_ids)
        for node_id in running.values():
            await self._node_finished(row, None, node_id, NodeStatus.CANCELLED, error="another node failed")
        running.clear()

    async def _cancel_tasks(self, task_ids: builtins.list[str]) -> None:
        for task_id in task_ids:
            try:
                await self.tasks.cancel(task_id)
            except AppError as exc:  # it finished meanwhile
                log.info("workflow_task_not_cancelled", task_id=task_id, error=exc.code)

    async def _node_finished(
        self,
        row: WorkflowRunRow,
        plan: graphs.Plan | None,
        node_id: str,
        status: NodeStatus,
        *,
        output: Any = None,
        error: str | None = None,
    ) -> None:
        async with self.db.session() as session:
            result = await session.execute(
                update(WorkflowRunNodeRow)
                .where(
                    self._held(row),
                    WorkflowRunNodeRow.node_id == node_id,
                    WorkflowRunNodeRow.status.in_(NODE_UNFINISHED),
                )
                .values(status=status, output=output, error=error, finished_at=utcnow())
            )
            if result.rowcount != 1:
                return  # the run was cancelled or taken over meanwhile
            task_id = await session.scalar(
                select(WorkflowRunNodeRow.task_id).where(
                    WorkflowRunNodeRow.run_id == row.id, WorkflowRunNodeRow.node_id == node_id
                )
            )
        await self._publish(
            "workflow.node.finished",
            row.id,
            row.workflow_id,
            node_id=node_id,
            status=status,
            task_id=task_id,
            error=error,
        )

    async def _finish(
        self, row: WorkflowRunRow, status: RunStatus, *, outputs: dict | None = None, error: str | None = None
    ) -> None:
        now = utcnow()
        async with self.db.session() as session:
            result = await session.execute(
                tenant_update(WorkflowRunRow, row.tenant_id)
                .where(self.leases.fenced(_lease(row)))
                .values(
                    status=status,
                    outputs=outputs or {},
                    error=error,
                    finished_at=now,
                    lease_until=None,
                    updated_at=now,
                )
            )
            if result.rowcount != 1:
                return  # cancelled or taken over meanwhile
            if status == RunStatus.FAILED:
                await session.execute(
                    update(WorkflowRunNodeRow)
                    .where(
                        WorkflowRunNodeRow.run_id == row.id,
                        WorkflowRunNodeRow.status.in_(NODE_UNFINISHED),
                    )
                    .values(status=NodeStatus.CANCELLED, finished_at=now)
                )
        await self._publish(
            "workflow.run.finished",
            row.id,
            row.workflow_id,
            status=status,
            error=error,
            outputs=outputs or {},
        )

    def _held(self, row: WorkflowRunRow):
        """The nodes of `row` while this process holds the run's lease (the fence of every node write)."""
        return WorkflowRunNodeRow.run_id.in_(
            tenant_select(WorkflowRunRow.id, tenant=row.tenant_id).where(self.leases.fenced(_lease(row)))
        )

    async def _claim(self, run_id: str) -> WorkflowRunRow | None:
        now = utcnow()
        async with self.db.session() as session:
            if await self.leases.claim(session, run_id, updated_at=now) is None:
                return None
            row = await session.scalar(
                all_tenants(
                    select(WorkflowRunRow).where(WorkflowRunRow.id == run_id),
                    "a worker runs the workflow run it claimed, of any tenant",
                )
            )
            if row.started_at is None:
                row.started_at = now
            await session.execute(  # a resumed run restarts the nodes that had not finished
                update(WorkflowRunNodeRow)
                .where(WorkflowRunNodeRow.run_id == run_id, WorkflowRunNodeRow.status == NodeStatus.RUNNING)
                .values(status=NodeStatus.PENDING)
            )
            return row

    async def recoverable(self, *, sole_worker: bool, include_waiting: bool = True) -> builtins.list[str]:
        """Runs to (re)queue: running ones whose lease ran out (a sole process knows that of every running run
        at its start) and queued ones (without `include_waiting`, only those queued `requeue_waiting_s` ago:
        their message may have been lost). Too many recoveries fail a run."""
        now = utcnow()
        limit = self.settings.workflow_max_recoveries
        async with self.db.session() as session:
            waiting = await self.leases.stale(
                session, older_than_s=None if include_waiting else self.settings.requeue_waiting_s
            )
            requeued, failed = await self.leases.expire(
                session,
                sole_worker=sole_worker,
                exhausted=WorkflowRunRow.recoveries >= limit,
                failed={
                    "finished_at": now,
                    "updated_at": now,
                    "error": f"abandoned: the process running it stopped more than {limit} times",
                },
                requeued={"recoveries": WorkflowRunRow.recoveries + 1, "updated_at": now},
            )
            lost = list(
                await session.scalars(
                    all_tenants(
                        select(WorkflowRunRow).where(WorkflowRunRow.id.in_(failed)),
                        "recovery: the runs of every tenant abandoned too often",
                    )
                )
            )
            if lost:
                await session.execute(
                    update(WorkflowRunNodeRow)
                    .where(
                        WorkflowRunNodeRow.run_id.in_(failed),
                        WorkflowRunNodeRow.status.in_(NODE_UNFINISHED),
                    )
                    .values(status=NodeStatus.CANCELLED, finished_at=now)
                )
        for row in lost:
            await self._publish(
                "workflow.run.finished",
                row.id,
                row.workflow_id,
                status=RunStatus.FAILED,
                error=row.error,
                tenant_id=row.tenant_id,
            )
        if requeued:
            log.info("workflow_runs_requeued", runs=len(requeued))
        return [*waiting, *requeued]

    # -- helpers ---------------------------------------------------------------------------------------------

    async def _dispatch(self, run_id: str) -> None:
        try:
            await self.enqueue(run_id)
        except Exception as exc:  # the row is the truth: the sweep queues it again later
            log.warning("workflow_dispatch_failed", run_id=run_id, error=repr(exc))

    async def _publish(
        self, event_type: str, run_id: str, workflow_id: str, *, tenant_id: str | None = None, **data: Any
    ) -> None:
        await self.bus.publish(
            Event(
                type=event_type,
                source="workflows",
                tenant_id=tenant_id or current_tenant(),
                data={"run_id": run_id, "workflow_id": workflow_id, **data},
            )
        )

    @staticmethod
    def _version_row(workflow_id: str, version: int, body: WorkflowIn) -> WorkflowVersionRow:
        return WorkflowVersionRow(
            workflow_id=workflow_id,
            version=version,
            name=body.name,
            description=body.description,
            graph=body.graph.model_dump(mode="json"),
        )

    @staticmethod
    async def _workflow_row(session, workflow_id: str) -> WorkflowRow:
        row = await tenant_get(session, WorkflowRow, workflow_id)
        if row is None:
            raise NotFound(f"Unknown workflow '{workflow_id}'.", code="workflow_not_found")
        return row

    @staticmethod
    async def _version(session, workflow_id: str, version: int) -> WorkflowVersionRow:
        row = await session.scalar(
            select(WorkflowVersionRow).where(
                WorkflowVersionRow.workflow_id == workflow_id, WorkflowVersionRow.version == version
            )
        )
        if row is None:
            raise NotFound(f"Workflow '{workflow_id}' has no version {version}.", code="version_not_found")
        return row

    @staticmethod
    async def _run_row(session, run_id: str) -> WorkflowRunRow:
        row = await tenant_get(session, WorkflowRunRow, run_id)
        if row is None:
            raise NotFound(f"Unknown run '{run_id}'.", code="run_not_found")
        return row

    @staticmethod
    async def _node_rows(session, run_id: str) -> builtins.list[WorkflowRunNodeRow]:
        return list(
            await session.scalars(
                select(WorkflowRunNodeRow)
                .where(WorkflowRunNodeRow.run_id == run_id)
                .order_by(WorkflowRunNodeRow.id)
            )
        )


def _lease(row: WorkflowRunRow) -> Lease:
    """The lease a claimed run row was read under."""
    return Lease(row.id, row.lease_token)


def _live(plan: graphs.Plan, edge, states: dict) -> bool:
    """An edge carries control when its source succeeded and, for a condition, its port was the one taken."""
    state = states.get(edge.source)
    if state is None or state["status"] != NodeStatus.SUCCEEDED:
        return False
    if plan.nodes[edge.source].type == "condition":
        return edge.source_port == ("true" if state["output"] else "false")
    return True


def _run_out(row: WorkflowRunRow, nodes: list[WorkflowRunNodeRow]) -> Run:
    return Run(
        run_id=row.id,
        workflow_id=row.workflow_id,
        version=row.version,
        status=row.status,
        inputs=row.inputs,
        outputs=row.outputs,
        error=row.error,
        recoveries=row.recoveries,
        nodes=[
            NodeRun(
                node_id=n.node_id,
                type=n.type,
                status=n.status,
                output=n.output,
                error=n.error,
                task_id=n.task_id,
                agent_id=n.agent_id,
                started_at=n.started_at,
                finished_at=n.finished_at,
            )
            for n in nodes
        ],
        created_at=row.created_at,
        started_at=row.started_at,
        finished_at=row.finished_at,
    )
