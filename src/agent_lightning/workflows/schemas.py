"""Wire contract of the workflows service: graphs, the component catalogue, runs, and the orchestrator
interface a run submits its agent tasks through."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, RootModel

from agent_lightning.core.bounds import MAX_TIMEOUT_S, MAX_VERSION, MIN_TIMEOUT_S
from agent_lightning.orchestrator.schemas import TaskGateway  # noqa: F401  (the workflows' view of the orchestrator)

IDENTIFIER = r"^[A-Za-z_][A-Za-z0-9_]{0,63}$"
"""Node ids and input names: usable as `nodes.<id>.output` and `inputs.<name>` in templates."""

NodeType = Literal["input", "agent_task", "condition", "transform", "output"]


class RunStatus(StrEnum):
    """Where a workflow run is (the value is what is stored and sent)."""

    QUEUED = "queued"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELLED = "cancelled"


RUN_FINISHED = (RunStatus.SUCCEEDED, RunStatus.FAILED, RunStatus.CANCELLED)


class NodeStatus(StrEnum):
    """Where one node of a run is: a node whose branch was not taken is skipped."""

    PENDING = "pending"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    SKIPPED = "skipped"
    CANCELLED = "cancelled"


NODE_UNFINISHED = (NodeStatus.PENDING, NodeStatus.RUNNING)


# -- node configuration, one model per node type ------------------------------------------------------------


class InputField(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(pattern=IDENTIFIER, description="Referenced as `{{ inputs.<name> }}`.")
    type: Literal["string", "number", "boolean"] = "string"
    required: bool = True
    default: str | float | bool | None = None
    description: str = Field(default="", max_length=500)


class InputConfig(BaseModel):
    """Named inputs of the workflow, given when a run starts."""

    model_config = ConfigDict(extra="forbid")

    fields: list[InputField] = Field(min_length=1, max_length=50)


class AgentTaskConfig(BaseModel):
    """A task for an agent: the prompt is a template over `inputs` and upstream `nodes`."""

    model_config = ConfigDict(extra="forbid")

    prompt: str = Field(
        min_length=1, max_length=20_000, description="Jinja2 template, e.g. `{{ inputs.topic }}`."
    )
    agent_id: str | None = Field(
        default=None, max_length=64, description="Empty: the routing policy chooses."
    )
    required_capabilities: list[str] = Field(default_factory=list, max_length=20)
    priority: int = Field(default=5, ge=1, le=10)
    timeout: float | None = Field(
        default=None, ge=MIN_TIMEOUT_S, le=MAX_TIMEOUT_S, description="Seconds per attempt."
    )
    max_attempts: int | None = Field(default=None, ge=1, le=10)


class ConditionConfig(BaseModel):
    """Chooses a branch: the `true` or the `false` output port, by a sandboxed expression."""

    model_config = ConfigDict(extra="forbid")

    expression: str = Field(
        min_length=1,
        max_length=2000,
        description="A Jinja2 expression, e.g. `'urgent' in nodes.triage.output|lower`.",
    )


class TransformConfig(BaseModel):
    """Text from a template over `inputs` and upstream `nodes`, without a model."""

    model_config = ConfigDict(extra="forbid")

    template: str = Field(min_length=1, max_length=20_000)


class OutputConfig(BaseModel):
    """A result of the run, named; its template (or, without one, the upstream output that reached it)."""

    model_config = ConfigDict(extra="forbid")

    name: str | None = Field(
        default=None, pattern=IDENTIFIER, description="Key in the run's outputs; default the node id."
    )
    template: str | None = Field(default=None, max_length=20_000)


# -- graphs ---------------------------------------------------------------------------------------------


class Position(BaseModel):
    x: float = Field(default=0, ge=-1e7, le=1e7)
    y: float = Field(default=0, ge=-1e7, le=1e7)


class Node(BaseModel):
    model_config = ConfigDict(extra="forbid")

    id: str = Field(pattern=IDENTIFIER)
    type: str = Field(max_length=32, description="One of the catalogue's types (GET /workflows/components).")
    label: str = Field(default="", max_length=200)
    config: dict[str, Any] = Field(default_factory=dict)
    position: Position = Field(default_factory=Position)


class Edge(BaseModel):
    model_config = ConfigDict(extra="forbid")

    id: str = Field(min_length=1, max_length=64)
    source: str = Field(max_length=64)
    source_port: str = Field(default="out", max_length=32)
    target: str = Field(max_length=64)
    target_port: str = Field(default="in", max_length=32)


class Graph(BaseModel):
    model_config = ConfigDict(extra="forbid")

    nodes: list[Node] = Field(max_length=200)
    edges: list[Edge] = Field(default_factory=list, max_length=1000)


class WorkflowIn(BaseModel):
    """A new workflow, or a new version of one (PUT)."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, max_length=200)
    description: str = Field(default="", max_length=4000)
    graph: Graph


class Workflow(BaseModel):
    id: str
    name: str
    description: str
    version: int = Field(description="The version shown (the latest unless ?version= asked for another).")
    latest_version: int
    versions: list[int]
    graph: Graph
    created_at: datetime
    updated_at: datetime


class WorkflowSummary(BaseModel):
    id: str
    name: str
    description: str
    latest_version: int
    updated_at: datetime


class WorkflowDeleted(BaseModel):
    id: str
    deleted: bool = True
    versions: int = Field(description="How many versions were deleted with it.")


class WorkflowList(BaseModel):
    items: list[WorkflowSummary]


# -- the component catalogue ---------------------------------------------------------------------------------


class Port(BaseModel):
    name: str
    type: Literal["any", "text", "object"]
    description: str = ""


class Component(BaseModel):
    type: NodeType
    title: str
    category: Literal["data", "ai", "logic"]
    description: str
    inputs: list[Port]
    outputs: list[Port]
    config_schema: dict[str, Any] = Field(description="JSON Schema of the node's `config`.")
    template_fields: list[str] = Field(
        description="Config fields that are templates over `inputs` and `nodes`."
    )


class ComponentCatalogue(BaseModel):
    components: list[Component]
    template_variables: list[str] = Field(description="Names templates may use.")


# -- runs -----------------------------------------------------------------------------------------------


class RunRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    inputs: dict[str, Any] = Field(default_factory=dict)
    version: int | None = Field(
        default=None, ge=1, le=MAX_VERSION, description="Run this version; default the latest."
    )


class RunAccepted(BaseModel):
    run_id: str
    workflow_id: str
    version: int
    status: RunStatus


class NodeRun(BaseModel):
    node_id: str
    type: str
    status: NodeStatus
    output: Any = None
    error: str | None = None
    task_id: str | None = Field(default=None, description="The orchestrator task of an agent_task node.")
    agent_id: str | None = None
    started_at: datetime | None = None
    finished_at: datetime | None = None


class Run(BaseModel):
    run_id: str
    workflow_id: str
    version: int
    status: RunStatus
    inputs: dict[str, Any]
    outputs: dict[str, Any]
    error: str | None
    recoveries: int = Field(description="Times the run was resumed after the process running it stopped.")
    nodes: list[NodeRun]
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None


class RunList(BaseModel):
    items: list[Run]


class ExportedCode(BaseModel):
    workflow_id: str
    version: int
    language: Literal["python"]
    filename: str
    code: str


# -- what a run needs of the orchestrator --------------------------------------------------------------------


class BuilderPage(RootModel[str]):
    """The visual builder: one HTML page."""


class BuilderFile(RootModel[str]):
    """A file of the builder page: its module (text/javascript) or its style sheet (text/css)."""
