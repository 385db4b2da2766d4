"""The validation service over HTTP: the `Validator` the orchestrator uses in split mode."""

from __future__ import annotations

from agent_lightning.core.resilience import ServiceCaller
from agent_lightning.validation.schemas import ScanReport, ScanRequest, ValidateRequest, ValidationReport


class ValidationClient:
    """Implements `Validator` against a remote validation service."""

    def __init__(self, caller: ServiceCaller) -> None:
        self.caller = caller

    async def scan(self, request: ScanRequest) -> ScanReport:
        response = await self.caller.request(
            "POST", ["/validation/scan"], json=request.model_dump(mode="json")
        )
        return ScanReport.model_validate(response.json())

    async def validate(self, request: ValidateRequest) -> ValidationReport:
        response = await self.caller.request("POST", ["/validate"], json=request.model_dump(mode="json"))
        return ValidationReport.model_validate(response.json())
