"""The execution service over HTTP: what the orchestrator uses in split mode.

Round-robin over replicas, retries with backoff and jitter, a circuit breaker per replica, and a
fallback from `/api/v2/agents/execute` to `/agents/execute` (all in `ServiceCaller`).
"""

from __future__ import annotations

from agent_lightning.core.resilience import ServiceCaller
from agent_lightning.execution.schemas import ActionLog, ExecuteRequest, ExecuteResponse, Step, StepDecided

EXECUTE_PATHS = ("/api/v2/agents/execute", "/agents/execute")


class ExecutionClient:
    """Implements `Executor` against remote execution replicas."""

    def __init__(self, caller: ServiceCaller) -> None:
        self.caller = caller

    async def execute(self, request: ExecuteRequest) -> ExecuteResponse:
        body = request.model_dump(mode="json", by_alias=True, exclude_none=True)
        body["async"] = False
        timeout = (request.timeout or 120.0) + 10.0
        response = await self.caller.request("POST", EXECUTE_PATHS, json=body, timeout_s=timeout)
        return ExecuteResponse.model_validate(response.json())

    async def actions(self, task_id: str) -> ActionLog:
        response = await self.caller.request("GET", [f"/api/v2/actions/{task_id}"])
        return ActionLog.model_validate(response.json())

    async def decide_step(self, task_id: str, number: int, *, approve: bool, by: str) -> tuple[Step, int]:
        response = await self.caller.request(
            "POST",
            [f"/api/v2/actions/{task_id}/steps/{number}/decision"],
            json={"approve": approve, "by": by},
        )
        decided = StepDecided.model_validate(response.json())
        return decided.step, decided.waiting

    async def ready(self) -> bool:
        try:
            await self.caller.request("GET", ["/health"])
        except Exception:
            return False
        return True
