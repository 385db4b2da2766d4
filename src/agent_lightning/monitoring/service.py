"""Monitoring: the platform's summary (the dashboard's data) and a small alert rule engine over what the
platform records in the database (tasks, rewards, model usage).

Rules run every ``ALP_ALERT_INTERVAL_S`` for every tenant with tasks, shortly after each finished task, and
on demand; each change of an alert is published on the bus as ``alert.firing`` or ``alert.resolved``.
Alert state lives in this process (one monitoring process per deployment).
"""

from __future__ import annotations

import asyncio
import math
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Literal

import httpx
from sqlalchemy import case, distinct, func, select

from agent_lightning import __version__
from agent_lightning.core.config import Settings
from agent_lightning.core.db import Database, utcnow
from agent_lightning.core.events import Event, EventBus
from agent_lightning.core.logging import get_logger
from agent_lightning.core.tenancy import current_tenant, set_tenant
from agent_lightning.monitoring import records as r
from agent_lightning.monitoring.schemas import (
    AgentStats,
    Alert,
    AlertList,
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

log = get_logger(__name__)

STATUSES = ("queued", "assigned", "awaiting_review", "running", "succeeded", "failed", "cancelled")
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


def _seconds(start: datetime | None, end: datetime | None) -> float | None:
    return (end - start).total_seconds() if start and end else None


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
        db: Database,
        bus: EventBus,
        local_checks: LocalChecks | None = None,
        remote_services: dict[str, str] | None = None,
        api_base: str = "",
        agents_base: str = "",
        auth_base: str = "",
    ) -> None:
        self.settings = settings
        self.db = db
        self.bus = bus
        self.local_checks = local_checks
        self.remote_services = remote_services or {}
        self.api_base, self.agents_base, self.auth_base = api_base, agents_base, auth_base
        self._firing: dict[str, dict[str, Alert]] = {}
        self._resolved: dict[str, deque[Alert]] = {}
        self._evaluated_at: dict[str, datetime] = {}
        self._lock = asyncio.Lock()
        self._pending: set[str] = set()
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
        await asyncio.sleep(OUTCOME_DELAY_S)
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
                async with self.db.session() as session:
                    tenants = set((await session.execute(select(distinct(r.tasks.c.tenant_id)))).scalars())
                for tenant in sorted(tenants | set(self._firing)):
                    set_tenant(tenant)
                    await self.evaluate()
            except Exception:
                log.exception("alert_evaluation_failed")

    # -- the dashboard's data -------------------------------------------------------------------------------

    def config(self) -> DashboardConfig:
        """What the dashboard page needs before its first request."""
        return DashboardConfig(auth_enabled=self.settings.auth_enabled, api_base=self.api_base,
                               agents_base=self.agents_base, auth_base=self.auth_base, version=__version__)

    async def summary(self) -> Summary:
        """Counts by status, throughput, success rates, latency percentiles, per-agent stats, the policy in use,
        model usage and cost, and the health of the services."""
        tenant = current_tenant()
        now = utcnow()
        t = r.tasks.c
        async with self.db.session() as session:
            by_status = {status: 0 for status in STATUSES}
            for status, n in await session.execute(
                select(t.status, func.count()).where(t.tenant_id == tenant).group_by(t.status)
            ):
                by_status[status] = n
            since = now - timedelta(seconds=THROUGHPUT_WINDOW_S)
            created = await session.scalar(select(func.count()).where(t.tenant_id == tenant, t.created_at >= since))
            finished = await session.scalar(select(func.count()).where(t.tenant_id == tenant, t.finished_at >= since))
            per_agent = await session.execute(
                select(t.agent_id, t.status, func.count())
                .where(t.tenant_id == tenant, t.agent_id.is_not(None))
                .group_by(t.agent_id, t.status)
            )
            agent_counts: dict[str, dict[str, int]] = {}
            for agent, status, n in per_agent:
                agent_counts.setdefault(agent, {})[status] = n
            recent = (await session.execute(
                select(t.agent_id, t.status, t.created_at, t.finished_at)
                .where(t.tenant_id == tenant, t.status.in_(("succeeded", "failed")), t.finished_at.is_not(None))
                .order_by(t.finished_at.desc())
                .limit(LATENCY_SAMPLE)
            )).all()
            rw = r.rewards.c
            reward_rows = await session.execute(
                select(rw.agent_id, func.count(), func.avg(rw.reward),
                       func.sum(case((rw.source == "feedback", 1), else_=0)))
                .where(rw.tenant_id == tenant)
                .group_by(rw.agent_id)
            )
            reward_stats = {agent: (n, mean, feedback) for agent, n, mean, feedback in reward_rows}
            u = r.model_usage.c
            usage_rows = (await session.execute(
                select(u.model, func.count(), func.sum(case((u.status != "ok", 1), else_=0)),
                       func.sum(u.prompt_tokens), func.sum(u.completion_tokens), func.sum(u.cost_usd),
                       func.avg(u.latency_ms))
                .where(u.tenant_id == tenant)
                .group_by(u.model)
                .order_by(u.model)
            )).all()
            policy = await self._policy(session, tenant)

        latencies = [_seconds(c, f) for _, status, c, f in recent if status == "succeeded"]
        latencies = [x for x in latencies if x is not None]
        window = recent[: self.settings.alert_window]
        by_agent_latency: dict[str, list[float]] = {}
        for agent, status, c, f in recent:
            if status == "succeeded" and agent:
                by_agent_latency.setdefault(agent, []).append(_seconds(c, f) or 0.0)
        agents = []
        for agent in sorted(set(agent_counts) | set(reward_stats)):
            counts = agent_counts.get(agent, {})
            ok, failed = counts.get("succeeded", 0), counts.get("failed", 0)
            n_rewards, mean_reward, feedback = reward_stats.get(agent, (0, None, 0))
            lat = by_agent_latency.get(agent)
            agents.append(AgentStats(
                agent_id=agent, tasks=sum(counts.values()), succeeded=ok, failed=failed,
                success_rate=_rate(ok, ok + failed), rewards=n_rewards,
                mean_reward=None if mean_reward is None else round(float(mean_reward), 4),
                feedback=int(feedback or 0), mean_latency_s=round(sum(lat) / len(lat), 3) if lat else None,
            ))
        models = [
            ModelUsage(model=model, requests=n, errors=int(errors or 0), prompt_tokens=int(pt or 0),
                       completion_tokens=int(ct or 0), cost_usd=round(float(cost or 0.0), 6),
                       mean_latency_ms=None if lat is None else round(float(lat), 2))
            for model, n, errors, pt, ct, cost, lat in usage_rows
        ]
        succeeded, failed = by_status["succeeded"], by_status["failed"]
        return Summary(
            tenant_id=tenant,
            generated_at=now,
            total_tasks=sum(by_status.values()),
            by_status=by_status,
            success_rate=_rate(succeeded, succeeded + failed),
            recent_success_rate=_rate(sum(1 for row in window if row.status == "succeeded"), len(window)),
            throughput=Throughput(window_s=THROUGHPUT_WINDOW_S, created=created or 0, finished=finished or 0,
                                  per_minute=round((finished or 0) / (THROUGHPUT_WINDOW_S / 60), 3)),
            latency_s=Percentiles(
                count=len(latencies),
                **{f"p{q}": None if (p := percentile(latencies, q)) is None else round(p, 3) for q in (50, 95, 99)},
            ),
            agents=agents,
            policy=policy,
            models=models,
            total_cost_usd=round(sum(m.cost_usd for m in models), 6),
            health=await self.health(),
            alerts_firing=len(self._firing.get(tenant, {})),
        )

    async def _policy(self, session, tenant: str) -> PolicySummary:
        configured = await session.scalar(
            select(r.policy_config.c.name).where(r.policy_config.c.tenant_id == tenant)
        )
        name = configured or self.settings.policy
        version = await session.scalar(
            select(r.policy_state.c.version).where(r.policy_state.c.tenant_id == tenant, r.policy_state.c.name == name)
        )
        return PolicySummary(name=name, version=version or 0, default=configured is None)

    async def health(self) -> list[ServiceHealth]:
        """This process's dependencies, and the liveness of the services other processes serve."""
        result: list[ServiceHealth] = []
        if self.local_checks is not None:
            for name, check in (await self.local_checks()).items():
                result.append(ServiceHealth(name=name, ok=bool(check.get("ok")), detail=str(check.get("detail", ""))))
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
            return ServiceHealth(name=name, ok=ok, detail="up" if ok else f"HTTP {response.status_code}", url=url)
        except httpx.HTTPError as exc:
            return ServiceHealth(name=name, ok=False, detail=type(exc).__name__, url=url)

    # -- alerts ---------------------------------------------------------------------------------------------

    def rules(self) -> list[RuleSpec]:
        """The configured rules (ALP_ALERT_*); a threshold of 0 turns a rule off."""
        s = self.settings
        return [
            RuleSpec("failure_rate", "critical", s.alert_failure_rate, s.alert_failure_rate > 0,
                     f"Share of failed tasks among the last {s.alert_window} finished (at least {s.alert_min_tasks})."),
            RuleSpec("latency_p95", "warning", s.alert_latency_p95_s, s.alert_latency_p95_s > 0,
                     f"p95 intake-to-end seconds of the last {s.alert_window} succeeded tasks."),
            RuleSpec("review_backlog", "warning", s.alert_review_backlog, s.alert_review_backlog > 0,
                     "Tasks waiting for review (awaiting_review)."),
            RuleSpec("queue_backlog", "warning", s.alert_queue_backlog, s.alert_queue_backlog > 0,
                     "Tasks assigned or queued but not yet running."),
            RuleSpec("stuck_tasks", "critical", s.alert_stuck_tasks, s.alert_stuck_tasks > 0,
                     "Running tasks whose lease has run out (their process may have died)."),
            RuleSpec("reward_drop", "warning", s.alert_reward_drop, s.alert_reward_drop > 0,
                     f"Drop of an agent's mean reward over its last {s.alert_reward_window} rewards against "
                     f"the {s.alert_reward_window} before."),
            RuleSpec("model_errors", "critical", s.alert_model_error_rate, s.alert_model_error_rate > 0,
                     f"Share of failed calls per model among its last {s.alert_window} (at least {s.alert_min_tasks})."),
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
                    alert = Alert(id=alert_id, rule=spec.name, severity=spec.severity, subject=finding.subject,
                                  message=finding.message, value=finding.value, threshold=spec.threshold,
                                  state="firing", tenant_id=tenant, started_at=now)
                    firing[alert_id] = alert
                    changes.append(alert)
                else:  # still firing: keep its start, show the latest measurement
                    firing[alert_id] = current.model_copy(update={"value": finding.value, "message": finding.message})
            for alert_id in [a for a in firing if a not in seen]:
                alert = firing.pop(alert_id).model_copy(update={"state": "resolved", "resolved_at": now})
                resolved.appendleft(alert)
                changes.append(alert)
            self._evaluated_at[tenant] = now
        for alert in changes:
            log.warning("alert_" + alert.state, alert=alert.id, value=alert.value, tenant_id=tenant)
            await self.bus.publish(Event(type=f"alert.{alert.state}", source="monitoring", tenant_id=tenant,
                                         data=alert.model_dump(mode="json")))
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
            rules=[Rule(name=s.name, enabled=s.enabled, severity=s.severity, threshold=s.threshold,
                        description=s.description) for s in self.rules()],
        )

    async def _findings(self, tenant: str) -> list[tuple[RuleSpec, Finding]]:
        s = self.settings
        specs = {spec.name: spec for spec in self.rules() if spec.enabled}
        t = r.tasks.c
        out: list[tuple[RuleSpec, Finding]] = []
        async with self.db.session() as session:
            window = (await session.execute(
                select(t.status, t.created_at, t.finished_at)
                .where(t.tenant_id == tenant, t.status.in_(("succeeded", "failed")), t.finished_at.is_not(None))
                .order_by(t.finished_at.desc())
                .limit(s.alert_window)
            )).all()
            counts = dict((await session.execute(
                select(t.status, func.count())
                .where(t.tenant_id == tenant, t.status.in_(("awaiting_review", "assigned", "queued")))
                .group_by(t.status)
            )).all())
            stuck = await session.scalar(
                select(func.count()).where(t.tenant_id == tenant, t.status == "running", t.lease_until < utcnow())
            ) if "stuck_tasks" in specs else 0
            rewards = (await session.execute(
                select(r.rewards.c.agent_id, r.rewards.c.reward)
                .where(r.rewards.c.tenant_id == tenant)
                .order_by(r.rewards.c.id.desc())
                .limit(1000)
            )).all() if "reward_drop" in specs else []
            u = r.model_usage.c
            usage = (await session.execute(
                select(u.model, u.status).where(u.tenant_id == tenant).order_by(u.created_at.desc()).limit(1000)
            )).all() if "model_errors" in specs else []

        if spec := specs.get("failure_rate"):
            failed = sum(1 for row in window if row.status == "failed")
            rate = failed / len(window) if window else 0.0
            fire = len(window) >= s.alert_min_tasks and rate >= spec.threshold
            out.append((spec, Finding(None, round(rate, 4), fire,
                                      f"{failed} of the last {len(window)} finished tasks failed ({rate:.0%}).")))
        if spec := specs.get("latency_p95"):
            lat = [x for x in (_seconds(c, f) for status, c, f in window if status == "succeeded") if x is not None]
            p95 = percentile(lat, 95) or 0.0
            fire = len(lat) >= s.alert_min_tasks and p95 > spec.threshold
            out.append((spec, Finding(None, round(p95, 3), fire,
                                      f"p95 task latency is {p95:.1f} s (target {spec.threshold:g} s).")))
        if spec := specs.get("review_backlog"):
            n = counts.get("awaiting_review", 0)
            out.append((spec, Finding(None, n, n >= spec.threshold, f"{n} tasks are waiting for review.")))
        if spec := specs.get("queue_backlog"):
            n = counts.get("assigned", 0) + counts.get("queued", 0)
            out.append((spec, Finding(None, n, n >= spec.threshold, f"{n} tasks are waiting to run.")))
        if spec := specs.get("stuck_tasks"):
            n = stuck or 0
            out.append((spec, Finding(None, n, n >= spec.threshold, f"{n} running tasks are past their lease.")))
        if spec := specs.get("reward_drop"):
            k = s.alert_reward_window
            by_agent: dict[str, list[float]] = {}
            for agent, reward in rewards:  # newest first
                by_agent.setdefault(agent, []).append(float(reward))
            for agent, values in sorted(by_agent.items()):
                if len(values) < 2 * k:
                    continue
                latest, before = sum(values[:k]) / k, sum(values[k:2 * k]) / k
                drop = before - latest
                out.append((spec, Finding(agent, round(drop, 4), drop >= spec.threshold,
                                          f"{agent}: mean reward {latest:.2f} over its last {k} rewards, "
                                          f"{before:.2f} before.")))
        if spec := specs.get("model_errors"):
            by_model: dict[str, list[bool]] = {}
            for model, status in usage:
                calls = by_model.setdefault(model, [])
                if len(calls) < s.alert_window:
                    calls.append(status != "ok")
            for model, calls in sorted(by_model.items()):
                rate = sum(calls) / len(calls)
                fire = len(calls) >= s.alert_min_tasks and rate >= spec.threshold
                out.append((spec, Finding(model, round(rate, 4), fire,
                                          f"{model}: {sum(calls)} of its last {len(calls)} calls failed ({rate:.0%}).")))
        return out
