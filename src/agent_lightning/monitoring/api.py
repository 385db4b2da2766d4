"""HTTP for monitoring: `/monitoring/summary`, `/monitoring/alerts` (guarded like every router) and the
dashboard page with its static files (public: they hold no data; the page logs in when auth is on)."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from fastapi import APIRouter, Query
from fastapi.responses import FileResponse, HTMLResponse

from agent_lightning.core.errors import NotFound
from agent_lightning.core.http import ERROR_RESPONSES
from agent_lightning.monitoring.schemas import (
    AlertList,
    DashboardConfig,
    DashboardFile,
    DashboardPage,
    Summary,
)
from agent_lightning.monitoring.service import MonitoringService

STATIC = Path(__file__).with_name("static")
MEDIA_TYPES = {".js": "text/javascript", ".css": "text/css", ".svg": "image/svg+xml"}


def router(monitoring: MonitoringService) -> APIRouter:
    api = APIRouter(prefix="/monitoring", tags=["monitoring"], responses=ERROR_RESPONSES)

    @api.get(
        "/summary",
        response_model=Summary,
        summary="The dashboard's data: tasks, agents, policy, models, health",
    )
    async def summary() -> Summary:
        return await monitoring.summary()

    @api.get(
        "/alerts", response_model=AlertList, summary="Firing and recently resolved alerts, with the rules"
    )
    async def alerts(
        state: Literal["firing", "resolved", "all"] = Query(
            default="all", description="Which alerts to list."
        ),
    ) -> AlertList:
        return await monitoring.alerts(state)

    @api.post("/alerts/evaluate", response_model=AlertList, summary="Run the alert rules now")
    async def evaluate() -> AlertList:
        return await monitoring.evaluate()

    return api


def dashboard_router(monitoring: MonitoringService) -> APIRouter:
    """The page and its files. Nothing here reveals data, so it is served without a credential."""
    api = APIRouter(tags=["dashboard"], responses={404: ERROR_RESPONSES[404]})
    assets = {p.name: p for p in STATIC.iterdir() if p.suffix in MEDIA_TYPES}

    @api.get(
        "/dashboard",
        response_class=HTMLResponse,
        summary="The dashboard (a single page)",
        responses={200: {"model": DashboardPage, "description": "The page (text/html)."}},
    )
    async def page() -> FileResponse:
        return FileResponse(STATIC / "index.html", media_type="text/html")

    @api.get(
        "/dashboard/config", response_model=DashboardConfig, summary="What the page needs before it logs in"
    )
    async def config() -> DashboardConfig:
        return monitoring.config()

    @api.get(
        "/dashboard/assets/{name}",
        summary="A file of the page (script, style)",
        response_class=FileResponse,
        responses={200: {"model": DashboardFile, "description": "The file (text/javascript or text/css)."}},
    )
    async def asset(name: str) -> FileResponse:
        path = assets.get(name)
        if path is None:
            raise NotFound(f"Unknown dashboard file {name!r}.", code="asset_not_found")
        return FileResponse(path, media_type=MEDIA_TYPES[path.suffix])

    return api
