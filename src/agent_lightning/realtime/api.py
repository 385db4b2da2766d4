"""The WebSocket route of live events: ``/ws/events``. (WebSockets are not part of OpenAPI; the route is
described in the application's description and the README.)"""

from __future__ import annotations

import asyncio
import contextlib

from fastapi import APIRouter, Query, WebSocket

from agent_lightning.core.auth import Authenticator, Unauthenticated
from agent_lightning.core.logging import get_logger
from agent_lightning.core.tenancy import current_tenant, set_tenant
from agent_lightning.realtime.service import MAX_QUEUED, EventStream

log = get_logger(__name__)

MAX_REPLAY = 1000


def router(bus, *, max_queued: int = MAX_QUEUED) -> APIRouter:
    api = APIRouter()

    @api.websocket("/ws/events")
    async def live_events(
        websocket: WebSocket,
        types: str = Query(default="*", min_length=1, max_length=500,
                           description="Comma-separated globs of event types, e.g. `task.*`."),
        task_id: str | None = Query(default=None, max_length=64, description="Only this task's events."),
        replay: int = Query(default=0, ge=0, le=MAX_REPLAY, description="Send up to N recent events first."),
        token: str | None = Query(default=None, max_length=4096,
                                  description="With auth: an access token or API key (browsers cannot send headers)."),
    ) -> None:
        """Stream the tenant's bus events as JSON envelopes as they happen."""
        if not await _authenticated(websocket, token):
            return
        patterns = [p.strip() for p in types.split(",") if p.strip()] or ["*"]
        stream = EventStream(bus, tenant_id=current_tenant(), types=patterns, task_id=task_id, max_queued=max_queued)
        await websocket.accept()
        backlog = stream.open(replay)
        sender = asyncio.create_task(_send(websocket, stream, backlog))
        receiver = asyncio.create_task(_until_disconnect(websocket))
        try:
            done, _ = await asyncio.wait({sender, receiver}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            stream.close()
            for task in (sender, receiver):
                task.cancel()
            await asyncio.gather(sender, receiver, return_exceptions=True)
        if receiver not in done:  # we stopped sending (an error): close the connection ourselves
            with contextlib.suppress(Exception):
                await websocket.close(code=1011)

    return api


async def _authenticated(websocket: WebSocket, token: str | None) -> bool:
    """With auth on, the handshake must carry a credential (`Authorization: Bearer`, `X-API-Key` or
    `?token=`); its tenant is the stream's. A refused handshake is closed before it is accepted, which the
    server answers with HTTP 403."""
    authenticator: Authenticator | None = getattr(websocket.app.state, "auth", None)
    if authenticator is None:
        return True
    bearer = websocket.headers.get("authorization", "")
    try:
        principal = await authenticator.authenticate(
            token=token or (bearer[7:].strip() if bearer.lower().startswith("bearer ") else None),
            api_key=websocket.headers.get("x-api-key"),
        )
    except Unauthenticated as exc:
        await websocket.close(code=1008, reason=exc.message[:120])
        return False
    set_tenant(principal.tenant_id)
    return True


async def _send(websocket: WebSocket, stream: EventStream, backlog) -> None:
    try:
        for event in backlog:
            await websocket.send_text(event.model_dump_json())
        while True:
            event = await stream.next()
            await websocket.send_text(event.model_dump_json())
    except asyncio.CancelledError:
        raise
    except Exception as exc:  # the client went away mid-send, or the socket broke
        log.info("live_events_send_stopped", error=repr(exc))


async def _until_disconnect(websocket: WebSocket) -> None:
    """Read (and ignore) what the client sends until it disconnects."""
    while True:
        message = await websocket.receive()
        if message["type"] == "websocket.disconnect":
            return
