"""Live events: the WebSocket ``/ws/events`` (also ``/ws``; WebSockets are not part of OpenAPI, the route is
described in the docs) and the same stream as Server-Sent Events, ``GET /events``."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass

from fastapi import APIRouter, Depends, Header, Query, Request, WebSocket
from fastapi.responses import StreamingResponse
from pydantic import BaseModel, Field
from starlette.requests import HTTPConnection

from agent_lightning.core.auth import AUTH_RESPONSES, Authenticator
from agent_lightning.core.errors import Unauthenticated
from agent_lightning.core.events import Event
from agent_lightning.core.http import ERROR_RESPONSES, as_json
from agent_lightning.core.logging import get_logger
from agent_lightning.core.tenancy import current_tenant, set_tenant
from agent_lightning.realtime.service import MAX_QUEUED, EventStream

log = get_logger(__name__)

MAX_REPLAY = 1000
KEEPALIVE_S = 15.0
"""An SSE comment line is sent after this long without events, so that proxies keep the connection."""


class EventMessage(BaseModel):
    """One message of `GET /events` in OpenAPI (a `: keep-alive` comment is none): its `data` is an
    `Event`."""

    event: str = Field(description="The event's type.")
    id: str = Field(description="The event's id (send it back as Last-Event-ID).")
    data: str = Field(
        json_schema_extra={"contentMediaType": "application/json", "contentSchema": Event.model_json_schema()}
    )


class EventStreamResponse(StreamingResponse):
    """Server-Sent Events; in OpenAPI each message's `data` is an `Event`."""

    media_type = "text/event-stream"


@dataclass
class Filters:
    types: list[str]
    task_id: str | None
    replay: int


def filters(
    types: str = Query(
        default="*",
        min_length=1,
        max_length=500,
        description="Comma-separated globs of event types, e.g. `task.*`.",
    ),
    task_id: str | None = Query(default=None, max_length=64, description="Only this task's events."),
    replay: int = Query(default=0, ge=0, le=MAX_REPLAY, description="Send up to N recent events first."),
) -> Filters:
    return Filters([p.strip() for p in types.split(",") if p.strip()] or ["*"], task_id, replay)


def router(bus, *, max_queued: int = MAX_QUEUED, keepalive_s: float = KEEPALIVE_S) -> APIRouter:
    api = APIRouter()

    def stream_of(wanted: Filters) -> EventStream:
        return EventStream(
            bus, tenant_id=current_tenant(), types=wanted.types, task_id=wanted.task_id, max_queued=max_queued
        )

    @api.websocket("/ws/events")
    @api.websocket("/ws")
    async def live_events(
        websocket: WebSocket,
        wanted: Filters = Depends(filters),
        token: str | None = Query(
            default=None,
            max_length=4096,
            description="With auth: an access token or API key (browsers cannot send headers).",
        ),
    ) -> None:
        """Stream the tenant's bus events as JSON envelopes as they happen."""
        if not await _authenticated(websocket, token):
            return
        stream = stream_of(wanted)
        await websocket.accept()
        backlog = stream.open(wanted.replay)
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

    @api.get(
        "/events",
        tags=["realtime"],
        response_class=EventStreamResponse,
        dependencies=[Depends(_stream_credential)],
        responses={
            200: {
                "model": EventMessage,
                "description": "One `event:` per bus event; `id:` is the event id, "
                "`data:` its JSON envelope.",
                # FastAPI marks a streamed body `type: string`; each message is an object
                "content": {"text/event-stream": {"schema": {"type": "object"}}},
            },
            **as_json({**ERROR_RESPONSES, **AUTH_RESPONSES}),
        },
        summary="Live events of your tenant as Server-Sent Events (resumable with Last-Event-ID)",
    )
    async def event_source(
        wanted: Filters = Depends(filters),
        last_event_id: str | None = Header(
            default=None, max_length=64, description="Resume after this event, if the bus still remembers it."
        ),
    ) -> EventStreamResponse:
        stream = stream_of(wanted)
        backlog = stream.open(wanted.replay, after=last_event_id)
        return EventStreamResponse(
            _server_sent(stream, backlog, keepalive_s),
            headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
        )

    return api


async def _server_sent(stream: EventStream, backlog: list[Event], keepalive_s: float) -> AsyncIterator[str]:
    """The SSE body; unsubscribes when the client goes away (Starlette then cancels this generator)."""
    try:
        for event in backlog:
            yield _sse(event)
        while True:
            try:
                event = await asyncio.wait_for(stream.next(), keepalive_s)
            except TimeoutError:
                yield ": keep-alive\n\n"
                continue
            yield _sse(event)
    finally:
        stream.close()


def _sse(event: Event) -> str:
    return f"id: {event.id}\nevent: {event.type}\ndata: {event.model_dump_json()}\n\n"


async def _authenticate(connection: HTTPConnection, token: str | None) -> None:
    """With auth on, a stream needs a credential: `Authorization: Bearer`, `X-API-Key`, or `?token=` (browsers
    can set no header on a WebSocket or an EventSource). Its tenant becomes the stream's. Raises
    `Unauthenticated`."""
    authenticator: Authenticator | None = getattr(connection.app.state, "auth", None)
    if authenticator is None:
        return
    bearer = connection.headers.get("authorization", "")
    principal = await authenticator.authenticate(
        token=token or (bearer[7:].strip() if bearer.lower().startswith("bearer ") else None),
        api_key=connection.headers.get("x-api-key"),
    )
    set_tenant(principal.tenant_id)


async def _authenticated(websocket: WebSocket, token: str | None) -> bool:
    """A refused handshake is closed before it is accepted, which the server answers with HTTP 403."""
    try:
        await _authenticate(websocket, token)
    except Unauthenticated as exc:
        await websocket.close(code=1008, reason=exc.message[:120])
        return False
    return True


async def _stream_credential(
    request: Request,
    token: str | None = Query(
        default=None,
        max_length=4096,
        description="With auth: an access token or API key (EventSource cannot send headers).",
    ),
) -> None:
    await _authenticate(request, token)


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
