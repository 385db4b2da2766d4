"""HTTP routes of the workflows service, and the visual builder's page (served without credentials: it holds
no data and logs in itself)."""

from __future__ import annotations

from importlib import resources

from fastapi import APIRouter, Path, Query, Response
from fastapi.responses import HTMLResponse, JSONResponse

from agent_lightning.core.bounds import MAX_VERSION
from agent_lightning.core.errors import NotFound
from agent_lightning.core.http import ERROR_RESPONSES
from agent_lightning.workflows.schemas import (
    BuilderFile,
    BuilderPage,
    ComponentCatalogue,
    ExportedCode,
    Run,
    RunAccepted,
    RunList,
    RunRequest,
    Workflow,
    WorkflowDeleted,
    WorkflowIn,
    WorkflowList,
)
from agent_lightning.workflows.service import WorkflowService

STATIC = resources.files("agent_lightning.workflows") / "static"
ASSETS = {"builder.js": "text/javascript", "builder.css": "text/css"}


def router(workflows: WorkflowService) -> APIRouter:
    api = APIRouter(prefix="/workflows", tags=["workflows"], responses=ERROR_RESPONSES)

    @api.get(
        "/components",
        response_model=ComponentCatalogue,
        summary="Node types with their ports and config schema",
    )
    async def components() -> ComponentCatalogue:
        return workflows.components()

    @api.get("/runs/{run_id}", response_model=Run, summary="A run with each node's status, output and error")
    async def get_run(run_id: str = Path(max_length=64)) -> Run:
        return await workflows.get_run(run_id)

    @api.post(
        "/runs/{run_id}/cancel", response_model=Run, summary="Cancel an unfinished run and its running tasks"
    )
    async def cancel_run(run_id: str = Path(max_length=64)) -> Run:
        return await workflows.cancel_run(run_id)

    @api.get("", response_model=WorkflowList, summary="List workflows")
    async def list_workflows() -> WorkflowList:
        return await workflows.list()

    @api.post(
        "", response_model=Workflow, status_code=201, summary="Create a workflow (validated; version 1)"
    )
    async def create(body: WorkflowIn) -> Workflow:
        return await workflows.create(body)

    @api.get("/{workflow_id}", response_model=Workflow, summary="A workflow at its latest or a given version")
    async def get(
        workflow_id: str = Path(max_length=64),
        version: int | None = Query(default=None, ge=1, le=MAX_VERSION),
    ) -> Workflow:
        return await workflows.get(workflow_id, version)

    @api.put(
        "/{workflow_id}", response_model=Workflow, summary="Save a new version of a workflow (validated)"
    )
    async def put(body: WorkflowIn, workflow_id: str = Path(max_length=64)) -> Workflow:
        return await workflows.update(workflow_id, body)

    @api.delete(
        "/{workflow_id}", response_model=WorkflowDeleted, summary="Delete a workflow and its versions"
    )
    async def delete(workflow_id: str = Path(max_length=64)) -> WorkflowDeleted:
        return await workflows.delete(workflow_id)

    @api.post("/{workflow_id}/runs", response_model=RunAccepted, status_code=202, summary="Start a run")
    async def start_run(body: RunRequest, workflow_id: str = Path(max_length=64)) -> JSONResponse:
        accepted = await workflows.start_run(workflow_id, body)
        return JSONResponse(status_code=202, content=accepted.model_dump(mode="json"))

    @api.get("/{workflow_id}/runs", response_model=RunList, summary="The newest runs of a workflow")
    async def list_runs(
        workflow_id: str = Path(max_length=64), limit: int = Query(default=20, ge=1, le=200)
    ) -> RunList:
        return await workflows.list_runs(workflow_id, limit)

    @api.get("/{workflow_id}/export", response_model=ExportedCode, summary="The workflow as a Python script")
    async def export(
        workflow_id: str = Path(max_length=64),
        language: str = Query(default="python", max_length=20),
        version: int | None = Query(default=None, ge=1, le=MAX_VERSION),
    ) -> ExportedCode:
        return await workflows.export(workflow_id, version, language)

    return api


def builder_router() -> APIRouter:
    """The visual builder: a page and its two assets from the package (no build step, nothing from the
    internet)."""
    api = APIRouter(prefix="/workflows", tags=["workflows"])

    @api.get(
        "/builder",
        response_class=HTMLResponse,
        summary="The visual workflow builder (a web page)",
        responses={200: {"model": BuilderPage, "description": "The page (text/html)."}},
    )
    async def builder() -> HTMLResponse:
        return HTMLResponse((STATIC / "builder.html").read_text(encoding="utf-8"))

    @api.get(
        "/builder/{asset}",
        response_class=Response,
        summary="A script or stylesheet of the builder",
        responses={
            200: {"model": BuilderFile, "description": "The file (text/javascript or text/css)."},
            404: ERROR_RESPONSES[404],
        },
    )
    async def asset(asset: str = Path(max_length=40)) -> Response:
        if asset not in ASSETS:
            raise NotFound(f"No builder asset '{asset}'.", code="asset_not_found")
        return Response(
            (STATIC / asset).read_text(encoding="utf-8"),
            media_type=ASSETS[asset],
            headers={"Cache-Control": "no-cache"},
        )

    return api
