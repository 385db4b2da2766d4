"""Erasing a person's text in every service that stored it: the contract, its wire shape, and its HTTP client.

A task carries its user's words into several services' tables (the task and its attempts, the executions
and their steps, validation reports, knowledge learned from it). Each of those services implements
`TaskTextOwner`; the memory service's erase flow (`memory/flows.py`) calls every owner, in this process or
over HTTP, and then compacts the storage. Rows are kept where other records count on them (a task's
status and timings feed the routing statistics) with their text replaced by `ERASED`.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Protocol

from pydantic import BaseModel, Field

from agent_lightning.core.errors import Unavailable
from agent_lightning.core.resilience import ServiceCaller

ERASED = "[erased]"
"""What erased text reads as."""
BATCH = 500


def batches(ids: Iterable[str]) -> Iterator[list[str]]:
    """Ids in groups small enough for one `IN (...)`."""
    ids = sorted(ids)
    for start in range(0, len(ids), BATCH):
        yield ids[start : start + BATCH]


class EraseTaskText(BaseModel):
    user_id: str = Field(min_length=1, max_length=128)
    task_ids: list[str] = Field(
        default_factory=list,
        max_length=100_000,
        description="Tasks known to be the user's (e.g. from their conversations).",
    )


class ErasedRows(BaseModel):
    tables: dict[str, int] = Field(
        default_factory=dict, description="Rows erased or pseudonymised, per table."
    )
    task_ids: list[str] = Field(
        default_factory=list, description="The user's tasks, as far as this owner knows."
    )

    def add(self, other: ErasedRows) -> ErasedRows:
        tables = dict(self.tables)
        for table, count in other.tables.items():
            tables[table] = tables.get(table, 0) + count
        return ErasedRows(tables=tables, task_ids=sorted(set(self.task_ids) | set(other.task_ids)))


class TaskTextOwner(Protocol):
    """A service that stores text of a user's tasks."""

    name: str

    async def erase_task_text(self, request: EraseTaskText) -> ErasedRows:
        """Erase (or pseudonymise) the text of the user's tasks: those named and those it knows as theirs."""
        ...


class RemoteTaskTextOwner:
    """A `TaskTextOwner` in another process, reached at its erase route."""

    def __init__(self, name: str, caller: ServiceCaller, path: str) -> None:
        self.name = name
        self.caller = caller
        self.path = path

    async def erase_task_text(self, request: EraseTaskText) -> ErasedRows:
        response = await self.caller.request("POST", [self.path], json=request.model_dump(mode="json"))
        return ErasedRows.model_validate(response.json())


class UnreachableTaskTextOwner:
    """An owner this process has no way to reach: an erase fails (503) rather than skip its data silently."""

    def __init__(self, name: str, setting: str) -> None:
        self.name = name
        self.setting = setting

    async def erase_task_text(self, request: EraseTaskText) -> ErasedRows:
        raise Unavailable(
            f"Cannot erase the user's text held by the {self.name} service: this process has no way to "
            f"reach it (set {self.setting}).",
            code="erase_incomplete",
        )
