"""HTTP routes of the validation service."""

from __future__ import annotations

from fastapi import APIRouter, Path

from agent_lightning.core.http import ERROR_RESPONSES
from agent_lightning.validation.schemas import (
    TASK_ID_PATTERN,
    BatchValidateRequest,
    BatchValidateResponse,
    ScanReport,
    ScanRequest,
    ValidateRequest,
    ValidationReport,
)
from agent_lightning.validation.service import ValidationService


def router(validation: ValidationService) -> APIRouter:
    api = APIRouter(tags=["validation"], responses=ERROR_RESPONSES)

    @api.post(
        "/validate", response_model=ValidationReport, summary="Validate a task (and its result); stored"
    )
    async def validate(body: ValidateRequest) -> ValidationReport:
        return await validation.validate(body)

    @api.post("/batch-validate", response_model=BatchValidateResponse, summary="Validate up to 100 tasks")
    async def batch(body: BatchValidateRequest) -> BatchValidateResponse:
        return await validation.validate_batch(body)

    @api.get(
        "/validation/{task_id}", response_model=ValidationReport, summary="A task's newest validation report"
    )
    async def get(task_id: str = Path(pattern=TASK_ID_PATTERN)) -> ValidationReport:
        return await validation.get(task_id)

    @api.post("/validation/scan", response_model=ScanReport, summary="Scan texts at intake (nothing stored)")
    async def scan(body: ScanRequest) -> ScanReport:
        return await validation.scan(body)

    return api
