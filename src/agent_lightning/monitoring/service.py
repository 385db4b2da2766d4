"""Monitoring: the platform's summary (the dashboard's data) and a small alert rule engine over what the
platform records (tasks, rewards, model usage), read through their owners' statistics interfaces
(`TaskStatistics` of the orchestrator, `UsageStatistics` of the model service).

Rules run every ``ALP_ALERT_INTERVAL_S`` for every tenant with tasks, shortly after each finished task, and
on demand; each change of an alert is published on the bus as ``alert.firing`` or ``alert.resolved``.
Alert state lives in this process (one monitoring process per deployment).
"""

from __future__ import annotations

import asyncio
import math
import time
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Literal

import httpx

from agent_lightning import __version__
from agent_lightning.core.config import Settings
from agent_lightning.core.db import utcnow
from agent_lightning.core.events import Event, EventBus
from agent_lightning.core.logging import get_logger
from agent_lightning.core.tenancy import current_tenant, set_tenant
from agent_lightning.models.schemas import UsageStatistics
from agent_lightning.monitoring.schemas import (
    AgentStats,
    Alert,
    AlertList,
    AlertState,
    DashboardConfig,
    ModelUsage,
    Percentiles,
    PolicySummary,
    Rule,
    ServiceHealth,
    Severity,
    Summary,
    Throughput,
)
from agent_lightning.orchestrator.schemas import TASK_FINISHED, FinishedTask, TaskStatistics, TaskStatus

log = get_logger(__name__)

STATUSES = tuple(TaskStatus)
LATENCY_SAMPLE = 1000  # finished tasks the latency percentiles and per-agent latency are computed over
RESOLVED_KEPT = 50
THROUGHPUT_WINDOW_S = 3600
OUTCOME_DELAY_S = 0.2  # finished tasks in quick succession share one evaluation

LocalChecks = Callable[[], Awaitable[dict[str, dict[str, Any]]]]


def percentile(values: list[float], q: float) -> float | None:
    """The q-th percentile (0–100) with linear interpolation between closest ranks."""
    if not values:
        return None
    ordered = sorted(values)
    rank = (len(ordered) - 1) * q / 100
    low, high = math.floor(rank), math.ceil(rank)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


def _rate(part: int, whole: int) -> float | None:
    return round(part / whole, 4) if whole else None


def _seconds(task: FinishedTask) -> float:
    """Intake to end."""
    return (task.finished_at - task.created_at).total_seconds()


@dataclass(frozen=True)
class Finding:
    """A rule's verdict on one subject: the measured value and the message when it is over the line."""

    subject: str | None
    value: float
    firing: bool
    message: str


@dataclass(frozen=True)
class RuleSpec:
    name: str
    severity: Severity
    threshold: float
    enabled: bool
    description: str


class MonitoringService:
    """Summaries and alerts for the caller's tenant, from the shared database."""

    def __init__(
        self,
        *,
        settings: Settings,
        tasks: TaskStatistics,
        usage: UsageStatistics,
        bus: EventBus,
        local_checks: LocalChecks | None = None,
        remote_services: dict[str, str] | None = None,
        api_base: str = "",
        agents_base: str = "",
        auth_base: str = "",
    ) -> None:
        self.settings = settings
        self.tasks = tasks
        self.usage = usage
        self.bus = bus
        self.local_checks = local_checks
        self.remote_services = remote_services or {}
        self.api_base, self.agents_base, self.auth_base = api_base, agents_base, auth_base
        self._firing: dict[str, dict[str, Alert]] = {}
        self._resolved: dict[str, deque[Alert]] = {}
        self._evaluated_at: dict[str, datetime] = {}
        self._lock = asyncio.Lock()
        self._pending: set[str] = set()
        self._outcome_runs: dict[str, float] = {}  # tenant -> when finished tasks last made the rules run
        self._jobs: set[asyncio.Task] = set()

    # -- lifecycle ------------------------------------------------------------------------------------------

    async def start(self) -> None:
        """Evaluate after every finished task and, every ALP_ALERT_INTERVAL_S, for every tenant."""
        self.bus.subscribe("task.succeeded", self._on_outcome)
        self.bus.subscribe("task.failed", self._on_outcome)
        if self.settings.alert_interval_s > 0:
            self._spawn(self._periodic())

    async def stop(self) -> None:
        unsubscribe = getattr(self.bus, "unsubscribe", None)
        if unsubscribe is not None:
            unsubscribe(self._on_outcome)
        for job in list(self._jobs):
            job.cancel()
        await asyncio.gather(*self._jobs, return_exceptions=True)

    def _spawn(self, coro: Awaitable[None]) -> None:
        job = asyncio.ensure_future(coro)
        self._jobs.add(job)
        job.add_done_callback(self._jobs.discard)

    async def _on_outcome(self, event: Event) -> None:
        if event.tenant_id in self._pending:
            return
        self._pending.add(event.tenant_id)
        self._spawn(self._evaluate_soon(event.tenant_id))

    async def _evaluate_soon(self, tenant: str) -> None:
        """Evaluate shortly after a finished task, and at most every `alert_outcome_interval_s` while tasks
        keep finishing (a busy platform would otherwise run every rule after every task)."""
        last = self._outcome_runs.get(tenant, float("-inf"))
        wait = max(OUTCOME_DELAY_S, last + self.settings.alert_outcome_interval_s - time.monotonic())
        await asyncio.sleep(wait)
        self._outcome_runs[tenant] = time.monotonic()
        self._pending.discard(tenant)
        set_tenant(tenant)
        try:
            await self.evaluate()
        except Exception:
            log.exception("alert_evaluation_failed", tenant_id=tenant)

    async def _periodic(self) -> None:
        while True:
            await asyncio.sleep(self.settings.alert_interval_s)
            try:
                tenants = set(await self.tasks.tenants())
                for tenant in sorted(tenants | set(self._firing)):
                    set_tenant(tenant)
                    await self.evaluate()
            except Exception:
                log.exception("alert_evaluation_failed")

    # -- the dashboard's data -------------------------------------------------------------------------------

    def config(self) -> DashboardConfig:
        """What the dashboard page needs before its first request."""
        return DashboardConfig(
            auth_enabled=self.settings.auth_enabled,
            api_base=self.api_base,
            agents_base=self.agents_base,
            auth_base=self.auth_base,
            version=__version__,
        )

    async def platform_task_counts(self) -> tuple[dict[str, int], int]:
        """Unfinished tasks by status over every tenant, and how many running ones are past their lease: the
        operator's gauges (`alp_tasks_current`, `alp_tasks_lease_expired`), which carry no tenant."""
        unfinished = tuple(status for status in STATUSES if status not in TASK_FINISHED)
        counts = dict.fromkeys(unfinished, 0) | await self.tasks.counts_by_status(None, unfinished)
        return counts, await self.tasks.expired_leases(None)

    async def summary(self) -> Summary:
        """Counts by status, throughput, success rates, latency percentiles, per-agent stats, the policy in
        use, model usage and cost, and the health of the services."""
        tenant = current_tenant()
        now = utcnow()
        by_status = dict.fromkeys(STATUSES, 0) | await self.tasks.counts_by_status(tenant)
        created, finished = await self.tasks.created_and_finished_since(
            tenant, now - timedelta(seconds=THROUGHPUT_WINDOW_S)
        )
        agent_counts = await self.tasks.counts_by_agent(tenant)
        recent = await self.tasks.recent_finished(tenant, LATENCY_SAMPLE)
        reward_stats = {r.agent_id: r for r in await self.tasks.reward_totals(tenant)}
        usage_rows = await self.usage.totals_by_model(tenant)
        in_use = await self.tasks.policy_in_use(tenant, self.settings.policy)
        policy = PolicySummary(name=in_use.name, version=in_use.version, default=in_use.default)

        latencies = [_seconds(t) for t in recent if t.status == TaskStatus.SUCCEEDED]
        window = recent[: self.settings.alert_window]
        by_agent_latency: dict[str, list[float]] = {}
        for t in recent:
            if t.status == TaskStatus.SUCCEEDED and t.agent_id:
                by_agent_latency.setdefault(t.agent_id, []).append(_seconds(t))
        agents = []
        for agent in sorted(set(agent_counts) | set(reward_stats)):
            counts = agent_counts.get(agent, {})
            ok, failed = counts.get(TaskStatus.SUCCEEDED, 0), counts.get(TaskStatus.FAILED, 0)
            rewards = reward_stats.get(agent)
            lat = by_agent_latency.get(agent)
            agents.append(
                AgentStats(
                    agent_id=agent,
                    tasks=sum(counts.values()),
                    succeeded=ok,
                    failed=failed,
                    success_rate=_rate(ok, ok + failed),
                    rewards=rewards.rewards if rewards else 0,
                    mean_reward=None
                    if rewards is None or rewards.mean_reward is None
                    else round(rewards.mean_reward, 4),
                    feedback=rewards.feedback if rewards else 0,
                    mean_latency_s=round(sum(lat) / len(lat), 3) if lat else None,
                )
            )
        models = [
            ModelUsage(
                model=u.model,
                requests=u.requests,
                errors=u.errors,
                prompt_tokens=u.prompt_tokens,
                completion_tokens=u.completion_tokens,
                cost_usd=round(u.cost_usd, 6),
                mean_latency_ms=None if u.mean_latency_ms is None else round(u.mean_latency_ms, 2),
            )
            for u in usage_rows
        ]
        succeeded, failed = by_status[TaskStatus.SUCCEEDED], by_status[TaskStatus.FAILED]
        return Summary(
            tenant_id=tenant,
            generated_at=now,
            total_tasks=sum(by_status.values()),
            by_status=by_status,
            success_rate=_rate(succeeded, succeeded + failed),
            recent_success_rate=_rate(
                sum(1 for row in window if row.status == TaskStatus.SUCCEEDED), len(window)
            ),
            throughput=Throughput(
                window_s=THROUGHPUT_WINDOW_S,
                created=created,
                finished=finished,
                per_minute=round(finished / (THROUGHPUT_WINDOW_S / 60), 3),
            ),
            latency_s=Percentiles(
                count=len(latencies),
                **{
                    f"p{q}": None if (p := percentile(latencies, q)) is None else round(p, 3)
                    for q in (50, 95, 99)
                },
            ),
            agents=agents,
            policy=policy,
            models=models,
            total_cost_usd=round(sum(m.cost_usd for m in models), 6),
            health=await self.health(),
            alerts_firing=len(self._firing.get(tenant, {})),
        )

    async def health(self) -> list[ServiceHealth]:
        """This process's dependencies, and the liveness of the services other processes serve."""
        result: list[ServiceHealth] = []
        if self.local_checks is not None:
            for name, check in (await self.local_checks()).items():
                result.append(
                    ServiceHealth(name=name, ok=bool(check.get("ok")), detail=str(check.get("detail", "")))
                )
        if self.remote_services:
            async with httpx.AsyncClient(timeout=2.0) as http:
                probes = await asyncio.gather(
                    *(self._probe(http, name, url) for name, url in self.remote_services.items())
                )
            result.extend(probes)
        return result

    @staticmethod
    async def _probe(http: httpx.AsyncClient, name: str, url: str) -> ServiceHealth:
        try:
            response = await http.get(f"{url.rstrip('/')}/health")
            ok = response.status_code == 200
            return ServiceHealth(
                name=name, ok=ok, detail="up" if ok else f"HTTP {response.status_code}", url=url
            )
        except httpx.HTTPError as exc:
            return ServiceHealth(name=name, ok=False, detail=type(exc).__name__, url=url)

    # -- alerts ---------------------------------------------------------------------------------------------

    def rules(self) -> list[RuleSpec]:
        """The configured rules (ALP_ALERT_*); a threshold of 0 turns a rule off."""
        s = self.settings
        return [
            RuleSpec(
                "failure_rate",
                "critical",
                s.alert_failure_rate,
                s.alert_failure_rate > 0,
                f"Share of failed tasks among the last {s.alert_window} finished (at least "
                f"{s.alert_min_tasks}).",
            ),
            RuleSpec(
                "latency_p95",
                "warning",
                s.alert_latency_p95_s,
                s.alert_latency_p95_s > 0,
                f"p95 intake-to-end seconds of the last {s.alert_window} succeeded tasks.",
            ),
            RuleSpec(
                "review_backlog",
                "warning",
                s.alert_review_backlog,
                s.alert_review_backlog > 0,
                "Tasks waiting for review (awaiting_review).",
            ),
            RuleSpec(
                "queue_backlog",
                "warning",
                s.alert_queue_backlog,
                s.alert_queue_backlog > 0,
                "Tasks assigned or queued but not yet running.",
            ),
            RuleSpec(
                "stuck_tasks",
                "critical",
                s.alert_stuck_tasks,
                s.alert_stuck_tasks > 0,
                "Running tasks whose lease has run out (their process may have died).",
            ),
            RuleSpec(
                "reward_drop",
                "warning",
                s.alert_reward_drop,
                s.alert_reward_drop > 0,
                f"Drop of an agent's mean reward over its last {s.alert_reward_window} rewards against "
                f"the {s.alert_reward_window} before.",
            ),
            RuleSpec(
                "model_errors",
                "critical",
                s.alert_model_error_rate,
                s.alert_model_error_rate > 0,
                f"Share of failed calls per model among its last {s.alert_window} (at least "
                f"{s.alert_min_tasks}).",
            ),
        ]

    async def evaluate(self) -> AlertList:
        """Run every rule for the caller's tenant now; publish what started or stopped firing."""
        tenant = current_tenant()
        async with self._lock:
            findings = await self._findings(tenant)
            now = utcnow()
            firing = self._firing.setdefault(tenant, {})
            resolved = self._resolved.setdefault(tenant, deque(maxlen=RESOLVED_KEPT))
            seen: set[str] = set()
            changes: list[Alert] = []
            for spec, finding in findings:
                alert_id = spec.name if finding.subject is None else f"{spec.name}:{finding.subject}"
                if not finding.firing:
                    continue
                seen.add(alert_id)
                current = firing.get(alert_id)
                if current is None:
                    alert = Alert(
                        id=alert_id,
                        rule=spec.name,
                        severity=spec.severity,
                        subject=finding.subject,
                        message=finding.message,
                        value=finding.value,
                        threshold=spec.threshold,
                        state=AlertState.FIRING,
                        tenant_id=tenant,
                        started_at=now,
                    )
                    firing[alert_id] = alert
                    changes.append(alert)
                else:  # still firing: keep its start, show the latest measurement
                    firing[alert_id] = current.model_copy(
                        update={"value": finding.value, "message": finding.message}
                    )
            for alert_id in [a for a in firing if a not in seen]:
                alert = firing.pop(alert_id).model_copy(
                    update={"state": AlertState.RESOLVED, "resolved_at": now}
                )
                resolved.appendleft(alert)
                changes.append(alert)
            self._evaluated_at[tenant] = now
        for alert in changes:
            log.warning("alert_" + alert.state, alert=alert.id, value=alert.value, tenant_id=tenant)
            await self.bus.publish(
                Event(
                    type=f"alert.{alert.state}",
                    source="monitoring",
                    tenant_id=tenant,
                    data=alert.model_dump(mode="json"),
                )
            )
        return await self.alerts()

    async def alerts(self, state: Literal["firing", "resolved", "all"] = "all") -> AlertList:
        """The tenant's firing alerts and the recently resolved ones, with the rules."""
        tenant = current_tenant()
        firing = sorted(self._firing.get(tenant, {}).values(), key=lambda a: a.started_at)
        resolved = list(self._resolved.get(tenant, ()))
        return AlertList(
            firing=firing if state in ("firing", "all") else [],
            resolved=resolved if state in ("resolved", "all") else [],
            evaluated_at=self._evaluated_at.get(tenant),
            rules=[
                Rule(
                    name=s.name,
                    enabled=s.enabled,
                    severity=s.severity,
                    threshold=s.threshold,
                    description=s.description,
                )
                for s in self.rules()
            ],
        )

    async def _findings(self, tenant: str) -> list[tuple[RuleSpec, Finding]]:
        s = self.settings
        specs = {spec.name: spec for spec in self.rules() if spec.enabled}
        out: list[tuple[RuleSpec, Finding]] = []
        window = await self.tasks.recent_finished(tenant, s.alert_window)
        counts = await self.tasks.counts_by_status(
            tenant, (TaskStatus.AWAITING_REVIEW, TaskStatus.ASSIGNED, TaskStatus.QUEUED)
        )
        stuck = await self.tasks.expired_leases(tenant) if "stuck_tasks" in specs else 0
        rewards = await self.tasks.recent_rewards(tenant, 1000) if "reward_drop" in specs else []
        usage = await self.usage.recent_calls(tenant, 1000) if "model_errors" in specs else []

        if spec := specs.get("failure_rate"):
            failed = sum(1 for row in window if row.status == TaskStatus.FAILED)
            rate = failed / len(window) if window else 0.0
            fire = len(window) >= s.alert_min_tasks and rate >= spec.threshold
            out.append(
                (
                    spec,
                    Finding(
                        None,
                        round(rate, 4),
                        fire,
                        f"{failed} of the last {len(window)} finished tasks failed ({rate:.0%}).",
                    ),
                )
            )
        if spec := specs.get("latency_p95"):
            lat = [_seconds(t) for t in window if t.status == TaskStatus.SUCCEEDED]
            p95 = percentile(lat, 95) or 0.0
            fire = len(lat) >= s.alert_min_tasks and p95 > spec.threshold
            out.append(
                (
                    spec,
                    Finding(
                        None,
                        round(p95, 3),
                        fire,
                        f"p95 task latency is {p95:.1f} s (target {spec.threshold:g} s).",
                    ),
                )
            )
        if spec := specs.get("review_backlog"):
            n = counts.get(TaskStatus.AWAITING_REVIEW, 0)
            out.append((spec, Finding(None, n, n >= spec.threshold, f"{n} tasks are waiting for review.")))
        if spec := specs.get("queue_backlog"):
            n = counts.get(TaskStatus.ASSIGNED, 0) + counts.get(TaskStatus.QUEUED, 0)
            out.append((spec, Finding(None, n, n >= spec.threshold, f"{n} tasks are waiting to run.")))
        if spec := specs.get("stuck_tasks"):
            n = stuck or 0
            out.append(
                (spec, Finding(None, n, n >= spec.threshold, f"{n} running tasks are past their lease."))
            )
        if spec := specs.get("reward_drop"):
            k = s.alert_reward_window
            by_agent: dict[str, list[float]] = {}
            for agent, reward in rewards:  # newest first
                by_agent.setdefault(agent, []).append(float(reward))
            for agent, values in sorted(by_agent.items()):
                if len(values) < 2 * k:
                    continue
                latest, before = sum(values[:k]) / k, sum(values[k : 2 * k]) / k
                drop = before - latest
                out.append(
                    (
                        spec,
                        Finding(
                            agent,
                            round(drop, 4),
                            drop >= spec.threshold,
                            f"{agent}: mean reward {latest:.2f} over its last {k} rewards, "
                            f"{before:.2f} before.",
                        ),
                    )
                )
        if spec := specs.get("model_errors"):
            by_model: dict[str, list[bool]] = {}
            for model, failed_call in usage:
                calls = by_model.setdefault(model, [])
                if len(calls) < s.alert_window:
                    calls.append(failed_call)
            for model, calls in sorted(by_model.items()):
                rate = sum(calls) / len(calls)
                fire = len(calls) >= s.alert_min_tasks and rate >= spec.threshold
                out.append(
                    (
                        spec,
                        Finding(
                            model,
                            round(rate, 4),
                            fire,
                            f"{model}: {sum(calls)} of its last {len(calls)} calls failed ({rate:.0%}).",
                        ),
                    )
                )
        return out
