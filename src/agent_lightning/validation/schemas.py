"""Wire contract of the validation service, and the `Validator` the orchestrator depends on."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Literal, Protocol

from pydantic import BaseModel, ConfigDict, Field

from agent_lightning.core.errors import Invalid

Severity = Literal["info", "warning", "high"]


class ValidationStatus(StrEnum):
    """How a validated result fared: passed from a score of 0.9, partial from 0.6, else failed."""

    PASSED = "passed"
    PARTIAL = "partial"
    FAILED = "failed"


MAX_TEXT = 200_000
TASK_ID_PATTERN = r"^[A-Za-z0-9_.:-]{1,64}$"  # the orchestrator's task ids


class Finding(BaseModel):
    """One thing a check found. The offending text itself is never echoed (it may be a secret)."""

    rule: str = Field(description="Stable rule id, e.g. injection.override, secret.private_key, pii.email.")
    check: str = Field(description="The check the rule belongs to (a check fails on a warning or worse).")
    severity: Severity
    field: str = Field(description="Where: description, result, execution_log, metadata.<key>, …")
    start: int = Field(description="Span in the field's text: first character.")
    end: int = Field(description="Span in the field's text: one past the last character.")
    message: str
    blocking: bool = Field(
        default=False, description="At or above ALP_VALIDATION_BLOCK_SEVERITY: rejects a task."
    )


class ScanRequest(BaseModel):
    """Texts to scan, by field name (the task's description and the strings among its fields)."""

    model_config = ConfigDict(extra="forbid")

    fields: dict[str, str] = Field(
        min_length=1, description='e.g. {"description": "…", "metadata.repo": "…"}'
    )


class ScanReport(BaseModel):
    findings: list[Finding]
    blocked: bool = Field(
        description="A finding at or above the blocking severity: the task must be rejected."
    )
    sanitized: dict[str, str] = Field(
        default_factory=dict, description="Fields with active HTML (scripts, event handlers), cleaned by nh3."
    )


class ValidateRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    task: str = Field(min_length=1, max_length=MAX_TEXT, description="The task's text.")
    task_id: str | None = Field(default=None, pattern=TASK_ID_PATTERN, description="Made up when absent.")
    result: str | None = Field(default=None, max_length=MAX_TEXT, description="A finished task's answer.")
    execution_log: str | None = Field(default=None, max_length=MAX_TEXT, description="Its execution log.")


class CheckOutcome(BaseModel):
    name: str
    passed: bool
    findings: int


class ValidationReport(BaseModel):
    task_id: str
    status: ValidationStatus = Field(description="passed (score ≥ 0.9), partial (≥ 0.6) or failed.")
    score: float = Field(description="Checks passed / checks run.")
    blocked: bool = Field(description="A finding at or above the blocking severity.")
    checks: list[CheckOutcome]
    findings: list[Finding]
    recommendation: str
    sanitized_task: str | None = Field(
        default=None, description="The task with active HTML removed, if it had any."
    )
    created_at: datetime


class BatchValidateRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    items: list[ValidateRequest] = Field(min_length=1, max_length=100)


class BatchValidateResponse(BaseModel):
    items: list[ValidationReport]
    passed: int
    partial: int
    failed: int


class TaskRejected(Invalid):
    """A task whose text holds an attack or a secret (422, details: the blocking findings); nothing is
    created."""

    code = "task_rejected"


class Validator(Protocol):
    """What the orchestrator asks of the validation service."""

    async def scan(self, request: ScanRequest) -> ScanReport:
        """Check texts at intake (nothing stored)."""
        ...

    async def validate(self, request: ValidateRequest) -> ValidationReport:
        """Check a task and, when given, its result; store and return the report."""
        ...
