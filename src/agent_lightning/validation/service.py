"""The validation service: scans texts with the rules of `rules.py`, scores them, and keeps the reports."""

from __future__ import annotations

import asyncio

from agent_lightning.core.config import Settings
from agent_lightning.core.db import Database, new_id, utcnow
from agent_lightning.core.errors import NotFound
from agent_lightning.core.tenancy import current_tenant, tenant_select
from agent_lightning.validation import rules
from agent_lightning.validation.schemas import (
    BatchValidateRequest,
    BatchValidateResponse,
    CheckOutcome,
    Finding,
    ScanReport,
    ScanRequest,
    ValidateRequest,
    ValidationReport,
    ValidationStatus,
)
from agent_lightning.validation.tables import ValidationRow

SEVERITY_RANK = {"info": 0, "warning": 1, "high": 2, "never": 3}
PASSED, PARTIAL = 0.9, 0.6
OFFLOAD_CHARS = 2000  # longer texts are scanned in a thread, so one big task does not stall the event loop


def status_of(score: float) -> ValidationStatus:
    """passed from 0.9, partial from 0.6, else failed."""
    if score >= PASSED:
        return ValidationStatus.PASSED
    return ValidationStatus.PARTIAL if score >= PARTIAL else ValidationStatus.FAILED


class ValidationService:
    """Implements `Validator`: intake scans (nothing stored) and validation reports (stored per task)."""

    def __init__(self, *, settings: Settings, db: Database) -> None:
        self.settings = settings
        self.db = db
        self.block_rank = SEVERITY_RANK[settings.validation_block_severity]
        self.disabled = tuple(settings.validation_disabled_rules)
        self.overrides = dict(settings.validation_severity)

    # -- configuration ---------------------------------------------------------------------------------

    def enabled(self, rule: str) -> bool:
        """A rule is off when its id, its check or its family (the part before the dot) is listed."""
        check = rules.RULES[rule].check
        family = rule.split(".", 1)[0]
        return not any(d in (rule, check, family) for d in self.disabled)

    def severity(self, hit: rules.Hit) -> str:
        """The configured severity of a rule, else the hit's own, else the rule's default."""
        return self.overrides.get(hit.rule) or hit.severity or rules.RULES[hit.rule].severity

    # -- scanning --------------------------------------------------------------------------------------

    def _findings(self, field: str, hits, check: str | None = None) -> list[Finding]:
        out = []
        for hit in hits:
            if not self.enabled(hit.rule):
                continue
            rule = rules.RULES[hit.rule]
            message = rule.message + (f" ({hit.note})" if hit.note else "")
            severity = self.severity(hit)
            out.append(
                Finding(
                    rule=hit.rule,
                    check=check or rule.check,
                    severity=severity,
                    field=field,
                    start=hit.start,
                    end=hit.end,
                    message=message,
                    blocking=SEVERITY_RANK[severity] >= self.block_rank,
                )
            )
        return out

    def _scan_task_text(self, field: str, text: str) -> tuple[list[Finding], str | None]:
        findings = self._findings(field, rules.check_input(text, self.settings.validation_max_chars))
        findings += self._findings(field, rules.check_injection(text))
        findings += self._findings(field, rules.check_secrets(text))
        html_hits, sanitized = rules.check_html(text)
        findings += self._findings(field, html_hits)
        findings += self._findings(field, rules.check_pii(text))
        return findings, sanitized if html_hits and self.enabled("html.active") else None

    def _scan_fields(self, fields: dict[str, str]) -> ScanReport:
        findings: list[Finding] = []
        sanitized: dict[str, str] = {}
        for field, text in fields.items():
            found, clean = self._scan_task_text(field, text)
            findings += found
            if clean is not None:
                sanitized[field] = clean
        return ScanReport(findings=findings, blocked=any(f.blocking for f in findings), sanitized=sanitized)

    async def scan(self, request: ScanRequest) -> ScanReport:
        """Check texts at intake; nothing is stored."""
        if sum(len(t) for t in request.fields.values()) > OFFLOAD_CHARS:
            return await asyncio.to_thread(self._scan_fields, request.fields)
        return self._scan_fields(request.fields)

    def _report(self, request: ValidateRequest) -> ValidationReport:
        findings, sanitized = self._scan_task_text("description", request.task)
        checks = list(rules.CHECKS_TASK)
        if request.result is not None or request.execution_log is not None:
            checks += rules.CHECKS_RESULT
            result = request.result or ""
            findings += self._findings("result", rules.check_result(result))
            findings += self._findings("result", rules.check_secrets(result), check="result_secrets")
            if request.execution_log:
                findings += self._findings(
                    "execution_log", rules.check_secrets(request.execution_log), check="result_secrets"
                )
            known = {request.task[m.start : m.end] for m in rules.find_pii(request.task)}
            leaked = [h for h in rules.check_pii(result) if result[h.start : h.end] not in known]
            findings += self._findings("result", leaked, check="result_pii")
        failing = {f.check for f in findings if SEVERITY_RANK[f.severity] >= SEVERITY_RANK["warning"]}
        outcomes = [
            CheckOutcome(name=c, passed=c not in failing, findings=sum(f.check == c for f in findings))
            for c in checks
        ]
        score = round(sum(o.passed for o in outcomes) / len(outcomes), 4)
        blocked = any(f.blocking for f in findings)
        status = (
            ValidationStatus.FAILED if blocked else status_of(score)
        )  # what intake would reject has not passed at all
        return ValidationReport(
            task_id=request.task_id or new_id(),
            status=status,
            score=score,
            blocked=blocked,
            checks=outcomes,
            findings=findings,
            recommendation=_recommendation(status, blocked, [o.name for o in outcomes if not o.passed]),
            sanitized_task=sanitized,
            created_at=utcnow(),
        )

    # -- reports ---------------------------------------------------------------------------------------

    async def validate(self, request: ValidateRequest) -> ValidationReport:
        """Check a task (and its result, when given); store the report under the task's id."""
        size = len(request.task) + len(request.result or "") + len(request.execution_log or "")
        report = (
            await asyncio.to_thread(self._report, request) if size > OFFLOAD_CHARS else self._report(request)
        )
        async with self.db.session() as session:
            session.add(_row(report))
        return report

    async def validate_batch(self, request: BatchValidateRequest) -> BatchValidateResponse:
        """Validate several tasks; the reports are stored together."""
        reports = await asyncio.to_thread(lambda: [self._report(item) for item in request.items])
        async with self.db.session() as session:
            session.add_all([_row(r) for r in reports])
        return BatchValidateResponse(
            items=reports,
            passed=sum(r.status == ValidationStatus.PASSED for r in reports),
            partial=sum(r.status == ValidationStatus.PARTIAL for r in reports),
            failed=sum(r.status == ValidationStatus.FAILED for r in reports),
        )

    async def get(self, task_id: str) -> ValidationReport:
        """The newest report of a task."""
        async with self.db.session() as session:
            row = await session.scalar(
                tenant_select(ValidationRow)
                .where(ValidationRow.task_id == task_id)
                .order_by(ValidationRow.created_at.desc(), ValidationRow.seq.desc())
                .limit(1)
            )
        if row is None:
            raise NotFound(f"No validation of task '{task_id}'.", code="validation_not_found")
        return ValidationReport(
            task_id=row.task_id,
            status=row.status,
            score=row.score,
            blocked=row.blocked,
            checks=row.checks,
            findings=row.findings,
            recommendation=row.recommendation,
            sanitized_task=row.sanitized_task,
            created_at=row.created_at,
        )


def _row(report: ValidationReport) -> ValidationRow:
    return ValidationRow(
        tenant_id=current_tenant(),
        task_id=report.task_id,
        status=report.status,
        score=report.score,
        blocked=report.blocked,
        checks=[c.model_dump() for c in report.checks],
        findings=[f.model_dump() for f in report.findings],
        recommendation=report.recommendation,
        sanitized_task=report.sanitized_task,
        created_at=report.created_at,
    )


def _recommendation(status: ValidationStatus, blocked: bool, failed: list[str]) -> str:
    if blocked:
        return f"Reject: blocking findings in {', '.join(failed)}."
    if status == ValidationStatus.PASSED:
        return "Accept." if not failed else f"Accept; note the warnings in {', '.join(failed)}."
    if status == ValidationStatus.PARTIAL:
        return f"Review before use: {', '.join(failed)} did not pass."
    return f"Do not use as is: {', '.join(failed)} did not pass."
