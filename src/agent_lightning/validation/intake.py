"""The intake policy: one scan for every entry point that accepts a task's text.

`POST /assign-task` (and so the workflows' agent tasks, the MCP server's `submit_task` and delegated subtasks,
which all submit through it), `POST /api/v2/agents/execute` and `POST /agents/execute` hand their texts to
`screen`: a blocking finding rejects the request (422 `task_rejected`, nothing created), other findings become
warnings, and with `ALP_VALIDATION_SANITIZE_HTML` fields with active HTML come back cleaned. The
OpenAI-compatible `/v1` routes are a model gateway, not a task entry point, and are not scanned (docs,
*Validation*).

Like the schemas, this module is the validation service's interface: the orchestrator and the execution
service import it and reach the scanner through the `Validator` protocol.
"""

from __future__ import annotations

from typing import Any

from agent_lightning.core.config import Settings
from agent_lightning.core.logging import get_logger
from agent_lightning.validation.schemas import ScanRequest, TaskRejected, Validator

log = get_logger(__name__)


def task_texts(fields: dict[str, Any], **nested: Any) -> dict[str, str]:
    """The texts of a task to scan, by field name: the non-empty strings of `fields`, then every string inside
    the `nested` values (metadata, context, environment variables), named by their path (`metadata.repo`)."""
    texts = {name: value for name, value in fields.items() if isinstance(value, str) and value}

    def walk(prefix: str, value: Any) -> None:
        if isinstance(value, str):
            texts[prefix] = value
        elif isinstance(value, dict):
            for key, item in value.items():
                walk(f"{prefix}.{key}", item)
        elif isinstance(value, list):
            for index, item in enumerate(value):
                walk(f"{prefix}[{index}]", item)

    for name, value in nested.items():
        walk(name, value)
    return texts


async def screen(
    validator: Validator | None, settings: Settings, texts: dict[str, str]
) -> tuple[dict[str, str], list[str]]:
    """Scan a task's texts: raise `TaskRejected` on a blocking finding; else return the fields to replace by
    their nh3-cleaned text (with ALP_VALIDATION_SANITIZE_HTML) and the warnings to keep with the task."""
    if validator is None or not settings.validation_enabled or not texts:
        return {}, []
    report = await validator.scan(ScanRequest(fields=texts))
    if report.blocked:
        rules = sorted({f.rule for f in report.findings if f.blocking})
        log.warning("task_rejected", rules=rules)
        raise TaskRejected(
            f"The task was rejected by validation: {', '.join(rules)}.",
            details={"findings": [f.model_dump() for f in report.findings]},
        )
    warnings = [
        f"{f.rule} in {f.field} at {f.start}-{f.end}: {f.message}"
        for f in report.findings
        if f.severity != "info"
    ]
    cleaned = {name: text.strip() for name, text in report.sanitized.items() if text.strip()}
    return (cleaned if settings.validation_sanitize_html else {}), warnings
